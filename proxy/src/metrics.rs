//! Prometheus metrics, named after the OpenTelemetry GenAI conventions with the `agentgateway_`
//! prefix. Provider health is read from the live snapshot at scrape time, so it is never stale.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::ProxyState;

/// A label value shared with the config (route, backend and provider names), so building a label
/// set on the request path costs reference counts, not string copies.
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq)]
pub struct Label(pub Arc<str>);

impl EncodeLabelValue for Label {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        // prometheus-client writes label values verbatim; the text format (and OpenMetrics)
        // needs `\`, `"` and line feeds escaped, or a value could end the series and forge others.
        write_escaped(encoder, &self.0)
    }
}

/// Writes `value` escaped as a label value of the Prometheus text format.
fn write_escaped(out: &mut impl std::fmt::Write, value: &str) -> std::fmt::Result {
    let mut rest = value;
    while let Some(at) = rest.find(['\\', '"', '\n']) {
        out.write_str(&rest[..at])?;
        out.write_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        })?;
        rest = &rest[at + 1..];
    }
    out.write_str(rest)
}

impl std::borrow::Borrow<str> for Label {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Label {
    fn from(value: &str) -> Self {
        Self(value.into())
    }
}

/// Labels of `requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: Label,
    pub backend: Label,
    pub provider: Label,
    /// The API operation the client called (`chat_completions`, `messages`, `responses`, ...).
    pub operation: &'static str,
    pub status: u16,
}

/// Labels of the per-model histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub route: Label,
    pub backend: Label,
    pub provider: Label,
    pub model: Label,
}

/// Labels of token usage.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub gen_ai_token_type: &'static str,
    pub route: Label,
    pub backend: Label,
    pub provider: Label,
    pub model: Label,
    /// The consumer (`auth.apiKeys`), empty without one; bounded like the model label.
    pub consumer: Label,
}

/// Labels of the cost counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    pub route: Label,
    pub backend: Label,
    pub provider: Label,
    pub model: Label,
    pub consumer: Label,
}

/// Labels of rate-limit decisions.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// `local`, `global` or `budget`.
    pub scope: &'static str,
    /// `admitted`, `rejected`, `failed_open` or `failed_closed`.
    pub result: &'static str,
}

/// The consumer label of requests past the distinct-consumer bound.
pub const OTHER_CONSUMER: &str = "other";

/// Labels naming a provider.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub backend: Label,
    pub provider: Label,
}

/// Labels of requests refused for overload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OverloadLabels {
    /// `memory` (the request buffer budget) or `connections`.
    pub reason: &'static str,
}

/// Labels of failed TLS handshakes.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HandshakeFailureLabels {
    /// The config listener (`namespace/gateway/listener`): from the config, never the client.
    pub listener: Label,
    /// `timeout` (not finished within `--tls-handshake-timeout`) or `error` (a protocol error,
    /// no shared cipher or version, an unknown SNI with no default certificate, a closed socket).
    pub reason: &'static str,
}

/// Labels of config reloads.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: &'static str,
}

/// Every metric of the proxy.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, backend, provider, operation and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Tokens per request, by type (input/output).
    pub token_usage: Family<TokenLabels, Histogram>,
    /// Request duration in seconds.
    pub request_duration: Family<ModelLabels, Histogram>,
    /// Time to the first streamed content chunk, in seconds.
    pub time_to_first_token: Family<ModelLabels, Histogram>,
    /// Evictions by provider.
    pub evictions: Family<ProviderLabels, Counter>,
    /// Config reloads by result.
    pub config_reloads: Family<ReloadLabels, Counter>,
    /// Requests and connections refused because a budget was exhausted.
    pub overload_rejections: Family<OverloadLabels, Counter>,
    /// 1 when the last config reload succeeded.
    pub config_last_reload_success: Gauge,
    /// TLS handshakes that did not complete, by listener and reason.
    pub tls_handshake_failures: Family<HandshakeFailureLabels, Counter>,
    /// What requests cost, in US dollars, at their providers' prices.
    pub cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    /// Rate-limit and budget decisions.
    pub rate_limit_decisions: Family<DecisionLabels, Counter>,
    /// The consumer label values seen so far, at most `consumer_label_cap`.
    consumer_labels: Mutex<HashSet<Label>>,
    consumer_label_cap: usize,
}

