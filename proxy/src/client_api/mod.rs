//! The APIs clients speak besides OpenAI chat completions: Anthropic Messages
//! ([`messages`]) and OpenAI Responses ([`responses`]). A provider that speaks the client's API
//! natively gets the request as it is (Anthropic and Claude on Vertex AI for messages, OpenAI for
//! responses); every other provider gets it as a chat completion ([`ChatRequest`]), and the chat
//! completion that comes back (already in OpenAI's shape, whatever the provider) is turned into
//! the client's API by a [`ClientStage`] before the proxy reads it for usage, so usage, the
//! stream's commit point and its terminal event are judged on what the client receives.

pub mod messages;
pub mod responses;

use std::sync::OnceLock;

use agentgateway_crds::proxy_config::ProviderKind;
use bytes::Bytes;
use http::StatusCode;

use crate::attempts::Payload;
use crate::limits::Limits;
use crate::openai::error::ProxyError;
use crate::openai::operation::Operation;
use crate::openai::request::JsonRequest;
use crate::translate::{StreamError, vertex};

/// How one attempt serves the client's operation on one provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// In the client's own API (chat completions always are, the provider translating them if
    /// it must).
    Natively,
    /// As a chat completion, the answer turned back into the client's API.
    AsChat,
}

/// How `operation` is served on a provider of `kind` for `model` (on Vertex AI the model picks
/// the publisher). Token counting exists on Anthropic's API only: elsewhere it is a `404`.
pub fn served(operation: Operation, kind: ProviderKind, model: &str) -> Result<Served, ProxyError> {
    let native = match operation {
        Operation::Messages => {
            kind == ProviderKind::Anthropic
                || (kind == ProviderKind::VertexAi
                    && vertex::publisher(model) == vertex::Publisher::Anthropic)
        }
        Operation::CountTokens if kind == ProviderKind::Anthropic => true,
        Operation::CountTokens => {
            return Err(ProxyError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "unsupported_operation",
                format!(
                    "count_tokens is served by anthropic providers only; this backend's provider is {}",
                    kind.as_str()
                ),
            ));
        }
        Operation::Responses => kind == ProviderKind::OpenAi,
        _ => true,
    };
    Ok(if native {
        Served::Natively
    } else {
        Served::AsChat
    })
}

/// The client's request as a chat completion, made at most once per request, by the first
/// attempt on a provider that does not speak the client's API (a request every provider takes
/// as it is is never translated). A request chat completions cannot express is an error only
/// when such a provider is tried.
pub struct ChatRequest {
    translate: fn(&serde_json::Value) -> Result<serde_json::Value, ProxyError>,
    chat: OnceLock<Result<Payload, ProxyError>>,
}

impl ChatRequest {
    /// The translation of a Messages or Responses request; `None` for other operations.
    pub fn of(operation: Operation) -> Option<Self> {
        let translate = match operation {
            Operation::Messages => messages::request::to_chat_request,
            Operation::Responses => responses::request::to_chat_request,
            _ => return None,
        };
        Some(Self {
            translate,
            chat: OnceLock::new(),
        })
    }

    /// The chat completion request for the client's `payload`, or why it has none.
    pub fn payload(&self, payload: &Payload) -> Result<&Payload, ProxyError> {
        self.chat
            .get_or_init(|| self.translated(payload))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn translated(&self, payload: &Payload) -> Result<Payload, ProxyError> {
        let Payload::Json(json) = payload else {
            return Err(ProxyError::bad_request(
                "invalid_json",
                "the request body is not a JSON object",
            ));
        };
        let request = serde_json::from_slice::<serde_json::Value>(json.body()).map_err(|e| {
            ProxyError::bad_request(
                "invalid_json",
                format!("the request body is not a valid JSON object: {e}"),
            )
        })?;
        let chat = (self.translate)(&request)?;
        let bytes = serde_json::to_vec(&chat).map_err(|e| {
            ProxyError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "translation_failed",
                format!("failed to encode the chat completion request: {e}"),
            )
        })?;
        JsonRequest::parse(Bytes::from(bytes)).map(Payload::Json)
    }
}

