//! Validation: whether an `AgentgatewayBackend` or an `AgentgatewayPolicy` may be stored, and what
//! its author should know.
//!
//! The rules themselves live in [`agentgateway_crds::validation`], shared with the operator's status
//! and the compiler so the three can never disagree; this module decides what admission does with
//! them. Every violation is reported at once, each with its field path, so one `kubectl apply`
//! shows everything to fix.

use std::collections::BTreeMap;

use agentgateway_crds::AgentgatewayBackendSpec;
use agentgateway_crds::AgentgatewayParametersSpec;
use agentgateway_crds::backend::BackendPolicies;
use agentgateway_crds::policy::AgentgatewayPolicySpec;
use agentgateway_crds::proxy_config::defaults;
use agentgateway_crds::validation::{
    FieldError, validate_backend_spec, validate_parameters_spec, validate_policy_spec,
};
use json_patch::Patch;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::defaulting::{default_patch, default_policy_patch};
use crate::review::located;
use crate::secrets::{SecretLookup, SecretState};
use crate::targets::{TargetLookup, TargetState};

const BACKEND: &str = "AgentgatewayBackend";
const POLICY: &str = "AgentgatewayPolicy";
const PARAMETERS: &str = "AgentgatewayParameters";

/// What the validating webhook answers about one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Store it; `warnings` go back to the client (`kubectl` prints them).
    Allowed {
        /// Problems that do not block the write, such as a Secret that does not exist yet.
        warnings: Vec<String>,
    },
    /// Refuse it.
    Denied {
        /// `AgentgatewayBackend "ns/name" is invalid: ` followed by every violation as
        /// `spec.<path>: <message>`, joined with `"; "`.
        message: String,
    },
}

/// Validates `object` (an `AgentgatewayBackend` as JSON). `old_object` is the stored object of an
/// UPDATE; `secrets` answers whether referenced Secrets exist.
///
/// - An object being deleted (`metadata.deletionTimestamp`) is allowed: removing a finalizer must
///   never be blocked.
/// - An UPDATE that leaves `spec` as it was (also after defaulting) is allowed even when the spec is
///   invalid, with a warning, so metadata-only writes to an object stored while the webhook was
///   down still go through.
/// - An invalid spec is denied with every violation.
/// - A valid one is allowed, with a warning for each `secretRef` whose Secret or key is missing
///   (GitOps tools may apply the Secret later; the backend reports `Accepted=False` meanwhile).
pub async fn validate_object(
    object: &Value,
    old_object: Option<&Value>,
    secrets: &dyn SecretLookup,
) -> Verdict {
    let checks = (
        BACKEND,
        validate_backend_spec as fn(&_) -> _,
        default_patch as fn(&_) -> _,
    );
    verdict(object, old_object, checks, async |spec, namespace| {
        secret_warnings(&spec, namespace, secrets).await
    })
    .await
}

/// Validates `object` (an `AgentgatewayPolicy` as JSON) by the rules the compiler applies
/// ([`validate_policy_spec`]), with the same treatment of deletions and unchanged specs as
/// [`validate_object`]. A valid policy is allowed, with a warning for each `targetRefs` entry whose
/// object does not exist (yet): the policy reports `Accepted=False` `TargetNotFound` meanwhile.
pub async fn validate_policy_object(
    object: &Value,
    old_object: Option<&Value>,
    targets: &dyn TargetLookup,
) -> Verdict {
    let checks = (
        POLICY,
        validate_policy_spec as fn(&_) -> _,
        default_policy_patch as fn(&_) -> _,
    );
    verdict(object, old_object, checks, async |spec, namespace| {
        target_warnings(&spec, namespace, targets).await
    })
    .await
}

/// Validates `object` (an `AgentgatewayParameters` as JSON) by the rules the operator applies
/// ([`validate_parameters_spec`]), with the same treatment of deletions and unchanged specs as
/// [`validate_object`]. Nothing is defaulted (the operator's flags are the defaults) and nothing
/// is looked up, so a valid object is allowed without warnings.
pub async fn validate_parameters_object(object: &Value, old_object: Option<&Value>) -> Verdict {
    let checks = (
        PARAMETERS,
        validate_parameters_spec as fn(&AgentgatewayParametersSpec) -> _,
        no_defaults as fn(&_) -> _,
    );
    verdict(object, old_object, checks, async |_, _| Vec::new()).await
}

