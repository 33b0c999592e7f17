//! Defaulting: the JSON patch the mutating webhook returns for an `AgentgatewayBackend` or an
//! `AgentgatewayPolicy`.
//!
//! It works on the raw JSON, not the typed spec, so that fields this version does not know survive
//! and missing parent objects can be created. It only ever adds what is absent, with the values the
//! compiler assumes when a field is absent ([`agentgateway_crds::proxy_config::defaults`]), so the
//! patch never changes what the proxy does; it makes the object say it. Applying the patch and
//! asking again yields an empty patch, so GitOps tools see no drift.

use agentgateway_crds::duration::parse_duration;
use agentgateway_crds::proxy_config::defaults;
use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, Patch, PatchOperation};
use serde_json::{Map, Value};

/// The patch that adds every absent default to `object` (an `AgentgatewayBackend` as JSON):
///
/// - `key: "Authorization"` in every `policies.auth.secretRef` without one, on the backend and on
///   each provider;
/// - on the backend's own `spec.policies` only: `timeouts.request` `600s`, `timeouts.connect`
///   `10s`, `health.eviction.duration` `5s`, `health.eviction.consecutiveFailures` 1,
///   `health.eviction.maxDuration` `60s`, `retry.attempts` 2. A provider's `policies` still
///   override them field by field, exactly as the unwritten defaults did.
///
/// An eviction default that would contradict the other eviction bound the user set (a `duration`
/// over 60s, a `maxDuration` under 5s) is left out: the compiler already stretches the maximum to
/// the duration, and writing it would turn a valid backend into an invalid one.
///
/// Nothing is patched unless `spec.ai` is an object, and a value of the wrong type where an object
/// is expected is left alone for validation to refuse.
pub fn default_patch(object: &Value) -> Patch {
    if !matches!(object.pointer("/spec/ai"), Some(Value::Object(_))) {
        return Patch(Vec::new());
    }
    let mut defaulter = Defaulter {
        doc: object.clone(),
        ops: Vec::new(),
    };
    defaulter.backend_policies();
    defaulter.secret_key(&tokens(&["spec", "ai", "provider", "policies"]));
    let group_count = array_len(object.pointer("/spec/ai/groups"));
    for g in 0..group_count {
        let providers = format!("/spec/ai/groups/{g}/providers");
        for p in 0..array_len(object.pointer(&providers)) {
            let path = [
                "spec",
                "ai",
                "groups",
                &g.to_string(),
                "providers",
                &p.to_string(),
                "policies",
            ];
            defaulter.secret_key(&tokens(&path));
        }
    }
    Patch(defaulter.ops)
}

/// `spec.auth.apiKeys.key` when absent (the compiler's default, documented on the field).
pub const DEFAULT_API_KEY_FIELD: &str = "api-key";
/// `spec.failureMode` when absent: [`FailureMode::default`] as the API spells it.
///
/// [`FailureMode::default`]: agentgateway_crds::policy::FailureMode
pub const DEFAULT_FAILURE_MODE: &str = "Open";

/// The patch that adds every absent default to `object` (an `AgentgatewayPolicy` as JSON), so
/// that `kubectl get -o yaml` shows what the proxies do:
///
/// - `spec.failureMode: Open`;
/// - `spec.auth.apiKeys.key: api-key`, when `spec.auth.apiKeys` is there (a policy without `auth`
///   gets no `auth`: that would turn on authentication).
///
/// Nothing is patched unless `spec` is an object; a value of the wrong type where an object is
/// expected is left alone for validation to refuse. Applying the patch and asking again yields an
/// empty patch.
pub fn default_policy_patch(object: &Value) -> Patch {
    if !matches!(object.get("spec"), Some(Value::Object(_))) {
        return Patch(Vec::new());
    }
    let mut defaulter = Defaulter {
        doc: object.clone(),
        ops: Vec::new(),
    };
    defaulter.set_if_absent(
        &tokens(&["spec", "failureMode"]),
        Value::from(DEFAULT_FAILURE_MODE),
    );
    let api_keys = tokens(&["spec", "auth", "apiKeys"]);
    if matches!(get(&defaulter.doc, &api_keys), Some(Value::Object(_))) {
        defaulter.set_if_absent(
            &join(&api_keys, &["key"]),
            Value::from(DEFAULT_API_KEY_FIELD),
        );
    }
    Patch(defaulter.ops)
}

/// The document as patched so far, and the operations that patched it: checking presence against
/// the patched copy is what keeps a parent from being added twice.
struct Defaulter {
    doc: Value,
    ops: Vec<PatchOperation>,
}

impl Defaulter {
    fn backend_policies(&mut self) {
        let policies = tokens(&["spec", "policies"]);
        self.set_if_absent(
            &join(&policies, &["timeouts", "request"]),
            Value::from(duration_text(defaults::REQUEST_TIMEOUT_MS)),
        );
        self.set_if_absent(
            &join(&policies, &["timeouts", "connect"]),
            Value::from(duration_text(defaults::CONNECT_TIMEOUT_MS)),
        );
        let eviction = join(&policies, &["health", "eviction"]);
        let max_ms = self.duration_ms(&join(&eviction, &["maxDuration"]));
        if max_ms.is_none_or(|max| max >= defaults::EVICTION_BASE_MS) {
            self.set_if_absent(
                &join(&eviction, &["duration"]),
                Value::from(duration_text(defaults::EVICTION_BASE_MS)),
            );
        }
        self.set_if_absent(
            &join(&eviction, &["consecutiveFailures"]),
            Value::from(defaults::CONSECUTIVE_FAILURES),
        );
        let base_ms = self.duration_ms(&join(&eviction, &["duration"]));
        if base_ms.is_none_or(|base| base <= defaults::EVICTION_MAX_MS) {
            self.set_if_absent(
                &join(&eviction, &["maxDuration"]),
                Value::from(duration_text(defaults::EVICTION_MAX_MS)),
            );
        }
        self.set_if_absent(
            &join(&policies, &["retry", "attempts"]),
            Value::from(defaults::RETRY_ATTEMPTS),
        );
        self.secret_key(&policies);
    }

