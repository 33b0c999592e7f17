//! TLS termination on HTTPS listeners. Each config snapshot holds, per HTTPS listener, a rustls
//! server config whose resolver picks the certificate by the client's SNI: the exact host name,
//! then a `*.suffix` wildcard one label deep, then the listener's default certificate. A new config
//! (a rotated certificate) builds new server configs; each connection takes the one of the
//! snapshot current when it is accepted, so new handshakes get the new certificate while
//! connections already open keep theirs.
//!
//! Certificates are parsed when the config is applied: a config whose certificate credential is
//! missing or does not parse is refused whole, and the previous one keeps serving.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use agentgateway_crds::proxy_config::{Credentials, ListenerTlsConfig};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The ALPN protocols offered, in order of preference: HTTP/2 when the client speaks it.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a listener's TLS settings could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// The credentials lack the certificate.
    #[error(
        "listener {listener}: certificate credential {credential} is missing from the credentials"
    )]
    MissingCredential {
        /// The config listener.
        listener: String,
        /// The credential id.
        credential: String,
    },
    /// The credential is not a usable certificate and key.
    #[error("listener {listener}: certificate credential {credential}: {source}")]
    InvalidCertificate {
        /// The config listener.
        listener: String,
        /// The credential id.
        credential: String,
        /// What is wrong (never the key).
        source: agentgateway_tls::PemError,
    },
    /// rustls refused the protocol versions (cannot happen with the built-in provider).
    #[error("listener {listener}: failed to set up TLS: {source}")]
    Rustls {
        /// The config listener.
        listener: String,
        /// rustls' reason.
        source: rustls::Error,
    },
}

/// Certificates by SNI host name. Holds private keys: its `Debug` shows only the host names.
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the suffix after `*.` (`example.com` for `*.example.com`).
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// The certificate for `server_name` (`None`: the client sent no SNI).
    pub fn certificate_for(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let by_name = server_name.and_then(|name| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            self.exact.get(&name).cloned().or_else(|| {
                // One label deep: `a.example.com` matches `*.example.com`; `a.b.example.com` too
                // through `*.b.example.com` only.
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent).cloned()
            })
        });
        by_name.or_else(|| self.default.clone())
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut exact: Vec<&String> = self.exact.keys().collect();
        exact.sort();
        let mut wildcard: Vec<String> = self.wildcard.keys().map(|s| format!("*.{s}")).collect();
        wildcard.sort();
        f.debug_struct("SniResolver")
            .field("exact", &exact)
            .field("wildcard", &wildcard)
            .field("default", &self.default.is_some())
            .finish()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certificate_for(client_hello.server_name())
    }
}

/// The certificates of the HTTPS listener `listener`, read from `credentials`.
pub fn sni_resolver(
    listener: &str,
    tls: &ListenerTlsConfig,
    credentials: &Credentials,
) -> Result<SniResolver, TlsConfigError> {
    let provider = agentgateway_tls::crypto_provider();
    let mut resolver = SniResolver {
        exact: HashMap::new(),
        wildcard: HashMap::new(),
        default: None,
    };
    for certificate in &tls.certificates {
        let pem = credentials.get(&certificate.credential).ok_or_else(|| {
            TlsConfigError::MissingCredential {
                listener: listener.to_string(),
                credential: certificate.credential.clone(),
            }
        })?;
        // The credential is one bundle: the chain's blocks, then the key's.
        let key = agentgateway_tls::certified_key(pem.as_bytes(), pem.as_bytes(), &provider)
            .map_err(|source| TlsConfigError::InvalidCertificate {
                listener: listener.to_string(),
                credential: certificate.credential.clone(),
                source,
            })?;
        let key = Arc::new(key);
        match certificate.hostname.as_deref() {
            None => resolver.default = Some(key),
            Some(name) => match name.strip_prefix("*.") {
                Some(suffix) => {
                    resolver.wildcard.insert(suffix.to_string(), key);
                }
                None => {
                    resolver.exact.insert(name.to_string(), key);
                }
            },
        }
    }
    Ok(resolver)
}

