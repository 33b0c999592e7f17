//! What happened to one request, written once when it ends: the JSON access log line and the
//! request metrics. Never a key or a prompt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::access_log::AccessLog;
use crate::metrics::{Label, Metrics, ModelLabels, RequestLabels, TokenLabels};
use crate::openai::operation::Operation;
use crate::openai::usage::Usage;

/// One request's outcome.
pub struct RequestRecord {
    /// When the request arrived.
    pub start: Instant,
    /// The listener that took it.
    pub listener: Arc<str>,
    /// HTTP method.
    pub method: http::Method,
    /// Request path, without the query.
    pub path: String,
    /// The OpenAI operation.
    pub operation: Operation,
    /// The matched route.
    pub route: Option<Arc<str>>,
    /// The chosen backend.
    pub backend: Option<Arc<str>>,
    /// The provider that served (or last failed).
    pub provider: Option<Arc<str>>,
    /// The model sent upstream, or the one the provider reported.
    pub model: Option<Arc<str>>,
    /// Status sent to the client.
    pub status: u16,
    /// Token usage.
    pub usage: Option<Usage>,
    /// Attempts made on providers.
    pub attempts: u32,
    /// A streamed response.
    pub stream: bool,
    /// Time to the first content chunk of a stream.
    pub ttft: Option<Duration>,
    /// What went wrong, as a stable label.
    pub error: Option<&'static str>,
}

impl RequestRecord {
    /// A record for a request that just arrived.
    pub fn new(listener: Arc<str>, parts: &http::request::Parts, operation: Operation) -> Self {
        Self {
            start: Instant::now(),
            listener,
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
            operation,
            route: None,
            backend: None,
            provider: None,
            model: None,
            status: 0,
            usage: None,
            attempts: 0,
            stream: false,
            ttft: None,
            error: None,
        }
    }

    /// Logs the access line and records metrics.
    pub fn finish(&self, metrics: &Metrics, access_log: &AccessLog) {
        let duration = self.start.elapsed();
        let label = |v: &Option<Arc<str>>| v.clone().map(Label).unwrap_or_default();
        let (route, backend, provider) = (
            label(&self.route),
            label(&self.backend),
            label(&self.provider),
        );
        let model = label(&self.model);
        metrics
            .requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                backend: backend.clone(),
                provider: provider.clone(),
                status: self.status,
            })
            .inc();
        if self.backend.is_some() && self.provider.is_some() {
            let labels = ModelLabels {
                route,
                backend,
                provider,
                model,
            };
            metrics
                .request_duration
                .get_or_create(&labels)
                .observe(duration.as_secs_f64());
            if let Some(ttft) = self.ttft {
                metrics
                    .time_to_first_token
                    .get_or_create(&labels)
                    .observe(ttft.as_secs_f64());
            }
            if let Some(usage) = self.usage {
                let ModelLabels {
                    route,
                    backend,
                    provider,
                    model,
                } = labels;
                let input = TokenLabels {
                    gen_ai_token_type: "input",
                    route,
                    backend,
                    provider,
                    model,
                };
                metrics
                    .token_usage
                    .get_or_create(&input)
                    .observe(usage.prompt as f64);
                let output = TokenLabels {
                    gen_ai_token_type: "output",
                    ..input
                };
                metrics
                    .token_usage
                    .get_or_create(&output)
                    .observe(usage.completion as f64);
            }
        }
        access_log.write(self, duration.as_secs_f64() * 1000.0);
    }
}
