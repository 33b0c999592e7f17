//! Counters in Redis, for `global` rate limits and budgets: every proxy replica admits against the
//! same counters, so a limit holds for the gateway as a whole. Each admission and each correction
//! is one Lua script, so it is atomic across all of a request's counters however many replicas
//! race.
//!
//! Redis is on the request path, so nothing here may wait on it for long: every call gives up
//! after the configured timeout (`SharedError::Timeout`); the connection is made in the background
//! on first use and re-made after it breaks, and while Redis cannot be reached calls fail at once
//! (`SharedError::Unavailable`) instead of each waiting out its timeout. A proxy starts whether or
//! not Redis is up.
//!
//! One Redis server (or a primary with replicas behind one address) is supported; Redis Cluster is
//! not: the counters of one request have different hash tags, so they may live in different slots.
//! Redis 6.0 or later is needed (`SET ... KEEPTTL`). Values are exact up to 2^53 (Lua numbers).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ErrorKind, FromRedisValue, IntoConnectionInfo, RedisError,
    Script, ScriptInvocation, ServerErrorKind,
};
use tokio::sync::watch;

use super::counter::{Adjustment, Admission, CounterCheck};

/// The proxy's default bound on one Redis call: Redis answers a script in well under a
/// millisecond on the same network, and a request must not wait long on its rate limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(5);
/// A connection attempt (TCP, AUTH, SELECT) runs in the background, so it may take longer than a
/// call may wait: on a slow network it would otherwise never complete.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The wait before the first retry of a failed connection attempt; it doubles up to
/// [`MAX_BACKOFF`], so a down Redis sees a few attempts a second from each replica, not one per
/// request.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between connection attempts: how soon calls succeed again once Redis is back.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A connection on which calls have kept timing out (none answered) for this long is dropped and
/// made again: a Redis that moved away without closing the connection (a rescheduled pod) would
/// otherwise hold it until TCP gives up, many minutes later.
const STALL_RESET: Duration = Duration::from_secs(1);
/// What replaces a password in anything shown.
const REDACTED: &str = "***";

/// How to reach Redis.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[user[:password]@]host[:port][/db]` or `redis+unix:///path[?db=N&pass=...]`.
    pub url: String,
    /// Overrides a password in `url` (so the URL can live in config and the password in a
    /// Secret). An empty password counts as none.
    pub password: Option<String>,
    /// How long one call may take, connection included (see [`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
}

