//! Routes: matches, weights, backend references and their failures.

mod common;

use agentgateway_compiler::{Reason, compile_standalone};
use agentgateway_crds::proxy_config::{NameValue, PathMatchConfig, ValueMatch, WeightedBackend};
use common::{backend, compile, compile_error, parse_fixture};

fn route(spec: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\nspec:\n{spec}---\n"
    )
}

fn weighted(backend: Option<&str>, weight: u32) -> WeightedBackend {
    WeightedBackend {
        backend: backend.map(str::to_string),
        weight,
        policy: None,
        ..WeightedBackend::default()
    }
}

#[test]
fn without_a_gateway_one_default_listener_without_port_serves_every_route() {
    let yaml = backend("a")
        + &route(
            "  parentRefs: [{name: gateway-that-does-not-exist}]
  rules: [{backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: a}]}]
",
        );
    let config = compile(&yaml).config;
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].name, "default");
    assert_eq!(config.listeners[0].port, None);
    assert_eq!(config.listeners[0].rules[0].route, "default/r");
}

#[test]
fn weights_default_to_one_and_are_kept_as_written() {
    let yaml = backend("a")
        + &backend("b")
        + &backend("c")
        + &route(
            "  rules:
  - backendRefs:
    - {group: agentgateway.dev, kind: AgentgatewayBackend, name: a, weight: 80}
    - {group: agentgateway.dev, kind: AgentgatewayBackend, name: b}
    - {group: agentgateway.dev, kind: AgentgatewayBackend, name: c, weight: 0}
",
        );
    let config = compile(&yaml).config;
    assert_eq!(
        config.listeners[0].rules[0].backends,
        [
            weighted(Some("default/a"), 80),
            weighted(Some("default/b"), 1),
            weighted(Some("default/c"), 0)
        ]
    );
}

#[test]
fn a_rule_without_matches_matches_every_path_and_route_hostnames_are_copied_into_each_match() {
    let yaml = backend("a")
        + &route(
            "  hostnames: [llm.example.com, '*.llm.example.com']
  rules:
  - backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: a}]
  - matches:
    - path: {type: Exact, value: /v1/models}
      headers: [{name: X-Api-Version, value: '2'}]
      queryParams: [{name: Debug, value: 'true'}]
      method: get
    backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: a}]
",
        );
    let config = compile(&yaml).config;
    let matches = &config.listeners[0].matches;
    assert_eq!(matches.len(), 2);
    let exact = &matches[0];
    assert_eq!(exact.path, PathMatchConfig::Exact("/v1/models".to_string()));
    assert_eq!(
        exact.headers,
        [NameValue {
            name: "x-api-version".to_string(),
            value: "2".to_string(),
            match_type: ValueMatch::Exact,
        }]
    );
    assert_eq!(
        exact.query_params,
        [NameValue {
            name: "Debug".to_string(),
            value: "true".to_string(),
            match_type: ValueMatch::Exact,
        }]
    );
    assert_eq!(exact.method.as_deref(), Some("GET"));
    let everything = &matches[1];
    assert_eq!(
        everything.path,
        PathMatchConfig::PathPrefix("/".to_string())
    );
    for m in matches {
        assert_eq!(m.hostnames, ["llm.example.com", "*.llm.example.com"]);
    }
}

#[test]
fn regular_expression_paths_are_unsupported_and_bad_patterns_invalid_on_their_field() {
    let yaml = backend("a")
        + &route(
            "  rules:
  - matches:
    - path: {type: RegularExpression, value: '/v[0-9]+'}
    - headers: [{type: RegularExpression, name: x, value: '(unclosed'}]
    - queryParams: [{type: RegularExpression, name: q, value: 'a{1000}{1000}'}]
    - headers: [{type: Prefix, name: x, value: a}]
    backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: a}]
",
        );
    let error = compile_error(&yaml);
    let fields: Vec<_> = error
        .diagnostics()
        .map(|d| (d.reason, d.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (
                Reason::UnsupportedValue,
                "spec.rules[0].matches[0].path.type"
            ),
            (
                Reason::InvalidSpec,
                "spec.rules[0].matches[1].headers[0].value"
            ),
            (
                Reason::InvalidSpec,
                "spec.rules[0].matches[2].queryParams[0].value"
            ),
            (
                Reason::UnsupportedValue,
                "spec.rules[0].matches[3].headers[0].type"
            ),
        ]
    );
    assert_eq!(
        error.errors[0].to_string(),
        "test.yaml: document 2 (HTTPRoute default/r): spec.rules[0].matches[0].path.type: RegularExpression path matches are not supported by this version of the proxy"
    );
    let messages: Vec<_> = error.errors.iter().map(ToString::to_string).collect();
    assert!(
        messages[1].contains("not a valid regular expression"),
        "{messages:?}"
    );
    assert!(
        messages[2].contains("compiles to more than"),
        "{messages:?}"
    );
    assert!(
        messages[3].contains("expected Exact or RegularExpression"),
        "{messages:?}"
    );
}

#[test]
fn header_and_query_regular_expressions_compile_to_typed_matches() {
    let yaml = backend("a")
        + &route(
            "  rules:
  - matches:
    - headers: [{type: RegularExpression, name: X-Agentgateway-Model, value: 'gpt-.*'}]
      queryParams: [{type: RegularExpression, name: v, value: '[0-9]+'}]
    backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: a}]
