//! The durable Raft log of the metadata quorum (`<log dir>/__cluster_metadata-0`).
//!
//! On disk a directory holds:
//! - `raft.log`: an append-only sequence of frames `len u32 BE | crc32c(payload) u32 BE | payload`, the
//!   payload being one serde_json-encoded openraft [`Entry`]. A crash can only tear the tail, so recovery
//!   cuts the file at the first frame that is short or fails its checksum.
//! - `meta.json`: the vote, the last committed and the last purged log id, replaced atomically
//!   (tmp + fsync + rename + directory fsync) on every change.
//!
//! The metadata log is small (it is snapshotted and purged by openraft), so every entry that is not purged
//! is also kept decoded in memory: reads never touch the disk. Writes run on tokio's blocking pool so an
//! fsync never stalls a runtime worker.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogReader,
    StorageError, StorageIOError, Vote,
};
use serde::{Deserialize, Serialize};

use super::types::MetadataRaftConfig;

/// The log entry type of the metadata Raft group.
type MetadataEntry = Entry<MetadataRaftConfig>;

/// Name of the append-only frame file inside the store directory.
pub const LOG_FILE_NAME: &str = "raft.log";
/// Name of the vote / committed / last-purged file inside the store directory.
pub const META_FILE_NAME: &str = "meta.json";
/// Suffix of the temporary files that atomic replacements write first.
const TMP_SUFFIX: &str = ".tmp";
/// `len u32 | crc32c u32`.
const FRAME_HEADER_BYTES: usize = 8;
/// The largest frame payload accepted. A metadata entry is a handful of records; a larger length read
/// from disk can only be a torn or corrupt header, and must never become an allocation.
pub const MAX_FRAME_BYTES: usize = 64 << 20;
/// Purged frames are only compacted away once they amount to this much, so that the frequent small
/// purges openraft issues do not each rewrite the file.
const COMPACT_MIN_BYTES: u64 = 1 << 20;
/// Chunk size when copying the live tail of the log into a compacted file.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// Failures of the metadata Raft store (log store and state machine).
#[derive(Debug, thiserror::Error)]
pub enum RaftStoreError {
    /// A file system operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A file holds data that this code never writes (checksummed frame that does not decode, a
    /// malformed meta or snapshot file, log indexes out of order).
    #[error("corrupt {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// A value could not be serialized.
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// An entry would not extend the log: its index is not above the last stored or purged one.
    #[error("log entry {index} does not extend the log (last index {last})")]
    OutOfOrder { index: u64, last: u64 },
    /// An entry is too large for a frame; recovery would treat it as corruption.
    #[error("log entry {index} encodes to {len} bytes, above the {max}-byte frame limit")]
    FrameTooLarge { index: u64, len: usize, max: usize },
    /// A snapshot's metadata disagrees with its content.
    #[error("snapshot mismatch: {0}")]
    SnapshotMismatch(String),
    /// A thread panicked while holding the store's lock; the in-memory state can no longer be trusted.
    #[error("the store's lock is poisoned by an earlier panic")]
    Poisoned,
    /// The blocking task that performs the I/O did not complete.
    #[error("storage task failed: {0}")]
    Task(String),
}

impl RaftStoreError {
    /// Wraps this error for openraft, which shuts the Raft node down on any storage error.
    pub fn into_storage(self, subject: ErrorSubject<u64>, verb: ErrorVerb) -> StorageError<u64> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }
}

/// Returns a closure that tags an [`io::Error`] with the operation and the path.
fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RaftStoreError + 'a {
    move |source| RaftStoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Flushes a directory so that a create, rename or unlink inside it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), RaftStoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Replaces `dir/name` with `bytes` so that a crash leaves either the old or the new content, never a mix:
/// write a temporary file, fsync it, rename it over the target, fsync the directory.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), RaftStoreError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    {
        let mut file = File::create(&tmp).map_err(io_err("create", &tmp))?;
        file.write_all(bytes).map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("fsync", &tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_err("rename into place", &path))?;
    sync_dir(dir)
}

/// Removes the leftover of an atomic replacement interrupted by a crash: the target still holds the
/// previous content, so the temporary file is garbage.
pub(crate) fn remove_stale_tmp(dir: &Path, name: &str) -> Result<(), RaftStoreError> {
    let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
    match fs::remove_file(&tmp) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", &tmp)(e)),
    }
}

