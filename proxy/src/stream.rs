//! A provider's response body on its way to the client, before and after the commit point.
//!
//! Before the commit nothing has reached the client, so a failure is retried on another provider:
//! an SSE stream is held until its first content (bounded by the pre-commit limit), a JSON body
//! until it ends or reaches the replay limit. After the commit the body is forwarded chunk by
//! chunk as it arrives, read for usage on the side, bounded by the request deadline and the SSE
//! event limit, and never ended silently: a cut stream ends with an SSE `error` event and counts
//! against the provider. Both phases poll the upstream through the one loop in
//! [`UpstreamStream::poll_upstream`].
//!
//! After the commit, chunks the upstream has already delivered are sent to the client together
//! ([`Batch`]): the upstream connection hands over one chunk per wake-up, and forwarding each on
//! its own cost one client write per SSE event, the larger part of a streamed request's CPU.
//! Nothing waits for data that has not arrived: a batch is sent as soon as the upstream has
//! nothing more ready.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use bytes::{Bytes, BytesMut};
use http_body::Body;
use tokio::time::{Instant as TokioInstant, Sleep};

use crate::access_log::client_text;
use crate::context::ProxyContext;
use crate::openai::sse::SseObserver;
use crate::openai::usage::{JsonResponseObserver, ResponseFacts, read_response_facts};
use crate::outcome::Observed;
use crate::provider::health::Failure;
use crate::provider::{InFlight, ProviderRuntime};
use crate::record::RequestRecord;
use crate::translate::ProviderBody;

/// How the body is read on the side.
pub enum Observer {
    /// An SSE stream: usage, `[DONE]`, first content; events bounded.
    Sse(SseObserver),
    /// A JSON body: usage and model, in bounded memory.
    Json(Box<JsonResponseObserver>),
    /// Passed through unread (a client-fault answer).
    Unread,
}

/// What one poll of the upstream yielded.
enum Polled {
    /// Bytes to forward (after the observer).
    Data(Bytes),
    /// The body ended cleanly.
    End,
    /// The body failed.
    Failed(Observed, String),
}

/// The most bytes one client write gathers from chunks the upstream has ready.
const MAX_BATCH: usize = 16 * 1024;

/// Chunks read after the commit and not yet handed to the client.
#[derive(Default)]
struct Batch {
    chunks: Vec<Bytes>,
    len: usize,
}

impl Batch {
    fn push(&mut self, bytes: Bytes) {
        self.len += bytes.len();
        self.chunks.push(bytes);
    }

    fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Everything gathered, as one buffer (no copy for a single chunk).
    fn take(&mut self) -> Bytes {
        self.len = 0;
        if self.chunks.len() == 1 {
            return self.chunks.pop().unwrap_or_default();
        }
        let mut joined = BytesMut::with_capacity(self.len);
        for chunk in self.chunks.drain(..) {
            joined.extend_from_slice(&chunk);
        }
        joined.freeze()
    }
}

/// One turn of the scheduler, so the upstream connection's task can hand over its next chunk:
/// over once tokio has run the other ready tasks and woken this one. The body can be polled again
/// before that wake-up (with a plain `yield_now`, ready on its second poll, every batch held one
/// chunk), so the turn is over only when its own waker has fired.
struct Turn {
    over: AtomicBool,
    task: Waker,
}

impl Wake for Turn {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.over.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

impl Turn {
    /// Asks tokio to wake the task after the other ready tasks (`yield_now` defers its wake-up
    /// that way; the future itself is done with once polled).
    fn start(cx: &Context<'_>) -> Arc<Self> {
        let turn = Arc::new(Self {
            over: AtomicBool::new(false),
            task: cx.waker().clone(),
        });
        let waker = Waker::from(turn.clone());
        let _ = pin!(tokio::task::yield_now()).poll(&mut Context::from_waker(&waker));
        turn
    }

