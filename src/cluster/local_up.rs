//! `kavka cluster up`: a local cluster of combined (broker+controller) nodes, one OS process each.
//!
//! Node `i` (ids 1..=N) listens for clients on `127.0.0.1:{P+i-1}` and for the controller quorum on
//! `127.0.0.1:{C+i-1}`, and keeps everything under `DIR/node-<i>/`: `server.properties` (generated once,
//! never overwritten), `data/` (its `log.dirs`, whose `meta.properties` carries the cluster id shared by
//! every node, as `kafka-storage format --cluster-id` would write it), `kavka.log` (the process's stdout
//! and stderr, appended) and `pid`.
//!
//! With `--secure` ([`ClusterLayout::with_tls`]) every listener is SSL with `ssl.client.auth=required`
//! (mutual TLS on client, inter-broker and controller traffic). The certificates live in `DIR/certs/`,
//! made with the `kavka certs` library ([`crate::certs`]) when missing and reused otherwise: the CA,
//! `node-<i>` per node (SANs `127.0.0.1` and `localhost`, also its client certificate towards the other
//! nodes) and the client [`ADMIN_CLIENT`], whose property files are printed for clients and whose
//! certificate the readiness probe presents. A directory is either secure or not: starting it the other
//! way is refused ([`ClusterUpError::SecurityMismatch`]).
//!
//! The pure parts (port layout, `server.properties` text, `meta.properties` reconciliation, the readiness
//! probe's wire format and condition) are free functions and types with unit tests; [`LocalCluster`] is the
//! thin process-handling layer on top of them.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use kavka_config::{BrokerConfig, ConfigError, SecurityProtocol};
use std::sync::Arc;

use crate::certs::CertsError;

use crate::meta_properties::{parse_meta_properties, render_meta_properties};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long `stop` waits after SIGTERM before it sends SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(15);
/// The Metadata version the readiness probe speaks: v12 is the first that allows null topics and the
/// last that every Kafka 4.x broker serves, so the probe also works against a real Kafka node.
const PROBE_METADATA_VERSION: i16 = 12;
/// A Metadata response for a local cluster is a few hundred bytes; anything near this bound is not a
/// Kafka broker answering.
const PROBE_MAX_FRAME: usize = 1 << 20;
/// How often readiness is re-checked and children are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// How many trailing lines of a node's log an error quotes.
const LOG_TAIL_LINES: usize = 10;
/// The subdirectory of the cluster directory that holds a secure cluster's certificates.
pub const CERTS_DIR: &str = "certs";
/// The client certificate a secure cluster is created with: the printed client property files are its,
/// and the readiness probe presents it.
pub const ADMIN_CLIENT: &str = "admin";
/// The name of a TLS listener of a secure cluster, for clients and between brokers.
const SSL_LISTENER: &str = "SSL";

