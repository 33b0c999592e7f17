//! One request through the gateway: listener → route → backend → provider attempts → response.
//!
//! Attempts that fail before anything reached the client are retried on another provider (next
//! group if needed), bounded by the backend's retry budget and the request deadline. Failures feed
//! passive health; the outcome is recorded once.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::time::Instant as TokioInstant;

use crate::body::ProxyBody;
use crate::metrics::Metrics;
use crate::openai::error::ProxyError;
use crate::openai::operation::Operation;
use crate::openai::request::JsonRequest;
use crate::openai::sse::SseObserver;
use crate::openai::usage::read_response_facts;
use crate::provider::ProviderRuntime;
use crate::provider::balancer::choose;
use crate::provider::health::Failure;
use crate::record::RequestRecord;
use crate::route::{find_rule, pick_backend};
use crate::state::{BackendRuntime, ProxyState};
use crate::stream::{StreamParts, StreamingBody};

/// The largest error body read from a provider (to classify it and pass it through).
const MAX_ERROR_BODY: usize = 1 << 20;
/// The largest non-streamed response body buffered from a provider.
const MAX_RESPONSE_BODY: usize = 256 << 20;

/// Shared by every listener.
pub struct Gateway {
    /// The live config.
    pub state: Arc<ProxyState>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The largest request body accepted (413 above).
    pub body_limit: usize,
    /// Where access lines go.
    pub access_log: crate::access_log::AccessLog,
}

/// Serves one request; never fails towards hyper.
pub async fn handle(
    gateway: Arc<Gateway>,
    listener: Arc<str>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let (parts, body) = request.into_parts();
    let operation = Operation::from_path(parts.uri.path());
    let mut record = RequestRecord::new(listener, &parts, operation);
    let response = match route_and_forward(&gateway, &mut record, parts, body).await {
        Ok(Forwarded::Complete(response)) => response,
        Ok(Forwarded::Streaming(response)) => return Ok(response),
        Err(error) => {
            record.error = Some(error.code);
            error.into_response()
        }
    };
    record.status = response.status().as_u16();
    record.finish(&gateway.metrics, &gateway.access_log);
    Ok(response)
}

enum Forwarded {
    /// A buffered response; the caller finishes the record.
    Complete(Response<ProxyBody>),
    /// A stream that finishes the record itself when it ends.
    Streaming(Response<ProxyBody>),
}

async fn route_and_forward(
    gateway: &Arc<Gateway>,
    record: &mut RequestRecord,
    parts: http::request::Parts,
    body: Incoming,
) -> Result<Forwarded, ProxyError> {
    let snapshot = gateway.state.snapshot();
    let no_route = || {
        ProxyError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "route_not_found",
            format!("no route matches {} {}", parts.method, parts.uri.path()),
        )
    };
    let table = snapshot
        .listeners
        .get(&*record.listener)
        .ok_or_else(no_route)?;
    let rule = find_rule(table, &parts).ok_or_else(no_route)?;
    record.route = Some(rule.route.clone());
    let mut rng = fastrand::Rng::new();
    let backend = pick_backend(rule, &mut rng).ok_or_else(|| {
        ProxyError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "backend_not_found",
            format!(
                "route {} refers to a backend that does not exist or is not accepted",
                rule.route
            ),
        )
    })?;
    record.backend = Some(backend.name.clone());
    if record.operation.has_json_model() && parts.method != Method::POST {
        let mut error = ProxyError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            format!(
                "{} {} is not supported: use POST",
                parts.method,
                parts.uri.path()
            ),
        );
        error.allow = Some("POST");
        return Err(error);
    }
    let body = read_body(&parts.headers, body, gateway.body_limit).await?;
    let json = if record.operation.has_json_model() {
        Some(JsonRequest::parse(&body)?)
    } else {
        None
    };
    record.stream = json.as_ref().is_some_and(|j| j.stream);
    record.model = json
        .as_ref()
        .and_then(|j| j.model.as_deref())
        .map(Arc::from);
    let attempt = Attempts {
        gateway,
        backend: &backend,
        parts: &parts,
        body: &body,
        json: json.as_ref(),
        operation: record.operation,
        deadline: Instant::now() + backend.request_timeout,
    };
    attempt.run(record, &mut rng).await
}

/// Reads the request body, refusing more than `limit` bytes with a 413.
async fn read_body(headers: &HeaderMap, body: Incoming, limit: usize) -> Result<Bytes, ProxyError> {
    let too_large = || {
        ProxyError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ProxyError::bad_request(
            "request_body_unreadable",
            format!("failed to read the request body: {e}"),
        )),
    }
}

