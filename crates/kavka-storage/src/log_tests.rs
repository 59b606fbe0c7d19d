//! Tests of the partition log: append/read/roll, read bounds, timestamp queries, recovery from damage,
//! producer state persistence and concurrent readers.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use bytes::BytesMut;
use kafka_protocol::records::{
    Compression as KCompression, Record, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as KTimestampType,
};

use super::*;
use crate::batch::BatchError;
use crate::producer_state::ProducerStateError;

pub(super) const T0: i64 = 1_700_000_000_000;

/// Batch parameters for tests.
#[derive(Clone, Copy)]
pub(super) struct B {
    records: usize,
    ts: i64,
    pid: i64,
    epoch: i16,
    seq: i32,
    value_len: usize,
}

impl B {
    pub(super) fn plain(records: usize, ts: i64) -> B {
        B {
            records,
            ts,
            pid: -1,
            epoch: -1,
            seq: -1,
            value_len: 20,
        }
    }
    fn idem(records: usize, pid: i64, epoch: i16, seq: i32) -> B {
        B {
            records,
            ts: T0,
            pid,
            epoch,
            seq,
            value_len: 20,
        }
    }
    fn with_value_len(mut self, value_len: usize) -> B {
        self.value_len = value_len;
        self
    }
    /// Record i gets timestamp `ts + i`.
    pub(super) fn encode(self) -> Bytes {
        self.encode_with(KCompression::None)
    }
    fn encode_with(self, compression: KCompression) -> Bytes {
        let records: Vec<Record> = (0..self.records)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: self.pid,
                producer_epoch: self.epoch,
                timestamp_type: KTimestampType::Creation,
                offset: i as i64,
                // The encoder groups records whose offset - sequence is constant into one batch and
                // derives the base sequence from the first record: -1 + i keeps "no sequence".
                sequence: self.seq + i as i32,
                timestamp: self.ts + i as i64,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![b'v'; self.value_len])),
                headers: Default::default(),
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
        .expect("encode test batch");
        buf.freeze()
    }
}

pub(super) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 200,
        ..LogConfig::default()
    }
}

/// Splits a read result into its batch headers, checking every CRC and that batches are whole.
pub(super) fn batches_of(bytes: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..]).expect("header");
        let end = pos + h.total_size();
        assert!(end <= bytes.len(), "partial batch in read result");
        assert_eq!(
            crc32c::crc32c(&bytes[pos + 21..end]),
            h.crc,
            "CRC of served batch"
        );
        out.push(h);
        pos = end;
    }
    out
}

/// Reads the whole log from `from`, batch run by batch run, returning all headers.
pub(super) fn read_all(log: &PartitionLog, from: i64) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut next = from;
    while next < log.log_end_offset() {
        let r = log.read(next, 1500, i64::MAX, true).expect("read");
        let hs = batches_of(&r.records);
        assert!(!hs.is_empty(), "no progress reading at {next}");
        next = hs.last().map(|h| h.last_offset() + 1).unwrap_or(next);
        out.extend(hs);
    }
    out
}

fn assert_contiguous(headers: &[BatchHeader], from: i64, to: i64) {
    let mut expected = from;
    for h in headers {
        assert_eq!(h.base_offset, expected, "offsets must be contiguous");
        expected = h.last_offset() + 1;
    }
    assert_eq!(expected, to);
}

pub(super) fn segment_files(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    v.sort();
    v
}

fn fill(log: &PartitionLog, batches: usize) -> Vec<AppendOutcome> {
    (0..batches)
        .map(|i| {
            let b = B::plain(1 + i % 4, T0 + i as i64 * 10).encode();
            log.append(b, 3, T0).expect("append")
        })
        .collect()
}

