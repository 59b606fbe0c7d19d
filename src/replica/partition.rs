//! One partition replica hosted by this node: its log plus the replication state Kafka's ISR model needs.
//!
//! As leader it tracks how far each follower has fetched, advances the high watermark to the lowest log
//! end over the in-sync replicas, and proposes ISR changes (a follower that caught up joins, one that
//! lags past `replica.lag.time.max.ms` leaves); the controller decides them and the metadata image
//! brings them back. As follower it only appends what it fetched and takes the leader's high watermark.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kavka_storage::{AppendOutcome, PartitionLog, ReadResult, StorageError, TimestampLookup};
use tokio::sync::watch;
use uuid::Uuid;

use crate::metadata::{IsrChangeRequest, PartitionImage};

/// An ISR change the controller has not answered within this long is proposed again.
const ISR_CHANGE_RETRY: Duration = Duration::from_secs(30);

/// A hosted partition replica.
pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    node_id: i32,
    log: Arc<PartitionLog>,
    leader_epoch: AtomicI32,
    /// Whether the metadata names this node the partition's leader: only then does it take produce
    /// requests and serve consumers.
    is_leader: AtomicBool,
    high_watermark: AtomicI64,
    /// The value in the checkpoint file, so an unchanged mark is not written again.
    checkpointed_high_watermark: AtomicI64,
    /// Signalled when the high watermark moves or leadership changes: what acks=all produce waits on.
    progress: watch::Sender<()>,
    replication: Mutex<ReplicationState>,
}

/// The partition as the metadata image describes it, plus what the leader learns from followers.
struct ReplicationState {
    leader: i32,
    replicas: Vec<i32>,
    /// The committed ISR (the metadata image's).
    isr: Vec<i32>,
    partition_epoch: i32,
    /// An ISR change sent to the controller and not yet visible in the image.
    pending: Option<PendingIsrChange>,
    /// Followers' fetch progress, reset whenever this node becomes leader.
    followers: HashMap<i32, FollowerState>,
    /// The log end when this node's current leadership began: a follower must reach it to join the ISR.
    leader_epoch_start_offset: i64,
}

struct PendingIsrChange {
    isr: Vec<i32>,
    /// The partition epoch the change was based on; an image past it settles the change.
    based_on: i32,
    sent: Instant,
}

#[derive(Debug, Clone, Copy)]
struct FollowerState {
    /// -1 until the follower's first fetch under this leadership.
    log_end_offset: i64,
    broker_epoch: i64,
    last_fetch_ms: i64,
    last_caught_up_ms: i64,
    /// The leader's log end when the follower fetched last (Kafka's lastFetchLeaderLogEndOffset).
    leader_end_at_last_fetch: i64,
}

impl FollowerState {
    fn new(caught_up_ms: i64) -> FollowerState {
        FollowerState {
            log_end_offset: -1,
            broker_epoch: -1,
            last_fetch_ms: 0,
            last_caught_up_ms: caught_up_ms,
            leader_end_at_last_fetch: -1,
        }
    }
}

/// What a follower's fetch changed on the leader.
#[derive(Debug, Default)]
pub struct FollowerFetchOutcome {
    pub high_watermark_advanced: bool,
    /// The follower caught up and may join the ISR: the change to propose to the controller.
    pub isr_expansion: Option<IsrChangeRequest>,
}

