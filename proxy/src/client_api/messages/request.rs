//! An Anthropic Messages request (<https://docs.anthropic.com/en/api/messages>) as an OpenAI chat
//! completion request, for a provider that does not speak the Messages API: `system` becomes a
//! leading system message, `tool_use` blocks become `tool_calls`, `tool_result` blocks become
//! `tool` messages, images become `image_url` parts, and a streamed request asks for the usage
//! chunk the Messages stream ends with. What chat completions cannot express is a `400` naming
//! the field, never dropped; malformed input is a `400` naming its JSON path.
//!
//! Ignored, because they change nothing in the answer: `cache_control` (top-level, on blocks
//! and on tools: a prompt-caching hint; the provider caches on its own terms, and its cache
//! reads still show in the usage), `citations` on text blocks of the history (where the text
//! came from; the text is kept), `eager_input_streaming` on tools (how tool input is streamed,
//! not what it is), the `caller` and `toolset_name` of history blocks (bookkeeping of server
//! tools, which are refused anyway), `diagnostics` (asks Anthropic to explain its own prompt
//! cache misses), `workspace_id` and `user_profile_id` (Anthropic account attribution, which
//! another provider has no notion of), and any other field this module does not name.
//! Assistant `thinking` and `redacted_thinking` blocks of the history are dropped: see
//! [`assistant_message`].

use serde_json::{Map, Value, json};

use crate::openai::error::ProxyError;
use crate::translate::openai_request::{invalid, tools_array, unsupported};

/// The API named in refusals: what the provider speaks.
const API: &str = "OpenAI's chat completions API";

/// How the text blocks of one turn, a system prompt or a tool result are joined when the chat
/// completion takes a single string (the convention of
/// [`crate::translate::openai_request::text_of`]).
const TEXT_SEPARATOR: &str = "\n";

