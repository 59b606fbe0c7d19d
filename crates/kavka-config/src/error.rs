//! The one error type of this crate.

use std::path::PathBuf;

/// Why a configuration could not be read, parsed or accepted.
///
/// Every variant that concerns a single setting names the key, so start-up can stop
/// with a message an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value does not parse as its key's type, is out of range, or contradicts another key.
    #[error("invalid value {value:?} for configuration {key}: {reason}")]
    InvalidValue {
        /// The configuration key.
        key: String,
        /// The value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key that has no default was not set.
    #[error("missing required configuration {key} which has no default value")]
    Missing {
        /// The configuration key.
        key: String,
    },
    /// A topic-level configuration key that Kafka does not define.
    #[error("Unknown topic config name: {key}")]
    UnknownTopicConfig {
        /// The unknown key.
        key: String,
    },
    /// The `.properties` text is malformed (only a bad `\uXXXX` escape can cause this).
    #[error("malformed properties at line {line}: {reason}")]
    Syntax {
        /// 1-based line number where the offending logical line starts.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A `--override` argument that is not `key=value`.
    #[error("malformed override {arg:?}: expected key=value")]
    MalformedOverride {
        /// The argument as given.
        arg: String,
    },
    /// The properties file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    pub(crate) fn invalid(key: &str, value: &str, reason: impl Into<String>) -> Self {
        ConfigError::InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
