//! A provider's effective policies: its own `policies` over the backend's `spec.policies`, field by
//! field, with the documented defaults, resolved to the numbers and TLS settings the proxy runs with.

use agentgateway_crds::backend::{AuthPolicy, BackendPolicies, EvictionPolicy, TlsPolicy};
use agentgateway_crds::duration::parse_duration;
use agentgateway_crds::proxy_config::{EvictionConfig, TlsConfig, defaults};

use crate::diagnostic::{Diagnostic, Reason};
use crate::index::Index;
use crate::inputs::ObjectRef;

/// A policy block together with the field path it was written at, so diagnostics point at the
/// place the user has to edit (the provider's block or the backend's).
pub(crate) struct Located<'a, T> {
    pub(crate) value: &'a T,
    pub(crate) path: &'a str,
}

// Manual impls: a derive would require `T: Copy`, but only references are copied.
impl<T> Clone for Located<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Located<'_, T> {}

/// The backend's and one provider's policy blocks, each with its path.
pub(crate) struct PolicyLayers<'a> {
    pub(crate) backend: Option<Located<'a, BackendPolicies>>,
    pub(crate) provider: Option<Located<'a, BackendPolicies>>,
}

impl<'a> PolicyLayers<'a> {
    /// The first layer (provider, then backend) where `pick` finds a value, with that layer's path.
    fn pick<T: ?Sized>(
        &self,
        pick: impl Fn(&'a BackendPolicies) -> Option<&'a T>,
    ) -> Option<(&'a T, &'a str)> {
        [self.provider, self.backend]
            .into_iter()
            .flatten()
            .find_map(|layer| pick(layer.value).map(|v| (v, layer.path)))
    }

    /// `auth` as a whole block: a provider's auth replaces the backend's.
    pub(crate) fn auth(&self) -> Option<(&'a AuthPolicy, &'a str)> {
        self.pick(|p| p.auth.as_ref())
    }

    /// `tls` as a whole block.
    pub(crate) fn tls(&self) -> Option<(&'a TlsPolicy, &'a str)> {
        self.pick(|p| p.tls.as_ref())
    }

    /// `timeouts.request` in milliseconds.
    pub(crate) fn request_timeout_ms(&self, object: &ObjectRef) -> Result<u64, Diagnostic> {
        let found = self.pick(|p| p.timeouts.as_ref().and_then(|t| t.request.as_deref()));
        millis(
            object,
            found,
            "timeouts.request",
            defaults::REQUEST_TIMEOUT_MS,
        )
    }

    /// `timeouts.connect` in milliseconds.
    pub(crate) fn connect_timeout_ms(&self, object: &ObjectRef) -> Result<u64, Diagnostic> {
        let found = self.pick(|p| p.timeouts.as_ref().and_then(|t| t.connect.as_deref()));
        millis(
            object,
            found,
            "timeouts.connect",
            defaults::CONNECT_TIMEOUT_MS,
        )
    }

    /// `health.eviction`, each field on its own.
    pub(crate) fn eviction(&self, object: &ObjectRef) -> Result<EvictionConfig, Diagnostic> {
        fn eviction(p: &BackendPolicies) -> Option<&EvictionPolicy> {
            p.health.as_ref().and_then(|h| h.eviction.as_ref())
        }
        let base = self.pick(|p| eviction(p).and_then(|e| e.duration.as_deref()));
        let max = self.pick(|p| eviction(p).and_then(|e| e.max_duration.as_deref()));
        let failures = self.pick(|p| eviction(p).and_then(|e| e.consecutive_failures.as_ref()));
        let base_ms = millis(
            object,
            base,
            "health.eviction.duration",
            defaults::EVICTION_BASE_MS,
        )?;
        let max_ms = millis(
            object,
            max,
            "health.eviction.maxDuration",
            defaults::EVICTION_MAX_MS,
        )?;
        Ok(EvictionConfig {
            base_ms,
            // Validation checks each block on its own, so a provider's `duration` may exceed the
            // inherited or default `maxDuration`; an eviction is never shorter than its base.
            max_ms: max_ms.max(base_ms),
            consecutive_failures: failures
                .map(|(n, _)| *n)
                .unwrap_or(defaults::CONSECUTIVE_FAILURES)
                .max(1),
        })
    }
}

/// The backend-level `retry.attempts` (retries are a property of the whole backend).
pub(crate) fn retry_attempts(backend: Option<&BackendPolicies>) -> u32 {
    backend
        .and_then(|p| p.retry.as_ref())
        .and_then(|r| r.attempts)
        .unwrap_or(defaults::RETRY_ATTEMPTS)
}

/// A duration field in milliseconds, or its default when no layer sets it.
fn millis(
    object: &ObjectRef,
    found: Option<(&str, &str)>,
    field: &str,
    default: u64,
) -> Result<u64, Diagnostic> {
    let Some((text, path)) = found else {
        return Ok(default);
    };
    // Validation already parsed it; a failure here means the spec bypassed validation.
    let duration = parse_duration(text).map_err(|e| {
        Diagnostic::new(
            object,
            format!("{path}.{field}"),
            Reason::InvalidSpec,
            e.to_string(),
        )
    })?;
    Ok(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// TLS towards a provider: SNI, verification and the CA bundle from a ConfigMap of the backend's
/// namespace (a CA bundle is public, so it travels in the config, unlike keys).
pub(crate) fn resolve_tls(
    index: &Index<'_>,
    object: &ObjectRef,
    tls: Option<(&TlsPolicy, &str)>,
) -> Result<TlsConfig, Diagnostic> {
    let Some((tls, path)) = tls else {
        return Ok(TlsConfig::default());
    };
    let ca_pem = match &tls.ca_certificate_ref {
        None => None,
        Some(ca) => {
            let field = format!("{path}.tls.caCertificateRef");
            let key = ca.key.as_deref().unwrap_or(defaults::CA_CERTIFICATE_KEY);
            let reference = format!("ConfigMap {}/{}", object.namespace, ca.name);
            let config_map = index
                .config_map(&object.namespace, &ca.name)
                .ok_or_else(|| {
                    let message = format!("{reference} not found");
                    Diagnostic::new(
                        object,
                        format!("{field}.name"),
                        Reason::ConfigMapNotFound,
                        message,
                    )
                })?;
            let text = config_map
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .cloned()
                .or_else(|| {
                    let bytes = config_map.binary_data.as_ref()?.get(key)?;
                    String::from_utf8(bytes.0.clone()).ok()
                });
            let text = text.ok_or_else(|| {
                let message = format!("{reference} has no key {key:?}");
                Diagnostic::new(
                    object,
                    format!("{field}.key"),
                    Reason::ConfigMapKeyNotFound,
                    message,
                )
            })?;
            // The proxy refuses a whole config whose CA does not parse; catch it here, where the
            // diagnostic can name the ConfigMap.
            if !text.contains("-----BEGIN CERTIFICATE-----") {
                let message = format!("key {key:?} of {reference} holds no PEM certificate");
                return Err(Diagnostic::new(
                    object,
                    format!("{field}.key"),
                    Reason::InvalidSpec,
                    message,
                ));
            }
            Some(text)
        }
    };
    Ok(TlsConfig {
        sni: tls.sni.clone(),
        insecure_skip_verify: tls.insecure_skip_verify.unwrap_or(false),
        ca_pem,
    })
}
