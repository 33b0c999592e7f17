//! The controllers, each staged `dereference → validate/compile → build (pure) → apply →
//! update status`, and what they share: metrics around every reconcile, the error policy, and
//! wiring them to the caches' triggers.

pub mod backend;
pub mod gateway;
pub mod gateway_class;
pub mod gateway_status;
pub mod parameters;
pub mod policy;
pub mod route;
pub mod route_status;
pub mod status;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use std::fmt::Debug;

use futures_util::StreamExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::cache::triggers::{Queue, Triggers};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::shutdown::Shutdown;

/// Runs every controller until `shutdown`; in-flight reconciles finish first. The controllers
/// read the caches' stores and are fed by the caches' watches through `triggers` (no controller
/// watches on its own).
pub async fn run(ctx: Arc<Context>, triggers: Triggers, shutdown: Shutdown) {
    let stores = ctx.stores.clone();
    let backends = controller(stores.backends, &triggers.backends, &shutdown)
        .run(backend::reconcile, backend::error_policy, Arc::clone(&ctx))
        .for_each(|result| log_result(backend::CONTROLLER, result));
    let classes = controller(stores.gateway_classes, &triggers.classes, &shutdown)
        .run(
            gateway_class::reconcile,
            gateway_class::error_policy,
            Arc::clone(&ctx),
        )
        .for_each(|result| log_result(gateway_class::CONTROLLER, result));
    let gateways = controller(stores.gateways, &triggers.gateways, &shutdown)
        .run(gateway::reconcile, gateway::error_policy, Arc::clone(&ctx))
        .for_each(|result| log_result(gateway::CONTROLLER, result));
    let routes = controller(stores.routes, &triggers.routes, &shutdown)
        .run(route::reconcile, route::error_policy, Arc::clone(&ctx))
        .for_each(|result| log_result(route::CONTROLLER, result));
    let policies = controller(stores.policies, &triggers.policies, &shutdown)
        .run(policy::reconcile, policy::error_policy, Arc::clone(&ctx))
        .for_each(|result| log_result(policy::CONTROLLER, result));
    tracing::info!("controllers started");
    tokio::join!(backends, classes, gateways, routes, policies);
    tracing::info!("controllers stopped");
}

/// A controller over the cached `store`, woken only by `queue`.
fn controller<K>(store: Store<K>, queue: &Queue<K>, shutdown: &Shutdown) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    Controller::for_stream(futures_util::stream::pending(), store)
        .reconcile_on(queue.stream())
        .reconcile_all_on(queue.all_stream())
        .graceful_shutdown_on(shutdown.wait())
}

/// Failed reconciles are logged by the error policy; this logs the rest of the runtime's output.
async fn log_result<K: Resource>(
    controller: &'static str,
    result: Result<(ObjectRef<K>, Action), controller::Error<Error, watcher::Error>>,
) where
    K::DynamicType: std::fmt::Debug,
{
    match result {
        Ok(_) | Err(controller::Error::ReconcilerFailed(..)) => {}
        Err(controller::Error::ObjectNotFound(object)) => {
            tracing::debug!(controller, object = %object, "object deleted before its reconcile");
        }
        Err(error) => tracing::warn!(controller, error = %error, "controller runtime error"),
    }
}

/// `namespace/name`, or `name` for cluster-scoped objects.
pub fn object_key<K: ResourceExt>(object: &K) -> String {
    match object.namespace() {
        Some(namespace) => format!("{namespace}/{}", object.name_any()),
        None => object.name_any(),
    }
}

/// Runs one reconcile body, counting and timing it; success resets the object's backoff.
pub(crate) async fn instrumented(
    ctx: &Context,
    controller: &'static str,
    key: &str,
    body: impl Future<Output = Result<Action>>,
) -> Result<Action> {
    let started = Instant::now();
    let result = body.await;
    ctx.metrics.reconciled(controller, started.elapsed());
    if result.is_ok() {
        ctx.reset_retry(&format!("{controller}/{key}"));
    }
    result
}

/// The error policy of every controller: an error the same input would hit again waits for the
/// object to change; anything else retries with the object's exponential backoff.
pub(crate) fn on_error(
    ctx: &Context,
    controller: &'static str,
    key: &str,
    error: &Error,
) -> Action {
    ctx.metrics.failed(controller, error.label());
    if error.is_transient() {
        let delay = ctx.next_retry(&format!("{controller}/{key}"));
        tracing::warn!(
            controller,
            object = %key,
            error = %error,
            retry_in_ms = delay.as_millis() as u64,
            "reconcile failed; retrying"
        );
        Action::requeue(delay)
    } else {
        tracing::warn!(controller, object = %key, error = %error, "reconcile failed; waiting for the object to change");
        Action::await_change()
    }
}
