//! Reading an `AdmissionReview` and writing the one that answers it.
//!
//! The object under review is kept as raw JSON, apart from the typed request: a mutating webhook
//! must pass objects it does not understand, and a validating one must say which field is wrong,
//! so an odd object must never make the whole review unreadable.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, META_API_VERSION_V1, META_KIND, Operation,
};
use kube::core::{DynamicObject, Status, TypeMeta};
use serde_json::Value;

/// An `AdmissionRequest` with its objects as raw JSON.
pub(crate) struct Review {
    /// Everything but `object` and `oldObject`.
    pub(crate) request: AdmissionRequest<DynamicObject>,
    /// The object as it would be stored (absent for DELETE).
    pub(crate) object: Option<Value>,
    /// The stored object (UPDATE and DELETE).
    pub(crate) old_object: Option<Value>,
}

/// A body that is not a readable `AdmissionReview` v1.
#[derive(Debug)]
pub(crate) struct Malformed {
    /// `request.uid`, when it could be read; the API server needs it to match the answer.
    pub(crate) uid: String,
    /// `malformed AdmissionReview: ...`.
    pub(crate) message: String,
}

impl Malformed {
    pub(crate) fn new(uid: impl Into<String>, problem: impl std::fmt::Display) -> Self {
        Self {
            uid: uid.into(),
            message: format!("malformed AdmissionReview: {problem}"),
        }
    }
}

/// Parses a request body as an `admission.k8s.io/v1` `AdmissionReview`.
pub(crate) fn parse_review(body: &[u8]) -> Result<Review, Malformed> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Malformed::new("", format_args!("not JSON: {e}")))?;
    let uid = value
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Value::Object(mut review) = value else {
        return Err(Malformed::new(uid, "not a JSON object"));
    };
    let api_version = review.get("apiVersion").and_then(Value::as_str);
    let kind = review.get("kind").and_then(Value::as_str);
    if api_version != Some(META_API_VERSION_V1) || kind != Some(META_KIND) {
        let found = |v: Option<&str>| v.map_or_else(|| "nothing".to_string(), |v| format!("{v:?}"));
        return Err(Malformed::new(
            uid,
            format_args!(
                "expected apiVersion {META_API_VERSION_V1} and kind {META_KIND}, got {} and {}",
                found(api_version),
                found(kind)
            ),
        ));
    }
    let mut request = match review.remove("request") {
        Some(Value::Object(request)) => request,
        None | Some(Value::Null) => return Err(Malformed::new(uid, "no request")),
        Some(_) => return Err(Malformed::new(uid, "request is not an object")),
    };
    let object = request.remove("object").filter(|v| !v.is_null());
    let old_object = request.remove("oldObject").filter(|v| !v.is_null());
    let mut request: AdmissionRequest<DynamicObject> =
        serde_path_to_error::deserialize(&Value::Object(request))
            .map_err(|e| Malformed::new(uid.clone(), located("request", &e)))?;
    request.types = TypeMeta {
        api_version: META_API_VERSION_V1.to_string(),
        kind: META_KIND.to_string(),
    };
    Ok(Review {
        request,
        object,
        old_object,
    })
}

/// A deserialization error prefixed with the path it happened at, below `root`:
/// `spec.ai.provider.port: invalid type: string "x", expected i32`.
pub(crate) fn located(root: &str, error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = error.path().to_string();
    if path == "." {
        format!("{root}: {}", error.inner())
    } else {
        format!("{root}.{path}: {}", error.inner())
    }
}

/// The operation as the API spells it, for logs.
pub(crate) fn operation_name(operation: &Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// The answer to a malformed review: not allowed, HTTP-style code 400.
pub(crate) fn malformed_response(malformed: &Malformed) -> AdmissionResponse {
    let mut response = AdmissionResponse::invalid(&malformed.message);
    response.uid = malformed.uid.clone();
    response.result = Status::failure(&malformed.message, "BadRequest").with_code(400);
    response
}

/// Refuses the request with `message`, an HTTP-style `code` and a Kubernetes `StatusReason`.
pub(crate) fn deny(
    request: &AdmissionRequest<DynamicObject>,
    message: &str,
    code: u16,
    reason: &str,
) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request).deny(message);
    response.result = Status::failure(message, reason).with_code(code);
    response
}

/// The `AdmissionReview` carrying `response`, as JSON.
///
/// `response.patch` is written as a base64 string, the encoding of Go's `[]byte` that the API
/// documents; kube serializes the bytes as an array of numbers.
pub(crate) fn encode(response: AdmissionResponse) -> Vec<u8> {
    let patch = response.patch.as_deref().map(|p| BASE64.encode(p));
    let review = response.into_review();
    let value = serde_json::to_value(&review).map(|mut value| {
        if let (Some(patch), Some(slot)) = (patch, value.pointer_mut("/response/patch")) {
            *slot = Value::String(patch);
        }
        value
    });
    value
        .and_then(|v| serde_json::to_vec(&v))
        .unwrap_or_else(|e| {
            // Unreachable in practice (every field is a plain string, map or byte vector), but the API
            // server must still get an answer it can read rather than a broken connection.
            tracing::error!(error = %e, "failed to serialize an AdmissionReview");
            let uid = review.response.map(|r| r.uid).unwrap_or_default();
            serde_json::json!({
                "apiVersion": META_API_VERSION_V1,
                "kind": META_KIND,
                "response": {
                    "uid": uid,
                    "allowed": false,
                    "status": {"code": 500, "message": "failed to serialize the AdmissionReview"}
                }
            })
            .to_string()
            .into_bytes()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_review_of_another_api_version_is_malformed_but_keeps_its_uid() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u-1"}}"#;
        let Err(malformed) = parse_review(body) else {
            panic!("v1beta1 must be refused");
        };
        assert_eq!(malformed.uid, "u-1");
        assert_eq!(
            malformed.message,
            "malformed AdmissionReview: expected apiVersion admission.k8s.io/v1 and kind AdmissionReview, got \"admission.k8s.io/v1beta1\" and \"AdmissionReview\""
        );
    }

    #[test]
    fn a_request_missing_a_field_names_it() {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-2"}}"#;
        let Err(malformed) = parse_review(body) else {
            panic!("an incomplete request must be refused");
        };
        assert_eq!(malformed.uid, "u-2");
        assert!(
            malformed
                .message
                .starts_with("malformed AdmissionReview: request: missing field"),
            "{}",
            malformed.message
        );
    }
}