/// Turns a chat completion answer into the client's API, as it arrives.
pub enum ClientStage {
    /// A chat completion stream as Anthropic's event stream.
    MessagesStream(messages::stream::StreamTranslator),
    /// A chat completion, read whole (at most `limit` bytes), as an Anthropic message.
    MessagesJson {
        /// The most bytes held.
        limit: usize,
    },
    /// An OpenAI-shaped error answer, read whole (at most `limit` bytes), as Anthropic's.
    MessagesError {
        /// The answer's status, which picks Anthropic's error type.
        status: u16,
        /// The most bytes held.
        limit: usize,
    },
    /// An OpenAI-compatible error answer, read whole (at most `limit` bytes), in exactly
    /// OpenAI's error shape (Azure's lacks `type` and `param`).
    ResponsesError {
        /// The answer's status, which picks the type when the body names none.
        status: u16,
        /// The most bytes held.
        limit: usize,
    },
    /// A chat completion stream as Responses events.
    ResponsesStream(responses::stream::StreamTranslator),
    /// A chat completion, read whole (at most `limit` bytes), as a Response.
    ResponsesJson {
        /// The Response's `created_at`.
        created_at: u64,
        /// The most bytes held.
        limit: usize,
    },
}

/// The most of an error answer held to translate it.
const MAX_ERROR_BODY: usize = 64 << 10;

impl ClientStage {
    /// The stage an answer with `status` (an event stream or not) to `operation` needs; `None`
    /// for an operation of OpenAI's chat API.
    pub fn of(
        operation: Operation,
        status: StatusCode,
        event_stream: bool,
        limits: &Limits,
    ) -> Option<Self> {
        let success = status.is_success();
        match operation {
            Operation::Messages | Operation::CountTokens if !success => Some(Self::MessagesError {
                status: status.as_u16(),
                limit: MAX_ERROR_BODY,
            }),
            Operation::Messages if event_stream => Some(Self::MessagesStream(
                messages::stream::StreamTranslator::new(limits.max_sse_event),
            )),
            Operation::Messages => Some(Self::MessagesJson {
                limit: limits.max_response_replay,
            }),
            Operation::Responses if !success => Some(Self::ResponsesError {
                status: status.as_u16(),
                limit: MAX_ERROR_BODY,
            }),
            Operation::Responses if event_stream => Some(Self::ResponsesStream(
                responses::stream::StreamTranslator::new(unix_now(), limits.max_sse_event),
            )),
            Operation::Responses => Some(Self::ResponsesJson {
                created_at: unix_now(),
                limit: limits.max_response_replay,
            }),
            _ => None,
        }
    }

    /// The bytes of a streamed answer, translated as far as they go; `None` for an answer read
    /// whole (then [`ClientStage::hold_limit`] bounds what is held).
    pub fn feed(&mut self, bytes: &[u8]) -> Option<Result<Bytes, StreamError>> {
        match self {
            Self::MessagesStream(stream) => Some(stream.feed(bytes)),
            Self::ResponsesStream(stream) => Some(stream.feed(bytes)),
            _ => None,
        }
    }

    /// The most bytes of an answer read whole.
    pub fn hold_limit(&self) -> usize {
        match self {
            Self::MessagesJson { limit }
            | Self::MessagesError { limit, .. }
            | Self::ResponsesError { limit, .. }
            | Self::ResponsesJson { limit, .. } => *limit,
            Self::MessagesStream(_) | Self::ResponsesStream(_) => usize::MAX,
        }
    }

    /// The end: a stream's last events, or the whole answer converted.
    pub fn finish(&mut self, held: &[u8]) -> Result<Bytes, ClientStageError> {
        match self {
            Self::MessagesStream(stream) => stream.finish().map_err(ClientStageError::Stream),
            Self::ResponsesStream(stream) => stream.finish().map_err(ClientStageError::Stream),
            Self::MessagesJson { .. } => messages::response::to_message(held)
                .map(Bytes::from)
                .ok_or(ClientStageError::Malformed),
            Self::MessagesError { status, .. } => Ok(Bytes::from(
                messages::response::to_anthropic_error(held, *status),
            )),
            Self::ResponsesError { status, .. } => Ok(Bytes::from(
                responses::error::to_openai_error(held, *status),
            )),
            Self::ResponsesJson { created_at, .. } => {
                responses::response::to_response(held, *created_at)
                    .map(Bytes::from)
                    .ok_or(ClientStageError::Malformed)
            }
        }
    }
}

/// Why an answer could not be turned into the client's API.
#[derive(Debug, thiserror::Error)]
pub enum ClientStageError {
    /// The chat completion stream broke or said it failed.
    #[error(transparent)]
    Stream(StreamError),
    /// The answer read whole was not a chat completion.
    #[error("the provider's answer is not a valid chat completion")]
    Malformed,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
