//! The structural rules of an `AgentgatewayBackend`, as one pure function shared by the compiler,
//! the operator's status and the admission webhook, so they can never disagree; those of an
//! `AgentgatewayPolicy` are in [`policy`].

pub mod filters;
pub mod parameters;
pub mod policy;
pub mod quantity;

use std::collections::HashSet;
use std::net::IpAddr;

use crate::backend::{
    AgentgatewayBackendSpec, AuthPolicy, BackendPolicies, PassThrough, Provider, SecretKeyRef,
};
use crate::duration::parse_duration;
use crate::proxy_config::limits::{MAX_CONSECUTIVE_FAILURES, MAX_DURATION_MS, MIN_DURATION_MS};
pub use parameters::{validate_infrastructure, validate_parameters_spec};
pub use policy::validate_policy_spec;

/// The most groups a backend may have.
pub const MAX_GROUPS: usize = 8;
/// The most providers a group may have.
pub const MAX_PROVIDERS_PER_GROUP: usize = 16;
/// The longest model name.
pub const MAX_MODEL_LEN: usize = 256;
/// The most retries.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;
/// The most `passThrough.pathPrefixes`.
pub const MAX_PASS_THROUGH_PREFIXES: usize = 16;
/// The longest `passThrough.pathPrefixes` entry, in bytes.
pub const MAX_PASS_THROUGH_PREFIX_LEN: usize = 256;

/// One violated rule: the field's path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `spec.ai.groups[0].providers[1].port`.
    pub field: String,
    /// `must be between 1 and 65535`.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Every violation in the spec, in field order. Empty means valid.
pub fn validate_backend_spec(spec: &AgentgatewayBackendSpec) -> Vec<FieldError> {
    let mut errors = Errors::default();
    match (&spec.ai.provider, &spec.ai.groups) {
        (Some(provider), None) => validate_provider(
            &mut errors,
            "spec.ai.provider",
            provider,
            false,
            spec.policies.as_ref(),
        ),
        (None, Some(groups)) => validate_groups(&mut errors, groups, spec.policies.as_ref()),
        _ => errors.push("spec.ai", "exactly one of provider or groups must be set"),
    }
    if let Some(pass_through) = &spec.ai.pass_through {
        validate_pass_through(&mut errors, pass_through);
    }
    if let Some(policies) = &spec.policies {
        validate_policies(&mut errors, "spec.policies", policies);
    }
    errors.0
}

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

fn validate_groups(
    errors: &mut Errors,
    groups: &[crate::backend::ProviderGroup],
    backend_policies: Option<&BackendPolicies>,
) {
    if groups.is_empty() || groups.len() > MAX_GROUPS {
        errors.push(
            "spec.ai.groups",
            format!("must have between 1 and {MAX_GROUPS} groups"),
        );
    }
    let mut names = HashSet::new();
    for (g, group) in groups.iter().enumerate() {
        let group_path = format!("spec.ai.groups[{g}].providers");
        if group.providers.is_empty() || group.providers.len() > MAX_PROVIDERS_PER_GROUP {
            errors.push(
                &group_path,
                format!("must have between 1 and {MAX_PROVIDERS_PER_GROUP} providers"),
            );
        }
        for (p, provider) in group.providers.iter().enumerate() {
            let path = format!("{group_path}[{p}]");
            if let Some(name) = &provider.name
                && is_dns_label(name)
                && !names.insert(name.as_str())
            {
                errors.push(
                    format!("{path}.name"),
                    format!(
                        "duplicate provider name {name:?}: names must be unique within the backend"
                    ),
                );
            }
            validate_provider(errors, &path, provider, true, backend_policies);
        }
    }
}

