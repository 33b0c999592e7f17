//! OpenAI embeddings (`POST /v1/embeddings`) on the translated kinds that have an embeddings
//! API: Gemini's `batchEmbedContents` ([`gemini`]), Vertex AI's `predict` on Google's embedding
//! models ([`vertex`]) and Amazon Titan Text Embeddings through Bedrock's `InvokeModel`
//! ([`titan`]). The client's request is read once here ([`read`]); each provider's module writes
//! its request and reads its answer into vectors, which [`to_openai`] writes in OpenAI's shape.
//!
//! * `input`: a string or an array of 1 to [`MAX_INPUTS`] strings (OpenAI's own limit), none
//!   empty. Token arrays (OpenAI's pre-tokenized input) are ids of OpenAI's tokenizer, which no
//!   provider here reads: a `400` naming `input`, never guessed at.
//! * `dimensions`: the provider's output size (`outputDimensionality`, Titan's `dimensions`).
//! * `encoding_format: base64` is done here, exactly as OpenAI does it (each value's
//!   little-endian `f32` bytes, base64 with padding): no provider offers it, and OpenAI's SDKs
//!   ask for it by default, so refusing it would break every SDK client.
//! * `user` only names the end user for OpenAI's abuse monitoring: no provider here has a
//!   counterpart and it changes no output, so it is not sent.
//! * `usage`: the provider's input token count as `prompt_tokens` and `total_tokens`; `0` when
//!   the provider reports none (Gemini's `batchEmbedContents` answer holds only the vectors).

pub mod gemini;
pub mod titan;
pub mod vertex;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::openai::error::ProxyError;
use crate::translate::openai_request::{invalid, unsupported};

/// The most inputs one request may hold: OpenAI's limit (an array beyond it is OpenAI's `400`).
pub const MAX_INPUTS: usize = 2048;

/// How the client wants the vectors written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// JSON arrays of numbers (OpenAI's default).
    Float,
    /// Base64 of the values' little-endian `f32` bytes.
    Base64,
}

/// The provider API an embeddings request is translated for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// Gemini's `batchEmbedContents`.
    Gemini,
    /// Vertex AI's `predict` on a Google publisher embedding model.
    Vertex,
    /// Amazon Titan Text Embeddings, through Bedrock's `InvokeModel`.
    Titan,
}

impl Api {
    /// The API, as refusals name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Gemini => "Gemini's batchEmbedContents API",
            Self::Vertex => "Vertex AI's predict API for Google's embedding models",
            Self::Titan => "Amazon Titan Text Embeddings (Bedrock's InvokeModel API)",
        }
    }

    /// What a malformed answer was supposed to be.
    pub fn answer_name(self) -> &'static str {
        match self {
            Self::Gemini => "Gemini batchEmbedContents answer",
            Self::Vertex => "Vertex AI predict answer",
            Self::Titan => "Titan Text Embeddings answer",
        }
    }
}

/// An OpenAI embeddings request, read for translation (the texts borrowed from the request).
#[derive(Debug, PartialEq)]
pub struct EmbeddingsRequest<'a> {
    /// The texts to embed, in order: one per OpenAI `data` item.
    pub inputs: Vec<&'a str>,
    /// `dimensions`.
    pub dimensions: Option<u32>,
    /// `encoding_format`.
    pub encoding: Encoding,
}

/// What the provider's answer must hold and how it is written, as the request decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    /// The API answering.
    pub api: Api,
    /// How many vectors (one per input, in order).
    pub inputs: usize,
    /// How the client wants them.
    pub encoding: Encoding,
}

impl Expected {
    /// What the answer to `request` on `api` must hold.
    pub fn of(api: Api, request: &EmbeddingsRequest<'_>) -> Self {
        Self {
            api,
            inputs: request.inputs.len(),
            encoding: request.encoding,
        }
    }
}

