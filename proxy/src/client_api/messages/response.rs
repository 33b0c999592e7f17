//! An OpenAI chat completion as an Anthropic `message`
//! (<https://docs.anthropic.com/en/api/messages>), and errors in Anthropic's shape
//! (<https://docs.anthropic.com/en/api/errors>).
//!
//! Usage: OpenAI's `prompt_tokens` counts every input token, cache reads included
//! (`prompt_tokens_details.cached_tokens`), while Anthropic's `input_tokens` counts only those
//! neither read from nor written to the cache. So `input_tokens` is `prompt_tokens` less the
//! cached tokens, `cache_read_input_tokens` the cached tokens, and `cache_creation_input_tokens`
//! 0 (chat completions does not report cache writes apart).
//!
//! Reasoning (`reasoning_content`, which some OpenAI-compatible providers add) is dropped: a
//! client of this translation cannot have asked for thinking (the request translation refuses
//! it), and a `thinking` block would need a signature only Anthropic can make.

use serde::Deserialize;
use serde_json::{Value, json};

/// OpenAI's `usage` object (each count may be missing).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ChatUsage {
    /// Every input token, cached ones included.
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    /// The cached part of the input.
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptDetails>,
}

/// OpenAI's `usage.prompt_tokens_details`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct PromptDetails {
    /// Input tokens read from the cache.
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

impl ChatUsage {
    /// Anthropic's usage counts: `input_tokens`, `output_tokens`, `cache_read_input_tokens` and
    /// `cache_creation_input_tokens` (the fields of both `Usage` and `MessageDeltaUsage`).
    pub fn to_anthropic(self) -> Value {
        let cached = self
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0);
        let prompt = self.prompt_tokens.unwrap_or(0);
        json!({
            // A provider reporting more cached tokens than input tokens is wrong; never below 0.
            "input_tokens": prompt.saturating_sub(cached),
            "output_tokens": self.completion_tokens.unwrap_or(0),
            "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": 0,
        })
    }
}

/// Anthropic's `stop_reason` for OpenAI's `finish_reason`. `stop` may have been a stop sequence,
/// but chat completions does not say which, so it is `end_turn` (with `stop_sequence: null`).
/// `tool_use`: the answer holds tool calls; some providers finish those with `stop`, and a
/// Messages client runs the tools only on `tool_use`.
pub fn stop_reason(finish_reason: Option<&str>, tool_use: bool) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ if tool_use => "tool_use",
        _ => "end_turn",
    }
}

/// The message id for a chat completion id: Anthropic's ids start with `msg_`.
pub fn message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        id.to_string()
    } else {
        format!("msg_{id}")
    }
}

/// A tool call's `arguments` as a `tool_use` block's `input`. Empty arguments are `{}` (a call
/// without arguments). Arguments that are not JSON are kept as the string they are, not
/// replaced by `{}`: the client then sees exactly what the model produced (as a streamed client
/// does in the `input_json_delta`s), and a tool runner rejects it as it would any bad input,
/// instead of running the tool with no arguments.
pub fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    serde_json::from_str(arguments).unwrap_or_else(|_| json!(arguments))
}

#[derive(Deserialize)]
struct Completion {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<ChatUsage>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u64,
    message: ChatMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
}

#[derive(Deserialize)]
struct ToolCall {
    #[serde(default)]
    id: Option<String>,
    function: Function,
}

#[derive(Deserialize)]
struct Function {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// The text of a message's `content`: a string, or the text of an array of parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// The Anthropic message for a chat completion body; `None` when `chat_completion` is not one.
/// The first choice is the answer (the request never asks for more than one). A refusal
/// (`message.refusal`) is a text block with `stop_reason: refusal`.
pub fn to_message(chat_completion: &[u8]) -> Option<Vec<u8>> {
    let completion: Completion = serde_json::from_slice(chat_completion).ok()?;
    let choice = completion
        .choices
        .iter()
        .find(|c| c.index == 0)
        .or(completion.choices.first())?;
    let mut content = Vec::new();
    let text = content_text(choice.message.content.as_ref());
    if !text.is_empty() {
        content.push(json!({ "type": "text", "text": text }));
    }
    let refusal = choice.message.refusal.as_deref().filter(|r| !r.is_empty());
    if let Some(refusal) = refusal {
        content.push(json!({ "type": "text", "text": refusal }));
    }
    let calls = choice.message.tool_calls.as_deref().unwrap_or_default();
    for (n, call) in calls.iter().enumerate() {
        content.push(json!({
            "type": "tool_use",
            // Anthropic clients answer a call by its id: one is made when the provider gave none.
            "id": call.id.clone().unwrap_or_else(|| format!("toolu_{n}")),
            "name": call.function.name.as_deref().unwrap_or_default(),
            "input": tool_input(call.function.arguments.as_deref().unwrap_or_default()),
        }));
    }
    let stop_reason = if refusal.is_some() {
        "refusal"
    } else {
        stop_reason(choice.finish_reason.as_deref(), !calls.is_empty())
    };
    let message = json!({
        "id": message_id(completion.id.as_deref().unwrap_or_default()),
        "type": "message",
        "role": "assistant",
        "model": completion.model.unwrap_or_default(),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": completion.usage.unwrap_or_default().to_anthropic(),
    });
    serde_json::to_vec(&message).ok()
}

/// Anthropic's error `type` for an HTTP status, as Anthropic documents them (402
/// `billing_error` and 504 `timeout_error` included).
pub fn error_type(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        // Any other 4xx: the request was wrong in some way Anthropic has no type for.
        _ if (400..500).contains(&status) => "invalid_request_error",
        _ => "api_error",
    }
}

