//! Client API keys: the consumers a policy admits, held only as SHA-256 hashes (the credentials
//! Secret carries nothing else), and the key a request presents.

use std::sync::Arc;

use agentgateway_crds::proxy_config::policy::ConsumerKey;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The consumers of one `auth.apiKeys`.
#[derive(Default)]
pub struct ConsumerKeys {
    consumers: Vec<(Arc<str>, [u8; 32])>,
}

// Hand-written: the hashes stay out of logs like the keys.
impl std::fmt::Debug for ConsumerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerKeys")
            .field("consumers", &self.consumers.len())
            .finish()
    }
}

/// The credential does not hold a list of consumers.
#[derive(Debug, thiserror::Error)]
#[error("the API-key credential is not a JSON list of consumers with SHA-256 hashes")]
pub struct InvalidConsumerKeys;

impl ConsumerKeys {
    /// Parses the credential the compiler wrote: a JSON array of `{consumer, sha256}`.
    pub fn parse(credential: &str) -> Result<Self, InvalidConsumerKeys> {
        let keys: Vec<ConsumerKey> =
            serde_json::from_str(credential).map_err(|_| InvalidConsumerKeys)?;
        let consumers = keys
            .into_iter()
            .map(|key| Ok((Arc::from(key.consumer), unhex(&key.sha256)?)))
            .collect::<Result<_, _>>()?;
        Ok(Self { consumers })
    }

    /// The consumer whose key is `presented`. Every hash is compared, in constant time, so the
    /// time taken says nothing about which consumer, or how much of a hash, matched.
    pub fn identify(&self, presented: &str) -> Option<Arc<str>> {
        self.identify_hash(&key_hash(presented))
    }

    /// [`Self::identify`] for a key already hashed with [`key_hash`] (a request checked against
    /// several policies hashes its key once).
    pub fn identify_hash(&self, hash: &[u8; 32]) -> Option<Arc<str>> {
        let mut found = None;
        for (consumer, expected) in &self.consumers {
            if bool::from(expected.ct_eq(hash)) {
                found = Some(consumer);
            }
        }
        found.cloned()
    }

    /// How many consumers.
    pub fn len(&self) -> usize {
        self.consumers.len()
    }

    /// No consumer: every request is refused.
    pub fn is_empty(&self) -> bool {
        self.consumers.is_empty()
    }
}

/// The SHA-256 of a presented key, as consumers' keys are held.
pub fn key_hash(presented: &str) -> [u8; 32] {
    Sha256::digest(presented.as_bytes()).into()
}

fn unhex(text: &str) -> Result<[u8; 32], InvalidConsumerKeys> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return Err(InvalidConsumerKeys);
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16).ok_or(InvalidConsumerKeys);
        out[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?)
            .map_err(|_| InvalidConsumerKeys)?;
    }
    Ok(out)
}

/// The API key a client presents: `Authorization: Bearer <key>`, else `x-api-key` (the header
/// Anthropic's SDK sends). Values that are not visible ASCII are no key.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|k| !k.is_empty());
    bearer.or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
    })
}

/// Removes the client's key headers: a key for the gateway is never sent to a provider.
pub fn remove_client_key(headers: &mut HeaderMap) {
    headers.remove(http::header::AUTHORIZATION);
    headers.remove("x-api-key");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hash(key: &str) -> String {
        Sha256::digest(key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn identifies_consumers_by_key_hash() {
        let credential = serde_json::json!([
            {"consumer": "alice", "sha256": hash("sk-alice")},
            {"consumer": "bob", "sha256": hash("sk-bob")},
        ])
        .to_string();
        let keys = ConsumerKeys::parse(&credential).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.identify("sk-bob").as_deref(), Some("bob"));
        assert_eq!(keys.identify("sk-alice").as_deref(), Some("alice"));
        assert_eq!(keys.identify("sk-mallory"), None);
        assert_eq!(keys.identify(""), None);
        assert!(!format!("{keys:?}").contains(&hash("sk-bob")));
    }

    #[test]
    fn malformed_credentials_are_refused() {
        for bad in [
            "",
            "{}",
            r#"[{"consumer":"a","sha256":"zz"}]"#,
            r#"[{"consumer":"a"}]"#,
        ] {
            assert!(ConsumerKeys::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_key_comes_from_bearer_or_x_api_key() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_key(&headers), None);
        headers.insert("x-api-key", "sk-x".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("sk-x"));
        headers.insert("authorization", "bearer  sk-b ".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("sk-b"));
        headers.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented_key(&headers), Some("sk-x"));
        remove_client_key(&mut headers);
        assert!(headers.is_empty());
    }
}
