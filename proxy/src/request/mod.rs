//! One request through the gateway, in the order its data moves: path check → route → backend →
//! operation check → body (bounded, budgeted) → provider attempts ([`crate::attempts`]) → the
//! provider's body back to the client ([`crate::stream`]). The request's record is owned by a
//! guard from the first line on and handed to the response body, which finishes it.

pub mod body;
pub mod path;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::attempts::{Attempts, Payload};
use crate::body::ProxyBody;
use crate::context::ProxyContext;
use crate::openai::error::ProxyError;
use crate::openai::operation::Operation;
use crate::openai::request::JsonRequest;
use crate::record::{RecordGuard, RequestRecord};
use crate::route::{find_rule, has_path_prefix, pick_backend};
use crate::stream::UpstreamStream;
use crate::upstream_body::{FaultSlot, UpstreamBody};

use self::body::read_body;
use self::path::check_path;

/// Serves one request; never fails towards hyper.
pub async fn handle(
    context: Arc<ProxyContext>,
    listener: Arc<str>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let (parts, body) = request.into_parts();
    let operation = Operation::from_path(parts.uri.path());
    let mut guard = RecordGuard::new(
        RequestRecord::new(listener, &parts, operation),
        context.clone(),
    );
    // Boxed: hyper moves the service future by value; this keeps it a few words.
    let forwarded = Box::pin(route_and_forward(&context, guard.record(), parts, body)).await;
    let response = match forwarded {
        Ok(response) => {
            guard.record().status = response.status().as_u16();
            let (head, stream) = response.into_parts();
            Response::from_parts(head, ProxyBody::stream(stream, guard))
        }
        Err(error) => {
            let record = guard.record();
            record.error = Some(error.code);
            record.status = error.status.as_u16();
            error.into_response(guard)
        }
    };
    Ok(response)
}

async fn route_and_forward(
    context: &Arc<ProxyContext>,
    record: &mut RequestRecord,
    parts: http::request::Parts,
    body: Incoming,
) -> Result<Response<Box<UpstreamStream>>, ProxyError> {
    check_path(parts.uri.path())?;
    let snapshot = context.state.snapshot();
    let no_route = || {
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
    };
    let table = snapshot
        .listeners
        .get(&*record.listener)
        .ok_or_else(no_route)?;
    let rule = find_rule(table, &parts).ok_or_else(no_route)?;
    record.route = Some(rule.route.clone());
    let mut rng = fastrand::Rng::new();
    let backend = pick_backend(rule, &mut rng).ok_or_else(|| {
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
    check_operation(
        record.operation,
        &parts,
        &backend.pass_through_path_prefixes,
    )?;
    let limits = &context.limits;
    let json = record.operation.has_json_model();
    // A JSON body is parsed whole; anything else is held up to the replay size and streamed on.
    let hold = if json {
        limits.body_limit
    } else {
        limits.max_request_replay.min(limits.body_limit)
    };
    let body = read_body(context, &parts.headers, body, hold).await?;
    let reservation = body.reservation;
    let payload = match body.rest {
        _ if json => {
            let json = JsonRequest::parse(body.bytes)?;
            record.stream = json.stream;
            record.request_model = json.model.as_deref().map(Arc::from);
            Payload::Json(json)
        }
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
    let attempts = Attempts {
        context,
        backend: &backend,
        parts: &parts,
        payload: &payload,
        operation: record.operation,
        deadline: Instant::now()
            .checked_add(backend.request_timeout)
            .unwrap_or_else(Instant::now),
    };
    let answer = attempts.run(record, &mut rng).await;
    // The body's budget is released once no attempt needs it any more.
    drop(reservation);
    answer
}

/// Known operations with their methods; anything else only where the backend passes it through.
fn check_operation(
    operation: Operation,
    parts: &http::request::Parts,
    pass_through: &[String],
) -> Result<(), ProxyError> {
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
        Operation::Other => {
            let path = parts.uri.path();
            if pass_through
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
                    "{} {} is not an operation this backend serves (chat completions, completions, embeddings, models)",
                    parts.method,
                    crate::access_log::client_text(path)
                ),
            ))
        }
        Operation::Models if parts.method != Method::GET => Err(method_not_allowed("GET")),
        op if op.has_json_model() && parts.method != Method::POST => {
            Err(method_not_allowed("POST"))
        }
        _ => Ok(()),
    }
}
