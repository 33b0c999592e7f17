#![allow(clippy::unwrap_used)]
//! The router in-process, driven with AdmissionReview fixtures from `tests/fixtures/reviews`.

mod common;

use agentgateway_webhook::{HEALTH_PATH, MUTATE_PATH, VALIDATE_PATH, router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{fixture, state};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// POSTs `body` to `path` and returns the HTTP status and the JSON answer.
async fn post(path: &str, body: impl Into<axum::body::Body>) -> (StatusCode, Value) {
    let (state, _registry) = state();
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(body.into())
        .unwrap();
    let response = router(state).oneshot(request).await.unwrap();
    let status = response.status();
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "{path}"
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn review(path: &str, file: &str) -> Value {
    let (status, answer) = post(path, fixture("reviews", file)).await;
    assert_eq!(status, StatusCode::OK, "{file}");
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{file}");
    assert_eq!(answer["kind"], "AdmissionReview", "{file}");
    answer["response"].clone()
}

#[tokio::test]
async fn a_valid_backend_is_allowed_and_the_uid_echoed() {
    let response = review(VALIDATE_PATH, "validate-create-valid.json").await;
    assert_eq!(response["uid"], "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4");
    assert_eq!(response["allowed"], true);
    assert!(response.get("warnings").is_none(), "{response}");
}

#[tokio::test]
async fn an_invalid_backend_is_denied_with_every_field_and_code_422() {
    let response = review(VALIDATE_PATH, "validate-create-invalid.json").await;
    assert_eq!(response["uid"], "1f0e3b6a-6c1d-4f0e-9a55-3b8e1c2d4a10");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 422);
    assert_eq!(response["status"]["reason"], "Invalid");
    assert_eq!(
        response["status"]["message"],
        "AgentgatewayBackend \"agentgateway-system/llm-pool\" is invalid: \
         spec.ai.groups[0].providers[0].host: must be a DNS-1123 hostname or an IP address, without scheme, port, path or whitespace; \
         spec.ai.groups[0].providers[1].port: must be between 1 and 65535; \
         spec.ai.groups[0].providers[2].name: required"
    );
}

#[tokio::test]
async fn a_metadata_only_update_of_an_invalid_backend_is_allowed_with_a_warning() {
    let response = review(VALIDATE_PATH, "validate-update-unchanged-invalid.json").await;
    assert_eq!(response["allowed"], true);
    let warnings = response["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .starts_with("spec is invalid but unchanged: spec.ai.groups[0].providers[0].host:"),
        "{warnings:?}"
    );
}

#[tokio::test]
async fn a_missing_secret_is_a_warning_in_the_requests_namespace() {
    // The object carries no namespace (as on a CREATE by URL); the request's namespace is used.
    let response = review(VALIDATE_PATH, "validate-create-missing-secret.json").await;
    assert_eq!(response["allowed"], true);
    assert_eq!(
        response["warnings"],
        json!([
            "spec.ai.provider.policies.auth.secretRef: Secret \"team-a/not-applied-yet\" not found; the backend stays Accepted=False until it exists"
        ])
    );
}

#[tokio::test]
async fn a_body_that_is_not_json_gets_a_malformed_answer_not_an_http_error() {
    let (status, answer) = post(VALIDATE_PATH, fixture("reviews", "not-json.txt")).await;
    assert_eq!(status, StatusCode::OK);
    let response = &answer["response"];
    assert_eq!(response["allowed"], false);
    assert_eq!(response["uid"], "");
    assert_eq!(response["status"]["code"], 400);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("malformed AdmissionReview: not JSON: "),
        "{message}"
    );
}

#[tokio::test]
async fn a_review_without_a_request_is_malformed() {
    for path in [VALIDATE_PATH, MUTATE_PATH] {
        let response = review(path, "no-request.json").await;
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 400);
        assert_eq!(
            response["status"]["message"],
            "malformed AdmissionReview: no request"
        );
    }
}

#[tokio::test]
async fn json_that_is_not_an_admission_review_is_malformed() {
    let response = review(VALIDATE_PATH, "not-a-review.json").await;
    assert_eq!(response["allowed"], false);
    assert_eq!(
        response["status"]["message"],
        "malformed AdmissionReview: expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got \"v1\" and \"ConfigMap\""
    );
}

#[tokio::test]
async fn a_request_with_a_broken_field_is_malformed_and_keeps_its_uid() {
    let mut body: Value =
        serde_json::from_str(&fixture("reviews", "validate-create-valid.json")).unwrap();
    body["request"]["operation"] = json!("EXPLODE");
    let (_, answer) = post(VALIDATE_PATH, body.to_string()).await;
    let response = &answer["response"];
    assert_eq!(response["allowed"], false);
    assert_eq!(response["uid"], "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4");
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message
            .starts_with("malformed AdmissionReview: request.operation: unknown variant `EXPLODE`"),
        "{message}"
    );
}

