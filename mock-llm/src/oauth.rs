//! `POST /token`: Google's OAuth 2.0 token endpoint for service accounts (the JWT-bearer grant),
//! where a service-account key's `token_uri` points in tests.
//!
//! * The form body must be `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT`
//!   (else 400 `unsupported_grant_type` / `invalid_request`). With a service-account key
//!   configured the assertion is verified ([`crate::jwt_grant`]); `aud` may be the key's
//!   `token_uri` or this endpoint's own URL (`http://{bound address}/token`, or as the client
//!   named it, `http://{Host}{path}`). Without one any assertion is taken.
//! * A grant answers `{"access_token":"ya29.mock-N","expires_in":TTL,"token_type":"Bearer"}`
//!   and the server remembers the token until it expires ([`crate::tokens`]).
//! * Errors, injected `status=` faults included, are Google's OAuth shape
//!   `{"error":..,"error_description":..}`.

use std::io;

use serde::Serialize;

use crate::handlers::{Ctx, ErrorReply, Flow, send_error_body, send_json};
use crate::http::{Conn, ProviderHead};
use crate::server::Shared;
use crate::{jwt_grant, percent};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// A grant is a JWT of a kilobyte or two; larger forms are refused unread.
const MAX_FORM: usize = 16 * 1024;

#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    expires_in: u64,
    token_type: &'static str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    head: Option<&ProviderHead>,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    match grant(shared, head, body) {
        Ok(cloud_platform) => {
            let ttl = shared.config.vertex_token_ttl;
            let token = shared.tokens.issue(ttl, cloud_platform);
            let response = TokenResponse {
                access_token: &token,
                expires_in: ttl.as_secs(),
                token_type: "Bearer",
            };
            send_json(shared, conn, 200, &response, ctx).await
        }
        Err((error, description)) => {
            let reply = ErrorReply::new(400, &description, error, error);
            send_error(shared, conn, reply, ctx).await
        }
    }
}

/// Checks the grant; `Ok` tells whether the token gets the `cloud-platform` scope, `Err` is the
/// OAuth error and its description.
fn grant(
    shared: &Shared,
    head: Option<&ProviderHead>,
    body: &[u8],
) -> Result<bool, (&'static str, String)> {
    if body.len() > MAX_FORM {
        return Err(("invalid_request", "Request too large.".to_owned()));
    }
    let pairs = std::str::from_utf8(body)
        .ok()
        .and_then(percent::form)
        .ok_or_else(|| ("invalid_request", "Invalid request body.".to_owned()))?;
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let grant_type = param("grant_type").unwrap_or("");
    if grant_type != JWT_BEARER {
        let msg = format!("Invalid grant_type: {grant_type}");
        return Err(("unsupported_grant_type", msg));
    }
    let Some(assertion) = param("assertion").filter(|a| !a.is_empty()) else {
        let msg = "Missing required parameter: assertion".to_owned();
        return Err(("invalid_request", msg));
    };
    let Some(key) = &shared.config.vertex_service_account else {
        return Ok(true);
    };
    // The URL the client posted to, as it named it (`Host`), and as the server is bound.
    let named_url = head.and_then(|h| Some(format!("http://{}{}", h.host.as_deref()?, h.path())));
    // Google's documented audience is its token endpoint whatever URL the grant is posted to
    // (google-auth always sends it); the others are what clients of private endpoints send.
    let mut audiences = vec![
        crate::GOOGLE_TOKEN_URI,
        key.token_uri.as_str(),
        shared.token_url.as_str(),
    ];
    audiences.extend(named_url.as_deref());
    jwt_grant::verify(key, assertion, &audiences, crate::unix_now())
        .map(|g| g.cloud_platform)
        .map_err(|e| (e.error, e.description))
}

/// The OAuth `error` code for an injected status.
pub(crate) fn error_code(status: u16) -> &'static str {
    match status {
        400 => "invalid_request",
        401 => "invalid_client",
        403 => "access_denied",
        429 => "rate_limit_exceeded",
        500..=599 => "internal_failure",
        _ => "invalid_request",
    }
}

/// Sends `{"error": reply.kind, "error_description": reply.message}`.
pub(crate) async fn send_error(
    shared: &Shared,
    conn: &mut Conn,
    reply: ErrorReply<'_>,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let body = ErrorBody {
        error: reply.kind,
        error_description: reply.message,
    };
    let body = serde_json::to_vec(&body)?;
    send_error_body(shared, conn, reply.status, &body, reply.retry_after, ctx).await
}
