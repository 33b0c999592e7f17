//! The Grafana dashboard the chart ships (`helm/agentgateway/dashboards/agentgateway.json`),
//! generated from the metric families the proxy and the operator register: every query names its
//! series through [`Catalog`], so renaming or retyping a metric makes generation fail (and with it
//! `make check-generated`) instead of leaving a dashboard panel silently empty.

pub mod catalog;
pub mod grafana;
pub mod panels;

pub use catalog::{Catalog, Kind, Series};

/// Why the dashboard cannot be generated.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A panel queries a family no registry declares.
    #[error(
        "the dashboard queries metric {name}, which the proxy and the operator no longer export: update dashboard/src/panels.rs"
    )]
    NotExported {
        /// The family's name.
        name: String,
    },
    /// A panel queries a family as another type than the code registers.
    #[error(
        "the dashboard queries {name} as a {expected}, but it is exported as a {found}: update dashboard/src/panels.rs"
    )]
    WrongKind {
        /// The family's name.
        name: String,
        /// What the panel expects.
        expected: Kind,
        /// What the exposition declares.
        found: Kind,
    },
    /// A panel groups or filters a family by a label its samples do not carry.
    #[error(
        "the dashboard uses label {label} of {name}, which the code does not set: update dashboard/src/panels.rs"
    )]
    UnknownLabel {
        /// The family's name.
        name: String,
        /// The label.
        label: String,
    },
    /// The sample backends the catalog loads into a proxy state no longer compile or load.
    #[error("the catalog's sample backends no longer load: {0}")]
    Fixture(String),
}

/// The dashboard for the metrics the code exports.
pub fn dashboard() -> Result<serde_json::Value, Error> {
    panels::dashboard(&Catalog::exported()?)
}
