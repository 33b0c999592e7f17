//! The structural rules of an `AgentgatewayPolicy`, shared by the compiler and the webhook.

use std::collections::HashSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{Errors, FieldError, is_data_key, is_dns_subdomain};
use crate::policy::{AgentgatewayPolicySpec, RateLimit};

/// The most `targetRefs`.
pub const MAX_TARGET_REFS: usize = 16;
/// The most limits in `rateLimit.local`, and in `rateLimit.global`.
pub const MAX_LIMITS: usize = 16;
/// The largest budget, in US dollars (its micro-dollars stay far inside `u64`).
pub const MAX_BUDGET_USD: f64 = 1e9;
/// The largest `requests` or `tokens` of a limit (Redis counters are signed 64-bit).
pub const MAX_LIMIT: u64 = 1 << 53;

/// The kinds a policy may target, with their groups.
pub const TARGET_KINDS: [(&str, &str); 3] = [
    (crate::GATEWAY_API_GROUP, "Gateway"),
    (crate::GATEWAY_API_GROUP, "HTTPRoute"),
    (crate::GROUP, "AgentgatewayBackend"),
];

/// Every violation in the spec, in field order. Empty means valid.
pub fn validate_policy_spec(spec: &AgentgatewayPolicySpec) -> Vec<FieldError> {
    let mut errors = Errors::default();
    if spec.target_refs.is_empty() || spec.target_refs.len() > MAX_TARGET_REFS {
        errors.push(
            "spec.targetRefs",
            format!("must have 1 to {MAX_TARGET_REFS} entries"),
        );
    }
    let mut seen = HashSet::new();
    for (i, target) in spec.target_refs.iter().enumerate() {
        let path = format!("spec.targetRefs[{i}]");
        if !TARGET_KINDS
            .iter()
            .any(|(group, kind)| target.group == *group && target.kind == *kind)
        {
            let allowed: Vec<String> = TARGET_KINDS
                .iter()
                .map(|(group, kind)| format!("{kind} ({group})"))
                .collect();
            errors.push(
                format!("{path}.kind"),
                format!(
                    "{:?} of group {:?} cannot be targeted: use one of {}",
                    target.kind,
                    target.group,
                    allowed.join(", ")
                ),
            );
        }
        if !is_dns_subdomain(&target.name) {
            errors.push(format!("{path}.name"), "must be a DNS-1123 subdomain");
        }
        if !seen.insert(target) {
            errors.push(path, "duplicates an earlier target");
        }
    }
    if spec.auth.is_none() && spec.rate_limit.is_none() && spec.budget.is_none() {
        errors.push("spec", "set at least one of auth, rateLimit or budget");
    }
    if let Some(auth) = &spec.auth {
        let path = "spec.auth.apiKeys";
        validate_selector(
            &mut errors,
            &format!("{path}.secretSelector"),
            &auth.api_keys.secret_selector,
        );
        if let Some(key) = &auth.api_keys.key
            && !is_data_key(key)
        {
            errors.push(
                format!("{path}.key"),
                "must be a Secret data key ([-._a-zA-Z0-9]+)",
            );
        }
    }
    if let Some(rate_limit) = &spec.rate_limit {
        let local = rate_limit.local.as_deref().unwrap_or_default();
        let global = rate_limit.global.as_deref().unwrap_or_default();
        if local.is_empty() && global.is_empty() {
            errors.push(
                "spec.rateLimit",
                "set at least one limit in local or global",
            );
        }
        validate_limits(&mut errors, "spec.rateLimit.local", local);
        validate_limits(&mut errors, "spec.rateLimit.global", global);
    }
    if let Some(budget) = &spec.budget
        && !(budget.usd.is_finite() && budget.usd > 0.0 && budget.usd <= MAX_BUDGET_USD)
    {
        errors.push(
            "spec.budget.usd",
            format!("must be more than 0 and at most {MAX_BUDGET_USD}"),
        );
    }
    errors.0
}

fn validate_limits(errors: &mut Errors, path: &str, limits: &[RateLimit]) {
    if limits.len() > MAX_LIMITS {
        errors.push(path, format!("must have at most {MAX_LIMITS} entries"));
    }
    for (i, limit) in limits.iter().enumerate() {
        let path = format!("{path}[{i}]");
        match (limit.requests, limit.tokens) {
            (Some(n), None) => check_limit(errors, &format!("{path}.requests"), n),
            (None, Some(n)) => check_limit(errors, &format!("{path}.tokens"), n),
            _ => errors.push(path, "exactly one of requests or tokens must be set"),
        }
    }
}

fn check_limit(errors: &mut Errors, field: &str, n: u64) {
    if n == 0 || n > MAX_LIMIT {
        errors.push(field, format!("must be between 1 and {MAX_LIMIT}"));
    }
}

