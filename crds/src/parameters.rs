//! `AgentgatewayParameters` (`agentgateway.dev/v1alpha1`): how the proxy of a Gateway runs —
//! replicas or autoscaling, resources, its Service, its pods' placement and a disruption budget.
//! A Gateway points at one with `spec.infrastructure.parametersRef`; a GatewayClass gives the
//! default for its Gateways with `spec.parametersRef`. The Gateway's parameters win over the
//! class's field by field at the top level (`replicas` and `autoscaling` count as one field).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The proxy Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget of the Gateways
/// that refer to it. Unset fields keep the operator's defaults (its `--proxy-*` flags).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "agentgateway.dev",
    version = "v1alpha1",
    kind = "AgentgatewayParameters",
    plural = "agentgatewayparameters",
    singular = "agentgatewayparameters",
    shortname = "agparams",
    category = "agentgateway",
    namespaced,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AgentgatewayParametersSpec {
    /// A fixed number of proxy replicas (0 to 1000). Exclusive with `autoscaling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// A HorizontalPodAutoscaler on CPU for the proxy Deployment, owned by the Gateway. The
    /// operator then leaves the Deployment's `replicas` to the autoscaler. Exclusive with
    /// `replicas`. CPU utilization needs metrics-server in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// The proxy container's resource requests and limits (`cpu`, `memory`, ...). Replaces the
    /// operator's defaults as a whole; each request must not exceed its limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The proxy Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceParameters>,
    /// The proxy pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<PodParameters>,
    /// A PodDisruptionBudget selecting the proxy pods, owned by the Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_disruption_budget: Option<PodDisruptionBudgetParameters>,
}

/// CPU-based horizontal autoscaling.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// The fewest replicas (1 to `maxReplicas`; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    /// The most replicas (`minReplicas` to 1000).
    pub max_replicas: i32,
    /// The average CPU utilization, in percent of the CPU request, the autoscaler aims at (1 to
    /// 1000; default 80). Needs a CPU request, which the operator's defaults always set.
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    pub target_cpu_utilization_percentage: Option<i32>,
}

/// The CPU utilization target when `targetCPUUtilizationPercentage` is not set.
pub const DEFAULT_TARGET_CPU_UTILIZATION: i32 = 80;

/// The proxy Service.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceParameters {
    /// `ClusterIP` (the default), `NodePort` or `LoadBalancer`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<ServiceType>,
    /// Annotations of the Service (cloud load balancer settings, for instance; up to 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// How the proxy Service is exposed.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ServiceType {
    /// Inside the cluster only.
    #[default]
    ClusterIP,
    /// On a port of every node, too.
    NodePort,
    /// Through the cloud's (or MetalLB's) load balancer, too.
    LoadBalancer,
}

impl ServiceType {
    /// The Service `spec.type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}

/// The proxy pods.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodParameters {
    /// Annotations of the pods (up to 64; keys under `agentgateway.dev/` are the operator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels of the pods (up to 64). `app.kubernetes.io/name`,
    /// `app.kubernetes.io/managed-by` and `gateway.networking.k8s.io/gateway-name` select the
    /// pods and are the operator's: they are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// The nodes the pods may run on, by node label (up to 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Taints the pods tolerate (up to 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// How the pods spread across zones or nodes (up to 8). A constraint without
    /// `labelSelector` selects the Gateway's proxy pods. `minDomains`, `matchLabelKeys`,
    /// `nodeAffinityPolicy` and `nodeTaintsPolicy` are refused: Kubernetes 1.20 would drop them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
}

/// A PodDisruptionBudget: exactly one of `minAvailable` or `maxUnavailable`, each a number of
/// pods or a percentage (`"50%"`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodDisruptionBudgetParameters {
    /// Pods that must stay available during a voluntary disruption (a node drain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    /// Pods that may be unavailable during a voluntary disruption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

impl AgentgatewayParametersSpec {
    /// `self` (a Gateway's parameters) over `class` (its GatewayClass's), field by field at the
    /// top level; `replicas` and `autoscaling` are one field, so a Gateway that sets either
    /// replaces the class's choice entirely.
    pub fn over(&self, class: &Self) -> Self {
        let scaling_set = self.replicas.is_some() || self.autoscaling.is_some();
        let (replicas, autoscaling) = if scaling_set {
            (self.replicas, self.autoscaling.clone())
        } else {
            (class.replicas, class.autoscaling.clone())
        };
        Self {
            replicas,
            autoscaling,
            resources: self.resources.clone().or_else(|| class.resources.clone()),
            service: self.service.clone().or_else(|| class.service.clone()),
            pod: self.pod.clone().or_else(|| class.pod.clone()),
            pod_disruption_budget: self
                .pod_disruption_budget
                .clone()
                .or_else(|| class.pod_disruption_budget.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateways_fields_win_and_replicas_and_autoscaling_are_one_field() {
        let class: AgentgatewayParametersSpec = serde_yaml::from_str(
            "
autoscaling: {minReplicas: 2, maxReplicas: 6}
service: {type: LoadBalancer}
podDisruptionBudget: {minAvailable: 1}
",
        )
        .unwrap();
        let gateway: AgentgatewayParametersSpec = serde_yaml::from_str(
            "
replicas: 3
service: {type: NodePort}
",
        )
        .unwrap();
        let merged = gateway.over(&class);
        assert_eq!(merged.replicas, Some(3));
        assert_eq!(
            merged.autoscaling, None,
            "the class's autoscaling is replaced"
        );
        assert_eq!(
            merged.service.unwrap().type_,
            Some(ServiceType::NodePort),
            "the Gateway's service wins"
        );
        assert_eq!(
            merged.pod_disruption_budget.unwrap().min_available,
            Some(IntOrString::Int(1)),
            "what the Gateway leaves unset comes from the class"
        );
        let inherits = AgentgatewayParametersSpec::default().over(&class);
        assert_eq!(inherits.autoscaling.unwrap().max_replicas, 6);
    }

    #[test]
    fn the_cpu_target_is_spelled_as_in_the_hpa_v1_api() {
        let spec: AgentgatewayParametersSpec = serde_yaml::from_str(
            "autoscaling: {maxReplicas: 4, targetCPUUtilizationPercentage: 70}",
        )
        .unwrap();
        assert_eq!(
            spec.autoscaling.unwrap().target_cpu_utilization_percentage,
            Some(70)
        );
    }
}