fn validate_provider(
    errors: &mut Errors,
    path: &str,
    provider: &Provider,
    name_required: bool,
    backend_policies: Option<&BackendPolicies>,
) {
    match &provider.name {
        None if name_required => errors.push(format!("{path}.name"), "required"),
        Some(name) if !is_dns_label(name) => errors.push(
            format!("{path}.name"),
            "must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters",
        ),
        _ => {}
    }
    let kinds = provider.kinds();
    if kinds.len() != 1 {
        errors.push(
            path,
            "exactly one of openai, anthropic, gemini, azureopenai, bedrock, vertexai must be set",
        );
    }
    if let Some(model) = provider.model() {
        let kind = kinds.first().map(|k| k.field()).unwrap_or("openai");
        if model.is_empty() || model.len() > MAX_MODEL_LEN || model.chars().any(char::is_control) {
            errors.push(
                format!("{path}.{kind}.model"),
                format!("must be 1 to {MAX_MODEL_LEN} characters with no control characters"),
            );
        }
    }
    validate_kind_fields(errors, path, provider);
    if let Some(host) = &provider.host
        && !is_host(host)
    {
        errors.push(
                format!("{path}.host"),
                "must be a DNS-1123 hostname or an IP address, without scheme, port, path or whitespace",
            );
    }
    if let Some(port) = provider.port
        && !(1..=65535).contains(&port)
    {
        errors.push(format!("{path}.port"), "must be between 1 and 65535");
    }
    match (&provider.host, provider.port) {
        (Some(_), None) => errors.push(format!("{path}.port"), "must be set together with host"),
        (None, Some(_)) => errors.push(format!("{path}.host"), "must be set together with port"),
        _ => {}
    }
    if let Some(p) = &provider.path
        && (!p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        errors.push(
            format!("{path}.path"),
            "must start with '/' and contain no whitespace",
        );
    }
    if let Some(policies) = &provider.policies {
        validate_policies(errors, &format!("{path}.policies"), policies);
    }
    if let Some(cost) = &provider.cost {
        let prices = [
            ("inputPerMillion", Some(cost.input_per_million)),
            ("outputPerMillion", Some(cost.output_per_million)),
            ("cachedInputPerMillion", cost.cached_input_per_million),
        ];
        for (field, price) in prices {
            if let Some(price) = price
                && !(price.is_finite() && (0.0..=MAX_PRICE_PER_MILLION).contains(&price))
            {
                errors.push(
                    format!("{path}.cost.{field}"),
                    format!("must be between 0 and {MAX_PRICE_PER_MILLION} US dollars"),
                );
            }
        }
    }
    validate_effective_auth(errors, path, provider, backend_policies);
}

/// The highest price per million tokens (a thousand times today's dearest models).
pub const MAX_PRICE_PER_MILLION: f64 = 100_000.0;

fn validate_kind_fields(errors: &mut Errors, path: &str, provider: &Provider) {
    let missing = |errors: &mut Errors, field: String| errors.push(field, "required");
    if let Some(azure) = &provider.azureopenai {
        if azure.endpoint.is_none() && provider.host.is_none() {
            missing(errors, format!("{path}.azureopenai.endpoint"));
        }
        if let Some(endpoint) = &azure.endpoint
            && !is_host(endpoint)
        {
            errors.push(
                format!("{path}.azureopenai.endpoint"),
                "must be a DNS-1123 hostname",
            );
        }
        match azure.deployment_name.as_deref() {
            None | Some("") => missing(errors, format!("{path}.azureopenai.deploymentName")),
            Some(name) if !is_azure_deployment(name) => errors.push(
                format!("{path}.azureopenai.deploymentName"),
                "must be 1-64 letters, digits, '-', '_' or '.'",
            ),
            Some(_) => {}
        }
        match azure.api_version.as_deref() {
            None | Some("") => missing(errors, format!("{path}.azureopenai.apiVersion")),
            Some(version) if !is_azure_api_version(version) => errors.push(
                format!("{path}.azureopenai.apiVersion"),
                "must be a date, optionally with a suffix: YYYY-MM-DD or YYYY-MM-DD-preview",
            ),
            Some(_) => {}
        }
    }
    if let Some(bedrock) = &provider.bedrock {
        match bedrock.region.as_deref() {
            None | Some("") => missing(errors, format!("{path}.bedrock.region")),
            Some(region) if !is_cloud_region(region) => errors.push(
                format!("{path}.bedrock.region"),
                "must be an AWS region: lowercase letters, digits and '-' (e.g. us-east-1)",
            ),
            Some(_) => {}
        }
    }
    if let Some(vertex) = &provider.vertexai {
        match vertex.project_id.as_deref() {
            None | Some("") => missing(errors, format!("{path}.vertexai.projectId")),
            Some(project) if !is_gcp_project_id(project) => errors.push(
                format!("{path}.vertexai.projectId"),
                "must be a Google Cloud project id: 6 to 30 lowercase letters, digits and '-', starting with a letter",
            ),
            Some(_) => {}
        }
        match vertex.region.as_deref() {
            None | Some("") => missing(errors, format!("{path}.vertexai.region")),
            Some(region) if !is_cloud_region(region) => errors.push(
                format!("{path}.vertexai.region"),
                "must be a Google Cloud region (e.g. us-central1) or global",
            ),
            Some(_) => {}
        }
    }
}

