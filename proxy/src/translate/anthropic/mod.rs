//! Anthropic's Messages API (`POST /v1/messages`, `x-api-key`, `anthropic-version`).

pub mod request;
pub mod response;
pub mod stream;

/// The API version every request names (the one Anthropic documents as current).
pub const VERSION: &str = "2023-06-01";

/// The path of the Messages API.
pub const MESSAGES_PATH: &str = "/v1/messages";
