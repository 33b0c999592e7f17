//! [`ProxyConfig::validate`]: the checks a proxy runs on a config before using it. The config comes
//! from a ConfigMap anyone with write access to the namespace can edit, so it is untrusted input:
//! every number the proxy does arithmetic with is bounded here (no `Instant + Duration` overflow, no
//! weight sum overflow), every index points at something, and every name the proxy puts on the wire
//! is well formed. A config the compiler produces from accepted objects always passes.
//!
//! Pure and total: it never panics, whatever the config holds, and reports every problem at once.

use std::collections::BTreeSet;

use super::filters::{HeaderModifierConfig, PathModifierConfig, RedirectConfig};
use super::policy::{LimitConfig, PolicyConfig};
use super::{
    BackendConfig, EvictionConfig, ListenerTlsConfig, METRICS_PORT, MatchConfig, PathMatchConfig,
    ProviderConfig, ProviderKind, ProxyConfig, READY_PORT, RuleConfig, compile_pattern,
};
use crate::validation::filters::{
    MAX_HEADER_CHANGES, REDIRECT_STATUS_CODES, filter_path_problem, header_name_problem,
    header_value_problem, redirect_scheme_problem,
};
use crate::validation::policy::{MAX_LIMIT, MAX_LIMITS};
use crate::validation::{
    MAX_PRICE_PER_MILLION, is_data_key, is_dns_subdomain, is_header_name, is_host,
    pass_through_prefix_problem,
};

/// The largest budget in micro-dollars (a billion dollars).
pub const MAX_BUDGET_MICRO_USD: u64 = 1_000_000_000_000_000;

fn validate_policy(problems: &mut Problems, key: &str, policy: &PolicyConfig) {
    let path = format!("policies[{}]", quote(key));
    if let Some(api_keys) = &policy.api_keys
        && !is_data_key(&api_keys.credential)
    {
        let message = "must be a Secret data key ([-._a-zA-Z0-9]+)";
        problems.push(format!("{path}.apiKeys.credential"), message);
    }
    for (field, limits) in [("local", &policy.local), ("global", &policy.global)] {
        validate_limits(problems, &format!("{path}.{field}"), limits);
    }
    if let Some(budget) = &policy.budget {
        if !(1..=MAX_BUDGET_MICRO_USD).contains(&budget.micro_usd) {
            let message = format!("must be between 1 and {MAX_BUDGET_MICRO_USD}");
            problems.push(format!("{path}.budget.microUsd"), message);
        }
        if budget.id.is_empty() {
            problems.push(format!("{path}.budget.id"), "must not be empty");
        }
    }
}

fn validate_limits(problems: &mut Problems, path: &str, limits: &[LimitConfig]) {
    if limits.len() > MAX_LIMITS {
        problems.push(path, format!("must have at most {MAX_LIMITS} entries"));
    }
    for (i, limit) in limits.iter().enumerate() {
        if !(1..=MAX_LIMIT).contains(&limit.limit) {
            let message = format!("must be between 1 and {MAX_LIMIT}");
            problems.push(format!("{path}[{i}].limit"), message);
        }
        if limit.id.is_empty() {
            problems.push(format!("{path}[{i}].id"), "must not be empty");
        }
    }
}

/// The bounds of the config's numbers, shared by [`ProxyConfig::validate`], the admission rules
/// ([`crate::validation`]) and the compiler, so that what is accepted always compiles into a config
/// the proxy runs.
pub mod limits {
    pub use crate::validation::{
        MAX_GROUPS, MAX_MODEL_LEN, MAX_PASS_THROUGH_PREFIXES, MAX_PROVIDERS_PER_GROUP,
        MAX_RETRY_ATTEMPTS,
    };

    /// The shortest duration (timeouts, evictions), in milliseconds.
    pub const MIN_DURATION_MS: u64 = 1;
    /// The longest duration (timeouts, evictions), in milliseconds: 24 hours.
    pub const MAX_DURATION_MS: u64 = 86_400_000;
    /// The fewest consecutive failures that evict a provider.
    pub const MIN_CONSECUTIVE_FAILURES: u32 = 1;
    /// The most consecutive failures that evict a provider.
    pub const MAX_CONSECUTIVE_FAILURES: u32 = 1_000;
    /// The most certificates one HTTPS port serves (one per Gateway listener sharing the port; the
    /// Gateway API allows 64 listeners per Gateway).
    pub const MAX_CERTIFICATES_PER_PORT: usize = 64;
}

use limits::{
    MAX_CERTIFICATES_PER_PORT, MAX_CONSECUTIVE_FAILURES, MAX_DURATION_MS, MAX_GROUPS,
    MAX_MODEL_LEN, MAX_PASS_THROUGH_PREFIXES, MAX_PROVIDERS_PER_GROUP, MAX_RETRY_ATTEMPTS,
    MIN_CONSECUTIVE_FAILURES, MIN_DURATION_MS,
};

/// One violated rule: where (`backends["ns/b"].groups[0].providers[1].requestTimeoutMs`, with the
/// serialized field names) and what is wrong (`must be between 1 and 86400000`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigProblem {
    /// The field's path in the serialized config.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

/// A config the proxy must not run, with every problem found, in config order (never empty).
/// Displayed on one line: the first [`ConfigInvalid::SHOWN_PROBLEMS`] problems joined with `"; "`,
/// then how many more there are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", summary(.problems))]
pub struct ConfigInvalid {
    /// Every problem.
    pub problems: Vec<ConfigProblem>,
}

impl ConfigInvalid {
    /// The most problems the one-line message lists.
    pub const SHOWN_PROBLEMS: usize = 20;
}

fn summary(problems: &[ConfigProblem]) -> String {
    let count = problems.len();
    let noun = if count == 1 { "problem" } else { "problems" };
    let shown: Vec<String> = problems
        .iter()
        .take(ConfigInvalid::SHOWN_PROBLEMS)
        .map(ToString::to_string)
        .collect();
    let mut text = format!(
        "invalid proxy config ({count} {noun}): {}",
        shown.join("; ")
    );
    if count > ConfigInvalid::SHOWN_PROBLEMS {
        let more = count - ConfigInvalid::SHOWN_PROBLEMS;
        text.push_str(&format!("; and {more} more"));
    }
    text
}

impl ProxyConfig {
    /// Checks every rule the proxy relies on at request time; `Err` lists every problem. The proxy
    /// refuses a config that fails (and keeps running the previous one).
    pub fn validate(&self) -> Result<(), ConfigInvalid> {
        let mut problems = Problems::default();
        validate_listeners(&mut problems, self);
        for (key, backend) in &self.backends {
            validate_backend(&mut problems, key, backend);
        }
        for (key, policy) in &self.policies {
            validate_policy(&mut problems, key, policy);
        }
        if problems.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigInvalid {
                problems: problems.0,
            })
        }
    }
}

