//! The request one attempt sends to a provider of another API (every kind but `openai` and
//! `azureopenai`): the client's OpenAI request translated into the provider's body, path and
//! query. Chat completions translate on every such kind; embeddings on the kinds that have an
//! embeddings API (Gemini, Vertex AI's Google models, Amazon Titan on Bedrock). Everything else
//! is `400 unsupported_operation`, before anything is sent.

use agentgateway_crds::proxy_config::{ProviderKind, VertexConfig};
use bytes::Bytes;

use crate::attempts::Payload;
use crate::openai::error::ProxyError;
use crate::openai::operation::Operation;
use crate::openai::request::JsonRequest;
use crate::provider::ProviderRuntime;
use crate::translate::embeddings::{self, Api, Expected};
use crate::translate::{anthropic, bedrock, gemini, vertex};

/// A request translated for a provider of another API: its body, path and query.
pub struct Translated {
    /// The provider's body.
    pub body: Bytes,
    /// Whether the proxy asked for the usage chunk the client did not.
    pub injects_usage: bool,
    /// Whether the provider is asked for a stream.
    pub stream: bool,
    /// The provider's path.
    pub path: String,
    /// The provider's query, if any.
    pub query: Option<String>,
    /// What an embeddings answer must hold (`None` for a chat completion).
    pub embeddings: Option<Expected>,
}

/// The client's request in the provider's API: a chat completion (the client's
/// `stream_options.include_usage` decides whether the usage chunk the translation always makes
/// reaches it) or embeddings.
pub fn translated(
    provider: &ProviderRuntime,
    payload: &Payload,
    operation: Operation,
) -> Result<Translated, ProxyError> {
    let kind = provider.config.kind;
    let Payload::Json(json) = payload else {
        return Err(unsupported_operation(operation, kind));
    };
    let embeddings = match operation {
        Operation::ChatCompletions => false,
        Operation::Embeddings if has_embeddings(kind) => true,
        Operation::Messages if kind == ProviderKind::VertexAi => false,
        _ => return Err(unsupported_operation(operation, kind)),
    };
    let model = json
        .effective_model(provider.config.model.as_deref())
        .ok_or_else(|| {
            ProxyError::bad_request(
                "model_required",
                "you must provide a model parameter (the backend's provider sets none)",
            )
        })?;
    let request: serde_json::Value = serde_json::from_slice(json.body()).map_err(|e| {
        ProxyError::bad_request(
            "invalid_json",
            format!("the request body is not a valid JSON object: {e}"),
        )
    })?;
    if operation == Operation::Messages {
        claude_on_vertex(provider, json, model, request)
    } else if embeddings {
        embeddings_request(provider, model, &request)
    } else {
        chat_request(provider, json, model, &request)
    }
}

/// Whether providers of `kind` have an embeddings API the proxy translates to.
fn has_embeddings(kind: ProviderKind) -> bool {
    matches!(
        kind,
        ProviderKind::Gemini | ProviderKind::VertexAi | ProviderKind::Bedrock
    )
}

fn chat_request(
    provider: &ProviderRuntime,
    json: &JsonRequest,
    model: &str,
    request: &serde_json::Value,
) -> Result<Translated, ProxyError> {
    let client_wants_usage = request
        .pointer("/stream_options/include_usage")
        .and_then(serde_json::Value::as_bool)
        == Some(true);
    let custom_path = provider.config.path.clone();
    let (body, path, query) = match provider.config.kind {
        ProviderKind::Bedrock => (
            bedrock::request::to_converse_request(request)?,
            custom_path.unwrap_or_else(|| bedrock::converse_path(model, json.stream)),
            None,
        ),
        ProviderKind::VertexAi => {
            let vertex_config = vertex_target(provider, model)?;
            let path =
                custom_path.unwrap_or_else(|| vertex::path(vertex_config, model, json.stream));
            match vertex::publisher(model) {
                vertex::Publisher::Google => (
                    gemini::request::to_generate_content(request)?,
                    path,
                    json.stream.then(|| "alt=sse".to_string()),
                ),
                vertex::Publisher::Anthropic => (
                    vertex::anthropic_body(anthropic::request::to_messages_request(
                        request, model,
                    )?),
                    path,
                    None,
                ),
            }
        }
        ProviderKind::Gemini => {
            gemini_model(model)?;
            (
                gemini::request::to_generate_content(request)?,
                custom_path.unwrap_or_else(|| gemini::path(model, json.stream)),
                json.stream.then(|| "alt=sse".to_string()),
            )
        }
        _ => (
            anthropic::request::to_messages_request(request, model)?,
            custom_path.unwrap_or_else(|| anthropic::MESSAGES_PATH.to_string()),
            None,
        ),
    };
    Ok(Translated {
        body: encode(&body)?,
        injects_usage: json.stream && !client_wants_usage,
        stream: json.stream,
        path,
        query,
        embeddings: None,
    })
}

