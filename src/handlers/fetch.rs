//! Fetch (key 1): whole stored record batches from partition logs, with long polling (`max_wait_ms` /
//! `min_bytes`) and the request/partition byte limits. Fetch sessions (KIP-227) are answered sessionless
//! (session id 0), which clients accept and answer with full fetch requests.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};

use super::{leader_hints, storage_error_code};
use crate::dispatch::RequestContext;
use crate::server::Broker;

/// First Fetch version that names topics by id (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;
/// First version with KIP-951 leader hints (current leader per partition, node endpoints).
const LEADER_HINT_VERSION: i16 = 16;
/// A long poll never outlives this, whatever the client asks (keeps connections responsive at shutdown).
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext<'_>,
    request: FetchRequest,
) -> FetchResponse {
    if request.session_id != 0 {
        // We never hand out sessions, so a client naming one is confused; it restarts with a full fetch.
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
    }
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let deadline = Instant::now() + wait;
    // Kafka caps the client's max_bytes by fetch.max.bytes and min_bytes by the result.
    let max_bytes = request
        .max_bytes
        .clamp(0, broker.config.fetch_max_bytes.max(0)) as usize;
    let min_bytes = (request.min_bytes.max(0) as usize).min(max_bytes);
    // Subscribe before the first read so an append between the read and the wait is not missed.
    let mut appended = broker.replicas.subscribe_appends();
    loop {
        let (responses, bytes, has_error) =
            read_once(broker, ctx.api_version, &request, max_bytes).await;
        let now = Instant::now();
        if bytes >= min_bytes || has_error || request.topics.is_empty() || now >= deadline {
            let mut response = FetchResponse::default()
                .with_session_id(0)
                .with_responses(responses);
            if ctx.api_version >= LEADER_HINT_VERSION {
                add_leader_hints(broker, ctx, &mut response);
            }
            return response;
        }
        tokio::select! {
            changed = appended.changed() => {
                if changed.is_err() {
                    return FetchResponse::default().with_responses(responses);
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
}

/// KIP-951: the current leader of each partition refused as not led here, and those leaders' endpoints.
fn add_leader_hints(broker: &Broker, ctx: &RequestContext<'_>, response: &mut FetchResponse) {
    let image = broker.image();
    let mut leaders = std::collections::BTreeSet::new();
    for topic in &mut response.responses {
        let found = if ctx.api_version >= TOPIC_ID_VERSION {
            image.topic_by_id(&topic.topic_id)
        } else {
            image.topic(topic.topic.as_str())
        };
        let Some(found) = found else { continue };
        for p in &mut topic.partitions {
            if !leader_hints::wants_hint(p.error_code) {
                continue;
            }
            if let Some((leader, epoch)) =
                leader_hints::current_leader(&image, found, p.partition_index)
            {
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
                    .with_host(super::str_bytes(host))
                    .with_port(port)
                    .with_rack(rack.map(super::str_bytes))
            })
            .collect();
}

async fn read_once(
    broker: &Broker,
    version: i16,
    request: &FetchRequest,
    max_bytes: usize,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let image = broker.image();
    let mut remaining = max_bytes;
    let mut total = 0usize;
    let mut has_error = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    for fetch_topic in &request.topics {
        let topic = if version >= TOPIC_ID_VERSION {
            image.topic_by_id(&fetch_topic.topic_id)
        } else {
            image.topic(&fetch_topic.topic)
        };
        let mut partitions = Vec::with_capacity(fetch_topic.partitions.len());
        for fp in &fetch_topic.partitions {
            let base = PartitionData::default()
                .with_partition_index(fp.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(Bytes::new()));
            let Some(topic) = topic else {
                has_error = true;
                partitions.push(base.with_error_code(if version >= TOPIC_ID_VERSION {
                    ResponseError::UnknownTopicId.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                }));
                continue;
            };
            let partition = match broker.replicas.leader_for(topic, fp.partition) {
                Ok(partition) => partition,
                Err(e) => {
                    has_error = true;
                    partitions.push(base.with_error_code(e.code()));
                    continue;
                }
            };
            let epoch = partition.leader_epoch();
            if fp.current_leader_epoch >= 0 && fp.current_leader_epoch != epoch {
                has_error = true;
                partitions.push(base.with_error_code(if fp.current_leader_epoch < epoch {
                    ResponseError::FencedLeaderEpoch.code()
                } else {
                    ResponseError::UnknownLeaderEpoch.code()
                }));
                continue;
            }
            let hw = partition.high_watermark();
            let log_start = partition.log_start_offset();
            let base = base
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(log_start)
                .with_aborted_transactions(if request.isolation_level == 1 {
                    Some(Vec::new())
                } else {
                    None
                });
            // Nothing new below the high watermark: answer without touching the disk.
            if fp.fetch_offset == hw && fp.fetch_offset >= log_start {
                partitions.push(base);
                continue;
            }
            let max = (fp.partition_max_bytes.max(0) as usize).min(remaining);
            match partition.read(fp.fetch_offset, max, hw, total == 0).await {
                Ok(read) => {
                    let len = read.records.len();
                    total += len;
                    remaining = remaining.saturating_sub(len);
                    partitions.push(
                        base.with_log_start_offset(read.log_start_offset)
                            .with_records(Some(read.records)),
                    );
                }
                Err(e) => {
                    has_error = true;
                    partitions.push(base.with_error_code(storage_error_code(&e)));
                }
            }
        }
        let response = FetchableTopicResponse::default().with_partitions(partitions);
        topics.push(if version >= TOPIC_ID_VERSION {
            response.with_topic_id(fetch_topic.topic_id)
        } else {
            response.with_topic(TopicName(fetch_topic.topic.0.clone()))
        });
    }
    (topics, total, has_error)
}
