//! OffsetDelete (key 47): removes committed offsets of chosen partitions from an empty group.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::coordinator::{offset_tombstone, write_group_records, OffsetsRecord};
use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group = request.group_id.to_string();
    let authz = Authz::new(broker, ctx);
    if !authz.allows(AclOperation::Delete, ResourceType::Group, &group) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if let Err(e) = crate::coordinator::loading::check(broker, &group) {
        return OffsetDeleteResponse::default().with_error_code(e.code());
    }
    let Some(existing) = broker.groups.group(&group).or_else(|| {
        (broker.consumers.contains(&group) || broker.membership.describe(&group).is_some())
            .then(Default::default)
    }) else {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupIdNotFound.code());
    };
    // Kafka refuses to delete offsets a live group still consumes.
    let consumer_subscriptions = broker.consumers.subscribed_topics(&group, &broker.image());
    let subscribed = match consumer_subscriptions {
        Some(topics) => topics,
        None => match broker.membership.subscribed_topics(&group) {
            Some(None) => {
                return OffsetDeleteResponse::default()
                    .with_error_code(ResponseError::NonEmptyGroup.code())
            }
            Some(Some(topics)) => topics,
            None => Default::default(),
        },
    };
    let image = broker.image();
    let mut changes: Vec<OffsetsRecord> = Vec::new();
    let mut planned = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.to_string();
        let known = image.topic(&name);
        let readable = authz.allows(AclOperation::Read, ResourceType::Topic, &name);
        let partitions: Vec<(i32, i16)> = topic
            .partitions
            .iter()
            .map(|p| {
                let index = p.partition_index;
                if !readable {
                    return (index, ResponseError::TopicAuthorizationFailed.code());
                }
                if !known.is_some_and(|t| index >= 0 && (index as usize) < t.partitions.len()) {
                    return (index, ResponseError::UnknownTopicOrPartition.code());
                }
                if subscribed.contains(&name) {
                    return (index, ResponseError::GroupSubscribedToTopic.code());
                }
                if existing.offsets.contains_key(&(name.clone(), index)) {
                    changes.push(offset_tombstone(&group, &name, index));
                }
                (index, 0)
            })
            .collect();
        planned.push((topic.name, partitions));
    }
    if let Err(code) = write_group_records(broker, &group, changes).await {
        return OffsetDeleteResponse::default().with_error_code(code);
    }
    let topics = planned
        .into_iter()
        .map(|(name, partitions)| {
            OffsetDeleteResponseTopic::default()
                .with_name(name)
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, code)| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
