//! Amazon Bedrock's runtime routes: `POST /model/{modelId}/converse`,
//! `POST /model/{modelId}/converse-stream` and `POST /model/{modelId}/invoke` (Titan text
//! embeddings only, [`crate::titan`]).
//!
//! * `{modelId}` arrives percent-encoded (ARNs hold `:` and `/`) and is decoded for the record;
//!   it must be 1 to 2048 characters.
//! * With AWS credentials configured, every request must be SigV4-signed with them for service
//!   `bedrock` ([`crate::sigv4`]); refusals are 403s. Without credentials nothing is checked, but
//!   the scope's region and access key id are recorded when the request carries a signature.
//! * Bodies are validated as the Converse API does ([`crate::converse`]) and answered by
//!   [`crate::converse_reply`].
//! * Errors, injected `status=` faults included, are Bedrock's: `{"message":".."}` with the
//!   exception named in `x-amzn-errortype` (`ValidationException:http://internal.amazon.com/
//!   coral/com.amazon.bedrock/`; SigV4 refusals carry the `com.amazon.coral.service` suffix, as
//!   AWS's front end sends them), plus an `x-amzn-RequestId`. Other paths under `/model/` are
//!   404 `UnknownOperationException`.

use std::io;
use std::io::Write as _;

use serde::Serialize;

use crate::handlers::{ApiHeaders, Ctx, ErrorReply, Flow, send_error_with};
use crate::http::{Conn, Method, ProviderHead};
use crate::server::Shared;
use crate::sigv4::{self, Rejection};
use crate::{BedrockCall, Credential, converse_reply, percent, titan};

const PREFIX: &str = "/model/";
const MAX_MODEL_ID: usize = 2048;
const BEDROCK_SUFFIX: &str = "http://internal.amazon.com/coral/com.amazon.bedrock/";
const CORAL_SUFFIX: &str = "http://internal.amazon.com/coral/com.amazon.coral.service/";
/// Exceptions AWS's front end raises before Bedrock sees the request.
const FRONT_END_ERRORS: &[&str] = &[
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
    "InvalidSignatureException",
    "UnrecognizedClientException",
    "SerializationException",
    "UnknownOperationException",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BedrockOp {
    Converse,
    ConverseStream,
    /// `InvokeModel`, for Titan text embeddings.
    Invoke,
    /// Any other method or path under `/model/`.
    Unknown,
}

/// `Some` for every path under `/model/`.
pub(crate) fn classify(method: Method, path: &str) -> Option<BedrockOp> {
    let rest = path.strip_prefix(PREFIX)?;
    let op = match rest.split_once('/') {
        Some((model, op)) if !model.is_empty() && method == Method::Post => op,
        _ => return Some(BedrockOp::Unknown),
    };
    Some(match op {
        "converse" => BedrockOp::Converse,
        "converse-stream" => BedrockOp::ConverseStream,
        "invoke" => BedrockOp::Invoke,
        _ => BedrockOp::Unknown,
    })
}

/// The `{modelId}` segment and the operation after it, undecoded.
fn segments(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix(PREFIX)?.split_once('/')
}

/// The decoded model id; `Err` is the 400's message.
fn model_id(path: &str) -> Result<String, String> {
    let raw = segments(path).map_or("", |(m, _)| m);
    let id = percent::decode(raw, false)
        .ok_or_else(|| format!("The model identifier '{raw}' is not validly percent-encoded."))?;
    if id.is_empty() || id.len() > MAX_MODEL_ID {
        return Err(format!(
            "1 validation error detected: Value '{id}' at 'modelId' failed to satisfy \
             constraint: Member must have length between 1 and {MAX_MODEL_ID}"
        ));
    }
    Ok(id)
}

/// Verifies the signature (with credentials configured) and describes the call for the record.
pub(crate) fn authenticate(
    shared: &Shared,
    op: BedrockOp,
    head: &ProviderHead,
    body: &[u8],
) -> (BedrockCall, Option<Credential>, Option<Rejection>) {
    let (raw_model, operation) = segments(head.path()).unwrap_or_default();
    let mut call = BedrockCall {
        model_id: percent::decode(raw_model, false).unwrap_or_else(|| raw_model.to_owned()),
        operation: operation.to_owned(),
        region: None,
        access_key_id: None,
    };
    let scope = head
        .header_values("authorization")
        .next()
        .and_then(|a| sigv4::parse_authorization(a).ok());
    if let Some(auth) = &scope {
        call.region = Some(auth.region.to_owned());
        call.access_key_id = Some(auth.access_key_id.to_owned());
    }
    let Some(creds) = &shared.config.aws else {
        return (call, scope.map(|_| Credential::SigV4), None);
    };
    // Only the known operations are POSTs worth verifying; anything else is a 404 regardless.
    if op == BedrockOp::Unknown {
        return (call, None, None);
    }
    match sigv4::verify(creds, "POST", head, body, crate::unix_now()) {
        Ok(_) => (call, Some(Credential::SigV4), None),
        Err(rejection) => (call, None, Some(rejection)),
    }
}

pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    op: BedrockOp,
    headers: &ApiHeaders<'_>,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    let Some(head) = headers.provider else {
        return send_error(
            shared,
            conn,
            reply(500, "InternalServerException", "missing request head"),
            ctx,
        )
        .await;
    };
    if op == BedrockOp::Unknown {
        let msg = "mock-llm serves only POST /model/{modelId}/converse, \
                   /model/{modelId}/converse-stream and /model/{modelId}/invoke";
        return send_error(
            shared,
            conn,
            reply(404, "UnknownOperationException", msg),
            ctx,
        )
        .await;
    }
    if let Some(rejection) = headers.bedrock_denial {
        let r = reply(403, rejection.error_type, &rejection.message);
        return send_error(shared, conn, r, ctx).await;
    }
    let model = match model_id(head.path()) {
        Ok(m) => m,
        Err(msg) => {
            return send_error(shared, conn, reply(400, "ValidationException", &msg), ctx).await;
        }
    };
    if op == BedrockOp::Invoke {
        return titan::handle(shared, conn, &model, body, ctx).await;
    }
    let stream = op == BedrockOp::ConverseStream;
    converse_reply::handle(shared, conn, &model, stream, body, ctx).await
}

