//! The state machine of the metadata Raft group: folds committed entries into a
//! [`MetadataImage`] and publishes every new image to the broker side.
//!
//! Persistence follows openraft's "persistent snapshot" option: `apply` only changes memory, every
//! snapshot is written to `snapshot.json` (atomically) before it is used, and on start the state machine
//! loads that snapshot so openraft re-applies only the log after it.
//!
//! The snapshot bytes are the JSON of `{snapshot_id, last_applied, last_membership, image}`; the same bytes
//! are the file on disk and what is streamed to a lagging follower.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::log_store::{
    read_optional, remove_stale_tmp, run_blocking, write_atomically, RaftStoreError,
};
use super::types::{Applied, ControllerNode, MetadataRaftConfig};
use crate::metadata::MetadataImage;

/// Name of the persisted snapshot inside the state machine's directory.
pub const SNAPSHOT_FILE_NAME: &str = "snapshot.json";

type Membership = StoredMembership<u64, ControllerNode>;
type Meta = SnapshotMeta<u64, ControllerNode>;

/// The snapshot content, borrowed for encoding so building one does not copy the image again.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    snapshot_id: &'a str,
    last_applied: Option<LogId<u64>>,
    last_membership: &'a Membership,
    image: &'a MetadataImage,
}

/// The snapshot content, owned for decoding. Field names match [`SnapshotRef`].
#[derive(Deserialize)]
struct SnapshotContent {
    snapshot_id: String,
    last_applied: Option<LogId<u64>>,
    last_membership: Membership,
    image: MetadataImage,
}

impl SnapshotContent {
    fn decode(bytes: &[u8], origin: &Path) -> Result<SnapshotContent, RaftStoreError> {
        serde_json::from_slice(bytes).map_err(|e| RaftStoreError::Corrupt {
            path: origin.to_path_buf(),
            reason: format!("snapshot does not decode: {e}"),
        })
    }

    fn meta(&self) -> Meta {
        SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshot_id: self.snapshot_id.clone(),
        }
    }
}

fn encode_snapshot(
    snapshot_id: &str,
    last_applied: Option<LogId<u64>>,
    last_membership: &Membership,
    image: &MetadataImage,
) -> Result<Vec<u8>, RaftStoreError> {
    serde_json::to_vec(&SnapshotRef {
        snapshot_id,
        last_applied,
        last_membership,
        image,
    })
    .map_err(|source| RaftStoreError::Encode {
        what: "snapshot",
        source,
    })
}

/// A persisted snapshot: its metadata and its bytes.
struct StoredSnapshot {
    meta: Meta,
    data: Vec<u8>,
}

/// The snapshot file and its in-memory copy, shared by the state machine and its snapshot builders (which
/// openraft runs as separate tasks).
struct SnapshotStore {
    dir: PathBuf,
    /// Held across a file replacement so that two writers cannot interleave their renames.
    write_lock: Mutex<()>,
    /// The snapshot `get_current_snapshot` returns; only locked briefly, never across I/O.
    current: Mutex<Option<Arc<StoredSnapshot>>>,
    /// Suffix of snapshot ids, so two snapshots at the same log index still get different ids.
    counter: AtomicU64,
}

impl SnapshotStore {
    fn current(&self) -> Result<Option<Arc<StoredSnapshot>>, RaftStoreError> {
        Ok(self
            .current
            .lock()
            .map_err(|_| RaftStoreError::Poisoned)?
            .clone())
    }

    /// Writes the snapshot file and makes it current. With `only_if_newer`, a snapshot older than the
    /// current one is not persisted (a build that raced with an install of a later snapshot): the file
    /// must never move backwards, or a restart would load a state behind the purged log.
    fn persist(&self, snapshot: StoredSnapshot, only_if_newer: bool) -> Result<(), RaftStoreError> {
        let _writing = self
            .write_lock
            .lock()
            .map_err(|_| RaftStoreError::Poisoned)?;
        if only_if_newer {
            if let Some(current) = self.current()? {
                if current.meta.last_log_id > snapshot.meta.last_log_id {
                    return Ok(());
                }
            }
        }
        write_atomically(&self.dir, SNAPSHOT_FILE_NAME, &snapshot.data)?;
        *self.current.lock().map_err(|_| RaftStoreError::Poisoned)? = Some(Arc::new(snapshot));
        Ok(())
    }

    fn next_id(&self, last_applied: Option<LogId<u64>>) -> String {
        let counter = self.counter.fetch_add(1, Ordering::Relaxed);
        match last_applied {
            Some(log_id) => format!("{}-{counter}", log_id.index),
            None => format!("none-{counter}"),
        }
    }
}

/// The counter part of a snapshot id made by [`SnapshotStore::next_id`], if it is one.
fn id_counter(snapshot_id: &str) -> Option<u64> {
    snapshot_id.rsplit_once('-')?.1.parse().ok()
}

/// The metadata state machine. Hand it to `openraft::Raft::new`; take image subscriptions with
/// [`MetadataStateMachine::subscribe`] first (a `watch::Receiver` is `Clone`, so one receiver kept aside
/// yields any number of later subscribers).
pub struct MetadataStateMachine {
    image: MetadataImage,
    last_applied: Option<LogId<u64>>,
    last_membership: Membership,
    snapshots: Arc<SnapshotStore>,
    published: watch::Sender<Arc<MetadataImage>>,
}

