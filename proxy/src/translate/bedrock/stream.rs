//! A ConverseStream answer — AWS's binary event stream (`application/vnd.amazon.eventstream`),
//! not SSE — as OpenAI chat completion chunks, as it arrives
//! (<https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html>).
//!
//! Each frame is a message whose `:message-type` header says what it is: an `event` (its
//! `:event-type` names it, its payload is the event's JSON), an `exception` (`:exception-type`,
//! the message in the payload) or an `error` (`:error-code`, `:error-message`). `messageStart`
//! opens the assistant's turn, text deltas become `content` deltas, `toolUse` block starts and
//! their partial input JSON become `tool_calls` deltas, `messageStop` sends the finish reason.
//! Bedrock sends the usage (`metadata`) after `messageStop`: the usage chunk and `[DONE]` go out
//! once both have come, whichever is last. An exception or error frame, or an end before
//! `messageStop`, is a broken stream (the proxy then ends the client's stream with an error).
//!
//! [`StreamTranslator::finish`] at the end of the body: nothing when `[DONE]` went out; an
//! error ([`StreamError::Truncated`]) without `messageStop`; and after `messageStop` without
//! `metadata` (the stream cut between the two), `[DONE]` with no usage chunk — the answer is
//! whole, and a usage Bedrock never sent is left unknown rather than reported as zero tokens.
//!
//! Frames are bounded: a frame's length is read from its first 4 bytes and a frame larger than
//! the limit is refused before any more of it is held.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::response::{ConverseUsage, completion_id, finish_reason};
use crate::translate::anthropic::stream::MAX_TOOL_CALLS;
use crate::translate::{DONE, StreamError, write_chunk, write_data};

