//! A request's attempts on the providers of one backend. Attempts that fail before anything
//! reached the client are retried on another provider (the next group if needed), bounded by the
//! backend's retry budget and the request deadline. Each attempt's result is classified once
//! ([`crate::outcome::classify`]); provider failures feed passive health, a client's faults go
//! back to the client unchanged and count against nobody.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentgateway_crds::proxy_config::ProviderKind;
use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::time::Instant as TokioInstant;

use crate::client_api::{self, ChatRequest, ClientStage, Served};
use crate::context::ProxyContext;
use crate::headers::client_headers;
use crate::openai::error::ProxyError;
use crate::openai::operation::Operation;
use crate::openai::request::JsonRequest;
use crate::openai::sse::SseObserver;
use crate::outcome::{Credential, Observed, Outcome, Phase, Signal, classify};
use crate::provider::balancer::choose;
use crate::provider::google_token::TokenError;
use crate::provider::health::Failure;
use crate::provider::{CloudAuth, ProviderRuntime};
use crate::record::RequestRecord;
use crate::state::BackendRuntime;
use crate::stream::{Observer, StreamParts, UpstreamStream};
use crate::translate::{self, ProviderBody};
use crate::upstream_body::{ClientBodyFault, FaultSlot, UpstreamBody};
use crate::upstream_request::{UpstreamRequest, build};

/// The most of a failed provider answer read (to classify it and say why in our 503).
const MAX_ERROR_BODY: usize = 64 << 10;

/// The request as every attempt sends it.
pub enum Payload {
    /// An OpenAI JSON request whose model each provider's replaces.
    Json(JsonRequest),
    /// Anything else, passed as it is.
    Raw(Bytes),
    /// A pass-through body too large to hold: sent once, as it arrives (no retry can replay it).
    Streamed {
        /// Taken by the one attempt.
        body: Mutex<Option<UpstreamBody>>,
        /// Where the client's side records its failure.
        fault: FaultSlot,
    },
}

impl Payload {
    /// The client's fault that broke a streamed body, if any.
    fn client_fault(&self) -> Option<ClientBodyFault> {
        match self {
            Self::Streamed { fault, .. } => fault.lock().ok()?.clone(),
            _ => None,
        }
    }
}

/// The attempts of one request on the providers of one backend.
pub struct Attempts<'a> {
    /// Shared context.
    pub context: &'a Arc<ProxyContext>,
    /// The backend.
    pub backend: &'a Arc<BackendRuntime>,
    /// The client's request head.
    pub parts: &'a http::request::Parts,
    /// The client's body.
    pub payload: &'a Payload,
    /// The client's request as a chat completion, for providers that do not speak its API.
    pub as_chat: Option<&'a ChatRequest>,
    /// The request's operation, classified once on arrival.
    pub operation: Operation,
    /// When the whole request must be over.
    pub deadline: Instant,
    /// The whole request's timeout (the rule's, else the backend's), for the 504's message.
    pub request_timeout: Duration,
    /// The rule's `timeouts.backendRequest`: one attempt's timeout, replacing the provider's.
    pub attempt_timeout: Option<Duration>,
}

/// Why the last attempt failed, for the final answer.
struct LastFailure {
    provider: Arc<str>,
    failure: Failure,
    detail: String,
}

/// The outcome of one attempt.
enum Attempt {
    /// The answer for the client.
    Answer(Response<Box<UpstreamStream>>),
    /// A provider failure that another provider may make up for.
    Retry(Failure, String),
}

