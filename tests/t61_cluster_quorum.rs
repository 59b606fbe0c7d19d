//! A 3-node cluster of combined broker+controller processes on loopback: the metadata quorum (openraft)
//! replicates topics to every node, survives the loss of its leader (another controller takes over and
//! topic creation keeps working, the restarted node catches up), brokers register and are listed by every
//! node, admin requests sent to any broker reach the active controller, and a broker killed with -9 is
//! fenced after `broker.session.timeout.ms` and comes back when restarted.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::{
    admin, brokers_of, create_topic, metadata, topics_of, wait_for_metadata, Cluster, SESSION_MS,
    WAIT,
};
use common::{topic_name, RawConn};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
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
