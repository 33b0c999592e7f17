//! OpenAI Responses API wire types and request validation.
//!
//! Validation follows the API's documented request schema and reports problems the way the API
//! does: a 400 `invalid_request_error` whose `param` names the offending field in the API's path
//! form (`input[1].content[0].type`) and whose `code` says what is wrong with it
//! (`missing_required_parameter`, `invalid_type`, `invalid_value`, `unknown_parameter`,
//! `integer_below_min_value`, ...). The request is walked as a `serde_json::Value` so every
//! message can name its field exactly.

use std::collections::HashSet;
use std::fmt::Display;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::anthropic::{Tool, ToolChoice};
use crate::openai::count_words;

/// Every top-level parameter the API documents; others are refused as unknown (a Chat
/// Completions body sent here fails on `messages`, as it does at OpenAI).
const TOP_LEVEL: &[&str] = &[
    "access_programs",
    "background",
    "background_options",
    "context_management",
    "conversation",
    "image",
    "include",
    "input",
    "instructions",
    "max_output_tokens",
    "max_tool_calls",
    "metadata",
    "model",
    "moderation",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt",
    "prompt_cache_key",
    "prompt_cache_options",
    "prompt_cache_retention",
    "reasoning",
    "safety_identifier",
    "service_tier",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "text",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "truncation",
    "user",
];

/// The smallest `max_output_tokens` the API takes.
pub(crate) const MIN_OUTPUT_TOKENS: i64 = 16;

/// Input item types this server understands (`reasoning` and `item_reference` items are
/// accepted and, carrying no text, ignored).
const ITEM_TYPES: &[&str] = &[
    "message",
    "function_call",
    "function_call_output",
    "reasoning",
    "item_reference",
];
const ROLES: &[&str] = &["assistant", "system", "developer", "user"];
const INPUT_PARTS: &[&str] = &["input_text", "input_image", "input_file"];
const OUTPUT_PARTS: &[&str] = &["output_text", "refusal"];
const IMAGE_DETAILS: &[&str] = &["low", "high", "auto", "original"];
const TOOL_CHOICES: &[&str] = &["none", "auto", "required"];
const SERVICE_TIERS: &[&str] = &["auto", "default", "flex", "scale", "priority"];
const TRUNCATIONS: &[&str] = &["auto", "disabled"];

/// Why a request is refused: the message, `param` and `code` of OpenAI's 400
/// `invalid_request_error`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub message: String,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl Invalid {
    fn new(message: String, param: impl Into<String>, code: &'static str) -> Invalid {
        Invalid {
            message,
            param: Some(param.into()),
            code: Some(code),
        }
    }
}

type Check<T> = Result<T, Invalid>;

/// `Missing required parameter: 'input[0].role'.`
fn missing(param: &str) -> Invalid {
    let message = format!("Missing required parameter: '{param}'.");
    Invalid::new(message, param, "missing_required_parameter")
}

/// `Unknown parameter: 'messages'.`
fn unknown(param: &str) -> Invalid {
    let message = format!("Unknown parameter: '{param}'.");
    Invalid::new(message, param, "unknown_parameter")
}

/// How the API names a JSON value's type in its messages.
fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `Invalid type for 'input': expected a string, but got an object instead.`
fn wrong_type(param: &str, expected: &str, got: &Value) -> Invalid {
    let message = format!(
        "Invalid type for '{param}': expected {expected}, but got {} instead.",
        kind_of(got)
    );
    Invalid::new(message, param, "invalid_type")
}

/// `'a'`, `'a' and 'b'`, `'a', 'b', and 'c'`: how the API lists the values it supports.
fn quoted_list(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [rest @ .., last] => format!("{}, and {last}", rest.join(", ")),
    }
}

/// `Invalid value: 'bot'. Supported values are: 'assistant', 'system', 'developer', and 'user'.`
fn wrong_value(param: &str, got: &str, supported: &[&str]) -> Invalid {
    let message = format!(
        "Invalid value: '{got}'. Supported values are: {}.",
        quoted_list(supported)
    );
    Invalid::new(message, param, "invalid_value")
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

fn field(path: &str, key: impl Display) -> String {
    format!("{path}.{key}")
}

/// A present, non-null field (the API treats `null` as absent).
fn optional<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn required<'v>(obj: &'v Map<String, Value>, key: &str, param: &str) -> Check<&'v Value> {
    optional(obj, key).ok_or_else(|| missing(param))
}

fn want_obj<'v>(v: &'v Value, param: &str) -> Check<&'v Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| wrong_type(param, "an object", v))
}

