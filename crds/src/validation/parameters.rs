//! The structural rules of an `AgentgatewayParameters`, shared by the operator (a Gateway whose
//! parameters break one is `Accepted=False` `InvalidParameters`) and the webhook.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::policy::{is_label_key, is_label_value};
use super::quantity::parse_quantity;
use super::{Errors, FieldError};
use crate::parameters::{
    AgentgatewayParametersSpec, Autoscaling, PodDisruptionBudgetParameters, PodParameters,
};

/// The most replicas, fixed or autoscaled.
pub const MAX_REPLICAS: i32 = 1000;
/// The highest CPU utilization target, in percent of the request.
pub const MAX_CPU_UTILIZATION: i32 = 1000;
/// The most entries of each label, annotation or node selector map.
pub const MAX_MAP_ENTRIES: usize = 64;
/// The most bytes of one map's keys and values together (the API server allows 256 KiB for all
/// of an object's annotations).
pub const MAX_MAP_BYTES: usize = 64 * 1024;
/// The most tolerations.
pub const MAX_TOLERATIONS: usize = 32;
/// The most topology spread constraints.
pub const MAX_SPREAD_CONSTRAINTS: usize = 8;
/// The most resource names in `requests` or `limits`.
pub const MAX_RESOURCE_NAMES: usize = 8;

/// The labels that select a Gateway's proxy pods; the operator sets them and a user may not.
pub const RESERVED_LABELS: [&str; 3] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/managed-by",
    "gateway.networking.k8s.io/gateway-name",
];

/// Annotations under this prefix are the operator's own (the applied hash, the Redis password
/// version that restarts the pods).
pub const RESERVED_ANNOTATION_PREFIX: &str = "agentgateway.dev/";

/// Every violation in the spec, in field order. Empty means valid.
pub fn validate_parameters_spec(spec: &AgentgatewayParametersSpec) -> Vec<FieldError> {
    let mut errors = Errors::default();
    if let Some(replicas) = spec.replicas
        && !(0..=MAX_REPLICAS).contains(&replicas)
    {
        errors.push(
            "spec.replicas",
            format!("must be between 0 and {MAX_REPLICAS}"),
        );
    }
    if spec.replicas.is_some() && spec.autoscaling.is_some() {
        errors.push(
            "spec.autoscaling",
            "replicas and autoscaling are exclusive: set one of them",
        );
    }
    if let Some(autoscaling) = &spec.autoscaling {
        validate_autoscaling(&mut errors, autoscaling);
    }
    if let Some(resources) = &spec.resources {
        validate_resources(&mut errors, "spec.resources", resources);
    }
    if let Some(service) = &spec.service
        && let Some(annotations) = &service.annotations
    {
        validate_annotations(&mut errors, "spec.service.annotations", annotations);
    }
    if let Some(pod) = &spec.pod {
        validate_pod(&mut errors, pod);
    }
    if let Some(budget) = &spec.pod_disruption_budget {
        validate_budget(&mut errors, budget);
    }
    errors.0
}

fn validate_autoscaling(errors: &mut Errors, autoscaling: &Autoscaling) {
    let min = autoscaling.min_replicas.unwrap_or(1);
    if !(1..=MAX_REPLICAS).contains(&min) {
        errors.push(
            "spec.autoscaling.minReplicas",
            format!("must be between 1 and {MAX_REPLICAS}"),
        );
    }
    if !(1..=MAX_REPLICAS).contains(&autoscaling.max_replicas) {
        errors.push(
            "spec.autoscaling.maxReplicas",
            format!("must be between 1 and {MAX_REPLICAS}"),
        );
    } else if autoscaling.max_replicas < min {
        errors.push(
            "spec.autoscaling.maxReplicas",
            "must not be less than minReplicas",
        );
    }
    if let Some(target) = autoscaling.target_cpu_utilization_percentage
        && !(1..=MAX_CPU_UTILIZATION).contains(&target)
    {
        errors.push(
            "spec.autoscaling.targetCPUUtilizationPercentage",
            format!("must be between 1 and {MAX_CPU_UTILIZATION}"),
        );
    }
}

