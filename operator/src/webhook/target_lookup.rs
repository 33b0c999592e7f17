//! Answers the validating webhook's "does this policy target exist?" from the operator's caches
//! only, never with an API call (a review must not cost the API server anything). Before the
//! caches are filled, and outside the namespaces the operator watches, the answer is "unknown":
//! the webhook then says nothing, and the policy's status reports a missing target once stored.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use agentgateway_crds::AgentgatewayBackend;
use agentgateway_crds::gateway_api::{Gateway, HTTPRoute};
use agentgateway_crds::policy::PolicyTargetRef;
use agentgateway_crds::validation::policy::TARGET_KINDS;
use agentgateway_webhook::{TargetLookup, TargetState};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::cache::Scope;

/// The caches the lookup answers from.
struct Caches {
    gateways: Store<Gateway>,
    routes: Store<HTTPRoute>,
    backends: Store<AgentgatewayBackend>,
    scope: Scope,
}

/// The target lookup of the validating webhook.
#[derive(Default)]
pub struct CachedTargets {
    caches: OnceLock<Caches>,
}

impl CachedTargets {
    /// A lookup that answers "unknown" until [`CachedTargets::use_cache`] is called.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Answers from the filled caches of `scope` from now on (a second call is ignored).
    pub fn use_cache(
        &self,
        gateways: Store<Gateway>,
        routes: Store<HTTPRoute>,
        backends: Store<AgentgatewayBackend>,
        scope: Scope,
    ) {
        let _ = self.caches.set(Caches {
            gateways,
            routes,
            backends,
            scope,
        });
    }

    fn lookup(&self, namespace: &str, target: &PolicyTargetRef) -> TargetState {
        let Some(caches) = self.caches.get().filter(|c| c.scope.contains(namespace)) else {
            return TargetState::Unknown;
        };
        // A kind the policy cannot target is refused by validation before any lookup.
        let Some((_, kind)) = TARGET_KINDS
            .iter()
            .find(|(group, kind)| target.group == *group && target.kind == *kind)
        else {
            return TargetState::Unknown;
        };
        let found = match *kind {
            "Gateway" => caches
                .gateways
                .get(&ObjectRef::new(&target.name).within(namespace))
                .is_some(),
            "HTTPRoute" => caches
                .routes
                .get(&ObjectRef::new(&target.name).within(namespace))
                .is_some(),
            "AgentgatewayBackend" => caches
                .backends
                .get(&ObjectRef::new(&target.name).within(namespace))
                .is_some(),
            _ => return TargetState::Unknown,
        };
        if found {
            TargetState::Found
        } else {
            TargetState::NotFound
        }
    }
}

impl TargetLookup for CachedTargets {
    fn target(
        &self,
        namespace: &str,
        target: &PolicyTargetRef,
    ) -> Pin<Box<dyn Future<Output = TargetState> + Send + '_>> {
        let state = self.lookup(namespace, target);
        Box::pin(async move { state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    fn target(group: &str, kind: &str, name: &str) -> PolicyTargetRef {
        PolicyTargetRef {
            group: group.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    #[test]
    fn answers_come_from_the_caches_of_the_watched_namespaces_only() {
        let lookup = CachedTargets::new();
        let route = target("gateway.networking.k8s.io", "HTTPRoute", "llm");
        assert_eq!(lookup.lookup("ns", &route), TargetState::Unknown);
        let (routes, mut writer) = reflector::store::<HTTPRoute>();
        let mut object: HTTPRoute = serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "llm", "namespace": "ns"},
            "spec": {},
        }))
        .unwrap();
        object.metadata.namespace = Some("ns".into());
        writer.apply_watcher_event(&Event::Apply(object));
        lookup.use_cache(
            reflector::store().0,
            routes,
            reflector::store().0,
            Scope::of(["ns".to_string()]),
        );
        assert_eq!(lookup.lookup("ns", &route), TargetState::Found);
        let gateway = target("gateway.networking.k8s.io", "Gateway", "llm");
        assert_eq!(lookup.lookup("ns", &gateway), TargetState::NotFound);
        let backend = target("agentgateway.dev", "AgentgatewayBackend", "llm");
        assert_eq!(lookup.lookup("ns", &backend), TargetState::NotFound);
        assert_eq!(lookup.lookup("elsewhere", &route), TargetState::Unknown);
        let service = target("", "Service", "llm");
        assert_eq!(lookup.lookup("ns", &service), TargetState::Unknown);
    }
}