#[tokio::test]
async fn an_oversized_body_is_answered_as_a_malformed_review() {
    let body = vec![b' '; 3 * 1024 * 1024];
    let (status, answer) = post(VALIDATE_PATH, body).await;
    assert_eq!(status, StatusCode::OK);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("malformed AdmissionReview: failed to read the body"),
        "{message}"
    );
}

#[tokio::test]
async fn another_kind_is_denied_naming_both_kinds() {
    let response = review(VALIDATE_PATH, "validate-wrong-kind.json").await;
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    assert_eq!(
        response["status"]["message"],
        "this webhook admits agentgateway.dev/v1alpha1 AgentgatewayBackend, AgentgatewayPolicy and AgentgatewayParameters, not /v1 ConfigMap"
    );
}

#[tokio::test]
async fn a_delete_is_allowed_even_of_an_invalid_backend() {
    let response = review(VALIDATE_PATH, "validate-delete.json").await;
    assert_eq!(response["uid"], "5d0f2143-4e50-4f61-b273-8d9e0f1a2b34");
    assert_eq!(response["allowed"], true);
}

#[tokio::test]
async fn mutate_returns_the_defaults_as_a_base64_json_patch() {
    let response = review(MUTATE_PATH, "mutate-create.json").await;
    assert_eq!(response["uid"], "6e102354-5f61-4072-8384-9e0f1a2b3c45");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let patch = BASE64
        .decode(
            response["patch"]
                .as_str()
                .expect("patch is a base64 string"),
        )
        .unwrap();
    let ops: Value = serde_json::from_slice(&patch).unwrap();
    let paths: Vec<&str> = ops
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            assert_eq!(op["op"], "add");
            op["path"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        paths,
        [
            "/spec/policies",
            "/spec/policies/timeouts",
            "/spec/policies/timeouts/request",
            "/spec/policies/timeouts/connect",
            "/spec/policies/health",
            "/spec/policies/health/eviction",
            "/spec/policies/health/eviction/duration",
            "/spec/policies/health/eviction/consecutiveFailures",
            "/spec/policies/health/eviction/maxDuration",
            "/spec/policies/retry",
            "/spec/policies/retry/attempts",
            "/spec/ai/provider/policies/auth/secretRef/key",
        ]
    );
    assert_eq!(
        ops[11],
        json!({"op": "add", "path": "/spec/ai/provider/policies/auth/secretRef/key", "value": "Authorization"})
    );
}

#[tokio::test]
async fn mutate_passes_what_it_does_not_understand_unchanged() {
    for file in [
        "mutate-wrong-kind.json",
        "mutate-garbage-object.json",
        "validate-delete.json",
    ] {
        let response = review(MUTATE_PATH, file).await;
        assert_eq!(response["allowed"], true, "{file}");
        assert!(response.get("patch").is_none(), "{file}: {response}");
        assert!(response.get("patchType").is_none(), "{file}: {response}");
    }
}

#[tokio::test]
async fn health_answers_ok() {
    let (state, _registry) = state();
    let request = Request::get(HEALTH_PATH)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = router(state).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], b"ok");
}

#[tokio::test]
async fn each_answer_is_counted_by_webhook_and_result() {
    let (state, registry) = state();
    let app = router(state);
    for (path, file) in [
        (VALIDATE_PATH, "validate-create-valid.json"),
        (VALIDATE_PATH, "validate-create-invalid.json"),
        (VALIDATE_PATH, "not-json.txt"),
        (MUTATE_PATH, "mutate-create.json"),
        (MUTATE_PATH, "mutate-wrong-kind.json"),
    ] {
        let request = Request::post(path)
            .body(axum::body::Body::from(fixture("reviews", file)))
            .unwrap();
        app.clone().oneshot(request).await.unwrap();
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        "agentgateway_webhook_requests_total{webhook=\"validate\",result=\"allowed\"} 1",
        "agentgateway_webhook_requests_total{webhook=\"validate\",result=\"denied\"} 1",
        "agentgateway_webhook_requests_total{webhook=\"validate\",result=\"malformed\"} 1",
        "agentgateway_webhook_requests_total{webhook=\"mutate\",result=\"patched\"} 1",
        "agentgateway_webhook_requests_total{webhook=\"mutate\",result=\"allowed\"} 1",
        "agentgateway_webhook_request_duration_seconds_count{webhook=\"validate\"} 3",
        "agentgateway_webhook_request_duration_seconds_count{webhook=\"mutate\"} 2",
    ] {
        assert!(text.contains(line), "missing {line}\n{text}");
    }
}
