//! Providers of other kinds than OpenAI behind the tutorial's Gateway, against the real 1.20
//! cluster (`#[ignore]`d; `e2e/run.sh` runs them). The test LLM server in the netns speaks each
//! provider's native API and checks what it receives.

use std::time::Duration;

use e2e::*;

const BACKEND: &str = "e2e-claude";

fn manifests() -> String {
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: {BACKEND}-key, namespace: {NS}}}
stringData:
  Authorization: sk-ant-e2e
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: {BACKEND}, namespace: {NS}}}
spec:
  ai:
    provider:
      host: host.docker.internal
      port: {MOCK_PORT}
      anthropic: {{model: claude-e2e}}
      policies:
        auth:
          secretRef: {{name: {BACKEND}-key}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {BACKEND}, namespace: {NS}}}
spec:
  parentRefs: [{{name: {GATEWAY}, namespace: {NS}}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /claude}}}}]
    backendRefs: [{{name: {BACKEND}, group: agentgateway.dev, kind: AgentgatewayBackend}}]
"
    )
}

/// One backend with an `anthropic` provider, served through the tutorial's Gateway: the OpenAI
/// chat completion the tutorial sends comes back from the Messages API in OpenAI's shape, and a
/// stream as chat completion chunks ending in `[DONE]`.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s14_an_anthropic_provider_behind_the_tutorial_gateway() {
    let _fx = Fixture::up("s14");
    let mut cleanup = Cleanup::new();
    cleanup.kubectl(&[
        "delete",
        "httproute",
        BACKEND,
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    cleanup.kubectl(&[
        "delete",
        "agentgatewaybackend",
        BACKEND,
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    cleanup.kubectl(&[
        "delete",
        "secret",
        &format!("{BACKEND}-key"),
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    apply(&manifests());
    wait_for("the anthropic backend Accepted", secs(60), poll(), || {
        let backend = get_json(&["agentgatewaybackend", BACKEND, "-n", NS]).ok_or("no backend")?;
        match condition(&backend, "Accepted") {
            Some((status, _, _)) if status == "True" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let mut pf = PortForward::start(NS, &format!("deployment/{GATEWAY}"), free_port(), 80);
    let (took, reply) = wait_served(
        &mut pf,
        "the anthropic route",
        "/claude/v1/chat/completions",
        "claude ok",
        secs(60),
        |r| check_completion(r, "claude-e2e", "claude ok"),
    );
    figure(
        "s14",
        format!(
            "anthropic provider served through the tutorial Gateway {} ms after the apply; usage {}",
            ms(took),
            reply["usage"]
        ),
    );
    pf.ensure();
    let body = serde_json::json!({
        "model": "", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Reply with exactly: streamed from claude"}],
    })
    .to_string();
    let streamed = http(
        pf.local_port,
        "POST",
        "/claude/v1/chat/completions",
        Some(&body),
        Duration::from_secs(10),
    )
    .expect("the streaming request");
    assert_eq!(streamed.status, 200, "{}", streamed.body);
    let chunks: Vec<&str> = streamed
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(chunks.last().copied(), Some("[DONE]"), "{}", streamed.body);
    let text: String = chunks
        .iter()
        .filter_map(|c| serde_json::from_str::<serde_json::Value>(c).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "streamed from claude");
    assert!(
        chunks.iter().any(|c| c.contains("\"completion_tokens\"")),
        "a usage chunk: {}",
        streamed.body
    );
    say("s14: anthropic provider answered a chat completion and a stream in OpenAI's shape");
}
