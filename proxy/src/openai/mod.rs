//! The OpenAI API as the proxy sees it: which operation a request is, how its body is rewritten for
//! a provider, how usage is read from responses and streams, and the shape of error bodies.

pub mod error;
pub mod operation;
pub mod request;
pub mod sse;
pub mod usage;
