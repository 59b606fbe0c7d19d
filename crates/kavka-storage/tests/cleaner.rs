//! Tests of the record-level log cleaner (`kavka_storage::cleaner`). Input batches are written by
//! `kafka-protocol`'s encoder and the output is read back with its decoder, an implementation
//! independent of the cleaner's.

use std::collections::HashMap;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KCompression, Record, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType,
};
use kavka_storage::batch::{validate_stored_batch, BatchError, BatchHeader};
use kavka_storage::cleaner::{
    clean_batches, BatchCleaner, CleanOptions, CleanerError, MapFill, OffsetMap,
};

const ALL_CODECS: [KCompression; 5] = [
    KCompression::None,
    KCompression::Gzip,
    KCompression::Snappy,
    KCompression::Lz4,
    KCompression::Zstd,
];
const T0: i64 = 1_700_000_000_000;
const LIMIT: usize = 16 << 20;

/// One record to encode: key, value, timestamp.
type Rec<'a> = (Option<&'a str>, Option<&'a str>, i64);

#[derive(Clone, Copy)]
struct BatchSpec {
    codec: KCompression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    leader_epoch: i32,
    transactional: bool,
    control: bool,
    log_append: bool,
}

impl Default for BatchSpec {
    fn default() -> Self {
        BatchSpec {
            codec: KCompression::None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            leader_epoch: 3,
            transactional: false,
            control: false,
            log_append: false,
        }
    }
}

fn batch_with(spec: BatchSpec, base_offset: i64, recs: &[Rec]) -> Vec<u8> {
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, (k, v, ts))| {
            let mut record = Record {
                transactional: spec.transactional,
                control: spec.control,
                delete_horizon: false,
                partition_leader_epoch: spec.leader_epoch,
                producer_id: spec.producer_id,
                producer_epoch: spec.producer_epoch,
                timestamp_type: if spec.log_append {
                    TimestampType::LogAppend
                } else {
                    TimestampType::Creation
                },
                offset: base_offset + i as i64,
                // The encoder starts a new batch whenever offset - sequence changes, so even
                // non-idempotent records (base -1) count up from the base.
                sequence: spec.base_sequence.wrapping_add(i as i32),
                timestamp: *ts,
                key: k.map(|k| Bytes::copy_from_slice(k.as_bytes())),
                value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                headers: Default::default(),
            };
            record.headers.insert(
                StrBytes::from_string(format!("i{i}")),
                Some(Bytes::from(format!("hv{i}"))),
            );
            record
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: spec.codec,
        },
    )
    .expect("encode");
    let mut out = buf.to_vec();
    let h = BatchHeader::parse(&out).unwrap();
    assert_eq!(h.base_offset, base_offset);
    assert_eq!(h.total_size(), out.len(), "one batch");
    if spec.log_append {
        // The encoder does not write the timestamp type: set it, with the broker's append time as
        // max timestamp, as the broker does.
        out[22] |= 0x08;
        out[35..43].copy_from_slice(&(T0 + 777).to_be_bytes());
        let crc = crc32c::crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    out
}

fn batch(base_offset: i64, recs: &[Rec]) -> Vec<u8> {
    batch_with(BatchSpec::default(), base_offset, recs)
}

/// Every output batch has a valid CRC; returns the headers and the decoded records.
fn check_output(bytes: &[u8]) -> (Vec<BatchHeader>, Vec<Record>) {
    let mut headers = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = validate_stored_batch(&bytes[pos..]).expect("valid output batch");
        headers.push(h);
        pos += h.total_size();
    }
    let sets = RecordBatchDecoder::decode_all(&mut Bytes::copy_from_slice(bytes)).expect("decode");
    assert_eq!(sets.len(), headers.len());
    (headers, sets.into_iter().flat_map(|s| s.records).collect())
}

fn kv(r: &Record) -> (i64, Option<String>, Option<String>) {
    (
        r.offset,
        r.key
            .as_ref()
            .map(|k| String::from_utf8(k.to_vec()).unwrap()),
        r.value
            .as_ref()
            .map(|v| String::from_utf8(v.to_vec()).unwrap()),
    )
}