/// A client's Anthropic Messages request for Claude on Vertex AI: Anthropic's body as it is,
/// with the model in the path and the Vertex API version in the body.
fn claude_on_vertex(
    provider: &ProviderRuntime,
    json: &JsonRequest,
    model: &str,
    request: serde_json::Value,
) -> Result<Translated, ProxyError> {
    let vertex_config = vertex_target(provider, model)?;
    Ok(Translated {
        body: encode(&vertex::anthropic_body(request))?,
        injects_usage: false,
        stream: json.stream,
        path: provider
            .config
            .path
            .clone()
            .unwrap_or_else(|| vertex::path(vertex_config, model, json.stream)),
        query: None,
        embeddings: None,
    })
}

/// Embeddings on the provider's embeddings API. The provider's `path` (a chat completions
/// override) does not apply; a `stream` in the client's body is ignored, as OpenAI does.
fn embeddings_request(
    provider: &ProviderRuntime,
    model: &str,
    request: &serde_json::Value,
) -> Result<Translated, ProxyError> {
    let kind = provider.config.kind;
    let (api, path) = match kind {
        ProviderKind::Gemini => {
            gemini_model(model)?;
            (Api::Gemini, embeddings::gemini::path(model))
        }
        ProviderKind::VertexAi => {
            let vertex_config = vertex_target(provider, model)?;
            if vertex::publisher(model) == vertex::Publisher::Anthropic {
                return Err(ProxyError::bad_request(
                    "unsupported_operation",
                    "embeddings are not available on Claude models (Anthropic has no embeddings API): use a Google embedding model on Vertex AI",
                ));
            }
            (Api::Vertex, embeddings::vertex::path(vertex_config, model))
        }
        ProviderKind::Bedrock => (Api::Titan, bedrock::invoke_path(model)),
        _ => return Err(unsupported_operation(Operation::Embeddings, kind)),
    };
    let read = embeddings::read(request, api)?;
    let body = match api {
        Api::Gemini => embeddings::gemini::to_batch_embed(&read, model),
        Api::Vertex => embeddings::vertex::to_predict(&read),
        Api::Titan => embeddings::titan::to_invoke(&read)?,
    };
    Ok(Translated {
        body: encode(&body)?,
        injects_usage: false,
        stream: false,
        path,
        query: None,
        embeddings: Some(Expected::of(api, &read)),
    })
}

/// A Gemini model, checked to go into the path as it is.
fn gemini_model(model: &str) -> Result<(), ProxyError> {
    if gemini::is_path_safe(model) {
        Ok(())
    } else {
        Err(ProxyError::bad_request(
            "invalid_model",
            "a Gemini model is letters, digits, '-', '.' and '_' (at most 128)",
        ))
    }
}

/// A `vertexai` provider's project and region, with `model` checked to go into the path.
fn vertex_target<'a>(
    provider: &'a ProviderRuntime,
    model: &str,
) -> Result<&'a VertexConfig, ProxyError> {
    let vertex_config = provider.config.vertex.as_ref().ok_or_else(|| {
        ProxyError::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "provider_misconfigured",
            "the vertexai provider has no project and region".into(),
        )
    })?;
    if !vertex::is_path_safe(model) {
        return Err(ProxyError::bad_request(
            "invalid_model",
            "a Vertex AI model is letters, digits, '-', '.', '_' and '@' (at most 128)",
        ));
    }
    Ok(vertex_config)
}

fn encode(body: &serde_json::Value) -> Result<Bytes, ProxyError> {
    serde_json::to_vec(body).map(Bytes::from).map_err(|e| {
        ProxyError::new(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "translation_failed",
            format!("failed to encode the provider's request: {e}"),
        )
    })
}

/// A `400` for an operation the API of a provider of `kind` does not have.
fn unsupported_operation(operation: Operation, kind: ProviderKind) -> ProxyError {
    let serves = if has_embeddings(kind) {
        "chat completions and embeddings"
    } else {
        "chat completions only"
    };
    ProxyError::bad_request(
        "unsupported_operation",
        format!(
            "{} is not available on this backend's provider (it serves {serves})",
            operation.as_str()
        ),
    )
}
