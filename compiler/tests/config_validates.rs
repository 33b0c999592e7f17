//! What the compiler produces always passes [`ProxyConfig::validate`], the check the proxy runs
//! before using a config: the tutorial, every fixture (standalone and operator mode, invalid
//! objects included), and backends at the very bounds the admission rules accept.

mod common;

use agentgateway_compiler::{
    backend_problems, compile_gateway, compile_standalone, parse_manifests,
};
use agentgateway_crds::proxy_config::ProxyConfig;
use agentgateway_crds::proxy_config::limits::{
    MAX_CONSECUTIVE_FAILURES, MAX_DURATION_MS, MAX_GROUPS, MAX_MODEL_LEN, MAX_PROVIDERS_PER_GROUP,
    MAX_RETRY_ATTEMPTS, MIN_DURATION_MS,
};
use common::{compile, parse_fixture, parse_ok};

#[track_caller]
fn assert_valid(config: &ProxyConfig) {
    if let Err(e) = config.validate() {
        panic!("{e}\n{config:#?}");
    }
}

#[test]
fn the_tutorial_examples_compile_into_valid_configs() {
    let dir = format!("{}/../examples/tutorial", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path.display().to_string(), text)
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    // Step by step (each file on its own), then all of it.
    for file in &files {
        let compiled =
            compile_standalone(&parse_manifests(std::slice::from_ref(file)).unwrap()).unwrap();
        assert_valid(&compiled.config);
    }
    let compiled = compile_standalone(&parse_manifests(&files).unwrap()).unwrap();
    assert_eq!(compiled.config.backends.len(), 2);
    assert_valid(&compiled.config);
}

#[test]
fn every_fixture_compiles_into_a_valid_config_in_both_modes() {
    for name in [
        "tutorial.yaml",
        "policies.yaml",
        "credentials.yaml",
        "cross-namespace.yaml",
        "precedence.yaml",
        "operator.yaml",
    ] {
        let inputs = parse_fixture(name);
        if let Ok(compiled) = compile_standalone(&inputs) {
            assert_valid(&compiled.config);
        }
        // Operator mode leaves invalid objects out (operator.yaml has some): still valid.
        for gateway in &inputs.gateways {
            assert_valid(&compile_gateway(gateway, &inputs).compiled.config);
        }
    }
    assert!(
        compile_standalone(&parse_fixture("operator.yaml")).is_err(),
        "operator.yaml has invalid objects, so operator mode above checked configs without them"
    );
}

/// A backend named `name` with `spec` (YAML, indented as under `spec:`) and a route to it on the
/// Gateway `gw` (or the default listener when there is no Gateway), with a header match. With
/// `missing`, the rule also sends traffic to a backend that does not exist.
fn backend_and_route(name: &str, spec: &str, missing: bool) -> String {
    let missing = if missing {
        "    - {group: agentgateway.dev, kind: AgentgatewayBackend, name: missing, weight: 1000000}\n"
    } else {
        ""
    };
    format!(
        "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: {name}}}
spec:
{spec}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{{name: gw}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /{name}}}, headers: [{{name: X-Team, value: a}}]}}]
    backendRefs:
    - {{group: agentgateway.dev, kind: AgentgatewayBackend, name: {name}, weight: 1000000}}
{missing}---
"
    )
}

