//! An Anthropic Messages event stream
//! (<https://docs.anthropic.com/en/api/messages-streaming>) as OpenAI chat completion chunks, as
//! it arrives: `message_start` opens the assistant's turn, text deltas become `content` deltas,
//! `tool_use` blocks and their `input_json_delta`s become `tool_calls` deltas, `message_delta`
//! carries the stop reason and output tokens, and `message_stop` ends with the finish reason, a
//! usage chunk and `[DONE]`. An `error` event, or an end before `message_stop`, is a broken stream
//! (the proxy then ends the client's stream with an error event). Events are bounded in size.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Value, json};

use super::response::{AnthropicUsage, finish_reason};
use crate::translate::sse::{EventSplitter, translate_events};
use crate::translate::{DONE, StreamError, write_chunk, write_data};

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: BlockStart,
    },
    ContentBlockDelta {
        index: u64,
        delta: BlockDelta,
    },
    ContentBlockStop {},
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<DeltaUsage>,
    },
    MessageStop {},
    Ping {},
    Error {
        error: ErrorBody,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStart {
    ToolUse {
        id: String,
        name: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    /// `text_delta`.
    #[serde(rename = "text_delta")]
    Text { text: String },
    /// `input_json_delta`.
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
    #[serde(other)]
    Other,
}

#[derive(Default, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct DeltaUsage {
    #[serde(default)]
    output_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

/// The most tool calls one streamed answer may open.
pub const MAX_TOOL_CALLS: usize = 1024;

/// The translation state of one stream.
pub struct StreamTranslator {
    events: EventSplitter,
    id: String,
    model: String,
    created: u64,
    usage: AnthropicUsage,
    stop_reason: Option<String>,
    /// Anthropic content block index → OpenAI tool call index.
    tool_calls: Vec<(u64, u64)>,
    stopped: bool,
}

impl StreamTranslator {
    /// A translator for a stream created at `created` (Unix seconds), events of at most
    /// `max_event` bytes.
    pub fn new(created: u64, max_event: usize) -> Self {
        Self {
            events: EventSplitter::new(max_event),
            id: String::new(),
            model: String::new(),
            created,
            usage: AnthropicUsage::default(),
            stop_reason: None,
            tool_calls: Vec::new(),
            stopped: false,
        }
    }

    /// The OpenAI SSE bytes for the next piece of the provider's stream (often none).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Bytes, StreamError> {
        translate_events(self, |t| &mut t.events, bytes, Self::event)
    }

    /// The provider's stream ended: an error unless it ended with `message_stop`.
    pub fn finish(&mut self) -> Result<(), StreamError> {
        if self.stopped {
            Ok(())
        } else {
            Err(StreamError::Truncated)
        }
    }

    /// One event's data.
    fn event(&mut self, data: &str, out: &mut BytesMut) -> Result<(), StreamError> {
        if self.stopped {
            return Ok(());
        }
        let event: Event = serde_json::from_str(data).map_err(|_| StreamError::Malformed)?;
        match event {
            Event::MessageStart { message } => {
                self.id = message.id;
                self.model = message.model;
                self.usage = message.usage;
                self.chunk(out, json!({ "role": "assistant", "content": "" }), None);
            }
            Event::ContentBlockStart {
                index,
                content_block: BlockStart::ToolUse { id, name },
            } => {
                // Each call's block index is kept for its deltas: a hostile stream must not
                // grow that list (and the lookup per delta) without bound.
                if self.tool_calls.len() >= MAX_TOOL_CALLS {
                    return Err(StreamError::TooManyToolCalls(MAX_TOOL_CALLS));
                }
                let call = self.tool_calls.len() as u64;
                self.tool_calls.push((index, call));
                self.chunk(
                    out,
                    json!({ "tool_calls": [{
                        "index": call, "id": id, "type": "function",
                        "function": { "name": name, "arguments": "" },
                    }] }),
                    None,
                );
            }
            Event::ContentBlockDelta {
                delta: BlockDelta::Text { text },
                ..
            } => self.chunk(out, json!({ "content": text }), None),
            Event::ContentBlockDelta {
                index,
                delta: BlockDelta::InputJson { partial_json },
            } => {
                if let Some(&(_, call)) = self.tool_calls.iter().find(|(i, _)| *i == index) {
                    self.chunk(
                        out,
                        json!({ "tool_calls": [{ "index": call, "function": { "arguments": partial_json } }] }),
                        None,
                    );
                }
            }
            Event::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                if let Some(tokens) = usage.and_then(|u| u.output_tokens) {
                    self.usage.output_tokens = tokens;
                }
            }
            Event::MessageStop {} => {
                self.stopped = true;
                let finish = finish_reason(self.stop_reason.as_deref());
                self.chunk(out, json!({}), Some(finish));
                let usage = json!({
                    "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model, "choices": [], "usage": self.usage.to_openai(),
                });
                write_data(out, &usage);
                out.put_slice(DONE);
            }
            Event::Error { error } => {
                return Err(StreamError::Provider {
                    kind: error.kind,
                    message: error.message,
                });
            }
            Event::ContentBlockStart { .. }
            | Event::ContentBlockDelta { .. }
            | Event::ContentBlockStop {}
            | Event::Ping {}
            | Event::Unknown => {}
        }
        Ok(())
    }

    fn chunk(&self, out: &mut BytesMut, delta: Value, finish: Option<&str>) {
        write_chunk(out, &self.id, &self.model, self.created, delta, finish);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::tests::chunks;

    const STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1,\"cache_read_input_tokens\":3}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
        "event: content_block_delta\r\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" there\"}}\r\n\r\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":9}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );

    #[test]
    fn every_event_type_becomes_openai_chunks_whatever_the_split() {
        let whole = {
            let mut t = StreamTranslator::new(5, 1 << 16);
            let out = t.feed(STREAM.as_bytes()).unwrap();
            t.finish().unwrap();
            out
        };
        // Byte by byte gives the same output.
        let mut t = StreamTranslator::new(5, 1 << 16);
        let mut split = Vec::new();
        for byte in STREAM.as_bytes() {
            split.extend_from_slice(&t.feed(&[*byte]).unwrap());
        }
        assert_eq!(split, whole.to_vec());
        assert!(whole.ends_with(b"data: [DONE]\n\n"));
        let chunks = chunks(&whole);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[0]["id"], "msg_1");
        assert_eq!(chunks[0]["model"], "claude-x");
        assert_eq!(chunks[0]["object"], "chat.completion.chunk");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello there");
        assert_eq!(
            chunks[3]["choices"][0]["delta"]["tool_calls"][0]["id"],
            "toolu_1"
        );
        assert_eq!(
            chunks[3]["choices"][0]["delta"]["tool_calls"][0]["index"],
            0
        );
        let arguments: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(arguments, "{\"city\":\"Paris\"}");
        let last = &chunks[chunks.len() - 2];
        assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
        let usage = &chunks[chunks.len() - 1];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 15, "completion_tokens": 9, "total_tokens": 24, "prompt_tokens_details": {"cached_tokens": 3}})
        );
    }

    #[test]
    fn an_error_event_or_an_early_end_breaks_the_stream() {
        let mut t = StreamTranslator::new(0, 1 << 16);
        let start = STREAM.split("event: content_block_start").next().unwrap();
        t.feed(start.as_bytes()).unwrap();
        let error = t
            .feed(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")
            .unwrap_err();
        assert_eq!(
            error,
            StreamError::Provider {
                kind: "overloaded_error".into(),
                message: "Overloaded".into()
            }
        );
        let mut t = StreamTranslator::new(0, 1 << 16);
        t.feed(start.as_bytes()).unwrap();
        assert_eq!(t.finish().unwrap_err(), StreamError::Truncated);
    }

    #[test]
    fn tool_calls_per_stream_are_bounded() {
        let mut t = StreamTranslator::new(0, 1 << 16);
        let start = STREAM.split("event: content_block_start").next().unwrap();
        t.feed(start.as_bytes()).unwrap();
        let block = |i: usize| {
            format!(
                "data: {{\"type\":\"content_block_start\",\"index\":{i},\"content_block\":{{\"type\":\"tool_use\",\"id\":\"t{i}\",\"name\":\"f\"}}}}\n\n"
            )
        };
        for i in 0..MAX_TOOL_CALLS {
            t.feed(block(i).as_bytes()).unwrap();
        }
        assert_eq!(
            t.feed(block(MAX_TOOL_CALLS).as_bytes()).unwrap_err(),
            StreamError::TooManyToolCalls(MAX_TOOL_CALLS)
        );
    }

    #[test]
    fn events_are_bounded_and_must_be_json() {
        let mut t = StreamTranslator::new(0, 64);
        assert_eq!(
            t.feed(&[b'x'; 65]).unwrap_err(),
            StreamError::EventTooLarge(64)
        );
        let mut t = StreamTranslator::new(0, 64);
        assert_eq!(
            t.feed(b"data: {nope\n\n").unwrap_err(),
            StreamError::Malformed
        );
    }
}
