//! Serving the webhooks over TLS with a certificate that can change while serving.
//!
//! The API server only calls webhooks over HTTPS, and the serving certificate is rotated before it
//! expires (by the operator, or by cert-manager into a mounted directory); a restart for each
//! rotation would drop in-flight reviews, so the certificate sits behind a resolver that is swapped
//! atomically.

mod resolver;
mod serve;
mod watch;

pub use resolver::CertResolver;
pub use serve::serve_tls;
pub use watch::watch_cert_dir;

/// Why a certificate and key pair was not loaded (shared with the compiler and the proxy).
pub use agentgateway_tls::PemError as TlsError;
