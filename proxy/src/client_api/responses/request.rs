//! An OpenAI Responses request (<https://platform.openai.com/docs/api-reference/responses/create>)
//! as a chat completion request, for a provider that does not speak the Responses API.
//!
//! `instructions` become a leading `system` message and `input` (a string, or an array of
//! items) the conversation: messages keep their role, `function_call` items become the
//! `tool_calls` of an assistant message (consecutive calls, and the assistant message right
//! before them, make one message) and `function_call_output` items `tool` messages. Function
//! tools, `tool_choice`, `text.format`, `reasoning.effort` and the sampling fields keep their
//! meaning under their chat completion names.
//!
//! The gateway keeps no state for such a provider: `previous_response_id`, `conversation`,
//! `store: true` and `item_reference` items, which would need it, are refused. So is everything
//! else a chat completion cannot express (built-in tools, files, background runs, `include`,
//! automatic truncation, stored prompts, log probabilities, several answers) and any field this
//! translation does not know: a `400` names the field by its JSON path, so a client never gets an
//! answer that silently ignored what it asked for. Dropped, as they change nothing a translated
//! provider could honour: `metadata` (only stored responses keep it), `reasoning.summary` (the
//! provider's reasoning is not returned, and OpenAI does not promise a summary either),
//! `stream_options` (obfuscation padding only), `max_tool_calls` (it bounds built-in tool calls,
//! which are refused), and `reasoning` items in `input` (the reasoning of an earlier answer, often
//! encrypted for OpenAI alone: no other provider can read it, and refusing it would break a
//! conversation that moved here from OpenAI).

use serde_json::{Map, Value, json};

use crate::openai::error::ProxyError;
use crate::translate::openai_request::{invalid, tools_array};

/// A `400` for something a chat completion cannot express.
fn unsupported(field: &str, why: &str) -> ProxyError {
    ProxyError::bad_request(
        "unsupported_parameter",
        format!("{field}: {why}; this backend's provider does not speak OpenAI's Responses API"),
    )
}

/// A `400` for something that needs the state the gateway does not keep.
fn stateful(field: &str) -> ProxyError {
    ProxyError::bad_request(
        "unsupported_parameter",
        format!(
            "{field}: this backend's provider cannot keep state between requests (the gateway \
             stores no responses for it); send the whole conversation as `input`, with `store` \
             absent or false"
        ),
    )
}

/// The top-level fields this translation reads; any other one set is refused.
const KNOWN_FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "max_output_tokens",
    "temperature",
    "top_p",
    "user",
    "parallel_tool_calls",
    "tools",
    "tool_choice",
    "text",
    "reasoning",
    "stream",
    "stream_options",
    "store",
    "metadata",
    "previous_response_id",
    "conversation",
    "background",
    "include",
    "truncation",
    "prompt",
    "top_logprobs",
    "n",
    "max_tool_calls",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
];

