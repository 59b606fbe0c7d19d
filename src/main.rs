//! The `kavka` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "kavka",
    version,
    about = "A Kafka-compatible event-streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one broker node. With no arguments: node.id=0, listeners=PLAINTEXT://127.0.0.1:9092,
    /// log.dirs=./kavka-data, auto topic creation on, everything else Kafka's defaults.
    Broker(BrokerArgs),
}

#[derive(clap::Args)]
struct BrokerArgs {
    /// A Kafka server.properties file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one configuration key (repeatable), as Kafka's start script's --override.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Broker(args) => {
            init_logging(args.log_format);
            match run_broker(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // One plain line, not a log record: this is what an operator reads when start-up fails.
                    eprintln!("Error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KAVKA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(args: &BrokerArgs) -> anyhow::Result<kavka_config::BrokerConfig> {
    let mut pairs = Vec::new();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        pairs = kavka_config::parse_properties(&text)
            .with_context(|| format!("cannot parse config file {}", path.display()))?;
    }
    for o in &args.overrides {
        let (key, value) = o
            .split_once('=')
            .with_context(|| format!("--override {o:?} is not of the form key=value"))?;
        pairs.push((key.trim().to_string(), value.trim().to_string()));
    }
    let loaded = kavka_config::BrokerConfig::from_pairs(&pairs)?;
    for key in &loaded.unknown_keys {
        tracing::warn!(key = %key, "unknown configuration key ignored");
    }
    Ok(loaded.config)
}

fn run_broker(args: BrokerArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kavka-worker")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        kavka::server::run(config, shutdown_signal())
            .await
            .map_err(anyhow::Error::from)
    })?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
