//! Followers: one fetcher task per leader this node follows partitions from (Kafka's replica fetcher
//! thread, `num.replica.fetchers` = 1), sending Fetch requests with this node's replica id to the leader's
//! `inter.broker.listener.name` endpoint and appending what comes back verbatim.
//!
//! A fetch carries each partition's log end and the epoch of its last batch; a leader whose log diverges
//! from that answers with the epoch and offset to truncate to (KIP-320), so a replica that was leader
//! before a failover drops records the new leader never had before fetching again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::Partition;
use crate::controller::connection::{decode_response, encode_request, FramedConnection};
use crate::server::Broker;

/// Fetch version followers send: topic ids, last fetched epoch, and the `ReplicaState` with this broker's
/// epoch (KIP-903), which lets the leader tell a restarted incarnation from the one it knew.
const FETCH_VERSION: i16 = 15;
/// How often the set of followed partitions is compared with the running fetchers, besides every image.
const RESCAN: Duration = Duration::from_millis(250);
/// A partition the leader refused is left out of fetches this long (the metadata usually catches up).
const MAX_PARTITION_BACKOFF: Duration = Duration::from_millis(500);

/// Runs until shutdown: starts a fetcher for every leader this node follows a partition from. A fetcher
/// ends by itself when no partition is followed from its leader any more.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut fetchers: HashMap<i32, JoinHandle<()>> = HashMap::new();
    let mut images = broker.quorum.subscribe();
    loop {
        fetchers.retain(|_, task| !task.is_finished());
        for leader in broker.replicas.followed_by_leader().into_keys() {
            fetchers.entry(leader).or_insert_with(|| {
                tracing::info!(leader, "replica fetcher started");
                tokio::spawn(fetch_from(broker.clone(), leader, shutdown.clone()))
            });
        }
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = images.changed() => {}
            _ = tokio::time::sleep(RESCAN) => {}
        }
    }
    for (_, task) in fetchers {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
}

/// The fetch loop for the partitions led by `leader`.
async fn fetch_from(broker: Arc<Broker>, leader: i32, mut shutdown: watch::Receiver<bool>) {
    let config = broker.config.clone();
    let timeout = Duration::from_millis(config.replica_socket_timeout_ms.max(1) as u64).max(
        Duration::from_millis(config.replica_fetch_wait_max_ms.max(0) as u64 + 1000),
    );
    let backoff = Duration::from_millis(config.replica_fetch_backoff_ms.max(0) as u64);
    let max_response =
        (config.replica_fetch_response_max_bytes.max(1) as usize).saturating_add(16 * 1024 * 1024);
    let mut connection: Option<FramedConnection> = None;
    let mut correlation_id = 0i32;
    let mut failing = false;
    let mut delayed: HashMap<(Uuid, i32), Instant> = HashMap::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let followed = broker
            .replicas
            .followed_by_leader()
            .remove(&leader)
            .unwrap_or_default();
        if followed.is_empty() {
            tracing::info!(
                leader,
                "replica fetcher stopped: no partition followed from this leader"
            );
            return;
        }
        let now = Instant::now();
        delayed.retain(|_, until| *until > now);
        let partitions: Vec<Arc<Partition>> = followed
            .into_iter()
            .filter(|p| !delayed.contains_key(&(p.topic_id, p.index)))
            .collect();
        let Some(address) = leader_address(&broker, leader) else {
            tokio::time::sleep(backoff.min(MAX_PARTITION_BACKOFF)).await;
            continue;
        };
        if partitions.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        if connection.as_ref().is_none_or(|c| c.address() != address) {
            connection = Some(FramedConnection::new(
                address.clone(),
                max_response,
                broker.tls.peer(&broker.config.inter_broker_listener_name),
            ));
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        let sent_epochs: Vec<i32> = partitions.iter().map(|p| p.leader_epoch()).collect();
        let request = fetch_request(&broker, &partitions);
        correlation_id = correlation_id.wrapping_add(1);
        let body = match encode_request(&request, FETCH_VERSION, correlation_id) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(leader, error = %e, "cannot encode a replica fetch");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let exchanged = tokio::select! {
            _ = shutdown.changed() => return,
            r = conn.exchange(&body, timeout) => r,
        };
        let response = exchanged.map_err(|e| e.to_string()).and_then(|frame| {
            decode_response::<FetchRequest>(frame, FETCH_VERSION, correlation_id)
        });
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                if !failing {
                    tracing::warn!(leader, %address, error = %e, "replica fetch failed; retrying");
                }
                failing = true;
                conn.reset();
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        if failing {
            tracing::info!(leader, %address, "replica fetching resumed");
            failing = false;
        }
        if response.error_code != 0 {
            tracing::warn!(
                leader,
                error_code = response.error_code,
                "replica fetch refused"
            );
            tokio::time::sleep(backoff).await;
            continue;
        }
        for topic in response.responses {
            for data in topic.partitions {
                let Some(i) = partitions
                    .iter()
                    .position(|p| p.topic_id == topic.topic_id && p.index == data.partition_index)
                else {
                    continue;
                };
                let partition = &partitions[i];
                // Leadership moved while the fetch was out: what it brought is for another epoch.
                if partition.is_leader() || partition.leader_epoch() != sent_epochs[i] {
                    continue;
                }
                if let Err(reason) = process(partition, data).await {
                    tracing::debug!(leader, topic = %partition.topic, partition = partition.index, reason, "follower fetch deferred");
                    delayed.insert(
                        (partition.topic_id, partition.index),
                        Instant::now() + backoff.min(MAX_PARTITION_BACKOFF),
                    );
                }
            }
        }
    }
}

