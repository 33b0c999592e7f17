//! What every reconcile gets: the client, the caches, the event recorder, the metrics, the proxy
//! settings and the per-object backoff counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder};

use crate::backoff::Backoff;
use crate::cache::{Scope, Stores};
use crate::metrics::Metrics;
use crate::redis::{self, PasswordSource, PasswordState};
use crate::resources::{ProxySettings, ScalingApis};
use crate::route_views::RouteViews;

/// Shared by every controller.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// The caches; every read of a reconcile comes from here, never from a LIST.
    pub stores: Stores,
    /// The namespaces the operator works in.
    pub scope: Scope,
    /// What each Gateway's compile says about its routes, for the route status controller.
    pub route_views: Arc<RouteViews>,
    /// Publishes Kubernetes Events (events.k8s.io/v1) on the objects users look at.
    pub recorder: Recorder,
    /// Reconcile and write counters.
    pub metrics: Metrics,
    /// How proxy Deployments are built.
    pub proxy: ProxySettings,
    /// The Redis password Secret, when one is configured.
    pub redis_password: Option<Arc<PasswordSource>>,
    /// Consecutive transient failures per object, for exponential retry delays.
    pub backoff: Mutex<Backoff>,
    /// Status writes the caches may not show yet, by `Kind/namespace/name`: the resourceVersion
    /// the write was computed from and what was written. Without it, a reconcile that runs between
    /// the write and its watch event sees the old status and writes the same one again (a
    /// merge patch with the old resourceVersion even fails with 409).
    pub recent_status: Mutex<HashMap<String, (String, String)>>,
    /// When each Gateway's proxy objects were last written (see [`Context::coalesce`]).
    pub last_compiled: Mutex<HashMap<String, Instant>>,
    /// The autoscaler and disruption budget API versions the cluster serves.
    pub scaling: ScalingApis,
    /// Autoscalers and budgets (`Kind/namespace/gateway`) known not to exist, so that Gateways
    /// without them are not asked about on every reconcile (no cache holds these kinds).
    pub absent: Mutex<std::collections::HashSet<String>>,
}

impl Context {
    /// Whether the object `key` (see `scaling::absent_key`) is known not to exist.
    pub fn known_absent(&self, key: &str) -> bool {
        self.absent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    }

    /// Records whether the object `key` is known not to exist.
    pub fn remember_absent(&self, key: String, absent: bool) {
        let mut known = self.absent.lock().unwrap_or_else(|e| e.into_inner());
        if absent {
            known.insert(key);
        } else {
            known.remove(&key);
        }
    }

    /// Whether the proxies count in Redis (`--redis-url`): policies with `rateLimit.global` or
    /// `budget` apply only then.
    pub fn shared_counters(&self) -> bool {
        self.proxy.redis.is_some()
    }

    /// The Redis password for the proxies, as it is now.
    pub fn redis_password(&self) -> PasswordState {
        redis::password_state(self.redis_password.as_ref())
    }

    /// Records a transient failure of `key` and returns the delay before its retry.
    pub fn next_retry(&self, key: &str) -> Duration {
        // A poisoned lock only means another reconcile panicked mid-update; the map is still usable.
        let mut backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        backoff.next_delay(key)
    }

    /// Records what the failing attempt of `key` was about to write (see [`Backoff::remaining`]).
    pub fn failed_attempt(&self, key: &str, attempt: String) {
        let mut backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        backoff.failed_attempt(key, attempt);
    }

    /// How long the same failed `attempt` of `key` still waits.
    pub fn retry_remaining(&self, key: &str, attempt: &str) -> Option<Duration> {
        let backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        backoff.remaining(key, attempt)
    }

    /// How long `key` still waits before its next compile: its proxy objects were last written
    /// less than `interval` ago. Compiles that write nothing (status polls, wake-ups by unrelated
    /// changes) do not count, so a single change after a quiet spell waits for nothing.
    pub fn coalesce(&self, key: &str, interval: Duration) -> Option<Duration> {
        let last = self.last_compiled.lock().unwrap_or_else(|e| e.into_inner());
        last.get(key)
            .and_then(|at| (*at + interval).checked_duration_since(Instant::now()))
            .filter(|wait| !wait.is_zero())
    }

    /// Records that the proxy objects of `key` were just written.
    pub fn wrote_proxy_objects(&self, key: &str) {
        let mut last = self.last_compiled.lock().unwrap_or_else(|e| e.into_inner());
        last.insert(key.to_string(), Instant::now());
    }

    /// Forgets the failures of `key`.
    pub fn reset_retry(&self, key: &str) {
        let mut backoff = self.backoff.lock().unwrap_or_else(|e| e.into_inner());
        backoff.reset(key);
    }

    /// Whether `written` was already written over the object at `version`: the cached copy is
    /// the one the write replaced, so the write's own event is still on its way.
    pub fn status_in_flight(&self, key: &str, version: Option<&str>, written: &str) -> bool {
        let recent = self.recent_status.lock().unwrap_or_else(|e| e.into_inner());
        recent
            .get(key)
            .is_some_and(|(v, w)| Some(v.as_str()) == version && w == written)
    }

    /// Remembers a status write computed from the object at `version`.
    pub fn status_written(&self, key: String, version: Option<String>, written: String) {
        let mut recent = self.recent_status.lock().unwrap_or_else(|e| e.into_inner());
        recent.insert(key, (version.unwrap_or_default(), written));
    }

    /// Forgets the write memo of `key` once the cache shows the status as wanted.
    pub fn status_settled(&self, key: &str) {
        let mut recent = self.recent_status.lock().unwrap_or_else(|e| e.into_inner());
        recent.remove(key);
    }

    /// Publishes an Event on `object`; a failure is logged, never fatal (events are best effort).
    pub async fn publish(
        &self,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            // events.k8s.io/v1 limits the note to 1kB.
            note: Some(truncate(note, 1000)),
            action: action.to_string(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, object).await {
            tracing::warn!(
                object = ?object.name,
                namespace = ?object.namespace,
                reason,
                error = %error,
                "failed to publish an event"
            );
        }
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn long_notes_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("abc".into(), 10), "abc");
        assert_eq!(truncate("ééé".into(), 3), "é");
    }
}
