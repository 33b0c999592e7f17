//! An OpenAI chat completion request as an Amazon Bedrock Converse request
//! (<https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_Converse.html>): system
//! and developer messages become `system` blocks, the conversation `messages` of `text`, `image`,
//! `toolUse` and `toolResult` blocks (tool results as user turns, consecutive turns of one role
//! merged, as Converse wants them alternating), sampling settings `inferenceConfig`, and tools
//! `toolConfig`. The model goes in the path ([`super::converse_path`]), not the body. A feature
//! Converse cannot express is a `400` naming it, never dropped.

use serde_json::{Map, Value, json};

use crate::openai::error::ProxyError;
use crate::translate::openai_request::{
    self, ToolChoice, Turn, conversation, data_url, function_tools, invalid, max_tokens,
    refuse_unexpressible, stop_sequences, text_of, tool_calls, tool_choice,
};

/// The Converse request for `request` (an OpenAI chat completion request).
pub fn to_converse_request(request: &Value) -> Result<Value, ProxyError> {
    let object = request
        .as_object()
        .ok_or_else(|| invalid("", "the request body must be a JSON object"))?;
    refuse_unexpressible(object, API)?;
    // Converse has no switch for parallel calls: `true` (OpenAI's default) is what models do,
    // `false` cannot be had.
    if object.get("parallel_tool_calls") == Some(&json!(false)) {
        return Err(unsupported(
            "parallel_tool_calls",
            "turning parallel tool calls off is not available",
        ));
    }
    let mut out = Map::new();
    let (system, messages) = messages(object.get("messages"))?;
    // Converse takes the system prompt as blocks: one per message, and none for an empty one
    // (Converse refuses blank text).
    let system: Vec<Value> = system
        .into_iter()
        .filter(|text| !text.is_empty())
        .map(|text| json!({ "text": text }))
        .collect();
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    let tool_config = tool_config(object, &messages)?;
    out.insert("messages".into(), Value::Array(messages));
    let config = inference_config(object)?;
    if !config.is_empty() {
        out.insert("inferenceConfig".into(), Value::Object(config));
    }
    if let Some(config) = tool_config {
        out.insert("toolConfig".into(), config);
    }
    // `user` is left out: Converse's nearest field, `requestMetadata`, only labels invocation
    // logs and refuses values outside a narrow alphabet, and `user` asks for nothing an answer
    // shows. `stream` is the path; `stream_options` needs nothing (usage always comes).
    Ok(Value::Object(out))
}

/// The API named in refusals.
const API: &str = "Amazon Bedrock's Converse API";

fn unsupported(field: &str, why: &str) -> ProxyError {
    openai_request::unsupported(field, why, API)
}

/// `inferenceConfig` from OpenAI's token limit, sampling settings and stop sequences.
fn inference_config(object: &Map<String, Value>) -> Result<Map<String, Value>, ProxyError> {
    let mut config = Map::new();
    if let Some(max) = max_tokens(object)? {
        config.insert("maxTokens".into(), json!(max));
    }
    for (from, to) in [("temperature", "temperature"), ("top_p", "topP")] {
        if let Some(value) = object.get(from).filter(|v| !v.is_null()) {
            config.insert(to.into(), value.clone());
        }
    }
    if let Some(sequences) = stop_sequences(object)? {
        config.insert("stopSequences".into(), Value::Array(sequences));
    }
    Ok(config)
}

/// The system prompt parts and the conversation (tool results follow as `user` content).
fn messages(messages: Option<&Value>) -> Result<(Vec<String>, Vec<Value>), ProxyError> {
    conversation(messages, "content", |role, message, field| {
        Ok(match role {
            "user" => Turn::Items(
                "user",
                openai_request::user_content(
                    message.get("content"),
                    field,
                    API,
                    |text| json!({ "text": text }),
                    image_block,
                )?,
            ),
            "assistant" => Turn::Items("assistant", assistant_blocks(message, field)?),
            "tool" => Turn::Items("user", vec![tool_result(message, field)?]),
            _ => Turn::Unsupported,
        })
    })
}