impl Metrics {
    /// Creates and registers every metric; `state` feeds `provider_healthy`; the consumer label
    /// takes at most `consumer_label_cap` distinct values (then `other`).
    pub fn new(state: Arc<ProxyState>, consumer_label_cap: usize) -> Self {
        let mut registry = Registry::with_prefix("agentgateway");
        let token_usage = Family::<TokenLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
            ])
        });
        let request_duration = Family::<ModelLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
                81.92,
            ])
        });
        let time_to_first_token = Family::<ModelLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0,
            ])
        });
        let metrics = Self {
            requests: Family::default(),
            token_usage,
            request_duration,
            time_to_first_token,
            evictions: Family::default(),
            config_reloads: Family::default(),
            overload_rejections: Family::default(),
            config_last_reload_success: Gauge::default(),
            tls_handshake_failures: Family::default(),
            cost: Family::default(),
            rate_limit_decisions: Family::default(),
            consumer_labels: Mutex::new(HashSet::new()),
            consumer_label_cap,
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests served, by route, backend, provider and HTTP status",
            metrics.requests.clone(),
        );
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens used per request, by gen_ai_token_type (input or output)",
            metrics.token_usage.clone(),
        );
        registry.register(
            "gen_ai_server_request_duration",
            "Duration of LLM requests in seconds, streams included",
            metrics.request_duration.clone(),
        );
        registry.register(
            "gen_ai_server_time_to_first_token",
            "Seconds until the first streamed content chunk",
            metrics.time_to_first_token.clone(),
        );
        registry.register(
            "provider_evictions",
            "Provider evictions by passive health checking",
            metrics.evictions.clone(),
        );
        registry.register(
            "config_reloads",
            "Config reloads by result (success or failure)",
            metrics.config_reloads.clone(),
        );
        registry.register(
            "overload_rejections",
            "Requests answered 503 overloaded, by exhausted budget (memory or connections)",
            metrics.overload_rejections.clone(),
        );
        registry.register(
            "config_last_reload_success",
            "1 when the last config reload succeeded, 0 when it was rejected and the previous config kept",
            metrics.config_last_reload_success.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes of HTTPS listeners that did not complete, by listener and reason (timeout or error)",
            metrics.tls_handshake_failures.clone(),
        );
        registry.register(
            "gen_ai_client_cost_usd",
            "What requests cost in US dollars at their providers' prices (provider cost), by consumer",
            metrics.cost.clone(),
        );
        registry.register(
            "rate_limit_decisions",
            "Rate-limit and budget decisions by scope (local, global, budget) and result (admitted, rejected, failed_open, failed_closed)",
            metrics.rate_limit_decisions.clone(),
        );
        registry.register_collector(Box::new(ProviderHealthCollector(state)));
        Self {
            registry,
            ..metrics
        }
    }

    /// Records one sample in every family: the text format leaves empty families out, so this is
    /// how a tool lists every metric with its labels (`dashboard-gen` builds the chart's Grafana
    /// dashboard from it). A new family belongs here too, or no dashboard can query it.
    pub fn touch_every_family(&self) {
        let (route, backend, provider, model) = (
            Label::from("route"),
            Label::from("backend"),
            Label::from("provider"),
            Label::from("model"),
        );
        let per_model = ModelLabels {
            route: route.clone(),
            backend: backend.clone(),
            provider: provider.clone(),
            model: model.clone(),
        };
        self.requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                backend: backend.clone(),
                provider: provider.clone(),
                operation: "chat_completions",
                status: 200,
            })
            .inc();
        self.token_usage
            .get_or_create(&TokenLabels {
                gen_ai_token_type: "input",
                route: route.clone(),
                backend: backend.clone(),
                provider: provider.clone(),
                model: model.clone(),
                consumer: Label::default(),
            })
            .observe(1.0);
        self.request_duration.get_or_create(&per_model).observe(0.1);
        self.time_to_first_token
            .get_or_create(&per_model)
            .observe(0.1);
        self.evictions
            .get_or_create(&ProviderLabels {
                backend: backend.clone(),
                provider: provider.clone(),
            })
            .inc();
        self.record_reload(true);
        self.record_overload("memory");
        self.cost
            .get_or_create(&CostLabels {
                route,
                backend,
                provider,
                model,
                consumer: Label::default(),
            })
            .inc_by(0.0);
        self.record_rate_limit_decision("local", "admitted");
        self.record_handshake_failure(&Arc::from("listener"), "timeout");
    }

    /// Counts a config reload.
    pub fn record_reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.config_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
        self.config_last_reload_success.set(i64::from(success));
    }

    /// Counts a TLS handshake that did not complete on `listener`.
    pub fn record_handshake_failure(&self, listener: &Arc<str>, reason: &'static str) {
        let labels = HandshakeFailureLabels {
            listener: Label(listener.clone()),
            reason,
        };
        self.tls_handshake_failures.get_or_create(&labels).inc();
    }

    /// Counts a refusal for overload.
    pub fn record_overload(&self, reason: &'static str) {
        self.overload_rejections
            .get_or_create(&OverloadLabels { reason })
            .inc();
    }

    /// Counts a rate-limit or budget decision.
    pub fn record_rate_limit_decision(&self, scope: &'static str, result: &'static str) {
        self.rate_limit_decisions
            .get_or_create(&DecisionLabels { scope, result })
            .inc();
    }

    /// The `consumer` label of a request: the consumer while fewer than the cap have been seen,
    /// else `other`; empty without a consumer.
    pub fn consumer_label(&self, consumer: Option<&Arc<str>>) -> Label {
        let Some(consumer) = consumer else {
            return Label::default();
        };
        let mut seen = self
            .consumer_labels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(known) = seen.get(&**consumer) {
            return known.clone();
        }
        if seen.len() < self.consumer_label_cap {
            let label = Label(consumer.clone());
            seen.insert(label.clone());
            return label;
        }
        Label::from(OTHER_CONSUMER)
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `provider_healthy`: 1 for each provider in rotation, 0 for each evicted one; and
/// `provider_credential_missing`: 1 for each provider left out because its key is missing.
#[derive(Debug)]
struct ProviderHealthCollector(Arc<ProxyState>);

impl std::fmt::Debug for ProxyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProxyState")
    }
}

