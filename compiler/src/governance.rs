//! `AgentgatewayPolicy` attachment: which policy supplies each field (`auth`, `rateLimit.local`,
//! `rateLimit.global`, `budget`) on each Gateway, HTTPRoute and AgentgatewayBackend, the effective
//! policy of a request (backend over route over Gateway, field by field), the consumers' key hashes,
//! and each policy's state on each of its targets.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use agentgateway_crds::AgentgatewayPolicy;
use agentgateway_crds::policy::{ApiKeys, PolicyTargetRef};
use agentgateway_crds::proxy_config::policy::{
    ApiKeysConfig, BudgetConfig, ConsumerKey, LimitConfig, LimitUnit, PolicyConfig,
};
use agentgateway_crds::proxy_config::{Credentials, ProxyConfig};
use agentgateway_crds::validation::policy::validate_policy_spec;
use agentgateway_crds::{GATEWAY_API_GROUP, GROUP};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use sha2::{Digest, Sha256};

use crate::diagnostic::{Diagnostic, Reason};
use crate::inputs::{Inputs, ObjectRef, key_of, name_of, namespace_of};
use crate::listener::ServedListener;

/// `spec.auth.apiKeys.key` when absent.
pub const DEFAULT_API_KEY_FIELD: &str = "api-key";

/// The state of one AgentgatewayPolicy on each of its targets (the operator patches it into the
/// policy's status).
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyReport {
    /// The policy.
    pub policy: ObjectRef,
    /// `metadata.generation`, for `observedGeneration`.
    pub generation: Option<i64>,
    /// One entry per `spec.targetRefs` entry (duplicates once).
    pub targets: Vec<TargetReport>,
}

/// A policy on one target.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetReport {
    /// The target.
    pub target: PolicyTargetRef,
    /// Empty: the policy applies to the target whole. Otherwise what does not apply, and why.
    pub diagnostics: Vec<Diagnostic>,
    /// Detail for a message when it applies (the consumers found).
    pub note: Option<String>,
}

/// The fields attached separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Auth,
    Local,
    Global,
    Budget,
}

impl Field {
    const ALL: [Self; 4] = [Self::Auth, Self::Local, Self::Global, Self::Budget];

    fn path(self) -> &'static str {
        match self {
            Self::Auth => "spec.auth",
            Self::Local => "spec.rateLimit.local",
            Self::Global => "spec.rateLimit.global",
            Self::Budget => "spec.budget",
        }
    }

    fn is_set(self, policy: &AgentgatewayPolicy) -> bool {
        let spec = &policy.spec;
        let rate_limit = spec.rate_limit.as_ref();
        match self {
            Self::Auth => spec.auth.is_some(),
            Self::Local => {
                rate_limit.is_some_and(|r| r.local.as_ref().is_some_and(|l| !l.is_empty()))
            }
            Self::Global => {
                rate_limit.is_some_and(|r| r.global.as_ref().is_some_and(|l| !l.is_empty()))
            }
            Self::Budget => spec.budget.is_some(),
        }
    }

    fn needs_redis(self) -> bool {
        matches!(self, Self::Global | Self::Budget)
    }
}

/// The kinds a policy targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TargetKind {
    Gateway,
    Route,
    Backend,
}

/// A target: kind and `namespace/name`.
type TargetKey = (TargetKind, String);

/// Which policy supplies which field where, the consumers' hashes, and every policy's report.
pub(crate) struct Attachments<'a> {
    slots: BTreeMap<(TargetKey, Field), &'a AgentgatewayPolicy>,
    /// Hash lists by credential id, for the policies whose `auth` supplies some slot.
    consumers: BTreeMap<String, String>,
    pub(crate) reports: Vec<PolicyReport>,
}

impl<'a> Attachments<'a> {
    /// Attaches every policy of `inputs`, oldest first.
    pub(crate) fn new(inputs: &'a Inputs) -> Self {
        let mut policies: Vec<&AgentgatewayPolicy> = inputs.policies.iter().collect();
        policies.sort_by_key(|p| {
            (
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                key_of(&p.metadata),
            )
        });
        let mut attachments = Self {
            slots: BTreeMap::new(),
            consumers: BTreeMap::new(),
            reports: Vec::new(),
        };
        for policy in policies {
            attachments.attach(inputs, policy);
        }
        attachments
    }

