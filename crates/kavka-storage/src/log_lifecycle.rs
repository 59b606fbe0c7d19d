//! Log lifecycle: the durable log start offset, DeleteRecords, time/size retention, delayed file
//! deletion and the compactor's crash-safe segment swap.
//!
//! Every mutation here runs under the log's append lock, so it is serialized with appends, rolls and
//! truncation; readers only ever see a whole segment list (swapped under the short segments lock) and keep
//! reading segments they already hold even after those were removed, because a segment never reopens its
//! log file by path and renaming or unlinking an open file leaves the open handle valid on Linux.
//!
//! Swap protocol (Kafka's `.cleaned` -> `.swap` -> final), for replacing old segments `[B, E)` by one new
//! segment with base `B`:
//! 1. write `B.log.cleaned` with its indexes `B.index.cleaned` and `B.timeindex.cleaned` (streamed in by
//!    [`SegmentReplacement::append`], without the append lock), fsync them;
//! 2. write `B.swapinfo` (the end `E` of the replaced range, CRC'd) atomically;
//! 3. rename `B.log.cleaned` -> `B.log.swap`, fsync the directory: the commit point;
//! 4. rename every old segment's files to `*.deleted`, fsync the directory;
//! 5. rename the two indexes to `B.index` and `B.timeindex`, then `B.log.swap` -> `B.log`, fsync the
//!    directory, remove `B.swapinfo`; the new segment is opened from its files.
//!
//! Steps 2 to 5 run under the append lock, after checking that the old segments are still in the log.
//! `open()` undoes a swap that did not reach step 3 (`.cleaned` files are removed, old segments are
//! intact) and completes one that did (old segments in `[B, E)` and any `B.index`/`B.timeindex` are
//! removed, the `.swap` file takes the final name and its indexes are rebuilt), so no offset range is ever
//! lost or present twice.

use super::*;

/// Suffix of files of removed segments, kept until `file.delete.delay.ms` has passed.
pub(super) const DELETED_SUFFIX: &str = ".deleted";
/// Suffix of a compacted segment being written (not yet committed).
pub(super) const CLEANED_SUFFIX: &str = ".cleaned";
/// Extension (after `.log`) of a committed compacted segment awaiting its final name.
const SWAP_SUFFIX: &str = ".swap";
/// Extension of the file recording the end of the offset range a swap replaces.
const SWAP_INFO_EXT: &str = ".swapinfo";

/// Files of removed segments and when they may be unlinked.
#[derive(Debug)]
pub(super) struct PendingDelete {
    due_ms: i64,
    paths: Vec<PathBuf>,
}

/// Outcome of [`PartitionLog::enforce_retention`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segments removed from the log by this pass.
    pub segments_deleted: usize,
    /// Bytes of log data in those segments.
    pub bytes_freed: u64,
    /// Log start offset after the pass.
    pub log_start_offset: i64,
    /// Files of earlier deletions unlinked because their `file.delete.delay.ms` had passed.
    pub files_unlinked: usize,
}

/// A closed (never the active) segment, as offered to the log cleaner.
#[derive(Debug, Clone)]
pub struct SegmentInfo {
    /// Base offset (also the segment's file name).
    pub base_offset: i64,
    /// Offset after the segment's last batch (== `base_offset` when empty).
    pub next_offset: i64,
    /// Offset where the following segment starts: the replaced range of a swap ends here.
    pub next_segment_base: i64,
    /// Size of the log file in bytes.
    pub size_bytes: u64,
    /// Largest record timestamp in the segment, -1 when none.
    pub max_timestamp: i64,
    segment: Arc<Segment>,
}

