//! Tests of the metadata Raft storage through its public API: openraft's conformance suite, and crash
//! recovery (reopening the files a previous instance left behind).

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{blank_ent, log_id, membership_ent, StoreBuilder, Suite};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, RaftLogReader,
    RaftSnapshotBuilder, StorageError, Vote,
};
use tempfile::TempDir;
use uuid::Uuid;

use super::log_store::LOG_FILE_NAME;
use super::state_machine::SNAPSHOT_FILE_NAME;
use super::{
    Applied, MetadataBatch, MetadataRaftConfig, MetadataStateMachine, RaftLogStore, RaftStoreError,
};
use crate::metadata::MetadataRecord;

type C = MetadataRaftConfig;

/// Gives every conformance test a fresh directory, removed when the guard drops.
struct TempStoreBuilder;

impl StoreBuilder<C, RaftLogStore, MetadataStateMachine, TempDir> for TempStoreBuilder {
    async fn build(
        &self,
    ) -> Result<(TempDir, RaftLogStore, MetadataStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir()
            .map_err(|e| StorageError::from_io_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        let log = RaftLogStore::open(&dir.path().join("log"))
            .map_err(|e| e.into_storage(ErrorSubject::Logs, ErrorVerb::Read))?;
        let sm = MetadataStateMachine::open(&dir.path().join("sm"))
            .map_err(|e| e.into_storage(ErrorSubject::StateMachine, ErrorVerb::Read))?;
        Ok((dir, log, sm))
    }
}

// A plain test: the suite runs each case on its own runtime.
#[test]
fn openraft_conformance_suite() {
    Suite::test_all(TempStoreBuilder).expect("conformance suite");
}

fn normal_ent(term: u64, index: u64, records: Vec<MetadataRecord>) -> Entry<C> {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(MetadataBatch { records }),
    }
}

fn topic(name: &str, topic_id: Uuid) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.to_string(),
        topic_id,
    }
}

async fn indexes(store: &mut RaftLogStore) -> Vec<u64> {
    store
        .try_get_log_entries(..)
        .await
        .expect("read")
        .iter()
        .map(|e| e.log_id.index)
        .collect()
}

async fn append_blanks(store: &mut RaftLogStore, range: std::ops::Range<u64>) {
    store
        .blocking_append(range.map(|i| blank_ent::<C>(1, 1, i)))
        .await
        .expect("append");
}

fn log_len(dir: &Path) -> u64 {
    fs::metadata(dir.join(LOG_FILE_NAME)).expect("stat").len()
}

#[tokio::test]
async fn torn_last_frame_is_cut_on_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = RaftLogStore::open(dir.path()).expect("open");
    append_blanks(&mut store, 0..5).await;
    drop(store);
    let good_len = log_len(dir.path());

    // A crash in the middle of an append: a header promising more bytes than were written.
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.path().join(LOG_FILE_NAME))
        .expect("open log");
    file.write_all(&200u32.to_be_bytes()).expect("write");
    file.write_all(&[0xAB; 4 + 17]).expect("write");
    drop(file);

    let mut store = RaftLogStore::open(dir.path()).expect("reopen");
    assert_eq!(indexes(&mut store).await, vec![0, 1, 2, 3, 4]);
    assert_eq!(log_len(dir.path()), good_len);
    // The log continues where the intact frames end, and that survives another reopen.
    append_blanks(&mut store, 5..6).await;
    drop(store);
    let mut store = RaftLogStore::open(dir.path()).expect("reopen");
    assert_eq!(indexes(&mut store).await, vec![0, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn frame_with_bad_checksum_and_everything_after_it_is_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = RaftLogStore::open(dir.path()).expect("open");
    append_blanks(&mut store, 0..3).await;
    let two_frames = {
        // Length of the file holding frames 0 and 1 only: truncate, measure, then re-append 2.
        store.truncate(log_id(1, 1, 2)).await.expect("truncate");
        let len = log_len(dir.path());
        append_blanks(&mut store, 2..4).await;
        len
    };
    drop(store);

    // Flip one payload byte of frame 2: its checksum no longer matches.
    let path = dir.path().join(LOG_FILE_NAME);
    let mut bytes = fs::read(&path).expect("read");
    let at = two_frames as usize + 8 + 3;
    bytes[at] ^= 0x01;
    fs::write(&path, &bytes).expect("write");

    let mut store = RaftLogStore::open(dir.path()).expect("reopen");
    assert_eq!(indexes(&mut store).await, vec![0, 1]);
    assert_eq!(log_len(dir.path()), two_frames);
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 1)));
}

