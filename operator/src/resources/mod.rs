//! The objects that run one Gateway's proxy, built as pure functions of the Gateway, its compiled
//! config and the operator's flags: ServiceAccount, Role, RoleBinding, ConfigMap, Secret, Service
//! and Deployment, each owned by the Gateway so deleting it garbage-collects them.

mod config;
mod ports;
mod rbac;
mod scaling;
mod shape;
mod workload;

use std::collections::BTreeMap;

use agentgateway_compiler::Compiled;
use agentgateway_crds::gateway_api::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::DynamicObject;

pub use config::{config_map, credentials_secret, generation_of};
pub use ports::{ListenerPort, listener_ports, port_name};
pub use rbac::{role, role_binding, service_account};
pub use scaling::{HpaVersion, PdbVersion, ScalingApis, autoscaler, disruption_budget};
pub use shape::ProxyShape;
pub use workload::{METRICS_PORT, READY_PORT, deployment, service};

use crate::error::Error;
use crate::redis::{PasswordState, RedisSettings};

/// `app.kubernetes.io/name` of every proxy object.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The value of [`NAME_LABEL`].
pub const PROXY_NAME: &str = "agentgateway-proxy";
/// `app.kubernetes.io/managed-by` of every object the operator creates; the operator's caches of
/// owned objects select on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "agentgateway-operator";
/// The Gateway a proxy object belongs to.
pub const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

/// How every proxy Deployment is run (from the operator's flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySettings {
    /// The container image.
    pub image: String,
    /// `Always`, `IfNotPresent` or `Never`.
    pub image_pull_policy: String,
    /// Replicas of each Deployment.
    pub replicas: i32,
    /// CPU request, e.g. `50m`.
    pub cpu_request: String,
    /// Memory request, e.g. `32Mi`.
    pub memory_request: String,
    /// CPU limit.
    pub cpu_limit: String,
    /// Memory limit.
    pub memory_limit: String,
    /// `RUST_LOG` of the proxy.
    pub log_level: String,
    /// Names of the pods' image pull secrets (in the Gateway's namespace).
    pub image_pull_secrets: Vec<String>,
    /// The Redis the proxies count shared limits and budgets in; `None`: no Redis.
    pub redis: Option<RedisSettings>,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            image: "agentgateway-proxy:dev".into(),
            image_pull_policy: "IfNotPresent".into(),
            replicas: 1,
            cpu_request: "50m".into(),
            memory_request: "32Mi".into(),
            cpu_limit: "1".into(),
            memory_limit: "256Mi".into(),
            log_level: "info".into(),
            image_pull_secrets: Vec::new(),
            redis: None,
        }
    }
}

/// Every object of one Gateway's proxy, in the order they are applied: identity and permissions
/// first, so the pods find them when they start.
#[derive(Clone, serde::Serialize)]
pub struct ProxyObjects {
    /// `<gateway>`.
    pub service_account: ServiceAccount,
    /// `<gateway>`: read access to exactly the ConfigMap and Secret below.
    pub role: Role,
    /// `<gateway>`.
    pub role_binding: RoleBinding,
    /// `<gateway>-config`: the compiled config (never a key).
    pub config_map: ConfigMap,
    /// `<gateway>-credentials`: the keys the config refers to, the hashes of the consumers' API
    /// keys and the Redis password.
    pub secret: Secret,
    /// What runs the proxy; `None` while the Gateway's parameters are invalid, so that what runs
    /// is kept as it is rather than rebuilt with the defaults.
    pub workload: Option<Workload>,
}

/// The objects that run and expose the proxy, shaped by the Gateway's parameters.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Workload {
    /// `<gateway>`: absent while the Gateway has no servable listener (a Service needs a port).
    pub service: Option<Service>,
    /// `<gateway>`: the proxy.
    pub deployment: Deployment,
    /// `<gateway>`: with `autoscaling`; deleted when it goes.
    pub autoscaler: Option<DynamicObject>,
    /// `<gateway>`: with `podDisruptionBudget`; deleted when it goes.
    pub disruption_budget: Option<DynamicObject>,
}