fn owned(offset: i64, k: &str, v: Option<&str>) -> (i64, Option<String>, Option<String>) {
    (offset, Some(k.to_string()), v.map(str::to_string))
}

fn map_over(segments: &[(&[u8], i64)], start: i64) -> OffsetMap {
    let mut map = OffsetMap::new(1 << 20, 0.9).unwrap();
    for (bytes, end) in segments {
        assert_eq!(
            map.add_segment(bytes, start, *end, LIMIT).unwrap(),
            MapFill::Complete
        );
    }
    map
}

#[test]
fn latest_per_key_is_kept_across_batches_and_segments() {
    let mut seg1 = batch(
        0,
        &[
            (Some("a"), Some("a0"), T0),
            (Some("b"), Some("b0"), T0 + 1),
            (Some("c"), Some("c0"), T0 + 2),
        ],
    );
    seg1.extend(batch(
        3,
        &[
            (Some("a"), Some("a1"), T0 + 3),
            (Some("d"), Some("d0"), T0 + 9),
        ],
    ));
    let seg2 = batch(
        5,
        &[
            (Some("b"), Some("b1"), T0 + 5),
            (Some("e"), Some("e0"), T0 + 6),
            (Some("a"), Some("a2"), T0 + 4),
        ],
    );
    let map = map_over(&[(&seg1, 5), (&seg2, 8)], 0);
    assert_eq!(map.latest_offset(), 7);
    assert_eq!(map.len(), 5);
    assert_eq!(map.get(b"a"), Some(7));
    assert_eq!(map.get(b"zz"), None);

    let opts = CleanOptions::new(T0 + 100);
    let out1 = clean_batches(&seg1, &map, &opts).unwrap();
    let (headers, records) = check_output(&out1.bytes);
    // Offsets keep their gaps; the first batch keeps its base and last offset.
    assert_eq!(
        records.iter().map(kv).collect::<Vec<_>>(),
        vec![owned(2, "c", Some("c0")), owned(4, "d", Some("d0"))]
    );
    assert_eq!((headers[0].base_offset, headers[0].last_offset()), (0, 2));
    assert_eq!(headers[0].record_count, 1);
    assert_eq!(headers[0].partition_leader_epoch, 3);
    assert_eq!(headers[0].max_timestamp, T0 + 2);
    assert_eq!((headers[1].base_offset, headers[1].last_offset()), (3, 4));
    // Timestamps and headers survive.
    assert_eq!(records[0].timestamp, T0 + 2);
    assert_eq!(records[1].timestamp, T0 + 9);
    assert_eq!(records[0].headers.len(), 1);
    assert!(records[0]
        .headers
        .contains_key(&StrBytes::from_static_str("i2")));
    let s = out1.summary;
    assert_eq!(
        (s.records_read, s.records_retained, s.records_removed),
        (5, 2, 3)
    );
    assert_eq!((s.batches_read, s.batches_retained), (2, 2));
    assert_eq!(s.max_timestamp, T0 + 9);
    assert_eq!(s.offset_of_max_timestamp, 4);
    assert_eq!(s.last_offset, 4);
    assert_eq!(s.bytes_written, out1.bytes.len() as u64);

    let out2 = clean_batches(&seg2, &map, &opts).unwrap();
    // Everything in seg2 is the latest for its key: the batch is copied as it was.
    assert_eq!(out2.bytes, seg2);
    assert_eq!(out2.summary.records_removed, 0);

    // Cleaning the output again changes nothing.
    let again = clean_batches(&out1.bytes, &map, &opts).unwrap();
    assert_eq!(again.bytes, out1.bytes);
}

#[test]
fn keys_only_in_the_clean_section_are_kept() {
    let clean = batch(
        0,
        &[(Some("old"), Some("x"), T0), (Some("a"), Some("a0"), T0)],
    );
    let dirty = batch(2, &[(Some("a"), Some("a1"), T0 + 1)]);
    let map = map_over(&[(&dirty, 3)], 2);
    let out = clean_batches(&clean, &map, &CleanOptions::new(T0)).unwrap();
    let (_, records) = check_output(&out.bytes);
    assert_eq!(
        records.iter().map(kv).collect::<Vec<_>>(),
        vec![owned(0, "old", Some("x"))]
    );
}

