//! The serving certificate, replaceable at any moment: each handshake reads the current one.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::TlsError;

/// Hands every TLS handshake the certificate loaded last. Until one is loaded, handshakes fail
/// (the client sees an alert) and the server keeps running.
pub struct CertResolver {
    current: ArcSwapOption<CertifiedKey>,
    provider: Arc<CryptoProvider>,
}

impl CertResolver {
    /// A resolver with no certificate yet, shared between the server and whoever rotates it.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwapOption::empty(),
            provider: agentgateway_tls::crypto_provider(),
        })
    }

    /// Parses a PEM certificate chain (leaf first) and its PEM private key (PKCS#8, PKCS#1 or
    /// SEC1), checks that they belong together, and makes them the certificate of every new
    /// handshake. On error the previous certificate stays in place.
    pub fn set_pem(&self, cert_chain_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
        let certified = agentgateway_tls::certified_key(cert_chain_pem, key_pem, &self.provider)?;
        self.current.store(Some(Arc::new(certified)));
        Ok(())
    }

    /// Whether a certificate has been loaded.
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// The current certificate and key, if any.
    pub(crate) fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver")
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgateway_tls::testing::self_signed;

    #[test]
    fn nothing_is_served_before_a_certificate_is_set() {
        let resolver = CertResolver::new();
        assert!(!resolver.is_loaded());
        assert!(resolver.current().is_none());
    }

    #[test]
    fn a_bad_pair_is_refused_and_the_previous_certificate_stays() {
        let resolver = CertResolver::new();
        let (cert_a, key_a) = self_signed("a.example");
        let (cert_b, _key_b) = self_signed("b.example");
        resolver
            .set_pem(cert_a.as_bytes(), key_a.as_bytes())
            .unwrap();
        let loaded = resolver.current().unwrap().cert[0].to_vec();

        let mismatch = resolver.set_pem(cert_b.as_bytes(), key_a.as_bytes());
        assert!(
            matches!(mismatch, Err(TlsError::PairKey(_))),
            "{mismatch:?}"
        );
        let no_cert = resolver.set_pem(b"not a pem", key_a.as_bytes());
        assert!(
            matches!(no_cert, Err(TlsError::NoCertificate)),
            "{no_cert:?}"
        );
        let no_key = resolver.set_pem(cert_a.as_bytes(), cert_a.as_bytes());
        assert!(matches!(no_key, Err(TlsError::NoKey)), "{no_key:?}");

        assert_eq!(resolver.current().unwrap().cert[0].to_vec(), loaded);
    }
}