/// The smallest frame: the prelude (total length, headers length, prelude CRC) and the
/// message CRC.
const MIN_FRAME: usize = 16;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart {
    #[serde(default)]
    content_block_index: u64,
    #[serde(default)]
    start: Option<Start>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Start {
    #[serde(default)]
    tool_use: Option<ToolUseStart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart {
    tool_use_id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta {
    #[serde(default)]
    content_block_index: u64,
    #[serde(default)]
    delta: Option<Delta>,
}

/// A delta: text, a piece of a tool call's input, or reasoning (left out, as Anthropic's
/// thinking is).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delta {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ToolUseDelta>,
}

#[derive(Deserialize)]
struct ToolUseDelta {
    #[serde(default)]
    input: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<ConverseUsage>,
}

/// The translation state of one stream.
pub struct StreamTranslator {
    max_event: usize,
    /// The frame being read: at most `max_event` bytes.
    frame: BytesMut,
    id: String,
    model: String,
    created: u64,
    /// The role chunk went out.
    started: bool,
    /// Converse content block index → OpenAI tool call index.
    tool_calls: Vec<(u64, u64)>,
    /// `messageStop` came (and the finish chunk went out).
    stopped: bool,
    /// `metadata` came, with its usage if it had one.
    metadata: Option<Option<ConverseUsage>>,
    /// `[DONE]` went out: nothing more is read.
    done: bool,
}

impl StreamTranslator {
    /// A translator for a stream of `model` (Converse names none) created at `created` (Unix
    /// seconds), frames of at most `max_event` bytes.
    pub fn new(model: &str, created: u64, max_event: usize) -> Self {
        Self {
            max_event,
            frame: BytesMut::new(),
            id: completion_id(created),
            model: model.to_string(),
            created,
            started: false,
            tool_calls: Vec::new(),
            stopped: false,
            metadata: None,
            done: false,
        }
    }

    /// The OpenAI SSE bytes for the next piece of the provider's stream (often none). Each
    /// frame is handled as it completes, so the first failure is the same however the bytes
    /// are split.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<Bytes, StreamError> {
        let mut out = BytesMut::new();
        while !bytes.is_empty() && !self.done {
            // The length prefix first, then the rest of the frame it announces.
            let want = self.frame_len()?.unwrap_or(4);
            let take = want.saturating_sub(self.frame.len()).min(bytes.len());
            self.frame.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if let Some(total) = self.frame_len()?
                && self.frame.len() == total
            {
                let message = self.decode()?;
                self.message(&message, &mut out)?;
            }
        }
        Ok(out.freeze())
    }

    /// The provider's stream ended: the last bytes, or an error when it ended before
    /// `messageStop` (see the module's note).
    pub fn finish(&mut self) -> Result<Bytes, StreamError> {
        if self.done {
            return Ok(Bytes::new());
        }
        if !self.stopped {
            return Err(StreamError::Truncated);
        }
        let mut out = BytesMut::new();
        self.end(&mut out);
        Ok(out.freeze())
    }

    /// The total length of the frame being read, once its first 4 bytes are in: refused when
    /// over the limit, before the frame is held, or too short to be a frame.
    fn frame_len(&self) -> Result<Option<usize>, StreamError> {
        let &[a, b, c, d, ..] = &self.frame[..] else {
            return Ok(None);
        };
        let total = u32::from_be_bytes([a, b, c, d]) as usize;
        if total > self.max_event {
            return Err(StreamError::EventTooLarge(self.max_event));
        }
        if total < MIN_FRAME {
            return Err(StreamError::Malformed);
        }
        Ok(Some(total))
    }

    /// The whole frame held, decoded (its CRCs checked) and taken out of the buffer.
    fn decode(&mut self) -> Result<Message, StreamError> {
        // A decoder per frame: it is handed whole frames, so it keeps no state between them.
        let decoded = MessageFrameDecoder::new().decode_frame(&self.frame[..]);
        // The buffer's allocation is kept for the next frame.
        self.frame.clear();
        match decoded {
            Ok(DecodedFrame::Complete(message)) => Ok(message),
            Ok(DecodedFrame::Incomplete) | Err(_) => Err(StreamError::Malformed),
        }
    }

    /// One decoded frame.
    fn message(&mut self, message: &Message, out: &mut BytesMut) -> Result<(), StreamError> {
        match header(message, ":message-type") {
            Some("event") => {
                let kind = header(message, ":event-type").ok_or(StreamError::Malformed)?;
                self.event(kind, message.payload(), out)
            }
            Some("exception") => Err(StreamError::Provider {
                kind: header(message, ":exception-type")
                    .unwrap_or("exception")
                    .to_string(),
                message: exception_message(message.payload()),
            }),
            Some("error") => Err(StreamError::Provider {
                kind: header(message, ":error-code")
                    .unwrap_or("error")
                    .to_string(),
                message: header(message, ":error-message")
                    .unwrap_or_default()
                    .to_string(),
            }),
            _ => Err(StreamError::Malformed),
        }
    }

    /// One event: its type and JSON payload.
    fn event(&mut self, kind: &str, payload: &[u8], out: &mut BytesMut) -> Result<(), StreamError> {
        match kind {
            "messageStart" => {
                parse::<IgnoredAny>(payload)?;
                self.start(out);
            }
            "contentBlockStart" => {
                let event: BlockStart = parse(payload)?;
                if let Some(ToolUseStart { tool_use_id, name }) =
                    event.start.and_then(|s| s.tool_use)
                {
                    self.open_tool_call(event.content_block_index, tool_use_id, name, out)?;
                }
            }
            "contentBlockDelta" => {
                let event: BlockDelta = parse(payload)?;
                let Some(delta) = event.delta else {
                    return Ok(());
                };
                if let Some(text) = delta.text.filter(|t| !t.is_empty()) {
                    self.content(json!({ "content": text }), out);
                }
                if let Some(input) = delta.tool_use.map(|t| t.input)
                    && let Some(&(_, call)) = self
                        .tool_calls
                        .iter()
                        .find(|(i, _)| *i == event.content_block_index)
                {
                    self.content(
                        json!({ "tool_calls": [{ "index": call, "function": { "arguments": input } }] }),
                        out,
                    );
                }
            }
            "contentBlockStop" => {
                parse::<IgnoredAny>(payload)?;
            }
            "messageStop" => {
                let event: MessageStop = parse(payload)?;
                if !self.stopped {
                    self.start(out);
                    self.stopped = true;
                    let finish = finish_reason(event.stop_reason.as_deref());
                    self.chunk(out, json!({}), Some(finish));
                    if self.metadata.is_some() {
                        self.end(out);
                    }
                }
            }
            "metadata" => {
                let event: Metadata = parse(payload)?;
                self.metadata = Some(event.usage);
                if self.stopped {
                    self.end(out);
                }
            }
            // An event Bedrock adds later carries nothing this translation knows.
            _ => {}
        }
        Ok(())
    }

    /// The role chunk, once, before anything else.
    fn start(&mut self, out: &mut BytesMut) {
        if !self.started {
            self.started = true;
            self.chunk(out, json!({ "role": "assistant", "content": "" }), None);
        }
    }

    /// A content delta of the answer; ignored once the finish chunk went out.
    fn content(&mut self, delta: Value, out: &mut BytesMut) {
        if !self.stopped {
            self.start(out);
            self.chunk(out, delta, None);
        }
    }

    fn open_tool_call(
        &mut self,
        index: u64,
        id: String,
        name: String,
        out: &mut BytesMut,
    ) -> Result<(), StreamError> {
        if self.stopped {
            return Ok(());
        }
        // Each call's block index is kept for its deltas: a hostile stream must not grow that
        // list (and the lookup per delta) without bound.
        if self.tool_calls.len() >= MAX_TOOL_CALLS {
            return Err(StreamError::TooManyToolCalls(MAX_TOOL_CALLS));
        }
        let call = self.tool_calls.len() as u64;
        self.tool_calls.push((index, call));
        self.content(
            json!({ "tool_calls": [{
                "index": call, "id": id, "type": "function",
                "function": { "name": name, "arguments": "" },
            }] }),
            out,
        );
        Ok(())
    }

    /// The usage chunk (when Bedrock sent a usage) and `[DONE]`.
    fn end(&mut self, out: &mut BytesMut) {
        self.done = true;
        if let Some(Some(usage)) = self.metadata {
            let usage = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": [], "usage": usage.to_openai(),
            });
            write_data(out, &usage);
        }
        out.put_slice(DONE);
    }

    fn chunk(&self, out: &mut BytesMut, delta: Value, finish: Option<&str>) {
        write_chunk(out, &self.id, &self.model, self.created, delta, finish);
    }
}

