//! A provider's SSE stream on its way to the client: forwarded chunk by chunk as it arrives, read
//! for usage on the side, bounded by the request deadline, and never ended silently when the
//! upstream breaks: a cut stream ends with an SSE `error` event and counts against the provider.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::forward::Gateway;
use crate::openai::error::sse_error_event;
use crate::openai::sse::SseObserver;
use crate::provider::health::Failure;
use crate::provider::{InFlight, ProviderRuntime};
use crate::record::RequestRecord;

/// The streamed response body.
pub struct StreamingBody {
    upstream: Incoming,
    /// Bytes observed before the response was committed, sent first.
    pending: Option<Bytes>,
    observer: SseObserver,
    deadline: Pin<Box<Sleep>>,
    /// The upstream must end with `data: [DONE]` (chat and text completions).
    expect_done: bool,
    provider: Arc<ProviderRuntime>,
    gateway: Arc<Gateway>,
    record: Option<RequestRecord>,
    ending: Option<Bytes>,
    done: bool,
    _in_flight: InFlight,
}

/// What the stream needs from the attempt that produced it.
pub struct StreamParts {
    pub upstream: Incoming,
    pub pending: Bytes,
    pub observer: SseObserver,
    pub deadline: Pin<Box<Sleep>>,
    pub expect_done: bool,
    pub provider: Arc<ProviderRuntime>,
    pub in_flight: InFlight,
}

impl StreamingBody {
    /// Wraps a committed stream; `record` is finished when the stream ends.
    pub fn new(parts: StreamParts, gateway: Arc<Gateway>, record: RequestRecord) -> Self {
        Self {
            upstream: parts.upstream,
            pending: Some(parts.pending),
            observer: parts.observer,
            deadline: parts.deadline,
            expect_done: parts.expect_done,
            provider: parts.provider,
            gateway,
            record: Some(record),
            ending: None,
            done: false,
            _in_flight: parts.in_flight,
        }
    }

    /// Whether nothing more will be sent.
    pub fn is_end_stream(&self) -> bool {
        self.done
    }

    /// The upstream broke: count it, and end the client's stream with an error event.
    fn cut(&mut self, reason: &str) {
        self.provider
            .report_failure(Failure::StreamCut, &self.gateway.metrics, reason);
        let mut tail = BytesMut::from(&self.observer.finish()[..]);
        if !tail.is_empty() && !tail.ends_with(b"\n\n") {
            tail.extend_from_slice(b"\n\n");
        }
        tail.extend_from_slice(&sse_error_event(
            &format!("the upstream provider's stream ended unexpectedly: {reason}"),
            "upstream_stream_interrupted",
        ));
        if let Some(record) = self.record.as_mut() {
            record.error = Some("stream_cut");
        }
        self.ending = Some(tail.freeze());
    }

    fn finish(&mut self) {
        self.done = true;
        if let Some(mut record) = self.record.take() {
            record.usage = self.observer.usage.or(record.usage);
            if self.observer.model.is_some() && record.model.is_none() {
                record.model = self.observer.model.as_deref().map(Arc::from);
            }
            record.finish(&self.gateway.metrics, &self.gateway.access_log);
        }
    }
}

impl Body for StreamingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(bytes) = this.pending.take().filter(|b| !b.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(last) = this.ending.take() {
                this.finish();
                return Poll::Ready(Some(Ok(Frame::data(last))));
            }
            if this.deadline.deadline() <= tokio::time::Instant::now() {
                // An upstream that never pauses is still held to the deadline.
                this.cut("the request timeout expired");
                continue;
            }
            match Pin::new(&mut this.upstream).poll_frame(cx) {
                // The deadline is polled only when waiting: registering its timer on every
                // chunk would cost more than forwarding the chunk.
                Poll::Pending if this.deadline.as_mut().poll(cx).is_ready() => {
                    this.cut("the request timeout expired");
                }
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let out = this.observer.feed(data);
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                Poll::Ready(Some(Err(e))) => this.cut(&format!("connection error: {e}")),
                Poll::Ready(None) => {
                    if this.expect_done && !this.observer.done {
                        this.cut("the stream ended without [DONE]");
                        continue;
                    }
                    let tail = this.observer.finish();
                    this.finish();
                    if !tail.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(tail))));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl Drop for StreamingBody {
    fn drop(&mut self) {
        if let Some(record) = self.record.as_mut() {
            record.error = Some("client_disconnected");
        }
        self.finish();
    }
}
