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

/// The port of the cloud providers' test server in the netns (8090 is the tutorial's model, 8091
/// another scenario's).
const CLOUD_PORT: u16 = 8093;
const AWS_KEY_ID: &str = "AKIDE2ETEST";
const AWS_SECRET: &str = "e2e/aws+secret";
const SERVICE_ACCOUNT: &str = include_str!("../../mock-llm/testdata/vertex-service-account.json");

fn cloud_manifests(service_account: &str) -> String {
    let service_account = serde_json::to_string(service_account).expect("a JSON string");
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: e2e-aws, namespace: {NS}}}
stringData: {{accessKeyId: {AWS_KEY_ID}, secretAccessKey: '{AWS_SECRET}'}}
---
apiVersion: v1
kind: Secret
metadata: {{name: e2e-vertex-sa, namespace: {NS}}}
stringData:
  service-account.json: {service_account}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: e2e-bedrock, namespace: {NS}}}
spec:
  ai:
    provider:
      host: host.docker.internal
      port: {CLOUD_PORT}
      bedrock: {{region: eu-west-3, model: 'anthropic.claude-e2e-v1:0'}}
      policies: {{auth: {{aws: {{secretRef: {{name: e2e-aws}}}}}}}}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: e2e-vertex, namespace: {NS}}}
spec:
  ai:
    groups:
    - providers:
      - name: gemini
        host: host.docker.internal
        port: {CLOUD_PORT}
        vertexai: {{projectId: agw-test-project, region: us-central1, model: gemini-e2e}}
        policies: {{auth: {{gcp: {{secretRef: {{name: e2e-vertex-sa}}}}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: e2e-clouds, namespace: {NS}}}
spec:
  parentRefs: [{{name: {GATEWAY}, namespace: {NS}}}]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /bedrock}}}}]
    backendRefs: [{{name: e2e-bedrock, group: agentgateway.dev, kind: AgentgatewayBackend}}]
  - matches: [{{path: {{type: PathPrefix, value: /vertex}}}}]
    backendRefs: [{{name: e2e-vertex, group: agentgateway.dev, kind: AgentgatewayBackend}}]
"
    )
}

/// A `bedrock` and a `vertexai` provider behind the tutorial's Gateway: the operator reads the
/// AWS keys and the service-account key from their Secrets into the proxy's credentials (never
/// the ConfigMap), and the proxy signs with SigV4 and obtains a token with the JWT grant, both
/// verified by the test server.
#[test]
#[ignore = "needs the e2e cluster: run `bash e2e/run.sh`"]
fn s14_cloud_providers_sign_and_get_tokens_behind_the_tutorial_gateway() {
    let _fx = Fixture::up("s14c");
    let mut key: serde_json::Value =
        serde_json::from_str(SERVICE_ACCOUNT).expect("the test key is JSON");
    key["token_uri"] = format!("http://host.docker.internal:{CLOUD_PORT}/token").into();
    let key_file = std::env::temp_dir().join("s14-vertex-service-account.json");
    std::fs::write(&key_file, key.to_string()).expect("write the test key");
    let key_path = key_file.to_string_lossy().to_string();
    let _cloud = start_mock_llm(
        "s14-cloud-mock-llm",
        &format!("{NODE_IP}:{CLOUD_PORT}"),
        MODEL,
        &[
            "--aws-access-key-id",
            AWS_KEY_ID,
            "--aws-secret-access-key",
            AWS_SECRET,
            "--vertex-service-account",
            &key_path,
        ],
    );
    let mut cleanup = Cleanup::new();
    cleanup.kubectl(&[
        "delete",
        "httproute",
        "e2e-clouds",
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    for backend in ["e2e-bedrock", "e2e-vertex"] {
        cleanup.kubectl(&[
            "delete",
            "agentgatewaybackend",
            backend,
            "-n",
            NS,
            "--ignore-not-found",
        ]);
    }
    for secret in ["e2e-aws", "e2e-vertex-sa"] {
        cleanup.kubectl(&["delete", "secret", secret, "-n", NS, "--ignore-not-found"]);
    }
    apply(&cloud_manifests(&key.to_string()));
    let mut pf = PortForward::start(NS, &format!("deployment/{GATEWAY}"), free_port(), 80);
    for (path, model, text) in [
        (
            "/bedrock",
            "anthropic.claude-e2e-v1:0",
            "signed for bedrock",
        ),
        ("/vertex", "gemini-e2e", "granted on vertex"),
    ] {
        let (took, reply) = wait_served(
            &mut pf,
            path,
            &format!("{path}/v1/chat/completions"),
            text,
            secs(90),
            |r| check_completion(r, model, text),
        );
        figure(
            "s14",
            format!(
                "{path} served through the tutorial Gateway {} ms after the apply; usage {}",
                ms(took),
                reply["usage"]
            ),
        );
    }
    let config_maps = kubectl_ok(&["get", "configmaps", "-n", NS, "-o", "json"], None);
    for secret in [AWS_SECRET, "BEGIN PRIVATE KEY"] {
        assert!(
            !config_maps.contains(secret),
            "a credential reached a ConfigMap"
        );
    }
    say("s14: bedrock (SigV4) and vertexai (JWT grant, bearer token) served in the cluster");
}
