//! A rule's filters and timeouts, and a backendRef's filters, compiled into what the proxy runs:
//! header modifiers with lower-case names, a redirect with its status code defaulted, a rewritten
//! path, timeouts in milliseconds. Every problem is a diagnostic naming the field; a rule with one
//! is not served (the caller drops its matches), as a rule served without its filter would do
//! something else than it says.

use std::collections::BTreeSet;

use agentgateway_crds::duration::parse_duration;
use agentgateway_crds::gateway_api::{
    HTTPHeaderFilter, HTTPPathModifier, HTTPRequestRedirectFilter, HTTPRouteFilter, HTTPRouteRule,
    HTTPRouteTimeouts,
};
use agentgateway_crds::proxy_config::limits::{MAX_DURATION_MS, MIN_DURATION_MS};
use agentgateway_crds::proxy_config::{
    HeaderConfig, HeaderModifierConfig, PathModifierConfig, RedirectConfig, RuleConfig,
};
use agentgateway_crds::validation::filters::{
    DEFAULT_REDIRECT_STATUS, MAX_HEADER_CHANGES, REDIRECT_STATUS_CODES, filter_path_problem,
    header_name_problem, header_value_problem, redirect_scheme_problem,
};
use agentgateway_crds::validation::is_host;

use crate::diagnostic::{Diagnostic, Reason};
use crate::inputs::ObjectRef;

/// What a rule's filters and timeouts add to its [`RuleConfig`].
#[derive(Default)]
pub(crate) struct RuleFilters {
    request_headers: Option<HeaderModifierConfig>,
    response_headers: Option<HeaderModifierConfig>,
    redirect: Option<RedirectConfig>,
    rewrite_path: Option<PathModifierConfig>,
    request_timeout_ms: Option<u64>,
    backend_request_timeout_ms: Option<u64>,
}

impl RuleFilters {
    /// Writes the filters into the rule's config.
    pub(crate) fn apply_to(&self, rule: &mut RuleConfig) {
        rule.request_headers.clone_from(&self.request_headers);
        rule.response_headers.clone_from(&self.response_headers);
        rule.redirect.clone_from(&self.redirect);
        rule.rewrite_path.clone_from(&self.rewrite_path);
        rule.request_timeout_ms = self.request_timeout_ms;
        rule.backend_request_timeout_ms = self.backend_request_timeout_ms;
    }
}

/// A backendRef's header modifiers (`request`, `response`).
pub(crate) type BackendFilters = (Option<HeaderModifierConfig>, Option<HeaderModifierConfig>);

/// Collects the diagnostics of one route's filters.
struct Check<'a> {
    route: &'a ObjectRef,
    problems: Vec<Diagnostic>,
}

impl Check<'_> {
    fn push(&mut self, field: String, reason: Reason, message: impl Into<String>) {
        self.problems
            .push(Diagnostic::new(self.route, field, reason, message));
    }
}

/// The user's text as a message shows it: quoted, escaped and cut to 64 characters.
fn quoted(text: &str) -> String {
    let cut: String = text.chars().take(64).collect();
    format!("{cut:?}")
}

