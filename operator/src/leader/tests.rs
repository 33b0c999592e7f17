//! Tests of the election: the pure decision, and the loop against a fake Lease store.

use std::sync::Arc;

use k8s_openapi::jiff::SignedDuration;
use kube::core::Status;
use prometheus_client::registry::Registry;

use super::*;
use crate::metrics::encode;

const SECOND: Duration = Duration::from_secs(1);

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

/// Wall-clock times far behind and far ahead of ours, as a skewed holder would write them.
fn skewed_times() -> [Timestamp; 3] {
    let now = Timestamp::now();
    [
        at(1_000),
        now,
        now.checked_add(SignedDuration::from_hours(24 * 365 * 10))
            .unwrap(),
    ]
}

fn held_by(holder: &str, renewed: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(holder.to_string()),
        lease_duration_seconds: Some(15),
        acquire_time: Some(MicroTime(renewed)),
        renew_time: Some(MicroTime(renewed)),
        lease_transitions: Some(3),
        ..LeaseSpec::default()
    }
}

fn lease(spec: LeaseSpec, version: &str) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("lease".into()),
            resource_version: Some(version.into()),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
    }
}

fn seen(spec: LeaseSpec, at: Instant) -> Observed {
    Observed {
        spec,
        resource_version: Some("1".into()),
        at,
    }
}

fn wait(holder: &str, remaining: Duration) -> Decision {
    Decision::Wait {
        holder: holder.into(),
        remaining,
    }
}

#[test]
fn a_missing_or_released_lease_is_acquired() {
    let t0 = Instant::now();
    assert_eq!(decide("me", None, t0), Decision::Acquire);
    for holder in [None, Some(String::new())] {
        let released = LeaseSpec {
            holder_identity: holder,
            ..held_by("x", Timestamp::now())
        };
        assert_eq!(
            decide("me", Some(&seen(released, t0)), t0),
            Decision::Acquire
        );
    }
}

#[test]
fn our_own_lease_is_renewed_however_long_ago_it_changed() {
    let t0 = Instant::now();
    let ours = seen(held_by("me", at(1_000)), t0);
    assert_eq!(decide("me", Some(&ours), t0), Decision::Renew);
    assert_eq!(decide("me", Some(&ours), t0 + 60 * SECOND), Decision::Renew);
}

#[test]
fn another_replicas_lease_lasts_a_lease_duration_from_first_sight_whatever_its_times() {
    let t0 = Instant::now();
    for renewed in skewed_times() {
        let theirs = seen(held_by("other", renewed), t0);
        assert_eq!(decide("me", Some(&theirs), t0), wait("other", 15 * SECOND));
        assert_eq!(
            decide("me", Some(&theirs), t0 + 10 * SECOND),
            wait("other", 5 * SECOND)
        );
        // At exactly first sight + duration it is still valid.
        assert_eq!(
            decide("me", Some(&theirs), t0 + 15 * SECOND),
            wait("other", Duration::ZERO)
        );
        assert_eq!(
            decide(
                "me",
                Some(&theirs),
                t0 + 15 * SECOND + Duration::from_millis(1)
            ),
            Decision::Acquire,
            "renewTime {renewed}"
        );
    }
}

#[test]
fn the_lease_duration_comes_from_the_record() {
    let t0 = Instant::now();
    let short = LeaseSpec {
        lease_duration_seconds: Some(2),
        ..held_by("other", at(1_000))
    };
    assert_eq!(
        decide("me", Some(&seen(short.clone(), t0)), t0 + SECOND),
        wait("other", SECOND)
    );
    let unset = LeaseSpec {
        lease_duration_seconds: None,
        ..short.clone()
    };
    assert_eq!(
        decide("me", Some(&seen(unset, t0)), t0),
        wait("other", LEASE_DURATION)
    );
    let negative = LeaseSpec {
        lease_duration_seconds: Some(-5),
        ..short
    };
    assert_eq!(
        decide("me", Some(&seen(negative, t0)), t0 + SECOND),
        Decision::Acquire
    );
}

#[test]
fn reading_the_same_record_again_does_not_restart_the_lease_duration() {
    let t0 = Instant::now();
    let mut observer = Observer::default();
    let theirs = lease(held_by("other", at(1_000)), "7");
    observer.observe(Some(&theirs), t0);
    let again = observer.observe(Some(&theirs), t0 + 10 * SECOND).unwrap();
    assert_eq!(again.at, t0);
    assert_eq!(
        decide("me", Some(again), t0 + 16 * SECOND),
        Decision::Acquire
    );
    assert_eq!(observer.last().map(|o| o.at), Some(t0));
}