/// An AWS or Google Cloud region as it goes into a host name: a DNS label of lowercase letters,
/// digits and `-`, at most 32 characters (`us-east-1`, `europe-west4`, `global`).
pub fn is_cloud_region(region: &str) -> bool {
    region.len() <= 32
        && is_dns_label(region)
        && region.starts_with(|c: char| c.is_ascii_lowercase())
}

/// A Google Cloud project id: 6 to 30 lowercase letters, digits and `-`, starting with a letter
/// and not ending with `-`.
pub fn is_gcp_project_id(project: &str) -> bool {
    (6..=30).contains(&project.len())
        && is_dns_label(project)
        && project.starts_with(|c: char| c.is_ascii_lowercase())
}

/// An Azure OpenAI deployment name, as it goes into the request path.
pub fn is_azure_deployment(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != ".."
}

/// An Azure OpenAI `api-version`: `YYYY-MM-DD`, optionally followed by `-` and a lowercase suffix
/// (`2024-10-21`, `2025-01-01-preview`).
pub fn is_azure_api_version(version: &str) -> bool {
    let (date, suffix) = version.split_at(version.len().min(10));
    let digits = |range: std::ops::Range<usize>| {
        date.get(range)
            .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
    };
    date.len() == 10
        && digits(0..4)
        && date.as_bytes()[4] == b'-'
        && digits(5..7)
        && date.as_bytes()[7] == b'-'
        && digits(8..10)
        && (suffix.is_empty()
            || suffix.strip_prefix('-').is_some_and(|s| {
                !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_lowercase())
            }))
}

fn validate_auth(errors: &mut Errors, path: &str, auth: &AuthPolicy) {
    let forms = [
        auth.secret_ref.is_some(),
        auth.key.is_some(),
        auth.aws.is_some(),
        auth.gcp.is_some(),
    ];
    if forms.iter().filter(|set| **set).count() != 1 {
        errors.push(
            path,
            "exactly one of secretRef, key, aws or gcp must be set",
        );
    }
    if let Some(secret_ref) = &auth.secret_ref {
        validate_secret_key_ref(errors, &format!("{path}.secretRef"), secret_ref);
    }
    if let Some(key) = &auth.key
        && key.trim().is_empty()
    {
        errors.push(format!("{path}.key"), "must not be empty");
    }
    if let Some(aws) = &auth.aws {
        let ref_path = format!("{path}.aws.secretRef");
        validate_secret_name(
            errors,
            &ref_path,
            &aws.secret_ref.name,
            aws.secret_ref.namespace.as_deref(),
        );
    }
    if let Some(gcp) = &auth.gcp {
        validate_secret_key_ref(errors, &format!("{path}.gcp.secretRef"), &gcp.secret_ref);
    }
}

fn validate_secret_key_ref(errors: &mut Errors, path: &str, secret_ref: &SecretKeyRef) {
    validate_secret_name(
        errors,
        path,
        &secret_ref.name,
        secret_ref.namespace.as_deref(),
    );
    if let Some(key) = &secret_ref.key
        && !is_data_key(key)
    {
        errors.push(
            format!("{path}.key"),
            "must be a valid data key: letters, digits, '-', '_' or '.'",
        );
    }
}

fn validate_secret_name(errors: &mut Errors, path: &str, name: &str, namespace: Option<&str>) {
    if let Some(ns) = namespace
        && !is_dns_label(ns)
    {
        errors.push(
            format!("{path}.namespace"),
            "must be a valid namespace name (DNS-1123 label)",
        );
    }
    if !is_dns_subdomain(name) {
        errors.push(
            format!("{path}.name"),
            "must be a valid Secret name (DNS-1123 subdomain)",
        );
    }
}

