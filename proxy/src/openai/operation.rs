//! Which operation, of OpenAI's or Anthropic's API, a request path names.

use crate::openai::sse::Dialect;

/// The operations the proxy knows. Chat completions, Anthropic messages and OpenAI responses get
/// the full treatment (model rewrite, routing by model, stream usage, translation for providers of
/// another API); the others are passed through to the chosen provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/completions`.
    Completions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `GET /v1/models` and `GET /v1/models/{id}`: answered by the gateway.
    Models,
    /// `POST /v1/messages`: Anthropic's Messages API.
    Messages,
    /// `POST /v1/messages/count_tokens`: Anthropic's token counting, for Anthropic providers.
    CountTokens,
    /// `POST /v1/responses`: OpenAI's Responses API.
    Responses,
    /// Anything else: forwarded as it is.
    Other,
}

impl Operation {
    /// Whether the operation writes output tokens (what a token rate limit reserves for when
    /// the request sets no maximum).
    pub fn generates(self) -> bool {
        matches!(
            self,
            Self::ChatCompletions | Self::Completions | Self::Messages | Self::Responses
        )
    }

    /// Classifies a request path (without query) by its OpenAI suffix, so routes may mount the
    /// API under a prefix (`/team-a/v1/chat/completions`).
    pub fn from_path(path: &str) -> Self {
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.ends_with("/messages/count_tokens") {
            Self::CountTokens
        } else if path.ends_with("/v1/messages") {
            Self::Messages
        } else if path.ends_with("/v1/responses") {
            Self::Responses
        } else if path.ends_with("/chat/completions") {
            Self::ChatCompletions
        } else if path.ends_with("/completions") {
            Self::Completions
        } else if path.ends_with("/embeddings") {
            Self::Embeddings
        } else if path.ends_with("/v1/models") || path.contains("/v1/models/") {
            Self::Models
        } else {
            Self::Other
        }
    }

    /// The path the provider serves this operation on: an AI backend speaks the provider's API,
    /// whatever prefix the route matched. `None` keeps the request's path.
    pub fn provider_path(self, request_path: &str) -> Option<String> {
        match self {
            Self::ChatCompletions => Some("/v1/chat/completions".into()),
            Self::Completions => Some("/v1/completions".into()),
            Self::Embeddings => Some("/v1/embeddings".into()),
            Self::Messages => Some("/v1/messages".into()),
            Self::CountTokens => Some("/v1/messages/count_tokens".into()),
            Self::Responses => Some("/v1/responses".into()),
            Self::Models => request_path
                .find("/v1/models")
                .map(|at| request_path[at..].to_string()),
            Self::Other => None,
        }
    }

    /// Whether the body is an OpenAI JSON request whose `model` the provider's model replaces.
    pub fn has_json_model(self) -> bool {
        matches!(
            self,
            Self::ChatCompletions
                | Self::Completions
                | Self::Embeddings
                | Self::Messages
                | Self::CountTokens
                | Self::Responses
        )
    }

    /// Whether errors are answered in Anthropic's shape (`{"type":"error","error":{..}}`) rather
    /// than OpenAI's: the operations of Anthropic's API.
    pub fn anthropic_errors(self) -> bool {
        matches!(self, Self::Messages | Self::CountTokens)
    }

    /// How the events of a streamed answer to this operation are read.
    pub fn dialect(self) -> Dialect {
        match self {
            Self::Messages => Dialect::Messages,
            Self::Responses => Dialect::Responses,
            _ => Dialect::Chat,
        }
    }

    /// Whether a stream of this operation must end with its terminal event (`[DONE]`,
    /// `message_stop`, `response.completed`): one that ends without it was cut.
    pub fn has_terminal_event(self) -> bool {
        matches!(
            self,
            Self::ChatCompletions | Self::Completions | Self::Messages | Self::Responses
        )
    }

    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Models => "models",
            Self::Messages => "messages",
            Self::CountTokens => "count_tokens",
            Self::Responses => "responses",
            Self::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_openai_paths() {
        assert_eq!(
            Operation::from_path("/v1/chat/completions"),
            Operation::ChatCompletions
        );
        assert_eq!(
            Operation::from_path("/v1/chat/completions/"),
            Operation::ChatCompletions
        );
        assert_eq!(
            Operation::from_path("/v1/embeddings"),
            Operation::Embeddings
        );
        assert_eq!(Operation::from_path("/v1/models/gpt-4o"), Operation::Models);
        assert_eq!(Operation::from_path("/v1/responses"), Operation::Responses);
        assert_eq!(Operation::from_path("/v1/messages"), Operation::Messages);
        assert_eq!(
            Operation::from_path("/v1/messages/count_tokens"),
            Operation::CountTokens
        );
        assert_eq!(
            Operation::from_path("/v1/responses/resp_1"),
            Operation::Other,
            "stored responses are state the gateway does not keep"
        );
        assert_eq!(Operation::from_path("/v1/batches"), Operation::Other);
    }

    #[test]
    fn prefixed_paths_are_recognized_and_sent_on_the_providers_path() {
        let op = Operation::from_path("/r57/v1/chat/completions");
        assert_eq!(op, Operation::ChatCompletions);
        assert_eq!(
            op.provider_path("/r57/v1/chat/completions").as_deref(),
            Some("/v1/chat/completions")
        );
        assert_eq!(
            Operation::from_path("/team/v1/completions"),
            Operation::Completions
        );
        let models = Operation::from_path("/team/v1/models/gpt-4o");
        assert_eq!(
            models.provider_path("/team/v1/models/gpt-4o").as_deref(),
            Some("/v1/models/gpt-4o")
        );
        assert_eq!(Operation::Other.provider_path("/x"), None);
    }
}
