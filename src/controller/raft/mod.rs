//! The metadata log replicated by openraft: its types, its durable log store, the state machine that folds
//! entries into [`MetadataImage`](crate::metadata::MetadataImage)s, and the RPC transport between
//! controllers.

pub mod log_store;
pub mod network;
pub mod state_machine;
#[cfg(test)]
mod store_tests;
pub mod types;

pub use log_store::{RaftLogStore, RaftLogStoreReader, RaftStoreError};
pub use state_machine::{MetadataSnapshotBuilder, MetadataStateMachine};
pub use types::{Applied, ControllerNode, MetadataBatch, MetadataRaft, MetadataRaftConfig};