/// The leader's endpoint on the inter-broker listener, as it registered it.
fn leader_address(broker: &Broker, leader: i32) -> Option<String> {
    let image = broker.image();
    let registration = image.brokers.get(&leader)?;
    registration
        .endpoints
        .iter()
        .find(|e| e.name == broker.config.inter_broker_listener_name)
        .map(|e| format!("{}:{}", e.host, e.port))
}

fn fetch_request(broker: &Broker, partitions: &[Arc<Partition>]) -> FetchRequest {
    let config = &broker.config;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for p in partitions {
        let log = p.log();
        let fetch = FetchPartition::default()
            .with_partition(p.index)
            .with_current_leader_epoch(p.leader_epoch())
            .with_fetch_offset(log.log_end_offset())
            .with_last_fetched_epoch(log.latest_epoch())
            .with_log_start_offset(log.log_start_offset())
            .with_partition_max_bytes(config.replica_fetch_max_bytes.max(1));
        match topics.iter_mut().find(|t| t.topic_id == p.topic_id) {
            Some(t) => t.partitions.push(fetch),
            None => topics.push(
                FetchTopic::default()
                    .with_topic_id(p.topic_id)
                    .with_partitions(vec![fetch]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(broker.node_id))
                .with_replica_epoch(broker.lifecycle.epoch()),
        )
        .with_max_wait_ms(config.replica_fetch_wait_max_ms.max(0))
        .with_min_bytes(config.replica_fetch_min_bytes.max(0))
        .with_max_bytes(config.replica_fetch_response_max_bytes.max(1))
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics)
}

/// Applies one partition's answer: truncation on a diverging epoch, else the records, then the leader's
/// high watermark and log start. An error is the reason to leave the partition out for a while.
async fn process(partition: &Partition, data: PartitionData) -> Result<(), String> {
    let log_end = partition.log_end_offset();
    match ResponseError::try_from_code(data.error_code) {
        None => {}
        Some(ResponseError::OffsetOutOfRange) => {
            // Below the leader's log start (retention there): start over at it. Above its end (only after
            // an unclean election): fall back to the leader's high watermark and fetch from there.
            let restart = if log_end < data.log_start_offset {
                partition.restart_at(data.log_start_offset).await
            } else if data.high_watermark >= 0 && data.high_watermark < log_end {
                partition.truncate_to(data.high_watermark).await
            } else {
                return Err("offset out of range".into());
            };
            tracing::warn!(topic = %partition.topic, partition = partition.index, log_end, leader_log_start = data.log_start_offset, "follower fetch offset out of range; log restarted");
            return restart.map_err(|e| e.to_string());
        }
        Some(e) => return Err(e.to_string()),
    }
    if data.diverging_epoch.epoch >= 0 || data.diverging_epoch.end_offset >= 0 {
        let target = truncation_offset(
            partition,
            data.diverging_epoch.epoch,
            data.diverging_epoch.end_offset,
        );
        tracing::info!(
            topic = %partition.topic,
            partition = partition.index,
            leader_epoch = data.diverging_epoch.epoch,
            leader_end_offset = data.diverging_epoch.end_offset,
            from = log_end,
            to = target,
            "follower log diverged from the leader's; truncating"
        );
        return partition
            .truncate_to(target)
            .await
            .map_err(|e| e.to_string());
    }
    if let Some(records) = data.records.filter(|r: &Bytes| !r.is_empty()) {
        partition
            .append_fetched(records)
            .await
            .map_err(|e| format!("appending fetched records: {e}"))?;
    }
    partition.follow_high_watermark(data.high_watermark);
    if data.log_start_offset >= 0 {
        partition.follow_log_start(data.log_start_offset).await;
    }
    Ok(())
}

/// Where a follower truncates when the leader says its log for `leader_epoch` ends at `leader_end`
/// (Kafka's follower rules): at the smaller of the two ends when both logs know that epoch; otherwise at
/// its own end for the latest epoch it has below it, and the next fetch checks again from there.
fn truncation_offset(partition: &Partition, leader_epoch: i32, leader_end: i64) -> i64 {
    let log_end = partition.log_end_offset();
    if leader_epoch < 0 || leader_end < 0 {
        return partition.high_watermark().min(log_end);
    }
    let (epoch, end) = partition.log().end_offset_for_epoch(leader_epoch);
    if epoch < 0 {
        leader_end.min(log_end)
    } else if epoch != leader_epoch {
        end.min(log_end)
    } else {
        leader_end.min(end).min(log_end)
    }
}
