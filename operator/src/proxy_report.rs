//! What a Gateway's proxy actually serves. Each ready replica reports the config generation it
//! has loaded (and the last one it rejected) on its readiness port, `GET /healthz/config`; the
//! operator asks through the API server's pod proxy (`pods/proxy`), which reaches pods wherever the
//! operator runs, and compares the answers with the generation it wrote.

use std::time::Duration;

use agentgateway_crds::conditions::reasons;
use agentgateway_crds::proxy_config::READY_PORT;
use http_body_util::{BodyExt, Limited};
use k8s_openapi::api::core::v1::Pod;
use kube::{Client, ResourceExt};
use serde::Deserialize;

use crate::controllers::gateway_status::Programming;

/// The path of the report on the readiness port.
pub const REPORT_PATH: &str = "/healthz/config";
/// How long one replica may take to answer.
const TIMEOUT: Duration = Duration::from_secs(3);
/// A report is a few hundred bytes; more is not read.
const MAX_REPORT_BYTES: usize = 16 * 1024;

/// What one replica says it serves.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The generation of the config it serves (`None` before the first one).
    #[serde(default)]
    pub generation: Option<String>,
    /// The last config it refused, if it refused one after the one it serves.
    #[serde(default)]
    pub rejected: Option<Rejected>,
}

/// A config a replica refused.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Rejected {
    /// Its generation, when it carried one.
    #[serde(default)]
    pub generation: Option<String>,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// Whether `pod` is ready and not going away: the replicas that serve traffic.
pub fn serves_traffic(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
}

/// Asks `pod` what it serves.
pub async fn fetch(client: &Client, pod: &Pod) -> Result<Report, String> {
    let namespace = pod.namespace().unwrap_or_default();
    let uri = format!(
        "/api/v1/namespaces/{namespace}/pods/{}:{READY_PORT}/proxy{REPORT_PATH}",
        pod.name_any()
    );
    let request = http::Request::get(uri)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = client.send(request.map(kube::client::Body::from)).await;
        let response = response.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_REPORT_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the report: {e}"))?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("the report answered {status}"));
        }
        serde_json::from_slice::<Report>(&body).map_err(|e| format!("unreadable report: {e}"))
    };
    match tokio::time::timeout(TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no report within {}s", TIMEOUT.as_secs())),
    }
}

/// How programming stands, from the reports of the replicas serving traffic (`pod name → report`)
/// and the generation the operator wrote.
pub fn programming(wanted: &str, reports: &[(String, Result<Report, String>)]) -> Programming {
    if reports.is_empty() {
        return Programming::Pending("waiting for a ready proxy replica".to_string());
    }
    let serving = reports
        .iter()
        .filter(|(_, r)| matches!(r, Ok(r) if r.generation.as_deref() == Some(wanted)))
        .count();
    if serving == reports.len() {
        return Programming::Serving {
            generation: wanted.to_string(),
        };
    }
    for (pod, report) in reports {
        if let Ok(Report {
            rejected: Some(rejected),
            ..
        }) = report
            && rejected.generation.as_deref() == Some(wanted)
        {
            return Programming::Failed {
                reason: reasons::CONFIG_REJECTED,
                message: format!(
                    "proxy replica {pod} rejected config generation {wanted}: {}",
                    rejected.reason
                ),
            };
        }
    }
    let mut message = format!(
        "{serving} of {} ready proxy replicas serve config generation {wanted}",
        reports.len()
    );
    if let Some((pod, Err(error))) = reports.iter().find(|(_, r)| r.is_err()) {
        message.push_str(&format!("; replica {pod}: {error}"));
    }
    Programming::Pending(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serving(generation: &str) -> Result<Report, String> {
        Ok(Report {
            generation: Some(generation.into()),
            rejected: None,
        })
    }

    #[test]
    fn programmed_when_every_ready_replica_serves_the_written_generation() {
        let reports = [
            ("a".to_string(), serving("g2")),
            ("b".into(), serving("g2")),
        ];
        assert_eq!(
            programming("g2", &reports),
            Programming::Serving {
                generation: "g2".into()
            }
        );
    }

    #[test]
    fn a_replica_on_an_older_generation_or_unreachable_keeps_it_pending() {
        let reports = [
            ("a".to_string(), serving("g2")),
            ("b".into(), serving("g1")),
        ];
        let Programming::Pending(message) = programming("g2", &reports) else {
            panic!("expected pending");
        };
        assert_eq!(
            message,
            "1 of 2 ready proxy replicas serve config generation g2"
        );
        let reports = [("a".to_string(), Err("no report within 3s".to_string()))];
        let Programming::Pending(message) = programming("g2", &reports) else {
            panic!("expected pending");
        };
        assert!(
            message.ends_with("replica a: no report within 3s"),
            "{message}"
        );
        assert!(matches!(programming("g2", &[]), Programming::Pending(_)));
    }

    #[test]
    fn a_rejection_of_the_written_generation_is_a_failure_naming_the_replica() {
        let rejected = Ok(Report {
            generation: Some("g1".into()),
            rejected: Some(Rejected {
                generation: Some("g2".into()),
                reason: "backends.ns/b: unknown field".into(),
            }),
        });
        let Programming::Failed { reason, message } =
            programming("g2", &[("a".to_string(), rejected)])
        else {
            panic!("expected a failure");
        };
        assert_eq!(reason, "ConfigRejected");
        assert!(message.contains("replica a rejected config generation g2"));
    }

    #[test]
    fn a_report_is_read_leniently() {
        let report: Report = serde_json::from_str(r#"{"generation":"g","extra":1}"#).unwrap();
        assert_eq!(report.generation.as_deref(), Some("g"));
        let empty: Report = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Report::default());
    }
}
