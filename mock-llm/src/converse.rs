//! Bedrock Converse API request validation (the body of `converse` and `converse-stream`).
//!
//! Problems are reported the way Bedrock does, as one `ValidationException` message: its own
//! sentences where it has them (`A conversation must start with a user message. ...`, `The text
//! field in the ContentBlock object at messages.0.content.0 is blank. ...`, `Expected toolResult
//! blocks at messages.2.content for the following Ids: ...`) and otherwise its schema
//! validator's (`1 validation error detected: Value 'system' at 'messages.0.member.role' failed
//! to satisfy constraint: Member must satisfy enum value set: [user, assistant]`). Members the
//! API does not define are refused (`extraneous key [model] is not permitted`), so a client
//! sending another API's fields hears about it. The body is walked as a `serde_json::Value` so
//! every message can name its field.

use std::collections::HashSet;
use std::fmt::Display;

use serde_json::{Map, Value};

use crate::anthropic::{Tool, ToolChoice};
use crate::openai::count_words;

const TOP_LEVEL: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "performanceConfig",
    "serviceTier",
];
const CONTENT_BLOCKS: &[&str] = &[
    "text",
    "image",
    "document",
    "video",
    "toolUse",
    "toolResult",
    "guardContent",
    "cachePoint",
    "reasoningContent",
    "citationsContent",
];
/// Top-level members the mock only checks to be objects.
const OBJECT_MEMBERS: &[&str] = &[
    "additionalModelRequestFields",
    "guardrailConfig",
    "performanceConfig",
    "promptVariables",
    "requestMetadata",
];
const SYSTEM_BLOCKS: &[&str] = &["text", "guardContent", "cachePoint"];
const TOOL_RESULT_BLOCKS: &[&str] = &["json", "text", "image", "document", "video"];
const IMAGE_FORMATS: &[&str] = &["png", "jpeg", "gif", "webp"];
/// Bedrock's image limit is 3.75 MB; its base64 is a third longer.
const MAX_IMAGE_BASE64: usize = 5_000_000;
const MAX_STOP_SEQUENCES: usize = 2500;

const MUST_START_WITH_USER: &str = "A conversation must start with a user message. Try again with \
    a conversation that starts with a user message.";
const MUST_ALTERNATE: &str = "A conversation must alternate between user and assistant roles. \
    Make sure the conversation alternates between user and assistant roles and try again.";
const NOT_AN_OBJECT: &str = "Malformed input request: the request body must be a JSON object, \
    please reformat your input and try again.";
const TOOLS_NEED_CONFIG: &str =
    "The toolConfig field must be defined when using toolUse and toolResult content blocks.";

/// What the handler needs from a valid request.
pub(crate) struct ConverseRequest<'a> {
    /// `u64::MAX` without `inferenceConfig.maxTokens` (the model's own limit).
    pub max_tokens: u64,
    pub stop_sequences: Vec<&'a str>,
    pub tools: Vec<Tool<'a>>,
    pub tool_choice: ToolChoice<'a>,
    /// The text blocks of the last user message, joined by `\n`.
    pub last_user_text: String,
    /// Words in tool names and descriptions, system text and message text (tool results too).
    pub prompt_tokens: u32,
    /// The prompt tokens up to and including the last `cachePoint`, in the order tools, system,
    /// messages.
    pub cached_tokens: u32,
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

    fn add_strings(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.add(s),
            Value::Array(items) => items.iter().for_each(|i| self.add_strings(i)),
            Value::Object(map) => map.values().for_each(|i| self.add_strings(i)),
            _ => {}
        }
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

