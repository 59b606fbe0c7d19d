//! Tests of the log lifecycle: durable log start, DeleteRecords, retention, delayed deletion and the
//! compaction swap with its crash recovery.

use std::path::Path;

use super::tests::{batches_of, read_all, segment_files, small_config, B, T0};
use super::*;

/// Small segments (about three one-record batches each) and immediate file deletion unless a test says
/// otherwise.
fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        retention_ms: -1,
        file_delete_delay_ms: 0,
        ..small_config()
    }
}

/// Appends `n` one-record batches; batch i has timestamp `T0 + 100 * i` and offset i (from an empty log).
fn append_n(log: &PartitionLog, n: usize) {
    let start = log.log_end_offset();
    for i in 0..n {
        let i = start + i as i64;
        log.append(B::plain(1, T0 + 100 * i).encode(), 1, T0)
            .expect("append");
    }
}

/// (base, next offset, largest timestamp, size) of every segment.
fn seg_view(log: &PartitionLog) -> Vec<(i64, i64, i64, u64)> {
    read(&log.segments)
        .iter()
        .map(|s| {
            (
                s.base_offset(),
                s.next_offset(),
                s.max_timestamp().0,
                s.size(),
            )
        })
        .collect()
}

fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn offsets(log: &PartitionLog) -> Vec<i64> {
    read_all(log, log.log_start_offset())
        .iter()
        .map(|h| h.base_offset)
        .collect()
}

fn assert_out_of_range(log: &PartitionLog, offset: i64) {
    match log.read(offset, 1000, i64::MAX, true) {
        Err(StorageError::OffsetOutOfRange { .. }) => {}
        other => panic!("expected OffsetOutOfRange at {offset}, got {other:?}"),
    }
}

#[test]
fn time_retention_deletes_expired_prefix_below_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 1000,
        ..cfg()
    };
    let log = PartitionLog::open(dir.path(), config, T0).unwrap();
    append_n(&log, 12);
    let segs = seg_view(&log);
    assert!(segs.len() >= 4, "want several segments, got {segs:?}");
    let now = T0 + 450 + 1000;
    // Nothing is deletable above the high watermark.
    let r = log.enforce_retention(now, 0).unwrap();
    assert_eq!(r.segments_deleted, 0);
    assert_eq!(log.log_start_offset(), 0);

    let expected = segs.iter().take_while(|s| now - s.2 > 1000).count();
    assert!(expected >= 1 && expected < segs.len());
    let r = log.enforce_retention(now, log.log_end_offset()).unwrap();
    assert_eq!(r.segments_deleted, expected);
    assert_eq!(
        r.bytes_freed,
        segs[..expected].iter().map(|s| s.3).sum::<u64>()
    );
    assert_eq!(r.log_start_offset, segs[expected].0);
    assert_eq!(log.log_start_offset(), segs[expected].0);
    assert_out_of_range(&log, segs[expected].0 - 1);
    assert_eq!(offsets(&log), (segs[expected].0..12).collect::<Vec<_>>());
    // Every remaining segment holds a record young enough.
    assert!(seg_view(&log).iter().all(|s| now - s.2 <= 1000));
    // A second pass finds nothing more.
    assert_eq!(log.enforce_retention(now, 12).unwrap().segments_deleted, 0);
}

#[test]
fn expired_active_segment_is_rolled_and_deleted_only_below_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 1000,
        ..cfg()
    };
    let log = PartitionLog::open(dir.path(), config, T0).unwrap();
    append_n(&log, 7);
    let n_segs = seg_view(&log).len();
    let now = T0 + 100_000;
    // HW inside the active segment: everything but the active segment goes.
    let r = log.enforce_retention(now, 6).unwrap();
    assert_eq!(r.segments_deleted, n_segs - 1);
    assert_eq!(seg_view(&log).len(), 1);
    let active_base = seg_view(&log)[0].0;
    assert_eq!(log.log_start_offset(), active_base);
    // HW at the end: the non-empty active segment expires too; a fresh empty one takes its place.
    let r = log.enforce_retention(now, 7).unwrap();
    assert_eq!(r.segments_deleted, 1);
    assert_eq!(seg_view(&log), vec![(7, 7, -1, 0)]);
    assert_eq!(log.log_start_offset(), 7);
    assert_eq!(log.log_end_offset(), 7);
    assert_eq!(log.size_bytes(), 0);
    // The empty active segment is never deleted.
    assert_eq!(log.enforce_retention(now, 7).unwrap().segments_deleted, 0);
    // Appends continue at the old end.
    append_n(&log, 1);
    assert_eq!(offsets(&log), vec![7]);
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg(), now).unwrap();
    assert_eq!(log.log_start_offset(), 7);
    assert_eq!(offsets(&log), vec![7]);
}

