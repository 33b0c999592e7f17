//! HTTPRoute filters and timeouts: what each compiles into, and every problem reported with its
//! field path (and the rule not served).

mod common;

use agentgateway_compiler::{CompileError, Reason};
use agentgateway_crds::proxy_config::{
    HeaderConfig, HeaderModifierConfig, PathModifierConfig, RedirectConfig, RuleConfig,
};
use common::{backend, compile, compile_error};

const BACKEND_REF: &str = "{group: agentgateway.dev, kind: AgentgatewayBackend, name: a}";

fn route(rules: &str) -> String {
    backend("a")
        + &format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r}}\nspec:\n  rules:\n{rules}---\n"
        )
}

fn only_rule(rules: &str) -> RuleConfig {
    let compiled = compile(&route(rules));
    let listener = &compiled.config.listeners[0];
    assert_eq!(listener.rules.len(), 1, "{listener:#?}");
    listener.rules[0].clone()
}

fn problems(error: &CompileError) -> Vec<(Reason, String)> {
    error
        .diagnostics()
        .map(|d| (d.reason, d.field.clone()))
        .collect()
}

fn header(name: &str, value: &str) -> HeaderConfig {
    HeaderConfig {
        name: name.into(),
        value: value.into(),
    }
}

#[test]
fn header_modifiers_compile_with_lower_case_names() {
    let rule = only_rule(
        "  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: X-Team, value: blue}]
        add: [{name: x-tag, value: a b}]
        remove: [X-Debug]
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-served-by, value: gw}]}
    backendRefs:
    - group: agentgateway.dev
      kind: AgentgatewayBackend
      name: a
      filters:
      - type: RequestHeaderModifier
        requestHeaderModifier: {add: [{name: x-backend, value: a}]}
      - type: ResponseHeaderModifier
        responseHeaderModifier: {remove: [x-internal]}
",
    );
    assert_eq!(
        rule.request_headers,
        Some(HeaderModifierConfig {
            set: vec![header("x-team", "blue")],
            add: vec![header("x-tag", "a b")],
            remove: vec!["x-debug".into()],
        })
    );
    assert_eq!(
        rule.response_headers,
        Some(HeaderModifierConfig {
            set: vec![header("x-served-by", "gw")],
            ..HeaderModifierConfig::default()
        })
    );
    let weighted = &rule.backends[0];
    assert_eq!(
        weighted.request_headers.as_ref().unwrap().add,
        [header("x-backend", "a")]
    );
    assert_eq!(
        weighted.response_headers.as_ref().unwrap().remove,
        ["x-internal"]
    );
}

#[test]
fn a_redirect_compiles_with_the_default_status_and_no_backends() {
    let rule = only_rule(
        "  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
        hostname: New.Example
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
",
    );
    assert_eq!(
        rule.redirect,
        Some(RedirectConfig {
            scheme: Some("https".into()),
            hostname: Some("new.example".into()),
            port: None,
            path: Some(PathModifierConfig::ReplacePrefixMatch("/new".into())),
            status_code: 302,
        })
    );
    assert!(rule.backends.is_empty());
}

#[test]
fn a_rewrite_compiles_its_path() {
    let rule = only_rule(&format!(
        "  - matches: [{{path: {{value: /team-a}}}}]
    filters:
    - type: URLRewrite
      urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /}}}}
    backendRefs: [{BACKEND_REF}]
"
    ));
    assert_eq!(
        rule.rewrite_path,
        Some(PathModifierConfig::ReplacePrefixMatch("/".into()))
    );
    let full = only_rule(&format!(
        "  - matches: [{{path: {{type: Exact, value: /chat}}}}]
    filters:
    - type: URLRewrite
      urlRewrite: {{path: {{type: ReplaceFullPath, replaceFullPath: /v1/chat/completions}}}}
    backendRefs: [{BACKEND_REF}]
"
    ));
    assert_eq!(
        full.rewrite_path,
        Some(PathModifierConfig::ReplaceFullPath(
            "/v1/chat/completions".into()
        ))
    );
}

