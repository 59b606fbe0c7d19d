//! AlterPartitionReassignments (key 45): starts or cancels partition reassignments, decided by the active
//! controller (brokers forward the request there); see `crate::metadata` for how one proceeds.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};

use kafka_protocol::error::ResponseError;

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::metadata::ReassignmentRequest;
use crate::security::acl::AclOperation;
use crate::security::authz::Authz;
use crate::server::Broker;

/// First version with `AllowReplicationFactorChange` (KIP-860).
const RF_CHANGE_FLAG_VERSION: i16 = 1;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let allow_rf_change =
        ctx.api_version < RF_CHANGE_FLAG_VERSION || request.allow_replication_factor_change;
    let requests: Vec<ReassignmentRequest> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| ReassignmentRequest {
                topic: t.name.to_string(),
                partition: p.partition_index,
                target: p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
            })
        })
        .collect();
    let response = AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change);
    if !Authz::new(broker, ctx).allows_cluster(AclOperation::Alter) {
        // As Kafka's error response: the top-level error, repeated on every named partition.
        let code = ResponseError::ClusterAuthorizationFailed.code();
        let topics = request
            .topics
            .iter()
            .map(|t| {
                ReassignableTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                ReassignablePartitionResponse::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect();
        return response.with_error_code(code).with_responses(topics);
    }
    let results = match broker
        .with_controller(move |c| c.alter_partition_reassignments(requests, allow_rf_change))
        .await
    {
        Ok(results) => results,
        Err(e) => {
            return response
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(e.to_string())))
        }
    };
    let mut topics: Vec<ReassignableTopicResponse> = Vec::new();
    for r in results {
        let partition = ReassignablePartitionResponse::default()
            .with_partition_index(r.partition)
            .with_error_code(r.error.as_ref().map_or(0, |(e, _)| e.code()))
            .with_error_message(r.error.map(|(_, m)| str_bytes(m)));
        match topics.iter_mut().find(|t| t.name.as_str() == r.topic) {
            Some(t) => t.partitions.push(partition),
            None => topics.push(
                ReassignableTopicResponse::default()
                    .with_name(kafka_protocol::messages::TopicName(str_bytes(r.topic)))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    response.with_responses(topics)
}
