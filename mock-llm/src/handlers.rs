//! Routing and the chat/models endpoints, plus the response writers shared by all endpoints.
//! OpenAI's `/v1/responses` lives in [`crate::responses`], Anthropic's `/v1/messages` (and its
//! `count_tokens`) in [`crate::messages`], Azure OpenAI's deployment routes in
//! [`crate::azure`], Gemini's `generateContent` in [`crate::generate_content`], Bedrock's
//! Converse routes in [`crate::bedrock`], Vertex AI's publisher routes in [`crate::vertex`] and
//! the OAuth token endpoint in [`crate::oauth`].

use std::io;
use std::time::Duration;

use serde::Serialize;

use crate::azure::AzureOp;
use crate::bedrock::BedrockOp;
use crate::gemini::GeminiOp;
use crate::http::{self, Conn, LAST_CHUNK, Method, ProviderHead, RouteNeeds};
use crate::openai::{
    AssistantMessage, CREATED, ChatChoice, ChatChunk, ChatCompletion, ChatRequest, ChunkChoice,
    Delta, ErrorBody, ErrorDetail, ModelEntry, ModelList, Usage, count_words, reply_pieces,
};
use crate::server::Shared;
use crate::sigv4::Rejection;
use crate::vertex::{self, VertexOp};
use crate::{
    BedrockCall, Credential, VertexCall, azure, bedrock, completions, embeddings, generate_content,
    messages, oauth, responses,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Chat,
    Completions,
    Embeddings,
    /// OpenAI's Responses API; its errors carry `param`.
    Responses,
    /// Anthropic's Messages API; its errors use Anthropic's body shape.
    Messages,
    /// Anthropic's `/v1/messages/count_tokens`; its errors use Anthropic's body shape.
    CountTokens,
    /// Anything under `/openai/`; errors at the Azure level use Azure's body shape.
    Azure(AzureOp),
    /// `/v1beta/models/{model}:{method}` (or `/v1/`); errors use Google's body shape.
    Gemini(GeminiOp),
    /// Anything under `/model/`: Bedrock's runtime; errors use Bedrock's shape.
    Bedrock(BedrockOp),
    /// Anything under `/v1/projects/` (or `/v1beta1/`): Vertex AI; errors use the publisher's
    /// API's shape.
    Vertex(VertexOp),
    /// `POST /token`: Google's OAuth token endpoint; errors use OAuth's shape.
    Token,
    Models,
    NotFound,
}

impl RouteNeeds for Route {
    fn needs_provider_head(&self) -> bool {
        matches!(
            self,
            Route::Azure(_)
                | Route::Gemini(_)
                | Route::Bedrock(_)
                | Route::Vertex(_)
                | Route::Token
        )
    }

    fn needs_all_headers(&self) -> bool {
        matches!(self, Route::Bedrock(_))
    }
}

pub(crate) fn classify(method: Method, path: &str) -> Route {
    if let Some(op) = azure::classify(method, path) {
        return Route::Azure(op);
    }
    if let Some(op) = bedrock::classify(method, path) {
        return Route::Bedrock(op);
    }
    if let Some(op) = vertex::classify(method, path) {
        return Route::Vertex(op);
    }
    if let Some(op) = crate::gemini::classify(method, path) {
        return Route::Gemini(op);
    }
    if (method, path) == (Method::Post, "/token") {
        return Route::Token;
    }
    // Clients configured with a base URL lacking `/v1` should still work.
    let path = path.strip_prefix("/v1").unwrap_or(path);
    match (method, path) {
        (Method::Post, "/chat/completions") => Route::Chat,
        (Method::Post, "/completions") => Route::Completions,
        (Method::Post, "/embeddings") => Route::Embeddings,
        (Method::Post, "/responses") => Route::Responses,
        (Method::Post, "/messages") => Route::Messages,
        (Method::Post, "/messages/count_tokens") => Route::CountTokens,
        (Method::Get, "/models") => Route::Models,
        _ => Route::NotFound,
    }
}

