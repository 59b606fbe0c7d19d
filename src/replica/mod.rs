//! Partition replicas hosted on this node, kept in step with the metadata image: a partition assigned here
//! gets its log opened (recovering it if needed), a deleted topic has its logs removed.

pub mod cleaner;
pub mod fetcher;
pub mod isr;
mod partition;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use kafka_protocol::error::ResponseError;
use kavka_config::{BrokerConfig, TopicConfig};
use kavka_storage::{LogConfig, PartitionLog, StorageError, TimestampType};
use tokio::sync::watch;
use uuid::Uuid;

use crate::metadata::{IsrChangeRequest, MetadataImage, TopicImage};
pub use partition::Partition;

/// File in each partition directory recording which topic id it belongs to, so that a directory left by a
/// deleted topic is never mistaken for a new topic of the same name.
const PARTITION_METADATA_FILE: &str = "partition.metadata";

/// Identifies a partition by topic name and index.
pub type TopicPartition = (String, i32);

/// All partition replicas on this node.
pub struct ReplicaManager {
    node_id: i32,
    log_dirs: Vec<PathBuf>,
    /// The broker configuration in force (static plus dynamic): topic defaults come from it.
    broker_config: RwLock<Arc<BrokerConfig>>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// Bumped after every append, so that long-polling fetches wake up and re-read.
    appended: watch::Sender<u64>,
    /// Serializes `apply_image` and remembers the last image applied: two concurrent applications (or an
    /// older image applied after a newer one) would open a log twice or delete a live partition.
    applied_version: Mutex<Option<u64>>,
    /// ISR changes partitions propose, on their way to the controller (see `isr`).
    isr_changes: tokio::sync::mpsc::UnboundedSender<IsrChangeRequest>,
    isr_change_receiver: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<IsrChangeRequest>>>,
}

impl ReplicaManager {
    pub fn new(node_id: i32, broker_config: Arc<BrokerConfig>) -> ReplicaManager {
        let (appended, _) = watch::channel(0);
        let (isr_changes, isr_change_receiver) = tokio::sync::mpsc::unbounded_channel();
        ReplicaManager {
            node_id,
            log_dirs: broker_config.log_dirs.iter().map(PathBuf::from).collect(),
            broker_config: RwLock::new(broker_config),
            partitions: RwLock::new(HashMap::new()),
            appended,
            applied_version: Mutex::new(None),
            isr_changes,
            isr_change_receiver: Mutex::new(Some(isr_change_receiver)),
        }
    }

    /// Installs a new broker configuration (dynamic configuration changed); the next `apply_image`
    /// brings every open log's settings in line with it.
    pub fn set_broker_config(&self, config: Arc<BrokerConfig>) {
        match self.broker_config.write() {
            Ok(mut g) => *g = config,
            Err(p) => *p.into_inner() = config,
        }
    }

