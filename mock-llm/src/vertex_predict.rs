//! `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:predict` (also under
//! `/v1beta1/`): Vertex AI's text embeddings API
//! (<https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api>),
//! past Vertex's token check ([`crate::vertex::handle`]).
//!
//! * The model must be an embedding model (its id holds `embedding`: `text-embedding-005`,
//!   `gemini-embedding-001`, ...); `predict` on another is a 400.
//! * The body is `{"instances": [{"content": text, "task_type"?, "title"?}], "parameters"?:
//!   {"autoTruncate"?: bool, "outputDimensionality"?: 1..=3072}}` with 1 to 250 instances; any
//!   other field, or a wrong type, is a 400 `INVALID_ARGUMENT` naming it.
//! * The answer is `{"predictions":[{"embeddings":{"statistics":{"truncated":false,
//!   "token_count":N},"values":[..]}}],"metadata":{"billableCharacterCount":C}}`, one
//!   prediction per instance in order: the vector of `content` as the OpenAI route computes it
//!   ([`crate::embeddings::vector`]), 8 values unless `outputDimensionality` asks for another
//!   size; `token_count` is the content's words, `billableCharacterCount` its characters, summed.
//! * Errors and faults are Google's shape, as on the other Vertex AI routes.

use std::io;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::embeddings::{DIMENSIONS, vector};
use crate::generate_content::send_error;
use crate::handlers::{Ctx, ErrorReply, Flow, send_json_body};
use crate::http::{Conn, ProviderHead};
use crate::openai::count_words;
use crate::server::Shared;
use crate::vertex::call_of;

/// Instances one call may hold (`text-embedding-005`'s limit).
const MAX_INSTANCES: usize = 250;
/// The largest `outputDimensionality` (`gemini-embedding-001`'s full size).
const MAX_DIMENSIONALITY: u64 = 3072;
const INSTANCE_FIELDS: &[&str] = &["content", "task_type", "title"];
const PARAMETER_FIELDS: &[&str] = &["autoTruncate", "outputDimensionality"];
const TASK_TYPES: &[&str] = &[
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
];

/// A valid `predict` request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Predict<'a> {
    pub contents: Vec<&'a str>,
    pub dimensions: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    predictions: Vec<Prediction>,
    metadata: Metadata,
}

#[derive(Serialize)]
struct Prediction {
    embeddings: Embeddings,
}

#[derive(Serialize)]
struct Embeddings {
    statistics: Statistics,
    values: Vec<f32>,
}

#[derive(Serialize)]
struct Statistics {
    truncated: bool,
    token_count: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    billable_character_count: usize,
}

pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    head: &ProviderHead,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    let model = call_of(head.path()).map(|c| c.model).unwrap_or_default();
    if !model.contains("embedding") {
        let msg = format!(
            "mock-llm serves predict for Google's embedding models only (text-embedding-005, \
             gemini-embedding-001, ...), not {model}"
        );
        return send_error(shared, conn, reply(&msg), ctx).await;
    }
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("Invalid JSON payload received. {e}");
            return send_error(shared, conn, reply(&msg), ctx).await;
        }
    };
    let predict = match parse(&value) {
        Ok(p) => p,
        Err(msg) => return send_error(shared, conn, reply(&msg), ctx).await,
    };
    let answer = Answer {
        predictions: predict
            .contents
            .iter()
            .map(|content| Prediction {
                embeddings: Embeddings {
                    statistics: Statistics {
                        truncated: false,
                        token_count: count_words(content),
                    },
                    values: vector(content.as_bytes(), predict.dimensions),
                },
            })
            .collect(),
        metadata: Metadata {
            billable_character_count: predict.contents.iter().map(|c| c.chars().count()).sum(),
        },
    };
    let body = serde_json::to_vec(&answer)?;
    send_json_body(shared, conn, 200, &body, ctx).await
}

fn reply(message: &str) -> ErrorReply<'_> {
    ErrorReply::new(400, message, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
}

fn unknown(obj: &Map<String, Value>, allowed: &[&str], path: &str) -> Result<(), String> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(key) => Err(format!("{path}: unknown field \"{key}\".")),
    }
}

