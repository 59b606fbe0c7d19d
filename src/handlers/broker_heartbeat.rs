//! BrokerHeartbeat (key 63), served by the active controller on its controller listener: renews a broker's
//! session and moves it between fenced, unfenced and shutting down.

use kafka_protocol::messages::{BrokerHeartbeatRequest, BrokerHeartbeatResponse};

use crate::metadata::BrokerHeartbeatInput;
use crate::server::Broker;

pub async fn handle(broker: &Broker, request: BrokerHeartbeatRequest) -> BrokerHeartbeatResponse {
    let input = BrokerHeartbeatInput {
        broker_id: request.broker_id.0,
        broker_epoch: request.broker_epoch,
        metadata_offset: request.current_metadata_offset,
        want_fence: request.want_fence,
        want_shut_down: request.want_shut_down,
    };
    match broker
        .with_controller(move |c| c.broker_heartbeat(input))
        .await
    {
        Ok(reply) => BrokerHeartbeatResponse::default()
            .with_is_caught_up(reply.is_caught_up)
            .with_is_fenced(reply.is_fenced)
            .with_should_shut_down(reply.should_shut_down),
        Err(e) => BrokerHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_is_fenced(true),
    }
}