fn want_arr<'v>(v: &'v Value, param: &str) -> Check<&'v [Value]> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| wrong_type(param, "an array", v))
}

fn want_str<'v>(v: &'v Value, param: &str) -> Check<&'v str> {
    v.as_str().ok_or_else(|| wrong_type(param, "a string", v))
}

fn want_bool(v: &Value, param: &str) -> Check<bool> {
    v.as_bool().ok_or_else(|| wrong_type(param, "a boolean", v))
}

/// An integer; like the API, `2.0` is not one.
fn want_int(v: &Value, param: &str) -> Check<i64> {
    match v {
        Value::Number(n) if !n.is_f64() => Ok(n.as_i64().unwrap_or(i64::MAX)),
        _ => Err(wrong_type(param, "an integer", v)),
    }
}

fn want_number(v: &Value, param: &str) -> Check<f64> {
    v.as_f64().ok_or_else(|| wrong_type(param, "a number", v))
}

fn string_field<'v>(obj: &'v Map<String, Value>, key: &str, path: &str) -> Check<&'v str> {
    let param = field(path, key);
    want_str(required(obj, key, &param)?, &param)
}

/// One of `supported`, else `invalid_value`.
fn one_of<'v>(v: &'v Value, param: &str, supported: &[&str]) -> Check<&'v str> {
    let s = want_str(v, param)?;
    if supported.contains(&s) {
        Ok(s)
    } else {
        Err(wrong_value(param, s, supported))
    }
}

fn int_at_least(v: &Value, param: &str, min: i64) -> Check<i64> {
    let n = want_int(v, param)?;
    if n < min {
        let message = format!(
            "Invalid '{param}': integer below minimum value. Expected a value >= {min}, but got \
             {n} instead."
        );
        return Err(Invalid::new(message, param, "integer_below_min_value"));
    }
    Ok(n)
}

fn int_in(v: &Value, param: &str, min: i64, max: i64) -> Check<i64> {
    let n = int_at_least(v, param, min)?;
    if n > max {
        let message = format!(
            "Invalid '{param}': integer above maximum value. Expected a value <= {max}, but got \
             {n} instead."
        );
        return Err(Invalid::new(message, param, "integer_above_max_value"));
    }
    Ok(n)
}

fn decimal_in(v: &Value, param: &str, min: f64, max: f64) -> Check<()> {
    let n = want_number(v, param)?;
    let (side, code, bound, op) = if n < min {
        ("below minimum", "decimal_below_min_value", min, ">=")
    } else if n > max {
        ("above maximum", "decimal_above_max_value", max, "<=")
    } else {
        return Ok(());
    };
    let message = format!(
        "Invalid '{param}': decimal {side} value. Expected a value {op} {bound}, but got {n} \
         instead."
    );
    Err(Invalid::new(message, param, code))
}

/// What the handler needs from a valid request.
pub(crate) struct ResponsesRequest<'a> {
    pub model: &'a str,
    pub stream: bool,
    /// `store`, true unless the request turns it off.
    pub store: bool,
    /// `u64::MAX` when the request sets no limit.
    pub max_output_tokens: u64,
    pub previous_response_id: Option<&'a str>,
    /// The `function` tools, which are the ones the turn may call.
    pub tools: Vec<Tool<'a>>,
    pub tool_choice: ToolChoice<'a>,
    /// The text of the last user message, or empty when a `function_call_output` follows it
    /// (the turn then answers the tool's result, as a tool result turn does on the Messages API).
    pub last_user_text: String,
    /// Words in function tool names and descriptions, `instructions` and the input's text
    /// (message text and function call outputs).
    pub prompt_tokens: u32,
    /// The words of `instructions`, which a follow-up's conversation does not carry over.
    pub instruction_tokens: u32,
    /// The `call_id`s of the input's `function_call` items, in order.
    pub calls: Vec<&'a str>,
    /// The `call_id`s of the input's `function_call_output` items.
    pub answered: HashSet<&'a str>,
    /// The `call_id`s of `function_call_output` items that no earlier `function_call` in the
    /// input made: a stored conversation (`previous_response_id`) must have made them.
    pub unmatched_outputs: Vec<&'a str>,
    /// The request's settings as a Response object reports them (defaults filled in).
    pub echo: Map<String, Value>,
}

/// What the walk over `input` gathers.
#[derive(Default)]
struct Scan<'a> {
    tokens: u32,
    calls: Vec<&'a str>,
    /// `calls` as a set, so matching outputs to calls stays linear in the input's size.
    made: HashSet<&'a str>,
    answered: HashSet<&'a str>,
    unmatched_outputs: Vec<&'a str>,
    /// The last user message's content, or `None` once a function call output follows it.
    last_user: Option<&'a Value>,
}

