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
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::{Cluster, PartitionState, Partitions};
use common::replication::{
    assert_acks_in_log, assert_log_is, create_replicated_topic, full_isr, idempotent_producer,
    others, read_partition, send_values, spawn_send_values, start_cluster, values, Sent, WAIT,
};
use common::{encode_batch, raw_produce, raw_record, topic_name, RawConn};

const NONE: i16 = 0;
const NOT_ENOUGH_REPLICAS: i16 = 19;

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

/// One v2 batch of `n` records without a producer id (not idempotent).
fn batch(n: usize, tag: &str) -> Bytes {
    encode_batch(&(0..n).map(|i| raw_record(i, tag)).collect::<Vec<_>>())
}

/// A raw Produce of one batch to partition 0; returns (error code, base offset, error message).
fn produce(
    conn: &mut RawConn,
    topic: &str,
    acks: i16,
    records: Bytes,
) -> (i16, i64, Option<String>) {
    let p = raw_produce(conn, topic, 0, acks, 5000, records);
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
    let parts = create_replicated_topic(&cluster, &topic, 3, "2").await;
    eprintln!("{topic}: {}", Partitions(&parts));
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_records_survive_kill_9_of_the_leader() {
    let mut cluster = start_cluster();
    let topic = topic_name("survive");
    let parts = create_replicated_topic(&cluster, &topic, 1, "2").await;
    let leader = parts[0].leader;

    let producer = idempotent_producer(&cluster);
    let sent = Arc::new(Sent::default());
    let task = spawn_send_values(&producer, &topic, values("v", 0..2000), 50, &sent);
    // Kill the leader in the middle of the stream: with a window of 50, some records are in
    // flight (appended by the leader or not yet) when it dies.
    sent.wait_for_acks(1000, &task, "before killing the leader")
        .await;
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
    let parts = create_replicated_topic(&cluster, &topic, 1, "2").await;
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
    assert_log_is(
        &log,
        &values("r", 0..1000),
        "r00000..r00999 at offsets 0..999",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn acks_all_is_refused_with_not_enough_replicas() {
    let mut cluster = start_cluster();
    let topic = topic_name("min-isr");
    let parts = create_replicated_topic(&cluster, &topic, 1, "3").await;
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
    let (code, _, message) = produce(&mut conn, &topic, -1, batch(3, "refused"));
    assert_eq!(
        code, NOT_ENOUGH_REPLICAS,
        "expected NOT_ENOUGH_REPLICAS (19) for acks=all with {} and min.insync.replicas=3, got \
         error {code} ({message:?})",
        parts[0]
    );
    let (code, base_offset, message) = produce(&mut conn, &topic, 1, batch(3, "accepted"));
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
    let parts = create_replicated_topic(&cluster, &topic, 1, "2").await;
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
    sent.wait_for_acks(50, &task, "with a full ISR").await;

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