/// The attempts of one request on the providers of one backend.
struct Attempts<'a> {
    gateway: &'a Arc<Gateway>,
    backend: &'a Arc<BackendRuntime>,
    parts: &'a http::request::Parts,
    body: &'a Bytes,
    json: Option<&'a JsonRequest>,
    /// The request's operation, classified once on arrival.
    operation: Operation,
    deadline: Instant,
}

/// Why the last attempt failed, for the final answer.
struct LastFailure {
    provider: Arc<str>,
    failure: Failure,
    detail: String,
}

/// The request for one attempt on one provider.
struct UpstreamRequest {
    request: Request<Full<Bytes>>,
    /// The model sent, for JSON operations.
    model: Option<Arc<str>>,
    /// Whether `stream_options.include_usage` was added by the proxy.
    injects_usage: bool,
}

/// The outcome of one attempt.
enum AttemptOutcome {
    Done(Forwarded),
    Failed(Failure, String),
}

impl Attempts<'_> {
    async fn run(
        &self,
        record: &mut RequestRecord,
        rng: &mut fastrand::Rng,
    ) -> Result<Forwarded, ProxyError> {
        let max_attempts = self.backend.retry_attempts.saturating_add(1);
        let mut tried: Vec<(usize, usize)> = Vec::new();
        let mut last: Option<LastFailure> = None;
        while record.attempts < max_attempts && Instant::now() < self.deadline {
            let now = Instant::now();
            let view: Vec<Vec<_>> = self
                .backend
                .groups
                .iter()
                .enumerate()
                .map(|(g, group)| {
                    group
                        .iter()
                        .enumerate()
                        .map(|(p, provider)| provider.candidate(now, tried.contains(&(g, p))))
                        .collect()
                })
                .collect();
            let Some((g, p)) = choose(&view, rng) else {
                break;
            };
            tried.push((g, p));
            let provider = &self.backend.groups[g][p];
            record.attempts += 1;
            record.provider = Some(provider.name.clone());
            match self.attempt(provider, record).await? {
                AttemptOutcome::Done(forwarded) => return Ok(forwarded),
                AttemptOutcome::Failed(failure, detail) => {
                    provider.report_failure(failure, &self.gateway.metrics, &detail);
                    last = Some(LastFailure {
                        provider: provider.name.clone(),
                        failure,
                        detail,
                    });
                }
            }
        }
        Err(self.final_error(last))
    }

    /// One try on one provider.
    async fn attempt(
        &self,
        provider: &Arc<ProviderRuntime>,
        record: &mut RequestRecord,
    ) -> Result<AttemptOutcome, ProxyError> {
        let started = Instant::now();
        let in_flight = provider.start_request();
        let UpstreamRequest {
            request,
            model,
            injects_usage,
        } = self.upstream_request(provider)?;
        if model.is_some() {
            record.model = model;
        }
        let attempt_deadline = self
            .deadline
            .min(started + Duration::from_millis(provider.config.request_timeout_ms));
        let deadline = TokioInstant::from_std(attempt_deadline);
        let response = match tokio::time::timeout_at(deadline, provider.client.request(request))
            .await
        {
            Err(_) => {
                return Ok(AttemptOutcome::Failed(
                    Failure::Timeout,
                    "no response before the timeout".into(),
                ));
            }
            Ok(Err(e)) => return Ok(AttemptOutcome::Failed(Failure::Connect, connect_detail(&e))),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if let Some(failure) = classify_status(status, response.headers()) {
            let bytes = read_limited(response.into_body(), MAX_ERROR_BODY, deadline)
                .await
                .unwrap_or_default();
            let failure = refine_failure(failure, &bytes);
            let detail = format!(
                "HTTP {status}{}",
                error_message(&bytes)
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            return Ok(AttemptOutcome::Failed(failure, detail));
        }
        if !status.is_success() && !status.is_redirection() {
            // 400, 404, 422 ...: the request's fault; passed through as it is, not retried.
            let (head, body) = response.into_parts();
            let bytes = read_limited(body, MAX_ERROR_BODY, deadline)
                .await
                .unwrap_or_default();
            return Ok(AttemptOutcome::Done(Forwarded::Complete(client_response(
                head, bytes,
            ))));
        }
        if is_event_stream(response.headers()) {
            return self
                .commit_stream(
                    provider,
                    record,
                    response,
                    started,
                    deadline,
                    injects_usage,
                    in_flight,
                )
                .await;
        }
        let (head, body) = response.into_parts();
        let bytes = match read_limited(body, MAX_RESPONSE_BODY, deadline).await {
            Ok(bytes) => bytes,
            Err(BodyReadError::Timeout) => {
                return Ok(AttemptOutcome::Failed(
                    Failure::Timeout,
                    "response body timed out".into(),
                ));
            }
            Err(BodyReadError::Broken(detail)) => {
                return Ok(AttemptOutcome::Failed(Failure::Connect, detail));
            }
        };
        provider.record_success(started.elapsed());
        if self.json.is_some()
            && let Some(facts) = read_response_facts(&bytes)
        {
            record.usage = facts.usage;
            if record.model.is_none() {
                record.model = facts.model.map(Arc::from);
            }
        }
        drop(in_flight);
        Ok(AttemptOutcome::Done(Forwarded::Complete(client_response(
            head, bytes,
        ))))
    }

    /// Waits for the first content chunk (a stream that fails before it is retried), then hands
    /// the rest of the stream to the client.
    #[allow(clippy::too_many_arguments)]
    async fn commit_stream(
        &self,
        provider: &Arc<ProviderRuntime>,
        record: &mut RequestRecord,
        response: Response<Incoming>,
        started: Instant,
        deadline: TokioInstant,
        injects_usage: bool,
        in_flight: crate::provider::InFlight,
    ) -> Result<AttemptOutcome, ProxyError> {
        let (head, mut body) = response.into_parts();
        let mut observer = SseObserver::new(injects_usage);
        let mut pending = BytesMut::new();
        while !observer.content_seen && !observer.done {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Err(_) => {
                    return Ok(AttemptOutcome::Failed(
                        Failure::Timeout,
                        "no stream content before the timeout".into(),
                    ));
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        pending.extend_from_slice(&observer.feed(data));
                    }
                }
                Ok(Some(Err(e))) => {
                    return Ok(AttemptOutcome::Failed(
                        Failure::Connect,
                        format!("stream broke before content: {e}"),
                    ));
                }
                Ok(None) => {
                    return Ok(AttemptOutcome::Failed(
                        Failure::ServerError,
                        "stream ended before any content".into(),
                    ));
                }
            }
        }
        let ttft = started.elapsed();
        provider.record_success(ttft);
        record.ttft = Some(record.start.elapsed());
        record.status = head.status.as_u16();
        let mut response = Response::from_parts(head, ());
        strip_hop_by_hop(response.headers_mut());
        response.headers_mut().remove(header::CONTENT_LENGTH);
        let (head, ()) = response.into_parts();
        let parts = StreamParts {
            upstream: body,
            pending: pending.freeze(),
            observer,
            deadline: Box::pin(tokio::time::sleep_until(TokioInstant::from_std(
                self.deadline,
            ))),
            expect_done: matches!(
                record.operation,
                Operation::ChatCompletions | Operation::Completions
            ),
            provider: provider.clone(),
            in_flight,
        };
        let record = std::mem::replace(
            record,
            RequestRecord::new(record.listener.clone(), self.parts, record.operation),
        );
        let stream = StreamingBody::new(parts, self.gateway.clone(), record);
        Ok(AttemptOutcome::Done(Forwarded::Streaming(
            Response::from_parts(head, ProxyBody::Stream(Box::new(stream))),
        )))
    }

    /// The request for one provider: URI, headers (auth swapped in), body with its model.
    fn upstream_request(&self, provider: &ProviderRuntime) -> Result<UpstreamRequest, ProxyError> {
        let (body, model, injects_usage) = match self.json {
            Some(json) => {
                let model = json
                    .effective_model(provider.config.model.as_deref())
                    .ok_or_else(|| {
                        ProxyError::bad_request(
                            "model_required",
                            "you must provide a model parameter (the backend's provider sets none)",
                        )
                    })?;
                let inject = json.injects_usage();
                let sent = match &provider.model {
                    Some(shared) => shared.clone(),
                    None => Arc::from(model),
                };
                (json.encode(model, inject), Some(sent), inject)
            }
            None => (self.body.clone(), None, false),
        };
        let path = match (&provider.config.path, self.operation) {
            (Some(path), Operation::ChatCompletions) => Some(path.clone()),
            _ => self.operation.provider_path(self.parts.uri.path()),
        };
        let path_and_query = match (path, self.parts.uri.query()) {
            (Some(path), Some(query)) => format!("{path}?{query}"),
            (Some(path), None) => path,
            (None, _) => self
                .parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string()),
        };
        let uri = http::Uri::builder()
            .scheme(provider.scheme.clone())
            .authority(provider.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| {
                ProxyError::bad_request(
                    "invalid_path",
                    format!("failed to build the upstream URI: {e}"),
                )
            })?;
        let mut request = Request::new(Full::new(body.clone()));
        *request.method_mut() = self.parts.method.clone();
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        for (name, value) in &self.parts.headers {
            if !is_hop_by_hop(name) && name != header::HOST && name != header::CONTENT_LENGTH {
                headers.append(name.clone(), value.clone());
            }
        }
        if self.json.is_some() {
            // Usage is read from the response: ask for it uncompressed.
            headers.remove(header::ACCEPT_ENCODING);
        }
        if let Some(auth) = &provider.auth_header {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        if let Ok(host) = HeaderValue::from_str(provider.authority.as_str()) {
            headers.insert(header::HOST, host);
        }
        if !body.is_empty() || self.parts.method == Method::POST {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        Ok(UpstreamRequest {
            request,
            model,
            injects_usage,
        })
    }

    /// The answer when no attempt succeeded.
    fn final_error(&self, last: Option<LastFailure>) -> ProxyError {
        let backend = &self.backend.name;
        if Instant::now() >= self.deadline {
            return ProxyError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "timeout",
                format!(
                    "backend {backend} did not answer within the request timeout of {:?}",
                    self.backend.request_timeout
                ),
            );
        }
        if let Some(LastFailure {
            provider,
            failure: Failure::CredentialsRejected,
            detail,
        }) = &last
        {
            return ProxyError::new(
                StatusCode::BAD_GATEWAY,
                "server_error",
                "upstream_credentials_rejected",
                format!(
                    "the upstream provider {provider} of backend {backend} rejected the gateway's credentials ({detail}); the client's own key was not at fault"
                ),
            );
        }
        let now = Instant::now();
        let retry_after = self
            .backend
            .groups
            .iter()
            .flatten()
            .filter_map(|p| p.eviction_ends(now))
            .min()
            .map_or(1, |until| {
                until
                    .saturating_duration_since(now)
                    .as_secs_f64()
                    .ceil()
                    .max(1.0) as u64
            });
        let cause = last.map_or_else(
            || "every provider is evicted".to_string(),
            |l| format!("last attempt on provider {}: {}", l.provider, l.detail),
        );
        let mut error = ProxyError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "no_healthy_provider",
            format!("no provider of backend {backend} could serve the request ({cause})"),
        );
        error.retry_after_secs = Some(retry_after);
        error
    }
}

