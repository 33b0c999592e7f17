//! The HTTPS server: TLS 1.2/1.3 with ALPN, HTTP/1.1 and HTTP/2, one task per connection, and a
//! graceful stop that lets reviews in flight finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::CertResolver;

/// How long a client may take to finish its handshake; a stalled one would otherwise hold a task
/// (and delay shutdown) forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections get to finish after shutdown begins. The API server's own webhook timeout
/// is 10 s at most by default, and a pod's grace period 30 s.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause after a failed `accept` (out of file descriptors, say), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` over TLS on `listener`, with the certificate `resolver` holds at each handshake,
/// until `shutdown` completes. Then it stops accepting, gives open connections up to 5 s to finish
/// (HTTP/2 gets a GOAWAY, HTTP/1.1 closes after the response in flight) and closes the rest.
///
/// A failed handshake (no certificate loaded yet, an old TLS version, a plaintext client) only ends
/// that connection and is logged at debug. Errors: only a TLS configuration that cannot be built.
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    resolver: Arc<CertResolver>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(server_config(resolver)?));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connection tasks so the set does not grow with every connection.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let connection =
                        serve_connection(stream, peer, acceptor.clone(), app.clone(), graceful.watcher());
                    connections.spawn(connection);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "failed to accept a webhook connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let open = connections.len();
    tracing::info!(open, "webhook server stopping; draining connections");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "webhook connections still open after the drain timeout; closing them"
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// TLS 1.3 and 1.2 only (the API server speaks both; older versions are broken), ring as the
/// provider, ALPN offering HTTP/2 first.
fn server_config(resolver: Arc<CertResolver>) -> std::io::Result<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// One connection: handshake, then HTTP/1.1 or HTTP/2 until the client or shutdown ends it.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    watcher: Watcher,
) {
    // A review is one small request and one small response: never hold a segment back waiting for
    // the peer's ACK (Nagle), which puts delayed-ACK stalls into the API server's latency.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY on a webhook connection");
    }
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "webhook TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "webhook TLS handshake timed out");
            return;
        }
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(app));
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(%peer, error = %e, "webhook connection ended with an error");
    }
}