#[test]
fn tombstones_get_a_delete_horizon_then_go() {
    let mut seg = batch(
        0,
        &[
            (Some("a"), Some("a0"), T0 + 7),
            (Some("b"), Some("b0"), T0 + 1),
        ],
    );
    seg.extend(batch(
        2,
        &[
            (Some("a"), None, T0 + 50),
            (Some("c"), None, T0 + 2),
            (Some("d"), Some("d0"), T0 + 3),
        ],
    ));
    let map = map_over(&[(&seg, 5)], 0);
    let mut opts = CleanOptions::new(T0 + 1000);
    opts.delete_retention_ms = 500;

    // Pass 1: the tombstones stay; their batch is stamped with now + delete.retention.ms.
    let pass1 = clean_batches(&seg, &map, &opts).unwrap();
    let (headers, records) = check_output(&pass1.bytes);
    assert_eq!(
        records.iter().map(kv).collect::<Vec<_>>(),
        vec![
            owned(1, "b", Some("b0")),
            owned(2, "a", None),
            owned(3, "c", None),
            owned(4, "d", Some("d0"))
        ]
    );
    assert_eq!(headers[0].attributes & 0x40, 0);
    let h = headers[1];
    assert_eq!(h.attributes & 0x40, 0x40, "delete horizon flag");
    assert_eq!(h.base_timestamp, T0 + 1500);
    assert_eq!(h.max_timestamp, T0 + 50);
    assert_eq!(h.record_count, 3);
    // Record timestamps are still right (deltas were rebased on the horizon).
    assert_eq!(
        records.iter().map(|r| r.timestamp).collect::<Vec<_>>(),
        vec![T0 + 1, T0 + 50, T0 + 2, T0 + 3]
    );
    assert!(records[1].delete_horizon);
    assert_eq!(pass1.summary.earliest_delete_horizon, Some(T0 + 1500));
    assert_eq!(pass1.summary.tombstones_removed, 0);

    // Pass 2 before the horizon (a later round, with a map over the cleaned log): nothing changes.
    let map2 = map_over(&[(&pass1.bytes, 5)], 0);
    let mut later = opts.clone();
    later.now_ms = T0 + 1499;
    let pass2 = clean_batches(&pass1.bytes, &map2, &later).unwrap();
    assert_eq!(pass2.bytes, pass1.bytes);

    // Pass 3 at the horizon: the tombstones go, the horizon stays on the rewritten batch.
    later.now_ms = T0 + 1500;
    let pass3 = clean_batches(&pass1.bytes, &map2, &later).unwrap();
    let (headers, records) = check_output(&pass3.bytes);
    assert_eq!(
        records.iter().map(kv).collect::<Vec<_>>(),
        vec![owned(1, "b", Some("b0")), owned(4, "d", Some("d0"))]
    );
    assert_eq!(headers[1].base_timestamp, T0 + 1500);
    assert_eq!(records[1].timestamp, T0 + 3);
    assert_eq!(headers[1].max_timestamp, T0 + 3);
    assert_eq!(pass3.summary.tombstones_removed, 2);
    assert_eq!(pass3.summary.earliest_delete_horizon, None);
}

#[test]
fn tombstone_horizon_works_for_every_codec_and_log_append_time() {
    for codec in ALL_CODECS {
        let spec = BatchSpec {
            codec,
            log_append: true,
            ..BatchSpec::default()
        };
        let seg = batch_with(
            spec,
            10,
            &[
                (Some("a"), Some("x"), T0),
                (Some("a"), None, T0),
                (Some("b"), Some("y"), T0),
            ],
        );
        let map = map_over(&[(&seg, 13)], 10);
        let out = clean_batches(&seg, &map, &CleanOptions::new(T0 + 5)).unwrap();
        let (headers, records) = check_output(&out.bytes);
        let original = BatchHeader::parse(&seg).unwrap();
        assert_eq!(
            headers[0].compression().unwrap(),
            original.compression().unwrap()
        );
        assert_eq!(headers[0].base_timestamp, T0 + 5 + 86_400_000, "{codec:?}");
        assert!(headers[0].timestamp_type_is_log_append());
        assert_eq!(headers[0].max_timestamp, T0 + 777);
        // Our own reader gives every record the append time.
        assert_eq!(
            kavka_storage::batch::record_timestamps(&out.bytes, LIMIT).unwrap(),
            vec![(11, T0 + 777), (12, T0 + 777)]
        );
        assert_eq!(
            records.iter().map(kv).collect::<Vec<_>>(),
            vec![owned(11, "a", None), owned(12, "b", Some("y"))],
            "{codec:?}"
        );
    }
}

