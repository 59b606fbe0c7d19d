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
    /// Local clusters for development and tests.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Prepare log directories before a node's first start (Kafka's kafka-storage tool).
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Create the certificates of a TLS-secured cluster: a CA, node and client certificates with their
    /// PKCS#12 keystores, a truststore, and ready-to-use client property files (no openssl or keytool
    /// needed). Subjects are CN=<name>,O=Kavka; a client's mTLS principal is User:CN=<name>,O=Kavka.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Create, list, describe, alter and delete topics (Kafka's kafka-topics).
    Topics(kavka::tools::topics::TopicsArgs),
    /// Produce stdin lines as records (Kafka's kafka-console-producer).
    ConsoleProducer(kavka::tools::console_producer::ConsoleProducerArgs),
    /// Print records of a topic (Kafka's kafka-console-consumer).
    ConsoleConsumer(kavka::tools::console_consumer::ConsoleConsumerArgs),
    /// List, describe, delete consumer groups and reset their offsets (Kafka's kafka-consumer-groups).
    ConsumerGroups(kavka::tools::consumer_groups::ConsumerGroupsArgs),
    /// Describe and alter topic, broker and user configs (Kafka's kafka-configs).
    Configs(kavka::tools::configs::ConfigsArgs),
    /// Add, remove and list ACLs (Kafka's kafka-acls).
    Acls(kavka::tools::acls::AclsArgs),
    /// Add, delete and describe users' SCRAM credentials (Kafka's kafka-configs --entity-type users).
    Users(kavka::tools::users::UsersArgs),
    /// Measure produce and consume throughput and latency (Kafka's perf-test tools).
    #[command(subcommand)]
    Perf(kavka::tools::perf::PerfCommand),
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Create the cluster's CA: ca.pem, ca-key.pem, and truststore.p12 (the CA as a trusted entry; its
    /// password in truststore.password unless --password is given). Valid for 10 years.
    Ca(CertsCommonArgs),
    /// Issue a node (broker/controller) certificate signed by the CA, for TLS server and client use:
    /// <name>.pem (leaf then CA), <name>-key.pem (PKCS#8), <name>.p12 (key and chain).
    Node(CertsNodeArgs),
    /// Issue a client certificate signed by the CA, with <name>.pem, <name>-key.pem, <name>.p12 and the
    /// property files <name>-client-ssl.properties (Java clients and Kafka's tools) and
    /// <name>-librdkafka.properties.
    Client(CertsClientArgs),
}

#[derive(clap::Args)]
struct CertsCommonArgs {
    /// Directory the files are written to; `node` and `client` read the CA from it too.
    #[arg(long, value_name = "DIR", default_value = kavka::certs::DEFAULT_DIR)]
    out: PathBuf,
    /// Password of the keystore (and, for `ca`, the truststore). Default: a generated one, written to
    /// DIR/<name>.password (DIR/truststore.password for the truststore).
    #[arg(long, value_name = "P")]
    password: Option<String>,
    /// Replace an existing CA or certificate of the same name.
    #[arg(long)]
    force: bool,
}

impl CertsCommonArgs {
    fn options(&self) -> kavka::certs::Options {
        kavka::certs::Options {
            dir: self.out.clone(),
            password: self.password.clone(),
            force: self.force,
        }
    }
}

#[derive(clap::Args)]
struct CertsNodeArgs {
    /// The node's name: the certificate's CN and the files' base name.
    #[arg(long, value_name = "NAME")]
    name: String,
    /// A DNS name the node's listeners are reached by (repeatable). Default, when neither --dns nor --ip
    /// is given: the node's name.
    #[arg(long = "dns", value_name = "HOST")]
    dns: Vec<String>,
    /// An IP address the node's listeners are reached by (repeatable).
    #[arg(long = "ip", value_name = "ADDR")]
    ips: Vec<std::net::IpAddr>,
    #[command(flatten)]
    common: CertsCommonArgs,
}

#[derive(clap::Args)]
struct CertsClientArgs {
    /// The client's name: the certificate's CN and the files' base name.
    #[arg(long, value_name = "NAME")]
    name: String,
    #[command(flatten)]
    common: CertsCommonArgs,
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Print a new random cluster id.
    RandomUuid,
    /// Format the log directories of a node's configuration: write meta.properties with the cluster id
    /// and, for the first controllers of a dynamic quorum (controller.quorum.bootstrap.servers), the
    /// initial voters. Nodes with controller.quorum.voters, or with neither quorum key, may skip this:
    /// they format themselves at first start.
    Format(FormatArgs),
}

