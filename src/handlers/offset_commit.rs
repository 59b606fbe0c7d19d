//! OffsetCommit (key 8): stores committed offsets in `__consumer_offsets`. Members of a classic group
//! commit with their generation and member id (checked as Kafka does); a group without membership is a
//! "simple" group, where commits with generation -1 are accepted (consumers that assign partitions
//! themselves) and a commit naming a generation gets the error Kafka gives a member it does not know.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::coordinator::records::{OffsetCommitValue, OffsetsKey, MAX_GROUP_ID_LEN};
use crate::coordinator::{write_group_records, OffsetsRecord, OffsetsValue};
use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

/// From v9 an unknown group is GROUP_ID_NOT_FOUND; before, ILLEGAL_GENERATION (Kafka's compatibility rule).
const GROUP_ID_NOT_FOUND_VERSION: i16 = 9;

/// A partition of the request: the record to write, or the error code it is answered with.
type PlannedPartition = (i32, Result<OffsetsRecord, i16>);

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group = request.group_id.to_string();
    let authz = Authz::new(broker, ctx);
    let group_denied = !authz.allows(AclOperation::Read, ResourceType::Group, &group);
    // A consumer-protocol group checks the member epoch; a classic group the generation. Membership is
    // not looked at (nor a session touched) for a requester without access to the group.
    let membership = if group_denied {
        None
    } else {
        match broker.consumers.validate_offsets_request(
            &group,
            request.member_id.as_str(),
            request.generation_id_or_member_epoch,
            ctx.api_version,
            true,
        ) {
            Some(verdict) => Some(verdict.map_err(|(code, _)| code)),
            None => broker.membership.validate_commit(
                &group,
                request.member_id.as_str(),
                request.group_instance_id.as_ref().map(|s| s.as_str()),
                request.generation_id_or_member_epoch,
                std::time::Instant::now(),
            ),
        }
    };
    let group_error = if group_denied {
        Some(ResponseError::GroupAuthorizationFailed.code())
    } else if group.is_empty() || group.len() > MAX_GROUP_ID_LEN {
        Some(ResponseError::InvalidGroupId.code())
    } else if let Err(e) = crate::coordinator::loading::check(broker, &group) {
        Some(e.code())
    } else if let Some(verdict) = membership {
        verdict.err()
    } else if request.generation_id_or_member_epoch >= 0 {
        // No members exist yet: an unknown group, or a simple group that has no such member.
        Some(if broker.groups.group(&group).is_some() {
            ResponseError::UnknownMemberId.code()
        } else if ctx.api_version >= GROUP_ID_NOT_FOUND_VERSION {
            ResponseError::GroupIdNotFound.code()
        } else {
            ResponseError::IllegalGeneration.code()
        })
    } else {
        None
    };
    let image = broker.image();
    let max_metadata = broker.config.offset_metadata_max_bytes.max(0) as usize;
    let now = super::now_ms();
    let mut planned: Vec<(String, Vec<PlannedPartition>)> = Vec::new();
    for topic in &request.topics {
        let name = topic.name.to_string();
        let known = image.topic(&name);
        let topic_denied =
            group_error.is_none() && !authz.allows(AclOperation::Read, ResourceType::Topic, &name);
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let outcome = if let Some(code) = group_error {
                    Err(code)
                } else if topic_denied {
                    Err(ResponseError::TopicAuthorizationFailed.code())
                } else if !known.is_some_and(|t| {
                    p.partition_index >= 0 && (p.partition_index as usize) < t.partitions.len()
                }) {
                    Err(ResponseError::UnknownTopicOrPartition.code())
                } else if p
                    .committed_metadata
                    .as_ref()
                    .is_some_and(|m| m.len() > max_metadata)
                {
                    Err(ResponseError::OffsetMetadataTooLarge.code())
                } else {
                    Ok((
                        OffsetsKey::OffsetCommit {
                            group: group.clone(),
                            topic: name.clone(),
                            partition: p.partition_index,
                        },
                        Some(OffsetsValue::Offset(OffsetCommitValue {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p
                                .committed_metadata
                                .as_ref()
                                .map(|m| m.to_string())
                                .unwrap_or_default(),
                            commit_timestamp: now,
                        })),
                    ))
                };
                (p.partition_index, outcome)
            })
            .collect();
        planned.push((name, partitions));
    }
    let records: Vec<OffsetsRecord> = planned
        .iter()
        .flat_map(|(_, ps)| ps.iter())
        .filter_map(|(_, outcome)| outcome.as_ref().ok().cloned())
        .collect();
    let write_error = write_group_records(broker, &group, records).await.err();
    let topics = planned
        .into_iter()
        .map(|(name, partitions)| {
            OffsetCommitResponseTopic::default()
                .with_name(kafka_protocol::messages::TopicName(super::str_bytes(name)))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, outcome)| {
                            let code = match outcome {
                                Ok(_) => write_error.unwrap_or(0),
                                Err(code) => code,
                            };
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}