#[test]
fn timeouts_map_to_the_rule_in_milliseconds_and_0s_means_none() {
    let rule = only_rule(&format!(
        "  - timeouts: {{request: 1m30s, backendRequest: 500ms}}
    backendRefs: [{BACKEND_REF}]
"
    ));
    assert_eq!(rule.request_timeout_ms, Some(90_000));
    assert_eq!(rule.backend_request_timeout_ms, Some(500));
    let none = only_rule(&format!(
        "  - timeouts: {{request: 0s, backendRequest: 1h30m}}
    backendRefs: [{BACKEND_REF}]
"
    ));
    assert_eq!(none.request_timeout_ms, Some(0));
    assert_eq!(none.backend_request_timeout_ms, Some(5_400_000));
    let plain = only_rule(&format!("  - backendRefs: [{BACKEND_REF}]\n"));
    assert_eq!(plain.request_timeout_ms, None);
    assert_eq!(plain.request_headers, None);
}

#[test]
fn header_problems_are_reported_with_their_field_and_the_rule_is_not_served() {
    let error = compile_error(&route(&format!(
        "  - filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{{name: 'bad name', value: x}}, {{name: x-ok, value: \"a\\nb\"}}, {{name: X-Dup, value: '1'}}, {{name: x-dup, value: '2'}}]
        add: [{{name: Host, value: evil}}, {{name: Authorization, value: Bearer x}}]
        remove: [x-api-key, transfer-encoding, connection]
    backendRefs: [{BACKEND_REF}]
  - backendRefs: [{BACKEND_REF}]
"
    )));
    let at = "spec.rules[0].filters[0].requestHeaderModifier";
    assert_eq!(
        problems(&error),
        [
            (Reason::InvalidSpec, format!("{at}.set[0].name")),
            (Reason::InvalidSpec, format!("{at}.set[1].value")),
            (Reason::InvalidSpec, format!("{at}.set[3].name")),
            (Reason::UnsupportedValue, format!("{at}.add[0].name")),
            (Reason::UnsupportedValue, format!("{at}.add[1].name")),
            (Reason::UnsupportedValue, format!("{at}.remove[0]")),
            (Reason::UnsupportedValue, format!("{at}.remove[1]")),
            (Reason::UnsupportedValue, format!("{at}.remove[2]")),
        ]
    );
    let messages: Vec<String> = error.errors.iter().map(ToString::to_string).collect();
    assert!(messages[2].contains("listed twice"), "{messages:?}");
    assert!(messages[4].contains("credentials"), "{messages:?}");
    assert!(messages[3].contains("owned by the proxy"), "{messages:?}");
}

#[test]
fn too_many_header_changes_are_refused() {
    let set: Vec<String> = (0..17)
        .map(|i| format!("{{name: x-h{i}, value: v}}"))
        .collect();
    let error = compile_error(&route(&format!(
        "  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{}]}}
    backendRefs: [{BACKEND_REF}]
",
        set.join(", ")
    )));
    assert_eq!(
        problems(&error),
        [(
            Reason::InvalidSpec,
            "spec.rules[0].filters[0].responseHeaderModifier.set".to_string()
        )]
    );
}

