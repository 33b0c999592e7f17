//! Providers that do not speak OpenAI's API: the request each attempt sends is translated from
//! the client's OpenAI request, and the provider's answer is translated back to OpenAI's shape
//! as it arrives ([`ProviderBody`]), below the observers that read usage and the stream's first
//! content, so retries, eviction, deadlines and usage work exactly as for an OpenAI provider.
//! OpenAI-compatible providers take none of this: their bodies pass as they are. Vertex AI
//! serves each publisher's own format (Gemini's for Google's models, Anthropic's for Claude), so
//! it reuses those translators. Embeddings translate on the kinds that have an embeddings API
//! ([`embeddings`]): Gemini, Vertex AI's Google models and Amazon Titan on Bedrock.

pub mod anthropic;
pub mod bedrock;
pub mod embeddings;
pub mod gemini;
pub mod openai_request;
pub mod sse;
pub mod vertex;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use agentgateway_crds::proxy_config::ProviderKind;

use self::anthropic::stream::StreamTranslator;
use crate::client_api::{ClientStage, ClientStageError};
use crate::limits::Limits;

/// How a provider's answer is turned into OpenAI's shape.
pub enum Translation {
    /// A Bedrock ConverseStream event stream, frame by frame.
    BedrockStream(bedrock::stream::StreamTranslator),
    /// A Bedrock Converse answer, read whole (at most `limit` bytes), then converted.
    BedrockMessage {
        /// The chat completion's `created`.
        created: u64,
        /// The model reported (Bedrock names none).
        model: String,
        /// The most bytes held.
        limit: usize,
    },
    /// An AWS error answer, read whole (at most `limit` bytes), then converted.
    BedrockError {
        /// The `x-amzn-errortype` response header.
        error_type: Option<String>,
        /// The most bytes held.
        limit: usize,
    },
    /// A Vertex AI error answer: Anthropic's shape from the Anthropic publisher, Google's from
    /// everything in front of it.
    VertexError {
        /// The most bytes held.
        limit: usize,
    },
    /// A Gemini SSE stream, chunk by chunk.
    GeminiStream(gemini::stream::StreamTranslator),
    /// A Gemini response, read whole (at most `limit` bytes), then converted.
    GeminiMessage {
        /// The chat completion's `created`.
        created: u64,
        /// The model reported when Gemini names none.
        model: String,
        /// The most bytes held.
        limit: usize,
    },
    /// A Google error answer, read whole (at most `limit` bytes), then converted.
    GeminiError {
        /// The most bytes held.
        limit: usize,
    },
    /// An event stream, event by event.
    AnthropicStream(StreamTranslator),
    /// A message, read whole (at most `limit` bytes), then converted.
    AnthropicMessage {
        /// The chat completion's `created`.
        created: u64,
        /// The most bytes held.
        limit: usize,
    },
    /// An error answer, read whole (at most `limit` bytes), then converted.
    AnthropicError {
        /// The most bytes held.
        limit: usize,
    },
    /// An embeddings answer (any provider's), read whole (at most `limit` bytes), then
    /// converted; its errors are the provider kind's error translation.
    Embeddings {
        /// What the answer must hold, as the request decided it.
        expected: embeddings::Expected,
        /// The model reported (no provider names one in its embeddings answer).
        model: String,
        /// The most bytes held.
        limit: usize,
    },
}

/// The most of an error answer held to translate it.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Whether requests to a provider of `kind` are translated from OpenAI's API.
pub fn is_translated(kind: ProviderKind) -> bool {
    !matches!(kind, ProviderKind::OpenAi | ProviderKind::AzureOpenAi)
}

/// What a provider's answer is, as far as translating it goes.
pub struct Answer<'a> {
    /// It is an event stream (SSE, or Bedrock's binary event stream).
    pub event_stream: bool,
    /// A 2xx answer.
    pub success: bool,
    /// AWS's `x-amzn-errortype` header.
    pub aws_error_type: Option<&'a str>,
    /// What an embeddings answer must hold (`None` for a chat completion).
    pub embeddings: Option<&'a embeddings::Expected>,
}

