//! OpenTelemetry traces (`--otlp-endpoint`): one server span per request, named and attributed
//! after the OpenTelemetry GenAI semantic conventions, exported over OTLP/HTTP (protobuf) by the
//! SDK's batch span processor. All OpenTelemetry code lives here; the request path only holds a
//! [`RequestTrace`] in its record, which ends the span when the record is finished.
//!
//! The W3C Trace Context of the client (`traceparent`, `tracestate`) is continued: the span is
//! the child of the client's span, and the request sent to a provider names the proxy's span.
//!
//! Export never holds a request up: a finished span is handed to the batch processor's bounded
//! queue (dropped when it is full); the processor's own thread sends batches through a
//! hyper + rustls client whose connections run on the proxy's tokio runtime, each exchange bounded
//! by [`EXPORT_TIMEOUT`].

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use agentgateway_crds::proxy_config::ProviderKind;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider, Span,
};
use tokio::runtime::Handle;

use crate::access_log::client_text;
use crate::openai::operation::Operation;
use crate::record::RequestRecord;

/// How long one export exchange with the collector may take (connect, send, answer); the
/// exporter's retries share the same deadline. A collector slower than this loses the batch, not
/// the proxy's time: the batch thread is the only one that waits.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for the last spans to be exported. Bounded so a dead collector cannot
/// hold a terminating pod past its grace period.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Spans waiting for export, all requests together. Past it finished spans are dropped (the SDK
/// logs the first drop and the count at shutdown), so memory stays bounded when the collector is
/// slow or down. Overridden by `OTEL_BSP_MAX_QUEUE_SIZE`.
const MAX_QUEUED_SPANS: usize = 2048;

/// The most of a collector's answer read: it is a small protobuf message (partial success).
const MAX_ANSWER_BYTES: usize = 64 << 10;

/// The longest `traceparent` read. Version 00 is 55 characters; later versions may append fields,
/// but a value this long is not one anybody sends: it is ignored unparsed.
const MAX_TRACEPARENT: usize = 256;

/// The longest `tracestate` read. W3C asks vendors to propagate at least 512 characters; a longer
/// value is dropped whole (never cut, which could split an entry) and the span starts with none.
const MAX_TRACESTATE: usize = 4096;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// How traces are exported.
#[derive(Clone, Debug)]
pub struct OtlpOptions {
    /// The collector's OTLP/HTTP base URL (`http://otel-collector:4318`); spans go to
    /// `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// The `service.name` resource attribute.
    pub service_name: String,
    /// How often the batch processor exports; `None` is the SDK's default (5 s, or
    /// `OTEL_BSP_SCHEDULE_DELAY` in milliseconds). Tests set it short.
    pub schedule_delay: Option<Duration>,
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The endpoint is not an absolute `http://` or `https://` URL.
    #[error("failed to use {endpoint:?} as the OTLP endpoint: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    /// rustls refused the client configuration.
    #[error("failed to configure TLS for the OTLP endpoint: {0}")]
    ConfigureTls(String),
    /// The OTLP exporter refused its configuration.
    #[error("failed to build the OTLP exporter: {0}")]
    BuildExporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// Started outside a tokio runtime: the exporter's connections need one.
    #[error("failed to start tracing: not inside a tokio runtime")]
    NoRuntime,
}

/// The proxy's tracer: the SDK provider (batch processor, exporter) and the propagator.
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

