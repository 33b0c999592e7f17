//! Route matching: the first match of the listener's precedence-sorted table that holds, then a
//! backend of its rule by weight. The request's model takes part as the [`MODEL_HEADER`] header,
//! which the proxy sets from the body (and removes when the client sent it), so plain Gateway API
//! header matches route by model.

use std::sync::Arc;

use agentgateway_crds::proxy_config::{
    MatchConfig, NameValue, PathMatchConfig, ValueMatch, compile_pattern,
};
use http::request::Parts;
use regex::Regex;

use crate::state::{RouteTable, RuleRuntime, WeightedRuntime};

/// The header that carries the request's model to route matching. Set by the proxy from the
/// body; a client's own is removed first, never trusted.
pub const MODEL_HEADER: &str = "x-agentgateway-model";

/// A match with its patterns compiled once, when the config is loaded.
pub struct RouteMatch {
    /// The match as configured.
    pub config: MatchConfig,
    /// One matcher per `config.headers` entry.
    headers: Vec<ValueMatcher>,
    /// One matcher per `config.query_params` entry.
    query: Vec<ValueMatcher>,
}

/// How one header or query value is compared.
enum ValueMatcher {
    Exact(Box<[u8]>),
    Pattern(Regex),
    /// A pattern that did not compile (the config is validated first, so this is never built
    /// from a config that loaded): it matches nothing rather than everything.
    Never,
}

impl ValueMatcher {
    fn new(condition: &NameValue) -> Self {
        match condition.match_type {
            ValueMatch::Exact => Self::Exact(condition.value.as_bytes().into()),
            ValueMatch::RegularExpression => {
                compile_pattern(&condition.value).map_or(Self::Never, Self::Pattern)
            }
        }
    }

    fn holds(&self, value: &[u8]) -> bool {
        match self {
            Self::Exact(expected) => **expected == *value,
            Self::Pattern(pattern) => std::str::from_utf8(value).is_ok_and(|v| pattern.is_match(v)),
            Self::Never => false,
        }
    }
}

impl RouteMatch {
    /// Compiles `config`'s patterns.
    pub fn new(config: &MatchConfig) -> Self {
        Self {
            headers: config.headers.iter().map(ValueMatcher::new).collect(),
            query: config.query_params.iter().map(ValueMatcher::new).collect(),
            config: config.clone(),
        }
    }

    /// Whether the match holds for the request; conditions on [`MODEL_HEADER`] are left out when
    /// `ignore_model`.
    fn holds(&self, parts: &Parts, path: &str, host: Option<&str>, ignore_model: bool) -> bool {
        let m = &self.config;
        path_matches(&m.path, path)
            && m.method
                .as_deref()
                .is_none_or(|method| parts.method.as_str() == method)
            && (m.hostnames.is_empty()
                || host.is_some_and(|h| m.hostnames.iter().any(|n| host_matches(n, h))))
            && m.headers.iter().zip(&self.headers).all(|(h, matcher)| {
                (ignore_model && h.name == MODEL_HEADER)
                    || parts
                        .headers
                        .get_all(h.name.as_str())
                        .iter()
                        .any(|v| matcher.holds(v.as_bytes()))
            })
            && m.query_params
                .iter()
                .zip(&self.query)
                .all(|(q, matcher)| query_has(parts.uri.query(), &q.name, matcher))
    }

    /// Whether a request for `model` passes this match's conditions on [`MODEL_HEADER`].
    fn admits_model(&self, model: &str) -> bool {
        self.config
            .headers
            .iter()
            .zip(&self.headers)
            .filter(|(h, _)| h.name == MODEL_HEADER)
            .all(|(_, matcher)| matcher.holds(model.as_bytes()))
    }
}

/// Why no rule matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    /// Nothing on the listener matches the request.
    NoRoute,
    /// Rules match the request's path, method and host, but none serves its model.
    ModelNotServed,
}

/// The rule matching the request, with the match that held. A miss says whether the model was
/// what no rule took.
pub fn find_rule<'a>(
    table: &'a RouteTable,
    parts: &Parts,
) -> Result<(&'a RuleRuntime, &'a RouteMatch), Miss> {
    let path = parts.uri.path();
    let host = request_host(parts);
    let found = table
        .matches
        .iter()
        .find(|m| m.holds(parts, path, host.as_deref(), false))
        .and_then(|m| Some((table.rules.get(m.config.rule as usize)?, m)));
    if let Some(found) = found {
        return Ok(found);
    }
    let by_model = parts.headers.contains_key(MODEL_HEADER)
        && table
            .matches
            .iter()
            .any(|m| m.holds(parts, path, host.as_deref(), true));
    Err(if by_model {
        Miss::ModelNotServed
    } else {
        Miss::NoRoute
    })
}

