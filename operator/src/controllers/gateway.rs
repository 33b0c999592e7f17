//! Gateway: compile its routes and backends, apply the proxy's objects (only those whose desired
//! state changed, never one another owner controls), ask the proxy replicas which config they
//! serve, then write `Accepted`/`Programmed` and the listener status. Every failure on that path
//! is `Programmed=False` with the failure's reason, and an event.

use std::sync::Arc;
use std::time::Duration;

use agentgateway_compiler::{GatewayCompilation, compile_gateway};
use agentgateway_crds::conditions::reasons;
use agentgateway_crds::gateway_api::Gateway;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource};

use super::gateway_status::{self, Programming};
use super::status::{StatusWrite, write_status};
use super::{instrumented, object_key, on_error, parameters};
use crate::apply::{Applied, applied_hash, apply_owned, apply_owned_dynamic, controlled_by};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::proxy_report;
use crate::resources::{self, Owner, ProxyObjects, Workload};
use crate::route_views;
use crate::scaling;

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "gateway";

/// A safety net: even without any event, each Gateway is checked this often (a no-op when nothing
/// changed, as nothing is written then).
const RESYNC: Duration = Duration::from_secs(600);

/// The shortest time between two writes of one Gateway's proxy objects.
const COALESCE: Duration = Duration::from_millis(500);

/// While the proxy has not loaded the written config yet, it is asked again this often.
const POLL: Duration = Duration::from_secs(2);

/// Reconciles one Gateway.
pub async fn reconcile(gateway: Arc<Gateway>, ctx: Arc<Context>) -> Result<Action> {
    let key = object_key(gateway.as_ref());
    // Dereference: a deleted Gateway is garbage-collected with its objects through their
    // ownerReferences; one that is not (or no longer) of our classes loses the proxy it had.
    if gateway.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(class) = ctx.stores.our_class(&gateway.spec.gateway_class_name) else {
        return instrumented(&ctx, CONTROLLER, &key, release(&gateway, &ctx, &key)).await;
    };
    // A burst of changes (a thousand backends applied at once) is coalesced: proxy objects are
    // written at most once per COALESCE per Gateway, so the burst costs a few compiles and
    // ConfigMap writes; a single change after a quiet spell waits for nothing.
    if let Some(wait) = ctx.coalesce(&key, COALESCE) {
        return Ok(Action::requeue(wait));
    }
    // Compile and build: pure.
    let inputs = ctx
        .stores
        .gateway_inputs(&ctx.client, ctx.shared_counters())
        .await?;
    let compilation = compile_gateway(&gateway, &inputs);
    // Every attached route's status comes from this one compile (see `route_views`).
    let routes = route_views::routes_of(&key, &inputs.routes, &compilation);
    ctx.route_views
        .publish_compile(&key, route_views::uid(&gateway), routes);
    // Invalid parameters build no workload: the running Deployment, Service, autoscaler and
    // budget stay as they are (no flap to the defaults), while routes and keys still reach the
    // proxy through its ConfigMap and Secret.
    let stores = &ctx.stores;
    let lookup = |namespace: &str, name: &str| {
        stores
            .parameters
            .get(&ObjectRef::new(name).within(namespace))
    };
    let shape = parameters::gateway_shape(&gateway, &class, &lookup);
    let infrastructure = parameters::infrastructure_only(&gateway);
    let objects = resources::build(
        &gateway,
        &compilation.compiled,
        &ctx.proxy,
        &ctx.redis_password(),
        shape.as_ref().map_err(|_| &infrastructure),
        ctx.scaling,
    );
    // A write that failed is not repeated before its backoff ends, however often unrelated
    // changes wake this Gateway; a changed input is tried at once.
    let attempt = fingerprint(&objects);
    if let Some(wait) = ctx.retry_remaining(&retry_key(&key), &attempt) {
        return Ok(Action::requeue(wait));
    }
    instrumented(
        &ctx,
        CONTROLLER,
        &key,
        program(
            &gateway,
            &ctx,
            &key,
            &compilation,
            objects,
            attempt,
            shape.err(),
        ),
    )
    .await
}