/// Reads a whole file, or `None` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, RaftStoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// Runs blocking file work on tokio's blocking pool.
pub(crate) async fn run_blocking<T, F>(f: F) -> Result<T, RaftStoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, RaftStoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RaftStoreError::Task(e.to_string()))?
}

/// The small durable state next to the log: the content of `meta.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct LogMeta {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    last_purged: Option<LogId<u64>>,
}

/// What readers see: the decoded entries not yet purged and the meta state.
#[derive(Debug, Default)]
struct LogIndex {
    entries: BTreeMap<u64, MetadataEntry>,
    meta: LogMeta,
}

/// The writer's side: the frame file and where each live entry's frame starts. Only ever locked from the
/// blocking pool, by one operation at a time (openraft serializes storage writes through `&mut self`).
#[derive(Debug)]
struct LogFile {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Bytes of valid frames; new frames go here.
    len: u64,
    /// Log index → offset of its frame, for entries above `last_purged` only. Frames of purged entries
    /// sit before all of these until a compaction drops them.
    positions: BTreeMap<u64, u64>,
    /// See [`COMPACT_MIN_BYTES`]; lowered by tests.
    compact_min_bytes: u64,
}

impl LogFile {
    /// Offset of the first frame still needed: everything before it belongs to purged entries.
    fn live_start(&self) -> u64 {
        self.positions
            .first_key_value()
            .map_or(self.len, |(_, pos)| *pos)
    }
}

/// Encodes one entry as a frame.
fn encode_frame(entry: &MetadataEntry, out: &mut Vec<u8>) -> Result<(), RaftStoreError> {
    let payload = serde_json::to_vec(entry).map_err(|source| RaftStoreError::Encode {
        what: "log entry",
        source,
    })?;
    let index = entry.log_id.index;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|len| *len as usize <= MAX_FRAME_BYTES)
        .ok_or(RaftStoreError::FrameTooLarge {
            index,
            len: payload.len(),
            max: MAX_FRAME_BYTES,
        })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// Reads as many bytes as available up to `buf.len()`, returning the count (short only at end of file).
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The result of scanning the frame file.
struct Scan {
    /// Live entries with their frame offsets.
    entries: Vec<(u64, MetadataEntry)>,
    /// End of the last valid frame.
    valid_len: u64,
    /// Why scanning stopped before the end of the file, if it did.
    torn: Option<String>,
}

/// Reads every frame, keeping entries above `last_purged`. Stops at the first frame that is short, claims
/// an impossible length or fails its checksum: that is where a crash tore an append.
fn scan_frames(path: &Path, file: &File, last_purged: Option<u64>) -> Result<Scan, RaftStoreError> {
    let file_len = file.metadata().map_err(io_err("stat", path))?.len();
    let mut reader = io::BufReader::new(file);
    let mut scan = Scan {
        entries: Vec::new(),
        valid_len: 0,
        torn: None,
    };
    let mut last_live: Option<u64> = None;
    loop {
        let pos = scan.valid_len;
        let mut header = [0u8; FRAME_HEADER_BYTES];
        let got = read_full(&mut reader, &mut header).map_err(io_err("read", path))?;
        if got == 0 {
            break;
        }
        if got < FRAME_HEADER_BYTES {
            scan.torn = Some(format!("short frame header at offset {pos}"));
            break;
        }
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let remaining = file_len.saturating_sub(pos + FRAME_HEADER_BYTES as u64);
        if len > MAX_FRAME_BYTES || len as u64 > remaining {
            scan.torn = Some(format!(
                "frame at offset {pos} claims {len} bytes, {remaining} remain"
            ));
            break;
        }
        let mut payload = vec![0u8; len];
        let got = read_full(&mut reader, &mut payload).map_err(io_err("read", path))?;
        if got < len {
            scan.torn = Some(format!("short frame payload at offset {pos}"));
            break;
        }
        if crc32c::crc32c(&payload) != crc {
            scan.torn = Some(format!("checksum mismatch in frame at offset {pos}"));
            break;
        }
        // A frame with a good checksum that does not decode was written by incompatible code, not torn
        // by a crash: cutting it would silently drop committed entries, so refuse to start instead.
        let entry: MetadataEntry =
            serde_json::from_slice(&payload).map_err(|e| RaftStoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("frame at offset {pos} does not decode: {e}"),
            })?;
        scan.valid_len = pos + (FRAME_HEADER_BYTES + len) as u64;
        let index = entry.log_id.index;
        if last_purged.is_some_and(|purged| index <= purged) {
            continue;
        }
        if let Some(last) = last_live.filter(|last| index <= *last) {
            return Err(RaftStoreError::Corrupt {
                path: path.to_path_buf(),
                reason: format!("entry {index} at offset {pos} follows entry {last}"),
            });
        }
        last_live = Some(index);
        scan.entries.push((pos, entry));
    }
    Ok(scan)
}

