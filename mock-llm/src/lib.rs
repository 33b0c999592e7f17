//! `mock-llm`: a deterministic, fast upstream speaking OpenAI's, Azure OpenAI's, Anthropic's and
//! Gemini's APIs for tests, benchmarks and demos, with fault injection (error statuses, delays,
//! resets, cut streams, mid-stream errors, stalls).
//!
//! Endpoints (the `/v1` prefix is optional):
//!
//! * `POST /v1/chat/completions`, `POST /v1/completions`: the reply is the text after
//!   `Reply with exactly:` in the last user message/prompt, else [`MockLlmConfig::reply`]; tokens
//!   are words; `stream: true` sends one word per SSE event, then `[DONE]`.
//! * `POST /v1/embeddings`: small deterministic vectors.
//! * `POST /v1/messages`: Anthropic's Messages API with the same reply rule. Requires the
//!   `anthropic-version` header, validates the body as the API does, answers text or `tool_use`
//!   (see the `messages` module for the rules), streams Anthropic's event sequence, and sends
//!   errors (injected ones too) as `{"type":"error","error":{"type":..,"message":..}}`.
//! * `POST /openai/deployments/{deployment-id}/chat/completions?api-version=V` and
//!   `POST /openai/deployments/{deployment-id}/embeddings?api-version=V`: Azure OpenAI. The
//!   OpenAI bodies and answers, with the configured model as `model` (Azure reports the
//!   deployment's underlying model, whatever the body names). Requires an `api-key` header or
//!   `Authorization: Bearer` (401 otherwise) and a date-like `api-version` (400 otherwise);
//!   Azure-level errors (injected ones too) are `{"error":{"code":..,"message":..}}`. See the
//!   `azure` module.
//! * `POST /v1beta/models/{model}:generateContent` and `..:streamGenerateContent[?alt=sse]` (also
//!   under `/v1/`): Google's Gemini API with the same reply rule. Requires `x-goog-api-key`,
//!   `?key=` or `Authorization: Bearer`, validates the body as the API does, answers text,
//!   `functionCall` parts, safety blocks and `MAX_TOKENS` cuts, streams SSE with CRLF framing (or
//!   a JSON array without `alt=sse`), and sends errors (injected ones too) as
//!   `{"error":{"code":N,"message":..,"status":..}}`. See the `generate_content` module.
//! * `GET /v1/models`: the configured model.
//!
//! Keys are only checked on the Azure and Gemini endpoints, for presence; the credential they
//! accepted is [`RecordedRequest::credential`]. Elsewhere `Authorization` and `x-api-key` are only
//! recorded.
//!
//! Every request, on every endpoint, is kept for [`MockLlm::requests`] (headers and body).
//! Faults apply to every endpoint alike; see [`Fault`] and its `x-mock-fault` spec form.
//!
//! It speaks HTTP/1.1 on raw tokio sockets rather than through hyper so that faults such as a
//! connection reset or a stream cut mid-body are exactly what goes on the wire.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use agentgateway_mock_llm::{Fault, MockLlm, MockLlmConfig};
//!
//! let upstream = MockLlm::start(MockLlmConfig { name: "a".into(), ..Default::default() }).await?;
//! upstream.push_fault(Fault::status(429).with_retry_after("1")); // only the next request
//! upstream.set_fault(Some(Fault::delay(std::time::Duration::from_millis(50)))); // every request
//! // Per request, a header wins over both: `x-mock-fault: cut-after=3`.
//! println!("{} saw {} requests", upstream.url(), upstream.request_count());
//! # Ok(()) }
//! ```

mod anthropic;
mod azure;
mod completions;
mod embeddings;
mod faults;
mod gemini;
mod generate_content;
mod handlers;
mod http;
mod messages;
mod openai;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use faults::{Fault, FaultParseError};

/// The default reply when the prompt does not ask for `Reply with exactly: X`.
pub const DEFAULT_REPLY: &str = "This is a deterministic reply from mock-llm.";

