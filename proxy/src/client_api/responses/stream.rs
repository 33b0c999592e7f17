//! A chat completion SSE stream as OpenAI Responses streaming events
//! (<https://platform.openai.com/docs/api-reference/responses-streaming>), as it arrives.
//!
//! The first chunk opens the response (`response.created`, `response.in_progress`). Text opens a
//! `message` item and its `output_text` part (a refusal a `refusal` part of the same item), whose
//! deltas follow; a tool call, by its chat `index`, opens a `function_call` item whose argument
//! deltas follow, calls interleaving as they may in a chat stream. The message ends when a tool
//! call begins (text after that opens a new message item); everything still open ends at the
//! finish reason, as `completed`, or `incomplete` for `length` and `content_filter`; what follows
//! the finish reason but usage is ignored. `[DONE]` ends the response with `response.completed`
//! (or `response.incomplete`) carrying the whole Response, as [`super::response`] builds it, with
//! the usage of the stream's last chunk. Every event carries a `sequence_number` from 0.
//!
//! An `error` chunk, or an end before `[DONE]`, is a broken stream (the proxy then ends the
//! client's stream with an error event). Memory is bounded: each chunk by `max_event`, the tool
//! calls by [`MAX_TOOL_CALLS`], and the text, arguments, names and ids held for the final events
//! together by `max_event` too, as the last event carries them all (past it the stream fails with
//! [`StreamError::EventTooLarge`]). The provider's reasoning, which the chat stream does not
//! carry in a documented field, is not returned.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};

use super::response::{
    function_call_item, item_id, message_item, output_text, refusal, response_id, response_object,
    status, usage,
};
use crate::translate::StreamError;
use crate::translate::anthropic::stream::MAX_TOOL_CALLS;
use crate::translate::sse::{EventSplitter, translate_events};

/// One content part of a message item.
struct Part {
    /// A `refusal` part, else an `output_text` one.
    refusal: bool,
    /// Its text so far.
    text: String,
}

impl Part {
    /// The part as the API shows it.
    fn to_json(&self) -> Value {
        if self.refusal {
            refusal(&self.text)
        } else {
            output_text(&self.text)
        }
    }
}

/// A `message` output item.
struct Message {
    output_index: usize,
    id: String,
    parts: Vec<Part>,
    /// Its final status once done.
    status: Option<&'static str>,
}

impl Message {
    fn to_json(&self, status: &str) -> Value {
        message_item(
            &self.id,
            status,
            self.parts.iter().map(Part::to_json).collect(),
        )
    }
}

/// A `function_call` output item.
struct Call {
    /// The tool call's `index` in the chat stream.
    chat_index: u64,
    output_index: usize,
    id: String,
    call_id: String,
    name: String,
    arguments: String,
    /// Its final status once done.
    status: Option<&'static str>,
}

impl Call {
    fn to_json(&self, status: &str) -> Value {
        function_call_item(&self.id, status, &self.call_id, &self.name, &self.arguments)
    }
}

/// Writes events, numbering them.
struct Writer {
    sequence: u64,
}

impl Writer {
    /// `event: <kind>` and `data: <body>` with its `type` and `sequence_number`.
    fn emit(&mut self, out: &mut BytesMut, kind: &str, mut body: Value) {
        body["type"] = json!(kind);
        body["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.put_slice(b"event: ");
        out.put_slice(kind.as_bytes());
        out.put_slice(b"\ndata: ");
        // Serializing a `Value` cannot fail.
        let _ = serde_json::to_writer((&mut *out).writer(), &body);
        out.put_slice(b"\n\n");
    }
}

/// The translation state of one stream.
pub struct StreamTranslator {
    events: EventSplitter,
    writer: Writer,
    created_at: u64,
    /// The most bytes of text, arguments, names and ids held.
    max_held: usize,
    held: usize,
    /// The Response id, once the stream started.
    id: String,
    model: String,
    started: bool,
    /// The finish reason came: every item is done.
    finished: bool,
    finish_reason: Option<String>,
    /// `[DONE]` came.
    done: bool,
    next_output_index: usize,
    /// Every message item, in output order; only the last may be open.
    messages: Vec<Message>,
    /// Every function call item, in output order.
    calls: Vec<Call>,
    usage: Value,
}

impl StreamTranslator {
    /// A translator for a response created at `created_at` (Unix seconds), chunks of at most
    /// `max_event` bytes, holding at most `max_event` bytes of the answer's text and arguments.
    pub fn new(created_at: u64, max_event: usize) -> Self {
        Self {
            events: EventSplitter::new(max_event),
            writer: Writer { sequence: 0 },
            created_at,
            max_held: max_event,
            held: 0,
            id: String::new(),
            model: String::new(),
            started: false,
            finished: false,
            finish_reason: None,
            done: false,
            next_output_index: 0,
            messages: Vec::new(),
            calls: Vec::new(),
            usage: Value::Null,
        }
    }

