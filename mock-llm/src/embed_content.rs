//! `POST /v1beta/models/{model}:batchEmbedContents` (also under `/v1/`): Gemini's embeddings
//! (<https://ai.google.dev/api/embeddings>), past the Gemini routes' key check
//! ([`crate::generate_content::handle`]).
//!
//! * The body is a `BatchEmbedContentsRequest`, validated as the API does and reported in its
//!   words (400 `INVALID_ARGUMENT`, the field named by its proto path): `requests` 1 to 100 (`at
//!   most 100 requests can be in one batch`), each an `EmbedContentRequest` whose `model` is the
//!   URL's (`models/{model}`), whose `content` has at least one part, and whose optional
//!   `taskType`, `title` and `outputDimensionality` (1 to 3072) are well typed. mock-llm embeds
//!   text parts only (a part holding anything else is refused, naming it).
//! * The answer is `{"embeddings":[{"values":[..]}]}`, one per request in order: the vector of
//!   the content's text (parts joined by `\n`) as the OpenAI route computes it
//!   ([`crate::embeddings::vector`]), 8 values unless `outputDimensionality` asks for another
//!   size. Like Gemini's, the answer counts no tokens.
//! * Errors and faults are Google's shape, as on `generateContent`.

use std::io;

use serde::Serialize;
use serde_json::Value;

use crate::embeddings::{DIMENSIONS, vector};
use crate::gemini::{
    self, CONTENT_FIELDS, Check, PART_FIELDS, at, field, idx, known, want_enum, want_int,
    want_list, want_msg, want_str,
};
use crate::generate_content::send_error;
use crate::handlers::{Ctx, ErrorReply, Flow, send_json_body};
use crate::http::{Conn, ProviderHead};
use crate::server::Shared;

/// Requests one batch may hold, as Gemini allows.
const MAX_REQUESTS: usize = 100;
/// The largest `outputDimensionality` (`gemini-embedding-001`'s full size).
const MAX_DIMENSIONALITY: i64 = 3072;
const REQUEST_FIELDS: &[&str] = &[
    "model",
    "content",
    "taskType",
    "title",
    "outputDimensionality",
];
const TASK_TYPES: &[&str] = &[
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
];

/// One text to embed, at its size.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Embed {
    pub text: String,
    pub dimensions: usize,
}

#[derive(Serialize)]
struct Answer {
    embeddings: Vec<ContentEmbedding>,
}

#[derive(Serialize)]
struct ContentEmbedding {
    values: Vec<f32>,
}

pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    head: &ProviderHead,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    // An empty body is an empty request, which then lacks `requests`.
    let body = if body.trim_ascii().is_empty() {
        &b"{}"[..]
    } else {
        body
    };
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("Invalid JSON payload received. {e}");
            return send_error(shared, conn, reply(&msg), ctx).await;
        }
    };
    let embeds = match parse_batch(&value, gemini::model_of(head.path())) {
        Ok(embeds) => embeds,
        Err(msg) => return send_error(shared, conn, reply(&msg), ctx).await,
    };
    let answer = Answer {
        embeddings: embeds
            .iter()
            .map(|e| ContentEmbedding {
                values: vector(e.text.as_bytes(), e.dimensions),
            })
            .collect(),
    };
    let body = serde_json::to_vec(&answer)?;
    send_json_body(shared, conn, 200, &body, ctx).await
}

fn reply(message: &str) -> ErrorReply<'_> {
    ErrorReply::new(400, message, "INVALID_ARGUMENT", "INVALID_ARGUMENT")
}

/// A validator message: `* BatchEmbedContentsRequest.PATH: MESSAGE\n`.
fn invalid(path: &str, msg: &str) -> String {
    format!("* BatchEmbedContentsRequest.{path}: {msg}\n")
}

/// The texts of a valid `BatchEmbedContentsRequest` on `model` (the URL's); `Err` is the 400's
/// message.
pub(crate) fn parse_batch(body: &Value, model: &str) -> Check<Vec<Embed>> {
    let Some(obj) = body.as_object() else {
        return Err(format!(
            "Invalid JSON payload received. Expected an object, got {body}."
        ));
    };
    known(obj, &["requests"], "")?;
    let requests = match field(obj, "requests") {
        Some(v) => want_list(v, "requests", "EmbedContentRequest")?,
        None => &[],
    };
    if requests.is_empty() {
        return Err(invalid("requests", "requests is not specified"));
    }
    if requests.len() > MAX_REQUESTS {
        return Err(invalid(
            "requests",
            &format!("at most {MAX_REQUESTS} requests can be in one batch"),
        ));
    }
    let batch_model = format!("models/{model}");
    requests
        .iter()
        .enumerate()
        .map(|(i, request)| embed_request(request, &idx("requests", i), &batch_model))
        .collect()
}

