//! DescribeQuorum (key 55, v0-v2; KIP-595, KIP-853): the state of the metadata quorum, as its leader (the
//! active controller) sees it.
//!
//! Kafka's semantics (`KafkaRaftClient.handleDescribeQuorumRequest`): the request must name exactly
//! `__cluster_metadata` partition 0, or every partition it names is answered with
//! UNKNOWN_TOPIC_OR_PARTITION; a node that is not the Raft leader answers that partition with
//! NOT_LEADER_OR_FOLLOWER (a broker relays the request to the active controller first, see
//! `dispatch::FORWARDED_TO_CONTROLLER`, so a client only sees that while leadership moves).
//!
//! Openraft's voters are Kafka's voters (the controllers); its learners are Kafka's observers (broker-only
//! nodes, which follow the metadata log as learners, and any controller not yet promoted to voter).
//!
//! Field mapping. An openraft log index `i` is Kafka offset `i` (openraft's first entry, the initial
//! membership, has index 0, as Kafka's first offset is 0), so an end offset is "last index + 1":
//! - `leader_id`: this node; `leader_epoch`: the Raft term.
//! - `high_watermark`: the leader's committed index + 1, or -1 when nothing is known to be committed.
//! - `log_end_offset`: for the leader, its last log index + 1 (appended, as Kafka's leader reports its log
//!   end); for every other replica, the index the leader knows it to match + 1, or -1 when unknown
//!   (openraft's replication progress, known on the leader only).
//! - `last_fetch_timestamp` / `last_caught_up_timestamp` (v1+): the current time for the leader itself, as
//!   Kafka reports it; -1 ("unknown") for every other replica, because openraft 0.9 keeps no per-replica
//!   acknowledgement times (only `millis_since_quorum_ack` for the quorum as a whole).
//! - `replica_directory_id` (v2): the zero UUID (Kafka's NO_DIRECTORY_ID); Kavka has no directory ids.
//! - `nodes` (v2): each voter with one listener, named after the first of `controller.listener.names`,
//!   at the voter's `controller.quorum.voters` address. A voter without an address (the single-node
//!   default, which has no controller listener) is listed without listeners.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};

use super::str_bytes;
use crate::controller::quorum::MetadataQuorum;
use crate::controller::raft::ControllerNode;
use crate::dispatch::RequestContext;
use crate::security::acl::AclOperation;
use crate::security::authz::Authz;
use crate::server::Broker;

/// The metadata log's topic, as Kafka names it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// The metadata log's only partition.
pub const METADATA_PARTITION: i32 = 0;

/// What the Raft leader knows of its quorum, in openraft's terms (log indexes, u64 node ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumView {
    /// This node, the leader.
    pub leader_id: u64,
    pub term: u64,
    /// The highest committed log index, if any.
    pub committed_index: Option<u64>,
    /// The leader's last appended log index, if any.
    pub leader_last_index: Option<u64>,
    /// Every voter (the leader among them) with its controller endpoint, if the membership has one.
    pub voters: Vec<(u64, Option<ControllerNode>)>,
    /// The learners (Kafka's observers).
    pub learners: Vec<u64>,
    /// The highest log index each other replica is known to hold (the leader's replication progress).
    pub matched: BTreeMap<u64, Option<u64>>,
    /// Wall clock, milliseconds since the Unix epoch.
    pub now_ms: i64,
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    // As Kafka's ControllerApis.handleDescribeQuorum, before looking at the request.
    if !Authz::new(broker, ctx).allows_cluster(AclOperation::Describe) {
        return DescribeQuorumResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(None);
    }
    if !names_metadata_partition(&request) {
        return partition_errors(&request, ResponseError::UnknownTopicOrPartition);
    }
    match leader_view(&broker.quorum).await {
        Some(view) => answer(
            &view,
            ctx.api_version,
            broker
                .config
                .controller_listener_names
                .first()
                .map(String::as_str),
        ),
        None => not_leader(),
    }
}

/// Whether the request names exactly `__cluster_metadata` partition 0 (Kafka's `hasValidTopicPartition`).
fn names_metadata_partition(request: &DescribeQuorumRequest) -> bool {
    match request.topics.as_slice() {
        [topic] => {
            topic.topic_name.as_str() == METADATA_TOPIC
                && matches!(topic.partitions.as_slice(), [p] if p.partition_index == METADATA_PARTITION)
        }
        _ => false,
    }
}

/// Every requested partition answered with `error` (Kafka's `getPartitionLevelErrorResponse`).
fn partition_errors(
    request: &DescribeQuorumRequest,
    error: ResponseError,
) -> DescribeQuorumResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            TopicData::default()
                .with_topic_name(t.topic_name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error.code())
                                .with_error_message(None)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_error_message(None)
        .with_topics(topics)
}

