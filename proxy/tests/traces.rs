//! OpenTelemetry traces: one server span per request, exported over OTLP/HTTP to a real receiver
//! (decoded with the official protobuf messages), continuing the client's W3C trace context and
//! naming the proxy's span to the provider.
//!
//! The batch processor exports every 50 ms here (`OtlpOptions::schedule_delay`; the binary takes
//! the SDK's `OTEL_BSP_SCHEDULE_DELAY`), and each test polls the receiver for up to 10 s.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentgateway_proxy::trace::OtlpOptions;
use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as SpanStatus;
use prost::Message;
use serde_json::json;

/// How long a span may take to reach the receiver.
const EXPORT_DEADLINE: Duration = Duration::from_secs(10);

/// An OTLP/HTTP receiver: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
struct Receiver {
    addr: SocketAddr,
    /// Every span received, with its resource's `service.name`.
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| receive(request, kept.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { addr, spans }
    }

    fn options(&self) -> OtlpOptions {
        OtlpOptions {
            endpoint: format!("http://{}", self.addr),
            service_name: "traces-test".into(),
            schedule_delay: Some(Duration::from_millis(50)),
        }
    }

    /// The spans of trace `trace_id` (hex), once there is one.
    async fn trace(&self, trace_id: &str) -> Vec<(String, Span)> {
        let started = Instant::now();
        loop {
            let found: Vec<_> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, span)| hex(&span.trace_id) == trace_id)
                .cloned()
                .collect();
            if !found.is_empty() {
                return found;
            }
            assert!(
                started.elapsed() < EXPORT_DEADLINE,
                "no span of trace {trace_id} exported"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The one span of trace `trace_id`: no second one is exported in the next batches.
    async fn only_span(&self, trace_id: &str) -> (String, Span) {
        self.trace(trace_id).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut spans = self.trace(trace_id).await;
        assert_eq!(spans.len(), 1, "one span per request: {spans:#?}");
        spans.remove(0)
    }
}

async fn receive(
    request: Request<Incoming>,
    spans: Arc<Mutex<Vec<(String, Span)>>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let protobuf = request
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/x-protobuf");
    if request.method() != "POST" || request.uri().path() != "/v1/traces" || !protobuf {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    }
    let body = request.into_body().collect().await?.to_bytes();
    let export = ExportTraceServiceRequest::decode(body).unwrap();
    let mut kept = spans.lock().unwrap();
    for resource_spans in export.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                AnyValue::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                kept.push((service.clone(), span));
            }
        }
    }
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    let mut response = Response::new(Full::new(Bytes::from(answer)));
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    Ok(response)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    match attribute(span, key)? {
        AnyValue::StringValue(s) => Some(s),
        other => panic!("{key} is not a string: {other:?}"),
    }
}

fn int(span: &Span, key: &str) -> Option<i64> {
    match attribute(span, key)? {
        AnyValue::IntValue(i) => Some(*i),
        other => panic!("{key} is not an integer: {other:?}"),
    }
}

fn boolean(span: &Span, key: &str) -> Option<bool> {
    match attribute(span, key)? {
        AnyValue::BoolValue(b) => Some(*b),
        other => panic!("{key} is not a bool: {other:?}"),
    }
}

fn status(span: &Span) -> i32 {
    span.status.as_ref().map_or(0, |s| s.code)
}

/// A random-enough trace id per test, so tests sharing nothing never collide.
fn trace_id(seed: u64) -> String {
    format!(
        "{:016x}{:016x}",
        0x4bf9_2f35_77b3_4da6_u64 ^ seed,
        fastrand::u64(..)
    )
}

const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// The trace id and span id of a `traceparent`.
fn parse_traceparent(value: &str) -> (String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00");
    assert_eq!(parts[3], "01", "sampled: {value}");
    (parts[1].to_string(), parts[2].to_string())
}

/// The `traceparent` (and `tracestate`) the mock's `n`th request carried.
fn upstream_trace(upstream: &agentgateway_mock_llm::MockLlm, n: usize) -> (String, Option<String>) {
    let request = &upstream.requests()[n];
    let header = |name: &str| {
        let values: Vec<&String> = request
            .headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect();
        assert!(values.len() <= 1, "{name} sent twice: {values:?}");
        values.first().map(|v| v.to_string())
    };
    (
        header("traceparent").expect("traceparent sent upstream"),
        header("tracestate"),
    )
}

fn one_backend(addr: SocketAddr) -> String {
    config(&[
        GATEWAY_KEY_SECRET.to_string(),
        backend("one", &[&[("a", addr)]], GATEWAY_KEY_AUTH, ""),
        route("one", "one", Some("/v1")),
    ])
}

