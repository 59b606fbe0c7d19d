//! A 3-node cluster of combined broker+controller processes on loopback: the metadata quorum (openraft)
//! replicates topics to every node, survives the loss of its leader (another controller takes over and
//! topic creation keeps working, the restarted node catches up), brokers register and are listed by every
//! node, admin requests sent to any broker reach the active controller, and a broker killed with -9 is
//! fenced after `broker.session.timeout.ms` and comes back when restarted. With split roles, DescribeQuorum
//! sent to a broker-only node describes the quorum as its leader sees it, before and after that leader dies.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::{
    admin, brokers_of, create_topic, metadata, topics_of, wait_for_metadata, Cluster, SESSION_MS,
    WAIT,
};
use common::{topic_name, RawConn};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{describe_quorum_request, describe_quorum_response};
use kafka_protocol::messages::{
    DescribeQuorumRequest, DescribeQuorumResponse, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

#[tokio::test(flavor = "multi_thread")]
async fn quorum_replicates_metadata_and_survives_the_loss_of_its_leader() {
    let mut cluster = Cluster::start(3);
    for node in &cluster.nodes {
        wait_for_metadata(node, "all three brokers", |m| {
            brokers_of(m) == BTreeSet::from([1, 2, 3])
        });
    }

    // Created through one node, visible on every node, placed over all three brokers.
    let topic = topic_name("temperature");
    create_topic(&cluster.nodes[1].bootstrap(), &topic, 3, 3, &[]).await;
    for node in &cluster.nodes {
        let m = wait_for_metadata(node, "the new topic", |m| topics_of(m).contains(&topic));
        let t = m
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic.as_str()))
            .expect("topic");
        let leaders: BTreeSet<i32> = t.partitions.iter().map(|p| p.leader_id.0).collect();
        assert_eq!(
            leaders,
            BTreeSet::from([1, 2, 3]),
            "one leader per broker: {t:?}"
        );
        for p in &t.partitions {
            let replicas: BTreeSet<i32> = p.replica_nodes.iter().map(|r| r.0).collect();
            assert_eq!(replicas, BTreeSet::from([1, 2, 3]), "{p:?}");
            assert!(
                p.isr_nodes.iter().any(|r| r.0 == p.leader_id.0),
                "leader in ISR: {p:?}"
            );
        }
    }

    // A broker that does not lead a partition says so and names the leader (KIP-951).
    let m = metadata(&cluster.nodes[0]).expect("metadata");
    let t = m
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic.as_str()))
        .expect("topic");
    let p = &t.partitions[0];
    let (leader, epoch) = (p.leader_id.0, p.leader_epoch);
    let other = (1..=3).find(|id| *id != leader).expect("another broker");
    let mut conn = RawConn::connect(&cluster.nodes[(other - 1) as usize]);
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.clone())))
            .with_partition_data(
                vec![PartitionProduceData::default().with_index(0)],
            )]);
    let response = conn.request(11, &request).expect("Produce");
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, 6, "NOT_LEADER_OR_FOLLOWER: {answer:?}");
    assert_eq!(
        (
            answer.current_leader.leader_id.0,
            answer.current_leader.leader_epoch
        ),
        (leader, epoch)
    );
    let endpoint = response
        .node_endpoints
        .iter()
        .find(|e| e.node_id.0 == leader)
        .expect("the leader's endpoint");
    assert_eq!(
        endpoint.port,
        i32::from(cluster.nodes[(leader - 1) as usize].port)
    );

    // Records go to each partition's leader through any bootstrap server.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("acks", "1")
        .create()
        .expect("producer");
    for partition in 0..3 {
        producer
            .send(
                FutureRecord::<(), str>::to(&topic)
                    .partition(partition)
                    .payload("reading"),
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce to partition {partition}: {e}"));
    }

    // Kill the active controller: another one takes over and creation keeps working.
    let controller = cluster.active_controller();
    cluster.node(controller).kill9();
    let survivor = cluster
        .nodes
        .iter()
        .position(|n| n.port != cluster.nodes[(controller - 1) as usize].port)
        .expect("a survivor");
    let survivor_bootstrap = cluster.nodes[survivor].bootstrap();
    let after = topic_name("after-controller-loss");
    let deadline = Instant::now() + WAIT;
    loop {
        let results = admin(&survivor_bootstrap)
            .create_topics(
                &[NewTopic::new(&after, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new()
                    .operation_timeout(Some(Duration::from_secs(10)))
                    .request_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .map_err(|e| e.to_string())
            .and_then(|mut r| r.remove(0).map_err(|(_, e)| e.to_string()));
        match results {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("create after controller loss: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("no topic creation after losing the controller: {e}"),
        }
    }
    let successor = cluster.active_controller();
    assert_ne!(successor, controller, "a new active controller");

    // The old controller comes back and catches up from the log.
    cluster.node(controller).restart();
    wait_for_metadata(
        &cluster.nodes[(controller - 1) as usize],
        "the topic created while it was down",
        |m| topics_of(m).contains(&after) && brokers_of(m) == BTreeSet::from([1, 2, 3]),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_broker_is_fenced_after_its_session_and_returns_on_restart() {
    let mut cluster = Cluster::start(3);
    for node in &cluster.nodes {
        wait_for_metadata(node, "all three brokers", |m| {
            brokers_of(m) == BTreeSet::from([1, 2, 3])
        });
    }
    let topic = topic_name("fencing");
    create_topic(&cluster.nodes[0].bootstrap(), &topic, 3, 1, &[]).await;
    let controller = cluster.active_controller();
    // A broker that is not the active controller, so the quorum keeps its leader.
    let victim = (1..=3).find(|id| *id != controller).expect("victim");
    let watcher = (1..=3).find(|id| *id != victim).expect("watcher");
    let killed_at = Instant::now();
    cluster.node(victim).kill9();
    let m = wait_for_metadata(
        &cluster.nodes[(watcher - 1) as usize],
        "the killed broker fenced",
        |m| !brokers_of(m).contains(&victim),
    );
    let fenced_after = killed_at.elapsed();
    assert!(
        fenced_after < Duration::from_millis(SESSION_MS) + Duration::from_secs(5),
        "fenced only after {fenced_after:?}"
    );
    // Its only replica is gone, so its partition has no leader (no unclean election).
    let t = m
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic.as_str()))
        .expect("topic");
    let orphan = t
        .partitions
        .iter()
        .find(|p| p.replica_nodes.iter().any(|r| r.0 == victim))
        .expect("a partition on the victim");
    assert_eq!(orphan.leader_id.0, -1, "{orphan:?}");

    cluster.node(victim).restart();
    wait_for_metadata(
        &cluster.nodes[(watcher - 1) as usize],
        "the broker back with its partition",
        |m| {
            brokers_of(m).contains(&victim)
                && m.topics.iter().any(|t| {
                    t.name.as_ref().map(|n| n.as_str()) == Some(topic.as_str())
                        && t.partitions.iter().all(|p| p.leader_id.0 > 0)
                })
        },
    );
}

/// The metadata partition as DescribeQuorum names it.
const METADATA_TOPIC: &str = "__cluster_metadata";

fn describe_quorum_request(topic: &str, partition: i32) -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default(
    )
    .with_topic_name(TopicName(StrBytes::from_string(topic.to_string())))
    .with_partitions(vec![
        describe_quorum_request::PartitionData::default().with_partition_index(partition)
    ])])
}

/// One DescribeQuorum for the metadata partition, on a fresh connection to `node`.
fn describe_quorum(node: &common::Broker, version: i16) -> anyhow::Result<DescribeQuorumResponse> {
    RawConn::connect(node).request(version, &describe_quorum_request(METADATA_TOPIC, 0))
}

/// The single partition of a DescribeQuorum answer (the metadata partition).
fn quorum_partition(r: &DescribeQuorumResponse) -> &describe_quorum_response::PartitionData {
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.topics.len(), 1, "{r:?}");
    assert_eq!(r.topics[0].topic_name.as_str(), METADATA_TOPIC, "{r:?}");
    assert_eq!(r.topics[0].partitions.len(), 1, "{r:?}");
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.partition_index, 0, "{r:?}");
    p
}

