//! How the validating webhook learns whether a referenced Secret exists.
//!
//! A missing Secret is only a warning at admission (GitOps tools may apply it after the backend),
//! so the lookup is a trait: the operator answers from its informer cache (asking the API server
//! only when the cache has no such Secret), tests from a map; and the handler bounds every lookup
//! (`BoundedLookup`) so a slow one cannot hold a review up.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

/// What is known about one Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretState {
    /// The Secret exists with these data keys.
    Found {
        /// The keys of `data` (and `stringData`, if the source reports it).
        keys: BTreeSet<String>,
    },
    /// The Secret does not exist.
    NotFound,
    /// The lookup failed (cache not synced, no permission): the webhook says nothing rather than
    /// warning about a Secret that may well exist.
    Unknown,
}

/// Answers whether a Secret exists and which keys it holds.
pub trait SecretLookup: Send + Sync + 'static {
    /// The state of Secret `namespace/name`.
    fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Pin<Box<dyn Future<Output = SecretState> + Send + '_>>;
}

/// A fixed set of Secrets, `(namespace, name)` to data keys: for tests and for standalone use where
/// no cluster is watched. Secrets not in the map are [`SecretState::NotFound`].
pub type StaticSecrets = BTreeMap<(String, String), BTreeSet<String>>;

impl SecretLookup for StaticSecrets {
    fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Pin<Box<dyn Future<Output = SecretState> + Send + '_>> {
        let state = match self.get(&(namespace.to_string(), name.to_string())) {
            Some(keys) => SecretState::Found { keys: keys.clone() },
            None => SecretState::NotFound,
        };
        Box::pin(std::future::ready(state))
    }
}

/// A lookup that gives up after `limit` with [`SecretState::Unknown`]: a Secret lookup only feeds a
/// warning, and must not push a review past the API server's webhook timeout (10 s by default).
pub(crate) struct BoundedLookup {
    pub(crate) inner: std::sync::Arc<dyn SecretLookup>,
    pub(crate) limit: std::time::Duration,
}

impl SecretLookup for BoundedLookup {
    fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Pin<Box<dyn Future<Output = SecretState> + Send + '_>> {
        let lookup = self.inner.secret(namespace, name);
        bounded(lookup, self.limit, SecretState::Unknown, "Secret")
    }
}

/// `lookup`, or `unknown` once `limit` has passed: a lookup only feeds a warning, and must not push
/// a review past the API server's webhook timeout.
pub(crate) fn bounded<'a, T: Send + 'a>(
    lookup: Pin<Box<dyn Future<Output = T> + Send + 'a>>,
    limit: std::time::Duration,
    unknown: T,
    what: &'static str,
) -> Pin<Box<dyn Future<Output = T> + Send + 'a>> {
    Box::pin(async move {
        tokio::time::timeout(limit, lookup)
            .await
            .unwrap_or_else(|_| {
                tracing::debug!(
                    limit_ms = limit.as_millis(),
                    what,
                    "a lookup timed out; no warning"
                );
                unknown
            })
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    struct Never;

    impl SecretLookup for Never {
        fn secret(
            &self,
            _namespace: &str,
            _name: &str,
        ) -> Pin<Box<dyn Future<Output = SecretState> + Send + '_>> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn a_lookup_that_hangs_is_unknown_after_the_limit() {
        let bounded = BoundedLookup {
            inner: Arc::new(Never),
            limit: Duration::from_millis(20),
        };
        assert_eq!(bounded.secret("ns", "s").await, SecretState::Unknown);
    }

    #[tokio::test]
    async fn a_prompt_answer_passes_through() {
        let secrets = StaticSecrets::from([(
            ("ns".to_string(), "s".to_string()),
            BTreeSet::from(["k".to_string()]),
        )]);
        let bounded = BoundedLookup {
            inner: Arc::new(secrets),
            limit: Duration::from_secs(1),
        };
        let found = SecretState::Found {
            keys: BTreeSet::from(["k".to_string()]),
        };
        assert_eq!(bounded.secret("ns", "s").await, found);
        assert_eq!(bounded.secret("ns", "t").await, SecretState::NotFound);
    }
}