#[tokio::test]
async fn a_chat_completion_continues_the_clients_trace_and_the_upstream_names_the_proxys_span() {
    let receiver = Receiver::start().await;
    let a = mock("a").await;
    let proxy = start_proxy_traced(&one_backend(a.addr()), receiver.options()).await;
    let trace = trace_id(1);
    let traceparent = format!("00-{trace}-{CLIENT_SPAN}-01");
    let reply = proxy
        .post(
            "/v1/chat/completions",
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Reply with exactly: traced at last"}]}),
            &[
                ("traceparent", &traceparent),
                ("tracestate", "vendor=abc"),
                ("authorization", "Bearer client-secret-key"),
            ],
        )
        .await;
    reply.assert_ok();
    let usage = &reply.json()["usage"];

    let (service, span) = receiver.only_span(&trace).await;
    assert_eq!(service, "traces-test");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(
        hex(&span.parent_span_id),
        CLIENT_SPAN,
        "the client's span is the parent"
    );
    assert_eq!(span.name, "chat gpt-4o");
    assert_eq!(text(&span, "gen_ai.operation.name"), Some("chat"));
    assert_eq!(text(&span, "gen_ai.system"), Some("openai"));
    assert_eq!(text(&span, "gen_ai.request.model"), Some("gpt-4o"));
    assert_eq!(text(&span, "gen_ai.response.model"), Some("model-a"));
    assert_eq!(
        int(&span, "gen_ai.usage.input_tokens"),
        usage["prompt_tokens"].as_i64()
    );
    assert_eq!(int(&span, "gen_ai.usage.output_tokens"), Some(3));
    assert_eq!(boolean(&span, "gen_ai.request.stream"), Some(false));
    assert_eq!(text(&span, "http.request.method"), Some("POST"));
    assert_eq!(text(&span, "url.path"), Some("/v1/chat/completions"));
    assert_eq!(int(&span, "http.response.status_code"), Some(200));
    assert_eq!(text(&span, "error.type"), None);
    assert_eq!(text(&span, "agentgateway.route"), Some("default/one"));
    assert_eq!(text(&span, "agentgateway.backend"), Some("default/one"));
    assert_eq!(text(&span, "agentgateway.provider"), Some("a"));
    assert_eq!(text(&span, "agentgateway.consumer"), None);
    assert_eq!(int(&span, "agentgateway.attempts"), Some(1));
    assert_eq!(status(&span), SpanStatus::Unset as i32);
    let attributes = format!("{:?}", span.attributes);
    for secret in ["client-secret-key", "sk-test-123", "Bearer"] {
        assert!(!attributes.contains(secret), "{secret} in {attributes}");
    }

    let (upstream_parent, upstream_state) = upstream_trace(&a, 0);
    assert_eq!(
        parse_traceparent(&upstream_parent),
        (trace.clone(), hex(&span.span_id)),
        "the provider's parent is the proxy's span"
    );
    assert_eq!(upstream_state.as_deref(), Some("vendor=abc"));
}

#[tokio::test]
async fn a_streamed_chat_completion_has_its_span_with_token_counts() {
    let receiver = Receiver::start().await;
    let a = mock("a").await;
    let proxy = start_proxy_traced(&one_backend(a.addr()), receiver.options()).await;
    let trace = trace_id(2);
    let traceparent = format!("00-{trace}-{CLIENT_SPAN}-01");
    let reply = proxy
        .post(
            "/v1/chat/completions",
            json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "Reply with exactly: one two three four"}]}),
            &[("traceparent", &traceparent)],
        )
        .await;
    reply.assert_ok();
    assert_eq!(sse_content(&reply.body), "one two three four");

    let (_, span) = receiver.only_span(&trace).await;
    assert_eq!(span.name, "chat gpt-4o");
    assert_eq!(boolean(&span, "gen_ai.request.stream"), Some(true));
    assert!(
        int(&span, "gen_ai.usage.input_tokens").unwrap() > 0,
        "{span:?}"
    );
    assert_eq!(int(&span, "gen_ai.usage.output_tokens"), Some(4));
    assert_eq!(int(&span, "http.response.status_code"), Some(200));
    assert_eq!(status(&span), SpanStatus::Unset as i32);
    let (upstream_parent, upstream_state) = upstream_trace(&a, 0);
    assert_eq!(
        parse_traceparent(&upstream_parent),
        (trace, hex(&span.span_id))
    );
    assert_eq!(upstream_state, None);
}

