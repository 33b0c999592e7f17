//! `POST /v1/messages`: Anthropic's Messages API, answering with the chat endpoint's reply rules
//! (`Reply with exactly: X` in the last user message, else the configured reply).
//!
//! * The `anthropic-version` header is required (400 `invalid_request_error` otherwise), the body
//!   is validated as the API does (400 naming the field), and errors use Anthropic's shape
//!   `{"type":"error","error":{"type":..,"message":..}}` — injected `status=` faults included.
//! * The turn (text, `tool_use`, stop reason, output tokens) follows [`crate::reply`].
//!   `input_tokens` counts tool names and descriptions, system and message text, minus
//!   `cache_read_input_tokens` (the prefix up to the last `cache_control`).
//! * Streaming sends Anthropic's documented events: `message_start`, per block
//!   `content_block_start`/`content_block_delta`*/`content_block_stop` (a `ping` after the first
//!   start), `message_delta` and `message_stop`; one word per `text_delta`, the tool input JSON
//!   in 8-byte `input_json_delta` pieces.
//! * Claude on Vertex AI ([`crate::vertex`]) is answered by [`respond`] once its body has been
//!   brought to this API's form; its ids carry `vrtx` as Vertex's do.
//! * `POST /v1/messages/count_tokens` ([`count_tokens`]) takes the same headers and the body
//!   without `max_tokens` and the sampling fields, and answers `{"input_tokens": N}`, N counted
//!   as a message's input is (the cached prefix included, since counting ignores caching).

use std::io;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::anthropic::{
    self, Block, BlockDelta, DeltaUsage, ErrorBody, ErrorDetail, Message, MessageDelta,
    StreamEvent, Usage,
};
use crate::handlers::{ApiHeaders, Ctx, ErrorReply, Flow, send_error_body, send_events, send_json};
use crate::http::Conn;
use crate::openai::{reply_pieces, requested_reply};
use crate::reply::{self, Ask, json_pieces};
use crate::server::Shared;

/// What the ids of Anthropic's own API carry (`msg_mock_N`, `toolu_mock_N`).
const ID_TAG: &str = "mock";

pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    headers: &ApiHeaders<'_>,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    let value = match checked_body(headers, body) {
        Ok(v) => v,
        Err(msg) => return invalid(shared, conn, &msg, ctx).await,
    };
    respond(shared, conn, &value, ID_TAG, ctx).await
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens, counted as [`respond`] counts them.
pub(crate) async fn count_tokens(
    shared: &Shared,
    conn: &mut Conn,
    headers: &ApiHeaders<'_>,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    let value = match checked_body(headers, body) {
        Ok(v) => v,
        Err(msg) => return invalid(shared, conn, &msg, ctx).await,
    };
    match anthropic::count_tokens(&value) {
        Ok(input_tokens) => send_json(shared, conn, 200, &TokenCount { input_tokens }, ctx).await,
        Err(msg) => invalid(shared, conn, &msg, ctx).await,
    }
}

/// `count_tokens`'s answer.
#[derive(Serialize)]
struct TokenCount {
    input_tokens: u32,
}

/// Checks the `anthropic-version` header both endpoints require, then parses the body; the error
/// is the message for a 400.
fn checked_body(headers: &ApiHeaders<'_>, body: &[u8]) -> Result<Value, String> {
    match headers.anthropic_version {
        None => return Err("anthropic-version: header is required".to_owned()),
        Some(v) if !anthropic::is_accepted_version(v) => {
            return Err(format!(
                "anthropic-version: \"{v}\" is not a valid version; use one of {}",
                anthropic::VERSIONS.join(", ")
            ));
        }
        Some(_) => {}
    }
    parse_json(body)
}

/// The body as JSON, or the 400 message for it.
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("invalid JSON body: {e}"))
}

/// Validates a Messages API body and answers it; `id_tag` goes into the message and tool ids
/// (`msg_{id_tag}_N`).
pub(crate) async fn respond(
    shared: &Shared,
    conn: &mut Conn,
    value: &Value,
    id_tag: &str,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let req = match anthropic::parse_request(value) {
        Ok(req) => req,
        Err(msg) => return invalid(shared, conn, &msg, ctx).await,
    };
    let reply = requested_reply(&req.last_user_text).unwrap_or(&shared.reply);
    let ask = Ask {
        max_tokens: req.max_tokens,
        stop_sequences: &req.stop_sequences,
        tools: &req.tools,
        tool_choice: req.tool_choice,
        last_user_text: &req.last_user_text,
    };
    let outcome = reply::plan(&ask, reply);
    let n = shared.next_id();
    let id = format!("msg_{id_tag}_{n}");
    let tool_id = format!("toolu_{id_tag}_{n}");
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

/// A 400 `invalid_request_error` in Anthropic's shape.
pub(crate) async fn invalid(
    shared: &Shared,
    conn: &mut Conn,
    msg: &str,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let kind = "invalid_request_error";
    send_error(shared, conn, ErrorReply::new(400, msg, kind, kind), ctx).await
}
