//! The user tutorial's manifests, compiled in standalone and operator mode.

mod common;

use agentgateway_compiler::{ObjectRef, Origin, Reason, compile_gateway, compile_standalone};
use agentgateway_crds::proxy_config::{
    BackendConfig, EvictionConfig, GroupConfig, ListenerConfig, MatchConfig, PathMatchConfig,
    ProviderConfig, ProviderKind, ProxyConfig, RuleConfig, WeightedBackend,
};
use common::{fixture, parse_fixture};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

const MODEL: &str = "gemma-4-12b-it-Q5_K_M.gguf";

fn self_hosted(name: &str) -> ProviderConfig {
    ProviderConfig {
        name: name.to_string(),
        kind: ProviderKind::OpenAi,
        model: Some(MODEL.to_string()),
        host: "host.docker.internal".to_string(),
        port: 8090,
        tls: None,
        path: None,
        azure: None,
        bedrock: None,
        vertex: None,
        auth: None,
        connect_timeout_ms: 10_000,
        request_timeout_ms: 600_000,
        eviction: EvictionConfig {
            base_ms: 5_000,
            max_ms: 60_000,
            consecutive_failures: 1,
        },
        cost: None,
    }
}

fn rule(route: &str, backend: &str) -> RuleConfig {
    RuleConfig {
        route: format!("agentgateway-system/{route}"),
        rule: 0,
        backends: vec![WeightedBackend {
            backend: Some(format!("agentgateway-system/{backend}")),
            weight: 1,
            policy: None,
            ..WeightedBackend::default()
        }],
        ..RuleConfig::default()
    }
}

fn everything(rule: u32) -> MatchConfig {
    MatchConfig {
        rule,
        path: PathMatchConfig::PathPrefix("/".to_string()),
        ..Default::default()
    }
}

fn expected_config() -> ProxyConfig {
    let backend = |name: &str, providers: Vec<ProviderConfig>| BackendConfig {
        name: format!("agentgateway-system/{name}"),
        groups: vec![GroupConfig { providers }],
        retry_attempts: 2,
        request_timeout_ms: 600_000,
        pass_through_path_prefixes: vec![],
    };
    ProxyConfig {
        listeners: vec![ListenerConfig {
            name: "agentgateway-system/agentgateway-proxy/http".to_string(),
            port: Some(80),
            rules: vec![rule("local-llm", "local-llm"), rule("llm-pool", "llm-pool")],
            matches: vec![everything(0), everything(1)],
            tls: None,
        }],
        backends: [
            (
                "agentgateway-system/local-llm".to_string(),
                backend("local-llm", vec![self_hosted("openai")]),
            ),
            (
                "agentgateway-system/llm-pool".to_string(),
                backend(
                    "llm-pool",
                    vec![self_hosted("local-a"), self_hosted("local-b")],
                ),
            ),
        ]
        .into_iter()
        .collect(),
        policies: Default::default(),
    }
}

#[test]
fn tutorial_manifests_parse_into_typed_inputs_with_their_origins() {
    let inputs = parse_fixture("tutorial.yaml");
    assert_eq!(inputs.gateways.len(), 1);
    assert_eq!(inputs.backends.len(), 2);
    assert_eq!(inputs.routes.len(), 2);
    let pool = ObjectRef {
        kind: "AgentgatewayBackend".to_string(),
        namespace: "agentgateway-system".to_string(),
        name: "llm-pool".to_string(),
    };
    assert_eq!(
        inputs.origins.get(&pool),
        Some(&Origin {
            source: "fixtures/tutorial.yaml".to_string(),
            document: 4
        })
    );
}

#[test]
fn tutorial_compiles_to_one_listener_on_port_80_with_both_backends() {
    let compiled = compile_standalone(&parse_fixture("tutorial.yaml")).unwrap();
    assert_eq!(compiled.config, expected_config());
    assert!(
        compiled.credentials.is_empty(),
        "self-hosted providers need no key"
    );
}

