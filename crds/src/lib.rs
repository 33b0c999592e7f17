//! The API of agentgateway: the `AgentgatewayBackend` custom resource, the subset of the Gateway API
//! that the gateway reads, the validation rules every consumer shares, and the schema of the config
//! the proxy runs from. The single source of truth: CRD YAML is generated from these types.

pub mod backend;
pub mod conditions;
pub mod duration;
pub mod gateway_api;
pub mod parameters;
pub mod policy;
pub mod proxy_config;
pub mod validation;

pub use backend::{AgentgatewayBackend, AgentgatewayBackendSpec, AgentgatewayBackendStatus};
pub use parameters::{AgentgatewayParameters, AgentgatewayParametersSpec};
pub use policy::{AgentgatewayPolicy, AgentgatewayPolicySpec, AgentgatewayPolicyStatus};

/// The API group of our own resources.
pub const GROUP: &str = "agentgateway.dev";
/// The Gateway API group.
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";
/// The `controllerName` of our GatewayClass.
pub const CONTROLLER_NAME: &str = "agentgateway.dev/agentgateway";
/// The name of the GatewayClass the chart installs.
pub const GATEWAY_CLASS_NAME: &str = "agentgateway";

/// The CRD YAML of every custom resource we own, as committed and as `crdgen` prints it.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    use kube::CustomResourceExt;
    let backend = serde_yaml::to_string(&AgentgatewayBackend::crd())?;
    let policy = serde_yaml::to_string(&AgentgatewayPolicy::crd())?;
    let parameters = serde_yaml::to_string(&AgentgatewayParameters::crd())?;
    Ok(format!("---\n{backend}---\n{policy}---\n{parameters}"))
}