/// The models the rules matching this request serve, whatever its model: each backend's
/// providers' configured models that the rule's model conditions admit, in table order, once
/// each. Providers that take the client's model name none. Backends whose policy asks for an API
/// key are listed only to a client presenting a valid one; `hidden` says some were left out.
pub fn served_models(table: &RouteTable, parts: &Parts) -> ServedModels {
    let path = parts.uri.path();
    let host = request_host(parts);
    // Hashed once, however many protected backends the list covers.
    let presented = crate::governance::keys::presented_key(&parts.headers)
        .map(crate::governance::keys::key_hash);
    let mut hidden = false;
    let mut models: Vec<(Arc<str>, &'static str)> = Vec::new();
    for m in table
        .matches
        .iter()
        .filter(|m| m.holds(parts, path, host.as_deref(), true))
    {
        let Some(rule) = table.rules.get(m.config.rule as usize) else {
            continue;
        };
        let providers = rule
            .backends
            .iter()
            .filter(|weighted| {
                let keys = weighted.policy.as_ref().and_then(|p| p.api_keys.as_ref());
                let allowed = keys.is_none_or(|keys| {
                    presented.is_some_and(|hash| keys.identify_hash(&hash).is_some())
                });
                hidden |= !allowed;
                allowed
            })
            .filter_map(|weighted| weighted.backend.as_ref())
            .flat_map(|backend| backend.groups.iter().flatten());
        for provider in providers {
            let Some(model) = provider.config.model.as_deref() else {
                continue;
            };
            if m.admits_model(model) && !models.iter().any(|(known, _)| &**known == model) {
                models.push((model.into(), provider.config.kind.as_str()));
            }
        }
    }
    ServedModels { models, hidden }
}

/// The model list of a request.
pub struct ServedModels {
    /// `(model, owner)`, in table order.
    pub models: Vec<(Arc<str>, &'static str)>,
    /// Some backends were left out: they need an API key the request did not present.
    pub hidden: bool,
}

/// Picks a backend of the rule by weight. `None` when every weight is zero; a picked reference
/// that did not resolve has no backend: the Gateway API answers those requests with a 500.
pub fn pick_backend<'r>(
    rule: &'r RuleRuntime,
    rng: &mut fastrand::Rng,
) -> Option<&'r WeightedRuntime> {
    if rule.total_weight == 0 {
        return None;
    }
    let mut ticket = if rule.backends.len() == 1 {
        0
    } else {
        rng.u32(..rule.total_weight)
    };
    for weighted in &rule.backends {
        if ticket < weighted.weight {
            return Some(weighted);
        }
        ticket -= weighted.weight;
    }
    None
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
pub fn request_host(parts: &Parts) -> Option<String> {
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

fn query_has(query: Option<&str>, name: &str, value: &ValueMatcher) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            k == name && value.holds(v.as_bytes())
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
                ..NameValue::default()
            }],
            query_params: vec![NameValue {
                name: "debug".into(),
                value: "1".into(),
                ..NameValue::default()
            }],
            method: Some("POST".into()),
        };
        let hit = parts(
            "POST",
            "/v1/chat/completions?debug=1",
            &[("host", "api.example.com:8080"), ("x-team", "a")],
        );
        let host = request_host(&hit);
        let m = RouteMatch::new(&m);
        assert!(m.holds(&hit, hit.uri.path(), host.as_deref(), false));
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
            assert!(!m.holds(&miss, miss.uri.path(), host.as_deref(), false));
        }
    }

    fn model_match(pattern: &str, match_type: ValueMatch) -> RouteMatch {
        RouteMatch::new(&MatchConfig {
            path: PathMatchConfig::PathPrefix("/v1".into()),
            headers: vec![NameValue {
                name: MODEL_HEADER.into(),
                value: pattern.into(),
                match_type,
            }],
            ..MatchConfig::default()
        })
    }

    #[test]
    fn a_regular_expression_matches_the_whole_value() {
        let m = model_match("gpt-.*|o[0-9]+", ValueMatch::RegularExpression);
        let holds = |model: &str| {
            let p = parts("POST", "/v1/chat/completions", &[(MODEL_HEADER, model)]);
            m.holds(&p, p.uri.path(), None, false)
        };
        assert!(holds("gpt-4o-mini"));
        assert!(holds("o3"));
        assert!(!holds("my-gpt-4o"), "anchored at the start");
        assert!(!holds("o3-mini"), "anchored at the end");
        let none = parts("POST", "/v1/chat/completions", &[]);
        assert!(!m.holds(&none, none.uri.path(), None, false));
        assert!(
            m.holds(&none, none.uri.path(), None, true),
            "model left out"
        );
        assert!(m.admits_model("gpt-4o") && !m.admits_model("claude-3"));
        let exact = model_match("gpt-4o", ValueMatch::Exact);
        assert!(exact.admits_model("gpt-4o") && !exact.admits_model("gpt-4o-mini"));
    }

    #[test]
    fn a_pattern_that_does_not_compile_matches_nothing() {
        let m = model_match("(", ValueMatch::RegularExpression);
        let p = parts("POST", "/v1/chat/completions", &[(MODEL_HEADER, "(")]);
        assert!(!m.holds(&p, p.uri.path(), None, false));
    }

    #[test]
    fn regular_expression_query_parameters_match_whole_values() {
        let m = RouteMatch::new(&MatchConfig {
            query_params: vec![NameValue {
                name: "v".into(),
                value: "[0-9]+".into(),
                match_type: ValueMatch::RegularExpression,
            }],
            ..MatchConfig::default()
        });
        let holds = |uri: &str| {
            let p = parts("GET", uri, &[]);
            m.holds(&p, p.uri.path(), None, false)
        };
        assert!(holds("/x?a=b&v=12"));
        assert!(!holds("/x?v=12a"));
        assert!(!holds("/x"));
    }
}
