//! The assistant turn of the Claude-style APIs (Anthropic's Messages API, Claude on Vertex AI and
//! Bedrock's Converse API): its text, its tool call, why it stopped and what it cost. One rule set,
//! so a prompt gets the same answer whichever of these APIs carries it.
//!
//! * Tool use: with tools given, a choice of `any`/`tool` (or `auto` and the word `weather` in the
//!   last user text) calls the chosen (else first) tool with [`example_input`] of its schema and
//!   stops for `tool_use`. A forced choice gets no text before the call (the APIs prefill the
//!   turn), `auto` gets the reply text first.
//! * Tokens are words, plus one per [`JSON_PIECE`]-byte piece of the call's input JSON (the pieces
//!   a stream sends). `max_tokens` below that cuts the text by words (or drops the call) and stops
//!   for `max_tokens`; a stop sequence found in the text cuts it there (`stop_sequence`).

use serde_json::Value;

use crate::anthropic::{Tool, ToolChoice, example_input};
use crate::openai::{count_words, reply_pieces};

/// Longest piece of a streamed tool input, in bytes (longer only to reach a char boundary).
pub(crate) const JSON_PIECE: usize = 8;

/// What a request asks of the turn, whichever API carried it.
pub(crate) struct Ask<'a> {
    /// `u64::MAX` when the request sets no limit.
    pub max_tokens: u64,
    pub stop_sequences: &'a [&'a str],
    pub tools: &'a [Tool<'a>],
    pub tool_choice: ToolChoice<'a>,
    /// The text of the last user message.
    pub last_user_text: &'a str,
}

/// What the assistant turn contains and why it stopped.
pub(crate) struct Outcome<'a> {
    pub text: Option<&'a str>,
    pub tool: Option<ToolCall<'a>>,
    /// `end_turn`, `tool_use`, `max_tokens` or `stop_sequence`.
    pub stop_reason: &'static str,
    pub stop_sequence: Option<&'a str>,
    pub output_tokens: u32,
}

pub(crate) struct ToolCall<'a> {
    pub name: &'a str,
    pub input: Value,
    /// `input` as its JSON text, which streams send in [`json_pieces`].
    pub json: String,
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Decides the turn for `ask`, `reply` being the text the model would write.
pub(crate) fn plan<'a>(ask: &Ask<'a>, reply: &'a str) -> Outcome<'a> {
    let max = ask.max_tokens;
    let tool = chosen_tool(ask);
    let forced = matches!(ask.tool_choice, ToolChoice::Any | ToolChoice::Tool(_));
    let mut out = Outcome {
        text: None,
        tool: None,
        stop_reason: "end_turn",
        stop_sequence: None,
        output_tokens: 0,
    };
    let mut used = 0u64;
    if !(forced && tool.is_some()) {
        let (text, stop_sequence) = match first_stop(reply, ask.stop_sequences) {
            Some((at, seq)) => (&reply[..at], Some(seq)),
            None => (reply, None),
        };
        let words = u64::from(count_words(text));
        if words > max {
            // Every piece holds exactly one word here, so `max` pieces are `max` tokens.
            let end: usize = reply_pieces(text)
                .iter()
                .take(usize::try_from(max).unwrap_or(usize::MAX))
                .map(|p| p.len())
                .sum();
            out.text = Some(&text[..end]);
            out.stop_reason = "max_tokens";
            out.output_tokens = clamp(max);
            return out;
        }
        out.text = Some(text);
        used = words;
        if stop_sequence.is_some() {
            out.stop_reason = "stop_sequence";
            out.stop_sequence = stop_sequence;
            out.output_tokens = clamp(used);
            return out;
        }
    }
    if let Some(tool) = tool {
        let input = example_input(tool.input_schema);
        let json = input.to_string();
        let pieces = json_pieces(&json).len() as u64;
        if used.saturating_add(pieces) > max {
            // The budget runs out inside the call: it is dropped rather than sent half-formed.
            out.stop_reason = "max_tokens";
            out.output_tokens = clamp(max);
            return out;
        }
        used += pieces;
        out.stop_reason = "tool_use";
        out.tool = Some(ToolCall {
            name: tool.name,
            input,
            json,
        });
    }
    out.output_tokens = clamp(used);
    out
}

