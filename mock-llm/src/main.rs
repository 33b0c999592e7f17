//! `mock-llm`: the mock OpenAI-, Azure OpenAI-, Anthropic-, Gemini-, Bedrock- and
//! Vertex AI-compatible server as a standalone process (demos, benchmarks).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agentgateway_mock_llm::{AwsCredentials, Fault, MockLlm, MockLlmConfig, ServiceAccountKey};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "mock-llm",
    version,
    about = "A deterministic OpenAI-, Azure OpenAI-, Anthropic-, Gemini-, Amazon Bedrock- and \
             Vertex AI-compatible test LLM server"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Model id reported by /v1/models and used when a request names none.
    #[arg(long, default_value = "mock-model")]
    model: String,
    /// Instance name, sent back in the x-mock-llm-instance header.
    #[arg(long, default_value = "mock-llm")]
    name: String,
    /// Reply text used when the prompt has no "Reply with exactly: X".
    #[arg(long)]
    reply: Option<String>,
    /// Pause between SSE events, in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Fault applied to every request, e.g. "status=429;retry-after=3", "delay-ms=200" or
    /// "error-after=3".
    #[arg(long)]
    fault: Option<Fault>,
    /// Do not keep requests in memory (for long benchmark runs).
    #[arg(long)]
    no_record: bool,
    /// Worker threads; 1 runs everything on a single-threaded runtime.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
    /// Bedrock: requests must be SigV4-signed with this access key id (and the secret key).
    #[arg(long, env = "AWS_ACCESS_KEY_ID", requires = "aws_secret_access_key")]
    aws_access_key_id: Option<String>,
    /// Bedrock: the secret access key of --aws-access-key-id.
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        hide_env_values = true,
        requires = "aws_access_key_id"
    )]
    aws_secret_access_key: Option<String>,
    /// Bedrock: the session token of temporary credentials, required as x-amz-security-token.
    #[arg(
        long,
        env = "AWS_SESSION_TOKEN",
        hide_env_values = true,
        requires = "aws_access_key_id"
    )]
    aws_session_token: Option<String>,
    /// Vertex AI: a Google service-account key (JSON); /token then verifies JWT grants against
    /// it and Vertex AI routes require a token /token issued.
    #[arg(long, value_name = "FILE")]
    vertex_service_account: Option<PathBuf>,
    /// Vertex AI: life of the access tokens /token issues, in seconds.
    #[arg(long, default_value_t = 3599)]
    vertex_token_ttl_s: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(args.threads))
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mock-llm: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "mock-llm failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> std::io::Result<()> {
    let vertex_service_account = match &args.vertex_service_account {
        None => None,
        Some(path) => Some(ServiceAccountKey::from_file(path).map_err(|e| {
            std::io::Error::other(format!("--vertex-service-account {}: {e}", path.display()))
        })?),
    };
    let aws = match (args.aws_access_key_id, args.aws_secret_access_key) {
        (Some(id), Some(secret)) => Some(AwsCredentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token: args.aws_session_token,
        }),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let config = MockLlmConfig {
        name: args.name,
        model: args.model,
        reply: args.reply,
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
        record: !args.no_record,
        aws,
        vertex_service_account,
        vertex_token_ttl: Duration::from_secs(args.vertex_token_ttl_s),
    };
    let server = MockLlm::start_on(listener, config).await?;
    if let Some(fault) = &args.fault {
        server.set_fault(Some(fault.clone()));
    }
    tracing::info!(
        addr = %server.addr(),
        model = %server.config().model,
        name = %server.config().name,
        fault = args.fault.as_ref().map(|f| f.to_string()),
        sigv4 = server.config().aws.is_some(),
        vertex_auth = server.config().vertex_service_account.is_some(),
        "mock-llm listening"
    );
    shutdown_signal().await?;
    tracing::info!("mock-llm shutting down");
    server.shutdown();
    Ok(())
}

#[cfg(unix)]
async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        res = tokio::signal::ctrl_c() => res,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
