//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go does it: the holder renews
//! every 2s; another replica takes over only once `renewTime + leaseDurationSeconds` has passed;
//! every write is a replace with the resourceVersion that was read, so of two replicas racing for
//! an expired Lease exactly one wins (the other gets a 409).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;

use crate::apply::post_params;
use crate::error::RunError;
use crate::metrics::Metrics;

/// How long a Lease is valid after its last renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews, and how often a follower retries.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// The holder gives up leading when it could not renew for this long, well before the Lease
/// expires and another replica may take over.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// What to do with the Lease as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or the holder let it expire: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds a valid Lease until `expires`.
    Wait {
        /// The holder's identity.
        holder: String,
        /// When the Lease expires unless renewed.
        expires: Timestamp,
    },
}

/// Decides from the Lease's spec (`None` when there is no Lease) what `identity` may do at `now`.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    if holder.is_empty() {
        return Decision::Acquire;
    }
    if holder == identity {
        return Decision::Renew;
    }
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        // A holder that never wrote a time cannot prove it is alive.
        return Decision::Acquire;
    };
    let seconds = spec
        .lease_duration_seconds
        .map_or(LEASE_DURATION.as_secs() as i64, i64::from);
    let expires = renewed
        .0
        .saturating_add(SignedDuration::from_secs(seconds))
        .unwrap_or(Timestamp::MAX);
    if expires < now {
        Decision::Acquire
    } else {
        Decision::Wait {
            holder: holder.to_string(),
            expires,
        }
    }
}

/// The spec to write for `decision` (`Acquire` or `Renew`) over the `current` one.
pub fn next_spec(
    current: Option<&LeaseSpec>,
    decision: &Decision,
    identity: &str,
    now: Timestamp,
) -> LeaseSpec {
    let transitions = current.and_then(|s| s.lease_transitions).unwrap_or(0);
    let previous_holder = current
        .and_then(|s| s.holder_identity.as_deref())
        .unwrap_or_default();
    let (acquire_time, transitions) = match decision {
        Decision::Renew => (
            current
                .and_then(|s| s.acquire_time.clone())
                .or(Some(MicroTime(now))),
            transitions,
        ),
        _ if current.is_none() => (Some(MicroTime(now)), 0),
        _ if previous_holder == identity => (Some(MicroTime(now)), transitions),
        _ => (Some(MicroTime(now)), transitions.saturating_add(1)),
    };
    LeaseSpec {
        holder_identity: Some(identity.to_string()),
        lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
        acquire_time,
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        // Fields newer than Kubernetes 1.20 stay unset: the test cluster would reject them.
        preferred_holder: None,
        strategy: None,
    }
}

/// This replica's identity: `POD_NAME`, or the host name and process id outside a cluster.
pub fn identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "agentgateway-operator".to_string());
    format!("{host}_{}", std::process::id())
}

/// The outcome of one attempt on the Lease.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold the Lease.
    Leading,
    /// Someone else holds it.
    Following { holder: String },
    /// Our write lost a race; read again.
    Conflict,
}

/// Leader election over one Lease.
pub struct LeaderElection {
    api: Api<Lease>,
    owner: Option<OwnerReference>,
    name: String,
    namespace: String,
    identity: String,
    metrics: Metrics,
}

