//! Cluster mode: the compiled config from the ConfigMap `<gateway>-config` (`config.yaml`, or
//! `config.yaml.gz` in `binaryData` when large) and the provider keys from the Secret
//! `<gateway>-credentials`, both watched through the API server by name, so an operator's change
//! reaches the proxy in well under a second (a mounted volume would take up to a minute). The
//! proxy's Role allows exactly these two objects.
//!
//! A config names the credentials version it needs; when the Secret holds another one (the
//! config's watch event came first), the config waits for the Secret, up to
//! [`CREDENTIALS_WAIT`]; then it is served anyway, with the providers whose key is missing out of
//! rotation.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use agentgateway_compiler::Compiled;
use agentgateway_crds::proxy_config::delivery::{
    CONFIG_MAP_GZIP_KEY, CREDENTIALS_VERSION_ANNOTATION, GENERATION_ANNOTATION, MAX_CONFIG_BYTES,
    decode_gzip,
};
use agentgateway_crds::proxy_config::{CONFIG_MAP_KEY, Credentials, ProxyConfig};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::{ConfigSource, SourceEvent};

/// Changes are applied this long after the last one, so an operator's ConfigMap and Secret
/// writes of one reconcile land together.
const SETTLE: Duration = Duration::from_millis(30);
/// How long a config waits for the credentials version it names.
pub const CREDENTIALS_WAIT: Duration = Duration::from_secs(10);

/// Why the cluster source could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeSourceError {
    /// `--kube-config-map`/`--kube-secret` is not `namespace/name`.
    #[error("failed to parse {0:?} as namespace/name")]
    ParseObjectName(String),
    /// No kubeconfig or in-cluster config.
    #[error("failed to create a Kubernetes client: {0}")]
    CreateClient(#[from] kube::Error),
}

/// The ConfigMap and Secret of one Gateway's proxy.
pub struct KubeSource {
    config_map: NamespacedName,
    config_maps: watch::Receiver<Option<ConfigMap>>,
    secrets: watch::Receiver<Option<Secret>>,
    first: bool,
    /// The generation of the last config handed out.
    generation: Option<String>,
}

#[derive(Clone, Debug)]
struct NamespacedName {
    namespace: String,
    name: String,
}

impl std::fmt::Display for NamespacedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

fn parse_name(text: &str) -> Result<NamespacedName, KubeSourceError> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(NamespacedName {
                namespace: ns.into(),
                name: name.into(),
            })
        }
        _ => Err(KubeSourceError::ParseObjectName(text.into())),
    }
}

impl KubeSource {
    /// Watches `namespace/name` of the ConfigMap and the Secret (in-cluster config or KUBECONFIG).
    pub async fn new(config_map: &str, secret: &str) -> Result<Self, KubeSourceError> {
        let config_map = parse_name(config_map)?;
        let secret = parse_name(secret)?;
        let client = Client::try_default().await?;
        Ok(Self {
            config_maps: watch_one::<ConfigMap>(&client, &config_map),
            secrets: watch_one::<Secret>(&client, &secret),
            config_map,
            first: true,
            generation: None,
        })
    }

    /// The credentials version the current config needs and the one the Secret holds, when they
    /// differ.
    fn credentials_pending(&self) -> Option<(String, Option<String>)> {
        let needed = annotation(
            self.config_maps.borrow().as_ref()?,
            CREDENTIALS_VERSION_ANNOTATION,
        )?;
        let held = self
            .secrets
            .borrow()
            .as_ref()
            .and_then(|s| annotation(s, CREDENTIALS_VERSION_ANNOTATION));
        (held.as_ref() != Some(&needed)).then_some((needed, held))
    }

