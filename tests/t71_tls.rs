//! TLS listeners end to end, with certificates made by `kavka certs` (PKCS#12 keystores and truststore):
//!
//! - a single node's SSL listener with `ssl.client.auth=required` serves a client presenting a
//!   certificate of the cluster's CA (produce and consume, over a raw rustls connection and as a librdkafka
//!   client configured by the `<client>-librdkafka.properties` file), and refuses a client without a
//!   certificate, a client whose certificate another CA issued, and a PLAINTEXT client (cleanly: the broker
//!   logs the rejection and keeps serving);
//! - a 3-node cluster with every listener SSL (client, inter-broker and controller; each node its own
//!   certificate) forms, replicates an RF3 topic over TLS with a full ISR and acknowledges acks=all
//!   production, while a 4th broker whose certificate another CA issued can never join;
//! - hot reload: a re-issued keystore is served to new connections while established ones keep working, a
//!   broken keystore is refused (logged) with the last good certificate kept, SIGHUP forces a reload;
//! - on the wire (tcpdump on loopback, skipped when tcpdump is missing or not permitted): a payload sent
//!   over the SSL listener never appears in clear, while one sent over a PLAINTEXT listener does.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::{
    brokers_of, free_ports, partitions_of, Cluster, DynamicNode, FormatFlag, Listeners, Role,
};
use common::tls::{
    as_overrides, librdkafka_client, librdkafka_metadata, librdkafka_round_trip, read_properties,
    wait_for_tls_metadata, CertDir, TlsClient, TlsConn, REJECTED_LINE, RELOADED_LINE,
    RELOAD_REFUSED_LINE, SIGHUP_LINE,
};
use common::{encode_batch, raw_produce, raw_record, topic_name, Broker, RawConn};
use kafka_protocol::messages::ApiVersionsRequest;
use kafka_protocol::records::Record;

/// Generous bound for anything a busy machine has to do (a cluster forming, a reload noticed).
const WAIT: Duration = Duration::from_secs(60);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A single node whose only listener is SSL (named SSL) on `port`, serving node certificate `node` of
/// `certs` with client certificates required, plus `extra` settings; waits until it accepts connections.
fn ssl_node(certs: &CertDir, node: &str, extra: &[(&str, &str)]) -> Broker {
    let port = common::free_port();
    let listener = format!("SSL://127.0.0.1:{port}");
    let mut settings: Vec<(String, String)> = vec![
        ("listeners".into(), listener.clone()),
        ("advertised.listeners".into(), listener),
        ("listener.security.protocol.map".into(), "SSL:SSL".into()),
        ("inter.broker.listener.name".into(), "SSL".into()),
    ];
    settings.extend(certs.server_settings(node, ""));
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut broker = Broker::launch(port, &as_overrides(&settings));
    broker.wait_ready();
    broker
}

/// Connects with `client` and fails the test unless the TLS connection answers Metadata.
fn connect_ok(at: SocketAddr, client: &TlsClient) -> TlsConn {
    let mut conn = TlsConn::connect(at, client)
        .unwrap_or_else(|e| panic!("TLS connection to {at} failed: {e:#}"));
    conn.metadata()
        .unwrap_or_else(|e| panic!("Metadata over TLS from {at} failed: {e:#}"));
    conn
}

/// The error a TLS client gets when it tries to get Metadata; fails the test if it gets it.
fn metadata_refused(at: SocketAddr, client: &TlsClient, who: &str) -> String {
    match TlsConn::connect(at, client).and_then(|mut c| c.metadata()) {
        Ok(m) => panic!("{who} got Metadata over TLS from {at}: {m:?}"),
        Err(e) => format!("{e:#}"),
    }
}

/// `n` records' values, unique to this test run.
fn values(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{tag}-{}-{i}", std::process::id()))
        .collect()
}

fn as_bytes(values: &[String]) -> Vec<&[u8]> {
    values.iter().map(|v| v.as_bytes()).collect()
}

