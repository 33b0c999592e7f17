//! Harness for the chart scenario: `helm` with the cluster's kubeconfig, the values that point the
//! chart at the images `run.sh` loads, and what "nothing of ours is left" means after uninstall.

use std::time::Duration;

use crate::{NS, Out, cmd, kubectl_ok, run};

/// The release name of the tutorial's `helm install`.
pub const RELEASE: &str = "agentgateway";
/// The chart, relative to the workspace.
pub const CHART_DIR: &str = "helm/agentgateway";
/// The operator image `run.sh` loads.
pub const OPERATOR_IMAGE_REPOSITORY: &str = "agentgateway-operator";
/// The tag of both e2e images.
pub const E2E_TAG: &str = "e2e";

/// `helm ARGS` (the helm of the cluster toolkit), whatever the outcome.
pub fn helm(args: &[&str]) -> Out {
    let mut c = cmd("helm");
    c.args(args);
    run(c, None)
}

/// The `--set` flags that make the chart use the locally loaded images.
pub fn e2e_image_values() -> Vec<String> {
    [
        format!("operator.image.repository={OPERATOR_IMAGE_REPOSITORY}"),
        format!("operator.image.tag={E2E_TAG}"),
        "operator.image.pullPolicy=Never".to_owned(),
        "proxy.image.repository=agentgateway-proxy".to_owned(),
        format!("proxy.image.tag={E2E_TAG}"),
        "proxy.image.pullPolicy=Never".to_owned(),
    ]
    .into_iter()
    .flat_map(|v| ["--set".to_owned(), v])
    .collect()
}

/// Objects in the release namespace that are ours: everything but what Kubernetes puts into every
/// namespace (the `default` ServiceAccount and its token Secret, `kube-root-ca.crt`) and events.
pub fn namespace_leftovers() -> Vec<String> {
    let out = kubectl_ok(
        &[
            "get",
            "deployments,replicasets,pods,services,configmaps,secrets,serviceaccounts,roles,rolebindings,\
             leases,poddisruptionbudgets,gateways,httproutes,agentgatewaybackends",
            "-n",
            NS,
            "-o",
            "name",
        ],
        None,
    );
    out.lines()
        .filter(|l| {
            !l.is_empty()
                && *l != "configmap/kube-root-ca.crt"
                && *l != "serviceaccount/default"
                && !l.starts_with("secret/default-token-")
        })
        .map(str::to_owned)
        .collect()
}

/// Cluster-scoped objects of the release (RBAC, webhook configurations, the GatewayClass).
pub fn cluster_leftovers() -> Vec<String> {
    let mut left = Vec::new();
    let labelled = kubectl_ok(
        &[
            "get",
            "clusterroles,clusterrolebindings,validatingwebhookconfigurations,mutatingwebhookconfigurations,gatewayclasses",
            "-l",
            &format!("app.kubernetes.io/instance={RELEASE}"),
            "-o",
            "name",
        ],
        None,
    );
    left.extend(
        labelled
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
    );
    let named = kubectl_ok(
        &[
            "get",
            "validatingwebhookconfigurations,mutatingwebhookconfigurations,gatewayclasses",
            "-o",
            "name",
        ],
        None,
    );
    for line in named.lines() {
        if (line.ends_with("/agentgateway-webhook")
            || line == "gatewayclass.gateway.networking.k8s.io/agentgateway")
            && !left.iter().any(|l| l == line)
        {
            left.push(line.to_owned());
        }
    }
    left
}

/// How long garbage collection may take after `helm uninstall`.
pub const GC_TIMEOUT: Duration = Duration::from_secs(90);
