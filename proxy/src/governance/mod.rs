//! Who may call and how much: client API keys, rate limits (in-process and shared through Redis)
//! and spending budgets, as the `AgentgatewayPolicy` of a request's (route rule, backend) says.

pub mod counter;
pub mod governor;
pub mod headers;
pub mod keys;
pub mod local;
pub mod policy;
pub mod shared;
pub mod window;
