//! An `AgentgatewayBackend`, validated and resolved into a [`BackendConfig`] and the credentials its
//! providers use; and [`backend_problems`], the operator's `Accepted` condition.

use std::collections::BTreeMap;

use agentgateway_crds::AgentgatewayBackend;
use agentgateway_crds::backend::Provider;
use agentgateway_crds::proxy_config::{BackendConfig, Credentials, GroupConfig, defaults};
use agentgateway_crds::validation::validate_backend_spec;

use crate::diagnostic::{Diagnostic, Reason};
use crate::index::Index;
use crate::inputs::{Inputs, ObjectRef};
use crate::policies::{Located, PolicyLayers, retry_attempts};
use crate::provider::compile_provider;

/// A backend ready for the config, with the keys of its providers.
#[derive(Clone, Debug)]
pub(crate) struct CompiledBackend {
    pub(crate) config: BackendConfig,
    pub(crate) credentials: Credentials,
}

/// The outcome of compiling one backend: the config, or every reason it is not accepted (never empty).
pub(crate) type BackendResult = Result<CompiledBackend, Vec<Diagnostic>>;

/// Every reason one backend is not Accepted (empty when it is): the operator's status lists them
/// all, as the validating webhook does at admission.
pub fn backend_problems(backend: &AgentgatewayBackend, inputs: &Inputs) -> Vec<Diagnostic> {
    match compile_backend(&Index::new(inputs), backend) {
        Ok(_) => Vec::new(),
        Err(diagnostics) => diagnostics,
    }
}

/// Validates the spec, then resolves every provider. Structural errors stop before resolution:
/// references of a malformed spec would only add noise.
pub(crate) fn compile_backend(index: &Index<'_>, backend: &AgentgatewayBackend) -> BackendResult {
    let object = ObjectRef::of(backend);
    let errors = validate_backend_spec(&backend.spec);
    if !errors.is_empty() {
        return Err(errors
            .into_iter()
            .map(|e| Diagnostic::new(&object, e.field, Reason::InvalidSpec, e.message))
            .collect());
    }
    let backend_policies = backend.spec.policies.as_ref();
    let mut diagnostics = Vec::new();
    let mut credentials = Credentials::new();
    let mut groups = Vec::new();
    for group in provider_groups(backend) {
        let mut providers = Vec::new();
        for (path, provider) in group {
            match compile_provider(index, &object, backend_policies, provider, &path) {
                Ok(compiled) => {
                    if let Some(credential) = compiled.credential {
                        credentials.insert(credential.id, credential.key);
                    }
                    providers.push(compiled.config);
                }
                Err(mut problems) => diagnostics.append(&mut problems),
            }
        }
        groups.push(GroupConfig { providers });
    }
    let backend_layers = PolicyLayers {
        backend: backend_policies.map(|value| Located {
            value,
            path: "spec.policies",
        }),
        provider: None,
    };
    let request_timeout_ms = backend_layers
        .request_timeout_ms(&object)
        .map_err(|d| diagnostics.push(d))
        .unwrap_or(defaults::REQUEST_TIMEOUT_MS);
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    let config = BackendConfig {
        name: object.key(),
        groups,
        retry_attempts: retry_attempts(backend_policies),
        request_timeout_ms,
        pass_through_path_prefixes: backend
            .spec
            .ai
            .pass_through
            .as_ref()
            .map(|p| p.path_prefixes.clone())
            .unwrap_or_default(),
    };
    Ok(CompiledBackend {
        config,
        credentials,
    })
}

/// The providers by group, each with its field path. A single `provider` is one group of one.
fn provider_groups(backend: &AgentgatewayBackend) -> Vec<Vec<(String, &Provider)>> {
    if let Some(provider) = &backend.spec.ai.provider {
        return vec![vec![("spec.ai.provider".to_string(), provider)]];
    }
    let groups = backend.spec.ai.groups.as_deref().unwrap_or_default();
    groups
        .iter()
        .enumerate()
        .map(|(g, group)| {
            let providers = group.providers.iter().enumerate();
            providers
                .map(|(p, provider)| (format!("spec.ai.groups[{g}].providers[{p}]"), provider))
                .collect()
        })
        .collect()
}

/// Backends compiled on first use, so each is compiled once however many routes refer to it.
pub(crate) struct BackendTable<'a> {
    index: &'a Index<'a>,
    results: BTreeMap<String, BackendResult>,
}

impl<'a> BackendTable<'a> {
    pub(crate) fn new(index: &'a Index<'a>) -> Self {
        Self {
            index,
            results: BTreeMap::new(),
        }
    }

    /// The backend `namespace/name`: `None` when it does not exist.
    pub(crate) fn get(&mut self, key: &str) -> Option<&BackendResult> {
        let backend = self.index.backend(key)?;
        let index = self.index;
        Some(
            self.results
                .entry(key.to_string())
                .or_insert_with(|| compile_backend(index, backend)),
        )
    }

    /// Compiles every backend of the inputs; standalone mode reports problems of unused ones too.
    pub(crate) fn compile_all(&mut self) {
        let keys: Vec<String> = self.index.backends().keys().cloned().collect();
        for key in keys {
            self.get(&key);
        }
    }

    /// The compiled backend, when it exists and is accepted.
    pub(crate) fn accepted(&self, key: &str) -> Option<&CompiledBackend> {
        self.results.get(key).and_then(|r| r.as_ref().ok())
    }

    /// The diagnostics of the backends compiled so far whose keys `keep` accepts, by key.
    pub(crate) fn diagnostics(&self, keep: impl Fn(&str) -> bool) -> Vec<Diagnostic> {
        self.results
            .iter()
            .filter(|(key, _)| keep(key))
            .filter_map(|(_, result)| result.as_ref().err())
            .flatten()
            .cloned()
            .collect()
    }
}
