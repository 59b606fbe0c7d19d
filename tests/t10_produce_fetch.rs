//! Produce and fetch through librdkafka (the `rdkafka` crate) against a real `kavka` process:
//! keys, headers, compression codecs, acks levels, the idempotent producer, large batches,
//! ListOffsets by time, watermarks, auto-creation and restart durability.
//! Consumers use `assign()` only; consumer groups come with a later issue.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{consume_all, consume_exact, consumer, create_topic, producer, topic_name, Broker};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, Timestamp, TopicPartitionList};

const WAIT: Duration = Duration::from_secs(30);

/// Sends `n` records built by `value(i)` (key `k<i>`) to one partition, all in flight at once,
/// and returns the offsets the broker acknowledged, in send order.
async fn send_many(
    p: &FutureProducer,
    topic: &str,
    partition: i32,
    n: usize,
    value: impl Fn(usize) -> Vec<u8>,
) -> Vec<i64> {
    let mut futures = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("k{i}");
        let payload = value(i);
        let rec = FutureRecord::to(topic)
            .partition(partition)
            .key(&key)
            .payload(&payload);
        let fut = p
            .send_result(rec)
            .unwrap_or_else(|(e, _)| panic!("enqueue record {i}: {e}"));
        futures.push(fut);
    }
    let mut offsets = Vec::with_capacity(n);
    for (i, f) in futures.into_iter().enumerate() {
        match f.await.expect("delivery future dropped") {
            Ok(d) => offsets.push(d.offset),
            Err((e, _)) => panic!("record {i} to {topic}/{partition} failed: {e}"),
        }
    }
    offsets
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    // Repetitive enough to compress, distinct enough to detect mix-ups.
    let stamp = format!("record-{i:08}|");
    stamp.bytes().cycle().take(len.max(stamp.len())).collect()
}

#[tokio::test]
async fn keys_values_headers_roundtrip() {
    let broker = Broker::start();
    let topic = topic_name("headers");
    create_topic(&broker, &topic, 1).await;
    let p = producer(&broker, &[("acks", "all")]);
    for i in 0..20usize {
        // Duplicate keys and a null value are legal in Kafka headers and must survive as sent.
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "h1",
                value: Some(&format!("v{i}")),
            })
            .insert(Header {
                key: "dup",
                value: Some("first"),
            })
            .insert(Header {
                key: "dup",
                value: Some("second"),
            })
            .insert(Header::<&str> {
                key: "null",
                value: None,
            });
        let key = format!("key-{i}");
        let val = format!("value-{i}");
        let rec = FutureRecord::to(&topic)
            .partition(0)
            .key(&key)
            .payload(&val)
            .headers(headers)
            .timestamp(1_700_000_000_000 + i as i64);
        let d = p
            .send(rec, Duration::from_secs(5))
            .await
            .unwrap_or_else(|(e, _)| panic!("send {i}: {e}"));
        assert_eq!((d.partition, d.offset), (0, i as i64));
    }
    // A record with neither key nor value.
    let d = p
        .send(
            FutureRecord::<(), ()>::to(&topic).partition(0),
            Duration::from_secs(5),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("send null record: {e}"));
    assert_eq!(d.offset, 20);

    let c = consumer(&broker, &[]);
    let msgs = consume_all(&c, &topic, 0, 21, WAIT);
    for (i, m) in msgs.iter().take(20).enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.key(), Some(format!("key-{i}").as_bytes()));
        assert_eq!(m.payload(), Some(format!("value-{i}").as_bytes()));
        assert_eq!(
            m.timestamp(),
            Timestamp::CreateTime(1_700_000_000_000 + i as i64)
        );
        let h = m.headers().expect("headers present");
        let got: Vec<(String, Option<Vec<u8>>)> = h
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
            .collect();
        assert_eq!(
            got,
            vec![
                ("h1".to_string(), Some(format!("v{i}").into_bytes())),
                ("dup".to_string(), Some(b"first".to_vec())),
                ("dup".to_string(), Some(b"second".to_vec())),
                ("null".to_string(), None),
            ],
            "headers of record {i}"
        );
    }
    let last = &msgs[20];
    assert_eq!(last.key(), None);
    assert_eq!(last.payload(), None);
}

#[tokio::test]
async fn all_compression_codecs() {
    let broker = Broker::start();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = topic_name(&format!("codec-{codec}"));
        create_topic(&broker, &topic, 1).await;
        let p = producer(
            &broker,
            &[
                ("compression.type", codec),
                ("linger.ms", "20"),
                ("batch.num.messages", "200"),
            ],
        );
        let n = 1000;
        let offsets = send_many(&p, &topic, 0, n, |i| payload(i, 300)).await;
        assert_eq!(
            offsets,
            (0..n as i64).collect::<Vec<_>>(),
            "{codec}: offsets"
        );
        let c = consumer(&broker, &[]);
        let msgs = consume_all(&c, &topic, 0, n, WAIT);
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.offset(), i as i64, "{codec}: offset");
            assert_eq!(
                m.payload(),
                Some(&payload(i, 300)[..]),
                "{codec}: payload {i}"
            );
            assert_eq!(
                m.key(),
                Some(format!("k{i}").as_bytes()),
                "{codec}: key {i}"
            );
        }
    }
}

