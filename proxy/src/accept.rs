//! Accepting connections within a budget. A connection past the budget is answered
//! `503 overloaded` and closed while every existing connection keeps being served; an accept error
//! (EMFILE when the process is out of file descriptors) backs off exponentially instead of
//! spinning, and is logged at most once a second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::metrics::Metrics;

/// The first pause after a failed accept; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a refused connection may take to receive its 503.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a connection past the budget gets.
#[derive(Clone, Copy, Debug)]
pub enum Overflow {
    /// An HTTP/1.1 `503 overloaded` (OpenAI error JSON, `Retry-After`), then close.
    ServiceUnavailable,
    /// Closed at once (admin endpoints).
    Close,
}

/// One listener's accept loop.
pub struct AcceptLoop {
    /// The bound socket.
    pub listener: TcpListener,
    /// For logs.
    pub name: Arc<str>,
    /// The connection budget (shared by the listeners it covers).
    pub permits: Arc<Semaphore>,
    /// What happens past the budget.
    pub overflow: Overflow,
    /// Counts refusals.
    pub metrics: Arc<Metrics>,
}

impl AcceptLoop {
    /// Accepts until `stopped`; each admitted connection is handed to `serve` with its permit.
    pub async fn run(
        self,
        mut stopped: watch::Receiver<bool>,
        serve: impl Fn(TcpStream, OwnedSemaphorePermit),
    ) {
        let mut backoff = MIN_BACKOFF;
        let mut errors = ErrorLog::default();
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = stopped.changed() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => {
                    backoff = MIN_BACKOFF;
                    stream
                }
                Err(error) => {
                    errors.record(&self.name, &error);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stopped.changed() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => serve(stream, permit),
                Err(_) => {
                    self.metrics.record_overload("connections");
                    if let Overflow::ServiceUnavailable = self.overflow {
                        tokio::spawn(refuse(stream));
                    }
                }
            }
        }
    }
}

/// Accept errors, logged at most once a second with the count in between.
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn record(&mut self, listener: &str, error: &std::io::Error) {
        if self
            .last
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(listener, %error, suppressed = self.suppressed, "accept failed; backing off");
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}

/// The whole answer to a connection over the budget.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: 138\r\n\r\n{\"error\":{\"message\":\"the gateway has reached its connection limit; retry shortly\",\"type\":\"server_error\",\"code\":\"overloaded\",\"param\":null}}";

async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(REFUSAL).await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_response_with_openai_json() {
        let text = std::str::from_utf8(REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(length, body.len());
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "overloaded");
    }
}
