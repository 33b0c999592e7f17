//! An error answer of an OpenAI-compatible provider (Azure's `{"error":{"code","message"}}`, or
//! anything else) in exactly OpenAI's shape, `{"error":{"message","type","param","code"}}`, which
//! the Responses API documents and the OpenAI SDKs read.

use serde_json::{Value, json};

/// The most of a provider's message kept.
const MAX_MESSAGE: usize = 1024;

/// `body` (the provider's error answer with `status`) in OpenAI's error shape: its message, type,
/// param and code kept where it has them, the type derived from the status where it has none.
pub fn to_openai_error(body: &[u8], status: u16) -> Vec<u8> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let text = |field: &str| {
        error.and_then(|e| e.get(field)).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let message = text("message").unwrap_or_else(|| {
        let raw = String::from_utf8_lossy(body);
        let raw = raw.trim();
        if raw.is_empty() {
            http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("the provider refused the request")
                .to_string()
        } else {
            raw.to_string()
        }
    });
    let message: String = message.chars().take(MAX_MESSAGE).collect();
    let kind = text("type").unwrap_or_else(|| {
        match status {
            401 => "authentication_error",
            403 => "permission_error",
            429 => "rate_limit_error",
            500.. => "server_error",
            _ => "invalid_request_error",
        }
        .to_string()
    });
    let body = json!({
        "error": { "message": message, "type": kind, "param": text("param"), "code": text("code") }
    });
    body.to_string().into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    fn error(body: &[u8], status: u16) -> Value {
        serde_json::from_slice::<Value>(&to_openai_error(body, status)).unwrap()["error"].clone()
    }

    #[test]
    fn azures_error_gets_a_type_and_a_param() {
        let e = error(
            br#"{"error":{"code":"404","message":"no deployment"}}"#,
            404,
        );
        assert_eq!(
            e,
            json!({"message": "no deployment", "type": "invalid_request_error", "param": null, "code": "404"})
        );
    }

    #[test]
    fn openais_error_is_kept_as_it_is() {
        let body = br#"{"error":{"message":"m","type":"insufficient_quota","param":"x","code":"insufficient_quota"}}"#;
        assert_eq!(
            error(body, 429),
            json!({"message": "m", "type": "insufficient_quota", "param": "x", "code": "insufficient_quota"})
        );
    }

    #[test]
    fn anything_else_becomes_the_message() {
        assert_eq!(
            error(b"upstream exploded", 502)["message"],
            "upstream exploded"
        );
        assert_eq!(error(b"upstream exploded", 502)["type"], "server_error");
        assert_eq!(error(b"", 401)["message"], "Unauthorized");
        assert_eq!(error(b"", 401)["type"], "authentication_error");
        let long = vec![b'a'; 5000];
        assert_eq!(
            error(&long, 400)["message"].as_str().unwrap().len(),
            MAX_MESSAGE
        );
    }
}
