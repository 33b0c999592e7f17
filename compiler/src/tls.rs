//! The certificate of an `HTTPS` listener: `tls.mode: Terminate` with `certificateRefs` to
//! `kubernetes.io/tls` Secrets, in the Gateway's namespace or in one whose ReferenceGrant admits
//! the Gateway. The chain and key are checked here the way the proxy will load them (the PEM parses,
//! rustls can sign with the key, the key belongs to the leaf certificate), so a Secret the proxy
//! would refuse is reported on the listener instead of breaking the proxy's config.
//!
//! The listener is served with the first reference that resolves; later ones are fallbacks, not
//! extra certificates (the proxy serves one certificate per host name). When none resolves, the
//! diagnostic says what is wrong with the first.

use std::fmt;

use agentgateway_crds::gateway_api::{GatewayTLSConfig, Listener, SecretObjectReference};
use agentgateway_crds::proxy_config::delivery::fnv64_hex;
use agentgateway_crds::validation::is_data_key;

use crate::diagnostic::{Diagnostic, Reason};
use crate::index::Index;
use crate::inputs::ObjectRef;

/// The Secret type Gateway API certificate references must have.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";
/// The data key of the PEM certificate chain in a `kubernetes.io/tls` Secret.
pub const TLS_CERT_KEY: &str = "tls.crt";
/// The data key of the PEM private key in a `kubernetes.io/tls` Secret.
pub const TLS_KEY_KEY: &str = "tls.key";

/// A certificate chain and key bundled as one PEM text. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PemBundle(pub(crate) String);

impl fmt::Debug for PemBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PemBundle(<redacted>)")
    }
}

/// The certificate a listener serves: where the proxy finds it and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServedCertificate {
    /// The credential id (`tls_<namespace>_<secret>`).
    pub(crate) credential: String,
    /// The chain followed by the key.
    pub(crate) pem: PemBundle,
}

/// The certificate of an `HTTPS` listener, or why the listener cannot be served. `field` is the
/// listener's path (`spec.listeners[1]`).
pub(crate) fn listener_certificate(
    index: &Index<'_>,
    gateway: &ObjectRef,
    field: &str,
    listener: &Listener,
) -> Result<ServedCertificate, Diagnostic> {
    let problem = |path: &str, reason, message: String| {
        Diagnostic::new(
            gateway,
            format!("{field}.tls{path}"),
            reason,
            format!("listener {}: {message}", listener.name),
        )
    };
    let Some(tls) = &listener.tls else {
        let message = "an HTTPS listener needs tls.certificateRefs".to_string();
        return Err(problem("", Reason::InvalidCertificateRef, message));
    };
    check_settings(tls).map_err(|(path, reason, message)| problem(path, reason, message))?;
    let mut first_problem = None;
    for (i, reference) in tls.certificate_refs.iter().enumerate() {
        match resolve(index, gateway, reference) {
            Ok(certificate) => return Ok(certificate),
            Err((reason, message)) => {
                let path = format!(".certificateRefs[{i}]");
                first_problem.get_or_insert_with(|| problem(&path, reason, message));
            }
        }
    }
    Err(first_problem.unwrap_or_else(|| {
        let message = "an HTTPS listener needs at least one certificateRef".to_string();
        problem(".certificateRefs", Reason::InvalidCertificateRef, message)
    }))
}

/// The mode and options, before any reference is read.
fn check_settings(tls: &GatewayTLSConfig) -> Result<(), (&'static str, Reason, String)> {
    match tls.mode.as_deref().unwrap_or("Terminate") {
        "Terminate" => {}
        "Passthrough" => {
            let message = "tls.mode Passthrough is not supported by agentgateway (it terminates TLS and routes HTTP); the listener is not served";
            return Err((".mode", Reason::UnsupportedValue, message.to_string()));
        }
        other => {
            let message = format!("tls.mode {other:?} must be Terminate or Passthrough");
            return Err((".mode", Reason::InvalidSpec, message));
        }
    }
    if let Some(option) = tls.options.keys().next() {
        let message = format!(
            "tls.options {option:?} is not an agentgateway option (it defines none); the listener is not served"
        );
        return Err((".options", Reason::UnsupportedValue, message));
    }
    Ok(())
}

