//! Prometheus metrics of the operator, prefixed `agentgateway_operator_`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The prefix of every metric name.
pub const PREFIX: &str = "agentgateway_operator";

/// Labels naming a controller.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `backend`, `gateway_class`, `gateway` or `route_status`.
    pub controller: &'static str,
}

/// Labels of a failed reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The controller.
    pub controller: &'static str,
    /// [`crate::error::Error::label`].
    pub error: &'static str,
}

/// Labels of a write to the API server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    /// The kind written (`ConfigMap`, `Deployment`, `GatewayStatus`, ...).
    pub kind: &'static str,
}

fn duration_histogram() -> Histogram {
    // 1ms to ~16s: a reconcile reads caches and makes at most a handful of API calls.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every metric the operator exports.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    writes: Family<WriteLabels, Counter>,
    leader: Gauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            errors: Family::default(),
            durations: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            writes: Family::default(),
            leader: Gauge::default(),
        };
        registry.register(
            "reconcile",
            "Reconciles run, by controller",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by controller and error",
            metrics.errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, by controller",
            metrics.durations.clone(),
        );
        registry.register(
            "writes",
            "Objects and statuses written to the API server, by kind (unchanged ones are not written)",
            metrics.writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader-election Lease (or runs without election)",
            metrics.leader.clone(),
        );
        metrics
    }

    /// The operator's registry: its own metrics under [`PREFIX`], the webhooks' under their own
    /// complete names (`agentgateway_webhook_*`).
    pub fn with_webhook() -> (Registry, Self, agentgateway_webhook::WebhookMetrics) {
        let mut registry = Registry::default();
        let metrics = Self::new(registry.sub_registry_with_prefix(PREFIX));
        let webhook = agentgateway_webhook::WebhookMetrics::register(&mut registry);
        (registry, metrics, webhook)
    }

    /// A registry holding a fresh set of metrics, for tests and tools.
    pub fn registry() -> (Registry, Self) {
        let mut registry = Registry::with_prefix(PREFIX);
        let metrics = Self::new(&mut registry);
        (registry, metrics)
    }

    /// Records one sample in every family: the text format leaves empty families out, so this is
    /// how a tool lists every metric with its labels (`dashboard-gen`). A new family belongs here.
    pub fn touch_every_family(&self) {
        self.reconciled("gateway", Duration::from_millis(1));
        self.failed("gateway", "api");
        self.wrote("Deployment");
        self.set_leader(true);
    }

    /// Counts one reconcile of `controller` that took `elapsed`.
    pub fn reconciled(&self, controller: &'static str, elapsed: Duration) {
        let labels = ControllerLabels { controller };
        self.reconciles.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts one failed reconcile.
    pub fn failed(&self, controller: &'static str, error: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels { controller, error })
            .inc();
    }

    /// Counts one write of `kind`.
    pub fn wrote(&self, kind: &'static str) {
        self.writes.get_or_create(&WriteLabels { kind }).inc();
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}

/// The registry in the Prometheus text format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail; an empty body is the safe answer if it ever did.
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        text.clear();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_metric_names_are_exported() {
        let (registry, metrics) = Metrics::registry();
        metrics.reconciled("gateway", Duration::from_millis(3));
        metrics.failed("gateway", "ApplyFailed");
        metrics.wrote("ConfigMap");
        metrics.set_leader(true);
        let text = encode(&registry);
        for name in [
            "agentgateway_operator_reconcile_total{controller=\"gateway\"} 1",
            "agentgateway_operator_reconcile_errors_total{controller=\"gateway\",error=\"ApplyFailed\"} 1",
            "agentgateway_operator_reconcile_duration_seconds_count{controller=\"gateway\"} 1",
            "agentgateway_operator_writes_total{kind=\"ConfigMap\"} 1",
            "agentgateway_operator_leader 1",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
