//! Heartbeat (key 12): keeps a classic group member's session alive; REBALANCE_IN_PROGRESS tells it to
//! rejoin.

use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    if !Authz::new(broker, ctx).allows(AclOperation::Read, ResourceType::Group, &request.group_id) {
        return HeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if let Err(e) = crate::coordinator::loading::check(broker, request.group_id.as_str()) {
        return HeartbeatResponse::default().with_error_code(e.code());
    }
    let code = broker.membership.heartbeat(
        request.group_id.as_str(),
        request.member_id.as_str(),
        request.group_instance_id.as_ref().map(|s| s.as_str()),
        request.generation_id,
        Instant::now(),
    );
    HeartbeatResponse::default().with_error_code(code)
}