    /// The Responses SSE bytes for the next piece of the chat stream (often none).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Bytes, StreamError> {
        translate_events(self, |t| &mut t.events, bytes, Self::event)
    }

    /// The chat stream ended: nothing more to send after `[DONE]`, an error before it.
    pub fn finish(&mut self) -> Result<Bytes, StreamError> {
        if self.done {
            Ok(Bytes::new())
        } else {
            Err(StreamError::Truncated)
        }
    }

    /// One event's data: a chunk, or `[DONE]`.
    fn event(&mut self, data: &str, out: &mut BytesMut) -> Result<(), StreamError> {
        if self.done {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            self.start(out);
            let (status, _) = status(self.finish_reason.as_deref());
            self.close_all(status, out);
            self.done = true;
            let response = self.response();
            let kind = if status == "completed" {
                "response.completed"
            } else {
                "response.incomplete"
            };
            self.writer.emit(out, kind, json!({ "response": response }));
            return Ok(());
        }
        let chunk: Value = serde_json::from_str(data).map_err(|_| StreamError::Malformed)?;
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let text = |key: &str| error.get(key).and_then(Value::as_str);
            return Err(StreamError::Provider {
                kind: text("type").or(text("code")).unwrap_or("error").to_string(),
                message: text("message").unwrap_or_default().to_string(),
            });
        }
        if !self.started {
            self.id = response_id(
                chunk.get("id").and_then(Value::as_str).unwrap_or(""),
                self.created_at,
            );
            self.model = chunk
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            self.hold(self.id.len() + self.model.len())?;
            self.start(out);
        }
        if let Some(chat_usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = usage(chat_usage);
        }
        let choices = chunk.get("choices").and_then(Value::as_array);
        // One answer per request (the request translation refuses `n`): the first choice.
        for choice in choices.into_iter().flatten() {
            if self.finished || choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            if let Some(delta) = choice.get("delta") {
                self.delta(delta, out)?;
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reason = Some(reason.to_string());
                self.finished = true;
                let (status, _) = status(Some(reason));
                self.close_all(status, out);
            }
        }
        Ok(())
    }

    /// `response.created` and `response.in_progress`, once.
    fn start(&mut self, out: &mut BytesMut) {
        if self.started {
            return;
        }
        self.started = true;
        if self.id.is_empty() {
            self.id = response_id("", self.created_at);
        }
        let response = response_object(
            &self.id,
            self.created_at,
            &self.model,
            ("in_progress", Value::Null),
            Vec::new(),
            Value::Null,
        );
        self.writer.emit(
            out,
            "response.created",
            json!({ "response": response.clone() }),
        );
        self.writer
            .emit(out, "response.in_progress", json!({ "response": response }));
    }

    /// Counts `bytes` more held, failing past the bound.
    fn hold(&mut self, bytes: usize) -> Result<(), StreamError> {
        self.held = self.held.saturating_add(bytes);
        if self.held > self.max_held {
            return Err(StreamError::EventTooLarge(self.max_held));
        }
        Ok(())
    }

    /// One choice's delta: text, then refusal, then tool calls.
    fn delta(&mut self, delta: &Value, out: &mut BytesMut) -> Result<(), StreamError> {
        for (key, is_refusal) in [("content", false), ("refusal", true)] {
            if let Some(text) = delta
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                self.text(text, is_refusal, out)?;
            }
        }
        let calls = delta.get("tool_calls").and_then(Value::as_array);
        for (j, call) in calls.into_iter().flatten().enumerate() {
            self.tool_call(call, j, out)?;
        }
        Ok(())
    }

    /// A text (or refusal) delta, opening the message item and its part as needed.
    fn text(
        &mut self,
        text: &str,
        is_refusal: bool,
        out: &mut BytesMut,
    ) -> Result<(), StreamError> {
        self.hold(text.len())?;
        if self.messages.last().is_none_or(|m| m.status.is_some()) {
            let output_index = self.take_output_index();
            let message = Message {
                output_index,
                id: item_id("msg", &self.id, output_index),
                parts: Vec::new(),
                status: None,
            };
            self.writer.emit(
                out,
                "response.output_item.added",
                json!({ "output_index": output_index, "item": message.to_json("in_progress") }),
            );
            self.messages.push(message);
        }
        let Some(message) = self.messages.last_mut() else {
            return Ok(());
        };
        let content_index = match message.parts.iter().position(|p| p.refusal == is_refusal) {
            Some(index) => index,
            None => {
                let part = Part {
                    refusal: is_refusal,
                    text: String::new(),
                };
                self.writer.emit(
                    out,
                    "response.content_part.added",
                    json!({
                        "item_id": message.id, "output_index": message.output_index,
                        "content_index": message.parts.len(), "part": part.to_json(),
                    }),
                );
                message.parts.push(part);
                message.parts.len() - 1
            }
        };
        if let Some(part) = message.parts.get_mut(content_index) {
            part.text.push_str(text);
        }
        let mut event = json!({
            "item_id": message.id, "output_index": message.output_index,
            "content_index": content_index, "delta": text,
        });
        let kind = if is_refusal {
            "response.refusal.delta"
        } else {
            event["logprobs"] = json!([]);
            "response.output_text.delta"
        };
        self.writer.emit(out, kind, event);
        Ok(())
    }

    /// One tool call delta (the `j`th of its chunk), opening its item on its first.
    fn tool_call(
        &mut self,
        delta: &Value,
        j: usize,
        out: &mut BytesMut,
    ) -> Result<(), StreamError> {
        let chat_index = delta
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(j as u64);
        let name = delta.pointer("/function/name").and_then(Value::as_str);
        let position = match self.calls.iter().position(|c| c.chat_index == chat_index) {
            Some(position) => {
                // A name given after the call opened (the chat stream names it once, first).
                if let Some(name) = name.filter(|n| !n.is_empty())
                    && self.calls[position].name.is_empty()
                {
                    self.hold(name.len())?;
                    self.calls[position].name = name.to_string();
                }
                position
            }
            None => {
                // Each call is looked up per delta and echoed at the end: a hostile stream must
                // not grow the list without bound.
                if self.calls.len() >= MAX_TOOL_CALLS {
                    return Err(StreamError::TooManyToolCalls(MAX_TOOL_CALLS));
                }
                // The text before the calls ended.
                self.close_message("completed", out);
                let output_index = self.take_output_index();
                let id = item_id("fc", &self.id, output_index);
                let call_id = delta
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|i| !i.is_empty())
                    .map_or_else(|| item_id("call", &self.id, output_index), str::to_string);
                let name = name.unwrap_or("").to_string();
                self.hold(id.len() + call_id.len() + name.len())?;
                let call = Call {
                    chat_index,
                    output_index,
                    id,
                    call_id,
                    name,
                    arguments: String::new(),
                    status: None,
                };
                self.writer.emit(
                    out,
                    "response.output_item.added",
                    json!({ "output_index": output_index, "item": call.to_json("in_progress") }),
                );
                self.calls.push(call);
                self.calls.len() - 1
            }
        };
        if let Some(arguments) = delta
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            self.hold(arguments.len())?;
            let call = &mut self.calls[position];
            call.arguments.push_str(arguments);
            self.writer.emit(
                out,
                "response.function_call_arguments.delta",
                json!({ "item_id": call.id, "output_index": call.output_index, "delta": arguments }),
            );
        }
        Ok(())
    }

    fn take_output_index(&mut self) -> usize {
        let index = self.next_output_index;
        self.next_output_index += 1;
        index
    }

    /// Ends the open message item, if any, as `status`.
    fn close_message(&mut self, status: &'static str, out: &mut BytesMut) {
        let Some(message) = self.messages.last_mut().filter(|m| m.status.is_none()) else {
            return;
        };
        message.status = Some(status);
        for (content_index, part) in message.parts.iter().enumerate() {
            let mut event = json!({
                "item_id": message.id, "output_index": message.output_index,
                "content_index": content_index,
            });
            let kind = if part.refusal {
                event["refusal"] = json!(part.text);
                "response.refusal.done"
            } else {
                event["text"] = json!(part.text);
                event["logprobs"] = json!([]);
                "response.output_text.done"
            };
            self.writer.emit(out, kind, event);
            self.writer.emit(
                out,
                "response.content_part.done",
                json!({
                    "item_id": message.id, "output_index": message.output_index,
                    "content_index": content_index, "part": part.to_json(),
                }),
            );
        }
        self.writer.emit(
            out,
            "response.output_item.done",
            json!({ "output_index": message.output_index, "item": message.to_json(status) }),
        );
    }

    /// Ends the open function call item at `position` as `status`.
    fn close_call(&mut self, position: usize, status: &'static str, out: &mut BytesMut) {
        let Some(call) = self.calls.get_mut(position).filter(|c| c.status.is_none()) else {
            return;
        };
        call.status = Some(status);
        self.writer.emit(
            out,
            "response.function_call_arguments.done",
            json!({ "item_id": call.id, "output_index": call.output_index, "arguments": call.arguments }),
        );
        self.writer.emit(
            out,
            "response.output_item.done",
            json!({ "output_index": call.output_index, "item": call.to_json(status) }),
        );
    }

    /// Ends every open item as `status`, in output order.
    fn close_all(&mut self, status: &'static str, out: &mut BytesMut) {
        let message_index = self
            .messages
            .last()
            .filter(|m| m.status.is_none())
            .map(|m| m.output_index);
        for position in 0..self.calls.len() {
            if message_index.is_some_and(|m| m < self.calls[position].output_index) {
                self.close_message(status, out);
            }
            self.close_call(position, status, out);
        }
        self.close_message(status, out);
    }

    /// The whole Response, once every item is done.
    fn response(&self) -> Value {
        let (status, incomplete_details) = status(self.finish_reason.as_deref());
        let mut output: Vec<(usize, Value)> = self
            .messages
            .iter()
            .map(|m| (m.output_index, m.to_json(m.status.unwrap_or(status))))
            .chain(
                self.calls
                    .iter()
                    .map(|c| (c.output_index, c.to_json(c.status.unwrap_or(status)))),
            )
            .collect();
        output.sort_by_key(|(index, _)| *index);
        response_object(
            &self.id,
            self.created_at,
            &self.model,
            (status, incomplete_details),
            output.into_iter().map(|(_, item)| item).collect(),
            self.usage.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chat chunk event with one choice.
    fn chunk(delta: Value, finish: Option<&str>) -> String {
        let chunk = json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "claude-x",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        format!("data: {chunk}\n\n")
    }

    fn usage_chunk() -> String {
        let chunk = json!({
            "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "claude-x",
            "choices": [],
            "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21,
                      "prompt_tokens_details": {"cached_tokens": 3}},
        });
        format!("data: {chunk}\n\n")
    }

    const DONE: &str = "data: [DONE]\n\n";

    /// The events of translated bytes, as `(type, data)`, checking the framing and the
    /// sequence numbers.
    fn events(out: &[u8]) -> Vec<(String, Value)> {
        let text = std::str::from_utf8(out).unwrap();
        let events: Vec<(String, Value)> = text
            .split_terminator("\n\n")
            .map(|event| {
                let (head, data) = event.split_once('\n').unwrap();
                let kind = head.strip_prefix("event: ").unwrap().to_string();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                assert_eq!(data["type"], kind.as_str());
                (kind, data)
            })
            .collect();
        for (i, (_, data)) in events.iter().enumerate() {
            assert_eq!(data["sequence_number"], i as u64);
        }
        events
    }

    fn kinds(events: &[(String, Value)]) -> Vec<&str> {
        events.iter().map(|(kind, _)| kind.as_str()).collect()
    }

    /// The whole output for `stream`, fed at once and byte by byte (which must agree).
    fn translate(stream: &str) -> Vec<(String, Value)> {
        let mut whole = StreamTranslator::new(7, 1 << 16);
        let out = whole.feed(stream.as_bytes()).unwrap();
        assert!(whole.finish().unwrap().is_empty());
        let mut split = StreamTranslator::new(7, 1 << 16);
        let mut bytes = Vec::new();
        for byte in stream.as_bytes() {
            bytes.extend_from_slice(&split.feed(&[*byte]).unwrap());
        }
        assert_eq!(bytes, out.to_vec());
        events(&out)
    }

    #[test]
    fn text_becomes_a_message_item_with_its_deltas_and_usage_the_final_usage() {
        let stream = [
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"content": "Hello"}), None),
            chunk(json!({"content": " there"}), None),
            chunk(json!({}), Some("stop")),
            usage_chunk(),
            DONE.to_string(),
        ]
        .concat();
        let events = translate(&stream);
        assert_eq!(
            kinds(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let created = &events[0].1["response"];
        assert_eq!(created["id"], "resp_chatcmpl-1");
        assert_eq!(created["status"], "in_progress");
        assert_eq!(created["output"], json!([]));
        assert_eq!(created["model"], "claude-x");
        assert_eq!(created["created_at"], 7);
        assert_eq!(
            events[2].1["item"],
            json!({"id": "msg_chatcmpl-1_0", "type": "message", "role": "assistant", "status": "in_progress", "content": []})
        );
        assert_eq!(
            events[3].1,
            json!({"type": "response.content_part.added", "sequence_number": 3,
                   "item_id": "msg_chatcmpl-1_0", "output_index": 0, "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
        );
        assert_eq!(
            events[5].1,
            json!({"type": "response.output_text.delta", "sequence_number": 5,
                   "item_id": "msg_chatcmpl-1_0", "output_index": 0, "content_index": 0,
                   "delta": " there", "logprobs": []})
        );
        assert_eq!(events[6].1["text"], "Hello there");
        assert_eq!(events[7].1["part"]["text"], "Hello there");
        assert_eq!(events[8].1["item"]["status"], "completed");
        let response = &events[9].1["response"];
        assert_eq!(response["status"], "completed");
        assert_eq!(response["output"], json!([events[8].1["item"]]));
        assert_eq!(
            response["usage"],
            json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
                   "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": 21})
        );
    }

    #[test]
    fn two_tool_calls_with_interleaved_arguments_become_function_call_items() {
        let call = |index: u64, fields: Value| {
            chunk(
                json!({"tool_calls": [{"index": index, "function": fields}]}),
                None,
            )
        };
        let stream = [
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"content": "Checking."}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{\"tz\":"}}]}),
                None,
            ),
            call(0, json!({"arguments": "{\"city\":"})),
            call(1, json!({"arguments": "\"CET\"}"})),
            call(0, json!({"arguments": "\"Paris\"}"})),
            chunk(json!({}), Some("tool_calls")),
            usage_chunk(),
            DONE.to_string(),
        ]
        .concat();
        let events = translate(&stream);
        assert_eq!(
            kinds(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                // The text ends when the first call begins.
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        assert_eq!(
            events[8].1["item"],
            json!({"id": "fc_chatcmpl-1_1", "type": "function_call", "status": "in_progress",
                   "call_id": "call_a", "name": "weather", "arguments": ""})
        );
        assert_eq!(events[9].1["output_index"], 2);
        assert_eq!(events[10].1["item_id"], "fc_chatcmpl-1_2");
        assert_eq!(events[11].1["output_index"], 1);
        assert_eq!(events[14].1["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(events[16].1["arguments"], "{\"tz\":\"CET\"}");
        let output = &events[18].1["response"]["output"];
        assert_eq!(output.as_array().unwrap().len(), 3);
        assert_eq!(output[0]["content"][0]["text"], "Checking.");
        assert_eq!(
            output[1],
            json!({"id": "fc_chatcmpl-1_1", "type": "function_call", "status": "completed",
                   "call_id": "call_a", "name": "weather", "arguments": "{\"city\":\"Paris\"}"})
        );
        assert_eq!(output[2]["call_id"], "call_b");
        assert_eq!(output[2]["arguments"], "{\"tz\":\"CET\"}");
    }

    #[test]
    fn length_makes_an_incomplete_response() {
        let stream = [
            chunk(json!({"role": "assistant", "content": "Hel"}), None),
            chunk(json!({}), Some("length")),
            usage_chunk(),
            DONE.to_string(),
        ]
        .concat();
        let events = translate(&stream);
        let (kind, last) = events.last().unwrap();
        assert_eq!(kind, "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(
            last["response"]["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(last["response"]["output"][0]["status"], "incomplete");
        assert_eq!(last["response"]["output"][0]["content"][0]["text"], "Hel");
    }

    #[test]
    fn a_refusal_becomes_a_refusal_part() {
        let stream = [
            chunk(json!({"role": "assistant", "refusal": "I can't"}), None),
            chunk(json!({"refusal": " help."}), Some("stop")),
            DONE.to_string(),
        ]
        .concat();
        let events = translate(&stream);
        assert_eq!(
            kinds(&events)[2..],
            [
                "response.output_item.added",
                "response.content_part.added",
                "response.refusal.delta",
                "response.refusal.delta",
                "response.refusal.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        assert_eq!(events[6].1["refusal"], "I can't help.");
        assert_eq!(
            events[9].1["response"]["output"][0]["content"],
            json!([{"type": "refusal", "refusal": "I can't help."}])
        );
        assert_eq!(events[9].1["response"]["usage"], Value::Null);
    }

    #[test]
    fn role_only_chunks_give_only_the_opening_pair() {
        let mut t = StreamTranslator::new(0, 1 << 16);
        let out = t
            .feed(chunk(json!({"role": "assistant", "content": ""}), None).as_bytes())
            .unwrap();
        assert_eq!(
            kinds(&events(&out)),
            ["response.created", "response.in_progress"]
        );
        let out = t
            .feed(chunk(json!({"role": "assistant"}), None).as_bytes())
            .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn an_error_chunk_or_an_early_end_breaks_the_stream() {
        let mut t = StreamTranslator::new(0, 1 << 16);
        t.feed(chunk(json!({"content": "Hi"}), None).as_bytes())
            .unwrap();
        let error = t
            .feed(b"data: {\"error\": {\"message\": \"Overloaded\", \"type\": \"overloaded_error\"}}\n\n")
            .unwrap_err();
        assert_eq!(
            error,
            StreamError::Provider {
                kind: "overloaded_error".into(),
                message: "Overloaded".into()
            }
        );
        let mut t = StreamTranslator::new(0, 1 << 16);
        t.feed(chunk(json!({"content": "Hi"}), Some("stop")).as_bytes())
            .unwrap();
        t.feed(usage_chunk().as_bytes()).unwrap();
        assert_eq!(t.finish().unwrap_err(), StreamError::Truncated);
        let mut t = StreamTranslator::new(0, 1 << 16);
        assert_eq!(t.finish().unwrap_err(), StreamError::Truncated);
    }

    #[test]
    fn chunks_are_bounded_and_must_be_json() {
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

    #[test]
    fn the_text_held_for_the_final_event_is_bounded() {
        let mut t = StreamTranslator::new(0, 512);
        let piece = chunk(json!({"content": "x".repeat(100)}), None);
        let mut result = Ok(Bytes::new());
        for _ in 0..6 {
            result = t.feed(piece.as_bytes());
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.unwrap_err(), StreamError::EventTooLarge(512));
    }

    #[test]
    fn tool_calls_per_stream_are_bounded() {
        let mut t = StreamTranslator::new(0, 1 << 20);
        let call = |i: usize| {
            chunk(
                json!({"tool_calls": [{"index": i, "id": format!("c{i}"), "function": {"name": "f"}}]}),
                None,
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
    fn a_stream_without_chunks_still_opens_and_completes() {
        let events = translate(DONE);
        assert_eq!(
            kinds(&events),
            [
                "response.created",
                "response.in_progress",
                "response.completed"
            ]
        );
        assert_eq!(events[2].1["response"]["id"], "resp_7");
    }
}
