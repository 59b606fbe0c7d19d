//! TLS support for the integration tests: certificates made by `kavka certs` in a temporary directory,
//! the `ssl.*` settings of a node that serves them, a blocking Kafka protocol connection over TLS (rustls,
//! built here from the PEM files, independent of Kavka's own loader) that can also show the certificate a
//! listener served, and librdkafka clients configured from the `<client>-librdkafka.properties` file
//! `kavka certs client` writes (through rdkafka when its librdkafka was built with OpenSSL, else through
//! `kcat -F` when kcat is installed).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, MetadataRequest, MetadataResponse, ProduceRequest,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use rdkafka::config::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConnection, RootCertStore, StreamOwned};

use super::{run_kavka, KavkaRun};

/// The password of every keystore and truststore the tests create (`kavka certs --password`), so that
/// re-issuing a certificate with `--force` keeps it.
pub const PASSWORD: &str = "kavka-test-secret";
/// What the broker logs when it refuses a TLS handshake.
pub const REJECTED_LINE: &str = "connection rejected: TLS handshake failed";
/// What the broker logs when changed certificate files do not load.
pub const RELOAD_REFUSED_LINE: &str =
    "TLS files changed but do not load; the previous certificates stay in use";
/// What the broker logs when new certificates were loaded.
pub const RELOADED_LINE: &str = "TLS certificates reloaded; new connections use them";
/// What the broker logs on SIGHUP.
pub const SIGHUP_LINE: &str = "SIGHUP: reloading TLS certificates";
/// How long one `kavka certs` command may take.
const CERTS_TIMEOUT: Duration = Duration::from_secs(60);

/// A directory of certificates made by `kavka certs`, all under one CA; removed when dropped.
pub struct CertDir {
    dir: tempfile::TempDir,
}

impl CertDir {
    /// A new directory with a CA (`kavka certs ca --password`): `ca.pem`, `ca-key.pem`,
    /// `truststore.p12`.
    pub fn new_ca() -> CertDir {
        let dir = tempfile::Builder::new()
            .prefix("kavka-certs-")
            .tempdir()
            .expect("create certs dir");
        let certs = CertDir { dir };
        certs.certs(&["ca"]);
        certs
    }

    /// Runs `kavka certs <args> --out DIR --password PASSWORD` and fails the test unless it succeeds.
    pub fn certs(&self, args: &[&str]) -> KavkaRun {
        let mut full: Vec<String> = vec!["certs".into()];
        full.extend(args.iter().map(|a| a.to_string()));
        full.extend([
            "--out".to_string(),
            self.dir.path().display().to_string(),
            "--password".to_string(),
            PASSWORD.to_string(),
        ]);
        let run = run_kavka(&full, CERTS_TIMEOUT);
        assert!(run.succeeded(), "`kavka {}` failed; {run}", full.join(" "));
        run
    }

    /// Issues the node certificate `name` for 127.0.0.1 and localhost (`kavka certs node`); with
    /// `force`, replaces an existing one.
    pub fn node(&self, name: &str, force: bool) {
        let mut args = vec![
            "node",
            "--name",
            name,
            "--ip",
            "127.0.0.1",
            "--dns",
            "localhost",
        ];
        if force {
            args.push("--force");
        }
        self.certs(&args);
    }

    /// Issues the client certificate `name` (`kavka certs client`), with its property files.
    pub fn client(&self, name: &str) {
        self.certs(&["client", "--name", name]);
    }

    /// `DIR/file`.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `ca.pem`.
    pub fn ca_pem(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// `<name>.p12`, the keystore of a node or client.
    pub fn keystore(&self, name: &str) -> PathBuf {
        self.path(&format!("{name}.p12"))
    }

    /// The leaf certificate of `<name>.pem` (its first certificate), DER.
    pub fn leaf(&self, name: &str) -> CertificateDer<'static> {
        pem_certs(&self.path(&format!("{name}.pem")))
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no certificate in {name}.pem"))
    }

