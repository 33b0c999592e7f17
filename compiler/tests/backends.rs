//! Backends: endpoints, policy overrides and defaults, per-kind requirements, invalid specs, and the
//! operator's acceptance check.

mod common;

use agentgateway_compiler::{Reason, backend_problems, compile_standalone, parse_manifests};
use agentgateway_crds::proxy_config::{AuthConfig, EvictionConfig, ProviderConfig, TlsConfig};
use common::{backend, compile, compile_error, parse, parse_fixture};

fn provider<'a>(
    config: &'a agentgateway_crds::proxy_config::ProxyConfig,
    name: &str,
) -> &'a ProviderConfig {
    config.backends["ai/mixed"]
        .groups
        .iter()
        .flat_map(|g| &g.providers)
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no provider {name}"))
}

#[test]
fn backend_level_policies_set_retries_and_the_whole_request_deadline() {
    let config = compile_standalone(&parse_fixture("policies.yaml"))
        .unwrap()
        .config;
    let mixed = &config.backends["ai/mixed"];
    assert_eq!(mixed.name, "ai/mixed");
    assert_eq!(mixed.retry_attempts, 4);
    assert_eq!(mixed.request_timeout_ms, 120_000);
    assert_eq!(mixed.groups.len(), 2, "groups keep their priority order");
    let names: Vec<_> = mixed.groups[0]
        .providers
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["inherits", "overrides"]);
}

#[test]
fn a_provider_without_policies_inherits_the_backend_policies_and_speaks_plain_http() {
    let config = compile_standalone(&parse_fixture("policies.yaml"))
        .unwrap()
        .config;
    let inherits = provider(&config, "inherits");
    assert_eq!(inherits.host, "10.0.0.7");
    assert_eq!(inherits.port, 8000);
    assert_eq!(inherits.tls, None);
    assert_eq!(inherits.model.as_deref(), Some("llama"));
    assert_eq!(inherits.connect_timeout_ms, 3_000);
    assert_eq!(inherits.request_timeout_ms, 120_000);
    assert_eq!(
        inherits.eviction,
        EvictionConfig {
            base_ms: 10_000,
            max_ms: 300_000,
            consecutive_failures: 3
        }
    );
    assert_eq!(inherits.auth, None);
}

#[test]
fn provider_policies_override_backend_policies_field_by_field() {
    let config = compile_standalone(&parse_fixture("policies.yaml"))
        .unwrap()
        .config;
    let overrides = provider(&config, "overrides");
    assert_eq!(
        (overrides.host.as_str(), overrides.port),
        ("vllm.internal", 8443)
    );
    assert_eq!(
        overrides.path.as_deref(),
        Some("/openai/v1/chat/completions")
    );
    assert_eq!(overrides.connect_timeout_ms, 500, "own connect timeout");
    assert_eq!(
        overrides.request_timeout_ms, 120_000,
        "inherited request timeout"
    );
    assert_eq!(
        overrides.eviction,
        EvictionConfig {
            base_ms: 10_000,
            max_ms: 300_000,
            consecutive_failures: 5
        },
        "own consecutiveFailures, inherited durations"
    );
    assert_eq!(
        overrides.tls,
        Some(TlsConfig {
            sni: Some("vllm.example.com".to_string()),
            insecure_skip_verify: false,
            ca_pem: Some(
                "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n".to_string()
            ),
        })
    );
}

#[test]
fn a_provider_without_host_uses_the_public_endpoint_over_tls() {
    let config = compile_standalone(&parse_fixture("policies.yaml"))
        .unwrap()
        .config;
    let openai = provider(&config, "openai");
    assert_eq!((openai.host.as_str(), openai.port), ("api.openai.com", 443));
    assert_eq!(openai.tls, Some(TlsConfig::default()));
    assert_eq!(openai.model.as_deref(), Some("gpt-4o"));
    assert_eq!(
        openai.auth,
        Some(AuthConfig {
            credential: "secret_ai_openai-secret_Authorization".to_string()
        })
    );
}

#[test]
fn silent_policies_get_the_documented_defaults() {
    let config = compile(&backend("plain")).config;
    // No route uses it, so it is not in the config: compile it through a route instead.
    assert!(config.backends.is_empty());
    let yaml = backend("plain")
        + "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules: [{backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: plain}]}]
";
    let config = compile(&yaml).config;
    let plain = &config.backends["default/plain"];
    assert_eq!(
        (plain.retry_attempts, plain.request_timeout_ms),
        (2, 600_000)
    );
    let p = &plain.groups[0].providers[0];
    assert_eq!(
        p.name, "openai",
        "a single provider is named after its kind"
    );
    assert_eq!(
        (p.connect_timeout_ms, p.request_timeout_ms),
        (10_000, 600_000)
    );
    assert_eq!(
        p.eviction,
        EvictionConfig {
            base_ms: 5_000,
            max_ms: 60_000,
            consecutive_failures: 1
        }
    );
    assert_eq!(p.model, None);
}

