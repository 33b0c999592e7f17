//! Gemini API (`generativelanguage.googleapis.com`) routing, credentials, wire types and request
//! validation.
//!
//! Validation follows the documented `GenerateContentRequest` and reports problems the way the
//! API does, always naming the field by its proto path (snake_case, `[i]` indices):
//!
//! * JSON-level problems as Google's JSON parser words them: `Invalid JSON payload received.
//!   Unknown name "foo" at 'generation_config': Cannot find field.` and `Invalid value at
//!   'generation_config.temperature' (TYPE_FLOAT), "hot"`.
//! * Semantic ones as its validator does: `* GenerateContentRequest.contents: contents is not
//!   specified\n`.
//!
//! Field names are accepted in lowerCamelCase or snake_case, as proto3 JSON allows. The request is
//! walked as a `serde_json::Value` so every message can name its field exactly.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::Credential;
use crate::http::{Method, ProviderHead};
use crate::openai::count_words;

const TYPE_PREFIX: &str = "type.googleapis.com/google.ai.generativelanguage.v1beta.";
const STRUCT: &str = "type.googleapis.com/google.protobuf.Struct";

/// Tokens a named `cachedContent` holds: the API's minimum cache size.
pub(crate) const CACHED_CONTENT_TOKENS: u32 = 1024;

const TOP_LEVEL: &[&str] = &[
    "model",
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
];
pub(crate) const CONTENT_FIELDS: &[&str] = &["parts", "role"];
pub(crate) const PART_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
    "thought",
    "thoughtSignature",
    "videoMetadata",
    "mediaResolution",
    "partMetadata",
];
/// The members of `Part`'s `data` oneof, in proto order.
pub(crate) const DATA_FIELDS: &[&str] = &[
    "text",
    "inlineData",
    "functionCall",
    "functionResponse",
    "fileData",
    "executableCode",
    "codeExecutionResult",
];
const TOOL_FIELDS: &[&str] = &[
    "functionDeclarations",
    "googleSearchRetrieval",
    "codeExecution",
    "googleSearch",
    "urlContext",
    "computerUse",
    "fileSearch",
    "googleMaps",
];
const DECLARATION_FIELDS: &[&str] = &[
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
    "behavior",
];
const SCHEMA_FIELDS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];
const SCHEMA_TYPES: &[&str] = &[
    "TYPE_UNSPECIFIED",
    "STRING",
    "NUMBER",
    "INTEGER",
    "BOOLEAN",
    "ARRAY",
    "OBJECT",
    "NULL",
];
const GENERATION_FIELDS: &[&str] = &[
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
];
const MIME_TYPES: &[&str] = &[
    "text/plain",
    "application/json",
    "application/xml",
    "application/yaml",
    "text/x.enum",
];
const MODALITIES: &[&str] = &["MODALITY_UNSPECIFIED", "TEXT", "IMAGE", "AUDIO"];
const THINKING_LEVELS: &[&str] = &[
    "THINKING_LEVEL_UNSPECIFIED",
    "MINIMAL",
    "LOW",
    "MEDIUM",
    "HIGH",
];
const MODES: &[&str] = &["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"];
/// The categories Gemini models accept (the PaLM-era ones are rejected).
const HARM_CATEGORIES: &[&str] = &[
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
];
const THRESHOLDS: &[&str] = &[
    "HARM_BLOCK_THRESHOLD_UNSPECIFIED",
    "BLOCK_LOW_AND_ABOVE",
    "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH",
    "BLOCK_NONE",
    "OFF",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GeminiOp {
    Generate,
    Stream,
    /// `batchEmbedContents`: embeddings ([`crate::embed_content`]).
    BatchEmbed,
    /// Any other method or path under `/v1beta/`.
    Unknown,
}

/// `Some` for every path under `/v1beta/`, and for `POST /v1/models/{model}:generateContent`,
/// `:streamGenerateContent` and `:batchEmbedContents`; other `/v1/` paths are OpenAI's.
pub(crate) fn classify(method: Method, path: &str) -> Option<GeminiOp> {
    let (beta, rest) = match path.strip_prefix("/v1beta/") {
        Some(rest) => (true, rest),
        None => (false, path.strip_prefix("/v1/")?),
    };
    let Some((model, name)) = rest.strip_prefix("models/").and_then(|r| r.split_once(':')) else {
        return beta.then_some(GeminiOp::Unknown);
    };
    let op = match (method, name) {
        _ if model.is_empty() || model.contains('/') => GeminiOp::Unknown,
        (Method::Post, "generateContent") => GeminiOp::Generate,
        (Method::Post, "streamGenerateContent") => GeminiOp::Stream,
        (Method::Post, "batchEmbedContents") => GeminiOp::BatchEmbed,
        _ => GeminiOp::Unknown,
    };
    // Under `/v1/` only the exact methods are Gemini's: OpenAI model ids hold colons too
    // (`/v1/models/ft:gpt-4o:org::id`).
    (beta || op != GeminiOp::Unknown).then_some(op)
}

/// The `{model}` of `/v1beta/models/{model}:{method}`.
pub(crate) fn model_of(path: &str) -> &str {
    path.split_once("/models/")
        .and_then(|(_, rest)| rest.split_once(':'))
        .map_or("", |(model, _)| model)
}

/// Why no credential was acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No key and no `Authorization`: 403 PERMISSION_DENIED.
    Missing,
    /// A key header or `?key=` that is empty: 400 INVALID_ARGUMENT (`API_KEY_INVALID`).
    EmptyKey,
    /// `Authorization` that is not `Bearer TOKEN`: 401 UNAUTHENTICATED.
    BadAuthorization,
}

/// `x-goog-api-key` wins over `?key=`, which wins over `Authorization: Bearer` (OAuth).
pub(crate) fn credential(head: &ProviderHead) -> Result<Credential, AuthFailure> {
    if let Some(key) = &head.goog_api_key {
        return match key.is_empty() {
            true => Err(AuthFailure::EmptyKey),
            false => Ok(Credential::GoogApiKey),
        };
    }
    if let Some(key) = head.query("key") {
        return match key.is_empty() {
            true => Err(AuthFailure::EmptyKey),
            false => Ok(Credential::QueryKey),
        };
    }
    if head.authorization.is_some() {
        return match head.bearer() {
            Some(_) => Ok(Credential::Bearer),
            None => Err(AuthFailure::BadAuthorization),
        };
    }
    Err(AuthFailure::Missing)
}