#[test]
fn size_retention_keeps_at_least_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    append_n(&log, 20);
    let segs = seg_view(&log);
    let total: u64 = segs.iter().map(|s| s.3).sum();
    let limit = total / 2;
    log.update_config(LogConfig {
        retention_bytes: limit as i64,
        ..cfg()
    });
    let r = log.enforce_retention(T0, 20).unwrap();
    let mut expected = 0;
    let mut left = total;
    while left - segs[expected].3 >= limit {
        left -= segs[expected].3;
        expected += 1;
    }
    assert!(expected > 0);
    assert_eq!(r.segments_deleted, expected);
    assert_eq!(log.size_bytes(), left);
    assert!(log.size_bytes() >= limit);
    assert_eq!(log.log_start_offset(), segs[expected].0);
    // retention.bytes -1 and retention.ms -1: nothing happens.
    log.update_config(cfg());
    assert_eq!(log.enforce_retention(T0, 20).unwrap().segments_deleted, 0);
    // cleanup.policy=compact: no time/size retention at all.
    log.update_config(LogConfig {
        retention_bytes: 0,
        retention_ms: 0,
        cleanup_delete: false,
        cleanup_compact: true,
        ..cfg()
    });
    assert_eq!(
        log.enforce_retention(T0 + 1_000_000, 20)
            .unwrap()
            .segments_deleted,
        0
    );
}

#[test]
fn delete_records_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    log.append(B::plain(4, T0).encode(), 1, T0).unwrap(); // offsets 0..=3 in one batch
    append_n(&log, 10); // offsets 4..=13
    let segs = seg_view(&log);
    // Beyond the high watermark, and negative targets other than -1.
    assert!(matches!(
        log.delete_records(11, 10),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.delete_records(-2, 10),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.log_start_offset(), 0);
    // Inside the first batch: the batch stays readable from the new start, nothing below it.
    assert_eq!(log.delete_records(2, 10).unwrap(), 2);
    assert_out_of_range(&log, 1);
    let r = log.read(2, 10_000, i64::MAX, true).unwrap();
    assert_eq!(batches_of(&r.records)[0].base_offset, 0);
    assert_eq!(r.log_start_offset, 2);
    // Timestamp lookups never answer below the start: record 1 (T0+1) is deleted, record 2 is T0+2.
    let found = log.offset_for_timestamp(T0).unwrap().unwrap();
    assert_eq!((found.offset, found.timestamp), (2, T0 + 2));
    // Below the current start: no-op.
    assert_eq!(log.delete_records(1, 10).unwrap(), 2);
    // -1 = the high watermark; segments wholly below it go at once.
    assert_eq!(log.delete_records(-1, 10).unwrap(), 10);
    let kept = seg_view(&log);
    assert!(kept[0].0 <= 10 && kept[0].1 > 10, "{kept:?} from {segs:?}");
    assert!(kept.len() < segs.len());
    assert_out_of_range(&log, 9);
    assert_eq!(offsets(&log), (10..14).collect::<Vec<_>>());
    // Survives a kill-style reopen (no close, no clean marker) ...
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.log_start_offset(), 10);
    assert_out_of_range(&log, 9);
    // ... and a clean one.
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.log_start_offset(), 10);
    // compact-only topics refuse DeleteRecords.
    log.update_config(LogConfig {
        cleanup_delete: false,
        cleanup_compact: true,
        ..cfg()
    });
    assert!(matches!(
        log.delete_records(-1, 14),
        Err(StorageError::PolicyViolation(_))
    ));
}

#[test]
fn log_start_checkpoint_damage_and_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    append_n(&log, 10);
    assert_eq!(log.delete_records(5, 10).unwrap(), 5);
    let first_base = seg_view(&log)[0].0;
    drop(log);
    // A corrupt checkpoint falls back to the first segment's base.
    fs::write(dir.path().join(LOG_START_FILE), b"garbage").unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.log_start_offset(), first_base);
    drop(log);
    // A checkpoint below the first segment is raised to it.
    fs::write(dir.path().join(LOG_START_FILE), encode_recovery_point(0)).unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.log_start_offset(), first_base);
    drop(log);
    // A checkpoint beyond the log end (the tail was lost): the log restarts empty at its start.
    fs::write(dir.path().join(LOG_START_FILE), encode_recovery_point(50)).unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.log_start_offset(), 50);
    assert_eq!(log.log_end_offset(), 50);
    append_n(&log, 1);
    assert_eq!(offsets(&log), vec![50]);
}

#[test]
fn truncate_below_log_start_restarts_the_log_durably() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    append_n(&log, 4); // one segment, no deletable ones
    assert_eq!(log.delete_records(3, 4).unwrap(), 3);
    log.truncate_to(2).unwrap();
    assert_eq!(log.log_start_offset(), 2);
    assert_eq!(log.log_end_offset(), 2);
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
}