impl Scan<'_> {
    fn add(&mut self, text: &str) {
        self.tokens = self.tokens.saturating_add(count_words(text));
    }
}

/// A content part of a message with `role`; text parts add their words.
fn content_part<'a>(part: &'a Value, path: &str, role: &str, scan: &mut Scan<'a>) -> Check<()> {
    let obj = want_obj(part, path)?;
    let type_param = field(path, "type");
    let ty = want_str(required(obj, "type", &type_param)?, &type_param)?;
    let supported = if role == "assistant" {
        OUTPUT_PARTS
    } else {
        INPUT_PARTS
    };
    if !supported.contains(&ty) {
        return Err(wrong_value(&type_param, ty, supported));
    }
    match ty {
        "input_text" | "output_text" => scan.add(string_field(obj, "text", path)?),
        "refusal" => scan.add(string_field(obj, "refusal", path)?),
        "input_image" => {
            if let Some(detail) = optional(obj, "detail") {
                one_of(detail, &field(path, "detail"), IMAGE_DETAILS)?;
            }
            let url = optional(obj, "image_url");
            let file = optional(obj, "file_id");
            if url.is_none() && file.is_none() {
                return Err(missing(&field(path, "image_url")));
            }
            for (key, v) in [("image_url", url), ("file_id", file)] {
                if let Some(v) = v {
                    want_str(v, &field(path, key))?;
                }
            }
        }
        _ => {
            let sources = ["file_id", "file_data", "file_url"];
            if !sources.iter().any(|k| optional(obj, k).is_some()) {
                return Err(missing(&field(path, "file_id")));
            }
        }
    }
    Ok(())
}

/// An input message (`type: "message"` or a bare `{role, content}`).
fn message<'a>(obj: &'a Map<String, Value>, path: &str, scan: &mut Scan<'a>) -> Check<()> {
    let role_param = field(path, "role");
    let role = one_of(required(obj, "role", &role_param)?, &role_param, ROLES)?;
    let content_param = field(path, "content");
    let content = required(obj, "content", &content_param)?;
    match content {
        Value::String(s) => scan.add(s),
        Value::Array(parts) => {
            for (i, part) in parts.iter().enumerate() {
                content_part(part, &index(&content_param, i), role, scan)?;
            }
        }
        other => {
            return Err(wrong_type(
                &content_param,
                "one of a string or array of content parts",
                other,
            ));
        }
    }
    if role == "user" {
        scan.last_user = Some(content);
    }
    Ok(())
}

fn input_item<'a>(item: &'a Value, path: &str, scan: &mut Scan<'a>) -> Check<()> {
    let obj = want_obj(item, path)?;
    let type_param = field(path, "type");
    // A message may leave out its type (the API's "easy input message").
    let ty = match optional(obj, "type") {
        Some(ty) => one_of(ty, &type_param, ITEM_TYPES)?,
        None if obj.contains_key("role") => "message",
        None => return Err(missing(&type_param)),
    };
    match ty {
        "message" => message(obj, path, scan)?,
        "function_call" => {
            let call_id = string_field(obj, "call_id", path)?;
            string_field(obj, "name", path)?;
            string_field(obj, "arguments", path)?;
            scan.calls.push(call_id);
            scan.made.insert(call_id);
        }
        "function_call_output" => {
            let call_id = string_field(obj, "call_id", path)?;
            let output_param = field(path, "output");
            match required(obj, "output", &output_param)? {
                Value::String(s) => scan.add(s),
                Value::Array(parts) => {
                    for (i, part) in parts.iter().enumerate() {
                        content_part(part, &index(&output_param, i), "tool", scan)?;
                    }
                }
                other => {
                    return Err(wrong_type(
                        &output_param,
                        "one of a string or array of content parts",
                        other,
                    ));
                }
            }
            if !scan.made.contains(call_id) {
                scan.unmatched_outputs.push(call_id);
            }
            scan.answered.insert(call_id);
            scan.last_user = None;
        }
        "item_reference" => {
            string_field(obj, "id", path)?;
        }
        _ => {}
    }
    Ok(())
}

fn parse_input<'a>(v: &'a Value, scan: &mut Scan<'a>) -> Check<()> {
    match v {
        Value::String(s) => {
            scan.add(s);
            scan.last_user = Some(v);
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, &index("input", i), scan)?;
            }
        }
        other => {
            return Err(wrong_type(
                "input",
                "one of a string or array of input items",
                other,
            ));
        }
    }
    Ok(())
}