/// The `google.rpc.Code` name Google sends with an HTTP status.
pub(crate) fn status_name(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        500 => "INTERNAL",
        501 => "NOT_IMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if (400..500).contains(&s) => "FAILED_PRECONDITION",
        _ => "UNKNOWN",
    }
}

/// What the handler needs from a valid request.
#[derive(Debug)]
pub(crate) struct GenerateRequest<'a> {
    /// The text parts of the last `user` turn, joined by `\n`.
    pub last_user_text: String,
    /// Words in the system instruction, function declarations' names and descriptions, and
    /// contents (text, function names, string values in call args and responses), plus
    /// [`CACHED_CONTENT_TOKENS`] when a `cachedContent` is named.
    pub prompt_tokens: u32,
    pub cached_tokens: u32,
    pub functions: Vec<Function<'a>>,
    pub mode: Mode,
    pub allowed_functions: Vec<&'a str>,
    pub max_output_tokens: Option<u64>,
    pub stop_sequences: Vec<&'a str>,
    pub candidate_count: u32,
    pub thinking: Option<Thinking>,
    /// `HARM_CATEGORY_DANGEROUS_CONTENT` set to `BLOCK_NONE` or `OFF`.
    pub dangerous_content_allowed: bool,
}

#[derive(Debug)]
pub(crate) struct Function<'a> {
    pub name: &'a str,
    /// `parameters` (OpenAPI subset) or `parametersJsonSchema`.
    pub schema: Option<&'a Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Auto,
    Any,
    None,
    Validated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Thinking {
    /// `None` for dynamic thinking (`-1` or no budget).
    pub budget: Option<u64>,
    pub include_thoughts: bool,
}

pub(crate) type Check<T> = Result<T, String>;

fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A present, non-null field, under its lowerCamelCase or snake_case name.
pub(crate) fn field<'v>(obj: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    obj.get(name)
        .or_else(|| obj.get(&snake(name)))
        .filter(|v| !v.is_null())
}

/// The proto path of a field: `path.snake_name`.
pub(crate) fn at(path: &str, name: &str) -> String {
    let name = snake(name);
    if path.is_empty() {
        name
    } else {
        format!("{path}.{name}")
    }
}

pub(crate) fn idx(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A validator message: `* GenerateContentRequest.PATH: MESSAGE\n`.
fn invalid(path: &str, msg: &str) -> String {
    format!("* GenerateContentRequest.{path}: {msg}\n")
}

pub(crate) fn bad_value(path: &str, ty: &str, v: &Value) -> String {
    format!("Invalid value at '{path}' ({ty}), {v}")
}

pub(crate) fn known(obj: &Map<String, Value>, allowed: &[&str], path: &str) -> Check<()> {
    let unknown = obj
        .keys()
        .find(|k| !allowed.iter().any(|a| a == k || snake(a) == **k));
    match unknown {
        None => Ok(()),
        Some(key) => {
            let at = match path {
                "" => String::new(),
                p => format!(" at '{p}'"),
            };
            Err(format!(
                "Invalid JSON payload received. Unknown name \"{key}\"{at}: Cannot find field."
            ))
        }
    }
}

/// A message-typed field (`ty` names the proto message, e.g. `Content`).
pub(crate) fn want_msg<'v>(v: &'v Value, path: &str, ty: &str) -> Check<&'v Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| bad_value(path, &format!("{TYPE_PREFIX}{ty}"), v))
}

fn want_struct<'v>(v: &'v Value, path: &str) -> Check<&'v Map<String, Value>> {
    v.as_object().ok_or_else(|| bad_value(path, STRUCT, v))
}

/// A repeated field; a non-list is reported against the element type, as Google does.
pub(crate) fn want_list<'v>(v: &'v Value, path: &str, element: &str) -> Check<&'v [Value]> {
    v.as_array().map(Vec::as_slice).ok_or_else(|| {
        let ty = match element {
            e if e.starts_with("TYPE_") => e.to_owned(),
            e => format!("{TYPE_PREFIX}{e}"),
        };
        bad_value(path, &ty, v)
    })
}

pub(crate) fn want_str<'v>(v: &'v Value, path: &str) -> Check<&'v str> {
    v.as_str().ok_or_else(|| bad_value(path, "TYPE_STRING", v))
}

pub(crate) fn want_bool(v: &Value, path: &str) -> Check<bool> {
    v.as_bool().ok_or_else(|| bad_value(path, "TYPE_BOOL", v))
}

/// An `int32`: a JSON integer (or integral float) or a string holding one, as proto3 JSON allows.
pub(crate) fn want_int(v: &Value, path: &str) -> Check<i64> {
    let n = match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.filter(|n| i32::try_from(*n).is_ok())
        .ok_or_else(|| bad_value(path, "TYPE_INT32", v))
}

fn want_float(v: &Value, path: &str) -> Check<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.ok_or_else(|| bad_value(path, "TYPE_FLOAT", v))
}

/// An enum given by name; `ty` names the proto enum.
pub(crate) fn want_enum<'v>(v: &'v Value, path: &str, ty: &str, values: &[&str]) -> Check<&'v str> {
    match v.as_str() {
        Some(s) if values.contains(&s) => Ok(s),
        _ => Err(bad_value(path, &format!("{TYPE_PREFIX}{ty}"), v)),
    }
}

fn in_range(n: f64, min: f64, max: f64, path: &str, name: &str) -> Check<()> {
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(invalid(
            path,
            &format!("{name} must be in the range [{min:.1}, {max:.1}]."),
        ))
    }
}

fn is_base64(data: &str) -> bool {
    let body = data.trim_end_matches('=');
    data.len() - body.len() <= 2
        && body.len() % 4 != 1
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/-_".contains(&b))
}

fn add_words(tokens: &mut u32, text: &str) {
    *tokens = tokens.saturating_add(count_words(text));
}

/// Counts the words of every string in a `Struct` (function args and responses).
fn add_struct_words(tokens: &mut u32, v: &Value) {
    match v {
        Value::String(s) => add_words(tokens, s),
        Value::Array(items) => items.iter().for_each(|i| add_struct_words(tokens, i)),
        Value::Object(map) => map.values().for_each(|i| add_struct_words(tokens, i)),
        _ => {}
    }
}