impl Partition {
    pub fn new(
        topic: String,
        topic_id: Uuid,
        index: i32,
        node_id: i32,
        log: PartitionLog,
        metadata: &PartitionImage,
        now_ms: i64,
    ) -> Partition {
        // A restarted replica must not vouch for more than was committed before it stopped: the
        // checkpointed high watermark, never above its log end. Leading alone, it advances at once.
        let log_end = log.log_end_offset();
        let checkpointed = log.read_high_watermark();
        let high_watermark = checkpointed
            .unwrap_or_else(|| log.log_start_offset())
            .min(log_end);
        let (progress, _) = watch::channel(());
        let partition = Partition {
            topic,
            topic_id,
            index,
            node_id,
            log: Arc::new(log),
            leader_epoch: AtomicI32::new(-1),
            is_leader: AtomicBool::new(false),
            high_watermark: AtomicI64::new(high_watermark),
            checkpointed_high_watermark: AtomicI64::new(checkpointed.unwrap_or(-1)),
            progress,
            replication: Mutex::new(ReplicationState {
                leader: -1,
                replicas: Vec::new(),
                isr: Vec::new(),
                partition_epoch: -1,
                pending: None,
                followers: HashMap::new(),
                leader_epoch_start_offset: log_end,
            }),
        };
        partition.apply_metadata(metadata, now_ms);
        partition
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    fn state(&self) -> MutexGuard<'_, ReplicationState> {
        match self.replication.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Follows the metadata image: leadership, leader epoch, replicas and the committed ISR. Becoming
    /// leader (or leading under a new epoch) records the epoch's start and starts follower tracking
    /// afresh, counting current ISR members as caught up now so they are not dropped before they fetch.
    pub fn apply_metadata(&self, metadata: &PartitionImage, now_ms: i64) {
        let leads = metadata.leader == self.node_id;
        let mut state = self.state();
        let new_leadership =
            leads && (!self.is_leader() || metadata.leader_epoch != self.leader_epoch());
        if new_leadership {
            self.record_leader_epoch_start(metadata.leader_epoch);
            state.leader_epoch_start_offset = self.log.log_end_offset();
            state.followers = metadata
                .replicas
                .iter()
                .filter(|r| **r != self.node_id)
                .map(|r| {
                    let caught_up = if metadata.isr.contains(r) { now_ms } else { 0 };
                    (*r, FollowerState::new(caught_up))
                })
                .collect();
            state.pending = None;
        }
        if !leads {
            state.followers.clear();
            state.pending = None;
        } else if !new_leadership {
            // A reassignment adds or removes replicas under the same leadership: track exactly the
            // replicas there are, new ones as not caught up.
            state.followers.retain(|r, _| metadata.replicas.contains(r));
            for r in metadata.replicas.iter().filter(|r| **r != self.node_id) {
                state
                    .followers
                    .entry(*r)
                    .or_insert_with(|| FollowerState::new(0));
            }
        }
        if state
            .pending
            .as_ref()
            .is_some_and(|p| metadata.partition_epoch > p.based_on)
        {
            state.pending = None;
        }
        state.leader = metadata.leader;
        state.replicas = metadata.replicas.clone();
        state.isr = metadata.isr.clone();
        state.partition_epoch = metadata.partition_epoch;
        self.leader_epoch
            .store(metadata.leader_epoch, Ordering::Release);
        self.is_leader.store(leads, Ordering::Release);
        if leads {
            self.maybe_advance_high_watermark(&state);
        }
        drop(state);
        self.progress.send_replace(());
    }

    /// When this node becomes the leader at `epoch`: records that the epoch starts at the log end, before
    /// any batch of it arrives, so OffsetForLeaderEpoch for the previous epoch answers where that one
    /// ended. An epoch not newer than the log's latest is left alone. A failure only weakens answers about
    /// older epochs, so it is logged.
    fn record_leader_epoch_start(&self, epoch: i32) {
        let latest = self.log.leader_epochs().last().map(|(e, _)| *e);
        if epoch < 0 || latest.is_some_and(|l| l >= epoch) {
            return;
        }
        if let Err(e) = self
            .log
            .assign_leader_epoch(epoch, self.log.log_end_offset())
        {
            tracing::warn!(topic = %self.topic, partition = self.index, epoch, error = %e, "cannot record the start of a leader epoch");
        }
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Acquire)
    }

    /// The leader the metadata names (-1 for none).
    pub fn leader(&self) -> i32 {
        self.state().leader
    }

    /// Whether `replica` is one of the partition's assigned replicas (checked on every follower fetch).
    pub fn has_replica(&self, replica: i32) -> bool {
        self.state().replicas.contains(&replica)
    }

