//! Bedrock providers behind the OpenAI endpoint: the proxy signs each Converse / ConverseStream
//! call with SigV4 (mock-llm recomputes the signature from the same credentials), decodes the
//! binary event stream and answers in OpenAI's shape; AWS's errors and throttling behave like any
//! provider's.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;

use agentgateway_mock_llm::{AwsCredentials, Credential, Fault, MockLlm, MockLlmConfig};
use common::*;
use serde_json::{Value, json};

const MODEL: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

fn credentials() -> AwsCredentials {
    AwsCredentials::new("AKIDGATEWAYTEST", "gateway/secret+key").with_session_token("session-tok")
}

async fn bedrock_mock(name: &str) -> MockLlm {
    MockLlm::start(MockLlmConfig {
        name: name.into(),
        aws: Some(credentials()),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Backend `bedrock` (one provider at `addr`, signing with `secret_key`), an optional self-hosted
/// group, and its route.
fn bedrock_backend(addr: SocketAddr, secret_key: &str, fallback: Option<SocketAddr>) -> String {
    model_backend(addr, secret_key, fallback, MODEL)
}

/// [`bedrock_backend`] serving `model`.
fn model_backend(
    addr: SocketAddr,
    secret_key: &str,
    fallback: Option<SocketAddr>,
    model: &str,
) -> String {
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: aws, namespace: default}}\nstringData: {{accessKeyId: AKIDGATEWAYTEST, secretAccessKey: '{secret_key}', sessionToken: session-tok}}\n"
    );
    let mut yaml = format!(
        "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata: {{name: bedrock, namespace: default}}\nspec:\n  policies: {{health: {{eviction: {{duration: 30s}}}}}}\n  ai:\n    groups:\n    - providers:\n      - name: bedrock\n        host: {}\n        port: {}\n        bedrock: {{region: eu-west-3, model: '{model}'}}\n        policies: {{auth: {{aws: {{secretRef: {{name: aws}}}}}}}}\n",
        addr.ip(),
        addr.port()
    );
    if let Some(local) = fallback {
        yaml.push_str(&format!(
            "    - providers:\n      - name: local\n        host: {}\n        port: {}\n        openai: {{model: self-hosted}}\n",
            local.ip(),
            local.port()
        ));
    }
    config(&[secret, yaml, route("bedrock", "bedrock", None)])
}

async fn bedrock_proxy() -> (Proxy, MockLlm) {
    let llm = bedrock_mock("bedrock").await;
    let proxy = start_proxy(&bedrock_backend(llm.addr(), "gateway/secret+key", None)).await;
    (proxy, llm)
}

#[tokio::test]
async fn a_chat_completion_is_a_signed_converse_call_answered_in_openais_shape() {
    let (proxy, llm) = bedrock_proxy().await;
    let reply = proxy
        .post(
            "/v1/chat/completions",
            json!({"model": "", "max_tokens": 40, "temperature": 0.3, "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Reply with exactly: hello bedrock"},
            ]}),
            // A client's own AWS headers never reach the provider next to the gateway's signature.
            &[
                ("x-amz-security-token", "client-token"),
                ("authorization", "Bearer client"),
            ],
        )
        .await;
    reply.assert_ok();
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], MODEL);
    assert_eq!(body["choices"][0]["message"]["content"], "hello bedrock");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(
        body["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
        "{body}"
    );

    let seen = &llm.requests()[0];
    assert_eq!(
        seen.credential,
        Some(Credential::SigV4),
        "the mock verified the signature"
    );
    let call = seen.bedrock.as_ref().unwrap();
    assert_eq!(call.model_id, MODEL);
    assert_eq!(call.operation, "converse");
    assert_eq!(call.region.as_deref(), Some("eu-west-3"));
    assert_eq!(seen.header("x-amz-security-token"), Some("session-tok"));
    let sent = seen.json().unwrap();
    assert_eq!(sent["system"][0]["text"], "Be brief.");
    assert_eq!(sent["inferenceConfig"]["maxTokens"], 40);
    assert!(
        sent.get("model").is_none(),
        "the model is in the path: {sent}"
    );
}

