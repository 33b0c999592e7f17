//! `POST /v1/embeddings`: small deterministic vectors, so tests can compare them across calls.

use std::io;

use serde::{Deserialize, Serialize};

use crate::handlers::{Ctx, Flow, bad_json, send_json};
use crate::http::Conn;
use crate::openai::count_words;
use crate::server::Shared;

/// The size of every vector the OpenAI route answers, and the default of the native routes.
pub(crate) const DIMENSIONS: usize = 8;

#[derive(Deserialize)]
struct EmbeddingRequest {
    #[serde(default)]
    model: Option<String>,
    input: Input,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u64>),
    TokenLists(Vec<Vec<u64>>),
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<Embedding>,
    model: &'a str,
    usage: EmbeddingUsage,
}

#[derive(Serialize)]
struct Embedding {
    object: &'static str,
    index: usize,
    embedding: [f32; DIMENSIONS],
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u32,
    total_tokens: u32,
}

/// `model_override` replaces the model the request names (Azure's deployments).
pub(crate) async fn handle(
    shared: &Shared,
    conn: &mut Conn,
    body: &[u8],
    model_override: Option<&str>,
    ctx: &Ctx,
) -> io::Result<Flow> {
    let req: EmbeddingRequest = match serde_json::from_slice(body) {
        Ok(req) => req,
        Err(e) => return bad_json(shared, conn, &e, ctx).await,
    };
    // Each input becomes (bytes to hash, token count).
    let inputs: Vec<(Vec<u8>, u32)> = match &req.input {
        Input::Text(t) => vec![(t.as_bytes().to_vec(), count_words(t))],
        Input::Texts(ts) => ts
            .iter()
            .map(|t| (t.as_bytes().to_vec(), count_words(t)))
            .collect(),
        Input::Tokens(toks) => vec![tokens(toks)],
        Input::TokenLists(lists) => lists.iter().map(|t| tokens(t)).collect(),
    };
    let prompt_tokens = inputs
        .iter()
        .map(|(_, n)| *n)
        .fold(0u32, u32::saturating_add);
    let data = inputs
        .iter()
        .enumerate()
        .map(|(index, (bytes, _))| Embedding {
            object: "embedding",
            index,
            embedding: embed(bytes),
        })
        .collect();
    let model = model_override.unwrap_or_else(|| {
        req.model
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or(&shared.config.model)
    });
    let usage = EmbeddingUsage {
        prompt_tokens,
        total_tokens: prompt_tokens,
    };
    let list = EmbeddingList {
        object: "list",
        data,
        model,
        usage,
    };
    send_json(shared, conn, 200, &list, ctx).await
}

fn tokens(toks: &[u64]) -> (Vec<u8>, u32) {
    let bytes = toks.iter().flat_map(|t| t.to_le_bytes()).collect();
    (bytes, u32::try_from(toks.len()).unwrap_or(u32::MAX))
}

/// FNV-1a seeds a splitmix64 stream; the vector is normalised so cosine similarity behaves.
pub(crate) fn embed(input: &[u8]) -> [f32; DIMENSIONS] {
    let mut v = [0f32; DIMENSIONS];
    v.copy_from_slice(&vector(input, DIMENSIONS));
    v
}

/// [`embed`] with `dimensions` values (the native embeddings routes' `outputDimensionality` and
/// `dimensions`): the same stream, longer or shorter, normalised over its own length. The first
/// [`DIMENSIONS`]-value vector of an input is the OpenAI route's, so tests can compare routes.
pub(crate) fn vector(input: &[u8], dimensions: usize) -> Vec<f32> {
    let mut state = input.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut v = vec![0f32; dimensions];
    for x in &mut v {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // Top 24 bits map exactly onto an f32 in [-1, 1).
        *x = (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}
