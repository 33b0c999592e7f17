//! AgentgatewayBackend: the `Accepted` condition, from the compiler's own verdict
//! ([`backend_problems`]) over the cached Secrets and ConfigMaps the backend refers to.

use std::sync::Arc;

use agentgateway_compiler::{Diagnostic, backend_problems};
use agentgateway_crds::AgentgatewayBackend;
use agentgateway_crds::conditions::{reasons, types};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};

use super::status::{StatusWrite, write_status};
use super::{instrumented, object_key, on_error};
use crate::conditions::{self, Desired};
use crate::context::Context;
use crate::error::{Error, Result};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "backend";

/// Reconciles one backend.
pub async fn reconcile(backend: Arc<AgentgatewayBackend>, ctx: Arc<Context>) -> Result<Action> {
    let key = object_key(backend.as_ref());
    instrumented(
        &ctx,
        CONTROLLER,
        &key,
        reconcile_backend(&backend, &ctx, &key),
    )
    .await
}

/// The error policy of this controller.
pub fn error_policy(backend: Arc<AgentgatewayBackend>, error: &Error, ctx: Arc<Context>) -> Action {
    on_error(&ctx, CONTROLLER, &object_key(backend.as_ref()), error)
}

async fn reconcile_backend(
    backend: &AgentgatewayBackend,
    ctx: &Context,
    key: &str,
) -> Result<Action> {
    let inputs = ctx.stores.backend_inputs(&ctx.client, backend).await?;
    let problems = backend_problems(backend, &inputs);
    let desired = accepted_condition(backend.meta().generation, problems);
    let existing = backend
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let namespace = backend.namespace().unwrap_or_default();
    let api: Api<AgentgatewayBackend> = Api::namespaced(ctx.client.clone(), &namespace);
    let write = StatusWrite {
        object: backend,
        up_to_date: conditions::up_to_date(existing, std::slice::from_ref(&desired)),
        wanted: format!("{desired:?}"),
        precondition: false,
    };
    let written = write_status(ctx, &api, write, || {
        let merged = conditions::merge(existing, std::slice::from_ref(&desired), Timestamp::now());
        serde_json::json!({ "conditions": merged })
    })
    .await?;
    if !written {
        return Ok(Action::await_change());
    }
    tracing::info!(
        backend = %key,
        accepted = desired.status,
        reason = %desired.reason,
        "backend status updated"
    );
    if !desired.status {
        ctx.publish(
            &backend.object_ref(&()),
            EventType::Warning,
            &desired.reason,
            "Validate",
            desired.message.clone(),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// `Accepted` from the compiler's problems: `True` when there are none, else `False` with the
/// first one's reason and every problem as `field: message`, joined by `; ` (the webhook's words).
pub fn accepted_condition(generation: Option<i64>, problems: Vec<Diagnostic>) -> Desired {
    let Some(first) = problems.first() else {
        return Desired::new(
            types::ACCEPTED,
            true,
            reasons::ACCEPTED,
            "the backend is valid and every reference resolves",
            generation,
        );
    };
    let message = problems
        .iter()
        .map(|d| format!("{}: {}", d.field, d.message))
        .collect::<Vec<_>>()
        .join("; ");
    Desired::new(
        types::ACCEPTED,
        false,
        first.reason.as_str(),
        message,
        generation,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgateway_compiler::{Inputs, Reason};

    fn backend(yaml: &str) -> AgentgatewayBackend {
        serde_yaml::from_str(yaml).unwrap()
    }

    const WITH_SECRET: &str = "
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: openai, namespace: apps, generation: 3}
spec:
  ai:
    provider:
      openai: {model: gpt-4o}
      policies:
        auth: {secretRef: {name: openai-secret}}
";

    #[test]
    fn a_valid_backend_is_accepted_at_its_generation() {
        let backend = backend(
            "
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: local-llm, namespace: agentgateway-system, generation: 2}
spec:
  ai:
    provider: {host: host.docker.internal, port: 8090, openai: {model: gemma}}
",
        );
        let inputs = Inputs {
            backends: vec![backend.clone()],
            ..Inputs::default()
        };
        let condition = accepted_condition(Some(2), backend_problems(&backend, &inputs));
        assert!(condition.status);
        assert_eq!(condition.reason, "Accepted");
        assert_eq!(condition.observed_generation, Some(2));
    }

    #[test]
    fn a_missing_secret_is_reported_with_its_reason_and_field() {
        let backend = backend(WITH_SECRET);
        let inputs = Inputs {
            backends: vec![backend.clone()],
            ..Inputs::default()
        };
        let problems = backend_problems(&backend, &inputs);
        assert_eq!(problems[0].reason, Reason::SecretNotFound);
        let condition = accepted_condition(Some(3), problems);
        assert!(!condition.status);
        assert_eq!(condition.reason, "SecretNotFound");
        assert!(
            condition.message.contains("secretRef") && condition.message.contains("openai-secret"),
            "{}",
            condition.message
        );
    }

    #[test]
    fn every_violation_is_in_the_message_as_the_webhook_words_it() {
        let backend = backend(
            "
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: broken, namespace: apps}
spec:
  ai:
    groups:
    - providers:
      - {name: a, host: 'http://x', port: 0, openai: {model: m}}
",
        );
        let inputs = Inputs {
            backends: vec![backend.clone()],
            ..Inputs::default()
        };
        let condition = accepted_condition(None, backend_problems(&backend, &inputs));
        assert_eq!(condition.reason, "InvalidSpec");
        let parts: Vec<&str> = condition.message.split("; ").collect();
        assert_eq!(parts.len(), 2, "{}", condition.message);
        assert!(
            parts
                .iter()
                .any(|p| p.starts_with("spec.ai.groups[0].providers[0].host: "))
        );
        assert!(
            parts.contains(&"spec.ai.groups[0].providers[0].port: must be between 1 and 65535")
        );
    }
}
