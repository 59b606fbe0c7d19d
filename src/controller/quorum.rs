//! This node's member of the metadata quorum: the openraft node with its log store and state machine, and
//! the [`MetadataJournal`] the controller writes through.
//!
//! Every controller runs one; the active controller is the Raft leader. A node without
//! `controller.quorum.voters` (the single-node default) is the only voter of its own quorum, so a lone
//! broker takes exactly the path a cluster does.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use tokio::runtime::Handle;
use tokio::sync::watch;

use super::raft::log_store::RaftLogStore;
use super::raft::log_store::RaftStoreError;
use super::raft::network::ControllerNetwork;
use super::raft::state_machine::MetadataStateMachine;
use super::raft::{ControllerNode, MetadataBatch, MetadataRaft};
use crate::metadata::{
    ControllerError, MetadataError, MetadataImage, MetadataJournal, MetadataRecord,
};
use crate::metadata::{MetadataLog, METADATA_LOG_FILE};
use crate::network::PeerSecurity;

/// Records per Raft entry when importing a single-node metadata log.
const IMPORT_CHUNK: usize = 1000;

/// Name of the metadata log's directory inside the first log dir (Kafka's name for it).
pub const METADATA_DIR: &str = "__cluster_metadata-0";

/// Why the quorum member could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("metadata store: {0}")]
    Store(#[from] RaftStoreError),
    #[error("invalid Raft settings: {0}")]
    Config(String),
    #[error("the metadata quorum stopped: {0}")]
    Stopped(String),
    #[error("importing the single-node metadata log {path}: {message}")]
    Import { path: String, message: String },
}

/// Timing of the metadata quorum.
#[derive(Debug, Clone, Copy)]
pub struct QuorumTiming {
    /// `controller.quorum.election.timeout.ms`: the shortest wait before a follower campaigns.
    pub election_timeout: Duration,
}

/// This node's member of the metadata quorum.
pub struct MetadataQuorum {
    raft: MetadataRaft,
    node_id: u64,
    images: watch::Receiver<Arc<MetadataImage>>,
    runtime: Handle,
    /// The term in which this node last confirmed its leadership (see `image_for_update`); 0 = never.
    verified_term: AtomicU64,
    controller_security: PeerSecurity,
}

