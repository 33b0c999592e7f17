//! Anthropic's Messages API (`POST /v1/messages`) served by a provider that does not speak it:
//! the client's Messages request becomes an OpenAI chat completion request ([`request`]), the
//! existing machinery serves that as for any chat completion client, and the answer, which is
//! in OpenAI's shape by then whatever the provider, becomes a Messages answer again: a
//! `message` ([`response`]), the Messages event stream ([`stream`]), or an Anthropic error body
//! ([`response::to_anthropic_error`], [`response::error_body`]). These are the reverse of
//! [`crate::translate::anthropic`], and pure: no I/O, bounded memory for what the provider
//! sends. What chat completions cannot express is refused with a `400` naming the field, never
//! dropped silently.

pub mod request;
pub mod response;
pub mod stream;
