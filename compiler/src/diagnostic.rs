//! Diagnostics: why an object (or one of its fields) could not be compiled. The operator turns them
//! into status conditions; standalone mode turns them into a [`CompileError`].

use std::fmt;

use crate::inputs::{ObjectRef, Origin, Origins};

/// Why something was rejected, named after the Gateway API / agentgateway condition reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The spec breaks a structural rule.
    InvalidSpec,
    /// A referenced Secret does not exist.
    SecretNotFound,
    /// A referenced Secret lacks the key.
    SecretKeyNotFound,
    /// A referenced ConfigMap does not exist.
    ConfigMapNotFound,
    /// A referenced ConfigMap lacks the key.
    ConfigMapKeyNotFound,
    /// A cross-namespace reference without a ReferenceGrant admitting it.
    RefNotPermitted,
    /// A route refers to a backend that does not exist or is not accepted.
    BackendNotFound,
    /// A reference to a kind this version does not serve.
    InvalidKind,
    /// The listeners' `allowedRoutes` refuse the route's namespace.
    NotAllowedByListeners,
    /// A parentRef names no Gateway or listener that exists and is served.
    NoMatchingParent,
    /// None of the route's hostnames intersect the listener's hostname.
    NoMatchingListenerHostname,
    /// A value this version of the proxy does not support (a provider kind, a regex match, ...).
    UnsupportedValue,
    /// A listener protocol other than `HTTP`.
    UnsupportedProtocol,
    /// A listener port that is out of range or already used by another listener.
    PortUnavailable,
    /// A listener shares its port with an earlier listener of another protocol.
    ProtocolConflict,
    /// A listener shares its port and its host name with an earlier listener.
    HostnameConflict,
    /// A listener's certificate reference is of the wrong kind, names a Secret that does not exist,
    /// or a Secret that does not hold a usable certificate and key.
    InvalidCertificateRef,
    /// A route's match is identical to a match of a route that takes precedence (older, or first
    /// by `namespace/name`): it never receives traffic.
    RuleMatchConflict,
    /// A policy's target does not exist.
    TargetNotFound,
    /// An older policy on the same target sets the same field.
    Conflicted,
    /// A policy field needs Redis and the gateway has none.
    RedisNotConfigured,
}

impl Reason {
    /// The CamelCase condition reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidSpec => "InvalidSpec",
            Self::SecretNotFound => "SecretNotFound",
            Self::SecretKeyNotFound => "SecretKeyNotFound",
            Self::ConfigMapNotFound => "ConfigMapNotFound",
            Self::ConfigMapKeyNotFound => "ConfigMapKeyNotFound",
            Self::RefNotPermitted => "RefNotPermitted",
            Self::BackendNotFound => "BackendNotFound",
            Self::InvalidKind => "InvalidKind",
            Self::NotAllowedByListeners => "NotAllowedByListeners",
            Self::NoMatchingParent => "NoMatchingParent",
            Self::NoMatchingListenerHostname => "NoMatchingListenerHostname",
            Self::UnsupportedValue => "UnsupportedValue",
            Self::UnsupportedProtocol => "UnsupportedProtocol",
            Self::PortUnavailable => "PortUnavailable",
            Self::ProtocolConflict => "ProtocolConflict",
            Self::HostnameConflict => "HostnameConflict",
            Self::InvalidCertificateRef => "InvalidCertificateRef",
            Self::RuleMatchConflict => "RuleMatchConflict",
            Self::TargetNotFound => "TargetNotFound",
            Self::Conflicted => "Conflicted",
            Self::RedisNotConfigured => "RedisNotConfigured",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem with one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The object at fault.
    pub object: ObjectRef,
    /// The field path, e.g. `spec.rules[0].backendRefs[1]`.
    pub field: String,
    /// The condition reason.
    pub reason: Reason,
    /// What is wrong, for a human.
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn new(
        object: &ObjectRef,
        field: impl Into<String>,
        reason: Reason,
        message: impl Into<String>,
    ) -> Self {
        Self {
            object: object.clone(),
            field: field.into(),
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.object, self.field, self.message)
    }
}

/// A diagnostic with the file and document its object was read from, when known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocatedDiagnostic {
    /// The problem.
    pub diagnostic: Diagnostic,
    /// Where the object came from.
    pub origin: Option<Origin>,
}

impl fmt::Display for LocatedDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.diagnostic;
        match &self.origin {
            Some(origin) => write!(f, "{origin} ({}): {}: {}", d.object, d.field, d.message),
            None => d.fmt(f),
        }
    }
}

/// Standalone compilation failed: every diagnostic, one per line, each naming its file and document
/// when known (the proxy logs this and keeps serving the previous config).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.errors))]
pub struct CompileError {
    /// Every problem found, in a stable order.
    pub errors: Vec<LocatedDiagnostic>,
}

impl CompileError {
    /// Locates each diagnostic and orders them as the files are: a user reads the errors top to
    /// bottom alongside the file. The sort is stable, so an object's own problems keep their order;
    /// objects of unknown origin come last.
    pub(crate) fn new(diagnostics: Vec<Diagnostic>, origins: &Origins) -> Self {
        let mut errors: Vec<LocatedDiagnostic> = diagnostics
            .into_iter()
            .map(|diagnostic| LocatedDiagnostic {
                origin: origins.get(&diagnostic.object).cloned(),
                diagnostic,
            })
            .collect();
        errors.sort_by(|a, b| match (&a.origin, &b.origin) {
            (Some(a), Some(b)) => a.cmp(b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        Self { errors }
    }

    /// The diagnostics without their origins.
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.errors.iter().map(|e| &e.diagnostic)
    }
}

fn render(errors: &[LocatedDiagnostic]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