/// The credential form a provider's kind needs, checked against the auth that applies to it (its
/// own, else the backend's): `bedrock` signs with `aws`, `vertexai` obtains tokens with `gcp`, and
/// no other kind can use either.
fn validate_effective_auth(
    errors: &mut Errors,
    path: &str,
    provider: &Provider,
    backend_policies: Option<&BackendPolicies>,
) {
    let own = provider.policies.as_ref().and_then(|p| p.auth.as_ref());
    let (auth, auth_path) = match (own, backend_policies.and_then(|p| p.auth.as_ref())) {
        (Some(auth), _) => (Some(auth), format!("{path}.policies.auth")),
        (None, Some(auth)) => (Some(auth), "spec.policies.auth".to_string()),
        (None, None) => (None, format!("{path}.policies.auth")),
    };
    let needs = if provider.bedrock.is_some() {
        Some(("aws", "bedrock", auth.is_some_and(|a| a.aws.is_some())))
    } else if provider.vertexai.is_some() {
        Some(("gcp", "vertexai", auth.is_some_and(|a| a.gcp.is_some())))
    } else {
        None
    };
    match needs {
        Some((_, _, true)) => {}
        Some((form, kind, false)) => errors.push(
            format!("{path}.policies.auth.{form}"),
            format!("required: a {kind} provider authenticates with {form} credentials ({auth_path} has none)"),
        ),
        None => {
            for (set, form) in [
                (auth.is_some_and(|a| a.aws.is_some()), "aws"),
                (auth.is_some_and(|a| a.gcp.is_some()), "gcp"),
            ] {
                if set {
                    let kind = provider.kinds().first().map_or("this", |k| k.field());
                    errors.push(
                        format!("{auth_path}.{form}"),
                        format!("applies to {} providers only, not to the {kind} provider at {path}", if form == "aws" { "bedrock" } else { "vertexai" }),
                    );
                }
            }
        }
    }
}

fn validate_policies(errors: &mut Errors, path: &str, policies: &BackendPolicies) {
    if let Some(auth) = &policies.auth {
        validate_auth(errors, &format!("{path}.auth"), auth);
    }
    if let Some(tls) = &policies.tls {
        if let Some(sni) = &tls.sni
            && !is_dns_subdomain(sni)
        {
            errors.push(format!("{path}.tls.sni"), "must be a DNS-1123 hostname");
        }
        if let Some(ca) = &tls.ca_certificate_ref {
            if !is_dns_subdomain(&ca.name) {
                errors.push(
                    format!("{path}.tls.caCertificateRef.name"),
                    "must be a valid ConfigMap name (DNS-1123 subdomain)",
                );
            }
            if let Some(key) = &ca.key
                && !is_data_key(key)
            {
                errors.push(
                    format!("{path}.tls.caCertificateRef.key"),
                    "must be a valid data key",
                );
            }
        }
    }
    if let Some(timeouts) = &policies.timeouts {
        check_duration(
            errors,
            &format!("{path}.timeouts.request"),
            timeouts.request.as_deref(),
        );
        check_duration(
            errors,
            &format!("{path}.timeouts.connect"),
            timeouts.connect.as_deref(),
        );
    }
    if let Some(eviction) = policies.health.as_ref().and_then(|h| h.eviction.as_ref()) {
        let base = check_duration(
            errors,
            &format!("{path}.health.eviction.duration"),
            eviction.duration.as_deref(),
        );
        let max = check_duration(
            errors,
            &format!("{path}.health.eviction.maxDuration"),
            eviction.max_duration.as_deref(),
        );
        if let (Some(base), Some(max)) = (base, max)
            && max < base
        {
            errors.push(
                format!("{path}.health.eviction.maxDuration"),
                "must not be shorter than duration",
            );
        }
        match eviction.consecutive_failures {
            Some(0) => errors.push(
                format!("{path}.health.eviction.consecutiveFailures"),
                "must be at least 1",
            ),
            Some(n) if n > MAX_CONSECUTIVE_FAILURES => errors.push(
                format!("{path}.health.eviction.consecutiveFailures"),
                format!("must be at most {MAX_CONSECUTIVE_FAILURES}"),
            ),
            _ => {}
        }
    }
    if let Some(attempts) = policies.retry.as_ref().and_then(|r| r.attempts)
        && attempts > MAX_RETRY_ATTEMPTS
    {
        errors.push(
            format!("{path}.retry.attempts"),
            format!("must be between 0 and {MAX_RETRY_ATTEMPTS}"),
        );
    }
}