    fn is_over(&self) -> bool {
        self.over.load(Ordering::Acquire)
    }
}

/// A provider's response body.
pub struct UpstreamStream {
    upstream: ProviderBody,
    observer: Observer,
    deadline: Pin<Box<Sleep>>,
    /// The upstream must end with `data: [DONE]` (chat and text completions).
    expect_done: bool,
    /// Bytes read before the commit, sent first.
    pending: VecDeque<Bytes>,
    pending_len: usize,
    /// The upstream ended during the pre-commit phase.
    ended: bool,
    provider: Arc<ProviderRuntime>,
    context: Arc<ProxyContext>,
    /// The last bytes to send (a cut stream's error event).
    ending: Option<Bytes>,
    done: bool,
    /// End the client's body with an error (a cut non-SSE body: truncation must show).
    abort: bool,
    /// A JSON body read whole before the commit is parsed in place, once; one that is streamed
    /// goes through its observer from the commit on.
    json_streaming: bool,
    json_facts: Option<ResponseFacts>,
    in_flight: Option<InFlight>,
    /// Chunks gathered for the next client write.
    batch: Batch,
    /// Waiting one scheduler turn before sending `batch`.
    yielding: Option<Arc<Turn>>,
}

/// The provider's body broke after the commit (the client's connection is aborted, so a
/// truncated body cannot pass for a complete one).
#[derive(Debug, thiserror::Error)]
#[error("the upstream provider's response broke off")]
pub struct BodyCut;

/// What a stream needs from the attempt that produced it.
pub struct StreamParts {
    /// The response body (in OpenAI's shape: translated for other kinds of providers).
    pub upstream: ProviderBody,
    /// How it is read.
    pub observer: Observer,
    /// The request's deadline.
    pub deadline: TokioInstant,
    /// Whether `[DONE]` must end it.
    pub expect_done: bool,
    /// Who serves it.
    pub provider: Arc<ProviderRuntime>,
    /// Counts the request on the provider until the stream ends.
    pub in_flight: InFlight,
}

impl UpstreamStream {
    /// A stream not yet committed.
    pub fn new(parts: StreamParts, context: Arc<ProxyContext>) -> Self {
        Self {
            upstream: parts.upstream,
            observer: parts.observer,
            deadline: Box::pin(tokio::time::sleep_until(parts.deadline)),
            expect_done: parts.expect_done,
            pending: VecDeque::new(),
            pending_len: 0,
            ended: false,
            provider: parts.provider,
            context,
            ending: None,
            done: false,
            abort: false,
            json_streaming: false,
            json_facts: None,
            in_flight: Some(parts.in_flight),
            batch: Batch::default(),
            yielding: None,
        }
    }

    /// Reads until the response may be committed to the client: an SSE stream's first content
    /// (or `[DONE]`), a JSON body's end or replay limit, at once for an unread body. An error
    /// means nothing reached the client, so another provider may be tried.
    pub async fn commit(&mut self) -> Result<(), (Observed, String)> {
        let limits = &self.context.limits;
        let (hold_limit, what) = match &self.observer {
            Observer::Sse(_) => (limits.max_pre_commit, "before its first content"),
            Observer::Json(_) => (limits.max_response_replay, ""),
            Observer::Unread => return Ok(()),
        };
        loop {
            if let Observer::Sse(sse) = &self.observer
                && (sse.content_seen || sse.done)
            {
                return Ok(());
            }
            match poll_fn(|cx| self.poll_upstream(cx)).await {
                Polled::Data(bytes) => {
                    self.pending_len += bytes.len();
                    self.pending.push_back(bytes);
                    if self.upstream.is_end_stream() && !self.is_sse() {
                        self.ended = true;
                        self.read_whole_json();
                        return Ok(());
                    }
                    if self.pending_len >= hold_limit {
                        if let Observer::Json(json) = &mut self.observer {
                            // Too large to replay: from here on it is streamed.
                            for chunk in &self.pending {
                                json.feed(chunk);
                            }
                            self.json_streaming = true;
                            return Ok(());
                        }
                        return Err((
                            Observed::Broken,
                            format!("the stream held more than {hold_limit} bytes {what}"),
                        ));
                    }
                }
                Polled::End => {
                    if let Observer::Sse(_) = self.observer {
                        return Err((Observed::Broken, "stream ended before any content".into()));
                    }
                    self.ended = true;
                    self.read_whole_json();
                    return Ok(());
                }
                Polled::Failed(observed, detail) => return Err((observed, detail)),
            }
        }
    }

    /// Usage and model of a JSON body held whole, read from the held bytes without a copy
    /// (the usual single chunk) or one joined copy.
    fn read_whole_json(&mut self) {
        if !matches!(self.observer, Observer::Json(_)) {
            return;
        }
        let facts = match self.pending.len() {
            0 => None,
            1 => read_response_facts(&self.pending[0]),
            _ => read_response_facts(&self.pending.iter().flatten().copied().collect::<Vec<u8>>()),
        };
        self.json_facts = Some(facts.unwrap_or_default());
    }