/// The string value of `message`'s header `name`, if it has one.
fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

fn parse<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Result<T, StreamError> {
    serde_json::from_slice(payload).map_err(|_| StreamError::Malformed)
}

/// An exception's message: its payload's `message` (or `Message`), else the payload's first
/// KiB as text.
fn exception_message(payload: &[u8]) -> String {
    let parsed = serde_json::from_slice::<Value>(payload).ok();
    parsed
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("Message")))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&payload[..payload.len().min(1024)]).into_owned()
        })
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue};

    use super::*;
    use crate::translate::tests::chunks;

    /// One frame with these string headers and payload.
    fn frame(headers: &[(&'static str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut message = Message::new(payload.to_vec());
        for (name, value) in headers {
            message = message.add_header(Header::new(
                *name,
                HeaderValue::String(value.to_string().into()),
            ));
        }
        let mut out = Vec::new();
        write_message_to(&message, &mut out).unwrap();
        out
    }

    /// An event frame, as Bedrock sends them.
    fn event(kind: &str, payload: Value) -> Vec<u8> {
        frame(
            &[
                (":event-type", kind),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload.to_string().as_bytes(),
        )
    }

    fn exception(kind: &str, message: &str) -> Vec<u8> {
        frame(
            &[
                (":exception-type", kind),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            json!({ "message": message }).to_string().as_bytes(),
        )
    }

    /// A text answer then a tool call, as ConverseStream sends it (`p` is Bedrock's padding).
    fn stream() -> Vec<u8> {
        [
            event("messageStart", json!({"p": "abcd", "role": "assistant"})),
            event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "Hello"}, "p": "ab"})),
            event("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": " there"}})),
            event("contentBlockStop", json!({"contentBlockIndex": 0})),
            event("contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_1", "name": "weather"}}})),
            event("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"city\":"}}})),
            event("contentBlockDelta", json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "\"Paris\"}"}}})),
            event("contentBlockDelta", json!({"contentBlockIndex": 2, "delta": {"reasoningContent": {"text": "hmm"}}})),
            event("contentBlockStop", json!({"contentBlockIndex": 1})),
            event("messageStop", json!({"stopReason": "tool_use"})),
            event("metadata", json!({"usage": {"inputTokens": 12, "outputTokens": 9, "totalTokens": 24, "cacheReadInputTokens": 3}, "metrics": {"latencyMs": 412}})),
        ]
        .concat()
    }

    fn feed_all(t: &mut StreamTranslator, pieces: &[&[u8]]) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::new();
        for piece in pieces {
            out.extend_from_slice(&t.feed(piece)?);
        }
        Ok(out)
    }

    #[test]
    fn every_event_type_becomes_openai_chunks_whatever_the_split() {
        let stream = stream();
        let mut t = StreamTranslator::new("claude-on-bedrock", 5, 1 << 16);
        let whole = feed_all(&mut t, &[&stream]).unwrap();
        assert!(t.finish().unwrap().is_empty());
        // Byte by byte, and in random splits, give the same output.
        let mut t = StreamTranslator::new("claude-on-bedrock", 5, 1 << 16);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(feed_all(&mut t, &bytes).unwrap(), whole);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..50 {
            let mut pieces = Vec::new();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at(rng.usize(0..=rest.len().min(64)));
                pieces.push(piece);
                rest = tail;
            }
            let mut t = StreamTranslator::new("claude-on-bedrock", 5, 1 << 16);
            assert_eq!(feed_all(&mut t, &pieces).unwrap(), whole);
            assert!(t.finish().unwrap().is_empty());
        }
        assert!(whole.ends_with(b"data: [DONE]\n\n"));
        let chunks = chunks(&whole);
        assert_eq!(
            chunks[0],
            json!({"id": "chatcmpl-bedrock-5", "object": "chat.completion.chunk", "created": 5,
                "model": "claude-on-bedrock", "choices": [{"index": 0,
                    "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}]})
        );
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello there");
        assert_eq!(
            chunks[3]["choices"][0]["delta"]["tool_calls"],
            json!([{"index": 0, "id": "tooluse_1", "type": "function", "function": {"name": "weather", "arguments": ""}}])
        );
        let arguments: String = chunks
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str()
            })
            .collect();
        assert_eq!(arguments, "{\"city\":\"Paris\"}");
        assert_eq!(chunks.len(), 8);
        let finish = &chunks[6];
        assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        let usage = &chunks[7];
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 15, "completion_tokens": 9, "total_tokens": 24, "prompt_tokens_details": {"cached_tokens": 3}})
        );
    }

    #[test]
    fn the_end_comes_when_both_message_stop_and_metadata_came() {
        let start = event("messageStart", json!({"role": "assistant"}));
        let text = event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
        );
        let stop = event("messageStop", json!({"stopReason": "max_tokens"}));
        let metadata = event(
            "metadata",
            json!({"usage": {"inputTokens": 2, "outputTokens": 1}}),
        );
        // Stop, then metadata: the usage chunk and [DONE] at metadata.
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        let out = t
            .feed(&[start.clone(), text.clone(), stop.clone()].concat())
            .unwrap();
        assert!(!out.ends_with(DONE));
        assert_eq!(
            chunks(&out).last().unwrap()["choices"][0]["finish_reason"],
            "length"
        );
        let out = t.feed(&metadata).unwrap();
        assert!(out.ends_with(DONE));
        assert_eq!(chunks(&out)[0]["usage"]["total_tokens"], 3);
        // Anything after [DONE] is not read.
        assert!(t.feed(b"garbage after the end").unwrap().is_empty());
        assert!(t.finish().unwrap().is_empty());
        // Metadata first: the end at messageStop.
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        let out = t
            .feed(&[start.clone(), metadata, text.clone(), stop.clone()].concat())
            .unwrap();
        assert!(out.ends_with(DONE));
        assert_eq!(chunks(&out).last().unwrap()["usage"]["prompt_tokens"], 2);
        // No metadata at all: [DONE] at the end of the body, with no made-up usage.
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        t.feed(&[start.clone(), text.clone(), stop].concat())
            .unwrap();
        assert_eq!(&t.finish().unwrap()[..], DONE);
        // No messageStop: a cut.
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        t.feed(&[start, text].concat()).unwrap();
        assert_eq!(t.finish().unwrap_err(), StreamError::Truncated);
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        assert_eq!(t.finish().unwrap_err(), StreamError::Truncated);
    }

    #[test]
    fn a_stream_cut_mid_frame_is_truncated() {
        let stream = stream();
        let metadata = event(
            "metadata",
            json!({"usage": {"inputTokens": 12, "outputTokens": 9, "totalTokens": 24, "cacheReadInputTokens": 3}, "metrics": {"latencyMs": 412}}),
        );
        let stop = event("messageStop", json!({"stopReason": "tool_use"}));
        // Cut in the middle of the messageStop frame.
        let cut = stream.len() - metadata.len() - stop.len() / 2;
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        let out = t.feed(&stream[..cut]).unwrap();
        assert!(!out.is_empty());
        assert_eq!(t.finish().unwrap_err(), StreamError::Truncated);
    }

    #[test]
    fn exception_and_error_frames_break_the_stream() {
        let start = event("messageStart", json!({"role": "assistant"}));
        for (kind, message) in [
            ("throttlingException", "Too many tokens"),
            ("modelStreamErrorException", "The model failed"),
            ("internalServerException", "Internal error"),
            ("serviceUnavailableException", "Unavailable"),
            ("validationException", "Bad input"),
        ] {
            let mut t = StreamTranslator::new("m", 0, 1 << 16);
            let error = t
                .feed(&[start.clone(), exception(kind, message)].concat())
                .unwrap_err();
            assert_eq!(
                error,
                StreamError::Provider {
                    kind: kind.into(),
                    message: message.into()
                }
            );
        }
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        let error = frame(
            &[
                (":message-type", "error"),
                (":error-code", "InternalFailure"),
                (":error-message", "boom"),
            ],
            b"",
        );
        assert_eq!(
            t.feed(&error).unwrap_err(),
            StreamError::Provider {
                kind: "InternalFailure".into(),
                message: "boom".into()
            }
        );
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        let bare = frame(&[(":message-type", "exception")], b"not json");
        assert_eq!(
            t.feed(&bare).unwrap_err(),
            StreamError::Provider {
                kind: "exception".into(),
                message: "not json".into()
            }
        );
    }

    #[test]
    fn frames_are_bounded_before_they_are_held() {
        let big = event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "x".repeat(500)}}),
        );
        let mut t = StreamTranslator::new("m", 0, 256);
        // The length prefix alone is enough to refuse the frame.
        assert_eq!(
            t.feed(&big[..4]).unwrap_err(),
            StreamError::EventTooLarge(256)
        );
        assert!(t.frame.len() <= 4);
        let mut t = StreamTranslator::new("m", 0, big.len());
        assert_eq!(chunks(&t.feed(&big).unwrap()).len(), 2);
        // A length of 4 GiB is refused as soon as it is read.
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        assert_eq!(
            t.feed(&[0xff; 4]).unwrap_err(),
            StreamError::EventTooLarge(1 << 16)
        );
    }

    #[test]
    fn garbage_and_bad_frames_are_malformed() {
        let good = event("messageStart", json!({"role": "assistant"}));
        // A corrupted byte fails the CRC.
        let mut corrupted = good.clone();
        let at = corrupted.len() - 6;
        corrupted[at] ^= 0x20;
        // A length below the smallest frame.
        let short = [0, 0, 0, 8, 0, 0, 0, 0, 1, 2, 3, 4];
        let cases: Vec<Vec<u8>> = vec![
            corrupted,
            short.to_vec(),
            [&[0, 0, 0, 32][..], &[0xab; 28]].concat(),
            event("contentBlockDelta", json!("not an object")),
            frame(
                &[(":message-type", "event"), (":event-type", "messageStop")],
                b"{nope",
            ),
            frame(&[(":message-type", "event")], b"{}"),
            frame(&[(":message-type", "mystery")], b"{}"),
            frame(&[(":event-type", "messageStart")], b"{}"),
        ];
        for case in cases {
            let mut t = StreamTranslator::new("m", 0, 1 << 16);
            assert_eq!(
                t.feed(&case).unwrap_err(),
                StreamError::Malformed,
                "{case:?}"
            );
        }
        // SSE where an event stream was expected: its first bytes read as a length of 1.6 GB.
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        assert_eq!(
            t.feed(b"data: {\"not\": \"an event stream\"}\n\n")
                .unwrap_err(),
            StreamError::EventTooLarge(1 << 16)
        );
        // An event type Bedrock adds later is skipped.
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        let unknown = event("somethingNew", json!({"x": 1}));
        assert!(t.feed(&[good, unknown].concat()).is_ok());
    }

    #[test]
    fn tool_calls_per_stream_are_bounded() {
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        t.feed(&event("messageStart", json!({"role": "assistant"})))
            .unwrap();
        let block = |i: usize| {
            event(
                "contentBlockStart",
                json!({"contentBlockIndex": i, "start": {"toolUse": {"toolUseId": format!("t{i}"), "name": "f"}}}),
            )
        };
        for i in 0..MAX_TOOL_CALLS {
            t.feed(&block(i)).unwrap();
        }
        assert_eq!(
            t.feed(&block(MAX_TOOL_CALLS)).unwrap_err(),
            StreamError::TooManyToolCalls(MAX_TOOL_CALLS)
        );
    }
}
