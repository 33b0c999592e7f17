//! Keeps the webhook's certificate: every replica runs this loop, and they converge on one Secret.
//!
//! - No Secret: generate a CA and a serving certificate and create it. Creation is the race: one
//!   replica wins, the others get 409 and read the winner's.
//! - Two thirds into the serving certificate's life, or when it lacks a name: sign a new one with
//!   the same CA and replace the Secret (resourceVersion-checked: one replica writes, the others
//!   read it). The `caBundle` does not change, so nothing can fail in between.
//! - A new CA (the old one nearing its end, or the Secret deleted or corrupted): the bundle keeps
//!   the CA this replica served so far, the bundle is patched into the webhook configurations
//!   first, and the new certificate is served only after the API server has had time to see it.
//! - Always: both webhook configurations' `caBundle` equals the Secret's `ca.crt`, and the
//!   resolver serves the Secret's pair. Changes to the Secret or the configurations (someone
//!   deletes the Secret, `helm upgrade` rewrites a configuration) wake the loop at once.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;

use agentgateway_webhook::CertResolver;

use super::ca_bundle;
use super::cert_secret::{from_secret, to_secret};
use super::certs::{self, CertError, Lifetimes, Material, Plan};
use crate::apply::post_params;
use crate::shutdown::Shutdown;

/// How long the API server gets to pick up a new `caBundle` before a certificate from a new CA is
/// served (its webhook configuration informer usually takes well under a second).
pub const CA_PROPAGATION: Duration = Duration::from_secs(5);
/// The loop looks again at least this often, whatever the certificate's lifetime.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Where the certificate lives and what it is for.
#[derive(Clone, Debug)]
pub struct CertSettings {
    /// The operator's namespace (the Secret's).
    pub namespace: String,
    /// The certificate Secret's name.
    pub secret_name: String,
    /// The name of both webhook configurations.
    pub configuration_name: String,
    /// The names the serving certificate is valid for.
    pub names: Vec<String>,
    /// Validity periods.
    pub lifetimes: Lifetimes,
}