    /// The `ssl.*` settings of a node serving node certificate `name` with its PKCS#12 keystore and
    /// this CA's truststore, client certificates required. `prefix` is put before every key (e.g.
    /// `listener.name.ssl.`; empty for the node-wide keys).
    pub fn server_settings(&self, name: &str, prefix: &str) -> Vec<(String, String)> {
        [
            ("ssl.keystore.type", "PKCS12".to_string()),
            (
                "ssl.keystore.location",
                self.keystore(name).display().to_string(),
            ),
            ("ssl.keystore.password", PASSWORD.to_string()),
            ("ssl.key.password", PASSWORD.to_string()),
            ("ssl.truststore.type", "PKCS12".to_string()),
            (
                "ssl.truststore.location",
                self.path("truststore.p12").display().to_string(),
            ),
            ("ssl.truststore.password", PASSWORD.to_string()),
            ("ssl.client.auth", "required".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v))
        .collect()
    }

    /// The key/value pairs of `<client>-librdkafka.properties`.
    pub fn librdkafka_properties(&self, client: &str) -> Vec<(String, String)> {
        read_properties(&self.librdkafka_properties_file(client))
    }

    /// `<client>-librdkafka.properties`.
    pub fn librdkafka_properties_file(&self, client: &str) -> PathBuf {
        self.path(&format!("{client}-librdkafka.properties"))
    }

    /// A rustls client trusting this CA, presenting client (or node) certificate `identity` if given.
    pub fn tls_client(&self, identity: Option<&str>) -> TlsClient {
        TlsClient::new(
            &self.ca_pem(),
            identity.map(|name| {
                (
                    self.path(&format!("{name}.pem")),
                    self.path(&format!("{name}-key.pem")),
                )
            }),
        )
    }
}

/// Pairs of `settings` as `--override` arguments take them.
pub fn as_overrides(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The `key=value` lines of a `.properties` file (no escapes: `kavka certs` writes none for these).
pub fn read_properties(path: &Path) -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Every certificate of a PEM file.
pub fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client configuration.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
}

impl TlsClient {
    /// Trusting the CA certificates of `ca_pem`; presenting `identity` (certificate chain PEM, PKCS#8
    /// key PEM) as client certificate if given.
    pub fn new(ca_pem: &Path, identity: Option<(PathBuf, PathBuf)>) -> TlsClient {
        let mut roots = RootCertStore::empty();
        for cert in pem_certs(ca_pem) {
            roots.add(cert).expect("add CA certificate");
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots);
        let config = match identity {
            Some((chain, key)) => {
                let key = PrivateKeyDer::from_pem_file(&key)
                    .unwrap_or_else(|e| panic!("read key {}: {e}", key.display()));
                builder
                    .with_client_auth_cert(pem_certs(&chain), key)
                    .expect("client certificate")
            }
            None => builder.with_no_client_auth(),
        };
        TlsClient {
            config: Arc::new(config),
        }
    }
}

/// A blocking Kafka protocol connection over TLS.
pub struct TlsConn {
    stream: StreamOwned<ClientConnection, TcpStream>,
    correlation_id: i32,
}

impl TlsConn {
    /// Connects to `addr` (verified as 127.0.0.1) and completes the TLS handshake, with 10 s I/O
    /// timeouts. With TLS 1.3 a server that refuses the client's certificate only says so after the
    /// client's side of the handshake is done: that shows as an error of the first request.
    pub fn connect(addr: SocketAddr, client: &TlsClient) -> anyhow::Result<TlsConn> {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(addr.ip().to_string())?;
        let conn = ClientConnection::new(client.config.clone(), name)?;
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(TlsConn {
            stream,
            correlation_id: 0,
        })
    }

