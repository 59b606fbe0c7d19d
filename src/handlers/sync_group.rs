//! SyncGroup (key 14): the leader hands in the assignment; every member gets its part once it is there.

use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

use super::str_bytes;
use crate::coordinator::classic::{Reply, SyncOutcome};
use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    if !Authz::new(broker, ctx).allows(AclOperation::Read, ResourceType::Group, &request.group_id) {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if let Err(e) = crate::coordinator::loading::check(broker, request.group_id.as_str()) {
        return SyncGroupResponse::default().with_error_code(e.code());
    }
    let (reply, dirty) = broker.membership.sync(
        request.group_id.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|s| s.as_str()),
        request.generation_id,
        request.protocol_type.as_ref().map(|s| s.as_str()),
        request.protocol_name.as_ref().map(|s| s.as_str()),
        request
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
        Instant::now(),
    );
    broker.persist_groups(dirty).await;
    let outcome = match reply {
        Reply::Now(outcome) => outcome,
        Reply::Later(rx) => rx.await.unwrap_or(SyncOutcome {
            error: ResponseError::CoordinatorNotAvailable.code(),
            ..Default::default()
        }),
    };
    SyncGroupResponse::default()
        .with_error_code(outcome.error)
        .with_protocol_type(outcome.protocol_type.map(str_bytes))
        .with_protocol_name(outcome.protocol.map(str_bytes))
        .with_assignment(outcome.assignment)
}
