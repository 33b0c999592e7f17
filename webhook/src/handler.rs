//! One review from body to answer: parse, decide, count, log. Every path ends in an
//! `AdmissionReview` (never an HTTP error): the API server reads an HTTP error as a webhook failure
//! and, with `failurePolicy: Fail`, refuses the write without telling the user why.

use std::time::{Duration, Instant};

use agentgateway_crds::GROUP;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::{DynamicObject, GroupVersionKind};
use serde_json::Value;

use crate::defaulting::{default_patch, default_policy_patch};
use crate::metrics::{Outcome, Webhook};
use crate::review::{
    Malformed, Review, deny, encode, malformed_response, operation_name, parse_review,
};
use crate::router::WebhookState;
use crate::secrets::BoundedLookup;
use crate::targets::BoundedTargets;
use crate::validate::{
    Verdict, validate_object, validate_parameters_object, validate_policy_object,
};

/// How long one Secret or target lookup may take before the webhook answers without it.
const SECRET_LOOKUP_LIMIT: Duration = Duration::from_secs(2);

/// The only version of the kinds these webhooks admit.
const VERSION: &str = "v1alpha1";

/// The kinds these webhooks admit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Admitted {
    Backend,
    Policy,
    Parameters,
}

impl Admitted {
    const ALL: [Self; 3] = [Self::Backend, Self::Policy, Self::Parameters];

    fn kind(self) -> &'static str {
        match self {
            Self::Backend => "AgentgatewayBackend",
            Self::Policy => "AgentgatewayPolicy",
            Self::Parameters => "AgentgatewayParameters",
        }
    }

    /// The kind a review is about, when it is one of ours.
    fn of(kind: &GroupVersionKind) -> Option<Self> {
        if kind.group != GROUP || kind.version != VERSION {
            return None;
        }
        Self::ALL
            .into_iter()
            .find(|admitted| kind.kind == admitted.kind())
    }
}

/// Answers one review sent to `webhook`. `body` is the request body, or why it could not be read.
pub(crate) async fn handle(
    webhook: Webhook,
    state: &WebhookState,
    body: Result<&[u8], String>,
) -> Vec<u8> {
    let started = Instant::now();
    let review = body
        .map_err(|problem| Malformed::new("", problem))
        .and_then(parse_review);
    let review = match review {
        Ok(review) => review,
        Err(malformed) => {
            let elapsed = started.elapsed();
            state.metrics.record(webhook, Outcome::Malformed, elapsed);
            tracing::info!(
                webhook = webhook.label(),
                uid = %malformed.uid,
                error = %malformed.message,
                duration_us = micros(elapsed),
                "refused a malformed AdmissionReview"
            );
            return encode(malformed_response(&malformed));
        }
    };
    let subject = Subject::of(&review.request);
    let (response, outcome) = match webhook {
        Webhook::Validate => validate(state, review).await,
        Webhook::Mutate => mutate(review),
    };
    let elapsed = started.elapsed();
    state.metrics.record(webhook, outcome, elapsed);
    subject.log(webhook, &response, outcome, micros(elapsed));
    encode(response)
}

