//! The Redis the proxies count shared limits (`rateLimit.global`) and budgets in. The operator
//! never talks to Redis itself: it tells the compiler whether the proxies can count there
//! (`Inputs::shared_counters`), passes the address to every proxy Deployment (`--redis-url`,
//! `--redis-timeout`) and copies the password from the Secret an administrator named into each
//! Gateway's own credentials Secret (key [`PASSWORD_KEY`]), from where the proxy reads it as
//! `AGENTGATEWAY_REDIS_PASSWORD`. So the password never reaches a ConfigMap or a pod spec, and a
//! proxy's Role stays limited to its own Secret.

use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

/// The data key of each Gateway's credentials Secret holding the Redis password.
pub const PASSWORD_KEY: &str = "redis-password";
/// The proxy's environment variable for the password.
pub const PASSWORD_ENV: &str = "AGENTGATEWAY_REDIS_PASSWORD";
/// The pod template annotation that changes with the password Secret, so that the proxies restart
/// with a rotated password (they read it once, at start). Its value is the Secret's
/// `resourceVersion`, which says nothing about the password.
pub const PASSWORD_VERSION_ANNOTATION: &str = "agentgateway.dev/redis-password-version";

/// How long the operator waits at start for the password Secret's first list before compiling
/// without it (it keeps watching, and a late read restarts the proxies with the password).
pub const PASSWORD_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the Redis password is: a data key of a Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordSecret {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// The data key holding the password.
    pub key: String,
}

/// How the proxies reach Redis (from the operator's `--redis-*` flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://host:port[/db]`, never with a password in it.
    pub url: String,
    /// How long a proxy waits for Redis before `failureMode` decides, as the proxy flag takes it.
    pub timeout: String,
    /// The password, when Redis needs one.
    pub password: Option<PasswordSecret>,
}

/// The Redis password and the version of the Secret it came from. `Debug` shows the version only.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisPassword {
    value: String,
    /// The `resourceVersion` of the Secret it was read from.
    pub version: String,
}

impl RedisPassword {
    /// A password read from the Secret at `version`.
    pub fn new(value: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            version: version.into(),
        }
    }

    /// The password itself, for the credentials Secret only.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl std::fmt::Debug for RedisPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPassword")
            .field("value", &"<redacted>")
            .field("version", &self.version)
            .finish()
    }
}

/// What the operator knows of the Redis password Secret: a cache of that one Secret.
#[derive(Clone)]
pub struct PasswordSource {
    secret: PasswordSecret,
    store: Store<Secret>,
}

/// What the proxies get of the password, for one build of their objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PasswordState {
    /// No password is configured: the proxies connect without one.
    #[default]
    None,
    /// Configured and read.
    Read(RedisPassword),
    /// Configured but missing (no such Secret, or no such key in it): the proxies start without
    /// it (their Redis checks then fail and `failureMode` decides) rather than not at all.
    Missing,
}

impl PasswordSource {
    /// Watches the Secret `secret` (by name: the operator's Role may be limited to it) and calls
    /// `changed` after each change of it, so that the proxies get the new password.
    pub fn start(
        client: &Client,
        secret: PasswordSecret,
        changed: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let (store, writer) = reflector::store();
        let api: Api<Secret> = Api::namespaced(client.clone(), &secret.namespace);
        let config = watcher::Config::default().fields(&format!("metadata.name={}", secret.name));
        let events = watcher(api, config).default_backoff().reflect(writer);
        let name = format!("{}/{}", secret.namespace, secret.name);
        let this = Self {
            secret: secret.clone(),
            store: store.clone(),
        };
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                match event {
                    // Created, changed, deleted, or a (re-)list complete: the password may differ.
                    Ok(
                        watcher::Event::Apply(_)
                        | watcher::Event::Delete(_)
                        | watcher::Event::InitDone,
                    ) => {
                        match this.current() {
                            PasswordState::Read(password) => {
                                tracing::info!(secret = %name, version = %password.version, "Redis password read; the proxies get it");
                            }
                            _ => tracing::warn!(
                                secret = %name,
                                key = %this.secret.key,
                                "the Redis password Secret or its key is missing; the proxies start without a password until it exists"
                            ),
                        }
                        changed();
                    }
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
                    Err(error) => {
                        tracing::warn!(secret = %name, error = %error, "watching the Redis password Secret failed; retrying with backoff");
                    }
                }
            }
        });
        Self { secret, store }
    }

    /// A source over an already filled `store` (tests).
    pub fn from_store(secret: PasswordSecret, store: Store<Secret>) -> Self {
        Self { secret, store }
    }

    /// Waits until the Secret was listed once: before that, "missing" may only mean "not read yet".
    pub async fn wait_until_ready(&self) -> bool {
        self.store.wait_until_ready().await.is_ok()
    }

    /// The password as it is now.
    pub fn current(&self) -> PasswordState {
        let secret = self
            .store
            .state()
            .into_iter()
            .find(|s| s.name_any() == self.secret.name);
        let Some(secret) = secret else {
            return PasswordState::Missing;
        };
        password_of(&secret, &self.secret.key)
    }

    /// Where the password comes from, for messages.
    pub fn secret(&self) -> &PasswordSecret {
        &self.secret
    }
}

/// The password under `key` in `secret` (surrounding whitespace dropped: a password written with
/// `echo` ends with a newline).
fn password_of(secret: &Secret, key: &str) -> PasswordState {
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).trim().to_string());
    match value {
        Some(value) if !value.is_empty() => PasswordState::Read(RedisPassword::new(
            value,
            secret.resource_version().unwrap_or_default(),
        )),
        _ => PasswordState::Missing,
    }
}