    /// `auth.secretRef.key` and `auth.gcp.secretRef.key` under the policies at `policies`, when
    /// that `secretRef` object is there.
    fn secret_key(&mut self, policies: &[String]) {
        for (form, default) in [
            (&["auth", "secretRef"][..], defaults::SECRET_KEY),
            (
                &["auth", "gcp", "secretRef"][..],
                defaults::GCP_SERVICE_ACCOUNT_KEY,
            ),
        ] {
            let secret_ref = join(policies, form);
            if matches!(get(&self.doc, &secret_ref), Some(Value::Object(_))) {
                self.set_if_absent(&join(&secret_ref, &["key"]), Value::from(default));
            }
        }
    }

    /// Adds `value` at `path` when nothing (or `null`) is there, first adding `{}` for each missing
    /// parent. Gives up without a change when a parent exists but is not an object.
    fn set_if_absent(&mut self, path: &[String], value: Value) {
        for depth in 1..path.len() {
            let present = match get(&self.doc, &path[..depth]) {
                // Arrays (`groups`, `providers`) are walked through by index, never added to.
                Some(Value::Object(_) | Value::Array(_)) => true,
                None | Some(Value::Null) => self.add(&path[..depth], Value::Object(Map::new())),
                Some(_) => false,
            };
            if !present {
                return;
            }
        }
        if matches!(get(&self.doc, path), None | Some(Value::Null)) {
            self.add(path, value);
        }
    }

    /// Adds `value` at `path` when its parent is an object, recording the operation and applying it
    /// to the copy; reports whether it did.
    fn add(&mut self, path: &[String], value: Value) -> bool {
        let Some((leaf, parents)) = path.split_last() else {
            return false;
        };
        let Some(Value::Object(parent)) = get_mut(&mut self.doc, parents) else {
            return false;
        };
        parent.insert(leaf.clone(), value.clone());
        self.ops.push(add_op(path, value));
        true
    }

    /// The duration at `path` in milliseconds, when it is a string that parses.
    fn duration_ms(&self, path: &[String]) -> Option<u64> {
        let text = get(&self.doc, path)?.as_str()?;
        let duration = parse_duration(text).ok()?;
        Some(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }
}

fn add_op(path: &[String], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: pointer(path),
        value,
    })
}

/// The JSON pointer to `path`, each token escaped (`~` → `~0`, `/` → `~1`) as RFC 6901 requires.
pub(crate) fn pointer(path: &[String]) -> PointerBuf {
    PointerBuf::from_tokens(path.iter().map(|t| Token::new(t.as_str())))
}

/// A duration in the form the API documents its defaults in: whole seconds as `"600s"`, anything
/// finer as milliseconds.
fn duration_text(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

fn get<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |value, token| match value {
        Value::Object(map) => map.get(token),
        Value::Array(items) => items.get(token.parse::<usize>().ok()?),
        _ => None,
    })
}

fn get_mut<'v>(value: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |value, token| match value {
        Value::Object(map) => map.get_mut(token),
        Value::Array(items) => items.get_mut(token.parse::<usize>().ok()?),
        _ => None,
    })
}

fn array_len(value: Option<&Value>) -> usize {
    value.and_then(Value::as_array).map_or(0, Vec::len)
}

fn tokens(path: &[&str]) -> Vec<String> {
    path.iter().map(|t| (*t).to_string()).collect()
}

fn join(base: &[String], rest: &[&str]) -> Vec<String> {
    base.iter()
        .cloned()
        .chain(rest.iter().map(|t| (*t).to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_are_escaped() {
        let path = tokens(&["a/b", "m~n", "plain"]);
        assert_eq!(pointer(&path).as_str(), "/a~1b/m~0n/plain");
    }

    #[test]
    fn durations_are_written_as_the_api_documents_them() {
        assert_eq!(duration_text(defaults::REQUEST_TIMEOUT_MS), "600s");
        assert_eq!(duration_text(defaults::CONNECT_TIMEOUT_MS), "10s");
        assert_eq!(duration_text(defaults::EVICTION_BASE_MS), "5s");
        assert_eq!(duration_text(defaults::EVICTION_MAX_MS), "60s");
        assert_eq!(duration_text(1500), "1500ms");
    }

    #[test]
    fn the_policy_defaults_are_the_apis_defaults() {
        assert_eq!(
            serde_json::to_value(agentgateway_crds::policy::FailureMode::default()).unwrap(),
            Value::from(DEFAULT_FAILURE_MODE)
        );
    }

    #[test]
    fn a_parent_of_the_wrong_type_is_left_alone() {
        let object = serde_json::json!({
            "spec": {"ai": {"provider": {"openai": {}}}, "policies": {"timeouts": "fast"}}
        });
        let patch = default_patch(&object);
        let paths: Vec<&str> = patch
            .iter()
            .map(|op| match op {
                PatchOperation::Add(add) => add.path.as_str(),
                _ => "",
            })
            .collect();
        assert!(
            !paths
                .iter()
                .any(|p| p.starts_with("/spec/policies/timeouts"))
        );
        assert!(paths.contains(&"/spec/policies/retry/attempts"));
    }
}
