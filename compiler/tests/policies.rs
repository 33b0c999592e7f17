//! AgentgatewayPolicy: attachment field by field (backend over route over Gateway), conflicts,
//! consumers' key hashes in the credentials only, Redis-only fields, and per-target reports.

mod common;

use agentgateway_compiler::{Reason, compile_gateway, compile_standalone, policy_reports};
use agentgateway_crds::proxy_config::policy::{
    BudgetKey, ConsumerKey, FailureMode, LimitKey, LimitUnit, PolicyConfig, RatePeriod,
};
use common::{backend, parse_ok};

const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: agentgateway
  listeners: [{name: http, port: 8080, protocol: HTTP}]
---
";

fn route(name: &str, backends: &[&str]) -> String {
    let refs: Vec<String> = backends
        .iter()
        .map(|b| format!("{{group: agentgateway.dev, kind: AgentgatewayBackend, name: {b}}}"))
        .collect();
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{matches: [{{path: {{type: PathPrefix, value: /{name}}}}}], backendRefs: [{}]}}]
---
",
        refs.join(", ")
    )
}

fn policy(name: &str, created: &str, targets: &str, spec: &str) -> String {
    format!(
        "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayPolicy
metadata: {{name: {name}, creationTimestamp: '{created}'}}
spec:
  targetRefs: {targets}
{spec}
---
"
    )
}

fn key_secret(name: &str, key: &str, team: &str) -> String {
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: {name}, labels: {{agentgateway.dev/consumer-of: {team}}}}}
stringData: {{api-key: '{key}'}}
---
"
    )
}

const ON_GATEWAY: &str = "[{group: gateway.networking.k8s.io, kind: Gateway, name: gw}]";

fn on_route(name: &str) -> String {
    format!("[{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: {name}}}]")
}

fn on_backend(name: &str) -> String {
    format!("[{{group: agentgateway.dev, kind: AgentgatewayBackend, name: {name}}}]")
}

const AUTH: &str =
    "  auth: {apiKeys: {secretSelector: {matchLabels: {agentgateway.dev/consumer-of: team}}}}";

/// Every (route, backend) pair's effective policy.
fn effective(
    compiled: &agentgateway_compiler::Compiled,
) -> Vec<(String, String, Option<PolicyConfig>)> {
    let config = &compiled.config;
    config.listeners[0]
        .rules
        .iter()
        .flat_map(|rule| {
            rule.backends.iter().map(|wb| {
                (
                    rule.route.clone(),
                    wb.backend.clone().unwrap_or_default(),
                    wb.policy.as_ref().map(|id| config.policies[id].clone()),
                )
            })
        })
        .collect()
}

