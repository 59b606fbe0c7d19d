//! Sparse per-segment indexes: the offset index (`.index`) and the time index (`.timeindex`).
//!
//! Both are append-only files of fixed-size big-endian entries, mirrored in memory. Readers consult the
//! in-memory copy only, so a truncated or damaged file can never fault a reader (unlike an mmap, which
//! raises SIGBUS when the file shrinks under it). A file that fails validation on load is reported as
//! invalid and the segment rebuilds it from the log; a damaged index is never fatal.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::batch::BATCH_HEADER_LEN;

/// Size of one offset index entry: relative offset u32 + file position u32.
pub const OFFSET_ENTRY_LEN: usize = 8;
/// Size of one time index entry: timestamp i64 + relative offset u32.
pub const TIME_ENTRY_LEN: usize = 12;

/// One offset index entry: the batch starting at `position` in the segment has base offset
/// `segment_base + relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Offset relative to the segment's base offset.
    pub relative_offset: u32,
    /// Byte position of the batch in the segment's log file.
    pub position: u32,
}

/// One time index entry: `timestamp` is the largest timestamp seen in the segment up to and including the
/// batch with base offset `segment_base + relative_offset`, and that batch is the first one to carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    /// Maximum timestamp so far.
    pub timestamp: i64,
    /// Relative base offset of the batch that first reached `timestamp`.
    pub relative_offset: u32,
}

/// Why an index file on disk was rejected.
#[derive(Debug, PartialEq, Eq)]
pub enum IndexDefect {
    /// The file length is not a whole number of entries (torn write).
    PartialEntry,
    /// More entries than the log file could possibly need.
    TooManyEntries,
    /// Entries are not strictly increasing.
    NotMonotonic,
    /// An entry points past the end of the log file.
    PositionBeyondLog,
}

/// Decodes and validates offset index bytes against the size of the segment's log file.
///
/// Every indexed batch is at least a batch header long, which bounds the plausible entry count by the log
/// size, so a garbage file cannot make us hold more than a small multiple of the log's own size.
pub fn decode_offset_entries(bytes: &[u8], log_size: u64) -> Result<Vec<OffsetEntry>, IndexDefect> {
    if !bytes.len().is_multiple_of(OFFSET_ENTRY_LEN) {
        return Err(IndexDefect::PartialEntry);
    }
    let count = bytes.len() / OFFSET_ENTRY_LEN;
    if count as u64 > log_size / BATCH_HEADER_LEN as u64 + 1 {
        return Err(IndexDefect::TooManyEntries);
    }
    let mut out: Vec<OffsetEntry> = Vec::with_capacity(count);
    for chunk in bytes.chunks_exact(OFFSET_ENTRY_LEN) {
        let entry = OffsetEntry {
            relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
            position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
        };
        if u64::from(entry.position) + BATCH_HEADER_LEN as u64 > log_size {
            return Err(IndexDefect::PositionBeyondLog);
        }
        if let Some(prev) = out.last() {
            if entry.relative_offset <= prev.relative_offset || entry.position <= prev.position {
                return Err(IndexDefect::NotMonotonic);
            }
        }
        out.push(entry);
    }
    Ok(out)
}

/// Decodes and validates time index bytes; `log_size` bounds the plausible entry count as for offsets.
pub fn decode_time_entries(bytes: &[u8], log_size: u64) -> Result<Vec<TimeEntry>, IndexDefect> {
    if !bytes.len().is_multiple_of(TIME_ENTRY_LEN) {
        return Err(IndexDefect::PartialEntry);
    }
    let count = bytes.len() / TIME_ENTRY_LEN;
    // +2: the final entry written when a segment becomes inactive may repeat the last batch.
    if count as u64 > log_size / BATCH_HEADER_LEN as u64 + 2 {
        return Err(IndexDefect::TooManyEntries);
    }
    let mut out: Vec<TimeEntry> = Vec::with_capacity(count);
    for c in bytes.chunks_exact(TIME_ENTRY_LEN) {
        let entry = TimeEntry {
            timestamp: i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
            relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
        };
        if let Some(prev) = out.last() {
            if entry.timestamp <= prev.timestamp || entry.relative_offset < prev.relative_offset {
                return Err(IndexDefect::NotMonotonic);
            }
        }
        out.push(entry);
    }
    Ok(out)
}

/// Position of the entry to start a scan from for `relative_target`: the last entry whose relative offset
/// is <= the target, or `None` when the target precedes every entry (scan from the segment start).
pub fn lookup_offset(entries: &[OffsetEntry], relative_target: u32) -> Option<OffsetEntry> {
    let idx = entries.partition_point(|e| e.relative_offset <= relative_target);
    idx.checked_sub(1).map(|i| entries[i])
}

