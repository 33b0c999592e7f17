//! One Gateway URL for every client and model, against the real cluster (`#[ignore]`d;
//! `e2e/run.sh` runs it): three HTTPRoutes keyed by the request's model through plain Gateway API
//! header matches on `x-agentgateway-model` (`gpt-*` to an OpenAI backend, `claude-*` to an
//! Anthropic one, everything else to a self-hosted model), and the official openai and anthropic
//! SDKs (chat completions, Messages, Responses, the model list) each reaching the right backend.

use std::time::Duration;

use e2e::*;

const GPT_MODEL: &str = "gpt-e2e-mini";
const CLAUDE_MODEL: &str = "claude-e2e-haiku";
const LOCAL_MODEL: &str = "llama-e2e-8b";

fn manifests() -> String {
    let backend = |name: &str, kind: &str, model: &str, auth: &str| {
        format!(
            "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: {name}, namespace: {NS}}}
spec:
  ai:
    provider:
      host: host.docker.internal
      port: {MOCK_PORT}
      {kind}: {{model: {model}}}{auth}
---
"
        )
    };
    let route = |name: &str, header: Option<&str>| {
        let matches = header
            .map(|pattern| {
                format!(
                    "\n  - matches: [{{headers: [{{name: x-agentgateway-model, type: RegularExpression, value: '{pattern}'}}]}}]\n    backendRefs:"
                )
            })
            .unwrap_or_else(|| "\n  - backendRefs:".to_string());
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {NS}}}
spec:
  parentRefs: [{{name: {GATEWAY}, namespace: {NS}}}]
  rules:{matches}
    - {{name: {name}, group: agentgateway.dev, kind: AgentgatewayBackend}}
---
"
        )
    };
    let key = "\n      policies: {auth: {secretRef: {name: e2e-models-key}}}";
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: e2e-models-key, namespace: {NS}}}
stringData: {{Authorization: sk-e2e-models}}
---
{}{}{}{}{}{}",
        backend("e2e-gpt", "openai", GPT_MODEL, key),
        backend("e2e-claude-models", "anthropic", CLAUDE_MODEL, key),
        backend("e2e-self-hosted", "openai", LOCAL_MODEL, ""),
        route("e2e-gpt", Some("gpt-.*")),
        route("e2e-claude-models", Some("claude-.*")),
        route("e2e-self-hosted", None),
    )
}

/// The openai and anthropic SDKs on one Gateway URL: the model decides the backend.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s15_one_gateway_url_routes_every_client_by_model() {
    let python = std::env::var("E2E_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            env()
                .workspace
                .join("target/sdk-venv/bin/python")
                .to_string_lossy()
                .into_owned()
        });
    assert!(
        std::path::Path::new(&python).exists(),
        "no SDK venv at {python}: run `bash scripts/sdk-venv.sh` (e2e/run.sh does)"
    );
    let _fx = Fixture::up("s15");
    let mut cleanup = Cleanup::new();
    for route in ["e2e-gpt", "e2e-claude-models", "e2e-self-hosted"] {
        cleanup.kubectl(&["delete", "httproute", route, "-n", NS, "--ignore-not-found"]);
        cleanup.kubectl(&[
            "delete",
            "agentgatewaybackend",
            route,
            "-n",
            NS,
            "--ignore-not-found",
        ]);
    }
    cleanup.kubectl(&[
        "delete",
        "secret",
        "e2e-models-key",
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    let applied = std::time::Instant::now();
    apply(&manifests());
    let mut pf = PortForward::start(NS, &format!("deployment/{GATEWAY}"), free_port(), 80);
    // Served once the last route is programmed: a claude-* model reaches the Anthropic backend.
    wait_for("the claude-* route served", secs(90), poll(), || {
        pf.ensure();
        let body = serde_json::json!({"model": "claude-3-5-sonnet",
            "messages": [{"role": "user", "content": "Reply with exactly: ready"}]})
        .to_string();
        let r = http(
            pf.local_port,
            "POST",
            "/v1/chat/completions",
            Some(&body),
            Duration::from_secs(5),
        )
        .map_err(|e| e.to_string())?;
        check_completion(&r, CLAUDE_MODEL, "ready")
    });
    figure(
        "s15",
        format!(
            "three model-keyed routes served {} ms after the apply",
            ms(applied.elapsed())
        ),
    );
    pf.ensure();
    let base = format!("http://127.0.0.1:{}", pf.local_port);
    let script = env().workspace.join("tests/sdk/model_routing.py");
    let out = cmd(&python)
        .arg(&script)
        .args([&base, GPT_MODEL, CLAUDE_MODEL, LOCAL_MODEL])
        .output()
        .expect("run the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDKs were not routed by model:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    figure(
        "s15",
        format!(
            "openai + anthropic SDKs on one URL: {}",
            stdout.lines().last().unwrap_or_default()
        ),
    );
    say("s15: one Gateway URL; gpt-*, claude-* and every other model each reached their backend");
}
