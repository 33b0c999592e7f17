//! Property tests: no provider stream or body, however malformed or split, panics the
//! translators of the Anthropic, Gemini and Bedrock providers (chat and embeddings), and a split
//! never changes their output; no client embeddings request panics their request translation.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use agentgateway_proxy::translate::anthropic::response as anthropic_response;
use agentgateway_proxy::translate::anthropic::stream::StreamTranslator as AnthropicStream;
use agentgateway_proxy::translate::bedrock::response as bedrock_response;
use agentgateway_proxy::translate::bedrock::stream::StreamTranslator as BedrockStream;
use agentgateway_proxy::translate::embeddings::{self, Api, Encoding, Expected};
use agentgateway_proxy::translate::gemini::response as gemini_response;
use agentgateway_proxy::translate::gemini::stream::StreamTranslator as GeminiStream;
use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use proptest::prelude::*;
use serde_json::json;

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
        Just(br#"{"output":{"message":{"role":"assistant","content":[{"text":"x"},{"toolUse":{"toolUseId":"t","name":"f","input":null}}]}},"stopReason":"tool_use","usage":{"inputTokens":18446744073709551615,"outputTokens":1,"cacheReadInputTokens":18446744073709551615,"cacheWriteInputTokens":18446744073709551615}}"#.to_vec()),
        Just(br#"{"__type":"a#ValidationException:x","Message":"x"}"#.to_vec()),
        Just(br#"{"embeddings":[{"values":[0.5,-1e300,3]},{"values":[]}]}"#.to_vec()),
        Just(br#"{"predictions":[{"embeddings":{"values":[1e38,1e39],"statistics":{"token_count":1e300,"truncated":false}}}]}"#.to_vec()),
        Just(br#"{"embedding":[-0.0,5e-324],"inputTextTokenCount":-18446744073709551615}"#.to_vec()),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

/// One Bedrock event-stream frame, well framed (valid lengths and CRCs) but otherwise arbitrary:
/// any message and event type, headers missing or of the wrong type, payloads biased towards
/// Converse's events.
fn bedrock_frame() -> impl Strategy<Value = Vec<u8>> {
    let message_type = prop_oneof![
        4 => Just("event"),
        1 => Just("exception"),
        1 => Just("error"),
        1 => Just("other"),
    ];
    let event_type = prop_oneof![
        Just("messageStart"),
        Just("contentBlockStart"),
        Just("contentBlockDelta"),
        Just("contentBlockStop"),
        Just("messageStop"),
        Just("metadata"),
        Just("somethingNew"),
    ];
    let payload = prop_oneof![
        Just(br#"{"role":"assistant","p":"ab"}"#.to_vec()),
        Just(br#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"t","name":"f"}}}"#.to_vec()),
        Just(br#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"a"}}}"#.to_vec()),
        Just(br#"{"contentBlockIndex":0,"delta":{"text":"hi"}}"#.to_vec()),
        Just(br#"{"contentBlockIndex":0,"delta":{"reasoningContent":{"text":"hm"}}}"#.to_vec()),
        Just(br#"{"stopReason":"end_turn"}"#.to_vec()),
        Just(br#"{"usage":{"inputTokens":18446744073709551615,"outputTokens":18446744073709551615,"cacheReadInputTokens":18446744073709551615}}"#.to_vec()),
        Just(br#"{"message":"slow down"}"#.to_vec()),
        Just(br#"{"contentBlockIndex":-1}"#.to_vec()),
        prop::collection::vec(any::<u8>(), 0..24),
    ];
    (message_type, event_type, payload, 0u8..8).prop_map(
        |(message_type, event_type, payload, shape)| {
            let mut message = Message::new(payload);
            let string = |v: &str| HeaderValue::String(v.to_string().into());
            // Most frames carry every header as a string; some lack one, or hold a number.
            if shape != 1 {
                let value = if shape == 2 {
                    HeaderValue::Int32(7)
                } else {
                    string(message_type)
                };
                message = message.add_header(Header::new(":message-type", value));
            }
            if shape != 3 {
                message = message.add_header(Header::new(":event-type", string(event_type)));
                message = message.add_header(Header::new(
                    ":exception-type",
                    string("throttlingException"),
                ));
                message = message.add_header(Header::new(":error-code", string("InternalFailure")));
            }
            let mut out = Vec::new();
            write_message_to(&message, &mut out).unwrap();
            out
        },
    )
}

/// Bedrock event streams: well-framed events, now and then a few arbitrary bytes.
fn bedrock_stream() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        8 => bedrock_frame(),
        1 => prop::collection::vec(any::<u8>(), 0..8),
    ];
    prop::collection::vec(pieces, 0..30).prop_map(|v| v.concat())
}

/// Feeds `stream` whole and cut at `cuts` to two Bedrock translators: the same output, or the
/// same first error, and (without an error) the same end.
fn bedrock_whole_and_split(
    stream: &[u8],
    cuts: &[prop::sample::Index],
    max: usize,
) -> Result<(), TestCaseError> {
    let mut whole = BedrockStream::new("m", 1, max);
    let expected = run(&[stream.to_vec()], |b| {
        whole.feed(b).map(|o| o.to_vec()).map_err(|e| e.to_string())
    });
    let expected_end = whole
        .finish()
        .map(|b| b.to_vec())
        .map_err(|e| e.to_string());
    let mut split = BedrockStream::new("m", 1, max);
    let got = run(&cut(stream, cuts), |b| {
        split.feed(b).map(|o| o.to_vec()).map_err(|e| e.to_string())
    });
    prop_assert_eq!(&got, &expected);
    if got.is_ok() {
        prop_assert_eq!(
            split
                .finish()
                .map(|b| b.to_vec())
                .map_err(|e| e.to_string()),
            expected_end
        );
    }
    Ok(())
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
    fn the_bedrock_stream_translator_never_panics_on_arbitrary_bytes(
        stream in prop_oneof![provider_stream(), prop::collection::vec(any::<u8>(), 0..512)],
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        max in 0usize..4096,
    ) {
        bedrock_whole_and_split(&stream, &cuts, max)?;
    }

    #[test]
    fn the_bedrock_stream_translator_never_panics_on_well_framed_events_and_ignores_splits(
        stream in bedrock_stream(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        max in prop_oneof![1 => 0usize..64, 4 => 64usize..4096],
    ) {
        bedrock_whole_and_split(&stream, &cuts, max)?;
    }

    #[test]
    fn whole_bodies_never_panic_the_converters(
        body in provider_stream(),
        error_type in proptest::option::of(".{0,40}"),
    ) {
        let _ = anthropic_response::to_chat_completion(&body, 1);
        let _ = anthropic_response::to_openai_error(&body);
        let _ = gemini_response::to_chat_completion(&body, "m", 1);
        let _ = gemini_response::to_openai_error(&body);
        let _ = bedrock_response::to_chat_completion(&body, "m", 1);
        let error = bedrock_response::to_openai_error(&body, error_type.as_deref());
        prop_assert!(serde_json::from_slice::<serde_json::Value>(&error).is_ok());
        for api in [Api::Gemini, Api::Vertex, Api::Titan] {
            for encoding in [Encoding::Float, Encoding::Base64] {
                for inputs in [1, 2] {
                    let expected = Expected { api, inputs, encoding };
                    if let Some(out) = embeddings::to_openai(&body, "m", &expected) {
                        let list: serde_json::Value = serde_json::from_slice(&out).unwrap();
                        prop_assert_eq!(list["data"].as_array().map(Vec::len), Some(inputs));
                    }
                }
            }
        }
    }

    #[test]
    fn embeddings_requests_never_panic_the_request_translation(
        input in json_value(),
        dimensions in json_value(),
        encoding in prop_oneof![Just(json!("float")), Just(json!("base64")), json_value()],
    ) {
        let request = json!({"model": "m", "input": input, "dimensions": dimensions, "encoding_format": encoding});
        for api in [Api::Gemini, Api::Vertex, Api::Titan] {
            let Ok(read) = embeddings::read(&request, api) else { continue };
            prop_assert!(!read.inputs.is_empty() && read.inputs.len() <= embeddings::MAX_INPUTS);
            let _ = embeddings::gemini::to_batch_embed(&read, "m");
            let _ = embeddings::vertex::to_predict(&read);
            if let Ok(body) = embeddings::titan::to_invoke(&read) {
                prop_assert!(body["inputText"].is_string());
            }
        }
    }
}

/// Any JSON value, biased towards what an embeddings request holds.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "\\PC{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
