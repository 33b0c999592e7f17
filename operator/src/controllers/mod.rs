//! The controllers, each staged `dereference → validate/compile → build (pure) → apply →
//! update status`, and what they share: metrics around every reconcile, the error policy, and
//! wiring them to the caches' triggers.

pub mod backend;
pub mod gateway;
pub mod gateway_class;
pub mod gateway_status;
pub mod route;
pub mod route_status;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use agentgateway_crds::AgentgatewayBackend;
use agentgateway_crds::gateway_api::{Gateway, GatewayClass, HTTPRoute};
use futures_util::StreamExt;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};

use crate::context::Context;
use crate::error::{Error, Result};
use crate::shutdown::Shutdown;
use crate::triggers::{Triggers, notify_stream};

/// Runs every controller until `shutdown`; in-flight reconciles finish first.
pub async fn run(ctx: Arc<Context>, triggers: Triggers, shutdown: Shutdown) {
    let client = ctx.client.clone();
    let config = watcher::Config::default;
    let backends = Controller::new(Api::<AgentgatewayBackend>::all(client.clone()), config())
        .reconcile_all_on(notify_stream(Arc::clone(&triggers.backends)))
        .reconcile_on(triggers.backend_stream())
        .graceful_shutdown_on(shutdown.wait())
        .run(backend::reconcile, backend::error_policy, Arc::clone(&ctx))
        .for_each(|result| log_result(backend::CONTROLLER, result));
    let classes = Controller::new(Api::<GatewayClass>::all(client.clone()), config())
        .graceful_shutdown_on(shutdown.wait())
        .run(
            gateway_class::reconcile,
            gateway_class::error_policy,
            Arc::clone(&ctx),
        )
        .for_each(|result| log_result(gateway_class::CONTROLLER, result));
    let gateways = Controller::new(Api::<Gateway>::all(client.clone()), config())
        .reconcile_all_on(notify_stream(Arc::clone(&triggers.gateways)))
        .graceful_shutdown_on(shutdown.wait())
        .run(gateway::reconcile, gateway::error_policy, Arc::clone(&ctx))
        .for_each(|result| log_result(gateway::CONTROLLER, result));
    let routes = Controller::new(Api::<HTTPRoute>::all(client), config())
        .reconcile_all_on(notify_stream(Arc::clone(&triggers.routes)))
        .reconcile_on(triggers.route_stream())
        .graceful_shutdown_on(shutdown.wait())
        .run(route::reconcile, route::error_policy, Arc::clone(&ctx))
        .for_each(|result| log_result(route::CONTROLLER, result));
    tracing::info!("controllers started");
    tokio::join!(backends, classes, gateways, routes);
    tracing::info!("controllers stopped");
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

/// The body of a server-side apply of `status` to `object`'s status subresource.
pub(crate) fn status_body<K>(object: &K, status: serde_json::Value) -> serde_json::Value
where
    K: Resource<DynamicType = ()>,
{
    let mut metadata = serde_json::json!({ "name": object.meta().name });
    if let Some(namespace) = &object.meta().namespace {
        metadata["namespace"] = serde_json::Value::String(namespace.clone());
    }
    serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": metadata,
        "status": status,
    })
}