#[test]
fn append_read_and_roll_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(log.latest_epoch(), -1);
    let outcomes = fill(&log, 200);
    let mut expected = 0;
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.base_offset, expected);
        assert_eq!(o.last_offset, expected + (i % 4) as i64);
        assert_eq!(o.log_append_time, -1);
        assert!(!o.duplicate);
        expected = o.last_offset + 1;
    }
    assert_eq!(log.log_end_offset(), expected);
    assert_eq!(log.latest_epoch(), 3);
    let segs = segment_files(dir.path(), "log");
    assert!(
        segs.len() > 10,
        "expected many segments, got {}",
        segs.len()
    );
    for s in &segs {
        assert!(fs::metadata(s).unwrap().len() <= 2048);
    }
    let total: u64 = segs.iter().map(|s| fs::metadata(s).unwrap().len()).sum();
    assert_eq!(log.size_bytes(), total);

    let all = read_all(&log, 0);
    assert_contiguous(&all, 0, expected);
    assert!(all.iter().all(|h| h.partition_leader_epoch == 3));
    // Every offset is served starting with the batch that contains it.
    for off in 0..expected {
        let r = log.read(off, 100_000, i64::MAX, false).unwrap();
        let hs = batches_of(&r.records);
        assert!(
            hs[0].base_offset <= off && off <= hs[0].last_offset(),
            "offset {off}"
        );
        assert_eq!(r.log_end_offset, expected);
    }

    // Clean reopen serves the same data and continues at the same offset.
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    assert_eq!(log.log_end_offset(), expected);
    assert_eq!(log.latest_epoch(), 3);
    assert_contiguous(&read_all(&log, 0), 0, expected);
    let o = log.append(B::plain(2, T0).encode(), 4, T0).unwrap();
    assert_eq!(o.base_offset, expected);
    drop(log);
    // Unclean reopen (no close) too.
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    assert_eq!(log.log_end_offset(), expected + 2);
    assert_eq!(log.latest_epoch(), 4);
    assert_contiguous(&read_all(&log, 0), 0, expected + 2);
}

#[test]
fn read_bounds_and_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default(), T0).unwrap();
    let mut sizes = Vec::new();
    for i in 0..5 {
        let b = B::plain(2, T0 + i).with_value_len(100).encode();
        sizes.push(b.len());
        log.append(b, 0, T0).unwrap();
    }
    assert_eq!(log.log_end_offset(), 10);
    // max_bytes below the first batch.
    let r = log.read(0, sizes[0] - 1, i64::MAX, false).unwrap();
    assert!(r.records.is_empty());
    let r = log.read(0, sizes[0] - 1, i64::MAX, true).unwrap();
    assert_eq!(batches_of(&r.records).len(), 1);
    assert_eq!(r.records.len(), sizes[0]);
    // Two and a half batches fit: only whole ones are returned.
    let r = log
        .read(0, sizes[0] + sizes[1] + sizes[2] / 2, i64::MAX, true)
        .unwrap();
    assert_eq!(batches_of(&r.records).len(), 2);
    // Offset 3 is inside the second batch: reading starts at that batch.
    let r = log.read(3, 1 << 20, i64::MAX, false).unwrap();
    let hs = batches_of(&r.records);
    assert_eq!(hs[0].base_offset, 2);
    assert_eq!(hs.len(), 4);
    // max_offset (high watermark) excludes batches starting at or after it.
    let r = log.read(0, 1 << 20, 6, false).unwrap();
    assert_contiguous(&batches_of(&r.records), 0, 6);
    let r = log.read(0, 1 << 20, 5, false).unwrap();
    assert_contiguous(&batches_of(&r.records), 0, 6);
    let r = log.read(6, 1 << 20, 6, true).unwrap();
    assert!(r.records.is_empty());
    // At the end: empty, not an error.
    let r = log.read(10, 1 << 20, i64::MAX, true).unwrap();
    assert!(r.records.is_empty());
    assert_eq!((r.log_start_offset, r.log_end_offset), (0, 10));
    for bad in [11, 1000, -1] {
        match log.read(bad, 100, i64::MAX, true) {
            Err(StorageError::OffsetOutOfRange {
                requested,
                log_start,
                log_end,
            }) => assert_eq!((requested, log_start, log_end), (bad, 0, 10)),
            other => panic!("expected OffsetOutOfRange for {bad}, got {other:?}"),
        }
    }
}