/// The durable log of the metadata Raft group. Hand it to `openraft::Raft::new` as the log store.
///
/// Not `Clone` on purpose: writes must come from one owner, in order. Concurrent readers get a
/// [`RaftLogStoreReader`].
pub struct RaftLogStore {
    index: Arc<RwLock<LogIndex>>,
    file: Arc<Mutex<LogFile>>,
}

/// A read-only handle on the entries of a [`RaftLogStore`], used by openraft's replication tasks.
#[derive(Clone)]
pub struct RaftLogStoreReader {
    index: Arc<RwLock<LogIndex>>,
}

fn read_index(index: &RwLock<LogIndex>) -> Result<RwLockReadGuard<'_, LogIndex>, RaftStoreError> {
    index.read().map_err(|_| RaftStoreError::Poisoned)
}

fn write_index(index: &RwLock<LogIndex>) -> Result<RwLockWriteGuard<'_, LogIndex>, RaftStoreError> {
    index.write().map_err(|_| RaftStoreError::Poisoned)
}

fn lock_file(file: &Mutex<LogFile>) -> Result<MutexGuard<'_, LogFile>, RaftStoreError> {
    file.lock().map_err(|_| RaftStoreError::Poisoned)
}

/// Entries of `range`, cloned. Written without `BTreeMap::range` on the raw bounds because that panics on
/// an inverted range, which a caller could pass.
fn entries_in<RB: RangeBounds<u64>>(
    entries: &BTreeMap<u64, MetadataEntry>,
    range: &RB,
) -> Vec<MetadataEntry> {
    let start = match range.start_bound() {
        Bound::Included(s) => *s,
        Bound::Excluded(s) => match s.checked_add(1) {
            Some(s) => s,
            None => return Vec::new(),
        },
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => e.checked_add(1),
        Bound::Excluded(e) => Some(*e),
        Bound::Unbounded => None,
    };
    match end {
        Some(end) if start >= end => Vec::new(),
        Some(end) => entries.range(start..end).map(|(_, e)| e.clone()).collect(),
        None => entries.range(start..).map(|(_, e)| e.clone()).collect(),
    }
}

impl RaftLogStore {
    /// Opens (creating if missing) the store in `dir`, recovering from a crash: a torn last frame is cut
    /// off with a warning, entries up to the persisted last-purged id are skipped.
    pub fn open(dir: &Path) -> Result<RaftLogStore, RaftStoreError> {
        fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        remove_stale_tmp(dir, META_FILE_NAME)?;
        remove_stale_tmp(dir, LOG_FILE_NAME)?;

        let meta_path = dir.join(META_FILE_NAME);
        let meta = match read_optional(&meta_path)? {
            Some(bytes) => {
                serde_json::from_slice::<LogMeta>(&bytes).map_err(|e| RaftStoreError::Corrupt {
                    path: meta_path.clone(),
                    reason: e.to_string(),
                })?
            }
            None => LogMeta::default(),
        };

        let path = dir.join(LOG_FILE_NAME);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open", &path))?;
        if !existed {
            sync_dir(dir)?;
        }

        let scan = scan_frames(&path, &file, meta.last_purged.map(|l| l.index))?;
        if let Some(reason) = &scan.torn {
            tracing::warn!(
                path = %path.display(),
                valid_len = scan.valid_len,
                "metadata log ends with a torn frame ({reason}); truncating it"
            );
            file.set_len(scan.valid_len)
                .map_err(io_err("truncate", &path))?;
            file.sync_all().map_err(io_err("fsync", &path))?;
        }

        let mut positions = BTreeMap::new();
        let mut entries = BTreeMap::new();
        for (pos, entry) in scan.entries {
            positions.insert(entry.log_id.index, pos);
            entries.insert(entry.log_id.index, entry);
        }
        Ok(RaftLogStore {
            index: Arc::new(RwLock::new(LogIndex { entries, meta })),
            file: Arc::new(Mutex::new(LogFile {
                dir: dir.to_path_buf(),
                path,
                file,
                len: scan.valid_len,
                positions,
                compact_min_bytes: COMPACT_MIN_BYTES,
            })),
        })
    }

