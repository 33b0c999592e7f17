//! How the validating webhook learns whether the objects an `AgentgatewayPolicy` targets exist.
//!
//! A missing target is only a warning at admission: GitOps tools apply a policy and its route in
//! whatever order, and the policy reports `Accepted=False` (`TargetNotFound`) until the target
//! exists. Like [`crate::SecretLookup`] it is a trait: the operator answers from its caches, tests
//! from a set; the handler bounds every lookup so a slow one cannot hold a review up.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use agentgateway_crds::policy::PolicyTargetRef;

/// What is known about one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// The object exists.
    Found,
    /// The object does not exist.
    NotFound,
    /// Nothing is known (caches not filled, a namespace the operator does not watch): no warning.
    Unknown,
}

/// Answers whether a policy's target exists.
pub trait TargetLookup: Send + Sync + 'static {
    /// The state of `target` in `namespace` (targets are always in the policy's namespace).
    fn target(
        &self,
        namespace: &str,
        target: &PolicyTargetRef,
    ) -> Pin<Box<dyn Future<Output = TargetState> + Send + '_>>;
}

/// A fixed set of objects as `(namespace, kind, name)`: for tests and for standalone use. Objects
/// not in the set are [`TargetState::NotFound`].
pub type StaticTargets = BTreeSet<(String, String, String)>;

impl TargetLookup for StaticTargets {
    fn target(
        &self,
        namespace: &str,
        target: &PolicyTargetRef,
    ) -> Pin<Box<dyn Future<Output = TargetState> + Send + '_>> {
        let key = (
            namespace.to_string(),
            target.kind.clone(),
            target.name.clone(),
        );
        let state = if self.contains(&key) {
            TargetState::Found
        } else {
            TargetState::NotFound
        };
        Box::pin(std::future::ready(state))
    }
}

/// A lookup that gives up after `limit` with [`TargetState::Unknown`] (see
/// [`crate::secrets::BoundedLookup`]: a lookup only feeds a warning).
pub(crate) struct BoundedTargets {
    pub(crate) inner: std::sync::Arc<dyn TargetLookup>,
    pub(crate) limit: std::time::Duration,
}

impl TargetLookup for BoundedTargets {
    fn target(
        &self,
        namespace: &str,
        target: &PolicyTargetRef,
    ) -> Pin<Box<dyn Future<Output = TargetState> + Send + '_>> {
        let lookup = self.inner.target(namespace, target);
        crate::secrets::bounded(lookup, self.limit, TargetState::Unknown, "policy target")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    struct Never;

    impl TargetLookup for Never {
        fn target(
            &self,
            _namespace: &str,
            _target: &PolicyTargetRef,
        ) -> Pin<Box<dyn Future<Output = TargetState> + Send + '_>> {
            Box::pin(std::future::pending())
        }
    }

    fn route(name: &str) -> PolicyTargetRef {
        PolicyTargetRef {
            group: "gateway.networking.k8s.io".into(),
            kind: "HTTPRoute".into(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn a_lookup_that_hangs_is_unknown_after_the_limit() {
        let bounded = BoundedTargets {
            inner: Arc::new(Never),
            limit: Duration::from_millis(20),
        };
        assert_eq!(
            bounded.target("ns", &route("r")).await,
            TargetState::Unknown
        );
    }

    #[tokio::test]
    async fn static_targets_know_kind_and_name() {
        let targets = StaticTargets::from([("ns".into(), "HTTPRoute".into(), "r".into())]);
        assert_eq!(targets.target("ns", &route("r")).await, TargetState::Found);
        assert_eq!(
            targets.target("ns", &route("s")).await,
            TargetState::NotFound
        );
        assert_eq!(
            targets.target("other", &route("r")).await,
            TargetState::NotFound
        );
    }
}