    /// The certificate the server presented (its leaf).
    pub fn peer_leaf(&self) -> CertificateDer<'static> {
        self.stream
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("the server presented a certificate")
            .clone()
            .into_owned()
    }

    /// Sends one request at `version` and decodes its response.
    pub fn request<R: Request>(&mut self, version: i16, req: &R) -> anyhow::Result<R::Response> {
        self.correlation_id += 1;
        let corr = self.correlation_id;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(corr)
            .with_client_id(Some(StrBytes::from_static_str("kavka-it-tls")));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version))?;
        req.encode(&mut body, version)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(i32::try_from(body.len())?);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame)?;
        self.stream.flush()?;
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        anyhow::ensure!(
            (0..64 << 20).contains(&len),
            "bad response frame length {len}"
        );
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf)?;
        let mut resp = Bytes::from(buf);
        let rh = ResponseHeader::decode(&mut resp, R::Response::header_version(version))?;
        anyhow::ensure!(
            rh.correlation_id == corr,
            "correlation id {} != {corr}",
            rh.correlation_id
        );
        R::Response::decode(&mut resp, version)
    }

    /// Metadata (v12, all topics).
    pub fn metadata(&mut self) -> anyhow::Result<MetadataResponse> {
        self.request(12, &MetadataRequest::default().with_topics(None))
    }

    /// Creates `topic` (CreateTopics v5) with `partitions` partitions of replication factor `rf` and
    /// the topic `configs`; fails the test on any error.
    pub fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        rf: i16,
        configs: &[(&str, &str)],
    ) {
        let configs = configs
            .iter()
            .map(|(k, v)| {
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_string(k.to_string()))
                    .with_value(Some(StrBytes::from_string(v.to_string())))
            })
            .collect();
        let response = self
            .request(
                5,
                &CreateTopicsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_num_partitions(partitions)
                        .with_replication_factor(rf)
                        .with_configs(configs)]),
            )
            .expect("CreateTopics over TLS");
        let t = &response.topics[0];
        assert_eq!(t.error_code, 0, "creating {topic}: {response:?}");
    }

    /// Produces one uncompressed batch of `values` (Produce v9) to `topic`/`partition` with `acks`
    /// and returns the partition's answer.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        acks: i16,
        values: &[&[u8]],
    ) -> anyhow::Result<PartitionProduceResponse> {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                value: Some(Bytes::copy_from_slice(v)),
                ..super::raw_record(i, "tls")
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )?;
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(buf.freeze()))])]);
        let mut response = self.request(9, &request)?;
        Ok(response
            .responses
            .swap_remove(0)
            .partition_responses
            .swap_remove(0))
    }

    /// One Fetch (v12) of `topic`/`partition` from `offset`: the values of the records returned, with
    /// their offsets; an error for a partition error.
    pub fn fetch(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> anyhow::Result<Vec<(i64, Bytes)>> {
        let request = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(8 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(4 << 20)
                    .with_current_leader_epoch(-1)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)])]);
        let response = self.request(12, &request)?;
        anyhow::ensure!(
            response.error_code == 0,
            "fetch error {}",
            response.error_code
        );
        let p = &response.responses[0].partitions[0];
        anyhow::ensure!(p.error_code == 0, "partition fetch error {}", p.error_code);
        let mut out = Vec::new();
        if let Some(records) = &p.records {
            let mut records = records.clone();
            for set in RecordBatchDecoder::decode_all(&mut records)? {
                for r in set.records {
                    if r.offset >= offset {
                        out.push((r.offset, r.value.unwrap_or_default()));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Fetches `topic`/`partition` from offset 0 until `count` records arrived, within `limit`.
    pub fn fetch_all(
        &mut self,
        topic: &str,
        partition: i32,
        count: usize,
        limit: Duration,
    ) -> Vec<Bytes> {
        let deadline = Instant::now() + limit;
        let mut out: Vec<Bytes> = Vec::new();
        while out.len() < count {
            let got = self
                .fetch(topic, partition, out.len() as i64)
                .unwrap_or_else(|e| panic!("fetch {topic}/{partition} over TLS: {e}"));
            out.extend(got.into_iter().map(|(_, v)| v));
            assert!(
                Instant::now() < deadline,
                "read {} of {count} records of {topic}/{partition} over TLS within {limit:?}",
                out.len()
            );
        }
        out
    }
}

/// Polls until a TLS connection to `addr` with `client` answers Metadata satisfying `check`, within
/// `limit`; panics saying `what` was expected, with the last answer or error.
pub fn wait_for_tls_metadata(
    addr: SocketAddr,
    client: &TlsClient,
    limit: Duration,
    what: &str,
    check: impl Fn(&MetadataResponse) -> bool,
) -> MetadataResponse {
    let deadline = Instant::now() + limit;
    let mut last: String;
    loop {
        match TlsConn::connect(addr, client).and_then(|mut c| c.metadata()) {
            Ok(m) if check(&m) => return m,
            Ok(m) => last = format!("{m:?}"),
            Err(e) => last = format!("error: {e:#}"),
        }
        assert!(
            Instant::now() < deadline,
            "expected {what} from {addr} over TLS within {limit:?}; last: {last}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

// ---------------------------------------------------------------------------------------------
// librdkafka clients

/// Whether the librdkafka linked into the tests was built with OpenSSL (rdkafka's `ssl` feature).
pub fn rdkafka_has_ssl() -> bool {
    match ClientConfig::new()
        .set("security.protocol", "ssl")
        .create::<rdkafka::producer::BaseProducer>()
    {
        Ok(_) => true,
        Err(e) => {
            let e = e.to_string();
            assert!(e.contains("not available at build time"), "{e}");
            false
        }
    }
}

/// A client config for `bootstrap` with the settings of a librdkafka properties file, and the
/// harness' usual timeouts.
pub fn rdkafka_config(bootstrap: &str, props: &[(String, String)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("socket.timeout.ms", "10000")
        .set("api.version.request.timeout.ms", "5000");
    for (k, v) in props {
        cfg.set(k, v);
    }
    if let Ok(debug) = std::env::var("KAVKA_TEST_RDKAFKA_DEBUG") {
        cfg.set("debug", debug);
    }
    cfg
}

/// Whether `tool` can be run.
pub fn on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// What a kcat run did.
pub struct KcatRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs kcat with `args` (and `stdin`), killing it after `limit`.
pub fn kcat(args: &[&str], stdin: Option<&str>, limit: Duration) -> KcatRun {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kcat");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("kcat stdin");
        pipe.write_all(input.as_bytes()).expect("write kcat stdin");
    }
    let mut out = child.stdout.take().expect("kcat stdout");
    let mut err = child.stderr.take().expect("kcat stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for kcat") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    KcatRun {
        success: status.is_some_and(|s| s.success()),
        stdout: out_reader.join().expect("kcat stdout reader"),
        stderr: err_reader.join().expect("kcat stderr reader"),
    }
}

/// Which librdkafka client the TLS client checks can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Librdkafka {
    /// rdkafka (its librdkafka has OpenSSL).
    Rdkafka,
    /// `kcat -F <properties>` (rdkafka's librdkafka has no OpenSSL; kcat is installed).
    Kcat,
}

/// The librdkafka client available for TLS, if any; says on stdout which one, or why none.
pub fn librdkafka_client() -> Option<Librdkafka> {
    if rdkafka_has_ssl() {
        return Some(Librdkafka::Rdkafka);
    }
    if on_path("kcat") {
        println!(
            "the rdkafka crate's librdkafka was built without OpenSSL (no `ssl` feature): using \
             kcat -F for the librdkafka TLS client checks"
        );
        return Some(Librdkafka::Kcat);
    }
    println!(
        "SKIPPED librdkafka TLS client checks: the rdkafka crate's librdkafka was built without \
         OpenSSL (no `ssl` feature) and kcat is not installed"
    );
    None
}

/// Produces `values` to `topic`/`partition` with acks=all and reads them back from `start_offset`
/// (where the first of them must land), as a librdkafka client configured by the properties file
/// `props_file` (`kavka certs client`'s): through rdkafka or kcat, as `client` says.
#[allow(clippy::too_many_arguments)]
pub fn librdkafka_round_trip(
    client: Librdkafka,
    bootstrap: &str,
    props_file: &Path,
    topic: &str,
    partition: i32,
    start_offset: i64,
    values: &[String],
    limit: Duration,
) {
    match client {
        Librdkafka::Rdkafka => {
            use rdkafka::consumer::BaseConsumer;
            use rdkafka::producer::{FutureProducer, FutureRecord};
            use rdkafka::Message;
            let props = read_properties(props_file);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let producer: FutureProducer = rdkafka_config(bootstrap, &props)
                .set("acks", "all")
                .set("message.timeout.ms", limit.as_millis().to_string())
                .create()
                .expect("create TLS producer");
            for (i, v) in values.iter().enumerate() {
                let delivery = runtime
                    .block_on(
                        producer.send(
                            FutureRecord::<(), _>::to(topic)
                                .partition(partition)
                                .payload(v),
                            limit,
                        ),
                    )
                    .unwrap_or_else(|(e, _)| panic!("rdkafka TLS produce {i}: {e}"));
                assert_eq!(
                    delivery.offset,
                    start_offset + i as i64,
                    "offset of record {i}"
                );
            }
            let consumer: BaseConsumer = rdkafka_config(bootstrap, &props)
                .set("group.id", "kavka-it-tls-assign-only")
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "false")
                .create()
                .expect("create TLS consumer");
            let got = super::consume_exact(
                &consumer,
                topic,
                partition,
                rdkafka::Offset::Offset(start_offset),
                values.len(),
                limit,
            );
            let got: Vec<String> = got
                .iter()
                .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
                .collect();
            assert_eq!(got, values, "what rdkafka read back over TLS");
        }
        Librdkafka::Kcat => {
            let file = props_file.to_str().expect("utf-8 path");
            let partition = partition.to_string();
            let input: String = values.iter().map(|v| format!("{v}\n")).collect();
            let run = kcat(
                &[
                    "-F", file, "-b", bootstrap, "-t", topic, "-p", &partition, "-P", "-X",
                    "acks=all",
                ],
                Some(&input),
                limit,
            );
            assert!(
                run.success && !run.stderr.contains("ERROR"),
                "kcat TLS produce: {}{}",
                run.stdout,
                run.stderr
            );
            let count = values.len().to_string();
            let offset = start_offset.to_string();
            let run = kcat(
                &[
                    "-F", file, "-b", bootstrap, "-t", topic, "-p", &partition, "-C", "-o",
                    &offset, "-c", &count, "-e", "-f", "%o %s\n",
                ],
                None,
                limit,
            );
            assert!(
                run.success,
                "kcat TLS consume: {}{}",
                run.stdout, run.stderr
            );
            let expected: String = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{} {v}\n", start_offset + i as i64))
                .collect();
            assert_eq!(
                run.stdout, expected,
                "what kcat read back over TLS: {}",
                run.stderr
            );
        }
    }
}

/// Asks for Metadata as a librdkafka client with the settings `props` (e.g. TLS without a client
/// certificate); `Ok(number of brokers)` or the client's error.
pub fn librdkafka_metadata(
    client: Librdkafka,
    bootstrap: &str,
    props: &[(String, String)],
    limit: Duration,
) -> Result<usize, String> {
    match client {
        Librdkafka::Rdkafka => {
            use rdkafka::consumer::{BaseConsumer, Consumer};
            let consumer: BaseConsumer = rdkafka_config(bootstrap, props)
                .create()
                .map_err(|e| e.to_string())?;
            consumer
                .fetch_metadata(None, limit)
                .map(|m| m.brokers().len())
                .map_err(|e| e.to_string())
        }
        Librdkafka::Kcat => {
            let mut args: Vec<String> = vec!["-b".into(), bootstrap.into(), "-L".into()];
            args.extend(["-m".into(), limit.as_secs().max(1).to_string()]);
            for (k, v) in props {
                args.extend(["-X".into(), format!("{k}={v}")]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let run = kcat(&args, None, limit + Duration::from_secs(10));
            let brokers = run
                .stdout
                .lines()
                .find_map(|l| l.trim().strip_suffix(" brokers:"))
                .and_then(|n| n.trim().parse().ok());
            match (run.success, brokers) {
                (true, Some(n)) => Ok(n),
                _ => Err(format!("kcat -L: {}{}", run.stdout, run.stderr)),
            }
        }
    }
}
