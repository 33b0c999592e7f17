//! The running configuration: one immutable [`Snapshot`] swapped atomically. A snapshot is built
//! completely (clients included) before the swap, so a bad config is rejected whole and the old one
//! keeps serving. Providers that did not change are carried over with their health.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agentgateway_compiler::Compiled;
use agentgateway_crds::proxy_config::ListenerConfig;
use arc_swap::ArcSwap;

use crate::filters::{HeaderModifier, RuleFilters};
use crate::governance::policy::PolicyRuntime;
use crate::provider::{ProviderBuildError, ProviderRuntime};
use crate::route::RouteMatch;
use crate::tls::{TlsConfigError, server_config};

/// A backend at run time.
pub struct BackendRuntime {
    /// `namespace/name`.
    pub name: Arc<str>,
    /// Providers by group, in priority order.
    pub groups: Vec<Vec<Arc<ProviderRuntime>>>,
    /// Retries after a failed attempt.
    pub retry_attempts: u32,
    /// Deadline of a whole request.
    pub request_timeout: Duration,
    /// Paths of operations the gateway does not know that are forwarded anyway.
    pub pass_through_path_prefixes: Vec<String>,
}

/// One rule's backends, resolved.
pub struct RuleRuntime {
    /// The route, `namespace/name`.
    pub route: Arc<str>,
    /// The weighted backends.
    pub backends: Vec<WeightedRuntime>,
    /// Sum of the weights.
    pub total_weight: u32,
    /// Header modifiers, redirect, rewrite and timeouts; `None`: the rule has none.
    pub filters: Option<Arc<RuleFilters>>,
}

/// A weighted backend of a rule, with the policy requests to it through the rule must pass.
pub struct WeightedRuntime {
    /// `None` is a reference that did not resolve.
    pub backend: Option<Arc<BackendRuntime>>,
    /// Relative weight.
    pub weight: u32,
    /// Authentication, limits and budget; `None`: nothing.
    pub policy: Option<Arc<PolicyRuntime>>,
    /// The backendRef's `RequestHeaderModifier`, applied after the rule's.
    pub request_headers: Option<Arc<HeaderModifier>>,
    /// The backendRef's `ResponseHeaderModifier`, applied after the rule's.
    pub response_headers: Option<Arc<HeaderModifier>>,
}

/// A listener's routing table.
pub struct RouteTable {
    /// Rules, indexed by the matches.
    pub rules: Vec<RuleRuntime>,
    /// Matches in precedence order.
    pub matches: Vec<RouteMatch>,
    /// Whether a match routes by model: only then is the request's model put in a header.
    pub routes_by_model: bool,
}

/// Everything a request needs, immutable.
#[derive(Default)]
pub struct Snapshot {
    /// Route tables by listener name.
    pub listeners: HashMap<String, Arc<RouteTable>>,
    /// Listener names and ports, in config order.
    pub listener_ports: Vec<(String, Option<u16>)>,
    /// The TLS server config of each HTTPS listener, by listener name; a listener absent here
    /// serves plain HTTP.
    pub listener_tls: HashMap<String, Arc<rustls::ServerConfig>>,
    /// Backends by `namespace/name`.
    pub backends: HashMap<String, Arc<BackendRuntime>>,
    /// Counts applied configs.
    pub generation: u64,
    /// Providers left out of rotation because the credentials lack their key, as
    /// `(backend, provider)`: the rest of the config is served meanwhile.
    pub missing_credentials: Vec<(Arc<str>, String)>,
}

impl Snapshot {
    /// Every provider of every backend.
    pub fn providers(&self) -> impl Iterator<Item = &Arc<ProviderRuntime>> {
        self.backends
            .values()
            .flat_map(|b| b.groups.iter().flatten())
    }
}

/// The live snapshot.
pub struct ProxyState {
    current: ArcSwap<Snapshot>,
    /// Distinct `model` label values per provider (see `Limits`).
    model_label_cap: usize,
    /// Whether Redis is configured: a config with shared limits or budgets needs it.
    shared_counters: bool,
}

/// Why a config was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A value is out of bounds or inconsistent.
    #[error(transparent)]
    Invalid(#[from] agentgateway_crds::proxy_config::ConfigInvalid),
    /// A policy counts in Redis and the proxy has none.
    #[error(
        "policy {policy} has global rate limits or a budget, which are counted in Redis: start the proxy with --redis-url"
    )]
    RedisNotConfigured {
        /// The policy's id in the config.
        policy: String,
    },
    /// A provider could not be set up.
    #[error(transparent)]
    Provider(#[from] ProviderBuildError),
    /// An HTTPS listener's certificate is missing or unusable.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
}

