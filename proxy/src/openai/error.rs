//! OpenAI-shaped error bodies: `{"error": {"message", "type", "code"}}`, so SDKs surface our errors
//! the way they surface the provider's.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::ProxyBody;
use crate::record::RecordGuard;

/// An error the proxy answers itself.
#[derive(Debug, Clone)]
pub struct ProxyError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message; never contains a key.
    pub message: String,
    /// OpenAI error type (`invalid_request_error`, `server_error`, ...).
    pub kind: &'static str,
    /// Machine-readable code.
    pub code: &'static str,
    /// `Retry-After` in seconds, for 503.
    pub retry_after_secs: Option<u64>,
    /// `Allow`, for 405.
    pub allow: Option<&'static str>,
}

impl ProxyError {
    /// A new error with the given status, type and code.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: String,
    ) -> Self {
        Self {
            status,
            message,
            kind,
            code,
            retry_after_secs: None,
            allow: None,
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            code,
            message.into(),
        )
    }

    /// 503 `overloaded`: a budget is exhausted; `Retry-After: 1`.
    pub fn overloaded(message: impl Into<String>) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "overloaded",
            message.into(),
        );
        error.retry_after_secs = Some(1);
        error
    }

    /// The JSON body, in OpenAI's shape, or in Anthropic's for a client of Anthropic's API
    /// (whose type says what the code says in OpenAI's).
    pub fn body(&self, anthropic: bool) -> Bytes {
        if anthropic {
            return Bytes::from(crate::client_api::messages::response::error_body(
                self.status.as_u16(),
                &format!("{} ({})", self.message, self.code),
            ));
        }
        let body = serde_json::json!({
            "error": { "message": self.message, "type": self.kind, "code": self.code, "param": null }
        });
        Bytes::from(body.to_string())
    }

    /// The full HTTP response, in the API of the request's operation; `record` is finished when
    /// it has been sent.
    pub fn into_response(self, mut record: RecordGuard) -> Response<ProxyBody> {
        let body = self.body(record.record().operation.anthropic_errors());
        let mut response = Response::new(ProxyBody::full(body, record));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// The SSE event that ends a stream the upstream cut, so clients raise an error instead of
/// mistaking a truncated answer for a complete one.
pub fn sse_error_event(message: &str, code: &str) -> Bytes {
    let data = serde_json::json!({
        "error": { "message": message, "type": "server_error", "code": code, "param": null }
    });
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}