#[test]
fn deleted_files_outlive_the_delay_and_readers_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 1000,
        file_delete_delay_ms: 5000,
        ..cfg()
    };
    let log = PartitionLog::open(dir.path(), config, T0).unwrap();
    append_n(&log, 12);
    let held = log.cleanable_segments();
    let before = held[0].read_batches(0, 100_000).unwrap();
    let now = T0 + 100_000;
    let r = log.enforce_retention(now, 9).unwrap();
    assert!(r.segments_deleted >= 2);
    let deleted = files_with_suffix(dir.path(), ".deleted");
    assert_eq!(deleted.len(), 3 * r.segments_deleted, "{deleted:?}");
    assert!(deleted.iter().any(|n| n.ends_with(".log.deleted")));
    // A reader holding a removed segment still gets its bytes.
    assert_eq!(held[0].read_batches(0, 100_000).unwrap(), before);
    assert_eq!(log.delete_expired_files(now + 4999).unwrap(), 0);
    assert_eq!(
        files_with_suffix(dir.path(), ".deleted").len(),
        deleted.len()
    );
    assert_eq!(log.delete_expired_files(now + 5000).unwrap(), deleted.len());
    assert!(files_with_suffix(dir.path(), ".deleted").is_empty());
    // Leftovers from a previous run are removed by open().
    append_n(&log, 1);
    log.delete_records(-1, 13).unwrap();
    assert!(!files_with_suffix(dir.path(), ".deleted").is_empty());
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg(), now).unwrap();
    assert!(files_with_suffix(dir.path(), ".deleted").is_empty());
    assert_eq!(log.log_start_offset(), 13);
}

/// Raw bytes of every other batch of the given segments (keeps the first): a stand-in for compaction
/// that leaves offset gaps.
fn every_other_batch(segs: &[SegmentInfo]) -> (Bytes, Vec<i64>) {
    let mut out = Vec::new();
    let mut kept = Vec::new();
    let mut i = 0;
    for s in segs {
        let bytes = s.read_batches(0, usize::MAX).unwrap();
        let mut pos = 0;
        for h in batches_of(&bytes) {
            if i % 2 == 0 {
                out.extend_from_slice(&bytes[pos..pos + h.total_size()]);
                kept.push(h.base_offset);
            }
            pos += h.total_size();
            i += 1;
        }
    }
    (Bytes::from(out), kept)
}

#[test]
fn replace_segments_with_gaps_reads_lookups_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    append_n(&log, 15);
    let cleanable = log.cleanable_segments();
    assert!(cleanable.len() >= 3);
    let chosen = &cleanable[..3];
    let range_end = chosen[2].next_segment_base;
    let (cleaned, kept) = every_other_batch(chosen);
    let bases: Vec<i64> = chosen.iter().map(|s| s.base_offset).collect();
    let segs_before = seg_view(&log).len();
    log.replace_segments(&bases, cleaned).unwrap();
    assert_eq!(seg_view(&log).len(), segs_before - 2);
    let mut expected: Vec<i64> = kept.clone();
    expected.extend(range_end..15);
    assert_eq!(offsets(&log), expected);
    // Reading from inside a gap returns the next batch; timestamp lookups skip removed records.
    for o in 0..range_end {
        let r = log.read(o, 10_000, i64::MAX, true).unwrap();
        let first = batches_of(&r.records)[0].base_offset;
        let want = kept.iter().copied().find(|&k| k >= o).unwrap_or(range_end);
        assert_eq!(first, want, "read at {o}");
        let found = log.offset_for_timestamp(T0 + 100 * o).unwrap().unwrap();
        assert_eq!(found.offset, want, "timestamp lookup for record {o}");
    }
    assert!(files_with_suffix(dir.path(), ".cleaned").is_empty());
    assert!(files_with_suffix(dir.path(), ".swap").is_empty());
    assert!(files_with_suffix(dir.path(), ".swapinfo").is_empty());
    // Survives unclean and clean reopen with the same content and indexes.
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(offsets(&log), expected);
    append_n(&log, 2);
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    expected.extend([15, 16]);
    assert_eq!(offsets(&log), expected);
    assert_eq!(log.log_start_offset(), 0);
}

