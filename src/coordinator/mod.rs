//! Group coordination state kept in the internal `__consumer_offsets` topic.
//!
//! What is here: committed offsets of consumer groups, and the "simple" groups they imply (groups used only
//! for offset storage by consumers that assign partitions themselves, which Kafka creates implicitly on the
//! first commit with generation -1). Every change is first appended to the group's `__consumer_offsets`
//! partition (`abs(java_hash(group)) % offsets.topic.num.partitions`, as Kafka) and only then applied in
//! memory; on start-up the partitions are replayed. The membership protocol (JoinGroup, SyncGroup, ...) builds
//! on this in the consumer-groups issue.

pub mod assignor;
pub mod classic;
pub mod consumer;
pub mod consumer_records;
pub mod loading;
pub mod records;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::metadata::{ControllerError, NewTopic, TopicImage};
use crate::replica::Partition;
use crate::server::Broker;
use consumer_records::ConsumerGroupValue;
use records::{GroupMetadataValue, OffsetCommitValue, OffsetsKey};

/// The internal topic holding group state.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Largest read while replaying a partition at start-up.
const REPLAY_READ_BYTES: usize = 1024 * 1024;

/// Kafka's partition for a group: `Utils.abs(groupId.hashCode()) % partitions`, with Java's `String.hashCode`
/// over UTF-16 code units (so clients and tools that compute it agree with us).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32));
    // Kafka's Utils.abs maps i32::MIN to 0 rather than overflowing.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

/// A committed offset and where it sits in `__consumer_offsets` (so that a late in-memory update never
/// overwrites a newer one: memory always reflects log order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOffset {
    pub value: OffsetCommitValue,
    log_offset: i64,
}

/// One group's committed offsets, by (topic, partition).
#[derive(Debug, Default, Clone)]
pub struct GroupOffsets {
    pub offsets: BTreeMap<(String, i32), StoredOffset>,
}

/// In-memory group state of this coordinator.
#[derive(Default)]
pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, GroupOffsets>>,
}

/// The value of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsValue {
    Offset(OffsetCommitValue),
    Group(GroupMetadataValue),
    ConsumerGroup(consumer_records::ConsumerGroupValue),
}

impl OffsetsValue {
    fn encode(&self) -> Result<Bytes, records::RecordFormatError> {
        match self {
            OffsetsValue::Offset(v) => v.encode(),
            OffsetsValue::Group(v) => v.encode(),
            OffsetsValue::ConsumerGroup(v) => v.encode(),
        }
    }
}

/// The live consumer-group records of each group, as last written.
pub type ConsumerGroupRecords =
    HashMap<String, BTreeMap<consumer_records::ConsumerGroupKey, ConsumerGroupValue>>;

/// One change to write: a key and its value (None = tombstone).
pub type OffsetsRecord = (OffsetsKey, Option<OffsetsValue>);

/// The record that deletes one committed offset.
pub fn offset_tombstone(group: &str, topic: &str, partition: i32) -> OffsetsRecord {
    (
        OffsetsKey::OffsetCommit {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        },
        None,
    )
}

impl GroupCoordinator {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, GroupOffsets>> {
        match self.groups.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A copy of a group's offsets, or None if the group does not exist.
    pub fn group(&self, group: &str) -> Option<GroupOffsets> {
        self.lock().get(group).cloned()
    }

    /// Forgets a group's offsets in memory (its offsets partition is no longer coordinated here).
    pub fn remove_group(&self, group: &str) {
        self.lock().remove(group);
    }

    pub fn group_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Offsets older than `cutoff_ms` by Kafka's rule, by group: never for groups in use; all of them
    /// for a group that has been empty since before the cutoff; by commit time for simple groups.
    pub fn expired_offsets(
        &self,
        cutoff_ms: i64,
        expiry: impl Fn(&str) -> classic::OffsetExpiry,
    ) -> Vec<(String, Vec<OffsetsRecord>)> {
        let groups = self.lock();
        let mut expired = Vec::new();
        for (group, offsets) in groups.iter() {
            let rule = expiry(group);
            let records: Vec<OffsetsRecord> = offsets
                .offsets
                .iter()
                .filter(|(_, stored)| match rule {
                    classic::OffsetExpiry::InUse => false,
                    classic::OffsetExpiry::EmptySince(since) => since < cutoff_ms,
                    classic::OffsetExpiry::CommitTime => stored.value.commit_timestamp < cutoff_ms,
                })
                .map(|((topic, partition), _)| offset_tombstone(group, topic, *partition))
                .collect();
            if !records.is_empty() {
                expired.push((group.clone(), records));
            }
        }
        expired
    }