#[test]
fn rejects_invalid_and_oversized_batches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        max_message_bytes: 300,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), cfg, T0).unwrap();
    let big = B::plain(1, T0).with_value_len(400).encode();
    assert!(matches!(
        log.append(big.clone(), 0, T0),
        Err(StorageError::MessageTooLarge { max: 300, .. })
    ));
    let mut bad = B::plain(1, T0).encode().to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(matches!(
        log.append(Bytes::from(bad), 0, T0),
        Err(StorageError::Batch(BatchError::CorruptMessage))
    ));
    assert!(log.append(Bytes::from_static(&[0u8; 10]), 0, T0).is_err());
    assert_eq!(log.log_end_offset(), 0);
    assert!(log.read(0, 100, i64::MAX, true).unwrap().records.is_empty());
    let ok = log.append(B::plain(1, T0).encode(), 0, T0).unwrap();
    assert_eq!(ok.base_offset, 0);
}

/// Reference answers computed from every record's (offset, timestamp).
fn expected_for_timestamp(records: &[(i64, i64)], ts: i64) -> Option<(i64, i64)> {
    records.iter().copied().find(|&(_, t)| t >= ts)
}

fn expected_max(records: &[(i64, i64)]) -> Option<(i64, i64)> {
    let max = records.iter().map(|r| r.1).max()?;
    records.iter().copied().find(|&(_, t)| t == max)
}

#[test]
fn timestamp_queries_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp().unwrap(), None);
    let mut records = Vec::new();
    // Timestamps mostly rise but jump around (producers may send out-of-order timestamps).
    for i in 0..120i64 {
        let ts = T0 + (i * 37) % 500 + i * 5;
        let n = 1 + (i % 3) as usize;
        let o = log.append(B::plain(n, ts).encode(), 7, T0).unwrap();
        for k in 0..n as i64 {
            records.push((o.base_offset + k, ts + k));
        }
    }
    assert!(segment_files(dir.path(), "log").len() > 5);
    let check = |log: &PartitionLog| {
        let max_ts = records.iter().map(|r| r.1).max().unwrap();
        for target in (T0 - 10..=max_ts + 10)
            .step_by(7)
            .chain([max_ts, max_ts + 1])
        {
            let got = log
                .offset_for_timestamp(target)
                .unwrap()
                .map(|l| (l.offset, l.timestamp));
            assert_eq!(
                got,
                expected_for_timestamp(&records, target),
                "target {target}"
            );
        }
        let m = log.max_timestamp().unwrap().unwrap();
        assert_eq!(Some((m.offset, m.timestamp)), expected_max(&records));
        assert_eq!(m.leader_epoch, 7);
    };
    check(&log);
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    check(&log);
    // Without the indexes (rebuilt on open) the answers are the same.
    drop(log);
    for p in segment_files(dir.path(), "timeindex") {
        fs::remove_file(p).unwrap();
    }
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    check(&log);
}

#[test]
fn max_timestamp_prefers_earliest_offset_on_ties() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    log.append(B::plain(3, T0).encode(), 0, T0).unwrap(); // 0..2: T0..T0+2
    log.append(B::plain(1, T0 + 2).encode(), 0, T0).unwrap(); // 3: T0+2
    let m = log.max_timestamp().unwrap().unwrap();
    assert_eq!((m.offset, m.timestamp), (2, T0 + 2));
}

#[test]
fn compressed_batches_support_timestamp_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default(), T0).unwrap();
    log.append(B::plain(5, T0).encode_with(KCompression::Gzip), 0, T0)
        .unwrap();
    let l = log.offset_for_timestamp(T0 + 3).unwrap().unwrap();
    assert_eq!((l.offset, l.timestamp), (3, T0 + 3));
    let m = log.max_timestamp().unwrap().unwrap();
    assert_eq!((m.offset, m.timestamp), (4, T0 + 4));
}

