//! What can go wrong, one variant per failure a user can act on. Reconcile errors carry a stable
//! [`Error::label`] for metrics and events and say whether retrying can help.

use std::net::SocketAddr;

use agentgateway_crds::conditions::reasons;

/// A reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Server-side apply of an owned object was refused or failed.
    #[error("failed to apply {kind} {namespace}/{name}: {}", api_answer(source))]
    Apply {
        /// The kind of the object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What the API server said (boxed: `kube::Error` is large and errors travel by value).
        #[source]
        source: Box<kube::Error>,
    },
    /// An object the Gateway's proxy needs exists under the same name but is not controlled by
    /// that Gateway: it is left alone (taking it over would hand a stranger's Secret, or a
    /// RoleBinding's subjects, to the proxy).
    #[error(
        "{kind} {namespace}/{name} already exists and is not controlled by Gateway {namespace}/{gateway} ({holder}); delete it or rename the Gateway"
    )]
    Conflict {
        /// The kind of the object.
        kind: &'static str,
        /// Its namespace (the Gateway's).
        namespace: String,
        /// Its name.
        name: String,
        /// The Gateway that wanted it.
        gateway: String,
        /// Who controls it instead, as far as its ownerReferences say.
        holder: String,
    },
    /// The compiled config does not fit into a ConfigMap even compressed.
    #[error(
        "the config of Gateway {key} is {bytes} bytes compressed, more than the {limit} a ConfigMap ({config_map}) holds; split its routes across Gateways"
    )]
    ConfigTooLarge {
        /// `namespace/name` of the Gateway.
        key: String,
        /// The ConfigMap's name.
        config_map: String,
        /// The compressed size.
        bytes: usize,
        /// What a ConfigMap holds.
        limit: usize,
    },
    /// Reading an object the operator needs to check failed.
    #[error("failed to read {kind} {namespace}/{name}: {}", api_answer(source))]
    Get {
        /// The kind of the object.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What the API server said.
        #[source]
        source: Box<kube::Error>,
    },
    /// Writing an object's status failed.
    #[error("failed to patch the status of {kind} {key}: {}", api_answer(source))]
    PatchStatus {
        /// The kind of the object.
        kind: &'static str,
        /// `namespace/name`, or `name` for cluster-scoped objects.
        key: String,
        /// What the API server said (boxed: `kube::Error` is large and errors travel by value).
        #[source]
        source: Box<kube::Error>,
    },
    /// The compiled proxy config could not be written as YAML.
    #[error("failed to serialize the proxy config of Gateway {key}: {source}")]
    SerializeConfig {
        /// `namespace/name` of the Gateway.
        key: String,
        /// The serializer's complaint.
        #[source]
        source: serde_yaml::Error,
    },
    /// An object could not be serialized to compute its applied hash.
    #[error("failed to serialize {kind} {name} to hash it: {source}")]
    HashObject {
        /// The kind of the object.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The serializer's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A status could not be serialized.
    #[error("failed to serialize the status of {kind} {key}: {source}")]
    SerializeStatus {
        /// The kind of the object.
        kind: &'static str,
        /// `namespace/name` of the object.
        key: String,
        /// The serializer's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The API server handed out an object without a field every stored object has.
    #[error("failed to read {field} of {kind} {name}: the object has none")]
    MissingField {
        /// The kind of the object.
        kind: &'static str,
        /// Its name, as far as known.
        name: String,
        /// The missing field, e.g. `metadata.uid`.
        field: &'static str,
    },
}

/// What the API server answered, for a human: its message and reason for an API error (kube's
/// own rendering adds the whole status struct), the error itself otherwise.
fn api_answer(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

/// A reconcile result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A stable label for the `error` label of metrics and the reason of events.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Apply { .. } | Self::Get { .. } => reasons::APPLY_FAILED,
            Self::Conflict { .. } => reasons::RESOURCE_CONFLICT,
            Self::ConfigTooLarge { .. } => reasons::CONFIG_TOO_LARGE,
            Self::PatchStatus { .. } => "PatchStatusFailed",
            Self::SerializeConfig { .. } => "SerializeConfigFailed",
            Self::HashObject { .. } => "HashObjectFailed",
            Self::SerializeStatus { .. } => "SerializeStatusFailed",
            Self::MissingField { .. } => "MissingField",
        }
    }

    /// Whether retrying the same input can succeed: API errors can (conflicts, timeouts, RBAC
    /// being fixed), except an object the API server finds invalid, which needs a new input.
    pub fn is_transient(&self) -> bool {
        match self {
            // A foreign object going away is not an event the caches see: look again later.
            Self::Conflict { .. } => true,
            Self::Apply { source, .. }
            | Self::PatchStatus { source, .. }
            | Self::Get { source, .. } => match source.as_ref() {
                kube::Error::Api(status) => !status.is_invalid(),
                _ => true,
            },
            Self::SerializeConfig { .. }
            | Self::ConfigTooLarge { .. }
            | Self::HashObject { .. }
            | Self::SerializeStatus { .. }
            | Self::MissingField { .. } => false,
        }
    }
}

/// The operator could not start or stopped running.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No kubeconfig and no in-cluster config, or an unusable one.
    #[error("failed to create a Kubernetes client: {0}")]
    CreateClient(#[source] kube::Error),
    /// The metrics or health address is taken or not ours.
    #[error("failed to bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Installing the signal handlers failed.
    #[error("failed to install the signal handlers: {0}")]
    InstallSignalHandler(#[source] std::io::Error),
    /// Another replica holds the Lease now, or it could not be renewed in time.
    #[error("failed to keep the leader-election Lease {namespace}/{name}: {reason}")]
    LeaseLost {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A reflector stopped before its cache was filled.
    #[error("failed to fill the cache of {kind}: the watch stopped")]
    SyncCache {
        /// The kind whose cache never filled.
        kind: &'static str,
    },
    /// `--redis-url` is unusable (the message never repeats it: it may hold a password).
    #[error("invalid --redis-url: {0}")]
    RedisUrl(#[source] crate::redis::RedisUrlError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.to_string(),
            ..Default::default()
        }))
    }

    fn apply_error(source: kube::Error) -> Error {
        Error::Apply {
            kind: "ConfigMap",
            namespace: "ns".into(),
            name: "gw-config".into(),
            source: Box::new(source),
        }
    }

    #[test]
    fn a_conflict_is_transient_and_an_invalid_object_is_not() {
        assert!(apply_error(api_error(409, "Conflict")).is_transient());
        assert!(apply_error(api_error(403, "Forbidden")).is_transient());
        assert!(!apply_error(api_error(422, "Invalid")).is_transient());
    }

    #[test]
    fn api_errors_read_as_the_api_servers_answer() {
        let mut status = kube::core::Status {
            code: 403,
            reason: "Forbidden".into(),
            ..Default::default()
        };
        status.message = "configmaps \"gw-config\" is forbidden: exceeded quota".into();
        let error = apply_error(kube::Error::Api(Box::new(status)));
        assert_eq!(
            error.to_string(),
            "failed to apply ConfigMap ns/gw-config: configmaps \"gw-config\" is forbidden: exceeded quota (403 Forbidden)"
        );
    }

    #[test]
    fn messages_say_what_failed() {
        let error = apply_error(api_error(409, "Conflict"));
        assert!(
            error
                .to_string()
                .starts_with("failed to apply ConfigMap ns/gw-config")
        );
        assert_eq!(error.label(), "ApplyFailed");
    }
}
