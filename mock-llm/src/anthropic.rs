//! Anthropic Messages API wire types and request validation.
//!
//! Validation follows Anthropic's documented request schema and reports problems the way the API
//! does: one `invalid_request_error` whose message starts with the offending field's dotted path
//! (`max_tokens: Field required`, `messages.0.role: Input should be 'user' or 'assistant'`).
//! The request is walked as a `serde_json::Value` so every message can name its field exactly.

use std::collections::HashSet;
use std::fmt::Display;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::openai::count_words;

/// The `anthropic-version` values Anthropic documents.
pub(crate) const VERSIONS: [&str; 2] = ["2023-06-01", "2023-01-01"];

/// Whether the API takes `version`: a documented one, or a later date (the version newer SDKs
/// send, e.g. the `anthropic` Python SDK 2.x); anything else is refused as Anthropic refuses it.
pub(crate) fn is_accepted_version(version: &str) -> bool {
    let bytes = version.as_bytes();
    let dated = bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                *b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    VERSIONS.contains(&version) || (dated && version > VERSIONS[0])
}

const TOP_LEVEL: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
];

/// The body `/v1/messages/count_tokens` takes: the prompt-shaping fields of a Messages request,
/// without the sampling ones (`max_tokens`, `stream`, `stop_sequences`, ...).
const COUNT_TOKENS_TOP_LEVEL: &[&str] = &[
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "mcp_servers",
    "context_management",
];

const MESSAGE_BLOCKS: &str =
    "'text', 'image', 'document', 'tool_use', 'tool_result', 'thinking', 'redacted_thinking'";
const TOOL_RESULT_BLOCKS: &str = "'text', 'image', 'document', 'search_result'";
const IMAGE_MEDIA_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// What the handler needs from a valid request.
pub(crate) struct MessagesRequest<'a> {
    pub model: &'a str,
    pub max_tokens: u64,
    pub stream: bool,
    pub stop_sequences: Vec<&'a str>,
    pub tools: Vec<Tool<'a>>,
    pub tool_choice: ToolChoice<'a>,
    /// The text of the last user message (string content or its text blocks, joined by `\n`).
    pub last_user_text: String,
    /// Words in tool names and descriptions, system text and message text (incl. tool results).
    pub prompt_tokens: u32,
    /// The prompt tokens up to and including the last block carrying `cache_control`, in the
    /// order tools, system, messages (Anthropic caches the prefix up to a breakpoint).
    pub cached_tokens: u32,
}

pub(crate) struct Tool<'a> {
    pub name: &'a str,
    /// `None` for Anthropic-defined tools (`type` other than `custom`), which have no schema.
    pub input_schema: Option<&'a Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ToolChoice<'a> {
    Auto,
    Any,
    Tool(&'a str),
    None,
}

type Check<T> = Result<T, String>;

#[derive(Default)]
struct Tokens {
    total: u32,
    cached: u32,
}

impl Tokens {
    fn add(&mut self, text: &str) {
        self.total = self.total.saturating_add(count_words(text));
    }

    fn breakpoint(&mut self) {
        self.cached = self.total;
    }
}

fn join(path: &str, key: impl Display) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A present, non-null field.
fn optional<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn required<'v>(obj: &'v Map<String, Value>, key: &str, path: &str) -> Check<&'v Value> {
    obj.get(key)
        .ok_or_else(|| format!("{}: Field required", join(path, key)))
}

fn want_obj<'v>(v: &'v Value, path: &str) -> Check<&'v Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| format!("{path}: Input should be a valid dictionary"))
}

fn want_arr<'v>(v: &'v Value, path: &str) -> Check<&'v [Value]> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| format!("{path}: Input should be a valid list"))
}

fn want_str<'v>(v: &'v Value, path: &str) -> Check<&'v str> {
    v.as_str()
        .ok_or_else(|| format!("{path}: Input should be a valid string"))
}

fn want_bool(v: &Value, path: &str) -> Check<bool> {
    v.as_bool()
        .ok_or_else(|| format!("{path}: Input should be a valid boolean"))
}