fn required<'v>(obj: &'v Map<String, Value>, name: &str, path: &str) -> Check<&'v Value> {
    field(obj, name).ok_or_else(|| {
        let name = snake(name);
        invalid(&at(path, &name), &format!("{name} is not specified"))
    })
}

/// A required string that must not be empty (proto3 cannot tell empty from absent).
fn required_str<'v>(obj: &'v Map<String, Value>, name: &str, path: &str) -> Check<&'v str> {
    let s = want_str(required(obj, name, path)?, &at(path, name))?;
    if s.is_empty() {
        let name = snake(name);
        return Err(invalid(
            &at(path, &name),
            &format!("{name} is not specified"),
        ));
    }
    Ok(s)
}

/// One turn of `contents` (or the system instruction), as far as the rules need it.
struct Turn<'v> {
    role: &'v str,
    texts: Vec<&'v str>,
    calls: usize,
    responses: usize,
}

fn part<'v>(v: &'v Value, path: &str, tokens: &mut u32, turn: &mut Turn<'v>) -> Check<()> {
    let obj = want_msg(v, path, "Part")?;
    known(obj, PART_FIELDS, path)?;
    let mut set = DATA_FIELDS.iter().filter(|name| field(obj, name).is_some());
    let data = set.next().copied();
    if let Some(second) = set.next() {
        return Err(format!(
            "Invalid JSON payload received. Oneof field 'data' is already set. Cannot set \
             '{second}' at '{path}'"
        ));
    }
    let empty = || {
        invalid(
            &at(path, "data"),
            "required oneof field 'data' must have one initialized field",
        )
    };
    let Some(data) = data else {
        return Err(empty());
    };
    let data_path = at(path, data);
    let value = field(obj, data).ok_or_else(empty)?;
    match data {
        "text" => {
            let text = want_str(value, &data_path)?;
            if text.is_empty() {
                return Err(empty());
            }
            add_words(tokens, text);
            turn.texts.push(text);
        }
        "inlineData" => {
            let blob = want_msg(value, &data_path, "Blob")?;
            known(blob, &["mimeType", "data", "displayName"], &data_path)?;
            required_str(blob, "mimeType", &data_path)?;
            let bytes = required_str(blob, "data", &data_path)?;
            if !is_base64(bytes) {
                return Err(format!(
                    "Invalid value at '{}' (TYPE_BYTES), Base64 decoding failed for {}",
                    at(&data_path, "data"),
                    Value::from(bytes)
                ));
            }
        }
        "fileData" => {
            let file = want_msg(value, &data_path, "FileData")?;
            known(file, &["mimeType", "fileUri", "displayName"], &data_path)?;
            if let Some(mime) = field(file, "mimeType") {
                want_str(mime, &at(&data_path, "mimeType"))?;
            }
            required_str(file, "fileUri", &data_path)?;
        }
        "functionCall" | "functionResponse" => {
            let call = data == "functionCall";
            let ty = if call {
                "FunctionCall"
            } else {
                "FunctionResponse"
            };
            let obj = want_msg(value, &data_path, ty)?;
            let fields: &[&str] = if call {
                &["id", "name", "args"]
            } else {
                &[
                    "id",
                    "name",
                    "response",
                    "willContinue",
                    "scheduling",
                    "parts",
                ]
            };
            known(obj, fields, &data_path)?;
            let name = match field(obj, "name") {
                Some(n) => want_str(n, &at(&data_path, "name"))?,
                None => "",
            };
            if name.is_empty() {
                return Err(invalid(&at(&data_path, "name"), "Name cannot be empty."));
            }
            add_words(tokens, name);
            let payload = if call { "args" } else { "response" };
            match field(obj, payload) {
                Some(p) => {
                    want_struct(p, &at(&data_path, payload))?;
                    add_struct_words(tokens, p);
                }
                None if !call => {
                    return Err(invalid(
                        &at(&data_path, payload),
                        "response is not specified",
                    ));
                }
                None => {}
            }
            if call {
                turn.calls += 1;
            } else {
                turn.responses += 1;
            }
        }
        _ => {
            let ty = if data == "executableCode" {
                "ExecutableCode"
            } else {
                "CodeExecutionResult"
            };
            want_msg(value, &data_path, ty)?;
        }
    }
    if let Some(t) = field(obj, "thought") {
        want_bool(t, &at(path, "thought"))?;
    }
    if let Some(t) = field(obj, "thoughtSignature") {
        want_str(t, &at(path, "thoughtSignature"))?;
    }
    Ok(())
}

fn content<'v>(v: &'v Value, path: &str, tokens: &mut u32, system: bool) -> Check<Turn<'v>> {
    let obj = want_msg(v, path, "Content")?;
    known(obj, CONTENT_FIELDS, path)?;
    let role = match field(obj, "role") {
        Some(r) => want_str(r, &at(path, "role"))?,
        None => "",
    };
    // A single-turn request may leave the role out; it is the user's.
    let role = if role.is_empty() { "user" } else { role };
    if !system && !matches!(role, "user" | "model") {
        return Err(invalid(
            &at(path, "role"),
            "Please use a valid role: user, model.",
        ));
    }
    let parts_path = at(path, "parts");
    let parts = match field(obj, "parts") {
        Some(p) => want_list(p, &parts_path, "Part")?,
        None => &[],
    };
    if parts.is_empty() {
        return Err(invalid(&parts_path, "contents.parts must not be empty."));
    }
    let mut turn = Turn {
        role,
        texts: Vec::new(),
        calls: 0,
        responses: 0,
    };
    for (i, p) in parts.iter().enumerate() {
        part(p, &idx(&parts_path, i), tokens, &mut turn)?;
    }
    Ok(turn)
}

