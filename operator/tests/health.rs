//! The probe and metrics server over real TCP: what the kubelet and Prometheus see.

use std::net::SocketAddr;
use std::sync::Arc;

use agentgateway_operator::health::{self, Health};
use agentgateway_operator::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read the response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn start() -> (SocketAddr, Arc<Health>, Metrics) {
    let (registry, metrics) = Metrics::registry();
    let health = Arc::new(Health::new(registry));
    let listener = health::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local address");
    health::serve(listener, Arc::clone(&health));
    (addr, health, metrics)
}

#[tokio::test]
async fn healthz_answers_while_readyz_waits_for_the_caches() {
    let (addr, health, _) = start().await;
    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(get(addr, "/readyz").await.0, 503);
    health.set_ready();
    assert_eq!(get(addr, "/readyz").await.0, 200);
}

#[tokio::test]
async fn a_follower_reports_leader_zero_in_its_metrics() {
    let (addr, _, metrics) = start().await;
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let leader = body
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("leader"))
        .unwrap();
    assert_eq!(leader, "agentgateway_operator_leader 0");
    metrics.set_leader(true);
    let (_, body) = get(addr, "/metrics").await;
    assert!(body.contains("agentgateway_operator_leader 1"));
}
