//! The controller quorum: the Raft group (openraft) whose replicated log holds the cluster metadata, and
//! the network it speaks between controllers.
//!
//! Layering: [`raft`] knows the metadata records and image (`crate::metadata`) but nothing of brokers,
//! partitions on disk or client requests; the broker side reads the images it publishes.

pub mod channel;
pub mod connection;
pub mod quorum;
pub mod raft;
