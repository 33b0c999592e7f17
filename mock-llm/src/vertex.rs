//! Vertex AI's publisher model routes, `POST /v1/projects/{project}/locations/{region}/
//! publishers/{publisher}/models/{model}:{method}` (also under `/v1beta1/`):
//!
//! * `publishers/google`, `:generateContent` and `:streamGenerateContent[?alt=sse]`: exactly the
//!   Gemini API's handlers ([`crate::generate_content`]), without its API-key rules.
//! * `publishers/google`, `:predict` on an embedding model: the text embeddings API
//!   ([`crate::vertex_predict`]).
//! * `publishers/anthropic`, `:rawPredict` and `:streamRawPredict`: Anthropic's Messages API
//!   ([`crate::messages`]) with Vertex's differences: no `model` in the body (the URL names it;
//!   400 `model: Extra inputs are not permitted`), a required `"anthropic_version":
//!   "vertex-2023-10-16"` instead of the header, streaming decided by the body's `stream`, and
//!   `vrtx` in the ids.
//! * With a service-account key configured, `Authorization: Bearer` must carry a live token the
//!   token endpoint issued ([`crate::oauth`]): none is 401 `UNAUTHENTICATED` (`missing required
//!   authentication credential`), an unknown or expired one 401 (`invalid authentication
//!   credentials`), one granted without the `cloud-platform` scope 403 `PERMISSION_DENIED`, all in
//!   Google's error shape. Without a key nothing is checked.
//! * Faults and other errors use the publisher's API shape (Google's, or Anthropic's for
//!   `publishers/anthropic`); unknown paths are Google 404s.

use std::io;

use serde_json::Value;

use crate::gemini::GeminiOp;
use crate::handlers::{ApiHeaders, Ctx, ErrorReply, Flow};
use crate::http::{Conn, Method, ProviderHead};
use crate::server::Shared;
use crate::tokens::TokenState;
use crate::{Credential, VertexCall, gemini, generate_content, messages, percent, vertex_predict};

/// The `anthropic_version` Claude on Vertex AI requires in the body.
pub const ANTHROPIC_VERSION: &str = "vertex-2023-10-16";

const MISSING_CREDENTIAL: &str = "Request is missing required authentication credential. \
    Expected OAuth 2 access token, login cookie or other valid authentication credential. See \
    https://developers.google.com/identity/sign-in/web/devconsole-project.";
const INVALID_CREDENTIAL: &str = "Request had invalid authentication credentials. Expected OAuth \
    2 access token, login cookie or other valid authentication credential. See \
    https://developers.google.com/identity/sign-in/web/devconsole-project.";
const INSUFFICIENT_SCOPES: &str = "Request had insufficient authentication scopes.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VertexOp {
    /// `publishers/google`: Gemini's methods.
    Gemini(GeminiOp),
    /// `publishers/google`: `predict` (text embeddings).
    Predict,
    /// `publishers/anthropic`: `rawPredict` or `streamRawPredict`.
    Claude,
    /// Any other method or path under `projects/`.
    Unknown,
}

/// Why a Vertex request's credentials were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    Missing,
    Invalid,
    InsufficientScope,
}

/// The raw segments of a publisher model path.
struct Segments<'a> {
    project: &'a str,
    location: &'a str,
    publisher: &'a str,
    model: &'a str,
    method: &'a str,
}

fn segments(path: &str) -> Option<Segments<'_>> {
    let rest = path
        .strip_prefix("/v1/")
        .or_else(|| path.strip_prefix("/v1beta1/"))?;
    let mut parts = rest.split('/');
    let mut named = |name: &str| {
        (parts.next() == Some(name))
            .then(|| parts.next())
            .flatten()
            .filter(|v| !v.is_empty())
    };
    let project = named("projects")?;
    let location = named("locations")?;
    let publisher = named("publishers")?;
    let (model, method) = named("models")?.rsplit_once(':')?;
    if parts.next().is_some() || model.is_empty() {
        return None;
    }
    Some(Segments {
        project,
        location,
        publisher,
        model,
        method,
    })
}