impl MetadataQuorum {
    /// Opens the metadata log under `log_dir`, starts the Raft node of cluster `cluster_id` and, on a
    /// pristine log, initializes the quorum with `voters` if this node is one of them (every voter does the
    /// same with the same set, which openraft allows).
    pub async fn start(
        log_dir: &Path,
        cluster_id: &str,
        controller_security: PeerSecurity,
        node_id: u64,
        voters: BTreeMap<u64, ControllerNode>,
        timing: QuorumTiming,
    ) -> Result<MetadataQuorum, QuorumError> {
        let dir = log_dir.join(METADATA_DIR);
        let log_store = RaftLogStore::open(&dir)?;
        let state_machine = MetadataStateMachine::open(&dir)?;
        let images = state_machine.subscribe();
        let election_ms = timing.election_timeout.as_millis().max(10) as u64;
        let config = openraft::Config {
            cluster_name: "kavka-metadata".into(),
            election_timeout_min: election_ms,
            election_timeout_max: election_ms * 2,
            // Under a third of the election timeout, so a few slow heartbeats do not depose a live
            // leader; openraft also uses it as the AppendEntries timeout, which includes the follower's
            // fsync.
            heartbeat_interval: (election_ms * 3 / 10).max(5),
            // Few entries per AppendEntries: an entry can be large (a CreateTopics of thousands of
            // partitions), and one RPC must stay well inside a frame.
            max_payload_entries: 16,
            install_snapshot_timeout: 10_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(1000),
            max_in_snapshot_log_to_keep: 100,
            ..Default::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))?;
        let raft = MetadataRaft::new(
            node_id,
            Arc::new(config),
            ControllerNetwork {
                cluster_id: cluster_id.to_string(),
                security: controller_security.clone(),
            },
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| QuorumError::Stopped(e.to_string()))?;
        // Any other node (broker-only, or a controller joining a dynamic quorum) follows the log once the
        // active controller adds it as a learner (`join_quorum`), and never initializes a quorum of its own.
        // A restarted node's log already names the voters (openraft would log its refusal as an error).
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| QuorumError::Stopped(e.to_string()))?;
        if voters.contains_key(&node_id) && !initialized {
            match raft.initialize(voters.clone()).await {
                Ok(()) => {
                    tracing::info!(node_id, voters = ?voters.keys().collect::<Vec<_>>(), "metadata quorum initialized")
                }
                // Initialized before (a restart): the log already names the voters.
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(QuorumError::Stopped(e.to_string())),
            }
        }
        tokio::spawn(log_leader_changes(raft.metrics(), node_id));
        Ok(MetadataQuorum {
            raft,
            node_id,
            images,
            runtime: Handle::current(),
            verified_term: AtomicU64::new(0),
            controller_security,
        })
    }

    /// How this node reaches controllers (TLS, SASL) on the controller listener.
    pub fn controller_security(&self) -> PeerSecurity {
        self.controller_security.clone()
    }

    pub fn raft(&self) -> &MetadataRaft {
        &self.raft
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The newest image applied on this node.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    /// Images as this node applies them.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.clone()
    }

    /// Whether this node votes in the quorum, as far as its log says. Right after start-up the Raft node may
    /// not have reported the membership it loaded yet: this waits up to `wait` for one to be known (a
    /// pristine log has none, and is no voter).
    pub async fn is_voter(&self, wait: Duration) -> bool {
        let membership = match self
            .raft
            .wait(Some(wait))
            .metrics(
                |m| m.membership_config.log_id().is_some(),
                "a known membership",
            )
            .await
        {
            Ok(metrics) => metrics.membership_config,
            Err(_) => self.raft.metrics().borrow().membership_config.clone(),
        };
        let is_voter = membership
            .membership()
            .voter_ids()
            .any(|v| v == self.node_id);
        is_voter
    }

    /// Resolves when the Raft node stops on its own, with the reason: in practice a failed write to the
    /// metadata log directory (a full disk), which openraft treats as fatal. Never resolves while the
    /// node runs, nor after a requested shutdown.
    pub async fn failure(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            let failed = match &metrics.borrow_and_update().running_state {
                Err(openraft::error::Fatal::Stopped) | Ok(()) => None,
                Err(fatal) => Some(fatal.to_string()),
            };
            if let Some(reason) = failed {
                return reason;
            }
            if metrics.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// The current Raft leader (the active controller), if one is known.
    pub fn leader(&self) -> Option<u64> {
        self.raft.metrics().borrow().current_leader
    }

    /// Waits until this node sees a leader, up to `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<u64> {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a known leader")
            .await
            .ok()
            .and_then(|m| m.current_leader)
    }

    /// An image holding every committed entry, for deciding a change: the first time in a term this node
    /// leads, it confirms leadership with a quorum and waits until it has applied everything committed
    /// before (`ensure_linearizable`). Later in the same term nothing can be committed but through this
    /// node, whose writes wait for their own application, so its image is current without asking the
    /// quorum again. (If it was deposed without noticing, its next write cannot commit.)
    pub async fn image_for_update(&self) -> Result<Arc<MetadataImage>, ControllerError> {
        let (is_leader, term) = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow();
            (m.current_leader == Some(self.node_id), m.current_term)
        };
        if !(is_leader && self.verified_term.load(Ordering::Acquire) == term) {
            self.raft.ensure_linearizable().await.map_err(|e| match e {
                RaftError::APIError(e) => not_controller(e.to_string()),
                RaftError::Fatal(e) => stopped(e.to_string()),
            })?;
            self.verified_term.store(term, Ordering::Release);
        }
        // An entry of this term may still be in flight (a write whose caller timed out): decide only once
        // everything in this leader's log is applied, or a retried request would be decided twice.
        let last_log_index = self.raft.metrics().borrow().last_log_index;
        self.raft
            .wait(None)
            .applied_index_at_least(last_log_index, "decide on the whole log")
            .await
            .map_err(|e| stopped(e.to_string()))?;
        Ok(self.image())
    }

    /// Commits `records` as one entry and returns the image that includes it.
    pub async fn commit(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<MetadataImage>, ControllerError> {
        let written = self
            .raft
            .client_write(MetadataBatch { records })
            .await
            .map_err(|e| match e {
                RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                    not_controller(format!("the active controller is node {:?}", f.leader_id))
                }
                RaftError::APIError(e) => ControllerError::InvalidRequest(e.to_string()),
                RaftError::Fatal(e) => stopped(e.to_string()),
            })?;
        // The leader answers after applying, and the state machine publishes before it answers; waiting
        // anyway keeps this true whatever the state machine's publishing order.
        let mut images = self.images.clone();
        let offset = written.data.offset;
        let image = images
            .wait_for(|image| image.metadata_offset >= offset)
            .await
            .map_err(|_| stopped("the state machine stopped".into()))?
            .clone();
        Ok(image)
    }

    /// Carries a pre-Raft `__cluster_metadata.log` (Kavka's single-node metadata file) in `dir` into the
    /// quorum once, then renames it `.imported`. Only the active controller imports; such a file belongs to
    /// a single node, which is its own quorum's only voter. Re-importing after a crash between the two
    /// steps is harmless: every record sets state, so replaying the same sequence yields the same image,
    /// and on a single voter nothing else is written in between (this runs before the broker registers
    /// or serves clients).
    pub async fn import_legacy_log(&self, dir: &Path) -> Result<(), QuorumError> {
        let legacy = dir.join(METADATA_LOG_FILE);
        if !legacy.exists() {
            return Ok(());
        }
        let failed = |message: String| QuorumError::Import {
            path: legacy.display().to_string(),
            message,
        };
        if self.leader() != Some(self.node_id) {
            return Err(failed(
                "only the active controller imports it; start this node alone (without controller.quorum.voters) first".into(),
            ));
        }
        let (_, records) = MetadataLog::open(dir).map_err(|e| failed(e.to_string()))?;
        let count = records.len();
        // In bounded entries: one Raft entry must fit in one RPC frame.
        for chunk in records.chunks(IMPORT_CHUNK) {
            self.commit(chunk.to_vec())
                .await
                .map_err(|e| failed(e.to_string()))?;
        }
        let imported = dir.join(format!("{METADATA_LOG_FILE}.imported"));
        std::fs::rename(&legacy, &imported).map_err(|e| failed(e.to_string()))?;
        tracing::info!(records = count, from = %legacy.display(), "single-node metadata log imported into the metadata quorum");
        Ok(())
    }

    /// Stops the Raft node (its tasks and connections); the log stays on disk.
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "metadata quorum did not stop cleanly");
        }
    }
}

