//! Admission webhooks of agentgateway for `AgentgatewayBackend`, `AgentgatewayPolicy` and
//! `AgentgatewayParameters` (validated only: it has no defaults).
//!
//! Kubernetes 1.20 silently drops CEL rules, so these webhooks are what keeps invalid backends and
//! policies out of the cluster: the mutating one writes the documented defaults into the object
//! (so GitOps tools and `kubectl get -o yaml` show what the proxy will do), the validating one
//! refuses a spec that breaks a rule and names every offending field. Both are pure functions over
//! the object ([`default_patch`] and [`validate_object`] for backends, [`default_policy_patch`]
//! and [`validate_policy_object`] for policies) behind an axum [`router`], served over TLS by
//! [`serve_tls`] with a certificate that can be replaced while serving ([`CertResolver`]).
//!
//! The operator owns the wiring: it builds a [`WebhookState`], registers [`WebhookMetrics`], keeps the
//! certificate fresh with [`CertResolver::set_pem`] (or [`watch_cert_dir`] for a mounted one) and
//! points the webhook configurations at [`VALIDATE_PATH`] and [`MUTATE_PATH`].

mod defaulting;
mod handler;
mod metrics;
mod review;
mod router;
mod secrets;
mod targets;
mod tls;
mod validate;

pub use defaulting::{
    DEFAULT_API_KEY_FIELD, DEFAULT_FAILURE_MODE, default_patch, default_policy_patch,
};
pub use metrics::WebhookMetrics;
pub use router::{HEALTH_PATH, MUTATE_PATH, VALIDATE_PATH, WebhookState, router};
pub use secrets::{SecretLookup, SecretState, StaticSecrets};
pub use targets::{StaticTargets, TargetLookup, TargetState};
pub use tls::{CertResolver, TlsError, serve_tls, watch_cert_dir};
pub use validate::{Verdict, validate_object, validate_parameters_object, validate_policy_object};
