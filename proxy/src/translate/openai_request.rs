//! Reading an OpenAI chat completion request for translation, shared by every translated kind:
//! field errors named by their path, message text, `stop`, the token limit, and tool calls.

use serde_json::{Map, Value, json};

use crate::openai::error::ProxyError;

/// A `400 invalid_request_error` naming `field`.
pub fn invalid(field: &str, message: &str) -> ProxyError {
    let message = if field.is_empty() {
        message.to_string()
    } else {
        format!("{field}: {message}")
    };
    ProxyError::bad_request("invalid_request_for_provider", message)
}

/// A `400` for a feature the provider's API (`api`) cannot serve.
pub fn unsupported(field: &str, why: &str, api: &str) -> ProxyError {
    ProxyError::bad_request(
        "unsupported_parameter",
        format!("{field}: {why}; this backend's provider speaks {api}"),
    )
}

/// Whether `field` is set to anything but its default (absent, null, `false` or `0`).
pub fn is_set(object: &Map<String, Value>, field: &str) -> bool {
    object
        .get(field)
        .is_some_and(|v| !(v.is_null() || v == &json!(false) || v == &json!(0)))
}

/// The text of a string content or of an array of text parts (joined by newlines).
pub fn text_of(content: Option<&Value>, field: &str) -> Result<String, ProxyError> {
    match content {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(j, part)| {
                part.get("text")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        invalid(
                            &format!("{field}.content[{j}]"),
                            "only text parts are allowed here",
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.join("\n")),
        _ => Err(invalid(
            &format!("{field}.content"),
            "must be a string or an array of text parts",
        )),
    }
}

/// Refuses what neither Anthropic's Messages API nor Bedrock's Converse API can express (`api`
/// names the one refusing): several choices, log probabilities, logit bias, penalties, seeds,
/// audio, predicted outputs, non-text modalities and structured output formats. Each is refused
/// only when set to something but its default, so a client never gets an answer that silently
/// ignored what it asked for, and a client that spells out defaults is still served.
pub fn refuse_unexpressible(object: &Map<String, Value>, api: &str) -> Result<(), ProxyError> {
    if let Some(n) = object.get("n").filter(|v| !v.is_null())
        && n.as_u64() != Some(1)
    {
        return Err(unsupported(
            "n",
            "only one choice per request is supported",
            api,
        ));
    }
    for (field, why) in [
        ("logprobs", "log probabilities are not available"),
        ("top_logprobs", "log probabilities are not available"),
        ("logit_bias", "logit bias is not available"),
        ("presence_penalty", "presence penalty is not available"),
        ("frequency_penalty", "frequency penalty is not available"),
        ("seed", "seeded sampling is not available"),
        ("audio", "audio output is not available"),
        ("prediction", "predicted outputs are not available"),
    ] {
        if is_set(object, field) {
            return Err(unsupported(field, why, api));
        }
    }
    if let Some(modalities) = object.get("modalities").and_then(Value::as_array)
        && modalities.iter().any(|m| m != "text")
    {
        return Err(unsupported(
            "modalities",
            "only text output is available",
            api,
        ));
    }
    if let Some(format) = object.get("response_format").filter(|v| !v.is_null())
        && format.get("type").and_then(Value::as_str) != Some("text")
    {
        return Err(unsupported(
            "response_format",
            "structured output formats are not available",
            api,
        ));
    }
    Ok(())
}

/// The media type and the base64 data of a `data:<media type>;base64,<data>` URL; `None` for
/// any other URL (an `http(s)` one, or a data URL that is not base64).
pub fn data_url(url: &str) -> Option<(&str, &str)> {
    url.strip_prefix("data:")?.split_once(";base64,")
}

/// A user message's `content` as the provider's items: a string is one text item, an array of
/// parts one item per part, `text(text)` for a `text` part and `image(url, field)` for an
/// `image_url` part (`field` names the URL). Any other part type is refused in `api`'s words.
pub fn user_content(
    content: Option<&Value>,
    field: &str,
    api: &str,
    text: impl Fn(&str) -> Value,
    image: impl Fn(&str, &str) -> Result<Value, ProxyError>,
) -> Result<Vec<Value>, ProxyError> {
    let parts = match content {
        Some(Value::String(content)) => return Ok(vec![text(content)]),
        Some(Value::Array(parts)) => parts,
        _ => {
            return Err(invalid(
                &format!("{field}.content"),
                "must be a string or an array of content parts",
            ));
        }
    };
    parts
        .iter()
        .enumerate()
        .map(|(j, part)| {
            let field = format!("{field}.content[{j}]");
            match part.get("type").and_then(Value::as_str) {
                Some("text") => part
                    .get("text")
                    .and_then(Value::as_str)
                    .map(&text)
                    .ok_or_else(|| invalid(&format!("{field}.text"), "must be a string")),
                Some("image_url") => {
                    let url_field = format!("{field}.image_url.url");
                    let url = part
                        .pointer("/image_url/url")
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid(&url_field, "must be a string"))?;
                    image(url, &url_field)
                }
                Some(other) => Err(unsupported(
                    &format!("{field}.type"),
                    &format!("content parts of type {other:?} are not available"),
                    api,
                )),
                None => Err(invalid(&format!("{field}.type"), "must be a string")),
            }
        })
        .collect()
}

