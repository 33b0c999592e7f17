//! Amazon Bedrock's Converse API (`POST /model/{modelId}/converse`, `/converse-stream` for a
//! binary event stream, SigV4-signed): one request and answer shape for every model Bedrock
//! serves, the model named in the path.

pub mod request;
pub mod response;
pub mod stream;

/// The content type of a `converse-stream` answer: AWS's binary event stream, not SSE.
pub const EVENT_STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// The path of `model_id`'s Converse method: `converse`, or `converse-stream` for a stream.
///
/// Model ids may be ARNs (`arn:aws:bedrock:...:inference-profile/...`) whose `:` and `/` are
/// data, not path syntax: every byte outside RFC 3986's unreserved set (`A-Za-z0-9-._~`) is
/// percent-encoded, so nothing in the model can add a segment, a query or a fragment. (AWS's
/// SDKs send the same encoding; SigV4 then encodes the path once more for its canonical request.)
pub fn converse_path(model_id: &str, stream: bool) -> String {
    let method = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    format!("/model/{}/{method}", percent_encode(model_id))
}

/// The path of `model_id`'s `InvokeModel` (Titan's embeddings), the id encoded as for
/// [`converse_path`].
pub fn invoke_path(model_id: &str) -> String {
    format!("/model/{}/invoke", percent_encode(model_id))
}

/// `text` with every byte outside the unreserved set as `%XX`; the dots of `.` and `..` too, as
/// those whole segments mean "this" and "parent" directory to whoever normalizes the path.
fn percent_encode(text: &str) -> String {
    use std::fmt::Write;
    let dot_segment = matches!(text, "." | "..");
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~');
        if unreserved && !dot_segment {
            out.push(char::from(byte));
        } else {
            // Writing to a `String` cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_id_is_one_encoded_path_segment() {
        assert_eq!(
            converse_path("anthropic.claude-3-5-sonnet-20240620-v1:0", false),
            "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
        );
        assert_eq!(
            converse_path(
                "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.meta.llama3-2-1b-instruct-v1:0",
                true
            ),
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.meta.llama3-2-1b-instruct-v1%3A0/converse-stream"
        );
        // Nothing in the model can leave its segment.
        let path = converse_path("../x?y=1#z %2F é~", false);
        assert_eq!(path, "/model/..%2Fx%3Fy%3D1%23z%20%252F%20%C3%A9~/converse");
        assert_eq!(path.matches('/').count(), 3);
        assert_eq!(converse_path("..", false), "/model/%2E%2E/converse");
        assert_eq!(converse_path(".", true), "/model/%2E/converse-stream");
        assert_eq!(
            invoke_path("amazon.titan-embed-text-v2:0"),
            "/model/amazon.titan-embed-text-v2%3A0/invoke"
        );
    }
}
