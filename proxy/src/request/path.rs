//! Request paths are checked before routing: a path with dot-segments or with encoded `/`, `\` or
//! `.` could route as one thing and reach a provider as another (`/v1/chat/completions/../../v1/files`
//! matches a chat route and names the files API), so it is refused, never normalized.

use crate::openai::error::ProxyError;

/// `400 invalid_path` unless `path` is free of dot-segments and of encoded separators and dots.
pub fn check_path(path: &str) -> Result<(), ProxyError> {
    let refuse = |why: &str| {
        ProxyError::bad_request(
            "invalid_path",
            format!("the request path must not contain {why}"),
        )
    };
    // One pass over the bytes: the segment just ended, and every `%` or `\\`.
    let bytes = path.as_bytes();
    let mut segment_start = 0;
    for (at, &b) in bytes.iter().enumerate() {
        match b {
            b'/' => {
                if matches!(&bytes[segment_start..at], b"." | b"..") {
                    return Err(refuse("dot-segments (`.` or `..`)"));
                }
                segment_start = at + 1;
            }
            b'\\' => return Err(refuse("backslashes")),
            b'%' => {
                let encoded = bytes
                    .get(at + 1..at + 3)
                    .map(|h| [h[0], h[1].to_ascii_lowercase()]);
                if matches!(encoded, Some([b'2', b'e' | b'f'] | [b'5', b'c'])) {
                    return Err(refuse("encoded `.`, `/` or `\\`"));
                }
            }
            _ => {}
        }
    }
    if matches!(&bytes[segment_start..], b"." | b"..") {
        return Err(refuse("dot-segments (`.` or `..`)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_pass() {
        for ok in [
            "/",
            "/v1/chat/completions",
            "/team/v1/models/gpt-4o",
            "/v1/models/ft:gpt-4o:org..x",
            "/a%20b",
            "/v1/files/file-abc.jsonl",
        ] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn dot_segments_and_encoded_separators_are_refused() {
        for bad in [
            "/v1/chat/completions/../../v1/files/secret",
            "/v1/./chat/completions",
            "/v1/chat/completions/..",
            "/v1/chat/completions/%2e%2e/%2E%2E/v1/files",
            "/v1/chat%2fcompletions",
            "/v1/chat%2Fcompletions",
            "/v1%5cfiles",
            "/v1\\files",
            "/v1/chat/completions/.%2e/files",
        ] {
            let error = check_path(bad).unwrap_err();
            assert_eq!(error.code, "invalid_path", "{bad}");
        }
    }
}