    fn attach(&mut self, inputs: &'a Inputs, policy: &'a AgentgatewayPolicy) {
        let object = ObjectRef::of(policy);
        let namespace = namespace_of(&policy.metadata);
        let errors = validate_policy_spec(&policy.spec);
        let mut seen = BTreeSet::new();
        let mut targets = Vec::new();
        // Targets whose `auth` this policy supplies.
        let mut authenticates = Vec::new();
        for (i, target) in policy.spec.target_refs.iter().enumerate() {
            if !seen.insert(target) {
                continue;
            }
            let mut diagnostics: Vec<Diagnostic> = errors
                .iter()
                .map(|e| Diagnostic::new(&object, &e.field, Reason::InvalidSpec, &e.message))
                .collect();
            let key = target_key(namespace, target);
            if diagnostics.is_empty() {
                match key.as_ref().filter(|key| exists(inputs, key)) {
                    None => diagnostics.push(Diagnostic::new(
                        &object,
                        format!("spec.targetRefs[{i}]"),
                        Reason::TargetNotFound,
                        match key.as_ref().map(|(kind, _)| *kind) {
                            Some(TargetKind::Gateway) => format!(
                                "Gateway {namespace}/{} not found among the Gateways of this controller's GatewayClasses",
                                target.name
                            ),
                            _ => format!("{} {namespace}/{} not found", target.kind, target.name),
                        },
                    )),
                    Some(key) => {
                        for field in Field::ALL.into_iter().filter(|f| f.is_set(policy)) {
                            match self.take(key, field, policy, inputs.shared_counters) {
                                Ok(()) if field == Field::Auth => {
                                    authenticates.push(targets.len());
                                }
                                Ok(()) => {}
                                Err((reason, message)) => diagnostics.push(Diagnostic::new(
                                    &object,
                                    field.path(),
                                    reason,
                                    message,
                                )),
                            }
                        }
                    }
                }
            }
            targets.push(TargetReport {
                target: target.clone(),
                diagnostics,
                note: None,
            });
        }
        if !authenticates.is_empty()
            && let Some(auth) = &policy.spec.auth
        {
            let (hashes, note) = consumer_keys(inputs, namespace, &auth.api_keys);
            self.consumers.insert(credential_id(policy), hashes);
            for i in authenticates {
                targets[i].note = Some(note.clone());
            }
        }
        self.reports.push(PolicyReport {
            policy: object,
            generation: policy.metadata.generation,
            targets,
        });
    }

    /// Gives `field` of `key` to `policy` unless an older policy has it or it needs Redis and
    /// there is none.
    fn take(
        &mut self,
        key: &TargetKey,
        field: Field,
        policy: &'a AgentgatewayPolicy,
        shared_counters: bool,
    ) -> Result<(), (Reason, String)> {
        if field.needs_redis() && !shared_counters {
            return Err((
                Reason::RedisNotConfigured,
                "needs Redis, and the gateway has none: set the chart's redis values (or the proxy's --redis-url); not applied"
                    .to_string(),
            ));
        }
        let slot = (key.clone(), field);
        if let Some(older) = self.slots.get(&slot) {
            return Err((
                Reason::Conflicted,
                format!(
                    "AgentgatewayPolicy {} already sets it on this target and is older; not applied",
                    key_of(&older.metadata)
                ),
            ));
        }
        self.slots.insert(slot, policy);
        Ok(())
    }

    /// The policy a request to `backend` through `route` on a listener of `gateway` must pass:
    /// each field from the backend's policy, else the route's, else the Gateway's.
    fn effective(
        &self,
        gateway: Option<&str>,
        route: &str,
        backend: Option<&str>,
    ) -> Option<PolicyConfig> {
        let layers = [
            backend.map(|b| (TargetKind::Backend, b)),
            Some((TargetKind::Route, route)),
            gateway.map(|g| (TargetKind::Gateway, g)),
        ];
        let supplier = |field: Field| {
            layers.iter().flatten().find_map(|(kind, name)| {
                self.slots
                    .get(&((*kind, (*name).to_string()), field))
                    .copied()
            })
        };
        let mut config = PolicyConfig::default();
        if let Some(policy) = supplier(Field::Auth) {
            config.api_keys = Some(ApiKeysConfig {
                credential: credential_id(policy),
            });
        }
        if let Some(policy) = supplier(Field::Local) {
            config.local = limits(policy, "local", |r| r.local.as_deref());
        }
        if let Some(policy) = supplier(Field::Global) {
            config.global = limits(policy, "global", |r| r.global.as_deref());
            config.failure_mode = policy.spec.failure_mode.unwrap_or_default();
        }
        if let Some(policy) = supplier(Field::Budget)
            && let Some(budget) = &policy.spec.budget
        {
            config.budget = Some(BudgetConfig {
                id: format!("{}/budget", key_of(&policy.metadata)),
                // Validation bounds `usd` to (0, 1e9]: the product fits, and rounds to >= 1.
                micro_usd: ((budget.usd * 1e6).round() as u64).max(1),
                per: budget.per,
                key: budget.key,
                failure_mode: policy.spec.failure_mode.unwrap_or_default(),
            });
        }
        (config != PolicyConfig::default()).then_some(config)
    }

