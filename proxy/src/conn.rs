//! One client connection, served with its bounds: HTTP/1 headers must arrive within the header
//! read timeout of their first byte, a connection with no request in flight is closed after the
//! keep-alive idle timeout, HTTP/2 peers are pinged and limited in concurrent streams, and once the
//! proxy drains, HTTP/1 responses say `Connection: close` and the connection shuts down gracefully.
//!
//! hyper's own `header_read_timeout` also runs while a keep-alive connection waits for its next
//! request, so it would make the idle timeout the header timeout; both are tracked here instead,
//! from the bytes the connection reads and the requests it has in flight.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Version, header};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use crate::limits::ConnectionLimits;

/// The HTTP server settings every connection of a listener shares.
pub fn server_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.http2_keep_alive_interval))
        .keep_alive_timeout(limits.http2_keep_alive_interval)
        .max_concurrent_streams(limits.http2_max_concurrent_streams);
    builder
}

const NONE: u64 = u64::MAX;

/// What a connection is doing, shared by its reader, its requests and its watchdog.
struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` when the connection last became idle.
    idle_since: AtomicU64,
    /// Milliseconds since `epoch` of the first byte read while idle (`NONE` if none yet).
    first_byte: AtomicU64,
    http2: AtomicBool,
    seen_bytes: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            first_byte: AtomicU64::new(NONE),
            http2: AtomicBool::new(false),
            seen_bytes: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn read(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if !self.seen_bytes.swap(true, Ordering::Relaxed) && bytes.starts_with(b"PRI ") {
            self.http2.store(true, Ordering::Relaxed);
        }
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.first_byte.load(Ordering::Relaxed) == NONE
        {
            self.first_byte.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    fn request_started(self: &Arc<Self>) -> RequestInFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.first_byte.store(NONE, Ordering::Relaxed);
        RequestInFlight(self.clone())
    }

    /// When the connection times out unless something happens, and why.
    fn deadline(&self, limits: &ConnectionLimits) -> Option<(Instant, &'static str)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let first_byte = self.first_byte.load(Ordering::Relaxed);
        let at = |ms: u64, after: Duration| self.epoch + Duration::from_millis(ms) + after;
        // HTTP/2 peers send PINGs and SETTINGS between requests: only the idle timeout applies.
        if first_byte != NONE && !self.http2.load(Ordering::Relaxed) {
            return Some((
                at(first_byte, limits.header_read_timeout),
                "header_read_timeout",
            ));
        }
        let idle_since = self.idle_since.load(Ordering::Relaxed);
        if !self.seen_bytes.load(Ordering::Relaxed) {
            // A connection that never sent a byte gets the header timeout from its accept.
            let header = at(idle_since, limits.header_read_timeout);
            let idle = at(idle_since, limits.keep_alive_idle);
            return Some((header.min(idle), "header_read_timeout"));
        }
        Some((at(idle_since, limits.keep_alive_idle), "keep_alive_idle"))
    }
}

/// A request in flight on a connection; dropped with its response body.
pub struct RequestInFlight(Arc<Activity>);

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            self.0.idle_since.store(self.0.now_ms(), Ordering::Relaxed);
        }
    }
}

/// The client's IO, noting when bytes arrive.
struct ObservedIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T: AsyncRead + Unpin> AsyncRead for ObservedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if polled.is_ready() {
            self.activity.read(&buf.filled()[before..]);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ObservedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that keeps its request counted as in flight until it is sent or dropped.
pub struct TrackedBody<B> {
    inner: B,
    _request: RequestInFlight,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one accepted connection until it ends, times out, or the drain finishes it. From when
/// `closing` is set, HTTP/1 responses carry `Connection: close`; `draining` shuts it down.
pub async fn serve<T, S, F, B>(
    io: T,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: ConnectionLimits,
    handler: S,
    closing: watch::Receiver<bool>,
    mut draining: watch::Receiver<bool>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<B>, std::convert::Infallible>> + Send + 'static,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::new(Activity::new());
    let io = ObservedIo {
        inner: io,
        activity: activity.clone(),
    };
    let service = {
        let activity = activity.clone();
        service_fn(move |request: Request<Incoming>| {
            let in_flight = activity.request_started();
            let http1 = request.version() < Version::HTTP_2;
            let closing = *closing.borrow();
            let response = handler.clone()(request);
            async move {
                let response = response.await?;
                let (mut head, body) = response.into_parts();
                if closing && http1 {
                    // Draining: tell the client to take its next request elsewhere.
                    head.headers
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(Response::from_parts(
                    head,
                    TrackedBody {
                        inner: body,
                        _request: in_flight,
                    },
                ))
            }
        })
    };
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = wait_draining(&mut draining) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
        reason = timed_out(&activity, &limits) => {
            // Nothing is in flight: dropping the connection loses no request.
            tracing::debug!(reason, "connection closed");
        }
    }
}

/// Resolves when the connection has waited too long for a request.
async fn timed_out(activity: &Activity, limits: &ConnectionLimits) -> &'static str {
    loop {
        match activity.deadline(limits) {
            Some((at, reason)) if at <= Instant::now() => return reason,
            Some((at, _)) => tokio::time::sleep_until(at.into()).await,
            // Busy: look again after an idle period (requests bound their own time).
            None => tokio::time::sleep(limits.keep_alive_idle).await,
        }
    }
}

async fn wait_draining(draining: &mut watch::Receiver<bool>) {
    // Dropping the borrow before returning keeps the connection future `Send`.
    let _ = draining.wait_for(|d| *d).await.map(|_| ());
}