/// The error policy of this controller.
pub fn error_policy(gateway: Arc<Gateway>, error: &Error, ctx: Arc<Context>) -> Action {
    on_error(&ctx, CONTROLLER, &object_key(gateway.as_ref()), error)
}

fn retry_key(key: &str) -> String {
    format!("{CONTROLLER}/{key}")
}

/// What a reconcile is about to write, to recognize a repeat of a failed attempt.
fn fingerprint(objects: &Result<ProxyObjects>) -> String {
    match objects {
        Ok(objects) => applied_hash(objects).unwrap_or_default(),
        Err(error) => error.to_string(),
    }
}

/// Applies the proxy's objects and writes the status that says how far that got.
async fn program(
    gateway: &Gateway,
    ctx: &Context,
    key: &str,
    compilation: &GatewayCompilation,
    objects: Result<ProxyObjects>,
    attempt: String,
    invalid_parameters: Option<String>,
) -> Result<Action> {
    let owner = Owner::of(gateway)?;
    let applied = match objects {
        Ok(objects) => {
            let generation = resources::generation_of(&objects.config_map).map(String::from);
            apply_all(ctx, &owner, objects)
                .await
                .map(|written| (written, generation))
        }
        Err(error) => Err(error),
    };
    let (programming, failure) = match applied {
        Ok((written, generation)) => {
            if written > 0 {
                ctx.wrote_proxy_objects(key);
                let config = &compilation.compiled.config;
                let rules: usize = config.listeners.iter().map(|l| l.rules.len()).sum();
                tracing::info!(gateway = %key, written, rules, backends = config.backends.len(), "proxy objects updated");
            }
            let generation = generation.unwrap_or_default();
            (proxy_programming(ctx, &owner, &generation).await, None)
        }
        Err(error) => {
            ctx.failed_attempt(&retry_key(key), attempt);
            ctx.publish(
                &gateway.object_ref(&()),
                EventType::Warning,
                error.label(),
                "Apply",
                error.to_string(),
            )
            .await;
            let programming = Programming::Failed {
                reason: error.label(),
                message: error.to_string(),
            };
            (programming, Some(error))
        }
    };
    ctx.route_views
        .publish_delivery(key, route_views::uid(gateway), programming.delivery());
    if let Some(message) = &invalid_parameters {
        ctx.publish(
            &gateway.object_ref(&()),
            EventType::Warning,
            reasons::INVALID_PARAMETERS,
            "Validate",
            message.clone(),
        )
        .await;
    }
    let status = write_gateway_status(
        gateway,
        ctx,
        key,
        compilation,
        &programming,
        invalid_parameters.as_deref(),
    )
    .await;
    if let Some(error) = failure {
        if let Err(status_error) = status {
            tracing::warn!(gateway = %key, error = %status_error, "failed to report the failure in the Gateway's status");
        }
        return Err(error);
    }
    status?;
    Ok(match programming {
        Programming::Serving { .. } => Action::requeue(RESYNC),
        // Pods starting or loading the config: look again soon (pod changes also wake it).
        Programming::Pending(_) | Programming::Failed { .. } => Action::requeue(POLL),
    })
}

/// How far the proxy got with config `generation`: asks each replica serving traffic.
async fn proxy_programming(ctx: &Context, owner: &Owner, generation: &str) -> Programming {
    let selector = owner.selector_labels();
    let pods: Vec<_> = ctx
        .stores
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(owner.namespace.as_str()))
        .filter(|p| {
            let labels = p.metadata.labels.as_ref();
            selector
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        })
        .filter(|p| proxy_report::serves_traffic(p))
        .collect();
    let reports = futures_util::future::join_all(pods.iter().map(|pod| async {
        let report = proxy_report::fetch(&ctx.client, pod).await;
        (pod.metadata.name.clone().unwrap_or_default(), report)
    }))
    .await;
    proxy_report::programming(generation, &reports)
}