/// The schema validator's name for a path: list elements are `N.member`.
fn coral(path: &str) -> String {
    path.split('.')
        .map(|seg| {
            if seg.bytes().all(|b| b.is_ascii_digit()) {
                format!("{seg}.member")
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The schema validator's message for one failed constraint.
fn constraint(value: Option<&Value>, path: &str, rule: &str) -> String {
    let shown = match value {
        None | Some(Value::Null) => "null".to_owned(),
        Some(Value::String(s)) => format!("'{s}'"),
        Some(v) => format!("'{v}'"),
    };
    format!(
        "1 validation error detected: Value {shown} at '{}' failed to satisfy constraint: {rule}",
        coral(path)
    )
}

fn extraneous(key: &str) -> String {
    format!(
        "Malformed input request: extraneous key [{key}] is not permitted, please reformat your \
         input and try again."
    )
}

fn known(obj: &Map<String, Value>, allowed: &[&str]) -> Check<()> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(extraneous(k)),
        None => Ok(()),
    }
}

fn required<'v>(obj: &'v Map<String, Value>, key: &str, path: &str) -> Check<&'v Value> {
    obj.get(key)
        .filter(|v| !v.is_null())
        .ok_or_else(|| constraint(None, &join(path, key), "Member must not be null"))
}

fn want_obj<'v>(v: &'v Value, path: &str) -> Check<&'v Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| constraint(Some(v), path, "Member must be a structure"))
}

fn want_list<'v>(v: &'v Value, path: &str) -> Check<&'v [Value]> {
    v.as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| constraint(Some(v), path, "Member must be a list"))
}

fn want_str<'v>(v: &'v Value, path: &str) -> Check<&'v str> {
    v.as_str()
        .ok_or_else(|| constraint(Some(v), path, "Member must be a string"))
}

fn string_field<'v>(obj: &'v Map<String, Value>, key: &str, path: &str) -> Check<&'v str> {
    want_str(required(obj, key, path)?, &join(path, key))
}

fn in_enum<'v>(v: &'v Value, path: &str, values: &[&str]) -> Check<&'v str> {
    match v.as_str() {
        Some(s) if values.contains(&s) => Ok(s),
        _ => Err(constraint(
            Some(v),
            path,
            &format!(
                "Member must satisfy enum value set: [{}]",
                values.join(", ")
            ),
        )),
    }
}

/// The single member a union (a content block, a tool choice) sets.
fn union_member<'v>(v: &'v Value, path: &str, members: &[&str]) -> Check<(&'v str, &'v Value)> {
    let obj = want_obj(v, path)?;
    known(obj, members)?;
    let mut set = obj.iter().filter(|(_, v)| !v.is_null());
    match (set.next(), set.next()) {
        (Some((k, v)), None) => Ok((k.as_str(), v)),
        _ => Err(constraint(
            Some(v),
            path,
            "Member must have exactly one of its union members set",
        )),
    }
}

