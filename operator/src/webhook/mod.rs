//! The admission webhooks, served by every operator replica on their own TLS port (validation and
//! defaulting themselves live in `agentgateway-webhook`, shared with the tests). This module wires
//! them to the cluster: the certificate (generated and rotated here, or mounted from a Secret),
//! the Secret and policy target lookups behind admission warnings, readiness and a graceful stop.

pub mod ca_bundle;
pub mod cert_manager;
pub mod cert_secret;
pub mod certs;
pub mod secret_lookup;
pub mod target_lookup;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agentgateway_webhook::{CertResolver, WebhookMetrics, WebhookState};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use tokio::task::JoinHandle;

use self::cert_manager::{CertManager, CertSettings};
use self::certs::Lifetimes;
use self::secret_lookup::CachedSecrets;
use self::target_lookup::CachedTargets;
use crate::error::RunError;
use crate::health::{self, Health};
use crate::shutdown::Shutdown;

/// How the webhooks are served.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// The TLS listen address.
    pub addr: SocketAddr,
    /// A directory with `tls.crt`/`tls.key` to serve instead of a generated certificate.
    pub cert_dir: Option<PathBuf>,
    /// The operator's namespace: the webhook Service's and the certificate Secret's.
    pub namespace: String,
    /// The webhook Service (the certificate's DNS names; the owner of what the operator creates).
    pub service: String,
    /// The certificate Secret.
    pub cert_secret: String,
    /// The name of both webhook configurations (their `caBundle` is patched).
    pub configuration: String,
    /// More names or IP addresses for the certificate (webhooks configured by URL).
    pub extra_hosts: Vec<String>,
    /// The serving certificate's validity.
    pub cert_validity: Duration,
    /// How long the webhooks keep answering after SIGTERM: until the API server has stopped
    /// sending this replica requests (its endpoint is removed when the pod starts terminating).
    pub shutdown_delay: Duration,
}

/// The webhook server of this replica.
pub struct RunningWebhook {
    /// The Secret lookup; it answers from the operator's cache once that is filled.
    pub secrets: Arc<CachedSecrets>,
    /// The policy target lookup; it answers from the operator's cache once that is filled.
    pub targets: Arc<CachedTargets>,
    server: JoinHandle<()>,
}

impl RunningWebhook {
    /// Waits until the server has stopped (after shutdown and its delay).
    pub async fn stopped(self) {
        let _ = self.server.await;
    }
}

/// Starts serving: binds the port, then finds or makes the certificate in the background;
/// `/readyz` stays 503 until a certificate is served.
pub async fn start(
    settings: WebhookSettings,
    client: Client,
    health: Arc<Health>,
    metrics: WebhookMetrics,
    shutdown: Shutdown,
    owner: Option<OwnerReference>,
) -> Result<RunningWebhook, RunError> {
    let listener = health::bind(settings.addr).await?;
    let addr = listener.local_addr().unwrap_or(settings.addr);
    let resolver = CertResolver::new();
    health.expect_webhook(resolver.clone());
    let secrets = CachedSecrets::new();
    let targets = CachedTargets::new();
    let app = agentgateway_webhook::router(WebhookState {
        secrets: secrets.clone(),
        targets: targets.clone(),
        metrics,
    });
    let delay = settings.shutdown_delay;
    let stop = shutdown.wait();
    let server = tokio::spawn({
        let resolver = resolver.clone();
        async move {
            let stop = async move {
                stop.await;
                tracing::info!(
                    delay_s = delay.as_secs_f64(),
                    "webhook keeps answering until its endpoint is gone"
                );
                tokio::time::sleep(delay).await;
            };
            if let Err(error) = agentgateway_webhook::serve_tls(listener, app, resolver, stop).await
            {
                tracing::error!(error = %error, "the webhook server stopped");
            }
        }
    });
    tracing::info!(addr = %addr, "serving the admission webhooks");
    match settings.cert_dir.clone() {
        Some(dir) => {
            tracing::info!(dir = %dir.display(), "serving the webhook certificate mounted from a Secret");
            tokio::spawn(agentgateway_webhook::watch_cert_dir(dir, resolver));
        }
        None => {
            let names = certs::service_names(
                &settings.service,
                &settings.namespace,
                &settings.extra_hosts,
            );
            let cert_settings = CertSettings {
                namespace: settings.namespace.clone(),
                secret_name: settings.cert_secret.clone(),
                configuration_name: settings.configuration.clone(),
                names,
                lifetimes: Lifetimes::from_serving(settings.cert_validity),
            };
            let manager = CertManager::new(client, cert_settings, resolver, owner);
            tokio::spawn(manager.run(shutdown));
        }
    }
    Ok(RunningWebhook {
        secrets,
        targets,
        server,
    })
}
