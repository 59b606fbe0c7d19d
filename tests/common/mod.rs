//! Shared harness for the integration tests: starts the real `kavka` binary on a free loopback
//! port with its data in a temporary directory, and offers rdkafka and raw-protocol helpers.
//!
//! Every test gets its own broker process, so tests in one file run in parallel without
//! sharing state. When a test panics, the broker's log is printed so that the failure can be
//! read without re-running anything.
#![allow(dead_code)]

pub mod cluster;
pub mod replication;
pub mod tls;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiVersionsRequest, ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};

/// How long a broker may take to accept TCP connections after being spawned.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How many trailing lines of the broker log to print when a test fails.
const LOG_TAIL_LINES: usize = 300;
/// What every node logs once it is fully started (quorum reached, registered, serving).
const STARTED_LINE: &str = "Kavka broker started";

/// How [`Broker::wait_ready`] decides that a started process is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Its port accepts TCP connections: a single or combined broker+controller node opens its
    /// client listener only once it serves clients.
    Accepts,
    /// Its port answers ApiVersions: a broker-only node opens its inter-broker listener early (the
    /// metadata log reaches it there) but turns clients away until it is registered and caught up.
    Answers,
    /// It logged "Kavka broker started": a controller-only node has no client listener, and its
    /// controller listener accepts and answers from the start, before the quorum has a leader.
    LogsStarted,
}

/// A `kavka broker` child process owned by one test.
pub struct Broker {
    child: Option<Child>,
    /// The loopback port the broker listens on; kept across restarts.
    pub port: u16,
    data_dir: tempfile::TempDir,
    overrides: Vec<(String, String)>,
    /// Number of times the process was started, so each start gets its own log file.
    starts: u32,
    readiness: Readiness,
}

/// Picks a loopback port that is free right now. The kernel could hand it to someone else
/// before the broker binds it, but ephemeral ports are recycled slowly enough for tests.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

impl Broker {
    /// Starts a broker with the default configuration.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Starts a broker with extra `--override key=value` settings.
    pub fn start_with(overrides: &[(&str, &str)]) -> Broker {
        let mut broker = Broker::launch(free_port(), overrides);
        broker.wait_ready();
        broker
    }

    /// Starts the process on `port` without waiting for it to accept connections: a cluster node
    /// serves clients only once its quorum has a leader, so the nodes must all be launched first.
    pub fn launch(port: u16, overrides: &[(&str, &str)]) -> Broker {
        Broker::launch_formatted(port, overrides, None)
    }

    /// Like [`launch`](Self::launch); with `format = Some((cluster_id, node_id))` the data directory is
    /// formatted first (its `meta.properties` written), as every node of one cluster must share an id.
    pub fn launch_formatted(
        port: u16,
        overrides: &[(&str, &str)],
        format: Option<(&str, i32)>,
    ) -> Broker {
        Broker::launch_node(port, overrides, format, Readiness::Accepts)
    }

    /// Like [`launch_formatted`](Self::launch_formatted), with how [`wait_ready`](Self::wait_ready)
    /// (also on every restart) tells that the node is ready; `port` is the one it is probed on (a
    /// controller-only node's controller port).
    pub fn launch_node(
        port: u16,
        overrides: &[(&str, &str)],
        format: Option<(&str, i32)>,
        readiness: Readiness,
    ) -> Broker {
        let mut broker = Broker::unstarted(port, overrides, readiness);
        if let Some((cluster_id, node_id)) = format {
            std::fs::write(
                broker.data_dir().join("meta.properties"),
                format!("version=1\ncluster.id={cluster_id}\nnode.id={node_id}\n"),
            )
            .expect("write meta.properties");
        }
        broker.spawn_process();
        broker
    }

    /// Like [`launch_node`](Self::launch_node), but the data directory is formatted by the binary
    /// itself, as an operator would: `kavka storage format --override log.dirs=<data dir>
    /// --override <each of overrides>... <format_args>` (e.g. `--cluster-id ID --standalone`) must
    /// succeed before the node is launched; the test fails with its output otherwise.
    pub fn launch_storage_formatted(
        port: u16,
        overrides: &[(&str, &str)],
        format_args: &[String],
        readiness: Readiness,
    ) -> Broker {
        let mut broker = Broker::unstarted(port, overrides, readiness);
        let mut args: Vec<String> = vec![
            "storage".into(),
            "format".into(),
            "--override".into(),
            format!("log.dirs={}", broker.data_dir().display()),
        ];
        for (k, v) in &broker.overrides {
            args.push("--override".into());
            args.push(format!("{k}={v}"));
        }
        args.extend(format_args.iter().cloned());
        let run = run_kavka(&args, FORMAT_TIMEOUT);
        assert!(
            run.succeeded(),
            "expected `kavka {}` to format the data directory of the node on port {port}; {run}",
            args.join(" ")
        );
        broker.spawn_process();
        broker
    }

