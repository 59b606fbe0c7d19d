//! Produce (key 0): appends each partition's record batch to the leader's log. With acks=all the answer
//! waits until the high watermark passes the batch, i.e. every in-sync replica has it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse,
    TopicProduceResponse,
};
use kafka_protocol::messages::{BrokerId, ProduceRequest, ProduceResponse, TopicName};

use kavka_config::TopicConfig;
use kavka_storage::batch::{BatchHeader, Compression};

use super::{leader_hints, now_ms, storage_error_code, str_bytes};
use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

/// First Produce version that names topics by id instead of name (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;
/// First version with KIP-951 leader hints (current leader per partition, node endpoints).
const LEADER_HINT_VERSION: i16 = 10;
/// First version naming the offending records of a refused batch (KIP-467).
const RECORD_ERRORS_VERSION: i16 = 8;
/// Clients may send zstd batches only from Produce v7 (KIP-110).
const ZSTD_MIN_VERSION: i16 = 7;

/// Kafka's `message.timestamp.before.max.ms` / `after.max.ms` check for CreateTime batches. The batch
/// header carries the largest timestamp (exact for "after") and the first record's timestamp, which is
/// the earliest for every producer we know of (records are batched in send order): "before" is checked
/// on it rather than by decompressing every record on the produce path.
fn check_timestamps(header: &BatchHeader, config: &TopicConfig, now: i64) -> Result<(), String> {
    if header.timestamp_type_is_log_append()
        || config.message_timestamp_type == kavka_config::TimestampType::LogAppendTime
    {
        return Ok(());
    }
    let (earliest, latest) = (
        now.saturating_sub(config.message_timestamp_before_max_ms),
        now.saturating_add(config.message_timestamp_after_max_ms),
    );
    let out_of_range = if header.max_timestamp > latest {
        Some(header.max_timestamp)
    } else if header.base_timestamp >= 0 && header.base_timestamp < earliest {
        Some(header.base_timestamp)
    } else {
        None
    };
    match out_of_range {
        Some(ts) => Err(format!(
            "Timestamp {ts} of message is out of range. The timestamp should be within [{earliest}, {latest}]"
        )),
        None => Ok(()),
    }
}