#[test]
fn keyless_records_are_dropped_within_the_map_range_only() {
    let seg = batch(
        0,
        &[
            (None, Some("n0"), T0),
            (Some("a"), Some("a0"), T0),
            (None, Some("n1"), T0),
        ],
    );
    let map = map_over(&[(&seg, 3)], 0);
    let out = clean_batches(&seg, &map, &CleanOptions::new(T0)).unwrap();
    let (_, records) = check_output(&out.bytes);
    assert_eq!(
        records.iter().map(kv).collect::<Vec<_>>(),
        vec![owned(1, "a", Some("a0"))]
    );
    assert_eq!(out.summary.keyless_removed, 2);

    // A batch entirely of keyless records disappears.
    let keyless = batch(3, &[(None, Some("n"), T0), (None, None, T0)]);
    let map = map_over(&[(&keyless, 5)], 3);
    let out = clean_batches(&keyless, &map, &CleanOptions::new(T0)).unwrap();
    assert!(out.bytes.is_empty());
    assert_eq!(out.summary.batches_retained, 0);
}

#[test]
fn every_codec_round_trips() {
    for codec in ALL_CODECS {
        let spec = BatchSpec {
            codec,
            producer_id: 42,
            producer_epoch: 4,
            base_sequence: 100,
            ..BatchSpec::default()
        };
        let keys = ["k0", "k1", "k2", "k3", "k4"];
        let values: Vec<String> = (0..40)
            .map(|i| format!("value-{i}-{}", "z".repeat(i * 50)))
            .collect();
        let recs: Vec<Rec> = (0..40)
            .map(|i| (Some(keys[i % 5]), Some(values[i].as_str()), T0 + i as i64))
            .collect();
        let seg = batch_with(spec, 1000, &recs);
        let map = map_over(&[(&seg, 1040)], 1000);
        let out = clean_batches(&seg, &map, &CleanOptions::new(T0)).unwrap();
        let (headers, records) = check_output(&out.bytes);
        assert_eq!(headers.len(), 1);
        let h = headers[0];
        let original = BatchHeader::parse(&seg).unwrap();
        assert_eq!(
            h.compression().unwrap(),
            original.compression().unwrap(),
            "{codec:?}"
        );
        assert_eq!(h.producer_id, 42);
        assert_eq!(h.producer_epoch, 4);
        assert_eq!(h.base_sequence, 100);
        assert_eq!(h.last_offset(), 1039);
        assert_eq!(h.last_sequence(), 139);
        assert_eq!(h.max_timestamp, T0 + 39);
        assert_eq!(
            records.iter().map(kv).collect::<Vec<_>>(),
            (35..40)
                .map(|i| owned(1000 + i as i64, keys[i % 5], Some(&values[i])))
                .collect::<Vec<_>>(),
            "{codec:?}"
        );
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.timestamp, T0 + 35 + i as i64);
            assert_eq!(r.sequence, 135 + i as i32);
            assert!(r
                .headers
                .contains_key(&StrBytes::from_string(format!("i{}", 35 + i))));
        }
        if codec != KCompression::None {
            assert!(out.bytes.len() < 2000, "{codec:?} output is compressed");
        }
    }
}

