//! An OpenAI chat completion request as an Anthropic Messages request
//! (<https://docs.anthropic.com/en/api/messages>): system and developer messages become `system`,
//! tool calls and tool results become `tool_use` and `tool_result` blocks, images become `image`
//! blocks, and `max_tokens` (required by Anthropic) comes from the request or
//! [`DEFAULT_MAX_TOKENS`]. A feature Anthropic cannot express is a `400` naming it, never dropped.

use serde_json::{Map, Value, json};

use crate::openai::error::ProxyError;
use crate::translate::openai_request::{
    self, ToolChoice, Turn, conversation, function_tools, invalid, max_tokens, stop_sequences,
    text_of, tool_calls,
};

/// `max_tokens` when the request sets neither `max_completion_tokens` nor `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The Anthropic request for `request` (an OpenAI chat completion request), with `model`.
pub fn to_messages_request(request: &Value, model: &str) -> Result<Value, ProxyError> {
    let object = request
        .as_object()
        .ok_or_else(|| invalid("", "the request body must be a JSON object"))?;
    openai_request::refuse_unexpressible(object, API)?;
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    let (system, messages) = messages(object.get("messages"))?;
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n\n")));
    }
    out.insert("messages".into(), Value::Array(messages));
    let max_tokens = max_tokens(object)?.unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), json!(max_tokens));
    if let Some(sequences) = stop_sequences(object)? {
        out.insert("stop_sequences".into(), Value::Array(sequences));
    }
    for field in ["temperature", "top_p"] {
        if let Some(value) = object.get(field).filter(|v| !v.is_null()) {
            out.insert(field.into(), value.clone());
        }
    }
    if object.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
    }
    if let Some(user) = object.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    let tool_choice = tool_choice(object)?;
    if let Some(tools) = tools(object.get("tools"))? {
        // With `tool_choice: none` Anthropic still needs the tools the history refers to.
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = tool_choice {
        out.insert("tool_choice".into(), choice);
    }
    Ok(Value::Object(out))
}

/// The API named in refusals.
const API: &str = "Anthropic's Messages API";

/// The system prompt parts and the conversation (tool results follow as `user` content, as
/// Anthropic wants them).
fn messages(messages: Option<&Value>) -> Result<(Vec<String>, Vec<Value>), ProxyError> {
    conversation(messages, "content", |role, message, field| {
        Ok(match role {
            "user" => Turn::Items(
                "user",
                openai_request::user_content(
                    message.get("content"),
                    field,
                    API,
                    |text| json!({ "type": "text", "text": text }),
                    image_block,
                )?,
            ),
            "assistant" => Turn::Items("assistant", assistant_blocks(message, field)?),
            "tool" => Turn::Items("user", vec![tool_result(message, field)?]),
            _ => Turn::Unsupported,
        })
    })
}

/// An image from a `data:` URL (base64) or an `http(s)` URL; `field` names the URL.
fn image_block(url: &str, field: &str) -> Result<Value, ProxyError> {
    if url.starts_with("data:") {
        let (media_type, data) = openai_request::data_url(url)
            .ok_or_else(|| invalid(field, "a data URL must be base64"))?;
        return Ok(json!({
            "type": "image",
            "source": { "type": "base64", "media_type": media_type, "data": data },
        }));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
    }
    Err(invalid(field, "must be a data: or http(s) URL"))
}

/// An assistant message: its text, then its tool calls as `tool_use` blocks.
fn assistant_blocks(message: &Value, field: &str) -> Result<Vec<Value>, ProxyError> {
    let mut blocks = match message.get("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) if text.is_empty() => Vec::new(),
        content => vec![json!({ "type": "text", "text": text_of(content, field)? })],
    };
    for call in tool_calls(message, field)? {
        let id = call
            .id
            .ok_or_else(|| invalid(&format!("{field}.tool_calls"), "every call needs an id"))?;
        blocks.push(
            json!({ "type": "tool_use", "id": id, "name": call.name, "input": call.arguments }),
        );
    }
    Ok(blocks)
}

/// A `tool` message as a `tool_result` block.
fn tool_result(message: &Value, field: &str) -> Result<Value, ProxyError> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{field}.tool_call_id"), "must be a string"))?;
    let content = text_of(message.get("content"), field)?;
    Ok(json!({ "type": "tool_result", "tool_use_id": id, "content": content }))
}

/// OpenAI function tools as Anthropic tools.
fn tools(tools: Option<&Value>) -> Result<Option<Vec<Value>>, ProxyError> {
    let Some(tools) = function_tools(tools, API)? else {
        return Ok(None);
    };
    let tools = tools
        .into_iter()
        .map(|tool| {
            let mut out = json!({
                "name": tool.name,
                "input_schema": tool
                    .parameters
                    .cloned()
                    .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
            });
            if let Some(description) = tool.description {
                out["description"] = description.clone();
            }
            out
        })
        .collect();
    Ok(Some(tools))
}

