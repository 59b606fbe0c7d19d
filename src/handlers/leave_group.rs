//! LeaveGroup (key 13): one member (v0-v2) or a batch of members by id or static instance id (v3+).

use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

/// First version leaving a batch of members (KIP-345).
const BATCH_VERSION: i16 = 3;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let group = request.group_id.as_str();
    if !Authz::new(broker, ctx).allows(AclOperation::Read, ResourceType::Group, group) {
        return LeaveGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if let Err(e) = crate::coordinator::loading::check(broker, group) {
        return LeaveGroupResponse::default().with_error_code(e.code());
    }
    if ctx.api_version < BATCH_VERSION {
        let (code, dirty) =
            broker
                .membership
                .leave(group, request.member_id.as_str(), None, Instant::now());
        broker.persist_groups(dirty).await;
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let mut members = Vec::with_capacity(request.members.len());
    for m in &request.members {
        let (code, dirty) = broker.membership.leave(
            group,
            m.member_id.as_str(),
            m.group_instance_id.as_ref().map(|s| s.as_str()),
            Instant::now(),
        );
        broker.persist_groups(dirty).await;
        members.push(
            MemberResponse::default()
                .with_member_id(m.member_id.clone())
                .with_group_instance_id(m.group_instance_id.clone())
                .with_error_code(code),
        );
    }
    LeaveGroupResponse::default().with_members(members)
}