impl LeaderElection {
    /// Election over the Lease `namespace/name` as `identity`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: String,
        metrics: Metrics,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            owner: None,
            name: name.to_string(),
            namespace: namespace.to_string(),
            identity,
            metrics,
        }
    }

    /// Creates the Lease owned by `owner`, so that uninstalling removes it with its owner.
    pub fn with_owner(mut self, owner: Option<OwnerReference>) -> Self {
        self.owner = owner;
        self
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        let mut waiting_for = None;
        loop {
            match self.attempt().await {
                Ok(Attempt::Leading) => {
                    tracing::info!(lease = %self.name, namespace = %self.namespace, identity = %self.identity, "acquired the leader-election lease");
                    self.metrics.set_leader(true);
                    return;
                }
                Ok(Attempt::Following { holder }) => {
                    if waiting_for.as_ref() != Some(&holder) {
                        tracing::info!(lease = %self.name, namespace = %self.namespace, holder = %holder, "another replica leads; standing by until its lease expires");
                        waiting_for = Some(holder);
                    }
                }
                Ok(Attempt::Conflict) => continue,
                Err(error) => {
                    tracing::warn!(lease = %self.name, namespace = %self.namespace, error = %error, "failed to read or write the leader-election lease");
                }
            }
            tokio::time::sleep(RETRY_PERIOD).await;
        }
    }

    /// Renews the Lease until leadership is lost, and says why.
    pub async fn keep(&self) -> RunError {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(RETRY_PERIOD).await;
            match self.attempt().await {
                Ok(Attempt::Leading) => renewed = Instant::now(),
                Ok(Attempt::Conflict) => {}
                Ok(Attempt::Following { holder }) => {
                    return self.lost(format!("replica {holder} holds it now"));
                }
                Err(error) => {
                    tracing::warn!(lease = %self.name, error = %error, "failed to renew the leader-election lease");
                }
            }
            if renewed.elapsed() > RENEW_DEADLINE {
                return self.lost(format!("not renewed for {}s", RENEW_DEADLINE.as_secs()));
            }
        }
    }

    /// Gives the Lease up so another replica takes over at once instead of after it expires.
    pub async fn release(&self) {
        self.metrics.set_leader(false);
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let held = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.identity.as_str());
        if !held {
            return;
        }
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..lease.spec.unwrap_or_default()
        });
        match self.api.replace(&self.name, &post_params(), &lease).await {
            Ok(_) => tracing::info!(lease = %self.name, "released the leader-election lease"),
            Err(error) => {
                tracing::warn!(lease = %self.name, error = %error, "failed to release the leader-election lease")
            }
        }
    }

    fn lost(&self, reason: String) -> RunError {
        self.metrics.set_leader(false);
        RunError::LeaseLost {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            reason,
        }
    }

    /// Reads the Lease and creates, takes over or renews it when [`decide`] says so.
    async fn attempt(&self) -> Result<Attempt, kube::Error> {
        let now = Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    owner_references: self.owner.clone().map(|owner| vec![owner]),
                    ..ObjectMeta::default()
                },
                spec: Some(next_spec(None, &Decision::Acquire, &self.identity, now)),
            };
            return match self.api.create(&post_params(), &lease).await {
                Ok(_) => Ok(Attempt::Leading),
                Err(kube::Error::Api(status))
                    if status.is_already_exists() || status.is_conflict() =>
                {
                    Ok(Attempt::Conflict)
                }
                Err(error) => Err(error),
            };
        };
        let decision = decide(lease.spec.as_ref(), &self.identity, now);
        if let Decision::Wait { holder, .. } = decision {
            return Ok(Attempt::Following { holder });
        }
        // The read resourceVersion stays in the metadata: the replace fails with 409 if anyone
        // wrote the Lease since.
        lease.spec = Some(next_spec(
            lease.spec.as_ref(),
            &decision,
            &self.identity,
            now,
        ));
        match self.api.replace(&self.name, &post_params(), &lease).await {
            Ok(_) => Ok(Attempt::Leading),
            Err(kube::Error::Api(status)) if status.is_conflict() => Ok(Attempt::Conflict),
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn held_by(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_string()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(at(renewed))),
            renew_time: Some(MicroTime(at(renewed))),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_missing_or_released_lease_is_acquired() {
        assert_eq!(decide(None, "me", at(100)), Decision::Acquire);
        let released = LeaseSpec {
            holder_identity: None,
            ..held_by("x", 100)
        };
        assert_eq!(decide(Some(&released), "me", at(100)), Decision::Acquire);
    }

    #[test]
    fn our_own_lease_is_renewed() {
        assert_eq!(
            decide(Some(&held_by("me", 90)), "me", at(100)),
            Decision::Renew
        );
    }

    #[test]
    fn a_valid_lease_of_another_replica_is_waited_for() {
        assert_eq!(
            decide(Some(&held_by("other", 90)), "me", at(100)),
            Decision::Wait {
                holder: "other".into(),
                expires: at(105)
            }
        );
        // At exactly renewTime + duration it is still valid.
        assert!(matches!(
            decide(Some(&held_by("other", 85)), "me", at(100)),
            Decision::Wait { .. }
        ));
    }

    #[test]
    fn an_expired_lease_of_another_replica_is_taken_over() {
        assert_eq!(
            decide(Some(&held_by("other", 84)), "me", at(100)),
            Decision::Acquire
        );
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_keeps_the_acquire_time() {
        let current = held_by("other", 50);
        let taken = next_spec(Some(&current), &Decision::Acquire, "me", at(100));
        assert_eq!(taken.holder_identity.as_deref(), Some("me"));
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(100))));
        assert_eq!(taken.lease_duration_seconds, Some(15));

        let renewed = next_spec(Some(&taken), &Decision::Renew, "me", at(102));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(100))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(102))));
        assert_eq!(renewed.lease_transitions, Some(4));
    }

    #[test]
    fn a_new_lease_starts_with_zero_transitions() {
        let spec = next_spec(None, &Decision::Acquire, "me", at(7));
        assert_eq!(spec.lease_transitions, Some(0));
        assert_eq!(spec.preferred_holder, None);
        assert_eq!(spec.strategy, None);
    }

    #[test]
    fn identity_is_never_empty() {
        assert!(!identity().is_empty());
    }
}
