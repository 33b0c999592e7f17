//! The caches every controller reads from: one watch per kind, filled before any reconcile, and
//! wired to the [`Triggers`] of the controllers that depend on each kind. Secrets and ConfigMaps
//! are watched as metadata only (memory follows what is referenced, see [`Referenced`]); the
//! operator's own objects are watched by label.

use std::sync::Arc;

use agentgateway_crds::AgentgatewayBackend;
use agentgateway_crds::gateway_api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use crate::controllers::route_status::gateway_key;
use crate::error::RunError;
use crate::inputs::{References, route_names_backend};
use crate::referenced::Referenced;
use crate::resources::{MANAGED_BY, MANAGED_BY_LABEL};
use crate::triggers::{Subscriber, Triggers, refs_where, spawn_reflector, spawn_trimmed_reflector};

/// One cache per kind the operator reads.
#[derive(Clone)]
pub struct Stores {
    /// GatewayClasses.
    pub gateway_classes: Store<GatewayClass>,
    /// Gateways, every class.
    pub gateways: Store<Gateway>,
    /// HTTPRoutes.
    pub routes: Store<HTTPRoute>,
    /// AgentgatewayBackends.
    pub backends: Store<AgentgatewayBackend>,
    /// Secrets, metadata only: which exist (provider keys, the proxies' credentials). The data
    /// of the referenced ones is in [`Stores::referenced`].
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// ConfigMaps, metadata only: which exist (CA bundles, the proxies' configs).
    pub config_maps: Store<PartialObjectMeta<ConfigMap>>,
    /// The referenced Secrets and ConfigMaps, whole.
    pub referenced: Arc<Referenced>,
    /// ReferenceGrants; `None` when the cluster does not serve them.
    pub reference_grants: Option<Store<ReferenceGrant>>,
    /// Proxy Deployments (managed by the operator).
    pub deployments: Store<Deployment>,
    /// Proxy Services.
    pub services: Store<Service>,
    /// Proxy ServiceAccounts.
    pub service_accounts: Store<ServiceAccount>,
    /// Proxy Roles.
    pub roles: Store<Role>,
    /// Proxy RoleBindings.
    pub role_bindings: Store<RoleBinding>,
    /// Proxy pods (their readiness, and whom to ask what config they serve).
    pub pods: Store<Pod>,
}

fn is_managed<K: Resource>(object: &K) -> bool {
    object.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
}