#[test]
fn any_change_of_the_record_restarts_the_lease_duration() {
    let t0 = Instant::now();
    let first = lease(held_by("other", at(1_000)), "7");
    let with_spec = |change: fn(&mut LeaseSpec)| {
        let mut changed = first.clone();
        if let Some(spec) = changed.spec.as_mut() {
            change(spec);
        }
        changed.metadata.resource_version = Some("8".into());
        changed
    };
    let changes = [
        // Even a renewTime going backwards proves the holder alive: only change counts.
        with_spec(|s| s.renew_time = Some(MicroTime(at(10)))),
        with_spec(|s| s.acquire_time = Some(MicroTime(at(2_000)))),
        with_spec(|s| s.lease_transitions = Some(4)),
        with_spec(|s| s.holder_identity = Some("third".into())),
        // A write that left the spec alone still changes the resourceVersion.
        Lease {
            metadata: ObjectMeta {
                resource_version: Some("8".into()),
                ..first.metadata.clone()
            },
            ..first.clone()
        },
    ];
    for changed in changes {
        let mut observer = Observer::default();
        observer.observe(Some(&first), t0);
        let observed = observer
            .observe(Some(&changed), t0 + 10 * SECOND)
            .unwrap()
            .clone();
        assert_eq!(observed.at, t0 + 10 * SECOND, "{changed:?}");
        let holder = observed.holder().to_string();
        assert_eq!(
            decide("me", Some(&observed), t0 + 16 * SECOND),
            wait(&holder, 9 * SECOND)
        );
        assert_eq!(
            decide("me", Some(&observed), t0 + 26 * SECOND),
            Decision::Acquire
        );
    }
}

#[test]
fn a_deleted_lease_is_forgotten() {
    let t0 = Instant::now();
    let mut observer = Observer::default();
    observer.observe(Some(&lease(held_by("other", at(1_000)), "1")), t0);
    assert_eq!(observer.observe(None, t0 + SECOND), None);
    assert_eq!(observer.last(), None);
    assert_eq!(decide("me", observer.last(), t0), Decision::Acquire);
}

#[test]
fn taking_over_counts_a_transition_and_renewing_keeps_the_acquire_time() {
    let current = held_by("other", at(50));
    let taken = next_spec(
        Some(&current),
        &Decision::Acquire,
        "me",
        at(100),
        LEASE_DURATION,
    );
    assert_eq!(taken.holder_identity.as_deref(), Some("me"));
    assert_eq!(taken.lease_transitions, Some(4));
    assert_eq!(taken.acquire_time, Some(MicroTime(at(100))));
    assert_eq!(taken.lease_duration_seconds, Some(15));

    let renewed = next_spec(
        Some(&taken),
        &Decision::Renew,
        "me",
        at(102),
        LEASE_DURATION,
    );
    assert_eq!(renewed.acquire_time, Some(MicroTime(at(100))));
    assert_eq!(renewed.renew_time, Some(MicroTime(at(102))));
    assert_eq!(renewed.lease_transitions, Some(4));
}

#[test]
fn a_new_lease_starts_with_zero_transitions() {
    let spec = next_spec(None, &Decision::Acquire, "me", at(7), LEASE_DURATION);
    assert_eq!(spec.lease_transitions, Some(0));
    assert_eq!(spec.preferred_holder, None);
    assert_eq!(spec.strategy, None);
}

#[test]
fn the_written_lease_duration_is_rounded_up_to_whole_seconds() {
    let duration = |d| next_spec(None, &Decision::Acquire, "me", at(7), d);
    assert_eq!(duration(Duration::ZERO).lease_duration_seconds, Some(1));
    assert_eq!(
        duration(Duration::from_millis(1_500)).lease_duration_seconds,
        Some(2)
    );
    assert_eq!(duration(15 * SECOND).lease_duration_seconds, Some(15));
}

#[test]
fn identity_is_never_empty() {
    assert!(!identity().is_empty());
}

#[test]
fn the_election_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    // Type-checked only: the operator runs these futures on a multi-threaded runtime.
    let _ = |election: &LeaderElection| {
        send(&election.acquire());
        send(&election.keep());
        send(&election.release());
    };
}

