//! Kavka's partition storage: the on-disk log of one partition (segments with sparse offset and time
//! indexes), crash recovery, idempotent-producer state, the log lifecycle (retention, DeleteRecords'
//! log start, the crash-safe segment swap of compaction), the record-level compactor (`cleaner`) and
//! the leader-epoch cache (`epoch_cache`) with which replicas answer OffsetForLeaderEpoch and truncate
//! correctly after a leader change.
//!
//! All I/O is synchronous `std::fs`; the broker calls in from blocking threads. [`PartitionLog`] methods
//! take `&self` and lock internally: appends are serialized, reads run concurrently with them.
//!
//! Error mapping used by the broker: [`batch::BatchError::CorruptMessage`] -> CORRUPT_MESSAGE,
//! `UnsupportedMagic`, `Truncated` and `InvalidRecord` -> INVALID_RECORD (as Kafka 4's produce validation),
//! `Decompression` -> CORRUPT_MESSAGE,
//! [`StorageError::MessageTooLarge`] -> MESSAGE_TOO_LARGE, [`StorageError::PolicyViolation`] ->
//! POLICY_VIOLATION (DeleteRecords on a compact-only log), producer-state errors ->
//! OUT_OF_ORDER_SEQUENCE_NUMBER / INVALID_PRODUCER_EPOCH, [`StorageError::OffsetOutOfRange`] ->
//! OFFSET_OUT_OF_RANGE, [`StorageError::Io`] -> KAFKA_STORAGE_ERROR.

pub mod batch;
pub mod cleaner;
pub mod epoch_cache;
pub mod error;
pub mod index;
pub mod log;
pub mod producer_state;
pub mod segment;

pub use epoch_cache::LeaderEpochCache;
pub use error::StorageError;
pub use log::{AppendOutcome, LogConfig, PartitionLog, ReadResult, TimestampLookup, TimestampType};
