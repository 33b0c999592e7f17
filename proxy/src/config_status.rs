//! Which config the proxy serves, reported on the readiness port at `/healthz/config` so the
//! operator can tell `Programmed` from "written": the generation of the config in use (from its
//! source, e.g. the ConfigMap's annotation) and the last config refused after it, with the reason.

use std::sync::Mutex;

use bytes::Bytes;
use serde::Serialize;

/// A refusal's reason is cut here: it travels into a Gateway's status message.
const MAX_REASON_BYTES: usize = 1024;

/// What `/healthz/config` answers.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    /// The generation of the config in use; `None` before the first, or when its source has none.
    generation: Option<String>,
    /// How many configs were applied since the start.
    applied: u64,
    /// The last config refused since the one in use.
    rejected: Option<Rejected>,
}

#[derive(Clone, Debug, Serialize)]
struct Rejected {
    generation: Option<String>,
    reason: String,
}

/// The report, updated by the reload loop.
#[derive(Debug, Default)]
pub struct ConfigStatus(Mutex<Report>);

impl ConfigStatus {
    /// A config of `generation` is in use.
    pub fn applied(&self, generation: Option<String>) {
        let mut report = self.0.lock().unwrap_or_else(|e| e.into_inner());
        report.generation = generation;
        report.applied += 1;
        report.rejected = None;
    }

    /// A config of `generation` was refused for `reason`.
    pub fn rejected(&self, generation: Option<String>, reason: &str) {
        let mut cut = reason.len().min(MAX_REASON_BYTES);
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut report = self.0.lock().unwrap_or_else(|e| e.into_inner());
        report.rejected = Some(Rejected {
            generation,
            reason: reason[..cut].to_string(),
        });
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Bytes {
        let report = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Bytes::from(serde_json::to_vec(&report).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(status: &ConfigStatus) -> serde_json::Value {
        serde_json::from_slice(&status.to_json()).unwrap()
    }

    #[test]
    fn the_report_names_the_generation_in_use_and_the_last_refusal() {
        let status = ConfigStatus::default();
        assert_eq!(json(&status)["generation"], serde_json::Value::Null);
        status.applied(Some("g1".into()));
        status.rejected(Some("g2".into()), &"é".repeat(2000));
        let report = json(&status);
        assert_eq!(report["generation"], "g1");
        assert_eq!(report["applied"], 1);
        assert_eq!(report["rejected"]["generation"], "g2");
        assert_eq!(report["rejected"]["reason"].as_str().unwrap().len(), 1024);
        status.applied(Some("g3".into()));
        assert_eq!(json(&status)["rejected"], serde_json::Value::Null);
    }
}