/// The last time entry whose timestamp is strictly below `target`: every record before that entry's batch
/// has a smaller timestamp, so the first record with timestamp >= `target` lies at or after that batch.
pub fn lookup_time(entries: &[TimeEntry], target: i64) -> Option<TimeEntry> {
    let idx = entries.partition_point(|e| e.timestamp < target);
    idx.checked_sub(1).map(|i| entries[i])
}

fn read_whole(file: &File, len: u64) -> io::Result<Vec<u8>> {
    let len = usize::try_from(len).map_err(|_| io::Error::other("index file too large"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

fn open_rw(path: &Path, truncate: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(truncate)
        .open(path)
}

/// An index file handle opened on demand: sealed segments never write their indexes again, so their
/// descriptors are released to keep the broker's open-file count at about one per segment.
#[derive(Debug)]
struct LazyFile {
    path: PathBuf,
    file: Option<File>,
}

impl LazyFile {
    fn get(&mut self) -> io::Result<&File> {
        if self.file.is_none() {
            self.file = Some(open_rw(&self.path, false)?);
        }
        // Just ensured above; expressed without unwrap.
        self.file
            .as_ref()
            .ok_or_else(|| io::Error::other("index file not open"))
    }

    fn sync(&self) -> io::Result<()> {
        // A closed handle has nothing unsynced: handles are only released after a sync.
        match &self.file {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    fn release(&mut self) -> io::Result<()> {
        self.sync()?;
        self.file = None;
        Ok(())
    }
}

/// The sparse offset index of one segment.
#[derive(Debug)]
pub struct OffsetIndex {
    file: LazyFile,
    entries: Vec<OffsetEntry>,
    max_entries: usize,
}

impl OffsetIndex {
    /// Creates (or empties) the index file at `path`.
    pub fn create(path: &Path, max_entries: usize) -> io::Result<OffsetIndex> {
        Ok(OffsetIndex {
            file: LazyFile {
                path: path.to_path_buf(),
                file: Some(open_rw(path, true)?),
            },
            entries: Vec::new(),
            max_entries: max_entries.max(1),
        })
    }

    /// Loads the index file, or returns `Ok(None)` when it is missing or fails validation against the log
    /// size (the caller then rebuilds it).
    pub fn load(path: &Path, max_entries: usize, log_size: u64) -> io::Result<Option<OffsetIndex>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len / OFFSET_ENTRY_LEN as u64 > log_size / BATCH_HEADER_LEN as u64 + 1 {
            tracing::warn!(path = %path.display(), "offset index larger than its log; rebuilding");
            return Ok(None);
        }
        match decode_offset_entries(&read_whole(&file, len)?, log_size) {
            Ok(entries) => Ok(Some(OffsetIndex {
                file: LazyFile {
                    path: path.to_path_buf(),
                    file: None,
                },
                entries,
                max_entries: max_entries.max(1),
            })),
            Err(defect) => {
                tracing::warn!(path = %path.display(), ?defect, "offset index invalid; rebuilding");
                Ok(None)
            }
        }
    }

    /// Appends an entry; entries that would not keep the index strictly increasing are ignored, since an
    /// index is only an accelerator and must never reject a valid append.
    pub fn append(&mut self, relative_offset: u32, position: u32) -> io::Result<()> {
        if let Some(last) = self.entries.last() {
            if relative_offset <= last.relative_offset || position <= last.position {
                return Ok(());
            }
        }
        let mut buf = [0u8; OFFSET_ENTRY_LEN];
        buf[..4].copy_from_slice(&relative_offset.to_be_bytes());
        buf[4..].copy_from_slice(&position.to_be_bytes());
        let at = (self.entries.len() * OFFSET_ENTRY_LEN) as u64;
        self.file.get()?.write_all_at(&buf, at)?;
        self.entries.push(OffsetEntry {
            relative_offset,
            position,
        });
        Ok(())
    }

    /// See [`lookup_offset`].
    pub fn lookup(&self, relative_target: u32) -> Option<OffsetEntry> {
        lookup_offset(&self.entries, relative_target)
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<OffsetEntry> {
        self.entries.last().copied()
    }

    /// Whether the index reached `log.index.size.max.bytes` (the segment must roll).
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Changes the capacity used by [`OffsetIndex::is_full`].
    pub fn set_max_entries(&mut self, max_entries: usize) {
        self.max_entries = max_entries.max(1);
    }

    /// Drops entries at or after `relative_offset`.
    pub fn truncate_from(&mut self, relative_offset: u32) -> io::Result<()> {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
        self.file.get()?.set_len((keep * OFFSET_ENTRY_LEN) as u64)
    }

    /// Forces the index file to disk.
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync()
    }

    /// Syncs and closes the file handle (reopened on the next write).
    pub fn release(&mut self) -> io::Result<()> {
        self.file.release()
    }

    /// Size of the index file in bytes.
    pub fn size_bytes(&self) -> u64 {
        (self.entries.len() * OFFSET_ENTRY_LEN) as u64
    }

    /// The index file's path.
    pub fn path(&self) -> &Path {
        &self.file.path
    }
}

/// The sparse time index of one segment.
#[derive(Debug)]
pub struct TimeIndex {
    file: LazyFile,
    entries: Vec<TimeEntry>,
    max_entries: usize,
}

impl TimeIndex {
    /// Creates (or empties) the index file at `path`.
    pub fn create(path: &Path, max_entries: usize) -> io::Result<TimeIndex> {
        Ok(TimeIndex {
            file: LazyFile {
                path: path.to_path_buf(),
                file: Some(open_rw(path, true)?),
            },
            entries: Vec::new(),
            max_entries: max_entries.max(1),
        })
    }

    /// Loads the index file, or `Ok(None)` when it is missing or invalid.
    pub fn load(path: &Path, max_entries: usize, log_size: u64) -> io::Result<Option<TimeIndex>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len / TIME_ENTRY_LEN as u64 > log_size / BATCH_HEADER_LEN as u64 + 2 {
            tracing::warn!(path = %path.display(), "time index larger than its log; rebuilding");
            return Ok(None);
        }
        match decode_time_entries(&read_whole(&file, len)?, log_size) {
            Ok(entries) => Ok(Some(TimeIndex {
                file: LazyFile {
                    path: path.to_path_buf(),
                    file: None,
                },
                entries,
                max_entries: max_entries.max(1),
            })),
            Err(defect) => {
                tracing::warn!(path = %path.display(), ?defect, "time index invalid; rebuilding");
                Ok(None)
            }
        }
    }

    /// Appends `(timestamp, relative_offset)` if the timestamp is larger than the last entry's (the index
    /// only records increases of the running maximum).
    pub fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) -> io::Result<()> {
        if let Some(last) = self.entries.last() {
            if timestamp <= last.timestamp || relative_offset < last.relative_offset {
                return Ok(());
            }
        }
        let mut buf = [0u8; TIME_ENTRY_LEN];
        buf[..8].copy_from_slice(&timestamp.to_be_bytes());
        buf[8..].copy_from_slice(&relative_offset.to_be_bytes());
        let at = (self.entries.len() * TIME_ENTRY_LEN) as u64;
        self.file.get()?.write_all_at(&buf, at)?;
        self.entries.push(TimeEntry {
            timestamp,
            relative_offset,
        });
        Ok(())
    }

    /// See [`lookup_time`].
    pub fn lookup(&self, target: i64) -> Option<TimeEntry> {
        lookup_time(&self.entries, target)
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<TimeEntry> {
        self.entries.last().copied()
    }

    /// Whether the index reached its capacity (the segment must roll).
    pub fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Changes the capacity used by [`TimeIndex::is_full`].
    pub fn set_max_entries(&mut self, max_entries: usize) {
        self.max_entries = max_entries.max(1);
    }

    /// Drops entries at or after `relative_offset`.
    pub fn truncate_from(&mut self, relative_offset: u32) -> io::Result<()> {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
        self.file.get()?.set_len((keep * TIME_ENTRY_LEN) as u64)
    }

    /// Forces the index file to disk.
    pub fn flush(&self) -> io::Result<()> {
        self.file.sync()
    }

    /// Syncs and closes the file handle (reopened on the next write).
    pub fn release(&mut self) -> io::Result<()> {
        self.file.release()
    }

    /// Size of the index file in bytes.
    pub fn size_bytes(&self) -> u64 {
        (self.entries.len() * TIME_ENTRY_LEN) as u64
    }

    /// The index file's path.
    pub fn path(&self) -> &Path {
        &self.file.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oe(relative_offset: u32, position: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset,
            position,
        }
    }

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let entries = [oe(5, 100), oe(10, 200), oe(20, 400)];
        assert_eq!(lookup_offset(&entries, 0), None);
        assert_eq!(lookup_offset(&entries, 4), None);
        assert_eq!(lookup_offset(&entries, 5), Some(oe(5, 100)));
        assert_eq!(lookup_offset(&entries, 9), Some(oe(5, 100)));
        assert_eq!(lookup_offset(&entries, 10), Some(oe(10, 200)));
        assert_eq!(lookup_offset(&entries, 19), Some(oe(10, 200)));
        assert_eq!(lookup_offset(&entries, u32::MAX), Some(oe(20, 400)));
        assert_eq!(lookup_offset(&[], 7), None);
    }

    #[test]
    fn time_lookup_uses_strictly_smaller_timestamp() {
        let t = |timestamp, relative_offset| TimeEntry {
            timestamp,
            relative_offset,
        };
        let entries = [t(100, 0), t(200, 10), t(300, 20)];
        assert_eq!(lookup_time(&entries, 50), None);
        assert_eq!(lookup_time(&entries, 100), None);
        assert_eq!(lookup_time(&entries, 101), Some(t(100, 0)));
        assert_eq!(lookup_time(&entries, 200), Some(t(100, 0)));
        assert_eq!(lookup_time(&entries, 250), Some(t(200, 10)));
        assert_eq!(lookup_time(&entries, i64::MAX), Some(t(300, 20)));
    }

    #[test]
    fn decode_rejects_damaged_offset_index() {
        let mut bytes = Vec::new();
        for (r, p) in [(1u32, 0u32), (3, 100), (7, 300)] {
            bytes.extend_from_slice(&r.to_be_bytes());
            bytes.extend_from_slice(&p.to_be_bytes());
        }
        assert_eq!(
            decode_offset_entries(&bytes, 1000).unwrap(),
            vec![oe(1, 0), oe(3, 100), oe(7, 300)]
        );
        assert_eq!(
            decode_offset_entries(&bytes[..20], 1000),
            Err(IndexDefect::PartialEntry)
        );
        // The log shrank below the last indexed position.
        assert_eq!(
            decode_offset_entries(&bytes, 300),
            Err(IndexDefect::PositionBeyondLog)
        );
        let mut swapped = bytes.clone();
        swapped[8..16].copy_from_slice(&bytes[16..24]);
        assert_eq!(
            decode_offset_entries(&swapped, 1000),
            Err(IndexDefect::NotMonotonic)
        );
        // Far more entries than a 100-byte log can hold.
        assert_eq!(
            decode_offset_entries(&[0u8; 8 * 64], 100),
            Err(IndexDefect::TooManyEntries)
        );
    }

    #[test]
    fn decode_rejects_damaged_time_index() {
        let mut bytes = Vec::new();
        for (ts, r) in [(10i64, 0u32), (20, 5), (30, 5)] {
            bytes.extend_from_slice(&ts.to_be_bytes());
            bytes.extend_from_slice(&r.to_be_bytes());
        }
        assert_eq!(decode_time_entries(&bytes, 1000).unwrap().len(), 3);
        assert_eq!(
            decode_time_entries(&bytes[..30], 1000),
            Err(IndexDefect::PartialEntry)
        );
        let mut dec = bytes.clone();
        dec[24..32].copy_from_slice(&5i64.to_be_bytes());
        assert_eq!(
            decode_time_entries(&dec, 1000),
            Err(IndexDefect::NotMonotonic)
        );
    }

    #[test]
    fn file_round_trip_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::create(&path, 3).unwrap();
        idx.append(0, 0).unwrap();
        idx.append(4, 500).unwrap();
        // Non-increasing entries are ignored rather than corrupting the index.
        idx.append(4, 600).unwrap();
        idx.append(9, 900).unwrap();
        assert!(idx.is_full());
        let loaded = OffsetIndex::load(&path, 3, 10_000).unwrap().unwrap();
        assert_eq!(loaded.len(), 3);
        assert_eq!(loaded.lookup(5), Some(oe(4, 500)));
        // The log is now shorter than the index claims: reported invalid, not fatal.
        assert!(OffsetIndex::load(&path, 3, 600).unwrap().is_none());
        // A released handle is reopened transparently for the next write.
        idx.release().unwrap();
        idx.truncate_from(4).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
        assert!(OffsetIndex::load(&dir.path().join("missing.index"), 3, 10)
            .unwrap()
            .is_none());

        let tpath = dir.path().join("0.timeindex");
        let mut tidx = TimeIndex::create(&tpath, 10).unwrap();
        tidx.maybe_append(100, 0).unwrap();
        tidx.maybe_append(90, 3).unwrap();
        tidx.release().unwrap();
        tidx.maybe_append(150, 3).unwrap();
        let tl = TimeIndex::load(&tpath, 10, 10_000).unwrap().unwrap();
        assert_eq!(tl.len(), 2);
        assert_eq!(tl.lookup(151).map(|e| e.relative_offset), Some(3));
    }
}