fn blank(text: &str) -> bool {
    text.trim().is_empty()
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn image(v: &Value, path: &str) -> Check<()> {
    let obj = want_obj(v, path)?;
    known(obj, &["format", "source"])?;
    in_enum(
        required(obj, "format", path)?,
        &join(path, "format"),
        IMAGE_FORMATS,
    )?;
    let source_path = join(path, "source");
    let source = required(obj, "source", path)?;
    match union_member(source, &source_path, &["bytes", "s3Location"])? {
        ("bytes", b) => {
            let bytes_path = join(&source_path, "bytes");
            let data = want_str(b, &bytes_path)?;
            if data.len() > MAX_IMAGE_BASE64 {
                return Err(format!("{bytes_path}: image exceeds 3.75 MB maximum"));
            }
            if aws_smithy_types::base64::decode(data).is_err() {
                return Err(constraint(
                    None,
                    &bytes_path,
                    "Member must be base64-encoded binary data",
                ));
            }
        }
        (_, loc) => {
            string_field(
                want_obj(loc, &join(&source_path, "s3Location"))?,
                "uri",
                &source_path,
            )?;
        }
    }
    Ok(())
}

/// One block of a message's `content`; returns the id of a `toolUse` or `toolResult`.
fn content_block<'v>(
    v: &'v Value,
    path: &str,
    tokens: &mut Tokens,
) -> Check<Option<(&'static str, &'v str)>> {
    let (kind, value) = union_member(v, path, CONTENT_BLOCKS)?;
    let member_path = join(path, kind);
    match kind {
        "text" => {
            let text = want_str(value, &member_path)?;
            if blank(text) {
                return Err(format!(
                    "The text field in the ContentBlock object at {path} is blank. Add text to \
                     the text field, and try again."
                ));
            }
            tokens.add(text);
        }
        "image" => image(value, &member_path)?,
        "toolUse" => {
            let obj = want_obj(value, &member_path)?;
            known(obj, &["toolUseId", "name", "input", "type"])?;
            let id = string_field(obj, "toolUseId", &member_path)?;
            if !valid_name(id) {
                return Err(constraint(
                    Some(&Value::from(id)),
                    &join(&member_path, "toolUseId"),
                    "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
                ));
            }
            tokens.add(string_field(obj, "name", &member_path)?);
            required(obj, "input", &member_path)?;
            return Ok(Some(("toolUse", id)));
        }
        "toolResult" => {
            let obj = want_obj(value, &member_path)?;
            known(obj, &["toolUseId", "content", "status", "type"])?;
            let id = string_field(obj, "toolUseId", &member_path)?;
            let content_path = join(&member_path, "content");
            let content = want_list(required(obj, "content", &member_path)?, &content_path)?;
            for (i, block) in content.iter().enumerate() {
                let block_path = join(&content_path, i);
                match union_member(block, &block_path, TOOL_RESULT_BLOCKS)? {
                    ("json", Value::Object(map)) => {
                        map.values().for_each(|v| tokens.add_strings(v));
                    }
                    ("json", _) => {
                        return Err(format!(
                            "The format of the value at {block_path}.json is invalid. Provide a \
                             json object for the field and try again."
                        ));
                    }
                    ("text", t) => tokens.add(want_str(t, &join(&block_path, "text"))?),
                    ("image", i) => image(i, &join(&block_path, "image"))?,
                    (other, v) => {
                        want_obj(v, &join(&block_path, other))?;
                    }
                }
            }
            if let Some(status) = obj.get("status").filter(|v| !v.is_null()) {
                in_enum(status, &join(&member_path, "status"), &["success", "error"])?;
            }
            return Ok(Some(("toolResult", id)));
        }
        "cachePoint" => {
            let obj = want_obj(value, &member_path)?;
            in_enum(
                required(obj, "type", &member_path)?,
                &join(&member_path, "type"),
                &["default"],
            )?;
            tokens.breakpoint();
        }
        _ => {
            want_obj(value, &member_path)?;
        }
    }
    Ok(None)
}

fn parse_system(v: &Value, tokens: &mut Tokens) -> Check<()> {
    for (i, block) in want_list(v, "system")?.iter().enumerate() {
        let path = join("system", i);
        match union_member(block, &path, SYSTEM_BLOCKS)? {
            ("text", t) => {
                let text = want_str(t, &join(&path, "text"))?;
                if blank(text) {
                    return Err(format!(
                        "The text field in the SystemContentBlock object at {path} is blank. Add \
                         text to the text field, and try again."
                    ));
                }
                tokens.add(text);
            }
            ("cachePoint", _) => tokens.breakpoint(),
            (kind, v) => {
                want_obj(v, &join(&path, kind))?;
            }
        }
    }
    Ok(())
}

struct Inference<'v> {
    max_tokens: u64,
    stop_sequences: Vec<&'v str>,
}

fn parse_inference(v: &Value) -> Check<Inference<'_>> {
    let path = "inferenceConfig";
    let obj = want_obj(v, path)?;
    known(obj, &["maxTokens", "temperature", "topP", "stopSequences"])?;
    let mut out = Inference {
        max_tokens: u64::MAX,
        stop_sequences: Vec::new(),
    };
    if let Some(m) = obj.get("maxTokens").filter(|v| !v.is_null()) {
        let p = join(path, "maxTokens");
        let n = m
            .as_i64()
            .ok_or_else(|| constraint(Some(m), &p, "Member must be an integer"))?;
        out.max_tokens = u64::try_from(n).ok().filter(|&n| n >= 1).ok_or_else(|| {
            constraint(
                Some(m),
                &p,
                "Member must have value greater than or equal to 1",
            )
        })?;
    }
    for key in ["temperature", "topP"] {
        if let Some(t) = obj.get(key).filter(|v| !v.is_null()) {
            let p = join(path, key);
            let n = t
                .as_f64()
                .ok_or_else(|| constraint(Some(t), &p, "Member must be a number"))?;
            if n < 0.0 {
                let rule = "Member must have value greater than or equal to 0";
                return Err(constraint(Some(t), &p, rule));
            }
            if n > 1.0 {
                let rule = "Member must have value less than or equal to 1";
                return Err(constraint(Some(t), &p, rule));
            }
        }
    }
    if let Some(s) = obj.get("stopSequences").filter(|v| !v.is_null()) {
        let p = join(path, "stopSequences");
        let list = want_list(s, &p)?;
        if list.len() > MAX_STOP_SEQUENCES {
            let rule =
                format!("Member must have length less than or equal to {MAX_STOP_SEQUENCES}");
            return Err(constraint(None, &p, &rule));
        }
        for (i, seq) in list.iter().enumerate() {
            let seq = want_str(seq, &join(&p, i))?;
            if seq.is_empty() {
                let rule = "Member must have length greater than or equal to 1";
                return Err(constraint(Some(&Value::from(seq)), &join(&p, i), rule));
            }
            out.stop_sequences.push(seq);
        }
    }
    Ok(out)
}

