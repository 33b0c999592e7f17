//! One request through the gateway, in the order its data moves: path check → route → backend →
//! operation check → body (bounded, budgeted) → provider attempts ([`crate::attempts`]) → the
//! provider's body back to the client ([`crate::stream`]). The request's record is owned by a
//! guard from the first line on and handed to the response body, which finishes it.

pub mod body;
pub mod models;
pub mod path;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use agentgateway_crds::proxy_config::PathMatchConfig;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::attempts::{Attempts, Payload};
use crate::body::ProxyBody;
use crate::client_api::ChatRequest;
use crate::context::ProxyContext;
use crate::filters::{self, RedirectRequest, ResponseModifiers, modified_path, with_path};
use crate::governance::governor::{Subject, tokens_to_reserve};
use crate::governance::headers::RateHeaders;
use crate::governance::keys::{ConsumerKeys, presented_key, remove_client_key};
use crate::openai::error::ProxyError;
use crate::openai::operation::Operation;
use crate::openai::request::JsonRequest;
use crate::record::{RecordGuard, RequestRecord};
use crate::route::{MODEL_HEADER, Miss, find_rule, has_path_prefix, pick_backend, request_host};
use crate::stream::UpstreamStream;
use crate::upstream_body::{FaultSlot, UpstreamBody};

use self::body::{declared_length, read_body};
use self::path::check_path;

/// Serves one request; never fails towards hyper.
pub async fn handle(
    context: Arc<ProxyContext>,
    listener: Arc<str>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let (parts, body) = request.into_parts();
    let operation = Operation::from_path(parts.uri.path());
    let mut record = RequestRecord::new(listener, &parts, operation);
    record.trace = context
        .tracing
        .as_ref()
        .map(|tracing| tracing.start_request(&parts.headers, operation));
    let mut guard = RecordGuard::new(record, context.clone());
    let mut modifiers = ResponseModifiers::default();
    // Boxed: hyper moves the service future by value; this keeps it a few words.
    let forwarded = Box::pin(route_and_forward(
        &context,
        guard.record(),
        parts,
        body,
        &mut modifiers,
    ))
    .await;
    let rate_headers = guard.record().rate_headers.take();
    let mut response = match forwarded {
        Ok(Forwarded::Upstream(response)) => {
            guard.record().status = response.status().as_u16();
            let (head, stream) = response.into_parts();
            Response::from_parts(head, ProxyBody::stream(stream, guard))
        }
        Ok(Forwarded::Local(response)) => {
            guard.record().status = response.status().as_u16();
            let (head, body) = response.into_parts();
            Response::from_parts(head, ProxyBody::full(body, guard))
        }
        Err(error) => {
            let record = guard.record();
            record.error = Some(error.code);
            record.status = error.status.as_u16();
            error.into_response(guard)
        }
    };
    // Before the rate headers: the proxy's own word on limits wins over a filter's.
    modifiers.apply(response.headers_mut());
    if let Some(headers) = rate_headers {
        headers.apply(response.headers_mut());
    }
    Ok(response)
}

