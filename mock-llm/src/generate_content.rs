//! `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent` (also under `/v1/`):
//! Google's Gemini API, answering with the chat endpoint's reply rules (`Reply with exactly: X`
//! in the last user turn's text parts, else the configured reply); `:batchEmbedContents` is
//! answered by [`crate::embed_content`] past the same key check. Gemini on Vertex AI
//! ([`crate::vertex`]) is answered by [`answer`], past Vertex's own credential check.
//!
//! * Credentials, in Google's order: `x-goog-api-key`, `?key=`, `Authorization: Bearer` (OAuth).
//!   None at all is 403 `PERMISSION_DENIED`, an empty key 400 `INVALID_ARGUMENT` (`API key not
//!   valid`), a non-bearer `Authorization` 401 `UNAUTHENTICATED`. The body is validated as the API
//!   does (400 `INVALID_ARGUMENT` naming the field, see [`crate::gemini`]). Errors, injected
//!   `status=` faults included, are `{"error":{"code":N,"message":..,"status":..}}`, `status`
//!   being the `google.rpc.Code` name (429 `RESOURCE_EXHAUSTED`, 500 `INTERNAL`, 503
//!   `UNAVAILABLE`, ...; a fault's upper-case `body=` replaces it).
//! * The response is one candidate per `candidateCount` (default 1), `modelVersion` the path's
//!   model, `responseId` `mock-gemini-N`. Rules, first match wins, on the last user turn's text:
//!   `blockprompt` anywhere: `promptFeedback {blockReason: SAFETY}` and no candidates; the word
//!   `unsafe` (unless `HARM_CATEGORY_DANGEROUS_CONTENT` is `BLOCK_NONE`/`OFF`): candidates with
//!   `finishReason: SAFETY`, no content and a `blocked` dangerous-content rating; function calling
//!   when declarations are given and the mode is `ANY` (the first allowed, else first, function)
//!   or `AUTO`/`VALIDATED` with the word `weather`: one `functionCall {name, args}` part, args
//!   being [`crate::anthropic::example_input`] of its schema, `finishReason: STOP`; else the
//!   reply text, cut before the earliest `stopSequences` entry (`STOP`, as Gemini has no
//!   stop-sequence reason).
//! * Tokens are words. `promptTokenCount` counts the system instruction, declarations' names
//!   and descriptions and the contents (see [`crate::gemini::GenerateRequest::prompt_tokens`]);
//!   a named `cachedContent` adds 1024 tokens, also reported as `cachedContentTokenCount`.
//!   `thinkingConfig` with a budget other than 0 thinks: `thoughtsTokenCount` is the thought's
//!   words (capped by the budget), shown as a `thought: true` part with `includeThoughts`. A
//!   function call costs 1 + (args JSON bytes / 4, rounded up) tokens. Thoughts count against
//!   `maxOutputTokens`; what is left cuts the text by words (or drops the call) with
//!   `finishReason: MAX_TOKENS` (a candidate without parts when nothing is left).
//!   `totalTokenCount` is prompt + candidates + thoughts; zero counts are left out, as the API
//!   does.
//! * `?alt=sse` streams `data: {chunk}\r\n\r\n` events (CRLF, no `[DONE]`): the thought, then one
//!   word per chunk (or the call whole); every chunk carries `usageMetadata` with the prompt
//!   count, the last also `finishReason` and the full usage. Without `alt=sse` the same chunks
//!   come as one JSON array (`[{..},\r\n{..}]`), sent chunk by chunk. An `error-after` fault
//!   sends `{"error":{"code":503,..,"status":"UNAVAILABLE"}}` as the next event (array element).

use std::io;

use serde_json::Value;