fn want_number(v: &Value, path: &str) -> Check<f64> {
    v.as_f64()
        .ok_or_else(|| format!("{path}: Input should be a valid number"))
}

/// An integer; like the API, `2.0` counts as one.
fn want_int(v: &Value, path: &str) -> Check<i64> {
    if let Some(n) = v.as_i64() {
        return Ok(n);
    }
    if v.is_u64() {
        return Ok(i64::MAX);
    }
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        Some(_) => Err(format!(
            "{path}: Input should be a valid integer, got a number with a fractional part"
        )),
        None => Err(format!("{path}: Input should be a valid integer")),
    }
}

fn in_range(n: f64, min: f64, max: f64, path: &str) -> Check<()> {
    if n < min {
        return Err(format!(
            "{path}: Input should be greater than or equal to {min}"
        ));
    }
    if n > max {
        return Err(format!(
            "{path}: Input should be less than or equal to {max}"
        ));
    }
    Ok(())
}

fn no_extras(obj: &Map<String, Value>, allowed: &[&str], path: &str) -> Check<()> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{}: Extra inputs are not permitted", join(path, k))),
        None => Ok(()),
    }
}

/// The block's `type` tag, checked against the expected tags.
fn tag<'v>(obj: &'v Map<String, Value>, path: &str, expected: &str) -> Check<&'v str> {
    let ty = required(obj, "type", path)?;
    let ty = want_str(ty, &join(path, "type"))?;
    if expected.split(", ").any(|t| t.trim_matches('\'') == ty) {
        Ok(ty)
    } else {
        Err(format!(
            "{path}: Input tag '{ty}' found using 'type' does not match any of the expected \
             tags: {expected}"
        ))
    }
}

/// `cache_control: {type: "ephemeral", ttl?: "5m" | "1h"}`; `true` when present.
fn cache_control(obj: &Map<String, Value>, path: &str) -> Check<bool> {
    let Some(cc) = optional(obj, "cache_control") else {
        return Ok(false);
    };
    let path = join(path, "cache_control");
    let cc = want_obj(cc, &path)?;
    tag(cc, &path, "'ephemeral'")?;
    if let Some(ttl) = optional(cc, "ttl") {
        let ttl_path = join(&path, "ttl");
        if !matches!(want_str(ttl, &ttl_path)?, "5m" | "1h") {
            return Err(format!("{ttl_path}: Input should be '5m' or '1h'"));
        }
    }
    Ok(true)
}

fn string_field<'v>(obj: &'v Map<String, Value>, key: &str, path: &str) -> Check<&'v str> {
    want_str(required(obj, key, path)?, &join(path, key))
}

fn image_source(obj: &Map<String, Value>, path: &str) -> Check<()> {
    let source = required(obj, "source", path)?;
    let path = join(path, "source");
    let source = want_obj(source, &path)?;
    match tag(source, &path, "'base64', 'url'")? {
        "base64" => {
            let media = string_field(source, "media_type", &path)?;
            if !IMAGE_MEDIA_TYPES.contains(&media) {
                return Err(format!(
                    "{}: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
                    join(&path, "media_type")
                ));
            }
            string_field(source, "data", &path)?;
        }
        _ => {
            string_field(source, "url", &path)?;
        }
    }
    Ok(())
}

/// Text a text block contributes; empty ones are rejected as the API does.
fn text_block<'v>(obj: &'v Map<String, Value>, path: &str) -> Check<&'v str> {
    let text = string_field(obj, "text", path)?;
    if text.is_empty() {
        return Err("messages: text content blocks must be non-empty".to_owned());
    }
    Ok(text)
}

