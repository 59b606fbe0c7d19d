//! Tests of the leader-epoch cache as the partition log maintains it: appends (leader and replicated),
//! truncation, log start moves, persistence, rebuild and crash repair on open, and the high-watermark
//! checkpoint.

use std::path::Path;

use super::tests::{segment_files, small_config, B, T0};
use super::*;
use crate::epoch_cache::LEADER_EPOCH_CHECKPOINT_FILE;

/// Small segments, no time retention, files deleted at once.
fn cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        retention_ms: -1,
        file_delete_delay_ms: 0,
        ..small_config()
    }
}

/// Appends a 2-record batch with `epoch`; returns its base offset.
fn append(log: &PartitionLog, epoch: i32) -> i64 {
    log.append(B::plain(2, T0).encode(), epoch, T0)
        .expect("append")
        .base_offset
}

fn checkpoint_text(dir: &Path) -> String {
    fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT_FILE)).expect("checkpoint file")
}

/// Epochs 0, 0, 2, 5 at offsets 0, 2, 4, 6 (log end 8).
fn log_with_epochs_0_0_2_5(dir: &Path, config: LogConfig) -> PartitionLog {
    let log = PartitionLog::open(dir, config, T0).unwrap();
    for epoch in [0, 0, 2, 5] {
        append(&log, epoch);
    }
    log
}

#[test]
fn leader_appends_record_each_new_epoch_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_epochs_0_0_2_5(dir.path(), LogConfig::default());
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4), (5, 6)]);
    assert_eq!(checkpoint_text(dir.path()), "0\n3\n0 0\n2 4\n5 6\n");
    assert_eq!(log.end_offset_for_epoch(5), (5, 8));
    assert_eq!(log.end_offset_for_epoch(2), (2, 6));
    assert_eq!(log.end_offset_for_epoch(0), (0, 4));
    assert_eq!(
        log.end_offset_for_epoch(1),
        (0, 4),
        "gap maps to the epoch below"
    );
    assert_eq!(log.end_offset_for_epoch(4), (2, 6));
    assert_eq!(log.end_offset_for_epoch(6), (-1, -1));
    assert_eq!(log.end_offset_for_epoch(-1), (-1, -1));
    // The latest epoch ends at the log end as it grows.
    append(&log, 5);
    assert_eq!(log.end_offset_for_epoch(5), (5, 10));
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4), (5, 6)]);
}

#[test]
fn no_checkpoint_for_a_log_that_never_had_an_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default(), T0).unwrap();
    assert!(log.leader_epochs().is_empty());
    assert_eq!(log.end_offset_for_epoch(0), (-1, -1));
    assert!(!dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE).exists());
}

#[test]
fn log_without_epochs_gets_an_empty_checkpoint_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default(), T0).unwrap();
    append(&log, -1);
    assert!(log.leader_epochs().is_empty());
    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default(), T0).unwrap();
    assert!(log.leader_epochs().is_empty());
    assert_eq!(checkpoint_text(dir.path()), "0\n0\n");
}

#[test]
fn stale_leader_epoch_does_not_rewrite_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_epochs_0_0_2_5(dir.path(), LogConfig::default());
    append(&log, 3);
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4), (5, 6)]);
}

#[test]
fn epochs_survive_clean_and_unclean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_epochs_0_0_2_5(dir.path(), cfg());
    log.close().unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4), (5, 6)]);
    append(&log, 7);
    drop(log); // no close: recovery path
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4), (5, 6), (7, 8)]);
}

#[test]
fn missing_checkpoint_is_rebuilt_from_batch_headers() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_epochs_0_0_2_5(dir.path(), cfg());
    assert!(segment_files(dir.path(), "log").len() > 1, "spans segments");
    drop(log);
    fs::remove_file(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4), (5, 6)]);
    assert_eq!(checkpoint_text(dir.path()), "0\n3\n0 0\n2 4\n5 6\n");
}

#[test]
fn corrupt_checkpoint_is_rebuilt_from_batch_headers() {
    for garbage in [
        &b"0\n3\n0 0\n2 4\n"[..],
        b"not a checkpoint",
        b"\xff\xfe\x00",
        b"",
        b"0\n2\n5 0\n2 4\n",
    ] {
        let dir = tempfile::tempdir().unwrap();
        drop(log_with_epochs_0_0_2_5(dir.path(), cfg()));
        fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE), garbage).unwrap();
        let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
        assert_eq!(
            log.leader_epochs(),
            vec![(0, 0), (2, 4), (5, 6)],
            "after {garbage:?}"
        );
        assert_eq!(checkpoint_text(dir.path()), "0\n3\n0 0\n2 4\n5 6\n");
    }
}

#[test]
fn rebuild_keeps_the_epoch_of_a_batch_cut_by_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_epochs_0_0_2_5(dir.path(), cfg());
    // Inside epoch 2's batch [4, 5].
    log.delete_records(5, 8).unwrap();
    assert_eq!(log.leader_epochs(), vec![(2, 5), (5, 6)]);
    drop(log);
    fs::remove_file(dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE)).unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.leader_epochs(), vec![(2, 5), (5, 6)]);
}