/// Compiles rule `r`'s filters and timeouts.
pub(crate) fn compile_rule_filters(
    route: &ObjectRef,
    r: usize,
    rule: &HTTPRouteRule,
) -> Result<RuleFilters, Vec<Diagnostic>> {
    let mut check = Check {
        route,
        problems: Vec::new(),
    };
    let mut compiled = RuleFilters::default();
    let mut seen_types = BTreeSet::new();
    // Where the redirect or the rewrite was written: a rule has at most one of them.
    let mut answers: Option<(usize, &str)> = None;
    for (f, filter) in rule.filters.iter().enumerate() {
        let field = format!("spec.rules[{r}].filters[{f}]");
        let kind = filter.filter_type.as_str();
        let known = matches!(
            kind,
            "RequestHeaderModifier" | "ResponseHeaderModifier" | "RequestRedirect" | "URLRewrite"
        );
        if known && !seen_types.insert(kind) {
            let message = format!("a rule may have one {kind} filter");
            check.push(format!("{field}.type"), Reason::InvalidSpec, message);
            continue;
        }
        match kind {
            "RequestHeaderModifier" => {
                compiled.request_headers = header_filter(
                    &mut check,
                    &field,
                    "requestHeaderModifier",
                    filter.request_header_modifier.as_ref(),
                );
            }
            "ResponseHeaderModifier" => {
                compiled.response_headers = header_filter(
                    &mut check,
                    &field,
                    "responseHeaderModifier",
                    filter.response_header_modifier.as_ref(),
                );
            }
            "RequestRedirect" | "URLRewrite" => {
                if let Some((other, other_kind)) = answers {
                    let message = format!(
                        "a rule may not have both a RequestRedirect and a URLRewrite filter (filters[{other}] is a {other_kind})"
                    );
                    check.push(format!("{field}.type"), Reason::InvalidSpec, message);
                    continue;
                }
                answers = Some((f, kind));
                if kind == "RequestRedirect" {
                    compiled.redirect = redirect(&mut check, &field, rule, filter);
                } else {
                    compiled.rewrite_path = rewrite(&mut check, &field, rule, filter);
                }
            }
            other => {
                let message = format!(
                    "{} filters are not supported (RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect and URLRewrite are): the rule is not served rather than served without it",
                    quoted(other)
                );
                check.push(format!("{field}.type"), Reason::UnsupportedValue, message);
            }
        }
    }
    if matches!(answers, Some((_, "RequestRedirect"))) && !rule.backend_refs.is_empty() {
        check.push(
            format!("spec.rules[{r}].backendRefs"),
            Reason::InvalidSpec,
            "a rule with a RequestRedirect filter answers the request itself: it must have no backendRefs",
        );
    }
    if let Some(timeouts) = &rule.timeouts {
        timeouts_of(&mut check, r, timeouts, &mut compiled);
    }
    if check.problems.is_empty() {
        Ok(compiled)
    } else {
        Err(check.problems)
    }
}

/// Compiles the filters of the backendRef at `field` (`spec.rules[r].backendRefs[b]`): header
/// modifiers only.
pub(crate) fn compile_backend_filters(
    route: &ObjectRef,
    field: &str,
    filters: &[HTTPRouteFilter],
) -> Result<BackendFilters, Vec<Diagnostic>> {
    let mut check = Check {
        route,
        problems: Vec::new(),
    };
    let (mut request, mut response) = (None, None);
    let mut seen_types = BTreeSet::new();
    for (f, filter) in filters.iter().enumerate() {
        let field = format!("{field}.filters[{f}]");
        let kind = filter.filter_type.as_str();
        let (slot, config, name) = match kind {
            "RequestHeaderModifier" => (
                &mut request,
                filter.request_header_modifier.as_ref(),
                "requestHeaderModifier",
            ),
            "ResponseHeaderModifier" => (
                &mut response,
                filter.response_header_modifier.as_ref(),
                "responseHeaderModifier",
            ),
            other => {
                let message = format!(
                    "{} filters are not supported on a backendRef (RequestHeaderModifier and ResponseHeaderModifier are; put the others on the rule)",
                    quoted(other)
                );
                check.push(format!("{field}.type"), Reason::UnsupportedValue, message);
                continue;
            }
        };
        if !seen_types.insert(kind) {
            let message = format!("a backendRef may have one {kind} filter");
            check.push(format!("{field}.type"), Reason::InvalidSpec, message);
            continue;
        }
        *slot = header_filter(&mut check, &field, name, config);
    }
    if check.problems.is_empty() {
        Ok((request, response))
    } else {
        Err(check.problems)
    }
}

