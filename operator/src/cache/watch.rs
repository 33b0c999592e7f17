//! One watch per kind: fills the kind's cache and tells the kind's [`Subscriber`]s about each
//! change. With the operator limited to some namespaces, a kind has one watch per namespace, all
//! filling one cache; [`Merge`] keeps kube's cache contract (empty and not ready until every
//! namespace is listed, objects that vanished while a watch was down removed after its re-list).

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;

use futures_util::{Stream, StreamExt};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::triggers::Subscriber;

/// Watches each of `apis` (one per namespace, or one for the cluster) with `config` into
/// `writer`'s cache, each object trimmed by `trim` first (with `K = PartialObjectMeta<_>`, kube
/// asks the API server for metadata only), and tells `subscribers` about each change and re-list.
pub fn spawn_reflector<K>(
    kind: &'static str,
    apis: Vec<(Option<String>, Api<K>)>,
    config: watcher::Config,
    writer: Writer<K>,
    subscribers: Vec<Subscriber<K>>,
    trim: fn(&mut K),
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let namespaces = apis
        .iter()
        .map(|(namespace, _)| namespace.clone())
        .collect();
    let watches = apis.into_iter().enumerate().map(|(i, (_, api))| {
        watcher(api, config.clone())
            .default_backoff()
            .map(move |event| (i, event))
            .boxed()
    });
    spawn_merged(
        kind,
        futures_util::stream::select_all(watches),
        namespaces,
        writer,
        subscribers,
        trim,
    );
}

fn spawn_merged<K, S>(
    kind: &'static str,
    events: S,
    namespaces: Vec<Option<String>>,
    writer: Writer<K>,
    subscribers: Vec<Subscriber<K>>,
    trim: fn(&mut K),
) where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
    S: Stream<Item = (usize, Result<watcher::Event<K>, watcher::Error>)> + Send + 'static,
{
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        let mut merge = Merge::new(namespaces, writer);
        let mut generations = Generations::default();
        while let Some((source, event)) = events.next().await {
            let event = match event {
                // managedFields are half of a typical object and nothing here reads them.
                Ok(event) => event.modify(|object| {
                    object.managed_fields_mut().clear();
                    trim(object);
                }),
                Err(error) => {
                    tracing::warn!(kind, error = %error, "watch failed; retrying with backoff");
                    continue;
                }
            };
            let vanished = merge.apply(source, &event);
            notify(&subscribers, &mut generations, &event, &vanished);
        }
    });
}

/// Tells `subscribers` what `event` changed; `vanished` are the objects a re-list found gone.
fn notify<K: Resource>(
    subscribers: &[Subscriber<K>],
    generations: &mut Generations,
    event: &watcher::Event<K>,
    vanished: &[K],
) {
    match event {
        watcher::Event::Apply(object) => {
            let moved = generations.record(object);
            let active = subscribers
                .iter()
                .filter(|s| !s.deletions_only && (moved || !s.spec_only));
            for subscriber in active {
                (subscriber.on_change)(object);
            }
        }
        watcher::Event::Delete(object) => deleted(subscribers, generations, object),
        watcher::Event::InitApply(object) => {
            generations.record(object);
        }
        watcher::Event::InitDone => {
            for object in vanished {
                deleted(subscribers, generations, object);
            }
            for subscriber in subscribers {
                (subscriber.on_relist)();
            }
        }
        watcher::Event::Init => {}
    }
}

fn deleted<K: Resource>(subscribers: &[Subscriber<K>], generations: &mut Generations, object: &K) {
    generations.forget(object);
    for subscriber in subscribers {
        (subscriber.on_change)(object);
    }
}

