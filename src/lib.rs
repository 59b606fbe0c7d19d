//! Kavka: a Kafka-compatible event-streaming broker.
//!
//! Layers, top to bottom (see docs/architecture.md): [`network`] (listener and session) -> [`dispatch`]
//! (API key + version -> handler) -> [`handlers`] (one module per Kafka API) -> [`replica`] (partition
//! replicas hosted here) -> `kavka_storage` (the partition log on disk). [`metadata`] (the record log, image
//! and controller) stands beside them and knows nothing of storage or the network.

pub mod certs;
pub mod client;
pub mod cluster;
pub mod controller;
pub mod coordinator;
pub mod dispatch;
pub mod handlers;
pub mod meta_properties;
pub mod metadata;
pub mod network;
pub mod replica;
pub mod security;
pub mod server;
pub mod storage_format;
pub mod tools;
