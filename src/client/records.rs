//! Record batches on the client side: encoding what a producer sends, decoding what a fetch returns.

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kavka_storage::batch::BatchHeader;

use super::ClientError;

/// The most records one fetched batch may claim: the decoder reserves room for the claimed count before
/// reading, so a broken or hostile broker must not choose it freely.
const MAX_RECORDS_PER_BATCH: i32 = 1 << 20;

/// One record to send.
#[derive(Clone, Debug, Default)]
pub struct OutgoingRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch (CreateTime).
    pub timestamp: i64,
}

impl OutgoingRecord {
    /// The bytes the record adds to a batch, roughly (for batch.size accounting).
    pub fn size_estimate(&self) -> usize {
        let h: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 4)
            .sum();
        self.key.as_ref().map_or(0, |k| k.len())
            + self.value.as_ref().map_or(0, |v| v.len())
            + h
            + 12
    }
}

/// A record read from a partition.
#[derive(Clone, Debug)]
pub struct ConsumedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampKind,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampKind {
    CreateTime,
    LogAppendTime,
}

/// Kafka's `compression.type` values.
pub fn parse_compression(name: &str) -> Result<Compression, ClientError> {
    match name.trim().to_ascii_lowercase().as_str() {
        "none" | "" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        other => Err(ClientError::Config(format!(
            "compression.type: unknown codec {other:?} (none, gzip, snappy, lz4 or zstd)"
        ))),
    }
}

/// One v2 batch of `records` (offsets from 0, as a producer sends them).
pub fn encode_batch(
    records: &[OutgoingRecord],
    compression: Compression,
) -> Result<Bytes, ClientError> {
    let base_timestamp = records.first().map_or(0, |r| r.timestamp);
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // One batch needs a constant `offset - sequence`, and the header's base sequence is the first
            // record's: -1, 0, 1, ... makes one batch with base sequence -1 (not idempotent).
            sequence: i as i32 - 1,
            timestamp: if r.timestamp > 0 {
                r.timestamp
            } else {
                base_timestamp
            },
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect::<IndexMap<_, _>>(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| ClientError::Protocol(format!("cannot encode a record batch: {e}")))?;
    Ok(buf.freeze())
}

/// The data records of a fetched record set at or after `from_offset`, in offset order. Control batches
/// (transaction markers) are skipped; a batch cut off at the end of the response is left for the next
/// fetch. Returns the records and the offset to fetch next.
pub fn decode_records(
    mut data: Bytes,
    from_offset: i64,
) -> Result<(Vec<ConsumedRecord>, i64), ClientError> {
    let mut out = Vec::new();
    let mut next = from_offset;
    while !data.is_empty() {
        let header = match BatchHeader::parse(&data) {
            Ok(h) => h,
            Err(kavka_storage::batch::BatchError::Truncated) => break,
            Err(e) => return Err(ClientError::Protocol(format!("fetched records: {e}"))),
        };
        let size = header.total_size();
        if size > data.len() {
            break;
        }
        let batch = data.split_to(size);
        if header.last_offset() < from_offset {
            continue;
        }
        next = next.max(header.last_offset() + 1);
        if header.is_control() {
            continue;
        }
        if !(0..=MAX_RECORDS_PER_BATCH).contains(&header.record_count) {
            return Err(ClientError::Protocol(format!(
                "fetched batch at offset {} claims {} records",
                header.base_offset, header.record_count
            )));
        }
        let mut batch = batch;
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| {
            ClientError::Protocol(format!(
                "fetched batch at offset {}: {e}",
                header.base_offset
            ))
        })?;
        for r in set.records {
            if r.offset < from_offset {
                continue;
            }
            out.push(ConsumedRecord {
                offset: r.offset,
                timestamp: r.timestamp,
                timestamp_type: match r.timestamp_type {
                    TimestampType::Creation => TimestampKind::CreateTime,
                    TimestampType::LogAppend => TimestampKind::LogAppendTime,
                },
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            });
        }
    }
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &str) -> OutgoingRecord {
        OutgoingRecord {
            key: Some(Bytes::from(key.to_string())),
            value: Some(Bytes::from(value.to_string())),
            headers: vec![("h".into(), Some(Bytes::from_static(b"v")))],
            timestamp: 1_700_000_000_000,
        }
    }

    /// A batch as the broker stores it: offsets moved to `base`.
    fn at_offset(batch: &Bytes, base: i64) -> Vec<u8> {
        let mut b = batch.to_vec();
        b[0..8].copy_from_slice(&base.to_be_bytes());
        b
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let records = vec![record("k1", "v1"), record("k2", "v2")];
            let batch = encode_batch(&records, parse_compression(codec).unwrap()).unwrap();
            let header = BatchHeader::parse(&batch).unwrap();
            assert_eq!(header.total_size(), batch.len(), "{codec}: one batch");
            assert_eq!((header.record_count, header.base_sequence), (2, -1));
            let (got, next) = decode_records(Bytes::from(at_offset(&batch, 10)), 0).unwrap();
            assert_eq!(next, 12, "{codec}");
            assert_eq!(got.len(), 2, "{codec}");
            assert_eq!(got[1].offset, 11);
            assert_eq!(got[1].key.as_deref(), Some(&b"k2"[..]));
            assert_eq!(got[0].value.as_deref(), Some(&b"v1"[..]));
            assert_eq!(got[0].headers[0].0, "h");
            assert_eq!(got[0].timestamp, 1_700_000_000_000);
        }
    }

    #[test]
    fn records_before_the_fetch_offset_and_partial_batches_are_skipped() {
        let batch = encode_batch(&[record("a", "1"), record("b", "2")], Compression::None).unwrap();
        let mut data = at_offset(&batch, 0);
        data.extend_from_slice(&at_offset(&batch, 2));
        let partial = at_offset(&batch, 4);
        data.extend_from_slice(&partial[..partial.len() - 3]);
        let (got, next) = decode_records(Bytes::from(data), 1).unwrap();
        assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(next, 4);
    }

    #[test]
    fn unknown_codec_is_named() {
        assert!(parse_compression("brotli")
            .unwrap_err()
            .to_string()
            .contains("brotli"));
    }
}