#[test]
fn replace_segments_rejects_stale_or_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    append_n(&log, 12);
    let cleanable = log.cleanable_segments();
    let active_base = seg_view(&log).last().unwrap().0;
    assert!(matches!(
        log.replace_segments(&[active_base], Bytes::new()),
        Err(StorageError::SegmentsChanged(_))
    ));
    assert!(matches!(
        log.replace_segments(
            &[cleanable[0].base_offset, cleanable[2].base_offset],
            Bytes::new()
        ),
        Err(StorageError::SegmentsChanged(_))
    ));
    assert!(matches!(
        log.replace_segments(&[], Bytes::new()),
        Err(StorageError::SegmentsChanged(_))
    ));
    // A batch of the second segment offered as the first segment's content is out of range.
    let second = cleanable[1].read_batches(0, usize::MAX).unwrap();
    assert!(matches!(
        log.replace_segments(&[cleanable[0].base_offset], second),
        Err(StorageError::InvalidRecord(_))
    ));
    // A damaged batch.
    let mut bad = cleanable[0].read_batches(0, usize::MAX).unwrap().to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert!(log
        .replace_segments(&[cleanable[0].base_offset], Bytes::from(bad))
        .is_err());
    assert_eq!(offsets(&log), (0..12).collect::<Vec<_>>());
    // After retention removed it, the segment cannot be swapped any more.
    log.delete_records(cleanable[1].base_offset, 12).unwrap();
    assert!(matches!(
        log.replace_segments(&[cleanable[0].base_offset], Bytes::new()),
        Err(StorageError::SegmentsChanged(_))
    ));
    // Replacing with nothing leaves an empty segment that reads skip over.
    let cleanable = log.cleanable_segments();
    let b = cleanable[0].base_offset;
    log.replace_segments(&[b], Bytes::new()).unwrap();
    assert_eq!(
        offsets(&log),
        (cleanable[0].next_segment_base..12).collect::<Vec<_>>()
    );
    let r = log.read(b, 10_000, i64::MAX, true).unwrap();
    assert_eq!(
        batches_of(&r.records)[0].base_offset,
        cleanable[0].next_segment_base
    );
    // The empty segment survives a reopen and keeps the log start where it was.
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.log_start_offset(), b);
    assert_eq!(seg_view(&log)[0], (b, b, -1, 0));
    assert_eq!(
        offsets(&log),
        (cleanable[0].next_segment_base..12).collect::<Vec<_>>()
    );
}

/// Steps of the swap protocol a crash can interrupt after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    CleanedWritten,
    InfoWritten,
    Swapped,
    FirstOldDeleted,
    AllOldDeleted,
    IndexesRenamed,
    Renamed,
}

/// Index bytes that look valid (one entry: relative offset 1 at position 16) but describe no real batch:
/// a stale or foreign index that open() must not trust.
const BOGUS_INDEX: [u8; 8] = [0, 0, 0, 1, 0, 0, 0, 16];

/// Builds a log, then performs the swap protocol by hand up to `step` (as a kill -9 would leave it) and
/// returns the directory, the offsets before and the offsets expected after a completed swap.
fn crashed_swap(step: Step, with_info: bool) -> (tempfile::TempDir, Vec<i64>, Vec<i64>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = PartitionLog::open(d, cfg(), T0).unwrap();
    append_n(&log, 15);
    let chosen: Vec<SegmentInfo> = log.cleanable_segments().into_iter().take(3).collect();
    let (cleaned, kept) = every_other_batch(&chosen);
    let range_end = chosen[2].next_segment_base;
    let before = offsets(&log);
    let mut after = kept;
    after.extend(range_end..15);
    drop(log);
    let stem = file_stem(chosen[0].base_offset);
    let final_log = d.join(format!("{stem}.log"));
    let cleaned_path = d.join(format!("{stem}.log.cleaned"));
    let swap_path = d.join(format!("{stem}.log.swap"));
    fs::write(&cleaned_path, &cleaned).unwrap();
    // The streamed form writes the indexes next to the log. Bogus content while the log is not yet in
    // place (open() must drop them); empty, and so consistent with any log, once it is.
    let index_content: &[u8] = if step >= Step::Renamed {
        &[]
    } else {
        &BOGUS_INDEX
    };
    for ext in ["index", "timeindex"] {
        fs::write(d.join(format!("{stem}.{ext}.cleaned")), index_content).unwrap();
    }
    if step >= Step::InfoWritten && with_info {
        fs::write(
            d.join(format!("{stem}.swapinfo")),
            encode_recovery_point(range_end),
        )
        .unwrap();
    }
    if step >= Step::Swapped {
        fs::rename(&cleaned_path, &swap_path).unwrap();
    }
    let delete_old = |s: &SegmentInfo| {
        let st = file_stem(s.base_offset);
        for ext in ["log", "index", "timeindex"] {
            let p = d.join(format!("{st}.{ext}"));
            fs::rename(&p, d.join(format!("{st}.{ext}.deleted"))).unwrap();
        }
    };
    if step >= Step::FirstOldDeleted {
        delete_old(&chosen[0]);
    }
    if step >= Step::AllOldDeleted {
        chosen[1..].iter().for_each(delete_old);
    }
    if step >= Step::IndexesRenamed {
        for ext in ["index", "timeindex"] {
            fs::rename(
                d.join(format!("{stem}.{ext}.cleaned")),
                d.join(format!("{stem}.{ext}")),
            )
            .unwrap();
        }
    }
    if step >= Step::Renamed {
        fs::rename(&swap_path, &final_log).unwrap();
    }
    (dir, before, after)
}