/// How one message of the conversation becomes a turn of the provider's API.
pub enum Turn {
    /// A `role` turn with these items (blocks or parts); merged into the previous turn of the
    /// same role, as both Anthropic and Gemini want alternating turns.
    Items(&'static str, Vec<Value>),
    /// The role is not one the provider takes.
    Unsupported,
}

/// The system prompt parts (`system` and `developer` messages) and the conversation, each other
/// message turned by `turn(role, message, field)` into a `{"role", items_key: [...]}` turn.
pub fn conversation(
    messages: Option<&Value>,
    items_key: &str,
    mut turn: impl FnMut(&str, &Value, &str) -> Result<Turn, ProxyError>,
) -> Result<(Vec<String>, Vec<Value>), ProxyError> {
    let messages = messages
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("messages", "must be an array"))?;
    let mut system = Vec::new();
    let mut out: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let field = format!("messages[{i}]");
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&format!("{field}.role"), "must be a string"))?;
        if matches!(role, "system" | "developer") {
            system.push(text_of(message.get("content"), &field)?);
            continue;
        }
        let (role, items) = match turn(role, message, &field)? {
            Turn::Items(role, items) => (role, items),
            Turn::Unsupported => {
                return Err(invalid(
                    &format!("{field}.role"),
                    &format!("role {role:?} is not supported"),
                ));
            }
        };
        if items.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some((last, content)) if *last == role => content.extend(items),
            _ => out.push((role, items)),
        }
    }
    if out.is_empty() {
        return Err(invalid(
            "messages",
            "at least one user or assistant message is required",
        ));
    }
    let turns = out
        .into_iter()
        .map(|(role, items)| json!({ "role": role, items_key: items }))
        .collect();
    Ok((system, turns))
}

/// `stop` as a list of sequences, when set.
pub fn stop_sequences(object: &Map<String, Value>) -> Result<Option<Vec<Value>>, ProxyError> {
    match object.get("stop") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![json!(s)])),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => Ok(Some(items.clone())),
        Some(_) => Err(invalid("stop", "must be a string or an array of strings")),
    }
}

/// `max_completion_tokens`, else `max_tokens`, when set.
pub fn max_tokens(object: &Map<String, Value>) -> Result<Option<u64>, ProxyError> {
    for field in ["max_completion_tokens", "max_tokens"] {
        match object.get(field) {
            None | Some(Value::Null) => continue,
            Some(value) => {
                return value
                    .as_u64()
                    .filter(|n| *n >= 1)
                    .map(Some)
                    .ok_or_else(|| invalid(field, "must be a positive integer"));
            }
        }
    }
    Ok(None)
}

/// One tool call of an assistant message.
pub struct ToolCall<'a> {
    /// The call's id.
    pub id: Option<&'a str>,
    /// The function's name.
    pub name: &'a str,
    /// The arguments, parsed.
    pub arguments: Value,
}

/// The tool calls of an assistant `message` at `field`.
pub fn tool_calls<'a>(message: &'a Value, field: &str) -> Result<Vec<ToolCall<'a>>, ProxyError> {
    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(invalid(&format!("{field}.tool_calls"), "must be an array")),
    };
    calls
        .iter()
        .enumerate()
        .map(|(j, call)| {
            let call_field = format!("{field}.tool_calls[{j}]");
            let name = call
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(&call_field, "needs a function name"))?;
            let arguments = call
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .filter(|a| !a.trim().is_empty())
                .unwrap_or("{}");
            // Every translated API takes a call's input as an object (Anthropic's `input`,
            // Gemini's `args`, Bedrock's `toolUse.input`): anything else is refused here, by name.
            let arguments = serde_json::from_str::<Value>(arguments)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| {
                    invalid(
                        &format!("{call_field}.function.arguments"),
                        "must be a JSON object",
                    )
                })?;
            Ok(ToolCall {
                id: call.get("id").and_then(Value::as_str),
                name,
                arguments,
            })
        })
        .collect()
}

