//! Which `AgentgatewayParameters` shape a Gateway's proxy: its class's `spec.parametersRef`
//! (the default), overridden field by field by the Gateway's `spec.infrastructure.parametersRef`,
//! plus the Gateway's infrastructure labels and annotations. Pure: the objects come from a lookup.
//! A reference to a missing object or another kind, or an invalid object, is an error whose
//! message names it: the Gateway (or class) is `Accepted=False` `InvalidParameters`.

use std::sync::Arc;

use agentgateway_crds::gateway_api::{Gateway, GatewayClass};
use agentgateway_crds::validation::{validate_infrastructure, validate_parameters_spec};
use agentgateway_crds::{AgentgatewayParameters, AgentgatewayParametersSpec, GROUP};
use kube::ResourceExt;

use crate::resources::ProxyShape;

/// The kind a `parametersRef` must name.
pub const KIND: &str = "AgentgatewayParameters";

/// The longest message about invalid parameters (the violations are listed up to it).
const MAX_MESSAGE_LEN: usize = 2048;

/// Finds the parameters `namespace/name`.
pub trait Lookup: Fn(&str, &str) -> Option<Arc<AgentgatewayParameters>> {}
impl<F: Fn(&str, &str) -> Option<Arc<AgentgatewayParameters>>> Lookup for F {}

/// The class's parameters: `Ok(None)` without a `parametersRef`.
pub fn class_parameters(
    class: &GatewayClass,
    lookup: &impl Lookup,
) -> Result<Option<AgentgatewayParametersSpec>, String> {
    let Some(reference) = &class.spec.parameters_ref else {
        return Ok(None);
    };
    let at = format!("GatewayClass {} spec.parametersRef", class.name_any());
    check_kind(&at, &reference.group, &reference.kind)?;
    let Some(namespace) = reference.namespace.as_deref() else {
        return Err(format!("{at}.namespace: required, as {KIND} is namespaced"));
    };
    resolve(&at, namespace, &reference.name, lookup).map(Some)
}

/// What shapes `gateway`'s proxy, given its class.
pub fn gateway_shape(
    gateway: &Gateway,
    class: &GatewayClass,
    lookup: &impl Lookup,
) -> Result<ProxyShape, String> {
    let class_spec = class_parameters(class, lookup)?.unwrap_or_default();
    let infrastructure = gateway.spec.infrastructure.clone().unwrap_or_default();
    let own = match &infrastructure.parameters_ref {
        Some(reference) => {
            let at = "spec.infrastructure.parametersRef";
            check_kind(at, &reference.group, &reference.kind)?;
            let namespace = gateway.namespace().unwrap_or_default();
            resolve(at, &namespace, &reference.name, lookup)?
        }
        None => AgentgatewayParametersSpec::default(),
    };
    let labels = infrastructure.labels.unwrap_or_default();
    let annotations = infrastructure.annotations.unwrap_or_default();
    let problems = validate_infrastructure(&labels, &annotations);
    if !problems.is_empty() {
        return Err(bounded(join(&problems)));
    }
    Ok(ProxyShape {
        parameters: own.over(&class_spec),
        labels,
        annotations,
    })
}

/// The Gateway's infrastructure labels and annotations alone (none when they are invalid): what
/// its objects keep while its parameters are invalid.
pub fn infrastructure_only(gateway: &Gateway) -> ProxyShape {
    let infrastructure = gateway.spec.infrastructure.clone().unwrap_or_default();
    let labels = infrastructure.labels.unwrap_or_default();
    let annotations = infrastructure.annotations.unwrap_or_default();
    if !validate_infrastructure(&labels, &annotations).is_empty() {
        return ProxyShape::default();
    }
    ProxyShape {
        labels,
        annotations,
        ..ProxyShape::default()
    }
}

fn check_kind(at: &str, group: &str, kind: &str) -> Result<(), String> {
    if group == GROUP && kind == KIND {
        return Ok(());
    }
    Err(bounded(format!(
        "{at}: {kind:?} of group {group:?} is not supported: use {KIND} ({GROUP})"
    )))
}

fn resolve(
    at: &str,
    namespace: &str,
    name: &str,
    lookup: &impl Lookup,
) -> Result<AgentgatewayParametersSpec, String> {
    let Some(parameters) = lookup(namespace, name) else {
        return Err(bounded(format!(
            "{at}: {KIND} {namespace}/{name} not found"
        )));
    };
    let problems = validate_parameters_spec(&parameters.spec);
    if !problems.is_empty() {
        return Err(bounded(format!(
            "{KIND} {namespace}/{name} is invalid: {}",
            join(&problems)
        )));
    }
    Ok(parameters.spec.clone())
}