#[tokio::test]
async fn vote_and_committed_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = RaftLogStore::open(dir.path()).expect("open");
    assert_eq!(store.read_vote().await.expect("vote"), None);
    let vote = Vote::new_committed(3, 2);
    store.save_vote(&vote).await.expect("save vote");
    store
        .save_committed(Some(log_id(3, 2, 7)))
        .await
        .expect("save committed");
    drop(store);

    let mut store = RaftLogStore::open(dir.path()).expect("reopen");
    assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
    assert_eq!(
        store.read_committed().await.expect("committed"),
        Some(log_id(3, 2, 7))
    );
    assert!(!dir.path().join("meta.json.tmp").exists());
}

#[tokio::test]
async fn truncate_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = RaftLogStore::open(dir.path()).expect("open");
    append_blanks(&mut store, 0..6).await;
    store.truncate(log_id(1, 1, 3)).await.expect("truncate");
    // A new leader's entries replace the truncated suffix.
    store
        .blocking_append([blank_ent::<C>(2, 2, 3)])
        .await
        .expect("append");
    drop(store);

    let mut store = RaftLogStore::open(dir.path()).expect("reopen");
    assert_eq!(indexes(&mut store).await, vec![0, 1, 2, 3]);
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id, Some(log_id(2, 2, 3)));
}

#[tokio::test]
async fn purge_then_reopen_keeps_last_purged_and_remaining_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = RaftLogStore::open(dir.path()).expect("open");
    append_blanks(&mut store, 0..10).await;
    store.purge(log_id(1, 1, 5)).await.expect("purge");
    drop(store);

    let mut store = RaftLogStore::open(dir.path()).expect("reopen");
    assert_eq!(indexes(&mut store).await, vec![6, 7, 8, 9]);
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 9)));
    // A purge below the persisted one must not move it back.
    store.purge(log_id(1, 1, 2)).await.expect("purge");
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 5)));
}

#[tokio::test]
async fn purge_past_the_end_then_append_survives_reopen() {
    // What a follower's log goes through when it installs a snapshot beyond its last entry.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = RaftLogStore::open(dir.path()).expect("open");
    append_blanks(&mut store, 0..3).await;
    store.purge(log_id(4, 1, 20)).await.expect("purge");
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id, Some(log_id(4, 1, 20)));
    store
        .blocking_append([blank_ent::<C>(4, 1, 21), blank_ent::<C>(4, 1, 22)])
        .await
        .expect("append");
    drop(store);

    let mut store = RaftLogStore::open(dir.path()).expect("reopen");
    assert_eq!(indexes(&mut store).await, vec![21, 22]);
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(4, 1, 20)));
    assert_eq!(state.last_log_id, Some(log_id(4, 1, 22)));
}

#[tokio::test]
async fn reader_handle_sees_appends_and_truncates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = RaftLogStore::open(dir.path()).expect("open");
    let mut reader = store.get_log_reader().await;
    append_blanks(&mut store, 0..4).await;
    assert_eq!(
        reader.try_get_log_entries(1..3).await.expect("read").len(),
        2
    );
    store.truncate(log_id(1, 1, 2)).await.expect("truncate");
    assert_eq!(reader.try_get_log_entries(..).await.expect("read").len(), 2);
}

#[tokio::test]
async fn apply_folds_records_and_publishes_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sm = MetadataStateMachine::open(dir.path()).expect("open");
    let mut images = sm.subscribe();
    assert_eq!(images.borrow_and_update().metadata_offset, 0);

    let id = Uuid::new_v4();
    let replies = sm
        .apply([
            membership_ent::<C>(1, 1, 0, vec![BTreeSet::from([1])]),
            blank_ent::<C>(1, 1, 1),
            normal_ent(1, 2, vec![topic("orders", id)]),
        ])
        .await
        .expect("apply");
    assert_eq!(
        replies,
        vec![
            Applied { offset: 0 },
            Applied { offset: 1 },
            Applied { offset: 2 }
        ]
    );
    assert!(images.has_changed().expect("sender alive"));
    let image = images.borrow_and_update().clone();
    assert_eq!(image.metadata_offset, 2);
    assert_eq!(image.topic("orders").map(|t| t.topic_id), Some(id));

    let (applied, membership) = sm.applied_state().await.expect("state");
    assert_eq!(applied, Some(log_id(1, 1, 2)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 1, 0)));

    // A subscriber taken later (from a kept receiver) starts at the latest image.
    let late = images.clone();
    assert_eq!(late.borrow().metadata_offset, 2);
}

