//! The HTTP surface: two review endpoints and a health check, as an axum `Router` the operator can
//! serve with [`crate::serve_tls`] (or merge into its own).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::CONTENT_TYPE;

use crate::handler::handle;
use crate::metrics::{Webhook, WebhookMetrics};
use crate::secrets::SecretLookup;
use crate::targets::TargetLookup;

/// The validating webhook's path (`ValidatingWebhookConfiguration` `clientConfig.service.path`).
pub const VALIDATE_PATH: &str = "/validate";
/// The mutating webhook's path (`MutatingWebhookConfiguration` `clientConfig.service.path`).
pub const MUTATE_PATH: &str = "/mutate";
/// Answers `ok` while the process serves; for readiness probes.
pub const HEALTH_PATH: &str = "/healthz";

/// What the handlers share.
#[derive(Clone)]
pub struct WebhookState {
    /// Whether referenced Secrets exist (for warnings only).
    pub secrets: Arc<dyn SecretLookup>,
    /// Whether the objects a policy targets exist (for warnings only).
    pub targets: Arc<dyn TargetLookup>,
    /// Review counts and durations.
    pub metrics: WebhookMetrics,
}

/// The webhook routes: `POST` [`VALIDATE_PATH`], `POST` [`MUTATE_PATH`], `GET` [`HEALTH_PATH`].
/// Bodies over axum's default limit (2 MiB) are answered as malformed reviews.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(VALIDATE_PATH, post(validate))
        .route(MUTATE_PATH, post(mutate))
        .route(HEALTH_PATH, get(|| async { "ok" }))
        .with_state(state)
}

async fn validate(
    State(state): State<WebhookState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    review(Webhook::Validate, &state, body).await
}

async fn mutate(
    State(state): State<WebhookState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    review(Webhook::Mutate, &state, body).await
}

async fn review(
    webhook: Webhook,
    state: &WebhookState,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match &body {
        Ok(bytes) => Ok(bytes.as_ref()),
        Err(rejection) => Err(format!(
            "failed to read the body: {}",
            rejection.body_text()
        )),
    };
    let answer = handle(webhook, state, body).await;
    ([(CONTENT_TYPE, "application/json")], answer).into_response()
}
