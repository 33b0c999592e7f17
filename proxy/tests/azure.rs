//! Azure OpenAI providers: OpenAI's bodies on the deployment's path with `api-version` and the
//! key in `api-key`, against mock-llm's Azure endpoints (which refuse a request without them).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use agentgateway_mock_llm::MockLlm;
use common::*;
use serde_json::json;

async fn azure_proxy(path: Option<&str>) -> (Proxy, MockLlm) {
    let llm = mock("azure").await;
    let path = path
        .map(|p| format!("      path: {p}\n"))
        .unwrap_or_default();
    let yaml = config(&[
        GATEWAY_KEY_SECRET.to_string(),
        format!(
            "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata:\n  name: azure\n  namespace: default\nspec:\n  ai:\n    provider:\n      host: {}\n      port: {}\n{path}      azureopenai:\n        endpoint: my-resource.openai.azure.com\n        deploymentName: gpt-4o-prod\n        apiVersion: 2024-10-21\n      policies:\n        auth:\n          secretRef: {{name: openai-secret}}\n",
            llm.addr().ip(),
            llm.addr().port()
        ),
        route("azure", "azure", None),
    ]);
    (start_proxy(&yaml).await, llm)
}

#[tokio::test]
async fn chat_and_embeddings_go_to_the_deployment_with_api_version_and_api_key() {
    let (proxy, llm) = azure_proxy(None).await;
    let reply = proxy
        .post(
            "/v1/chat/completions?foo=bar",
            chat("Reply with exactly: from azure"),
            &[("authorization", "Bearer client-key")],
        )
        .await;
    reply.assert_ok();
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "from azure"
    );
    let reply = proxy
        .post(
            "/v1/embeddings",
            json!({"model": "", "input": "hello"}),
            &[],
        )
        .await;
    reply.assert_ok();
    assert_eq!(reply.json()["object"], "list");
    let seen = llm.requests();
    assert_eq!(
        seen[0].path,
        "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(seen[0].header("api-key"), Some("sk-test-123"));
    // The gateway's key replaces the client's; the client's never reaches Azure.
    assert_eq!(seen[0].header("authorization"), None);
    assert_eq!(
        seen[1].path,
        "/openai/deployments/gpt-4o-prod/embeddings?api-version=2024-10-21"
    );
}

#[tokio::test]
async fn a_stream_is_passed_as_it_is_with_usage_read() {
    let (proxy, _llm) = azure_proxy(None).await;
    let reply = proxy
        .chat(json!({"model": "", "stream": true, "messages": [{"role": "user", "content": "Reply with exactly: streamed"}]}))
        .await;
    assert_eq!(reply.status, 200);
    let body = String::from_utf8_lossy(&reply.body);
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert!(
        !body.contains("\"usage\""),
        "the usage chunk the proxy asked for is not sent: {body}"
    );
    let metrics = proxy.metrics().await;
    assert!(
        metrics.contains("gen_ai_token_type=\"output\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_provider_path_overrides_chat_and_models_are_listed_by_the_gateway() {
    let (proxy, llm) = azure_proxy(Some("/custom/chat")).await;
    assert_eq!(
        proxy.chat(chat("hi")).await.status,
        404,
        "mock-llm serves no /custom/chat"
    );
    assert_eq!(
        llm.requests()[0].path,
        "/custom/chat?api-version=2024-10-21"
    );
    let reply = proxy
        .send("GET", "/v1/models", bytes::Bytes::new(), &[])
        .await;
    assert_eq!(reply.status, 200, "the gateway lists the models itself");
    assert_eq!(reply.json()["object"], "list");
    assert_eq!(llm.request_count(), 1, "the deployment is not asked");
}