#[tokio::test]
async fn a_request_without_traceparent_starts_a_new_trace() {
    let receiver = Receiver::start().await;
    let a = mock("a").await;
    let proxy = start_proxy_traced(&one_backend(a.addr()), receiver.options()).await;
    proxy
        .post(
            "/v1/chat/completions",
            json!({"model": "", "messages": [{"role": "user", "content": "hi"}]}),
            &[("traceparent", "00-not-a-valid-traceparent-01")],
        )
        .await
        .assert_ok();
    let (upstream_parent, _) = upstream_trace(&a, 0);
    let (trace, span_id) = parse_traceparent(&upstream_parent);
    assert_ne!(span_id, "not", "the client's invalid value is replaced");

    let (_, span) = receiver.only_span(&trace).await;
    assert!(span.parent_span_id.is_empty(), "a root span: {span:?}");
    assert_eq!(hex(&span.span_id), span_id);
    assert_eq!(span.name, "chat", "no model: the operation alone");
    assert_eq!(text(&span, "gen_ai.request.model"), None);
    assert_eq!(text(&span, "gen_ai.response.model"), Some("model-a"));
}

#[tokio::test]
async fn a_request_no_route_matches_still_has_its_span() {
    let receiver = Receiver::start().await;
    let a = mock("a").await;
    let proxy = start_proxy_traced(&one_backend(a.addr()), receiver.options()).await;
    let trace = trace_id(4);
    let traceparent = format!("00-{trace}-{CLIENT_SPAN}-01");
    let reply = proxy
        .post(
            "/elsewhere/v1/chat/completions",
            json!({"model": "gpt-4o", "messages": []}),
            &[("traceparent", &traceparent)],
        )
        .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.error_code(), "route_not_found");

    let (_, span) = receiver.only_span(&trace).await;
    assert_eq!(hex(&span.parent_span_id), CLIENT_SPAN);
    assert_eq!(int(&span, "http.response.status_code"), Some(404));
    assert_eq!(text(&span, "error.type"), Some("route_not_found"));
    assert_eq!(
        text(&span, "url.path"),
        Some("/elsewhere/v1/chat/completions")
    );
    assert_eq!(text(&span, "agentgateway.route"), None);
    assert_eq!(text(&span, "gen_ai.system"), None);
    assert_eq!(int(&span, "agentgateway.attempts"), Some(0));
    assert_eq!(
        status(&span),
        SpanStatus::Unset as i32,
        "a 4xx is the client's: the server span's status stays unset"
    );
    assert_eq!(a.request_count(), 0);
}

#[tokio::test]
async fn a_provider_failure_is_an_error_span() {
    let receiver = Receiver::start().await;
    let proxy = start_proxy_traced(&one_backend(dead_addr()), receiver.options()).await;
    let trace = trace_id(5);
    let traceparent = format!("00-{trace}-{CLIENT_SPAN}-01");
    let reply = proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[("traceparent", &traceparent)],
        )
        .await;
    assert_eq!(reply.status, 503);

    let (_, span) = receiver.only_span(&trace).await;
    assert_eq!(int(&span, "http.response.status_code"), Some(503));
    assert_eq!(text(&span, "error.type"), Some("no_healthy_provider"));
    assert_eq!(status(&span), SpanStatus::Error as i32);
    assert_eq!(text(&span, "agentgateway.provider"), Some("a"));
}

#[tokio::test]
async fn a_dead_collector_neither_fails_nor_holds_up_requests() {
    let a = mock("a").await;
    let options = OtlpOptions {
        endpoint: format!("http://{}", dead_addr()),
        service_name: "traces-test".into(),
        schedule_delay: Some(Duration::from_millis(10)),
    };
    let proxy = start_proxy_traced(&one_backend(a.addr()), options).await;
    let started = Instant::now();
    for _ in 0..20 {
        proxy.chat(chat("hi")).await.assert_ok();
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "requests waited on the collector: {:?}",
        started.elapsed()
    );
    let running = proxy.running.unwrap();
    let stopping = Instant::now();
    running
        .shutdown(Duration::ZERO, Duration::from_secs(1))
        .await;
    assert!(
        stopping.elapsed() < Duration::from_secs(8),
        "the flush at shutdown is bounded: {:?}",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn without_tracing_the_upstream_gets_the_clients_traceparent_unchanged() {
    let a = mock("a").await;
    let proxy = start_proxy(&one_backend(a.addr())).await;
    let traceparent = format!("00-{}-{CLIENT_SPAN}-01", trace_id(7));
    proxy
        .post(
            "/v1/chat/completions",
            chat("hi"),
            &[("traceparent", &traceparent), ("tracestate", "vendor=abc")],
        )
        .await
        .assert_ok();
    assert_eq!(
        upstream_trace(&a, 0),
        (traceparent, Some("vendor=abc".to_string()))
    );
}
