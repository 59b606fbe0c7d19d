//! Idempotent produce at the protocol level, with batches whose producer id, epoch and
//! sequence numbers the test chooses: retried batches are answered with their original offset
//! and not appended twice, gaps are OUT_OF_ORDER_SEQUENCE_NUMBER, stale epochs are fenced,
//! and the producer state survives both a clean restart and kill -9. Also the per-batch
//! validation errors (CRC, magic, unknown partition).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{
    consumer, create_topic, encode_batch, raw_produce, raw_record, topic_name, Broker, RawConn,
};
use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};
use kafka_protocol::records::Record;
use rdkafka::consumer::Consumer;

const INIT_PID_VERSION: i16 = 2;

const NONE: i16 = 0;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

/// One v2 batch of `n` records for `pid`/`epoch` starting at sequence `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, n: usize, tag: &str) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            producer_id: pid,
            producer_epoch: epoch,
            sequence: seq + i as i32,
            key: Some(Bytes::from(format!("k{i}"))),
            ..raw_record(i, tag)
        })
        .collect();
    encode_batch(&records)
}

/// Produces `records` to `topic`/`partition` with acks=all; returns (error code, base offset).
fn produce(c: &mut RawConn, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
    let p = raw_produce(c, topic, partition, -1, 10_000, records);
    (p.error_code, p.base_offset)
}

fn init_producer_id(c: &mut RawConn) -> (i64, i16) {
    let resp = c
        .request(
            INIT_PID_VERSION,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .expect("InitProducerId");
    assert_eq!(resp.error_code, NONE, "InitProducerId error");
    assert!(
        resp.producer_id.0 >= 0,
        "producer id {:?}",
        resp.producer_id
    );
    (resp.producer_id.0, resp.producer_epoch)
}

fn high_watermark(broker: &Broker, topic: &str) -> i64 {
    consumer(broker, &[])
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks")
        .1
}

#[tokio::test]
async fn retries_gaps_fencing_and_restart() {
    let mut broker = Broker::start();
    let topic = topic_name("idem-raw");
    create_topic(&broker, &topic, 1).await;

    let mut c = RawConn::connect(&broker);
    let (pid, epoch) = init_producer_id(&mut c);
    let (pid2, epoch2) = init_producer_id(&mut c);
    assert_ne!(pid, pid2, "InitProducerId must hand out distinct ids");

    let b0 = batch(pid, epoch, 0, 3, "a");
    assert_eq!(produce(&mut c, &topic, 0, b0.clone()), (NONE, 0));
    // A retry of the same batch gets the original offset and is not appended again.
    assert_eq!(produce(&mut c, &topic, 0, b0.clone()), (NONE, 0));
    assert_eq!(high_watermark(&broker, &topic), 3);

    let b1 = batch(pid, epoch, 3, 2, "b");
    assert_eq!(produce(&mut c, &topic, 0, b1.clone()), (NONE, 3));
    // Older batches within the last five are still recognised.
    assert_eq!(produce(&mut c, &topic, 0, b0.clone()), (NONE, 0));
    assert_eq!(produce(&mut c, &topic, 0, b1.clone()), (NONE, 3));

    // A gap in the sequence.
    let (err, _) = produce(&mut c, &topic, 0, batch(pid, epoch, 10, 1, "gap"));
    assert_eq!(err, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(high_watermark(&broker, &topic), 5);

    // The producer bumps its own epoch (KIP-360) and restarts its sequence at 0.
    let b2 = batch(pid, epoch + 1, 0, 1, "c");
    assert_eq!(produce(&mut c, &topic, 0, b2.clone()), (NONE, 5));
    // The old epoch is now fenced.
    let (err, _) = produce(&mut c, &topic, 0, batch(pid, epoch, 5, 1, "stale"));
    assert_eq!(err, INVALID_PRODUCER_EPOCH);

    // A second producer is independent of the first.
    assert_eq!(
        produce(&mut c, &topic, 0, batch(pid2, epoch2, 0, 1, "p2")),
        (NONE, 6)
    );
    assert_eq!(high_watermark(&broker, &topic), 7);

    // Clean restart: the producer state is restored.
    let status = broker.terminate(Duration::from_secs(10));
    assert!(status.success(), "SIGTERM exit status {status}");
    broker.restart();
    let mut c = RawConn::connect(&broker);
    assert_eq!(produce(&mut c, &topic, 0, b2.clone()), (NONE, 5));
    assert_eq!(high_watermark(&broker, &topic), 7);

    // Crash: the state is rebuilt from the log.
    broker.kill9();
    broker.restart();
    let mut c = RawConn::connect(&broker);
    assert_eq!(produce(&mut c, &topic, 0, b2.clone()), (NONE, 5));
    let (err, _) = produce(&mut c, &topic, 0, batch(pid, epoch + 1, 5, 1, "gap2"));
    assert_eq!(err, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(
        produce(&mut c, &topic, 0, batch(pid, epoch + 1, 1, 2, "d")),
        (NONE, 7)
    );
    assert_eq!(high_watermark(&broker, &topic), 9);
}

#[tokio::test]
async fn batch_validation_errors() {
    let broker = Broker::start_with(&[("auto.create.topics.enable", "false")]);
    let topic = topic_name("validate");
    create_topic(&broker, &topic, 1).await;
    let mut c = RawConn::connect(&broker);

    // Flip one byte of record data: the CRC no longer matches.
    let good = batch(-1, -1, -1, 2, "x");
    let mut bad = good.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let (err, _) = produce(&mut c, &topic, 0, Bytes::from(bad));
    assert_eq!(err, CORRUPT_MESSAGE);

    // Magic 1 is refused (Kafka 4 accepts only v2 batches).
    let mut old = good.to_vec();
    old[16] = 1;
    let (err, _) = produce(&mut c, &topic, 0, Bytes::from(old));
    assert_ne!(err, NONE, "a magic 1 batch must be refused");

    // Unknown partition and unknown topic.
    let (err, _) = produce(&mut c, &topic, 7, good.clone());
    assert_eq!(err, UNKNOWN_TOPIC_OR_PARTITION);
    let (err, _) = produce(&mut c, &topic_name("nosuch"), 0, good.clone());
    assert_eq!(err, UNKNOWN_TOPIC_OR_PARTITION);

    // Nothing of the above was appended; the good batch still is.
    assert_eq!(high_watermark(&broker, &topic), 0);
    assert_eq!(produce(&mut c, &topic, 0, good), (NONE, 0));
    assert_eq!(high_watermark(&broker, &topic), 2);
}