/// Quantities that parse, resource names that are names, and no request above its limit.
pub(super) fn validate_resources(
    errors: &mut Errors,
    path: &str,
    resources: &ResourceRequirements,
) {
    if resources.claims.as_ref().is_some_and(|c| !c.is_empty()) {
        errors.push(
            format!("{path}.claims"),
            "is not supported (dynamic resource claims need Kubernetes 1.26 or newer)",
        );
    }
    let mut parsed = BTreeMap::new();
    for (field, quantities) in [
        ("limits", &resources.limits),
        ("requests", &resources.requests),
    ] {
        let Some(quantities) = quantities else {
            continue;
        };
        if quantities.len() > MAX_RESOURCE_NAMES {
            errors.push(
                format!("{path}.{field}"),
                format!("must have at most {MAX_RESOURCE_NAMES} entries"),
            );
            continue;
        }
        for (name, quantity) in quantities {
            if !is_label_key(name) {
                errors.push(
                    format!("{path}.{field}"),
                    format!("{:?} is not a resource name", truncated(name)),
                );
                continue;
            }
            match parse_quantity(&quantity.0) {
                Some(value) => {
                    parsed.insert((field, name.as_str()), value);
                }
                None => errors.push(
                    format!("{path}.{field}.{name}"),
                    format!(
                        "{:?} is not a quantity (such as 100m, 2, 64Mi or 1Gi)",
                        truncated(&quantity.0)
                    ),
                ),
            }
        }
    }
    for ((field, name), request) in &parsed {
        if *field != "requests" {
            continue;
        }
        if let Some(limit) = parsed.get(&("limits", name))
            && request > limit
        {
            errors.push(
                format!("{path}.requests.{name}"),
                format!("must not exceed limits.{name}"),
            );
        }
    }
}

fn validate_pod(errors: &mut Errors, pod: &PodParameters) {
    if let Some(annotations) = &pod.annotations {
        validate_annotations(errors, "spec.pod.annotations", annotations);
    }
    if let Some(labels) = &pod.labels {
        validate_labels(errors, "spec.pod.labels", labels);
        for key in RESERVED_LABELS {
            if labels.contains_key(key) {
                errors.push(
                    "spec.pod.labels",
                    format!("{key:?} selects the proxy pods and is set by the operator"),
                );
            }
        }
    }
    if let Some(selector) = &pod.node_selector {
        validate_labels(errors, "spec.pod.nodeSelector", selector);
    }
    if let Some(tolerations) = &pod.tolerations {
        if tolerations.len() > MAX_TOLERATIONS {
            errors.push(
                "spec.pod.tolerations",
                format!("must have at most {MAX_TOLERATIONS} entries"),
            );
        }
        for (i, toleration) in tolerations.iter().enumerate() {
            validate_toleration(errors, &format!("spec.pod.tolerations[{i}]"), toleration);
        }
    }
    if let Some(constraints) = &pod.topology_spread_constraints {
        if constraints.len() > MAX_SPREAD_CONSTRAINTS {
            errors.push(
                "spec.pod.topologySpreadConstraints",
                format!("must have at most {MAX_SPREAD_CONSTRAINTS} entries"),
            );
        }
        for (i, constraint) in constraints.iter().enumerate() {
            let path = format!("spec.pod.topologySpreadConstraints[{i}]");
            validate_spread(errors, &path, constraint);
        }
    }
}

fn validate_toleration(errors: &mut Errors, path: &str, toleration: &Toleration) {
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && !is_label_key(key) {
        errors.push(format!("{path}.key"), "is not a label key");
    }
    match toleration.operator.as_deref() {
        None | Some("Equal") => {
            if key.is_empty() {
                errors.push(
                    format!("{path}.key"),
                    "must be set unless operator is Exists",
                );
            }
            if !is_label_value(toleration.value.as_deref().unwrap_or_default()) {
                errors.push(format!("{path}.value"), "is not a label value");
            }
        }
        Some("Exists") => {
            if toleration.value.as_deref().is_some_and(|v| !v.is_empty()) {
                errors.push(
                    format!("{path}.value"),
                    "must be empty when operator is Exists",
                );
            }
        }
        Some(_) => errors.push(format!("{path}.operator"), "must be Equal or Exists"),
    }
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !matches!(effect, "" | "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        errors.push(
            format!("{path}.effect"),
            "must be NoSchedule, PreferNoSchedule or NoExecute (or empty: all of them)",
        );
    }
    if toleration.toleration_seconds.is_some() && effect != "NoExecute" {
        errors.push(
            format!("{path}.tolerationSeconds"),
            "applies only to the NoExecute effect",
        );
    }
}

