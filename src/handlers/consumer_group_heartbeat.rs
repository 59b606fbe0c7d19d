//! ConsumerGroupHeartbeat (key 68): the KIP-848 consumer group protocol. One request both keeps a member's
//! session alive and carries its subscription; the answer brings its member epoch and, when it changed,
//! its assignment. The state machine is `coordinator::consumer`; this handler deals with the group's
//! type (a group id is either a classic or a consumer group) and stores the changes before answering.

use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::{now_ms, str_bytes};
use crate::coordinator::consumer::{HeartbeatOutcome, HeartbeatRequest, JOIN_EPOCH};
use crate::coordinator::records::{OffsetsKey, MAX_GROUP_ID_LEN};
use crate::coordinator::write_group_records;
use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let authz = Authz::new(broker, ctx);
    if !authz.allows(AclOperation::Read, ResourceType::Group, &request.group_id) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    // As Kafka's KafkaApis.handleConsumerGroupHeartbeat: a member may only subscribe to topics it may
    // describe, else the subscription would reveal (through the assignment) topics it cannot see. `all`
    // stops at the first refusal, so a refused heartbeat logs one line.
    let subscribed = request
        .subscribed_topic_names
        .as_deref()
        .unwrap_or_default();
    if !subscribed
        .iter()
        .all(|name| authz.allows(AclOperation::Describe, ResourceType::Topic, name))
    {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
    }
    let req = HeartbeatRequest {
        group: request.group_id.to_string(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: request.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.to_string()).collect()),
        subscribed_topic_regex: request
            .subscribed_topic_regex
            .as_ref()
            .map(|s| s.to_string()),
        server_assignor: request.server_assignor.as_ref().map(|s| s.to_string()),
        owned: request.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .map(|tp| (tp.topic_id, tp.partitions.clone()))
                .collect()
        }),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", ctx.connection.peer.ip()),
        version: ctx.api_version,
    };
    let outcome = match heartbeat(broker, &req).await {
        Ok(outcome) | Err(outcome) => outcome,
    };
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(outcome.error)
        .with_error_message(outcome.message.map(str_bytes))
        .with_member_id(outcome.member_id.map(str_bytes))
        .with_member_epoch(outcome.member_epoch)
        .with_heartbeat_interval_ms(outcome.heartbeat_interval_ms)
        .with_assignment(outcome.assignment.map(|a| {
            Assignment::default().with_topic_partitions(
                a.into_iter()
                    .map(|(topic_id, parts)| {
                        TopicPartitions::default()
                            .with_topic_id(topic_id)
                            .with_partitions(parts.into_iter().collect())
                    })
                    .collect(),
            )
        }))
}

async fn heartbeat(
    broker: &Broker,
    req: &HeartbeatRequest,
) -> Result<HeartbeatOutcome, HeartbeatOutcome> {
    let error = |code: ResponseError, message: String| HeartbeatOutcome {
        error: code.code(),
        message: Some(message),
        ..Default::default()
    };
    if let Err(e) = crate::coordinator::loading::check(broker, &req.group) {
        return Err(error(
            e,
            format!("this broker does not coordinate group {}", req.group),
        ));
    }
    if req.group.len() > MAX_GROUP_ID_LEN {
        return Err(error(
            ResponseError::InvalidGroupId,
            format!("The group id is longer than {MAX_GROUP_ID_LEN} bytes."),
        ));
    }
    take_over_empty_classic_group(broker, req)
        .await
        .map_err(|(code, message)| error(code, message))?;
    let image = broker.image();
    let (outcome, dirty) = broker
        .consumers
        .heartbeat(req, &image, Instant::now(), now_ms());
    // The answer promises an epoch and an assignment: they are stored first.
    if let Err(code) = broker.persist_consumer_groups(dirty).await {
        let code =
            ResponseError::try_from_code(code).unwrap_or(ResponseError::CoordinatorNotAvailable);
        return Err(error(code, "The group state could not be stored.".into()));
    }
    Ok(outcome)
}

/// A group id is either a classic or a consumer group. A join of an empty classic group (one left by
/// classic consumers, or used only for offsets) turns it into a consumer group, keeping its offsets, as
/// Kafka does; a classic group with members stays classic (Kavka does not migrate live groups).
async fn take_over_empty_classic_group(
    broker: &Broker,
    req: &HeartbeatRequest,
) -> Result<(), (ResponseError, String)> {
    if broker.consumers.contains(&req.group) {
        return Ok(());
    }
    let Some(classic) = broker.membership.describe(&req.group) else {
        return Ok(());
    };
    if req.member_epoch != JOIN_EPOCH {
        return Err((
            ResponseError::GroupIdNotFound,
            format!("Group {} is not a consumer group.", req.group),
        ));
    }
    if !classic.members.is_empty() {
        return Err((
            ResponseError::GroupIdNotFound,
            format!(
                "Cannot upgrade classic group {} to consumer group because it has members: Kavka converts a group only once it is empty.",
                req.group
            ),
        ));
    }
    let tombstone = (
        OffsetsKey::GroupMetadata {
            group: req.group.clone(),
        },
        None,
    );
    write_group_records(broker, &req.group, vec![tombstone])
        .await
        .map_err(|code| {
            (
                ResponseError::try_from_code(code)
                    .unwrap_or(ResponseError::CoordinatorNotAvailable),
                "The group state could not be stored.".to_string(),
            )
        })?;
    broker.membership.remove_group(&req.group);
    tracing::info!(group = %req.group, "empty classic group converted to a consumer group");
    Ok(())
}
