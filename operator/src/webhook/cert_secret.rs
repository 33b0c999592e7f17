//! The certificate Secret's layout: `ca.crt` (the trusted CA bundle, current CA first), `ca.key`,
//! `tls.crt`, `tls.key` — the `kubernetes.io/tls` type, so the serving pair is also usable by tools
//! that read TLS Secrets.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::certs::{KeyedCert, Material};
use crate::resources::{MANAGED_BY, MANAGED_BY_LABEL};

/// The CA bundle key.
pub const CA_BUNDLE_KEY: &str = "ca.crt";
/// The CA's private key.
pub const CA_KEY_KEY: &str = "ca.key";
/// The serving certificate.
pub const TLS_CERT_KEY: &str = "tls.crt";
/// The serving certificate's key.
pub const TLS_KEY_KEY: &str = "tls.key";

/// Why stored material is unusable (the Secret is then regenerated).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretLayoutError {
    /// A key is missing.
    #[error("the certificate Secret has no {0}")]
    Missing(&'static str),
    /// A key is not UTF-8 PEM.
    #[error("{0} of the certificate Secret is not PEM text")]
    NotText(&'static str),
}

fn text(
    data: &BTreeMap<String, ByteString>,
    key: &'static str,
) -> Result<String, SecretLayoutError> {
    let bytes = data.get(key).ok_or(SecretLayoutError::Missing(key))?;
    String::from_utf8(bytes.0.clone()).map_err(|_| SecretLayoutError::NotText(key))
}

/// The material in `secret`.
pub fn from_secret(secret: &Secret) -> Result<Material, SecretLayoutError> {
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let ca_bundle_pem = text(data, CA_BUNDLE_KEY)?;
    // The current CA is the bundle's first certificate.
    let end = "-----END CERTIFICATE-----";
    let ca_cert_pem = match ca_bundle_pem.find(end) {
        Some(at) => format!("{}\n", &ca_bundle_pem[..at + end.len()]),
        None => return Err(SecretLayoutError::NotText(CA_BUNDLE_KEY)),
    };
    Ok(Material {
        ca: KeyedCert {
            cert_pem: ca_cert_pem,
            key_pem: text(data, CA_KEY_KEY)?,
        },
        ca_bundle_pem,
        serving: KeyedCert {
            cert_pem: text(data, TLS_CERT_KEY)?,
            key_pem: text(data, TLS_KEY_KEY)?,
        },
    })
}

/// `secret` (or a new Secret `namespace/name`) holding `material`; the read resourceVersion stays,
/// so a replace fails with 409 when another replica wrote first.
pub fn to_secret(
    base: Option<Secret>,
    namespace: &str,
    name: &str,
    material: &Material,
    owner: Option<OwnerReference>,
) -> Secret {
    let mut secret = base.unwrap_or_else(|| Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_string(),
                MANAGED_BY.to_string(),
            )])),
            owner_references: owner.map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_string()),
        ..Secret::default()
    });
    let pem = |text: &str| ByteString(text.as_bytes().to_vec());
    secret.data = Some(BTreeMap::from([
        (CA_BUNDLE_KEY.to_string(), pem(&material.ca_bundle_pem)),
        (CA_KEY_KEY.to_string(), pem(&material.ca.key_pem)),
        (TLS_CERT_KEY.to_string(), pem(&material.serving.cert_pem)),
        (TLS_KEY_KEY.to_string(), pem(&material.serving.key_pem)),
    ]));
    secret.string_data = None;
    secret
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::certs::{Lifetimes, generate};

    #[test]
    fn material_round_trips_through_the_secret_with_the_current_ca_first() {
        let names = vec!["svc.ns.svc".to_string()];
        let lifetimes = Lifetimes::from_serving(std::time::Duration::from_secs(86_400));
        let old = generate(&names, 1_800_000_000, lifetimes, None).unwrap();
        let material = generate(&names, 1_800_000_100, lifetimes, Some(&old.ca.cert_pem)).unwrap();
        let secret = to_secret(None, "ns", "cert", &material, None);
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(from_secret(&secret).unwrap(), material);
    }

    #[test]
    fn a_secret_without_the_serving_key_is_unusable() {
        let mut secret = Secret::default();
        assert_eq!(
            from_secret(&secret),
            Err(SecretLayoutError::Missing(CA_BUNDLE_KEY))
        );
        secret.data = Some(BTreeMap::from([(
            CA_BUNDLE_KEY.to_string(),
            ByteString(b"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".to_vec()),
        )]));
        assert_eq!(
            from_secret(&secret),
            Err(SecretLayoutError::Missing(CA_KEY_KEY))
        );
    }
}
