//! Vertex AI providers behind the OpenAI endpoint: the proxy obtains an access token from the
//! service-account key (a JWT-bearer grant that mock-llm verifies with the key's public half),
//! caches and refreshes it, and serves Gemini models through the Google publisher and Claude
//! models through the Anthropic publisher, answering in OpenAI's shape.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use agentgateway_mock_llm::{Credential, MockLlm, MockLlmConfig, ServiceAccountKey};
use common::*;
use serde_json::json;

const KEY: &str = include_str!("../../mock-llm/testdata/vertex-service-account.json");

async fn vertex_mock(ttl: Duration) -> MockLlm {
    MockLlm::start(MockLlmConfig {
        name: "vertex".into(),
        vertex_service_account: Some(ServiceAccountKey::from_json(KEY).unwrap()),
        vertex_token_ttl: ttl,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// The test key with its `token_uri` at `llm`, as a Secret, and backend `vertex` serving `model`.
fn vertex_config(llm: &MockLlm, model: &str, key: &str) -> String {
    let mut key: serde_json::Value = serde_json::from_str(key).unwrap();
    key["token_uri"] = llm.token_url().into();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: vertex-sa, namespace: default}}\nstringData:\n  service-account.json: {}\n",
        serde_json::to_string(&key.to_string()).unwrap()
    );
    let backend = format!(
        "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata: {{name: vertex, namespace: default}}\nspec:\n  ai:\n    provider:\n      host: {}\n      port: {}\n      vertexai: {{projectId: agw-test-project, region: europe-west4, model: '{model}'}}\n      policies: {{auth: {{gcp: {{secretRef: {{name: vertex-sa}}}}}}}}\n",
        llm.addr().ip(),
        llm.addr().port()
    );
    config(&[secret, backend, route("vertex", "vertex", None)])
}

