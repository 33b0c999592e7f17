//! Gemini providers behind the OpenAI endpoint: the proxy speaks `generateContent` and
//! `streamGenerateContent?alt=sse` to mock-llm (which checks them as Google documents them) and
//! answers in OpenAI's shape; failures, retries and failover work as for OpenAI.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;

use agentgateway_mock_llm::{Fault, MockLlm};
use common::*;
use serde_json::{Value, json};

fn gemini_backend(gemini: SocketAddr, fallback: Option<SocketAddr>) -> String {
    let mut yaml = format!(
        "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata:\n  name: gemini\n  namespace: default\nspec:\n  policies:\n    health:\n      eviction: {{duration: 30s}}\n  ai:\n    groups:\n    - providers:\n      - name: gemini\n        host: {}\n        port: {}\n        gemini: {{model: gemini-test}}\n        policies:\n          auth:\n            secretRef: {{name: openai-secret}}\n",
        gemini.ip(),
        gemini.port()
    );
    if let Some(addr) = fallback {
        yaml.push_str(&format!(
            "    - providers:\n      - name: local\n        host: {}\n        port: {}\n        openai: {{model: self-hosted}}\n",
            addr.ip(),
            addr.port()
        ));
    }
    config(&[
        GATEWAY_KEY_SECRET.to_string(),
        yaml,
        route("gemini", "gemini", None),
    ])
}

async fn gemini_proxy() -> (Proxy, MockLlm) {
    let llm = mock("gemini").await;
    (start_proxy(&gemini_backend(llm.addr(), None)).await, llm)
}

#[tokio::test]
async fn a_chat_completion_is_served_by_generate_content_in_openais_shape() {
    let (proxy, llm) = gemini_proxy().await;
    let reply = proxy
        .chat(
            json!({"model": "", "max_tokens": 50, "temperature": 0.2, "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Reply with exactly: hello gemini"},
            ]}),
        )
        .await;
    reply.assert_ok();
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "hello gemini");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(
        body["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
        "{body}"
    );
    let seen = &llm.requests()[0];
    assert_eq!(seen.path, "/v1beta/models/gemini-test:generateContent");
    assert_eq!(seen.header("x-goog-api-key"), Some("sk-test-123"));
    assert_eq!(seen.header("authorization"), None);
    let sent = seen.json().unwrap();
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
    assert_eq!(sent["generationConfig"]["maxOutputTokens"], 50);
    assert_eq!(sent["contents"][0]["role"], "user");
}

