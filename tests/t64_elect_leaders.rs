//! Preferred leader election on a 3-node cluster of combined broker+controller processes on
//! loopback. What is proven, end to end:
//!
//! - after a kill -9 of a node moved its preferred leaderships to other replicas and the node came
//!   back into every ISR, an ElectLeaders request (v2, preferred, all partitions) sent to any node
//!   (forwarded to the active controller) answers NONE or ELECTION_NOT_NEEDED for every
//!   partition and gives every partition its preferred replica (the first one) as leader again;
//!   asking again for the named partitions answers ELECTION_NOT_NEEDED for each;
//! - with `auto.leader.rebalance.enable=true` and a 2 s `leader.imbalance.check.interval.seconds`,
//!   the leaderships go back to the preferred replicas by themselves.
//!
//! rdkafka's AdminClient has no ElectLeaders, so the request is sent raw. Each test starts its
//! own cluster; waits are generous and nothing is asserted about speed.

mod common;

use common::cluster::{create_topic, Cluster, PartitionState, Partitions};
use common::replication::{self, SETTINGS, WAIT};
use common::{topic_name, RawConn};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

const NONE: i16 = 0;
const ELECTION_NOT_NEEDED: i16 = 84;

/// Three partitions, each with a leader and all three replicas in its ISR.
fn full_isr(parts: &[PartitionState]) -> bool {
    parts.len() == 3 && replication::full_isr(parts)
}

/// Every partition is led by its preferred replica.
fn preferred_leaders(parts: &[PartitionState]) -> bool {
    parts.len() == 3 && parts.iter().all(|p| p.replicas.first() == Some(&p.leader))
}

/// Starts a cluster with `extra` settings, creates a 3-partition RF 3 topic, waits for full ISRs
/// with preferred leaders, kills -9 a node that is not the active controller, waits until its
/// leaderships moved, restarts it and waits until it is back in every ISR. Returns the cluster,
/// the topic and the restarted node.
async fn cluster_after_failover(extra: &[(&str, &str)]) -> (Cluster, String, i32) {
    let settings: Vec<(&str, &str)> = SETTINGS.iter().chain(extra).copied().collect();
    let mut cluster = Cluster::start_with(3, &settings);
    cluster.wait_for_all_brokers();
    let topic = topic_name("elect");
    create_topic(&cluster.bootstrap(), &topic, 3, 3, &[]).await;
    let parts = cluster.wait_for_partitions(
        &cluster.ids(),
        &topic,
        WAIT,
        "3 partitions with ISR [1, 2, 3] led by their preferred replicas",
        |parts| full_isr(parts) && preferred_leaders(parts),
    );
    eprintln!("{topic}: {}", Partitions(&parts));
    let controller = cluster.active_controller();
    let victim = cluster
        .ids()
        .into_iter()
        .find(|id| *id != controller && parts.iter().any(|p| p.leader == *id))
        .expect("a node leading a partition that is not the active controller");
    eprintln!("killing node {victim} (active controller: {controller})");
    cluster.node(victim).kill9();
    let others: Vec<i32> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != victim)
        .collect();
    let parts = cluster.wait_for_partitions(
        &others,
        &topic,
        WAIT,
        &format!("every partition led by a node other than {victim}"),
        |parts| parts.len() == 3 && parts.iter().all(|p| p.leader > 0 && p.leader != victim),
    );
    eprintln!("after the kill: {}", Partitions(&parts));
    cluster.node(victim).restart();
    cluster.node(victim).wait_ready();
    let parts = cluster.wait_for_partitions(
        &cluster.ids(),
        &topic,
        WAIT,
        &format!("node {victim} back in every ISR"),
        full_isr,
    );
    eprintln!("after the restart: {}", Partitions(&parts));
    (cluster, topic, victim)
}

