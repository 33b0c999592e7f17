//! `POST /v1/completions`, the legacy text-completion API, with the same reply rules as chat.

use std::io;

use serde::{Deserialize, Serialize};

use crate::handlers::{Ctx, Flow, bad_json, send_json, send_sse};
use crate::http::Conn;
use crate::openai::{CREATED, Usage, count_words, reply_pieces, requested_reply};
use crate::server::Shared;

#[derive(Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Prompt,
    #[serde(default)]
    stream: Option<bool>,
}

#[derive(Default, Deserialize)]
#[serde(untagged)]
enum Prompt {
    #[default]
    None,
    Text(String),
    Texts(Vec<String>),
}

#[derive(Serialize)]
struct TextCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [TextChoice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct TextChoice<'a> {
    text: &'a str,
    index: u32,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    body: &[u8],
    ctx: &Ctx,
) -> io::Result<Flow> {
    let req: CompletionRequest = match serde_json::from_slice(body) {
        Ok(req) => req,
        Err(e) => return bad_json(shared, conn, &e, ctx).await,
    };
    let prompts: &[String] = match &req.prompt {
        Prompt::None => &[],
        Prompt::Text(t) => std::slice::from_ref(t),
        Prompt::Texts(ts) => ts,
    };
    let reply = prompts
        .last()
        .and_then(|p| requested_reply(p))
        .unwrap_or(&shared.reply);
    let prompt_tokens = prompts
        .iter()
        .map(|p| count_words(p))
        .fold(0u32, u32::saturating_add);
    let usage = Usage::new(prompt_tokens, count_words(reply));
    let model = req
        .model
        .as_deref()
        .filter(|m| !m.is_empty())
        .unwrap_or(&shared.config.model);
    let id = format!("cmpl-mock-{}", shared.next_id());
    let completion = |text, finish_reason, usage| {
        let choice = TextChoice {
            text,
            index: 0,
            logprobs: None,
            finish_reason,
        };
        let object = "text_completion";
        TextCompletion {
            id: &id,
            object,
            created: CREATED,
            model,
            choices: [choice],
            usage,
        }
    };

    if req.stream != Some(true) {
        return send_json(
            shared,
            conn,
            200,
            &completion(reply, Some("stop"), Some(usage)),
            ctx,
        )
        .await;
    }
    let pieces = reply_pieces(reply);
    // One event per word, then an empty one carrying finish_reason and usage.
    send_sse(shared, conn, ctx, pieces.len() + 1, |i, buf| {
        let event = match pieces.get(i) {
            Some(piece) => completion(piece, None, None),
            None => completion("", Some("stop"), Some(usage)),
        };
        serde_json::to_writer(buf, &event).map_err(io::Error::from)
    })
    .await
}