// The election loop against a fake API server, with real (short) durations.

/// Short durations in the real proportions: the holder gives up (400ms) well before its Lease
/// (1s, the shortest a Lease can state) expires for the followers.
const FAST: Timing = Timing {
    lease_duration: SECOND,
    renew_deadline: Duration::from_millis(400),
    retry_period: Duration::from_millis(50),
};
/// Headroom for a loaded machine in the bounds that only guard against hanging forever.
const SLACK: Duration = Duration::from_secs(3);

#[derive(Default)]
struct FakeState {
    lease: Option<Lease>,
    version: u64,
    gets: usize,
    replaces: usize,
    /// How many of the next GETs never answer.
    hang_gets: usize,
    /// Creates and replaces never answer.
    hang_writes: bool,
    /// GETs fail with a 500.
    fail_gets: bool,
    /// The holder "other" renews the Lease before every GET.
    other_renews: bool,
    /// The replica "other" takes the Lease just before our next replace.
    race_next_replace: bool,
}

/// An API server holding one Lease, with optimistic concurrency on the resourceVersion.
#[derive(Clone, Default)]
struct Fake(Arc<Mutex<FakeState>>);

impl Fake {
    fn with(spec: LeaseSpec) -> Self {
        let fake = Self::default();
        store(&mut fake.state(), lease(spec, "0"));
        fake
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.0.lock().unwrap()
    }

    fn spec(&self) -> LeaseSpec {
        let state = self.state();
        state.lease.as_ref().and_then(|l| l.spec.clone()).unwrap()
    }

    fn holder(&self) -> Option<String> {
        self.spec().holder_identity
    }
}

/// Stores `lease` as the API server does: with a new resourceVersion.
fn store(state: &mut FakeState, mut lease: Lease) -> Lease {
    state.version += 1;
    lease.metadata.resource_version = Some(state.version.to_string());
    state.lease = Some(lease.clone());
    lease
}

fn api_error(reason: &str, code: u16) -> kube::Error {
    kube::Error::Api(Status::failure(reason, reason).with_code(code).boxed())
}

impl LeaseStore for Fake {
    async fn get(&self, _name: &str) -> Result<Option<Lease>, kube::Error> {
        let hang = {
            let mut state = self.state();
            state.gets += 1;
            if state.fail_gets {
                return Err(api_error("InternalError", 500));
            }
            if state.other_renews
                && let Some(mut lease) = state.lease.clone()
                && let Some(spec) = lease.spec.as_mut()
                && spec.holder_identity.as_deref() == Some("other")
            {
                // Renewal times from a clock 50 years behind ours.
                spec.renew_time = Some(MicroTime(at(1_000 + state.gets as i64)));
                store(&mut state, lease);
            }
            let hang = state.hang_gets > 0;
            state.hang_gets = state.hang_gets.saturating_sub(1);
            hang
        };
        if hang {
            std::future::pending::<()>().await;
        }
        Ok(self.state().lease.clone())
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, kube::Error> {
        let hang = self.state().hang_writes;
        if hang {
            std::future::pending::<()>().await;
        }
        let mut state = self.state();
        if state.lease.is_some() {
            return Err(api_error("AlreadyExists", 409));
        }
        Ok(store(&mut state, lease.clone()))
    }

    async fn replace(&self, _name: &str, lease: &Lease) -> Result<Lease, kube::Error> {
        let hang = {
            let mut state = self.state();
            state.replaces += 1;
            state.hang_writes
        };
        if hang {
            std::future::pending::<()>().await;
        }
        let mut state = self.state();
        if std::mem::take(&mut state.race_next_replace) {
            let mut theirs = state.lease.clone().unwrap();
            theirs.spec = Some(LeaseSpec {
                lease_duration_seconds: Some(1),
                ..held_by("other", Timestamp::now())
            });
            store(&mut state, theirs);
        }
        let Some(current) = state.lease.as_ref() else {
            return Err(api_error("NotFound", 404));
        };
        if current.metadata.resource_version != lease.metadata.resource_version {
            return Err(api_error("Conflict", 409));
        }
        Ok(store(&mut state, lease.clone()))
    }
}

fn election(fake: &Fake, identity: &str) -> (Registry, LeaderElection<Fake>) {
    let (registry, metrics) = Metrics::registry();
    let mut election =
        LeaderElection::from_store(fake.clone(), "ns", "lease", identity.into(), metrics);
    election.timing = FAST;
    (registry, election)
}

async fn leading(fake: &Fake, identity: &str) -> (Registry, LeaderElection<Fake>) {
    let (registry, election) = election(fake, identity);
    tokio::time::timeout(SLACK, election.acquire())
        .await
        .expect("acquires a free Lease");
    assert!(is_leader(&registry));
    (registry, election)
}

fn is_leader(registry: &Registry) -> bool {
    let text = encode(registry);
    // Whole lines: the HELP line holds "agentgateway_operator_leader 1 while ...".
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix("agentgateway_operator_leader "))
        .unwrap_or_else(|| panic!("no leader gauge in {text}"));
    value == "1"
}