    /// A node whose data directory exists (empty) and whose process is not started yet.
    fn unstarted(port: u16, overrides: &[(&str, &str)], readiness: Readiness) -> Broker {
        let data_dir = tempfile::Builder::new()
            .prefix("kavka-test-")
            .tempdir()
            .expect("create temp dir");
        Broker {
            child: None,
            port,
            data_dir,
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            starts: 0,
            readiness,
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's socket address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The `log.dirs` directory.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// OS process id of the running broker.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is running").id()
    }

    fn log_path(&self, start: u32) -> PathBuf {
        // Outside log.dirs so the broker never sees a stray file in its data directory.
        self.data_dir
            .path()
            .with_extension(format!("broker-{start}.log"))
    }

    fn spawn(&mut self) {
        self.spawn_process();
        self.wait_ready();
    }

    fn spawn_process(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        self.starts += 1;
        let log_path = self.log_path(self.starts);
        let log = File::create(&log_path).expect("create broker log file");
        let log2 = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kavka"));
        cmd.arg("broker")
            .arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{}", self.port))
            .arg("--override")
            .arg(format!("log.dirs={}", self.data_dir.path().display()));
        for (k, v) in &self.overrides {
            cmd.arg("--override").arg(format!("{k}={v}"));
        }
        cmd.env(
            "RUST_LOG",
            std::env::var("KAVKA_TEST_LOG").unwrap_or_else(|_| "info".to_string()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2));
        let child = cmd.spawn().expect("spawn kavka binary");
        self.child = Some(child);
    }

    /// Waits until the node is ready as its [`Readiness`] says (by default: the client listener
    /// accepts connections); panics after a timeout or if the process exits.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.is_ready() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                panic!(
                    "broker exited during start-up with {status}\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "broker was not ready ({:?}) within {START_TIMEOUT:?}\n{}",
                    self.readiness,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn is_ready(&self) -> bool {
        match self.readiness {
            Readiness::Accepts => {
                TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok()
            }
            Readiness::Answers => self.answers_api_versions(),
            Readiness::LogsStarted => std::fs::read_to_string(self.log_path(self.starts))
                .is_ok_and(|log| log.contains(STARTED_LINE)),
        }
    }

    /// One ApiVersions (v0) round trip on a fresh connection succeeds; a node that is not serving
    /// clients yet closes the connection instead.
    fn answers_api_versions(&self) -> bool {
        let Ok(stream) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200))
        else {
            return false;
        };
        if stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .is_err()
        {
            return false;
        }
        let mut conn = RawConn {
            stream,
            correlation_id: 0,
        };
        conn.request(0, &ApiVersionsRequest::default())
            .is_ok_and(|response| response.error_code == 0)
    }

    /// True while the process has not exited.
    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// True unless the process was killed or terminated by the test (and not restarted); unlike
    /// [`is_alive`](Self::is_alive), it does not notice a process that died by itself.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, as in a crash: nothing is flushed by the broker.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for the process to exit; panics if it takes longer than `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut c = self.child.take().expect("broker is running");
        let pid = c.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = c.try_wait().expect("wait for broker") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "broker did not exit within {timeout:?} of SIGTERM\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the process again on the same port and data directory (after `kill9` or
    /// `terminate`).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.kill9();
        }
        self.spawn();
    }

    /// Resident set size of the broker process in KiB, from `/proc/<pid>/status`.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc status")
    }

    /// The whole log of every start of this broker, in order.
    pub fn log(&self) -> String {
        let mut out = String::new();
        for s in 1..=self.starts {
            out.push_str(&format!("----- broker start #{s} -----\n"));
            if let Ok(text) = std::fs::read_to_string(self.log_path(s)) {
                out.push_str(&text);
            }
        }
        out
    }

    /// The lines of the log (every start) that contain `needle`.
    pub fn log_lines_containing(&self, needle: &str) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// Polls the log until a line contains `needle` and returns that line; panics with the log's
    /// tail after `limit`, saying `what` was expected.
    pub fn wait_for_log_line(&self, needle: &str, limit: Duration, what: &str) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(line) = self.log_lines_containing(needle).into_iter().next() {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "expected {what} (a log line containing {needle:?}) within {limit:?} on the node on \
                 port {}\n{}",
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "===== kavka log (port {}) =====\n{}\n===== end of kavka log =====",
            self.port,
            lines[from..].join("\n")
        )
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        self.kill9();
        for s in 1..=self.starts {
            let _ = std::fs::remove_file(self.log_path(s));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One-shot `kavka` commands (`kavka storage ...`, a broker expected to refuse to start)

/// How long `kavka storage format` may take.
pub const FORMAT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a one-shot `kavka` process did.
#[derive(Debug)]
pub struct KavkaRun {
    /// How it exited; `None` if it was still running at the deadline (it was then killed).
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl KavkaRun {
    /// Its exit code; `None` if it was killed, by a signal or at the deadline.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// It exited with code 0.
    pub fn succeeded(&self) -> bool {
        self.code() == Some(0)
    }
}

impl std::fmt::Display for KavkaRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(status) => write!(f, "it exited with {status}")?,
            None => write!(f, "it did not exit in time and was killed")?,
        }
        write!(
            f,
            "\n----- stdout -----\n{}\n----- stderr -----\n{}\n----- end -----",
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs the `kavka` binary with `args` (and the tests' log level), waits up to `timeout` for it to
/// exit (killing it then) and returns what it did.
pub fn run_kavka(args: &[String], timeout: Duration) -> KavkaRun {
    // Files rather than pipes: a chatty process can never block on a full pipe.
    let mut out = tempfile::tempfile().expect("stdout file");
    let mut err = tempfile::tempfile().expect("stderr file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kavka"))
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("KAVKA_TEST_LOG").unwrap_or_else(|_| "info".to_string()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().expect("clone stdout file")))
        .stderr(Stdio::from(err.try_clone().expect("clone stderr file")))
        .spawn()
        .expect("spawn kavka binary");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for kavka") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |file: &mut File| {
        use std::io::Seek;
        let mut text = String::new();
        file.rewind().expect("rewind output file");
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).expect("read output file");
        text.push_str(&String::from_utf8_lossy(&bytes));
        text
    };
    KavkaRun {
        status,
        stdout: read(&mut out),
        stderr: read(&mut err),
    }
}

