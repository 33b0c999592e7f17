mod common;

use agentgateway_mock_llm::{Credential, DEFAULT_REPLY, Fault, MockLlm, MockLlmConfig};
use common::{AZURE_CHAT, AZURE_KEY, Client, chat, chat_stream};
use serde_json::{Value, json};

const ACCESS_DENIED: &str = "Access denied due to invalid subscription key or wrong API \
    endpoint. Make sure to provide a valid key for an active subscription and use a correct \
    regional API endpoint for your resource.";

const AZURE_EMBEDDINGS: &str =
    "/openai/deployments/text-embedding-prod/embeddings?api-version=2025-01-01-preview";

async fn start() -> MockLlm {
    MockLlm::start(MockLlmConfig {
        model: "gpt-4o-2024-08-06".into(),
        ..Default::default()
    })
    .await
    .expect("start mock-llm")
}

/// Asserts Azure's error shape (`code` and `message` only) and returns the message.
fn azure_error(resp: &common::Response, status: u16, code: &str) -> String {
    assert_eq!(resp.status, status);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["error"].as_object().map(|o| o.len()), Some(2), "{v}");
    v["error"]["message"].as_str().expect("message").to_owned()
}

#[tokio::test]
async fn chat_answers_openai_shapes_with_the_deployments_model_and_records_the_key() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let resp = client
        .post(AZURE_CHAT, &chat("hello"), &AZURE_KEY)
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("application/json"));
    let v = resp.json();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"), "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(
        v["model"], "gpt-4o-2024-08-06",
        "Azure reports the deployment's model, not the body's `gpt-test`"
    );
    assert_eq!(v["choices"][0]["message"]["content"], DEFAULT_REPLY);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 1);
    assert_eq!(v["usage"]["completion_tokens"], 7);

    let recorded = server.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, AZURE_CHAT);
    assert_eq!(recorded[0].header("api-key"), Some("azure-test-key"));
    assert_eq!(recorded[0].credential, Some(Credential::ApiKey));
    assert_eq!(recorded[0].json().unwrap(), chat("hello"));

    // The plain OpenAI route records no credential.
    client
        .post(
            "/v1/chat/completions",
            &chat("hi"),
            &[("authorization", "Bearer sk")],
        )
        .await
        .unwrap();
    assert_eq!(server.requests()[1].credential, None);
}

#[tokio::test]
async fn streamed_chat_is_openais_and_concatenates_to_the_non_stream_reply() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = chat_stream("Reply with exactly: Hello from Azure", true);
    let resp = client.post(AZURE_CHAT, &body, &AZURE_KEY).await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some("text/event-stream"));
    assert!(resp.complete);
    assert_eq!(resp.sse_data().last().map(String::as_str), Some("[DONE]"));
    let events = resp.sse_json();
    let text: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello from Azure");
    assert!(events.iter().all(|e| e["model"] == "gpt-4o-2024-08-06"));
    assert_eq!(events.last().unwrap()["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn embeddings_match_the_openai_route_and_report_the_configured_model() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let body = json!({"input": ["one two", "three"], "model": "ignored"});
    let azure = client
        .post(AZURE_EMBEDDINGS, &body, &AZURE_KEY)
        .await
        .unwrap();
    assert_eq!(azure.status, 200);
    let azure = azure.json();
    assert_eq!(azure["object"], "list");
    assert_eq!(azure["model"], "gpt-4o-2024-08-06");
    assert_eq!(azure["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        azure["usage"],
        json!({"prompt_tokens": 3, "total_tokens": 3})
    );
    let openai = client
        .post("/v1/embeddings", &body, &[])
        .await
        .unwrap()
        .json();
    assert_eq!(
        azure["data"], openai["data"],
        "the same deterministic vectors"
    );
}

#[tokio::test]
async fn a_key_or_bearer_token_is_required_and_the_accepted_one_is_recorded() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let denied = [
        vec![],
        vec![("api-key", "")],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
        vec![("authorization", "Bearer ")],
        vec![("x-api-key", "not-azure")],
    ];
    for headers in &denied {
        let resp = client.post(AZURE_CHAT, &chat("hi"), headers).await.unwrap();
        assert_eq!(azure_error(&resp, 401, "401"), ACCESS_DENIED, "{headers:?}");
    }

    let bearer = [("Authorization", "Bearer eyJ0eXAiOiJKV1Qi")];
    let resp = client.post(AZURE_CHAT, &chat("hi"), &bearer).await.unwrap();
    assert_eq!(resp.status, 200);
    let both = [AZURE_KEY[0], bearer[0]];
    let resp = client.post(AZURE_CHAT, &chat("hi"), &both).await.unwrap();
    assert_eq!(resp.status, 200);

    let credentials: Vec<_> = server.requests().iter().map(|r| r.credential).collect();
    let mut expected = vec![None; denied.len()];
    expected.extend([Some(Credential::Bearer), Some(Credential::ApiKey)]);
    assert_eq!(credentials, expected, "api-key wins over a bearer token");
}

#[tokio::test]
async fn api_version_is_required_and_must_look_like_a_date() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let base = "/openai/deployments/gpt-4o-prod/chat/completions";
    for path in [
        base.to_owned(),
        format!("{base}?api-version="),
        format!("{base}?x=1"),
    ] {
        let resp = client.post(&path, &chat("hi"), &AZURE_KEY).await.unwrap();
        let msg = azure_error(&resp, 400, "MissingApiVersionParameter");
        assert!(msg.contains("api-version"), "{msg}");
    }
    for bad in ["latest", "2024-13-01", "2024-10-21-beta", "v1"] {
        let path = format!("{base}?api-version={bad}");
        let resp = client.post(&path, &chat("hi"), &AZURE_KEY).await.unwrap();
        let msg = azure_error(&resp, 400, "InvalidApiVersionParameter");
        assert!(msg.contains(&format!("'{bad}'")), "{msg}");
    }
    for good in ["2024-10-21", "2025-04-01-preview"] {
        let path = format!("{base}?foo=bar&api-version={good}");
        let resp = client.post(&path, &chat("hi"), &AZURE_KEY).await.unwrap();
        assert_eq!(resp.status, 200, "{good}");
    }
    // The key is checked first.
    let resp = client.post(base, &chat("hi"), &[]).await.unwrap();
    azure_error(&resp, 401, "401");
}

