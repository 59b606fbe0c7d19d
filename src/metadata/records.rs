//! The records of the metadata log. Cluster state is never written in place: every change is one of these
//! records appended to the log, and the [`MetadataImage`](super::MetadataImage) is the fold of the log. This is
//! the shape Kafka's KRaft metadata log has, so that the cluster issue can replicate the same records through a
//! Raft quorum instead of a local file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// A topic was created.
    Topic { name: String, topic_id: Uuid },
    /// A partition was created (or its assignment changed).
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// Topic configuration overrides were replaced wholesale (`None` value deletes the key).
    TopicConfig {
        topic_id: Uuid,
        configs: BTreeMap<String, Option<String>>,
    },
    /// A topic and all its partitions were deleted.
    RemoveTopic { topic_id: Uuid },
    /// Producer ids below `next_block_start` have been handed out (or reserved); never reuse them.
    ProducerIds { next_block_start: i64 },
    /// Dynamic broker configuration changed for `broker` ("" = the cluster-wide default, else a node
    /// id); a `None` value removes the key. Kafka's ConfigRecord for BROKER resources.
    BrokerConfig {
        broker: String,
        configs: BTreeMap<String, Option<String>>,
    },
}