// Not derived: neither the password nor a password inside the URL may reach a log.
impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Why [`RedisSettings`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RedisSettingsError {
    /// The URL does not parse or names no server.
    #[error("the Redis URL {url} is not valid: {reason}")]
    InvalidUrl {
        /// The URL, its password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `rediss://`: this build has no TLS for Redis.
    #[error("the Redis URL {url} asks for TLS, which the proxy does not support; use redis://")]
    TlsNotSupported {
        /// The URL, its password redacted.
        url: String,
    },
    /// A zero timeout would fail every call.
    #[error("the Redis timeout must be more than 0")]
    ZeroTimeout,
}

/// Why a call to Redis gave no answer. Whatever the reason, the request is then handled by its
/// policy's `failureMode`.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// Redis did not answer within the timeout.
    #[error("Redis did not answer in time")]
    Timeout,
    /// Redis cannot be reached or refused the connection (down, wrong address, wrong password,
    /// loading its data, read-only replica). The reason never contains the password.
    #[error("Redis is unavailable: {reason}")]
    Unavailable {
        /// What failed.
        reason: String,
    },
    /// Redis ran the counter script and answered with an error: a counter's key holds something
    /// other than an integer (another application uses the `agw:` prefix), or Redis is older than
    /// 6.0.
    #[error("Redis refused a counter update: {reason}")]
    Command {
        /// Redis's error.
        reason: String,
    },
}

/// Reads every counter; if one has no room for its need, writes nothing and returns
/// `{0, i, used...}`; otherwise adds each reserve, creating a new counter with its window's
/// expiry, and returns `{1, 0, used...}`.
/// KEYS[i]: counter i; ARGV[4i-3], ARGV[4i-2], ARGV[4i-1], ARGV[4i]: its limit, need, reserve and
/// time to live in milliseconds.
const ADMIT_SCRIPT: &str = r"
local used = {}
for i = 1, #KEYS do
  used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
end
for i = 1, #KEYS do
  if used[i] + tonumber(ARGV[4 * i - 2]) > tonumber(ARGV[4 * i - 3]) then
    return {0, i, unpack(used)}
  end
end
for i = 1, #KEYS do
  used[i] = redis.call('INCRBY', KEYS[i], ARGV[4 * i - 1])
  if redis.call('PTTL', KEYS[i]) == -1 then
    redis.call('PEXPIRE', KEYS[i], ARGV[4 * i])
  end
end
return {1, 0, unpack(used)}
";

/// Adds ARGV[i] to counter KEYS[i] if it still exists (a counter whose window ended is not made
/// again); a result below 0 becomes 0; the counter keeps its expiry.
const ADJUST_SCRIPT: &str = r"
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if redis.call('INCRBY', KEYS[i], ARGV[i]) < 0 then
      redis.call('SET', KEYS[i], 0, 'KEEPTTL')
    end
  end
end
return #KEYS
";

/// Counters in Redis, shared by every replica. Cheap to clone (one connection for all clones).
#[derive(Clone)]
pub struct SharedCounters {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    connection_config: AsyncConnectionConfig,
    timeout: Duration,
    /// The URL with its password redacted, for logs.
    target: String,
    /// Passwords scrubbed from every message that could carry one.
    secrets: Vec<String>,
    admit: Script,
    adjust: Script,
    link: Mutex<Link>,
    /// Counts connections made, so that a failure seen on an old connection does not drop a new
    /// one.
    generations: AtomicU64,
    /// Sent each time a connection attempt ends, waking the calls waiting for it.
    settled: watch::Sender<()>,
}

/// The state of the connection.
enum Link {
    /// Not connected. The first call after `retry_at` starts an attempt.
    Down {
        retry_at: Instant,
        /// The wait after the next attempt, if it fails.
        backoff: Duration,
        /// Why the last attempt failed (none yet: never tried).
        error: Option<String>,
        /// Attempts failed in a row (only the first is logged as a warning).
        failures: u32,
    },
    /// An attempt is running in the background.
    Connecting,
    /// Connected.
    Up {
        connection: MultiplexedConnection,
        generation: u64,
        /// When calls on this connection started timing out without one answering.
        stalled_since: Option<Instant>,
    },
}

impl Link {
    fn down_now(error: String) -> Self {
        Self::Down {
            retry_at: Instant::now(),
            backoff: MIN_BACKOFF,
            error: Some(error),
            failures: 0,
        }
    }
}

impl fmt::Debug for SharedCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCounters")
            .field("redis", &self.inner.target)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl SharedCounters {
    /// Counters in the Redis of `settings`. Nothing is connected here (Redis may be down while
    /// the proxy starts, and this needs no runtime): the first call connects.
    pub fn new(settings: RedisSettings) -> Result<Self, RedisSettingsError> {
        let RedisSettings {
            url,
            password,
            timeout,
        } = settings;
        let target = redact_url(&url);
        if timeout.is_zero() {
            return Err(RedisSettingsError::ZeroTimeout);
        }
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        if scheme.is_some_and(|scheme| {
            scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
        }) {
            return Err(RedisSettingsError::TlsNotSupported { url: target });
        }
        let mut secrets: Vec<String> = Vec::new();
        if let Some(raw) = url_password(&url) {
            secrets.push(raw.to_owned());
        }
        let password = password.filter(|password| !password.is_empty());
        let invalid = |error: RedisError, secrets: &[String]| RedisSettingsError::InvalidUrl {
            url: target.clone(),
            reason: scrub(&error.to_string(), secrets),
        };
        let mut info = url
            .as_str()
            .into_connection_info()
            .map_err(|error| invalid(error, &secrets))?;
        if let Some(decoded) = info.redis_settings().password() {
            secrets.push(decoded.to_owned());
        }
        if let Some(password) = password {
            let redis = info.redis_settings().clone().set_password(&password);
            info = info.set_redis_settings(redis);
            secrets.push(password);
        }
        secrets.retain(|secret| !secret.is_empty());
        let client = Client::open(info).map_err(|error| invalid(error, &secrets))?;
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT.max(timeout)))
            .set_response_timeout(Some(timeout));
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                connection_config,
                timeout,
                target,
                secrets,
                admit: Script::new(ADMIT_SCRIPT),
                adjust: Script::new(ADJUST_SCRIPT),
                link: Mutex::new(Link::Down {
                    retry_at: Instant::now(),
                    backoff: MIN_BACKOFF,
                    error: None,
                    failures: 0,
                }),
                generations: AtomicU64::new(0),
                settled: watch::Sender::new(()),
            }),
        })
    }

    /// Admits a request if every counter has room (`used + need <= limit`), reserving each
    /// check's `reserve` only then, atomically across the counters and across replicas; see
    /// [`CounterCheck`].
    pub async fn admit(&self, checks: &[CounterCheck]) -> Result<Admission, SharedError> {
        if checks.is_empty() {
            return Ok(Admission::Admitted { used: Vec::new() });
        }
        let mut invocation = self.inner.admit.prepare_invoke();
        for check in checks {
            invocation
                .key(check.key.as_str())
                .arg(check.limit)
                .arg(check.need)
                // INCRBY takes a signed 64-bit integer.
                .arg(i64::try_from(check.reserve).unwrap_or(i64::MAX))
                .arg(
                    u64::try_from(check.ttl.as_millis())
                        .unwrap_or(u64::MAX)
                        .max(1),
                );
        }
        let reply: Vec<i64> = self.inner.invoke(&invocation).await?;
        let unexpected = || SharedError::Command {
            reason: format!("the admission script answered {reply:?}"),
        };
        let [admitted, counter, values @ ..] = reply.as_slice() else {
            return Err(unexpected());
        };
        if values.len() != checks.len() {
            return Err(unexpected());
        }
        let used = values
            .iter()
            .map(|value| u64::try_from(*value).unwrap_or(0))
            .collect();
        match (*admitted, usize::try_from(*counter)) {
            (1, _) => Ok(Admission::Admitted { used }),
            (0, Ok(counter)) if (1..=checks.len()).contains(&counter) => Ok(Admission::Rejected {
                counter: counter - 1,
                used,
            }),
            _ => Err(unexpected()),
        }
    }

    /// Applies corrections to the counters that still exist; see [`Adjustment`].
    pub async fn adjust(&self, adjustments: &[Adjustment]) -> Result<(), SharedError> {
        let mut invocation = self.inner.adjust.prepare_invoke();
        let mut any = false;
        for adjustment in adjustments
            .iter()
            .filter(|adjustment| adjustment.delta != 0)
        {
            invocation
                .key(adjustment.key.as_str())
                .arg(adjustment.delta);
            any = true;
        }
        if !any {
            return Ok(());
        }
        let _: i64 = self.inner.invoke(&invocation).await?;
        Ok(())
    }

    /// How long one call may take.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Link> {
        // Every update of the link is a single assignment: it is consistent whatever panicked.
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a script within the timeout, connecting first if needed.
    async fn invoke<T: FromRedisValue>(
        self: &Arc<Self>,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, SharedError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let (generation, mut connection) =
            match tokio::time::timeout_at(deadline, self.connection()).await {
                Ok(connected) => connected?,
                Err(_) => return Err(SharedError::Timeout),
            };
        match tokio::time::timeout_at(deadline, invocation.invoke_async(&mut connection)).await {
            Ok(Ok(value)) => {
                self.answered(generation);
                Ok(value)
            }
            Ok(Err(error)) => Err(self.failed(generation, &error)),
            Err(_) => {
                self.timed_out(generation);
                Err(SharedError::Timeout)
            }
        }
    }

    /// The current connection, or the outcome of an attempt started (or already running) now;
    /// while attempts are backing off, the last attempt's error at once.
    async fn connection(self: &Arc<Self>) -> Result<(u64, MultiplexedConnection), SharedError> {
        // Subscribed before the state is read, so an attempt that ends after is never missed.
        let mut settled = self.settled.subscribe();
        loop {
            {
                let mut link = self.lock();
                match &*link {
                    Link::Up {
                        connection,
                        generation,
                        ..
                    } => return Ok((*generation, connection.clone())),
                    Link::Connecting => {}
                    Link::Down {
                        retry_at,
                        backoff,
                        error,
                        failures,
                    } => {
                        if Instant::now() < *retry_at {
                            return Err(SharedError::Unavailable {
                                reason: error
                                    .clone()
                                    .unwrap_or_else(|| "not connected yet".to_owned()),
                            });
                        }
                        let (backoff, failures) = (*backoff, *failures);
                        *link = Link::Connecting;
                        tokio::spawn(Arc::clone(self).connect(backoff, failures));
                    }
                }
            }
            if settled.changed().await.is_err() {
                // Unreachable: the sender lives as long as `self`.
                return Err(SharedError::Unavailable {
                    reason: "the connection was shut down".to_owned(),
                });
            }
        }
    }

    /// One connection attempt, bounded by the connection timeout; its outcome replaces the link.
    async fn connect(self: Arc<Self>, backoff: Duration, failures: u32) {
        let result = self
            .client
            .get_multiplexed_async_connection_with_config(&self.connection_config)
            .await;
        let next = match result {
            Ok(connection) => {
                let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::info!(redis = %self.target, generation, "connected to Redis");
                Link::Up {
                    connection,
                    generation,
                    stalled_since: None,
                }
            }
            Err(error) => {
                let reason = self.describe(&error);
                if failures == 0 {
                    tracing::warn!(redis = %self.target, error = %reason, retry_in = ?backoff, "cannot connect to Redis");
                } else {
                    tracing::debug!(redis = %self.target, error = %reason, failures, retry_in = ?backoff, "cannot connect to Redis");
                }
                Link::Down {
                    retry_at: Instant::now() + jitter(backoff),
                    backoff: (backoff * 2).min(MAX_BACKOFF),
                    error: Some(reason),
                    failures: failures.saturating_add(1),
                }
            }
        };
        *self.lock() = next;
        self.settled.send_replace(());
    }

    fn answered(&self, generation: u64) {
        if let Link::Up {
            generation: current,
            stalled_since,
            ..
        } = &mut *self.lock()
            && *current == generation
        {
            *stalled_since = None;
        }
    }

    fn timed_out(&self, generation: u64) {
        let mut link = self.lock();
        let Link::Up {
            generation: current,
            stalled_since,
            ..
        } = &mut *link
        else {
            return;
        };
        if *current != generation {
            return;
        }
        let now = Instant::now();
        match *stalled_since {
            None => *stalled_since = Some(now),
            Some(since) if now.duration_since(since) >= STALL_RESET => {
                tracing::warn!(redis = %self.target, stalled_for = ?now.duration_since(since), "no answer from Redis; reconnecting");
                *link = Link::down_now("no answer from Redis".to_owned());
            }
            Some(_) => {}
        }
    }

    /// Classifies a failed call, dropping its connection when the error says it is broken.
    fn failed(&self, generation: u64, error: &RedisError) -> SharedError {
        if error.is_timeout() {
            // The connection's own response timeout (the same as ours).
            self.timed_out(generation);
            return SharedError::Timeout;
        }
        let reason = self.describe(error);
        if error.is_unrecoverable_error() {
            let mut link = self.lock();
            if matches!(&*link, Link::Up { generation: current, .. } if *current == generation) {
                tracing::warn!(redis = %self.target, error = %reason, "lost the connection to Redis");
                *link = Link::down_now(reason.clone());
            }
        }
        let unavailable = match error.kind() {
            ErrorKind::Server(kind) => matches!(
                kind,
                ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
                    | ServerErrorKind::ClusterDown
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::ReadOnly
                    | ServerErrorKind::NoPerm
            ),
            ErrorKind::Extension => error.code().is_some_and(|code| {
                matches!(code, "NOAUTH" | "WRONGPASS" | "BUSY" | "OOM" | "MISCONF")
            }),
            ErrorKind::Io | ErrorKind::AuthenticationFailed | ErrorKind::Parse => true,
            _ => false,
        };
        if unavailable {
            SharedError::Unavailable { reason }
        } else {
            SharedError::Command { reason }
        }
    }

    /// `error` as text, without any password.
    fn describe(&self, error: &RedisError) -> String {
        scrub(&error.to_string(), &self.secrets)
    }
}

