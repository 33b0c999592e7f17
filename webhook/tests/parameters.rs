#![allow(clippy::unwrap_used)]
//! Admission of `AgentgatewayParameters`: the verdict on every fixture under
//! `tests/fixtures/parameters/{invalid,valid}` (`# expect:` lines, compared exactly), the
//! treatment of unchanged and deleted objects, and both webhooks through the router (the
//! mutating one adds nothing: the operator's flags are the defaults).

mod common;

use agentgateway_webhook::{
    MUTATE_PATH, VALIDATE_PATH, Verdict, router, validate_parameters_object,
};
use common::{fixture, fixtures, state, tagged_lines, yaml_to_json};
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

#[tokio::test]
async fn every_invalid_parameters_fixture_is_denied_with_exactly_its_violations() {
    let cases = fixtures("parameters/invalid", "yaml");
    assert!(cases.len() >= 12, "only {} invalid fixtures", cases.len());
    let mut failures = Vec::new();
    for (name, text) in &cases {
        let expected = tagged_lines(text, "expect");
        assert!(!expected.is_empty(), "{name}: no `# expect:` line");
        let message = format!(
            "AgentgatewayParameters \"team-a/{name}\" is invalid: {}",
            expected.join("; ")
        );
        let verdict = validate_parameters_object(&yaml_to_json(text), None).await;
        if verdict != (Verdict::Denied { message }) {
            failures.push(format!(
                "{name}:\n  expected {expected:#?}\n  got {verdict:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn every_valid_parameters_fixture_is_allowed_without_warnings() {
    let cases = fixtures("parameters/valid", "yaml");
    assert!(cases.len() >= 3, "only {} valid fixtures", cases.len());
    for (name, text) in &cases {
        let verdict = validate_parameters_object(&yaml_to_json(text), None).await;
        assert_eq!(
            verdict,
            Verdict::Allowed {
                warnings: Vec::new()
            },
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_metadata_only_update_of_invalid_stored_parameters_is_allowed_with_a_warning() {
    let stored = yaml_to_json(&fixture("parameters/invalid", "budget-both.yaml"));
    let mut updated = stored.clone();
    updated["metadata"]["annotations"] = json!({"team": "a"});
    let verdict = validate_parameters_object(&updated, Some(&stored)).await;
    let Verdict::Allowed { warnings } = verdict else {
        panic!("an unchanged spec must not block a metadata write: {verdict:?}");
    };
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with("spec is invalid but unchanged: spec.podDisruptionBudget"));
    let mut deleting = stored.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2025-06-01T10:00:00Z");
    assert!(matches!(
        validate_parameters_object(&deleting, None).await,
        Verdict::Allowed { .. }
    ));
}

async fn post(path: &str, file: &str) -> Value {
    let (state, _registry) = state();
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(fixture("reviews", file)))
        .unwrap();
    let response = router(state).oneshot(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    answer["response"].clone()
}

#[tokio::test]
async fn invalid_parameters_are_denied_through_the_router_naming_each_field() {
    let response = post(VALIDATE_PATH, "validate-parameters-create-invalid.json").await;
    assert_eq!(response["uid"], "5c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e44");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 422);
    assert_eq!(
        response["status"]["message"],
        "AgentgatewayParameters \"team-a/gateway-shape\" is invalid: \
         spec.autoscaling: replicas and autoscaling are exclusive: set one of them; \
         spec.pod.labels: \"app.kubernetes.io/name\" selects the proxy pods and is set by the operator"
    );
}

#[tokio::test]
async fn the_mutating_webhook_allows_parameters_unchanged() {
    let response = post(MUTATE_PATH, "mutate-parameters-create.json").await;
    assert_eq!(response["uid"], "6d2e3f40-5b6c-4d7e-9f80-ab1c2d3e4f55");
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none(), "{response}");
}