/// The chat completion request for `body`, a Responses request.
pub fn to_chat_request(body: &Value) -> Result<Value, ProxyError> {
    let object = body
        .as_object()
        .ok_or_else(|| invalid("", "the request body must be a JSON object"))?;
    refuse(object)?;
    let mut out = Map::new();
    if let Some(model) = object.get("model") {
        out.insert("model".into(), model.clone());
    }
    out.insert("messages".into(), Value::Array(messages(object)?));
    match object.get("max_output_tokens") {
        None | Some(Value::Null) => {}
        Some(value) => {
            let tokens = value
                .as_u64()
                .filter(|n| *n >= 1)
                .ok_or_else(|| invalid("max_output_tokens", "must be a positive integer"))?;
            out.insert("max_completion_tokens".into(), json!(tokens));
        }
    }
    // The same meaning under the same name in a chat completion request.
    for field in [
        "temperature",
        "top_p",
        "user",
        "safety_identifier",
        "prompt_cache_key",
        "prompt_cache_retention",
    ] {
        if let Some(value) = object.get(field).filter(|v| !v.is_null()) {
            out.insert(field.into(), value.clone());
        }
    }
    match object.get("parallel_tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(parallel)) => {
            out.insert("parallel_tool_calls".into(), json!(parallel));
        }
        Some(_) => return Err(invalid("parallel_tool_calls", "must be a boolean")),
    }
    if let Some(tools) = tools(object.get("tools"))? {
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = tool_choice(object.get("tool_choice"))? {
        out.insert("tool_choice".into(), choice);
    }
    text(object.get("text"), &mut out)?;
    reasoning(object.get("reasoning"), &mut out)?;
    match object.get("stream") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            out.insert("stream".into(), json!(true));
            // The final `response.completed` event carries usage: the chat stream must end
            // with it.
            out.insert("stream_options".into(), json!({ "include_usage": true }));
        }
        Some(_) => return Err(invalid("stream", "must be a boolean")),
    }
    Ok(Value::Object(out))
}

/// Refuses the fields that need state, or that a chat completion cannot express, when set to
/// anything but their default; and any field this translation does not know.
fn refuse(object: &Map<String, Value>) -> Result<(), ProxyError> {
    let set = |field: &str| object.get(field).filter(|v| !v.is_null());
    for (field, value) in object {
        if !value.is_null() && !KNOWN_FIELDS.contains(&field.as_str()) {
            return Err(unsupported(field, "this field is not available"));
        }
    }
    for field in ["previous_response_id", "conversation"] {
        if set(field).is_some() {
            return Err(stateful(field));
        }
    }
    match set("store") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => return Err(stateful("store")),
        Some(_) => return Err(invalid("store", "must be a boolean")),
    }
    match set("background") {
        None | Some(Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            return Err(unsupported(
                "background",
                "background responses are not available",
            ));
        }
        Some(_) => return Err(invalid("background", "must be a boolean")),
    }
    match set("include") {
        None => {}
        Some(Value::Array(items)) if items.is_empty() => {}
        Some(Value::Array(_)) => {
            return Err(unsupported(
                "include",
                "additional output data is not available",
            ));
        }
        Some(_) => return Err(invalid("include", "must be an array")),
    }
    match set("truncation").map(Value::as_str) {
        None | Some(Some("disabled")) => {}
        Some(Some("auto")) => {
            return Err(unsupported(
                "truncation",
                "automatic truncation is not available",
            ));
        }
        Some(_) => return Err(invalid("truncation", "must be \"auto\" or \"disabled\"")),
    }
    if set("prompt").is_some() {
        return Err(unsupported("prompt", "stored prompts are not available"));
    }
    if set("top_logprobs").is_some_and(|n| n.as_u64() != Some(0)) {
        return Err(unsupported(
            "top_logprobs",
            "log probabilities are not available",
        ));
    }
    if set("n").is_some_and(|n| n.as_u64() != Some(1)) {
        return Err(unsupported(
            "n",
            "only one response per request is available",
        ));
    }
    match set("service_tier").map(Value::as_str) {
        None | Some(Some("auto" | "default")) => {}
        Some(Some(_)) => {
            return Err(unsupported(
                "service_tier",
                "only the auto and default service tiers are available",
            ));
        }
        Some(None) => return Err(invalid("service_tier", "must be a string")),
    }
    Ok(())
}

/// `instructions` and `input` as chat messages.
fn messages(object: &Map<String, Value>) -> Result<Vec<Value>, ProxyError> {
    let mut messages = Vec::new();
    match object.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(instructions)) => {
            messages.push(json!({ "role": "system", "content": instructions }));
        }
        Some(_) => return Err(invalid("instructions", "must be a string")),
    }
    match object.get("input") {
        Some(Value::String(text)) => messages.push(json!({ "role": "user", "content": text })),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, &format!("input[{i}]"), &mut messages)?;
            }
        }
        None | Some(Value::Null) => return Err(invalid("input", "is required")),
        Some(_) => {
            return Err(invalid(
                "input",
                "must be a string or an array of input items",
            ));
        }
    }
    Ok(messages)
}

