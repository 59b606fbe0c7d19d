//! Idempotent producer state of one partition, following Kafka's `ProducerStateManager`:
//! per producer id the current epoch and the metadata of its last 5 appended batches, used to
//! detect duplicates (a retried batch is answered with its original offsets) and sequence gaps.
//!
//! Snapshot file layout (big-endian):
//! `magic "KVPS"`, `version u16 = 1`, `crc u32` (CRC-32C over everything after it),
//! `last_offset_included i64`, `producer_count u32`, then per producer:
//! `producer_id i64`, `epoch i16`, `last_offset i64`, `batch_count u8` (<= 5), and per batch
//! `first_seq i32`, `last_seq i32`, `first_offset i64`, `last_offset i64`, `timestamp i64`.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::batch::{increment_sequence, BatchHeader};

/// How many batches per producer are remembered for duplicate detection (Kafka's
/// `NUM_BATCHES_TO_RETAIN`; also the client's maximum in-flight requests with idempotence).
pub const BATCHES_TO_RETAIN: usize = 5;

/// Epoch value meaning "no epoch known yet".
const NO_PRODUCER_EPOCH: i16 = -1;

const SNAPSHOT_MAGIC: [u8; 4] = *b"KVPS";
const SNAPSHOT_VERSION: u16 = 1;
/// magic + version + crc.
const SNAPSHOT_PREFIX_LEN: usize = 4 + 2 + 4;
const SNAPSHOT_BATCH_LEN: usize = 4 + 4 + 8 + 8 + 8;
const SNAPSHOT_PRODUCER_MIN_LEN: usize = 8 + 2 + 8 + 1;
/// Refuse to load absurd snapshot files rather than reading them into memory: a million
/// producers with five batches each take about 200 MB.
const MAX_SNAPSHOT_BYTES: u64 = 512 * 1024 * 1024;

/// Position of one appended batch in the producer's sequence and in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence number of the first record.
    pub first_seq: i32,
    /// Sequence number of the last record.
    pub last_seq: i32,
    /// Offset assigned to the first record.
    pub first_offset: i64,
    /// Offset assigned to the last record.
    pub last_offset: i64,
    /// Max timestamp of the batch (as stored).
    pub timestamp: i64,
}

/// Outcome of [`ProducerStateManager::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// The batch is the next one in sequence (or unchecked): append it.
    Append,
    /// The batch was already appended; answer with these original offsets and write nothing.
    Duplicate(BatchMetadata),
}

/// Errors of producer state checks and snapshot files.
#[derive(Debug, thiserror::Error)]
pub enum ProducerStateError {
    /// The batch's epoch is older than the producer's current one (INVALID_PRODUCER_EPOCH).
    #[error(
        "producer {producer_id}: epoch {epoch} is older than the current epoch {current_epoch}"
    )]
    InvalidProducerEpoch {
        /// Producer id of the batch.
        producer_id: i64,
        /// Epoch of the batch.
        epoch: i16,
        /// Epoch known for the producer.
        current_epoch: i16,
    },
    /// The batch does not follow the producer's last sequence (OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error(
        "producer {producer_id} epoch {epoch}: out of order sequence {first_seq} \
         (last appended {last_seq:?})"
    )]
    OutOfOrderSequence {
        /// Producer id of the batch.
        producer_id: i64,
        /// Epoch of the batch.
        epoch: i16,
        /// First sequence of the batch.
        first_seq: i32,
        /// Last sequence appended for this producer and epoch, if any.
        last_seq: Option<i32>,
    },
    /// The batch follows a batch of the same producer whose write failed (an I/O error such as a
    /// full disk), so the gap in its sequence is ours, not the client's: KAFKA_STORAGE_ERROR, as
    /// Kafka answers every append to a log on a failed disk. Answering OUT_OF_ORDER_SEQUENCE_NUMBER
    /// instead makes librdkafka bump the producer epoch and renumber its unacknowledged records,
    /// which duplicates any of them that were written but whose acknowledgement was lost.
    #[error(
        "producer {producer_id} epoch {epoch}: sequence {first_seq} follows batch {unwritten_seq}, \
         whose write failed; retry that batch first"
    )]
    EarlierBatchNotWritten {
        /// Producer id of the batch.
        producer_id: i64,
        /// Epoch of the batch.
        epoch: i16,
        /// First sequence of the batch.
        first_seq: i32,
        /// First sequence of the batch whose write failed.
        unwritten_seq: i32,
    },
    /// The snapshot file is damaged or not a snapshot.
    #[error("corrupt producer state snapshot: {0}")]
    CorruptSnapshot(String),
    /// Reading or writing the snapshot file failed.
    #[error("producer state snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// Last offset of any batch (data or control) seen from this producer; lets truncation drop
    /// producers whose whole history is gone.
    last_offset: i64,
    /// Oldest first.
    batches: VecDeque<BatchMetadata>,
}

