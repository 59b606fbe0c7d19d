//! Helpers of the replication and failover tests: RF 3 topics with full ISRs, an idempotent
//! `acks=all` producer whose every acknowledgement (or failure) is recorded, and a check that every
//! acknowledged record is in the log, once, at the offset it was acknowledged at.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::task::JoinHandle;

use super::cluster::{create_topic, Cluster, PartitionState};
use super::{consumer, producer};

/// Every node of every cluster here: short broker sessions (a killed node is fenced after 3 s)
/// and a short replica lag bound (a stalled follower leaves the ISR after 5 s).
pub const SETTINGS: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "3000"),
    ("replica.lag.time.max.ms", "5000"),
];
/// How long any one condition (ISR change, election, catch-up, a read) is waited for.
pub const WAIT: Duration = Duration::from_secs(60);

/// A started 3-node cluster (combined nodes, [`SETTINGS`]) whose three brokers are all
/// registered, so that RF 3 topics can be created.
pub fn start_cluster() -> Cluster {
    let cluster = Cluster::start_with(3, SETTINGS);
    cluster.wait_for_all_brokers();
    cluster
}

/// `p` has a leader and all of its three replicas in its ISR.
pub fn partition_has_full_isr(p: &PartitionState) -> bool {
    let mut isr = p.isr.clone();
    isr.sort_unstable();
    let mut replicas = p.replicas.clone();
    replicas.sort_unstable();
    p.leader > 0 && replicas.len() == 3 && isr == replicas
}

/// Every partition has a leader and all three replicas in its ISR.
pub fn full_isr(parts: &[PartitionState]) -> bool {
    !parts.is_empty() && parts.iter().all(partition_has_full_isr)
}

/// Every node id but `but`.
pub fn others(cluster: &Cluster, but: i32) -> Vec<i32> {
    cluster.ids().into_iter().filter(|id| *id != but).collect()
}

/// Creates `topic` with `partitions` partitions of replication factor 3 and
/// `min.insync.replicas=min_insync`, and waits until every node shows each partition with a full
/// ISR; returns the partitions as the last node showed them.
pub async fn create_replicated_topic(
    cluster: &Cluster,
    topic: &str,
    partitions: i32,
    min_insync: &str,
) -> Vec<PartitionState> {
    create_topic(
        &cluster.bootstrap(),
        topic,
        partitions,
        3,
        &[("min.insync.replicas", min_insync)],
    )
    .await;
    // Followers join the ISR only once they have fetched up to the leader's end offset, which
    // takes a few fetch rounds and AlterPartition round trips after creation.
    cluster.wait_for_partitions(
        &cluster.ids(),
        topic,
        WAIT,
        &format!("{partitions} partition(s), each with a full ISR"),
        |parts| parts.len() == partitions as usize && full_isr(parts),
    )
}

/// An idempotent `acks=all` producer that gives every record 60 s to be delivered (through
/// retries and leader changes).
pub fn idempotent_producer(cluster: &Cluster) -> FutureProducer {
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
pub struct Ack {
    pub offset: i64,
    pub value: String,
    pub at: Instant,
}

/// What a producing task saw.
#[derive(Default)]
pub struct Sent {
    pub acks: Mutex<Vec<Ack>>,
    pub failures: Mutex<Vec<String>>,
}

impl Sent {
    pub fn acked(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    /// When the latest acknowledgement arrived.
    pub fn last_ack_at(&self) -> Option<Instant> {
        self.acks.lock().unwrap().last().map(|a| a.at)
    }

    pub fn assert_no_failures(&self, context: &str) {
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

    /// Waits until `count` records are acknowledged, failing if `task` (the one producing) ends
    /// first or [`WAIT`] passes; `before` says what the test does next, for the failure message.
    pub async fn wait_for_acks(&self, count: usize, task: &JoinHandle<()>, before: &str) {
        let deadline = Instant::now() + WAIT;
        while self.acked() < count {
            assert!(
                !task.is_finished() && Instant::now() < deadline,
                "expected {count} acks {before} within {WAIT:?}; got {}, failures: {:?}",
                self.acked(),
                self.failures.lock().unwrap().first()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sends `values` to partition 0 of `topic`, `window` at a time (each window awaited before the
/// next), recording each acknowledgement or failure in `sent`.
pub async fn send_values(
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

/// [`send_values`] in a task of its own.
pub fn spawn_send_values(
    producer: &FutureProducer,
    topic: &str,
    values: Vec<String>,
    window: usize,
    sent: &Arc<Sent>,
) -> JoinHandle<()> {
    let (producer, topic, sent) = (producer.clone(), topic.to_string(), sent.clone());
    tokio::spawn(async move { send_values(&producer, &topic, &values, window, &sent).await })
}

/// `{prefix}00000`, `{prefix}00001`, ... for the indexes in `range`.
pub fn values(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i:05}")).collect()
}

/// Reads partition `partition` of `topic` from the beginning through the running brokers until
/// at least `at_least` records arrived and nothing more came for 2 s. Returns (offset, value)
/// pairs.
pub fn read_partition(
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

/// Fails unless `log` (as [`read_partition`] returns it) is exactly `expected` at offsets 0, 1, ...
pub fn assert_log_is(log: &[(i64, String)], expected: &[String], what: &str) {
    let expected: Vec<(i64, String)> = expected
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, v)| (i as i64, v))
        .collect();
    if let Some(i) = (0..expected.len().max(log.len())).find(|i| log.get(*i) != expected.get(*i)) {
        panic!(
            "expected {what} (read {} records); first difference at index {i}: expected {:?}, \
             read {:?}",
            log.len(),
            expected.get(i),
            log.get(i)
        );
    }
}

/// Reads partition 0 and checks that every acknowledged record is at the offset it was acked at,
/// and that no value is in the log twice.
pub fn assert_acks_in_log(cluster: &Cluster, topic: &str, acks: &[Ack]) {
    let log = read_partition(cluster, topic, 0, acks.len());
    let by_offset: BTreeMap<i64, &str> = log.iter().map(|(o, v)| (*o, v.as_str())).collect();
    let mut seen = HashMap::new();
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

/// Creates `name` (1 partition, replication factor `rf`) through the running brokers, retrying
/// until it succeeds or `limit` passes (a request may land while the quorum elects a new
/// controller). An "already exists" answer after a failed attempt counts as success: that attempt
/// may have created it and lost its response.
pub async fn create_topic_within(cluster: &Cluster, name: &str, rf: i32, limit: Duration) {
    use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
    let deadline = Instant::now() + limit;
    let mut attempts = Vec::new();
    loop {
        let admin = super::cluster::admin(&cluster.running_bootstrap());
        let remaining = deadline.saturating_duration_since(Instant::now());
        let options = AdminOptions::new()
            .operation_timeout(Some(remaining))
            .request_timeout(Some(remaining.max(Duration::from_secs(1))));
        let topic = NewTopic::new(name, 1, TopicReplication::Fixed(rf));
        let outcome = match admin.create_topics(&[topic], &options).await {
            Ok(results) => results
                .into_iter()
                .try_for_each(|r| r.map(|_| ()).map_err(|(_, e)| e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => return,
            Err(e) if !attempts.is_empty() && e.contains("already exists") => return,
            Err(e) => attempts.push(e),
        }
        assert!(
            Instant::now() < deadline,
            "expected topic {name} to be created within {limit:?}; attempts failed with {attempts:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