/// The chat completion request for `body`, an Anthropic Messages request.
pub fn to_chat_request(body: &Value) -> Result<Value, ProxyError> {
    let object = body
        .as_object()
        .ok_or_else(|| invalid("", "the request body must be a JSON object"))?;
    refuse_unexpressible(object)?;
    let mut out = Map::new();
    if let Some(model) = object.get("model") {
        out.insert("model".into(), model.clone());
    }
    let mut messages = Vec::new();
    if let Some(system) = system_prompt(object.get("system"))? {
        messages.push(json!({ "role": "system", "content": system }));
    }
    conversation(object.get("messages"), &mut messages)?;
    out.insert("messages".into(), Value::Array(messages));
    out.insert("max_tokens".into(), json!(max_tokens(object)?));
    if let Some(stop) = stop_sequences(object.get("stop_sequences"))? {
        out.insert("stop".into(), stop);
    }
    for field in ["temperature", "top_p"] {
        match object.get(field) {
            None | Some(Value::Null) => {}
            Some(value @ Value::Number(_)) => {
                out.insert(field.into(), value.clone());
            }
            Some(_) => return Err(invalid(field, "must be a number")),
        }
    }
    match object.get("stream") {
        None | Some(Value::Null | Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), json!(true));
            // The Messages stream ends with the usage (`message_delta`): OpenAI sends it only
            // when asked.
            out.insert("stream_options".into(), json!({ "include_usage": true }));
        }
        Some(_) => return Err(invalid("stream", "must be a boolean")),
    }
    if let Some(user) = user_id(object.get("metadata"))? {
        out.insert("user".into(), json!(user));
    }
    let tools = tools(object.get("tools"))?;
    let has_tools = !tools.is_empty();
    if has_tools {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = object.get("tool_choice").filter(|c| !c.is_null()) {
        let (choice, parallel) = tool_choice(choice, has_tools)?;
        if let Some(choice) = choice {
            out.insert("tool_choice".into(), choice);
        }
        if !parallel {
            out.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    Ok(Value::Object(out))
}

/// Refuses the top-level fields that ask for what chat completions cannot do, each only when set
/// to something but its default, so a client that spells out defaults is still served.
fn refuse_unexpressible(object: &Map<String, Value>) -> Result<(), ProxyError> {
    let set = |field: &str| object.get(field).filter(|v| !v.is_null());
    if set("top_k").is_some() {
        return Err(unsupported("top_k", "top-k sampling is not available", API));
    }
    if let Some(thinking) = set("thinking")
        && thinking.get("type").and_then(Value::as_str) != Some("disabled")
    {
        return Err(unsupported(
            "thinking",
            "extended thinking is not available",
            API,
        ));
    }
    if set("container").is_some() {
        return Err(unsupported(
            "container",
            "code execution containers are not available",
            API,
        ));
    }
    if let Some(servers) = set("mcp_servers")
        && servers.as_array().is_none_or(|s| !s.is_empty())
    {
        return Err(unsupported(
            "mcp_servers",
            "remote MCP servers are not available",
            API,
        ));
    }
    if let Some(tier) = set("service_tier")
        && tier != "auto"
    {
        return Err(unsupported(
            "service_tier",
            "only the auto service tier is available",
            API,
        ));
    }
    if let Some(speed) = set("speed")
        && speed != "standard"
    {
        return Err(unsupported(
            "speed",
            "only the standard speed is available",
            API,
        ));
    }
    if set("inference_geo").is_some() {
        // A data residency requirement: serving it elsewhere would break it silently.
        return Err(unsupported(
            "inference_geo",
            "the inference region cannot be chosen",
            API,
        ));
    }
    if set("context_management").is_some() {
        return Err(unsupported(
            "context_management",
            "server-side context management is not available",
            API,
        ));
    }
    if let Some(config) = set("output_config")
        && config
            .as_object()
            .is_none_or(|c| c.values().any(|v| !v.is_null()))
    {
        return Err(unsupported(
            "output_config",
            "output effort and output formats are not available",
            API,
        ));
    }
    if set("output_format").is_some() {
        return Err(unsupported(
            "output_format",
            "output formats are not available",
            API,
        ));
    }
    Ok(())
}

/// `max_tokens`, which Anthropic requires.
fn max_tokens(object: &Map<String, Value>) -> Result<u64, ProxyError> {
    object
        .get("max_tokens")
        .and_then(Value::as_u64)
        .filter(|n| *n >= 1)
        .ok_or_else(|| invalid("max_tokens", "is required and must be a positive integer"))
}

/// `system`, a string or text blocks, as one string (`None` when absent or empty).
fn system_prompt(system: Option<&Value>) -> Result<Option<String>, ProxyError> {
    let text = match system {
        None | Some(Value::Null) => return Ok(None),
        Some(system) => text_blocks(system, "system")?,
    };
    Ok(Some(text).filter(|t| !t.is_empty()))
}

/// A string, or an array of text blocks joined, at `field`; any other block is refused.
fn text_blocks(content: &Value, field: &str) -> Result<String, ProxyError> {
    match content {
        Value::String(text) => Ok(text.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                let field = format!("{field}[{j}]");
                match block_type(block, &field)? {
                    "text" => texts.push(block_text(block, &field)?),
                    other => return Err(refused_block(other, &field, "text blocks")),
                }
            }
            Ok(texts.join(TEXT_SEPARATOR))
        }
        _ => Err(invalid(
            field,
            "must be a string or an array of text blocks",
        )),
    }
}

/// A block's `type`.
fn block_type<'a>(block: &'a Value, field: &str) -> Result<&'a str, ProxyError> {
    block
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{field}.type"), "must be a string"))
}

/// A text block's `text`.
fn block_text<'a>(block: &'a Value, field: &str) -> Result<&'a str, ProxyError> {
    block
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{field}.text"), "must be a string"))
}