use crate::anthropic::example_input;
use crate::embed_content;
use crate::gemini::{
    self, AuthFailure, BLOCKED_RATINGS, Candidate, Content, ErrorBody, ErrorDetail, FunctionCall,
    GeminiOp, GenerateRequest, Mode, Part, PromptFeedback, Response, STREAM_ERROR, UsageMetadata,
};
use crate::handlers::{
    ApiHeaders, Ctx, ErrorReply, Flow, Slot, send_error_body, send_json_body, send_stream,
};
use crate::http::{Conn, ProviderHead};
use crate::openai::{count_words, reply_pieces, requested_reply};
use crate::server::Shared;

/// The thought summary a thinking request gets.
pub(crate) const THOUGHT: &str = "Thinking about how to answer.";

const NO_CALLER: &str = "Method doesn't allow unregistered callers (callers without established \
    identity). Please use API Key or other form of API consumer identity to call this API.";
const BAD_KEY: &str = "API key not valid. Please pass a valid API key.";
const BAD_AUTHORIZATION: &str = "Request had invalid authentication credentials. Expected OAuth 2 \
    access token, login cookie or other valid authentication credential. See \
    https://developers.google.com/identity/sign-in/web/devconsole-project.";

pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    op: GeminiOp,
    headers: &ApiHeaders<'_>,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    let Some(head) = headers.provider else {
        return send_error(shared, conn, reply(500, "missing request head"), ctx).await;
    };
    if op == GeminiOp::Unknown {
        let msg = "mock-llm serves only POST /v1beta/models/{model}:generateContent, \
                   :streamGenerateContent and :batchEmbedContents";
        return send_error(shared, conn, reply(404, msg), ctx).await;
    }
    if let Err(failure) = gemini::credential(head) {
        let (status, msg) = match failure {
            AuthFailure::Missing => (403, NO_CALLER),
            AuthFailure::EmptyKey => (400, BAD_KEY),
            AuthFailure::BadAuthorization => (401, BAD_AUTHORIZATION),
        };
        return send_error(shared, conn, reply(status, msg), ctx).await;
    }
    if op == GeminiOp::BatchEmbed {
        return embed_content::handle(shared, conn, head, body, ctx).await;
    }
    answer(shared, conn, op, head, body, ctx).await
}

/// Validates and answers a `generateContent` (`op` `Generate`) or `streamGenerateContent`
/// request whose credentials were accepted; Vertex AI's Gemini routes come here directly.
pub(crate) async fn answer(
    shared: &Shared,
    conn: &mut Conn,
    op: GeminiOp,
    head: &ProviderHead,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    // An empty body is an empty request, which then lacks `contents`.
    let body = if body.trim_ascii().is_empty() {
        &b"{}"[..]
    } else {
        body
    };
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            let msg = format!("Invalid JSON payload received. {e}");
            return send_error(shared, conn, reply(400, &msg), ctx).await;
        }
    };
    let req = match gemini::parse_request(&value) {
        Ok(req) => req,
        Err(msg) => return send_error(shared, conn, reply(400, &msg), ctx).await,
    };
    let text = requested_reply(&req.last_user_text).unwrap_or(&shared.reply);
    let response_id = format!("mock-gemini-{}", shared.next_id());
    let answer = Answer {
        outcome: plan(&req, text),
        candidates: req.candidate_count,
        prompt_tokens: req.prompt_tokens,
        cached_tokens: req.cached_tokens,
        model: gemini::model_of(head.path()),
        response_id: &response_id,
    };

    if op != GeminiOp::Stream {
        let mut body = Vec::with_capacity(512);
        answer.write(&mut body, &answer.parts(), true)?;
        return send_json_body(shared, conn, 200, &body, ctx).await;
    }
    let pieces = answer.pieces();
    let chunks = pieces.len().max(1);
    // Chunk i carries piece i; the last one also the finish reason and the full usage.
    let write_chunk = |i: usize, buf: &mut Vec<u8>| {
        let last = i + 1 == chunks;
        answer.write(
            buf,
            pieces.get(i).map(std::slice::from_ref).unwrap_or(&[]),
            last,
        )
    };
    if head.query("alt") == Some("sse") {
        send_stream(
            shared,
            conn,
            ctx,
            "text/event-stream",
            chunks,
            |slot, buf| {
                buf.extend_from_slice(b"data: ");
                match slot {
                    Slot::Event(i) => write_chunk(i, buf)?,
                    Slot::Error(_) => buf.extend_from_slice(STREAM_ERROR),
                }
                buf.extend_from_slice(b"\r\n\r\n");
                Ok(())
            },
        )
        .await
    } else {
        send_stream(
            shared,
            conn,
            ctx,
            "application/json",
            chunks,
            |slot, buf| {
                let (Slot::Event(i) | Slot::Error(i)) = slot;
                buf.extend_from_slice(if i == 0 { b"[" } else { b",\r\n" });
                match slot {
                    Slot::Event(i) => write_chunk(i, buf)?,
                    Slot::Error(_) => buf.extend_from_slice(STREAM_ERROR),
                }
                if matches!(slot, Slot::Error(_)) || i + 1 == chunks {
                    buf.push(b']');
                }
                Ok(())
            },
        )
        .await
    }
}

