//! What wakes the controllers when objects they depend on change. Each cache's watch task hands
//! every change to its subscribers: a coalescing [`Notify`] re-queues every object of a controller
//! (cheap for the few Gateways, and after a watch re-list), a [`RefSender`] re-queues exactly the
//! objects a change affects (a backend edit wakes the routes that name it, not all 200).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures_util::{Stream, StreamExt};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, mpsc};

use agentgateway_crds::AgentgatewayBackend;
use agentgateway_crds::gateway_api::HTTPRoute;

/// Sends the objects a change affects to a controller.
pub type RefSender<K> = mpsc::UnboundedSender<ObjectRef<K>>;
type RefReceiver<K> = Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<K>>>>;

/// Wakes controllers whose objects depend on other kinds.
pub struct Triggers {
    /// Re-reconcile every Gateway.
    pub gateways: Arc<Notify>,
    /// Re-evaluate every HTTPRoute's status (GatewayClass and ReferenceGrant changes, re-lists).
    pub routes: Arc<Notify>,
    /// Re-evaluate every AgentgatewayBackend (re-lists).
    pub backends: Arc<Notify>,
    /// Re-evaluate these HTTPRoutes' status.
    pub route_refs: RefSender<HTTPRoute>,
    /// Re-evaluate these AgentgatewayBackends.
    pub backend_refs: RefSender<AgentgatewayBackend>,
    route_receiver: RefReceiver<HTTPRoute>,
    backend_receiver: RefReceiver<AgentgatewayBackend>,
}

impl Default for Triggers {
    fn default() -> Self {
        let (route_refs, routes) = mpsc::unbounded_channel();
        let (backend_refs, backends) = mpsc::unbounded_channel();
        Self {
            gateways: Arc::default(),
            routes: Arc::default(),
            backends: Arc::default(),
            route_refs,
            backend_refs,
            route_receiver: Mutex::new(Some(routes)),
            backend_receiver: Mutex::new(Some(backends)),
        }
    }
}

impl Triggers {
    /// The routes to re-evaluate, for `Controller::reconcile_on` (the first call takes them).
    pub fn route_stream(&self) -> impl Stream<Item = ObjectRef<HTTPRoute>> + Send + 'static {
        receiver_stream(&self.route_receiver)
    }

    /// The backends to re-evaluate, for `Controller::reconcile_on` (the first call takes them).
    pub fn backend_stream(
        &self,
    ) -> impl Stream<Item = ObjectRef<AgentgatewayBackend>> + Send + 'static {
        receiver_stream(&self.backend_receiver)
    }
}

fn receiver_stream<K: Resource + 'static>(
    receiver: &RefReceiver<K>,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
where
    K::DynamicType: Send,
{
    let receiver = receiver.lock().unwrap_or_else(|e| e.into_inner()).take();
    futures_util::stream::unfold(receiver, |receiver| async move {
        let mut receiver = receiver?;
        let next = receiver.recv().await?;
        Some((next, Some(receiver)))
    })
}

/// A stream yielding once per batch of notifications, for `Controller::reconcile_all_on`.
pub fn notify_stream(notify: Arc<Notify>) -> impl Stream<Item = ()> + Send + 'static {
    futures_util::stream::unfold(notify, |notify| async move {
        notify.notified().await;
        Some(((), notify))
    })
}

/// What one change of a `K` does.
pub struct Subscriber<K> {
    on_change: Box<dyn Fn(&K) + Send + Sync>,
    on_relist: Box<dyn Fn() + Send + Sync>,
    /// Act only when `metadata.generation` moved (or the object is new or deleted): status
    /// writes, including the operator's own, change nothing the dependents read.
    spec_only: bool,
    /// Act on an update only when this says the object changed in a way the dependents read
    /// (deletions always act).
    changed: Box<dyn Fn(&K) -> bool + Send + Sync>,
}

impl<K: 'static> Subscriber<K> {
    /// Fires `notify` on every change.
    pub fn all(notify: &Arc<Notify>) -> Self {
        Self::when(notify, |_| true)
    }

    /// Fires `notify` on changes of objects `filter` accepts.
    pub fn when(notify: &Arc<Notify>, filter: impl Fn(&K) -> bool + Send + Sync + 'static) -> Self {
        let (on_change, on_relist) = (Arc::clone(notify), Arc::clone(notify));
        Self {
            on_change: Box::new(move |object| {
                if filter(object) {
                    on_change.notify_one();
                }
            }),
            on_relist: Box::new(move || on_relist.notify_one()),
            spec_only: false,
            changed: Box::new(|_| true),
        }
    }

    /// Sends the objects `affected` by a change to `sender`; a re-list fires `relist` instead.
    pub fn refs<T: Resource + 'static>(
        sender: &RefSender<T>,
        relist: &Arc<Notify>,
        affected: impl Fn(&K) -> Vec<ObjectRef<T>> + Send + Sync + 'static,
    ) -> Self
    where
        T::DynamicType: Send + Sync,
    {
        let (sender, relist) = (sender.clone(), Arc::clone(relist));
        Self {
            on_change: Box::new(move |object| {
                for reference in affected(object) {
                    // Fails only when the controller is gone (shutdown): nothing left to wake.
                    let _ = sender.send(reference);
                }
            }),
            on_relist: Box::new(move || relist.notify_one()),
            spec_only: false,
            changed: Box::new(|_| true),
        }
    }

    /// The same, but only when `digest` of an updated object differs from the one last seen: for
    /// dependents that read a part of the status (and status writes that change nothing they
    /// read must not wake hundreds of them).
    pub fn on_digest_change(self, digest: impl Fn(&K) -> String + Send + Sync + 'static) -> Self
    where
        K: Resource,
    {
        let seen: Mutex<HashMap<(String, String), String>> = Mutex::default();
        Self {
            changed: Box::new(move |object| {
                let key = (object.namespace().unwrap_or_default(), object.name_any());
                let digest = digest(object);
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                seen.insert(key, digest.clone()).as_ref() != Some(&digest)
            }),
            ..self
        }
    }

    /// The same, but only for spec changes.
    pub fn spec_only(self) -> Self {
        Self {
            spec_only: true,
            ..self
        }
    }
}

