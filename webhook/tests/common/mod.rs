//! Helpers shared by the integration tests: fixtures on disk and a webhook state with known Secrets.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use agentgateway_webhook::{StaticSecrets, StaticTargets, WebhookMetrics, WebhookState};
use prometheus_client::registry::Registry;
use serde_json::Value;

/// `tests/fixtures/<sub>`.
pub fn fixture_dir(sub: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(sub)
}

/// Every `*.<ext>` file of `tests/fixtures/<sub>` as (file stem, content), sorted by name.
pub fn fixtures(sub: &str, ext: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir(fixture_dir(sub))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .map(|path| {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    found.sort();
    found
}

/// One fixture file's content.
pub fn fixture(sub: &str, file: &str) -> String {
    std::fs::read_to_string(fixture_dir(sub).join(file)).unwrap()
}

/// The text after `# <tag>: ` on each comment line that has it, in order.
pub fn tagged_lines(text: &str, tag: &str) -> Vec<String> {
    let prefix = format!("# {tag}: ");
    text.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// A YAML manifest as the JSON the API server would send.
pub fn yaml_to_json(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap()
}

/// The Secrets the fixtures assume exist.
pub fn known_secrets() -> StaticSecrets {
    let secret = |ns: &str, name: &str, keys: &[&str]| {
        (
            (ns.to_string(), name.to_string()),
            keys.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>(),
        )
    };
    StaticSecrets::from([
        secret("agentgateway-system", "openai-secret", &["Authorization"]),
        secret("team-a", "openai-secret", &["Authorization"]),
        secret("team-a", "anthropic-secret", &["api-key"]),
        secret(
            "team-a",
            "bedrock-credentials",
            &["accessKeyId", "secretAccessKey"],
        ),
        secret("team-a", "vertex-service-account", &["key.json"]),
        secret("team-a", "aws-half", &["accessKeyId"]),
    ])
}

/// The objects the policy fixtures target that exist, as `(namespace, kind, name)`.
pub fn known_targets() -> StaticTargets {
    [
        ("team-a", "Gateway", "agentgateway-proxy"),
        ("team-a", "HTTPRoute", "llm"),
        ("team-a", "AgentgatewayBackend", "openai"),
    ]
    .into_iter()
    .map(|(ns, kind, name)| (ns.to_string(), kind.to_string(), name.to_string()))
    .collect()
}

/// A webhook state over [`known_secrets`] and [`known_targets`], and the registry its metrics are
/// in.
pub fn state() -> (WebhookState, Registry) {
    let mut registry = Registry::default();
    let metrics = WebhookMetrics::register(&mut registry);
    let state = WebhookState {
        secrets: Arc::new(known_secrets()),
        targets: Arc::new(known_targets()),
        metrics,
    };
    (state, registry)
}
