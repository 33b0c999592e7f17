//! `POST /v1/messages`: Anthropic's Messages API, answering with the chat endpoint's reply rules
//! (`Reply with exactly: X` in the last user message, else the configured reply).
//!
//! * The `anthropic-version` header is required (400 `invalid_request_error` otherwise), the body
//!   is validated as the API does (400 naming the field), and errors use Anthropic's shape
//!   `{"type":"error","error":{"type":..,"message":..}}` — injected `status=` faults included.
//! * Tool use: with `tools` given, `tool_choice` `any`/`tool` (or `auto` and the word `weather` in
//!   the last user text) answers with a `tool_use` block for the chosen (else first) tool, whose
//!   input is [`anthropic::example_input`] of its schema, and `stop_reason: tool_use`. A forced
//!   choice gets no text block before it (the API prefills the turn), `auto` gets the reply text
//!   first.
//! * Tokens are words: `input_tokens` counts tool names and descriptions, system and message
//!   text, minus `cache_read_input_tokens` (the prefix up to the last `cache_control`); output
//!   counts the text's words plus one per `input_json_delta` piece. `max_tokens` below that cuts
//!   the text (or drops the tool call) with `stop_reason: max_tokens`; a `stop_sequences` entry
//!   found in the reply cuts it there with `stop_reason: stop_sequence`.
//! * Streaming sends Anthropic's documented events: `message_start`, per block
//!   `content_block_start`/`content_block_delta`*/`content_block_stop` (a `ping` after the first
//!   start), `message_delta` and `message_stop`; one word per `text_delta`, the tool input JSON
//!   in 8-byte `input_json_delta` pieces.

use std::io;

use serde_json::{Map, Value};

use crate::anthropic::{
    self, Block, BlockDelta, DeltaUsage, ErrorBody, ErrorDetail, Message, MessageDelta,
    MessagesRequest, StreamEvent, Tool, ToolChoice, Usage,
};
use crate::handlers::{ApiHeaders, Ctx, ErrorReply, Flow, send_error_body, send_events, send_json};
use crate::http::Conn;
use crate::openai::{count_words, reply_pieces, requested_reply};
use crate::server::Shared;

/// Longest `partial_json` piece, in bytes (longer only to reach a char boundary).
const JSON_PIECE: usize = 8;

pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    headers: &ApiHeaders<'_>,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    match headers.anthropic_version {
        None => return invalid(shared, conn, "anthropic-version: header is required", ctx).await,
        Some(v) if !anthropic::VERSIONS.contains(&v) => {
            let msg = format!(
                "anthropic-version: \"{v}\" is not a valid version; use one of {}",
                anthropic::VERSIONS.join(", ")
            );
            return invalid(shared, conn, &msg, ctx).await;
        }
        Some(_) => {}
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("invalid JSON body: {e}");
            return invalid(shared, conn, &msg, ctx).await;
        }
    };
    let req = match anthropic::parse_request(&value) {
        Ok(req) => req,
        Err(msg) => return invalid(shared, conn, &msg, ctx).await,
    };
    let reply = requested_reply(&req.last_user_text).unwrap_or(&shared.reply);
    let outcome = plan(&req, reply);
    let n = shared.next_id();
    let id = format!("msg_mock_{n}");
    let tool_id = format!("toolu_mock_{n}");
    let usage = Usage {
        input_tokens: req.prompt_tokens.saturating_sub(req.cached_tokens),
        output_tokens: outcome.output_tokens,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: req.cached_tokens,
    };

    if !req.stream {
        let mut content = Vec::with_capacity(2);
        if let Some(text) = outcome.text {
            content.push(Block::Text { text });
        }
        if let Some(tool) = &outcome.tool {
            content.push(Block::ToolUse {
                id: &tool_id,
                name: tool.name,
                input: &tool.input,
            });
        }
        let message = Message {
            id: &id,
            kind: "message",
            role: "assistant",
            model: req.model,
            content,
            stop_reason: Some(outcome.stop_reason),
            stop_sequence: outcome.stop_sequence,
            usage,
        };
        return send_json(shared, conn, 200, &message, ctx).await;
    }

    let empty_input = Value::Object(Map::new());
    let start = Message {
        id: &id,
        kind: "message",
        role: "assistant",
        model: req.model,
        content: Vec::new(),
        stop_reason: None,
        stop_sequence: None,
        usage: Usage {
            output_tokens: 1,
            ..usage
        },
    };
    let mut events = vec![StreamEvent::MessageStart { message: start }];
    let mut index = 0;
    if let Some(text) = outcome.text {
        events.push(StreamEvent::ContentBlockStart {
            index,
            content_block: Block::Text { text: "" },
        });
        events.push(StreamEvent::Ping);
        for piece in reply_pieces(text) {
            let delta = BlockDelta::TextDelta { text: piece };
            events.push(StreamEvent::ContentBlockDelta { index, delta });
        }
        events.push(StreamEvent::ContentBlockStop { index });
        index += 1;
    }
    if let Some(tool) = &outcome.tool {
        events.push(StreamEvent::ContentBlockStart {
            index,
            content_block: Block::ToolUse {
                id: &tool_id,
                name: tool.name,
                input: &empty_input,
            },
        });
        if index == 0 {
            events.push(StreamEvent::Ping);
        }
        for partial_json in json_pieces(&tool.json) {
            let delta = BlockDelta::InputJsonDelta { partial_json };
            events.push(StreamEvent::ContentBlockDelta { index, delta });
        }
        events.push(StreamEvent::ContentBlockStop { index });
    }
    if events.len() == 1 {
        events.push(StreamEvent::Ping);
    }
    events.push(StreamEvent::MessageDelta {
        delta: MessageDelta {
            stop_reason: outcome.stop_reason,
            stop_sequence: outcome.stop_sequence,
        },
        usage: DeltaUsage {
            output_tokens: outcome.output_tokens,
        },
    });
    events.push(StreamEvent::MessageStop);

    send_events(
        shared,
        conn,
        ctx,
        events.len(),
        anthropic::STREAM_ERROR,
        |i, buf| {
            let Some(event) = events.get(i) else {
                return Ok(());
            };
            buf.extend_from_slice(b"event: ");
            buf.extend_from_slice(event.name().as_bytes());
            buf.extend_from_slice(b"\ndata: ");
            serde_json::to_writer(&mut *buf, event)?;
            buf.extend_from_slice(b"\n\n");
            Ok(())
        },
    )
    .await
}