#[tokio::test]
async fn a_stream_is_decoded_from_the_event_stream_into_openai_chunks() {
    let (proxy, llm) = bedrock_proxy().await;
    let reply = proxy
        .chat(
            json!({"model": "", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Reply with exactly: one two three four"}]}),
        )
        .await;
    reply.assert_ok();
    assert_eq!(
        reply.headers.get("content-type").unwrap(),
        "text/event-stream"
    );
    let chunks = sse_chunks(&reply.body);
    let content = sse_content(&reply.body);
    assert_eq!(content, "one two three four");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    let usage = chunks.iter().find(|c| c["usage"].is_object()).unwrap();
    assert!(
        usage["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{usage}"
    );
    assert_eq!(
        sse_data(&reply.body).last().map(String::as_str),
        Some("[DONE]")
    );
    let seen = &llm.requests()[0];
    assert_eq!(seen.bedrock.as_ref().unwrap().operation, "converse-stream");
    assert_eq!(seen.credential, Some(Credential::SigV4));
}

#[tokio::test]
async fn tool_calls_round_trip_through_tool_use_blocks() {
    let (proxy, llm) = bedrock_proxy().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    for stream in [false, true] {
        let reply = proxy
            .chat(
                json!({"model": "", "stream": stream, "tools": tools, "tool_choice": "required",
                "messages": [{"role": "user", "content": "Weather in Paris?"}]}),
            )
            .await;
        reply.assert_ok();
        let (name, arguments, finish) = if stream {
            let chunks = sse_chunks(&reply.body);
            let call = chunks
                .iter()
                .find_map(|c| {
                    c["choices"][0]["delta"]["tool_calls"][0]["function"]["name"].as_str()
                })
                .unwrap()
                .to_string();
            let arguments: String = chunks
                .iter()
                .filter_map(|c| {
                    c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
                })
                .collect();
            let finish = chunks
                .iter()
                .find_map(|c| c["choices"][0]["finish_reason"].as_str())
                .unwrap()
                .to_string();
            (call, arguments, finish)
        } else {
            let body = reply.json();
            let call = &body["choices"][0]["message"]["tool_calls"][0]["function"];
            (
                call["name"].as_str().unwrap().to_string(),
                call["arguments"].as_str().unwrap().to_string(),
                body["choices"][0]["finish_reason"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        };
        assert_eq!(name, "get_weather");
        assert!(
            serde_json::from_str::<Value>(&arguments)
                .unwrap()
                .is_object()
        );
        assert_eq!(finish, "tool_calls");
    }
    let sent = llm.requests()[0].json().unwrap();
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
    assert_eq!(sent["toolConfig"]["toolChoice"], json!({"any": {}}));
}

#[tokio::test]
async fn a_wrong_secret_is_the_gateways_credential_rejected_not_the_clients_fault() {
    let llm = bedrock_mock("bedrock").await;
    let proxy = start_proxy(&bedrock_backend(llm.addr(), "not-the-secret", None)).await;
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(
        reply.status,
        502,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.error_code(), "upstream_credentials_rejected");
    assert!(!String::from_utf8_lossy(&reply.body).contains("not-the-secret"));
    assert_eq!(
        llm.requests()[0].credential,
        None,
        "the mock refused the signature"
    );
}

#[tokio::test]
async fn throttling_fails_over_and_errors_come_back_in_openais_shape() {
    let llm = bedrock_mock("bedrock").await;
    let local = mock("local").await;
    let proxy = start_proxy(&bedrock_backend(
        llm.addr(),
        "gateway/secret+key",
        Some(local.addr()),
    ))
    .await;
    llm.set_fault(Some(Fault::status(429)));
    let reply = proxy.chat(chat("Reply with exactly: served")).await;
    reply.assert_ok();
    assert_eq!(reply.instance(), "local");

    // A validation error is the request's fault: AWS's message in OpenAI's shape, not retried.
    let llm = bedrock_mock("bedrock").await;
    let proxy = start_proxy(&bedrock_backend(llm.addr(), "gateway/secret+key", None)).await;
    llm.set_fault(Some(Fault::status(400)));
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(reply.status, 400);
    let body = reply.json();
    assert_eq!(body["error"]["code"], "ValidationException", "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    assert_eq!(llm.request_count(), 1);
}

#[tokio::test]
async fn an_exception_frame_after_content_cuts_the_clients_stream_with_an_error_event() {
    let (proxy, llm) = bedrock_proxy().await;
    llm.set_fault(Some(Fault::ErrorAfter(2)));
    let reply = proxy
        .chat(json!({"model": "", "stream": true,
            "messages": [{"role": "user", "content": "Reply with exactly: a b c d e f g"}]}))
        .await;
    assert_eq!(reply.status, 200);
    let text = String::from_utf8_lossy(&reply.body);
    assert!(text.contains("\"error\""), "{text}");
    assert!(
        !text.contains("[DONE]"),
        "a cut stream never ends as if complete: {text}"
    );
}

const TITAN: &str = "amazon.titan-embed-text-v2:0";

async fn titan_proxy() -> (Proxy, MockLlm) {
    let llm = bedrock_mock("bedrock").await;
    let config = model_backend(llm.addr(), "gateway/secret+key", None, TITAN);
    (start_proxy(&config).await, llm)
}

#[tokio::test]
async fn embeddings_are_a_signed_titan_invoke_answered_in_openais_shape() {
    let (proxy, llm) = titan_proxy().await;
    let reply = proxy
        .embeddings(json!({"model": "", "input": "hello titan world"}))
        .await;
    reply.assert_ok();
    let body = reply.json();
    assert_eq!(embeddings_of(&body, 1)[0].len(), 8);
    assert_eq!(body["model"], TITAN);
    assert_eq!(body["usage"]["prompt_tokens"], 3, "inputTextTokenCount");
    let seen = &llm.requests()[0];
    assert_eq!(
        seen.credential,
        Some(Credential::SigV4),
        "the mock verified the signature"
    );
    let call = seen.bedrock.as_ref().unwrap();
    assert_eq!(
        (call.model_id.as_str(), call.operation.as_str()),
        (TITAN, "invoke")
    );
    assert_eq!(seen.path, "/model/amazon.titan-embed-text-v2%3A0/invoke");
    assert_eq!(
        seen.json().unwrap(),
        json!({"inputText": "hello titan world"})
    );

    // An array of one string, at a Titan size.
    let reply = proxy
        .embeddings(json!({"model": "", "input": ["one two"], "dimensions": 256}))
        .await;
    reply.assert_ok();
    assert_eq!(embeddings_of(&reply.json(), 1)[0].len(), 256);
    assert_eq!(
        llm.requests()[1].json().unwrap(),
        json!({"inputText": "one two", "dimensions": 256})
    );
    let metrics = proxy.metrics().await;
    assert_eq!(input_tokens(&metrics, "bedrock"), 5.0, "{metrics}");
}

#[tokio::test]
async fn titan_embeds_one_text_per_call_and_its_validation_comes_back_in_openais_shape() {
    let (proxy, llm) = titan_proxy().await;
    let reply = proxy
        .embeddings(json!({"model": "", "input": ["a", "b"]}))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "unsupported_parameter");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.starts_with("input:"), "{message}");
    assert!(message.contains("one text per call"), "{message}");
    let reply = proxy
        .embeddings(json!({"model": "", "input": vec!["x"; 2049]}))
        .await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("input")
    );
    assert_eq!(llm.request_count(), 0, "nothing was sent");

    // A size Titan does not make: Bedrock's ValidationException, not retried.
    let reply = proxy
        .embeddings(json!({"model": "", "input": "x", "dimensions": 8}))
        .await;
    assert_eq!(reply.status, 400);
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "ValidationException", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("#/dimensions"),
        "{error}"
    );
    assert_eq!(llm.request_count(), 1);
}