/// The `function` tools (the ones a turn may call); other tool types are checked for a `type`
/// only, since this server runs none of them.
fn parse_tools<'v>(v: &'v Value, tokens: &mut u32) -> Check<Vec<Tool<'v>>> {
    let list = want_arr(v, "tools")?;
    let mut tools = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let path = index("tools", i);
        let obj = want_obj(tool, &path)?;
        let type_param = field(&path, "type");
        if want_str(required(obj, "type", &type_param)?, &type_param)? != "function" {
            continue;
        }
        // A Chat Completions tool (`{"type":"function","function":{..}}`) fails here, as it
        // does at OpenAI.
        let name = string_field(obj, "name", &path)?;
        let valid_name = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            let param = field(&path, "name");
            let message = format!(
                "Invalid '{param}': string does not match pattern. Expected a string that \
                 matches the pattern '^[a-zA-Z0-9_-]{{1,64}}$'."
            );
            return Err(Invalid::new(message, param, "invalid_value"));
        }
        *tokens = tokens.saturating_add(count_words(name));
        if let Some(d) = optional(obj, "description") {
            let d = want_str(d, &field(&path, "description"))?;
            *tokens = tokens.saturating_add(count_words(d));
        }
        let input_schema = match optional(obj, "parameters") {
            Some(p) => {
                want_obj(p, &field(&path, "parameters"))?;
                Some(p)
            }
            None => None,
        };
        if let Some(strict) = optional(obj, "strict") {
            want_bool(strict, &field(&path, "strict"))?;
        }
        tools.push(Tool { name, input_schema });
    }
    Ok(tools)
}

fn parse_tool_choice<'v>(
    v: &'v Value,
    tools: &[Tool<'_>],
    any_tools: bool,
) -> Check<ToolChoice<'v>> {
    let choice = match v {
        Value::String(_) => match one_of(v, "tool_choice", TOOL_CHOICES)? {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            _ => ToolChoice::Any,
        },
        Value::Object(obj) => {
            let ty = want_str(
                required(obj, "type", "tool_choice.type")?,
                "tool_choice.type",
            )?;
            if ty != "function" {
                // Hosted tools, allowed-tool lists and the like: this server calls none of them.
                return Ok(ToolChoice::Auto);
            }
            let name = string_field(obj, "name", "tool_choice")?;
            if !tools.iter().any(|t| t.name == name) {
                let message = "Tool choice 'function' not found in 'tools' parameter.";
                return Err(Invalid::new(
                    message.to_owned(),
                    "tool_choice",
                    "invalid_value",
                ));
            }
            ToolChoice::Tool(name)
        }
        other => {
            return Err(wrong_type(
                "tool_choice",
                "one of a string or an object",
                other,
            ));
        }
    };
    if choice == ToolChoice::Any && !any_tools {
        let message = "Tool choice 'required' must be specified with 'tools' parameter.";
        return Err(Invalid::new(
            message.to_owned(),
            "tool_choice",
            "invalid_value",
        ));
    }
    Ok(choice)
}