impl Tracing {
    /// Starts exporting to `options.endpoint`. Must be called inside the proxy's tokio runtime,
    /// which then carries the exporter's connections.
    pub fn start(options: &OtlpOptions) -> Result<Self, TraceError> {
        let runtime = Handle::try_current().map_err(|_| TraceError::NoRuntime)?;
        let endpoint = traces_url(&options.endpoint)?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .with_http_client(ExportClient::new(runtime)?)
            .build()?;
        let mut batch = BatchConfigBuilder::default();
        if std::env::var_os("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
            batch = batch.with_max_queue_size(MAX_QUEUED_SPANS);
        }
        if let Some(delay) = options.schedule_delay {
            batch = batch.with_scheduled_delay(delay);
        }
        let processor = BatchSpanProcessor::builder(exporter)
            .with_batch_config(batch.build())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(
                Resource::builder()
                    .with_service_name(options.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("agentgateway-proxy");
        tracing::info!(%endpoint, service_name = %options.service_name, "exporting traces over OTLP/HTTP");
        Ok(Self {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
        })
    }

    /// Starts the span of a request that just arrived: the child of the client's span when its
    /// `traceparent` is valid, else the root of a new trace.
    pub fn start_request(&self, headers: &HeaderMap, operation: Operation) -> RequestTrace {
        let parent = self
            .propagator
            .extract_with_context(&Context::new(), &BoundedExtractor(headers));
        let span = self
            .tracer
            .span_builder(gen_ai_operation(operation).unwrap_or(operation.as_str()))
            .with_kind(SpanKind::Server)
            .start_with_context(&self.tracer, &parent);
        RequestTrace { span }
    }

    /// Exports what is queued and stops, waiting at most `timeout`. The SDK's shutdown blocks its
    /// caller, so it runs on a blocking thread, never on a runtime worker (whose turn the export
    /// itself needs).
    pub async fn shutdown(&self, timeout: Duration) {
        let provider = self.provider.clone();
        let stopping = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(timeout));
        // The SDK bounds its wait by `timeout`; this bounds ours should it not.
        match tokio::time::timeout(timeout.saturating_add(Duration::from_secs(1)), stopping).await {
            // The SDK logs a failed last export itself (its result does not reach here).
            Ok(Ok(Ok(()))) => tracing::info!("trace export stopped"),
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, "traces not flushed: spans still queued are lost");
            }
            Ok(Err(error)) => tracing::warn!(%error, "traces not flushed"),
            Err(_) => tracing::warn!(?timeout, "traces not flushed within the timeout"),
        }
    }
}

/// A request's span, from its arrival to its record's end.
pub struct RequestTrace {
    span: Span,
}

impl RequestTrace {
    /// Names the request's span in `headers` (a provider request's): `traceparent` with the same
    /// trace id and the proxy's span id, and the trace's `tracestate` (the client's, kept). The
    /// client's own values are replaced, and removed when there is nothing to put instead.
    pub fn inject(&self, headers: &mut HeaderMap) {
        headers.remove(TRACEPARENT);
        headers.remove(TRACESTATE);
        let context = Context::new().with_remote_span_context(self.span.span_context().clone());
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }

    /// The span's W3C trace id and span id, as hex.
    pub fn ids(&self) -> (String, String) {
        let context = self.span.span_context();
        (
            context.trace_id().to_string(),
            context.span_id().to_string(),
        )
    }

    /// Names the span, sets its attributes from the finished `record`, and ends it.
    pub fn finish(mut self, record: &RequestRecord) {
        let operation = gen_ai_operation(record.operation);
        let request_model = record
            .request_model
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(client_text);
        let name: Cow<'static, str> = match (operation, &request_model) {
            (Some(operation), Some(model)) => format!("{operation} {model}").into(),
            (Some(operation), None) => operation.into(),
            // Not a GenAI operation: the HTTP server span's name.
            (None, _) => http_method(&record.method).into(),
        };
        self.span.update_name(name);
        let mut attributes = Vec::with_capacity(20);
        if let Some(operation) = operation {
            attributes.push(KeyValue::new("gen_ai.operation.name", operation));
        }
        if let Some(provider) = &record.provider {
            attributes.push(KeyValue::new(
                "gen_ai.system",
                gen_ai_system(provider.config.kind),
            ));
        }
        if let Some(model) = request_model {
            attributes.push(KeyValue::new("gen_ai.request.model", model.into_owned()));
        }
        let response_model = record
            .reported_model
            .as_deref()
            .or_else(|| record.provider.as_ref().and_then(|p| p.model.as_deref()));
        if let Some(model) = response_model {
            attributes.push(KeyValue::new(
                "gen_ai.response.model",
                client_text(model).into_owned(),
            ));
        }
        if let Some(usage) = record.usage {
            attributes.push(KeyValue::new(
                "gen_ai.usage.input_tokens",
                saturating_i64(usage.prompt),
            ));
            attributes.push(KeyValue::new(
                "gen_ai.usage.output_tokens",
                saturating_i64(usage.completion),
            ));
        }
        if record.operation.has_json_model() {
            attributes.push(KeyValue::new("gen_ai.request.stream", record.stream));
        }
        attributes.push(KeyValue::new(
            "http.request.method",
            http_method(&record.method),
        ));
        attributes.push(KeyValue::new("url.path", record.path.clone()));
        attributes.push(KeyValue::new(
            "http.response.status_code",
            i64::from(record.status),
        ));
        if let Some(error) = record.error {
            attributes.push(KeyValue::new("error.type", error));
        }
        let names = [
            ("agentgateway.route", record.route.as_ref()),
            ("agentgateway.backend", record.backend.as_ref()),
            ("agentgateway.provider", record.provider_name()),
            ("agentgateway.consumer", record.consumer.as_ref()),
        ];
        for (key, value) in names {
            if let Some(value) = value {
                attributes.push(KeyValue::new(key, value.to_string()));
            }
        }
        attributes.push(KeyValue::new(
            "agentgateway.attempts",
            i64::from(record.attempts),
        ));
        self.span.set_attributes(attributes);
        if let Some(description) = error_status(record.status, record.error) {
            self.span.set_status(Status::error(description));
        }
        self.span.end();
    }
}

