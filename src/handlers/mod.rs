//! Request handlers, one module per Kafka API (named after it), grouped by concern: data plane (produce,
//! fetch, list_offsets), metadata and admin (metadata, create_topics, delete_topics, create_partitions,
//! describe_configs, describe_cluster, describe_quorum), groups and committed offsets (find_coordinator, join_group, sync_group, heartbeat, leave_group,
//! offset_commit, offset_fetch,
//! offset_delete, list_groups, describe_groups, delete_groups), producer ids (init_producer_id), access control (create_acls, describe_acls, delete_acls) and the
//! handshake (api_versions).

pub mod alter_configs;
pub mod alter_partition;
pub mod alter_partition_reassignments;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod broker_heartbeat;
pub mod broker_registration;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_quorum;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leader_hints;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod sync_group;

use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;
use kavka_storage::batch::BatchError;
use kavka_storage::producer_state::ProducerStateError;
use kavka_storage::StorageError;

/// The Kafka error code a client expects for a storage failure.
pub fn storage_error_code(error: &StorageError) -> i16 {
    let e = match error {
        StorageError::Batch(BatchError::CorruptMessage | BatchError::Decompression(_)) => {
            ResponseError::CorruptMessage
        }
        // Kafka 4 refuses magic 0/1 batches (and a blob that is not exactly one batch) on produce v3+ in
        // ProduceRequest.validateRecords, which is INVALID_RECORD.
        StorageError::Batch(_) | StorageError::InvalidRecord(_) => ResponseError::InvalidRecord,
        StorageError::ProducerState(ProducerStateError::InvalidProducerEpoch { .. }) => {
            ResponseError::InvalidProducerEpoch
        }
        StorageError::ProducerState(ProducerStateError::OutOfOrderSequence { .. }) => {
            ResponseError::OutOfOrderSequenceNumber
        }
        // Waiting for an earlier batch whose write failed; the rest are snapshot errors.
        StorageError::ProducerState(_) => ResponseError::KafkaStorageError,
        StorageError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::Io(_) => ResponseError::KafkaStorageError,
        // DeleteRecords on a topic without `delete` in cleanup.policy.
        StorageError::PolicyViolation(_) => ResponseError::PolicyViolation,
        // Only the cleaner sees this (it retries); a client never should.
        StorageError::SegmentsChanged(_) => ResponseError::KafkaStorageError,
    };
    e.code()
}

pub(crate) fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
