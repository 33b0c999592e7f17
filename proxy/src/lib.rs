//! agentgateway's data plane: an OpenAI-compatible LLM gateway.
//!
//! The code follows a request's path: [`listener`] → [`route`] → [`forward`] (backend, provider
//! attempts) → [`upstream`] → [`stream`] back to the client; [`state`] holds the config snapshot
//! the path reads, [`source`] produces it.

pub mod access_log;
pub mod admin;
pub mod body;
pub mod cli;
pub mod forward;
pub mod listener;
pub mod metrics;
pub mod openai;
pub mod provider;
pub mod record;
pub mod route;
pub mod source;
pub mod state;
pub mod stream;
pub mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::admin::{Admin, Readiness};
use crate::forward::Gateway;
use crate::listener::Listeners;
use crate::metrics::Metrics;
use crate::source::{ConfigSource, SourceEvent};
use crate::state::ProxyState;

/// How the proxy runs.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// Address of the default listener; its IP is also used for Gateway listener ports.
    pub listen: SocketAddr,
    /// Readiness endpoint address.
    pub ready_addr: SocketAddr,
    /// Metrics endpoint address.
    pub metrics_addr: SocketAddr,
    /// Largest request body (413 above).
    pub body_limit: usize,
    /// Where access lines go.
    pub access_log: access_log::AccessLog,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The initial config is invalid.
    #[error("failed to load the initial config from {source_name}: {message}")]
    InvalidConfig {
        source_name: String,
        message: String,
    },
    /// The initial config could not be applied (a provider's TLS settings, say).
    #[error("failed to apply the initial config: {0}")]
    ApplyConfig(#[from] provider::ProviderBuildError),
    /// A listener could not bind.
    #[error(transparent)]
    Bind(#[from] listener::BindError),
    /// An admin endpoint could not bind.
    #[error("failed to listen on {addr} for the admin endpoint: {source}")]
    BindAdmin {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running proxy.
pub struct RunningProxy {
    /// Shared request-path state.
    pub gateway: Arc<Gateway>,
    /// Readiness flag.
    pub readiness: Arc<Readiness>,
    /// Where readiness is served.
    pub ready_addr: SocketAddr,
    /// Where metrics are served.
    pub metrics_addr: SocketAddr,
    listeners: Arc<Mutex<Option<Listeners>>>,
    stop_reloads: watch::Sender<bool>,
    reloads: JoinHandle<()>,
}

impl RunningProxy {
    /// The addresses served, by listener name (`default` for the `--listen` one).
    pub async fn addresses(&self) -> HashMap<String, SocketAddr> {
        self.listeners
            .lock()
            .await
            .as_ref()
            .map(Listeners::addresses)
            .unwrap_or_default()
    }

    /// Stops accepting, lets in-flight requests and streams finish within `grace`.
    pub async fn shutdown(self, grace: Duration) {
        self.readiness.set(false);
        let _ = self.stop_reloads.send(true);
        let _ = self.reloads.await;
        if let Some(listeners) = self.listeners.lock().await.take() {
            listeners.shutdown(grace).await;
        }
    }
}

/// Starts the proxy: admin endpoints, the initial config (an invalid one is an error), listeners,
/// and the reload loop that applies later configs and keeps the last good one.
pub async fn start(
    options: ProxyOptions,
    mut source: impl ConfigSource + 'static,
) -> Result<RunningProxy, StartError> {
    let state = Arc::new(ProxyState::default());
    let metrics = Arc::new(Metrics::new(state.clone()));
    let readiness = Arc::new(Readiness::default());
    let admin = Arc::new(Admin {
        readiness: readiness.clone(),
        metrics: metrics.clone(),
    });
    let ready_listener =
        admin::bind(options.ready_addr)
            .await
            .map_err(|source| StartError::BindAdmin {
                addr: options.ready_addr,
                source,
            })?;
    let metrics_listener =
        admin::bind(options.metrics_addr)
            .await
            .map_err(|source| StartError::BindAdmin {
                addr: options.metrics_addr,
                source,
            })?;
    let ready_addr = ready_listener.local_addr().unwrap_or(options.ready_addr);
    let metrics_addr = metrics_listener
        .local_addr()
        .unwrap_or(options.metrics_addr);
    tokio::spawn(admin::serve(ready_listener, admin.clone()));
    tokio::spawn(admin::serve(metrics_listener, admin));

    let gateway = Arc::new(Gateway {
        state: state.clone(),
        metrics: metrics.clone(),
        body_limit: options.body_limit,
        access_log: options.access_log.clone(),
    });
    let mut listeners = Listeners::new(gateway.clone(), options.listen);
    let source_name = source.describe();
    let snapshot = loop {
        let failure = match source.next().await {
            SourceEvent::Config(compiled) => match state.apply(&compiled) {
                Ok(snapshot) => break snapshot,
                Err(error) if source.initial_config_is_fatal() => return Err(error.into()),
                Err(error) => error.to_string(),
            },
            SourceEvent::Rejected(message) if source.initial_config_is_fatal() => {
                metrics.record_reload(false);
                return Err(StartError::InvalidConfig {
                    source_name,
                    message,
                });
            }
            SourceEvent::Rejected(message) => message,
        };
        metrics.record_reload(false);
        tracing::error!(source = %source_name, error = %failure, "initial config rejected; waiting for a valid one");
    };
    if let Some(error) = listeners.reconcile(&snapshot).await.into_iter().next() {
        return Err(error.into());
    }
    metrics.record_reload(true);
    readiness.set(true);
    tracing::info!(source = %source_name, generation = snapshot.generation, backends = snapshot.backends.len(), "config loaded");

    let listeners = Arc::new(Mutex::new(Some(listeners)));
    let (stop_reloads, mut stopped) = watch::channel(false);
    let reloads = {
        let (listeners, metrics) = (listeners.clone(), metrics.clone());
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    event = source.next() => event,
                    _ = stopped.changed() => return,
                };
                apply_event(event, &state, &metrics, &listeners, &source_name).await;
            }
        })
    };
    Ok(RunningProxy {
        gateway,
        readiness,
        ready_addr,
        metrics_addr,
        listeners,
        stop_reloads,
        reloads,
    })
}

async fn apply_event(
    event: SourceEvent,
    state: &ProxyState,
    metrics: &Metrics,
    listeners: &Mutex<Option<Listeners>>,
    source_name: &str,
) {
    let compiled = match event {
        SourceEvent::Config(compiled) => compiled,
        SourceEvent::Rejected(message) => {
            metrics.record_reload(false);
            tracing::error!(source = %source_name, error = %message, "config rejected; the previous config keeps serving");
            return;
        }
    };
    match state.apply(&compiled) {
        Ok(snapshot) => {
            if let Some(listeners) = listeners.lock().await.as_mut() {
                for error in listeners.reconcile(&snapshot).await {
                    tracing::error!(error = %error, "listener not started");
                }
            }
            metrics.record_reload(true);
            tracing::info!(source = %source_name, generation = snapshot.generation, backends = snapshot.backends.len(), "config reloaded");
        }
        Err(error) => {
            metrics.record_reload(false);
            tracing::error!(source = %source_name, error = %error, "config rejected; the previous config keeps serving");
        }
    }
}
