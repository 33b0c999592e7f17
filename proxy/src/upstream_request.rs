//! The request one attempt sends to one provider: the provider's URI for the operation, the
//! client's headers as the provider may see them, the provider's credential, and the body with the
//! provider's model spliced in (or, for a provider of another API, the body and target
//! [`crate::translated_request`] makes).

use agentgateway_crds::proxy_config::{AzureConfig, ProviderKind};
use http::header::{self, HeaderValue};
use http::{Method, Request};

use crate::attempts::Payload;
use crate::headers::upstream_headers;
use crate::openai::error::ProxyError;
use crate::openai::operation::Operation;
use crate::outcome::Credential;
use crate::provider::{CloudAuth, ProviderRuntime, auth_header_name};
use crate::trace::RequestTrace;
use crate::translate::embeddings::Expected;
use crate::translate::{self, anthropic, bedrock};
use crate::translated_request::translated;
use crate::upstream_body::UpstreamBody;

/// The request for one attempt on one provider.
pub struct UpstreamRequest {
    /// The request.
    pub request: Request<UpstreamBody>,
    /// Whether `stream_options.include_usage` was added by the proxy.
    pub injects_usage: bool,
    /// Whose credential it carries.
    pub credential: Credential,
    /// What an embeddings answer must hold (translated embeddings only).
    pub embeddings: Option<Expected>,
}

/// Builds the request `client` becomes on `provider`; `access_token` is a `vertexai`
/// provider's `Authorization` value; `trace`, the request's span, which the provider's request
/// names as its parent (without it the client's `traceparent` passes as it is).
pub fn build(
    provider: &ProviderRuntime,
    client: &http::request::Parts,
    payload: &Payload,
    operation: Operation,
    access_token: Option<HeaderValue>,
    trace: Option<&RequestTrace>,
) -> Result<UpstreamRequest, ProxyError> {
    let kind = provider.config.kind;
    // A provider of another API: its body, path and query (and the bytes a Bedrock signature
    // covers).
    // Anthropic's own operations pass to Anthropic as they are.
    let anthropic_as_is = kind == ProviderKind::Anthropic
        && matches!(operation, Operation::Messages | Operation::CountTokens);
    let translated = if translate::is_translated(kind) && !anthropic_as_is {
        Some(translated(provider, payload, operation)?)
    } else {
        None
    };
    let (body, injects_usage) = match (&translated, payload) {
        (Some(translated), _) => (
            UpstreamBody::full(translated.body.clone()),
            translated.injects_usage,
        ),
        (None, Payload::Json(json)) => {
            // An Azure deployment names its model: the body's is informative only.
            let deployment = provider
                .config
                .azure
                .as_ref()
                .map(|a| a.deployment.as_str());
            let model = json
                .effective_model(provider.config.model.as_deref())
                .or(deployment)
                .ok_or_else(|| {
                    ProxyError::bad_request(
                        "model_required",
                        "you must provide a model parameter (the backend's provider sets none)",
                    )
                })?;
            // Only chat and text completions have `stream_options.include_usage`.
            let inject = matches!(
                operation,
                Operation::ChatCompletions | Operation::Completions
            ) && json.injects_usage();
            (json.encode(model, inject), inject)
        }
        (None, Payload::Raw(bytes)) => (UpstreamBody::full(bytes.clone()), false),
        (None, Payload::Streamed { body, .. }) => {
            let taken = body.lock().ok().and_then(|mut b| b.take());
            let body = taken.ok_or_else(|| {
                ProxyError::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "server_error",
                    "no_healthy_provider",
                    "the streamed request body was already sent to a provider that failed".into(),
                )
            })?;
            (body, false)
        }
    };
    let (path, query) = match (&translated, &provider.config.azure) {
        (Some(translated), _) => (Some(translated.path.clone()), translated.query.clone()),
        // Azure names the deployment in the path and the API version in the query; the client's
        // query (meant for OpenAI's API) does not apply.
        (None, Some(azure)) => (
            Some(azure_path(azure, operation, provider.config.path.clone())?),
            Some(format!("api-version={}", azure.api_version)),
        ),
        (None, None) => {
            let path = match (&provider.config.path, operation) {
                (Some(path), Operation::ChatCompletions) => Some(path.clone()),
                _ => operation.provider_path(client.uri.path()),
            };
            (path, client.uri.query().map(str::to_string))
        }
    };
    let path_and_query = match (path, query) {
        (Some(path), Some(query)) => format!("{path}?{query}"),
        (Some(path), None) => path,
        (None, _) => client
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |pq| pq.as_str().to_string()),
    };
    let uri = http::Uri::builder()
        .scheme(provider.scheme.clone())
        .authority(provider.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| {
            ProxyError::bad_request(
                "invalid_path",
                format!("failed to build the upstream URI: {e}"),
            )
        })?;
    let gateway_key = provider.has_gateway_credential();
    let mut headers = upstream_headers(&client.headers, gateway_key);
    if let Some(trace) = trace {
        // Before any signature (Bedrock's SigV4 covers the headers).
        trace.inject(&mut headers);
    }
    if matches!(payload, Payload::Json(_)) {
        // Usage is read from the response: ask for it uncompressed.
        headers.remove(header::ACCEPT_ENCODING);
    }
    if kind == ProviderKind::Anthropic {
        anthropic_headers(&mut headers, anthropic_as_is);
    }
    if let Some(translated) = &translated {
        // The translation wrote JSON, and reads JSON or the provider's event stream back.
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let accept = match kind {
            ProviderKind::Bedrock if translated.stream => bedrock::EVENT_STREAM_CONTENT_TYPE,
            _ if translated.stream => "text/event-stream",
            _ => "application/json",
        };
        headers.insert(header::ACCEPT, HeaderValue::from_static(accept));
    }
    if provider.auth_header.is_none() && provider.cloud_auth.is_none() {
        client_key_for(kind, &mut headers);
    }
    let credential = match (&provider.auth_header, access_token) {
        (_, Some(token)) => {
            headers.insert(header::AUTHORIZATION, token);
            Credential::Gateway
        }
        // Signed below, once the request is whole.
        (_, None) if provider.cloud_auth.is_some() => Credential::Gateway,
        (Some(auth), None) => {
            headers.insert(auth_header_name(kind), auth.clone());
            Credential::Gateway
        }
        (None, None)
            if headers.contains_key(header::AUTHORIZATION) || headers.contains_key("x-api-key") =>
        {
            Credential::Client
        }
        (None, None) => Credential::None,
    };
    if let Ok(host) = HeaderValue::from_str(provider.authority.as_str()) {
        headers.insert(header::HOST, host);
    }
    if body.is_streamed() {
        // The client's own length (checked by hyper as the body arrives), or chunked.
        if let Some(length) = client.headers.get(header::CONTENT_LENGTH) {
            headers.insert(header::CONTENT_LENGTH, length.clone());
        }
    } else if !body.is_empty() || client.method == Method::POST {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    let mut request = Request::new(body);
    *request.method_mut() = client.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    if let (Some(CloudAuth::Aws(signer)), Some(translated)) = (&provider.cloud_auth, &translated) {
        signer.sign(&mut request, &translated.body).map_err(|e| {
            ProxyError::new(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "signing_failed",
                e.to_string(),
            )
        })?;
    }
    Ok(UpstreamRequest {
        request,
        injects_usage,
        credential,
        embeddings: translated.and_then(|t| t.embeddings),
    })
}

