//! Cluster mode: the compiled config from the ConfigMap `<gateway>-config` (key `config.yaml`) and
//! the provider keys from the Secret `<gateway>-credentials`, both watched through the API server
//! by name, so an operator's change reaches the proxy in well under a second (a mounted volume
//! would take up to a minute). The proxy's Role allows exactly these two objects.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use agentgateway_compiler::Compiled;
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
        })
    }

    fn compile(&self) -> Option<SourceEvent> {
        let config_map = self.config_maps.borrow().clone()?;
        let Some(text) = config_map.data.as_ref().and_then(|d| d.get(CONFIG_MAP_KEY)) else {
            return Some(SourceEvent::Rejected(format!(
                "ConfigMap {} has no key {CONFIG_MAP_KEY}",
                self.config_map
            )));
        };
        let config: ProxyConfig = match serde_yaml::from_str(text) {
            Ok(config) => config,
            Err(e) => {
                return Some(SourceEvent::Rejected(format!(
                    "ConfigMap {} key {CONFIG_MAP_KEY}: {e}",
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
        loop {
            if self.first {
                self.first = false;
            } else {
                tokio::select! {
                    changed = self.config_maps.changed() => if changed.is_err() { std::future::pending::<()>().await },
                    changed = self.secrets.changed() => if changed.is_err() { std::future::pending::<()>().await },
                }
                tokio::time::sleep(SETTLE).await;
            }
            self.config_maps.mark_unchanged();
            self.secrets.mark_unchanged();
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
