//! The end-to-end harness shared by the scenario test files in `tests/`.
//!
//! The tests drive a real Kubernetes 1.20 cluster (the toolkit in `e2e/testenv/`, brought up by
//! `e2e/run.sh`) the way a user does: `kubectl` from the host, `kubectl port-forward` to the proxy,
//! HTTP requests through it. The test LLM server runs inside the cluster's network namespace, at the
//! address the tutorial's `host.docker.internal` resolves to there; the operator runs as a local
//! process with the admin kubeconfig. Every process a test starts is a [`Proc`], killed when the guard
//! drops (also when the test panics); its PID is also written under `<artifacts>/pids/` so that
//! `run.sh` can kill leftovers of a test binary that died without unwinding.
//!
//! One module per concern, all re-exported here (`use e2e::*` is all a scenario needs): `env`,
//! `kubectl`, `waiting`, `processes`, `llm` (the test LLM servers), `http`, `port_forward`,
//! `cluster` (CRDs, namespaces, readiness), `operator`, `fixture` and `tutorial`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use agentgateway_mock_llm::{MockLlm, MockLlmConfig};
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

pub mod admission;
pub mod chart;
pub mod tutorial_replay;

pub use tutorial_replay::{poll, replay_tutorial, secs, wait_served};

/// The namespace of the Helm chart (and of the tutorial).
pub const NS: &str = "agentgateway-system";
/// The chart's default Gateway, hence the proxy Deployment's name.
pub const GATEWAY: &str = "agentgateway-proxy";
/// The tutorial's model.
pub const MODEL: &str = "gemma-4-12b-it-Q5_K_M.gguf";
/// The cluster's network namespace (see `testenv/lib.sh`).
pub const NETNS: &str = "agw-testenv";
/// The node IP inside the netns; `host.docker.internal` resolves to it in the cluster.
pub const NODE_IP: &str = "10.250.0.1";
/// The tutorial's model server port.
pub const MOCK_PORT: u16 = 8090;
/// The proxy image `run.sh` loads into the cluster.
pub const PROXY_IMAGE: &str = "agentgateway-proxy:e2e";
/// Label put on every object a scenario creates, so leftovers can be found and deleted.
pub const TEST_LABEL: &str = "e2e.agentgateway.dev/test";

mod cluster;
mod env;
mod fixture;
mod http;
mod kubectl;
mod llm;
mod load;
mod operator;
mod port_forward;
mod processes;
mod tutorial;
mod waiting;

pub use cluster::*;
pub use env::*;
pub use fixture::*;
pub use http::*;
pub use kubectl::*;
pub use llm::*;
pub use load::*;
pub use operator::*;
pub use port_forward::*;
pub use processes::*;
pub use tutorial::*;
pub use waiting::*;