/// Whether the connection can serve another request after this response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    KeepAlive,
    Close,
}

/// Request headers some endpoints need beyond the route, and what was concluded from them.
pub(crate) struct ApiHeaders<'a> {
    pub anthropic_version: Option<&'a str>,
    /// Target and credentials; present on the provider routes (see [`RouteNeeds`]).
    pub provider: Option<&'a ProviderHead>,
    /// Why a Bedrock request's signature was refused.
    pub bedrock_denial: Option<&'a Rejection>,
    /// Why a Vertex AI request's token was refused.
    pub vertex_denial: Option<vertex::AuthFailure>,
}

/// What the server concludes about a request's credentials and target before answering it:
/// kept with the recorded request and handed to the handler.
#[derive(Default)]
pub(crate) struct Verdict {
    /// The credential the route accepted (see [`crate::RecordedRequest::credential`]).
    pub credential: Option<Credential>,
    pub bedrock_denial: Option<Rejection>,
    pub vertex_denial: Option<vertex::AuthFailure>,
    pub bedrock: Option<BedrockCall>,
    pub vertex: Option<VertexCall>,
}

/// Checks the credentials of the routes that check them (SigV4 needs the body) and describes
/// the call for the record.
pub(crate) fn verdict(
    shared: &Shared,
    route: Route,
    provider: Option<&ProviderHead>,
    body: &[u8],
) -> Verdict {
    let Some(provider) = provider else {
        return Verdict::default();
    };
    match route {
        Route::Azure(_) => Verdict {
            credential: azure::credential(provider).ok(),
            ..Verdict::default()
        },
        Route::Gemini(_) => Verdict {
            credential: crate::gemini::credential(provider).ok(),
            ..Verdict::default()
        },
        Route::Bedrock(op) => {
            let (call, credential, denial) = bedrock::authenticate(shared, op, provider, body);
            Verdict {
                credential,
                bedrock_denial: denial,
                bedrock: Some(call),
                ..Verdict::default()
            }
        }
        Route::Vertex(_) => {
            let (credential, denial) = match vertex::authenticate(shared, provider) {
                Ok(c) => (c, None),
                Err(failure) => (None, Some(failure)),
            };
            Verdict {
                credential,
                vertex_denial: denial,
                vertex: vertex::call_of(provider.path()),
                ..Verdict::default()
            }
        }
        _ => Verdict::default(),
    }
}

/// How to deliver one response.
pub(crate) struct Ctx {
    pub chunk_delay: Duration,
    /// Streaming: events to send before dropping the connection; otherwise send half the body.
    pub cut_after: Option<usize>,
    /// Streaming: events to send before an error event that ends the stream.
    pub error_after: Option<usize>,
    pub close: bool,
}

impl Ctx {
    pub fn plain(close: bool) -> Ctx {
        Ctx {
            chunk_delay: Duration::ZERO,
            cut_after: None,
            error_after: None,
            close,
        }
    }

    fn flow(&self) -> Flow {
        if self.close {
            Flow::Close
        } else {
            Flow::KeepAlive
        }
    }
}

pub(crate) struct ErrorReply<'a> {
    pub status: u16,
    pub message: &'a str,
    pub kind: &'a str,
    pub code: &'a str,
    pub retry_after: Option<&'a str>,
}

impl<'a> ErrorReply<'a> {
    pub fn new(status: u16, message: &'a str, kind: &'a str, code: &'a str) -> Self {
        ErrorReply {
            status,
            message,
            kind,
            code,
            retry_after: None,
        }
    }
}