/// The contents and size of a valid `predict` body; `Err` is the 400's message.
pub(crate) fn parse(body: &Value) -> Result<Predict<'_>, String> {
    let obj = body
        .as_object()
        .ok_or("Invalid JSON payload received. Expected an object.")?;
    unknown(obj, &["instances", "parameters"], "request")?;
    let instances = match obj.get("instances") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            return Err("instances: at least one instance is required.".into());
        }
        Some(_) => return Err("instances: must be a list.".into()),
    };
    if instances.len() > MAX_INSTANCES {
        return Err(format!(
            "instances: at most {MAX_INSTANCES} instances are allowed per prediction, got {}.",
            instances.len()
        ));
    }
    let contents = instances
        .iter()
        .enumerate()
        .map(|(i, instance)| {
            let path = format!("instances[{i}]");
            let obj = instance
                .as_object()
                .ok_or_else(|| format!("{path}: must be an object."))?;
            unknown(obj, INSTANCE_FIELDS, &path)?;
            if let Some(task) = obj.get("task_type")
                && !task.as_str().is_some_and(|t| TASK_TYPES.contains(&t))
            {
                return Err(format!("{path}.task_type: {task} is not a task type."));
            }
            if let Some(title) = obj.get("title")
                && !title.is_string()
            {
                return Err(format!("{path}.title: must be a string."));
            }
            match obj.get("content") {
                Some(Value::String(text)) => Ok(text.as_str()),
                None | Some(Value::Null) => Err(format!("{path}.content: is required.")),
                Some(_) => Err(format!("{path}.content: must be a string.")),
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut dimensions = DIMENSIONS;
    match obj.get("parameters") {
        None | Some(Value::Null) => {}
        Some(Value::Object(parameters)) => {
            unknown(parameters, PARAMETER_FIELDS, "parameters")?;
            if let Some(truncate) = parameters.get("autoTruncate")
                && !truncate.is_boolean()
            {
                return Err("parameters.autoTruncate: must be a boolean.".into());
            }
            if let Some(size) = parameters.get("outputDimensionality") {
                dimensions = size
                    .as_u64()
                    .filter(|n| (1..=MAX_DIMENSIONALITY).contains(n))
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| {
                        format!(
                            "parameters.outputDimensionality: must be an integer in [1, {MAX_DIMENSIONALITY}], got {size}."
                        )
                    })?;
            }
        }
        Some(_) => return Err("parameters: must be an object.".into()),
    }
    Ok(Predict {
        contents,
        dimensions,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn instances_and_parameters_are_read() {
        let body = json!({"instances": [{"content": "a", "task_type": "RETRIEVAL_QUERY", "title": "t"}, {"content": "b"}],
            "parameters": {"autoTruncate": false, "outputDimensionality": 32}});
        assert_eq!(
            parse(&body),
            Ok(Predict {
                contents: vec!["a", "b"],
                dimensions: 32
            })
        );
        let plain = json!({"instances": [{"content": "a"}]});
        assert_eq!(parse(&plain).map(|p| p.dimensions), Ok(DIMENSIONS));
    }

    #[test]
    fn invalid_requests_name_the_field() {
        let many: Vec<Value> = (0..251).map(|_| json!({"content": "x"})).collect();
        for (body, needle) in [
            (json!({}), "instances: at least one"),
            (json!({"instances": []}), "instances: at least one"),
            (json!({"instances": many}), "at most 250 instances"),
            (
                json!({"instances": [{"content": "x"}], "x": 1}),
                "request: unknown field \"x\"",
            ),
            (
                json!({"instances": [{"text": "x"}]}),
                "instances[0]: unknown field \"text\"",
            ),
            (
                json!({"instances": [{}]}),
                "instances[0].content: is required",
            ),
            (
                json!({"instances": [{"content": 1}]}),
                "instances[0].content: must be a string",
            ),
            (
                json!({"instances": [{"content": "x", "task_type": "X"}]}),
                "instances[0].task_type",
            ),
            (
                json!({"instances": [{"content": "x"}], "parameters": {"outputDimensionality": 0}}),
                "parameters.outputDimensionality",
            ),
            (
                json!({"instances": [{"content": "x"}], "parameters": {"dimensions": 8}}),
                "parameters: unknown field",
            ),
            (
                json!({"instances": [{"content": "x"}], "parameters": {"autoTruncate": "yes"}}),
                "parameters.autoTruncate",
            ),
            (json!("x"), "Expected an object"),
        ] {
            match parse(&body) {
                Ok(_) => panic!("{body} was accepted"),
                Err(msg) => assert!(msg.contains(needle), "{body}: {msg}"),
            }
        }
    }
}