fn chosen_tool<'r, 'a>(ask: &'r Ask<'a>) -> Option<&'r Tool<'a>> {
    match ask.tool_choice {
        ToolChoice::None => None,
        ToolChoice::Tool(name) => ask.tools.iter().find(|t| t.name == name),
        ToolChoice::Any => ask.tools.first(),
        ToolChoice::Auto if mentions_weather(ask.last_user_text) => ask.tools.first(),
        ToolChoice::Auto => None,
    }
}

fn mentions_weather(text: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric())
        .any(|w| w.eq_ignore_ascii_case("weather"))
}

/// The earliest stop sequence in `text` (the first listed wins a tie), and where it starts.
fn first_stop<'s>(text: &str, sequences: &[&'s str]) -> Option<(usize, &'s str)> {
    sequences
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s).map(|at| (at, *s)))
        .min_by_key(|(at, _)| *at)
}

/// Splits JSON text into pieces of at most [`JSON_PIECE`] bytes, on char boundaries.
pub(crate) fn json_pieces(json: &str) -> Vec<&str> {
    let mut pieces = Vec::with_capacity(json.len() / JSON_PIECE + 1);
    let mut rest = json;
    while !rest.is_empty() {
        let mut end = JSON_PIECE.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    pieces
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ask<'a>(tools: &'a [Tool<'a>], choice: ToolChoice<'a>, max: u64, text: &'a str) -> Ask<'a> {
        Ask {
            max_tokens: max,
            stop_sequences: &[],
            tools,
            tool_choice: choice,
            last_user_text: text,
        }
    }

    #[test]
    fn json_pieces_concatenate_back_and_respect_char_boundaries() {
        let json = r#"{"city":"Zürich","note":"ünïcödé"}"#;
        let pieces = json_pieces(json);
        assert_eq!(pieces.concat(), json);
        assert!(
            pieces
                .iter()
                .all(|p| !p.is_empty() && p.len() <= JSON_PIECE + 3)
        );
        assert!(json_pieces("").is_empty());
    }

    #[test]
    fn max_tokens_truncates_the_reply_by_words() {
        let out = plan(
            &ask(&[], ToolChoice::Auto, 3, "hi"),
            "one two three four five",
        );
        assert_eq!(out.text, Some("one two three"));
        assert_eq!((out.stop_reason, out.output_tokens), ("max_tokens", 3));
    }

    #[test]
    fn the_earliest_stop_sequence_cuts_the_reply() {
        let seqs = ["four", "two"];
        let a = Ask {
            stop_sequences: &seqs,
            ..ask(&[], ToolChoice::Auto, 100, "hi")
        };
        let out = plan(&a, "one two three four");
        assert_eq!(out.text, Some("one "));
        assert_eq!(out.stop_reason, "stop_sequence");
        assert_eq!(out.stop_sequence, Some("two"));
        assert_eq!(out.output_tokens, 1);
    }

    #[test]
    fn weather_with_tools_calls_the_first_tool_unless_choice_is_none() {
        let schema = json!({"type": "object", "properties": {"location": {"type": "string"}}});
        let other = json!({"type": "object"});
        let tools = [
            Tool {
                name: "get_weather",
                input_schema: Some(&schema),
            },
            Tool {
                name: "other",
                input_schema: Some(&other),
            },
        ];
        let text = "What's the Weather?";
        let out = plan(&ask(&tools, ToolChoice::Auto, 100, text), "Let me check.");
        assert_eq!(out.text, Some("Let me check."));
        let tool = out.tool.as_ref().unwrap();
        assert_eq!(tool.name, "get_weather");
        assert_eq!(tool.json, r#"{"location":"mock location"}"#);
        assert_eq!(out.stop_reason, "tool_use");
        assert_eq!(out.output_tokens, 3 + json_pieces(&tool.json).len() as u32);

        let out = plan(&ask(&tools, ToolChoice::None, 100, text), "Let me check.");
        assert!(out.tool.is_none());
        assert_eq!(out.stop_reason, "end_turn");

        let forced = ask(&tools, ToolChoice::Tool("other"), 1, text);
        let out = plan(&forced, "Let me check.");
        assert_eq!(out.text, None, "a forced tool call has no text block");
        assert_eq!(
            out.tool.as_ref().map(|t| t.json.as_str()),
            Some("{}"),
            "`{{}}` is one piece, within max_tokens 1"
        );
    }
}