/// Writes the Gateway's status unless it already says the same.
async fn write_gateway_status(
    gateway: &Gateway,
    ctx: &Context,
    key: &str,
    compilation: &GatewayCompilation,
    programming: &Programming,
    invalid_parameters: Option<&str>,
) -> Result<()> {
    let desired = gateway_status::desired(gateway, compilation, programming, invalid_parameters);
    let status = gateway_status::merge(gateway.status.as_ref(), &desired, Timestamp::now());
    let status = serde_json::to_value(&status).map_err(|source| Error::SerializeStatus {
        kind: "Gateway",
        key: key.to_string(),
        source,
    })?;
    let namespace = gateway.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Gateway> = Api::namespaced(ctx.client.clone(), &namespace);
    let write = StatusWrite {
        object: gateway,
        up_to_date: gateway_status::up_to_date(gateway.status.as_ref(), &desired),
        wanted: format!("{desired:?}"),
        precondition: false,
    };
    if write_status(ctx, &api, write, || status).await? {
        tracing::info!(gateway = %key, programming = ?programming, "gateway status updated");
    }
    Ok(())
}

/// Deletes the proxy objects a Gateway controls once it is no longer of our classes: its proxy
/// must not keep running with live credentials under a class that is not ours. Only objects whose
/// controller is this Gateway (by uid) are deleted.
async fn release(gateway: &Gateway, ctx: &Context, key: &str) -> Result<Action> {
    ctx.route_views.forget(key);
    let Ok(owner) = Owner::of(gateway) else {
        return Ok(Action::await_change());
    };
    let stores = &ctx.stores;
    let deleted = [
        release_one::<Deployment, _>(ctx, &owner, &stores.deployments, &owner.name).await?,
        release_one::<Service, _>(ctx, &owner, &stores.services, &owner.name).await?,
        release_one::<ConfigMap, _>(ctx, &owner, &stores.config_maps, &owner.config_map_name())
            .await?,
        release_one::<Secret, _>(ctx, &owner, &stores.secrets, &owner.secret_name()).await?,
        release_one::<RoleBinding, _>(ctx, &owner, &stores.role_bindings, &owner.name).await?,
        release_one::<Role, _>(ctx, &owner, &stores.roles, &owner.name).await?,
        release_one::<ServiceAccount, _>(ctx, &owner, &stores.service_accounts, &owner.name)
            .await?,
        scaling::delete_owned(ctx, HPA, &ctx.scaling.hpa.resource(), &owner).await?,
        scaling::delete_owned(ctx, PDB, &ctx.scaling.pdb.resource(), &owner).await?,
    ];
    let deleted = deleted.iter().filter(|d| **d).count();
    if deleted > 0 {
        tracing::info!(gateway = %key, class = %gateway.spec.gateway_class_name, deleted, "gateway left our class; its proxy objects are deleted");
        ctx.publish(
            &gateway.object_ref(&()),
            EventType::Normal,
            reasons::RELEASED,
            "Delete",
            format!(
                "the Gateway's class {} is not agentgateway's: its proxy objects were deleted",
                gateway.spec.gateway_class_name
            ),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// Deletes the cached object `name` if this Gateway controls it; whether it did.
async fn release_one<K, S>(
    ctx: &Context,
    owner: &Owner,
    store: &Store<S>,
    name: &str,
) -> Result<bool>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + k8s_openapi::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    S: Resource<DynamicType = ()> + Clone + 'static,
{
    let Some(live) = live(store, owner, name) else {
        return Ok(false);
    };
    if !controlled_by(&live, &owner.uid) {
        return Ok(false);
    }
    let kind = <K as k8s_openapi::Resource>::KIND;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    match api.delete(name, &Default::default()).await {
        Ok(_) => {
            ctx.metrics.wrote(kind);
            Ok(true)
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => Err(Error::Apply {
            kind,
            namespace: owner.namespace.clone(),
            name: name.to_string(),
            source: Box::new(source),
        }),
    }
}

/// Applies every object whose desired state changed; returns how many were written. Permissions
/// first, so the pods find them; the Secret before the ConfigMap, so a proxy never sees a config
/// whose credentials are not there yet (it also waits for the credentials version the config
/// names).
async fn apply_all(ctx: &Context, owner: &Owner, objects: ProxyObjects) -> Result<usize> {
    let stores = &ctx.stores;
    let ProxyObjects {
        service_account,
        role,
        role_binding,
        config_map,
        secret,
        workload,
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
            secret,
            live(&stores.secrets, owner, &owner.secret_name()),
        )
        .await?,
        apply_owned(
            ctx,
            config_map,
            live(&stores.config_maps, owner, &owner.config_map_name()),
        )
        .await?,
    ];
    let written = results.iter().filter(|r| **r == Applied::Written).count();
    match workload {
        Some(workload) => Ok(written + apply_workload(ctx, owner, workload).await?),
        None => Ok(written),
    }
}

/// The kind names of the autoscaler and the budget, in errors and metrics.
const HPA: &str = "HorizontalPodAutoscaler";
const PDB: &str = "PodDisruptionBudget";

/// Applies the Service, the Deployment, and the autoscaler and budget the parameters ask for
/// (deleting those they no longer ask for); returns how many objects were written.
async fn apply_workload(ctx: &Context, owner: &Owner, workload: Workload) -> Result<usize> {
    let stores = &ctx.stores;
    let Workload {
        service,
        deployment,
        autoscaler,
        disruption_budget,
    } = workload;
    let mut written = 0;
    // A Gateway without a servable listener keeps the Service it had: a Service needs a port.
    if let Some(service) = service
        && apply_owned(ctx, service, live(&stores.services, owner, &owner.name)).await?
            == Applied::Written
    {
        written += 1;
    }
    let live_deployment = stores
        .deployments
        .get(&ObjectRef::new(&owner.name).within(&owner.namespace));
    let autoscaled = deployment
        .spec
        .as_ref()
        .is_some_and(|s| s.replicas.is_none());
    if autoscaled
        && let Some(live) = &live_deployment
        && controlled_by(&live.metadata, &owner.uid)
        && let Some(replicas) = live.spec.as_ref().and_then(|s| s.replicas)
        && !crate::apply::carries_hash(
            Some(&live.metadata),
            &desired_hash(&deployment).unwrap_or_default(),
        )
    {
        scaling::hand_over_replicas(ctx, owner, replicas).await?;
    }
    let live_meta = live_deployment.map(|d| d.metadata.clone());
    if apply_owned(ctx, deployment, live_meta).await? == Applied::Written {
        written += 1;
    }
    let scaling_objects = [
        (HPA, ctx.scaling.hpa.resource(), autoscaler),
        (PDB, ctx.scaling.pdb.resource(), disruption_budget),
    ];
    for (kind, resource, desired) in scaling_objects {
        match desired {
            Some(desired) => {
                let applied = apply_owned_dynamic(ctx, kind, &resource, desired).await?;
                ctx.remember_absent(scaling::absent_key(kind, owner), false);
                if applied == Applied::Written {
                    written += 1;
                }
            }
            None => {
                if scaling::delete_owned(ctx, kind, &resource, owner).await? {
                    written += 1;
                }
            }
        }
    }
    Ok(written)
}

/// The hash [`apply_owned`] will stamp on `deployment`.
fn desired_hash(deployment: &Deployment) -> Option<String> {
    let mut stamped = deployment.clone();
    crate::apply::stamp(&mut stamped).ok()
}

/// The metadata of the cached copy of the owned object `name`.
fn live<K>(store: &Store<K>, owner: &Owner, name: &str) -> Option<ObjectMeta>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store
        .get(&ObjectRef::new(name).within(&owner.namespace))
        .map(|object| object.meta().clone())
}