/// Routes the request and forwards it; `modifiers` receives the response header modifiers of the
/// matched rule and picked backend, for whatever answer the client gets.
async fn route_and_forward(
    context: &Arc<ProxyContext>,
    record: &mut RequestRecord,
    mut parts: http::request::Parts,
    body: Incoming,
    modifiers: &mut ResponseModifiers,
) -> Result<Forwarded, ProxyError> {
    check_path(parts.uri.path())?;
    check_method(record.operation, &parts)?;
    let snapshot = context.state.snapshot();
    let table = snapshot
        .listeners
        .get(&*record.listener)
        .ok_or_else(|| no_route(&parts))?;
    if record.operation == Operation::Models {
        return models::answer(table, &parts).map(Forwarded::Local);
    }
    let limits = &context.limits;
    // The client never sets the model header routes match: the proxy does, from the body.
    parts.headers.remove(MODEL_HEADER);
    // A JSON body is parsed whole before routing (its model routes it); anything else is held
    // up to the replay size once its backend is known, and streamed on.
    let mut body = if record.operation.has_json_model() {
        let (json, reservation) = read_json(context, record, &parts, body).await?;
        if table.routes_by_model
            && let Some(value) = json
                .model
                .as_deref()
                .and_then(|m| http::HeaderValue::from_str(m).ok())
        {
            parts.headers.insert(MODEL_HEADER, value);
        }
        ClientBody::Json(json, reservation)
    } else {
        ClientBody::Unread(body)
    };
    let (rule, matched) = find_rule(table, &parts).map_err(|miss| match miss {
        Miss::NoRoute => no_route(&parts),
        Miss::ModelNotServed => model_not_found(record.request_model.as_deref().unwrap_or("")),
    })?;
    record.route = Some(rule.route.clone());
    let filters = rule.filters.as_deref();
    if let Some(filters) = filters {
        modifiers.rule = filters.response_headers.clone();
        let matched_prefix = match &matched.config.path {
            PathMatchConfig::PathPrefix(prefix) => prefix.as_str(),
            // Validation allows prefix replacements on prefix matches only.
            PathMatchConfig::Exact(_) => "/",
        };
        if let Some(redirect) = &filters.redirect {
            // Answered here: no backend, no upstream request, nothing counted.
            let host = request_host(&parts);
            let listener_port = snapshot
                .listener_ports
                .iter()
                .find(|(name, _)| **name == *record.listener)
                .and_then(|(_, port)| *port);
            let request = RedirectRequest {
                parts: &parts,
                host: host.as_deref(),
                matched_prefix,
                listener_port,
                scheme: if snapshot.listener_tls.contains_key(&*record.listener) {
                    "https"
                } else {
                    "http"
                },
            };
            return filters::redirect(redirect, &request).map(Forwarded::Local);
        }
        if let Some(rewrite) = &filters.rewrite_path {
            let path = modified_path(parts.uri.path(), rewrite, matched_prefix);
            check_path(&path)?;
            let operation = Operation::from_path(&path);
            if operation == Operation::Models {
                // The model list of the rules the client's own path matches.
                return models::answer(table, &parts).map(Forwarded::Local);
            }
            parts.uri = with_path(&parts.uri, &path)?;
            // The operation is the rewritten path's: `/team-a/chat` rewritten to
            // `/v1/chat/completions` is a chat completion.
            record.operation = operation;
            check_method(operation, &parts)?;
            if operation.has_json_model()
                && let ClientBody::Unread(unread) = body
            {
                let (json, reservation) = read_json(context, record, &parts, unread).await?;
                body = ClientBody::Json(json, reservation);
            }
        }
    }
    let mut rng = fastrand::Rng::new();
    let weighted = pick_backend(rule, &mut rng);
    modifiers.backend = weighted.and_then(|w| w.response_headers.clone());
    let policy = weighted.and_then(|w| w.policy.clone());
    let backend = weighted.and_then(|w| w.backend.clone()).ok_or_else(|| {
        ProxyError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "backend_not_found",
            format!(
                "route {} refers to a backend that does not exist or is not accepted",
                rule.route
            ),
        )
    })?;
    record.backend = Some(backend.name.clone());
    if let Some(keys) = policy.as_ref().and_then(|p| p.api_keys.as_ref()) {
        record.consumer = Some(authenticate(keys, &parts.headers)?);
        // The key is the gateway's business: no provider ever sees it.
        remove_client_key(&mut parts.headers);
    }
    // Filters never touch credential headers (validation refuses them), so the provider's
    // credentials, set when each attempt's request is built, always win.
    let request_modifiers = [
        filters.and_then(|f| f.request_headers.as_ref()),
        weighted.and_then(|w| w.request_headers.as_ref()),
    ];
    for modifier in request_modifiers.into_iter().flatten() {
        modifier.apply(&mut parts.headers);
    }
    check_operation(
        record.operation,
        &parts,
        &backend.pass_through_path_prefixes,
    )?;
    let (payload, reservation) = match body {
        ClientBody::Json(json, reservation) if record.operation.has_json_model() => {
            (Payload::Json(json), reservation)
        }
        // A rewrite made the path one whose body the gateway does not read: passed as it came.
        ClientBody::Json(json, reservation) => (Payload::Raw(json.body().clone()), reservation),
        ClientBody::Unread(body) => {
            let hold = limits.max_request_replay.min(limits.body_limit);
            let body = read_body(context, &parts.headers, body, hold).await?;
            let payload = match body.rest {
                None => Payload::Raw(body.bytes),
                Some(rest) => {
                    let fault = FaultSlot::default();
                    Payload::Streamed {
                        body: Mutex::new(Some(UpstreamBody::streamed(
                            body.bytes,
                            rest,
                            limits.body_limit as u64,
                            limits.body_progress_timeout,
                            fault.clone(),
                        ))),
                        fault,
                    }
                }
            };
            (payload, body.reservation)
        }
    };
    if let Some(policy) = policy.as_ref().filter(|p| p.counts()) {
        let tokens = match &payload {
            Payload::Json(json) => tokens_to_reserve(
                json.body().len(),
                json.max_output_tokens,
                record.operation.generates(),
            ),
            Payload::Raw(bytes) => tokens_to_reserve(bytes.len(), None, false),
            // `read_body` refused a declared length over the body limit.
            Payload::Streamed { .. } => tokens_to_reserve(
                usize::try_from(declared_length(&parts.headers).unwrap_or(0)).unwrap_or(0),
                None,
                false,
            ),
        };
        let subject = Subject {
            consumer: record.consumer.as_deref(),
            route: &rule.route,
            backend: &backend.name,
            tokens,
        };
        let mut headers = RateHeaders::default();
        let admitted = context
            .governor
            .admit(policy, &subject, &context.metrics, &mut headers)
            .await;
        if !headers.is_empty() {
            record.rate_headers = Some(Box::new(headers));
        }
        record.admitted = Some(Box::new(admitted?));
    }
    let as_chat = ChatRequest::of(record.operation);
    let request_timeout = filters
        .and_then(|f| f.request_timeout)
        .unwrap_or(backend.request_timeout);
    let attempts = Attempts {
        context,
        backend: &backend,
        parts: &parts,
        payload: &payload,
        as_chat: as_chat.as_ref(),
        operation: record.operation,
        deadline: Instant::now()
            .checked_add(request_timeout)
            .unwrap_or_else(Instant::now),
        request_timeout,
        attempt_timeout: filters.and_then(|f| f.attempt_timeout),
    };
    let answer = attempts.run(record, &mut rng).await;
    // The body's budget is released once no attempt needs it any more.
    drop(reservation);
    answer.map(Forwarded::Upstream)
}