fn parse_tool_config<'v>(
    v: &'v Value,
    tokens: &mut Tokens,
) -> Check<(Vec<Tool<'v>>, ToolChoice<'v>)> {
    let path = "toolConfig";
    let obj = want_obj(v, path)?;
    known(obj, &["tools", "toolChoice"])?;
    let list_path = join(path, "tools");
    let list = want_list(required(obj, "tools", path)?, &list_path)?;
    if list.is_empty() {
        let rule = "Member must have length greater than or equal to 1";
        return Err(constraint(
            Some(&Value::Array(Vec::new())),
            &list_path,
            rule,
        ));
    }
    let mut tools = Vec::with_capacity(list.len());
    let mut names = HashSet::new();
    for (i, tool) in list.iter().enumerate() {
        let tool_path = join(&list_path, i);
        let spec = match union_member(tool, &tool_path, &["toolSpec", "systemTool", "cachePoint"])?
        {
            ("toolSpec", spec) => spec,
            ("cachePoint", _) => {
                tokens.breakpoint();
                continue;
            }
            (kind, v) => {
                let obj = want_obj(v, &join(&tool_path, kind))?;
                string_field(obj, "name", &join(&tool_path, kind))?;
                continue;
            }
        };
        let spec_path = join(&tool_path, "toolSpec");
        let spec = want_obj(spec, &spec_path)?;
        known(spec, &["name", "description", "inputSchema", "strict"])?;
        let name = string_field(spec, "name", &spec_path)?;
        if !valid_name(name) {
            return Err(constraint(
                Some(&Value::from(name)),
                &join(&spec_path, "name"),
                "Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
            ));
        }
        if !names.insert(name) {
            return Err(format!(
                "The tool name '{name}' is used by more than one tool in toolConfig.tools. Tool \
                 names must be unique."
            ));
        }
        tokens.add(name);
        if let Some(d) = spec.get("description").filter(|v| !v.is_null()) {
            tokens.add(want_str(d, &join(&spec_path, "description"))?);
        }
        let schema_path = join(&spec_path, "inputSchema");
        let schema = required(spec, "inputSchema", &spec_path)?;
        let (_, json) = union_member(schema, &schema_path, &["json"])?;
        want_obj(json, &join(&schema_path, "json"))?;
        tools.push(Tool {
            name,
            input_schema: Some(json),
        });
    }
    let choice = match obj.get("toolChoice").filter(|v| !v.is_null()) {
        None => ToolChoice::Auto,
        Some(c) => {
            let choice_path = join(path, "toolChoice");
            match union_member(c, &choice_path, &["auto", "any", "tool"])? {
                ("auto", _) => ToolChoice::Auto,
                ("any", _) => ToolChoice::Any,
                (_, t) => {
                    let tool_path = join(&choice_path, "tool");
                    let name = string_field(want_obj(t, &tool_path)?, "name", &tool_path)?;
                    if !tools.iter().any(|t| t.name == name) {
                        return Err(format!(
                            "The tool '{name}' named in toolConfig.toolChoice.tool is not defined \
                             in toolConfig.tools."
                        ));
                    }
                    ToolChoice::Tool(name)
                }
            }
        }
    };
    Ok((tools, choice))
}