#[test]
fn checkpoint_missing_the_last_batch_epoch_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    drop(log_with_epochs_0_0_2_5(dir.path(), cfg()));
    // As if the write that recorded epoch 5 was lost.
    fs::write(
        dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE),
        "0\n2\n0 0\n2 4\n",
    )
    .unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4), (5, 6)]);
}

#[test]
fn entries_beyond_the_log_end_are_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(log_with_epochs_0_0_2_5(dir.path(), cfg()));
    // A crash between truncating the log and the checkpoint: entries at and past the end (8).
    fs::write(
        dir.path().join(LEADER_EPOCH_CHECKPOINT_FILE),
        "0\n5\n0 0\n2 4\n5 6\n7 8\n9 20\n",
    )
    .unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4), (5, 6)]);
    assert_eq!(checkpoint_text(dir.path()), "0\n3\n0 0\n2 4\n5 6\n");
}

#[test]
fn torn_tail_removed_by_recovery_takes_its_epoch_along() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default(), T0).unwrap();
    append(&log, 0);
    append(&log, 4);
    assert_eq!(log.leader_epochs(), vec![(0, 0), (4, 2)]);
    drop(log);
    let seg = segment_files(dir.path(), "log").pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default(), T0).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(log.leader_epochs(), vec![(0, 0)]);
    assert_eq!(log.end_offset_for_epoch(0), (0, 2));
}

#[test]
fn truncate_to_removes_later_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_epochs_0_0_2_5(dir.path(), cfg());
    log.truncate_to(6).unwrap();
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4)]);
    assert_eq!(log.end_offset_for_epoch(2), (2, 6));
    // Inside epoch 2's batch [4, 5]: the whole batch goes, and the epoch with it.
    log.truncate_to(5).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.leader_epochs(), vec![(0, 0)]);
    assert_eq!(checkpoint_text(dir.path()), "0\n1\n0 0\n");
    // New data under a new epoch starts right where the log now ends.
    append(&log, 6);
    assert_eq!(log.leader_epochs(), vec![(0, 0), (6, 4)]);
}

#[test]
fn truncate_at_log_end_drops_an_epoch_without_data() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_epochs_0_0_2_5(dir.path(), LogConfig::default());
    // Became leader of epoch 7 at its end (8), lost leadership before writing anything.
    log.assign_leader_epoch(7, 8).unwrap();
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4), (5, 6), (7, 8)]);
    assert_eq!(log.end_offset_for_epoch(5), (5, 8));
    log.truncate_to(8).unwrap();
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4), (5, 6)]);
}

#[test]
fn truncate_below_log_start_clears_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_epochs_0_0_2_5(dir.path(), cfg());
    log.delete_records(6, 8).unwrap();
    log.truncate_to(3).unwrap();
    assert_eq!(log.log_start_offset(), 3);
    assert!(log.leader_epochs().is_empty());
    append(&log, 9);
    assert_eq!(log.leader_epochs(), vec![(9, 3)]);
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.leader_epochs(), vec![(9, 3)]);
}

#[test]
fn delete_records_moves_the_first_entry() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_epochs_0_0_2_5(dir.path(), cfg());
    assert_eq!(log.delete_records(3, 8).unwrap(), 3);
    assert_eq!(log.leader_epochs(), vec![(0, 3), (2, 4), (5, 6)]);
    assert_eq!(log.delete_records(5, 8).unwrap(), 5);
    assert_eq!(log.leader_epochs(), vec![(2, 5), (5, 6)]);
    assert_eq!(
        log.end_offset_for_epoch(1),
        (1, 5),
        "before the first epoch"
    );
    assert_eq!(checkpoint_text(dir.path()), "0\n2\n2 5\n5 6\n");
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.leader_epochs(), vec![(2, 5), (5, 6)]);
}

#[test]
fn size_retention_moves_the_first_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: 0,
        ..cfg()
    };
    let log = PartitionLog::open(dir.path(), config, T0).unwrap();
    // Two batches per segment: [0, 4) [4, 8) [8, 10); epoch 0 spans the first boundary.
    for epoch in [0, 0, 0, 2, 5] {
        append(&log, epoch);
    }
    assert_eq!(segment_files(dir.path(), "log").len(), 3);
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 6), (5, 8)]);
    let report = log.enforce_retention(T0, 4).unwrap();
    assert_eq!(report.segments_deleted, 1);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(log.leader_epochs(), vec![(0, 4), (2, 6), (5, 8)]);
    // Exclusive at an epoch's own start: epoch 0 is gone, epoch 2 keeps its entry.
    log.delete_records(6, 10).unwrap();
    assert_eq!(log.leader_epochs(), vec![(2, 6), (5, 8)]);
    // Everything below the high watermark goes (the active segment is rolled first): the latest epoch
    // now starts at the new log start.
    log.enforce_retention(T0, 10).unwrap();
    assert_eq!(log.log_start_offset(), 10);
    assert_eq!(log.leader_epochs(), vec![(5, 10)]);
    assert_eq!(log.end_offset_for_epoch(5), (5, 10));
    drop(log);
    // As Kafka's log loading (truncateFromEnd(log end)), an entry with no data left is dropped on open:
    // the next leader records its epoch anyway when it takes over.
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert!(log.leader_epochs().is_empty());
}

