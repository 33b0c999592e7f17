//! HTTPRoute matches into [`MatchConfig`]s: defaults applied, names normalized, and the match types
//! the proxy does not implement reported instead of silently matching something else.

use agentgateway_crds::gateway_api::HTTPRouteMatch;
use agentgateway_crds::proxy_config::validate::pattern_problem;
use agentgateway_crds::proxy_config::{
    MatchConfig, NameValue, PathMatchConfig, ValueMatch, compile_pattern,
};
use agentgateway_crds::validation::is_header_name;

use crate::diagnostic::{Diagnostic, Reason};
use crate::inputs::ObjectRef;

/// The match a rule without matches has: every path.
pub(crate) fn match_everything() -> MatchConfig {
    MatchConfig {
        path: PathMatchConfig::PathPrefix("/".to_string()),
        ..MatchConfig::default()
    }
}

/// Compiles one match at `field` (`spec.rules[r].matches[m]`). `rule` and `hostnames` are filled in
/// later, per listener.
pub(crate) fn compile_match(
    route: &ObjectRef,
    field: &str,
    m: &HTTPRouteMatch,
) -> Result<MatchConfig, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let path = m.path.as_ref();
    let value = path
        .and_then(|p| p.value.clone())
        .unwrap_or_else(|| "/".to_string());
    let path_type = path
        .and_then(|p| p.match_type.as_deref())
        .unwrap_or("PathPrefix");
    let path = match path_type {
        "Exact" => Some(PathMatchConfig::Exact(value.clone())),
        "PathPrefix" => Some(PathMatchConfig::PathPrefix(value.clone())),
        other => {
            diagnostics.push(unsupported_type(
                route,
                &format!("{field}.path.type"),
                "path",
                other,
            ));
            None
        }
    };
    if path.is_some() && !value.starts_with('/') {
        let message = format!("{value:?} must start with '/'");
        diagnostics.push(Diagnostic::new(
            route,
            format!("{field}.path.value"),
            Reason::InvalidSpec,
            message,
        ));
    }

    let mut headers: Vec<NameValue> = Vec::new();
    for (i, header) in m.headers.iter().enumerate() {
        let kind = header.match_type.as_deref().unwrap_or("Exact");
        let Some(match_type) = value_match(
            route,
            &format!("{field}.headers[{i}]"),
            "header",
            kind,
            &header.value,
            &mut diagnostics,
        ) else {
            continue;
        };
        if !is_header_name(&header.name) {
            let message = format!(
                "{:?} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
                header.name
            );
            diagnostics.push(Diagnostic::new(
                route,
                format!("{field}.headers[{i}].name"),
                Reason::InvalidSpec,
                message,
            ));
            continue;
        }
        // Header names are case-insensitive; Gateway API says only the first of equal names counts.
        let name = header.name.to_ascii_lowercase();
        if !headers.iter().any(|h| h.name == name) {
            headers.push(NameValue {
                name,
                value: header.value.clone(),
                match_type,
            });
        }
    }

    let mut query_params: Vec<NameValue> = Vec::new();
    for (i, param) in m.query_params.iter().enumerate() {
        let kind = param.match_type.as_deref().unwrap_or("Exact");
        let Some(match_type) = value_match(
            route,
            &format!("{field}.queryParams[{i}]"),
            "query parameter",
            kind,
            &param.value,
            &mut diagnostics,
        ) else {
            continue;
        };
        // Query parameter names are case-sensitive; again only the first of equal names counts.
        if !query_params.iter().any(|q| q.name == param.name) {
            query_params.push(NameValue {
                name: param.name.clone(),
                value: param.value.clone(),
                match_type,
            });
        }
    }

    match path {
        Some(path) if diagnostics.is_empty() => Ok(MatchConfig {
            rule: 0,
            hostnames: Vec::new(),
            path,
            headers,
            query_params,
            method: m.method.as_ref().map(|method| method.to_ascii_uppercase()),
        }),
        _ => Err(diagnostics),
    }
}

/// The match type of a header or query parameter match at `field`, its pattern checked.
fn value_match(
    route: &ObjectRef,
    field: &str,
    what: &str,
    kind: &str,
    value: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<ValueMatch> {
    match kind {
        "Exact" => Some(ValueMatch::Exact),
        "RegularExpression" => match compile_pattern(value) {
            Ok(_) => Some(ValueMatch::RegularExpression),
            Err(e) => {
                let at = format!("{field}.value");
                diagnostics.push(Diagnostic::new(
                    route,
                    at,
                    Reason::InvalidSpec,
                    pattern_problem(&e),
                ));
                None
            }
        },
        other => {
            let at = format!("{field}.type");
            diagnostics.push(unsupported_type(route, &at, what, other));
            None
        }
    }
}

fn unsupported_type(route: &ObjectRef, field: &str, what: &str, kind: &str) -> Diagnostic {
    let message = if kind == "RegularExpression" {
        format!("RegularExpression {what} matches are not supported by this version of the proxy")
    } else if what == "path" {
        format!("unknown {what} match type {kind:?}: expected Exact or PathPrefix")
    } else {
        format!("unknown {what} match type {kind:?}: expected Exact or RegularExpression")
    };
    Diagnostic::new(route, field, Reason::UnsupportedValue, message)
}
