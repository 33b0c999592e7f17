//! The shared validation rules, one invalid backend per case with the exact message expected.

use agentgateway_crds::AgentgatewayBackendSpec;
use agentgateway_crds::validation::validate_backend_spec;

fn errors(yaml: &str) -> Vec<String> {
    let spec: AgentgatewayBackendSpec = serde_yaml::from_str(yaml).expect("fixture parses");
    validate_backend_spec(&spec)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_tutorial_backends_are_valid() {
    let single = "ai:\n  provider:\n    host: host.docker.internal\n    port: 8090\n    openai:\n      model: gemma-4-12b-it-Q5_K_M.gguf\n";
    assert_eq!(errors(single), Vec::<String>::new());
    let pool = "ai:\n  groups:\n  - providers:\n    - name: local-a\n      host: host.docker.internal\n      port: 8090\n      openai: {model: m}\n    - name: openai\n      openai: {model: gpt-4o}\n      policies: {auth: {secretRef: {name: openai-secret}}}\n";
    assert_eq!(errors(pool), Vec::<String>::new());
}

#[test]
fn each_broken_rule_is_reported_with_its_field_path() {
    let cases: &[(&str, &str)] = &[
        (
            "ai: {}",
            "spec.ai: exactly one of provider or groups must be set",
        ),
        (
            "ai: {provider: {openai: {}}, groups: [{providers: [{name: a, openai: {}}]}]}",
            "spec.ai: exactly one of provider or groups must be set",
        ),
        (
            "ai: {groups: []}",
            "spec.ai.groups: must have between 1 and 8 groups",
        ),
        (
            "ai: {groups: [{providers: []}]}",
            "spec.ai.groups[0].providers: must have between 1 and 16 providers",
        ),
        (
            "ai: {groups: [{providers: [{openai: {}}]}]}",
            "spec.ai.groups[0].providers[0].name: required",
        ),
        (
            "ai: {groups: [{providers: [{name: A_b, openai: {}}]}]}",
            "spec.ai.groups[0].providers[0].name: must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters",
        ),
        (
            "ai: {groups: [{providers: [{name: a, openai: {}}, {name: a, openai: {}}]}]}",
            "spec.ai.groups[0].providers[1].name: duplicate provider name \"a\": names must be unique within the backend",
        ),
        (
            "ai: {provider: {}}",
            "spec.ai.provider: exactly one of openai, anthropic, gemini, azureopenai, bedrock, vertexai must be set",
        ),
        (
            "ai: {provider: {openai: {}, anthropic: {}}}",
            "spec.ai.provider: exactly one of openai, anthropic, gemini, azureopenai, bedrock, vertexai must be set",
        ),
        (
            "ai: {provider: {host: 'http://x', port: 80, openai: {}}}",
            "spec.ai.provider.host: must be a DNS-1123 hostname or an IP address, without scheme, port, path or whitespace",
        ),
        (
            "ai: {provider: {host: 'x.com.', port: 80, openai: {}}}",
            "spec.ai.provider.host: must be a DNS-1123 hostname or an IP address, without scheme, port, path or whitespace",
        ),
        (
            "ai: {provider: {host: '999.1.1.1', port: 80, openai: {}}}",
            "spec.ai.provider.host: must be a DNS-1123 hostname or an IP address, without scheme, port, path or whitespace",
        ),
        (
            "ai: {groups: [{providers: [{name: a, openai: {}}, {name: b, host: x, port: 70000, openai: {}}]}]}",
            "spec.ai.groups[0].providers[1].port: must be between 1 and 65535",
        ),
        (
            "ai: {provider: {host: x, openai: {}}}",
            "spec.ai.provider.port: must be set together with host",
        ),
        (
            "ai: {provider: {port: 80, openai: {}}}",
            "spec.ai.provider.host: must be set together with port",
        ),
        (
            "ai: {provider: {path: v1/chat, openai: {}}}",
            "spec.ai.provider.path: must start with '/' and contain no whitespace",
        ),
        (
            "ai: {provider: {openai: {model: ''}}}",
            "spec.ai.provider.openai.model: must be 1 to 256 characters with no control characters",
        ),
        (
            "ai: {provider: {openai: {}, policies: {auth: {}}}}",
            "spec.ai.provider.policies.auth: exactly one of secretRef or key must be set",
        ),
        (
            "ai: {provider: {openai: {}, policies: {auth: {secretRef: {name: Bad_Name}}}}}",
            "spec.ai.provider.policies.auth.secretRef.name: must be a valid Secret name (DNS-1123 subdomain)",
        ),
        (
            "ai: {provider: {openai: {}, policies: {auth: {secretRef: {name: s, key: 'a/b'}}}}}",
            "spec.ai.provider.policies.auth.secretRef.key: must be a valid data key: letters, digits, '-', '_' or '.'",
        ),
        (
            "ai: {provider: {openai: {}}}\npolicies: {timeouts: {request: 10}}",
            "spec.policies.timeouts.request: invalid duration \"10\": expected e.g. \"500ms\", \"10s\", \"1m30s\"",
        ),
        (
            "ai: {provider: {openai: {}}}\npolicies: {timeouts: {connect: 0s}}",
            "spec.policies.timeouts.connect: must be longer than zero",
        ),
        (
            "ai: {provider: {openai: {}}}\npolicies: {health: {eviction: {duration: 10s, maxDuration: 5s}}}",
            "spec.policies.health.eviction.maxDuration: must not be shorter than duration",
        ),
        (
            "ai: {provider: {openai: {}}}\npolicies: {health: {eviction: {consecutiveFailures: 0}}}",
            "spec.policies.health.eviction.consecutiveFailures: must be at least 1",
        ),
        (
            "ai: {provider: {openai: {}}}\npolicies: {retry: {attempts: 11}}",
            "spec.policies.retry.attempts: must be between 0 and 10",
        ),
        (
            "ai: {provider: {bedrock: {}}}",
            "spec.ai.provider.bedrock.region: required",
        ),
        (
            "ai: {provider: {vertexai: {region: r}}}",
            "spec.ai.provider.vertexai.projectId: required",
        ),
        (
            "ai: {provider: {azureopenai: {endpoint: x.openai.azure.com}}}",
            "spec.ai.provider.azureopenai.deploymentName: required",
        ),
    ];
    for (yaml, expected) in cases {
        let found = errors(yaml);
        assert!(
            found.iter().any(|e| e == expected),
            "{yaml}\n expected {expected:?}\n got {found:?}"
        );
    }
}

#[test]
fn every_violation_is_listed_not_just_the_first() {
    let found = errors(
        "ai: {groups: [{providers: [{name: a, host: 'a b', port: 0, openai: {}}, {openai: {}}]}]}",
    );
    assert_eq!(found.len(), 3, "{found:?}");
}

#[test]
fn ip_literals_are_valid_hosts() {
    for host in ["10.0.0.1", "::1", "fd00::7"] {
        let yaml = format!("ai: {{provider: {{host: '{host}', port: 80, openai: {{}}}}}}");
        assert_eq!(errors(&yaml), Vec::<String>::new(), "{host}");
    }
}
