//! The object that anchors what the operator creates for itself (the leader-election Lease and the
//! webhook certificate Secret): the chart's webhook Service. Both carry an ownerReference to it, so
//! `helm uninstall` removes them through garbage collection, with nothing left behind.

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Api, Client, Resource};

/// An ownerReference to Service `namespace/name`, or `None` when there is no such Service (the
/// operator runs outside a chart installation) or it cannot be read.
pub async fn install_owner(client: &Client, namespace: &str, name: &str) -> Option<OwnerReference> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(service)) => Some(OwnerReference {
            api_version: Service::api_version(&()).into_owned(),
            kind: Service::kind(&()).into_owned(),
            name: name.to_string(),
            uid: service.metadata.uid?,
            // Blocking the owner's deletion would need delete rights on Services; not needed.
            block_owner_deletion: None,
            controller: None,
        }),
        Ok(None) => {
            tracing::info!(
                namespace,
                service = name,
                "no webhook Service: the Lease and certificate Secret get no owner"
            );
            None
        }
        Err(error) => {
            tracing::warn!(namespace, service = name, error = %error, "failed to read the webhook Service; the Lease and certificate Secret get no owner");
            None
        }
    }
}