/// The positions of the records without a key in the request's batch (a compacted topic refuses them,
/// as Kafka does). Only compacted topics pay for decoding. A compressed batch is decompressed up to
/// the bound the log cleaner works with: a batch that cannot be read within it (corrupt, or a
/// decompression bomb) is refused here, since it could neither be checked for keys nor ever be
/// compacted.
fn keyless_records(records: &bytes::Bytes) -> Result<Vec<i32>, kavka_storage::StorageError> {
    // A batch that fails the log's own validation is answered by it, with the precise error.
    if kavka_storage::batch::validate_client_batch(records).is_err() {
        return Ok(Vec::new());
    }
    kavka_storage::batch::keyless_records(
        records,
        kavka_storage::cleaner::DEFAULT_MAX_DECOMPRESSED_BYTES,
    )
    .map_err(kavka_storage::StorageError::Batch)
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: ProduceRequest,
) -> ProduceResponse {
    let version = ctx.api_version;
    let acks = request.acks;
    let authz = Authz::new(broker, ctx);
    let request_error = if !matches!(acks, -1..=1) {
        Some((
            ResponseError::InvalidRequiredAcks,
            "acks must be -1, 0 or 1",
        ))
    } else if let Some(error) = request_authorization_error(&authz, &request) {
        Some(error)
    } else if request.transactional_id.is_some() {
        Some((
            ResponseError::TransactionalIdAuthorizationFailed,
            "transactions are not supported by this broker",
        ))
    } else {
        None
    };
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut appended_any = false;
    // acks=all appends waiting for replication: (topic index, partition index, partition, last offset,
    // min.insync.replicas).
    let mut awaiting_replication = Vec::new();
    for topic_data in request.topic_data {
        let mut image = broker.image();
        let mut topic = if version >= TOPIC_ID_VERSION {
            image.topic_by_id(&topic_data.topic_id).cloned()
        } else {
            image.topic(&topic_data.name).cloned()
        };
        // By-id topics need their name resolved first; an unknown id stays UNKNOWN_TOPIC_ID.
        let write_allowed = request_error.is_none()
            && match (&topic, version >= TOPIC_ID_VERSION) {
                (Some(t), _) => authz.allows(AclOperation::Write, ResourceType::Topic, &t.name),
                (None, false) => {
                    authz.allows(AclOperation::Write, ResourceType::Topic, &topic_data.name)
                }
                (None, true) => true,
            };
        if topic.is_none()
            && version < TOPIC_ID_VERSION
            && broker.config.auto_create_topics_enable
            && request_error.is_none()
            && write_allowed
            && super::metadata::may_create_topic(&authz, &topic_data.name)
            && super::metadata::auto_create_topic(broker, &topic_data.name)
                .await
                .is_ok()
        {
            image = broker.image();
            topic = image.topic(&topic_data.name).cloned();
        }
        let topic_denied = request_error.is_none() && !write_allowed;
        // Resolved once per topic, not per partition: it parses every override.
        let topic_config = topic
            .as_ref()
            .and_then(|t| TopicConfig::resolve(&t.configs, &broker.effective_config()).ok());
        let unknown_topic_error = if version >= TOPIC_ID_VERSION {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        };
        let mut partition_responses = Vec::with_capacity(topic_data.partition_data.len());
        for data in topic_data.partition_data {
            let index = data.index;
            let error = |code: i16, message: Option<String>| {
                PartitionProduceResponse::default()
                    .with_index(index)
                    .with_error_code(code)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1)
                    .with_error_message(message.map(str_bytes))
            };
            if let Some((code, message)) = request_error {
                partition_responses.push(error(code.code(), Some(message.to_string())));
                continue;
            }
            if topic_denied {
                partition_responses
                    .push(error(ResponseError::TopicAuthorizationFailed.code(), None));
                continue;
            }
            let Some(topic) = &topic else {
                partition_responses.push(error(unknown_topic_error.code(), None));
                continue;
            };
            if topic.is_internal() {
                partition_responses.push(error(
                    ResponseError::InvalidTopicException.code(),
                    Some(format!("cannot produce to internal topic {}", topic.name)),
                ));
                continue;
            }
            let partition = match broker.replicas.leader_for(topic, index) {
                Ok(partition) => partition,
                Err(e) => {
                    partition_responses.push(error(e.code(), None));
                    continue;
                }
            };
            let Some(records) = data.records.filter(|r| !r.is_empty()) else {
                partition_responses.push(error(
                    ResponseError::InvalidRecord.code(),
                    Some("produce request has no record batch".into()),
                ));
                continue;
            };
            // A header too short to parse is left to the log's full validation.
            let header = BatchHeader::parse(&records).ok();
            let zstd = header.and_then(|h| h.compression().ok()) == Some(Compression::Zstd);
            if version < ZSTD_MIN_VERSION && zstd {
                partition_responses.push(error(
                    ResponseError::UnsupportedCompressionType.code(),
                    Some(format!(
                        "zstd compression requires Produce v{ZSTD_MIN_VERSION} or later"
                    )),
                ));
                continue;
            }
            if let (Some(header), Some(config)) = (&header, &topic_config) {
                if let Err(message) = check_timestamps(header, config, now_ms()) {
                    partition_responses
                        .push(error(ResponseError::InvalidTimestamp.code(), Some(message)));
                    continue;
                }
            }
            let keyless = match &topic_config {
                Some(c) if c.cleanup_policy.compact && header.is_some() => {
                    match keyless_records(&records) {
                        Ok(keyless) => keyless,
                        Err(e) => {
                            partition_responses.push(error(
                                storage_error_code(&e),
                                Some(format!("{e} (compacted topic {})", topic.name)),
                            ));
                            continue;
                        }
                    }
                }
                _ => Vec::new(),
            };
            if !keyless.is_empty() {
                let message = format!(
                    "Compacted topic cannot accept message without key in topic partition {}-{index}.",
                    topic.name
                );
                // Produce v8+ names each offending record, so the client fails only those with
                // INVALID_RECORD and the others of the batch with a retriable error (KIP-467).
                let record_errors = keyless
                    .into_iter()
                    .map(|i| {
                        BatchIndexAndErrorMessage::default()
                            .with_batch_index(i)
                            .with_batch_index_error_message(Some(str_bytes(message.clone())))
                    })
                    .collect();
                let response = error(ResponseError::InvalidRecord.code(), Some(message));
                partition_responses.push(if version >= RECORD_ERRORS_VERSION {
                    response.with_record_errors(record_errors)
                } else {
                    response
                });
                continue;
            }
            if acks == -1 {
                let isr = topic
                    .partitions
                    .get(index as usize)
                    .map(|p| p.isr.len())
                    .unwrap_or(0);
                let min_isr = topic_config
                    .as_ref()
                    .map_or(broker.effective_config().min_insync_replicas, |c| {
                        c.min_insync_replicas
                    })
                    .max(0) as usize;
                if isr < min_isr {
                    partition_responses.push(error(
                        ResponseError::NotEnoughReplicas.code(),
                        Some(format!(
                            "The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of {min_isr}"
                        )),
                    ));
                    continue;
                }
            }
            match partition.append(records, now_ms()).await {
                Ok(outcome) => {
                    appended_any |= !outcome.duplicate;
                    if outcome.duplicate {
                        tracing::debug!(topic = %topic.name, partition = index, base_offset = outcome.base_offset, "duplicate batch answered with its original offsets");
                    }
                    if acks == -1 {
                        let min_isr = topic_config
                            .as_ref()
                            .map_or(broker.effective_config().min_insync_replicas, |c| {
                                c.min_insync_replicas
                            })
                            .max(0) as usize;
                        awaiting_replication.push((
                            responses.len(),
                            partition_responses.len(),
                            partition.clone(),
                            outcome.last_offset,
                            min_isr,
                        ));
                    }
                    partition_responses.push(
                        PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(outcome.base_offset)
                            .with_log_append_time_ms(outcome.log_append_time)
                            .with_log_start_offset(outcome.log_start_offset),
                    );
                }
                Err(e) => {
                    tracing::debug!(topic = %topic.name, partition = index, error = %e, "produce rejected");
                    let mut response = error(storage_error_code(&e), Some(e.to_string()));
                    if matches!(e, kavka_storage::StorageError::Io(_)) {
                        tracing::error!(topic = %topic.name, partition = index, error = %e, "log append failed");
                    }
                    response.log_start_offset = partition.log_start_offset();
                    partition_responses.push(response);
                }
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(TopicName(str_bytes(
                    topic.as_ref().map(|t| t.name.clone()).unwrap_or_default(),
                )))
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partition_responses),
        );
        // Names are what v0-12 clients match on; keep the request's name even for unknown topics.
        if version < TOPIC_ID_VERSION {
            if let Some(last) = responses.last_mut() {
                last.name = topic_data.name;
            }
        }
    }
    if appended_any {
        broker.replicas.notify_appended();
    }
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(request.timeout_ms.max(0) as u64);
    for (topic, index, partition, last_offset, min_isr) in awaiting_replication {
        let outcome = match partition
            .wait_for_high_watermark(last_offset, deadline)
            .await
        {
            Ok(()) if partition.isr_size() < min_isr => {
                Err(ResponseError::NotEnoughReplicasAfterAppend)
            }
            other => other,
        };
        if let (Err(e), Some(response)) = (
            outcome,
            responses
                .get_mut(topic)
                .and_then(|t: &mut TopicProduceResponse| t.partition_responses.get_mut(index)),
        ) {
            tracing::debug!(partition = response.index, last_offset, error = ?e, "appended batch not acknowledged");
            response.error_code = e.code();
            response.base_offset = -1;
        }
    }
    let mut response = ProduceResponse::default().with_responses(responses);
    if version >= LEADER_HINT_VERSION {
        add_leader_hints(broker, ctx, &mut response);
    }
    response
}

