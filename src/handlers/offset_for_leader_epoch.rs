//! OffsetForLeaderEpoch (key 23, KIP-101/KIP-320): for a leader epoch, the epoch actually found in the log
//! and the offset where it ends (the start of the next epoch, or the log end for the current one). Clients
//! ask after a leader change to detect a log truncated under them; replicas will ask to find where their
//! log diverges from the leader's.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_RESOURCE_NAME};
use crate::security::authz::Authz;
use crate::server::Broker;

/// Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
const UNDEFINED: i32 = -1;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let image = broker.image();
    let authz = Authz::new(broker, ctx);
    // As Kafka: CLUSTER_ACTION (what replicas have) covers every topic, otherwise (KIP-320 consumers)
    // DESCRIBE on each; the replica id is not trusted either way.
    let cluster_action = authz.can_see(
        AclOperation::ClusterAction,
        ResourceType::Cluster,
        CLUSTER_RESOURCE_NAME,
    );
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let denied = !cluster_action
                && !authz.allows(AclOperation::Describe, ResourceType::Topic, &topic.topic);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let result = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(UNDEFINED)
                        .with_end_offset(i64::from(UNDEFINED));
                    let partition = match image.topic(&topic.topic) {
                        _ if denied => Err(ResponseError::TopicAuthorizationFailed),
                        Some(t) => broker.replicas.leader_for(t, p.partition),
                        None => Err(ResponseError::UnknownTopicOrPartition),
                    };
                    let partition = match partition {
                        Ok(partition) => partition,
                        Err(e) => return result.with_error_code(e.code()),
                    };
                    let current = partition.leader_epoch();
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch != current {
                        return result.with_error_code(if p.current_leader_epoch < current {
                            ResponseError::FencedLeaderEpoch.code()
                        } else {
                            ResponseError::UnknownLeaderEpoch.code()
                        });
                    }
                    let (epoch, end_offset) = partition.log().end_offset_for_epoch(p.leader_epoch);
                    result.with_leader_epoch(epoch).with_end_offset(end_offset)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