/// Watches `api` into `writer`'s cache and tells `subscribers` about each change, and about every
/// re-list (objects may have changed while the watch was down).
pub fn spawn_reflector<K>(
    kind: &'static str,
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
    subscribers: Vec<Subscriber<K>>,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    spawn_trimmed_reflector(kind, api, config, writer, subscribers, |_| {});
}

/// [`spawn_reflector`] with each object trimmed by `trim` before it is cached. With
/// `K = PartialObjectMeta<_>`, kube asks the API server for metadata only.
pub fn spawn_trimmed_reflector<K>(
    kind: &'static str,
    api: Api<K>,
    config: watcher::Config,
    writer: reflector::store::Writer<K>,
    subscribers: Vec<Subscriber<K>>,
    trim: fn(&mut K),
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    spawn_reflector_of(kind, watcher(api, config), writer, subscribers, trim);
}

fn spawn_reflector_of<K, S>(
    kind: &'static str,
    events: S,
    writer: reflector::store::Writer<K>,
    subscribers: Vec<Subscriber<K>>,
    trim: fn(&mut K),
) where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    let stream = events
        .default_backoff()
        // managedFields are half of a typical object and nothing here reads them.
        .modify(move |object: &mut K| {
            object.managed_fields_mut().clear();
            trim(object);
        })
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut generations = Generations::default();
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(object)) => {
                    let moved = generations.record(&object);
                    for subscriber in subscribers.iter().filter(|s| moved || !s.spec_only) {
                        if (subscriber.changed)(&object) {
                            (subscriber.on_change)(&object);
                        }
                    }
                }
                Ok(watcher::Event::Delete(object)) => {
                    generations.forget(&object);
                    for subscriber in &subscribers {
                        (subscriber.on_change)(&object);
                    }
                }
                Ok(watcher::Event::InitApply(object)) => {
                    generations.record(&object);
                }
                Ok(watcher::Event::InitDone) => {
                    for subscriber in &subscribers {
                        (subscriber.on_relist)();
                    }
                }
                Ok(watcher::Event::Init) => {}
                Err(error) => {
                    tracing::warn!(kind, error = %error, "watch failed; retrying with backoff");
                }
            }
        }
    });
}

/// The objects of `store` that `matches` accepts, as references.
pub fn refs_where<K>(store: &Store<K>, matches: impl Fn(&K) -> bool) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .state()
        .iter()
        .filter(|object| matches(object))
        .map(|object| ObjectRef::from_obj(object.as_ref()))
        .collect()
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
    use k8s_openapi::api::core::v1::ConfigMap;

    fn with_generation(name: &str, generation: Option<i64>) -> AgentgatewayBackend {
        let mut backend = AgentgatewayBackend::new(name, Default::default());
        backend.metadata.namespace = Some("ns".into());
        backend.metadata.generation = generation;
        backend
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
    async fn a_burst_of_notifications_wakes_a_controller_once() {
        let notify = Arc::new(Notify::new());
        for _ in 0..200 {
            notify.notify_one();
        }
        let mut stream = std::pin::pin!(notify_stream(Arc::clone(&notify)));
        assert_eq!(stream.next().await, Some(()));
        let again = tokio::time::timeout(std::time::Duration::from_millis(20), stream.next()).await;
        assert!(again.is_err(), "a second wake-up without a new change");
    }

    #[test]
    fn a_digest_subscriber_acts_only_when_the_digest_moves() {
        let notify = Arc::new(Notify::new());
        let subscriber = Subscriber::<AgentgatewayBackend>::all(&notify)
            .on_digest_change(|b| format!("{:?}", b.metadata.generation));
        assert!((subscriber.changed)(&with_generation("a", Some(1))));
        assert!(!(subscriber.changed)(&with_generation("a", Some(1))));
        assert!((subscriber.changed)(&with_generation("b", Some(1))));
        assert!((subscriber.changed)(&with_generation("a", Some(2))));
    }

    #[tokio::test]
    async fn references_reach_the_controller_stream() {
        let triggers = Triggers::default();
        let subscriber = Subscriber::<AgentgatewayBackend>::refs(
            &triggers.route_refs,
            &triggers.routes,
            |backend| vec![ObjectRef::new(&backend.name_any()).within("ns")],
        );
        (subscriber.on_change)(&with_generation("r1", Some(1)));
        let mut stream = std::pin::pin!(triggers.route_stream());
        assert_eq!(stream.next().await, Some(ObjectRef::new("r1").within("ns")));
    }
}
