//! The compiler's [`Inputs`] from the caches: only the objects a compilation can read, so a
//! reconcile clones little even in a cluster full of Secrets; sorted, so the output never
//! depends on cache order.

use std::collections::BTreeSet;

use agentgateway_compiler::{Inputs, selected_secrets};
use agentgateway_crds::GATEWAY_API_GROUP;
use agentgateway_crds::backend::BackendPolicies;
use agentgateway_crds::gateway_api::{Gateway, HTTPRoute, ParentReference};
use agentgateway_crds::{AgentgatewayBackend, AgentgatewayPolicy};
use kube::{Client, ResourceExt};

use super::Stores;
use crate::error::Error;

/// Secrets and ConfigMaps that backends refer to, as `(namespace, name)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    /// Secrets holding provider credentials (`policies.auth.secretRef`, `.aws`, `.gcp`).
    pub secrets: BTreeSet<(String, String)>,
    /// ConfigMaps holding CA bundles (`policies.tls.caCertificateRef`).
    pub config_maps: BTreeSet<(String, String)>,
}

impl References {
    /// What `backends` refer to; references resolve in the backend's own namespace.
    pub fn of<'a>(backends: impl IntoIterator<Item = &'a AgentgatewayBackend>) -> Self {
        let mut references = Self::default();
        for backend in backends {
            let namespace = backend.namespace().unwrap_or_default();
            for policies in all_policies(backend) {
                if let Some(secret) = policies.auth.as_ref().and_then(|a| a.secret_name()) {
                    references
                        .secrets
                        .insert((namespace.clone(), secret.to_string()));
                }
                let ca = policies
                    .tls
                    .as_ref()
                    .and_then(|t| t.ca_certificate_ref.as_ref());
                if let Some(ca) = ca {
                    references
                        .config_maps
                        .insert((namespace.clone(), ca.name.clone()));
                }
            }
        }
        references
    }
}

/// The Secrets the listeners of `gateway` name as certificates (`tls.certificateRefs` of the core
/// kind `Secret`), as `(namespace, name)`; a reference without a namespace is in the Gateway's.
/// Whether a ReferenceGrant admits one in another namespace is the compiler's to say.
pub fn certificate_secrets(gateway: &Gateway) -> impl Iterator<Item = (String, String)> + '_ {
    let namespace = gateway.namespace().unwrap_or_default();
    gateway
        .spec
        .listeners
        .iter()
        .filter_map(|listener| listener.tls.as_ref())
        .flat_map(|tls| tls.certificate_refs.iter())
        .filter(|r| {
            r.group.as_deref().unwrap_or("").is_empty()
                && r.kind.as_deref().unwrap_or("Secret") == "Secret"
        })
        .map(move |r| {
            let ns = r.namespace.clone().unwrap_or_else(|| namespace.clone());
            (ns, r.name.clone())
        })
}

/// The backend's own policies and those of each of its providers.
fn all_policies(backend: &AgentgatewayBackend) -> impl Iterator<Item = &BackendPolicies> {
    let ai = &backend.spec.ai;
    let providers = ai
        .provider
        .iter()
        .chain(ai.groups.iter().flatten().flat_map(|g| g.providers.iter()));
    backend
        .spec
        .policies
        .iter()
        .chain(providers.filter_map(|p| p.policies.as_ref()))
}

/// `namespace/name` of the Gateway a parentRef names, or `None` when it names something else.
pub fn gateway_key(route: &HTTPRoute, parent: &ParentReference) -> Option<String> {
    let group = parent.group.as_deref().unwrap_or(GATEWAY_API_GROUP);
    let kind = parent.kind.as_deref().unwrap_or("Gateway");
    if group != GATEWAY_API_GROUP || kind != "Gateway" {
        return None;
    }
    let namespace = parent
        .namespace
        .clone()
        .or_else(|| route.namespace())
        .unwrap_or_default();
    Some(format!("{namespace}/{}", parent.name))
}

impl Stores {
    /// What `backend_problems` reads for `backend`: the backend and what it refers to.
    pub async fn backend_inputs(
        &self,
        client: &Client,
        backend: &AgentgatewayBackend,
    ) -> Result<Inputs, Error> {
        let mut inputs = Inputs {
            backends: vec![backend.clone()],
            ..Inputs::default()
        };
        let references = References::of([backend]);
        self.refresh(client, &references, false).await?;
        self.add_references(&mut inputs, references);
        Ok(inputs)
    }

