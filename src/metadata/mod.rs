//! Cluster metadata: the record log, the image folded from it, and the controller that is its only writer.
//!
//! Knows nothing of storage or the network: the controller writes through a [`MetadataJournal`], which is
//! the Raft quorum of `crate::controller`. [`MetadataLog`] is the pre-Raft single-node file, read once to
//! import it into the quorum.

mod broker_control;
mod controller;
mod image;
mod leader_election;
mod log;
mod partition_control;
mod reassignment;
mod records;
mod security_control;
#[cfg(test)]
mod test_journal;

use std::path::{Path, PathBuf};

pub use broker_control::{BrokerHeartbeatInput, BrokerRegistrationInput, HeartbeatReply};
pub use controller::{
    validate_topic_name, Controller, ControllerError, MetadataJournal, NewTopic, TopicDefaults,
    TopicRef, MAX_PARTITIONS_PER_REQUEST,
};
pub use image::{BrokerRegistration, MetadataImage, PartitionImage, TopicImage, INTERNAL_TOPICS};
pub use leader_election::{ElectionResult, ElectionType};
pub use log::{MetadataLog, METADATA_LOG_FILE};
pub use partition_control::{IsrChangeRequest, IsrChangeResult};
pub use reassignment::{OngoingReassignment, ReassignmentRequest, ReassignmentResult};
pub use records::{BrokerEndpoint, ClusterDefaults, MetadataRecord};
pub use security_control::{ScramChange, ScramUserResult};

/// Failures of the metadata log itself (disk or encoding), as opposed to rejected requests.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("encoding a metadata record: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}

impl MetadataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> MetadataError {
        MetadataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