#[test]
fn redirect_with_rewrite_and_prefix_replacement_without_prefix_match_are_refused() {
    let error = compile_error(&route(&format!(
        "  - matches: [{{path: {{value: /a}}}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {{hostname: example.com}}
    - type: URLRewrite
      urlRewrite: {{path: {{type: ReplaceFullPath, replaceFullPath: /b}}}}
  - matches: [{{path: {{type: Exact, value: /c}}}}]
    filters:
    - type: URLRewrite
      urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /d}}}}
    backendRefs: [{BACKEND_REF}]
  - matches: [{{path: {{value: /e}}}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {{statusCode: 304, port: 0, scheme: ftp}}
    backendRefs: [{BACKEND_REF}]
  - filters:
    - type: URLRewrite
      urlRewrite: {{hostname: other.example, path: {{type: ReplaceFullPath, replaceFullPath: /x/../y}}}}
    backendRefs: [{BACKEND_REF}]
"
    )));
    assert_eq!(
        problems(&error),
        [
            (
                Reason::InvalidSpec,
                "spec.rules[0].filters[1].type".to_string()
            ),
            (
                Reason::InvalidSpec,
                "spec.rules[1].filters[0].urlRewrite.path.replacePrefixMatch".to_string()
            ),
            (
                Reason::UnsupportedValue,
                "spec.rules[2].filters[0].requestRedirect.scheme".to_string()
            ),
            (
                Reason::InvalidSpec,
                "spec.rules[2].filters[0].requestRedirect.port".to_string()
            ),
            (
                Reason::UnsupportedValue,
                "spec.rules[2].filters[0].requestRedirect.statusCode".to_string()
            ),
            (Reason::InvalidSpec, "spec.rules[2].backendRefs".to_string()),
            (
                Reason::UnsupportedValue,
                "spec.rules[3].filters[0].urlRewrite.hostname".to_string()
            ),
            (
                Reason::InvalidSpec,
                "spec.rules[3].filters[0].urlRewrite.path.replaceFullPath".to_string()
            ),
        ]
    );
    let first = error.errors[0].to_string();
    assert!(
        first.contains("both a RequestRedirect and a URLRewrite"),
        "{first}"
    );
}

#[test]
fn unsupported_filter_types_are_reported_on_rules_and_backend_refs() {
    let error = compile_error(&route(
        "  - filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 80}}
    - type: CORS
    - type: ExtensionRef
      extensionRef: {group: example.com, kind: Thing, name: t}
    backendRefs:
    - group: agentgateway.dev
      kind: AgentgatewayBackend
      name: a
      filters:
      - type: URLRewrite
        urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /v1}}
      - type: RequestHeaderModifier
",
    ));
    assert_eq!(
        problems(&error),
        [
            (
                Reason::UnsupportedValue,
                "spec.rules[0].filters[0].type".to_string()
            ),
            (
                Reason::UnsupportedValue,
                "spec.rules[0].filters[1].type".to_string()
            ),
            (
                Reason::UnsupportedValue,
                "spec.rules[0].filters[2].type".to_string()
            ),
            (
                Reason::UnsupportedValue,
                "spec.rules[0].backendRefs[0].filters[0].type".to_string()
            ),
            (
                Reason::InvalidSpec,
                "spec.rules[0].backendRefs[0].filters[1].requestHeaderModifier".to_string()
            ),
        ]
    );
    let message = error.errors[0].to_string();
    assert!(
        message.contains("\"RequestMirror\" filters are not supported"),
        "{message}"
    );
}

#[test]
fn unparsable_or_inconsistent_timeouts_are_reported() {
    let error = compile_error(&route(&format!(
        "  - timeouts: {{request: '10', backendRequest: 1d}}
    backendRefs: [{BACKEND_REF}]
  - timeouts: {{request: 5s, backendRequest: 10s}}
    backendRefs: [{BACKEND_REF}]
  - timeouts: {{request: 25h}}
    backendRefs: [{BACKEND_REF}]
"
    )));
    assert_eq!(
        problems(&error),
        [
            (
                Reason::InvalidSpec,
                "spec.rules[0].timeouts.request".to_string()
            ),
            (
                Reason::InvalidSpec,
                "spec.rules[0].timeouts.backendRequest".to_string()
            ),
            (
                Reason::InvalidSpec,
                "spec.rules[1].timeouts.backendRequest".to_string()
            ),
            (
                Reason::InvalidSpec,
                "spec.rules[2].timeouts.request".to_string()
            ),
        ]
    );
}

#[test]
fn a_compiled_config_with_every_filter_passes_the_proxys_validation() {
    let compiled = compile(&route(&format!(
        "  - matches: [{{path: {{value: /team-a}}}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{set: [{{name: x-team, value: a}}]}}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{add: [{{name: x-served-by, value: gw}}]}}
    - type: URLRewrite
      urlRewrite: {{path: {{type: ReplacePrefixMatch, replacePrefixMatch: /}}}}
    timeouts: {{request: 30s, backendRequest: 10s}}
    backendRefs: [{BACKEND_REF}]
  - matches: [{{path: {{value: /old}}}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {{statusCode: 301, port: 8443}}
"
    )));
    compiled.config.validate().unwrap();
}
