//! Provider keys: resolved from a Secret of the backend's namespace or taken inline, normalized, and
//! given a credential id. The config only ever holds the id; the key travels in [`Credentials`].
//!
//! [`Credentials`]: agentgateway_crds::proxy_config::Credentials

use agentgateway_crds::backend::AuthPolicy;
use agentgateway_crds::proxy_config::defaults::{
    self, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, GCP_SERVICE_ACCOUNT_KEY,
};

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
    let field = format!("{path}.auth");
    match (&auth.secret_ref, &auth.key, &auth.aws, &auth.gcp) {
        (Some(secret_ref), None, None, None) => {
            let key = secret_ref.key.as_deref().unwrap_or(defaults::SECRET_KEY);
            let field = format!("{field}.secretRef");
            let secret = SecretData::find(
                index,
                backend,
                &secret_ref.name,
                secret_ref.namespace.as_deref(),
                &field,
            )?;
            let value =
                normalize_key(secret.text(key)?).ok_or_else(|| secret.invalid(key, "is empty"))?;
            // Namespaces and names never contain `_`, so the id is unambiguous with the key last.
            let id = format!("secret_{}_{}_{key}", backend.namespace, secret_ref.name);
            Ok(Credential { id, key: value })
        }
        (None, Some(inline), None, None) => {
            let value = normalize_key(inline).ok_or_else(|| {
                Diagnostic::new(
                    backend,
                    format!("{field}.key"),
                    Reason::InvalidSpec,
                    "must not be empty",
                )
            })?;
            let id = format!("inline_{}_{}_{provider}", backend.namespace, backend.name);
            Ok(Credential { id, key: value })
        }
        (None, None, Some(aws), None) => {
            let field = format!("{field}.aws.secretRef");
            let secret_ref = &aws.secret_ref;
            let mut secret = SecretData::find(
                index,
                backend,
                &secret_ref.name,
                secret_ref.namespace.as_deref(),
                &field,
            )?;
            secret.key_field = format!("{field}.name");
            let token = if secret.has(AWS_SESSION_TOKEN) {
                Some(secret.token(AWS_SESSION_TOKEN)?)
            } else {
                None
            };
            let credentials = serde_json::json!({
                "accessKeyId": secret.token(AWS_ACCESS_KEY_ID)?,
                "secretAccessKey": secret.token(AWS_SECRET_ACCESS_KEY)?,
                "sessionToken": token,
            });
            let id = format!("aws_{}_{}", backend.namespace, secret_ref.name);
            Ok(Credential {
                id,
                key: credentials.to_string(),
            })
        }
        (None, None, None, Some(gcp)) => {
            let field = format!("{field}.gcp.secretRef");
            let secret_ref = &gcp.secret_ref;
            let key = secret_ref.key.as_deref().unwrap_or(GCP_SERVICE_ACCOUNT_KEY);
            let secret = SecretData::find(
                index,
                backend,
                &secret_ref.name,
                secret_ref.namespace.as_deref(),
                &field,
            )?;
            let account = service_account(secret.text(key)?)
                .map_err(|problem| secret.invalid(key, &problem))?;
            let id = format!("gcp_{}_{}_{key}", backend.namespace, secret_ref.name);
            Ok(Credential { id, key: account })
        }
        _ => Err(Diagnostic::new(
            backend,
            field,
            Reason::InvalidSpec,
            "exactly one of secretRef, key, aws or gcp must be set",
        )),
    }
}