impl MetadataStateMachine {
    /// Opens the state machine stored in `dir` (created if missing), starting from the persisted
    /// snapshot if there is one, else from an empty image.
    pub fn open(dir: &Path) -> Result<MetadataStateMachine, RaftStoreError> {
        std::fs::create_dir_all(dir).map_err(|source| RaftStoreError::Io {
            op: "create directory",
            path: dir.to_path_buf(),
            source,
        })?;
        remove_stale_tmp(dir, SNAPSHOT_FILE_NAME)?;
        let path = dir.join(SNAPSHOT_FILE_NAME);
        let (image, last_applied, last_membership, current, counter) = match read_optional(&path)? {
            Some(data) => {
                let content = SnapshotContent::decode(&data, &path)?;
                let meta = content.meta();
                let counter = id_counter(&content.snapshot_id).map_or(0, |c| c.saturating_add(1));
                tracing::info!(snapshot = %meta, "loaded the metadata snapshot");
                (
                    content.image,
                    content.last_applied,
                    content.last_membership,
                    Some(Arc::new(StoredSnapshot { meta, data })),
                    counter,
                )
            }
            None => (
                MetadataImage::default(),
                None,
                Membership::default(),
                None,
                0,
            ),
        };
        let (published, _) = watch::channel(Arc::new(image.clone()));
        Ok(MetadataStateMachine {
            image,
            last_applied,
            last_membership,
            snapshots: Arc::new(SnapshotStore {
                dir: dir.to_path_buf(),
                write_lock: Mutex::new(()),
                current: Mutex::new(current),
                counter: AtomicU64::new(counter),
            }),
            published,
        })
    }

    /// A receiver of the image as of the last applied entry (or installed snapshot); it sees every later
    /// image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.published.subscribe()
    }

    /// The current image.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    fn publish(&self) {
        // `send_replace` rather than `send`: an image must be kept even while nobody subscribes.
        self.published.send_replace(Arc::new(self.image.clone()));
    }
}

/// Builds a snapshot of the state machine as it was when openraft asked for the builder.
pub struct MetadataSnapshotBuilder {
    image: MetadataImage,
    last_applied: Option<LogId<u64>>,
    last_membership: Membership,
    snapshots: Arc<SnapshotStore>,
}

impl MetadataSnapshotBuilder {
    async fn build(&mut self) -> Result<Snapshot<MetadataRaftConfig>, RaftStoreError> {
        let snapshot_id = self.snapshots.next_id(self.last_applied);
        let image = std::mem::take(&mut self.image);
        let last_applied = self.last_applied;
        let last_membership = self.last_membership.clone();
        let snapshots = self.snapshots.clone();
        // Encoding a large image and the fsyncs both block: keep them off the runtime's workers.
        let (meta, data) = run_blocking(move || {
            let data = encode_snapshot(&snapshot_id, last_applied, &last_membership, &image)?;
            let meta = SnapshotMeta {
                last_log_id: last_applied,
                last_membership,
                snapshot_id,
            };
            snapshots.persist(
                StoredSnapshot {
                    meta: meta.clone(),
                    data: data.clone(),
                },
                true,
            )?;
            Ok((meta, data))
        })
        .await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftSnapshotBuilder<MetadataRaftConfig> for MetadataSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<MetadataRaftConfig>, StorageError<u64>> {
        self.build()
            .await
            .map_err(|e| e.into_storage(ErrorSubject::Snapshot(None), ErrorVerb::Write))
    }
}

impl RaftStateMachine<MetadataRaftConfig> for MetadataStateMachine {
    type SnapshotBuilder = MetadataSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, Membership), StorageError<u64>> {
        Ok((self.last_applied, self.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<MetadataRaftConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        for entry in entries {
            let index = entry.log_id.index;
            // Set first: a registration applied in this entry takes the entry's offset as its broker epoch.
            self.image.metadata_offset = index;
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(batch) => {
                    for record in &batch.records {
                        self.image.apply(record);
                    }
                }
                EntryPayload::Membership(membership) => {
                    self.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                }
            }
            self.last_applied = Some(entry.log_id);
            replies.push(Applied { offset: index });
        }
        if !replies.is_empty() {
            self.publish();
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        MetadataSnapshotBuilder {
            image: self.image.clone(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let to_storage = |e: RaftStoreError| {
            e.into_storage(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
            )
        };
        let received = snapshot.into_inner();
        let snapshots = self.snapshots.clone();
        let meta_owned = meta.clone();
        let content = run_blocking(move || {
            let origin = snapshots.dir.join(SNAPSHOT_FILE_NAME);
            let content = SnapshotContent::decode(&received, &origin)?;
            if content.last_applied != meta_owned.last_log_id {
                return Err(RaftStoreError::SnapshotMismatch(format!(
                    "metadata says last log id {:?}, content says {:?}",
                    meta_owned.last_log_id, content.last_applied
                )));
            }
            // Re-encode under the metadata openraft hands us, so that the file reloads to exactly the
            // snapshot openraft believes is installed.
            let data = encode_snapshot(
                &meta_owned.snapshot_id,
                meta_owned.last_log_id,
                &meta_owned.last_membership,
                &content.image,
            )?;
            snapshots.persist(
                StoredSnapshot {
                    meta: meta_owned,
                    data,
                },
                false,
            )?;
            Ok(content)
        })
        .await
        .map_err(to_storage)?;
        self.image = content.image;
        self.last_applied = meta.last_log_id;
        self.last_membership = meta.last_membership.clone();
        if let Some(counter) = id_counter(&meta.snapshot_id) {
            // Keep later local ids distinct from the leader's.
            self.snapshots
                .counter
                .fetch_max(counter.saturating_add(1), Ordering::Relaxed);
        }
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<MetadataRaftConfig>>, StorageError<u64>> {
        let current = self
            .snapshots
            .current()
            .map_err(|e| e.into_storage(ErrorSubject::Snapshot(None), ErrorVerb::Read))?;
        Ok(current.map(|stored| Snapshot {
            meta: stored.meta.clone(),
            snapshot: Box::new(Cursor::new(stored.data.clone())),
        }))
    }
}