/// A block inside a message's `content` (or, with `nested`, inside a `tool_result`).
fn content_block(b: &Value, path: &str, nested: bool, tokens: &mut Tokens) -> Check<()> {
    let obj = want_obj(b, path)?;
    let expected = if nested {
        TOOL_RESULT_BLOCKS
    } else {
        MESSAGE_BLOCKS
    };
    match tag(obj, path, expected)? {
        "text" => tokens.add(text_block(obj, path)?),
        "image" => image_source(obj, path)?,
        "document" => {
            want_obj(required(obj, "source", path)?, &join(path, "source"))?;
        }
        "search_result" => {
            string_field(obj, "source", path)?;
            string_field(obj, "title", path)?;
            want_arr(required(obj, "content", path)?, &join(path, "content"))?;
        }
        "tool_use" => {
            string_field(obj, "id", path)?;
            string_field(obj, "name", path)?;
            want_obj(required(obj, "input", path)?, &join(path, "input"))?;
        }
        "tool_result" => {
            string_field(obj, "tool_use_id", path)?;
            if let Some(content) = optional(obj, "content") {
                let cpath = join(path, "content");
                match content {
                    Value::String(s) => tokens.add(s),
                    Value::Array(blocks) => {
                        for (i, block) in blocks.iter().enumerate() {
                            content_block(block, &join(&cpath, i), true, tokens)?;
                        }
                    }
                    _ => {
                        return Err(format!(
                            "{cpath}: Input should be a valid string or a valid list"
                        ));
                    }
                }
            }
            if let Some(is_error) = optional(obj, "is_error") {
                want_bool(is_error, &join(path, "is_error"))?;
            }
        }
        "thinking" => {
            string_field(obj, "thinking", path)?;
            string_field(obj, "signature", path)?;
        }
        _ => {
            string_field(obj, "data", path)?;
        }
    }
    if cache_control(obj, path)? {
        tokens.breakpoint();
    }
    Ok(())
}

fn parse_tools<'v>(v: &'v Value, tokens: &mut Tokens) -> Check<Vec<Tool<'v>>> {
    let list = want_arr(v, "tools")?;
    let mut tools = Vec::with_capacity(list.len());
    let mut names = HashSet::new();
    for (i, tool) in list.iter().enumerate() {
        let path = join("tools", i);
        let obj = want_obj(tool, &path)?;
        let name = string_field(obj, "name", &path)?;
        let custom = match optional(obj, "type") {
            None => true,
            Some(ty) => want_str(ty, &join(&path, "type"))? == "custom",
        };
        let input_schema = if custom {
            let valid_name = (1..=128).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid_name {
                return Err(format!(
                    "{}: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'",
                    join(&path, "name")
                ));
            }
            tokens.add(name);
            if let Some(d) = optional(obj, "description") {
                tokens.add(want_str(d, &join(&path, "description"))?);
            }
            let schema_path = join(&path, "input_schema");
            let schema = required(obj, "input_schema", &path)?;
            let schema_obj = want_obj(schema, &schema_path)?;
            let ty = required(schema_obj, "type", &schema_path)?;
            if ty.as_str() != Some("object") {
                return Err(format!(
                    "{}: Input should be 'object'",
                    join(&schema_path, "type")
                ));
            }
            Some(schema)
        } else {
            None
        };
        if cache_control(obj, &path)? {
            tokens.breakpoint();
        }
        if !names.insert(name) {
            return Err("tools: Tool names must be unique.".to_owned());
        }
        tools.push(Tool { name, input_schema });
    }
    Ok(tools)
}

fn parse_system(v: &Value, tokens: &mut Tokens) -> Check<()> {
    match v {
        Value::String(s) => tokens.add(s),
        Value::Array(blocks) => {
            for (i, block) in blocks.iter().enumerate() {
                let path = join("system", i);
                let obj = want_obj(block, &path)?;
                let ty = want_str(required(obj, "type", &path)?, &join(&path, "type"))?;
                if ty != "text" {
                    return Err(format!("{}: Input should be 'text'", join(&path, "type")));
                }
                tokens.add(text_block(obj, &path)?);
                if cache_control(obj, &path)? {
                    tokens.breakpoint();
                }
            }
        }
        _ => return Err("system: Input should be a valid string or a valid list".to_owned()),
    }
    Ok(())
}