impl SegmentInfo {
    /// Whole batches from byte `position` (0, then the end of the previous chunk), at most `max_bytes`
    /// but always at least one batch; empty at the end of the segment. Keeps working if the segment is
    /// removed meanwhile (its open file stays readable), so a cleaner pass never reads torn data.
    pub fn read_batches(&self, position: u64, max_bytes: usize) -> Result<Bytes, StorageError> {
        Ok(self.segment.read_raw_batches(position, max_bytes)?)
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// The offset after the last complete batch of the log file at `path`, reading headers only; `None`
/// when it holds no complete batch.
fn scan_next_offset(path: &Path) -> io::Result<Option<i64>> {
    use std::os::unix::fs::FileExt;
    let file = fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut pos = 0u64;
    let mut next = None;
    let mut buf = [0u8; crate::batch::BATCH_HEADER_LEN];
    while pos + buf.len() as u64 <= len {
        file.read_exact_at(&mut buf, pos)?;
        let Ok(h) = BatchHeader::parse(&buf) else {
            break;
        };
        pos += h.total_size() as u64;
        if pos > len {
            break;
        }
        next = Some(h.last_offset() + 1);
    }
    Ok(next)
}

/// Finishes a segment swap interrupted after its commit point (see the module docs); called by `open()`
/// before the directory is listed.
pub(super) fn complete_interrupted_swaps(dir: &Path) -> io::Result<()> {
    let mut swaps = Vec::new();
    let mut infos = Vec::new();
    let mut logs = BTreeSet::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = name
            .strip_suffix(SWAP_SUFFIX)
            .and_then(|n| parse_stem(n, ".log"))
        {
            swaps.push(base);
        } else if let Some(base) = parse_stem(name, SWAP_INFO_EXT) {
            infos.push(base);
        } else if let Some(base) = parse_stem(name, ".log") {
            logs.insert(base);
        }
    }
    for &base in &swaps {
        let stem = file_stem(base);
        let swap_path = dir.join(format!("{stem}.log{SWAP_SUFFIX}"));
        let recorded = match fs::read(dir.join(format!("{stem}{SWAP_INFO_EXT}"))) {
            Ok(b) => decode_recovery_point(&b).filter(|&end| end > base),
            Err(_) => None,
        };
        let end = match recorded {
            Some(end) => end,
            // Without the range record, Kafka's rule: the swap replaces the segments its offsets cover.
            None => scan_next_offset(&swap_path)?
                .unwrap_or(base)
                .max(base.saturating_add(1)),
        };
        tracing::warn!(dir = %dir.display(), base, end, "completing an interrupted segment swap");
        PartitionLog::delete_segment_files(dir, base)?;
        for &old in logs.range(base..end) {
            PartitionLog::delete_segment_files(dir, old)?;
        }
        fs::rename(&swap_path, dir.join(format!("{stem}.log")))?;
    }
    if !swaps.is_empty() {
        sync_dir(dir)?;
    }
    for base in infos {
        remove_if_exists(&dir.join(format!("{}{SWAP_INFO_EXT}", file_stem(base))))?;
    }
    Ok(())
}

impl PartitionLog {
    /// Makes `offset` the durable log start (atomic checkpoint write).
    pub(super) fn persist_log_start(&self, offset: i64) -> io::Result<()> {
        write_atomically(
            &self.dir,
            &self.dir.join(LOG_START_FILE),
            &encode_recovery_point(offset),
        )
    }

    /// Raises the log start to `offset` if that is higher: checkpoint first, so a published start offset
    /// is never lost by a crash; then the leader-epoch cache drops the epochs wholly below it (a crash
    /// before that is repaired by open(), which applies the durable log start to the cache).
    fn advance_log_start(&self, inner: &mut Inner, offset: i64) -> io::Result<()> {
        if offset > self.log_start.load(Ordering::Acquire) {
            self.persist_log_start(offset)?;
            self.log_start.store(offset, Ordering::Release);
            self.update_epochs(inner, |c| c.truncate_from_start(offset))?;
        }
        Ok(())
    }

