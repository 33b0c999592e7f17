//! Where configs come from. A source yields a compiled config each time its input changes, or the
//! reason a change was rejected; the caller swaps configs and keeps the last good one.
//! `--config PATH` is [`file::FileSource`]; the cluster source (ConfigMap + Secret) plugs in here.

pub mod file;
pub mod kube;

use std::future::Future;

use agentgateway_compiler::Compiled;

/// What a source observed.
pub enum SourceEvent {
    /// A new config to apply.
    Config(Box<Compiled>),
    /// The input changed but is invalid; the message names the document and field.
    Rejected(String),
}

/// A stream of configs.
pub trait ConfigSource: Send {
    /// Waits for the next change; the first call returns the initial config.
    fn next(&mut self) -> impl Future<Output = SourceEvent> + Send;

    /// A description for logs (`file examples/tutorial`).
    fn describe(&self) -> String;

    /// The generation of the config the last [`ConfigSource::next`] returned, when the source
    /// versions its configs (the cluster source: the ConfigMap's annotation).
    fn generation(&self) -> Option<String> {
        None
    }

    /// Whether an invalid initial config is fatal (a user's file: fail fast) or to be waited out
    /// (the cluster: the operator's next write fixes it, and the pod stays unready meanwhile).
    fn initial_config_is_fatal(&self) -> bool {
        true
    }
}