/// Feeds the events of several watches (one per namespace) to one cache writer.
struct Merge<K: Resource<DynamicType = ()> + Clone + 'static> {
    /// The namespace each source watches (`None`: the whole cluster).
    namespaces: Vec<Option<String>>,
    writer: Writer<K>,
    reader: Store<K>,
    /// Per source: the objects its current (re-)list has shown so far.
    listing: Vec<Option<HashSet<ObjectRef<K>>>>,
    /// Per source: whether its first list is complete.
    listed: Vec<bool>,
    /// Until every source is listed once, the objects seen so far; then the cache is filled in one
    /// step and turns ready (as kube's own reflector does).
    initial: Option<HashMap<ObjectRef<K>, K>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Merge<K> {
    fn new(namespaces: Vec<Option<String>>, writer: Writer<K>) -> Self {
        let sources = namespaces.len();
        Self {
            reader: writer.as_reader(),
            namespaces,
            writer,
            listing: vec![None; sources],
            listed: vec![false; sources],
            initial: Some(HashMap::new()),
        }
    }

    /// Applies `event` of `source` to the cache; returns the objects a completed re-list found
    /// gone (deleted while the watch was down), which are removed from the cache.
    fn apply(&mut self, source: usize, event: &watcher::Event<K>) -> Vec<K> {
        match event {
            watcher::Event::Init => {
                if let Some(listing) = self.listing.get_mut(source) {
                    *listing = Some(HashSet::new());
                }
                Vec::new()
            }
            watcher::Event::InitApply(object) | watcher::Event::Apply(object) => {
                let key = ObjectRef::from_obj(object);
                if let Some(Some(listing)) = self.listing.get_mut(source)
                    && matches!(event, watcher::Event::InitApply(_))
                {
                    listing.insert(key.clone());
                }
                match &mut self.initial {
                    Some(initial) => {
                        initial.insert(key, object.clone());
                    }
                    None => self
                        .writer
                        .apply_watcher_event(&watcher::Event::Apply(object.clone())),
                }
                Vec::new()
            }
            watcher::Event::Delete(object) => {
                match &mut self.initial {
                    Some(initial) => {
                        initial.remove(&ObjectRef::from_obj(object));
                    }
                    None => self
                        .writer
                        .apply_watcher_event(&watcher::Event::Delete(object.clone())),
                }
                Vec::new()
            }
            watcher::Event::InitDone => self.listed_source(source),
        }
    }

    fn listed_source(&mut self, source: usize) -> Vec<K> {
        let seen = self
            .listing
            .get_mut(source)
            .and_then(Option::take)
            .unwrap_or_default();
        let namespace = self.namespaces.get(source).cloned().flatten();
        let of_source = |key: &ObjectRef<K>| {
            namespace.is_none() || key.namespace.as_deref() == namespace.as_deref()
        };
        if let Some(listed) = self.listed.get_mut(source) {
            *listed = true;
        }
        if let Some(initial) = &mut self.initial {
            initial.retain(|key, _| !of_source(key) || seen.contains(key));
            if self.listed.iter().all(|listed| *listed) {
                self.writer.apply_watcher_event(&watcher::Event::Init);
                for (_, object) in self.initial.take().unwrap_or_default() {
                    self.writer
                        .apply_watcher_event(&watcher::Event::InitApply(object));
                }
                self.writer.apply_watcher_event(&watcher::Event::InitDone);
            }
            return Vec::new();
        }
        let vanished: Vec<K> = self
            .reader
            .state()
            .iter()
            .filter(|object| {
                let key = ObjectRef::from_obj(object.as_ref());
                of_source(&key) && !seen.contains(&key)
            })
            .map(|object| (**object).clone())
            .collect();
        for object in &vanished {
            self.writer
                .apply_watcher_event(&watcher::Event::Delete(object.clone()));
        }
        vanished
    }
}

/// The last seen `metadata.generation` per object, to tell spec changes from status writes.
#[derive(Default)]
struct Generations(HashMap<(String, String), Option<i64>>);

impl Generations {
    /// Records `object`'s generation; whether it differs from the last one seen (a new object,
    /// or a kind without generations, always counts as moved).
    fn record<K: Resource>(&mut self, object: &K) -> bool {
        let generation = object.meta().generation;
        let key = (object.namespace().unwrap_or_default(), object.name_any());
        let previous = self.0.insert(key, generation);
        generation.is_none() || previous != Some(generation)
    }

