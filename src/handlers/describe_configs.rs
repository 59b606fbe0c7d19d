//! DescribeConfigs (key 32): broker and topic configurations with values, sources, synonyms and types.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kavka_config::ConfigEntry;

use super::alter_configs::{
    config_access_error, RESOURCE_BROKER, RESOURCE_BROKER_LOGGER, RESOURCE_TOPIC,
};
use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::security::acl::AclOperation;
use crate::security::authz::Authz;
use crate::server::Broker;

pub fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let image = broker.image();
    let authz = Authz::new(broker, ctx);
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let name = resource.resource_name.to_string();
            let result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            if let Some(e) = config_access_error(
                &authz,
                AclOperation::DescribeConfigs,
                resource.resource_type,
                &name,
            ) {
                return result.with_error_code(e.code());
            }
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => match image.topic(&name) {
                    Some(topic) => kavka_config::describe_topic_configs(
                        &topic.configs,
                        &broker.effective_config(),
                    ),
                    None => {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(str_bytes(format!(
                                "Topic {name} does not exist"
                            ))))
                    }
                },
                RESOURCE_BROKER => {
                    // An empty name is the cluster-wide default resource; otherwise it must be us.
                    if !name.is_empty() && name != broker.node_id.to_string() {
                        return result
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(str_bytes(format!(
                                "Unexpected broker id, expected {} but received {name}",
                                broker.node_id
                            ))));
                    }
                    broker.effective_config().describe()
                }
                RESOURCE_BROKER_LOGGER => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(
                            "broker logger configs are not supported by this broker",
                        )))
                }
                other => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(str_bytes(format!(
                            "Unsupported resource type {other}"
                        ))))
                }
            };
            let wanted = resource.configuration_keys.as_ref();
            let configs = entries
                .into_iter()
                .filter(|e| wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name)))
                .map(|e| {
                    to_result(
                        e,
                        request.include_synonyms,
                        request.include_documentation,
                        ctx.api_version,
                    )
                })
                .collect();
            result.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn to_result(
    entry: ConfigEntry,
    include_synonyms: bool,
    include_documentation: bool,
    _version: i16,
) -> DescribeConfigsResourceResult {
    let synonyms = if include_synonyms {
        entry
            .synonyms
            .into_iter()
            .map(|s| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(s.name))
                    .with_value(if entry.sensitive {
                        None
                    } else {
                        s.value.map(str_bytes)
                    })
                    .with_source(s.source.code())
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(entry.name))
        .with_value(if entry.sensitive {
            None
        } else {
            entry.value.map(str_bytes)
        })
        .with_read_only(entry.read_only)
        .with_config_source(entry.source.code())
        .with_is_sensitive(entry.sensitive)
        .with_synonyms(synonyms)
        .with_config_type(entry.config_type.code())
        .with_documentation(if include_documentation {
            entry.documentation.map(str_bytes)
        } else {
            None
        })
}
