//! Hostile and malformed frames over raw TCP. For each, the broker must answer or close that
//! connection within a second, stay alive, keep its memory flat (it must not allocate from a
//! length it has not received: see TRAPS.md on the kafka-protocol array decoders), and keep
//! serving a well-behaved producer at the same time.

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Buf;
use common::{create_topic, frame, producer, reacted_within, topic_name, Broker, RawConn};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, MetadataRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::FutureRecord;

/// The 14-byte DeleteGroups v1 request from TRAPS.md: header v1 with a null client id, then a
/// groups array claiming 2^31-1 entries and containing none.
const DELETE_GROUPS_BOMB: [u8; 14] = [
    0x00, 0x2a, // api key 42 (DeleteGroups)
    0x00, 0x01, // version 1 (not flexible)
    0x00, 0x00, 0x00, 0x07, // correlation id
    0xff, 0xff, // client id: null
    0x7f, 0xff, 0xff, 0xff, // groups array length
];

/// A frame with a human-readable label, for failure messages.
struct Probe {
    label: String,
    bytes: Vec<u8>,
    /// Half-close the write side after sending (for frames the broker can only reject once
    /// it knows no more bytes are coming).
    half_close: bool,
}

fn probe(label: impl Into<String>, bytes: Vec<u8>) -> Probe {
    Probe {
        label: label.into(),
        bytes,
        half_close: false,
    }
}

fn request_header(api_key: i16, version: i16, header_version: i16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&api_key.to_be_bytes());
    h.extend_from_slice(&version.to_be_bytes());
    h.extend_from_slice(&0x1234i32.to_be_bytes());
    h.extend_from_slice(&8i16.to_be_bytes());
    h.extend_from_slice(b"kavka-it");
    if header_version >= 2 {
        h.push(0); // no tagged fields
    }
    h
}

/// The API ranges the broker advertises, read with ApiVersions v3.
fn advertised(broker: &Broker) -> Vec<(i16, i16, i16)> {
    let mut c = RawConn::connect(broker);
    let resp = c
        .request(
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("kavka-it"))
                .with_client_software_version(StrBytes::from_static_str("1.0")),
        )
        .expect("ApiVersions v3");
    assert_eq!(resp.error_code, 0, "ApiVersions error");
    resp.api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect()
}

/// Hostile frames for every advertised API and version: a valid header followed by bodies
/// whose first length fields claim ~2^31 elements or bytes, plus an empty body.
fn hostile_api_frames(apis: &[(i16, i16, i16)]) -> Vec<Probe> {
    let mut out = Vec::new();
    for &(key, min, max) in apis {
        let Ok(api) = ApiKey::try_from(key) else {
            continue;
        };
        for v in min..=max {
            let hv = api.request_header_version(v);
            let flexible = hv >= 2;
            let huge: &[u8] = if flexible {
                // Unsigned varint 2^31-1: compact arrays/strings claim 2^31-2 entries.
                &[0xff, 0xff, 0xff, 0xff, 0x07]
            } else {
                &[0x7f, 0xff, 0xff, 0xff]
            };
            let mut body = request_header(key, v, hv);
            for _ in 0..4 {
                body.extend_from_slice(huge);
            }
            out.push(probe(format!("{api:?} v{v} huge lengths"), frame(&body)));
            // Header only: every field of the body is missing.
            out.push(probe(
                format!("{api:?} v{v} empty body"),
                frame(&request_header(key, v, hv)),
            ));
        }
    }
    out
}

fn connection_level_frames() -> Vec<Probe> {
    let mut tls_hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
    ];
    tls_hello.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    tls_hello.extend_from_slice(&[0x00, 0x00, 0x04, 0x13, 0x01, 0x13, 0x02, 0x01, 0x00]);
    let mut out = vec![
        probe("DeleteGroups v1 bomb", frame(&DELETE_GROUPS_BOMB)),
        probe("TLS ClientHello", tls_hello),
        probe("length i32::MAX", 0x7fff_ffffi32.to_be_bytes().to_vec()),
        probe(
            "length socket.request.max.bytes+1",
            (100 * 1024 * 1024 + 1i32).to_be_bytes().to_vec(),
        ),
        probe("length -1", (-1i32).to_be_bytes().to_vec()),
        probe("length i32::MIN", i32::MIN.to_be_bytes().to_vec()),
        probe("length 0", 0i32.to_be_bytes().to_vec()),
        probe("truncated header (3 bytes)", frame(&[0x00, 0x03, 0x00])),
        probe(
            "truncated header (no client id)",
            frame(&[0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01]),
        ),
        probe(
            "client id longer than frame",
            frame(&[0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x7f, 0xff]),
        ),
        probe("unknown api key 9999", frame(&request_header(9999, 0, 1))),
        probe("negative api key", frame(&request_header(-2, 0, 1))),
        probe("Metadata v999", frame(&request_header(3, 999, 2))),
        probe("Metadata v-1", frame(&request_header(3, -1, 1))),
    ];
    // A frame that announces more bytes than it carries, then ends the stream.
    let mut short = 200i32.to_be_bytes().to_vec();
    short.extend_from_slice(&request_header(3, 1, 1));
    out.push(Probe {
        label: "frame shorter than its length, then EOF".into(),
        bytes: short,
        half_close: true,
    });
    out
}

/// Sends one probe on a fresh connection and fails with its label if the broker neither
/// answers nor closes within a second.
fn run_probe(broker: &Broker, p: &Probe) {
    let mut s = TcpStream::connect(broker.addr()).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    // The broker may close before reading everything; a failed write is a reaction too.
    if s.write_all(&p.bytes).is_err() {
        return;
    }
    if p.half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    assert!(
        reacted_within(&mut s, Duration::from_secs(1)),
        "broker neither answered nor closed within 1s after: {}",
        p.label
    );
}

