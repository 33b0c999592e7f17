//! An OpenAI chat completion request as a Gemini `generateContent` request
//! (<https://ai.google.dev/api/generate-content>): system and developer messages become
//! `systemInstruction`, the conversation `contents` with roles `user` and `model`, tool calls and
//! results `functionCall` and `functionResponse` parts, sampling settings `generationConfig`.
//! A feature Gemini cannot express is a `400` naming it, never dropped.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::openai::error::ProxyError;
use crate::translate::openai_request::{
    self, Turn, conversation, function_tools, invalid, is_set, max_tokens, stop_sequences, text_of,
    tool_calls,
};

/// The Gemini request for `request` (an OpenAI chat completion request).
pub fn to_generate_content(request: &Value) -> Result<Value, ProxyError> {
    let object = request
        .as_object()
        .ok_or_else(|| invalid("", "the request body must be a JSON object"))?;
    refuse_unsupported(object)?;
    let mut out = Map::new();
    let (system, contents) = contents(object.get("messages"))?;
    if !system.is_empty() {
        out.insert(
            "systemInstruction".into(),
            json!({ "parts": [{ "text": system.join("\n\n") }] }),
        );
    }
    out.insert("contents".into(), Value::Array(contents));
    let config = generation_config(object)?;
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(tools) = tools(object.get("tools"))? {
        out.insert("tools".into(), json!([{ "functionDeclarations": tools }]));
    }
    if let Some(config) = tool_config(object.get("tool_choice"))? {
        out.insert("toolConfig".into(), config);
    }
    Ok(Value::Object(out))
}

/// The API named in refusals.
const API: &str = "Gemini's generateContent API";

fn unsupported(field: &str, why: &str) -> ProxyError {
    openai_request::unsupported(field, why, API)
}

/// Fields Gemini has no way to express, refused unless at their default.
fn refuse_unsupported(object: &Map<String, Value>) -> Result<(), ProxyError> {
    let set = |field: &str| is_set(object, field);
    for (field, why) in [
        ("logprobs", "log probabilities are not available"),
        ("top_logprobs", "log probabilities are not available"),
        ("logit_bias", "logit bias is not available"),
        ("audio", "audio output is not available"),
        ("prediction", "predicted outputs are not available"),
    ] {
        if set(field) {
            return Err(unsupported(field, why));
        }
    }
    // Gemini may always call several functions at once: `true` (OpenAI's default) is its
    // behaviour, `false` cannot be had.
    if object.get("parallel_tool_calls") == Some(&json!(false)) {
        return Err(unsupported(
            "parallel_tool_calls",
            "turning parallel tool calls off is not available",
        ));
    }
    if let Some(modalities) = object.get("modalities").and_then(Value::as_array)
        && modalities.iter().any(|m| m != "text")
    {
        return Err(unsupported("modalities", "only text output is available"));
    }
    let n = object.get("n").and_then(Value::as_u64).unwrap_or(1);
    if n > 1 && object.get("stream").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported(
            "n",
            "several choices are not available in a stream",
        ));
    }
    Ok(())
}

/// `generationConfig` from OpenAI's sampling fields.
fn generation_config(object: &Map<String, Value>) -> Result<Map<String, Value>, ProxyError> {
    let mut config = Map::new();
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ] {
        if let Some(value) = object.get(from).filter(|v| !v.is_null()) {
            config.insert(to.into(), value.clone());
        }
    }
    if let Some(max) = max_tokens(object)? {
        config.insert("maxOutputTokens".into(), json!(max));
    }
    if let Some(sequences) = stop_sequences(object)? {
        config.insert("stopSequences".into(), Value::Array(sequences));
    }
    if let Some(n) = object.get("n").filter(|v| !v.is_null()) {
        let n = n
            .as_u64()
            .filter(|n| (1..=8).contains(n))
            .ok_or_else(|| invalid("n", "must be an integer between 1 and 8"))?;
        if n > 1 {
            config.insert("candidateCount".into(), json!(n));
        }
    }
    if let Some(format) = object.get("response_format").filter(|v| !v.is_null()) {
        match format.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => {
                config.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                let schema = format
                    .pointer("/json_schema/schema")
                    .ok_or_else(|| invalid("response_format.json_schema.schema", "is required"))?;
                config.insert("responseMimeType".into(), json!("application/json"));
                config.insert("responseJsonSchema".into(), schema.clone());
            }
            _ => {
                return Err(invalid(
                    "response_format.type",
                    "must be text, json_object or json_schema",
                ));
            }
        }
    }
    Ok(config)
}

