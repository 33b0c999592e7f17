//! Leader election with a `coordination.k8s.io/v1` Lease, with the semantics of client-go's
//! `tools/leaderelection`:
//!
//! - **Expiry is measured on this replica's own clock.** The Lease's `renewTime` was written with
//!   the holder's wall clock, which may be skewed against ours, so it is never compared with our
//!   clock. Instead each replica remembers the last Lease record it read (holder, acquire and
//!   renew times, transitions, duration and resourceVersion) and the local monotonic [`Instant`]
//!   at which it first read that record (client-go's `observedRecord` and `observedTime`). A Lease
//!   held by another replica is valid until its `leaseDurationSeconds` have passed since then: a
//!   follower that first sees a Lease waits a full lease duration before taking it over, however
//!   old or new its `renewTime` looks, and a holder that keeps renewing keeps changing the record,
//!   so it is never taken over.
//! - **The holder steps down in time.** It renews every [`RETRY_PERIOD`]. Each renewal (the GET
//!   and the replace) runs under a timeout that ends [`RENEW_DEADLINE`] after the last successful
//!   renewal started, and [`LeaderElection::keep`] returns [`RunError::LeaseLost`] once it ends,
//!   even when the API server never answers. A renewal's write lands after the renewal started, so
//!   every follower reads it later still and waits a lease duration from then: the holder has
//!   stopped [`LEASE_DURATION`] − [`RENEW_DEADLINE`] before any follower may take over.
//! - **Races have one winner.** Every write is a replace with the resourceVersion that was read,
//!   so of two replicas racing for an expired Lease exactly one wins (the other gets a 409).
//! - **A hung API server delays, never wedges.** Each attempt of [`LeaderElection::acquire`] and
//!   [`LeaderElection::release`] is bounded by a timeout too.
//!
//! The decision is pure ([`Observer`], [`decide`], [`next_spec`]) and the API calls go through
//! [`LeaseStore`], so the election loop is tested against a fake.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Api;

use crate::apply::post_params;
use crate::error::RunError;
use crate::metrics::Metrics;

/// How long a Lease stays valid after a replica saw it change.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews, and how often a follower retries.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);
/// The holder gives up leading when it could not renew for this long, well before the Lease
/// expires and another replica may take over.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// The durations the election runs with: the public constants, except in tests, which need
/// milliseconds (tokio's `test-util` clock is not available to this crate).
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// Written into the Lease as `leaseDurationSeconds`, rounded up to whole seconds.
    lease_duration: Duration,
    /// How long the holder may go without a successful renewal; also bounds every acquire and
    /// release attempt. Must be shorter than `lease_duration`.
    renew_deadline: Duration,
    /// The pause between two renewals, or between two attempts to acquire.
    retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: LEASE_DURATION,
            renew_deadline: RENEW_DEADLINE,
            retry_period: RETRY_PERIOD,
        }
    }
}

/// The API calls the election makes on its Lease. Implemented for [`Api<Lease>`]; the tests
/// implement it with a fake so that the election loop itself is tested.
pub trait LeaseStore: Send + Sync {
    /// Reads the Lease `name`; `None` when there is none.
    fn get(&self, name: &str) -> impl Future<Output = Result<Option<Lease>, kube::Error>> + Send;
    /// Creates `lease`; fails with a 409 (AlreadyExists) when another replica created it first.
    fn create(&self, lease: &Lease) -> impl Future<Output = Result<Lease, kube::Error>> + Send;
    /// Replaces the Lease `name` with `lease`, which carries the resourceVersion that was read:
    /// fails with a 409 (Conflict) when anyone wrote the Lease since.
    fn replace(
        &self,
        name: &str,
        lease: &Lease,
    ) -> impl Future<Output = Result<Lease, kube::Error>> + Send;
}

