//! Bedrock's Converse answers: the JSON of `converse` and the binary AWS event stream of
//! `converse-stream` (`application/vnd.amazon.eventstream`).
//!
//! * The turn follows [`crate::reply`], the rules Anthropic's API answers by: `text` and
//!   `toolUse` blocks (ids `tooluse_mock_N`), `stopReason` `end_turn`, `tool_use`, `max_tokens` or
//!   `stop_sequence`. `usage.inputTokens` leaves out `cacheReadInputTokens` (the prompt up to the
//!   last `cachePoint`); `totalTokens` is input + output + cache read + cache write.
//!   `metrics.latencyMs` is the time the answer took to send.
//! * The stream is one event-stream message per event, headers `:event-type`, `:content-type`
//!   `application/json`, `:message-type` `event`: `messageStart`, the text as one
//!   `contentBlockDelta` per word then `contentBlockStop` (Bedrock sends no start for text), a
//!   tool use as `contentBlockStart` (`toolUseId`, `name`), its input JSON in 8-byte
//!   `contentBlockDelta`s and `contentBlockStop`, then `messageStop` and `metadata`. An
//!   `error-after` fault puts an `internalServerException` exception message in place of an
//!   event and ends the stream.

use std::io;
use std::time::Instant;

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use serde::Serialize;
use serde_json::Value;

use crate::bedrock::{self, reply};
use crate::handlers::{Ctx, Flow, Slot, send_json_with, send_stream_with};
use crate::http::Conn;
use crate::openai::{reply_pieces, requested_reply};
use crate::reply::{Ask, Outcome, json_pieces, plan};
use crate::server::Shared;
use crate::{converse, converse::ConverseRequest};

pub(crate) const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";
/// What an `error-after` fault's exception says.
const STREAM_ERROR: &str = "The system encountered an unexpected error during processing. Try \
    your request again.";

#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
struct Usage {
    input_tokens: u32,
    output_tokens: u32,
    total_tokens: u32,
    cache_read_input_tokens: u32,
    cache_write_input_tokens: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    latency_ms: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum Block<'a> {
    Text(&'a str),
    ToolUse {
        #[serde(rename = "toolUseId")]
        tool_use_id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Vec<Block<'a>>,
}

#[derive(Serialize)]
struct Output<'a> {
    message: AssistantMessage<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse<'a> {
    output: Output<'a>,
    stop_reason: &'static str,
    usage: Usage,
    metrics: Metrics,
}

/// One event of the stream: its `:event-type` and JSON payload.
enum Event<'a> {
    MessageStart,
    ToolStart {
        index: usize,
        id: &'a str,
        name: &'a str,
    },
    TextDelta {
        index: usize,
        text: &'a str,
    },
    InputDelta {
        index: usize,
        input: &'a str,
    },
    BlockStop {
        index: usize,
    },
    MessageStop {
        stop_reason: &'static str,
    },
    Metadata,
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart => "messageStart",
            Event::ToolStart { .. } => "contentBlockStart",
            Event::TextDelta { .. } | Event::InputDelta { .. } => "contentBlockDelta",
            Event::BlockStop { .. } => "contentBlockStop",
            Event::MessageStop { .. } => "messageStop",
            Event::Metadata => "metadata",
        }
    }

    fn payload(&self, usage: Usage, started: Instant) -> Value {
        use serde_json::json;
        match *self {
            Event::MessageStart => json!({"role": "assistant"}),
            Event::ToolStart { index, id, name } => json!({"contentBlockIndex": index,
                "start": {"toolUse": {"toolUseId": id, "name": name}}}),
            Event::TextDelta { index, text } => {
                json!({"contentBlockIndex": index, "delta": {"text": text}})
            }
            Event::InputDelta { index, input } => {
                json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": input}}})
            }
            Event::BlockStop { index } => json!({"contentBlockIndex": index}),
            Event::MessageStop { stop_reason } => json!({"stopReason": stop_reason}),
            Event::Metadata => json!({"usage": usage, "metrics": metrics(started)}),
        }
    }
}

fn metrics(started: Instant) -> Metrics {
    let ms = started.elapsed().as_millis();
    Metrics {
        latency_ms: u64::try_from(ms).unwrap_or(u64::MAX),
    }
}

pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    model: &str,
    stream: bool,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    let started = Instant::now();
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("Malformed request body: {e}");
            let r = reply(400, "SerializationException", &msg);
            return bedrock::send_error(shared, conn, r, ctx).await;
        }
    };
    let req = match converse::parse_request(&value) {
        Ok(req) => req,
        Err(msg) => {
            let r = reply(400, "ValidationException", &msg);
            return bedrock::send_error(shared, conn, r, ctx).await;
        }
    };
    tracing::trace!(model, stream, "bedrock converse");
    let text = requested_reply(&req.last_user_text).unwrap_or(&shared.reply);
    let ask = Ask {
        max_tokens: req.max_tokens,
        stop_sequences: &req.stop_sequences,
        tools: &req.tools,
        tool_choice: req.tool_choice,
        last_user_text: &req.last_user_text,
    };
    let outcome = plan(&ask, text);
    let usage = usage(&req, &outcome);
    let tool_id = format!("tooluse_mock_{}", shared.next_id());
    let request_id = bedrock::request_id(shared);
    let extra = format!("x-amzn-RequestId: {request_id}\r\n");

    if !stream {
        let mut content = Vec::with_capacity(2);
        if let Some(text) = outcome.text {
            content.push(Block::Text(text));
        }
        if let Some(tool) = &outcome.tool {
            content.push(Block::ToolUse {
                tool_use_id: &tool_id,
                name: tool.name,
                input: &tool.input,
            });
        }
        let response = ConverseResponse {
            output: Output {
                message: AssistantMessage {
                    role: "assistant",
                    content,
                },
            },
            stop_reason: outcome.stop_reason,
            usage,
            metrics: metrics(started),
        };
        let body = serde_json::to_vec(&response)?;
        return send_json_with(shared, conn, 200, &body, extra.as_bytes(), ctx).await;
    }

    let events = events(&outcome, &tool_id);
    send_stream_with(
        shared,
        conn,
        ctx,
        EVENT_STREAM,
        extra.as_bytes(),
        events.len(),
        |slot, buf| match slot {
            Slot::Event(i) => match events.get(i) {
                Some(event) => write_event(buf, event.name(), &event.payload(usage, started)),
                None => Ok(()),
            },
            Slot::Error(_) => write_exception(buf, "internalServerException", STREAM_ERROR),
        },
    )
    .await
}

fn usage(req: &ConverseRequest<'_>, outcome: &Outcome<'_>) -> Usage {
    let input = req.prompt_tokens.saturating_sub(req.cached_tokens);
    Usage {
        input_tokens: input,
        output_tokens: outcome.output_tokens,
        total_tokens: input
            .saturating_add(outcome.output_tokens)
            .saturating_add(req.cached_tokens),
        cache_read_input_tokens: req.cached_tokens,
        cache_write_input_tokens: 0,
    }
}

/// The stream's events, in Bedrock's order.
fn events<'a>(outcome: &'a Outcome<'a>, tool_id: &'a str) -> Vec<Event<'a>> {
    let mut events = vec![Event::MessageStart];
    let mut index = 0;
    if let Some(text) = outcome.text {
        let pieces = reply_pieces(text);
        // An empty text still opens (and closes) its block, as a non-stream answer holds it.
        let pieces = if pieces.is_empty() { vec![""] } else { pieces };
        for text in pieces {
            events.push(Event::TextDelta { index, text });
        }
        events.push(Event::BlockStop { index });
        index += 1;
    }
    if let Some(tool) = &outcome.tool {
        events.push(Event::ToolStart {
            index,
            id: tool_id,
            name: tool.name,
        });
        for input in json_pieces(&tool.json) {
            events.push(Event::InputDelta { index, input });
        }
        events.push(Event::BlockStop { index });
    }
    events.push(Event::MessageStop {
        stop_reason: outcome.stop_reason,
    });
    events.push(Event::Metadata);
    events
}

fn string(v: &'static str) -> HeaderValue {
    HeaderValue::String(v.into())
}

fn encode(buf: &mut Vec<u8>, headers: Vec<Header>, payload: &Value) -> io::Result<()> {
    let payload = serde_json::to_vec(payload)?;
    let message = Message::new_from_parts(headers, payload);
    write_message_to(&message, buf).map_err(io::Error::other)
}

/// Appends one `:message-type: event` message.
fn write_event(buf: &mut Vec<u8>, event_type: &'static str, payload: &Value) -> io::Result<()> {
    let headers = vec![
        Header::new(":event-type", string(event_type)),
        Header::new(":content-type", string("application/json")),
        Header::new(":message-type", string("event")),
    ];
    encode(buf, headers, payload)
}

/// Appends one `:message-type: exception` message.
fn write_exception(buf: &mut Vec<u8>, exception: &'static str, message: &str) -> io::Result<()> {
    let headers = vec![
        Header::new(":exception-type", string(exception)),
        Header::new(":content-type", string("application/json")),
        Header::new(":message-type", string("exception")),
    ];
    encode(buf, headers, &serde_json::json!({"message": message}))
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::read_message_from;
    use bytes::Bytes;

    use super::*;

    #[test]
    fn frames_decode_back_to_their_headers_and_payload() {
        let mut buf = Vec::new();
        write_event(
            &mut buf,
            "messageStop",
            &serde_json::json!({"stopReason": "end_turn"}),
        )
        .unwrap();
        let message = read_message_from(Bytes::from(buf)).unwrap();
        let header = |name: &str| {
            message
                .headers()
                .iter()
                .find(|h| h.name().as_str() == name)
                .and_then(|h| h.value().as_string().ok())
                .map(|s| s.as_str().to_owned())
        };
        assert_eq!(header(":event-type").as_deref(), Some("messageStop"));
        assert_eq!(header(":message-type").as_deref(), Some("event"));
        assert_eq!(header(":content-type").as_deref(), Some("application/json"));
        let payload: Value = serde_json::from_slice(message.payload()).unwrap();
        assert_eq!(payload, serde_json::json!({"stopReason": "end_turn"}));
    }
}
