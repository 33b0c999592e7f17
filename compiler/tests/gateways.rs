//! Gateways and listeners: ports, protocols, attachment, and the operator's per-Gateway compilation.

mod common;

use agentgateway_compiler::{Reason, compile_gateway, compile_standalone};
use agentgateway_crds::proxy_config::WeightedBackend;
use common::{backend, compile, compile_error, parse_fixture};

fn gateway(name: &str, listeners: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}}}
spec:
  gatewayClassName: agentgateway
  listeners: {listeners}
---
"
    )
}

fn route_to(name: &str, parent: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: {parent}
  rules: [{{backendRefs: [{{group: agentgateway.dev, kind: AgentgatewayBackend, name: a}}]}}]
---
"
    )
}

#[test]
fn every_gateway_contributes_its_listeners_named_namespace_gateway_listener() {
    let yaml = backend("a")
        + &gateway("zeta", "[{name: web, port: 8081, protocol: HTTP}]")
        + &gateway(
            "alpha",
            "[{name: one, port: 8080, protocol: HTTP}, {name: two, port: 8082, protocol: HTTP}]",
        )
        + &route_to("r", "[{name: alpha, sectionName: two}, {name: zeta}]");
    let config = compile(&yaml).config;
    let listeners: Vec<_> = config
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.port, l.rules.len()))
        .collect();
    assert_eq!(
        listeners,
        [
            ("default/alpha/one", Some(8080), 0),
            ("default/alpha/two", Some(8082), 1),
            ("default/zeta/web", Some(8081), 1),
        ]
    );
}

#[test]
fn two_listeners_on_the_same_port_are_an_error_naming_both() {
    let yaml = gateway("a", "[{name: http, port: 80, protocol: HTTP}]")
        + &gateway("b", "[{name: web, port: 80, protocol: HTTP}]");
    let error = compile_error(&yaml);
    assert_eq!(
        error.to_string(),
        "test.yaml: document 2 (Gateway default/b): spec.listeners[0].port: port 80 of listener default/b/web is already used by default/a/http: only listeners of one Gateway share a port"
    );
    assert_eq!(error.errors[0].diagnostic.reason, Reason::PortUnavailable);
}

#[test]
fn a_tls_passthrough_listener_is_skipped_with_a_diagnostic_on_the_gateway() {
    let yaml = gateway(
        "g",
        "[{name: http, port: 80, protocol: HTTP}, {name: tls, port: 443, protocol: TLS}]",
    );
    let error = compile_error(&yaml);
    let problem = &error.errors[0].diagnostic;
    assert_eq!(
        (problem.reason, problem.field.as_str()),
        (Reason::UnsupportedProtocol, "spec.listeners[1].protocol")
    );
    assert_eq!(
        problem.message,
        "listener tls: protocol TLS is not supported by this version of the proxy (only HTTP and HTTPS); the listener is not served"
    );

    let inputs = common::parse(&yaml).unwrap();
    let compilation = compile_gateway(&inputs.gateways[0], &inputs);
    let names: Vec<_> = compilation
        .compiled
        .config
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["default/g/http"]);
    assert_eq!(compilation.diagnostics.len(), 1);
}

#[test]
fn with_gateways_a_route_must_name_an_existing_one() {
    let yaml = backend("a")
        + &gateway("g", "[{name: http, port: 80, protocol: HTTP}]")
        + &route_to("lost", "[{name: nope}]")
        + &route_to("orphan", "[]");
    let problems: Vec<_> = compile_error(&yaml)
        .diagnostics()
        .map(|d| {
            (
                d.object.name.clone(),
                d.reason,
                d.field.clone(),
                d.message.clone(),
            )
        })
        .collect();
    assert_eq!(
        problems[0],
        (
            "lost".into(),
            Reason::NoMatchingParent,
            "spec.parentRefs[0]".into(),
            "Gateway default/nope not found".into()
        )
    );
    assert_eq!(
        (problems[1].1, problems[1].2.as_str()),
        (Reason::NoMatchingParent, "spec.parentRefs")
    );
}

#[test]
fn a_parent_ref_selects_listeners_by_section_name_or_port() {
    let yaml = backend("a")
        + &gateway(
            "g",
            "[{name: a, port: 8080, protocol: HTTP}, {name: b, port: 8081, protocol: HTTP}]",
        )
        + &route_to("by-port", "[{name: g, port: 8081}]");
    let config = compile(&yaml).config;
    assert_eq!(config.listeners[0].rules.len(), 0);
    assert_eq!(config.listeners[1].rules.len(), 1);
}