/// Reads the OpenAI embeddings request `request` for `api` (named in refusals).
pub fn read(request: &Value, api: Api) -> Result<EmbeddingsRequest<'_>, ProxyError> {
    let object = request
        .as_object()
        .ok_or_else(|| invalid("", "the request body must be a JSON object"))?;
    let inputs = inputs(object, api)?;
    let dimensions = match object.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .filter(|d| *d >= 1)
                .and_then(|d| u32::try_from(d).ok())
                .ok_or_else(|| invalid("dimensions", "must be a positive integer"))?,
        ),
    };
    let encoding = match object.get("encoding_format") {
        None | Some(Value::Null) => Encoding::Float,
        Some(Value::String(format)) if format == "float" => Encoding::Float,
        Some(Value::String(format)) if format == "base64" => Encoding::Base64,
        Some(_) => {
            return Err(invalid(
                "encoding_format",
                "must be \"float\" or \"base64\"",
            ));
        }
    };
    Ok(EmbeddingsRequest {
        inputs,
        dimensions,
        encoding,
    })
}

/// `input`: a string or an array of strings; token arrays are refused by name.
fn inputs(object: &Map<String, Value>, api: Api) -> Result<Vec<&str>, ProxyError> {
    let (items, array): (&[Value], bool) = match object.get("input") {
        Some(text @ Value::String(_)) => (std::slice::from_ref(text), false),
        Some(Value::Array(items)) => (items, true),
        None | Some(Value::Null) => return Err(invalid("input", "is required")),
        Some(_) => {
            return Err(invalid("input", "must be a string or an array of strings"));
        }
    };
    let tokens = |field: &str| {
        unsupported(
            field,
            "token arrays are ids of OpenAI's tokenizer, which this provider does not read; send the text",
            api.name(),
        )
    };
    // Checked first: a pre-tokenized text is one array of many numbers, not many inputs.
    if matches!(items.first(), Some(Value::Number(_) | Value::Array(_))) {
        return Err(tokens("input"));
    }
    if items.is_empty() {
        return Err(invalid("input", "must not be an empty array"));
    }
    if items.len() > MAX_INPUTS {
        return Err(invalid(
            "input",
            &format!(
                "at most {MAX_INPUTS} inputs per request, as on OpenAI (it holds {})",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = if array {
                format!("input[{i}]")
            } else {
                "input".to_string()
            };
            match item {
                Value::String(text) if text.is_empty() => {
                    Err(invalid(&field, "must not be an empty string"))
                }
                Value::String(text) => Ok(text.as_str()),
                Value::Number(_) | Value::Array(_) => Err(tokens(&field)),
                _ => Err(invalid(&field, "must be a string")),
            }
        })
        .collect()
}

/// The vectors and input token count of a provider's answer.
pub struct Vectors {
    /// One per input, in order.
    pub vectors: Vec<Vec<f64>>,
    /// Input tokens, as the provider counts them (0 when it reports none).
    pub tokens: u64,
}

/// The OpenAI embeddings list for the provider answer `body`, reported as `model` (no provider
/// names one in its answer); `None` when `body` is not the answer `expected` describes (not the
/// API's shape, or not one vector per input).
pub fn to_openai(body: &[u8], model: &str, expected: &Expected) -> Option<Vec<u8>> {
    let answer = match expected.api {
        Api::Gemini => gemini::vectors(body)?,
        Api::Vertex => vertex::vectors(body)?,
        Api::Titan => titan::vectors(body)?,
    };
    if answer.vectors.len() != expected.inputs {
        return None;
    }
    let data = answer
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, values)| Item {
            object: "embedding",
            index,
            embedding: match expected.encoding {
                Encoding::Float => Embedding::Float(values),
                Encoding::Base64 => Embedding::Base64(base64_f32(&values)),
            },
        })
        .collect();
    let list = List {
        object: "list",
        data,
        model,
        usage: Usage {
            prompt_tokens: answer.tokens,
            total_tokens: answer.tokens,
        },
    };
    serde_json::to_vec(&list).ok()
}