/// One input item at `field`, appended to `messages`.
fn input_item(item: &Value, field: &str, messages: &mut Vec<Value>) -> Result<(), ProxyError> {
    let object = item
        .as_object()
        .ok_or_else(|| invalid(field, "must be an object"))?;
    match object.get("type") {
        // An easy input message names no type.
        None | Some(Value::Null) => messages.push(message(object, field)?),
        Some(Value::String(kind)) => match kind.as_str() {
            "message" => messages.push(message(object, field)?),
            "function_call" => function_call(object, field, messages)?,
            "function_call_output" => messages.push(function_call_output(object, field)?),
            // Dropped: see the module's documentation.
            "reasoning" => {}
            "item_reference" => return Err(stateful(&format!("{field}.type"))),
            other => {
                return Err(unsupported(
                    &format!("{field}.type"),
                    &format!("input items of type {other:?} are not available"),
                ));
            }
        },
        Some(_) => return Err(invalid(&format!("{field}.type"), "must be a string")),
    }
    Ok(())
}

/// A message item as a chat message with the same role.
fn message(object: &Map<String, Value>, field: &str) -> Result<Value, ProxyError> {
    let role = match object.get("role").and_then(Value::as_str) {
        Some(role @ ("user" | "assistant" | "system" | "developer")) => role,
        Some(other) => {
            return Err(invalid(
                &format!("{field}.role"),
                &format!("role {other:?} is not user, assistant, system or developer"),
            ));
        }
        None => return Err(invalid(&format!("{field}.role"), "must be a string")),
    };
    let content = match object.get("content") {
        Some(Value::String(text)) => json!(text),
        Some(Value::Array(parts)) => Value::Array(
            parts
                .iter()
                .enumerate()
                .map(|(j, part)| content_part(part, role, &format!("{field}.content[{j}]")))
                .collect::<Result<_, _>>()?,
        ),
        _ => {
            return Err(invalid(
                &format!("{field}.content"),
                "must be a string or an array of content parts",
            ));
        }
    };
    Ok(json!({ "role": role, "content": content }))
}

/// One content part of a `role` message at `field`, as a chat content part.
fn content_part(part: &Value, role: &str, field: &str) -> Result<Value, ProxyError> {
    let kind = part
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{field}.type"), "must be a string"))?;
    let string = |key: &str| {
        part.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&format!("{field}.{key}"), "must be a string"))
    };
    match kind {
        "input_text" | "output_text" => Ok(json!({ "type": "text", "text": string("text")? })),
        // An earlier refusal the client sends back: what the model said, as text (the chat
        // translators read only text from an assistant message).
        "refusal" => Ok(json!({ "type": "text", "text": string("refusal")? })),
        "input_image" if role != "user" => {
            Err(invalid(field, "images are only available in user messages"))
        }
        "input_image" => {
            if part.get("file_id").is_some_and(|v| !v.is_null()) {
                return Err(unsupported(
                    &format!("{field}.file_id"),
                    "uploaded files are not available; send the image as image_url",
                ));
            }
            let mut image_url = json!({ "url": string("image_url")? });
            if let Some(detail) = part.get("detail").filter(|v| !v.is_null()) {
                image_url["detail"] = detail.clone();
            }
            Ok(json!({ "type": "image_url", "image_url": image_url }))
        }
        "input_file" => Err(unsupported(field, "file inputs are not available")),
        "input_audio" => Err(unsupported(field, "audio inputs are not available")),
        other => Err(unsupported(
            &format!("{field}.type"),
            &format!("content parts of type {other:?} are not available"),
        )),
    }
}

