//! Gateway API precedence of matches across the routes of a listener: first match wins.

mod common;

use agentgateway_compiler::{Compiled, compile_standalone};
use agentgateway_crds::proxy_config::PathMatchConfig;
use common::{backend, compile, parse, parse_fixture};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The listener's matches in order, as `route#rule path [method] h=headers q=params`.
fn order(compiled: &Compiled) -> Vec<String> {
    let listener = &compiled.config.listeners[0];
    listener
        .matches
        .iter()
        .map(|m| {
            let rule = &listener.rules[m.rule as usize];
            let route = rule.route.rsplit('/').next().unwrap_or_default();
            let path = match &m.path {
                PathMatchConfig::Exact(p) => format!("={p}"),
                PathMatchConfig::PathPrefix(p) => format!("{p}*"),
            };
            let mut text = format!("{route}#{} {path}", rule.rule);
            if let Some(method) = &m.method {
                text.push_str(&format!(" {method}"));
            }
            if !m.headers.is_empty() {
                text.push_str(&format!(" h={}", m.headers.len()));
            }
            if !m.query_params.is_empty() {
                text.push_str(&format!(" q={}", m.query_params.len()));
            }
            text
        })
        .collect()
}

fn route(name: &str, matches: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  rules:
  - matches: {matches}
    backendRefs: [{{group: agentgateway.dev, kind: AgentgatewayBackend, name: llm}}]
---
"
    )
}

#[test]
fn matches_across_routes_follow_the_gateway_api_order() {
    let compiled = compile_standalone(&parse_fixture("precedence.yaml")).unwrap();
    assert_eq!(
        order(&compiled),
        [
            "specific#0 =/v1/models",
            "specific#2 /v1/chat/completions*",
            "specific#1 /v1* POST",
            "specific#1 /v1* h=2",
            "specific#1 /v1* h=1",
            "specific#1 /v1* q=1",
            "old#0 /v1*",
            "old#0 /*",
            "aaa-newer#0 /*",
        ]
    );
}

#[test]
fn an_exact_path_beats_a_longer_prefix() {
    let yaml = backend("llm")
        + &route(
            "a",
            "[{path: {type: PathPrefix, value: /v1/chat/completions}}]",
        )
        + &route("b", "[{path: {type: Exact, value: /v1}}]");
    assert_eq!(
        order(&compile(&yaml)),
        ["b#0 =/v1", "a#0 /v1/chat/completions*"]
    );
}

#[test]
fn a_longer_prefix_beats_a_shorter_one_whatever_the_route_age() {
    let yaml = backend("llm")
        + &route("a", "[{path: {value: /v1}}]")
        + &route("b", "[{path: {value: /v1/embeddings}}]");
    assert_eq!(order(&compile(&yaml)), ["b#0 /v1/embeddings*", "a#0 /v1*"]);
}

#[test]
fn path_length_counts_characters_not_bytes() {
    let yaml = backend("llm")
        + &route("a", "[{path: {value: /ééé}}]")
        + &route("b", "[{path: {value: /abcd}}]");
    // "/ééé" is 4 characters (7 bytes), "/abcd" is 5.
    assert_eq!(order(&compile(&yaml)), ["b#0 /abcd*", "a#0 /ééé*"]);
}

#[test]
fn a_match_with_a_method_beats_one_without_and_methods_are_upper_cased() {
    let yaml = backend("llm")
        + &route(
            "a",
            "[{path: {value: /v1}, headers: [{name: a, value: b}]}]",
        )
        + &route("b", "[{path: {value: /v1}, method: post}]");
    assert_eq!(order(&compile(&yaml)), ["b#0 /v1* POST", "a#0 /v1* h=1"]);
}

#[test]
fn more_header_matches_win_and_header_names_are_lowercased() {
    let yaml = backend("llm")
        + &route("a", "[{headers: [{name: X-One, value: '1'}]}]")
        + &route(
            "b",
            "[{headers: [{name: X-One, value: '1'}, {name: X-Two, value: '2'}]}]",
        );
    let compiled = compile(&yaml);
    assert_eq!(order(&compiled), ["b#0 /* h=2", "a#0 /* h=1"]);
    let names: Vec<_> = compiled.config.listeners[0].matches[0]
        .headers
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(names, ["x-one", "x-two"]);
}

#[test]
fn more_query_param_matches_win_after_headers() {
    let yaml = backend("llm")
        + &route(
            "a",
            "[{queryParams: [{name: a, value: '1'}, {name: b, value: '2'}]}]",
        )
        + &route(
            "b",
            "[{queryParams: [{name: a, value: '1'}], headers: [{name: h, value: v}]}]",
        )
        + &route("c", "[{queryParams: [{name: a, value: '1'}]}]");
    assert_eq!(
        order(&compile(&yaml)),
        ["b#0 /* h=1 q=1", "a#0 /* q=2", "c#0 /* q=1"]
    );
}

#[test]
fn between_equal_matches_the_older_route_wins_then_the_name() {
    let yaml = backend("llm") + &route("zz-first", "[]") + &route("aa-second", "[]");
    assert_eq!(order(&compile(&yaml)), ["zz-first#0 /*", "aa-second#0 /*"]);

    let mut inputs = parse(&(backend("llm") + &route("zz", "[]") + &route("aa", "[]"))).unwrap();
    let same_second = Some(Time("2025-03-01T10:00:00Z".parse().unwrap()));
    for r in &mut inputs.routes {
        r.metadata.creation_timestamp = same_second.clone();
    }
    assert_eq!(
        order(&compile_standalone(&inputs).unwrap()),
        ["aa#0 /*", "zz#0 /*"]
    );

    inputs.routes[0].metadata.creation_timestamp =
        Some(Time("2025-03-01T09:00:00Z".parse().unwrap()));
    assert_eq!(
        order(&compile_standalone(&inputs).unwrap()),
        ["zz#0 /*", "aa#0 /*"]
    );
}

#[test]
fn within_a_route_rule_order_then_match_order_break_ties() {
    let yaml = backend("llm")
        + "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules:
  - matches: [{path: {value: /b}}, {path: {value: /a}}]
    backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: llm}]
  - matches: [{path: {value: /c}}]
    backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: llm}]
";
    let compiled = compile(&yaml);
    assert_eq!(order(&compiled), ["r#0 /b*", "r#0 /a*", "r#1 /c*"]);
    let listener = &compiled.config.listeners[0];
    assert_eq!(listener.rules.len(), 2);
    assert_eq!(
        listener.matches.iter().map(|m| m.rule).collect::<Vec<_>>(),
        [0, 0, 1]
    );
}

#[test]
fn a_route_restricted_to_a_hostname_beats_an_older_catch_all_on_a_tie() {
    let yaml = backend("llm")
        + &route("any-host", "[]")
        + "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: tenant}
spec:
  hostnames: [Tenant.Example.com]
  rules:
  - backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: llm}]
";
    let compiled = compile(&yaml);
    assert_eq!(order(&compiled), ["tenant#0 /*", "any-host#0 /*"]);
    assert_eq!(
        compiled.config.listeners[0].matches[0].hostnames,
        ["tenant.example.com"]
    );
}

#[test]
fn the_output_does_not_depend_on_the_order_of_backends_or_gateways() {
    let inputs = parse_fixture("precedence.yaml");
    let mut reversed = inputs.clone();
    reversed.backends.reverse();
    reversed.secrets.reverse();
    assert_eq!(
        compile_standalone(&inputs).unwrap(),
        compile_standalone(&reversed).unwrap()
    );
}