fn content(reply: &Reply) -> String {
    reply.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn gemini_models_use_the_google_publisher_with_one_cached_token() {
    let llm = vertex_mock(Duration::from_secs(3599)).await;
    let proxy = start_proxy(&vertex_config(&llm, "gemini-2.0-flash", KEY)).await;
    for i in 0..3 {
        let reply = proxy
            .chat(chat(&format!("Reply with exactly: vertex {i}")))
            .await;
        reply.assert_ok();
        assert_eq!(content(&reply), format!("vertex {i}"));
    }
    assert_eq!(llm.token_grants(), 1, "the token is cached");
    let seen = llm.requests();
    let calls: Vec<_> = seen.iter().filter(|r| r.vertex.is_some()).collect();
    assert_eq!(calls.len(), 3);
    let call = calls[0].vertex.as_ref().unwrap();
    assert_eq!(
        (
            call.project.as_str(),
            call.region.as_str(),
            call.publisher.as_str(),
            call.model.as_str(),
            call.method.as_str()
        ),
        (
            "agw-test-project",
            "europe-west4",
            "google",
            "gemini-2.0-flash",
            "generateContent"
        )
    );
    assert_eq!(
        calls[0].credential,
        Some(Credential::Bearer),
        "the mock accepted the token"
    );

    let reply = proxy
        .chat(json!({"model": "", "stream": true,
            "messages": [{"role": "user", "content": "Reply with exactly: streamed vertex"}]}))
        .await;
    assert_eq!(reply.status, 200);
    let text = sse_content(&reply.body);
    assert_eq!(text, "streamed vertex");
    let last = llm.requests().into_iter().last().unwrap();
    assert_eq!(last.vertex.unwrap().method, "streamGenerateContent");
    assert!(last.path.ends_with("?alt=sse"), "{}", last.path);
}

#[tokio::test]
async fn claude_models_use_the_anthropic_publisher_in_messages_format() {
    let llm = vertex_mock(Duration::from_secs(3599)).await;
    let proxy = start_proxy(&vertex_config(&llm, "claude-3-5-haiku@20241022", KEY)).await;
    let reply = proxy
        .chat(chat("Reply with exactly: claude on vertex"))
        .await;
    reply.assert_ok();
    assert_eq!(content(&reply), "claude on vertex");
    let reply = proxy
        .chat(
            json!({"model": "", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Reply with exactly: streamed claude"}]}),
        )
        .await;
    reply.assert_ok();
    let chunks = sse_chunks(&reply.body);
    let text = sse_content(&reply.body);
    assert_eq!(text, "streamed claude");
    assert!(
        chunks
            .iter()
            .any(|c| c["usage"]["completion_tokens"].as_u64() > Some(0))
    );
    let calls: Vec<_> = llm
        .requests()
        .into_iter()
        .filter(|r| r.vertex.is_some())
        .collect();
    let methods: Vec<_> = calls
        .iter()
        .map(|r| r.vertex.as_ref().unwrap().method.clone())
        .collect();
    assert_eq!(methods, ["rawPredict", "streamRawPredict"]);
    let sent = calls[0].json().unwrap();
    assert_eq!(sent["anthropic_version"], "vertex-2023-10-16");
    assert!(sent.get("model").is_none());
    assert_eq!(calls[0].vertex.as_ref().unwrap().publisher, "anthropic");
}

#[tokio::test]
async fn the_token_is_refreshed_before_it_expires_without_a_failed_request() {
    // A 4 s token: refreshed once 1 s of it remains, no longer used in its last 0.4 s.
    let llm = vertex_mock(Duration::from_secs(4)).await;
    let proxy = start_proxy(&vertex_config(&llm, "gemini-2.0-flash", KEY)).await;
    assert_eq!(proxy.chat(chat("Reply with exactly: a")).await.status, 200);
    assert_eq!(llm.token_grants(), 1);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    // In the refresh window: served with the current token while a new one is obtained.
    assert_eq!(proxy.chat(chat("Reply with exactly: b")).await.status, 200);
    for _ in 0..50 {
        if llm.token_grants() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(llm.token_grants(), 2, "refreshed in the background");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // The first token has expired at the mock; the refreshed one serves.
    assert_eq!(proxy.chat(chat("Reply with exactly: c")).await.status, 200);
    assert_eq!(llm.token_grants(), 2);
}

#[tokio::test]
async fn a_revoked_token_is_dropped_and_the_next_request_gets_a_new_one() {
    let llm = vertex_mock(Duration::from_secs(3599)).await;
    let proxy = start_proxy(&vertex_config(&llm, "gemini-2.0-flash", KEY)).await;
    assert_eq!(proxy.chat(chat("Reply with exactly: a")).await.status, 200);
    llm.expire_vertex_tokens();
    // Refused with the gateway's credential: the client is not at fault, and the token is dropped.
    let reply = proxy.chat(chat("Reply with exactly: b")).await;
    assert_eq!(
        reply.status,
        502,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.error_code(), "upstream_credentials_rejected");
    assert_eq!(llm.token_grants(), 1);
    // The eviction is the default 5 s; a new config (same key) keeps the provider, so wait it out
    // by polling: the next served request obtained a new token.
    proxy
        .wait_for(chat("Reply with exactly: c"), |r| r.status == 200)
        .await;
    assert_eq!(llm.token_grants(), 2);
}

#[tokio::test]
async fn a_grant_the_token_endpoint_refuses_is_a_credentials_failure_naming_the_endpoint() {
    let llm = vertex_mock(Duration::from_secs(3599)).await;
    // Another key signs the grant: the mock refuses it as invalid_grant.
    let mut other: serde_json::Value = serde_json::from_str(KEY).unwrap();
    other["client_email"] = "intruder@agw-test-project.iam.gserviceaccount.com".into();
    let proxy = start_proxy(&vertex_config(&llm, "gemini-2.0-flash", &other.to_string())).await;
    let reply = proxy.chat(chat("hi")).await;
    assert_eq!(
        reply.status,
        502,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.error_code(), "upstream_credentials_rejected");
    let text = String::from_utf8_lossy(&reply.body);
    assert!(text.contains("token endpoint refused the grant"), "{text}");
    assert!(!text.contains("PRIVATE KEY"));
    assert!(
        llm.requests().iter().all(|r| r.vertex.is_none()),
        "no model call without a token"
    );
}

#[tokio::test]
async fn google_embedding_models_are_served_by_predict_with_usage_counted() {
    let llm = vertex_mock(Duration::from_secs(3599)).await;
    let proxy = start_proxy(&vertex_config(&llm, "text-embedding-005", KEY)).await;
    let reply = proxy
        .embeddings(json!({"model": "", "input": "hello vertex world"}))
        .await;
    reply.assert_ok();
    let body = reply.json();
    assert_eq!(embeddings_of(&body, 1)[0].len(), 8);
    assert_eq!(body["model"], "text-embedding-005");
    assert_eq!(body["usage"]["prompt_tokens"], 3, "the token_count");

    let reply = proxy
        .embeddings(json!({"model": "", "input": ["one two", "three"], "dimensions": 32}))
        .await;
    reply.assert_ok();
    let body = reply.json();
    let vectors = embeddings_of(&body, 2);
    assert!(vectors.iter().all(|v| v.len() == 32));
    assert_eq!(
        body["usage"]["prompt_tokens"], 3,
        "the sum of the token_counts"
    );
    let calls: Vec<_> = llm
        .requests()
        .into_iter()
        .filter(|r| r.vertex.is_some())
        .collect();
    assert_eq!(calls.len(), 2);
    let call = calls[1].vertex.as_ref().unwrap();
    assert_eq!(
        (
            call.publisher.as_str(),
            call.model.as_str(),
            call.method.as_str()
        ),
        ("google", "text-embedding-005", "predict")
    );
    assert_eq!(calls[1].credential, Some(Credential::Bearer));
    assert_eq!(
        calls[1].json().unwrap(),
        json!({"instances": [{"content": "one two"}, {"content": "three"}], "parameters": {"outputDimensionality": 32}})
    );
    assert_eq!(llm.token_grants(), 1, "the chat token serves embeddings");
    let metrics = proxy.metrics().await;
    assert_eq!(input_tokens(&metrics, "vertex"), 6.0, "{metrics}");
}

#[tokio::test]
async fn embeddings_on_claude_models_and_refusals_of_vertex_come_back_in_openais_shape() {
    let llm = vertex_mock(Duration::from_secs(3599)).await;
    let proxy = start_proxy(&vertex_config(&llm, "claude-3-5-haiku@20241022", KEY)).await;
    let reply = proxy.embeddings(json!({"model": "", "input": "x"})).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "unsupported_operation");
    assert!(
        llm.requests().iter().all(|r| r.vertex.is_none()),
        "no model call"
    );

    // A Google model without embeddings: Vertex AI's refusal, in OpenAI's shape.
    let llm = vertex_mock(Duration::from_secs(3599)).await;
    let proxy = start_proxy(&vertex_config(&llm, "gemini-2.0-flash", KEY)).await;
    let reply = proxy.embeddings(json!({"model": "", "input": "x"})).await;
    assert_eq!(reply.status, 400);
    let error = &reply.json()["error"];
    assert_eq!(error["type"], "invalid_request_error", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("embedding models only"),
        "{error}"
    );
    let reply = proxy
        .embeddings(json!({"model": "", "input": [5, 6]}))
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.error_code(), "unsupported_parameter");
}
