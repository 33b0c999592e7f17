//! HTTPS listeners (TLS termination in the proxy), configured from manifests with a
//! `kubernetes.io/tls` Secret as standalone mode reads them: a chat completion for a client that
//! trusts only the test CA, SNI choosing between two listeners on one port, ALPN h2, live
//! certificate rotation that leaves open connections alone, the handshake timeout, and a broken
//! certificate refused while the previous one keeps serving.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentgateway_proxy::limits::Limits;
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::ServerName;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

const LISTENER: &str = "default/agentgateway-proxy/https";

/// A test CA that signs leaf certificates.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names`: (certificate PEM, key PEM, certificate DER).
    fn leaf(&self, names: &[&str]) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

/// A `kubernetes.io/tls` Secret in `default`.
fn tls_secret(name: &str, cert: &str, key: &str) -> String {
    let indent = |pem: &str| -> String { pem.lines().map(|l| format!("    {l}\n")).collect() };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(cert),
        indent(key)
    )
}

/// The Gateway `default/agentgateway-proxy` with HTTPS listeners `(name, hostname, secret)` on
/// `port`.
fn gateway(port: u16, listeners: &[(&str, Option<&str>, &str)]) -> String {
    let mut yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: agentgateway-proxy\n  namespace: default\nspec:\n  gatewayClassName: agentgateway\n  listeners:\n".to_string();
    for (name, hostname, secret) in listeners {
        yaml.push_str(&format!(
            "  - name: {name}\n    port: {port}\n    protocol: HTTPS\n    tls:\n      mode: Terminate\n      certificateRefs:\n      - name: {secret}\n"
        ));
        if let Some(hostname) = hostname {
            yaml.push_str(&format!("    hostname: {hostname}\n"));
        }
    }
    yaml
}

fn free_port() -> u16 {
    dead_addr().port()
}

/// The manifests: a Gateway with one HTTPS listener for any host, its Secret, and a backend on
/// `llm` with its route.
fn manifests(port: u16, llm: SocketAddr, cert: &str, key: &str) -> String {
    config(&[
        gateway(port, &[("https", None, "gw-cert")]),
        tls_secret("gw-cert", cert, key),
        backend("one", &[&[("a", llm)]], "", ""),
        route("one", "one", None),
    ])
}

