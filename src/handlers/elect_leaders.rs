//! ElectLeaders (key 43): preferred or unclean leader elections on request, decided by the active
//! controller (brokers forward the request there, see `crate::dispatch`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::metadata::{ElectionResult, ElectionType};
use crate::security::acl::AclOperation;
use crate::security::authz::Authz;
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    // v0 has no election type: it asks for preferred elections.
    let election = if ctx.api_version == 0 {
        Some(ElectionType::Preferred)
    } else {
        ElectionType::from_wire(request.election_type)
    };
    let all = request.topic_partitions.is_none();
    let wanted: Option<Vec<(String, i32)>> = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
            .collect()
    });
    let outcome = match election {
        _ if !Authz::new(broker, ctx).allows_cluster(AclOperation::Alter) => Err((
            ResponseError::ClusterAuthorizationFailed.code(),
            "not authorized to elect leaders".to_string(),
        )),
        Some(election) => {
            let wanted = wanted.clone();
            broker
                .with_controller(move |c| c.elect_leaders(election, wanted))
                .await
                .map_err(|e| (e.code(), e.to_string()))
        }
        None => Err((
            ResponseError::InvalidRequest.code(),
            format!("Unknown election type {}", request.election_type),
        )),
    };
    match outcome {
        Ok(results) => {
            ElectLeadersResponse::default().with_replica_election_results(wire(results, all))
        }
        // The whole request failed (v0 has no top-level error: each named partition carries it).
        Err((code, message)) => {
            let per_partition = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, p)| (topic, p, code, Some(message.clone())));
            ElectLeadersResponse::default()
                .with_error_code(if ctx.api_version >= 1 { code } else { 0 })
                .with_replica_election_results(group(per_partition))
        }
    }
}

/// Results grouped per topic, topics in first-seen order.
fn group(
    results: impl Iterator<Item = (String, i32, i16, Option<String>)>,
) -> Vec<ReplicaElectionResult> {
    let mut topics: Vec<ReplicaElectionResult> = Vec::new();
    for (topic, partition, code, message) in results {
        let result = PartitionResult::default()
            .with_partition_id(partition)
            .with_error_code(code)
            .with_error_message(message.map(str_bytes));
        match topics.iter_mut().find(|t| t.topic.as_str() == topic) {
            Some(t) => t.partition_result.push(result),
            None => topics.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partition_result(vec![result]),
            ),
        }
    }
    topics
}

/// The controller's results in the response's shape. Kafka leaves partitions that needed no election out
/// of the answer to a request for all partitions (`all`).
fn wire(results: Vec<ElectionResult>, all: bool) -> Vec<ReplicaElectionResult> {
    group(
        results
            .into_iter()
            .filter(|r| !(all && r.error == Some(ResponseError::ElectionNotNeeded)))
            .map(|r| {
                (
                    r.topic,
                    r.partition,
                    r.error.map_or(0, |e| e.code()),
                    r.message,
                )
            }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(topic: &str, partition: i32, error: Option<ResponseError>) -> ElectionResult {
        ElectionResult {
            topic: topic.into(),
            partition,
            error,
            message: None,
        }
    }

    #[test]
    fn results_are_grouped_per_topic_and_unneeded_ones_dropped_for_all() {
        let results = vec![
            result("a", 0, None),
            result("b", 0, Some(ResponseError::ElectionNotNeeded)),
            result("a", 1, Some(ResponseError::PreferredLeaderNotAvailable)),
        ];
        let named = wire(results.clone(), false);
        assert_eq!(named.len(), 2);
        assert_eq!(named[0].topic.as_str(), "a");
        assert_eq!(
            named[0]
                .partition_result
                .iter()
                .map(|p| (p.partition_id, p.error_code))
                .collect::<Vec<_>>(),
            vec![
                (0, 0),
                (1, ResponseError::PreferredLeaderNotAvailable.code())
            ]
        );
        assert_eq!(
            named[1].partition_result[0].error_code,
            ResponseError::ElectionNotNeeded.code()
        );
        let all = wire(results, true);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].partition_result.len(), 2);
    }
}
