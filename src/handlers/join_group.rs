//! JoinGroup (key 11): enters a member into a classic group's rebalance; the answer comes when the join
//! phase completes (or at once for KIP-394's MEMBER_ID_REQUIRED, errors, and no-op rejoins).

use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};

use super::str_bytes;
use crate::coordinator::classic::{JoinOutcome, JoinRequest, Reply};
use crate::coordinator::records::MAX_GROUP_ID_LEN;
use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

/// KIP-394: from v4 a first join without a member id is answered MEMBER_ID_REQUIRED.
const MEMBER_ID_REQUIRED_VERSION: i16 = 4;
/// KIP-814's skip_assignment exists from v9.
const SKIP_ASSIGNMENT_VERSION: i16 = 9;
/// v0 has no rebalance timeout; Kafka uses the session timeout.
const REBALANCE_TIMEOUT_VERSION: i16 = 1;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let version = ctx.api_version;
    let group = request.group_id.to_string();
    let outcome =
        if !Authz::new(broker, ctx).allows(AclOperation::Read, ResourceType::Group, &group) {
            JoinOutcome {
                error: ResponseError::GroupAuthorizationFailed.code(),
                generation: -1,
                member_id: request.member_id.to_string(),
                ..Default::default()
            }
        } else if group.is_empty() || group.len() > MAX_GROUP_ID_LEN {
            JoinOutcome {
                error: ResponseError::InvalidGroupId.code(),
                generation: -1,
                member_id: request.member_id.to_string(),
                ..Default::default()
            }
        } else if let Err(e) = crate::coordinator::loading::check(broker, &group) {
            JoinOutcome {
                error: e.code(),
                generation: -1,
                member_id: request.member_id.to_string(),
                ..Default::default()
            }
        } else if let Err(code) = take_over_empty_consumer_group(broker, &group).await {
            JoinOutcome {
                error: code,
                generation: -1,
                member_id: request.member_id.to_string(),
                ..Default::default()
            }
        } else {
            let session = Duration::from_millis(request.session_timeout_ms.max(0) as u64);
            let rebalance = if version >= REBALANCE_TIMEOUT_VERSION {
                Duration::from_millis(request.rebalance_timeout_ms.max(0) as u64)
            } else {
                session
            };
            let join = JoinRequest {
                group: group.clone(),
                member_id: request.member_id.to_string(),
                instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
                client_id: ctx.client_id.clone().unwrap_or_default(),
                client_host: format!("/{}", ctx.connection.peer.ip()),
                session_timeout: session,
                rebalance_timeout: rebalance,
                protocol_type: request.protocol_type.to_string(),
                protocols: request
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
                require_known_member_id: version >= MEMBER_ID_REQUIRED_VERSION,
            };
            let (reply, dirty) = broker.membership.join(join, Instant::now());
            broker.persist_groups(dirty).await;
            match reply {
                Reply::Now(outcome) => outcome,
                // The sender is dropped only if the group itself goes away (DeleteGroups cannot delete a group
                // with members, so this is a coordinator shutting down).
                Reply::Later(rx) => rx.await.unwrap_or(JoinOutcome {
                    error: ResponseError::CoordinatorNotAvailable.code(),
                    generation: -1,
                    ..Default::default()
                }),
            }
        };
    let mut outcome = outcome;
    if version < SKIP_ASSIGNMENT_VERSION {
        if let Some(previous) = outcome.leader_before_rejoin.take() {
            outcome.leader = previous;
            outcome.members.clear();
        }
        outcome.skip_assignment = false;
    }
    JoinGroupResponse::default()
        .with_skip_assignment(outcome.skip_assignment)
        .with_error_code(outcome.error)
        .with_generation_id(outcome.generation)
        .with_protocol_type(outcome.protocol_type.map(str_bytes))
        .with_protocol_name(Some(str_bytes(outcome.protocol.unwrap_or_default())))
        .with_leader(str_bytes(outcome.leader))
        .with_member_id(str_bytes(outcome.member_id))
        .with_members(
            outcome
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(instance.map(str_bytes))
                        .with_metadata(metadata)
                })
                .collect(),
        )
}

/// A group id is either a classic or a consumer group. A classic join of an empty consumer group turns it
/// into a classic group (its records are tombstoned; offsets stay), as Kafka does. A consumer group with
/// members stays one: Kavka does not run classic members inside a consumer group, so the join is refused
/// with INCONSISTENT_GROUP_PROTOCOL.
async fn take_over_empty_consumer_group(broker: &Broker, group: &str) -> Result<(), i16> {
    if !broker.consumers.contains(group) {
        return Ok(());
    }
    if broker.consumers.has_members(group) {
        tracing::info!(
            group,
            "classic join refused: the group is a consumer-protocol group with members"
        );
        return Err(ResponseError::InconsistentGroupProtocol.code());
    }
    broker.consumers.remove_group(group);
    broker
        .persist_consumer_groups(vec![group.to_string()])
        .await?;
    tracing::info!(group, "empty consumer group converted to a classic group");
    Ok(())
}