/// Runs `keep()`, which must return `LeaseLost` before a follower could take over.
async fn steps_down_in_time(election: &LeaderElection<Fake>, registry: &Registry) -> String {
    let start = Instant::now();
    let lost = tokio::time::timeout(SLACK, election.keep())
        .await
        .expect("keep() returns although renewals never succeed");
    // Followers may take over a lease duration after they saw the last renewal.
    assert!(
        start.elapsed() < FAST.lease_duration,
        "stepped down only after {:?}",
        start.elapsed()
    );
    assert!(!is_leader(registry));
    match lost {
        RunError::LeaseLost { reason, .. } => reason,
        other => panic!("unexpected {other:?}"),
    }
}

async fn takes_over_a_lease_duration_after_first_sight(renewed: Timestamp) {
    let fake = Fake::with(LeaseSpec {
        lease_duration_seconds: Some(1),
        ..held_by("other", renewed)
    });
    let (registry, me) = election(&fake, "me");
    let start = Instant::now();
    tokio::time::timeout(SECOND + SLACK, me.acquire())
        .await
        .expect("takes over once the record did not change for a lease duration");
    assert!(
        start.elapsed() >= SECOND,
        "took over after {:?} with renewTime {renewed}",
        start.elapsed()
    );
    let spec = fake.spec();
    assert_eq!(spec.holder_identity.as_deref(), Some("me"));
    assert_eq!(spec.lease_transitions, Some(4));
    assert!(is_leader(&registry));
}

#[tokio::test]
async fn a_follower_waits_a_lease_duration_although_the_renew_time_is_far_in_the_past() {
    takes_over_a_lease_duration_after_first_sight(skewed_times()[0]).await;
}

#[tokio::test]
async fn a_follower_takes_over_although_the_renew_time_is_far_in_the_future() {
    takes_over_a_lease_duration_after_first_sight(skewed_times()[2]).await;
}

#[tokio::test]
async fn a_follower_never_takes_over_from_a_holder_that_keeps_renewing() {
    let fake = Fake::with(LeaseSpec {
        lease_duration_seconds: Some(1),
        ..held_by("other", at(1_000))
    });
    fake.state().other_renews = true;
    let (registry, me) = election(&fake, "me");
    // Well past a lease duration, with renewTimes 50 years old by our clock.
    let waited = tokio::time::timeout(Duration::from_millis(2_500), me.acquire()).await;
    assert!(waited.is_err(), "took over a Lease that was being renewed");
    assert_eq!(fake.holder().as_deref(), Some("other"));
    assert!(fake.state().gets > 10);
    assert!(!is_leader(&registry));
}

#[tokio::test]
async fn a_free_lease_is_created_and_renewed_every_retry_period() {
    let fake = Fake::default();
    let (registry, me) = leading(&fake, "me").await;
    let acquired = fake.spec();
    assert_eq!(acquired.lease_transitions, Some(0));
    assert_eq!(acquired.lease_duration_seconds, Some(1));

    let kept = tokio::time::timeout(Duration::from_millis(600), me.keep()).await;
    assert!(kept.is_err(), "lost the Lease: {kept:?}");
    assert!(
        fake.state().replaces >= 3,
        "{} renewals",
        fake.state().replaces
    );
    let renewed = fake.spec();
    assert_eq!(renewed.holder_identity.as_deref(), Some("me"));
    assert_eq!(renewed.acquire_time, acquired.acquire_time);
    assert_eq!(renewed.lease_transitions, Some(0));
    assert!(is_leader(&registry));
}

