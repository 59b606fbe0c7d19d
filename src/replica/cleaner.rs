//! The log cleaner: compaction of `cleanup.policy=compact` logs (Kafka's LogCleaner) on a dedicated
//! thread, so it never blocks produce or fetch.
//!
//! Each round picks the dirtiest compacted log whose dirty ratio (bytes not yet cleaned over all closed
//! bytes) reaches `min.cleanable.dirty.ratio`, or whose dirty data is older than `max.compaction.lag.ms`,
//! or whose tombstones' delete horizon has passed. It builds the key -> latest offset map over the dirty
//! closed segments (bounded by `log.cleaner.dedupe.buffer.size`; a full map cleans up to where it got),
//! then rewrites the closed segments from the log start up to there, grouped so a cleaned group stays
//! within `segment.bytes`, and swaps each group in (`PartitionLog::replace_segments`, crash-safe).
//! Segments newer than `min.compaction.lag.ms` and the active segment are never cleaned. Reads and writes
//! are paced by `log.cleaner.io.max.bytes.per.second`. The record-level work is
//! `kavka_storage::cleaner`.
//!
//! Where a log's dirty section starts is kept in memory: after a restart each compacted log is cleaned
//! once from its start, which rewrites nothing that is already clean.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kavka_config::BrokerConfig;
use kavka_storage::cleaner::{BatchCleaner, CleanOptions, MapFill, OffsetMap, Throttler};
use kavka_storage::log::SegmentInfo;
use kavka_storage::StorageError;

use super::{Partition, ReplicaManager, TopicPartition};
use crate::handlers::now_ms;
use crate::server::EffectiveConfig;

/// Bound on one batch's decompressed size while cleaning (a batch beyond it stops that log's round).
const MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// Per-log cleaning state.
#[derive(Default, Clone, Copy)]
struct LogProgress {
    /// Offsets below this were cleaned (Kafka's cleaner checkpoint).
    first_dirty: i64,
    /// When remaining tombstones can go (a later pass must run then), if any.
    delete_horizon: Option<i64>,
    /// After a failed round, the log is left alone until then.
    retry_after_ms: Option<i64>,
}

/// How long a log whose cleaning failed is left alone (Kafka marks such a partition uncleanable).
const RETRY_AFTER_FAILURE_MS: i64 = 60_000;

/// A log that needs cleaning and its priority (its dirty ratio; overdue logs first).
struct Candidate {
    partition: Arc<Partition>,
    priority: f64,
    dirty_bytes: u64,
}

/// The cleaner's own settings, as last read from the configuration in force.
#[derive(PartialEq)]
struct CleanerSettings {
    map_bytes: usize,
    load_factor: f64,
    io_bytes_per_second: f64,
    backoff: Duration,
}

impl CleanerSettings {
    fn from(config: &BrokerConfig) -> CleanerSettings {
        let threads = config.log_cleaner_threads.max(1) as i64;
        CleanerSettings {
            map_bytes: (config.log_cleaner_dedupe_buffer_size / threads).max(1024 * 1024) as usize,
            load_factor: config.log_cleaner_io_buffer_load_factor,
            io_bytes_per_second: config.log_cleaner_io_max_bytes_per_second,
            backoff: Duration::from_millis(config.log_cleaner_backoff_ms.max(10) as u64),
        }
    }
}

/// Nice value of the cleaner thread: compaction is background work, so on a busy machine produce and
/// fetch get the CPU first and the cleaner takes what is left (BENCHMARKS.md, "Log cleaner").
const CLEANER_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority (Linux: setpriority on a thread id applies to that
/// thread only).
fn lower_own_priority() {
    // SAFETY: gettid has no preconditions; setpriority only reads its integer arguments.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, CLEANER_NICE)
    };
    if rc != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot lower the log cleaner's priority");
    }
}

