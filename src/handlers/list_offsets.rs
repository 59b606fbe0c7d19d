//! ListOffsets (key 2): earliest, latest, max-timestamp and by-timestamp offset lookups.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::storage_error_code;
use crate::dispatch::RequestContext;
use crate::replica::Partition;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
const EARLIEST_PENDING_UPLOAD: i64 = -6;
/// First ListOffsets version with a leader epoch in the response (KIP-320).
const LEADER_EPOCH_VERSION: i16 = 4;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    // The codec refuses a non-default leader epoch in versions that lack the field.
    let with_epoch = ctx.api_version >= LEADER_EPOCH_VERSION;
    let image = broker.image();
    let authz = Authz::new(broker, ctx);
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let described = authz.allows(AclOperation::Describe, ResourceType::Topic, &topic.name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let response = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            let found = match image.topic(&topic.name) {
                _ if !described => Err(ResponseError::TopicAuthorizationFailed),
                Some(t) => broker.replicas.leader_for(t, p.partition_index),
                None => Err(ResponseError::UnknownTopicOrPartition),
            };
            let partition = match found {
                Ok(partition) => partition,
                Err(e) => {
                    partitions.push(response.with_error_code(e.code()));
                    continue;
                }
            };
            let epoch = partition.leader_epoch();
            if p.current_leader_epoch >= 0 && p.current_leader_epoch != epoch {
                partitions.push(response.with_error_code(if p.current_leader_epoch < epoch {
                    ResponseError::FencedLeaderEpoch.code()
                } else {
                    ResponseError::UnknownLeaderEpoch.code()
                }));
                continue;
            }
            partitions.push(match lookup(&partition, p.timestamp).await {
                Ok((offset, timestamp, leader_epoch)) => response
                    .with_offset(offset)
                    .with_timestamp(timestamp)
                    .with_leader_epoch(if with_epoch { leader_epoch } else { -1 }),
                Err(code) => response.with_error_code(code),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// Returns (offset, timestamp, leader epoch) for one lookup; -1s when no record matches.
async fn lookup(partition: &Partition, timestamp: i64) -> Result<(i64, i64, i32), i16> {
    let latest_epoch = || {
        let epoch = partition.log().latest_epoch();
        if epoch >= 0 {
            epoch
        } else {
            partition.leader_epoch()
        }
    };
    match timestamp {
        EARLIEST | EARLIEST_LOCAL => Ok((partition.log_start_offset(), -1, latest_epoch())),
        LATEST => Ok((partition.high_watermark(), -1, latest_epoch())),
        MAX_TIMESTAMP => match partition.max_timestamp().await {
            Ok(Some(found)) => Ok((found.offset, found.timestamp, found.leader_epoch)),
            Ok(None) => Ok((-1, -1, -1)),
            Err(e) => Err(storage_error_code(&e)),
        },
        ts if ts >= 0 => match partition.offset_for_timestamp(ts).await {
            Ok(Some(found)) if found.offset < partition.high_watermark() => {
                Ok((found.offset, found.timestamp, found.leader_epoch))
            }
            Ok(_) => Ok((-1, -1, -1)),
            Err(e) => Err(storage_error_code(&e)),
        },
        // Tiered-storage lookups: with no remote storage there is no such offset (Kafka answers -1, no error).
        LATEST_TIERED | EARLIEST_PENDING_UPLOAD => Ok((-1, -1, -1)),
        _ => Err(ResponseError::InvalidRequest.code()),
    }
}