#[test]
fn last_batch_of_an_active_idempotent_producer_is_kept_empty() {
    let spec = BatchSpec {
        producer_id: 7,
        producer_epoch: 2,
        base_sequence: 10,
        ..BatchSpec::default()
    };
    let mut seg = batch_with(
        spec,
        0,
        &[(Some("a"), Some("1"), T0), (Some("b"), Some("1"), T0 + 4)],
    );
    seg.extend(batch(
        2,
        &[(Some("a"), Some("2"), T0), (Some("b"), Some("2"), T0)],
    ));
    let map = map_over(&[(&seg, 4)], 0);

    // Producer 7 is gone: its batch goes entirely.
    let out = clean_batches(&seg, &map, &CleanOptions::new(T0)).unwrap();
    let (headers, _) = check_output(&out.bytes);
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].base_offset, 2);

    // Producer 7 is active and offset 1 is its last: an empty header keeps its sequence state.
    let mut opts = CleanOptions::new(T0);
    opts.active_producer_last_offsets = HashMap::from([(7, 1)]);
    let out = clean_batches(&seg, &map, &opts).unwrap();
    let (headers, records) = check_output(&out.bytes);
    assert_eq!(headers.len(), 2);
    let e = headers[0];
    assert_eq!((e.base_offset, e.last_offset(), e.record_count), (0, 1, 0));
    assert_eq!(
        (e.producer_id, e.producer_epoch, e.base_sequence),
        (7, 2, 10)
    );
    assert_eq!(e.last_sequence(), 11);
    assert_eq!(e.partition_leader_epoch, 3);
    assert_eq!(e.max_timestamp, T0 + 4);
    assert_eq!(e.base_timestamp, -1);
    assert_eq!(e.total_size(), 61);
    assert_eq!(records.len(), 2);
    assert_eq!(out.summary.empty_batches_retained, 1);

    // A different last offset for the producer does not keep it.
    opts.active_producer_last_offsets = HashMap::from([(7, 5)]);
    let out = clean_batches(&seg, &map, &opts).unwrap();
    assert_eq!(check_output(&out.bytes).0.len(), 1);
}

#[test]
fn last_batch_before_the_upper_bound_is_kept_empty() {
    let mut seg = batch(0, &[(Some("a"), Some("1"), T0)]);
    seg.extend(batch(1, &[(Some("a"), None, T0)]));
    let map = map_over(&[(&seg, 2)], 0);
    let mut opts = CleanOptions::new(T0);
    opts.delete_retention_ms = 0;
    // First pass: tombstone kept with a horizon of now.
    let pass1 = clean_batches(&seg, &map, &opts).unwrap();
    assert_eq!(check_output(&pass1.bytes).1.len(), 1);
    // Second pass: the tombstone expires; with the bound at 2 its batch stays as an empty header.
    opts.upper_bound_offset = Some(2);
    let pass2 = clean_batches(&pass1.bytes, &map, &opts).unwrap();
    let (headers, records) = check_output(&pass2.bytes);
    assert!(records.is_empty());
    assert_eq!(headers.len(), 1);
    assert_eq!((headers[0].base_offset, headers[0].record_count), (1, 0));
    assert_eq!(pass2.summary.last_offset, 1);
    opts.upper_bound_offset = None;
    assert!(clean_batches(&pass1.bytes, &map, &opts)
        .unwrap()
        .bytes
        .is_empty());
}

#[test]
fn a_full_map_limits_the_cleaning_to_what_it_covers() {
    // Keys k0..k4 twice, then k5..k14, then a keyless record.
    let recs1: Vec<String> = (0..10).map(|i| format!("k{}", i % 5)).collect();
    let recs2: Vec<String> = (5..15).map(|i| format!("k{i}")).collect();
    let mut seg = batch(
        0,
        &recs1
            .iter()
            .map(|k| (Some(k.as_str()), Some("v"), T0))
            .collect::<Vec<_>>(),
    );
    let mut second: Vec<Rec> = recs2
        .iter()
        .map(|k| (Some(k.as_str()), Some("v"), T0))
        .collect();
    second.push((None, Some("keyless"), T0));
    seg.extend(batch(10, &second));

    // 9 slots at load factor 0.9 -> 8 keys.
    let mut map = OffsetMap::new(24 * 9, 0.9).unwrap();
    assert_eq!(map.capacity(), 8);
    assert_eq!(map.add_segment(&seg, 0, 21, LIMIT).unwrap(), MapFill::Full);
    // k0..k4 (updated at 5..9) and k5..k7 at 10..12 fit; k8 at 13 does not.
    assert_eq!(map.len(), 8);
    assert_eq!(map.latest_offset(), 12);
    assert!(map.utilization() > 0.88);

    let out = clean_batches(&seg, &map, &CleanOptions::new(T0)).unwrap();
    let (_, records) = check_output(&out.bytes);
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    // 0..4 superseded; everything past 12 kept, the keyless record included.
    assert_eq!(offsets, (5..21).collect::<Vec<_>>());

    // The next round starts at 13 and now covers the rest.
    map.clear();
    assert!(map.is_empty());
    assert_eq!(
        map.add_segment(&seg, 13, 21, LIMIT).unwrap(),
        MapFill::Complete
    );
    assert_eq!(map.latest_offset(), 20);
    let out = clean_batches(&out.bytes, &map, &CleanOptions::new(T0)).unwrap();
    let offsets: Vec<i64> = check_output(&out.bytes)
        .1
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, (5..20).collect::<Vec<_>>());
}

