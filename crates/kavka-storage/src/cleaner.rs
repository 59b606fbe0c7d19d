//! The record-level half of Kafka's log cleaner (log compaction, `cleanup.policy=compact`):
//! pure functions over raw v2 record batches. File handling (which segments, grouping, swapping the
//! cleaned segment in, checkpoints) is the caller's.
//!
//! A cleaning round for one partition, as Kafka's `Cleaner.doClean`:
//! 1. [`OffsetMap::clear`], then [`OffsetMap::add_segment`] for each segment of the dirty range
//!    `[first_dirty_offset, first_uncleanable_offset)` in order, stopping early when it reports
//!    [`MapFill::Full`]. The round cleans up to `map.latest_offset() + 1` (the next first dirty offset).
//! 2. [`BatchCleaner::clean`] (or [`clean_batches`]) on every segment from the log start up to that
//!    end offset, writing the output into replacement segments.
//! 3. The caller swaps the replacement segments in.
//!
//! Rules (Kafka 4's `Cleaner.shouldRetainRecord` and `MemoryRecords.filterTo`):
//! - a record past the map's latest offset is kept, keyless or not (this round did not cover it);
//! - a keyless record is dropped (it cannot be compacted);
//! - a keyed record is kept iff its offset >= the map's offset for its key (absent keys are kept);
//! - a kept tombstone (null value) is dropped once the batch's delete horizon (KIP-534) has passed;
//!   a batch that keeps tombstones and has no horizon yet gets one (`now + delete.retention.ms`,
//!   stored in the base timestamp with attributes bit 6);
//! - a batch left without records is removed, unless it holds the last offset of an active
//!   idempotent producer or is the last batch before the round's upper bound (then its header is kept
//!   with zero records, as Kafka's `writeEmptyHeader`).
//!
//! Transactions: Kavka has no transaction index yet, so the cleaner cannot tell committed from aborted
//! data. Control batches and transactional data batches are therefore copied unchanged, and
//! transactional records are not entered into the offset map (an aborted value must never hide an
//! older committed one). This is conservative: it keeps more than Kafka would, never less.
//!
//! Batch bytes are handled directly rather than through `kafka-protocol`'s codec: its decoder has
//! no decompression bound (TRAPS.md) and re-encoding would merge duplicate header keys. Kept records
//! are copied byte for byte; only a newly set delete horizon rewrites the timestamp deltas.
//! Differences from Kafka's bytes that readers cannot observe: a rewritten batch keeps its base
//! timestamp (Kafka uses the first kept record's) and unknown attribute bits; recompression uses the
//! codecs' default levels (gzip 6, zstd 3 as Kafka; LZ4 fast mode, where Kafka's default level 9 is
//! LZ4-HC). Decompression is implemented here, bounded, with reused buffers and zstd contexts: the
//! batch module's decoder is private and allocates per call.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::time::{Duration, Instant};

use siphasher::sip128::SipHasher24;

use crate::batch::{
    decompress_into, validate_stored_batch, BatchError, BatchHeader, Compression,
    ATTRIBUTES_OFFSET, BATCH_HEADER_LEN, CONTROL_BIT, CRC_OFFSET, MAX_TIMESTAMP_OFFSET,
    TIMESTAMP_TYPE_BIT, TRANSACTIONAL_BIT, XERIAL_MAGIC,
};

/// Bytes each offset map slot takes: a 128-bit key hash and an 8-byte offset (as Kafka's MD5-based
/// `SkimpyOffsetMap`).
pub const OFFSET_MAP_BYTES_PER_ENTRY: usize = 24;
/// Kafka's default `log.cleaner.dedupe.buffer.size` (shared by all cleaner threads).
pub const DEFAULT_DEDUPE_BUFFER_BYTES: usize = 128 * 1024 * 1024;
/// Kafka's default `log.cleaner.io.buffer.load.factor`.
pub const DEFAULT_LOAD_FACTOR: f64 = 0.9;
/// Kafka's default `delete.retention.ms` (one day).
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;
/// Default bound on one batch's decompressed records when the caller has no topic-specific value.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 64 * 1024 * 1024;

/// Attribute bit 6: the base timestamp holds the delete horizon (KIP-534).
const DELETE_HORIZON_BIT: i16 = 0x40;
const BATCH_LENGTH_OFFSET: usize = 8;
const BASE_TIMESTAMP_OFFSET: usize = 27;
const RECORD_COUNT_OFFSET: usize = 57;
/// `batchLength` counts everything after baseOffset and the length field itself.
const LENGTH_FIELD_END: usize = 12;
/// Kafka's `RecordBatch.NO_TIMESTAMP`.
const NO_TIMESTAMP: i64 = -1;
/// Uncompressed bytes per xerial snappy block; snappy-java's default block size, which Kafka uses.
const XERIAL_BLOCK: usize = 32 * 1024;

/// Errors of the cleaner. Input errors carry the byte position of the offending batch in the
/// buffer handed in, so the caller can name the segment file position.
#[derive(Debug, thiserror::Error)]
pub enum CleanerError {
    /// A batch header, CRC, length or compressed payload is bad (see [`BatchError`]).
    #[error("record batch at byte {position}: {source}")]
    Batch {
        /// Position of the batch in the input buffer.
        position: usize,
        /// What is wrong with it.
        #[source]
        source: BatchError,
    },
    /// The records inside a batch do not parse (framing, varints, counts, offsets).
    #[error("record batch at byte {position}: invalid record: {reason}")]
    InvalidRecord {
        /// Position of the batch in the input buffer.
        position: usize,
        /// What is wrong.
        reason: String,
    },
    /// The dedupe buffer cannot hold even one entry at the given load factor.
    #[error("offset map of {memory_bytes} bytes at load factor {load_factor} holds no entry; increase log.cleaner.dedupe.buffer.size or decrease log.cleaner.threads")]
    MapTooSmall {
        /// The memory budget given.
        memory_bytes: usize,
        /// The load factor given.
        load_factor: f64,
    },
    /// The load factor is not in (0, 1].
    #[error("invalid log.cleaner.io.buffer.load.factor {0}: must be in (0, 1]")]
    InvalidLoadFactor(f64),
    /// The offset map's memory could not be allocated.
    #[error("cannot allocate {0} bytes for the offset map")]
    Allocation(usize),
    /// Recompressing a cleaned batch failed, or the cleaned batch would not fit a batch's i32 length.
    #[error("cannot write cleaned batch: {0}")]
    Output(String),
}