impl ProxyState {
    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// An empty state whose providers bound their `model` labels to `model_label_cap` values;
    /// `shared_counters`: whether Redis is configured.
    pub fn new(model_label_cap: usize, shared_counters: bool) -> Self {
        Self {
            current: ArcSwap::default(),
            model_label_cap,
            shared_counters,
        }
    }

    /// Validates `compiled`, builds a snapshot from it and swaps it in; on error the current one
    /// stays.
    pub fn apply(&self, compiled: &Compiled) -> Result<Arc<Snapshot>, ApplyError> {
        compiled.config.validate()?;
        if !self.shared_counters
            && let Some((id, _)) = compiled
                .config
                .policies
                .iter()
                .find(|(_, p)| p.needs_redis())
        {
            return Err(ApplyError::RedisNotConfigured { policy: id.clone() });
        }
        let old = self.current.load_full();
        let next = Arc::new(build_snapshot(compiled, &old, self.model_label_cap)?);
        self.current.store(next.clone());
        Ok(next)
    }
}

fn build_snapshot(
    compiled: &Compiled,
    old: &Snapshot,
    model_label_cap: usize,
) -> Result<Snapshot, ApplyError> {
    let mut old_providers: HashMap<(&str, &str), &Arc<ProviderRuntime>> = HashMap::new();
    for provider in old.providers() {
        old_providers.insert((&provider.backend, &provider.name), provider);
    }
    let mut backends = HashMap::new();
    let mut missing_credentials = Vec::new();
    for (key, backend) in &compiled.config.backends {
        let name: Arc<str> = backend.name.as_str().into();
        let mut groups = Vec::with_capacity(backend.groups.len());
        for group in &backend.groups {
            let mut providers = Vec::with_capacity(group.providers.len());
            for config in &group.providers {
                let key_value = match &config.auth {
                    None => None,
                    Some(auth) => match compiled.credentials.get(&auth.credential) {
                        Some(key) => Some(key),
                        None => {
                            // Sending without the key would fail at the provider, and count
                            // against its health; the other providers serve meanwhile.
                            tracing::warn!(
                                backend = %backend.name,
                                provider = %config.name,
                                credential = %auth.credential,
                                "provider out of rotation: its credential is missing"
                            );
                            missing_credentials.push((name.clone(), config.name.clone()));
                            continue;
                        }
                    },
                };
                let key_value = key_value.map(String::as_str);
                let kept = old_providers
                    .get(&(backend.name.as_str(), config.name.as_str()))
                    .filter(|p| p.is_same(config, key_value));
                let provider = match kept {
                    Some(p) => Arc::clone(p),
                    None => Arc::new(ProviderRuntime::new(
                        name.clone(),
                        config.clone(),
                        key_value,
                        model_label_cap,
                    )?),
                };
                providers.push(provider);
            }
            groups.push(providers);
        }
        backends.insert(
            key.clone(),
            Arc::new(BackendRuntime {
                name,
                groups,
                retry_attempts: backend.retry_attempts,
                request_timeout: Duration::from_millis(backend.request_timeout_ms),
                pass_through_path_prefixes: backend.pass_through_path_prefixes.clone(),
            }),
        );
    }
    let policies: HashMap<&str, Arc<PolicyRuntime>> = compiled
        .config
        .policies
        .iter()
        .map(|(id, config)| {
            let policy = PolicyRuntime::new(id, config, &compiled.credentials);
            (id.as_str(), Arc::new(policy))
        })
        .collect();
    let listeners = compiled
        .config
        .listeners
        .iter()
        .map(|l| {
            (
                l.name.clone(),
                Arc::new(route_table(l, &backends, &policies)),
            )
        })
        .collect();
    let listener_ports = compiled
        .config
        .listeners
        .iter()
        .map(|l| (l.name.clone(), l.port))
        .collect();
    let mut listener_tls = HashMap::new();
    for listener in &compiled.config.listeners {
        if let Some(tls) = &listener.tls {
            let config = server_config(&listener.name, tls, &compiled.credentials)?;
            listener_tls.insert(listener.name.clone(), config);
        }
    }
    Ok(Snapshot {
        listeners,
        listener_ports,
        listener_tls,
        backends,
        generation: old.generation + 1,
        missing_credentials,
    })
}

