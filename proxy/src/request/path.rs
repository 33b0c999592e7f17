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
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(refuse("dot-segments (`.` or `..`)"));
    }
    if path.contains('\\') {
        return Err(refuse("backslashes"));
    }
    let bytes = path.as_bytes();
    for (at, _) in path.match_indices('%') {
        let encoded = bytes.get(at + 1..at + 3).map(|h| h.to_ascii_lowercase());
        if matches!(encoded.as_deref(), Some(b"2e" | b"2f" | b"5c")) {
            return Err(refuse("encoded `.`, `/` or `\\`"));
        }
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
