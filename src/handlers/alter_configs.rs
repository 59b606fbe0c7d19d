//! AlterConfigs (key 33): replaces a resource's configuration overrides with the request's set (keys not
//! named lose their override), as Kafka's legacy API does. Topic overrides and dynamic broker settings
//! (the cluster-wide default "" or this node's id; only keys Kafka can change at run time) are metadata
//! records, so a change reaches the partitions (segment, retention, flush, message-size, cleanup settings)
//! and the cleaner without a restart. The incremental form is `incremental_alter_configs`.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::metadata::ControllerError;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

/// Resource type codes (Kafka's ConfigResource.Type).
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_BROKER_LOGGER: i8 = 8;

/// Kafka's ACL check for a config resource: topic configs are guarded by the topic, broker and
/// broker-logger configs by the cluster. Other types are left to the handler to refuse as invalid.
pub fn config_access_error(
    authz: &Authz<'_>,
    operation: AclOperation,
    resource_type: i8,
    name: &str,
) -> Option<ResponseError> {
    match resource_type {
        RESOURCE_TOPIC if !authz.allows(operation, ResourceType::Topic, name) => {
            Some(ResponseError::TopicAuthorizationFailed)
        }
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER if !authz.allows_cluster(operation) => {
            Some(ResponseError::ClusterAuthorizationFailed)
        }
        _ => None,
    }
}

/// The outcome of altering one resource: (error code, message).
pub type AlterOutcome = (i16, Option<String>);

/// Alters one resource: `build` turns its current settings (a topic's overrides, or one level of
/// dynamic broker configuration) into the new ones. `forwarded`: the request was relayed by the broker
/// it was sent to (it arrived on a controller listener), so a BROKER resource may name that broker.
pub async fn alter_resource(
    broker: &Broker,
    forwarded: bool,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    build: impl FnOnce(
            &BTreeMap<String, String>,
        ) -> Result<BTreeMap<String, String>, kavka_config::ConfigError>
        + Send
        + 'static,
) -> AlterOutcome {
    match resource_type {
        RESOURCE_TOPIC => {
            let topic = name.to_string();
            let result = broker
                .with_controller(move |c| c.alter_topic_configs(&topic, validate_only, build))
                .await;
            match result {
                Ok(()) => (0, None),
                Err(ControllerError::UnknownTopic) => (
                    ResponseError::UnknownTopicOrPartition.code(),
                    Some(format!("Topic {name} does not exist")),
                ),
                Err(e) => (e.code(), Some(e.to_string())),
            }
        }
        RESOURCE_BROKER => {
            // "" is the cluster-wide default; otherwise it must name the node the client sent the
            // request to (as Kafka checks on that broker before forwarding it to the controller).
            let named_node = name.parse::<i32>().is_ok_and(|id| id >= 0);
            let acceptable =
                name.is_empty() || name == broker.node_id.to_string() || (forwarded && named_node);
            if !acceptable {
                return (
                    ResponseError::InvalidRequest.code(),
                    Some(format!(
                        "Unexpected broker id, expected {} or empty string, but received {name}",
                        broker.node_id
                    )),
                );
            }
            let level = name.to_string();
            let base = broker.config.clone();
            let result = broker
                .with_controller(move |c| {
                    c.alter_broker_configs(&level, &base, validate_only, build)
                })
                .await;
            match result {
                Ok(()) => (0, None),
                Err(e) => (e.code(), Some(e.to_string())),
            }
        }
        other => (
            ResponseError::InvalidRequest.code(),
            Some(format!("Unsupported resource type {other}")),
        ),
    }
}

/// Duplicate keys in one resource make Kafka refuse the whole resource.
pub fn duplicate_keys<'a>(keys: impl Iterator<Item = &'a str>) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    keys.into_iter().any(|k| !seen.insert(k))
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let authz = Authz::new(broker, ctx);
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let denied = config_access_error(
            &authz,
            AclOperation::AlterConfigs,
            resource.resource_type,
            &name,
        );
        let (code, message) = if let Some(e) = denied {
            (e.code(), None)
        } else if duplicate_keys(resource.configs.iter().map(|c| c.name.as_str())) {
            (
                ResponseError::InvalidRequest.code(),
                Some("Error due to duplicate config keys".to_string()),
            )
        } else {
            let wanted: BTreeMap<String, Option<String>> = resource
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            alter_resource(
                broker,
                ctx.connection.is_controller_listener,
                resource.resource_type,
                &name,
                request.validate_only,
                move |_| {
                    // The request is the whole new set; a null value means no override.
                    Ok(wanted
                        .into_iter()
                        .filter_map(|(k, v)| v.map(|v| (k, v)))
                        .collect())
                },
            )
            .await
        };
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(str_bytes))
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}
