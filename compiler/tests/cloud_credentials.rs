//! Bedrock and Vertex AI credentials: AWS keys and a service-account key from Secrets become one
//! credential each (never in the config), their regional endpoints are derived, and every way the
//! Secret can be wrong names the field to fix.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use agentgateway_compiler::Reason;
use agentgateway_crds::proxy_config::{BedrockConfig, ProviderKind, VertexConfig};
use common::{compile, compile_error};

const SERVICE_ACCOUNT: &str = include_str!("../../mock-llm/testdata/vertex-service-account.json");

fn aws_secret(data: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: aws}}\nstringData: {data}\n---\n")
}

fn gcp_secret(key: &str, value: &str) -> String {
    let value = serde_json::to_string(value).unwrap();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: gcp}}\nstringData: {{{key}: {value}}}\n---\n"
    )
}

fn backend(provider: &str) -> String {
    format!(
        "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: cloud}}
spec:
  ai:
    provider: {provider}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r}}
spec:
  rules: [{{backendRefs: [{{group: agentgateway.dev, kind: AgentgatewayBackend, name: cloud}}]}}]
"
    )
}

const BEDROCK: &str = "{bedrock: {region: eu-west-3, model: 'anthropic.claude-3-5-haiku-20241022-v1:0'}, policies: {auth: {aws: {secretRef: {name: aws}}}}}";
const VERTEX: &str = "{vertexai: {projectId: agw-test-project, region: us-central1, model: gemini-2.0-flash}, policies: {auth: {gcp: {secretRef: {name: gcp}}}}}";

#[test]
fn aws_keys_become_one_credential_and_the_regional_endpoint() {
    let yaml = aws_secret(
        "{accessKeyId: AKIDEXAMPLE, secretAccessKey: ' wJalr/K7MDENG+EXAMPLEKEY ', sessionToken: tok}",
    ) + &backend(BEDROCK);
    let compiled = compile(&yaml);
    let provider = &compiled.config.backends["default/cloud"].groups[0].providers[0];
    assert_eq!(provider.kind, ProviderKind::Bedrock);
    assert_eq!(
        (
            provider.host.as_str(),
            provider.port,
            provider.tls.is_some()
        ),
        ("bedrock-runtime.eu-west-3.amazonaws.com", 443, true)
    );
    assert_eq!(
        provider.bedrock,
        Some(BedrockConfig {
            region: "eu-west-3".into()
        })
    );
    let id = &provider.auth.as_ref().unwrap().credential;
    assert_eq!(id, "aws_default_aws");
    let value: serde_json::Value = serde_json::from_str(&compiled.credentials[id]).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "wJalr/K7MDENG+EXAMPLEKEY", "sessionToken": "tok"})
    );
    let config = serde_json::to_string(&compiled.config).unwrap();
    assert!(!config.contains("EXAMPLEKEY") && !config.contains("AKIDEXAMPLE"));
}

#[test]
fn the_session_token_is_optional_and_the_other_keys_are_not() {
    let compiled =
        compile(&(aws_secret("{accessKeyId: AKID, secretAccessKey: s}") + &backend(BEDROCK)));
    let value: serde_json::Value =
        serde_json::from_str(&compiled.credentials["aws_default_aws"]).unwrap();
    assert_eq!(value["sessionToken"], serde_json::Value::Null);

    let error = compile_error(&(aws_secret("{accessKeyId: AKID}") + &backend(BEDROCK)));
    let problem = &error.errors[0].diagnostic;
    assert_eq!(problem.reason, Reason::SecretKeyNotFound);
    assert_eq!(
        problem.field,
        "spec.ai.provider.policies.auth.aws.secretRef.name"
    );
    assert!(
        problem.message.contains("secretAccessKey"),
        "{}",
        problem.message
    );

    let error = compile_error(
        &(aws_secret("{accessKeyId: 'AK ID', secretAccessKey: s}") + &backend(BEDROCK)),
    );
    let problem = &error.errors[0].diagnostic;
    assert_eq!(problem.reason, Reason::InvalidSpec);
    assert!(
        !problem.message.contains("AK ID"),
        "a credential never reaches a message"
    );
}