/// Why `kavka cluster up` could not start or run the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterUpError {
    /// The requested node count or ports do not make a valid layout.
    #[error("invalid cluster layout: {0}")]
    Layout(String),
    /// A file or directory could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A node's `server.properties` does not load.
    #[error("{path}: {error}")]
    Config {
        /// The `server.properties` file.
        path: PathBuf,
        /// What is wrong with it.
        error: ConfigError,
    },
    /// A node's `server.properties` loads but cannot be run by `cluster up`.
    #[error("{path}: {reason}")]
    Unusable {
        /// The `server.properties` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Two nodes' configuration files claim the same `node.id`.
    #[error("{first} and {second} both set node.id={node_id}")]
    DuplicateNodeId {
        /// The shared id.
        node_id: i32,
        /// One file.
        first: PathBuf,
        /// The other file.
        second: PathBuf,
    },
    /// A `meta.properties` file is malformed.
    #[error("{path}: {reason}")]
    MetaProperties {
        /// The `meta.properties` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Two log directories of the cluster were formatted for different clusters.
    #[error(
        "log directories belong to different clusters: {first} has cluster.id={first_id}, \
         {second} has cluster.id={second_id}; remove the one that is wrong (or the whole cluster \
         directory) and start again"
    )]
    ClusterIdConflict {
        /// The first `meta.properties` read.
        first: PathBuf,
        /// Its cluster id.
        first_id: String,
        /// The disagreeing `meta.properties`.
        second: PathBuf,
        /// Its cluster id.
        second_id: String,
    },
    /// A node's pid file names a live Kavka process.
    #[error(
        "node {node_id} is already running (pid {pid}, from {pid_file}); stop that cluster first \
         (Ctrl-C on its `kavka cluster up`, or `kill {pid}`)"
    )]
    AlreadyRunning {
        /// The node.
        node_id: i32,
        /// The live process.
        pid: i32,
        /// The pid file naming it.
        pid_file: PathBuf,
    },
    /// A node's listener port is taken by another process.
    #[error("node {node_id}: cannot use {addr}: {error}")]
    PortInUse {
        /// The node.
        node_id: i32,
        /// `host:port` of the listener.
        addr: String,
        /// The bind error.
        error: std::io::Error,
    },
    /// The node process could not be started.
    #[error("node {node_id}: cannot start {exe}: {error}")]
    Spawn {
        /// The node.
        node_id: i32,
        /// The executable.
        exe: PathBuf,
        /// The spawn error.
        error: std::io::Error,
    },
    /// A node process exited before the cluster was ready.
    #[error("node {node_id} exited during start-up ({status}); its log {log}:\n{tail}")]
    ExitedDuringStartup {
        /// The node.
        node_id: i32,
        /// How it exited.
        status: ExitStatus,
        /// Its `kavka.log`.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// The cluster directory was created secure and started plain, or the reverse.
    #[error("{path}: {}", describe_mismatch(*created_secure))]
    SecurityMismatch {
        /// The `server.properties` that says how the directory was created.
        path: PathBuf,
        /// Whether it was created with `--secure`.
        created_secure: bool,
    },
    /// The certificates of a secure cluster cannot be created or read.
    #[error("certificates in {}: {error}", dir.display())]
    Certs {
        /// `DIR/certs`.
        dir: PathBuf,
        /// What went wrong.
        error: CertsError,
    },
    /// The readiness probe's TLS client cannot be built from the admin client's settings.
    #[error("{path}: cannot build the readiness probe's TLS client: {reason}")]
    ProbeTls {
        /// The admin client's Java property file the settings come from.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The readiness timeout passed with some nodes not ready.
    #[error("cluster not ready within {}s:\n{}", timeout.as_secs(), describe_not_ready(not_ready))]
    NotReady {
        /// The timeout that passed.
        timeout: Duration,
        /// Each node that is not ready.
        not_ready: Vec<NotReadyNode>,
    },
}

/// One node that did not pass the readiness check in time.
#[derive(Debug, Clone)]
pub struct NotReadyNode {
    /// The node.
    pub node_id: i32,
    /// What the last probe saw.
    pub last_probe: String,
    /// Its `kavka.log`.
    pub log: PathBuf,
}

fn describe_not_ready(nodes: &[NotReadyNode]) -> String {
    nodes
        .iter()
        .map(|n| {
            format!(
                "  node {}: {}; see its log {}",
                n.node_id,
                n.last_probe,
                n.log.display()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn describe_mismatch(created_secure: bool) -> &'static str {
    if created_secure {
        "this cluster directory was created with --secure (its client listener is SSL); start it \
         with --secure, or use another --dir for a plaintext cluster"
    } else {
        "this cluster directory was created without --secure (its client listener is PLAINTEXT); \
         start it without --secure, or use another --dir for a secure cluster"
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterUpError + '_ {
    move |error| ClusterUpError::Io {
        path: path.to_path_buf(),
        error,
    }
}

// ---------------------------------------------------------------------------------------------
// Pure parts: layout, generated files, reconciliation, readiness.

/// Where node `i` of a local cluster listens and keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLayout {
    /// `node.id` (1-based).
    pub node_id: i32,
    /// The client (PLAINTEXT, or SSL when secure) port.
    pub client_port: u16,
    /// The controller (CONTROLLER) port.
    pub controller_port: u16,
    /// `DIR/node-<i>`.
    pub dir: PathBuf,
}

impl NodeLayout {
    /// `DIR/node-<i>/server.properties`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    /// `DIR/node-<i>/data`, the generated `log.dirs`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `DIR/node-<i>/kavka.log`, the process's stdout and stderr.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("kavka.log")
    }

    /// `DIR/node-<i>/pid`.
    pub fn pid_path(&self) -> PathBuf {
        self.dir.join("pid")
    }
}

/// The port and directory layout of a local cluster of `N` combined nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterLayout {
    /// The cluster directory (absolute).
    pub dir: PathBuf,
    /// Nodes 1..=N, in order.
    pub nodes: Vec<NodeLayout>,
    /// Mutual TLS on every listener (`--secure`).
    pub secure: bool,
}

/// The TLS files one node of a secure cluster uses, as its `server.properties` names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTlsFiles {
    /// The node's PKCS#12 key store (`DIR/certs/node-<i>.p12`).
    pub keystore: PathBuf,
    /// Its password.
    pub keystore_password: String,
    /// The cluster's PKCS#12 trust store (`DIR/certs/truststore.p12`).
    pub truststore: PathBuf,
    /// Its password.
    pub truststore_password: String,
}

impl ClusterLayout {
    /// Lays out `nodes` nodes under `dir`, clients on `base_port..`, controllers on
    /// `controller_base_port..` (`base_port + 100` when `None`). `dir` should be absolute: it is
    /// written into every node's `log.dirs`, which must not depend on where a node is restarted from.
    pub fn new(
        nodes: u16,
        dir: &Path,
        base_port: u16,
        controller_base_port: Option<u16>,
    ) -> Result<ClusterLayout, ClusterUpError> {
        let bad = |m: String| Err(ClusterUpError::Layout(m));
        if nodes == 0 {
            return bad("--nodes must be at least 1".into());
        }
        if base_port == 0 {
            return bad("--base-port must not be 0: nodes need fixed, known ports".into());
        }
        let controller_base = match controller_base_port {
            Some(0) => {
                return bad(
                    "--controller-base-port must not be 0: the quorum needs fixed, known ports"
                        .into(),
                )
            }
            Some(p) => p,
            None => match base_port.checked_add(100) {
                Some(p) => p,
                None => {
                    return bad(format!(
                        "--base-port {base_port} leaves no room for the default controller ports \
                         (base + 100); set --controller-base-port"
                    ))
                }
            },
        };
        let last = |base: u16, what: &str| -> Result<u16, ClusterUpError> {
            base.checked_add(nodes - 1).ok_or_else(|| {
                ClusterUpError::Layout(format!(
                    "{nodes} {what} ports from {base} go past port 65535"
                ))
            })
        };
        let client_last = last(base_port, "client")?;
        let controller_last = last(controller_base, "controller")?;
        if base_port <= controller_last && controller_base <= client_last {
            return bad(format!(
                "client ports {base_port}..={client_last} and controller ports \
                 {controller_base}..={controller_last} overlap; choose another --controller-base-port"
            ));
        }
        let dir_str = dir.to_str().ok_or_else(|| {
            ClusterUpError::Layout(format!(
                "cluster directory {} is not valid UTF-8, which server.properties cannot hold",
                dir.display()
            ))
        })?;
        // log.dirs is a comma-separated list, and the generated comments are line-based.
        if dir_str.contains(',') || dir_str.chars().any(char::is_control) {
            return bad(format!(
                "cluster directory {dir_str:?} must not contain commas or control characters"
            ));
        }
        let nodes = (0..nodes)
            .map(|i| NodeLayout {
                node_id: i32::from(i) + 1,
                client_port: base_port + i,
                controller_port: controller_base + i,
                dir: dir.join(format!("node-{}", u32::from(i) + 1)),
            })
            .collect();
        Ok(ClusterLayout {
            dir: dir.to_path_buf(),
            nodes,
            secure: false,
        })
    }

    /// The same layout with mutual TLS on every listener (`secure`), or without.
    pub fn with_tls(mut self, secure: bool) -> ClusterLayout {
        self.secure = secure;
        self
    }

    /// `DIR/certs`, where a secure cluster's certificates live.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.join(CERTS_DIR)
    }

    /// The name of node `node_id`'s certificate (its CN and files' base name): `node-<id>`.
    pub fn node_cert_name(node_id: i32) -> String {
        format!("node-{node_id}")
    }

    /// The client property files of [`ADMIN_CLIENT`] for a secure cluster, each with what it is for:
    /// librdkafka's (`kcat -F`) and the Java client's. Empty when not secure.
    pub fn client_property_files(&self) -> Vec<(&'static str, PathBuf)> {
        if !self.secure {
            return Vec::new();
        }
        let certs = self.certs_dir();
        vec![
            (
                "librdkafka, kcat -F",
                certs.join(format!("{ADMIN_CLIENT}-librdkafka.properties")),
            ),
            (
                "Java",
                certs.join(format!("{ADMIN_CLIENT}-client-ssl.properties")),
            ),
        ]
    }

    /// The TLS files node `node_id` of a secure cluster uses, with the passwords read from the
    /// `.password` files `kavka certs` wrote beside them.
    pub fn node_tls_files(&self, node_id: i32) -> Result<NodeTlsFiles, ClusterUpError> {
        let certs = self.certs_dir();
        let name = Self::node_cert_name(node_id);
        let password = |file: &str| {
            crate::certs::read_password_file(&certs.join(file)).map_err(|error| {
                ClusterUpError::Certs {
                    dir: certs.clone(),
                    error,
                }
            })
        };
        Ok(NodeTlsFiles {
            keystore: certs.join(format!("{name}.p12")),
            keystore_password: password(&format!("{name}.password"))?,
            truststore: certs.join("truststore.p12"),
            truststore_password: password("truststore.password")?,
        })
    }

    /// `controller.quorum.voters`: `1@127.0.0.1:C,2@127.0.0.1:C+1,...`.
    pub fn quorum_voters(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("{}@127.0.0.1:{}", n.node_id, n.controller_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `bootstrap.servers` for clients of the generated layout.
    pub fn bootstrap_servers(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The generated `server.properties` of `node`, with comments saying how to restart it by hand
    /// with `exe` (the `kavka` binary). With `tls` (a secure cluster) every listener is SSL with client
    /// certificates required, from those files.
    pub fn server_properties(
        &self,
        node: &NodeLayout,
        exe: &Path,
        tls: Option<&NodeTlsFiles>,
    ) -> String {
        let n = self.nodes.len();
        // Kafka's production defaults are 3 replicas and 2 in sync; a smaller cluster cannot satisfy
        // them, so they are capped at the cluster size.
        let rf = n.min(3);
        let isr = n.min(2);
        let config = node.config_path();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Generated by `kavka cluster up{}` for node {} of a {n}-node local cluster.",
            if tls.is_some() { " --secure" } else { "" },
            node.node_id
        );
        let _ = writeln!(
            out,
            "# `kavka cluster up` never overwrites this file once it exists: edit it freely."
        );
        if tls.is_some() {
            let _ = writeln!(
                out,
                "# Every listener is TLS with client certificates required (mutual TLS). The certificates \
                 are in {} (`kavka certs`); this file holds key store passwords: keep it private.",
                self.certs_dir().display()
            );
        }
        let _ = writeln!(
            out,
            "# To restart only this node by hand (the others keep running):"
        );
        let _ = writeln!(
            out,
            "#   {} broker --config {} >> {} 2>&1 & echo $! > {}",
            exe.display(),
            config.display(),
            node.log_path().display(),
            node.pid_path().display()
        );
        let (client_listener, controller_protocol) = match tls {
            Some(_) => (SSL_LISTENER, "SSL"),
            None => ("PLAINTEXT", "PLAINTEXT"),
        };
        out.push_str("process.roles=broker,controller\n");
        let _ = writeln!(out, "node.id={}", node.node_id);
        let _ = writeln!(
            out,
            "listeners={client_listener}://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
            node.client_port, node.controller_port
        );
        let _ = writeln!(
            out,
            "advertised.listeners={client_listener}://127.0.0.1:{}",
            node.client_port
        );
        let _ = writeln!(
            out,
            "listener.security.protocol.map={client_listener}:{client_listener},\
             CONTROLLER:{controller_protocol}"
        );
        out.push_str("controller.listener.names=CONTROLLER\n");
        let _ = writeln!(out, "inter.broker.listener.name={client_listener}");
        let _ = writeln!(out, "controller.quorum.voters={}", self.quorum_voters());
        let _ = writeln!(
            out,
            "log.dirs={}",
            escape_property_value(&node.data_dir().to_string_lossy())
        );
        out.push_str("num.partitions=1\n");
        let _ = writeln!(out, "default.replication.factor={rf}");
        let _ = writeln!(out, "min.insync.replicas={isr}");
        let _ = writeln!(out, "offsets.topic.replication.factor={rf}");
        let _ = writeln!(out, "transaction.state.log.replication.factor={rf}");
        let _ = writeln!(out, "transaction.state.log.min.isr={isr}");
        if let Some(tls) = tls {
            out.push_str("ssl.keystore.type=PKCS12\n");
            let _ = writeln!(
                out,
                "ssl.keystore.location={}",
                escape_property_value(&tls.keystore.to_string_lossy())
            );
            let _ = writeln!(
                out,
                "ssl.keystore.password={}",
                escape_secret_value(&tls.keystore_password)
            );
            out.push_str("ssl.truststore.type=PKCS12\n");
            let _ = writeln!(
                out,
                "ssl.truststore.location={}",
                escape_property_value(&tls.truststore.to_string_lossy())
            );
            let _ = writeln!(
                out,
                "ssl.truststore.password={}",
                escape_secret_value(&tls.truststore_password)
            );
            out.push_str("ssl.client.auth=required\n");
        }
        out
    }
}

/// Escapes a `.properties` value so that `java.util.Properties.load` (and Kavka's reader) returns it
/// unchanged. Only backslashes need it in an absolute path: `=`, `:` and `#` are literal inside a value.
fn escape_property_value(v: &str) -> String {
    v.replace('\\', "\\\\")
}

/// Escapes any value (a password given to `kavka certs --password`) so that `Properties.load` returns it
/// unchanged: backslashes, line breaks, tabs and form feeds, and leading spaces.
fn escape_secret_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut leading = true;
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            ' ' if leading => out.push_str("\\ "),
            c => out.push(c),
        }
        leading = leading && c == ' ';
    }
    out
}