#[derive(clap::Args)]
struct FormatArgs {
    /// The cluster id every node of the cluster shares (`kavka storage random-uuid` makes one).
    #[arg(long, short = 't', value_name = "ID")]
    cluster_id: String,
    /// The node's server.properties.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override one configuration key (repeatable), as `kavka broker --override`.
    #[arg(long = "override", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// This controller alone is the first voter of a new dynamic quorum; others join it later.
    #[arg(long, short = 's', group = "quorum")]
    standalone: bool,
    /// The first voters of a new dynamic quorum, the same list on each of them:
    /// id@host:port[:directory-id],...
    #[arg(long, short = 'I', value_name = "LIST", group = "quorum")]
    initial_controllers: Option<String>,
    /// This controller joins a dynamic quorum that already runs.
    #[arg(long, short = 'N', group = "quorum")]
    no_initial_controllers: bool,
    /// Skip log directories that are already formatted instead of failing.
    #[arg(long, short = 'g')]
    ignore_formatted: bool,
    /// A SCRAM user that exists from the cluster's first start (repeatable), as Kafka's option:
    /// 'SCRAM-SHA-256=[name=alice,password=alice-secret]' (also iterations=, or salt= and
    /// saltedpassword= in base64). Needed when nodes log in to each other with SCRAM.
    #[arg(long, short = 'S', value_name = "CREDENTIAL")]
    add_scram: Vec<String>,
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Start N combined broker+controller nodes on 127.0.0.1, each its own process, and supervise
    /// them until Ctrl-C or SIGTERM. Prints `bootstrap.servers=...` on stdout once every node is ready
    /// (with --secure, then one `client properties (...): FILE` line per client property file).
    Up(ClusterUpArgs),
    /// Show a cluster's health: cluster id, brokers (fenced ones marked), the active controller, the
    /// metadata quorum with each replica's lag, and the under-replicated and offline partitions.
    Status(kavka::tools::cluster_status::ClusterStatusArgs),
}

#[derive(clap::Args)]
struct ClusterUpArgs {
    /// Number of nodes (node ids 1..=N).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    nodes: u16,
    /// Cluster directory; node i keeps its configuration, data, log and pid file in DIR/node-<i>.
    #[arg(long, value_name = "DIR", default_value = "./kavka-cluster")]
    dir: PathBuf,
    /// Client port of node 1; node i listens on P+i-1.
    #[arg(long, value_name = "P", default_value_t = 9092)]
    base_port: u16,
    /// Controller port of node 1; node i listens on C+i-1. Default: base port + 100.
    #[arg(long, value_name = "C")]
    controller_base_port: Option<u16>,
    /// How long every node has to answer a Metadata request listing all nodes.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    ready_timeout_secs: u64,
    /// Mutual TLS on every listener (clients, inter-broker, controller): certificates in DIR/certs,
    /// created with `kavka certs` when missing (a CA, node-<i> per node, client `admin`) and reused
    /// otherwise. A directory created with --secure must always be started with it, and one created
    /// without it never.
    #[arg(long)]
    secure: bool,
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
        Command::Cluster(ClusterCommand::Up(args)) => exit_with(run_cluster_up(args)),
        Command::Storage(StorageCommand::RandomUuid) => {
            println!("{}", kavka::meta_properties::new_cluster_id());
            ExitCode::SUCCESS
        }
        Command::Storage(StorageCommand::Format(args)) => exit_with(run_format(args)),
        Command::Certs(command) => exit_with(run_certs(command)),
        Command::Cluster(ClusterCommand::Status(args)) => {
            run_tool(kavka::tools::cluster_status::run(args))
        }
        Command::Acls(args) => run_tool(kavka::tools::acls::run(args)),
        Command::Users(args) => run_tool(kavka::tools::users::run(args)),
        Command::Configs(args) => run_tool(kavka::tools::configs::run(args)),
        Command::Topics(args) => run_tool(kavka::tools::topics::run(args)),
        Command::ConsoleProducer(args) => run_tool(kavka::tools::console_producer::run(args)),
        Command::ConsoleConsumer(args) => run_tool(kavka::tools::console_consumer::run(args)),
        Command::ConsumerGroups(args) => run_tool(kavka::tools::consumer_groups::run(args)),
        Command::Perf(command) => run_tool(kavka::tools::perf::run(command)),
    }
}

