//! A chat completion as an OpenAI Response object
//! (<https://platform.openai.com/docs/api-reference/responses/object>), for a client that asked
//! in the Responses API a provider that does not speak it.
//!
//! The assistant's text (and refusal) becomes one `message` item, its tool calls `function_call`
//! items after it, and usage the Responses usage. A `length` or `content_filter` finish makes
//! the response (and its items) `incomplete`, with the reason. The translation sees only the
//! answer, never the request: the fields that echo the request report their defaults (`tools`
//! empty, `tool_choice` `auto`, `parallel_tool_calls` true, `temperature` and `top_p` null), and
//! `store` is false, as the gateway stores nothing for such a provider. `completed_at` is null:
//! the translation reads no clock.

use serde_json::{Value, json};

/// A Response's `status`, and its `incomplete_details`, for a chat `finish_reason`.
pub(super) fn status(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({ "reason": "max_output_tokens" })),
        Some("content_filter") => ("incomplete", json!({ "reason": "content_filter" })),
        // stop, tool_calls, function_call, or none given.
        _ => ("completed", Value::Null),
    }
}

/// The Response `id` for a chat completion `id` (one from `created_at` when it has none, as
/// some translated providers name no answer).
pub(super) fn response_id(chat_id: &str, created_at: u64) -> String {
    if chat_id.is_empty() {
        format!("resp_{created_at}")
    } else {
        format!("resp_{chat_id}")
    }
}

/// The id of the output item at `output_index` of the response `response_id` (`prefix` `msg` or
/// `fc`): the same in a streamed and a whole answer, unique within the response.
pub(super) fn item_id(prefix: &str, response_id: &str, output_index: usize) -> String {
    let base = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("{prefix}_{base}_{output_index}")
}

/// An `output_text` content part.
pub(super) fn output_text(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

/// A `refusal` content part.
pub(super) fn refusal(refusal: &str) -> Value {
    json!({ "type": "refusal", "refusal": refusal })
}

/// A `message` output item.
pub(super) fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({ "id": id, "type": "message", "role": "assistant", "status": status, "content": content })
}

/// A `function_call` output item.
pub(super) fn function_call_item(
    id: &str,
    status: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
) -> Value {
    json!({
        "id": id, "type": "function_call", "status": status,
        "call_id": call_id, "name": name, "arguments": arguments,
    })
}

/// A whole Response object: `status` and `incomplete_details` as [`status`] gives them, `usage`
/// a Responses usage (or null).
pub(super) fn response_object(
    id: &str,
    created_at: u64,
    model: &str,
    (status, incomplete_details): (&str, Value),
    output: Vec<Value>,
    usage: Value,
) -> Value {
    json!({
        "id": id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": false,
        "completed_at": null,
        "error": null,
        "incomplete_details": incomplete_details,
        "instructions": null,
        "max_output_tokens": null,
        "max_tool_calls": null,
        "metadata": null,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": null,
        "service_tier": null,
        "store": false,
        "temperature": null,
        "text": { "format": { "type": "text" } },
        "tool_choice": "auto",
        "tools": [],
        "top_logprobs": null,
        "top_p": null,
        "truncation": "disabled",
        "usage": usage,
        "user": null,
    })
}

/// The Responses `usage` for a chat completion `usage` (missing counts are 0; the total is the
/// sum when the chat usage gives none).
pub fn usage(chat_usage: &Value) -> Value {
    let count = |pointer: &str| chat_usage.pointer(pointer).and_then(Value::as_u64);
    let input = count("/prompt_tokens").unwrap_or(0);
    let output = count("/completion_tokens").unwrap_or(0);
    // The current API reference requires `cache_write_tokens`; a chat usage reports it only
    // where the provider counts cache writes apart (0 otherwise).
    let input_details = json!({
        "cached_tokens": count("/prompt_tokens_details/cached_tokens").unwrap_or(0),
        "cache_write_tokens": count("/prompt_tokens_details/cache_write_tokens").unwrap_or(0),
    });
    json!({
        "input_tokens": input,
        "input_tokens_details": input_details,
        "output_tokens": output,
        "output_tokens_details": {
            "reasoning_tokens": count("/completion_tokens_details/reasoning_tokens").unwrap_or(0),
        },
        "total_tokens": count("/total_tokens").unwrap_or_else(|| input.saturating_add(output)),
    })
}

/// The text of a chat message's `content` (a string, or text parts), if any.
fn content_text(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect(),
        ),
        _ => None,
    }
}

