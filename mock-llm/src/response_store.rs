//! The Responses API responses created with `store` on, so a follow-up naming one as
//! `previous_response_id` is answered (and anything else refused) as OpenAI does.
//!
//! Only what a follow-up needs is kept: the tokens the stored conversation adds to the next
//! turn's input, and the function calls still waiting for their output.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::server::lock;

/// Responses kept at most; beyond it the oldest are forgotten (a follow-up to one is then
/// refused, as one to an expired response would be), so a client creating responses in a loop
/// cannot grow the server without bound.
pub(crate) const MAX_STORED: usize = 1024;

/// Pending function calls kept per response; older ones are forgotten first.
pub(crate) const MAX_PENDING_CALLS: usize = 64;

/// What a follow-up inherits from a stored response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    /// The conversation so far in tokens (the response's input, without its `instructions`,
    /// which a follow-up does not inherit, plus its output).
    pub context_tokens: u32,
    /// The `call_id`s of function calls in the conversation that no `function_call_output` has
    /// answered yet, oldest first.
    pub pending_calls: Vec<String>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Stored>,
    /// Ids in the order they were stored, to forget the oldest first.
    order: VecDeque<String>,
}

#[derive(Default)]
pub(crate) struct ResponseStore {
    inner: Mutex<Inner>,
}

impl ResponseStore {
    /// Keeps `stored` under `id`, forgetting the oldest response when full.
    pub fn insert(&self, id: String, mut stored: Stored) {
        let excess = stored.pending_calls.len().saturating_sub(MAX_PENDING_CALLS);
        stored.pending_calls.drain(..excess);
        let mut inner = lock(&self.inner);
        while inner.order.len() >= MAX_STORED {
            match inner.order.pop_front() {
                Some(old) => inner.by_id.remove(&old),
                None => break,
            };
        }
        if inner.by_id.insert(id.clone(), stored).is_none() {
            inner.order.push_back(id);
        }
    }

    pub fn get(&self, id: &str) -> Option<Stored> {
        lock(&self.inner).by_id.get(id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_responses_and_pending_calls_are_forgotten_first() {
        let store = ResponseStore::default();
        for n in 0..=MAX_STORED {
            store.insert(format!("resp_{n}"), Stored::default());
        }
        assert_eq!(store.get("resp_0"), None);
        assert_eq!(store.get("resp_1"), Some(Stored::default()));
        assert!(store.get(&format!("resp_{MAX_STORED}")).is_some());

        let pending_calls = (0..MAX_PENDING_CALLS + 2)
            .map(|n| format!("call_{n}"))
            .collect();
        let stored = Stored {
            context_tokens: 5,
            pending_calls,
        };
        store.insert("resp_calls".to_owned(), stored);
        let kept = store.get("resp_calls").unwrap_or_default();
        assert_eq!(kept.pending_calls.len(), MAX_PENDING_CALLS);
        assert_eq!(kept.pending_calls[0], "call_2");
        assert_eq!(kept.context_tokens, 5);
    }
}
