//! One provider of a backend: kind, endpoint, effective policies and credential.

use agentgateway_crds::backend::{BackendPolicies, Provider, ProviderKindName};
use agentgateway_crds::proxy_config::{
    AuthConfig, AzureConfig, BedrockConfig, CostConfig, ProviderConfig, ProviderKind, VertexConfig,
};

use crate::auth::{Credential, resolve_auth};
use crate::diagnostic::{Diagnostic, Reason};
use crate::index::Index;
use crate::inputs::ObjectRef;
use crate::policies::{Located, PolicyLayers, resolve_tls};

/// A compiled provider and the credential it uses, if any.
pub(crate) struct CompiledProvider {
    pub(crate) config: ProviderConfig,
    pub(crate) credential: Option<Credential>,
}

/// Compiles the provider at `path` (`spec.ai.provider` or `spec.ai.groups[g].providers[p]`) of an
/// already validated backend. Collects every problem rather than stopping at the first.
pub(crate) fn compile_provider(
    index: &Index<'_>,
    backend: &ObjectRef,
    backend_policies: Option<&BackendPolicies>,
    provider: &Provider,
    path: &str,
) -> Result<CompiledProvider, Vec<Diagnostic>> {
    let kind_name = provider.kinds().first().copied().ok_or_else(|| {
        vec![Diagnostic::new(
            backend,
            path,
            Reason::InvalidSpec,
            "a provider kind must be set",
        )]
    })?;
    let (kind, public_endpoint) = served_kind(kind_name, provider);
    let name = provider
        .name
        .clone()
        .unwrap_or_else(|| kind_name.field().to_string());
    let provider_policies_path = format!("{path}.policies");
    let layers = PolicyLayers {
        backend: backend_policies.map(|value| Located {
            value,
            path: "spec.policies",
        }),
        provider: provider.policies.as_ref().map(|value| Located {
            value,
            path: &provider_policies_path,
        }),
    };

    let mut diagnostics = Vec::new();

    let tls_policy = layers.tls();
    let tls = keep(&mut diagnostics, resolve_tls(index, backend, tls_policy));
    let endpoint = match (&provider.host, provider.port) {
        (Some(host), Some(port)) => {
            let port = keep(&mut diagnostics, port_number(backend, path, port));
            // A self-hosted endpoint speaks plain HTTP unless TLS is asked for.
            port.map(|port| {
                (
                    host.clone(),
                    port,
                    tls.clone().filter(|_| tls_policy.is_some()),
                )
            })
        }
        _ => Some((public_endpoint, 443, tls.clone())),
    };
    let credential = layers.auth().and_then(|(auth, auth_path)| {
        keep(
            &mut diagnostics,
            resolve_auth(index, backend, &name, auth, auth_path),
        )
    });
    let connect_timeout_ms = keep(&mut diagnostics, layers.connect_timeout_ms(backend));
    let request_timeout_ms = keep(&mut diagnostics, layers.request_timeout_ms(backend));
    let eviction = keep(&mut diagnostics, layers.eviction(backend));

    match (endpoint, connect_timeout_ms, request_timeout_ms, eviction) {
        (Some((host, port, tls)), Some(connect), Some(request), Some(eviction))
            if diagnostics.is_empty() =>
        {
            let config = ProviderConfig {
                name,
                kind,
                model: provider.model().map(str::to_string),
                host,
                port,
                tls,
                path: provider.path.clone(),
                azure: provider.azureopenai.as_ref().map(|azure| AzureConfig {
                    deployment: azure.deployment_name.clone().unwrap_or_default(),
                    api_version: azure.api_version.clone().unwrap_or_default(),
                }),
                bedrock: provider.bedrock.as_ref().map(|bedrock| BedrockConfig {
                    region: bedrock.region.clone().unwrap_or_default(),
                }),
                vertex: provider.vertexai.as_ref().map(|vertex| VertexConfig {
                    project_id: vertex.project_id.clone().unwrap_or_default(),
                    region: vertex.region.clone().unwrap_or_default(),
                }),
                auth: credential.as_ref().map(|c| AuthConfig {
                    credential: c.id.clone(),
                }),
                connect_timeout_ms: connect,
                request_timeout_ms: request,
                eviction,
                cost: provider.cost.as_ref().map(|cost| CostConfig {
                    input_per_million: cost.input_per_million,
                    output_per_million: cost.output_per_million,
                    cached_input_per_million: cost
                        .cached_input_per_million
                        .unwrap_or(cost.input_per_million),
                }),
            };
            Ok(CompiledProvider { config, credential })
        }
        _ => Err(diagnostics),
    }
}

/// The proxy's kind for a provider and its public endpoint (served over TLS on 443). Regional
/// endpoints take the region validation already checked.
fn served_kind(kind: ProviderKindName, provider: &Provider) -> (ProviderKind, String) {
    match kind {
        ProviderKindName::OpenAi => (ProviderKind::OpenAi, "api.openai.com".into()),
        ProviderKindName::Anthropic => (ProviderKind::Anthropic, "api.anthropic.com".into()),
        // The resource's own host (validation requires it when no host is given).
        ProviderKindName::AzureOpenAi => (
            ProviderKind::AzureOpenAi,
            provider
                .azureopenai
                .as_ref()
                .and_then(|azure| azure.endpoint.clone())
                .unwrap_or_default(),
        ),
        ProviderKindName::Gemini => (
            ProviderKind::Gemini,
            "generativelanguage.googleapis.com".into(),
        ),
        ProviderKindName::Bedrock => {
            let region = provider.bedrock.as_ref().and_then(|b| b.region.as_deref());
            (
                ProviderKind::Bedrock,
                format!(
                    "bedrock-runtime.{}.amazonaws.com",
                    region.unwrap_or_default()
                ),
            )
        }
        ProviderKindName::VertexAi => {
            let region = provider.vertexai.as_ref().and_then(|v| v.region.as_deref());
            let host = match region {
                Some("global") => "aiplatform.googleapis.com".to_string(),
                region => format!("{}-aiplatform.googleapis.com", region.unwrap_or_default()),
            };
            (ProviderKind::VertexAi, host)
        }
    }
}

/// The provider's port as the config holds it (validation already bounds it).
fn port_number(backend: &ObjectRef, path: &str, port: i32) -> Result<u16, Diagnostic> {
    u16::try_from(port).ok().filter(|p| *p != 0).ok_or_else(|| {
        let field = format!("{path}.port");
        Diagnostic::new(
            backend,
            field,
            Reason::InvalidSpec,
            "must be between 1 and 65535",
        )
    })
}

/// The value, or `None` with the problem recorded: a provider reports all its problems at once.
fn keep<T>(diagnostics: &mut Vec<Diagnostic>, result: Result<T, Diagnostic>) -> Option<T> {
    result.map_err(|d| diagnostics.push(d)).ok()
}