/// Request header carrying a per-request fault spec; it wins over queued and instance faults.
pub const FAULT_HEADER: &str = "x-mock-fault";

/// Response header naming the instance that served the request.
pub const INSTANCE_HEADER: &str = "x-mock-llm-instance";

#[derive(Clone, Debug)]
pub struct MockLlmConfig {
    /// Sent back as `x-mock-llm-instance`, so tests can tell upstreams apart.
    pub name: String,
    /// Reported by `/v1/models` and used when a request names no model.
    pub model: String,
    /// Replaces [`DEFAULT_REPLY`].
    pub reply: Option<String>,
    /// Pause between SSE events.
    pub chunk_delay: Duration,
    /// Keep every request for [`MockLlm::requests`]; benchmarks turn it off.
    pub record: bool,
}

impl Default for MockLlmConfig {
    fn default() -> Self {
        MockLlmConfig {
            name: "mock-llm".to_owned(),
            model: "mock-model".to_owned(),
            reply: None,
            chunk_delay: Duration::ZERO,
            record: true,
        }
    }
}

/// A request as the server saw it (after de-chunking the body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The request target, including any query string.
    pub path: String,
    /// In arrival order, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// On the Azure OpenAI and Gemini endpoints, the credential the server accepted (`None` when
    /// none was acceptable, and on every other endpoint).
    pub credential: Option<Credential>,
}

/// A credential an endpoint that checks keys accepted, in the order it looks for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// Azure's `api-key` header (wins over a bearer token on Azure).
    ApiKey,
    /// Gemini's `x-goog-api-key` header.
    GoogApiKey,
    /// Gemini's `?key=` query parameter.
    QueryKey,
    /// `Authorization: Bearer TOKEN`: an Entra ID token on Azure, an OAuth token on Gemini.
    Bearer,
}

impl RecordedRequest {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// A running server. Clones share it; it shuts down when the last clone is dropped.
#[derive(Clone)]
pub struct MockLlm {
    inner: Arc<Handle>,
}

struct Handle {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    shutdown: watch::Sender<bool>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

impl MockLlm {
    /// Binds `127.0.0.1:0` and starts serving on the current tokio runtime.
    pub async fn start(config: MockLlmConfig) -> std::io::Result<MockLlm> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        MockLlm::start_on(listener, config).await
    }

    pub async fn start_on(
        listener: TcpListener,
        config: MockLlmConfig,
    ) -> std::io::Result<MockLlm> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(server::Shared::new(config));
        let (shutdown, rx) = watch::channel(false);
        tokio::spawn(server::accept_loop(listener, shared.clone(), rx));
        Ok(MockLlm {
            inner: Arc::new(Handle {
                addr,
                shared,
                shutdown,
            }),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    pub fn config(&self) -> &MockLlmConfig {
        &self.inner.shared.config
    }

    /// Sets (or clears) the fault applied to every request until changed.
    pub fn set_fault(&self, fault: Option<Fault>) {
        self.inner.shared.set_fault(fault);
    }

    /// Queues a one-shot fault; each request without an `x-mock-fault` header takes the oldest.
    pub fn push_fault(&self, fault: Fault) {
        self.inner.shared.push_fault(fault);
    }

    /// Clears both the instance fault and the queue.
    pub fn clear_faults(&self) {
        self.inner.shared.clear_faults();
    }

    /// Empty when recording is disabled.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner.shared.requests()
    }

    /// Counts requests even when recording is disabled.
    pub fn request_count(&self) -> usize {
        self.inner.shared.request_count()
    }

    pub fn clear_requests(&self) {
        self.inner.shared.clear_requests();
    }

    /// Stops accepting and closes open connections (also happens when the last clone drops).
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }
}

impl std::fmt::Debug for MockLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockLlm")
            .field("addr", &self.inner.addr)
            .field("name", &self.inner.shared.config.name)
            .finish_non_exhaustive()
    }
}