#[test]
fn the_older_of_two_catch_all_routes_wins_which_is_the_one_earlier_in_the_file() {
    let config = compile_standalone(&parse_fixture("tutorial.yaml"))
        .unwrap()
        .config;
    let listener = &config.listeners[0];
    let first = &listener.rules[listener.matches[0].rule as usize];
    assert_eq!(first.route, "agentgateway-system/local-llm");

    // Put step 3 before step 2: now llm-pool is the older route.
    let text = fixture("tutorial.yaml");
    let docs: Vec<&str> = text.split("\n---\n").collect();
    let reordered = [docs[0], docs[3], docs[4], docs[1], docs[2]].join("\n---\n");
    let inputs = agentgateway_compiler::parse_manifests(&[("t.yaml".into(), reordered)]).unwrap();
    let config = compile_standalone(&inputs).unwrap().config;
    let listener = &config.listeners[0];
    let first = &listener.rules[listener.matches[0].rule as usize];
    assert_eq!(first.route, "agentgateway-system/llm-pool");
}

#[test]
fn creation_timestamps_decide_ties_and_equal_timestamps_fall_back_to_the_name() {
    let mut inputs = parse_fixture("tutorial.yaml");
    let time = |s: &str| Some(Time(s.parse().unwrap()));
    // local-llm is first in the file but llm-pool was created earlier.
    inputs.routes[0].metadata.creation_timestamp = time("2025-01-02T00:00:00Z");
    inputs.routes[1].metadata.creation_timestamp = time("2025-01-01T00:00:00Z");
    let config = compile_standalone(&inputs).unwrap().config;
    let listener = &config.listeners[0];
    assert_eq!(
        listener.rules[listener.matches[0].rule as usize].route,
        "agentgateway-system/llm-pool"
    );

    // Same second (kubectl apply of one file): alphabetical namespace/name, whatever the input order.
    inputs.routes[0].metadata.creation_timestamp = time("2025-01-01T00:00:00Z");
    for routes in [
        inputs.routes.clone(),
        inputs.routes.iter().rev().cloned().collect(),
    ] {
        inputs.routes = routes;
        let config = compile_standalone(&inputs).unwrap().config;
        let listener = &config.listeners[0];
        assert_eq!(
            listener.rules[listener.matches[0].rule as usize].route,
            "agentgateway-system/llm-pool"
        );
    }
}

#[test]
fn the_operator_compiles_the_tutorial_gateway_with_both_routes_attached() {
    let inputs = parse_fixture("tutorial.yaml");
    let compilation = compile_gateway(&inputs.gateways[0], &inputs);
    // Both routes match everything: the first one wins (no creation times here), and the other
    // is told that it receives no traffic.
    let problems: Vec<_> = compilation
        .diagnostics
        .iter()
        .map(|d| (d.object.name.as_str(), d.reason))
        .collect();
    assert_eq!(problems, [("llm-pool", Reason::RuleMatchConflict)]);
    assert_eq!(compilation.compiled.config, expected_config());
    assert_eq!(compilation.attached_routes.get("http"), Some(&2));
}

#[test]
fn the_compiled_config_round_trips_through_yaml() {
    let config = compile_standalone(&parse_fixture("tutorial.yaml"))
        .unwrap()
        .config;
    let yaml = serde_yaml::to_string(&config).unwrap();
    let back: ProxyConfig = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(back, config);
}

#[test]
fn after_cleanup_nothing_of_the_tutorial_is_left_in_the_config() {
    let mut inputs = parse_fixture("tutorial.yaml");
    inputs.routes.clear();
    inputs.backends.clear();
    let config = compile_standalone(&inputs).unwrap().config;
    assert_eq!(config.listeners[0].rules, vec![]);
    assert_eq!(config.listeners[0].matches, vec![]);
    assert!(config.backends.is_empty());
}
