//! Lookup tables over [`Inputs`], built once per compilation so every reference resolves in
//! O(log n) and in the same way everywhere.

use std::collections::BTreeMap;

use agentgateway_crds::{AgentgatewayBackend, GROUP};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::inputs::{Inputs, key_of, namespace_of};

/// Objects by `namespace/name`. When the inputs hold the same object twice the first one counts,
/// as `parse_manifests` refuses duplicates and the API server never returns them.
pub(crate) struct Index<'a> {
    pub(crate) inputs: &'a Inputs,
    backends: BTreeMap<String, &'a AgentgatewayBackend>,
    secrets: BTreeMap<String, &'a Secret>,
    config_maps: BTreeMap<String, &'a ConfigMap>,
}

impl<'a> Index<'a> {
    pub(crate) fn new(inputs: &'a Inputs) -> Self {
        fn by_key<T>(items: &[T], meta: impl Fn(&T) -> &ObjectMeta) -> BTreeMap<String, &T> {
            let mut map = BTreeMap::new();
            for item in items {
                map.entry(key_of(meta(item))).or_insert(item);
            }
            map
        }
        Self {
            inputs,
            backends: by_key(&inputs.backends, |b| &b.metadata),
            secrets: by_key(&inputs.secrets, |s| &s.metadata),
            config_maps: by_key(&inputs.config_maps, |c| &c.metadata),
        }
    }

    /// Every backend, by `namespace/name`.
    pub(crate) fn backends(&self) -> &BTreeMap<String, &'a AgentgatewayBackend> {
        &self.backends
    }

    pub(crate) fn backend(&self, key: &str) -> Option<&'a AgentgatewayBackend> {
        self.backends.get(key).copied()
    }

    pub(crate) fn secret(&self, namespace: &str, name: &str) -> Option<&'a Secret> {
        self.secrets.get(&format!("{namespace}/{name}")).copied()
    }

    pub(crate) fn config_map(&self, namespace: &str, name: &str) -> Option<&'a ConfigMap> {
        self.config_maps
            .get(&format!("{namespace}/{name}"))
            .copied()
    }

    /// Whether a ReferenceGrant in `target_namespace` lets HTTPRoutes of `route_namespace` refer to
    /// the AgentgatewayBackend `name`.
    pub(crate) fn route_may_refer_to_backend(
        &self,
        route_namespace: &str,
        target_namespace: &str,
        name: &str,
    ) -> bool {
        self.reference_granted(
            ("HTTPRoute", route_namespace),
            (GROUP, "AgentgatewayBackend", target_namespace, name),
        )
    }
}

impl Index<'_> {
    /// Whether a ReferenceGrant in `target_namespace` lets Gateways of `gateway_namespace` refer to
    /// the Secret `name` (a listener's certificate).
    pub(crate) fn gateway_may_refer_to_secret(
        &self,
        gateway_namespace: &str,
        target_namespace: &str,
        name: &str,
    ) -> bool {
        self.reference_granted(
            ("Gateway", gateway_namespace),
            ("", "Secret", target_namespace, name),
        )
    }

    /// Whether a ReferenceGrant in the target's namespace lets objects of Gateway API kind
    /// `from_kind` in `from_namespace` refer to the object `name` of `to_group`/`to_kind` there.
    fn reference_granted(
        &self,
        (from_kind, from_namespace): (&str, &str),
        (to_group, to_kind, target_namespace, name): (&str, &str, &str, &str),
    ) -> bool {
        self.inputs
            .reference_grants
            .iter()
            .filter(|grant| namespace_of(&grant.metadata) == target_namespace)
            .any(|grant| {
                let from = grant.spec.from.iter().any(|from| {
                    from.group == agentgateway_crds::GATEWAY_API_GROUP
                        && from.kind == from_kind
                        && from.namespace == from_namespace
                });
                let to = grant.spec.to.iter().any(|to| {
                    to.group == to_group
                        && to.kind == to_kind
                        && to.name.as_deref().is_none_or(|n| n == name)
                });
                from && to
            })
    }
}
