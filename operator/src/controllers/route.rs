//! HTTPRoute status: for each parentRef to a Gateway of ours, whether the route attaches and
//! whether its backendRefs resolve, from compiling that Gateway with just this route (a route's
//! diagnostics depend on no other route, so this is cheap and exact).

use std::collections::BTreeMap;
use std::sync::Arc;

use agentgateway_compiler::compile_gateway;
use agentgateway_crds::gateway_api::HTTPRoute;
use k8s_openapi::jiff::Timestamp;
use kube::api::Patch;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::route_status::{self, ParentInput, gateway_key};
use super::{instrumented, object_key, on_error};
use crate::apply::patch_params;
use crate::context::Context;
use crate::error::{Error, Result};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "route_status";

/// Reconciles one route's status.
pub async fn reconcile(route: Arc<HTTPRoute>, ctx: Arc<Context>) -> Result<Action> {
    let key = object_key(route.as_ref());
    instrumented(&ctx, CONTROLLER, &key, reconcile_route(&route, &ctx, &key)).await
}

/// The error policy of this controller.
pub fn error_policy(route: Arc<HTTPRoute>, error: &Error, ctx: Arc<Context>) -> Action {
    on_error(&ctx, CONTROLLER, &object_key(route.as_ref()), error)
}

async fn reconcile_route(route: &HTTPRoute, ctx: &Context, key: &str) -> Result<Action> {
    let mut ours = BTreeMap::new();
    let mut inputs = None;
    for parent in &route.spec.parent_refs {
        let Some(gateway_key) = gateway_key(route, parent) else {
            continue;
        };
        if ours.contains_key(&gateway_key) {
            continue;
        }
        let Some((namespace, name)) = gateway_key.split_once('/') else {
            continue;
        };
        let Some(gateway) = ctx.stores.our_gateway(namespace, name) else {
            continue;
        };
        if inputs.is_none() {
            inputs = Some(ctx.stores.route_inputs(&ctx.client, route).await?);
        }
        let Some(inputs) = inputs.as_ref() else {
            continue;
        };
        let diagnostics = compile_gateway(&gateway, inputs).diagnostics;
        let programmed = gateway
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Programmed"))
            .map(|c| (c.status == "True", c.reason.clone(), c.message.clone()));
        ours.insert(
            gateway_key,
            ParentInput {
                diagnostics,
                programmed,
            },
        );
    }
    let desired = route_status::desired_parents(route, &ours);
    let existing = route
        .status
        .as_ref()
        .map(|s| s.parents.as_slice())
        .unwrap_or_default();
    let memo = format!("HTTPRoute/{key}");
    let written = format!("{desired:?}");
    if route_status::up_to_date(existing, &desired) {
        ctx.status_settled(&memo);
        return Ok(Action::await_change());
    }
    if ctx.status_in_flight(&memo, route.metadata.resource_version.as_deref(), &written) {
        return Ok(Action::await_change());
    }
    let parents = route_status::merge(existing, &desired, Timestamp::now());
    // `status.parents` is an atomic list shared with other controllers: a merge patch replaces it
    // whole, so it carries the resourceVersion it was computed from and fails with 409 (then
    // retries on fresh data) instead of dropping an entry another controller just wrote.
    let body = serde_json::json!({
        "metadata": { "resourceVersion": route.resource_version() },
        "status": { "parents": parents },
    });
    let api: Api<HTTPRoute> =
        Api::namespaced(ctx.client.clone(), &route.namespace().unwrap_or_default());
    api.patch_status(&route.name_any(), &patch_params(), &Patch::Merge(&body))
        .await
        .map_err(|source| Error::PatchStatus {
            kind: "HTTPRoute",
            key: key.to_string(),
            source: Box::new(source),
        })?;
    ctx.metrics.wrote("HTTPRouteStatus");
    ctx.status_written(memo, route.metadata.resource_version.clone(), written);
    tracing::info!(route = %key, parents = desired.len(), "route status updated");
    Ok(Action::await_change())
}