fn validate_pass_through(errors: &mut Errors, pass_through: &PassThrough) {
    let path = "spec.ai.passThrough.pathPrefixes";
    let prefixes = &pass_through.path_prefixes;
    if prefixes.is_empty() || prefixes.len() > MAX_PASS_THROUGH_PREFIXES {
        errors.push(
            path,
            format!("must have between 1 and {MAX_PASS_THROUGH_PREFIXES} prefixes"),
        );
    }
    let mut seen = HashSet::new();
    for (i, prefix) in prefixes.iter().enumerate() {
        if let Some(problem) = pass_through_prefix_problem(prefix) {
            errors.push(format!("{path}[{i}]"), problem);
        } else if !seen.insert(prefix.as_str()) {
            errors.push(
                format!("{path}[{i}]"),
                format!("duplicate prefix {prefix:?}"),
            );
        }
    }
}

/// Whether `prefix` is a valid `passThrough.pathPrefixes` entry (see [`pass_through_prefix_problem`]).
pub fn is_valid_pass_through_prefix(prefix: &str) -> bool {
    pass_through_prefix_problem(prefix).is_none()
}

/// What is wrong with a `passThrough.pathPrefixes` entry, or `None` when it is valid: it starts with
/// `/`, has at most [`MAX_PASS_THROUGH_PREFIX_LEN`] bytes, only RFC 3986 path characters
/// (unreserved, sub-delims, `:`, `@`, `/`; so no `%`, `?`, `#`, whitespace or non-ASCII), no empty,
/// `.` or `..` segment and no trailing `/`, except for `/` itself (everything). Such a prefix names
/// exactly one normalized path, so it cannot be matched two ways.
pub fn pass_through_prefix_problem(prefix: &str) -> Option<&'static str> {
    if !prefix.starts_with('/') {
        return Some("must start with /");
    }
    if prefix.len() > MAX_PASS_THROUGH_PREFIX_LEN {
        return Some("must be at most 256 bytes");
    }
    if prefix.contains('%') {
        return Some("must not contain % (percent-encoding): write the path as clients send it");
    }
    if prefix.contains(['?', '#']) {
        return Some("must be a path only: no ? (query) or # (fragment)");
    }
    if !prefix.bytes().all(is_path_char) {
        return Some(
            "must contain only RFC 3986 path characters: letters, digits, -._~!$&'()*+,;=:@/",
        );
    }
    if prefix == "/" {
        return None;
    }
    if prefix.ends_with('/') {
        return Some(
            "must not end with / (except the prefix / itself): prefixes match at / boundaries",
        );
    }
    if prefix[1..]
        .split('/')
        .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return Some("must not contain empty, . or .. segments");
    }
    None
}

/// An RFC 3986 `pchar` other than a percent-encoding, or `/`.
pub(crate) fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
}

/// Parses an optional duration, recording an error for a bad, zero or out-of-bounds one.
fn check_duration(
    errors: &mut Errors,
    field: &str,
    value: Option<&str>,
) -> Option<std::time::Duration> {
    let value = value?;
    match parse_duration(value) {
        Ok(d) if d.is_zero() => {
            errors.push(field, "must be longer than zero");
            None
        }
        // The config holds whole milliseconds in `MIN_DURATION_MS..=MAX_DURATION_MS`, converted as
        // the compiler does, so whatever is accepted here compiles into a config the proxy runs.
        Ok(d) if d.as_millis() < u128::from(MIN_DURATION_MS) => {
            errors.push(field, "must be at least 1ms");
            None
        }
        Ok(d) if d.as_millis() > u128::from(MAX_DURATION_MS) => {
            errors.push(field, "must be at most 24h");
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            errors.push(field, e.to_string());
            None
        }
    }
}

/// An HTTP field name: an RFC 9110 `token` (letters, digits and ``!#$%&'*+-.^_`|~``).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The largest `backendRefs[].weight` (the Gateway API's bound), so a rule's weights (at most 16
/// refs) always add up within `u32`.
pub const MAX_BACKEND_WEIGHT: i32 = 1_000_000;

/// A DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters, no trailing dot.
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A hostname or an IP literal as `host` accepts it. Dotted all-numeric names that are not valid
/// IPv4 addresses (`999.1.1.1`, `1.2.3`) are refused: resolvers treat them inconsistently.
pub fn is_host(s: &str) -> bool {
    if s.parse::<IpAddr>().is_ok() {
        return true;
    }
    let all_numeric = s
        .split('.')
        .all(|label| label.bytes().all(|b| b.is_ascii_digit()));
    is_dns_subdomain(s) && !all_numeric
}

/// A Secret or ConfigMap data key: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`.
pub fn is_data_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