/// The (empty) defaulting patch of a kind without defaults.
fn no_defaults(_: &Value) -> Patch {
    Patch(Vec::new())
}

/// A kind's name, structural rules and defaults.
type Checks<'a, S> = (&'a str, fn(&S) -> Vec<FieldError>, fn(&Value) -> Patch);

/// The verdict on `object` of a kind with its structural rules and defaults (`checks`): denied
/// with every violation, allowed as [`checked`] says, or allowed with the warnings `references`
/// finds for a valid spec in its namespace (without a namespace there is no telling where the
/// referenced objects should be).
async fn verdict<S: DeserializeOwned>(
    object: &Value,
    old_object: Option<&Value>,
    (kind, rules, defaults): Checks<'_, S>,
    references: impl AsyncFnOnce(S, &str) -> Vec<String>,
) -> Verdict {
    let spec = match checked(object, old_object, kind, rules, defaults) {
        Ok(Some(spec)) => spec,
        Ok(None) => {
            return Verdict::Allowed {
                warnings: Vec::new(),
            };
        }
        Err(verdict) => return verdict,
    };
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    let warnings = match namespace {
        Some(namespace) => references(spec, namespace).await,
        None => Vec::new(),
    };
    Verdict::Allowed { warnings }
}

/// The rules every kind shares: `Ok(None)` for an object being deleted (removing a finalizer
/// must never be blocked), `Ok(Some(spec))` for a valid spec, and the verdict otherwise (denied,
/// or allowed with a warning when an UPDATE leaves an invalid spec as stored).
fn checked<S: DeserializeOwned>(
    object: &Value,
    old_object: Option<&Value>,
    kind: &str,
    rules: fn(&S) -> Vec<FieldError>,
    defaults: fn(&Value) -> Patch,
) -> Result<Option<S>, Verdict> {
    if object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return Ok(None);
    }
    match violations(object, rules) {
        Ok(spec) => Ok(Some(spec)),
        Err(violations) if old_object.is_some_and(|old| spec_unchanged(old, object, defaults)) => {
            Err(Verdict::Allowed {
                warnings: vec![format!(
                    "spec is invalid but unchanged: {}",
                    violations.join("; ")
                )],
            })
        }
        Err(violations) => Err(Verdict::Denied {
            message: format!(
                "{} is invalid: {}",
                describe(object, kind),
                violations.join("; ")
            ),
        }),
    }
}

/// The typed spec, or every rule it breaks. A spec that does not even deserialize has one violation:
/// the first type error, with its path.
fn violations<S: DeserializeOwned>(
    object: &Value,
    rules: fn(&S) -> Vec<FieldError>,
) -> Result<S, Vec<String>> {
    let Some(spec) = object.get("spec") else {
        return Err(vec!["spec: required".to_string()]);
    };
    let spec: S = serde_path_to_error::deserialize(spec).map_err(|e| vec![located("spec", &e)])?;
    let errors = rules(&spec);
    if errors.is_empty() {
        Ok(spec)
    } else {
        Err(errors.iter().map(ToString::to_string).collect())
    }
}

/// Whether an UPDATE leaves the spec as stored. The mutating webhook runs first, so the new spec may
/// carry defaults the stored one (written while the webhook was down) lacks: compare against the
/// defaulted old spec too.
fn spec_unchanged(old: &Value, new: &Value, defaults: fn(&Value) -> Patch) -> bool {
    if old.get("spec") == new.get("spec") {
        return true;
    }
    let mut defaulted = old.clone();
    json_patch::patch(&mut defaulted, &defaults(old)).is_ok()
        && defaulted.get("spec") == new.get("spec")
}

/// `<kind> "ns/name"` as far as the object says.
fn describe(object: &Value, kind: &str) -> String {
    let meta = |field: &str| {
        object
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
    };
    let name = meta("name").or_else(|| meta("generateName")).unwrap_or("");
    match meta("namespace") {
        Some(namespace) => format!("{kind} \"{namespace}/{name}\""),
        None => format!("{kind} \"{name}\""),
    }
}