/// The system prompt parts and the conversation.
fn contents(messages: Option<&Value>) -> Result<(Vec<String>, Vec<Value>), ProxyError> {
    // Gemini answers a function call by the function's name, OpenAI by the call's id.
    let mut call_names: HashMap<String, String> = HashMap::new();
    conversation(messages, "parts", |role, message, field| {
        Ok(match role {
            "user" => Turn::Items(
                "user",
                openai_request::user_content(
                    message.get("content"),
                    field,
                    API,
                    |text| json!({ "text": text }),
                    inline_image,
                )?,
            ),
            "assistant" => Turn::Items("model", model_parts(message, field, &mut call_names)?),
            "tool" => Turn::Items(
                "user",
                vec![function_response(message, field, &call_names)?],
            ),
            _ => Turn::Unsupported,
        })
    })
}

/// Gemini takes images inline (base64) or as files it hosts: a `data:` URL only (`field` names
/// the URL).
fn inline_image(url: &str, field: &str) -> Result<Value, ProxyError> {
    let Some((mime_type, data)) = openai_request::data_url(url) else {
        return Err(unsupported(
            field,
            "only base64 data: URLs are available (Gemini does not fetch image URLs)",
        ));
    };
    Ok(json!({ "inlineData": { "mimeType": mime_type, "data": data } }))
}

fn model_parts(
    message: &Value,
    field: &str,
    call_names: &mut HashMap<String, String>,
) -> Result<Vec<Value>, ProxyError> {
    let mut parts = match message.get("content") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) if text.is_empty() => Vec::new(),
        content => vec![json!({ "text": text_of(content, field)? })],
    };
    for call in tool_calls(message, field)? {
        if let Some(id) = call.id {
            call_names.insert(id.to_string(), call.name.to_string());
        }
        parts.push(json!({ "functionCall": { "name": call.name, "args": call.arguments } }));
    }
    Ok(parts)
}

fn function_response(
    message: &Value,
    field: &str,
    call_names: &HashMap<String, String>,
) -> Result<Value, ProxyError> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{field}.tool_call_id"), "must be a string"))?;
    let name = call_names.get(id).ok_or_else(|| {
        invalid(
            &format!("{field}.tool_call_id"),
            "names no tool call of an earlier assistant message",
        )
    })?;
    let content = text_of(message.get("content"), field)?;
    // A JSON object result is passed as it is; anything else as `{"content": ...}`.
    let response = match serde_json::from_str::<Value>(&content) {
        Ok(Value::Object(object)) => Value::Object(object),
        _ => json!({ "content": content }),
    };
    Ok(json!({ "functionResponse": { "name": name, "response": response } }))
}

fn tools(tools: Option<&Value>) -> Result<Option<Vec<Value>>, ProxyError> {
    let Some(tools) = function_tools(tools, API)? else {
        return Ok(None);
    };
    let declarations = tools
        .into_iter()
        .map(|tool| {
            let mut declaration = json!({ "name": tool.name });
            if let Some(description) = tool.description {
                declaration["description"] = description.clone();
            }
            if let Some(parameters) = tool.parameters {
                declaration["parameters"] = openapi_schema(parameters);
            }
            declaration
        })
        .collect();
    Ok(Some(declarations))
}

/// A JSON Schema as the OpenAPI subset Gemini's `parameters` take: the keywords it rejects
/// (`additionalProperties`, `$schema`, `strict`, ...) are left out; they constrain nothing a
/// function declaration can express.
fn openapi_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "additionalProperties"
                            | "$schema"
                            | "$id"
                            | "strict"
                            | "$defs"
                            | "definitions"
                    )
                })
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        // Property names are data, not keywords.
                        "properties" => Value::Object(
                            v.as_object()
                                .map(|props| {
                                    props
                                        .iter()
                                        .map(|(name, s)| (name.clone(), openapi_schema(s)))
                                        .collect()
                                })
                                .unwrap_or_default(),
                        ),
                        _ => openapi_schema(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(openapi_schema).collect()),
        other => other.clone(),
    }
}

