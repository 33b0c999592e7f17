//! Provider keys: resolved from a Secret of the backend's namespace or taken inline, normalized, and
//! given a credential id. The config only ever holds the id; the key travels in [`Credentials`].
//!
//! [`Credentials`]: agentgateway_crds::proxy_config::Credentials

use agentgateway_crds::backend::AuthPolicy;
use agentgateway_crds::proxy_config::defaults;

use crate::diagnostic::{Diagnostic, Reason};
use crate::index::Index;
use crate::inputs::ObjectRef;

/// A resolved key and the id the config refers to it by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Credential {
    pub(crate) id: String,
    pub(crate) key: String,
}

/// Resolves the `auth` block found at `path` (e.g. `spec.policies`) for the provider `provider`.
pub(crate) fn resolve_auth(
    index: &Index<'_>,
    backend: &ObjectRef,
    provider: &str,
    auth: &AuthPolicy,
    path: &str,
) -> Result<Credential, Diagnostic> {
    match (&auth.secret_ref, &auth.key) {
        (Some(secret_ref), None) => {
            let key = secret_ref.key.as_deref().unwrap_or(defaults::SECRET_KEY);
            let field = format!("{path}.auth.secretRef");
            if let Some(namespace) = secret_ref
                .namespace
                .as_deref()
                .filter(|ns| *ns != backend.namespace)
            {
                // A backend may only read keys of its own namespace: anything else would let
                // whoever can create a backend exfiltrate any Secret through the proxy.
                return Err(Diagnostic::new(
                    backend,
                    format!("{field}.namespace"),
                    Reason::RefNotPermitted,
                    format!(
                        "Secret {namespace}/{} is in another namespace: a backend may only use Secrets of its own namespace ({})",
                        secret_ref.name, backend.namespace
                    ),
                ));
            }
            let reference = format!("Secret {}/{}", backend.namespace, secret_ref.name);
            let secret = index
                .secret(&backend.namespace, &secret_ref.name)
                .ok_or_else(|| {
                    let message = format!("{reference} not found");
                    Diagnostic::new(
                        backend,
                        format!("{field}.name"),
                        Reason::SecretNotFound,
                        message,
                    )
                })?;
            let bytes = secret
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .ok_or_else(|| {
                    let message = format!("{reference} has no key {key:?}");
                    Diagnostic::new(
                        backend,
                        format!("{field}.key"),
                        Reason::SecretKeyNotFound,
                        message,
                    )
                })?;
            let invalid = |problem: &str| {
                let message = format!("key {key:?} of {reference} {problem}");
                Diagnostic::new(
                    backend,
                    format!("{field}.key"),
                    Reason::InvalidSpec,
                    message,
                )
            };
            let text = std::str::from_utf8(&bytes.0).map_err(|_| invalid("is not UTF-8 text"))?;
            let value = normalize_key(text).ok_or_else(|| invalid("is empty"))?;
            // Namespaces and names never contain `_`, so the id is unambiguous with the key last.
            let id = format!("secret_{}_{}_{key}", backend.namespace, secret_ref.name);
            Ok(Credential { id, key: value })
        }
        (None, Some(inline)) => {
            let value = normalize_key(inline).ok_or_else(|| {
                Diagnostic::new(
                    backend,
                    format!("{path}.auth.key"),
                    Reason::InvalidSpec,
                    "must not be empty",
                )
            })?;
            let id = format!("inline_{}_{}_{provider}", backend.namespace, backend.name);
            Ok(Credential { id, key: value })
        }
        _ => Err(Diagnostic::new(
            backend,
            format!("{path}.auth"),
            Reason::InvalidSpec,
            "exactly one of secretRef or key must be set",
        )),
    }
}

/// Trims the key and strips a leading `Bearer ` (any case): users paste whole header values, and
/// the proxy adds the scheme itself. `None` when nothing is left.
pub(crate) fn normalize_key(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let key = match (trimmed.get(..6), trimmed.get(6..)) {
        (Some(scheme), Some(rest))
            if scheme.eq_ignore_ascii_case("bearer")
                && (rest.is_empty() || rest.starts_with(char::is_whitespace)) =>
        {
            rest.trim()
        }
        _ => trimmed,
    };
    (!key.is_empty()).then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::normalize_key;

    #[test]
    fn bearer_prefix_and_whitespace_are_stripped() {
        assert_eq!(normalize_key("  sk-123\n").as_deref(), Some("sk-123"));
        assert_eq!(normalize_key("Bearer sk-123").as_deref(), Some("sk-123"));
        assert_eq!(normalize_key("bearer   sk-123 ").as_deref(), Some("sk-123"));
        assert_eq!(normalize_key("Bearer ").as_deref(), None);
        assert_eq!(normalize_key("Bearerish").as_deref(), Some("Bearerish"));
        assert_eq!(normalize_key("BEARER\tsk-1").as_deref(), Some("sk-1"));
        assert_eq!(normalize_key("é€bearer x").as_deref(), Some("é€bearer x"));
    }
}