#[test]
fn delete_groups_bomb_leaves_broker_alive() {
    let mut broker = Broker::start();
    let rss_before = broker.rss_kib();
    run_probe(
        &broker,
        &probe("DeleteGroups v1 bomb", frame(&DELETE_GROUPS_BOMB)),
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(broker.is_alive(), "broker died on the DeleteGroups bomb");
    let rss_after = broker.rss_kib();
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    // Still serving.
    advertised(&broker);
}

#[test]
fn every_probe_is_answered_or_closed() {
    let mut broker = Broker::start();
    let apis = advertised(&broker);
    let mut probes = connection_level_frames();
    probes.extend(hostile_api_frames(&apis));
    for p in &probes {
        run_probe(&broker, p);
        assert!(broker.is_alive(), "broker died after: {}", p.label);
    }
    advertised(&broker);
}

#[test]
fn unknown_api_versions_version_gets_v0_fallback() {
    let broker = Broker::start();
    let mut c = RawConn::connect(&broker);
    // ApiVersions v127, header v2 as a future client would send it.
    let mut body = request_header(18, 127, 2);
    body.extend_from_slice(&[0x00]);
    c.stream.write_all(&frame(&body)).expect("send");
    let mut resp = c.read_frame().expect("ApiVersions fallback response");
    // Response header v0 (correlation id only), then the v0 body: error_code, api_keys.
    assert_eq!(resp.get_i32(), 0x1234, "correlation id");
    assert_eq!(resp.get_i16(), 35, "error code must be UNSUPPORTED_VERSION");
    let n = resp.get_i32();
    assert!(
        (1..1000).contains(&n),
        "api_keys array length {n} in fallback response"
    );
    let mut saw_api_versions = false;
    for _ in 0..n {
        let (k, min, max) = (resp.get_i16(), resp.get_i16(), resp.get_i16());
        assert!(min <= max, "api {k}: min {min} > max {max}");
        if k == 18 {
            saw_api_versions = true;
        }
    }
    assert!(saw_api_versions, "ApiVersions missing from fallback list");
}

#[test]
fn trailing_bytes_after_request_do_not_kill_the_broker() {
    let mut broker = Broker::start();
    let mut c = RawConn::connect(&broker);
    // A valid Metadata v1 request (all topics = null array), then junk inside the same frame.
    let mut body = request_header(3, 1, 1);
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0x7f, 0xff, 0xff, 0xff]);
    c.stream.write_all(&frame(&body)).expect("send");
    assert!(
        reacted_within(&mut c.stream, Duration::from_secs(1)),
        "no reaction to a frame with trailing bytes"
    );
    assert!(broker.is_alive());
    // And a correct request on a new connection works.
    let mut c = RawConn::connect(&broker);
    let md = c
        .request(1, &MetadataRequest::default().with_topics(None))
        .expect("Metadata v1");
    assert_eq!(md.brokers.len(), 1);
}

/// 1000 rounds of abuse while a producer keeps producing: no producer error, the broker stays
/// up, and its RSS grows by less than 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_under_load_keeps_memory_flat() {
    let broker = Broker::start();
    let topic = topic_name("abuse");
    create_topic(&broker, &topic, 1).await;
    let p = producer(&broker, &[("acks", "1"), ("linger.ms", "0")]);
    let apis = advertised(&broker);
    let mut probes = connection_level_frames();
    probes.extend(hostile_api_frames(&apis));
    // Warm-up: the first pass allocates whatever the broker keeps for good (buffers, lazily
    // initialised tables), so it does not count as growth.
    for pr in &probes {
        run_probe(&broker, pr);
    }
    let rss_before = broker.rss_kib();
    let broker = Arc::new(broker);

    let done = Arc::new(AtomicBool::new(false));
    let abuser = {
        let broker = broker.clone();
        let done = done.clone();
        tokio::task::spawn_blocking(move || {
            let b = &*broker;
            let started = Instant::now();
            for i in 0..1000 {
                run_probe(
                    b,
                    &probe("DeleteGroups v1 bomb", frame(&DELETE_GROUPS_BOMB)),
                );
                run_probe(b, &probes[i % probes.len()]);
            }
            done.store(true, Ordering::SeqCst);
            started.elapsed()
        })
    };

    let mut sent = 0u64;
    let mut failures = Vec::new();
    while !done.load(Ordering::SeqCst) {
        let v = format!("steady-{sent}");
        match p
            .send(
                FutureRecord::to(&topic).partition(0).key("k").payload(&v),
                Duration::from_secs(5),
            )
            .await
        {
            Ok(d) => assert_eq!(d.offset, sent as i64, "offsets must stay contiguous"),
            Err((e, _)) => failures.push(format!("record {sent}: {e}")),
        }
        sent += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = abuser.await.expect("abuse loop panicked");
    assert!(
        failures.is_empty(),
        "producer errors during abuse: {failures:?}"
    );
    assert!(sent > 0, "producer sent nothing");

    let mut b = Arc::try_unwrap(broker).unwrap_or_else(|_| panic!("broker still shared"));
    assert!(b.is_alive(), "broker died during abuse");
    let rss_after = b.rss_kib();
    eprintln!(
        "abuse: 2000 probes in {elapsed:?}, {sent} records produced alongside, RSS {rss_before} KiB -> {rss_after} KiB"
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB over 1000 rounds"
    );
    advertised(&b);
}
