//! A Converse answer as an OpenAI chat completion, and a Bedrock error as an OpenAI one.
//!
//! Usage is counted as for Anthropic (through [`AnthropicUsage::to_openai`], so metrics read
//! the same for Claude served by either): Bedrock's `inputTokens`, like Anthropic's
//! `input_tokens`, leaves out the tokens read from and written to the prompt cache, so
//! `prompt_tokens` is `inputTokens + cacheReadInputTokens + cacheWriteInputTokens` (every input
//! token, each once) and `prompt_tokens_details.cached_tokens` is `cacheReadInputTokens`.
//! Bedrock's own `totalTokens` is not read: the total is recomputed from those parts.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::translate::anthropic::response::AnthropicUsage;

/// Converse's `usage` (the non-stream answer's, and the stream's `metadata`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ConverseUsage {
    /// Input tokens not read from or written to the cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens read from the cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    /// Input tokens written to the cache.
    #[serde(default)]
    pub cache_write_input_tokens: Option<u64>,
}

impl ConverseUsage {
    /// OpenAI's `usage` object (see the module's note).
    pub fn to_openai(self) -> Value {
        AnthropicUsage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_creation_input_tokens: self.cache_write_input_tokens,
            cache_read_input_tokens: self.cache_read_input_tokens,
        }
        .to_openai()
    }
}

/// OpenAI's `finish_reason` for Converse's `stopReason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened" | "content_filtered") => "content_filter",
        // end_turn, stop_sequence, or one Bedrock adds later.
        _ => "stop",
    }
}

/// The chat completion id for an answer created at `created`: Converse gives its answers none.
pub(super) fn completion_id(created: u64) -> String {
    format!("chatcmpl-bedrock-{created}")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Response {
    output: Output,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: ConverseUsage,
}

#[derive(Deserialize)]
struct Output {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Vec<Block>,
}

/// A content block: a union of which only text and tool calls reach the client (reasoning,
/// like Anthropic's thinking blocks, is left out; so is anything Bedrock adds later).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Block {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ToolUse>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUse {
    tool_use_id: String,
    name: String,
    #[serde(default)]
    input: Value,
}

/// The chat completion for a Converse answer body, for `model` (Converse names none) created at
/// `created`; `None` when `body` is not one.
pub fn to_chat_completion(body: &[u8], model: &str, created: u64) -> Option<Vec<u8>> {
    let response: Response = serde_json::from_slice(body).ok()?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in response.output.message.content {
        if let Some(t) = block.text {
            text.push_str(&t);
        }
        if let Some(call) = block.tool_use {
            let arguments = if call.input.is_null() {
                "{}".to_string()
            } else {
                call.input.to_string()
            };
            tool_calls.push(json!({
                "id": call.tool_use_id,
                "type": "function",
                "function": { "name": call.name, "arguments": arguments },
            }));
        }
    }
    let mut assistant = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { json!(text) },
    });
    if !tool_calls.is_empty() {
        assistant["tool_calls"] = Value::Array(tool_calls);
    }
    let completion = json!({
        "id": completion_id(created),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": assistant,
            "finish_reason": finish_reason(response.stop_reason.as_deref()),
            "logprobs": null,
        }],
        "usage": response.usage.to_openai(),
    });
    serde_json::to_vec(&completion).ok()
}

/// A Bedrock error as OpenAI's (`{"error":{"message","type","code"}}`). Bedrock puts the error's
/// type in the `x-amzn-errortype` header (`error_type`, e.g.
/// `ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/`: the part before
/// `:` is kept) and its message in the body (`{"message"}`, or `{"Message"}`); without the
/// header, the body's `__type` (`...#ValidationException`) names it. The `code` is Bedrock's
/// type, the `type` OpenAI's category for it, as for Anthropic's errors; a body that is not JSON
/// is passed on (its first KiB) as the message of an `upstream_error`.
pub fn to_openai_error(body: &[u8], error_type: Option<&str>) -> Vec<u8> {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let field = |key: &str| parsed.as_ref()?.get(key)?.as_str();
    let message = field("message")
        .or_else(|| field("Message"))
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned());
    let kind = error_type
        .and_then(error_name)
        .or_else(|| field("__type").and_then(error_name))
        .unwrap_or("upstream_error");
    let error = json!({
        "error": { "message": message, "type": openai_type(kind), "code": kind, "param": null },
    });
    serde_json::to_vec(&error).unwrap_or_default()
}

/// The error's name in an AWS error type: the part after a namespace's `#` and before `:`.
fn error_name(raw: &str) -> Option<&str> {
    let name = raw.rsplit('#').next().unwrap_or(raw);
    Some(name.split(':').next().unwrap_or(name).trim()).filter(|n| !n.is_empty())
}

