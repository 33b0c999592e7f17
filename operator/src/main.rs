//! The `agentgateway-operator` binary: flags, logging, then [`agentgateway_operator::run`].

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = agentgateway_operator::cli::Args::parse();
    agentgateway_operator::init_tracing(args.log_format);
    match agentgateway_operator::run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "operator stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