    fn forget<K: Resource>(&mut self, object: &K) {
        self.0
            .remove(&(object.namespace().unwrap_or_default(), object.name_any()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgateway_crds::AgentgatewayBackend;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector;
    use watcher::Event;

    fn with_generation(name: &str, generation: Option<i64>) -> AgentgatewayBackend {
        let mut backend = AgentgatewayBackend::new(name, Default::default());
        backend.metadata.namespace = Some("ns".into());
        backend.metadata.generation = generation;
        backend
    }

    fn map(namespace: &str, name: &str) -> ConfigMap {
        let mut map = ConfigMap::default();
        map.metadata.namespace = Some(namespace.into());
        map.metadata.name = Some(name.into());
        map
    }

    fn names(store: &Store<ConfigMap>) -> Vec<String> {
        let mut names: Vec<String> = store
            .state()
            .iter()
            .map(|m| format!("{}/{}", m.namespace().unwrap_or_default(), m.name_any()))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn only_a_new_generation_counts_as_a_spec_change() {
        let mut generations = Generations::default();
        assert!(generations.record(&with_generation("a", Some(1))));
        // A status write: same generation.
        assert!(!generations.record(&with_generation("a", Some(1))));
        assert!(generations.record(&with_generation("a", Some(2))));
        assert!(generations.record(&with_generation("b", Some(2))));
        generations.forget(&with_generation("a", Some(2)));
        assert!(generations.record(&with_generation("a", Some(2))));
    }

    #[test]
    fn kinds_without_generations_always_count() {
        let mut generations = Generations::default();
        let map = ConfigMap::default();
        assert!(generations.record(&map));
        assert!(generations.record(&map));
    }

    #[tokio::test]
    async fn the_cache_turns_ready_once_every_namespace_is_listed() {
        let (store, writer) = reflector::store();
        let mut merge = Merge::new(vec![Some("a".into()), Some("b".into())], writer);
        merge.apply(0, &Event::Init);
        merge.apply(1, &Event::Init);
        merge.apply(0, &Event::InitApply(map("a", "one")));
        merge.apply(0, &Event::InitDone);
        // Namespace a watches on while b still lists: its changes are kept for the first fill.
        merge.apply(0, &Event::Apply(map("a", "two")));
        merge.apply(0, &Event::Delete(map("a", "one")));
        merge.apply(1, &Event::InitApply(map("b", "three")));
        assert!(store.is_empty());
        let ready = tokio::time::timeout(std::time::Duration::ZERO, store.wait_until_ready());
        assert!(ready.await.is_err(), "not ready before b is listed");
        merge.apply(1, &Event::InitDone);
        store.wait_until_ready().await.unwrap();
        assert_eq!(names(&store), ["a/two", "b/three"]);
    }

    #[tokio::test]
    async fn a_relist_removes_what_vanished_in_its_namespace_only() {
        let (store, writer) = reflector::store();
        let mut merge = Merge::new(vec![Some("a".into()), Some("b".into())], writer);
        for (source, namespace) in [(0, "a"), (1, "b")] {
            merge.apply(source, &Event::Init);
            merge.apply(source, &Event::InitApply(map(namespace, "kept")));
            merge.apply(source, &Event::InitApply(map(namespace, "gone")));
            merge.apply(source, &Event::InitDone);
        }
        assert_eq!(names(&store).len(), 4);
        // Namespace a's watch restarts; "gone" was deleted while it was down.
        merge.apply(0, &Event::Init);
        merge.apply(0, &Event::InitApply(map("a", "kept")));
        merge.apply(0, &Event::InitApply(map("a", "new")));
        let vanished = merge.apply(0, &Event::InitDone);
        assert_eq!(vanished.len(), 1);
        assert_eq!(vanished[0].name_any(), "gone");
        assert_eq!(names(&store), ["a/kept", "a/new", "b/gone", "b/kept"]);
    }

    #[tokio::test]
    async fn a_cluster_wide_watch_is_one_source() {
        let (store, writer) = reflector::store();
        let mut merge = Merge::new(vec![None], writer);
        merge.apply(0, &Event::Init);
        merge.apply(0, &Event::InitApply(map("a", "one")));
        merge.apply(0, &Event::InitApply(map("b", "two")));
        merge.apply(0, &Event::InitDone);
        merge.apply(0, &Event::Init);
        merge.apply(0, &Event::InitApply(map("b", "two")));
        let vanished = merge.apply(0, &Event::InitDone);
        assert_eq!(vanished.len(), 1);
        assert_eq!(names(&store), ["b/two"]);
    }
}