    fn compile(&mut self) -> Option<SourceEvent> {
        let config_map = self.config_maps.borrow().clone()?;
        self.generation = annotation(&config_map, GENERATION_ANNOTATION);
        let compressed = config_map
            .binary_data
            .as_ref()
            .and_then(|d| d.get(CONFIG_MAP_GZIP_KEY));
        let plain = config_map.data.as_ref().and_then(|d| d.get(CONFIG_MAP_KEY));
        let text = match (plain, compressed) {
            // The operator writes exactly one; with both, neither is known to be current.
            (Some(_), Some(_)) => {
                return Some(SourceEvent::Rejected(format!(
                    "ConfigMap {} holds both {CONFIG_MAP_KEY} and {CONFIG_MAP_GZIP_KEY}; exactly one is expected",
                    self.config_map
                )));
            }
            (Some(text), None) => text.clone(),
            (None, Some(bytes)) => match decode_gzip(&bytes.0, MAX_CONFIG_BYTES) {
                Ok(text) => text,
                Err(e) => {
                    return Some(SourceEvent::Rejected(format!(
                        "ConfigMap {}: {e}",
                        self.config_map
                    )));
                }
            },
            (None, None) => {
                return Some(SourceEvent::Rejected(format!(
                    "ConfigMap {} has neither {CONFIG_MAP_KEY} nor {CONFIG_MAP_GZIP_KEY}",
                    self.config_map
                )));
            }
        };
        let key = if compressed.is_some() {
            CONFIG_MAP_GZIP_KEY
        } else {
            CONFIG_MAP_KEY
        };
        let config: ProxyConfig = match serde_yaml::from_str(&text) {
            Ok(config) => config,
            Err(e) => {
                return Some(SourceEvent::Rejected(format!(
                    "ConfigMap {} key {key}: {e}",
                    self.config_map
                )));
            }
        };
        let mut credentials = Credentials::new();
        if let Some(data) = self.secrets.borrow().as_ref().and_then(|s| s.data.as_ref()) {
            for (key, value) in data {
                // Keys are text; a non-UTF-8 one could not be sent in a header anyway.
                if let Ok(text) = String::from_utf8(value.0.clone()) {
                    credentials.insert(key.clone(), text);
                }
            }
        }
        Some(SourceEvent::Config(Box::new(Compiled {
            config,
            credentials,
        })))
    }
}

impl ConfigSource for KubeSource {
    async fn next(&mut self) -> SourceEvent {
        let mut waiting_since: Option<tokio::time::Instant> = None;
        loop {
            if self.first {
                self.first = false;
            } else {
                let wait = match waiting_since {
                    Some(since) => (since + CREDENTIALS_WAIT)
                        .saturating_duration_since(tokio::time::Instant::now()),
                    None => Duration::MAX,
                };
                tokio::select! {
                    changed = self.config_maps.changed() => if changed.is_err() { std::future::pending::<()>().await },
                    changed = self.secrets.changed() => if changed.is_err() { std::future::pending::<()>().await },
                    () = tokio::time::sleep(wait), if waiting_since.is_some() => {}
                }
                tokio::time::sleep(SETTLE).await;
            }
            self.config_maps.mark_unchanged();
            self.secrets.mark_unchanged();
            if let Some((needed, held)) = self.credentials_pending() {
                let since = *waiting_since.get_or_insert_with(|| {
                    tracing::info!(config_map = %self.config_map, needed = %needed, held = ?held, "config waits for its credentials");
                    tokio::time::Instant::now()
                });
                if since.elapsed() < CREDENTIALS_WAIT {
                    continue;
                }
                tracing::warn!(config_map = %self.config_map, needed = %needed, held = ?held, wait_s = CREDENTIALS_WAIT.as_secs(), "credentials did not arrive; serving the config without the missing keys");
            }
            waiting_since = None;
            match self.compile() {
                Some(event) => return event,
                None => {
                    tracing::info!(config_map = %self.config_map, "waiting for the proxy's ConfigMap");
                    // Wait for the ConfigMap to appear.
                    let _ = self.config_maps.wait_for(Option::is_some).await;
                }
            }
        }
    }

    fn describe(&self) -> String {
        format!("ConfigMap {}", self.config_map)
    }

    fn initial_config_is_fatal(&self) -> bool {
        false
    }

    fn generation(&self) -> Option<String> {
        self.generation.clone()
    }
}

fn annotation<K: Resource>(object: &K, name: &str) -> Option<String> {
    object.meta().annotations.as_ref()?.get(name).cloned()
}

