//! `kavka cluster up`: the real binary starts a one-node cluster in a temporary directory, prints
//! `bootstrap.servers`, serves librdkafka through it, refuses a second start on the same directory,
//! reports a node killed under it without restarting it, and stops everything (including a node
//! restarted by hand) on SIGTERM, removing its pid files.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
}

fn free_port_pair() -> (u16, u16) {
    loop {
        let (a, b) = (free_port(), free_port());
        if a != b {
            return (a, b);
        }
    }
}

fn cluster_up_command(dir: &Path, base_port: u16, controller_port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kavka"));
    cmd.args(["cluster", "up", "--nodes", "1", "--dir"])
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
        let dir = tempfile::Builder::new()
            .prefix("kavka-cluster-up-")
            .tempdir()
            .expect("temp dir");
        let (base_port, controller_port) = free_port_pair();
        let stderr_path = dir.path().with_extension("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = cluster_up_command(dir.path(), base_port, controller_port)
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
        ClusterUp {
            child: Some(child),
            dir,
            stderr_path,
            lines,
            base_port,
        }
    }

    fn node_dir(&self) -> PathBuf {
        self.dir.path().join("node-1")
    }

    fn pid_file(&self) -> PathBuf {
        self.node_dir().join("pid")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    fn diagnostics(&self) -> String {
        let log = std::fs::read_to_string(self.node_dir().join("kavka.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        format!(
            "===== cluster up stderr =====\n{}\n===== node-1/kavka.log (tail) =====\n{tail}",
            self.stderr()
        )
    }

    /// Waits for the one stdout line the command promises once the cluster is ready.
    fn bootstrap_line(&mut self) -> String {
        let deadline = Instant::now() + READY_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("bootstrap.servers=") => return line,
                Ok(_) => continue,
                Err(_) => {
                    let status = self
                        .child
                        .as_mut()
                        .and_then(|c| c.try_wait().ok().flatten());
                    panic!(
                        "no bootstrap.servers line within {READY_WAIT:?} (command status {status:?})\n{}",
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
        if let Ok(pid) = std::fs::read_to_string(self.pid_file()) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                if pid > 0 {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
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
