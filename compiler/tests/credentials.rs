//! Provider keys: Secrets and inline keys become credentials by id; the config never holds a key.

mod common;

use agentgateway_compiler::{Reason, backend_problems, compile_standalone};
use agentgateway_crds::proxy_config::Credentials;
use common::{compile_error, parse, parse_fixture};

fn expected_credentials() -> Credentials {
    [
        ("secret_ai_openai-secret_Authorization", "sk-live-AAA"),
        ("secret_ai_custom_api-key", "sk-custom-BBB"),
        ("inline_ai_inline_one", "sk-inline-CCC"),
        ("inline_ai_inline_two", "sk-inline-CCC"),
    ]
    .into_iter()
    .map(|(id, key)| (id.to_string(), key.to_string()))
    .collect()
}

#[test]
fn keys_become_credentials_by_id_with_bearer_and_whitespace_stripped() {
    let compiled = compile_standalone(&parse_fixture("credentials.yaml")).unwrap();
    assert_eq!(compiled.credentials, expected_credentials());
    let hosted = &compiled.config.backends["ai/hosted"].groups[0].providers;
    let ids: Vec<_> = hosted
        .iter()
        .map(|p| p.auth.as_ref().unwrap().credential.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "secret_ai_openai-secret_Authorization",
            "secret_ai_custom_api-key"
        ]
    );
}

#[test]
fn an_inherited_inline_key_gets_one_credential_per_provider() {
    let compiled = compile_standalone(&parse_fixture("credentials.yaml")).unwrap();
    let inline = &compiled.config.backends["ai/inline"].groups[0].providers;
    let ids: Vec<_> = inline
        .iter()
        .map(|p| p.auth.as_ref().unwrap().credential.as_str())
        .collect();
    assert_eq!(ids, ["inline_ai_inline_one", "inline_ai_inline_two"]);
}

#[test]
fn the_serialized_config_contains_no_key() {
    let compiled = compile_standalone(&parse_fixture("credentials.yaml")).unwrap();
    let json = serde_json::to_string(&compiled.config).unwrap();
    let yaml = serde_yaml::to_string(&compiled.config).unwrap();
    for text in [&json, &yaml] {
        for secret in [
            "sk-live-AAA",
            "sk-custom-BBB",
            "sk-inline-CCC",
            "sk-unused-DDD",
            "QmVhcmVy",
        ] {
            assert!(!text.contains(secret), "the config leaks {secret}: {text}");
        }
        assert!(text.contains("secret_ai_openai-secret_Authorization"));
    }
}

#[test]
fn only_backends_and_credentials_that_routes_use_are_in_the_output() {
    let compiled = compile_standalone(&parse_fixture("credentials.yaml")).unwrap();
    let backends: Vec<_> = compiled
        .config
        .backends
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(backends, ["ai/hosted", "ai/inline"]);
    assert!(
        !compiled
            .credentials
            .contains_key("secret_ai_unused-secret_Authorization")
    );
    assert!(!compiled.credentials.values().any(|k| k == "sk-unused-DDD"));
}

#[test]
fn a_missing_secret_is_an_error_on_the_secret_ref_name() {
    let mut inputs = parse_fixture("credentials.yaml");
    inputs
        .secrets
        .retain(|s| s.metadata.name.as_deref() != Some("custom"));
    let error = compile_standalone(&inputs).unwrap_err();
    let lines: Vec<_> = error.to_string().lines().map(str::to_string).collect();
    assert_eq!(
        lines[0],
        "fixtures/credentials.yaml: document 4 (AgentgatewayBackend ai/hosted): spec.ai.groups[0].providers[1].policies.auth.secretRef.name: Secret ai/custom not found"
    );
    let reasons: Vec<_> = error.diagnostics().map(|d| d.reason).collect();
    // The route's reference to the backend fails too, and says why.
    assert_eq!(reasons, [Reason::SecretNotFound, Reason::BackendNotFound]);
    assert!(
        lines[1].contains(
            "spec.rules[0].backendRefs[0]: AgentgatewayBackend ai/hosted is not accepted"
        ),
        "{}",
        lines[1]
    );
}