/// `Some` for every path under `/v1/projects/` and `/v1beta1/projects/`.
pub(crate) fn classify(method: Method, path: &str) -> Option<VertexOp> {
    let rest = path
        .strip_prefix("/v1/")
        .or_else(|| path.strip_prefix("/v1beta1/"))?;
    if !rest.starts_with("projects/") {
        return None;
    }
    let Some(s) = segments(path).filter(|_| method == Method::Post) else {
        return Some(VertexOp::Unknown);
    };
    Some(match (s.publisher, s.method) {
        ("google", "generateContent") => VertexOp::Gemini(GeminiOp::Generate),
        ("google", "streamGenerateContent") => VertexOp::Gemini(GeminiOp::Stream),
        ("google", "predict") => VertexOp::Predict,
        ("anthropic", "rawPredict" | "streamRawPredict") => VertexOp::Claude,
        _ => VertexOp::Unknown,
    })
}

/// The call a publisher model path names, percent-decoded, for the record.
pub(crate) fn call_of(path: &str) -> Option<VertexCall> {
    let s = segments(path)?;
    let decode = |v: &str| percent::decode(v, false).unwrap_or_else(|| v.to_owned());
    Some(VertexCall {
        project: decode(s.project),
        region: decode(s.location),
        publisher: decode(s.publisher),
        model: decode(s.model),
        method: decode(s.method),
    })
}

/// Checks the bearer token when a service account is configured; `Ok` is the credential to
/// record.
pub(crate) fn authenticate(
    shared: &Shared,
    head: &ProviderHead,
) -> Result<Option<Credential>, AuthFailure> {
    let bearer = head.bearer();
    if shared.config.vertex_service_account.is_none() {
        return Ok(bearer.map(|_| Credential::Bearer));
    }
    let Some(token) = bearer else {
        return Err(match head.authorization {
            None => AuthFailure::Missing,
            Some(_) => AuthFailure::Invalid,
        });
    };
    match shared.tokens.check(token) {
        TokenState::Valid => Ok(Some(Credential::Bearer)),
        TokenState::Unknown | TokenState::Expired => Err(AuthFailure::Invalid),
        TokenState::InsufficientScope => Err(AuthFailure::InsufficientScope),
    }
}

pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    op: VertexOp,
    headers: &ApiHeaders<'_>,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    let Some(head) = headers.provider else {
        return google_error(shared, conn, 500, "missing request head", ctx).await;
    };
    if let Some(failure) = headers.vertex_denial {
        let (status, msg) = match failure {
            AuthFailure::Missing => (401, MISSING_CREDENTIAL),
            AuthFailure::Invalid => (401, INVALID_CREDENTIAL),
            AuthFailure::InsufficientScope => (403, INSUFFICIENT_SCOPES),
        };
        return google_error(shared, conn, status, msg, ctx).await;
    }
    match op {
        VertexOp::Gemini(op) => generate_content::answer(shared, conn, op, head, body, ctx).await,
        VertexOp::Predict => vertex_predict::handle(shared, conn, head, body, ctx).await,
        VertexOp::Claude => claude(shared, conn, head, body, ctx).await,
        VertexOp::Unknown => {
            let msg = "mock-llm serves only POST .../publishers/google/models/{model}:\
                       generateContent, :streamGenerateContent and :predict, and \
                       .../publishers/anthropic/models/{model}:rawPredict and :streamRawPredict";
            google_error(shared, conn, 404, msg, ctx).await
        }
    }
}

async fn google_error(
    shared: &Shared,
    conn: &mut Conn,
    status: u16,
    msg: &str,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let name = gemini::status_name(status);
    let reply = ErrorReply::new(status, msg, name, name);
    generate_content::send_error(shared, conn, reply, ctx).await
}

/// Brings a Vertex `rawPredict` body to the Messages API's form and answers it.
async fn claude(
    shared: &Shared,
    conn: &mut Conn,
    head: &ProviderHead,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    let mut value = match messages::parse_json(body) {
        Ok(v) => v,
        Err(msg) => return messages::invalid(shared, conn, &msg, ctx).await,
    };
    let model = call_of(head.path()).map(|c| c.model).unwrap_or_default();
    if let Err(msg) = to_messages_body(&mut value, model) {
        return messages::invalid(shared, conn, &msg, ctx).await;
    }
    messages::respond(shared, conn, &value, "vrtx_mock", ctx).await
}

