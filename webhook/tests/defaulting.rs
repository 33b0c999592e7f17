#![allow(clippy::unwrap_used)]
//! The mutating webhook's patch: exact operations, only absent fields, idempotent, and never a
//! change of meaning.

mod common;

use agentgateway_webhook::{Verdict, default_patch, validate_object};
use common::{fixture, fixtures, known_secrets, yaml_to_json};
use serde_json::{Value, json};

fn backend(spec: Value) -> Value {
    json!({
        "apiVersion": "agentgateway.dev/v1alpha1",
        "kind": "AgentgatewayBackend",
        "metadata": {"name": "b", "namespace": "team-a"},
        "spec": spec,
    })
}

fn patch_json(object: &Value) -> Value {
    serde_json::to_value(default_patch(object)).unwrap()
}

fn add(path: &str, value: Value) -> Value {
    json!({"op": "add", "path": path, "value": value})
}

fn applied(object: &Value) -> Value {
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &default_patch(object)).unwrap();
    patched
}

#[test]
fn a_backend_without_policies_gets_every_backend_default_with_its_parents_first() {
    let object = yaml_to_json(&fixture("valid", "local-llm.yaml"));
    assert_eq!(
        patch_json(&object),
        json!([
            add("/spec/policies", json!({})),
            add("/spec/policies/timeouts", json!({})),
            add("/spec/policies/timeouts/request", json!("600s")),
            add("/spec/policies/timeouts/connect", json!("10s")),
            add("/spec/policies/health", json!({})),
            add("/spec/policies/health/eviction", json!({})),
            add("/spec/policies/health/eviction/duration", json!("5s")),
            add(
                "/spec/policies/health/eviction/consecutiveFailures",
                json!(1)
            ),
            add("/spec/policies/health/eviction/maxDuration", json!("60s")),
            add("/spec/policies/retry", json!({})),
            add("/spec/policies/retry/attempts", json!(2)),
        ])
    );
}

#[test]
fn a_partly_set_policy_gets_only_the_missing_leaves() {
    let object = backend(json!({
        "ai": {"provider": {"openai": {}}},
        "policies": {"timeouts": {"request": "30s"}, "retry": {"attempts": 0}},
    }));
    assert_eq!(
        patch_json(&object),
        json!([
            add("/spec/policies/timeouts/connect", json!("10s")),
            add("/spec/policies/health", json!({})),
            add("/spec/policies/health/eviction", json!({})),
            add("/spec/policies/health/eviction/duration", json!("5s")),
            add(
                "/spec/policies/health/eviction/consecutiveFailures",
                json!(1)
            ),
            add("/spec/policies/health/eviction/maxDuration", json!("60s")),
        ])
    );
    let patched = applied(&object);
    assert_eq!(patched["spec"]["policies"]["timeouts"]["request"], "30s");
    assert_eq!(patched["spec"]["policies"]["retry"]["attempts"], 0);
}

fn fully_set_backend_policies() -> Value {
    json!({
        "timeouts": {"request": "1m", "connect": "2s"},
        "health": {"eviction": {"duration": "1s", "consecutiveFailures": 4, "maxDuration": "30s"}},
        "retry": {"attempts": 1},
    })
}

#[test]
fn every_secret_ref_without_a_key_gets_the_default_key_and_no_other_provider_field() {
    let object = backend(json!({
        "ai": {"groups": [
            {"providers": [
                {"name": "a", "openai": {}, "policies": {"auth": {"secretRef": {"name": "s"}}}},
                {"name": "b", "openai": {}, "policies": {"auth": {"secretRef": {"name": "s", "key": "mine"}}}},
                {"name": "c", "openai": {}, "policies": {"timeouts": {}}},
            ]},
            {"providers": [
                {"name": "d", "anthropic": {}, "policies": {"auth": {"secretRef": {"name": "t"}}}},
            ]},
        ]},
        "policies": fully_set_backend_policies(),
    }));
    assert_eq!(
        patch_json(&object),
        json!([
            add(
                "/spec/ai/groups/0/providers/0/policies/auth/secretRef/key",
                json!("Authorization")
            ),
            add(
                "/spec/ai/groups/1/providers/0/policies/auth/secretRef/key",
                json!("Authorization")
            ),
        ])
    );
}

#[test]
fn a_service_account_ref_gets_its_default_key_and_aws_refs_have_none_to_get() {
    let object = backend(json!({
        "ai": {"groups": [{"providers": [
            {"name": "v", "vertexai": {"projectId": "my-project", "region": "us-central1"},
             "policies": {"auth": {"gcp": {"secretRef": {"name": "sa"}}}}},
            {"name": "w", "vertexai": {"projectId": "my-project", "region": "us-central1"},
             "policies": {"auth": {"gcp": {"secretRef": {"name": "sa", "key": "k.json"}}}}},
            {"name": "b", "bedrock": {"region": "us-east-1"},
             "policies": {"auth": {"aws": {"secretRef": {"name": "aws"}}}}},
        ]}]},
        "policies": fully_set_backend_policies(),
    }));
    assert_eq!(
        patch_json(&object),
        json!([add(
            "/spec/ai/groups/0/providers/0/policies/auth/gcp/secretRef/key",
            json!("service-account.json")
        )])
    );
}