/// The one cluster id that every log directory must carry, given the ids already found (file, id) in
/// reading order: `None` when no directory is formatted yet, an error naming both files when two
/// disagree.
pub fn reconcile_cluster_id(found: &[(PathBuf, String)]) -> Result<Option<String>, ClusterUpError> {
    let Some((first, first_id)) = found.first() else {
        return Ok(None);
    };
    if let Some((second, second_id)) = found.iter().find(|(_, id)| id != first_id) {
        return Err(ClusterUpError::ClusterIdConflict {
            first: first.clone(),
            first_id: first_id.clone(),
            second: second.clone(),
            second_id: second_id.clone(),
        });
    }
    Ok(Some(first_id.clone()))
}

/// The readiness condition: a node is ready when its Metadata response lists every node of the cluster.
/// Until brokers learn of each other through the controller quorum, a node lists only itself, so only a
/// one-node cluster passes; nothing here needs to change when they do.
pub fn lists_all_nodes(expected: &[i32], listed: &[i32]) -> bool {
    expected.iter().all(|id| listed.contains(id))
}

/// One framed Metadata v12 request for all topics (null topic list): 4-byte length, request header v2,
/// body.
pub fn metadata_probe_frame(correlation_id: i32) -> Result<Bytes, String> {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(PROBE_METADATA_VERSION)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("kavka-cluster-up")));
    let request = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    let mut body = BytesMut::new();
    header
        .encode(
            &mut body,
            MetadataRequest::header_version(PROBE_METADATA_VERSION),
        )
        .map_err(|e| format!("encoding the request header: {e}"))?;
    request
        .encode(&mut body, PROBE_METADATA_VERSION)
        .map_err(|e| format!("encoding the Metadata request: {e}"))?;
    let len = i32::try_from(body.len()).map_err(|_| "request too large".to_string())?;
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(len);
    frame.extend_from_slice(&body);
    Ok(frame.freeze())
}

/// Decodes the probe's response (the frame without its length prefix) into the listed broker ids.
pub fn parse_metadata_probe_response(
    mut frame: Bytes,
    correlation_id: i32,
) -> Result<Vec<i32>, String> {
    let header = ResponseHeader::decode(
        &mut frame,
        MetadataResponse::header_version(PROBE_METADATA_VERSION),
    )
    .map_err(|e| format!("malformed response header: {e}"))?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "response correlation id {} does not match request {correlation_id}",
            header.correlation_id
        ));
    }
    let response = MetadataResponse::decode(&mut frame, PROBE_METADATA_VERSION)
        .map_err(|e| format!("malformed Metadata response: {e}"))?;
    if frame.has_remaining() {
        return Err(format!(
            "{} unexpected bytes after the Metadata response",
            frame.remaining()
        ));
    }
    Ok(response.brokers.iter().map(|b| b.node_id.0).collect())
}

/// Sends one Metadata probe to `addr` (over TLS as a client of `tls`, checking the certificate
/// against `host`, when given) and returns the broker ids it lists.
async fn probe(
    addr: &str,
    host: &str,
    tls: Option<&Arc<rustls::ClientConfig>>,
    correlation_id: i32,
) -> Result<Vec<i32>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let Some(tls) = tls else {
        return probe_on(stream, addr, correlation_id).await;
    };
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host} cannot be checked against a certificate: {e}"))?;
    let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
    probe_on(stream, addr, correlation_id).await
}

/// The Metadata probe on an open connection to `addr`.
async fn probe_on<S>(mut stream: S, addr: &str, correlation_id: i32) -> Result<Vec<i32>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = metadata_probe_frame(correlation_id)?;
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("sending to {addr}: {e}"))?;
    let len = stream
        .read_i32()
        .await
        .map_err(|e| format!("reading from {addr}: {e}"))?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= PROBE_MAX_FRAME)
        .ok_or_else(|| format!("{addr} answered with a frame length of {len}"))?;
    let mut buf = vec![0u8; len];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| format!("reading from {addr}: {e}"))?;
    parse_metadata_probe_response(Bytes::from(buf), correlation_id)
}

