//! The body of every response the proxy sends: a buffered one (the proxy's own answers), or a
//! provider's body. It owns the request's record, so the record is finished exactly once: when
//! the body has been sent whole, or when it is dropped early (the client went away).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::record::RecordGuard;
use crate::stream::{BodyCut, UpstreamStream};

enum Content {
    /// The whole body, sent at once.
    Full(Option<Bytes>),
    /// A provider's body, forwarded as it arrives.
    Stream(Box<UpstreamStream>),
}

/// A response body.
pub struct ProxyBody {
    content: Content,
    record: RecordGuard,
}

impl ProxyBody {
    /// A complete body.
    pub fn full(bytes: Bytes, record: RecordGuard) -> Self {
        Self {
            content: Content::Full(Some(bytes)),
            record,
        }
    }

    /// A provider's body.
    pub fn stream(stream: Box<UpstreamStream>, record: RecordGuard) -> Self {
        Self {
            content: Content::Stream(stream),
            record,
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyCut;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyCut>>> {
        let this = self.get_mut();
        let next = match &mut this.content {
            Content::Full(bytes) => Poll::Ready(bytes.take().map(Ok)),
            Content::Stream(stream) => stream.poll_next(cx, this.record.record()),
        };
        // A cut body has said all it will (its record already carries the cut).
        if matches!(next, Poll::Ready(None | Some(Err(_)))) || this.is_end_stream() {
            this.record.complete();
        }
        next.map(|polled| polled.map(|item| item.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.content {
            Content::Full(bytes) => bytes.is_none(),
            Content::Stream(stream) => stream.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.content {
            Content::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Content::Full(None) => SizeHint::with_exact(0),
            Content::Stream(_) => SizeHint::default(),
        }
    }
}