    /// A read-only handle sharing this store's entries.
    pub fn reader(&self) -> RaftLogStoreReader {
        RaftLogStoreReader {
            index: self.index.clone(),
        }
    }

    /// Replaces the meta file with `update` applied to the current meta, then publishes it to readers.
    async fn update_meta(
        &self,
        update: impl FnOnce(&mut LogMeta) + Send + 'static,
    ) -> Result<(), RaftStoreError> {
        let index = self.index.clone();
        let file = self.file.clone();
        run_blocking(move || {
            // The file lock keeps meta writes ordered with log writes.
            let file = lock_file(&file)?;
            let mut meta = read_index(&index)?.meta.clone();
            update(&mut meta);
            let bytes = serde_json::to_vec(&meta).map_err(|source| RaftStoreError::Encode {
                what: "log meta",
                source,
            })?;
            write_atomically(&file.dir, META_FILE_NAME, &bytes)?;
            write_index(&index)?.meta = meta;
            Ok(())
        })
        .await
    }

    async fn append_entries(&self, entries: Vec<MetadataEntry>) -> Result<(), RaftStoreError> {
        let index = self.index.clone();
        let file = self.file.clone();
        run_blocking(move || {
            let mut log = lock_file(&file)?;
            // Only the last stored entry bounds an append, not the purge floor: openraft never appends
            // at or below `last_purged`, but its conformance suite does, and expects to read the entry.
            let mut last = read_index(&index)?
                .entries
                .last_key_value()
                .map(|(i, _)| *i);
            let mut buf = Vec::new();
            let mut positions = Vec::with_capacity(entries.len());
            for entry in &entries {
                let i = entry.log_id.index;
                // Overwriting needs a truncate first; accepting it here would leave two frames for one
                // index and recovery would refuse the file.
                if let Some(l) = last.filter(|l| i <= *l) {
                    return Err(RaftStoreError::OutOfOrder { index: i, last: l });
                }
                last = Some(i);
                positions.push((i, log.len + buf.len() as u64));
                encode_frame(entry, &mut buf)?;
            }
            if buf.is_empty() {
                return Ok(());
            }
            let written = log
                .file
                .write_all_at(&buf, log.len)
                .and_then(|()| log.file.sync_data());
            if let Err(e) = written {
                // Best effort: drop a partial write so the next append does not land behind garbage.
                // Recovery would cut it anyway.
                let _ = log.file.set_len(log.len);
                return Err(io_err("append to", &log.path)(e));
            }
            log.len += buf.len() as u64;
            log.positions.extend(positions);
            let mut idx = write_index(&index)?;
            for entry in entries {
                idx.entries.insert(entry.log_id.index, entry);
            }
            Ok(())
        })
        .await
    }

    async fn truncate_since(&self, since: u64) -> Result<(), RaftStoreError> {
        let index = self.index.clone();
        let file = self.file.clone();
        run_blocking(move || {
            let mut log = lock_file(&file)?;
            let Some(pos) = log.positions.range(since..).next().map(|(_, p)| *p) else {
                return Ok(());
            };
            log.file
                .set_len(pos)
                .map_err(io_err("truncate", &log.path))?;
            log.file.sync_all().map_err(io_err("fsync", &log.path))?;
            log.len = pos;
            log.positions.split_off(&since);
            write_index(&index)?.entries.split_off(&since);
            Ok(())
        })
        .await
    }

    async fn purge_upto(&self, upto: LogId<u64>) -> Result<(), RaftStoreError> {
        let index = self.index.clone();
        let file = self.file.clone();
        run_blocking(move || {
            let mut log = lock_file(&file)?;
            let mut meta = read_index(&index)?.meta.clone();
            if meta.last_purged.is_some_and(|p| p.index >= upto.index) {
                return Ok(());
            }
            // Persist the new floor before forgetting entries: after a crash in between, recovery skips
            // them again instead of resurrecting a log that disagrees with the snapshot.
            meta.last_purged = Some(upto);
            let bytes = serde_json::to_vec(&meta).map_err(|source| RaftStoreError::Encode {
                what: "log meta",
                source,
            })?;
            write_atomically(&log.dir, META_FILE_NAME, &bytes)?;
            {
                let mut idx = write_index(&index)?;
                idx.meta = meta;
                match upto.index.checked_add(1) {
                    Some(keep) => {
                        idx.entries = idx.entries.split_off(&keep);
                        log.positions = log.positions.split_off(&keep);
                    }
                    None => {
                        idx.entries.clear();
                        log.positions.clear();
                    }
                }
            }
            maybe_compact(&mut log)
        })
        .await
    }
}