    /// The size of the committed ISR: what `min.insync.replicas` is checked against, as in Kafka.
    pub fn isr_size(&self) -> usize {
        self.state().isr.len()
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// Leader: the high watermark becomes the lowest log end over the maximal ISR (the committed one plus
    /// any member of an expansion in flight), never moving back. Returns whether it moved.
    fn maybe_advance_high_watermark(&self, state: &ReplicationState) -> bool {
        let mut candidate = self.log.log_end_offset();
        let mut members: Vec<i32> = state.isr.clone();
        if let Some(pending) = &state.pending {
            members.extend(pending.isr.iter().filter(|r| !state.isr.contains(r)));
        }
        for member in members.iter().filter(|m| **m != self.node_id) {
            // A member that has not fetched under this leadership holds the mark where it is.
            let end = state.followers.get(member).map_or(-1, |f| f.log_end_offset);
            candidate = candidate.min(end);
        }
        let previous = self.high_watermark.fetch_max(candidate, Ordering::AcqRel);
        if candidate > previous {
            self.progress.send_replace(());
            true
        } else {
            false
        }
    }

    /// Leader: a follower fetched from `fetch_offset` (so its log ends there). Updates its progress with
    /// Kafka's caught-up rule, moves the high watermark, and says whether it may now join the ISR.
    pub fn record_follower_fetch(
        &self,
        replica: i32,
        broker_epoch: i64,
        fetch_offset: i64,
        now_ms: i64,
    ) -> FollowerFetchOutcome {
        let leader_end = self.log.log_end_offset();
        let mut state = self.state();
        let Some(follower) = state.followers.get_mut(&replica) else {
            return FollowerFetchOutcome::default();
        };
        if fetch_offset >= leader_end {
            follower.last_caught_up_ms = now_ms;
        } else if fetch_offset >= follower.leader_end_at_last_fetch
            && follower.leader_end_at_last_fetch >= 0
        {
            follower.last_caught_up_ms = follower.last_caught_up_ms.max(follower.last_fetch_ms);
        }
        follower.log_end_offset = fetch_offset;
        follower.broker_epoch = broker_epoch;
        follower.last_fetch_ms = now_ms;
        follower.leader_end_at_last_fetch = leader_end;
        let high_watermark_advanced = self.maybe_advance_high_watermark(&state);
        let in_isr = state.isr.contains(&replica)
            || state
                .pending
                .as_ref()
                .is_some_and(|p| p.isr.contains(&replica));
        let caught_up = fetch_offset >= self.high_watermark()
            && fetch_offset >= state.leader_epoch_start_offset;
        let isr_expansion = if !in_isr && caught_up && self.pending_settled(&mut state) {
            let mut isr = state.isr.clone();
            isr.push(replica);
            Some(self.propose(&mut state, isr))
        } else {
            None
        };
        FollowerFetchOutcome {
            high_watermark_advanced,
            isr_expansion,
        }
    }

    /// Leader: the ISR without followers that have not caught up within `lag_max_ms`, if any must go.
    pub fn propose_isr_shrink(&self, now_ms: i64, lag_max_ms: i64) -> Option<IsrChangeRequest> {
        if !self.is_leader() {
            return None;
        }
        let mut state = self.state();
        let lagging: Vec<i32> = state
            .isr
            .iter()
            .copied()
            .filter(|r| *r != self.node_id)
            .filter(|r| {
                state
                    .followers
                    .get(r)
                    .is_none_or(|f| now_ms - f.last_caught_up_ms > lag_max_ms)
            })
            .collect();
        if lagging.is_empty() || !self.pending_settled(&mut state) {
            return None;
        }
        tracing::info!(topic = %self.topic, partition = self.index, lagging = ?lagging, lag_max_ms, "followers out of sync; shrinking the ISR");
        let isr = state
            .isr
            .iter()
            .copied()
            .filter(|r| !lagging.contains(r))
            .collect();
        Some(self.propose(&mut state, isr))
    }

    /// Whether no change is in flight (one the controller has not answered for too long is abandoned).
    fn pending_settled(&self, state: &mut ReplicationState) -> bool {
        if state
            .pending
            .as_ref()
            .is_some_and(|p| p.sent.elapsed() > ISR_CHANGE_RETRY)
        {
            state.pending = None;
        }
        state.pending.is_none()
    }

    fn propose(&self, state: &mut ReplicationState, isr: Vec<i32>) -> IsrChangeRequest {
        state.pending = Some(PendingIsrChange {
            isr: isr.clone(),
            based_on: state.partition_epoch,
            sent: Instant::now(),
        });
        IsrChangeRequest {
            topic_id: self.topic_id,
            partition: self.index,
            leader_epoch: self.leader_epoch(),
            partition_epoch: state.partition_epoch,
            new_isr: isr
                .into_iter()
                .map(|r| {
                    let epoch = state.followers.get(&r).map_or(-1, |f| f.broker_epoch);
                    (r, epoch)
                })
                .collect(),
        }
    }

    /// The controller refused or lost an ISR change: the next fetch or lag check may propose again.
    pub fn isr_change_failed(&self, based_on: i32) {
        let mut state = self.state();
        if state
            .pending
            .as_ref()
            .is_some_and(|p| p.based_on == based_on)
        {
            state.pending = None;
        }
    }

    /// Waits until the high watermark passes `offset` (acks=all). NOT_LEADER_OR_FOLLOWER if leadership is
    /// lost meanwhile, REQUEST_TIMED_OUT at `deadline`.
    pub async fn wait_for_high_watermark(
        &self,
        offset: i64,
        deadline: tokio::time::Instant,
    ) -> Result<(), ResponseError> {
        let mut progress = self.progress.subscribe();
        loop {
            if !self.is_leader() {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            if self.high_watermark() > offset {
                return Ok(());
            }
            tokio::select! {
                changed = progress.changed() => {
                    if changed.is_err() {
                        return Err(ResponseError::NotLeaderOrFollower);
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return Err(ResponseError::RequestTimedOut),
            }
        }
    }

    /// Follower: the leader's high watermark, capped at what this replica has.
    pub fn follow_high_watermark(&self, leader_high_watermark: i64) {
        let hw = leader_high_watermark.min(self.log.log_end_offset()).max(0);
        self.high_watermark.store(hw, Ordering::Release);
    }

    /// Writes the high watermark checkpoint (Kafka's replication-offset-checkpoint, here per partition).
    pub fn checkpoint_high_watermark(&self) -> Result<(), StorageError> {
        let hw = self.high_watermark();
        if self.checkpointed_high_watermark.load(Ordering::Acquire) == hw {
            return Ok(());
        }
        self.log.write_high_watermark(hw)?;
        self.checkpointed_high_watermark
            .store(hw, Ordering::Release);
        Ok(())
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

    /// Leader: appends a producer's batch on a blocking thread; the high watermark follows when this
    /// node is the only in-sync replica, otherwise as followers fetch.
    pub async fn append(&self, records: Bytes, now_ms: i64) -> Result<AppendOutcome, StorageError> {
        let log = self.log.clone();
        let epoch = self.leader_epoch();
        let outcome = run_blocking(move || log.append(records, epoch, now_ms)).await?;
        let state = self.state();
        if self.is_leader() {
            self.maybe_advance_high_watermark(&state);
        }
        Ok(outcome)
    }

    /// Follower: appends batches fetched from the leader, as they are.
    pub async fn append_fetched(&self, records: Bytes) -> Result<(), StorageError> {
        let log = self.log.clone();
        run_blocking(move || log.append_replicated(records)).await
    }

    /// Follower: truncates the log to end at `offset` (a diverging epoch); the high watermark follows.
    pub async fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let log = self.log.clone();
        run_blocking(move || log.truncate_to(offset)).await?;
        self.high_watermark
            .fetch_min(self.log.log_end_offset(), Ordering::AcqRel);
        Ok(())
    }

    /// Follower: the leader's log starts past this replica's end; start over there.
    pub async fn restart_at(&self, offset: i64) -> Result<(), StorageError> {
        let log = self.log.clone();
        run_blocking(move || log.truncate_fully_and_start_at(offset)).await?;
        self.high_watermark.store(offset, Ordering::Release);
        Ok(())
    }

    /// Follower: the leader's log start moved up (retention or DeleteRecords there); follow it as far as
    /// this replica's log reaches. A compacted topic deletes nothing this way, so its refusal is ignored.
    pub async fn follow_log_start(&self, leader_log_start: i64) {
        if leader_log_start <= self.log.log_start_offset() {
            return;
        }
        let log = self.log.clone();
        let end = self.log.log_end_offset();
        let result = run_blocking(move || log.delete_records(leader_log_start.min(end), end)).await;
        if let Err(e) = result {
            if !matches!(e, StorageError::PolicyViolation(_)) {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "cannot follow the leader's log start");
            }
        }
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

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use kavka_storage::LogConfig;

    use super::*;

    const NOW: i64 = 1_000_000;

    fn batch(count: usize) -> Bytes {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32 - 1,
                timestamp: NOW,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: IndexMap::new(),
            })
            .collect();
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &options).expect("encode");
        buf.freeze()
    }

    fn image(
        leader: i32,
        isr: Vec<i32>,
        leader_epoch: i32,
        partition_epoch: i32,
    ) -> PartitionImage {
        PartitionImage {
            partition: 0,
            replicas: vec![1, 2, 3],
            isr,
            leader,
            leader_epoch,
            partition_epoch,
            elr: Vec::new(),
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    fn partition(dir: &std::path::Path, node: i32, metadata: &PartitionImage) -> Partition {
        let log = PartitionLog::open(dir, LogConfig::default(), NOW).expect("open log");
        Partition::new("t".into(), Uuid::nil(), 0, node, log, metadata, NOW)
    }

    #[tokio::test]
    async fn the_high_watermark_is_the_lowest_log_end_over_the_isr() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = partition(dir.path(), 1, &image(1, vec![1, 2, 3], 0, 0));
        p.append(batch(10), NOW).await.expect("append");
        assert_eq!(p.high_watermark(), 0, "followers have not fetched yet");
        assert!(
            !p.record_follower_fetch(2, 7, 10, NOW)
                .high_watermark_advanced
        );
        assert!(
            p.record_follower_fetch(3, 7, 4, NOW)
                .high_watermark_advanced
        );
        assert_eq!(p.high_watermark(), 4);
        p.record_follower_fetch(3, 7, 10, NOW);
        assert_eq!(p.high_watermark(), 10);
        // A follower that truncated and refetches from lower never takes the mark back.
        p.record_follower_fetch(3, 7, 2, NOW);
        assert_eq!(p.high_watermark(), 10);
    }

    #[tokio::test]
    async fn a_sole_in_sync_leader_commits_on_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = partition(dir.path(), 1, &image(1, vec![1], 0, 0));
        p.append(batch(3), NOW).await.expect("append");
        assert_eq!(p.high_watermark(), 3);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(10);
        assert_eq!(p.wait_for_high_watermark(2, deadline).await, Ok(()));
    }

    #[tokio::test]
    async fn a_caught_up_follower_is_proposed_once_for_the_isr() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = partition(dir.path(), 1, &image(1, vec![1, 2], 0, 4));
        p.append(batch(5), NOW).await.expect("append");
        p.record_follower_fetch(2, 7, 5, NOW);
        // Not caught up yet: no proposal.
        assert!(p
            .record_follower_fetch(3, 9, 3, NOW)
            .isr_expansion
            .is_none());
        let change = p
            .record_follower_fetch(3, 9, 5, NOW)
            .isr_expansion
            .expect("expansion");
        assert_eq!(change.new_isr, vec![(1, -1), (2, 7), (3, 9)]);
        assert_eq!((change.leader_epoch, change.partition_epoch), (0, 4));
        // One change in flight at a time; the member counts towards the high watermark meanwhile.
        assert!(p
            .record_follower_fetch(3, 9, 5, NOW)
            .isr_expansion
            .is_none());
        p.append(batch(1), NOW).await.expect("append");
        p.record_follower_fetch(2, 7, 6, NOW);
        assert_eq!(p.high_watermark(), 5, "the joining member holds the mark");
        // The image with the new ISR settles it.
        p.apply_metadata(&image(1, vec![1, 2, 3], 0, 5), NOW);
        assert_eq!(p.isr_size(), 3);
        p.record_follower_fetch(3, 9, 6, NOW);
        assert_eq!(p.high_watermark(), 6);
    }

