//! OpenAI embeddings on Gemini's `batchEmbedContents`
//! (<https://ai.google.dev/api/embeddings#method:-models.batchembedcontents>):
//! `POST /v1beta/models/{model}:batchEmbedContents` with one `EmbedContentRequest` per input
//! (`model` repeated as `models/{model}`, the text as the content's one part, `dimensions` as
//! `outputDimensionality`), answered by `{"embeddings":[{"values":[..]}]}` in input order. The
//! answer counts no tokens: `usage` is 0. Gemini takes at most 100 requests per batch; beyond,
//! its own `400` comes back (the limit is Gemini's to change, so it is not copied here).

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{EmbeddingsRequest, Vectors};

/// The path of `model`'s `batchEmbedContents` (`model` checked path-safe by the caller).
pub fn path(model: &str) -> String {
    format!("/v1beta/models/{model}:batchEmbedContents")
}

/// The `batchEmbedContents` body for `request` on `model`.
pub fn to_batch_embed(request: &EmbeddingsRequest<'_>, model: &str) -> Value {
    let name = format!("models/{model}");
    let requests: Vec<Value> = request
        .inputs
        .iter()
        .map(|text| {
            let mut one = Map::new();
            one.insert("model".into(), json!(name));
            one.insert("content".into(), json!({ "parts": [{ "text": text }] }));
            if let Some(dimensions) = request.dimensions {
                one.insert("outputDimensionality".into(), json!(dimensions));
            }
            Value::Object(one)
        })
        .collect();
    json!({ "requests": requests })
}

#[derive(Deserialize)]
struct Answer {
    embeddings: Vec<ContentEmbedding>,
}

#[derive(Deserialize)]
struct ContentEmbedding {
    values: Vec<f64>,
}

/// The vectors of a `batchEmbedContents` answer; `None` when `body` is not one.
pub fn vectors(body: &[u8]) -> Option<Vectors> {
    let answer: Answer = serde_json::from_slice(body).ok()?;
    Some(Vectors {
        vectors: answer.embeddings.into_iter().map(|e| e.values).collect(),
        tokens: 0,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::super::{Api, Encoding, Expected, read, to_openai};
    use super::*;

    #[test]
    fn each_input_is_one_request_naming_the_model_with_its_dimensionality() {
        let openai = json!({"model": "x", "input": ["a", "b"], "dimensions": 64});
        let request = read(&openai, Api::Gemini).unwrap();
        assert_eq!(
            to_batch_embed(&request, "gemini-embedding-001"),
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 64},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 64},
            ]})
        );
        let hi = json!({"input": "hi"});
        let plain = read(&hi, Api::Gemini).unwrap();
        assert_eq!(
            to_batch_embed(&plain, "m"),
            json!({"requests": [{"model": "models/m", "content": {"parts": [{"text": "hi"}]}}]})
        );
        assert_eq!(path("m"), "/v1beta/models/m:batchEmbedContents");
    }

    #[test]
    fn the_answer_becomes_openais_list_without_usage() {
        let expected = Expected {
            api: Api::Gemini,
            inputs: 2,
            encoding: Encoding::Float,
        };
        let body = br#"{"embeddings":[{"values":[0.25,-0.5]},{"values":[1,0]}]}"#;
        let out: Value =
            serde_json::from_slice(&to_openai(body, "gemini-embedding-001", &expected).unwrap())
                .unwrap();
        assert_eq!(out["data"][1]["index"], 1);
        assert_eq!(out["data"][1]["embedding"], json!([1.0, 0.0]));
        assert_eq!(out["data"][0]["embedding"], json!([0.25, -0.5]));
        assert_eq!(out["model"], "gemini-embedding-001");
        assert_eq!(out["usage"], json!({"prompt_tokens": 0, "total_tokens": 0}));
        for bad in [
            &br#"{"embeddings":[{"values":[0.25]}]}"#[..],
            br#"{"embeddings":[{"values":["x"]},{"values":[]}]}"#,
            br#"{"embeddings":[{}, {}]}"#,
            br#"{"error":{"code":400}}"#,
            b"[",
        ] {
            assert!(to_openai(bad, "m", &expected).is_none());
        }
    }
}
