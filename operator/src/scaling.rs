//! The API edge of the proxies' autoscalers and disruption budgets: which versions the API server
//! serves (discovery, once at startup), deleting one a Gateway no longer asks for, and handing a
//! Deployment's `replicas` over to its autoscaler.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};

use crate::apply::controlled_by;
use crate::context::Context;
use crate::error::Error;
use crate::resources::{HpaVersion, Owner, PdbVersion, ScalingApis};
use crate::shutdown::Shutdown;

const POLL: Duration = Duration::from_secs(2);

/// The field manager that holds a Deployment's `replicas` while it passes from the operator to
/// the autoscaler (see [`hand_over_replicas`]).
pub const HANDOVER_MANAGER: &str = "agentgateway-operator-replicas-handover";

/// The autoscaler and budget versions the API server serves: the newer one when served, else the
/// older (Kubernetes 1.20 serves only `autoscaling/v2beta2` and `policy/v1beta1`). Asks again
/// until the API server answers; `None` when shutdown came first.
pub async fn discover(client: &Client, shutdown: &Shutdown) -> Option<ScalingApis> {
    loop {
        let hpa = serves(client, "autoscaling/v2", "horizontalpodautoscalers").await;
        let pdb = serves(client, "policy/v1", "poddisruptionbudgets").await;
        match (hpa, pdb) {
            (Ok(hpa), Ok(pdb)) => {
                let apis = ScalingApis {
                    hpa: if hpa {
                        HpaVersion::V2
                    } else {
                        HpaVersion::V2beta2
                    },
                    pdb: if pdb {
                        PdbVersion::V1
                    } else {
                        PdbVersion::V1beta1
                    },
                };
                tracing::info!(
                    autoscaler = %apis.hpa.resource().api_version,
                    disruption_budget = %apis.pdb.resource().api_version,
                    "autoscaling and disruption budget API versions"
                );
                return Some(apis);
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::warn!(error = %error, "failed to discover the autoscaling and policy API versions; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.wait() => return None,
        }
    }
}

/// Whether `group_version` lists `plural`; a group version the server does not know is `false`.
async fn serves(client: &Client, group_version: &str, plural: &str) -> kube::Result<bool> {
    match client.list_api_group_resources(group_version).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == plural)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(error) => Err(error),
    }
}

/// Deletes `owner`'s object of `resource` (named after the Gateway) when the Gateway controls
/// it; returns whether it did. Known-absent objects are remembered in the context, so a Gateway
/// without an autoscaler costs one read per operator lifetime, not one per reconcile.
pub async fn delete_owned(
    ctx: &Context,
    kind: &'static str,
    resource: &ApiResource,
    owner: &Owner,
) -> Result<bool, Error> {
    let memo = absent_key(kind, owner);
    if ctx.known_absent(&memo) {
        return Ok(false);
    }
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &owner.namespace, resource);
    let get_error = |source| Error::Get {
        kind,
        namespace: owner.namespace.clone(),
        name: owner.name.clone(),
        source: Box::new(source),
    };
    let live = api.get_opt(&owner.name).await.map_err(get_error)?;
    let deleted = match live {
        Some(live) if controlled_by(&live.metadata, &owner.uid) => {
            match api.delete(&owner.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(Error::Apply {
                        kind,
                        namespace: owner.namespace.clone(),
                        name: owner.name.clone(),
                        source: Box::new(source),
                    });
                }
            }
            ctx.metrics.wrote(kind);
            tracing::info!(kind, namespace = %owner.namespace, name = %owner.name, "deleted: the Gateway's parameters no longer ask for it");
            true
        }
        // Someone else's object of that name is not ours to delete.
        Some(_) | None => false,
    };
    ctx.remember_absent(memo, true);
    Ok(deleted)
}

/// The memo key of `owner`'s object of `kind`.
pub fn absent_key(kind: &str, owner: &Owner) -> String {
    format!("{kind}/{}", owner.key())
}

/// Before the operator applies a Deployment without `replicas` (autoscaling on), a second field
/// manager applies the live count alone. Server-side apply removes a field that its only manager
/// stops applying, which would reset `replicas` to 1 when switching from a fixed count to
/// autoscaling; with the handover manager co-owning the field, the operator's apply without it
/// keeps the value, and the autoscaler's first scale takes it over (the handover is Kubernetes'
/// documented ownership transfer). Not forced: a conflict means another manager (the autoscaler)
/// already owns `replicas` with another value, so there is nothing to hand over.
pub async fn hand_over_replicas(ctx: &Context, owner: &Owner, replicas: i32) -> Result<(), Error> {
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let body = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": owner.name, "namespace": owner.namespace},
        "spec": {"replicas": replicas},
    });
    match api
        .patch(
            &owner.name,
            &PatchParams::apply(HANDOVER_MANAGER),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => Ok(()),
        Err(source) => Err(Error::Apply {
            kind: "Deployment",
            namespace: owner.namespace.clone(),
            name: owner.name.clone(),
            source: Box::new(source),
        }),
    }
}
