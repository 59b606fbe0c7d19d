//! The type configuration of the metadata Raft group: what an entry carries, what applying it answers, and
//! how a controller is addressed.

use std::fmt;
// `declare_raft_types!` defaults SnapshotData to `Cursor<Vec<u8>>` and expects the name in scope.
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::metadata::MetadataRecord;

/// A controller's endpoint on its controller listener (`controller.quorum.voters` entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerNode {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for ControllerNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The payload of one Raft log entry: metadata records applied atomically, all or none, as Kafka's
/// metadata record batches are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataBatch {
    pub records: Vec<MetadataRecord>,
}

/// What applying one entry answers to its writer: the log index it was applied at, which is the metadata
/// offset brokers report (and the broker epoch, for a registration).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub offset: u64,
}

openraft::declare_raft_types!(
    /// The metadata Raft group's type configuration.
    pub MetadataRaftConfig:
        D = MetadataBatch,
        R = Applied,
        NodeId = u64,
        Node = ControllerNode,
);

/// A handle on the local Raft node of the metadata quorum.
pub type MetadataRaft = openraft::Raft<MetadataRaftConfig>;
