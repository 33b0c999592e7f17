//! Token usage, read from a JSON response body or from the SSE chunk that carries it.
//!
//! Counts come from an untrusted upstream: derived counts saturate rather than overflow, and a
//! streamed JSON body is observed in bounded memory ([`JsonResponseObserver`]).

use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Token counts of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens.
    pub prompt: u64,
    /// Output tokens.
    pub completion: u64,
    /// Input + output, as the provider reports it.
    pub total: u64,
    /// Input tokens served from the provider's prompt cache.
    pub cached: u64,
    /// Output tokens spent on reasoning.
    pub reasoning: u64,
}

/// A usage object of any of the three APIs the proxy reads: chat completions (`prompt_tokens`,
/// `completion_tokens`), Responses (`input_tokens` counting cached tokens too, `output_tokens`,
/// `*_details`) and Anthropic Messages (`input_tokens` counting neither cache reads nor cache
/// writes, which come apart).
#[derive(Deserialize, Default)]
pub(crate) struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
    #[serde(default)]
    pub(crate) input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) output_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    output_tokens_details: Option<CompletionDetails>,
    #[serde(default)]
    pub(crate) cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    /// Fields `later` names replace this one's (an Anthropic stream's `message_delta` carries
    /// the counts that changed since `message_start`).
    pub(crate) fn merge(&mut self, later: WireUsage) {
        macro_rules! take {
            ($($field:ident),*) => {$(if later.$field.is_some() { self.$field = later.$field; })*};
        }
        take!(
            prompt_tokens,
            completion_tokens,
            total_tokens,
            prompt_tokens_details,
            completion_tokens_details,
            input_tokens,
            output_tokens,
            input_tokens_details,
            output_tokens_details,
            cache_read_input_tokens,
            cache_creation_input_tokens
        );
    }

    /// The counts, in the proxy's terms.
    pub(crate) fn usage(&self) -> Usage {
        let detail = |d: &Option<PromptDetails>| d.as_ref().and_then(|d| d.cached_tokens);
        let reasoning = |d: &Option<CompletionDetails>| d.as_ref().and_then(|d| d.reasoning_tokens);
        let (prompt, completion, cached) = match (self.prompt_tokens, self.input_tokens) {
            (None, Some(input)) => {
                // Anthropic counts cache reads and writes apart from `input_tokens`; Responses
                // has neither field and counts cached tokens inside `input_tokens`.
                let read = self.cache_read_input_tokens.unwrap_or(0);
                let written = self.cache_creation_input_tokens.unwrap_or(0);
                (
                    input.saturating_add(read).saturating_add(written),
                    self.output_tokens.unwrap_or(0),
                    detail(&self.input_tokens_details).unwrap_or(read),
                )
            }
            (prompt, _) => (
                prompt.unwrap_or(0),
                self.completion_tokens.unwrap_or(0),
                detail(&self.prompt_tokens_details).unwrap_or(0),
            ),
        };
        Usage {
            prompt,
            completion,
            total: self
                .total_tokens
                .unwrap_or(prompt.saturating_add(completion)),
            cached,
            reasoning: reasoning(&self.completion_tokens_details)
                .or(reasoning(&self.output_tokens_details))
                .unwrap_or(0),
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Option<serde::de::IgnoredAny>,
}

impl From<WireUsage> for Usage {
    fn from(w: WireUsage) -> Self {
        w.usage()
    }
}

/// What a response object (or one stream chunk) tells about usage.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResponseFacts {
    /// The usage block, when present and not null.
    pub usage: Option<Usage>,
    /// The model the provider says served the request.
    pub model: Option<String>,
    /// `choices` is present but empty (a stream's usage-only chunk).
    pub empty_choices: bool,
}

/// Reads usage and model from a JSON object; `None` when it is not one.
pub fn read_response_facts(json: &[u8]) -> Option<ResponseFacts> {
    let envelope: Envelope = serde_json::from_slice(json).ok()?;
    let empty_choices = envelope.choices.is_some() && is_empty_choices(json);
    Some(ResponseFacts {
        usage: envelope.usage.map(Usage::from),
        model: envelope.model,
        empty_choices,
    })
}