/// Checks a `Schema` (OpenAPI subset): known fields, `type` (any case), non-empty `properties`
/// for objects, recursively. Map entries are named `properties[i].value` with `i` the entry's
/// position among the sorted property names.
fn schema(v: &Value, path: &str, depth: usize) -> Check<()> {
    let obj = want_msg(v, path, "Schema")?;
    known(obj, SCHEMA_FIELDS, path)?;
    if depth > 16 {
        return Ok(());
    }
    let ty = match field(obj, "type") {
        Some(t) => {
            let upper = t.as_str().map(str::to_ascii_uppercase);
            match upper {
                Some(u) if SCHEMA_TYPES.contains(&u.as_str()) => u,
                _ => {
                    return Err(bad_value(
                        &at(path, "type"),
                        &format!("{TYPE_PREFIX}Type"),
                        t,
                    ));
                }
            }
        }
        None => String::new(),
    };
    let props_path = at(path, "properties");
    let props = match field(obj, "properties") {
        Some(p) => Some(want_msg(p, &props_path, "Schema.PropertiesEntry")?),
        None => None,
    };
    if ty == "OBJECT" && props.is_none_or(Map::is_empty) {
        return Err(invalid(&props_path, "should be non-empty for OBJECT type"));
    }
    if let Some(props) = props {
        let mut keys: Vec<&String> = props.keys().collect();
        keys.sort();
        for (i, key) in keys.into_iter().enumerate() {
            if let Some(prop) = props.get(key) {
                schema(prop, &format!("{props_path}[{i}].value"), depth + 1)?;
            }
        }
    }
    if let Some(items) = field(obj, "items") {
        schema(items, &at(path, "items"), depth + 1)?;
    }
    if let Some(any) = field(obj, "anyOf") {
        let any_path = at(path, "anyOf");
        for (i, s) in want_list(any, &any_path, "Schema")?.iter().enumerate() {
            schema(s, &idx(&any_path, i), depth + 1)?;
        }
    }
    for list in ["required", "enum", "propertyOrdering"] {
        if let Some(l) = field(obj, list) {
            let list_path = at(path, list);
            for (i, s) in want_list(l, &list_path, "TYPE_STRING")?.iter().enumerate() {
                want_str(s, &idx(&list_path, i))?;
            }
        }
    }
    Ok(())
}

fn valid_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && name.len() <= 64 && chars.all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

fn parse_tools<'v>(v: &'v Value, tokens: &mut u32) -> Check<Vec<Function<'v>>> {
    let list = want_list(v, "tools", "Tool")?;
    let mut functions = Vec::new();
    let mut names = HashSet::new();
    for (i, tool) in list.iter().enumerate() {
        let path = idx("tools", i);
        let obj = want_msg(tool, &path, "Tool")?;
        known(obj, TOOL_FIELDS, &path)?;
        for (name, value) in obj {
            if !value.is_null() && name != "functionDeclarations" && name != "function_declarations"
            {
                want_msg(value, &at(&path, name), "Tool")?;
            }
        }
        let Some(decls) = field(obj, "functionDeclarations") else {
            continue;
        };
        let decls_path = at(&path, "functionDeclarations");
        for (j, decl) in want_list(decls, &decls_path, "FunctionDeclaration")?
            .iter()
            .enumerate()
        {
            let path = idx(&decls_path, j);
            let obj = want_msg(decl, &path, "FunctionDeclaration")?;
            known(obj, DECLARATION_FIELDS, &path)?;
            let name = match field(obj, "name") {
                Some(n) => want_str(n, &at(&path, "name"))?,
                None => "",
            };
            if !valid_function_name(name) {
                return Err(invalid(
                    &at(&path, "name"),
                    "Invalid function name. Must start with a letter or an underscore. Must be \
                     a-z, A-Z, 0-9, or contain underscores, dots, colons and dashes, with a \
                     maximum length of 64.",
                ));
            }
            if !names.insert(name) {
                return Err(invalid(
                    &at(&path, "name"),
                    &format!("Duplicate function declaration found: {name}"),
                ));
            }
            add_words(tokens, name);
            if let Some(d) = field(obj, "description") {
                add_words(tokens, want_str(d, &at(&path, "description"))?);
            }
            let parameters = field(obj, "parameters");
            if let Some(p) = parameters {
                schema(p, &at(&path, "parameters"), 0)?;
            }
            if let Some(r) = field(obj, "response") {
                schema(r, &at(&path, "response"), 0)?;
            }
            if let Some(b) = field(obj, "behavior") {
                want_enum(
                    b,
                    &at(&path, "behavior"),
                    "FunctionDeclaration.Behavior",
                    &["UNSPECIFIED", "BLOCKING", "NON_BLOCKING"],
                )?;
            }
            let schema = parameters.or_else(|| field(obj, "parametersJsonSchema"));
            functions.push(Function { name, schema });
        }
    }
    Ok(functions)
}

fn parse_tool_config<'v>(v: &'v Value, functions: &[Function<'_>]) -> Check<(Mode, Vec<&'v str>)> {
    let path = "tool_config";
    let obj = want_msg(v, path, "ToolConfig")?;
    known(obj, &["functionCallingConfig", "retrievalConfig"], path)?;
    if let Some(r) = field(obj, "retrievalConfig") {
        want_msg(r, &at(path, "retrievalConfig"), "RetrievalConfig")?;
    }
    let Some(fcc) = field(obj, "functionCallingConfig") else {
        return Ok((Mode::Auto, Vec::new()));
    };
    let path = at(path, "functionCallingConfig");
    let fcc = want_msg(fcc, &path, "FunctionCallingConfig")?;
    known(fcc, &["mode", "allowedFunctionNames"], &path)?;
    let mode_path = at(&path, "mode");
    let mode = match field(fcc, "mode") {
        Some(m) => match want_enum(m, &mode_path, "FunctionCallingConfig.Mode", MODES)? {
            "ANY" => Mode::Any,
            "NONE" => Mode::None,
            "VALIDATED" => Mode::Validated,
            _ => Mode::Auto,
        },
        None => Mode::Auto,
    };
    if matches!(mode, Mode::Any | Mode::Validated) && functions.is_empty() {
        return Err(invalid(
            &mode_path,
            "function calling mode ANY or VALIDATED requires function_declarations in tools.",
        ));
    }
    let mut allowed = Vec::new();
    if let Some(names) = field(fcc, "allowedFunctionNames") {
        let names_path = at(&path, "allowedFunctionNames");
        let list = want_list(names, &names_path, "TYPE_STRING")?;
        if !list.is_empty() && !matches!(mode, Mode::Any | Mode::Validated) {
            return Err(invalid(
                &names_path,
                "allowed_function_names should only be set when the mode is ANY or VALIDATED.",
            ));
        }
        for (i, n) in list.iter().enumerate() {
            let name = want_str(n, &idx(&names_path, i))?;
            if !functions.iter().any(|f| f.name == name) {
                return Err(invalid(
                    &idx(&names_path, i),
                    &format!("function '{name}' is not declared in tools.function_declarations."),
                ));
            }
            allowed.push(name);
        }
    }
    Ok((mode, allowed))
}