fn embed_request(v: &Value, path: &str, batch_model: &str) -> Check<Embed> {
    let obj = want_msg(v, path, "EmbedContentRequest")?;
    known(obj, REQUEST_FIELDS, path)?;
    let model_path = at(path, "model");
    let model = match field(obj, "model") {
        Some(m) => want_str(m, &model_path)?,
        None => return Err(invalid(&model_path, "model is not specified")),
    };
    if model != batch_model {
        return Err(invalid(
            &model_path,
            &format!("the model of every request must be the batch's ({batch_model}), not {model}"),
        ));
    }
    let content_path = at(path, "content");
    let content =
        field(obj, "content").ok_or_else(|| invalid(&content_path, "content is not specified"))?;
    let text = content_text(content, &content_path)?;
    if let Some(task) = field(obj, "taskType") {
        want_enum(task, &at(path, "taskType"), "TaskType", TASK_TYPES)?;
    }
    if let Some(title) = field(obj, "title") {
        want_str(title, &at(path, "title"))?;
    }
    let dimensions = match field(obj, "outputDimensionality") {
        None => DIMENSIONS,
        Some(n) => {
            let size_path = at(path, "outputDimensionality");
            let n = want_int(n, &size_path)?;
            if !(1..=MAX_DIMENSIONALITY).contains(&n) {
                return Err(invalid(
                    &size_path,
                    &format!(
                        "output_dimensionality must be in the range [1, {MAX_DIMENSIONALITY}]."
                    ),
                ));
            }
            usize::try_from(n).unwrap_or(DIMENSIONS)
        }
    };
    Ok(Embed { text, dimensions })
}

/// The text parts of a `Content`, joined by `\n`.
fn content_text(v: &Value, path: &str) -> Check<String> {
    let obj = want_msg(v, path, "Content")?;
    known(obj, CONTENT_FIELDS, path)?;
    let parts_path = at(path, "parts");
    let parts = match field(obj, "parts") {
        Some(p) => want_list(p, &parts_path, "Part")?,
        None => &[],
    };
    if parts.is_empty() {
        return Err(invalid(&parts_path, "contents.parts must not be empty."));
    }
    let mut texts = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let part_path = idx(&parts_path, j);
        let part = want_msg(part, &part_path, "Part")?;
        known(part, PART_FIELDS, &part_path)?;
        match field(part, "text") {
            Some(text) => texts.push(want_str(text, &at(&part_path, "text"))?),
            None => {
                return Err(invalid(&part_path, "mock-llm embeds text parts only."));
            }
        }
    }
    Ok(texts.join("\n"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request(text: &str) -> Value {
        json!({"model": "models/m", "content": {"parts": [{"text": text}]}})
    }

    #[test]
    fn a_valid_batch_names_its_texts_and_sizes() {
        let body = json!({"requests": [
            request("a"),
            {"model": "models/m", "content": {"role": "user", "parts": [{"text": "b"}, {"text": "c"}]},
             "task_type": "RETRIEVAL_DOCUMENT", "title": "t", "outputDimensionality": 16},
        ]});
        assert_eq!(
            parse_batch(&body, "m"),
            Ok(vec![
                Embed {
                    text: "a".into(),
                    dimensions: DIMENSIONS
                },
                Embed {
                    text: "b\nc".into(),
                    dimensions: 16
                },
            ])
        );
    }

    #[test]
    fn invalid_batches_name_the_field() {
        let many: Vec<Value> = (0..101).map(|_| request("x")).collect();
        for (body, needle) in [
            (json!({}), "requests: requests is not specified"),
            (
                json!({"requests": []}),
                "requests: requests is not specified",
            ),
            (
                json!({"requests": many}),
                "at most 100 requests can be in one batch",
            ),
            (
                json!({"requests": [request("x")], "x": 1}),
                "Unknown name \"x\"",
            ),
            (
                json!({"requests": [{"content": {"parts": [{"text": "x"}]}}]}),
                "requests[0].model: model is not specified",
            ),
            (
                json!({"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]}),
                "requests[0].model: the model",
            ),
            (
                json!({"requests": [{"model": "models/m"}]}),
                "requests[0].content: content is not specified",
            ),
            (
                json!({"requests": [{"model": "models/m", "content": {"parts": []}}]}),
                "requests[0].content.parts: contents.parts must not be empty",
            ),
            (
                json!({"requests": [{"model": "models/m", "content": {"parts": [{"inlineData": {}}]}}]}),
                "requests[0].content.parts[0]: mock-llm embeds text parts only",
            ),
            (
                json!({"requests": [{"model": "models/m", "content": {"parts": [{"text": 5}]}}]}),
                "'requests[0].content.parts[0].text' (TYPE_STRING)",
            ),
            (
                json!({"requests": [{"model": "models/m", "content": {"parts": [{"text": "x"}]}, "outputDimensionality": 0}]}),
                "requests[0].output_dimensionality: output_dimensionality must be in the range",
            ),
            (
                json!({"requests": [{"model": "models/m", "content": {"parts": [{"text": "x"}]}, "outputDimensionality": 3073}]}),
                "must be in the range [1, 3072]",
            ),
            (
                json!({"requests": [{"model": "models/m", "content": {"parts": [{"text": "x"}]}, "taskType": "SEARCH"}]}),
                "'requests[0].task_type'",
            ),
            (json!([1]), "Expected an object"),
        ] {
            match parse_batch(&body, "m") {
                Ok(_) => panic!("{body} was accepted"),
                Err(msg) => assert!(msg.contains(needle), "{body}: {msg}"),
            }
        }
    }
}
