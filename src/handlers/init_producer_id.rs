//! InitProducerId (key 22): producer ids for idempotent producers. Every call gets a fresh id with epoch
//! 0, as Kafka does for producers without a transactional id.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let authz = Authz::new(broker, ctx);
    if let Some(id) = &request.transactional_id {
        if !authz.allows(AclOperation::Write, ResourceType::TransactionalId, id) {
            return response
                .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
        }
    } else if !authz.allows_idempotent_write() {
        return response.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    if request.transactional_id.is_some() {
        // No transaction coordinator on this broker: transactional producers cannot be served.
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    match broker.with_controller(|c| c.allocate_producer_id()).await {
        Ok(id) => response
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "producer id allocation failed");
            response.with_error_code(e.code())
        }
    }
}
