//! Route matching: the first match of the listener's precedence-sorted table that holds, then a
//! backend of its rule by weight.

use std::sync::Arc;

use agentgateway_crds::proxy_config::{MatchConfig, PathMatchConfig};
use http::request::Parts;

use crate::state::{BackendRuntime, RouteTable, RuleRuntime};

/// The rule matching the request, if any.
pub fn find_rule<'a>(table: &'a RouteTable, parts: &Parts) -> Option<&'a RuleRuntime> {
    let path = parts.uri.path();
    let host = request_host(parts);
    table
        .matches
        .iter()
        .find(|m| matches(m, parts, path, host.as_deref()))
        .and_then(|m| table.rules.get(m.rule as usize))
}

/// Picks a backend of the rule by weight. `None` when the picked reference did not resolve or
/// every weight is zero: the Gateway API answers those requests with a 500.
pub fn pick_backend(rule: &RuleRuntime, rng: &mut fastrand::Rng) -> Option<Arc<BackendRuntime>> {
    if rule.total_weight == 0 {
        return None;
    }
    let mut ticket = if rule.backends.len() == 1 {
        0
    } else {
        rng.u32(..rule.total_weight)
    };
    for (backend, weight) in &rule.backends {
        if ticket < *weight {
            return backend.clone();
        }
        ticket -= weight;
    }
    None
}

fn matches(m: &MatchConfig, parts: &Parts, path: &str, host: Option<&str>) -> bool {
    path_matches(&m.path, path)
        && m.method
            .as_deref()
            .is_none_or(|method| parts.method.as_str() == method)
        && (m.hostnames.is_empty()
            || host.is_some_and(|h| m.hostnames.iter().any(|n| host_matches(n, h))))
        && m.headers.iter().all(|h| {
            parts
                .headers
                .get_all(h.name.as_str())
                .iter()
                .any(|v| v.as_bytes() == h.value.as_bytes())
        })
        && m.query_params
            .iter()
            .all(|q| query_has(parts.uri.query(), &q.name, &q.value))
}

fn path_matches(rule: &PathMatchConfig, path: &str) -> bool {
    match rule {
        PathMatchConfig::Exact(value) => path == value,
        PathMatchConfig::PathPrefix(value) => has_path_prefix(path, value),
    }
}

/// Whether `path` starts with `prefix` at a `/` boundary (`/` matches everything).
pub fn has_path_prefix(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    prefix.is_empty()
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix('*') {
        Some(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        None => pattern == host,
    }
}

/// The request's host, lower case, without port.
fn request_host(parts: &Parts) -> Option<String> {
    let raw = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.host())?;
    let host = if raw.starts_with('[') {
        raw.split_inclusive(']').next().unwrap_or(raw)
    } else {
        raw.split(':').next().unwrap_or(raw)
    };
    Some(host.to_ascii_lowercase())
}

fn query_has(query: Option<&str>, name: &str, value: &str) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            k == name && v == value
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgateway_crds::proxy_config::NameValue;

    fn parts(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn path_prefix_matches_at_segment_boundaries() {
        let rule = PathMatchConfig::PathPrefix("/v1".into());
        assert!(path_matches(&rule, "/v1"));
        assert!(path_matches(&rule, "/v1/chat/completions"));
        assert!(!path_matches(&rule, "/v10"));
        assert!(path_matches(
            &PathMatchConfig::PathPrefix("/".into()),
            "/anything"
        ));
        assert!(path_matches(
            &PathMatchConfig::PathPrefix("/v1/".into()),
            "/v1/x"
        ));
    }

    #[test]
    fn exact_path_method_headers_query_and_host_all_must_hold() {
        let m = MatchConfig {
            rule: 0,
            hostnames: vec!["*.example.com".into()],
            path: PathMatchConfig::Exact("/v1/chat/completions".into()),
            headers: vec![NameValue {
                name: "x-team".into(),
                value: "a".into(),
            }],
            query_params: vec![NameValue {
                name: "debug".into(),
                value: "1".into(),
            }],
            method: Some("POST".into()),
        };
        let hit = parts(
            "POST",
            "/v1/chat/completions?debug=1",
            &[("host", "api.example.com:8080"), ("x-team", "a")],
        );
        let host = request_host(&hit);
        assert!(matches(&m, &hit, hit.uri.path(), host.as_deref()));
        for miss in [
            parts(
                "GET",
                "/v1/chat/completions?debug=1",
                &[("host", "api.example.com"), ("x-team", "a")],
            ),
            parts(
                "POST",
                "/v1/chat/completions",
                &[("host", "api.example.com"), ("x-team", "a")],
            ),
            parts(
                "POST",
                "/v1/chat/completions?debug=1",
                &[("host", "example.com"), ("x-team", "a")],
            ),
            parts(
                "POST",
                "/v1/chat/completions?debug=1",
                &[("host", "a.example.com"), ("x-team", "b")],
            ),
        ] {
            let host = request_host(&miss);
            assert!(!matches(&m, &miss, miss.uri.path(), host.as_deref()));
        }
    }
}