    fn broker_config(&self) -> Arc<BrokerConfig> {
        match self.broker_config.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.read_map()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// The hosted partition, only if it belongs to this incarnation of the topic: a topic deleted and
    /// re-created under the same name must never be served from the old log.
    pub fn get_for(&self, topic: &TopicImage, partition: i32) -> Option<Arc<Partition>> {
        self.get(&topic.name, partition)
            .filter(|p| p.topic_id == topic.topic_id)
    }

    /// The partition if this node leads it: what produce requests, consumers, offset lookups and the group
    /// coordinator need. Otherwise the error a client gets: UNKNOWN_TOPIC_OR_PARTITION for a partition the
    /// topic does not have, NOT_LEADER_OR_FOLLOWER for one led elsewhere (or not open here), which makes
    /// clients refresh their metadata.
    pub fn leader_for(
        &self,
        topic: &TopicImage,
        partition: i32,
    ) -> Result<Arc<Partition>, ResponseError> {
        if partition < 0 || partition as usize >= topic.partitions.len() {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        match self.get_for(topic, partition) {
            Some(p) if p.is_leader() => Ok(p),
            _ => Err(ResponseError::NotLeaderOrFollower),
        }
    }

    /// Queues an ISR change for the controller.
    pub fn propose_isr_change(&self, change: IsrChangeRequest) {
        // The receiver lives as long as the broker; after shutdown there is nobody left to tell.
        let _ = self.isr_changes.send(change);
    }

    /// The queue of proposed ISR changes (taken once, by the task that sends them).
    pub fn take_isr_changes(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<IsrChangeRequest>> {
        match self.isr_change_receiver.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        }
    }

    /// Partitions this node follows, grouped by the leader they fetch from.
    pub fn followed_by_leader(&self) -> HashMap<i32, Vec<Arc<Partition>>> {
        let mut by_leader: HashMap<i32, Vec<Arc<Partition>>> = HashMap::new();
        for p in self.read_map().values() {
            let leader = p.leader();
            if !p.is_leader() && leader >= 0 && leader != self.node_id {
                by_leader.entry(leader).or_default().push(p.clone());
            }
        }
        by_leader
    }

    /// Writes every hosted partition's high watermark checkpoint.
    pub fn checkpoint_high_watermarks(&self) {
        for p in self.partitions() {
            if let Err(e) = p.checkpoint_high_watermark() {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cannot checkpoint the high watermark");
            }
        }
    }

    /// A receiver that changes whenever any partition is appended to.
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    pub fn notify_appended(&self) {
        self.appended.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn read_map(&self) -> std::sync::RwLockReadGuard<'_, HashMap<TopicPartition, Arc<Partition>>> {
        match self.partitions.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn write_map(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<TopicPartition, Arc<Partition>>> {
        match self.partitions.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Brings hosted replicas in line with `image` (blocking: opens, recovers and deletes logs). Also removes
    /// partition directories on disk whose topic id is not in the image (deleted while this node was down).
    /// Images older than the last one applied are ignored. A partition whose log cannot be opened is logged
    /// and left offline (Metadata reports it without a leader); the others are still opened.
    pub fn apply_image(&self, image: &MetadataImage, now_ms: i64) {
        let mut applied = match self.applied_version.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if applied.is_some_and(|v| v >= image.last_applied) {
            return;
        }
        *applied = Some(image.last_applied);
        let broker_config = self.broker_config();
        // Remove partitions whose topic is gone (or was re-created with a new id), and replicas a
        // reassignment moved off this node.
        let stale: Vec<(TopicPartition, Arc<Partition>)> = self
            .read_map()
            .iter()
            .filter(|((topic, index), p)| {
                image
                    .topic(topic)
                    .map(|t| {
                        t.topic_id != p.topic_id
                            || t.partitions
                                .get(*index as usize)
                                .is_none_or(|assigned| !assigned.replicas.contains(&self.node_id))
                    })
                    .unwrap_or(true)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, partition) in stale {
            self.write_map().remove(&key);
            let dir = partition.log().dir().to_path_buf();
            drop(partition);
            remove_partition_dir(&dir);
            tracing::info!(topic = %key.0, partition = key.1, "partition replica removed");
        }
        // Open partitions assigned here that are not open yet.
        for topic in image.topics.values() {
            for p in &topic.partitions {
                if !p.replicas.contains(&self.node_id) {
                    continue;
                }
                let key = (topic.name.clone(), p.partition);
                if let Some(existing) = self.read_map().get(&key) {
                    existing.apply_metadata(p, now_ms);
                    existing
                        .log()
                        .update_config(log_config(topic, &broker_config));
                    continue;
                }
                let opened = self
                    .partition_dir(&topic.name, p.partition, topic.topic_id)
                    .and_then(|dir| {
                        PartitionLog::open(&dir, log_config(topic, &broker_config), now_ms)
                    });
                let log = match opened {
                    Ok(log) => log,
                    Err(e) => {
                        tracing::error!(topic = %topic.name, partition = p.partition, error = %e, "cannot open partition log; partition stays offline");
                        continue;
                    }
                };
                let partition = Partition::new(
                    topic.name.clone(),
                    topic.topic_id,
                    p.partition,
                    self.node_id,
                    log,
                    p,
                    now_ms,
                );
                self.write_map().insert(key, Arc::new(partition));
            }
        }
        self.remove_orphan_dirs(image);
    }

    /// Finds the partition's directory in any log dir, or picks the log dir with the fewest partitions.
    fn partition_dir(
        &self,
        topic: &str,
        partition: i32,
        topic_id: Uuid,
    ) -> Result<PathBuf, StorageError> {
        let name = format!("{topic}-{partition}");
        for log_dir in &self.log_dirs {
            let dir = log_dir.join(&name);
            if dir.is_dir() {
                if read_topic_id(&dir) == Some(topic_id) {
                    return Ok(dir);
                }
                tracing::warn!(dir = %dir.display(), "partition directory belongs to a deleted topic; removing it");
                remove_partition_dir(&dir);
            }
        }
        let log_dir = self
            .log_dirs
            .iter()
            .min_by_key(|d| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0))
            .ok_or_else(|| StorageError::Io(std::io::Error::other("no log.dirs configured")))?;
        let dir = log_dir.join(&name);
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!("{PARTITION_METADATA_FILE}.tmp"));
        std::fs::write(&tmp, format!("version: 0\ntopic_id: {topic_id}\n"))?;
        std::fs::rename(&tmp, dir.join(PARTITION_METADATA_FILE))?;
        Ok(dir)
    }

    fn remove_orphan_dirs(&self, image: &MetadataImage) {
        for log_dir in &self.log_dirs {
            let Ok(entries) = std::fs::read_dir(log_dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let dir = entry.path();
                let Some(topic_id) = read_topic_id(&dir) else {
                    continue;
                };
                if image.topic_by_id(&topic_id).is_none() {
                    tracing::info!(dir = %dir.display(), "removing partition directory of a deleted topic");
                    remove_partition_dir(&dir);
                }
            }
        }
    }

    /// Flushes periodically per `log.flush.interval.ms` / `flush.ms`.
    pub fn flush_due(&self, now_ms: i64) {
        let partitions: Vec<Arc<Partition>> = self.read_map().values().cloned().collect();
        for p in partitions {
            if let Err(e) = p.log().maybe_flush(now_ms) {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "scheduled flush failed");
            }
        }
    }

    /// Clean shutdown: flush every log, write producer snapshots and clean-shutdown markers.
    pub fn close_all(&self) {
        let partitions: Vec<Arc<Partition>> = self.write_map().drain().map(|(_, p)| p).collect();
        for p in partitions {
            if let Err(e) = p.checkpoint_high_watermark() {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cannot checkpoint the high watermark");
            }
            if let Err(e) = p.log().close() {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "closing log failed");
            }
        }
    }

    /// Deletes segments past `retention.ms` / `retention.bytes` and below the log start, on every hosted
    /// log (Kafka's periodic retention check, `log.retention.check.interval.ms`).
    pub fn enforce_retention(&self, now_ms: i64) {
        let partitions: Vec<Arc<Partition>> = self.read_map().values().cloned().collect();
        for p in partitions {
            match p.log().enforce_retention(now_ms, p.high_watermark()) {
                Ok(report) if report.segments_deleted > 0 => tracing::info!(
                    topic = %p.topic,
                    partition = p.index,
                    segments = report.segments_deleted,
                    bytes = report.bytes_freed,
                    log_start_offset = report.log_start_offset,
                    "retention deleted segments"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "retention check failed")
                }
            }
        }
    }

    /// Every hosted partition (a snapshot of the set).
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.read_map().values().cloned().collect()
    }