#[tokio::test]
async fn the_holder_steps_down_when_a_replace_hangs() {
    let fake = Fake::default();
    let (registry, me) = leading(&fake, "me").await;
    fake.state().hang_writes = true;
    let reason = steps_down_in_time(&me, &registry).await;
    assert!(reason.contains("not renewed"), "{reason}");
}

#[tokio::test]
async fn the_holder_steps_down_when_a_get_hangs() {
    let fake = Fake::default();
    let (registry, me) = leading(&fake, "me").await;
    fake.state().hang_gets = usize::MAX;
    let reason = steps_down_in_time(&me, &registry).await;
    assert!(reason.contains("not renewed"), "{reason}");
}

#[tokio::test]
async fn the_holder_steps_down_when_renewals_keep_failing() {
    let fake = Fake::default();
    let (registry, me) = leading(&fake, "me").await;
    fake.state().fail_gets = true;
    let reason = steps_down_in_time(&me, &registry).await;
    assert!(reason.contains("not renewed"), "{reason}");
    assert!(fake.state().gets > 3, "retried every retry period");
}

#[tokio::test]
async fn the_holder_steps_down_when_another_replica_holds_the_lease() {
    let fake = Fake::default();
    let (registry, me) = leading(&fake, "me").await;
    {
        let mut state = fake.state();
        let theirs = lease(held_by("other", Timestamp::now()), "0");
        store(&mut state, theirs);
    }
    let reason = steps_down_in_time(&me, &registry).await;
    assert!(reason.contains("other"), "{reason}");
}

#[tokio::test]
async fn a_hung_acquire_attempt_times_out_and_is_retried() {
    let fake = Fake::default();
    fake.state().hang_gets = 1;
    let (registry, me) = election(&fake, "me");
    tokio::time::timeout(FAST.renew_deadline + SLACK, me.acquire())
        .await
        .expect("the hung attempt was abandoned");
    assert_eq!(fake.state().gets, 2);
    assert!(is_leader(&registry));
}

#[tokio::test]
async fn a_hung_api_server_delays_acquire_but_attempts_go_on() {
    let fake = Fake::default();
    fake.state().hang_gets = usize::MAX;
    let (registry, me) = election(&fake, "me");
    let waited = tokio::time::timeout(Duration::from_millis(1_500), me.acquire()).await;
    assert!(waited.is_err());
    assert!(fake.state().gets >= 2, "{} attempts", fake.state().gets);
    assert!(!is_leader(&registry));
}

#[tokio::test]
async fn a_replica_that_loses_the_race_for_a_free_lease_follows() {
    let fake = Fake::with(LeaseSpec {
        holder_identity: None,
        ..held_by("old", at(1_000))
    });
    fake.state().race_next_replace = true;
    let (registry, me) = election(&fake, "me");
    // "other" writes between our read and our replace: ours gets a 409, and the next read
    // finds a Lease of "other" that stays valid for a lease duration (1s).
    let waited = tokio::time::timeout(Duration::from_millis(500), me.acquire()).await;
    assert!(waited.is_err(), "took the Lease despite losing the race");
    assert_eq!(fake.holder().as_deref(), Some("other"));
    assert_eq!(fake.state().replaces, 1);
    assert!(!is_leader(&registry));
}

#[tokio::test]
async fn a_released_lease_is_taken_over_at_once() {
    let fake = Fake::default();
    let (registry, first) = leading(&fake, "first").await;
    first.release().await;
    assert!(!is_leader(&registry));
    let released = fake.spec();
    assert_eq!(released.holder_identity, None);
    assert_eq!(released.lease_duration_seconds, Some(1));

    let (_, second) = election(&fake, "second");
    let start = Instant::now();
    tokio::time::timeout(SLACK, second.acquire())
        .await
        .expect("takes over a released Lease");
    assert!(start.elapsed() < FAST.lease_duration);
    let taken = fake.spec();
    assert_eq!(taken.holder_identity.as_deref(), Some("second"));
    assert_eq!(taken.lease_transitions, Some(1));
}

#[tokio::test]
async fn release_does_not_hang_on_a_hung_api_server() {
    let fake = Fake::default();
    let (registry, me) = leading(&fake, "me").await;
    fake.state().hang_writes = true;
    tokio::time::timeout(FAST.renew_deadline + SLACK, me.release())
        .await
        .expect("release() gives up");
    assert!(!is_leader(&registry));
}
