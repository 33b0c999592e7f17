//! The ports the proxy serves: one accept loop per listener of the current config (or the
//! `--listen` address when the config has no Gateway), started and stopped as configs change, with
//! graceful draining of every connection on shutdown.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::forward::{Gateway, handle};
use crate::state::Snapshot;

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
    gateway: Arc<Gateway>,
    /// The address of the default listener; its IP is used for Gateway listener ports.
    default_addr: SocketAddr,
    running: HashMap<String, Running>,
    /// Connections in flight, drained on shutdown.
    connections: TaskTracker,
    /// Tells connections to finish their in-flight requests and close.
    draining: watch::Sender<bool>,
}

impl Listeners {
    /// A manager with nothing listening yet.
    pub fn new(gateway: Arc<Gateway>, default_addr: SocketAddr) -> Self {
        Self {
            gateway,
            default_addr,
            running: HashMap::new(),
            connections: TaskTracker::new(),
            draining: watch::channel(false).0,
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
                    tokio::spawn(accept_loop(
                        listener,
                        name.as_str().into(),
                        self.gateway.clone(),
                        stopped,
                        self.connections.clone(),
                        self.draining.subscribe(),
                    ));
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

    /// Stops accepting, lets in-flight requests and streams finish up to `grace`, then returns.
    pub async fn shutdown(mut self, grace: std::time::Duration) {
        for (_, running) in self.running.drain() {
            let _ = running.stop.send(true);
        }
        let _ = self.draining.send(true);
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

async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
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

async fn accept_loop(
    listener: TcpListener,
    name: Arc<str>,
    gateway: Arc<Gateway>,
    mut stopped: watch::Receiver<bool>,
    connections: TaskTracker,
    draining: watch::Receiver<bool>,
) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.changed() => return,
        };
        let (stream, _) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(listener = %name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (gateway, name, builder, mut draining) = (
            gateway.clone(),
            name.clone(),
            builder.clone(),
            draining.clone(),
        );
        connections.spawn(async move {
            let service = service_fn(move |request| handle(gateway.clone(), name.clone(), request));
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = wait_draining(&mut draining) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

async fn wait_draining(draining: &mut watch::Receiver<bool>) {
    // Dropping the borrow before returning keeps the connection future `Send`.
    let _ = draining.wait_for(|d| *d).await.map(|_| ());
}