/// Runs an operator command on a small runtime; an error is one `Error: ...` line and exit code 1.
fn run_tool(
    command: impl std::future::Future<Output = Result<(), kavka::client::ClientError>>,
) -> ExitCode {
    // Output piped into a reader that stops early (`kavka topics --list | head`) ends the process
    // quietly, as other Unix tools do, instead of a panic in println! (Rust ignores SIGPIPE).
    // SAFETY: restoring a signal's default disposition before any thread is started.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A command's result as its exit code, an error as one line on stderr.
fn exit_with(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_format(args: FormatArgs) -> anyhow::Result<()> {
    use kavka::storage_format::{
        format, parse_initial_controllers, FormatRequest, InitialControllers,
    };
    let config = read_config(args.config.as_deref(), &args.overrides)?;
    let initial_controllers = if args.standalone {
        Some(InitialControllers::Standalone)
    } else if let Some(list) = &args.initial_controllers {
        Some(InitialControllers::Listed(parse_initial_controllers(list)?))
    } else if args.no_initial_controllers {
        Some(InitialControllers::None)
    } else {
        None
    };
    let request = FormatRequest {
        cluster_id: args.cluster_id,
        initial_controllers,
        ignore_formatted: args.ignore_formatted,
        scram: args
            .add_scram
            .iter()
            .map(|arg| kavka::security::scram_bootstrap::parse_add_scram(arg))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("--add-scram: {e}"))?,
    };
    let formatted = format(&config, &request)?;
    if formatted.is_empty() {
        println!("All of the log directories are already formatted.");
    }
    for dir in formatted {
        println!("Formatted {}", dir.display());
    }
    Ok(())
}

fn run_certs(command: CertsCommand) -> anyhow::Result<()> {
    use kavka::certs::{self, FileEvent};
    let mut report = |event: FileEvent<'_>| println!("{event}");
    match command {
        CertsCommand::Ca(args) => certs::create_ca(&args.options(), &mut report)?,
        CertsCommand::Node(args) => certs::create_node(
            &args.common.options(),
            &args.name,
            &args.dns,
            &args.ips,
            &mut report,
        )?,
        CertsCommand::Client(args) => {
            certs::create_client(&args.common.options(), &args.name, &mut report)?
        }
    }
    Ok(())
}

/// Kavka's own events at info; openraft only for errors, and not its replication retries to a controller
/// that is down (Kavka logs leader changes and unreachable controllers itself, once per change). `KAVKA_LOG` replaces this (e.g. `KAVKA_LOG=info,openraft=info`).
const DEFAULT_LOG_FILTER: &str = "info,openraft=error,openraft::replication=off";

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KAVKA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
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
    read_config(args.config.as_deref(), &args.overrides)
}

/// A properties file, if given, with `--override`s applied after it.
fn read_config(
    file: Option<&std::path::Path>,
    overrides: &[String],
) -> anyhow::Result<kavka_config::BrokerConfig> {
    let mut pairs = Vec::new();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        pairs = kavka_config::parse_properties(&text)
            .with_context(|| format!("cannot parse config file {}", path.display()))?;
    }
    for o in overrides {
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

fn run_cluster_up(args: ClusterUpArgs) -> anyhow::Result<()> {
    use kavka::cluster::local_up::{ClusterLayout, LocalCluster};
    use std::io::Write;

    // Absolute, because the directory is written into every node's log.dirs and restart hints.
    let dir = std::path::absolute(&args.dir)
        .with_context(|| format!("cannot resolve {}", args.dir.display()))?;
    let layout = ClusterLayout::new(args.nodes, &dir, args.base_port, args.controller_base_port)?
        .with_tls(args.secure);
    let exe = std::env::current_exe().context("cannot find the kavka executable")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let shutdown = shutdown_signal();
        tokio::pin!(shutdown);
        // Poll the signal future once so its handlers are installed before any node is spawned: a
        // SIGTERM arriving during start-up must stop the nodes, not kill this process and orphan them.
        tokio::select! {
            biased;
            _ = &mut shutdown => return Ok(()),
            _ = std::future::ready(()) => {}
        }
        let mut cluster = LocalCluster::start(layout, exe).await?;
        let timeout = std::time::Duration::from_secs(args.ready_timeout_secs);
        let ready = tokio::select! {
            r = cluster.wait_ready(timeout) => Some(r),
            _ = &mut shutdown => None,
        };
        match ready {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                report_stragglers(cluster.stop().await);
                return Err(e.into());
            }
            None => {
                eprintln!(
                    "kavka cluster up: interrupted before the cluster was ready; stopping it"
                );
                report_stragglers(cluster.stop().await);
                return Ok(());
            }
        }
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "bootstrap.servers={}", cluster.bootstrap_servers())
                .and_then(|_| {
                    for (what, path) in cluster.client_property_files() {
                        writeln!(out, "client properties ({what}): {}", path.display())?;
                    }
                    out.flush()
                })
                .context("cannot write to stdout")?;
        }
        eprintln!("{}", cluster.hints());
        cluster
            .supervise(&mut shutdown, |msg| eprintln!("{msg}"))
            .await;
        eprintln!("kavka cluster up: stopping all nodes");
        report_stragglers(cluster.stop().await);
        eprintln!("kavka cluster up: all nodes stopped");
        Ok(())
    })
}

fn report_stragglers(killed: Vec<String>) {
    for line in killed {
        eprintln!("kavka cluster up: {line}");
    }
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