/// `"choices":[]` with any whitespace: the usage-only chunk of a stream.
fn is_empty_choices(json: &[u8]) -> bool {
    let Some(at) = memchr::memmem::find(json, b"\"choices\"") else {
        return false;
    };
    let rest = json[at + b"\"choices\"".len()..]
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace());
    let mut it = rest;
    it.next() == Some(b':') && it.next() == Some(b'[') && it.next() == Some(b']')
}

/// Whether a chunk carries a non-null usage object, checked without parsing: OpenAI sends
/// `"usage":null` on every chunk of an `include_usage` stream, and only the last one matters.
pub fn has_usage_object(json: &[u8]) -> bool {
    const KEY: &[u8] = b"\"usage\"";
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&json[from..], KEY) {
        let rest = &json[from + at + KEY.len()..];
        let mut it = rest.iter().copied().skip_while(u8::is_ascii_whitespace);
        if it.next() == Some(b':') && it.find(|b| !b.is_ascii_whitespace()) == Some(b'{') {
            return true;
        }
        from += at + KEY.len();
    }
    false
}

/// A body up to this size is kept whole and parsed exactly.
const WHOLE_BODY_LIMIT: usize = 256 << 10;
/// Beyond [`WHOLE_BODY_LIMIT`], how much of the body's start and of its end is kept.
const KEPT_END: usize = 64 << 10;

/// Reads usage and model from a (non-streamed) JSON response body as it passes through, in
/// bounded memory.
///
/// A body of at most 256 KiB is kept whole and read with [`read_response_facts`]. A larger one
/// (a big embeddings response, say) keeps only its first and last 64 KiB: the model is the
/// top-level `"model"` of the start (OpenAI chat completions begin with it) or else of the end
/// (embeddings responses end with it), and the usage is the last top-level `"usage"` of the end
/// (or else the first of the start). At most 256 KiB is held while the body is small, and at
/// most 192 KiB (64 KiB + a 128 KiB tail window) once it is not.
#[derive(Debug, Default)]
pub struct JsonResponseObserver {
    /// The whole body while it is small; then its first [`KEPT_END`] bytes.
    head: Vec<u8>,
    /// Once the body is large: its last bytes, at least [`KEPT_END`] of them (at most twice).
    tail: Vec<u8>,
    /// The body outgrew [`WHOLE_BODY_LIMIT`]: `head` and `tail` are its two ends.
    large: bool,
    /// Bytes observed.
    len: u64,
}

impl JsonResponseObserver {
    /// An observer that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of the body kept (the memory the observer holds, up to allocation slack).
    pub fn held_bytes(&self) -> usize {
        self.head.len().saturating_add(self.tail.len())
    }

    /// Bytes of the body observed so far.
    pub fn body_len(&self) -> u64 {
        self.len
    }