/// Names only: the credentials Secret holds provider keys, which never reach a `Debug` output.
impl std::fmt::Debug for ProxyObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |meta: &ObjectMeta| meta.name.clone().unwrap_or_default();
        f.debug_struct("ProxyObjects")
            .field("service_account", &name(&self.service_account.metadata))
            .field("role", &name(&self.role.metadata))
            .field("role_binding", &name(&self.role_binding.metadata))
            .field("config_map", &name(&self.config_map.metadata))
            .field("secret", &name(&self.secret.metadata))
            .field("workload", &self.workload)
            .finish()
    }
}

/// Builds every object of `gateway`'s proxy; `password` is the Redis password as it is now;
/// `shape` is what its parameters say, or, when they are invalid, `Err` with only the Gateway's
/// infrastructure labels and annotations (no workload is built, and the objects that are keep
/// their labels); `apis` the autoscaler and budget versions the cluster serves.
pub fn build(
    gateway: &Gateway,
    compiled: &Compiled,
    settings: &ProxySettings,
    password: &PasswordState,
    shape: Result<&ProxyShape, &ProxyShape>,
    apis: ScalingApis,
) -> Result<ProxyObjects, Error> {
    let owner = Owner::of(gateway)?;
    let ports = listener_ports(&compiled.config);
    let config_map = config_map(&owner, &compiled.config, &compiled.credentials)?;
    let redis_password = match password {
        PasswordState::Read(password) => Some(password),
        PasswordState::None | PasswordState::Missing => None,
    };
    let workload = match shape {
        Ok(shape) => Some(workload(&owner, settings, &ports, password, shape, apis)?),
        Err(_) => None,
    };
    let mut objects = ProxyObjects {
        service_account: service_account(&owner),
        role: role(&owner),
        role_binding: role_binding(&owner),
        config_map,
        secret: credentials_secret(&owner, &compiled.credentials, redis_password),
        workload,
    };
    objects.decorate(shape.unwrap_or_else(|infrastructure| infrastructure));
    Ok(objects)
}

/// The Deployment, Service, autoscaler and budget of the proxy.
fn workload(
    owner: &Owner,
    settings: &ProxySettings,
    ports: &[ListenerPort],
    password: &PasswordState,
    shape: &ProxyShape,
    apis: ScalingApis,
) -> Result<Workload, Error> {
    let parameters = &shape.parameters;
    let autoscaler = match &parameters.autoscaling {
        Some(autoscaling) => Some(autoscaler(owner, autoscaling, apis.hpa)?),
        None => None,
    };
    let disruption_budget = match &parameters.pod_disruption_budget {
        Some(budget) => Some(disruption_budget(owner, budget, apis.pdb)?),
        None => None,
    };
    Ok(Workload {
        service: service(owner, ports, shape),
        deployment: deployment(owner, settings, ports, password, shape),
        autoscaler,
        disruption_budget,
    })
}

impl ProxyObjects {
    /// Puts the Gateway's `spec.infrastructure` labels and annotations on every object (Gateway
    /// API: they go on every resource created for the Gateway).
    fn decorate(&mut self, shape: &ProxyShape) {
        shape.decorate(&mut self.service_account.metadata);
        shape.decorate(&mut self.role.metadata);
        shape.decorate(&mut self.role_binding.metadata);
        shape.decorate(&mut self.config_map.metadata);
        shape.decorate(&mut self.secret.metadata);
        if let Some(workload) = &mut self.workload {
            if let Some(service) = &mut workload.service {
                shape.decorate(&mut service.metadata);
            }
            shape.decorate(&mut workload.deployment.metadata);
            if let Some(hpa) = &mut workload.autoscaler {
                shape.decorate(&mut hpa.metadata);
            }
            if let Some(pdb) = &mut workload.disruption_budget {
                shape.decorate(&mut pdb.metadata);
            }
        }
    }
}

/// The Gateway that owns the objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The Gateway's name; also the name of the Deployment, Service, ServiceAccount and Role.
    pub name: String,
    /// The Gateway's namespace, where every object lives.
    pub namespace: String,
    /// The Gateway's uid, for the ownerReferences.
    pub uid: String,
}

impl Owner {
    /// The owner data of `gateway`.
    pub fn of(gateway: &Gateway) -> Result<Self, Error> {
        let name = gateway.metadata.name.clone().ok_or(Error::MissingField {
            kind: "Gateway",
            name: String::new(),
            field: "metadata.name",
        })?;
        let missing = |field| Error::MissingField {
            kind: "Gateway",
            name: name.clone(),
            field,
        };
        let namespace = gateway
            .metadata
            .namespace
            .clone()
            .ok_or_else(|| missing("metadata.namespace"))?;
        let uid = gateway
            .metadata
            .uid
            .clone()
            .ok_or_else(|| missing("metadata.uid"))?;
        Ok(Self {
            name,
            namespace,
            uid,
        })
    }

