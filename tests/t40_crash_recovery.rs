//! Crash test: an acks=all idempotent producer records every acknowledged offset while the
//! broker is killed with SIGKILL mid-stream and restarted. Every acknowledged record must be
//! read back at its acknowledged offset, and no record may appear twice.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{consume_exact, consumer, create_topic, producer, topic_name, Broker};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset};

const TOTAL: usize = 6000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_kill9() {
    let mut broker = Broker::start();
    let topic = topic_name("crash");
    create_topic(&broker, &topic, 1).await;

    let p = producer(
        &broker,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("linger.ms", "2"),
            ("batch.num.messages", "100"),
            // Long enough for queued records to be delivered after the restart.
            ("message.timeout.ms", "60000"),
        ],
    );
    let acked_count = Arc::new(AtomicUsize::new(0));
    let sender = {
        let topic = topic.clone();
        let acked_count = acked_count.clone();
        tokio::spawn(async move {
            let mut futures = Vec::with_capacity(TOTAL);
            for i in 0..TOTAL {
                let v = format!("crash-{i:06}");
                let mut rec = FutureRecord::to(&topic).partition(0).key("k").payload(&v);
                let f = loop {
                    match p.send_result(rec) {
                        Ok(f) => break f,
                        // Local queue full: wait for deliveries to drain it, then retry.
                        Err((_, back)) => {
                            rec = back;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                };
                futures.push((v, f));
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            let mut acked = Vec::new();
            let mut failed = 0usize;
            for (v, f) in futures {
                match f.await {
                    Ok(Ok(d)) => {
                        acked_count.fetch_add(1, Ordering::Relaxed);
                        acked.push((d.offset, v));
                    }
                    _ => failed += 1,
                }
            }
            (acked, failed)
        })
    };

    // Kill once a good part of the stream has been acknowledged, but before the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_count.load(Ordering::Relaxed) < TOTAL / 3 {
        assert!(
            Instant::now() < deadline,
            "only {} acks before the kill",
            acked_count.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let acked_before_kill = acked_count.load(Ordering::Relaxed);
    broker.kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    broker.restart();

    let (acked, failed) = sender.await.expect("sender task");
    eprintln!(
        "crash test: {acked_before_kill} acked before kill, {} acked in total, {failed} failed",
        acked.len()
    );
    assert!(acked.len() >= acked_before_kill);

    let c = consumer(&broker, &[]);
    let (low, high) = c
        .fetch_watermarks(&topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!(low, 0);
    let msgs = consume_exact(
        &c,
        &topic,
        0,
        Offset::Beginning,
        high as usize,
        Duration::from_secs(60),
    );
    let mut by_offset = HashMap::new();
    let mut seen = HashSet::new();
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.offset(), i as i64, "offsets must be contiguous");
        let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
        assert!(seen.insert(v.clone()), "duplicate record {v} at offset {i}");
        by_offset.insert(m.offset(), v);
    }
    for (offset, v) in &acked {
        assert_eq!(
            by_offset.get(offset),
            Some(v),
            "acknowledged record {v} missing at offset {offset}"
        );
    }
}

/// OffsetForLeaderEpoch (KIP-320) after a restart: the restart moved leadership away and back, so the
/// epoch under which the first records were written ends where the new epoch began, and the current epoch
/// ends at the log end; a client holding an old epoch is told FENCED_LEADER_EPOCH.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_for_leader_epoch_marks_where_each_epoch_ends() {
    use common::RawConn;
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{OffsetForLeaderEpochRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;

    let mut broker = Broker::start();
    let topic = topic_name("epochs");
    create_topic(&broker, &topic, 1).await;
    let send = |producer: &rdkafka::producer::FutureProducer, n: usize| {
        let producer = producer.clone();
        let topic = topic.clone();
        async move {
            for i in 0..n {
                producer
                    .send(
                        FutureRecord::<(), str>::to(&topic)
                            .partition(0)
                            .payload(&format!("r{i}")),
                        Duration::from_secs(10),
                    )
                    .await
                    .expect("produce");
            }
        }
    };
    send(&producer(&broker, &[]), 3).await;
    broker.kill9();
    broker.restart();
    send(&producer(&broker, &[]), 2).await;

    let query = |conn: &mut RawConn, current: i32, epoch: i32| {
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(current)
                    .with_leader_epoch(epoch)])]);
        let response = conn.request(4, &request).expect("OffsetForLeaderEpoch");
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    };
    let mut conn = RawConn::connect(&broker);
    // The current epoch, as the Metadata response gives it to clients.
    let metadata = conn
        .request(
            12,
            &kafka_protocol::messages::MetadataRequest::default().with_topics(None),
        )
        .expect("Metadata");
    let current = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic.as_str()))
        .expect("topic")
        .partitions[0]
        .leader_epoch;
    assert!(
        current >= 2,
        "leadership moved away and back on restart: epoch {current}"
    );
    // Beyond every known epoch: undefined, as in Kafka.
    assert_eq!(query(&mut conn, -1, current + 1), (0, -1, -1));
    let (code, epoch, end) = query(&mut conn, current, 0);
    assert_eq!(
        (code, epoch, end),
        (0, 0, 3),
        "epoch 0 ends where the next began"
    );
    let (code, latest, end) = query(&mut conn, current, current);
    assert_eq!((code, latest, end), (0, current, 5));
    let (code, _, _) = query(&mut conn, current - 1, 0);
    assert_eq!(code, 74, "FENCED_LEADER_EPOCH for a stale current epoch");
}