/// The refusal of a block of type `kind` at `field`, where only `allowed` may stand: a block
/// type the Messages API has but chat completions cannot express is unsupported, one that has
/// no place here is invalid.
fn refused_block(kind: &str, field: &str, allowed: &str) -> ProxyError {
    let field = format!("{field}.type");
    match kind {
        "text" | "image" | "tool_use" | "tool_result" | "thinking" | "redacted_thinking" => {
            invalid(
                &field,
                &format!("a {kind} block is not allowed here, only {allowed}"),
            )
        }
        "document" => unsupported(&field, "document blocks are not available", API),
        "search_result" => unsupported(&field, "search result blocks are not available", API),
        other => unsupported(
            &field,
            &format!("content blocks of type {other:?} are not available"),
            API,
        ),
    }
}

/// `messages` as chat messages, appended to `out`.
fn conversation(messages: Option<&Value>, out: &mut Vec<Value>) -> Result<(), ProxyError> {
    let messages = messages
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages", "must be an array"))?;
    if messages.is_empty() {
        return Err(invalid("messages", "at least one message is required"));
    }
    for (i, message) in messages.iter().enumerate() {
        let field = format!("messages[{i}]");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&format!("{field}.role"), "must be a string"))?;
        let content = message
            .get("content")
            .filter(|c| c.is_string() || c.is_array())
            .ok_or_else(|| {
                invalid(
                    &format!("{field}.content"),
                    "must be a string or an array of content blocks",
                )
            })?;
        let field = format!("{field}.content");
        match role {
            "user" => user_messages(content, &field, out)?,
            "assistant" => {
                if i + 1 == messages.len() {
                    // Prefill: Anthropic continues the final assistant turn; a chat completion
                    // would answer it with a new message instead.
                    return Err(unsupported(
                        &format!("messages[{i}]"),
                        "a final assistant message (prefill) cannot be continued",
                        API,
                    ));
                }
                out.extend(assistant_message(content, &field)?);
            }
            "system" => out.push(json!({
                "role": "system",
                "content": text_blocks(content, &field)?,
            })),
            other => {
                return Err(invalid(
                    &format!("messages[{i}].role"),
                    &format!("role {other:?} is not user, assistant or system"),
                ));
            }
        }
    }
    Ok(())
}

/// A user turn: one `tool` message per `tool_result` block, in order, then a user message with
/// the rest (chat completions wants the results right after the assistant's calls). Text-only
/// content is one string (which every OpenAI-compatible server takes); with images it is an
/// array of parts.
fn user_messages(content: &Value, field: &str, out: &mut Vec<Value>) -> Result<(), ProxyError> {
    let blocks = match content {
        Value::String(text) => {
            out.push(json!({ "role": "user", "content": text }));
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => return Err(invalid(field, "must be a string or an array")),
    };
    let mut parts = Vec::new();
    let mut text_only = true;
    for (j, block) in blocks.iter().enumerate() {
        let field = format!("{field}[{j}]");
        match block_type(block, &field)? {
            "text" => parts.push(json!({ "type": "text", "text": block_text(block, &field)? })),
            "image" => {
                text_only = false;
                parts.push(image_part(block, &field)?);
            }
            "tool_result" => out.push(tool_message(block, &field)?),
            other => {
                return Err(refused_block(
                    other,
                    &field,
                    "text, image and tool_result blocks",
                ));
            }
        }
    }
    if parts.is_empty() {
        // Only tool results: the tool messages are the whole turn.
        return Ok(());
    }
    let content = if text_only {
        let texts: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
        json!(texts.join(TEXT_SEPARATOR))
    } else {
        Value::Array(parts)
    };
    out.push(json!({ "role": "user", "content": content }));
    Ok(())
}

/// An `image` block as an `image_url` part: base64 data as a `data:` URL, a URL as it is.
fn image_part(block: &Value, field: &str) -> Result<Value, ProxyError> {
    let source_field = format!("{field}.source");
    let source = block
        .get("source")
        .filter(|s| s.is_object())
        .ok_or_else(|| invalid(&source_field, "must be an object"))?;
    let string = |key: &str| {
        source
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&format!("{source_field}.{key}"), "must be a string"))
    };
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => format!("data:{};base64,{}", string("media_type")?, string("data")?),
        Some("url") => string("url")?.to_string(),
        Some("file") => {
            return Err(unsupported(
                &format!("{source_field}.type"),
                "images from the Files API are not available",
                API,
            ));
        }
        _ => {
            return Err(invalid(
                &format!("{source_field}.type"),
                "must be base64 or url",
            ));
        }
    };
    Ok(json!({ "type": "image_url", "image_url": { "url": url } }))
}

