//! GatewayClass: every class whose `controllerName` is ours is `Accepted`.

use std::sync::Arc;

use agentgateway_crds::CONTROLLER_NAME;
use agentgateway_crds::conditions::{reasons, types};
use agentgateway_crds::gateway_api::GatewayClass;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::status::{StatusWrite, write_status};
use super::{instrumented, object_key, on_error};
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
    let Some(desired) = accepted_condition(class) else {
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
    tracing::info!(gateway_class = %class.name_any(), "gateway class accepted");
    Ok(Action::await_change())
}

/// `Accepted=True` for a class of ours; `None` for other controllers' classes.
pub fn accepted_condition(class: &GatewayClass) -> Option<Desired> {
    (class.spec.controller_name == CONTROLLER_NAME).then(|| {
        Desired::new(
            types::ACCEPTED,
            true,
            reasons::ACCEPTED,
            "agentgateway manages Gateways of this class",
            class.meta().generation,
        )
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
        let condition = accepted_condition(&class(CONTROLLER_NAME)).unwrap();
        assert!(condition.status);
        assert_eq!(condition.reason, "Accepted");
        assert_eq!(condition.observed_generation, Some(4));
    }

    #[test]
    fn other_controllers_classes_are_left_alone() {
        assert!(accepted_condition(&class("example.com/other")).is_none());
    }
}