/// The password for the proxies of one build: none configured, or the source's current state.
pub fn password_state(source: Option<&Arc<PasswordSource>>) -> PasswordState {
    source.map_or(PasswordState::None, |s| s.current())
}

/// Why a `--redis-url` is refused. The URL itself is never part of the message: it may hold a
/// password.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RedisUrlError {
    /// Not `redis://`.
    #[error("the Redis URL must start with redis://")]
    Scheme,
    /// `rediss://`: the proxies speak plain TCP to Redis.
    #[error("TLS to Redis (rediss://) is not supported yet: use redis:// on a network you trust")]
    Tls,
    /// No host after the scheme.
    #[error("the Redis URL has no host")]
    NoHost,
    /// `redis://:password@host`: the URL reaches every proxy's pod spec, which is no place for a
    /// password.
    #[error(
        "the Redis URL holds a password, which would be written into every proxy Deployment; remove it and use --redis-password-secret"
    )]
    Password,
    /// Whitespace or control characters.
    #[error("the Redis URL contains whitespace or control characters")]
    Characters,
}

/// Checks a `--redis-url`: `redis://` (the proxies refuse `rediss://`), a host, no password.
pub fn check_url(url: &str) -> Result<String, RedisUrlError> {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(RedisUrlError::Characters);
    }
    if url.starts_with("rediss://") {
        return Err(RedisUrlError::Tls);
    }
    let rest = url.strip_prefix("redis://").ok_or(RedisUrlError::Scheme)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            if userinfo.split_once(':').is_some_and(|(_, p)| !p.is_empty()) {
                return Err(RedisUrlError::Password);
            }
            host
        }
        None => authority,
    };
    if host.is_empty() || host.starts_with(':') {
        return Err(RedisUrlError::NoHost);
    }
    Ok(url.to_string())
}

/// Parses `--redis-password-secret NAMESPACE/NAME`.
pub fn parse_secret_ref(text: &str) -> Result<(String, String), String> {
    let invalid = || format!("{text:?} is not NAMESPACE/NAME of a Secret");
    let (namespace, name) = text.trim().split_once('/').ok_or_else(invalid)?;
    if agentgateway_crds::validation::is_dns_label(namespace)
        && agentgateway_crds::validation::is_dns_subdomain(name)
    {
        Ok((namespace.to_string(), name.to_string()))
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use kube::runtime::watcher::Event;

    #[test]
    fn urls_with_a_password_are_refused_without_repeating_them() {
        assert!(check_url("redis://redis.agentgateway-system:6379").is_ok());
        assert!(check_url("redis://default@redis.example.com:6380/2").is_ok());
        assert_eq!(
            check_url("rediss://default@redis.example.com:6380/2"),
            Err(RedisUrlError::Tls)
        );
        assert!(check_url("redis://user:@redis:6379").is_ok());
        let error = check_url("redis://:hunter2@redis:6379").unwrap_err();
        assert_eq!(error, RedisUrlError::Password);
        assert!(!error.to_string().contains("hunter2"));
        assert_eq!(
            check_url("redis://u:p@ss@redis:6379"),
            Err(RedisUrlError::Password)
        );
        assert_eq!(check_url("http://redis:6379"), Err(RedisUrlError::Scheme));
        assert_eq!(check_url("redis://"), Err(RedisUrlError::NoHost));
        assert_eq!(check_url("redis://:6379"), Err(RedisUrlError::NoHost));
        assert_eq!(
            check_url("redis://redis:6379\n"),
            Err(RedisUrlError::Characters)
        );
    }

    #[test]
    fn secret_refs_are_namespace_slash_name() {
        assert_eq!(
            parse_secret_ref("agentgateway-system/agentgateway-redis"),
            Ok(("agentgateway-system".into(), "agentgateway-redis".into()))
        );
        assert!(parse_secret_ref("agentgateway-redis").is_err());
        assert!(parse_secret_ref("ns/Bad_Name").is_err());
        assert!(parse_secret_ref("a.b/name").is_err());
    }

    fn secret(data: &[(&str, &str)], version: &str) -> Secret {
        let mut secret = Secret::default();
        secret.metadata.name = Some("redis".into());
        secret.metadata.namespace = Some("infra".into());
        secret.metadata.resource_version = Some(version.into());
        secret.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        );
        secret
    }

    fn source(objects: Vec<Secret>) -> PasswordSource {
        let (store, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        for object in objects {
            writer.apply_watcher_event(&Event::InitApply(object));
        }
        writer.apply_watcher_event(&Event::InitDone);
        PasswordSource::from_store(
            PasswordSecret {
                namespace: "infra".into(),
                name: "redis".into(),
                key: "password".into(),
            },
            store,
        )
    }

    #[test]
    fn the_password_is_read_trimmed_with_its_version_and_never_debug_printed() {
        let state = source(vec![secret(&[("password", "s3cret\n")], "42")]).current();
        let PasswordState::Read(password) = state else {
            panic!("no password: {state:?}");
        };
        assert_eq!(password.expose(), "s3cret");
        assert_eq!(password.version, "42");
        assert!(!format!("{password:?}").contains("s3cret"));
    }

    #[test]
    fn a_missing_secret_key_or_empty_value_is_missing() {
        assert_eq!(source(vec![]).current(), PasswordState::Missing);
        let other_key = secret(&[("redis-password", "x")], "1");
        assert_eq!(source(vec![other_key]).current(), PasswordState::Missing);
        let empty = secret(&[("password", " \n")], "1");
        assert_eq!(source(vec![empty]).current(), PasswordState::Missing);
        assert_eq!(password_state(None), PasswordState::None);
    }
}