pub(crate) async fn dispatch(
    shared: &Shared,
    conn: &mut Conn,
    route: Route,
    headers: &ApiHeaders<'_>,
    body: &[u8],
    ctx: Ctx,
) -> io::Result<Flow> {
    match route {
        Route::Chat => chat(shared, conn, body, None, &ctx).await,
        Route::Completions => completions::handle(shared, conn, body, &ctx).await,
        Route::Embeddings => embeddings::handle(shared, conn, body, None, &ctx).await,
        Route::Responses => responses::handle(shared, conn, body, &ctx).await,
        Route::Messages => messages::handle(shared, conn, headers, body, &ctx).await,
        Route::CountTokens => messages::count_tokens(shared, conn, headers, body, &ctx).await,
        Route::Azure(op) => azure::handle(shared, conn, op, headers, body, &ctx).await,
        Route::Gemini(op) => generate_content::handle(shared, conn, op, headers, body, &ctx).await,
        Route::Bedrock(op) => bedrock::handle(shared, conn, op, headers, body, &ctx).await,
        Route::Vertex(op) => vertex::handle(shared, conn, op, headers, body, &ctx).await,
        Route::Token => oauth::handle(shared, conn, headers.provider, body, &ctx).await,
        Route::Models => send_bytes(conn, 200, &shared.models_json, &shared.json_extra, &ctx).await,
        Route::NotFound => {
            let msg = "unknown endpoint; mock-llm serves POST /v1/chat/completions, \
                       POST /v1/completions, POST /v1/embeddings, POST /v1/responses, \
                       POST /v1/messages, POST /v1/messages/count_tokens, GET /v1/models, POST /openai/deployments/{id}/chat/completions, \
                       POST /openai/deployments/{id}/embeddings, \
                       POST /v1beta/models/{model}:generateContent / :streamGenerateContent / \
                       :batchEmbedContents, \
                       POST /model/{modelId}/converse / converse-stream / invoke, \
                       POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:\
                       generateContent / :streamGenerateContent / :predict, \
                       POST /v1/projects/{p}/locations/{l}/publishers/anthropic/models/{m}:\
                       rawPredict / :streamRawPredict and POST /token";
            let reply = ErrorReply::new(404, msg, "invalid_request_error", "not_found");
            send_error(shared, conn, reply, &ctx).await
        }
    }
}

pub(crate) fn models_json(model: &str) -> Vec<u8> {
    let entry = ModelEntry {
        id: model,
        object: "model",
        created: CREATED,
        owned_by: "mock-llm",
    };
    let list = ModelList {
        object: "list",
        data: [entry],
    };
    serde_json::to_vec(&list).unwrap_or_default()
}

/// The chat endpoint; `model_override` replaces the model the request names (Azure's deployments).
pub(crate) async fn chat(
    shared: &Shared,
    conn: &mut Conn,
    body: &[u8],
    model_override: Option<&str>,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let req: ChatRequest<'_> = match serde_json::from_slice(body) {
        Ok(req) => req,
        Err(e) => return bad_json(shared, conn, &e, ctx).await,
    };
    let model = model_override.unwrap_or_else(|| {
        req.model
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or(&shared.config.model)
    });
    let requested = req.requested_reply();
    let reply = requested.as_deref().unwrap_or(&shared.reply);
    let usage = Usage::new(req.prompt_tokens(), count_words(reply));
    let id = format!("chatcmpl-mock-{}", shared.next_id());

    if req.stream != Some(true) {
        let message = AssistantMessage {
            role: "assistant",
            content: reply,
        };
        let choice = ChatChoice {
            index: 0,
            message,
            finish_reason: "stop",
        };
        let object = "chat.completion";
        let completion = ChatCompletion {
            id: &id,
            object,
            created: CREATED,
            model,
            choices: [choice],
            usage,
        };
        return send_json(shared, conn, 200, &completion, ctx).await;
    }

    let include_usage = req.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true);
    let pieces = reply_pieces(reply);
    // role, one per word, finish, then the optional usage chunk.
    let events = pieces.len() + 2 + usize::from(include_usage);
    send_sse(shared, conn, ctx, events, |i, buf| {
        let (delta, finish_reason) = match i {
            0 => (
                Delta {
                    role: Some("assistant"),
                    content: None,
                },
                None,
            ),
            i if i <= pieces.len() => (
                Delta {
                    role: None,
                    content: Some(pieces[i - 1]),
                },
                None,
            ),
            i if i == pieces.len() + 1 => (Delta::default(), Some("stop")),
            _ => {
                let chunk = chunk(&id, model, &[], Some(usage));
                return serde_json::to_writer(buf, &chunk).map_err(io::Error::from);
            }
        };
        let choices = [ChunkChoice {
            index: 0,
            delta,
            finish_reason,
        }];
        serde_json::to_writer(buf, &chunk(&id, model, &choices, None)).map_err(io::Error::from)
    })
    .await
}

