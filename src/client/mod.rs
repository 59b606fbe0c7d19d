//! A small Kafka client over `kafka-protocol`, for the operator command line (`kavka topics`,
//! `kavka console-producer`, ...). It speaks to Apache Kafka 4.x as well as to Kavka: every request's
//! version is negotiated with ApiVersions, and nothing in it depends on Kavka-only behaviour.
//!
//! Layers: [`properties`] turns a Java client property file into connection settings (TLS from the
//! `ssl.*` keys, SASL from `sasl.mechanism` / `sasl.jaas.config`); [`connection`] is one broker
//! connection with version negotiation; [`cluster`] bootstraps, keeps the broker list from Metadata and
//! routes requests to a node, the group coordinator or any broker; [`producer`] and [`consumer`] are the
//! record paths of the console and perf tools.

pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod error;
pub mod groups;
pub mod partitioner;
pub mod producer;
pub mod properties;
pub mod records;

pub use cluster::KafkaClient;
pub use error::ClientError;
pub use properties::ClientProperties;
