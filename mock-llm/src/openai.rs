//! OpenAI wire types. Requests borrow from the body and responses borrow from the request, so a
//! chat completion costs one parse and one serialization with no intermediate `Value` tree.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

pub(crate) const CREATED: u64 = 1_700_000_000;
const REPLY_MARKER: &str = "Reply with exactly:";

#[derive(Deserialize)]
pub(crate) struct ChatRequest<'a> {
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub messages: Vec<ChatMessage<'a>>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
pub(crate) struct ChatMessage<'a> {
    #[serde(borrow, default)]
    pub role: Cow<'a, str>,
    #[serde(borrow, default)]
    pub content: Content<'a>,
}

#[derive(Deserialize)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// A message's `content`: a string, an array of parts, or absent/null (e.g. tool-call turns).
#[derive(Default)]
pub(crate) enum Content<'a> {
    #[default]
    None,
    Text(Cow<'a, str>),
    Parts(Vec<Part<'a>>),
}

#[derive(Deserialize)]
pub(crate) struct Part<'a> {
    #[serde(borrow, default)]
    pub text: Option<Cow<'a, str>>,
}

impl Content<'_> {
    fn texts(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Content::None => (None, &[][..]),
            Content::Text(t) => (Some(t.as_ref()), &[][..]),
            Content::Parts(p) => (None, p.as_slice()),
        };
        one.into_iter()
            .chain(many.iter().filter_map(|p| p.text.as_deref()))
    }
}

// Hand-written because `#[serde(untagged)]` buffers the value first, which would defeat borrowing.
impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Content<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, an array of content parts, or null")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::None)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Content::None)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(p) = seq.next_element::<Part<'a>>()? {
                    parts.push(p);
                }
                Ok(Content::Parts(parts))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl ChatRequest<'_> {
    pub fn prompt_tokens(&self) -> u32 {
        let words = self
            .messages
            .iter()
            .flat_map(|m| m.content.texts())
            .map(count_words);
        words.sum()
    }

    /// The text after `Reply with exactly:` in the last user message, if it asks for one.
    pub fn requested_reply(&self) -> Option<Cow<'_, str>> {
        let last = self.messages.iter().rev().find(|m| m.role == "user")?;
        match &last.content {
            Content::None => None,
            Content::Text(t) => requested_reply(t).map(Cow::Borrowed),
            Content::Parts(_) => {
                let joined = last.content.texts().collect::<Vec<_>>().join("\n");
                requested_reply(&joined).map(|r| Cow::Owned(r.to_owned()))
            }
        }
    }
}

pub(crate) fn requested_reply(text: &str) -> Option<&str> {
    let at = text.rfind(REPLY_MARKER)?;
    Some(text[at + REPLY_MARKER.len()..].trim())
}

pub(crate) fn count_words(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

/// Splits a reply into one piece per word, each word carrying the whitespace before it (as model
/// tokens do), so the pieces concatenate back to the reply exactly.
pub(crate) fn reply_pieces(reply: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut ws_start = None;
    let mut seen_word = false;
    for (i, c) in reply.char_indices() {
        if c.is_whitespace() {
            ws_start.get_or_insert(i);
            continue;
        }
        if let Some(ws) = ws_start.take()
            && seen_word
        {
            pieces.push(&reply[start..ws]);
            start = ws;
        }
        seen_word = true;
    }
    if start < reply.len() {
        pieces.push(&reply[start..]);
    }
    pieces
}

#[derive(Clone, Copy, Serialize)]
pub(crate) struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    pub prompt_tokens_details: PromptDetails,
    pub completion_tokens_details: CompletionDetails,
}

#[derive(Clone, Copy, Serialize)]
pub(crate) struct PromptDetails {
    pub cached_tokens: u32,
}

#[derive(Clone, Copy, Serialize)]
pub(crate) struct CompletionDetails {
    pub reasoning_tokens: u32,
}

impl Usage {
    pub fn new(prompt: u32, completion: u32) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
            prompt_tokens_details: PromptDetails { cached_tokens: 0 },
            completion_tokens_details: CompletionDetails {
                reasoning_tokens: 0,
            },
        }
    }
}

#[derive(Serialize)]
pub(crate) struct ChatCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: [ChatChoice<'a>; 1],
    pub usage: Usage,
}

#[derive(Serialize)]
pub(crate) struct ChatChoice<'a> {
    pub index: u32,
    pub message: AssistantMessage<'a>,
    pub finish_reason: &'static str,
}

#[derive(Serialize)]
pub(crate) struct AssistantMessage<'a> {
    pub role: &'static str,
    pub content: &'a str,
}

#[derive(Serialize)]
pub(crate) struct ChatChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Serialize)]
pub(crate) struct ChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    pub finish_reason: Option<&'static str>,
}

#[derive(Default, Serialize)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize)]
pub(crate) struct ErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub code: &'a str,
}

/// The error `type` and `code` OpenAI uses for a status, for injected faults.
pub(crate) fn error_kind(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => ("invalid_request_error", "invalid_request"),
        401 => ("invalid_request_error", "invalid_api_key"),
        403 => ("permission_error", "permission_denied"),
        404 => ("invalid_request_error", "not_found"),
        429 => ("rate_limit_error", "rate_limit_exceeded"),
        _ => ("server_error", "server_error"),
    }
}

#[derive(Serialize)]
pub(crate) struct ModelList<'a> {
    pub object: &'static str,
    pub data: [ModelEntry<'a>; 1],
}

#[derive(Serialize)]
pub(crate) struct ModelEntry<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}
