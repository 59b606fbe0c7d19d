//! `kavka cluster up`: the real binary starts a one-node cluster in a temporary directory, prints
//! `bootstrap.servers`, serves librdkafka through it, refuses a second start on the same directory,
//! reports a node killed under it without restarting it, and stops everything (including a node
//! restarted by hand) on SIGTERM, removing its pid files.
//!
//! `cluster up --nodes 3 --secure`: mutual TLS on every listener, the admin client's property files
//! printed after `bootstrap.servers`; a topic with replication factor 3 takes acks=all records and
//! serves them back to a client using the printed librdkafka file, a client without a certificate
//! gets no metadata, SIGTERM stops every node, and the directory restarts secure (certificates reused)
//! but not plaintext.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::tls::{kcat, on_path, rdkafka_has_ssl, read_properties, KcatRun};
use common::{consume_exact, free_port, topic_name};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset};

/// Start-up of a debug build on a busy 2-core machine can be slow; the command's own readiness
/// timeout is shorter, so a hang shows up as its error rather than as this one.
const READY_WAIT: Duration = Duration::from_secs(90);
const WAIT: Duration = Duration::from_secs(30);

/// A running `kavka cluster up` owned by one test. Dropping it kills the command and every node
/// process its pid files name, so a failing test leaves nothing behind.
struct ClusterUp {
    child: Option<Child>,
    dir: tempfile::TempDir,
    stderr_path: PathBuf,
    /// stdout lines, read by a thread so the pipe never fills.
    lines: mpsc::Receiver<String>,
    base_port: u16,
    controller_port: u16,
    nodes: u16,
    secure: bool,
}

fn free_port_pair() -> (u16, u16) {
    loop {
        let (a, b) = (free_port(), free_port());
        if a != b {
            return (a, b);
        }
    }
}

