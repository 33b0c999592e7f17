//! HTTPS listeners: a served listener and its certificate in the credentials (never in the config),
//! each certificateRef problem on its field with its reason, cross-namespace certificates with and
//! without a ReferenceGrant, listeners sharing a port merged with SNI certificates, and the port
//! conflicts that leave a listener out.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use agentgateway_compiler::{GatewayCompilation, Reason, compile_gateway};
use agentgateway_crds::proxy_config::TlsCertificateConfig;
use common::{backend, compile, compile_error, parse_ok};

use agentgateway_tls::testing::self_signed;

fn indent(pem: &str) -> String {
    pem.lines().map(|l| format!("      {l}\n")).collect()
}

/// A Secret of `type_` in `namespace` holding `tls.crt` and `tls.key`.
fn secret(namespace: &str, name: &str, type_: &str, cert: &str, key: &str) -> String {
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {namespace}}}
type: {type_}
stringData:
  tls.crt: |
{}  tls.key: |
{}---
",
        indent(cert),
        indent(key)
    )
}

fn tls_secret(namespace: &str, name: &str, host: &str) -> String {
    let (cert, key) = self_signed(host);
    secret(namespace, name, "kubernetes.io/tls", &cert, &key)
}

/// A Gateway `infra/gw` with the given listeners (YAML flow mappings) and a route on it.
fn gateway(listeners: &[&str]) -> String {
    let listeners: String = listeners.iter().map(|l| format!("  - {l}\n")).collect();
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: infra}}
spec:
  gatewayClassName: agentgateway
  listeners:
{listeners}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: chat, namespace: infra}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{group: agentgateway.dev, kind: AgentgatewayBackend, name: llm, namespace: default}}]}}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {{name: routes-to-llm, namespace: default}}
spec:
  from: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}}]
  to: [{{group: agentgateway.dev, kind: AgentgatewayBackend}}]
---
{}",
        backend("llm")
    )
}

const HTTPS_A: &str = "{name: https, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: cert-a}]}}";

fn compile_operator(yaml: &str) -> GatewayCompilation {
    let inputs = parse_ok(yaml);
    compile_gateway(&inputs.gateways[0], &inputs)
}

/// The one diagnostic of the Gateway, as (field, reason, message).
fn only_listener_problem(compilation: &GatewayCompilation) -> (String, Reason, String) {
    let problems: Vec<_> = compilation
        .diagnostics
        .iter()
        .filter(|d| d.object.kind == "Gateway")
        .collect();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    let d = problems[0];
    (d.field.clone(), d.reason, d.message.clone())
}

#[test]
fn an_https_listener_is_served_with_its_certificate_in_the_credentials_only() {
    let yaml = gateway(&[HTTPS_A]) + &tls_secret("infra", "cert-a", "a.example.com");
    let compiled = compile(&yaml);
    let listener = &compiled.config.listeners[0];
    assert_eq!(listener.name, "infra/gw/https");
    assert_eq!(listener.port, Some(443));
    let tls = listener.tls.as_ref().expect("tls");
    assert_eq!(
        tls.certificates,
        [TlsCertificateConfig {
            hostname: Some("a.example.com".into()),
            credential: "tls_infra_cert-a".into()
        }]
    );
    let bundle = &compiled.credentials["tls_infra_cert-a"];
    assert!(bundle.contains("BEGIN CERTIFICATE"), "{bundle}");
    assert!(bundle.contains("PRIVATE KEY"), "{bundle}");
    let config_yaml = serde_yaml::to_string(&compiled.config).unwrap();
    assert!(
        !config_yaml.contains("PRIVATE KEY"),
        "the config holds no key"
    );
    assert_eq!(compiled.config.validate(), Ok(()));
}