#[derive(Serialize)]
struct List<'a> {
    object: &'static str,
    data: Vec<Item>,
    model: &'a str,
    usage: Usage,
}

#[derive(Serialize)]
struct Item {
    object: &'static str,
    index: usize,
    embedding: Embedding,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Embedding {
    Float(Vec<f64>),
    Base64(String),
}

#[derive(Serialize)]
struct Usage {
    prompt_tokens: u64,
    total_tokens: u64,
}

/// A token count as a provider writes it: an integer, or a float where the value travels as a
/// `google.protobuf.Value` (Vertex's `statistics.token_count`). Negative counts are 0, huge ones
/// saturate (a float-to-integer cast never panics).
pub(crate) fn token_count<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let count = Option::<f64>::deserialize(deserializer)?.unwrap_or(0.0);
    Ok(count.max(0.0) as u64)
}

/// Base64 (standard alphabet, padded) of each value's little-endian `f32` bytes: OpenAI's
/// `encoding_format: base64`. A value beyond `f32`'s range becomes an infinity, as any
/// `f32` conversion makes it.
pub fn base64_f32(values: &[f64]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = values
        .iter()
        .flat_map(|v| (*v as f32).to_le_bytes())
        .collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let triple = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                let sextet = (triple >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[sextet as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use base64::Engine as _;
    use serde_json::json;

    use super::*;

    fn error(request: Value) -> (String, &'static str) {
        let e = read(&request, Api::Gemini).unwrap_err();
        (e.message, e.code)
    }

    #[test]
    fn a_string_or_an_array_of_strings_is_read_with_dimensions_and_encoding() {
        let request = json!({"model": "m", "input": "hello", "user": "u-1"});
        let read_one = read(&request, Api::Gemini).unwrap();
        assert_eq!(
            read_one,
            EmbeddingsRequest {
                inputs: vec!["hello"],
                dimensions: None,
                encoding: Encoding::Float
            }
        );
        let request = json!({"input": ["a", "b"], "dimensions": 256, "encoding_format": "base64"});
        let read_two = read(&request, Api::Titan).unwrap();
        assert_eq!(read_two.inputs, ["a", "b"]);
        assert_eq!(read_two.dimensions, Some(256));
        assert_eq!(read_two.encoding, Encoding::Base64);
        let nulls = json!({"input": "x", "dimensions": null, "encoding_format": null});
        assert_eq!(read(&nulls, Api::Vertex).unwrap().encoding, Encoding::Float);
        let float = json!({"input": "x", "encoding_format": "float"});
        assert_eq!(read(&float, Api::Vertex).unwrap().encoding, Encoding::Float);
    }

    #[test]
    fn what_cannot_be_embedded_is_refused_naming_the_field() {
        for (request, code) in [
            (json!({"input": [1, 2, 3]}), "unsupported_parameter"),
            (json!({"input": [[1, 2], [3]]}), "unsupported_parameter"),
            (json!({"input": ["a", [1]]}), "unsupported_parameter"),
            (json!({"input": []}), "invalid_request_for_provider"),
            (json!({"input": ""}), "invalid_request_for_provider"),
            (json!({"input": ["a", ""]}), "invalid_request_for_provider"),
            (
                json!({"input": ["a", null]}),
                "invalid_request_for_provider",
            ),
            (json!({"input": 5}), "invalid_request_for_provider"),
            (json!({"model": "m"}), "invalid_request_for_provider"),
            (
                json!({"input": vec!["x"; 2049]}),
                "invalid_request_for_provider",
            ),
        ] {
            let (message, got) = error(request.clone());
            assert!(message.starts_with("input"), "{request}: {message}");
            assert_eq!(got, code, "{request}: {message}");
        }
        // A pre-tokenized text longer than the input limit is still named a token array.
        let (message, code) = error(json!({"input": vec![7; 5000]}));
        assert_eq!(code, "unsupported_parameter", "{message}");
        assert!(
            read(&json!({"input": vec!["x"; 2048]}), Api::Gemini).is_ok(),
            "OpenAI's limit itself is allowed"
        );
        for dimensions in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!("8"),
            json!(1u64 << 40),
        ] {
            let (message, _) = error(json!({"input": "x", "dimensions": dimensions}));
            assert!(message.starts_with("dimensions:"), "{message}");
        }
        for format in [json!("binary"), json!(1)] {
            let (message, _) = error(json!({"input": "x", "encoding_format": format}));
            assert!(message.starts_with("encoding_format:"), "{message}");
        }
        let e = read(&json!([1]), Api::Gemini).unwrap_err();
        assert_eq!(e.code, "invalid_request_for_provider");
    }

    #[test]
    fn base64_is_the_little_endian_f32_bytes_as_openai_writes_them() {
        for values in [
            vec![],
            vec![0.5],
            vec![0.5, -1.25],
            vec![0.1, 0.2, 0.3],
            vec![1e300, -0.0],
        ] {
            let encoded = base64_f32(&values);
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(&encoded)
                .unwrap();
            let floats: Vec<f32> = decoded
                .chunks(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            let expected: Vec<f32> = values.iter().map(|v| *v as f32).collect();
            assert_eq!(floats.len(), expected.len());
            for (got, want) in floats.iter().zip(&expected) {
                assert_eq!(got.to_bits(), want.to_bits(), "{encoded}");
            }
        }
        // OpenAI's own example bytes: 1.0f32 is 00 00 80 3f.
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
    }

    #[test]
    fn the_answer_is_openais_list_with_one_item_per_input_and_the_usage() {
        let expected = Expected {
            api: Api::Titan,
            inputs: 1,
            encoding: Encoding::Float,
        };
        let body = br#"{"embedding":[0.013168523,-0.5,1],"inputTextTokenCount":4}"#;
        let out: Value = serde_json::from_slice(
            &to_openai(body, "amazon.titan-embed-text-v2:0", &expected).unwrap(),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.013168523, -0.5, 1.0]}],
                "model": "amazon.titan-embed-text-v2:0", "usage": {"prompt_tokens": 4, "total_tokens": 4}})
        );
        // The provider's digits survive: no f32 rounding of what it sent.
        let text = String::from_utf8(to_openai(body, "m", &expected).unwrap()).unwrap();
        assert!(text.contains("[0.013168523,-0.5,1.0]"), "{text}");
        let base64 = Expected {
            encoding: Encoding::Base64,
            ..expected.clone()
        };
        let out: Value = serde_json::from_slice(&to_openai(body, "m", &base64).unwrap()).unwrap();
        assert_eq!(
            out["data"][0]["embedding"],
            base64_f32(&[0.013168523, -0.5, 1.0])
        );
        // One vector per input, or the answer is not the one asked for.
        let two = Expected {
            inputs: 2,
            ..expected
        };
        assert!(to_openai(body, "m", &two).is_none());
    }

    #[test]
    fn token_counts_saturate_and_floor_at_zero() {
        #[derive(Deserialize)]
        struct Count {
            #[serde(default, deserialize_with = "token_count")]
            n: u64,
        }
        let count = |json: &str| serde_json::from_str::<Count>(json).map(|c| c.n).ok();
        assert_eq!(count(r#"{"n": 7}"#), Some(7));
        assert_eq!(count(r#"{"n": 7.0}"#), Some(7));
        assert_eq!(count(r#"{"n": -3}"#), Some(0));
        assert_eq!(count(r#"{"n": 1e300}"#), Some(u64::MAX));
        assert_eq!(
            count(r#"{"n": 99999999999999999999999999}"#),
            Some(u64::MAX)
        );
        assert_eq!(count(r#"{"n": null}"#), Some(0));
        assert_eq!(count(r#"{}"#), Some(0));
        assert_eq!(count(r#"{"n": "7"}"#), None);
    }
}