/// The offset map for a round over `dirty_bytes` of dirty data: an entry per record at most, and a record
/// takes more than 12 bytes of a batch, so twice the dirty size (24-byte entries) always suffices for
/// uncompressed data; compressed data may need more rounds. Grown when a log needs more, within the
/// `log.cleaner.dedupe.buffer.size` budget.
fn sized_map<'a>(
    map: &'a mut Option<OffsetMap>,
    settings: &CleanerSettings,
    dirty_bytes: u64,
) -> Option<&'a mut OffsetMap> {
    let wanted = (dirty_bytes.saturating_mul(2) as usize).clamp(1024 * 1024, settings.map_bytes);
    if map.as_ref().is_none_or(|m| m.memory_bytes() < wanted) {
        *map = None; // free the old table before allocating the new one
        match OffsetMap::new(wanted, settings.load_factor) {
            Ok(m) => *map = Some(m),
            Err(e) => {
                tracing::error!(error = %e, bytes = wanted, "cannot allocate the cleaner's offset map");
                return None;
            }
        }
    }
    map.as_mut()
}

/// Runs the cleaner until `stop` is set. Call on a dedicated thread. Its settings are re-read from
/// `config` between rounds, so dynamic broker configuration applies without a restart.
pub fn run(replicas: Arc<ReplicaManager>, config: EffectiveConfig, stop: Arc<AtomicBool>) {
    lower_own_priority();
    let current = || match config.read() {
        Ok(g) => CleanerSettings::from(&g),
        Err(p) => CleanerSettings::from(&p.into_inner()),
    };
    let mut settings = current();
    // Allocated when a log needs cleaning, sized to its dirty data (up to the configured budget), so a
    // broker without compaction work holds no map.
    let mut map: Option<OffsetMap> = None;
    let mut cleaner = BatchCleaner::new();
    let mut throttler = Throttler::new(settings.io_bytes_per_second);
    let mut progress: HashMap<TopicPartition, LogProgress> = HashMap::new();
    tracing::info!(map_budget_bytes = settings.map_bytes, "log cleaner started");
    while !stop.load(Ordering::Acquire) {
        let latest = current();
        if latest != settings {
            if (latest.map_bytes, latest.load_factor) != (settings.map_bytes, settings.load_factor)
            {
                map = None;
            }
            throttler = Throttler::new(latest.io_bytes_per_second);
            tracing::info!(
                map_budget_bytes = latest.map_bytes,
                "log cleaner settings changed"
            );
            settings = latest;
        }
        let backoff = settings.backoff;
        let now = now_ms();
        let candidate = pick(&replicas, &progress, now);
        let Some(candidate) = candidate else {
            sleep_unless_stopped(backoff, &stop);
            continue;
        };
        let key = (candidate.partition.topic.clone(), candidate.partition.index);
        let state = progress.get(&key).copied().unwrap_or_default();
        let Some(map) = sized_map(&mut map, &settings, candidate.dirty_bytes) else {
            sleep_unless_stopped(backoff, &stop);
            continue;
        };
        match clean_log(
            &candidate.partition,
            state,
            map,
            &mut cleaner,
            &mut throttler,
            &stop,
        ) {
            Ok(next) => {
                progress.insert(key, next);
            }
            Err(CleanFailure::Changed) => {} // retention or DeleteRecords moved segments: retry later
            Err(CleanFailure::Stopped) => break,
            Err(CleanFailure::Failed(e)) => {
                tracing::error!(topic = %key.0, partition = key.1, error = %e, "log compaction failed; retrying in a minute");
                let mut next = state;
                next.retry_after_ms = Some(now_ms() + RETRY_AFTER_FAILURE_MS);
                progress.insert(key, next);
            }
        }
        // Forget logs that are gone.
        progress.retain(|(t, p), _| replicas.get(t, *p).is_some());
    }
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(50);
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::Acquire) {
        std::thread::sleep(step);
        slept += step;
    }
}

