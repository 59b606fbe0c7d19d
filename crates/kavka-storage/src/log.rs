//! The partition log: an ordered list of segments in one directory, with recovery, producer-state
//! snapshots and a clean-shutdown marker.
//!
//! Locking: `inner` is the append lock (appends, rolls, flushes, truncation and close are serialized by
//! it). Readers never take it: they load the published log end offset, clone the segment list under a
//! short read lock and then do positioned reads with no lock held.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;

use crate::batch::{assign_offsets, validate_client_batch, BatchError, BatchHeader};
use crate::epoch_cache::{self, CheckpointError, LeaderEpochCache};
use crate::error::StorageError;
use crate::producer_state::{BatchMetadata, ProducerStateManager, SequenceCheck};
use crate::segment::{file_stem, lock, read, write, Segment, SegmentSettings};

/// Marker written by [`PartitionLog::close`]; its absence at open means the last run did not shut down
/// cleanly and the unflushed part of the log must be validated.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kavka_cleanshutdown";
/// Offset below which all data is known to be fsynced (written on every flush).
pub const RECOVERY_POINT_FILE: &str = "recovery-point-checkpoint";
/// Durable log start offset (advanced by retention and DeleteRecords), same encoding as the recovery point.
pub const LOG_START_FILE: &str = "log-start-offset-checkpoint";
/// The last high watermark the broker checkpointed for this partition (see
/// [`PartitionLog::write_high_watermark`]).
pub const HIGH_WATERMARK_FILE: &str = "high-watermark-checkpoint";
/// How many producer-state snapshots are kept (older ones are only a fallback for corrupt newer ones).
const SNAPSHOTS_TO_KEEP: usize = 3;

/// How record timestamps are assigned (`message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    CreateTime,
    /// Overwrite the batch's max timestamp with the broker's append time.
    LogAppendTime,
}

/// Per-partition log configuration (Kafka topic/broker config names in the field docs).
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `log.segment.bytes` / `segment.bytes`: roll when a segment would exceed this size.
    pub segment_bytes: u64,
    /// `log.roll.ms` / `segment.ms`: roll when the segment spans more than this time.
    pub segment_ms: i64,
    /// `log.index.size.max.bytes` / `segment.index.bytes`: roll when an index is this full.
    pub segment_index_bytes: u64,
    /// `log.index.interval.bytes` / `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u64,
    /// `log.flush.interval.messages` / `flush.messages`: fsync after this many records.
    pub flush_interval_messages: i64,
    /// `log.flush.interval.ms` / `flush.ms`: fsync when this much time passed (see `maybe_flush`).
    pub flush_interval_ms: i64,
    /// `message.max.bytes` / `max.message.bytes`: largest accepted batch.
    pub max_message_bytes: usize,
    /// `log.message.timestamp.type` / `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `log.retention.ms` / `retention.ms`: segments whose newest record is older than this are deleted;
    /// -1 (any negative value) keeps data forever.
    pub retention_ms: i64,
    /// `log.retention.bytes` / `retention.bytes`: the oldest segments are deleted while the log would
    /// stay at least this large without them; -1 (any negative value) means no size limit.
    pub retention_bytes: i64,
    /// `log.segment.delete.delay.ms` / `file.delete.delay.ms`: how long a deleted segment's files (renamed
    /// to `*.deleted`) stay on disk so that in-flight reads finish.
    pub file_delete_delay_ms: i64,
    /// `cleanup.policy` contains `delete`: retention applies and DeleteRecords is allowed.
    pub cleanup_delete: bool,
    /// `cleanup.policy` contains `compact`: the cleaner compacts the log.
    pub cleanup_compact: bool,
    /// `log.cleaner.delete.retention.ms` / `delete.retention.ms` (carried for the cleaner).
    pub delete_retention_ms: i64,
    /// `log.cleaner.min.compaction.lag.ms` / `min.compaction.lag.ms` (carried for the cleaner).
    pub min_compaction_lag_ms: i64,
    /// `log.cleaner.max.compaction.lag.ms` / `max.compaction.lag.ms` (carried for the cleaner).
    pub max_compaction_lag_ms: i64,
    /// `log.cleaner.min.cleanable.ratio` / `min.cleanable.dirty.ratio` (carried for the cleaner).
    pub min_cleanable_dirty_ratio: f64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            segment_index_bytes: 10_485_760,
            index_interval_bytes: 4096,
            flush_interval_messages: i64::MAX,
            flush_interval_ms: i64::MAX,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            file_delete_delay_ms: 60_000,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

impl LogConfig {
    fn segment_settings(&self) -> SegmentSettings {
        SegmentSettings::new(self.segment_index_bytes, self.index_interval_bytes)
    }

    /// Bound on decompressed bytes when a timestamp lookup must decode a batch: generous relative to
    /// the largest accepted batch, but finite whatever a batch claims.
    fn max_decompressed_bytes(&self) -> usize {
        crate::batch::decompression_limit(self.max_message_bytes)
    }
}

/// Result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The broker's append time for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// The batch was a retry of an already appended one: nothing was written and the offsets are the
    /// original ones.
    pub duplicate: bool,
}

/// Result of a read.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches, possibly empty.
    pub records: Bytes,
    /// Log start offset at the time of the read.
    pub log_start_offset: i64,
    /// Log end offset at the time of the read.
    pub log_end_offset: i64,
}

/// A record found by a timestamp query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampLookup {
    /// Offset of the record.
    pub offset: i64,
    /// Its timestamp.
    pub timestamp: i64,
    /// Leader epoch of its batch.
    pub leader_epoch: i32,
}

