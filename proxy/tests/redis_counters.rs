//! `SharedCounters` against a real `redis-server` (Debian's `redis-server` package; `.ci/run`
//! installs it): replicas share a limit exactly, admissions are all-or-nothing, corrections never
//! recreate an ended window, passwords work and never leak, and a Redis that goes away costs a
//! call at most its timeout and is reconnected when it comes back. Each test runs its own server
//! on a free loopback port.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use agentgateway_crds::proxy_config::policy::RatePeriod;
use agentgateway_proxy::governance::counter::{Adjustment, Admission, CounterCheck};
use agentgateway_proxy::governance::shared::{RedisSettings, SharedCounters, SharedError};
use agentgateway_proxy::governance::window::{Window, counter_key, epoch_millis};
use common::redis::{RedisServer, free_port};

/// Generous: these tests check behavior, not latency, on a machine shared with builds.
const TIMEOUT: Duration = Duration::from_secs(2);

fn counters(url: String, password: Option<&str>, timeout: Duration) -> SharedCounters {
    SharedCounters::new(RedisSettings {
        url,
        password: password.map(str::to_owned),
        timeout,
    })
    .unwrap()
}

fn check(key: &str, limit: u64, reserve: u64, ttl: Duration) -> CounterCheck {
    CounterCheck {
        key: key.to_owned(),
        limit,
        need: reserve,
        reserve,
        ttl,
    }
}

fn adjust(key: &str, delta: i64) -> Adjustment {
    Adjustment {
        key: key.to_owned(),
        delta,
    }
}

fn get(con: &mut redis::Connection, key: &str) -> Option<i64> {
    redis::cmd("GET").arg(key).query(con).unwrap()
}

fn pttl(con: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(con).unwrap()
}

fn now_ms() -> u64 {
    epoch_millis(SystemTime::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_limit_exactly() {
    let server = RedisServer::start();
    let replicas = [
        counters(server.url(), None, TIMEOUT),
        counters(server.url(), None, TIMEOUT),
    ];
    let window = Window::rate(RatePeriod::Hour, now_ms());
    let key = Arc::new(counter_key("ns/gold/global/0", "alice", window.start_ms));
    let ttl = window.ttl(now_ms());

    let mut tasks = Vec::new();
    for replica in &replicas {
        for _ in 0..50 {
            let (replica, key) = (replica.clone(), Arc::clone(&key));
            tasks.push(tokio::spawn(async move {
                replica.admit(&[check(&key, 200, 10, ttl)]).await.unwrap()
            }));
        }
    }
    let mut admitted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Admission::Admitted { used } => {
                admitted += 1;
                assert!(used[0] <= 200 && used[0] % 10 == 0, "{used:?}");
            }
            Admission::Rejected { counter, used } => {
                assert_eq!(counter, 0);
                assert!(used[0] > 190, "rejected with room left: {used:?}");
            }
        }
    }
    assert_eq!(admitted, 20, "100 requests of 10 against a limit of 200");
    assert_eq!(get(&mut server.inspect(), &key), Some(200));
}

#[tokio::test]
async fn a_rejected_admission_writes_nothing() {
    let server = RedisServer::start();
    let shared = counters(server.url(), None, TIMEOUT);
    let mut con = server.inspect();
    let ttl = Duration::from_secs(60);

    assert_eq!(
        shared.admit(&[check("a", 100, 30, ttl)]).await.unwrap(),
        Admission::Admitted { used: vec![30] }
    );
    // "a" and "c" have room, "b" has not: none of them is written, "c" is not even created.
    let rejected = shared
        .admit(&[
            check("a", 100, 10, ttl),
            check("b", 5, 10, ttl),
            check("c", 100, 10, ttl),
        ])
        .await
        .unwrap();
    assert_eq!(
        rejected,
        Admission::Rejected {
            counter: 1,
            used: vec![30, 0, 0]
        }
    );
    assert_eq!(get(&mut con, "a"), Some(30));
    assert_eq!(get(&mut con, "b"), None);
    assert_eq!(get(&mut con, "c"), None);

    // All admit: each gets its reservation.
    assert_eq!(
        shared
            .admit(&[check("a", 100, 10, ttl), check("c", 100, 10, ttl)])
            .await
            .unwrap(),
        Admission::Admitted { used: vec![40, 10] }
    );

    // A budget check (need 1, reserve 0) admits while spend < budget, and creates its counter
    // (with its expiry) so that the spend recorded later finds it.
    let budget = CounterCheck {
        key: "spend".to_owned(),
        limit: 1_000,
        need: 1,
        reserve: 0,
        ttl,
    };
    assert_eq!(
        shared.admit(std::slice::from_ref(&budget)).await.unwrap(),
        Admission::Admitted { used: vec![0] }
    );
    assert_eq!(get(&mut con, "spend"), Some(0));
    assert!(pttl(&mut con, "spend") > 0);
    shared.adjust(&[adjust("spend", 1_000)]).await.unwrap();
    assert_eq!(
        shared.admit(std::slice::from_ref(&budget)).await.unwrap(),
        Admission::Rejected {
            counter: 0,
            used: vec![1_000]
        }
    );
}

