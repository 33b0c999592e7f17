//! Answers the validating webhook's "does this Secret exist, with which keys?" from the operator's
//! caches only, never with an API call: a review must not cost the API server anything, nor
//! reveal to whoever may submit a backend what the Secrets of a namespace hold. Existence comes
//! from the Secret metadata cache; keys are known for the Secrets some backend already refers to
//! (their data is held for compiling). Before the caches are filled, and for keys of a Secret no
//! backend refers to yet, the answer is "unknown": the webhook then says nothing, and the
//! backend's `Accepted` condition reports a missing Secret or key once it is stored.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use agentgateway_webhook::{SecretLookup, SecretState};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::cache::Scope;
use crate::cache::referenced::Referenced;

/// The caches the lookup answers from.
struct Caches {
    metadata: Store<PartialObjectMeta<Secret>>,
    referenced: Arc<Referenced>,
    /// Outside these namespaces the caches know nothing (and another install may be in charge).
    scope: Scope,
}

/// The Secret lookup of the validating webhook.
#[derive(Default)]
pub struct CachedSecrets {
    caches: OnceLock<Caches>,
}

impl CachedSecrets {
    /// A lookup that answers "unknown" until [`CachedSecrets::use_cache`] is called.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Answers from the filled caches of `scope` from now on (a second call is ignored).
    pub fn use_cache(
        &self,
        metadata: Store<PartialObjectMeta<Secret>>,
        referenced: Arc<Referenced>,
        scope: Scope,
    ) {
        let _ = self.caches.set(Caches {
            metadata,
            referenced,
            scope,
        });
    }

    fn lookup(&self, namespace: &str, name: &str) -> SecretState {
        let Some(caches) = self.caches.get().filter(|c| c.scope.contains(namespace)) else {
            return SecretState::Unknown;
        };
        if caches
            .metadata
            .get(&ObjectRef::new(name).within(namespace))
            .is_none()
        {
            return SecretState::NotFound;
        }
        match caches.referenced.secret(namespace, name) {
            Some(secret) => SecretState::Found {
                keys: keys(&secret),
            },
            None => SecretState::Unknown,
        }
    }
}

fn keys(secret: &Secret) -> BTreeSet<String> {
    let data = secret.data.iter().flat_map(|d| d.keys());
    let string_data = secret.string_data.iter().flat_map(|d| d.keys());
    data.chain(string_data).cloned().collect()
}

impl SecretLookup for CachedSecrets {
    fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Pin<Box<dyn Future<Output = SecretState> + Send + '_>> {
        let state = self.lookup(namespace, name);
        Box::pin(async move { state })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    #[test]
    fn answers_come_from_the_caches_only() {
        let lookup = CachedSecrets::new();
        assert_eq!(lookup.lookup("ns", "key"), SecretState::Unknown);
        let (store, mut writer) = reflector::store::<PartialObjectMeta<Secret>>();
        let mut meta = PartialObjectMeta::<Secret>::default();
        meta.metadata.name = Some("key".into());
        meta.metadata.namespace = Some("ns".into());
        writer.apply_watcher_event(&Event::Apply(meta));
        lookup.use_cache(store, Arc::default(), Scope::of(["ns".to_string()]));
        assert_eq!(lookup.lookup("ns", "absent"), SecretState::NotFound);
        // Outside the operator's namespaces nothing is known: no warning about a missing Secret.
        assert_eq!(lookup.lookup("elsewhere", "absent"), SecretState::Unknown);
        // Exists, but no backend refers to it yet: its keys are not known.
        assert_eq!(lookup.lookup("ns", "key"), SecretState::Unknown);
    }
}
