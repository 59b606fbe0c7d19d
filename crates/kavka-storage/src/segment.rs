//! One log segment: a `.log` file of whole batches plus its sparse `.index` and `.timeindex`.
//!
//! Concurrency model: only the log's append lock holder mutates a segment; readers use positioned reads
//! bounded by the published size (`size`, stored with Release after the bytes are written), so a reader
//! never observes a half-written batch.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use bytes::{Bytes, BytesMut};

use crate::batch::{record_timestamps, BatchError, BatchHeader, BATCH_HEADER_LEN};
use crate::index::{OffsetIndex, TimeIndex, OFFSET_ENTRY_LEN, TIME_ENTRY_LEN};

/// Byte offset of the CRC-covered part of a batch (attributes onwards).
const CRC_START: u64 = 21;
/// Chunk size for streaming CRC checks during recovery, so a corrupt length cannot force a huge buffer.
const CRC_CHUNK: usize = 64 * 1024;
/// Read size of the recovery scan.
const RECOVERY_CHUNK: usize = 1024 * 1024;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}
pub(crate) fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// Bytes read per syscall when walking batch headers: one read usually covers a whole index interval.
const SCAN_CHUNK: usize = 16 * 1024;

/// Walks the batch headers of a segment from a position, reading the file in chunks so that finding a
/// batch costs one or two reads instead of one per batch.
struct HeaderScanner<'a> {
    log: &'a File,
    pos: u64,
    limit: u64,
    buf: Vec<u8>,
    buf_start: u64,
    buf_len: usize,
}

impl<'a> HeaderScanner<'a> {
    fn new(log: &'a File, pos: u64, limit: u64) -> Self {
        HeaderScanner {
            log,
            pos,
            limit,
            buf: Vec::new(),
            buf_start: 0,
            buf_len: 0,
        }
    }

    /// The next complete, well-formed batch header within the limit, with its position.
    fn next_header(&mut self) -> io::Result<Option<(u64, BatchHeader)>> {
        let header_len = BATCH_HEADER_LEN as u64;
        if self.pos + header_len > self.limit {
            return Ok(None);
        }
        let buffered = self.pos >= self.buf_start
            && self.pos + header_len <= self.buf_start + self.buf_len as u64;
        if !buffered {
            let n = (self.limit - self.pos).min(SCAN_CHUNK as u64) as usize;
            self.buf.resize(n, 0);
            match self.log.read_exact_at(&mut self.buf[..n], self.pos) {
                Ok(()) => {}
                // The file may have been truncated under a reader (log truncation): the end.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(e) => return Err(e),
            }
            self.buf_start = self.pos;
            self.buf_len = n;
        }
        let off = (self.pos - self.buf_start) as usize;
        let Ok(h) = BatchHeader::parse(&self.buf[off..off + BATCH_HEADER_LEN]) else {
            return Ok(None);
        };
        let at = self.pos;
        if at + h.total_size() as u64 > self.limit {
            return Ok(None);
        }
        self.pos += h.total_size() as u64;
        Ok(Some((at, h)))
    }
}

/// File name stem of a segment: the base offset as 20 zero-padded digits, as Kafka names them.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// Sizing parameters a segment needs from the log configuration.
#[derive(Debug, Clone, Copy)]
pub struct SegmentSettings {
    /// Capacity of the offset index in entries.
    pub offset_index_entries: usize,
    /// Capacity of the time index in entries.
    pub time_index_entries: usize,
    /// Bytes of batches between two index entries.
    pub index_interval_bytes: u64,
}

impl SegmentSettings {
    /// Derives entry capacities from `log.index.size.max.bytes`.
    pub fn new(segment_index_bytes: u64, index_interval_bytes: u64) -> SegmentSettings {
        let cap =
            |entry: usize| (segment_index_bytes / entry as u64).clamp(1, u32::MAX as u64) as usize;
        SegmentSettings {
            offset_index_entries: cap(OFFSET_ENTRY_LEN),
            time_index_entries: cap(TIME_ENTRY_LEN),
            index_interval_bytes,
        }
    }
}

/// A record (not batch) found by a timestamp query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundRecord {
    /// Offset of the record.
    pub offset: i64,
    /// Its timestamp.
    pub timestamp: i64,
    /// Partition leader epoch of its batch.
    pub leader_epoch: i32,
}

