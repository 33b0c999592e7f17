//! Headers between client and provider: hop-by-hop headers (and those a `Connection` header
//! names) stay on their hop, and the gateway's key never travels with a client's account headers,
//! nor do a provider's account answers to the gateway's key reach clients.

use http::HeaderMap;
use http::header::{self, HeaderName};

/// Client headers that carry a credential or select an account: meaningless (or harmful) with the
/// gateway's key.
const CLIENT_ACCOUNT_HEADERS: [&str; 4] = [
    "openai-organization",
    "openai-project",
    "x-api-key",
    "api-key",
];
/// Prefixes of the clouds' credential and account headers (`x-amz-security-token`, `x-amz-date`,
/// `x-goog-api-key`, `x-goog-user-project`, ...), which a client must not add to the gateway's
/// signature or token.
const CLIENT_CLOUD_PREFIXES: [&str; 2] = ["x-amz-", "x-goog-"];
/// Provider answers about the account of the gateway's key.
const PROVIDER_ACCOUNT_HEADERS: [&str; 4] = [
    "set-cookie",
    "set-cookie2",
    "openai-organization",
    "openai-project",
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The headers a `Connection` header names (RFC 9110 §7.6.1): hop-by-hop as well.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect()
}

/// Removes hop-by-hop headers and those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in connection_named(headers) {
        headers.remove(name);
    }
    let hop: Vec<HeaderName> = headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    for name in hop {
        headers.remove(name);
    }
}

/// The client's headers as a provider receives them: hop-by-hop, `Host` and `Content-Length`
/// removed (the proxy sets its own), and, when the gateway's key is used, none of the client's
/// credentials or account selectors.
pub fn upstream_headers(client: &HeaderMap, gateway_key: bool) -> HeaderMap {
    let named = connection_named(client);
    let mut headers = HeaderMap::with_capacity(client.len() + 2);
    for (name, value) in client {
        if is_hop_by_hop(name)
            || named.contains(name)
            || name == header::HOST
            || name == header::CONTENT_LENGTH
            || name == crate::route::MODEL_HEADER
            || (gateway_key
                && (name == header::AUTHORIZATION
                    || CLIENT_ACCOUNT_HEADERS.contains(&name.as_str())
                    || CLIENT_CLOUD_PREFIXES
                        .iter()
                        .any(|prefix| name.as_str().starts_with(prefix))))
        {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    headers
}

/// A provider's response headers as the client receives them.
pub fn client_headers(headers: &mut HeaderMap, gateway_key: bool) {
    strip_hop_by_hop(headers);
    if gateway_key {
        for name in PROVIDER_ACCOUNT_HEADERS {
            headers.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        headers
    }

    #[test]
    fn the_gateways_key_travels_without_the_clients_account_headers() {
        let client = map(&[
            ("authorization", "Bearer client"),
            ("x-api-key", "client"),
            ("openai-organization", "org-client"),
            ("openai-project", "proj-client"),
            ("api-key", "azure-client"),
            ("x-amz-security-token", "client-session"),
            ("x-amz-date", "20200101T000000Z"),
            ("x-goog-user-project", "client-billing"),
            ("x-goog-api-key", "client"),
            ("x-request-id", "r1"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("host", "gw"),
            ("content-length", "5"),
        ]);
        let with_key = upstream_headers(&client, true);
        let names: Vec<&str> = with_key.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-request-id"]);
        let keyless = upstream_headers(&client, false);
        for kept in [
            "authorization",
            "x-api-key",
            "openai-organization",
            "openai-project",
            "api-key",
            "x-amz-security-token",
            "x-goog-user-project",
        ] {
            assert!(keyless.contains_key(kept), "{kept}");
        }
        assert!(!keyless.contains_key("x-secret-hop"));
    }

    #[test]
    fn without_tracing_the_clients_trace_context_passes_unchanged() {
        // With --otlp-endpoint the request's span replaces these (`RequestTrace::inject`);
        // without it they are the client's business, forwarded as they came.
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let client = map(&[
            ("traceparent", traceparent),
            ("tracestate", "vendor=abc,other=1"),
            ("authorization", "Bearer client"),
        ]);
        for gateway_key in [true, false] {
            let upstream = upstream_headers(&client, gateway_key);
            assert_eq!(upstream["traceparent"], traceparent);
            assert_eq!(upstream["tracestate"], "vendor=abc,other=1");
        }
    }

    #[test]
    fn provider_account_answers_to_the_gateways_key_stay_with_the_gateway() {
        let mut headers = map(&[
            ("set-cookie", "a=b"),
            ("openai-organization", "org-gw"),
            ("openai-project", "proj"),
            ("x-request-id", "r"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
        ]);
        let mut keyless = headers.clone();
        client_headers(&mut headers, true);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-request-id"]);
        client_headers(&mut keyless, false);
        assert!(keyless.contains_key("set-cookie"));
        assert!(!keyless.contains_key("x-hop"));
    }
}