#[test]
fn open_completes_or_rolls_back_an_interrupted_swap() {
    let steps = [
        Step::CleanedWritten,
        Step::InfoWritten,
        Step::Swapped,
        Step::FirstOldDeleted,
        Step::AllOldDeleted,
        Step::IndexesRenamed,
        Step::Renamed,
    ];
    for with_info in [true, false] {
        for step in steps {
            let (dir, before, after) = crashed_swap(step, with_info);
            let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
            let got = offsets(&log);
            let want = if step >= Step::Swapped {
                &after
            } else {
                &before
            };
            assert_eq!(&got, want, "step {step:?}, swapinfo {with_info}");
            // Timestamp lookups go through the (rebuilt) time and offset indexes.
            for &o in want {
                let found = log.offset_for_timestamp(T0 + 100 * o).unwrap().unwrap();
                assert_eq!(found.offset, o, "lookup of {o} after {step:?}");
            }
            for suffix in [".cleaned", ".swap", ".swapinfo", ".deleted"] {
                assert!(
                    files_with_suffix(dir.path(), suffix).is_empty(),
                    "{suffix} left after {step:?}"
                );
            }
            // Every segment has its indexes again and the log keeps working.
            assert_eq!(
                segment_files(dir.path(), "log").len(),
                segment_files(dir.path(), "index").len()
            );
            append_n(&log, 1);
            assert_eq!(log.log_end_offset(), 16);
            drop(log);
            let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
            let mut want = want.clone();
            want.push(15);
            assert_eq!(offsets(&log), want, "reopen after {step:?}");
        }
    }
}

#[test]
fn readers_run_through_swaps_and_retention() {
    use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(PartitionLog::open(dir.path(), cfg(), T0).unwrap());
    append_n(&log, 60);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(AtomicOrdering::Relaxed) {
                let mut next = log.log_start_offset();
                while next < 60 {
                    match log.read(next, 400, i64::MAX, true) {
                        Ok(r) => {
                            // Whole, CRC-valid batches at or after the requested offset, in order.
                            let hs = batches_of(&r.records);
                            assert!(!hs.is_empty(), "empty read at {next}");
                            assert!(hs[0].last_offset() >= next);
                            next = hs.last().map_or(next, |h| h.last_offset() + 1);
                            reads += 1;
                        }
                        // Retention moved the start past us: start again from the new start.
                        Err(StorageError::OffsetOutOfRange { log_start, .. }) => {
                            assert!(log_start > next);
                            next = log_start;
                        }
                        Err(e) => panic!("read failed: {e}"),
                    }
                }
            }
            reads
        })
    };
    for round in 0..6 {
        let chosen: Vec<SegmentInfo> = log.cleanable_segments().into_iter().take(2).collect();
        if chosen.len() == 2 {
            let (cleaned, _) = every_other_batch(&chosen);
            let bases: Vec<i64> = chosen.iter().map(|s| s.base_offset).collect();
            log.replace_segments(&bases, cleaned).unwrap();
        }
        let start = log.log_start_offset();
        log.delete_records(start + 3 + round, 60).unwrap();
        log.enforce_retention(T0, 60).unwrap();
    }
    stop.store(true, AtomicOrdering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    let got = offsets(&log);
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(got.last(), Some(&59));
}

#[test]
fn crash_during_segment_deletion_leaves_a_consistent_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    append_n(&log, 12);
    let segs = seg_view(&log);
    drop(log);
    // Killed after the checkpoint was written but before any file was renamed.
    fs::write(
        dir.path().join(LOG_START_FILE),
        encode_recovery_point(segs[2].0),
    )
    .unwrap();
    // ... or after renaming only the first segment's log file.
    let stem = file_stem(segs[0].0);
    fs::rename(
        dir.path().join(format!("{stem}.log")),
        dir.path().join(format!("{stem}.log.deleted")),
    )
    .unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.log_start_offset(), segs[2].0);
    assert!(!dir.path().join(format!("{stem}.index")).exists());
    assert_eq!(offsets(&log), (segs[2].0..12).collect::<Vec<_>>());
    // The next retention pass removes what the crash left below the start.
    let r = log.enforce_retention(T0, 12).unwrap();
    assert_eq!(r.segments_deleted, 1);
    assert_eq!(seg_view(&log)[0].0, segs[2].0);
}