impl Attempts<'_> {
    /// Tries providers until one answers or the budget is spent.
    pub async fn run(
        &self,
        record: &mut RequestRecord,
        rng: &mut fastrand::Rng,
    ) -> Result<Response<Box<UpstreamStream>>, ProxyError> {
        let max_attempts = match self.payload {
            Payload::Streamed { .. } => 1,
            _ => self.backend.retry_attempts.saturating_add(1),
        };
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
            record.provider = Some(provider.clone());
            match self.attempt(provider, record).await? {
                Attempt::Answer(response) => return Ok(response),
                Attempt::Retry(failure, detail) => {
                    provider.report_failure(failure, &self.context.metrics, &detail);
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
    ) -> Result<Attempt, ProxyError> {
        let kind = provider.config.kind;
        let client_model = match self.payload {
            Payload::Json(json) => json.effective_model(provider.config.model.as_deref()),
            _ => None,
        };
        let served = client_api::served(self.operation, kind, client_model.unwrap_or_default())?;
        // What this provider is sent: the client's request, or the chat completion it becomes.
        let (payload, operation) = match (served, self.as_chat) {
            (Served::AsChat, Some(chat)) => {
                (chat.payload(self.payload)?, Operation::ChatCompletions)
            }
            _ => (self.payload, self.operation),
        };
        // The client's API passes to a provider that speaks it as it is, both ways.
        let as_is = served == Served::Natively
            && matches!(
                self.operation,
                Operation::Messages | Operation::CountTokens | Operation::Responses
            );
        let started = Instant::now();
        let in_flight = provider.start_request();
        let access_token = match &provider.cloud_auth {
            Some(CloudAuth::Google(tokens)) => {
                let deadline = TokioInstant::from_std(self.deadline);
                match tokio::time::timeout_at(deadline, tokens.bearer()).await {
                    Ok(Ok(bearer)) => Some(bearer),
                    Ok(Err(e)) => {
                        let failure = match e {
                            TokenError::Refused {
                                status: 400..=403, ..
                            } => Failure::CredentialsRejected,
                            _ => Failure::Connect,
                        };
                        return Ok(Attempt::Retry(failure, format!("no access token: {e}")));
                    }
                    Err(_) => {
                        return Ok(Attempt::Retry(
                            Failure::Timeout,
                            "no access token before the timeout".into(),
                        ));
                    }
                }
            }
            _ => None,
        };
        let UpstreamRequest {
            request,
            injects_usage,
            credential,
            embeddings,
        } = build(
            provider,
            self.parts,
            payload,
            operation,
            access_token,
            record.trace.as_ref(),
        )?;
        let attempt_timeout = self
            .attempt_timeout
            .unwrap_or(Duration::from_millis(provider.config.request_timeout_ms));
        let attempt_deadline = self.deadline.min(
            started
                .checked_add(attempt_timeout)
                .unwrap_or(self.deadline),
        );
        let deadline = TokioInstant::from_std(attempt_deadline);
        let verdict =
            |observed, signal| classify(observed, signal, credential, Phase::BeforeCommit);
        let response =
            match tokio::time::timeout_at(deadline, provider.client.request(request)).await {
                Err(_) => {
                    return Ok(retry(
                        verdict(Observed::TimedOut, Signal::default()),
                        "no response before the timeout".into(),
                    ));
                }
                Ok(Err(e)) => {
                    if let Some(fault) = self.payload.client_fault() {
                        return Err(client_body_error(fault));
                    }
                    return Ok(retry(
                        verdict(Observed::Unreachable, Signal::default()),
                        connect_detail(&e),
                    ));
                }
                Ok(Ok(response)) => response,
            };
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let event_stream = translate::is_event_stream(kind, content_type);
        let mut signal = Signal {
            quota_exhausted: false,
            retry_after: retry_after(response.headers()),
        };
        let gateway_key = credential == Credential::Gateway;
        if status == StatusCode::UNAUTHORIZED
            && let Some(CloudAuth::Google(tokens)) = &provider.cloud_auth
        {
            tokens.invalidate();
        }
        let observer = match verdict(Observed::Status(status.as_u16()), signal) {
            Outcome::ProviderFailure { .. } => {
                let bytes = read_limited(response.into_body(), MAX_ERROR_BODY, deadline).await;
                signal.quota_exhausted =
                    memchr::memmem::find(&bytes, b"insufficient_quota").is_some();
                let detail = format!(
                    "HTTP {status}{}",
                    error_message(&bytes)
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                );
                return Ok(retry(
                    verdict(Observed::Status(status.as_u16()), signal),
                    detail,
                ));
            }
            // 400, 404, 422, the client's own key refused ...: passed on as it is, not retried.
            Outcome::ClientFault => Observer::Unread,
            Outcome::Success if event_stream => Observer::Sse(
                SseObserver::new(injects_usage, self.context.limits.max_sse_event)
                    .with_dialect(self.operation.dialect()),
            ),
            Outcome::Success if self.operation.has_json_model() => Observer::Json(Box::default()),
            Outcome::Success => Observer::Unread,
        };
        let sse = matches!(observer, Observer::Sse(_));
        let model = client_model;
        let answer = translate::Answer {
            event_stream: sse,
            success: status.is_success(),
            aws_error_type: (kind == ProviderKind::Bedrock)
                .then(|| response.headers().get("x-amzn-errortype"))
                .flatten()
                .and_then(|v| v.to_str().ok()),
            embeddings: embeddings.as_ref(),
        };
        let limits = &self.context.limits;
        let translation = match as_is {
            // Vertex AI's own errors (in front of the publisher) are Google's, not Anthropic's:
            // they are translated, then put in the client's shape.
            true if kind == ProviderKind::VertexAi && !answer.success => {
                translate::translation(kind, &answer, model.unwrap_or_default(), limits)
            }
            true => None,
            false => translate::translation(kind, &answer, model.unwrap_or_default(), limits),
        };
        let client_stage = if as_is && translation.is_none() {
            None
        } else {
            ClientStage::of(self.operation, status, sse, limits)
        };
        let (mut head, upstream) = response.into_parts();
        let upstream = match translation {
            Some(translation) => ProviderBody::translated(upstream, translation),
            None => ProviderBody::native(upstream),
        };
        let upstream = match client_stage {
            Some(stage) => upstream.for_client(stage),
            None => upstream,
        };
        if upstream.is_translated() {
            // The body is not the provider's: its length does not hold.
            head.headers.remove(header::CONTENT_LENGTH);
            if sse {
                // Bedrock's binary event stream becomes SSE.
                head.headers.insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/event-stream"),
                );
            }
        }
        let mut stream = Box::new(UpstreamStream::new(
            StreamParts {
                upstream,
                observer,
                deadline: TokioInstant::from_std(self.deadline),
                expect_done: sse && self.operation.has_terminal_event(),
                provider: provider.clone(),
                in_flight,
            },
            self.context.clone(),
        ));
        if let Err((observed, detail)) = stream.commit().await {
            return Ok(retry(
                classify(observed, Signal::default(), credential, Phase::BeforeCommit),
                detail,
            ));
        }
        if !status.is_client_error() {
            provider.record_success(started.elapsed());
        }
        if sse {
            record.ttft = Some(record.start.elapsed());
            // The proxy may drop the usage-only chunk it asked for: the length changes.
            head.headers.remove(header::CONTENT_LENGTH);
        }
        client_headers(&mut head.headers, gateway_key);
        Ok(Attempt::Answer(Response::from_parts(head, stream)))
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
                    self.request_timeout
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

/// The client's answer when its own streamed body failed (the provider is not at fault).
fn client_body_error(fault: ClientBodyFault) -> ProxyError {
    let (status, code) = match fault {
        ClientBodyFault::Stalled(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
        ClientBodyFault::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large"),
        ClientBodyFault::Broken(_) => (StatusCode::BAD_REQUEST, "request_body_unreadable"),
    };
    ProxyError::new(status, "invalid_request_error", code, fault.to_string())
}

/// A failed attempt to retry; a verdict other than a provider failure cannot get here (only
/// failures are classified before the commit), and is retried as a connect failure if it does.
fn retry(outcome: Outcome, detail: String) -> Attempt {
    match outcome {
        Outcome::ProviderFailure { failure, .. } => Attempt::Retry(failure, detail),
        Outcome::Success | Outcome::ClientFault => Attempt::Retry(Failure::Connect, detail),
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
    Some(
        crate::access_log::client_text(message)
            .chars()
            .take(200)
            .collect(),
    )
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

/// Up to `limit` bytes of a failed answer's body, within the deadline; what arrived otherwise.
async fn read_limited(body: Incoming, limit: usize, deadline: TokioInstant) -> Bytes {
    match tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => Bytes::new(),
    }
}
