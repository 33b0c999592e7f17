//! Hostile and careless clients: no client can forge metrics, hold connections, reach operations
//! the backend does not serve, or cost any other client anything.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use agentgateway_mock_llm::Fault;
use agentgateway_proxy::access_log::AccessLog;
use agentgateway_proxy::limits::Limits;
use bytes::Bytes;
use common::raw::{json_upstream, read_response, read_until_close};
use common::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn one_backend(addr: std::net::SocketAddr) -> String {
    config(&[
        backend("one", &[&[("a", addr)]], "", ""),
        route("one", "one", None),
    ])
}

/// A backend whose provider names no model (the client's or the provider's reported one counts).
fn open_backend(addr: std::net::SocketAddr, ai_extra: &str) -> String {
    let yaml = format!(
        "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata:\n  name: open\n  namespace: default\nspec:\n  ai:\n{ai_extra}    provider:\n      host: 127.0.0.1\n      port: {}\n      openai: {{}}\n",
        addr.port()
    );
    config(&[yaml, route("open", "open", None)])
}

// 1. Metrics and logs take no raw client strings.

#[tokio::test]
async fn a_model_that_could_forge_a_series_is_refused_as_invalid_model() {
    let a = mock("a").await;
    let proxy = start_proxy(&one_backend(a.addr())).await;
    let forged =
        "x\"} 1\nagentgateway_provider_healthy{backend=\"forged\",provider=\"forged\"} 0\n#";
    let reply = proxy.chat(json!({"model": forged, "messages": []})).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "invalid_model");
    let long = "m".repeat(257);
    let reply = proxy.chat(json!({"model": long, "messages": []})).await;
    assert_eq!(reply.error_code(), "invalid_model");
    assert_eq!(a.request_count(), 0);
    let metrics = proxy.metrics().await;
    assert!(!metrics.contains("forged"), "{metrics}");
}

#[tokio::test]
async fn a_providers_reported_model_is_escaped_in_the_metrics() {
    let body = r#"{"id":"x","object":"chat.completion","model":"x\"} 1\nforged_series 0\n#","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
    let upstream = json_upstream(body, "", usize::MAX).await;
    let proxy = start_proxy(&open_backend(upstream, "")).await;
    let reply = proxy.chat(json!({"model": "m", "messages": []})).await;
    assert_eq!(reply.status, 200);
    let metrics = proxy.metrics().await;
    assert!(
        !metrics.lines().any(|l| l.starts_with("forged_series")),
        "{metrics}"
    );
    // Logged and labelled escaped: the quote as the text format wants, the line feed as text.
    assert!(
        metrics.contains(r#"model="x\"} 1\\nforged_series 0\\n#""#),
        "{metrics}"
    );
}

#[tokio::test]
async fn model_label_values_are_bounded_per_provider() {
    let a = mock("a").await;
    let limits = Limits {
        model_labels_per_provider: 8,
        ..Limits::default()
    };
    let proxy = start_proxy_with(&open_backend(a.addr(), ""), limits).await;
    for i in 0..20 {
        let reply = proxy
            .chat(json!({"model": format!("random-{i}"), "messages": []}))
            .await;
        assert_eq!(reply.status, 200);
    }
    let metrics = proxy.metrics().await;
    let models: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("agentgateway_gen_ai_server_request_duration_count"))
        .filter_map(|l| l.split("model=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(models.len(), 9, "8 values and other: {models:?}");
    assert!(models.contains("other"));
}

#[tokio::test]
async fn a_client_that_goes_away_is_logged_as_client_disconnected() {
    let a = mock("a").await;
    a.set_fault(Some(Fault::delay(Duration::from_secs(2))));
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.log");
    let (writer, _guard) =
        tracing_appender::non_blocking(std::fs::File::create(&log_path).unwrap());
    let proxy = start_proxy_logged(&one_backend(a.addr()), AccessLog::Json(writer)).await;
    let request = proxy.request(
        "POST",
        "/v1/chat/completions",
        Bytes::from(chat("hi").to_string()),
        &[],
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), request)
            .await
            .is_err()
    );
    // The client's connection is gone; the proxy notices and writes the line.
    let mut line = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let text = std::fs::read_to_string(&log_path).unwrap();
        if let Some(l) = text.lines().find(|l| l.contains("client_disconnected")) {
            line = Some(l.to_string());
            break;
        }
    }
    let line: serde_json::Value = serde_json::from_str(&line.expect("an access line")).unwrap();
    assert_eq!(line["status"], 499);
    assert_eq!(line["route"], "default/one");
}