#[derive(Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigProblem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Checks a duration in milliseconds; true when it is in bounds.
    fn duration(&mut self, path: impl Into<String>, ms: u64) -> bool {
        let valid = (MIN_DURATION_MS..=MAX_DURATION_MS).contains(&ms);
        if !valid {
            self.push(
                path,
                format!("must be between {MIN_DURATION_MS} and {MAX_DURATION_MS}"),
            );
        }
        valid
    }
}

/// A string of the config as a message shows it: quoted and escaped (so a message stays on one
/// line whatever the config holds) and cut after 64 characters.
fn quote(s: &str) -> String {
    const SHOWN: usize = 64;
    match s.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{:?}...", &s[..end]),
        None => format!("{s:?}"),
    }
}

fn validate_listeners(problems: &mut Problems, config: &ProxyConfig) {
    let listeners = &config.listeners;
    let mut names = BTreeSet::new();
    let mut ports = BTreeSet::new();
    let mut portless = false;
    for (l, listener) in listeners.iter().enumerate() {
        let path = format!("listeners[{l}]");
        if listener.name.is_empty() {
            problems.push(format!("{path}.name"), "must not be empty");
        } else if !names.insert(listener.name.as_str()) {
            let message = format!("duplicate listener name {}", quote(&listener.name));
            problems.push(format!("{path}.name"), message);
        }
        match listener.port {
            None if portless => problems.push(
                format!("{path}.port"),
                "only one listener may omit the port (it takes the proxy's --listen address)",
            ),
            None => portless = true,
            Some(0) => problems.push(format!("{path}.port"), "must be between 1 and 65535"),
            Some(port) if port == READY_PORT || port == METRICS_PORT => problems.push(
                format!("{path}.port"),
                format!("{port} is reserved for the proxy's readiness ({READY_PORT}) and metrics ({METRICS_PORT}) endpoints"),
            ),
            Some(port) if !ports.insert(port) => problems.push(
                format!("{path}.port"),
                format!("duplicate port {port}: a port is served by one listener"),
            ),
            Some(_) => {}
        }
        if let Some(tls) = &listener.tls {
            validate_tls(problems, &format!("{path}.tls"), tls);
        }
        for (r, rule) in listener.rules.iter().enumerate() {
            validate_rule(problems, &format!("{path}.rules[{r}]"), rule, config);
        }
        for (m, matched) in listener.matches.iter().enumerate() {
            let rules = listener.rules.len();
            let path = format!("{path}.matches[{m}]");
            validate_match(problems, &path, matched, rules);
            if let Some(rule) = listener.rules.get(matched.rule as usize)
                && replaces_prefix(rule)
                && !matches!(matched.path, PathMatchConfig::PathPrefix(_))
            {
                let message = "the rule replaces the matched prefix (ReplacePrefixMatch): its matches must be PathPrefix matches";
                problems.push(format!("{path}.path"), message);
            }
        }
    }
}

/// The certificates of a port: bounded, each with a credential id that can be a Secret data key,
/// host names well formed (exact or `*.suffix`, lowercase) and distinct, one default at most.
fn validate_tls(problems: &mut Problems, path: &str, tls: &ListenerTlsConfig) {
    let count = tls.certificates.len();
    if !(1..=MAX_CERTIFICATES_PER_PORT).contains(&count) {
        let message = format!("must have between 1 and {MAX_CERTIFICATES_PER_PORT} entries");
        problems.push(format!("{path}.certificates"), message);
    }
    let mut hostnames = BTreeSet::new();
    for (c, certificate) in tls.certificates.iter().enumerate() {
        let path = format!("{path}.certificates[{c}]");
        if !is_data_key(&certificate.credential) {
            let message = "must be a Secret data key ([-._a-zA-Z0-9]+)";
            problems.push(format!("{path}.credential"), message);
        }
        let hostname = certificate.hostname.as_deref();
        if let Some(name) = hostname {
            let bare = name.strip_prefix("*.").unwrap_or(name);
            if !is_dns_subdomain(bare) {
                let message = format!("{} must be a lowercase host name or *.suffix", quote(name));
                problems.push(format!("{path}.hostname"), message);
            }
        }
        if !hostnames.insert(hostname) {
            let message = match hostname {
                Some(name) => format!("duplicate host name {}", quote(name)),
                None => "only one certificate may omit the host name".to_string(),
            };
            problems.push(format!("{path}.hostname"), message);
        }
    }
}

fn validate_rule(problems: &mut Problems, path: &str, rule: &RuleConfig, config: &ProxyConfig) {
    let mut total = Some(0u32);
    for (b, weighted) in rule.backends.iter().enumerate() {
        total = total.and_then(|t| t.checked_add(weighted.weight));
        if let Some(key) = &weighted.backend
            && !config.backends.contains_key(key)
        {
            let message = format!("{} is not a key of backends", quote(key));
            problems.push(format!("{path}.backends[{b}].backend"), message);
        }
        if let Some(key) = &weighted.policy
            && !config.policies.contains_key(key)
        {
            let message = format!("{} is not a key of policies", quote(key));
            problems.push(format!("{path}.backends[{b}].policy"), message);
        }
    }
    if total.is_none() {
        problems.push(
            format!("{path}.backends"),
            format!("the weights must add up to at most {}", u32::MAX),
        );
    }
    validate_rule_filters(problems, path, rule);
}

/// Whether a rule's redirect or rewrite replaces the prefix its match matched.
fn replaces_prefix(rule: &RuleConfig) -> bool {
    let redirect = rule.redirect.as_ref().and_then(|r| r.path.as_ref());
    [redirect, rule.rewrite_path.as_ref()]
        .into_iter()
        .flatten()
        .any(|p| matches!(p, PathModifierConfig::ReplacePrefixMatch(_)))
}

fn validate_rule_filters(problems: &mut Problems, path: &str, rule: &RuleConfig) {
    for (field, modifier) in [
        ("requestHeaders", &rule.request_headers),
        ("responseHeaders", &rule.response_headers),
    ] {
        if let Some(modifier) = modifier {
            validate_header_modifier(problems, &format!("{path}.{field}"), modifier);
        }
    }
    for (b, weighted) in rule.backends.iter().enumerate() {
        for (field, modifier) in [
            ("requestHeaders", &weighted.request_headers),
            ("responseHeaders", &weighted.response_headers),
        ] {
            if let Some(modifier) = modifier {
                let path = format!("{path}.backends[{b}].{field}");
                validate_header_modifier(problems, &path, modifier);
            }
        }
    }
    if let Some(redirect) = &rule.redirect {
        validate_redirect(problems, &format!("{path}.redirect"), redirect);
        if rule.rewrite_path.is_some() {
            let message = "a rule either redirects or rewrites, not both";
            problems.push(format!("{path}.rewritePath"), message);
        }
    }
    if let Some(modifier) = &rule.rewrite_path {
        validate_path_modifier(problems, &format!("{path}.rewritePath"), modifier);
    }
    let mut timeout = |field: &str, ms: Option<u64>| match ms {
        // 0 is the Gateway API's "no timeout".
        Some(0) | None => {}
        Some(ms) => {
            problems.duration(format!("{path}.{field}"), ms);
        }
    };
    timeout("requestTimeoutMs", rule.request_timeout_ms);
    timeout("backendRequestTimeoutMs", rule.backend_request_timeout_ms);
    if let (Some(request), Some(attempt)) =
        (rule.request_timeout_ms, rule.backend_request_timeout_ms)
        && request != 0
        && attempt > request
    {
        let message = "must not exceed requestTimeoutMs (one attempt cannot outlast its request)";
        problems.push(format!("{path}.backendRequestTimeoutMs"), message);
    }
}

