//! What the compiler reads: the Kubernetes objects, and where each came from so errors can point
//! at the file and document a user has to fix.

use std::collections::BTreeMap;
use std::fmt;

use agentgateway_crds::gateway_api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use agentgateway_crds::{AgentgatewayBackend, AgentgatewayPolicy};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The namespace of an object without `metadata.namespace`, as `kubectl apply` without `-n` does.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Every object the compiler may read, and what the proxies can do. The order of each list is the creation order of objects
/// that have no `metadata.creationTimestamp` (standalone files never do), so keep it stable.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Gateways: their listeners become the proxy's ports.
    pub gateways: Vec<Gateway>,
    /// HTTPRoutes: attach to Gateway listeners and send requests to backends.
    pub routes: Vec<HTTPRoute>,
    /// LLM backends that routes refer to.
    pub backends: Vec<AgentgatewayBackend>,
    /// Client authentication, rate limits and budgets attached to Gateways, routes and backends.
    pub policies: Vec<AgentgatewayPolicy>,
    /// Secrets holding provider keys (`data` decoded, `stringData` already merged into it).
    pub secrets: Vec<Secret>,
    /// ConfigMaps holding CA bundles.
    pub config_maps: Vec<ConfigMap>,
    /// Grants that let routes refer to backends in other namespaces.
    pub reference_grants: Vec<ReferenceGrant>,
    /// GatewayClasses; read for completeness, the compiler does not need them.
    pub gateway_classes: Vec<GatewayClass>,
    /// Where each object was read from; empty when the objects came from the API server.
    pub origins: Origins,
    /// Whether the proxies count in Redis: `rateLimit.global` and `budget` need it (without it
    /// they are reported `RedisNotConfigured` and not applied).
    pub shared_counters: bool,
}

/// The file and document each object was read from.
pub type Origins = BTreeMap<ObjectRef, Origin>;

/// Where an object was read from: a source (usually a file path) and a 1-based document number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The source's name, e.g. the file path.
    pub source: String,
    /// The document's number within the source, counting from 1 (empty documents count too, so the
    /// number is what a user counts in the file).
    pub document: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.source, self.document)
    }
}

/// Identifies one object: kind, namespace (empty for cluster-scoped kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// `AgentgatewayBackend`, `HTTPRoute`, `Gateway`, ...
    pub kind: String,
    /// The namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectRef {
    /// The reference of a typed object.
    pub fn of<T: KubeObject>(object: &T) -> Self {
        let meta = object.meta();
        Self {
            kind: T::KIND.to_string(),
            namespace: if T::NAMESPACED {
                namespace_of(meta).to_string()
            } else {
                String::new()
            },
            name: name_of(meta).to_string(),
        }
    }

    /// `namespace/name` (or `name` for cluster-scoped objects), the key the config uses.
    pub fn key(&self) -> String {
        if self.namespace.is_empty() {
            self.name.clone()
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.key())
    }
}

/// The objects the compiler reads: their kind and metadata.
pub trait KubeObject {
    /// The kind, as in `kind:`.
    const KIND: &'static str;
    /// Whether objects of the kind live in a namespace.
    const NAMESPACED: bool = true;
    /// The object's metadata.
    fn meta(&self) -> &ObjectMeta;
}

macro_rules! kube_object {
    ($type:ty, $kind:literal, $namespaced:literal) => {
        impl KubeObject for $type {
            const KIND: &'static str = $kind;
            const NAMESPACED: bool = $namespaced;
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
        }
    };
}

kube_object!(AgentgatewayBackend, "AgentgatewayBackend", true);
kube_object!(AgentgatewayPolicy, "AgentgatewayPolicy", true);
kube_object!(Gateway, "Gateway", true);
kube_object!(GatewayClass, "GatewayClass", false);
kube_object!(HTTPRoute, "HTTPRoute", true);
kube_object!(ReferenceGrant, "ReferenceGrant", true);
kube_object!(Secret, "Secret", true);
kube_object!(ConfigMap, "ConfigMap", true);

/// The object's namespace, `default` when unset.
pub(crate) fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
}

/// The object's name; empty when unset (the API server never hands out such objects).
pub(crate) fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// `namespace/name` of a namespaced object.
pub(crate) fn key_of(meta: &ObjectMeta) -> String {
    format!("{}/{}", namespace_of(meta), name_of(meta))
}