/// Follows one object by name; the receiver holds its latest state (`None`: absent).
fn watch_one<K>(client: &Client, name: &NamespacedName) -> watch::Receiver<Option<K>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (tx, rx) = watch::channel(None);
    let api: Api<K> = Api::namespaced(client.clone(), &name.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", name.name));
    let what = format!("{} {}", K::kind(&()), name);
    let follow: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(async move {
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        let mut relisted: Option<K> = None;
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Apply(object)) => {
                    let _ = tx.send(Some(object));
                }
                Ok(Event::Delete(_)) => {
                    let _ = tx.send(None);
                }
                Ok(Event::Init) => relisted = None,
                Ok(Event::InitApply(object)) => relisted = Some(object),
                Ok(Event::InitDone) => {
                    let _ = tx.send(relisted.take());
                }
                Err(error) => tracing::warn!(object = %what, %error, "watch failed; retrying"),
            }
        }
    });
    tokio::spawn(follow);
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    fn source(config: Option<&str>, secret: &[(&str, &str)]) -> KubeSource {
        let config_map = config.map(|text| ConfigMap {
            data: Some(BTreeMap::from([(
                CONFIG_MAP_KEY.to_string(),
                text.to_string(),
            )])),
            ..Default::default()
        });
        let secret = Secret {
            data: Some(
                secret
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        KubeSource {
            config_map: parse_name("ns/gw-config").unwrap(),
            config_maps: watch::channel(config_map).1,
            secrets: watch::channel(Some(secret)).1,
            first: true,
            generation: None,
        }
    }

    #[test]
    fn the_config_map_and_secret_become_a_config_with_credentials() {
        let yaml = "listeners:\n- name: default\n  rules: []\n  matches: []\nbackends: {}\n";
        let Some(SourceEvent::Config(compiled)) =
            source(Some(yaml), &[("secret_ns_s_k", "sk-1")]).compile()
        else {
            panic!("expected a config");
        };
        assert_eq!(compiled.config.listeners[0].name, "default");
        assert_eq!(compiled.credentials["secret_ns_s_k"], "sk-1");
    }

    #[test]
    fn a_broken_config_map_is_rejected_naming_it() {
        let Some(SourceEvent::Rejected(message)) = source(Some("listeners: 7"), &[]).compile()
        else {
            panic!("expected a rejection");
        };
        assert!(
            message.starts_with("ConfigMap ns/gw-config key config.yaml:"),
            "{message}"
        );
    }

    #[test]
    fn a_compressed_config_is_read_and_its_generation_kept() {
        let yaml = "listeners:\n- name: default\n  rules: []\n  matches: []\nbackends: {}\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, yaml.as_bytes()).unwrap();
        let config_map = ConfigMap {
            metadata: kube::api::ObjectMeta {
                annotations: Some(BTreeMap::from([(
                    GENERATION_ANNOTATION.to_string(),
                    "g7".to_string(),
                )])),
                ..Default::default()
            },
            binary_data: Some(BTreeMap::from([(
                CONFIG_MAP_GZIP_KEY.to_string(),
                ByteString(gz.finish().unwrap()),
            )])),
            ..Default::default()
        };
        let mut source = source(None, &[]);
        source.config_maps = watch::channel(Some(config_map)).1;
        let Some(SourceEvent::Config(compiled)) = source.compile() else {
            panic!("expected a config");
        };
        assert_eq!(compiled.config.listeners[0].name, "default");
        assert_eq!(source.generation().as_deref(), Some("g7"));
    }

    #[test]
    fn a_config_map_holding_both_forms_is_rejected() {
        let mut source = source(Some("backends: {}\n"), &[]);
        let mut config_map = source.config_maps.borrow().clone().unwrap();
        config_map.binary_data = Some(BTreeMap::from([(
            CONFIG_MAP_GZIP_KEY.to_string(),
            ByteString(Vec::new()),
        )]));
        source.config_maps = watch::channel(Some(config_map)).1;
        let Some(SourceEvent::Rejected(message)) = source.compile() else {
            panic!("expected a rejection");
        };
        assert!(message.contains("holds both"), "{message}");
    }

    #[test]
    fn a_config_naming_other_credentials_than_the_secret_holds_is_pending() {
        let mut source = source(Some("backends: {}\n"), &[]);
        assert_eq!(source.credentials_pending(), None, "no version named");
        let versioned = |version: &str| {
            Some(BTreeMap::from([(
                CREDENTIALS_VERSION_ANNOTATION.to_string(),
                version.to_string(),
            )]))
        };
        let mut config_map = source.config_maps.borrow().clone().unwrap();
        config_map.metadata.annotations = versioned("v2");
        source.config_maps = watch::channel(Some(config_map)).1;
        assert_eq!(source.credentials_pending(), Some(("v2".into(), None)));
        let mut secret = source.secrets.borrow().clone().unwrap();
        secret.metadata.annotations = versioned("v1");
        source.secrets = watch::channel(Some(secret.clone())).1;
        assert_eq!(
            source.credentials_pending(),
            Some(("v2".into(), Some("v1".into())))
        );
        secret.metadata.annotations = versioned("v2");
        source.secrets = watch::channel(Some(secret)).1;
        assert_eq!(source.credentials_pending(), None);
    }

    #[test]
    fn an_absent_config_map_is_waited_for() {
        assert!(source(None, &[]).compile().is_none());
    }

    #[test]
    fn object_names_must_be_namespace_slash_name() {
        for bad in ["x", "/x", "x/", "a/b/c"] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }
}
