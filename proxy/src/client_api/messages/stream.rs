//! An OpenAI chat completion stream (`data: {chunk}` events ending with a usage chunk and
//! `data: [DONE]`) as an Anthropic Messages event stream
//! (<https://docs.anthropic.com/en/api/messages-streaming>), as it arrives:
//!
//! - the first chunk opens the message (`message_start`, with usage 0: the counts are known
//!   only at the end);
//! - content deltas become content blocks (`content_block_start`, `content_block_delta`,
//!   `content_block_stop`, with increasing indexes): text as `text_delta`s, each tool call as a
//!   `tool_use` block with `input_json_delta`s; a chunk with no content (the role-only first
//!   chunk) opens none, so the client's stream is committed on real content;
//! - `[DONE]` ends it with `message_delta` (stop reason and usage, see [`super::response`])
//!   and `message_stop`.
//!
//! Anthropic's blocks follow one another, one open at a time, while chat completions may
//! interleave the arguments of several tool calls. So the first tool call streams live and its
//! block stays open until the answer ends (more of its arguments may come); what arrives
//! meanwhile for other blocks (later tool calls, text) is held, and written after it, in order,
//! each block whole. What is held is bounded like one event (`max_event` bytes in all).
//! Reasoning deltas (`reasoning_content`) are dropped, as in [`super::response`].
//!
//! An error chunk, an event over the limit, or an end before `[DONE]` is a broken stream.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::{Value, json};

use super::response::{ChatUsage, message_id, stop_reason};
use crate::translate::StreamError;
use crate::translate::anthropic::stream::MAX_TOOL_CALLS;
use crate::translate::sse::{EventSplitter, translate_events};

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<ChatUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Default, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Default, Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// The block open in the output.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    /// A text block.
    Text,
    /// The `tool_use` block of the tool call with this key.
    Tool(u64),
}

/// A block held until the open tool call's block ends.
enum Held {
    /// Text.
    Text(String),
    /// A tool call.
    Tool {
        /// Its key (OpenAI's `index`).
        key: u64,
        /// Its id.
        id: String,
        /// Its function's name.
        name: String,
        /// Its arguments so far.
        arguments: String,
    },
}

/// The translation state of one stream.
pub struct StreamTranslator {
    events: EventSplitter,
    /// The most bytes held (see [`Held`]).
    max_held: usize,
    /// `message_start` was written.
    started: bool,
    /// The block open in the output, and its index.
    open: Option<Open>,
    /// The index of the next block.
    next_index: u64,
    /// The key of every tool call seen, in order (bounded by [`MAX_TOOL_CALLS`]).
    calls: Vec<u64>,
    /// Blocks waiting for the open tool call's block to end.
    held: Vec<Held>,
    /// The bytes of text and arguments in `held`.
    held_bytes: usize,
    finish_reason: Option<String>,
    /// The model refused (a `refusal` delta).
    refused: bool,
    usage: ChatUsage,
    /// `[DONE]` was seen and the message ended.
    done: bool,
}

impl StreamTranslator {
    /// A translator for events of at most `max_event` bytes.
    pub fn new(max_event: usize) -> Self {
        Self {
            events: EventSplitter::new(max_event),
            max_held: max_event,
            started: false,
            open: None,
            next_index: 0,
            calls: Vec::new(),
            held: Vec::new(),
            held_bytes: 0,
            finish_reason: None,
            refused: false,
            usage: ChatUsage::default(),
            done: false,
        }
    }

