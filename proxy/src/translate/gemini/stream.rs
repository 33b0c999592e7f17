//! A Gemini `streamGenerateContent?alt=sse` stream as OpenAI chat completion chunks: each chunk's
//! text parts become `content` deltas and its function calls `tool_calls` deltas (whole, as
//! Gemini sends them); the finish reason and the usage come with the last chunks, and since
//! Gemini sends no terminal event, the end of the provider's body ends the client's stream with
//! the finish chunk, a usage chunk and `[DONE]` — unless no chunk gave a finish reason (a cut) or
//! one reported an error.

use bytes::{Bytes, BytesMut};
use serde_json::json;

use super::response::{Chunk, UsageMetadata, finish_reason};
use crate::translate::sse::{EventSplitter, translate_events};
use crate::translate::{DONE, StreamError, write_chunk, write_data};

/// The translation state of one stream.
pub struct StreamTranslator {
    events: EventSplitter,
    id: String,
    model: String,
    created: u64,
    started: bool,
    calls: u64,
    finish: Option<String>,
    usage: UsageMetadata,
}

impl StreamTranslator {
    /// A translator for a stream of `model` created at `created`, events of at most `max_event`
    /// bytes.
    pub fn new(model: &str, created: u64, max_event: usize) -> Self {
        Self {
            events: EventSplitter::new(max_event),
            id: format!("chatcmpl-gemini-{created}"),
            model: model.to_string(),
            created,
            started: false,
            calls: 0,
            finish: None,
            usage: UsageMetadata::default(),
        }
    }

    /// The OpenAI SSE bytes for the next piece of the provider's stream (often none).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Bytes, StreamError> {
        translate_events(
            self,
            |t| &mut t.events,
            bytes,
            |t, data, out| {
                let chunk: Chunk =
                    serde_json::from_str(data).map_err(|_| StreamError::Malformed)?;
                t.chunk(chunk, out)
            },
        )
    }

    /// The provider's stream ended: the finish and usage chunks and `[DONE]`, or an error when
    /// it ended before a finish reason.
    pub fn finish(&mut self) -> Result<Bytes, StreamError> {
        let Some(reason) = self.finish.take() else {
            return Err(StreamError::Truncated);
        };
        let mut out = BytesMut::new();
        let finish = finish_reason(Some(&reason), self.calls > 0);
        write_chunk(
            &mut out,
            &self.id,
            &self.model,
            self.created,
            json!({}),
            Some(finish),
        );
        let usage = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.model, "choices": [], "usage": self.usage.to_openai(),
        });
        write_data(&mut out, &usage);
        out.extend_from_slice(DONE);
        Ok(out.freeze())
    }

    fn chunk(&mut self, chunk: Chunk, out: &mut BytesMut) -> Result<(), StreamError> {
        if let Some(error) = chunk.error {
            let text = |key: &str| {
                error
                    .get(key)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            return Err(StreamError::Provider {
                kind: text("status"),
                message: text("message"),
            });
        }
        if let Some(id) = chunk.response_id.filter(|id| !id.is_empty()) {
            self.id = id;
        }
        if let Some(model) = chunk.model_version {
            self.model = model;
        }
        if let Some(usage) = chunk.usage_metadata {
            self.usage = usage;
        }
        if chunk.candidates.is_empty() && chunk.prompt_feedback.is_some() {
            // The prompt was blocked: no candidate will come.
            self.finish = Some("SAFETY".into());
        }
        if !self.started {
            self.started = true;
            write_chunk(
                out,
                &self.id,
                &self.model,
                self.created,
                json!({ "role": "assistant", "content": "" }),
                None,
            );
        }
        let Some(candidate) = chunk.candidates.into_iter().next() else {
            return Ok(());
        };
        let parts = candidate.content.into_iter().flat_map(|c| c.parts);
        for part in parts.filter(|p| p.thought != Some(true)) {
            if let Some(text) = part.text.filter(|t| !t.is_empty()) {
                write_chunk(
                    out,
                    &self.id,
                    &self.model,
                    self.created,
                    json!({ "content": text }),
                    None,
                );
            }
            if let Some(call) = part.function_call {
                let mut tool_call = call.to_tool_call(0, self.calls as usize);
                tool_call["index"] = json!(self.calls);
                self.calls += 1;
                write_chunk(
                    out,
                    &self.id,
                    &self.model,
                    self.created,
                    json!({ "tool_calls": [tool_call] }),
                    None,
                );
            }
        }
        if let Some(reason) = candidate.finish_reason {
            self.finish = Some(reason);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::tests::chunks;

    const STREAM: &str = concat!(
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 7},\"modelVersion\": \"gemini-2.0-flash\",\"responseId\": \"r1\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" world\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 7}}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"weather\", \"args\": {\"city\": \"Rome\"}}}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 7,\"candidatesTokenCount\": 4,\"totalTokenCount\": 11}}\r\n\r\n",
    );

    #[test]
    fn chunks_become_openai_chunks_and_the_end_adds_finish_usage_and_done() {
        let mut t = StreamTranslator::new("gemini-x", 3, 1 << 16);
        let mut out = Vec::new();
        for byte in STREAM.as_bytes() {
            out.extend_from_slice(&t.feed(&[*byte]).unwrap());
        }
        let tail = t.finish().unwrap();
        assert!(tail.ends_with(b"data: [DONE]\n\n"));
        out.extend_from_slice(&tail);
        let chunks = chunks(&out);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[0]["model"], "gemini-2.0-flash");
        assert_eq!(chunks[0]["id"], "r1");
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text, "Hello world");
        let call = chunks
            .iter()
            .find_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
            .unwrap();
        assert_eq!(call[0]["index"], 0);
        assert_eq!(call[0]["function"]["arguments"], "{\"city\":\"Rome\"}");
        assert_eq!(
            chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
            "tool_calls"
        );
        assert_eq!(chunks[chunks.len() - 1]["usage"]["total_tokens"], 11);
    }

    #[test]
    fn an_error_chunk_or_an_end_without_finish_reason_breaks_the_stream() {
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        let first = STREAM.split("\r\n\r\n").next().unwrap();
        t.feed(format!("{first}\r\n\r\n").as_bytes()).unwrap();
        assert_eq!(t.finish().unwrap_err(), StreamError::Truncated);
        let mut t = StreamTranslator::new("m", 0, 1 << 16);
        let error = t
            .feed(b"data: {\"error\": {\"code\": 503, \"message\": \"overloaded\", \"status\": \"UNAVAILABLE\"}}\n\n")
            .unwrap_err();
        assert_eq!(
            error,
            StreamError::Provider {
                kind: "UNAVAILABLE".into(),
                message: "overloaded".into()
            }
        );
    }
}