#[test]
fn a_service_account_key_becomes_one_credential_and_the_regional_endpoint() {
    let yaml = gcp_secret("service-account.json", SERVICE_ACCOUNT) + &backend(VERTEX);
    let compiled = compile(&yaml);
    let provider = &compiled.config.backends["default/cloud"].groups[0].providers[0];
    assert_eq!(provider.kind, ProviderKind::VertexAi);
    assert_eq!(
        (provider.host.as_str(), provider.port),
        ("us-central1-aiplatform.googleapis.com", 443)
    );
    assert_eq!(
        provider.vertex,
        Some(VertexConfig {
            project_id: "agw-test-project".into(),
            region: "us-central1".into()
        })
    );
    let id = &provider.auth.as_ref().unwrap().credential;
    assert_eq!(id, "gcp_default_gcp_service-account.json");
    let key: serde_json::Value = serde_json::from_str(&compiled.credentials[id]).unwrap();
    assert_eq!(
        key["client_email"],
        "gateway@agw-test-project.iam.gserviceaccount.com"
    );
    assert_eq!(key["token_uri"], "https://oauth2.googleapis.com/token");
    assert!(
        key["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(
        key.get("client_id").is_none(),
        "only what the proxy needs travels on"
    );
    assert!(
        !serde_json::to_string(&compiled.config)
            .unwrap()
            .contains("PRIVATE KEY")
    );
}

#[test]
fn the_global_region_uses_the_global_endpoint() {
    let yaml = gcp_secret("service-account.json", SERVICE_ACCOUNT)
        + &backend(&VERTEX.replace("us-central1", "global"));
    let provider = &compile(&yaml).config.backends["default/cloud"].groups[0].providers[0];
    assert_eq!(provider.host, "aiplatform.googleapis.com");
}

#[test]
fn a_secret_that_is_not_a_service_account_key_names_its_key() {
    for (value, problem) in [
        ("not json", "is not a service-account key"),
        (
            r#"{"type":"authorized_user","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----"}"#,
            "type is not service_account",
        ),
        (r#"{"client_email":"a@b"}"#, "has no PEM private_key"),
        (
            r#"{"client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----","token_uri":"ftp://x"}"#,
            "token_uri",
        ),
    ] {
        let error = compile_error(&(gcp_secret("service-account.json", value) + &backend(VERTEX)));
        let diagnostic = &error.errors[0].diagnostic;
        assert_eq!(diagnostic.reason, Reason::InvalidSpec, "{value}");
        assert_eq!(
            diagnostic.field,
            "spec.ai.provider.policies.auth.gcp.secretRef.key"
        );
        assert!(
            diagnostic.message.contains(problem),
            "{}",
            diagnostic.message
        );
    }
    let error = compile_error(&(gcp_secret("key.json", SERVICE_ACCOUNT) + &backend(VERTEX)));
    assert_eq!(error.errors[0].diagnostic.reason, Reason::SecretKeyNotFound);
    let custom_key = VERTEX.replace("{name: gcp}", "{name: gcp, key: key.json}");
    compile(&(gcp_secret("key.json", SERVICE_ACCOUNT) + &backend(&custom_key)));
}

#[test]
fn cloud_credential_forms_follow_the_namespace_rule_and_fit_their_kind_only() {
    let other_ns = BEDROCK.replace("{name: aws}", "{name: aws, namespace: other}");
    let error =
        compile_error(&(aws_secret("{accessKeyId: a, secretAccessKey: b}") + &backend(&other_ns)));
    assert_eq!(error.errors[0].diagnostic.reason, Reason::RefNotPermitted);

    let error = compile_error(&backend(
        "{openai: {}, policies: {auth: {aws: {secretRef: {name: aws}}}}}",
    ));
    assert_eq!(
        error.errors[0].diagnostic.field,
        "spec.ai.provider.policies.auth.aws"
    );
    let error = compile_error(&backend(
        "{bedrock: {region: us-east-1}, policies: {auth: {gcp: {secretRef: {name: gcp}}}}}",
    ));
    let fields: Vec<_> = error
        .errors
        .iter()
        .map(|e| e.diagnostic.field.as_str())
        .collect();
    assert!(
        fields.contains(&"spec.ai.provider.policies.auth.aws"),
        "{fields:?}"
    );
    let error = compile_error(&backend(
        "{vertexai: {projectId: Bad_Project, region: us-central1}, policies: {auth: {gcp: {secretRef: {name: gcp}}}}}",
    ));
    assert_eq!(
        error.errors[0].diagnostic.field,
        "spec.ai.provider.vertexai.projectId"
    );
    let error = compile_error(&backend(
        "{bedrock: {region: 'us-east-1.evil.com/'}, policies: {auth: {aws: {secretRef: {name: aws}}}}}",
    ));
    assert_eq!(
        error.errors[0].diagnostic.field,
        "spec.ai.provider.bedrock.region"
    );
}
