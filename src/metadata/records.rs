//! The records of the metadata log. Cluster state is never written in place: every change is one of these
//! records appended to the log, and the [`MetadataImage`](super::MetadataImage) is the fold of the log. This is
//! the shape Kafka's KRaft metadata log has, so that the cluster issue can replicate the same records through a
//! Raft quorum instead of a local file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use kavka_sasl::{ScramCredential, ScramMechanism};

use crate::security::acl::AclBinding;

/// One listener of a registered broker, as clients of that listener are to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// Listener name (`PLAINTEXT`, ...): a client is given the endpoint of the listener it connected to.
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's security protocol id (0 PLAINTEXT, 1 SSL, 2 SASL_PLAINTEXT, 3 SASL_SSL).
    pub security_protocol: i16,
}

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
        /// Eligible leader replicas (KIP-966): members that left the ISR while it was below
        /// `min.insync.replicas`, and so still hold every committed record.
        #[serde(default)]
        elr: Vec<i32>,
        /// A reassignment in progress: replicas being added (not yet in sync) and to be removed once
        /// they are. `replicas` holds both sets meanwhile.
        #[serde(default)]
        adding_replicas: Vec<i32>,
        #[serde(default)]
        removing_replicas: Vec<i32>,
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
    /// A broker registered, or registered again after a restart (Kafka's RegisterBrokerRecord). It starts
    /// fenced; its broker epoch is the metadata offset of the entry carrying this record, assigned as the
    /// record is applied, so every node derives the same epoch.
    RegisterBroker {
        broker_id: i32,
        /// Random per broker process start: tells a restart from a duplicate node id.
        incarnation_id: Uuid,
        endpoints: Vec<BrokerEndpoint>,
        rack: Option<String>,
    },
    /// A registered broker was fenced or unfenced, or began a controlled shutdown (Kafka's
    /// BrokerRegistrationChangeRecord); `None` leaves a flag unchanged. Ignored unless `broker_epoch` is
    /// the broker's current epoch, so a change decided for an older registration cannot touch a newer one.
    BrokerRegistrationChange {
        broker_id: i32,
        broker_epoch: i64,
        fenced: Option<bool>,
        in_controlled_shutdown: Option<bool>,
    },
    /// Dynamic broker configuration changed for `broker` ("" = the cluster-wide default, else a node
    /// id); a `None` value removes the key. Kafka's ConfigRecord for BROKER resources.
    BrokerConfig {
        broker: String,
        configs: BTreeMap<String, Option<String>>,
    },
    /// The active controller's topic defaults, which are the cluster's (as in Kafka 4, where the
    /// controllers' configuration decides): brokers apply them in place of their own.
    ClusterDefaults(ClusterDefaults),
    /// An access control entry was created (Kafka's AccessControlEntryRecord); `id` names it for removal.
    AccessControlEntry { id: Uuid, acl: AclBinding },
    /// An access control entry was deleted (Kafka's RemoveAccessControlEntryRecord).
    RemoveAccessControlEntry { id: Uuid },
    /// A user's SCRAM credential for one mechanism was set (Kafka's UserScramCredentialRecord): the salted
    /// keys only, never the password.
    UserScramCredential {
        name: String,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    },
    /// A user's SCRAM credential for one mechanism was deleted (Kafka's RemoveUserScramCredentialRecord).
    RemoveUserScramCredential {
        name: String,
        mechanism: ScramMechanism,
    },
    /// The credentials of `kavka storage format --add-scram` were written (once per cluster): from here on
    /// only the log's credentials count.
    ScramBootstrapApplied,
}

/// Topic defaults the controllers decide for the whole cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDefaults {
    pub num_partitions: i32,
    pub default_replication_factor: i32,
    pub min_insync_replicas: i32,
}
