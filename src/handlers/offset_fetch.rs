//! OffsetFetch (key 9): committed offsets of one group (v0-v7) or several (v8+). A partition without a
//! commit, or a group that does not exist, answers offset -1 with no error, as Kafka does, so that the
//! client's `auto.offset.reset` applies.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::str_bytes;
use crate::coordinator::records::MAX_GROUP_ID_LEN;
use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

/// First version carrying several groups per request (KIP-709).
const MULTI_GROUP_VERSION: i16 = 8;

/// One partition's answer: (partition, offset, leader epoch, metadata, error code).
type FetchedOffset = (i32, i64, i32, String, i16);

/// Offsets of `group` for the requested topics (None = every committed partition), grouped by topic.
/// Named topics the requester may not describe are answered TOPIC_AUTHORIZATION_FAILED; when every
/// partition is asked for, they are left out, as Kafka does.
fn fetch_group(
    broker: &Broker,
    authz: &Authz<'_>,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Vec<(String, Vec<FetchedOffset>)>, i16> {
    if !authz.allows(AclOperation::Describe, ResourceType::Group, group) {
        return Err(ResponseError::GroupAuthorizationFailed.code());
    }
    if group.is_empty() || group.len() > MAX_GROUP_ID_LEN {
        return Err(ResponseError::InvalidGroupId.code());
    }
    crate::coordinator::loading::check(broker, group).map_err(|e| e.code())?;
    let stored = broker.groups.group(group).unwrap_or_default().offsets;
    let lookup = |topic: &str, partition: i32| -> FetchedOffset {
        match stored.get(&(topic.to_string(), partition)) {
            Some(s) => (
                partition,
                s.value.offset,
                s.value.leader_epoch,
                s.value.metadata.clone(),
                0,
            ),
            None => (partition, -1, -1, String::new(), 0),
        }
    };
    Ok(match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let fetched = if authz.allows(AclOperation::Describe, ResourceType::Topic, &topic) {
                    partitions.iter().map(|p| lookup(&topic, *p)).collect()
                } else {
                    let denied = ResponseError::TopicAuthorizationFailed.code();
                    partitions
                        .iter()
                        .map(|p| (*p, -1, -1, String::new(), denied))
                        .collect()
                };
                (topic, fetched)
            })
            .collect(),
        None => {
            let mut by_topic: Vec<(String, Vec<FetchedOffset>)> = Vec::new();
            // Keys are sorted, so one decision per topic suffices.
            let mut visible: Option<(&str, bool)> = None;
            for (topic, partition) in stored.keys() {
                let shown = match visible {
                    Some((t, shown)) if t == topic => shown,
                    _ => {
                        let shown =
                            authz.can_see(AclOperation::Describe, ResourceType::Topic, topic);
                        visible = Some((topic, shown));
                        shown
                    }
                };
                if !shown {
                    continue;
                }
                let fetched = lookup(topic, *partition);
                match by_topic.last_mut() {
                    Some((t, list)) if t == topic => list.push(fetched),
                    _ => by_topic.push((topic.clone(), vec![fetched])),
                }
            }
            by_topic
        }
    })
}

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let authz = Authz::new(broker, ctx);
    if ctx.api_version >= MULTI_GROUP_VERSION {
        let groups = request
            .groups
            .iter()
            .map(|g| {
                let topics = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let response =
                    OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                if !authz.allows(AclOperation::Describe, ResourceType::Group, &g.group_id) {
                    return response
                        .with_error_code(ResponseError::GroupAuthorizationFailed.code());
                }
                // v9 (KIP-848): a consumer-group member fetches with its member id and epoch.
                let member_check = broker.consumers.validate_offsets_request(
                    g.group_id.as_str(),
                    g.member_id.as_ref().map_or("", |m| m.as_str()),
                    g.member_epoch,
                    ctx.api_version,
                    false,
                );
                if let Some(Err((code, _))) = member_check {
                    return response.with_error_code(code);
                }
                match fetch_group(broker, &authz, g.group_id.as_str(), topics) {
                    Ok(found) => response.with_topics(
                        found
                            .into_iter()
                            .map(|(topic, partitions)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(str_bytes(topic)))
                                    .with_partitions(
                                        partitions
                                            .into_iter()
                                            .map(|(p, offset, epoch, metadata, error)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_error_code(error)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(epoch)
                                                    .with_metadata(Some(str_bytes(metadata)))
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                    Err(code) => response.with_error_code(code),
                }
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = request.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    // The committed leader epoch exists from v5; before it the codec refuses anything but the default.
    let with_epoch = ctx.api_version >= 5;
    match fetch_group(broker, &authz, request.group_id.as_str(), topics) {
        Ok(found) => OffsetFetchResponse::default().with_topics(
            found
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(str_bytes(topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(p, offset, epoch, metadata, error)| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(error)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(if with_epoch {
                                            epoch
                                        } else {
                                            -1
                                        })
                                        .with_metadata(Some(str_bytes(metadata)))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
        Err(code) => OffsetFetchResponse::default().with_error_code(code),
    }
}