#[test]
fn a_provider_eviction_longer_than_the_inherited_maximum_raises_the_maximum() {
    let yaml = "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: b}
spec:
  ai:
    provider:
      name: slow
      host: h
      port: 1
      openai: {}
      policies: {health: {eviction: {duration: 90s}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  rules: [{backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: b}]}]
";
    let config = compile(yaml).config;
    let p = &config.backends["default/b"].groups[0].providers[0];
    assert_eq!(p.name, "slow");
    assert_eq!((p.eviction.base_ms, p.eviction.max_ms), (90_000, 90_000));
}

#[test]
fn a_bedrock_or_vertex_provider_without_its_credential_form_is_an_error_naming_the_field() {
    let error = compile_error(
        "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: x}
spec:
  policies: {auth: {key: sk-1}}
  ai:
    groups:
    - providers:
      - {name: a, openai: {}}
      - {name: b, bedrock: {region: us-east-1}}
",
    );
    assert_eq!(
        error.to_string(),
        "test.yaml: document 1 (AgentgatewayBackend default/x): spec.ai.groups[0].providers[1].policies.auth.aws: required: a bedrock provider authenticates with aws credentials (spec.policies.auth has none)"
    );
    assert_eq!(error.errors[0].diagnostic.reason, Reason::InvalidSpec);
}

#[test]
fn an_invalid_spec_is_an_error_naming_the_file_document_and_field() {
    let yaml = "apiVersion: v1
kind: Namespace
metadata: {name: agentgateway-system}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: llm-pool
  namespace: agentgateway-system
spec:
  ai:
    groups:
    - providers:
      - {name: a, host: h, port: 80, openai: {}}
      - {name: b, host: h, port: 70000, openai: {}}
";
    let inputs = parse_manifests(&[(
        "examples/tutorial/backends.yaml".to_string(),
        yaml.to_string(),
    )])
    .unwrap();
    let error = compile_standalone(&inputs).unwrap_err();
    assert_eq!(
        error.to_string(),
        "examples/tutorial/backends.yaml: document 2 (AgentgatewayBackend agentgateway-system/llm-pool): spec.ai.groups[0].providers[1].port: must be between 1 and 65535"
    );
    assert_eq!(error.errors[0].diagnostic.reason, Reason::InvalidSpec);
}

#[test]
fn every_problem_is_listed_one_per_line_in_file_order() {
    let yaml = backend("fine")
        + "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: two-problems}
spec:
  ai:
    provider: {host: 'bad host', port: 0, openai: {}}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: a-unsigned}
spec:
  ai:
    provider: {bedrock: {region: us-east-1}}
";
    let error = compile_error(&yaml);
    let lines: Vec<String> = error.to_string().lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        [
            "test.yaml: document 2 (AgentgatewayBackend default/two-problems): spec.ai.provider.host: must be a DNS-1123 hostname or an IP address, without scheme, port, path or whitespace",
            "test.yaml: document 2 (AgentgatewayBackend default/two-problems): spec.ai.provider.port: must be between 1 and 65535",
            "test.yaml: document 3 (AgentgatewayBackend default/a-unsigned): spec.ai.provider.policies.auth.aws: required: a bedrock provider authenticates with aws credentials (spec.ai.provider.policies.auth has none)",
        ]
    );
}

#[test]
fn a_missing_or_malformed_ca_bundle_is_reported_on_the_backend() {
    let with_ca = |ca: &str| {
        format!(
            "{ca}apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {{name: b}}
spec:
  policies: {{tls: {{caCertificateRef: {{name: ca}}}}}}
  ai:
    provider: {{host: h, port: 443, openai: {{}}}}
"
        )
    };
    let check = |yaml: &str| {
        let inputs = parse(yaml).unwrap();
        backend_problems(&inputs.backends[0], &inputs).remove(0)
    };
    let missing = check(&with_ca(""));
    assert_eq!(missing.reason, Reason::ConfigMapNotFound);
    assert_eq!(missing.field, "spec.policies.tls.caCertificateRef.name");
    assert_eq!(missing.message, "ConfigMap default/ca not found");

    let no_key = check(&with_ca(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata: {other: x}\n---\n",
    ));
    assert_eq!(no_key.reason, Reason::ConfigMapKeyNotFound);
    assert_eq!(no_key.message, "ConfigMap default/ca has no key \"ca.crt\"");

    let not_pem = check(&with_ca(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata: {ca.crt: hello}\n---\n",
    ));
    assert_eq!(not_pem.reason, Reason::InvalidSpec);
}

