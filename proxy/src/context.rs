//! What every request of every listener shares: the live config, metrics, limits, the memory
//! budget for request bodies, the access log, the tracer, and whether the proxy is draining.

use std::sync::Arc;

use tokio::sync::watch;

use crate::access_log::AccessLog;
use crate::budget::BufferBudget;
use crate::governance::governor::Governor;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::state::ProxyState;
use crate::trace::Tracing;

/// The data plane's shared context.
pub struct ProxyContext {
    /// The live config.
    pub state: Arc<ProxyState>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Every bound on clients and providers.
    pub limits: Limits,
    /// Request bytes held in memory, all requests together.
    pub budget: BufferBudget,
    /// Where access lines go.
    pub access_log: AccessLog,
    /// The tracer, with `--otlp-endpoint`; without it requests do no tracing work at all.
    pub tracing: Option<Tracing>,
    /// Set on SIGTERM: responses ask HTTP/1 clients to close their connection.
    pub draining: watch::Sender<bool>,
    /// Rate limits and budgets.
    pub governor: Arc<Governor>,
}

impl ProxyContext {
    /// A context over `state` and `metrics`.
    pub fn new(
        state: Arc<ProxyState>,
        metrics: Arc<Metrics>,
        limits: Limits,
        access_log: AccessLog,
        governor: Arc<Governor>,
    ) -> Self {
        Self {
            budget: BufferBudget::new(limits.buffer_budget),
            state,
            metrics,
            limits,
            access_log,
            tracing: None,
            draining: watch::channel(false).0,
            governor,
        }
    }

    /// The context with `tracing` as its tracer.
    pub fn with_tracing(mut self, tracing: Option<Tracing>) -> Self {
        self.tracing = tracing;
        self
    }
}