",
        );
    let compiled = compile(&yaml);
    let m = &compiled.config.listeners[0].matches[0];
    assert_eq!(
        m.headers,
        [NameValue {
            name: "x-agentgateway-model".into(),
            value: "gpt-.*".into(),
            match_type: ValueMatch::RegularExpression,
        }]
    );
    assert_eq!(m.query_params[0].match_type, ValueMatch::RegularExpression);
}

#[test]
fn a_cross_namespace_reference_is_allowed_by_a_reference_grant() {
    let compiled = compile_standalone(&parse_fixture("cross-namespace.yaml")).unwrap();
    assert_eq!(
        compiled.config.listeners[0].rules[0].backends,
        [weighted(Some("models/shared"), 1)]
    );
    assert!(compiled.config.backends.contains_key("models/shared"));
}

#[test]
fn a_cross_namespace_reference_without_a_grant_is_ref_not_permitted() {
    let mut inputs = parse_fixture("cross-namespace.yaml");
    inputs.reference_grants.clear();
    let error = compile_standalone(&inputs).unwrap_err();
    assert_eq!(
        error.to_string(),
        "fixtures/cross-namespace.yaml: document 3 (HTTPRoute apps/chat): spec.rules[0].backendRefs[0]: AgentgatewayBackend models/shared is in another namespace and no ReferenceGrant in models allows HTTPRoutes of apps to refer to it"
    );
    assert_eq!(error.errors[0].diagnostic.reason, Reason::RefNotPermitted);
}

#[test]
fn a_grant_for_another_namespace_kind_or_name_does_not_count() {
    let base = parse_fixture("cross-namespace.yaml");
    let spoil: [fn(&mut agentgateway_crds::gateway_api::ReferenceGrantSpec); 4] = [
        |s| s.from[0].namespace = "other".to_string(),
        |s| s.from[0].kind = "GRPCRoute".to_string(),
        |s| s.to[0].name = Some("not-shared".to_string()),
        |s| s.to[0].kind = "Service".to_string(),
    ];
    for spoil in spoil {
        let mut inputs = base.clone();
        spoil(&mut inputs.reference_grants[0].spec);
        let error = compile_standalone(&inputs).unwrap_err();
        assert_eq!(error.errors[0].diagnostic.reason, Reason::RefNotPermitted);
    }
    let mut named = base.clone();
    named.reference_grants[0].spec.to[0].name = Some("shared".to_string());
    assert!(
        compile_standalone(&named).is_ok(),
        "a grant naming the backend counts"
    );
    let mut misplaced = base;
    misplaced.reference_grants[0].metadata.namespace = Some("apps".to_string());
    assert!(
        compile_standalone(&misplaced).is_err(),
        "the grant must be in the target namespace"
    );
}

#[test]
fn a_reference_to_a_missing_backend_or_a_service_fails_on_the_route() {
    let yaml = route(
        "  rules:
  - backendRefs:
    - {group: agentgateway.dev, kind: AgentgatewayBackend, name: ghost}
    - {name: my-service, port: 8000}
",
    );
    let error = compile_error(&yaml);
    let problems: Vec<_> = error
        .diagnostics()
        .map(|d| (d.reason, d.field.as_str(), d.message.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            (
                Reason::BackendNotFound,
                "spec.rules[0].backendRefs[0]",
                "AgentgatewayBackend default/ghost not found"
            ),
            (
                Reason::InvalidKind,
                "spec.rules[0].backendRefs[1]",
                "Service my-service is not supported by this version of the proxy: refer to an AgentgatewayBackend (group agentgateway.dev)"
            ),
        ]
    );
}

#[test]
fn a_reference_to_an_unaccepted_backend_says_why() {
    let yaml = "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: broken}
spec:
  ai:
    provider: {bedrock: {region: us-east-1}}
---
"
    .to_string()
        + &route(
            "  rules: [{backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: broken}]}]\n",
        );
    let error = compile_error(&yaml);
    let lines: Vec<String> = error.to_string().lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        [
            "test.yaml: document 1 (AgentgatewayBackend default/broken): spec.ai.provider.policies.auth.aws: required: a bedrock provider authenticates with aws credentials (spec.ai.provider.policies.auth has none)",
            "test.yaml: document 2 (HTTPRoute default/r): spec.rules[0].backendRefs[0]: AgentgatewayBackend default/broken is not accepted: spec.ai.provider.policies.auth.aws: required: a bedrock provider authenticates with aws credentials (spec.ai.provider.policies.auth has none)",
        ]
    );
}

#[test]
fn header_names_that_are_not_http_tokens_and_weights_past_the_gateway_api_bound_are_invalid() {
    let yaml = backend("a")
        + &route(
            "  rules:
  - matches:
    - headers: [{name: 'x team', value: a}]
    backendRefs:
    - {group: agentgateway.dev, kind: AgentgatewayBackend, name: a, weight: 1000001}
    - {group: agentgateway.dev, kind: AgentgatewayBackend, name: a, weight: -1}
    - {group: agentgateway.dev, kind: AgentgatewayBackend, name: a, weight: 1000000}
",
        );
    let error = compile_error(&yaml);
    let fields: Vec<_> = error
        .diagnostics()
        .map(|d| (d.reason, d.field.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            (
                Reason::InvalidSpec,
                "spec.rules[0].matches[0].headers[0].name"
            ),
            (Reason::InvalidSpec, "spec.rules[0].backendRefs[0].weight"),
            (Reason::InvalidSpec, "spec.rules[0].backendRefs[1].weight"),
        ]
    );
}