#[tokio::test]
async fn other_openai_paths_are_azure_404s_and_bad_bodies_openai_400s() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    for path in [
        "/openai/deployments/d/completions?api-version=2024-10-21",
        "/openai/deployments//chat/completions?api-version=2024-10-21",
        "/openai/models?api-version=2024-10-21",
    ] {
        let resp = client.post(path, &chat("hi"), &AZURE_KEY).await.unwrap();
        assert_eq!(
            azure_error(&resp, 404, "404"),
            "Resource not found",
            "{path}"
        );
    }

    // Body errors come from the OpenAI handler, as Azure passes OpenAI's through.
    client
        .send_raw(
            format!("POST {AZURE_CHAT} HTTP/1.1\r\napi-key: k\r\nContent-Length: 5\r\n\r\n{{bad}}")
                .as_bytes(),
        )
        .await
        .unwrap();
    let resp = client.read_response().await.unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn status_faults_use_azures_error_shape() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    server.push_fault(Fault::status(429).with_retry_after("2"));
    let resp = client
        .post(AZURE_CHAT, &chat("hi"), &AZURE_KEY)
        .await
        .unwrap();
    assert_eq!(azure_error(&resp, 429, "429"), "injected fault");
    assert_eq!(resp.header("retry-after"), Some("2"));

    let fault = [
        AZURE_KEY[0],
        ("x-mock-fault", "status=500;body=InternalServerError"),
    ];
    let resp = client.post(AZURE_CHAT, &chat("hi"), &fault).await.unwrap();
    azure_error(&resp, 500, "InternalServerError");

    // Faults come before the key and version checks, on embeddings too.
    server.set_fault(Some(Fault::status(503)));
    let resp = client
        .post(
            "/openai/deployments/e/embeddings",
            &json!({"input": "x"}),
            &[],
        )
        .await
        .unwrap();
    azure_error(&resp, 503, "503");
    server.clear_faults();

    let fault = [AZURE_KEY[0], ("x-mock-fault", "nonsense")];
    let resp = client.post(AZURE_CHAT, &chat("hi"), &fault).await.unwrap();
    let msg = azure_error(&resp, 400, "invalid_fault");
    assert!(msg.contains("unknown fault"), "{msg}");
}

#[tokio::test]
async fn stream_faults_apply_as_on_openai() {
    let server = start().await;
    let mut client = Client::connect(server.addr()).await;
    let fault = [AZURE_KEY[0], ("x-mock-fault", "error-after=2")];
    let resp = client
        .post(AZURE_CHAT, &chat_stream("hi", false), &fault)
        .await
        .unwrap();
    assert!(resp.complete);
    let data = resp.sse_data();
    assert_eq!(data.len(), 3, "{data:?}");
    let error: Value = serde_json::from_str(&data[2]).unwrap();
    assert_eq!(error["error"]["type"], "server_error");

    let fault = [AZURE_KEY[0], ("x-mock-fault", "cut-after=2")];
    let resp = client
        .post(AZURE_CHAT, &chat_stream("hi", false), &fault)
        .await
        .unwrap();
    assert!(!resp.complete);
    assert_eq!(resp.sse_json().len(), 2);
    assert!(client.closed_without_data().await);
}
