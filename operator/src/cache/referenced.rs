//! The data of the Secrets and ConfigMaps that backends refer to. The caches hold only the
//! metadata of Secrets and ConfigMaps: a cluster's Helm release Secrets alone can be hundreds of
//! MiB, and an operator that kept them whole would be OOM-killed with the admission webhooks it
//! serves. The objects a compilation reads are fetched by name, kept while referenced, and
//! fetched again when the metadata cache shows a new `resourceVersion`; so memory follows what is
//! referenced, not what exists.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::inputs::References;
use crate::error::Error;

/// `(namespace, name)`.
type Key = (String, String);

/// How many objects are fetched at once.
const CONCURRENT_FETCHES: usize = 8;

/// Referenced objects of one kind, by `(namespace, name)`.
struct Fetched<K>(Mutex<HashMap<Key, Arc<K>>>);

impl<K> Default for Fetched<K> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: Resource> Fetched<K> {
    fn get(&self, key: &Key) -> Option<Arc<K>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned()
    }

    /// The keys of `wanted` whose data is absent or older than `metadata` says; drops what the
    /// metadata cache no longer has (deleted objects) and, with `prune`, what is not wanted.
    fn stale(
        &self,
        metadata: &Store<PartialObjectMeta<K>>,
        wanted: &BTreeSet<Key>,
        prune: bool,
    ) -> Vec<Key>
    where
        K: Clone + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if prune {
            map.retain(|key, _| wanted.contains(key));
        }
        let mut stale = Vec::new();
        for key in wanted {
            let (namespace, name) = key;
            let live = metadata.get(&ObjectRef::new(name).within(namespace));
            let Some(live) = live else {
                map.remove(key);
                continue;
            };
            let held = map.get(key).and_then(|o| o.meta().resource_version.clone());
            if held.is_none() || held != live.metadata.resource_version {
                stale.push(key.clone());
            }
        }
        stale
    }

    fn store(&self, key: Key, object: Option<K>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match object {
            Some(object) => map.insert(key, Arc::new(object)),
            None => map.remove(&key),
        };
    }
}

/// The referenced Secrets and ConfigMaps, whole.
#[derive(Default)]
pub struct Referenced {
    secrets: Fetched<Secret>,
    config_maps: Fetched<ConfigMap>,
}

impl Referenced {
    /// The Secret `namespace/name`, if referenced and fetched.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Arc<Secret>> {
        self.secrets.get(&(namespace.to_string(), name.to_string()))
    }

    /// The ConfigMap `namespace/name`, if referenced and fetched.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>> {
        self.config_maps
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// Holds `secret` as if it had been fetched (tests of what depends on held data).
    #[cfg(test)]
    pub(crate) fn insert_secret(&self, secret: Secret) {
        let key = (
            secret.metadata.namespace.clone().unwrap_or_default(),
            secret.metadata.name.clone().unwrap_or_default(),
        );
        self.secrets.store(key, Some(secret));
    }

    /// Makes the data of `references` current against the metadata caches; with `prune`
    /// (`references` covers every backend), forgets everything else.
    pub async fn refresh(
        &self,
        client: &Client,
        secrets: &Store<PartialObjectMeta<Secret>>,
        config_maps: &Store<PartialObjectMeta<ConfigMap>>,
        references: &References,
        prune: bool,
    ) -> Result<(), Error> {
        let stale = self.secrets.stale(secrets, &references.secrets, prune);
        fetch(client, &self.secrets, stale).await?;
        let stale = self
            .config_maps
            .stale(config_maps, &references.config_maps, prune);
        fetch(client, &self.config_maps, stale).await
    }
}

/// Fetches `keys` into `into`.
async fn fetch<K>(client: &Client, into: &Fetched<K>, keys: Vec<Key>) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + k8s_openapi::Resource
        + Clone
        + DeserializeOwned
        + Debug,
{
    let kind = <K as k8s_openapi::Resource>::KIND;
    let mut results = futures_util::stream::iter(keys.into_iter().map(|(namespace, name)| {
        let api: Api<K> = Api::namespaced(client.clone(), &namespace);
        async move {
            let result = api.get_opt(&name).await;
            ((namespace, name), result)
        }
    }))
    .buffer_unordered(CONCURRENT_FETCHES);
    while let Some(((namespace, name), result)) = results.next().await {
        match result {
            Ok(object) => {
                // Nothing here reads managedFields or annotations (a `kubectl apply`'d Secret
                // carries itself again in last-applied-configuration).
                let object = object.map(|mut o| {
                    o.managed_fields_mut().clear();
                    o.meta_mut().annotations = None;
                    o
                });
                into.store((namespace, name), object);
            }
            Err(source) => {
                return Err(Error::Get {
                    kind,
                    namespace,
                    name,
                    source: Box::new(source),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    fn meta(name: &str, version: &str) -> PartialObjectMeta<Secret> {
        let mut object = PartialObjectMeta::<Secret>::default();
        object.metadata.name = Some(name.into());
        object.metadata.namespace = Some("ns".into());
        object.metadata.resource_version = Some(version.into());
        object
    }

    fn secret(name: &str, version: &str) -> Secret {
        let mut secret = Secret::default();
        secret.metadata.name = Some(name.into());
        secret.metadata.namespace = Some("ns".into());
        secret.metadata.resource_version = Some(version.into());
        secret
    }

    fn key(name: &str) -> Key {
        ("ns".to_string(), name.to_string())
    }

    #[test]
    fn only_absent_or_outdated_referenced_objects_are_fetched() {
        let (store, mut writer) = reflector::store::<PartialObjectMeta<Secret>>();
        for object in [meta("a", "1"), meta("b", "5"), meta("c", "1")] {
            writer.apply_watcher_event(&Event::Apply(object));
        }
        let fetched = Fetched::<Secret>::default();
        fetched.store(key("a"), Some(secret("a", "1")));
        fetched.store(key("b"), Some(secret("b", "4")));
        fetched.store(key("gone"), Some(secret("gone", "1")));
        let wanted = BTreeSet::from([key("a"), key("b"), key("gone"), key("missing")]);
        let stale = fetched.stale(&store, &wanted, false);
        // a is current, b is older than the cache says, gone and missing do not exist.
        assert_eq!(stale, [key("b")]);
        assert!(fetched.get(&key("gone")).is_none());
        // c is not referenced: never fetched; pruning drops unreferenced data.
        fetched.store(key("c"), Some(secret("c", "1")));
        fetched.stale(&store, &BTreeSet::from([key("a")]), true);
        assert!(fetched.get(&key("c")).is_none());
        assert!(fetched.get(&key("a")).is_some());
    }
}