fn join(problems: &[agentgateway_crds::validation::FieldError]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Names and values in these messages come from users: a message stays a condition's size.
fn bounded(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str(" ...");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgateway_crds::parameters::ServiceType;
    use std::collections::BTreeMap;

    fn parameters(namespace: &str, name: &str, yaml: &str) -> Arc<AgentgatewayParameters> {
        let mut object = AgentgatewayParameters::new(name, serde_yaml::from_str(yaml).unwrap());
        object.metadata.namespace = Some(namespace.into());
        Arc::new(object)
    }

    fn store() -> BTreeMap<(String, String), Arc<AgentgatewayParameters>> {
        [
            parameters(
                "infra",
                "class-default",
                "{autoscaling: {maxReplicas: 4}, service: {type: LoadBalancer}}",
            ),
            parameters("team", "fixed", "{replicas: 3}"),
            parameters(
                "team",
                "broken",
                "{replicas: 2, autoscaling: {maxReplicas: 3}}",
            ),
        ]
        .into_iter()
        .map(|p| ((p.namespace().unwrap(), p.name_any()), p))
        .collect()
    }

    fn lookup(store: &BTreeMap<(String, String), Arc<AgentgatewayParameters>>) -> impl Lookup + '_ {
        |namespace: &str, name: &str| store.get(&(namespace.into(), name.into())).cloned()
    }

    fn class(reference: &str) -> GatewayClass {
        serde_yaml::from_str(&format!(
            "
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: agentgateway}}
spec: {{controllerName: agentgateway.dev/agentgateway{reference}}}
"
        ))
        .unwrap()
    }

    fn gateway(infrastructure: &str) -> Gateway {
        serde_yaml::from_str(&format!(
            "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: team}}
spec: {{gatewayClassName: agentgateway, listeners: []{infrastructure}}}
"
        ))
        .unwrap()
    }

    const CLASS_REF: &str = ", parametersRef: {group: agentgateway.dev, kind: AgentgatewayParameters, name: class-default, namespace: infra}";

    #[test]
    fn without_any_parameters_the_shape_is_empty() {
        let store = store();
        let shape = gateway_shape(&gateway(""), &class(""), &lookup(&store)).unwrap();
        assert_eq!(shape, ProxyShape::default());
    }

    #[test]
    fn the_class_default_applies_and_the_gateway_overrides_it_field_by_field() {
        let store = store();
        let inherited = gateway_shape(&gateway(""), &class(CLASS_REF), &lookup(&store)).unwrap();
        assert_eq!(inherited.parameters.autoscaling.unwrap().max_replicas, 4);
        let own = gateway(
            ", infrastructure: {labels: {team: ml}, parametersRef: {group: agentgateway.dev, kind: AgentgatewayParameters, name: fixed}}",
        );
        let shape = gateway_shape(&own, &class(CLASS_REF), &lookup(&store)).unwrap();
        assert_eq!(shape.parameters.replicas, Some(3));
        assert_eq!(shape.parameters.autoscaling, None);
        assert_eq!(
            shape.parameters.service.unwrap().type_,
            Some(ServiceType::LoadBalancer)
        );
        assert_eq!(shape.labels["team"], "ml");
    }

    #[test]
    fn a_missing_wrong_kind_or_invalid_reference_is_named() {
        let store = store();
        let lookup = lookup(&store);
        let missing = gateway(
            ", infrastructure: {parametersRef: {group: agentgateway.dev, kind: AgentgatewayParameters, name: nope}}",
        );
        assert_eq!(
            gateway_shape(&missing, &class(""), &lookup).unwrap_err(),
            "spec.infrastructure.parametersRef: AgentgatewayParameters team/nope not found"
        );
        let wrong =
            gateway(", infrastructure: {parametersRef: {group: '', kind: ConfigMap, name: fixed}}");
        assert!(
            gateway_shape(&wrong, &class(""), &lookup)
                .unwrap_err()
                .contains("\"ConfigMap\" of group \"\" is not supported")
        );
        let broken = gateway(
            ", infrastructure: {parametersRef: {group: agentgateway.dev, kind: AgentgatewayParameters, name: broken}}",
        );
        assert_eq!(
            gateway_shape(&broken, &class(""), &lookup).unwrap_err(),
            "AgentgatewayParameters team/broken is invalid: spec.autoscaling: replicas and autoscaling are exclusive: set one of them"
        );
        let no_namespace = class(
            ", parametersRef: {group: agentgateway.dev, kind: AgentgatewayParameters, name: class-default}",
        );
        assert_eq!(
            class_parameters(&no_namespace, &lookup).unwrap_err(),
            "GatewayClass agentgateway spec.parametersRef.namespace: required, as AgentgatewayParameters is namespaced"
        );
        // A Gateway of a class with a bad reference is not built with the defaults either.
        assert!(gateway_shape(&gateway(""), &no_namespace, &lookup).is_err());
    }

    #[test]
    fn infrastructure_labels_may_not_take_the_selector_labels() {
        let store = store();
        let bad = gateway(", infrastructure: {labels: {app.kubernetes.io/name: other}}");
        let error = gateway_shape(&bad, &class(""), &lookup(&store)).unwrap_err();
        assert!(error.starts_with("spec.infrastructure.labels:"), "{error}");
        assert_eq!(infrastructure_only(&bad), ProxyShape::default());
    }

    #[test]
    fn with_invalid_parameters_the_infrastructure_labels_stay() {
        let broken = gateway(
            ", infrastructure: {labels: {team: ml}, parametersRef: {group: agentgateway.dev, kind: AgentgatewayParameters, name: broken}}",
        );
        let only = infrastructure_only(&broken);
        assert_eq!(only.labels["team"], "ml");
        assert_eq!(only.parameters, AgentgatewayParametersSpec::default());
    }
}
