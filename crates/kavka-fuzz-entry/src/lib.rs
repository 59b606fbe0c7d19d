//! The entry points of Kavka's coverage-guided fuzz targets (`fuzz/`, run with `cargo fuzz` on a
//! nightly-capable toolchain) and of the stable replay test (`tests/corpus.rs`, run by
//! `cargo test --workspace`), which feeds them every committed corpus and regression file. Both
//! call exactly these functions, so what CI replays is what the fuzzer explored.
//!
//! Each entry drives the broker's own library code for one kind of hostile input and panics
//! only when that code breaks an invariant; the code itself must never panic, and must never
//! allocate beyond its bounds (the fuzzer runs with `-malloc_limit_mb=256 -rss_limit_mb=512`,
//! the replay test measures every input's peak).

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind};
use kavka_storage::batch::{
    assign_offsets, decompression_limit, keyless_records, record_timestamps, validate_client_batch,
    validate_stored_batch, BatchHeader, Compression, BATCH_HEADER_LEN,
};
use kavka_wire::DecodeError;

/// A fuzz target's entry: takes one input, panics only on a broken invariant.
pub type Entry = fn(&[u8]);

/// The fuzz targets by name (the directory names under `fuzz/corpus/`).
pub const TARGETS: &[(&str, Entry)] = &[
    ("request_frame", request_frame),
    ("record_batch", record_batch),
];

/// `max.message.bytes` the record-batch entry assumes: Kafka's (and Kavka's) default.
pub const MAX_MESSAGE_BYTES: usize = 1_048_588;

/// A request frame (the bytes after the 4-byte size prefix) as the broker's dispatch and SASL
/// gate treat it: header peek, schema validation, `kafka-protocol` decode
/// ([`kavka_wire::decode_request`]); then each record batch of a Produce request goes down the
/// produce path ([`record_batch`]'s checks), and an Envelope's inner request is handled like a
/// frame of its own, as `serve_envelope` does.
///
/// Panics when the schema walk accepts a frame the decoder refuses or reads differently
/// ([`DecodeError::Disagreement`]): the walk's allocation bound holds only if both read the
/// same layout.
pub fn request_frame(data: &[u8]) {
    request_frame_at_depth(data, 0);
}

fn request_frame_at_depth(data: &[u8], depth: u8) {
    let peeked = kavka_wire::peek_header(data);
    match kavka_wire::decode_request(Bytes::copy_from_slice(data)) {
        Ok(decoded) => {
            assert_eq!(
                Some(decoded.info),
                peeked,
                "decoded header differs from the peek"
            );
            match &decoded.request {
                RequestKind::Produce(produce) => {
                    for topic in &produce.topic_data {
                        for partition in &topic.partition_data {
                            if let Some(records) = &partition.records {
                                produce_path(records);
                            }
                        }
                    }
                }
                // The broker unwraps one level (only controller-bound APIs are allowed inside).
                RequestKind::Envelope(envelope) if depth == 0 => {
                    let inner = kavka_wire::peek_header(&envelope.request_data)
                        .and_then(|h| ApiKey::try_from(h.api_key).ok());
                    if inner.is_some_and(|k| k != ApiKey::Envelope) {
                        request_frame_at_depth(&envelope.request_data, depth + 1);
                    }
                }
                _ => {}
            }
        }
        Err(e @ DecodeError::Disagreement { .. }) => panic!("{e}"),
        Err(_) => {}
    }
}

/// One partition's `records` of a Produce request, as the produce path treats it, twice: as
/// given, and with its CRC-32C recomputed (so that mutations get past the checksum to the
/// record-level checks).
pub fn record_batch(data: &[u8]) {
    produce_path(data);
    if data.len() >= BATCH_HEADER_LEN {
        let crc = crc32c::crc32c(&data[21..]);
        if data[17..21] != crc.to_be_bytes() {
            let mut fixed = data.to_vec();
            fixed[17..21].copy_from_slice(&crc.to_be_bytes());
            produce_path(&fixed);
        }
    }
}

/// The produce handler's look at the batch header (codec gate, timestamps), the keyless-record
/// scan of compacted topics (decompressing every codec, bounded by [`decompression_limit`]),
/// the log's `validate_client_batch`, and for an accepted batch the offset assignment and the
/// checks a stored batch later meets (follower append, ListOffsets by timestamp).
fn produce_path(records: &[u8]) {
    let limit = decompression_limit(MAX_MESSAGE_BYTES);
    let header = BatchHeader::parse(records).ok();
    let codec = header.map(|h| h.compression());
    let keyless = keyless_records(records, limit);
    let _ = validate_stored_batch(records);
    if records.len() > MAX_MESSAGE_BYTES {
        return; // PartitionLog::append refuses it with MESSAGE_TOO_LARGE before validating
    }
    let Ok(accepted) = validate_client_batch(records) else {
        return;
    };
    // What validate_client_batch promises about an accepted batch.
    assert_eq!(header, Some(accepted));
    assert_eq!(accepted.total_size(), records.len());
    assert_eq!(accepted.base_offset, 0);
    assert!(accepted.record_count >= 1);
    assert_eq!(
        i64::from(accepted.last_offset_delta) + 1,
        i64::from(accepted.record_count)
    );
    assert!(!accepted.is_control());
    let codec = match codec {
        Some(Ok(codec)) => codec,
        other => panic!("accepted batch with codec {other:?}"),
    };
    if codec == Compression::None {
        // The records were walked by the validation, so the scans over them must succeed.
        let keyless = keyless.expect("keyless scan of an accepted uncompressed batch");
        assert!(keyless
            .iter()
            .all(|&i| (0..accepted.record_count).contains(&i)));
    }
    // PartitionLog::append: offsets, leader epoch and LogAppendTime patched in place.
    let mut stored = records.to_vec();
    assign_offsets(&mut stored, 1_000, 7, Some(1_700_000_000_000));
    let stored_header =
        validate_stored_batch(&stored).expect("an accepted batch passes the stored-batch check");
    assert_eq!(stored_header.base_offset, 1_000);
    assert_eq!(stored_header.partition_leader_epoch, 7);
    assert_eq!(stored_header.max_timestamp, 1_700_000_000_000);
    assert_eq!(stored_header.record_count, accepted.record_count);
    assert_eq!(
        stored_header.last_offset(),
        1_000 + i64::from(accepted.last_offset_delta)
    );
    match record_timestamps(&stored, limit) {
        Ok(timestamps) if codec == Compression::None => {
            assert_eq!(timestamps.len(), accepted.record_count as usize);
            assert!(timestamps
                .iter()
                .enumerate()
                .all(|(i, &(offset, ts))| offset == 1_000 + i as i64 && ts == 1_700_000_000_000));
        }
        Err(e) if codec == Compression::None => {
            panic!("timestamps of an accepted uncompressed batch: {e}")
        }
        _ => {}
    }
}