#[test]
fn each_certificate_problem_is_reported_on_its_field_and_the_listener_is_not_served() {
    let (cert_a, key_a) = self_signed("a.example.com");
    let (cert_b, _) = self_signed("b.example.com");
    let cases = [
        (String::new(), "not found"),
        (
            secret("infra", "cert-a", "Opaque", &cert_a, &key_a),
            "is of type \"Opaque\", not \"kubernetes.io/tls\"",
        ),
        (
            secret("infra", "cert-a", "kubernetes.io/tls", "not a pem", &key_a),
            "failed to find a certificate",
        ),
        (
            secret("infra", "cert-a", "kubernetes.io/tls", &cert_a, "junk"),
            "failed to find a private key",
        ),
        (
            secret("infra", "cert-a", "kubernetes.io/tls", &cert_b, &key_a),
            "failed to pair the private key with the certificate",
        ),
    ];
    for (secret_yaml, expected) in cases {
        let compilation = compile_operator(&(gateway(&[HTTPS_A]) + &secret_yaml));
        let (field, reason, message) = only_listener_problem(&compilation);
        assert_eq!(field, "spec.listeners[0].tls.certificateRefs[0]");
        assert_eq!(reason, Reason::InvalidCertificateRef);
        assert!(message.contains("Secret infra/cert-a"), "{message}");
        assert!(message.contains(expected), "{message} lacks {expected}");
        assert!(!message.contains("PRIVATE KEY"), "{message}");
        assert!(compilation.compiled.config.listeners.is_empty());
        assert!(
            compilation
                .compiled
                .credentials
                .keys()
                .all(|k| !k.starts_with("tls_"))
        );
        assert_eq!(compilation.attached_routes["https"], 0);
    }
}

#[test]
fn refs_to_other_kinds_missing_refs_passthrough_and_options_are_reported() {
    let cases = [
        (
            "{name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{group: example.com, kind: Cert, name: c}]}}",
            "spec.listeners[0].tls.certificateRefs[0]",
            Reason::InvalidCertificateRef,
        ),
        (
            "{name: https, port: 443, protocol: HTTPS}",
            "spec.listeners[0].tls",
            Reason::InvalidCertificateRef,
        ),
        (
            "{name: https, port: 443, protocol: HTTPS, tls: {mode: Terminate}}",
            "spec.listeners[0].tls.certificateRefs",
            Reason::InvalidCertificateRef,
        ),
        (
            "{name: https, port: 443, protocol: HTTPS, tls: {mode: Passthrough, certificateRefs: [{name: cert-a}]}}",
            "spec.listeners[0].tls.mode",
            Reason::UnsupportedValue,
        ),
        (
            "{name: https, port: 443, protocol: HTTPS, tls: {options: {x: y}, certificateRefs: [{name: cert-a}]}}",
            "spec.listeners[0].tls.options",
            Reason::UnsupportedValue,
        ),
        (
            "{name: tls, port: 443, protocol: TLS, tls: {mode: Passthrough}}",
            "spec.listeners[0].protocol",
            Reason::UnsupportedProtocol,
        ),
        (
            "{name: http, port: 80, protocol: HTTP, tls: {certificateRefs: [{name: cert-a}]}}",
            "spec.listeners[0].tls",
            Reason::InvalidSpec,
        ),
    ];
    for (listener, expected_field, expected_reason) in cases {
        let yaml = gateway(&[listener]) + &tls_secret("infra", "cert-a", "a.example.com");
        let (field, reason, message) = only_listener_problem(&compile_operator(&yaml));
        assert_eq!(
            (field.as_str(), reason),
            (expected_field, expected_reason),
            "{message}"
        );
    }
}

#[test]
fn client_certificate_validation_on_the_gateway_leaves_https_listeners_unserved() {
    let yaml = gateway(&[HTTPS_A, "{name: http, port: 80, protocol: HTTP}"]).replace(
        "  gatewayClassName: agentgateway\n",
        "  gatewayClassName: agentgateway\n  tls:\n    frontend:\n      default:\n        validation: {caCertificateRefs: [{kind: ConfigMap, name: ca}]}\n",
    ) + &tls_secret("infra", "cert-a", "a.example.com");
    let compilation = compile_operator(&yaml);
    let (field, reason, message) = only_listener_problem(&compilation);
    assert_eq!(field, "spec.listeners[0].tls");
    assert_eq!(reason, Reason::UnsupportedValue);
    assert!(message.contains("spec.tls.frontend"), "{message}");
    let served: Vec<_> = compilation
        .compiled
        .config
        .listeners
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(served, ["infra/gw/http"], "plain HTTP is still served");
}

#[test]
fn a_certificate_in_another_namespace_needs_a_reference_grant_for_gateways() {
    let listener = "{name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: shared, namespace: certs}]}}";
    let base = gateway(&[listener]) + &tls_secret("certs", "shared", "a.example.com");
    let (field, reason, message) = only_listener_problem(&compile_operator(&base));
    assert_eq!(field, "spec.listeners[0].tls.certificateRefs[0]");
    assert_eq!(reason, Reason::RefNotPermitted);
    assert!(message.contains("Secret certs/shared"), "{message}");

    // A grant for HTTPRoutes, or for another Secret, does not admit the Gateway.
    let wrong = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: wrong, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: infra}]
  to: [{group: '', kind: Secret}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: other-secret, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]
  to: [{group: '', kind: Secret, name: other}]
