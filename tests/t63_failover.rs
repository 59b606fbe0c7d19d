//! Failover on clusters of `kavka` processes on loopback (3 combined broker+controller nodes, or
//! 3 controller-only and 3 broker-only nodes), end to end with librdkafka:
//!
//! - a consumer group keeps consuming, and its commits survive, when the node coordinating it
//!   (the leader of the group's `__consumer_offsets` partition) is killed with -9: the client is
//!   told NOT_COORDINATOR or loses its connection, finds the new coordinator (the new leader of
//!   that partition, once it has replayed it), and goes on; every record is consumed at least
//!   once and the final committed offsets are the end offsets;
//! - `acks=all` idempotent production goes on, every send acknowledged, across a kill -9 of the
//!   active controller, topics can still be created afterwards, and every acknowledged record is
//!   in the log exactly once at its offset once the node is back;
//! - on a cluster of 3 controller-only and 3 broker-only nodes: with two of three brokers down,
//!   the ISR shrinks to the survivor, `acks=all` is refused with NOT_ENOUGH_REPLICAS while every
//!   committed record can still be read, and the ISR is whole again once they are restarted;
//! - on the same kind of cluster, `acks=all` production goes on across a kill -9 of the active
//!   controller (a controller-only node), topics can still be created, and the controllers and
//!   brokers that are left describe the topics the same way.
//!
//! Each test starts its own cluster. Waits are generous (the machine may be a busy 2-core VM) and
//! nothing is asserted about speed beyond liveness bounds.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{
    metadata, partitions_of, topics_of, Cluster, PartitionState, Partitions, Role,
};
use common::replication::{
    assert_acks_in_log, assert_log_is, create_replicated_topic, full_isr, idempotent_producer,
    others, partition_has_full_isr, read_partition, send_values, spawn_send_values, start_cluster,
    values, Ack, Sent, SETTINGS, WAIT,
};
use common::{client_config, consumer, encode_batch, raw_produce, raw_record, topic_name, RawConn};
use kafka_protocol::messages::FindCoordinatorRequest;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

/// How long a group consumer may take to finish the topic after its coordinator was killed.
const CONSUME_AFTER_KILL: Duration = Duration::from_secs(90);
/// How long topic creation may take after the active controller was killed.
const CREATE_AFTER_KILL: Duration = Duration::from_secs(30);

const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's group-to-partition mapping: `Utils.abs(group.hashCode()) % partitions`, with Java's
/// `String.hashCode` over UTF-16 code units (as `src/coordinator/mod.rs` computes it).
fn partition_for(group: &str, partitions: i32) -> i32 {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32));
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

/// Asks `node` (raw FindCoordinator v3) which node coordinates `group`: (error code, node id).
fn find_coordinator(cluster: &Cluster, node: i32, group: &str) -> Option<(i16, i32)> {
    let mut conn = std::panic::catch_unwind(|| RawConn::connect(cluster.get(node))).ok()?;
    let request = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_string(group.to_string()))
        .with_key_type(0);
    let response = conn.request(3, &request).ok()?;
    Some((response.error_code, response.node_id.0))
}