/// The failure a status means, or `None` when it is a success or the request's own fault.
fn classify_status(status: StatusCode, headers: &HeaderMap) -> Option<Failure> {
    match status.as_u16() {
        401 | 403 => Some(Failure::CredentialsRejected),
        402 => Some(Failure::QuotaExhausted),
        408 => Some(Failure::Timeout),
        429 => Some(Failure::RateLimited(retry_after(headers))),
        500..=599 => Some(Failure::ServerError),
        _ => None,
    }
}

/// A 429 or 403 whose body says the quota is gone is quota exhaustion, not a blip.
fn refine_failure(failure: Failure, body: &[u8]) -> Failure {
    let quota = memchr::memmem::find(body, b"insufficient_quota").is_some();
    match failure {
        Failure::RateLimited(_) | Failure::CredentialsRejected | Failure::ServerError if quota => {
            Failure::QuotaExhausted
        }
        other => other,
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e6)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The provider's own error message, for logs and our 503 body.
fn error_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = value.get("error")?.get("message")?.as_str()?;
    Some(message.chars().take(200).collect())
}

fn connect_detail(error: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut detail = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

enum BodyReadError {
    Timeout,
    Broken(String),
}

async fn read_limited(
    body: Incoming,
    limit: usize,
    deadline: TokioInstant,
) -> Result<Bytes, BodyReadError> {
    match tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyReadError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => Err(BodyReadError::Broken(format!(
            "failed to read the response body: {e}"
        ))),
    }
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        })
}

fn client_response(head: http::response::Parts, body: Bytes) -> Response<ProxyBody> {
    let mut response = Response::from_parts(head, ProxyBody::full(body));
    strip_hop_by_hop(response.headers_mut());
    response
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let hop: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    for name in hop {
        headers.remove(name);
    }
}