/// Checks the settings a Response object reports back and fills in their defaults.
fn echo(obj: &Map<String, Value>) -> Check<Map<String, Value>> {
    let given = |key: &str| optional(obj, key).cloned();
    let mut out = Map::new();
    let mut put = |key: &str, value: Option<Value>, default: Value| {
        out.insert(key.to_owned(), value.unwrap_or(default));
    };
    if let Some(v) = optional(obj, "background") {
        want_bool(v, "background")?;
    }
    put("background", given("background"), Value::Bool(false));
    if let Some(v) = optional(obj, "instructions") {
        want_str(v, "instructions")?;
    }
    put("instructions", given("instructions"), Value::Null);
    if let Some(v) = optional(obj, "max_output_tokens") {
        int_at_least(v, "max_output_tokens", MIN_OUTPUT_TOKENS)?;
    }
    put("max_output_tokens", given("max_output_tokens"), Value::Null);
    if let Some(v) = optional(obj, "max_tool_calls") {
        int_at_least(v, "max_tool_calls", 1)?;
    }
    put("max_tool_calls", given("max_tool_calls"), Value::Null);
    if let Some(v) = optional(obj, "metadata") {
        let meta = want_obj(v, "metadata")?;
        for (key, value) in meta {
            want_str(value, &field("metadata", key))?;
        }
    }
    put("metadata", given("metadata"), json!({}));
    if let Some(v) = optional(obj, "parallel_tool_calls") {
        want_bool(v, "parallel_tool_calls")?;
    }
    put(
        "parallel_tool_calls",
        given("parallel_tool_calls"),
        Value::Bool(true),
    );
    put(
        "previous_response_id",
        given("previous_response_id"),
        Value::Null,
    );
    for key in ["prompt_cache_key", "safety_identifier", "user"] {
        if let Some(v) = optional(obj, key) {
            want_str(v, key)?;
        }
        put(key, given(key), Value::Null);
    }
    for key in [
        "reasoning",
        "text",
        "stream_options",
        "prompt",
        "conversation",
    ] {
        if let Some(v) = optional(obj, key) {
            want_obj(v, key)?;
        }
    }
    put(
        "reasoning",
        given("reasoning"),
        json!({"effort": null, "summary": null}),
    );
    put(
        "text",
        given("text"),
        json!({"format": {"type": "text"}, "verbosity": "medium"}),
    );
    // `auto` runs on the project's default tier, which is what the API reports.
    let tier = match optional(obj, "service_tier") {
        Some(v) => Some(one_of(v, "service_tier", SERVICE_TIERS)?).filter(|t| *t != "auto"),
        None => None,
    };
    put(
        "service_tier",
        tier.map(Value::from),
        Value::from("default"),
    );
    if let Some(v) = optional(obj, "store") {
        want_bool(v, "store")?;
    }
    put("store", given("store"), Value::Bool(true));
    if let Some(v) = optional(obj, "temperature") {
        decimal_in(v, "temperature", 0.0, 2.0)?;
    }
    put("temperature", given("temperature"), Value::from(1.0));
    if let Some(v) = optional(obj, "top_p") {
        decimal_in(v, "top_p", 0.0, 1.0)?;
    }
    put("top_p", given("top_p"), Value::from(1.0));
    if let Some(v) = optional(obj, "top_logprobs") {
        int_in(v, "top_logprobs", 0, 20)?;
    }
    put("top_logprobs", given("top_logprobs"), Value::from(0));
    if let Some(v) = optional(obj, "truncation") {
        one_of(v, "truncation", TRUNCATIONS)?;
    }
    put("truncation", given("truncation"), Value::from("disabled"));
    put("tool_choice", given("tool_choice"), Value::from("auto"));
    put("tools", given("tools"), json!([]));
    if let Some(v) = optional(obj, "include") {
        for (i, item) in want_arr(v, "include")?.iter().enumerate() {
            want_str(item, &index("include", i))?;
        }
    }
    Ok(out)
}

/// Validates a Responses API request body.
pub(crate) fn parse_request(body: &Value) -> Check<ResponsesRequest<'_>> {
    let Some(obj) = body.as_object() else {
        let message = format!(
            "Invalid type for request body: expected an object, but got {} instead.",
            kind_of(body)
        );
        return Err(Invalid {
            message,
            param: None,
            code: Some("invalid_type"),
        });
    };
    if let Some(key) = obj.keys().find(|k| !TOP_LEVEL.contains(&k.as_str())) {
        return Err(unknown(key));
    }
    let model = want_str(required(obj, "model", "model")?, "model")?;
    let echo = echo(obj)?;

    // Prompt order: tools, instructions, input.
    let mut tokens = 0u32;
    let tools = match optional(obj, "tools") {
        Some(v) => parse_tools(v, &mut tokens)?,
        None => Vec::new(),
    };
    let any_tools = optional(obj, "tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let tool_choice = match optional(obj, "tool_choice") {
        Some(v) => parse_tool_choice(v, &tools, any_tools)?,
        None => ToolChoice::Auto,
    };
    let instruction_tokens = optional(obj, "instructions")
        .and_then(Value::as_str)
        .map_or(0, count_words);
    tokens = tokens.saturating_add(instruction_tokens);
    let mut scan = Scan::default();
    if let Some(input) = optional(obj, "input") {
        parse_input(input, &mut scan)?;
    }
    let previous_response_id = match optional(obj, "previous_response_id") {
        Some(v) => Some(want_str(v, "previous_response_id")?),
        None => None,
    };
    let stream = match optional(obj, "stream") {
        Some(v) => want_bool(v, "stream")?,
        None => false,
    };
    let max_output_tokens = optional(obj, "max_output_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(u64::MAX);

    Ok(ResponsesRequest {
        model,
        stream,
        store: echo.get("store").and_then(Value::as_bool) != Some(false),
        max_output_tokens,
        previous_response_id,
        tools,
        tool_choice,
        last_user_text: scan.last_user.map(user_text).unwrap_or_default(),
        prompt_tokens: tokens.saturating_add(scan.tokens),
        instruction_tokens,
        calls: scan.calls,
        answered: scan.answered,
        unmatched_outputs: scan.unmatched_outputs,
        echo,
    })
}

