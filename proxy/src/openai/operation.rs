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
    /// Classifies a request path (without query).
    pub fn from_path(path: &str) -> Self {
        let path = path.strip_suffix('/').unwrap_or(path);
        match path {
            "/v1/chat/completions" | "/chat/completions" => Self::ChatCompletions,
            "/v1/completions" | "/completions" => Self::Completions,
            "/v1/embeddings" | "/embeddings" => Self::Embeddings,
            p if p == "/v1/models" || p.starts_with("/v1/models/") => Self::Models,
            _ => Self::Other,
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
}