fn sha256(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_most_specific_target_wins_field_by_field() {
    let yaml = GATEWAY.to_string()
        + &backend("a")
        + &backend("b")
        + &route("r1", &["a", "b"])
        + &route("r2", &["a"])
        + &key_secret("alice", "sk-alice\n", "team")
        + &key_secret("bob", "sk-bob", "team")
        + &key_secret("eve", "sk-eve", "other")
        + &policy(
            "gw-wide",
            "2026-01-01T00:00:00Z",
            ON_GATEWAY,
            &format!(
                "{AUTH}\n  rateLimit: {{local: [{{tokens: 1000, per: Minute, key: consumer}}]}}"
            ),
        )
        + &policy(
            "route-one",
            "2026-01-02T00:00:00Z",
            &on_route("r1"),
            "  rateLimit: {local: [{requests: 10, per: Second, key: route}]}",
        )
        + &policy(
            "backend-b",
            "2026-01-03T00:00:00Z",
            &on_backend("b"),
            "  rateLimit: {global: [{tokens: 5, per: Hour, key: backend}]}\n  budget: {usd: 2.5, per: Month, key: consumer}\n  failureMode: Closed",
        );
    let mut inputs = parse_ok(&yaml);
    inputs.shared_counters = true;
    let compiled = compile_standalone(&inputs).unwrap_or_else(|e| panic!("{e}"));
    let pairs = effective(&compiled);
    let (r1a, r1b, r2a) = (&pairs[0], &pairs[1], &pairs[2]);
    assert_eq!(
        (r1a.0.as_str(), r1a.1.as_str()),
        ("default/r1", "default/a")
    );
    assert_eq!(
        (r1b.0.as_str(), r1b.1.as_str()),
        ("default/r1", "default/b")
    );
    assert_eq!(
        (r2a.0.as_str(), r2a.1.as_str()),
        ("default/r2", "default/a")
    );

    // r2 → a: the Gateway's auth and local limit.
    let gateway_only = r2a.2.clone().unwrap();
    let credential = gateway_only.api_keys.clone().unwrap().credential;
    assert_eq!(credential, "apikeys_default_gw-wide");
    assert_eq!(gateway_only.local.len(), 1);
    assert_eq!(gateway_only.local[0].id, "default/gw-wide/local/0");
    assert_eq!(gateway_only.local[0].unit, LimitUnit::Tokens);
    assert_eq!(gateway_only.local[0].limit, 1000);
    assert_eq!(gateway_only.local[0].per, RatePeriod::Minute);
    assert!(gateway_only.global.is_empty() && gateway_only.budget.is_none());

    // r1 → a: the route's local limit replaces the Gateway's; auth still the Gateway's.
    let route_one = r1a.2.clone().unwrap();
    assert_eq!(route_one.api_keys, gateway_only.api_keys);
    assert_eq!(route_one.local[0].id, "default/route-one/local/0");
    assert_eq!(route_one.local[0].key, LimitKey::Route);

    // r1 → b: the backend adds global and budget, with its failure mode; local from the route.
    let backend_b = r1b.2.clone().unwrap();
    assert_eq!(backend_b.local, route_one.local);
    assert_eq!(backend_b.global[0].id, "default/backend-b/global/0");
    assert_eq!(backend_b.failure_mode, FailureMode::Closed);
    let budget = backend_b.budget.unwrap();
    assert_eq!(budget.micro_usd, 2_500_000);
    assert_eq!(budget.key, BudgetKey::Consumer);
    assert_eq!(budget.failure_mode, FailureMode::Closed);

    // Equal effective policies are one entry.
    assert_eq!(compiled.config.policies.len(), 3);

    // The consumers: hashes in the credentials, trimmed, never the keys, never in the config.
    let consumers: Vec<ConsumerKey> =
        serde_json::from_str(&compiled.credentials[&credential]).unwrap();
    let pairs: Vec<(&str, String)> = consumers
        .iter()
        .map(|c| (c.consumer.as_str(), c.sha256.clone()))
        .collect();
    assert_eq!(
        pairs,
        [("alice", sha256("sk-alice")), ("bob", sha256("sk-bob"))]
    );
    let config_text = serde_yaml::to_string(&compiled.config).unwrap();
    let credentials_text = format!("{:?}", compiled.credentials);
    for key in ["sk-alice", "sk-bob", "sk-eve"] {
        assert!(!config_text.contains(key) && !credentials_text.contains(key));
    }
    assert!(!config_text.contains(&sha256("sk-alice")));
}

#[test]
fn conflicts_redis_and_missing_targets_are_reported_per_target() {
    let yaml = GATEWAY.to_string()
        + &backend("a")
        + &route("r1", &["a"])
        + &key_secret("alice", "sk-alice", "team")
        + &policy(
            "older",
            "2026-01-01T00:00:00Z",
            ON_GATEWAY,
            &format!("{AUTH}\n  budget: {{usd: 1, per: Day, key: route}}"),
        )
        + &policy(
            "younger",
            "2026-02-01T00:00:00Z",
            "[{group: gateway.networking.k8s.io, kind: Gateway, name: gw}, {group: gateway.networking.k8s.io, kind: HTTPRoute, name: missing}]",
            &format!(
                "{AUTH}\n  rateLimit: {{local: [{{requests: 1, per: Minute, key: consumer}}]}}"
            ),
        )
        + &policy(
            "broken",
            "2026-03-01T00:00:00Z",
            ON_GATEWAY,
            "  rateLimit: {local: [{requests: 0, per: Minute, key: consumer}]}",
        );
    let inputs = parse_ok(&yaml);
    let reports = policy_reports(&inputs);
    type Row = (String, String, Vec<(Reason, String)>);
    let summary: Vec<Row> = reports
        .iter()
        .flat_map(|r| {
            r.targets.iter().map(|t| {
                (
                    r.policy.name.clone(),
                    t.target.name.clone(),
                    t.diagnostics
                        .iter()
                        .map(|d| (d.reason, d.field.clone()))
                        .collect(),
                )
            })
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "older".to_string(),
                "gw".to_string(),
                vec![(Reason::RedisNotConfigured, "spec.budget".to_string())]
            ),
            (
                "younger".to_string(),
                "gw".to_string(),
                vec![(Reason::Conflicted, "spec.auth".to_string())]
            ),
            (
                "younger".to_string(),
                "missing".to_string(),
                vec![(Reason::TargetNotFound, "spec.targetRefs[1]".to_string())]
            ),
            (
                "broken".to_string(),
                "gw".to_string(),
                vec![(
                    Reason::InvalidSpec,
                    "spec.rateLimit.local[0].requests".to_string()
                )]
            ),
        ]
    );
    let conflicted = &reports[1].targets[0].diagnostics[0].message;
    assert!(conflicted.contains("default/older"), "{conflicted}");

    // Standalone mode refuses the lot; the operator serves what applies: the older policy's auth
    // and the younger's local limit, not the budget (no Redis) nor the broken policy.
    assert!(compile_standalone(&inputs).is_err());
    let compilation = compile_gateway(&inputs.gateways[0], &inputs);
    let compiled = compilation.compiled;
    let policy = effective(&compiled)[0].2.clone().unwrap();
    assert_eq!(policy.api_keys.unwrap().credential, "apikeys_default_older");
    assert_eq!(policy.local[0].id, "default/younger/local/0");
    assert!(policy.budget.is_none());
    assert!(compiled.credentials.contains_key("apikeys_default_older"));
    assert!(!compiled.credentials.contains_key("apikeys_default_younger"));
    assert_eq!(
        reports[0].targets[0].note.as_deref(),
        Some("1 consumer (alice)")
    );
}

#[test]
fn secrets_that_are_no_consumer_are_named_and_no_policy_means_no_config() {
    let yaml = GATEWAY.to_string()
        + &backend("a")
        + &route("r1", &["a"])
        + &key_secret("alice", "sk-same", "team")
        + &key_secret("carol", "sk-same", "team")
        + "apiVersion: v1
kind: Secret
metadata: {name: dave, labels: {agentgateway.dev/consumer-of: team}}
stringData: {token: x}
---
" + &policy("p", "2026-01-01T00:00:00Z", ON_GATEWAY, AUTH);
    let inputs = parse_ok(&yaml);
    let reports = policy_reports(&inputs);
    assert_eq!(
        reports[0].targets[0].note.as_deref(),
        Some(
            "1 consumer (alice); Secrets that are no consumer: carol (same key as alice), dave (no key \"api-key\")"
        )
    );
    let plain = common::compile(&(GATEWAY.to_string() + &backend("a") + &route("r1", &["a"])));
    assert!(plain.config.policies.is_empty());
    assert!(effective(&plain).iter().all(|(_, _, p)| p.is_none()));
}