/// Splits whole batches into one slice per batch.
fn split_batches(bytes: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut pos = 0;
    for h in batches_of(bytes) {
        out.push(bytes.slice(pos..pos + h.total_size()));
        pos += h.total_size();
    }
    out
}

/// Names and contents of every file in `dir`.
fn dir_contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

fn assert_no_swap_leftovers(dir: &Path) {
    for suffix in [".cleaned", ".swap", ".swapinfo"] {
        assert!(
            files_with_suffix(dir, suffix).is_empty(),
            "{suffix} files left: {:?}",
            files_with_suffix(dir, suffix)
        );
    }
}

/// Segments of about 30 batches, with several sparse index entries each.
fn indexed_cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 3000,
        index_interval_bytes: 200,
        ..cfg()
    }
}

#[test]
fn streamed_replacement_equals_one_shot_and_writes_as_it_goes() {
    let one = tempfile::tempdir().unwrap();
    let many = tempfile::tempdir().unwrap();
    let log_one = PartitionLog::open(one.path(), indexed_cfg(), T0).unwrap();
    let log_many = PartitionLog::open(many.path(), indexed_cfg(), T0).unwrap();
    append_n(&log_one, 150);
    append_n(&log_many, 150);
    assert_eq!(dir_contents(one.path()), dir_contents(many.path()));
    let chosen: Vec<SegmentInfo> = log_one.cleanable_segments().into_iter().take(3).collect();
    assert_eq!(chosen.len(), 3);
    let bases: Vec<i64> = chosen.iter().map(|s| s.base_offset).collect();
    let (cleaned, kept) = every_other_batch(&chosen);

    log_one.replace_segments(&bases, cleaned.clone()).unwrap();

    let mut r = log_many.begin_replacement(&bases).unwrap();
    let pieces = split_batches(&cleaned);
    assert!(pieces.len() > 20);
    let cleaned_log = many
        .path()
        .join(format!("{}.log.cleaned", file_stem(bases[0])));
    // Chunks of 0, 1, 2, 3, ... batches; each is on disk as soon as it is appended.
    let mut appended = 0usize;
    let mut i = 0;
    let mut size = 0;
    while i < pieces.len() {
        let n = size.min(pieces.len() - i);
        let chunk: Vec<u8> = pieces[i..i + n].concat();
        r.append(&chunk).unwrap();
        appended += chunk.len();
        assert_eq!(
            fs::metadata(&cleaned_log).unwrap().len(),
            appended as u64,
            "data is written as it comes"
        );
        i += n;
        size += 1;
    }
    assert_eq!(files_with_suffix(many.path(), ".cleaned").len(), 3);
    r.commit().unwrap();

    let mut expected = kept.clone();
    expected.extend(chosen[2].next_segment_base..150);
    assert_eq!(offsets(&log_one), expected);
    assert_eq!(offsets(&log_many), expected);
    assert_eq!(seg_view(&log_one), seg_view(&log_many));
    assert_no_swap_leftovers(many.path());
    // Same log and index files byte for byte (the old files are already unlinked: delay 0 ...
    log_one.delete_expired_files(T0 + 1).unwrap();
    log_many.delete_expired_files(T0 + 1).unwrap();
    assert_eq!(dir_contents(one.path()), dir_contents(many.path()));
    let stem = file_stem(bases[0]);
    let index_path = many.path().join(format!("{stem}.index"));
    let time_path = many.path().join(format!("{stem}.timeindex"));
    let (index, time) = (
        fs::read(&index_path).unwrap(),
        fs::read(&time_path).unwrap(),
    );
    assert!(index.len() >= 16, "want several index entries");
    assert!(!time.is_empty());
    // ... and the indexes written on the fly equal the ones recovery rebuilds from the log.
    drop(log_many);
    fs::remove_file(&index_path).unwrap();
    fs::remove_file(&time_path).unwrap();
    let log_many = PartitionLog::open(many.path(), indexed_cfg(), T0).unwrap();
    assert_eq!(fs::read(&index_path).unwrap(), index);
    assert_eq!(offsets(&log_many), expected);
    for &o in &expected {
        let found = log_many
            .offset_for_timestamp(T0 + 100 * o)
            .unwrap()
            .unwrap();
        assert_eq!(found.offset, o);
    }
}