fn route_table(
    listener: &ListenerConfig,
    backends: &HashMap<String, Arc<BackendRuntime>>,
    policies: &HashMap<&str, Arc<PolicyRuntime>>,
) -> RouteTable {
    let rules = listener
        .rules
        .iter()
        .map(|rule| {
            let backends: Vec<_> = rule
                .backends
                .iter()
                .map(|wb| WeightedRuntime {
                    backend: wb.backend.as_ref().and_then(|b| backends.get(b)).cloned(),
                    weight: wb.weight,
                    // Validation checked that every policy id exists.
                    policy: wb
                        .policy
                        .as_deref()
                        .and_then(|id| policies.get(id))
                        .cloned(),
                    request_headers: HeaderModifier::new(wb.request_headers.as_ref()),
                    response_headers: HeaderModifier::new(wb.response_headers.as_ref()),
                })
                .collect();
            RuleRuntime {
                route: rule.route.as_str().into(),
                total_weight: backends.iter().map(|b| b.weight).sum(),
                backends,
                filters: RuleFilters::new(rule),
            }
        })
        .collect();
    RouteTable {
        rules,
        matches: listener.matches.iter().map(RouteMatch::new).collect(),
        routes_by_model: listener.matches.iter().any(|m| {
            m.headers
                .iter()
                .any(|h| h.name == crate::route::MODEL_HEADER)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentgateway_crds::proxy_config::Credentials;
    use agentgateway_crds::proxy_config::{AuthConfig, BackendConfig, GroupConfig, ProviderConfig};
    use std::collections::BTreeMap;

    fn provider(name: &str, credential: Option<&str>) -> ProviderConfig {
        ProviderConfig {
            name: name.into(),
            host: format!("{name}.example"),
            port: 8000,
            auth: credential.map(|c| AuthConfig {
                credential: c.into(),
            }),
            connect_timeout_ms: 1_000,
            request_timeout_ms: 1_000,
            ..ProviderConfig::default()
        }
    }

    #[test]
    fn a_config_whose_certificate_is_missing_or_broken_is_refused_and_the_last_good_one_stays() {
        use agentgateway_crds::proxy_config::{
            ListenerConfig, ListenerTlsConfig, TlsCertificateConfig,
        };
        let https = |credentials: Credentials| Compiled {
            config: agentgateway_crds::proxy_config::ProxyConfig {
                listeners: vec![ListenerConfig {
                    name: "ns/gw/https".into(),
                    port: Some(8443),
                    tls: Some(ListenerTlsConfig {
                        certificates: vec![TlsCertificateConfig {
                            hostname: None,
                            credential: "tls_ns_cert".into(),
                        }],
                    }),
                    ..ListenerConfig::default()
                }],
                ..Default::default()
            },
            credentials,
        };
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let bundle = agentgateway_tls::bundle(&cert.pem(), &key.serialize_pem());
        let state = ProxyState::new(8, false);
        let good = state
            .apply(&https(Credentials::from([("tls_ns_cert".into(), bundle)])))
            .unwrap();
        assert!(good.listener_tls.contains_key("ns/gw/https"));

        let missing = state.apply(&https(Credentials::new()));
        assert!(matches!(missing, Err(ApplyError::Tls(_))), "refused");
        let broken = Credentials::from([("tls_ns_cert".into(), cert.pem())]);
        let error = state.apply(&https(broken)).err().map(|e| e.to_string());
        let error = error.unwrap_or_default();
        assert!(error.contains("tls_ns_cert"), "{error}");
        assert!(!error.contains("BEGIN"), "{error}");
        assert_eq!(
            state.snapshot().generation,
            good.generation,
            "the last good one stays"
        );
    }

    #[test]
    fn a_provider_whose_key_is_missing_is_left_out_and_the_rest_is_served() {
        let backend = BackendConfig {
            name: "ns/llm".into(),
            groups: vec![GroupConfig {
                providers: vec![
                    provider("keyed", Some("absent")),
                    provider("open", None),
                    provider("present", Some("here")),
                ],
            }],
            request_timeout_ms: 1_000,
            ..BackendConfig::default()
        };
        let compiled = Compiled {
            config: agentgateway_crds::proxy_config::ProxyConfig {
                backends: BTreeMap::from([("ns/llm".to_string(), backend)]),
                ..Default::default()
            },
            credentials: BTreeMap::from([("here".to_string(), "sk-1".to_string())]),
        };
        let state = ProxyState::new(8, false);
        let snapshot = state.apply(&compiled).unwrap();
        let names: Vec<String> = snapshot.providers().map(|p| p.name.to_string()).collect();
        assert_eq!(names, ["open", "present"]);
        assert_eq!(
            snapshot.missing_credentials,
            [(Arc::from("ns/llm"), "keyed".to_string())]
        );
    }
}
