//! Record batch v2 (magic 2): header parsing, validation of producer batches, in-place offset
//! assignment and (bounded) record timestamp extraction.
//!
//! Batches are kept as the bytes the producer sent. The produce path only validates (header, CRC,
//! record framing of uncompressed batches) and patches a few header fields; decompression happens
//! only in [`record_timestamps`], which ListOffsets needs.
//!
//! Layout (big-endian): baseOffset i64 @0, batchLength i32 @8, partitionLeaderEpoch i32 @12,
//! magic i8 @16, crc u32 @17 (CRC-32C over @21..end), attributes i16 @21, lastOffsetDelta i32 @23,
//! baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43, producerEpoch i16 @51,
//! baseSequence i32 @53, recordCount i32 @57, records @61.

use std::io::Read;

/// Size of the fixed v2 batch header, up to the first record.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the part counted by `batchLength`: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;

/// Smallest legal `batchLength`: a header with no records.
const MIN_BATCH_LENGTH: i32 = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
pub(crate) const CRC_OFFSET: usize = 17;
pub(crate) const ATTRIBUTES_OFFSET: usize = 21;
pub(crate) const MAX_TIMESTAMP_OFFSET: usize = 35;

const COMPRESSION_MASK: i16 = 0x07;
pub(crate) const TIMESTAMP_TYPE_BIT: i16 = 0x08;
pub(crate) const TRANSACTIONAL_BIT: i16 = 0x10;
pub(crate) const CONTROL_BIT: i16 = 0x20;

/// Sequence number used by batches without idempotence.
const NO_SEQUENCE: i32 = -1;

/// Compression codec of a batch (attributes bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Records stored as is.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Snappy, raw or with xerial framing.
    Snappy,
    /// LZ4 frame format.
    Lz4,
    /// Zstandard.
    Zstd,
}

/// Errors found while parsing or validating a record batch.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The batch is damaged: CRC mismatch, or a length that cannot be right.
    #[error("corrupt record batch")]
    CorruptMessage,
    /// Magic byte other than 2; only record batch v2 is supported.
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// The batch is well formed at the byte level but breaks a record-level rule.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// Compression codec id outside 0..=4.
    #[error("unsupported compression codec id {0}")]
    UnsupportedCompression(i16),
    /// Decompressed records would exceed the caller's limit.
    #[error("decompressed batch exceeds the size limit")]
    DecompressionLimit,
    /// The compressed payload could not be decoded.
    #[error("cannot decompress record batch: {0}")]
    Decompression(String),
    /// The buffer ends before the batch does.
    #[error("record batch truncated")]
    Truncated,
}

/// The fixed 61-byte header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Bytes of the batch after the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch of the partition when the batch was appended.
    pub partition_leader_epoch: i32,
    /// Format version; always 2 after a successful parse.
    pub magic: i8,
    /// Stored CRC-32C over attributes..end.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control flags.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp the record timestamp deltas are relative to.
    pub base_timestamp: i64,
    /// Largest record timestamp (or the log append time).
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 when absent.
    pub producer_id: i64,
    /// Producer epoch, -1 when absent.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 when absent.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

fn be_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn be_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

fn be_i64(buf: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    i64::from_be_bytes(b)
}

impl BatchHeader {
    /// Parses the fixed header at the start of `buf` (needs >= 61 bytes); checks only magic == 2
    /// and that batchLength is >= 49; does not check the CRC.
    ///
    /// The magic byte is checked as soon as it is present, so an old-format (v0/v1) message that is
    /// shorter than a v2 header still reports [`BatchError::UnsupportedMagic`].
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() > MAGIC_OFFSET {
            let magic = buf[MAGIC_OFFSET] as i8;
            if magic != 2 {
                return Err(BatchError::UnsupportedMagic(magic));
            }
        }
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated);
        }
        let header = BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, PARTITION_LEADER_EPOCH_OFFSET),
            magic: buf[MAGIC_OFFSET] as i8,
            crc: be_i32(buf, CRC_OFFSET) as u32,
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            record_count: be_i32(buf, 57),
        };
        if header.batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::CorruptMessage);
        }
        Ok(header)
    }

    /// Size of the whole batch in bytes, including the 12-byte log overhead.
    pub fn total_size(&self) -> usize {
        // parse() guarantees batch_length >= 49, so the cast cannot wrap.
        self.batch_length.max(0) as usize + LOG_OVERHEAD
    }

    /// Offset of the last record of the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .wrapping_add(i64::from(self.last_offset_delta))
    }

    /// The compression codec named by the attributes.
    pub fn compression(&self) -> Result<Compression, BatchError> {
        match self.attributes & COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::UnsupportedCompression(other)),
        }
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    /// Whether the batch holds control records (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Whether record timestamps are replaced by the broker's append time (`max_timestamp`).
    pub fn timestamp_type_is_log_append(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    /// Whether the batch comes from an idempotent/transactional producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record. Kafka wraps sequences from `i32::MAX` to 0 (not to
    /// `i32::MIN`), and a batch without sequence (-1) keeps -1.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// Adds `increment` to a producer sequence number the way Kafka does: past `i32::MAX` it
/// continues at 0.
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    let next = i64::from(sequence) + i64::from(increment);
    if next > i64::from(i32::MAX) {
        (next - i64::from(i32::MAX) - 1) as i32
    } else {
        next as i32
    }
}