/// `wait`, shortened by up to half at random, so that replicas that lost Redis together do not
/// retry in lockstep.
fn jitter(wait: Duration) -> Duration {
    wait.mul_f64(0.5 + fastrand::f64() / 2.0)
}

fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .filter(|secret| !secret.is_empty())
        .fold(text.to_owned(), |text, secret| {
            text.replace(secret.as_str(), REDACTED)
        })
}

/// The user-info part (before `@`) of a URL's authority, if any.
fn split_authority(url: &str) -> (&str, &str, &str) {
    let (scheme, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    (scheme, authority, tail)
}

/// The password written in a URL's user info (`user:password@`), as written.
fn url_password(url: &str) -> Option<&str> {
    let (_, authority, tail) = split_authority(url);
    let from_userinfo = authority
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password);
    let from_query = tail
        .split_once('?')
        .map(|(_, query)| query.split('#').next().unwrap_or(query))
        .and_then(|query| {
            query.split('&').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                is_password_param(name).then_some(value)
            })
        });
    from_userinfo.or(from_query)
}

fn is_password_param(name: &str) -> bool {
    name.eq_ignore_ascii_case("pass") || name.eq_ignore_ascii_case("password")
}

/// `url` with any password replaced: the one in the user info (the whole user info when it has no
/// `:`, in case a password was written there alone), and `pass=`/`password=` query parameters.
fn redact_url(url: &str) -> String {
    let (scheme, authority, tail) = split_authority(url);
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(REDACTED);
                }
                None => out.push_str(REDACTED),
            }
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    out.push_str(path);
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((query, fragment)) => (query, Some(fragment)),
            None => (query, None),
        };
        out.push('?');
        for (i, pair) in query.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, _)) if is_password_param(name) => {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(fragment);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(url: &str, password: Option<&str>) -> RedisSettings {
        RedisSettings {
            url: url.to_owned(),
            password: password.map(str::to_owned),
            timeout: Duration::from_millis(50),
        }
    }

    #[test]
    fn passwords_never_show_in_debug() {
        let shown = format!(
            "{:?}",
            settings("redis://user:hunter2@redis:6379/1", Some("sw0rdfish"))
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("sw0rdfish"),
            "{shown}"
        );
        assert!(shown.contains("redis://user:***@redis:6379/1"), "{shown}");

        let cases = [
            ("redis://redis:6379", "redis://redis:6379"),
            ("redis://:hunter2@redis", "redis://:***@redis"),
            ("redis://hunter2@redis", "redis://***@redis"),
            ("redis://u:p%40ss@word@redis/0", "redis://u:***@redis/0"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2#x",
                "redis+unix:///run/redis.sock?db=1&pass=***#x",
            ),
            ("unix:///s?PASSWORD=hunter2", "unix:///s?PASSWORD=***"),
            ("host:hunter2@redis", "host:***@redis"),
        ];
        for (url, redacted) in cases {
            assert_eq!(redact_url(url), redacted);
        }

        let counters = SharedCounters::new(settings("redis://:hunter2@127.0.0.1:1", None)).unwrap();
        let shown = format!("{counters:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn the_passwords_to_scrub_include_every_spelling() {
        let counters =
            SharedCounters::new(settings("redis://:p%40ss@127.0.0.1:1", Some("override"))).unwrap();
        let secrets = &counters.inner.secrets;
        for secret in ["p%40ss", "p@ss", "override"] {
            assert!(secrets.iter().any(|s| s == secret), "{secret}");
        }
        assert_eq!(
            scrub("no p@ss nor override here", secrets),
            "no *** nor *** here"
        );
        assert_eq!(url_password("redis+unix:///s?db=0&pass=x1#f"), Some("x1"));
    }

    #[test]
    fn settings_are_checked_without_connecting_or_a_runtime() {
        assert!(SharedCounters::new(settings("redis://127.0.0.1:1", None)).is_ok());
        assert!(SharedCounters::new(settings("redis+unix:///run/r.sock", None)).is_ok());
        assert!(matches!(
            SharedCounters::new(settings("rediss://:hunter2@redis", None)),
            Err(RedisSettingsError::TlsNotSupported { url }) if !url.contains("hunter2")
        ));
        let invalid = SharedCounters::new(settings("http://:hunter2@redis", None)).unwrap_err();
        assert!(
            matches!(invalid, RedisSettingsError::InvalidUrl { .. }),
            "{invalid:?}"
        );
        assert!(!invalid.to_string().contains("hunter2"), "{invalid}");
        assert!(matches!(
            SharedCounters::new(settings("not a url", None)),
            Err(RedisSettingsError::InvalidUrl { .. })
        ));
        assert!(matches!(
            SharedCounters::new(RedisSettings {
                timeout: Duration::ZERO,
                ..settings("redis://redis", None)
            }),
            Err(RedisSettingsError::ZeroTimeout)
        ));
    }

    #[tokio::test]
    async fn nothing_to_count_needs_no_redis() {
        let counters = SharedCounters::new(settings("redis://127.0.0.1:1", None)).unwrap();
        assert_eq!(
            counters.admit(&[]).await.unwrap(),
            Admission::Admitted { used: vec![] }
        );
        let zero = Adjustment {
            key: "k".to_owned(),
            delta: 0,
        };
        counters.adjust(&[zero]).await.unwrap();
        counters.adjust(&[]).await.unwrap();
    }
}