/// A user message's text: string content, or its `input_text` parts joined by `\n`.
fn user_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter(|p| p.get("type").and_then(Value::as_str) == Some("input_text"))
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            texts.join("\n")
        }
        _ => String::new(),
    }
}

#[derive(Clone, Copy, Serialize)]
pub(crate) struct Usage {
    pub input_tokens: u32,
    pub input_tokens_details: InputDetails,
    pub output_tokens: u32,
    pub output_tokens_details: OutputDetails,
    pub total_tokens: u32,
}

#[derive(Clone, Copy, Serialize)]
pub(crate) struct InputDetails {
    pub cached_tokens: u32,
    pub cache_write_tokens: u32,
}

#[derive(Clone, Copy, Serialize)]
pub(crate) struct OutputDetails {
    pub reasoning_tokens: u32,
}

impl Usage {
    pub fn new(input: u32, output: u32) -> Usage {
        Usage {
            input_tokens: input,
            input_tokens_details: InputDetails {
                cached_tokens: 0,
                cache_write_tokens: 0,
            },
            output_tokens: output,
            output_tokens_details: OutputDetails {
                reasoning_tokens: 0,
            },
            total_tokens: input.saturating_add(output),
        }
    }
}

#[derive(Clone, Copy, Serialize)]
pub(crate) struct IncompleteDetails {
    pub reason: &'static str,
}

/// A Response object. `echo` carries the request's settings (see [`ResponsesRequest::echo`]).
#[derive(Serialize)]
pub(crate) struct ResponseObject<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created_at: u64,
    /// `in_progress`, `completed` or `incomplete`.
    pub status: &'static str,
    pub completed_at: Option<u64>,
    pub error: Option<()>,
    pub incomplete_details: Option<IncompleteDetails>,
    pub model: &'a str,
    pub output: &'a [OutputItem<'a>],
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub echo: &'a Map<String, Value>,
}

#[derive(Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutputItem<'a> {
    Message {
        id: &'a str,
        status: &'static str,
        role: &'static str,
        content: Vec<OutputText<'a>>,
    },
    FunctionCall {
        id: &'a str,
        status: &'static str,
        arguments: &'a str,
        call_id: &'a str,
        name: &'a str,
    },
}

/// An `output_text` content part (no annotations or log probabilities here).
#[derive(Clone, Copy, Serialize)]
pub(crate) struct OutputText<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub annotations: [(); 0],
    pub logprobs: [(); 0],
    pub text: &'a str,
}

impl<'a> OutputText<'a> {
    pub fn new(text: &'a str) -> OutputText<'a> {
        OutputText {
            kind: "output_text",
            annotations: [],
            logprobs: [],
            text,
        }
    }
}

/// A streaming event; its SSE `event:` name is its `type`.
#[derive(Serialize)]
#[serde(tag = "type")]
pub(crate) enum StreamEvent<'a> {
    #[serde(rename = "response.created")]
    Created { response: ResponseObject<'a> },
    #[serde(rename = "response.in_progress")]
    InProgress { response: ResponseObject<'a> },
    #[serde(rename = "response.output_item.added")]
    OutputItemAdded {
        output_index: usize,
        item: OutputItem<'a>,
    },
    #[serde(rename = "response.content_part.added")]
    ContentPartAdded {
        item_id: &'a str,
        output_index: usize,
        content_index: usize,
        part: OutputText<'a>,
    },
    #[serde(rename = "response.output_text.delta")]
    OutputTextDelta {
        item_id: &'a str,
        output_index: usize,
        content_index: usize,
        delta: &'a str,
        logprobs: [(); 0],
    },
    #[serde(rename = "response.output_text.done")]
    OutputTextDone {
        item_id: &'a str,
        output_index: usize,
        content_index: usize,
        text: &'a str,
        logprobs: [(); 0],
    },
    #[serde(rename = "response.content_part.done")]
    ContentPartDone {
        item_id: &'a str,
        output_index: usize,
        content_index: usize,
        part: OutputText<'a>,
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    FunctionCallArgumentsDelta {
        item_id: &'a str,
        output_index: usize,
        delta: &'a str,
    },
    #[serde(rename = "response.function_call_arguments.done")]
    FunctionCallArgumentsDone {
        item_id: &'a str,
        name: &'a str,
        output_index: usize,
        arguments: &'a str,
    },
    #[serde(rename = "response.output_item.done")]
    OutputItemDone {
        output_index: usize,
        item: OutputItem<'a>,
    },
    #[serde(rename = "response.completed")]
    Completed { response: ResponseObject<'a> },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: ResponseObject<'a> },
}

impl StreamEvent<'_> {
    /// The SSE `event:` name, which is also the payload's `type`.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::Created { .. } => "response.created",
            StreamEvent::InProgress { .. } => "response.in_progress",
            StreamEvent::OutputItemAdded { .. } => "response.output_item.added",
            StreamEvent::ContentPartAdded { .. } => "response.content_part.added",
            StreamEvent::OutputTextDelta { .. } => "response.output_text.delta",
            StreamEvent::OutputTextDone { .. } => "response.output_text.done",
            StreamEvent::ContentPartDone { .. } => "response.content_part.done",
            StreamEvent::FunctionCallArgumentsDelta { .. } => {
                "response.function_call_arguments.delta"
            }
            StreamEvent::FunctionCallArgumentsDone { .. } => {
                "response.function_call_arguments.done"
            }
            StreamEvent::OutputItemDone { .. } => "response.output_item.done",
            StreamEvent::Completed { .. } => "response.completed",
            StreamEvent::Incomplete { .. } => "response.incomplete",
        }
    }
}