/// Full validation of one batch as received from a producer (`bytes` = exactly one batch):
/// length consistency, base offset 0 (as Kafka 4 requires of clients), magic 2 (else
/// [`BatchError::UnsupportedMagic`]), CRC-32C (else [`BatchError::CorruptMessage`]),
/// record_count >= 1 and == last_offset_delta + 1, not a control batch (clients may not write
/// them), a valid sequence for idempotent producers, a known compression codec, and for
/// uncompressed batches that the record framing (varint lengths) exactly fills the batch with
/// record_count records. Compressed batches are NOT decompressed
/// here (no decompression on the produce path).
///
/// Bytes after the batch mean the request carried more than one batch (Kafka requires exactly
/// one per partition for produce v3+) and give [`BatchError::InvalidRecord`]; fewer bytes than the
/// batch declares give [`BatchError::Truncated`].
pub fn validate_client_batch(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    let total = header.total_size();
    if bytes.len() < total {
        return Err(BatchError::Truncated);
    }
    if bytes.len() > total {
        return Err(BatchError::InvalidRecord(
            "produce requests may contain exactly one record batch per partition".into(),
        ));
    }
    // Kafka 4 (UnifiedLog.analyzeAndValidateRecords) refuses client v2 batches whose base offset
    // is not 0, before looking at the CRC.
    if header.base_offset != 0 {
        return Err(BatchError::InvalidRecord(format!(
            "the base offset of a produced record batch must be 0, but it is {}",
            header.base_offset
        )));
    }
    if crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]) != header.crc {
        return Err(BatchError::CorruptMessage);
    }
    if header.record_count < 1 {
        return Err(BatchError::InvalidRecord(format!(
            "invalid record count {}",
            header.record_count
        )));
    }
    if i64::from(header.last_offset_delta) + 1 != i64::from(header.record_count) {
        return Err(BatchError::InvalidRecord(format!(
            "inconsistent batch: last offset delta {} but {} records",
            header.last_offset_delta, header.record_count
        )));
    }
    if header.is_control() {
        return Err(BatchError::InvalidRecord(
            "clients are not allowed to write control records".into(),
        ));
    }
    if header.has_producer_id() && header.base_sequence < 0 {
        return Err(BatchError::InvalidRecord(format!(
            "invalid sequence number {} for producer {}",
            header.base_sequence, header.producer_id
        )));
    }
    if header.compression()? == Compression::None {
        walk_records(&bytes[BATCH_HEADER_LEN..], &header, true, |_, _| {})?;
    }
    Ok(header)
}

/// Checks a batch read back from disk (recovery) or received from a leader: header, that `buf`
/// holds the whole declared batch, and the CRC-32C. `buf` may continue past the batch (the rest
/// of a segment); only `total_size()` bytes are checked. Records are not parsed.
pub fn validate_stored_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    let total = header.total_size();
    if buf.len() < total {
        return Err(BatchError::Truncated);
    }
    if crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..total]) != header.crc {
        return Err(BatchError::CorruptMessage);
    }
    Ok(header)
}

/// Patches, in place, base offset, partition leader epoch, (for LogAppendTime) the attributes'
/// timestamp-type bit and max timestamp, then recomputes the CRC (which covers attributes and
/// maxTimestamp).
///
/// `batch` must be one batch already accepted by [`validate_client_batch`]; a buffer shorter than
/// a batch header is left untouched rather than panicking. Bytes beyond the batch's declared size
/// are not covered by the CRC.
pub fn assign_offsets(
    batch: &mut [u8],
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) {
    if batch.len() < BATCH_HEADER_LEN {
        return;
    }
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
    if let Some(time) = log_append_time {
        let attributes = be_i16(batch, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_BIT;
        batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
        batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&time.to_be_bytes());
    }
    let declared_end = (be_i32(batch, 8).max(0) as usize).saturating_add(LOG_OVERHEAD);
    let end = declared_end.clamp(BATCH_HEADER_LEN, batch.len());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..end]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Iterates (offset, timestamp) of every record of a stored batch, decompressing if needed, with
/// decompressed output bounded by `max_decompressed_bytes` ([`BatchError::DecompressionLimit`]
/// beyond it). Used for ListOffsets by timestamp and max-timestamp; never on the produce/fetch
/// path.
///
/// For LogAppendTime batches every record reports the batch's `max_timestamp`, as Kafka does.
/// `batch` may extend past the batch (for example a read buffer); only the declared size is used.
pub fn record_timestamps(
    batch: &[u8],
    max_decompressed_bytes: usize,
) -> Result<Vec<(i64, i64)>, BatchError> {
    let (header, records) = batch_records(batch, max_decompressed_bytes)?;
    let records: &[u8] = &records;
    // Each record takes at least 7 bytes, so this bounds the reservation by real data rather
    // than by the record count read from the batch.
    let capacity = (header.record_count.max(0) as usize).min(records.len() / 7 + 1);
    let mut out = Vec::with_capacity(capacity);
    let log_append = header.timestamp_type_is_log_append();
    walk_records(records, &header, false, |offset_delta, timestamp_delta| {
        let offset = header.base_offset.wrapping_add(i64::from(offset_delta));
        let timestamp = if log_append {
            header.max_timestamp
        } else {
            header.base_timestamp.wrapping_add(timestamp_delta)
        };
        out.push((offset, timestamp));
    })?;
    Ok(out)
}

/// A batch's header and its records section, decompressed (up to `max_decompressed_bytes`) if needed.
fn batch_records(
    batch: &[u8],
    max_decompressed_bytes: usize,
) -> Result<(BatchHeader, std::borrow::Cow<'_, [u8]>), BatchError> {
    let header = BatchHeader::parse(batch)?;
    let total = header.total_size();
    if batch.len() < total {
        return Err(BatchError::Truncated);
    }
    let payload = &batch[BATCH_HEADER_LEN..total];
    let records = match header.compression()? {
        Compression::None => std::borrow::Cow::Borrowed(payload),
        codec => std::borrow::Cow::Owned(decompress(codec, payload, max_decompressed_bytes)?),
    };
    Ok((header, records))
}

/// Bound on one batch's decompressed records wherever Kavka has to look inside a batch (the
/// keyless-record check of compacted topics on the produce path, timestamp lookups): generous
/// (64 times `max.message.bytes`, at least 64 MiB), but finite, since the codecs themselves bound
/// nothing (TRAPS.md).
pub fn decompression_limit(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(64).max(64 * 1024 * 1024)
}

/// The positions in a (client) batch of the records without a key, which a compacted topic refuses
/// (Kafka lists them in the Produce response). Compressed batches are decompressed up to
/// `max_decompressed_bytes`.
pub fn keyless_records(
    batch: &[u8],
    max_decompressed_bytes: usize,
) -> Result<Vec<i32>, BatchError> {
    let (header, records) = batch_records(batch, max_decompressed_bytes)?;
    let mut keyless = Vec::new();
    let mut cursor = Cursor::new(&records);
    for index in 0..header.record_count.max(0) {
        let len = cursor.read_varint()?;
        if len < 0 {
            return Err(BatchError::InvalidRecord(format!(
                "invalid record size {len}"
            )));
        }
        let mut body = Cursor::new(cursor.take(len as usize)?);
        body.skip(1)?; // attributes
        body.read_varlong()?; // timestamp delta
        body.read_varint()?; // offset delta
        if body.read_varint()? < 0 {
            keyless.push(index);
        }
    }
    Ok(keyless)
}