// ---------------------------------------------------------------------------------------------
// Process handling.

/// A node as `cluster up` will run it: its layout and what its (possibly operator-edited)
/// `server.properties` says.
#[derive(Debug, Clone)]
struct PreparedNode {
    layout: NodeLayout,
    /// `node.id` from the file.
    node_id: i32,
    /// `log.dirs` from the file, absolute.
    log_dirs: Vec<PathBuf>,
    /// `host:port` of the first PLAINTEXT (SSL when secure) advertised listener: what clients and the
    /// probe use.
    client_addr: String,
    /// The host of `client_addr`, without brackets: what a TLS probe checks the certificate against.
    client_host: String,
    /// Every listener's (`host`, `port`), to check that it is free before starting.
    bind_addrs: Vec<(String, u16)>,
}

/// Loads the node's `server.properties` and derives what `cluster up` needs from it; `secure` says
/// whether the cluster is started with `--secure`, which the file must agree with.
fn load_node(layout: &NodeLayout, secure: bool) -> Result<PreparedNode, ClusterUpError> {
    let path = layout.config_path();
    let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
    let pairs = kavka_config::parse_properties(&text).map_err(|error| ClusterUpError::Config {
        path: path.clone(),
        error,
    })?;
    let loaded = BrokerConfig::from_pairs(&pairs).map_err(|error| ClusterUpError::Config {
        path: path.clone(),
        error,
    })?;
    let config = loaded.config;
    let unusable = |reason: String| ClusterUpError::Unusable {
        path: path.clone(),
        reason,
    };
    let (wanted, other) = if secure {
        (SecurityProtocol::Ssl, SecurityProtocol::Plaintext)
    } else {
        (SecurityProtocol::Plaintext, SecurityProtocol::Ssl)
    };
    let advertised = |protocol: SecurityProtocol| {
        config
            .advertised_listeners
            .iter()
            .find(|l| l.security_protocol == protocol)
    };
    let client = match advertised(wanted) {
        Some(client) => client,
        // The other kind of client listener: the directory was made by the other kind of `cluster up`.
        None if advertised(other).is_some() => {
            return Err(ClusterUpError::SecurityMismatch {
                path: path.clone(),
                created_secure: !secure,
            })
        }
        None => {
            return Err(unusable(format!(
                "no {} advertised listener: the readiness probe and the printed \
                 bootstrap.servers need one",
                wanted.as_str()
            )))
        }
    };
    let host = if client.host.is_empty() || client.host == "0.0.0.0" {
        "127.0.0.1".to_string()
    } else {
        client.host.clone()
    };
    if client.port == 0 {
        return Err(unusable(
            "the client listener's port is 0; a cluster needs fixed ports".into(),
        ));
    }
    let client_addr = if host.contains(':') {
        format!("[{host}]:{}", client.port)
    } else {
        format!("{host}:{}", client.port)
    };
    let mut log_dirs = Vec::new();
    for d in &config.log_dirs {
        // Relative log dirs resolve against the working directory the node inherits from us.
        let abs = std::path::absolute(d).map_err(io_error(Path::new(d)))?;
        log_dirs.push(abs);
    }
    if log_dirs.is_empty() {
        return Err(unusable("log.dirs is empty".into()));
    }
    let bind_addrs = config
        .listeners
        .iter()
        .filter(|l| l.port != 0)
        .map(|l| {
            let h = if l.host.is_empty() {
                "0.0.0.0".to_string()
            } else {
                l.host.clone()
            };
            (h, l.port)
        })
        .collect();
    Ok(PreparedNode {
        layout: layout.clone(),
        node_id: config.node_id,
        log_dirs,
        client_addr,
        client_host: host,
        bind_addrs,
    })
}

/// Writes `contents` to `path` through a temporary file and a rename, so that a reader never sees a
/// half-written file.
fn write_atomically(path: &Path, contents: &str) -> Result<(), ClusterUpError> {
    write_file_atomically(path, contents, false)
}