/// The closed segments that may be cleaned now: from the log start, stopping at the first one with
/// records newer than `min.compaction.lag.ms`.
fn cleanable(partition: &Partition, now: i64) -> Vec<SegmentInfo> {
    let log = partition.log();
    let lag = log.config().min_compaction_lag_ms;
    let hw = partition.high_watermark();
    log.cleanable_segments()
        .into_iter()
        .take_while(|s| {
            s.next_segment_base <= hw && (lag <= 0 || s.max_timestamp <= now.saturating_sub(lag))
        })
        .collect()
}

fn pick(
    replicas: &ReplicaManager,
    progress: &HashMap<TopicPartition, LogProgress>,
    now: i64,
) -> Option<Candidate> {
    let mut best: Option<Candidate> = None;
    for partition in replicas.partitions() {
        let config = partition.log().config();
        if !config.cleanup_compact {
            continue;
        }
        let state = progress
            .get(&(partition.topic.clone(), partition.index))
            .copied()
            .unwrap_or_default();
        if state.retry_after_ms.is_some_and(|t| now < t) {
            continue;
        }
        let segments = cleanable(&partition, now);
        let total: u64 = segments.iter().map(|s| s.size_bytes).sum();
        if total == 0 {
            continue;
        }
        let dirty_segments: Vec<&SegmentInfo> = segments
            .iter()
            .filter(|s| s.next_segment_base > state.first_dirty)
            .collect();
        let dirty: u64 = dirty_segments.iter().map(|s| s.size_bytes).sum();
        let ratio = dirty as f64 / total as f64;
        // max.compaction.lag.ms: dirty data this old must be cleaned whatever the ratio.
        let overdue = config.max_compaction_lag_ms < i64::MAX
            && dirty_segments.iter().any(|s| {
                s.max_timestamp >= 0
                    && s.max_timestamp < now.saturating_sub(config.max_compaction_lag_ms)
            });
        let horizon_passed = state.delete_horizon.is_some_and(|h| now >= h);
        let wanted =
            (dirty > 0 && ratio >= config.min_cleanable_dirty_ratio) || overdue || horizon_passed;
        if !wanted {
            continue;
        }
        let priority = if overdue || horizon_passed {
            f64::MAX
        } else {
            ratio
        };
        if best.as_ref().is_none_or(|b| priority > b.priority) {
            best = Some(Candidate {
                partition,
                priority,
                dirty_bytes: dirty,
            });
        }
    }
    best
}

enum CleanFailure {
    Changed,
    Stopped,
    Failed(String),
}

fn storage_failure(e: StorageError) -> CleanFailure {
    match e {
        StorageError::SegmentsChanged(_) => CleanFailure::Changed,
        other => CleanFailure::Failed(other.to_string()),
    }
}

/// Read size of the cleaner: besides the offset map its memory is one chunk in and one chunk out (a chunk
/// grows to one whole batch when a batch is larger).
const CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// Feeds a segment to `f` in chunks of whole batches, pacing reads with the throttler; `f` answers
/// whether to go on. Returns the bytes read.
fn for_each_chunk(
    segment: &SegmentInfo,
    throttler: &mut Throttler,
    stop: &AtomicBool,
    mut f: impl FnMut(&[u8], &mut Throttler) -> Result<bool, CleanFailure>,
) -> Result<u64, CleanFailure> {
    let mut position = 0u64;
    loop {
        if stop.load(Ordering::Acquire) {
            return Err(CleanFailure::Stopped);
        }
        let chunk = segment
            .read_batches(position, CHUNK_BYTES)
            .map_err(storage_failure)?;
        if chunk.is_empty() {
            return Ok(position);
        }
        position += chunk.len() as u64;
        throttler.maybe_throttle(chunk.len() as u64);
        if !f(&chunk, throttler)? {
            return Ok(position);
        }
    }
}

