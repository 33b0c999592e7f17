//! Watching a server-sent-event stream on its way to the client: frames events across chunk
//! boundaries, reads usage from whichever chunk carries it, notices `[DONE]` and the first chunk
//! with content, and, only when the proxy itself asked for usage, drops the usage-only chunk.
//!
//! In pass-through mode the bytes the client receives are exactly the upstream's.

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::usage::{Usage, has_usage_object, read_response_facts};

/// Frames and inspects one SSE response.
#[derive(Debug, Default)]
pub struct SseObserver {
    /// Drop the usage-only chunk (the proxy injected `include_usage`).
    drop_usage_only: bool,
    /// Bytes of the event being received (not yet terminated by a blank line).
    held: BytesMut,
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

impl SseObserver {
    /// A new observer; `drop_usage_only` when the proxy added `include_usage` itself.
    pub fn new(drop_usage_only: bool) -> Self {
        Self {
            drop_usage_only,
            ..Self::default()
        }
    }

    /// Observes one chunk and returns the bytes to forward.
    pub fn feed(&mut self, chunk: Bytes) -> Bytes {
        if !self.held.is_empty() {
            // The chunk completes an event begun earlier: frame from the held bytes.
            self.held.extend_from_slice(&chunk);
            let held = std::mem::take(&mut self.held).freeze();
            let (forward, complete) = self.frame(&held);
            self.held.extend_from_slice(&held[complete..]);
            return if self.drop_usage_only { forward } else { chunk };
        }
        // The usual case, an upstream writing whole events: inspected in place, forwarded without a copy.
        let (forward, complete) = self.frame(&chunk);
        self.held.extend_from_slice(&chunk[complete..]);
        if self.drop_usage_only { forward } else { chunk }
    }

    /// Inspects the complete events at the start of `bytes`; returns what to forward of them in
    /// drop mode and how many bytes they span.
    fn frame(&mut self, bytes: &Bytes) -> (Bytes, usize) {
        let mut pos = 0;
        let mut rebuilt: Option<BytesMut> = None;
        while let Some(len) = event_end(&bytes[pos..]) {
            let keep = self.inspect_event(&bytes[pos..pos + len]);
            match (&mut rebuilt, keep) {
                (Some(out), true) => out.extend_from_slice(&bytes[pos..pos + len]),
                (None, false) => rebuilt = Some(BytesMut::from(&bytes[..pos])),
                _ => {}
            }
            pos += len;
        }
        let forward = match rebuilt {
            Some(out) => out.freeze(),
            None => bytes.slice(..pos),
        };
        (forward, pos)
    }

    /// Bytes of an unterminated last event, when the stream ends (forwarded in drop mode).
    pub fn finish(&mut self) -> Bytes {
        let rest = std::mem::take(&mut self.held);
        if !rest.is_empty() {
            self.inspect_event(&rest);
        }
        if self.drop_usage_only {
            rest.freeze()
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

/// The offset just past the blank line ending the first complete event, if any.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &buf[from..]) {
        let at = from + i;
        match buf.get(at + 1) {
            Some(b'\n') => return Some(at + 2),
            Some(b'\r') if buf.get(at + 2) == Some(&b'\n') => return Some(at + 3),
            _ => from = at + 1,
        }
    }
    None
}

/// The `data:` lines of an event joined by newlines, as the SSE spec assembles them; borrowed
/// when the event has one data line (every OpenAI chunk).
fn event_data(event: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut lines = event
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter_map(|line| line.strip_prefix(b"data:"))
        .map(|value| value.strip_prefix(b" ").unwrap_or(value));
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
mod tests {
    use super::*;

    const ROLE: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n";
    const HELLO: &str =
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello\"}}],\"usage\":null}\n\n";
    const USAGE: &str = "data: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    fn stream() -> String {
        [ROLE, HELLO, USAGE, DONE].concat()
    }

    #[test]
    fn pass_through_mode_forwards_bytes_unchanged_and_reads_usage() {
        let mut observer = SseObserver::new(false);
        let all = stream();
        let mut out = Vec::new();
        // Split at every position pair to cross chunk boundaries.
        for piece in all.as_bytes().chunks(7) {
            out.extend_from_slice(&observer.feed(Bytes::copy_from_slice(piece)));
        }
        out.extend_from_slice(&observer.finish());
        assert_eq!(out, all.as_bytes());
        assert_eq!(observer.usage.unwrap().total, 4);
        assert!(observer.done && observer.content_seen);
        assert_eq!(observer.events, 3);
    }

    #[test]
    fn drop_mode_removes_only_the_usage_only_chunk() {
        let mut observer = SseObserver::new(true);
        let mut out = Vec::new();
        for piece in stream().as_bytes().chunks(5) {
            out.extend_from_slice(&observer.feed(Bytes::copy_from_slice(piece)));
        }
        out.extend_from_slice(&observer.finish());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            [ROLE, HELLO, DONE].concat()
        );
        assert_eq!(observer.usage.unwrap().prompt, 3);
    }

    #[test]
    fn a_role_only_chunk_is_not_content() {
        let mut observer = SseObserver::new(false);
        observer.feed(Bytes::from_static(ROLE.as_bytes()));
        assert!(!observer.content_seen);
        observer.feed(Bytes::from_static(HELLO.as_bytes()));
        assert!(observer.content_seen);
    }

    #[test]
    fn crlf_framing_and_multi_line_data_are_understood() {
        let mut observer = SseObserver::new(false);
        observer.feed(Bytes::from_static(
            b"event: x\r\ndata: [DO\r\n\r\ndata: [DONE]\r\n\r\n",
        ));
        assert!(observer.done);
        let mut observer = SseObserver::new(false);
        observer.feed(Bytes::from_static(
            b"data: {\"choices\":\ndata: [{\"text\":\"a\"}]}\n\n",
        ));
        assert!(observer.content_seen);
    }
}