/// The span status's error, if any: 5xx, and failures behind a non-4xx status (a stream cut
/// after its 200). A 4xx is the client's doing: per the HTTP semantic conventions for server
/// spans it leaves the status unset (its `error.type` still says why).
fn error_status(status: u16, error: Option<&'static str>) -> Option<&'static str> {
    match (status, error) {
        (500.., error) => Some(error.unwrap_or("server_error")),
        (400..500, _) => None,
        (_, error) => error,
    }
}

/// `http.request.method`: a method of RFC 9110 or PATCH, else `_OTHER` as the HTTP semantic
/// conventions say, so a client's made-up method (any token hyper accepts) never reaches a span.
fn http_method(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::PATCH => "PATCH",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

/// `gen_ai.operation.name` of the GenAI operations; `None` for the rest.
fn gen_ai_operation(operation: Operation) -> Option<&'static str> {
    match operation {
        Operation::ChatCompletions | Operation::Messages | Operation::Responses => Some("chat"),
        Operation::Completions => Some("text_completion"),
        Operation::Embeddings => Some("embeddings"),
        Operation::Models | Operation::CountTokens | Operation::Other => None,
    }
}

/// `gen_ai.system` of a provider kind, as the GenAI semantic conventions spell it.
fn gen_ai_system(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::OpenAi => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::AzureOpenAi => "az.ai.openai",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::Bedrock => "aws.bedrock",
        ProviderKind::VertexAi => "gcp.vertex_ai",
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// `{base}/v1/traces`, once `base` is checked to be an absolute http(s) URL.
fn traces_url(base: &str) -> Result<String, TraceError> {
    let invalid = |reason: &str| TraceError::InvalidEndpoint {
        endpoint: base.to_string(),
        reason: reason.to_string(),
    };
    let uri: http::Uri = base
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("the scheme must be http or https")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if uri.query().is_some() {
        return Err(invalid("a query is not allowed"));
    }
    Ok(format!("{}/v1/traces", base.trim_end_matches('/')))
}

/// The client's trace headers as the propagator reads them: one value each, of a sane length,
/// else none (so a forged or oversized header costs nothing and is never an error).
struct BoundedExtractor<'a>(&'a HeaderMap);

impl Extractor for BoundedExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let max = match key {
            TRACEPARENT => MAX_TRACEPARENT,
            TRACESTATE => MAX_TRACESTATE,
            _ => return None,
        };
        let mut values = self.0.get_all(key).iter();
        let value = values.next()?;
        // W3C: several `traceparent` headers make the context invalid; several `tracestate`
        // headers would have to be joined, which is not worth an allocation here.
        if values.next().is_some() || value.len() > max {
            return None;
        }
        value.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// Writes the propagator's headers; an empty value (no `tracestate`) is not sent.
struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        let name = match key {
            TRACEPARENT => http::header::HeaderName::from_static(TRACEPARENT),
            TRACESTATE => http::header::HeaderName::from_static(TRACESTATE),
            _ => return,
        };
        if let Ok(value) = HeaderValue::try_from(value) {
            self.0.insert(name, value);
        }
    }
}

/// Why an export exchange failed, beyond the HTTP client's own errors.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    /// No answer within [`EXPORT_TIMEOUT`].
    #[error("the collector did not answer within {0:?}")]
    Timeout(Duration),
    /// The runtime is shutting down: its tasks are cancelled.
    #[error("the export task did not complete: {0}")]
    Stopped(String),
}

/// The exporter's HTTP client: hyper over rustls (or plain TCP for `http://`), with connections
/// on the proxy's runtime. The SDK's batch processor calls it from its own thread with a plain
/// executor, which has no tokio reactor: each exchange is spawned on the runtime and awaited.
#[derive(Clone)]
struct ExportClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    runtime: Handle,
}

impl fmt::Debug for ExportClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExportClient")
    }
}

