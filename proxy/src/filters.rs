//! A rule's HTTPRoute filters and timeouts at run time: header names and values parsed once, when
//! the config is loaded, so applying a modifier only inserts prepared values; a rule without
//! filters has none of this (`None`), and its requests pay nothing.

use std::sync::Arc;
use std::time::Duration;

use agentgateway_crds::proxy_config::limits::MAX_DURATION_MS;
use agentgateway_crds::proxy_config::{
    HeaderModifierConfig, PathModifierConfig, RedirectConfig, RuleConfig,
};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode, Uri};

use crate::openai::error::ProxyError;

/// A `RequestHeaderModifier` or `ResponseHeaderModifier`, parsed.
#[derive(Debug)]
pub struct HeaderModifier {
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
}

impl HeaderModifier {
    /// Parses a validated config; `None` when it changes nothing. Entries that do not parse
    /// (never, after [`agentgateway_crds::proxy_config::ProxyConfig::validate`]) are left out.
    pub fn new(config: Option<&HeaderModifierConfig>) -> Option<Arc<Self>> {
        let config = config.filter(|c| !c.is_empty())?;
        let pairs = |headers: &[agentgateway_crds::proxy_config::HeaderConfig]| {
            headers
                .iter()
                .filter_map(|h| {
                    let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
                    let value = HeaderValue::from_str(&h.value).ok()?;
                    Some((name, value))
                })
                .collect()
        };
        Some(Arc::new(Self {
            set: pairs(&config.set),
            add: pairs(&config.add),
            remove: config
                .remove
                .iter()
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect(),
        }))
    }

    /// Sets, adds, then removes.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }
}

/// The response header modifiers of a request's rule and backend, applied in that order to
/// whatever the client receives once a rule matched (the proxy's own errors included).
#[derive(Default)]
pub struct ResponseModifiers {
    /// The rule's.
    pub rule: Option<Arc<HeaderModifier>>,
    /// The picked backendRef's.
    pub backend: Option<Arc<HeaderModifier>>,
}

impl ResponseModifiers {
    /// Applies both.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for modifier in [&self.rule, &self.backend].into_iter().flatten() {
            modifier.apply(headers);
        }
    }
}

/// A rule's filters and timeouts.
pub struct RuleFilters {
    /// Applied to the request sent upstream, before the backendRef's.
    pub request_headers: Option<Arc<HeaderModifier>>,
    /// Applied to the response, before the backendRef's.
    pub response_headers: Option<Arc<HeaderModifier>>,
    /// The rule answers with a redirect.
    pub redirect: Option<RedirectConfig>,
    /// The path rewrite.
    pub rewrite_path: Option<PathModifierConfig>,
    /// The whole request's deadline, replacing the backend's.
    pub request_timeout: Option<Duration>,
    /// One attempt's deadline, replacing the provider's.
    pub attempt_timeout: Option<Duration>,
}

/// The longest deadline: what "no timeout" (`0s`) means, as every duration is bounded.
const NO_TIMEOUT: Duration = Duration::from_millis(MAX_DURATION_MS);

fn timeout(ms: Option<u64>) -> Option<Duration> {
    ms.map(|ms| match ms {
        0 => NO_TIMEOUT,
        ms => Duration::from_millis(ms),
    })
}

impl RuleFilters {
    /// The rule's filters, or `None` when it has none.
    pub fn new(rule: &RuleConfig) -> Option<Arc<Self>> {
        let filters = Self {
            request_headers: HeaderModifier::new(rule.request_headers.as_ref()),
            response_headers: HeaderModifier::new(rule.response_headers.as_ref()),
            redirect: rule.redirect.clone(),
            rewrite_path: rule.rewrite_path.clone(),
            request_timeout: timeout(rule.request_timeout_ms),
            attempt_timeout: timeout(rule.backend_request_timeout_ms),
        };
        let none = filters.request_headers.is_none()
            && filters.response_headers.is_none()
            && filters.redirect.is_none()
            && filters.rewrite_path.is_none()
            && filters.request_timeout.is_none()
            && filters.attempt_timeout.is_none();
        (!none).then(|| Arc::new(filters))
    }
}

/// `path` with the modifier applied; `matched_prefix` is the `PathPrefix` the request matched.
pub fn modified_path(path: &str, modifier: &PathModifierConfig, matched_prefix: &str) -> String {
    match modifier {
        PathModifierConfig::ReplaceFullPath(full) => full.clone(),
        PathModifierConfig::ReplacePrefixMatch(replacement) => {
            // The match holds at a `/` boundary, so the rest is empty or starts with `/`.
            let prefix = matched_prefix.trim_end_matches('/');
            let rest = path.get(prefix.len()..).unwrap_or("");
            let replacement = replacement.trim_end_matches('/');
            let joined = format!("{replacement}{rest}");
            if joined.is_empty() {
                "/".to_string()
            } else {
                joined
            }
        }
    }
}

/// `uri` with its path replaced and its query kept.
pub fn with_path(uri: &Uri, path: &str) -> Result<Uri, ProxyError> {
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().map_err(|_| invalid_path())?);
    Uri::from_parts(parts).map_err(|_| invalid_path())
}

fn invalid_path() -> ProxyError {
    ProxyError::bad_request("invalid_path", "the rewritten path is not a valid URI path")
}

/// What the redirect needs to know of the request.
pub struct RedirectRequest<'a> {
    /// The request's head.
    pub parts: &'a http::request::Parts,
    /// The request's host, lower case, without port.
    pub host: Option<&'a str>,
    /// The `PathPrefix` the request matched (`/` for an exact match, which a prefix
    /// replacement never has).
    pub matched_prefix: &'a str,
    /// The listener's port, when it has one.
    pub listener_port: Option<u16>,
    /// `https` on a listener that terminates TLS, else `http`: the listener knows, not the
    /// client's `:scheme`.
    pub scheme: &'static str,
}

