//! Graceful shutdown on SIGTERM (what the kubelet sends) and SIGINT (Ctrl-C).

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::error::RunError;

/// Resolves every [`Shutdown::wait`] once a signal arrives.
#[derive(Clone)]
pub struct Shutdown {
    signalled: watch::Receiver<bool>,
}

impl Shutdown {
    /// Installs the signal handlers.
    pub fn install() -> Result<Self, RunError> {
        let mut terminate =
            signal(SignalKind::terminate()).map_err(RunError::InstallSignalHandler)?;
        let mut interrupt =
            signal(SignalKind::interrupt()).map_err(RunError::InstallSignalHandler)?;
        let (sender, signalled) = watch::channel(false);
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                _ = interrupt.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "shutting down");
            let _ = sender.send(true);
            // Keep the sender alive: dropping it would also wake waiters, but say nothing.
            std::future::pending::<()>().await;
        });
        Ok(Self { signalled })
    }

    /// Resolves once a shutdown signal has arrived (at once if it already has).
    pub fn wait(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut signalled = self.signalled.clone();
        async move {
            // An error means the sender is gone, which only happens on shutdown too.
            let _ = signalled.wait_for(|s| *s).await;
        }
    }
}