/// Converse takes image bytes (base64 in JSON) or S3 objects, never a URL it would fetch: a
/// base64 `data:` URL of one of the four formats it reads.
fn image_block(url: &str, field: &str) -> Result<Value, ProxyError> {
    let Some((media_type, data)) = data_url(url) else {
        return Err(unsupported(
            field,
            "only base64 data: URLs are available (Converse does not fetch image URLs)",
        ));
    };
    let format = match media_type.to_ascii_lowercase().as_str() {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        _ => {
            return Err(unsupported(
                field,
                &format!("images of type {media_type:?} are not available (png, jpeg, gif, webp)"),
            ));
        }
    };
    Ok(json!({ "image": { "format": format, "source": { "bytes": data } } }))
}

/// An assistant message: its text, then its tool calls as `toolUse` blocks.
fn assistant_blocks(message: &Value, field: &str) -> Result<Vec<Value>, ProxyError> {
    let mut blocks = match message.get("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) if text.is_empty() => Vec::new(),
        content => vec![json!({ "text": text_of(content, field)? })],
    };
    for call in tool_calls(message, field)? {
        // A result names its call by this id: without one, it could answer nothing.
        let id = call
            .id
            .ok_or_else(|| invalid(&format!("{field}.tool_calls"), "every call needs an id"))?;
        blocks.push(json!({
            "toolUse": { "toolUseId": id, "name": call.name, "input": call.arguments },
        }));
    }
    Ok(blocks)
}

/// A `tool` message as a `toolResult` block (OpenAI's results carry no status: none is sent,
/// which Converse reads as success).
fn tool_result(message: &Value, field: &str) -> Result<Value, ProxyError> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{field}.tool_call_id"), "must be a string"))?;
    let content = text_of(message.get("content"), field)?;
    Ok(json!({ "toolResult": { "toolUseId": id, "content": [{ "text": content }] } }))
}

/// `toolConfig` from `tools` and `tool_choice`: none without tools, or with `tool_choice: none`
/// (Converse's `toolChoice` has no "none": withholding the tools is how it is said).
fn tool_config(
    object: &Map<String, Value>,
    messages: &[Value],
) -> Result<Option<Value>, ProxyError> {
    let choice = tool_choice(object)?;
    let tools = tool_specs(object.get("tools"))?.filter(|tools| !tools.is_empty());
    let choice = match (choice, tools.is_some()) {
        (Some(ToolChoice::None), _) => {
            // Converse refuses a conversation holding tool calls or results without
            // `toolConfig`: say so by name rather than pass on its refusal.
            if holds_tool_blocks(messages) {
                return Err(unsupported(
                    "tool_choice",
                    "\"none\" is not available once the conversation holds tool calls or \
                     results (Converse then needs the tools, and cannot forbid calling them)",
                ));
            }
            return Ok(None);
        }
        (None, _) => None,
        (Some(_), false) => return Err(invalid("tool_choice", "needs at least one tool")),
        (Some(ToolChoice::Auto), true) => Some(json!({ "auto": {} })),
        (Some(ToolChoice::Required), true) => Some(json!({ "any": {} })),
        (Some(ToolChoice::Function(name)), true) => Some(json!({ "tool": { "name": name } })),
    };
    let Some(tools) = tools else {
        return Ok(None);
    };
    let mut config = json!({ "tools": tools });
    if let Some(choice) = choice {
        config["toolChoice"] = choice;
    }
    Ok(Some(config))
}

/// Whether a Converse message holds a `toolUse` or `toolResult` block.
fn holds_tool_blocks(messages: &[Value]) -> bool {
    messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_array))
        .flatten()
        .any(|block| block.get("toolUse").is_some() || block.get("toolResult").is_some())
}