    /// The Anthropic events for the next piece of the provider's stream (often none).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Bytes, StreamError> {
        translate_events(self, |t| &mut t.events, bytes, Self::event)
    }

    /// The provider's stream ended: nothing more to write after `[DONE]`, an error before it.
    pub fn finish(&mut self) -> Result<Bytes, StreamError> {
        if self.done {
            Ok(Bytes::new())
        } else {
            Err(StreamError::Truncated)
        }
    }

    /// One event's data.
    fn event(&mut self, data: &str, out: &mut BytesMut) -> Result<(), StreamError> {
        if self.done {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            return self.end(out);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|_| StreamError::Malformed)?;
        if let Some(error) = chunk.error.filter(|e| !e.is_null()) {
            return Err(provider_error(&error));
        }
        if !self.started {
            self.start(out, chunk.id.as_deref(), chunk.model.as_deref());
        }
        if let Some(usage) = chunk.usage {
            self.usage = usage;
        }
        // The request asks for one choice: any other is not part of the answer.
        for choice in chunk.choices.unwrap_or_default() {
            if choice.index != 0 {
                continue;
            }
            let delta = choice.delta.unwrap_or_default();
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                self.text(text, out)?;
            }
            if let Some(refusal) = delta.refusal.filter(|t| !t.is_empty()) {
                self.refused = true;
                self.text(refusal, out)?;
            }
            for call in delta.tool_calls.unwrap_or_default() {
                self.tool_call(call, out)?;
            }
            if let Some(finish) = choice.finish_reason {
                // The content is complete: its blocks end now, before the usage chunk.
                self.finish_reason = Some(finish);
                self.close(out);
            }
        }
        Ok(())
    }

    /// `message_start`.
    fn start(&mut self, out: &mut BytesMut, id: Option<&str>, model: Option<&str>) {
        self.started = true;
        write_event(
            out,
            "message_start",
            &json!({
                "type": "message_start",
                "message": {
                    "id": message_id(id.unwrap_or_default()),
                    "type": "message",
                    "role": "assistant",
                    "model": model.unwrap_or_default(),
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": { "input_tokens": 0, "output_tokens": 0 },
                },
            }),
        );
    }

    /// A text delta: into the open text block, or a new one, or held while a tool call's block
    /// is open.
    fn text(&mut self, text: String, out: &mut BytesMut) -> Result<(), StreamError> {
        match self.open {
            Some(Open::Text) => self.text_delta(out, &text),
            Some(Open::Tool(_)) => {
                self.hold(text.len())?;
                match self.held.last_mut() {
                    Some(Held::Text(held)) => held.push_str(&text),
                    _ => self.held.push(Held::Text(text)),
                }
            }
            None => {
                self.block_start(out, Open::Text, json!({ "type": "text", "text": "" }));
                self.text_delta(out, &text);
            }
        }
        Ok(())
    }

    /// A tool call delta. Its key is OpenAI's `index`; a provider that leaves the index out
    /// sends each call whole, so a new id is a new call and anything else continues the last.
    fn tool_call(&mut self, call: ToolCallDelta, out: &mut BytesMut) -> Result<(), StreamError> {
        let function = call.function.unwrap_or_default();
        let arguments = function.arguments.unwrap_or_default();
        let key = match call.index {
            Some(index) => index,
            None => match (&call.id, self.calls.last()) {
                (None, Some(&last)) => last,
                // A key no provider index reaches, one per call.
                _ => u64::MAX - self.calls.len() as u64,
            },
        };
        if self.calls.contains(&key) {
            return self.arguments(key, arguments, out);
        }
        // Each call's key is kept (and searched per delta): a hostile stream must not grow that
        // list without bound.
        if self.calls.len() >= MAX_TOOL_CALLS {
            return Err(StreamError::TooManyToolCalls(MAX_TOOL_CALLS));
        }
        // Anthropic clients answer a call by its id: one is made when the provider gave none.
        let id = call
            .id
            .unwrap_or_else(|| format!("toolu_{}", self.calls.len()));
        self.calls.push(key);
        let name = function.name.unwrap_or_default();
        match self.open {
            Some(Open::Tool(_)) => {
                self.hold(id.len() + name.len() + arguments.len())?;
                self.held.push(Held::Tool {
                    key,
                    id,
                    name,
                    arguments,
                });
            }
            open => {
                // A text block can end any time: more text goes in a new block.
                if open == Some(Open::Text) {
                    self.block_stop(out);
                }
                self.tool_start(out, key, &id, &name);
                if !arguments.is_empty() {
                    self.json_delta(out, &arguments);
                }
            }
        }
        Ok(())
    }

    /// More arguments of the tool call with `key`: live into its open block, or held.
    fn arguments(
        &mut self,
        key: u64,
        arguments: String,
        out: &mut BytesMut,
    ) -> Result<(), StreamError> {
        if arguments.is_empty() {
            return Ok(());
        }
        if self.open == Some(Open::Tool(key)) {
            self.json_delta(out, &arguments);
            return Ok(());
        }
        self.hold(arguments.len())?;
        let held = self.held.iter_mut().find_map(|held| match held {
            Held::Tool {
                key: k, arguments, ..
            } if *k == key => Some(arguments),
            _ => None,
        });
        match held {
            Some(held) => {
                held.push_str(&arguments);
                Ok(())
            }
            // The call's block already ended (arguments after its finish_reason).
            None => Err(StreamError::Malformed),
        }
    }

    /// Counts `bytes` more held.
    fn hold(&mut self, bytes: usize) -> Result<(), StreamError> {
        self.held_bytes = self.held_bytes.saturating_add(bytes);
        if self.held_bytes > self.max_held {
            return Err(StreamError::EventTooLarge(self.max_held));
        }
        Ok(())
    }

    /// Ends the open block, then writes every held block whole.
    fn close(&mut self, out: &mut BytesMut) {
        if self.open.is_some() {
            self.block_stop(out);
        }
        for held in std::mem::take(&mut self.held) {
            match held {
                Held::Text(text) => {
                    self.block_start(out, Open::Text, json!({ "type": "text", "text": "" }));
                    self.text_delta(out, &text);
                }
                Held::Tool {
                    key,
                    id,
                    name,
                    arguments,
                } => {
                    self.tool_start(out, key, &id, &name);
                    if !arguments.is_empty() {
                        self.json_delta(out, &arguments);
                    }
                }
            }
            self.block_stop(out);
        }
        self.held_bytes = 0;
    }

    /// `[DONE]`: the blocks end, then the message, with the stop reason and the usage.
    fn end(&mut self, out: &mut BytesMut) -> Result<(), StreamError> {
        if !self.started {
            self.start(out, None, None);
        }
        self.close(out);
        let stop_reason = if self.refused {
            "refusal"
        } else {
            stop_reason(self.finish_reason.as_deref(), !self.calls.is_empty())
        };
        write_event(
            out,
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": { "stop_reason": stop_reason, "stop_sequence": null },
                "usage": self.usage.to_anthropic(),
            }),
        );
        write_event(out, "message_stop", &json!({ "type": "message_stop" }));
        self.done = true;
        Ok(())
    }

    fn block_start(&mut self, out: &mut BytesMut, open: Open, block: Value) {
        self.open = Some(open);
        write_event(
            out,
            "content_block_start",
            &json!({ "type": "content_block_start", "index": self.next_index, "content_block": block }),
        );
    }

    fn tool_start(&mut self, out: &mut BytesMut, key: u64, id: &str, name: &str) {
        self.block_start(
            out,
            Open::Tool(key),
            json!({ "type": "tool_use", "id": id, "name": name, "input": {} }),
        );
    }

    fn text_delta(&self, out: &mut BytesMut, text: &str) {
        self.delta(out, json!({ "type": "text_delta", "text": text }));
    }

    fn json_delta(&self, out: &mut BytesMut, partial: &str) {
        self.delta(
            out,
            json!({ "type": "input_json_delta", "partial_json": partial }),
        );
    }

    fn delta(&self, out: &mut BytesMut, delta: Value) {
        write_event(
            out,
            "content_block_delta",
            &json!({ "type": "content_block_delta", "index": self.next_index, "delta": delta }),
        );
    }

    fn block_stop(&mut self, out: &mut BytesMut) {
        write_event(
            out,
            "content_block_stop",
            &json!({ "type": "content_block_stop", "index": self.next_index }),
        );
        self.open = None;
        self.next_index += 1;
    }
}