/// Returns whether dangerous content is let through (`BLOCK_NONE` or `OFF`).
fn parse_safety(v: &Value) -> Check<bool> {
    let list = want_list(v, "safety_settings", "SafetySetting")?;
    let mut allowed = false;
    for (i, s) in list.iter().enumerate() {
        let path = idx("safety_settings", i);
        let obj = want_msg(s, &path, "SafetySetting")?;
        known(obj, &["category", "threshold"], &path)?;
        let category = want_enum(
            required(obj, "category", &path)?,
            &at(&path, "category"),
            "HarmCategory",
            HARM_CATEGORIES,
        )?;
        let threshold = want_enum(
            required(obj, "threshold", &path)?,
            &at(&path, "threshold"),
            "SafetySetting.HarmBlockThreshold",
            THRESHOLDS,
        )?;
        if category == "HARM_CATEGORY_DANGEROUS_CONTENT" {
            allowed = matches!(threshold, "BLOCK_NONE" | "OFF");
        }
    }
    Ok(allowed)
}

struct Generation<'v> {
    max_output_tokens: Option<u64>,
    stop_sequences: Vec<&'v str>,
    candidate_count: u32,
    thinking: Option<Thinking>,
}

fn parse_generation(v: &Value) -> Check<Generation<'_>> {
    let path = "generation_config";
    let obj = want_msg(v, path, "GenerationConfig")?;
    known(obj, GENERATION_FIELDS, path)?;
    let mut out = Generation {
        max_output_tokens: None,
        stop_sequences: Vec::new(),
        candidate_count: 1,
        thinking: None,
    };
    if let Some(s) = field(obj, "stopSequences") {
        let p = at(path, "stopSequences");
        let list = want_list(s, &p, "TYPE_STRING")?;
        if list.len() > 5 {
            return Err(invalid(&p, "the maximum number of stop sequences is 5."));
        }
        for (i, s) in list.iter().enumerate() {
            out.stop_sequences.push(want_str(s, &idx(&p, i))?);
        }
    }
    if let Some(m) = field(obj, "responseMimeType") {
        let p = at(path, "responseMimeType");
        if !MIME_TYPES.contains(&want_str(m, &p)?) {
            return Err(invalid(
                &p,
                "allowed mimetypes are `text/plain`, `application/json`, `application/xml`, \
                 `application/yaml` and `text/x.enum`.",
            ));
        }
    }
    if let Some(s) = field(obj, "responseSchema") {
        schema(s, &at(path, "responseSchema"), 0)?;
    }
    if let Some(m) = field(obj, "responseModalities") {
        let p = at(path, "responseModalities");
        for (i, m) in want_list(m, &p, "GenerationConfig.Modality")?
            .iter()
            .enumerate()
        {
            want_enum(m, &idx(&p, i), "GenerationConfig.Modality", MODALITIES)?;
        }
    }
    if let Some(c) = field(obj, "candidateCount") {
        let p = at(path, "candidateCount");
        let n = want_int(c, &p)?;
        // 0 is proto3's default: one candidate.
        if !(0..=8).contains(&n) {
            return Err(invalid(&p, "candidate_count must be in the range [1, 8]."));
        }
        out.candidate_count = u32::try_from(n.max(1)).unwrap_or(1);
    }
    if let Some(m) = field(obj, "maxOutputTokens") {
        let p = at(path, "maxOutputTokens");
        let n = want_int(m, &p)?;
        if n < 0 {
            return Err(invalid(&p, "max_output_tokens must be positive."));
        }
        // 0 is proto3's default: the model's limit.
        out.max_output_tokens = u64::try_from(n).ok().filter(|&n| n > 0);
    }
    if let Some(t) = field(obj, "temperature") {
        let p = at(path, "temperature");
        in_range(want_float(t, &p)?, 0.0, 2.0, &p, "temperature")?;
    }
    if let Some(t) = field(obj, "topP") {
        let p = at(path, "topP");
        in_range(want_float(t, &p)?, 0.0, 1.0, &p, "top_p")?;
    }
    if let Some(k) = field(obj, "topK") {
        let p = at(path, "topK");
        if want_int(k, &p)? < 0 {
            return Err(invalid(&p, "top_k must be a non-negative integer."));
        }
    }
    for name in ["seed", "logprobs"] {
        if let Some(v) = field(obj, name) {
            want_int(v, &at(path, name))?;
        }
    }
    for name in ["presencePenalty", "frequencyPenalty"] {
        if let Some(v) = field(obj, name) {
            want_float(v, &at(path, name))?;
        }
    }
    for name in ["responseLogprobs", "enableEnhancedCivicAnswers"] {
        if let Some(v) = field(obj, name) {
            want_bool(v, &at(path, name))?;
        }
    }
    for (name, ty) in [
        ("speechConfig", "SpeechConfig"),
        ("imageConfig", "ImageConfig"),
    ] {
        if let Some(v) = field(obj, name) {
            want_msg(v, &at(path, name), ty)?;
        }
    }
    if let Some(t) = field(obj, "thinkingConfig") {
        let p = at(path, "thinkingConfig");
        let t = want_msg(t, &p, "ThinkingConfig")?;
        known(
            t,
            &["includeThoughts", "thinkingBudget", "thinkingLevel"],
            &p,
        )?;
        let include_thoughts = match field(t, "includeThoughts") {
            Some(b) => want_bool(b, &at(&p, "includeThoughts"))?,
            None => false,
        };
        let budget = match field(t, "thinkingBudget") {
            Some(b) => {
                let bp = at(&p, "thinkingBudget");
                match want_int(b, &bp)? {
                    -1 => None,
                    n => Some(u64::try_from(n).map_err(|_| {
                        invalid(&bp, "thinking_budget must be -1 (dynamic) or non-negative.")
                    })?),
                }
            }
            None => None,
        };
        if let Some(level) = field(t, "thinkingLevel") {
            let lp = at(&p, "thinkingLevel");
            let upper = level.as_str().map(str::to_ascii_uppercase);
            if !upper.is_some_and(|u| THINKING_LEVELS.contains(&u.as_str())) {
                let ty = format!("{TYPE_PREFIX}ThinkingConfig.ThinkingLevel");
                return Err(bad_value(&lp, &ty, level));
            }
        }
        out.thinking = (budget != Some(0)).then_some(Thinking {
            budget,
            include_thoughts,
        });
    }
    Ok(out)
}