#[test]
fn control_and_transactional_batches_are_kept_unchanged() {
    let txn = BatchSpec {
        producer_id: 9,
        producer_epoch: 0,
        base_sequence: 0,
        transactional: true,
        ..BatchSpec::default()
    };
    let mut seg = batch_with(txn, 0, &[(Some("a"), Some("t"), T0), (None, Some("t"), T0)]);
    let marker = batch_with(
        BatchSpec {
            control: true,
            base_sequence: -1,
            ..txn
        },
        2,
        &[(Some("\0\0\0\0"), Some("\0\0\0\0\0\0"), T0)],
    );
    seg.extend(&marker);
    seg.extend(batch(3, &[(Some("a"), Some("x"), T0)]));
    let map = map_over(&[(&seg, 4)], 0);
    // Transactional records are not in the map (their outcome is unknown)...
    assert_eq!(map.get(b"a"), Some(3));
    assert_eq!(map.len(), 1);
    let out = clean_batches(&seg, &map, &CleanOptions::new(T0)).unwrap();
    // ...and are kept as they are, as is the marker.
    assert_eq!(out.bytes, seg);
}

#[test]
fn add_segment_respects_the_range() {
    let mut seg = batch(0, &[(Some("a"), Some("0"), T0), (Some("b"), Some("1"), T0)]);
    seg.extend(batch(
        2,
        &[(Some("a"), Some("2"), T0), (Some("c"), Some("3"), T0)],
    ));
    seg.extend(batch(4, &[(Some("d"), Some("4"), T0)]));
    let mut map = OffsetMap::new(1 << 16, 0.9).unwrap();
    assert_eq!(
        map.add_segment(&seg, 1, 3, LIMIT).unwrap(),
        MapFill::Complete
    );
    assert_eq!(map.get(b"a"), Some(2));
    assert_eq!(map.get(b"b"), Some(1));
    assert_eq!(map.get(b"c"), None);
    assert_eq!(map.get(b"d"), None);
    assert_eq!(map.latest_offset(), 2);
    // Offset gaps at the end of a segment count as covered.
    assert_eq!(
        map.add_segment(&[], 3, 10, LIMIT).unwrap(),
        MapFill::Complete
    );
    assert_eq!(map.latest_offset(), 9);
}

#[test]
fn corrupt_input_is_an_error() {
    let good = batch(0, &[(Some("a"), Some("0"), T0), (Some("b"), Some("1"), T0)]);
    let map = map_over(&[(&good, 2)], 0);
    let opts = CleanOptions::new(T0);

    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    for input in [&bad_crc[..], &[&good[..], &bad_crc[..]].concat()] {
        let err = clean_batches(input, &map, &opts).unwrap_err();
        assert!(
            matches!(
                err,
                CleanerError::Batch {
                    source: BatchError::CorruptMessage,
                    ..
                }
            ),
            "{err}"
        );
        let mut m = OffsetMap::new(1 << 16, 0.9).unwrap();
        assert!(m.add_segment(input, 0, 10, LIMIT).is_err());
    }
    // Base offsets near i64::MAX (outside the CRC) wrap instead of overflowing.
    let mut high = good.clone();
    high[..8].copy_from_slice(&(i64::MAX - 1).to_be_bytes());
    let mut m = OffsetMap::new(1 << 16, 0.9).unwrap();
    m.add_segment(&high, i64::MAX - 5, i64::MAX, LIMIT).unwrap();
    clean_batches(&high, &m, &opts).unwrap();
    m.add_segment(&high, i64::MIN, i64::MIN, LIMIT).unwrap();
    let err = clean_batches(&good[..good.len() - 1], &map, &opts).unwrap_err();
    assert!(matches!(
        err,
        CleanerError::Batch {
            position: 0,
            source: BatchError::Truncated
        }
    ));
    let err = clean_batches(&[&good[..], &good[..30]].concat(), &map, &opts).unwrap_err();
    assert!(matches!(
        err,
        CleanerError::Batch {
            source: BatchError::Truncated,
            ..
        }
    ));
    let err = format!(
        "{}",
        clean_batches(&[&good[..], &good[..30]].concat(), &map, &opts).unwrap_err()
    );
    assert!(err.contains(&format!("byte {}", good.len())), "{err}");
}