fn validate_spread(errors: &mut Errors, path: &str, constraint: &TopologySpreadConstraint) {
    if constraint.max_skew < 1 {
        errors.push(format!("{path}.maxSkew"), "must be at least 1");
    }
    if !is_label_key(&constraint.topology_key) {
        errors.push(
            format!("{path}.topologyKey"),
            "must be a node label key (such as topology.kubernetes.io/zone)",
        );
    }
    if !matches!(
        constraint.when_unsatisfiable.as_str(),
        "DoNotSchedule" | "ScheduleAnyway"
    ) {
        errors.push(
            format!("{path}.whenUnsatisfiable"),
            "must be DoNotSchedule or ScheduleAnyway",
        );
    }
    // Newer than Kubernetes 1.20, whose API server would drop them from the Deployment without a
    // word: refused, so that nothing the user wrote is silently ignored.
    let newer = [
        ("minDomains", constraint.min_domains.is_some()),
        ("matchLabelKeys", constraint.match_label_keys.is_some()),
        (
            "nodeAffinityPolicy",
            constraint.node_affinity_policy.is_some(),
        ),
        ("nodeTaintsPolicy", constraint.node_taints_policy.is_some()),
    ];
    for (field, set) in newer {
        if set {
            errors.push(
                format!("{path}.{field}"),
                "is not supported: Kubernetes 1.20 does not know it and would ignore it",
            );
        }
    }
    if let Some(selector) = &constraint.label_selector {
        for (key, value) in selector.match_labels.iter().flatten() {
            if !is_label_key(key) || !is_label_value(value) {
                errors.push(
                    format!("{path}.labelSelector.matchLabels"),
                    format!("{:?} is not a label", truncated(key)),
                );
            }
        }
        let expressions = selector.match_expressions.as_deref().unwrap_or_default();
        if expressions.len() > MAX_MAP_ENTRIES {
            errors.push(
                format!("{path}.labelSelector.matchExpressions"),
                format!("must have at most {MAX_MAP_ENTRIES} entries"),
            );
        }
        for (i, expression) in expressions.iter().enumerate() {
            let path = format!("{path}.labelSelector.matchExpressions[{i}]");
            if !is_label_key(&expression.key) {
                errors.push(format!("{path}.key"), "is not a label key");
            }
            if !matches!(
                expression.operator.as_str(),
                "In" | "NotIn" | "Exists" | "DoesNotExist"
            ) {
                errors.push(
                    format!("{path}.operator"),
                    "must be In, NotIn, Exists or DoesNotExist",
                );
            }
        }
    }
}

fn validate_budget(errors: &mut Errors, budget: &PodDisruptionBudgetParameters) {
    let path = "spec.podDisruptionBudget";
    match (&budget.min_available, &budget.max_unavailable) {
        (Some(value), None) => check_int_or_percent(errors, &format!("{path}.minAvailable"), value),
        (None, Some(value)) => {
            check_int_or_percent(errors, &format!("{path}.maxUnavailable"), value)
        }
        _ => errors.push(
            path,
            "exactly one of minAvailable or maxUnavailable must be set",
        ),
    }
}

fn check_int_or_percent(errors: &mut Errors, path: &str, value: &IntOrString) {
    let valid = match value {
        IntOrString::Int(n) => (0..=MAX_REPLICAS).contains(n),
        IntOrString::String(s) => s
            .strip_suffix('%')
            .filter(|digits| !digits.is_empty() && digits.len() <= 3)
            .and_then(|digits| digits.parse::<u32>().ok())
            .is_some_and(|percent| percent <= 100),
    };
    if !valid {
        errors.push(
            path,
            format!("must be a number of pods (0 to {MAX_REPLICAS}) or a percentage (\"0%\" to \"100%\")"),
        );
    }
}