/// Validates a `GenerateContentRequest` body; the error is the message for a 400.
pub(crate) fn parse_request(body: &Value) -> Check<GenerateRequest<'_>> {
    let Some(obj) = body.as_object() else {
        return Err(format!(
            "Invalid JSON payload received. Expected an object for GenerateContentRequest, got \
             {body}."
        ));
    };
    known(obj, TOP_LEVEL, "")?;
    if let Some(m) = field(obj, "model") {
        want_str(m, "model")?;
    }
    let mut tokens = 0u32;
    let mut cached_tokens = 0;
    if let Some(c) = field(obj, "cachedContent") {
        let name = want_str(c, "cached_content")?;
        let valid = name
            .strip_prefix("cachedContents/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/'));
        if !valid {
            return Err(invalid(
                "cached_content",
                "cached_content must be of the form cachedContents/{id}.",
            ));
        }
        let conflicting = ["systemInstruction", "tools", "toolConfig"];
        if conflicting.iter().any(|f| field(obj, f).is_some()) {
            return Err(
                "CachedContent can not be used with GenerateContent request setting \
                        system_instruction, tools or tool_config.\n\nProposed fix: move those \
                        values to CachedContent from GenerateContent request."
                    .to_owned(),
            );
        }
        cached_tokens = CACHED_CONTENT_TOKENS;
        tokens = CACHED_CONTENT_TOKENS;
    }

    let functions = match field(obj, "tools") {
        Some(t) => parse_tools(t, &mut tokens)?,
        None => Vec::new(),
    };
    if let Some(s) = field(obj, "systemInstruction") {
        content(s, "system_instruction", &mut tokens, true)?;
    }

    let contents = match field(obj, "contents") {
        Some(c) => want_list(c, "contents", "Content")?,
        None => &[],
    };
    if contents.is_empty() {
        return Err(invalid("contents", "contents is not specified"));
    }
    let mut turns = Vec::with_capacity(contents.len());
    for (i, c) in contents.iter().enumerate() {
        turns.push(content(c, &idx("contents", i), &mut tokens, false)?);
    }
    for (i, turn) in turns.iter().enumerate() {
        let prev = i.checked_sub(1).and_then(|p| turns.get(p));
        let path = idx("contents", i);
        if turn.calls > 0 && turn.role == "model" && prev.is_none_or(|p| p.role != "user") {
            return Err(invalid(
                &path,
                "Please ensure that function call turn comes immediately after a user turn or \
                 after a function response turn.",
            ));
        }
        if turn.responses > 0 {
            let calls = prev.map_or(0, |p| p.calls);
            if calls == 0 {
                return Err(invalid(
                    &path,
                    "Please ensure that function response turn comes immediately after a \
                     function call turn.",
                ));
            }
            if calls != turn.responses {
                return Err(invalid(
                    &path,
                    "Please ensure that the number of function response parts is equal to the \
                     number of function call parts of the function call turn.",
                ));
            }
        }
    }

    let (mode, allowed_functions) = match field(obj, "toolConfig") {
        Some(t) => parse_tool_config(t, &functions)?,
        None => (Mode::Auto, Vec::new()),
    };
    let dangerous_content_allowed = match field(obj, "safetySettings") {
        Some(s) => parse_safety(s)?,
        None => false,
    };
    let generation = match field(obj, "generationConfig") {
        Some(g) => parse_generation(g)?,
        None => Generation {
            max_output_tokens: None,
            stop_sequences: Vec::new(),
            candidate_count: 1,
            thinking: None,
        },
    };

    let last_user_text = turns
        .iter()
        .rev()
        .find(|t| t.role == "user")
        .map(|t| t.texts.join("\n"))
        .unwrap_or_default();
    Ok(GenerateRequest {
        last_user_text,
        prompt_tokens: tokens,
        cached_tokens,
        functions,
        mode,
        allowed_functions,
        max_output_tokens: generation.max_output_tokens,
        stop_sequences: generation.stop_sequences,
        candidate_count: generation.candidate_count,
        thinking: generation.thinking,
        dangerous_content_allowed,
    })
}

// Response types. Field order follows the API's; zero counts are left out, as proto3 JSON does.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Response<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub candidates: &'a [Candidate<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_feedback: Option<PromptFeedback>,
    pub usage_metadata: UsageMetadata,
    pub model_version: &'a str,
    pub response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Content<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<&'static str>,
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safety_ratings: Option<&'static [SafetyRating]>,
}

#[derive(Serialize)]
pub(crate) struct Content<'a> {
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub parts: &'a [Part<'a>],
    pub role: &'static str,
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Part<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function_call: Option<FunctionCall<'a>>,
}

#[derive(Serialize)]
pub(crate) struct FunctionCall<'a> {
    pub name: &'a str,
    pub args: &'a Value,
}

#[derive(Serialize)]
pub(crate) struct SafetyRating {
    pub category: &'static str,
    pub probability: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
}

const fn rating(category: &'static str, probability: &'static str) -> SafetyRating {
    SafetyRating {
        category,
        probability,
        blocked: false,
    }
}