    /// What compiling a Gateway (and reporting on policies) reads: every Gateway of our classes
    /// (policies may target them), route, backend, policy and ReferenceGrant, the Secrets and
    /// ConfigMaps the backends refer to, the listeners' certificate Secrets, and the Secrets the
    /// policies' `auth.apiKeys` select
    /// (fetched when the metadata caches say they changed; what nothing refers to or selects any
    /// more is forgotten). `shared_counters`: whether the proxies count in Redis.
    pub async fn gateway_inputs(
        &self,
        client: &Client,
        shared_counters: bool,
    ) -> Result<Inputs, Error> {
        let mut gateways: Vec<Gateway> = self
            .gateways
            .state()
            .iter()
            .filter(|g| self.our_class(&g.spec.gateway_class_name).is_some())
            .map(|g| (**g).clone())
            .collect();
        gateways.sort_by_key(key);
        let mut routes: Vec<HTTPRoute> =
            self.routes.state().iter().map(|r| (**r).clone()).collect();
        routes.sort_by_key(key);
        let mut backends: Vec<AgentgatewayBackend> = self
            .backends
            .state()
            .iter()
            .map(|b| (**b).clone())
            .collect();
        backends.sort_by_key(key);
        let mut policies: Vec<AgentgatewayPolicy> = self
            .policies
            .state()
            .iter()
            .map(|p| (**p).clone())
            .collect();
        policies.sort_by_key(key);
        let mut references = References::of(&backends);
        references.secrets.extend(self.selected_secrets(&policies));
        references
            .secrets
            .extend(gateways.iter().flat_map(certificate_secrets));
        self.refresh(client, &references, true).await?;
        let mut inputs = Inputs {
            gateways,
            routes,
            backends,
            policies,
            reference_grants: self.reference_grants(),
            shared_counters,
            ..Inputs::default()
        };
        self.add_references(&mut inputs, references);
        Ok(inputs)
    }

    /// The Secrets some policy's `auth.apiKeys.secretSelector` selects, by the labels in the
    /// metadata cache.
    fn selected_secrets(&self, policies: &[AgentgatewayPolicy]) -> BTreeSet<(String, String)> {
        if policies.iter().all(|p| p.spec.auth.is_none()) {
            return BTreeSet::new();
        }
        let secrets = self.secrets.state();
        let metadata = secrets.iter().filter_map(|s| {
            let namespace = s.metadata.namespace.as_deref()?;
            let name = s.metadata.name.as_deref()?;
            Some((namespace, name, s.metadata.labels.as_ref()))
        });
        selected_secrets(policies, metadata)
    }

    async fn refresh(
        &self,
        client: &Client,
        references: &References,
        prune: bool,
    ) -> Result<(), Error> {
        self.referenced
            .refresh(client, &self.secrets, &self.config_maps, references, prune)
            .await
    }

    fn reference_grants(&self) -> Vec<agentgateway_crds::gateway_api::ReferenceGrant> {
        let Some(grants) = &self.reference_grants else {
            return Vec::new();
        };
        let mut grants: Vec<_> = grants.state().iter().map(|g| (**g).clone()).collect();
        grants.sort_by_key(key);
        grants
    }

    fn add_references(&self, inputs: &mut Inputs, references: References) {
        inputs.secrets = references
            .secrets
            .iter()
            .filter_map(|(ns, name)| self.referenced.secret(ns, name))
            .map(|s| (*s).clone())
            .collect();
        inputs.config_maps = references
            .config_maps
            .iter()
            .filter_map(|(ns, name)| self.referenced.config_map(ns, name))
            .map(|c| (*c).clone())
            .collect();
    }
}

fn key<K: ResourceExt>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(yaml: &str) -> AgentgatewayBackend {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn certificate_secrets_of_every_listener_are_found_in_their_namespaces() {
        let gateway: Gateway = serde_yaml::from_str(
            "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: agentgateway
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - name: a
    port: 443
    protocol: HTTPS
    tls: {certificateRefs: [{name: cert-a}, {name: shared, namespace: certs}]}
  - name: b
    port: 443
    protocol: HTTPS
    hostname: b.example.com
    tls: {certificateRefs: [{group: '', kind: Secret, name: cert-b}, {group: example.com, kind: Cert, name: other}]}
",
        )
        .unwrap();
        let secrets: Vec<String> = certificate_secrets(&gateway)
            .map(|(ns, n)| format!("{ns}/{n}"))
            .collect();
        assert_eq!(secrets, ["infra/cert-a", "certs/shared", "infra/cert-b"]);
    }

    #[test]
    fn references_of_the_backend_and_of_every_provider_are_found() {
        let backend = backend(
            "
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: pool, namespace: apps}
spec:
  policies:
    auth: {secretRef: {name: shared}}
  ai:
    groups:
    - providers:
      - name: a
        openai: {}
        policies:
          auth: {secretRef: {name: own, key: token}}
          tls: {caCertificateRef: {name: ca}}
      - name: b
        openai: {}
      - name: c
        bedrock: {region: us-east-1}
        policies: {auth: {aws: {secretRef: {name: aws-keys}}}}
      - name: d
        vertexai: {projectId: my-project, region: us-central1}
        policies: {auth: {gcp: {secretRef: {name: vertex-sa, key: key.json}}}}
",
        );
        let references = References::of([&backend]);
        let secrets: Vec<_> = references
            .secrets
            .iter()
            .map(|(ns, n)| format!("{ns}/{n}"))
            .collect();
        assert_eq!(
            secrets,
            ["apps/aws-keys", "apps/own", "apps/shared", "apps/vertex-sa"]
        );
        let maps: Vec<_> = references
            .config_maps
            .iter()
            .map(|(ns, n)| format!("{ns}/{n}"))
            .collect();
        assert_eq!(maps, ["apps/ca"]);
    }
}