pub(crate) fn reply<'a>(status: u16, exception: &'a str, message: &'a str) -> ErrorReply<'a> {
    ErrorReply::new(status, message, exception, exception)
}

/// The exception Bedrock names for a status, for injected faults.
pub(crate) fn exception_name(status: u16) -> &'static str {
    match status {
        403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        // 400 and the statuses Bedrock has no exception of its own for.
        400..=499 => "ValidationException",
        _ => "InternalServerException",
    }
}

/// `x-amzn-RequestId`, unique per answer and shaped like AWS's UUIDs.
pub(crate) fn request_id(shared: &Shared) -> String {
    format!("00000000-0000-4000-8000-{:012x}", shared.next_id())
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
}

/// Sends `{"message": ..}` with `x-amzn-errortype: {reply.kind}:{suffix}`.
pub(crate) async fn send_error(
    shared: &Shared,
    conn: &mut Conn,
    reply: ErrorReply<'_>,
    ctx: &Ctx,
) -> io::Result<Flow> {
    // A fault's `body=` reaches this header; control characters would forge header lines.
    let kind: String = reply
        .kind
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let suffix = if FRONT_END_ERRORS.contains(&kind.as_str()) {
        CORAL_SUFFIX
    } else {
        BEDROCK_SUFFIX
    };
    let mut extra = Vec::with_capacity(160);
    let _ = write!(
        extra,
        "x-amzn-RequestId: {}\r\nx-amzn-ErrorType: {kind}:{suffix}\r\n",
        request_id(shared)
    );
    let body = serde_json::to_vec(&ErrorBody {
        message: reply.message,
    })?;
    send_error_with(
        shared,
        conn,
        reply.status,
        &body,
        reply.retry_after,
        &extra,
        ctx,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse";

    #[test]
    fn classify_and_decode_model_ids() {
        let p = Method::Post;
        assert_eq!(classify(p, ARN), Some(BedrockOp::Converse));
        assert_eq!(
            classify(p, "/model/amazon.nova-lite-v1%3A0/converse-stream"),
            Some(BedrockOp::ConverseStream)
        );
        assert_eq!(classify(p, "/model/m/invoke"), Some(BedrockOp::Invoke));
        assert_eq!(
            classify(p, "/model/m/invoke-with-response-stream"),
            Some(BedrockOp::Unknown)
        );
        assert_eq!(classify(p, "/model//converse"), Some(BedrockOp::Unknown));
        assert_eq!(classify(p, "/model/a/b/converse"), Some(BedrockOp::Unknown));
        assert_eq!(classify(Method::Get, ARN), Some(BedrockOp::Unknown));
        assert_eq!(classify(p, "/models/m/converse"), None);
        assert_eq!(
            model_id(ARN).unwrap(),
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"
        );
        assert!(model_id("/model/bad%zz/converse").is_err());
        let long = format!("/model/{}/converse", "m".repeat(MAX_MODEL_ID + 1));
        assert!(model_id(&long).unwrap_err().contains("modelId"));
    }

    #[test]
    fn fault_statuses_name_bedrocks_exceptions() {
        assert_eq!(exception_name(400), "ValidationException");
        assert_eq!(exception_name(403), "AccessDeniedException");
        assert_eq!(exception_name(404), "ResourceNotFoundException");
        assert_eq!(exception_name(424), "ModelErrorException");
        assert_eq!(exception_name(429), "ThrottlingException");
        assert_eq!(exception_name(500), "InternalServerException");
        assert_eq!(exception_name(503), "ServiceUnavailableException");
    }
}