impl Stores {
    /// Starts one watch per kind; `grants` says whether ReferenceGrants are served.
    pub fn start(client: &Client, grants: bool, triggers: &Triggers) -> Self {
        let (gateway_classes, gateway_classes_writer) = reflector::store();
        let (gateways, gateways_writer) = reflector::store();
        let (routes, routes_writer) = reflector::store();
        let (backends, backends_writer) = reflector::store();
        let (secrets, secrets_writer) = reflector::store();
        let (config_maps, config_maps_writer) = reflector::store();
        let (deployments, deployments_writer) = reflector::store();
        let (services, services_writer) = reflector::store();
        let (service_accounts, service_accounts_writer) = reflector::store();
        let (roles, roles_writer) = reflector::store();
        let (role_bindings, role_bindings_writer) = reflector::store();
        let (grant_store, grants_writer) = reflector::store();
        let (pods, pods_writer) = reflector::store();
        let stores = Self {
            gateway_classes,
            gateways,
            routes,
            backends,
            secrets,
            config_maps,
            referenced: Arc::default(),
            reference_grants: grants.then_some(grant_store),
            deployments,
            services,
            service_accounts,
            roles,
            role_bindings,
            pods,
        };
        let any = watcher::Config::default;
        let managed =
            || watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        let Triggers {
            gateways: gw,
            routes: rt,
            route_refs,
            ..
        } = triggers;

        spawn_reflector(
            "GatewayClass",
            Api::all(client.clone()),
            any(),
            gateway_classes_writer,
            vec![
                Subscriber::all(gw).spec_only(),
                Subscriber::all(rt).spec_only(),
            ],
        );
        let routes = stores.routes.clone();
        spawn_reflector(
            "Gateway",
            Api::all(client.clone()),
            any(),
            gateways_writer,
            vec![
                // Routes read the Gateway's spec and whether its config reached the proxy.
                Subscriber::refs(route_refs, rt, move |g: &Gateway| {
                    routes_of_gateway(&routes, g)
                })
                .on_digest_change(route_view_of_gateway),
            ],
        );
        spawn_reflector(
            "HTTPRoute",
            Api::all(client.clone()),
            any(),
            routes_writer,
            vec![Subscriber::all(gw).spec_only()],
        );
        let routes = stores.routes.clone();
        spawn_reflector(
            "AgentgatewayBackend",
            Api::all(client.clone()),
            any(),
            backends_writer,
            vec![
                Subscriber::all(gw).spec_only(),
                Subscriber::refs(route_refs, rt, move |b: &AgentgatewayBackend| {
                    routes_of_backend(&routes, b)
                })
                .spec_only(),
            ],
        );
        spawn_trimmed_reflector(
            "Secret",
            Api::<PartialObjectMeta<Secret>>::all(client.clone()),
            any(),
            secrets_writer,
            dependents(&stores, triggers, |refs, s: &PartialObjectMeta<Secret>| {
                refs.secrets.contains(&key(s))
            }),
            keep_own_annotations,
        );
        spawn_trimmed_reflector(
            "ConfigMap",
            Api::<PartialObjectMeta<ConfigMap>>::all(client.clone()),
            any(),
            config_maps_writer,
            dependents(
                &stores,
                triggers,
                |refs, c: &PartialObjectMeta<ConfigMap>| refs.config_maps.contains(&key(c)),
            ),
            keep_own_annotations,
        );
        if grants {
            spawn_reflector(
                "ReferenceGrant",
                Api::all(client.clone()),
                any(),
                grants_writer,
                vec![Subscriber::all(gw), Subscriber::all(rt)],
            );
        }
        spawn_reflector(
            "Deployment",
            Api::all(client.clone()),
            managed(),
            deployments_writer,
            vec![Subscriber::all(gw)],
        );
        spawn_reflector(
            "Service",
            Api::all(client.clone()),
            managed(),
            services_writer,
            vec![Subscriber::all(gw)],
        );
        spawn_reflector(
            "ServiceAccount",
            Api::all(client.clone()),
            managed(),
            service_accounts_writer,
            vec![Subscriber::all(gw)],
        );
        spawn_reflector(
            "Role",
            Api::all(client.clone()),
            managed(),
            roles_writer,
            vec![Subscriber::all(gw)],
        );
        spawn_reflector(
            "RoleBinding",
            Api::all(client.clone()),
            managed(),
            role_bindings_writer,
            vec![Subscriber::all(gw)],
        );
        spawn_reflector(
            "Pod",
            Api::all(client.clone()),
            managed(),
            pods_writer,
            vec![Subscriber::all(gw)],
        );
        stores
    }

    /// Waits until every cache holds a full list: before that, a missing object may only be
    /// missing from the cache, and acting on it would write what already exists.
    pub async fn wait_until_ready(&self) -> Result<(), RunError> {
        async fn ready<K>(kind: &'static str, store: &Store<K>) -> Result<(), RunError>
        where
            K: Resource + Clone + 'static,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            store
                .wait_until_ready()
                .await
                .map_err(|_| RunError::SyncCache { kind })?;
            tracing::debug!(kind, objects = store.len(), "cache synced");
            Ok(())
        }
        ready("GatewayClass", &self.gateway_classes).await?;
        ready("Gateway", &self.gateways).await?;
        ready("HTTPRoute", &self.routes).await?;
        ready("AgentgatewayBackend", &self.backends).await?;
        ready("Secret", &self.secrets).await?;
        ready("ConfigMap", &self.config_maps).await?;
        if let Some(grants) = &self.reference_grants {
            ready("ReferenceGrant", grants).await?;
        }
        ready("Deployment", &self.deployments).await?;
        ready("Service", &self.services).await?;
        ready("ServiceAccount", &self.service_accounts).await?;
        ready("Role", &self.roles).await?;
        ready("RoleBinding", &self.role_bindings).await?;
        ready("Pod", &self.pods).await
    }

