//! The ConfigMap `<gateway>-config` (the compiled config) and the Secret `<gateway>-credentials`
//! (the keys it refers to by id). Keys never go into the ConfigMap: its readers are not limited to
//! those who may read Secrets. How the config is encoded and versioned is
//! [`agentgateway_crds::proxy_config::delivery`].

use std::collections::BTreeMap;

use agentgateway_crds::proxy_config::delivery::{
    CONFIG_MAP_GZIP_KEY, CONFIG_MAP_MAX_BYTES, CREDENTIALS_VERSION_ANNOTATION, ConfigPayload,
    GENERATION_ANNOTATION, config_generation, credentials_version,
};
use agentgateway_crds::proxy_config::{CONFIG_MAP_KEY, Credentials, ProxyConfig};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::Owner;
use crate::error::Error;
use crate::redis::{self, RedisPassword};

/// The ConfigMap holding `config` (see [`ConfigPayload`]), annotated with its generation and the
/// version of `credentials` it needs; refused when even compressed it exceeds what the API server
/// stores in one ConfigMap.
pub fn config_map(
    owner: &Owner,
    config: &ProxyConfig,
    credentials: &Credentials,
) -> Result<ConfigMap, Error> {
    let yaml = serde_yaml::to_string(config).map_err(|source| Error::SerializeConfig {
        key: owner.key(),
        source,
    })?;
    let generation = config_generation(&yaml);
    let payload = ConfigPayload::encode(yaml);
    let bytes = payload.stored_bytes();
    if bytes > CONFIG_MAP_MAX_BYTES {
        return Err(Error::ConfigTooLarge {
            key: owner.key(),
            config_map: owner.config_map_name(),
            bytes,
            limit: CONFIG_MAP_MAX_BYTES,
        });
    }
    let mut metadata = owner.meta(owner.config_map_name());
    metadata.annotations = Some(BTreeMap::from([
        (GENERATION_ANNOTATION.to_string(), generation),
        (
            CREDENTIALS_VERSION_ANNOTATION.to_string(),
            credentials_version(credentials),
        ),
    ]));
    let (data, binary_data) = match payload {
        ConfigPayload::Text(yaml) => (
            Some(BTreeMap::from([(CONFIG_MAP_KEY.to_string(), yaml)])),
            None,
        ),
        ConfigPayload::Gzip(bytes) => (
            None,
            Some(BTreeMap::from([(
                CONFIG_MAP_GZIP_KEY.to_string(),
                ByteString(bytes),
            )])),
        ),
    };
    Ok(ConfigMap {
        metadata,
        data,
        binary_data,
        ..ConfigMap::default()
    })
}

/// The generation of the config a ConfigMap built by [`config_map`] holds.
pub fn generation_of(config_map: &ConfigMap) -> Option<&str> {
    config_map
        .metadata
        .annotations
        .as_ref()?
        .get(GENERATION_ANNOTATION)
        .map(String::as_str)
}

