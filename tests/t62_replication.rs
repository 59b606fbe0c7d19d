//! Data replication on a 3-node cluster of combined broker+controller processes on loopback.
//! What is proven, end to end with librdkafka and raw requests:
//!
//! - a topic created with replication factor 3 gets a full ISR (all three replicas) on every node;
//! - every record acknowledged with `acks=all` survives a kill -9 of the partition leader, at the
//!   offset it was acknowledged at and exactly once (idempotent producer), and the producer's
//!   sends all complete across the failover;
//! - a follower killed with -9 while `acks=all` traffic continues (ISR 2 >= `min.insync.replicas`
//!   2) catches up after a restart, rejoins the ISR, and the log is complete and in order after
//!   the old leader is killed in turn;
//! - with fewer in-sync replicas than `min.insync.replicas`, `acks=all` is refused with
//!   NOT_ENOUGH_REPLICAS and nothing is appended, while `acks=1` is still accepted;
//! - a follower that stops responding (SIGSTOP) is dropped from the ISR while `acks=all` keeps
//!   succeeding, and rejoins the ISR once it is continued.
//!
//! Each test starts its own cluster. Waits are generous (the machine may be a busy 2-core VM) and
//! nothing is asserted about speed.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::cluster::{create_topic, Cluster, PartitionState, Partitions};
use common::{consumer, producer, topic_name, RawConn};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

/// Every node of every cluster here: short broker sessions (a killed node is fenced after 3 s)
/// and a short replica lag bound (a stalled follower leaves the ISR after 5 s).
const SETTINGS: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "3000"),
    ("replica.lag.time.max.ms", "5000"),
];
/// How long any one condition (ISR change, election, catch-up, a read) is waited for.
const WAIT: Duration = Duration::from_secs(60);

const PRODUCE_VERSION: i16 = 9;
const NONE: i16 = 0;
const NOT_ENOUGH_REPLICAS: i16 = 19;

/// A started cluster whose three brokers are all registered, so that RF 3 topics can be created.
fn start_cluster() -> Cluster {
    let cluster = Cluster::start_with(3, SETTINGS);
    cluster.wait_for_all_brokers();
    cluster
}

/// Every partition has a leader and all three replicas in its ISR.
fn full_isr(parts: &[PartitionState]) -> bool {
    !parts.is_empty()
        && parts.iter().all(|p| {
            let mut isr = p.isr.clone();
            isr.sort_unstable();
            p.leader > 0 && p.replicas.len() == 3 && isr == [1, 2, 3]
        })
}

/// A replica of `p` other than its leader, preferably not the active controller (so the metadata
/// quorum keeps its leader while the follower is down).
fn a_follower(cluster: &Cluster, p: &PartitionState) -> i32 {
    let controller = cluster.active_controller();
    let followers: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| *r != p.leader)
        .collect();
    followers
        .iter()
        .copied()
        .find(|r| *r != controller)
        .or(followers.first().copied())
        .unwrap_or_else(|| panic!("no follower in {p}"))
}

fn others(cluster: &Cluster, but: i32) -> Vec<i32> {
    cluster.ids().into_iter().filter(|id| *id != but).collect()
}

/// An idempotent `acks=all` producer that gives every record 60 s to be delivered (through
/// retries and leader changes).
fn idempotent_producer(cluster: &Cluster) -> FutureProducer {
    let bootstrap = cluster.bootstrap();
    producer(
        &cluster.nodes[0],
        &[
            ("bootstrap.servers", bootstrap.as_str()),
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("message.timeout.ms", "60000"),
        ],
    )
}

/// One acknowledged record of partition 0.
#[derive(Debug, Clone)]
struct Ack {
    offset: i64,
    value: String,
    at: Instant,
}

/// What a producing task saw.
#[derive(Default)]
struct Sent {
    acks: Mutex<Vec<Ack>>,
    failures: Mutex<Vec<String>>,
}

impl Sent {
    fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// When the latest acknowledgement arrived.
    fn last_ack_at(&self) -> Option<Instant> {
        self.acks.lock().unwrap().last().map(|a| a.at)
    }

