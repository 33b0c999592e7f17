#![allow(clippy::unwrap_used)]
//! Admission of `AgentgatewayPolicy`: the verdict on every fixture under
//! `tests/fixtures/policies/{invalid,valid}` (`# expect:` and `# warning:` lines, compared exactly),
//! the defaulting patch (only absent fields, idempotent), and both through the router.

mod common;

use agentgateway_webhook::{
    MUTATE_PATH, StaticTargets, VALIDATE_PATH, Verdict, default_policy_patch, router,
    validate_policy_object,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{fixture, fixtures, known_targets, state, tagged_lines, yaml_to_json};
use http::Request;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

#[tokio::test]
async fn every_invalid_policy_fixture_is_denied_with_exactly_its_violations() {
    let cases = fixtures("policies/invalid", "yaml");
    assert!(cases.len() >= 12, "only {} invalid fixtures", cases.len());
    let targets = known_targets();
    let mut failures = Vec::new();
    for (name, text) in &cases {
        let expected = tagged_lines(text, "expect");
        assert!(!expected.is_empty(), "{name}: no `# expect:` line");
        let message = format!(
            "AgentgatewayPolicy \"team-a/{name}\" is invalid: {}",
            expected.join("; ")
        );
        let verdict = validate_policy_object(&yaml_to_json(text), None, &targets).await;
        if verdict != (Verdict::Denied { message }) {
            failures.push(format!(
                "{name}:\n  expected {expected:#?}\n  got {verdict:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn every_valid_policy_fixture_is_allowed_with_exactly_its_warnings() {
    let cases = fixtures("policies/valid", "yaml");
    assert!(cases.len() >= 3, "only {} valid fixtures", cases.len());
    let targets = known_targets();
    let mut failures = Vec::new();
    for (name, text) in &cases {
        let warnings = tagged_lines(text, "warning");
        let verdict = validate_policy_object(&yaml_to_json(text), None, &targets).await;
        if verdict != (Verdict::Allowed { warnings }) {
            failures.push(format!("{name}: got {verdict:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_missing_target_is_never_a_denial() {
    let object = yaml_to_json(&fixture("policies/valid", "missing-targets.yaml"));
    // Nothing exists at all: still allowed, one warning per missing target.
    let verdict = validate_policy_object(&object, None, &StaticTargets::new()).await;
    let Verdict::Allowed { warnings } = verdict else {
        panic!("a missing target must not deny: {verdict:?}");
    };
    assert_eq!(warnings.len(), 3, "{warnings:?}");
}

fn with_annotation(object: &Value) -> Value {
    let mut updated = object.clone();
    updated["metadata"]["annotations"] = json!({"team": "a"});
    updated
}

#[tokio::test]
async fn a_metadata_only_update_of_an_invalid_policy_is_allowed_with_a_warning() {
    let stored = yaml_to_json(&fixture("policies/invalid", "limit-zero.yaml"));
    let verdict =
        validate_policy_object(&with_annotation(&stored), Some(&stored), &known_targets()).await;
    assert_eq!(
        verdict,
        Verdict::Allowed {
            warnings: vec![
                "spec is invalid but unchanged: spec.rateLimit.global[0].requests: must be between 1 and 9007199254740992".into()
            ]
        }
    );
    // The stored spec lacks the defaults the mutating webhook adds: still "unchanged".
    let mut defaulted = with_annotation(&stored);
    json_patch::patch(&mut defaulted, &default_policy_patch(&stored)).unwrap();
    assert_eq!(defaulted["spec"]["failureMode"], "Open");
    let verdict = validate_policy_object(&defaulted, Some(&stored), &known_targets()).await;
    assert!(matches!(verdict, Verdict::Allowed { .. }), "{verdict:?}");
}

#[tokio::test]
async fn a_policy_being_deleted_is_allowed_even_when_invalid() {
    let mut object = yaml_to_json(&fixture("policies/invalid", "nothing-set.yaml"));
    object["metadata"]["deletionTimestamp"] = json!("2025-06-01T10:00:00Z");
    let verdict = validate_policy_object(&object, None, &known_targets()).await;
    assert_eq!(verdict, Verdict::Allowed { warnings: vec![] });
}

fn patch_json(object: &Value) -> Value {
    serde_json::to_value(default_policy_patch(object)).unwrap()
}

fn applied(object: &Value) -> Value {
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &default_policy_patch(object)).unwrap();
    patched
}

fn policy(spec: Value) -> Value {
    json!({
        "apiVersion": "agentgateway.dev/v1alpha1",
        "kind": "AgentgatewayPolicy",
        "metadata": {"name": "p", "namespace": "team-a"},
        "spec": spec,
    })
}

#[test]
fn a_policy_with_api_keys_gets_the_key_field_and_the_failure_mode() {
    let object = policy(json!({
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "llm"}],
        "auth": {"apiKeys": {"secretSelector": {"matchLabels": {"team": "a"}}}},
    }));
    assert_eq!(
        patch_json(&object),
        json!([
            {"op": "add", "path": "/spec/failureMode", "value": "Open"},
            {"op": "add", "path": "/spec/auth/apiKeys/key", "value": "api-key"},
        ])
    );
    // Idempotent: the patched object needs nothing more.
    assert_eq!(patch_json(&applied(&object)), json!([]));
}

#[test]
fn set_fields_are_kept_and_auth_is_never_added() {
    let object = policy(json!({
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}],
        "auth": {"apiKeys": {"secretSelector": {"matchLabels": {"team": "a"}}, "key": "token"}},
        "failureMode": "Closed",
    }));
    assert_eq!(patch_json(&object), json!([]));
    let limits_only = policy(json!({
        "targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}],
        "rateLimit": {"local": [{"requests": 1, "per": "Second", "key": "route"}]},
    }));
    let patched = applied(&limits_only);
    assert!(patched["spec"].get("auth").is_none(), "{patched}");
    assert_eq!(patched["spec"]["failureMode"], "Open");
}

#[test]
fn what_is_not_an_object_is_left_for_validation_to_refuse() {
    for object in [
        json!({"kind": "AgentgatewayPolicy"}),
        json!({"spec": "everything"}),
        policy(json!({"auth": {"apiKeys": "all"}})),
    ] {
        let patched = applied(&object);
        assert_eq!(
            patched.pointer("/spec/auth/apiKeys"),
            object.pointer("/spec/auth/apiKeys")
        );
    }
    assert_eq!(patch_json(&json!({"spec": []})), json!([]));
}

#[test]
fn every_fixture_is_still_valid_after_defaulting_and_defaulting_is_idempotent() {
    for (name, text) in fixtures("policies/valid", "yaml") {
        let object = yaml_to_json(&text);
        let patched = applied(&object);
        assert_eq!(patch_json(&patched), json!([]), "{name}");
        let spec: agentgateway_crds::policy::AgentgatewayPolicySpec =
            serde_json::from_value(patched["spec"].clone()).unwrap();
        assert!(
            agentgateway_crds::validation::validate_policy_spec(&spec).is_empty(),
            "{name}"
        );
    }
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
async fn an_invalid_policy_is_denied_through_the_router_naming_each_field() {
    let response = post(VALIDATE_PATH, "validate-policy-create-invalid.json").await;
    assert_eq!(response["uid"], "8b2f4c6d-1a3e-4f50-9c7b-2d4e6f8a0b11");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 422);
    assert_eq!(response["status"]["reason"], "Invalid");
    assert_eq!(
        response["status"]["message"],
        "AgentgatewayPolicy \"team-a/team-limits\" is invalid: \
         spec.targetRefs[1]: duplicates an earlier target; \
         spec.rateLimit.global[0].requests: must be between 1 and 9007199254740992"
    );
}

#[tokio::test]
async fn a_missing_target_is_a_warning_in_the_requests_namespace() {
    // The object carries no namespace (a CREATE by URL): the request's namespace is used.
    let response = post(VALIDATE_PATH, "validate-policy-create-missing-target.json").await;
    assert_eq!(response["allowed"], true);
    assert_eq!(
        response["warnings"],
        json!([
            "spec.targetRefs[0]: HTTPRoute \"team-a/not-applied-yet\" not found; the policy stays Accepted=False (TargetNotFound) for it until it exists"
        ])
    );
}

#[tokio::test]
async fn mutate_returns_the_policy_defaults_as_a_base64_json_patch() {
    let response = post(MUTATE_PATH, "mutate-policy-create.json").await;
    assert_eq!(response["uid"], "ad4b6e8f-3c50-4172-9e9d-4f6a8b0c2d33");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    let patch = BASE64.decode(response["patch"].as_str().unwrap()).unwrap();
    let ops: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        ops,
        json!([
            {"op": "add", "path": "/spec/failureMode", "value": "Open"},
            {"op": "add", "path": "/spec/auth/apiKeys/key", "value": "api-key"},
        ])
    );
}

#[tokio::test]
async fn a_policy_body_that_is_not_json_is_answered_not_failed() {
    let (state, _registry) = state();
    let request = Request::post(VALIDATE_PATH)
        .body(axum::body::Body::from("{\"kind\": \"AgentgatewayPolicy\""))
        .unwrap();
    let response = router(state).oneshot(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("malformed AdmissionReview: not JSON: "),
        "{message}"
    );
}