/// One cleaning round of one log.
fn clean_log(
    partition: &Partition,
    state: LogProgress,
    map: &mut OffsetMap,
    cleaner: &mut BatchCleaner,
    throttler: &mut Throttler,
    stop: &AtomicBool,
) -> Result<LogProgress, CleanFailure> {
    let started = std::time::Instant::now();
    let log = partition.log();
    let config = log.config();
    let now = now_ms();
    let segments = cleanable(partition, now);
    let Some(last) = segments.last() else {
        return Ok(state);
    };
    let cleanable_end = last.next_segment_base;
    let first_dirty = state
        .first_dirty
        .max(log.log_start_offset())
        .min(cleanable_end);
    map.clear();
    let mut map_end = cleanable_end;
    let mut full = false;
    for segment in segments
        .iter()
        .filter(|s| s.next_segment_base > first_dirty)
    {
        let start = first_dirty.max(segment.base_offset);
        for_each_chunk(segment, throttler, stop, |chunk, _| {
            match map.add_segment(
                chunk,
                start,
                segment.next_segment_base,
                MAX_DECOMPRESSED_BYTES,
            ) {
                Ok(MapFill::Complete) => Ok(true),
                Ok(MapFill::Full) => {
                    full = true;
                    Ok(false)
                }
                Err(e) => Err(CleanFailure::Failed(e.to_string())),
            }
        })?;
        if full {
            map_end = map.latest_offset() + 1;
            break;
        }
    }
    let mut options = CleanOptions::new(now);
    options.delete_retention_ms = config.delete_retention_ms;
    options.max_decompressed_bytes = MAX_DECOMPRESSED_BYTES;
    options.upper_bound_offset = Some(map_end);
    options.active_producer_last_offsets = log.producer_last_offsets();
    // Consecutive segments whose sizes add up to at most one segment are cleaned into one (Kafka's
    // groupSegmentsBySize); each group is written out chunk by chunk and swapped in, so memory stays
    // bounded by a chunk whatever the segment size.
    let mut horizon: Option<i64> = None;
    let (mut read_bytes, mut written_bytes) = (0u64, 0u64);
    let mut out: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
    let to_clean: Vec<&SegmentInfo> = segments
        .iter()
        .filter(|s| s.base_offset < map_end)
        .collect();
    let mut groups: Vec<Vec<&SegmentInfo>> = Vec::new();
    let mut group_bytes = 0u64;
    for segment in to_clean {
        match groups.last_mut() {
            Some(group)
                if group_bytes.saturating_add(segment.size_bytes) <= config.segment_bytes =>
            {
                group_bytes += segment.size_bytes;
                group.push(segment);
            }
            _ => {
                group_bytes = segment.size_bytes;
                groups.push(vec![segment]);
            }
        }
    }
    for group in groups {
        let bases: Vec<i64> = group.iter().map(|s| s.base_offset).collect();
        let mut replacement = log.begin_replacement(&bases).map_err(storage_failure)?;
        for segment in group {
            read_bytes += for_each_chunk(segment, throttler, stop, |chunk, throttler| {
                out.clear();
                let summary = cleaner
                    .clean(chunk, map, &options, &mut out)
                    .map_err(|e| CleanFailure::Failed(e.to_string()))?;
                if let Some(h) = summary.earliest_delete_horizon {
                    horizon = Some(horizon.map_or(h, |x: i64| x.min(h)));
                }
                throttler.maybe_throttle(out.len() as u64);
                written_bytes += out.len() as u64;
                replacement.append(&out).map_err(storage_failure)?;
                Ok(true)
            })?;
        }
        replacement.commit().map_err(storage_failure)?;
    }
    tracing::info!(
        topic = %partition.topic,
        partition = partition.index,
        cleaned_up_to = map_end,
        read_bytes,
        written_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "log compacted"
    );
    Ok(LogProgress {
        first_dirty: map_end,
        delete_horizon: horizon,
        retry_after_ms: None,
    })
}
