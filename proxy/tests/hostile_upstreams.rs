//! Hostile upstreams: a provider's stream is bounded in event size and in what is held before
//! the first content, and its line endings are read as the SSE specification says.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use agentgateway_proxy::limits::Limits;
use common::raw::{hostile_upstream, json_upstream};
use common::*;
use serde_json::json;

const SSE_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";

fn backends(first: std::net::SocketAddr, second: std::net::SocketAddr) -> String {
    config(&[
        backend("pool", &[&[("a", first)], &[("b", second)]], "", ""),
        route("pool", "pool", None),
    ])
}

fn small_limits() -> Limits {
    Limits {
        max_sse_event: 64 << 10,
        max_pre_commit: 64 << 10,
        ..Limits::default()
    }
}

#[tokio::test]
async fn a_stream_without_separators_is_cut_after_the_event_limit_and_the_next_provider_serves() {
    // Endless bytes, never a blank line: before content, so another provider may serve.
    let endless = vec![vec![b'x'; 16 << 10]; 64];
    let hostile = hostile_upstream(SSE_HEAD, endless, Duration::ZERO, Duration::from_secs(5)).await;
    let good = mock("b").await;
    let proxy = start_proxy_with(&backends(hostile, good.addr()), small_limits()).await;
    let reply = proxy
        .chat(json!({"model": "", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.instance(), "b");
    assert!(String::from_utf8_lossy(&reply.body).ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn an_oversized_event_after_content_cuts_the_stream_with_an_error_event() {
    let first =
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"}}]}\n\n".to_vec();
    let mut chunks = vec![first];
    chunks.extend(vec![vec![b'y'; 16 << 10]; 64]);
    let hostile = hostile_upstream(SSE_HEAD, chunks, Duration::ZERO, Duration::from_secs(5)).await;
    let proxy = start_proxy_with(
        &config(&[
            backend("one", &[&[("a", hostile)]], "", ""),
            route("one", "one", None),
        ]),
        small_limits(),
    )
    .await;
    let reply = proxy
        .chat(json!({"model": "", "stream": true, "messages": []}))
        .await;
    assert_eq!(reply.status, 200);
    let text = String::from_utf8_lossy(&reply.body);
    assert!(text.starts_with("data: {\"choices\""), "{text}");
    assert!(
        text.ends_with("\n\n") && text.contains("event: error\ndata: "),
        "ends with an error event: {}",
        &text[text.len().saturating_sub(300)..]
    );
    assert!(text.contains("upstream_stream_interrupted"));
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(
            r#"agentgateway_provider_evictions_total{backend="default/one",provider="a"} 1"#
        ),
        "a provider failure: {metrics}"
    );
}

#[tokio::test]
async fn cr_only_line_endings_are_events_and_usage_is_read() {
    let stream = "data: {\"model\":\"cr-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\r\rdata: {\"model\":\"cr-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\r\rdata: [DONE]\r\r";
    let chunks = stream.as_bytes().chunks(7).map(<[u8]>::to_vec).collect();
    let hostile =
        hostile_upstream(SSE_HEAD, chunks, Duration::from_millis(1), Duration::ZERO).await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", hostile)]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let reply = proxy
        .chat(json!({"model": "", "stream": true, "stream_options": {"include_usage": true}, "messages": []}))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, stream.as_bytes(), "forwarded byte for byte");
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("agentgateway_gen_ai_client_token_usage_sum{gen_ai_token_type=\"input\",route=\"default/one\",backend=\"default/one\",provider=\"a\",model=\"model-a\",consumer=\"\"} 5.0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_large_json_response_is_streamed_and_its_usage_read_from_the_tail() {
    // An embeddings answer far beyond the replay size: streamed, usage still counted.
    let vector = vec!["0.0123"; 300_000].join(",");
    let body = format!(
        "{{\"object\":\"list\",\"data\":[{{\"object\":\"embedding\",\"index\":0,\"embedding\":[{vector}]}}],\"model\":\"embed-model\",\"usage\":{{\"prompt_tokens\":9,\"total_tokens\":9}}}}"
    );
    let upstream = json_upstream(&body, "", 64 << 10).await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", upstream)]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let reply = proxy
        .post("/v1/embeddings", json!({"model": "", "input": "hi"}), &[])
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.len(), body.len());
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("gen_ai_token_type=\"input\",route=\"default/one\",backend=\"default/one\",provider=\"a\",model=\"model-a\",consumer=\"\"} 9.0"),
        "{metrics}"
    );
}