/// A `tool_result` block as a `tool` message. Chat completions has no error flag for a tool
/// result, so `is_error: true` is kept in the text: `Error: ` before the content (or `Error`
/// alone), the way a model reads a failed call.
fn tool_message(block: &Value, field: &str) -> Result<Value, ProxyError> {
    let id = block
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{field}.tool_use_id"), "must be a string"))?;
    let content_field = format!("{field}.content");
    let text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (k, inner) in blocks.iter().enumerate() {
                let field = format!("{content_field}[{k}]");
                match block_type(inner, &field)? {
                    "text" => texts.push(block_text(inner, &field)?),
                    // Chat completions' tool messages hold text only.
                    "image" => {
                        return Err(unsupported(
                            &format!("{field}.type"),
                            "images in tool results are not available",
                            API,
                        ));
                    }
                    other => return Err(refused_block(other, &field, "text blocks")),
                }
            }
            texts.join(TEXT_SEPARATOR)
        }
        Some(_) => {
            return Err(invalid(
                &content_field,
                "must be a string or an array of content blocks",
            ));
        }
    };
    let text = match block.get("is_error") {
        None | Some(Value::Null | Value::Bool(false)) => text,
        Some(Value::Bool(true)) if text.is_empty() => "Error".to_string(),
        Some(Value::Bool(true)) => format!("Error: {text}"),
        Some(_) => return Err(invalid(&format!("{field}.is_error"), "must be a boolean")),
    };
    Ok(json!({ "role": "tool", "tool_call_id": id, "content": text }))
}

/// An assistant turn as one assistant message: its text blocks joined as they are (they are the
/// model's own output, split only where citations or tool calls fell), its `tool_use` blocks as
/// `tool_calls`; `None` when nothing is left.
///
/// `thinking` and `redacted_thinking` blocks are dropped: they are the model's reasoning echoed
/// back (signed, or encrypted, for Anthropic's models alone to verify), chat completions has no
/// field to send them in, and no other model can use them; the answers they led to stay.
fn assistant_message(content: &Value, field: &str) -> Result<Option<Value>, ProxyError> {
    let blocks = match content {
        Value::String(text) if text.is_empty() => return Ok(None),
        Value::String(text) => return Ok(Some(json!({ "role": "assistant", "content": text }))),
        Value::Array(blocks) => blocks,
        _ => return Err(invalid(field, "must be a string or an array")),
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let field = format!("{field}[{j}]");
        match block_type(block, &field)? {
            "text" => text.push_str(block_text(block, &field)?),
            "tool_use" => calls.push(tool_call(block, &field)?),
            "thinking" | "redacted_thinking" => {}
            other => {
                return Err(refused_block(
                    other,
                    &field,
                    "text, tool_use and thinking blocks",
                ));
            }
        }
    }
    if text.is_empty() && calls.is_empty() {
        return Ok(None);
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() { Value::Null } else { json!(text) },
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    Ok(Some(message))
}

/// A `tool_use` block as a tool call (`arguments` is the JSON text of `input`).
fn tool_call(block: &Value, field: &str) -> Result<Value, ProxyError> {
    let string = |key: &str| {
        block
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&format!("{field}.{key}"), "must be a string"))
    };
    let input = match block.get("input") {
        Some(input @ Value::Object(_)) => input.to_string(),
        _ => return Err(invalid(&format!("{field}.input"), "must be an object")),
    };
    Ok(json!({
        "id": string("id")?,
        "type": "function",
        "function": { "name": string("name")?, "arguments": input },
    }))
}

