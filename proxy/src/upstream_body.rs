//! The body of a request to a provider: slices of the client's one buffered body (with the
//! rewritten fields between them), sent as they are without joining them into a new copy; or,
//! for a large pass-through body, the part read so far followed by the rest of the client's body
//! as it arrives (bounded by the body limit and the body progress timeout, never held whole).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// Why the client's side of a streamed body failed: the request's fault, not the provider's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientBodyFault {
    /// The client sent nothing for the body progress timeout.
    #[error("the request body sent nothing for {0:?}")]
    Stalled(Duration),
    /// The client sent more than the body limit.
    #[error("the request body is larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// The client's connection failed.
    #[error("failed to read the request body: {0}")]
    Broken(String),
}

/// Where a streamed body records a client fault, for the attempt to read after a failed request.
pub type FaultSlot = Arc<Mutex<Option<ClientBodyFault>>>;

/// The rest of a client's body, forwarded as it arrives.
#[derive(Debug)]
struct ClientRest {
    body: Incoming,
    progress: Duration,
    timer: Pin<Box<Sleep>>,
    /// Bytes the client may still send.
    left: u64,
    limit: u64,
    fault: FaultSlot,
}

/// A request body made of byte slices, maybe followed by the rest of the client's body.
#[derive(Debug, Default)]
pub struct UpstreamBody {
    chunks: VecDeque<Bytes>,
    len: u64,
    // Boxed: hyper moves the request (and so its body) by value several times per attempt.
    rest: Option<Box<ClientRest>>,
}

impl UpstreamBody {
    /// A body of these slices, in order.
    pub fn chunks(chunks: Vec<Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let len = chunks.iter().map(|c| c.len() as u64).sum();
        Self {
            chunks,
            len,
            rest: None,
        }
    }

    /// A body of one buffer.
    pub fn full(bytes: Bytes) -> Self {
        Self::chunks(vec![bytes])
    }

    /// `head`, then what remains of the client's `body`: at most `limit` bytes in all, no pause
    /// longer than `progress`; a client fault is recorded in `fault`.
    pub fn streamed(
        head: Bytes,
        body: Incoming,
        limit: u64,
        progress: Duration,
        fault: FaultSlot,
    ) -> Self {
        let left = limit.saturating_sub(head.len() as u64);
        let mut this = Self::full(head);
        this.rest = Some(Box::new(ClientRest {
            body,
            progress,
            timer: Box::pin(tokio::time::sleep(progress)),
            left,
            limit,
            fault,
        }));
        this
    }

    /// The length of the buffered part in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0 && self.rest.is_none()
    }

    /// Whether part of it is still to come from the client.
    pub fn is_streamed(&self) -> bool {
        self.rest.is_some()
    }

    /// The buffered bytes joined (tests and diagnostics).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        for chunk in &self.chunks {
            out.extend_from_slice(chunk);
        }
        out
    }
}

impl ClientRest {
    fn fail(
        &mut self,
        fault: ClientBodyFault,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyFault>>> {
        if let Ok(mut slot) = self.fault.lock() {
            *slot = Some(fault.clone());
        }
        Poll::Ready(Some(Err(fault)))
    }

    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyFault>>> {
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => {
                    if self.timer.as_mut().poll(cx).is_ready() {
                        return self.fail(ClientBodyFault::Stalled(self.progress));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(e))) => {
                    return self.fail(ClientBodyFault::Broken(e.to_string()));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.len() as u64 > self.left {
                        return self.fail(ClientBodyFault::TooLarge(self.limit));
                    }
                    self.left -= data.len() as u64;
                    self.timer.as_mut().reset(Instant::now() + self.progress);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = ClientBodyFault;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyFault>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            self.len -= chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match self.rest.as_mut() {
            Some(rest) => rest.poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty() && self.rest.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.rest {
            None => SizeHint::with_exact(self.len),
            Some(_) => {
                let mut hint = SizeHint::new();
                hint.set_lower(self.len);
                hint
            }
        }
    }
}