/// The rustls server config of the HTTPS listener `listener`: its certificates by SNI, ALPN `h2`
/// and `http/1.1`.
pub fn server_config(
    listener: &str,
    tls: &ListenerTlsConfig,
    credentials: &Credentials,
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let resolver = sni_resolver(listener, tls, credentials)?;
    let mut config = ServerConfig::builder_with_provider(agentgateway_tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsConfigError::Rustls {
            listener: listener.to_string(),
            source,
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Why a handshake did not complete, as the metric's `reason` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Not finished within the timeout.
    Timeout,
    /// Anything else the client or the network did.
    Error,
}

impl HandshakeFailure {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }
}

/// Completes the server side of a TLS handshake within `timeout`.
pub async fn handshake(
    stream: TcpStream,
    config: Arc<ServerConfig>,
    timeout: Duration,
) -> Result<TlsStream<TcpStream>, HandshakeFailure> {
    match tokio::time::timeout(timeout, TlsAcceptor::from(config).accept(stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(error)) => {
            // Debug level: a client can fail handshakes as fast as it connects.
            tracing::debug!(%error, "tls handshake failed");
            Err(HandshakeFailure::Error)
        }
        Err(_) => Err(HandshakeFailure::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgateway_crds::proxy_config::TlsCertificateConfig;

    fn bundle(name: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        agentgateway_tls::bundle(&cert.pem(), &key.serialize_pem())
    }

    fn resolver(entries: &[(Option<&str>, &str)]) -> (SniResolver, Credentials) {
        let mut credentials = Credentials::new();
        let certificates = entries
            .iter()
            .map(|(hostname, id)| {
                credentials.insert(id.to_string(), bundle(id));
                TlsCertificateConfig {
                    hostname: hostname.map(String::from),
                    credential: id.to_string(),
                }
            })
            .collect();
        let tls = ListenerTlsConfig { certificates };
        server_config("l", &tls, &credentials).unwrap();
        (sni_resolver("l", &tls, &credentials).unwrap(), credentials)
    }

    fn leaf(resolver: &SniResolver, name: Option<&str>) -> Option<Vec<u8>> {
        resolver.certificate_for(name).map(|k| k.cert[0].to_vec())
    }

    #[test]
    fn sni_picks_the_exact_name_then_a_one_label_wildcard_then_the_default() {
        let (resolver, _) = resolver(&[
            (Some("a.example.com"), "exact"),
            (Some("*.example.com"), "wild"),
            (None, "default"),
        ]);
        let exact = leaf(&resolver, Some("a.example.com"));
        let wild = leaf(&resolver, Some("b.example.com"));
        let default = leaf(&resolver, None);
        assert!(exact.is_some() && wild.is_some() && default.is_some());
        assert_ne!(exact, wild);
        assert_ne!(wild, default);
        assert_eq!(leaf(&resolver, Some("A.Example.COM.")), exact);
        assert_eq!(
            leaf(&resolver, Some("x.b.example.com")),
            default,
            "one label deep"
        );
        assert_eq!(leaf(&resolver, Some("example.com")), default);
        assert_eq!(leaf(&resolver, Some("other.org")), default);
    }

    #[test]
    fn without_a_default_an_unknown_name_gets_no_certificate() {
        let (resolver, _) = resolver(&[(Some("a.example.com"), "exact")]);
        assert!(leaf(&resolver, Some("b.example.com")).is_none());
        assert!(leaf(&resolver, None).is_none());
    }

    #[test]
    fn a_missing_or_broken_credential_is_an_error_and_debug_shows_no_key() {
        let tls = ListenerTlsConfig {
            certificates: vec![TlsCertificateConfig {
                hostname: None,
                credential: "tls_ns_c".into(),
            }],
        };
        let missing = server_config("ns/gw/https", &tls, &Credentials::new());
        assert!(matches!(
            missing,
            Err(TlsConfigError::MissingCredential { .. })
        ));
        let broken = Credentials::from([("tls_ns_c".to_string(), "garbage".to_string())]);
        let error = server_config("ns/gw/https", &tls, &broken).unwrap_err();
        assert!(
            matches!(error, TlsConfigError::InvalidCertificate { .. }),
            "{error}"
        );
        let (resolver, credentials) = resolver(&[(Some("a.example.com"), "exact")]);
        let shown = format!("{resolver:?}");
        assert!(shown.contains("a.example.com"), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(credentials["exact"].contains("PRIVATE KEY"));
    }
}
