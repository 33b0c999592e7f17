//! What wakes the controllers. Each kind has one watch (see [`super::reflector`]); its task hands
//! every change to the kind's subscribers: a controller's own [`Queue`] gets the object itself, and
//! the queues of controllers that depend on the kind get exactly the objects the change affects (a
//! backend edit wakes the Gateways, not every route), or a coalescing "everything" wake-up (cheap for
//! the few Gateways, and after a watch re-list).

use std::sync::{Arc, Mutex};

use futures_util::Stream;
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::{Notify, mpsc};

use agentgateway_crds::gateway_api::{Gateway, GatewayClass, HTTPRoute};
use agentgateway_crds::{AgentgatewayBackend, AgentgatewayPolicy};

/// Sends the objects a change affects to a controller.
pub type RefSender<K> = mpsc::UnboundedSender<ObjectRef<K>>;

/// What a controller of `K` is asked to reconcile: some objects, or all of them.
pub struct Queue<K: Resource> {
    /// Reconcile these objects.
    pub refs: RefSender<K>,
    /// Reconcile every object (coalesced: a burst wakes the controller once).
    pub all: Arc<Notify>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<ObjectRef<K>>>>,
}

impl<K: Resource> Default for Queue<K> {
    fn default() -> Self {
        let (refs, receiver) = mpsc::unbounded_channel();
        Self {
            refs,
            all: Arc::default(),
            receiver: Mutex::new(Some(receiver)),
        }
    }
}

impl<K: Resource + 'static> Queue<K>
where
    K::DynamicType: Send,
{
    /// The objects to reconcile, for `Controller::reconcile_on` (the first call takes them).
    pub fn stream(&self) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        futures_util::stream::unfold(receiver, |receiver| async move {
            let mut receiver = receiver?;
            let next = receiver.recv().await?;
            Some((next, Some(receiver)))
        })
    }

    /// One item per batch of "reconcile everything", for `Controller::reconcile_all_on`.
    pub fn all_stream(&self) -> impl Stream<Item = ()> + Send + 'static {
        notify_stream(Arc::clone(&self.all))
    }
}

/// The queue of each controller.
#[derive(Default)]
pub struct Triggers {
    /// GatewayClasses.
    pub classes: Queue<GatewayClass>,
    /// Gateways.
    pub gateways: Queue<Gateway>,
    /// HTTPRoutes' status.
    pub routes: Queue<HTTPRoute>,
    /// AgentgatewayBackends' status.
    pub backends: Queue<AgentgatewayBackend>,
    /// AgentgatewayPolicies' status.
    pub policies: Queue<AgentgatewayPolicy>,
}

/// A stream yielding once per batch of notifications.
pub fn notify_stream(notify: Arc<Notify>) -> impl Stream<Item = ()> + Send + 'static {
    futures_util::stream::unfold(notify, |notify| async move {
        notify.notified().await;
        Some(((), notify))
    })
}

/// What one change of a `K` does.
pub struct Subscriber<K> {
    pub(super) on_change: Box<dyn Fn(&K) + Send + Sync>,
    pub(super) on_relist: Box<dyn Fn() + Send + Sync>,
    /// Act only when `metadata.generation` moved (or the object is new or deleted): status
    /// writes, including the operator's own, change nothing the dependents read.
    pub(super) spec_only: bool,
    /// Act on deletions only.
    pub(super) deletions_only: bool,
}

impl<K: 'static> Subscriber<K> {
    /// Wakes every object of `queue`'s controller on every change.
    pub fn all<T: Resource>(queue: &Queue<T>) -> Self {
        Self::when(queue, |_| true)
    }

    /// Wakes every object of `queue`'s controller on changes of objects `filter` accepts.
    pub fn when<T: Resource>(
        queue: &Queue<T>,
        filter: impl Fn(&K) -> bool + Send + Sync + 'static,
    ) -> Self {
        let (on_change, on_relist) = (Arc::clone(&queue.all), Arc::clone(&queue.all));
        Self::new(
            move |object| {
                if filter(object) {
                    on_change.notify_one();
                }
            },
            move || on_relist.notify_one(),
        )
    }

    /// Sends the objects `affected` by a change to `queue`; a re-list wakes all of them instead.
    pub fn refs<T: Resource + 'static>(
        queue: &Queue<T>,
        affected: impl Fn(&K) -> Vec<ObjectRef<T>> + Send + Sync + 'static,
    ) -> Self
    where
        T::DynamicType: Send + Sync,
    {
        let (sender, relist) = (queue.refs.clone(), Arc::clone(&queue.all));
        Self::new(
            move |object| {
                for reference in affected(object) {
                    // Fails only when the controller is gone (shutdown): nothing left to wake.
                    let _ = sender.send(reference);
                }
            },
            move || relist.notify_one(),
        )
    }

    /// Calls `forget` with each deleted object (to drop what other maps hold about it).
    pub fn deletions(forget: impl Fn(&K) + Send + Sync + 'static) -> Self {
        Self {
            deletions_only: true,
            ..Self::new(forget, || {})
        }
    }

    fn new(
        on_change: impl Fn(&K) + Send + Sync + 'static,
        on_relist: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        Self {
            on_change: Box::new(on_change),
            on_relist: Box::new(on_relist),
            spec_only: false,
            deletions_only: false,
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

impl<K: Resource<DynamicType = ()> + 'static> Subscriber<K> {
    /// The controller of `K` itself: each changed object is queued for reconcile.
    pub fn own(queue: &Queue<K>) -> Self {
        Self::refs(queue, |object: &K| vec![ObjectRef::from_obj(object)])
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use kube::ResourceExt;

    fn with_generation(name: &str, generation: Option<i64>) -> AgentgatewayBackend {
        let mut backend = AgentgatewayBackend::new(name, Default::default());
        backend.metadata.namespace = Some("ns".into());
        backend.metadata.generation = generation;
        backend
    }

    #[tokio::test]
    async fn a_burst_of_notifications_wakes_a_controller_once() {
        let queue = Queue::<Gateway>::default();
        for _ in 0..200 {
            queue.all.notify_one();
        }
        let mut stream = std::pin::pin!(queue.all_stream());
        assert_eq!(stream.next().await, Some(()));
        let again = tokio::time::timeout(std::time::Duration::from_millis(20), stream.next()).await;
        assert!(again.is_err(), "a second wake-up without a new change");
    }

    #[tokio::test]
    async fn references_reach_the_controller_stream() {
        let triggers = Triggers::default();
        let subscriber = Subscriber::<AgentgatewayBackend>::refs(&triggers.routes, |backend| {
            vec![ObjectRef::new(&backend.name_any()).within("ns")]
        });
        (subscriber.on_change)(&with_generation("r1", Some(1)));
        let own = Subscriber::own(&triggers.backends);
        (own.on_change)(&with_generation("b1", Some(1)));
        let mut routes = std::pin::pin!(triggers.routes.stream());
        assert_eq!(routes.next().await, Some(ObjectRef::new("r1").within("ns")));
        let mut backends = std::pin::pin!(triggers.backends.stream());
        assert_eq!(
            backends.next().await,
            Some(ObjectRef::new("b1").within("ns"))
        );
    }
}