/// An event with its place in the stream, as the API numbers them (from 0).
#[derive(Serialize)]
pub(crate) struct Sequenced<'e, 'a> {
    #[serde(flatten)]
    pub event: &'e StreamEvent<'a>,
    pub sequence_number: usize,
}

/// The `error` event an `error-after` fault puts into a stream in place of event N.
#[derive(Serialize)]
pub(crate) struct StreamError<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub code: &'a str,
    pub message: &'a str,
    pub param: Option<&'a str>,
    pub sequence_number: usize,
}

/// OpenAI's error body: `{"error":{"message","type","param","code"}}`.
#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize)]
pub(crate) struct ErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub param: Option<&'a str>,
    pub code: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(body: Value) -> Invalid {
        match parse_request(&body) {
            Ok(_) => panic!("expected {body} to be rejected"),
            Err(e) => e,
        }
    }

    fn base() -> Value {
        json!({"model": "gpt-test", "input": "hi"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut body = base();
        body[key] = value;
        body
    }

    fn input(items: Value) -> Value {
        with("input", items)
    }

    /// The message, param and code of a refusal.
    fn parts(e: Invalid) -> (String, Option<String>, Option<&'static str>) {
        (e.message, e.param, e.code)
    }

    #[test]
    fn a_minimal_request_is_valid_and_echoes_the_defaults() {
        let body = base();
        let req = parse_request(&body).unwrap();
        assert_eq!(req.model, "gpt-test");
        assert!(!req.stream && req.store);
        assert_eq!(req.tool_choice, ToolChoice::Auto);
        assert_eq!(req.last_user_text, "hi");
        assert_eq!(req.prompt_tokens, 1);
        assert_eq!(req.max_output_tokens, u64::MAX);
        assert_eq!(req.echo["store"], true);
        assert_eq!(req.echo["tool_choice"], "auto");
        assert_eq!(req.echo["tools"], json!([]));
        assert_eq!(req.echo["service_tier"], "default");
        assert_eq!(req.echo["text"]["format"]["type"], "text");
    }

    #[test]
    fn errors_name_the_param_like_the_api() {
        let mut no_model = base();
        no_model.as_object_mut().unwrap().remove("model");
        assert_eq!(
            parts(error(no_model)),
            (
                "Missing required parameter: 'model'.".to_owned(),
                Some("model".to_owned()),
                Some("missing_required_parameter")
            )
        );
        assert_eq!(
            parts(error(with("messages", json!([])))),
            (
                "Unknown parameter: 'messages'.".to_owned(),
                Some("messages".to_owned()),
                Some("unknown_parameter")
            )
        );
        let e = error(input(json!({"role": "user"})));
        assert_eq!(
            e.message,
            "Invalid type for 'input': expected one of a string or array of input items, but \
             got an object instead."
        );
        assert_eq!(e.code, Some("invalid_type"));
        let e = error(input(json!([{"role": "bot", "content": "x"}])));
        assert_eq!(
            e.message,
            "Invalid value: 'bot'. Supported values are: 'assistant', 'system', 'developer', and \
             'user'."
        );
        assert_eq!(e.param.as_deref(), Some("input[0].role"));
        let e = error(input(json!([{"role": "user"}])));
        assert_eq!(e.param.as_deref(), Some("input[0].content"));
        assert_eq!(e.code, Some("missing_required_parameter"));
        let e = error(input(json!([{"role": "assistant", "content": [
            {"type": "input_text", "text": "x"}]}])));
        assert_eq!(
            e.message,
            "Invalid value: 'input_text'. Supported values are: 'output_text' and 'refusal'."
        );
        assert_eq!(e.param.as_deref(), Some("input[0].content[0].type"));
        let e = error(input(
            json!([{"role": "user", "content": [{"type": "text", "text": "x"}]}]),
        ));
        assert_eq!(e.param.as_deref(), Some("input[0].content[0].type"));
        let e = error(input(
            json!([{"type": "function_call", "call_id": "c", "name": "f"}]),
        ));
        assert_eq!(e.param.as_deref(), Some("input[0].arguments"));
        let e = error(input(json!([{"type": "web_search_call"}])));
        assert_eq!(e.param.as_deref(), Some("input[0].type"));
        assert_eq!(e.code, Some("invalid_value"));
        let e = error(with("max_output_tokens", json!(5)));
        assert_eq!(
            e.message,
            "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, \
             but got 5 instead."
        );
        assert_eq!(e.code, Some("integer_below_min_value"));
        let e = error(with("temperature", json!(3)));
        assert_eq!(e.code, Some("decimal_above_max_value"));
        let chat_tool = json!([{"type": "function", "function": {"name": "f"}}]);
        let e = error(with("tools", chat_tool));
        assert_eq!(e.message, "Missing required parameter: 'tools[0].name'.");
        let e = error(with("tool_choice", json!("required")));
        assert_eq!(e.param.as_deref(), Some("tool_choice"));
        let tools = json!([{"type": "function", "name": "f"}]);
        let mut body = with("tools", tools);
        body["tool_choice"] = json!({"type": "function", "name": "g"});
        assert_eq!(
            error(body).message,
            "Tool choice 'function' not found in 'tools' parameter."
        );
        let e = error(with("stream", json!("yes")));
        assert_eq!(
            e.message,
            "Invalid type for 'stream': expected a boolean, but got a string instead."
        );
    }

    #[test]
    fn every_documented_item_kind_is_accepted_and_counted() {
        let body = json!({
            "model": "m", "stream": true, "store": false, "max_output_tokens": 64,
            "instructions": "be brief",
            "tools": [{"type": "function", "name": "get_weather", "description": "Get the weather",
                       "parameters": {"type": "object", "properties": {}}, "strict": true},
                      {"type": "web_search"}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "previous_response_id": "resp_1",
            "input": [
                {"role": "developer", "content": "answer in french"},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "look"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AA==", "detail": "low"},
                    {"type": "input_file", "file_id": "file-1"}]},
                {"type": "message", "role": "assistant", "content": [
                    {"type": "output_text", "text": "calling", "annotations": []}]},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                 "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny and warm"},
                {"type": "function_call_output", "call_id": "call_0", "output": "cloudy"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
            ],
        });
        let req = parse_request(&body).unwrap();
        assert!(req.stream && !req.store);
        assert_eq!(req.max_output_tokens, 64);
        assert_eq!(req.tool_choice, ToolChoice::Tool("get_weather"));
        assert_eq!(req.tools.len(), 1, "only function tools can be called");
        assert_eq!(req.previous_response_id, Some("resp_1"));
        assert_eq!(
            req.last_user_text, "",
            "a tool output follows the last user message"
        );
        assert_eq!(req.calls, ["call_1"]);
        assert_eq!(req.answered, HashSet::from(["call_1", "call_0"]));
        assert_eq!(req.unmatched_outputs, ["call_0"]);
        // get_weather(1) + Get the weather(3) + be brief(2) + answer in french(3) + look(1) +
        // calling(1) + sunny and warm(3) + cloudy(1).
        assert_eq!((req.prompt_tokens, req.instruction_tokens), (15, 2));
        assert_eq!(req.echo["store"], false);
        assert_eq!(req.echo["previous_response_id"], "resp_1");
    }

    #[test]
    fn the_last_user_text_joins_input_text_parts() {
        let body = input(json!([
            {"role": "user", "content": "first"},
            {"role": "user", "content": [{"type": "input_text", "text": "a"},
                                         {"type": "input_text", "text": "Reply with exactly: b"}]},
        ]));
        let req = parse_request(&body).unwrap();
        assert_eq!(req.last_user_text, "a\nReply with exactly: b");
    }

    #[test]
    fn supported_values_are_listed_as_the_api_lists_them() {
        assert_eq!(quoted_list(&["a"]), "'a'");
        assert_eq!(quoted_list(&["a", "b"]), "'a' and 'b'");
        assert_eq!(quoted_list(&["a", "b", "c"]), "'a', 'b', and 'c'");
    }
}