    /// Kafka's DeleteRecords for this partition: `offset` -1 means `high_watermark`. Returns the new low
    /// watermark (log start offset). A target below the current start changes nothing. Segments wholly
    /// below the new start leave the log at once (files deleted after `file_delete_delay_ms`).
    ///
    /// Errors: `PolicyViolation` when `cleanup.policy` lacks `delete` (POLICY_VIOLATION);
    /// `OffsetOutOfRange` (with `log_end` = the high watermark) for a negative target or one above the high
    /// watermark (OFFSET_OUT_OF_RANGE).
    pub fn delete_records(&self, offset: i64, high_watermark: i64) -> Result<i64, StorageError> {
        let cfg = read(&self.config).clone();
        if !cfg.cleanup_delete {
            return Err(StorageError::PolicyViolation(
                "records cannot be deleted because the topic's cleanup.policy is compact".into(),
            ));
        }
        let mut inner = lock(&self.inner);
        let hw = high_watermark.min(self.log_end.load(Ordering::Acquire));
        let target = if offset == -1 { hw } else { offset };
        let current = self.log_start.load(Ordering::Acquire);
        if target < 0 || target > hw {
            return Err(StorageError::OffsetOutOfRange {
                requested: offset,
                log_start: current,
                log_end: hw,
            });
        }
        if target <= current {
            return Ok(current);
        }
        self.remove_marker(&mut inner)?;
        self.advance_log_start(&mut inner, target)?;
        let n = self.deletable_prefix(hw, |_, next| {
            Ok(next.is_some_and(|n| n.base_offset() <= target))
        })?;
        let now_ms = inner.clock_ms;
        self.delete_front(&mut inner, &cfg, n, now_ms)?;
        Ok(self.log_start.load(Ordering::Acquire))
    }

    /// Kafka's retention pass (UnifiedLog.deleteOldSegments), for the broker's periodic
    /// `log.retention.check.interval.ms` task. With `cleanup.policy` containing `delete`: first segments
    /// whose largest timestamp is more than `retention_ms` older than `now_ms`, then the oldest segments
    /// while the log stays at least `retention_bytes` without them. Always: segments wholly below the log
    /// start (after DeleteRecords). Only a prefix of segments lying wholly below `high_watermark` is
    /// eligible; the active segment qualifies when non-empty, and then a new empty active segment is
    /// rolled first (as Kafka does). Also unlinks `*.deleted` files whose delay has passed.
    pub fn enforce_retention(
        &self,
        now_ms: i64,
        high_watermark: i64,
    ) -> Result<RetentionReport, StorageError> {
        let cfg = read(&self.config).clone();
        let mut inner = lock(&self.inner);
        inner.clock_ms = inner.clock_ms.max(now_ms);
        let hw = high_watermark.min(self.log_end.load(Ordering::Acquire));
        let mut report = RetentionReport::default();
        let mut account = |(count, bytes): (usize, u64)| {
            report.segments_deleted += count;
            report.bytes_freed += bytes;
        };
        if cfg.cleanup_delete && cfg.retention_ms >= 0 {
            let n = self.deletable_prefix(hw, |seg, _| {
                Ok(now_ms.saturating_sub(seg.largest_timestamp()?) > cfg.retention_ms)
            })?;
            account(self.delete_front(&mut inner, &cfg, n, now_ms)?);
        }
        if cfg.cleanup_delete && cfg.retention_bytes >= 0 {
            let total = i64::try_from(self.size_bytes()).unwrap_or(i64::MAX);
            let mut excess = total - cfg.retention_bytes;
            let n = self.deletable_prefix(hw, |seg, _| {
                let size = i64::try_from(seg.size()).unwrap_or(i64::MAX);
                if excess - size >= 0 {
                    excess -= size;
                    Ok(true)
                } else {
                    Ok(false)
                }
            })?;
            account(self.delete_front(&mut inner, &cfg, n, now_ms)?);
        }
        let start = self.log_start.load(Ordering::Acquire);
        let n = self.deletable_prefix(hw, |_, next| {
            Ok(next.is_some_and(|n| n.base_offset() <= start))
        })?;
        account(self.delete_front(&mut inner, &cfg, n, now_ms)?);
        report.files_unlinked = self.unlink_expired(&mut inner, now_ms)?;
        report.log_start_offset = self.log_start.load(Ordering::Acquire);
        Ok(report)
    }

