//! How a compiled config travels from the operator to the proxy through the ConfigMap
//! `<gateway>-config`, and how the proxy knows it has what the operator meant.
//!
//! - The YAML sits under `config.yaml`; past [`COMPRESS_ABOVE`] it is gzip-compressed under
//!   `config.yaml.gz` in `binaryData` instead. The API server refuses a ConfigMap over 1 MiB, and
//!   compiled configs are repetitive: 2,000 backends with their routes are several MiB of YAML
//!   but a small fraction of that compressed. Small configs stay readable with `kubectl get`.
//! - The ConfigMap carries the config's generation (a hash of the YAML): the proxy reports the
//!   generation it serves, and the operator compares it with the one it wrote.
//! - Both the ConfigMap and the Secret `<gateway>-credentials` carry a credentials version (a hash
//!   of the credential ids, never of a key): a proxy that sees a config before the Secret it needs
//!   waits for that Secret instead of loading a config whose keys are missing.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::Credentials;

/// The `binaryData` key of a gzip-compressed config.
pub const CONFIG_MAP_GZIP_KEY: &str = "config.yaml.gz";
/// Configs with more YAML bytes than this are compressed.
pub const COMPRESS_ABOVE: usize = 256 * 1024;
/// What the API server accepts in one ConfigMap's `data` and `binaryData` together.
pub const CONFIG_MAP_MAX_BYTES: usize = 1024 * 1024;
/// A compressed config may expand to at most this much YAML: the ConfigMap is input like any
/// other, and a few hundred KiB of gzip could otherwise expand to gigabytes.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024 * 1024;
/// Annotation of the ConfigMap: the generation of the config it holds.
pub const GENERATION_ANNOTATION: &str = "agentgateway.dev/config-generation";
/// Annotation of the ConfigMap (the version its config needs) and of the Secret (the version it
/// holds).
pub const CREDENTIALS_VERSION_ANNOTATION: &str = "agentgateway.dev/credentials-version";

/// A stable 64-bit FNV-1a hash as 16 hex digits: the same across processes and releases (unlike
/// `std`'s hasher), so an operator and a proxy of different versions agree on it.
pub fn fnv64_hex(bytes: &[u8]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = bytes.iter().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    });
    format!("{hash:016x}")
}

/// The generation of a config: the hash of its YAML.
pub fn config_generation(yaml: &str) -> String {
    fnv64_hex(yaml.as_bytes())
}

/// The credentials version: the hash of the sorted credential ids. Keys do not enter it (it is
/// written into the ConfigMap, which more people may read than the Secret); a rotated key keeps
/// the version and reaches the proxy with the Secret alone.
pub fn credentials_version(credentials: &Credentials) -> String {
    let mut ids = Vec::new();
    for id in credentials.keys() {
        ids.extend_from_slice(id.as_bytes());
        ids.push(b'\n');
    }
    fnv64_hex(&ids)
}

/// A config as it is put into the ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigPayload {
    /// YAML under `data["config.yaml"]`.
    Text(String),
    /// Gzip-compressed YAML under `binaryData["config.yaml.gz"]`.
    Gzip(Vec<u8>),
}

impl ConfigPayload {
    /// `yaml` as it should be stored: compressed when larger than [`COMPRESS_ABOVE`].
    pub fn encode(yaml: String) -> Self {
        if yaml.len() <= COMPRESS_ABOVE {
            return Self::Text(yaml);
        }
        let mut encoder =
            GzEncoder::new(Vec::with_capacity(yaml.len() / 8), Compression::default());
        // Writing into a Vec cannot fail; should it, the text form is still correct (and the
        // size check reports it if it does not fit).
        match encoder
            .write_all(yaml.as_bytes())
            .and_then(|()| encoder.finish())
        {
            Ok(bytes) => Self::Gzip(bytes),
            Err(_) => Self::Text(yaml),
        }
    }

    /// The bytes the API server counts against [`CONFIG_MAP_MAX_BYTES`] (key and value).
    pub fn stored_bytes(&self) -> usize {
        match self {
            Self::Text(yaml) => super::CONFIG_MAP_KEY.len() + yaml.len(),
            Self::Gzip(bytes) => CONFIG_MAP_GZIP_KEY.len() + bytes.len(),
        }
    }
}

/// Why a compressed config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not gzip, truncated, or corrupt.
    #[error("failed to decompress {CONFIG_MAP_GZIP_KEY}: {0}")]
    Corrupt(#[source] std::io::Error),
    /// It expands past [`MAX_CONFIG_BYTES`].
    #[error("{CONFIG_MAP_GZIP_KEY} expands to more than {MAX_CONFIG_BYTES} bytes")]
    TooLarge,
    /// The YAML inside is not UTF-8.
    #[error("{CONFIG_MAP_GZIP_KEY} does not hold UTF-8 text")]
    NotText,
}

/// The YAML inside a compressed config, refusing one that expands past `max` bytes.
pub fn decode_gzip(bytes: &[u8], max: usize) -> Result<String, DecodeError> {
    let mut yaml = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    GzDecoder::new(bytes)
        .take(limit)
        .read_to_end(&mut yaml)
        .map_err(DecodeError::Corrupt)?;
    if yaml.len() > max {
        return Err(DecodeError::TooLarge);
    }
    String::from_utf8(yaml).map_err(|_| DecodeError::NotText)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_configs_stay_text_and_large_ones_are_compressed_losslessly() {
        let small = "listeners: []\n".to_string();
        assert_eq!(
            ConfigPayload::encode(small.clone()),
            ConfigPayload::Text(small)
        );
        let large: String = (0..20_000)
            .map(|i| format!("- name: backend-{i}\n  host: model-{i}.example\n"))
            .collect();
        assert!(large.len() > COMPRESS_ABOVE);
        let ConfigPayload::Gzip(bytes) = ConfigPayload::encode(large.clone()) else {
            panic!("expected compression");
        };
        assert!(bytes.len() < large.len() / 4, "{} bytes", bytes.len());
        assert_eq!(decode_gzip(&bytes, MAX_CONFIG_BYTES).unwrap(), large);
    }

    #[test]
    fn a_bomb_or_garbage_is_refused() {
        let zeros = "0".repeat(2 * 1024 * 1024);
        let ConfigPayload::Gzip(bytes) = ConfigPayload::encode(zeros) else {
            panic!("expected compression");
        };
        assert!(matches!(
            decode_gzip(&bytes, 1024 * 1024),
            Err(DecodeError::TooLarge)
        ));
        assert!(matches!(
            decode_gzip(b"not gzip", MAX_CONFIG_BYTES),
            Err(DecodeError::Corrupt(_))
        ));
    }

    #[test]
    fn the_credentials_version_depends_on_ids_only() {
        let one = Credentials::from([("a".to_string(), "sk-1".to_string())]);
        let rotated = Credentials::from([("a".to_string(), "sk-2".to_string())]);
        let more = Credentials::from([
            ("a".to_string(), "sk-1".to_string()),
            ("b".to_string(), "sk-3".to_string()),
        ]);
        assert_eq!(credentials_version(&one), credentials_version(&rotated));
        assert_ne!(credentials_version(&one), credentials_version(&more));
        assert_eq!(config_generation("x").len(), 16);
    }
}