fn validate_header_modifier(problems: &mut Problems, path: &str, modifier: &HeaderModifierConfig) {
    let mut name = |path: String, name: &str, seen: &mut BTreeSet<String>| {
        if let Some(problem) = header_name_problem(name) {
            problems.push(path, format!("{} {problem}", quote(name)));
        } else if name.bytes().any(|b| b.is_ascii_uppercase()) {
            problems.push(path, format!("{} must be lower case", quote(name)));
        } else if !seen.insert(name.to_string()) {
            problems.push(path, format!("duplicate header {}", quote(name)));
        }
    };
    let mut values = Vec::new();
    for (field, headers) in [("set", &modifier.set), ("add", &modifier.add)] {
        if headers.len() > MAX_HEADER_CHANGES {
            values.push((
                format!("{path}.{field}"),
                format!("must have at most {MAX_HEADER_CHANGES} entries"),
            ));
        }
        let mut seen = BTreeSet::new();
        for (h, header) in headers.iter().enumerate() {
            name(format!("{path}.{field}[{h}].name"), &header.name, &mut seen);
            if let Some(problem) = header_value_problem(&header.value) {
                values.push((format!("{path}.{field}[{h}].value"), problem.to_string()));
            }
        }
    }
    if modifier.remove.len() > MAX_HEADER_CHANGES {
        values.push((
            format!("{path}.remove"),
            format!("must have at most {MAX_HEADER_CHANGES} entries"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (h, removed) in modifier.remove.iter().enumerate() {
        name(format!("{path}.remove[{h}]"), removed, &mut seen);
    }
    for (path, message) in values {
        problems.push(path, message);
    }
}

fn validate_redirect(problems: &mut Problems, path: &str, redirect: &RedirectConfig) {
    if let Some(problem) = redirect.scheme.as_deref().and_then(redirect_scheme_problem) {
        problems.push(format!("{path}.scheme"), problem);
    }
    if let Some(host) = &redirect.hostname
        && !is_host(host)
    {
        let message = format!("{} is not a host name or an IP address", quote(host));
        problems.push(format!("{path}.hostname"), message);
    }
    if redirect.port == Some(0) {
        problems.push(format!("{path}.port"), "must be between 1 and 65535");
    }
    if !REDIRECT_STATUS_CODES.contains(&redirect.status_code) {
        problems.push(
            format!("{path}.statusCode"),
            "must be 301, 302, 303, 307 or 308",
        );
    }
    if let Some(modifier) = &redirect.path {
        validate_path_modifier(problems, &format!("{path}.path"), modifier);
    }
}

fn validate_path_modifier(problems: &mut Problems, path: &str, modifier: &PathModifierConfig) {
    let (PathModifierConfig::ReplaceFullPath(value)
    | PathModifierConfig::ReplacePrefixMatch(value)) = modifier;
    if let Some(problem) = filter_path_problem(value) {
        problems.push(format!("{path}.value"), problem);
    }
}

fn validate_match(problems: &mut Problems, path: &str, matched: &MatchConfig, rules: usize) {
    if !usize::try_from(matched.rule).is_ok_and(|rule| rule < rules) {
        let message = format!("must index one of the listener's {rules} rules");
        problems.push(format!("{path}.rule"), message);
    }
    let (PathMatchConfig::Exact(value) | PathMatchConfig::PathPrefix(value)) = &matched.path;
    if !value.starts_with('/') {
        problems.push(format!("{path}.path.value"), "must start with '/'");
    }
    for (h, header) in matched.headers.iter().enumerate() {
        if !is_lowercase_header_name(&header.name) {
            problems.push(
                format!("{path}.headers[{h}].name"),
                format!(
                    "{} is not a lowercase HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
                    quote(&header.name)
                ),
            );
        }
        if !header.match_type.is_exact()
            && let Err(e) = compile_pattern(&header.value)
        {
            problems.push(format!("{path}.headers[{h}].value"), pattern_problem(&e));
        }
    }
    for (q, param) in matched.query_params.iter().enumerate() {
        if !param.match_type.is_exact()
            && let Err(e) = compile_pattern(&param.value)
        {
            problems.push(
                format!("{path}.queryParams[{q}].value"),
                pattern_problem(&e),
            );
        }
    }
}

/// Why a pattern does not compile, in one line.
pub fn pattern_problem(error: &regex::Error) -> String {
    match error {
        regex::Error::CompiledTooBig(limit) => {
            format!("the regular expression compiles to more than {limit} bytes")
        }
        other => format!(
            "not a valid regular expression: {}",
            other.to_string().lines().last().unwrap_or_default().trim()
        ),
    }
}

/// An HTTP field name (RFC 9110 `token`) without upper case letters.
fn is_lowercase_header_name(name: &str) -> bool {
    is_header_name(name) && !name.bytes().any(|b| b.is_ascii_uppercase())
}

fn validate_backend(problems: &mut Problems, key: &str, backend: &BackendConfig) {
    let path = format!("backends[{}]", quote(key));
    if backend.name != key {
        let message = format!("must equal its key {}", quote(key));
        problems.push(format!("{path}.name"), message);
    }
    if backend.retry_attempts > MAX_RETRY_ATTEMPTS {
        let message = format!("must be between 0 and {MAX_RETRY_ATTEMPTS}");
        problems.push(format!("{path}.retryAttempts"), message);
    }
    problems.duration(
        format!("{path}.requestTimeoutMs"),
        backend.request_timeout_ms,
    );
    let prefixes = &backend.pass_through_path_prefixes;
    if prefixes.len() > MAX_PASS_THROUGH_PREFIXES {
        let message = format!("must have at most {MAX_PASS_THROUGH_PREFIXES} prefixes");
        problems.push(format!("{path}.passThroughPathPrefixes"), message);
    }
    for (i, prefix) in prefixes.iter().enumerate() {
        if let Some(problem) = pass_through_prefix_problem(prefix) {
            problems.push(format!("{path}.passThroughPathPrefixes[{i}]"), problem);
        }
    }
    if backend.groups.is_empty() || backend.groups.len() > MAX_GROUPS {
        let message = format!("must have between 1 and {MAX_GROUPS} groups");
        problems.push(format!("{path}.groups"), message);
    }
    let mut names = BTreeSet::new();
    for (g, group) in backend.groups.iter().enumerate() {
        let group_path = format!("{path}.groups[{g}].providers");
        let count = group.providers.len();
        if count == 0 || count > MAX_PROVIDERS_PER_GROUP {
            let message = format!("must have between 1 and {MAX_PROVIDERS_PER_GROUP} providers");
            problems.push(&group_path, message);
        }
        for (p, provider) in group.providers.iter().enumerate() {
            let provider_path = format!("{group_path}[{p}]");
            if !provider.name.is_empty() && !names.insert(provider.name.as_str()) {
                let message = format!(
                    "duplicate provider name {}: names must be unique within the backend",
                    quote(&provider.name)
                );
                problems.push(format!("{provider_path}.name"), message);
            }
            validate_provider(problems, &provider_path, provider);
        }
    }
}

fn validate_provider(problems: &mut Problems, path: &str, provider: &ProviderConfig) {
    if provider.name.is_empty() {
        problems.push(format!("{path}.name"), "must not be empty");
    }
    if let Some(cost) = &provider.cost {
        let prices = [
            ("inputPerMillion", cost.input_per_million),
            ("outputPerMillion", cost.output_per_million),
            ("cachedInputPerMillion", cost.cached_input_per_million),
        ];
        for (field, price) in prices {
            if !(price.is_finite() && (0.0..=MAX_PRICE_PER_MILLION).contains(&price)) {
                let message = format!("must be between 0 and {MAX_PRICE_PER_MILLION}");
                problems.push(format!("{path}.cost.{field}"), message);
            }
        }
    }
    if let Some(model) = &provider.model
        && (model.is_empty() || model.len() > MAX_MODEL_LEN || model.chars().any(char::is_control))
    {
        let message = format!("must be 1 to {MAX_MODEL_LEN} bytes long with no control characters");
        problems.push(format!("{path}.model"), message);
    }
    if !is_host(&provider.host) {
        problems.push(
            format!("{path}.host"),
            "must be a DNS-1123 hostname or an IP address",
        );
    }
    if provider.port == 0 {
        problems.push(format!("{path}.port"), "must be between 1 and 65535");
    }
    if let Some(sni) = provider.tls.as_ref().and_then(|tls| tls.sni.as_deref())
        && !is_dns_subdomain(sni)
    {
        problems.push(format!("{path}.tls.sni"), "must be a DNS-1123 hostname");
    }
    if let Some(p) = &provider.path
        && (!p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        problems.push(
            format!("{path}.path"),
            "must start with '/' and contain no whitespace or control characters",
        );
    }
    if let Some(auth) = &provider.auth
        && auth.credential.is_empty()
    {
        problems.push(format!("{path}.auth.credential"), "must not be empty");
    }
    match (&provider.azure, provider.kind) {
        (None, ProviderKind::AzureOpenAi) => {
            problems.push(format!("{path}.azure"), "is required for kind azureopenai");
        }
        (Some(_), kind) if kind != ProviderKind::AzureOpenAi => {
            problems.push(format!("{path}.azure"), "is only for kind azureopenai");
        }
        (Some(azure), _) => {
            if !crate::validation::is_azure_deployment(&azure.deployment) {
                problems.push(
                    format!("{path}.azure.deployment"),
                    "must be 1-64 letters, digits, '-', '_' or '.'",
                );
            }
            if !crate::validation::is_azure_api_version(&azure.api_version) {
                problems.push(
                    format!("{path}.azure.apiVersion"),
                    "must be YYYY-MM-DD, optionally with a suffix",
                );
            }
        }
        (None, _) => {}
    }
    match (&provider.bedrock, provider.kind) {
        (None, ProviderKind::Bedrock) => {
            problems.push(format!("{path}.bedrock"), "is required for kind bedrock");
        }
        (Some(_), kind) if kind != ProviderKind::Bedrock => {
            problems.push(format!("{path}.bedrock"), "is only for kind bedrock");
        }
        (Some(bedrock), _) if !crate::validation::is_cloud_region(&bedrock.region) => {
            problems.push(format!("{path}.bedrock.region"), "must be an AWS region");
        }
        _ => {}
    }
    match (&provider.vertex, provider.kind) {
        (None, ProviderKind::VertexAi) => {
            problems.push(format!("{path}.vertex"), "is required for kind vertexai");
        }
        (Some(_), kind) if kind != ProviderKind::VertexAi => {
            problems.push(format!("{path}.vertex"), "is only for kind vertexai");
        }
        (Some(vertex), _) => {
            if !crate::validation::is_gcp_project_id(&vertex.project_id) {
                problems.push(
                    format!("{path}.vertex.projectId"),
                    "must be a Google Cloud project id",
                );
            }
            if !crate::validation::is_cloud_region(&vertex.region) {
                problems.push(format!("{path}.vertex.region"), "must be a region");
            }
        }
        _ => {}
    }
    if matches!(
        provider.kind,
        ProviderKind::Bedrock | ProviderKind::VertexAi
    ) && provider.auth.is_none()
    {
        // Neither API answers an unauthenticated request, and the client's own header cannot
        // stand in for a signature or an access token.
        problems.push(
            format!("{path}.auth"),
            "is required for kinds bedrock and vertexai",
        );
    }
    problems.duration(
        format!("{path}.connectTimeoutMs"),
        provider.connect_timeout_ms,
    );
    problems.duration(
        format!("{path}.requestTimeoutMs"),
        provider.request_timeout_ms,
    );
    validate_eviction(problems, &format!("{path}.eviction"), &provider.eviction);
}

fn validate_eviction(problems: &mut Problems, path: &str, eviction: &EvictionConfig) {
    let base = problems.duration(format!("{path}.baseMs"), eviction.base_ms);
    let max = problems.duration(format!("{path}.maxMs"), eviction.max_ms);
    if base && max && eviction.max_ms < eviction.base_ms {
        problems.push(format!("{path}.maxMs"), "must not be less than baseMs");
    }
    let failures = MIN_CONSECUTIVE_FAILURES..=MAX_CONSECUTIVE_FAILURES;
    if !failures.contains(&eviction.consecutive_failures) {
        let message =
            format!("must be between {MIN_CONSECUTIVE_FAILURES} and {MAX_CONSECUTIVE_FAILURES}");
        problems.push(format!("{path}.consecutiveFailures"), message);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::proxy_config::policy::{ApiKeysConfig, BudgetConfig, LimitConfig};
    use crate::proxy_config::{
        AuthConfig, CostConfig, GroupConfig, ListenerConfig, NameValue, ProviderKind, TlsConfig,
        WeightedBackend,
    };
    use std::collections::BTreeMap;

    #[test]
    fn policies_are_referred_to_and_bounded() {
        let mut config = valid();
        listener(&mut config).rules[0].backends[0].policy = Some("p1".to_string());
        assert_eq!(
            problems(&config),
            [r#"listeners[0].rules[0].backends[0].policy: "p1" is not a key of policies"#]
        );
        config.policies.insert(
            "p1".to_string(),
            PolicyConfig {
                api_keys: Some(ApiKeysConfig {
                    credential: "apikeys/x".to_string(),
                }),
                local: vec![LimitConfig {
                    id: "ns/p/local/0".to_string(),
                    limit: 0,
                    ..LimitConfig::default()
                }],
                budget: Some(BudgetConfig {
                    id: "ns/p/budget".to_string(),
                    micro_usd: 0,
                    ..BudgetConfig::default()
                }),
                ..PolicyConfig::default()
            },
        );
        first_provider(&mut config).cost = Some(CostConfig {
            input_per_million: -1.0,
            output_per_million: f64::INFINITY,
            cached_input_per_million: 0.0,
        });
        assert_eq!(
            problems(&config),
            [
                r#"backends["ns/b"].groups[0].providers[0].cost.inputPerMillion: must be between 0 and 100000"#,
                r#"backends["ns/b"].groups[0].providers[0].cost.outputPerMillion: must be between 0 and 100000"#,
                r#"policies["p1"].apiKeys.credential: must be a Secret data key ([-._a-zA-Z0-9]+)"#,
                r#"policies["p1"].local[0].limit: must be between 1 and 9007199254740992"#,
                r#"policies["p1"].budget.microUsd: must be between 1 and 1000000000000000"#,
            ]
        );
    }

    const KEY: &str = "ns/b";

    fn provider(name: &str) -> ProviderConfig {
        ProviderConfig {
            name: name.to_string(),
            kind: ProviderKind::OpenAi,
            model: Some("gpt-4o".to_string()),
            host: "api.openai.com".to_string(),
            port: 443,
            tls: Some(TlsConfig {
                sni: Some("api.openai.com".to_string()),
                ..TlsConfig::default()
            }),
            path: Some("/v1/chat/completions".to_string()),
            azure: None,
            bedrock: None,
            vertex: None,
            auth: Some(AuthConfig {
                credential: "ns/b/openai".to_string(),
            }),
            connect_timeout_ms: 10_000,
            request_timeout_ms: 600_000,
            eviction: EvictionConfig::default(),
            cost: None,
        }
    }

    fn valid() -> ProxyConfig {
        let backend = BackendConfig {
            name: KEY.to_string(),
            groups: vec![
                GroupConfig {
                    providers: vec![provider("a"), provider("b")],
                },
                GroupConfig {
                    providers: vec![provider("c")],
                },
            ],
            retry_attempts: 2,
            request_timeout_ms: 600_000,
            pass_through_path_prefixes: vec!["/v1/files".to_string(), "/".to_string()],
        };
        ProxyConfig {
            listeners: vec![ListenerConfig {
                name: "ns/gw/http".to_string(),
                port: Some(80),
                tls: None,
                rules: vec![RuleConfig {
                    route: "ns/r".to_string(),
                    rule: 0,
                    backends: vec![
                        WeightedBackend {
                            backend: Some(KEY.to_string()),
                            weight: 3,
                            policy: None,
                            ..WeightedBackend::default()
                        },
                        WeightedBackend {
                            backend: None,
                            weight: 1,
                            policy: None,
                            ..WeightedBackend::default()
                        },
                    ],
                    ..RuleConfig::default()
                }],
                matches: vec![MatchConfig {
                    rule: 0,
                    hostnames: vec!["*.example.com".to_string()],
                    path: PathMatchConfig::Exact("/v1/chat/completions".to_string()),
                    headers: vec![NameValue {
                        name: "x-team".to_string(),
                        value: "A".to_string(),
                        ..NameValue::default()
                    }],
                    query_params: Vec::new(),
                    method: Some("POST".to_string()),
                }],
            }],
            backends: [(KEY.to_string(), backend)].into_iter().collect(),
            policies: BTreeMap::new(),
        }
    }

    fn backend(config: &mut ProxyConfig) -> &mut BackendConfig {
        config.backends.get_mut(KEY).unwrap()
    }

    fn first_provider(config: &mut ProxyConfig) -> &mut ProviderConfig {
        &mut backend(config).groups[0].providers[0]
    }

    fn listener(config: &mut ProxyConfig) -> &mut ListenerConfig {
        &mut config.listeners[0]
    }

    /// The problems of `config`, as `path: message` strings.
    fn problems(config: &ProxyConfig) -> Vec<String> {
        match config.validate() {
            Ok(()) => Vec::new(),
            Err(e) => e.problems.iter().map(ToString::to_string).collect(),
        }
    }

    /// Asserts that the one problem of `config` is at `path`, and returns its message.
    #[track_caller]
    fn only_problem(config: &ProxyConfig, path: &str) -> String {
        let err = config.validate().unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert_eq!(err.problems[0].path, path, "{err}");
        err.problems[0].message.clone()
    }

    const P0: &str = "backends[\"ns/b\"].groups[0].providers[0]";

    #[test]
    fn rule_filters_are_checked_like_the_compiler_checks_them() {
        use crate::proxy_config::filters::HeaderConfig;
        fn rule(config: &mut ProxyConfig) -> &mut RuleConfig {
            &mut listener(config).rules[0]
        }
        let mut config = valid();
        rule(&mut config).request_headers = Some(HeaderModifierConfig {
            set: vec![HeaderConfig {
                name: "authorization".into(),
                value: "Bearer x".into(),
            }],
            ..HeaderModifierConfig::default()
        });
        let message = only_problem(&config, "listeners[0].rules[0].requestHeaders.set[0].name");
        assert!(message.contains("credentials"), "{message}");

        let mut config = valid();
        rule(&mut config).backends[0].response_headers = Some(HeaderModifierConfig {
            add: vec![HeaderConfig {
                name: "x-a".into(),
                value: "a\r\nb".into(),
            }],
            remove: vec!["X-Upper".into()],
            ..HeaderModifierConfig::default()
        });
        let found = problems(&config);
        assert_eq!(found.len(), 2, "{found:?}");

        let mut config = valid();
        rule(&mut config).redirect = Some(RedirectConfig {
            scheme: Some("ftp".into()),
            hostname: None,
            port: Some(0),
            path: None,
            status_code: 200,
        });
        rule(&mut config).rewrite_path = Some(PathModifierConfig::ReplacePrefixMatch("/x".into()));
        let found = problems(&config);
        assert_eq!(
            found.len(),
            5,
            "scheme, port, status, both, and the Exact match: {found:?}"
        );

        let mut config = valid();
        rule(&mut config).request_timeout_ms = Some(1_000);
        rule(&mut config).backend_request_timeout_ms = Some(2_000);
        only_problem(&config, "listeners[0].rules[0].backendRequestTimeoutMs");
        rule(&mut config).request_timeout_ms = Some(0);
        assert_eq!(config.validate(), Ok(()), "0: no request timeout");
        rule(&mut config).backend_request_timeout_ms = Some(u64::MAX);
        only_problem(&config, "listeners[0].rules[0].backendRequestTimeoutMs");
    }

    #[test]
    fn a_valid_config_and_the_empty_config_pass() {
        assert_eq!(problems(&valid()), Vec::<String>::new());
        assert_eq!(ProxyConfig::default().validate(), Ok(()));
        let mut minimal = valid();
        let p = first_provider(&mut minimal);
        p.model = None;
        p.tls = None;
        p.path = None;
        p.auth = None;
        p.host = "::1".to_string();
        listener(&mut minimal).port = None;
        assert_eq!(problems(&minimal), Vec::<String>::new());
    }

    #[test]
    fn the_bounds_themselves_are_valid() {
        let mut config = valid();
        backend(&mut config).request_timeout_ms = MAX_DURATION_MS;
        backend(&mut config).retry_attempts = MAX_RETRY_ATTEMPTS;
        let p = first_provider(&mut config);
        p.connect_timeout_ms = MIN_DURATION_MS;
        p.request_timeout_ms = MAX_DURATION_MS;
        p.model = Some("m".repeat(MAX_MODEL_LEN));
        p.eviction = EvictionConfig {
            base_ms: MAX_DURATION_MS,
            max_ms: MAX_DURATION_MS,
            consecutive_failures: MAX_CONSECUTIVE_FAILURES,
        };
        listener(&mut config).rules[0].backends[0].weight = u32::MAX - 1;
        assert_eq!(problems(&config), Vec::<String>::new());
    }

    #[test]
    fn the_backend_request_timeout_is_bounded() {
        for bad in [0, MAX_DURATION_MS + 1] {
            let mut config = valid();
            backend(&mut config).request_timeout_ms = bad;
            let message = only_problem(&config, "backends[\"ns/b\"].requestTimeoutMs");
            assert_eq!(message, "must be between 1 and 86400000");
        }
    }

    #[test]
    fn provider_timeouts_are_bounded() {
        let mut config = valid();
        first_provider(&mut config).connect_timeout_ms = 0;
        only_problem(&config, &format!("{P0}.connectTimeoutMs"));
        let mut config = valid();
        first_provider(&mut config).request_timeout_ms = MAX_DURATION_MS + 1;
        only_problem(&config, &format!("{P0}.requestTimeoutMs"));
    }

    #[test]
    fn an_azure_provider_needs_a_path_safe_deployment_and_a_dated_api_version() {
        let azure = |deployment: &str, api_version: &str| super::super::AzureConfig {
            deployment: deployment.into(),
            api_version: api_version.into(),
        };
        let mut config = valid();
        let p = first_provider(&mut config);
        p.kind = ProviderKind::AzureOpenAi;
        p.azure = Some(azure("gpt-4o", "2024-10-21"));
        assert_eq!(problems(&config), Vec::<String>::new());
        first_provider(&mut config).azure = None;
        only_problem(&config, &format!("{P0}.azure"));
        first_provider(&mut config).azure = Some(azure("../admin", "2024-10-21"));
        only_problem(&config, &format!("{P0}.azure.deployment"));
        first_provider(&mut config).azure = Some(azure("gpt-4o", "2024-10-21&x=1"));
        only_problem(&config, &format!("{P0}.azure.apiVersion"));
        // Azure settings on another kind are a mistake, not ignored.
        let mut config = valid();
        first_provider(&mut config).azure = Some(azure("gpt-4o", "2024-10-21"));
        only_problem(&config, &format!("{P0}.azure"));
    }

    #[test]
    fn u64_max_durations_are_rejected_everywhere() {
        let mut config = valid();
        backend(&mut config).request_timeout_ms = u64::MAX;
        let p = first_provider(&mut config);
        p.connect_timeout_ms = u64::MAX;
        p.request_timeout_ms = u64::MAX;
        p.eviction.base_ms = u64::MAX;
        p.eviction.max_ms = u64::MAX;
        let message = "must be between 1 and 86400000";
        assert_eq!(
            problems(&config),
            vec![
                format!("backends[\"ns/b\"].requestTimeoutMs: {message}"),
                format!("{P0}.connectTimeoutMs: {message}"),
                format!("{P0}.requestTimeoutMs: {message}"),
                format!("{P0}.eviction.baseMs: {message}"),
                format!("{P0}.eviction.maxMs: {message}"),
            ]
        );
    }

    #[test]
    fn eviction_durations_are_bounded_and_ordered() {
        let mut config = valid();
        first_provider(&mut config).eviction.base_ms = 0;
        only_problem(&config, &format!("{P0}.eviction.baseMs"));
        let mut config = valid();
        first_provider(&mut config).eviction.max_ms = MAX_DURATION_MS + 1;
        only_problem(&config, &format!("{P0}.eviction.maxMs"));
        let mut config = valid();
        let eviction = &mut first_provider(&mut config).eviction;
        eviction.base_ms = 10_000;
        eviction.max_ms = 9_999;
        let message = only_problem(&config, &format!("{P0}.eviction.maxMs"));
        assert_eq!(message, "must not be less than baseMs");
    }

    #[test]
    fn consecutive_failures_are_bounded() {
        for bad in [0, MAX_CONSECUTIVE_FAILURES + 1, u32::MAX] {
            let mut config = valid();
            first_provider(&mut config).eviction.consecutive_failures = bad;
            let message = only_problem(&config, &format!("{P0}.eviction.consecutiveFailures"));
            assert_eq!(message, "must be between 1 and 1000");
        }
    }

    #[test]
    fn retry_attempts_are_bounded() {
        let mut config = valid();
        backend(&mut config).retry_attempts = MAX_RETRY_ATTEMPTS + 1;
        only_problem(&config, "backends[\"ns/b\"].retryAttempts");
    }

    #[test]
    fn a_backend_has_1_to_max_groups() {
        let mut config = valid();
        backend(&mut config).groups.clear();
        only_problem(&config, "backends[\"ns/b\"].groups");
        let mut config = valid();
        let groups = (0..=MAX_GROUPS)
            .map(|g| GroupConfig {
                providers: vec![provider(&format!("p{g}"))],
            })
            .collect();
        backend(&mut config).groups = groups;
        only_problem(&config, "backends[\"ns/b\"].groups");
    }

    #[test]
    fn a_group_has_1_to_max_providers() {
        let mut config = valid();
        backend(&mut config).groups[1].providers.clear();
        only_problem(&config, "backends[\"ns/b\"].groups[1].providers");
        let mut config = valid();
        let providers = (0..=MAX_PROVIDERS_PER_GROUP)
            .map(|p| provider(&format!("p{p}")))
            .collect();
        backend(&mut config).groups[1].providers = providers;
        only_problem(&config, "backends[\"ns/b\"].groups[1].providers");
    }

    #[test]
    fn provider_names_are_non_empty_and_unique_within_the_backend() {
        let mut config = valid();
        first_provider(&mut config).name = String::new();
        only_problem(&config, &format!("{P0}.name"));
        // Across groups too.
        let mut config = valid();
        backend(&mut config).groups[1].providers[0].name = "a".to_string();
        let message = only_problem(&config, "backends[\"ns/b\"].groups[1].providers[0].name");
        assert!(
            message.starts_with("duplicate provider name \"a\""),
            "{message}"
        );
    }

    #[test]
    fn the_host_must_be_a_host_name_or_an_ip_address() {
        for bad in ["", "http://x", "a b", "x:80", "a/b"] {
            let mut config = valid();
            first_provider(&mut config).host = bad.to_string();
            only_problem(&config, &format!("{P0}.host"));
        }
    }

    #[test]
    fn the_port_must_not_be_zero() {
        let mut config = valid();
        first_provider(&mut config).port = 0;
        only_problem(&config, &format!("{P0}.port"));
    }

    #[test]
    fn the_sni_must_be_a_host_name() {
        let mut config = valid();
        first_provider(&mut config).tls = Some(TlsConfig {
            sni: Some("bad sni".to_string()),
            ..TlsConfig::default()
        });
        only_problem(&config, &format!("{P0}.tls.sni"));
    }

    #[test]
    fn the_path_starts_with_a_slash_and_has_no_whitespace_or_control_characters() {
        for bad in [
            "",
            "v1/chat",
            "/v1 chat",
            "/v1\tchat",
            "/v1\u{7f}",
            "/a\r\nb",
        ] {
            let mut config = valid();
            first_provider(&mut config).path = Some(bad.to_string());
            only_problem(&config, &format!("{P0}.path"));
        }
    }

    #[test]
    fn the_model_is_bounded_and_has_no_control_characters() {
        for bad in [
            String::new(),
            "m".repeat(MAX_MODEL_LEN + 1),
            "a\nb".to_string(),
        ] {
            let mut config = valid();
            first_provider(&mut config).model = Some(bad);
            only_problem(&config, &format!("{P0}.model"));
        }
        // The bound is in bytes: 129 two-byte characters are too long.
        let mut config = valid();
        first_provider(&mut config).model = Some("é".repeat(MAX_MODEL_LEN / 2 + 1));
        only_problem(&config, &format!("{P0}.model"));
    }

    #[test]
    fn a_credential_reference_is_not_empty() {
        let mut config = valid();
        first_provider(&mut config).auth = Some(AuthConfig::default());
        only_problem(&config, &format!("{P0}.auth.credential"));
    }

    #[test]
    fn pass_through_prefixes_are_bounded_and_well_formed() {
        let path = "backends[\"ns/b\"].passThroughPathPrefixes";
        for bad in [
            "",
            "v1/files",
            "/v1/files/",
            "/v1/../admin",
            "/v1/%2e",
            "/v1 x",
            "/v1?x",
        ] {
            let mut config = valid();
            backend(&mut config).pass_through_path_prefixes = vec![bad.to_string()];
            only_problem(&config, &format!("{path}[0]"));
        }
        let mut config = valid();
        let prefixes = (0..=MAX_PASS_THROUGH_PREFIXES).map(|i| format!("/p{i}"));
        backend(&mut config).pass_through_path_prefixes = prefixes.collect();
        only_problem(&config, path);
        let mut config = valid();
        backend(&mut config).pass_through_path_prefixes.clear();
        assert_eq!(problems(&config), Vec::<String>::new());
    }

    #[test]
    fn a_backend_name_equals_its_key() {
        let mut config = valid();
        backend(&mut config).name = "ns/other".to_string();
        let message = only_problem(&config, "backends[\"ns/b\"].name");
        assert_eq!(message, "must equal its key \"ns/b\"");
    }

    #[test]
    fn listener_names_are_non_empty_and_unique() {
        let mut config = valid();
        listener(&mut config).name = String::new();
        only_problem(&config, "listeners[0].name");
        let mut config = valid();
        let mut second = config.listeners[0].clone();
        second.port = Some(8080);
        config.listeners.push(second);
        only_problem(&config, "listeners[1].name");
    }

    #[test]
    fn listener_ports_are_non_zero_not_reserved_and_unique() {
        for bad in [0, READY_PORT, METRICS_PORT] {
            let mut config = valid();
            listener(&mut config).port = Some(bad);
            only_problem(&config, "listeners[0].port");
        }
        let mut config = valid();
        let mut second = config.listeners[0].clone();
        second.name = "ns/gw/other".to_string();
        config.listeners.push(second.clone());
        let message = only_problem(&config, "listeners[1].port");
        assert!(message.starts_with("duplicate port 80"), "{message}");
        // At most one listener takes the --listen address.
        for listener in &mut config.listeners {
            listener.port = None;
        }
        only_problem(&config, "listeners[1].port");
    }

    #[test]
    fn tls_certificates_are_bounded_named_and_distinct() {
        use crate::proxy_config::{ListenerTlsConfig, TlsCertificateConfig};
        let cert = |hostname: Option<&str>, credential: &str| TlsCertificateConfig {
            hostname: hostname.map(String::from),
            credential: credential.to_string(),
        };
        let with = |certificates: Vec<TlsCertificateConfig>| {
            let mut config = valid();
            listener(&mut config).tls = Some(ListenerTlsConfig { certificates });
            config
        };
        let good = with(vec![
            cert(Some("a.example.com"), "tls_ns_a"),
            cert(Some("*.example.com"), "tls_ns_b"),
            cert(None, "tls_ns_c"),
        ]);
        assert_eq!(problems(&good), Vec::<String>::new());
        only_problem(&with(Vec::new()), "listeners[0].tls.certificates");
        let too_many = (0..=MAX_CERTIFICATES_PER_PORT)
            .map(|i| cert(Some(&format!("h{i}.example.com")), "tls_x"))
            .collect();
        only_problem(&with(too_many), "listeners[0].tls.certificates");
        only_problem(
            &with(vec![cert(None, "bad/id")]),
            "listeners[0].tls.certificates[0].credential",
        );
        for bad in ["A.example.com", "a..b", "*", "a.*.com", "a b"] {
            only_problem(
                &with(vec![cert(Some(bad), "tls_x")]),
                "listeners[0].tls.certificates[0].hostname",
            );
        }
        let message = only_problem(
            &with(vec![cert(Some("a.b"), "x"), cert(Some("a.b"), "y")]),
            "listeners[0].tls.certificates[1].hostname",
        );
        assert!(message.contains("duplicate"), "{message}");
        only_problem(
            &with(vec![cert(None, "x"), cert(None, "y")]),
            "listeners[0].tls.certificates[1].hostname",
        );
    }

    #[test]
    fn a_match_indexes_an_existing_rule() {
        for bad in [1, u32::MAX] {
            let mut config = valid();
            listener(&mut config).matches[0].rule = bad;
            let message = only_problem(&config, "listeners[0].matches[0].rule");
            assert_eq!(message, "must index one of the listener's 1 rules");
        }
    }

    #[test]
    fn a_match_path_starts_with_a_slash() {
        let mut config = valid();
        listener(&mut config).matches[0].path = PathMatchConfig::PathPrefix("v1".to_string());
        only_problem(&config, "listeners[0].matches[0].path.value");
    }

    #[test]
    fn weights_must_not_overflow() {
        let mut config = valid();
        listener(&mut config).rules[0].backends[0].weight = u32::MAX;
        let message = only_problem(&config, "listeners[0].rules[0].backends");
        assert_eq!(message, "the weights must add up to at most 4294967295");
    }

    #[test]
    fn a_weighted_backend_names_a_key_of_backends() {
        let mut config = valid();
        listener(&mut config).rules[0].backends[0].backend = Some("ns/missing".to_string());
        let message = only_problem(&config, "listeners[0].rules[0].backends[0].backend");
        assert_eq!(message, "\"ns/missing\" is not a key of backends");
    }

    #[test]
    fn header_names_are_valid_lowercase_http_header_names() {
        for bad in ["", "X-Team", "x team", "x:team", "x\nteam", "é"] {
            let mut config = valid();
            listener(&mut config).matches[0].headers[0].name = bad.to_string();
            only_problem(&config, "listeners[0].matches[0].headers[0].name");
        }
        let mut config = valid();
        listener(&mut config).matches[0].headers[0].name = "x-a_b.c~1!".to_string();
        assert_eq!(problems(&config), Vec::<String>::new());
    }

    #[test]
    fn regular_expression_values_must_compile_within_the_size_limit() {
        let mut config = valid();
        let header = &mut listener(&mut config).matches[0].headers[0];
        header.match_type = super::super::ValueMatch::RegularExpression;
        header.value = "gpt-.*".to_string();
        assert_eq!(problems(&config), Vec::<String>::new());
        for (bad, why) in [
            ("(", "not a valid regular expression"),
            ("a{1000}{1000}", "compiles to more than"),
        ] {
            let mut config = valid();
            let header = &mut listener(&mut config).matches[0].headers[0];
            header.match_type = super::super::ValueMatch::RegularExpression;
            header.value = bad.to_string();
            let message = only_problem(&config, "listeners[0].matches[0].headers[0].value");
            assert!(message.contains(why), "{message}");
        }
    }

    #[test]
    fn every_problem_is_reported_in_config_order() {
        let mut config = valid();
        listener(&mut config).port = Some(0);
        backend(&mut config).retry_attempts = 99;
        first_provider(&mut config).port = 0;
        assert_eq!(
            problems(&config),
            vec![
                "listeners[0].port: must be between 1 and 65535".to_string(),
                "backends[\"ns/b\"].retryAttempts: must be between 0 and 10".to_string(),
                format!("{P0}.port: must be between 1 and 65535"),
            ]
        );
    }

    #[test]
    fn the_error_is_one_line_and_lists_at_most_twenty_problems() {
        let mut config = valid();
        backend(&mut config).request_timeout_ms = 0;
        let one = config.validate().unwrap_err().to_string();
        assert_eq!(
            one,
            "invalid proxy config (1 problem): backends[\"ns/b\"].requestTimeoutMs: must be between 1 and 86400000"
        );

        let mut config = valid();
        let bad_key = "ns/evil\nkey\"".to_string();
        let mut bad = config.backends[KEY].clone();
        bad.name = bad_key.clone();
        for group in &mut bad.groups {
            for p in &mut group.providers {
                p.port = 0;
                p.connect_timeout_ms = 0;
                p.request_timeout_ms = 0;
                p.eviction.base_ms = 0;
                p.eviction.max_ms = 0;
                p.eviction.consecutive_failures = 0;
            }
        }
        config.backends.insert(bad_key, bad);
        let err = config.validate().unwrap_err();
        assert_eq!(err.problems.len(), 18);
        let text = err.to_string();
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.starts_with("invalid proxy config (18 problems): "),
            "{text}"
        );
        assert!(!text.contains("more"), "{text}");
        assert!(
            text.contains("backends[\"ns/evil\\nkey\\\"\"].groups[0]"),
            "{text}"
        );

        for listener in 1..=5 {
            let mut extra = config.listeners[0].clone();
            extra.port = Some(0);
            extra.name = format!("l{listener}");
            config.listeners.push(extra);
        }
        let err = config.validate().unwrap_err();
        assert_eq!(err.problems.len(), 23);
        let text = err.to_string();
        assert_eq!(text.matches("; ").count(), ConfigInvalid::SHOWN_PROBLEMS);
        assert!(text.ends_with("; and 3 more"), "{text}");
    }

    #[test]
    fn long_strings_are_cut_in_messages() {
        let mut config = valid();
        listener(&mut config).rules[0].backends[0].backend = Some("k".repeat(10_000));
        let err = config.validate().unwrap_err();
        assert!(err.to_string().len() < 250, "{err}");
        assert_eq!(
            quote("é".repeat(65).as_str()),
            format!("{:?}...", "é".repeat(64))
        );
    }

    #[test]
    fn a_config_read_from_yaml_with_huge_numbers_is_rejected_not_a_panic() {
        let yaml = r#"
listeners: [{name: default, rules: [{route: ns/r, rule: 0, backends: [{backend: ns/b, weight: 4294967295}, {weight: 1}]}], matches: [{rule: 7, path: {type: PathPrefix, value: /}}]}]
backends:
  ns/b:
    name: ns/b
    retryAttempts: 4294967295
    requestTimeoutMs: 18446744073709551615
    groups:
    - providers:
      - {name: a, kind: openai, host: h, port: 1, connectTimeoutMs: 18446744073709551615, requestTimeoutMs: 1, eviction: {baseMs: 1, maxMs: 1, consecutiveFailures: 1}}
"#;
        let config: ProxyConfig = serde_yaml::from_str(yaml).unwrap();
        let paths: Vec<String> = config
            .validate()
            .unwrap_err()
            .problems
            .into_iter()
            .map(|p| p.path)
            .collect();
        assert_eq!(
            paths,
            [
                "listeners[0].rules[0].backends",
                "listeners[0].matches[0].rule",
                "backends[\"ns/b\"].retryAttempts",
                "backends[\"ns/b\"].requestTimeoutMs",
                "backends[\"ns/b\"].groups[0].providers[0].connectTimeoutMs",
            ]
        );
    }
}