---
";
    let (_, reason, _) = only_listener_problem(&compile_operator(&(base.clone() + wrong)));
    assert_eq!(reason, Reason::RefNotPermitted);

    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: gateways-to-certs, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]
  to: [{group: '', kind: Secret, name: shared}]
";
    let compilation = compile_operator(&(base + grant));
    assert!(
        compilation.diagnostics.is_empty(),
        "{:#?}",
        compilation.diagnostics
    );
    let tls = compilation.compiled.config.listeners[0]
        .tls
        .as_ref()
        .unwrap();
    assert_eq!(tls.certificates[0].credential, "tls_certs_shared");
    assert!(
        compilation
            .compiled
            .credentials
            .contains_key("tls_certs_shared")
    );
}

#[test]
fn the_first_usable_certificate_ref_is_served() {
    let listener = "{name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: missing}, {name: cert-a}]}}";
    let yaml = gateway(&[listener]) + &tls_secret("infra", "cert-a", "a.example.com");
    let compiled = compile(&yaml);
    let tls = compiled.config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.certificates[0].credential, "tls_infra_cert-a");
}

#[test]
fn listeners_sharing_a_port_are_one_port_with_a_certificate_per_host_name() {
    let yaml = gateway(&[
        HTTPS_A,
        "{name: https-b, port: 443, protocol: HTTPS, hostname: b.example.com, tls: {certificateRefs: [{name: cert-b}]}}",
        "{name: https-any, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: cert-any}]}}",
    ]) + &tls_secret("infra", "cert-a", "a.example.com")
        + &tls_secret("infra", "cert-b", "b.example.com")
        + &tls_secret("infra", "cert-any", "example.com");
    let compilation = compile_operator(&yaml);
    assert!(
        compilation.diagnostics.is_empty(),
        "{:#?}",
        compilation.diagnostics
    );
    let config = &compilation.compiled.config;
    assert_eq!(config.listeners.len(), 1, "one bound port");
    let listener = &config.listeners[0];
    assert_eq!(listener.name, "infra/gw/https");
    let certificates: Vec<_> = listener
        .tls
        .as_ref()
        .unwrap()
        .certificates
        .iter()
        .map(|c| (c.hostname.as_deref(), c.credential.as_str()))
        .collect();
    assert_eq!(
        certificates,
        [
            (Some("a.example.com"), "tls_infra_cert-a"),
            (Some("b.example.com"), "tls_infra_cert-b"),
            (None, "tls_infra_cert-any")
        ]
    );
    // The route is on each listener, restricted to that listener's host name; the host-restricted
    // matches come before the catch-all.
    let hostnames: Vec<_> = listener
        .matches
        .iter()
        .map(|m| m.hostnames.clone())
        .collect();
    assert_eq!(
        hostnames,
        [
            vec!["a.example.com".to_string()],
            vec!["b.example.com".to_string()],
            vec![]
        ]
    );
    for name in ["https", "https-b", "https-any"] {
        assert_eq!(compilation.attached_routes[name], 1, "{name}");
    }
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn http_and_https_on_one_port_or_one_host_name_twice_leave_the_later_listener_out() {
    let secrets = tls_secret("infra", "cert-a", "a.example.com");
    let protocol = gateway(&[
        HTTPS_A,
        "{name: plain, port: 443, protocol: HTTP, hostname: b.example.com}",
    ]) + &secrets;
    let compilation = compile_operator(&protocol);
    let (field, reason, message) = only_listener_problem(&compilation);
    assert_eq!(field, "spec.listeners[1].protocol");
    assert_eq!(reason, Reason::ProtocolConflict);
    assert!(message.contains("infra/gw/https"), "{message}");
    assert_eq!(compilation.compiled.config.listeners.len(), 1);

    let hostname = gateway(&[
        HTTPS_A,
        "{name: again, port: 443, protocol: HTTPS, hostname: A.example.com, tls: {certificateRefs: [{name: cert-a}]}}",
    ]) + &secrets;
    let (field, reason, _) = only_listener_problem(&compile_operator(&hostname));
    assert_eq!(field, "spec.listeners[1].hostname");
    assert_eq!(reason, Reason::HostnameConflict);

    // Standalone mode refuses the whole input, naming the listener.
    let error = compile_error(&hostname).to_string();
    assert!(error.contains("spec.listeners[1].hostname"), "{error}");
}