    pub fn partition_count(&self) -> usize {
        self.read_map().len()
    }
}

fn read_topic_id(dir: &Path) -> Option<Uuid> {
    let text = std::fs::read_to_string(dir.join(PARTITION_METADATA_FILE)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id: "))
        .and_then(|id| Uuid::parse_str(id.trim()).ok())
}

fn remove_partition_dir(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::error!(dir = %dir.display(), error = %e, "could not remove partition directory");
        }
    }
}

/// The storage settings of a topic: its overrides over the broker defaults.
pub fn log_config(topic: &TopicImage, broker: &BrokerConfig) -> LogConfig {
    let resolved = TopicConfig::resolve(&topic.configs, broker).or_else(|e| {
        // Overrides were validated when written; only a newer, stricter validation can get here.
        tracing::error!(topic = %topic.name, error = %e, "invalid topic config; using broker defaults");
        TopicConfig::resolve(&Default::default(), broker)
    });
    let Ok(c) = resolved else {
        return LogConfig::default();
    };
    LogConfig {
        segment_bytes: c.segment_size().max(1) as u64,
        segment_ms: c.max_segment_ms(),
        segment_index_bytes: c.segment_index_bytes.max(1) as u64,
        index_interval_bytes: c.index_interval_bytes.max(0) as u64,
        flush_interval_messages: c.flush_messages,
        flush_interval_ms: c.flush_ms,
        max_message_bytes: c.max_message_bytes.max(0) as usize,
        timestamp_type: match c.message_timestamp_type {
            kavka_config::TimestampType::LogAppendTime => TimestampType::LogAppendTime,
            kavka_config::TimestampType::CreateTime => TimestampType::CreateTime,
        },
        retention_ms: c.retention_ms,
        retention_bytes: c.retention_bytes,
        file_delete_delay_ms: c.file_delete_delay_ms,
        cleanup_delete: c.cleanup_policy.delete,
        cleanup_compact: c.cleanup_policy.compact,
        delete_retention_ms: c.delete_retention_ms,
        min_compaction_lag_ms: c.min_compaction_lag_ms,
        max_compaction_lag_ms: c.max_compaction_lag_ms,
        min_cleanable_dirty_ratio: c.min_cleanable_dirty_ratio,
    }
}