fn parse_tool_choice<'v>(v: &'v Value, tools: &[Tool<'_>]) -> Check<ToolChoice<'v>> {
    let obj = want_obj(v, "tool_choice")?;
    let choice = match tag(obj, "tool_choice", "'auto', 'any', 'tool', 'none'")? {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Any,
        "none" => ToolChoice::None,
        _ => {
            let name = string_field(obj, "name", "tool_choice")?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(format!(
                    "tool_choice.name: Tool '{name}' not found in the provided tools"
                ));
            }
            ToolChoice::Tool(name)
        }
    };
    if let Some(d) = optional(obj, "disable_parallel_tool_use") {
        want_bool(d, "tool_choice.disable_parallel_tool_use")?;
    }
    if matches!(choice, ToolChoice::Any | ToolChoice::Tool(_)) && tools.is_empty() {
        return Err(
            "tool_choice: tool_choice may only be specified while providing tools".to_owned(),
        );
    }
    Ok(choice)
}

/// Validates a Messages API request body; the error is the message for a 400.
pub(crate) fn parse_request(body: &Value) -> Check<MessagesRequest<'_>> {
    parse(body, TOP_LEVEL)
}

/// Validates a `/v1/messages/count_tokens` body (a Messages request without `max_tokens` and the
/// sampling fields) and counts its input tokens as [`parse_request`] does (`prompt_tokens`, the
/// cached prefix included: counting ignores caching).
pub(crate) fn count_tokens(body: &Value) -> Check<u32> {
    parse(body, COUNT_TOKENS_TOP_LEVEL).map(|req| req.prompt_tokens)
}

/// Validates a body with the top-level fields `allowed`; `max_tokens` is required when allowed
/// (`u64::MAX` otherwise).
fn parse<'v>(body: &'v Value, allowed: &[&str]) -> Check<MessagesRequest<'v>> {
    let obj = body
        .as_object()
        .ok_or_else(|| "request body: Input should be a valid dictionary".to_owned())?;
    no_extras(obj, allowed, "")?;

    let model = want_str(required(obj, "model", "")?, "model")?;
    if model.is_empty() {
        return Err("model: String should have at least 1 character".to_owned());
    }
    let max_tokens = if allowed.contains(&"max_tokens") {
        let max_tokens = want_int(required(obj, "max_tokens", "")?, "max_tokens")?;
        u64::try_from(max_tokens)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| "max_tokens: Input should be greater than or equal to 1".to_owned())?
    } else {
        u64::MAX
    };
    let messages = want_arr(required(obj, "messages", "")?, "messages")?;
    if messages.is_empty() {
        return Err("messages: at least one message is required".to_owned());
    }

    // Prompt order: tools, system, messages (it matters for the cached prefix).
    let mut tokens = Tokens::default();
    let tools = match optional(obj, "tools") {
        Some(v) => parse_tools(v, &mut tokens)?,
        None => Vec::new(),
    };
    if let Some(system) = optional(obj, "system") {
        parse_system(system, &mut tokens)?;
    }
    let mut last_user = None;
    for (i, m) in messages.iter().enumerate() {
        let path = join("messages", i);
        let msg = want_obj(m, &path)?;
        no_extras(msg, &["role", "content"], &path)?;
        let role = want_str(required(msg, "role", &path)?, &join(&path, "role"))?;
        if role != "user" && role != "assistant" {
            return Err(format!(
                "{}: Input should be 'user' or 'assistant'",
                join(&path, "role")
            ));
        }
        let content_path = join(&path, "content");
        let content = required(msg, "content", &path)?;
        let empty = match content {
            Value::String(s) => {
                tokens.add(s);
                s.is_empty()
            }
            Value::Array(blocks) => {
                for (j, block) in blocks.iter().enumerate() {
                    content_block(block, &join(&content_path, j), false, &mut tokens)?;
                }
                blocks.is_empty()
            }
            _ => {
                return Err(format!(
                    "{content_path}: Input should be a valid string or a valid list"
                ));
            }
        };
        let final_assistant = i + 1 == messages.len() && role == "assistant";
        if empty && !final_assistant {
            return Err(format!(
                "{path}: all messages must have non-empty content except for the optional \
                 final assistant message"
            ));
        }
        if role == "user" {
            last_user = Some(content);
        }
    }

    let stop_sequences = match optional(obj, "stop_sequences") {
        Some(v) => {
            let list = want_arr(v, "stop_sequences")?;
            let mut seqs = Vec::with_capacity(list.len());
            for (i, s) in list.iter().enumerate() {
                seqs.push(want_str(s, &join("stop_sequences", i))?);
            }
            seqs
        }
        None => Vec::new(),
    };
    if let Some(v) = optional(obj, "temperature") {
        in_range(want_number(v, "temperature")?, 0.0, 1.0, "temperature")?;
    }
    if let Some(v) = optional(obj, "top_p") {
        in_range(want_number(v, "top_p")?, 0.0, 1.0, "top_p")?;
    }
    if let Some(v) = optional(obj, "top_k")
        && want_int(v, "top_k")? < 0
    {
        return Err("top_k: Input should be greater than or equal to 0".to_owned());
    }
    let tool_choice = match optional(obj, "tool_choice") {
        Some(v) => parse_tool_choice(v, &tools)?,
        None => ToolChoice::Auto,
    };
    let stream = match optional(obj, "stream") {
        Some(v) => want_bool(v, "stream")?,
        None => false,
    };
    if let Some(v) = optional(obj, "metadata") {
        let meta = want_obj(v, "metadata")?;
        no_extras(meta, &["user_id"], "metadata")?;
        if let Some(user) = optional(meta, "user_id") {
            want_str(user, "metadata.user_id")?;
        }
    }
    for key in ["thinking", "container", "context_management"] {
        if let Some(v) = optional(obj, key) {
            want_obj(v, key)?;
        }
    }

    Ok(MessagesRequest {
        model,
        max_tokens,
        stream,
        stop_sequences,
        tools,
        tool_choice,
        last_user_text: last_user.map(user_text).unwrap_or_default(),
        prompt_tokens: tokens.total,
        cached_tokens: tokens.cached,
    })
}

