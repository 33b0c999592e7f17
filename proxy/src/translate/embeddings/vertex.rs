//! OpenAI embeddings on Vertex AI's Google publisher embedding models (`text-embedding-005`,
//! `gemini-embedding-001`, ...) through `predict`
//! (<https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api>):
//! `POST .../publishers/google/models/{model}:predict` with one instance `{"content": text}` per
//! input and `dimensions` as `parameters.outputDimensionality`, answered by
//! `{"predictions":[{"embeddings":{"values":[..],"statistics":{"token_count":N}}}]}` in input
//! order; `usage` is the sum of the `token_count`s. How many instances one call may hold is the
//! model's own limit (250 for `text-embedding-005`, 1 for `gemini-embedding-001`): beyond it,
//! Vertex AI's `400` comes back. Claude models have no embeddings: the caller refuses them.

use agentgateway_crds::proxy_config::VertexConfig;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{EmbeddingsRequest, Vectors, token_count};

/// The path of `model`'s `predict` (`model` checked path-safe by the caller).
pub fn path(vertex: &VertexConfig, model: &str) -> String {
    format!(
        "/v1/projects/{}/locations/{}/publishers/google/models/{model}:predict",
        vertex.project_id, vertex.region
    )
}

/// The `predict` body for `request`.
pub fn to_predict(request: &EmbeddingsRequest<'_>) -> Value {
    let instances: Vec<Value> = request
        .inputs
        .iter()
        .map(|text| json!({ "content": text }))
        .collect();
    let mut body = json!({ "instances": instances });
    if let Some(dimensions) = request.dimensions {
        body["parameters"] = json!({ "outputDimensionality": dimensions });
    }
    body
}

#[derive(Deserialize)]
struct Answer {
    predictions: Vec<Prediction>,
}

#[derive(Deserialize)]
struct Prediction {
    embeddings: Embeddings,
}

#[derive(Deserialize)]
struct Embeddings {
    values: Vec<f64>,
    #[serde(default)]
    statistics: Option<Statistics>,
}

#[derive(Deserialize)]
struct Statistics {
    #[serde(default, deserialize_with = "token_count")]
    token_count: u64,
}

/// The vectors and token count of a `predict` answer; `None` when `body` is not one.
pub fn vectors(body: &[u8]) -> Option<Vectors> {
    let answer: Answer = serde_json::from_slice(body).ok()?;
    let mut tokens = 0u64;
    let vectors = answer
        .predictions
        .into_iter()
        .map(|p| {
            let count = p.embeddings.statistics.map_or(0, |s| s.token_count);
            tokens = tokens.saturating_add(count);
            p.embeddings.values
        })
        .collect();
    Some(Vectors { vectors, tokens })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::super::{Api, Encoding, Expected, read, to_openai};
    use super::*;

    #[test]
    fn inputs_are_instances_and_dimensions_a_parameter() {
        let vertex = VertexConfig {
            project_id: "p".into(),
            region: "europe-west4".into(),
        };
        assert_eq!(
            path(&vertex, "text-embedding-005"),
            "/v1/projects/p/locations/europe-west4/publishers/google/models/text-embedding-005:predict"
        );
        let openai = json!({"input": ["a", "b"], "dimensions": 256});
        assert_eq!(
            to_predict(&read(&openai, Api::Vertex).unwrap()),
            json!({"instances": [{"content": "a"}, {"content": "b"}], "parameters": {"outputDimensionality": 256}})
        );
        let a = json!({"input": "a"});
        let plain = read(&a, Api::Vertex).unwrap();
        assert_eq!(to_predict(&plain), json!({"instances": [{"content": "a"}]}));
    }

    #[test]
    fn usage_is_the_sum_of_the_token_counts() {
        let expected = Expected {
            api: Api::Vertex,
            inputs: 2,
            encoding: Encoding::Float,
        };
        let body = br#"{"predictions":[
            {"embeddings":{"values":[0.5],"statistics":{"token_count":6,"truncated":false}}},
            {"embeddings":{"values":[-0.5],"statistics":{"token_count":4.0,"truncated":false}}}],
            "metadata":{"billableCharacterCount":20}}"#;
        let out: Value =
            serde_json::from_slice(&to_openai(body, "text-embedding-005", &expected).unwrap())
                .unwrap();
        assert_eq!(
            out["usage"],
            json!({"prompt_tokens": 10, "total_tokens": 10})
        );
        assert_eq!(out["data"][1]["embedding"], json!([-0.5]));
        // Hostile counts saturate; missing statistics count nothing.
        let body = br#"{"predictions":[
            {"embeddings":{"values":[0.5],"statistics":{"token_count":18446744073709551615}}},
            {"embeddings":{"values":[0.5],"statistics":{"token_count":1e30}}}]}"#;
        let out: Value = serde_json::from_slice(&to_openai(body, "m", &expected).unwrap()).unwrap();
        assert_eq!(out["usage"]["prompt_tokens"], u64::MAX);
        let body =
            br#"{"predictions":[{"embeddings":{"values":[]}},{"embeddings":{"values":[1]}}]}"#;
        let out: Value = serde_json::from_slice(&to_openai(body, "m", &expected).unwrap()).unwrap();
        assert_eq!(out["usage"]["prompt_tokens"], 0);
        assert!(to_openai(br#"{"predictions":[{"embeddings":{}}]}"#, "m", &expected).is_none());
    }
}
