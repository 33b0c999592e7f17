//! The ConfigMap `<gateway>-config` (the compiled config) and the Secret `<gateway>-credentials`
//! (the keys it refers to by id). Keys never go into the ConfigMap: its readers are not limited to
//! those who may read Secrets.

use std::collections::BTreeMap;

use agentgateway_crds::proxy_config::{CONFIG_MAP_KEY, Credentials, ProxyConfig};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use super::Owner;

/// The ConfigMap holding `config` as YAML under `config.yaml`.
pub fn config_map(owner: &Owner, config: &ProxyConfig) -> Result<ConfigMap, serde_yaml::Error> {
    let yaml = serde_yaml::to_string(config)?;
    Ok(ConfigMap {
        metadata: owner.meta(owner.config_map_name()),
        data: Some(BTreeMap::from([(CONFIG_MAP_KEY.to_string(), yaml)])),
        ..ConfigMap::default()
    })
}

/// The Secret holding `credentials`, one data key per credential id.
pub fn credentials_secret(owner: &Owner, credentials: &Credentials) -> Secret {
    let data = credentials
        .iter()
        .map(|(id, key)| (id.clone(), ByteString(key.as_bytes().to_vec())))
        .collect();
    Secret {
        metadata: owner.meta(owner.secret_name()),
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
        let map = config_map(&owner(), &config).unwrap();
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
    }

    #[test]
    fn the_secret_holds_each_credential_under_its_id() {
        let (_, credentials) = config_with_credential();
        let secret = credentials_secret(&owner(), &credentials);
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
    }
}
