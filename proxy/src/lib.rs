//! agentgateway's data plane: an OpenAI-compatible LLM gateway.
//!
//! The code follows a request's path: [`listener`] ([`accept`], [`conn`]) → [`request`] (path,
//! route, body) → [`attempts`] (providers, retries; [`upstream_request`], [`outcome`]) →
//! [`upstream`] → [`stream`] back to the client in a [`body::ProxyBody`] that finishes the
//! [`record`] (and its span, [`trace`]); [`context`] is what every request shares, [`state`]
//! holds the config snapshot the path reads, [`source`] produces it, [`limits`] bounds it all.

pub mod accept;
pub mod access_log;
pub mod admin;
pub mod attempts;
pub mod body;
pub mod budget;
pub mod cli;
pub mod client_api;
pub mod config_status;
pub mod conn;
pub mod context;
pub mod filters;
pub mod governance;
pub mod headers;
pub mod limits;
pub mod listener;
pub mod metrics;
pub mod openai;
pub mod outcome;
pub mod provider;
pub mod record;
pub mod request;
pub mod route;
pub mod source;
pub mod state;
pub mod stream;
pub mod tls;
pub mod trace;
pub mod translate;
pub mod translated_request;
pub mod upstream;
pub mod upstream_body;
pub mod upstream_request;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::admin::{Admin, Readiness};
use crate::config_status::ConfigStatus;
use crate::context::ProxyContext;
use crate::limits::Limits;
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
    /// Every bound on clients and providers.
    pub limits: Limits,
    /// Where access lines go.
    pub access_log: access_log::AccessLog,
    /// Redis for global rate limits and budgets; `None`: configs that need it are refused.
    pub redis: Option<governance::shared::RedisSettings>,
    /// Where traces go (`--otlp-endpoint`); `None`: no tracing.
    pub otlp: Option<trace::OtlpOptions>,
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
    /// The initial config could not be applied (a bound exceeded, a provider's TLS settings).
    #[error("failed to apply the initial config: {0}")]
    ApplyConfig(#[from] state::ApplyError),
    /// A listener could not bind.
    #[error(transparent)]
    Bind(#[from] listener::BindError),
    /// The Redis settings are unusable.
    #[error("failed to use the Redis settings: {0}")]
    Redis(#[from] governance::shared::RedisSettingsError),
    /// Tracing could not start (an invalid `--otlp-endpoint`).
    #[error(transparent)]
    Tracing(#[from] trace::TraceError),
    /// An admin endpoint could not bind.
    #[error("failed to listen on {addr} for the admin endpoint: {source}")]
    BindAdmin {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running proxy.
pub struct RunningProxy {
    /// What every request shares.
    pub context: Arc<ProxyContext>,
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

    /// Drains: readiness fails at once, listeners keep accepting for `delay` (responses ask
    /// HTTP/1 clients to close), then stop; in-flight requests and streams finish within `grace`.
    /// Then the spans of the drained requests are exported, within [`trace::FLUSH_TIMEOUT`].
    pub async fn shutdown(self, delay: Duration, grace: Duration) {
        self.readiness.set(false);
        let _ = self.stop_reloads.send(true);
        let _ = self.reloads.await;
        if let Some(listeners) = self.listeners.lock().await.take() {
            listeners.shutdown(delay, grace).await;
        }
        if let Some(tracing) = &self.context.tracing {
            tracing.shutdown(trace::FLUSH_TIMEOUT).await;
        }
    }
}

/// Starts the proxy: admin endpoints, the initial config (an invalid one is an error), listeners,
/// and the reload loop that applies later configs and keeps the last good one.
pub async fn start(
    options: ProxyOptions,
    mut source: impl ConfigSource + 'static,
) -> Result<RunningProxy, StartError> {
    let shared = options
        .redis
        .clone()
        .map(governance::shared::SharedCounters::new)
        .transpose()?;
    let state = Arc::new(ProxyState::new(
        options.limits.model_labels_per_provider,
        shared.is_some(),
    ));
    let metrics = Arc::new(Metrics::new(state.clone(), options.limits.consumer_labels));
    let readiness = Arc::new(Readiness::default());
    let config_status = Arc::new(ConfigStatus::default());
    let admin = Arc::new(Admin {
        readiness: readiness.clone(),
        metrics: metrics.clone(),
        config_status: config_status.clone(),
        limits: options.limits.clone(),
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
    tokio::spawn(admin::serve(ready_listener, "ready", admin.clone()));
    tokio::spawn(admin::serve(metrics_listener, "metrics", admin));

    let tracing = options
        .otlp
        .as_ref()
        .map(trace::Tracing::start)
        .transpose()?;
    let context = Arc::new(
        ProxyContext::new(
            state.clone(),
            metrics.clone(),
            options.limits.clone(),
            options.access_log.clone(),
            Arc::new(governance::governor::Governor::new(shared)),
        )
        .with_tracing(tracing),
    );
    let mut listeners = Listeners::new(context.clone(), options.listen);
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
        config_status.rejected(source.generation(), &failure);
        tracing::error!(source = %source_name, error = %failure, "initial config rejected; waiting for a valid one");
    };
    if let Some(error) = listeners.reconcile(&snapshot).await.into_iter().next() {
        return Err(error.into());
    }
    metrics.record_reload(true);
    config_status.applied(source.generation());
    readiness.set(true);
    tracing::info!(source = %source_name, generation = snapshot.generation, config_generation = ?source.generation(), backends = snapshot.backends.len(), "config loaded");

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
                let outcome = apply_event(event, &state, &metrics, &listeners, &source_name).await;
                match outcome {
                    Ok(()) => config_status.applied(source.generation()),
                    Err(reason) => config_status.rejected(source.generation(), &reason),
                }
            }
        })
    };
    Ok(RunningProxy {
        context,
        readiness,
        ready_addr,
        metrics_addr,
        listeners,
        stop_reloads,
        reloads,
    })
}

/// Applies one event of the source; `Err` holds why the config was refused.
async fn apply_event(
    event: SourceEvent,
    state: &ProxyState,
    metrics: &Metrics,
    listeners: &Mutex<Option<Listeners>>,
    source_name: &str,
) -> Result<(), String> {
    let compiled = match event {
        SourceEvent::Config(compiled) => compiled,
        SourceEvent::Rejected(message) => {
            metrics.record_reload(false);
            tracing::error!(source = %source_name, error = %message, "config rejected; the previous config keeps serving");
            return Err(message);
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
            Ok(())
        }
        Err(error) => {
            metrics.record_reload(false);
            tracing::error!(source = %source_name, error = %error, "config rejected; the previous config keeps serving");
            Err(error.to_string())
        }
    }
}