    /// The GatewayClass `name` when its controller is ours.
    pub fn our_class(&self, name: &str) -> Option<Arc<GatewayClass>> {
        self.gateway_classes
            .get(&ObjectRef::new(name))
            .filter(|c| c.spec.controller_name == agentgateway_crds::CONTROLLER_NAME)
    }

    /// The Gateway `namespace/name` when its class is ours.
    pub fn our_gateway(&self, namespace: &str, name: &str) -> Option<Arc<Gateway>> {
        self.gateways
            .get(&ObjectRef::new(name).within(namespace))
            .filter(|g| self.our_class(&g.spec.gateway_class_name).is_some())
    }
}

/// Drops every annotation but ours (the applied hash of the objects the operator writes): a
/// `kubectl apply`'d object carries itself again in `last-applied-configuration`.
fn keep_own_annotations<K: Resource>(object: &mut PartialObjectMeta<K>) {
    if let Some(annotations) = object.metadata.annotations.as_mut() {
        annotations.retain(|name, _| name.starts_with("agentgateway.dev/"));
    }
}

fn key<K: Resource>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// Subscribers for a Secret or ConfigMap kind: a change to one that a backend refers to
/// (`referenced`) re-evaluates those backends and the routes that name them, and recompiles the
/// Gateways; a change to an object the operator manages recompiles the Gateways too (to restore it).
fn dependents<K>(
    stores: &Stores,
    triggers: &Triggers,
    referenced: fn(&References, &K) -> bool,
) -> Vec<Subscriber<K>>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let backends_of = {
        let backends = stores.backends.clone();
        move |object: &K| refs_where(&backends, |b| referenced(&References::of([b]), object))
    };
    let routes_of = {
        let (backends, routes) = (stores.backends.clone(), stores.routes.clone());
        move |object: &K| {
            let mut affected = Vec::new();
            for backend in backends.state() {
                if referenced(&References::of([backend.as_ref()]), object) {
                    affected.extend(routes_of_backend(&routes, &backend));
                }
            }
            affected
        }
    };
    let backends = stores.backends.clone();
    let gateway_cares = move |object: &K| {
        is_managed(object)
            || backends
                .state()
                .iter()
                .any(|b| referenced(&References::of([b.as_ref()]), object))
    };
    vec![
        Subscriber::refs(&triggers.backend_refs, &triggers.backends, backends_of),
        Subscriber::refs(&triggers.route_refs, &triggers.routes, routes_of),
        Subscriber::when(&triggers.gateways, gateway_cares),
    ]
}

/// What routes read of a Gateway: its identity, spec and the delivery part of `Programmed`, by
/// reason only (a `Pending` or `Programmed` Gateway reads the same to them; see `route_status`).
fn route_view_of_gateway(gateway: &Gateway) -> String {
    let programmed = gateway
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Programmed"));
    let delivery = match programmed {
        None => "unset".to_string(),
        Some(c) if c.status == "True" || c.reason == "Pending" => "delivered".to_string(),
        Some(c) => c.reason.clone(),
    };
    format!(
        "{:?}/{:?}/{delivery}",
        gateway.metadata.uid, gateway.metadata.generation
    )
}

/// The routes whose backendRefs name `backend`.
fn routes_of_backend(
    routes: &Store<HTTPRoute>,
    backend: &AgentgatewayBackend,
) -> Vec<ObjectRef<HTTPRoute>> {
    let (namespace, name) = key(backend);
    refs_where(routes, |r| route_names_backend(r, &namespace, &name))
}

/// The routes with a parentRef to `gateway`.
fn routes_of_gateway(routes: &Store<HTTPRoute>, gateway: &Gateway) -> Vec<ObjectRef<HTTPRoute>> {
    let (namespace, name) = key(gateway);
    let wanted = format!("{namespace}/{name}");
    refs_where(routes, |r| {
        r.spec
            .parent_refs
            .iter()
            .any(|p| gateway_key(r, p).as_deref() == Some(wanted.as_str()))
    })
}
