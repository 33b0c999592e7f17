//! Waiting for the CRDs: the operator may start before the chart or the Gateway API CRDs are
//! installed, and a watch on a kind the API server does not serve would only fail in a loop.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::Duration;

use agentgateway_crds::gateway_api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use agentgateway_crds::{AgentgatewayBackend, AgentgatewayParameters, AgentgatewayPolicy};
use k8s_openapi::NamespaceResourceScope;
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::cache::Scope;
use crate::shutdown::Shutdown;

const POLL: Duration = Duration::from_secs(2);

/// Waits until the AgentgatewayBackend, AgentgatewayPolicy, AgentgatewayParameters and Gateway API
/// kinds are served (the chart installs our CRDs from one file). Returns whether
/// ReferenceGrants are served too (optional: without them, cross-namespace references are
/// refused), or `None` when shutdown came first.
/// Namespaced kinds are listed where the operator may read them (`scope`).
pub async fn wait_for_crds(client: &Client, scope: &Scope, shutdown: &Shutdown) -> Option<bool> {
    let mut reported = BTreeSet::new();
    loop {
        let mut missing = BTreeSet::new();
        check::<AgentgatewayBackend>(
            scoped(client, scope),
            "agentgatewaybackends.agentgateway.dev",
            &mut missing,
        )
        .await;
        check::<AgentgatewayPolicy>(
            scoped(client, scope),
            "agentgatewaypolicies.agentgateway.dev",
            &mut missing,
        )
        .await;
        check::<AgentgatewayParameters>(
            scoped(client, scope),
            "agentgatewayparameters.agentgateway.dev",
            &mut missing,
        )
        .await;
        check::<GatewayClass>(
            Api::all(client.clone()),
            "gatewayclasses.gateway.networking.k8s.io",
            &mut missing,
        )
        .await;
        check::<Gateway>(
            scoped(client, scope),
            "gateways.gateway.networking.k8s.io",
            &mut missing,
        )
        .await;
        check::<HTTPRoute>(
            scoped(client, scope),
            "httproutes.gateway.networking.k8s.io",
            &mut missing,
        )
        .await;
        if missing.is_empty() {
            break;
        }
        if missing != reported {
            tracing::info!(missing = ?missing, "waiting for CRDs to be installed");
            reported = missing;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.wait() => return None,
        }
    }
    let mut missing = BTreeSet::new();
    check::<ReferenceGrant>(
        scoped(client, scope),
        "referencegrants.gateway.networking.k8s.io",
        &mut missing,
    )
    .await;
    let grants = missing.is_empty();
    if !grants {
        tracing::warn!(
            "ReferenceGrant (gateway.networking.k8s.io/v1beta1) is not served: cross-namespace backendRefs are refused; restart the operator after installing it"
        );
    }
    tracing::info!("CRDs are installed");
    Some(grants)
}

/// The API of a namespaced kind in the first namespace of `scope` (the whole cluster when it is).
fn scoped<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    scope
        .apis(client)
        .into_iter()
        .next()
        .map_or_else(|| Api::all(client.clone()), |(_, api)| api)
}

/// Adds `name` to `missing` unless a one-item LIST of `K` succeeds.
async fn check<K>(api: Api<K>, name: &'static str, missing: &mut BTreeSet<&'static str>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    match api.list(&ListParams::default().limit(1)).await {
        Ok(_) => {}
        Err(error) => {
            if !matches!(&error, kube::Error::Api(status) if status.is_not_found()) {
                tracing::warn!(crd = name, error = %error, "failed to check whether a CRD is served");
            }
            missing.insert(name);
        }
    }
}
