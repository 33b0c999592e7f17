//! The one way every controller writes status: a server-side apply of the status fields it owns,
//! skipped when the cached object already says the same, and remembered until the cache shows
//! the write (a reconcile between the write and its watch event must not write it again).

use std::fmt::Debug;

use agentgateway_crds::gateway_api::{Gateway, GatewayClass, HTTPRoute};
use agentgateway_crds::{AgentgatewayBackend, AgentgatewayPolicy};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

use super::object_key;
use crate::apply::apply_status;
use crate::context::Context;
use crate::error::{Error, Result};

/// A status to write to one object.
pub struct StatusWrite<'a, K> {
    /// The object, as cached.
    pub object: &'a K,
    /// Whether its stored status already says what is wanted (times aside).
    pub up_to_date: bool,
    /// What is wanted, as text (compared with the write still on its way).
    pub wanted: String,
    /// For a list shared with other controllers and replaced whole (an HTTPRoute's
    /// `status.parents`): the write carries the resourceVersion it was computed from and fails
    /// with 409 (then retries on fresh data) rather than drop what another controller just wrote.
    pub precondition: bool,
}

/// Applies `status()` (the status fields, with times) unless `write` says nothing changed;
/// whether it wrote.
pub async fn write_status<K>(
    ctx: &Context,
    api: &Api<K>,
    write: StatusWrite<'_, K>,
    status: impl FnOnce() -> serde_json::Value,
) -> Result<bool>
where
    K: HasStatus,
{
    let StatusWrite {
        object,
        up_to_date,
        wanted,
        precondition,
    } = write;
    let key = object_key(object);
    let memo = format!("{}/{key}", K::KIND);
    let version = object.meta().resource_version.clone();
    if up_to_date {
        ctx.status_settled(&memo);
        return Ok(false);
    }
    if ctx.status_in_flight(&memo, version.as_deref(), &wanted) {
        return Ok(false);
    }
    let mut body = status_body(object, status());
    if precondition {
        body["metadata"]["resourceVersion"] = serde_json::json!(version);
    }
    let name = object.meta().name.clone().unwrap_or_default();
    apply_status(api, &name, &body)
        .await
        .map_err(|source| Error::PatchStatus {
            kind: K::KIND,
            key,
            source: Box::new(source),
        })?;
    ctx.metrics.wrote(K::STATUS_WRITES);
    ctx.status_written(memo, version, wanted);
    Ok(true)
}

/// A kind whose status the operator writes: its name in errors and in the writes metric.
pub trait HasStatus: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug {
    /// The kind.
    const KIND: &'static str;
    /// The `kind` label of its status writes in `agentgateway_operator_writes_total`.
    const STATUS_WRITES: &'static str;
}

macro_rules! has_status {
    ($($kind:ident),*) => {$(
        impl HasStatus for $kind {
            const KIND: &'static str = stringify!($kind);
            const STATUS_WRITES: &'static str = concat!(stringify!($kind), "Status");
        }
    )*};
}

has_status!(
    Gateway,
    GatewayClass,
    HTTPRoute,
    AgentgatewayBackend,
    AgentgatewayPolicy
);

/// The body of a server-side apply of `status` to `object`'s status subresource.
fn status_body<K>(object: &K, status: serde_json::Value) -> serde_json::Value
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