/// The ratings of a response blocked for dangerous content.
pub(crate) const BLOCKED_RATINGS: &[SafetyRating] = &[
    rating("HARM_CATEGORY_SEXUALLY_EXPLICIT", "NEGLIGIBLE"),
    rating("HARM_CATEGORY_HATE_SPEECH", "NEGLIGIBLE"),
    rating("HARM_CATEGORY_HARASSMENT", "NEGLIGIBLE"),
    SafetyRating {
        category: "HARM_CATEGORY_DANGEROUS_CONTENT",
        probability: "HIGH",
        blocked: true,
    },
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    pub block_reason: &'static str,
    pub safety_ratings: &'static [SafetyRating],
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageMetadata {
    pub prompt_token_count: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub candidates_token_count: u32,
    pub total_token_count: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub cached_content_token_count: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub thoughts_token_count: u32,
    pub prompt_tokens_details: [ModalityTokenCount; 1],
}

impl UsageMetadata {
    pub fn new(prompt: u32, cached: u32, candidates: u32, thoughts: u32) -> UsageMetadata {
        UsageMetadata {
            prompt_token_count: prompt,
            candidates_token_count: candidates,
            total_token_count: prompt.saturating_add(candidates).saturating_add(thoughts),
            cached_content_token_count: cached,
            thoughts_token_count: thoughts,
            prompt_tokens_details: [ModalityTokenCount {
                modality: "TEXT",
                token_count: prompt,
            }],
        }
    }
}

#[derive(Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ModalityTokenCount {
    pub modality: &'static str,
    pub token_count: u32,
}

#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize)]
pub(crate) struct ErrorDetail<'a> {
    pub code: u16,
    pub message: &'a str,
    pub status: &'a str,
}