#[test]
fn log_append_time_overrides_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), cfg, T0).unwrap();
    let now = T0 + 99_999;
    let o = log.append(B::plain(3, T0).encode(), 0, now).unwrap();
    assert_eq!(o.log_append_time, now);
    let r = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    let h = batches_of(&r.records)[0];
    assert!(h.timestamp_type_is_log_append());
    assert_eq!(h.max_timestamp, now);
    let l = log.offset_for_timestamp(T0 + 1).unwrap().unwrap();
    assert_eq!((l.offset, l.timestamp), (0, now));
    let m = log.max_timestamp().unwrap().unwrap();
    assert_eq!((m.offset, m.timestamp), (0, now));
}

#[test]
fn rolls_on_segment_ms_and_full_index() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), cfg, T0).unwrap();
    log.append(B::plain(1, T0).encode(), 0, T0).unwrap();
    log.append(B::plain(1, T0 + 1000).encode(), 0, T0).unwrap();
    assert_eq!(segment_files(dir.path(), "log").len(), 1);
    // 1001 ms after the first batch's timestamp: roll.
    log.append(B::plain(1, T0 + 1001).encode(), 0, T0).unwrap();
    assert_eq!(segment_files(dir.path(), "log").len(), 2);

    // Index full: 2 offset entries per segment, an entry after every batch.
    let dir2 = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_index_bytes: 16,
        index_interval_bytes: 0,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir2.path(), cfg, T0).unwrap();
    for _ in 0..10 {
        log.append(B::plain(1, T0).encode(), 0, T0).unwrap();
    }
    let segs = segment_files(dir2.path(), "log").len();
    assert!((3..=5).contains(&segs), "segments: {segs}");
    assert_contiguous(&read_all(&log, 0), 0, 10);
    for p in segment_files(dir2.path(), "index") {
        assert!(fs::metadata(p).unwrap().len() <= 16);
    }
}

fn active_log_file(dir: &Path) -> std::path::PathBuf {
    segment_files(dir, "log").pop().unwrap()
}

#[test]
fn recovery_truncates_torn_tail_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    let outcomes = fill(&log, 30);
    let last = outcomes.last().unwrap().clone();
    drop(log); // crash: no close
    let active = active_log_file(dir.path());
    let len = fs::metadata(&active).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&active).unwrap();
    f.set_len(len - 7).unwrap();
    drop(f);
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    assert_eq!(log.log_end_offset(), last.base_offset);
    assert_contiguous(&read_all(&log, 0), 0, last.base_offset);
    let o = log.append(B::plain(2, T0).encode(), 0, T0).unwrap();
    assert_eq!(o.base_offset, last.base_offset);
    assert_contiguous(&read_all(&log, 0), 0, last.base_offset + 2);
}

#[test]
fn recovery_removes_garbage_and_bad_crc_tail() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig::default();
    let log = PartitionLog::open(dir.path(), cfg.clone(), T0).unwrap();
    let outcomes = fill(&log, 10);
    let end = log.log_end_offset();
    log.close().unwrap();
    drop(log);
    // Garbage after the last batch, even with a clean-shutdown marker present.
    let active = active_log_file(dir.path());
    let mut f = fs::OpenOptions::new().append(true).open(&active).unwrap();
    std::io::Write::write_all(&mut f, &[0xAB; 100]).unwrap();
    drop(f);
    let log = PartitionLog::open(dir.path(), cfg.clone(), T0).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_contiguous(&read_all(&log, 0), 0, end);
    drop(log);

    // A flipped payload byte in the 8th batch: that batch and everything after it go.
    let bytes = fs::read(&active).unwrap();
    let mut pos = 0;
    for _ in 0..7 {
        pos += BatchHeader::parse(&bytes[pos..]).unwrap().total_size();
    }
    let mut damaged = bytes.clone();
    damaged[pos + 70] ^= 0x55;
    fs::write(&active, &damaged).unwrap();
    let log = PartitionLog::open(dir.path(), cfg, T0).unwrap();
    let cut = outcomes[7].base_offset;
    assert_eq!(log.log_end_offset(), cut);
    assert_contiguous(&read_all(&log, 0), 0, cut);
    assert_eq!(fs::metadata(&active).unwrap().len(), pos as u64);
    let o = log.append(B::plain(1, T0).encode(), 0, T0).unwrap();
    assert_eq!(o.base_offset, cut);
}