    #[tokio::test]
    async fn followers_that_stop_catching_up_are_proposed_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = partition(dir.path(), 1, &image(1, vec![1, 2, 3], 0, 0));
        p.append(batch(5), NOW).await.expect("append");
        p.record_follower_fetch(2, 7, 5, NOW + 100);
        assert!(p.propose_isr_shrink(NOW + 1000, 30_000).is_none());
        // Follower 3 never fetched; follower 2 was caught up at NOW + 100.
        let change = p.propose_isr_shrink(NOW + 30_050, 30_000).expect("shrink");
        assert_eq!(
            change.new_isr.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![1, 2]
        );
        // A refused change is released and can be proposed again.
        assert!(p.propose_isr_shrink(NOW + 30_050, 30_000).is_none());
        p.isr_change_failed(0);
        assert!(p.propose_isr_shrink(NOW + 30_050, 30_000).is_some());
    }

    #[tokio::test]
    async fn acks_all_waiters_learn_of_lost_leadership_and_time_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Arc::new(partition(dir.path(), 1, &image(1, vec![1, 2], 0, 0)));
        p.append(batch(1), NOW).await.expect("append");
        let far = tokio::time::Instant::now() + Duration::from_secs(30);
        let waiter = tokio::spawn({
            let p = p.clone();
            async move { p.wait_for_high_watermark(0, far).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        p.apply_metadata(&image(2, vec![2], 1, 1), NOW);
        assert_eq!(
            waiter.await.expect("join"),
            Err(ResponseError::NotLeaderOrFollower)
        );
        let other = tempfile::tempdir().expect("tempdir");
        let p = partition(other.path(), 1, &image(1, vec![1, 2], 2, 2));
        p.append(batch(1), NOW).await.expect("append");
        let soon = tokio::time::Instant::now() + Duration::from_millis(20);
        assert_eq!(
            p.wait_for_high_watermark(p.log_end_offset() - 1, soon)
                .await,
            Err(ResponseError::RequestTimedOut)
        );
    }
}
