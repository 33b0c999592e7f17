//! Azure OpenAI's deployment routes: `POST /openai/deployments/{deployment-id}/chat/completions`
//! and `.../embeddings`, both with a required `?api-version=YYYY-MM-DD[-preview]`.
//!
//! * Bodies and answers are OpenAI's (the chat and embeddings handlers serve them, body errors
//!   included, as Azure passes OpenAI's through), except that `model` is the configured model:
//!   Azure reports the deployment's underlying model whatever the body names.
//! * Checks, in Azure's order: a credential, `api-key` or else `Authorization: Bearer` (an Entra
//!   ID token), else 401; then `api-version`, missing (400 `MissingApiVersionParameter`) or not
//!   date-like (400 `InvalidApiVersionParameter`). Other paths under `/openai/` are 404
//!   `Resource not found`. These errors, and injected `status=` faults, use Azure's shape
//!   `{"error":{"code":"..","message":".."}}` with the status number as `code` unless a fault's
//!   `body=` names one.

use std::borrow::Cow;
use std::io;

use serde::Serialize;

use crate::Credential;
use crate::handlers::{ApiHeaders, Ctx, ErrorReply, Flow, chat, send_error_body};
use crate::http::{Conn, Method, ProviderHead};
use crate::{embeddings, server::Shared};

const PREFIX: &str = "/openai/";

/// The exact message Azure sends for a missing or wrong key.
pub(crate) const ACCESS_DENIED: &str = "Access denied due to invalid subscription key or wrong \
    API endpoint. Make sure to provide a valid key for an active subscription and use a correct \
    regional API endpoint for your resource.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AzureOp {
    ChatCompletions,
    Embeddings,
    /// Any other path under `/openai/`.
    Unknown,
}

/// `Some` for every path under `/openai/`.
pub(crate) fn classify(method: Method, path: &str) -> Option<AzureOp> {
    let rest = path.strip_prefix(PREFIX)?;
    let op = rest
        .strip_prefix("deployments/")
        .and_then(|r| r.split_once('/'))
        .filter(|(deployment, _)| !deployment.is_empty())
        .map(|(_, op)| op);
    Some(match (method, op) {
        (Method::Post, Some("chat/completions")) => AzureOp::ChatCompletions,
        (Method::Post, Some("embeddings")) => AzureOp::Embeddings,
        _ => AzureOp::Unknown,
    })
}

/// `api-key` wins over a bearer token; an empty value counts as absent.
pub(crate) fn credential(head: &ProviderHead) -> Result<Credential, ()> {
    if head.api_key.as_deref().is_some_and(|k| !k.is_empty()) {
        return Ok(Credential::ApiKey);
    }
    if head.bearer().is_some() {
        return Ok(Credential::Bearer);
    }
    Err(())
}

/// `YYYY-MM-DD` or `YYYY-MM-DD-preview`, with a plausible month and day.
pub(crate) fn is_api_version(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    let b = date.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' || !digits(0..4) {
        return false;
    }
    if !digits(5..7) || !digits(8..10) {
        return false;
    }
    let num = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    (1..=12).contains(&num(5)) && (1..=31).contains(&num(8))
}

pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    op: AzureOp,
    headers: &ApiHeaders<'_>,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    let Some(head) = headers.provider else {
        return send_error(shared, conn, reply(500, "", "missing request head"), ctx).await;
    };
    if op == AzureOp::Unknown {
        return send_error(shared, conn, reply(404, "404", "Resource not found"), ctx).await;
    }
    if credential(head).is_err() {
        return send_error(shared, conn, reply(401, "401", ACCESS_DENIED), ctx).await;
    }
    match head.query("api-version").filter(|v| !v.is_empty()) {
        None => {
            let msg = "The api-version query parameter (?api-version=) is required for all \
                       requests.";
            let r = reply(400, "MissingApiVersionParameter", msg);
            return send_error(shared, conn, r, ctx).await;
        }
        Some(v) if !is_api_version(v) => {
            let msg = format!(
                "The api-version '{v}' is invalid. The supported versions are dates such as \
                 '2024-10-21' or '2025-01-01-preview'."
            );
            let r = reply(400, "InvalidApiVersionParameter", &msg);
            return send_error(shared, conn, r, ctx).await;
        }
        Some(_) => {}
    }
    let model = Some(shared.config.model.as_str());
    if op == AzureOp::Embeddings {
        embeddings::handle(shared, conn, body, model, ctx).await
    } else {
        chat(shared, conn, body, model, ctx).await
    }
}

fn reply<'a>(status: u16, code: &'a str, message: &'a str) -> ErrorReply<'a> {
    ErrorReply::new(status, message, "", code)
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: Cow<'a, str>,
    message: &'a str,
}

/// Sends `{"error":{"code":..,"message":..}}`; an empty `reply.code` becomes the status number.
pub(crate) async fn send_error(
    shared: &Shared,
    conn: &mut Conn,
    reply: ErrorReply<'_>,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let code = match reply.code {
        "" => Cow::Owned(reply.status.to_string()),
        code => Cow::Borrowed(code),
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code,
            message: reply.message,
        },
    };
    let body = serde_json::to_vec(&body)?;
    send_error_body(shared, conn, reply.status, &body, reply.retry_after, ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_matches_deployment_routes_only() {
        let c = |m, p| classify(m, p);
        assert_eq!(
            c(Method::Post, "/openai/deployments/gpt4o/chat/completions"),
            Some(AzureOp::ChatCompletions)
        );
        assert_eq!(
            c(Method::Post, "/openai/deployments/emb/embeddings"),
            Some(AzureOp::Embeddings)
        );
        assert_eq!(
            c(Method::Post, "/openai/deployments//chat/completions"),
            Some(AzureOp::Unknown)
        );
        assert_eq!(
            c(Method::Get, "/openai/deployments/d/chat/completions"),
            Some(AzureOp::Unknown)
        );
        assert_eq!(
            c(Method::Post, "/openai/deployments/d/completions"),
            Some(AzureOp::Unknown)
        );
        assert_eq!(c(Method::Post, "/v1/chat/completions"), None);
    }

    #[test]
    fn api_versions_must_look_like_dates() {
        for ok in ["2024-10-21", "2025-01-01-preview", "2023-05-15"] {
            assert!(is_api_version(ok), "{ok}");
        }
        for bad in [
            "",
            "latest",
            "2024-13-01",
            "2024-10-32",
            "2024-1-01",
            "2024-10-21-beta",
            "24-10-21",
            "2024/10/21",
            "2024-10-210",
        ] {
            assert!(!is_api_version(bad), "{bad}");
        }
    }

    #[test]
    fn api_key_wins_over_bearer_and_empty_values_do_not_count() {
        let head = |api_key: Option<&str>, auth: Option<&str>| ProviderHead {
            target: String::new(),
            api_key: api_key.map(str::to_owned),
            authorization: auth.map(str::to_owned),
            goog_api_key: None,
            ..ProviderHead::default()
        };
        assert_eq!(
            credential(&head(Some("k"), Some("Bearer t"))),
            Ok(Credential::ApiKey)
        );
        assert_eq!(
            credential(&head(Some(""), Some("bearer t"))),
            Ok(Credential::Bearer)
        );
        assert_eq!(credential(&head(None, Some("Basic dXNlcg=="))), Err(()));
        assert_eq!(credential(&head(None, Some("Bearer "))), Err(()));
        assert_eq!(credential(&head(None, None)), Err(()));
    }
}