    /// `namespace/name` of the Gateway.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// `<gateway>-config`.
    pub fn config_map_name(&self) -> String {
        format!("{}-config", self.name)
    }

    /// `<gateway>-credentials`.
    pub fn secret_name(&self) -> String {
        format!("{}-credentials", self.name)
    }

    /// The labels of every object: what selects the pods and what the caches watch.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
        labels
    }

    /// The pod selector. Immutable once a Deployment exists, so it never changes.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (NAME_LABEL.into(), PROXY_NAME.into()),
            (GATEWAY_NAME_LABEL.into(), label_value(&self.name)),
        ])
    }

    /// The controller reference to the Gateway: garbage collection deletes the object with it.
    pub fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: format!("{}/v1", agentgateway_crds::GATEWAY_API_GROUP),
            kind: "Gateway".into(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// Metadata of an owned object named `name`.
    pub fn meta(&self, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.reference()]),
            ..ObjectMeta::default()
        }
    }
}

/// A label value holds at most 63 characters and ends alphanumeric; Gateway names may be longer.
fn label_value(name: &str) -> String {
    let mut value: String = name.chars().take(63).collect();
    while value.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        value.pop();
    }
    value
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The tutorial's Gateway.
    pub(crate) fn owner() -> Owner {
        Owner {
            name: "agentgateway-proxy".into(),
            namespace: "agentgateway-system".into(),
            uid: "uid-1".into(),
        }
    }

    #[test]
    fn every_object_is_owned_by_the_gateway_as_its_controller() {
        let reference = owner().reference();
        assert_eq!(reference.api_version, "gateway.networking.k8s.io/v1");
        assert_eq!(reference.kind, "Gateway");
        assert_eq!(reference.uid, "uid-1");
        assert_eq!(reference.controller, Some(true));
        assert_eq!(reference.block_owner_deletion, Some(true));
    }

    #[test]
    fn objects_carry_the_three_labels() {
        let labels = owner().labels();
        assert_eq!(labels[NAME_LABEL], "agentgateway-proxy");
        assert_eq!(labels[MANAGED_BY_LABEL], "agentgateway-operator");
        assert_eq!(labels[GATEWAY_NAME_LABEL], "agentgateway-proxy");
    }

    #[test]
    fn a_long_gateway_name_still_makes_a_valid_label_value() {
        let long = format!("{}-x", "a".repeat(62));
        assert_eq!(label_value(&long), "a".repeat(62));
    }

    #[test]
    fn the_debug_output_of_the_proxy_objects_shows_no_key() {
        let gateway: Gateway = serde_yaml::from_str(
            "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns, uid: u}
spec:
  gatewayClassName: agentgateway
  listeners: [{name: http, port: 80, protocol: HTTP}]
",
        )
        .unwrap();
        let compiled = Compiled {
            credentials: agentgateway_crds::proxy_config::Credentials::from([(
                "id".to_string(),
                "sk-very-secret".to_string(),
            )]),
            ..Compiled::default()
        };
        let password = PasswordState::Read(crate::redis::RedisPassword::new("redis-pass", "1"));
        let objects = build(
            &gateway,
            &compiled,
            &ProxySettings::default(),
            &password,
            Ok(&ProxyShape::default()),
            ScalingApis::default(),
        )
        .unwrap();
        let debug = format!("{objects:?}");
        assert!(debug.contains("gw-credentials"), "{debug}");
        assert!(!debug.contains("sk-very-secret"));
        assert!(!debug.contains("redis-pass"));
        // As bytes, too: k8s-openapi prints a ByteString's bytes.
        assert!(!debug.contains("115, 107, 45"));
    }

    #[test]
    fn a_gateway_without_uid_is_refused() {
        let gateway = Gateway {
            metadata: ObjectMeta {
                name: Some("gw".into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            spec: Default::default(),
            status: None,
        };
        assert!(matches!(
            Owner::of(&gateway),
            Err(Error::MissingField {
                field: "metadata.uid",
                ..
            })
        ));
    }
}
