//! An Anthropic Messages response as an OpenAI chat completion, and an Anthropic error body as an
//! OpenAI one. Usage counts every input token: `prompt_tokens` is `input_tokens` plus the cache
//! reads and writes (Anthropic counts those apart), and `prompt_tokens_details.cached_tokens` the
//! cache reads, so cached tokens are counted once.

use serde::Deserialize;
use serde_json::{Value, json};

/// Anthropic's usage object.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct AnthropicUsage {
    /// Input tokens not read from or written to the cache.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens written to the cache.
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
}

impl AnthropicUsage {
    /// OpenAI's `usage` object.
    pub fn to_openai(self) -> Value {
        let cached = self.cache_read_input_tokens.unwrap_or(0);
        let prompt = self
            .input_tokens
            .saturating_add(cached)
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0));
        json!({
            "prompt_tokens": prompt,
            "completion_tokens": self.output_tokens,
            "total_tokens": prompt.saturating_add(self.output_tokens),
            "prompt_tokens_details": { "cached_tokens": cached },
        })
    }
}

/// OpenAI's `finish_reason` for Anthropic's `stop_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        // end_turn, stop_sequence, pause_turn, or none given.
        _ => "stop",
    }
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

/// The chat completion for an Anthropic message body; `None` when `body` is not one.
pub fn to_chat_completion(body: &[u8], created: u64) -> Option<Vec<u8>> {
    let message: Message = serde_json::from_slice(body).ok()?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in message.content {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::ToolUse { id, name, input } => tool_calls.push(json!({
                "id": id,
                "type": "function",
                "function": { "name": name, "arguments": input.to_string() },
            })),
            Block::Other => {}
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
        "id": message.id,
        "object": "chat.completion",
        "created": created,
        "model": message.model,
        "choices": [{
            "index": 0,
            "message": assistant,
            "finish_reason": finish_reason(message.stop_reason.as_deref()),
            "logprobs": null,
        }],
        "usage": message.usage.to_openai(),
    });
    serde_json::to_vec(&completion).ok()
}

/// An Anthropic error body (`{"type":"error","error":{"type","message"}}`) as OpenAI's
/// (`{"error":{"message","type","code"}}`), keeping the provider's message; anything else is
/// wrapped as the message of an `upstream_error`.
pub fn to_openai_error(body: &[u8]) -> Vec<u8> {
    let parsed: Option<(String, String)> =
        serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let error = v.get("error")?;
            Some((
                error.get("type")?.as_str()?.to_string(),
                error.get("message")?.as_str()?.to_string(),
            ))
        });
    let (kind, message) = parsed.unwrap_or_else(|| {
        (
            "upstream_error".to_string(),
            String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned(),
        )
    });
    let openai_type = match kind.as_str() {
        "invalid_request_error" | "not_found_error" | "request_too_large" => {
            "invalid_request_error"
        }
        "authentication_error" | "permission_error" => "authentication_error",
        "rate_limit_error" => "rate_limit_error",
        _ => "server_error",
    };
    let error = json!({ "error": { "message": message, "type": openai_type, "code": kind, "param": null } });
    serde_json::to_vec(&error).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_with_text_and_a_tool_call_becomes_a_chat_completion() {
        let body = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [
                {"type": "text", "text": "Let me check. "},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20},
        });
        let out: Value =
            serde_json::from_slice(&to_chat_completion(body.to_string().as_bytes(), 7).unwrap())
                .unwrap();
        assert_eq!(out["object"], "chat.completion");
        assert_eq!(out["created"], 7);
        assert_eq!(out["model"], "claude-x");
        let choice = &out["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls");
        assert_eq!(choice["message"]["content"], "Let me check. ");
        assert_eq!(
            choice["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 130, "completion_tokens": 5, "total_tokens": 135, "prompt_tokens_details": {"cached_tokens": 100}})
        );
    }

    #[test]
    fn stop_reasons_map_to_finish_reasons() {
        for (stop, finish) in [
            (Some("end_turn"), "stop"),
            (Some("stop_sequence"), "stop"),
            (Some("max_tokens"), "length"),
            (Some("tool_use"), "tool_calls"),
            (Some("refusal"), "content_filter"),
            (None, "stop"),
        ] {
            assert_eq!(finish_reason(stop), finish);
        }
    }

    #[test]
    fn errors_keep_the_providers_message_in_openais_shape() {
        let out: Value = serde_json::from_slice(&to_openai_error(
            br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: too large"}}"#,
        ))
        .unwrap();
        assert_eq!(out["error"]["message"], "max_tokens: too large");
        assert_eq!(out["error"]["type"], "invalid_request_error");
        assert_eq!(out["error"]["code"], "invalid_request_error");
        let out: Value =
            serde_json::from_slice(&to_openai_error(b"<html>bad gateway</html>")).unwrap();
        assert_eq!(out["error"]["message"], "<html>bad gateway</html>");
        assert!(to_chat_completion(b"not json", 0).is_none());
    }
}
