//! What the dashboard shows: traffic, errors, latency and time to first token, tokens and cost,
//! provider health and evictions, limits and overload, config reloads, and the operator. Every
//! series is named through the [`Catalog`], never typed out.

use serde_json::Value;

use crate::Error;
use crate::catalog::{Catalog, Series};
use crate::grafana::{self, Layout, Panel, Query};

/// The proxies' series of the selected namespaces and Gateways (`namespace` comes from the
/// scrape, `gateway` from the chart's PodMonitor relabelling of the proxy pods' Gateway label).
const PROXIES: &str = r#"namespace=~"$namespace", gateway=~"$gateway""#;
/// Grafana's rate window: at least four scrape intervals.
const WINDOW: &str = "$__rate_interval";

/// The selector of the proxies' `series`, narrowed by `filter` (a label and a regular expression
/// its value must match).
fn select(series: &Series, filter: Option<(&str, &str)>) -> Result<String, Error> {
    Ok(match filter {
        Some((label, pattern)) => format!(
            r#"{}{{{PROXIES}, {}=~"{pattern}"}}"#,
            series.name,
            series.labels(label)?
        ),
        None => format!("{}{{{PROXIES}}}", series.name),
    })
}

/// `sum by (by) (rate(series[WINDOW]))` over the selected proxies.
fn rate_by(by: &str, series: &Series, filter: Option<(&str, &str)>) -> Result<String, Error> {
    Ok(format!(
        "sum by ({}) (rate({}[{WINDOW}]))",
        series.labels(by)?,
        select(series, filter)?
    ))
}

/// `sum(rate(series[WINDOW]))` over the selected proxies.
fn rate_sum(series: &Series, filter: Option<(&str, &str)>) -> Result<String, Error> {
    Ok(format!("sum(rate({}[{WINDOW}]))", select(series, filter)?))
}

/// The p50, p95 and p99 of a histogram's buckets over the selected proxies.
fn percentiles(buckets: &Series) -> Result<Vec<Query>, Error> {
    let mut queries = Vec::new();
    for (q, legend) in [("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")] {
        queries.push(Query {
            expr: format!("histogram_quantile({q}, {})", rate_by("le", buckets, None)?),
            legend,
        });
    }
    Ok(queries)
}

/// The share of requests whose status matches `status`.
fn status_share(requests: &Series, status: &str, legend: &'static str) -> Result<Query, Error> {
    Ok(Query {
        expr: format!(
            "{} / clamp_min({}, 1e-9)",
            rate_sum(requests, Some(("status", status)))?,
            rate_sum(requests, None)?,
        ),
        legend,
    })
}

/// `sum by (by) (series)` of a gauge over the selected proxies, or of `1 - series` when
/// `complement`.
fn gauge_by(by: &str, series: &Series, complement: bool) -> Result<String, Error> {
    let one_minus = if complement { "1 - " } else { "" };
    Ok(format!(
        "sum by ({}) ({one_minus}{})",
        series.labels(by)?,
        select(series, None)?
    ))
}

/// `sum by (by) (rate(series[WINDOW]))` of an operator series (no proxy selector).
fn operator_rate_by(by: &str, series: &Series) -> Result<String, Error> {
    Ok(format!(
        "sum by ({}) (rate({}[{WINDOW}]))",
        series.labels(by)?,
        series.name
    ))
}