fn batch_err(position: usize) -> impl Fn(BatchError) -> CleanerError {
    move |source| CleanerError::Batch { position, source }
}

// ---------------------------------------------------------------------------------------------
// Offset map
// ---------------------------------------------------------------------------------------------

/// One slot: the key's 128-bit hash (all zero = empty) and its latest offset.
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Slot {
    h0: u64,
    h1: u64,
    offset: i64,
}

/// Outcome of [`OffsetMap::add_segment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapFill {
    /// The whole segment (up to the given end offset) is in the map; go on with the next segment.
    Complete,
    /// The map reached its load limit; it covers offsets up to [`OffsetMap::latest_offset`] only.
    /// Stop adding segments: this round cleans up to there.
    Full,
}

/// Key -> latest offset for the dirty section of a log, in a fixed memory budget (Kafka's
/// `SkimpyOffsetMap`).
///
/// Keys are not stored, only a 128-bit keyed hash of them (SipHash-2-4-128 with a random key drawn
/// per map and renewed by [`clear`](Self::clear)). Two distinct keys that hash alike would make the
/// older one's records look superseded, so the hash must not collide: 128 bits make an accidental
/// collision among even 2^32 keys about 2^-65 likely, and the secret random key stops a producer from
/// crafting colliding keys on purpose (which Kafka's unkeyed MD5 does not). Open addressing with
/// linear probing keeps the table one flat allocation of `memory / 24` slots; it accepts new keys
/// until `slots * load_factor` are used.
pub struct OffsetMap {
    slots: Vec<Slot>,
    max_entries: usize,
    entries: usize,
    latest_offset: i64,
    hasher_keys: (u64, u64),
    memory_bytes: usize,
    /// Decompression state for add_segment; outside the memory budget, like Kafka's I/O buffers.
    codecs: Decompressor,
}

impl std::fmt::Debug for OffsetMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash key is a secret; leave it out of logs.
        f.debug_struct("OffsetMap")
            .field("slots", &self.slots.len())
            .field("max_entries", &self.max_entries)
            .field("entries", &self.entries)
            .field("latest_offset", &self.latest_offset)
            .finish()
    }
}

fn random_hasher_keys() -> (u64, u64) {
    // RandomState is seeded from the OS's randomness; hashing two constants through one instance
    // yields two unpredictable 64-bit values without another dependency.
    let state = RandomState::new();
    (
        state.hash_one(0x006b_6176_6b61_u64),
        state.hash_one(0x0063_6c65_616e_6572_u64),
    )
}

impl OffsetMap {
    /// Creates a map using at most `memory_bytes` for its table (`log.cleaner.dedupe.buffer.size`
    /// divided among the cleaner threads) that accepts keys up to `load_factor` of its slots
    /// (`log.cleaner.io.buffer.load.factor`, 0.9 by default). The table is allocated (zeroed) now.
    pub fn new(memory_bytes: usize, load_factor: f64) -> Result<OffsetMap, CleanerError> {
        if !(load_factor > 0.0 && load_factor <= 1.0) {
            return Err(CleanerError::InvalidLoadFactor(load_factor));
        }
        let slot_count = memory_bytes / OFFSET_MAP_BYTES_PER_ENTRY;
        let max_entries = ((slot_count as f64) * load_factor) as usize;
        // At least one slot must stay empty so that a probe for an absent key always ends.
        let max_entries = max_entries.min(slot_count.saturating_sub(1));
        if max_entries == 0 {
            return Err(CleanerError::MapTooSmall {
                memory_bytes,
                load_factor,
            });
        }
        let mut slots = Vec::new();
        slots
            .try_reserve_exact(slot_count)
            .map_err(|_| CleanerError::Allocation(memory_bytes))?;
        slots.resize(slot_count, Slot::default());
        Ok(OffsetMap {
            slots,
            max_entries,
            entries: 0,
            latest_offset: -1,
            hasher_keys: random_hasher_keys(),
            memory_bytes,
            codecs: Decompressor::default(),
        })
    }

    /// Number of slots in the table.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// How many distinct keys the map accepts (slots times the load factor).
    pub fn capacity(&self) -> usize {
        self.max_entries
    }

    /// Number of distinct keys (hashes) in the map.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether no key is in the map.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The memory budget the map was created with.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// Fraction of the slots in use (Kafka's `max-buffer-utilization-percent` metric).
    pub fn utilization(&self) -> f64 {
        self.entries as f64 / self.slots.len() as f64
    }