fn chunk<'a>(
    id: &'a str,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    usage: Option<Usage>,
) -> ChatChunk<'a> {
    ChatChunk {
        id,
        object: "chat.completion.chunk",
        created: CREATED,
        model,
        choices,
        usage,
    }
}

pub(crate) async fn bad_json(
    shared: &Shared,
    conn: &mut Conn,
    e: &serde_json::Error,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let msg = format!("invalid JSON body: {e}");
    let reply = ErrorReply::new(400, &msg, "invalid_request_error", "invalid_json");
    send_error(shared, conn, reply, ctx).await
}

/// Sends an error in the route's style: Anthropic's body on `/v1/messages` and its
/// `count_tokens` (and Claude on Vertex), Azure's under `/openai/`, Google's on Gemini and Vertex
/// routes, Bedrock's under `/model/`, OAuth's on `/token`, OpenAI's with `param` on
/// `/v1/responses`, OpenAI's elsewhere.
pub(crate) async fn send_route_error(
    shared: &Shared,
    conn: &mut Conn,
    route: Route,
    reply: ErrorReply<'_>,
    ctx: &Ctx,
) -> io::Result<Flow> {
    match route {
        Route::Messages | Route::CountTokens => {
            messages::send_error(shared, conn, reply, ctx).await
        }
        Route::Responses => responses::send_error(shared, conn, reply, ctx).await,
        Route::Azure(_) => azure::send_error(shared, conn, reply, ctx).await,
        Route::Gemini(_)
        | Route::Vertex(VertexOp::Gemini(_) | VertexOp::Predict | VertexOp::Unknown) => {
            generate_content::send_error(shared, conn, reply, ctx).await
        }
        Route::Vertex(VertexOp::Claude) => messages::send_error(shared, conn, reply, ctx).await,
        Route::Bedrock(_) => bedrock::send_error(shared, conn, reply, ctx).await,
        Route::Token => oauth::send_error(shared, conn, reply, ctx).await,
        _ => send_error(shared, conn, reply, ctx).await,
    }
}

/// Answers an injected `status=` fault; `error_type` overrides the body's `type` (and `code`).
pub(crate) async fn send_fault_status(
    shared: &Shared,
    conn: &mut Conn,
    route: Route,
    status: u16,
    retry_after: Option<&str>,
    error_type: Option<&str>,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let (kind, code) = match (error_type, route) {
        (Some(t), _) => (t, t),
        (None, Route::Messages | Route::CountTokens | Route::Vertex(VertexOp::Claude)) => {
            let t = crate::anthropic::error_type(status);
            (t, t)
        }
        // Azure's `code` is the status number unless the body names one.
        (None, Route::Azure(_)) => ("", ""),
        (None, Route::Gemini(_) | Route::Vertex(_)) => {
            let t = crate::gemini::status_name(status);
            (t, t)
        }
        (None, Route::Bedrock(_)) => {
            let t = bedrock::exception_name(status);
            (t, t)
        }
        (None, Route::Token) => {
            let t = oauth::error_code(status);
            (t, t)
        }
        (None, _) => crate::openai::error_kind(status),
    };
    let mut reply = ErrorReply::new(status, "injected fault", kind, code);
    reply.retry_after = retry_after;
    send_route_error(shared, conn, route, reply, ctx).await
}

