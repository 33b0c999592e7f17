//! Harness for the admission-webhook scenario: an operator inside the cluster's network namespace
//! (where the API server can call it), webhook configurations that reach it by URL, and the
//! figures (webhook latency as the operator and as the API server measure it).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::{
    NETNS, Out, PROXY_IMAGE, Proc, TEST_LABEL, apply, cmd, env, get_json, in_netns, kubectl,
    kubectl_ok, say, wait_for,
};

/// The namespace of the webhook scenario (its certificate Secret lives here too).
pub const WEBHOOK_NS: &str = "e2e-webhook";
/// The name of both webhook configurations of the scenario.
pub const WEBHOOK_CONFIGURATION: &str = "agentgateway-e2e-webhook";
/// Only namespaces with this label are subject to the scenario's webhooks, so a configuration
/// left behind by a crashed run cannot block other scenarios.
pub const WEBHOOK_NS_LABEL: &str = "e2e.agentgateway.dev/webhook";
/// The certificate Secret the scenario's operator generates.
pub const CERT_SECRET: &str = "agentgateway-e2e-webhook-cert";
/// The validity of the scenario's serving certificates.
pub const CERT_VALIDITY: Duration = Duration::from_secs(60);
/// The webhook port inside the netns.
pub const WEBHOOK_PORT: u16 = 19443;
/// The probe port inside the netns.
pub const HEALTH_PORT: u16 = 19081;
/// The metrics port inside the netns.
pub const METRICS_PORT: u16 = 19080;

/// Creates the scenario's namespace, subject to its webhooks.
pub fn create_webhook_namespace() {
    apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {WEBHOOK_NS}\n  labels:\n    \
         {TEST_LABEL}: \"true\"\n    {WEBHOOK_NS_LABEL}: \"true\"\n"
    ));
}

/// The operator, controllers and webhooks, inside the cluster's netns with the admin kubeconfig.
pub struct NetnsOperator {
    pub proc: Proc,
}