/// A `function_call` item: a tool call of the assistant message just before it when there is
/// one (an earlier call, or the text the model said with its calls), else of a new one.
fn function_call(
    object: &Map<String, Value>,
    field: &str,
    messages: &mut Vec<Value>,
) -> Result<(), ProxyError> {
    let string = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&format!("{field}.{key}"), "must be a string"))
    };
    let call = json!({
        "id": string("call_id")?,
        "type": "function",
        "function": { "name": string("name")?, "arguments": string("arguments")? },
    });
    if let Some(last) = messages.last_mut()
        && last["role"] == "assistant"
        && let Some(last) = last.as_object_mut()
    {
        let calls = last
            .entry("tool_calls")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(calls) = calls {
            calls.push(call);
            return Ok(());
        }
    }
    messages.push(json!({ "role": "assistant", "content": null, "tool_calls": [call] }));
    Ok(())
}

/// A `function_call_output` item as a `tool` message.
fn function_call_output(object: &Map<String, Value>, field: &str) -> Result<Value, ProxyError> {
    let call_id = object
        .get("call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{field}.call_id"), "must be a string"))?;
    let content = match object.get("output") {
        Some(Value::String(output)) => json!(output),
        Some(Value::Array(parts)) => Value::Array(
            parts
                .iter()
                .enumerate()
                .map(|(j, part)| {
                    let part_field = format!("{field}.output[{j}]");
                    match part.get("type").and_then(Value::as_str) {
                        Some("input_text") => part
                            .get("text")
                            .and_then(Value::as_str)
                            .map(|text| json!({ "type": "text", "text": text }))
                            .ok_or_else(|| {
                                invalid(&format!("{part_field}.text"), "must be a string")
                            }),
                        Some(_) => Err(unsupported(
                            &part_field,
                            "only text is available in a function call's output",
                        )),
                        None => Err(invalid(&format!("{part_field}.type"), "must be a string")),
                    }
                })
                .collect::<Result<_, _>>()?,
        ),
        _ => {
            return Err(invalid(
                &format!("{field}.output"),
                "must be a string or an array of content parts",
            ));
        }
    };
    Ok(json!({ "role": "tool", "tool_call_id": call_id, "content": content }))
}

/// Function tools in the chat form (`None` without `tools`); built-in tools are refused.
fn tools(tools: Option<&Value>) -> Result<Option<Vec<Value>>, ProxyError> {
    let Some(tools) = tools_array(tools)? else {
        return Ok(None);
    };
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let field = format!("tools[{i}]");
            match tool.get("type").and_then(Value::as_str) {
                Some("function") => {}
                Some(other) => {
                    return Err(unsupported(
                        &format!("{field}.type"),
                        &format!("{other:?} tools are not available, only function tools"),
                    ));
                }
                None => return Err(invalid(&format!("{field}.type"), "must be a string")),
            }
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(&format!("{field}.name"), "must be a string"))?;
            let mut function = json!({ "name": name });
            for key in ["description", "parameters", "strict"] {
                if let Some(value) = tool.get(key).filter(|v| !v.is_null()) {
                    function[key] = value.clone();
                }
            }
            Ok(json!({ "type": "function", "function": function }))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// `tool_choice` in the chat form.
fn tool_choice(choice: Option<&Value>) -> Result<Option<Value>, ProxyError> {
    match choice {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" | "none" | "required" => Ok(Some(json!(mode))),
            other => Err(invalid(
                "tool_choice",
                &format!("{other:?} is not auto, none or required"),
            )),
        },
        Some(Value::Object(choice)) => match choice.get("type").and_then(Value::as_str) {
            Some("function") => {
                let name = choice
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid("tool_choice.name", "must be a string"))?;
                Ok(Some(
                    json!({ "type": "function", "function": { "name": name } }),
                ))
            }
            Some(other) => Err(unsupported(
                "tool_choice.type",
                &format!("a tool choice of type {other:?} is not available"),
            )),
            None => Err(invalid("tool_choice.type", "must be a string")),
        },
        Some(_) => Err(invalid("tool_choice", "must be a string or an object")),
    }
}

