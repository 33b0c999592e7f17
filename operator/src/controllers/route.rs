//! HTTPRoute status: for each parentRef to a Gateway of ours, whether the route attaches, whether
//! its backendRefs resolve and whether its config reached the proxy, all from the views that
//! Gateway's one compile published (see `route_views`). A route never compiles anything itself,
//! so conflicts between routes show on the route that loses.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentgateway_crds::gateway_api::HTTPRoute;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::route_status;
use super::status::{StatusWrite, write_status};
use super::{instrumented, object_key, on_error};
use crate::cache::inputs::gateway_key;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::route_views;

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
    let route_key = (route.namespace().unwrap_or_default(), route.name_any());
    let mut ours = BTreeMap::new();
    for parent in &route.spec.parent_refs {
        let Some(gateway_key) = gateway_key(route, parent) else {
            continue;
        };
        let Some((namespace, name)) = gateway_key.split_once('/') else {
            continue;
        };
        let Some(gateway) = ctx.stores.our_gateway(namespace, name) else {
            continue;
        };
        let view = ctx
            .route_views
            .view(&gateway_key, route_views::uid(&gateway), &route_key);
        match view {
            // The Gateway compiled this very generation of the route and tried to deliver it.
            Some(view)
                if view.generation == route.metadata.generation && view.delivery.is_some() =>
            {
                ours.insert(gateway_key, view);
            }
            // Not yet: the Gateway's compile is on its way and wakes this route when it is done.
            _ => return Ok(Action::await_change()),
        }
    }
    let desired = route_status::desired_parents(route, &ours);
    let existing = route
        .status
        .as_ref()
        .map(|s| s.parents.as_slice())
        .unwrap_or_default();
    let api: Api<HTTPRoute> =
        Api::namespaced(ctx.client.clone(), &route.namespace().unwrap_or_default());
    let write = StatusWrite {
        object: route,
        up_to_date: route_status::up_to_date(existing, &desired),
        wanted: format!("{desired:?}"),
        // `status.parents` is an atomic list shared with other controllers.
        precondition: true,
    };
    let written = write_status(ctx, &api, write, || {
        let parents = route_status::merge(existing, &desired, Timestamp::now());
        serde_json::json!({ "parents": parents })
    })
    .await?;
    if written {
        tracing::info!(route = %key, parents = desired.len(), "route status updated");
    }
    Ok(Action::await_change())
}
