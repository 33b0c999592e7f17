//! Reading a client's request body: at most the body limit (413 above), no pause longer than the
//! body progress timeout (408), and every byte held reserved in the shared memory budget first
//! (503 `overloaded` when it cannot be had in time). The body is collected once, into one buffer
//! sized from `Content-Length`; a pass-through body larger than the replay size is held only up to
//! it, and the rest is streamed to the provider as it arrives.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, StatusCode, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::budget::Reservation;
use crate::context::ProxyContext;
use crate::openai::error::ProxyError;

/// A request body in memory, with the budget it holds.
pub struct BufferedBody {
    /// The bytes (all of them, or the first part of a streamed body).
    pub bytes: Bytes,
    /// Released when the body is.
    pub reservation: Reservation,
    /// The rest of a body larger than what was to be held.
    pub rest: Option<Incoming>,
}

/// Reads the body within the limits: whole, or, when it is larger than `hold` bytes, the first
/// `hold` bytes or more, leaving the rest to stream.
pub async fn read_body(
    context: &ProxyContext,
    headers: &HeaderMap,
    mut body: Incoming,
    hold: usize,
) -> Result<BufferedBody, ProxyError> {
    let limits = &context.limits;
    let limit = limits.body_limit;
    let too_large = || {
        ProxyError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = declared_length(headers);
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let declared = declared.map_or(0, |len| len as usize).min(hold);
    let mut reservation = context.budget.reservation();
    let overloaded = |context: &ProxyContext| {
        context.metrics.record_overload("memory");
        ProxyError::overloaded(
            "the gateway is holding as many request bodies as its memory budget allows",
        )
    };
    if context
        .budget
        .reserve(&mut reservation, declared, limits.buffer_wait)
        .await
        .is_err()
    {
        discard(context, body).await;
        return Err(overloaded(context));
    }
    let mut buffer = Collected::new(declared);
    loop {
        let frame = match tokio::time::timeout(limits.body_progress_timeout, body.frame()).await {
            Err(_) => {
                return Err(ProxyError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "invalid_request_error",
                    "request_timeout",
                    format!(
                        "the request body sent nothing for {:?}",
                        limits.body_progress_timeout
                    ),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ProxyError::bad_request(
                    "request_body_unreadable",
                    format!("failed to read the request body: {e}"),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let total = buffer.len() + data.len();
        if total > limit {
            return Err(too_large());
        }
        if total > reservation.bytes()
            && context
                .budget
                .reserve(&mut reservation, total, limits.buffer_wait)
                .await
                .is_err()
        {
            drop(buffer);
            discard(context, body).await;
            return Err(overloaded(context));
        }
        buffer.push(data);
        if hold < limit && buffer.len() >= hold && !body.is_end_stream() {
            return Ok(BufferedBody {
                bytes: buffer.freeze(),
                reservation,
                rest: Some(body),
            });
        }
    }
    Ok(BufferedBody {
        bytes: buffer.freeze(),
        reservation,
        rest: None,
    })
}

/// The bytes read so far: the first chunk as hyper gave it (a body that arrives in one piece,
/// the usual case, is never copied), then one buffer sized from `Content-Length`.
enum Collected {
    Empty(usize),
    One(Bytes, usize),
    Many(BytesMut),
}

impl Collected {
    fn new(declared: usize) -> Self {
        Self::Empty(declared)
    }

    fn len(&self) -> usize {
        match self {
            Self::Empty(_) => 0,
            Self::One(bytes, _) => bytes.len(),
            Self::Many(buffer) => buffer.len(),
        }
    }

    fn push(&mut self, data: Bytes) {
        *self = match std::mem::replace(self, Self::Empty(0)) {
            Self::Empty(declared) => Self::One(data, declared),
            Self::One(first, declared) => {
                let mut buffer = BytesMut::with_capacity(declared.max(first.len() + data.len()));
                buffer.extend_from_slice(&first);
                buffer.extend_from_slice(&data);
                Self::Many(buffer)
            }
            Self::Many(mut buffer) => {
                buffer.extend_from_slice(&data);
                Self::Many(buffer)
            }
        };
    }

    fn freeze(self) -> Bytes {
        match self {
            Self::Empty(_) => Bytes::new(),
            Self::One(bytes, _) => bytes,
            Self::Many(buffer) => buffer.freeze(),
        }
    }
}

/// Reads and drops the rest of a refused body (up to the body limit, within the progress
/// timeout), so the client reads our answer instead of a connection reset.
async fn discard(context: &ProxyContext, mut body: Incoming) {
    let limits = &context.limits;
    let mut left = limits.body_limit;
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(limits.body_progress_timeout, body.frame()).await
    {
        let len = frame.data_ref().map_or(0, Bytes::len);
        if len >= left {
            return;
        }
        left -= len;
    }
}

/// The body length the client declared (`Content-Length`), when it is a number.
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