/// `text.format` as `response_format` (nothing for plain text, the default), and
/// `text.verbosity` as `verbosity`.
fn text(text: Option<&Value>, out: &mut Map<String, Value>) -> Result<(), ProxyError> {
    let text = match text {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(text)) => text,
        Some(_) => return Err(invalid("text", "must be an object")),
    };
    if let Some(verbosity) = text.get("verbosity").filter(|v| !v.is_null()) {
        out.insert("verbosity".into(), verbosity.clone());
    }
    let format = match text.get("format") {
        None | Some(Value::Null) => return Ok(()),
        Some(format @ Value::Object(_)) => format,
        Some(_) => return Err(invalid("text.format", "must be an object")),
    };
    let format = match format.get("type").and_then(Value::as_str) {
        Some("text") => return Ok(()),
        Some("json_object") => json!({ "type": "json_object" }),
        Some("json_schema") => {
            let name = format
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("text.format.name", "must be a string"))?;
            let schema = format
                .get("schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| invalid("text.format.schema", "must be an object"))?;
            let mut json_schema = json!({ "name": name, "schema": schema });
            for key in ["description", "strict"] {
                if let Some(value) = format.get(key).filter(|v| !v.is_null()) {
                    json_schema[key] = value.clone();
                }
            }
            json!({ "type": "json_schema", "json_schema": json_schema })
        }
        Some(other) => {
            return Err(invalid(
                "text.format.type",
                &format!("{other:?} is not text, json_object or json_schema"),
            ));
        }
        None => return Err(invalid("text.format.type", "must be a string")),
    };
    out.insert("response_format".into(), format);
    Ok(())
}