    /// Applies one record found at `log_offset` of the offsets topic (replay, or after a successful append).
    /// Group membership values are the membership state's business ([`classic::ClassicGroups::restore`]).
    pub fn apply(&self, key: &OffsetsKey, value: Option<&OffsetsValue>, log_offset: i64) {
        let value = match value {
            Some(OffsetsValue::Offset(v)) => Some(v),
            Some(OffsetsValue::Group(_) | OffsetsValue::ConsumerGroup(_)) => return,
            None => None,
        };
        let mut groups = self.lock();
        match key {
            OffsetsKey::OffsetCommit {
                group,
                topic,
                partition,
            } => {
                let tp = (topic.clone(), *partition);
                match value {
                    Some(value) => {
                        let entry = groups.entry(group.clone()).or_default();
                        let newer = entry
                            .offsets
                            .get(&tp)
                            .is_none_or(|old| old.log_offset < log_offset);
                        if newer {
                            entry.offsets.insert(
                                tp,
                                StoredOffset {
                                    value: value.clone(),
                                    log_offset,
                                },
                            );
                        }
                    }
                    None => {
                        if let Some(entry) = groups.get_mut(group) {
                            if entry
                                .offsets
                                .get(&tp)
                                .is_some_and(|old| old.log_offset < log_offset)
                            {
                                entry.offsets.remove(&tp);
                            }
                            if entry.offsets.is_empty() {
                                groups.remove(group);
                            }
                        }
                    }
                }
            }
            // Membership records do not touch offsets: a group deletion tombstones each offset itself, and
            // a group that changes protocol keeps its offsets.
            OffsetsKey::GroupMetadata { .. } | OffsetsKey::ConsumerGroup(_) => {}
        }
    }

    /// Replays one `__consumer_offsets` partition from its log start to its log end (this node leads it:
    /// everything in its log is, or is about to be, committed), restoring offsets here and the last stored
    /// membership of each group into `membership`.
    pub async fn replay(
        &self,
        partition: &Partition,
        membership: &classic::ClassicGroups,
    ) -> Result<(usize, ConsumerGroupRecords), String> {
        let mut last_membership: HashMap<String, Option<GroupMetadataValue>> = HashMap::new();
        let mut consumer_groups = ConsumerGroupRecords::new();
        let mut offset = partition.log_start_offset();
        let end = partition.log_end_offset();
        let mut applied = 0usize;
        while offset < end {
            let read = partition
                .read(offset, REPLAY_READ_BYTES, end, true)
                .await
                .map_err(|e| e.to_string())?;
            if read.records.is_empty() {
                break;
            }
            let mut rest = read.records;
            while !rest.is_empty() {
                let header = kavka_storage::batch::BatchHeader::parse(&rest)
                    .map_err(|e| format!("offset {offset}: {e}"))?;
                let size = header.total_size().min(rest.len());
                let mut batch = rest.split_to(size);
                offset = header.last_offset() + 1;
                let set = RecordBatchDecoder::decode(&mut batch)
                    .map_err(|e| format!("batch at {}: {e}", header.base_offset))?;
                for record in set.records {
                    let Some(key) = record.key.clone() else {
                        continue;
                    };
                    match OffsetsKey::decode(key) {
                        Ok(Some(key)) => {
                            let value = match (&key, record.value.clone()) {
                                (OffsetsKey::OffsetCommit { .. }, Some(v)) => {
                                    Some(OffsetsValue::Offset(
                                        OffsetCommitValue::decode(v).map_err(|e| e.to_string())?,
                                    ))
                                }
                                (OffsetsKey::GroupMetadata { .. }, Some(v)) => {
                                    Some(OffsetsValue::Group(
                                        GroupMetadataValue::decode(v).map_err(|e| e.to_string())?,
                                    ))
                                }
                                (OffsetsKey::ConsumerGroup(k), Some(v)) => {
                                    match ConsumerGroupValue::decode(k.record_type(), v) {
                                        Ok(v) => Some(OffsetsValue::ConsumerGroup(v)),
                                        Err(e) => {
                                            // Membership is rebuilt by the members' next heartbeats.
                                            tracing::warn!(offset = record.offset, error = %e, "skipping unreadable consumer group record");
                                            continue;
                                        }
                                    }
                                }
                                _ => None,
                            };
                            if let OffsetsKey::ConsumerGroup(k) = &key {
                                let records =
                                    consumer_groups.entry(k.group().to_string()).or_default();
                                match &value {
                                    Some(OffsetsValue::ConsumerGroup(v)) => {
                                        records.insert(k.clone(), v.clone());
                                    }
                                    _ => {
                                        records.remove(k);
                                    }
                                }
                            }
                            if let OffsetsKey::GroupMetadata { group } = &key {
                                last_membership.insert(
                                    group.clone(),
                                    match &value {
                                        Some(OffsetsValue::Group(g)) => Some(g.clone()),
                                        _ => None,
                                    },
                                );
                            }
                            self.apply(&key, value.as_ref(), record.offset);
                            applied += 1;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(offset = record.offset, error = %e, "skipping unreadable {OFFSETS_TOPIC} record key");
                        }
                    }
                }
            }
        }
        let now = std::time::Instant::now();
        for (group, value) in last_membership {
            match value {
                Some(value) => membership.restore(&group, &value, now),
                None => membership.remove_group(&group),
            }
        }
        consumer_groups.retain(|_, records| !records.is_empty());
        Ok((applied, consumer_groups))
    }
}

/// The offsets topic, created on first use with Kafka's settings for it (`offsets.topic.num.partitions`,
/// `offsets.topic.replication.factor` capped at the live brokers so a single node can host it, compacted,
/// `offsets.topic.segment.bytes`). Errors are the Kafka code to answer with.
pub async fn ensure_offsets_topic(broker: &Broker) -> Result<TopicImage, i16> {
    if let Some(topic) = broker.image().topic(OFFSETS_TOPIC) {
        return Ok(topic.clone());
    }
    let config = &broker.config;
    let live = broker.image().live_brokers().count() as i16;
    let rf = config.offsets_topic_replication_factor.min(live).max(1);
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: config.offsets_topic_num_partitions,
        replication_factor: rf,
        assignments: Vec::new(),
        configs: [
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("compression.type".to_string(), "producer".to_string()),
            (
                "segment.bytes".to_string(),
                config.offsets_topic_segment_bytes.to_string(),
            ),
        ]
        .into(),
    };
    match broker.create_topic(topic).await {
        Ok(_) | Err(ControllerError::TopicAlreadyExists(_)) => {}
        Err(e) => {
            tracing::error!(error = %e, "cannot create {OFFSETS_TOPIC}");
            return Err(ResponseError::CoordinatorNotAvailable.code());
        }
    }
    broker
        .image()
        .topic(OFFSETS_TOPIC)
        .cloned()
        .ok_or(ResponseError::CoordinatorNotAvailable.code())
}