/// A warning for each target that does not exist; each is looked up once.
async fn target_warnings(
    spec: &AgentgatewayPolicySpec,
    namespace: &str,
    targets: &dyn TargetLookup,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut seen = BTreeMap::new();
    for (i, target) in spec.target_refs.iter().enumerate() {
        let state = match seen.get(target) {
            Some(state) => *state,
            None => {
                let state = targets.target(namespace, target).await;
                seen.insert(target, state);
                state
            }
        };
        if state == TargetState::NotFound {
            warnings.push(format!(
                "spec.targetRefs[{i}]: {} \"{namespace}/{}\" not found; the policy stays Accepted=False (TargetNotFound) for it until it exists",
                target.kind, target.name
            ));
        }
    }
    warnings
}

/// A Secret a valid spec reads: the path of its reference, its name and namespace, and the data
/// keys that must be in it.
struct SecretUse<'a> {
    path: String,
    name: &'a str,
    namespace: Option<&'a str>,
    keys: Vec<&'a str>,
}

/// Every Secret of a valid spec (`auth.secretRef`, `auth.aws.secretRef`, `auth.gcp.secretRef`).
fn secret_uses(spec: &AgentgatewayBackendSpec) -> Vec<SecretUse<'_>> {
    fn of(path: String, policies: Option<&BackendPolicies>) -> Option<SecretUse<'_>> {
        let auth = policies?.auth.as_ref()?;
        if let Some(r) = &auth.secret_ref {
            return Some(SecretUse {
                path: format!("{path}.auth.secretRef"),
                name: &r.name,
                namespace: r.namespace.as_deref(),
                keys: vec![r.key.as_deref().unwrap_or(defaults::SECRET_KEY)],
            });
        }
        if let Some(aws) = &auth.aws {
            return Some(SecretUse {
                path: format!("{path}.auth.aws.secretRef"),
                name: &aws.secret_ref.name,
                namespace: aws.secret_ref.namespace.as_deref(),
                keys: vec![defaults::AWS_ACCESS_KEY_ID, defaults::AWS_SECRET_ACCESS_KEY],
            });
        }
        let r = &auth.gcp.as_ref()?.secret_ref;
        Some(SecretUse {
            path: format!("{path}.auth.gcp.secretRef"),
            name: &r.name,
            namespace: r.namespace.as_deref(),
            keys: vec![
                r.key
                    .as_deref()
                    .unwrap_or(defaults::GCP_SERVICE_ACCOUNT_KEY),
            ],
        })
    }
    let mut refs = Vec::new();
    refs.extend(of("spec.policies".into(), spec.policies.as_ref()));
    if let Some(provider) = &spec.ai.provider {
        refs.extend(of(
            "spec.ai.provider.policies".into(),
            provider.policies.as_ref(),
        ));
    }
    for (g, group) in spec.ai.groups.iter().flatten().enumerate() {
        for (p, provider) in group.providers.iter().enumerate() {
            let path = format!("spec.ai.groups[{g}].providers[{p}].policies");
            refs.extend(of(path, provider.policies.as_ref()));
        }
    }
    refs
}

/// A warning for each `secretRef` that will leave the backend `Accepted=False`. Each Secret is
/// looked up once however often it is referenced.
async fn secret_warnings(
    spec: &AgentgatewayBackendSpec,
    namespace: &str,
    secrets: &dyn SecretLookup,
) -> Vec<String> {
    let mut states: BTreeMap<&str, SecretState> = BTreeMap::new();
    let mut warnings = Vec::new();
    for SecretUse {
        path,
        name,
        namespace: secret_namespace,
        keys,
    } in secret_uses(spec)
    {
        if let Some(other) = secret_namespace.filter(|ns| *ns != namespace) {
            warnings.push(format!(
                "{path}.namespace: Secret \"{other}/{name}\" is in another namespace, which is not permitted; the backend stays Accepted=False"
            ));
            continue;
        }
        if !states.contains_key(name) {
            let state = secrets.secret(namespace, name).await;
            states.insert(name, state);
        }
        match states.get(name) {
            Some(SecretState::NotFound) => warnings.push(format!(
                "{path}: Secret \"{namespace}/{name}\" not found; the backend stays Accepted=False until it exists"
            )),
            Some(SecretState::Found { keys: held }) => {
                for key in keys.iter().filter(|key| !held.contains(**key)) {
                    warnings.push(format!(
                        "{path}: Secret \"{namespace}/{name}\" has no key \"{key}\"; the backend stays Accepted=False until it does"
                    ));
                }
            }
            _ => {}
        }
    }
    warnings
}