/// `stop_sequences` as `stop` (`None` when absent or empty).
fn stop_sequences(sequences: Option<&Value>) -> Result<Option<Value>, ProxyError> {
    match sequences {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok((!items.is_empty()).then(|| Value::Array(items.clone())))
        }
        Some(_) => Err(invalid("stop_sequences", "must be an array of strings")),
    }
}

/// `metadata.user_id`, when set.
fn user_id(metadata: Option<&Value>) -> Result<Option<&str>, ProxyError> {
    match metadata {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(metadata)) => match metadata.get("user_id") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(user)) => Ok(Some(user)),
            Some(_) => Err(invalid("metadata.user_id", "must be a string")),
        },
        Some(_) => Err(invalid("metadata", "must be an object")),
    }
}

/// Custom tools as function tools; server tools (any other `type`) are refused.
fn tools(tools: Option<&Value>) -> Result<Vec<Value>, ProxyError> {
    let Some(tools) = tools_array(tools)? else {
        return Ok(Vec::new());
    };
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let field = format!("tools[{i}]");
            let tool = tool
                .as_object()
                .ok_or_else(|| invalid(&field, "must be an object"))?;
            match tool.get("type") {
                None | Some(Value::Null) => {}
                Some(kind) if kind == "custom" => {}
                Some(kind) => {
                    return Err(unsupported(
                        &format!("{field}.type"),
                        &format!("server tools ({kind}) are not available, only custom tools"),
                        API,
                    ));
                }
            }
            let set = |key: &str| tool.get(key).filter(|v| !v.is_null());
            for (key, why) in [
                (
                    "allowed_callers",
                    "programmatic tool calling is not available",
                ),
                ("input_examples", "tool input examples are not available"),
            ] {
                if set(key).is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty())) {
                    return Err(unsupported(&format!("{field}.{key}"), why, API));
                }
            }
            if set("defer_loading").is_some_and(|v| v != &json!(false)) {
                return Err(unsupported(
                    &format!("{field}.defer_loading"),
                    "deferred tool loading is not available",
                    API,
                ));
            }
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(&format!("{field}.name"), "must be a string"))?;
            let schema = tool
                .get("input_schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| invalid(&format!("{field}.input_schema"), "must be an object"))?;
            let mut function = json!({ "name": name, "parameters": schema });
            match set("description") {
                None => {}
                Some(description @ Value::String(_)) => {
                    function["description"] = description.clone();
                }
                Some(_) => {
                    return Err(invalid(&format!("{field}.description"), "must be a string"));
                }
            }
            match set("strict") {
                None => {}
                Some(strict @ Value::Bool(_)) => function["strict"] = strict.clone(),
                Some(_) => return Err(invalid(&format!("{field}.strict"), "must be a boolean")),
            }
            Ok(json!({ "type": "function", "function": function }))
        })
        .collect()
}