    /// Sets the policy of every weighted backend of every rule, each distinct effective policy
    /// once in `config.policies`, and the key hashes the policies refer to in `credentials`.
    pub(crate) fn apply(
        &self,
        listeners: &[ServedListener],
        config: &mut ProxyConfig,
        credentials: &mut Credentials,
    ) {
        let mut ids: HashMap<PolicyConfig, String> = HashMap::new();
        for listener in &mut config.listeners {
            // A port shared by several listeners is named after the first; all are of one Gateway.
            let gateway = listeners
                .iter()
                .find(|served| served.config_name == listener.name)
                .and_then(|served| served.gateway.as_ref().map(ObjectRef::key));
            for rule in &mut listener.rules {
                for weighted in &mut rule.backends {
                    let effective = self.effective(
                        gateway.as_deref(),
                        &rule.route,
                        weighted.backend.as_deref(),
                    );
                    weighted.policy = effective.map(|policy| {
                        let next = format!("policy-{}", ids.len());
                        ids.entry(policy).or_insert(next).clone()
                    });
                }
            }
        }
        for (policy, id) in ids {
            if let Some(api_keys) = &policy.api_keys
                && let Some(hashes) = self.consumers.get(&api_keys.credential)
            {
                credentials.insert(api_keys.credential.clone(), hashes.clone());
            }
            config.policies.insert(id, policy);
        }
    }

    /// Every problem of every policy (standalone mode: each is fatal).
    pub(crate) fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.reports
            .iter()
            .flat_map(|r| &r.targets)
            .flat_map(|t| &t.diagnostics)
    }
}

/// The state of every AgentgatewayPolicy of `inputs` on each of its targets.
pub fn policy_reports(inputs: &Inputs) -> Vec<PolicyReport> {
    Attachments::new(inputs).reports
}

/// The credential id of a policy's key hashes (a Secret data key: `[-._a-zA-Z0-9]`).
fn credential_id(policy: &AgentgatewayPolicy) -> String {
    format!(
        "apikeys_{}_{}",
        namespace_of(&policy.metadata),
        name_of(&policy.metadata)
    )
}

fn limits(
    policy: &AgentgatewayPolicy,
    scope: &str,
    pick: impl Fn(
        &agentgateway_crds::policy::RateLimitPolicy,
    ) -> Option<&[agentgateway_crds::policy::RateLimit]>,
) -> Vec<LimitConfig> {
    let prefix = key_of(&policy.metadata);
    let limits = policy.spec.rate_limit.as_ref().and_then(pick);
    limits
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, limit)| {
            let (unit, n) = match (limit.requests, limit.tokens) {
                (Some(n), None) => (LimitUnit::Requests, n),
                (None, Some(n)) => (LimitUnit::Tokens, n),
                // Validation refused it; the policy would not have been attached.
                _ => return None,
            };
            Some(LimitConfig {
                id: format!("{prefix}/{scope}/{i}"),
                unit,
                limit: n,
                per: limit.per,
                key: limit.key,
            })
        })
        .collect()
}

fn target_key(namespace: &str, target: &PolicyTargetRef) -> Option<TargetKey> {
    let kind = match (target.group.as_str(), target.kind.as_str()) {
        (GATEWAY_API_GROUP, "Gateway") => TargetKind::Gateway,
        (GATEWAY_API_GROUP, "HTTPRoute") => TargetKind::Route,
        (GROUP, "AgentgatewayBackend") => TargetKind::Backend,
        _ => return None,
    };
    Some((kind, format!("{namespace}/{}", target.name)))
}

fn exists(inputs: &Inputs, (kind, key): &TargetKey) -> bool {
    match kind {
        TargetKind::Gateway => inputs.gateways.iter().any(|g| key_of(&g.metadata) == *key),
        TargetKind::Route => inputs.routes.iter().any(|r| key_of(&r.metadata) == *key),
        TargetKind::Backend => inputs.backends.iter().any(|b| key_of(&b.metadata) == *key),
    }
}

