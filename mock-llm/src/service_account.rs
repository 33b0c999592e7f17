//! A Google service-account key (the JSON file `gcloud iam service-accounts keys create`
//! writes), kept as what the token endpoint needs to check the JWTs signed with it: the account,
//! the key id and the public half of the key.

use std::fmt;
use std::io::Read as _;
use std::path::Path;

use jsonwebtoken::DecodingKey;
use ring::signature::{KeyPair as _, RsaKeyPair};
use serde::Deserialize;
use thiserror::Error;

/// Google's token endpoint, the `token_uri` of every key it issues.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A key file is a few kilobytes; anything much larger is not one.
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The parts of a service-account key the mock checks JWT grants against.
#[derive(Clone)]
pub struct ServiceAccountKey {
    /// The JWT's `iss`.
    pub client_email: String,
    /// The JWT header's `kid`.
    pub private_key_id: String,
    /// Accepted as the JWT's `aud` (besides the mock's own `/token` URL).
    pub token_uri: String,
    pub project_id: Option<String>,
    /// The public half of `private_key`, which verifies the JWT's RS256 signature.
    public_key: DecodingKey,
}

#[derive(Debug, Error)]
pub enum ServiceAccountError {
    #[error("cannot read the key file: {0}")]
    Read(#[from] std::io::Error),
    #[error("the key file is larger than {MAX_KEY_FILE} bytes")]
    TooLarge,
    #[error("not a service-account key file: {0}")]
    Json(#[from] serde_json::Error),
    #[error("`type` is `{0}`, not `service_account`")]
    NotServiceAccount(String),
    #[error("`private_key` is not a PEM RSA private key ({0})")]
    BadPrivateKey(&'static str),
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: String,
    private_key_id: String,
    private_key: String,
    token_uri: Option<String>,
    project_id: Option<String>,
}

impl ServiceAccountKey {
    pub fn from_json(json: &str) -> Result<Self, ServiceAccountError> {
        let file: KeyFile = serde_json::from_str(json)?;
        if let Some(kind) = file.kind.filter(|k| k != "service_account") {
            return Err(ServiceAccountError::NotServiceAccount(kind));
        }
        Ok(ServiceAccountKey {
            public_key: public_key(&file.private_key)?,
            client_email: file.client_email,
            private_key_id: file.private_key_id,
            token_uri: file
                .token_uri
                .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_owned()),
            project_id: file.project_id,
        })
    }

    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ServiceAccountError> {
        let mut json = String::new();
        std::fs::File::open(path)?
            .take(MAX_KEY_FILE + 1)
            .read_to_string(&mut json)?;
        if json.len() as u64 > MAX_KEY_FILE {
            return Err(ServiceAccountError::TooLarge);
        }
        ServiceAccountKey::from_json(&json)
    }

    pub(crate) fn public_key(&self) -> &DecodingKey {
        &self.public_key
    }
}

/// The private key stays out of logs and test output (only its public half is kept anyway).
impl fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

/// The RSA public key of a PEM private key: PKCS#8 (`PRIVATE KEY`, what Google issues) or
/// PKCS#1 (`RSA PRIVATE KEY`).
fn public_key(pem: &str) -> Result<DecodingKey, ServiceAccountError> {
    let bad = ServiceAccountError::BadPrivateKey;
    let (label, der) = pem_body(pem).ok_or(bad("no PEM block"))?;
    let pair = match label {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        _ => return Err(bad("not a private key block")),
    }
    .map_err(|_| bad("not an RSA key ring accepts"))?;
    // `public_key()` is the ASN.1 RSAPublicKey, the DER form `from_rsa_der` takes.
    Ok(DecodingKey::from_rsa_der(pair.public_key().as_ref()))
}

/// The label and decoded bytes of the first PEM block.
fn pem_body(pem: &str) -> Option<(&str, Vec<u8>)> {
    let (_, rest) = pem.split_once("-----BEGIN ")?;
    let (label, rest) = rest.split_once("-----")?;
    let end = format!("-----END {label}-----");
    let (body, _) = rest.split_once(end.as_str())?;
    let b64: String = body.split_whitespace().collect();
    let der = aws_smithy_types::base64::decode(b64).ok()?;
    Some((label, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../testdata/vertex-service-account.json");

    #[test]
    fn the_test_key_parses() {
        let key = ServiceAccountKey::from_json(KEY).unwrap();
        assert_eq!(
            key.client_email,
            "gateway@agw-test-project.iam.gserviceaccount.com"
        );
        assert_eq!(key.private_key_id.len(), 40);
        assert_eq!(key.token_uri, GOOGLE_TOKEN_URI);
        assert_eq!(key.project_id.as_deref(), Some("agw-test-project"));
        let debug = format!("{key:?}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
    }

    #[test]
    fn broken_keys_are_refused() {
        let mut v: serde_json::Value = serde_json::from_str(KEY).unwrap();
        v["private_key"] = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into();
        let err = ServiceAccountKey::from_json(&v.to_string()).unwrap_err();
        assert!(
            matches!(err, ServiceAccountError::BadPrivateKey(_)),
            "{err}"
        );
        v["type"] = "authorized_user".into();
        let err = ServiceAccountKey::from_json(&v.to_string()).unwrap_err();
        assert!(
            matches!(err, ServiceAccountError::NotServiceAccount(_)),
            "{err}"
        );
        assert!(ServiceAccountKey::from_json("{}").is_err());
    }
}