/// Google's token endpoint, for a key that names none.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// The parts of a service-account key the proxy needs, checked and re-encoded so that nothing
/// else of the key travels on. The problem, when the key is not one.
fn service_account(text: &str) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Key {
        #[serde(rename = "type")]
        kind: Option<String>,
        client_email: Option<String>,
        private_key: Option<String>,
        private_key_id: Option<String>,
        token_uri: Option<String>,
    }
    let key: Key = serde_json::from_str(text).map_err(|_| {
        "is not a service-account key (JSON with client_email and private_key)".to_string()
    })?;
    if key.kind.as_deref().is_some_and(|k| k != "service_account") {
        return Err("is not a service-account key (its type is not service_account)".into());
    }
    let email = key
        .client_email
        .filter(|e| e.contains('@') && !e.chars().any(char::is_whitespace))
        .ok_or("has no valid client_email")?;
    let private_key = key
        .private_key
        .filter(|k| {
            k.contains("-----BEGIN PRIVATE KEY-----")
                || k.contains("-----BEGIN RSA PRIVATE KEY-----")
        })
        .ok_or("has no PEM private_key")?;
    let token_uri = key
        .token_uri
        .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_string());
    let scheme_ok = token_uri.starts_with("https://") || token_uri.starts_with("http://");
    if !scheme_ok
        || token_uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("has a token_uri that is not an http(s) URL".into());
    }
    Ok(serde_json::json!({
        "client_email": email,
        "private_key": private_key,
        "private_key_id": key.private_key_id,
        "token_uri": token_uri,
    })
    .to_string())
}

/// A Secret of the backend's namespace that an `auth` form reads, with the field that names it.
struct SecretData<'a> {
    backend: &'a ObjectRef,
    secret: &'a k8s_openapi::api::core::v1::Secret,
    reference: String,
    /// The field blamed for a missing or bad data key: `key` where the user chose the key, the
    /// Secret's `name` where the keys are fixed.
    key_field: String,
}

impl<'a> SecretData<'a> {
    fn find(
        index: &'a Index<'_>,
        backend: &'a ObjectRef,
        name: &str,
        namespace: Option<&str>,
        field: &'a str,
    ) -> Result<Self, Diagnostic> {
        if let Some(namespace) = namespace.filter(|ns| *ns != backend.namespace) {
            // A backend may only read keys of its own namespace: anything else would let
            // whoever can create a backend exfiltrate any Secret through the proxy.
            return Err(Diagnostic::new(
                backend,
                format!("{field}.namespace"),
                Reason::RefNotPermitted,
                format!(
                    "Secret {namespace}/{name} is in another namespace: a backend may only use Secrets of its own namespace ({})",
                    backend.namespace
                ),
            ));
        }
        let reference = format!("Secret {}/{name}", backend.namespace);
        let secret = index.secret(&backend.namespace, name).ok_or_else(|| {
            Diagnostic::new(
                backend,
                format!("{field}.name"),
                Reason::SecretNotFound,
                format!("{reference} not found"),
            )
        })?;
        Ok(Self {
            backend,
            secret,
            reference,
            key_field: format!("{field}.key"),
        })
    }

    fn has(&self, key: &str) -> bool {
        self.secret
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key(key))
    }

    /// The UTF-8 text under `key`.
    fn text(&self, key: &str) -> Result<&'a str, Diagnostic> {
        let bytes = self
            .secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .ok_or_else(|| {
                Diagnostic::new(
                    self.backend,
                    self.key_field.clone(),
                    Reason::SecretKeyNotFound,
                    format!("{} has no key {key:?}", self.reference),
                )
            })?;
        std::str::from_utf8(&bytes.0).map_err(|_| self.invalid(key, "is not UTF-8 text"))
    }

    /// The text under `key`, trimmed: one token with no inner whitespace.
    fn token(&self, key: &str) -> Result<String, Diagnostic> {
        let text = self.text(key)?.trim();
        if text.is_empty() {
            return Err(self.invalid(key, "is empty"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(self.invalid(key, "holds whitespace or control characters"));
        }
        Ok(text.to_string())
    }

    fn invalid(&self, key: &str, problem: &str) -> Diagnostic {
        Diagnostic::new(
            self.backend,
            self.key_field.clone(),
            Reason::InvalidSpec,
            format!("key {key:?} of {} {problem}", self.reference),
        )
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