/// The Response for `chat_completion` (a chat completion body), created at `created_at`; `None`
/// when the body is not a chat completion.
pub fn to_response(chat_completion: &[u8], created_at: u64) -> Option<Vec<u8>> {
    let completion: Value = serde_json::from_slice(chat_completion).ok()?;
    if completion
        .get("object")
        .is_some_and(|o| o != "chat.completion")
    {
        return None;
    }
    let choices = completion.get("choices")?.as_array()?;
    let id = response_id(
        completion.get("id").and_then(Value::as_str).unwrap_or(""),
        created_at,
    );
    let model = completion
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("");
    // One answer per request (the request translation refuses `n`): the first choice.
    let choice = choices.first();
    let (status, incomplete_details) = status(
        choice
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str),
    );
    let mut output = Vec::new();
    if let Some(message) = choice.and_then(|c| c.get("message")) {
        let mut content = Vec::new();
        if let Some(text) = content_text(message.get("content")).filter(|t| !t.is_empty()) {
            content.push(output_text(&text));
        }
        if let Some(text) = message
            .get("refusal")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            content.push(refusal(text));
        }
        if !content.is_empty() {
            output.push(message_item(&item_id("msg", &id, 0), status, content));
        }
        for call in message
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let string = |pointer: &str| call.pointer(pointer).and_then(Value::as_str);
            let fc_id = item_id("fc", &id, output.len());
            output.push(function_call_item(
                &fc_id,
                status,
                string("/id").unwrap_or(&fc_id),
                string("/function/name").unwrap_or(""),
                string("/function/arguments").unwrap_or(""),
            ));
        }
    }
    let usage = completion
        .get("usage")
        .filter(|u| u.is_object())
        .map_or(Value::Null, usage);
    let response = response_object(
        &id,
        created_at,
        model,
        (status, incomplete_details),
        output,
        usage,
    );
    serde_json::to_vec(&response).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(completion: Value) -> Value {
        let bytes = to_response(completion.to_string().as_bytes(), 7).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn text_and_usage_become_a_message_item_and_responses_usage() {
        let out = translate(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "claude-x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                      "prompt_tokens_details": {"cached_tokens": 3},
                      "completion_tokens_details": {"reasoning_tokens": 2}},
        }));
        assert_eq!(out["id"], "resp_chatcmpl-1");
        assert_eq!(out["object"], "response");
        assert_eq!(out["created_at"], 7);
        assert_eq!(out["status"], "completed");
        assert_eq!(out["incomplete_details"], Value::Null);
        assert_eq!(out["model"], "claude-x");
        assert_eq!(out["error"], Value::Null);
        assert_eq!(out["store"], false);
        assert_eq!(out["tools"], json!([]));
        assert_eq!(out["text"], json!({"format": {"type": "text"}}));
        assert_eq!(
            out["output"],
            json!([{"id": "msg_chatcmpl-1_0", "type": "message", "role": "assistant", "status": "completed",
                    "content": [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]}])
        );
        assert_eq!(
            out["usage"],
            json!({"input_tokens": 12, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
                   "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2},
                   "total_tokens": 17})
        );
    }

    #[test]
    fn tool_calls_become_function_call_items_after_the_message() {
        let out = translate(json!({
            "id": "c", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Checking.",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
                ]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2},
        }));
        assert_eq!(out["status"], "completed");
        assert_eq!(out["output"][0]["type"], "message");
        assert_eq!(
            out["output"][1],
            json!({"id": "fc_c_1", "type": "function_call", "status": "completed", "call_id": "call_1",
                   "name": "weather", "arguments": "{\"city\":\"Paris\"}"})
        );
        assert_eq!(out["output"][2]["call_id"], "call_2");
        assert_eq!(out["output"][2]["id"], "fc_c_2");
        assert_eq!(out["usage"]["total_tokens"], 3);
        assert_eq!(out["usage"]["input_tokens_details"]["cached_tokens"], 0);
        // Without text there is no message item.
        let out = translate(json!({
            "id": "c", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null,
                "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}],
        }));
        assert_eq!(out["output"].as_array().unwrap().len(), 1);
        assert_eq!(out["output"][0]["id"], "fc_c_0");
        assert_eq!(out["usage"], Value::Null);
    }

    #[test]
    fn length_and_content_filter_make_an_incomplete_response() {
        for (finish, reason) in [
            ("length", "max_output_tokens"),
            ("content_filter", "content_filter"),
        ] {
            let out = translate(json!({
                "id": "c", "object": "chat.completion", "model": "m",
                "choices": [{"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": "Hel"}}],
            }));
            assert_eq!(out["status"], "incomplete");
            assert_eq!(out["incomplete_details"], json!({"reason": reason}));
            assert_eq!(out["output"][0]["status"], "incomplete");
        }
    }

    #[test]
    fn a_refusal_becomes_a_refusal_part() {
        let out = translate(json!({
            "id": "c", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": null, "refusal": "I can't."}}],
        }));
        assert_eq!(
            out["output"][0]["content"],
            json!([{"type": "refusal", "refusal": "I can't."}])
        );
    }

    #[test]
    fn what_is_not_a_chat_completion_is_none() {
        for body in [
            &b"not json"[..],
            b"{}",
            b"{\"object\": \"list\", \"choices\": []}",
            b"{\"choices\": 3}",
        ] {
            assert!(to_response(body, 0).is_none());
        }
    }
}