#[test]
fn damage_in_older_segment_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    fill(&log, 60);
    drop(log);
    let _ = fs::remove_file(dir.path().join(RECOVERY_POINT_FILE));
    let segs = segment_files(dir.path(), "log");
    assert!(segs.len() >= 4);
    // Truncate the second segment mid-batch; without a recovery point every segment is checked.
    let second = &segs[1];
    let len = fs::metadata(second).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(second)
        .unwrap()
        .set_len(len - 30)
        .unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    assert_eq!(segment_files(dir.path(), "log").len(), 2);
    let end = log.log_end_offset();
    assert_contiguous(&read_all(&log, 0), 0, end);
    let o = log.append(B::plain(1, T0).encode(), 0, T0).unwrap();
    assert_eq!(o.base_offset, end);
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    fill(&log, 80);
    let end = log.log_end_offset();
    let before = read_all(&log, 0);
    log.close().unwrap();
    drop(log);
    let indexes = segment_files(dir.path(), "index");
    let sizes: Vec<u64> = indexes
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .collect();
    assert!(sizes.iter().any(|&s| s > 0), "test needs non-empty indexes");
    fs::remove_file(&indexes[0]).unwrap();
    fs::write(&indexes[1], [0xFFu8; 13]).unwrap();
    fs::write(&indexes[2], [0u8; 16]).unwrap(); // two entries, not increasing
    let timeindexes = segment_files(dir.path(), "timeindex");
    fs::remove_file(&timeindexes[3]).unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(read_all(&log, 0), before);
    for (p, s) in indexes.iter().zip(&sizes).take(3) {
        assert_eq!(
            fs::metadata(p).unwrap().len(),
            *s,
            "{} rebuilt identically",
            p.display()
        );
    }
    for off in (0..end).step_by(3) {
        let r = log.read(off, 10, i64::MAX, true).unwrap();
        let h = batches_of(&r.records)[0];
        assert!(h.base_offset <= off && off <= h.last_offset());
    }
}

#[test]
fn producer_state_survives_close_and_crash() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    let mut seq = 0;
    let mut outcomes = Vec::new();
    for _ in 0..40 {
        let o = log
            .append(B::idem(2, 1000, 0, seq).encode(), 0, T0)
            .unwrap();
        outcomes.push(o);
        seq += 2;
    }
    // A retry of the last batch is a duplicate with the original offsets.
    let dup = log.append(B::idem(2, 1000, 0, 78).encode(), 0, T0).unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.base_offset, dup.last_offset), (78, 79));
    assert_eq!(log.log_end_offset(), 80);
    log.close().unwrap();
    drop(log);

    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    let dup = log.append(B::idem(2, 1000, 0, 76).encode(), 0, T0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 76);
    assert!(matches!(
        log.append(B::idem(1, 1000, 0, 90).encode(), 0, T0),
        Err(StorageError::ProducerState(
            ProducerStateError::OutOfOrderSequence { .. }
        ))
    ));
    let o = log.append(B::idem(1, 1000, 0, 80).encode(), 0, T0).unwrap();
    assert_eq!(o.base_offset, 80);
    drop(log); // crash

    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    let dup = log.append(B::idem(1, 1000, 0, 80).encode(), 0, T0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 80);
    assert!(matches!(
        log.append(B::idem(1, 1000, 0, 0).encode(), 0, T0),
        Err(StorageError::ProducerState(_))
    ));
    log.close().unwrap();
    drop(log);

    // Corrupt every snapshot: state is rebuilt by replaying the log.
    let snaps = segment_files(dir.path(), "snapshot");
    assert!(!snaps.is_empty());
    for s in &snaps {
        let mut b = fs::read(s).unwrap();
        let n = b.len();
        b[n / 2] ^= 0x5A;
        b.truncate(n - 1);
        fs::write(s, b).unwrap();
    }
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    assert_eq!(log.producer_count(), 1);
    for s in &snaps {
        assert!(!s.exists(), "corrupt snapshot {} kept", s.display());
    }
    let dup = log.append(B::idem(1, 1000, 0, 80).encode(), 0, T0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 80);
    let o = log.append(B::idem(1, 1000, 0, 81).encode(), 0, T0).unwrap();
    assert!(!o.duplicate);
    assert_eq!(o.base_offset, 81);
}