/// Kafka's request-wide checks: a transactional producer needs WRITE on its transactional id; an
/// idempotent one IDEMPOTENT_WRITE on the cluster or WRITE on some topic.
fn request_authorization_error(
    authz: &Authz<'_>,
    request: &ProduceRequest,
) -> Option<(ResponseError, &'static str)> {
    if let Some(id) = &request.transactional_id {
        if !authz.allows(AclOperation::Write, ResourceType::TransactionalId, id) {
            return Some((
                ResponseError::TransactionalIdAuthorizationFailed,
                "not authorized to write with this transactional id",
            ));
        }
        return None;
    }
    // Only the fixed-size batch header is read, never the records.
    let idempotent = request
        .topic_data
        .iter()
        .flat_map(|t| t.partition_data.iter())
        .filter_map(|p| p.records.as_ref())
        .any(|r| BatchHeader::parse(r).is_ok_and(|h| h.producer_id >= 0));
    if idempotent && !authz.allows_idempotent_write() {
        return Some((
            ResponseError::ClusterAuthorizationFailed,
            "not authorized for idempotent writes",
        ));
    }
    None
}

/// KIP-951: the current leader of each partition refused as not led here, and those leaders' endpoints.
fn add_leader_hints(broker: &Broker, ctx: &RequestContext<'_>, response: &mut ProduceResponse) {
    let image = broker.image();
    let mut leaders = std::collections::BTreeSet::new();
    for topic in &mut response.responses {
        let found = if ctx.api_version >= TOPIC_ID_VERSION {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(topic.name.as_str())
        };
        let Some(found) = found else { continue };
        for p in &mut topic.partition_responses {
            if !leader_hints::wants_hint(p.error_code) {
                continue;
            }
            if let Some((leader, epoch)) = leader_hints::current_leader(&image, found, p.index) {
                p.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
                leaders.insert(leader);
            }
        }
    }
    response.node_endpoints =
        leader_hints::endpoints(&image, &leaders, &ctx.connection.listener_name)
            .into_iter()
            .map(|(id, host, port, rack)| {
                NodeEndpoint::default()
                    .with_node_id(BrokerId(id))
                    .with_host(str_bytes(host))
                    .with_port(port)
                    .with_rack(rack.map(str_bytes))
            })
            .collect();
}
