//! The proxy's HorizontalPodAutoscaler and PodDisruptionBudget. Kubernetes 1.20 serves them as
//! `autoscaling/v2beta2` and `policy/v1beta1`; newer clusters as `autoscaling/v2` (1.23+, the only
//! one from 1.26) and `policy/v1` (1.21+, the only one from 1.25). The specs this operator writes
//! (a CPU utilization target; a selector with minAvailable or maxUnavailable) are the same in both
//! versions, so each is built once with the newer k8s-openapi type and written under the version
//! the API server serves, found by discovery at startup.

use agentgateway_crds::parameters::{
    Autoscaling, DEFAULT_TARGET_CPU_UTILIZATION, PodDisruptionBudgetParameters,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::core::TypeMeta;

use super::Owner;
use crate::error::Error;

/// Which HorizontalPodAutoscaler version the API server serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub enum HpaVersion {
    /// `autoscaling/v2` (Kubernetes 1.23+).
    #[default]
    V2,
    /// `autoscaling/v2beta2` (Kubernetes 1.12 to 1.25).
    V2beta2,
}

/// Which PodDisruptionBudget version the API server serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub enum PdbVersion {
    /// `policy/v1` (Kubernetes 1.21+).
    #[default]
    V1,
    /// `policy/v1beta1` (up to Kubernetes 1.24).
    V1beta1,
}

/// The versions to write, found once at startup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
pub struct ScalingApis {
    /// For HorizontalPodAutoscalers.
    pub hpa: HpaVersion,
    /// For PodDisruptionBudgets.
    pub pdb: PdbVersion,
}

impl HpaVersion {
    /// The API resource, for a dynamic `Api`.
    pub fn resource(self) -> ApiResource {
        let version = match self {
            Self::V2 => "v2",
            Self::V2beta2 => "v2beta2",
        };
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("autoscaling", version, "HorizontalPodAutoscaler"),
            "horizontalpodautoscalers",
        )
    }
}

impl PdbVersion {
    /// The API resource, for a dynamic `Api`.
    pub fn resource(self) -> ApiResource {
        let version = match self {
            Self::V1 => "v1",
            Self::V1beta1 => "v1beta1",
        };
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("policy", version, "PodDisruptionBudget"),
            "poddisruptionbudgets",
        )
    }
}

/// The HorizontalPodAutoscaler `<gateway>` scaling the proxy Deployment on CPU utilization.
pub fn autoscaler(
    owner: &Owner,
    autoscaling: &Autoscaling,
    version: HpaVersion,
) -> Result<DynamicObject, Error> {
    let spec = HorizontalPodAutoscalerSpec {
        scale_target_ref: CrossVersionObjectReference {
            api_version: Some("apps/v1".into()),
            kind: "Deployment".into(),
            name: owner.name.clone(),
        },
        min_replicas: Some(autoscaling.min_replicas.unwrap_or(1)),
        max_replicas: autoscaling.max_replicas,
        metrics: Some(vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(
                        autoscaling
                            .target_cpu_utilization_percentage
                            .unwrap_or(DEFAULT_TARGET_CPU_UTILIZATION),
                    ),
                    ..MetricTarget::default()
                },
            }),
            ..MetricSpec::default()
        }]),
        behavior: None,
    };
    dynamic(owner, "HorizontalPodAutoscaler", &version.resource(), &spec)
}

/// The PodDisruptionBudget `<gateway>` selecting the proxy pods.
pub fn disruption_budget(
    owner: &Owner,
    budget: &PodDisruptionBudgetParameters,
    version: PdbVersion,
) -> Result<DynamicObject, Error> {
    let spec = PodDisruptionBudgetSpec {
        min_available: budget.min_available.clone(),
        max_unavailable: budget.max_unavailable.clone(),
        selector: Some(LabelSelector {
            match_labels: Some(owner.selector_labels()),
            match_expressions: None,
        }),
        unhealthy_pod_eviction_policy: None,
    };
    dynamic(owner, "PodDisruptionBudget", &version.resource(), &spec)
}

/// An object of `resource` named after the Gateway, owned by it, with `spec`.
fn dynamic(
    owner: &Owner,
    kind: &'static str,
    resource: &ApiResource,
    spec: &impl serde::Serialize,
) -> Result<DynamicObject, Error> {
    let spec = serde_json::to_value(spec).map_err(|source| Error::HashObject {
        kind,
        name: owner.name.clone(),
        source,
    })?;
    Ok(DynamicObject {
        types: Some(TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        }),
        metadata: owner.meta(owner.name.clone()),
        data: serde_json::json!({ "spec": spec }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::owner;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::json;

    fn autoscaling() -> Autoscaling {
        Autoscaling {
            min_replicas: Some(2),
            max_replicas: 6,
            target_cpu_utilization_percentage: Some(70),
        }
    }

    #[test]
    fn the_autoscaler_targets_the_deployment_on_cpu_in_both_versions() {
        for (version, api_version) in [
            (HpaVersion::V2, "autoscaling/v2"),
            (HpaVersion::V2beta2, "autoscaling/v2beta2"),
        ] {
            let hpa = autoscaler(&owner(), &autoscaling(), version).unwrap();
            let json = serde_json::to_value(&hpa).unwrap();
            assert_eq!(json["apiVersion"], api_version);
            assert_eq!(json["kind"], "HorizontalPodAutoscaler");
            assert_eq!(json["metadata"]["name"], "agentgateway-proxy");
            assert_eq!(json["metadata"]["ownerReferences"][0]["kind"], "Gateway");
            assert_eq!(
                json["spec"],
                json!({
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "agentgateway-proxy"},
                    "minReplicas": 2,
                    "maxReplicas": 6,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
                })
            );
        }
        let defaults = Autoscaling {
            max_replicas: 3,
            ..Autoscaling::default()
        };
        let json =
            serde_json::to_value(autoscaler(&owner(), &defaults, HpaVersion::V2).unwrap()).unwrap();
        assert_eq!(json["spec"]["minReplicas"], 1);
        assert_eq!(
            json["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
    }

    #[test]
    fn the_budget_selects_the_proxy_pods_in_both_versions() {
        let budget = PodDisruptionBudgetParameters {
            min_available: Some(IntOrString::String("50%".into())),
            max_unavailable: None,
        };
        for (version, api_version) in [
            (PdbVersion::V1, "policy/v1"),
            (PdbVersion::V1beta1, "policy/v1beta1"),
        ] {
            let pdb = disruption_budget(&owner(), &budget, version).unwrap();
            let json = serde_json::to_value(&pdb).unwrap();
            assert_eq!(json["apiVersion"], api_version);
            assert_eq!(json["kind"], "PodDisruptionBudget");
            assert_eq!(
                json["spec"],
                json!({
                    "minAvailable": "50%",
                    "selector": {"matchLabels": {
                        "app.kubernetes.io/name": "agentgateway-proxy",
                        "gateway.networking.k8s.io/gateway-name": "agentgateway-proxy"
                    }}
                })
            );
        }
        assert_eq!(
            PdbVersion::V1beta1.resource().plural,
            "poddisruptionbudgets"
        );
        assert_eq!(HpaVersion::V2beta2.resource().group, "autoscaling");
    }
}