#[test]
fn batches_behind_a_failed_write_wait_for_it_instead_of_skipping_its_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let first = B::idem(1, 7, 0, 0).encode();
    // Every batch after the first needs a new segment.
    let config = LogConfig {
        segment_bytes: first.len() as u64 + 10,
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config, T0).unwrap();
    log.append(first, 0, T0).unwrap();
    // A directory where the next segment's file goes makes that roll, and so the write, fail.
    let blocker = dir
        .path()
        .join(format!("{}.log", crate::segment::file_stem(1)));
    std::fs::create_dir(&blocker).unwrap();
    assert!(matches!(
        log.append(B::idem(1, 7, 0, 1).encode(), 0, T0),
        Err(StorageError::Io(_))
    ));
    assert!(matches!(
        log.append(B::idem(1, 7, 0, 2).encode(), 0, T0),
        Err(StorageError::ProducerState(
            ProducerStateError::EarlierBatchNotWritten {
                unwritten_seq: 1,
                ..
            }
        ))
    ));
    assert_eq!(log.log_end_offset(), 1);
    std::fs::remove_dir(&blocker).unwrap();
    let o = log.append(B::idem(1, 7, 0, 1).encode(), 0, T0).unwrap();
    assert_eq!((o.base_offset, o.duplicate), (1, false));
    let o = log.append(B::idem(1, 7, 0, 2).encode(), 0, T0).unwrap();
    assert_eq!((o.base_offset, o.duplicate), (2, false));
    // Once written, a gap no failed write explains is the client's again.
    assert!(matches!(
        log.append(B::idem(1, 7, 0, 5).encode(), 0, T0),
        Err(StorageError::ProducerState(
            ProducerStateError::OutOfOrderSequence { .. }
        ))
    ));
    assert_contiguous(&read_all(&log, 0), 0, 3);
}

#[test]
fn truncate_to_rewinds_log_and_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    for i in 0..50 {
        log.append(B::idem(2, 7, 0, i * 2).encode(), i, T0).unwrap();
    }
    assert_eq!(log.log_end_offset(), 100);
    // Offset 41 is inside batch 40..41: the whole batch goes.
    log.truncate_to(41).unwrap();
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(log.latest_epoch(), 19);
    assert_contiguous(&read_all(&log, 0), 0, 40);
    // The truncated batch is no longer a duplicate: appending it again gets new offsets.
    let o = log.append(B::idem(2, 7, 0, 40).encode(), 20, T0).unwrap();
    assert!(!o.duplicate);
    assert_eq!(o.base_offset, 40);
    let dup = log.append(B::idem(2, 7, 0, 38).encode(), 20, T0).unwrap();
    assert!(dup.duplicate);
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    assert_eq!(log.log_end_offset(), 42);
    assert_contiguous(&read_all(&log, 0), 0, 42);
    // Truncating below the start empties the log and restarts it there.
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(segment_files(dir.path(), "log").len(), 1);
    assert_eq!(
        log.append(B::plain(1, T0).encode(), 0, T0)
            .unwrap()
            .base_offset,
        0
    );
}