/// Reads a Kafka varint/varlong: zigzag-encoded, little-endian base-128 groups.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn premature_end() -> BatchError {
        BatchError::InvalidRecord("incorrect declared batch size, premature end of records".into())
    }

    fn read_raw_varint(&mut self, max_bytes: usize) -> Result<u64, BatchError> {
        let mut value: u64 = 0;
        for i in 0..max_bytes {
            let byte = *self.buf.get(self.pos).ok_or_else(Self::premature_end)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BatchError::InvalidRecord("varint is too long".into()))
    }

    fn read_varint(&mut self) -> Result<i32, BatchError> {
        let raw = self.read_raw_varint(5)?;
        if raw > u64::from(u32::MAX) {
            return Err(BatchError::InvalidRecord("varint out of range".into()));
        }
        let raw = raw as u32;
        Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
    }

    fn read_varlong(&mut self) -> Result<i64, BatchError> {
        let raw = self.read_raw_varint(10)?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn skip(&mut self, n: usize) -> Result<(), BatchError> {
        if n > self.remaining() {
            return Err(Self::premature_end());
        }
        self.pos += n;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], BatchError> {
        let start = self.pos;
        self.skip(n)?;
        Ok(&self.buf[start..self.pos])
    }

    /// Skips a length-prefixed field; -1 (null) is allowed only when `nullable`.
    fn skip_sized(&mut self, nullable: bool, what: &str) -> Result<(), BatchError> {
        let len = self.read_varint()?;
        if len >= 0 {
            self.skip(len as usize)
        } else if len == -1 && nullable {
            Ok(())
        } else {
            Err(BatchError::InvalidRecord(format!(
                "invalid {what} length {len}"
            )))
        }
    }
}

/// Walks exactly `header.record_count` records in `records`, checking that each record body
/// matches its declared length and that nothing is left over. With `contiguous`, offset deltas
/// must be 0, 1, 2... (what producers send); stored batches may have gaps (compaction keeps the
/// original offsets of surviving records). Calls `visit(offset_delta, timestamp_delta)` per
/// record.
fn walk_records(
    records: &[u8],
    header: &BatchHeader,
    contiguous: bool,
    mut visit: impl FnMut(i32, i64),
) -> Result<(), BatchError> {
    let mut cursor = Cursor::new(records);
    let mut index: i32 = 0;
    // The loop ends after record_count records or as soon as the data runs out, whichever is
    // first, since every record consumes at least one byte.
    while index < header.record_count {
        let len = cursor.read_varint()?;
        if len < 0 {
            return Err(BatchError::InvalidRecord(format!(
                "invalid record size {len}"
            )));
        }
        let body = cursor.take(len as usize)?;
        let (offset_delta, timestamp_delta) = parse_record_body(body)?;
        if contiguous && offset_delta != index {
            return Err(BatchError::InvalidRecord(format!(
                "record {index} has offset delta {offset_delta}"
            )));
        }
        visit(offset_delta, timestamp_delta);
        index += 1;
    }
    if cursor.remaining() != 0 {
        return Err(BatchError::InvalidRecord(
            "incorrect declared batch size, bytes remaining after the last record".into(),
        ));
    }
    Ok(())
}

/// Parses one record body (after its length), returning (offset delta, timestamp delta).
fn parse_record_body(body: &[u8]) -> Result<(i32, i64), BatchError> {
    let mut c = Cursor::new(body);
    c.skip(1)?; // record attributes: unused in v2
    let timestamp_delta = c.read_varlong()?;
    let offset_delta = c.read_varint()?;
    c.skip_sized(true, "key")?;
    c.skip_sized(true, "value")?;
    let headers = c.read_varint()?;
    if headers < 0 {
        return Err(BatchError::InvalidRecord(format!(
            "invalid header count {headers}"
        )));
    }
    for _ in 0..headers {
        c.skip_sized(false, "header key")?;
        c.skip_sized(true, "header value")?;
    }
    if c.remaining() != 0 {
        return Err(BatchError::InvalidRecord(format!(
            "invalid record size: expected to read {} bytes in record payload, but read {}",
            body.len(),
            c.pos
        )));
    }
    Ok((offset_delta, timestamp_delta))
}

/// xerial snappy-java stream header: magic, then version and compatible-version ints.
pub(crate) const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_LEN: usize = 16;

fn decompress(codec: Compression, payload: &[u8], limit: usize) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    decompress_into(codec, payload, limit, &mut out, &mut None)?;
    Ok(out)
}

/// Appends `payload` decompressed with `codec` to `out`, refusing to grow `out` past `limit`. A
/// caller decompressing many batches passes its buffer and a zstd context to reuse (the cleaner).
pub(crate) fn decompress_into(
    codec: Compression,
    payload: &[u8],
    limit: usize,
    out: &mut Vec<u8>,
    zstd_context: &mut Option<zstd::zstd_safe::DCtx<'static>>,
) -> Result<(), BatchError> {
    let err = |e: std::io::Error| BatchError::Decompression(e.to_string());
    match codec {
        Compression::None => {
            if payload.len() > limit.saturating_sub(out.len()) {
                return Err(BatchError::DecompressionLimit);
            }
            out.extend_from_slice(payload);
            Ok(())
        }
        Compression::Gzip => {
            read_bounded(flate2::read::MultiGzDecoder::new(payload), limit, out).map_err(err)?
        }
        Compression::Lz4 => {
            read_bounded(lz4_flex::frame::FrameDecoder::new(payload), limit, out).map_err(err)?
        }
        Compression::Zstd => {
            // with_context resets the session, so a context left mid-frame by an earlier error
            // starts clean.
            let context = zstd_context.get_or_insert_with(zstd::zstd_safe::DCtx::create);
            let decoder = zstd::stream::read::Decoder::with_context(payload, context);
            read_bounded(decoder, limit, out).map_err(err)?
        }
        Compression::Snappy => decompress_snappy(payload, limit, out),
    }
}

/// First buffer reserved for decompressed records; it doubles from there, up to the limit.
const DECOMPRESS_CHUNK: usize = 64 * 1024;