fn elect(
    cluster: &Cluster,
    via: i32,
    version: i16,
    partitions: Option<Vec<TopicPartitions>>,
) -> ElectLeadersResponse {
    let mut conn = RawConn::connect(cluster.get(via));
    conn.request(
        version,
        &ElectLeadersRequest::default()
            .with_election_type(0)
            .with_topic_partitions(partitions)
            .with_timeout_ms(30_000),
    )
    .expect("ElectLeaders")
}

/// `topic`'s (partition, error code) pairs in `response`, sorted.
fn results_for(response: &ElectLeadersResponse, topic: &str) -> Vec<(i32, i16)> {
    let mut results: Vec<(i32, i16)> = response
        .replica_election_results
        .iter()
        .filter(|t| t.topic.as_str() == topic)
        .flat_map(|t| {
            t.partition_result
                .iter()
                .map(|p| (p.partition_id, p.error_code))
        })
        .collect();
    results.sort_unstable();
    results
}

#[tokio::test(flavor = "multi_thread")]
async fn elect_leaders_moves_leadership_back_to_preferred_replicas() {
    let (cluster, topic, victim) =
        cluster_after_failover(&[("auto.leader.rebalance.enable", "false")]).await;
    let parts = cluster.wait_for_partitions(
        &cluster.ids(),
        &topic,
        WAIT,
        "the same view on every node",
        full_isr,
    );
    assert!(
        parts
            .iter()
            .any(|p| p.replicas[0] == victim && p.leader != victim),
        "expected node {victim} to have lost a preferred leadership: {}",
        Partitions(&parts)
    );

    // Preferred election for all partitions (null topic list), sent to the restarted node, which
    // forwards it to the active controller unless it is that controller.
    let response = elect(&cluster, victim, 2, None);
    assert_eq!(response.error_code, NONE, "{response:?}");
    let results = results_for(&response, &topic);
    assert!(
        results
            .iter()
            .all(|(_, code)| *code == NONE || *code == ELECTION_NOT_NEEDED),
        "expected NONE or ELECTION_NOT_NEEDED for every partition: {results:?}"
    );
    assert!(
        results.iter().any(|(_, code)| *code == NONE),
        "expected at least one election: {results:?}"
    );
    let after = cluster.wait_for_partitions(
        &cluster.ids(),
        &topic,
        WAIT,
        "every partition led by its preferred replica",
        |parts| full_isr(parts) && preferred_leaders(parts),
    );
    eprintln!("after ElectLeaders: {}", Partitions(&after));
    for (before, now) in parts.iter().zip(&after) {
        if before.leader != now.leader {
            assert!(
                now.leader_epoch > before.leader_epoch,
                "a new leader comes with a new leader epoch: {before} -> {now}"
            );
        }
    }

    // Named partitions, at v1 and through another node: nothing left to do.
    let via = cluster
        .ids()
        .into_iter()
        .find(|id| *id != victim)
        .expect("another node");
    let named = vec![TopicPartitions::default()
        .with_topic(TopicName(StrBytes::from_string(topic.clone())))
        .with_partitions(vec![0, 1, 2])];
    let response = elect(&cluster, via, 1, Some(named));
    assert_eq!(response.error_code, NONE, "{response:?}");
    assert_eq!(
        results_for(&response, &topic),
        vec![
            (0, ELECTION_NOT_NEEDED),
            (1, ELECTION_NOT_NEEDED),
            (2, ELECTION_NOT_NEEDED)
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_leader_rebalance_restores_preferred_leaders() {
    let (cluster, topic, victim) = cluster_after_failover(&[
        ("auto.leader.rebalance.enable", "true"),
        ("leader.imbalance.check.interval.seconds", "2"),
    ])
    .await;
    let after = cluster.wait_for_partitions(
        &cluster.ids(),
        &topic,
        WAIT,
        "every partition led by its preferred replica again, without a request",
        |parts| full_isr(parts) && preferred_leaders(parts),
    );
    eprintln!("after the rebalance: {}", Partitions(&after));
    assert!(
        after.iter().any(|p| p.leader == victim),
        "node {victim} leads its preferred partitions again: {}",
        Partitions(&after)
    );
}