#[test]
fn a_listener_hostname_restricts_the_routes_hostnames() {
    let yaml = backend("a")
        + &gateway("g", "[{name: h, port: 80, protocol: HTTP, hostname: '*.example.com'}]")
        + &route_to("inherits", "[{name: g}]")
        + "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: narrows}
spec:
  parentRefs: [{name: g}]
  hostnames: [chat.example.com, chat.example.org]
  rules: [{matches: [{path: {value: /v1}}], backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: a}]}]
";
    let config = compile(&yaml).config;
    let matches = &config.listeners[0].matches;
    assert_eq!(matches[0].hostnames, ["chat.example.com"]);
    assert_eq!(matches[1].hostnames, ["*.example.com"]);
}

#[test]
fn compile_gateway_leaves_invalid_things_out_and_reports_them() {
    let inputs = parse_fixture("operator.yaml");
    let gw = inputs
        .gateways
        .iter()
        .find(|g| g.metadata.name.as_deref() == Some("gw"))
        .unwrap();
    let compilation = compile_gateway(gw, &inputs);
    let problems: Vec<_> = compilation
        .diagnostics
        .iter()
        .map(|d| format!("{} {} {}", d.object, d.field, d.reason.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            "Gateway infra/gw spec.listeners[2].protocol UnsupportedProtocol",
            "HTTPRoute apps/bad-refs spec.rules[0].backendRefs[1] BackendNotFound",
            "HTTPRoute apps/bad-refs spec.rules[0].backendRefs[2] BackendNotFound",
            "HTTPRoute apps/not-allowed spec.parentRefs[0] NotAllowedByListeners",
            "HTTPRoute infra/wrong-host spec.parentRefs[0] NoMatchingListenerHostname",
            "HTTPRoute infra/no-section spec.parentRefs[0] NoMatchingParent",
            "AgentgatewayBackend apps/claude spec.ai.provider.policies.auth.aws InvalidSpec",
        ]
    );

    let config = &compilation.compiled.config;
    let listeners: Vec<_> = config
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.port))
        .collect();
    assert_eq!(
        listeners,
        [("infra/gw/http", Some(80)), ("infra/gw/tenant", Some(8080))]
    );

    let http = &config.listeners[0];
    let routes: Vec<_> = http
        .matches
        .iter()
        .map(|m| http.rules[m.rule as usize].route.as_str())
        .collect();
    assert_eq!(
        routes,
        ["apps/bad-refs", "apps/ok"],
        "the longer path first"
    );
    let bad = http
        .rules
        .iter()
        .find(|r| r.route == "apps/bad-refs")
        .unwrap();
    assert_eq!(
        bad.backends,
        [
            WeightedBackend {
                backend: Some("apps/good".to_string()),
                weight: 2,
                policy: None,
                ..WeightedBackend::default()
            },
            WeightedBackend {
                backend: None,
                weight: 1,
                policy: None,
                ..WeightedBackend::default()
            },
            WeightedBackend {
                backend: None,
                weight: 1,
                policy: None,
                ..WeightedBackend::default()
            },
        ],
        "unresolved refs keep their weight so their share gets a 500"
    );

    let tenant = &config.listeners[1];
    assert_eq!(tenant.rules.len(), 1);
    assert_eq!(tenant.matches[0].hostnames, ["a.tenant.example.com"]);

    let backends: Vec<_> = config.backends.keys().map(String::as_str).collect();
    assert_eq!(backends, ["apps/good", "infra/tenant-llm"]);
}

#[test]
fn compile_gateway_counts_attached_routes_per_listener_name() {
    let inputs = parse_fixture("operator.yaml");
    let counts = |name: &str| {
        let gw = inputs
            .gateways
            .iter()
            .find(|g| g.metadata.name.as_deref() == Some(name))
            .unwrap();
        compile_gateway(gw, &inputs)
            .attached_routes
            .into_iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts("gw"),
        [
            ("http".to_string(), 2),
            ("https".to_string(), 0),
            ("tenant".to_string(), 1)
        ]
    );
    assert_eq!(counts("other"), [("http".to_string(), 1)]);
}

#[test]
fn compile_gateway_ignores_routes_of_other_gateways() {
    let inputs = parse_fixture("operator.yaml");
    let other = inputs
        .gateways
        .iter()
        .find(|g| g.metadata.name.as_deref() == Some("other"))
        .unwrap();
    let compilation = compile_gateway(other, &inputs);
    let objects: Vec<_> = compilation
        .diagnostics
        .iter()
        .map(|d| d.object.to_string())
        .collect();
    assert_eq!(
        objects,
        ["HTTPRoute apps/other-gateway"],
        "only its own route's missing backend"
    );
    assert_eq!(
        compilation.compiled.config.listeners[0].rules[0].route,
        "apps/other-gateway"
    );
    assert!(compilation.compiled.config.backends.is_empty());
}

