//! Helpers shared by the integration tests: fixtures, parsing and compiling.
#![allow(dead_code)] // each test file uses a different subset

use agentgateway_compiler::{
    CompileError, Compiled, Inputs, ManifestError, compile_standalone, parse_manifests,
};

/// The text of `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// Parses a fixture, named as `fixtures/<name>` in errors.
pub fn parse_fixture(name: &str) -> Inputs {
    parse_manifests(&[(format!("fixtures/{name}"), fixture(name))])
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Parses inline YAML named `test.yaml`.
pub fn parse(yaml: &str) -> Result<Inputs, ManifestError> {
    parse_manifests(&[("test.yaml".to_string(), yaml.to_string())])
}

/// Parses inline YAML, expecting success.
pub fn parse_ok(yaml: &str) -> Inputs {
    parse(yaml).unwrap_or_else(|e| panic!("{e}"))
}

/// Compiles inline YAML in standalone mode, expecting success.
pub fn compile(yaml: &str) -> Compiled {
    compile_standalone(&parse_ok(yaml)).unwrap_or_else(|e| panic!("{e}"))
}

/// Compiles inline YAML in standalone mode, expecting failure.
pub fn compile_error(yaml: &str) -> CompileError {
    match compile_standalone(&parse_ok(yaml)) {
        Ok(compiled) => panic!("expected an error, got {compiled:#?}"),
        Err(e) => e,
    }
}

/// An OpenAI-compatible backend at `host:8000` named `name` in `default`.
pub fn backend(name: &str) -> String {
    format!(
        "apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: {name}
spec:
  ai:
    provider:
      host: {name}.example
      port: 8000
      openai: {{}}
---
"
    )
}