/// Appends records for one group to its offsets partition, then applies them in memory. Returns the Kafka
/// error code on failure (nothing applied).
pub async fn write_group_records(
    broker: &Broker,
    group: &str,
    changes: Vec<OffsetsRecord>,
) -> Result<(), i16> {
    if changes.is_empty() {
        return Ok(());
    }
    let topic = ensure_offsets_topic(broker).await?;
    let index = partition_for(group, topic.partitions.len() as i32);
    let Ok(partition) = broker.replicas.leader_for(&topic, index) else {
        return Err(ResponseError::NotCoordinator.code());
    };
    let now = crate::handlers::now_ms();
    let mut records: Vec<Record> = Vec::with_capacity(changes.len());
    for (i, (key, value)) in changes.iter().enumerate() {
        let encoded = key.encode().and_then(|k| {
            value
                .as_ref()
                .map(OffsetsValue::encode)
                .transpose()
                .map(|v| (k, v))
        });
        let (key, value) = match encoded {
            Ok(kv) => kv,
            Err(e) => {
                // A string beyond Kafka's int16 length cannot be stored; refuse rather than write a
                // record that replay could not read.
                tracing::warn!(group, error = %e, "refusing to store an unencodable group record");
                return Err(ResponseError::InvalidCommitOffsetSize.code());
            }
        };
        records.push(Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while `offset - sequence` is constant, and takes the
            // header's base sequence from the first record: -1, 0, 1, ... gives one batch whose base
            // sequence is -1, i.e. not an idempotent write.
            sequence: i as i32 - 1,
            timestamp: now,
            key: Some(key),
            value,
            headers: IndexMap::new(),
        });
    }
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    if let Err(e) = RecordBatchEncoder::encode(&mut buf, &records, &options) {
        tracing::error!(error = %e, "cannot encode {OFFSETS_TOPIC} records");
        return Err(ResponseError::UnknownServerError.code());
    }
    let batch: Bytes = buf.freeze();
    match partition.append(batch, now).await {
        Ok(outcome) => {
            broker.replicas.notify_appended();
            // As Kafka's coordinator writes with acks=all: a change is applied and answered only once
            // every in-sync replica has it, so a coordinator failover cannot take it back.
            let timeout = std::time::Duration::from_millis(
                broker.config.offsets_commit_timeout_ms.max(0) as u64,
            );
            let deadline = tokio::time::Instant::now() + timeout;
            if let Err(e) = partition
                .wait_for_high_watermark(outcome.last_offset, deadline)
                .await
            {
                tracing::warn!(group, error = %e, "{OFFSETS_TOPIC} write not replicated in time");
                return Err(match e {
                    ResponseError::NotLeaderOrFollower => ResponseError::NotCoordinator.code(),
                    _ => ResponseError::CoordinatorNotAvailable.code(),
                });
            }
            for (i, (key, value)) in changes.iter().enumerate() {
                broker
                    .groups
                    .apply(key, value.as_ref(), outcome.base_offset + i as i64);
            }
            Ok(())
        }
        Err(kavka_storage::StorageError::MessageTooLarge { .. }) => {
            Err(ResponseError::InvalidCommitOffsetSize.code())
        }
        Err(e) => {
            tracing::error!(group, error = %e, "cannot write to {OFFSETS_TOPIC}");
            Err(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_java_string_hash() {
        // Java: "app".hashCode() == 96801; "".hashCode() == 0.
        assert_eq!(partition_for("app", 50), 96801 % 50);
        assert_eq!(partition_for("", 50), 0);
        // Non-ASCII hashes over UTF-16 units: "é".hashCode() == 233.
        assert_eq!(partition_for("é", 50), 233 % 50);
        // A negative hash is folded with abs: "polygenelubricants".hashCode() == Integer.MIN_VALUE -> 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
    }

    fn commit(group: &str, p: i32, offset: i64) -> OffsetsRecord {
        (
            OffsetsKey::OffsetCommit {
                group: group.into(),
                topic: "t".into(),
                partition: p,
            },
            Some(OffsetsValue::Offset(OffsetCommitValue {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 0,
            })),
        )
    }

    #[test]
    fn memory_follows_log_order() {
        let c = GroupCoordinator::default();
        let (k, v) = commit("g", 0, 10);
        c.apply(&k, v.as_ref(), 5);
        let (k2, v2) = commit("g", 0, 7);
        // An older log position arriving late must not win.
        c.apply(&k2, v2.as_ref(), 3);
        let offsets = c.group("g").expect("group").offsets;
        assert_eq!(offsets[&("t".to_string(), 0)].value.offset, 10);
        // A tombstone after it removes the offset, and the empty group with it.
        c.apply(&k, None, 6);
        assert!(c.group("g").is_none());
    }

    #[test]
    fn only_old_offsets_of_groups_not_in_use_expire() {
        let c = GroupCoordinator::default();
        for (group, ts, log) in [("idle", 100, 0), ("idle", 900, 1), ("busy", 100, 2)] {
            let key = OffsetsKey::OffsetCommit {
                group: group.into(),
                topic: "t".into(),
                partition: log as i32,
            };
            let value = OffsetsValue::Offset(OffsetCommitValue {
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: ts,
            });
            c.apply(&key, Some(&value), log);
        }
        let expired = c.expired_offsets(500, |g| {
            if g == "busy" {
                classic::OffsetExpiry::InUse
            } else {
                classic::OffsetExpiry::CommitTime
            }
        });
        // A group that emptied after the cutoff keeps even its old offsets.
        assert!(c
            .expired_offsets(500, |_| classic::OffsetExpiry::EmptySince(600))
            .is_empty());
        assert_eq!(
            c.expired_offsets(500, |_| classic::OffsetExpiry::EmptySince(400))
                .len(),
            2
        );
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].0, "idle");
        assert_eq!(
            expired[0].1.len(),
            1,
            "only the offset older than the cutoff"
        );
    }

    #[test]
    fn membership_tombstone_keeps_offsets() {
        // A classic group converted to a consumer group drops its membership record, not its offsets.
        let c = GroupCoordinator::default();
        let (k, v) = commit("g", 0, 1);
        c.apply(&k, v.as_ref(), 0);
        c.apply(&OffsetsKey::GroupMetadata { group: "g".into() }, None, 1);
        assert_eq!(c.group("g").map(|g| g.offsets.len()), Some(1));
        c.apply(&offset_tombstone("g", "t", 0).0, None, 2);
        assert!(c.group("g").is_none());
    }
}