/// The headers Anthropic wants: the API version (the client's own when its request passes as it
/// is, for its body is written to that version; else the one the translation speaks), and a key
/// of the client's own (when the gateway has none for the provider) in `x-api-key`, never as a
/// bearer token.
fn anthropic_headers(headers: &mut http::HeaderMap, clients_version: bool) {
    if !(clients_version && headers.contains_key("anthropic-version")) {
        headers.insert(
            "anthropic-version",
            HeaderValue::from_static(anthropic::VERSION),
        );
    }
    if !clients_version {
        // Beta features are the client's choice for its own body, not for the translation's.
        headers.remove("anthropic-beta");
    }
    let bearer = headers.remove(header::AUTHORIZATION).and_then(|v| {
        v.to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string)
    });
    if !headers.contains_key("x-api-key")
        && let Some(mut key) = bearer.and_then(|k| HeaderValue::try_from(k).ok())
    {
        key.set_sensitive(true);
        headers.insert("x-api-key", key);
    }
}

/// A client's own key, sent the way its SDK sends it (the anthropic SDK's `x-api-key`), moved to
/// the header an OpenAI-compatible provider reads, so a client of one API can use its key with a
/// keyless backend of another. A header the provider reads that the client set wins.
fn client_key_for(kind: ProviderKind, headers: &mut http::HeaderMap) {
    let target = match kind {
        ProviderKind::OpenAi => header::AUTHORIZATION,
        ProviderKind::AzureOpenAi => header::HeaderName::from_static("api-key"),
        _ => return,
    };
    if headers.contains_key(&target) || headers.contains_key(header::AUTHORIZATION) {
        return;
    }
    let Some(key) = headers.remove("x-api-key") else {
        return;
    };
    let value = if target == header::AUTHORIZATION {
        key.to_str()
            .ok()
            .and_then(|k| HeaderValue::try_from(format!("Bearer {k}")).ok())
    } else {
        Some(key)
    };
    if let Some(mut value) = value {
        value.set_sensitive(true);
        headers.insert(target, value);
    }
}

/// The path of `operation` on an Azure OpenAI deployment (`override_path`, the provider's own
/// `path`, for chat completions when set).
fn azure_path(
    azure: &AzureConfig,
    operation: Operation,
    override_path: Option<String>,
) -> Result<String, ProxyError> {
    let suffix = match operation {
        Operation::ChatCompletions => "chat/completions",
        Operation::Completions => "completions",
        Operation::Embeddings => "embeddings",
        Operation::Models
        | Operation::Other
        | Operation::Messages
        | Operation::CountTokens
        | Operation::Responses => {
            return Err(ProxyError::bad_request(
                "unsupported_operation",
                format!(
                    "{} is not available on this backend's provider (an Azure OpenAI deployment serves chat completions, completions and embeddings)",
                    operation.as_str()
                ),
            ));
        }
    };
    Ok(match override_path {
        Some(path) if operation == Operation::ChatCompletions => path,
        _ => format!("/openai/deployments/{}/{suffix}", azure.deployment),
    })
}