/// An Anthropic error body: `{"type":"error","error":{"type","message"}}`, its type from
/// `status`.
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    let body = json!({
        "type": "error",
        "error": { "type": error_type(status), "message": message },
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The most bytes of a body that is not an OpenAI error kept as the message.
const MAX_RAW_MESSAGE: usize = 1024;

/// An OpenAI error body (`{"error":{"message","type","code"}}`) answered with `status`, as
/// Anthropic's: the message kept, the type from the status. Anything else (an error that is a
/// bare string, HTML from a proxy, nothing) becomes the message, cut to a bounded length.
pub fn to_anthropic_error(openai_error: &[u8], status: u16) -> Vec<u8> {
    let parsed = serde_json::from_slice::<Value>(openai_error).ok();
    let message = parsed.as_ref().and_then(|body| {
        let error = body.get("error");
        error
            .and_then(|e| e.get("message"))
            .or(error)
            .or(body.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    let message = message.unwrap_or_else(|| {
        let raw = String::from_utf8_lossy(&openai_error[..openai_error.len().min(MAX_RAW_MESSAGE)]);
        let raw = raw.trim();
        if raw.is_empty() {
            http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("error")
                .to_string()
        } else {
            raw.to_string()
        }
    });
    error_body(status, &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(completion: Value) -> Value {
        serde_json::from_slice(&to_message(completion.to_string().as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn a_completion_with_text_and_tool_calls_becomes_a_message() {
        let out = message(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me check.",
                "reasoning_content": "dropped",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "clock", "arguments": ""}},
                ],
            }}],
            "usage": {"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135, "prompt_tokens_details": {"cached_tokens": 100}},
        }));
        assert_eq!(
            out,
            json!({
                "id": "msg_chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-x",
                "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "call_2", "name": "clock", "input": {}},
                ],
                "stop_reason": "tool_use", "stop_sequence": null,
                "usage": {"input_tokens": 30, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0},
            })
        );
    }

    #[test]
    fn finish_reasons_map_to_stop_reasons() {
        for (finish, tools, stop) in [
            (Some("stop"), false, "end_turn"),
            (Some("stop"), true, "tool_use"),
            (None, false, "end_turn"),
            (Some("length"), false, "max_tokens"),
            (Some("length"), true, "max_tokens"),
            (Some("tool_calls"), true, "tool_use"),
            (Some("function_call"), false, "tool_use"),
            (Some("content_filter"), false, "refusal"),
        ] {
            assert_eq!(stop_reason(finish, tools), stop, "{finish:?}");
        }
        let out = message(json!({
            "id": "msg_abc", "model": "m",
            "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "Hel"}}],
        }));
        assert_eq!(out["id"], "msg_abc");
        assert_eq!(out["stop_reason"], "max_tokens");
        assert_eq!(
            out["usage"],
            json!({"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0})
        );
    }

    #[test]
    fn refusals_empty_answers_and_odd_arguments() {
        let out = message(json!({
            "id": "c", "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        }));
        assert_eq!(
            out["content"],
            json!([{"type": "text", "text": "I can't help with that."}])
        );
        assert_eq!(out["stop_reason"], "refusal");
        let out = message(json!({
            "id": "c", "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ""}}],
        }));
        assert_eq!(out["content"], json!([]));
        assert_eq!(out["stop_reason"], "end_turn");
        let out = message(json!({
            "id": "c", "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "tool_calls": [
                {"function": {"name": "f", "arguments": "{\"x\": tru"}},
            ]}}],
        }));
        assert_eq!(out["content"][0], json!({"type": "text", "text": "ab"}));
        assert_eq!(
            out["content"][1],
            json!({"type": "tool_use", "id": "toolu_0", "name": "f", "input": "{\"x\": tru"})
        );
    }

    #[test]
    fn what_is_not_a_chat_completion_is_none() {
        for body in [
            &b"not json"[..],
            br#"{"error": {"message": "x"}}"#,
            br#"{"id": "c", "choices": []}"#,
            br#"{"id": "c", "choices": [{"index": 0}]}"#,
        ] {
            assert!(
                to_message(body).is_none(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn statuses_map_to_anthropics_error_types() {
        for (status, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (402, "billing_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (409, "invalid_request_error"),
            (413, "request_too_large"),
            (422, "invalid_request_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (504, "timeout_error"),
            (529, "overloaded_error"),
        ] {
            assert_eq!(error_type(status), kind, "{status}");
        }
    }

    #[test]
    fn errors_keep_the_message_in_anthropics_shape() {
        let error = |body: &[u8], status| -> Value {
            serde_json::from_slice(&to_anthropic_error(body, status)).unwrap()
        };
        assert_eq!(
            error(
                br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
                429
            ),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "Rate limit reached"}})
        );
        assert_eq!(
            error(br#"{"error":"model not found"}"#, 404)["error"],
            json!({"type": "not_found_error", "message": "model not found"})
        );
        assert_eq!(
            error(b"<html>bad gateway</html>", 502)["error"]["message"],
            "<html>bad gateway</html>"
        );
        assert_eq!(error(b"", 503)["error"]["message"], "Service Unavailable");
        let long = vec![b'x'; 10_000];
        assert_eq!(
            error(&long, 500)["error"]["message"]
                .as_str()
                .unwrap()
                .len(),
            MAX_RAW_MESSAGE
        );
        let body: Value = serde_json::from_slice(&error_body(401, "bad key")).unwrap();
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": "authentication_error", "message": "bad key"}})
        );
    }
}