#[derive(Debug)]
struct Inner {
    producers: ProducerStateManager,
    unflushed_messages: i64,
    last_flush_ms: i64,
    recovery_point: i64,
    /// The clean-shutdown marker is on disk (after `close`); the next append must remove it.
    marker_on_disk: bool,
    /// Latest "now" the broker passed in; dates deletions requested without a clock (DeleteRecords).
    clock_ms: i64,
    /// Files renamed to `*.deleted`, unlinked once their delay has passed.
    pending_deletes: Vec<lifecycle::PendingDelete>,
    /// Base offsets of live [`SegmentReplacement`]s: two replacements of one base would write the same
    /// `.cleaned` files.
    replacements: BTreeSet<i64>,
}

/// One partition's log in its own directory. `Send + Sync`; see the module docs for locking.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: RwLock<LogConfig>,
    segments: RwLock<Vec<Arc<Segment>>>,
    log_start: AtomicI64,
    log_end: AtomicI64,
    latest_epoch: AtomicI32,
    /// Leader epoch -> start offset. Changed only under the append lock (`inner`), which also orders the
    /// checkpoint writes; readers (OffsetForLeaderEpoch, Fetch's epoch check) take only this lock, so they
    /// never wait for an append's I/O.
    epochs: RwLock<LeaderEpochCache>,
    /// Serializes high-watermark checkpoint writes (they share one temp file) without the append lock.
    hw_checkpoint: Mutex<()>,
    inner: Mutex<Inner>,
}

fn parse_stem(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, directory fsync.
pub(crate) fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes)?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, path)?;
    sync_dir(dir)
}

fn encode_recovery_point(offset: i64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..8].copy_from_slice(&offset.to_be_bytes());
    let crc = crc32c::crc32c(&out[..8]);
    out[8..].copy_from_slice(&crc.to_be_bytes());
    out
}

fn decode_recovery_point(bytes: &[u8]) -> Option<i64> {
    if bytes.len() != 12 {
        return None;
    }
    let crc = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if crc32c::crc32c(&bytes[..8]) != crc {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[..8]);
    Some(i64::from_be_bytes(b))
}

/// Files found in a partition directory.
struct DirListing {
    segments: BTreeSet<i64>,
    snapshots: BTreeSet<i64>,
}

fn list_dir(dir: &Path) -> io::Result<DirListing> {
    let mut logs = BTreeSet::new();
    let mut indexes = Vec::new();
    let mut snapshots = BTreeSet::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            // A temp file is an interrupted atomic write; the target file is still intact.
            remove_if_exists(&entry.path())?;
        } else if name.ends_with(lifecycle::DELETED_SUFFIX)
            || name.ends_with(lifecycle::CLEANED_SUFFIX)
        {
            // `.deleted`: no reader survives a restart, so the delay is moot. `.cleaned`: a swap that never
            // reached its commit point; the segments it would have replaced are intact.
            remove_if_exists(&entry.path())?;
        } else if let Some(base) = parse_stem(name, ".log") {
            logs.insert(base);
        } else if let Some(base) = parse_stem(name, ".index") {
            indexes.push((base, entry.path()));
        } else if let Some(base) = parse_stem(name, ".timeindex") {
            indexes.push((base, entry.path()));
        } else if let Some(off) = parse_stem(name, ".snapshot") {
            snapshots.insert(off);
        }
    }
    for (base, path) in indexes {
        if !logs.contains(&base) {
            remove_if_exists(&path)?;
        }
    }
    Ok(DirListing {
        segments: logs,
        snapshots,
    })
}

impl PartitionLog {
    fn snapshot_path(&self, offset: i64) -> PathBuf {
        self.dir.join(format!("{}.snapshot", file_stem(offset)))
    }

    /// Opens or creates the log in `dir`. If the clean-shutdown marker is missing, recovers: validates
    /// every batch (header + CRC) of the segments at or after the recovery point (always the active one),
    /// truncates at the first torn/invalid batch (dropping any later segments), rebuilds indexes that are
    /// missing or inconsistent, and restores producer state from the newest valid snapshot <= log end
    /// plus replay of later batch headers. Never panics on a corrupt file.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<PartitionLog, StorageError> {
        let created = !dir.exists();
        if created {
            fs::create_dir_all(dir)?;
            // Make the new directory entry itself durable, or a crash could lose fsynced data with it.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        lifecycle::complete_interrupted_swaps(dir)?;
        let listing = list_dir(dir)?;
        let recovery_point = if clean {
            i64::MAX
        } else {
            match fs::read(dir.join(RECOVERY_POINT_FILE)) {
                Ok(b) => decode_recovery_point(&b).unwrap_or(0),
                Err(_) => 0,
            }
        };
        if clean {
            // From here on a crash must trigger recovery again.
            fs::remove_file(&marker)?;
            sync_dir(dir)?;
        } else if !created {
            tracing::info!(dir = %dir.display(), recovery_point, "no clean shutdown marker; recovering log");
        }

        let settings = config.segment_settings();
        let bases: Vec<i64> = listing.segments.iter().copied().collect();
        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len());
        let mut i = 0;
        while i < bases.len() {
            let base = bases[i];
            let next_base = bases.get(i + 1).copied();
            let needs_recovery = !clean && next_base.is_none_or(|n| n > recovery_point);
            let (seg, report) = Segment::open(dir, base, settings, needs_recovery, now_ms)?;
            let overlaps = segments
                .last()
                .is_some_and(|prev| seg.base_offset() < prev.next_offset());
            if overlaps {
                // Offsets must never repeat: a segment starting inside its predecessor is not trusted.
                tracing::warn!(
                    base,
                    "segment overlaps its predecessor; dropping it and later segments"
                );
                for &b in &bases[i..] {
                    Self::delete_segment_files(dir, b)?;
                }
                break;
            }
            segments.push(Arc::new(seg));
            if report.truncated_bytes > 0 && next_base.is_some() {
                // Everything after a damaged point is unreachable (offsets must stay contiguous).
                tracing::warn!(base, "segment was damaged; dropping later segments");
                for &b in &bases[i + 1..] {
                    Self::delete_segment_files(dir, b)?;
                }
                break;
            }
            i += 1;
        }
        if segments.is_empty() {
            segments.push(Arc::new(Segment::create(dir, 0, settings, now_ms)?));
            sync_dir(dir)?;
        }
        let first_base = segments.first().map_or(0, |s| s.base_offset());
        let mut log_end = segments.last().map_or(0, |s| s.next_offset());
        let checkpointed = match fs::read(dir.join(LOG_START_FILE)) {
            Ok(b) => decode_recovery_point(&b),
            Err(_) => None,
        };
        let log_start = checkpointed.unwrap_or(first_base).max(first_base);
        let restarted = log_start > log_end;
        if restarted {
            // Recovery cut the log below a durable log start: as Kafka's truncateFullyAndStartAt, the log
            // restarts empty at the log start rather than re-exposing offsets a client deleted.
            tracing::warn!(
                log_start,
                log_end,
                "log ends before its start offset; restarting the log at its start"
            );
            for seg in segments.drain(..) {
                seg.delete_files()?;
            }
            segments.push(Arc::new(Segment::create(dir, log_start, settings, now_ms)?));
            sync_dir(dir)?;
            log_end = log_start;
        }
        for seg in &segments[..segments.len() - 1] {
            seg.release_index_files()?;
        }
        let latest_epoch = segments
            .iter()
            .rev()
            .find_map(|s| s.last_epoch())
            .unwrap_or(-1);

