//! Providers that do not speak OpenAI's API: the request each attempt sends is translated from
//! the client's OpenAI request, and the provider's answer is translated back to OpenAI's shape
//! as it arrives ([`ProviderBody`]), below the observers that read usage and the stream's first
//! content, so retries, eviction, deadlines and usage work exactly as for an OpenAI provider.
//! OpenAI-compatible providers take none of this: their bodies pass as they are.

pub mod anthropic;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use agentgateway_crds::proxy_config::ProviderKind;

use self::anthropic::stream::{StreamError, StreamTranslator};
use crate::limits::Limits;

/// How a provider's answer is turned into OpenAI's shape.
pub enum Translation {
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
}

/// The most of an error answer held to translate it.
const MAX_ERROR_BODY: usize = 64 << 10;

/// How the answer of a provider of `kind` is translated: `None` for an OpenAI-compatible one.
/// `event_stream`: the answer is an event stream; `success`: a 2xx answer.
pub fn translation(
    kind: ProviderKind,
    event_stream: bool,
    success: bool,
    limits: &Limits,
) -> Option<Translation> {
    match kind {
        ProviderKind::OpenAi | ProviderKind::AzureOpenAi => None,
        ProviderKind::Anthropic if success && event_stream => Some(Translation::AnthropicStream(
            StreamTranslator::new(unix_now(), limits.max_sse_event),
        )),
        ProviderKind::Anthropic if success => Some(Translation::AnthropicMessage {
            created: unix_now(),
            limit: limits.max_response_replay,
        }),
        ProviderKind::Anthropic => Some(Translation::AnthropicError {
            limit: MAX_ERROR_BODY,
        }),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
}

/// A provider's response body, in OpenAI's shape.
pub struct ProviderBody {
    upstream: Incoming,
    translation: Option<Translation>,
    /// A body read whole, while it is read.
    held: BytesMut,
    done: bool,
}

impl ProviderBody {
    /// `upstream` as it is (an OpenAI-compatible provider).
    pub fn native(upstream: Incoming) -> Self {
        Self {
            upstream,
            translation: None,
            held: BytesMut::new(),
            done: false,
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
        self.translation.is_some()
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
                    if let Some(Translation::AnthropicStream(stream)) = &mut this.translation {
                        return Poll::Ready(stream.finish().err().map(|e| Err(e.into())));
                    }
                    return Poll::Ready(Some(this.convert_held().map(Frame::data)));
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
                Some(
                    Translation::AnthropicMessage { limit, .. }
                    | Translation::AnthropicError { limit },
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

    fn is_end_stream(&self) -> bool {
        match self.translation {
            None => self.upstream.is_end_stream(),
            Some(_) => self.done,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.translation {
            None => self.upstream.size_hint(),
            Some(_) => SizeHint::default(),
        }
    }
}