/// OpenAI function tools as Converse `toolSpec`s.
fn tool_specs(tools: Option<&Value>) -> Result<Option<Vec<Value>>, ProxyError> {
    let Some(tools) = function_tools(tools, API)? else {
        return Ok(None);
    };
    let specs = tools
        .into_iter()
        .map(|tool| {
            let schema = tool
                .parameters
                .cloned()
                .unwrap_or_else(|| json!({ "type": "object", "properties": {} }));
            let mut spec = json!({ "name": tool.name, "inputSchema": { "json": schema } });
            // Converse refuses an empty description: one is sent only when there is one.
            if let Some(description) = tool
                .description
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
            {
                spec["description"] = json!(description);
            }
            json!({ "toolSpec": spec })
        })
        .collect();
    Ok(Some(specs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(request: Value) -> Value {
        to_converse_request(&request).unwrap()
    }

    fn refusal(request: Value) -> String {
        let error = to_converse_request(&request).unwrap_err();
        assert_eq!(error.status, http::StatusCode::BAD_REQUEST);
        error.message
    }

    #[test]
    fn system_messages_become_system_blocks_and_settings_the_inference_config() {
        let out = translate(json!({
            "model": "client-model",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "No emoji."}]},
                {"role": "system", "content": ""},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": [{"type": "text", "text": "Bye"}]},
            ],
            "temperature": 0.2, "top_p": 0.9, "max_tokens": 10, "max_completion_tokens": 20,
            "stop": ["END", "STOP"], "user": "u-1", "stream": true,
            "stream_options": {"include_usage": true},
        }));
        assert_eq!(
            out,
            json!({
                "system": [{"text": "Be brief."}, {"text": "No emoji."}],
                "messages": [
                    {"role": "user", "content": [{"text": "Hi"}]},
                    {"role": "assistant", "content": [{"text": "Hello"}]},
                    {"role": "user", "content": [{"text": "Bye"}]},
                ],
                "inferenceConfig": {"maxTokens": 20, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END", "STOP"]},
            })
        );
        let out = translate(json!({"messages": [{"role": "user", "content": "Hi"}], "stop": "X"}));
        assert_eq!(out["inferenceConfig"], json!({"stopSequences": ["X"]}));
        // Nothing set, no inference config: the model's defaults hold.
        let out = translate(json!({"messages": [{"role": "user", "content": "Hi"}]}));
        assert_eq!(
            out,
            json!({"messages": [{"role": "user", "content": [{"text": "Hi"}]}]})
        );
    }

    #[test]
    fn images_from_data_urls_become_image_blocks_and_urls_are_refused() {
        let out = translate(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "data:image/JPEG;base64,/9j/"}},
            {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklG", "detail": "low"}},
        ]}]}));
        let content = &out["messages"][0]["content"];
        assert_eq!(content[0], json!({"text": "What is this?"}));
        assert_eq!(
            content[1],
            json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
        );
        assert_eq!(content[2]["image"]["format"], "jpeg");
        assert_eq!(content[3]["image"]["format"], "webp");
        for url in ["https://example.com/cat.jpg", "data:image/bmp;base64,Qk0="] {
            let message = refusal(json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}]}]}));
            assert!(
                message.starts_with("messages[0].content[0].image_url.url:"),
                "{message}"
            );
        }
        let message = refusal(json!({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}));
        assert!(
            message.starts_with("messages[0].content[0].type:"),
            "{message}"
        );
    }

    #[test]
    fn a_tool_round_trip_becomes_tool_use_and_merged_tool_result_blocks() {
        let out = translate(json!({
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": ""}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
                {"role": "user", "content": "Thanks"},
            ],
            "tools": [
                {"type": "function", "function": {"name": "weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "time", "description": null}},
            ],
        }));
        assert_eq!(
            out["messages"][1],
            json!({"role": "assistant", "content": [
                {"text": "Checking."},
                {"toolUse": {"toolUseId": "call_1", "name": "weather", "input": {"city": "Paris"}}},
                {"toolUse": {"toolUseId": "call_2", "name": "weather", "input": {}}},
            ]})
        );
        // Both results, and the user's next words, in one user message, in order.
        assert_eq!(out["messages"].as_array().unwrap().len(), 3);
        assert_eq!(
            out["messages"][2],
            json!({"role": "user", "content": [
                {"toolResult": {"toolUseId": "call_1", "content": [{"text": "sunny"}]}},
                {"toolResult": {"toolUseId": "call_2", "content": [{"text": "rain"}]}},
                {"text": "Thanks"},
            ]})
        );
        assert_eq!(
            out["toolConfig"],
            json!({"tools": [
                {"toolSpec": {"name": "weather", "description": "Weather", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}},
                {"toolSpec": {"name": "time", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
            ]})
        );
    }

    #[test]
    fn every_tool_choice_form() {
        let request = |choice: Value| {
            json!({
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": choice,
            })
        };
        for (choice, expected) in [
            (json!("auto"), json!({"auto": {}})),
            (json!("required"), json!({"any": {}})),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                json!({"tool": {"name": "f"}}),
            ),
        ] {
            assert_eq!(
                translate(request(choice))["toolConfig"]["toolChoice"],
                expected
            );
        }
        // `none`: the tools are withheld.
        let out = translate(request(json!("none")));
        assert!(out.get("toolConfig").is_none(), "{out}");
        // ... which Converse cannot take once the conversation holds tool calls.
        let mut with_history = request(json!("none"));
        with_history["messages"] = json!([
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "done"},
        ]);
        assert!(refusal(with_history).starts_with("tool_choice:"));
        // A choice needs tools; no tools, no tool config.
        let no_tools =
            json!({"messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"});
        assert!(refusal(no_tools).starts_with("tool_choice:"));
        let empty = json!({"messages": [{"role": "user", "content": "x"}], "tools": []});
        assert!(translate(empty).get("toolConfig").is_none());
        assert!(refusal(request(json!("sometimes"))).starts_with("tool_choice:"));
    }

    #[test]
    fn what_converse_cannot_express_is_a_400_naming_it() {
        for (field, value) in [
            ("n", json!(2)),
            ("logprobs", json!(true)),
            ("top_logprobs", json!(3)),
            ("logit_bias", json!({"1": 2})),
            ("seed", json!(7)),
            ("presence_penalty", json!(0.5)),
            ("frequency_penalty", json!(0.5)),
            ("audio", json!({"voice": "alloy", "format": "wav"})),
            ("prediction", json!({"type": "content", "content": "x"})),
            ("response_format", json!({"type": "json_object"})),
            (
                "response_format",
                json!({"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}),
            ),
            ("modalities", json!(["text", "audio"])),
            ("parallel_tool_calls", json!(false)),
        ] {
            let mut request = json!({"messages": [{"role": "user", "content": "x"}]});
            request[field] = value;
            let message = refusal(request);
            assert!(message.starts_with(&format!("{field}:")), "{message}");
            assert!(message.contains("Converse"), "{message}");
        }
        // Defaults are not a request for the feature.
        let request = json!({"messages": [{"role": "user", "content": "x"}], "n": 1,
            "logprobs": false, "seed": null, "presence_penalty": 0, "parallel_tool_calls": true,
            "response_format": {"type": "text"}, "modalities": ["text"]});
        assert!(to_converse_request(&request).is_ok());
        for (request, field) in [
            (
                json!({"messages": [{"role": "system", "content": "only"}]}),
                "messages:",
            ),
            (json!([]), "the request body"),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
                "max_tokens:",
            ),
            (
                json!({"messages": [{"role": "robot", "content": "x"}]}),
                "messages[0].role:",
            ),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id:",
            ),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}),
                "messages[0].tool_calls:",
            ),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}]}),
                "messages[0].tool_calls[0].function.arguments:",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]}),
                "tools[0].type:",
            ),
        ] {
            let message = refusal(request);
            assert!(message.starts_with(field), "{message}");
        }
    }
}