/// A classic-protocol group member that commits only when told to, bootstrapping from every node.
fn group_member(cluster: &Cluster, group: &str) -> BaseConsumer {
    let mut cfg = client_config(&cluster.nodes[0]);
    cfg.set("bootstrap.servers", cluster.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("fetch.wait.max.ms", "100");
    cfg.create().expect("create group member")
}

/// What the group member has consumed so far.
#[derive(Default)]
struct Consumed {
    /// How many times each value was delivered.
    seen: HashMap<String, usize>,
    /// Per partition, the offset after the highest one delivered.
    next: BTreeMap<i32, i64>,
    since_commit: usize,
    commits: usize,
    commit_failures: Vec<String>,
    errors: Vec<String>,
}

impl Consumed {
    fn distinct(&self) -> usize {
        self.seen.len()
    }

    fn duplicates(&self) -> usize {
        self.seen.values().map(|n| n - 1).sum()
    }

    fn positions(&self, topic: &str) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (p, next) in &self.next {
            tpl.add_partition_offset(topic, *p, Offset::Offset(*next))
                .expect("add partition");
        }
        tpl
    }

    /// Commits the positions synchronously; a failure (expected while the coordinator moves) is
    /// recorded, not fatal.
    fn commit(&mut self, member: &BaseConsumer, topic: &str, started: Instant) -> bool {
        self.since_commit = 0;
        let tpl = self.positions(topic);
        let at = Instant::now();
        match member.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {
                self.commits += 1;
                true
            }
            Err(e) => {
                let failure = format!("at {:?} (took {:?}): {e}", at - started, at.elapsed());
                eprintln!("commit failed {failure}");
                self.commit_failures.push(failure);
                false
            }
        }
    }

    /// Polls once; every 50 records delivered, commits.
    fn poll(&mut self, member: &BaseConsumer, topic: &str, started: Instant) {
        match member.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                *self.seen.entry(value).or_default() += 1;
                let next = self.next.entry(m.partition()).or_default();
                *next = (*next).max(m.offset() + 1);
                self.since_commit += 1;
                if self.since_commit >= 50 {
                    self.commit(member, topic, started);
                }
            }
            Some(Err(e)) => {
                let error = format!("at {:?}: {e}", started.elapsed());
                eprintln!("group member: {error}");
                self.errors.push(error);
            }
            None => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_keeps_consuming_across_the_failover_of_its_coordinator() {
    const RECORDS: usize = 3000;
    let mut cluster = start_cluster();
    let topic = topic_name("group-failover");
    let group = format!("{topic}-group");
    create_replicated_topic(&cluster, &topic, 3, "2").await;

    // Keyed records, spread over the 3 partitions by the default partitioner.
    let producer = idempotent_producer(&cluster);
    let all = values("g", 0..RECORDS);
    let mut deliveries = Vec::with_capacity(RECORDS);
    for (i, value) in all.iter().enumerate() {
        let key = format!("key-{i}");
        let record = FutureRecord::to(&topic).key(&key).payload(value);
        match producer.send_result(record) {
            Ok(d) => deliveries.push(d),
            Err((e, _)) => panic!("could not queue {value}: {e}"),
        }
    }
    let mut produced: BTreeMap<i32, i64> = BTreeMap::new();
    for d in deliveries {
        let d = d
            .await
            .expect("delivery report")
            .unwrap_or_else(|(e, _)| panic!("acks=all send failed with a full ISR: {e}"));
        *produced.entry(d.partition).or_default() += 1;
    }
    drop(producer);
    eprintln!("{topic}: produced {RECORDS} records, per partition {produced:?}");

    let member = group_member(&cluster, &group);
    member.subscribe(&[&topic]).expect("subscribe");
    let started = Instant::now();
    let mut consumed = Consumed::default();
    let deadline = started + WAIT;
    while consumed.distinct() < RECORDS / 3 {
        assert!(
            Instant::now() < deadline,
            "expected the group member to consume {} records within {WAIT:?} (before any kill); \
             got {}, errors: {:?}, commit failures: {:?}",
            RECORDS / 3,
            consumed.distinct(),
            consumed.errors.first(),
            consumed.commit_failures.first()
        );
        consumed.poll(&member, &topic, started);
    }
    assert!(
        consumed.commit(&member, &topic, started),
        "expected a commit to succeed before the coordinator is killed: {:?}",
        consumed.commit_failures.last()
    );

    // The member's FindCoordinator created __consumer_offsets (with RF 3, all brokers being
    // registered). Its group's partition must be fully replicated before its leader is killed,
    // or the commits so far could be lost with it.
    let offsets_parts = cluster.wait_for_partitions(
        &cluster.ids(),
        OFFSETS_TOPIC,
        WAIT,
        &format!("{OFFSETS_TOPIC} with the group's partition fully in sync"),
        |parts| {
            let p = partition_for(&group, parts.len() as i32) as usize;
            parts.get(p).is_some_and(partition_has_full_isr)
        },
    );
    let offsets_partition = partition_for(&group, offsets_parts.len() as i32);
    let coordinator = offsets_parts[offsets_partition as usize].leader;
    let asked = find_coordinator(&cluster, others(&cluster, coordinator)[0], &group);
    eprintln!(
        "{group}: {OFFSETS_TOPIC} has {} partitions; the group's is {}; FindCoordinator says \
         (error, node) = {asked:?}; killing node {coordinator} (active controller {}) after {} \
         records, {} commits, {:?} since the member started",
        offsets_parts.len(),
        offsets_parts[offsets_partition as usize],
        cluster.active_controller(),
        consumed.distinct(),
        consumed.commits,
        started.elapsed()
    );
    let killed_at = Instant::now();
    cluster.node(coordinator).kill9();
    let before_kill = consumed.distinct();
    let failures_before_kill = consumed.commit_failures.len();

    let deadline = killed_at + CONSUME_AFTER_KILL;
    while consumed.distinct() < RECORDS {
        assert!(
            Instant::now() < deadline,
            "expected the group member to consume all {RECORDS} records within \
             {CONSUME_AFTER_KILL:?} of killing its coordinator {coordinator}; it has {} distinct \
             ({before_kill} before the kill), positions {:?}, {} commits, commit failures {:?}, \
             errors {:?}",
            consumed.distinct(),
            consumed.next,
            consumed.commits,
            consumed.commit_failures,
            &consumed.errors[..consumed.errors.len().min(10)]
        );
        consumed.poll(&member, &topic, started);
    }
    let finished_at = Instant::now();

    // The last positions must be committed through the new coordinator.
    let commit_deadline = Instant::now() + WAIT;
    while !consumed.commit(&member, &topic, started) {
        assert!(
            Instant::now() < commit_deadline,
            "expected the final commit to succeed within {WAIT:?} through the new coordinator; \
             failures: {:?}",
            consumed.commit_failures
        );
        // Serve a pending rebalance, if any, between attempts.
        consumed.poll(&member, &topic, started);
    }
    let positions = consumed.next.clone();
    eprintln!(
        "{group}: all {RECORDS} values consumed {:?} after the kill ({:?} in all); {} duplicate \
         deliveries; {} commits succeeded, {} failed ({} after the kill); positions {positions:?}",
        finished_at - killed_at,
        finished_at - started,
        consumed.duplicates(),
        consumed.commits,
        consumed.commit_failures.len(),
        consumed.commit_failures.len() - failures_before_kill
    );
    drop(member);

    // A fresh client (not a member) reads the group's committed offsets and the end offsets.
    let survivors = others(&cluster, coordinator);
    let new_parts = cluster.wait_for_partitions(
        &survivors,
        OFFSETS_TOPIC,
        WAIT,
        &format!("a new leader for {OFFSETS_TOPIC}/{offsets_partition}"),
        |parts| {
            parts
                .get(offsets_partition as usize)
                .is_some_and(|p| p.leader > 0 && p.leader != coordinator)
        },
    );
    eprintln!(
        "{group}: the new coordinator is node {} ({}); FindCoordinator says {:?}",
        new_parts[offsets_partition as usize].leader,
        new_parts[offsets_partition as usize],
        find_coordinator(&cluster, survivors[0], &group)
    );
    let reader = consumer(
        &cluster.nodes[0],
        &[
            ("bootstrap.servers", cluster.running_bootstrap().as_str()),
            ("group.id", group.as_str()),
        ],
    );
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(&topic, p);
    }
    let committed = reader
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("OffsetFetch of the group's committed offsets");
    let committed: BTreeMap<i32, Offset> = committed
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    let mut ends = BTreeMap::new();
    for p in 0..3 {
        let (_, high) = reader
            .fetch_watermarks(&topic, p, Duration::from_secs(30))
            .expect("ListOffsets");
        ends.insert(p, Offset::Offset(high));
    }
    let expected_ends: BTreeMap<i32, Offset> = produced
        .iter()
        .map(|(p, n)| (*p, Offset::Offset(*n)))
        .collect();
    assert_eq!(
        ends, expected_ends,
        "expected each partition's end offset to be the number of records produced to it"
    );
    assert_eq!(
        committed, ends,
        "expected the group's committed offsets (read back from the new coordinator) to be the \
         end offsets of {topic}"
    );

    cluster.node(coordinator).restart();
    cluster.wait_for_partitions(
        &cluster.ids(),
        &topic,
        WAIT,
        &format!("a full ISR again after node {coordinator} restarted"),
        full_isr,
    );
}