impl Collector for ProviderHealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.0.snapshot();
        let now = Instant::now();
        let gauge = ConstGauge::new(0i64);
        let mut family = encoder.encode_descriptor(
            "provider_healthy",
            "1 when the provider is in rotation, 0 while it is evicted",
            None,
            gauge.metric_type(),
        )?;
        let mut providers: Vec<_> = snapshot.providers().collect();
        providers.sort_by(|a, b| (&a.backend, &a.name).cmp(&(&b.backend, &b.name)));
        for provider in providers {
            let labels = ProviderLabels {
                backend: Label(provider.backend.clone()),
                provider: Label(provider.name.clone()),
            };
            let value = ConstGauge::new(i64::from(provider.is_healthy(now)));
            value.encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "provider_credential_missing",
            "1 for each provider out of rotation because the credentials lack its key",
            None,
            gauge.metric_type(),
        )?;
        for (backend, provider) in &snapshot.missing_credentials {
            let labels = ProviderLabels {
                backend: Label(backend.clone()),
                provider: Label(provider.as_str().into()),
            };
            ConstGauge::new(1i64).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped_per_the_text_format() {
        let mut out = String::new();
        write_escaped(&mut out, "x\"} 1\nforged{a=\"b\\").unwrap();
        assert_eq!(out, "x\\\"} 1\\nforged{a=\\\"b\\\\");
        let mut plain = String::new();
        write_escaped(&mut plain, "default/one").unwrap();
        assert_eq!(plain, "default/one");
    }
}
