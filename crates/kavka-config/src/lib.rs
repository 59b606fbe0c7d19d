//! Kavka's configuration: Kafka `server.properties` keys, defaults and validation.
//!
//! * [`parse_properties`] reads Java `.properties` text;
//! * [`BrokerConfig::from_pairs`] / [`BrokerConfig::load`] turn pairs (file, then
//!   `--override key=value`, see [`parse_override`]) into a typed, validated
//!   [`BrokerConfig`], reporting unknown keys;
//! * [`validate_topic_configs`], [`TopicConfig::resolve`] and [`describe_topic_configs`]
//!   handle topic-level configuration, resolved against the broker's synonyms
//!   (`retention.ms` <- `log.retention.ms`/`minutes`/`hours`, ...);
//! * [`BrokerConfig::describe`] and [`describe_topic_configs`] give DescribeConfigs rows
//!   with Kafka's source and type codes.
//!
//! Names, types, defaults and ranges follow Apache Kafka 4.x, except Kavka's embedded
//! defaults `node.id=0`, `listeners=PLAINTEXT://127.0.0.1:9092`, `log.dirs=./kavka-data`.

mod broker;
mod broker_keys;
mod def;
mod describe;
mod error;
mod properties;
mod topic;
mod types;

pub use broker::{
    is_dynamic_broker_key, parse_override, validate_dynamic_broker_configs, BrokerConfig,
    LoadedConfig,
};
pub use describe::{ConfigEntry, ConfigSource, ConfigSynonym, ConfigType};
pub use error::ConfigError;
pub use properties::parse_properties;
pub use topic::{
    apply_broker_config_ops, apply_topic_config_ops, describe_topic_configs, is_topic_config,
    topic_config_names, validate_topic_configs, ConfigOp, TopicConfig,
};
pub use types::{
    parse_voter, CleanupPolicy, CompressionType, Listener, ProcessRole, QuorumVoter,
    SecurityConfig, SecurityProtocol, TimestampType,
};