// 2. Slow and idle clients are bounded.

fn short_timeouts() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(300),
        body_progress_timeout: Duration::from_millis(300),
        keep_alive_idle: Duration::from_millis(1500),
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_connection_that_stops_mid_header_is_closed() {
    let a = mock("a").await;
    let proxy = start_proxy_with(&one_backend(a.addr()), short_timeouts()).await;
    for addr in [
        proxy.addr,
        proxy.running().metrics_addr,
        proxy.running().ready_addr,
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let (_, closed) = read_until_close(&mut stream, Duration::from_secs(5)).await;
        assert!(closed, "{addr}: still open after the header read timeout");
    }
}

#[tokio::test]
async fn a_body_that_stalls_gets_408_and_the_connection_is_freed() {
    let a = mock("a").await;
    let proxy = start_proxy_with(&one_backend(a.addr()), short_timeouts()).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":")
        .await
        .unwrap();
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("request_timeout"), "{response}");
    assert_eq!(a.request_count(), 0);
}

#[tokio::test]
async fn idle_keep_alive_connections_close_after_the_idle_timeout_not_the_header_timeout() {
    let a = mock("a").await;
    let proxy = start_proxy_with(&one_backend(a.addr()), short_timeouts()).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let body = chat("hi").to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Longer than the header timeout, shorter than the idle timeout: still usable.
    tokio::time::sleep(Duration::from_millis(700)).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    let started = std::time::Instant::now();
    let (_, closed) = read_until_close(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "an idle connection is closed");
    assert!(started.elapsed() >= Duration::from_millis(1000));
}

