//! DescribeCluster (key 60): cluster id, controller and brokers.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::security::authz::Authz;
use crate::server::Broker;

/// endpoint_type 1 = brokers; 2 = controllers (KIP-919), which clients reach only on controller listeners.
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(broker.cluster_id.clone()))
        .with_endpoint_type(request.endpoint_type);
    if ctx.api_version >= 1 && request.endpoint_type != ENDPOINT_TYPE_BROKERS {
        return response
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes(
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
            )));
    }
    // Like Metadata, DescribeCluster is open to every authenticated client (admin clients bootstrap
    // with it); only the authorized operations need cluster DESCRIBE, as in Kafka's
    // `AuthHelper.computeDescribeClusterResponse`.
    let authz = Authz::new(broker, ctx);
    // v2 (KIP-1073): fenced brokers too, marked, when the client asks for them.
    let brokers = if ctx.api_version >= 2 && request.include_fenced_brokers {
        let image = broker.image();
        image
            .brokers
            .values()
            .filter_map(|b| {
                let endpoint = b.endpoint(&ctx.connection.listener_name)?;
                Some(
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.broker_id))
                        .with_host(str_bytes(endpoint.host.clone()))
                        .with_port(i32::from(endpoint.port))
                        .with_rack(b.rack.clone().map(str_bytes))
                        .with_is_fenced(b.fenced),
                )
            })
            .collect()
    } else {
        super::metadata::live_brokers(broker, ctx)
            .into_iter()
            .map(|b| {
                DescribeClusterBroker::default()
                    .with_broker_id(b.node_id)
                    .with_host(b.host)
                    .with_port(b.port)
                    .with_rack(b.rack)
            })
            .collect()
    };
    response
        // As Kafka's brokers do, name a live broker (this one) rather than the active controller:
        // brokers forward controller requests, and a client never chases a controller that just died.
        .with_controller_id(BrokerId(broker.node_id))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            authz.cluster_authorized_operations()
        } else {
            i32::MIN
        })
}
