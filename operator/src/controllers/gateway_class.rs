//! GatewayClass: every class whose `controllerName` is ours is `Accepted`, unless its
//! `parametersRef` names a missing object, another kind or invalid `AgentgatewayParameters`
//! (`Accepted=False` `InvalidParameters`).

use std::sync::Arc;

use agentgateway_crds::CONTROLLER_NAME;
use agentgateway_crds::conditions::{reasons, types};
use agentgateway_crds::gateway_api::GatewayClass;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use super::status::{StatusWrite, write_status};
use super::{instrumented, object_key, on_error, parameters};
use crate::conditions::{self, Desired};
use crate::context::Context;
use crate::error::{Error, Result};

/// The controller's name in metrics and logs.
pub const CONTROLLER: &str = "gateway_class";

/// Reconciles one GatewayClass.
pub async fn reconcile(class: Arc<GatewayClass>, ctx: Arc<Context>) -> Result<Action> {
    let key = object_key(class.as_ref());
    instrumented(&ctx, CONTROLLER, &key, reconcile_class(&class, &ctx)).await
}

/// The error policy of this controller.
pub fn error_policy(class: Arc<GatewayClass>, error: &Error, ctx: Arc<Context>) -> Action {
    on_error(&ctx, CONTROLLER, &object_key(class.as_ref()), error)
}

async fn reconcile_class(class: &GatewayClass, ctx: &Context) -> Result<Action> {
    let stores = &ctx.stores;
    let lookup = |namespace: &str, name: &str| {
        stores
            .parameters
            .get(&ObjectRef::new(name).within(namespace))
    };
    let problem = parameters::class_parameters(class, &lookup).err();
    let Some(desired) = accepted_condition(class, problem.as_deref()) else {
        return Ok(Action::await_change());
    };
    let existing = class
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let api: Api<GatewayClass> = Api::all(ctx.client.clone());
    let write = StatusWrite {
        object: class,
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
    tracing::info!(gateway_class = %class.name_any(), accepted = desired.status, "gateway class status updated");
    Ok(Action::await_change())
}

/// `Accepted` for a class of ours (`False` with `invalid_parameters` as the message when set);
/// `None` for other controllers' classes.
pub fn accepted_condition(
    class: &GatewayClass,
    invalid_parameters: Option<&str>,
) -> Option<Desired> {
    (class.spec.controller_name == CONTROLLER_NAME).then(|| match invalid_parameters {
        None => Desired::new(
            types::ACCEPTED,
            true,
            reasons::ACCEPTED,
            "agentgateway manages Gateways of this class",
            class.meta().generation,
        ),
        Some(message) => Desired::new(
            types::ACCEPTED,
            false,
            reasons::INVALID_PARAMETERS,
            message,
            class.meta().generation,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(controller: &str) -> GatewayClass {
        let mut class = GatewayClass::new("agentgateway", Default::default());
        class.spec.controller_name = controller.to_string();
        class.metadata.generation = Some(4);
        class
    }

    #[test]
    fn our_class_is_accepted_at_its_generation() {
        let condition = accepted_condition(&class(CONTROLLER_NAME), None).unwrap();
        assert!(condition.status);
        assert_eq!(condition.reason, "Accepted");
        assert_eq!(condition.observed_generation, Some(4));
    }

    #[test]
    fn other_controllers_classes_are_left_alone() {
        assert!(accepted_condition(&class("example.com/other"), None).is_none());
    }

    #[test]
    fn a_class_with_bad_parameters_is_not_accepted_with_the_message() {
        let mut class = class(CONTROLLER_NAME);
        class.spec.parameters_ref =
            Some(agentgateway_crds::gateway_api::ClassParametersReference {
                group: "agentgateway.dev".into(),
                kind: "AgentgatewayParameters".into(),
                name: "missing".into(),
                namespace: Some("infra".into()),
            });
        let problem = parameters::class_parameters(&class, &|_: &str, _: &str| None).unwrap_err();
        let condition = accepted_condition(&class, Some(&problem)).unwrap();
        assert!(!condition.status);
        assert_eq!(condition.reason, "InvalidParameters");
        assert_eq!(
            condition.message,
            "GatewayClass agentgateway spec.parametersRef: AgentgatewayParameters infra/missing not found"
        );
    }
}