/// `tool_choice` in OpenAI's form (`None`: leave it out), and whether parallel tool calls are
/// allowed. Without tools, `auto` and `none` say nothing (OpenAI refuses a `tool_choice`
/// without tools), and `any` or `tool` cannot be honoured.
fn tool_choice(choice: &Value, has_tools: bool) -> Result<(Option<Value>, bool), ProxyError> {
    let kind = choice
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("tool_choice.type", "must be a string"))?;
    let parallel = match choice.get("disable_parallel_tool_use") {
        None | Some(Value::Null | Value::Bool(false)) => true,
        Some(Value::Bool(true)) => false,
        Some(_) => {
            return Err(invalid(
                "tool_choice.disable_parallel_tool_use",
                "must be a boolean",
            ));
        }
    };
    let choice = match kind {
        "auto" => json!("auto"),
        "none" => json!("none"),
        "any" => json!("required"),
        "tool" => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.name", "must be a string"))?;
            json!({ "type": "function", "function": { "name": name } })
        }
        other => {
            return Err(invalid(
                "tool_choice.type",
                &format!("{other:?} is not auto, any, tool or none"),
            ));
        }
    };
    if !has_tools {
        return match kind {
            "auto" | "none" => Ok((None, true)),
            _ => Err(invalid("tool_choice", "requires tools")),
        };
    }
    // `parallel_tool_calls` only means something when tools may be called.
    Ok((Some(choice), parallel || kind == "none"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(request: Value) -> Value {
        to_chat_request(&request).unwrap()
    }

    /// A minimal valid request with `messages`.
    fn with_messages(messages: Value) -> Value {
        json!({ "model": "m", "max_tokens": 16, "messages": messages })
    }

    /// The message of the `400` for `request`.
    fn refusal(request: Value) -> String {
        let error = to_chat_request(&request).unwrap_err();
        assert_eq!(error.status, http::StatusCode::BAD_REQUEST);
        error.message
    }

    #[test]
    fn top_level_fields_map_to_their_chat_completion_equivalents() {
        let out = translate(json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hi"}],
            "stop_sequences": ["END", "STOP"],
            "temperature": 0.3,
            "top_p": 0.9,
            "stream": true,
            "metadata": {"user_id": "u-1"},
            "service_tier": "auto",
            "thinking": {"type": "disabled"},
            "cache_control": {"type": "ephemeral"},
        }));
        assert_eq!(
            out,
            json!({
                "model": "claude-sonnet-4-5",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                ],
                "max_tokens": 1024,
                "stop": ["END", "STOP"],
                "temperature": 0.3,
                "top_p": 0.9,
                "stream": true,
                "stream_options": {"include_usage": true},
                "user": "u-1",
            })
        );
        let out = translate(json!({
            "model": "m", "max_tokens": 1, "stream": false, "stop_sequences": [],
            "messages": [{"role": "user", "content": "Hi"}],
        }));
        assert_eq!(out.get("stream"), None);
        assert_eq!(out.get("stream_options"), None);
        assert_eq!(out.get("stop"), None);
    }

    #[test]
    fn system_blocks_and_text_blocks_are_joined() {
        let out = translate(json!({
            "model": "m", "max_tokens": 1,
            "system": [
                {"type": "text", "text": "One.", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Two."},
            ],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "a"},
                    {"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}},
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Hel", "citations": []},
                    {"type": "text", "text": "lo"},
                ]},
                {"role": "system", "content": "Mid-conversation instruction."},
                {"role": "user", "content": "c"},
            ],
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "system", "content": "One.\nTwo."},
                {"role": "user", "content": "a\nb"},
                {"role": "assistant", "content": "Hello"},
                {"role": "system", "content": "Mid-conversation instruction."},
                {"role": "user", "content": "c"},
            ])
        );
    }

    #[test]
    fn images_become_image_url_parts() {
        let out = translate(with_messages(json!([{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        ]}])));
        assert_eq!(
            out["messages"][0]["content"],
            json!([
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ])
        );
    }

    #[test]
    fn a_tool_round_trip_becomes_tool_calls_and_tool_messages() {
        let out = translate(json!({
            "model": "m", "max_tokens": 100,
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Two cities.", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "opaque"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {"city": "Rome"}},
                ]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Here you go."},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
                     "content": [{"type": "text", "text": "timeout"}, {"type": "text", "text": "retry later"}]},
                ]},
            ],
            "tools": [{"name": "weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}, "cache_control": {"type": "ephemeral"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        }));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}},
                ]},
                // Tool results first, then the rest of the turn.
                {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: timeout\nretry later"},
                {"role": "user", "content": "Here you go."},
            ])
        );
        assert_eq!(
            out["tools"],
            json!([{"type": "function", "function": {
                "name": "weather", "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            }}])
        );
        assert_eq!(out["tool_choice"], "required");
        assert_eq!(out["parallel_tool_calls"], false);
    }

    #[test]
    fn tool_results_alone_and_empty_ones_and_calls_without_text() {
        let out = translate(with_messages(json!([
            {"role": "user", "content": "Go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "u", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "u", "is_error": true}]},
        ])));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "Go"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t", "content": ""},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "u", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "u", "content": "Error"},
            ])
        );
    }

    #[test]
    fn an_assistant_turn_of_thinking_alone_is_left_out() {
        let out = translate(with_messages(json!([
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}]},
            {"role": "user", "content": "b"},
        ])));
        assert_eq!(
            out["messages"],
            json!([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
        );
    }

    #[test]
    fn tool_choice_forms() {
        let tools = json!([{"name": "f", "input_schema": {"type": "object"}, "type": "custom", "strict": true}]);
        for (choice, expected, parallel) in [
            (json!({"type": "auto"}), json!("auto"), None),
            (
                json!({"type": "auto", "disable_parallel_tool_use": true}),
                json!("auto"),
                Some(false),
            ),
            (json!({"type": "any"}), json!("required"), None),
            (
                json!({"type": "tool", "name": "f"}),
                json!({"type": "function", "function": {"name": "f"}}),
                None,
            ),
            (
                json!({"type": "none", "disable_parallel_tool_use": true}),
                json!("none"),
                None,
            ),
        ] {
            let mut request = with_messages(json!([{"role": "user", "content": "x"}]));
            request["tools"] = tools.clone();
            request["tool_choice"] = choice;
            let out = translate(request);
            assert_eq!(out["tool_choice"], expected);
            assert_eq!(
                out.get("parallel_tool_calls").cloned(),
                parallel.map(Value::from)
            );
            assert_eq!(out["tools"][0]["function"]["strict"], true);
        }
        // Without tools, auto and none say nothing; any and tool cannot be honoured.
        for kind in ["auto", "none"] {
            let mut request = with_messages(json!([{"role": "user", "content": "x"}]));
            request["tool_choice"] = json!({"type": kind});
            request["tools"] = json!([]);
            let out = translate(request);
            assert_eq!(out.get("tool_choice"), None);
            assert_eq!(out.get("tools"), None);
        }
        let mut request = with_messages(json!([{"role": "user", "content": "x"}]));
        request["tool_choice"] = json!({"type": "any"});
        assert!(refusal(request).starts_with("tool_choice:"));
    }

    #[test]
    fn what_chat_completions_cannot_express_is_a_400_naming_it() {
        for (field, value) in [
            ("top_k", json!(5)),
            (
                "thinking",
                json!({"type": "enabled", "budget_tokens": 2048}),
            ),
            ("thinking", json!({"type": "adaptive"})),
            ("container", json!("container_1")),
            (
                "mcp_servers",
                json!([{"type": "url", "url": "https://mcp.example", "name": "x"}]),
            ),
            ("service_tier", json!("standard_only")),
            ("speed", json!("fast")),
            ("inference_geo", json!("us")),
            ("context_management", json!({"edits": []})),
            ("output_config", json!({"effort": "low"})),
            (
                "output_format",
                json!({"type": "json_schema", "schema": {}}),
            ),
        ] {
            let mut request = with_messages(json!([{"role": "user", "content": "x"}]));
            request[field] = value;
            let message = refusal(request);
            assert!(message.starts_with(&format!("{field}:")), "{message}");
        }
        // Defaults are not a request for the feature.
        let mut request = with_messages(json!([{"role": "user", "content": "x"}]));
        for (field, value) in [
            ("top_k", Value::Null),
            ("mcp_servers", json!([])),
            ("output_config", json!({"effort": null})),
            ("speed", json!("standard")),
        ] {
            request[field] = value;
        }
        assert!(to_chat_request(&request).is_ok());
    }

    #[test]
    fn unexpressible_tools_and_blocks_are_refused_by_path() {
        let message = |content: Value| with_messages(json!([{"role": "user", "content": content}]));
        for (request, path) in [
            (
                {
                    let mut r = message(json!("x"));
                    r["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
                    r
                },
                "tools[0].type:",
            ),
            (
                {
                    let mut r = message(json!("x"));
                    r["tools"] = json!([{"name": "f", "input_schema": {"type": "object"}, "input_examples": [{}]}]);
                    r
                },
                "tools[0].input_examples:",
            ),
            (
                message(
                    json!([{"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}]),
                ),
                "messages[0].content[0].type:",
            ),
            (
                message(
                    json!([{"type": "text", "text": "x"}, {"type": "search_result", "source": "s", "title": "t", "content": []}]),
                ),
                "messages[0].content[1].type:",
            ),
            (
                message(json!([{"type": "image", "source": {"type": "file", "file_id": "f"}}])),
                "messages[0].content[0].source.type:",
            ),
            (
                message(
                    json!([{"type": "tool_result", "tool_use_id": "t", "content": [
                        {"type": "image", "source": {"type": "url", "url": "https://x"}},
                    ]}]),
                ),
                "messages[0].content[0].content[0].type:",
            ),
            (
                with_messages(json!([
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": [{"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]},
                    {"role": "user", "content": "y"},
                ])),
                "messages[1].content[0].type:",
            ),
            (
                with_messages(json!([
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": "The answer is ("},
                ])),
                "messages[1]:",
            ),
        ] {
            let message = refusal(request);
            assert!(message.starts_with(path), "{path}: {message}");
        }
    }

    #[test]
    fn malformed_input_is_a_400_naming_its_path() {
        let message = |content: Value| with_messages(json!([{"role": "user", "content": content}]));
        for (request, path) in [
            (json!([]), ""),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens:",
            ),
            (
                json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens:",
            ),
            (
                json!({"model": "m", "max_tokens": "8", "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens:",
            ),
            (
                json!({"model": "m", "max_tokens": 8, "messages": {}}),
                "messages:",
            ),
            (
                json!({"model": "m", "max_tokens": 8, "messages": []}),
                "messages:",
            ),
            (
                with_messages(json!([{"role": "tool", "content": "x"}])),
                "messages[0].role:",
            ),
            (
                with_messages(json!([{"role": "user"}])),
                "messages[0].content:",
            ),
            (
                message(json!([{"text": "no type"}])),
                "messages[0].content[0].type:",
            ),
            (
                message(json!([{"type": "text"}])),
                "messages[0].content[0].text:",
            ),
            (
                message(json!([{"type": "image"}])),
                "messages[0].content[0].source:",
            ),
            (
                message(json!([{"type": "image", "source": {"type": "base64", "data": "x"}}])),
                "messages[0].content[0].source.media_type:",
            ),
            (
                message(json!([{"type": "tool_result"}])),
                "messages[0].content[0].tool_use_id:",
            ),
            (
                message(json!([{"type": "tool_use", "id": "t", "name": "f", "input": {}}])),
                "messages[0].content[0].type:",
            ),
            (
                with_messages(json!([
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "{}"}]},
                    {"role": "user", "content": "y"},
                ])),
                "messages[1].content[0].input:",
            ),
            (
                {
                    let mut r = message(json!("x"));
                    r["system"] = json!([{"type": "image", "source": {}}]);
                    r
                },
                "system[0].type:",
            ),
            (
                {
                    let mut r = message(json!("x"));
                    r["tools"] = json!([{"name": "f"}]);
                    r
                },
                "tools[0].input_schema:",
            ),
            (
                {
                    let mut r = message(json!("x"));
                    r["stop_sequences"] = json!("END");
                    r
                },
                "stop_sequences:",
            ),
            (
                {
                    let mut r = message(json!("x"));
                    r["metadata"] = json!({"user_id": 7});
                    r
                },
                "metadata.user_id:",
            ),
            (
                {
                    let mut r = message(json!("x"));
                    r["tools"] = json!([{"name": "f", "input_schema": {"type": "object"}}]);
                    r["tool_choice"] = json!({"type": "tool"});
                    r
                },
                "tool_choice.name:",
            ),
        ] {
            let message = refusal(request);
            assert!(message.starts_with(path), "{path}: {message}");
        }
    }
}