impl ExportClient {
    fn new(runtime: Handle) -> Result<Self, TraceError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TraceError::ConfigureTls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(EXPORT_TIMEOUT));
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Self { client, runtime })
    }
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let exchange = async move {
            let response = client.request(request.map(Full::new)).await?;
            let (head, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER_BYTES).collect().await?;
            Ok::<_, HttpError>(Response::from_parts(head, body.to_bytes()))
        };
        let task = self
            .runtime
            .spawn(async move { tokio::time::timeout(EXPORT_TIMEOUT, exchange).await });
        match task.await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Box::new(ExportError::Timeout(EXPORT_TIMEOUT))),
            Err(error) => Err(Box::new(ExportError::Stopped(error.to_string()))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CLIENT_SPAN: &str = "00f067aa0ba902b7";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn tracing() -> Tracing {
        let provider = SdkTracerProvider::builder().build();
        Tracing {
            tracer: provider.tracer("test"),
            provider,
            propagator: TraceContextPropagator::new(),
        }
    }

    #[test]
    fn a_valid_traceparent_is_continued_and_the_upstream_names_the_proxys_span() {
        let tracing = tracing();
        let client = headers(&[
            (
                "traceparent",
                &format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),
            ),
            ("tracestate", "vendor=abc"),
        ]);
        let trace = tracing.start_request(&client, Operation::ChatCompletions);
        let (trace_id, span_id) = trace.ids();
        assert_eq!(trace_id, CLIENT_TRACE);
        assert_ne!(span_id, CLIENT_SPAN);
        let mut upstream = client.clone();
        trace.inject(&mut upstream);
        assert_eq!(
            upstream["traceparent"],
            format!("00-{CLIENT_TRACE}-{span_id}-01").as_str()
        );
        assert_eq!(upstream["tracestate"], "vendor=abc");
    }

    #[test]
    fn invalid_or_oversized_trace_headers_start_a_new_trace() {
        let tracing = tracing();
        let long_state = format!("a={}", "x".repeat(MAX_TRACESTATE));
        let bad = [
            vec![("traceparent", "garbage")],
            vec![(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            )],
            vec![(
                "traceparent",
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            )],
            vec![
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
                (
                    "traceparent",
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            ],
        ];
        for pairs in bad {
            let trace = tracing.start_request(&headers(&pairs), Operation::ChatCompletions);
            assert_ne!(trace.ids().0, CLIENT_TRACE, "{pairs:?}");
            let mut upstream = headers(&pairs);
            upstream.insert("tracestate", "stale=1".parse().unwrap());
            trace.inject(&mut upstream);
            assert_eq!(upstream.get_all("traceparent").iter().count(), 1);
            assert!(
                !upstream.contains_key("tracestate"),
                "another trace's state"
            );
        }
        let oversized = headers(&[
            (
                "traceparent",
                &format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"),
            ),
            ("tracestate", &long_state),
        ]);
        let trace = tracing.start_request(&oversized, Operation::Embeddings);
        assert_eq!(trace.ids().0, CLIENT_TRACE, "the parent is kept");
        let mut upstream = oversized.clone();
        trace.inject(&mut upstream);
        assert!(!upstream.contains_key("tracestate"));
    }

    #[test]
    fn the_endpoint_is_an_http_base_url() {
        assert_eq!(
            traces_url("http://otel-collector:4318").unwrap(),
            "http://otel-collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://collector.example/otlp/").unwrap(),
            "https://collector.example/otlp/v1/traces"
        );
        for bad in [
            "otel-collector:4318",
            "ftp://c",
            "http://c/?a=1",
            "not a url",
        ] {
            assert!(traces_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn made_up_methods_are_other() {
        assert_eq!(http_method(&http::Method::POST), "POST");
        let made_up = http::Method::from_bytes(b"X-FORGED-METHOD").unwrap();
        assert_eq!(http_method(&made_up), "_OTHER");
    }

    #[test]
    fn client_errors_leave_the_status_unset() {
        assert_eq!(error_status(200, None), None);
        assert_eq!(error_status(404, Some("route_not_found")), None);
        assert_eq!(error_status(499, Some("client_disconnected")), None);
        assert_eq!(
            error_status(503, Some("no_healthy_provider")),
            Some("no_healthy_provider")
        );
        assert_eq!(error_status(502, None), Some("server_error"));
        assert_eq!(
            error_status(200, Some("upstream_stream_error")),
            Some("upstream_stream_error")
        );
    }
}