/// The redirect answer: the status and a `Location` built as the Gateway API says: scheme, host
/// and path from the filter or the request, the port from the filter, else the scheme's
/// well-known port when the filter sets the scheme, else the listener's; a default port (80
/// for http, 443 for https) is left out.
pub fn redirect(
    config: &RedirectConfig,
    request: &RedirectRequest<'_>,
) -> Result<Response<Bytes>, ProxyError> {
    let parts = request.parts;
    let scheme = config.scheme.as_deref().unwrap_or(request.scheme);
    let host = config.hostname.as_deref().or(request.host).ok_or_else(|| {
        ProxyError::bad_request(
            "host_required",
            "the redirect needs the request's Host header",
        )
    })?;
    let well_known = match scheme {
        "https" => 443,
        _ => 80,
    };
    let port = match (config.port, &config.scheme) {
        (Some(port), _) => port,
        (None, Some(_)) => well_known,
        (None, None) => request
            .listener_port
            .or_else(|| host_header_port(parts))
            .unwrap_or(well_known),
    };
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let path = match &config.path {
        Some(modifier) => modified_path(parts.uri.path(), modifier, request.matched_prefix),
        None => parts.uri.path().to_string(),
    };
    let mut location = if port == well_known {
        format!("{scheme}://{host}{path}")
    } else {
        format!("{scheme}://{host}:{port}{path}")
    };
    if let Some(query) = parts.uri.query() {
        location.push('?');
        location.push_str(query);
    }
    let location = HeaderValue::from_str(&location).map_err(|_| invalid_path())?;
    let status = StatusCode::from_u16(config.status_code).unwrap_or(StatusCode::FOUND);
    let mut response = Response::new(Bytes::new());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::LOCATION, location);
    Ok(response)
}

/// The port of the request's `Host` header, if it names one.
fn host_header_port(parts: &http::request::Parts) -> Option<u16> {
    let host = parts.headers.get(http::header::HOST)?.to_str().ok()?;
    let (_, port) = host.rsplit_once(':')?;
    // `[::1]` has colons but no port.
    port.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_replacement_keeps_the_rest_of_the_path() {
        let replace = |path: &str, prefix: &str, with: &str| {
            modified_path(
                path,
                &PathModifierConfig::ReplacePrefixMatch(with.into()),
                prefix,
            )
        };
        assert_eq!(replace("/foo/bar", "/foo", "/xyz"), "/xyz/bar");
        assert_eq!(replace("/foo/bar", "/foo/", "/xyz/"), "/xyz/bar");
        assert_eq!(replace("/foo", "/foo", "/xyz"), "/xyz");
        assert_eq!(replace("/foo/bar", "/foo", "/"), "/bar");
        assert_eq!(replace("/foo", "/foo", "/"), "/");
        assert_eq!(
            replace("/team-a/v1/chat/completions", "/team-a", "/"),
            "/v1/chat/completions"
        );
        assert_eq!(replace("/x", "/", "/v1"), "/v1/x");
    }

    fn parts(uri: &str, host: &str) -> http::request::Parts {
        http::Request::builder()
            .uri(uri)
            .header("host", host)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    fn location(config: &RedirectConfig, uri: &str, host: &str, listener: Option<u16>) -> String {
        location_on(config, uri, host, listener, "http")
    }

    fn location_on(
        config: &RedirectConfig,
        uri: &str,
        host: &str,
        listener: Option<u16>,
        scheme: &'static str,
    ) -> String {
        let parts = parts(uri, host);
        let bare = host.split(':').next().unwrap();
        let request = RedirectRequest {
            parts: &parts,
            host: Some(bare),
            matched_prefix: "/old",
            listener_port: listener,
            scheme,
        };
        let response = redirect(config, &request).unwrap();
        response.headers()["location"].to_str().unwrap().to_string()
    }

    fn config() -> RedirectConfig {
        RedirectConfig {
            scheme: None,
            hostname: None,
            port: None,
            path: None,
            status_code: 302,
        }
    }

    #[test]
    fn redirect_locations_follow_the_gateway_api_port_rules() {
        let https = RedirectConfig {
            scheme: Some("https".into()),
            ..config()
        };
        assert_eq!(
            location(&https, "/a?b=1", "gw:8080", Some(8080)),
            "https://gw/a?b=1"
        );
        assert_eq!(
            location(&config(), "/a", "gw:8080", Some(8080)),
            "http://gw:8080/a"
        );
        assert_eq!(location(&config(), "/a", "gw", Some(80)), "http://gw/a");
        // On an HTTPS listener the scheme is the listener's, whatever `:scheme` the client sent.
        assert_eq!(
            location_on(&config(), "http://gw/a", "gw", Some(443), "https"),
            "https://gw/a"
        );
        assert_eq!(
            location_on(&config(), "/a", "gw:8443", Some(8443), "https"),
            "https://gw:8443/a"
        );
        assert_eq!(
            location_on(&config(), "https://gw/a", "gw", Some(80), "http"),
            "http://gw/a"
        );
        let moved = RedirectConfig {
            hostname: Some("new.example".into()),
            port: Some(8443),
            path: Some(PathModifierConfig::ReplacePrefixMatch("/new".into())),
            status_code: 301,
            ..https
        };
        assert_eq!(
            location(&moved, "/old/x", "gw", Some(80)),
            "https://new.example:8443/new/x"
        );
    }
}
