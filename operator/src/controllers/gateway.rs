//! Gateway: compile its routes and backends, apply the proxy's objects (only those whose desired
//! state changed), then write `Accepted`/`Programmed` and the listener status.

use std::sync::Arc;
use std::time::Duration;

use agentgateway_compiler::compile_gateway;
use agentgateway_crds::gateway_api::Gateway;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource};

use super::{gateway_status, instrumented, object_key, on_error, status_body};
use crate::apply::{Applied, apply_owned, apply_status};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::resources::{self, Owner, ProxyObjects};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "gateway";

/// A safety net: even without any event, each Gateway is checked this often (a no-op when nothing
/// changed, as nothing is written then).
const RESYNC: Duration = Duration::from_secs(600);

/// Reconciles one Gateway.
pub async fn reconcile(gateway: Arc<Gateway>, ctx: Arc<Context>) -> Result<Action> {
    let key = object_key(gateway.as_ref());
    instrumented(
        &ctx,
        CONTROLLER,
        &key,
        reconcile_gateway(&gateway, &ctx, &key),
    )
    .await
}

/// The error policy of this controller.
pub fn error_policy(gateway: Arc<Gateway>, error: &Error, ctx: Arc<Context>) -> Action {
    on_error(&ctx, CONTROLLER, &object_key(gateway.as_ref()), error)
}

async fn reconcile_gateway(gateway: &Gateway, ctx: &Context, key: &str) -> Result<Action> {
    // Dereference: only Gateways of our classes; a deleted one is garbage-collected with its
    // objects through their ownerReferences.
    if ctx
        .stores
        .our_class(&gateway.spec.gateway_class_name)
        .is_none()
        || gateway.metadata.deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    let owner = Owner::of(gateway)?;

    // Compile and build: pure.
    let compilation = compile_gateway(gateway, &ctx.stores.gateway_inputs());
    let objects = resources::build(gateway, &compilation.compiled, &ctx.proxy)?;

    // Apply.
    match apply_all(ctx, &owner, objects).await {
        Ok(0) => {}
        Ok(written) => tracing::info!(gateway = %key, written, "proxy objects updated"),
        Err(error) => {
            ctx.publish(
                &gateway.object_ref(&()),
                EventType::Warning,
                error.label(),
                "Apply",
                error.to_string(),
            )
            .await;
            return Err(error);
        }
    }

    // Status.
    let deployment = ctx
        .stores
        .deployments
        .get(&ObjectRef::new(&owner.name).within(&owner.namespace));
    let available = deployment
        .and_then(|d| d.status.as_ref().and_then(|s| s.available_replicas))
        .unwrap_or(0)
        > 0;
    let desired = gateway_status::desired(gateway, &compilation, available);
    let memo = format!("Gateway/{key}");
    let written = format!("{desired:?}");
    let version = gateway.metadata.resource_version.as_deref();
    if gateway_status::up_to_date(gateway.status.as_ref(), &desired) {
        ctx.status_settled(&memo);
    } else if !ctx.status_in_flight(&memo, version, &written) {
        let status = gateway_status::merge(gateway.status.as_ref(), &desired, Timestamp::now());
        let status = serde_json::to_value(&status).map_err(|source| Error::SerializeStatus {
            kind: "Gateway",
            key: key.to_string(),
            source,
        })?;
        let api: Api<Gateway> = Api::namespaced(ctx.client.clone(), &owner.namespace);
        apply_status(&api, &owner.name, &status_body(gateway, status))
            .await
            .map_err(|source| Error::PatchStatus {
                kind: "Gateway",
                key: key.to_string(),
                source: Box::new(source),
            })?;
        ctx.metrics.wrote("GatewayStatus");
        ctx.status_written(memo, version.map(String::from), written);
        tracing::info!(gateway = %key, programmed = available, "gateway status updated");
    }
    Ok(Action::requeue(RESYNC))
}

/// Applies every object whose desired state changed, permissions first so the pods find them;
/// returns how many were written.
async fn apply_all(ctx: &Context, owner: &Owner, objects: ProxyObjects) -> Result<usize> {
    let stores = &ctx.stores;
    let ProxyObjects {
        service_account,
        role,
        role_binding,
        config_map,
        secret,
        service,
        deployment,
    } = objects;
    let results = [
        apply_owned(
            ctx,
            service_account,
            live(&stores.service_accounts, owner, &owner.name),
        )
        .await?,
        apply_owned(ctx, role, live(&stores.roles, owner, &owner.name)).await?,
        apply_owned(
            ctx,
            role_binding,
            live(&stores.role_bindings, owner, &owner.name),
        )
        .await?,
        apply_owned(
            ctx,
            config_map,
            live(&stores.config_maps, owner, &owner.config_map_name()),
        )
        .await?,
        apply_owned(
            ctx,
            secret,
            live(&stores.secrets, owner, &owner.secret_name()),
        )
        .await?,
        match service {
            // A Gateway without a servable listener keeps the Service it had: a Service needs a port.
            Some(service) => {
                apply_owned(ctx, service, live(&stores.services, owner, &owner.name)).await?
            }
            None => Applied::Unchanged,
        },
        apply_owned(
            ctx,
            deployment,
            live(&stores.deployments, owner, &owner.name),
        )
        .await?,
    ];
    Ok(results.iter().filter(|r| **r == Applied::Written).count())
}

/// The cached copy of the owned object `name`.
fn live<K>(store: &Store<K>, owner: &Owner, name: &str) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&ObjectRef::new(name).within(&owner.namespace))
}
