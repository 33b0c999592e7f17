//! A Gemini `GenerateContentResponse` as an OpenAI chat completion (one choice per candidate),
//! and Google's error body as OpenAI's. Usage: `prompt_tokens` is `promptTokenCount` (cached
//! tokens included, as Google counts them), `completion_tokens` the candidates' and thoughts'
//! tokens, with `cached_tokens` and `reasoning_tokens` in the details.

use serde::Deserialize;
use serde_json::{Value, json};

/// Gemini's `usageMetadata`.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// Input tokens, cached ones included.
    #[serde(default)]
    pub prompt_token_count: u64,
    /// Output tokens of every candidate.
    #[serde(default)]
    pub candidates_token_count: u64,
    /// Input tokens read from the cache.
    #[serde(default)]
    pub cached_content_token_count: u64,
    /// Thinking tokens.
    #[serde(default)]
    pub thoughts_token_count: u64,
}

impl UsageMetadata {
    /// OpenAI's `usage` object.
    pub fn to_openai(self) -> Value {
        let completion = self
            .candidates_token_count
            .saturating_add(self.thoughts_token_count);
        json!({
            "prompt_tokens": self.prompt_token_count,
            "completion_tokens": completion,
            "total_tokens": self.prompt_token_count.saturating_add(completion),
            "prompt_tokens_details": { "cached_tokens": self.cached_content_token_count },
            "completion_tokens_details": { "reasoning_tokens": self.thoughts_token_count },
        })
    }
}

/// OpenAI's `finish_reason` for Gemini's `finishReason` (`tool_calls` when the candidate called
/// a function).
pub fn finish_reason(reason: Option<&str>, called: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => "content_filter",
        _ if called => "tool_calls",
        _ => "stop",
    }
}

/// One response or stream chunk.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Chunk {
    #[serde(default)]
    pub(super) candidates: Vec<Candidate>,
    #[serde(default)]
    pub(super) usage_metadata: Option<UsageMetadata>,
    #[serde(default)]
    pub(super) model_version: Option<String>,
    #[serde(default)]
    pub(super) response_id: Option<String>,
    #[serde(default)]
    pub(super) prompt_feedback: Option<Value>,
    #[serde(default)]
    pub(super) error: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Candidate {
    #[serde(default)]
    pub(super) content: Option<Content>,
    #[serde(default)]
    pub(super) finish_reason: Option<String>,
    #[serde(default)]
    pub(super) index: Option<u64>,
}

#[derive(Deserialize, Default)]
pub(super) struct Content {
    #[serde(default)]
    pub(super) parts: Vec<Part>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Part {
    #[serde(default)]
    pub(super) text: Option<String>,
    #[serde(default)]
    pub(super) thought: Option<bool>,
    #[serde(default)]
    pub(super) function_call: Option<FunctionCall>,
}

#[derive(Deserialize, Default)]
pub(super) struct FunctionCall {
    #[serde(default)]
    pub(super) id: Option<String>,
    pub(super) name: String,
    #[serde(default)]
    pub(super) args: Value,
}

impl FunctionCall {
    /// As an OpenAI tool call; Gemini gives calls no id unless asked, so one is made from the
    /// candidate and position.
    pub(super) fn to_tool_call(&self, candidate: u64, position: usize) -> Value {
        let id = self
            .id
            .clone()
            .unwrap_or_else(|| format!("call_{candidate}_{position}"));
        let arguments = if self.args.is_null() {
            "{}".to_string()
        } else {
            self.args.to_string()
        };
        json!({ "id": id, "type": "function", "function": { "name": self.name, "arguments": arguments } })
    }
}

/// The chat completion for a Gemini response body; `None` when `body` is not one.
pub fn to_chat_completion(body: &[u8], model: &str, created: u64) -> Option<Vec<u8>> {
    let response: Chunk = serde_json::from_slice(body).ok()?;
    let mut choices = Vec::new();
    for (i, candidate) in response.candidates.iter().enumerate() {
        let index = candidate.index.unwrap_or(i as u64);
        let mut text = String::new();
        let mut calls = Vec::new();
        let parts = candidate.content.iter().flat_map(|c| &c.parts);
        for part in parts.filter(|p| p.thought != Some(true)) {
            if let Some(t) = &part.text {
                text.push_str(t);
            }
            if let Some(call) = &part.function_call {
                calls.push(call.to_tool_call(index, calls.len()));
            }
        }
        let mut message = json!({
            "role": "assistant",
            "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) },
        });
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls.clone());
        }
        choices.push(json!({
            "index": index,
            "message": message,
            "finish_reason": finish_reason(candidate.finish_reason.as_deref(), !calls.is_empty()),
            "logprobs": null,
        }));
    }
    if choices.is_empty() {
        // The prompt itself was blocked (`promptFeedback.blockReason`): no candidate at all.
        choices.push(json!({
            "index": 0,
            "message": { "role": "assistant", "content": null },
            "finish_reason": "content_filter",
            "logprobs": null,
        }));
    }
    let completion = json!({
        "id": response.response_id.unwrap_or_default(),
        "object": "chat.completion",
        "created": created,
        "model": response.model_version.as_deref().unwrap_or(model),
        "choices": choices,
        "usage": response.usage_metadata.unwrap_or_default().to_openai(),
    });
    serde_json::to_vec(&completion).ok()
}

