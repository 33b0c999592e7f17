//! The ports the proxy serves: one accept loop per listener of the current config (or the
//! `--listen` address when the config has no Gateway), started and stopped as configs change, with
//! graceful draining of every connection on shutdown. All listeners share one connection budget.
//! HTTPS listeners complete a TLS handshake (bounded by `--tls-handshake-timeout`) before the
//! connection is served by the same code as plain HTTP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

use crate::accept::{AcceptLoop, Overflow};
use crate::conn;
use crate::context::ProxyContext;
use crate::request::handle;
use crate::state::Snapshot;
use crate::tls;

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("failed to listen on {addr} for listener {listener}: {source}")]
pub struct BindError {
    /// The listener's name.
    pub listener: String,
    /// The address.
    pub addr: SocketAddr,
    /// The OS error.
    pub source: std::io::Error,
}

struct Running {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

/// Starts and stops accept loops to match the config.
pub struct Listeners {
    context: Arc<ProxyContext>,
    /// The address of the default listener; its IP is used for Gateway listener ports.
    default_addr: SocketAddr,
    running: HashMap<String, Running>,
    /// Connections in flight, drained on shutdown.
    connections: TaskTracker,
    /// Tells connections to finish their in-flight requests and close.
    draining: watch::Sender<bool>,
    /// Client connections of every listener together.
    permits: Arc<Semaphore>,
}

impl Listeners {
    /// A manager with nothing listening yet.
    pub fn new(context: Arc<ProxyContext>, default_addr: SocketAddr) -> Self {
        let permits = Arc::new(Semaphore::new(context.limits.max_connections));
        Self {
            context,
            default_addr,
            running: HashMap::new(),
            connections: TaskTracker::new(),
            draining: watch::channel(false).0,
            permits,
        }
    }

    /// The addresses currently served, by listener name.
    pub fn addresses(&self) -> HashMap<String, SocketAddr> {
        self.running
            .iter()
            .map(|(k, v)| (k.clone(), v.addr))
            .collect()
    }

    /// Makes the running listeners those of `snapshot`; returns the ones that failed to bind.
    pub async fn reconcile(&mut self, snapshot: &Snapshot) -> Vec<BindError> {
        let wanted: HashMap<String, SocketAddr> = snapshot
            .listener_ports
            .iter()
            .map(|(name, port)| {
                let addr = match port {
                    Some(port) => SocketAddr::new(self.default_addr.ip(), *port),
                    None => self.default_addr,
                };
                (name.clone(), addr)
            })
            .collect();
        self.running.retain(|name, running| {
            let keep = wanted.get(name) == Some(&running.addr);
            if !keep {
                let _ = running.stop.send(true);
                tracing::info!(listener = %name, addr = %running.addr, "listener stopped");
            }
            keep
        });
        let mut errors = Vec::new();
        for (name, addr) in wanted {
            if self.running.contains_key(&name) {
                continue;
            }
            match bind(addr).await {
                Ok(listener) => {
                    let addr = listener.local_addr().unwrap_or(addr);
                    let (stop, stopped) = watch::channel(false);
                    self.spawn_accept_loop(listener, name.as_str().into(), stopped);
                    tracing::info!(listener = %name, %addr, "listening");
                    self.running.insert(name, Running { addr, stop });
                }
                Err(source) => errors.push(BindError {
                    listener: name,
                    addr,
                    source,
                }),
            }
        }
        errors
    }

    fn spawn_accept_loop(
        &self,
        listener: TcpListener,
        name: Arc<str>,
        stopped: watch::Receiver<bool>,
    ) {
        let context = self.context.clone();
        let limits = context.limits.connection();
        let builder = Arc::new(conn::server_builder(&limits));
        let (connections, draining) = (self.connections.clone(), self.draining.subscribe());
        let closing = context.draining.subscribe();
        let accept = AcceptLoop {
            listener,
            name: name.clone(),
            permits: self.permits.clone(),
            overflow: Overflow::ServiceUnavailable,
            metrics: context.metrics.clone(),
        };
        tokio::spawn(accept.run(stopped, move |stream, permit| {
            let (context, name, builder, closing, draining) = (
                context.clone(),
                name.clone(),
                builder.clone(),
                closing.clone(),
                draining.clone(),
            );
            connections.spawn(async move {
                // The snapshot of the accept decides: a rotated certificate is used by the next
                // connection, and connections already open keep theirs.
                let tls = context.state.snapshot().listener_tls.get(&*name).cloned();
                let handshake_timeout = context.limits.tls_handshake_timeout;
                let metrics = context.metrics.clone();
                let listener = name.clone();
                let handler = move |request| handle(context.clone(), name.clone(), request);
                match tls {
                    None => conn::serve(stream, builder, limits, handler, closing, draining).await,
                    // The handshake holds the connection's permit: slow handshakes count against
                    // the connection budget like any other connection.
                    Some(config) => match tls::handshake(stream, config, handshake_timeout).await {
                        Ok(stream) => {
                            conn::serve(stream, builder, limits, handler, closing, draining).await
                        }
                        Err(failure) => {
                            metrics.record_handshake_failure(&listener, failure.as_str())
                        }
                    },
                }
                drop(permit);
            });
        }));
    }

    /// Keeps accepting for `delay` (readiness already fails, so endpoints are being removed while
    /// HTTP/1 responses ask clients to close), then stops accepting, closes idle connections and
    /// lets in-flight requests and streams finish up to `grace`.
    pub async fn shutdown(mut self, delay: Duration, grace: Duration) {
        // send_replace: the flag must be set even while no connection is listening for it.
        self.context.draining.send_replace(true);
        tokio::time::sleep(delay).await;
        for (_, running) in self.running.drain() {
            let _ = running.stop.send(true);
        }
        self.draining.send_replace(true);
        self.connections.close();
        if tokio::time::timeout(grace, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                remaining = self.connections.len(),
                "shutdown grace period expired with requests in flight"
            );
        }
    }
}

pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}