#[test]
fn backend_problems_are_none_for_a_valid_backend_and_lead_with_the_first_reason() {
    let inputs = parse_fixture("policies.yaml");
    assert_eq!(backend_problems(&inputs.backends[0], &inputs), vec![]);

    let mut without_secret = inputs.clone();
    without_secret.secrets.clear();
    let problem = backend_problems(&inputs.backends[0], &without_secret).remove(0);
    assert_eq!(problem.reason, Reason::SecretNotFound);
    assert_eq!(problem.reason.as_str(), "SecretNotFound");
    assert_eq!(
        problem.field,
        "spec.ai.groups[1].providers[0].policies.auth.secretRef.name"
    );
    assert_eq!(problem.object.to_string(), "AgentgatewayBackend ai/mixed");

    let invalid = parse("apiVersion: agentgateway.dev/v1alpha1\nkind: AgentgatewayBackend\nmetadata: {name: x}\nspec: {ai: {}}\n").unwrap();
    let problem = backend_problems(&invalid.backends[0], &invalid).remove(0);
    assert_eq!(
        (problem.reason, problem.field.as_str()),
        (Reason::InvalidSpec, "spec.ai")
    );
}

#[test]
fn pass_through_prefixes_reach_the_backend_config_and_default_to_none() {
    let route = |name: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}}}
spec:
  rules: [{{backendRefs: [{{group: agentgateway.dev, kind: AgentgatewayBackend, name: {name}}}]}}]
---
"
        )
    };
    let yaml = backend("plain")
        + &route("plain")
        + "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: files}
spec:
  ai:
    provider: {host: h, port: 80, openai: {}}
    passThrough:
      pathPrefixes: [/v1/files, /team-a/v1/batches]
---
" + &route("files");
    let config = compile(&yaml).config;
    assert_eq!(
        config.backends["default/files"].pass_through_path_prefixes,
        ["/v1/files", "/team-a/v1/batches"]
    );
    assert!(
        config.backends["default/plain"]
            .pass_through_path_prefixes
            .is_empty(),
        "nothing is passed through by default"
    );
    // the ConfigMap's field names; an empty list is not written
    let json = serde_json::to_value(&config).unwrap();
    assert_eq!(
        json["backends"]["default/files"]["passThroughPathPrefixes"],
        serde_json::json!(["/v1/files", "/team-a/v1/batches"])
    );
    assert!(
        json["backends"]["default/plain"]
            .get("passThroughPathPrefixes")
            .is_none()
    );
}

#[test]
fn an_invalid_pass_through_prefix_is_an_error_naming_its_index() {
    let error = compile_error(
        "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: x}
spec:
  ai:
    provider: {openai: {}}
    passThrough: {pathPrefixes: [/v1/files, v1/batches, /v1/../admin]}
",
    );
    let lines: Vec<String> = error.to_string().lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        [
            "test.yaml: document 1 (AgentgatewayBackend default/x): spec.ai.passThrough.pathPrefixes[1]: must start with /",
            "test.yaml: document 1 (AgentgatewayBackend default/x): spec.ai.passThrough.pathPrefixes[2]: must not contain empty, . or .. segments",
        ]
    );
    assert_eq!(error.errors[0].diagnostic.reason, Reason::InvalidSpec);
}

/// Each served kind's public endpoint over TLS when no host is given: Anthropic's API, the Azure
/// resource's own endpoint; Azure's deployment and API version travel in the config.
#[test]
fn anthropic_and_azure_providers_compile_to_their_public_endpoints() {
    let compiled = compile(
        "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: hosted}
spec:
  ai:
    groups:
    - providers:
      - {name: claude, anthropic: {model: claude-sonnet-4-5}, policies: {auth: {key: sk-ant}}}
      - name: azure
        azureopenai: {endpoint: my-resource.openai.azure.com, deploymentName: gpt-4o, apiVersion: 2024-10-21}
        policies: {auth: {key: az-key}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: hosted}
spec:
  rules: [{backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: hosted}]}]
",
    );
    let providers: Vec<&ProviderConfig> = compiled.config.backends["default/hosted"]
        .groups
        .iter()
        .flat_map(|g| &g.providers)
        .collect();
    let claude = providers[0];
    assert_eq!(
        claude.kind,
        agentgateway_crds::proxy_config::ProviderKind::Anthropic
    );
    assert_eq!(
        (claude.host.as_str(), claude.port),
        ("api.anthropic.com", 443)
    );
    assert!(claude.tls.is_some());
    assert_eq!(claude.azure, None);
    let azure = providers[1];
    assert_eq!(
        azure.kind,
        agentgateway_crds::proxy_config::ProviderKind::AzureOpenAi
    );
    assert_eq!(
        (azure.host.as_str(), azure.port),
        ("my-resource.openai.azure.com", 443)
    );
    assert!(azure.tls.is_some());
    let deployment = azure.azure.as_ref().unwrap();
    assert_eq!(
        (
            deployment.deployment.as_str(),
            deployment.api_version.as_str()
        ),
        ("gpt-4o", "2024-10-21")
    );
    assert_eq!(compiled.credentials.len(), 2);
    assert!(compiled.config.validate().is_ok());
}
