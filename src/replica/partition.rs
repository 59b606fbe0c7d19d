//! One partition replica hosted by this node: its log plus the replication state (leader epoch, high
//! watermark). On a single node the leader is the only in-sync replica, so the high watermark follows the log
//! end; the cluster issue drives these fields from followers' fetches.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use kavka_storage::{AppendOutcome, PartitionLog, ReadResult, StorageError, TimestampLookup};
use uuid::Uuid;

/// A hosted partition replica.
pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    log: Arc<PartitionLog>,
    leader_epoch: AtomicI32,
    /// Whether the metadata names this node the partition's leader: only then does it take produce
    /// requests and serve consumers.
    is_leader: AtomicBool,
    high_watermark: AtomicI64,
}

impl Partition {
    pub fn new(
        topic: String,
        topic_id: Uuid,
        index: i32,
        log: PartitionLog,
        leader_epoch: i32,
        is_leader: bool,
    ) -> Partition {
        let high_watermark = AtomicI64::new(log.log_end_offset());
        Partition {
            topic,
            topic_id,
            index,
            log: Arc::new(log),
            leader_epoch: AtomicI32::new(leader_epoch),
            is_leader: AtomicBool::new(is_leader),
            high_watermark,
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// Follows the metadata: this node leads the partition at `epoch`, or does not.
    pub fn set_leadership(&self, is_leader: bool, epoch: i32) {
        self.leader_epoch.store(epoch, Ordering::Release);
        self.is_leader.store(is_leader, Ordering::Release);
    }

    /// When the metadata makes this node the leader at `epoch`: records that the epoch starts at the
    /// log end, before any batch of it arrives, so OffsetForLeaderEpoch for the previous epoch answers
    /// where that one ended. An epoch not newer than the log's latest is left alone.
    pub fn record_leader_epoch_start(&self, epoch: i32) -> Result<(), StorageError> {
        let latest = self.log.leader_epochs().last().map(|(e, _)| *e);
        if epoch < 0 || latest.is_some_and(|l| l >= epoch) {
            return Ok(());
        }
        self.log
            .assign_leader_epoch(epoch, self.log.log_end_offset())
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Acquire)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    pub fn log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    /// Appends a producer's batch on a blocking thread and advances the high watermark (sole replica).
    pub async fn append(&self, records: Bytes, now_ms: i64) -> Result<AppendOutcome, StorageError> {
        let log = self.log.clone();
        let epoch = self.leader_epoch();
        let outcome = run_blocking(move || log.append(records, epoch, now_ms)).await?;
        self.high_watermark
            .fetch_max(self.log.log_end_offset(), Ordering::AcqRel);
        Ok(outcome)
    }

    /// Reads batches below `high_watermark` (the value the caller reports with them) on a blocking thread.
    pub async fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        high_watermark: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult, StorageError> {
        let log = self.log.clone();
        let hw = high_watermark;
        run_blocking(move || log.read(offset, max_bytes, hw, min_one_batch)).await
    }

    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<TimestampLookup>, StorageError> {
        let log = self.log.clone();
        run_blocking(move || log.offset_for_timestamp(timestamp)).await
    }

    pub async fn max_timestamp(&self) -> Result<Option<TimestampLookup>, StorageError> {
        let log = self.log.clone();
        run_blocking(move || log.max_timestamp()).await
    }
}

/// Runs storage work off the async worker threads. A panic in storage code is reported as an I/O error on
/// this request rather than taking the connection task down.
async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(join_error) => Err(StorageError::Io(std::io::Error::other(format!(
            "storage task failed: {join_error}"
        )))),
    }
}