/// Sends an error in Anthropic's shape (`reply.code` is not part of it).
pub(crate) async fn send_error(
    shared: &Shared,
    conn: &mut Conn,
    reply: ErrorReply<'_>,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let body = ErrorBody {
        kind: "error",
        error: ErrorDetail {
            kind: reply.kind,
            message: reply.message,
        },
    };
    let body = serde_json::to_vec(&body)?;
    send_error_body(shared, conn, reply.status, &body, reply.retry_after, ctx).await
}

async fn invalid(shared: &Shared, conn: &mut Conn, msg: &str, ctx: &Ctx) -> io::Result<Flow> {
    let kind = "invalid_request_error";
    send_error(shared, conn, ErrorReply::new(400, msg, kind, kind), ctx).await
}

/// What the assistant turn contains and why it stopped.
struct Outcome<'a> {
    text: Option<&'a str>,
    tool: Option<ToolCall<'a>>,
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
    output_tokens: u32,
}

struct ToolCall<'a> {
    name: &'a str,
    input: Value,
    /// `input` as sent in the `input_json_delta` pieces.
    json: String,
}

fn plan<'a>(req: &'a MessagesRequest<'a>, reply: &'a str) -> Outcome<'a> {
    let max = req.max_tokens;
    let tool = chosen_tool(req);
    let forced = matches!(req.tool_choice, ToolChoice::Any | ToolChoice::Tool(_));
    let mut out = Outcome {
        text: None,
        tool: None,
        stop_reason: "end_turn",
        stop_sequence: None,
        output_tokens: 0,
    };
    let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
    let mut used = 0u64;
    if !(forced && tool.is_some()) {
        let (text, stop_sequence) = match first_stop(reply, &req.stop_sequences) {
            Some((at, seq)) => (&reply[..at], Some(seq)),
            None => (reply, None),
        };
        let words = u64::from(count_words(text));
        if words > max {
            // Every piece holds exactly one word here, so `max` pieces are `max` tokens.
            let end: usize = reply_pieces(text)
                .iter()
                .take(usize::try_from(max).unwrap_or(usize::MAX))
                .map(|p| p.len())
                .sum();
            out.text = Some(&text[..end]);
            out.stop_reason = "max_tokens";
            out.output_tokens = clamp(max);
            return out;
        }
        out.text = Some(text);
        used = words;
        if stop_sequence.is_some() {
            out.stop_reason = "stop_sequence";
            out.stop_sequence = stop_sequence;
            out.output_tokens = clamp(used);
            return out;
        }
    }
    if let Some(tool) = tool {
        let input = anthropic::example_input(tool.input_schema);
        let json = input.to_string();
        let pieces = json_pieces(&json).len() as u64;
        if used + pieces > max {
            // The budget runs out inside the call: it is dropped rather than sent half-formed.
            out.stop_reason = "max_tokens";
            out.output_tokens = clamp(max);
            return out;
        }
        used += pieces;
        out.stop_reason = "tool_use";
        out.tool = Some(ToolCall {
            name: tool.name,
            input,
            json,
        });
    }
    out.output_tokens = clamp(used);
    out
}