/// Whether an answer with `content_type` from a provider of `kind` is an event stream.
pub fn is_event_stream(kind: ProviderKind, content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    // Every answer passes here: compared in place, without a lower-cased copy.
    let starts_with = |prefix: &str| {
        content_type
            .trim_start()
            .as_bytes()
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    starts_with("text/event-stream")
        || (kind == ProviderKind::Bedrock && starts_with(bedrock::EVENT_STREAM_CONTENT_TYPE))
}

/// How the answer of a provider of `kind` is translated: `None` for an OpenAI-compatible one.
/// `model`: the model the request asked for (on Vertex AI it also decides the publisher).
pub fn translation(
    kind: ProviderKind,
    answer: &Answer<'_>,
    model: &str,
    limits: &Limits,
) -> Option<Translation> {
    if !is_translated(kind) {
        // OpenAI's own shape: nothing to do, not even a clock read.
        return None;
    }
    let (event_stream, success) = (answer.event_stream, answer.success);
    if success && let Some(expected) = answer.embeddings {
        return Some(Translation::Embeddings {
            expected: expected.clone(),
            model: model.to_string(),
            limit: limits.max_response_replay,
        });
    }
    let created = unix_now();
    let kind = match kind {
        ProviderKind::VertexAi if !success => {
            return Some(Translation::VertexError {
                limit: MAX_ERROR_BODY,
            });
        }
        ProviderKind::VertexAi => match vertex::publisher(model) {
            vertex::Publisher::Anthropic => ProviderKind::Anthropic,
            vertex::Publisher::Google => ProviderKind::Gemini,
        },
        kind => kind,
    };
    match kind {
        ProviderKind::OpenAi | ProviderKind::AzureOpenAi | ProviderKind::VertexAi => None,
        ProviderKind::Bedrock if success && event_stream => Some(Translation::BedrockStream(
            bedrock::stream::StreamTranslator::new(model, created, limits.max_sse_event),
        )),
        ProviderKind::Bedrock if success => Some(Translation::BedrockMessage {
            created,
            model: model.to_string(),
            limit: limits.max_response_replay,
        }),
        ProviderKind::Bedrock => Some(Translation::BedrockError {
            error_type: answer.aws_error_type.map(str::to_string),
            limit: MAX_ERROR_BODY,
        }),
        ProviderKind::Anthropic if success && event_stream => Some(Translation::AnthropicStream(
            StreamTranslator::new(created, limits.max_sse_event),
        )),
        ProviderKind::Anthropic if success => Some(Translation::AnthropicMessage {
            created,
            limit: limits.max_response_replay,
        }),
        ProviderKind::Anthropic => Some(Translation::AnthropicError {
            limit: MAX_ERROR_BODY,
        }),
        ProviderKind::Gemini if success && event_stream => Some(Translation::GeminiStream(
            gemini::stream::StreamTranslator::new(model, created, limits.max_sse_event),
        )),
        ProviderKind::Gemini if success => Some(Translation::GeminiMessage {
            created,
            model: model.to_string(),
            limit: limits.max_response_replay,
        }),
        ProviderKind::Gemini => Some(Translation::GeminiError {
            limit: MAX_ERROR_BODY,
        }),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why a provider's stream cannot be translated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StreamError {
    /// One event was larger than the limit.
    #[error("an event of the provider's stream is larger than {0} bytes")]
    EventTooLarge(usize),
    /// An event's data was not the JSON Anthropic documents.
    #[error("the provider's stream sent an event that is not valid JSON")]
    Malformed,
    /// The provider reported an error mid-stream.
    #[error("the provider's stream reported {kind}: {message}")]
    Provider {
        /// Anthropic's error type (`overloaded_error`, ...).
        kind: String,
        /// Its message.
        message: String,
    },
    /// The stream opened more tool calls than one answer may hold.
    #[error("the provider's stream opened more than {0} tool calls")]
    TooManyToolCalls(usize),
    /// The stream ended before `message_stop`.
    #[error("the provider's stream ended before message_stop")]
    Truncated,
}

/// The end of an OpenAI stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// `data: <value>` and the blank line.
pub fn write_data(out: &mut BytesMut, value: &serde_json::Value) {
    use bytes::BufMut;
    out.put_slice(b"data: ");
    // Serializing a `Value` cannot fail.
    let _ = serde_json::to_writer((&mut *out).writer(), value);
    out.put_slice(b"\n\n");
}

/// One OpenAI chat completion chunk with a single choice (`index` 0).
pub fn write_chunk(
    out: &mut BytesMut,
    id: &str,
    model: &str,
    created: u64,
    delta: serde_json::Value,
    finish: Option<&str>,
) {
    let chunk = serde_json::json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
    });
    write_data(out, &chunk);
}