/// One message's tool blocks, for matching results to uses.
#[derive(Default)]
struct ToolIds<'v> {
    uses: Vec<&'v str>,
    results: Vec<&'v str>,
}

/// What the walk over `messages` gathers.
struct Conversation<'v> {
    /// Per message, its tool ids.
    ids: Vec<ToolIds<'v>>,
    last_user: Option<&'v [Value]>,
}

fn parse_messages<'v>(messages: &'v [Value], tokens: &mut Tokens) -> Check<Conversation<'v>> {
    if messages.is_empty() {
        return Err(MUST_START_WITH_USER.to_owned());
    }
    let mut ids = Vec::with_capacity(messages.len());
    let mut last_user = None;
    let mut prev_role = None;
    for (i, m) in messages.iter().enumerate() {
        let path = join("messages", i);
        let msg = want_obj(m, &path)?;
        known(msg, &["role", "content"])?;
        let role_path = join(&path, "role");
        let role = in_enum(
            required(msg, "role", &path)?,
            &role_path,
            &["user", "assistant"],
        )?;
        if i == 0 && role != "user" {
            return Err(MUST_START_WITH_USER.to_owned());
        }
        if prev_role == Some(role) {
            return Err(MUST_ALTERNATE.to_owned());
        }
        prev_role = Some(role);
        let content_path = join(&path, "content");
        let content = want_list(required(msg, "content", &path)?, &content_path)?;
        if content.is_empty() {
            return Err(format!(
                "The content field in the Message object at {path} is empty. Add a ContentBlock \
                 object to the content field and try again."
            ));
        }
        let mut these = ToolIds::default();
        for (j, block) in content.iter().enumerate() {
            match content_block(block, &join(&content_path, j), tokens)? {
                Some(("toolUse", id)) => these.uses.push(id),
                Some((_, id)) => these.results.push(id),
                None => {}
            }
        }
        if role == "user" {
            last_user = Some(content);
        }
        ids.push(these);
    }
    Ok(Conversation { ids, last_user })
}

/// Each turn's `toolResult`s must answer exactly the previous turn's `toolUse`s.
fn check_tool_pairs(ids: &[ToolIds<'_>]) -> Check<()> {
    if let Some(extra) = ids.first().and_then(|first| first.results.first()) {
        return Err(format!(
            "The toolResult block with toolUseId {extra} at messages.0.content has no matching \
             toolUse block."
        ));
    }
    for (i, pair) in ids.windows(2).enumerate() {
        let (asked, answered) = (&pair[0], &pair[1]);
        let missing: Vec<&str> = asked
            .uses
            .iter()
            .filter(|id| !answered.results.contains(id))
            .copied()
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "Expected toolResult blocks at messages.{}.content for the following Ids: {}",
                i + 1,
                missing.join(", ")
            ));
        }
        if let Some(extra) = answered.results.iter().find(|id| !asked.uses.contains(id)) {
            return Err(format!(
                "The toolResult block with toolUseId {extra} at messages.{}.content has no \
                 matching toolUse block in messages.{i}.content.",
                i + 1
            ));
        }
    }
    Ok(())
}

