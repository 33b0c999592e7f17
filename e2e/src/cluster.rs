//! CRDs, platform objects, namespaces and the proxy Deployment's readiness.

use super::*;

/// Applies our CRD and the Gateway API CRDs (server-side) and waits until they are established.
pub fn install_crds() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let e = env();
        let ours = e.workspace.join("crds/agentgateway.dev.yaml");
        let gw = e.workspace.join("e2e/crds/gateway-api.yaml");
        for f in [&ours, &gw] {
            kubectl_ok(
                &[
                    "apply",
                    "--server-side",
                    "--force-conflicts",
                    "--field-manager",
                    "agentgateway-e2e",
                    "-f",
                    &f.display().to_string(),
                ],
                None,
            );
        }
        kubectl_ok(
            &[
                "wait",
                "--for",
                "condition=established",
                "--timeout=60s",
                "crd/agentgatewaybackends.agentgateway.dev",
                "crd/gatewayclasses.gateway.networking.k8s.io",
                "crd/gateways.gateway.networking.k8s.io",
                "crd/httproutes.gateway.networking.k8s.io",
                "crd/referencegrants.gateway.networking.k8s.io",
            ],
            None,
        );
    });
}

/// What the Helm chart will create: the namespace, the GatewayClass `agentgateway` and the
/// default Gateway `agentgateway-proxy` (listener `http`, port 80).
pub const PLATFORM_YAML: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: agentgateway-system
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: agentgateway
spec:
  controllerName: agentgateway.dev/agentgateway
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: agentgateway-proxy
  namespace: agentgateway-system
spec:
  gatewayClassName: agentgateway
  listeners:
  - name: http
    port: 80
    protocol: HTTP
"#;

/// Applies [`PLATFORM_YAML`].
pub fn ensure_platform() {
    apply(PLATFORM_YAML);
}

/// A Gateway of class `agentgateway` with one HTTP listener on port 80.
pub fn gateway_yaml(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: {name}\n  \
         namespace: {ns}\n  labels:\n    {TEST_LABEL}: \"true\"\nspec:\n  gatewayClassName: agentgateway\n  \
         listeners:\n  - name: http\n    port: 80\n    protocol: HTTP\n"
    )
}

/// Creates a namespace labelled as a test namespace.
pub fn create_test_namespace(ns: &str) {
    apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n  labels:\n    {TEST_LABEL}: \"true\"\n"
    ));
}

/// `kubectl` arguments that delete a namespace and wait until it is gone.
pub(crate) fn delete_namespace_args(ns: &str) -> [&str; 6] {
    [
        "delete",
        "namespace",
        ns,
        "--ignore-not-found",
        "--wait=true",
        "--timeout=120s",
    ]
}

/// Deletes a namespace and waits until it is gone.
pub fn delete_namespace(ns: &str) {
    kubectl_ok(&delete_namespace_args(ns), None);
}

/// The objects the operator creates for Gateway `gateway`, as `(kind, name)`.
pub fn proxy_objects(gateway: &str) -> Vec<(String, String)> {
    vec![
        ("deployment".into(), gateway.into()),
        ("service".into(), gateway.into()),
        ("serviceaccount".into(), gateway.into()),
        ("role".into(), gateway.into()),
        ("rolebinding".into(), gateway.into()),
        ("configmap".into(), format!("{gateway}-config")),
        ("secret".into(), format!("{gateway}-credentials")),
    ]
}

/// Waits until none of `objects` (`(kind, name)`) exists in `ns`.
pub fn wait_gone(what: &str, ns: &str, objects: &[(String, String)], timeout: Duration) {
    wait_for(what, timeout, Duration::from_millis(250), || {
        let left: Vec<String> = objects
            .iter()
            .filter(|(kind, name)| get_json(&[kind, name, "-n", ns]).is_some())
            .map(|(kind, name)| format!("{kind}/{name}"))
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still there: {left:?}"))
        }
    });
}

/// The resident memory of process `pid` in MiB (`VmRSS`).
pub fn rss_mib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// A Deployment's `spec.selector.matchLabels` as a `-l` selector (`k=v,k2=v2`).
pub fn label_selector(deployment: &serde_json::Value) -> String {
    deployment["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// Waits until the proxy Deployment of `gateway` exists and all its replicas are fresh and Ready
/// (no old pod is still terminating, so a port-forward lands on a live pod).
pub fn wait_proxy_ready(ns: &str, gateway: &str, timeout: Duration) -> Duration {
    let start = Instant::now();
    let dep = wait_for(
        &format!("Deployment {ns}/{gateway} (created by the operator)"),
        timeout,
        Duration::from_millis(250),
        || get_json(&["deployment", gateway, "-n", ns]).ok_or_else(|| "not found".to_owned()),
    );
    let selector = label_selector(&dep);
    let left = timeout
        .saturating_sub(start.elapsed())
        .max(Duration::from_secs(5));
    wait_for(
        &format!("Deployment {ns}/{gateway} Ready"),
        left,
        Duration::from_millis(250),
        || {
            let dep = get_json(&["deployment", gateway, "-n", ns])
                .ok_or_else(|| "deployment gone".to_owned())?;
            let want = dep["spec"]["replicas"].as_u64().unwrap_or(1);
            let st = &dep["status"];
            let rolled = dep["metadata"]["generation"] == st["observedGeneration"]
                && st["updatedReplicas"].as_u64() == Some(want)
                && st["readyReplicas"].as_u64() == Some(want)
                && st["replicas"].as_u64() == Some(want);
            let pods = kubectl_json(&["get", "pods", "-n", ns, "-l", &selector]);
            let pods = pods["items"].as_array().cloned().unwrap_or_default();
            let ready = pods
                .iter()
                .filter(|p| {
                    p["metadata"]["deletionTimestamp"].is_null()
                        && p["status"]["conditions"].as_array().is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        })
                })
                .count();
            if rolled && pods.len() as u64 == want && ready as u64 == want {
                Ok(())
            } else {
                let phases: Vec<String> = pods
                    .iter()
                    .map(|p| {
                        let waiting =
                            p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                                .as_str()
                                .unwrap_or("");
                        format!(
                            "{} {} {waiting}",
                            p["metadata"]["name"].as_str().unwrap_or("?"),
                            p["status"]["phase"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                Err(format!("status {st}; pods {phases:?}"))
            }
        },
    );
    start.elapsed()
}

/// The ClusterIP of Service `name` in `ns`.
pub fn service_cluster_ip(ns: &str, name: &str) -> std::net::IpAddr {
    let ip = kubectl_ok(
        &[
            "get",
            "service",
            name,
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
        None,
    );
    ip.trim()
        .parse()
        .unwrap_or_else(|e| panic!("Service {ns}/{name} ClusterIP {ip:?}: {e}"))
}