#[tokio::test]
async fn adjust_corrects_a_reservation_and_keeps_the_window() {
    let server = RedisServer::start();
    let shared = counters(server.url(), None, TIMEOUT);
    let mut con = server.inspect();
    let ttl = Duration::from_secs(60);

    shared.admit(&[check("t", 1_000, 100, ttl)]).await.unwrap();
    let ttl_before = pttl(&mut con, "t");
    shared.adjust(&[adjust("t", -60)]).await.unwrap();
    assert_eq!(get(&mut con, "t"), Some(40));
    shared.adjust(&[adjust("t", 30)]).await.unwrap();
    assert_eq!(get(&mut con, "t"), Some(70));
    shared.adjust(&[adjust("t", -500)]).await.unwrap();
    assert_eq!(get(&mut con, "t"), Some(0), "never below 0");
    let ttl_after = pttl(&mut con, "t");
    assert!(
        ttl_after > 0 && ttl_after <= ttl_before,
        "the expiry is kept: {ttl_before} then {ttl_after}"
    );
    // Room freed by a correction is admitted again.
    assert_eq!(
        shared
            .admit(&[check("t", 1_000, 1_000, ttl)])
            .await
            .unwrap(),
        Admission::Admitted { used: vec![1_000] }
    );

    // A counter that does not exist (or no longer does) is not created.
    shared
        .adjust(&[adjust("never", 5), adjust("t", -1)])
        .await
        .unwrap();
    assert_eq!(get(&mut con, "never"), None);
    assert_eq!(get(&mut con, "t"), Some(999));

    shared
        .admit(&[check("short", 10, 5, Duration::from_millis(150))])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    shared.adjust(&[adjust("short", 3)]).await.unwrap();
    assert_eq!(
        get(&mut con, "short"),
        None,
        "an ended window is not recreated"
    );
}

#[tokio::test]
async fn a_new_counter_expires_when_its_window_ends() {
    let server = RedisServer::start();
    let shared = counters(server.url(), None, TIMEOUT);
    let mut con = server.inspect();

    // The expiry is the window's remaining time, set once.
    let now = now_ms();
    let minute = Window::rate(RatePeriod::Minute, now);
    let key = counter_key("ns/p/global/0", "ns/route", minute.start_ms);
    let ttl = minute.ttl(now);
    shared.admit(&[check(&key, 10, 1, ttl)]).await.unwrap();
    let first = pttl(&mut con, &key);
    let expected = i64::try_from(ttl.as_millis()).unwrap();
    assert!(
        first <= expected && first > expected - 500,
        "PTTL {first} for a window ending in {expected} ms"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;
    shared
        .admit(&[check(&key, 10, 1, Duration::from_secs(3_600))])
        .await
        .unwrap();
    assert!(
        pttl(&mut con, &key) < first,
        "a later admission does not extend the window"
    );

    // A one-second window: full until it ends, then counted afresh.
    let mut now = now_ms();
    if Window::rate(RatePeriod::Second, now).remaining(now) < Duration::from_millis(300) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        now = now_ms();
    }
    let second = Window::rate(RatePeriod::Second, now);
    let key = counter_key("ns/p/global/1", "alice", second.start_ms);
    let full = check(&key, 3, 3, second.ttl(now));
    assert!(
        shared
            .admit(std::slice::from_ref(&full))
            .await
            .unwrap()
            .admitted()
    );
    assert!(
        !shared
            .admit(std::slice::from_ref(&full))
            .await
            .unwrap()
            .admitted()
    );
    tokio::time::sleep(second.remaining(now_ms()) + Duration::from_millis(100)).await;
    assert_eq!(get(&mut con, &key), None, "the window's counter expired");
    let now = now_ms();
    let next = Window::rate(RatePeriod::Second, now);
    assert!(next.start_ms >= second.end_ms);
    let next_key = counter_key("ns/p/global/1", "alice", next.start_ms);
    assert_eq!(
        shared
            .admit(&[check(&next_key, 3, 3, next.ttl(now))])
            .await
            .unwrap(),
        Admission::Admitted { used: vec![3] }
    );
}