/// The stream error for an OpenAI error object (`{"message", "type", "code"}`, or a string).
fn provider_error(error: &Value) -> StreamError {
    let field = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_string);
    StreamError::Provider {
        kind: field("type")
            .or_else(|| field("code"))
            .unwrap_or_else(|| "error".to_string()),
        message: field("message")
            .or_else(|| error.as_str().map(str::to_string))
            .unwrap_or_else(|| error.to_string()),
    }
}

/// `event: <kind>`, `data: <value>` and the blank line.
fn write_event(out: &mut BytesMut, kind: &str, value: &Value) {
    out.put_slice(b"event: ");
    out.put_slice(kind.as_bytes());
    out.put_slice(b"\ndata: ");
    // Serializing a `Value` cannot fail.
    let _ = serde_json::to_writer((&mut *out).writer(), value);
    out.put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OpenAI SSE stream of these chunks, then `[DONE]`.
    fn stream(chunks: &[Value]) -> String {
        let mut out = String::new();
        for chunk in chunks {
            out.push_str(&format!("data: {chunk}\n\n"));
        }
        out.push_str("data: [DONE]\n\n");
        out
    }

    /// A chunk with this delta (and finish reason).
    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    }

    fn usage_chunk() -> Value {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x",
            "choices": [],
            "usage": {"prompt_tokens": 120, "completion_tokens": 7, "total_tokens": 127, "prompt_tokens_details": {"cached_tokens": 100}},
        })
    }

    /// The (event name, data) pairs of Anthropic SSE bytes, checking each event's name is its
    /// data's type.
    fn events(out: &[u8]) -> Vec<Value> {
        std::str::from_utf8(out)
            .unwrap()
            .split_terminator("\n\n")
            .map(|event| {
                let (name, data) = event.split_once('\n').unwrap();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(name.strip_prefix("event: ").unwrap(), data["type"]);
                data
            })
            .collect()
    }

    /// The whole translation of `input`, checking byte-at-a-time feeding gives the same.
    fn translate(input: &str) -> Vec<u8> {
        let mut whole = StreamTranslator::new(1 << 16);
        let mut out = whole.feed(input.as_bytes()).unwrap().to_vec();
        out.extend_from_slice(&whole.finish().unwrap());
        let mut split = StreamTranslator::new(1 << 16);
        let mut bytewise = Vec::new();
        for byte in input.as_bytes() {
            bytewise.extend_from_slice(&split.feed(&[*byte]).unwrap());
        }
        bytewise.extend_from_slice(&split.finish().unwrap());
        assert_eq!(
            String::from_utf8_lossy(&bytewise),
            String::from_utf8_lossy(&out)
        );
        out
    }

    #[test]
    fn text_becomes_one_text_block_and_usage_comes_at_the_end() {
        let input = stream(&[
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"content": "Hello"}), None),
            chunk(
                json!({"content": " there", "reasoning_content": "dropped"}),
                None,
            ),
            chunk(json!({}), Some("stop")),
            usage_chunk(),
        ]);
        assert_eq!(
            events(&translate(&input)),
            vec![
                json!({"type": "message_start", "message": {
                    "id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-x",
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                }}),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " there"}}),
                json!({"type": "content_block_stop", "index": 0}),
                json!({"type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                    "usage": {"input_tokens": 20, "output_tokens": 7, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0}}),
                json!({"type": "message_stop"}),
            ]
        );
    }

    #[test]
    fn a_role_only_chunk_opens_the_message_but_no_block() {
        let mut t = StreamTranslator::new(1 << 16);
        let first = stream(&[chunk(json!({"role": "assistant", "content": ""}), None)]);
        let first = first.strip_suffix("data: [DONE]\n\n").unwrap();
        let out = events(&t.feed(first.as_bytes()).unwrap());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["type"], "message_start");
        assert_eq!(t.finish().unwrap_err(), StreamError::Truncated);
    }

    #[test]
    fn text_then_two_tool_calls_with_interleaved_arguments() {
        let call = |index: u64, id: Option<&str>, name: Option<&str>, arguments: &str| {
            let mut call = json!({"index": index, "function": {"arguments": arguments}});
            if let Some(id) = id {
                call["id"] = json!(id);
                call["type"] = json!("function");
            }
            if let Some(name) = name {
                call["function"]["name"] = json!(name);
            }
            chunk(json!({"tool_calls": [call]}), None)
        };
        let input = stream(&[
            chunk(json!({"role": "assistant", "content": null}), None),
            chunk(json!({"content": "Checking."}), None),
            call(0, Some("call_a"), Some("weather"), ""),
            call(0, None, None, "{\"city\":"),
            call(1, Some("call_b"), Some("clock"), "{\"tz\":"),
            call(0, None, None, "\"Paris\"}"),
            call(1, None, None, "\"CET\"}"),
            chunk(json!({}), Some("tool_calls")),
            usage_chunk(),
        ]);
        let events = events(&translate(&input));
        let kinds: Vec<(&str, Option<u64>)> = events
            .iter()
            .map(|e| (e["type"].as_str().unwrap(), e["index"].as_u64()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("message_start", None),
                ("content_block_start", Some(0)),
                ("content_block_delta", Some(0)),
                ("content_block_stop", Some(0)),
                ("content_block_start", Some(1)),
                ("content_block_delta", Some(1)),
                ("content_block_delta", Some(1)),
                ("content_block_stop", Some(1)),
                ("content_block_start", Some(2)),
                ("content_block_delta", Some(2)),
                ("content_block_stop", Some(2)),
                ("message_delta", None),
                ("message_stop", None),
            ]
        );
        assert_eq!(
            events[4]["content_block"],
            json!({"type": "tool_use", "id": "call_a", "name": "weather", "input": {}})
        );
        let arguments = |index: u64| -> String {
            events
                .iter()
                .filter(|e| e["index"] == index)
                .filter_map(|e| e["delta"]["partial_json"].as_str())
                .collect()
        };
        assert_eq!(arguments(1), "{\"city\":\"Paris\"}");
        assert_eq!(
            events[8]["content_block"],
            json!({"type": "tool_use", "id": "call_b", "name": "clock", "input": {}})
        );
        assert_eq!(arguments(2), "{\"tz\":\"CET\"}");
        assert_eq!(events[11]["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn whole_calls_without_index_and_text_after_a_call() {
        let input = stream(&[
            chunk(
                json!({"tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}]}),
                None,
            ),
            chunk(json!({"content": "and "}), None),
            chunk(json!({"content": "more"}), None),
            chunk(
                json!({"tool_calls": [{"id": "c2", "function": {"name": "g", "arguments": "{\"x\":1}"}}]}),
                None,
            ),
            // Some providers finish tool calls with `stop`.
            chunk(json!({}), Some("stop")),
            usage_chunk(),
        ]);
        let events = events(&translate(&input));
        let blocks: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "content_block_start")
            .map(|e| &e["content_block"])
            .collect();
        assert_eq!(
            blocks,
            [
                &json!({"type": "tool_use", "id": "c1", "name": "f", "input": {}}),
                &json!({"type": "text", "text": ""}),
                &json!({"type": "tool_use", "id": "c2", "name": "g", "input": {}}),
            ]
        );
        assert_eq!(
            events[5]["delta"],
            json!({"type": "text_delta", "text": "and more"})
        );
        let done = &events[events.len() - 2];
        assert_eq!(done["delta"]["stop_reason"], "tool_use");
    }

    #[test]
    fn stop_reasons_and_refusals() {
        for (finish, stop) in [
            ("length", "max_tokens"),
            ("content_filter", "refusal"),
            ("stop", "end_turn"),
        ] {
            let input = stream(&[chunk(json!({"content": "x"}), Some(finish)), usage_chunk()]);
            let events = events(&translate(&input));
            assert_eq!(events[events.len() - 2]["delta"]["stop_reason"], stop);
        }
        let input = stream(&[
            chunk(json!({"refusal": "I can't."}), Some("stop")),
            usage_chunk(),
        ]);
        let events = events(&translate(&input));
        assert_eq!(events[2]["delta"]["text"], "I can't.");
        assert_eq!(events[events.len() - 2]["delta"]["stop_reason"], "refusal");
    }

    #[test]
    fn an_error_chunk_breaks_the_stream() {
        let mut t = StreamTranslator::new(1 << 16);
        t.feed(format!("data: {}\n\n", chunk(json!({"content": "Hi"}), None)).as_bytes())
            .unwrap();
        let error = t
            .feed(b"data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"server_error\",\"code\":\"overloaded\"}}\n\n")
            .unwrap_err();
        assert_eq!(
            error,
            StreamError::Provider {
                kind: "server_error".into(),
                message: "Overloaded".into()
            }
        );
        let mut t = StreamTranslator::new(1 << 16);
        assert_eq!(
            t.feed(b"event: error\ndata: {\"error\":\"boom\"}\n\n")
                .unwrap_err(),
            StreamError::Provider {
                kind: "error".into(),
                message: "boom".into()
            }
        );
    }

    #[test]
    fn an_end_before_done_is_truncation_and_after_it_nothing() {
        let mut t = StreamTranslator::new(1 << 16);
        t.feed(
            format!(
                "data: {}\n\n",
                chunk(json!({"content": "Hi"}), Some("stop"))
            )
            .as_bytes(),
        )
        .unwrap();
        t.feed(format!("data: {}\n\n", usage_chunk()).as_bytes())
            .unwrap();
        assert_eq!(t.finish().unwrap_err(), StreamError::Truncated);
        assert!(!t.feed(b"data: [DONE]\n\n").unwrap().is_empty());
        assert!(t.finish().unwrap().is_empty());
        // A `[DONE]` with nothing before it is still a whole (empty) message.
        let events = events(&translate("data: [DONE]\n\n"));
        let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["message_start", "message_delta", "message_stop"]);
    }

    #[test]
    fn events_are_bounded_and_must_be_json() {
        let mut t = StreamTranslator::new(64);
        assert_eq!(
            t.feed(&[b'x'; 65]).unwrap_err(),
            StreamError::EventTooLarge(64)
        );
        let mut t = StreamTranslator::new(64);
        assert_eq!(
            t.feed(b"data: {nope\n\n").unwrap_err(),
            StreamError::Malformed
        );
    }

    #[test]
    fn what_is_held_is_bounded() {
        let mut t = StreamTranslator::new(512);
        let call = |index: u64, arguments: &str| {
            let call = json!({"index": index, "id": format!("c{index}"), "function": {"name": "f", "arguments": arguments}});
            format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
            )
        };
        t.feed(call(0, "").as_bytes()).unwrap();
        t.feed(call(1, "").as_bytes()).unwrap();
        let more = |arguments: &str| {
            format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 1, "function": {"arguments": arguments}}]}}]})
            )
        };
        let piece = "x".repeat(200);
        t.feed(more(&piece).as_bytes()).unwrap();
        t.feed(more(&piece).as_bytes()).unwrap();
        assert_eq!(
            t.feed(more(&piece).as_bytes()).unwrap_err(),
            StreamError::EventTooLarge(512)
        );
    }

    #[test]
    fn tool_calls_per_stream_are_bounded() {
        let mut t = StreamTranslator::new(1 << 16);
        let call = |i: usize| {
            format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "id": "", "function": {"name": ""}}]}}]})
            )
        };
        for i in 0..MAX_TOOL_CALLS {
            t.feed(call(i).as_bytes()).unwrap();
        }
        assert_eq!(
            t.feed(call(MAX_TOOL_CALLS).as_bytes()).unwrap_err(),
            StreamError::TooManyToolCalls(MAX_TOOL_CALLS)
        );
    }

    #[test]
    fn arguments_for_a_call_whose_block_ended_are_malformed() {
        let mut t = StreamTranslator::new(1 << 16);
        let call = |arguments: &str, finish: Option<&str>| {
            let c = chunk(
                json!({"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": arguments}}]}),
                finish,
            );
            format!("data: {c}\n\n")
        };
        t.feed(call("{", Some("tool_calls")).as_bytes()).unwrap();
        assert_eq!(
            t.feed(call("}", None).as_bytes()).unwrap_err(),
            StreamError::Malformed
        );
    }
}