/// Sends an OpenAI-style error body.
pub(crate) async fn send_error(
    shared: &Shared,
    conn: &mut Conn,
    reply: ErrorReply<'_>,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let error = ErrorDetail {
        message: reply.message,
        kind: reply.kind,
        code: reply.code,
    };
    let body = serde_json::to_vec(&ErrorBody { error })?;
    send_error_body(shared, conn, reply.status, &body, reply.retry_after, ctx).await
}

/// Sends an already serialized error body, with `Retry-After` when given.
pub(crate) async fn send_error_body(
    shared: &Shared,
    conn: &mut Conn,
    status: u16,
    body: &[u8],
    retry_after: Option<&str>,
    ctx: &Ctx,
) -> io::Result<Flow> {
    send_error_with(shared, conn, status, body, retry_after, &[], ctx).await
}

/// [`send_error_body`] with more header lines (each ending in CRLF).
pub(crate) async fn send_error_with(
    shared: &Shared,
    conn: &mut Conn,
    status: u16,
    body: &[u8],
    retry_after: Option<&str>,
    headers: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    if retry_after.is_none() && headers.is_empty() {
        return send_bytes(conn, status, body, &shared.json_extra, ctx).await;
    }
    let mut extra = shared.json_extra.clone();
    extra.extend_from_slice(headers);
    if let Some(retry_after) = retry_after {
        extra.extend_from_slice(format!("Retry-After: {retry_after}\r\n").as_bytes());
    }
    send_bytes(conn, status, body, &extra, ctx).await
}

/// Sends an already serialized JSON body with more header lines (each ending in CRLF).
pub(crate) async fn send_json_with(
    shared: &Shared,
    conn: &mut Conn,
    status: u16,
    body: &[u8],
    headers: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    send_error_with(shared, conn, status, body, None, headers, ctx).await
}

/// Sends an already serialized JSON body.
pub(crate) async fn send_json_body(
    shared: &Shared,
    conn: &mut Conn,
    status: u16,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    send_bytes(conn, status, body, &shared.json_extra, ctx).await
}

pub(crate) async fn send_json<T: Serialize>(
    shared: &Shared,
    conn: &mut Conn,
    status: u16,
    value: &T,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let mut body = std::mem::take(&mut conn.scratch);
    body.clear();
    serde_json::to_writer(&mut body, value)?;
    let res = send_bytes(conn, status, &body, &shared.json_extra, ctx).await;
    conn.scratch = body;
    res
}

async fn send_bytes(
    conn: &mut Conn,
    status: u16,
    body: &[u8],
    extra: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    http::write_head(
        &mut conn.out,
        status,
        "application/json",
        Some(body.len()),
        ctx.close,
        extra,
    );
    if ctx.cut_after.is_some() {
        conn.out.extend_from_slice(&body[..body.len() / 2]);
        conn.flush_out().await?;
        return Ok(Flow::Close);
    }
    conn.out.extend_from_slice(body);
    conn.flush_out().await?;
    Ok(ctx.flow())
}

/// What an OpenAI stream carries when an `error-after` fault interrupts it.
const OPENAI_STREAM_ERROR: &[u8] =
    b"data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"server_error\",\"code\":\"server_error\"}}\n\n";

/// Streams `events` SSE events rendered by `render` (the JSON after `data: `), then `[DONE]`.
/// Each event goes out in its own write and HTTP chunk, as a real model server's would.
pub(crate) async fn send_sse(
    shared: &Shared,
    conn: &mut Conn,
    ctx: &Ctx,
    events: usize,
    mut render: impl FnMut(usize, &mut Vec<u8>) -> io::Result<()>,
) -> io::Result<Flow> {
    let total = events + 1;
    send_events(shared, conn, ctx, total, OPENAI_STREAM_ERROR, |i, event| {
        event.extend_from_slice(b"data: ");
        if i < events {
            render(i, event)?;
        } else {
            event.extend_from_slice(b"[DONE]");
        }
        event.extend_from_slice(b"\n\n");
        Ok(())
    })
    .await
}

