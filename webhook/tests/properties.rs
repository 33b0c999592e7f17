#![allow(clippy::unwrap_used)]
//! Property tests: whatever JSON or bytes arrive, nothing panics, every answer is a readable
//! review, and the defaulting patch always applies, only adds, and is idempotent.

mod common;

use std::sync::LazyLock;

use agentgateway_webhook::{Verdict, default_patch, router, validate_object};
use http_body_util::BodyExt;
use json_patch::PatchOperation;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

/// The API's own field names, so random objects often hit real code paths, mixed with junk
/// (including `~` and `/`, which JSON pointers must escape).
fn field_name() -> impl Strategy<Value = String> {
    let real = prop::sample::select(vec![
        "spec",
        "ai",
        "provider",
        "groups",
        "providers",
        "name",
        "host",
        "port",
        "path",
        "openai",
        "anthropic",
        "gemini",
        "azureopenai",
        "bedrock",
        "vertexai",
        "model",
        "policies",
        "auth",
        "secretRef",
        "key",
        "namespace",
        "tls",
        "sni",
        "caCertificateRef",
        "timeouts",
        "request",
        "connect",
        "health",
        "eviction",
        "duration",
        "consecutiveFailures",
        "maxDuration",
        "retry",
        "attempts",
        "metadata",
        "deletionTimestamp",
        "endpoint",
        "deploymentName",
        "apiVersion",
        "region",
        "projectId",
        "insecureSkipVerify",
    ])
    .prop_map(str::to_string);
    prop_oneof![4 => real, 1 => "[a-zA-Z~/]{0,6}"]
}

/// Scalars, weighted towards values the rules care about (hosts, durations, ports).
fn scalar() -> impl Strategy<Value = Value> {
    let interesting = prop::sample::select(vec![
        "10s",
        "0s",
        "1m30s",
        "500ms",
        "10",
        "1d",
        "-1s",
        "::1",
        "[::1]",
        "x.",
        "a..b",
        "http://x",
        "host.docker.internal",
        "",
        " ",
        "Authorization",
        "a/b",
        "Bad_Name",
        "openai-secret",
        "2025-01-01T00:00:00Z",
    ])
    .prop_map(Value::from);
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-70000i64..70000).prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1.0e9f64..1.0e9).prop_map(|f| json!(f)),
        ".{0,16}".prop_map(Value::from),
        interesting,
    ]
}

/// Arbitrary JSON, up to 10 levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(10, 256, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A provider-shaped object: real keys with arbitrary values.
fn provider() -> impl Strategy<Value = Value> {
    prop::collection::vec((field_name(), any_json()), 0..6).prop_map(|entries| {
        let mut provider: Map<String, Value> = entries.into_iter().collect();
        provider.entry("openai").or_insert(json!({}));
        Value::Object(provider)
    })
}

/// A policies-shaped object: mostly right structure, arbitrary leaves.
fn policies() -> impl Strategy<Value = Value> {
    (any_json(), any_json(), any_json(), any_json(), any_json()).prop_map(
        |(secret_ref, request, duration, max, attempts)| {
            json!({
                "auth": {"secretRef": secret_ref},
                "timeouts": {"request": request},
                "health": {"eviction": {"duration": duration, "maxDuration": max}},
                "retry": {"attempts": attempts},
            })
        },
    )
}

/// An `AgentgatewayBackend`-shaped object with arbitrary parts.
fn backend_like() -> impl Strategy<Value = Value> {
    let groups = prop::collection::vec(prop::collection::vec((provider(), policies()), 0..4), 0..4)
        .prop_map(|groups| {
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|providers| {
                    let providers: Vec<Value> = providers
                        .into_iter()
                        .map(|(mut p, policies)| {
                            p["policies"] = policies;
                            p
                        })
                        .collect();
                    json!({"providers": providers})
                })
                .collect();
            json!({"groups": groups})
        });
    let single = (provider(), policies()).prop_map(|(mut p, policies)| {
        p["policies"] = policies;
        json!({"provider": p})
    });
    let ai = prop_oneof![groups, single, any_json()];
    let spec_policies = prop_oneof![policies(), any_json()];
    (ai, spec_policies, any_json()).prop_map(|(ai, policies, extra)| {
        json!({
            "apiVersion": "agentgateway.dev/v1alpha1",
            "kind": "AgentgatewayBackend",
            "metadata": {"name": "b", "namespace": "team-a"},
            "spec": {"ai": ai, "policies": policies, "extra": extra},
        })
    })
}