/// Label keys and values as the API server checks them, at most [`MAX_MAP_ENTRIES`].
pub(super) fn validate_labels(errors: &mut Errors, path: &str, labels: &BTreeMap<String, String>) {
    if labels.len() > MAX_MAP_ENTRIES {
        errors.push(path, format!("must have at most {MAX_MAP_ENTRIES} entries"));
        return;
    }
    for (key, value) in labels {
        if !is_label_key(key) {
            errors.push(path, format!("{:?} is not a label key", truncated(key)));
        } else if !is_label_value(value) {
            errors.push(
                format!("{path}.{key}"),
                format!("{:?} is not a label value", truncated(value)),
            );
        }
    }
}

/// Annotation keys (the label key syntax), bounded counts and sizes, and none of the operator's.
pub(super) fn validate_annotations(
    errors: &mut Errors,
    path: &str,
    annotations: &BTreeMap<String, String>,
) {
    let bytes: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if annotations.len() > MAX_MAP_ENTRIES || bytes > MAX_MAP_BYTES {
        errors.push(
            path,
            format!("must have at most {MAX_MAP_ENTRIES} entries and {MAX_MAP_BYTES} bytes"),
        );
        return;
    }
    for key in annotations.keys() {
        if !is_label_key(key) {
            errors.push(
                path,
                format!("{:?} is not an annotation key", truncated(key)),
            );
        } else if key.starts_with(RESERVED_ANNOTATION_PREFIX) {
            errors.push(
                path,
                format!("{key:?}: keys under {RESERVED_ANNOTATION_PREFIX} are the operator's"),
            );
        }
    }
}

/// The rules of a Gateway's `spec.infrastructure.labels` and `annotations`, which go on every
/// object of its proxy: valid keys and values, bounded, and none of the operator's own.
pub fn validate_infrastructure(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
) -> Vec<FieldError> {
    let mut errors = Errors::default();
    let path = "spec.infrastructure.labels";
    validate_labels(&mut errors, path, labels);
    for key in RESERVED_LABELS {
        if labels.contains_key(key) {
            errors.push(
                path,
                format!("{key:?} selects the proxy pods and is set by the operator"),
            );
        }
    }
    validate_annotations(&mut errors, "spec.infrastructure.annotations", annotations);
    errors.0
}

/// At most 64 characters of a user's string in a message.
fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> AgentgatewayParametersSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn fields(yaml: &str) -> Vec<String> {
        validate_parameters_spec(&spec(yaml))
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_complete_parameters_object_is_valid() {
        let yaml = r#"
autoscaling: {minReplicas: 2, maxReplicas: 6, targetCPUUtilizationPercentage: 70}
resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {cpu: "2", memory: 256Mi}}
service: {type: LoadBalancer, annotations: {service.beta.kubernetes.io/aws-load-balancer-type: nlb}}
pod:
  annotations: {prometheus.io/scrape: "true"}
  labels: {team: ml}
  nodeSelector: {kubernetes.io/os: linux}
  tolerations: [{key: dedicated, operator: Equal, value: gateway, effect: NoSchedule}, {operator: Exists}]
  topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway}]
