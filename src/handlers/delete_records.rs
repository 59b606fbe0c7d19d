//! DeleteRecords (key 21): moves each partition's log start offset up to the given offset (-1: the high
//! watermark), so records below it are gone for every reader (Fetch below it is OFFSET_OUT_OF_RANGE);
//! segments wholly below it are removed. Answers the new low watermark.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::storage_error_code;
use crate::dispatch::RequestContext;
use crate::metadata::INTERNAL_TOPICS;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let image = broker.image();
    let authz = Authz::new(broker, ctx);
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.to_string();
        let known = image.topic(&name).cloned();
        let deletable = authz.allows(AclOperation::Delete, ResourceType::Topic, &name);
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for p in topic.partitions {
            let result = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            let partition = match known.as_ref() {
                _ if !deletable => Err(ResponseError::TopicAuthorizationFailed),
                Some(t) => broker.replicas.leader_for(t, p.partition_index),
                None => Err(ResponseError::UnknownTopicOrPartition),
            };
            let result = match partition {
                Err(e) => result.with_error_code(e.code()),
                // Kafka: "Cannot delete records of internal topic" (InvalidTopicException).
                Ok(_) if INTERNAL_TOPICS.contains(&name.as_str()) => {
                    result.with_error_code(ResponseError::InvalidTopicException.code())
                }
                Ok(partition) => {
                    let offset = p.offset;
                    let deleted = tokio::task::spawn_blocking(move || {
                        partition
                            .log()
                            .delete_records(offset, partition.high_watermark())
                    })
                    .await;
                    match deleted {
                        Ok(Ok(low_watermark)) => {
                            tracing::info!(topic = %name, partition = p.partition_index, low_watermark, "records deleted");
                            result.with_low_watermark(low_watermark)
                        }
                        Ok(Err(e)) => result.with_error_code(storage_error_code(&e)),
                        Err(_) => result.with_error_code(ResponseError::KafkaStorageError.code()),
                    }
                }
            };
            partitions.push(result);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