/// Validates a Converse request body; the error is the message of a 400 `ValidationException`.
pub(crate) fn parse_request(body: &Value) -> Check<ConverseRequest<'_>> {
    let obj = body.as_object().ok_or_else(|| NOT_AN_OBJECT.to_owned())?;
    known(obj, TOP_LEVEL)?;

    // Prompt order: tools, system, messages (it matters for the cached prefix).
    let mut tokens = Tokens::default();
    let tool_config = obj.get("toolConfig").filter(|v| !v.is_null());
    let (tools, tool_choice) = match tool_config {
        Some(c) => parse_tool_config(c, &mut tokens)?,
        None => (Vec::new(), ToolChoice::Auto),
    };
    if let Some(system) = obj.get("system").filter(|v| !v.is_null()) {
        parse_system(system, &mut tokens)?;
    }
    let messages = match obj.get("messages").filter(|v| !v.is_null()) {
        Some(m) => want_list(m, "messages")?,
        None => &[],
    };
    let conversation = parse_messages(messages, &mut tokens)?;
    let uses_tools = conversation
        .ids
        .iter()
        .any(|t| !t.uses.is_empty() || !t.results.is_empty());
    if uses_tools && tool_config.is_none() {
        return Err(TOOLS_NEED_CONFIG.to_owned());
    }
    check_tool_pairs(&conversation.ids)?;

    let inference = match obj.get("inferenceConfig").filter(|v| !v.is_null()) {
        Some(c) => parse_inference(c)?,
        None => Inference {
            max_tokens: u64::MAX,
            stop_sequences: Vec::new(),
        },
    };
    for key in OBJECT_MEMBERS {
        if let Some(v) = obj.get(*key).filter(|v| !v.is_null()) {
            want_obj(v, key)?;
        }
    }

    Ok(ConverseRequest {
        max_tokens: inference.max_tokens,
        stop_sequences: inference.stop_sequences,
        tools,
        tool_choice,
        last_user_text: conversation.last_user.map(user_text).unwrap_or_default(),
        prompt_tokens: tokens.total,
        cached_tokens: tokens.cached,
    })
}