/// A TLS connection to `addr` presenting `sni`, trusting only `ca_pem`, offering `alpn`.
async fn connect(
    addr: SocketAddr,
    sni: &str,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> TlsStream<TcpStream> {
    try_connect(addr, sni, ca_pem, alpn).await.unwrap()
}

async fn try_connect(
    addr: SocketAddr,
    sni: &str,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
}

/// The DER of the certificate the server presented.
fn served_leaf(stream: &TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn chat_request(host: &str, version: Version) -> Request<Full<Bytes>> {
    let body = serde_json::to_vec(&chat("hello")).unwrap();
    let builder = Request::post(format!("https://{host}/v1/chat/completions"))
        .version(version)
        .header("content-type", "application/json");
    let builder = if version == Version::HTTP_2 {
        builder
    } else {
        builder.header("host", host)
    };
    builder.body(Full::new(Bytes::from(body))).unwrap()
}

/// An HTTP/1.1 connection over `stream`; the sender sends requests on it in turn.
async fn http1(
    stream: TlsStream<TcpStream>,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

async fn send_http1(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    host: &str,
) -> (StatusCode, serde_json::Value) {
    sender.ready().await.unwrap();
    let response = sender
        .send_request(chat_request(host, Version::HTTP_11))
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

async fn start(yaml: &str, limits: Limits) -> (Proxy, SocketAddr) {
    let proxy = start_proxy_with(yaml, limits).await;
    let addr = proxy.running().addresses().await[LISTENER];
    (proxy, addr)
}

#[tokio::test]
async fn a_chat_completion_is_served_over_https_to_a_client_trusting_only_the_test_ca() {
    let llm = mock("a").await;
    let ca = TestCa::new();
    let (cert, key, der) = ca.leaf(&["llm.example.com"]);
    let (_proxy, addr) = start(
        &manifests(free_port(), llm.addr(), &cert, &key),
        Limits::default(),
    )
    .await;

    let stream = connect(addr, "llm.example.com", &ca.pem, &[b"http/1.1"]).await;
    assert_eq!(served_leaf(&stream), der);
    let mut sender = http1(stream).await;
    let (status, body) = send_http1(&mut sender, "llm.example.com").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "model-a");

    // A client that does not trust the CA refuses the certificate.
    let other = TestCa::new();
    assert!(
        try_connect(addr, "llm.example.com", &other.pem, &[])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn sni_picks_the_certificate_of_each_listener_sharing_the_port() {
    let llm = mock("a").await;
    let ca = TestCa::new();
    let (cert_a, key_a, der_a) = ca.leaf(&["a.example.com"]);
    let (cert_b, key_b, der_b) = ca.leaf(&["b.example.com"]);
    let port = free_port();
    let yaml = config(&[
        gateway(
            port,
            &[
                ("https", Some("a.example.com"), "cert-a"),
                ("https-b", Some("b.example.com"), "cert-b"),
            ],
        ),
        tls_secret("cert-a", &cert_a, &key_a),
        tls_secret("cert-b", &cert_b, &key_b),
        backend("one", &[&[("a", llm.addr())]], "", ""),
        route("one", "one", None),
    ]);
    let (proxy, addr) = start(&yaml, Limits::default()).await;
    assert_eq!(proxy.running().addresses().await.len(), 1, "one bound port");

    for (host, der) in [("a.example.com", &der_a), ("b.example.com", &der_b)] {
        let stream = connect(addr, host, &ca.pem, &[]).await;
        assert_eq!(&served_leaf(&stream), der, "{host}");
        let mut sender = http1(stream).await;
        let (status, body) = send_http1(&mut sender, host).await;
        assert_eq!(status, 200, "{host}: {body}");
    }
    // No listener for this name and no default certificate: the handshake fails.
    assert!(
        try_connect(addr, "c.example.com", &ca.pem, &[])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn alpn_h2_is_negotiated_and_served_as_http2() {
    let llm = mock("a").await;
    let ca = TestCa::new();
    let (cert, key, _) = ca.leaf(&["llm.example.com"]);
    let (_proxy, addr) = start(
        &manifests(free_port(), llm.addr(), &cert, &key),
        Limits::default(),
    )
    .await;

    let stream = connect(addr, "llm.example.com", &ca.pem, &[b"h2", b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(chat_request("llm.example.com", Version::HTTP_2))
        .await
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["model"], "model-a");

    // A client offering only HTTP/1.1 gets HTTP/1.1.
    let stream = connect(addr, "llm.example.com", &ca.pem, &[b"http/1.1"]).await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn a_rotated_certificate_reaches_new_connections_and_open_ones_keep_working() {
    let llm = mock("a").await;
    let ca = TestCa::new();
    let (cert1, key1, der1) = ca.leaf(&["llm.example.com"]);
    let (cert2, key2, der2) = ca.leaf(&["llm.example.com"]);
    let port = free_port();
    let (proxy, addr) = start(
        &manifests(port, llm.addr(), &cert1, &key1),
        Limits::default(),
    )
    .await;

    let before = connect(addr, "llm.example.com", &ca.pem, &[]).await;
    assert_eq!(served_leaf(&before), der1);
    let mut open = http1(before).await;
    assert_eq!(send_http1(&mut open, "llm.example.com").await.0, 200);

    proxy.write_config(&manifests(port, llm.addr(), &cert2, &key2));
    let started = Instant::now();
    loop {
        let stream = connect(addr, "llm.example.com", &ca.pem, &[]).await;
        if served_leaf(&stream) == der2 {
            let mut fresh = http1(stream).await;
            assert_eq!(send_http1(&mut fresh, "llm.example.com").await.0, 200);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "rotation not applied"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The listener was not restarted: the same address serves, and the connection opened
    // before the rotation still serves requests.
    assert_eq!(proxy.running().addresses().await[LISTENER], addr);
    assert_eq!(send_http1(&mut open, "llm.example.com").await.0, 200);
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_cut_at_the_timeout() {
    let llm = mock("a").await;
    let ca = TestCa::new();
    let (cert, key, _) = ca.leaf(&["llm.example.com"]);
    let limits = Limits {
        tls_handshake_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (proxy, addr) = start(&manifests(free_port(), llm.addr(), &cert, &key), limits).await;

    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the proxy closes the connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    assert!(took < Duration::from_secs(3), "closed after {took:?}");

    // A client speaking plain HTTP to the HTTPS port fails the handshake at once.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut plain, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read(&mut buf)).await;

    // The failure is counted as the socket closes: wait for both counts.
    let timeout = format!(
        "agentgateway_tls_handshake_failures_total{{listener=\"{LISTENER}\",reason=\"timeout\"}} 1"
    );
    let error = format!(
        "agentgateway_tls_handshake_failures_total{{listener=\"{LISTENER}\",reason=\"error\"}} 1"
    );
    let started = Instant::now();
    loop {
        let metrics = proxy.metrics().await;
        if metrics.contains(&timeout) && metrics.contains(&error) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_broken_certificate_in_a_new_config_is_refused_and_the_old_one_keeps_serving() {
    let llm = mock("a").await;
    let ca = TestCa::new();
    let (cert1, key1, der1) = ca.leaf(&["llm.example.com"]);
    let (cert2, _, _) = ca.leaf(&["llm.example.com"]);
    let port = free_port();
    let (proxy, addr) = start(
        &manifests(port, llm.addr(), &cert1, &key1),
        Limits::default(),
    )
    .await;

    // The new certificate with the old key: they do not belong together.
    proxy.write_config(&manifests(port, llm.addr(), &cert2, &key1));
    let started = Instant::now();
    while !proxy
        .metrics()
        .await
        .contains(r#"agentgateway_config_reloads_total{result="failure"} 1"#)
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the edit was not refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stream = connect(addr, "llm.example.com", &ca.pem, &[]).await;
    assert_eq!(served_leaf(&stream), der1);
    let mut sender = http1(stream).await;
    assert_eq!(send_http1(&mut sender, "llm.example.com").await.0, 200);
}