/// The dashboard, with every series and label checked against `catalog`.
pub fn dashboard(catalog: &Catalog) -> Result<Value, Error> {
    let requests = catalog.counter("agentgateway_requests")?;
    let mut layout = Layout::default();

    layout.row("Traffic");
    layout.panel(Panel {
        title: "Requests per second by route",
        description: "Requests the proxies answered, by HTTPRoute (namespace/name).",
        unit: "reqps",
        queries: vec![Query {
            expr: rate_by("route", &requests, None)?,
            legend: "{{route}}",
        }],
    });
    layout.panel(Panel {
        title: "Error ratio",
        description: "Share of requests answered 5xx (the gateway or providers failed), 429 (rate limits and budgets) and other 4xx (client mistakes).",
        unit: "percentunit",
        queries: vec![
            status_share(&requests, "5..", "5xx")?,
            status_share(&requests, "429", "429")?,
            status_share(&requests, "4([0-1]|[3-9]).|42[0-8]", "other 4xx")?,
        ],
    });

    layout.row("Latency");
    layout.panel(Panel {
        title: "Request duration",
        description: "Whole requests, streams included, from the proxy's first byte in to its last byte out.",
        unit: "s",
        queries: percentiles(&catalog.buckets("agentgateway_gen_ai_server_request_duration")?)?,
    });
    layout.panel(Panel {
        title: "Time to first token",
        description: "Streamed requests: time until the first content chunk reached the client.",
        unit: "s",
        queries: percentiles(&catalog.buckets("agentgateway_gen_ai_server_time_to_first_token")?)?,
    });

    layout.row("Tokens and cost");
    layout.panel(Panel {
        title: "Tokens per second by model",
        description: "Input and output tokens the providers reported, by model.",
        unit: "short",
        queries: vec![Query {
            expr: rate_by(
                "model, gen_ai_token_type",
                &catalog.sum("agentgateway_gen_ai_client_token_usage")?,
                None,
            )?,
            legend: "{{model}} {{gen_ai_token_type}}",
        }],
    });
    layout.panel(Panel {
        title: "Cost per hour by consumer",
        description: "US dollars per hour at the providers' configured prices (cost), by API-key consumer (empty: no key).",
        unit: "currencyUSD",
        queries: vec![Query {
            expr: format!(
                "{} * 3600",
                rate_by(
                    "consumer",
                    &catalog.counter("agentgateway_gen_ai_client_cost_usd")?,
                    None
                )?
            ),
            legend: "{{consumer}}",
        }],
    });

    layout.row("Providers");
    layout.panel(Panel {
        title: "Providers out of rotation",
        description: "Proxies that have evicted the provider (passive health checking), and proxies whose credentials lack the provider's key.",
        unit: "short",
        queries: vec![
            Query {
                expr: gauge_by(
                    "backend, provider",
                    &catalog.gauge("agentgateway_provider_healthy")?,
                    true,
                )?,
                legend: "evicted {{backend}} {{provider}}",
            },
            Query {
                expr: gauge_by(
                    "backend, provider",
                    &catalog.gauge("agentgateway_provider_credential_missing")?,
                    false,
                )?,
                legend: "no key {{backend}} {{provider}}",
            },
        ],
    });
    layout.panel(Panel {
        title: "Evictions",
        description: "Providers taken out of rotation after failures, per second.",
        unit: "short",
        queries: vec![Query {
            expr: rate_by(
                "backend, provider",
                &catalog.counter("agentgateway_provider_evictions")?,
                None,
            )?,
            legend: "{{backend}} {{provider}}",
        }],
    });

    layout.row("Limits, overload and TLS");
    layout.panel(Panel {
        title: "Rate-limit and budget decisions",
        description: "Per second, by scope (local, global, budget) and result (admitted, rejected, failed_open, failed_closed).",
        unit: "short",
        queries: vec![Query {
            expr: rate_by(
                "scope, result",
                &catalog.counter("agentgateway_rate_limit_decisions")?,
                None,
            )?,
            legend: "{{scope}} {{result}}",
        }],
    });
    layout.panel(Panel {
        title: "Overload rejections",
        description: "Requests and connections answered 503 overloaded, by exhausted budget (memory, connections).",
        unit: "short",
        queries: vec![Query {
            expr: rate_by(
                "reason",
                &catalog.counter("agentgateway_overload_rejections")?,
                None,
            )?,
            legend: "{{reason}}",
        }],
    });

    layout.panel(Panel {
        title: "TLS handshake failures",
        description: "Handshakes on HTTPS listeners that did not complete, per second, by listener and reason (timeout: not finished within --tls-handshake-timeout; error: protocol error, no shared version or cipher, unknown SNI without a default certificate).",
        unit: "short",
        queries: vec![Query {
            expr: rate_by(
                "listener, reason",
                &catalog.counter("agentgateway_tls_handshake_failures")?,
                None,
            )?,
            legend: "{{listener}} {{reason}}",
        }],
    });

    layout.row("Configuration");
    layout.panel(Panel {
        title: "Config reloads",
        description: "Configs the proxies loaded (success) or refused, keeping the previous one (failure), per second.",
        unit: "short",
        queries: vec![Query {
            expr: rate_by(
                "result",
                &catalog.counter("agentgateway_config_reloads")?,
                None,
            )?,
            legend: "{{result}}",
        }],
    });
    layout.panel(Panel {
        title: "Proxies serving a previous config",
        description: "Proxy pods whose last config was refused: they keep serving the one before it. Anything above 0 needs a look at the Gateway's status and the proxy's log.",
        unit: "short",
        queries: vec![Query {
            expr: gauge_by(
                "namespace, gateway",
                &catalog.gauge("agentgateway_config_last_reload_success")?,
                true,
            )?,
            legend: "{{namespace}}/{{gateway}}",
        }],
    });

    layout.row("Operator");
    layout.panel(Panel {
        title: "Reconciles and errors",
        description: "Reconciles per second by controller, and failed ones by controller and error.",
        unit: "short",
        queries: vec![
            Query {
                expr: operator_rate_by(
                    "controller",
                    &catalog.counter("agentgateway_operator_reconcile")?,
                )?,
                legend: "{{controller}}",
            },
            Query {
                expr: operator_rate_by(
                    "controller, error",
                    &catalog.counter("agentgateway_operator_reconcile_errors")?,
                )?,
                legend: "failed {{controller}} {{error}}",
            },
        ],
    });
    layout.panel(Panel {
        title: "Admission reviews",
        description: "AdmissionReviews per second, by webhook and result (allowed, denied, patched, malformed).",
        unit: "short",
        queries: vec![Query {
            expr: operator_rate_by(
                "webhook, result",
                &catalog.counter("agentgateway_webhook_requests")?,
            )?,
            legend: "{{webhook}} {{result}}",
        }],
    });

    let variables = vec![
        grafana::label_variable(
            "namespace",
            requests.labels("namespace")?,
            &format!(r#"{}{{gateway!=""}}"#, requests.name),
        ),
        grafana::label_variable(
            "gateway",
            requests.labels("gateway")?,
            &format!(r#"{}{{namespace=~"$namespace"}}"#, requests.name),
        ),
    ];
    Ok(grafana::dashboard(
        "agentgateway",
        "agentgateway",
        variables,
        layout.into_panels(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `agentgateway_*` word in every query, variable included.
    fn series_names(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(text) => {
                let mut rest = text.as_str();
                while let Some(at) = rest.find("agentgateway_") {
                    let word: String = rest[at..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    rest = &rest[at + word.len()..];
                    out.push(word);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| series_names(v, out)),
            Value::Object(map) => map.values().for_each(|v| series_names(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_series_the_dashboard_queries_is_exported() {
        let catalog = Catalog::exported().unwrap();
        let dashboard = dashboard(&catalog).unwrap();
        let mut names = Vec::new();
        series_names(&dashboard, &mut names);
        assert!(names.len() > 20, "{names:?}");
        for name in names {
            assert!(catalog.exposes(&name), "{name} is not exported");
        }
    }

    #[test]
    fn a_metric_the_code_no_longer_exports_fails_generation_naming_it() {
        let exposition = crate::Catalog::exported().unwrap();
        // The proxy's exposition as if `requests` had been renamed.
        let renamed = Catalog::parse("# TYPE agentgateway_http_requests counter\n");
        let error = dashboard(&renamed).unwrap_err().to_string();
        assert!(error.contains("agentgateway_requests"), "{error}");
        assert!(dashboard(&exposition).is_ok());
    }

    #[test]
    fn panels_fill_the_grid_without_overlap() {
        let dashboard = dashboard(&Catalog::exported().unwrap()).unwrap();
        let mut cells = std::collections::HashSet::new();
        for panel in dashboard["panels"].as_array().unwrap() {
            let pos = &panel["gridPos"];
            let (x, y, w, h) = (
                pos["x"].as_u64().unwrap(),
                pos["y"].as_u64().unwrap(),
                pos["w"].as_u64().unwrap(),
                pos["h"].as_u64().unwrap(),
            );
            assert!(x + w <= 24);
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(cells.insert((cx, cy)), "overlap at {cx},{cy}");
                }
            }
        }
    }
}
