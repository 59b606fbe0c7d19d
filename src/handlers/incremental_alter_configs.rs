//! IncrementalAlterConfigs (key 44): SET / DELETE / APPEND / SUBTRACT on single configuration keys, with
//! Kafka's rules (APPEND and SUBTRACT only on list keys; duplicate keys refuse the resource; the result is
//! validated as CreateTopics configs are, INVALID_CONFIG naming the key).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kavka_config::ConfigOp;

use super::alter_configs::{alter_resource, config_access_error, duplicate_keys};
use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::security::acl::AclOperation;
use crate::security::authz::Authz;
use crate::server::Broker;

/// Kafka's AlterConfigOp.OpType codes.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
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
        let ops: Result<Vec<(String, ConfigOp)>, String> = resource
            .configs
            .iter()
            .map(|c| {
                let value = c.value.as_ref().map(|v| v.to_string());
                let key = c.name.to_string();
                let op = match (c.config_operation, value) {
                    (OP_DELETE, _) => ConfigOp::Delete,
                    (OP_SET, Some(v)) => ConfigOp::Set(v),
                    (OP_APPEND, Some(v)) => ConfigOp::Append(v),
                    (OP_SUBTRACT, Some(v)) => ConfigOp::Subtract(v),
                    (OP_SET | OP_APPEND | OP_SUBTRACT, None) => {
                        return Err(format!("Null value not supported for : {key}"))
                    }
                    (other, _) => {
                        return Err(format!("Unknown config operation {other} for {key}"))
                    }
                };
                Ok((key, op))
            })
            .collect();
        let (code, message) = match (denied, ops) {
            (Some(e), _) => (e.code(), None),
            _ if duplicate_keys(resource.configs.iter().map(|c| c.name.as_str())) => (
                ResponseError::InvalidRequest.code(),
                Some("Error due to duplicate config keys".to_string()),
            ),
            (None, Err(message)) => (ResponseError::InvalidRequest.code(), Some(message)),
            (None, Ok(ops)) => {
                let apply = if resource.resource_type == super::alter_configs::RESOURCE_TOPIC {
                    kavka_config::apply_topic_config_ops
                } else {
                    kavka_config::apply_broker_config_ops
                };
                alter_resource(
                    broker,
                    ctx.connection.is_controller_listener,
                    resource.resource_type,
                    &name,
                    request.validate_only,
                    move |current| apply(current, &ops),
                )
                .await
            }
        };
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(str_bytes))
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