fn user_text(content: &[Value]) -> String {
    let texts: Vec<&str> = content
        .iter()
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    texts.join("\n")
}

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
        json!({"messages": [{"role": "user", "content": [{"text": "hi there"}]}]})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut body = base();
        body[key] = value;
        body
    }

    fn weather_config() -> Value {
        json!({"tools": [{"toolSpec": {"name": "get_weather", "description": "Get weather",
            "inputSchema": {"json": {"type": "object",
                "properties": {"city": {"type": "string"}}}}}}]})
    }

    #[test]
    fn a_minimal_request_is_valid_and_counts_words() {
        let body = base();
        let req = parse_request(&body).unwrap();
        assert_eq!(req.last_user_text, "hi there");
        assert_eq!((req.prompt_tokens, req.cached_tokens), (2, 0));
        assert_eq!(req.max_tokens, u64::MAX);
        assert_eq!(req.tool_choice, ToolChoice::Auto);
        assert!(req.tools.is_empty());
    }

    #[test]
    fn every_documented_field_is_accepted() {
        let body = json!({
            "system": [{"text": "be brief"}, {"cachePoint": {"type": "default"}}],
            "inferenceConfig": {"maxTokens": 50, "temperature": 0.5, "topP": 0.9,
                                "stopSequences": ["END"]},
            "toolConfig": {"tools": [{"toolSpec": {"name": "get_weather",
                "description": "Get weather", "inputSchema": {"json": {"type": "object"}}}}],
                "toolChoice": {"tool": {"name": "get_weather"}}},
            "additionalModelRequestFields": {"top_k": 5},
            "messages": [
                {"role": "user", "content": [{"text": "look"},
                    {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}]},
                {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_1",
                    "name": "get_weather", "input": {"city": "Paris"}}}]},
                {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_1",
                    "content": [{"json": {"forecast": "sunny and warm"}}, {"text": "ok"}],
                    "status": "success"}}, {"text": "and now?"}]},
            ],
        });
        let req = parse_request(&body).unwrap();
        assert_eq!(req.max_tokens, 50);
        assert_eq!(req.stop_sequences, ["END"]);
        assert_eq!(req.tool_choice, ToolChoice::Tool("get_weather"));
        assert_eq!(req.last_user_text, "and now?");
        // get_weather(1) + Get weather(2) + be brief(2) | look(1) + get_weather(1)
        // + sunny and warm(3) + ok(1) + and now?(2).
        assert_eq!((req.prompt_tokens, req.cached_tokens), (13, 5));
    }

    #[test]
    fn errors_read_like_bedrocks() {
        let cases = [
            (json!({}), MUST_START_WITH_USER.to_owned()),
            (with("messages", json!([])), MUST_START_WITH_USER.to_owned()),
            (
                with(
                    "messages",
                    json!([{"role": "assistant", "content": [{"text": "x"}]}]),
                ),
                MUST_START_WITH_USER.to_owned(),
            ),
            (
                with(
                    "messages",
                    json!([{"role": "user", "content": [{"text": "a"}]},
                                        {"role": "user", "content": [{"text": "b"}]}]),
                ),
                MUST_ALTERNATE.to_owned(),
            ),
            (
                with(
                    "messages",
                    json!([{"role": "system", "content": [{"text": "x"}]}]),
                ),
                "1 validation error detected: Value 'system' at 'messages.0.member.role' failed \
                 to satisfy constraint: Member must satisfy enum value set: [user, assistant]"
                    .to_owned(),
            ),
            (
                with("messages", json!([{"role": "user"}])),
                "1 validation error detected: Value null at 'messages.0.member.content' failed \
                 to satisfy constraint: Member must not be null"
                    .to_owned(),
            ),
            (
                with("messages", json!([{"role": "user", "content": []}])),
                "The content field in the Message object at messages.0 is empty. Add a \
                 ContentBlock object to the content field and try again."
                    .to_owned(),
            ),
            (
                with(
                    "messages",
                    json!([{"role": "user", "content": [{"text": " "}]}]),
                ),
                "The text field in the ContentBlock object at messages.0.content.0 is blank. \
                 Add text to the text field, and try again."
                    .to_owned(),
            ),
            (with("model", json!("x")), extraneous("model")),
            (with("max_tokens", json!(5)), extraneous("max_tokens")),
            (
                with("inferenceConfig", json!({"maxTokens": 0})),
                "1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed \
                 to satisfy constraint: Member must have value greater than or equal to 1"
                    .to_owned(),
            ),
            (
                with("inferenceConfig", json!({"temperature": 1.5})),
                "1 validation error detected: Value '1.5' at 'inferenceConfig.temperature' \
                 failed to satisfy constraint: Member must have value less than or equal to 1"
                    .to_owned(),
            ),
            (
                with(
                    "messages",
                    json!([{"role": "user", "content": [{"image": {
                    "format": "bmp", "source": {"bytes": "AA=="}}}]}]),
                ),
                "1 validation error detected: Value 'bmp' at \
                 'messages.0.member.content.0.member.image.format' failed to satisfy \
                 constraint: Member must satisfy enum value set: [png, jpeg, gif, webp]"
                    .to_owned(),
            ),
            (
                with(
                    "messages",
                    json!([{"role": "user", "content": [
                    {"toolResult": {"toolUseId": "t", "content": [{"text": "x"}]}}]}]),
                ),
                TOOLS_NEED_CONFIG.to_owned(),
            ),
            (
                with(
                    "toolConfig",
                    json!({"tools": [{"toolSpec": {"name": "bad name",
                    "inputSchema": {"json": {}}}}]}),
                ),
                "1 validation error detected: Value 'bad name' at \
                 'toolConfig.tools.0.member.toolSpec.name' failed to satisfy constraint: Member \
                 must satisfy regular expression pattern: [a-zA-Z0-9_-]+"
                    .to_owned(),
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(error(body), expected);
        }
    }

    #[test]
    fn tool_results_must_answer_the_previous_tool_uses() {
        let mut body = with("toolConfig", weather_config());
        body["messages"] = json!([
            {"role": "user", "content": [{"text": "weather?"}]},
            {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "a", "name": "get_weather", "input": {}}},
                {"toolUse": {"toolUseId": "b", "name": "get_weather", "input": {}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "a", "content": [{"text": "sunny"}]}}]},
        ]);
        assert_eq!(
            error(body.clone()),
            "Expected toolResult blocks at messages.2.content for the following Ids: b"
        );
        body["messages"][2]["content"][0]["toolResult"]["content"] = json!([{"json": [1]}]);
        body["messages"][1]["content"].as_array_mut().unwrap().pop();
        assert_eq!(
            error(body),
            "The format of the value at messages.2.content.0.toolResult.content.0.json is \
             invalid. Provide a json object for the field and try again."
        );
    }

    #[test]
    fn tool_choice_names_a_defined_tool() {
        let mut config = weather_config();
        config["toolChoice"] = json!({"tool": {"name": "other"}});
        assert!(error(with("toolConfig", config.clone())).contains("'other'"));
        config["toolChoice"] = json!({"auto": {}, "any": {}});
        assert!(error(with("toolConfig", config)).contains("exactly one"));
    }
}