/// One function tool.
pub struct FunctionTool<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its description, if any.
    pub description: Option<&'a Value>,
    /// Its parameters' JSON Schema, if any.
    pub parameters: Option<&'a Value>,
}

/// A request's `tools` array (`None` when absent or null), in any of the APIs the gateway reads.
pub fn tools_array(tools: Option<&Value>) -> Result<Option<&Vec<Value>>, ProxyError> {
    match tools {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(tools)) => Ok(Some(tools)),
        Some(_) => Err(invalid("tools", "must be an array")),
    }
}

/// The request's function tools (`None` without `tools`); other tool types are refused.
pub fn function_tools<'a>(
    tools: Option<&'a Value>,
    api: &str,
) -> Result<Option<Vec<FunctionTool<'a>>>, ProxyError> {
    let Some(tools) = tools_array(tools)? else {
        return Ok(None);
    };
    tools
        .iter()
        .enumerate()
        .map(|(i, tool)| {
            let field = format!("tools[{i}]");
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                return Err(unsupported(
                    &format!("{field}.type"),
                    "only function tools are available",
                    api,
                ));
            }
            let name = tool
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(&format!("{field}.function.name"), "must be a string"))?;
            Ok(FunctionTool {
                name,
                description: tool.pointer("/function/description"),
                parameters: tool
                    .pointer("/function/parameters")
                    .filter(|p| !p.is_null()),
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// OpenAI's `tool_choice`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolChoice<'a> {
    /// `auto`: the model decides.
    Auto,
    /// `none`: no tool may be called.
    None,
    /// `required`: some tool must be called.
    Required,
    /// `{"type": "function", "function": {"name"}}`: this function must be called.
    Function(&'a str),
}

/// `tool_choice`, when set.
pub fn tool_choice(object: &Map<String, Value>) -> Result<Option<ToolChoice<'_>>, ProxyError> {
    match object.get("tool_choice") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" => Ok(Some(ToolChoice::Auto)),
            "none" => Ok(Some(ToolChoice::None)),
            "required" => Ok(Some(ToolChoice::Required)),
            other => Err(invalid(
                "tool_choice",
                &format!("{other:?} is not auto, none or required"),
            )),
        },
        Some(choice @ Value::Object(_)) => choice
            .pointer("/function/name")
            .and_then(Value::as_str)
            .map(|name| Some(ToolChoice::Function(name)))
            .ok_or_else(|| invalid("tool_choice.function.name", "must be a string")),
        Some(_) => Err(invalid("tool_choice", "must be a string or an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn tool_choice_reads_every_form_and_names_what_is_wrong() {
        for (choice, expected) in [
            (json!("auto"), Some(ToolChoice::Auto)),
            (json!("none"), Some(ToolChoice::None)),
            (json!("required"), Some(ToolChoice::Required)),
            (
                json!({"type": "function", "function": {"name": "f"}}),
                Some(ToolChoice::Function("f")),
            ),
            (Value::Null, None),
        ] {
            let request = object(json!({ "tool_choice": choice }));
            assert_eq!(tool_choice(&request).unwrap(), expected);
        }
        for (choice, field) in [
            (json!("sometimes"), "tool_choice:"),
            (json!({"type": "function"}), "tool_choice.function.name:"),
            (json!(3), "tool_choice:"),
        ] {
            let request = object(json!({ "tool_choice": choice }));
            let error = tool_choice(&request).unwrap_err();
            assert!(error.message.starts_with(field), "{}", error.message);
        }
    }

    #[test]
    fn data_urls_split_into_media_type_and_data() {
        assert_eq!(
            data_url("data:image/png;base64,AAAA"),
            Some(("image/png", "AAAA"))
        );
        assert_eq!(data_url("data:image/png,raw"), None);
        assert_eq!(data_url("https://example.com/cat.png"), None);
    }

    #[test]
    fn tool_call_arguments_must_be_an_object() {
        let message = json!({"tool_calls": [
            {"id": "a", "function": {"name": "f", "arguments": ""}},
            {"id": "b", "function": {"name": "f", "arguments": "{\"x\":1}"}},
        ]});
        let calls = tool_calls(&message, "messages[0]").unwrap();
        assert_eq!(calls[0].arguments, json!({}));
        assert_eq!(calls[1].arguments, json!({"x": 1}));
        for arguments in ["[1]", "null", "{", "3"] {
            let message =
                json!({"tool_calls": [{"function": {"name": "f", "arguments": arguments}}]});
            let error = tool_calls(&message, "messages[0]").err().unwrap();
            assert!(
                error
                    .message
                    .starts_with("messages[0].tool_calls[0].function.arguments:"),
                "{}",
                error.message
            );
        }
    }
}