/// The metadata partition answered with NOT_LEADER_OR_FOLLOWER (Kafka's `singletonErrorResponse`).
fn not_leader() -> DescribeQuorumResponse {
    DescribeQuorumResponse::default()
        .with_error_message(None)
        .with_topics(vec![metadata_topic(
            PartitionData::default()
                .with_partition_index(METADATA_PARTITION)
                .with_error_code(ResponseError::NotLeaderOrFollower.code())
                .with_error_message(None),
        )])
}

fn metadata_topic(partition: PartitionData) -> TopicData {
    TopicData::default()
        .with_topic_name(TopicName(str_bytes(METADATA_TOPIC)))
        .with_partitions(vec![partition])
}

/// The quorum as this node sees it, if it leads it.
async fn leader_view(quorum: &MetadataQuorum) -> Option<QuorumView> {
    let raft = quorum.raft();
    let node_id = quorum.node_id();
    if raft.metrics().borrow().current_leader != Some(node_id) {
        return None;
    }
    // Openraft 0.9's metrics carry no committed index; its RaftState does. Read it before the metrics
    // below, so that the high watermark never runs ahead of the leader's log end in one answer.
    let committed_index = raft
        .with_raft_state(|st| st.committed.map(|id| id.index))
        .await
        .ok()?;
    let metrics = raft.metrics().borrow().clone();
    if metrics.current_leader != Some(node_id) || !metrics.state.is_leader() {
        return None;
    }
    let membership = metrics.membership_config.membership();
    let voters = membership
        .voter_ids()
        .map(|id| (id, membership.get_node(&id).cloned()))
        .collect();
    let learners = membership.learner_ids().collect();
    let matched = metrics
        .replication
        .as_ref()?
        .iter()
        .map(|(id, log_id)| (*id, log_id.as_ref().map(|l| l.index)))
        .collect();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(-1);
    Some(QuorumView {
        leader_id: node_id,
        term: metrics.current_term,
        committed_index,
        leader_last_index: metrics.last_log_index,
        voters,
        learners,
        matched,
        now_ms,
    })
}

/// The Kafka offset just past log index `index` ("end offset"), or -1 when the index is unknown.
fn offset_after(index: Option<u64>) -> i64 {
    index.map_or(-1, |i| {
        i64::try_from(i.saturating_add(1)).unwrap_or(i64::MAX)
    })
}

fn broker_id(id: u64) -> BrokerId {
    // Node ids come from `node.id`, an int32.
    BrokerId(i32::try_from(id).unwrap_or(-1))
}