/// The error an `error-after` fault puts into a stream, without framing.
pub(crate) const STREAM_ERROR: &[u8] = b"{\"error\":{\"code\":503,\"message\":\"The model is \
overloaded. Please try again later.\",\"status\":\"UNAVAILABLE\"}}";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn error(body: Value) -> String {
        match parse_request(&body) {
            Ok(_) => panic!("expected {body} to be rejected"),
            Err(e) => e,
        }
    }

    fn base() -> Value {
        json!({"contents": [{"role": "user", "parts": [{"text": "hi there"}]}]})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut body = base();
        body[key] = value;
        body
    }

    #[test]
    fn classify_and_model_of() {
        let c = classify;
        let p = Method::Post;
        assert_eq!(
            c(p, "/v1beta/models/gemini-2.5-flash:generateContent"),
            Some(GeminiOp::Generate)
        );
        assert_eq!(
            c(p, "/v1/models/gemini-2.5-flash:streamGenerateContent"),
            Some(GeminiOp::Stream)
        );
        assert_eq!(
            c(p, "/v1beta/models/text-embedding-004:batchEmbedContents"),
            Some(GeminiOp::BatchEmbed)
        );
        assert_eq!(
            c(p, "/v1beta/models/m:countTokens"),
            Some(GeminiOp::Unknown)
        );
        assert_eq!(
            c(p, "/v1beta/models/:generateContent"),
            Some(GeminiOp::Unknown)
        );
        assert_eq!(c(p, "/v1beta/files"), Some(GeminiOp::Unknown));
        assert_eq!(
            c(Method::Get, "/v1beta/models/m:generateContent"),
            Some(GeminiOp::Unknown)
        );
        assert_eq!(c(Method::Get, "/v1/models"), None);
        assert_eq!(c(Method::Get, "/v1/models/ft:gpt-4o:org::x"), None);
        assert_eq!(c(p, "/v1/models/m:countTokens"), None);
        assert_eq!(c(p, "/v1/chat/completions"), None);
        assert_eq!(
            model_of("/v1beta/models/gemini-2.5-flash:generateContent"),
            "gemini-2.5-flash"
        );
    }

    #[test]
    fn credentials_in_googles_order() {
        let head = |target: &str, key: Option<&str>, auth: Option<&str>| ProviderHead {
            target: target.to_owned(),
            api_key: None,
            authorization: auth.map(str::to_owned),
            goog_api_key: key.map(str::to_owned),
            ..ProviderHead::default()
        };
        let t = "/v1beta/models/m:generateContent";
        let q = "/v1beta/models/m:generateContent?alt=sse&key=abc";
        assert_eq!(
            credential(&head(t, Some("k"), None)),
            Ok(Credential::GoogApiKey)
        );
        assert_eq!(credential(&head(q, None, None)), Ok(Credential::QueryKey));
        assert_eq!(
            credential(&head(t, None, Some("Bearer ya29.x"))),
            Ok(Credential::Bearer)
        );
        assert_eq!(credential(&head(t, None, None)), Err(AuthFailure::Missing));
        assert_eq!(
            credential(&head(t, Some(""), Some("Bearer x"))),
            Err(AuthFailure::EmptyKey)
        );
        assert_eq!(
            credential(&head(&format!("{t}?key="), None, None)),
            Err(AuthFailure::EmptyKey)
        );
        assert_eq!(
            credential(&head(t, None, Some("Basic x"))),
            Err(AuthFailure::BadAuthorization)
        );
    }

    #[test]
    fn a_minimal_request_is_valid_and_counts_words() {
        let body = base();
        let req = parse_request(&body).unwrap();
        assert_eq!(req.last_user_text, "hi there");
        assert_eq!((req.prompt_tokens, req.cached_tokens), (2, 0));
        assert_eq!(req.mode, Mode::Auto);
        assert_eq!(req.candidate_count, 1);
        assert!(req.thinking.is_none());
        assert!(!req.dangerous_content_allowed);
    }

    #[test]
    fn every_documented_field_is_accepted_in_either_case() {
        let body = json!({
            "model": "models/gemini-test",
            "system_instruction": {"parts": [{"text": "be brief"}]},
            "tools": [
                {"functionDeclarations": [{"name": "get_weather", "description": "Get weather",
                    "parameters": {"type": "object", "properties": {
                        "location": {"type": "STRING"}}, "required": ["location"]}}]},
                {"google_search": {}},
                {"codeExecution": {}},
            ],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY",
                                                     "allowedFunctionNames": ["get_weather"]}},
            "safetySettings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                                "threshold": "BLOCK_NONE"}],
            "generation_config": {"temperature": 0.5, "topP": 0.9, "topK": 40,
                "maxOutputTokens": "100", "stopSequences": ["END"], "candidateCount": 2,
                "responseMimeType": "text/plain", "seed": 7, "presencePenalty": 0.1,
                "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": true}},
            "contents": [
                {"role": "user", "parts": [
                    {"text": "look at"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                    {"file_data": {"mime_type": "application/pdf",
                                   "file_uri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}}]},
                {"role": "model", "parts": [
                    {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather",
                                          "response": {"forecast": "sunny and warm"}}}]},
            ],
        });
        let req = parse_request(&body).unwrap();
        assert_eq!(req.mode, Mode::Any);
        assert_eq!(req.allowed_functions, ["get_weather"]);
        assert_eq!(req.functions.len(), 1);
        assert_eq!(req.max_output_tokens, Some(100));
        assert_eq!(req.stop_sequences, ["END"]);
        assert_eq!(req.candidate_count, 2);
        assert_eq!(
            req.thinking,
            Some(Thinking {
                budget: Some(1024),
                include_thoughts: true
            })
        );
        assert!(req.dangerous_content_allowed);
        assert_eq!(
            req.last_user_text, "",
            "the last user turn is a function response"
        );
        // get_weather(1) + Get weather(2) + be brief(2) + look at(2) + get_weather Paris(2)
        // + get_weather sunny and warm(4).
        assert_eq!(req.prompt_tokens, 13);
    }

    #[test]
    fn errors_name_the_field_like_the_api() {
        let cases = [
            (
                json!({}),
                "* GenerateContentRequest.contents: contents is not specified\n",
            ),
            (
                with("contents", json!([])),
                "* GenerateContentRequest.contents: contents is not specified\n",
            ),
            (
                with("contents", json!("hi")),
                "Invalid value at 'contents' \
                 (type.googleapis.com/google.ai.generativelanguage.v1beta.Content), \"hi\"",
            ),
            (
                with(
                    "contents",
                    json!([{"role": "assistant", "parts": [{"text": "x"}]}]),
                ),
                "* GenerateContentRequest.contents[0].role: Please use a valid role: user, \
                 model.\n",
            ),
            (
                with("contents", json!([{"role": "user", "parts": []}])),
                "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n",
            ),
            (
                with("contents", json!([{"parts": [{"text": ""}]}])),
                "* GenerateContentRequest.contents[0].parts[0].data: required oneof field \
                 'data' must have one initialized field\n",
            ),
            (
                with(
                    "contents",
                    json!([{"parts": [{"inlineData": {"mimeType": "image/png",
                                                                    "data": "not base64!"}}]}]),
                ),
                "Invalid value at 'contents[0].parts[0].inline_data.data' (TYPE_BYTES), Base64 \
                 decoding failed for \"not base64!\"",
            ),
            (
                with(
                    "contents",
                    json!([{"parts": [{"fileData": {"mimeType": "image/png"}}]}]),
                ),
                "* GenerateContentRequest.contents[0].parts[0].file_data.file_uri: file_uri is \
                 not specified\n",
            ),
            (
                with("prompt", json!("x")),
                "Invalid JSON payload received. Unknown name \"prompt\": Cannot find field.",
            ),
            (
                with("generationConfig", json!({"tempreature": 1})),
                "Invalid JSON payload received. Unknown name \"tempreature\" at \
                 'generation_config': Cannot find field.",
            ),
            (
                with("generationConfig", json!({"temperature": "hot"})),
                "Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"",
            ),
            (
                with("generationConfig", json!({"maxOutputTokens": 1.5})),
                "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), 1.5",
            ),
            (
                with("generationConfig", json!({"responseMimeType": "text/html"})),
                "* GenerateContentRequest.generation_config.response_mime_type: allowed \
                 mimetypes are `text/plain`, `application/json`, `application/xml`, \
                 `application/yaml` and `text/x.enum`.\n",
            ),
            (
                with(
                    "tools",
                    json!([{"functionDeclarations": [{"name": "f",
                    "parameters": {"type": "object", "properties": {}}}]}]),
                ),
                "* GenerateContentRequest.tools[0].function_declarations[0].parameters.\
                 properties: should be non-empty for OBJECT type\n",
            ),
            (
                with(
                    "tools",
                    json!([{"functionDeclarations": [{"name": "f",
                    "parameters": {"type": "object", "additionalProperties": false,
                                   "properties": {"a": {"type": "string"}}}}]}]),
                ),
                "Invalid JSON payload received. Unknown name \"additionalProperties\" at \
                 'tools[0].function_declarations[0].parameters': Cannot find field.",
            ),
            (
                with(
                    "toolConfig",
                    json!({"functionCallingConfig": {"mode": "SOMETIMES"}}),
                ),
                "Invalid value at 'tool_config.function_calling_config.mode' \
                 (type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig.\
                 Mode), \"SOMETIMES\"",
            ),
            (
                with(
                    "safetySettings",
                    json!([{"category": "HARM_CATEGORY_TOXICITY",
                                                "threshold": "BLOCK_NONE"}]),
                ),
                "Invalid value at 'safety_settings[0].category' \
                 (type.googleapis.com/google.ai.generativelanguage.v1beta.HarmCategory), \
                 \"HARM_CATEGORY_TOXICITY\"",
            ),
            (
                with(
                    "contents",
                    json!([{"role": "user", "parts": [{"functionResponse":
                    {"name": "f", "response": {}}}]}]),
                ),
                "* GenerateContentRequest.contents[0]: Please ensure that function response \
                 turn comes immediately after a function call turn.\n",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(error(body), expected);
        }
    }

    #[test]
    fn cached_content_counts_and_excludes_system_instruction() {
        let body = with("cachedContent", json!("cachedContents/abc"));
        let req = parse_request(&body).unwrap();
        assert_eq!(
            (req.prompt_tokens, req.cached_tokens),
            (CACHED_CONTENT_TOKENS + 2, CACHED_CONTENT_TOKENS)
        );
        let mut body = with("cachedContent", json!("cachedContents/abc"));
        body["systemInstruction"] = json!({"parts": [{"text": "x"}]});
        assert!(error(body).starts_with("CachedContent can not be used"));
    }

    #[test]
    fn google_status_names() {
        assert_eq!(status_name(400), "INVALID_ARGUMENT");
        assert_eq!(status_name(429), "RESOURCE_EXHAUSTED");
        assert_eq!(status_name(500), "INTERNAL");
        assert_eq!(status_name(503), "UNAVAILABLE");
        assert_eq!(status_name(418), "FAILED_PRECONDITION");
    }

    #[test]
    fn base64_check() {
        assert!(is_base64("iVBORw0KGgo="));
        assert!(is_base64("AA=="));
        assert!(is_base64("a-_b"));
        assert!(!is_base64("not base64!"));
        assert!(!is_base64("A==="));
    }
}
