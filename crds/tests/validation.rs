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
            "spec.ai.provider.policies.auth: exactly one of secretRef, key, aws or gcp must be set",
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
            "ai: {provider: {bedrock: {}, policies: {auth: {aws: {secretRef: {name: aws}}}}}}",
            "spec.ai.provider.bedrock.region: required",
        ),
        (
            "ai: {provider: {bedrock: {region: us-east-1}}}",
            "spec.ai.provider.policies.auth.aws: required: a bedrock provider authenticates with aws credentials (spec.ai.provider.policies.auth has none)",
        ),
        (
            "ai: {provider: {vertexai: {region: r}, policies: {auth: {gcp: {secretRef: {name: sa}}}}}}",
            "spec.ai.provider.vertexai.projectId: required",
        ),
        (
            "ai: {provider: {vertexai: {projectId: my-project, region: us-central1}, policies: {auth: {key: k}}}}",
            "spec.ai.provider.policies.auth.gcp: required: a vertexai provider authenticates with gcp credentials (spec.ai.provider.policies.auth has none)",
        ),
        (
            "ai: {provider: {gemini: {}, policies: {auth: {gcp: {secretRef: {name: sa}}}}}}",
            "spec.ai.provider.policies.auth.gcp: applies to vertexai providers only, not to the gemini provider at spec.ai.provider",
        ),
        (
            "ai: {provider: {openai: {}, policies: {auth: {aws: {secretRef: {name: 'A_B'}}}}}}",
            "spec.ai.provider.policies.auth.aws.secretRef.name: must be a valid Secret name (DNS-1123 subdomain)",
        ),
        (
            "ai: {provider: {azureopenai: {endpoint: x.openai.azure.com}}}",
            "spec.ai.provider.azureopenai.deploymentName: required",
        ),
        (
            "ai: {provider: {azureopenai: {endpoint: x.openai.azure.com, deploymentName: gpt4o}}}",
            "spec.ai.provider.azureopenai.apiVersion: required",
        ),
        (
            "ai: {provider: {azureopenai: {endpoint: x.openai.azure.com, deploymentName: 'a/b', apiVersion: 2024-10-21}}}",
            "spec.ai.provider.azureopenai.deploymentName: must be 1-64 letters, digits, '-', '_' or '.'",
        ),
        (
            "ai: {provider: {azureopenai: {endpoint: x.openai.azure.com, deploymentName: d, apiVersion: latest}}}",
            "spec.ai.provider.azureopenai.apiVersion: must be a date, optionally with a suffix: YYYY-MM-DD or YYYY-MM-DD-preview",
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
fn azure_api_versions_are_dates_with_an_optional_suffix() {
    use agentgateway_crds::validation::is_azure_api_version;
    for good in ["2024-10-21", "2025-01-01-preview"] {
        assert!(is_azure_api_version(good), "{good}");
    }
    for bad in [
        "",
        "2024-10",
        "2024-10-21-",
        "2024-10-21-Preview",
        "2024/10/21",
        "2024-10-21?x=1",
        "latest",
    ] {
        assert!(!is_azure_api_version(bad), "{bad}");
    }
    let ok = "ai: {provider: {azureopenai: {endpoint: x.openai.azure.com, deploymentName: gpt-4o.mini_1, apiVersion: 2024-10-21}}}";
    assert_eq!(errors(ok), Vec::<String>::new());
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

/// `spec.ai.passThrough` of a valid single-provider backend, with `prefixes` as a YAML flow list.
fn with_pass_through(prefixes: &str) -> Vec<String> {
    errors(&format!(
        "ai: {{provider: {{openai: {{}}}}, passThrough: {{pathPrefixes: {prefixes}}}}}"
    ))
}

#[test]
fn pass_through_prefixes_that_are_plain_paths_are_valid() {
    let valid = [
        "[/]",
        "[/v1/files]",
        "[/v1/files, /v1/batches, /v1/fine_tuning/jobs]",
        "[/team-a/v1/files]",
        "['/v1/a-b.c_d~e!$&''()*+,;=:@x']",
        "['/v1/.well-known', '/v1/...', '/v1/..x']",
    ];
    for prefixes in valid {
        assert_eq!(
            with_pass_through(prefixes),
            Vec::<String>::new(),
            "{prefixes}"
        );
    }
    let sixteen: Vec<String> = (0..16).map(|i| format!("/p{i}")).collect();
    let at_limit = format!("[{}, /{}]", sixteen[..15].join(", "), "x".repeat(255));
    assert_eq!(with_pass_through(&at_limit), Vec::<String>::new());
}

#[test]
fn each_broken_pass_through_rule_is_reported_with_its_field_path() {
    const PATH_CHARS: &str =
        "must contain only RFC 3986 path characters: letters, digits, -._~!$&'()*+,;=:@/";
    const SEGMENTS: &str = "must not contain empty, . or .. segments";
    let long = format!("[/{}]", "x".repeat(256));
    let seventeen = format!(
        "[{}]",
        (0..17)
            .map(|i| format!("/p{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let cases: &[(&str, &str)] = &[
        ("[]", "pathPrefixes: must have between 1 and 16 prefixes"),
        (
            &seventeen,
            "pathPrefixes: must have between 1 and 16 prefixes",
        ),
        (
            "[/v1/files, v1/batches]",
            "pathPrefixes[1]: must start with /",
        ),
        ("['']", "pathPrefixes[0]: must start with /"),
        (
            "['https://api.openai.com/v1']",
            "pathPrefixes[0]: must start with /",
        ),
        (&long, "pathPrefixes[0]: must be at most 256 bytes"),
        (
            "[/v1/%66iles]",
            "pathPrefixes[0]: must not contain % (percent-encoding): write the path as clients send it",
        ),
        (
            "[/v1/files%2Fx]",
            "pathPrefixes[0]: must not contain % (percent-encoding): write the path as clients send it",
        ),
        (
            "['/v1/files?purpose=batch']",
            "pathPrefixes[0]: must be a path only: no ? (query) or # (fragment)",
        ),
        (
            "['/v1/files#x']",
            "pathPrefixes[0]: must be a path only: no ? (query) or # (fragment)",
        ),
        (
            "['/v1/my files']",
            &format!("pathPrefixes[0]: {PATH_CHARS}"),
        ),
        (
            "['/v1/files\\t']",
            &format!("pathPrefixes[0]: {PATH_CHARS}"),
        ),
        ("['/v1/fïles']", &format!("pathPrefixes[0]: {PATH_CHARS}")),
        ("['/v1/{id}']", &format!("pathPrefixes[0]: {PATH_CHARS}")),
        (
            "['/v1\\\\files']",
            &format!("pathPrefixes[0]: {PATH_CHARS}"),
        ),
        (
            "[/v1/files/]",
            "pathPrefixes[0]: must not end with / (except the prefix / itself): prefixes match at / boundaries",
        ),
        (
            "[//]",
            "pathPrefixes[0]: must not end with / (except the prefix / itself): prefixes match at / boundaries",
        ),
        ("['//v1']", &format!("pathPrefixes[0]: {SEGMENTS}")),
        ("['/v1//files']", &format!("pathPrefixes[0]: {SEGMENTS}")),
        ("['/v1/./files']", &format!("pathPrefixes[0]: {SEGMENTS}")),
        ("['/v1/..']", &format!("pathPrefixes[0]: {SEGMENTS}")),
        ("['/../v1']", &format!("pathPrefixes[0]: {SEGMENTS}")),
        ("['/.']", &format!("pathPrefixes[0]: {SEGMENTS}")),
        (
            "[/v1/files, /v1/batches, /v1/files]",
            "pathPrefixes[2]: duplicate prefix \"/v1/files\"",
        ),
    ];
    for (prefixes, expected) in cases {
        let expected = format!("spec.ai.passThrough.{expected}");
        let found = with_pass_through(prefixes);
        assert_eq!(found, [expected], "{prefixes}");
    }
}

#[test]
fn the_pass_through_prefix_rule_is_one_public_function() {
    use agentgateway_crds::validation::{
        is_valid_pass_through_prefix, pass_through_prefix_problem,
    };
    assert!(is_valid_pass_through_prefix("/"));
    assert!(is_valid_pass_through_prefix("/v1/files"));
    assert!(!is_valid_pass_through_prefix("/v1/../files"));
    assert!(!is_valid_pass_through_prefix("v1"));
    assert_eq!(pass_through_prefix_problem("/v1/files"), None);
    assert_eq!(pass_through_prefix_problem(""), Some("must start with /"));
}

#[test]
fn pass_through_problems_are_listed_with_the_provider_problems() {
    let found = errors(
        "ai: {provider: {host: x, openai: {}}, passThrough: {pathPrefixes: [/v1/files, x, /v1/files/]}}",
    );
    assert_eq!(
        found,
        [
            "spec.ai.provider.port: must be set together with host",
            "spec.ai.passThrough.pathPrefixes[1]: must start with /",
            "spec.ai.passThrough.pathPrefixes[2]: must not end with / (except the prefix / itself): prefixes match at / boundaries",
        ]
    );
}