impl LeaseStore for Api<Lease> {
    async fn get(&self, name: &str) -> Result<Option<Lease>, kube::Error> {
        self.get_opt(name).await
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, kube::Error> {
        Api::create(self, &post_params(), lease).await
    }

    async fn replace(&self, name: &str, lease: &Lease) -> Result<Lease, kube::Error> {
        Api::replace(self, name, &post_params(), lease).await
    }
}

/// A Lease record as this replica last read it, and when it first read that record.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The Lease's spec; a Lease without one reads as the default, which nobody holds.
    pub spec: LeaseSpec,
    /// The Lease's resourceVersion: any write changes it, even one that left the spec alone.
    pub resource_version: Option<String>,
    /// When this replica first read this record, on its own monotonic clock.
    pub at: Instant,
}

impl Observed {
    /// How long the record stays valid after [`Observed::at`]: its `leaseDurationSeconds`, or
    /// [`LEASE_DURATION`] when unset. A negative duration counts as none.
    pub fn lease_duration(&self) -> Duration {
        self.spec
            .lease_duration_seconds
            .map_or(LEASE_DURATION, |seconds| {
                Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
            })
    }

    /// The holder's identity, empty when nobody holds the Lease.
    pub fn holder(&self) -> &str {
        self.spec.holder_identity.as_deref().unwrap_or_default()
    }
}

/// Remembers the last Lease record read and when it changed, as client-go's `observedRecord` and
/// `observedTime` do.
#[derive(Debug, Default)]
pub struct Observer {
    last: Option<Observed>,
}

impl Observer {
    /// Notes `lease` (`None`: there is none) as read at `now` and returns the record with the
    /// instant it was first read. That instant moves only when the record changed: a holder proves
    /// it is alive by changing the record, never by the time it writes into it.
    pub fn observe(&mut self, lease: Option<&Lease>, now: Instant) -> Option<&Observed> {
        let Some(lease) = lease else {
            self.last = None;
            return None;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let resource_version = lease.metadata.resource_version.clone();
        let changed = self
            .last
            .as_ref()
            .is_none_or(|last| last.spec != spec || last.resource_version != resource_version);
        if changed {
            self.last = Some(Observed {
                spec,
                resource_version,
                at: now,
            });
        }
        self.last.as_ref()
    }

    /// The last record read, if there was a Lease.
    pub fn last(&self) -> Option<&Observed> {
        self.last.as_ref()
    }
}

/// What to do with the Lease as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or its holder did not change it for a lease duration: take it.
    Acquire,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds a valid Lease.
    Wait {
        /// The holder's identity.
        holder: String,
        /// How long until the Lease expires, unless its record changes before.
        remaining: Duration,
    },
}

/// Decides what `identity` may do at `now` with the Lease as `observed` (`None` when there is no
/// Lease). Another replica's Lease expires a lease duration after this replica first saw its
/// current record (it is still valid at exactly that instant); the wall-clock times in the Lease
/// play no part, since they come from another node's clock.
pub fn decide(identity: &str, observed: Option<&Observed>, now: Instant) -> Decision {
    let Some(observed) = observed else {
        return Decision::Acquire;
    };
    let holder = observed.holder();
    if holder.is_empty() {
        return Decision::Acquire;
    }
    if holder == identity {
        return Decision::Renew;
    }
    let elapsed = now.saturating_duration_since(observed.at);
    match observed.lease_duration().checked_sub(elapsed) {
        Some(remaining) => Decision::Wait {
            holder: holder.to_string(),
            remaining,
        },
        None => Decision::Acquire,
    }
}

/// `duration` as `leaseDurationSeconds`: rounded up, and at least a second, so that followers
/// never wait less than the holder counts on.
fn lease_seconds(duration: Duration) -> i32 {
    let seconds = duration
        .as_secs()
        .saturating_add(u64::from(duration.subsec_nanos() > 0));
    i32::try_from(seconds).unwrap_or(i32::MAX).max(1)
}

