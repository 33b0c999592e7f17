//! The OAuth access tokens the token endpoint issued, so Vertex AI routes can tell a live token
//! from an unknown or expired one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::server::lock;

/// Live tokens kept at most; beyond it the ones closest to expiry are forgotten, so a client
/// granting in a loop cannot grow the server without bound.
const MAX_TOKENS: usize = 10_000;

#[derive(Clone, Copy)]
struct Issued {
    expires: Instant,
    cloud_platform: bool,
}

/// What a presented token is worth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenState {
    Valid,
    /// Never issued here (or forgotten).
    Unknown,
    Expired,
    /// Issued without the `cloud-platform` scope Vertex AI requires.
    InsufficientScope,
}

#[derive(Default)]
pub(crate) struct TokenStore {
    tokens: std::sync::Mutex<HashMap<String, Issued>>,
    grants: AtomicUsize,
    next: AtomicU64,
}

impl TokenStore {
    /// Issues `ya29.mock-N`, valid for `ttl`.
    pub fn issue(&self, ttl: Duration, cloud_platform: bool) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let token = format!("ya29.mock-{n}");
        let now = Instant::now();
        // A TTL past what the clock can hold means "never expires" (about a century).
        let expires = now
            .checked_add(ttl)
            .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
            .unwrap_or(now);
        let issued = Issued {
            expires,
            cloud_platform,
        };
        let mut tokens = lock(&self.tokens);
        if tokens.len() >= MAX_TOKENS {
            tokens.retain(|_, t| t.expires > now);
        }
        while tokens.len() >= MAX_TOKENS {
            let soonest = tokens
                .iter()
                .min_by_key(|(_, t)| t.expires)
                .map(|(k, _)| k.clone());
            match soonest {
                Some(k) => tokens.remove(&k),
                None => break,
            };
        }
        tokens.insert(token.clone(), issued);
        self.grants.fetch_add(1, Ordering::Relaxed);
        token
    }

    pub fn check(&self, token: &str) -> TokenState {
        match lock(&self.tokens).get(token) {
            None => TokenState::Unknown,
            Some(t) if Instant::now() >= t.expires => TokenState::Expired,
            Some(t) if !t.cloud_platform => TokenState::InsufficientScope,
            Some(_) => TokenState::Valid,
        }
    }

    /// Tokens issued so far.
    pub fn grants(&self) -> usize {
        self.grants.load(Ordering::Relaxed)
    }

    /// Ends every issued token's life now, as if their hour had passed.
    pub fn expire_all(&self) {
        let now = Instant::now();
        for t in lock(&self.tokens).values_mut() {
            t.expires = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_live_for_their_ttl_and_can_be_expired() {
        let store = TokenStore::default();
        let a = store.issue(Duration::from_secs(60), true);
        let b = store.issue(Duration::ZERO, true);
        let c = store.issue(Duration::from_secs(60), false);
        assert_eq!((a.as_str(), b.as_str()), ("ya29.mock-1", "ya29.mock-2"));
        assert_eq!(store.check(&a), TokenState::Valid);
        assert_eq!(store.check(&b), TokenState::Expired);
        assert_eq!(store.check(&c), TokenState::InsufficientScope);
        assert_eq!(store.check("ya29.other"), TokenState::Unknown);
        assert_eq!(store.grants(), 3);
        store.expire_all();
        assert_eq!(store.check(&a), TokenState::Expired);
    }
}
