//! The probe and metrics endpoints: `/healthz` (200 while the process runs), `/readyz` (200 once
//! the webhooks can answer, when they are on, else once the caches are filled; leader or not) and
//! `/metrics` (Prometheus text). Every listener serves
//! every path, so `--metrics-addr` and `--health-addr` may also be the same port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use agentgateway_webhook::CertResolver;
use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::error::RunError;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the endpoints report.
#[derive(Default)]
pub struct Health {
    ready: AtomicBool,
    /// The webhooks' certificate, when they are enabled: ready needs one loaded.
    webhook: OnceLock<Arc<CertResolver>>,
    registry: Registry,
}

impl Health {
    /// Endpoints reporting the metrics of `registry`, not ready yet.
    pub fn new(registry: Registry) -> Self {
        Self {
            ready: AtomicBool::new(false),
            webhook: OnceLock::new(),
            registry,
        }
    }

    /// Marks the operator ready (the caches are filled).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Holds `/readyz` at 503 while `resolver` has no certificate: the webhook Service must not
    /// send the API server to a replica that cannot complete a TLS handshake.
    pub fn expect_webhook(&self, resolver: Arc<CertResolver>) {
        let _ = self.webhook.set(resolver);
    }

    fn webhook_ready(&self) -> bool {
        self.webhook
            .get()
            .is_none_or(|resolver| resolver.is_loaded())
    }

    /// Whether `/readyz` answers 200. With the webhooks on, readiness is theirs: the Service
    /// routes admission reviews by it, and with `failurePolicy: Fail` every backend write waits
    /// for a ready replica, so it must not wait for caches (which, in a large cluster, take a
    /// while to fill, and which the webhooks do not need to answer).
    pub fn is_ready(&self) -> bool {
        match self.webhook.get() {
            Some(_) => self.webhook_ready(),
            None => self.ready.load(Ordering::Acquire),
        }
    }

    fn not_ready_reason(&self) -> &'static [u8] {
        if self.webhook.get().is_some() {
            b"webhook certificate not loaded\n"
        } else {
            b"caches not synced\n"
        }
    }

    /// The status, content type and body for `path`.
    pub fn respond(&self, path: &str) -> (StatusCode, &'static str, Bytes) {
        match path {
            "/healthz" | "/livez" => (StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
            "/readyz" if self.is_ready() => {
                (StatusCode::OK, "text/plain", Bytes::from_static(b"ready\n"))
            }
            "/readyz" => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                Bytes::from_static(self.not_ready_reason()),
            ),
            "/metrics" => (
                StatusCode::OK,
                OPENMETRICS,
                Bytes::from(crate::metrics::encode(&self.registry)),
            ),
            _ => (
                StatusCode::NOT_FOUND,
                "text/plain",
                Bytes::from_static(b"not found\n"),
            ),
        }
    }
}

/// Binds `addr`; port 0 picks a free port (see the returned listener's `local_addr`).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, RunError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })
}

/// Serves the endpoints on `listener` until the task is dropped or aborted.
pub fn serve(listener: TcpListener, health: Arc<Health>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Typically EMFILE; the next accept may succeed once connections close.
                    tracing::warn!(error = %error, "failed to accept a probe connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let health = Arc::clone(&health);
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let (status, content_type, body) = health.respond(request.uri().path());
                    let mut response = Response::new(Full::new(body));
                    *response.status_mut() = status;
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static(content_type),
                    );
                    async move { Ok::<_, Infallible>(response) }
                });
                let connection =
                    http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                if let Err(error) = connection.await {
                    tracing::debug!(error = %error, "probe connection failed");
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_is_always_ok_and_readyz_waits_for_the_caches() {
        let health = Health::new(Registry::default());
        assert_eq!(health.respond("/healthz").0, StatusCode::OK);
        assert_eq!(health.respond("/readyz").0, StatusCode::SERVICE_UNAVAILABLE);
        health.set_ready();
        assert_eq!(health.respond("/readyz").0, StatusCode::OK);
        assert_eq!(health.respond("/nope").0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn metrics_are_served_in_the_openmetrics_format() {
        let (registry, metrics) = crate::metrics::Metrics::registry();
        metrics.set_leader(true);
        let health = Health::new(registry);
        let (status, content_type, body) = health.respond("/metrics");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, OPENMETRICS);
        assert!(String::from_utf8_lossy(&body).contains("agentgateway_operator_leader 1"));
    }

    #[test]
    fn readyz_waits_for_the_webhook_certificate_when_the_webhooks_are_on() {
        let health = Health::new(Registry::default());
        let resolver = CertResolver::new();
        health.expect_webhook(resolver.clone());
        let (status, _, body) = health.respond("/readyz");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(&body[..], b"webhook certificate not loaded\n");
        let names = vec!["svc.ns.svc".to_string()];
        let lifetimes =
            crate::webhook::certs::Lifetimes::from_serving(std::time::Duration::from_secs(3600));
        let material =
            crate::webhook::certs::generate(&names, 1_800_000_000, lifetimes, None).unwrap();
        resolver
            .set_pem(
                material.serving.cert_pem.as_bytes(),
                material.serving.key_pem.as_bytes(),
            )
            .unwrap();
        assert_eq!(health.respond("/readyz").0, StatusCode::OK);
    }
}