    fn assert_no_failures(&self, context: &str) {
        let failures = self.failures.lock().unwrap();
        assert!(
            failures.is_empty(),
            "expected every send to be acknowledged {context}; {} failed (and {} were acked), \
             first failures: {:?}",
            failures.len(),
            self.acked(),
            &failures[..failures.len().min(5)]
        );
    }
}

/// Sends `values` to partition 0 of `topic`, `window` at a time (each window awaited before the
/// next), recording each acknowledgement or failure in `sent`.
async fn send_values(
    producer: &FutureProducer,
    topic: &str,
    values: &[String],
    window: usize,
    sent: &Sent,
) {
    for chunk in values.chunks(window) {
        let mut pending = Vec::with_capacity(chunk.len());
        for value in chunk {
            let record = FutureRecord::<(), str>::to(topic)
                .partition(0)
                .payload(value);
            match producer.send_result(record) {
                Ok(delivery) => pending.push((value, delivery)),
                Err((e, _)) => sent
                    .failures
                    .lock()
                    .unwrap()
                    .push(format!("{value}: not queued: {e}")),
            }
        }
        for (value, delivery) in pending {
            match delivery.await {
                Ok(Ok(d)) => sent.acks.lock().unwrap().push(Ack {
                    offset: d.offset,
                    value: value.clone(),
                    at: Instant::now(),
                }),
                Ok(Err((e, _))) => sent.failures.lock().unwrap().push(format!("{value}: {e}")),
                Err(_) => sent
                    .failures
                    .lock()
                    .unwrap()
                    .push(format!("{value}: delivery report lost")),
            }
        }
    }
}

fn values(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i:05}")).collect()
}

/// Reads partition `partition` of `topic` from the beginning through the running nodes until at
/// least `at_least` records arrived and nothing more came for 2 s. Returns (offset, value) pairs.
fn read_partition(
    cluster: &Cluster,
    topic: &str,
    partition: i32,
    at_least: usize,
) -> Vec<(i64, String)> {
    let bootstrap = cluster.running_bootstrap();
    let consumer = consumer(
        &cluster.nodes[0],
        &[("bootstrap.servers", bootstrap.as_str())],
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .expect("add partition");
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    let mut last_record = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                out.push((m.offset(), value));
                last_record = Instant::now();
            }
            // Transient (a node still starting, a leader moving): the client retries by itself.
            Some(Err(e)) => eprintln!("consumer of {topic}/{partition}: {e}"),
            None => {}
        }
        if out.len() >= at_least && last_record.elapsed() > Duration::from_secs(2) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "expected at least {at_least} records in {topic}/{partition} within {WAIT:?}, \
             read {} (last offset {:?})",
            out.len(),
            out.last().map(|(o, _)| *o)
        );
    }
}