/// A certificate round failed; the loop retries with backoff.
#[derive(Debug, thiserror::Error)]
pub enum CertManagerError {
    /// Reading or writing the Secret or a webhook configuration failed.
    #[error("failed to {action}: {source}")]
    Api {
        /// What was being done.
        action: &'static str,
        /// What the API server said.
        #[source]
        source: Box<kube::Error>,
    },
    /// Making a certificate failed.
    #[error(transparent)]
    Cert(#[from] CertError),
    /// The Secret's pair was refused by the TLS stack.
    #[error("failed to load the serving certificate: {0}")]
    Load(String),
    /// Another replica wrote the Secret between our read and write: read again.
    #[error("the certificate Secret changed while being written")]
    Conflict,
}

fn api(action: &'static str) -> impl FnOnce(kube::Error) -> CertManagerError {
    move |source| CertManagerError::Api {
        action,
        source: Box::new(source),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The certificate loop of one replica.
pub struct CertManager {
    client: Client,
    secrets: Api<Secret>,
    settings: CertSettings,
    resolver: Arc<CertResolver>,
    owner: Option<OwnerReference>,
    /// The CA of the certificate this replica serves.
    served_ca: Option<String>,
    /// The serving certificate this replica serves.
    served_cert: Option<String>,
}

impl CertManager {
    /// A loop for `settings`; the Secret it creates is owned by `owner`.
    pub fn new(
        client: Client,
        settings: CertSettings,
        resolver: Arc<CertResolver>,
        owner: Option<OwnerReference>,
    ) -> Self {
        Self {
            secrets: Api::namespaced(client.clone(), &settings.namespace),
            client,
            settings,
            resolver,
            owner,
            served_ca: None,
            served_cert: None,
        }
    }

    /// Runs until shutdown.
    pub async fn run(mut self, shutdown: Shutdown) {
        let wake = Arc::new(Notify::new());
        self.watch_inputs(&wake);
        let mut failures = 0u32;
        loop {
            let sleep = match self.reconcile().await {
                Ok(recheck_at) => {
                    failures = 0;
                    let seconds = (recheck_at - unix_now()).max(1) as u64;
                    Duration::from_secs(seconds).min(MAX_SLEEP)
                }
                Err(CertManagerError::Conflict) => Duration::from_millis(100),
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let backoff = Duration::from_secs(1 << failures.min(5));
                    tracing::warn!(error = %error, retry_in_s = backoff.as_secs(), "webhook certificate round failed");
                    backoff
                }
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = wake.notified() => {}
                () = shutdown.wait() => return,
            }
        }
    }

    /// Wakes the loop on any change of the Secret or of either webhook configuration.
    fn watch_inputs(&self, wake: &Arc<Notify>) {
        let by_name = watcher::Config::default()
            .fields(&format!("metadata.name={}", self.settings.secret_name));
        spawn_waker(
            watcher::watcher(self.secrets.clone(), by_name).default_backoff(),
            wake.clone(),
        );
        let by_name = watcher::Config::default().fields(&format!(
            "metadata.name={}",
            self.settings.configuration_name
        ));
        let validating: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        spawn_waker(
            watcher::watcher(validating, by_name.clone()).default_backoff(),
            wake.clone(),
        );
        let mutating: Api<MutatingWebhookConfiguration> = Api::all(self.client.clone());
        spawn_waker(
            watcher::watcher(mutating, by_name).default_backoff(),
            wake.clone(),
        );
    }

    /// One round; returns when to look again (unix seconds).
    async fn reconcile(&mut self) -> Result<i64, CertManagerError> {
        let now = unix_now();
        // Owned: `serve` below borrows `self` mutably.
        let names = &self.settings.names.clone();
        let lifetimes = self.settings.lifetimes;
        let stored = self
            .secrets
            .get_opt(&self.settings.secret_name)
            .await
            .map_err(api("read the webhook certificate Secret"))?;
        let material = match stored {
            None => {
                let material = certs::generate(names, now, lifetimes, self.served_ca.as_deref())?;
                self.create(&material).await?;
                tracing::info!(secret = %self.settings.secret_name, "created the webhook certificate");
                material
            }
            Some(secret) => match from_secret(&secret) {
                Err(error) => {
                    tracing::warn!(error = %error, "the webhook certificate Secret is unusable; replacing it");
                    let material =
                        certs::generate(names, now, lifetimes, self.served_ca.as_deref())?;
                    self.replace(secret, &material).await?;
                    material
                }
                Ok(material) => match certs::plan(&material, names, now) {
                    Plan::Keep { .. } => material,
                    Plan::RenewServing => {
                        let renewed = certs::renew_serving(&material, names, now, lifetimes)?;
                        self.replace(secret, &renewed).await?;
                        tracing::info!(secret = %self.settings.secret_name, "renewed the webhook serving certificate");
                        renewed
                    }
                    Plan::RenewCa => {
                        let renewed =
                            certs::generate(names, now, lifetimes, Some(&material.ca.cert_pem))?;
                        self.replace(secret, &renewed).await?;
                        tracing::info!(secret = %self.settings.secret_name, "renewed the webhook CA");
                        renewed
                    }
                },
            },
        };
        let outcome = ca_bundle::ensure(
            &self.client,
            &self.settings.configuration_name,
            material.ca_bundle_pem.as_bytes(),
        )
        .await
        .map_err(api("patch caBundle into the webhook configurations"))?;
        if outcome
            .iter()
            .any(|o| matches!(o, ca_bundle::Outcome::Patched(_)))
        {
            tracing::info!(configuration = %self.settings.configuration_name, outcome = ?outcome, "patched the webhook CA bundle");
        }
        self.serve(&material).await?;
        Ok(match certs::plan(&material, names, unix_now()) {
            Plan::Keep { recheck_at } => recheck_at,
            Plan::RenewServing | Plan::RenewCa => unix_now() + 1,
        })
    }

    async fn create(&self, material: &Material) -> Result<(), CertManagerError> {
        let secret = to_secret(
            None,
            &self.settings.namespace,
            &self.settings.secret_name,
            material,
            self.owner.clone(),
        );
        match self.secrets.create(&post_params(), &secret).await {
            Ok(_) => Ok(()),
            // Another replica created it first: use theirs.
            Err(kube::Error::Api(status)) if status.is_already_exists() => {
                Err(CertManagerError::Conflict)
            }
            Err(error) => Err(api("create the webhook certificate Secret")(error)),
        }
    }

    async fn replace(&self, current: Secret, material: &Material) -> Result<(), CertManagerError> {
        let secret = to_secret(
            Some(current),
            &self.settings.namespace,
            &self.settings.secret_name,
            material,
            None,
        );
        match self
            .secrets
            .replace(&self.settings.secret_name, &post_params(), &secret)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.is_conflict() => {
                Err(CertManagerError::Conflict)
            }
            Err(error) => Err(api("update the webhook certificate Secret")(error)),
        }
    }

    /// Serves `material`'s pair. A certificate from a CA other than the served one waits until the
    /// API server trusts it, unless the served CA is no longer trusted anyway.
    async fn serve(&mut self, material: &Material) -> Result<(), CertManagerError> {
        if self.served_cert.as_deref() == Some(material.serving.cert_pem.as_str()) {
            return Ok(());
        }
        if let Some(served_ca) = &self.served_ca
            && served_ca != &material.ca.cert_pem
            && material.ca_bundle_pem.contains(served_ca.as_str())
        {
            tracing::info!(
                wait_s = CA_PROPAGATION.as_secs(),
                "new webhook CA: serving its certificate once the API server trusts it"
            );
            tokio::time::sleep(CA_PROPAGATION).await;
        }
        self.resolver
            .set_pem(
                material.serving.cert_pem.as_bytes(),
                material.serving.key_pem.as_bytes(),
            )
            .map_err(|e| CertManagerError::Load(e.to_string()))?;
        let first = self.served_cert.is_none();
        self.served_ca = Some(material.ca.cert_pem.clone());
        self.served_cert = Some(material.serving.cert_pem.clone());
        let expires = certs::not_after(&material.serving.cert_pem, "tls.crt").unwrap_or_default();
        tracing::info!(
            first,
            expires_unix = expires,
            "serving the webhook certificate"
        );
        Ok(())
    }
}

/// Notifies `wake` on every event of `stream` (the watcher backs off and retries on errors).
fn spawn_waker<K: Send + 'static>(
    stream: impl futures_util::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    wake: Arc<Notify>,
) {
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => wake.notify_one(),
                Err(error) => {
                    tracing::debug!(error = %error, "webhook certificate watch error; retrying")
                }
            }
        }
    });
}
