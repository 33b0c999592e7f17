//! The metrics the code registers, read from the text exposition of fresh registries with one
//! sample in every family: the only list of metric names and labels the dashboard may use.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use agentgateway_compiler::{compile_standalone, parse_manifests};
use agentgateway_proxy::metrics::Metrics as ProxyMetrics;
use agentgateway_proxy::state::ProxyState;

use crate::Error;

/// Labels every series has once scraped: Prometheus adds `namespace` and `pod`, the chart's
/// PodMonitor adds `gateway`, histograms have `le`.
const SCRAPE_LABELS: [&str; 4] = ["namespace", "pod", "gateway", "le"];

/// A backend whose provider is in rotation and one whose provider has no key (the credentials
/// are dropped after compiling), both routed so that the config keeps them.
const PROVIDERS: &str = r#"
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: open, namespace: catalog}
spec:
  ai:
    provider: {host: 127.0.0.1, port: 9, openai: {model: m}}
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata: {name: keyed, namespace: catalog}
spec:
  ai:
    provider: {host: 127.0.0.1, port: 9, openai: {model: m}}
  policies:
    auth: {key: k}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: both, namespace: catalog}
spec:
  rules:
  - matches: [{path: {type: PathPrefix, value: /open}}]
    backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: open}]
  - matches: [{path: {type: PathPrefix, value: /keyed}}]
    backendRefs: [{group: agentgateway.dev, kind: AgentgatewayBackend, name: keyed}]
"#;

/// A metric's type as the exposition declares it (`# TYPE name type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Exposed as `name_total`.
    Counter,
    /// Exposed as `name`.
    Gauge,
    /// Exposed as `name_bucket`, `name_sum` and `name_count`.
    Histogram,
}

impl Kind {
    /// The suffixes of the sample names of a family of this kind.
    fn suffixes(self) -> &'static [&'static str] {
        match self {
            Self::Counter => &["_total"],
            Self::Gauge => &[""],
            Self::Histogram => &["_bucket", "_sum", "_count"],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        })
    }
}

/// One family: its type and the labels its samples carry.
#[derive(Clone, Debug)]
struct Family {
    kind: Kind,
    labels: BTreeSet<String>,
}

/// A sample name a query may use, with the labels it may group or filter by.
#[derive(Clone, Debug)]
pub struct Series {
    /// The sample name, e.g. `agentgateway_requests_total`.
    pub name: String,
    family: String,
    labels: BTreeSet<String>,
}

impl Series {
    /// `labels` (comma-separated, as in `by (a, b)`) if the series has every one of them.
    pub fn labels<'a>(&self, labels: &'a str) -> Result<&'a str, Error> {
        for label in labels.split(',').map(str::trim).filter(|l| !l.is_empty()) {
            if !self.labels.contains(label) && !SCRAPE_LABELS.contains(&label) {
                return Err(Error::UnknownLabel {
                    name: self.family.clone(),
                    label: label.to_string(),
                });
            }
        }
        Ok(labels)
    }
}

/// Metric families by name (`agentgateway_requests`, not `agentgateway_requests_total`).
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    families: BTreeMap<String, Family>,
}

impl Catalog {
    /// Every family the proxy and the operator (with its webhook) register.
    pub fn exported() -> Result<Self, Error> {
        let state = Arc::new(ProxyState::new(1, false));
        // Provider gauges are read from the running config: one provider in rotation and one
        // without its key give both a sample.
        let inputs = parse_manifests(&[("catalog.yaml".to_string(), PROVIDERS.to_string())])
            .map_err(|e| Error::Fixture(e.to_string()))?;
        let mut compiled =
            compile_standalone(&inputs).map_err(|e| Error::Fixture(e.to_string()))?;
        compiled.credentials.clear();
        state
            .apply(&compiled)
            .map_err(|e| Error::Fixture(e.to_string()))?;
        let proxy = ProxyMetrics::new(state, 1);
        proxy.touch_every_family();
        let (registry, operator, webhook) = agentgateway_operator::metrics::Metrics::with_webhook();
        operator.touch_every_family();
        webhook.touch_every_family();
        let mut catalog = Self::parse(&proxy.encode());
        catalog
            .families
            .extend(Self::parse(&agentgateway_operator::metrics::encode(&registry)).families);
        Ok(catalog)
    }