/// Creates `name` (1 partition, RF 2) through any running node, retrying until it succeeds or
/// `limit` passes (a request may land while the quorum elects a new controller).
async fn create_topic_within(cluster: &Cluster, name: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut attempts = Vec::new();
    loop {
        let admin = common::cluster::admin(&cluster.running_bootstrap());
        let remaining = deadline.saturating_duration_since(Instant::now());
        let options = AdminOptions::new()
            .operation_timeout(Some(remaining))
            .request_timeout(Some(remaining.max(Duration::from_secs(1))));
        let topic = NewTopic::new(name, 1, TopicReplication::Fixed(2));
        let outcome = match admin.create_topics(&[topic], &options).await {
            Ok(results) => results
                .into_iter()
                .try_for_each(|r| r.map(|_| ()).map_err(|(_, e)| e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => return,
            // A previous attempt may have created it after its response was lost.
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

/// What [`kill_the_controller_while_producing`] did.
struct ControllerKilled {
    /// The RF 3 topic produced to, and its partition as created.
    topic: String,
    parts: Vec<PartitionState>,
    /// The active controller that was killed.
    controller: i32,
    /// All 2000 acknowledgements.
    acks: Vec<Ack>,
    /// The topic created after the kill.
    created: String,
    /// From the kill to the last acknowledgement.
    produced_after: Duration,
    /// From the last acknowledgement to the creation of `created`.
    created_after: Duration,
}

/// Creates a topic `topic_name(prefix)` (1 partition, RF 3, `min.insync.replicas=2`), produces
/// 2000 records to it with an idempotent `acks=all` producer, kills -9 the active controller
/// after 1000 acknowledgements, checks that every send is acknowledged all the same, then creates
/// another topic through the running brokers (retrying while the quorum elects a new leader).
async fn kill_the_controller_while_producing(
    cluster: &mut Cluster,
    prefix: &str,
) -> ControllerKilled {
    let topic = topic_name(prefix);
    let parts = create_replicated_topic(cluster, &topic, 1, "2").await;

    let producer = idempotent_producer(cluster);
    let sent = Arc::new(Sent::default());
    let task = spawn_send_values(&producer, &topic, values("c", 0..2000), 50, &sent);
    sent.wait_for_acks(1000, &task, "before killing the controller")
        .await;
    let controller = cluster.active_controller();
    eprintln!(
        "killing active controller {controller} after {} acks of {topic} ({})",
        sent.acked(),
        Partitions(&parts)
    );
    let killed_at = Instant::now();
    cluster.node(controller).kill9();
    task.await.expect("producing task");
    let produced_at = Instant::now();
    sent.assert_no_failures(&format!(
        "across a kill -9 of the active controller {controller} (acks=all, 60 s message timeout)"
    ));
    let acks = sent.acks.lock().unwrap().clone();
    assert_eq!(
        acks.len(),
        2000,
        "expected one acknowledgement per record sent"
    );

    let created = topic_name(&format!("after-{prefix}"));
    create_topic_within(cluster, &created, CREATE_AFTER_KILL).await;
    ControllerKilled {
        topic,
        parts,
        controller,
        acks,
        created,
        produced_after: produced_at - killed_at,
        created_after: produced_at.elapsed(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn production_continues_when_the_active_controller_is_killed() {
    let mut cluster = start_cluster();
    let killed = kill_the_controller_while_producing(&mut cluster, "controller-kill").await;
    let (topic, controller, created) = (&killed.topic, killed.controller, &killed.created);
    let new_parts = cluster.wait_for_partitions(
        &others(&cluster, controller),
        created,
        WAIT,
        &format!("{created} with a leader other than the killed {controller}"),
        |parts| parts.len() == 1 && parts[0].leader > 0 && parts[0].leader != controller,
    );
    eprintln!(
        "{topic}: all 2000 acked {:?} after the kill; {created} created {:?} after that: {}; \
         the active controller is now {}",
        killed.produced_after,
        killed.created_after,
        Partitions(&new_parts),
        cluster.active_controller()
    );

    cluster.node(controller).restart();
    cluster.wait_for_partitions(
        &cluster.ids(),
        topic,
        WAIT,
        &format!("a full ISR again after node {controller} restarted"),
        full_isr,
    );
    assert_acks_in_log(&cluster, topic, &killed.acks);
}

/// A split-roles cluster: controller-only nodes 1..=3 (the metadata quorum) and broker-only nodes
/// 4..=6, with [`SETTINGS`], all three brokers registered.
fn start_split_cluster() -> Cluster {
    let cluster = Cluster::start_split(3, 3, SETTINGS);
    cluster.wait_for_all_brokers();
    cluster
}

/// Polls Metadata on each of the nodes `on` until they all describe `topics` the same way (leader,
/// epoch, replicas, ISR of every partition) and list the same topics; returns that description.
fn wait_for_agreement(
    cluster: &Cluster,
    on: &[i32],
    topics: &[&str],
) -> BTreeMap<String, Vec<PartitionState>> {
    let deadline = Instant::now() + WAIT;
    loop {
        let views: Vec<(i32, Option<_>)> = on
            .iter()
            .map(|id| {
                let view = metadata(cluster.get(*id)).and_then(|m| {
                    let described: Option<BTreeMap<String, Vec<PartitionState>>> = topics
                        .iter()
                        .map(|t| partitions_of(&m, t).map(|parts| (t.to_string(), parts)))
                        .collect();
                    described.map(|d| (topics_of(&m), d))
                });
                (*id, view)
            })
            .collect();
        let first = &views[0].1;
        if first.is_some() && views.iter().all(|(_, view)| view == first) {
            return first.clone().expect("checked").1;
        }
        if Instant::now() > deadline {
            let described: Vec<String> = views
                .iter()
                .map(|(id, view)| match view {
                    None => format!("node {id}: no answer, or a topic missing"),
                    Some((all, d)) => format!(
                        "node {id}: topics {all:?}; {}",
                        d.iter()
                            .map(|(t, parts)| format!("{t} {}", Partitions(parts)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
                .collect();
            panic!(
                "expected nodes {on:?} to agree on {topics:?} within {WAIT:?}; they answered:\n{}",
                described.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// With controller-only nodes the metadata quorum outlives the brokers, so losing two of three
/// brokers shows what the brokers alone do: the ISR shrinks to the survivor, which refuses
/// `acks=all` below `min.insync.replicas` but still serves every committed record, and the others
/// rejoin once restarted.
#[tokio::test(flavor = "multi_thread")]
async fn two_of_three_brokers_down_refuses_acks_all_but_serves_committed_reads() {
    const NOT_ENOUGH_REPLICAS: i16 = 19;
    let mut cluster = start_split_cluster();
    let topic = topic_name("two-down");
    let parts = create_replicated_topic(&cluster, &topic, 1, "2").await;
    let leader = parts[0].leader;
    let committed = values("d", 0..1000);
    let producer = idempotent_producer(&cluster);
    let sent = Sent::default();
    send_values(&producer, &topic, &committed, 50, &sent).await;
    sent.assert_no_failures("with a full ISR");
    drop(producer);

    let victims: Vec<i32> = parts[0]
        .replicas
        .iter()
        .copied()
        .filter(|r| *r != leader)
        .collect();
    eprintln!(
        "{topic}: {}; killing brokers {victims:?} (active controller {})",
        Partitions(&parts),
        cluster.active_controller()
    );
    let killed_at = Instant::now();
    for victim in &victims {
        cluster.node(*victim).kill9();
    }
    // The controllers fence both after their sessions and drop them from the ISR; the leader must
    // have applied that too before it is asked.
    let mut watchers = cluster.controller_ids();
    watchers.push(leader);
    let parts = cluster.wait_for_partitions(
        &watchers,
        &topic,
        WAIT,
        &format!("ISR [{leader}] (brokers {victims:?} killed)"),
        |parts| parts.len() == 1 && parts[0].leader == leader && parts[0].isr == [leader],
    );
    eprintln!(
        "{topic}: ISR shrank {:?} after the kills: {}",
        killed_at.elapsed(),
        Partitions(&parts)
    );

    let mut conn = RawConn::connect(cluster.get(leader));
    let refused = encode_batch(&(0..3).map(|i| raw_record(i, "refused")).collect::<Vec<_>>());
    let answer = raw_produce(&mut conn, &topic, 0, -1, 5000, refused);
    assert_eq!(
        answer.error_code, NOT_ENOUGH_REPLICAS,
        "expected NOT_ENOUGH_REPLICAS (19) for acks=all with {} and min.insync.replicas=2, got \
         {answer:?}",
        parts[0]
    );
    let log = read_partition(&cluster, &topic, 0, committed.len());
    assert_log_is(
        &log,
        &committed,
        "the 1000 committed records d00000..d00999 at offsets 0..999 and nothing of the refused \
         batch, read from the surviving leader",
    );

    for victim in &victims {
        cluster.node(*victim).restart();
    }
    cluster.wait_for_partitions(
        &cluster.ids(),
        &topic,
        WAIT,
        &format!("a full ISR again after brokers {victims:?} restarted"),
        full_isr,
    );
    let producer = idempotent_producer(&cluster);
    let sent = Sent::default();
    send_values(&producer, &topic, &values("e", 0..100), 50, &sent).await;
    sent.assert_no_failures("with the full ISR back");
    let offsets: Vec<i64> = sent.acks.lock().unwrap().iter().map(|a| a.offset).collect();
    assert_eq!(
        offsets,
        (1000..1100).collect::<Vec<i64>>(),
        "expected the records produced after the restarts right after the committed ones"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn split_roles_cluster_replicates_and_survives_a_controller_loss() {
    let mut cluster = start_split_cluster();
    let killed = kill_the_controller_while_producing(&mut cluster, "split-controller-kill").await;
    let (topic, controller, created) = (&killed.topic, killed.controller, &killed.created);
    let mut replicas = killed.parts[0].replicas.clone();
    replicas.sort_unstable();
    assert_eq!(
        replicas,
        cluster.broker_ids(),
        "expected the replicas to be the three brokers, never a controller-only node: {}",
        killed.parts[0]
    );
    assert_eq!(
        cluster.role(controller),
        Role::Controller,
        "expected the killed active controller {controller} to be a controller-only node"
    );

    let survivors = others(&cluster, controller);
    let agreed = wait_for_agreement(&cluster, &survivors, &[topic, created]);
    let successor = cluster.active_controller();
    eprintln!(
        "{topic}: all 2000 acked {:?} after the kill; {created} created {:?} after that; the \
         active controller is now {successor}; nodes {survivors:?} agree on {agreed:?}",
        killed.produced_after, killed.created_after,
    );
    assert!(
        successor != controller && cluster.role(successor) == Role::Controller,
        "expected another controller-only node to take over from {controller}, not {successor}"
    );
    assert!(
        agreed[created].len() == 1 && agreed[created][0].leader > 0,
        "expected {created} to have a leader: {}",
        Partitions(&agreed[created])
    );

    // The old controller comes back (started once it has caught up) and agrees as well.
    cluster.node(controller).restart();
    wait_for_agreement(&cluster, &cluster.ids(), &[topic, created]);
    assert_acks_in_log(&cluster, topic, &killed.acks);
}