/// One reference, resolved to a certificate the proxy can load.
fn resolve(
    index: &Index<'_>,
    gateway: &ObjectRef,
    reference: &SecretObjectReference,
) -> Result<ServedCertificate, (Reason, String)> {
    let group = reference.group.as_deref().unwrap_or("");
    let kind = reference.kind.as_deref().unwrap_or("Secret");
    if !group.is_empty() || kind != "Secret" {
        let message = format!(
            "certificateRef {group:?}/{kind} {:?} is not a core Secret (group \"\", kind Secret)",
            reference.name
        );
        return Err((Reason::InvalidCertificateRef, message));
    }
    let namespace = reference.namespace.as_deref().unwrap_or(&gateway.namespace);
    let name = reference.name.as_str();
    let secret_ref = format!("Secret {namespace}/{name}");
    if namespace != gateway.namespace
        && !index.gateway_may_refer_to_secret(&gateway.namespace, namespace, name)
    {
        let message = format!(
            "{secret_ref} is in another namespace and no ReferenceGrant there admits Gateways of namespace {}",
            gateway.namespace
        );
        return Err((Reason::RefNotPermitted, message));
    }
    let invalid = |problem: &str| {
        (
            Reason::InvalidCertificateRef,
            format!("{secret_ref} {problem}"),
        )
    };
    let secret = index
        .secret(namespace, name)
        .ok_or_else(|| invalid("not found"))?;
    let secret_type = secret.type_.as_deref().unwrap_or("Opaque");
    if secret_type != TLS_SECRET_TYPE {
        return Err(invalid(&format!(
            "is of type {secret_type:?}, not {TLS_SECRET_TYPE:?}"
        )));
    }
    let text = |key: &str| {
        let bytes = secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .ok_or_else(|| invalid(&format!("has no key {key:?}")))?;
        std::str::from_utf8(&bytes.0).map_err(|_| invalid(&format!("key {key:?} is not PEM text")))
    };
    let (chain, key) = (text(TLS_CERT_KEY)?, text(TLS_KEY_KEY)?);
    let provider = agentgateway_tls::crypto_provider();
    // The error says which check failed (never the bytes: they hold the key).
    agentgateway_tls::certified_key(chain.as_bytes(), key.as_bytes(), &provider)
        .map_err(|error| invalid(&format!("cannot be served: {error}")))?;
    Ok(ServedCertificate {
        credential: credential_id(namespace, name),
        pem: PemBundle(agentgateway_tls::bundle(chain, key)),
    })
}

/// `tls_<namespace>_<secret>`: readable, and a valid Secret data key. Names at the length limits
/// would make it longer than a data key may be; those get a hash of `namespace/name` instead.
pub(crate) fn credential_id(namespace: &str, name: &str) -> String {
    let readable = format!("tls_{namespace}_{name}");
    if is_data_key(&readable) {
        return readable;
    }
    format!(
        "tls_{}",
        fnv64_hex(format!("{namespace}/{name}").as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_ids_are_readable_data_keys_even_for_the_longest_names() {
        assert_eq!(credential_id("infra", "gw-cert"), "tls_infra_gw-cert");
        let long = credential_id(&"n".repeat(63), &"s".repeat(253));
        assert!(is_data_key(&long), "{long}");
        assert_eq!(long.len(), "tls_".len() + 16);
    }

    #[test]
    fn a_bundle_is_redacted_in_debug_output() {
        let certificate = ServedCertificate {
            credential: "tls_a_b".into(),
            pem: PemBundle("-----BEGIN PRIVATE KEY-----\nsecret".into()),
        };
        let shown = format!("{certificate:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("tls_a_b"), "{shown}");
    }
}