/// Produces `values` on `conn` with acks=all and asserts they are acknowledged at `base_offset`.
fn produce_acked(conn: &mut TlsConn, topic: &str, values: &[String], base_offset: i64) {
    let response = conn
        .produce(topic, 0, -1, &as_bytes(values))
        .unwrap_or_else(|e| panic!("Produce over TLS to {topic}: {e:#}"));
    assert_eq!(
        (response.error_code, response.base_offset),
        (0, base_offset),
        "Produce over TLS to {topic}: {response:?}"
    );
}

/// Waits until `broker`'s log has more than `before` lines containing `needle`.
fn wait_for_more_lines(broker: &Broker, needle: &str, before: usize, what: &str) {
    let deadline = Instant::now() + WAIT;
    while broker.log_lines_containing(needle).len() <= before {
        assert!(
            Instant::now() < deadline,
            "expected {what} (a new log line containing {needle:?}) within {WAIT:?}\n{}",
            broker.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The broker's "connection rejected: TLS handshake failed" lines whose reason contains `reason`, or,
/// with `None`, every one but those of connections closed before any handshake ("handshake eof": the
/// harness' readiness probe connects and closes, and the broker logs that too).
fn rejections(broker: &Broker, reason: Option<&str>) -> Vec<String> {
    broker
        .log_lines_containing(REJECTED_LINE)
        .into_iter()
        .filter(|l| match reason {
            Some(r) => l.contains(r),
            None => !l.contains("handshake eof"),
        })
        .collect()
}

/// Waits until `broker` logged more than `before` [`rejections`] with `reason`; returns the last.
fn wait_for_rejection(broker: &Broker, reason: Option<&str>, before: usize, what: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = rejections(broker, reason);
        if lines.len() > before {
            let line = lines.last().unwrap().clone();
            println!("{what}: the broker logged: {line}");
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "expected {what} (a new {REJECTED_LINE:?} line with reason {reason:?}) within {WAIT:?}\n{}",
            broker.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ssl_listener_serves_only_clients_with_a_certificate_of_the_cluster_ca() {
    let certs = CertDir::new_ca();
    certs.node("n1", false);
    certs.client("app");
    let rogue = CertDir::new_ca();
    rogue.client("intruder");
    let broker = ssl_node(&certs, "n1", &[]);
    let at = broker.addr();

    // A client with a certificate of the cluster's CA: the node presents its own certificate, and
    // produce and fetch work.
    let trusted = certs.tls_client(Some("app"));
    let mut conn = connect_ok(at, &trusted);
    assert!(
        conn.peer_leaf() == certs.leaf("n1"),
        "the listener did not serve n1.pem's certificate"
    );
    let topic = topic_name("tls-single");
    conn.create_topic(&topic, 1, 1, &[]);
    let first = values("raw", 3);
    produce_acked(&mut conn, &topic, &first, 0);
    let read = conn.fetch_all(&topic, 0, first.len(), WAIT);
    assert_eq!(read, as_bytes(&first), "what the TLS client read back");

    // A librdkafka client configured by the properties file `kavka certs client` wrote.
    let props_file = certs.librdkafka_properties_file("app");
    let props = read_properties(&props_file);
    let get = |k: &str| {
        props
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        get("security.protocol").as_deref(),
        Some("ssl"),
        "{props:?}"
    );
    let librdkafka = librdkafka_client();
    if let Some(client) = librdkafka {
        let second = values("librdkafka", 4);
        librdkafka_round_trip(
            client,
            &broker.bootstrap(),
            &props_file,
            &topic,
            0,
            first.len() as i64,
            &second,
            WAIT,
        );
    }

    // No client certificate: no Metadata, and the broker logs why.
    let before = rejections(&broker, Some("certificate")).len();
    let anonymous = TlsClient::new(&certs.ca_pem(), None);
    let error = metadata_refused(at, &anonymous, "a client without a certificate");
    println!("client without a certificate: {error}");
    let line = wait_for_rejection(
        &broker,
        Some("certificate"),
        before,
        "the rejection of the client without a certificate",
    );
    assert!(
        line.contains("peer=127.0.0.1:"),
        "the line names the peer: {line}"
    );
    if let Some(client) = librdkafka {
        let without_cert: Vec<(String, String)> = props
            .iter()
            .filter(|(k, _)| !k.starts_with("ssl.certificate") && !k.starts_with("ssl.key"))
            .cloned()
            .collect();
        let answer = librdkafka_metadata(
            client,
            &broker.bootstrap(),
            &without_cert,
            Duration::from_secs(10),
        );
        assert!(
            answer.is_err(),
            "librdkafka without a certificate got Metadata: {answer:?}"
        );
    }

    // A certificate another CA issued (the client trusts the node, the node does not trust it).
    let before = rejections(&broker, Some("certificate")).len();
    let foreign = TlsClient::new(
        &certs.ca_pem(),
        Some((rogue.path("intruder.pem"), rogue.path("intruder-key.pem"))),
    );
    let error = metadata_refused(at, &foreign, "a client with another CA's certificate");
    println!("client with another CA's certificate: {error}");
    wait_for_rejection(
        &broker,
        Some("certificate"),
        before,
        "the rejection of the client with another CA's certificate",
    );

    // A PLAINTEXT Kafka client on the SSL port fails (no answer it could mistake for Kafka's) within
    // its timeouts instead of hanging.
    let before = rejections(&broker, None).len();
    let started = Instant::now();
    let mut plain = RawConn::connect(&broker);
    let answer = plain.request(0, &ApiVersionsRequest::default());
    assert!(
        answer.is_err(),
        "a PLAINTEXT client got an ApiVersions answer from the SSL listener: {answer:?}"
    );
    println!(
        "PLAINTEXT client on the SSL port: {:#} (after {:?})",
        answer.unwrap_err(),
        started.elapsed()
    );
    wait_for_rejection(
        &broker,
        None,
        before,
        "the rejection of the PLAINTEXT client",
    );

    // The broker keeps serving: the established connection and a new one.
    let third = values("after-rejections", 2);
    let base = (first.len() + if librdkafka.is_some() { 4 } else { 0 }) as i64;
    produce_acked(&mut conn, &topic, &third, base);
    let mut fresh = connect_ok(at, &trusted);
    let all = fresh.fetch_all(&topic, 0, base as usize + third.len(), WAIT);
    assert_eq!(&all[base as usize..], as_bytes(&third).as_slice());
    let mut broker = broker;
    assert!(broker.is_alive(), "the broker died\n{}", broker.log_tail());
}

#[test]
fn cluster_with_tls_everywhere_replicates_and_refuses_a_broker_of_another_ca() {
    let certs = CertDir::new_ca();
    for n in ["n1", "n2", "n3"] {
        certs.node(n, false);
    }
    certs.client("app");
    let rogue = CertDir::new_ca();
    rogue.node("n4", false);
    // The foreign broker trusts both CAs, so that it is the cluster that refuses it (not it that
    // refuses the cluster).
    let both_cas = rogue.path("both-cas.pem");
    std::fs::write(
        &both_cas,
        [
            std::fs::read(certs.ca_pem()).unwrap(),
            std::fs::read(rogue.ca_pem()).unwrap(),
        ]
        .concat(),
    )
    .unwrap();

    let node_settings =
        |dir: &CertDir, name: &str| -> Vec<(String, String)> { dir.server_settings(name, "") };
    let mut specs: Vec<DynamicNode> = Vec::new();
    for n in ["n1", "n2", "n3"] {
        let mut spec = DynamicNode::new(Role::Combined, FormatFlag::None);
        for (k, v) in node_settings(&certs, n) {
            spec = spec.with(&k, &v);
        }
        specs.push(spec);
    }
    let mut foreign = DynamicNode::new(Role::Broker, FormatFlag::None).unawaited();
    for (k, v) in node_settings(&rogue, "n4") {
        foreign = match k.as_str() {
            "ssl.truststore.type" => foreign.with(&k, "PEM"),
            "ssl.truststore.location" => foreign.with(&k, both_cas.to_str().unwrap()),
            "ssl.truststore.password" => foreign,
            _ => foreign.with(&k, &v),
        };
    }
    specs.push(foreign);
    let cluster = Cluster::start_static_nodes(&specs, &[], &Listeners::ssl());

    let trusted = certs.tls_client(Some("app"));
    let addr_of = |id: i32| cluster.get(id).addr();
    for id in 1..=3 {
        wait_for_tls_metadata(
            addr_of(id),
            &trusted,
            WAIT,
            "brokers {1, 2, 3} registered",
            |m| brokers_of(m) == [1, 2, 3].into(),
        );
    }

    // An RF3 topic that needs two in-sync replicas: acks=all production is acknowledged.
    let topic = topic_name("tls-cluster");
    connect_ok(addr_of(1), &trusted).create_topic(&topic, 1, 3, &[("min.insync.replicas", "2")]);
    let full_isr = |m: &kafka_protocol::messages::MetadataResponse| {
        partitions_of(m, &topic).is_some_and(|p| {
            p.len() == 1 && p[0].leader > 0 && {
                let mut isr = p[0].isr.clone();
                isr.sort();
                isr == [1, 2, 3]
            }
        })
    };
    let md = wait_for_tls_metadata(
        addr_of(1),
        &trusted,
        WAIT,
        "the topic with a full ISR",
        full_isr,
    );
    let leader = partitions_of(&md, &topic).unwrap()[0].leader;
    let mut conn = connect_ok(addr_of(leader), &trusted);
    let first = values("cluster-raw", 10);
    produce_acked(&mut conn, &topic, &first, 0);
    let read = conn.fetch_all(&topic, 0, first.len(), WAIT);
    assert_eq!(read, as_bytes(&first), "what the leader returned");

    let bootstrap = (1..=3)
        .map(|id| cluster.get(id).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let mut total = first.len();
    if let Some(client) = librdkafka_client() {
        let second = values("cluster-librdkafka", 5);
        librdkafka_round_trip(
            client,
            &bootstrap,
            &certs.librdkafka_properties_file("app"),
            &topic,
            0,
            total as i64,
            &second,
            WAIT,
        );
        total += second.len();
    }

    // The followers replicate over TLS (the only listeners there are): every node reports a full ISR
    // after the writes, and the leader's high watermark covers them (acks=all needed a follower).
    for id in 1..=3 {
        wait_for_tls_metadata(
            addr_of(id),
            &trusted,
            WAIT,
            "a full ISR after the writes",
            full_isr,
        );
    }
    let read = conn.fetch_all(&topic, 0, total, WAIT);
    assert_eq!(read.len(), total);

    // The foreign broker never registers: poll for a while that it does not show up.
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        for id in 1..=3 {
            if let Ok(m) = TlsConn::connect(addr_of(id), &trusted).and_then(|mut c| c.metadata()) {
                assert!(
                    !brokers_of(&m).contains(&4),
                    "the broker with another CA's certificate joined: node {id} lists brokers {:?}\n{}",
                    brokers_of(&m),
                    cluster.get(4).log_tail()
                );
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // ... and the controllers said why: its certificate (not a probe's closed connection).
    let deadline = Instant::now() + WAIT;
    let rejected = loop {
        let lines: Vec<String> = (1..=3)
            .flat_map(|id| rejections(cluster.get(id), Some("certificate")))
            .collect();
        if !lines.is_empty() {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "no controller logged {REJECTED_LINE:?} for the foreign broker\n{}\n{}",
            cluster.get(1).log_tail(),
            cluster.get(4).log_tail()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    println!(
        "the controllers refused the foreign broker: {}",
        rejected[0]
    );
    let foreign_log = cluster.get(4).log();
    let says: Vec<&str> = foreign_log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(5)
        .collect();
    println!("the foreign broker logged:\n{}", says.join("\n"));
}

#[test]
fn keystore_changes_are_served_to_new_connections_and_broken_ones_refused() {
    let certs = CertDir::new_ca();
    certs.node("n1", false);
    certs.client("app");
    let mut broker = ssl_node(&certs, "n1", &[]);
    let at = broker.addr();
    let trusted = certs.tls_client(Some("app"));

    let mut conn = connect_ok(at, &trusted);
    let original = certs.leaf("n1");
    assert!(conn.peer_leaf() == original, "not n1.pem's certificate");
    let topic = topic_name("tls-reload");
    conn.create_topic(&topic, 1, 1, &[]);
    let mut produced = 0usize;
    let batch = values("before-reload", 3);
    produce_acked(&mut conn, &topic, &batch, 0);
    produced += batch.len();

    // With an OpenSSL-enabled librdkafka, an rdkafka producer connected across the reload too.
    let rdkafka_producer = RdkafkaProducer::connect(&broker, &certs, &topic);

    // Re-issue the node certificate into the same files (same password): new connections get it.
    let reloads = broker.log_lines_containing(RELOADED_LINE).len();
    certs.node("n1", true);
    let reissued = certs.leaf("n1");
    assert!(reissued != original, "--force issued the same certificate");
    wait_for_more_lines(
        &broker,
        RELOADED_LINE,
        reloads,
        "the reload of the new keystore",
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let served = connect_ok(at, &trusted).peer_leaf();
        if served == reissued {
            break;
        }
        assert!(
            served == original,
            "the listener served an unknown certificate"
        );
        assert!(
            Instant::now() < deadline,
            "new connections still get the old certificate after {WAIT:?}\n{}",
            broker.log_tail()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // The connections opened before the reload keep working.
    if let Some(p) = &rdkafka_producer {
        p.produce(&values("rdkafka-after-reload", 3));
    }
    let batch = values("after-reload", 3);
    produce_acked(&mut conn, &topic, &batch, produced as i64);
    produced += batch.len();
    assert_eq!(conn.fetch_all(&topic, 0, produced, WAIT).len(), produced);

    // A broken keystore is refused; new connections keep getting the last good certificate.
    let refusals = broker.log_lines_containing(RELOAD_REFUSED_LINE).len();
    // Written aside and renamed over it, so that the watcher sees one change, not a half-written file.
    let broken = certs.path("broken.p12");
    std::fs::write(&broken, b"this is not a PKCS#12 keystore").unwrap();
    std::fs::rename(&broken, certs.keystore("n1")).unwrap();
    wait_for_more_lines(
        &broker,
        RELOAD_REFUSED_LINE,
        refusals,
        "the refusal of the broken keystore",
    );
    let mut fresh = connect_ok(at, &trusted);
    assert!(
        fresh.peer_leaf() == reissued,
        "after a broken keystore, new connections must get the last good certificate"
    );
    let batch = values("broken-keystore", 2);
    produce_acked(&mut fresh, &topic, &batch, produced as i64);
    produced += batch.len();

    // SIGHUP forces a reload: the unchanged broken file is tried (and refused) again.
    let refusals = broker.log_lines_containing(RELOAD_REFUSED_LINE).len();
    let hups = broker.log_lines_containing(SIGHUP_LINE).len();
    let pid = broker.pid().to_string();
    let sent = Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    assert!(sent.success(), "kill -HUP {pid}");
    wait_for_more_lines(&broker, SIGHUP_LINE, hups, "the SIGHUP line");
    wait_for_more_lines(
        &broker,
        RELOAD_REFUSED_LINE,
        refusals,
        "the reload SIGHUP forced (refused again: the file is still broken)",
    );
    assert!(connect_ok(at, &trusted).peer_leaf() == reissued);

    // A good keystore again: served.
    certs.node("n1", true);
    let third = certs.leaf("n1");
    let deadline = Instant::now() + WAIT;
    while connect_ok(at, &trusted).peer_leaf() != third {
        assert!(
            Instant::now() < deadline,
            "the repaired keystore was not served within {WAIT:?}\n{}",
            broker.log_tail()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let batch = values("repaired", 2);
    produce_acked(&mut conn, &topic, &batch, produced as i64);
    produced += batch.len();
    assert_eq!(conn.fetch_all(&topic, 0, produced, WAIT).len(), produced);
    assert!(broker.is_alive());
}

/// An rdkafka producer configured by a client's librdkafka properties, writing to partition 0 of
/// `<topic>-rdkafka` (its own topic: the offsets there are its own), with acks=all.
struct RdkafkaProducer {
    producer: rdkafka::producer::FutureProducer,
    runtime: tokio::runtime::Runtime,
    topic: String,
    sent: std::cell::Cell<i64>,
}

impl RdkafkaProducer {
    /// `None` (said on stdout) when the rdkafka crate's librdkafka has no OpenSSL.
    fn connect(broker: &Broker, certs: &CertDir, topic: &str) -> Option<RdkafkaProducer> {
        if !common::tls::rdkafka_has_ssl() {
            println!(
                "SKIPPED the rdkafka producer held across the reload: the rdkafka crate's \
                 librdkafka was built without OpenSSL (no `ssl` feature)"
            );
            return None;
        }
        let topic = format!("{topic}-rdkafka");
        connect_ok(broker.addr(), &certs.tls_client(Some("app"))).create_topic(&topic, 1, 1, &[]);
        let props = certs.librdkafka_properties("app");
        let producer = common::tls::rdkafka_config(&broker.bootstrap(), &props)
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .create()
            .expect("create rdkafka TLS producer");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let p = RdkafkaProducer {
            producer,
            runtime,
            topic,
            sent: std::cell::Cell::new(0),
        };
        p.produce(&values("rdkafka-before-reload", 3));
        Some(p)
    }

    /// Sends `values` one by one; each must be acknowledged at the next offset.
    fn produce(&self, values: &[String]) {
        use rdkafka::producer::FutureRecord;
        for v in values {
            let delivery = self
                .runtime
                .block_on(
                    self.producer.send(
                        FutureRecord::<(), _>::to(&self.topic)
                            .partition(0)
                            .payload(v),
                        WAIT,
                    ),
                )
                .unwrap_or_else(|(e, _)| panic!("rdkafka TLS produce of {v}: {e}"));
            assert_eq!(delivery.offset, self.sent.get(), "offset of {v}");
            self.sent.set(self.sent.get() + 1);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Traffic capture

/// A running `tcpdump -i lo` writing a capture file.
struct Capture {
    child: Child,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Capture {
    /// Starts capturing TCP traffic of `port` on the loopback interface; `Err` (why) when tcpdump is
    /// missing or cannot capture here.
    fn start(port: u16) -> Result<Capture, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let file = dir.path().join("capture.pcap");
        let log = dir.path().join("tcpdump.log");
        let child = Command::new("tcpdump")
            .args(["-i", "lo", "-n", "-U", "-s", "0", "-w"])
            .arg(&file)
            .args(["tcp", "port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(&log).map_err(|e| e.to_string())?,
            ))
            .spawn()
            .map_err(|e| format!("cannot run tcpdump: {e}"))?;
        let mut capture = Capture {
            child,
            file,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            if said.contains("listening on") {
                return Ok(capture);
            }
            if let Ok(Some(status)) = capture.child.try_wait() {
                return Err(format!("tcpdump exited with {status}: {}", said.trim()));
            }
            if Instant::now() > deadline {
                return Err(format!("tcpdump did not start capturing: {}", said.trim()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the capture (SIGINT, so that it flushes) and returns the capture file's bytes.
    fn finish(mut self) -> Vec<u8> {
        // Let the last packets reach the capture.
        std::thread::sleep(Duration::from_secs(1));
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while matches!(self.child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.wait();
        std::fs::read(&self.file).unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Why traffic capture is unavailable here, if it is.
fn capture_unavailable() -> Option<String> {
    match Command::new("tcpdump")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => None,
        Err(e) => Some(format!("tcpdump is not installed ({e})")),
    }
}

#[test]
fn payloads_on_an_ssl_listener_never_cross_the_wire_in_clear() {
    if let Some(why) = capture_unavailable() {
        println!("SKIPPED traffic capture test: {why}");
        return;
    }
    let certs = CertDir::new_ca();
    certs.node("n1", false);
    certs.client("app");
    // One node with a PLAINTEXT listener (the harness' port) and an SSL one.
    let ports = free_ports(2);
    let (plain_port, ssl_port) = (ports[0], ports[1]);
    let listeners = format!("PLAINTEXT://127.0.0.1:{plain_port},SSL://127.0.0.1:{ssl_port}");
    let mut settings: Vec<(String, String)> = vec![
        ("listeners".into(), listeners.clone()),
        ("advertised.listeners".into(), listeners),
        (
            "listener.security.protocol.map".into(),
            "PLAINTEXT:PLAINTEXT,SSL:SSL".into(),
        ),
        ("inter.broker.listener.name".into(), "PLAINTEXT".into()),
    ];
    settings.extend(certs.server_settings("n1", "listener.name.ssl."));
    let mut broker = Broker::launch(plain_port, &as_overrides(&settings));
    broker.wait_ready();
    let trusted = certs.tls_client(Some("app"));
    let mut tls = {
        let deadline = Instant::now() + WAIT;
        loop {
            match TlsConn::connect(addr(ssl_port), &trusted).and_then(|mut c| {
                c.metadata()?;
                Ok(c)
            }) {
                Ok(c) => break c,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "the SSL listener did not serve: {e:#}\n{}",
                    broker.log_tail()
                ),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let topic = topic_name("tls-capture");
    tls.create_topic(&topic, 1, 1, &[]);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();

    // Over TLS: produced and fetched back, and never seen in the capture.
    let secret = format!("kavka-secret-payload-{}-{stamp}", std::process::id());
    let capture = match Capture::start(ssl_port) {
        Ok(c) => c,
        Err(why) => {
            println!("SKIPPED traffic capture test: {why}");
            return;
        }
    };
    let mut conn = connect_ok(addr(ssl_port), &trusted);
    produce_acked(&mut conn, &topic, std::slice::from_ref(&secret), 0);
    let read = conn.fetch_all(&topic, 0, 1, WAIT);
    assert_eq!(read[0], secret.as_bytes());
    drop(conn);
    let bytes = capture.finish();
    println!("capture of the SSL port: {} bytes", bytes.len());
    assert!(
        bytes.len() > 24 + 2 * secret.len(),
        "the capture of the SSL port holds no traffic ({} bytes): the check would prove nothing",
        bytes.len()
    );
    // TLS 1.2/1.3 application data records: 0x17 0x03 0x03.
    assert!(
        contains(&bytes, &[0x17, 0x03, 0x03]),
        "no TLS application data record in the capture of the SSL port"
    );
    assert!(
        !contains(&bytes, secret.as_bytes()),
        "the payload produced over TLS appears in clear in the capture of the SSL port"
    );

    // Over PLAINTEXT: the same kind of payload is in the capture (the check can fail).
    let clear = format!("kavka-clear-payload-{}-{stamp}", std::process::id());
    let capture = Capture::start(plain_port).expect("tcpdump started a moment ago");
    let mut raw = RawConn::connect(&broker);
    let record = Record {
        value: Some(bytes::Bytes::from(clear.clone())),
        ..raw_record(0, "clear")
    };
    let answer = raw_produce(&mut raw, &topic, 0, -1, 30_000, encode_batch(&[record]));
    assert_eq!(
        (answer.error_code, answer.base_offset),
        (0, 1),
        "{answer:?}"
    );
    drop(raw);
    let bytes = capture.finish();
    println!("capture of the PLAINTEXT port: {} bytes", bytes.len());
    assert!(
        contains(&bytes, clear.as_bytes()),
        "the payload produced over PLAINTEXT is not in the capture ({} bytes): capture does not work",
        bytes.len()
    );
    assert!(broker.is_alive());
}