    /// The one read loop: the next frame of the upstream, through the observer, within the
    /// deadline.
    fn poll_upstream(&mut self, cx: &mut Context<'_>) -> Poll<Polled> {
        loop {
            if self.deadline.deadline() <= TokioInstant::now() {
                // An upstream that never pauses is still held to the deadline.
                return Poll::Ready(Polled::Failed(
                    Observed::TimedOut,
                    "the request timeout expired".into(),
                ));
            }
            match Pin::new(&mut self.upstream).poll_frame(cx) {
                // The deadline is polled only when waiting: registering its timer on every
                // chunk would cost more than forwarding the chunk.
                Poll::Pending if self.deadline.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Polled::Failed(
                        Observed::TimedOut,
                        "the request timeout expired".into(),
                    ));
                }
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let out = match &mut self.observer {
                        Observer::Sse(sse) => match sse.feed(data) {
                            Ok(out) => out,
                            Err(error) => {
                                return Poll::Ready(Polled::Failed(
                                    Observed::Broken,
                                    error.to_string(),
                                ));
                            }
                        },
                        Observer::Json(json) => {
                            if self.json_streaming {
                                json.feed(&data);
                            }
                            data
                        }
                        Observer::Unread => data,
                    };
                    if !out.is_empty() {
                        return Poll::Ready(Polled::Data(out));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Polled::Failed(Observed::Broken, e.to_string()));
                }
                Poll::Ready(None) => return Poll::Ready(Polled::End),
            }
        }
    }

    /// The upstream broke after the commit: count it, and end the client's stream with an error
    /// event (an SSE stream) or cut the body (anything else: the client sees a truncated body).
    fn cut(&mut self, record: &mut RequestRecord, reason: &str) {
        self.provider
            .report_failure(Failure::StreamCut, &self.context.metrics, reason);
        record.error = Some("stream_cut");
        let Observer::Sse(sse) = &mut self.observer else {
            self.ending = Some(Bytes::new());
            self.abort = true;
            return;
        };
        // Part of an event may have reached the client already (pass-through forwards bytes as
        // they come): end it before the error event, or the two would run together.
        let partial = sse.held_bytes() > 0;
        let mut tail = BytesMut::from(&sse.finish()[..]);
        if partial && !tail.ends_with(b"\n\n") {
            tail.extend_from_slice(b"\n\n");
        }
        tail.extend_from_slice(&sse.error_event(
            &format!("the upstream provider's stream ended unexpectedly: {reason}"),
            "upstream_stream_interrupted",
        ));
        self.ending = Some(tail.freeze());
    }

    /// The stream is over: usage and model into the record, the provider's request released.
    fn finish(&mut self, record: &mut RequestRecord) {
        self.done = true;
        self.in_flight = None;
        let (usage, model) = match &mut self.observer {
            Observer::Sse(sse) => (sse.usage, sse.model.take()),
            Observer::Json(json) => {
                let facts = match self.json_facts.take() {
                    Some(facts) => facts,
                    None => std::mem::take(json.as_mut()).finish(),
                };
                (facts.usage, facts.model)
            }
            Observer::Unread => (None, None),
        };
        record.usage = usage.or(record.usage);
        if let Some(model) = model {
            record.reported_model = Some(client_text(&model).as_ref().into());
        }
    }

    fn is_sse(&self) -> bool {
        matches!(self.observer, Observer::Sse(_))
    }

    /// Whether nothing more will be sent.
    pub fn is_end_stream(&self) -> bool {
        self.done
    }

    /// The next bytes for the client; `None` at the end.
    pub fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        record: &mut RequestRecord,
    ) -> Poll<Option<Result<Bytes, BodyCut>>> {
        if let Some(bytes) = self.pending.pop_front() {
            if self.pending.is_empty() && self.ended && !self.is_sse() {
                // The whole body was read before the commit: this is its last chunk. Finish
                // now, for hyper may drop a body of known length without polling it again.
                self.ended = false;
                self.finish(record);
            }
            return Poll::Ready(Some(Ok(bytes)));
        }
        loop {
            if self.done {
                // A body that finished with its last chunk may have gathered more before it.
                return Poll::Ready((!self.batch.is_empty()).then(|| Ok(self.batch.take())));
            }
            if let Some(last) = self.ending.take() {
                if self.abort && !self.batch.is_empty() {
                    // What arrived before the cut goes out before the cut shows.
                    self.ending = Some(last);
                    return Poll::Ready(Some(Ok(self.batch.take())));
                }
                self.finish(record);
                if self.abort {
                    return Poll::Ready(Some(Err(BodyCut)));
                }
                // The end (or the cut's error event) goes out with what was gathered.
                if !last.is_empty() {
                    self.batch.push(last);
                }
                return Poll::Ready((!self.batch.is_empty()).then(|| Ok(self.batch.take())));
            }
            if self.ended {
                self.end(record);
                continue;
            }
            if let Some(turn) = &self.yielding {
                if !turn.is_over() {
                    return Poll::Pending;
                }
                self.yielding = None;
            }
            match self.poll_upstream(cx) {
                // Nothing more is ready: send what was gathered.
                Poll::Pending if !self.batch.is_empty() => {
                    return Poll::Ready(Some(Ok(self.batch.take())));
                }
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Polled::Data(bytes)) => {
                    self.batch.push(bytes);
                    if self.upstream.is_end_stream() && !self.is_sse() {
                        self.finish(record);
                        return Poll::Ready(Some(Ok(self.batch.take())));
                    }
                    if self.batch.len >= MAX_BATCH {
                        return Poll::Ready(Some(Ok(self.batch.take())));
                    }
                    // Let the upstream connection decode what it has already read.
                    self.yielding = Some(Turn::start(cx));
                }
                Poll::Ready(Polled::Failed(_, reason)) => self.cut(record, &reason),
                Poll::Ready(Polled::End) => self.ended = true,
            }
        }
    }

    /// The upstream ended cleanly: check it ended as its operation must, then finish.
    fn end(&mut self, record: &mut RequestRecord) {
        self.ended = false;
        if let Observer::Sse(sse) = &mut self.observer {
            if self.expect_done && !sse.done {
                self.cut(record, "the stream ended without [DONE]");
                return;
            }
            let tail = sse.finish();
            self.ending = Some(tail);
            return;
        }
        self.finish(record);
    }
}