/// OpenAI's error type for a Bedrock error type (exceptions are `ThrottlingException` in a
/// header and `throttlingException` in a stream: the case is not compared).
pub fn openai_type(kind: &str) -> &'static str {
    let kind = kind.to_ascii_lowercase();
    match kind.as_str() {
        "validationexception" | "resourcenotfoundexception" => "invalid_request_error",
        "accessdeniedexception"
        | "unrecognizedclientexception"
        | "invalidsignatureexception"
        | "incompletesignatureexception"
        | "missingauthenticationtokenexception"
        | "expiredtokenexception" => "authentication_error",
        "throttlingexception" | "servicequotaexceededexception" => "rate_limit_error",
        // internalServerException, serviceUnavailableException, modelTimeoutException,
        // modelErrorException, modelNotReadyException, modelStreamErrorException, ...
        _ => "server_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(body: Value) -> Value {
        let out = to_chat_completion(body.to_string().as_bytes(), "claude-on-bedrock", 7).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn error(body: &[u8], error_type: Option<&str>) -> Value {
        serde_json::from_slice(&to_openai_error(body, error_type)).unwrap()
    }

    #[test]
    fn an_answer_with_text_becomes_a_chat_completion() {
        let out = completion(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s"}}},
                {"text": "Hello"}, {"text": " there"},
            ]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
            "metrics": {"latencyMs": 100},
        }));
        assert_eq!(
            out,
            json!({
                "id": "chatcmpl-bedrock-7", "object": "chat.completion", "created": 7,
                "model": "claude-on-bedrock",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there"},
                    "finish_reason": "stop", "logprobs": null}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
                    "prompt_tokens_details": {"cached_tokens": 0}},
            })
        );
    }

    #[test]
    fn tool_use_becomes_tool_calls_and_cache_tokens_count_as_input() {
        let out = completion(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "tooluse_1", "name": "weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "tooluse_2", "name": "time", "input": null}},
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 135,
                "cacheReadInputTokens": 100, "cacheWriteInputTokens": 20},
        }));
        let choice = &out["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], Value::Null);
        assert_eq!(
            choice["message"]["tool_calls"],
            json!([
                {"id": "tooluse_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "tooluse_2", "type": "function", "function": {"name": "time", "arguments": "{}"}},
            ])
        );
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135,
                "prompt_tokens_details": {"cached_tokens": 100}})
        );
    }

    #[test]
    fn every_stop_reason_maps_to_a_finish_reason() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("tool_use", "tool_calls"),
            ("max_tokens", "length"),
            ("model_context_window_exceeded", "length"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
            ("something_new", "stop"),
        ] {
            let out = completion(json!({
                "output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
                "stopReason": stop,
            }));
            assert_eq!(out["choices"][0]["finish_reason"], finish, "{stop}");
        }
        assert_eq!(finish_reason(None), "stop");
    }

    #[test]
    fn what_is_not_a_converse_answer_is_none() {
        for body in [
            &b"not json"[..],
            br#"{"message": "oops"}"#,
            br#"{"output": {}}"#,
            br#"{"output": {"message": {"content": [{"text": 5}]}}}"#,
            br#"{"output": {"message": {"content": []}}, "usage": {"inputTokens": -1}}"#,
        ] {
            assert!(to_chat_completion(body, "m", 0).is_none());
        }
    }

    #[test]
    fn errors_take_their_type_from_the_header_and_their_message_from_the_body() {
        let out = error(
            br#"{"message":"Too many requests, please wait before trying again."}"#,
            Some("ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        );
        assert_eq!(
            out,
            json!({"error": {"message": "Too many requests, please wait before trying again.",
                "type": "rate_limit_error", "code": "ThrottlingException", "param": null}})
        );
        for (kind, openai) in [
            ("ValidationException", "invalid_request_error"),
            ("ResourceNotFoundException", "invalid_request_error"),
            ("AccessDeniedException", "authentication_error"),
            ("UnrecognizedClientException", "authentication_error"),
            ("ServiceQuotaExceededException", "rate_limit_error"),
            ("ModelTimeoutException", "server_error"),
            ("InternalServerException", "server_error"),
            ("ServiceUnavailableException", "server_error"),
        ] {
            let out = error(br#"{"Message":"m"}"#, Some(kind));
            assert_eq!(out["error"]["type"], openai, "{kind}");
            assert_eq!(out["error"]["code"], kind);
            assert_eq!(out["error"]["message"], "m");
        }
        assert_eq!(openai_type("throttlingException"), "rate_limit_error");
    }

    #[test]
    fn errors_without_the_header_or_without_json_are_still_openai_errors() {
        let out = error(
            br#"{"__type":"com.amazon.coral.validate#ValidationException","message":"bad"}"#,
            None,
        );
        assert_eq!(out["error"]["code"], "ValidationException");
        assert_eq!(out["error"]["type"], "invalid_request_error");
        let out = error(br#"{"message":"bad"}"#, None);
        assert_eq!(out["error"]["code"], "upstream_error");
        assert_eq!(out["error"]["type"], "server_error");
        assert_eq!(out["error"]["message"], "bad");
        let out = error(b"<html>bad gateway</html>", Some("InternalServerException"));
        assert_eq!(out["error"]["message"], "<html>bad gateway</html>");
        assert_eq!(out["error"]["code"], "InternalServerException");
        let long = vec![b'x'; 5000];
        let out = error(&long, Some(""));
        assert_eq!(out["error"]["message"].as_str().unwrap().len(), 1024);
        assert_eq!(out["error"]["code"], "upstream_error");
    }
}