#[derive(Debug)]
struct SegmentState {
    /// Offset after the last batch (== base offset when empty).
    next_offset: i64,
    /// Largest batch max-timestamp in the segment, -1 when none.
    max_timestamp: i64,
    /// Base offset of the first batch carrying `max_timestamp`.
    offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch; drives time-based rolling as in Kafka.
    first_batch_timestamp: Option<i64>,
    bytes_since_index_entry: u64,
    created_ms: i64,
    last_epoch: Option<i32>,
    settings: SegmentSettings,
}

/// One segment of a partition log.
#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    log: File,
    size: AtomicU64,
    offset_index: RwLock<OffsetIndex>,
    time_index: RwLock<TimeIndex>,
    state: Mutex<SegmentState>,
}

/// Outcome of opening a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenReport {
    /// Bytes cut off the end of the log file because they were not valid batches.
    pub truncated_bytes: u64,
    /// Whether the indexes had to be rebuilt from the log.
    pub rebuilt_indexes: bool,
}

impl Segment {
    fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
        let stem = file_stem(base_offset);
        (
            dir.join(format!("{stem}.log")),
            dir.join(format!("{stem}.index")),
            dir.join(format!("{stem}.timeindex")),
        )
    }

    /// Creates an empty segment, replacing any files of the same name.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        settings: SegmentSettings,
        now_ms: i64,
    ) -> io::Result<Segment> {
        Self::create_with_suffix(dir, base_offset, settings, now_ms, "")
    }

    /// As [`create`](Self::create), with `suffix` appended to all three file names: the compactor builds
    /// its output as `<base>.log.cleaned` (and indexes) next to the live segment of the same base.
    pub(crate) fn create_with_suffix(
        dir: &Path,
        base_offset: i64,
        settings: SegmentSettings,
        now_ms: i64,
        suffix: &str,
    ) -> io::Result<Segment> {
        let (log_path, index_path, time_path) = Self::paths(dir, base_offset);
        let with = |p: PathBuf| {
            let mut s = p.into_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        let (log_path, index_path, time_path) = (with(log_path), with(index_path), with(time_path));
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)?;
        Ok(Segment {
            base_offset,
            log_path,
            log,
            size: AtomicU64::new(0),
            offset_index: RwLock::new(OffsetIndex::create(
                &index_path,
                settings.offset_index_entries,
            )?),
            time_index: RwLock::new(TimeIndex::create(&time_path, settings.time_index_entries)?),
            state: Mutex::new(SegmentState {
                next_offset: base_offset,
                max_timestamp: -1,
                offset_of_max_timestamp: base_offset,
                first_batch_timestamp: None,
                bytes_since_index_entry: 0,
                created_ms: now_ms,
                last_epoch: None,
                settings,
            }),
        })
    }

    /// Opens an existing segment. With `recover`, every batch is validated (header, offsets, CRC-32C) and
    /// the file is truncated at the first invalid one; the indexes are then rebuilt. Without it, the
    /// indexes are loaded and sanity-checked, and only the batches after the last index entry are walked
    /// (headers only); any inconsistency falls back to full recovery.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        settings: SegmentSettings,
        recover: bool,
        now_ms: i64,
    ) -> io::Result<(Segment, OpenReport)> {
        let (log_path, index_path, time_path) = Self::paths(dir, base_offset);
        let log = OpenOptions::new().read(true).write(true).open(&log_path)?;
        let len = log.metadata()?.len();
        let state = SegmentState {
            next_offset: base_offset,
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: None,
            bytes_since_index_entry: 0,
            created_ms: now_ms,
            last_epoch: None,
            settings,
        };
        if !recover {
            let oi = OffsetIndex::load(&index_path, settings.offset_index_entries, len)?;
            let ti = TimeIndex::load(&time_path, settings.time_index_entries, len)?;
            if let (Some(oi), Some(ti)) = (oi, ti) {
                let seg = Segment {
                    base_offset,
                    log_path: log_path.clone(),
                    log,
                    size: AtomicU64::new(len),
                    offset_index: RwLock::new(oi),
                    time_index: RwLock::new(ti),
                    state: Mutex::new(state),
                };
                if seg.load_tail(len)? {
                    return Ok((
                        seg,
                        OpenReport {
                            truncated_bytes: 0,
                            rebuilt_indexes: false,
                        },
                    ));
                }
                tracing::warn!(path = %log_path.display(), "segment inconsistent with its indexes; recovering");
                let report = seg.recover()?;
                return Ok((seg, report));
            }
        }
        let seg = Segment {
            base_offset,
            log_path,
            log,
            size: AtomicU64::new(0),
            offset_index: RwLock::new(OffsetIndex::create(
                &index_path,
                settings.offset_index_entries,
            )?),
            time_index: RwLock::new(TimeIndex::create(&time_path, settings.time_index_entries)?),
            state: Mutex::new(state),
        };
        let report = seg.recover()?;
        Ok((seg, report))
    }

    /// Walks the batches after the last offset-index entry to establish the segment's end, checking that
    /// the indexes agree with the log. Returns false when anything is off (caller recovers).
    fn load_tail(&self, len: u64) -> io::Result<bool> {
        let last_entry = read(&self.offset_index).last();
        let last_time = read(&self.time_index).last();
        let mut st = lock(&self.state);
        if len > 0 {
            match self.read_header(0, len)? {
                Some(h) if h.base_offset >= self.base_offset => {
                    st.first_batch_timestamp = Some(h.max_timestamp)
                }
                _ => return Ok(false),
            }
        }
        let mut pos = 0u64;
        if let Some(e) = last_entry {
            match self.read_header(u64::from(e.position), len)? {
                Some(h) if h.base_offset == self.base_offset + i64::from(e.relative_offset) => {
                    pos = u64::from(e.position);
                }
                _ => return Ok(false),
            }
        }
        if let Some(t) = last_time {
            st.max_timestamp = t.timestamp;
            st.offset_of_max_timestamp = self.base_offset + i64::from(t.relative_offset);
        }
        let mut expected = self.base_offset;
        let mut scanner = HeaderScanner::new(&self.log, pos, len);
        while pos < len {
            let Some((_, h)) = scanner.next_header()? else {
                return Ok(false);
            };
            if h.base_offset < expected
                || h.last_offset_delta < 0
                || !self.offset_fits(h.last_offset())
            {
                return Ok(false);
            }
            if h.max_timestamp > st.max_timestamp {
                st.max_timestamp = h.max_timestamp;
                st.offset_of_max_timestamp = h.base_offset;
            }
            st.last_epoch = Some(h.partition_leader_epoch);
            expected = h.last_offset() + 1;
            pos += h.total_size() as u64;
        }
        st.next_offset = expected.max(self.base_offset);
        if let Some(t) = last_time {
            if self.base_offset + i64::from(t.relative_offset) >= st.next_offset {
                return Ok(false);
            }
        }
        // Kafka's rule: a fresh entry is due once more than an interval's worth of bytes follows the last one.
        st.bytes_since_index_entry = len - last_entry.map_or(0, |e| u64::from(e.position));
        Ok(true)
    }

    /// Full validation pass: rebuilds both indexes and the in-memory state, and truncates the log file at
    /// the first torn or invalid batch.
    fn recover(&self) -> io::Result<OpenReport> {
        let len = self.log.metadata()?.len();
        {
            let mut oi = write(&self.offset_index);
            oi.truncate_from(0)?;
            let mut ti = write(&self.time_index);
            ti.truncate_from(0)?;
        }
        let mut st = lock(&self.state);
        st.next_offset = self.base_offset;
        st.max_timestamp = -1;
        st.offset_of_max_timestamp = self.base_offset;
        st.first_batch_timestamp = None;
        st.bytes_since_index_entry = 0;
        st.last_epoch = None;
        let mut pos = 0u64;
        // Large sequential reads: most batches are checked straight from this buffer.
        let mut buf = vec![0u8; (len.min(RECOVERY_CHUNK as u64)) as usize];
        let (mut buf_start, mut buf_len) = (0u64, 0usize);
        while pos + BATCH_HEADER_LEN as u64 <= len {
            if pos + BATCH_HEADER_LEN as u64 > buf_start + buf_len as u64 {
                let n = (len - pos).min(buf.len() as u64) as usize;
                self.log.read_exact_at(&mut buf[..n], pos)?;
                (buf_start, buf_len) = (pos, n);
            }
            let off = (pos - buf_start) as usize;
            let Ok(h) = BatchHeader::parse(&buf[off..off + BATCH_HEADER_LEN]) else {
                break;
            };
            let end = pos + h.total_size() as u64;
            if end > len
                || h.base_offset < st.next_offset
                || h.last_offset_delta < 0
                || !self.offset_fits(h.last_offset())
            {
                break;
            }
            let crc_ok = if end <= buf_start + buf_len as u64 {
                let from = off + CRC_START as usize;
                crc32c::crc32c(&buf[from..off + h.total_size()]) == h.crc
            } else {
                self.crc_matches(pos, &h)?
            };
            if !crc_ok {
                break;
            }
            self.index_batch(&mut st, &h, pos)?;
            pos = end;
        }
        let truncated = len - pos;
        if truncated > 0 {
            tracing::warn!(
                path = %self.log_path.display(),
                valid_bytes = pos,
                truncated_bytes = truncated,
                "truncating invalid data at the end of the segment"
            );
            self.log.set_len(pos)?;
        }
        self.size.store(pos, Ordering::Release);
        Ok(OpenReport {
            truncated_bytes: truncated,
            rebuilt_indexes: true,
        })
    }

    fn offset_fits(&self, offset: i64) -> bool {
        offset >= self.base_offset && offset - self.base_offset <= i64::from(i32::MAX)
    }

    fn crc_matches(&self, pos: u64, h: &BatchHeader) -> io::Result<bool> {
        let end = pos + h.total_size() as u64;
        let mut at = pos + CRC_START;
        let mut buf = vec![0u8; CRC_CHUNK.min(h.total_size())];
        let mut crc = 0u32;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            self.log.read_exact_at(&mut buf[..n], at)?;
            crc = crc32c::crc32c_append(crc, &buf[..n]);
            at += n as u64;
        }
        Ok(crc == h.crc)
    }

    /// Updates indexes and in-memory state for a batch now present at `pos` (append and recovery share it so
    /// rebuilt indexes equal the ones written live).
    fn index_batch(&self, st: &mut SegmentState, h: &BatchHeader, pos: u64) -> io::Result<()> {
        if h.max_timestamp > st.max_timestamp {
            st.max_timestamp = h.max_timestamp;
            st.offset_of_max_timestamp = h.base_offset;
        }
        if st.first_batch_timestamp.is_none() {
            st.first_batch_timestamp = Some(h.max_timestamp);
        }
        if st.bytes_since_index_entry > st.settings.index_interval_bytes {
            let rel = (h.base_offset - self.base_offset) as u32;
            write(&self.offset_index).append(rel, pos as u32)?;
            let max_rel = (st.offset_of_max_timestamp - self.base_offset) as u32;
            write(&self.time_index).maybe_append(st.max_timestamp, max_rel)?;
            st.bytes_since_index_entry = 0;
        }
        st.bytes_since_index_entry += h.total_size() as u64;
        st.next_offset = h.last_offset() + 1;
        st.last_epoch = Some(h.partition_leader_epoch);
        Ok(())
    }

    /// Reads and parses the batch header at `pos`, or `None` when no complete, well-formed batch lies
    /// within `limit`.
    fn read_header(&self, pos: u64, limit: u64) -> io::Result<Option<BatchHeader>> {
        if pos + BATCH_HEADER_LEN as u64 > limit {
            return Ok(None);
        }
        let mut buf = [0u8; BATCH_HEADER_LEN];
        match self.log.read_exact_at(&mut buf, pos) {
            Ok(()) => {}
            // The file may have been truncated under a reader (log truncation): treat as the end.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        match BatchHeader::parse(&buf) {
            Ok(h) if pos + h.total_size() as u64 <= limit => Ok(Some(h)),
            _ => Ok(None),
        }
    }

    /// Appends one batch whose offsets were already assigned. Must be called under the log's append lock.
    pub fn append(&self, batch: &[u8], header: &BatchHeader) -> io::Result<()> {
        let pos = self.size.load(Ordering::Acquire);
        if let Err(e) = self.log.write_all_at(batch, pos) {
            // Drop whatever part was written so the file keeps ending on a batch boundary.
            let _ = self.log.set_len(pos);
            return Err(e);
        }
        let mut st = lock(&self.state);
        if let Err(e) = self.index_batch(&mut st, header, pos) {
            // An index write can fail too (a full disk). The caller does not publish the batch, so its
            // bytes go as well: the next batch takes the same offsets at the same position, which
            // keeps any index entry written for this one true.
            let _ = self.log.set_len(pos);
            return Err(e);
        }
        self.size.store(pos + batch.len() as u64, Ordering::Release);
        Ok(())
    }

    /// Appends whole batches that the caller already validated (framing, CRC, offsets) with one write,
    /// then indexes them exactly as [`append`](Self::append) does: the compactor's output comes in chunks
    /// of many small batches, and one syscall per batch would dominate its cost. The headers are parsed
    /// again here rather than passed in, so the caller needs no per-batch memory.
    pub(crate) fn append_batches(&self, bytes: &[u8]) -> io::Result<()> {
        let pos = self.size.load(Ordering::Acquire);
        if let Err(e) = self.log.write_all_at(bytes, pos) {
            // Drop whatever part was written so the file keeps ending on a batch boundary.
            let _ = self.log.set_len(pos);
            return Err(e);
        }
        self.size.store(pos + bytes.len() as u64, Ordering::Release);
        let mut st = lock(&self.state);
        let mut at = 0usize;
        while at < bytes.len() {
            // Validated by the caller, so this cannot fail; an error still beats a panic.
            let h = BatchHeader::parse(&bytes[at..]).map_err(io::Error::other)?;
            self.index_batch(&mut st, &h, pos + at as u64)?;
            at += h.total_size();
        }
        Ok(())
    }

    /// Base offset of the segment.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Published size of the log file in bytes.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Bytes on disk including the index files.
    pub fn disk_bytes(&self) -> u64 {
        self.size() + read(&self.offset_index).size_bytes() + read(&self.time_index).size_bytes()
    }

    /// Offset after the last batch.
    pub fn next_offset(&self) -> i64 {
        lock(&self.state).next_offset
    }

    /// Leader epoch of the last batch, if any.
    pub fn last_epoch(&self) -> Option<i32> {
        lock(&self.state).last_epoch
    }

    /// Largest timestamp in the segment (-1 if none) and the base offset of the batch carrying it.
    pub fn max_timestamp(&self) -> (i64, i64) {
        let st = lock(&self.state);
        (st.max_timestamp, st.offset_of_max_timestamp)
    }

    /// Applies new settings (index capacity/interval) to future appends.
    pub fn update_settings(&self, settings: SegmentSettings) {
        lock(&self.state).settings = settings;
        write(&self.offset_index).set_max_entries(settings.offset_index_entries);
        write(&self.time_index).set_max_entries(settings.time_index_entries);
    }

    /// Kafka's roll decision for a batch of `batch_size` bytes with max timestamp `batch_max_ts`
    /// (after LogAppendTime patching) and last offset `last_offset`.
    pub fn should_roll(
        &self,
        segment_bytes: u64,
        segment_ms: i64,
        batch_size: u64,
        batch_max_ts: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        let size = self.size();
        if size == 0 {
            return false;
        }
        // Positions are u32 in the index, so a segment never grows past i32::MAX as in Kafka.
        let cap = segment_bytes.min(i32::MAX as u64);
        if size + batch_size > cap {
            return true;
        }
        if !self.offset_fits(last_offset) {
            return true;
        }
        if read(&self.offset_index).is_full() || read(&self.time_index).is_full() {
            return true;
        }
        let st = lock(&self.state);
        let waited = match st.first_batch_timestamp {
            Some(t) if t >= 0 => batch_max_ts.saturating_sub(t),
            _ => now_ms.saturating_sub(st.created_ms),
        };
        waited > segment_ms
    }

    /// Finds the first batch whose last offset is >= `offset`, within the published size.
    pub fn find_batch(&self, offset: i64) -> io::Result<Option<(u64, BatchHeader)>> {
        let limit = self.size();
        let rel = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let pos = read(&self.offset_index)
            .lookup(rel)
            .map_or(0, |e| u64::from(e.position));
        let mut scanner = HeaderScanner::new(&self.log, pos, limit);
        while let Some((at, h)) = scanner.next_header()? {
            if h.last_offset() >= offset {
                return Ok(Some((at, h)));
            }
        }
        Ok(None)
    }

    /// Reads whole batches starting at `pos` (where batch `first` starts): at most `max_bytes` unless
    /// `min_one_batch` lets the first batch exceed it, and no batch whose base offset is >= `max_offset`.
    pub fn read_batches(
        &self,
        pos: u64,
        first: &BatchHeader,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> io::Result<Bytes> {
        let limit = self.size();
        if first.base_offset >= max_offset || pos >= limit {
            return Ok(Bytes::new());
        }
        let first_size = first.total_size();
        if first_size > max_bytes {
            if !min_one_batch {
                return Ok(Bytes::new());
            }
            let mut buf = vec![0u8; first_size];
            self.log.read_exact_at(&mut buf, pos)?;
            return Ok(Bytes::from(buf));
        }
        let window = (limit - pos).min(max_bytes as u64) as usize;
        let mut buf = BytesMut::zeroed(window);
        self.log.read_exact_at(&mut buf, pos)?;
        // Cut after the last complete batch that is below max_offset.
        let mut cut = 0usize;
        while cut + BATCH_HEADER_LEN <= window {
            let Ok(h) = BatchHeader::parse(&buf[cut..cut + BATCH_HEADER_LEN]) else {
                break;
            };
            if h.base_offset >= max_offset || cut + h.total_size() > window {
                break;
            }
            cut += h.total_size();
        }
        buf.truncate(cut);
        Ok(buf.freeze())
    }

    /// Reads the whole batch at `pos` described by `h`.
    fn read_batch(&self, pos: u64, h: &BatchHeader) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; h.total_size()];
        self.log.read_exact_at(&mut buf, pos)?;
        Ok(buf)
    }

    /// The first record in this segment with timestamp >= `target` and offset >= `min_offset` (the log
    /// start: records below it are logically deleted even while their segment still exists), if any.
    pub fn find_timestamp(
        &self,
        target: i64,
        min_offset: i64,
        max_decompressed: usize,
    ) -> io::Result<Option<FoundRecord>> {
        let limit = self.size();
        let start = read(&self.time_index).lookup(target);
        let by_time = match start {
            Some(t) => read(&self.offset_index)
                .lookup(t.relative_offset)
                .map_or(0, |e| u64::from(e.position)),
            None => 0,
        };
        // Either index may allow skipping ahead; both positions are batch starts at or before the answer.
        let min_rel = (min_offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let by_offset = read(&self.offset_index)
            .lookup(min_rel)
            .map_or(0, |e| u64::from(e.position));
        let pos = by_time.max(by_offset);
        let mut scanner = HeaderScanner::new(&self.log, pos, limit);
        while let Some((at, h)) = scanner.next_header()? {
            if h.max_timestamp >= target && h.last_offset() >= min_offset {
                let bytes = self.read_batch(at, &h)?;
                let found = first_record_matching(&bytes, &h, max_decompressed, |off, ts| {
                    ts >= target && off >= min_offset
                });
                if let Some(mut found) = found {
                    // The undecodable-batch fallback answers with the batch base, which may precede the bound.
                    found.offset = found.offset.max(min_offset);
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// The record carrying the segment's largest timestamp (earliest offset on ties).
    pub fn find_max_timestamp(&self, max_decompressed: usize) -> io::Result<Option<FoundRecord>> {
        let (max_ts, batch_offset) = self.max_timestamp();
        if max_ts < 0 && self.size() == 0 {
            return Ok(None);
        }
        let Some((pos, h)) = self.find_batch(batch_offset)? else {
            return Ok(None);
        };
        let bytes = self.read_batch(pos, &h)?;
        Ok(first_record_matching(
            &bytes,
            &h,
            max_decompressed,
            |_, ts| ts == max_ts,
        ))
    }

    /// Writes the final time index entry Kafka adds when a segment stops being active, so that the
    /// segment's max timestamp survives a clean reopen without a scan.
    pub fn seal(&self) -> io::Result<()> {
        let st = lock(&self.state);
        if st.max_timestamp >= 0 || st.next_offset > self.base_offset {
            let rel = (st.offset_of_max_timestamp - self.base_offset).max(0) as u32;
            write(&self.time_index).maybe_append(st.max_timestamp, rel)?;
        }
        Ok(())
    }

    /// Syncs and closes the index file handles of a segment that stopped being active.
    pub fn release_index_files(&self) -> io::Result<()> {
        write(&self.offset_index).release()?;
        write(&self.time_index).release()
    }

    /// Forces the log and index files to disk.
    pub fn flush(&self) -> io::Result<()> {
        self.log.sync_data()?;
        read(&self.offset_index).flush()?;
        read(&self.time_index).flush()
    }

    /// Truncates the segment so that it ends before the batch containing `offset`; returns the new next
    /// offset (which can be below `offset` when `offset` falls inside a batch).
    pub fn truncate_to(&self, offset: i64) -> io::Result<i64> {
        if let Some((pos, _)) = self.find_batch(offset)? {
            self.size.store(pos, Ordering::Release);
            self.log.set_len(pos)?;
            self.recover()?;
        }
        Ok(self.next_offset())
    }

    /// Paths of the segment's files as it opened or created them: log, offset index, time index.
    pub fn file_paths(&self) -> [PathBuf; 3] {
        [
            self.log_path.clone(),
            read(&self.offset_index).path().to_path_buf(),
            read(&self.time_index).path().to_path_buf(),
        ]
    }

    /// Kafka's `largestTimestamp`: the largest record timestamp, or the log file's modification time when
    /// no batch carries a timestamp (time retention must still be able to expire such a segment).
    pub fn largest_timestamp(&self) -> io::Result<i64> {
        let max_ts = self.max_timestamp().0;
        if max_ts >= 0 {
            return Ok(max_ts);
        }
        let modified = self.log.metadata()?.modified()?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }

    /// Whole batches starting at byte `position` (which must be a batch start), at most `max_bytes` of
    /// them but always at least one batch; empty at or past the end. Used to stream a closed segment to
    /// the cleaner without holding it all in memory.
    pub fn read_raw_batches(&self, position: u64, max_bytes: usize) -> io::Result<Bytes> {
        let limit = self.size();
        match self.read_header(position, limit)? {
            Some(h) => self.read_batches(position, &h, max_bytes, i64::MAX, true),
            None if position >= limit => Ok(Bytes::new()),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "no batch starts at position {position} of {}",
                    self.log_path.display()
                ),
            )),
        }
    }

    /// Removes the segment's files.
    pub fn delete_files(&self) -> io::Result<()> {
        let paths = [
            self.log_path.clone(),
            read(&self.offset_index).path().to_path_buf(),
            read(&self.time_index).path().to_path_buf(),
        ];
        for p in paths {
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The first record of the stored batch `bytes` whose timestamp satisfies `pred`. When the records cannot
/// be decoded (e.g. the decompression bound is hit) it falls back to the batch's base offset and max
/// timestamp: a consumer then starts a little early instead of the query failing.
fn first_record_matching(
    bytes: &[u8],
    h: &BatchHeader,
    max_decompressed: usize,
    pred: impl Fn(i64, i64) -> bool,
) -> Option<FoundRecord> {
    let leader_epoch = h.partition_leader_epoch;
    match record_timestamps(bytes, max_decompressed) {
        Ok(records) => {
            records
                .into_iter()
                .find(|(off, ts)| pred(*off, *ts))
                .map(|(offset, timestamp)| FoundRecord {
                    offset,
                    timestamp,
                    leader_epoch,
                })
        }
        Err(e) => {
            let e: BatchError = e;
            tracing::warn!(error = %e, base_offset = h.base_offset, "cannot decode batch for a timestamp lookup");
            // The last offset stands for "some record of this batch" so an offset bound can still match.
            pred(h.last_offset(), h.max_timestamp).then_some(FoundRecord {
                offset: h.base_offset,
                timestamp: h.max_timestamp,
                leader_epoch,
            })
        }
    }
}

impl Segment {
    /// Calls `f` with the header of every batch whose base offset is >= `from`, in offset order (used to
    /// rebuild producer state).
    pub fn visit_headers(&self, from: i64, mut f: impl FnMut(&BatchHeader)) -> io::Result<()> {
        let limit = self.size();
        let Some((pos, _)) = self.find_batch(from)? else {
            return Ok(());
        };
        let mut scanner = HeaderScanner::new(&self.log, pos, limit);
        while let Some((_, h)) = scanner.next_header()? {
            if h.base_offset >= from {
                f(&h);
            }
        }
        Ok(())
    }
}
