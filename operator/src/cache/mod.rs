//! The caches every controller reads from: one watch per kind (the controllers are fed from it
//! too, they do not watch again), filled before any reconcile, and wired to the [`Triggers`] of
//! the controllers that depend on each kind. Secrets and ConfigMaps are watched as metadata only (memory follows what is referenced, see [`Referenced`]); the
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

pub mod inputs;
pub mod referenced;
pub mod scope;
pub mod triggers;
pub mod watch;

use crate::error::RunError;
use crate::resources::{MANAGED_BY, MANAGED_BY_LABEL};
use inputs::References;
use referenced::Referenced;
pub use scope::Scope;
use triggers::{Subscriber, Triggers, refs_where};
use watch::spawn_reflector;

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
    /// Starts one watch per kind (per watched namespace for namespaced kinds); `grants` says
    /// whether ReferenceGrants are served; `gateway_deleted` hears of every deleted Gateway.
    pub fn start(
        client: &Client,
        scope: &Scope,
        grants: bool,
        triggers: &Triggers,
        gateway_deleted: impl Fn(&Gateway) + Send + Sync + 'static,
    ) -> Self {
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
            classes,
            gateways: gw,
            routes: rt,
            backends: be,
        } = triggers;

        spawn_reflector(
            "GatewayClass",
            vec![(None, Api::all(client.clone()))],
            any(),
            gateway_classes_writer,
            vec![Subscriber::own(classes), Subscriber::all(gw).spec_only()],
            keep,
        );
        spawn_reflector(
            "Gateway",
            scope.apis(client),
            any(),
            gateways_writer,
            vec![Subscriber::own(gw), Subscriber::deletions(gateway_deleted)],
            keep,
        );
        // Routes' status comes from their Gateways' compiles (see `route_views`): a route change
        // wakes the Gateways, whose compile wakes the routes whose status it changed.
        spawn_reflector(
            "HTTPRoute",
            scope.apis(client),
            any(),
            routes_writer,
            vec![Subscriber::own(rt), Subscriber::all(gw).spec_only()],
            keep,
        );
        spawn_reflector(
            "AgentgatewayBackend",
            scope.apis(client),
            any(),
            backends_writer,
            vec![Subscriber::own(be), Subscriber::all(gw).spec_only()],
            keep,
        );
        spawn_reflector(
            "Secret",
            scope.apis::<PartialObjectMeta<Secret>>(client),
            any(),
            secrets_writer,
            dependents(&stores, triggers, |refs, s: &PartialObjectMeta<Secret>| {
                refs.secrets.contains(&key(s))
            }),
            keep_own_annotations,
        );
        spawn_reflector(
            "ConfigMap",
            scope.apis::<PartialObjectMeta<ConfigMap>>(client),
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
                scope.apis(client),
                any(),
                grants_writer,
                vec![Subscriber::all(gw)],
                keep,
            );
        }
        spawn_reflector(
            "Deployment",
            scope.apis(client),
            managed(),
            deployments_writer,
            vec![Subscriber::all(gw)],
            keep,
        );
        spawn_reflector(
            "Service",
            scope.apis(client),
            managed(),
            services_writer,
            vec![Subscriber::all(gw)],
            keep,
        );
        spawn_reflector(
            "ServiceAccount",
            scope.apis(client),
            managed(),
            service_accounts_writer,
            vec![Subscriber::all(gw)],
            keep,
        );
        spawn_reflector(
            "Role",
            scope.apis(client),
            managed(),
            roles_writer,
            vec![Subscriber::all(gw)],
            keep,
        );
        spawn_reflector(
            "RoleBinding",
            scope.apis(client),
            managed(),
            role_bindings_writer,
            vec![Subscriber::all(gw)],
            keep,
        );
        spawn_reflector(
            "Pod",
            scope.apis(client),
            managed(),
            pods_writer,
            vec![Subscriber::all(gw)],
            keep,
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

/// Caches these kinds whole.
fn keep<K>(_: &mut K) {}

fn key<K: Resource>(object: &K) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// Subscribers for a Secret or ConfigMap kind: a change to one that a backend refers to
/// (`referenced`) re-evaluates those backends and recompiles the Gateways (whose compile updates
/// the routes); a change to an object the operator manages recompiles the Gateways too (to
/// restore it).
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
    let backends = stores.backends.clone();
    let gateway_cares = move |object: &K| {
        is_managed(object)
            || backends
                .state()
                .iter()
                .any(|b| referenced(&References::of([b.as_ref()]), object))
    };
    vec![
        Subscriber::refs(&triggers.backends, backends_of),
        Subscriber::when(&triggers.gateways, gateway_cares),
    ]
}