        let log = PartitionLog {
            dir: dir.to_path_buf(),
            config: RwLock::new(config),
            segments: RwLock::new(segments),
            log_start: AtomicI64::new(log_start),
            log_end: AtomicI64::new(log_end),
            latest_epoch: AtomicI32::new(latest_epoch),
            epochs: RwLock::new(LeaderEpochCache::new()),
            hw_checkpoint: Mutex::new(()),
            inner: Mutex::new(Inner {
                producers: ProducerStateManager::new(),
                unflushed_messages: 0,
                last_flush_ms: now_ms,
                recovery_point: recovery_point.min(log_end),
                marker_on_disk: false,
                clock_ms: now_ms,
                pending_deletes: Vec::new(),
                replacements: BTreeSet::new(),
            }),
        };
        let producers = log.load_producer_state(&listing.snapshots)?;
        lock(&log.inner).producers = producers;
        let epochs = log.load_epoch_cache(restarted)?;
        *write(&log.epochs) = epochs;
        Ok(log)
    }

    /// Loads the leader-epoch cache for the log as recovered: the checkpoint made consistent with the log
    /// (entries at or beyond the log end, left by a crash between a truncation of the log and that of the
    /// checkpoint or by recovery cutting a torn tail, are removed; the first entry moves up to the log
    /// start), or, when the checkpoint is missing, malformed or misses the epoch of the last batch, a
    /// cache rebuilt from the batch headers. Written back whenever it differs from the file.
    fn load_epoch_cache(&self, restarted: bool) -> Result<LeaderEpochCache, StorageError> {
        let log_start = self.log_start.load(Ordering::Acquire);
        let log_end = self.log_end.load(Ordering::Acquire);
        let last_batch_epoch = self.latest_epoch.load(Ordering::Acquire);
        let loaded = match epoch_cache::read_checkpoint(&self.dir) {
            Ok(c) => c,
            Err(CheckpointError::Malformed(why)) => {
                tracing::warn!(dir = %self.dir.display(), why, "malformed leader epoch checkpoint; rebuilding it from the log");
                None
            }
            Err(CheckpointError::Io(e)) => return Err(e.into()),
        };
        // Assigning before every write keeps the file at least as new as the log, so a last batch whose
        // epoch is above the file's latest means the file is stale (older version, lost write): rebuild.
        let loaded = loaded.filter(|c| {
            let stale = last_batch_epoch >= 0 && c.latest_epoch().is_none_or(|e| e < last_batch_epoch);
            if stale {
                tracing::warn!(dir = %self.dir.display(), last_batch_epoch, "leader epoch checkpoint misses the log's latest epoch; rebuilding it from the log");
            }
            !stale
        });
        let (mut cache, mut dirty) = match loaded {
            Some(c) => (c, false),
            None => (self.epochs_from_batches(log_start)?, true),
        };
        if restarted {
            // Kafka's truncateFullyAndStartAt clears the cache: no epoch has data in the restarted log.
            dirty |= cache.clear();
        }
        dirty |= cache.truncate_from_end(log_end);
        dirty |= cache.truncate_from_start(log_start);
        // A new, empty log gets its file with its first epoch; any other log gets one now, even an empty
        // one (batches without epochs), so that the header scan above runs once, not on every open.
        let exists = self
            .dir
            .join(epoch_cache::LEADER_EPOCH_CHECKPOINT_FILE)
            .exists();
        if dirty && (exists || !cache.is_empty() || log_end > log_start) {
            epoch_cache::write_checkpoint(&self.dir, &cache)?;
        }
        Ok(cache)
    }

    /// The cache Kafka's log recovery would build: every batch of the segments holding data at or after
    /// `from` assigns its partition leader epoch at its base offset. Batches are visited whole, including
    /// one that straddles `from` (DeleteRecords can cut inside a batch); the caller's
    /// `truncate_from_start` then moves that epoch's entry up to the log start.
    fn epochs_from_batches(&self, from: i64) -> Result<LeaderEpochCache, StorageError> {
        let mut cache = LeaderEpochCache::new();
        let segments = read(&self.segments).clone();
        for seg in segments.iter().filter(|s| s.next_offset() > from) {
            seg.visit_headers(seg.base_offset(), |h| {
                let epoch = h.partition_leader_epoch;
                if epoch >= 0 && cache.latest_epoch() != Some(epoch) {
                    cache.assign(epoch, h.base_offset);
                }
            })?;
        }
        Ok(cache)
    }

    /// Applies `change` to the epoch cache and persists it if it changed. Caller holds the append lock,
    /// which orders the checkpoint writes; the cache lock is released before the file is written.
    fn update_epochs(
        &self,
        _inner: &mut Inner,
        change: impl FnOnce(&mut LeaderEpochCache) -> bool,
    ) -> io::Result<()> {
        let snapshot = {
            let mut cache = write(&self.epochs);
            if !change(&mut cache) {
                return Ok(());
            }
            cache.clone()
        };
        epoch_cache::write_checkpoint(&self.dir, &snapshot)
    }

    /// Kafka's endOffsetFor (OffsetForLeaderEpoch, Fetch's diverging-epoch check) against the current log
    /// end offset: `(epoch, end offset)` of the largest epoch <= `epoch` this log knows, `(-1, -1)` when
    /// undefined. See [`LeaderEpochCache::end_offset_for`] for the exact rules.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let cache = read(&self.epochs);
        // Read under the cache lock: an epoch is assigned before its first batch publishes the new end.
        let log_end = self.log_end.load(Ordering::Acquire);
        cache.end_offset_for(epoch, log_end)
    }

    /// The leader-epoch entries `(epoch, start offset)`, oldest first.
    pub fn leader_epochs(&self) -> Vec<(i32, i64)> {
        read(&self.epochs).epochs()
    }

    /// Records that leader epoch `epoch` starts at `start_offset`: a new leader calls this with its log end
    /// offset when it takes over, before any batch of that epoch arrives, so that followers asking for the
    /// previous epoch learn where it ended. Kafka's assign rules apply ([`LeaderEpochCache::assign`]); a
    /// negative epoch is ignored.
    ///
    /// Errors: `OffsetOutOfRange` when `start_offset` is outside `[log start, log end]`; `Io` when the
    /// checkpoint cannot be written.
    pub fn assign_leader_epoch(&self, epoch: i32, start_offset: i64) -> Result<(), StorageError> {
        let mut inner = lock(&self.inner);
        let log_start = self.log_start.load(Ordering::Acquire);
        let log_end = self.log_end.load(Ordering::Acquire);
        if start_offset < log_start || start_offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                requested: start_offset,
                log_start,
                log_end,
            });
        }
        self.update_epochs(&mut inner, |c| c.assign(epoch, start_offset))?;
        Ok(())
    }

    /// Checkpoints the partition's high watermark (`0\n1\n<hw>\n`, written atomically) so that a restarted
    /// replica never serves records above the last high watermark it knew. The broker calls this
    /// periodically; unchanged values are written anyway (the call is cheap and rare).
    pub fn write_high_watermark(&self, hw: i64) -> Result<(), StorageError> {
        let _serialized = lock(&self.hw_checkpoint);
        write_atomically(
            &self.dir,
            &self.dir.join(HIGH_WATERMARK_FILE),
            format!("0\n1\n{hw}\n").as_bytes(),
        )?;
        Ok(())
    }

    /// The checkpointed high watermark, clamped to `[log start, log end]` (a crash may have cut the log
    /// below it, and a high watermark is never below the log start); `None` when there is no checkpoint
    /// or it is unreadable or malformed (the broker then starts from the log start, as Kafka does).
    pub fn read_high_watermark(&self) -> Option<i64> {
        let text = fs::read_to_string(self.dir.join(HIGH_WATERMARK_FILE)).ok()?;
        let mut lines = text.lines().map(str::trim);
        let (Some("0"), Some("1"), Some(hw), None) = (
            lines.next(),
            lines.next(),
            lines.next(),
            lines.find(|l| !l.is_empty()),
        ) else {
            tracing::warn!(dir = %self.dir.display(), "malformed high watermark checkpoint; ignoring it");
            return None;
        };
        let Ok(hw) = hw.parse::<i64>() else {
            tracing::warn!(dir = %self.dir.display(), "malformed high watermark checkpoint; ignoring it");
            return None;
        };
        let log_start = self.log_start.load(Ordering::Acquire);
        let log_end = self.log_end.load(Ordering::Acquire);
        Some(hw.clamp(log_start, log_end.max(log_start)))
    }

    fn delete_segment_files(dir: &Path, base: i64) -> io::Result<()> {
        let stem = file_stem(base);
        for ext in ["log", "index", "timeindex"] {
            remove_if_exists(&dir.join(format!("{stem}.{ext}")))?;
        }
        Ok(())
    }

    /// Rebuilds producer state: the newest loadable snapshot at or below the log end (newer ones describe
    /// truncated data and are deleted), then replay of the batch headers after it.
    fn load_producer_state(
        &self,
        snapshots: &BTreeSet<i64>,
    ) -> Result<ProducerStateManager, StorageError> {
        let log_end = self.log_end.load(Ordering::Acquire);
        let log_start = self.log_start.load(Ordering::Acquire);
        let mut state = None;
        for &off in snapshots.iter().rev() {
            let path = self.snapshot_path(off);
            if off > log_end {
                remove_if_exists(&path)?;
                continue;
            }
            if state.is_some() {
                continue;
            }
            match ProducerStateManager::read_snapshot(&path) {
                Ok((psm, last_included)) if last_included == off - 1 => state = Some((psm, off)),
                Ok((_, last_included)) => {
                    tracing::warn!(path = %path.display(), last_included, "snapshot does not match its name; deleting");
                    remove_if_exists(&path)?;
                }
                Err(e) => {
                    // Deleted so that later opens do not trip over it again; replay covers its content.
                    tracing::warn!(path = %path.display(), error = %e, "unreadable producer snapshot; deleting");
                    remove_if_exists(&path)?;
                }
            }
        }
        let (mut psm, from) = state.unwrap_or_else(|| (ProducerStateManager::new(), log_start));
        let segments = read(&self.segments).clone();
        for seg in segments.iter().filter(|s| s.next_offset() > from) {
            seg.visit_headers(from, |h| psm.replay(h))?;
        }
        Ok(psm)
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn active(&self) -> Arc<Segment> {
        let segs = read(&self.segments);
        // The list is never empty: open creates a segment and truncation keeps or recreates one.
        Arc::clone(&segs[segs.len() - 1])
    }

    fn remove_marker(&self, inner: &mut Inner) -> io::Result<()> {
        if inner.marker_on_disk {
            remove_if_exists(&self.dir.join(CLEAN_SHUTDOWN_FILE))?;
            inner.marker_on_disk = false;
        }
        Ok(())
    }

    /// Appends one producer batch (the records blob of one partition of a produce request): validates it
    /// (`batch::validate_client_batch`; size > max_message_bytes -> MessageTooLarge), checks idempotence
    /// through producer state (Duplicate -> Ok with duplicate=true and the ORIGINAL offsets, nothing
    /// written), assigns offsets contiguously from the log end, patches leader epoch / LogAppendTime,
    /// writes, updates indexes, rolls the segment on size/time/index-full, and flushes per
    /// flush_interval_messages.
    pub fn append(
        &self,
        records: Bytes,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendOutcome, StorageError> {
        let cfg = read(&self.config).clone();
        if records.len() > cfg.max_message_bytes {
            return Err(StorageError::MessageTooLarge {
                size: records.len(),
                max: cfg.max_message_bytes,
            });
        }
        let segment_cap = cfg.segment_bytes.min(i32::MAX as u64);
        if records.len() as u64 > segment_cap {
            return Err(StorageError::MessageTooLarge {
                size: records.len(),
                max: segment_cap as usize,
            });
        }
        let header = validate_client_batch(&records)?;
        let log_append = cfg.timestamp_type == TimestampType::LogAppendTime;

        let mut inner = lock(&self.inner);
        if header.has_producer_id() {
            let check = inner.producers.check(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
                header.last_sequence(),
            )?;
            if let SequenceCheck::Duplicate(meta) = check {
                return Ok(AppendOutcome {
                    base_offset: meta.first_offset,
                    last_offset: meta.last_offset,
                    log_append_time: if log_append { meta.timestamp } else { -1 },
                    log_start_offset: self.log_start.load(Ordering::Acquire),
                    duplicate: true,
                });
            }
        }
        let written = self.append_checked(&mut inner, &cfg, &records, leader_epoch, now_ms);
        if written.is_err() {
            inner.producers.record_unwritten(
                header.producer_id,
                header.producer_epoch,
                header.base_sequence,
            );
        }
        let stored = written?;
        inner.producers.record(
            header.producer_id,
            header.producer_epoch,
            BatchMetadata {
                first_seq: header.base_sequence,
                last_seq: header.last_sequence(),
                first_offset: stored.base_offset,
                last_offset: stored.last_offset(),
                timestamp: stored.max_timestamp,
            },
        );
        self.after_write(&mut inner, &cfg, i64::from(stored.record_count))?;
        Ok(AppendOutcome {
            base_offset: stored.base_offset,
            last_offset: stored.last_offset(),
            log_append_time: if log_append { now_ms } else { -1 },
            log_start_offset: self.log_start.load(Ordering::Acquire),
            duplicate: false,
        })
    }

    /// The writing half of [`append`](Self::append), after the checks: assigns offsets and writes the
    /// batch, returning its stored header. An error means nothing was written.
    fn append_checked(
        &self,
        inner: &mut Inner,
        cfg: &LogConfig,
        records: &Bytes,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<BatchHeader, StorageError> {
        let log_append = cfg.timestamp_type == TimestampType::LogAppendTime;
        self.remove_marker(inner)?;
        inner.clock_ms = inner.clock_ms.max(now_ms);

        let base_offset = self.log_end.load(Ordering::Acquire);
        let mut buf = records.to_vec();
        assign_offsets(
            &mut buf,
            base_offset,
            leader_epoch,
            log_append.then_some(now_ms),
        );
        let stored = BatchHeader::parse(&buf)?;
        // The epoch is recorded before its first batch is written: a crash in between leaves an entry at
        // the log end with no data yet, exactly what a new leader records when it takes over.
        let cached = read(&self.epochs).latest_epoch();
        if leader_epoch >= 0 && cached.is_none_or(|e| leader_epoch > e) {
            self.update_epochs(inner, |c| c.assign(leader_epoch, base_offset))?;
        } else if cached.is_some_and(|e| leader_epoch < e) {
            // Only a stale leader passes an older epoch; it must not rewrite the newer leader's entry.
            tracing::debug!(dir = %self.dir.display(), leader_epoch, latest = ?cached, "append with a leader epoch older than the latest one; epoch cache unchanged");
        }
        self.write_batch(inner, cfg, &buf, &stored, now_ms)?;
        Ok(stored)
    }

    /// Writes one offset-assigned batch to the active segment (rolling first if needed) and publishes the
    /// new log end. Caller holds the append lock.
    fn write_batch(
        &self,
        inner: &mut Inner,
        cfg: &LogConfig,
        buf: &[u8],
        h: &BatchHeader,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let mut active = self.active();
        if active.should_roll(
            cfg.segment_bytes,
            cfg.segment_ms,
            buf.len() as u64,
            h.max_timestamp,
            h.last_offset(),
            now_ms,
        ) {
            active = self.roll(inner, cfg, h.base_offset, now_ms)?;
        }
        active.append(buf, h)?;
        self.latest_epoch
            .store(h.partition_leader_epoch, Ordering::Release);
        // Published last: a reader that sees this end offset finds every byte below it in place.
        self.log_end.store(h.last_offset() + 1, Ordering::Release);
        Ok(())
    }

    fn after_write(
        &self,
        inner: &mut Inner,
        cfg: &LogConfig,
        records: i64,
    ) -> Result<(), StorageError> {
        inner.unflushed_messages = inner.unflushed_messages.saturating_add(records);
        if inner.unflushed_messages >= cfg.flush_interval_messages {
            self.flush_locked(inner)?;
        }
        Ok(())
    }

    /// Starts a new active segment at `new_base`: seals and fsyncs the old one, snapshots producer state
    /// at the boundary (as Kafka does on roll) so recovery replays at most one segment.
    fn roll(
        &self,
        inner: &mut Inner,
        cfg: &LogConfig,
        new_base: i64,
        now_ms: i64,
    ) -> Result<Arc<Segment>, StorageError> {
        let old = self.active();
        old.seal()?;
        old.flush()?;
        old.release_index_files()?;
        let seg = Arc::new(Segment::create(
            &self.dir,
            new_base,
            cfg.segment_settings(),
            now_ms,
        )?);
        write(&self.segments).push(Arc::clone(&seg));
        sync_dir(&self.dir)?;
        inner.recovery_point = new_base;
        if let Err(e) = write_atomically(
            &self.dir,
            &self.dir.join(RECOVERY_POINT_FILE),
            &encode_recovery_point(new_base),
        ) {
            tracing::warn!(error = %e, "cannot write recovery point checkpoint");
        }
        if let Err(e) = inner
            .producers
            .write_snapshot(&self.snapshot_path(new_base), new_base - 1)
        {
            // Not fatal: recovery replays from an older snapshot or the log start.
            tracing::warn!(error = %e, "cannot write producer state snapshot");
        }
        self.prune_snapshots()?;
        tracing::debug!(dir = %self.dir.display(), new_base, "rolled log segment");
        Ok(seg)
    }

    fn prune_snapshots(&self) -> io::Result<()> {
        let mut offs: Vec<i64> = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(off) = entry
                .file_name()
                .to_str()
                .and_then(|n| parse_stem(n, ".snapshot"))
            {
                offs.push(off);
            }
        }
        offs.sort_unstable();
        let excess = offs.len().saturating_sub(SNAPSHOTS_TO_KEEP);
        for off in &offs[..excess] {
            remove_if_exists(&self.snapshot_path(*off))?;
        }
        Ok(())
    }

    /// Appends batches that already carry offsets (replication): every batch must pass header and CRC
    /// checks and continue the log contiguously; producer state is updated by replay, without sequence
    /// validation. Nothing is written unless the whole blob is acceptable.
    pub fn append_replicated(&self, records: Bytes) -> Result<(), StorageError> {
        let cfg = read(&self.config).clone();
        let mut inner = lock(&self.inner);
        let mut expected = self.log_end.load(Ordering::Acquire);
        let mut batches = Vec::new();
        let mut pos = 0usize;
        while pos < records.len() {
            let h = BatchHeader::parse(&records[pos..])?;
            let end = pos
                .checked_add(h.total_size())
                .filter(|&e| e <= records.len())
                .ok_or(BatchError::Truncated)?;
            if crc32c::crc32c(&records[pos + 21..end]) != h.crc {
                return Err(BatchError::CorruptMessage.into());
            }
            if h.base_offset != expected || h.last_offset_delta < 0 {
                return Err(StorageError::InvalidRecord(format!(
                    "replicated batch at offset {} does not continue the log at {expected}",
                    h.base_offset
                )));
            }
            if h.total_size() as u64 > cfg.segment_bytes.min(i32::MAX as u64) {
                return Err(StorageError::MessageTooLarge {
                    size: h.total_size(),
                    max: cfg.segment_bytes as usize,
                });
            }
            expected = h.last_offset() + 1;
            batches.push((pos, end, h));
            pos = end;
        }
        if batches.is_empty() {
            return Ok(());
        }
        self.remove_marker(&mut inner)?;
        // Replicated batches carry their own timestamps; "now" only matters for empty-segment rolls.
        let now_ms = batches.last().map_or(0, |b| b.2.max_timestamp);
        let mut count = 0i64;
        for (start, end, h) in batches {
            // The leader's log is the truth: as Kafka's follower append, any change of epoch is assigned
            // (a lower one replaces newer entries, see `LeaderEpochCache::assign`), before the batch lands.
            let epoch = h.partition_leader_epoch;
            if epoch >= 0 && read(&self.epochs).latest_epoch() != Some(epoch) {
                self.update_epochs(&mut inner, |c| c.assign(epoch, h.base_offset))?;
            }
            self.write_batch(&mut inner, &cfg, &records[start..end], &h, now_ms)?;
            inner.producers.replay(&h);
            count += i64::from(h.record_count.max(0));
        }
        self.after_write(&mut inner, &cfg, count)
    }

    /// Reads whole batches starting at the batch containing `start_offset`, up to `max_bytes` total,
    /// never including a batch whose base offset >= `max_offset` (the high watermark); if
    /// `min_one_batch` and the first batch is larger than max_bytes it is returned whole (Kafka
    /// semantics). Data comes from one segment per call, as in Kafka. An offset inside a gap left by
    /// compaction reads from the next batch after it. start_offset == log end -> empty;
    /// start_offset < log start or > log end -> StorageError::OffsetOutOfRange.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<ReadResult, StorageError> {
        let log_end = self.log_end.load(Ordering::Acquire);
        // Only the first segment holding data at or after start_offset can serve the read (compaction
        // can leave gaps and even empty segments); cloning one Arc keeps the lock short.
        let segment: Option<Arc<Segment>> = {
            let segs = read(&self.segments);
            let first = segs
                .partition_point(|s| s.base_offset() <= start_offset)
                .saturating_sub(1);
            segs[first..]
                .iter()
                .find(|s| s.next_offset() > start_offset)
                .cloned()
        };
        let log_start = self.log_start.load(Ordering::Acquire);
        if start_offset < log_start || start_offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                requested: start_offset,
                log_start,
                log_end,
            });
        }
        let mut result = ReadResult {
            records: Bytes::new(),
            log_start_offset: log_start,
            log_end_offset: log_end,
        };
        if start_offset == log_end {
            return Ok(result);
        }
        let max_offset = max_offset.min(log_end);
        if let Some(seg) = segment {
            if let Some((pos, h)) = seg.find_batch(start_offset)? {
                result.records = seg.read_batches(pos, &h, max_bytes, max_offset, min_one_batch)?;
            }
        }
        Ok(result)
    }

    /// First offset not yet removed by retention.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// ListOffsets by timestamp: the first record at or after the log start with timestamp >= `ts` (time
    /// index, then the batch's record timestamps), or `None` if every such record is older.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<TimestampLookup>, StorageError> {
        let max_decompressed = read(&self.config).max_decompressed_bytes();
        let segments = read(&self.segments).clone();
        let log_start = self.log_start.load(Ordering::Acquire);
        for seg in segments
            .iter()
            .filter(|s| s.next_offset() > log_start && s.max_timestamp().0 >= ts)
        {
            if let Some(found) = seg.find_timestamp(ts, log_start, max_decompressed)? {
                return Ok(Some(TimestampLookup {
                    offset: found.offset,
                    timestamp: found.timestamp,
                    leader_epoch: found.leader_epoch,
                }));
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP (-3): the record with the largest timestamp (earliest offset on ties),
    /// or `None` for an empty log.
    pub fn max_timestamp(&self) -> Result<Option<TimestampLookup>, StorageError> {
        let max_decompressed = read(&self.config).max_decompressed_bytes();
        let segments = read(&self.segments).clone();
        let log_start = self.log_start.load(Ordering::Acquire);
        let mut best: Option<(&Arc<Segment>, i64)> = None;
        for seg in segments
            .iter()
            .filter(|s| s.size() > 0 && s.next_offset() > log_start)
        {
            let ts = seg.max_timestamp().0;
            if best.is_none_or(|(_, b)| ts > b) {
                best = Some((seg, ts));
            }
        }
        let Some((seg, _)) = best else {
            return Ok(None);
        };
        Ok(seg
            .find_max_timestamp(max_decompressed)?
            .map(|f| TimestampLookup {
                offset: f.offset,
                timestamp: f.timestamp,
                leader_epoch: f.leader_epoch,
            }))
    }

    /// Forgets producers whose last batch is older than `now_ms - expiration_ms`
    /// (`producer.id.expiration.ms` housekeeping); returns how many were removed.
    pub fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        lock(&self.inner)
            .producers
            .remove_expired(now_ms, expiration_ms)
    }

    /// Number of producers with idempotence state in this partition.
    pub fn producer_count(&self) -> usize {
        lock(&self.inner).producers.producer_count()
    }

    /// Producer id -> offset of its last batch (see `ProducerStateManager::last_offsets`).
    pub fn producer_last_offsets(&self) -> std::collections::HashMap<i64, i64> {
        lock(&self.inner).producers.last_offsets()
    }

    /// The configuration in force.
    pub fn config(&self) -> LogConfig {
        read(&self.config).clone()
    }

    /// Leader epoch of the last batch (for ListOffsets latest) or -1.
    pub fn latest_epoch(&self) -> i32 {
        self.latest_epoch.load(Ordering::Acquire)
    }

    fn flush_locked(&self, inner: &mut Inner) -> Result<(), StorageError> {
        let log_end = self.log_end.load(Ordering::Acquire);
        // Rolled segments were fsynced at roll time, so only the active one can hold unflushed data.
        self.active().flush()?;
        if log_end != inner.recovery_point {
            write_atomically(
                &self.dir,
                &self.dir.join(RECOVERY_POINT_FILE),
                &encode_recovery_point(log_end),
            )?;
            inner.recovery_point = log_end;
        }
        inner.unflushed_messages = 0;
        Ok(())
    }

    /// Forces everything appended so far to disk and advances the recovery point.
    pub fn flush(&self) -> Result<(), StorageError> {
        let mut inner = lock(&self.inner);
        self.flush_locked(&mut inner)
    }

    /// Flushes if `flush_interval_ms` has passed since the last flush (the broker calls this periodically).
    pub fn maybe_flush(&self, now_ms: i64) -> Result<(), StorageError> {
        let interval = read(&self.config).flush_interval_ms;
        let mut inner = lock(&self.inner);
        inner.clock_ms = inner.clock_ms.max(now_ms);
        if now_ms.saturating_sub(inner.last_flush_ms) >= interval {
            if inner.unflushed_messages > 0 {
                self.flush_locked(&mut inner)?;
            }
            inner.last_flush_ms = now_ms;
        }
        Ok(())
    }

    /// Replaces the configuration; applies to subsequent appends (and index sizing of the active segment).
    pub fn update_config(&self, config: LogConfig) {
        let settings = config.segment_settings();
        *write(&self.config) = config;
        self.active().update_settings(settings);
    }

    /// Bytes of all segments' log files (what `retention.bytes` counts, as in Kafka).
    pub fn size_bytes(&self) -> u64 {
        read(&self.segments).iter().map(|s| s.size()).sum()
    }

    /// Truncates the log to end at `offset` (exclusive), for replication. When `offset` falls inside a
    /// batch the whole batch goes (the log ends at a batch boundary); when it precedes the log start the
    /// log is emptied and restarts at `offset`. Producer state is rebuilt for the new end.
    pub fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let full = offset < self.log_start.load(Ordering::Acquire);
        self.truncate(offset, full)
    }

    /// Empties the log and restarts it at `offset`, which may lie beyond the current end: what a follower
    /// does when the leader's log starts past everything it has (Kafka's truncateFullyAndStartAt).
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        self.truncate(offset, true)
    }

    fn truncate(&self, offset: i64, full: bool) -> Result<(), StorageError> {
        let cfg = read(&self.config).clone();
        let mut inner = lock(&self.inner);
        let log_end = self.log_end.load(Ordering::Acquire);
        if !full && offset >= log_end {
            // Kafka truncates the epoch cache even then: a replica that became leader and recorded its
            // epoch at its log end but wrote nothing before losing leadership holds an entry for an epoch
            // with no data, which would make it answer OffsetForLeaderEpoch wrongly.
            self.update_epochs(&mut inner, |c| c.truncate_from_end(log_end))?;
            return Ok(());
        }
        self.remove_marker(&mut inner)?;
        let now_ms = inner.last_flush_ms;
        // Kafka's truncateTo: a target below the log start empties the log and restarts it there.
        if full {
            // Lowered before the files change: a crash in between leaves a checkpoint below the first
            // segment, which open() clamps, never one above a log that restarts lower.
            self.persist_log_start(offset)?;
            // Cleared before the files change too (Kafka's truncateFullyAndStartAt clears it): if a crash
            // leaves the old data, open() finds the cache missing its epochs and rebuilds it from the log.
            self.update_epochs(&mut inner, LeaderEpochCache::clear)?;
        }
        let new_end;
        {
            let mut segs = write(&self.segments);
            while segs.len() > 1 && (full || segs[segs.len() - 1].base_offset() >= offset) {
                if let Some(seg) = segs.pop() {
                    seg.delete_files()?;
                }
            }
            let last = Arc::clone(&segs[segs.len() - 1]);
            if full || last.base_offset() >= offset {
                last.delete_files()?;
                let fresh = Arc::new(Segment::create(
                    &self.dir,
                    offset,
                    cfg.segment_settings(),
                    now_ms,
                )?);
                segs[0] = fresh;
                self.log_start.store(offset, Ordering::Release);
                new_end = offset;
            } else {
                new_end = last.truncate_to(offset)?;
            }
            self.log_end.store(new_end, Ordering::Release);
            let epoch = segs.iter().rev().find_map(|s| s.last_epoch()).unwrap_or(-1);
            self.latest_epoch.store(epoch, Ordering::Release);
        }
        sync_dir(&self.dir)?;
        // After the log (as Kafka): a crash in between leaves entries at or beyond the log end, which
        // open() removes.
        self.update_epochs(&mut inner, |c| c.truncate_from_end(new_end))?;
        if inner.recovery_point > new_end {
            // The checkpoint must not vouch for offsets that will now be rewritten with new data.
            write_atomically(
                &self.dir,
                &self.dir.join(RECOVERY_POINT_FILE),
                &encode_recovery_point(new_end),
            )?;
            inner.recovery_point = new_end;
        }
        let snapshots = list_dir(&self.dir)?.snapshots;
        inner.producers = self.load_producer_state(&snapshots)?;
        Ok(())
    }

    /// Flushes, writes the producer-state snapshot and the clean-shutdown marker. The log stays usable;
    /// a later append removes the marker again.
    pub fn close(&self) -> Result<(), StorageError> {
        let mut inner = lock(&self.inner);
        let active = self.active();
        active.seal()?;
        self.flush_locked(&mut inner)?;
        let log_end = self.log_end.load(Ordering::Acquire);
        inner
            .producers
            .write_snapshot(&self.snapshot_path(log_end), log_end - 1)?;
        self.prune_snapshots()?;
        write_atomically(&self.dir, &self.dir.join(CLEAN_SHUTDOWN_FILE), b"")?;
        inner.marker_on_disk = true;
        Ok(())
    }

    /// Deletes all files and the directory (DeleteTopics).
    pub fn delete(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        drop(self);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[path = "log_lifecycle.rs"]
mod lifecycle;
pub use lifecycle::{RetentionReport, SegmentInfo, SegmentReplacement};

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "log_lifecycle_tests.rs"]
mod lifecycle_tests;

#[cfg(test)]
#[path = "log_epoch_tests.rs"]
mod epoch_tests;