    /// The last offset the map covers: every keyed record at or below it (from the start offset
    /// given to [`add_segment`](Self::add_segment)) is in the map. -1 when nothing was added.
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }

    /// Sets the last covered offset (Kafka's `updateLatestOffset`); for callers that feed the map
    /// themselves through [`put`](Self::put).
    pub fn update_latest_offset(&mut self, offset: i64) {
        self.latest_offset = offset;
    }

    /// Empties the map for the next round and draws a new hash key.
    pub fn clear(&mut self) {
        if self.entries > 0 {
            self.slots.fill(Slot::default());
        }
        self.entries = 0;
        self.latest_offset = -1;
        self.hasher_keys = random_hasher_keys();
    }

    fn hash(&self, key: &[u8]) -> (u64, u64) {
        let h = SipHasher24::new_with_keys(self.hasher_keys.0, self.hasher_keys.1).hash(key);
        // All-zero marks an empty slot; the one hash value that maps onto it becomes (1, 0), which
        // only merges it with another key hashing to exactly (1, 0): a 2^-128 event.
        if h.h1 == 0 && h.h2 == 0 {
            (1, 0)
        } else {
            (h.h1, h.h2)
        }
    }

    /// Index of the slot holding `hash`, or of the empty slot where it would go.
    fn find(&self, hash: (u64, u64)) -> usize {
        let n = self.slots.len();
        // Multiply-shift maps the hash onto 0..n without a division.
        let mut i = ((u128::from(hash.0) * n as u128) >> 64) as usize;
        loop {
            let slot = &self.slots[i];
            if (slot.h0 == hash.0 && slot.h1 == hash.1) || (slot.h0 == 0 && slot.h1 == 0) {
                return i;
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
    }

    /// The latest offset recorded for `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let slot = &self.slots[self.find(self.hash(key))];
        if slot.h0 == 0 && slot.h1 == 0 {
            None
        } else {
            Some(slot.offset)
        }
    }

    /// Records `offset` as the latest for `key` and makes it the latest covered offset. Returns
    /// false, changing nothing, when the key is new and the map is at its load limit (an existing key
    /// is always updated).
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = self.hash(key);
        let i = self.find(hash);
        let slot = &mut self.slots[i];
        if slot.h0 == 0 && slot.h1 == 0 {
            if self.entries >= self.max_entries {
                return false;
            }
            slot.h0 = hash.0;
            slot.h1 = hash.1;
            self.entries += 1;
        }
        slot.offset = offset;
        self.latest_offset = offset;
        true
    }

    /// Adds the keyed records of one segment's batches (`segment` = the segment's bytes, whole
    /// batches) with offsets in `[start_offset, end_offset)`: `start_offset` is the first dirty
    /// offset, `end_offset` the next segment's base offset, or the first uncleanable offset for the
    /// last dirty segment.
    ///
    /// On [`MapFill::Complete`] the latest offset becomes `end_offset - 1` (so offset gaps at the
    /// end of a segment count as covered, as Kafka). On [`MapFill::Full`] it is the offset just
    /// before the first record that did not fit. Control and transactional batches add nothing
    /// (see the module documentation). Batches are CRC-checked; each batch's records are
    /// decompressed up to `max_decompressed_bytes`.
    pub fn add_segment(
        &mut self,
        segment: &[u8],
        start_offset: i64,
        end_offset: i64,
        max_decompressed_bytes: usize,
    ) -> Result<MapFill, CleanerError> {
        let mut codecs = std::mem::take(&mut self.codecs);
        let result = self.add_segment_inner(
            segment,
            start_offset,
            end_offset,
            max_decompressed_bytes,
            &mut codecs,
        );
        self.codecs = codecs;
        result
    }

    fn add_segment_inner(
        &mut self,
        segment: &[u8],
        start_offset: i64,
        end_offset: i64,
        max_decompressed_bytes: usize,
        codecs: &mut Decompressor,
    ) -> Result<MapFill, CleanerError> {
        let mut pos = 0;
        while pos < segment.len() {
            let header = validate_stored_batch(&segment[pos..]).map_err(batch_err(pos))?;
            let total = header.total_size();
            if header.base_offset >= end_offset {
                break;
            }
            let last_offset = header.last_offset();
            if last_offset >= start_offset && !header.is_control() && !header.is_transactional() {
                let batch = &segment[pos..pos + total];
                let records = batch_records(batch, &header, max_decompressed_bytes, codecs)
                    .map_err(batch_err(pos))?;
                let mut full_at = None;
                walk(records, &header, pos, |r| {
                    let offset = header.base_offset.wrapping_add(i64::from(r.offset_delta));
                    if let Some(key) = r.key {
                        if offset >= start_offset && offset < end_offset && !self.put(key, offset) {
                            full_at = Some(offset);
                            return Ok(false);
                        }
                    }
                    Ok(true)
                })?;
                if let Some(offset) = full_at {
                    self.latest_offset = offset.saturating_sub(1);
                    return Ok(MapFill::Full);
                }
            }
            if last_offset >= start_offset {
                self.latest_offset = last_offset.min(end_offset.saturating_sub(1));
            }
            pos += total;
        }
        self.latest_offset = end_offset.saturating_sub(1);
        Ok(MapFill::Complete)
    }
}

// ---------------------------------------------------------------------------------------------
// Record parsing (the batch module keeps its parser private; this one also reports key/value spans)
// ---------------------------------------------------------------------------------------------

/// Where one record sits in a batch's (decompressed) records and what the cleaner needs of it.
struct RecordView<'a> {
    /// Position of the record's length varint.
    start: usize,
    /// One past the record's last byte.
    end: usize,
    /// Position of the record's attributes byte (after the length varint).
    body_start: usize,
    /// Position just after the timestamp delta (where the offset delta starts).
    after_timestamp: usize,
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    has_value: bool,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn raw_varint(&mut self, max_bytes: usize) -> Result<u64, String> {
        let mut value = 0u64;
        for i in 0..max_bytes {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| "premature end of records".to_string())?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("varint is too long".into())
    }

    fn varint(&mut self) -> Result<i32, String> {
        let raw = self.raw_varint(5)?;
        let raw = u32::try_from(raw).map_err(|_| "varint out of range".to_string())?;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    fn varlong(&mut self) -> Result<i64, String> {
        let raw = self.raw_varint(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn bytes(&mut self, len: usize) -> Result<&'a [u8], String> {
        if len > self.buf.len() - self.pos {
            return Err("premature end of records".into());
        }
        let start = self.pos;
        self.pos += len;
        Ok(&self.buf[start..self.pos])
    }

    /// A length-prefixed field: `None` for length -1 when `nullable`.
    fn sized(&mut self, nullable: bool, what: &str) -> Result<Option<&'a [u8]>, String> {
        let len = self.varint()?;
        if len >= 0 {
            self.bytes(len as usize).map(Some)
        } else if len == -1 && nullable {
            Ok(None)
        } else {
            Err(format!("invalid {what} length {len}"))
        }
    }
}