/// Reads partition 0 and checks that every acknowledged record is at the offset it was acked at,
/// and that no value is in the log twice.
fn assert_acks_in_log(cluster: &Cluster, topic: &str, acks: &[Ack]) {
    let log = read_partition(cluster, topic, 0, acks.len());
    let by_offset: std::collections::BTreeMap<i64, &str> =
        log.iter().map(|(o, v)| (*o, v.as_str())).collect();
    let mut seen = std::collections::HashMap::new();
    let duplicates: Vec<String> = log
        .iter()
        .filter_map(|(o, v)| {
            seen.insert(v.as_str(), *o)
                .map(|first| format!("{v} at offsets {first} and {o}"))
        })
        .collect();
    assert!(
        duplicates.is_empty(),
        "expected each value once in {topic}/0; {} duplicated, e.g. {:?}",
        duplicates.len(),
        &duplicates[..duplicates.len().min(5)]
    );
    let missing: Vec<String> = acks
        .iter()
        .filter(|a| by_offset.get(&a.offset) != Some(&a.value.as_str()))
        .map(|a| {
            format!(
                "{} acked at offset {}, log has {:?} there",
                a.value,
                a.offset,
                by_offset.get(&a.offset)
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "expected all {} acknowledged records at their offsets in {topic}/0 ({} records read); \
         {} are not, e.g. {:?}",
        acks.len(),
        log.len(),
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

/// One v2 batch of `n` records without a producer id (not idempotent).
fn batch(n: usize, tag: &str) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            headers: Default::default(),
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
    )
    .expect("encode batch");
    buf.freeze()
}

/// A raw Produce of one batch to partition 0; returns (error code, base offset, error message).
fn raw_produce(
    conn: &mut RawConn,
    topic: &str,
    acks: i16,
    records: Bytes,
) -> (i16, i64, Option<String>) {
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let response = conn.request(PRODUCE_VERSION, &request).expect("Produce");
    let p = &response.responses[0].partition_responses[0];
    let message = p.error_message.as_ref().map(|m| m.to_string());
    (p.error_code, p.base_offset, message)
}

/// A process stopped with SIGSTOP; continued (SIGCONT) when dropped, also when the test panics,
/// so that the cluster's own clean-up (SIGKILL) and the other nodes are not left waiting on it.
struct Paused {
    pid: libc::pid_t,
}

impl Paused {
    fn stop(pid: u32) -> Paused {
        let pid = pid as libc::pid_t;
        // SAFETY: kill(2) on the pid of a child process this test spawned and still owns.
        let rc = unsafe { libc::kill(pid, libc::SIGSTOP) };
        assert_eq!(rc, 0, "SIGSTOP {pid}");
        Paused { pid }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        // SAFETY: as in `stop`; the process is not reaped before the cluster is dropped.
        unsafe {
            libc::kill(self.pid, libc::SIGCONT);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicated_topic_gets_a_full_isr() {
    let cluster = start_cluster();
    let topic = topic_name("replicated");
    create_topic(
        &cluster.bootstrap(),
        &topic,
        3,
        3,
        &[("min.insync.replicas", "2")],
    )
    .await;
    // Followers join the ISR only once they have fetched up to the leader's end offset, which
    // takes a few fetch rounds and AlterPartition round trips after creation.
    let parts = cluster.wait_for_partitions(
        &cluster.ids(),
        &topic,
        WAIT,
        "3 partitions, each with ISR [1, 2, 3]",
        |parts| parts.len() == 3 && full_isr(parts),
    );
    eprintln!("{topic}: {}", Partitions(&parts));
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_records_survive_kill_9_of_the_leader() {
    let mut cluster = start_cluster();
    let topic = topic_name("survive");
    create_topic(
        &cluster.bootstrap(),
        &topic,
        1,
        3,
        &[("min.insync.replicas", "2")],
    )
    .await;
    let parts = cluster.wait_for_partitions(&cluster.ids(), &topic, WAIT, "a full ISR", full_isr);
    let leader = parts[0].leader;

    let producer = idempotent_producer(&cluster);
    let sent = Arc::new(Sent::default());
    let all = values("v", 0..2000);
    let task = {
        let (producer, topic, sent, all) = (producer.clone(), topic.clone(), sent.clone(), all);
        tokio::spawn(async move { send_values(&producer, &topic, &all, 50, &sent).await })
    };
    // Kill the leader in the middle of the stream: with a window of 50, some records are in
    // flight (appended by the leader or not yet) when it dies.
    let deadline = Instant::now() + WAIT;
    while sent.acked() < 1000 {
        assert!(
            !task.is_finished() && Instant::now() < deadline,
            "expected 1000 acks before killing the leader within {WAIT:?}; got {}, failures: {:?}",
            sent.acked(),
            sent.failures.lock().unwrap().first()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "killing leader {leader} after {} acks of {topic}",
        sent.acked()
    );
    cluster.node(leader).kill9();
    task.await.expect("producing task");
    sent.assert_no_failures("across a kill -9 of the leader (acks=all, 60 s message timeout)");
    let acks = sent.acks.lock().unwrap().clone();
    assert_eq!(
        acks.len(),
        2000,
        "expected one acknowledgement per record sent"
    );

    cluster.node(leader).restart();
    // The restarted node truncates whatever it had beyond the new leader's log, catches up,
    // and is readmitted to the ISR.
    cluster.wait_for_partitions(
        &cluster.ids(),
        &topic,
        WAIT,
        "a full ISR again after the old leader restarted",
        full_isr,
    );
    assert_acks_in_log(&cluster, &topic, &acks);
}

#[tokio::test(flavor = "multi_thread")]
async fn follower_that_restarts_catches_up_and_can_lead() {
    let mut cluster = start_cluster();
    let topic = topic_name("catch-up");
    create_topic(
        &cluster.bootstrap(),
        &topic,
        1,
        3,
        &[("min.insync.replicas", "2")],
    )
    .await;
    let parts = cluster.wait_for_partitions(&cluster.ids(), &topic, WAIT, "a full ISR", full_isr);
    let leader = parts[0].leader;
    let follower = a_follower(&cluster, &parts[0]);
    let producer = idempotent_producer(&cluster);
    let sent = Sent::default();

    send_values(&producer, &topic, &values("r", 0..500), 50, &sent).await;
    sent.assert_no_failures("with a full ISR");

    cluster.node(follower).kill9();
    // acks=all waits for the dead follower until it leaves the ISR (fenced after its 3 s
    // session, or 5 s of lag); then ISR 2 = min.insync.replicas and records are acknowledged.
    send_values(&producer, &topic, &values("r", 500..1000), 50, &sent).await;
    sent.assert_no_failures(&format!(
        "with follower {follower} killed (ISR 2 >= min.insync.replicas 2)"
    ));

    cluster.node(follower).restart();
    // The follower has 500 records to fetch before it is back in the ISR.
    cluster.wait_for_partitions(
        &cluster.ids(),
        &topic,
        WAIT,
        &format!("a full ISR again after follower {follower} restarted"),
        full_isr,
    );

    cluster.node(leader).kill9();
    // The controller elects another ISR member once the old leader's session has expired.
    let survivors = others(&cluster, leader);
    let parts = cluster.wait_for_partitions(
        &survivors,
        &topic,
        WAIT,
        &format!("a leader other than the killed {leader}"),
        |parts| parts.len() == 1 && parts[0].leader > 0 && parts[0].leader != leader,
    );
    eprintln!(
        "{topic}: follower {follower} restarted, leader {leader} killed, now {}",
        Partitions(&parts)
    );

    let log = read_partition(&cluster, &topic, 0, 1000);
    let expected: Vec<(i64, String)> = values("r", 0..1000)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (i as i64, v))
        .collect();
    if let Some(i) = (0..expected.len().max(log.len())).find(|i| log.get(*i) != expected.get(*i)) {
        panic!(
            "expected r00000..r00999 at offsets 0..999 (read {} records); first difference at \
             index {i}: expected {:?}, read {:?}",
            log.len(),
            expected.get(i),
            log.get(i)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acks_all_is_refused_with_not_enough_replicas() {
    let mut cluster = start_cluster();
    let topic = topic_name("min-isr");
    create_topic(
        &cluster.bootstrap(),
        &topic,
        1,
        3,
        &[("min.insync.replicas", "3")],
    )
    .await;
    let parts = cluster.wait_for_partitions(&cluster.ids(), &topic, WAIT, "a full ISR", full_isr);
    let victim = a_follower(&cluster, &parts[0]);
    cluster.node(victim).kill9();
    // Every survivor, the leader included, must have applied the shrink, so that the leader
    // judges the produce below against ISR 2.
    let parts = cluster.wait_for_partitions(
        &others(&cluster, victim),
        &topic,
        WAIT,
        &format!("ISR of 2 without the killed follower {victim}"),
        |parts| {
            parts.len() == 1
                && parts[0].leader > 0
                && parts[0].isr.len() == 2
                && !parts[0].isr.contains(&victim)
        },
    );
    let leader = parts[0].leader;

    let mut conn = RawConn::connect(cluster.get(leader));
    let (code, _, message) = raw_produce(&mut conn, &topic, -1, batch(3, "refused"));
    assert_eq!(
        code, NOT_ENOUGH_REPLICAS,
        "expected NOT_ENOUGH_REPLICAS (19) for acks=all with {} and min.insync.replicas=3, got \
         error {code} ({message:?})",
        parts[0]
    );
    let (code, base_offset, message) = raw_produce(&mut conn, &topic, 1, batch(3, "accepted"));
    assert_eq!(
        code, NONE,
        "expected acks=1 to be accepted with {}, got error {code} ({message:?})",
        parts[0]
    );
    assert_eq!(
        base_offset, 0,
        "expected the refused acks=all batch not to be appended, so the acks=1 batch is at 0"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_follower_leaves_and_rejoins_the_isr() {
    let cluster = start_cluster();
    let topic = topic_name("paused");
    create_topic(
        &cluster.bootstrap(),
        &topic,
        1,
        3,
        &[("min.insync.replicas", "2")],
    )
    .await;
    let parts = cluster.wait_for_partitions(&cluster.ids(), &topic, WAIT, "a full ISR", full_isr);
    let follower = a_follower(&cluster, &parts[0]);
    let live = others(&cluster, follower);

    // acks=all traffic for the whole test, in windows of 10 records every 50 ms.
    let producer = idempotent_producer(&cluster);
    let sent = Arc::new(Sent::default());
    let stop = Arc::new(AtomicBool::new(false));
    let task = {
        let (producer, topic, sent, stop) =
            (producer.clone(), topic.clone(), sent.clone(), stop.clone());
        tokio::spawn(async move {
            let mut next = 0;
            while !stop.load(Ordering::Relaxed) {
                send_values(&producer, &topic, &values("p", next..next + 10), 10, &sent).await;
                next += 10;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let deadline = Instant::now() + WAIT;
    while sent.acked() < 50 {
        assert!(
            Instant::now() < deadline,
            "expected 50 acks with a full ISR within {WAIT:?}; got {}, failures: {:?}",
            sent.acked(),
            sent.failures.lock().unwrap().first()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let paused_at = Instant::now();
    let paused = Paused::stop(cluster.get(follower).pid());
    // The stopped follower neither fetches nor heartbeats: it leaves the ISR when its session
    // expires (fenced) or when it has lagged for replica.lag.time.max.ms, whichever comes first.
    // The paused node cannot answer Metadata, so only the others are asked.
    let parts = cluster.wait_for_partitions(
        &live,
        &topic,
        WAIT,
        &format!("ISR of 2 without the paused follower {follower}"),
        |parts| parts.len() == 1 && parts[0].isr.len() == 2 && !parts[0].isr.contains(&follower),
    );
    let shrunk_at = Instant::now();
    eprintln!(
        "{topic}: follower {follower} paused, ISR shrunk after {:?}: {}",
        shrunk_at - paused_at,
        Partitions(&parts)
    );
    // acks=all must go on with the smaller ISR: wait (while still paused) for a record
    // acknowledged after the shrink was seen.
    let deadline = Instant::now() + WAIT;
    while sent.last_ack_at().is_none_or(|at| at <= shrunk_at) {
        assert!(
            Instant::now() < deadline,
            "expected acks=all records to be acknowledged with ISR {:?} (min.insync.replicas 2) \
             while follower {follower} is paused; none in the {WAIT:?} after the shrink; {} acked \
             in all, the last {:?} after the pause; failures: {:?}",
            parts[0].isr,
            sent.acked(),
            sent.last_ack_at()
                .map(|at| at.saturating_duration_since(paused_at)),
            sent.failures.lock().unwrap().first()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{topic}: first ack with the shrunk ISR {:?} after the shrink",
        shrunk_at.elapsed()
    );
    // Paused for at least 10 s in all.
    tokio::time::sleep(
        (paused_at + Duration::from_secs(10)).saturating_duration_since(Instant::now()),
    )
    .await;
    sent.assert_no_failures(&format!("while follower {follower} was paused"));
    drop(paused);

    // Continued, the follower heartbeats (and re-registers if it was fenced), fetches what it
    // missed, and is readmitted.
    cluster.wait_for_partitions(
        &cluster.ids(),
        &topic,
        WAIT,
        &format!("a full ISR again after follower {follower} was continued"),
        full_isr,
    );
    stop.store(true, Ordering::Relaxed);
    task.await.expect("producing task");
    sent.assert_no_failures(&format!("after follower {follower} was continued"));
    let acks = sent.acks.lock().unwrap().clone();
    assert_acks_in_log(&cluster, &topic, &acks);
}