/// `reasoning.effort` as `reasoning_effort` (`reasoning.summary` is dropped: see the module's
/// documentation).
fn reasoning(reasoning: Option<&Value>, out: &mut Map<String, Value>) -> Result<(), ProxyError> {
    match reasoning {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(reasoning)) => match reasoning.get("effort") {
            None | Some(Value::Null) => Ok(()),
            Some(effort @ Value::String(_)) => {
                out.insert("reasoning_effort".into(), effort.clone());
                Ok(())
            }
            Some(_) => Err(invalid("reasoning.effort", "must be a string")),
        },
        Some(_) => Err(invalid("reasoning", "must be an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(request: Value) -> Value {
        to_chat_request(&request).unwrap()
    }

    /// The refusal's message for `request`, checked to be a 400.
    fn refusal(request: Value) -> String {
        let error = to_chat_request(&request).unwrap_err();
        assert_eq!(error.status, http::StatusCode::BAD_REQUEST);
        error.message
    }

    #[test]
    fn a_string_input_with_instructions_becomes_system_and_user_messages() {
        let out = translate(json!({
            "model": "claude-x", "instructions": "Be brief.", "input": "Hi",
            "max_output_tokens": 100, "temperature": 0.2, "top_p": 0.9, "user": "u-1",
            "parallel_tool_calls": false, "store": false, "metadata": {"k": "v"},
            "reasoning": {"effort": "low", "summary": "auto"},
            "prompt_cache_key": "pk", "safety_identifier": "s", "service_tier": "auto",
            "truncation": "disabled", "include": [], "background": false,
            "stream_options": {"include_obfuscation": false}, "max_tool_calls": 3,
        }));
        assert_eq!(
            out,
            json!({
                "model": "claude-x",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                ],
                "max_completion_tokens": 100,
                "temperature": 0.2,
                "top_p": 0.9,
                "user": "u-1",
                "parallel_tool_calls": false,
                "reasoning_effort": "low",
                "prompt_cache_key": "pk",
                "safety_identifier": "s",
            })
        );
    }

    #[test]
    fn message_items_keep_their_role_and_parts() {
        let out = translate(json!({"input": [
            {"role": "developer", "content": "No emoji."},
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "Sys"}]},
            {"role": "user", "content": [
                {"type": "input_text", "text": "What is this?"},
                {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "low"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
            ]},
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [
                {"type": "output_text", "text": "A cat.", "annotations": []},
                {"type": "refusal", "refusal": "No more."},
            ]},
        ]}));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "developer", "content": "No emoji."},
                {"role": "system", "content": [{"type": "text", "text": "Sys"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "A cat."},
                    {"type": "text", "text": "No more."},
                ]},
            ])
        );
    }

    #[test]
    fn function_calls_merge_into_one_assistant_message_and_outputs_become_tool_messages() {
        let out = translate(json!({"input": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking."}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
            {"type": "function_call", "call_id": "call_2", "name": "weather", "arguments": "{\"city\":\"Rome\"}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "rain"}]},
            {"type": "function_call", "call_id": "call_3", "name": "time", "arguments": "{}"},
        ]}));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": [{"type": "text", "text": "Checking."}], "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "rain"}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_3", "type": "function", "function": {"name": "time", "arguments": "{}"}},
                ]},
            ])
        );
    }

    #[test]
    fn function_tools_and_tool_choice_take_the_chat_form() {
        let out = translate(json!({
            "input": "x",
            "tools": [{"type": "function", "name": "weather", "description": "Weather",
                       "parameters": {"type": "object"}, "strict": true}],
            "tool_choice": {"type": "function", "name": "weather"},
        }));
        assert_eq!(
            out["tools"],
            json!([{"type": "function", "function": {"name": "weather", "description": "Weather",
                    "parameters": {"type": "object"}, "strict": true}}])
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type": "function", "function": {"name": "weather"}})
        );
        for mode in ["auto", "none", "required"] {
            let out = translate(json!({"input": "x", "tool_choice": mode}));
            assert_eq!(out["tool_choice"], mode);
        }
        let out = translate(json!({"input": "x", "tools": [{"type": "function", "name": "f"}]}));
        assert_eq!(
            out["tools"],
            json!([{"type": "function", "function": {"name": "f"}}])
        );
    }

    #[test]
    fn text_format_becomes_response_format() {
        let out = translate(json!({"input": "x", "text": {"format": {"type": "text"}}}));
        assert!(out.get("response_format").is_none());
        let out = translate(json!({"input": "x", "text": {"format": {"type": "json_object"}}}));
        assert_eq!(out["response_format"], json!({"type": "json_object"}));
        let out = translate(json!({"input": "x", "text": {
            "format": {"type": "json_schema", "name": "city", "schema": {"type": "object"}, "strict": true},
            "verbosity": "low",
        }}));
        assert_eq!(
            out["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": true}})
        );
        assert_eq!(out["verbosity"], "low");
    }

    #[test]
    fn streaming_asks_for_usage() {
        let out = translate(json!({"input": "x", "stream": true}));
        assert_eq!(out["stream"], true);
        assert_eq!(out["stream_options"], json!({"include_usage": true}));
        let out = translate(json!({"input": "x", "stream": false}));
        assert!(out.get("stream").is_none());
    }

    #[test]
    fn what_needs_state_is_refused_by_name() {
        for (request, field) in [
            (
                json!({"input": "x", "previous_response_id": "resp_1"}),
                "previous_response_id:",
            ),
            (
                json!({"input": "x", "conversation": "conv_1"}),
                "conversation:",
            ),
            (json!({"input": "x", "store": true}), "store:"),
            (
                json!({"input": [{"role": "user", "content": "x"}, {"type": "item_reference", "id": "msg_1"}]}),
                "input[1].type:",
            ),
        ] {
            let message = refusal(request);
            assert!(message.starts_with(field), "{message}");
            assert!(message.contains("cannot keep state"), "{message}");
        }
    }

    #[test]
    fn what_a_chat_completion_cannot_express_is_refused_by_path() {
        for (request, field) in [
            (
                json!({"input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "web_search"}]}),
                "tools[1].type:",
            ),
            (
                json!({"input": "x", "tools": [{"type": "file_search", "vector_store_ids": []}]}),
                "tools[0].type:",
            ),
            (
                json!({"input": "x", "tools": [{"type": "mcp", "server_label": "s"}]}),
                "tools[0].type:",
            ),
            (
                json!({"input": "x", "tool_choice": {"type": "web_search_preview"}}),
                "tool_choice.type:",
            ),
            (
                json!({"input": [{"role": "user", "content": "a"}, {"role": "user", "content": [
                    {"type": "input_text", "text": "b"},
                    {"type": "input_file", "file_id": "file_1"},
                ]}]}),
                "input[1].content[1]:",
            ),
            (
                json!({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}),
                "input[0].content[0].file_id:",
            ),
            (
                json!({"input": [{"type": "web_search_call", "id": "ws_1"}]}),
                "input[0].type:",
            ),
            (json!({"input": "x", "background": true}), "background:"),
            (
                json!({"input": "x", "include": ["reasoning.encrypted_content"]}),
                "include:",
            ),
            (json!({"input": "x", "truncation": "auto"}), "truncation:"),
            (json!({"input": "x", "prompt": {"id": "pmpt_1"}}), "prompt:"),
            (json!({"input": "x", "n": 2}), "n:"),
            (json!({"input": "x", "top_logprobs": 3}), "top_logprobs:"),
            (
                json!({"input": "x", "service_tier": "flex"}),
                "service_tier:",
            ),
            (json!({"input": "x", "frobnicate": 1}), "frobnicate:"),
        ] {
            let message = refusal(request);
            assert!(message.starts_with(field), "{message}");
        }
    }

    #[test]
    fn malformed_input_is_refused_with_its_path() {
        for (request, field) in [
            (json!([1]), ""),
            (json!({}), "input:"),
            (json!({"input": 3}), "input:"),
            (json!({"input": [3]}), "input[0]:"),
            (
                json!({"input": [{"role": "robot", "content": "x"}]}),
                "input[0].role:",
            ),
            (json!({"input": [{"role": "user"}]}), "input[0].content:"),
            (
                json!({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}),
                "input[0].content[0].text:",
            ),
            (
                json!({"input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "https://x"}]}]}),
                "input[0].content[0]:",
            ),
            (
                json!({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}),
                "input[0].arguments:",
            ),
            (
                json!({"input": [{"type": "function_call_output", "output": "x"}]}),
                "input[0].call_id:",
            ),
            (
                json!({"input": [{"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image", "image_url": "https://x"}]}]}),
                "input[0].output[0]:",
            ),
            (json!({"input": "x", "instructions": 1}), "instructions:"),
            (
                json!({"input": "x", "max_output_tokens": 0}),
                "max_output_tokens:",
            ),
            (
                json!({"input": "x", "tools": [{"type": "function"}]}),
                "tools[0].name:",
            ),
            (
                json!({"input": "x", "tool_choice": "sometimes"}),
                "tool_choice:",
            ),
            (
                json!({"input": "x", "tool_choice": {"type": "function"}}),
                "tool_choice.name:",
            ),
            (
                json!({"input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}),
                "text.format.schema:",
            ),
            (
                json!({"input": "x", "text": {"format": {"type": "xml"}}}),
                "text.format.type:",
            ),
            (
                json!({"input": "x", "reasoning": {"effort": 1}}),
                "reasoning.effort:",
            ),
            (json!({"input": "x", "stream": "yes"}), "stream:"),
        ] {
            let message = refusal(request);
            assert!(message.starts_with(field), "{field}: {message}");
        }
    }
}
