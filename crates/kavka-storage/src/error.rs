//! Error type of the storage crate.

use crate::batch::BatchError;
use crate::producer_state::ProducerStateError;

/// Everything that can go wrong in a partition log operation.
///
/// The broker maps these onto Kafka error codes (see the crate docs); `Io` is the only variant that means
/// the log directory itself is in trouble (KAFKA_STORAGE_ERROR).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The batch failed format validation (CRC, magic, framing, ...).
    #[error("invalid record batch: {0}")]
    Batch(#[from] BatchError),
    /// The idempotent-producer checks rejected the batch.
    #[error("producer state: {0}")]
    ProducerState(#[from] ProducerStateError),
    /// The batch is larger than `max.message.bytes` (or than a whole segment).
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge {
        /// Size of the offending batch in bytes.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// A read asked for an offset outside `[log_start, log_end]`.
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// The offset the caller asked for.
        requested: i64,
        /// The log start offset at the time of the request.
        log_start: i64,
        /// The log end offset at the time of the request.
        log_end: i64,
    },
    /// The records blob is structurally acceptable batch data but violates a log rule
    /// (for example replicated batches whose offsets do not continue the log).
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// The operation is not allowed by the topic's configuration (DeleteRecords on a topic whose
    /// `cleanup.policy` lacks `delete`); the broker answers POLICY_VIOLATION as Kafka does.
    #[error("policy violation: {0}")]
    PolicyViolation(String),
    /// A segment swap was asked for segments that are no longer in the log as the caller saw them
    /// (retention, truncation or another swap got there first); the cleaner retries on a fresh view.
    #[error("log segments changed: {0}")]
    SegmentsChanged(String),
    /// The operating system reported an I/O error on a log file.
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
}
