//! Anthropic providers behind the OpenAI endpoint: the proxy speaks the Messages API to mock-llm's
//! `/v1/messages` (which checks what it receives the way Anthropic documents it) and answers in
//! OpenAI's shape, streaming included; failures, retries and failover work as for OpenAI.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;

use agentgateway_mock_llm::{Fault, MockLlm};
use common::*;
use serde_json::{Value, json};

/// A backend `claude` with an `anthropic` provider per address (one group), its route, and the
/// gateway's key for them.
fn anthropic_backend(
    providers: &[(&str, SocketAddr)],
    extra_group: Option<(&str, SocketAddr)>,
) -> String {
    let mut yaml = String::from(
        "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata:\n  name: claude\n  namespace: default\nspec:\n  policies:\n    health:\n      eviction: {duration: 30s}\n  ai:\n    groups:\n    - providers:\n",
    );
    for (name, addr) in providers {
        yaml.push_str(&format!(
            "      - name: {name}\n        host: {}\n        port: {}\n        anthropic: {{model: claude-test}}\n        policies:\n          auth:\n            secretRef: {{name: openai-secret}}\n",
            addr.ip(),
            addr.port()
        ));
    }
    if let Some((name, addr)) = extra_group {
        yaml.push_str(&format!(
            "    - providers:\n      - name: {name}\n        host: {}\n        port: {}\n        openai: {{model: self-hosted}}\n",
            addr.ip(),
            addr.port()
        ));
    }
    config(&[
        GATEWAY_KEY_SECRET.to_string(),
        yaml,
        route("claude", "claude", None),
    ])
}

async fn anthropic_proxy() -> (Proxy, MockLlm) {
    let llm = mock("anthropic").await;
    let proxy = start_proxy(&anthropic_backend(&[("claude", llm.addr())], None)).await;
    (proxy, llm)
}

fn content_of(chunks: &[String]) -> String {
    chunks
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

#[tokio::test]
async fn a_chat_completion_is_served_by_the_messages_api_and_answered_in_openais_shape() {
    let (proxy, llm) = anthropic_proxy().await;
    let reply = proxy
        .chat(json!({
            "model": "",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Reply with exactly: hello claude"},
            ],
            "max_tokens": 50,
        }))
        .await;
    reply.assert_ok();
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "claude-test");
    assert_eq!(body["choices"][0]["message"]["content"], "hello claude");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = &body["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
    assert!(
        reply
            .headers
            .get("content-length")
            .is_none_or(|l| l.to_str().unwrap() == reply.body.len().to_string())
    );

    let seen = llm.requests();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some("sk-test-123"));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.header("authorization"), None);
    let sent = request.json().unwrap();
    assert_eq!(sent["model"], "claude-test");
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["max_tokens"], 50);
    assert_eq!(sent["messages"][0]["role"], "user");
}

#[tokio::test]
async fn a_stream_becomes_openai_chunks_with_usage_and_done() {
    let (proxy, _llm) = anthropic_proxy().await;
    let reply = proxy
        .chat(json!({
            "model": "", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Reply with exactly: one two three four"}],
        }))
        .await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let chunks = sse_data(&reply.body);
    assert_eq!(chunks.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(content_of(&chunks), "one two three four");
    let parsed = sse_chunks(&reply.body);
    assert!(
        parsed
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let finish = parsed
        .iter()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str());
    assert_eq!(finish, Some("stop"));
    let usage = parsed
        .iter()
        .find(|c| c["usage"].is_object())
        .expect("a usage chunk");
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // Without include_usage the usage chunk is the proxy's own: not sent.
    let reply = proxy
        .chat(json!({"model": "", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    let chunks = sse_data(&reply.body);
    assert!(
        chunks.iter().all(|c| !c.contains("\"usage\"")),
        "{chunks:?}"
    );
    // ...but the proxy counted it.
    let metrics = proxy.metrics().await;
    assert!(metrics.contains("provider=\"claude\""), "{metrics}");
}

#[tokio::test]
async fn tool_calls_round_trip_streaming_or_not() {
    let (proxy, llm) = anthropic_proxy().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let reply = proxy
        .chat(
            json!({"model": "", "tools": tools, "tool_choice": "required",
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}),
        )
        .await;
    reply.assert_ok();
    let body = reply.json();
    let message = &body["choices"][0]["message"];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let call = &message["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(arguments.is_object());
    let sent = llm.requests()[0].json().unwrap();
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );

    // The result goes back as a tool_result, and the stream carries the call as deltas.
    let reply = proxy
        .chat(json!({"model": "", "stream": true, "tools": tools, "tool_choice": "required", "messages": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
        ]}))
        .await;
    reply.assert_ok();
    let chunks = sse_chunks(&reply.body);
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(
        serde_json::from_str::<Value>(&streamed)
            .unwrap()
            .is_object(),
        "{streamed}"
    );
    let sent = llm.requests()[1].json().unwrap();
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(sent["messages"][2]["content"][0]["tool_use_id"], call["id"]);
}

#[tokio::test]
async fn what_anthropic_cannot_do_is_refused_naming_it_and_nothing_is_sent() {
    let (proxy, llm) = anthropic_proxy().await;
    let reply = proxy
        .chat(json!({"model": "", "n": 2, "messages": [{"role": "user", "content": "x"}]}))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "unsupported_parameter");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("n:")
    );
    let reply = proxy
        .post("/v1/embeddings", json!({"model": "", "input": "x"}), &[])
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "unsupported_operation");
    assert_eq!(llm.request_count(), 0);
}

