//! The config compiler of agentgateway: a pure function from Kubernetes objects (Gateway, HTTPRoute,
//! AgentgatewayBackend, AgentgatewayPolicy, Secret, ConfigMap, ReferenceGrant) to the proxy's [`ProxyConfig`] and the
//! [`Credentials`] it refers to. No I/O and no Kubernetes client: the proxy's standalone mode feeds
//! it YAML files through [`parse_manifests`], the operator feeds it objects from the API server and
//! turns the [`Diagnostic`]s into status conditions.
//!
//! Stages, in the order data flows: manifests → [`Inputs`] → backends (validation, policies,
//! credentials) → routes (matches, backendRefs) → listeners (attachment, hostnames) → per-listener
//! tables sorted by Gateway API precedence.
//!
//! [`ProxyConfig`]: agentgateway_crds::proxy_config::ProxyConfig
//! [`Credentials`]: agentgateway_crds::proxy_config::Credentials

// A `Diagnostic` (object, field, reason, message) is this crate's product, not a rare failure: it is
// returned by value on purpose (`backend_problems -> Vec<Diagnostic>` is the operator's API).
#![allow(
    clippy::result_large_err,
    reason = "diagnostics are the output of the compiler, returned by value"
)]
#![warn(missing_docs)]

mod attach;
mod auth;
mod backend;
mod backend_ref;
mod compile;
mod diagnostic;
mod filters;
mod governance;
mod hostname;
mod index;
mod inputs;
mod listener;
mod manifest;
mod matches;
mod policies;
mod precedence;
mod provider;
mod route;
mod table;
mod tls;

pub use backend::backend_problems;
pub use compile::{Compiled, GatewayCompilation, compile_gateway, compile_standalone};
pub use diagnostic::{CompileError, Diagnostic, LocatedDiagnostic, Reason};
pub use governance::{
    DEFAULT_API_KEY_FIELD, PolicyReport, TargetReport, policy_reports, selected_secrets,
    selector_matches,
};
pub use inputs::{DEFAULT_NAMESPACE, Inputs, KubeObject, ObjectRef, Origin, Origins};
pub use listener::DEFAULT_LISTENER;
pub use manifest::{DocumentLocation, ManifestError, parse_manifests};
pub use tls::{TLS_CERT_KEY, TLS_KEY_KEY, TLS_SECRET_TYPE};
