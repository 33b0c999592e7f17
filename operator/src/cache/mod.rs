//! The caches every controller reads from: one watch per kind (the controllers are fed from it
//! too, they do not watch again), filled before any reconcile, and wired to the [`Triggers`] of
//! the controllers that depend on each kind. Secrets and ConfigMaps are watched as metadata only
//! (memory follows what is referenced, see [`Referenced`]); the operator's own objects are watched
//! by label.
//!
//! Policies follow the model of routes and backends: a change of an AgentgatewayPolicy's spec (or
//! of a Secret some policy selects, or once selected) recompiles every Gateway, since which
//! Gateways a policy reaches depends on routes and backends that may change in the same breath;
//! and every change a policy's status reads (its targets, the other policies, the selected
//! Secrets) re-evaluates every policy.

use std::sync::Arc;

use agentgateway_compiler::selector_matches;
use agentgateway_crds::gateway_api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};

use agentgateway_crds::{AgentgatewayBackend, AgentgatewayParameters, AgentgatewayPolicy};

pub mod inputs;
pub mod referenced;
pub mod scope;
pub mod triggers;
pub mod watch;

use crate::error::RunError;
use crate::resources::{MANAGED_BY, MANAGED_BY_LABEL};
use inputs::{References, certificate_secrets};
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
    /// AgentgatewayPolicies.
    pub policies: Store<AgentgatewayPolicy>,
    /// AgentgatewayParameters.
    pub parameters: Store<AgentgatewayParameters>,
    /// Secrets, metadata only: which exist (provider keys, consumers' API keys, the proxies'
    /// credentials). The data of the referenced and selected ones is in [`Stores::referenced`].
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
        let (policies, policies_writer) = reflector::store();
        let (parameters, parameters_writer) = reflector::store();
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
            policies,
            parameters,
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
            policies: po,
        } = triggers;

        // A policy's status reads whether its targets exist (Gateways of our classes, routes,
        // backends): their spec changes, creations and deletions re-evaluate every policy.
        spawn_reflector(
            "GatewayClass",
            vec![(None, Api::all(client.clone()))],
            any(),
            gateway_classes_writer,
            vec![
                Subscriber::own(classes),
                Subscriber::all(gw).spec_only(),
                Subscriber::all(po).spec_only(),
            ],
            keep,
        );
        spawn_reflector(
            "Gateway",
            scope.apis(client),
            any(),
            gateways_writer,
            vec![
                Subscriber::own(gw),
                Subscriber::deletions(gateway_deleted),
                Subscriber::all(po).spec_only(),
            ],
            keep,
        );
        // Routes' status comes from their Gateways' compiles (see `route_views`): a route change
        // wakes the Gateways, whose compile wakes the routes whose status it changed.
        spawn_reflector(
            "HTTPRoute",
            scope.apis(client),
            any(),
            routes_writer,
            vec![
                Subscriber::own(rt),
                Subscriber::all(gw).spec_only(),
                Subscriber::all(po).spec_only(),
            ],
            keep,
        );
        spawn_reflector(
            "AgentgatewayBackend",
            scope.apis(client),
            any(),
            backends_writer,
            vec![
                Subscriber::own(be),
                Subscriber::all(gw).spec_only(),
                Subscriber::all(po).spec_only(),
            ],
            keep,
        );
        spawn_reflector(
            "AgentgatewayPolicy",
            scope.apis(client),
            any(),
            policies_writer,
            policy_subscribers(triggers),
            keep,
        );
        spawn_reflector(
            "AgentgatewayParameters",
            scope.apis(client),
            any(),
            parameters_writer,
            parameters_subscribers(&stores, triggers),
            keep,
        );
        spawn_reflector(
            "Secret",
            scope.apis::<PartialObjectMeta<Secret>>(client),
            any(),
            secrets_writer,
            secret_dependents(&stores, triggers),
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
        ready("AgentgatewayPolicy", &self.policies).await?;
        ready("AgentgatewayParameters", &self.parameters).await?;
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

/// Who hears of a change of an AgentgatewayParameters (its spec, creation or deletion): the
/// Gateways that refer to it, directly or through their class, and the classes that refer to it.
fn parameters_subscribers(
    stores: &Stores,
    triggers: &Triggers,
) -> Vec<Subscriber<AgentgatewayParameters>> {
    let (gateways, classes) = (stores.gateways.clone(), stores.gateway_classes.clone());
    let classes_of = classes.clone();
    let gateways_using = move |parameters: &AgentgatewayParameters| {
        let (namespace, name) = key(parameters);
        refs_where(&gateways, |gateway| {
            let own = gateway
                .spec
                .infrastructure
                .as_ref()
                .and_then(|i| i.parameters_ref.as_ref())
                .is_some_and(|r| {
                    r.name == name && gateway.namespace().as_deref() == Some(namespace.as_str())
                });
            let through_class = classes_of
                .get(&ObjectRef::new(&gateway.spec.gateway_class_name))
                .is_some_and(|class| class_refers_to(&class, &namespace, &name));
            own || through_class
        })
    };
    let classes_using = move |parameters: &AgentgatewayParameters| {
        let (namespace, name) = key(parameters);
        refs_where(&classes, |class| class_refers_to(class, &namespace, &name))
    };
    vec![
        Subscriber::refs(&triggers.gateways, gateways_using).spec_only(),
        Subscriber::refs(&triggers.classes, classes_using).spec_only(),
    ]
}

/// Whether `class`'s `parametersRef` names the parameters `namespace/name` (whatever its kind:
/// a wrong kind is reported by the class, and fixing it is a change of the class).
fn class_refers_to(class: &GatewayClass, namespace: &str, name: &str) -> bool {
    class
        .spec
        .parameters_ref
        .as_ref()
        .is_some_and(|r| r.name == name && r.namespace.as_deref() == Some(namespace))
}

/// Drops every annotation but ours (the applied hash of the objects the operator writes): a
/// `kubectl apply`'d object carries itself again in `last-applied-configuration`.
fn keep_own_annotations<K: Resource>(object: &mut PartialObjectMeta<K>) {
    if let Some(annotations) = object.metadata.annotations.as_mut() {
        annotations.retain(|name, _| name.starts_with("agentgateway.dev/"));
    }
}

/// Who hears of a policy change: the policy itself (its status writes too: they are no-ops when
/// up to date); on a spec change (or creation, deletion) every Gateway, whose proxies enforce it,
/// and every other policy, since which of two policies on a target wins may change.
fn policy_subscribers(triggers: &Triggers) -> Vec<Subscriber<AgentgatewayPolicy>> {
    vec![
        Subscriber::own(&triggers.policies),
        Subscriber::all(&triggers.gateways).spec_only(),
        Subscriber::all(&triggers.policies).spec_only(),
    ]
}

/// Whether a change of the Secret `secret` can change what policies make of their consumers: a
/// policy selects it now (by its labels as they are now, or were when it was deleted), or its data
/// is held because something selected or referenced it at the last compile (a removed label).
pub fn policies_care(
    policies: &Store<AgentgatewayPolicy>,
    referenced: &Referenced,
    secret: &PartialObjectMeta<Secret>,
) -> bool {
    let (namespace, name) = key(secret);
    if referenced.secret(&namespace, &name).is_some() {
        return true;
    }
    let labels = secret.metadata.labels.as_ref();
    policies.state().iter().any(|policy| {
        policy.namespace().as_deref() == Some(namespace.as_str())
            && policy
                .spec
                .auth
                .as_ref()
                .is_some_and(|auth| selector_matches(&auth.api_keys.secret_selector, labels))
    })
}

/// The subscribers of the Secret metadata watch: [`dependents`] (backends' references and the
/// operator's own Secrets), plus every Gateway and every policy when [`policies_care`], plus every
/// Gateway when a listener names the Secret as its certificate ([`names_certificate`]). A rotated
/// API key or certificate thus reaches the Gateways' credentials with the next compile.
fn secret_dependents(
    stores: &Stores,
    triggers: &Triggers,
) -> Vec<Subscriber<PartialObjectMeta<Secret>>> {
    let mut subscribers = dependents(stores, triggers, |refs, s: &PartialObjectMeta<Secret>| {
        refs.secrets.contains(&key(s))
    });
    let care = {
        let (policies, referenced) = (stores.policies.clone(), Arc::clone(&stores.referenced));
        move |secret: &PartialObjectMeta<Secret>| policies_care(&policies, &referenced, secret)
    };
    subscribers.push(Subscriber::when(&triggers.gateways, care.clone()));
    subscribers.push(Subscriber::when(&triggers.policies, care));
    let gateways = stores.gateways.clone();
    subscribers.push(Subscriber::when(
        &triggers.gateways,
        move |secret: &PartialObjectMeta<Secret>| names_certificate(&gateways, secret),
    ));
    subscribers
}

/// Whether some Gateway's listener names `secret` as its certificate: a rotated (or deleted)
/// certificate then recompiles the Gateways, and the new credentials reach their proxies.
pub fn names_certificate(gateways: &Store<Gateway>, secret: &PartialObjectMeta<Secret>) -> bool {
    let wanted = key(secret);
    gateways
        .state()
        .iter()
        .any(|gateway| certificate_secrets(gateway).any(|named| named == wanted))
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use kube::runtime::watcher::Event;
    use std::time::Duration;

    fn policy(namespace: &str, labels: &[(&str, &str)]) -> AgentgatewayPolicy {
        let mut policy = AgentgatewayPolicy::new("keys", Default::default());
        policy.metadata.namespace = Some(namespace.into());
        policy.metadata.generation = Some(1);
        policy.spec.auth = Some(agentgateway_crds::policy::ClientAuth {
            api_keys: agentgateway_crds::policy::ApiKeys {
                secret_selector: LabelSelector {
                    match_labels: Some(
                        labels
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    ),
                    match_expressions: None,
                },
                key: None,
            },
        });
        policy
    }

    fn secret(namespace: &str, name: &str, labels: &[(&str, &str)]) -> PartialObjectMeta<Secret> {
        let mut secret = PartialObjectMeta::<Secret>::default();
        secret.metadata.namespace = Some(namespace.into());
        secret.metadata.name = Some(name.into());
        secret.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        secret
    }

    fn policies(objects: Vec<AgentgatewayPolicy>) -> Store<AgentgatewayPolicy> {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        for object in objects {
            writer.apply_watcher_event(&Event::InitApply(object));
        }
        writer.apply_watcher_event(&Event::InitDone);
        store
    }

    async fn woken<K: Resource + 'static>(queue: &triggers::Queue<K>) -> bool
    where
        K::DynamicType: Send,
    {
        let mut all = std::pin::pin!(queue.all_stream());
        tokio::time::timeout(Duration::from_millis(50), all.next())
            .await
            .is_ok()
    }

    /// Empty stores, for tests that fill in only what they read.
    fn empty_stores() -> Stores {
        Stores {
            gateway_classes: reflector::store().0,
            gateways: reflector::store().0,
            routes: reflector::store().0,
            backends: reflector::store().0,
            policies: policies(Vec::new()),
            parameters: reflector::store().0,
            secrets: reflector::store().0,
            config_maps: reflector::store().0,
            referenced: Arc::default(),
            reference_grants: None,
            deployments: reflector::store().0,
            services: reflector::store().0,
            service_accounts: reflector::store().0,
            roles: reflector::store().0,
            role_bindings: reflector::store().0,
            pods: reflector::store().0,
        }
    }
    #[test]
    fn a_secret_matters_to_policies_when_selected_now_or_held_from_before() {
        let store = policies(vec![policy("team-a", &[("consumer-of", "llm")])]);
        let referenced = Referenced::default();
        let selected = secret("team-a", "alice", &[("consumer-of", "llm")]);
        assert!(policies_care(&store, &referenced, &selected));
        // Same labels in another namespace: policies select in their own namespace only.
        let elsewhere = secret("team-b", "alice", &[("consumer-of", "llm")]);
        assert!(!policies_care(&store, &referenced, &elsewhere));
        // The label was removed: no selector matches, but its data is held from the last
        // compile, so the Gateways must drop the consumer.
        let unlabeled = secret("team-a", "alice", &[]);
        assert!(!policies_care(&store, &referenced, &unlabeled));
        referenced.insert_secret(k8s_openapi::api::core::v1::Secret {
            metadata: unlabeled.metadata.clone(),
            ..Default::default()
        });
        assert!(policies_care(&store, &referenced, &unlabeled));
    }

    #[tokio::test]
    async fn a_selected_secret_wakes_every_gateway_and_policy_and_another_secret_none() {
        let triggers = Triggers::default();
        let (backends, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::<AgentgatewayBackend>::Init);
        writer.apply_watcher_event(&Event::InitDone);
        let stores = Stores {
            backends,
            policies: policies(vec![policy("team-a", &[("consumer-of", "llm")])]),
            ..empty_stores()
        };
        let subscribers = secret_dependents(&stores, &triggers);
        let unrelated = secret("team-a", "helm-release", &[("owner", "helm")]);
        for subscriber in &subscribers {
            (subscriber.on_change)(&unrelated);
        }
        assert!(!woken(&triggers.gateways).await);
        assert!(!woken(&triggers.policies).await);
        // A rotated key (a data change is a new resourceVersion of the same metadata).
        let key = secret("team-a", "alice", &[("consumer-of", "llm")]);
        for subscriber in &subscribers {
            (subscriber.on_change)(&key);
        }
        assert!(woken(&triggers.gateways).await);
        assert!(woken(&triggers.policies).await);
    }

    #[tokio::test]
    async fn a_certificate_secret_of_a_listener_wakes_the_gateways() {
        let gateway: Gateway = serde_yaml::from_str(
            "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: agentgateway
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    tls: {certificateRefs: [{name: gw-cert}, {name: shared, namespace: certs}]}
",
        )
        .unwrap();
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Apply(gateway));
        assert!(names_certificate(&store, &secret("infra", "gw-cert", &[])));
        assert!(names_certificate(&store, &secret("certs", "shared", &[])));
        assert!(!names_certificate(&store, &secret("certs", "gw-cert", &[])));
        assert!(!names_certificate(&store, &secret("infra", "other", &[])));

        // Through the Secret watch's subscribers: the certificate wakes the Gateways.
        let triggers = Triggers::default();
        let stores = Stores {
            gateways: store,
            ..empty_stores()
        };
        let subscribers = secret_dependents(&stores, &triggers);
        for subscriber in &subscribers {
            (subscriber.on_change)(&secret("infra", "unrelated", &[]));
        }
        assert!(!woken(&triggers.gateways).await);
        for subscriber in &subscribers {
            (subscriber.on_change)(&secret("infra", "gw-cert", &[]));
        }
        assert!(woken(&triggers.gateways).await);
    }

    #[tokio::test]
    async fn a_policy_spec_change_recompiles_every_gateway_and_reevaluates_every_policy() {
        let triggers = Triggers::default();
        let subscribers = policy_subscribers(&triggers);
        let changed = policy("team-a", &[("consumer-of", "llm")]);
        for subscriber in &subscribers {
            (subscriber.on_change)(&changed);
        }
        let mut own = std::pin::pin!(triggers.policies.stream());
        assert_eq!(
            own.next().await,
            Some(ObjectRef::new("keys").within("team-a"))
        );
        assert!(woken(&triggers.gateways).await);
        assert!(woken(&triggers.policies).await);
        // A status write (the same generation, seen before) reaches the policy alone: the
        // spec-only subscribers are filtered by the watch (see `watch::notify`).
        assert!(subscribers[1].spec_only && subscribers[2].spec_only);
        assert!(!subscribers[0].spec_only);
    }
}