#[test]
fn the_backend_and_single_provider_secret_refs_get_the_default_key() {
    let mut policies = fully_set_backend_policies();
    policies["auth"] = json!({"secretRef": {"name": "backend-key"}});
    let object = backend(json!({
        "ai": {"provider": {"openai": {}, "policies": {"auth": {"secretRef": {"name": "s"}}}}},
        "policies": policies,
    }));
    assert_eq!(
        patch_json(&object),
        json!([
            add("/spec/policies/auth/secretRef/key", json!("Authorization")),
            add(
                "/spec/ai/provider/policies/auth/secretRef/key",
                json!("Authorization")
            ),
        ])
    );
}

#[test]
fn a_fully_specified_backend_gets_no_patch() {
    let object = yaml_to_json(&fixture("valid", "every-kind-and-policy.yaml"));
    assert_eq!(patch_json(&object), json!([]));
}

#[test]
fn null_counts_as_absent() {
    let mut policies = fully_set_backend_policies();
    policies["retry"] = Value::Null;
    let object = backend(json!({"ai": {"provider": {"openai": {}}}, "policies": policies}));
    assert_eq!(
        patch_json(&object),
        json!([
            add("/spec/policies/retry", json!({})),
            add("/spec/policies/retry/attempts", json!(2)),
        ])
    );
}

#[tokio::test]
async fn an_eviction_default_that_would_contradict_the_users_bound_is_left_out() {
    let long_duration = backend(json!({
        "ai": {"provider": {"openai": {}}},
        "policies": {"health": {"eviction": {"duration": "90s"}}},
    }));
    let short_max = backend(json!({
        "ai": {"provider": {"openai": {}}},
        "policies": {"health": {"eviction": {"maxDuration": "2s"}}},
    }));
    let long = applied(&long_duration);
    let eviction = &long["spec"]["policies"]["health"]["eviction"];
    assert!(eviction.get("maxDuration").is_none(), "{eviction}");
    assert_eq!(eviction["consecutiveFailures"], 1);
    let short = applied(&short_max);
    let eviction = &short["spec"]["policies"]["health"]["eviction"];
    assert!(eviction.get("duration").is_none(), "{eviction}");
    assert_eq!(eviction["maxDuration"], "2s");
    // Writing the plain defaults would have made both invalid (maxDuration < duration).
    for patched in [long, short] {
        let verdict = validate_object(&patched, None, &known_secrets()).await;
        assert_eq!(verdict, Verdict::Allowed { warnings: vec![] }, "{patched}");
    }
}

#[test]
fn unknown_fields_survive_the_patch() {
    let object = backend(json!({
        "ai": {"provider": {"openai": {}, "futureField": {"x": 1}}},
        "policies": {"futurePolicy": true},
        "futureSpec": [1, 2],
    }));
    let patched = applied(&object);
    assert_eq!(
        patched["spec"]["ai"]["provider"]["futureField"],
        json!({"x": 1})
    );
    assert_eq!(patched["spec"]["policies"]["futurePolicy"], json!(true));
    assert_eq!(patched["spec"]["futureSpec"], json!([1, 2]));
}

#[test]
fn objects_without_an_ai_object_get_no_patch() {
    for spec in [
        json!({}),
        json!({"ai": "x"}),
        json!({"ai": null}),
        json!("spec"),
    ] {
        assert_eq!(patch_json(&backend(spec.clone())), json!([]), "{spec}");
    }
    assert_eq!(patch_json(&json!({"metadata": {}})), json!([]));
    assert_eq!(patch_json(&json!(42)), json!([]));
}

#[test]
fn values_of_the_wrong_type_are_left_for_validation() {
    let object = backend(json!({
        "ai": {"provider": {"openai": {}, "policies": {"auth": {"secretRef": "s"}}}},
        "policies": "none",
    }));
    assert_eq!(patch_json(&object), json!([]));
}

#[test]
fn applying_the_patch_then_defaulting_again_gives_an_empty_patch_for_every_fixture() {
    for sub in ["valid", "invalid"] {
        for (name, text) in fixtures(sub, "yaml") {
            let patched = applied(&yaml_to_json(&text));
            assert_eq!(patch_json(&patched), json!([]), "{sub}/{name}");
        }
    }
}

#[tokio::test]
async fn defaulting_never_changes_a_verdict() {
    for sub in ["valid", "invalid"] {
        for (name, text) in fixtures(sub, "yaml") {
            let object = yaml_to_json(&text);
            let before = validate_object(&object, None, &known_secrets()).await;
            let after = validate_object(&applied(&object), None, &known_secrets()).await;
            assert_eq!(
                matches!(before, Verdict::Allowed { .. }),
                matches!(after, Verdict::Allowed { .. }),
                "{sub}/{name}: {before:?} became {after:?}"
            );
        }
    }
}
