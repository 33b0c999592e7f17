//! Which OpenAI operation a request path names.

/// The operations the proxy knows. Chat completions get the full treatment (model rewrite, stream
/// usage); the others are passed through to the chosen provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `POST /v1/chat/completions`.
    ChatCompletions,
    /// `POST /v1/completions`.
    Completions,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `GET /v1/models` and `GET /v1/models/{id}`.
    Models,
    /// Anything else: forwarded as it is.
    Other,
}

impl Operation {
    /// Classifies a request path (without query) by its OpenAI suffix, so routes may mount the
    /// API under a prefix (`/team-a/v1/chat/completions`).
    pub fn from_path(path: &str) -> Self {
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.ends_with("/chat/completions") {
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
            Self::ChatCompletions | Self::Completions | Self::Embeddings
        )
    }

    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatCompletions => "chat_completions",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Models => "models",
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
        assert_eq!(Operation::from_path("/v1/responses"), Operation::Other);
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
