//! Request bodies: parsed once, re-encoded per attempt with the chosen provider's model.
//!
//! Only the top level is parsed (`messages` and the rest stay raw JSON), so a rewrite costs a copy
//! of the body, not a tree of allocations, and everything but the fields we touch is sent exactly
//! as the client wrote it.

use bytes::Bytes;
use indexmap::IndexMap;
use serde_json::value::RawValue;

use super::error::ProxyError;

/// A JSON request body with its top-level fields kept raw.
#[derive(Debug)]
pub struct JsonRequest {
    fields: IndexMap<String, Box<RawValue>>,
    /// The client's `model`, when it is a non-empty string.
    pub model: Option<String>,
    /// `"stream": true`.
    pub stream: bool,
    /// Whether the client set `stream_options` itself.
    pub has_stream_options: bool,
}

impl JsonRequest {
    /// Parses a body that must be a JSON object.
    pub fn parse(body: &[u8]) -> Result<Self, ProxyError> {
        let fields: IndexMap<String, Box<RawValue>> =
            serde_json::from_slice(body).map_err(|e| {
                ProxyError::bad_request(
                    "invalid_json",
                    format!("the request body is not a valid JSON object: {e}"),
                )
            })?;
        let model = match fields.get("model") {
            None => None,
            Some(raw) => match serde_json::from_str::<Option<String>>(raw.get()) {
                Ok(model) => model.filter(|m| !m.is_empty()),
                Err(_) => {
                    return Err(ProxyError::bad_request(
                        "invalid_model",
                        "`model` must be a string",
                    ));
                }
            },
        };
        let stream = fields
            .get("stream")
            .is_some_and(|raw| raw.get().trim() == "true");
        let has_stream_options = fields.contains_key("stream_options");
        Ok(Self {
            fields,
            model,
            stream,
            has_stream_options,
        })
    }

    /// The model sent upstream: the provider's when it has one, else the client's.
    pub fn effective_model<'a>(&'a self, provider_model: Option<&'a str>) -> Option<&'a str> {
        provider_model.or(self.model.as_deref())
    }

    /// Whether the proxy adds `stream_options.include_usage` (a stream whose client did not ask).
    pub fn injects_usage(&self) -> bool {
        self.stream && !self.has_stream_options
    }

    /// The body for one attempt: `model` set to `model`, and `stream_options` added when injecting usage.
    pub fn encode(&self, model: &str, inject_usage: bool) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len_hint() + model.len());
        out.push(b'{');
        let mut first = true;
        let mut push_key = |out: &mut Vec<u8>, key: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            write_json_string(out, key);
            out.push(b':');
        };
        let mut wrote_model = false;
        for (key, value) in &self.fields {
            push_key(&mut out, key);
            if key == "model" {
                write_json_string(&mut out, model);
                wrote_model = true;
            } else {
                out.extend_from_slice(value.get().as_bytes());
            }
        }
        if !wrote_model {
            push_key(&mut out, "model");
            write_json_string(&mut out, model);
        }
        if inject_usage {
            push_key(&mut out, "stream_options");
            out.extend_from_slice(br#"{"include_usage":true}"#);
        }
        out.push(b'}');
        Bytes::from(out)
    }

    fn encoded_len_hint(&self) -> usize {
        self.fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum::<usize>()
            + 48
    }
}

fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(bytes: &Bytes) -> serde_json::Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn provider_model_replaces_an_empty_request_model() {
        let req =
            JsonRequest::parse(br#"{"model":"","messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap();
        assert_eq!(req.model, None);
        let model = req.effective_model(Some("gemma")).unwrap();
        let body = req.encode(model, false);
        assert_eq!(json(&body)["model"], "gemma");
        assert_eq!(json(&body)["messages"][0]["content"], "hi");
    }

    #[test]
    fn request_model_is_kept_without_a_provider_model() {
        let req = JsonRequest::parse(br#"{"model":"gpt-4o","messages":[]}"#).unwrap();
        assert_eq!(req.effective_model(None), Some("gpt-4o"));
    }

    #[test]
    fn absent_model_is_added_when_the_provider_has_one() {
        let req = JsonRequest::parse(br#"{"messages":[]}"#).unwrap();
        let body = req.encode("m", false);
        assert_eq!(json(&body)["model"], "m");
    }

    #[test]
    fn usage_is_injected_only_into_streams_without_stream_options() {
        let req = JsonRequest::parse(br#"{"model":"m","stream":true}"#).unwrap();
        assert!(req.injects_usage());
        let body = req.encode("m", true);
        assert_eq!(json(&body)["stream_options"]["include_usage"], true);
        let req = JsonRequest::parse(
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#,
        )
        .unwrap();
        assert!(!req.injects_usage());
        let req = JsonRequest::parse(br#"{"model":"m","stream":false}"#).unwrap();
        assert!(!req.injects_usage());
    }

    #[test]
    fn invalid_bodies_are_rejected_with_400() {
        for bad in [
            &b"not json"[..],
            b"[1,2]",
            b"{\"model\":",
            b"{\"model\":3}",
            b"",
        ] {
            let err = JsonRequest::parse(bad).unwrap_err();
            assert_eq!(err.status, http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn unusual_keys_and_values_survive_the_rewrite() {
        let req = JsonRequest::parse(
            br#"{"model":"a","x\"y":"\u00e9\n","n":1.5e3,"nested":{"model":"keep"}}"#,
        )
        .unwrap();
        let out = json(&req.encode("b", false));
        assert_eq!(out["x\"y"], "é\n");
        assert_eq!(out["n"], 1500.0);
        assert_eq!(out["nested"]["model"], "keep");
        assert_eq!(out["model"], "b");
    }
}