#[tokio::test]
async fn past_the_connection_limit_new_clients_get_503_and_existing_ones_are_served() {
    let a = mock("a").await;
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let proxy = start_proxy_with(&one_backend(a.addr()), limits).await;
    let mut first = TcpStream::connect(proxy.addr).await.unwrap();
    let _second = TcpStream::connect(proxy.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(proxy.addr).await.unwrap();
    let refused = read_response(&mut third).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.to_ascii_lowercase().contains("retry-after: 1"));
    assert!(refused.contains("\"overloaded\""));
    let body = chat("hi").to_string();
    first
        .write_all(
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    assert!(read_response(&mut first).await.starts_with("HTTP/1.1 200"));
    let metrics = proxy.metrics().await;
    assert!(metrics.contains(r#"agentgateway_overload_rejections_total{reason="connections"} 1"#));
}

// 5. A client's fault never evicts a provider.

#[tokio::test]
async fn a_clients_own_rejected_key_goes_back_to_it_and_evicts_nobody() {
    let (a, b) = (mock("a").await, mock("b").await);
    let proxy = start_proxy(&config(&[
        backend("pool", &[&[("a", a.addr()), ("b", b.addr())]], "", ""),
        route("pool", "pool", None),
    ]))
    .await;
    a.set_fault(Some(Fault::status(401)));
    b.set_fault(Some(Fault::status(401)));
    let reply = proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[("authorization", "Bearer wrong-client-key")],
        )
        .await;
    assert_eq!(reply.status, 401, "the provider's answer, unchanged");
    assert_eq!(reply.error_code(), "invalid_api_key");
    assert_eq!(a.request_count() + b.request_count(), 1, "not retried");
    a.set_fault(None);
    b.set_fault(None);
    let metrics = proxy.metrics().await;
    assert!(
        !metrics.contains("agentgateway_provider_evictions_total{"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"agentgateway_provider_healthy{backend="default/pool",provider="a"} 1"#)
    );
    assert!(
        metrics.contains(r#"agentgateway_provider_healthy{backend="default/pool",provider="b"} 1"#)
    );
}

#[tokio::test]
async fn a_400_that_mentions_insufficient_quota_is_the_clients() {
    let (a, b) = (mock("a").await, mock("b").await);
    let proxy = start_proxy(&config(&[
        backend("pool", &[&[("a", a.addr()), ("b", b.addr())]], "", ""),
        route("pool", "pool", None),
    ]))
    .await;
    a.set_fault(Some(
        Fault::status(400).with_error_type("insufficient_quota"),
    ));
    b.set_fault(Some(
        Fault::status(400).with_error_type("insufficient_quota"),
    ));
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(a.request_count() + b.request_count(), 1);
    let metrics = proxy.metrics().await;
    assert!(
        !metrics.contains("agentgateway_provider_evictions_total{"),
        "{metrics}"
    );
}

#[tokio::test]
async fn below_consecutive_failures_a_quota_answer_evicts_nobody() {
    let (a, b) = (mock("a").await, mock("b").await);
    let lenient = "  policies:\n    health:\n      eviction:\n        consecutiveFailures: 3\n";
    let proxy = start_proxy(&config(&[
        backend(
            "pool",
            &[&[("a", a.addr())], &[("b", b.addr())]],
            "",
            lenient,
        ),
        route("pool", "pool", None),
    ]))
    .await;
    a.push_fault(Fault::status(429).with_error_type("insufficient_quota"));
    assert_eq!(proxy.chat(chat("hi")).await.instance(), "b", "retried");
    assert_eq!(proxy.chat(chat("hi")).await.instance(), "a", "not evicted");
}

// 6. Paths are normalized and operations are explicit.

#[tokio::test]
async fn dot_segments_and_encoded_separators_are_refused_before_routing() {
    let a = mock("a").await;
    let proxy = start_proxy(&one_backend(a.addr())).await;
    for path in [
        "/v1/chat/completions/../../v1/files/secret",
        "/v1/chat/completions/%2e%2e/%2e%2e/v1/files/secret",
        "/v1/chat/completions/%2E%2E%2Fv1%2Ffiles",
    ] {
        let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
        let body = chat("hi").to_string();
        stream
            .write_all(
                format!(
                    "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let response = read_response(&mut stream).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{path}: {response}");
        assert!(response.contains("invalid_path"), "{path}: {response}");
    }
    assert_eq!(a.request_count(), 0);
}

#[tokio::test]
async fn unknown_operations_are_404_unless_the_backend_passes_them_through() {
    let a = mock("a").await;
    let proxy = start_proxy(&open_backend(a.addr(), "")).await;
    for (method, path) in [
        ("POST", "/v1/files"),
        ("GET", "/v1/files/secret"),
        ("POST", "/v1/fine_tuning/jobs"),
        ("DELETE", "/v1/models/gpt-4o"),
    ] {
        let reply = proxy
            .send(method, path, Bytes::from_static(b"{}"), &[])
            .await;
        assert!(
            matches!(reply.status.as_u16(), 404 | 405),
            "{method} {path}: {reply:?}"
        );
        if reply.status == 404 {
            assert_eq!(reply.error_code(), "unsupported_operation");
        }
    }
    assert_eq!(a.request_count(), 0);
    let pass = "    passThrough:\n      pathPrefixes: [/v1/files]\n";
    proxy.write_config(&open_backend(a.addr(), pass));
    let mut reached = false;
    for _ in 0..100 {
        let reply = proxy.send("GET", "/v1/files/abc", Bytes::new(), &[]).await;
        let ours = serde_json::from_slice::<serde_json::Value>(&reply.body)
            .is_ok_and(|v| v["error"]["code"] == "unsupported_operation");
        if !ours {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reached, "the pass-through config was applied");
    assert!(a.requests().iter().any(|r| r.path == "/v1/files/abc"));
    let reply = proxy
        .send("POST", "/v1/batches", Bytes::from_static(b"{}"), &[])
        .await;
    assert_eq!(
        reply.error_code(),
        "unsupported_operation",
        "only the listed prefix"
    );
}

// 8. Headers between client and provider.

#[tokio::test]
async fn the_gateways_key_travels_without_the_clients_account_headers() {
    let a = mock("a").await;
    let proxy = start_proxy(&keyed_backend(a.addr())).await;
    let reply = proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[
                ("openai-organization", "org-client"),
                ("openai-project", "proj-client"),
                ("x-api-key", "client-key"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    let seen = &a.requests()[0];
    for absent in [
        "openai-organization",
        "openai-project",
        "x-api-key",
        "x-hop",
    ] {
        assert_eq!(seen.header(absent), None, "{absent}");
    }
    assert_eq!(seen.header("authorization"), Some("Bearer sk-test-123"));
}

#[tokio::test]
async fn provider_account_answers_to_the_gateways_key_do_not_reach_clients() {
    let body = r#"{"id":"x","object":"chat.completion","model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
    let upstream = json_upstream(body, "set-cookie: session=gw\r\nopenai-organization: org-gateway\r\nopenai-project: proj-gateway\r\nx-request-id: r1\r\n", usize::MAX).await;
    let proxy = start_proxy(&keyed_backend(upstream)).await;
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 200);
    for absent in ["set-cookie", "openai-organization", "openai-project"] {
        assert!(reply.headers.get(absent).is_none(), "{absent}");
    }
    assert_eq!(reply.headers["x-request-id"], "r1");
}

// 3. Memory has a budget: a large pass-through body is streamed, not held.

#[tokio::test]
async fn a_pass_through_body_larger_than_the_replay_size_is_streamed_to_the_provider() {
    let a = mock("a").await;
    let limits = Limits {
        max_request_replay: 1024,
        body_progress_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let pass = "    passThrough:\n      pathPrefixes: [/v1/files]\n";
    let proxy = start_proxy_with(&open_backend(a.addr(), pass), limits).await;
    let body = Bytes::from(vec![b'z'; 300_000]);
    proxy.send("POST", "/v1/files", body.clone(), &[]).await;
    let seen = a.requests().into_iter().find(|r| r.path == "/v1/files");
    assert_eq!(seen.expect("forwarded").body, body);

    // A client that stalls in the streamed part gets 408; the provider is not blamed.
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(b"POST /v1/files HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n")
        .await
        .unwrap();
    stream.write_all(&[b'z'; 4096]).await.unwrap();
    let response = read_response(&mut stream).await;
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    let metrics = proxy.metrics().await;
    assert!(
        !metrics.contains("agentgateway_provider_evictions_total{"),
        "{metrics}"
    );
}

// 2. HTTP/2 clients are bounded in concurrent streams.

#[tokio::test]
async fn http2_clients_are_told_the_concurrent_stream_bound() {
    let a = mock("a").await;
    let limits = Limits {
        http2_max_concurrent_streams: 7,
        ..Limits::default()
    };
    let proxy = start_proxy_with(&one_backend(a.addr()), limits).await;
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let (_client, mut connection) = h2::client::handshake(tcp).await.unwrap();
    // The server's SETTINGS arrive while the connection is driven.
    let _ = tokio::time::timeout(Duration::from_millis(300), &mut connection).await;
    assert_eq!(connection.max_concurrent_send_streams(), 7);
}

#[tokio::test]
async fn an_http2_client_that_stops_answering_pings_is_dropped() {
    let a = mock("a").await;
    let limits = Limits {
        http2_keep_alive_interval: Duration::from_millis(300),
        ..Limits::default()
    };
    let proxy = start_proxy_with(&one_backend(a.addr()), limits).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    // The HTTP/2 preface and an empty SETTINGS frame; then silence: no SETTINGS ack, no PING ack.
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let (_, closed) = read_until_close(&mut stream, Duration::from_secs(10)).await;
    assert!(closed, "a peer that does not answer PINGs is dropped");
}