/// Rewrites the frame file without the purged frames once they make up most of it, so that the file does
/// not grow forever. The new file is built beside the old one and renamed over it: a crash leaves one or
/// the other, both consistent with the already persisted last-purged id.
fn maybe_compact(log: &mut LogFile) -> Result<(), RaftStoreError> {
    let dead = log.live_start();
    if dead < log.compact_min_bytes.max(1) || dead * 2 <= log.len {
        return Ok(());
    }
    let tmp = log.dir.join(format!("{LOG_FILE_NAME}{TMP_SUFFIX}"));
    let new_file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    let mut chunk = vec![0u8; COPY_CHUNK_BYTES];
    let mut from = dead;
    while from < log.len {
        let n = (log.len - from).min(COPY_CHUNK_BYTES as u64) as usize;
        log.file
            .read_exact_at(&mut chunk[..n], from)
            .map_err(io_err("read", &log.path))?;
        new_file
            .write_all_at(&chunk[..n], from - dead)
            .map_err(io_err("write", &tmp))?;
        from += n as u64;
    }
    new_file.sync_all().map_err(io_err("fsync", &tmp))?;
    fs::rename(&tmp, &log.path).map_err(io_err("rename into place", &log.path))?;
    // Switch to the new file before the directory fsync: once renamed, the old file is unlinked and
    // anything appended to it would be lost, even if that fsync fails.
    log.file = new_file;
    log.len -= dead;
    for pos in log.positions.values_mut() {
        *pos -= dead;
    }
    sync_dir(&log.dir)?;
    tracing::debug!(
        path = %log.path.display(),
        dropped_bytes = dead,
        "compacted the metadata log"
    );
    Ok(())
}

impl RaftLogReader<MetadataRaftConfig> for RaftLogStoreReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<MetadataEntry>, StorageError<u64>> {
        let idx = read_index(&self.index)
            .map_err(|e| e.into_storage(ErrorSubject::Logs, ErrorVerb::Read))?;
        Ok(entries_in(&idx.entries, &range))
    }
}

impl RaftLogReader<MetadataRaftConfig> for RaftLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<MetadataEntry>, StorageError<u64>> {
        self.reader().try_get_log_entries(range).await
    }
}

impl RaftLogStorage<MetadataRaftConfig> for RaftLogStore {
    type LogReader = RaftLogStoreReader;