fn reply(status: u16, message: &str) -> ErrorReply<'_> {
    let name = gemini::status_name(status);
    ErrorReply::new(status, message, name, name)
}

/// Sends Google's error shape; `reply.kind` is the `status` name when it looks like one
/// (upper-case), else the status's own name is used.
pub(crate) async fn send_error(
    shared: &Shared,
    conn: &mut Conn,
    reply: ErrorReply<'_>,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let looks_like_code = !reply.kind.is_empty()
        && reply
            .kind
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'_');
    let status = if looks_like_code {
        reply.kind
    } else {
        gemini::status_name(reply.status)
    };
    let body = ErrorBody {
        error: ErrorDetail {
            code: reply.status,
            message: reply.message,
            status,
        },
    };
    let body = serde_json::to_vec(&body)?;
    send_error_body(shared, conn, reply.status, &body, reply.retry_after, ctx).await
}

/// What the model turn holds.
#[derive(Debug, PartialEq)]
enum Outcome<'a> {
    /// `promptFeedback.blockReason: SAFETY`, no candidates.
    PromptBlocked,
    /// `finishReason: SAFETY`, no content.
    CandidateBlocked,
    Reply(Turn<'a>),
}

#[derive(Debug, PartialEq)]
struct Turn<'a> {
    /// The thought part's text, with `includeThoughts`.
    thought: Option<&'static str>,
    thoughts_tokens: u32,
    text: &'a str,
    call: Option<(&'a str, Value)>,
    finish_reason: &'static str,
    /// Per candidate, thoughts excluded.
    output_tokens: u32,
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn plan<'a>(req: &'a GenerateRequest<'a>, reply: &'a str) -> Outcome<'a> {
    let last = &req.last_user_text;
    if last.to_ascii_lowercase().contains("blockprompt") {
        return Outcome::PromptBlocked;
    }
    if has_word(last, "unsafe") && !req.dangerous_content_allowed {
        return Outcome::CandidateBlocked;
    }
    let max = req.max_output_tokens.unwrap_or(u64::MAX);
    let thoughts = match req.thinking {
        Some(t) => u64::from(count_words(THOUGHT))
            .min(t.budget.unwrap_or(u64::MAX))
            .min(max),
        None => 0,
    };
    let left = max - thoughts;
    let mut turn = Turn {
        thought: req
            .thinking
            .filter(|t| t.include_thoughts && thoughts > 0)
            .map(|_| THOUGHT),
        thoughts_tokens: clamp(thoughts),
        text: "",
        call: None,
        finish_reason: "STOP",
        output_tokens: 0,
    };
    if let Some(name) = chosen_function(req) {
        let schema = req
            .functions
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.schema);
        let args = example_input(schema);
        let cost = 1 + args.to_string().len().div_ceil(4) as u64;
        if cost > left {
            // The budget runs out inside the call: it is dropped rather than sent half-formed.
            turn.finish_reason = "MAX_TOKENS";
            turn.output_tokens = clamp(left);
        } else {
            turn.call = Some((name, args));
            turn.output_tokens = clamp(cost);
        }
        return Outcome::Reply(turn);
    }
    let text = match first_stop(reply, &req.stop_sequences) {
        Some(at) => &reply[..at],
        None => reply,
    };
    let words = u64::from(count_words(text));
    if words > left {
        let end: usize = reply_pieces(text)
            .iter()
            .take(usize::try_from(left).unwrap_or(usize::MAX))
            .map(|p| p.len())
            .sum();
        turn.text = &text[..end];
        turn.finish_reason = "MAX_TOKENS";
        turn.output_tokens = clamp(left);
    } else {
        turn.text = text;
        turn.output_tokens = clamp(words);
    }
    Outcome::Reply(turn)
}