fn chosen_tool<'r, 'a>(req: &'r MessagesRequest<'a>) -> Option<&'r Tool<'a>> {
    match req.tool_choice {
        ToolChoice::None => None,
        ToolChoice::Tool(name) => req.tools.iter().find(|t| t.name == name),
        ToolChoice::Any => req.tools.first(),
        ToolChoice::Auto if mentions_weather(&req.last_user_text) => req.tools.first(),
        ToolChoice::Auto => None,
    }
}

fn mentions_weather(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case("weather"))
}

/// The earliest stop sequence in `text` (the first listed wins a tie), and where it starts.
fn first_stop<'s>(text: &str, sequences: &[&'s str]) -> Option<(usize, &'s str)> {
    sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s).map(|at| (at, *s)))
        .min_by_key(|(at, _)| *at)
}

/// Splits JSON text into pieces of at most [`JSON_PIECE`] bytes, on char boundaries.
fn json_pieces(json: &str) -> Vec<&str> {
    let mut pieces = Vec::with_capacity(json.len() / JSON_PIECE + 1);
    let mut rest = json;
    while !rest.is_empty() {
        let mut end = JSON_PIECE.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(extra: Value) -> Value {
        let mut body = json!({"model": "m", "max_tokens": 100,
                              "messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    }

    #[test]
    fn json_pieces_concatenate_back_and_respect_char_boundaries() {
        let json = r#"{"city":"Zürich","note":"ünïcödé"}"#;
        let pieces = json_pieces(json);
        assert_eq!(pieces.concat(), json);
        assert!(
            pieces
                .iter()
                .all(|p| !p.is_empty() && p.len() <= JSON_PIECE + 3)
        );
        assert!(json_pieces("").is_empty());
    }

    #[test]
    fn max_tokens_truncates_the_reply_by_words() {
        let body = request(json!({"max_tokens": 3}));
        let req = anthropic::parse_request(&body).unwrap();
        let out = plan(&req, "one two three four five");
        assert_eq!(out.text, Some("one two three"));
        assert_eq!((out.stop_reason, out.output_tokens), ("max_tokens", 3));
    }

    #[test]
    fn the_earliest_stop_sequence_cuts_the_reply() {
        let body = request(json!({"stop_sequences": ["four", "two"]}));
        let req = anthropic::parse_request(&body).unwrap();
        let out = plan(&req, "one two three four");
        assert_eq!(out.text, Some("one "));
        assert_eq!(out.stop_reason, "stop_sequence");
        assert_eq!(out.stop_sequence, Some("two"));
        assert_eq!(out.output_tokens, 1);
    }

    #[test]
    fn weather_with_tools_calls_the_first_tool_unless_choice_is_none() {
        let tools = json!([
            {"name": "get_weather", "input_schema": {"type": "object",
                "properties": {"location": {"type": "string"}}}},
            {"name": "other", "input_schema": {"type": "object"}},
        ]);
        let body = request(json!({"tools": tools,
            "messages": [{"role": "user", "content": "What's the Weather?"}]}));
        let req = anthropic::parse_request(&body).unwrap();
        let out = plan(&req, "Let me check.");
        assert_eq!(out.text, Some("Let me check."));
        let tool = out.tool.as_ref().unwrap();
        assert_eq!(tool.name, "get_weather");
        assert_eq!(tool.json, r#"{"location":"mock location"}"#);
        assert_eq!(out.stop_reason, "tool_use");
        assert_eq!(out.output_tokens, 3 + json_pieces(&tool.json).len() as u32);

        let mut body = body;
        body["tool_choice"] = json!({"type": "none"});
        let req = anthropic::parse_request(&body).unwrap();
        let out = plan(&req, "Let me check.");
        assert!(out.tool.is_none());
        assert_eq!(out.stop_reason, "end_turn");

        body["tool_choice"] = json!({"type": "tool", "name": "other"});
        body["max_tokens"] = json!(1);
        let req = anthropic::parse_request(&body).unwrap();
        let out = plan(&req, "Let me check.");
        assert_eq!(out.text, None, "a forced tool call has no text block");
        assert_eq!(
            out.tool.as_ref().map(|t| t.json.as_str()),
            Some("{}"),
            "`{{}}` is one piece, within max_tokens 1"
        );
    }
}