fn tool_config(choice: Option<&Value>) -> Result<Option<Value>, ProxyError> {
    let (mode, allowed) = match choice {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" => ("AUTO", None),
            "none" => ("NONE", None),
            "required" => ("ANY", None),
            other => {
                return Err(invalid(
                    "tool_choice",
                    &format!("{other:?} is not auto, none or required"),
                ));
            }
        },
        Some(Value::Object(_)) => {
            let name = choice
                .and_then(|c| c.pointer("/function/name"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.function.name", "must be a string"))?;
            ("ANY", Some(name))
        }
        Some(_) => return Err(invalid("tool_choice", "must be a string or an object")),
    };
    let mut config = json!({ "mode": mode });
    if let Some(name) = allowed {
        config["allowedFunctionNames"] = json!([name]);
    }
    Ok(Some(json!({ "functionCallingConfig": config })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(request: Value) -> Value {
        to_generate_content(&request).unwrap()
    }

    #[test]
    fn messages_become_contents_and_settings_the_generation_config() {
        let out = translate(json!({
            "model": "gemini-x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            ],
            "temperature": 0.3, "top_p": 0.9, "max_tokens": 100, "stop": ["END"], "seed": 7,
            "response_format": {"type": "json_object"}, "user": "u-1",
        }));
        assert_eq!(
            out["systemInstruction"],
            json!({"parts": [{"text": "Be brief."}]})
        );
        assert_eq!(
            out["contents"][0],
            json!({"role": "user", "parts": [{"text": "Hi"}]})
        );
        assert_eq!(out["contents"][1]["role"], "model");
        assert_eq!(
            out["contents"][2]["parts"][1],
            json!({"inlineData": {"mimeType": "image/png", "data": "AAAA"}})
        );
        assert_eq!(
            out["generationConfig"],
            json!({"temperature": 0.3, "topP": 0.9, "maxOutputTokens": 100, "stopSequences": ["END"], "seed": 7, "responseMimeType": "application/json"})
        );
        assert!(out.get("model").is_none(), "the model goes in the path");
    }

    #[test]
    fn tool_calls_and_results_become_function_calls_and_responses_by_name() {
        let out = translate(json!({
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"sky\":\"clear\"}"},
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather",
                "parameters": {"type": "object", "additionalProperties": false,
                    "properties": {"city": {"type": "string"}, "additionalProperties": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
        }));
        assert_eq!(
            out["contents"][1]["parts"][0],
            json!({"functionCall": {"name": "weather", "args": {"city": "Paris"}}})
        );
        assert_eq!(
            out["contents"][2]["parts"][0],
            json!({"functionResponse": {"name": "weather", "response": {"sky": "clear"}}})
        );
        let parameters = &out["tools"][0]["functionDeclarations"][0]["parameters"];
        assert!(parameters.get("additionalProperties").is_none());
        // A property that happens to be called so is kept.
        assert_eq!(
            parameters["properties"]["additionalProperties"]["type"],
            "string"
        );
        assert_eq!(
            out["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}})
        );
    }

    #[test]
    fn what_gemini_cannot_express_is_a_400_naming_it() {
        for (field, value, extra) in [
            ("logprobs", json!(true), json!({})),
            ("logit_bias", json!({"1": 2}), json!({})),
            ("parallel_tool_calls", json!(false), json!({})),
            ("n", json!(2), json!({"stream": true})),
        ] {
            let mut request = json!({"messages": [{"role": "user", "content": "x"}]});
            request[field] = value;
            for (k, v) in extra.as_object().unwrap() {
                request[k] = v.clone();
            }
            let error = to_generate_content(&request).unwrap_err();
            assert!(
                error.message.starts_with(&format!("{field}:")),
                "{}",
                error.message
            );
        }
        let url = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]}]});
        assert!(
            to_generate_content(&url)
                .unwrap_err()
                .message
                .starts_with("messages[0].content[0].image_url.url:")
        );
        let orphan =
            json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]});
        assert!(
            to_generate_content(&orphan)
                .unwrap_err()
                .message
                .starts_with("messages[0].tool_call_id:")
        );
        // Several choices without a stream are Gemini's candidateCount.
        let out = translate(json!({"messages": [{"role": "user", "content": "x"}], "n": 3}));
        assert_eq!(out["generationConfig"]["candidateCount"], 3);
    }
}