fn chosen_function<'a>(req: &GenerateRequest<'a>) -> Option<&'a str> {
    let first = || {
        req.allowed_functions
            .first()
            .copied()
            .or_else(|| req.functions.first().map(|f| f.name))
    };
    match req.mode {
        Mode::None => None,
        Mode::Any => first(),
        Mode::Auto | Mode::Validated if has_word(&req.last_user_text, "weather") => first(),
        Mode::Auto | Mode::Validated => None,
    }
}

fn has_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// Where the earliest stop sequence in `text` starts.
fn first_stop(text: &str, sequences: &[&str]) -> Option<usize> {
    sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s))
        .min()
}

/// Everything needed to render the response or any of its stream chunks.
struct Answer<'a> {
    outcome: Outcome<'a>,
    candidates: u32,
    prompt_tokens: u32,
    cached_tokens: u32,
    model: &'a str,
    response_id: &'a str,
}

impl Answer<'_> {
    /// The stream's pieces: the thought, one per word of the text, the call.
    fn pieces(&self) -> Vec<Part<'_>> {
        let Outcome::Reply(turn) = &self.outcome else {
            return Vec::new();
        };
        let mut pieces = Vec::new();
        if let Some(thought) = turn.thought {
            pieces.push(Part {
                text: Some(thought),
                thought: Some(true),
                ..Part::default()
            });
        }
        for word in reply_pieces(turn.text) {
            pieces.push(Part {
                text: Some(word),
                ..Part::default()
            });
        }
        if let Some((name, args)) = &turn.call {
            pieces.push(Part {
                function_call: Some(FunctionCall { name, args }),
                ..Part::default()
            });
        }
        pieces
    }

    /// The whole response's parts (the text in one part).
    fn parts(&self) -> Vec<Part<'_>> {
        let Outcome::Reply(turn) = &self.outcome else {
            return Vec::new();
        };
        let mut parts = self.pieces();
        parts.retain(|p| p.text.is_none() || p.thought.is_some());
        if !turn.text.is_empty() {
            let at = usize::from(turn.thought.is_some());
            let text = Part {
                text: Some(turn.text),
                ..Part::default()
            };
            parts.insert(at, text);
        }
        parts
    }

    fn usage(&self) -> UsageMetadata {
        let (output, thoughts) = match &self.outcome {
            Outcome::Reply(turn) => (turn.output_tokens, turn.thoughts_tokens),
            _ => (0, 0),
        };
        UsageMetadata::new(
            self.prompt_tokens,
            self.cached_tokens,
            output.saturating_mul(self.candidates),
            thoughts.saturating_mul(self.candidates),
        )
    }

    /// Writes a response (or stream chunk) whose candidates hold `parts`; `last` adds the
    /// finish reason and the full usage (else only the prompt's).
    fn write(&self, buf: &mut Vec<u8>, parts: &[Part<'_>], last: bool) -> io::Result<()> {
        let usage = if last {
            self.usage()
        } else {
            UsageMetadata::new(self.prompt_tokens, self.cached_tokens, 0, 0)
        };
        let candidate = |index| match &self.outcome {
            Outcome::PromptBlocked => None,
            Outcome::CandidateBlocked => Some(Candidate {
                content: None,
                finish_reason: Some("SAFETY"),
                index,
                safety_ratings: Some(BLOCKED_RATINGS),
            }),
            Outcome::Reply(turn) => Some(Candidate {
                content: Some(Content {
                    parts,
                    role: "model",
                }),
                finish_reason: last.then_some(turn.finish_reason),
                index,
                safety_ratings: None,
            }),
        };
        let candidates: Vec<Candidate<'_>> = (0..self.candidates).filter_map(candidate).collect();
        let response = Response {
            candidates: &candidates,
            prompt_feedback: (self.outcome == Outcome::PromptBlocked).then_some(PromptFeedback {
                block_reason: "SAFETY",
                safety_ratings: BLOCKED_RATINGS,
            }),
            usage_metadata: usage,
            model_version: self.model,
            response_id: self.response_id,
        };
        serde_json::to_writer(buf, &response).map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn turn(body: Value, reply: &str) -> Turn<'static> {
        let body: &'static Value = Box::leak(Box::new(body));
        let req: &'static GenerateRequest<'static> =
            Box::leak(Box::new(gemini::parse_request(body).unwrap()));
        let reply: &'static str = Box::leak(reply.to_owned().into_boxed_str());
        match plan(req, reply) {
            Outcome::Reply(t) => t,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn request(text: &str, generation: Value) -> Value {
        json!({"contents": [{"parts": [{"text": text}]}], "generationConfig": generation})
    }

    #[test]
    fn max_output_tokens_cut_by_words_after_thoughts() {
        let t = turn(
            request("hi", json!({"maxOutputTokens": 3})),
            "one two three four",
        );
        assert_eq!(
            (t.text, t.finish_reason, t.output_tokens),
            ("one two three", "MAX_TOKENS", 3)
        );

        let thinking = json!({"maxOutputTokens": 7,
                              "thinkingConfig": {"includeThoughts": true}});
        let t = turn(request("hi", thinking), "one two three four");
        assert_eq!(t.thought, Some(THOUGHT));
        assert_eq!(t.thoughts_tokens, 5);
        assert_eq!(
            (t.text, t.finish_reason, t.output_tokens),
            ("one two", "MAX_TOKENS", 2)
        );

        let starved = json!({"maxOutputTokens": 4, "thinkingConfig": {"thinkingBudget": -1}});
        let t = turn(request("hi", starved), "one two");
        assert_eq!((t.thought, t.thoughts_tokens), (None, 4));
        assert_eq!(
            (t.text, t.finish_reason, t.output_tokens),
            ("", "MAX_TOKENS", 0)
        );
    }

    #[test]
    fn stop_sequences_cut_with_stop() {
        let t = turn(
            request("hi", json!({"stopSequences": ["four", " two"]})),
            "one two three four",
        );
        assert_eq!(
            (t.text, t.finish_reason, t.output_tokens),
            ("one", "STOP", 1)
        );
    }

    #[test]
    fn function_choice_follows_the_mode() {
        let tools = json!([{"functionDeclarations": [
            {"name": "get_weather", "parameters": {"type": "OBJECT", "properties": {
                "city": {"type": "STRING"}, "days": {"type": "INTEGER"}}}},
            {"name": "get_time"}]}]);
        let mut body = request("What's the weather?", json!({}));
        body["tools"] = tools;
        let t = turn(body.clone(), "x");
        let (name, args) = t.call.unwrap();
        assert_eq!(name, "get_weather");
        assert_eq!(args, json!({"city": "mock city", "days": 1}));
        assert_eq!(t.output_tokens, 1 + 29u32.div_ceil(4));
        assert_eq!(t.text, "");

        body["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
        assert!(turn(body.clone(), "x").call.is_none());

        body["toolConfig"] = json!({"functionCallingConfig": {
            "mode": "ANY", "allowedFunctionNames": ["get_time"]}});
        body["contents"] = json!([{"parts": [{"text": "hello"}]}]);
        let t = turn(body, "x");
        assert_eq!(t.call, Some(("get_time", json!({}))));
    }
}