#[tokio::test]
async fn snapshot_then_reopen_restores_the_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sm = MetadataStateMachine::open(dir.path()).expect("open");
    let id = Uuid::new_v4();
    sm.apply([
        membership_ent::<C>(1, 1, 0, vec![BTreeSet::from([1, 2, 3])]),
        normal_ent(1, 1, vec![topic("orders", id)]),
        normal_ent(
            1,
            2,
            vec![MetadataRecord::ProducerIds {
                next_block_start: 5000,
            }],
        ),
    ])
    .await
    .expect("apply");
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1, 2)));
    // Applied after the snapshot: lost on restart, openraft re-applies it from the log.
    sm.apply([normal_ent(1, 3, vec![topic("later", Uuid::new_v4())])])
        .await
        .expect("apply");
    drop(sm);

    let mut sm = MetadataStateMachine::open(dir.path()).expect("reopen");
    let (applied, membership) = sm.applied_state().await.expect("state");
    assert_eq!(applied, Some(log_id(1, 1, 2)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 1, 0)));
    let image = sm.subscribe().borrow().clone();
    assert_eq!(image.metadata_offset, 2);
    assert_eq!(image.next_producer_id_block, 5000);
    assert_eq!(image.topic("orders").map(|t| t.topic_id), Some(id));
    assert_eq!(
        image.topic_by_id(&id).map(|t| t.name.as_str()),
        Some("orders")
    );
    assert!(image.topic("later").is_none());
    let current = sm
        .get_current_snapshot()
        .await
        .expect("current")
        .expect("some snapshot");
    assert_eq!(current.meta, snapshot.meta);

    // A snapshot built after the restart gets an id distinct from the one before.
    sm.apply([blank_ent::<C>(1, 1, 3)]).await.expect("apply");
    let next = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");
    assert_ne!(next.meta.snapshot_id, snapshot.meta.snapshot_id);
}

#[tokio::test]
async fn installed_snapshot_replaces_state_publishes_and_persists() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let mut leader = MetadataStateMachine::open(leader_dir.path()).expect("open");
    let mut follower = MetadataStateMachine::open(follower_dir.path()).expect("open");
    let id = Uuid::new_v4();
    leader
        .apply([
            membership_ent::<C>(1, 1, 0, vec![BTreeSet::from([1])]),
            normal_ent(1, 1, vec![topic("orders", id)]),
        ])
        .await
        .expect("apply");
    follower
        .apply([normal_ent(1, 0, vec![topic("stale", Uuid::new_v4())])])
        .await
        .expect("apply");
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");

    let mut images = follower.subscribe();
    let mut receiving = follower.begin_receiving_snapshot().await.expect("begin");
    assert!(receiving.get_ref().is_empty());
    *receiving = *snapshot.snapshot;
    follower
        .install_snapshot(&snapshot.meta, receiving)
        .await
        .expect("install");
    assert!(images.has_changed().expect("sender alive"));
    let image = images.borrow_and_update().clone();
    assert!(image.topic("orders").is_some());
    assert!(image.topic("stale").is_none());
    assert_eq!(
        follower.applied_state().await.expect("state").0,
        Some(log_id(1, 1, 1))
    );
    drop(follower);

    let mut follower = MetadataStateMachine::open(follower_dir.path()).expect("reopen");
    assert!(follower.subscribe().borrow().topic("orders").is_some());
    let current = follower
        .get_current_snapshot()
        .await
        .expect("current")
        .expect("some snapshot");
    assert_eq!(current.meta, snapshot.meta);
}

#[tokio::test]
async fn snapshot_whose_content_disagrees_with_its_metadata_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut leader = MetadataStateMachine::open(dir.path()).expect("open");
    leader
        .apply([blank_ent::<C>(1, 1, 4)])
        .await
        .expect("apply");
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build");

    let other = tempfile::tempdir().expect("tempdir");
    let mut follower = MetadataStateMachine::open(other.path()).expect("open");
    let mut meta = snapshot.meta.clone();
    meta.last_log_id = Some(LogId::new(CommittedLeaderId::new(1, 1), 9));
    assert!(follower
        .install_snapshot(&meta, snapshot.snapshot)
        .await
        .is_err());
    assert_eq!(follower.applied_state().await.expect("state").0, None);
    assert!(!other.path().join(SNAPSHOT_FILE_NAME).exists());
}

#[test]
fn corrupt_snapshot_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join(SNAPSHOT_FILE_NAME), b"{\"snapshot_id\": 4").expect("write");
    assert!(matches!(
        MetadataStateMachine::open(dir.path()),
        Err(RaftStoreError::Corrupt { .. })
    ));
}