podDisruptionBudget: {minAvailable: "50%"}
"#;
        assert_eq!(validate_parameters_spec(&spec(yaml)), []);
        assert_eq!(fields("replicas: 0"), Vec::<String>::new());
    }

    #[test]
    fn replicas_and_autoscaling_are_exclusive_and_bounded() {
        assert_eq!(
            fields("{replicas: 2, autoscaling: {maxReplicas: 3}}"),
            ["spec.autoscaling"]
        );
        assert_eq!(fields("replicas: 1001"), ["spec.replicas"]);
        assert_eq!(fields("replicas: -1"), ["spec.replicas"]);
        assert_eq!(
            fields("autoscaling: {minReplicas: 5, maxReplicas: 2}"),
            ["spec.autoscaling.maxReplicas"]
        );
        assert_eq!(
            fields(
                "autoscaling: {minReplicas: 0, maxReplicas: 1001, targetCPUUtilizationPercentage: 0}"
            ),
            [
                "spec.autoscaling.minReplicas",
                "spec.autoscaling.maxReplicas",
                "spec.autoscaling.targetCPUUtilizationPercentage"
            ]
        );
    }

    #[test]
    fn quantities_must_parse_and_requests_must_not_exceed_limits() {
        assert_eq!(
            fields("resources: {requests: {cpu: \"2\", memory: lots}, limits: {cpu: \"1\"}}"),
            [
                "spec.resources.requests.memory",
                "spec.resources.requests.cpu"
            ]
        );
        assert_eq!(
            fields("resources: {requests: {memory: 1Gi}, limits: {memory: 1024Mi}}"),
            Vec::<String>::new()
        );
        assert_eq!(
            fields("resources: {claims: [{name: gpu}]}"),
            ["spec.resources.claims"]
        );
    }

    #[test]
    fn selector_labels_and_operator_annotations_are_refused() {
        let errors = validate_parameters_spec(&spec(
            "pod: {labels: {app.kubernetes.io/name: mine, gateway.networking.k8s.io/gateway-name: x}}",
        ));
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[0].starts_with("spec.pod.labels: \"app.kubernetes.io/name\""));
        assert_eq!(
            fields("pod: {annotations: {agentgateway.dev/redis-password-version: x}}"),
            ["spec.pod.annotations"]
        );
        assert_eq!(
            fields("service: {annotations: {\"bad key!\": x}}"),
            ["spec.service.annotations"]
        );
        assert_eq!(
            fields("pod: {nodeSelector: {zone: \"not a value\"}}"),
            ["spec.pod.nodeSelector.zone"]
        );
    }

    #[test]
    fn maps_and_lists_are_bounded() {
        let labels: Vec<String> = (0..65).map(|i| format!("k{i}: v")).collect();
        assert_eq!(
            fields(&format!("pod: {{labels: {{{}}}}}", labels.join(", "))),
            ["spec.pod.labels"]
        );
        let big = "x".repeat(MAX_MAP_BYTES);
        assert_eq!(
            fields(&format!("service: {{annotations: {{a: {big}}}}}")),
            ["spec.service.annotations"]
        );
        let tolerations = vec!["{operator: Exists}"; 33].join(", ");
        assert_eq!(
            fields(&format!("pod: {{tolerations: [{tolerations}]}}")),
            ["spec.pod.tolerations"]
        );
    }

    #[test]
    fn tolerations_and_spread_constraints_follow_the_api_servers_rules() {
        assert_eq!(
            fields(
                "pod: {tolerations: [{operator: Exists, value: x}, {key: a, operator: Maybe}, {key: a, effect: Sometimes, tolerationSeconds: 5}]}"
            ),
            [
                "spec.pod.tolerations[0].value",
                "spec.pod.tolerations[1].operator",
                "spec.pod.tolerations[2].effect",
                "spec.pod.tolerations[2].tolerationSeconds",
            ]
        );
        assert_eq!(
            fields(
                "pod: {topologySpreadConstraints: [{maxSkew: 0, topologyKey: '', whenUnsatisfiable: Never, minDomains: 2}]}"
            ),
            [
                "spec.pod.topologySpreadConstraints[0].maxSkew",
                "spec.pod.topologySpreadConstraints[0].topologyKey",
                "spec.pod.topologySpreadConstraints[0].whenUnsatisfiable",
                "spec.pod.topologySpreadConstraints[0].minDomains",
            ]
        );
    }

    #[test]
    fn a_budget_has_exactly_one_of_its_two_fields_as_a_count_or_percentage() {
        assert_eq!(
            fields("podDisruptionBudget: {}"),
            ["spec.podDisruptionBudget"]
        );
        assert_eq!(
            fields("podDisruptionBudget: {minAvailable: 1, maxUnavailable: 1}"),
            ["spec.podDisruptionBudget"]
        );
        assert_eq!(
            fields("podDisruptionBudget: {maxUnavailable: \"150%\"}"),
            ["spec.podDisruptionBudget.maxUnavailable"]
        );
        assert_eq!(
            fields("podDisruptionBudget: {minAvailable: half}"),
            ["spec.podDisruptionBudget.minAvailable"]
        );
        assert_eq!(
            fields("podDisruptionBudget: {maxUnavailable: 1}"),
            Vec::<String>::new()
        );
    }
}