/// Client and controller base ports with `n` consecutive free ports each, the two ranges apart.
fn free_port_ranges(n: u16) -> (u16, u16) {
    let range_free = |base: u16| {
        base.checked_add(n).is_some()
            && (base..base + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
    };
    loop {
        let (a, c) = free_port_pair();
        let apart = a.abs_diff(c) >= n;
        if apart && range_free(a) && range_free(c) {
            return (a, c);
        }
    }
}

fn cluster_up_command(dir: &Path, base_port: u16, controller_port: u16) -> Command {
    cluster_up_command_with(dir, 1, false, base_port, controller_port)
}

fn cluster_up_command_with(
    dir: &Path,
    nodes: u16,
    secure: bool,
    base_port: u16,
    controller_port: u16,
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kavka"));
    cmd.args(["cluster", "up", "--nodes", &nodes.to_string()]);
    if secure {
        cmd.arg("--secure");
    }
    cmd.arg("--dir")
        .arg(dir)
        .args([
            "--base-port",
            &base_port.to_string(),
            "--controller-base-port",
            &controller_port.to_string(),
            "--ready-timeout-secs",
            "60",
        ])
        .stdin(Stdio::null());
    cmd
}

impl ClusterUp {
    fn start() -> ClusterUp {
        ClusterUp::start_with(1, false)
    }

    fn start_with(nodes: u16, secure: bool) -> ClusterUp {
        let dir = tempfile::Builder::new()
            .prefix("kavka-cluster-up-")
            .tempdir()
            .expect("temp dir");
        let (base_port, controller_port) = free_port_ranges(nodes);
        let stderr_path = dir.path().with_extension("stderr.log");
        let mut up = ClusterUp {
            child: None,
            dir,
            stderr_path,
            lines: mpsc::channel().1,
            base_port,
            controller_port,
            nodes,
            secure,
        };
        up.launch();
        up
    }

    /// Runs `kavka cluster up` (again) on this directory and ports; stderr is appended to.
    fn launch(&mut self) {
        assert!(self.child.is_none(), "cluster up is already running");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("stderr file");
        let mut child = cluster_up_command_with(
            self.dir.path(),
            self.nodes,
            self.secure,
            self.base_port,
            self.controller_port,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("spawn kavka cluster up");
        let stdout = child.stdout.take().expect("stdout pipe");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        self.lines = lines;
    }

    fn node_dir(&self) -> PathBuf {
        self.node_dir_of(1)
    }

    fn node_dir_of(&self, node: u16) -> PathBuf {
        self.dir.path().join(format!("node-{node}"))
    }

    fn pid_file(&self) -> PathBuf {
        self.node_dir().join("pid")
    }

    /// The pid every node's pid file names.
    fn node_pids(&self) -> Vec<i32> {
        (1..=self.nodes)
            .map(|n| {
                std::fs::read_to_string(self.node_dir_of(n).join("pid"))
                    .expect("read pid file")
                    .trim()
                    .parse()
                    .expect("pid file holds a pid")
            })
            .collect()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn diagnostics(&self) -> String {
        let mut out = format!("===== cluster up stderr =====\n{}", self.stderr());
        for n in 1..=self.nodes {
            let log =
                std::fs::read_to_string(self.node_dir_of(n).join("kavka.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(60)..].join("\n");
            out.push_str(&format!("\n===== node-{n}/kavka.log (tail) =====\n{tail}"));
        }
        out
    }

    /// Waits for the one stdout line the command promises once the cluster is ready.
    fn bootstrap_line(&mut self) -> String {
        self.stdout_line("bootstrap.servers=", READY_WAIT)
    }

    /// Waits for the next stdout line starting with `prefix`.
    fn stdout_line(&mut self, prefix: &str, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => continue,
                Err(_) => {
                    let status = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    panic!(
                        "no {prefix:?} line within {wait:?} (command status {status:?})\n{}",
                        self.diagnostics()
                    );
                }
            }
        }
    }

    fn node_pid(&self) -> i32 {
        std::fs::read_to_string(self.pid_file())
            .expect("read pid file")
            .trim()
            .parse()
            .expect("pid file holds a pid")
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("command running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "kavka cluster up did not exit within {timeout:?}\n{}",
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.as_ref().expect("command running").id() as i32;
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM");
        // The command gives its nodes 15 s before SIGKILL; allow for that and a slow machine.
        self.wait_exit(Duration::from_secs(40))
    }

    /// Waits until a line containing `needle` appears on the command's stderr.
    fn wait_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.stderr();
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!("stderr never mentioned {needle:?}\n{}", self.diagnostics());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ClusterUp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // The nodes run in their own process group, so killing the command does not reach them.
        for n in 1..=self.nodes {
            if let Ok(pid) = std::fs::read_to_string(self.node_dir_of(n).join("pid")) {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    if pid > 0 {
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// Whether a process with this pid exists (zombies included).
fn process_exists(pid: i32) -> bool {
    unsafe { libc::kill(pid, 0) == 0 }
}

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("socket.timeout.ms", "10000");
    cfg
}

#[tokio::test]
async fn one_node_cluster_serves_clients_and_stops_on_sigterm() {
    let mut up = ClusterUp::start();
    let line = up.bootstrap_line();
    assert_eq!(
        line,
        format!("bootstrap.servers=127.0.0.1:{}", up.base_port)
    );
    let bootstrap = line.trim_start_matches("bootstrap.servers=").to_string();

    // The generated files: configuration, a formatted log dir, a pid file naming a live node.
    let config = std::fs::read_to_string(up.node_dir().join("server.properties")).unwrap();
    assert!(config.contains("process.roles=broker,controller"));
    let meta = std::fs::read_to_string(up.node_dir().join("data/meta.properties")).unwrap();
    assert!(meta.contains("cluster.id=") && meta.contains("node.id=1"));
    let node_pid = up.node_pid();
    assert!(process_exists(node_pid), "node pid {node_pid} is not alive");
    let cmdline = std::fs::read(format!("/proc/{node_pid}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains("broker"));

    let topic = topic_name("cluster-up");
    let admin: AdminClient<DefaultClientContext> =
        client_config(&bootstrap).create().expect("admin client");
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("CreateTopics");
    for r in created {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
    }

    let producer: FutureProducer = client_config(&bootstrap)
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer");
    let delivery = producer
        .send(
            FutureRecord::to(&topic)
                .partition(0)
                .key("k")
                .payload("hello cluster"),
            WAIT,
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    assert_eq!(delivery.offset, 0);

    let consumer: BaseConsumer = client_config(&bootstrap)
        .set("group.id", "kavka-it-cluster-up")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let got = consume_exact(&consumer, &topic, 0, Offset::Beginning, 1, WAIT);
    assert_eq!(got[0].payload(), Some(&b"hello cluster"[..]));
    assert_eq!(got[0].key(), Some(&b"k"[..]));
    drop(consumer);
    drop(producer);
    drop(admin);

    let status = up.terminate();
    assert!(
        status.success(),
        "cluster up exited with {status}\n{}",
        up.diagnostics()
    );
    assert!(!process_exists(node_pid), "node pid {node_pid} survived");
    assert!(!up.pid_file().exists(), "pid file was not removed");
    assert!(up.stderr().contains("all nodes stopped"));
}

#[tokio::test]
async fn second_start_on_a_running_dir_fails_and_dead_nodes_are_not_restarted() {
    let mut up = ClusterUp::start();
    up.bootstrap_line();
    let first_pid = up.node_pid();

    // Started with --secure, the plaintext directory is refused in one line, before any certificate
    // is made.
    let (p, c) = free_port_pair();
    let out = cluster_up_command_with(up.dir.path(), 1, true, p, c)
        .output()
        .expect("run cluster up --secure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "cluster up --secure succeeded");
    assert!(
        stderr.contains("created without --secure") && stderr.trim().lines().count() == 1,
        "unexpected error: {stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(!up.dir.path().join("certs").exists());

    // A second `cluster up` on the same directory refuses before touching the running node.
    let (p, c) = free_port_pair();
    let out = cluster_up_command(up.dir.path(), p, c)
        .output()
        .expect("run second cluster up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second cluster up succeeded");
    assert!(
        stderr.contains("already running") && stderr.contains(&first_pid.to_string()),
        "unexpected error: {stderr}"
    );
    assert!(out.stdout.is_empty());
    assert_eq!(up.node_pid(), first_pid);
    assert!(process_exists(first_pid));

    // A node killed under the supervisor is reported once and left down.
    assert_eq!(unsafe { libc::kill(first_pid, libc::SIGKILL) }, 0);
    let text = up.wait_stderr("exited");
    assert!(text.contains("not restarting"), "{text}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        up.stderr().matches("exited (").count(),
        1,
        "{}",
        up.stderr()
    );
    assert!(!up.pid_file().exists(), "stale pid file left behind");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", up.base_port)).is_err(),
        "the node was restarted"
    );

    // Restarted by hand as the hints say; the supervisor stops it too on SIGTERM.
    let config = up.node_dir().join("server.properties");
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(up.node_dir().join("kavka.log"))
        .unwrap();
    let mut by_hand = Command::new(env!("CARGO_BIN_EXE_kavka"))
        .args(["broker", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("restart node by hand");
    std::fs::write(up.pid_file(), format!("{}\n", by_hand.id())).unwrap();
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", up.base_port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "hand-restarted node never listened"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let status = up.terminate();
    assert!(status.success(), "cluster up exited with {status}");
    let deadline = Instant::now() + WAIT;
    let exit = loop {
        if let Some(s) = by_hand.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = by_hand.kill();
            panic!("hand-restarted node was not stopped\n{}", up.diagnostics());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "hand-restarted node exited with {exit}");
    assert!(!up.pid_file().exists(), "pid file was not removed");
}

// ---------------------------------------------------------------------------------------------
// `cluster up --secure`.

fn property<'a>(props: &'a [(String, String)], key: &str) -> &'a str {
    props
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {props:?}"))
}

/// A Kafka protocol connection over TLS, its rustls client built by Kavka's own `ssl.*` loader from
/// PEM files: the CA, and the client certificate and key when `cert` is given.
struct TlsConn {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    correlation_id: i32,
}

impl TlsConn {
    async fn connect(addr: &str, ca: &str, cert: Option<(&str, &str)>) -> Result<TlsConn, String> {
        let mut pairs = vec![
            ("ssl.truststore.type", "PEM".to_string()),
            ("ssl.truststore.location", ca.to_string()),
        ];
        if let Some((cert, key)) = cert {
            pairs.push(("ssl.keystore.type", "PEM".to_string()));
            pairs.push(("ssl.keystore.location", cert.to_string()));
            pairs.push(("ssl.keystore.key.location", key.to_string()));
        }
        let pairs: Vec<(String, String)> =
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let loaded = kavka_config::BrokerConfig::from_pairs(&pairs).map_err(|e| e.to_string())?;
        let config = kavka::security::client_config("SSL", &loaded.config.security)
            .map_err(|e| e.to_string())?;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let host = addr.rsplit_once(':').expect("host:port").0.to_string();
        let name = rustls_pki_types::ServerName::try_from(host).map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
        Ok(TlsConn {
            stream,
            correlation_id: 0,
        })
    }

    async fn request<R: kafka_protocol::protocol::Request>(
        &mut self,
        version: i16,
        req: &R,
    ) -> Result<R::Response, String> {
        use bytes::{BufMut, BytesMut};
        use kafka_protocol::messages::{RequestHeader, ResponseHeader};
        use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.correlation_id += 1;
        let corr = self.correlation_id;
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("kavka-it")))
            .encode(&mut body, R::header_version(version))
            .map_err(|e| e.to_string())?;
        req.encode(&mut body, version).map_err(|e| e.to_string())?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        let io = async {
            self.stream.write_all(&frame).await?;
            let len = self.stream.read_i32().await?;
            let mut buf = vec![0u8; len.clamp(0, 64 << 20) as usize];
            self.stream.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(bytes::Bytes::from(buf))
        };
        let mut resp = tokio::time::timeout(Duration::from_secs(15), io)
            .await
            .map_err(|_| "no answer within 15 s".to_string())?
            .map_err(|e| format!("connection: {e}"))?;
        let header = ResponseHeader::decode(&mut resp, R::Response::header_version(version))
            .map_err(|e| e.to_string())?;
        if header.correlation_id != corr {
            return Err(format!(
                "correlation id {} != {corr}",
                header.correlation_id
            ));
        }
        R::Response::decode(&mut resp, version).map_err(|e| e.to_string())
    }
}

/// Metadata v12 for all topics, over TLS.
async fn tls_metadata(
    addr: &str,
    ca: &str,
    cert: Option<(&str, &str)>,
) -> Result<kafka_protocol::messages::MetadataResponse, String> {
    let mut conn = TlsConn::connect(addr, ca, cert).await?;
    conn.request(
        12,
        &kafka_protocol::messages::MetadataRequest::default().with_topics(None),
    )
    .await
}

/// Produces `records` (key, value) to partition 0 of `topic` with acks=all and reads them back, as a
/// librdkafka client configured by `props` (the printed librdkafka file): through rdkafka when it was
/// built with OpenSSL, else through kcat -F when kcat is installed. Returns false if neither can.
async fn librdkafka_round_trip(
    bootstrap: &str,
    props_file: &Path,
    props: &[(String, String)],
    topic: &str,
    records: &[(String, String)],
) -> bool {
    if rdkafka_has_ssl() {
        let config = |extra: &[(&str, &str)]| {
            let mut cfg = client_config(bootstrap);
            for (k, v) in props {
                cfg.set(k, v);
            }
            for (k, v) in extra {
                cfg.set(*k, *v);
            }
            cfg
        };
        let producer: FutureProducer = config(&[("acks", "all"), ("message.timeout.ms", "20000")])
            .create()
            .expect("producer");
        for (i, (k, v)) in records.iter().enumerate() {
            let delivery = producer
                .send(FutureRecord::to(topic).partition(0).key(k).payload(v), WAIT)
                .await
                .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
            assert_eq!(delivery.offset, i as i64);
        }
        let consumer: BaseConsumer = config(&[
            ("group.id", "kavka-it-cluster-up-secure"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "false"),
        ])
        .create()
        .expect("consumer");
        let got = consume_exact(&consumer, topic, 0, Offset::Beginning, records.len(), WAIT);
        for (m, (k, v)) in got.iter().zip(records) {
            assert_eq!(m.key(), Some(k.as_bytes()));
            assert_eq!(m.payload(), Some(v.as_bytes()));
        }
        return true;
    }
    if !on_path("kcat") {
        return false;
    }
    println!("librdkafka in this build has no OpenSSL: using kcat -F for the TLS client checks");
    let file = props_file.to_str().unwrap();
    let input: String = records.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let KcatRun {
        success: ok,
        stdout: out,
        stderr: err,
    } = kcat(
        &[
            "-F", file, "-b", bootstrap, "-t", topic, "-p", "0", "-P", "-K:", "-X", "acks=all",
        ],
        Some(&input),
        WAIT,
    );
    assert!(ok && !err.contains("ERROR"), "kcat produce: {out}{err}");
    let count = records.len().to_string();
    let KcatRun {
        success: ok,
        stdout: out,
        stderr: err,
    } = kcat(
        &[
            "-F",
            file,
            "-b",
            bootstrap,
            "-t",
            topic,
            "-p",
            "0",
            "-C",
            "-o",
            "beginning",
            "-c",
            &count,
            "-e",
            "-f",
            "%o %k=%s\n",
        ],
        None,
        WAIT,
    );
    assert!(ok, "kcat consume: {out}{err}");
    let expected: String = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| format!("{i} {k}={v}\n"))
        .collect();
    assert_eq!(out, expected, "kcat consume: {err}");
    true
}

#[tokio::test]
async fn secure_three_node_cluster_serves_mtls_clients_only() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;

    let mut up = ClusterUp::start_with(3, true);
    let line = up.bootstrap_line();
    let b = up.base_port;
    assert_eq!(
        line,
        format!(
            "bootstrap.servers=127.0.0.1:{b},127.0.0.1:{},127.0.0.1:{}",
            b + 1,
            b + 2
        )
    );
    let bootstrap = line.trim_start_matches("bootstrap.servers=").to_string();
    let certs = up.dir.path().join("certs");
    let librdkafka_line = up.stdout_line("client properties", WAIT);
    let java_line = up.stdout_line("client properties", WAIT);
    let librdkafka_file = certs.join("admin-librdkafka.properties");
    assert_eq!(
        librdkafka_line,
        format!(
            "client properties (librdkafka, kcat -F): {}",
            librdkafka_file.display()
        )
    );
    assert_eq!(
        java_line,
        format!(
            "client properties (Java): {}",
            certs.join("admin-client-ssl.properties").display()
        )
    );
    // The hints follow on stderr: who the printed client files authenticate as.
    up.wait_stderr("User:CN=admin,O=Kavka");

    // Every node: SSL everywhere, client certificates required, its own key store.
    for n in 1..=3u16 {
        let path = up.node_dir_of(n).join("server.properties");
        let config = std::fs::read_to_string(&path).unwrap();
        for expected in [
            format!(
                "listeners=SSL://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                b + n - 1,
                up.controller_port + n - 1
            ),
            "listener.security.protocol.map=SSL:SSL,CONTROLLER:SSL".to_string(),
            "inter.broker.listener.name=SSL".to_string(),
            "ssl.client.auth=required".to_string(),
            "ssl.keystore.type=PKCS12".to_string(),
            format!(
                "ssl.keystore.location={}",
                certs.join(format!("node-{n}.p12")).display()
            ),
            format!(
                "ssl.truststore.location={}",
                certs.join("truststore.p12").display()
            ),
        ] {
            assert!(
                config.contains(&expected),
                "{path:?} lacks {expected}:\n{config}"
            );
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{path:?} holds passwords");
    }

    let props = read_properties(&librdkafka_file);
    assert_eq!(property(&props, "security.protocol"), "ssl");
    let ca = property(&props, "ssl.ca.location").to_string();
    let cert = property(&props, "ssl.certificate.location").to_string();
    let key = property(&props, "ssl.key.location").to_string();
    let node1 = format!("127.0.0.1:{b}");

    // With the admin certificate: every broker is listed. Without one: no metadata.
    let md = tls_metadata(&node1, &ca, Some((&cert, &key)))
        .await
        .expect("metadata with the admin certificate");
    let mut ids: Vec<i32> = md.brokers.iter().map(|b| b.node_id.0).collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
    let refused = tls_metadata(&node1, &ca, None).await;
    assert!(
        refused.is_err(),
        "metadata without a certificate: {refused:?}"
    );

    // A topic replicated on all three nodes.
    let topic = topic_name("cluster-up-secure");
    let mut conn = TlsConn::connect(&node1, &ca, Some((&cert, &key)))
        .await
        .expect("connect");
    let created = conn
        .request(
            5,
            &CreateTopicsRequest::default()
                .with_timeout_ms(20_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.clone())))
                    .with_num_partitions(1)
                    .with_replication_factor(3)]),
        )
        .await
        .expect("CreateTopics");
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let deadline = Instant::now() + WAIT;
    loop {
        let md = tls_metadata(&node1, &ca, Some((&cert, &key)))
            .await
            .expect("metadata");
        let partition = md
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic.as_str()))
            .and_then(|t| t.partitions.first());
        if let Some(p) = partition {
            let mut replicas: Vec<i32> = p.replica_nodes.iter().map(|r| r.0).collect();
            replicas.sort();
            assert_eq!(replicas, [1, 2, 3]);
            if p.isr_nodes.len() == 3 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{topic} never had 3 in-sync replicas: {md:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A librdkafka client with the printed file produces with acks=all and reads the records back;
    // one without a certificate gets no metadata.
    let records: Vec<(String, String)> = (0..5)
        .map(|i| (format!("k{i}"), format!("secure record {i}")))
        .collect();
    let ran = librdkafka_round_trip(&bootstrap, &librdkafka_file, &props, &topic, &records).await;
    if !ran {
        println!("neither rdkafka with OpenSSL nor kcat: skipping the librdkafka client checks");
    } else if on_path("kcat") {
        let KcatRun {
            success: ok,
            stdout: out,
            stderr: err,
        } = kcat(
            &[
                "-b",
                &bootstrap,
                "-X",
                "security.protocol=ssl",
                "-X",
                &format!("ssl.ca.location={ca}"),
                "-L",
                "-m",
                "5",
            ],
            None,
            WAIT,
        );
        assert!(!ok, "kcat without a certificate got metadata: {out}{err}");
    }

    // SIGTERM stops every node.
    let pids = up.node_pids();
    let status = up.terminate();
    assert!(
        status.success(),
        "cluster up exited with {status}\n{}",
        up.diagnostics()
    );
    for pid in &pids {
        assert!(!process_exists(*pid), "node pid {pid} survived");
    }
    for n in 1..=3 {
        assert!(!up.node_dir_of(n).join("pid").exists());
    }

    // The directory is secure: a plaintext start is refused in one line...
    let out = cluster_up_command_with(up.dir.path(), 3, false, up.base_port, up.controller_port)
        .output()
        .expect("run cluster up without --secure");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "plaintext start of a secure dir succeeded"
    );
    assert!(
        stderr.contains("created with --secure") && stderr.trim().lines().count() == 1,
        "unexpected error: {stderr}"
    );
    assert!(out.stdout.is_empty());

    // ...and a secure one reuses the certificates and serves the same data.
    let ca_before = std::fs::read(certs.join("ca.pem")).unwrap();
    up.launch();
    assert_eq!(up.bootstrap_line(), line);
    assert_eq!(up.stdout_line("client properties", WAIT), librdkafka_line);
    up.wait_stderr("all reused");
    assert_eq!(std::fs::read(certs.join("ca.pem")).unwrap(), ca_before);
    let md = tls_metadata(&node1, &ca, Some((&cert, &key)))
        .await
        .expect("metadata after the restart");
    assert!(md
        .topics
        .iter()
        .any(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic.as_str())));
    let pids = up.node_pids();
    let status = up.terminate();
    assert!(status.success(), "cluster up exited with {status}");
    for pid in &pids {
        assert!(!process_exists(*pid), "node pid {pid} survived");
    }
}
