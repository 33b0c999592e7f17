//! Property tests: client and upstream input never panics the parsers, and pass-through streams
//! reach the client byte for byte however the upstream chunks them.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use agentgateway_proxy::attempts::retry_after;
use agentgateway_proxy::openai::request::JsonRequest;
use agentgateway_proxy::openai::sse::{DEFAULT_MAX_EVENT_BYTES, SseError, SseObserver};
use agentgateway_proxy::openai::usage::{
    JsonResponseObserver, has_usage_object, read_response_facts,
};
use bytes::Bytes;
use proptest::prelude::*;

/// Byte strings biased towards the syntax the parsers care about.
fn sse_like() -> impl Strategy<Value = Vec<u8>> {
    let pieces = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(b"\r\r".to_vec()),
        Just(b"[DONE]".to_vec()),
        Just(br#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#.to_vec()),
        Just(br#"{"choices":[{"delta":{"content":"x"}}],"usage":null}"#.to_vec()),
        Just(b"event: error".to_vec()),
        prop::collection::vec(any::<u8>(), 0..16),
    ];
    prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat())
}

/// `stream` cut at the given points, in order.
fn cut(stream: &[u8], cuts: &[prop::sample::Index]) -> Vec<Bytes> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for at in points.into_iter().chain([stream.len()]) {
        pieces.push(Bytes::copy_from_slice(&stream[from..at]));
        from = at;
    }
    pieces
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn request_parsing_never_panics_and_rewrites_stay_json(body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(request) = JsonRequest::parse(bytes::Bytes::from(body)) {
            let encoded = request.encode("m", request.injects_usage());
            let value: serde_json::Value = serde_json::from_slice(&encoded.to_vec()).unwrap();
            prop_assert_eq!(&value["model"], "m");
        }
    }

    #[test]
    fn json_objects_keep_their_fields_through_a_rewrite(
        fields in prop::collection::btree_map("[a-z_\"\\\\é]{1,8}", any::<i32>(), 0..8)
    ) {
        let object: serde_json::Map<String, serde_json::Value> =
            fields.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(*v))).collect();
        let body = serde_json::to_vec(&object).unwrap();
        let request = JsonRequest::parse(bytes::Bytes::from(body)).unwrap();
        let out: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&request.encode("m", false).to_vec()).unwrap();
        for (k, v) in &object {
            if k != "model" {
                prop_assert_eq!(out.get(k), Some(v));
            }
        }
    }

    #[test]
    fn pass_through_streams_are_forwarded_byte_for_byte(stream in sse_like(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let mut observer = SseObserver::new(false, DEFAULT_MAX_EVENT_BYTES);
        let mut out = Vec::new();
        for piece in cut(&stream, &cuts) {
            out.extend_from_slice(&observer.feed(piece).unwrap());
        }
        out.extend_from_slice(&observer.finish());
        prop_assert_eq!(out, stream);
    }

    #[test]
    fn drop_mode_never_panics_and_never_grows_the_stream(stream in sse_like()) {
        let mut observer = SseObserver::new(true, DEFAULT_MAX_EVENT_BYTES);
        let mut out = observer.feed(Bytes::from(stream.clone())).unwrap().to_vec();
        out.extend_from_slice(&observer.finish());
        prop_assert!(out.len() <= stream.len());
    }

    #[test]
    fn a_small_event_limit_fails_cleanly_and_bounds_what_is_held(
        stream in sse_like(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        limit in 0usize..64,
        drop_usage_only in any::<bool>(),
    ) {
        let mut observer = SseObserver::new(drop_usage_only, limit);
        let mut failed = false;
        for piece in cut(&stream, &cuts) {
            match observer.feed(piece) {
                Ok(_) => prop_assert!(!failed && observer.held_bytes() <= limit),
                Err(SseError::EventTooLarge { limit: reported }) => {
                    prop_assert_eq!(reported, limit);
                    prop_assert_eq!(observer.held_bytes(), 0);
                    failed = true;
                }
            }
        }
        let _ = observer.finish();
    }

    #[test]
    fn json_response_observation_never_panics_and_matches_the_whole_body_parse(
        body in sse_like(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let mut observer = JsonResponseObserver::new();
        for piece in cut(&body, &cuts) {
            observer.feed(&piece);
        }
        // A body this small is kept whole and read exactly as `read_response_facts` reads it.
        prop_assert_eq!(observer.finish(), read_response_facts(&body).unwrap_or_default());
    }

    #[test]
    fn response_reading_never_panics(body in sse_like()) {
        let _ = read_response_facts(&body);
        let _ = has_usage_object(&body);
    }

    #[test]
    fn retry_after_parsing_never_panics(value in "\\PC{0,40}") {
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            headers.insert(http::header::RETRY_AFTER, v);
            let _ = retry_after(&headers);
        }
    }
}

proptest! {
    // Bodies past the 256 KiB the observer keeps whole: fewer cases, each feeds ~300 KiB.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn large_json_response_observation_never_panics_and_stays_bounded(
        start in sse_like(),
        end in sse_like(),
        filler in prop::sample::select(b"\"\\{}[]:, a0".to_vec()),
        filler_len in (256usize << 10)..(320 << 10),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let body = [start, vec![filler; filler_len], end].concat();
        let mut observer = JsonResponseObserver::new();
        for piece in cut(&body, &cuts) {
            observer.feed(&piece);
            prop_assert!(observer.held_bytes() <= 256 << 10);
        }
        prop_assert!(observer.held_bytes() <= 192 << 10);
        let _ = observer.finish();
    }
}