#[test]
fn truncate_fully_and_start_at_restarts_the_log_past_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    for i in 0..10 {
        log.append(B::plain(1, T0).encode(), i, T0).unwrap();
    }
    log.truncate_fully_and_start_at(500).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert!(log.leader_epochs().is_empty());
    assert_eq!(segment_files(dir.path(), "log").len(), 1);
    // A follower continues from there with the leader's batches.
    let leader = PartitionLog::open(&dir.path().join("leader"), small_config(), T0).unwrap();
    leader.truncate_fully_and_start_at(500).unwrap();
    leader.append(B::plain(3, T0).encode(), 4, T0).unwrap();
    log.append_replicated(leader.read(500, 1 << 20, i64::MAX, true).unwrap().records)
        .unwrap();
    assert_eq!(log.log_end_offset(), 503);
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 503));
    assert_eq!(log.leader_epochs(), vec![(4, 500)]);
}

#[test]
fn append_replicated_copies_batches_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let leader = PartitionLog::open(&dir.path().join("leader"), small_config(), T0).unwrap();
    for i in 0..20 {
        leader.append(B::idem(1, 5, 0, i).encode(), 2, T0).unwrap();
    }
    let follower = PartitionLog::open(&dir.path().join("follower"), small_config(), T0).unwrap();
    let mut next = 0;
    while next < leader.log_end_offset() {
        let r = leader.read(next, 300, i64::MAX, true).unwrap();
        next = batches_of(&r.records).last().unwrap().last_offset() + 1;
        follower.append_replicated(r.records).unwrap();
    }
    assert_eq!(read_all(&follower, 0), read_all(&leader, 0));
    assert_eq!(follower.latest_epoch(), 2);
    // Producer state followed the replicated batches.
    assert!(
        follower
            .append(B::idem(1, 5, 0, 19).encode(), 2, T0)
            .unwrap()
            .duplicate
    );
    // Gaps are refused and nothing is written.
    let r = leader.read(5, 300, i64::MAX, true).unwrap();
    assert!(matches!(
        follower.append_replicated(r.records),
        Err(StorageError::InvalidRecord(_))
    ));
    assert_eq!(follower.log_end_offset(), 20);
}

#[test]
fn concurrent_reader_never_sees_partial_batches() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 8192,
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    let log = Arc::new(PartitionLog::open(dir.path(), cfg, T0).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = Arc::clone(&log);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut reads = 0u64;
                let mut next = 0i64;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let r = log.read(next, 4096, i64::MAX, true).unwrap();
                    let hs = batches_of(&r.records);
                    if let Some(first) = hs.first() {
                        assert!(first.base_offset <= next && next <= first.last_offset());
                        assert_contiguous(
                            &hs,
                            first.base_offset,
                            hs.last().unwrap().last_offset() + 1,
                        );
                        next = hs.last().unwrap().last_offset() + 1;
                        assert!(next <= r.log_end_offset);
                        reads += 1;
                    } else if finished && next == log.log_end_offset() {
                        break;
                    }
                }
                (next, reads)
            })
        })
        .collect();
    for i in 0..3000 {
        log.append(B::plain(1 + i % 3, T0 + i as i64).encode(), 1, T0)
            .unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        let (next, reads) = r.join().unwrap();
        assert_eq!(next, log.log_end_offset());
        assert!(reads > 0);
    }
}

#[test]
fn flush_writes_recovery_point_and_delete_removes_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let cfg = LogConfig {
        flush_interval_messages: 5,
        flush_interval_ms: 1000,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(&path, cfg, T0).unwrap();
    let rp = || decode_recovery_point(&fs::read(path.join(RECOVERY_POINT_FILE)).unwrap());
    log.append(B::plain(3, T0).encode(), 0, T0).unwrap();
    assert!(!path.join(RECOVERY_POINT_FILE).exists());
    log.append(B::plain(3, T0).encode(), 0, T0).unwrap();
    assert_eq!(rp(), Some(6));
    log.append(B::plain(1, T0).encode(), 0, T0).unwrap();
    log.maybe_flush(T0 + 999).unwrap();
    assert_eq!(rp(), Some(6));
    log.maybe_flush(T0 + 1000).unwrap();
    assert_eq!(rp(), Some(7));
    log.delete().unwrap();
    assert!(!path.exists());
}

