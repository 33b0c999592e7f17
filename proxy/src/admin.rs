//! The admin endpoints: readiness on `:15021/healthz/ready` (and which config is in use on
//! `:15021/healthz/config`), Prometheus metrics on `:15020/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::accept::{AcceptLoop, Overflow};
use crate::config_status::ConfigStatus;
use crate::conn;
use crate::limits::Limits;
use crate::metrics::Metrics;

/// Readiness: a config is loaded and its listeners are up, and the proxy is not shutting down.
#[derive(Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    /// Sets readiness.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    /// Whether ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// What the admin endpoints read.
pub struct Admin {
    /// Readiness flag.
    pub readiness: Arc<Readiness>,
    /// Metrics to expose.
    pub metrics: Arc<Metrics>,
    /// Which config is in use.
    pub config_status: Arc<ConfigStatus>,
    /// The same connection bounds as the listeners, and the admin connection budget.
    pub limits: Limits,
}

/// Serves the admin endpoints on an already bound listener, with the listeners' connection
/// timeouts and a budget of its own (past it, connections are closed at once: scrapers and
/// probes retry).
pub async fn serve(listener: TcpListener, name: &'static str, admin: Arc<Admin>) {
    let limits = admin.limits.connection();
    let builder = Arc::new(conn::server_builder(&limits));
    // Admin endpoints run until the process ends: nothing ever stops or drains them.
    let (never, stopped) = watch::channel(false);
    let accept = AcceptLoop {
        listener,
        name: name.into(),
        permits: Arc::new(Semaphore::new(admin.limits.admin_max_connections)),
        overflow: Overflow::Close,
        metrics: admin.metrics.clone(),
    };
    accept
        .run(stopped.clone(), move |stream, permit| {
            let (admin, builder, stopped) = (admin.clone(), builder.clone(), stopped.clone());
            tokio::spawn(async move {
                let handler = move |request| respond(admin.clone(), request);
                conn::serve(stream, builder, limits, handler, stopped.clone(), stopped).await;
                drop(permit);
            });
        })
        .await;
    drop(never);
}

/// Binds an admin address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

async fn respond(
    admin: Arc<Admin>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, content_type, body) = match request.uri().path() {
        "/healthz/ready" | "/ready" if admin.readiness.get() => {
            (StatusCode::OK, "text/plain", Bytes::from_static(b"ready\n"))
        }
        "/healthz/ready" | "/ready" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            Bytes::from_static(b"not ready\n"),
        ),
        "/healthz/live" | "/healthz" => (StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
        "/healthz/config" => (
            StatusCode::OK,
            "application/json",
            admin.config_status.to_json(),
        ),
        "/metrics" => (
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Bytes::from(admin.metrics.encode()),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found\n"),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    Ok(response)
}