#[test]
fn backends_at_the_admission_bounds_compile_into_valid_configs() {
    let model = "m".repeat(MAX_MODEL_LEN);
    let providers: String = (0..MAX_PROVIDERS_PER_GROUP)
        .map(|p| {
            format!(
                "      - {{name: p{p}, host: h{p}.internal, port: {}, openai: {{}}}}\n",
                p + 1
            )
        })
        .collect();
    let groups: String = (0..MAX_GROUPS)
        .map(|g| format!("    - providers: [{{name: g{g}, openai: {{model: {model}}}}}]\n"))
        .collect();
    let backends = [
        // The longest and shortest durations, the most failures and retries.
        (
            "bounds",
            format!(
                "  ai:
    provider:
      host: 10.0.0.1
      port: 65535
      path: /v1/chat/completions
      openai: {{model: {model}}}
  policies:
    timeouts: {{request: 24h, connect: 1ms}}
    health: {{eviction: {{duration: 1ms, maxDuration: 24h, consecutiveFailures: {MAX_CONSECUTIVE_FAILURES}}}}}
    retry: {{attempts: {MAX_RETRY_ATTEMPTS}}}"
            ),
        ),
        // Fractions and compound durations round to whole milliseconds within the bounds.
        (
            "fractions",
            "  ai:
    provider:
      openai: {}
      policies:
        timeouts: {request: 23h59m59.9999s, connect: 1.5ms}
        health: {eviction: {duration: 0.001s, maxDuration: 1439m}}"
                .to_string(),
        ),
        // A provider's eviction duration above the inherited and the default maximum.
        (
            "stretched",
            "  ai:
    groups:
    - providers:
      - {name: a, openai: {}, policies: {health: {eviction: {duration: 24h}}}}
      - name: b
        host: '::1'
        port: 8000
        openai: {}
        policies: {health: {eviction: {duration: 2h}}, tls: {sni: b.example.com, insecureSkipVerify: true}}
  policies:
    health: {eviction: {maxDuration: 1h}}
    retry: {attempts: 0}"
                .to_string(),
        ),
        // The most providers in a group, and the most groups.
        (
            "wide",
            format!("  ai:\n    groups:\n    - providers:\n{providers}"),
        ),
        ("deep", format!("  ai:\n    groups:\n{groups}")),
        // An inline key.
        (
            "keyed",
            "  ai: {provider: {openai: {model: gpt-4o}}}\n  policies: {auth: {key: sk-123}}"
                .to_string(),
        ),
    ];
    let yaml = |missing: bool| -> String {
        let each = backends.iter();
        each.map(|(name, spec)| backend_and_route(name, spec, missing))
            .collect()
    };
    let inputs = parse_ok(&yaml(false));
    for backend in &inputs.backends {
        assert_eq!(backend_problems(backend, &inputs), vec![], "{backend:?}");
    }
    let config = compile_standalone(&inputs).unwrap().config;
    assert_eq!(config.backends.len(), backends.len());
    assert_valid(&config);

    let bounds = &config.backends["default/bounds"];
    assert_eq!(bounds.request_timeout_ms, MAX_DURATION_MS);
    let provider = &bounds.groups[0].providers[0];
    assert_eq!(provider.connect_timeout_ms, MIN_DURATION_MS);
    assert_eq!(provider.eviction.base_ms, MIN_DURATION_MS);
    assert_eq!(provider.eviction.max_ms, MAX_DURATION_MS);
    let fractions = &config.backends["default/fractions"].groups[0].providers[0];
    assert_eq!(fractions.request_timeout_ms, MAX_DURATION_MS - 1);
    assert_eq!(fractions.connect_timeout_ms, 1);
    assert_eq!(fractions.eviction.base_ms, 1);
    let stretched = &config.backends["default/stretched"].groups[0].providers[0];
    assert_eq!(stretched.eviction.max_ms, MAX_DURATION_MS);

    // Operator mode, with a Gateway and the unresolved refs kept as weights without a backend.
    let gateway = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: agentgateway
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
  - {name: other, port: 8081, protocol: HTTP}
---
";
    let with_gateway = parse_ok(&format!("{gateway}{}", yaml(true)));
    let compilation = compile_gateway(&with_gateway.gateways[0], &with_gateway);
    let config = &compilation.compiled.config;
    assert_eq!(config.listeners.len(), 2);
    assert_eq!(config.backends.len(), backends.len());
    assert_valid(config);
}

#[test]
fn durations_the_config_could_not_hold_are_refused_at_admission() {
    let compiled = |policies: &str| {
        let spec = format!("  ai: {{provider: {{openai: {{}}}}}}\n  policies: {policies}");
        let inputs = parse_ok(&backend_and_route("b", &spec, false));
        backend_problems(&inputs.backends[0], &inputs)
            .into_iter()
            .map(|d| format!("{}: {}", d.field, d.message))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        compiled("{timeouts: {request: 24h1ms}}"),
        ["spec.policies.timeouts.request: must be at most 24h"]
    );
    assert_eq!(
        compiled("{timeouts: {connect: 0.5ms}}"),
        ["spec.policies.timeouts.connect: must be at least 1ms"]
    );
    assert_eq!(
        compiled("{health: {eviction: {duration: 8784h, consecutiveFailures: 1001}}}"),
        [
            "spec.policies.health.eviction.duration: must be at most 24h",
            "spec.policies.health.eviction.consecutiveFailures: must be at most 1000",
        ]
    );
    // And what a compile of the same spec would have produced is what validate refuses.
    let config = compile(&backend_and_route(
        "ok",
        "  ai: {provider: {openai: {}}}",
        false,
    ))
    .config;
    let mut too_long = config.clone();
    too_long
        .backends
        .get_mut("default/ok")
        .unwrap()
        .request_timeout_ms = MAX_DURATION_MS + 1;
    assert!(too_long.validate().is_err());
    assert_valid(&config);
}
