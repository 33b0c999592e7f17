//! Waiting for the CRDs: the operator may start before the chart or the Gateway API CRDs are
//! installed, and a watch on a kind the API server does not serve would only fail in a loop.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::Duration;

use agentgateway_crds::AgentgatewayBackend;
use agentgateway_crds::gateway_api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use kube::api::ListParams;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::shutdown::Shutdown;

const POLL: Duration = Duration::from_secs(2);

/// Waits until the AgentgatewayBackend and Gateway API kinds are served. Returns whether
/// ReferenceGrants are served too (optional: without them, cross-namespace references are
/// refused), or `None` when shutdown came first.
pub async fn wait_for_crds(client: &Client, shutdown: &Shutdown) -> Option<bool> {
    let mut reported = BTreeSet::new();
    loop {
        let mut missing = BTreeSet::new();
        check::<AgentgatewayBackend>(
            client,
            "agentgatewaybackends.agentgateway.dev",
            &mut missing,
        )
        .await;
        check::<GatewayClass>(
            client,
            "gatewayclasses.gateway.networking.k8s.io",
            &mut missing,
        )
        .await;
        check::<Gateway>(client, "gateways.gateway.networking.k8s.io", &mut missing).await;
        check::<HTTPRoute>(client, "httproutes.gateway.networking.k8s.io", &mut missing).await;
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
        client,
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

/// Adds `name` to `missing` unless a one-item LIST of `K` succeeds.
async fn check<K>(client: &Client, name: &'static str, missing: &mut BTreeSet<&'static str>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let api: Api<K> = Api::all(client.clone());
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