/// Checks Vertex's own fields and swaps them for the Messages API's: `anthropic_version` out,
/// the URL's `model` in. Anything else is left for the Messages validation.
fn to_messages_body(value: &mut Value, model: String) -> Result<(), String> {
    let Some(obj) = value.as_object_mut() else {
        return Ok(());
    };
    if obj.contains_key("model") {
        return Err("model: Extra inputs are not permitted".to_owned());
    }
    match obj.remove("anthropic_version") {
        None => return Err("anthropic_version: Field required".to_owned()),
        Some(Value::String(v)) if v == ANTHROPIC_VERSION => {}
        Some(_) => {
            return Err(format!(
                "anthropic_version: Input should be '{ANTHROPIC_VERSION}'"
            ));
        }
    }
    obj.insert("model".to_owned(), Value::String(model));
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const GEMINI: &str = "/v1/projects/p-1/locations/us-central1/publishers/google/models/gemini-2.5-pro:generateContent";

    #[test]
    fn classify_publisher_routes() {
        let p = Method::Post;
        assert_eq!(
            classify(p, GEMINI),
            Some(VertexOp::Gemini(GeminiOp::Generate))
        );
        assert_eq!(
            classify(
                p,
                "/v1beta1/projects/p/locations/global/publishers/google/models/m:streamGenerateContent"
            ),
            Some(VertexOp::Gemini(GeminiOp::Stream))
        );
        assert_eq!(
            classify(
                p,
                "/v1/projects/p/locations/us-central1/publishers/google/models/text-embedding-005:predict"
            ),
            Some(VertexOp::Predict)
        );
        for m in ["rawPredict", "streamRawPredict"] {
            let path = format!(
                "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-x@2025:{m}"
            );
            assert_eq!(classify(p, &path), Some(VertexOp::Claude));
        }
        for unknown in [
            "/v1/projects/p/locations/l/publishers/google/models/m:rawPredict",
            "/v1/projects/p/locations/l/publishers/anthropic/models/m:generateContent",
            "/v1/projects/p/locations/l/publishers/anthropic/models/m:predict",
            "/v1/projects/p/locations/l/publishers/google/models/:generateContent",
            "/v1/projects/p/locations/l/models/m:generateContent",
            "/v1/projects//locations/l/publishers/google/models/m:generateContent",
        ] {
            assert_eq!(classify(p, unknown), Some(VertexOp::Unknown), "{unknown}");
        }
        assert_eq!(classify(Method::Get, GEMINI), Some(VertexOp::Unknown));
        assert_eq!(classify(p, "/v1/models/m:generateContent"), None);
        assert_eq!(classify(p, "/v1/chat/completions"), None);
    }

    #[test]
    fn the_call_is_decoded() {
        let call = call_of(
            "/v1/projects/p-1/locations/us-east5/publishers/anthropic/models/claude-sonnet-4%4020250514:rawPredict",
        )
        .unwrap();
        assert_eq!(
            call,
            VertexCall {
                project: "p-1".into(),
                region: "us-east5".into(),
                publisher: "anthropic".into(),
                model: "claude-sonnet-4@20250514".into(),
                method: "rawPredict".into(),
            }
        );
    }

    #[test]
    fn rawpredict_bodies_are_brought_to_the_messages_form() {
        let mut ok = json!({"anthropic_version": ANTHROPIC_VERSION, "max_tokens": 5});
        to_messages_body(&mut ok, "claude-x".into()).unwrap();
        assert_eq!(ok, json!({"model": "claude-x", "max_tokens": 5}));

        let mut with_model = json!({"anthropic_version": ANTHROPIC_VERSION, "model": "m"});
        assert_eq!(
            to_messages_body(&mut with_model, "x".into()),
            Err("model: Extra inputs are not permitted".into())
        );
        let mut missing = json!({"max_tokens": 5});
        assert_eq!(
            to_messages_body(&mut missing, "x".into()),
            Err("anthropic_version: Field required".into())
        );
        let mut wrong = json!({"anthropic_version": "2023-06-01"});
        assert!(to_messages_body(&mut wrong, "x".into()).is_err());
    }
}