    /// Observes the next piece of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.len = self.len.saturating_add(chunk.len() as u64);
        if self.large {
            self.push_tail(chunk);
            return;
        }
        let needed = self.head.len().saturating_add(chunk.len());
        if needed <= WHOLE_BODY_LIMIT {
            if needed > self.head.capacity() {
                // Grow by doubling, but never past the limit: the capacity stays bounded too.
                let target = needed
                    .max(self.head.capacity().saturating_mul(2))
                    .min(WHOLE_BODY_LIMIT);
                self.head.reserve_exact(target - self.head.len());
            }
            self.head.extend_from_slice(chunk);
            return;
        }
        // The body is large: keep its start, and its end so far.
        self.large = true;
        let mut tail = Vec::with_capacity(2 * KEPT_END);
        let from_chunk = chunk.len().min(KEPT_END);
        let from_head = (KEPT_END - from_chunk).min(self.head.len());
        tail.extend_from_slice(&self.head[self.head.len() - from_head..]);
        tail.extend_from_slice(&chunk[chunk.len() - from_chunk..]);
        self.tail = tail;
        if self.head.len() >= KEPT_END {
            self.head.truncate(KEPT_END);
        } else {
            let more = (KEPT_END - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..more]);
        }
        self.head.shrink_to(KEPT_END);
    }

    /// Appends to the tail window, keeping its last [`KEPT_END`] bytes at least and its size
    /// under twice that (so each byte is moved at most once more).
    fn push_tail(&mut self, chunk: &[u8]) {
        if chunk.len() >= KEPT_END {
            self.tail.clear();
            self.tail
                .extend_from_slice(&chunk[chunk.len() - KEPT_END..]);
            return;
        }
        let total = self.tail.len().saturating_add(chunk.len());
        if total > 2 * KEPT_END {
            self.tail.drain(..total - KEPT_END);
        }
        self.tail.extend_from_slice(chunk);
    }

    /// What the body tells: for a small body exactly [`read_response_facts`] (all `None` when
    /// the body is not a JSON object); for a large one, `usage` and `model` from its ends, and
    /// `empty_choices` always false (it describes stream chunks, which are small).
    pub fn finish(self) -> ResponseFacts {
        if !self.large {
            return read_response_facts(&self.head).unwrap_or_default();
        }
        let usage_in = |bytes: &[u8]| {
            value_after::<Option<WireUsage>>(bytes)
                .flatten()
                .map(Usage::from)
        };
        let model_in = |bytes: &[u8]| value_after::<Option<String>>(bytes).flatten();
        let usage = top_level_value_from_end(&self.tail, b"usage")
            .and_then(usage_in)
            .or_else(|| top_level_value_from_start(&self.head, b"usage").and_then(usage_in));
        let model = top_level_value_from_start(&self.head, b"model")
            .and_then(model_in)
            .or_else(|| top_level_value_from_end(&self.tail, b"model").and_then(model_in));
        ResponseFacts {
            usage,
            model,
            empty_choices: false,
        }
    }
}

/// The first JSON value at the start of `bytes` (whatever follows it).
fn value_after<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<T>()
        .next()?
        .ok()
}

/// The index of the quote closing the string whose contents begin at `from`.
fn string_end(json: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + memchr::memchr2(b'"', b'\\', json.get(from..)?)?;
        if json[at] == b'"' {
            return Some(at);
        }
        from = at + 2;
    }
}

/// The index of the quote opening the string whose closing quote is at `close`: the nearest
/// quote before it not escaped by an odd run of backslashes.
fn string_start(json: &[u8], close: usize) -> Option<usize> {
    let mut before = close;
    loop {
        let at = memchr::memrchr(b'"', &json[..before])?;
        let backslashes = json[..at].iter().rev().take_while(|b| **b == b'\\').count();
        if backslashes % 2 == 0 {
            return Some(at);
        }
        before = at;
    }
}

