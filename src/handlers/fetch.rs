//! Fetch (key 1): whole stored record batches from partition logs, with long polling (`max_wait_ms` /
//! `min_bytes`) and the request/partition byte limits. Fetch sessions (KIP-227) are answered sessionless
//! (session id 0), which clients accept and answer with full fetch requests.
//!
//! Consumers read below the high watermark. A follower (a replica id in the request) reads up to the log
//! end; its fetch offset tells the leader how far its log reaches, which moves the high watermark and may
//! bring it into the ISR. A follower whose last fetched epoch diverges from the leader's log is told
//! where to truncate (KIP-320's diverging epoch) and gets no records.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};

use super::{leader_hints, now_ms, storage_error_code};
use crate::dispatch::RequestContext;
use crate::security::acl::{AclOperation, ResourceType};
use crate::security::authz::Authz;
use crate::server::Broker;

/// First Fetch version that names topics by id (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;
/// First version with KIP-951 leader hints (current leader per partition, node endpoints).
const LEADER_HINT_VERSION: i16 = 16;
/// First version carrying the follower's id and broker epoch in `ReplicaState` (KIP-903) instead of
/// the top-level `ReplicaId`.
const REPLICA_STATE_VERSION: i16 = 15;
/// First version carrying the follower's last fetched epoch (KIP-320).
const LAST_FETCHED_EPOCH_VERSION: i16 = 12;
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
    let follower = if ctx.api_version >= REPLICA_STATE_VERSION {
        (
            request.replica_state.replica_id.0,
            request.replica_state.replica_epoch,
        )
    } else {
        (request.replica_id.0, -1)
    };
    let follower = (follower.0 >= 0).then_some(follower);
    let authz = Authz::new(broker, ctx);
    // Only brokers replicate: a client naming a replica id would otherwise read past the high watermark
    // and move the ISR. As Kafka, every partition of such a fetch is answered TOPIC_AUTHORIZATION_FAILED
    // and nothing is read.
    let forged = follower.is_some() && !authz.allows_cluster(AclOperation::ClusterAction);
    let follower = if forged { None } else { follower };
    // Decided once per request, not on every pass of the long poll. Followers are allowed every topic.
    let readable: Vec<bool> = {
        let image = broker.image();
        request
            .topics
            .iter()
            .map(|t| {
                if forged {
                    return false;
                }
                if follower.is_some() {
                    return true;
                }
                let name = if ctx.api_version >= TOPIC_ID_VERSION {
                    image.topic_by_id(&t.topic_id).map(|t| t.name.as_str())
                } else {
                    Some(t.topic.as_str())
                };
                // An unknown id is answered UNKNOWN_TOPIC_ID by the read.
                match name {
                    Some(name) => authz.allows(AclOperation::Read, ResourceType::Topic, name),
                    None => true,
                }
            })
            .collect()
    };
    // Subscribe before the first read so an append between the read and the wait is not missed.
    let mut appended = broker.replicas.subscribe_appends();
    loop {
        let (responses, bytes, has_error) = read_once(
            broker,
            ctx.api_version,
            &request,
            &readable,
            max_bytes,
            follower,
        )
        .await;
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

/// One pass over the requested partitions. `follower` is the fetching replica's id and broker epoch.
async fn read_once(
    broker: &Broker,
    version: i16,
    request: &FetchRequest,
    readable: &[bool],
    max_bytes: usize,
    follower: Option<(i32, i64)>,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let image = broker.image();
    let mut remaining = max_bytes;
    let mut total = 0usize;
    let mut has_error = false;
    let mut topics = Vec::with_capacity(request.topics.len());
    for (fetch_topic, readable) in request.topics.iter().zip(readable) {
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
            if !readable {
                has_error = true;
                partitions
                    .push(base.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
                continue;
            }
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
            if follower.is_some_and(|(id, _)| !partition.has_replica(id)) {
                has_error = true;
                partitions.push(base.with_error_code(ResponseError::NotLeaderOrFollower.code()));
                continue;
            }
            let hw = partition.high_watermark();
            let log_start = partition.log_start_offset();
            // Consumers read up to the high watermark, followers up to the log end.
            let limit = if follower.is_some() {
                partition.log_end_offset()
            } else {
                hw
            };
            let base = base
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(log_start)
                .with_aborted_transactions(if request.isolation_level == 1 {
                    Some(Vec::new())
                } else {
                    None
                });
            if follower.is_some()
                && version >= LAST_FETCHED_EPOCH_VERSION
                && fp.last_fetched_epoch >= 0
            {
                let (epoch, end) = partition.log().end_offset_for_epoch(fp.last_fetched_epoch);
                if epoch < fp.last_fetched_epoch || end < fp.fetch_offset {
                    partitions.push(
                        base.with_diverging_epoch(
                            EpochEndOffset::default()
                                .with_epoch(epoch)
                                .with_end_offset(end),
                        ),
                    );
                    has_error = true;
                    continue;
                }
            }
            let read = if fp.fetch_offset == limit && fp.fetch_offset >= log_start {
                // Nothing new: answer without touching the disk.
                Ok(None)
            } else {
                let max = (fp.partition_max_bytes.max(0) as usize).min(remaining);
                partition
                    .read(fp.fetch_offset, max, limit, total == 0)
                    .await
                    .map(Some)
            };
            if let (Some((id, broker_epoch)), Ok(_)) = (follower, &read) {
                let outcome =
                    partition.record_follower_fetch(id, broker_epoch, fp.fetch_offset, now_ms());
                if outcome.high_watermark_advanced {
                    broker.replicas.notify_appended();
                }
                if let Some(change) = outcome.isr_expansion {
                    broker.replicas.propose_isr_change(change);
                }
            }
            // A follower learns the high watermark its own fetch may just have moved.
            let base = if follower.is_some() {
                let hw = partition.high_watermark();
                base.with_high_watermark(hw).with_last_stable_offset(hw)
            } else {
                base
            };
            match read {
                Ok(None) => partitions.push(base),
                Ok(Some(read)) => {
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