fn backend_with_secret(secret: &str, auth: &str) -> String {
    format!(
        "{secret}apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: b, namespace: ai}}
spec:
  policies: {{auth: {auth}}}
  ai:
    provider: {{openai: {{}}}}
"
    )
}

#[test]
fn a_secret_without_the_key_is_secret_key_not_found() {
    let yaml = backend_with_secret(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ai}\nstringData: {other: x}\n---\n",
        "{secretRef: {name: s}}",
    );
    let error = compile_error(&yaml);
    let problem = &error.errors[0].diagnostic;
    assert_eq!(problem.reason, Reason::SecretKeyNotFound);
    assert_eq!(problem.field, "spec.policies.auth.secretRef.key");
    assert_eq!(problem.message, "Secret ai/s has no key \"Authorization\"");
}

#[test]
fn the_secret_must_be_in_the_backend_namespace() {
    let yaml = backend_with_secret(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: elsewhere}\nstringData: {Authorization: k}\n---\n",
        "{secretRef: {name: s}}",
    );
    assert_eq!(
        compile_error(&yaml).errors[0].diagnostic.reason,
        Reason::SecretNotFound
    );
}

#[test]
fn a_key_that_is_empty_after_stripping_bearer_is_invalid() {
    let yaml = backend_with_secret(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ai}\nstringData: {Authorization: 'Bearer  '}\n---\n",
        "{secretRef: {name: s}}",
    );
    let inputs = parse(&yaml).unwrap();
    let problem = backend_problems(&inputs.backends[0], &inputs).remove(0);
    assert_eq!(problem.reason, Reason::InvalidSpec);
    assert_eq!(
        problem.message,
        "key \"Authorization\" of Secret ai/s is empty"
    );

    let inline = backend_with_secret("", "{key: 'Bearer'}");
    let inputs = parse(&inline).unwrap();
    let problem = backend_problems(&inputs.backends[0], &inputs).remove(0);
    assert_eq!(
        (problem.reason, problem.field.as_str()),
        (Reason::InvalidSpec, "spec.policies.auth.key")
    );
}

#[test]
fn a_provider_auth_block_replaces_the_backend_auth_block() {
    let yaml = "apiVersion: v1
kind: Secret
metadata: {name: s, namespace: ai}
stringData: {Authorization: from-secret}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: b, namespace: ai}
spec:
  policies: {auth: {secretRef: {name: s}}}
  ai:
    groups:
    - providers:
      - {name: own, openai: {}, policies: {auth: {key: own-key}}}
      - {name: inherited, openai: {}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: ai}
spec:
  rules: [{backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: b}]}]
";
    let compiled = common::compile(yaml);
    let providers = &compiled.config.backends["ai/b"].groups[0].providers;
    assert_eq!(
        providers[0].auth.as_ref().unwrap().credential,
        "inline_ai_b_own"
    );
    assert_eq!(
        providers[1].auth.as_ref().unwrap().credential,
        "secret_ai_s_Authorization"
    );
    assert_eq!(compiled.credentials["inline_ai_b_own"], "own-key");
    assert_eq!(
        compiled.credentials["secret_ai_s_Authorization"],
        "from-secret"
    );
}

#[test]
fn a_secret_in_another_namespace_is_not_permitted() {
    let yaml = "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata: {name: b, namespace: team-a}\nspec:\n  ai:\n    provider:\n      openai: {model: m}\n      policies: {auth: {secretRef: {name: s, namespace: team-b}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: team-b}\nstringData: {Authorization: sk}\n";
    let inputs =
        agentgateway_compiler::parse_manifests(&[("c.yaml".to_string(), yaml.to_string())])
            .unwrap();
    let diagnostic =
        agentgateway_compiler::backend_problems(&inputs.backends[0], &inputs).remove(0);
    assert_eq!(diagnostic.reason.as_str(), "RefNotPermitted");
    assert_eq!(
        diagnostic.field,
        "spec.ai.provider.policies.auth.secretRef.namespace"
    );
}