impl ProducerEntry {
    fn new() -> Self {
        ProducerEntry {
            epoch: NO_PRODUCER_EPOCH,
            last_offset: -1,
            batches: VecDeque::with_capacity(BATCHES_TO_RETAIN),
        }
    }

    /// A new epoch starts a new sequence: batches of the old epoch cannot be duplicates anymore.
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
    }

    fn add_batch(&mut self, epoch: i16, meta: BatchMetadata) {
        self.set_epoch(epoch);
        if self.batches.len() >= BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(meta);
        self.last_offset = self.last_offset.max(meta.last_offset);
    }
}

/// Idempotent producer state of one partition (not internally locked: the log owns it under its
/// append lock).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// Producer id -> (epoch, first sequence) of its last batch whose write failed after passing the
    /// checks; cleared by its next appended batch. Not in snapshots: a restart drops every client
    /// connection, and clients retry the oldest unacknowledged batch first.
    unwritten: HashMap<i64, (i16, i32)>,
}

impl ProducerStateManager {
    /// Empty state: no producer known.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks a batch about to be appended (before offsets are assigned). Kafka rules: epoch
    /// older than the producer's current epoch -> [`ProducerStateError::InvalidProducerEpoch`];
    /// same epoch and the batch's (first_seq,last_seq) equals one of the last 5 cached batches ->
    /// Duplicate (caller answers with the original offsets); new epoch -> first_seq must be 0
    /// unless the producer is unknown; unknown producer -> any first_seq accepted (KIP-360);
    /// same epoch -> first_seq must be last_seq+1 (wrapping to 0 after `i32::MAX`) else
    /// [`ProducerStateError::OutOfOrderSequence`].
    ///
    /// Batches without a producer id (`producer_id < 0`) are not checked.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<SequenceCheck, ProducerStateError> {
        if producer_id < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(SequenceCheck::Append);
        };
        // Kafka looks for duplicates before checking the epoch, but only within the same epoch,
        // so the order does not change outcomes.
        if epoch == entry.epoch {
            if let Some(meta) = entry
                .batches
                .iter()
                .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            {
                return Ok(SequenceCheck::Duplicate(*meta));
            }
        }
        if epoch < entry.epoch {
            return Err(ProducerStateError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current_epoch: entry.epoch,
            });
        }
        // A new epoch starts at sequence 0. So does a known epoch with no batch yet (only a
        // transaction marker was seen in it): Kafka compares with NO_SEQUENCE (-1).
        let last_seq = if epoch == entry.epoch {
            entry.batches.back().map(|b| b.last_seq)
        } else {
            None
        };
        let expected = last_seq.map_or(0, |s| increment_sequence(s, 1));
        if first_seq == expected {
            return Ok(SequenceCheck::Append);
        }
        if self.unwritten.get(&producer_id) == Some(&(epoch, expected)) {
            return Err(ProducerStateError::EarlierBatchNotWritten {
                producer_id,
                epoch,
                first_seq,
                unwritten_seq: expected,
            });
        }
        if epoch != entry.epoch && entry.epoch == NO_PRODUCER_EPOCH {
            return Ok(SequenceCheck::Append);
        }
        Err(ProducerStateError::OutOfOrderSequence {
            producer_id,
            epoch,
            first_seq,
            last_seq,
        })
    }

    /// Records an appended batch (keeps the last 5 batches per producer). A new epoch forgets the
    /// batches of the previous one.
    pub fn record(&mut self, producer_id: i64, epoch: i16, meta: BatchMetadata) {
        if producer_id < 0 {
            return;
        }
        self.unwritten.remove(&producer_id);
        self.producers
            .entry(producer_id)
            .or_insert_with(ProducerEntry::new)
            .add_batch(epoch, meta);
    }

    /// Notes that a batch which passed [`check`](Self::check) could not be written, so that the
    /// producer's later batches are refused as waiting for it rather than as out of sequence.
    pub fn record_unwritten(&mut self, producer_id: i64, epoch: i16, first_seq: i32) {
        if producer_id >= 0 {
            self.unwritten.insert(producer_id, (epoch, first_seq));
        }
    }

    /// Rebuild support for recovery: feed headers of stored batches in offset order. No checks
    /// are made (the batches are already in the log); control batches (transaction markers) only
    /// move the producer's epoch, as in Kafka.
    pub fn replay(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(ProducerEntry::new);
        if header.is_control() {
            entry.set_epoch(header.producer_epoch);
            entry.last_offset = entry.last_offset.max(header.last_offset());
        } else {
            entry.add_batch(
                header.producer_epoch,
                BatchMetadata {
                    first_seq: header.base_sequence,
                    last_seq: header.last_sequence(),
                    first_offset: header.base_offset,
                    last_offset: header.last_offset(),
                    timestamp: header.max_timestamp,
                },
            );
        }
    }

    /// Drops state of batches at/after `offset` (after log truncation): removes cached batches
    /// whose last offset is >= `offset`, and producers with nothing left before `offset`.
    ///
    /// This is an approximation (an epoch bump seen only in a truncated control batch is kept
    /// when older batches remain); the exact way is rebuilding from a snapshot plus replay.
    pub fn truncate_from(&mut self, offset: i64) {
        self.producers.retain(|_, entry| {
            entry.batches.retain(|b| b.last_offset < offset);
            if entry.last_offset < offset {
                return true;
            }
            match entry.batches.back() {
                Some(last) => {
                    entry.last_offset = last.last_offset;
                    true
                }
                None => false,
            }
        });
    }

    /// Removes producers whose newest batch timestamp is older than `now_ms - expiration_ms`
    /// (Kafka's `producer.id.expiration.ms`, default 86400000). Producers without batches are
    /// kept. Returns how many were removed.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        let cutoff = now_ms.saturating_sub(expiration_ms);
        self.producers
            .retain(|_, entry| match entry.batches.back() {
                Some(last) => last.timestamp >= cutoff,
                None => true,
            });
        let producers = &self.producers;
        self.unwritten.retain(|id, _| producers.contains_key(id));
        before - self.producers.len()
    }

    /// Number of producers with state.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// Producer id -> offset of its last batch, for every known producer (the compactor keeps the batch
    /// at that offset, even emptied, because it carries the producer's last sequence).
    pub fn last_offsets(&self) -> std::collections::HashMap<i64, i64> {
        self.producers
            .iter()
            .map(|(id, e)| (*id, e.last_offset))
            .collect()
    }

    /// Current epoch and cached batches (oldest first) of a producer, if known.
    pub fn producer(&self, producer_id: i64) -> Option<(i16, Vec<BatchMetadata>)> {
        self.producers
            .get(&producer_id)
            .map(|e| (e.epoch, e.batches.iter().copied().collect()))
    }

    /// Writes a snapshot: versioned, CRC-32C over the content, written to a temp file that is
    /// fsynced and renamed over `path`, then the directory is fsynced so the rename survives a
    /// crash.
    pub fn write_snapshot(
        &self,
        path: &Path,
        last_offset_included: i64,
    ) -> Result<(), ProducerStateError> {
        let bytes = self.encode_snapshot(last_offset_included);
        let tmp = temp_path(path);
        let result = (|| -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                File::open(dir)?.sync_all()?;
            }
            Ok(())
        })();
        if result.is_err() {
            // Best effort: a leftover temp file is harmless but untidy.
            let _ = fs::remove_file(&tmp);
        }
        Ok(result?)
    }

    /// Loads a snapshot written by [`write_snapshot`](Self::write_snapshot), returning the state
    /// and the last offset it includes. A damaged file gives
    /// [`ProducerStateError::CorruptSnapshot`].
    pub fn read_snapshot(path: &Path) -> Result<(ProducerStateManager, i64), ProducerStateError> {
        let len = fs::metadata(path)?.len();
        if len > MAX_SNAPSHOT_BYTES {
            return Err(ProducerStateError::CorruptSnapshot(format!(
                "file of {len} bytes is larger than any snapshot"
            )));
        }
        let bytes = fs::read(path)?;
        Self::decode_snapshot(&bytes)
    }

    fn encode_snapshot(&self, last_offset_included: i64) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&last_offset_included.to_be_bytes());
        body.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        // Sorted so that equal states give identical files.
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let entry = &self.producers[id];
            body.extend_from_slice(&id.to_be_bytes());
            body.extend_from_slice(&entry.epoch.to_be_bytes());
            body.extend_from_slice(&entry.last_offset.to_be_bytes());
            body.push(entry.batches.len() as u8);
            for b in &entry.batches {
                body.extend_from_slice(&b.first_seq.to_be_bytes());
                body.extend_from_slice(&b.last_seq.to_be_bytes());
                body.extend_from_slice(&b.first_offset.to_be_bytes());
                body.extend_from_slice(&b.last_offset.to_be_bytes());
                body.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let mut out = Vec::with_capacity(SNAPSHOT_PREFIX_LEN + body.len());
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn decode_snapshot(bytes: &[u8]) -> Result<(ProducerStateManager, i64), ProducerStateError> {
        let corrupt = |why: &str| ProducerStateError::CorruptSnapshot(why.to_string());
        if bytes.len() < SNAPSHOT_PREFIX_LEN {
            return Err(corrupt("file too short"));
        }
        if bytes[..4] != SNAPSHOT_MAGIC {
            return Err(corrupt("bad magic"));
        }
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        if version != SNAPSHOT_VERSION {
            return Err(ProducerStateError::CorruptSnapshot(format!(
                "unsupported version {version}"
            )));
        }
        let stored_crc = u32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
        let body = &bytes[SNAPSHOT_PREFIX_LEN..];
        if crc32c::crc32c(body) != stored_crc {
            return Err(corrupt("CRC mismatch"));
        }
        let mut r = Reader { buf: body, pos: 0 };
        let last_offset_included = r.i64()?;
        let count = r.u32()? as usize;
        if count > r.remaining() / SNAPSHOT_PRODUCER_MIN_LEN {
            return Err(corrupt("producer count exceeds file size"));
        }
        let mut producers = HashMap::with_capacity(count);
        for _ in 0..count {
            let id = r.i64()?;
            let epoch = r.i16()?;
            let last_offset = r.i64()?;
            let batch_count = r.u8()? as usize;
            if batch_count > BATCHES_TO_RETAIN {
                return Err(corrupt("too many batches for a producer"));
            }
            if batch_count * SNAPSHOT_BATCH_LEN > r.remaining() {
                return Err(corrupt("batch count exceeds file size"));
            }
            let mut batches = VecDeque::with_capacity(BATCHES_TO_RETAIN);
            for _ in 0..batch_count {
                batches.push_back(BatchMetadata {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            let entry = ProducerEntry {
                epoch,
                last_offset,
                batches,
            };
            if producers.insert(id, entry).is_some() {
                return Err(corrupt("duplicate producer id"));
            }
        }
        if r.remaining() != 0 {
            return Err(corrupt("trailing bytes"));
        }
        Ok((
            ProducerStateManager {
                producers,
                unwritten: HashMap::new(),
            },
            last_offset_included,
        ))
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Big-endian reader over a snapshot body; running out of bytes means corruption.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], ProducerStateError> {
        let end = self.pos + N;
        let slice = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| ProducerStateError::CorruptSnapshot("unexpected end of file".into()))?;
        self.pos = end;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ProducerStateError> {
        Ok(self.bytes::<1>()?[0])
    }
    fn i16(&mut self) -> Result<i16, ProducerStateError> {
        Ok(i16::from_be_bytes(self.bytes()?))
    }
    fn i32(&mut self) -> Result<i32, ProducerStateError> {
        Ok(i32::from_be_bytes(self.bytes()?))
    }
    fn u32(&mut self) -> Result<u32, ProducerStateError> {
        Ok(u32::from_be_bytes(self.bytes()?))
    }
    fn i64(&mut self) -> Result<i64, ProducerStateError> {
        Ok(i64::from_be_bytes(self.bytes()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first_seq: i32, last_seq: i32, first_offset: i64) -> BatchMetadata {
        BatchMetadata {
            first_seq,
            last_seq,
            first_offset,
            // Sequence distance modulo the wrap at i32::MAX, as Kafka counts it.
            last_offset: first_offset
                + (i64::from(last_seq) - i64::from(first_seq)).rem_euclid(1 << 31),
            timestamp: 1_000 + first_offset,
        }
    }

    /// A producer (id 1, epoch 0) that appended `n` batches of 2 records each: seqs 0-1, 2-3...
    fn with_batches(n: i32) -> ProducerStateManager {
        let mut m = ProducerStateManager::new();
        for i in 0..n {
            let first = 2 * i;
            assert_eq!(
                m.check(1, 0, first, first + 1).unwrap(),
                SequenceCheck::Append
            );
            m.record(1, 0, meta(first, first + 1, 100 + i64::from(first)));
        }
        m
    }

    fn out_of_order(r: Result<SequenceCheck, ProducerStateError>) -> bool {
        matches!(r, Err(ProducerStateError::OutOfOrderSequence { .. }))
    }

    #[test]
    fn unknown_producer_accepts_any_sequence() {
        let m = ProducerStateManager::new();
        assert_eq!(m.check(5, 0, 0, 3).unwrap(), SequenceCheck::Append);
        assert_eq!(m.check(5, 3, 17, 20).unwrap(), SequenceCheck::Append);
        assert_eq!(m.producer_count(), 0);
    }

    #[test]
    fn non_idempotent_batches_are_not_checked() {
        let mut m = with_batches(1);
        assert_eq!(m.check(-1, -1, -1, -1).unwrap(), SequenceCheck::Append);
        m.record(-1, -1, meta(-1, -1, 9));
        assert_eq!(m.producer_count(), 1);
    }

    #[test]
    fn in_sequence_and_gaps() {
        let m = with_batches(3); // last seq 5
        assert_eq!(m.check(1, 0, 6, 9).unwrap(), SequenceCheck::Append);
        assert!(out_of_order(m.check(1, 0, 7, 9)));
        assert!(out_of_order(m.check(1, 0, 100, 101)));
        // A range overlapping, but not equal to, a cached batch is not a duplicate.
        assert!(out_of_order(m.check(1, 0, 2, 5)));
        assert!(out_of_order(m.check(1, 0, 3, 3)));
        match m.check(1, 0, 8, 8) {
            Err(ProducerStateError::OutOfOrderSequence {
                producer_id,
                epoch,
                first_seq,
                last_seq,
            }) => {
                assert_eq!(
                    (producer_id, epoch, first_seq, last_seq),
                    (1, 0, 8, Some(5))
                );
            }
            other => panic!("{other:?}"),
        }
    }

    fn waits_for_unwritten(r: Result<SequenceCheck, ProducerStateError>, seq: i32) -> bool {
        matches!(r, Err(ProducerStateError::EarlierBatchNotWritten { unwritten_seq, .. }) if unwritten_seq == seq)
    }

    #[test]
    fn batches_after_a_failed_write_wait_for_it() {
        let mut m = with_batches(3); // last seq 5
        m.record_unwritten(1, 0, 6);
        // The failed batch itself may be retried; the batches behind it are told to wait for it.
        assert_eq!(m.check(1, 0, 6, 7).unwrap(), SequenceCheck::Append);
        assert!(waits_for_unwritten(m.check(1, 0, 8, 9), 6));
        m.record(1, 0, meta(6, 7, 106));
        assert_eq!(m.check(1, 0, 8, 9).unwrap(), SequenceCheck::Append);
        assert!(out_of_order(m.check(1, 0, 10, 11)));
    }

    #[test]
    fn a_failed_write_of_another_epoch_or_sequence_changes_nothing() {
        let mut m = with_batches(3); // last seq 5, epoch 0
        m.record_unwritten(1, 0, 2);
        assert!(out_of_order(m.check(1, 0, 8, 9)));
        m.record_unwritten(1, 1, 6);
        assert!(out_of_order(m.check(1, 0, 8, 9)));
        // The first batch of a new epoch failed: later batches of that epoch wait for it.
        m.record_unwritten(1, 1, 0);
        assert!(waits_for_unwritten(m.check(1, 1, 2, 3), 0));
        assert_eq!(m.check(1, 1, 0, 1).unwrap(), SequenceCheck::Append);
    }

    #[test]
    fn each_of_the_last_five_batches_is_a_duplicate() {
        let m = with_batches(7); // batches 0..7; the last five are 2..=6
        for i in 2..7 {
            let first = 2 * i;
            assert_eq!(
                m.check(1, 0, first, first + 1).unwrap(),
                SequenceCheck::Duplicate(meta(first, first + 1, 100 + i64::from(first))),
                "batch {i}"
            );
        }
        // Older batches fell out of the cache: a retry of them is out of order.
        for i in 0..2 {
            assert!(out_of_order(m.check(1, 0, 2 * i, 2 * i + 1)), "batch {i}");
        }
        let (epoch, cached) = m.producer(1).unwrap();
        assert_eq!(epoch, 0);
        assert_eq!(cached.len(), BATCHES_TO_RETAIN);
        assert_eq!(cached[0].first_seq, 4);
    }

    #[test]
    fn duplicate_requires_the_same_epoch() {
        let m = with_batches(2);
        // Same sequence range with a newer epoch: not a duplicate, and a new epoch must start at 0.
        assert!(out_of_order(m.check(1, 1, 2, 3)));
        assert_eq!(m.check(1, 1, 0, 1).unwrap(), SequenceCheck::Append);
    }

    #[test]
    fn epoch_bump_resets_the_sequence() {
        let mut m = with_batches(3);
        assert!(out_of_order(m.check(1, 1, 6, 7)));
        assert_eq!(m.check(1, 1, 0, 0).unwrap(), SequenceCheck::Append);
        m.record(1, 1, meta(0, 0, 500));
        let (epoch, cached) = m.producer(1).unwrap();
        assert_eq!(epoch, 1);
        assert_eq!(cached, vec![meta(0, 0, 500)]);
        // Batches of the old epoch are gone from the duplicate cache.
        assert!(matches!(
            m.check(1, 0, 4, 5),
            Err(ProducerStateError::InvalidProducerEpoch { .. })
        ));
        assert_eq!(m.check(1, 1, 1, 4).unwrap(), SequenceCheck::Append);
        assert_eq!(
            m.check(1, 1, 0, 0).unwrap(),
            SequenceCheck::Duplicate(meta(0, 0, 500))
        );
    }

    #[test]
    fn stale_epoch_is_fenced() {
        let mut m = ProducerStateManager::new();
        m.record(8, 5, meta(0, 0, 0));
        match m.check(8, 4, 1, 1) {
            Err(ProducerStateError::InvalidProducerEpoch {
                producer_id,
                epoch,
                current_epoch,
            }) => assert_eq!((producer_id, epoch, current_epoch), (8, 4, 5)),
            other => panic!("{other:?}"),
        }
        // Even a batch that would look like a duplicate in its old epoch.
        assert!(matches!(
            m.check(8, 4, 0, 0),
            Err(ProducerStateError::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn sequence_wraps_from_max_to_zero() {
        let mut m = ProducerStateManager::new();
        m.record(3, 0, meta(i32::MAX - 4, i32::MAX, 10));
        assert_eq!(m.check(3, 0, 0, 9).unwrap(), SequenceCheck::Append);
        assert!(out_of_order(m.check(3, 0, i32::MIN, i32::MIN + 1)));
        assert!(out_of_order(m.check(3, 0, 1, 1)));
        // A batch straddling the wrap: first seq MAX-1, last seq 1.
        let mut m = ProducerStateManager::new();
        m.record(3, 0, meta(i32::MAX - 3, i32::MAX - 2, 10));
        assert_eq!(
            m.check(3, 0, i32::MAX - 1, 1).unwrap(),
            SequenceCheck::Append
        );
        m.record(
            3,
            0,
            BatchMetadata {
                first_seq: i32::MAX - 1,
                last_seq: 1,
                first_offset: 12,
                last_offset: 15,
                timestamp: 0,
            },
        );
        assert_eq!(m.check(3, 0, 2, 2).unwrap(), SequenceCheck::Append);
        assert!(matches!(
            m.check(3, 0, i32::MAX - 1, 1).unwrap(),
            SequenceCheck::Duplicate(b) if b.first_offset == 12
        ));
    }

    #[test]
    fn epoch_only_entry_needs_sequence_zero() {
        let mut m = ProducerStateManager::new();
        let marker = header(4, 2, -1, 0, 30, true);
        m.replay(&marker);
        assert_eq!(m.producer(4).unwrap(), (2, vec![]));
        assert_eq!(m.check(4, 2, 0, 0).unwrap(), SequenceCheck::Append);
        assert!(out_of_order(m.check(4, 2, 5, 5)));
        assert!(matches!(
            m.check(4, 1, 0, 0),
            Err(ProducerStateError::InvalidProducerEpoch { .. })
        ));
    }

    fn header(
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        last_offset_delta: i32,
        base_offset: i64,
        control: bool,
    ) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: if control { 0x30 } else { 0 },
            last_offset_delta,
            base_timestamp: 5,
            max_timestamp: 9 + base_offset,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            record_count: last_offset_delta + 1,
        }
    }

    #[test]
    fn replay_matches_record() {
        let mut replayed = ProducerStateManager::new();
        let mut recorded = ProducerStateManager::new();
        let mut offset = 0;
        for i in 0..8 {
            let h = header(2, 0, i * 3, 2, offset, false);
            replayed.replay(&h);
            recorded.record(
                2,
                0,
                BatchMetadata {
                    first_seq: i * 3,
                    last_seq: i * 3 + 2,
                    first_offset: offset,
                    last_offset: offset + 2,
                    timestamp: 9 + offset,
                },
            );
            offset += 3;
        }
        // Non-idempotent batches are ignored.
        replayed.replay(&header(-1, -1, -1, 4, offset, false));
        assert_eq!(replayed, recorded);
        assert_eq!(
            replayed.check(2, 0, 21, 23).unwrap(),
            SequenceCheck::Duplicate(BatchMetadata {
                first_seq: 21,
                last_seq: 23,
                first_offset: 21,
                last_offset: 23,
                timestamp: 30,
            })
        );
        // A transaction marker with a bumped epoch clears the cache, keeps the producer.
        replayed.replay(&header(2, 1, -1, 0, 40, true));
        assert_eq!(replayed.producer(2).unwrap(), (1, vec![]));
        // A marker with the same epoch keeps the cached batches.
        replayed.replay(&header(2, 1, 0, 0, 41, false));
        replayed.replay(&header(2, 1, -1, 0, 42, true));
        assert_eq!(replayed.producer(2).unwrap().1.len(), 1);
    }

    #[test]
    fn truncation_drops_later_batches_and_emptied_producers() {
        let mut m = with_batches(4); // offsets 100-101, 102-103, 104-105, 106-107
        m.record(2, 0, meta(0, 0, 104));
        m.record(3, 0, meta(0, 0, 50));
        m.truncate_from(104);
        let (_, cached) = m.producer(1).unwrap();
        assert_eq!(
            cached.iter().map(|b| b.first_offset).collect::<Vec<_>>(),
            vec![100, 102]
        );
        assert!(m.producer(2).is_none());
        assert!(m.producer(3).is_some());
        assert_eq!(m.check(1, 0, 4, 5).unwrap(), SequenceCheck::Append);
        // A batch that straddles the truncation point is dropped too.
        m.truncate_from(101);
        assert!(m.producer(1).is_none());
        assert_eq!(m.producer_count(), 1);
    }

    #[test]
    fn expired_producers_are_removed() {
        let mut m = ProducerStateManager::new();
        m.record(1, 0, meta(0, 0, 0)); // timestamp 1000
        m.record(2, 0, meta(0, 0, 5000)); // timestamp 6000
        m.replay(&header(3, 0, -1, 0, 7000, true)); // no batches: kept
        assert_eq!(m.remove_expired(6500, 1000), 1);
        assert!(m.producer(1).is_none());
        assert_eq!(m.producer_count(), 2);
        assert_eq!(m.remove_expired(i64::MIN, i64::MAX), 0);
    }

    fn sample_state() -> ProducerStateManager {
        let mut m = with_batches(7);
        m.record(-5, 0, meta(0, 0, 1)); // ignored
        m.record(9, 3, meta(i32::MAX, 4, 300));
        m.record(i64::MAX, i16::MAX, meta(0, 0, i64::MAX - 2000));
        m.replay(&header(12, 1, -1, 0, 400, true));
        m
    }

    #[test]
    fn snapshot_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000400.snapshot");
        let m = sample_state();
        m.write_snapshot(&path, 401).unwrap();
        let (loaded, offset) = ProducerStateManager::read_snapshot(&path).unwrap();
        assert_eq!(offset, 401);
        assert_eq!(loaded, m);
        assert_eq!(loaded.producer_count(), 4);
        assert_eq!(
            loaded.check(1, 0, 12, 13).unwrap(),
            SequenceCheck::Duplicate(meta(12, 13, 112))
        );
        // No temp file left behind; rewriting over an existing snapshot works.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
        ProducerStateManager::new()
            .write_snapshot(&path, -1)
            .unwrap();
        let (empty, offset) = ProducerStateManager::read_snapshot(&path).unwrap();
        assert_eq!((empty.producer_count(), offset), (0, -1));
    }

    #[test]
    fn corrupt_snapshots_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.snapshot");
        sample_state().write_snapshot(&path, 7).unwrap();
        let good = std::fs::read(&path).unwrap();
        let bad_path = dir.path().join("bad.snapshot");
        let corrupt = |bytes: &[u8]| {
            matches!(
                ProducerStateManager::decode_snapshot(bytes),
                Err(ProducerStateError::CorruptSnapshot(_))
            )
        };
        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 0x10;
        std::fs::write(&bad_path, &flipped).unwrap();
        assert!(matches!(
            ProducerStateManager::read_snapshot(&bad_path),
            Err(ProducerStateError::CorruptSnapshot(_))
        ));
        // Every single-bit flip anywhere is detected (magic, version, CRC or body).
        for i in 0..good.len() {
            for bit in [0x01u8, 0x80] {
                let mut b = good.clone();
                b[i] ^= bit;
                assert!(corrupt(&b), "flip {bit:#x} at {i}");
            }
        }
        // Every truncation and an appended byte.
        for len in 0..good.len() {
            assert!(corrupt(&good[..len]), "truncated to {len}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(corrupt(&longer));
        assert!(matches!(
            ProducerStateManager::read_snapshot(&dir.path().join("missing")),
            Err(ProducerStateError::Io(_))
        ));
    }

    #[test]
    fn crc_valid_but_lying_counts_are_rejected_without_huge_allocation() {
        let body_with = |count: u32, batches: u8| {
            let mut body = Vec::new();
            body.extend_from_slice(&0i64.to_be_bytes());
            body.extend_from_slice(&count.to_be_bytes());
            body.extend_from_slice(&1i64.to_be_bytes());
            body.extend_from_slice(&0i16.to_be_bytes());
            body.extend_from_slice(&0i64.to_be_bytes());
            body.push(batches);
            let mut out = Vec::new();
            out.extend_from_slice(&SNAPSHOT_MAGIC);
            out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
            out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
            out.extend_from_slice(&body);
            out
        };
        assert!(ProducerStateManager::decode_snapshot(&body_with(1, 0)).is_ok());
        for (count, batches) in [(u32::MAX, 0), (2, 0), (1, 1), (1, 6), (1, 255)] {
            assert!(
                matches!(
                    ProducerStateManager::decode_snapshot(&body_with(count, batches)),
                    Err(ProducerStateError::CorruptSnapshot(_))
                ),
                "count {count} batches {batches}"
            );
        }
        // Same producer id twice.
        let mut m = ProducerStateManager::new();
        m.record(1, 0, meta(0, 0, 0));
        let mut bytes = m.encode_snapshot(0);
        let entry = bytes[SNAPSHOT_PREFIX_LEN + 12..].to_vec();
        bytes.extend_from_slice(&entry);
        bytes[SNAPSHOT_PREFIX_LEN + 8..SNAPSHOT_PREFIX_LEN + 12]
            .copy_from_slice(&2u32.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[SNAPSHOT_PREFIX_LEN..]);
        bytes[6..10].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            ProducerStateManager::decode_snapshot(&bytes),
            Err(ProducerStateError::CorruptSnapshot(m)) if m.contains("duplicate")
        ));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn arbitrary_snapshot_bytes_never_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..300),
                keep_prefix in any::<bool>(),
            ) {
                let mut b = bytes;
                if keep_prefix && b.len() >= SNAPSHOT_PREFIX_LEN {
                    // Valid magic, version and CRC so the body parser is exercised.
                    b[..4].copy_from_slice(&SNAPSHOT_MAGIC);
                    b[4..6].copy_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
                    let crc = crc32c::crc32c(&b[SNAPSHOT_PREFIX_LEN..]);
                    b[6..10].copy_from_slice(&crc.to_be_bytes());
                }
                let _ = ProducerStateManager::decode_snapshot(&b);
            }

            #[test]
            fn any_recorded_state_survives_a_snapshot(
                ops in proptest::collection::vec(
                    (0i64..6, 0i16..3, any::<i32>(), 0i32..10, 0i64..1_000_000),
                    0..60,
                ),
                last in any::<i64>(),
            ) {
                let mut m = ProducerStateManager::new();
                for (pid, epoch, first_seq, len, offset) in ops {
                    let first_seq = first_seq & i32::MAX;
                    m.record(pid, epoch, BatchMetadata {
                        first_seq,
                        last_seq: increment_sequence(first_seq, len),
                        first_offset: offset,
                        last_offset: offset + i64::from(len),
                        timestamp: offset,
                    });
                }
                let (loaded, offset) =
                    ProducerStateManager::decode_snapshot(&m.encode_snapshot(last)).unwrap();
                prop_assert_eq!(offset, last);
                prop_assert_eq!(loaded, m);
            }
        }
    }
}
