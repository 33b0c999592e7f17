//! Reading manifests: documents, kinds, defaults, and errors that name the source, document and field.

mod common;

use agentgateway_compiler::{ManifestError, parse_manifests};
use common::{backend, parse};

#[test]
fn empty_documents_and_unknown_kinds_are_skipped() {
    let yaml = "---\n---\n# only a comment\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n---\n"
        .to_string()
        + &backend("a");
    let inputs = parse(&yaml).unwrap();
    assert_eq!(inputs.backends.len(), 1);
    assert!(inputs.gateways.is_empty() && inputs.routes.is_empty() && inputs.secrets.is_empty());
}

#[test]
fn a_missing_namespace_defaults_to_default_like_kubectl_apply() {
    let inputs = parse(&backend("a")).unwrap();
    assert_eq!(
        inputs.backends[0].metadata.namespace.as_deref(),
        Some("default")
    );
}

#[test]
fn secret_string_data_is_merged_over_base64_data() {
    let inputs = parse(
        "apiVersion: v1
kind: Secret
metadata: {name: s}
data:
  Authorization: c2stZnJvbS1kYXRh   # sk-from-data
  other: b3RoZXI=                  # other
stringData:
  Authorization: sk-from-string-data
",
    )
    .unwrap();
    let data = inputs.secrets[0].data.as_ref().unwrap();
    assert_eq!(data["Authorization"].0, b"sk-from-string-data");
    assert_eq!(data["other"].0, b"other");
    assert!(inputs.secrets[0].string_data.is_none());
}

#[test]
fn a_list_is_expanded_into_its_items() {
    let inputs = parse(
        "apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: ca, namespace: team}
  data: {ca.crt: pem}
- apiVersion: gateway.networking.k8s.io/v1beta1
  kind: ReferenceGrant
  metadata: {name: g, namespace: team}
  spec: {from: [], to: []}
",
    )
    .unwrap();
    assert_eq!(inputs.config_maps.len(), 1);
    assert_eq!(inputs.reference_grants.len(), 1);
}

#[test]
fn gateway_api_v1beta1_objects_are_read_too() {
    let inputs = parse(
        "apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: r}
spec: {}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: agentgateway}
spec: {controllerName: agentgateway.dev/agentgateway}
",
    )
    .unwrap();
    assert_eq!(inputs.routes.len(), 1);
    assert_eq!(inputs.gateway_classes.len(), 1);
    assert_eq!(
        inputs.gateway_classes[0].metadata.namespace, None,
        "cluster-scoped"
    );
}

#[test]
fn a_yaml_syntax_error_names_the_source_document_and_line() {
    let error = parse_manifests(&[
        ("ok.yaml".to_string(), backend("a")),
        (
            "config.yaml".to_string(),
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n---\nkind: [unclosed\n"
                .to_string(),
        ),
    ])
    .unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("config.yaml: document 2: "), "{text}");
    assert!(text.contains("line 6 column 1"), "{text}");
    assert!(matches!(
        error,
        ManifestError::ParseYaml {
            line: Some(6),
            column: Some(1),
            ..
        }
    ));
}

#[test]
fn a_type_error_names_the_document_the_object_and_the_field_path() {
    let error = parse(
        "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: x}
spec:
  ai:
    provider:
      host: h
      port: abc
      openai: {}
",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"test.yaml: document 1 (AgentgatewayBackend default/x): spec.ai.provider.port: invalid type: string "abc", expected i32"#
    );
}

#[test]
fn a_type_error_inside_a_list_or_a_group_names_the_full_path() {
    let error = parse(
        "apiVersion: v1
kind: List
items:
- apiVersion: agentgateway.dev/v1alpha1
  kind: AgentgatewayBackend
  metadata: {name: pool, namespace: ai}
  spec:
    ai:
      groups:
      - providers:
        - {name: a, openai: {}}
        - {name: b, openai: {model: [not, a, string]}}
",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "test.yaml: document 1 (AgentgatewayBackend ai/pool): items[0].spec.ai.groups[0].providers[1].openai.model: invalid type: sequence, expected a string"
    );
}

#[test]
fn a_missing_required_field_is_reported_at_its_parent() {
    let error =
        parse("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n")
            .unwrap_err();
    assert_eq!(
        error.to_string(),
        "test.yaml: document 1 (HTTPRoute default/r): missing field `spec`"
    );
}

#[test]
fn a_document_without_api_version_or_kind_is_an_error_naming_the_document() {
    let error = parse(&(backend("a") + "kind: Secret\nmetadata: {name: s}\n")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "test.yaml: document 2: not a Kubernetes object: apiVersion is required"
    );
    let error = parse("just a string\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "test.yaml: document 1: not a Kubernetes object: must be a mapping with apiVersion and kind"
    );
}

#[test]
fn an_object_without_a_name_is_an_error() {
    let error = parse("apiVersion: v1\nkind: Secret\nmetadata: {namespace: x}\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "test.yaml: document 1 (Secret): metadata.name: required"
    );
}

#[test]
fn the_same_object_twice_is_an_error_naming_both_places() {
    let error = parse_manifests(&[
        ("a.yaml".to_string(), backend("x")),
        (
            "b.yaml".to_string(),
            format!("{}{}", backend("y"), backend("x")),
        ),
    ])
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "b.yaml: document 2 (AgentgatewayBackend default/x): duplicate of a.yaml: document 1"
    );
}

#[test]
fn an_unknown_version_of_our_own_kind_is_an_error_not_silently_skipped() {
    let error =
        parse("apiVersion: agentgateway.dev/v1\nkind: AgentgatewayBackend\nmetadata: {name: x}\n")
            .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("test.yaml: document 1: apiVersion: unsupported version"),
        "{error}"
    );
}

#[test]
fn document_order_is_kept_as_creation_order() {
    let inputs = parse(&(backend("z") + &backend("a") + &backend("m"))).unwrap();
    let names: Vec<_> = inputs
        .backends
        .iter()
        .map(|b| b.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["z", "a", "m"]);
}
