//! Fetch at the protocol level: OFFSET_OUT_OF_RANGE, long polling (`max_wait_ms` honoured when
//! nothing is there, and cut short when data arrives), the at-least-one-batch rule for tiny
//! `partition_max_bytes`, empty record sets encoded as empty (not null), unknown topics, and
//! the oldest advertised version.

mod common;

use std::time::{Duration, Instant};

use common::{create_topic, producer, topic_name, Broker, RawConn};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::FutureRecord;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

fn fetch(
    c: &mut RawConn,
    version: i16,
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
    partition_max_bytes: i32,
) -> PartitionData {
    let req = FetchRequest::default()
        .with_replica_id((-1).into())
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(partition_max_bytes)
                .with_current_leader_epoch(-1)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)])]);
    let resp = c.request(version, &req).expect("Fetch");
    assert_eq!(resp.error_code, 0, "top-level fetch error");
    assert_eq!(resp.responses.len(), 1, "one topic in the response");
    assert_eq!(resp.responses[0].partitions.len(), 1, "one partition");
    resp.responses[0].partitions[0].clone()
}

/// Offsets of the record batches in `records` as (base offset, last offset).
fn batches(records: &[u8]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 27 <= records.len() {
        let base = i64::from_be_bytes(records[pos..pos + 8].try_into().expect("8 bytes"));
        let len = i32::from_be_bytes(records[pos + 8..pos + 12].try_into().expect("4 bytes"));
        let delta = i32::from_be_bytes(records[pos + 23..pos + 27].try_into().expect("4 bytes"));
        let end = pos + 12 + len as usize;
        assert!(end <= records.len(), "partial batch at byte {pos}");
        out.push((base, base + delta as i64));
        pos = end;
    }
    assert_eq!(pos, records.len(), "trailing bytes after the last batch");
    out
}

async fn produce_n(broker: &Broker, topic: &str, n: usize, size: usize) {
    // linger 0 and one record per send: one batch per record.
    let p = producer(broker, &[("linger.ms", "0")]);
    for i in 0..n {
        let v = vec![b'a' + (i % 26) as u8; size];
        p.send(
            FutureRecord::to(topic).partition(0).key("k").payload(&v),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce {i}: {e}"));
    }
}

#[tokio::test]
async fn out_of_range_empty_and_tiny_limits() {
    let broker = Broker::start();
    let topic = topic_name("fetchraw");
    create_topic(&broker, &topic, 1).await;
    produce_n(&broker, &topic, 3, 2000).await;
    let mut c = RawConn::connect(&broker);

    let p = fetch(&mut c, 12, &topic, 100, 0, 1 << 20);
    assert_eq!(p.error_code, OFFSET_OUT_OF_RANGE);
    assert_eq!(p.high_watermark, 3);

    // Everything from 0.
    let p = fetch(&mut c, 12, &topic, 0, 0, 1 << 20);
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 3);
    assert_eq!(p.log_start_offset, 0);
    let all = batches(p.records.as_deref().expect("records"));
    assert_eq!(all.first().map(|b| b.0), Some(0));
    assert_eq!(all.last().map(|b| b.1), Some(2));

    // A limit smaller than one batch still returns the first whole batch (KIP-74).
    let p = fetch(&mut c, 12, &topic, 1, 0, 10);
    assert_eq!(p.error_code, 0);
    let one = batches(p.records.as_deref().expect("records"));
    assert_eq!(
        one.len(),
        1,
        "exactly one batch for a 10-byte limit: {one:?}"
    );
    assert_eq!(one[0], (1, 1));

    // At the end of the log: no error, and an empty (not null) record set.
    let p = fetch(&mut c, 12, &topic, 3, 0, 1 << 20);
    assert_eq!(p.error_code, 0);
    assert_eq!(p.records.as_deref().map(<[u8]>::len), Some(0));

    // The oldest advertised Fetch version serves the same data.
    let p = fetch(&mut c, 4, &topic, 0, 0, 1 << 20);
    assert_eq!(p.error_code, 0);
    assert_eq!(batches(p.records.as_deref().expect("records v4")), all);

    let p = fetch(&mut c, 12, &topic_name("absent"), 0, 0, 1 << 20);
    assert_eq!(p.error_code, UNKNOWN_TOPIC_OR_PARTITION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_waits_and_wakes() {
    let broker = Broker::start();
    let topic = topic_name("longpoll");
    create_topic(&broker, &topic, 1).await;
    let mut c = RawConn::connect(&broker);

    // Nothing to read: the broker holds the request for about max_wait_ms.
    let t = Instant::now();
    let p = fetch(&mut c, 12, &topic, 0, 600, 1 << 20);
    let waited = t.elapsed();
    assert_eq!(p.error_code, 0);
    assert_eq!(p.records.as_deref().map(<[u8]>::len), Some(0));
    assert!(
        waited >= Duration::from_millis(450),
        "answered an empty long poll after {waited:?}, before max_wait_ms=600"
    );
    assert!(
        waited < Duration::from_secs(5),
        "empty long poll held for {waited:?}"
    );

    // Data arriving during the wait ends it early.
    let topic2 = topic.clone();
    let poller = std::thread::spawn(move || {
        let t = Instant::now();
        let p = fetch(&mut c, 12, &topic2, 0, 10_000, 1 << 20);
        (t.elapsed(), p)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    produce_n(&broker, &topic, 1, 100).await;
    let (waited, p) = poller.join().expect("poller thread");
    assert_eq!(p.error_code, 0);
    assert_eq!(
        batches(p.records.as_deref().expect("records")),
        vec![(0, 0)]
    );
    assert!(
        waited < Duration::from_secs(5),
        "long poll not woken by new data: answered after {waited:?} (max_wait 10 s)"
    );
}