/// The spec to write for `decision` (`Acquire` or `Renew`) over the `current` one, at the wall
/// time `now` (informational only: no replica relies on it), promising `lease_duration`.
pub fn next_spec(
    current: Option<&LeaseSpec>,
    decision: &Decision,
    identity: &str,
    now: Timestamp,
    lease_duration: Duration,
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
        lease_duration_seconds: Some(lease_seconds(lease_duration)),
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
    /// Someone else holds it, for `remaining` unless it renews.
    Following { holder: String, remaining: Duration },
    /// Our write lost a race; read again.
    Conflict,
}

/// What the election remembers between attempts.
#[derive(Debug, Default)]
struct State {
    observer: Observer,
    /// When the last successful write of ours started: the renew deadline counts from there,
    /// because the write (which followers count from) landed later.
    renewed: Option<Instant>,
}

/// Leader election over one Lease, by default through the Kubernetes API.
pub struct LeaderElection<S = Api<Lease>> {
    store: S,
    owner: Option<OwnerReference>,
    name: String,
    namespace: String,
    identity: String,
    metrics: Metrics,
    timing: Timing,
    state: Mutex<State>,
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
        Self::from_store(
            Api::namespaced(client, namespace),
            namespace,
            name,
            identity,
            metrics,
        )
    }
}

