//! CreateTopics (key 19): validated and written by the controller; `validate_only` writes nothing.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::str_bytes;
use crate::dispatch::RequestContext;
use crate::metadata::NewTopic;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut name_counts: HashMap<String, usize> = HashMap::new();
    for topic in &request.topics {
        *name_counts.entry(topic.name.to_string()).or_default() += 1;
    }
    // Kafka's per-request cap (ReplicationControlManager.validateTotalNumberOfPartitions) fails every topic.
    let requested_partitions: i64 = request
        .topics
        .iter()
        .map(|t| {
            if !t.assignments.is_empty() {
                t.assignments.len() as i64
            } else if t.num_partitions == -1 {
                broker.config.num_partitions as i64
            } else {
                t.num_partitions.max(0) as i64
            }
        })
        .sum();
    if requested_partitions > crate::metadata::MAX_PARTITIONS_PER_REQUEST as i64 {
        let error = crate::metadata::ControllerError::TooManyPartitions;
        let results = request
            .topics
            .into_iter()
            .map(|t| {
                CreatableTopicResult::default()
                    .with_name(t.name)
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_error_code(error.code())
                    .with_error_message(Some(str_bytes(error.to_string())))
            })
            .collect();
        return CreateTopicsResponse::default().with_topics(results);
    }
    let authz = Authz::new(broker, ctx);
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.to_string();
        let result = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if name_counts.get(&name).copied().unwrap_or(0) > 1 {
            results.push(
                result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(str_bytes(format!(
                        "Create topics request from client `{}` contains multiple entries for the following topics: {name}",
                        ctx.client_id.clone().unwrap_or_default()
                    )))),
            );
            continue;
        }
        if !super::metadata::may_create_topic(&authz, &name) {
            results.push(result.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut null_config = None;
        for config in &topic.configs {
            match &config.value {
                Some(value) => {
                    configs.insert(config.name.to_string(), value.to_string());
                }
                None => null_config = Some(config.name.to_string()),
            }
        }
        if let Some(key) = null_config {
            results.push(
                result
                    .with_error_code(ResponseError::InvalidConfig.code())
                    .with_error_message(Some(str_bytes(format!(
                        "Null value not supported for topic configs: {key}"
                    )))),
            );
            continue;
        }
        let mut assignments: Vec<(i32, Vec<i32>)> = topic
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        assignments.sort_by_key(|(p, _)| *p);
        if assignments
            .iter()
            .enumerate()
            .any(|(i, (p, _))| *p != i as i32)
        {
            results.push(
                result
                    .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(Some(str_bytes(
                        "Partitions in the manual assignment must be numbered consecutively from 0.",
                    ))),
            );
            continue;
        }
        let new_topic = NewTopic {
            name: name.clone(),
            num_partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments: assignments.into_iter().map(|(_, r)| r).collect(),
            configs: configs.clone(),
        };
        let validate_only = request.validate_only;
        match broker
            .with_controller(move |c| c.create_topic(&new_topic, validate_only))
            .await
        {
            Ok((topic_id, partitions, rf)) => {
                let result = result
                    .with_topic_id(if validate_only {
                        uuid::Uuid::nil()
                    } else {
                        topic_id
                    })
                    .with_num_partitions(partitions)
                    .with_replication_factor(rf);
                // The resulting configs are shown only to those who may read them.
                if !authz.allows(AclOperation::DescribeConfigs, ResourceType::Topic, &name) {
                    results.push(
                        result
                            .with_topic_config_error_code(
                                ResponseError::TopicAuthorizationFailed.code(),
                            )
                            .with_configs(Some(Vec::new())),
                    );
                    continue;
                }
                let described =
                    kavka_config::describe_topic_configs(&configs, &broker.effective_config())
                        .into_iter()
                        .map(|entry| {
                            CreatableTopicConfigs::default()
                                .with_name(str_bytes(entry.name))
                                .with_value(if entry.sensitive {
                                    None
                                } else {
                                    entry.value.map(str_bytes)
                                })
                                .with_read_only(entry.read_only)
                                .with_config_source(entry.source.code())
                                .with_is_sensitive(entry.sensitive)
                        })
                        .collect();
                results.push(result.with_configs(Some(described)));
            }
            Err(e) => results.push(
                result
                    .with_error_code(e.code())
                    .with_error_message(Some(str_bytes(e.to_string()))),
            ),
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
