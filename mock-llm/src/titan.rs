//! `POST /model/{modelId}/invoke` for Amazon Titan Text Embeddings
//! (<https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html>),
//! past Bedrock's SigV4 check ([`crate::bedrock::handle`]).
//!
//! * The model id must name a Titan text embeddings model (`amazon.titan-embed-text-v1`,
//!   `amazon.titan-embed-text-v2:0`, or an ARN holding one): mock-llm's `InvokeModel` serves no
//!   other model (a 400 `ValidationException`).
//! * The body is validated as Bedrock validates it against the model's schema, with its
//!   `Malformed input request: #/...: ..., please reformat your input and try again.` messages
//!   (400 `ValidationException`): `inputText` is required, a string of 1 to 50,000 characters;
//!   v2 also takes `dimensions` (256, 512 or 1024), `normalize` (a boolean) and `embeddingTypes`
//!   (`float` and/or `binary`); any other key (any but `inputText` on v1) is extraneous.
//! * The answer is `{"embedding":[..],"inputTextTokenCount":N}` (plus `embeddingsByType` with
//!   the `embeddingTypes` asked for: `binary` is 1 for each value >= 0, else 0), with
//!   `x-amzn-RequestId` and `X-Amzn-Bedrock-Input-Token-Count` headers: the vector of `inputText`
//!   as the OpenAI route computes it ([`crate::embeddings::vector`], unit length whatever
//!   `normalize` says), 8 values unless `dimensions` asks for another size; tokens are words.
//! * Errors and faults are Bedrock's shape, as on Converse.

use std::io;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::bedrock::{self, reply};
use crate::embeddings::{DIMENSIONS, vector};
use crate::handlers::{Ctx, Flow, send_json_with};
use crate::http::Conn;
use crate::openai::count_words;
use crate::server::Shared;

const MAX_INPUT_CHARS: usize = 50_000;
const V2_DIMENSIONS: [u64; 3] = [256, 512, 1024];

/// Which Titan text embeddings model is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// The model `model_id` names, if it is a Titan text embeddings model.
pub(crate) fn version(model_id: &str) -> Option<Version> {
    if model_id.contains("amazon.titan-embed-text-v1") {
        Some(Version::V1)
    } else if model_id.contains("amazon.titan-embed-text-v2") {
        Some(Version::V2)
    } else {
        None
    }
}

/// A valid request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Invoke<'a> {
    pub input_text: &'a str,
    pub dimensions: usize,
    pub float: bool,
    pub binary: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    embedding: Vec<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    embeddings_by_type: Option<ByType>,
    input_text_token_count: u32,
}

#[derive(Serialize)]
struct ByType {
    #[serde(skip_serializing_if = "Option::is_none")]
    float: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    binary: Option<Vec<u8>>,
}

pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    model_id: &str,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    let Some(version) = version(model_id) else {
        let msg = format!(
            "mock-llm's InvokeModel serves Amazon Titan Text Embeddings models only \
             (amazon.titan-embed-text-v1, amazon.titan-embed-text-v2:0), not {model_id}"
        );
        return bedrock::send_error(shared, conn, reply(400, "ValidationException", &msg), ctx)
            .await;
    };
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let invoke = match parse(&value, version) {
        Ok(invoke) => invoke,
        Err(why) => {
            let msg = format!(
                "Malformed input request: {why}, please reformat your input and try again."
            );
            let r = reply(400, "ValidationException", &msg);
            return bedrock::send_error(shared, conn, r, ctx).await;
        }
    };
    let values = vector(invoke.input_text.as_bytes(), invoke.dimensions);
    let tokens = count_words(invoke.input_text);
    let by_type = (invoke.float || invoke.binary).then(|| ByType {
        float: invoke.float.then(|| values.clone()),
        binary: invoke
            .binary
            .then(|| values.iter().map(|v| u8::from(*v >= 0.0)).collect()),
    });
    let answer = Answer {
        embedding: values,
        embeddings_by_type: by_type,
        input_text_token_count: tokens,
    };
    let body = serde_json::to_vec(&answer)?;
    let extra = format!(
        "x-amzn-RequestId: {}\r\nX-Amzn-Bedrock-Input-Token-Count: {tokens}\r\n",
        bedrock::request_id(shared)
    );
    send_json_with(shared, conn, 200, &body, extra.as_bytes(), ctx).await
}

/// JSON Schema's name for a value's type, as Bedrock's validator words it.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "Null",
        Value::Bool(_) => "Boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "Integer",
        Value::Number(_) => "BigDecimal",
        Value::String(_) => "String",
        Value::Array(_) => "JSONArray",
        Value::Object(_) => "JSONObject",
    }
}

fn extraneous(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(key) => Err(format!("#: extraneous key [{key}] is not permitted")),
    }
}