impl NetnsOperator {
    /// Starts it and waits until `/readyz` answers 200 (caches filled, certificate served).
    pub fn start(name: &str) -> NetnsOperator {
        let bin = env().bin_dir.join("agentgateway-operator");
        assert!(bin.exists(), "{} missing: build it first", bin.display());
        let mut c = cmd("ip");
        c.args(["netns", "exec", NETNS])
            .arg(&bin)
            .args([
                "--proxy-image",
                PROXY_IMAGE,
                "--proxy-image-pull-policy",
                "Never",
            ])
            .args(["--leader-election", "false"])
            .arg(format!("--metrics-addr=127.0.0.1:{METRICS_PORT}"))
            .arg(format!("--health-addr=127.0.0.1:{HEALTH_PORT}"))
            .arg(format!("--webhook-addr=127.0.0.1:{WEBHOOK_PORT}"))
            .arg(format!("--webhook-namespace={WEBHOOK_NS}"))
            .arg(format!("--webhook-configuration={WEBHOOK_CONFIGURATION}"))
            .arg(format!("--webhook-cert-secret={CERT_SECRET}"))
            .arg("--webhook-service=agentgateway-e2e-webhook")
            .arg("--webhook-host=127.0.0.1")
            // Short-lived: the serving certificate is renewed (same CA) every 40 s, so the
            // scenario's load also runs across routine renewals.
            .arg(format!(
                "--webhook-cert-validity={}s",
                CERT_VALIDITY.as_secs()
            ))
            .args(["--log-format", "json"])
            .env("POD_NAME", name)
            .env("HOSTNAME", name)
            .env(
                "RUST_LOG",
                "info,agentgateway_webhook=debug,kube_runtime=warn",
            );
        let mut proc = Proc::spawn(name, c);
        wait_for(
            &format!("operator {name} ready in the netns"),
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                if !proc.running() {
                    panic!("operator {name} exited; log:\n{}", proc.log_tail(60));
                }
                match netns_http(&format!("http://127.0.0.1:{HEALTH_PORT}/readyz")) {
                    Some((200, _)) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        );
        say(format!(
            "operator {name} ready in netns {NETNS} (webhooks on 127.0.0.1:{WEBHOOK_PORT})"
        ));
        NetnsOperator { proc }
    }

    /// The operator's metrics text.
    pub fn metrics(&self) -> String {
        netns_http(&format!("http://127.0.0.1:{METRICS_PORT}/metrics"))
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// The handling time (µs) of every review the operator logged since log offset `from`.
    pub fn review_durations_us(&self, from: usize) -> Vec<u64> {
        let log = self.proc.log_text();
        log.get(from..)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|v| {
                let field = v.pointer("/fields/duration_us")?;
                field.as_u64().or_else(|| field.as_str()?.parse().ok())
            })
            .collect()
    }
}

/// `curl URL` inside the netns: `(status, body)`, or `None` when it could not connect.
pub fn netns_http(url: &str) -> Option<(u16, String)> {
    let out = in_netns(&["curl", "-s", "-m", "5", "-w", "\n%{http_code}", url]);
    let (body, status) = out.stdout.rsplit_once('\n')?;
    let status: u16 = status.trim().parse().ok()?;
    (status != 0).then(|| (status, body.to_owned()))
}

/// POSTs `body` to the webhook inside the netns over TLS (trusting `ca_file`), with `--http2`
/// or `--http1.1`: `(status, http_version, body)`.
pub fn post_to_webhook(path: &str, body: &str, ca_file: &str, http2: bool) -> Out {
    let url = format!("https://127.0.0.1:{WEBHOOK_PORT}{path}");
    let version = if http2 { "--http2" } else { "--http1.1" };
    in_netns(&[
        "curl",
        "-s",
        "-m",
        "5",
        version,
        "--cacert",
        ca_file,
        "-H",
        "content-type: application/json",
        "--data-binary",
        body,
        "-w",
        "\n%{http_code} %{http_version}",
        &url,
    ])
}

/// The scenario's Validating- and MutatingWebhookConfiguration, reaching the webhooks by URL.
pub fn webhook_configurations_yaml() -> String {
    let webhook = |name: &str, path: &str, extra: &str| {
        format!(
            "webhooks:\n- name: {name}\n  clientConfig:\n    url: https://127.0.0.1:{WEBHOOK_PORT}{path}\n  \
             rules:\n  - apiGroups: [agentgateway.dev]\n    apiVersions: [v1alpha1]\n    \
             resources: [agentgatewaybackends]\n    operations: [CREATE, UPDATE]\n    scope: Namespaced\n  \
             namespaceSelector:\n    matchLabels:\n      {WEBHOOK_NS_LABEL}: \"true\"\n  \
             failurePolicy: Fail\n  sideEffects: None\n  timeoutSeconds: 5\n  \
             admissionReviewVersions: [v1]\n  matchPolicy: Equivalent\n{extra}"
        )
    };
    format!(
        "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\nmetadata:\n  \
         name: {WEBHOOK_CONFIGURATION}\n  labels:\n    {TEST_LABEL}: \"true\"\n{}---\n\
         apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  \
         name: {WEBHOOK_CONFIGURATION}\n  labels:\n    {TEST_LABEL}: \"true\"\n{}",
        webhook(
            "default.agentgateway.dev",
            "/mutate",
            "  reinvocationPolicy: Never\n"
        ),
        webhook("validate.agentgateway.dev", "/validate", ""),
    )
}

/// Deletes the scenario's webhook configurations.
pub fn delete_webhook_configurations() {
    for kind in [
        "validatingwebhookconfiguration",
        "mutatingwebhookconfiguration",
    ] {
        kubectl_ok(
            &["delete", kind, WEBHOOK_CONFIGURATION, "--ignore-not-found"],
            None,
        );
    }
}

/// The `caBundle` of the first webhook of both configurations (validating, mutating).
pub fn ca_bundles(name: &str) -> (Option<String>, Option<String>) {
    let bundle = |kind: &str| {
        get_json(&[kind, name]).and_then(|v| {
            v.pointer("/webhooks/0/clientConfig/caBundle")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
    };
    (
        bundle("validatingwebhookconfiguration"),
        bundle("mutatingwebhookconfiguration"),
    )
}

/// `kubectl ARGS` with `stdin`, which must fail; returns stderr.
pub fn kubectl_fails(args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(args, stdin);
    assert!(
        !out.ok,
        "kubectl {} should have failed\n--- stdout\n{}",
        args.join(" "),
        out.stdout
    );
    out.stderr
}

/// `kubectl apply` of `yaml` until the validating webhook refuses it (the API server may need a
/// moment to see a new webhook configuration); returns kubectl's error output.
pub fn wait_refused(yaml: &str, timeout: Duration) -> String {
    wait_for(
        "the webhook refuses the object",
        timeout,
        Duration::from_millis(300),
        || {
            let stderr = kubectl_fails(&["apply", "-f-"], Some(yaml));
            if stderr.contains("denied the request") {
                Ok(stderr)
            } else {
                Err(stderr)
            }
        },
    )
}

/// The API server's own histogram of calls to webhook `name`:
/// upper bound (seconds) → cumulative count, summed over operations and outcomes.
pub fn apiserver_webhook_histogram(name: &str) -> BTreeMap<String, u64> {
    let metrics = kubectl_ok(&["get", "--raw", "/metrics"], None);
    let mut buckets = BTreeMap::new();
    let needle = format!("name=\"{name}\"");
    for line in metrics.lines() {
        if !line.starts_with("apiserver_admission_webhook_admission_duration_seconds_bucket")
            || !line.contains(&needle)
        {
            continue;
        }
        let Some(le) = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()) else {
            continue;
        };
        let Some(count) = line.rsplit(' ').next().and_then(|c| c.parse::<f64>().ok()) else {
            continue;
        };
        *buckets.entry(le.to_owned()).or_insert(0) += count as u64;
    }
    buckets
}

/// The `q` quantile (0..1) of `values` (sorted here), nearest-rank.
pub fn quantile(values: &mut [u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

/// `count` AgentgatewayBackends (a YAML stream) named `<prefix>-<i>` in `ns`.
pub fn backends_yaml(ns: &str, prefix: &str, count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata:\n  \
                 name: {prefix}-{i}\n  namespace: {ns}\nspec:\n  ai:\n    provider:\n      \
                 host: host.docker.internal\n      port: 8090\n      openai:\n        \
                 model: m-{i}\n---\n"
            )
        })
        .collect()
}