#[tokio::test]
async fn acks_zero_one_all() {
    let broker = Broker::start();
    for acks in ["0", "1", "all", "-1"] {
        let topic = topic_name(&format!("acks{acks}"));
        create_topic(&broker, &topic, 1).await;
        let p = producer(&broker, &[("acks", acks), ("enable.idempotence", "false")]);
        let n = 300;
        let offsets = send_many(&p, &topic, 0, n, |i| payload(i, 100)).await;
        if acks == "0" {
            // No response, so no offsets: librdkafka reports -1 (Offset::Invalid).
            assert!(offsets.iter().all(|&o| o < 0), "acks=0 offsets {offsets:?}");
        } else {
            assert_eq!(offsets, (0..n as i64).collect::<Vec<_>>(), "acks={acks}");
        }
        let c = consumer(&broker, &[]);
        let msgs = consume_all(&c, &topic, 0, n, WAIT);
        for (i, m) in msgs.iter().enumerate() {
            assert_eq!(m.payload(), Some(&payload(i, 100)[..]), "acks={acks} #{i}");
        }
    }
}

#[tokio::test]
async fn idempotent_producer_many_partitions() {
    let broker = Broker::start();
    let topic = topic_name("idem");
    create_topic(&broker, &topic, 3).await;
    let p = producer(
        &broker,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("max.in.flight.requests.per.connection", "5"),
            ("linger.ms", "5"),
            ("batch.num.messages", "50"),
        ],
    );
    let n = 1500;
    for part in 0..3 {
        let offsets = send_many(&p, &topic, part, n, |i| {
            payload(i + 10_000 * part as usize, 64)
        })
        .await;
        assert_eq!(
            offsets,
            (0..n as i64).collect::<Vec<_>>(),
            "partition {part}"
        );
    }
    p.flush(Duration::from_secs(10)).expect("flush");
    for part in 0..3 {
        let c = consumer(&broker, &[]);
        let msgs = consume_all(&c, &topic, part, n, WAIT);
        let distinct: HashSet<Vec<u8>> = msgs
            .iter()
            .map(|m| m.payload().unwrap_or_default().to_vec())
            .collect();
        assert_eq!(distinct.len(), n, "duplicates in partition {part}");
    }
}

#[tokio::test]
async fn large_batches_and_large_records() {
    let broker = Broker::start();
    let topic = topic_name("large");
    create_topic(&broker, &topic, 1).await;
    let p = producer(
        &broker,
        &[
            ("linger.ms", "50"),
            ("batch.size", "1000000"),
            ("batch.num.messages", "100000"),
            ("queue.buffering.max.messages", "200000"),
            ("compression.type", "none"),
        ],
    );
    let n = 20_000;
    let offsets = send_many(&p, &topic, 0, n, |i| payload(i, 1024)).await;
    assert_eq!(offsets.len(), n);
    assert_eq!(*offsets.last().expect("offsets"), n as i64 - 1);

    // One record close to librdkafka's own default message.max.bytes (1000000); the broker's
    // default is 1048588.
    let big = payload(7, 990_000);
    let d = p
        .send(
            FutureRecord::to(&topic)
                .partition(0)
                .key("big")
                .payload(&big),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("big record: {e}"));
    assert_eq!(d.offset, n as i64);

    // Small fetch limits must still make progress (Kafka returns at least one batch).
    let c = consumer(
        &broker,
        &[
            ("fetch.max.bytes", "100000"),
            ("max.partition.fetch.bytes", "50000"),
            // librdkafka requires fetch.max.bytes >= message.max.bytes.
            ("message.max.bytes", "50000"),
        ],
    );
    let msgs = consume_all(&c, &topic, 0, n + 1, Duration::from_secs(60));
    for i in (0..n).step_by(997) {
        assert_eq!(msgs[i].payload(), Some(&payload(i, 1024)[..]), "record {i}");
    }
    assert_eq!(msgs[n].payload(), Some(&big[..]));
}

#[tokio::test]
async fn record_over_message_max_bytes_is_rejected() {
    let broker = Broker::start_with(&[("message.max.bytes", "100000")]);
    let topic = topic_name("toolarge");
    create_topic(&broker, &topic, 1).await;
    let p = producer(
        &broker,
        &[
            ("message.max.bytes", "2000000"),
            ("compression.type", "none"),
        ],
    );
    let big = vec![b'x'; 500_000];
    let res = p
        .send(
            FutureRecord::to(&topic).partition(0).key("k").payload(&big),
            Duration::from_secs(5),
        )
        .await;
    match res {
        Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {}
        other => panic!("expected MessageSizeTooLarge, got {other:?}"),
    }
    // The broker keeps serving that partition afterwards.
    let d = p
        .send(
            FutureRecord::to(&topic)
                .partition(0)
                .key("k")
                .payload("small"),
            Duration::from_secs(5),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("small record after rejection: {e}"));
    assert_eq!(d.offset, 0);
}