fn any_object() -> impl Strategy<Value = Value> {
    prop_oneof![backend_like(), any_json()]
}

/// Checks the defaulting properties on one object.
fn check_patch(object: &Value) -> Result<(), TestCaseError> {
    let patch = default_patch(object);
    for op in patch.iter() {
        let PatchOperation::Add(add) = op else {
            return Err(TestCaseError::fail(format!("not an add: {op:?}")));
        };
        let existing = object.pointer(add.path.as_str());
        prop_assert!(
            existing.is_none_or(Value::is_null),
            "{} replaced {existing:?}",
            add.path
        );
    }
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch)
        .map_err(|e| TestCaseError::fail(format!("patch does not apply: {e}")))?;
    prop_assert!(default_patch(&patched).is_empty(), "not idempotent");
    Ok(())
}

async fn answer(body: Vec<u8>) -> Value {
    let (state, _registry) = common::state();
    let request = http::Request::post(agentgateway_webhook::VALIDATE_PATH)
        .body(axum::body::Body::from(body))
        .unwrap();
    let response = router(state).oneshot(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn review_of(object: Value) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "kind": {"group": "agentgateway.dev", "version": "v1alpha1", "kind": "AgentgatewayBackend"},
            "resource": {"group": "agentgateway.dev", "version": "v1alpha1", "resource": "agentgatewaybackends"},
            "name": "b",
            "namespace": "team-a",
            "operation": "CREATE",
            "userInfo": {},
            "object": object,
        }
    })
    .to_string()
    .into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validation_answers_every_object(object in any_object()) {
        let verdict = RUNTIME.block_on(validate_object(&object, None, &common::known_secrets()));
        if let Verdict::Denied { message } = verdict {
            prop_assert!(message.starts_with("AgentgatewayBackend \""), "{message}");
        }
    }

    #[test]
    fn validation_of_an_update_answers_every_pair(old in any_object(), new in any_object()) {
        RUNTIME.block_on(validate_object(&new, Some(&old), &common::known_secrets()));
    }

    #[test]
    fn the_defaulting_patch_applies_only_adds_and_is_idempotent(object in any_object()) {
        check_patch(&object)?;
    }

    #[test]
    fn arbitrary_bytes_get_a_malformed_review(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let review = RUNTIME.block_on(answer(body));
        prop_assert_eq!(&review["response"]["allowed"], &json!(false));
        prop_assert_eq!(&review["response"]["status"]["code"], &json!(400));
    }

    #[test]
    fn any_object_in_a_review_gets_an_answer_with_its_uid(object in any_object()) {
        let review = RUNTIME.block_on(answer(review_of(object)));
        prop_assert_eq!(&review["response"]["uid"], &json!("u"));
        prop_assert!(review["response"]["allowed"].is_boolean());
    }
}

#[test]
fn deeply_nested_input_is_answered_not_crashed() {
    let mut deep = json!("leaf");
    for _ in 0..120 {
        deep = json!({"spec": {"ai": deep}});
    }
    check_patch(&deep).unwrap();
    RUNTIME.block_on(validate_object(&deep, None, &common::known_secrets()));
    let nested = RUNTIME.block_on(answer(review_of(deep)));
    // Past serde_json's nesting limit the body is refused as malformed, still with an answer.
    assert_eq!(nested["response"]["allowed"], false);
    let too_deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let brackets = RUNTIME.block_on(answer(too_deep.into_bytes()));
    assert_eq!(brackets["response"]["status"]["code"], 400);
}