fn user_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => {
            let texts: Vec<&str> = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect();
            texts.join("\n")
        }
        _ => String::new(),
    }
}

/// A deterministic tool input that fits a JSON schema: properties in sorted order (so the JSON
/// text is the same whatever order `serde_json` keeps maps in), `const`/first `enum`/`default`
/// when given, else `"mock <name>"` for strings, 1 for numbers, `true`, one-item arrays. Type
/// names match in any case, so Gemini's `OBJECT`/`STRING` schemas work too.
pub(crate) fn example_input(schema: Option<&Value>) -> Value {
    match schema.map(|s| example_value(s, "value", 0)) {
        Some(v @ Value::Object(_)) => v,
        _ => Value::Object(Map::new()),
    }
}

fn example_value(schema: &Value, name: &str, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    if let Some(v) = schema.get("const") {
        return v.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(v) = schema.get("default") {
        return v.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| !t.eq_ignore_ascii_case("null"))
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    // Gemini's OpenAPI-style schemas spell types in upper case (`OBJECT`).
    match ty.to_ascii_lowercase().as_str() {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let mut keys: Vec<&String> = props.keys().collect();
                keys.sort();
                for key in keys {
                    if let Some(prop) = props.get(key) {
                        out.insert(key.clone(), example_value(prop, key, depth + 1));
                    }
                }
            }
            Value::Object(out)
        }
        "array" => match schema.get("items") {
            Some(items) => Value::Array(vec![example_value(items, name, depth + 1)]),
            None => Value::Array(Vec::new()),
        },
        "integer" | "number" => Value::from(1),
        "boolean" => Value::Bool(true),
        "null" => Value::Null,
        _ => Value::String(format!("mock {name}")),
    }
}

