#![allow(clippy::unwrap_used)]
//! The validating webhook's verdict on every fixture under `tests/fixtures/{invalid,valid}`. Each
//! invalid manifest lists its violations as `# expect:` lines and each valid one its warnings as
//! `# warning:` lines; both are compared exactly and completely.

mod common;

use std::future::Future;
use std::pin::Pin;

use agentgateway_webhook::{SecretLookup, SecretState, Verdict, validate_object};
use common::{fixture, fixtures, known_secrets, tagged_lines, yaml_to_json};
use serde_json::{Value, json};

#[tokio::test]
async fn every_invalid_fixture_is_denied_with_exactly_its_violations() {
    let cases = fixtures("invalid", "yaml");
    assert!(cases.len() >= 35, "only {} invalid fixtures", cases.len());
    let secrets = known_secrets();
    let mut failures = Vec::new();
    for (name, text) in &cases {
        let expected = tagged_lines(text, "expect");
        assert!(!expected.is_empty(), "{name}: no `# expect:` line");
        let message = format!(
            "AgentgatewayBackend \"team-a/{name}\" is invalid: {}",
            expected.join("; ")
        );
        let verdict = validate_object(&yaml_to_json(text), None, &secrets).await;
        if verdict != (Verdict::Denied { message }) {
            failures.push(format!(
                "{name}:\n  expected {expected:#?}\n  got {verdict:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn every_valid_fixture_is_allowed_with_exactly_its_warnings() {
    let cases = fixtures("valid", "yaml");
    assert!(cases.len() >= 5, "only {} valid fixtures", cases.len());
    let secrets = known_secrets();
    let mut failures = Vec::new();
    for (name, text) in &cases {
        let warnings = tagged_lines(text, "warning");
        let verdict = validate_object(&yaml_to_json(text), None, &secrets).await;
        if verdict != (Verdict::Allowed { warnings }) {
            failures.push(format!("{name}: got {verdict:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn the_tutorial_backends_are_allowed_without_warnings() {
    for file in [
        "local-llm.yaml",
        "llm-pool.yaml",
        "hosted-provider-with-key.yaml",
    ] {
        let object = yaml_to_json(&fixture("valid", file));
        let verdict = validate_object(&object, None, &known_secrets()).await;
        assert_eq!(verdict, Verdict::Allowed { warnings: vec![] }, "{file}");
    }
}

fn with_label(object: &Value) -> Value {
    let mut updated = object.clone();
    updated["metadata"]["finalizers"] = json!(["agentgateway.dev/backend"]);
    updated
}

#[tokio::test]
async fn a_metadata_only_update_of_an_invalid_backend_is_allowed_with_a_warning() {
    let stored = yaml_to_json(&fixture("invalid", "port-zero.yaml"));
    let verdict = validate_object(&with_label(&stored), Some(&stored), &known_secrets()).await;
    assert_eq!(
        verdict,
        Verdict::Allowed {
            warnings: vec![
                "spec is invalid but unchanged: spec.ai.provider.port: must be between 1 and 65535"
                    .to_string()
            ]
        }
    );
}

#[tokio::test]
async fn an_update_that_changes_an_invalid_spec_is_still_denied() {
    let stored = yaml_to_json(&fixture("invalid", "port-zero.yaml"));
    let mut updated = stored.clone();
    updated["spec"]["ai"]["provider"]["host"] = json!("other-host");
    let verdict = validate_object(&updated, Some(&stored), &known_secrets()).await;
    assert!(matches!(verdict, Verdict::Denied { .. }), "{verdict:?}");
}

#[tokio::test]
async fn an_update_differing_only_by_the_defaults_counts_as_unchanged() {
    // Stored while the webhooks were down, so without defaults; the mutating webhook adds them to
    // the finalizer update before the validating one sees it.
    let stored = yaml_to_json(&fixture("invalid", "host-without-port.yaml"));
    let mut updated = with_label(&stored);
    let patch = agentgateway_webhook::default_patch(&updated);
    assert!(!patch.is_empty());
    json_patch::patch(&mut updated, &patch).unwrap();
    let verdict = validate_object(&updated, Some(&stored), &known_secrets()).await;
    assert!(
        matches!(&verdict, Verdict::Allowed { warnings } if warnings.len() == 1),
        "{verdict:?}"
    );
}

#[tokio::test]
async fn an_object_being_deleted_is_allowed_even_when_invalid() {
    let mut object = yaml_to_json(&fixture("invalid", "port-zero.yaml"));
    object["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    let verdict = validate_object(&object, None, &known_secrets()).await;
    assert_eq!(verdict, Verdict::Allowed { warnings: vec![] });
}

/// A lookup that always fails, as an informer cache that has not synced.
struct FailingLookup;

impl SecretLookup for FailingLookup {
    fn secret(
        &self,
        _namespace: &str,
        _name: &str,
    ) -> Pin<Box<dyn Future<Output = SecretState> + Send + '_>> {
        Box::pin(async { SecretState::Unknown })
    }
}

#[tokio::test]
async fn an_unknown_secret_state_gives_no_warning() {
    let object = yaml_to_json(&fixture("valid", "hosted-provider-secret-missing.yaml"));
    let verdict = validate_object(&object, None, &FailingLookup).await;
    assert_eq!(verdict, Verdict::Allowed { warnings: vec![] });
}

#[tokio::test]
async fn a_denial_without_namespace_or_name_still_reads_well() {
    let object = json!({"metadata": {"generateName": "llm-"}, "spec": {"ai": {}}});
    let verdict = validate_object(&object, None, &known_secrets()).await;
    assert_eq!(
        verdict,
        Verdict::Denied {
            message: "AgentgatewayBackend \"llm-\" is invalid: spec.ai: exactly one of provider or groups must be set".to_string()
        }
    );
}
