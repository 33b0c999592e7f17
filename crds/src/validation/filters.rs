//! The rules of HTTPRoute filters that both the compiler (on the Gateway API objects) and the
//! proxy (on its config, [`crate::proxy_config::ProxyConfig::validate`]) enforce, so an accepted
//! route always compiles into a config the proxy runs.

use super::{is_header_name, is_path_char};

/// The most entries in each of a header modifier's `set`, `add` and `remove` (the Gateway API's
/// own bound).
pub const MAX_HEADER_CHANGES: usize = 16;
/// The longest header value a filter may set or add, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 4096;
/// The longest path a redirect or a rewrite may write, in bytes.
pub const MAX_FILTER_PATH_LEN: usize = 1024;
/// The status codes a `RequestRedirect` may answer with.
pub const REDIRECT_STATUS_CODES: [u16; 5] = [301, 302, 303, 307, 308];
/// A redirect's status code when the filter names none.
pub const DEFAULT_REDIRECT_STATUS: u16 = 302;

/// Headers that belong to a hop, not to the message: the proxy's HTTP stack writes them.
const HOP_BY_HOP: [&str; 11] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Headers that carry credentials: the provider's are set by the proxy from the backend's
/// `policies.auth` (and must always win), the client's are checked by an AgentgatewayPolicy.
const CREDENTIALS: [&str; 3] = ["authorization", "x-api-key", "api-key"];
/// Prefixes of the clouds' credential headers (SigV4 and Google tokens cover them).
const CREDENTIAL_PREFIXES: [&str; 2] = ["x-amz-", "x-goog-"];
/// The header the proxy sets from the request's model for route matching.
const MODEL_HEADER: &str = "x-agentgateway-model";

/// What is wrong with `name` as the name of a header a filter changes, or `None`. `name` may be of
/// any case: header names are case-insensitive.
pub fn header_name_problem(name: &str) -> Option<&'static str> {
    if !is_header_name(name) {
        return Some("is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)");
    }
    let lower = name.to_ascii_lowercase();
    if HOP_BY_HOP.contains(&lower.as_str()) {
        return Some(
            "is owned by the proxy (Host, Content-Length and hop-by-hop headers are written by its HTTP stack): filters may not change it",
        );
    }
    if CREDENTIALS.contains(&lower.as_str())
        || CREDENTIAL_PREFIXES.iter().any(|p| lower.starts_with(p))
    {
        return Some(
            "carries credentials: provider keys come from the AgentgatewayBackend's policies.auth and client keys are checked by an AgentgatewayPolicy, so filters may not change it",
        );
    }
    if lower == MODEL_HEADER {
        return Some("is set by the proxy from the request's model: filters may not change it");
    }
    None
}

/// What is wrong with `value` as a header value a filter sets or adds, or `None`: at most
/// [`MAX_HEADER_VALUE_LEN`] bytes of visible ASCII, spaces and tabs, without leading or trailing
/// whitespace (what every HTTP stack accepts and forwards unchanged).
pub fn header_value_problem(value: &str) -> Option<&'static str> {
    if value.len() > MAX_HEADER_VALUE_LEN {
        return Some("must be at most 4096 bytes");
    }
    if !value
        .bytes()
        .all(|b| b == b'\t' || b == b' ' || b.is_ascii_graphic())
    {
        return Some("must be visible ASCII, spaces and tabs (no control characters or non-ASCII)");
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Some("must not start or end with whitespace");
    }
    None
}

/// What is wrong with `path` as a path a redirect or rewrite writes, or `None`: it starts with
/// `/`, has at most [`MAX_FILTER_PATH_LEN`] bytes, only RFC 3986 path characters (no `%`, `?`,
/// `#`, whitespace or non-ASCII) and no `.` or `..` segment, so it is a normalized path the
/// proxy's own path checks accept.
pub fn filter_path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        return Some("must start with /");
    }
    if path.len() > MAX_FILTER_PATH_LEN {
        return Some("must be at most 1024 bytes");
    }
    if path.contains(['%', '?', '#']) {
        return Some("must be a plain path: no % (percent-encoding), ? (query) or # (fragment)");
    }
    if !path.bytes().all(is_path_char) {
        return Some(
            "must contain only RFC 3986 path characters: letters, digits, -._~!$&'()*+,;=:@/",
        );
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Some("must not contain . or .. segments");
    }
    None
}

/// What is wrong with a redirect's scheme, or `None`.
pub fn redirect_scheme_problem(scheme: &str) -> Option<&'static str> {
    (!matches!(scheme, "http" | "https")).then_some("must be http or https")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_and_credential_headers_are_refused_whatever_their_case() {
        for owned in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "connection",
            "Upgrade",
            "Authorization",
            "X-Api-Key",
            "api-key",
            "x-amz-date",
            "x-goog-api-key",
            "x-agentgateway-model",
        ] {
            assert!(header_name_problem(owned).is_some(), "{owned}");
        }
        for free in ["x-team", "User-Agent", "openai-beta", "anthropic-beta"] {
            assert_eq!(header_name_problem(free), None, "{free}");
        }
        assert!(header_name_problem("bad name").is_some());
        assert!(header_name_problem("").is_some());
    }

    #[test]
    fn values_are_visible_ascii_without_surrounding_whitespace() {
        assert_eq!(header_value_problem("a b\tc"), None);
        assert_eq!(header_value_problem(""), None);
        for bad in ["a\r\nb", "é", " a", "a ", "a\0"] {
            assert!(header_value_problem(bad).is_some(), "{bad:?}");
        }
        assert!(header_value_problem(&"a".repeat(4097)).is_some());
    }

    #[test]
    fn filter_paths_are_normalized_plain_paths() {
        for good in ["/", "/v1", "/v1/chat/completions", "/a/"] {
            assert_eq!(filter_path_problem(good), None, "{good}");
        }
        for bad in [
            "", "v1", "/a/../b", "/a/./b", "/a?b", "/a#b", "/a%2f", "/a b",
        ] {
            assert!(filter_path_problem(bad).is_some(), "{bad:?}");
        }
    }
}
