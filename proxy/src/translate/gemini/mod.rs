//! Google Gemini's `generateContent` API (`POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent?alt=sse`, the key in `x-goog-api-key`).

pub mod request;
pub mod response;
pub mod stream;

/// The path of `model`'s method: `generateContent`, or `streamGenerateContent` for a stream.
pub fn path(model: &str, stream: bool) -> String {
    if stream {
        format!("/v1beta/models/{model}:streamGenerateContent")
    } else {
        format!("/v1beta/models/{model}:generateContent")
    }
}

/// Whether `model` can go into the path as it is (Gemini model ids are letters, digits, `-`,
/// `.` and `_`; anything else could change the path or add a query).
pub fn is_path_safe(model: &str) -> bool {
    !model.is_empty()
        && model.len() <= 128
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}