#[tokio::test]
async fn a_password_protected_redis() {
    const PASSWORD: &str = "correct-horse-battery";
    const WRONG: &str = "wrong-staple";
    let server = RedisServer::start_on(free_port(), Some(PASSWORD));
    let ttl = Duration::from_secs(60);
    let probe = [check("k", 10, 1, ttl)];

    let unavailable = |result: Result<Admission, SharedError>| match result {
        Err(error @ SharedError::Unavailable { .. }) => error.to_string(),
        other => panic!("expected Unavailable, got {other:?}"),
    };

    let missing = unavailable(counters(server.url(), None, TIMEOUT).admit(&probe).await);
    assert!(!missing.contains(PASSWORD), "{missing}");

    let wrong = unavailable(
        counters(server.url(), Some(WRONG), TIMEOUT)
            .admit(&probe)
            .await,
    );
    assert!(
        !wrong.contains(WRONG) && !wrong.contains(PASSWORD),
        "{wrong}"
    );
    let wrong_in_url = format!("redis://:{WRONG}@127.0.0.1:{}", server.port);
    let wrong = unavailable(
        counters(wrong_in_url.clone(), None, TIMEOUT)
            .admit(&probe)
            .await,
    );
    assert!(!wrong.contains(WRONG), "{wrong}");

    // The right password, given apart, in the URL, or overriding a wrong one in the URL.
    let apart = counters(server.url(), Some(PASSWORD), TIMEOUT);
    assert_eq!(
        apart.admit(&probe).await.unwrap(),
        Admission::Admitted { used: vec![1] }
    );
    let in_url = format!("redis://:{PASSWORD}@127.0.0.1:{}", server.port);
    assert_eq!(
        counters(in_url.clone(), None, TIMEOUT)
            .admit(&probe)
            .await
            .unwrap(),
        Admission::Admitted { used: vec![2] }
    );
    let overridden = counters(wrong_in_url, Some(PASSWORD), TIMEOUT);
    assert_eq!(
        overridden.admit(&probe).await.unwrap(),
        Admission::Admitted { used: vec![3] }
    );

    for shown in [
        format!("{overridden:?}"),
        format!(
            "{:?}",
            RedisSettings {
                url: in_url,
                password: Some(PASSWORD.to_owned()),
                timeout: TIMEOUT,
            }
        ),
    ] {
        assert!(
            !shown.contains(PASSWORD) && !shown.contains(WRONG),
            "{shown}"
        );
    }
}

/// Calls `admit` and checks it ends within the bound, returning its result.
async fn bounded_admit(
    shared: &SharedCounters,
    checks: &[CounterCheck],
) -> Result<Admission, SharedError> {
    let started = Instant::now();
    let result = shared.admit(checks).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a call took {:?} with a timeout of {:?}",
        started.elapsed(),
        shared.timeout()
    );
    result
}

#[tokio::test]
async fn a_restarted_redis_is_reconnected() {
    let mut server = RedisServer::start();
    let shared = counters(server.url(), None, Duration::from_millis(50));
    let probe = [check("k", 1_000_000, 1, Duration::from_secs(60))];
    // A first connection may take longer than 50 ms on a busy machine: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while bounded_admit(&shared, &probe).await.is_err() {
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.kill();
    for _ in 0..10 {
        match bounded_admit(&shared, &probe).await {
            Err(SharedError::Unavailable { .. } | SharedError::Timeout) => {}
            other => panic!("Redis is down, yet {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match bounded_admit(&shared, &probe).await {
            Ok(admission) => {
                // The restarted Redis kept nothing: the counter starts again.
                assert_eq!(admission, Admission::Admitted { used: vec![1] });
                break;
            }
            Err(SharedError::Unavailable { .. } | SharedError::Timeout) => {
                assert!(
                    Instant::now() < deadline,
                    "not reconnected 10 s after Redis came back"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    // And adjustments work on the new connection too.
    shared.adjust(&[adjust("k", 4)]).await.unwrap();
    assert_eq!(get(&mut server.inspect(), "k"), Some(5));
}

#[tokio::test]
async fn a_redis_that_stops_answering_costs_each_call_its_timeout() {
    let server = RedisServer::start();
    let shared = counters(server.url(), None, Duration::from_millis(50));
    let probe = [check("k", 1_000_000, 1, Duration::from_secs(60))];
    let deadline = Instant::now() + Duration::from_secs(10);
    while bounded_admit(&shared, &probe).await.is_err() {
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    server.freeze(true);
    // Long enough for the connection to be given up as stalled and a new attempt to hang too.
    let frozen_until = Instant::now() + Duration::from_millis(2_500);
    while Instant::now() < frozen_until {
        match bounded_admit(&shared, &probe).await {
            Err(SharedError::Timeout | SharedError::Unavailable { .. }) => {}
            other => panic!("Redis is frozen, yet {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    server.freeze(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while bounded_admit(&shared, &probe).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "no answer 10 s after Redis resumed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn counters_start_without_redis_and_connect_once_it_is_up() {
    let port = free_port();
    let timeout = Duration::from_millis(50);
    let shared = counters(format!("redis://127.0.0.1:{port}"), None, timeout);
    let probe = [check("k", 10, 1, Duration::from_secs(60))];

    let started = Instant::now();
    let first = shared.admit(&probe).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(
            first,
            Err(SharedError::Unavailable { .. } | SharedError::Timeout)
        ),
        "{first:?}"
    );
    // Within the timeout, give or take a scheduler tick on a busy machine.
    assert!(
        elapsed < timeout + Duration::from_millis(200),
        "the first call took {elapsed:?}"
    );

    let _server = RedisServer::start_on(port, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while bounded_admit(&shared, &probe).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "not connected 10 s after Redis came up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