/// The error `type` Anthropic uses for a status, for injected faults.
pub(crate) fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize)]
pub(crate) struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub message: &'a str,
}

/// The `event: error` an `error-after` fault puts into a stream.
pub(crate) const STREAM_ERROR: &[u8] = b"event: error\ndata: {\"type\":\"error\",\"error\":\
{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";

#[derive(Clone, Copy, Serialize)]
pub(crate) struct Usage {
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cache_creation_input_tokens: u32,
    pub cache_read_input_tokens: u32,
}

#[derive(Serialize)]
pub(crate) struct Message<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: &'a str,
    pub content: Vec<Block<'a>>,
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<&'a str>,
    pub usage: Usage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Block<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum StreamEvent<'a> {
    MessageStart {
        message: Message<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: Block<'a>,
    },
    Ping,
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: MessageDelta<'a>,
        usage: DeltaUsage,
    },
    MessageStop,
}

impl StreamEvent<'_> {
    /// The SSE `event:` name, which is also the payload's `type`.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::Ping => "ping",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum BlockDelta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
pub(crate) struct MessageDelta<'a> {
    pub stop_reason: &'static str,
    pub stop_sequence: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct DeltaUsage {
    pub output_tokens: u32,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn documented_and_later_dated_versions_are_accepted() {
        for ok in ["2023-06-01", "2023-01-01", "2026-10-21"] {
            assert!(is_accepted_version(ok), "{ok}");
        }
        for bad in [
            "",
            "latest",
            "2022-12-31",
            "2023-6-1",
            "2023-06-01x",
            "20230-6-01",
        ] {
            assert!(!is_accepted_version(bad), "{bad}");
        }
    }

    fn error(body: Value) -> String {
        match parse_request(&body) {
            Ok(_) => panic!("expected {body} to be rejected"),
            Err(e) => e,
        }
    }

    fn base() -> Value {
        json!({"model": "claude-test", "max_tokens": 64,
               "messages": [{"role": "user", "content": "hi"}]})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut body = base();
        body[key] = value;
        body
    }

    #[test]
    fn a_minimal_request_is_valid() {
        let body = base();
        let req = parse_request(&body).unwrap();
        assert_eq!(req.model, "claude-test");
        assert_eq!(req.max_tokens, 64);
        assert!(!req.stream);
        assert_eq!(req.tool_choice, ToolChoice::Auto);
        assert_eq!(req.last_user_text, "hi");
        assert_eq!((req.prompt_tokens, req.cached_tokens), (1, 0));
    }

    #[test]
    fn errors_name_the_field_like_the_api() {
        let mut body = base();
        body.as_object_mut().unwrap().remove("max_tokens");
        assert_eq!(error(body), "max_tokens: Field required");
        assert_eq!(
            error(with("max_tokens", json!(0))),
            "max_tokens: Input should be greater than or equal to 1"
        );
        assert_eq!(
            error(with("max_tokens", json!("10"))),
            "max_tokens: Input should be a valid integer"
        );
        assert_eq!(
            error(with("model", json!(5))),
            "model: Input should be a valid string"
        );
        assert_eq!(
            error(with("messages", json!([]))),
            "messages: at least one message is required"
        );
        assert_eq!(
            error(with(
                "messages",
                json!([{"role": "system", "content": "x"}])
            )),
            "messages.0.role: Input should be 'user' or 'assistant'"
        );
        assert_eq!(
            error(with(
                "messages",
                json!([{"role": "user", "content": [{"type": "video"}]}])
            )),
            format!(
                "messages.0.content.0: Input tag 'video' found using 'type' does not match any \
                 of the expected tags: {MESSAGE_BLOCKS}"
            )
        );
        assert_eq!(
            error(with(
                "messages",
                json!([{"role": "user", "content": [{"type": "image",
                    "source": {"type": "base64", "media_type": "image/bmp", "data": ""}}]}])
            )),
            "messages.0.content.0.source.media_type: Input should be 'image/jpeg', 'image/png', \
             'image/gif' or 'image/webp'"
        );
        assert_eq!(
            error(with("temperature", json!(1.5))),
            "temperature: Input should be less than or equal to 1"
        );
        assert_eq!(
            error(with("top_k", json!(-1))),
            "top_k: Input should be greater than or equal to 0"
        );
        assert_eq!(
            error(with("frequency_penalty", json!(0))),
            "frequency_penalty: Extra inputs are not permitted"
        );
        assert_eq!(
            error(with("tools", json!([{"name": "t"}]))),
            "tools.0.input_schema: Field required"
        );
        assert_eq!(
            error(with("tool_choice", json!({"type": "any"}))),
            "tool_choice: tool_choice may only be specified while providing tools"
        );
        assert_eq!(
            error(with("system", json!([{"type": "image"}]))),
            "system.0.type: Input should be 'text'"
        );
        assert_eq!(
            error(with("metadata", json!({"user_id": 7}))),
            "metadata.user_id: Input should be a valid string"
        );
    }

    #[test]
    fn every_documented_block_kind_is_accepted() {
        let body = json!({
            "model": "m", "max_tokens": 10, "stream": true,
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": "get_weather", "description": "Get the weather",
                       "input_schema": {"type": "object", "properties": {}}}],
            "tool_choice": {"type": "tool", "name": "get_weather"},
            "stop_sequences": ["\n\nHuman:"], "temperature": 0.5, "top_p": 0.9, "top_k": 5,
            "metadata": {"user_id": "u1"},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny and warm",
                     "cache_control": {"type": "ephemeral", "ttl": "5m"}},
                    {"type": "text", "text": "thanks a lot"}]},
            ],
        });
        let req = parse_request(&body).unwrap();
        assert!(req.stream);
        assert_eq!(req.tool_choice, ToolChoice::Tool("get_weather"));
        assert_eq!(req.stop_sequences, ["\n\nHuman:"]);
        assert_eq!(req.last_user_text, "thanks a lot");
        // get_weather(1) + Get the weather(3) + be brief(2) + look(1) + sunny and warm(3), cached,
        // then thanks a lot(3).
        assert_eq!((req.prompt_tokens, req.cached_tokens), (13, 10));
    }

    #[test]
    fn count_tokens_takes_the_prompt_fields_only_and_counts_the_whole_prompt() {
        let body = json!({
            "model": "claude-test",
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": "get_weather", "description": "Get the weather",
                       "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "hello there"}],
        });
        // get_weather(1) + Get the weather(3) + be brief(2) + hello there(2), cached or not.
        assert_eq!(count_tokens(&body), Ok(8));
        let mut with_max = body.clone();
        with_max["max_tokens"] = json!(10);
        assert_eq!(
            count_tokens(&with_max),
            Err("max_tokens: Extra inputs are not permitted".to_owned())
        );
        let mut no_messages = body;
        no_messages.as_object_mut().unwrap().remove("messages");
        assert_eq!(
            count_tokens(&no_messages),
            Err("messages: Field required".to_owned())
        );
    }

    #[test]
    fn example_input_follows_the_schema_deterministically() {
        let schema = json!({"type": "object", "properties": {
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "location": {"type": "string"},
            "days": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "opts": {"type": "object", "properties": {"deep": {"type": ["boolean", "null"]}}},
        }});
        let input = example_input(Some(&schema));
        assert_eq!(
            input.to_string(),
            r#"{"days":1,"location":"mock location","opts":{"deep":true},"tags":["mock tags"],"unit":"celsius"}"#
        );
        assert_eq!(example_input(None), json!({}));
    }

    #[test]
    fn anthropic_error_types_by_status() {
        assert_eq!(error_type(400), "invalid_request_error");
        assert_eq!(error_type(401), "authentication_error");
        assert_eq!(error_type(429), "rate_limit_error");
        assert_eq!(error_type(500), "api_error");
        assert_eq!(error_type(529), "overloaded_error");
    }
}
