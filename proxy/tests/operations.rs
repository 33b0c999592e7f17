//! Admin endpoints, metrics and graceful shutdown.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use agentgateway_mock_llm::{MockLlm, MockLlmConfig};
use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use serde_json::json;

#[tokio::test]
async fn readiness_and_metrics_are_served_with_the_documented_names() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let ready = proxy
        .client
        .get(
            format!("http://{}/healthz/ready", proxy.running().ready_addr)
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    proxy.chat(chat("hi")).await;
    proxy
        .chat(json!({"model": "", "stream": true, "messages": []}))
        .await;
    let metrics = proxy.metrics().await;
    for name in [
        r#"agentgateway_requests_total{route="default/one",backend="default/one",provider="a",operation="chat_completions",status="200"} 2"#,
        "agentgateway_gen_ai_client_token_usage_bucket",
        "agentgateway_gen_ai_server_request_duration_bucket",
        "agentgateway_gen_ai_server_time_to_first_token_bucket",
        r#"agentgateway_provider_healthy{backend="default/one",provider="a"} 1"#,
        r#"agentgateway_config_reloads_total{result="success"} 1"#,
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_stream_finish() {
    let slow = MockLlm::start(MockLlmConfig {
        name: "slow".into(),
        chunk_delay: Duration::from_millis(100),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut proxy = start_proxy(&config(&[
        backend("one", &[&[("slow", slow.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let request = json!({"model": "", "stream": true, "messages": [{"role": "user", "content": "Reply with exactly: a b c d e f"}]});
    let response = proxy
        .request(
            "POST",
            "/v1/chat/completions",
            Bytes::from(request.to_string()),
            &[],
        )
        .await;
    assert_eq!(response.status(), 200);
    let running = proxy.running.take().unwrap();
    let shutdown = tokio::spawn(running.shutdown(Duration::ZERO, Duration::from_secs(10)));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).ends_with("data: [DONE]\n\n"),
        "stream completed: {body:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .unwrap()
        .unwrap();
    // No longer accepting.
    let refused = tokio::net::TcpStream::connect(proxy.addr).await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn on_shutdown_readiness_fails_first_and_listeners_accept_through_the_drain_delay() {
    let a = mock("a").await;
    let mut proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let ready_url = format!("http://{}/healthz/ready", proxy.running().ready_addr);
    let running = proxy.running.take().unwrap();
    let readiness = running.readiness.clone();
    let shutdown = tokio::spawn(running.shutdown(Duration::from_secs(1), Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!readiness.get(), "readiness fails at once");
    let ready = proxy.client.get(ready_url.parse().unwrap()).await.unwrap();
    assert_eq!(ready.status(), 503);
    // Still accepting during the delay; HTTP/1 clients are asked to go elsewhere next time.
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["connection"], "close");
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(proxy.addr).await.is_err());
}