/// The Secret holding `credentials`, one data key per credential id, annotated with their version,
/// and the Redis password under [`redis::PASSWORD_KEY`] (no credential id has that form). The
/// password does not enter the version: the config does not refer to it, the proxy reads it from
/// its environment at start.
pub fn credentials_secret(
    owner: &Owner,
    credentials: &Credentials,
    redis_password: Option<&RedisPassword>,
) -> Secret {
    let mut data: BTreeMap<String, ByteString> = credentials
        .iter()
        .map(|(id, key)| (id.clone(), ByteString(key.as_bytes().to_vec())))
        .collect();
    if let Some(password) = redis_password {
        data.insert(
            redis::PASSWORD_KEY.to_string(),
            ByteString(password.expose().as_bytes().to_vec()),
        );
    }
    let mut metadata = owner.meta(owner.secret_name());
    metadata.annotations = Some(BTreeMap::from([(
        CREDENTIALS_VERSION_ANNOTATION.to_string(),
        credentials_version(credentials),
    )]));
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::tests::owner;
    use agentgateway_crds::proxy_config::{AuthConfig, BackendConfig, GroupConfig, ProviderConfig};

    fn config_with_credential() -> (ProxyConfig, Credentials) {
        let provider = ProviderConfig {
            name: "openai".into(),
            host: "api.openai.com".into(),
            port: 443,
            auth: Some(AuthConfig {
                credential: "secret_ns_openai-secret_Authorization".into(),
            }),
            ..ProviderConfig::default()
        };
        let backend = BackendConfig {
            name: "ns/llm".into(),
            groups: vec![GroupConfig {
                providers: vec![provider],
            }],
            ..BackendConfig::default()
        };
        let config = ProxyConfig {
            backends: BTreeMap::from([("ns/llm".to_string(), backend)]),
            ..ProxyConfig::default()
        };
        let credentials = Credentials::from([(
            "secret_ns_openai-secret_Authorization".to_string(),
            "sk-very-secret-value".to_string(),
        )]);
        (config, credentials)
    }

    #[test]
    fn the_config_map_holds_the_config_and_no_credential_value() {
        let (config, credentials) = config_with_credential();
        let map = config_map(&owner(), &config, &credentials).unwrap();
        assert_eq!(
            map.metadata.name.as_deref(),
            Some("agentgateway-proxy-config")
        );
        let yaml = &map.data.as_ref().unwrap()[CONFIG_MAP_KEY];
        let parsed: ProxyConfig = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(parsed, config);
        for key in credentials.values() {
            assert!(!yaml.contains(key.as_str()));
        }
        assert!(yaml.contains("secret_ns_openai-secret_Authorization"));
        let annotations = map.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            annotations[CREDENTIALS_VERSION_ANNOTATION],
            credentials_version(&credentials)
        );
        assert_eq!(generation_of(&map), Some(config_generation(yaml).as_str()));
    }

    fn config_of(backends: usize) -> ProxyConfig {
        let (mut config, _) = config_with_credential();
        let template = config.backends["ns/llm"].clone();
        for i in 0..backends {
            let name = format!("ns/llm-{i}");
            let mut backend = template.clone();
            backend.name = name.clone();
            config.backends.insert(name, backend);
        }
        config
    }

    #[test]
    fn a_config_that_does_not_fit_even_compressed_is_refused_naming_the_gateway() {
        let (_, credentials) = config_with_credential();
        let mut config = config_of(4_000);
        // Incompressible models: a xorshift stream in hex.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for backend in config.backends.values_mut() {
            let model: String = (0..48)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    format!("{state:016x}")
                })
                .collect();
            backend.groups[0].providers[0].model = Some(model);
        }
        let Err(error) = config_map(&owner(), &config, &credentials) else {
            panic!("a config past the limit was accepted");
        };
        assert_eq!(error.label(), "ConfigTooLarge");
        assert!(
            error
                .to_string()
                .starts_with("the config of Gateway agentgateway-system/agentgateway-proxy is "),
            "{error}"
        );
    }

    #[test]
    fn a_config_past_the_configmap_limit_travels_compressed() {
        let (_, credentials) = config_with_credential();
        let config = config_of(8_000);
        let yaml = serde_yaml::to_string(&config).unwrap();
        assert!(yaml.len() > CONFIG_MAP_MAX_BYTES, "{} bytes", yaml.len());
        let map = config_map(&owner(), &config, &credentials).unwrap();
        assert!(map.data.is_none());
        let bytes = &map.binary_data.as_ref().unwrap()[CONFIG_MAP_GZIP_KEY].0;
        let text = agentgateway_crds::proxy_config::delivery::decode_gzip(
            bytes,
            agentgateway_crds::proxy_config::delivery::MAX_CONFIG_BYTES,
        )
        .unwrap();
        assert_eq!(serde_yaml::from_str::<ProxyConfig>(&text).unwrap(), config);
        assert_eq!(generation_of(&map), Some(config_generation(&yaml).as_str()));
    }

    #[test]
    fn the_secret_holds_each_credential_under_its_id() {
        let (_, credentials) = config_with_credential();
        let secret = credentials_secret(&owner(), &credentials, None);
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("agentgateway-proxy-credentials")
        );
        assert_eq!(secret.type_.as_deref(), Some("Opaque"));
        let data = secret.data.unwrap();
        assert_eq!(
            data["secret_ns_openai-secret_Authorization"].0,
            b"sk-very-secret-value"
        );
        assert_eq!(data.len(), 1);
        let version = &secret.metadata.annotations.unwrap()[CREDENTIALS_VERSION_ANNOTATION];
        assert_eq!(version, &credentials_version(&credentials));
    }

    #[test]
    fn the_redis_password_joins_the_credentials_without_changing_their_version() {
        let (_, credentials) = config_with_credential();
        let password = RedisPassword::new("redis-secret", "7");
        let secret = credentials_secret(&owner(), &credentials, Some(&password));
        let data = secret.data.unwrap();
        assert_eq!(data["redis-password"].0, b"redis-secret");
        assert_eq!(data.len(), 2);
        let version = &secret.metadata.annotations.unwrap()[CREDENTIALS_VERSION_ANNOTATION];
        assert_eq!(version, &credentials_version(&credentials));
    }
}