    /// The families declared by `# TYPE` lines of a text exposition (other types are left out),
    /// with the label names of their samples.
    pub fn parse(exposition: &str) -> Self {
        let mut families: BTreeMap<String, Family> = BTreeMap::new();
        for line in exposition.lines() {
            if let Some(declaration) = line.strip_prefix("# TYPE ") {
                let mut words = declaration.split_whitespace();
                let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                    continue;
                };
                let kind = match kind {
                    "counter" => Kind::Counter,
                    "gauge" => Kind::Gauge,
                    "histogram" => Kind::Histogram,
                    _ => continue,
                };
                families.insert(
                    name.to_string(),
                    Family {
                        kind,
                        labels: BTreeSet::new(),
                    },
                );
            } else if !line.starts_with('#') {
                let Some((sample, labels)) = line.split_once('{') else {
                    continue;
                };
                let Some(family) = families.iter_mut().find_map(|(name, family)| {
                    let rest = sample.strip_prefix(name.as_str())?;
                    family.kind.suffixes().contains(&rest).then_some(family)
                }) else {
                    continue;
                };
                // Label values here are the tool's own samples: plain words without `,` or `"`.
                for pair in labels.split(',') {
                    if let Some((label, _)) = pair.split_once('=') {
                        family.labels.insert(label.trim().to_string());
                    }
                }
            }
        }
        Self { families }
    }

    /// The series of counter `name`: `name_total`.
    pub fn counter(&self, name: &str) -> Result<Series, Error> {
        self.series(name, Kind::Counter, "_total")
    }

    /// The series of gauge `name`.
    pub fn gauge(&self, name: &str) -> Result<Series, Error> {
        self.series(name, Kind::Gauge, "")
    }

    /// The bucket series of histogram `name`: `name_bucket`.
    pub fn buckets(&self, name: &str) -> Result<Series, Error> {
        self.series(name, Kind::Histogram, "_bucket")
    }

    /// The sum series of histogram `name`: `name_sum`.
    pub fn sum(&self, name: &str) -> Result<Series, Error> {
        self.series(name, Kind::Histogram, "_sum")
    }

    /// Whether `series` is a sample name some family exposes.
    pub fn exposes(&self, series: &str) -> bool {
        self.families.iter().any(|(name, family)| {
            series
                .strip_prefix(name.as_str())
                .is_some_and(|rest| family.kind.suffixes().contains(&rest))
        })
    }

    fn series(&self, name: &str, expected: Kind, suffix: &str) -> Result<Series, Error> {
        match self.families.get(name) {
            Some(family) if family.kind == expected => Ok(Series {
                name: format!("{name}{suffix}"),
                family: name.to_string(),
                labels: family.labels.clone(),
            }),
            Some(family) => Err(Error::WrongKind {
                name: name.to_string(),
                expected,
                found: family.kind,
            }),
            None => Err(Error::NotExported {
                name: name.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_their_labels_come_from_the_exposition() {
        let catalog = Catalog::parse(
            "# HELP a_requests x\n# TYPE a_requests counter\na_requests_total{route=\"r\",status=\"200\"} 1\n# TYPE a_up gauge\na_up 1\n# TYPE a_lat histogram\na_lat_bucket{le=\"1\",model=\"m\"} 1\n# TYPE a_info info\n",
        );
        let requests = catalog.counter("a_requests").unwrap();
        assert_eq!(requests.name, "a_requests_total");
        assert!(requests.labels("route, status").is_ok());
        assert!(matches!(
            requests.labels("route, model"),
            Err(Error::UnknownLabel { .. })
        ));
        assert_eq!(catalog.gauge("a_up").unwrap().name, "a_up");
        assert!(
            catalog
                .buckets("a_lat")
                .unwrap()
                .labels("model, le")
                .is_ok()
        );
        assert!(catalog.exposes("a_lat_count"));
        assert!(!catalog.exposes("a_requests"));
        assert!(!catalog.exposes("a_info"));
        assert!(matches!(
            catalog.gauge("a_requests"),
            Err(Error::WrongKind { .. })
        ));
        assert!(matches!(
            catalog.counter("a_gone"),
            Err(Error::NotExported { .. })
        ));
    }

    #[test]
    fn the_exported_catalog_holds_proxy_operator_and_webhook_metrics() {
        let catalog = Catalog::exported().unwrap();
        for series in [
            "agentgateway_requests_total",
            "agentgateway_gen_ai_client_token_usage_sum",
            "agentgateway_gen_ai_server_time_to_first_token_bucket",
            "agentgateway_gen_ai_client_cost_usd_total",
            "agentgateway_provider_healthy",
            "agentgateway_provider_evictions_total",
            "agentgateway_operator_reconcile_errors_total",
            "agentgateway_webhook_requests_total",
        ] {
            assert!(catalog.exposes(series), "{series}");
        }
        let tokens = catalog
            .sum("agentgateway_gen_ai_client_token_usage")
            .unwrap();
        assert!(tokens.labels("model, gen_ai_token_type, consumer").is_ok());
        for gauge in [
            "agentgateway_provider_healthy",
            "agentgateway_provider_credential_missing",
        ] {
            assert!(
                catalog
                    .gauge(gauge)
                    .unwrap()
                    .labels("backend, provider")
                    .is_ok()
            );
        }
    }
}