/// A header modifier at `field.name`, or `None` with diagnostics (or when it changes nothing).
fn header_filter(
    check: &mut Check<'_>,
    field: &str,
    name: &str,
    config: Option<&HTTPHeaderFilter>,
) -> Option<HeaderModifierConfig> {
    let Some(config) = config else {
        let message = format!("is required when type is {}", upper_first(name));
        check.push(format!("{field}.{name}"), Reason::InvalidSpec, message);
        return None;
    };
    let field = format!("{field}.{name}");
    let before = check.problems.len();
    let mut set_or_add = |list: &str, headers: &[agentgateway_crds::gateway_api::HTTPHeader]| {
        if headers.len() > MAX_HEADER_CHANGES {
            let message = format!("must have at most {MAX_HEADER_CHANGES} entries");
            check.push(format!("{field}.{list}"), Reason::InvalidSpec, message);
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::with_capacity(headers.len());
        for (h, header) in headers.iter().enumerate() {
            let at = format!("{field}.{list}[{h}]");
            if let Some(name) = header_name(check, &format!("{at}.name"), &header.name, &mut seen) {
                out.push(HeaderConfig {
                    name,
                    value: header.value.clone(),
                });
            }
            if let Some(problem) = header_value_problem(&header.value) {
                check.push(format!("{at}.value"), Reason::InvalidSpec, problem);
            }
        }
        out
    };
    let set = set_or_add("set", &config.set);
    let add = set_or_add("add", &config.add);
    if config.remove.len() > MAX_HEADER_CHANGES {
        let message = format!("must have at most {MAX_HEADER_CHANGES} entries");
        check.push(format!("{field}.remove"), Reason::InvalidSpec, message);
    }
    let mut seen = BTreeSet::new();
    let remove: Vec<String> = config
        .remove
        .iter()
        .enumerate()
        .filter_map(|(h, name)| {
            header_name(check, &format!("{field}.remove[{h}]"), name, &mut seen)
        })
        .collect();
    let modifier = HeaderModifierConfig { set, add, remove };
    (check.problems.len() == before && !modifier.is_empty()).then_some(modifier)
}

/// A header name, lower case, or `None` with a diagnostic (invalid, owned by the proxy, or a
/// duplicate in its list).
fn header_name(
    check: &mut Check<'_>,
    field: &str,
    name: &str,
    seen: &mut BTreeSet<String>,
) -> Option<String> {
    if let Some(problem) = header_name_problem(name) {
        let reason = if agentgateway_crds::validation::is_header_name(name) {
            Reason::UnsupportedValue
        } else {
            Reason::InvalidSpec
        };
        check.push(
            field.to_string(),
            reason,
            format!("{} {problem}", quoted(name)),
        );
        return None;
    }
    let lower = name.to_ascii_lowercase();
    if !seen.insert(lower.clone()) {
        let message = format!(
            "{} is listed twice (header names are case-insensitive)",
            quoted(name)
        );
        check.push(field.to_string(), Reason::InvalidSpec, message);
        return None;
    }
    Some(lower)
}

fn redirect(
    check: &mut Check<'_>,
    field: &str,
    rule: &HTTPRouteRule,
    filter: &HTTPRouteFilter,
) -> Option<RedirectConfig> {
    let Some(config) = &filter.request_redirect else {
        let message = "is required when type is RequestRedirect";
        check.push(
            format!("{field}.requestRedirect"),
            Reason::InvalidSpec,
            message,
        );
        return None;
    };
    compile_redirect(check, &format!("{field}.requestRedirect"), rule, config)
}

fn compile_redirect(
    check: &mut Check<'_>,
    field: &str,
    rule: &HTTPRouteRule,
    config: &HTTPRequestRedirectFilter,
) -> Option<RedirectConfig> {
    let before = check.problems.len();
    if let Some(problem) = config.scheme.as_deref().and_then(redirect_scheme_problem) {
        check.push(format!("{field}.scheme"), Reason::UnsupportedValue, problem);
    }
    let hostname = config.hostname.as_ref().map(|h| h.to_ascii_lowercase());
    if let Some(host) = &hostname
        && !is_host(host)
    {
        let message = format!("{} is not a host name or an IP address", quoted(host));
        check.push(format!("{field}.hostname"), Reason::InvalidSpec, message);
    }
    let port = config.port.map(u16::try_from);
    if matches!(port, Some(Err(_)) | Some(Ok(0))) {
        check.push(
            format!("{field}.port"),
            Reason::InvalidSpec,
            "must be between 1 and 65535",
        );
    }
    let status_code = config
        .status_code
        .map_or(Ok(DEFAULT_REDIRECT_STATUS), u16::try_from)
        .ok()
        .filter(|code| REDIRECT_STATUS_CODES.contains(code));
    if status_code.is_none() {
        let message = "must be 301, 302, 303, 307 or 308";
        check.push(
            format!("{field}.statusCode"),
            Reason::UnsupportedValue,
            message,
        );
    }
    let path = config
        .path
        .as_ref()
        .and_then(|p| path_modifier(check, &format!("{field}.path"), rule, p));
    if check.problems.len() != before {
        return None;
    }
    Some(RedirectConfig {
        scheme: config.scheme.clone(),
        hostname,
        port: port.and_then(Result::ok),
        path,
        status_code: status_code.unwrap_or(DEFAULT_REDIRECT_STATUS),
    })
}

fn rewrite(
    check: &mut Check<'_>,
    field: &str,
    rule: &HTTPRouteRule,
    filter: &HTTPRouteFilter,
) -> Option<PathModifierConfig> {
    let field = format!("{field}.urlRewrite");
    let Some(config) = &filter.url_rewrite else {
        check.push(
            field,
            Reason::InvalidSpec,
            "is required when type is URLRewrite",
        );
        return None;
    };
    if config.hostname.is_some() {
        check.push(
            format!("{field}.hostname"),
            Reason::UnsupportedValue,
            "is not supported: an AI backend's requests go to its provider's host (set host on the AgentgatewayBackend's provider); rewrite the path only",
        );
    }
    match &config.path {
        Some(path) => path_modifier(check, &format!("{field}.path"), rule, path),
        None => {
            if config.hostname.is_none() {
                check.push(
                    format!("{field}.path"),
                    Reason::InvalidSpec,
                    "is required: the rewrite changes nothing without it",
                );
            }
            None
        }
    }
}

fn path_modifier(
    check: &mut Check<'_>,
    field: &str,
    rule: &HTTPRouteRule,
    modifier: &HTTPPathModifier,
) -> Option<PathModifierConfig> {
    let (value, compiled): (_, fn(String) -> PathModifierConfig) =
        match modifier.modifier_type.as_str() {
            "ReplaceFullPath" => (
                modifier
                    .replace_full_path
                    .as_ref()
                    .map(|v| ("replaceFullPath", v)),
                PathModifierConfig::ReplaceFullPath,
            ),
            "ReplacePrefixMatch" => (
                modifier
                    .replace_prefix_match
                    .as_ref()
                    .map(|v| ("replacePrefixMatch", v)),
                PathModifierConfig::ReplacePrefixMatch,
            ),
            other => {
                let message = format!(
                    "{} is not a path modifier: ReplaceFullPath or ReplacePrefixMatch",
                    quoted(other)
                );
                check.push(format!("{field}.type"), Reason::UnsupportedValue, message);
                return None;
            }
        };
    let Some((name, value)) = value else {
        let name = if modifier.modifier_type == "ReplaceFullPath" {
            "replaceFullPath"
        } else {
            "replacePrefixMatch"
        };
        let message = format!("is required when type is {}", modifier.modifier_type);
        check.push(format!("{field}.{name}"), Reason::InvalidSpec, message);
        return None;
    };
    if let Some(problem) = filter_path_problem(value) {
        check.push(format!("{field}.{name}"), Reason::InvalidSpec, problem);
        return None;
    }
    if name == "replacePrefixMatch"
        && let Some(m) = rule.matches.iter().position(|m| !is_path_prefix(m))
    {
        let message = format!(
            "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match; matches[{m}] is not"
        );
        check.push(format!("{field}.{name}"), Reason::InvalidSpec, message);
        return None;
    }
    Some(compiled(value.clone()))
}

/// Whether a match's path is a prefix match (the default).
fn is_path_prefix(m: &agentgateway_crds::gateway_api::HTTPRouteMatch) -> bool {
    m.path
        .as_ref()
        .and_then(|p| p.match_type.as_deref())
        .is_none_or(|t| t == "PathPrefix")
}

fn timeouts_of(
    check: &mut Check<'_>,
    r: usize,
    timeouts: &HTTPRouteTimeouts,
    compiled: &mut RuleFilters,
) {
    let mut parse = |name: &str, value: Option<&String>| -> Option<u64> {
        let value = value?;
        let field = format!("spec.rules[{r}].timeouts.{name}");
        let ms = match parse_duration(value) {
            Ok(duration) => u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            Err(e) => {
                check.push(field, Reason::InvalidSpec, e.to_string());
                return None;
            }
        };
        // `0s` is the Gateway API's "no timeout"; anything else is bounded like every duration.
        let zero = parse_duration(value).is_ok_and(|d| d.is_zero());
        if !zero && !(MIN_DURATION_MS..=MAX_DURATION_MS).contains(&ms) {
            check.push(
                field,
                Reason::InvalidSpec,
                "must be 0s (no timeout) or between 1ms and 24h",
            );
            return None;
        }
        Some(if zero { 0 } else { ms })
    };
    let request = parse("request", timeouts.request.as_ref());
    let attempt = parse("backendRequest", timeouts.backend_request.as_ref());
    if let (Some(request), Some(attempt)) = (request, attempt)
        && request != 0
        && attempt > request
    {
        check.push(
            format!("spec.rules[{r}].timeouts.backendRequest"),
            Reason::InvalidSpec,
            "must not be longer than timeouts.request: one attempt cannot outlast its request",
        );
    }
    compiled.request_timeout_ms = request;
    compiled.backend_request_timeout_ms = attempt;
}

/// `requestHeaderModifier` → `RequestHeaderModifier`.
fn upper_first(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}
