//! OpenAI's Responses API (`POST /v1/responses`) for providers that do not speak it. An OpenAI
//! provider gets the client's request as it is; for every other one the request becomes a chat
//! completion request ([`request`]), which the chat completion machinery serves (translating it
//! for the provider as for any chat client), and the chat completion that comes back, in OpenAI's
//! shape whatever the provider, becomes a Response ([`response`]) or, streamed, the Responses
//! streaming events ([`stream`]). The gateway keeps no state for such a provider: what needs it
//! (`previous_response_id`, `conversation`, `store: true`) is refused, and every Response built
//! here says `store: false`. A provider's error answer gets exactly OpenAI's error shape
//! ([`error`]). All of it is pure: no I/O, no clock, bounded memory.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;