impl<S: LeaseStore> LeaderElection<S> {
    /// Election over the Lease `namespace/name` as `identity`, read and written through `store`.
    pub fn from_store(
        store: S,
        namespace: &str,
        name: &str,
        identity: String,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            owner: None,
            name: name.to_string(),
            namespace: namespace.to_string(),
            identity,
            metrics,
            timing: Timing::default(),
            state: Mutex::new(State::default()),
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
            // A hung API server must not wedge the follower: the attempt is abandoned (and the
            // request dropped) after the renew deadline, and retried.
            match tokio::time::timeout(self.timing.renew_deadline, self.attempt()).await {
                Ok(Ok(Attempt::Leading)) => {
                    tracing::info!(lease = %self.name, namespace = %self.namespace, identity = %self.identity, "acquired the leader-election lease");
                    self.metrics.set_leader(true);
                    return;
                }
                Ok(Ok(Attempt::Following { holder, remaining })) => {
                    if waiting_for.as_ref() != Some(&holder) {
                        tracing::info!(lease = %self.name, namespace = %self.namespace, holder = %holder, expires_in = ?remaining, "another replica leads; standing by until its lease expires");
                        waiting_for = Some(holder);
                    }
                }
                Ok(Ok(Attempt::Conflict)) => continue,
                Ok(Err(error)) => {
                    tracing::warn!(lease = %self.name, namespace = %self.namespace, error = %error, "failed to read or write the leader-election lease");
                }
                Err(_) => {
                    tracing::warn!(lease = %self.name, namespace = %self.namespace, timeout = ?self.timing.renew_deadline, "the API server did not answer in time; retrying");
                }
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews the Lease every retry period until leadership is lost, and says why: another
    /// replica holds the Lease, or no renewal succeeded within the renew deadline (also when the
    /// API server hangs).
    pub async fn keep(&self) -> RunError {
        // Without a successful acquire to count from, count from now.
        let entered = Instant::now();
        loop {
            let renewed = self.state().renewed.unwrap_or(entered);
            let left = self.timing.renew_deadline.saturating_sub(renewed.elapsed());
            // Wake up for the deadline even if it comes before the next renewal is due.
            tokio::time::sleep(self.timing.retry_period.min(left)).await;
            let left = self.timing.renew_deadline.saturating_sub(renewed.elapsed());
            if left.is_zero() {
                return self.lost(self.missed_deadline());
            }
            // The attempt may only run until the deadline: a reply after it is worthless, since
            // the controllers must have stopped by then.
            match tokio::time::timeout(left, self.attempt()).await {
                Ok(Ok(Attempt::Leading)) => {
                    tracing::trace!(lease = %self.name, "renewed the leader-election lease");
                }
                Ok(Ok(Attempt::Conflict)) => {
                    tracing::debug!(lease = %self.name, "the leader-election lease changed while renewing it; reading it again");
                }
                Ok(Ok(Attempt::Following { holder, .. })) => {
                    return self.lost(format!("replica {holder} holds it now"));
                }
                Ok(Err(error)) => {
                    tracing::warn!(lease = %self.name, error = %error, "failed to renew the leader-election lease");
                }
                Err(_) => return self.lost(self.missed_deadline()),
            }
        }
    }

    /// Gives the Lease up so another replica takes over at once instead of after it expires.
    pub async fn release(&self) {
        self.metrics.set_leader(false);
        self.state().renewed = None;
        // Shutting down must not hang on an API server that does not answer.
        match tokio::time::timeout(self.timing.renew_deadline, self.give_up()).await {
            Ok(Ok(true)) => {
                tracing::info!(lease = %self.name, "released the leader-election lease")
            }
            Ok(Ok(false)) => {
                tracing::debug!(lease = %self.name, "not holding the leader-election lease; nothing to release");
            }
            Ok(Err(error)) => {
                tracing::warn!(lease = %self.name, error = %error, "failed to release the leader-election lease");
            }
            Err(_) => {
                tracing::warn!(lease = %self.name, timeout = ?self.timing.renew_deadline, "timed out releasing the leader-election lease");
            }
        }
    }

    /// Clears the holder of the Lease if it is us; says whether it was.
    async fn give_up(&self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.store.get(&self.name).await? else {
            return Ok(false);
        };
        let held = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.identity.as_str());
        if !held {
            return Ok(false);
        }
        // No holder means followers take it at once; the short duration covers clients that
        // still look at the duration of an unheld Lease.
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..lease.spec.unwrap_or_default()
        });
        self.store.replace(&self.name, &lease).await?;
        Ok(true)
    }

    fn missed_deadline(&self) -> String {
        format!("not renewed within {:?}", self.timing.renew_deadline)
    }

    fn lost(&self, reason: String) -> RunError {
        self.metrics.set_leader(false);
        self.state().renewed = None;
        tracing::warn!(lease = %self.name, namespace = %self.namespace, reason = %reason, "lost the leader-election lease");
        RunError::LeaseLost {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            reason,
        }
    }

    /// The remembered state. It only caches observations, each written in one step, so a panic
    /// elsewhere while it was locked cannot have left it half-updated: poisoning is ignored.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the Lease and creates, takes over or renews it when [`decide`] says so.
    async fn attempt(&self) -> Result<Attempt, kube::Error> {
        let started = Instant::now();
        let current = self.store.get(&self.name).await?;
        let decision = {
            let now = Instant::now();
            let mut state = self.state();
            decide(
                &self.identity,
                state.observer.observe(current.as_ref(), now),
                now,
            )
        };
        if let Decision::Wait { holder, remaining } = decision {
            return Ok(Attempt::Following { holder, remaining });
        }
        let now = Timestamp::now();
        let written = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        namespace: Some(self.namespace.clone()),
                        owner_references: self.owner.clone().map(|owner| vec![owner]),
                        ..ObjectMeta::default()
                    },
                    spec: Some(next_spec(
                        None,
                        &decision,
                        &self.identity,
                        now,
                        self.timing.lease_duration,
                    )),
                };
                self.store.create(&lease).await
            }
            Some(mut lease) => {
                // The read resourceVersion stays in the metadata: the replace fails with 409 if
                // anyone wrote the Lease since.
                lease.spec = Some(next_spec(
                    lease.spec.as_ref(),
                    &decision,
                    &self.identity,
                    now,
                    self.timing.lease_duration,
                ));
                self.store.replace(&self.name, &lease).await
            }
        };
        match written {
            Ok(lease) => {
                let mut state = self.state();
                state.observer.observe(Some(&lease), Instant::now());
                state.renewed = Some(started);
                Ok(Attempt::Leading)
            }
            Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                Ok(Attempt::Conflict)
            }
            Err(error) => Err(error),
        }
    }
}

#[cfg(test)]
mod tests;
