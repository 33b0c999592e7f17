//! What the counter stores ([`super::local::LocalCounters`], [`super::shared::SharedCounters`])
//! are asked: the same vocabulary for both, so that a local limit and a global one behave alike
//! and the request path checks them the same way.

use std::time::Duration;

/// One counter a request must fit in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterCheck {
    /// The counter's name (for Redis: the full key, built by [`super::window::counter_key`]).
    /// The keys of one call are expected to be distinct.
    pub key: String,
    /// The counter's limit for its window.
    pub limit: u64,
    /// Admitted only if `used + need <= limit` (for a rate limit `need == reserve`; for a budget
    /// `need = 1, reserve = 0`, i.e. admitted while spend < budget).
    pub need: u64,
    /// Added to the counter when ALL checks admit (nothing is added to any counter when one
    /// rejects). An admitted counter exists afterwards even when this is 0, so that the
    /// [`Adjustment`] made when the response ends finds it.
    pub reserve: u64,
    /// Until the window ends: the key expires then (set when the key is created; never extended).
    pub ttl: Duration,
}

/// The answer to a set of [`CounterCheck`]s.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Every counter admitted; `used[i]` is counter i's value after the reservation.
    Admitted {
        /// Each counter's value after the reservation, in the order of the checks.
        used: Vec<u64>,
    },
    /// Counter `counter` rejected; nothing was added anywhere; `used[i]` is each counter's current
    /// value.
    Rejected {
        /// The index (in the checks) of the first counter that rejected.
        counter: usize,
        /// Each counter's current value, in the order of the checks.
        used: Vec<u64>,
    },
}

impl Admission {
    /// Whether the request was admitted.
    pub fn admitted(&self) -> bool {
        matches!(self, Self::Admitted { .. })
    }

    /// Each counter's value (after the reservation when admitted).
    pub fn used(&self) -> &[u64] {
        match self {
            Self::Admitted { used } | Self::Rejected { used, .. } => used,
        }
    }
}

/// A correction applied when a response ends: `delta` (may be negative) added to `key` ONLY if
/// the key still exists (a window that already ended is never recreated), and the result never
/// goes below 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adjustment {
    /// The counter's name, as in its [`CounterCheck`].
    pub key: String,
    /// What to add (negative: the reservation was larger than what was used).
    pub delta: i64,
}
