//! Property tests: no provider stream or body, however malformed or split, panics the
//! translators of the Anthropic and Gemini providers, and a split never changes their output.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use agentgateway_proxy::translate::anthropic::response as anthropic_response;
use agentgateway_proxy::translate::anthropic::stream::StreamTranslator as AnthropicStream;
use agentgateway_proxy::translate::gemini::response as gemini_response;
use agentgateway_proxy::translate::gemini::stream::StreamTranslator as GeminiStream;
use proptest::prelude::*;

/// Byte strings biased towards the syntax of both providers' streams.
fn provider_stream() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"event: ".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(br#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1}}}"#.to_vec()),
        Just(br#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t","name":"f"}}"#.to_vec()),
        Just(br#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a"}}"#.to_vec()),
        Just(br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#.to_vec()),
        Just(br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":18446744073709551615}}"#.to_vec()),
        Just(br#"{"type":"message_stop"}"#.to_vec()),
        Just(br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#.to_vec()),
        Just(br#"{"candidates":[{"content":{"parts":[{"text":"x"},{"functionCall":{"name":"f","args":null}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":18446744073709551615,"candidatesTokenCount":18446744073709551615}}"#.to_vec()),
        Just(br#"{"promptFeedback":{"blockReason":"SAFETY"}}"#.to_vec()),
        Just(br#"{"error":{"code":503,"status":"UNAVAILABLE","message":"x"}}"#.to_vec()),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

/// `stream` cut at the given points, in order.
fn cut(stream: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for at in points.into_iter().chain([stream.len()]) {
        pieces.push(stream[from..at].to_vec());
        from = at;
    }
    pieces
}

/// Feeds `pieces` until the first error: the whole output, or the error (what a failing call
/// had produced is not returned, so only the error itself can be compared across splits).
fn run<F>(pieces: &[Vec<u8>], mut feed: F) -> Result<Vec<u8>, String>
where
    F: FnMut(&[u8]) -> Result<Vec<u8>, String>,
{
    let mut out = Vec::new();
    for piece in pieces {
        out.extend(feed(piece)?);
    }
    Ok(out)
}

proptest! {
    #[test]
    fn the_anthropic_stream_translator_never_panics_and_ignores_splits(
        stream in provider_stream(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        max in 16usize..4096,
    ) {
        let mut whole = AnthropicStream::new(1, max);
        let expected = run(std::slice::from_ref(&stream), |b| whole.feed(b).map(|o| o.to_vec()).map_err(|e| e.to_string()));
        let _ = whole.finish();
        let mut split = AnthropicStream::new(1, max);
        let got = run(&cut(&stream, &cuts), |b| split.feed(b).map(|o| o.to_vec()).map_err(|e| e.to_string()));
        let _ = split.finish();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn the_gemini_stream_translator_never_panics_and_ignores_splits(
        stream in provider_stream(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        max in 16usize..4096,
    ) {
        let mut whole = GeminiStream::new("m", 1, max);
        let expected = run(std::slice::from_ref(&stream), |b| whole.feed(b).map(|o| o.to_vec()).map_err(|e| e.to_string()));
        let expected_end = whole.finish().map(|b| b.to_vec()).map_err(|e| e.to_string());
        let mut split = GeminiStream::new("m", 1, max);
        let got = run(&cut(&stream, &cuts), |b| split.feed(b).map(|o| o.to_vec()).map_err(|e| e.to_string()));
        prop_assert_eq!(&got, &expected);
        if got.is_ok() {
            prop_assert_eq!(split.finish().map(|b| b.to_vec()).map_err(|e| e.to_string()), expected_end);
        }
    }

    #[test]
    fn whole_bodies_never_panic_the_converters(body in provider_stream()) {
        let _ = anthropic_response::to_chat_completion(&body, 1);
        let _ = anthropic_response::to_openai_error(&body);
        let _ = gemini_response::to_chat_completion(&body, "m", 1);
        let _ = gemini_response::to_openai_error(&body);
    }
}