/// Microseconds as a `u64`: tracing records `u128` as a string, which log queries cannot compare.
fn micros(elapsed: std::time::Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// What a decision is logged with, taken from the request before it is consumed.
struct Subject {
    namespace: String,
    name: String,
    operation: &'static str,
}

impl Subject {
    fn of(request: &AdmissionRequest<DynamicObject>) -> Self {
        Self {
            namespace: request.namespace.clone().unwrap_or_default(),
            name: request.name.clone(),
            operation: operation_name(&request.operation),
        }
    }

    /// Denials at info (someone's apply failed and may ask why), everything else at debug.
    fn log(&self, webhook: Webhook, response: &AdmissionResponse, outcome: Outcome, us: u64) {
        if outcome == Outcome::Denied {
            tracing::info!(
                webhook = webhook.label(),
                uid = %response.uid,
                namespace = %self.namespace,
                name = %self.name,
                operation = self.operation,
                allowed = response.allowed,
                message = %response.result.message,
                duration_us = us,
                "denied an admission request"
            );
        } else {
            tracing::debug!(
                webhook = webhook.label(),
                uid = %response.uid,
                namespace = %self.namespace,
                name = %self.name,
                operation = self.operation,
                allowed = response.allowed,
                result = outcome.label(),
                duration_us = us,
                "answered an admission request"
            );
        }
    }
}

async fn validate(state: &WebhookState, review: Review) -> (AdmissionResponse, Outcome) {
    let Review {
        request,
        object,
        old_object,
    } = review;
    if skips_checks(&request) {
        return (AdmissionResponse::from(&request), Outcome::Allowed);
    }
    let Some(admitted) = Admitted::of(&request.kind) else {
        let message = wrong_kind_message(&request.kind);
        return (deny(&request, &message, 400, "BadRequest"), Outcome::Denied);
    };
    let Some(mut object) = object else {
        let malformed = Malformed::new(&request.uid, "request.object is missing");
        return (malformed_response(&malformed), Outcome::Malformed);
    };
    fill_namespace(&mut object, request.namespace.as_deref());
    let old_object = old_object.filter(|_| request.operation == Operation::Update);
    let verdict = match admitted {
        Admitted::Backend => {
            let secrets = BoundedLookup {
                inner: state.secrets.clone(),
                limit: SECRET_LOOKUP_LIMIT,
            };
            validate_object(&object, old_object.as_ref(), &secrets).await
        }
        Admitted::Policy => {
            let targets = BoundedTargets {
                inner: state.targets.clone(),
                limit: SECRET_LOOKUP_LIMIT,
            };
            validate_policy_object(&object, old_object.as_ref(), &targets).await
        }
        Admitted::Parameters => validate_parameters_object(&object, old_object.as_ref()).await,
    };
    match verdict {
        Verdict::Allowed { warnings } => {
            let mut response = AdmissionResponse::from(&request);
            if !warnings.is_empty() {
                response.warnings = Some(warnings);
            }
            (response, Outcome::Allowed)
        }
        Verdict::Denied { message } => (deny(&request, &message, 422, "Invalid"), Outcome::Denied),
    }
}

fn mutate(review: Review) -> (AdmissionResponse, Outcome) {
    let Review {
        request, object, ..
    } = review;
    let allowed = AdmissionResponse::from(&request);
    // Anything this webhook does not understand passes unchanged: the validating webhook (and the
    // API server's schema) refuse it with a better message than a mutating webhook could give.
    let admitted = Admitted::of(&request.kind).filter(|_| !skips_checks(&request));
    let (Some(admitted), Some(object)) = (admitted, object) else {
        return (allowed, Outcome::Allowed);
    };
    let patch = match admitted {
        Admitted::Backend => default_patch(&object),
        Admitted::Policy => default_policy_patch(&object),
        // The operator's flags are the defaults of what a parameters object leaves out.
        Admitted::Parameters => return (allowed, Outcome::Allowed),
    };
    if patch.is_empty() {
        return (allowed, Outcome::Allowed);
    }
    match allowed.clone().with_patch(patch) {
        Ok(patched) => (patched, Outcome::Patched),
        Err(e) => {
            tracing::error!(error = %e, "failed to serialize a defaulting patch");
            (allowed, Outcome::Allowed)
        }
    }
}

/// DELETE and CONNECT carry no new spec, and a subresource write (status) cannot change the spec.
fn skips_checks(request: &AdmissionRequest<DynamicObject>) -> bool {
    matches!(request.operation, Operation::Delete | Operation::Connect)
        || request
            .sub_resource
            .as_deref()
            .is_some_and(|s| !s.is_empty())
}

fn wrong_kind_message(kind: &GroupVersionKind) -> String {
    let admitted: Vec<&str> = Admitted::ALL.iter().map(|a| a.kind()).collect();
    let admitted = match admitted.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    };
    format!(
        "this webhook admits {GROUP}/{VERSION} {}, not {}/{} {}",
        admitted, kind.group, kind.version, kind.kind
    )
}

/// A CREATE may leave `metadata.namespace` to the request URL; the Secrets and targets are looked
/// up there.
fn fill_namespace(object: &mut Value, namespace: Option<&str>) {
    let Some(namespace) = namespace else { return };
    if let Some(Value::Object(metadata)) = object.get_mut("metadata")
        && metadata.get("namespace").and_then(Value::as_str).is_none()
    {
        metadata.insert("namespace".into(), Value::from(namespace));
    }
}