/// Why a provider's body could not be read or translated.
#[derive(Debug, thiserror::Error)]
pub enum ProviderBodyError {
    /// The connection failed.
    #[error("connection error: {0}")]
    Upstream(#[from] hyper::Error),
    /// The stream broke or said it failed.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// A body read whole was larger than the limit.
    #[error("the provider's answer is larger than {0} bytes")]
    TooLarge(usize),
    /// A body read whole was not what the provider's API documents.
    #[error("the provider's answer is not a valid {0}")]
    Malformed(&'static str),
    /// The chat completion could not be turned into the client's API.
    #[error(transparent)]
    Client(#[from] ClientStageError),
}

/// A provider's response body, in OpenAI's shape, then (with a [`ClientStage`]) in the
/// client's API.
pub struct ProviderBody {
    upstream: Incoming,
    translation: Option<Translation>,
    /// A body read whole, while it is read.
    held: BytesMut,
    done: bool,
    /// The chat completion turned into the client's API.
    /// Boxed: most answers need none, and a body is moved a few times before it streams.
    client: Option<Box<ClientStage>>,
    /// An answer the client stage reads whole, while it is read.
    client_held: BytesMut,
    client_done: bool,
}

impl ProviderBody {
    /// `upstream` as it is (an OpenAI-compatible provider).
    pub fn native(upstream: Incoming) -> Self {
        Self {
            upstream,
            translation: None,
            held: BytesMut::new(),
            done: false,
            client: None,
            client_held: BytesMut::new(),
            client_done: false,
        }
    }

    /// The same body turned into the client's API by `stage`.
    pub fn for_client(self, stage: ClientStage) -> Self {
        Self {
            client: Some(Box::new(stage)),
            ..self
        }
    }

    /// `upstream` translated by `translation`.
    pub fn translated(upstream: Incoming, translation: Translation) -> Self {
        Self {
            translation: Some(translation),
            ..Self::native(upstream)
        }
    }

    /// Whether the bytes differ from the provider's (so its `content-length` does not hold).
    pub fn is_translated(&self) -> bool {
        self.translation.is_some() || self.client.is_some()
    }

    /// The next frame in the client's API: the chat completion's frames through the client
    /// stage.
    fn poll_client(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ProviderBodyError>>> {
        loop {
            if self.client_done {
                return Poll::Ready(None);
            }
            let data = match self.poll_provider(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    self.client_done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
                Poll::Ready(None) => {
                    self.client_done = true;
                    let held = std::mem::take(&mut self.client_held);
                    let Some(stage) = self.client.as_mut() else {
                        return Poll::Ready(None);
                    };
                    return Poll::Ready(match stage.finish(&held) {
                        Ok(out) if out.is_empty() => None,
                        Ok(out) => Some(Ok(Frame::data(out))),
                        Err(e) => Some(Err(e.into())),
                    });
                }
            };
            let Some(stage) = self.client.as_mut() else {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            };
            match stage.feed(&data) {
                Some(Ok(out)) if out.is_empty() => {}
                Some(Ok(out)) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                Some(Err(e)) => {
                    self.client_done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
                None => {
                    let limit = stage.hold_limit();
                    if self.client_held.len() + data.len() > limit {
                        self.client_done = true;
                        return Poll::Ready(Some(Err(ProviderBodyError::TooLarge(limit))));
                    }
                    self.client_held.extend_from_slice(&data);
                }
            }
        }
    }

    /// The whole held body, converted, once the provider's body ended.
    fn convert_held(&mut self) -> Result<Bytes, ProviderBodyError> {
        let held = std::mem::take(&mut self.held);
        match &self.translation {
            Some(Translation::AnthropicMessage { created, .. }) => {
                anthropic::response::to_chat_completion(&held, *created)
                    .map(Bytes::from)
                    .ok_or(ProviderBodyError::Malformed("Anthropic message"))
            }
            Some(Translation::AnthropicError { .. }) => {
                Ok(Bytes::from(anthropic::response::to_openai_error(&held)))
            }
            Some(Translation::GeminiMessage { created, model, .. }) => {
                gemini::response::to_chat_completion(&held, model, *created)
                    .map(Bytes::from)
                    .ok_or(ProviderBodyError::Malformed("Gemini response"))
            }
            Some(Translation::GeminiError { .. }) => {
                Ok(Bytes::from(gemini::response::to_openai_error(&held)))
            }
            Some(Translation::BedrockMessage { created, model, .. }) => {
                bedrock::response::to_chat_completion(&held, model, *created)
                    .map(Bytes::from)
                    .ok_or(ProviderBodyError::Malformed("Bedrock Converse answer"))
            }
            Some(Translation::BedrockError { error_type, .. }) => Ok(Bytes::from(
                bedrock::response::to_openai_error(&held, error_type.as_deref()),
            )),
            Some(Translation::VertexError { .. }) => {
                Ok(Bytes::from(vertex::to_openai_error(&held)))
            }
            Some(Translation::Embeddings {
                expected, model, ..
            }) => embeddings::to_openai(&held, model, expected)
                .map(Bytes::from)
                .ok_or(ProviderBodyError::Malformed(expected.api.answer_name())),
            _ => Ok(held.freeze()),
        }
    }
}

impl Body for ProviderBody {
    type Data = Bytes;
    type Error = ProviderBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ProviderBodyError>>> {
        let this = &mut *self;
        if this.client.is_some() {
            return this.poll_client(cx);
        }
        this.poll_provider(cx)
    }

    fn is_end_stream(&self) -> bool {
        match (&self.client, &self.translation) {
            (Some(_), _) => self.client_done,
            (None, None) => self.upstream.is_end_stream(),
            (None, Some(_)) => self.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.is_translated() {
            SizeHint::default()
        } else {
            self.upstream.size_hint()
        }
    }
}

impl ProviderBody {
    /// The next frame in OpenAI's shape: the provider's, translated when it speaks another API.
    fn poll_provider(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ProviderBodyError>>> {
        let this = self;
        if this.translation.is_none() {
            return Pin::new(&mut this.upstream)
                .poll_frame(cx)
                .map_err(ProviderBodyError::from);
        }
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut this.upstream).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(None) => {
                    this.done = true;
                    return Poll::Ready(match &mut this.translation {
                        Some(Translation::AnthropicStream(stream)) => {
                            stream.finish().err().map(|e| Err(e.into()))
                        }
                        // Gemini sends no terminal event: its end is where the last chunks go.
                        Some(Translation::GeminiStream(stream)) => Some(
                            stream
                                .finish()
                                .map(Frame::data)
                                .map_err(ProviderBodyError::from),
                        ),
                        Some(Translation::BedrockStream(stream)) => match stream.finish() {
                            Ok(out) if out.is_empty() => None,
                            Ok(out) => Some(Ok(Frame::data(out))),
                            Err(e) => Some(Err(e.into())),
                        },
                        _ => Some(this.convert_held().map(Frame::data)),
                    });
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            match &mut this.translation {
                Some(Translation::AnthropicStream(stream)) => match stream.feed(&data) {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                    Err(e) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                },
                Some(Translation::GeminiStream(stream)) => match stream.feed(&data) {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                    Err(e) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                },
                Some(Translation::BedrockStream(stream)) => match stream.feed(&data) {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Poll::Ready(Some(Ok(Frame::data(out)))),
                    Err(e) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                },
                Some(
                    Translation::AnthropicMessage { limit, .. }
                    | Translation::AnthropicError { limit }
                    | Translation::GeminiMessage { limit, .. }
                    | Translation::GeminiError { limit }
                    | Translation::BedrockMessage { limit, .. }
                    | Translation::BedrockError { limit, .. }
                    | Translation::VertexError { limit }
                    | Translation::Embeddings { limit, .. },
                ) => {
                    if this.held.len() + data.len() > *limit {
                        this.done = true;
                        return Poll::Ready(Some(Err(ProviderBodyError::TooLarge(*limit))));
                    }
                    this.held.extend_from_slice(&data);
                }
                None => return Poll::Ready(Some(Ok(Frame::data(data)))),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::Value;

    #[test]
    fn event_streams_are_recognized_by_content_type_in_any_case() {
        use super::{ProviderKind, is_event_stream};
        let sse = |ct| is_event_stream(ProviderKind::OpenAi, Some(ct));
        assert!(sse("text/event-stream"));
        assert!(sse(" Text/Event-Stream; charset=utf-8"));
        assert!(!sse("text/event"));
        assert!(!sse("application/json"));
        assert!(!is_event_stream(ProviderKind::OpenAi, None));
        let eventstream = "application/vnd.amazon.eventstream";
        assert!(is_event_stream(ProviderKind::Bedrock, Some(eventstream)));
        assert!(
            !sse(eventstream),
            "only Bedrock's answers use AWS's event stream"
        );
    }

    /// The JSON chunks of translated OpenAI SSE bytes (`[DONE]` left out).
    pub(crate) fn chunks(out: &[u8]) -> Vec<Value> {
        std::str::from_utf8(out)
            .unwrap()
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }
}