#[test]
fn dropped_replacement_leaves_the_log_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    append_n(&log, 15);
    let chosen: Vec<SegmentInfo> = log.cleanable_segments().into_iter().take(3).collect();
    let bases: Vec<i64> = chosen.iter().map(|s| s.base_offset).collect();
    let (cleaned, kept) = every_other_batch(&chosen);
    let before_files = dir_contents(dir.path());
    let before_segs = seg_view(&log);

    let mut r = log.begin_replacement(&bases).unwrap();
    r.append(&split_batches(&cleaned)[0]).unwrap();
    assert_eq!(files_with_suffix(dir.path(), ".cleaned").len(), 3);
    // One live replacement per base: a second would write the same files.
    assert!(matches!(
        log.begin_replacement(&bases[..1]),
        Err(StorageError::SegmentsChanged(_))
    ));
    // Other bases are independent.
    drop(log.begin_replacement(&bases[1..2]).unwrap());
    assert_eq!(files_with_suffix(dir.path(), ".cleaned").len(), 3);
    drop(r);

    assert!(files_with_suffix(dir.path(), ".cleaned").is_empty());
    assert_eq!(dir_contents(dir.path()), before_files);
    assert_eq!(seg_view(&log), before_segs);
    assert_eq!(offsets(&log), (0..15).collect::<Vec<_>>());
    // The base is free again: a new replacement goes through.
    let mut r = log.begin_replacement(&bases).unwrap();
    r.append(&cleaned).unwrap();
    r.commit().unwrap();
    let mut expected = kept;
    expected.extend(chosen[2].next_segment_base..15);
    assert_eq!(offsets(&log), expected);
    assert_no_swap_leftovers(dir.path());
}

#[test]
fn invalid_batch_in_a_later_append_fails_and_swaps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    append_n(&log, 15);
    let chosen: Vec<SegmentInfo> = log.cleanable_segments().into_iter().take(3).collect();
    let bases: Vec<i64> = chosen.iter().map(|s| s.base_offset).collect();
    let (cleaned, _) = every_other_batch(&chosen);
    let pieces = split_batches(&cleaned);
    let beyond = log.cleanable_segments()[3]
        .read_batches(0, usize::MAX)
        .unwrap();
    let mut corrupt = pieces[2].to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let mut wrong_magic = pieces[2].to_vec();
    wrong_magic[16] = 1;
    let before_files = dir_contents(dir.path());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("repeated batch", pieces[1].to_vec()),
        ("earlier batch", pieces[0].to_vec()),
        ("batch past the replaced range", beyond.to_vec()),
        ("corrupt CRC", corrupt),
        ("unsupported magic", wrong_magic),
        ("half a batch", pieces[2][..40].to_vec()),
        (
            "whole batch then a torn one",
            [&pieces[2][..], &pieces[3][..70]].concat(),
        ),
    ];
    for (what, bad) in cases {
        let mut r = log.begin_replacement(&bases).unwrap();
        r.append(&pieces[..2].concat()).unwrap();
        let err = r.append(&bad).expect_err(what);
        assert!(
            matches!(err, StorageError::Batch(_) | StorageError::InvalidRecord(_)),
            "{what}: {err:?}"
        );
        // The replacement is now unusable: even valid input is refused, and so is the commit.
        assert!(r.append(&pieces[2]).is_err(), "{what}");
        assert!(
            matches!(r.commit(), Err(StorageError::InvalidRecord(_))),
            "{what}"
        );
        assert_eq!(dir_contents(dir.path()), before_files, "{what}");
        assert_eq!(offsets(&log), (0..15).collect::<Vec<_>>(), "{what}");
    }
}

#[test]
fn retention_between_begin_and_commit_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    append_n(&log, 24);
    let segs = log.cleanable_segments();
    assert!(segs.len() >= 6);

    // Retention of segments before the replaced ones shifts them in the list but changes nothing else.
    let (cleaned, kept) = every_other_batch(&segs[2..4]);
    let bases = [segs[2].base_offset, segs[3].base_offset];
    let mut r = log.begin_replacement(&bases).unwrap();
    r.append(&cleaned).unwrap();
    assert_eq!(
        log.delete_records(segs[1].base_offset, 24).unwrap(),
        segs[1].base_offset
    );
    r.commit().unwrap();
    let mut expected: Vec<i64> = (segs[1].base_offset..segs[2].base_offset).collect();
    expected.extend(&kept);
    expected.extend(segs[4].base_offset..24);
    assert_eq!(offsets(&log), expected);

    // DeleteRecords removing a replaced segment.
    let segs = log.cleanable_segments();
    let bases = [segs[1].base_offset, segs[2].base_offset];
    let (cleaned, _) = every_other_batch(&segs[1..3]);
    let mut r = log.begin_replacement(&bases).unwrap();
    r.append(&cleaned).unwrap();
    log.delete_records(segs[2].base_offset, 24).unwrap();
    assert!(matches!(r.commit(), Err(StorageError::SegmentsChanged(_))));
    assert_no_swap_leftovers(dir.path());
    assert_eq!(offsets(&log), (segs[2].base_offset..24).collect::<Vec<_>>());

    // Size retention removing them.
    let segs = log.cleanable_segments();
    let mut r = log.begin_replacement(&[segs[0].base_offset]).unwrap();
    r.append(&split_batches(&segs[0].read_batches(0, usize::MAX).unwrap())[0])
        .unwrap();
    log.update_config(LogConfig {
        retention_bytes: 0,
        ..cfg()
    });
    assert!(log.enforce_retention(T0, 24).unwrap().segments_deleted >= 1);
    log.update_config(cfg());
    assert!(matches!(r.commit(), Err(StorageError::SegmentsChanged(_))));
    assert_no_swap_leftovers(dir.path());

    // A follower truncation into the replaced segment, after which the log regrows the same shape: the
    // segment list has the same base offsets again, but the cleaned output still holds the truncated
    // records, so swapping it in would resurrect them.
    append_n(&log, 12);
    let segs = log.cleanable_segments();
    let (s0, s1) = (segs[0].base_offset, segs[1].base_offset);
    let shape = seg_view(&log);
    let old_content = segs[0].read_batches(0, usize::MAX).unwrap();
    let mut r = log.begin_replacement(&[s0]).unwrap();
    r.append(&old_content).unwrap();
    log.truncate_to(s0 + 1).unwrap();
    append_n(&log, 11);
    let regrown: Vec<i64> = seg_view(&log).iter().map(|s| s.0).collect();
    assert_eq!(
        regrown,
        shape.iter().map(|s| s.0).collect::<Vec<_>>(),
        "same bases again"
    );
    assert!(regrown.contains(&s1));
    assert!(matches!(r.commit(), Err(StorageError::SegmentsChanged(_))));
    assert_no_swap_leftovers(dir.path());
    let got = offsets(&log);
    assert!(got.windows(2).all(|w| w[0] + 1 == w[1]), "{got:?}");
}

