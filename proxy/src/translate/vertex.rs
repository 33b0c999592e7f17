//! Google Vertex AI: Gemini models through the Google publisher's `generateContent` and Claude
//! models through the Anthropic publisher's `rawPredict`, each in its own publisher's format, on
//! `/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}:{method}`.

use agentgateway_crds::proxy_config::VertexConfig;

use super::{anthropic, gemini};

/// The `anthropic_version` Vertex AI's Anthropic publisher wants in the body (instead of the
/// `anthropic-version` header).
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

/// Who publishes a model on Vertex AI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Publisher {
    /// Google's models (Gemini): Gemini's API.
    Google,
    /// Anthropic's Claude models: Anthropic's Messages format.
    Anthropic,
}

/// The publisher of `model`: `claude-*` models are Anthropic's, every other one Google's.
pub fn publisher(model: &str) -> Publisher {
    if model.starts_with("claude-") {
        Publisher::Anthropic
    } else {
        Publisher::Google
    }
}

/// Whether `model` can go into the path as it is: letters, digits, `-`, `.`, `_` and `@` (Claude
/// models are versioned `claude-3-5-haiku@20241022`), at most 128; anything else could change
/// the path or add a query.
pub fn is_path_safe(model: &str) -> bool {
    !model.is_empty()
        && model.len() <= 128
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'@'))
}

/// The path of `model`'s method for a stream or not.
pub fn path(vertex: &VertexConfig, model: &str, stream: bool) -> String {
    let (publisher, method) = match (publisher(model), stream) {
        (Publisher::Google, false) => ("google", "generateContent"),
        (Publisher::Google, true) => ("google", "streamGenerateContent"),
        (Publisher::Anthropic, false) => ("anthropic", "rawPredict"),
        (Publisher::Anthropic, true) => ("anthropic", "streamRawPredict"),
    };
    format!(
        "/v1/projects/{}/locations/{}/publishers/{publisher}/models/{model}:{method}",
        vertex.project_id, vertex.region
    )
}

/// Turns an Anthropic Messages request into the Anthropic publisher's: the model is in the path,
/// the version in the body.
pub fn anthropic_body(mut body: serde_json::Value) -> serde_json::Value {
    if let Some(object) = body.as_object_mut() {
        object.remove("model");
        object.insert("anthropic_version".into(), ANTHROPIC_VERSION.into());
    }
    body
}

/// An error answer as OpenAI's: Anthropic's shape (`{"type":"error",...}`) from the Anthropic
/// publisher, Google's from Vertex AI itself (authentication, quota, unknown model).
pub fn to_openai_error(body: &[u8]) -> Vec<u8> {
    let anthropic_shaped = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v.get("type").and_then(serde_json::Value::as_str) == Some("error"));
    if anthropic_shaped {
        anthropic::response::to_openai_error(body)
    } else {
        gemini::response::to_openai_error(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vertex() -> VertexConfig {
        VertexConfig {
            project_id: "my-project".into(),
            region: "europe-west4".into(),
        }
    }

    #[test]
    fn the_model_decides_the_publisher_and_the_method() {
        assert_eq!(
            path(&vertex(), "gemini-2.0-flash", false),
            "/v1/projects/my-project/locations/europe-west4/publishers/google/models/gemini-2.0-flash:generateContent"
        );
        assert_eq!(
            path(&vertex(), "gemini-2.0-flash", true),
            "/v1/projects/my-project/locations/europe-west4/publishers/google/models/gemini-2.0-flash:streamGenerateContent"
        );
        assert_eq!(
            path(&vertex(), "claude-3-5-haiku@20241022", false),
            "/v1/projects/my-project/locations/europe-west4/publishers/anthropic/models/claude-3-5-haiku@20241022:rawPredict"
        );
        assert_eq!(
            path(&vertex(), "claude-sonnet-4@20250514", true),
            "/v1/projects/my-project/locations/europe-west4/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict"
        );
    }

    #[test]
    fn only_path_safe_models_go_into_the_path() {
        assert!(is_path_safe("claude-3-5-haiku@20241022"));
        for bad in ["", "a/b", "m?alt=json", "m:rawPredict#", "a b", "..%2F"] {
            assert!(!is_path_safe(bad), "{bad}");
        }
        assert!(!is_path_safe(&"m".repeat(129)));
    }

    #[test]
    fn the_anthropic_body_moves_the_model_to_the_path_and_names_the_version() {
        let body = anthropic_body(serde_json::json!({"model": "claude-x", "max_tokens": 5}));
        assert_eq!(
            body,
            serde_json::json!({"max_tokens": 5, "anthropic_version": "vertex-2023-10-16"})
        );
    }

    #[test]
    fn errors_in_either_shape_become_openai_errors_with_the_message() {
        let google = br#"{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}"#;
        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        for (body, message) in [
            (
                &google[..],
                "Request had invalid authentication credentials.",
            ),
            (&anthropic[..], "Overloaded"),
        ] {
            let error: serde_json::Value = serde_json::from_slice(&to_openai_error(body)).unwrap();
            assert_eq!(error["error"]["message"], message);
        }
    }
}