/// Reads into `out` until it holds at most `limit` bytes; the outer `Err` is an I/O (decoding)
/// failure, the inner one the limit being exceeded.
///
/// `out`'s capacity never exceeds `limit` (a plain `read_to_end` doubles its buffer and can reserve
/// twice the limit before noticing it is hit): capacity doubles, capped at the limit, and each read
/// is bounded by the spare capacity, so the vector never grows behind our back.
fn read_bounded(
    mut reader: impl Read,
    limit: usize,
    out: &mut Vec<u8>,
) -> std::io::Result<Result<(), BatchError>> {
    loop {
        let room = limit.saturating_sub(out.len());
        if room == 0 {
            break;
        }
        if out.capacity() == out.len() {
            out.reserve_exact(out.len().max(DECOMPRESS_CHUNK).min(room));
        }
        let spare = (out.capacity() - out.len()).min(room);
        let read = (&mut reader).take(spare as u64).read_to_end(out)?;
        if read < spare {
            return Ok(Ok(())); // the decoder's end, within the limit
        }
    }
    // Exactly at the limit: one more byte tells "at" from "over".
    let mut probe = [0u8; 1];
    loop {
        match reader.read(&mut probe) {
            Ok(0) => return Ok(Ok(())),
            Ok(_) => return Ok(Err(BatchError::DecompressionLimit)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Snappy as Kafka clients write it: xerial framing (the Java client) or one raw block.
fn decompress_snappy(payload: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), BatchError> {
    if payload.len() >= XERIAL_HEADER_LEN && payload[..8] == XERIAL_MAGIC {
        let mut rest = &payload[XERIAL_HEADER_LEN..];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(BatchError::Decompression(
                    "truncated xerial snappy block length".into(),
                ));
            }
            let len = be_i32(rest, 0);
            if len < 0 || len as usize > rest.len() - 4 {
                return Err(BatchError::Decompression(format!(
                    "invalid xerial snappy block length {len}"
                )));
            }
            snappy_block_into(&rest[4..4 + len as usize], limit, out)?;
            rest = &rest[4 + len as usize..];
        }
        Ok(())
    } else {
        snappy_block_into(payload, limit, out)
    }
}

/// Most bytes one byte of a snappy block can expand to: the densest element, a copy with a
/// 2-byte offset, spends 3 bytes on at most 64 bytes of output.
const SNAPPY_MAX_EXPANSION: usize = 22;

/// Appends one raw snappy block to `out`, refusing before allocating if its declared size would
/// take `out` past `limit` or is more than the block could possibly expand to (a few bytes claiming
/// the whole limit would otherwise make every such block allocate and zero it).
fn snappy_block_into(block: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), BatchError> {
    let err = |e: snap::Error| BatchError::Decompression(e.to_string());
    let len = snap::raw::decompress_len(block).map_err(err)?;
    if len > block.len().saturating_mul(SNAPPY_MAX_EXPANSION) {
        return Err(BatchError::Decompression(format!(
            "a snappy block of {} bytes cannot expand to the {len} bytes it declares",
            block.len()
        )));
    }
    if len > limit.saturating_sub(out.len()) {
        return Err(BatchError::DecompressionLimit);
    }
    let start = out.len();
    out.resize(start + len, 0);
    match snap::raw::Decoder::new().decompress(block, &mut out[start..]) {
        Ok(written) => {
            out.truncate(start + written);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(err(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression as KCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
        RecordEncodeOptions, TimestampType,
    };

    const ALL_CODECS: [(KCompression, Compression); 5] = [
        (KCompression::None, Compression::None),
        (KCompression::Gzip, Compression::Gzip),
        (KCompression::Snappy, Compression::Snappy),
        (KCompression::Lz4, Compression::Lz4),
        (KCompression::Zstd, Compression::Zstd),
    ];

    struct Spec {
        count: i64,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
        control: bool,
        transactional: bool,
        value_len: usize,
    }

    impl Default for Spec {
        fn default() -> Self {
            Spec {
                count: 3,
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
                control: false,
                transactional: false,
                value_len: 10,
            }
        }
    }

    fn records(spec: &Spec) -> Vec<Record> {
        (0..spec.count)
            .map(|i| {
                let mut record = Record {
                    transactional: spec.transactional,
                    control: spec.control,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: spec.producer_id,
                    producer_epoch: spec.producer_epoch,
                    timestamp_type: TimestampType::Creation,
                    offset: i,
                    // The encoder starts a new batch whenever offset - sequence changes, so
                    // even non-idempotent records (base -1) count up from the base.
                    sequence: spec.base_sequence.wrapping_add(i as i32),
                    // Not monotonic on purpose: max timestamp is not the last one.
                    timestamp: 1_700_000_000_000 + [5, 50, 20, 7][i as usize % 4] + i,
                    key: if i % 3 == 1 {
                        None
                    } else {
                        Some(Bytes::from(format!("key-{i}")))
                    },
                    value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; spec.value_len])),
                    headers: Default::default(),
                };
                if i % 2 == 0 {
                    record.headers.insert(
                        StrBytes::from_static_str("h"),
                        Some(Bytes::from_static(b"hv")),
                    );
                }
                record
            })
            .collect()
    }

    fn encode(spec: &Spec, codec: KCompression) -> Vec<u8> {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records(spec),
            &RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        )
        .expect("encode");
        buf.to_vec()
    }

    fn plain() -> Vec<u8> {
        encode(&Spec::default(), KCompression::None)
    }

    fn expected_timestamps(spec: &Spec) -> Vec<(i64, i64)> {
        records(spec)
            .iter()
            .map(|r| (r.offset, r.timestamp))
            .collect()
    }

    /// Rewrites the CRC so that a deliberate edit reaches the checks after it.
    fn fix_crc(batch: &mut [u8]) {
        let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
        batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }

    fn set_i32(batch: &mut [u8], at: usize, v: i32) {
        batch[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }

    fn set_batch_length(batch: &mut [u8]) {
        let len = (batch.len() - LOG_OVERHEAD) as i32;
        set_i32(batch, 8, len);
    }

    fn zigzag(v: i32) -> Vec<u8> {
        let mut raw = ((v << 1) ^ (v >> 31)) as u32;
        let mut out = Vec::new();
        loop {
            if raw < 0x80 {
                out.push(raw as u8);
                return out;
            }
            out.push((raw as u8 & 0x7f) | 0x80);
            raw >>= 7;
        }
    }

    #[test]
    fn parses_header_fields() {
        let spec = Spec {
            producer_id: 42,
            producer_epoch: 3,
            base_sequence: 10,
            transactional: true,
            ..Spec::default()
        };
        let bytes = encode(&spec, KCompression::Gzip);
        let h = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(h.base_offset, 0);
        assert_eq!(h.total_size(), bytes.len());
        assert_eq!(h.magic, 2);
        assert_eq!(h.partition_leader_epoch, -1);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.last_offset(), 2);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.producer_id, 42);
        assert_eq!(h.producer_epoch, 3);
        assert_eq!(h.base_sequence, 10);
        assert_eq!(h.last_sequence(), 12);
        assert_eq!(h.base_timestamp, 1_700_000_000_000 + 5);
        assert_eq!(h.max_timestamp, 1_700_000_000_000 + 51);
        assert_eq!(h.compression().unwrap(), Compression::Gzip);
        assert!(h.is_transactional());
        assert!(!h.is_control());
        assert!(!h.timestamp_type_is_log_append());
        assert!(h.has_producer_id());
        assert_eq!(h.crc, crc32c::crc32c(&bytes[ATTRIBUTES_OFFSET..]));
    }

    #[test]
    fn last_sequence_wraps_like_kafka() {
        let mut h = BatchHeader::parse(&plain()).unwrap();
        h.base_sequence = i32::MAX - 1;
        h.last_offset_delta = 3;
        assert_eq!(h.last_sequence(), 1);
        h.base_sequence = i32::MAX;
        h.last_offset_delta = 0;
        assert_eq!(h.last_sequence(), i32::MAX);
        h.base_sequence = -1;
        h.last_offset_delta = 4;
        assert_eq!(h.last_sequence(), -1);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(5, 1), 6);
    }

    #[test]
    fn every_codec_validates_and_yields_timestamps() {
        let spec = Spec {
            count: 40,
            value_len: 300,
            ..Spec::default()
        };
        for (kc, c) in ALL_CODECS {
            let bytes = encode(&spec, kc);
            let h = validate_client_batch(&bytes).unwrap_or_else(|e| panic!("{c:?}: {e}"));
            assert_eq!(h.compression().unwrap(), c);
            assert_eq!(h.record_count, 40);
            let ts = record_timestamps(&bytes, 1 << 20).unwrap();
            assert_eq!(ts, expected_timestamps(&spec), "{c:?}");
        }
    }

    #[test]
    fn decompression_limit_is_enforced_for_every_codec() {
        let spec = Spec {
            count: 20,
            value_len: 1000,
            ..Spec::default()
        };
        for (kc, c) in ALL_CODECS {
            let bytes = encode(&spec, kc);
            let needed = if c == Compression::None {
                // Uncompressed batches are not copied, so no limit applies.
                continue;
            } else {
                let mut n = 0;
                // Find the decompressed size: the smallest limit that works.
                while record_timestamps(&bytes, n).is_err() {
                    n += 64;
                }
                n
            };
            assert!(needed > 20_000, "{c:?}: {needed}");
            assert!(matches!(
                record_timestamps(&bytes, 20_000),
                Err(BatchError::DecompressionLimit)
            ));
            assert!(matches!(
                record_timestamps(&bytes, 0),
                Err(BatchError::DecompressionLimit)
            ));
        }
    }

    #[test]
    fn decompression_buffer_never_exceeds_the_limit() {
        // Found by the record_batch fuzz target: read_to_end doubled the output buffer, so a bomb
        // could reserve twice the bound before being refused. Zeros compress to almost nothing.
        let limit = 3 * 1024 * 1024 + 17;
        let zeros = vec![0u8; limit + 1];
        let compressed: [(Compression, Vec<u8>); 3] = [
            (Compression::Gzip, {
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&zeros).unwrap();
                gz.finish().unwrap()
            }),
            (Compression::Lz4, {
                use std::io::Write;
                let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
                lz.write_all(&zeros).unwrap();
                lz.finish().unwrap()
            }),
            (Compression::Zstd, zstd::bulk::compress(&zeros, 1).unwrap()),
        ];
        for (codec, payload) in &compressed {
            let mut out = Vec::new();
            let res = decompress_into(*codec, payload, limit, &mut out, &mut None);
            assert!(
                matches!(res, Err(BatchError::DecompressionLimit)),
                "{codec:?}: {res:?}"
            );
            assert!(
                out.capacity() <= limit,
                "{codec:?}: capacity {}",
                out.capacity()
            );
            // Exactly at the limit is accepted, and still within it.
            let mut out = Vec::new();
            decompress_into(*codec, payload, limit + 1, &mut out, &mut None).unwrap();
            assert_eq!(out.len(), limit + 1, "{codec:?}");
            assert!(
                out.capacity() <= limit + 1,
                "{codec:?}: capacity {}",
                out.capacity()
            );
        }
    }

    #[test]
    fn snappy_length_claims_beyond_the_block_are_refused_before_allocating() {
        // A 13-byte raw snappy block declaring 64 MiB made the keyless scan allocate and zero 64 MiB
        // before the decoder noticed the block was garbage.
        let mut block = vec![0x80, 0x80, 0x80, 0x20]; // varint 64 MiB
        block.extend_from_slice(&[0; 9]);
        let mut out = Vec::new();
        let res = decompress_into(Compression::Snappy, &block, 100 << 20, &mut out, &mut None);
        assert!(matches!(res, Err(BatchError::Decompression(_))), "{res:?}");
        assert_eq!(out.capacity(), 0);
        // The densest real block (zeros) stays within the expansion bound and is read.
        let zeros = vec![0u8; 1 << 20];
        let dense = snap::raw::Encoder::new().compress_vec(&zeros).unwrap();
        assert!(dense.len() * SNAPPY_MAX_EXPANSION >= zeros.len());
        let mut out = Vec::new();
        decompress_into(Compression::Snappy, &dense, 2 << 20, &mut out, &mut None).unwrap();
        assert_eq!(out, zeros);
        // A failed block leaves nothing behind in a reused buffer.
        let mut out = b"kept".to_vec();
        let mut bad = snap::raw::Encoder::new()
            .compress_vec(&[7u8; 1000])
            .unwrap();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        bad.truncate(last - 2);
        assert!(decompress_into(Compression::Snappy, &bad, 1 << 20, &mut out, &mut None).is_err());
        assert_eq!(out, b"kept");
    }

    #[test]
    fn exact_limit_is_accepted() {
        let spec = Spec::default();
        let bytes = encode(&spec, KCompression::Zstd);
        let plain_len = plain().len() - BATCH_HEADER_LEN;
        assert!(record_timestamps(&bytes, plain_len).is_ok());
        assert!(matches!(
            record_timestamps(&bytes, plain_len - 1),
            Err(BatchError::DecompressionLimit)
        ));
    }

    #[test]
    fn raw_snappy_without_xerial_framing_is_read() {
        let spec = Spec::default();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode_with_custom_compression(
            &mut buf,
            &records(&spec),
            &RecordEncodeOptions {
                version: 2,
                compression: KCompression::Snappy,
            },
            Some(|raw: &mut BytesMut, out: &mut BytesMut, _c| {
                let compressed = snap::raw::Encoder::new().compress_vec(raw)?;
                out.extend_from_slice(&compressed);
                Ok(())
            }),
        )
        .unwrap();
        let bytes = buf.to_vec();
        // The xerial magic must be absent, or this test would not test raw snappy.
        assert_ne!(bytes[BATCH_HEADER_LEN..BATCH_HEADER_LEN + 8], XERIAL_MAGIC);
        validate_client_batch(&bytes).unwrap();
        assert_eq!(
            record_timestamps(&bytes, 1 << 20).unwrap(),
            expected_timestamps(&spec)
        );
        // A raw block claiming more than the limit is refused before allocating.
        assert!(matches!(
            record_timestamps(&bytes, 10),
            Err(BatchError::DecompressionLimit)
        ));
    }

    #[test]
    fn garbage_compressed_payload_is_an_error() {
        for (kc, c) in ALL_CODECS {
            if c == Compression::None {
                continue;
            }
            let mut bytes = encode(&Spec::default(), kc);
            for b in &mut bytes[BATCH_HEADER_LEN..] {
                *b = 0xA5;
            }
            fix_crc(&mut bytes);
            // The produce path does not decompress, so the batch passes validation...
            validate_client_batch(&bytes).unwrap();
            // ...but reading timestamps reports the damage.
            let err = record_timestamps(&bytes, 1 << 20).unwrap_err();
            assert!(
                matches!(
                    err,
                    BatchError::Decompression(_)
                        | BatchError::InvalidRecord(_)
                        | BatchError::DecompressionLimit
                ),
                "{c:?}: {err:?}"
            );
        }
    }

    #[test]
    fn crc_mismatch_is_corrupt_message() {
        let good = plain();
        for at in [CRC_OFFSET, ATTRIBUTES_OFFSET + 1, 40, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            assert!(
                matches!(validate_client_batch(&bad), Err(BatchError::CorruptMessage)),
                "flip at {at}"
            );
        }
        // The leader epoch is outside the CRC on purpose (the broker rewrites it).
        let mut patched = good.clone();
        patched[13] ^= 0xff;
        validate_client_batch(&patched).unwrap();
    }

    #[test]
    fn client_batches_must_have_base_offset_zero() {
        let mut b = plain();
        b[7] = 5;
        assert!(matches!(
            validate_client_batch(&b),
            Err(BatchError::InvalidRecord(m)) if m.contains("base offset")
        ));
        // Stored batches carry real offsets.
        assert_eq!(validate_stored_batch(&b).unwrap().base_offset, 5);
    }

    #[test]
    fn stored_batch_validation() {
        let good = plain();
        let mut segment = good.clone();
        segment.extend_from_slice(&good);
        segment.extend_from_slice(&good[..20]);
        let h = validate_stored_batch(&segment).unwrap();
        assert_eq!(h.total_size(), good.len());
        let second = validate_stored_batch(&segment[h.total_size()..]).unwrap();
        assert_eq!(second, h);
        assert!(matches!(
            validate_stored_batch(&segment[2 * good.len()..]),
            Err(BatchError::Truncated)
        ));
        let mut torn = good.clone();
        torn[good.len() - 1] ^= 0x40;
        assert!(matches!(
            validate_stored_batch(&torn),
            Err(BatchError::CorruptMessage)
        ));
        assert!(matches!(
            validate_stored_batch(&good[..good.len() - 1]),
            Err(BatchError::Truncated)
        ));
        // Control batches are fine on disk.
        let spec = Spec {
            count: 1,
            producer_id: 7,
            producer_epoch: 0,
            base_sequence: 0,
            control: true,
            transactional: true,
            ..Spec::default()
        };
        assert!(validate_stored_batch(&encode(&spec, KCompression::None))
            .unwrap()
            .is_control());
    }

    #[test]
    fn truncated_batches_are_rejected() {
        let good = plain();
        for len in 0..good.len() {
            let err = validate_client_batch(&good[..len]).unwrap_err();
            assert!(matches!(err, BatchError::Truncated), "len {len}: {err:?}");
            assert!(matches!(
                record_timestamps(&good[..len], 1 << 20),
                Err(BatchError::Truncated)
            ));
        }
        assert!(matches!(
            BatchHeader::parse(&good[..60]),
            Err(BatchError::Truncated)
        ));
    }

    #[test]
    fn trailing_bytes_or_second_batch_are_invalid_record() {
        let good = plain();
        let mut extra = good.clone();
        extra.push(0);
        assert!(matches!(
            validate_client_batch(&extra),
            Err(BatchError::InvalidRecord(_))
        ));
        let mut two = good.clone();
        two.extend_from_slice(&good);
        assert!(matches!(
            validate_client_batch(&two),
            Err(BatchError::InvalidRecord(_))
        ));
        // record_timestamps reads the first batch of a longer buffer.
        assert_eq!(record_timestamps(&two, 1 << 20).unwrap().len(), 3);
    }

    #[test]
    fn odd_batch_lengths() {
        let good = plain();
        for bad_len in [i32::MIN, -1, 0, 48] {
            let mut b = good.clone();
            set_i32(&mut b, 8, bad_len);
            assert!(matches!(
                BatchHeader::parse(&b),
                Err(BatchError::CorruptMessage)
            ));
            assert!(matches!(
                validate_client_batch(&b),
                Err(BatchError::CorruptMessage)
            ));
        }
        // A length claiming more than is there.
        let mut b = good.clone();
        set_i32(&mut b, 8, i32::MAX);
        assert!(matches!(
            validate_client_batch(&b),
            Err(BatchError::Truncated)
        ));
        // A shorter length that cuts into the records: framing no longer fits.
        let mut b = good.clone();
        b.truncate(b.len() - 3);
        set_batch_length(&mut b);
        fix_crc(&mut b);
        assert!(matches!(
            validate_client_batch(&b),
            Err(BatchError::InvalidRecord(_))
        ));
        // The minimal legal length parses.
        let mut b = good[..BATCH_HEADER_LEN].to_vec();
        set_batch_length(&mut b);
        assert_eq!(BatchHeader::parse(&b).unwrap().total_size(), 61);
    }

    #[test]
    fn old_magic_is_unsupported() {
        let mut b = plain();
        b[MAGIC_OFFSET] = 1;
        assert!(matches!(
            validate_client_batch(&b),
            Err(BatchError::UnsupportedMagic(1))
        ));
        // A v0 message is shorter than a v2 header; the magic still decides.
        let mut v0 = vec![0u8; 30];
        v0[11] = 18;
        assert!(matches!(
            BatchHeader::parse(&v0),
            Err(BatchError::UnsupportedMagic(0))
        ));
        assert!(matches!(
            validate_client_batch(&v0),
            Err(BatchError::UnsupportedMagic(0))
        ));
    }

    #[test]
    fn control_batch_is_refused_from_clients() {
        let spec = Spec {
            count: 1,
            producer_id: 7,
            producer_epoch: 0,
            base_sequence: 0,
            control: true,
            transactional: true,
            ..Spec::default()
        };
        let bytes = encode(&spec, KCompression::None);
        assert!(BatchHeader::parse(&bytes).unwrap().is_control());
        assert!(matches!(
            validate_client_batch(&bytes),
            Err(BatchError::InvalidRecord(m)) if m.contains("control")
        ));
        // Stored control batches are still readable.
        assert_eq!(record_timestamps(&bytes, 1 << 20).unwrap().len(), 1);
    }

    #[test]
    fn record_count_rules() {
        let good = plain();
        for (count, delta) in [(0, -1), (-1, -2), (2, 2), (4, 2), (2, 1), (4, 3)] {
            let mut b = good.clone();
            set_i32(&mut b, 57, count);
            set_i32(&mut b, 23, delta);
            fix_crc(&mut b);
            let err = validate_client_batch(&b).unwrap_err();
            assert!(
                matches!(err, BatchError::InvalidRecord(_)),
                "count {count} delta {delta}: {err:?}"
            );
        }
    }

    #[test]
    fn record_framing_mismatches() {
        let good = plain();
        // First record's length varint claims one byte more than the record has.
        let mut b = good.clone();
        let first_len = b[BATCH_HEADER_LEN] as i8 as i32 >> 1;
        b[BATCH_HEADER_LEN] = zigzag(first_len + 1)[0];
        fix_crc(&mut b);
        assert!(matches!(
            validate_client_batch(&b),
            Err(BatchError::InvalidRecord(_))
        ));
        // ...or one byte less.
        let mut b = good.clone();
        b[BATCH_HEADER_LEN] = zigzag(first_len - 1)[0];
        fix_crc(&mut b);
        assert!(matches!(
            validate_client_batch(&b),
            Err(BatchError::InvalidRecord(_))
        ));
        // A negative record length.
        let mut b = good.clone();
        b[BATCH_HEADER_LEN] = zigzag(-1)[0];
        fix_crc(&mut b);
        assert!(matches!(
            validate_client_batch(&b),
            Err(BatchError::InvalidRecord(_))
        ));
        // Bytes after the last record, with batchLength and CRC consistent.
        let mut b = good.clone();
        b.extend_from_slice(&[0, 0]);
        set_batch_length(&mut b);
        fix_crc(&mut b);
        assert!(matches!(
            validate_client_batch(&b),
            Err(BatchError::InvalidRecord(m)) if m.contains("remaining")
        ));
        // An extra well-formed record beyond record_count.
        let mut b = good.clone();
        let mut rec = vec![0u8]; // attributes
        rec.extend(zigzag(0)); // timestamp delta
        rec.extend(zigzag(3)); // offset delta
        rec.extend(zigzag(-1)); // null key
        rec.extend(zigzag(-1)); // null value
        rec.extend(zigzag(0)); // no headers
        b.extend(zigzag(rec.len() as i32));
        b.extend(&rec);
        set_batch_length(&mut b);
        fix_crc(&mut b);
        assert!(matches!(
            validate_client_batch(&b),
            Err(BatchError::InvalidRecord(_))
        ));
        // ...which becomes valid once count and last offset delta say 4.
        set_i32(&mut b, 57, 4);
        set_i32(&mut b, 23, 3);
        fix_crc(&mut b);
        validate_client_batch(&b).unwrap();
        assert_eq!(record_timestamps(&b, 1 << 20).unwrap().len(), 4);
    }

    #[test]
    fn offset_delta_out_of_order_is_invalid() {
        let mut b = Vec::from(&plain()[..BATCH_HEADER_LEN]);
        for delta in [0, 2] {
            let mut rec = vec![0u8];
            rec.extend(zigzag(0));
            rec.extend(zigzag(delta));
            rec.extend(zigzag(-1));
            rec.extend(zigzag(-1));
            rec.extend(zigzag(0));
            b.extend(zigzag(rec.len() as i32));
            b.extend(&rec);
        }
        set_i32(&mut b, 57, 2);
        set_i32(&mut b, 23, 1);
        set_batch_length(&mut b);
        fix_crc(&mut b);
        assert!(matches!(
            validate_client_batch(&b),
            Err(BatchError::InvalidRecord(m)) if m.contains("offset delta")
        ));
        // A stored (e.g. compacted) batch may skip offsets; timestamps still come out.
        let base = BatchHeader::parse(&b).unwrap().base_timestamp;
        assert_eq!(
            record_timestamps(&b, 1 << 20).unwrap(),
            vec![(0, base), (2, base)]
        );
    }

    #[test]
    fn overlong_varint_is_invalid() {
        let mut b = Vec::from(&plain()[..BATCH_HEADER_LEN]);
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        set_i32(&mut b, 57, 1);
        set_i32(&mut b, 23, 0);
        set_batch_length(&mut b);
        fix_crc(&mut b);
        assert!(matches!(
            validate_client_batch(&b),
            Err(BatchError::InvalidRecord(_))
        ));
    }

    #[test]
    fn unknown_compression_codec() {
        for id in 5..=7i16 {
            let mut b = plain();
            b[ATTRIBUTES_OFFSET + 1] = (b[ATTRIBUTES_OFFSET + 1] & !0x07) | id as u8;
            fix_crc(&mut b);
            assert!(matches!(
                validate_client_batch(&b),
                Err(BatchError::UnsupportedCompression(x)) if x == id
            ));
            assert!(matches!(
                record_timestamps(&b, 1 << 20),
                Err(BatchError::UnsupportedCompression(x)) if x == id
            ));
        }
    }

    #[test]
    fn idempotent_batch_needs_a_sequence() {
        let spec = Spec {
            producer_id: 9,
            producer_epoch: 0,
            base_sequence: 0,
            ..Spec::default()
        };
        let mut b = encode(&spec, KCompression::None);
        validate_client_batch(&b).unwrap();
        set_i32(&mut b, 53, -1);
        fix_crc(&mut b);
        assert!(matches!(
            validate_client_batch(&b),
            Err(BatchError::InvalidRecord(m)) if m.contains("sequence")
        ));
    }

    #[test]
    fn assign_offsets_patches_and_keeps_crc_valid() {
        let spec = Spec {
            count: 5,
            producer_id: 11,
            producer_epoch: 2,
            base_sequence: 100,
            ..Spec::default()
        };
        for (kc, c) in ALL_CODECS {
            for log_append in [None, Some(1_800_000_000_123)] {
                let mut b = encode(&spec, kc);
                assign_offsets(&mut b, 1000, 7, log_append);
                let h = validate_stored_batch(&b).unwrap_or_else(|e| panic!("{c:?}: {e}"));
                assert_eq!(h.base_offset, 1000);
                assert_eq!(h.last_offset(), 1004);
                assert_eq!(h.partition_leader_epoch, 7);
                assert_eq!(h.compression().unwrap(), c);
                assert_eq!(h.timestamp_type_is_log_append(), log_append.is_some());

                // An independent decoder (which checks the CRC) agrees.
                let mut bytes = Bytes::from(b.clone());
                let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
                assert_eq!(set.records.len(), 5);
                for (i, r) in set.records.iter().enumerate() {
                    assert_eq!(r.offset, 1000 + i as i64);
                    assert_eq!(r.partition_leader_epoch, 7);
                    assert_eq!(r.sequence, 100 + i as i32);
                    assert_eq!(r.producer_id, 11);
                    let want = if log_append.is_some() {
                        TimestampType::LogAppend
                    } else {
                        TimestampType::Creation
                    };
                    assert_eq!(r.timestamp_type, want);
                }

                let ts = record_timestamps(&b, 1 << 20).unwrap();
                let expected: Vec<(i64, i64)> = expected_timestamps(&spec)
                    .into_iter()
                    .map(|(o, t)| (o + 1000, log_append.unwrap_or(t)))
                    .collect();
                assert_eq!(ts, expected);
                match log_append {
                    Some(t) => assert_eq!(h.max_timestamp, t),
                    None => assert_eq!(h.max_timestamp, 1_700_000_000_000 + 51),
                }
            }
        }
    }

    #[test]
    fn assign_offsets_ignores_too_short_buffers_and_excess_bytes() {
        let mut short = vec![7u8; 60];
        assign_offsets(&mut short, 5, 5, Some(5));
        assert_eq!(short, vec![7u8; 60]);

        // Bytes past the declared batch do not enter the CRC.
        let mut b = plain();
        let len = b.len();
        b.extend_from_slice(&[1, 2, 3]);
        assign_offsets(&mut b, 50, 1, None);
        assert_eq!(validate_stored_batch(&b[..len]).unwrap().base_offset, 50);
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn check_all(bytes: &[u8]) {
            let _ = BatchHeader::parse(bytes).map(|h| {
                let _ = (
                    h.total_size(),
                    h.last_offset(),
                    h.last_sequence(),
                    h.compression(),
                );
            });
            let _ = validate_client_batch(bytes);
            let _ = validate_stored_batch(bytes);
            let _ = record_timestamps(bytes, 64 * 1024);
            let mut copy = bytes.to_vec();
            assign_offsets(&mut copy, i64::MAX, i32::MIN, Some(i64::MIN));
        }

        fn valid_batches() -> Vec<Vec<u8>> {
            let spec = Spec {
                count: 6,
                producer_id: 3,
                producer_epoch: 1,
                base_sequence: 0,
                ..Spec::default()
            };
            ALL_CODECS
                .iter()
                .map(|(kc, _)| encode(&spec, *kc))
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn arbitrary_bytes_never_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..400),
            ) {
                check_all(&bytes);
            }

            #[test]
            fn arbitrary_body_behind_valid_header_never_panics(
                body in proptest::collection::vec(any::<u8>(), 0..300),
                codec in 0u8..5,
                count in -2i32..8,
            ) {
                let mut b = plain()[..BATCH_HEADER_LEN].to_vec();
                b[ATTRIBUTES_OFFSET + 1] = codec;
                set_i32(&mut b, 57, count);
                set_i32(&mut b, 23, count - 1);
                b.extend_from_slice(&body);
                set_batch_length(&mut b);
                fix_crc(&mut b);
                check_all(&b);
            }

            #[test]
            fn mutated_batches_never_panic(
                which in 0usize..5,
                edits in proptest::collection::vec(
                    (any::<prop::sample::Index>(), any::<u8>()),
                    1..6,
                ),
                cut in any::<prop::sample::Index>(),
                do_cut in any::<bool>(),
                recrc in any::<bool>(),
            ) {
                let mut b = valid_batches().swap_remove(which);
                for (idx, byte) in edits {
                    let i = idx.index(b.len());
                    b[i] = byte;
                }
                if do_cut {
                    b.truncate(cut.index(b.len() + 1));
                }
                if recrc && b.len() > ATTRIBUTES_OFFSET {
                    fix_crc(&mut b);
                }
                check_all(&b);
            }
        }
    }
}