    /// Unlinks `*.deleted` files whose `file_delete_delay_ms` has passed by `now_ms`; returns how many.
    /// (`enforce_retention` does this too; this is for callers that want it on its own schedule.)
    pub fn delete_expired_files(&self, now_ms: i64) -> Result<usize, StorageError> {
        let mut inner = lock(&self.inner);
        inner.clock_ms = inner.clock_ms.max(now_ms);
        Ok(self.unlink_expired(&mut inner, now_ms)?)
    }

    fn unlink_expired(&self, inner: &mut Inner, now_ms: i64) -> io::Result<usize> {
        let mut unlinked = 0;
        let mut i = 0;
        while i < inner.pending_deletes.len() {
            if inner.pending_deletes[i].due_ms > now_ms {
                i += 1;
                continue;
            }
            let pending = inner.pending_deletes.swap_remove(i);
            for (k, path) in pending.paths.iter().enumerate() {
                if let Err(e) = remove_if_exists(path) {
                    // Keep what is left so a later call retries it.
                    inner.pending_deletes.push(PendingDelete {
                        due_ms: pending.due_ms,
                        paths: pending.paths[k..].to_vec(),
                    });
                    return Err(e);
                }
                unlinked += 1;
            }
        }
        Ok(unlinked)
    }

    /// Kafka's deletableSegments: the length of the longest prefix of segments that satisfy `pred`, lie
    /// wholly below `hw`, and are not the empty active segment. `pred` sees the segment and its successor.
    fn deletable_prefix(
        &self,
        hw: i64,
        mut pred: impl FnMut(&Segment, Option<&Arc<Segment>>) -> Result<bool, StorageError>,
    ) -> Result<usize, StorageError> {
        let segs = read(&self.segments).clone();
        let log_end = self.log_end.load(Ordering::Acquire);
        let mut n = 0;
        for (i, seg) in segs.iter().enumerate() {
            let next = segs.get(i + 1);
            let upper = next.map_or(log_end, |s| s.base_offset());
            let last_and_empty = next.is_none() && seg.size() == 0;
            if last_and_empty || upper > hw || !pred(seg, next)? {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Removes the first `n` segments: rolls first when that includes the active one, advances the log
    /// start to the new first segment (never lowering it), renames the files to `*.deleted` (oldest first,
    /// log file before its indexes, so a crash leaves a removable prefix) and schedules their unlinking.
    /// Returns (segments removed, log bytes freed).
    fn delete_front(
        &self,
        inner: &mut Inner,
        cfg: &LogConfig,
        n: usize,
        now_ms: i64,
    ) -> Result<(usize, u64), StorageError> {
        if n == 0 {
            return Ok((0, 0));
        }
        self.remove_marker(inner)?;
        if n >= read(&self.segments).len() {
            let end = self.log_end.load(Ordering::Acquire);
            self.roll(inner, cfg, end, now_ms)?;
        }
        let new_first = read(&self.segments)
            .get(n)
            .map(|s| s.base_offset())
            .ok_or_else(|| io::Error::other("segment list shorter than the deletable prefix"))?;
        // The start moves before the segments go: a reader that sees the shorter list sees the new start.
        self.advance_log_start(inner, new_first)?;
        let removed: Vec<Arc<Segment>> = write(&self.segments).drain(..n).collect();
        let mut bytes = 0u64;
        let mut paths = Vec::with_capacity(removed.len() * 3);
        for seg in &removed {
            bytes += seg.size();
            paths.extend(self.rename_to_deleted(seg)?);
        }
        sync_dir(&self.dir)?;
        inner.pending_deletes.push(PendingDelete {
            due_ms: now_ms.saturating_add(cfg.file_delete_delay_ms.max(0)),
            paths,
        });
        tracing::info!(dir = %self.dir.display(), segments = removed.len(), bytes, log_start = new_first.max(self.log_start.load(Ordering::Acquire)), "deleted log segments");
        Ok((removed.len(), bytes))
    }

    fn rename_to_deleted(&self, seg: &Segment) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::with_capacity(3);
        for path in seg.file_paths() {
            let target = with_suffix(&path, DELETED_SUFFIX);
            match fs::rename(&path, &target) {
                Ok(()) => out.push(target),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The closed segments (never the active one) that still hold data at or above the log start, oldest
    /// first: what the log cleaner may compact.
    pub fn cleanable_segments(&self) -> Vec<SegmentInfo> {
        let segs = read(&self.segments).clone();
        let log_start = self.log_start.load(Ordering::Acquire);
        segs.windows(2)
            .filter(|w| w[1].base_offset() > log_start)
            .map(|w| SegmentInfo {
                base_offset: w[0].base_offset(),
                next_offset: w[0].next_offset(),
                next_segment_base: w[1].base_offset(),
                size_bytes: w[0].size(),
                max_timestamp: w[0].max_timestamp().0,
                segment: Arc::clone(&w[0]),
            })
            .collect()
    }

    /// Replaces the consecutive closed segments starting at `old_bases` (in order, as returned by
    /// [`cleanable_segments`](Self::cleanable_segments)) by one segment with base `old_bases[0]` holding
    /// `cleaned_batches`: valid v2 batches (CRC checked here) with strictly increasing offsets inside the
    /// replaced range. Offsets are kept, so the new segment may have gaps. Atomic for readers and
    /// crash-safe on disk (see the module docs); the old files are deleted after `file_delete_delay_ms`.
    /// One-shot form of [`begin_replacement`](Self::begin_replacement), for output that fits in memory.
    ///
    /// Errors: `SegmentsChanged` when the segments are no longer consecutive closed segments of the log;
    /// `Batch`/`InvalidRecord` when the batches are malformed or outside the range.
    pub fn replace_segments(
        &self,
        old_bases: &[i64],
        cleaned_batches: Bytes,
    ) -> Result<(), StorageError> {
        let mut replacement = self.begin_replacement(old_bases)?;
        replacement.append(&cleaned_batches)?;
        replacement.commit()
    }

    /// Starts replacing the consecutive closed segments `old_bases` (in order, as returned by
    /// [`cleanable_segments`](Self::cleanable_segments)) by one new segment based at `old_bases[0]`. The
    /// cleaner streams the new content in with [`SegmentReplacement::append`], which writes it to disk as
    /// it comes (so the cleaner's memory is bounded by its chunk size, not by `segment.bytes`), then
    /// [`SegmentReplacement::commit`] swaps it in exactly as [`replace_segments`](Self::replace_segments)
    /// does. Dropping the replacement without committing aborts it and removes its files.
    ///
    /// The append lock is held only here and in `commit`, never in between: producers and retention keep
    /// running while the cleaner works, and `commit` refuses the swap if they changed the segments.
    ///
    /// Errors: `SegmentsChanged` when the segments are not consecutive closed segments of the log (the
    /// active segment is never replaced) or a replacement starting at the same base is still alive; `Io`
    /// when the `.cleaned` files cannot be created.
    pub fn begin_replacement(
        &self,
        old_bases: &[i64],
    ) -> Result<SegmentReplacement<'_>, StorageError> {
        let cfg = read(&self.config).clone();
        let mut inner = lock(&self.inner);
        let segs = read(&self.segments).clone();
        let Some(&first) = old_bases.first() else {
            return Err(StorageError::SegmentsChanged(
                "no segments to replace".into(),
            ));
        };
        let Some(at) = segs.iter().position(|s| s.base_offset() == first) else {
            return Err(StorageError::SegmentsChanged(format!(
                "segment {first} is no longer in the log"
            )));
        };
        let k = old_bases.len();
        // The segment after the replaced ones must exist: the active segment is never replaced.
        if at + k >= segs.len()
            || segs[at..at + k]
                .iter()
                .zip(old_bases)
                .any(|(s, &b)| s.base_offset() != b)
        {
            return Err(StorageError::SegmentsChanged(format!(
                "segments {old_bases:?} are not consecutive closed segments of the log"
            )));
        }
        // Two live replacements of one base would write the same `.cleaned` files.
        if !inner.replacements.insert(first) {
            return Err(StorageError::SegmentsChanged(format!(
                "segment {first} is already being replaced"
            )));
        }
        let now_ms = inner.clock_ms;
        drop(inner);
        let old = segs[at..at + k].to_vec();
        let data_end = old.iter().map(|s| s.next_offset()).max().unwrap_or(first);
        let cleaned_paths = cleaned_paths(&self.dir, first);
        let writer = match Segment::create_with_suffix(
            &self.dir,
            first,
            cfg.segment_settings(),
            now_ms,
            CLEANED_SUFFIX,
        ) {
            Ok(w) => w,
            Err(e) => {
                remove_cleaned_files(&self.dir, &cleaned_paths);
                lock(&self.inner).replacements.remove(&first);
                return Err(e.into());
            }
        };
        Ok(SegmentReplacement {
            log: self,
            first,
            old,
            successor: Arc::clone(&segs[at + k]),
            data_end,
            next_allowed: first,
            written: 0,
            writer,
            cleaned_paths,
            failed: false,
            info_written: false,
            committed: false,
        })
    }
}

/// The `.cleaned` files of a replacement based at `base`: log, offset index, time index (the names
/// `Segment::create_with_suffix` gives them).
fn cleaned_paths(dir: &Path, base: i64) -> [PathBuf; 3] {
    let stem = file_stem(base);
    ["log", "index", "timeindex"].map(|ext| dir.join(format!("{stem}.{ext}{CLEANED_SUFFIX}")))
}

/// Best-effort removal of an aborted replacement's files: a leftover is harmless, since `open()` removes
/// every `.cleaned` file, so a failure is only logged.
fn remove_cleaned_files(dir: &Path, paths: &[PathBuf]) {
    for path in paths {
        if let Err(e) = remove_if_exists(path) {
            tracing::warn!(dir = %dir.display(), path = %path.display(), error = %e, "cannot remove an aborted cleaned segment file");
        }
    }
}

/// A compacted segment being built from batches streamed in by the log cleaner: see
/// [`PartitionLog::begin_replacement`]. Dropping it without [`commit`](Self::commit) aborts the
/// replacement: its `.cleaned` files are removed and the log is unchanged.
///
/// After any failed [`append`](Self::append) the replacement is unusable (further appends and `commit`
/// fail): committing output with a chunk missing would silently lose records.
#[derive(Debug)]
pub struct SegmentReplacement<'a> {
    log: &'a PartitionLog,
    /// Base offset of the first replaced segment and of the new one.
    first: i64,
    /// The replaced segments and their successor as seen by `begin_replacement`. `commit` swaps only if
    /// the log still holds exactly these objects: comparing identities rather than base offsets also
    /// catches a segment that was truncated away and re-created with the same base.
    old: Vec<Arc<Segment>>,
    successor: Arc<Segment>,
    /// Offset after the last batch of the replaced segments: the new content must stay below it.
    data_end: i64,
    /// Smallest offset the next batch may start at (offsets strictly increase across appends).
    next_allowed: i64,
    /// Bytes written to the `.cleaned` log so far.
    written: u64,
    /// The new segment under its `.cleaned` names; it maintains the indexes as batches arrive.
    writer: Segment,
    cleaned_paths: [PathBuf; 3],
    failed: bool,
    /// `commit` wrote `<base>.swapinfo`: an abort removes it again.
    info_written: bool,
    /// The commit point was passed: the files belong to the swap and an abort must not touch them.
    committed: bool,
}

impl SegmentReplacement<'_> {
    /// Appends whole v2 batches (any number, possibly none) to the new segment. They are validated as
    /// `replace_segments` validates its input (framing, CRC, offsets strictly increasing across all
    /// appends and inside the replaced segments' offsets, the segment staying under 2 GiB) before any of
    /// them is written, then written to the `.cleaned` file and indexed at once.
    ///
    /// Errors: `Batch`/`InvalidRecord`/`MessageTooLarge` for bad input, `Io` for a failed write; after
    /// any error the replacement is unusable and should be dropped.
    pub fn append(&mut self, batches: &[u8]) -> Result<(), StorageError> {
        if self.failed {
            return Err(self.unusable());
        }
        let result = self.append_chunk(batches);
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn append_chunk(&mut self, batches: &[u8]) -> Result<(), StorageError> {
        let total = self.written.saturating_add(batches.len() as u64);
        // Index positions are 32-bit, so a segment never exceeds i32::MAX bytes (as on roll).
        if total > i32::MAX as u64 {
            return Err(StorageError::MessageTooLarge {
                size: usize::try_from(total).unwrap_or(usize::MAX),
                max: i32::MAX as usize,
            });
        }
        let next_allowed = validate_cleaned(batches, self.first, self.next_allowed, self.data_end)?;
        if batches.is_empty() {
            return Ok(());
        }
        self.writer.append_batches(batches)?;
        self.written = total;
        self.next_allowed = next_allowed;
        Ok(())
    }

    /// Swaps the new segment in for the old ones, crash-safely (see the module docs), and schedules the
    /// old files for deletion after `file_delete_delay_ms`. The fsync of the new data happens before the
    /// append lock is taken; under it only renames and the (index-only) reopen of the new segment run.
    ///
    /// Errors: `SegmentsChanged` when retention, DeleteRecords, truncation or another swap changed the
    /// replaced segments (or their successor) since `begin_replacement`: nothing is swapped and the
    /// cleaner retries on a fresh view; `InvalidRecord` after an earlier failed append; `Io` otherwise.
    pub fn commit(mut self) -> Result<(), StorageError> {
        if self.failed {
            return Err(self.unusable());
        }
        self.swap_in()
        // Dropping `self` now removes the `.cleaned` files if the commit point was not reached.
    }

    fn unusable(&self) -> StorageError {
        StorageError::InvalidRecord(format!(
            "the replacement of segment {} failed earlier and cannot continue",
            self.first
        ))
    }

    fn swap_in(&mut self) -> Result<(), StorageError> {
        let log = self.log;
        // Step 1 of the protocol, outside the append lock since it can take long for a large segment: the
        // time index gets its final entry (as on roll) and everything is made durable.
        self.writer.seal()?;
        self.writer.flush()?;
        self.writer.release_index_files()?;

        let cfg = read(&log.config).clone();
        let mut inner = lock(&log.inner);
        let segs = read(&log.segments).clone();
        let k = self.old.len();
        let at = segs
            .iter()
            .position(|s| Arc::ptr_eq(s, &self.old[0]))
            .filter(|&at| {
                at + k < segs.len()
                    && segs[at..at + k]
                        .iter()
                        .zip(&self.old)
                        .all(|(a, b)| Arc::ptr_eq(a, b))
                    && Arc::ptr_eq(&segs[at + k], &self.successor)
            });
        let Some(at) = at else {
            return Err(StorageError::SegmentsChanged(format!(
                "segments from {} changed while being replaced",
                self.first
            )));
        };
        let range_end = self.successor.base_offset();

        log.remove_marker(&mut inner)?;
        let dir = &log.dir;
        let stem = file_stem(self.first);
        let final_path = dir.join(format!("{stem}.log"));
        let swap_path = with_suffix(&final_path, SWAP_SUFFIX);
        let info_path = dir.join(format!("{stem}{SWAP_INFO_EXT}"));
        let [cleaned_log, cleaned_index, cleaned_time] = &self.cleaned_paths;
        self.info_written = true;
        write_atomically(dir, &info_path, &encode_recovery_point(range_end))?;
        fs::rename(cleaned_log, &swap_path)?;
        // Committed (once the rename is durable): from here a crash is completed by open(), never rolled
        // back, so an abort must leave the files alone.
        self.committed = true;
        sync_dir(dir)?;
        let mut paths = Vec::with_capacity(k * 3);
        for seg in &segs[at..at + k] {
            paths.extend(log.rename_to_deleted(seg)?);
        }
        sync_dir(dir)?;
        // The indexes take their final names before the log does: while the `.swap` file exists, open()
        // removes them with the old segments' files and rebuilds them from the log, so no crash point
        // pairs the new log with a stale index.
        fs::rename(cleaned_index, dir.join(format!("{stem}.index")))?;
        fs::rename(cleaned_time, dir.join(format!("{stem}.timeindex")))?;
        fs::rename(&swap_path, &final_path)?;
        sync_dir(dir)?;
        remove_if_exists(&info_path)?;
        // The indexes were written with the data, so this reopen only checks them against the log's tail
        // instead of re-reading (and CRC-checking) the whole segment under the append lock.
        let (seg, report) = Segment::open(
            dir,
            self.first,
            cfg.segment_settings(),
            false,
            inner.clock_ms,
        )?;
        if report.truncated_bytes > 0 || report.rebuilt_indexes {
            // Cannot happen for validated input unless the disk changed it under us; say so loudly.
            tracing::error!(dir = %dir.display(), base = self.first, truncated = report.truncated_bytes, rebuilt_indexes = report.rebuilt_indexes, "cleaned segment failed validation after the swap");
        }
        // Idempotent after the writer's seal; kept so the segment is in the same state as after a roll.
        seg.seal()?;
        seg.release_index_files()?;
        // The append lock is held, so the list still has the old segments at `at`.
        write(&log.segments).splice(at..at + k, [Arc::new(seg)]);
        let due_ms = inner
            .clock_ms
            .saturating_add(cfg.file_delete_delay_ms.max(0));
        inner.pending_deletes.push(PendingDelete { due_ms, paths });
        tracing::info!(dir = %dir.display(), base = self.first, replaced = k, bytes = self.written, "swapped in cleaned segment");
        Ok(())
    }
}

impl Drop for SegmentReplacement<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let dir = &self.log.dir;
            remove_cleaned_files(dir, &self.cleaned_paths);
            if self.info_written {
                let info = dir.join(format!("{}{SWAP_INFO_EXT}", file_stem(self.first)));
                remove_cleaned_files(dir, &[info]);
            }
        }
        lock(&self.log.inner).replacements.remove(&self.first);
    }
}

/// Checks one chunk of the cleaner's output: whole v2 batches with valid CRCs, offsets strictly
/// increasing from `next_allowed` and inside `[first, data_end)`, relative offsets that fit the segment's
/// 32-bit index fields. Returns the smallest offset the next chunk may use.
fn validate_cleaned(
    bytes: &[u8],
    first: i64,
    mut next_allowed: i64,
    data_end: i64,
) -> Result<i64, StorageError> {
    let mut pos = 0usize;
    while pos < bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..])?;
        let end = pos
            .checked_add(h.total_size())
            .filter(|&e| e <= bytes.len())
            .ok_or(BatchError::Truncated)?;
        if crc32c::crc32c(&bytes[pos + 21..end]) != h.crc {
            return Err(BatchError::CorruptMessage.into());
        }
        // `last_offset` wraps for a hostile base offset near i64::MAX: reject that before subtracting.
        if h.last_offset_delta < 0
            || h.last_offset() < h.base_offset
            || h.base_offset < next_allowed
            || h.last_offset() >= data_end
            || h.last_offset().saturating_sub(first) > i64::from(i32::MAX)
        {
            return Err(StorageError::InvalidRecord(format!(
                "cleaned batch [{}, {}] is out of order or outside [{first}, {data_end})",
                h.base_offset,
                h.last_offset()
            )));
        }
        next_allowed = h.last_offset() + 1;
        pos = end;
    }
    Ok(next_allowed)
}