/// What follows the colon of the first `key` of the top-level object, scanning from the
/// start of a JSON text (which may be cut short).
fn top_level_value_from_start<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => {
                let end = string_end(json, i + 1)?;
                let after = end + 1;
                let colon = after
                    + json[after..]
                        .iter()
                        .take_while(|b| b.is_ascii_whitespace())
                        .count();
                if depth == 1 && json.get(colon) == Some(&b':') {
                    if &json[i + 1..end] == key {
                        return Some(&json[colon + 1..]);
                    }
                    i = colon + 1;
                } else {
                    i = after;
                }
                continue;
            }
            b'{' | b'[' => depth = depth.saturating_add(1),
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return None;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// What follows the colon of the last `key` of the top-level object, scanning back from the
/// end of a JSON text (whose start may be missing).
fn top_level_value_from_end<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    // Depth seen from the end: 1 is inside the top-level object.
    let mut depth = 0usize;
    // A colon at depth 1 with only whitespace between it and the scan position.
    let mut colon: Option<usize> = None;
    let mut i = json.len();
    while i > 0 {
        i -= 1;
        match json[i] {
            b'"' => {
                let open = string_start(json, i)?;
                if depth == 1
                    && let Some(colon) = colon
                    && &json[open + 1..i] == key
                {
                    return Some(&json[colon + 1..]);
                }
                colon = None;
                i = open;
            }
            b':' if depth == 1 => colon = Some(i),
            b'}' | b']' => {
                depth = depth.saturating_add(1);
                colon = None;
            }
            b'{' | b'[' => {
                if depth <= 1 {
                    return None;
                }
                depth -= 1;
                colon = None;
            }
            b if b.is_ascii_whitespace() => {}
            _ => colon = None,
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_every_token_count_of_a_completion() {
        let body = br#"{"id":"x","model":"m","choices":[{"index":0}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":2}}}"#;
        let facts = read_response_facts(body).unwrap();
        assert_eq!(
            facts.usage,
            Some(Usage {
                prompt: 11,
                completion: 7,
                total: 18,
                cached: 3,
                reasoning: 2
            })
        );
        assert_eq!(facts.model.as_deref(), Some("m"));
        assert!(!facts.empty_choices);
    }

    #[test]
    fn null_usage_is_no_usage() {
        let facts = read_response_facts(br#"{"choices":[],"usage":null}"#).unwrap();
        assert_eq!(facts.usage, None);
        assert!(facts.empty_choices);
        assert!(!has_usage_object(br#"{"usage": null}"#));
        assert!(has_usage_object(
            br#"{"usage": null, "x":{"usage" : {"a":1}}}"#
        ));
    }

    #[test]
    fn total_defaults_to_the_sum() {
        let facts = read_response_facts(br#"{"usage":{"prompt_tokens":2,"completion_tokens":3}}"#);
        assert_eq!(facts.unwrap().usage.unwrap().total, 5);
    }

    #[test]
    fn derived_counts_saturate() {
        let facts = read_response_facts(
            br#"{"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":3}}"#,
        );
        assert_eq!(facts.unwrap().usage.unwrap().total, u64::MAX);
    }

    /// A deterministic stream of chunk sizes in `1..=max`.
    fn chunk_sizes(seed: u64, max: usize) -> impl Iterator<Item = usize> {
        let mut state = seed | 1;
        std::iter::repeat_with(move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % max as u64) as usize + 1
        })
    }

    /// Feeds `body` in pieces; checks the memory bound after every piece.
    fn observe(body: &[u8], seed: u64, max_chunk: usize) -> ResponseFacts {
        let mut observer = JsonResponseObserver::new();
        let mut rest = body;
        for size in chunk_sizes(seed, max_chunk) {
            if rest.is_empty() {
                break;
            }
            let (piece, after) = rest.split_at(size.min(rest.len()));
            observer.feed(piece);
            rest = after;
            assert!(observer.held_bytes() <= WHOLE_BODY_LIMIT);
            assert!(observer.head.capacity() <= WHOLE_BODY_LIMIT);
            if observer.large {
                assert!(observer.held_bytes() <= 3 * KEPT_END);
                assert!(observer.head.capacity() + observer.tail.capacity() <= 3 * KEPT_END);
            }
        }
        assert_eq!(observer.body_len(), body.len() as u64);
        observer.finish()
    }

    #[test]
    fn a_small_body_is_read_exactly() {
        let body = br#"{"id":"x","model":"m","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7}}"#;
        for seed in 1..20 {
            let facts = observe(body, seed, 9);
            assert_eq!(facts, read_response_facts(body).unwrap());
        }
        assert_eq!(
            JsonResponseObserver::new().finish(),
            ResponseFacts::default()
        );
        let mut observer = JsonResponseObserver::new();
        observer.feed(b"not json");
        assert_eq!(observer.finish(), ResponseFacts::default());
    }

    /// An OpenAI embeddings response: `model` and `usage` come after the (huge) `data`, which
    /// holds decoys: nested `usage`/`model` keys and strings quoting them.
    fn embeddings_body(target: usize) -> Vec<u8> {
        let mut body = br#"{"object":"list","data":["#.to_vec();
        let mut index = 0;
        while body.len() < target {
            if index > 0 {
                body.push(b',');
            }
            body.extend_from_slice(
                format!(r#"{{"object":"embedding","index":{index},"embedding":["#).as_bytes(),
            );
            for i in 0..64 {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(
                    format!("{:.6}", (index * 64 + i) as f64 * -1e-4).as_bytes(),
                );
            }
            body.extend_from_slice(
                br#"],"meta":{"usage":{"prompt_tokens":999},"model":"decoy"},"note":"\"usage\":{\"prompt_tokens\":998} \\"}"#,
            );
            index += 1;
        }
        body.extend_from_slice(
            br#"],
  "model": "text-embedding-3-small",
  "usage": {"prompt_tokens": 8123, "total_tokens": 8123}
}
"#,
        );
        body
    }

    #[test]
    fn a_large_embeddings_body_yields_usage_and_model_in_bounded_memory() {
        let body = embeddings_body(5 << 20);
        assert!(body.len() >= 5 << 20);
        let expected = ResponseFacts {
            usage: Some(Usage {
                prompt: 8123,
                completion: 0,
                total: 8123,
                cached: 0,
                reasoning: 0,
            }),
            model: Some("text-embedding-3-small".into()),
            empty_choices: false,
        };
        for (seed, max_chunk) in [(1, 1 << 10), (7, 16 << 10), (42, 100 << 10), (3, 300 << 10)] {
            assert_eq!(observe(&body, seed, max_chunk), expected, "seed {seed}");
        }
        // Whole, in one piece.
        assert_eq!(observe(&body, 1, body.len()), expected);
    }

    #[test]
    fn a_large_chat_body_takes_the_model_from_its_start() {
        let text = "z\\\"".repeat(200 << 10);
        let body = format!(
            r#"{{"id":"c","object":"chat.completion","model":"gpt-x","choices":[{{"index":0,"message":{{"role":"assistant","content":"{text}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":5,"completion_tokens":600000,"completion_tokens_details":{{"reasoning_tokens":9}}}},"system_fingerprint":"fp"}}"#
        );
        let facts = observe(body.as_bytes(), 5, 50 << 10);
        assert_eq!(facts.model.as_deref(), Some("gpt-x"));
        let usage = facts.usage.unwrap();
        assert_eq!(
            (usage.prompt, usage.total, usage.reasoning),
            (5, 600_005, 9)
        );
    }

    #[test]
    fn top_level_keys_are_found_from_either_end() {
        let json =
            br#" {"a":{"usage":1},"s":"\"usage\":2,\\","usage" : {"x":3} , "b":[{"usage":4}]} "#;
        assert_eq!(
            &top_level_value_from_end(json, b"usage").unwrap()[..9],
            br#" {"x":3} "#
        );
        assert_eq!(
            &top_level_value_from_start(json, b"usage").unwrap()[..9],
            br#" {"x":3} "#
        );
        assert_eq!(top_level_value_from_end(json, b"x"), None);
        assert_eq!(top_level_value_from_start(json, b"x"), None);
        // Cut ends: the start scan stops where the text does.
        assert_eq!(
            top_level_value_from_start(br#"{"a":"usage"#, b"usage"),
            None
        );
        assert_eq!(top_level_value_from_end(br#"age":1}"#, b"usage"), None);
        assert_eq!(
            value_after::<Option<String>>(br#" "m" , "x":1}"#),
            Some(Some("m".into()))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn garbage_never_panics_the_json_observer(
            pieces in prop::collection::vec(
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..64),
                    Just(br#""usage":{"prompt_tokens":1}"#.to_vec()),
                    Just(br#""model":"#.to_vec()),
                    Just(b"\\\"{}[]:,".to_vec()),
                ],
                0..64,
            ),
            filler in prop::sample::select(vec![0usize, 1, 100 << 10, 300 << 10]),
            filler_byte in prop::sample::select(b"\"\\{}[]: a".to_vec()),
        ) {
            let mut observer = JsonResponseObserver::new();
            for (i, piece) in pieces.iter().enumerate() {
                if i == pieces.len() / 2 {
                    observer.feed(&vec![filler_byte; filler]);
                }
                observer.feed(piece);
                prop_assert!(observer.held_bytes() <= WHOLE_BODY_LIMIT);
            }
            let _ = observer.finish();
            let body = pieces.concat();
            let _ = top_level_value_from_end(&body, b"usage");
            let _ = top_level_value_from_start(&body, b"usage");
        }
    }
}
