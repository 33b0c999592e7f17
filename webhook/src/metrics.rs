//! Prometheus metrics of the webhooks: how many reviews each one answered, with which outcome, and
//! how long answering took. The API server calls a webhook synchronously on every write, so its
//! latency is part of every `kubectl apply`; the buckets are fine-grained below a millisecond.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 11] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];

/// Which webhook answered.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum Webhook {
    Validate,
    Mutate,
}

impl Webhook {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Mutate => "mutate",
        }
    }
}

/// How a review ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Admitted unchanged.
    Allowed,
    /// Refused: an invalid spec or a kind this webhook does not admit.
    Denied,
    /// Admitted with a defaulting patch.
    Patched,
    /// The AdmissionReview itself could not be read.
    Malformed,
}

impl Outcome {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Patched => "patched",
            Self::Malformed => "malformed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    webhook: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    webhook: &'static str,
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The webhooks' metrics; cheap to clone (the families are shared).
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<WebhookLabels, Histogram, fn() -> Histogram>,
}

impl WebhookMetrics {
    /// Creates the metrics and registers `agentgateway_webhook_requests_total` (labels `webhook`,
    /// `result`) and `agentgateway_webhook_request_duration_seconds` (label `webhook`). The names
    /// are complete: pass a registry without a prefix, or its prefix is prepended.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
        };
        registry.register(
            "agentgateway_webhook_requests",
            "AdmissionReviews answered, by webhook (validate, mutate) and result (allowed, denied, patched, malformed)",
            metrics.requests.clone(),
        );
        registry.register(
            "agentgateway_webhook_request_duration_seconds",
            "Time spent handling one AdmissionReview, by webhook",
            metrics.durations.clone(),
        );
        metrics
    }

    /// Records one sample in every family: the text format leaves empty families out, so this is
    /// how a tool lists every metric with its labels (`dashboard-gen`). A new family belongs here.
    pub fn touch_every_family(&self) {
        self.record(
            Webhook::Validate,
            Outcome::Allowed,
            Duration::from_millis(1),
        );
    }

    /// Counts one answered review and its handling time.
    pub(crate) fn record(&self, webhook: Webhook, outcome: Outcome, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                webhook: webhook.label(),
                result: outcome.label(),
            })
            .inc();
        self.durations
            .get_or_create(&WebhookLabels {
                webhook: webhook.label(),
            })
            .observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_reviews_appear_under_the_documented_names() {
        let mut registry = Registry::default();
        let metrics = WebhookMetrics::register(&mut registry);
        metrics.record(
            Webhook::Validate,
            Outcome::Denied,
            Duration::from_micros(300),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                "agentgateway_webhook_requests_total{webhook=\"validate\",result=\"denied\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("agentgateway_webhook_request_duration_seconds_bucket{le=\"0.0005\",webhook=\"validate\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("agentgateway_webhook_request_duration_seconds_bucket{le=\"0.00025\",webhook=\"validate\"} 0"),
            "{text}"
        );
    }
}