#[tokio::test]
async fn a_stream_becomes_openai_chunks_ending_in_done() {
    let (proxy, llm) = gemini_proxy().await;
    let reply = proxy
        .chat(
            json!({"model": "", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Reply with exactly: one two three four"}]}),
        )
        .await;
    reply.assert_ok();
    assert_eq!(
        sse_data(&reply.body).last().map(String::as_str),
        Some("[DONE]")
    );
    let chunks = sse_chunks(&reply.body);
    let text = sse_content(&reply.body);
    assert_eq!(text, "one two three four");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    let usage = chunks
        .iter()
        .find(|c| c["usage"].is_object())
        .expect("a usage chunk");
    assert!(
        usage["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{usage}"
    );
    assert_eq!(
        llm.requests()[0].path,
        "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"
    );
}

#[tokio::test]
async fn function_calls_and_safety_blocks_map_to_openai() {
    let (proxy, llm) = gemini_proxy().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "additionalProperties": false, "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let reply = proxy
        .chat(
            json!({"model": "", "tools": tools, "tool_choice": "required",
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}]}),
        )
        .await;
    reply.assert_ok();
    let body = reply.json();
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    let call = &body["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args.is_object());
    let sent = llm.requests()[0].json().unwrap();
    assert_eq!(sent["toolConfig"]["functionCallingConfig"]["mode"], "ANY");

    // The result goes back as a functionResponse under the function's name.
    let reply = proxy
        .chat(json!({"model": "", "tools": tools, "messages": [
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
        ]}))
        .await;
    reply.assert_ok();
    let sent = llm.requests()[1].json().unwrap();
    assert_eq!(
        sent["contents"][2]["parts"][0]["functionResponse"]["name"],
        "get_weather"
    );

    let reply = proxy
        .chat(json!({"model": "", "messages": [{"role": "user", "content": "something unsafe"}]}))
        .await;
    reply.assert_ok();
    assert_eq!(
        reply.json()["choices"][0]["finish_reason"],
        "content_filter"
    );
}

#[tokio::test]
async fn a_rate_limited_gemini_fails_over_and_a_refusal_comes_back_in_openais_shape() {
    let gemini = mock("gemini").await;
    let local = mock("local").await;
    let proxy = start_proxy(&gemini_backend(gemini.addr(), Some(local.addr()))).await;
    gemini.push_fault(Fault::status(429));
    let reply = proxy.chat(chat("Reply with exactly: served")).await;
    reply.assert_ok();
    assert_eq!(reply.instance(), "local");
    assert_eq!(gemini.request_count(), 1);

    let (proxy, llm) = gemini_proxy().await;
    llm.push_fault(Fault::status(400));
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
    let reply = proxy
        .chat(
            json!({"model": "", "logprobs": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "unsupported_parameter");
}

#[tokio::test]
async fn an_error_mid_stream_cuts_the_clients_stream_with_an_error_event() {
    let (proxy, llm) = gemini_proxy().await;
    llm.set_fault(Some(Fault::ErrorAfter(2)));
    let reply = proxy
        .chat(json!({"model": "", "stream": true, "messages": [{"role": "user", "content": "Reply with exactly: a b c d e f g h"}]}))
        .await;
    assert_eq!(reply.status, 200);
    let data = sse_data(&reply.body);
    assert_ne!(data.last().map(String::as_str), Some("[DONE]"));
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(
        last["error"]["code"], "upstream_stream_interrupted",
        "{last}"
    );
}

#[tokio::test]
async fn embeddings_are_served_by_batch_embed_contents_in_openais_shape() {
    use base64::Engine as _;
    let (proxy, llm) = gemini_proxy().await;
    let reply = proxy
        .embeddings(json!({"model": "", "input": "hello world", "user": "u-1"}))
        .await;
    reply.assert_ok();
    let body = reply.json();
    let hello = embeddings_of(&body, 1).remove(0);
    assert_eq!(hello.len(), 8, "mock-llm's default size");
    assert_eq!(body["model"], "gemini-test");
    // Gemini's answer counts no tokens.
    assert_eq!(body["usage"]["prompt_tokens"], 0);
    let seen = &llm.requests()[0];
    assert_eq!(seen.path, "/v1beta/models/gemini-test:batchEmbedContents");
    assert_eq!(seen.header("x-goog-api-key"), Some("sk-test-123"));
    assert_eq!(
        seen.json().unwrap(),
        json!({"requests": [{"model": "models/gemini-test", "content": {"parts": [{"text": "hello world"}]}}]})
    );

    // An array, each input its own request, in order, at the asked size.
    let reply = proxy
        .embeddings(json!({"model": "", "input": ["a", "hello world", "c"], "dimensions": 16}))
        .await;
    reply.assert_ok();
    let vectors = embeddings_of(&reply.json(), 3);
    assert!(vectors.iter().all(|v| v.len() == 16));
    assert_ne!(vectors[0], vectors[2]);
    let sent = llm.requests()[1].json().unwrap();
    assert_eq!(sent["requests"][1]["outputDimensionality"], 16);
    assert_eq!(sent["requests"][2]["content"]["parts"][0]["text"], "c");

    // base64: the little-endian f32 bytes of the same vector, as OpenAI writes them.
    let reply = proxy
        .embeddings(json!({"model": "", "input": "hello world", "encoding_format": "base64"}))
        .await;
    assert_eq!(reply.status, 200);
    let encoded = reply.json()["data"][0]["embedding"]
        .as_str()
        .unwrap()
        .to_string();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let expected: Vec<f32> = hello.iter().map(|v| *v as f32).collect();
    assert_eq!(floats, expected);
}

#[tokio::test]
async fn embeddings_gemini_cannot_serve_are_refused_naming_input_and_its_own_limits_come_back() {
    let (proxy, llm) = gemini_proxy().await;
    for (input, code) in [
        (json!(vec!["x"; 2049]), "invalid_request_for_provider"),
        (json!([1, 2, 3]), "unsupported_parameter"),
        (json!([[1, 2], [3]]), "unsupported_parameter"),
        (json!(""), "invalid_request_for_provider"),
        (json!([]), "invalid_request_for_provider"),
    ] {
        let reply = proxy.embeddings(json!({"model": "", "input": input})).await;
        assert_eq!(reply.status, 400);
        assert_eq!(reply.error_code(), code);
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.starts_with("input"), "{message}");
    }
    assert_eq!(llm.request_count(), 0, "nothing was sent");
    // Gemini's own batch limit (100) is Gemini's answer, in OpenAI's shape.
    let reply = proxy
        .embeddings(json!({"model": "", "input": vec!["x"; 101]}))
        .await;
    assert_eq!(reply.status, 400);
    let error = &reply.json()["error"];
    assert_eq!(error["type"], "invalid_request_error");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("at most 100 requests can be in one batch"),
        "{error}"
    );
    // Completions have no Gemini counterpart.
    let reply = proxy
        .post("/v1/completions", json!({"model": "", "prompt": "x"}), &[])
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "unsupported_operation");
}

#[tokio::test]
async fn an_unavailable_gemini_fails_over_for_embeddings_too() {
    let gemini = mock("gemini").await;
    let local = mock("local").await;
    let proxy = start_proxy(&gemini_backend(gemini.addr(), Some(local.addr()))).await;
    gemini.push_fault(Fault::status(503));
    let reply = proxy.embeddings(json!({"model": "", "input": "hi"})).await;
    reply.assert_ok();
    assert_eq!(reply.instance(), "local");
    embeddings_of(&reply.json(), 1);
    assert_eq!(gemini.request_count(), 1);
}

#[tokio::test]
async fn an_embeddings_answer_beyond_the_replay_limit_fails_without_being_held() {
    let llm = mock("gemini").await;
    let limits = agentgateway_proxy::limits::Limits {
        max_response_replay: 16 << 10,
        ..Default::default()
    };
    let proxy = start_proxy_with(&gemini_backend(llm.addr(), None), limits).await;
    let small = proxy.embeddings(json!({"model": "", "input": "x"})).await;
    assert_eq!(small.status, 200);
    // About 3 x 3072 values of ~11 bytes: far beyond 16 KiB.
    let reply = proxy
        .embeddings(json!({"model": "", "input": ["a", "b", "c"], "dimensions": 3072}))
        .await;
    assert_eq!(
        reply.status,
        503,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("larger than 16384 bytes"), "{message}");
}
