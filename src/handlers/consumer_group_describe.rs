//! ConsumerGroupDescribe (key 69): state, epochs, assignor and members (with their current and target
//! assignments) of consumer-protocol groups.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};

use super::str_bytes;
use crate::coordinator::assignor;
use crate::dispatch::RequestContext;
use crate::metadata::MetadataImage;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

/// ConsumerGroupDescribe v1 (KIP-1099): which protocol the member speaks; 1 = consumer.
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let image = broker.image();
    let authz = Authz::new(broker, ctx);
    let groups = request
        .group_ids
        .into_iter()
        .map(|id| {
            let described = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if !authz.allows(AclOperation::Describe, ResourceType::Group, &id) {
                return described.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let described = if request.include_authorized_operations {
                described.with_authorized_operations(authz.operations(ResourceType::Group, &id))
            } else {
                described
            };
            let fail = |code: ResponseError, message: String| {
                described
                    .clone()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
            };
            if id.is_empty() {
                return fail(
                    ResponseError::InvalidGroupId,
                    "The group id can't be empty.".into(),
                );
            }
            if let Err(e) = crate::coordinator::loading::check(broker, id.as_str()) {
                return fail(
                    e,
                    format!("this broker does not coordinate group {}", id.as_str()),
                );
            }
            let Some(desc) = broker.consumers.describe(id.as_str()) else {
                let known = broker.membership.describe(id.as_str()).is_some()
                    || broker.groups.group(id.as_str()).is_some();
                let message = if known {
                    format!("Group {} is not a consumer group.", id.as_str())
                } else {
                    format!("Group {} not found.", id.as_str())
                };
                return fail(ResponseError::GroupIdNotFound, message);
            };
            described
                .with_group_state(str_bytes(desc.state))
                .with_group_epoch(desc.group_epoch)
                .with_assignment_epoch(desc.assignment_epoch)
                .with_assignor_name(str_bytes(desc.assignor))
                .with_members(
                    desc.members
                        .into_iter()
                        .map(|d| {
                            let m = d.member;
                            Member::default()
                                .with_member_id(str_bytes(d.member_id))
                                .with_instance_id(m.instance_id.map(str_bytes))
                                .with_rack_id(m.rack_id.map(str_bytes))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(str_bytes(m.client_id))
                                .with_client_host(str_bytes(m.client_host))
                                .with_subscribed_topic_names(
                                    m.subscribed_topic_names
                                        .into_iter()
                                        .map(|n| TopicName(str_bytes(n)))
                                        .collect(),
                                )
                                .with_subscribed_topic_regex(
                                    m.subscribed_topic_regex.map(str_bytes),
                                )
                                .with_assignment(described_assignment(&m.assigned, &image))
                                .with_target_assignment(described_assignment(&d.target, &image))
                                .with_member_type(MEMBER_TYPE_CONSUMER)
                        })
                        .collect(),
                )
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

/// Topics are named from the metadata image; a topic that no longer exists is left out, as Kafka does.
fn described_assignment(a: &assignor::Assignment, image: &MetadataImage) -> Assignment {
    Assignment::default().with_topic_partitions(
        a.iter()
            .filter_map(|(id, parts)| {
                let topic = image.topic_by_id(id)?;
                Some(
                    TopicPartitions::default()
                        .with_topic_id(*id)
                        .with_topic_name(TopicName(str_bytes(topic.name.clone())))
                        .with_partitions(parts.iter().copied().collect()),
                )
            })
            .collect(),
    )
}