/// The DescribeQuorum answer at `version` for what the leader knows; `listener` names the voters'
/// endpoints (the first of `controller.listener.names`).
pub fn answer(view: &QuorumView, version: i16, listener: Option<&str>) -> DescribeQuorumResponse {
    let replica = |id: u64| {
        let (end, timestamp) = if id == view.leader_id {
            (offset_after(view.leader_last_index), view.now_ms)
        } else {
            let matched = view.matched.get(&id).copied().flatten();
            (offset_after(matched), -1)
        };
        // replica_directory_id stays the zero UUID (Kafka's NO_DIRECTORY_ID); the timestamps are
        // encoded from v1 only.
        ReplicaState::default()
            .with_replica_id(broker_id(id))
            .with_log_end_offset(end)
            .with_last_fetch_timestamp(timestamp)
            .with_last_caught_up_timestamp(timestamp)
    };
    let partition = PartitionData::default()
        .with_partition_index(METADATA_PARTITION)
        .with_error_code(0)
        .with_error_message(None)
        .with_leader_id(broker_id(view.leader_id))
        .with_leader_epoch(i32::try_from(view.term).unwrap_or(i32::MAX))
        .with_high_watermark(offset_after(view.committed_index))
        .with_current_voters(view.voters.iter().map(|(id, _)| replica(*id)).collect())
        .with_observers(view.learners.iter().map(|id| replica(*id)).collect());
    let mut response = DescribeQuorumResponse::default()
        .with_error_message(None)
        .with_topics(vec![metadata_topic(partition)]);
    if version >= 2 {
        response.nodes = view
            .voters
            .iter()
            .map(|(id, node)| {
                let listeners = match (listener, node) {
                    (Some(name), Some(node)) if node.port != 0 => vec![Listener::default()
                        .with_name(str_bytes(name))
                        .with_host(str_bytes(node.host.clone()))
                        .with_port(node.port)],
                    _ => Vec::new(),
                };
                Node::default()
                    .with_node_id(broker_id(*id))
                    .with_listeners(listeners)
            })
            .collect();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_quorum_request;
    use kafka_protocol::protocol::{Decodable, Encodable};

    fn view() -> QuorumView {
        let node = |port| {
            Some(ControllerNode {
                host: "127.0.0.1".into(),
                port,
            })
        };
        QuorumView {
            leader_id: 2,
            term: 7,
            committed_index: Some(41),
            leader_last_index: Some(42),
            voters: vec![(1, node(9001)), (2, node(9002)), (3, node(9003))],
            learners: vec![4],
            matched: BTreeMap::from([(1, Some(41)), (2, Some(42)), (3, None), (4, Some(30))]),
            now_ms: 1_700_000_000_000,
        }
    }

    fn request(topics: &[(&str, &[i32])]) -> DescribeQuorumRequest {
        DescribeQuorumRequest::default().with_topics(
            topics
                .iter()
                .map(|(name, partitions)| {
                    describe_quorum_request::TopicData::default()
                        .with_topic_name(TopicName(str_bytes(*name)))
                        .with_partitions(
                            partitions
                                .iter()
                                .map(|p| {
                                    describe_quorum_request::PartitionData::default()
                                        .with_partition_index(*p)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    }

    #[test]
    fn maps_the_leaders_view_onto_kafka_offsets() {
        let r = answer(&view(), 2, Some("CONTROLLER"));
        assert_eq!(r.error_code, 0);
        assert_eq!(r.topics.len(), 1);
        assert_eq!(r.topics[0].topic_name.as_str(), METADATA_TOPIC);
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (
                p.partition_index,
                p.error_code,
                p.leader_id.0,
                p.leader_epoch
            ),
            (0, 0, 2, 7)
        );
        assert_eq!(p.high_watermark, 42);
        let voters: Vec<(i32, i64, i64)> = p
            .current_voters
            .iter()
            .map(|v| (v.replica_id.0, v.log_end_offset, v.last_fetch_timestamp))
            .collect();
        assert_eq!(
            voters,
            vec![(1, 42, -1), (2, 43, 1_700_000_000_000), (3, -1, -1)]
        );
        let leader = &p.current_voters[1];
        assert_eq!(leader.last_caught_up_timestamp, 1_700_000_000_000);
        assert!(leader.replica_directory_id.is_nil());
        assert_eq!(
            p.observers
                .iter()
                .map(|o| (o.replica_id.0, o.log_end_offset))
                .collect::<Vec<_>>(),
            vec![(4, 31)]
        );
        let nodes: Vec<(i32, String, String, u16)> = r
            .nodes
            .iter()
            .flat_map(|n| {
                n.listeners
                    .iter()
                    .map(move |l| (n.node_id.0, l.name.to_string(), l.host.to_string(), l.port))
            })
            .collect();
        assert_eq!(
            nodes,
            vec![
                (1, "CONTROLLER".into(), "127.0.0.1".into(), 9001),
                (2, "CONTROLLER".into(), "127.0.0.1".into(), 9002),
                (3, "CONTROLLER".into(), "127.0.0.1".into(), 9003),
            ]
        );
    }

    #[test]
    fn unknown_high_watermark_and_single_node_default() {
        let mut v = view();
        v.committed_index = None;
        v.voters = vec![(2, Some(ControllerNode::default()))];
        v.learners.clear();
        let r = answer(&v, 2, None);
        assert_eq!(r.topics[0].partitions[0].high_watermark, -1);
        assert_eq!(r.nodes.len(), 1);
        assert!(r.nodes[0].listeners.is_empty());
    }

    /// Every version encodes and decodes back: nodes only from v2, timestamps only from v1.
    #[test]
    fn every_version_round_trips() {
        for version in 0..=2 {
            let r = answer(&view(), version, Some("CONTROLLER"));
            let mut buf = bytes::BytesMut::new();
            r.encode(&mut buf, version).expect("encode");
            let back = DescribeQuorumResponse::decode(&mut buf.freeze(), version).expect("decode");
            let p = &back.topics[0].partitions[0];
            assert_eq!(p.current_voters.len(), 3, "v{version}");
            assert_eq!(back.nodes.len(), if version >= 2 { 3 } else { 0 });
            let leader_ts = p.current_voters[1].last_fetch_timestamp;
            assert_eq!(leader_ts, if version >= 1 { 1_700_000_000_000 } else { -1 });
        }
    }

    #[test]
    fn only_the_metadata_partition_is_known() {
        assert!(names_metadata_partition(&request(&[(
            METADATA_TOPIC,
            &[0]
        )])));
        for bad in [
            request(&[]),
            request(&[(METADATA_TOPIC, &[1])]),
            request(&[(METADATA_TOPIC, &[0, 1])]),
            request(&[("other", &[0])]),
            request(&[(METADATA_TOPIC, &[0]), ("other", &[0])]),
        ] {
            assert!(!names_metadata_partition(&bad), "{bad:?}");
        }
        let r = partition_errors(
            &request(&[(METADATA_TOPIC, &[1]), ("other", &[0, 2])]),
            ResponseError::UnknownTopicOrPartition,
        );
        let got: Vec<(String, i32, i16)> = r
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.topic_name.to_string(), p.partition_index, p.error_code))
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (METADATA_TOPIC.into(), 1, 3),
                ("other".into(), 0, 3),
                ("other".into(), 2, 3),
            ]
        );
        let p = &not_leader().topics[0].partitions[0];
        assert_eq!((p.partition_index, p.error_code), (0, 6));
    }
}
