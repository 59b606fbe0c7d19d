//! BrokerRegistration (key 62), served by the active controller on its controller listener: a broker
//! announces itself (node id, incarnation, listeners, rack) and gets its broker epoch.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{BrokerRegistrationRequest, BrokerRegistrationResponse};

use crate::metadata::{BrokerEndpoint, BrokerRegistrationInput};
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    request: BrokerRegistrationRequest,
) -> BrokerRegistrationResponse {
    let response = BrokerRegistrationResponse::default().with_broker_epoch(-1);
    if request.cluster_id.as_str() != broker.cluster_id {
        tracing::warn!(broker = request.broker_id.0, theirs = %request.cluster_id.as_str(), ours = %broker.cluster_id, "broker registration refused: another cluster id");
        return response.with_error_code(ResponseError::InconsistentClusterId.code());
    }
    let input = BrokerRegistrationInput {
        broker_id: request.broker_id.0,
        incarnation_id: request.incarnation_id,
        endpoints: request
            .listeners
            .iter()
            .map(|l| BrokerEndpoint {
                name: l.name.to_string(),
                host: l.host.to_string(),
                port: l.port,
                security_protocol: l.security_protocol,
            })
            .collect(),
        rack: request.rack.as_ref().map(|r| r.to_string()),
        previous_broker_epoch: request.previous_broker_epoch,
    };
    let session = Duration::from_millis(broker.config.broker_session_timeout_ms.max(1) as u64);
    match broker
        .with_controller(move |c| c.register_broker(input, session))
        .await
    {
        Ok(epoch) => response.with_broker_epoch(epoch),
        Err(e) => {
            tracing::info!(broker = request.broker_id.0, error = %e, "broker registration refused");
            response.with_error_code(e.code())
        }
    }
}