#[tokio::test]
async fn list_offsets_by_time_and_watermarks() {
    let broker = Broker::start();
    let topic = topic_name("times");
    create_topic(&broker, &topic, 2).await;
    let c = consumer(&broker, &[]);
    assert_eq!(
        c.fetch_watermarks(&topic, 0, Duration::from_secs(10))
            .expect("watermarks of empty partition"),
        (0, 0)
    );

    let p = producer(&broker, &[("linger.ms", "0")]);
    let base = 1_600_000_000_000i64;
    for i in 0..10i64 {
        let v = format!("t{i}");
        p.send(
            FutureRecord::to(&topic)
                .partition(0)
                .key("k")
                .payload(&v)
                .timestamp(base + i * 1000),
            Duration::from_secs(5),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("send {i}: {e}"));
    }
    assert_eq!(
        c.fetch_watermarks(&topic, 0, Duration::from_secs(10))
            .expect("watermarks"),
        (0, 10)
    );
    assert_eq!(
        c.fetch_watermarks(&topic, 1, Duration::from_secs(10))
            .expect("watermarks p1"),
        (0, 0)
    );

    let lookup = |ts: i64| -> Offset {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(ts))
            .expect("tpl");
        let res = c
            .offsets_for_times(tpl, Duration::from_secs(10))
            .expect("offsets_for_times");
        let e = res.find_partition(&topic, 0).expect("partition in result");
        e.error().expect("per-partition error");
        e.offset()
    };
    // The first offset whose timestamp is >= the target.
    assert_eq!(lookup(base - 5), Offset::Offset(0));
    assert_eq!(lookup(base), Offset::Offset(0));
    assert_eq!(lookup(base + 1), Offset::Offset(1));
    assert_eq!(lookup(base + 5500), Offset::Offset(6));
    assert_eq!(lookup(base + 9000), Offset::Offset(9));
    // Past the last timestamp: no offset (-1).
    assert_eq!(lookup(base + 20_000), Offset::End);

    // A consumer assigned at an out-of-range offset resets per auto.offset.reset.
    let c2 = consumer(&broker, &[("auto.offset.reset", "earliest")]);
    let msgs = consume_exact(
        &c2,
        &topic,
        0,
        Offset::Offset(1000),
        10,
        Duration::from_secs(30),
    );
    assert_eq!(msgs[0].offset(), 0);
}

#[tokio::test]
async fn auto_create_topic_on_produce() {
    let broker = Broker::start_with(&[("num.partitions", "3")]);
    let topic = topic_name("auto");
    let p = producer(&broker, &[]);
    let d = p
        .send(
            FutureRecord::to(&topic).key("k").payload("v"),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce to auto-created topic: {e}"));
    assert_eq!(d.offset, 0);
    let md = p
        .client()
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .expect("metadata");
    let t = &md.topics()[0];
    assert_eq!(t.name(), topic);
    assert!(t.error().is_none(), "topic error {:?}", t.error());
    assert_eq!(t.partitions().len(), 3);
}

#[tokio::test]
async fn no_auto_create_when_disabled() {
    let broker = Broker::start_with(&[("auto.create.topics.enable", "false")]);
    let topic = topic_name("noauto");
    let p = producer(&broker, &[("message.timeout.ms", "3000")]);
    let res = p
        .send(
            FutureRecord::to(&topic).partition(0).key("k").payload("v"),
            Timeout::After(Duration::from_secs(5)),
        )
        .await;
    match res {
        Err((KafkaError::MessageProduction(code), _)) => assert!(
            matches!(
                code,
                RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::UnknownPartition
                    | RDKafkaErrorCode::MessageTimedOut
            ),
            "unexpected error {code:?}"
        ),
        other => panic!("produce to a missing topic should fail, got {other:?}"),
    }
    let md = p
        .client()
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(
        md.topics()[0].error(),
        Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    );
}

#[tokio::test]
async fn data_and_topics_survive_clean_restart() {
    let mut broker = Broker::start();
    let topic = topic_name("restart");
    create_topic(&broker, &topic, 2).await;
    {
        let p = producer(&broker, &[("acks", "all")]);
        let offsets = send_many(&p, &topic, 1, 500, |i| payload(i, 200)).await;
        assert_eq!(offsets, (0..500).collect::<Vec<_>>());
    }
    let status = broker.terminate(Duration::from_secs(10));
    assert!(status.success(), "SIGTERM exit status {status}");
    broker.restart();

    let p = producer(&broker, &[("acks", "all")]);
    let md = p
        .client()
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .expect("metadata after restart");
    assert_eq!(md.topics()[0].partitions().len(), 2);
    // Offsets continue where they stopped.
    let more = send_many(&p, &topic, 1, 10, |i| payload(500 + i, 200)).await;
    assert_eq!(more, (500..510).collect::<Vec<_>>());
    let c = consumer(&broker, &[]);
    let msgs = consume_all(&c, &topic, 1, 510, WAIT);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload(), Some(&payload(i, 200)[..]));
    }
}
