//! The caches every controller reads from (one watch per kind, filled before any reconcile) and
//! the triggers that wake controllers when something they depend on changes. Triggers coalesce:
//! a burst of 200 changes wakes a controller a few times, not 200 times, and each wake-up
//! re-queues every object of the controller once (the queue deduplicates the rest).

use std::fmt::Debug;
use std::sync::Arc;

use agentgateway_crds::AgentgatewayBackend;
use agentgateway_crds::gateway_api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use futures_util::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::error::RunError;
use crate::resources::{MANAGED_BY, MANAGED_BY_LABEL};

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
    /// Secrets: provider keys and the proxies' credentials.
    pub secrets: Store<Secret>,
    /// ConfigMaps: CA bundles and the proxies' configs.
    pub config_maps: Store<ConfigMap>,
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
}

/// Wakes controllers whose objects depend on other kinds.
#[derive(Clone, Default)]
pub struct Triggers {
    /// Re-reconcile every Gateway.
    pub gateways: Arc<Notify>,
    /// Re-reconcile every HTTPRoute's status.
    pub routes: Arc<Notify>,
    /// Re-evaluate every AgentgatewayBackend.
    pub backends: Arc<Notify>,
}

/// A stream yielding once per batch of notifications, for `Controller::reconcile_all_on`.
pub fn trigger_stream(notify: Arc<Notify>) -> impl Stream<Item = ()> + Send + 'static {
    futures_util::stream::unfold(notify, |notify| async move {
        notify.notified().await;
        Some(((), notify))
    })
}

type Filter<K> = Box<dyn Fn(&K) -> bool + Send + Sync>;

/// A trigger and which objects' changes fire it.
struct Subscriber<K> {
    notify: Arc<Notify>,
    filter: Filter<K>,
}

fn all<K>(notify: &Arc<Notify>) -> Subscriber<K> {
    Subscriber {
        notify: Arc::clone(notify),
        filter: Box::new(|_| true),
    }
}

fn when<K>(notify: &Arc<Notify>, filter: impl Fn(&K) -> bool + Send + Sync + 'static) -> Subscriber<K> {
    Subscriber {
        notify: Arc::clone(notify),
        filter: Box::new(filter),
    }
}

fn is_managed<K: Resource>(object: &K) -> bool {
    object.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
}

impl Stores {
    /// Starts one watch per kind; `grants` says whether ReferenceGrants are served.
    pub fn start(client: &Client, grants: bool, triggers: &Triggers) -> Self {
        let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY}"));
        let any = watcher::Config::default;
        let Triggers {
            gateways: gw,
            routes: rt,
            backends: be,
        } = triggers;

        let backends = reflect(
            "AgentgatewayBackend",
            Api::all(client.clone()),
            any(),
            vec![all(gw), all(rt)],
        );
        // Whether a Secret or ConfigMap matters is decided against the backend cache, read at
        // event time, so a backend created later still sees its Secret.
        let referenced_secret = {
            let backends = backends.clone();
            move |s: &Secret| secret_is_referenced(&backends, s)
        };
        let referenced_map = {
            let backends = backends.clone();
            move |c: &ConfigMap| config_map_is_referenced(&backends, c)
        };
        let secrets = reflect(
            "Secret",
            Api::all(client.clone()),
            any(),
            vec![
                when(be, referenced_secret.clone()),
                when(rt, referenced_secret.clone()),
                when(gw, move |s: &Secret| is_managed(s) || referenced_secret(s)),
            ],
        );
        let config_maps = reflect(
            "ConfigMap",
            Api::all(client.clone()),
            any(),
            vec![
                when(be, referenced_map.clone()),
                when(rt, referenced_map.clone()),
                when(gw, move |c: &ConfigMap| is_managed(c) || referenced_map(c)),
            ],
        );
        Self {
            gateway_classes: reflect("GatewayClass", Api::all(client.clone()), any(), vec![all(gw), all(rt)]),
            gateways: reflect("Gateway", Api::all(client.clone()), any(), vec![all(rt)]),
            routes: reflect("HTTPRoute", Api::all(client.clone()), any(), vec![all(gw)]),
            backends,
            secrets,
            config_maps,
            reference_grants: grants.then(|| {
                reflect("ReferenceGrant", Api::all(client.clone()), any(), vec![all(gw), all(rt)])
            }),
            deployments: reflect("Deployment", Api::all(client.clone()), managed.clone(), vec![all(gw)]),
            services: reflect("Service", Api::all(client.clone()), managed.clone(), vec![all(gw)]),
            service_accounts: reflect("ServiceAccount", Api::all(client.clone()), managed.clone(), vec![all(gw)]),
            roles: reflect("Role", Api::all(client.clone()), managed.clone(), vec![all(gw)]),
            role_bindings: reflect("RoleBinding", Api::all(client.clone()), managed, vec![all(gw)]),
        }
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
        ready("RoleBinding", &self.role_bindings).await
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

fn secret_is_referenced(backends: &Store<AgentgatewayBackend>, secret: &Secret) -> bool {
    let key = (secret.namespace().unwrap_or_default(), secret.name_any());
    backends
        .state()
        .iter()
        .any(|b| crate::inputs::References::of([b.as_ref()]).secrets.contains(&key))
}

fn config_map_is_referenced(backends: &Store<AgentgatewayBackend>, map: &ConfigMap) -> bool {
    let key = (map.namespace().unwrap_or_default(), map.name_any());
    backends
        .state()
        .iter()
        .any(|b| crate::inputs::References::of([b.as_ref()]).config_maps.contains(&key))
}

/// Watches `api` into a cache and fires `subscribers` on each change they care about, and on
/// every re-list (objects may have changed while the watch was down).
fn reflect<K>(
    kind: &'static str,
    api: Api<K>,
    config: watcher::Config,
    subscribers: Vec<Subscriber<K>>,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        // managedFields are half of a typical object and nothing here reads them.
        .modify(|object: &mut K| object.managed_fields_mut().clear())
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(object) | watcher::Event::Delete(object)) => {
                    for subscriber in &subscribers {
                        if (subscriber.filter)(&object) {
                            subscriber.notify.notify_one();
                        }
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    for subscriber in &subscribers {
                        subscriber.notify.notify_one();
                    }
                }
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                Err(error) => {
                    tracing::warn!(kind, error = %error, "watch failed; retrying with backoff");
                }
            }
        }
    });
    reader
}
