//! Token usage, read from a JSON response body or from the SSE chunk that carries it.

use serde::Deserialize;

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

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
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
        Self {
            prompt: w.prompt_tokens,
            completion: w.completion_tokens,
            total: w
                .total_tokens
                .unwrap_or(w.prompt_tokens + w.completion_tokens),
            cached: w
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            reasoning: w
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
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
    let rest = json[at + 9..]
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace());
    let mut it = rest;
    it.next() == Some(b':') && it.next() == Some(b'[') && it.next() == Some(b']')
}

/// Whether a chunk carries a non-null usage object, checked without parsing: OpenAI sends
/// `"usage":null` on every chunk of an `include_usage` stream, and only the last one matters.
pub fn has_usage_object(json: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = memchr::memmem::find(&json[from..], b"\"usage\"") {
        let rest = &json[from + at + 7..];
        let mut it = rest.iter().copied().skip_while(u8::is_ascii_whitespace);
        if it.next() == Some(b':') && it.find(|b| !b.is_ascii_whitespace()) == Some(b'{') {
            return true;
        }
        from += at + 7;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
