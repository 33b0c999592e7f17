//! Watching a server-sent-event stream on its way to the client: frames events across chunk
//! boundaries, reads usage from whichever chunk carries it, notices `[DONE]` and the first chunk
//! with content, and, only when the proxy itself asked for usage, drops the usage-only chunk.
//!
//! In pass-through mode the bytes the client receives are exactly the upstream's.
//!
//! Framing follows the WHATWG "Parsing an event stream" rules: a line ends with CRLF, LF or a
//! lone CR, and an empty line ends (dispatches) an event. The upstream is untrusted, so framing
//! is incremental (every byte is scanned once, however the stream is chunked) and the bytes of
//! one event are bounded by `max_event_bytes`.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::usage::{Usage, WireUsage, has_usage_object, read_response_facts};

/// [`WireUsage`] held by the observer (which derives `Debug`).
pub struct WireUsageDebug(WireUsage);

impl std::fmt::Debug for WireUsageDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.usage().fmt(f)
    }
}

/// The default bound on one event's bytes (4 MiB): far above any chat-completion chunk.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 << 20;

/// Why a stream cannot be observed further.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// One event (the bytes since the last event end) grew past the limit: the upstream is
    /// streaming without event separators, or sent an absurdly large event.
    #[error("an upstream server-sent event exceeded {limit} bytes")]
    EventTooLarge {
        /// The configured `max_event_bytes`.
        limit: usize,
    },
}

/// Which API's events a stream carries: what counts as content, where usage is, which event
/// ends it, and how the proxy's own error event is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// OpenAI chat (or text) completion chunks, ended by `data: [DONE]`.
    #[default]
    Chat,
    /// Anthropic Messages events, ended by `message_stop` (or `error`).
    Messages,
    /// OpenAI Responses events, ended by `response.completed`, `response.incomplete` or
    /// `response.failed` (or `error`).
    Responses,
}