/// `tool_choice` (and `parallel_tool_calls: false`) in Anthropic's form.
fn tool_choice(object: &Map<String, Value>) -> Result<Option<Value>, ProxyError> {
    let mut choice = openai_request::tool_choice(object)?.map(|choice| match choice {
        ToolChoice::Auto => json!({ "type": "auto" }),
        ToolChoice::None => json!({ "type": "none" }),
        ToolChoice::Required => json!({ "type": "any" }),
        ToolChoice::Function(name) => json!({ "type": "tool", "name": name }),
    });
    if object.get("parallel_tool_calls") == Some(&json!(false))
        && object.get("tools").is_some_and(|t| !t.is_null())
    {
        let choice = choice.get_or_insert_with(|| json!({ "type": "auto" }));
        if choice["type"] != "none" {
            choice["disable_parallel_tool_use"] = json!(true);
        }
    }
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(request: Value) -> Value {
        to_messages_request(&request, "claude-x").unwrap()
    }

    #[test]
    fn system_messages_become_the_system_prompt_and_max_tokens_is_always_set() {
        let out = translate(json!({
            "model": "client-model",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
                {"role": "user", "content": "Hi"},
            ],
            "temperature": 0.2, "stop": "END", "user": "u-1", "stream": true,
            "stream_options": {"include_usage": true},
        }));
        assert_eq!(
            out,
            json!({
                "model": "claude-x",
                "system": "Be brief.\n\nNo emoji.",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                "max_tokens": DEFAULT_MAX_TOKENS,
                "stop_sequences": ["END"],
                "temperature": 0.2,
                "stream": true,
                "metadata": {"user_id": "u-1"},
            })
        );
        let out = translate(json!({
            "messages": [{"role": "user", "content": "Hi"}],
            "max_tokens": 10, "max_completion_tokens": 20,
        }));
        assert_eq!(out["max_tokens"], 20);
    }

    #[test]
    fn a_tool_round_trip_becomes_tool_use_and_tool_result_blocks() {
        let out = translate(json!({
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
        }));
        assert_eq!(
            out["messages"][1]["content"][1],
            json!({"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}})
        );
        // Both results in one user message, in order.
        assert_eq!(out["messages"].as_array().unwrap().len(), 3);
        assert_eq!(out["messages"][2]["role"], "user");
        assert_eq!(
            out["messages"][2]["content"][1],
            json!({"type": "tool_result", "tool_use_id": "call_2", "content": "rain"})
        );
        assert_eq!(
            out["tools"][0]["input_schema"]["properties"]["city"]["type"],
            "string"
        );
        assert_eq!(out["tools"][0]["description"], "Weather");
        assert_eq!(
            out["tool_choice"],
            json!({"type": "any", "disable_parallel_tool_use": true})
        );
        let named = translate(json!({
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
        }));
        assert_eq!(named["tool_choice"], json!({"type": "tool", "name": "f"}));
        assert_eq!(
            named["tools"][0]["input_schema"],
            json!({"type": "object", "properties": {}})
        );
    }

    #[test]
    fn images_from_data_and_http_urls() {
        let out = translate(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ]}]}));
        let content = &out["messages"][0]["content"];
        assert_eq!(
            content[1],
            json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}})
        );
        assert_eq!(
            content[2],
            json!({"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}})
        );
    }

    #[test]
    fn what_anthropic_cannot_express_is_a_400_naming_it() {
        for (field, value) in [
            ("n", json!(2)),
            ("logprobs", json!(true)),
            ("seed", json!(7)),
            ("presence_penalty", json!(0.5)),
            ("response_format", json!({"type": "json_object"})),
            ("modalities", json!(["text", "audio"])),
        ] {
            let mut request = json!({"messages": [{"role": "user", "content": "x"}]});
            request[field] = value;
            let error = to_messages_request(&request, "m").unwrap_err();
            assert_eq!(error.status, http::StatusCode::BAD_REQUEST);
            assert!(
                error.message.starts_with(&format!("{field}:")),
                "{}",
                error.message
            );
        }
        // Defaults are not a request for the feature.
        let request = json!({"messages": [{"role": "user", "content": "x"}], "n": 1, "logprobs": false, "seed": null, "presence_penalty": 0, "response_format": {"type": "text"}});
        assert!(to_messages_request(&request, "m").is_ok());
        let error = to_messages_request(
            &json!({"messages": [{"role": "system", "content": "only"}]}),
            "m",
        )
        .unwrap_err();
        assert!(error.message.starts_with("messages:"), "{}", error.message);
        let error = to_messages_request(
            &json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
            "m",
        )
        .unwrap_err();
        assert!(
            error.message.starts_with("max_tokens:"),
            "{}",
            error.message
        );
    }
}