/// Walks exactly `header.record_count` records that must exactly fill `records`, with offset deltas
/// strictly increasing within `0..=last_offset_delta`. `visit` returns false to stop early.
fn walk<'a>(
    records: &'a [u8],
    header: &BatchHeader,
    position: usize,
    mut visit: impl FnMut(&RecordView<'a>) -> Result<bool, CleanerError>,
) -> Result<(), CleanerError> {
    let invalid = |reason: String| CleanerError::InvalidRecord { position, reason };
    if header.record_count < 0 {
        return Err(invalid(format!(
            "negative record count {}",
            header.record_count
        )));
    }
    let mut r = Reader {
        buf: records,
        pos: 0,
    };
    let mut previous_delta: i64 = -1;
    // Every record takes at least one byte, so this loop is bounded by the data, not the count.
    for _ in 0..header.record_count {
        let start = r.pos;
        let len = r.varint().map_err(invalid)?;
        if len < 0 {
            return Err(invalid(format!("invalid record size {len}")));
        }
        let body = r.bytes(len as usize).map_err(invalid)?;
        let body_start = r.pos - body.len();
        let mut b = Reader { buf: body, pos: 0 };
        b.bytes(1).map_err(invalid)?; // attributes: unused in v2
        let timestamp_delta = b.varlong().map_err(invalid)?;
        let after_timestamp = body_start + b.pos;
        let offset_delta = b.varint().map_err(invalid)?;
        let key = b.sized(true, "key").map_err(invalid)?;
        let has_value = b.sized(true, "value").map_err(invalid)?.is_some();
        let headers = b.varint().map_err(invalid)?;
        if headers < 0 {
            return Err(invalid(format!("invalid header count {headers}")));
        }
        for _ in 0..headers {
            b.sized(false, "header key").map_err(invalid)?;
            b.sized(true, "header value").map_err(invalid)?;
        }
        if b.pos != body.len() {
            return Err(invalid(format!(
                "record declares {} bytes but its fields take {}",
                body.len(),
                b.pos
            )));
        }
        if i64::from(offset_delta) <= previous_delta || offset_delta > header.last_offset_delta {
            return Err(invalid(format!(
                "offset delta {offset_delta} out of order or beyond the last offset delta {}",
                header.last_offset_delta
            )));
        }
        previous_delta = i64::from(offset_delta);
        let view = RecordView {
            start,
            end: r.pos,
            body_start,
            after_timestamp,
            timestamp_delta,
            offset_delta,
            key,
            has_value,
        };
        if !visit(&view)? {
            return Ok(());
        }
    }
    if r.pos != records.len() {
        return Err(invalid("bytes remaining after the last record".into()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Compression
// ---------------------------------------------------------------------------------------------

/// Reusable decompression state: creating a zstd context per batch costs more than
/// decompressing a typical 16 KiB batch.
#[derive(Default)]
struct Decompressor {
    /// Decompressed records of the current batch (bounded by the caller's limit).
    buf: Vec<u8>,
    zstd: Option<zstd::zstd_safe::DCtx<'static>>,
}

/// Reusable compression state (see [`Decompressor`]).
#[derive(Default)]
struct Compressor {
    zstd: Option<zstd::bulk::Compressor<'static>>,
    /// Output of the zstd compressor before it is appended to the batch.
    buf: Vec<u8>,
}

/// The records of `batch`: the payload itself, or decompressed into `dec.buf` (bounded by
/// `limit`).
fn batch_records<'a>(
    batch: &'a [u8],
    header: &BatchHeader,
    limit: usize,
    dec: &'a mut Decompressor,
) -> Result<&'a [u8], BatchError> {
    let payload = &batch[BATCH_HEADER_LEN..];
    let codec = header.compression()?;
    if codec == Compression::None {
        return Ok(payload);
    }
    dec.buf.clear();
    decompress_into(codec, payload, limit, &mut dec.buf, &mut dec.zstd)?;
    Ok(&dec.buf)
}

/// Appends `records` compressed with `codec` to `out`, in the framing Kafka's clients read.
fn compress_into(
    codec: Compression,
    records: &[u8],
    out: &mut Vec<u8>,
    comp: &mut Compressor,
) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    match codec {
        Compression::None => out.extend_from_slice(records),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
            encoder.write_all(records).map_err(io)?;
            encoder.finish().map_err(io)?;
        }
        Compression::Lz4 => {
            // Kafka's LZ4 is the standard frame with independent 64 KiB blocks (TRAPS.md).
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
            encoder.write_all(records).map_err(io)?;
            encoder.finish().map_err(|e| e.to_string())?;
        }
        Compression::Zstd => {
            // Level 3 is zstd's and Kafka's default (`compression.zstd.level`).
            let encoder = match &mut comp.zstd {
                Some(encoder) => encoder,
                empty => empty.insert(zstd::bulk::Compressor::new(3).map_err(io)?),
            };
            // The bulk API writes from the start of its buffer, hence the separate one.
            comp.buf.clear();
            comp.buf
                .reserve(zstd::zstd_safe::compress_bound(records.len()));
            encoder
                .compress_to_buffer(records, &mut comp.buf)
                .map_err(io)?;
            out.extend_from_slice(&comp.buf);
        }
        Compression::Snappy => {
            // xerial framing as snappy-java (the Java producer and broker) writes it: magic,
            // version 1, compatible version 1, then length-prefixed blocks.
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut encoder = snap::raw::Encoder::new();
            for chunk in records.chunks(XERIAL_BLOCK) {
                let len_at = out.len();
                out.extend_from_slice(&[0; 4]);
                let start = out.len();
                out.resize(start + snap::raw::max_compress_len(chunk.len()), 0);
                let written = encoder
                    .compress(chunk, &mut out[start..])
                    .map_err(|e| e.to_string())?;
                out.truncate(start + written);
                out[len_at..start].copy_from_slice(&(written as i32).to_be_bytes());
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cleaning
// ---------------------------------------------------------------------------------------------

/// Inputs of a cleaning pass besides the offset map.
#[derive(Debug, Clone)]
pub struct CleanOptions {
    /// The time the cleaning round started (Kafka passes one `currentTime` per round).
    pub now_ms: i64,
    /// The topic's `delete.retention.ms`: how long tombstones stay after their batch is first
    /// cleaned.
    pub delete_retention_ms: i64,
    /// Bound on one batch's decompressed records; a batch beyond it fails the pass with
    /// [`BatchError::DecompressionLimit`].
    pub max_decompressed_bytes: usize,
    /// The round's first uncleanable offset: a batch ending just before it is kept even when empty,
    /// so that the log's last offset before the uncleanable part is not lost (Kafka's
    /// `upperBoundOffsetOfCleaningRound`). `None` disables this.
    pub upper_bound_offset: Option<i64>,
    /// Producer id -> offset of the last data record of each active idempotent producer (from the
    /// producer state). The batch holding that offset is kept, even empty, because it carries the
    /// producer's last sequence number.
    pub active_producer_last_offsets: HashMap<i64, i64>,
}

impl CleanOptions {
    /// Options with Kafka's defaults for everything but the clock.
    pub fn new(now_ms: i64) -> CleanOptions {
        CleanOptions {
            now_ms,
            delete_retention_ms: DEFAULT_DELETE_RETENTION_MS,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            upper_bound_offset: None,
            active_producer_last_offsets: HashMap::new(),
        }
    }
}

/// What a cleaning pass did (counts for metrics and the offsets/timestamps the replacement
/// segment's indexes need).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanSummary {
    /// Batches in the input.
    pub batches_read: u64,
    /// Batches written (unchanged, rewritten or kept empty).
    pub batches_retained: u64,
    /// Batches written with zero records (producer state or upper bound kept them).
    pub empty_batches_retained: u64,
    /// Records in the input.
    pub records_read: u64,
    /// Records written.
    pub records_retained: u64,
    /// Records dropped (superseded, keyless, or expired tombstones).
    pub records_removed: u64,
    /// Of the dropped records, those without a key.
    pub keyless_removed: u64,
    /// Of the dropped records, tombstones whose delete horizon had passed.
    pub tombstones_removed: u64,
    /// Input bytes.
    pub bytes_read: u64,
    /// Output bytes.
    pub bytes_written: u64,
    /// Largest batch max timestamp in the output, -1 when there is none.
    pub max_timestamp: i64,
    /// Last offset of the output batch holding `max_timestamp` (Kafka's shallow offset of the max
    /// timestamp), -1 when there is none.
    pub offset_of_max_timestamp: i64,
    /// Last offset of the last output batch, -1 when the output is empty.
    pub last_offset: i64,
    /// Earliest delete horizon of an output batch that still holds tombstones: cleaning again at or
    /// after this time removes them.
    pub earliest_delete_horizon: Option<i64>,
}

impl Default for CleanSummary {
    fn default() -> Self {
        CleanSummary {
            batches_read: 0,
            batches_retained: 0,
            empty_batches_retained: 0,
            records_read: 0,
            records_retained: 0,
            records_removed: 0,
            keyless_removed: 0,
            tombstones_removed: 0,
            bytes_read: 0,
            bytes_written: 0,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            last_offset: -1,
            earliest_delete_horizon: None,
        }
    }
}

impl CleanSummary {
    fn batch_written(&mut self, max_timestamp: i64, last_offset: i64) {
        self.batches_retained += 1;
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        self.last_offset = self.last_offset.max(last_offset);
    }

    fn horizon(&mut self, horizon: i64) {
        self.earliest_delete_horizon = Some(match self.earliest_delete_horizon {
            Some(h) => h.min(horizon),
            None => horizon,
        });
    }
}

/// Result of [`clean_batches`].
#[derive(Debug, Clone)]
pub struct CleanedOutput {
    /// The cleaned batches, each with a valid CRC.
    pub bytes: Vec<u8>,
    /// Counts and index data.
    pub summary: CleanSummary,
}

/// A kept record of the batch being cleaned.
#[derive(Clone, Copy)]
struct Kept {
    start: usize,
    end: usize,
    body_start: usize,
    after_timestamp: usize,
    timestamp: i64,
}

/// Cleans batches while reusing its buffers across batches and segments; one per cleaner thread.
#[derive(Default)]
pub struct BatchCleaner {
    decompressor: Decompressor,
    compressor: Compressor,
    records: Vec<u8>,
    kept: Vec<Kept>,
}

impl std::fmt::Debug for BatchCleaner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchCleaner").finish_non_exhaustive()
    }
}

/// Cleans one segment's batches (`input`, whole v2 batches) against `map`; see [`BatchCleaner`].
pub fn clean_batches(
    input: &[u8],
    map: &OffsetMap,
    opts: &CleanOptions,
) -> Result<CleanedOutput, CleanerError> {
    let mut bytes = Vec::with_capacity(input.len());
    let summary = BatchCleaner::default().clean(input, map, opts, &mut bytes)?;
    Ok(CleanedOutput { bytes, summary })
}

impl BatchCleaner {
    /// A cleaner with empty buffers.
    pub fn new() -> BatchCleaner {
        BatchCleaner::default()
    }

    /// Cleans `input` (one segment's bytes: whole v2 batches, each CRC-checked) against `map`,
    /// appending the surviving batches to `out`. Offsets, base offsets, last offset deltas,
    /// partition leader epochs, producer id/epoch/base sequence, headers and record timestamps are
    /// preserved. On error `out` may hold part of the output; discard it.
    pub fn clean(
        &mut self,
        input: &[u8],
        map: &OffsetMap,
        opts: &CleanOptions,
        out: &mut Vec<u8>,
    ) -> Result<CleanSummary, CleanerError> {
        let mut summary = CleanSummary::default();
        let out_start = out.len();
        let mut pos = 0;
        while pos < input.len() {
            let header = validate_stored_batch(&input[pos..]).map_err(batch_err(pos))?;
            let total = header.total_size();
            let batch = &input[pos..pos + total];
            summary.batches_read += 1;
            summary.bytes_read += total as u64;
            self.clean_batch(batch, &header, pos, map, opts, out, &mut summary)?;
            pos += total;
        }
        summary.bytes_written = (out.len() - out_start) as u64;
        Ok(summary)
    }

    #[allow(clippy::too_many_arguments)]
    fn clean_batch(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
        position: usize,
        map: &OffsetMap,
        opts: &CleanOptions,
        out: &mut Vec<u8>,
        summary: &mut CleanSummary,
    ) -> Result<(), CleanerError> {
        let record_count = u64::try_from(header.record_count).unwrap_or(0);
        if header.is_control() || header.is_transactional() {
            // No transaction index yet: keep both as they are (module documentation).
            summary.records_read += record_count;
            summary.records_retained += record_count;
            out.extend_from_slice(batch);
            summary.batch_written(header.max_timestamp, header.last_offset());
            return Ok(());
        }
        let existing_horizon =
            (header.attributes & DELETE_HORIZON_BIT != 0).then_some(header.base_timestamp);
        let tombstones_expire = existing_horizon.is_some_and(|h| opts.now_ms >= h);
        let log_append = header.timestamp_type_is_log_append();

        let records = batch_records(
            batch,
            header,
            opts.max_decompressed_bytes,
            &mut self.decompressor,
        )
        .map_err(batch_err(position))?;
        self.kept.clear();
        let mut read = 0u64;
        let mut kept_tombstone = false;
        let latest = map.latest_offset();
        let kept = &mut self.kept;
        walk(records, header, position, |r| {
            read += 1;
            let offset = header.base_offset.wrapping_add(i64::from(r.offset_delta));
            let retain = if offset > latest {
                // Beyond what this round's map covers.
                true
            } else if let Some(key) = r.key {
                let latest_for_key = map.get(key).is_none_or(|found| offset >= found);
                if latest_for_key && !r.has_value && tombstones_expire {
                    summary.tombstones_removed += 1;
                    false
                } else {
                    latest_for_key
                }
            } else {
                summary.keyless_removed += 1;
                false
            };
            if retain {
                kept_tombstone |= !r.has_value;
                kept.push(Kept {
                    start: r.start,
                    end: r.end,
                    body_start: r.body_start,
                    after_timestamp: r.after_timestamp,
                    timestamp: if log_append {
                        header.max_timestamp
                    } else {
                        header.base_timestamp.wrapping_add(r.timestamp_delta)
                    },
                });
            }
            Ok(true)
        })?;
        summary.records_read += read;
        summary.records_retained += self.kept.len() as u64;
        summary.records_removed += read - self.kept.len() as u64;

        let set_horizon = kept_tombstone && existing_horizon.is_none();
        if self.kept.len() as u64 == read && !set_horizon {
            out.extend_from_slice(batch);
            summary.batch_written(header.max_timestamp, header.last_offset());
            if kept_tombstone {
                if let Some(h) = existing_horizon {
                    summary.horizon(h);
                }
            }
            return Ok(());
        }
        if self.kept.is_empty() {
            if self.retain_empty(header, opts) {
                write_empty_header(header, out);
                summary.batch_written(header.max_timestamp, header.last_offset());
                summary.empty_batches_retained += 1;
            }
            return Ok(());
        }

        let horizon = if set_horizon {
            Some(opts.now_ms.saturating_add(opts.delete_retention_ms))
        } else {
            existing_horizon
        };
        if kept_tombstone {
            if let Some(h) = horizon {
                summary.horizon(h);
            }
        }
        let base_timestamp = horizon.unwrap_or(header.base_timestamp);
        let max_timestamp = if log_append {
            header.max_timestamp
        } else {
            self.kept
                .iter()
                .map(|k| k.timestamp)
                .max()
                .unwrap_or(NO_TIMESTAMP)
        };
        let codec = header.compression().map_err(batch_err(position))?;

        let batch_start = out.len();
        out.extend_from_slice(&batch[..BATCH_HEADER_LEN]);
        let rewrite = set_horizon.then_some(base_timestamp);
        if codec == Compression::None {
            copy_records(records, &self.kept, rewrite, out)?;
        } else {
            self.records.clear();
            copy_records(records, &self.kept, rewrite, &mut self.records)?;
            compress_into(codec, &self.records, out, &mut self.compressor)
                .map_err(CleanerError::Output)?;
        }
        let batch_length = i32::try_from(out.len() - batch_start - LENGTH_FIELD_END)
            .map_err(|_| CleanerError::Output("cleaned batch exceeds 2 GiB".into()))?;
        let attributes = if horizon.is_some() {
            header.attributes | DELETE_HORIZON_BIT
        } else {
            header.attributes
        };
        let b = &mut out[batch_start..];
        b[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4]
            .copy_from_slice(&batch_length.to_be_bytes());
        b[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        b[BASE_TIMESTAMP_OFFSET..BASE_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&base_timestamp.to_be_bytes());
        b[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
            .copy_from_slice(&max_timestamp.to_be_bytes());
        // At most the original count, which was a non-negative i32.
        b[RECORD_COUNT_OFFSET..RECORD_COUNT_OFFSET + 4]
            .copy_from_slice(&(self.kept.len() as i32).to_be_bytes());
        let crc = crc32c::crc32c(&b[ATTRIBUTES_OFFSET..]);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        summary.batch_written(max_timestamp, header.last_offset());
        Ok(())
    }

    /// Kafka's `RETAIN_EMPTY` cases for a data batch left without records.
    fn retain_empty(&self, header: &BatchHeader, opts: &CleanOptions) -> bool {
        let last_of_producer = header.has_producer_id()
            && opts
                .active_producer_last_offsets
                .get(&header.producer_id)
                .is_some_and(|&last| last == header.last_offset());
        let last_before_bound = opts
            .upper_bound_offset
            .is_some_and(|bound| header.last_offset().checked_add(1) == Some(bound));
        last_of_producer || last_before_bound
    }
}

/// Copies the kept records; with `new_base_timestamp`, re-encodes each one's timestamp delta
/// against it (and so its length) and copies the rest of the record unchanged.
fn copy_records(
    records: &[u8],
    kept: &[Kept],
    new_base_timestamp: Option<i64>,
    out: &mut Vec<u8>,
) -> Result<(), CleanerError> {
    match new_base_timestamp {
        None => {
            // Adjacent kept records are copied as one run.
            let mut run: Option<(usize, usize)> = None;
            for k in kept {
                run = match run {
                    Some((s, e)) if e == k.start => Some((s, k.end)),
                    Some((s, e)) => {
                        out.extend_from_slice(&records[s..e]);
                        Some((k.start, k.end))
                    }
                    None => Some((k.start, k.end)),
                };
            }
            if let Some((s, e)) = run {
                out.extend_from_slice(&records[s..e]);
            }
        }
        Some(base) => {
            let mut delta_buf = [0u8; 10];
            for k in kept {
                let delta = k.timestamp.wrapping_sub(base);
                let delta_len = put_varlong(delta, &mut delta_buf);
                let rest = &records[k.after_timestamp..k.end];
                // attributes byte + delta + rest. A longer delta can push a record that was just
                // under the i32 limit over it; refuse rather than write a length readers reject.
                let body_len = i32::try_from(1 + delta_len + rest.len()).map_err(|_| {
                    CleanerError::Output("record exceeds 2 GiB after rebasing its timestamp".into())
                })?;
                let mut len_buf = [0u8; 10];
                let len_len = put_varlong(i64::from(body_len), &mut len_buf);
                out.extend_from_slice(&len_buf[..len_len]);
                out.push(records[k.body_start]);
                out.extend_from_slice(&delta_buf[..delta_len]);
                out.extend_from_slice(rest);
            }
        }
    }
    Ok(())
}

/// Writes `value` zigzag + base-128 encoded; returns the bytes used. For values within i32 range
/// this is also the varint encoding.
fn put_varlong(value: i64, buf: &mut [u8; 10]) -> usize {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut i = 0;
    while v >= 0x80 {
        buf[i] = (v as u8) | 0x80;
        v >>= 7;
        i += 1;
    }
    buf[i] = v as u8;
    i + 1
}

/// Kafka's `DefaultRecordBatch.writeEmptyHeader`: the same offsets, producer fields, epoch,
/// timestamp type and max timestamp, no compression, no base timestamp, zero records.
fn write_empty_header(header: &BatchHeader, out: &mut Vec<u8>) {
    let start = out.len();
    // As Kafka's computeAttributes: timestamp type, transactional and control bits only.
    let attributes = header.attributes & (TIMESTAMP_TYPE_BIT | TRANSACTIONAL_BIT | CONTROL_BIT);
    out.extend_from_slice(&header.base_offset.to_be_bytes());
    out.extend_from_slice(&((BATCH_HEADER_LEN - LENGTH_FIELD_END) as i32).to_be_bytes());
    out.extend_from_slice(&header.partition_leader_epoch.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&[0; 4]); // CRC, below
    out.extend_from_slice(&attributes.to_be_bytes());
    out.extend_from_slice(&header.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&NO_TIMESTAMP.to_be_bytes());
    out.extend_from_slice(&header.max_timestamp.to_be_bytes());
    out.extend_from_slice(&header.producer_id.to_be_bytes());
    out.extend_from_slice(&header.producer_epoch.to_be_bytes());
    out.extend_from_slice(&header.base_sequence.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    let crc = crc32c::crc32c(&out[start + ATTRIBUTES_OFFSET..]);
    out[start + CRC_OFFSET..start + CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

// ---------------------------------------------------------------------------------------------
// Throttling
// ---------------------------------------------------------------------------------------------

/// Limits the cleaner's I/O to `log.cleaner.io.max.bytes.per.second` (Kafka's `Throttler`): the
/// caller reports bytes read and written; every check interval (300 ms, as Kafka) the observed rate
/// is compared with the limit and the caller sleeps long enough to come back under it.
#[derive(Debug)]
pub struct Throttler {
    bytes_per_second: f64,
    check_interval: Duration,
    period_start: Instant,
    observed: f64,
}

impl Throttler {
    /// Kafka's check interval.
    pub const CHECK_INTERVAL: Duration = Duration::from_millis(300);

    /// A throttler for `bytes_per_second`; `f64::INFINITY` or `f64::MAX` (Kafka's default) means
    /// unlimited, and so does any non-positive or NaN value.
    pub fn new(bytes_per_second: f64) -> Throttler {
        Throttler::starting_at(bytes_per_second, Instant::now())
    }

    /// As [`new`](Self::new) with an explicit start time (tests).
    pub fn starting_at(bytes_per_second: f64, now: Instant) -> Throttler {
        Throttler {
            bytes_per_second,
            check_interval: Self::CHECK_INTERVAL,
            period_start: now,
            observed: 0.0,
        }
    }

    fn unlimited(&self) -> bool {
        self.bytes_per_second.is_nan()
            || self.bytes_per_second <= 0.0
            || self.bytes_per_second >= f64::MAX
    }

    /// Records `bytes` of I/O done by `now` and returns how long to pause, without sleeping.
    pub fn pause_for(&mut self, bytes: u64, now: Instant) -> Duration {
        if self.unlimited() {
            return Duration::ZERO;
        }
        self.observed += bytes as f64;
        let elapsed = now.saturating_duration_since(self.period_start);
        if elapsed < self.check_interval {
            return Duration::ZERO;
        }
        let rate = self.observed / elapsed.as_secs_f64();
        let pause = if rate > self.bytes_per_second {
            // Sleep until the bytes of this period are within the rate.
            // try_from: an absurdly small rate must not panic on a huge duration.
            let wanted = Duration::try_from_secs_f64(self.observed / self.bytes_per_second)
                .unwrap_or(Duration::MAX);
            wanted.saturating_sub(elapsed)
        } else {
            Duration::ZERO
        };
        self.period_start = now.checked_add(pause).unwrap_or(now);
        self.observed = 0.0;
        pause
    }

    /// Records `bytes` and sleeps the current thread if the rate is over the limit; returns the
    /// time slept. Call between batches or segments from a blocking (non-async) thread.
    pub fn maybe_throttle(&mut self, bytes: u64) -> Duration {
        let pause = self.pause_for(bytes, Instant::now());
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varlong_encoding_matches_zigzag() {
        let mut buf = [0u8; 10];
        for (value, bytes) in [
            (0i64, &[0u8][..]),
            (-1, &[1]),
            (1, &[2]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (
                i64::MIN,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let n = put_varlong(value, &mut buf);
            assert_eq!(&buf[..n], bytes, "{value}");
            let mut r = Reader {
                buf: &buf[..n],
                pos: 0,
            };
            assert_eq!(r.varlong().unwrap(), value);
        }
    }

    #[test]
    fn throttler_pauses_to_the_configured_rate() {
        let t0 = Instant::now();
        let mut t = Throttler::starting_at(1000.0, t0);
        // Within the check interval nothing happens.
        assert_eq!(
            t.pause_for(10_000, t0 + Duration::from_millis(100)),
            Duration::ZERO
        );
        // 10 000 bytes after 400 ms at 1000 B/s: pause until 10 s have passed.
        let pause = t.pause_for(0, t0 + Duration::from_millis(400));
        assert_eq!(pause, Duration::from_millis(9_600));
        // Under the rate: no pause.
        let t1 = t0 + Duration::from_millis(400) + pause;
        assert_eq!(
            t.pause_for(100, t1 + Duration::from_secs(1)),
            Duration::ZERO
        );
        // A tiny rate gives a long pause, not a panic.
        let mut tiny = Throttler::starting_at(f64::MIN_POSITIVE, t0);
        assert!(
            tiny.pause_for(u64::MAX, t0 + Duration::from_secs(1)) > Duration::from_secs(1 << 40)
        );
        // Unlimited variants never pause.
        for rate in [f64::MAX, f64::INFINITY, 0.0, -5.0, f64::NAN] {
            let mut u = Throttler::starting_at(rate, t0);
            assert_eq!(
                u.pause_for(u64::MAX, t0 + Duration::from_secs(10)),
                Duration::ZERO
            );
        }
    }

    #[test]
    fn cleaner_state_can_move_to_cleaner_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<OffsetMap>();
        assert_send::<BatchCleaner>();
        assert_send::<Throttler>();
    }

    #[test]
    fn map_put_get_full_and_clear() {
        let mut m = OffsetMap::new(24 * 4, 1.0).unwrap();
        assert_eq!(m.capacity(), 3);
        assert!(m.put(b"a", 1) && m.put(b"b", 2) && m.put(b"", 3));
        assert_eq!(
            (m.get(b"a"), m.get(b""), m.get(b"c")),
            (Some(1), Some(3), None)
        );
        // Full: a new key is refused and changes nothing, an existing one is still updated.
        assert!(!m.put(b"c", 4));
        assert_eq!((m.get(b"c"), m.latest_offset(), m.len()), (None, 3, 3));
        assert!(m.put(b"a", 5));
        assert_eq!((m.get(b"a"), m.latest_offset()), (Some(5), 5));
        m.clear();
        assert!(m.is_empty());
        assert_eq!((m.get(b"a"), m.latest_offset()), (None, -1));
        assert!(m.put(b"c", 6));
        assert_eq!(m.get(b"c"), Some(6));
    }

    #[test]
    fn map_rejects_bad_budgets() {
        assert!(matches!(
            OffsetMap::new(24, 0.9),
            Err(CleanerError::MapTooSmall { .. })
        ));
        assert!(matches!(
            OffsetMap::new(1 << 20, 0.0),
            Err(CleanerError::InvalidLoadFactor(_))
        ));
        assert!(matches!(
            OffsetMap::new(1 << 20, 1.5),
            Err(CleanerError::InvalidLoadFactor(_))
        ));
        let m = OffsetMap::new(24 * 100, 1.0).unwrap();
        assert_eq!(m.slots(), 100);
        // One slot always stays free so that lookups of absent keys end.
        assert_eq!(m.capacity(), 99);
    }
}