/// A valid body for `version`; `Err` is the schema violation, in Bedrock's words.
pub(crate) fn parse(body: &Value, version: Version) -> Result<Invoke<'_>, String> {
    let obj = body
        .as_object()
        .ok_or_else(|| format!("#: expected type: JSONObject, found: {}", type_name(body)))?;
    match version {
        Version::V1 => extraneous(obj, &["inputText"])?,
        Version::V2 => extraneous(
            obj,
            &["inputText", "dimensions", "normalize", "embeddingTypes"],
        )?,
    }
    let input_text = match obj.get("inputText") {
        None => return Err("#: required key [inputText] not found".into()),
        Some(Value::String(text)) => text.as_str(),
        Some(other) => {
            return Err(format!(
                "#/inputText: expected type: String, found: {}",
                type_name(other)
            ));
        }
    };
    let chars = input_text.chars().count();
    if chars == 0 {
        return Err("#/inputText: expected minLength: 1, actual: 0".into());
    }
    if chars > MAX_INPUT_CHARS {
        return Err(format!(
            "#/inputText: expected maxLength: {MAX_INPUT_CHARS}, actual: {chars}"
        ));
    }
    let dimensions = match obj.get("dimensions") {
        None => DIMENSIONS,
        Some(size) => size
            .as_u64()
            .filter(|n| V2_DIMENSIONS.contains(n))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("#/dimensions: {size} is not a valid enum value"))?,
    };
    if let Some(normalize) = obj.get("normalize")
        && !normalize.is_boolean()
    {
        return Err(format!(
            "#/normalize: expected type: Boolean, found: {}",
            type_name(normalize)
        ));
    }
    let (mut float, mut binary) = (false, false);
    if let Some(types) = obj.get("embeddingTypes") {
        let items = types.as_array().ok_or_else(|| {
            format!(
                "#/embeddingTypes: expected type: JSONArray, found: {}",
                type_name(types)
            )
        })?;
        if items.is_empty() || items.len() > 2 {
            return Err(format!(
                "#/embeddingTypes: expected between 1 and 2 items, found: {}",
                items.len()
            ));
        }
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some("float") => float = true,
                Some("binary") => binary = true,
                _ => {
                    return Err(format!(
                        "#/embeddingTypes/{i}: {item} is not a valid enum value"
                    ));
                }
            }
        }
    }
    Ok(Invoke {
        input_text,
        dimensions,
        float,
        binary,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn titan_models_are_named_by_version() {
        assert_eq!(version("amazon.titan-embed-text-v2:0"), Some(Version::V2));
        assert_eq!(version("amazon.titan-embed-text-v1"), Some(Version::V1));
        assert_eq!(
            version("arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0"),
            Some(Version::V2)
        );
        assert_eq!(version("cohere.embed-english-v3"), None);
        assert_eq!(version("amazon.titan-embed-image-v1"), None);
    }

    #[test]
    fn a_valid_body_is_read() {
        let body = json!({"inputText": "hi", "dimensions": 256, "normalize": true, "embeddingTypes": ["binary", "float"]});
        assert_eq!(
            parse(&body, Version::V2),
            Ok(Invoke {
                input_text: "hi",
                dimensions: 256,
                float: true,
                binary: true
            })
        );
        let v1 = json!({"inputText": "hi"});
        assert_eq!(
            parse(&v1, Version::V1).map(|i| i.dimensions),
            Ok(DIMENSIONS)
        );
    }

    #[test]
    fn schema_violations_are_named_as_bedrock_names_them() {
        for (body, version, needle) in [
            (
                json!({}),
                Version::V2,
                "#: required key [inputText] not found",
            ),
            (
                json!({"inputText": 1}),
                Version::V2,
                "#/inputText: expected type: String, found: Integer",
            ),
            (
                json!({"inputText": ""}),
                Version::V2,
                "#/inputText: expected minLength: 1",
            ),
            (
                json!({"inputText": "x".repeat(50_001)}),
                Version::V2,
                "expected maxLength: 50000",
            ),
            (
                json!({"inputText": ["a", "b"]}),
                Version::V2,
                "found: JSONArray",
            ),
            (
                json!({"inputText": "x", "dimensions": 8}),
                Version::V2,
                "#/dimensions: 8 is not a valid enum value",
            ),
            (
                json!({"inputText": "x", "dimensions": 256}),
                Version::V1,
                "#: extraneous key [dimensions]",
            ),
            (
                json!({"inputText": "x", "texts": []}),
                Version::V2,
                "#: extraneous key [texts]",
            ),
            (
                json!({"inputText": "x", "normalize": 1}),
                Version::V2,
                "#/normalize: expected type: Boolean",
            ),
            (
                json!({"inputText": "x", "embeddingTypes": ["int8"]}),
                Version::V2,
                "#/embeddingTypes/0",
            ),
            (
                json!({"inputText": "x", "embeddingTypes": []}),
                Version::V2,
                "between 1 and 2 items",
            ),
            (
                Value::Null,
                Version::V2,
                "#: expected type: JSONObject, found: Null",
            ),
        ] {
            match parse(&body, version) {
                Ok(_) => panic!("{body} was accepted"),
                Err(msg) => assert!(msg.contains(needle), "{body}: {msg}"),
            }
        }
    }
}