/// One log line per change of the active controller, as this node sees it.
async fn log_leader_changes(
    mut metrics: watch::Receiver<openraft::RaftMetrics<u64, ControllerNode>>,
    node_id: u64,
) {
    let mut last = None;
    loop {
        let (leader, term) = {
            let m = metrics.borrow_and_update();
            (m.current_leader, m.current_term)
        };
        if leader != last && leader.is_some() {
            tracing::info!(leader = ?leader, term, this_node = node_id, "metadata quorum leader changed");
            last = leader;
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

fn not_controller(message: String) -> ControllerError {
    ControllerError::NotController(format!("This node is not the active controller: {message}"))
}

fn stopped(message: String) -> ControllerError {
    ControllerError::Metadata(MetadataError::Invalid(format!(
        "the metadata quorum stopped: {message}"
    )))
}

/// The journal the controller writes through: blocking calls into the quorum, made from the controller's
/// blocking threads (never from an async worker).
pub struct QuorumJournal {
    quorum: Arc<MetadataQuorum>,
}

/// How long a controller operation waits for the quorum: without a majority it would wait forever, and a
/// client must hear REQUEST_TIMED_OUT instead.
const QUORUM_WAIT: Duration = Duration::from_secs(15);

impl QuorumJournal {
    pub fn new(quorum: Arc<MetadataQuorum>) -> QuorumJournal {
        QuorumJournal { quorum }
    }

    /// Runs `work` on the runtime and waits for it on this blocking thread, at most `QUORUM_WAIT`.
    /// The work is spawned rather than `block_on`-ed: a broker shutting down drops its task (this
    /// caller then gets an error), where a timer polled through `block_on` during the runtime's
    /// shutdown would panic.
    fn bounded<T, F, Fut>(&self, work: F) -> Result<T, ControllerError>
    where
        F: FnOnce(Arc<MetadataQuorum>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ControllerError>> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let work = work(self.quorum.clone());
        self.quorum.runtime.spawn(async move {
            let result = tokio::time::timeout(QUORUM_WAIT, work)
                .await
                .unwrap_or(Err(ControllerError::QuorumTimeout(QUORUM_WAIT)));
            let _ = tx.send(result);
        });
        // The task answers within QUORUM_WAIT; the margin only covers a runtime too busy to run it.
        match rx.recv_timeout(QUORUM_WAIT + Duration::from_secs(5)) {
            Ok(result) => result,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                Err(ControllerError::QuorumTimeout(QUORUM_WAIT))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(stopped("the node is shutting down".to_string()))
            }
        }
    }
}

impl MetadataJournal for QuorumJournal {
    fn image_for_update(&self) -> Result<Arc<MetadataImage>, ControllerError> {
        self.bounded(|quorum| async move { quorum.image_for_update().await })
    }

    fn commit(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, ControllerError> {
        self.bounded(|quorum| async move { quorum.commit(records).await })
    }

    fn latest(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn single_voter(dir: &Path) -> MetadataQuorum {
        let quorum = MetadataQuorum::start(
            dir,
            "test-cluster",
            Default::default(),
            7,
            BTreeMap::from([(7, ControllerNode::default())]),
            QuorumTiming {
                election_timeout: Duration::from_millis(200),
            },
        )
        .await
        .expect("start");
        quorum
            .wait_for_leader(Duration::from_secs(10))
            .await
            .expect("a single voter elects itself");
        quorum
    }

    /// A node restarted on data written before the quorum existed keeps its topics: the old file is
    /// imported once, then renamed, and the imported state survives a restart of the quorum.
    #[tokio::test(flavor = "multi_thread")]
    async fn single_node_metadata_log_is_imported_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let topic_id = uuid::Uuid::new_v4();
        {
            let (mut log, _) = MetadataLog::open(dir.path()).expect("legacy log");
            log.append(&[
                MetadataRecord::Topic {
                    name: "legacy".into(),
                    topic_id,
                },
                MetadataRecord::Partition {
                    topic_id,
                    partition: 0,
                    replicas: vec![7],
                    isr: vec![7],
                    leader: 7,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    elr: Vec::new(),
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                },
            ])
            .expect("append");
        }
        {
            let quorum = single_voter(dir.path()).await;
            quorum.import_legacy_log(dir.path()).await.expect("import");
            assert!(!dir.path().join(METADATA_LOG_FILE).exists());
            assert!(dir
                .path()
                .join(format!("{METADATA_LOG_FILE}.imported"))
                .exists());
            let topic = quorum
                .image()
                .topic("legacy")
                .cloned()
                .expect("imported topic");
            assert_eq!((topic.topic_id, topic.partitions.len()), (topic_id, 1));
            // Nothing left to import.
            let offset = quorum.image().metadata_offset;
            quorum.import_legacy_log(dir.path()).await.expect("no-op");
            assert_eq!(quorum.image().metadata_offset, offset);
            quorum.shutdown().await;
        }
        let quorum = single_voter(dir.path()).await;
        quorum.image_for_update().await.expect("leader");
        assert_eq!(
            quorum.image().topic("legacy").map(|t| t.topic_id),
            Some(topic_id)
        );
        quorum.shutdown().await;
    }
}
