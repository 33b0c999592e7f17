//! Server-sent-event streams: forwarded as they arrive, usage read on the side, failures handled.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use agentgateway_mock_llm::{Fault, MockLlm, MockLlmConfig};
use bytes::Bytes;
use common::*;
use http_body_util::BodyExt;
use serde_json::{Value, json};

fn stream_request(content: &str) -> Value {
    json!({"model": "", "stream": true, "messages": [{"role": "user", "content": content}]})
}

/// The `data:` payloads of an SSE body, and the `event:` names seen.
fn events(body: &[u8]) -> (Vec<String>, Vec<String>) {
    let text = String::from_utf8_lossy(body);
    let mut data = Vec::new();
    let mut names = Vec::new();
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("data: ") {
            data.push(d.to_string());
        } else if let Some(e) = line.strip_prefix("event: ") {
            names.push(e.to_string());
        }
    }
    (data, names)
}

#[tokio::test]
async fn the_first_chunk_reaches_the_client_before_the_upstream_finishes() {
    let slow = MockLlm::start(MockLlmConfig {
        name: "slow".into(),
        chunk_delay: Duration::from_millis(150),
        ..Default::default()
    })
    .await
    .unwrap();
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("slow", slow.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let started = Instant::now();
    let response = proxy
        .request(
            "POST",
            "/v1/chat/completions",
            Bytes::from(
                stream_request("Reply with exactly: one two three four five six").to_string(),
            ),
            &[],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = response.into_body();
    let first = loop {
        let frame = body.frame().await.unwrap().unwrap();
        if frame.is_data() {
            break started.elapsed();
        }
    };
    while let Some(frame) = body.frame().await {
        frame.unwrap();
    }
    let total = started.elapsed();
    assert!(
        total >= Duration::from_millis(1000),
        "the upstream takes > 1 s: {total:?}"
    );
    assert!(
        first < total / 2,
        "first chunk at {first:?} of {total:?}: buffered?"
    );
}

#[tokio::test]
async fn injected_usage_is_counted_and_its_usage_only_chunk_dropped() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let reply = proxy
        .chat(stream_request("Reply with exactly: hello streaming world"))
        .await;
    assert_eq!(reply.status, 200);
    let (data, _) = events(&reply.body);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let mut text = String::new();
    for chunk in &data[..data.len() - 1] {
        let chunk: Value = serde_json::from_str(chunk).unwrap();
        assert!(
            !chunk["choices"].as_array().unwrap().is_empty(),
            "usage-only chunk leaked: {chunk}"
        );
        text.push_str(
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or(""),
        );
    }
    assert_eq!(text, "hello streaming world");
    assert_eq!(
        a.requests()[0].json().unwrap()["stream_options"]["include_usage"],
        true
    );
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(r#"agentgateway_gen_ai_client_token_usage_sum{gen_ai_token_type="output",route="default/one",backend="default/one",provider="a",model="model-a",consumer=""} 3.0"#),
        "{metrics}"
    );
    assert!(metrics.contains("agentgateway_gen_ai_server_time_to_first_token_count"));
}

#[tokio::test]
async fn a_stream_whose_client_asked_for_usage_is_forwarded_byte_for_byte() {
    let a = mock("a").await;
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let request = json!({"model": "", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Reply with exactly: bytes please"}]});
    let reply = proxy.chat(request.clone()).await;
    // The same request straight to the mock gives the reference bytes (ids count up, so compare shapes).
    let (data, _) = events(&reply.body);
    let usage_chunk: Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 2);
    assert!(String::from_utf8_lossy(&reply.body).ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn a_stream_cut_after_content_ends_with_an_error_event_and_counts_against_the_provider() {
    let a = mock("a").await;
    a.set_fault(Some(Fault::CutAfter(3)));
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("a", a.addr())]], "", ""),
        route("one", "one", None),
    ]))
    .await;
    let started = Instant::now();
    let reply = proxy
        .chat(stream_request(
            "Reply with exactly: one two three four five",
        ))
        .await;
    assert!(started.elapsed() < Duration::from_secs(5), "never a hang");
    assert_eq!(reply.status, 200);
    let (data, names) = events(&reply.body);
    assert_eq!(
        names,
        ["error"],
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    let error: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(error["error"]["code"], "upstream_stream_interrupted");
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains(
            r#"agentgateway_provider_evictions_total{backend="default/one",provider="a"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_stream_that_fails_before_content_is_retried_on_another_provider() {
    let (a, b) = (mock("a").await, mock("b").await);
    a.set_fault(Some(Fault::CutAfter(1)));
    let proxy = start_proxy(&config(&[
        backend("pool", &[&[("a", a.addr())], &[("b", b.addr())]], "", ""),
        route("pool", "pool", None),
    ]))
    .await;
    let reply = proxy
        .chat(stream_request("Reply with exactly: from b"))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.instance(), "b");
    let (data, names) = events(&reply.body);
    assert!(names.is_empty());
    assert_eq!(data.last().unwrap(), "[DONE]");
    assert_eq!(a.request_count(), 1);
}

#[tokio::test]
async fn a_connection_reset_before_the_response_is_retried() {
    let (a, b) = (mock("a").await, mock("b").await);
    a.push_fault(Fault::Reset);
    let proxy = start_proxy(&config(&[
        backend("pool", &[&[("a", a.addr())], &[("b", b.addr())]], "", ""),
        route("pool", "pool", None),
    ]))
    .await;
    let reply = proxy.chat(stream_request("hi")).await;
    assert_eq!((reply.status.as_u16(), reply.instance()), (200, "b"));
}

#[tokio::test]
async fn a_stream_longer_than_the_request_timeout_ends_with_an_error_event() {
    let slow = MockLlm::start(MockLlmConfig {
        name: "slow".into(),
        chunk_delay: Duration::from_millis(300),
        ..Default::default()
    })
    .await
    .unwrap();
    let timeouts = "  policies:\n    timeouts:\n      request: 1s\n";
    let proxy = start_proxy(&config(&[
        backend("one", &[&[("slow", slow.addr())]], "", timeouts),
        route("one", "one", None),
    ]))
    .await;
    let started = Instant::now();
    let reply = proxy
        .chat(stream_request("Reply with exactly: a b c d e f g h i j"))
        .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let (_, names) = events(&reply.body);
    assert_eq!(names, ["error"]);
}