/// The fields of an Anthropic Messages or OpenAI Responses event the proxy reads.
#[derive(Deserialize)]
struct TypedEvent {
    #[serde(rename = "type", default)]
    kind: String,
    /// Anthropic's `message_start` message.
    #[serde(default)]
    message: Option<EventObject>,
    /// The Responses object of `response.*` lifecycle events.
    #[serde(default)]
    response: Option<EventObject>,
    /// Anthropic's `message_delta` usage.
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct EventObject {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// Frames and inspects one SSE response.
#[derive(Debug)]
pub struct SseObserver {
    /// Whose events these are.
    dialect: Dialect,
    /// Usage as a typed stream reported it so far (Anthropic's comes in two events).
    wire_usage: Option<Box<WireUsageDebug>>,
    /// Drop the usage-only chunk (the proxy injected `include_usage`).
    drop_usage_only: bool,
    /// The most bytes one event may span, its terminating blank line included.
    max_event_bytes: usize,
    /// Bytes of the event being received that arrived in earlier chunks (the event is not yet
    /// terminated by a blank line). Appended to, never rescanned.
    held: BytesMut,
    /// The next byte begins a line (the previous one ended a line, or nothing came yet); a line
    /// ending seen in this state ends the line that is empty, so it ends the event.
    line_start: bool,
    /// The last byte seen was a CR ending a chunk: an LF starting the next chunk belongs to the
    /// same line ending.
    pending_cr: bool,
    /// The pending CR ended an event (so the LF after it belongs to that event).
    cr_ended_event: bool,
    /// The last dispatched event is forwarded (drop mode: so is an LF completing its CRLF).
    last_kept: bool,
    /// An event grew too large: the stream is abandoned.
    failed: bool,
    /// Bytes the framing examined, to test that the work is linear.
    #[cfg(test)]
    scanned: usize,
    /// Usage, once a chunk carried it.
    pub usage: Option<Usage>,
    /// The model the provider reported.
    pub model: Option<String>,
    /// `data: [DONE]` arrived.
    pub done: bool,
    /// A chunk with content (text, tool calls or a finish reason) arrived.
    pub content_seen: bool,
    /// Data events seen.
    pub events: u64,
}

impl Default for SseObserver {
    /// A pass-through observer with the default event bound.
    fn default() -> Self {
        Self::new(false, DEFAULT_MAX_EVENT_BYTES)
    }
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
}

/// What one `feed` forwards in drop mode, built without copying while it is one run of the chunk
/// (or the one event completed from held bytes).
enum Forward {
    Empty,
    /// `chunk[start..end]`.
    Range(usize, usize),
    /// A completed held event.
    Held(Bytes),
    /// Anything else, copied.
    Owned(BytesMut),
}

impl Forward {
    fn into_owned(self, chunk: &Bytes) -> BytesMut {
        match self {
            Forward::Empty => BytesMut::new(),
            Forward::Range(start, end) => BytesMut::from(&chunk[start..end]),
            Forward::Held(bytes) => BytesMut::from(&bytes[..]),
            Forward::Owned(out) => out,
        }
    }

    fn push_range(self, chunk: &Bytes, start: usize, end: usize) -> Self {
        match self {
            Forward::Empty => Forward::Range(start, end),
            Forward::Range(from, to) if to == start => Forward::Range(from, end),
            other => {
                let mut out = other.into_owned(chunk);
                out.extend_from_slice(&chunk[start..end]);
                Forward::Owned(out)
            }
        }
    }

    fn push_held(self, chunk: &Bytes, event: Bytes) -> Self {
        match self {
            Forward::Empty => Forward::Held(event),
            other => {
                let mut out = other.into_owned(chunk);
                out.extend_from_slice(&event);
                Forward::Owned(out)
            }
        }
    }

    fn into_bytes(self, chunk: &Bytes) -> Bytes {
        match self {
            Forward::Empty => Bytes::new(),
            Forward::Range(start, end) => chunk.slice(start..end),
            Forward::Held(bytes) => bytes,
            Forward::Owned(out) => out.freeze(),
        }
    }
}

impl SseObserver {
    /// A new observer; `drop_usage_only` when the proxy added `include_usage` itself;
    /// `max_event_bytes` bounds one event (use [`DEFAULT_MAX_EVENT_BYTES`]).
    pub fn new(drop_usage_only: bool, max_event_bytes: usize) -> Self {
        Self {
            dialect: Dialect::Chat,
            wire_usage: None,
            drop_usage_only,
            max_event_bytes,
            held: BytesMut::new(),
            line_start: true,
            pending_cr: false,
            cr_ended_event: false,
            last_kept: true,
            failed: false,
            #[cfg(test)]
            scanned: 0,
            usage: None,
            model: None,
            done: false,
            content_seen: false,
            events: 0,
        }
    }

    /// The same observer reading `dialect`'s events (a typed stream is never filtered).
    pub fn with_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        if dialect != Dialect::Chat {
            self.drop_usage_only = false;
        }
        self
    }

    /// The event that ends a stream the upstream cut, in the stream's own API, so clients raise
    /// an error instead of mistaking a truncated answer for a complete one.
    pub fn error_event(&self, message: &str, code: &str) -> Bytes {
        let data = match self.dialect {
            Dialect::Chat => return super::error::sse_error_event(message, code),
            Dialect::Messages => serde_json::json!({
                "type": "error",
                "error": { "type": "api_error", "message": message },
            }),
            // The Responses API's `error` event; the nested `error` object is what the OpenAI
            // SDKs raise on.
            Dialect::Responses => serde_json::json!({
                "type": "error",
                "code": code,
                "message": message,
                "param": null,
                "sequence_number": self.events,
                "error": { "type": "server_error", "code": code, "message": message },
            }),
        };
        Bytes::from(format!("event: error\ndata: {data}\n\n"))
    }

    /// Bytes of an incomplete event held until its end arrives.
    pub fn held_bytes(&self) -> usize {
        self.held.len()
    }

    /// Observes one chunk and returns the bytes to forward: the chunk itself in pass-through
    /// mode; in drop mode the complete events it ends, less the usage-only one (whole events
    /// within the chunk are forwarded without a copy). Each byte is scanned once, so the work
    /// is linear in the stream however it is chunked.
    ///
    /// Fails when one event exceeds `max_event_bytes`; the stream should then be aborted (every
    /// later call fails the same way, and nothing more is held).
    pub fn feed(&mut self, chunk: Bytes) -> Result<Bytes, SseError> {
        if self.failed {
            return Err(self.too_large());
        }
        if chunk.is_empty() {
            return Ok(chunk);
        }
        let mut out = Forward::Empty;
        // Where the current event's bytes in this chunk begin, and the next byte to scan.
        let mut start = 0;
        let mut pos = 0;
        if std::mem::take(&mut self.pending_cr) && chunk[0] == b'\n' {
            // The LF completes a CRLF split across chunks: one line ending, not two.
            #[cfg(test)]
            {
                self.scanned += 1;
            }
            pos = 1;
            if self.cr_ended_event {
                // It belongs to the event already dispatched.
                if self.last_kept && self.drop_usage_only {
                    out = out.push_range(&chunk, 0, 1);
                }
                start = 1;
            }
        }
        while let Some(i) = memchr::memchr2(b'\n', b'\r', &chunk[pos..]) {
            #[cfg(test)]
            {
                self.scanned += i + 1;
            }
            if i > 0 {
                self.line_start = false;
            }
            let at = pos + i;
            let mut end = at + 1;
            if chunk[at] == b'\r' {
                match chunk.get(end) {
                    Some(b'\n') => {
                        #[cfg(test)]
                        {
                            self.scanned += 1;
                        }
                        end += 1;
                    }
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
            pos = end;
            if !self.line_start {
                self.line_start = true;
                self.cr_ended_event = false;
                continue;
            }
            // An empty line: the event is complete.
            if self.held.len().saturating_add(end - start) > self.max_event_bytes {
                return Err(self.fail());
            }
            self.cr_ended_event = self.pending_cr;
            let keep = if self.held.is_empty() {
                let keep = self.inspect_event(&chunk[start..end]);
                if keep && self.drop_usage_only {
                    out = out.push_range(&chunk, start, end);
                }
                keep
            } else {
                self.held.extend_from_slice(&chunk[start..end]);
                let event = std::mem::take(&mut self.held).freeze();
                let keep = self.inspect_event(&event);
                if keep && self.drop_usage_only {
                    out = out.push_held(&chunk, event);
                }
                keep
            };
            self.last_kept = keep;
            start = end;
        }
        #[cfg(test)]
        {
            self.scanned += chunk.len() - pos;
        }
        if pos < chunk.len() {
            self.line_start = false;
        }
        if self.held.len().saturating_add(chunk.len() - start) > self.max_event_bytes {
            return Err(self.fail());
        }
        self.held.extend_from_slice(&chunk[start..]);
        Ok(if self.drop_usage_only {
            out.into_bytes(&chunk)
        } else {
            chunk
        })
    }

    fn too_large(&self) -> SseError {
        SseError::EventTooLarge {
            limit: self.max_event_bytes,
        }
    }

    fn fail(&mut self) -> SseError {
        self.failed = true;
        self.held = BytesMut::new();
        self.too_large()
    }

    /// Bytes of an unterminated last event, when the stream ends (forwarded in drop mode,
    /// unless it is the usage-only chunk); the event is inspected like a complete one.
    pub fn finish(&mut self) -> Bytes {
        let rest = std::mem::take(&mut self.held).freeze();
        let keep = rest.is_empty() || self.inspect_event(&rest);
        if self.drop_usage_only && keep {
            rest
        } else {
            Bytes::new()
        }
    }

    /// Reads one event; returns whether the client should receive it.
    fn inspect_event(&mut self, event: &[u8]) -> bool {
        let data = event_data(event);
        let data: &[u8] = &data;
        if data.is_empty() {
            return true;
        }
        if self.dialect != Dialect::Chat {
            self.inspect_typed_event(data);
            return true;
        }
        if data.trim_ascii() == b"[DONE]" {
            self.done = true;
            return true;
        }
        self.events += 1;
        if !self.content_seen {
            self.content_seen = chunk_has_content(data);
        }
        if has_usage_object(data)
            && let Some(facts) = read_response_facts(data)
        {
            if facts.usage.is_some() {
                self.usage = facts.usage;
            }
            if facts.model.is_some() {
                self.model = facts.model;
            }
            if self.drop_usage_only && facts.empty_choices && facts.usage.is_some() {
                return false;
            }
        }
        true
    }
}

impl SseObserver {
    /// Reads one Anthropic Messages or OpenAI Responses event.
    fn inspect_typed_event(&mut self, data: &[u8]) {
        self.events += 1;
        let Ok(event) = serde_json::from_slice::<TypedEvent>(data) else {
            // Not what the API documents: the client gets it and decides; it is not withheld.
            self.content_seen = true;
            return;
        };
        let object = event.message.or(event.response);
        if let Some(object) = object {
            if object.model.is_some() {
                self.model = object.model;
            }
            if let Some(usage) = object.usage {
                self.merge_usage(usage);
            }
        }
        if let Some(usage) = event.usage {
            self.merge_usage(usage);
        }
        let (opening, terminal) = match self.dialect {
            Dialect::Messages => (
                matches!(event.kind.as_str(), "message_start" | "ping"),
                matches!(event.kind.as_str(), "message_stop" | "error"),
            ),
            _ => (
                matches!(
                    event.kind.as_str(),
                    "response.created" | "response.in_progress" | "response.queued"
                ),
                matches!(
                    event.kind.as_str(),
                    "response.completed" | "response.incomplete" | "response.failed" | "error"
                ),
            ),
        };
        self.content_seen |= !opening;
        self.done |= terminal;
    }

    fn merge_usage(&mut self, usage: WireUsage) {
        match &mut self.wire_usage {
            Some(known) => known.0.merge(usage),
            None => self.wire_usage = Some(Box::new(WireUsageDebug(usage))),
        }
        self.usage = self.wire_usage.as_ref().map(|u| u.0.usage());
    }
}

/// Whether a chunk is more than a role announcement: text, a tool call, a finish reason or an error.
fn chunk_has_content(data: &[u8]) -> bool {
    let Ok(chunk) = serde_json::from_slice::<Chunk>(data) else {
        return true;
    };
    chunk.error.is_some()
        || chunk.choices.iter().any(|c| {
            c.finish_reason.is_some()
                || c.text.as_deref().is_some_and(|t| !t.is_empty())
                || c.delta.as_ref().is_some_and(|d| {
                    d.content.as_deref().is_some_and(|t| !t.is_empty())
                        || d.tool_calls.is_some()
                        || d.function_call.is_some()
                        || d.refusal.as_deref().is_some_and(|t| !t.is_empty())
                        || d.reasoning_content
                            .as_deref()
                            .is_some_and(|t| !t.is_empty())
                })
        })
}

/// The lines of an event, split at CRLF, LF or a lone CR; a last unterminated line is included.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = self.rest;
        let Some(at) = memchr::memchr2(b'\n', b'\r', rest) else {
            self.rest = &[];
            return Some(rest);
        };
        let skip = if rest[at] == b'\r' && rest.get(at + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        self.rest = &rest[at + skip..];
        Some(&rest[..at])
    }
}

/// The value of a `data` field line (`data: x`, `data:x`, or a bare `data`), per the spec.
fn data_value(line: &[u8]) -> Option<&[u8]> {
    if line == b"data" {
        return Some(&[]);
    }
    let value = line.strip_prefix(b"data:")?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

/// The `data:` lines of an event joined by newlines, as the SSE spec assembles them; borrowed
/// when the event has one data line (every OpenAI chunk).
fn event_data(event: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut lines = Lines { rest: event }.filter_map(data_value);
    let Some(first) = lines.next() else {
        return std::borrow::Cow::Borrowed(&[]);
    };
    let Some(second) = lines.next() else {
        return std::borrow::Cow::Borrowed(first);
    };
    let mut data = first.to_vec();
    for value in std::iter::once(second).chain(lines) {
        data.push(b'\n');
        data.extend_from_slice(value);
    }
    std::borrow::Cow::Owned(data)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ROLE: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n";
    const HELLO: &str =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"}}],\"usage\":null}\n\n";
    const USAGE: &str = "data: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    fn stream() -> String {
        [ROLE, HELLO, USAGE, DONE].concat()
    }

    /// Feeds `pieces` in order; returns what was forwarded, `finish` included.
    fn run(observer: &mut SseObserver, pieces: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in pieces {
            out.extend_from_slice(&observer.feed(Bytes::copy_from_slice(piece)).unwrap());
        }
        out.extend_from_slice(&observer.finish());
        out
    }

    fn run_chunks(observer: &mut SseObserver, all: &[u8], size: usize) -> Vec<u8> {
        run(observer, &all.chunks(size).collect::<Vec<_>>())
    }

    #[test]
    fn pass_through_mode_forwards_bytes_unchanged_and_reads_usage() {
        let mut observer = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
        let all = stream();
        // Split at every position pair to cross chunk boundaries.
        let out = run_chunks(&mut observer, all.as_bytes(), 7);
        assert_eq!(out, all.as_bytes());
        assert_eq!(observer.usage.unwrap().total, 4);
        assert_eq!(observer.model.as_deref(), Some("m"));
        assert!(observer.done && observer.content_seen);
        assert_eq!(observer.events, 3);
    }

    #[test]
    fn drop_mode_removes_only_the_usage_only_chunk() {
        let mut observer = SseObserver::new(true, DEFAULT_MAX_EVENT_BYTES);
        let out = run_chunks(&mut observer, stream().as_bytes(), 5);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            [ROLE, HELLO, DONE].concat()
        );
        assert_eq!(observer.usage.unwrap().prompt, 3);
    }

    #[test]
    fn a_role_only_chunk_is_not_content() {
        let mut observer = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
        observer.feed(Bytes::from_static(ROLE.as_bytes())).unwrap();
        assert!(!observer.content_seen);
        observer.feed(Bytes::from_static(HELLO.as_bytes())).unwrap();
        assert!(observer.content_seen);
    }

    #[test]
    fn crlf_framing_and_multi_line_data_are_understood() {
        let mut observer = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
        observer
            .feed(Bytes::from_static(
                b"event: x\r\ndata: [DO\r\n\r\ndata: [DONE]\r\n\r\n",
            ))
            .unwrap();
        assert!(observer.done);
        let mut observer = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
        observer
            .feed(Bytes::from_static(
                b"data: {\"choices\":\ndata: [{\"text\":\"a\"}]}\n\n",
            ))
            .unwrap();
        assert!(observer.content_seen);
    }

    #[test]
    fn whole_events_are_forwarded_without_a_copy_in_drop_mode() {
        let mut observer = SseObserver::new(true, DEFAULT_MAX_EVENT_BYTES);
        let chunk = Bytes::from([ROLE, HELLO].concat());
        let out = observer.feed(chunk.clone()).unwrap();
        assert_eq!(out, chunk);
        assert_eq!(out.as_ptr(), chunk.as_ptr());
    }

    /// Every event ended by a lone CR: the usage chunk is read and `[DONE]` seen, however the
    /// stream is cut; in pass-through the bytes are unchanged.
    #[test]
    fn cr_only_line_endings_frame_events() {
        let all = stream().replace('\n', "\r");
        for size in [1, 2, 3, 7, 64, all.len()] {
            let mut observer = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
            let out = run_chunks(&mut observer, all.as_bytes(), size);
            assert_eq!(out, all.as_bytes());
            assert_eq!(observer.usage.unwrap().total, 4, "chunk size {size}");
            assert!(observer.done && observer.content_seen);
            assert_eq!(observer.events, 3);
            assert_eq!(observer.held_bytes(), 0);
        }
    }

    #[test]
    fn crlf_line_endings_frame_events() {
        let all = stream().replace('\n', "\r\n");
        for size in [1, 2, 3, 7, 64, all.len()] {
            let mut observer = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
            let out = run_chunks(&mut observer, all.as_bytes(), size);
            assert_eq!(out, all.as_bytes());
            assert_eq!(observer.usage.unwrap().total, 4);
            assert!(observer.done && observer.content_seen);
            assert_eq!(observer.events, 3);
        }
    }

    #[test]
    fn mixed_line_endings_frame_events() {
        let all = concat!(
            ": keep-alive\r",
            "event: message\r\n",
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n",
            "\r",
            "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\r",
            "\r\n",
            "data: {\"model\":\"m\",\"choices\":[],\r",
            "data: \"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\r\n",
            "\n",
            "data: [DONE]\n",
            "\r"
        );
        for size in 1..=all.len() {
            let mut observer = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
            let out = run_chunks(&mut observer, all.as_bytes(), size);
            assert_eq!(out, all.as_bytes());
            assert_eq!(observer.usage.unwrap().total, 5, "chunk size {size}");
            assert!(observer.done && observer.content_seen);
            assert_eq!(observer.events, 3);
        }
    }

    /// A CR ending one chunk and an LF starting the next are one line ending: `data: x\r` +
    /// `\ndata: y\n\n` is one event with two data lines, not an event ended by an empty line.
    #[test]
    fn a_crlf_split_across_chunks_is_one_line_ending() {
        let mut observer = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
        observer.feed(Bytes::from_static(b"data: [DO\r")).unwrap();
        observer.feed(Bytes::from_static(b"\ndata: NE]\n")).unwrap();
        assert!(!observer.done);
        observer.feed(Bytes::from_static(b"\n")).unwrap();
        assert!(!observer.done, "the data is \"[DO\\nNE]\", not [DONE]");
        assert_eq!(observer.events, 1);

        // The blank line's CR ends the event at once; the LF after it is not another blank line.
        let mut observer = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
        observer
            .feed(Bytes::from_static(b"data: [DONE]\r\r"))
            .unwrap();
        assert!(
            observer.done,
            "an event ended by CR is dispatched without waiting"
        );
        observer.feed(Bytes::from_static(b"\n")).unwrap();
        observer.feed(Bytes::from_static(b"data: a\r")).unwrap();
        assert_eq!(observer.held_bytes(), 8);
        observer.feed(Bytes::from_static(b"\n")).unwrap();
        assert_eq!(observer.held_bytes(), 9);
        observer.feed(Bytes::from_static(b"\r")).unwrap();
        assert_eq!(observer.held_bytes(), 0);
        assert_eq!(observer.events, 1);
    }

    #[test]
    fn drop_mode_with_cr_endings_removes_exactly_the_usage_chunk() {
        for (eol, blank) in [("\r", "\r"), ("\r", "\r\n"), ("\r\n", "\r\n"), ("\n", "\r")] {
            let event = |data: &str| format!("data: {data}{eol}{blank}");
            let role = event(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#);
            let hello = event(r#"{"choices":[{"delta":{"content":"hello"}}],"usage":null}"#);
            let usage = event(
                r#"{"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
            );
            let done = event("[DONE]");
            let all = [&role, &hello, &usage, &done].map(String::as_str).concat();
            let expected = [&role, &hello, &done].map(String::as_str).concat();
            for size in 1..=all.len() {
                let mut observer = SseObserver::new(true, DEFAULT_MAX_EVENT_BYTES);
                let out = run_chunks(&mut observer, all.as_bytes(), size);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    expected,
                    "endings {eol:?}/{blank:?}, chunk size {size}"
                );
                assert_eq!(observer.usage.unwrap().total, 4);
                assert!(observer.done && observer.content_seen);
            }
        }
    }

    #[test]
    fn an_event_over_the_limit_fails_the_stream() {
        let mut observer = SseObserver::new(false, 1024);
        let mut result = Ok(Bytes::new());
        let mut fed = 0;
        while result.is_ok() && fed < 1 << 20 {
            result = observer.feed(Bytes::from_static(&[b'a'; 100]));
            fed += 100;
            assert!(observer.held_bytes() <= 1024);
        }
        assert_eq!(result, Err(SseError::EventTooLarge { limit: 1024 }));
        assert!(fed <= 1100);
        assert_eq!(observer.held_bytes(), 0);
        // It stays failed.
        assert!(observer.feed(Bytes::from_static(b"\n\n")).is_err());
        assert!(observer.finish().is_empty());

        // A complete event over the limit within one chunk fails too.
        let mut observer = SseObserver::new(false, 16);
        let long = Bytes::from_static(b"data: 0123456789abcdef\n\n");
        assert!(observer.feed(long).is_err());
    }

    #[test]
    fn a_large_event_within_the_limit_is_observed() {
        let text = "x".repeat(3 << 20);
        let event = format!(
            "data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}],\"usage\":{{\"prompt_tokens\":1,\"completion_tokens\":2}}}}\n\n"
        );
        assert!(event.len() < DEFAULT_MAX_EVENT_BYTES);
        let all = [event.as_str(), DONE].concat();
        let mut observer = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
        let out = run_chunks(&mut observer, all.as_bytes(), 16 << 10);
        assert_eq!(out.len(), all.len());
        assert!(observer.content_seen && observer.done);
        assert_eq!(observer.usage.unwrap().total, 3);
        // Exactly at the limit is fine; one byte more is not.
        let mut observer = SseObserver::new(false, event.len());
        assert!(observer.feed(Bytes::from(event.clone())).is_ok());
        let mut observer = SseObserver::new(false, event.len() - 1);
        assert!(observer.feed(Bytes::from(event)).is_err());
    }

    /// One 1 MiB event fed a byte at a time: every byte is scanned once, not once per chunk.
    #[test]
    fn byte_at_a_time_framing_is_linear() {
        let text = "y".repeat(1 << 20);
        let event = format!("data: {{\"choices\":[{{\"text\":\"{text}\"}}]}}\r\n\r\n");
        let mut observer = SseObserver::new(true, DEFAULT_MAX_EVENT_BYTES);
        let mut out = Vec::new();
        for byte in event.as_bytes().chunks(1) {
            out.extend_from_slice(&observer.feed(Bytes::copy_from_slice(byte)).unwrap());
        }
        assert_eq!(out, event.as_bytes());
        assert!(observer.content_seen);
        assert!(
            observer.scanned <= 2 * event.len(),
            "scanned {} bytes for {}",
            observer.scanned,
            event.len()
        );
        assert!(observer.held.capacity() <= 4 * event.len());
    }

    #[test]
    fn event_data_splits_every_line_ending() {
        assert_eq!(
            &event_data(b"data: a\rdata:b\r\ndata\ndata: c")[..],
            b"a\nb\n\nc"
        );
        assert_eq!(&event_data(b"event: x\r: c\rdata: y\r\r")[..], b"y");
        assert_eq!(&event_data(b"id: 1\n\n")[..], b"");
    }

    /// One line of a generated stream, before its ending is chosen.
    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(r#"data: {"choices":[{"delta":{"role":"assistant"}}]}"#.to_string()),
            "[a-z ]{0,12}".prop_map(|t| format!(
                r#"data: {{"choices":[{{"delta":{{"content":"{t}"}}}}],"usage":null}}"#
            )),
            (0u32..1000, 0u32..1000).prop_map(|(p, c)| format!(
                r#"data: {{"model":"m{p}","choices":[],"usage":{{"prompt_tokens":{p},"completion_tokens":{c}}}}}"#
            )),
            Just(": ping".to_string()),
            Just("event: message".to_string()),
            Just("id: 7".to_string()),
            Just("data: [DONE]".to_string()),
        ]
    }

    /// A valid stream: events of 1 to 3 lines, each line and each terminating blank line ended
    /// by a random CR, LF or CRLF (a CR is never followed by an LF meant as a blank line, which
    /// would make a CRLF).
    fn valid_stream() -> impl Strategy<Value = Vec<u8>> {
        let eol = prop_oneof![Just("\n"), Just("\r"), Just("\r\n")];
        let event = prop::collection::vec((line(), eol.clone()), 1..4);
        prop::collection::vec((event, eol), 0..12).prop_map(|events| {
            let mut out = String::new();
            for (lines, blank) in events {
                for (line, eol) in lines {
                    out.push_str(&line);
                    out.push_str(eol);
                }
                out.push_str(if out.ends_with('\r') && blank == "\n" {
                    "\r"
                } else {
                    blank
                });
            }
            out.into_bytes()
        })
    }

    fn cut(stream: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut from = 0;
        for at in points.into_iter().chain([stream.len()]) {
            pieces.push(stream[from..at].to_vec());
            from = at;
        }
        pieces
    }

    fn facts(o: &SseObserver) -> (Option<Usage>, Option<String>, bool, bool, u64) {
        (o.usage, o.model.clone(), o.done, o.content_seen, o.events)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

        #[test]
        fn any_chunking_gives_the_same_bytes_and_facts(
            stream in valid_stream(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..24),
        ) {
            let pieces = cut(&stream, &cuts);
            let pieces: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();

            let mut whole = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
            prop_assert_eq!(run(&mut whole, &[&stream]), stream.clone());
            let mut chunked = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
            prop_assert_eq!(run(&mut chunked, &pieces), stream.clone());
            prop_assert_eq!(facts(&chunked), facts(&whole));
            prop_assert_eq!(chunked.held_bytes(), 0);

            // Drop mode forwards the same bytes however the stream is cut, and never more.
            let mut whole_drop = SseObserver::new(true, DEFAULT_MAX_EVENT_BYTES);
            let dropped = run(&mut whole_drop, &[&stream]);
            let mut chunked_drop = SseObserver::new(true, DEFAULT_MAX_EVENT_BYTES);
            prop_assert_eq!(run(&mut chunked_drop, &pieces), dropped.clone());
            prop_assert_eq!(facts(&chunked_drop), facts(&whole));
            prop_assert!(dropped.len() <= stream.len());
            // What drop mode forwards is itself a stream with the same content.
            let mut reread = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
            run(&mut reread, &[&dropped]);
            prop_assert_eq!(reread.done, whole.done);
            prop_assert_eq!(reread.content_seen, whole.content_seen);
        }

        #[test]
        fn scanning_is_linear_in_the_stream(
            stream in valid_stream(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..64),
        ) {
            let pieces = cut(&stream, &cuts);
            let pieces: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
            let mut observer = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
            run(&mut observer, &pieces);
            prop_assert!(observer.scanned <= stream.len());
        }
    }
}