/// Streams `events` whole SSE events, each rendered by `render` with its framing (`event:`/
/// `data:` lines and the blank line) and sent in its own write and HTTP chunk. Applies the
/// context's pacing, `cut_after` (drop the connection after N events, withholding the final
/// zero-length chunk) and `error_after` (send `error_event` in place of event N, then end).
pub(crate) async fn send_events(
    shared: &Shared,
    conn: &mut Conn,
    ctx: &Ctx,
    events: usize,
    error_event: &[u8],
    mut render: impl FnMut(usize, &mut Vec<u8>) -> io::Result<()>,
) -> io::Result<Flow> {
    let render = |slot: Slot, event: &mut Vec<u8>| match slot {
        Slot::Event(i) => render(i, event),
        Slot::Error(_) => {
            event.extend_from_slice(error_event);
            Ok(())
        }
    };
    send_stream(shared, conn, ctx, "text/event-stream", events, render).await
}

/// Which piece of a stream [`send_stream`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Piece N of the stream.
    Event(usize),
    /// An `error_after` fault's error, in place of piece N; nothing follows it.
    Error(usize),
}

/// Like [`send_events`] for any chunked body made of `events` pieces of `content_type` (e.g. a
/// JSON array sent element by element); `render` also writes the error an `error_after` fault
/// puts in place of a piece, so it can frame it like one.
pub(crate) async fn send_stream(
    shared: &Shared,
    conn: &mut Conn,
    ctx: &Ctx,
    content_type: &str,
    events: usize,
    render: impl FnMut(Slot, &mut Vec<u8>) -> io::Result<()>,
) -> io::Result<Flow> {
    send_stream_with(shared, conn, ctx, content_type, &[], events, render).await
}

/// [`send_stream`] with more header lines (each ending in CRLF).
pub(crate) async fn send_stream_with(
    shared: &Shared,
    conn: &mut Conn,
    ctx: &Ctx,
    content_type: &str,
    headers: &[u8],
    events: usize,
    mut render: impl FnMut(Slot, &mut Vec<u8>) -> io::Result<()>,
) -> io::Result<Flow> {
    let extra;
    let extra = if headers.is_empty() {
        &shared.sse_extra
    } else {
        extra = [shared.sse_extra.as_slice(), headers].concat();
        &extra
    };
    http::write_head(&mut conn.out, 200, content_type, None, ctx.close, extra);
    // The error always comes before the stream's terminal event.
    let error_at = ctx.error_after.map(|n| n.min(events.saturating_sub(1)));
    for i in 0..events {
        if ctx.cut_after == Some(i) {
            conn.flush_out().await?;
            return Ok(Flow::Close);
        }
        if i > 0 && !ctx.chunk_delay.is_zero() {
            tokio::time::sleep(ctx.chunk_delay).await;
        }
        let mut event = std::mem::take(&mut conn.scratch);
        event.clear();
        let errored = error_at == Some(i);
        let slot = if errored {
            Slot::Error(i)
        } else {
            Slot::Event(i)
        };
        let rendered = render(slot, &mut event);
        // An empty chunk would end the body, so an empty rendering sends nothing.
        if rendered.is_ok() && !event.is_empty() {
            http::write_chunk(&mut conn.out, &event);
        }
        conn.scratch = event;
        rendered?;
        let last = errored || i + 1 == events;
        if last && ctx.cut_after.is_none() {
            conn.out.extend_from_slice(LAST_CHUNK);
        }
        conn.flush_out().await?;
        if last {
            break;
        }
    }
    if events == 0 && ctx.cut_after.is_none() {
        conn.out.extend_from_slice(LAST_CHUNK);
        conn.flush_out().await?;
    }
    // A cut beyond the last event still withholds the terminating chunk.
    if ctx.cut_after.is_some() {
        return Ok(Flow::Close);
    }
    Ok(ctx.flow())
}