/// The consumers of `api_keys` among the Secrets of `namespace`: their key hashes as the JSON the
/// proxy reads, and a note naming the consumers and the Secrets that are none.
fn consumer_keys(inputs: &Inputs, namespace: &str, api_keys: &ApiKeys) -> (String, String) {
    let field = api_keys.key.as_deref().unwrap_or(DEFAULT_API_KEY_FIELD);
    let mut consumers: Vec<ConsumerKey> = Vec::new();
    let mut skipped = Vec::new();
    let mut secrets: Vec<_> = inputs
        .secrets
        .iter()
        .filter(|s| namespace_of(&s.metadata) == namespace)
        .filter(|s| selector_matches(&api_keys.secret_selector, s.metadata.labels.as_ref()))
        .collect();
    secrets.sort_by_key(|s| name_of(&s.metadata));
    secrets.dedup_by_key(|s| name_of(&s.metadata));
    for secret in secrets {
        let name = name_of(&secret.metadata);
        let value = secret.data.as_ref().and_then(|d| d.get(field));
        // A key pasted with `echo` ends with a newline; no API key has surrounding whitespace.
        let key = value.map(|v| String::from_utf8_lossy(&v.0).trim().to_string());
        match key {
            None => skipped.push(format!("{name} (no key {field:?})")),
            Some(key) if key.is_empty() => skipped.push(format!("{name} (empty {field:?})")),
            Some(key) => {
                let sha256 = hex(&Sha256::digest(key.as_bytes()));
                if let Some(first) = consumers.iter().find(|c| c.sha256 == sha256) {
                    skipped.push(format!("{name} (same key as {})", first.consumer));
                } else {
                    consumers.push(ConsumerKey {
                        consumer: name.to_string(),
                        sha256,
                    });
                }
            }
        }
    }
    let names: Vec<&str> = consumers.iter().map(|c| c.consumer.as_str()).collect();
    let mut note = match names.len() {
        0 => "no consumers: every request is refused with 401".to_string(),
        1 => format!("1 consumer ({})", names.join(", ")),
        n => format!("{n} consumers ({})", names.join(", ")),
    };
    if !skipped.is_empty() {
        note.push_str(&format!(
            "; Secrets that are no consumer: {}",
            skipped.join(", ")
        ));
    }
    // Serializing strings and plain structs cannot fail; an empty list refuses everyone.
    let json = serde_json::to_string(&consumers).unwrap_or_else(|_| "[]".to_string());
    (json, note)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Whether `selector` selects an object with `labels` (Kubernetes semantics: every `matchLabels`
/// pair and every `matchExpressions` requirement holds; an empty selector selects everything).
pub fn selector_matches(
    selector: &LabelSelector,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let get = |key: &str| labels.and_then(|l| l.get(key));
    let pairs = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| get(k) == Some(v));
    let requirements = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        match (e.operator.as_str(), get(&e.key)) {
            ("In", Some(v)) => values.contains(v),
            ("NotIn", v) => v.is_none_or(|v| !values.contains(v)),
            ("Exists", v) => v.is_some(),
            ("DoesNotExist", v) => v.is_none(),
            // `In` without the label, or an unknown operator (validation refuses those).
            _ => false,
        }
    });
    pairs && requirements
}

/// The Secrets (namespace, name) some policy's `auth.apiKeys` selects among `secrets`, given by
/// namespace, name and labels (the operator fetches their data; it caches only metadata).
pub fn selected_secrets<'s>(
    policies: &[AgentgatewayPolicy],
    secrets: impl IntoIterator<Item = (&'s str, &'s str, Option<&'s BTreeMap<String, String>>)>,
) -> BTreeSet<(String, String)> {
    let selectors: Vec<(&str, &LabelSelector)> = policies
        .iter()
        .filter_map(|p| {
            let auth = p.spec.auth.as_ref()?;
            Some((namespace_of(&p.metadata), &auth.api_keys.secret_selector))
        })
        .collect();
    secrets
        .into_iter()
        .filter(|(namespace, _, labels)| {
            selectors
                .iter()
                .any(|(ns, selector)| ns == namespace && selector_matches(selector, *labels))
        })
        .map(|(namespace, name, _)| (namespace.to_string(), name.to_string()))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_follow_kubernetes_semantics() {
        let selector = LabelSelector {
            match_labels: Some(labels(&[("team", "a")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["gold".into(), "silver".into()]),
                },
                LabelSelectorRequirement {
                    key: "revoked".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let yes = labels(&[("team", "a"), ("tier", "gold")]);
        assert!(selector_matches(&selector, Some(&yes)));
        let revoked = labels(&[("team", "a"), ("tier", "gold"), ("revoked", "")]);
        assert!(!selector_matches(&selector, Some(&revoked)));
        assert!(!selector_matches(
            &selector,
            Some(&labels(&[("team", "a")]))
        ));
        assert!(!selector_matches(&selector, None));
        let not_in = LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "NotIn".into(),
                values: Some(vec!["prod".into()]),
            }]),
            ..Default::default()
        };
        assert!(selector_matches(&not_in, None));
        assert!(!selector_matches(
            &not_in,
            Some(&labels(&[("env", "prod")]))
        ));
    }

    #[test]
    fn hashes_are_lower_case_hex_sha256() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