// ---------------------------------------------------------------------------------------------
// rdkafka helpers

/// A client config pointing at `broker`, with fast metadata refresh so that new topics are
/// seen quickly.
pub fn client_config(broker: &Broker) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", broker.bootstrap())
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("socket.timeout.ms", "10000")
        .set("api.version.request.timeout.ms", "5000");
    if let Ok(debug) = std::env::var("KAVKA_TEST_RDKAFKA_DEBUG") {
        cfg.set("debug", debug);
    }
    cfg
}

/// A `FutureProducer` with the given extra settings.
pub fn producer(broker: &Broker, extra: &[(&str, &str)]) -> FutureProducer {
    let mut cfg = client_config(broker);
    cfg.set("message.timeout.ms", "20000");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("create producer")
}

/// A `BaseConsumer` that never joins its group: partitions are assigned by the test with
/// `assign()` and nothing is committed. librdkafka refuses `assign()` without a `group.id`
/// ("Local: Unknown group"), so one is set, but no group API is exercised.
pub fn consumer(broker: &Broker, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut cfg = client_config(broker);
    cfg.set("group.id", "kavka-it-assign-only")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("create consumer")
}

/// An admin client.
pub fn admin(broker: &Broker) -> AdminClient<DefaultClientContext> {
    client_config(broker).create().expect("create admin client")
}

/// Creates `name` with `partitions` partitions through the Admin API and fails the test on
/// any error.
pub async fn create_topic(broker: &Broker, name: &str, partitions: i32) {
    let admin = admin(broker);
    let res = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("CreateTopics request");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }
}

/// Assigns `consumer` to `topic`/`partition` from `offset` and reads `count` messages, failing
/// the test if they do not all arrive within `timeout` or if the client reports an error.
pub fn consume_exact(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    offset: Offset,
    count: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, offset)
        .expect("add partition");
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        if Instant::now() > deadline {
            panic!(
                "received {} of {count} messages from {topic}/{partition} within {timeout:?}",
                out.len()
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(e)) => panic!("consumer error on {topic}/{partition}: {e}"),
            None => {}
        }
    }
    out
}

