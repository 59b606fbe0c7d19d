//! FindCoordinator (key 10): which node coordinates a consumer group (or, later, a transactional id): the
//! leader of the group's `__consumer_offsets` partition, which the first lookup creates, as in Kafka.
//! v4+ batches keys; v0-v3 carry one key and answer at the top level.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::str_bytes;
use crate::coordinator::{ensure_offsets_topic, partition_for};
use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

/// First version with batched `coordinator_keys` (KIP-699).
const BATCHED_VERSION: i16 = 4;
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// How long FindCoordinator waits for a group's offsets partition led here to be ready.
const SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<&str> = if ctx.api_version >= BATCHED_VERSION {
        request
            .coordinator_keys
            .iter()
            .map(|k| k.as_str())
            .collect()
    } else {
        vec![request.key.as_str()]
    };
    let authz = Authz::new(broker, ctx);
    let denial = match request.key_type {
        KEY_TYPE_GROUP => Some((ResourceType::Group, ResponseError::GroupAuthorizationFailed)),
        KEY_TYPE_TRANSACTION => Some((
            ResourceType::TransactionalId,
            ResponseError::TransactionalIdAuthorizationFailed,
        )),
        _ => None,
    };
    // Keys the requester may not describe are refused before anything is looked up or created.
    let refused: std::collections::HashSet<&str> = match denial {
        Some((resource_type, _)) => keys
            .iter()
            .copied()
            .filter(|key| !authz.allows(AclOperation::Describe, resource_type, key))
            .collect(),
        None => Default::default(),
    };
    let any_authorized = keys.iter().any(|key| !refused.contains(key));
    let offsets_topic = if request.key_type == KEY_TYPE_GROUP && any_authorized {
        Some(ensure_offsets_topic(broker).await)
    } else {
        None
    };
    if matches!(offsets_topic, Some(Ok(_))) {
        for key in keys.iter().filter(|key| !refused.contains(*key)) {
            crate::coordinator::loading::settle(broker, key, SETTLE_LIMIT).await;
        }
    }
    let image = broker.image();
    let lookup = |key: &str| -> Coordinator {
        let found = Coordinator::default()
            .with_key(str_bytes(key))
            .with_node_id(BrokerId(-1))
            .with_port(-1);
        if let (Some((_, error)), true) = (denial, refused.contains(key)) {
            return found.with_error_code(error.code());
        }
        match request.key_type {
            KEY_TYPE_GROUP => {
                let topic = match &offsets_topic {
                    Some(Ok(topic)) => topic,
                    Some(Err(code)) => return found.with_error_code(*code),
                    None => return found,
                };
                let index = partition_for(key, topic.partitions.len() as i32);
                let leader = topic
                    .partitions
                    .get(index as usize)
                    .map_or(-1, |p| p.leader);
                let endpoint = image
                    .live_broker(leader)
                    .and_then(|b| b.endpoint(&ctx.connection.listener_name));
                match endpoint {
                    Some(e) => found
                        .with_node_id(BrokerId(leader))
                        .with_host(str_bytes(e.host.clone()))
                        .with_port(i32::from(e.port)),
                    None => found.with_error_code(ResponseError::CoordinatorNotAvailable.code()),
                }
            }
            KEY_TYPE_TRANSACTION => found
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(str_bytes(
                    "transactions are not supported by this broker",
                ))),
            other => found
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(Some(str_bytes(format!(
                    "unknown coordinator key type {other}"
                )))),
        }
    };
    if ctx.api_version >= BATCHED_VERSION {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| lookup(key.as_str()))
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let single = lookup(request.key.as_str());
    FindCoordinatorResponse::default()
        .with_error_code(single.error_code)
        .with_error_message(single.error_message)
        .with_node_id(single.node_id)
        .with_host(single.host)
        .with_port(single.port)
}