#[test]
fn decompression_is_bounded() {
    let big = "x".repeat(1 << 20);
    for codec in [
        KCompression::Gzip,
        KCompression::Snappy,
        KCompression::Lz4,
        KCompression::Zstd,
    ] {
        let spec = BatchSpec {
            codec,
            ..BatchSpec::default()
        };
        let seg = batch_with(spec, 0, &[(Some("a"), Some(big.as_str()), T0)]);
        assert!(seg.len() < 100_000);
        let mut map = OffsetMap::new(1 << 16, 0.9).unwrap();
        let err = map.add_segment(&seg, 0, 1, 64 * 1024).unwrap_err();
        assert!(
            matches!(
                err,
                CleanerError::Batch {
                    source: BatchError::DecompressionLimit,
                    ..
                }
            ),
            "{codec:?}: {err}"
        );
        assert_eq!(
            map.add_segment(&seg, 0, 1, 2 << 20).unwrap(),
            MapFill::Complete
        );
        let mut opts = CleanOptions::new(T0);
        opts.max_decompressed_bytes = 64 * 1024;
        assert!(clean_batches(&seg, &map, &opts).is_err());
        opts.max_decompressed_bytes = 2 << 20;
        assert_eq!(clean_batches(&seg, &map, &opts).unwrap().bytes, seg);
    }
}

