//! What one attempt's result means: for the client (pass the answer on, or try another provider)
//! and for the provider's health (count a failure, or nothing). One pure function decides, from the
//! status, what the answer signals, whose credential was sent and how far the attempt got, so a
//! client's mistake never evicts a provider that everyone else depends on.

use std::time::Duration;

use crate::provider::health::Failure;

/// What the attempt observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observed {
    /// No response: connect or TLS failed, or the connection broke before a status line.
    Unreachable,
    /// Nothing (or not enough) arrived in time.
    TimedOut,
    /// A status line.
    Status(u16),
    /// The response body or stream broke after its status line.
    Broken,
}

/// What the answer says beyond its status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signal {
    /// The body names quota or credit exhaustion (`insufficient_quota`).
    pub quota_exhausted: bool,
    /// `Retry-After`.
    pub retry_after: Option<Duration>,
}

/// Whose credential the upstream request carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The gateway's key for this provider.
    Gateway,
    /// The client's own (`Authorization` or `x-api-key` forwarded to a keyless provider).
    Client,
    /// None at all.
    None,
}

/// How far the attempt got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Nothing has reached the client: another provider may still serve the request.
    BeforeCommit,
    /// The client has received the status and part of the body.
    AfterCommit,
}

/// The verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The provider served the request.
    Success,
    /// The request's own fault (a 4xx, or the client's own credential refused): the answer goes
    /// to the client unchanged, is not retried, and counts against no provider.
    ClientFault,
    /// The provider failed: counts toward its eviction; retried while nothing reached the client.
    ProviderFailure {
        /// The class of failure.
        failure: Failure,
        /// Whether another provider may be tried.
        retry: bool,
    },
}

/// Classifies one attempt.
pub fn classify(
    observed: Observed,
    signal: Signal,
    credential: Credential,
    phase: Phase,
) -> Outcome {
    let failure = match observed {
        Observed::Unreachable => Failure::Connect,
        Observed::TimedOut => Failure::Timeout,
        Observed::Broken => Failure::Connect,
        Observed::Status(status) => match status {
            100..=399 => return Outcome::Success,
            401 | 403 if credential == Credential::Gateway => Failure::CredentialsRejected,
            402 => Failure::QuotaExhausted,
            408 => Failure::Timeout,
            // Quota exhaustion is read only from 429 and 402 answers: a 400 that merely quotes
            // `insufficient_quota` in its message is the client's.
            429 if signal.quota_exhausted => Failure::QuotaExhausted,
            429 => Failure::RateLimited(signal.retry_after),
            500..=599 => Failure::ServerError,
            _ => return Outcome::ClientFault,
        },
    };
    match phase {
        Phase::BeforeCommit => Outcome::ProviderFailure {
            failure,
            retry: true,
        },
        Phase::AfterCommit => Outcome::ProviderFailure {
            failure: Failure::StreamCut,
            retry: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREDENTIALS: [Credential; 3] =
        [Credential::Gateway, Credential::Client, Credential::None];
    const PHASES: [Phase; 2] = [Phase::BeforeCommit, Phase::AfterCommit];

    fn signals() -> Vec<Signal> {
        let mut all = Vec::new();
        for quota_exhausted in [false, true] {
            for retry_after in [None, Some(Duration::from_secs(3))] {
                all.push(Signal {
                    quota_exhausted,
                    retry_after,
                });
            }
        }
        all
    }

    /// The rule for one combination, written out independently of `classify`.
    fn expected(
        observed: Observed,
        signal: Signal,
        credential: Credential,
        phase: Phase,
    ) -> Outcome {
        let failure = match observed {
            Observed::Status(s) if s < 400 => return Outcome::Success,
            Observed::Status(401 | 403) if credential != Credential::Gateway => {
                return Outcome::ClientFault;
            }
            Observed::Status(401 | 403) => Failure::CredentialsRejected,
            Observed::Status(402) => Failure::QuotaExhausted,
            Observed::Status(408) => Failure::Timeout,
            Observed::Status(429) if signal.quota_exhausted => Failure::QuotaExhausted,
            Observed::Status(429) => Failure::RateLimited(signal.retry_after),
            Observed::Status(s) if s >= 500 => Failure::ServerError,
            Observed::Status(_) => return Outcome::ClientFault,
            Observed::Unreachable | Observed::Broken => Failure::Connect,
            Observed::TimedOut => Failure::Timeout,
        };
        if phase == Phase::AfterCommit {
            return Outcome::ProviderFailure {
                failure: Failure::StreamCut,
                retry: false,
            };
        }
        Outcome::ProviderFailure {
            failure,
            retry: true,
        }
    }

    #[test]
    fn every_status_signal_credential_and_phase() {
        let mut observed: Vec<Observed> = (100..=599).map(Observed::Status).collect();
        observed.extend([Observed::Unreachable, Observed::TimedOut, Observed::Broken]);
        for o in observed {
            for signal in signals() {
                for credential in CREDENTIALS {
                    for phase in PHASES {
                        assert_eq!(
                            classify(o, signal, credential, phase),
                            expected(o, signal, credential, phase),
                            "{o:?} {signal:?} {credential:?} {phase:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_reviewed_cases() {
        let before = Phase::BeforeCommit;
        let quota = Signal {
            quota_exhausted: true,
            retry_after: None,
        };
        // The client's own bad key to a keyless provider: theirs alone.
        assert_eq!(
            classify(
                Observed::Status(401),
                Signal::default(),
                Credential::Client,
                before
            ),
            Outcome::ClientFault
        );
        // The gateway's key refused: the provider is unusable for everyone.
        assert!(matches!(
            classify(
                Observed::Status(401),
                Signal::default(),
                Credential::Gateway,
                before
            ),
            Outcome::ProviderFailure {
                failure: Failure::CredentialsRejected,
                retry: true
            }
        ));
        // A 400 that quotes insufficient_quota is the client's.
        assert_eq!(
            classify(Observed::Status(400), quota, Credential::Gateway, before),
            Outcome::ClientFault
        );
        assert!(matches!(
            classify(Observed::Status(429), quota, Credential::Gateway, before),
            Outcome::ProviderFailure {
                failure: Failure::QuotaExhausted,
                ..
            }
        ));
        assert!(matches!(
            classify(
                Observed::Status(529),
                Signal::default(),
                Credential::None,
                before
            ),
            Outcome::ProviderFailure {
                failure: Failure::ServerError,
                ..
            }
        ));
    }
}