#[test]
fn standalone_mode_refuses_what_the_operator_mode_leaves_out() {
    let inputs = parse_fixture("operator.yaml");
    let error = compile_standalone(&inputs).unwrap_err();
    let reasons: Vec<_> = error.diagnostics().map(|d| d.reason).collect();
    assert!(reasons.contains(&Reason::UnsupportedProtocol));
    assert!(
        reasons.contains(&Reason::InvalidSpec),
        "even the unreferenced invalid backend"
    );
    assert!(reasons.contains(&Reason::NotAllowedByListeners));
}

#[test]
fn the_operator_output_does_not_depend_on_the_order_of_its_inputs() {
    let mut inputs = parse_fixture("operator.yaml");
    // Objects from the API server all have timestamps; most were created in the same second.
    let second = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2025-05-01T12:00:00Z".parse().unwrap(),
    );
    for route in &mut inputs.routes {
        route.metadata.creation_timestamp = Some(second.clone());
    }
    inputs.origins.clear();
    let gw = inputs.gateways[0].clone();
    let expected = compile_gateway(&gw, &inputs);

    let mut shuffled = inputs.clone();
    shuffled.routes.reverse();
    shuffled.backends.reverse();
    shuffled.gateways.reverse();
    shuffled.routes.rotate_left(2);
    assert_eq!(compile_gateway(&gw, &shuffled), expected);
}

#[test]
fn a_listener_on_the_proxys_admin_ports_is_refused() {
    let yaml = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: default}\nspec:\n  gatewayClassName: agentgateway\n  listeners:\n  - {name: http, port: 15021, protocol: HTTP}\n";
    let inputs =
        agentgateway_compiler::parse_manifests(&[("g.yaml".to_string(), yaml.to_string())])
            .unwrap();
    let error = agentgateway_compiler::compile_standalone(&inputs)
        .unwrap_err()
        .to_string();
    assert!(error.contains("port 15021 of listener default/g/http is already used by the proxy's readiness endpoint"), "{error}");
}

/// Two routes with identical matches: the older one wins (Gateway API precedence), and the
/// operator's compilation reports each losing match on the losing route, not on the winner.
#[test]
fn an_identical_match_of_a_younger_route_is_reported_as_a_conflict_on_it() {
    let route = |name: &str, created: &str, rules: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, creationTimestamp: '{created}'}}
spec:
  parentRefs: [{{name: g}}]
  rules: {rules}
---
"
        )
    };
    let to_a = "backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: a}]";
    let yaml = backend("a")
        + &gateway("g", "[{name: http, port: 80, protocol: HTTP}]")
        + &route(
            "old",
            "2026-01-01T00:00:00Z",
            &format!(
                "[{{matches: [{{path: {{type: PathPrefix, value: /v1}}, headers: [{{name: x-a, value: '1'}}, {{name: x-b, value: '2'}}]}}], {to_a}}}]"
            ),
        )
        + &route(
            "young",
            "2026-02-01T00:00:00Z",
            // Rule 0 repeats old's match (headers in another order); rule 1 has its own.
            &format!(
                "[{{matches: [{{path: {{type: PathPrefix, value: /v1}}, headers: [{{name: x-b, value: '2'}}, {{name: x-a, value: '1'}}]}}], {to_a}}}, {{matches: [{{path: {{type: Exact, value: /v1/models}}}}], {to_a}}}]"
            ),
        )
        + &route(
            "same-route",
            "2026-03-01T00:00:00Z",
            // Identical matches within one route are the author's choice, not a conflict.
            &format!(
                "[{{matches: [{{path: {{type: Exact, value: /own}}}}], {to_a}}}, {{matches: [{{path: {{type: Exact, value: /own}}}}], {to_a}}}]"
            ),
        );
    let inputs = common::parse(&yaml).unwrap();
    let compilation = compile_gateway(&inputs.gateways[0], &inputs);
    let conflicts: Vec<_> = compilation
        .diagnostics
        .iter()
        .filter(|d| d.reason == Reason::RuleMatchConflict)
        .map(|d| (d.object.name.as_str(), d.field.as_str(), d.message.as_str()))
        .collect();
    assert_eq!(
        conflicts,
        [(
            "young",
            "spec.rules[0].matches[0]",
            "identical to a match of HTTPRoute default/old on listener http, which takes precedence (older, or first by namespace/name): this match receives no traffic"
        )]
    );
    // Standalone mode serves the same inputs: precedence decides, nothing is refused.
    assert!(compile_standalone(&inputs).is_ok());
}
