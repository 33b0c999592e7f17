//! What happened to one request, written once when it ends: the JSON access log line, the
//! request metrics and the request's span. Never a key or a prompt. The record travels in a
//! [`RecordGuard`] owned by the request and then by its response body, so it is finished in
//! exactly one place, when the body has been sent or dropped, and a request the client abandons is
//! still logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context::ProxyContext;
use crate::governance::governor::{Admitted, Spent};
use crate::governance::headers::RateHeaders;
use crate::metrics::{CostLabels, Label, ModelLabels, RequestLabels, TokenLabels};
use crate::openai::operation::Operation;
use crate::openai::usage::Usage;
use crate::provider::ProviderRuntime;

/// The status recorded for a request whose client went away before its answer (nginx's 499).
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

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
    /// The consumer the client's API key identified (`auth.apiKeys`); never the key.
    pub consumer: Option<Arc<str>>,
    /// The provider that served (or last failed).
    pub provider: Option<Arc<ProviderRuntime>>,
    /// The client's `model` (validated: bounded, no control characters).
    pub request_model: Option<Arc<str>>,
    /// The model the provider reported in its response (bounded when read).
    pub reported_model: Option<Arc<str>>,
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
    /// The `x-ratelimit-*` values of the response.
    pub rate_headers: Option<Box<RateHeaders>>,
    /// The rate-limit reservations and budget the request's end settles.
    pub admitted: Option<Box<Admitted>>,
    /// The request's span (with `--otlp-endpoint`), ended by [`Self::finish`].
    pub trace: Option<crate::trace::RequestTrace>,
}

impl RequestRecord {
    /// A record for a request that just arrived.
    pub fn new(listener: Arc<str>, parts: &http::request::Parts, operation: Operation) -> Self {
        Self {
            start: Instant::now(),
            listener,
            method: parts.method.clone(),
            path: crate::access_log::client_text(parts.uri.path()).into_owned(),
            operation,
            route: None,
            backend: None,
            consumer: None,
            provider: None,
            request_model: None,
            reported_model: None,
            status: 0,
            usage: None,
            attempts: 0,
            stream: false,
            ttft: None,
            error: None,
            rate_headers: None,
            admitted: None,
            trace: None,
        }
    }

    /// What the request cost at its provider's prices, in micro-dollars: `None` without usage or
    /// without prices.
    pub fn cost_micro_usd(&self) -> Option<u64> {
        let cost = self.provider.as_ref()?.config.cost?;
        let usage = self.usage?;
        Some(cost.micro_usd(usage.prompt, usage.cached, usage.completion))
    }

    /// The model the request was served with: the provider's configured model, else the one the
    /// provider reported, else the client's.
    pub fn model(&self) -> Option<&str> {
        self.provider
            .as_ref()
            .and_then(|p| p.model.as_deref())
            .or(self.reported_model.as_deref())
            .or(self.request_model.as_deref())
    }

    /// The provider's name.
    pub fn provider_name(&self) -> Option<&Arc<str>> {
        self.provider.as_ref().map(|p| &p.name)
    }

    /// Logs the access line, records metrics and ends the span.
    fn finish(&mut self, context: &ProxyContext) {
        if let Some(trace) = self.trace.take() {
            trace.finish(self);
        }
        let metrics = &context.metrics;
        let duration = self.start.elapsed();
        let label = |v: Option<&Arc<str>>| v.cloned().map(Label).unwrap_or_default();
        let (route, backend, provider) = (
            label(self.route.as_ref()),
            label(self.backend.as_ref()),
            label(self.provider_name()),
        );
        metrics
            .requests
            .get_or_create(&RequestLabels {
                route: route.clone(),
                backend: backend.clone(),
                provider: provider.clone(),
                operation: self.operation.as_str(),
                status: self.status,
            })
            .inc();
        if let (Some(_), Some(runtime)) = (&self.backend, &self.provider) {
            let labels = ModelLabels {
                route,
                backend,
                provider,
                model: runtime.model_label(self.model()),
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
                let consumer = metrics.consumer_label(self.consumer.as_ref());
                if let Some(micro_usd) = self.cost_micro_usd() {
                    let cost = CostLabels {
                        route: route.clone(),
                        backend: backend.clone(),
                        provider: provider.clone(),
                        model: model.clone(),
                        consumer: consumer.clone(),
                    };
                    metrics
                        .cost
                        .get_or_create(&cost)
                        .inc_by(micro_usd as f64 / 1e6);
                }
                let input = TokenLabels {
                    gen_ai_token_type: "input",
                    route,
                    backend,
                    provider,
                    model,
                    consumer,
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
        context
            .access_log
            .write(self, duration.as_secs_f64() * 1000.0);
    }
}

/// Owns a request's record until the request is over; finishing it is the guard's job alone.
pub struct RecordGuard {
    // Boxed: the guard travels inside the response body, which hyper moves by value.
    record: Box<RequestRecord>,
    context: Arc<ProxyContext>,
    /// The response has been sent whole: dropping the guard now is a normal end.
    complete: bool,
}

impl RecordGuard {
    /// Guards `record`.
    pub fn new(record: RequestRecord, context: Arc<ProxyContext>) -> Self {
        Self {
            record: Box::new(record),
            context,
            complete: false,
        }
    }

    /// The record, to fill in.
    pub fn record(&mut self) -> &mut RequestRecord {
        &mut self.record
    }

    /// Marks the response as sent whole; the record is written when the guard drops.
    pub fn complete(&mut self) {
        self.complete = true;
    }
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        if !self.complete {
            if self.record.error.is_none() || self.record.status == 0 {
                self.record.error = Some("client_disconnected");
            }
            if self.record.status == 0 {
                self.record.status = CLIENT_CLOSED_REQUEST;
            }
        }
        self.record.finish(&self.context);
        if let Some(admitted) = self.record.admitted.take() {
            let record = &self.record;
            let usage = record.usage;
            let spent = Spent {
                tokens: usage.map(|u| u.prompt.saturating_add(u.completion)),
                // Refused or failed before an answer, the request used nothing; a client that
                // went away may have left a provider generating, so its reservation stands.
                failed: usage.is_none()
                    && record.status >= 400
                    && record.status != CLIENT_CLOSED_REQUEST,
                micro_usd: record.cost_micro_usd().unwrap_or(0),
            };
            self.context.governor.settle(*admitted, &spent);
        }
    }
}