#[tokio::test]
async fn the_providers_refusal_comes_back_in_openais_shape_with_its_message() {
    let (proxy, llm) = anthropic_proxy().await;
    llm.push_fault(Fault::status(400));
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 400);
    let error = &reply.json()["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{error}"
    );
    // A client's mistake evicts nobody: the next request is served.
    assert_eq!(
        proxy
            .chat(chat("Reply with exactly: still here"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn overloaded_anthropic_fails_over_to_the_next_group_and_back() {
    let claude = mock("anthropic").await;
    let local = mock("local").await;
    let proxy = start_proxy(&anthropic_backend(
        &[("claude", claude.addr())],
        Some(("local", local.addr())),
    ))
    .await;
    // 529 overloaded_error: a provider failure, retried on the self-hosted group.
    claude.set_fault(Some(Fault::status(529)));
    for _ in 0..3 {
        let reply = proxy.chat(chat("Reply with exactly: served")).await;
        reply.assert_ok();
        assert_eq!(reply.json()["choices"][0]["message"]["content"], "served");
        assert_eq!(reply.instance(), "local");
    }
    // Anthropic evicted after its failure: the others went straight to the self-hosted model.
    assert_eq!(claude.request_count(), 1);
    let metrics = proxy.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("agentgateway_provider_evictions_total")
                && l.contains("provider=\"claude\"")),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_error_event_after_content_cuts_the_clients_stream_with_an_error_event() {
    let (proxy, llm) = anthropic_proxy().await;
    llm.set_fault(Some(Fault::ErrorAfter(5)));
    let reply = proxy
        .chat(json!({"model": "", "stream": true, "messages": [{"role": "user", "content": "Reply with exactly: a b c d e f g h"}]}))
        .await;
    assert_eq!(reply.status, 200);
    let chunks = sse_data(&reply.body);
    assert!(!content_of(&chunks).is_empty(), "content before the error");
    assert_ne!(chunks.last().map(String::as_str), Some("[DONE]"));
    let last: Value = serde_json::from_str(chunks.last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["code"], "upstream_stream_interrupted",
        "{last}"
    );
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overloaded_error"),
        "{last}"
    );
}

#[tokio::test]
async fn an_error_event_before_any_content_is_retried_on_another_provider() {
    let bad = mock("bad").await;
    let local = mock("local").await;
    let proxy = start_proxy(&anthropic_backend(
        &[("bad", bad.addr())],
        Some(("local", local.addr())),
    ))
    .await;
    // message_start, then the error event: nothing the client could see yet.
    bad.set_fault(Some(Fault::ErrorAfter(1)));
    let reply = proxy
        .chat(json!({"model": "", "stream": true, "messages": [{"role": "user", "content": "Reply with exactly: fine"}]}))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(content_of(&sse_data(&reply.body)), "fine");
    assert_eq!(reply.instance(), "local");
    assert_eq!(bad.request_count(), 1);
}
