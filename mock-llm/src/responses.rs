//! `POST /v1/responses`: OpenAI's Responses API, answering with the chat endpoint's reply rule
//! (`Reply with exactly: X` in the last user input, else the configured reply).
//!
//! * The body is validated as the API does (see [`crate::responses_api`]); errors, injected
//!   `status=` faults included, are `{"error":{"message","type","param","code"}}`.
//! * The turn (text, function call, output tokens) follows [`crate::reply`], with `function`
//!   tools as its tools and `tool_choice` `required` as Anthropic's `any`: a `message` output
//!   item with one `output_text` part and/or a `function_call` item. Tokens are words (plus one
//!   per piece of a call's arguments); a `max_output_tokens` below the reply cuts it by words and
//!   makes the response `incomplete` (`incomplete_details.reason: "max_output_tokens"`).
//! * `input_tokens` counts function tool names and descriptions, `instructions`, the input's
//!   text and, with `previous_response_id`, the stored conversation it continues.
//! * Responses are stored unless `store` is false (see [`crate::response_store`]):
//!   `previous_response_id` must name one (400 `previous_response_not_found` otherwise), and a
//!   `function_call_output` must answer a call made earlier in the input or in that conversation.
//! * Streaming sends the documented events, each `event: <type>` with a `sequence_number` from 0:
//!   `response.created`, `response.in_progress`, per output item `response.output_item.added`,
//!   for a message `response.content_part.added`, one `response.output_text.delta` per word,
//!   `response.output_text.done`, `response.content_part.done`, for a function call
//!   `response.function_call_arguments.delta` (8-byte pieces) and `.done`, then
//!   `response.output_item.done`; last `response.completed` (or `response.incomplete`) with the
//!   whole response. An `error-after` fault sends an `error` event in its place.

use std::io;

use serde_json::Value;

use crate::handlers::{Ctx, ErrorReply, Flow, Slot, send_error_body, send_json, send_stream};
use crate::http::Conn;
use crate::openai::{CREATED, reply_pieces, requested_reply};
use crate::reply::{self, Ask, json_pieces};
use crate::response_store::{MAX_PENDING_CALLS, Stored};
use crate::responses_api::{
    self, ErrorBody, ErrorDetail, IncompleteDetails, Invalid, OutputItem, OutputText,
    ResponseObject, Sequenced, StreamError, StreamEvent, Usage,
};
use crate::server::Shared;

/// What an `error-after` fault's `error` event says.
const STREAM_ERROR_MESSAGE: &str =
    "The server had an error while processing your request. Sorry about that!";

pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let message = format!(
                "We could not parse the JSON body of your request. (HINT: This likely means you \
                 aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, \
                 but what was sent was not valid JSON.) {e}"
            );
            let invalid = Invalid {
                message,
                param: None,
                code: None,
            };
            return send_invalid(shared, conn, &invalid, ctx).await;
        }
    };
    let req = match responses_api::parse_request(&value) {
        Ok(req) => req,
        Err(invalid) => return send_invalid(shared, conn, &invalid, ctx).await,
    };
    let previous = match req.previous_response_id {
        Some(id) => match shared.responses.get(id) {
            Some(stored) => Some(stored),
            None => {
                let invalid = Invalid {
                    message: format!("Previous response with id '{id}' not found."),
                    param: Some("previous_response_id".to_owned()),
                    code: Some("previous_response_not_found"),
                };
                return send_invalid(shared, conn, &invalid, ctx).await;
            }
        },
        None => None,
    };
    let pending: &[String] = previous.as_ref().map_or(&[], |p| &p.pending_calls);
    if let Some(call_id) = req
        .unmatched_outputs
        .iter()
        .find(|id| !pending.iter().any(|p| p == *id))
    {
        let invalid = Invalid {
            message: format!("No tool call found for function call output with call_id {call_id}."),
            param: Some("input".to_owned()),
            code: None,
        };
        return send_invalid(shared, conn, &invalid, ctx).await;
    }

    let reply = requested_reply(&req.last_user_text).unwrap_or(&shared.reply);
    let ask = Ask {
        max_tokens: req.max_output_tokens,
        stop_sequences: &[],
        tools: &req.tools,
        tool_choice: req.tool_choice,
        last_user_text: &req.last_user_text,
    };
    let outcome = reply::plan(&ask, reply);
    let incomplete = outcome.stop_reason == "max_tokens";
    let context_tokens = previous.as_ref().map_or(0, |p| p.context_tokens);
    let usage = Usage::new(
        context_tokens.saturating_add(req.prompt_tokens),
        outcome.output_tokens,
    );
    let n = shared.next_id();
    let id = format!("resp_mock_{n}");
    let msg_id = format!("msg_mock_{n}");
    let fc_id = format!("fc_mock_{n}");
    let call_id = format!("call_mock_{n}");

    if req.store {
        // The conversation a follow-up continues: what came before, this input (not its
        // instructions) and this output; calls stay pending until an output answers them.
        let mut open: Vec<&str> = pending
            .iter()
            .map(String::as_str)
            .chain(req.calls.iter().copied())
            .filter(|c| !req.answered.contains(c))
            .collect();
        if outcome.tool.is_some() {
            open.push(&call_id);
        }
        // Only the newest are kept, so copy no more than those.
        let keep = open.len().saturating_sub(MAX_PENDING_CALLS);
        let pending_calls = open[keep..].iter().map(|c| (*c).to_owned()).collect();
        let stored = Stored {
            context_tokens: usage.total_tokens.saturating_sub(req.instruction_tokens),
            pending_calls,
        };
        shared.responses.insert(id.clone(), stored);
    }

    // The text was cut when it is shorter than the reply; an incomplete response whose text is
    // whole lost its function call instead.
    let text_cut = incomplete && outcome.text.is_some_and(|t| t.len() < reply.len());
    let mut output = Vec::with_capacity(2);
    if let Some(text) = outcome.text {
        output.push(OutputItem::Message {
            id: &msg_id,
            status: if text_cut { "incomplete" } else { "completed" },
            role: "assistant",
            content: vec![OutputText::new(text)],
        });
    }
    if let Some(tool) = &outcome.tool {
        output.push(OutputItem::FunctionCall {
            id: &fc_id,
            status: "completed",
            arguments: &tool.json,
            call_id: &call_id,
            name: tool.name,
        });
    }
    let done = ResponseObject {
        id: &id,
        object: "response",
        created_at: CREATED,
        status: if incomplete {
            "incomplete"
        } else {
            "completed"
        },
        completed_at: (!incomplete).then_some(CREATED),
        error: None,
        incomplete_details: incomplete.then_some(IncompleteDetails {
            reason: "max_output_tokens",
        }),
        model: req.model,
        output: &output,
        usage: Some(usage),
        echo: &req.echo,
    };
    if !req.stream {
        return send_json(shared, conn, 200, &done, ctx).await;
    }

    let snapshot = || ResponseObject {
        status: "in_progress",
        completed_at: None,
        incomplete_details: None,
        output: &[],
        usage: None,
        ..done
    };
    let mut events = vec![
        StreamEvent::Created {
            response: snapshot(),
        },
        StreamEvent::InProgress {
            response: snapshot(),
        },
    ];
    for (output_index, item) in output.iter().enumerate() {
        match item {
            OutputItem::Message {
                id, role, content, ..
            } => {
                let added = OutputItem::Message {
                    id,
                    status: "in_progress",
                    role,
                    content: Vec::new(),
                };
                events.push(StreamEvent::OutputItemAdded {
                    output_index,
                    item: added,
                });
                for (content_index, part) in content.iter().enumerate() {
                    events.push(StreamEvent::ContentPartAdded {
                        item_id: id,
                        output_index,
                        content_index,
                        part: OutputText::new(""),
                    });
                    for delta in reply_pieces(part.text) {
                        events.push(StreamEvent::OutputTextDelta {
                            item_id: id,
                            output_index,
                            content_index,
                            delta,
                            logprobs: [],
                        });
                    }
                    events.push(StreamEvent::OutputTextDone {
                        item_id: id,
                        output_index,
                        content_index,
                        text: part.text,
                        logprobs: [],
                    });
                    events.push(StreamEvent::ContentPartDone {
                        item_id: id,
                        output_index,
                        content_index,
                        part: *part,
                    });
                }
            }
            OutputItem::FunctionCall {
                id,
                arguments,
                call_id,
                name,
                ..
            } => {
                let added = OutputItem::FunctionCall {
                    id,
                    status: "in_progress",
                    arguments: "",
                    call_id,
                    name,
                };
                events.push(StreamEvent::OutputItemAdded {
                    output_index,
                    item: added,
                });
                for delta in json_pieces(arguments) {
                    events.push(StreamEvent::FunctionCallArgumentsDelta {
                        item_id: id,
                        output_index,
                        delta,
                    });
                }
                events.push(StreamEvent::FunctionCallArgumentsDone {
                    item_id: id,
                    name,
                    output_index,
                    arguments,
                });
            }
        }
        events.push(StreamEvent::OutputItemDone {
            output_index,
            item: item.clone(),
        });
    }
    events.push(if incomplete {
        StreamEvent::Incomplete { response: done }
    } else {
        StreamEvent::Completed { response: done }
    });

    let content_type = "text/event-stream";
    send_stream(
        shared,
        conn,
        ctx,
        content_type,
        events.len(),
        |slot, buf| {
            let sequence_number = match slot {
                Slot::Event(i) | Slot::Error(i) => i,
            };
            let (name, rendered) = match slot {
                Slot::Event(i) => {
                    let Some(event) = events.get(i) else {
                        return Ok(());
                    };
                    let sequenced = Sequenced {
                        event,
                        sequence_number,
                    };
                    (event.name(), serde_json::to_vec(&sequenced)?)
                }
                Slot::Error(_) => {
                    let error = StreamError {
                        kind: "error",
                        code: "server_error",
                        message: STREAM_ERROR_MESSAGE,
                        param: None,
                        sequence_number,
                    };
                    ("error", serde_json::to_vec(&error)?)
                }
            };
            buf.extend_from_slice(b"event: ");
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(b"\ndata: ");
            buf.extend_from_slice(&rendered);
            buf.extend_from_slice(b"\n\n");
            Ok(())
        },
    )
    .await
}

/// Sends an error in OpenAI's shape with `param: null` (an empty `reply.code` becomes `null`).
pub(crate) async fn send_error(
    shared: &Shared,
    conn: &mut Conn,
    reply: ErrorReply<'_>,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let error = ErrorDetail {
        message: reply.message,
        kind: reply.kind,
        param: None,
        code: Some(reply.code).filter(|c| !c.is_empty()),
    };
    let body = serde_json::to_vec(&ErrorBody { error })?;
    send_error_body(shared, conn, reply.status, &body, reply.retry_after, ctx).await
}

/// A 400 `invalid_request_error` naming the parameter at fault.
async fn send_invalid(
    shared: &Shared,
    conn: &mut Conn,
    invalid: &Invalid,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let error = ErrorDetail {
        message: &invalid.message,
        kind: "invalid_request_error",
        param: invalid.param.as_deref(),
        code: invalid.code,
    };
    let body = serde_json::to_vec(&ErrorBody { error })?;
    send_error_body(shared, conn, 400, &body, None, ctx).await
}
