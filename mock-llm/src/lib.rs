//! `mock-llm`: a deterministic, fast upstream speaking OpenAI's, Azure OpenAI's, Anthropic's,
//! Gemini's, Amazon Bedrock's and Vertex AI's APIs for tests, benchmarks and demos, with fault
//! injection (error statuses, delays, resets, cut streams, mid-stream errors, stalls) and the
//! providers' credential checks (SigV4 on Bedrock, OAuth service-account grants on Vertex AI).
//!
//! Endpoints (the `/v1` prefix is optional):
//!
//! * `POST /v1/chat/completions`, `POST /v1/completions`: the reply is the text after
//!   `Reply with exactly:` in the last user message/prompt, else [`MockLlmConfig::reply`]; tokens
//!   are words; `stream: true` sends one word per SSE event, then `[DONE]`.
//! * `POST /v1/embeddings`: small deterministic vectors.
//! * `POST /v1/responses`: OpenAI's Responses API with the same reply rule (the last user input
//!   item). Validates the body as the API does (400 `{"error":{"message","type","param","code"}}`
//!   naming the param), answers a Response object with a `message` (`output_text`) and/or
//!   `function_call` output item (the tool rules of `/v1/messages`, for `function` tools), cuts
//!   the text at `max_output_tokens` (`status: "incomplete"`), and streams the documented
//!   `response.*` events, each with its `sequence_number` (an injected mid-stream error is an
//!   `error` event). Responses are stored unless `store: false`, so `previous_response_id` must
//!   name one this server created (400 `previous_response_not_found` otherwise) and its
//!   conversation counts toward `input_tokens`. See the `responses` module.
//! * `POST /v1/messages`: Anthropic's Messages API with the same reply rule. Requires the
//!   `anthropic-version` header, validates the body as the API does, answers text or `tool_use`
//!   (see the `messages` module for the rules), streams Anthropic's event sequence, and sends
//!   errors (injected ones too) as `{"type":"error","error":{"type":..,"message":..}}`.
//! * `POST /v1/messages/count_tokens`: Anthropic's token counting, with the same header and body
//!   checks (no `max_tokens` or sampling fields), answering `{"input_tokens":N}` counted as
//!   `/v1/messages` counts input.
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
//!   `..:batchEmbedContents`, past the same key check, answers `{"embeddings":[{"values":[..]}]}`
//!   with the embeddings route's vectors (`outputDimensionality` values, 8 by default) after
//!   validating the batch as Gemini does (at most 100 requests, each naming the URL's model).
//!   See the `embed_content` module.
//! * `POST /model/{modelId}/converse` and `POST /model/{modelId}/converse-stream`: Amazon
//!   Bedrock's Converse API with the Anthropic endpoint's turn rules (the `reply` module):
//!   Bedrock's validation (`ValidationException`), JSON answers, the binary AWS event stream, and
//!   errors as `{"message":..}` with `x-amzn-errortype`. With [`MockLlmConfig::aws`] set, every request
//!   must be SigV4-signed with those credentials (403 otherwise). See the `bedrock` module.
//! * `POST /model/{modelId}/invoke`: Bedrock's `InvokeModel` for Amazon Titan Text Embeddings
//!   (`amazon.titan-embed-text-v1`, `-v2:0`), signed as Converse is: the model's schema validated
//!   as Bedrock does, `{"embedding":[..],"inputTextTokenCount":N}` answered. See the `titan`
//!   module.
//! * `POST /token`: Google's OAuth token endpoint for service-account JWT grants; with
//!   [`MockLlmConfig::vertex_service_account`] set the JWT is verified against that key. Issued
//!   tokens are remembered ([`MockLlm::token_grants`], [`MockLlm::expire_vertex_tokens`]).
//! * `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent` (and
//!   `:streamGenerateContent`): Gemini on Vertex AI, the Gemini handlers;
//!   `.../publishers/anthropic/models/{m}:rawPredict` (and `:streamRawPredict`): Claude on Vertex
//!   AI, the Messages handlers with Vertex's body rules; `.../publishers/google/models/{m}:predict`
//!   on an embedding model: the text embeddings API (`instances` of `content`, predictions with
//!   `statistics.token_count`, see the `vertex_predict` module). With a service account configured, the
//!   bearer token must be one `/token` issued and still live (401 otherwise). See the `vertex`
//!   module.
//! * `GET /v1/models`: the configured model.
//!
//! Keys are checked on the Azure and Gemini endpoints for presence, Bedrock signatures and
//! Vertex AI tokens against the configured credentials; the credential a route accepted is
//! [`RecordedRequest::credential`], and Bedrock and Vertex AI calls are described by
//! [`RecordedRequest::bedrock`] and [`RecordedRequest::vertex`]. Elsewhere `Authorization` and
//! `x-api-key` are only recorded.
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
mod bedrock;
mod completions;
mod converse;
mod converse_reply;
mod embed_content;
mod embeddings;
mod faults;
mod gemini;
mod generate_content;
mod handlers;
mod http;
mod jwt_grant;
mod messages;
mod oauth;
mod openai;
mod percent;
mod reply;
mod response_store;
mod responses;
mod responses_api;
mod server;
mod service_account;
mod sigv4;
mod titan;
mod tokens;
mod vertex;
mod vertex_predict;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use faults::{Fault, FaultParseError};
pub use jwt_grant::CLOUD_PLATFORM;
pub use service_account::{GOOGLE_TOKEN_URI, ServiceAccountError, ServiceAccountKey};
pub use sigv4::{AwsCredentials, SERVICE as BEDROCK_SIGNING_NAME};
pub use vertex::ANTHROPIC_VERSION as VERTEX_ANTHROPIC_VERSION;

