//! `dashboard-gen`: prints the chart's Grafana dashboard (JSON) for the metrics the code exports.
//! `make generate` writes it to helm/agentgateway/dashboards/agentgateway.json; `make
//! check-generated` fails when the committed file differs or a queried metric is gone.

use std::process::ExitCode;

fn main() -> ExitCode {
    match agentgateway_dashboard::dashboard() {
        Ok(dashboard) => match serde_json::to_string_pretty(&dashboard) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("dashboard-gen: {error}");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            eprintln!("dashboard-gen: {error}");
            ExitCode::FAILURE
        }
    }
}
