//! Answers the validating webhook's "does this Secret exist?" from the operator's Secret cache,
//! and asks the API server only when the cache says no (it may lag a Secret created a moment ago,
//! and before the caches are filled there is no cache at all).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use agentgateway_webhook::{SecretLookup, SecretState};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

/// The Secret lookup of the validating webhook.
pub struct CachedSecrets {
    client: Client,
    cache: OnceLock<Store<Secret>>,
}

impl CachedSecrets {
    /// A lookup that asks the API server until [`CachedSecrets::use_cache`] is called.
    pub fn new(client: Client) -> Arc<Self> {
        Arc::new(Self {
            client,
            cache: OnceLock::new(),
        })
    }

    /// Answers from `store` from now on (a second call is ignored).
    pub fn use_cache(&self, store: Store<Secret>) {
        let _ = self.cache.set(store);
    }
}

fn keys(secret: &Secret) -> BTreeSet<String> {
    let data = secret.data.iter().flat_map(|d| d.keys());
    let string_data = secret.string_data.iter().flat_map(|d| d.keys());
    data.chain(string_data).cloned().collect()
}

impl SecretLookup for CachedSecrets {
    fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Pin<Box<dyn Future<Output = SecretState> + Send + '_>> {
        let cached = self
            .cache
            .get()
            .and_then(|store| store.get(&ObjectRef::new(name).within(namespace)));
        if let Some(secret) = cached {
            let keys = keys(&secret);
            return Box::pin(async move { SecretState::Found { keys } });
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let name = name.to_string();
        Box::pin(async move {
            match api.get_opt(&name).await {
                Ok(Some(secret)) => SecretState::Found {
                    keys: keys(&secret),
                },
                Ok(None) => SecretState::NotFound,
                Err(error) => {
                    tracing::debug!(secret = %name, error = %error, "failed to look up a referenced Secret");
                    SecretState::Unknown
                }
            }
        })
    }
}