/// Google's error body (`{"error":{"code","message","status"}}`) as OpenAI's, keeping the
/// provider's message; anything else is wrapped as the message of an `upstream_error`.
pub fn to_openai_error(body: &[u8]) -> Vec<u8> {
    let parsed = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let error = v.get("error")?;
        Some((
            error
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("UNKNOWN")
                .to_string(),
            error.get("message")?.as_str()?.to_string(),
        ))
    });
    let (status, message) = parsed.unwrap_or_else(|| {
        (
            "upstream_error".to_string(),
            String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned(),
        )
    });
    let kind = match status.as_str() {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "NOT_FOUND" | "OUT_OF_RANGE" => {
            "invalid_request_error"
        }
        "UNAUTHENTICATED" | "PERMISSION_DENIED" => "authentication_error",
        "RESOURCE_EXHAUSTED" => "rate_limit_error",
        _ => "server_error",
    };
    let error =
        json!({ "error": { "message": message, "type": kind, "code": status, "param": null } });
    serde_json::to_vec(&error).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(body: Value) -> Value {
        serde_json::from_slice(
            &to_chat_completion(body.to_string().as_bytes(), "gemini-x", 9).unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn candidates_become_choices_with_text_tool_calls_and_usage() {
        let out = completion(json!({
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "thinking...", "thought": true}, {"text": "Hello"}, {"text": " there"}]}, "finishReason": "STOP", "index": 0},
                {"content": {"role": "model", "parts": [{"functionCall": {"name": "weather", "args": {"city": "Paris"}}}]}, "finishReason": "STOP", "index": 1},
            ],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 5, "cachedContentTokenCount": 8, "thoughtsTokenCount": 3, "totalTokenCount": 28},
            "modelVersion": "gemini-2.0-flash-001", "responseId": "r-1",
        }));
        assert_eq!(out["model"], "gemini-2.0-flash-001");
        assert_eq!(out["id"], "r-1");
        assert_eq!(out["choices"][0]["message"]["content"], "Hello there");
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        let call = &out["choices"][1]["message"]["tool_calls"][0];
        assert_eq!(
            call["function"],
            json!({"name": "weather", "arguments": "{\"city\":\"Paris\"}"})
        );
        assert_eq!(call["id"], "call_1_0");
        assert_eq!(out["choices"][1]["finish_reason"], "tool_calls");
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 20, "completion_tokens": 8, "total_tokens": 28,
                "prompt_tokens_details": {"cached_tokens": 8}, "completion_tokens_details": {"reasoning_tokens": 3}})
        );
    }

    #[test]
    fn safety_blocks_are_content_filter() {
        let out = completion(json!({"candidates": [{"finishReason": "SAFETY", "index": 0}]}));
        assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
        let out = completion(
            json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}}),
        );
        assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(out["model"], "gemini-x");
        assert_eq!(finish_reason(Some("MAX_TOKENS"), false), "length");
    }

    #[test]
    fn google_errors_keep_their_message() {
        let out: Value = serde_json::from_slice(&to_openai_error(
            br#"{"error":{"code":400,"message":"contents: required","status":"INVALID_ARGUMENT"}}"#,
        ))
        .unwrap();
        assert_eq!(out["error"]["message"], "contents: required");
        assert_eq!(out["error"]["type"], "invalid_request_error");
        assert_eq!(out["error"]["code"], "INVALID_ARGUMENT");
    }
}