/// [`write_atomically`], readable by the owner only (mode 0600) when `private` (it holds passwords).
fn write_file_atomically(path: &Path, contents: &str, private: bool) -> Result<(), ClusterUpError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    if private {
        // A leftover temporary file keeps its mode when reopened: start from a new one.
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&tmp)(e)),
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_error(&tmp))?;
        file.write_all(contents.as_bytes())
            .map_err(io_error(&tmp))?;
    } else {
        std::fs::write(&tmp, contents).map_err(io_error(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

/// Makes sure `DIR/certs` holds what a secure cluster needs, with the `kavka certs` library: the CA,
/// a certificate for every node of the layout (`node-<i>`, SANs `127.0.0.1` and `localhost`) and the
/// client [`ADMIN_CLIENT`] with its property files. What exists is reused, never replaced. Returns
/// what was created, in words (empty when everything was there).
pub fn ensure_certs(layout: &ClusterLayout) -> Result<Vec<String>, ClusterUpError> {
    use crate::certs;
    let dir = layout.certs_dir();
    let certs_error = |error| ClusterUpError::Certs {
        dir: dir.clone(),
        error,
    };
    let exists = |file: &str| dir.join(file).exists();
    let opts = certs::Options::new(&dir);
    let mut ignore = |_: certs::FileEvent<'_>| {};
    let mut created = Vec::new();
    if !exists("ca.pem") {
        certs::create_ca(&opts, &mut ignore).map_err(certs_error)?;
        created.push("the CA".to_string());
    }
    for node in &layout.nodes {
        let name = ClusterLayout::node_cert_name(node.node_id);
        if !exists(&format!("{name}.p12")) {
            certs::create_node(
                &opts,
                &name,
                &["localhost".to_string()],
                &[std::net::IpAddr::from([127, 0, 0, 1])],
                &mut ignore,
            )
            .map_err(certs_error)?;
            created.push(format!("node certificate {name}"));
        }
    }
    let client_files_missing = layout
        .client_property_files()
        .iter()
        .any(|(_, path)| !path.exists());
    if !exists(&format!("{ADMIN_CLIENT}.p12")) || client_files_missing {
        certs::create_client(&opts, ADMIN_CLIENT, &mut ignore).map_err(certs_error)?;
        created.push(format!("client certificate {ADMIN_CLIENT}"));
    }
    Ok(created)
}

/// The rustls client configuration the readiness probe of a secure cluster uses: the
/// [`ADMIN_CLIENT`]'s key store and the trust store, as its Java property file names them.
fn probe_tls_config(layout: &ClusterLayout) -> Result<Arc<rustls::ClientConfig>, ClusterUpError> {
    let path = layout
        .certs_dir()
        .join(format!("{ADMIN_CLIENT}-client-ssl.properties"));
    let text = std::fs::read_to_string(&path).map_err(io_error(&path))?;
    let config_error = |error| ClusterUpError::Config {
        path: path.clone(),
        error,
    };
    let pairs: Vec<(String, String)> = kavka_config::parse_properties(&text)
        .map_err(config_error)?
        .into_iter()
        .filter(|(k, _)| k.starts_with("ssl."))
        .collect();
    let loaded = BrokerConfig::from_pairs(&pairs).map_err(config_error)?;
    crate::security::client_config(SSL_LISTENER, &loaded.config.security).map_err(|e| {
        ClusterUpError::ProbeTls {
            path: path.clone(),
            reason: e.to_string(),
        }
    })
}

/// Whether `pid` is a live process that looks like Kavka (its command line mentions "kavka"): a pid
/// file can outlive its process, and the pid may since belong to something else. Zombies have an empty
/// command line and count as dead.
pub fn is_live_kavka(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => cmdline.windows(5).any(|w| w == b"kavka"),
        Err(_) => false,
    }
}

/// The pid a pid file names, if it holds one.
fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn send_signal(pid: i32, signal: libc::c_int) {
    if pid > 0 {
        // SAFETY: plain kill(2) on a process id we started or that a pid file of ours names.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// The last `LOG_TAIL_LINES` lines of a log file, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[from..].join("\n")
}

/// How a process ended, in words.
fn describe_exit(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// One running node process.
struct RunningNode {
    node: PreparedNode,
    /// `None` once the child exited and was reaped.
    child: Option<Child>,
    pid: i32,
}

/// A local cluster whose node processes this process started and supervises.
pub struct LocalCluster {
    layout: ClusterLayout,
    exe: PathBuf,
    nodes: Vec<RunningNode>,
    /// The readiness probe's TLS client, for a secure cluster.
    probe_tls: Option<Arc<rustls::ClientConfig>>,
    /// The certificates created for this start (empty when all were reused, or not secure).
    certs_created: Vec<String>,
}

impl LocalCluster {
    /// Prepares every node (checks that existing `server.properties` agree with `layout.secure`,
    /// creates missing certificates of a secure cluster, writes missing `server.properties`, checks each
    /// loads, refuses nodes that are already running or whose ports are taken, formats missing
    /// `meta.properties` with the cluster's one id) and spawns
    /// `exe broker --config DIR/node-<i>/server.properties` for each. If a spawn fails, the nodes already
    /// started are stopped again.
    pub async fn start(
        layout: ClusterLayout,
        exe: PathBuf,
    ) -> Result<LocalCluster, ClusterUpError> {
        let (prepared, certs_created) = prepare(&layout, &exe)?;
        let probe_tls = if layout.secure {
            Some(probe_tls_config(&layout)?)
        } else {
            None
        };
        let mut cluster = LocalCluster {
            layout,
            exe,
            nodes: Vec::with_capacity(prepared.len()),
            probe_tls,
            certs_created,
        };
        for node in prepared {
            match spawn_node(&cluster.exe, &node) {
                Ok(child) => {
                    let pid = i32::try_from(child.id()).unwrap_or(0);
                    cluster.nodes.push(RunningNode {
                        node,
                        child: Some(child),
                        pid,
                    });
                }
                Err(e) => {
                    cluster.stop().await;
                    return Err(e);
                }
            }
        }
        Ok(cluster)
    }

    /// `bootstrap.servers` for clients: every node's client address.
    pub fn bootstrap_servers(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.node.client_addr.clone())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client property files to print after `bootstrap.servers` (what each is for, its path); empty
    /// for a plaintext cluster.
    pub fn client_property_files(&self) -> Vec<(&'static str, PathBuf)> {
        self.layout.client_property_files()
    }

    /// The process ids of the node processes this cluster started (node id, pid).
    pub fn pids(&self) -> Vec<(i32, i32)> {
        self.nodes.iter().map(|n| (n.node.node_id, n.pid)).collect()
    }

    /// Waits until every node answers a Metadata request listing all node ids ([`lists_all_nodes`]),
    /// for at most `timeout`. Fails early if a node process exits.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), ClusterUpError> {
        let expected: Vec<i32> = self.nodes.iter().map(|n| n.node.node_id).collect();
        let deadline = Instant::now() + timeout;
        let mut ready = vec![false; self.nodes.len()];
        let mut last_probe = vec![String::from("not probed yet"); self.nodes.len()];
        let mut correlation_id = 0i32;
        loop {
            for (i, running) in self.nodes.iter_mut().enumerate() {
                if ready[i] {
                    continue;
                }
                if let Some(status) = running.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                    running.child = None;
                    let log = running.node.layout.log_path();
                    return Err(ClusterUpError::ExitedDuringStartup {
                        node_id: running.node.node_id,
                        status,
                        tail: log_tail(&log),
                        log,
                    });
                }
                correlation_id = correlation_id.wrapping_add(1);
                let left = deadline.saturating_duration_since(Instant::now());
                let attempt = tokio::time::timeout(
                    left.clamp(Duration::from_millis(100), Duration::from_secs(2)),
                    probe(
                        &running.node.client_addr,
                        &running.node.client_host,
                        self.probe_tls.as_ref(),
                        correlation_id,
                    ),
                )
                .await;
                last_probe[i] = match attempt {
                    Err(_) => "no answer to a Metadata request".to_string(),
                    Ok(Err(e)) => e,
                    Ok(Ok(listed)) if lists_all_nodes(&expected, &listed) => {
                        ready[i] = true;
                        continue;
                    }
                    Ok(Ok(listed)) => {
                        format!("Metadata lists brokers {listed:?} of {expected:?}")
                    }
                };
            }
            if ready.iter().all(|r| *r) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let not_ready = self
                    .nodes
                    .iter()
                    .zip(ready.iter().zip(last_probe))
                    .filter(|(_, (r, _))| !**r)
                    .map(|(n, (_, last_probe))| NotReadyNode {
                        node_id: n.node.node_id,
                        last_probe,
                        log: n.node.layout.log_path(),
                    })
                    .collect();
                return Err(ClusterUpError::NotReady { timeout, not_ready });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Human hints for stderr: where the files are, how to stop or restart one node, the controller
    /// ports.
    pub fn hints(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "kavka cluster up: {} node(s) ready; data, logs and pid files under {}",
            self.nodes.len(),
            self.layout.dir.display()
        );
        for n in &self.nodes {
            let l = &n.node.layout;
            let _ = writeln!(
                out,
                "  node {} pid {} clients {} controller 127.0.0.1:{} log {} pid file {}",
                n.node.node_id,
                n.pid,
                n.node.client_addr,
                l.controller_port,
                l.log_path().display(),
                l.pid_path().display()
            );
        }
        let _ = writeln!(
            out,
            "  controller.quorum.voters={}",
            self.layout.quorum_voters()
        );
        if self.layout.secure {
            let certs = self.layout.certs_dir();
            let created = if self.certs_created.is_empty() {
                "all reused".to_string()
            } else {
                format!("created {}", self.certs_created.join(", "))
            };
            let _ = writeln!(
                out,
                "  TLS: every listener requires a client certificate signed by {}; certificates in {} \
                 ({created})",
                certs.join("ca.pem").display(),
                certs.display()
            );
            let _ = writeln!(
                out,
                "  the client properties above authenticate as {}; another client: kavka certs \
                 client --out {} --name NAME",
                crate::certs::principal_for(ADMIN_CLIENT),
                certs.display()
            );
        }
        if let Some(first) = self.nodes.first() {
            let l = &first.node.layout;
            let _ = writeln!(
                out,
                "  stop one node:    kill $(cat {})   (it is not restarted automatically)",
                l.pid_path().display()
            );
            let _ = writeln!(
                out,
                "  restart it:       {} broker --config {} >> {} 2>&1 & echo $! > {}",
                self.exe.display(),
                l.config_path().display(),
                l.log_path().display(),
                l.pid_path().display()
            );
        }
        let _ = write!(
            out,
            "  stop the cluster: Ctrl-C or SIGTERM to this process (pid {})",
            std::process::id()
        );
        out
    }

    /// Watches the node processes until `shutdown` resolves. A node that exits is reported once through
    /// `report` and not restarted; its pid file is removed so that a restart by hand can write its own.
    pub async fn supervise<F>(&mut self, shutdown: F, mut report: impl FnMut(&str))
    where
        F: std::future::Future<Output = ()>,
    {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            for running in &mut self.nodes {
                let Some(child) = running.child.as_mut() else {
                    continue;
                };
                let status = match child.try_wait() {
                    Ok(Some(status)) => status,
                    Ok(None) | Err(_) => continue,
                };
                running.child = None;
                let l = &running.node.layout;
                let pid_path = l.pid_path();
                if read_pid(&pid_path) == Some(running.pid) {
                    let _ = std::fs::remove_file(&pid_path);
                }
                report(&format!(
                    "kavka cluster up: node {} (pid {}) exited ({}); not restarting it. Its log: {}. \
                     Restart it by hand: {} broker --config {} >> {} 2>&1 & echo $! > {}",
                    running.node.node_id,
                    running.pid,
                    describe_exit(&status),
                    l.log_path().display(),
                    self.exe.display(),
                    l.config_path().display(),
                    l.log_path().display(),
                    pid_path.display()
                ));
            }
        }
    }

    /// Stops every node: SIGTERM to each live node process (including one restarted by hand whose pid
    /// file names it), up to [`STOP_GRACE`] for them to exit, SIGKILL for the stragglers, then removes
    /// the pid files of nodes that are gone. Returns one line per node that needed SIGKILL.
    pub async fn stop(&mut self) -> Vec<String> {
        // Processes restarted by hand are not our children: they are tracked by pid only.
        let mut adopted: Vec<(i32, i32)> = Vec::new();
        for running in &mut self.nodes {
            if let Some(child) = running.child.as_mut() {
                if matches!(child.try_wait(), Ok(None)) {
                    send_signal(running.pid, libc::SIGTERM);
                    continue;
                }
                running.child = None;
            }
            if let Some(pid) = read_pid(&running.node.layout.pid_path()) {
                if pid != running.pid && is_live_kavka(pid) {
                    send_signal(pid, libc::SIGTERM);
                    adopted.push((running.node.node_id, pid));
                }
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            for running in &mut self.nodes {
                if let Some(child) = running.child.as_mut() {
                    if !matches!(child.try_wait(), Ok(None)) {
                        running.child = None;
                    }
                }
            }
            adopted.retain(|(_, pid)| is_live_kavka(*pid));
            let children_left = self.nodes.iter().any(|n| n.child.is_some());
            if (!children_left && adopted.is_empty()) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut killed = Vec::new();
        for running in &mut self.nodes {
            if let Some(mut child) = running.child.take() {
                let _ = child.kill();
                // After SIGKILL the exit is immediate; reaping it keeps no zombie behind.
                let _ = child.wait();
                killed.push(format!(
                    "node {} (pid {}) did not stop within {}s of SIGTERM and was killed",
                    running.node.node_id,
                    running.pid,
                    STOP_GRACE.as_secs()
                ));
            }
        }
        for (node_id, pid) in adopted {
            send_signal(pid, libc::SIGKILL);
            killed.push(format!(
                "node {node_id} (pid {pid}, restarted by hand) did not stop within {}s of SIGTERM \
                 and was killed",
                STOP_GRACE.as_secs()
            ));
        }
        for running in &self.nodes {
            let pid_path = running.node.layout.pid_path();
            if let Some(pid) = read_pid(&pid_path) {
                if !is_live_kavka(pid) {
                    let _ = std::fs::remove_file(&pid_path);
                }
            }
        }
        killed
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // A cluster dropped without `stop` (an early return, a panic) must not leave its nodes behind.
        for running in &mut self.nodes {
            if let Some(child) = running.child.as_mut() {
                if matches!(child.try_wait(), Ok(None)) {
                    send_signal(running.pid, libc::SIGTERM);
                }
            }
        }
    }
}

/// Everything before spawning: configuration files (and a secure cluster's certificates), already-running
/// and port checks, cluster ids. Returns the nodes and the certificates created, in words.
fn prepare(
    layout: &ClusterLayout,
    exe: &Path,
) -> Result<(Vec<PreparedNode>, Vec<String>), ClusterUpError> {
    // Existing files first: one that says the directory is of the other kind (secure or not) is refused
    // before anything is created or written.
    let mut existing = Vec::with_capacity(layout.nodes.len());
    for node in &layout.nodes {
        existing.push(if node.config_path().exists() {
            Some(load_node(node, layout.secure)?)
        } else {
            None
        });
    }
    let certs_created = if layout.secure {
        ensure_certs(layout)?
    } else {
        Vec::new()
    };
    let mut prepared: Vec<PreparedNode> = Vec::with_capacity(layout.nodes.len());
    for (node, existing) in layout.nodes.iter().zip(existing) {
        std::fs::create_dir_all(&node.dir).map_err(io_error(&node.dir))?;
        let path = node.config_path();
        // An existing file is the operator's: it is used as it is, never rewritten.
        let loaded = match existing {
            Some(loaded) => loaded,
            None => {
                let tls = if layout.secure {
                    Some(layout.node_tls_files(node.node_id)?)
                } else {
                    None
                };
                let text = layout.server_properties(node, exe, tls.as_ref());
                write_file_atomically(&path, &text, tls.is_some())?;
                load_node(node, layout.secure)?
            }
        };
        if let Some(other) = prepared.iter().find(|p| p.node_id == loaded.node_id) {
            return Err(ClusterUpError::DuplicateNodeId {
                node_id: loaded.node_id,
                first: other.layout.config_path(),
                second: path,
            });
        }
        prepared.push(loaded);
    }
    for node in &prepared {
        let pid_file = node.layout.pid_path();
        if let Some(pid) = read_pid(&pid_file) {
            if is_live_kavka(pid) {
                return Err(ClusterUpError::AlreadyRunning {
                    node_id: node.node_id,
                    pid,
                    pid_file,
                });
            }
        }
    }
    for node in &prepared {
        for (host, port) in &node.bind_addrs {
            // Checked up front so that a taken port is one clear error rather than a node that dies
            // in its log, and so that the readiness probe never talks to a stranger.
            if let Err(error) = TcpListener::bind((host.as_str(), *port)) {
                return Err(ClusterUpError::PortInUse {
                    node_id: node.node_id,
                    addr: format!("{host}:{port}"),
                    error,
                });
            }
        }
    }
    format_log_dirs(&prepared)?;
    Ok((prepared, certs_created))
}

/// Makes every log directory carry `meta.properties` with the cluster's one id, as
/// `kafka-storage format --cluster-id` does: an existing id is reused, a new one is drawn when no
/// directory is formatted yet.
fn format_log_dirs(nodes: &[PreparedNode]) -> Result<(), ClusterUpError> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for node in nodes {
        for dir in &node.log_dirs {
            let path = dir.join("meta.properties");
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let meta = parse_meta_properties(&text).map_err(|reason| {
                        ClusterUpError::MetaProperties {
                            path: path.clone(),
                            reason,
                        }
                    })?;
                    if meta.node_id != Some(node.node_id) {
                        return Err(ClusterUpError::MetaProperties {
                            reason: format!(
                                "belongs to node.id {}, but {} sets node.id={}",
                                meta.node_id
                                    .map_or_else(|| "(none)".to_string(), |n| n.to_string()),
                                node.layout.config_path().display(),
                                node.node_id
                            ),
                            path,
                        });
                    }
                    found.push((path, meta.cluster_id));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    missing.push((dir.clone(), node.node_id));
                }
                Err(e) => return Err(io_error(&path)(e)),
            }
        }
    }
    let cluster_id = match reconcile_cluster_id(&found)? {
        Some(id) => id,
        None => crate::meta_properties::new_cluster_id(),
    };
    for (dir, node_id) in missing {
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        write_atomically(
            &dir.join("meta.properties"),
            &render_meta_properties(&cluster_id, node_id),
        )?;
    }
    Ok(())
}

/// Spawns one node with its output appended to its `kavka.log` and records its pid.
fn spawn_node(exe: &Path, node: &PreparedNode) -> Result<Child, ClusterUpError> {
    use std::os::unix::process::CommandExt;
    let log_path = node.layout.log_path();
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_error(&log_path))?;
    let _ = writeln!(
        log,
        "===== kavka cluster up: starting node {} =====",
        node.node_id
    );
    let log2 = log.try_clone().map_err(io_error(&log_path))?;
    let child = Command::new(exe)
        .arg("broker")
        .arg("--config")
        .arg(node.layout.config_path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        // Its own process group: a terminal's Ctrl-C reaches only the supervisor, which then stops
        // the nodes in order instead of racing them.
        .process_group(0)
        .spawn()
        .map_err(|error| ClusterUpError::Spawn {
            node_id: node.node_id,
            exe: exe.to_path_buf(),
            error,
        })?;
    let pid_path = node.layout.pid_path();
    if let Err(e) = write_atomically(&pid_path, &format!("{}\n", child.id())) {
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
    Ok(child)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(n: u16) -> ClusterLayout {
        ClusterLayout::new(n, Path::new("/tmp/kc"), 9092, None).unwrap()
    }

    fn load(text: &str) -> kavka_config::LoadedConfig {
        let pairs = kavka_config::parse_properties(text).unwrap();
        BrokerConfig::from_pairs(&pairs).unwrap()
    }

    #[test]
    fn ports_and_directories_follow_the_layout() {
        let l = layout(3);
        let ids: Vec<_> = l.nodes.iter().map(|n| n.node_id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(l.nodes[2].client_port, 9094);
        assert_eq!(l.nodes[0].controller_port, 9192);
        assert_eq!(l.nodes[2].controller_port, 9194);
        assert_eq!(l.nodes[1].dir, Path::new("/tmp/kc/node-2"));
        assert_eq!(
            l.nodes[1].pid_path(),
            Path::new("/tmp/kc/node-2/pid").to_path_buf()
        );
        assert_eq!(
            l.quorum_voters(),
            "1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194"
        );
        assert_eq!(
            l.bootstrap_servers(),
            "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
        );
        let c = ClusterLayout::new(2, Path::new("/d"), 20000, Some(30000)).unwrap();
        assert_eq!(c.nodes[1].controller_port, 30001);
    }

    #[test]
    fn bad_layouts_are_refused() {
        let err = |n, p, c| {
            ClusterLayout::new(n, Path::new("/d"), p, c)
                .unwrap_err()
                .to_string()
        };
        assert!(err(0, 9092, None).contains("--nodes"));
        assert!(err(1, 0, None).contains("--base-port"));
        assert!(err(1, 65500, None).contains("--controller-base-port"));
        assert!(err(3, 65534, Some(1000)).contains("65535"));
        assert!(err(3, 9092, Some(9094)).contains("overlap"));
        assert!(err(101, 9092, None).contains("overlap"));
        assert!(ClusterLayout::new(1, Path::new("/a,b"), 9092, None).is_err());
        assert!(ClusterLayout::new(2, Path::new("/d"), 9092, Some(9094)).is_ok());
    }

    #[test]
    fn generated_config_loads_with_expected_values() {
        let l = layout(3);
        let text = l.server_properties(&l.nodes[1], Path::new("/usr/bin/kavka"), None);
        assert!(text.starts_with("# Generated by `kavka cluster up`"));
        assert!(text.contains("/usr/bin/kavka broker --config /tmp/kc/node-2/server.properties"));
        let loaded = load(&text);
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        let c = loaded.config;
        assert_eq!(c.node_id, 2);
        assert!(c.is_broker() && c.is_controller());
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.advertised_listeners.len(), 1);
        assert_eq!(c.advertised_listeners[0].port, 9093);
        assert_eq!(c.controller_listeners()[0].port, 9193);
        assert_eq!(c.inter_broker_listener_name, "PLAINTEXT");
        assert_eq!(c.controller_quorum_voters.len(), 3);
        assert_eq!(c.log_dirs, ["/tmp/kc/node-2/data"]);
        assert_eq!(c.num_partitions, 1);
        assert_eq!(c.default_replication_factor, 3);
        assert_eq!(c.min_insync_replicas, 2);
        assert_eq!(c.offsets_topic_replication_factor, 3);
        assert_eq!(c.transaction_state_log_replication_factor, 3);
        assert_eq!(c.transaction_state_log_min_isr, 2);
    }

    #[test]
    fn replication_settings_are_capped_by_cluster_size() {
        let l = layout(1);
        let c = load(&l.server_properties(&l.nodes[0], Path::new("kavka"), None)).config;
        assert_eq!(c.default_replication_factor, 1);
        assert_eq!(c.min_insync_replicas, 1);
        assert_eq!(c.offsets_topic_replication_factor, 1);
        assert_eq!(c.transaction_state_log_min_isr, 1);
        let l = layout(5);
        let c = load(&l.server_properties(&l.nodes[4], Path::new("kavka"), None)).config;
        assert_eq!(c.default_replication_factor, 3);
        assert_eq!(c.min_insync_replicas, 2);
        assert_eq!(c.controller_quorum_voters.len(), 5);
    }

    #[test]
    fn odd_directory_names_survive_properties_escaping() {
        let l = ClusterLayout::new(1, Path::new("/a b\\c=d:e#f"), 9092, None).unwrap();
        let c = load(&l.server_properties(&l.nodes[0], Path::new("kavka"), None)).config;
        assert_eq!(c.log_dirs, ["/a b\\c=d:e#f/node-1/data"]);
    }

    fn tls_files() -> NodeTlsFiles {
        NodeTlsFiles {
            keystore: PathBuf::from("/tmp/kc/certs/node-2.p12"),
            keystore_password: "ks pass\\with=odd:chars#".to_string(),
            truststore: PathBuf::from("/tmp/kc/certs/truststore.p12"),
            truststore_password: "trust\tpass".to_string(),
        }
    }

    #[test]
    fn secure_config_is_mutual_tls_on_every_listener() {
        let l = layout(3).with_tls(true);
        let text =
            l.server_properties(&l.nodes[1], Path::new("/usr/bin/kavka"), Some(&tls_files()));
        assert!(text.starts_with("# Generated by `kavka cluster up --secure`"));
        assert!(text.contains("/usr/bin/kavka broker --config /tmp/kc/node-2/server.properties"));
        assert!(text.contains("listeners=SSL://127.0.0.1:9093,CONTROLLER://127.0.0.1:9193\n"));
        assert!(text.contains("listener.security.protocol.map=SSL:SSL,CONTROLLER:SSL\n"));
        let loaded = load(&text);
        assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
        let c = loaded.config;
        assert_eq!(c.node_id, 2);
        assert_eq!(c.inter_broker_listener_name, "SSL");
        assert!(c
            .listeners
            .iter()
            .all(|l| l.security_protocol == SecurityProtocol::Ssl));
        assert_eq!(
            c.advertised_listeners[0].security_protocol,
            SecurityProtocol::Ssl
        );
        assert_eq!(c.advertised_listeners[0].port, 9093);
        assert_eq!(c.controller_listeners()[0].port, 9193);
        assert_eq!(c.default_replication_factor, 3);
        let get = |k: &str| c.security.get(k).map(str::to_string);
        assert_eq!(get("ssl.keystore.type").as_deref(), Some("PKCS12"));
        assert_eq!(
            get("ssl.keystore.location").as_deref(),
            Some("/tmp/kc/certs/node-2.p12")
        );
        assert_eq!(
            get("ssl.keystore.password").as_deref(),
            Some("ks pass\\with=odd:chars#")
        );
        assert_eq!(get("ssl.truststore.type").as_deref(), Some("PKCS12"));
        assert_eq!(
            get("ssl.truststore.location").as_deref(),
            Some("/tmp/kc/certs/truststore.p12")
        );
        assert_eq!(
            get("ssl.truststore.password").as_deref(),
            Some("trust\tpass")
        );
        assert_eq!(get("ssl.client.auth").as_deref(), Some("required"));
    }

    #[test]
    fn client_property_files_only_when_secure() {
        assert!(layout(1).client_property_files().is_empty());
        let files = layout(1).with_tls(true).client_property_files();
        assert_eq!(
            files,
            [
                (
                    "librdkafka, kcat -F",
                    PathBuf::from("/tmp/kc/certs/admin-librdkafka.properties")
                ),
                (
                    "Java",
                    PathBuf::from("/tmp/kc/certs/admin-client-ssl.properties")
                ),
            ]
        );
    }

    #[test]
    fn certs_are_created_once_then_reused_and_a_mixed_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let l = ClusterLayout::new(2, dir, 9092, None)
            .unwrap()
            .with_tls(true);
        let created = ensure_certs(&l).unwrap();
        assert_eq!(
            created,
            [
                "the CA",
                "node certificate node-1",
                "node certificate node-2",
                "client certificate admin"
            ]
        );
        let ca = std::fs::read(dir.join("certs/ca.pem")).unwrap();
        assert!(ensure_certs(&l).unwrap().is_empty());
        // A node added later gets its certificate from the same CA.
        let l3 = ClusterLayout::new(3, dir, 9092, None)
            .unwrap()
            .with_tls(true);
        assert_eq!(ensure_certs(&l3).unwrap(), ["node certificate node-3"]);
        assert_eq!(std::fs::read(dir.join("certs/ca.pem")).unwrap(), ca);
        assert!(probe_tls_config(&l3).is_ok());

        // The generated configuration's key store and trust store open with the passwords it holds.
        let tls = l3.node_tls_files(3).unwrap();
        let text = l3.server_properties(&l3.nodes[2], Path::new("kavka"), Some(&tls));
        let c = load(&text).config;
        crate::security::server_config("SSL", &c.security).unwrap();
        crate::security::client_config("SSL", &c.security).unwrap();

        // Node 1 written secure: starting the directory plaintext is refused, and the reverse.
        std::fs::create_dir_all(&l3.nodes[0].dir).unwrap();
        let tls1 = l3.node_tls_files(1).unwrap();
        std::fs::write(
            l3.nodes[0].config_path(),
            l3.server_properties(&l3.nodes[0], Path::new("kavka"), Some(&tls1)),
        )
        .unwrap();
        assert!(load_node(&l3.nodes[0], true).is_ok());
        let err = load_node(&l3.nodes[0], false).unwrap_err().to_string();
        assert!(err.contains("created with --secure"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let plain = ClusterLayout::new(1, &dir.join("plain"), 9092, None).unwrap();
        std::fs::create_dir_all(&plain.nodes[0].dir).unwrap();
        std::fs::write(
            plain.nodes[0].config_path(),
            plain.server_properties(&plain.nodes[0], Path::new("kavka"), None),
        )
        .unwrap();
        let err = load_node(&plain.nodes[0], true).unwrap_err().to_string();
        assert!(err.contains("created without --secure"), "{err}");
        assert!(load_node(&plain.nodes[0], false).is_ok());
    }

    #[test]
    fn secret_values_survive_properties_escaping() {
        for v in [
            "plain",
            "  two leading",
            "a\\b",
            "tab\there",
            "x=y:z#w!",
            "new\nline",
        ] {
            let text = format!("k={}\n", escape_secret_value(v));
            let pairs = kavka_config::parse_properties(&text).unwrap();
            assert_eq!(pairs, [("k".to_string(), v.to_string())], "{text:?}");
        }
    }

    #[test]
    fn cluster_id_reconciliation() {
        assert_eq!(reconcile_cluster_id(&[]).unwrap(), None);
        let a = (PathBuf::from("/n1/meta.properties"), "A".to_string());
        let a2 = (PathBuf::from("/n2/meta.properties"), "A".to_string());
        let b = (PathBuf::from("/n3/meta.properties"), "B".to_string());
        assert_eq!(
            reconcile_cluster_id(&[a.clone(), a2.clone()]).unwrap(),
            Some("A".to_string())
        );
        let msg = reconcile_cluster_id(&[a, a2, b]).unwrap_err().to_string();
        assert!(msg.contains("/n1/meta.properties") && msg.contains("/n3/meta.properties"));
        assert!(msg.contains("cluster.id=A") && msg.contains("cluster.id=B"));
    }

    #[test]
    fn readiness_needs_every_node_listed() {
        assert!(lists_all_nodes(&[1], &[1]));
        assert!(!lists_all_nodes(&[1, 2, 3], &[1]));
        assert!(lists_all_nodes(&[1, 2, 3], &[3, 1, 2]));
        assert!(lists_all_nodes(&[1, 2], &[1, 2, 7]));
    }

    #[test]
    fn probe_request_is_a_metadata_v12_frame() {
        let mut frame = metadata_probe_frame(7).unwrap();
        let len = frame.get_i32();
        assert_eq!(len as usize, frame.remaining());
        let header = RequestHeader::decode(&mut frame, 2).unwrap();
        assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
        assert_eq!(header.request_api_version, 12);
        assert_eq!(header.correlation_id, 7);
        let req = MetadataRequest::decode(&mut frame, 12).unwrap();
        assert!(req.topics.is_none());
        assert!(!frame.has_remaining());
    }

    #[test]
    fn probe_response_yields_broker_ids() {
        use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
        use kafka_protocol::messages::BrokerId;
        let response = MetadataResponse::default().with_brokers(vec![
            MetadataResponseBroker::default().with_node_id(BrokerId(1)),
            MetadataResponseBroker::default().with_node_id(BrokerId(3)),
        ]);
        let encode = |corr: i32| {
            let mut b = BytesMut::new();
            ResponseHeader::default()
                .with_correlation_id(corr)
                .encode(&mut b, 1)
                .unwrap();
            response.encode(&mut b, 12).unwrap();
            b.freeze()
        };
        assert_eq!(parse_metadata_probe_response(encode(5), 5).unwrap(), [1, 3]);
        assert!(parse_metadata_probe_response(encode(6), 5)
            .unwrap_err()
            .contains("correlation"));
        assert!(parse_metadata_probe_response(Bytes::from_static(&[0, 0]), 5).is_err());
    }

    #[test]
    fn dead_or_foreign_pids_are_not_live_kavka() {
        assert!(!is_live_kavka(0));
        assert!(!is_live_kavka(-5));
        // The unit-test binary itself is `kavka-<hash>`: a live process whose command line says kavka.
        assert!(is_live_kavka(std::process::id() as i32));
    }
}