#[test]
fn crash_after_some_appends_is_rolled_back_by_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), indexed_cfg(), T0).unwrap();
    append_n(&log, 100);
    let chosen: Vec<SegmentInfo> = log.cleanable_segments().into_iter().take(2).collect();
    let bases: Vec<i64> = chosen.iter().map(|s| s.base_offset).collect();
    let (cleaned, kept) = every_other_batch(&chosen);
    let pieces = split_batches(&cleaned);
    let before = offsets(&log);
    let mut r = log.begin_replacement(&bases).unwrap();
    let half = pieces.len() / 2;
    r.append(&pieces[..half].concat()).unwrap();
    r.append(&pieces[half..half + 2].concat()).unwrap();
    // kill -9: no drop, no commit; the files stay exactly as written.
    std::mem::forget(r);
    drop(log);
    let cleaned_files = files_with_suffix(dir.path(), ".cleaned");
    assert_eq!(cleaned_files.len(), 3, "{cleaned_files:?}");
    let stem = file_stem(bases[0]);
    assert!(
        fs::metadata(dir.path().join(format!("{stem}.log.cleaned")))
            .unwrap()
            .len()
            > 0
    );
    assert!(
        fs::metadata(dir.path().join(format!("{stem}.index.cleaned")))
            .unwrap()
            .len()
            > 0
    );

    let log = PartitionLog::open(dir.path(), indexed_cfg(), T0).unwrap();
    assert_no_swap_leftovers(dir.path());
    assert_eq!(offsets(&log), before);
    assert_eq!(
        segment_files(dir.path(), "log").len(),
        segment_files(dir.path(), "index").len()
    );
    // The log works, and the cleaner can start over.
    let mut r = log.begin_replacement(&bases).unwrap();
    for piece in &pieces {
        r.append(piece).unwrap();
    }
    r.commit().unwrap();
    append_n(&log, 1);
    let mut expected = kept;
    expected.extend(chosen[1].next_segment_base..101);
    assert_eq!(offsets(&log), expected);
    drop(log);
    let log = PartitionLog::open(dir.path(), indexed_cfg(), T0).unwrap();
    assert_eq!(offsets(&log), expected);
}

#[test]
fn appends_and_rolls_during_a_replacement_do_not_block_or_break_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(PartitionLog::open(dir.path(), cfg(), T0).unwrap());
    append_n(&log, 15);
    let chosen: Vec<SegmentInfo> = log.cleanable_segments().into_iter().take(2).collect();
    let bases: Vec<i64> = chosen.iter().map(|s| s.base_offset).collect();
    let (cleaned, kept) = every_other_batch(&chosen);
    let mut r = log.begin_replacement(&bases).unwrap();
    r.append(&cleaned).unwrap();
    // The append lock is free between begin and commit: a producer on another thread rolls segments.
    let producer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || append_n(&log, 10))
    };
    producer.join().unwrap();
    r.commit().unwrap();
    let mut expected = kept;
    expected.extend(chosen[1].next_segment_base..25);
    assert_eq!(offsets(&log), expected);
    assert_no_swap_leftovers(dir.path());
}