#[test]
fn log_start_checkpoint_ahead_of_epoch_checkpoint_is_applied_on_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(log_with_epochs_0_0_2_5(dir.path(), cfg()));
    // A crash after DeleteRecords made the log start durable but before the epoch checkpoint followed.
    fs::write(dir.path().join(LOG_START_FILE), encode_recovery_point(5)).unwrap();
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.log_start_offset(), 5);
    assert_eq!(log.leader_epochs(), vec![(2, 5), (5, 6)]);
}

#[test]
fn replicated_appends_record_the_leaders_epochs() {
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = log_with_epochs_0_0_2_5(leader_dir.path(), LogConfig::default());
    let data = leader.read(0, usize::MAX, i64::MAX, true).unwrap().records;
    let follower_dir = tempfile::tempdir().unwrap();
    let follower = PartitionLog::open(follower_dir.path(), LogConfig::default(), T0).unwrap();
    follower.append_replicated(data).unwrap();
    assert_eq!(follower.log_end_offset(), 8);
    assert_eq!(follower.leader_epochs(), vec![(0, 0), (2, 4), (5, 6)]);
    assert_eq!(
        checkpoint_text(follower_dir.path()),
        "0\n3\n0 0\n2 4\n5 6\n"
    );
}

#[test]
fn follower_placeholder_epoch_is_replaced_by_the_leaders_older_epoch() {
    // The follower became leader of epoch 7 at offset 4 without writing, then follows a leader whose
    // log continues at 4 with epoch 5 data: the cache must describe that data, not the placeholder.
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = log_with_epochs_0_0_2_5(leader_dir.path(), LogConfig::default());
    let data = leader.read(0, usize::MAX, i64::MAX, true).unwrap().records;
    let first_two = {
        let h0 = BatchHeader::parse(&data).unwrap();
        let h1 = BatchHeader::parse(&data[h0.total_size()..]).unwrap();
        data.slice(..h0.total_size() + h1.total_size())
    };
    let rest = data.slice(first_two.len()..);
    let follower_dir = tempfile::tempdir().unwrap();
    let follower = PartitionLog::open(follower_dir.path(), LogConfig::default(), T0).unwrap();
    follower.append_replicated(first_two).unwrap();
    follower.assign_leader_epoch(7, 4).unwrap();
    follower.append_replicated(rest).unwrap();
    assert_eq!(follower.leader_epochs(), vec![(0, 0), (2, 4), (5, 6)]);
}

#[test]
fn assign_leader_epoch_rules() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_epochs_0_0_2_5(dir.path(), LogConfig::default());
    log.assign_leader_epoch(6, 8).unwrap();
    // Followers asking for epoch 5 learn it ended at the new leader's start.
    assert_eq!(log.end_offset_for_epoch(5), (5, 8));
    assert_eq!(log.end_offset_for_epoch(6), (6, 8));
    log.assign_leader_epoch(6, 8).unwrap();
    log.assign_leader_epoch(-1, 8).unwrap();
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4), (5, 6), (6, 8)]);
    assert!(matches!(
        log.assign_leader_epoch(8, 9),
        Err(StorageError::OffsetOutOfRange { requested: 9, .. })
    ));
    // Appends of the new leader's epoch keep the entry it recorded.
    append(&log, 6);
    assert_eq!(log.leader_epochs(), vec![(0, 0), (2, 4), (5, 6), (6, 8)]);
    assert_eq!(log.end_offset_for_epoch(6), (6, 10));
    assert_eq!(checkpoint_text(dir.path()), "0\n4\n0 0\n2 4\n5 6\n6 8\n");
}

#[test]
fn high_watermark_checkpoint_round_trip_and_clamping() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_epochs_0_0_2_5(dir.path(), cfg());
    assert_eq!(log.read_high_watermark(), None);
    log.write_high_watermark(6).unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join(HIGH_WATERMARK_FILE)).unwrap(),
        "0\n1\n6\n"
    );
    assert_eq!(log.read_high_watermark(), Some(6));
    drop(log);
    let log = PartitionLog::open(dir.path(), cfg(), T0).unwrap();
    assert_eq!(log.read_high_watermark(), Some(6));
    // Never above the log end (a crash may have cut the log), never below the log start.
    log.write_high_watermark(100).unwrap();
    assert_eq!(log.read_high_watermark(), Some(8));
    log.delete_records(4, 8).unwrap();
    log.write_high_watermark(2).unwrap();
    assert_eq!(log.read_high_watermark(), Some(4));
    for bad in ["", "0\n1\n", "0\n1\nx\n", "1\n1\n5\n", "0\n1\n5\n6\n"] {
        fs::write(dir.path().join(HIGH_WATERMARK_FILE), bad).unwrap();
        assert_eq!(log.read_high_watermark(), None, "accepted {bad:?}");
    }
}