#[test]
fn append_after_close_invalidates_clean_marker() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default(), T0).unwrap();
    log.append(B::plain(1, T0).encode(), 0, T0).unwrap();
    log.close().unwrap();
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    log.append(B::plain(1, T0).encode(), 0, T0).unwrap();
    assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default(), T0).unwrap();
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn recovery_point_round_trip_rejects_damage() {
    let enc = encode_recovery_point(12345);
    assert_eq!(decode_recovery_point(&enc), Some(12345));
    let mut bad = enc;
    bad[3] ^= 1;
    assert_eq!(decode_recovery_point(&bad), None);
    assert_eq!(decode_recovery_point(&enc[..11]), None);
}

#[test]
fn partition_log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PartitionLog>();
}

const CRASH_DIR_ENV: &str = "KAVKA_STORAGE_CRASH_CHILD_DIR";

/// Child half of `survives_kill_9`: appends idempotent batches forever, printing each acknowledged
/// batch. Does nothing unless started by the parent test.
#[test]
#[ignore = "helper process for survives_kill_9"]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let log = PartitionLog::open(Path::new(&dir), small_config(), T0).unwrap();
    let mut seq = 0;
    loop {
        let o = log.append(B::idem(3, 42, 0, seq).encode(), 1, T0).unwrap();
        println!("ACK {} {} {}", seq, o.base_offset, o.last_offset);
        seq += 3;
    }
}

#[test]
fn survives_kill_9() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "log::tests::crash_child",
            "--nocapture",
        ])
        .env(CRASH_DIR_ENV, dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() == 4 && parts[0] == "ACK" {
            let v: Vec<i64> = parts[1..].iter().map(|p| p.parse().unwrap()).collect();
            acked.push((v[0] as i32, v[1], v[2]));
            if acked.len() == 400 {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(acked.len(), 400, "child did not run");
    let (last_seq, last_base, last_end) = *acked.last().unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), T0).unwrap();
    // Every acknowledged batch is there; the child may have appended more before dying.
    assert!(log.log_end_offset() > last_end);
    let end = log.log_end_offset();
    assert_contiguous(&read_all(&log, 0), 0, end);
    let dup = log
        .append(B::idem(3, 42, 0, last_seq).encode(), 1, T0)
        .unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, last_base);
    // The next batch in sequence continues the log.
    let next_seq = end as i32; // seq == offset for this single producer
    let o = log
        .append(B::idem(3, 42, 0, next_seq).encode(), 1, T0)
        .unwrap();
    assert_eq!(o.base_offset, end);
}

#[test]
fn recovery_handles_batches_larger_than_its_read_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        max_message_bytes: 4 << 20,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), cfg.clone(), T0).unwrap();
    log.append(B::plain(2, T0).encode(), 0, T0).unwrap();
    let big = B::plain(1, T0).with_value_len(1_500_000).encode();
    log.append(big.clone(), 0, T0).unwrap();
    log.append(B::plain(2, T0).encode(), 0, T0).unwrap();
    log.append(B::plain(2, T0).encode(), 0, T0).unwrap();
    drop(log);
    let active = active_log_file(dir.path());
    let len = fs::metadata(&active).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let log = PartitionLog::open(dir.path(), cfg, T0).unwrap();
    assert_eq!(log.log_end_offset(), 5);
    let r = log.read(2, 1000, i64::MAX, true).unwrap();
    let hs = batches_of(&r.records);
    assert_eq!((hs.len(), hs[0].base_offset), (1, 2));
    assert_eq!(r.records.len(), big.len());
    // The big batch's payload came back intact (CRC checked by batches_of).
    assert_eq!(&r.records[61..], &big[61..]);
}
