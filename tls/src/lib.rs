//! A certificate chain and its private key, read from PEM into what rustls serves, with the checks
//! every reader needs: a chain that parses, a key rustls can sign with, and a key that belongs to
//! the leaf certificate. The webhook serves its own certificate with it, the compiler checks
//! `kubernetes.io/tls` Secrets with it and the proxy terminates HTTPS with it, so all three accept
//! and refuse the same pairs.
//!
//! Errors never carry key material: they say what is wrong, not what the bytes were.

use std::io::Cursor;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;

/// Why a certificate and key pair was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The certificate PEM could not be parsed.
    #[error("failed to parse the certificate chain PEM: {0}")]
    ParseCertificates(#[source] std::io::Error),
    /// The certificate PEM held no certificate.
    #[error("failed to find a certificate in the certificate chain PEM")]
    NoCertificate,
    /// The key PEM could not be parsed.
    #[error("failed to parse the private key PEM: {0}")]
    ParseKey(#[source] std::io::Error),
    /// The key PEM held no private key.
    #[error("failed to find a private key in the key PEM")]
    NoKey,
    /// The key is of an unsupported type, or it does not belong to the certificate.
    #[error("failed to pair the private key with the certificate: {0}")]
    PairKey(#[source] rustls::Error),
}

/// The crypto provider every agentgateway TLS server uses (ring, as the rest of the workspace).
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC1) and
/// checks that the key signs for the leaf certificate. Other PEM blocks in either input are
/// skipped, so one bundle holding the chain and the key may be passed as both.
pub fn certified_key(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, PemError> {
    let chain = rustls_pemfile::certs(&mut Cursor::new(cert_chain_pem))
        .collect::<Result<Vec<_>, _>>()
        .map_err(PemError::ParseCertificates)?;
    if chain.is_empty() {
        return Err(PemError::NoCertificate);
    }
    let key = rustls_pemfile::private_key(&mut Cursor::new(key_pem))
        .map_err(PemError::ParseKey)?
        .ok_or(PemError::NoKey)?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(PemError::PairKey)?;
    // `from_der` lets a key whose consistency it cannot check through; insist on a match so a
    // mixed-up pair is refused when it is read rather than failing every handshake later.
    certified.keys_match().map_err(PemError::PairKey)?;
    Ok(certified)
}

/// The certificate chain and the key as one PEM bundle (chain first): how a certificate travels
/// as a single credential.
pub fn bundle(cert_chain_pem: &str, key_pem: &str) -> String {
    let mut bundle = String::with_capacity(cert_chain_pem.len() + key_pem.len() + 1);
    bundle.push_str(cert_chain_pem);
    if !cert_chain_pem.ends_with('\n') {
        bundle.push('\n');
    }
    bundle.push_str(key_pem);
    bundle
}

/// Throwaway certificates for tests (here, and with the `testing` feature in other crates').
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    /// A self-signed certificate and key (PEM) for `name`.
    ///
    /// # Panics
    /// When rcgen cannot make a key or a certificate: a test cannot go on without one.
    #[allow(clippy::unwrap_used)]
    pub fn self_signed(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::self_signed;

    #[test]
    fn a_matching_pair_loads_and_a_bundle_is_both_inputs() {
        let provider = crypto_provider();
        let (cert, key) = self_signed("a.example");
        let pair = certified_key(cert.as_bytes(), key.as_bytes(), &provider).unwrap();
        assert_eq!(pair.cert.len(), 1);
        let bundle = bundle(&cert, &key);
        let from_bundle = certified_key(bundle.as_bytes(), bundle.as_bytes(), &provider).unwrap();
        assert_eq!(from_bundle.cert, pair.cert);
    }

    #[test]
    fn mismatched_missing_and_garbage_inputs_are_refused_without_key_material() {
        let provider = crypto_provider();
        let (cert_a, key_a) = self_signed("a.example");
        let (cert_b, _) = self_signed("b.example");
        let mismatch = certified_key(cert_b.as_bytes(), key_a.as_bytes(), &provider);
        assert!(
            matches!(mismatch, Err(PemError::PairKey(_))),
            "{mismatch:?}"
        );
        let no_cert = certified_key(b"not a pem", key_a.as_bytes(), &provider);
        assert!(
            matches!(no_cert, Err(PemError::NoCertificate)),
            "{no_cert:?}"
        );
        let no_key = certified_key(cert_a.as_bytes(), cert_a.as_bytes(), &provider);
        assert!(matches!(no_key, Err(PemError::NoKey)), "{no_key:?}");
        let message = mismatch.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(!message.contains("PRIVATE KEY"), "{message}");
    }
}