/// How long `/token`'s access tokens live by default, as Google's do.
pub const DEFAULT_VERTEX_TOKEN_TTL: Duration = Duration::from_secs(3599);

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
    /// When set, Bedrock requests must be SigV4-signed with these credentials.
    pub aws: Option<AwsCredentials>,
    /// When set, `/token` verifies JWT grants against this key and Vertex AI routes require a
    /// token it issued.
    pub vertex_service_account: Option<ServiceAccountKey>,
    /// The life (and `expires_in`) of `/token`'s access tokens.
    pub vertex_token_ttl: Duration,
}

impl Default for MockLlmConfig {
    fn default() -> Self {
        MockLlmConfig {
            name: "mock-llm".to_owned(),
            model: "mock-model".to_owned(),
            reply: None,
            chunk_delay: Duration::ZERO,
            record: true,
            aws: None,
            vertex_service_account: None,
            vertex_token_ttl: DEFAULT_VERTEX_TOKEN_TTL,
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
    /// On the Azure OpenAI, Gemini, Bedrock and Vertex AI endpoints, the credential the server
    /// accepted (`None` when none was acceptable, and on every other endpoint). Without
    /// configured credentials Bedrock and Vertex AI accept whatever signature or bearer token came.
    pub credential: Option<Credential>,
    /// On Bedrock's routes, the call as the server understood it.
    pub bedrock: Option<BedrockCall>,
    /// On Vertex AI's publisher model routes, the call as the server understood it.
    pub vertex: Option<VertexCall>,
}

/// A Bedrock request's target and signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BedrockCall {
    /// The `{modelId}` path segment, percent-decoded (a model id, an ARN, an inference profile).
    pub model_id: String,
    /// The path after the model id: `converse`, `converse-stream` or `invoke`.
    pub operation: String,
    /// The region of the request's SigV4 credential scope, when it carried a parseable one.
    pub region: Option<String>,
    /// The access key id of that scope.
    pub access_key_id: Option<String>,
}

/// A Vertex AI publisher model request's target, each part percent-decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VertexCall {
    pub project: String,
    /// The `locations/{region}` segment (`us-central1`, `global`, ...).
    pub region: String,
    /// `google` or `anthropic`.
    pub publisher: String,
    pub model: String,
    /// `generateContent`, `streamGenerateContent`, `predict`, `rawPredict` or `streamRawPredict`.
    pub method: String,
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
    /// `Authorization: Bearer TOKEN`: an Entra ID token on Azure, an OAuth token on Gemini and
    /// Vertex AI.
    Bearer,
    /// A SigV4 `Authorization: AWS4-HMAC-SHA256 ...` signature, on Bedrock.
    SigV4,
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
        let shared = Arc::new(server::Shared::new(config, addr));
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

    /// `http://127.0.0.1:PORT/token`, the OAuth token endpoint (a service-account key's
    /// `token_uri` in tests).
    pub fn token_url(&self) -> String {
        self.inner.shared.token_url.clone()
    }

    /// Access tokens `/token` has issued (successful grants), recording on or off.
    pub fn token_grants(&self) -> usize {
        self.inner.shared.tokens.grants()
    }

    /// Ends the life of every access token issued so far, as if their hour had passed: Vertex
    /// AI routes then answer 401 until the client fetches a new one.
    pub fn expire_vertex_tokens(&self) {
        self.inner.shared.tokens.expire_all();
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

/// The server's clock as Unix seconds (SigV4 dates and JWT times are in seconds).
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