/// Polls DescribeQuorum on `node` until `check` holds for an error-free answer, within `WAIT`;
/// panics with the last answer otherwise.
fn wait_for_quorum(
    node: &common::Broker,
    version: i16,
    what: &str,
    check: impl Fn(&describe_quorum_response::PartitionData) -> bool,
) -> DescribeQuorumResponse {
    let deadline = Instant::now() + WAIT;
    let mut last;
    loop {
        match describe_quorum(node, version) {
            Ok(r) => {
                let ok = r.error_code == 0
                    && r.topics.len() == 1
                    && r.topics[0].partitions.len() == 1
                    && r.topics[0].partitions[0].error_code == 0;
                if ok && check(&r.topics[0].partitions[0]) {
                    return r;
                }
                last = format!("{r:?}");
            }
            Err(e) => last = format!("error: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "DescribeQuorum never showed {what}; last answer: {last}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// DescribeQuorum (KIP-595/KIP-853) sent to a broker-only node is answered by the active controller:
/// the three controllers are the voters (with their log end offsets and, in v2, their controller
/// listeners), the broker-only node is an observer, and after the leader is killed a new leader with a
/// higher epoch answers.
#[test]
fn describe_quorum_through_a_broker_names_leader_voters_and_observers() {
    let mut cluster = Cluster::start_split(3, 1, &[]);
    let (controllers, broker) = (cluster.controller_ids(), 4);
    assert_eq!(controllers, vec![1, 2, 3]);
    assert_eq!(cluster.broker_ids(), vec![broker]);

    // Once the broker follows the metadata log, every replica has a log end offset.
    let r = wait_for_quorum(
        cluster.get(broker),
        2,
        "three caught-up voters and the broker as an observer",
        |p| {
            p.current_voters.len() == 3
                && p.current_voters.iter().all(|v| v.log_end_offset > 0)
                && p.observers
                    .iter()
                    .any(|o| o.replica_id.0 == broker && o.log_end_offset > 0)
        },
    );
    let p = quorum_partition(&r);
    let leader = p.leader_id.0;
    assert_eq!(leader, cluster.active_controller(), "{r:?}");
    assert!(p.leader_epoch > 0, "{r:?}");
    assert!(p.high_watermark > 0, "{r:?}");
    let voters: BTreeSet<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
    assert_eq!(voters, BTreeSet::from([1, 2, 3]), "{r:?}");
    for v in &p.current_voters {
        // Entries in flight may put a replica a little past the committed offset, never far.
        assert!(
            v.log_end_offset > 0 && v.log_end_offset <= p.high_watermark + 10,
            "voter {v:?} against high watermark {}",
            p.high_watermark
        );
        assert!(v.replica_directory_id.is_nil(), "{v:?}");
    }
    let leader_state = p
        .current_voters
        .iter()
        .find(|v| v.replica_id.0 == leader)
        .expect("the leader among the voters");
    assert!(
        leader_state.log_end_offset >= p.high_watermark,
        "the leader holds everything committed: {r:?}"
    );
    // Kafka reports the leader's own timestamps as the current time.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    assert!(
        (now_ms - 60_000..=now_ms).contains(&leader_state.last_fetch_timestamp)
            && (now_ms - 60_000..=now_ms).contains(&leader_state.last_caught_up_timestamp),
        "leader timestamps near {now_ms}: {leader_state:?}"
    );
    let observers: Vec<i32> = p.observers.iter().map(|o| o.replica_id.0).collect();
    assert_eq!(observers, vec![broker], "{r:?}");
    // v2: each voter with its controller listener.
    let nodes: BTreeSet<(i32, String, String, u16)> = r
        .nodes
        .iter()
        .flat_map(|n| {
            n.listeners
                .iter()
                .map(move |l| (n.node_id.0, l.name.to_string(), l.host.to_string(), l.port))
        })
        .collect();
    let expected: BTreeSet<(i32, String, String, u16)> = controllers
        .iter()
        .map(|id| {
            (
                *id,
                "CONTROLLER".to_string(),
                "127.0.0.1".to_string(),
                cluster.get(*id).port,
            )
        })
        .collect();
    assert_eq!(nodes, expected, "{r:?}");

    // v0 has neither timestamps nor nodes; the same leader answers.
    let r0 = describe_quorum(cluster.get(broker), 0).expect("DescribeQuorum v0");
    let p0 = quorum_partition(&r0);
    assert_eq!(p0.leader_id.0, leader, "{r0:?}");
    assert!(r0.nodes.is_empty(), "{r0:?}");
    assert!(
        p0.current_voters
            .iter()
            .all(|v| v.last_fetch_timestamp == -1),
        "{r0:?}"
    );

    // Another partition is unknown (UNKNOWN_TOPIC_OR_PARTITION, echoed per partition).
    let wrong = RawConn::connect(cluster.get(broker))
        .request(2, &describe_quorum_request(METADATA_TOPIC, 1))
        .expect("DescribeQuorum for partition 1");
    assert_eq!(wrong.topics.len(), 1, "{wrong:?}");
    let wp = &wrong.topics[0].partitions[0];
    assert_eq!((wp.partition_index, wp.error_code), (1, 3), "{wrong:?}");

    // A controller that is not the leader answers NOT_LEADER_OR_FOLLOWER on its controller listener.
    let follower = *controllers
        .iter()
        .find(|id| **id != leader)
        .expect("a follower");
    let fr = describe_quorum(cluster.get(follower), 2).expect("DescribeQuorum to a follower");
    let fp = &fr.topics[0].partitions[0];
    assert_eq!((fp.partition_index, fp.error_code), (0, 6), "{fr:?}");

    // Kill the leader: a new one, in a later epoch, answers through the broker.
    let old_epoch = p.leader_epoch;
    cluster.node(leader).kill9();
    let r = wait_for_quorum(cluster.get(broker), 2, "a new leader", |p| {
        p.leader_id.0 != leader && p.leader_id.0 > 0
    });
    let p = quorum_partition(&r);
    assert!(
        controllers.contains(&p.leader_id.0),
        "the new leader is a controller: {r:?}"
    );
    assert!(
        p.leader_epoch > old_epoch,
        "epoch {} after {old_epoch}: {r:?}",
        p.leader_epoch
    );
    let voters: BTreeSet<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
    assert_eq!(
        voters,
        BTreeSet::from([1, 2, 3]),
        "the dead voter stays a voter: {r:?}"
    );
    assert_eq!(
        p.observers
            .iter()
            .map(|o| o.replica_id.0)
            .collect::<Vec<_>>(),
        vec![broker],
        "{r:?}"
    );
}