/// A label selector that selects something specific: empty selectors select every Secret.
fn validate_selector(errors: &mut Errors, path: &str, selector: &LabelSelector) {
    let labels = selector.match_labels.as_ref().map_or(0, |l| l.len());
    let expressions = selector.match_expressions.as_deref().unwrap_or_default();
    if labels == 0 && expressions.is_empty() {
        errors.push(
            path,
            "must have matchLabels or matchExpressions: an empty selector selects every Secret",
        );
    }
    for (key, value) in selector.match_labels.iter().flatten() {
        if !is_label_key(key) {
            errors.push(
                format!("{path}.matchLabels"),
                format!("{key:?} is not a label key"),
            );
        }
        if !is_label_value(value) {
            errors.push(
                format!("{path}.matchLabels.{key}"),
                format!("{value:?} is not a label value"),
            );
        }
    }
    for (i, expression) in expressions.iter().enumerate() {
        let path = format!("{path}.matchExpressions[{i}]");
        if !is_label_key(&expression.key) {
            errors.push(format!("{path}.key"), "is not a label key");
        }
        let values = expression.values.as_deref().unwrap_or_default();
        match expression.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errors.push(
                format!("{path}.values"),
                "must not be empty for In and NotIn",
            ),
            "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(
                format!("{path}.values"),
                "must be empty for Exists and DoesNotExist",
            ),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            _ => errors.push(
                format!("{path}.operator"),
                "must be In, NotIn, Exists or DoesNotExist",
            ),
        }
        for (j, value) in values.iter().enumerate() {
            if !is_label_value(value) {
                errors.push(format!("{path}.values[{j}]"), "is not a label value");
            }
        }
    }
}

/// A label key: an optional DNS subdomain prefix and `/`, then a name of at most 63 characters.
pub fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// A label value: at most 63 of `[-_.A-Za-z0-9]`, starting and ending alphanumeric (or empty).
pub fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_none_or(u8::is_ascii_alphanumeric)
        && bytes.last().is_none_or(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{
        ApiKeys, BudgetKey, BudgetPeriod, BudgetPolicy, ClientAuth, LimitKey, PolicyTargetRef,
        RateLimitPolicy, RatePeriod,
    };

    fn target(kind: &str) -> PolicyTargetRef {
        let group = if kind == "AgentgatewayBackend" {
            crate::GROUP
        } else {
            crate::GATEWAY_API_GROUP
        };
        PolicyTargetRef {
            group: group.into(),
            kind: kind.into(),
            name: "a".into(),
        }
    }

    fn fields(spec: &AgentgatewayPolicySpec) -> Vec<String> {
        validate_policy_spec(spec)
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_complete_policy_is_valid() {
        let spec = AgentgatewayPolicySpec {
            target_refs: vec![target("Gateway"), target("AgentgatewayBackend")],
            auth: Some(ClientAuth {
                api_keys: ApiKeys {
                    secret_selector: LabelSelector {
                        match_labels: Some([("team".to_string(), "a".to_string())].into()),
                        ..Default::default()
                    },
                    key: None,
                },
            }),
            rate_limit: Some(RateLimitPolicy {
                local: Some(vec![RateLimit {
                    tokens: Some(1000),
                    per: RatePeriod::Minute,
                    key: LimitKey::Consumer,
                    ..Default::default()
                }]),
                global: None,
            }),
            budget: Some(BudgetPolicy {
                usd: 10.0,
                per: BudgetPeriod::Month,
                key: BudgetKey::Consumer,
            }),
            failure_mode: None,
        };
        assert_eq!(validate_policy_spec(&spec), []);
    }

    #[test]
    fn each_violation_names_its_field() {
        let spec = AgentgatewayPolicySpec {
            target_refs: vec![target("Service"), target("Gateway"), target("Gateway")],
            auth: Some(ClientAuth::default()),
            rate_limit: Some(RateLimitPolicy {
                local: Some(vec![RateLimit::default()]),
                global: Some(vec![RateLimit {
                    requests: Some(0),
                    ..Default::default()
                }]),
            }),
            budget: Some(BudgetPolicy {
                usd: f64::NAN,
                ..Default::default()
            }),
            failure_mode: None,
        };
        assert_eq!(
            fields(&spec),
            [
                "spec.targetRefs[0].kind",
                "spec.targetRefs[2]",
                "spec.auth.apiKeys.secretSelector",
                "spec.rateLimit.local[0]",
                "spec.rateLimit.global[0].requests",
                "spec.budget.usd",
            ]
        );
        assert_eq!(
            fields(&AgentgatewayPolicySpec {
                target_refs: vec![target("HTTPRoute")],
                ..Default::default()
            }),
            ["spec"]
        );
    }

    #[test]
    fn label_keys_and_values() {
        assert!(is_label_key("agentgateway.dev/api-key"));
        assert!(is_label_key("team"));
        assert!(!is_label_key("a/"));
        assert!(!is_label_key("-a"));
        assert!(is_label_value(""));
        assert!(!is_label_value("a b"));
    }
}