    async fn get_log_state(&mut self) -> Result<LogState<MetadataRaftConfig>, StorageError<u64>> {
        let idx = read_index(&self.index)
            .map_err(|e| e.into_storage(ErrorSubject::Logs, ErrorVerb::Read))?;
        let last_purged_log_id = idx.meta.last_purged;
        let last_log_id = idx
            .entries
            .last_key_value()
            .map(|(_, e)| e.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let vote = *vote;
        self.update_meta(move |meta| meta.vote = Some(vote))
            .await
            .map_err(|e| e.into_storage(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        let idx = read_index(&self.index)
            .map_err(|e| e.into_storage(ErrorSubject::Vote, ErrorVerb::Read))?;
        Ok(idx.meta.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.update_meta(move |meta| meta.committed = committed)
            .await
            .map_err(|e| e.into_storage(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        let idx = read_index(&self.index)
            .map_err(|e| e.into_storage(ErrorSubject::Store, ErrorVerb::Read))?;
        Ok(idx.meta.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<MetadataRaftConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = MetadataEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<MetadataEntry> = entries.into_iter().collect();
        match self.append_entries(entries).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(e.into_storage(ErrorSubject::Logs, ErrorVerb::Write))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.truncate_since(log_id.index)
            .await
            .map_err(|e| e.into_storage(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.purge_upto(log_id)
            .await
            .map_err(|e| e.into_storage(ErrorSubject::Log(log_id), ErrorVerb::Delete))
    }
}

#[cfg(test)]
mod tests {
    use openraft::testing::{blank_ent, log_id};

    use super::*;

    fn entries_of(store: &RaftLogStore) -> Vec<u64> {
        read_index(&store.index)
            .expect("index")
            .entries
            .keys()
            .copied()
            .collect()
    }

    #[tokio::test]
    async fn compaction_drops_purged_frames_and_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = RaftLogStore::open(dir.path()).expect("open");
        store
            .append_entries((0..20).map(|i| blank_ent(1, 1, i)).collect())
            .await
            .expect("append");
        let full_len = lock_file(&store.file).expect("file").len;
        lock_file(&store.file).expect("file").compact_min_bytes = 1;

        // Purging a minority of the frames leaves the file alone.
        store.purge(log_id(1, 1, 4)).await.expect("purge");
        assert_eq!(lock_file(&store.file).expect("file").len, full_len);

        // Purging most of them rewrites it with the live frames only.
        store.purge(log_id(1, 1, 14)).await.expect("purge");
        let compacted_len = lock_file(&store.file).expect("file").len;
        assert!(
            compacted_len < full_len / 2,
            "{compacted_len} vs {full_len}"
        );
        assert_eq!(
            fs::metadata(dir.path().join(LOG_FILE_NAME))
                .expect("stat")
                .len(),
            compacted_len
        );
        assert_eq!(entries_of(&store), (15..20).collect::<Vec<_>>());

        // Appends after a compaction land in the new file at the right positions.
        store
            .append_entries(vec![blank_ent(1, 1, 20)])
            .await
            .expect("append");
        drop(store);

        let mut store = RaftLogStore::open(dir.path()).expect("reopen");
        assert_eq!(entries_of(&store), (15..=20).collect::<Vec<_>>());
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 14)));
        assert_eq!(state.last_log_id, Some(log_id(1, 1, 20)));
        // Positions recovered from the compacted file are usable for a truncate.
        store.truncate(log_id(1, 1, 18)).await.expect("truncate");
        drop(store);
        let store = RaftLogStore::open(dir.path()).expect("reopen");
        assert_eq!(entries_of(&store), vec![15, 16, 17]);
    }

    #[tokio::test]
    async fn append_refuses_to_overwrite_without_truncate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RaftLogStore::open(dir.path()).expect("open");
        store
            .append_entries((0..3).map(|i| blank_ent(1, 1, i)).collect())
            .await
            .expect("append");
        let err = store
            .append_entries(vec![blank_ent(2, 1, 2)])
            .await
            .expect_err("overwrite");
        assert!(matches!(
            err,
            RaftStoreError::OutOfOrder { index: 2, last: 2 }
        ));
        assert_eq!(entries_of(&store), vec![0, 1, 2]);
    }

    #[test]
    fn inverted_or_extreme_ranges_read_nothing_instead_of_panicking() {
        let mut entries = BTreeMap::new();
        for i in 0..5 {
            entries.insert(i, blank_ent::<MetadataRaftConfig>(1, 1, i));
        }
        // Built at run time: the inverted literal `4..2` is what the helper guards against.
        let (from, to) = (4, 2);
        assert!(entries_in(&entries, &(from..to)).is_empty());
        assert!(entries_in(&entries, &(3..3)).is_empty());
        assert!(entries_in(&entries, &(u64::MAX..)).is_empty());
        assert_eq!(entries_in(&entries, &(1..=u64::MAX)).len(), 4);
        assert_eq!(entries_in(&entries, &(..2)).len(), 2);
    }

    #[test]
    fn oversized_frame_length_is_treated_as_torn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(LOG_FILE_NAME);
        let mut bytes = Vec::new();
        encode_frame(&blank_ent(1, 1, 0), &mut bytes).expect("encode");
        let good = bytes.len() as u64;
        // A header claiming 4 GiB must not be allocated.
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        fs::write(&path, &bytes).expect("write");
        let store = RaftLogStore::open(dir.path()).expect("open");
        assert_eq!(entries_of(&store), vec![0]);
        assert_eq!(fs::metadata(&path).expect("stat").len(), good);
    }

    #[test]
    fn checksummed_garbage_refuses_to_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let payload = b"not an entry";
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
        bytes.extend_from_slice(payload);
        fs::write(dir.path().join(LOG_FILE_NAME), &bytes).expect("write");
        assert!(matches!(
            RaftLogStore::open(dir.path()),
            Err(RaftStoreError::Corrupt { .. })
        ));
    }
}