/// Reads and parses a JSON request body, noting its model and whether it streams.
async fn read_json(
    context: &ProxyContext,
    record: &mut RequestRecord,
    parts: &http::request::Parts,
    body: Incoming,
) -> Result<(JsonRequest, crate::budget::Reservation), ProxyError> {
    let body = read_body(context, &parts.headers, body, context.limits.body_limit).await?;
    let json = JsonRequest::parse(body.bytes)?;
    record.stream = json.stream;
    record.request_model = json.model.as_deref().map(Arc::from);
    Ok((json, body.reservation))
}

/// The client's body as routing leaves it.
enum ClientBody {
    /// A JSON request, read and parsed (its model routes it).
    Json(JsonRequest, crate::budget::Reservation),
    /// Anything else: read once the backend is known.
    Unread(Incoming),
}

/// Where a request's answer comes from.
enum Forwarded {
    /// A provider's answer.
    Upstream(Response<Box<UpstreamStream>>),
    /// The gateway's own (the model list).
    Local(Response<bytes::Bytes>),
}

/// The consumer whose key the request presents, or `401 invalid_api_key`.
fn authenticate(keys: &ConsumerKeys, headers: &http::HeaderMap) -> Result<Arc<str>, ProxyError> {
    let presented = presented_key(headers).ok_or_else(|| {
        unauthorized("an API key is required: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'")
    })?;
    keys.identify(presented)
        .ok_or_else(|| unauthorized("the API key is not valid for this route"))
}

/// `401 invalid_api_key`.
pub fn unauthorized(message: &str) -> ProxyError {
    ProxyError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "invalid_api_key",
        message.to_string(),
    )
}

/// `404 route_not_found`.
fn no_route(parts: &http::request::Parts) -> ProxyError {
    ProxyError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "route_not_found",
        format!(
            "no route matches {} {}",
            parts.method,
            crate::access_log::client_text(parts.uri.path())
        ),
    )
}

/// `404 model_not_found`: routes serve this path, but none this model.
pub fn model_not_found(model: &str) -> ProxyError {
    ProxyError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "model_not_found",
        format!(
            "the model {} is not served here: no route on this listener matches it",
            crate::access_log::client_text(model)
        ),
    )
}

/// Known operations have their methods.
fn check_method(operation: Operation, parts: &http::request::Parts) -> Result<(), ProxyError> {
    let method_not_allowed = |allow: &'static str| {
        let mut error = ProxyError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            format!(
                "{} {} is not supported: use {allow}",
                parts.method,
                crate::access_log::client_text(parts.uri.path())
            ),
        );
        error.allow = Some(allow);
        error
    };
    match operation {
        Operation::Models if parts.method != Method::GET => Err(method_not_allowed("GET")),
        op if op.has_json_model() && parts.method != Method::POST => {
            Err(method_not_allowed("POST"))
        }
        _ => Ok(()),
    }
}

/// Operations the gateway does not know pass only where the backend passes them through.
fn check_operation(
    operation: Operation,
    parts: &http::request::Parts,
    pass_through: &[String],
) -> Result<(), ProxyError> {
    let path = parts.uri.path();
    if operation != Operation::Other
        || pass_through
            .iter()
            .any(|prefix| has_path_prefix(path, prefix))
    {
        return Ok(());
    }
    Err(ProxyError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "unsupported_operation",
        format!(
            "{} {} is not an operation this backend serves (chat completions, completions, embeddings, models, messages, responses)",
            parts.method,
            crate::access_log::client_text(path)
        ),
    ))
}
