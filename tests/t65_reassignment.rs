//! Partition reassignment on a 3-node cluster (AlterPartitionReassignments / ListPartitionReassignments):
//! a partition with data moves to another set of brokers, the new replica copies the log from the leader
//! and joins the ISR, which completes the reassignment; a leader that is moved off hands over, the
//! removed replica's log is deleted, and every record is still there, in order, at its offset.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{create_topic, metadata, partitions_of, Cluster, PartitionState};
use common::{consume_all, consumer, producer, topic_name, RawConn};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;

const RECORDS: usize = 500;
const WAIT: Duration = Duration::from_secs(60);

fn reassign(
    conn: &mut RawConn,
    topic: &str,
    target: Option<Vec<i32>>,
) -> AlterPartitionReassignmentsResponse {
    let request = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(
                    target.map(|t| t.into_iter().map(BrokerId).collect()),
                )])]);
    conn.request(0, &request)
        .expect("AlterPartitionReassignments")
}

fn ongoing(conn: &mut RawConn) -> ListPartitionReassignmentsResponse {
    conn.request(
        0,
        &ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000),
    )
    .expect("ListPartitionReassignments")
}

fn partition_on(cluster: &Cluster, id: i32, topic: &str) -> Option<PartitionState> {
    metadata(cluster.get(id))
        .and_then(|m| partitions_of(&m, topic))
        .and_then(|p| p.into_iter().next())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_moves_to_other_brokers_with_its_data() {
    let cluster = Cluster::start_with(3, &[]);
    cluster.wait_for_all_brokers();
    let topic = topic_name("reassign");
    create_topic(
        &cluster.bootstrap(),
        &topic,
        1,
        2,
        &[("min.insync.replicas", "1")],
    )
    .await;
    let parts =
        cluster.wait_for_partitions(&[1], &topic, WAIT, "a full ISR", |p| p[0].isr.len() == 2);
    let before = parts[0].clone();
    let leader = before.leader;
    let outsider = cluster
        .ids()
        .into_iter()
        .find(|id| !before.replicas.contains(id))
        .expect("a broker without a replica");
    let follower = *before
        .replicas
        .iter()
        .find(|r| **r != leader)
        .expect("a follower");
    let producer = producer(cluster.get(leader), &[("acks", "all")]);
    for i in 0..RECORDS {
        let value = format!("value-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(&topic)
                    .partition(0)
                    .payload(&value),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce {i}: {e}"));
    }
    let dir = cluster.get(leader).data_dir().join(format!("{topic}-0"));
    assert!(dir.is_dir(), "the leader's log is at {}", dir.display());
    // Move the leader's replica to the broker that had none: [outsider, follower].
    let target = vec![outsider, follower];
    let mut conn = RawConn::connect(cluster.get(follower));
    let response = reassign(&mut conn, &topic, Some(target.clone()));
    assert_eq!(response.error_code, 0, "{response:?}");
    let code = response.responses[0].partitions[0].error_code;
    assert_eq!(code, 0, "reassignment refused: {response:?}");
    // It completes by itself once the new replica has copied the log and joined the ISR.
    let deadline = Instant::now() + WAIT;
    loop {
        let done = ongoing(&mut conn).topics.is_empty();
        let state = partition_on(&cluster, follower, &topic);
        if done
            && state
                .as_ref()
                .is_some_and(|p| p.replicas == target && p.isr.len() == 2)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reassignment to {target:?} not complete within {WAIT:?}: {state:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let after =
        cluster.wait_for_partitions(&cluster.ids(), &topic, WAIT, "the new replicas", |p| {
            p[0].replicas == target && p[0].leader >= 0 && target.contains(&p[0].leader)
        });
    assert!(
        after[0].leader_epoch > before.leader_epoch,
        "the moved-off leader handed over under a new epoch: {} -> {}",
        before.leader_epoch,
        after[0].leader_epoch
    );
    // Every record is on the new leader, in order, at its offset.
    let reader = consumer(cluster.get(after[0].leader), &[]);
    let messages = consume_all(&reader, &topic, 0, RECORDS, WAIT);
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload(), Some(format!("value-{i}").as_bytes()));
    }
    // The removed replica's log is gone from the old leader's disk.
    let deadline = Instant::now() + WAIT;
    while dir.exists() {
        assert!(Instant::now() < deadline, "{} still exists", dir.display());
        std::thread::sleep(Duration::from_millis(250));
    }
    // Nothing in progress: cancelling is refused with NO_REASSIGNMENT_IN_PROGRESS.
    let response = reassign(&mut conn, &topic, None);
    assert_eq!(response.responses[0].partitions[0].error_code, 85);
}