#[test]
fn batch_cleaner_reuses_buffers_and_appends() {
    let seg = batch(0, &[(Some("a"), Some("0"), T0), (Some("a"), Some("1"), T0)]);
    let map = map_over(&[(&seg, 2)], 0);
    let mut cleaner = BatchCleaner::new();
    let mut out = b"prefix".to_vec();
    let s1 = cleaner
        .clean(&seg, &map, &CleanOptions::new(T0), &mut out)
        .unwrap();
    let s2 = cleaner
        .clean(&seg, &map, &CleanOptions::new(T0), &mut out)
        .unwrap();
    assert_eq!(s1, s2);
    let one = clean_batches(&seg, &map, &CleanOptions::new(T0))
        .unwrap()
        .bytes;
    assert_eq!(out, [&b"prefix"[..], &one, &one].concat());
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn valid_segments() -> Vec<Vec<u8>> {
        ALL_CODECS
            .iter()
            .map(|&codec| {
                let spec = BatchSpec {
                    codec,
                    producer_id: 1,
                    producer_epoch: 0,
                    base_sequence: 0,
                    ..BatchSpec::default()
                };
                let mut seg = batch_with(
                    spec,
                    0,
                    &[
                        (Some("a"), Some("0"), T0),
                        (None, Some("1"), T0),
                        (Some("a"), None, T0),
                    ],
                );
                seg.extend(batch(
                    3,
                    &[(Some("b"), Some("2"), T0), (Some("a"), Some("3"), T0)],
                ));
                seg
            })
            .collect()
    }

    fn exercise(bytes: &[u8]) {
        let mut map = OffsetMap::new(4096, 0.9).unwrap();
        let _ = map.add_segment(bytes, 0, 100, 1 << 16);
        let mut opts = CleanOptions::new(T0);
        opts.max_decompressed_bytes = 1 << 16;
        opts.upper_bound_offset = Some(5);
        if let Ok(out) = clean_batches(bytes, &map, &opts) {
            // Whatever the cleaner accepts, it writes back as valid batches.
            let mut pos = 0;
            while pos < out.bytes.len() {
                let h = validate_stored_batch(&out.bytes[pos..]).expect("valid output");
                pos += h.total_size();
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            exercise(&bytes);
        }

        #[test]
        fn mutated_segments_never_panic(
            which in 0usize..5,
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
            do_cut in any::<bool>(),
            recrc in any::<bool>(),
        ) {
            let mut seg = valid_segments().swap_remove(which);
            for (idx, byte) in edits {
                let i = idx.index(seg.len());
                seg[i] = byte;
            }
            if do_cut {
                seg.truncate(cut.index(seg.len() + 1));
            }
            if recrc {
                // Fix every batch's CRC so that the record parser sees the damage.
                let mut pos = 0;
                while let Ok(h) = BatchHeader::parse(&seg[pos..]) {
                    let end = pos + h.total_size();
                    if end > seg.len() {
                        break;
                    }
                    let crc = crc32c::crc32c(&seg[pos + 21..end]);
                    seg[pos + 17..pos + 21].copy_from_slice(&crc.to_be_bytes());
                    pos = end;
                }
            }
            exercise(&seg);
        }
    }
}

/// Throughput of map building plus cleaning on 1 KiB records with 10% unique keys. Run with
/// `cargo test -p kavka-storage --release --test cleaner -- --ignored --nocapture cleaner_throughput`.
#[test]
#[ignore]
fn cleaner_throughput() {
    const RECORDS: usize = 64 * 1024;
    const PER_BATCH: usize = 16; // about 16 KiB, the Java producer's default batch.size
                                 // The same records for every codec (the generator restarts), so the uncompressed size is the
                                 // amount of record data each run compacts.
    let mut record_bytes = 0.0;
    for codec in [KCompression::None, KCompression::Lz4, KCompression::Zstd] {
        let spec = BatchSpec {
            codec,
            ..BatchSpec::default()
        };
        let unique = RECORDS / 10;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut segment = Vec::new();
        let mut offset = 0i64;
        let keys: Vec<String> = (0..unique).map(|i| format!("key-{i:08}")).collect();
        while (offset as usize) < RECORDS {
            let values: Vec<String> = (0..PER_BATCH)
                .map(|_| {
                    // Half random hex, half repetitive: compressible like typical payloads.
                    let mut v = String::with_capacity(1000);
                    while v.len() < 500 {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        v.push_str(&format!("{seed:016x}"));
                    }
                    v.truncate(500);
                    v.push_str(&"payload-".repeat(63));
                    v
                })
                .collect();
            let recs: Vec<Rec> = (0..PER_BATCH)
                .map(|i| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let k = keys[(seed % unique as u64) as usize].as_str();
                    (Some(k), Some(values[i].as_str()), T0 + offset + i as i64)
                })
                .collect();
            segment.extend(batch_with(spec, offset, &recs));
            offset += PER_BATCH as i64;
        }
        let mut map = OffsetMap::new(128 << 20, 0.9).unwrap();
        let mut cleaner = BatchCleaner::new();
        let mut out = Vec::with_capacity(segment.len());
        let opts = CleanOptions::new(T0);
        let mut best = f64::MAX;
        let mut summary = None;
        for _ in 0..3 {
            map.clear();
            out.clear();
            let start = Instant::now();
            assert_eq!(
                map.add_segment(&segment, 0, offset, LIMIT).unwrap(),
                MapFill::Complete
            );
            summary = Some(cleaner.clean(&segment, &map, &opts, &mut out).unwrap());
            best = best.min(start.elapsed().as_secs_f64());
        }
        let s = summary.unwrap();
        let mb = segment.len() as f64 / 1e6;
        if codec == KCompression::None {
            record_bytes = mb;
        }
        println!(
            "cleaner {codec:?}: {mb:.1} MB on disk in {:.1} ms = {:.0} MB/s on disk, {:.0} MB/s of \
             record data (map + clean); kept {} of {} records, {:.1} MB out",
            best * 1e3,
            mb / best,
            record_bytes / best,
            s.records_retained,
            s.records_read,
            out.len() as f64 / 1e6
        );
    }
}
