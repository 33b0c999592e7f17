//! OpenAI embeddings on Amazon Titan Text Embeddings (`amazon.titan-embed-text-v2:0`,
//! `-v1`) through Bedrock's `InvokeModel`
//! (<https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html>):
//! `POST /model/{modelId}/invoke`, SigV4-signed as Converse is, with `{"inputText": text}` and
//! `dimensions` when the client set it, answered by `{"embedding":[..],"inputTextTokenCount":N}`.
//!
//! * Titan embeds one text per call: an `input` array of more than one string is a `400`
//!   naming `input` (one request never becomes several provider calls: retries, deadlines and
//!   usage are per call).
//! * `normalize` is not sent: v2 normalizes by default (as OpenAI's vectors are) and v1 refuses
//!   any key but `inputText`, so leaving it out serves both.
//! * Other embedding families on Bedrock (Cohere's) take another body: Bedrock's own validation
//!   error comes back for them.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Api, EmbeddingsRequest, Vectors, token_count};
use crate::openai::error::ProxyError;
use crate::translate::openai_request::unsupported;

/// The `InvokeModel` body for `request`.
pub fn to_invoke(request: &EmbeddingsRequest<'_>) -> Result<Value, ProxyError> {
    let [text] = request.inputs.as_slice() else {
        return Err(unsupported(
            "input",
            &format!(
                "Titan embeds one text per call, and this request holds {}: send one string (or an array of one)",
                request.inputs.len()
            ),
            Api::Titan.name(),
        ));
    };
    let mut body = json!({ "inputText": text });
    if let Some(dimensions) = request.dimensions {
        body["dimensions"] = json!(dimensions);
    }
    Ok(body)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    embedding: Vec<f64>,
    #[serde(default, deserialize_with = "token_count")]
    input_text_token_count: u64,
}

/// The vector and token count of an `InvokeModel` answer; `None` when `body` is not Titan's.
pub fn vectors(body: &[u8]) -> Option<Vectors> {
    let answer: Answer = serde_json::from_slice(body).ok()?;
    Some(Vectors {
        vectors: vec![answer.embedding],
        tokens: answer.input_text_token_count,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::super::read;
    use super::*;

    #[test]
    fn one_text_becomes_input_text_with_its_dimensions() {
        let openai = json!({"input": "hello", "dimensions": 512});
        let request = read(&openai, Api::Titan).unwrap();
        assert_eq!(
            to_invoke(&request).unwrap(),
            json!({"inputText": "hello", "dimensions": 512})
        );
        let array = json!({"input": ["hello"]});
        let one = read(&array, Api::Titan).unwrap();
        assert_eq!(to_invoke(&one).unwrap(), json!({"inputText": "hello"}));
    }

    #[test]
    fn several_texts_are_refused_naming_input_and_why() {
        let two = json!({"input": ["a", "b"]});
        let request = read(&two, Api::Titan).unwrap();
        let error = to_invoke(&request).unwrap_err();
        assert_eq!(error.code, "unsupported_parameter");
        assert!(error.message.starts_with("input:"), "{}", error.message);
        assert!(
            error.message.contains("one text per call"),
            "{}",
            error.message
        );
    }

    #[test]
    fn the_answer_is_one_vector_with_its_token_count() {
        let answer = vectors(br#"{"embedding":[0.5,-0.25],"inputTextTokenCount":3,"embeddingsByType":{"float":[0.5,-0.25]}}"#)
            .unwrap();
        assert_eq!(answer.vectors, [vec![0.5, -0.25]]);
        assert_eq!(answer.tokens, 3);
        assert!(vectors(br#"{"message":"x"}"#).is_none());
        assert!(vectors(br#"{"embedding":[0.5],"inputTextTokenCount":"3"}"#).is_none());
    }
}