/// Like `consume_exact`, but then waits `quiet` more and fails if anything else arrives.
pub fn consume_all(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    count: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let out = consume_exact(
        consumer,
        topic,
        partition,
        Offset::Beginning,
        count,
        timeout,
    );
    let quiet_until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < quiet_until {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            panic!(
                "unexpected extra message at offset {} of {topic}/{partition}",
                m.offset()
            );
        }
    }
    out
}

/// A topic name unique within this process run.
pub fn topic_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------------------------
// Raw protocol client, for requests that rdkafka cannot be made to send (retried batches with
// chosen sequence numbers, hostile frames).

/// A blocking Kafka protocol connection that encodes requests with `kafka-protocol`.
pub struct RawConn {
    /// The TCP stream; public so that tests can write arbitrary bytes.
    pub stream: TcpStream,
    correlation_id: i32,
}

impl RawConn {
    /// Connects with a 10 s read timeout.
    pub fn connect(broker: &Broker) -> RawConn {
        let stream = TcpStream::connect(broker.addr()).expect("connect to broker");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set timeout");
        stream.set_nodelay(true).expect("nodelay");
        RawConn {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends one request at `version` and decodes its response.
    pub fn request<R: Request>(&mut self, version: i16, req: &R) -> anyhow::Result<R::Response> {
        self.correlation_id += 1;
        let corr = self.correlation_id;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("kavka-it")));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version))?;
        req.encode(&mut body, version)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(i32::try_from(body.len())?);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame)?;
        let mut resp = self.read_frame()?;
        let rh = ResponseHeader::decode(&mut resp, R::Response::header_version(version))?;
        anyhow::ensure!(
            rh.correlation_id == corr,
            "correlation id {} != {corr}",
            rh.correlation_id
        );
        let decoded = R::Response::decode(&mut resp, version)?;
        Ok(decoded)
    }

    /// Reads one length-prefixed frame (bounded to 64 MiB so a bad length cannot blow up the
    /// test process).
    pub fn read_frame(&mut self) -> anyhow::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        anyhow::ensure!(
            (0..64 << 20).contains(&len),
            "bad response frame length {len}"
        );
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(Bytes::from(buf))
    }
}

/// The Produce version [`raw_produce`] sends.
pub const PRODUCE_VERSION: i16 = 9;

/// Sends one raw Produce of `records` to `topic`/`partition` and returns that partition's answer.
pub fn raw_produce(
    conn: &mut RawConn,
    topic: &str,
    partition: i32,
    acks: i16,
    timeout_ms: i32,
    records: Bytes,
) -> PartitionProduceResponse {
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])]);
    let mut response = conn.request(PRODUCE_VERSION, &request).expect("Produce");
    response
        .responses
        .swap_remove(0)
        .partition_responses
        .swap_remove(0)
}

/// Record `i` of a hand-made batch: value `{tag}-{i}`, no key, creation time
/// 1_700_000_000_000 + `i`, and no producer (id and epoch -1, base sequence -1); override fields
/// with `Record { .., ..raw_record(i, tag) }`.
pub fn raw_record(i: usize, tag: &str) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i as i64,
        sequence: i as i32 - 1,
        timestamp: 1_700_000_000_000 + i as i64,
        key: None,
        value: Some(Bytes::from(format!("{tag}-{i}"))),
        headers: Default::default(),
    }
}

/// `records` as one uncompressed v2 batch.
pub fn encode_batch(records: &[Record]) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode batch");
    buf.freeze()
}

/// Waits up to `limit` and says whether the broker reacted
/// (closed the connection or sent at least one byte) within that time.
pub fn reacted_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    stream
        .set_read_timeout(Some(limit))
        .expect("set read timeout");
    // peek, not read: whether the broker closed (0 bytes) or answered, both count.
    match stream.peek(&mut buf) {
        Ok(_) => true,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// Big-endian helpers for hand-made frames.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 4);
    v.put_i32(body.len() as i32);
    v.extend_from_slice(body);
    v
}

/// Returns the remaining bytes of `b` as a `Vec` (used when inspecting raw responses).
pub fn rest(mut b: Bytes) -> Vec<u8> {
    let mut v = vec![0; b.remaining()];
    b.copy_to_slice(&mut v);
    v
}
