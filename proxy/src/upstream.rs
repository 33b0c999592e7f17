//! The pooled HTTP client of one provider: HTTP/1.1 or HTTP/2 (ALPN) over rustls or plain TCP,
//! with the provider's connect timeout covering TCP and TLS.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use agentgateway_crds::proxy_config::{ProviderConfig, TlsConfig};
use http::Uri;
use hyper_rustls::{
    FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder, MaybeHttpsStream,
};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;

use crate::upstream_body::UpstreamBody;

/// A provider's client.
pub type UpstreamClient = Client<TimeoutConnector, UpstreamBody>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a provider's client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    /// The CA bundle is not PEM or holds no certificate.
    #[error("failed to load the CA bundle of provider {provider}: {reason}")]
    LoadCaBundle { provider: String, reason: String },
    /// The SNI name is not a valid server name.
    #[error("failed to use {sni:?} as the TLS server name of provider {provider}")]
    ParseServerName { provider: String, sni: String },
    /// rustls refused the configuration.
    #[error("failed to configure TLS for provider {provider}: {reason}")]
    ConfigureTls { provider: String, reason: String },
}

/// The connect step timed out.
#[derive(Debug, thiserror::Error)]
#[error("connect timed out after {0:?}")]
pub struct ConnectTimeout(pub Duration);

/// Bounds the whole connect (TCP + TLS handshake) of the inner connector.
#[derive(Clone)]
pub struct TimeoutConnector {
    inner: HttpsConnector<HttpConnector>,
    timeout: Duration,
}

impl tower_service::Service<Uri> for TimeoutConnector {
    type Response = MaybeHttpsStream<TokioIo<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            match tokio::time::timeout(timeout, connecting).await {
                Ok(result) => result,
                Err(_) => Err(Box::new(ConnectTimeout(timeout)) as BoxError),
            }
        })
    }
}

/// Builds the client for one provider.
pub fn build_client(config: &ProviderConfig) -> Result<UpstreamClient, ClientBuildError> {
    let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let tls = tls_config(config)?;
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let https = match config.tls.as_ref().and_then(|t| t.sni.as_deref()) {
        Some(sni) => {
            let name = ServerName::try_from(sni.to_string()).map_err(|_| {
                ClientBuildError::ParseServerName {
                    provider: config.name.clone(),
                    sni: sni.into(),
                }
            })?;
            builder
                .with_server_name_resolver(FixedServerNameResolver::new(name))
                .enable_all_versions()
                .wrap_connector(http)
        }
        None => builder.enable_all_versions().wrap_connector(http),
    };
    let connector = TimeoutConnector {
        inner: https,
        timeout: connect_timeout,
    };
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector))
}

fn tls_config(config: &ProviderConfig) -> Result<ClientConfig, ClientBuildError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let failed = |reason: String| ClientBuildError::ConfigureTls {
        provider: config.name.clone(),
        reason,
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(e.to_string()))?;
    let tls = config.tls.clone().unwrap_or_default();
    if tls.insecure_skip_verify {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
            .with_no_client_auth());
    }
    Ok(builder
        .with_root_certificates(root_store(config, &tls)?)
        .with_no_client_auth())
}

fn root_store(config: &ProviderConfig, tls: &TlsConfig) -> Result<RootCertStore, ClientBuildError> {
    let mut roots = RootCertStore::empty();
    let Some(pem) = &tls.ca_pem else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let failed = |reason: String| ClientBuildError::LoadCaBundle {
        provider: config.name.clone(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| failed(e.to_string()))?;
    if certs.is_empty() {
        return Err(failed("no certificate found".into()));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| failed(e.to_string()))?;
    }
    Ok(roots)
}

/// `insecureSkipVerify`: signatures are still checked, the certificate chain is not.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
