//! The broker's static configuration: `server.properties` plus `--override`s, typed and
//! validated at start-up.

use std::collections::BTreeMap;
use std::path::Path;

use crate::broker_keys::{
    broker_key, broker_synonym_chain, is_raw_security_key, BROKER_KEYS, IGNORED_KAFKA_KEYS,
};
use crate::def::{split_list, Resolver};
use crate::describe::{ConfigEntry, ConfigSource, ConfigSynonym};
use crate::error::ConfigError;
use crate::properties::parse_properties;
use crate::topic::broker_topic_defaults;
use crate::types::{
    parse_endpoint, parse_voter, CleanupPolicy, CompressionType, KeysOnly, Listener, ProcessRole,
    QuorumVoter, SecurityConfig, SecurityProtocol, TimestampType,
};

/// A loaded configuration and the keys that were not recognised.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The typed configuration.
    pub config: BrokerConfig,
    /// Keys that are neither broker nor security keys, in first-seen order without
    /// duplicates. Kafka ignores them; the caller logs each once.
    pub unknown_keys: Vec<String>,
    /// Real Kafka 4.x broker keys that Kavka accepts but does not use (metrics, quotas,
    /// tiered storage, ...), first-seen order without duplicates; worth a debug log.
    pub ignored_keys: Vec<String>,
}

/// The broker's typed, validated static configuration.
///
/// Every field is named after its Kafka key; derived fields say how they are derived.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id` (or its alias `broker.id`); Kavka's default is 0.
    pub node_id: i32,
    /// `process.roles`; empty when not set (Kafka's default).
    pub process_roles: Vec<ProcessRole>,
    /// `listeners`, parsed; Kavka's default is `PLAINTEXT://127.0.0.1:9092`.
    pub listeners: Vec<Listener>,
    /// `advertised.listeners` (default: `listeners`), without the controller listeners.
    pub advertised_listeners: Vec<Listener>,
    /// `listener.security.protocol.map`, listener name to protocol. When the key is not
    /// set, controller listeners missing from it map to PLAINTEXT, as in Kafka.
    pub listener_security_protocol_map: BTreeMap<String, SecurityProtocol>,
    /// `inter.broker.listener.name`, or the listener named after
    /// `security.inter.broker.protocol` (default PLAINTEXT) when not set.
    pub inter_broker_listener_name: String,
    /// `controller.listener.names`, split on commas and upper-cased.
    pub controller_listener_names: Vec<String>,
    /// `controller.quorum.voters`, parsed.
    pub controller_quorum_voters: Vec<QuorumVoter>,
    /// `controller.quorum.bootstrap.servers`.
    pub controller_quorum_bootstrap_servers: Vec<String>,
    /// `controller.quorum.auto.join.enable`: a controller that is not a voter of a dynamic quorum asks
    /// to become one once it has caught up (Kafka 4.1+; default false).
    pub controller_quorum_auto_join_enable: bool,
    /// `log.dirs`, falling back to `log.dir`; Kavka's default is `./kavka-data`.
    pub log_dirs: Vec<String>,
    /// `metadata.log.dir`.
    pub metadata_log_dir: Option<String>,
    /// `broker.rack`.
    pub broker_rack: Option<String>,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i32,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics_enable: bool,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election_enable: bool,
    /// `auto.leader.rebalance.enable`.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval_seconds: i64,
    /// `leader.imbalance.per.broker.percentage`.
    pub leader_imbalance_per_broker_percentage: i32,
    /// `log.segment.bytes`.
    pub log_segment_bytes: i32,
    /// `log.roll.ms`, else `log.roll.hours` in ms.
    pub log_roll_ms: i64,
    /// `log.roll.jitter.ms`, else `log.roll.jitter.hours` in ms.
    pub log_roll_jitter_ms: i64,
    /// `log.index.interval.bytes`.
    pub log_index_interval_bytes: i32,
    /// `log.index.size.max.bytes`.
    pub log_index_size_max_bytes: i32,
    /// `log.flush.interval.messages`.
    pub log_flush_interval_messages: i64,
    /// `log.flush.interval.ms`, else `log.flush.scheduler.interval.ms`.
    pub log_flush_interval_ms: i64,
    /// `log.flush.scheduler.interval.ms`.
    pub log_flush_scheduler_interval_ms: i64,
    /// `log.flush.offset.checkpoint.interval.ms`.
    pub log_flush_offset_checkpoint_interval_ms: i32,
    /// `log.preallocate`.
    pub log_preallocate: bool,
    /// `log.segment.delete.delay.ms`.
    pub log_segment_delete_delay_ms: i64,
    /// `message.max.bytes`.
    pub message_max_bytes: i32,
    /// `fetch.max.bytes`: the broker's cap on one Fetch response.
    pub fetch_max_bytes: i32,
    /// `compression.type`.
    pub compression_type: CompressionType,
    /// `log.message.timestamp.type`.
    pub log_message_timestamp_type: TimestampType,
    /// `log.message.timestamp.before.max.ms`.
    pub log_message_timestamp_before_max_ms: i64,
    /// `log.message.timestamp.after.max.ms`.
    pub log_message_timestamp_after_max_ms: i64,
    /// `log.retention.ms`, else `log.retention.minutes`, else `log.retention.hours`, in
    /// ms; any negative value is -1 (keep forever).
    pub log_retention_ms: i64,
    /// `log.retention.bytes` (-1: unlimited).
    pub log_retention_bytes: i64,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval_ms: i64,
    /// `log.cleanup.policy`.
    pub log_cleanup_policy: CleanupPolicy,
    /// `log.cleaner.enable`.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.threads`.
    pub log_cleaner_threads: i32,
    /// `log.cleaner.backoff.ms`.
    pub log_cleaner_backoff_ms: i64,
    /// `log.cleaner.delete.retention.ms`.
    pub log_cleaner_delete_retention_ms: i64,
    /// `log.cleaner.min.compaction.lag.ms`.
    pub log_cleaner_min_compaction_lag_ms: i64,
    /// `log.cleaner.max.compaction.lag.ms`.
    pub log_cleaner_max_compaction_lag_ms: i64,
    /// `log.cleaner.min.cleanable.ratio`.
    pub log_cleaner_min_cleanable_ratio: f64,
    /// `log.cleaner.dedupe.buffer.size`: the compaction map's memory, shared by the cleaner threads.
    pub log_cleaner_dedupe_buffer_size: i64,
    /// `log.cleaner.io.buffer.load.factor`.
    pub log_cleaner_io_buffer_load_factor: f64,
    /// `log.cleaner.io.max.bytes.per.second`.
    pub log_cleaner_io_max_bytes_per_second: f64,
    /// `num.recovery.threads.per.data.dir`.
    pub num_recovery_threads_per_data_dir: i32,
    /// `num.io.threads` (accepted, unused).
    pub num_io_threads: i32,
    /// `num.network.threads` (accepted, unused).
    pub num_network_threads: i32,
    /// `queued.max.requests`.
    pub queued_max_requests: i32,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: i32,
    /// `socket.send.buffer.bytes` (-1: OS default).
    pub socket_send_buffer_bytes: i32,
    /// `socket.receive.buffer.bytes` (-1: OS default).
    pub socket_receive_buffer_bytes: i32,
    /// `connections.max.idle.ms`.
    pub connections_max_idle_ms: i64,
    /// `max.connections`.
    pub max_connections: i32,
    /// `max.connections.per.ip`.
    pub max_connections_per_ip: i32,
    /// `max.connections.per.ip.overrides`, host to limit.
    pub max_connections_per_ip_overrides: BTreeMap<String, i32>,
    /// `connection.failed.authentication.delay.ms`.
    pub connection_failed_authentication_delay_ms: i32,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor`.
    pub offsets_topic_replication_factor: i16,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: i32,
    /// `offsets.retention.minutes`.
    pub offsets_retention_minutes: i32,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// `offsets.commit.timeout.ms`.
    pub offsets_commit_timeout_ms: i32,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: i32,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub group_max_size: i32,
    /// `group.coordinator.rebalance.protocols`.
    pub group_coordinator_rebalance_protocols: Vec<String>,
    /// `group.consumer.session.timeout.ms`.
    pub group_consumer_session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`.
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`.
    pub group_consumer_max_size: i32,
    /// `group.consumer.assignors` (the first is the default).
    pub group_consumer_assignors: Vec<String>,
    /// `group.consumer.migration.policy`.
    pub group_consumer_migration_policy: String,
    /// `transaction.state.log.num.partitions`.
    pub transaction_state_log_num_partitions: i32,
    /// `transaction.state.log.replication.factor`.
    pub transaction_state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr`.
    pub transaction_state_log_min_isr: i32,
    /// `transaction.max.timeout.ms`.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub transactional_id_expiration_ms: i32,
    /// `producer.id.expiration.ms`.
    pub producer_id_expiration_ms: i32,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: i64,
    /// `replica.fetch.max.bytes`.
    pub replica_fetch_max_bytes: i32,
    /// `replica.fetch.min.bytes`.
    pub replica_fetch_min_bytes: i32,
    /// `replica.fetch.wait.max.ms`.
    pub replica_fetch_wait_max_ms: i32,
    /// `replica.fetch.response.max.bytes`.
    pub replica_fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`.
    pub replica_fetch_backoff_ms: i32,
    /// `replica.socket.timeout.ms`.
    pub replica_socket_timeout_ms: i32,
    /// `num.replica.fetchers`.
    pub num_replica_fetchers: i32,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub replica_high_watermark_checkpoint_interval_ms: i64,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: i32,
    /// `broker.session.timeout.ms`.
    pub broker_session_timeout_ms: i32,
    /// `controller.quorum.election.timeout.ms`.
    pub controller_quorum_election_timeout_ms: i32,
    /// `controller.quorum.fetch.timeout.ms`.
    pub controller_quorum_fetch_timeout_ms: i32,
    /// `authorizer.class.name` (empty: no authorizer).
    pub authorizer_class_name: String,
    /// `super.users`, split on `;` (e.g. `User:admin`).
    pub super_users: Vec<String>,
    /// Every `ssl.*`, `sasl.*`, `listener.name.*`, `super.users`,
    /// `allow.everyone.if.no.acl.found`, `principal.builder.class`,
    /// `security.providers` and `connections.max.reauth.ms` key as set, raw, for the
    /// TLS/SASL/authorizer layers.
    pub security: SecurityConfig,
    /// Explicitly set broker keys (trimmed), for DescribeConfigs.
    explicit: KeysOnly,
    /// Each topic key's broker-level default (Kafka's `extractLogConfigMap`).
    topic_defaults: BTreeMap<&'static str, String>,
    /// The pairs this configuration was built from (file and overrides), so that dynamic
    /// configuration can be layered on top of them again.
    source_pairs: KeysOnlyPairs,
    /// Keys whose value comes from dynamic configuration, and from which level.
    dynamic_sources: BTreeMap<String, ConfigSource>,
}

/// Pairs whose values may be secrets: shown by key only in debug output.
#[derive(Clone, Default)]
struct KeysOnlyPairs(Vec<(String, String)>);

impl std::fmt::Debug for KeysOnlyPairs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k))
            .finish()
    }
}

/// Cleaner settings Kafka reconfigures at run time, besides the broker synonyms of topic keys.
const DYNAMIC_CLEANER_KEYS: &[&str] = &[
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.io.buffer.load.factor",
    "log.cleaner.io.buffer.size",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.threads",
];

/// Whether a broker key can be changed at run time (AlterConfigs / IncrementalAlterConfigs on a broker
/// resource): as Kafka's DynamicLogConfig, the broker-level defaults of topic keys, plus the cleaner's
/// settings.
pub fn is_dynamic_broker_key(key: &str) -> bool {
    DYNAMIC_CLEANER_KEYS.contains(&key) || crate::topic::is_topic_synonym(key)
}

/// Checks dynamic broker settings as AlterConfigs receives them: every key must be a broker key that
/// can change at run time, and every value must parse. The error names the key.
pub fn validate_dynamic_broker_configs(
    configs: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (k, v) in configs {
        let Some(def) = broker_key(k) else {
            return Err(ConfigError::invalid(
                k,
                v,
                format!("Unknown broker config name: {k}"),
            ));
        };
        if !is_dynamic_broker_key(k) {
            return Err(ConfigError::invalid(
                k,
                v,
                format!("Cannot update these configs dynamically: Set({k})"),
            ));
        }
        def.parse(v)?;
    }
    Ok(())
}

impl BrokerConfig {
    /// Reads `path` (if any) as `server.properties`, applies `overrides` on top (later
    /// wins), and builds the configuration.
    pub fn load(
        path: Option<&Path>,
        overrides: &[(String, String)],
    ) -> Result<LoadedConfig, ConfigError> {
        let mut pairs = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                    path: p.to_path_buf(),
                    source,
                })?;
                parse_properties(&text)?
            }
            None => Vec::new(),
        };
        pairs.extend(overrides.iter().cloned());
        Self::from_pairs(&pairs)
    }

    /// Builds the configuration from `(key, value)` pairs; a later pair overrides an
    /// earlier one with the same key. Keys not given take Kavka's embedded defaults
    /// (`node.id=0`, `listeners=PLAINTEXT://127.0.0.1:9092`, `log.dirs=./kavka-data`)
    /// and otherwise Kafka 4.x's. Any invalid value is an error naming key and value;
    /// unrecognised keys are returned in [`LoadedConfig::unknown_keys`].
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<LoadedConfig, ConfigError> {
        let mut explicit = BTreeMap::new();
        let mut security_raw = BTreeMap::new();
        let mut unknown_keys: Vec<String> = Vec::new();
        let mut ignored_keys: Vec<String> = Vec::new();
        for (k, v) in pairs {
            let k = k.trim();
            let v = v.trim();
            let security = is_raw_security_key(k);
            if security {
                security_raw.insert(k.to_string(), v.to_string());
            }
            if broker_key(k).is_some() {
                explicit.insert(k.to_string(), v.to_string());
            } else if IGNORED_KAFKA_KEYS.contains(&k) {
                push_once(&mut ignored_keys, k);
            } else if !security {
                push_once(&mut unknown_keys, k);
            }
        }
        // Validate what the user wrote before mirroring aliases, so errors name their key.
        for (k, v) in &explicit {
            if let Some(def) = broker_key(k) {
                def.parse(v)?;
            }
        }
        reconcile_node_id(&mut explicit)?;
        let mut config = build(explicit, security_raw)?;
        config.source_pairs = KeysOnlyPairs(pairs.to_vec());
        Ok(LoadedConfig {
            config,
            unknown_keys,
            ignored_keys,
        })
    }

    /// This configuration with dynamic settings layered on top, in Kafka's order: per-broker dynamic
    /// values win over cluster-wide dynamic defaults, which win over the static configuration.
    pub fn with_dynamic(
        &self,
        cluster_default: &BTreeMap<String, String>,
        per_broker: &BTreeMap<String, String>,
    ) -> Result<BrokerConfig, ConfigError> {
        let mut pairs = self.source_pairs.0.clone();
        pairs.extend(cluster_default.iter().map(|(k, v)| (k.clone(), v.clone())));
        pairs.extend(per_broker.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut config = Self::from_pairs(&pairs)?.config;
        config.source_pairs = self.source_pairs.clone();
        for k in cluster_default.keys() {
            config
                .dynamic_sources
                .insert(k.clone(), ConfigSource::DynamicDefaultBrokerConfig);
        }
        for k in per_broker.keys() {
            config
                .dynamic_sources
                .insert(k.clone(), ConfigSource::DynamicBrokerConfig);
        }
        Ok(config)
    }

    /// The configuration with no file and no overrides.
    pub fn embedded_default() -> Result<BrokerConfig, ConfigError> {
        Self::from_pairs(&[]).map(|l| l.config)
    }

    /// Whether this node runs a broker: `process.roles` includes broker, or is unset (the single-node
    /// default, where one process is both).
    pub fn is_broker(&self) -> bool {
        self.process_roles.is_empty() || self.process_roles.contains(&ProcessRole::Broker)
    }

    /// Whether this node runs a controller: `process.roles` includes controller, or is unset.
    pub fn is_controller(&self) -> bool {
        self.process_roles.is_empty() || self.process_roles.contains(&ProcessRole::Controller)
    }

    /// The listeners named in `controller.listener.names`.
    pub fn controller_listeners(&self) -> Vec<&Listener> {
        self.listeners
            .iter()
            .filter(|l| self.controller_listener_names.contains(&l.name))
            .collect()
    }

    /// The value a broker key was explicitly set to (trimmed), if it was.
    pub fn explicit_value(&self, key: &str) -> Option<&str> {
        self.explicit.0.get(key).map(String::as_str)
    }

    /// Topic keys' broker-level defaults, keyed by topic key.
    pub(crate) fn topic_defaults(&self) -> &BTreeMap<&'static str, String> {
        &self.topic_defaults
    }

    /// Synonym rows for broker keys in priority order: the explicitly set ones
    /// (STATIC_BROKER_CONFIG) first, then the defaults (DEFAULT_CONFIG), as Kafka lists them.
    pub(crate) fn synonyms_for<'a>(
        &self,
        names: impl Iterator<Item = &'a str> + Clone,
    ) -> Vec<ConfigSynonym> {
        let mut out = Vec::new();
        for name in names.clone() {
            if let Some(v) = self.explicit.0.get(name) {
                let sensitive = match broker_key(name) {
                    Some(d) => d.sensitive(),
                    None => true,
                };
                out.push(ConfigSynonym {
                    name: name.to_string(),
                    value: (!sensitive).then(|| normalise(name, v)),
                    source: self
                        .dynamic_sources
                        .get(name)
                        .copied()
                        .unwrap_or(ConfigSource::StaticBrokerConfig),
                });
            }
        }
        for name in names {
            if let Some(def) = broker_key(name) {
                if let Some(d) = def.default {
                    out.push(ConfigSynonym {
                        name: name.to_string(),
                        value: (!def.sensitive()).then(|| d.to_string()),
                        source: ConfigSource::DefaultConfig,
                    });
                }
            }
        }
        out
    }

    /// DescribeConfigs rows for this broker: every broker key (sorted) with its value
    /// (the explicit value, else the default; `None` for passwords and unset keys
    /// without default), STATIC_BROKER_CONFIG or DEFAULT_CONFIG as source, and Kafka's
    /// synonyms (e.g. `log.retention.minutes` lists minutes then hours). Keys set dynamically
    /// show DYNAMIC_BROKER_CONFIG or DYNAMIC_DEFAULT_BROKER_CONFIG; only dynamic keys are
    /// writable.
    pub fn describe(&self) -> Vec<ConfigEntry> {
        BROKER_KEYS
            .iter()
            .map(|def| {
                let chain = broker_synonym_chain(def.name);
                let synonyms: Vec<ConfigSynonym> = if chain.is_empty() {
                    self.synonyms_for(std::iter::once(def.name))
                } else {
                    // As Kafka: drop higher-priority synonyms of the key being described.
                    self.synonyms_for(chain.iter().copied())
                        .into_iter()
                        .skip_while(|s| s.name != def.name)
                        .collect()
                };
                let sensitive = def.sensitive();
                let value = if sensitive {
                    None
                } else {
                    match self.explicit.0.get(def.name) {
                        Some(v) => Some(normalise(def.name, v)),
                        None => def.default.map(str::to_string),
                    }
                };
                ConfigEntry {
                    name: def.name.to_string(),
                    value,
                    source: synonyms
                        .first()
                        .map(|s| s.source)
                        .unwrap_or(ConfigSource::DefaultConfig),
                    read_only: !is_dynamic_broker_key(def.name),
                    sensitive,
                    config_type: def.ty,
                    synonyms,
                    documentation: Some(def.doc.to_string()),
                }
            })
            .collect()
    }
}

fn push_once(list: &mut Vec<String>, key: &str) {
    if !list.iter().any(|k| k == key) {
        list.push(key.to_string());
    }
}

/// Splits one `--override key=value` argument (the value may itself contain `=`).
pub fn parse_override(arg: &str) -> Result<(String, String), ConfigError> {
    match arg.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(ConfigError::MalformedOverride {
            arg: arg.to_string(),
        }),
    }
}

/// The value as Kafka prints it once parsed (`TRUE` -> `true`, `a , b` -> `a,b`).
fn normalise(name: &str, raw: &str) -> String {
    broker_key(name)
        .and_then(|d| d.parse(raw).ok())
        .map(|v| v.to_kafka_string())
        .unwrap_or_else(|| raw.to_string())
}

/// Kafka copies `broker.id` to `node.id` and back when only one is set; both set must agree.
fn reconcile_node_id(explicit: &mut BTreeMap<String, String>) -> Result<(), ConfigError> {
    let node = explicit.get("node.id").cloned();
    let broker = explicit.get("broker.id").cloned();
    match (node, broker) {
        (Some(n), Some(b)) => {
            let parse = |k: &str, v: &str| {
                broker_key(k)
                    .ok_or_else(|| ConfigError::Missing { key: k.into() })
                    .and_then(|d| d.parse(v))
            };
            if parse("node.id", &n)? != parse("broker.id", &b)? {
                return Err(ConfigError::invalid(
                    "broker.id",
                    &b,
                    format!("must equal node.id ({n}) when both are set"),
                ));
            }
        }
        (Some(n), None) => {
            explicit.insert("broker.id".into(), n);
        }
        (None, Some(b)) => {
            explicit.insert("node.id".into(), b);
        }
        (None, None) => {}
    }
    Ok(())
}

fn build(
    explicit: BTreeMap<String, String>,
    security: BTreeMap<String, String>,
) -> Result<BrokerConfig, ConfigError> {
    let r = Resolver {
        lookup: broker_key,
        explicit: &explicit,
        fallback: None,
    };

    let node_id = r.int("node.id")?;
    if node_id < 0 {
        return Err(ConfigError::invalid(
            "node.id",
            &node_id.to_string(),
            "must be at least 0",
        ));
    }

    let mut process_roles = Vec::new();
    for role in r.list("process.roles")? {
        let role = match role.as_str() {
            "broker" => ProcessRole::Broker,
            _ => ProcessRole::Controller,
        };
        if process_roles.contains(&role) {
            let raw = r.raw("process.roles").unwrap_or_default();
            return Err(ConfigError::invalid(
                "process.roles",
                &raw,
                "duplicate role",
            ));
        }
        process_roles.push(role);
    }

    let controller_listener_names: Vec<String> = r
        .opt_string("controller.listener.names")?
        .map(|s| split_list(&s))
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.to_ascii_uppercase())
        .collect();
    if controller_listener_names.iter().any(String::is_empty) {
        let raw = r.raw("controller.listener.names").unwrap_or_default();
        return Err(ConfigError::invalid(
            "controller.listener.names",
            &raw,
            "empty listener name",
        ));
    }

    let map_key = "listener.security.protocol.map";
    let map_raw = r.string(map_key)?;
    let mut protocol_map = BTreeMap::new();
    for entry in split_list(&map_raw) {
        let (name, proto) = entry.split_once(':').ok_or_else(|| {
            ConfigError::invalid(
                map_key,
                &map_raw,
                format!("entry {entry:?} is not NAME:PROTOCOL"),
            )
        })?;
        let proto = SecurityProtocol::from_name(proto).ok_or_else(|| {
            ConfigError::invalid(
                map_key,
                &map_raw,
                format!("unknown security protocol {proto:?}"),
            )
        })?;
        let name = name.trim().to_ascii_uppercase();
        if name.is_empty() {
            return Err(ConfigError::invalid(
                map_key,
                &map_raw,
                "empty listener name",
            ));
        }
        if protocol_map.insert(name.clone(), proto).is_some() {
            return Err(ConfigError::invalid(
                map_key,
                &map_raw,
                format!("listener {name} is mapped twice"),
            ));
        }
    }
    if !explicit.contains_key(map_key) {
        // Kafka maps controller listeners to PLAINTEXT when the map is left at its default.
        for name in &controller_listener_names {
            protocol_map
                .entry(name.clone())
                .or_insert(SecurityProtocol::Plaintext);
        }
    }

    let listeners = parse_listeners("listeners", &r.list("listeners")?, &protocol_map)?;
    if listeners.is_empty() {
        return Err(ConfigError::invalid(
            "listeners",
            "",
            "at least one listener is required",
        ));
    }
    let advertised_key = "advertised.listeners";
    let mut advertised_listeners = match r.value(advertised_key)? {
        Some(_) => {
            let list = r.list(advertised_key)?;
            let parsed = parse_listeners(advertised_key, &list, &protocol_map)?;
            let raw = r.raw(advertised_key).unwrap_or_default();
            for l in &parsed {
                if l.host == "0.0.0.0" {
                    return Err(ConfigError::invalid(
                        advertised_key,
                        &raw,
                        "cannot use the nonroutable meta-address 0.0.0.0",
                    ));
                }
                if !listeners.iter().any(|x| x.name == l.name) {
                    return Err(ConfigError::invalid(
                        advertised_key,
                        &raw,
                        format!("listener {} is not defined in listeners", l.name),
                    ));
                }
            }
            parsed
        }
        None => listeners.clone(),
    };
    advertised_listeners.retain(|l| !controller_listener_names.contains(&l.name));

    let ibl_key = "inter.broker.listener.name";
    let sibp_key = "security.inter.broker.protocol";
    let inter_broker_listener_name = match r.opt_string(ibl_key)? {
        Some(name) => {
            if explicit.contains_key(sibp_key) {
                return Err(ConfigError::invalid(
                    ibl_key,
                    &name,
                    format!("only one of {ibl_key} and {sibp_key} should be set"),
                ));
            }
            let upper = name.to_ascii_uppercase();
            if !advertised_listeners.iter().any(|l| l.name == upper) {
                return Err(ConfigError::invalid(
                    ibl_key,
                    &name,
                    "must be a listener name defined in advertised.listeners",
                ));
            }
            if controller_listener_names.contains(&upper) {
                return Err(ConfigError::invalid(
                    ibl_key,
                    &name,
                    "must not be a controller listener",
                ));
            }
            upper
        }
        None => r.string(sibp_key)?,
    };
    if process_roles.contains(&ProcessRole::Broker)
        && !explicit.contains_key(ibl_key)
        && !advertised_listeners
            .iter()
            .any(|l| l.name == inter_broker_listener_name)
    {
        let raw = r.raw(sibp_key).unwrap_or_default();
        return Err(ConfigError::invalid(
            sibp_key,
            &raw,
            format!("no listener named {inter_broker_listener_name} is defined in advertised.listeners; set inter.broker.listener.name"),
        ));
    }

    check_controller_listeners(&process_roles, &controller_listener_names, &listeners, &r)?;

    let voters_raw = r.raw("controller.quorum.voters").unwrap_or_default();
    let mut controller_quorum_voters: Vec<QuorumVoter> = Vec::new();
    for entry in r.list("controller.quorum.voters")? {
        let voter = parse_voter(&entry)
            .map_err(|e| ConfigError::invalid("controller.quorum.voters", &voters_raw, e))?;
        if controller_quorum_voters.iter().any(|v| v.id == voter.id) {
            return Err(ConfigError::invalid(
                "controller.quorum.voters",
                &voters_raw,
                format!("voter id {} appears twice", voter.id),
            ));
        }
        controller_quorum_voters.push(voter);
    }
    let controller_quorum_bootstrap_servers = r.list("controller.quorum.bootstrap.servers")?;
    for s in &controller_quorum_bootstrap_servers {
        crate::types::split_host_port(s).map_err(|e| {
            ConfigError::invalid(
                "controller.quorum.bootstrap.servers",
                &r.raw("controller.quorum.bootstrap.servers")
                    .unwrap_or_default(),
                e,
            )
        })?;
    }

    let log_dirs = if explicit.contains_key("log.dirs") || !explicit.contains_key("log.dir") {
        r.list("log.dirs")?
    } else {
        r.list("log.dir")?
    };

    let log_roll_ms = match r.opt_long("log.roll.ms")? {
        Some(ms) => ms,
        None => i64::from(r.int("log.roll.hours")?) * 3_600_000,
    };
    if log_roll_ms < 1 {
        return Err(ConfigError::invalid(
            "log.roll.ms",
            &log_roll_ms.to_string(),
            "must be at least 1",
        ));
    }
    let log_roll_jitter_ms = match r.opt_long("log.roll.jitter.ms")? {
        Some(ms) => ms,
        None => i64::from(r.int("log.roll.jitter.hours")?) * 3_600_000,
    };
    if log_roll_jitter_ms < 0 {
        return Err(ConfigError::invalid(
            "log.roll.jitter.ms",
            &log_roll_jitter_ms.to_string(),
            "must be at least 0",
        ));
    }
    let log_flush_scheduler_interval_ms = r.long("log.flush.scheduler.interval.ms")?;
    let log_flush_interval_ms = r
        .opt_long("log.flush.interval.ms")?
        .unwrap_or(log_flush_scheduler_interval_ms);

    let log_retention_ms = retention_ms(&r)?;

    let group_min_session_timeout_ms = r.int("group.min.session.timeout.ms")?;
    let group_max_session_timeout_ms = r.int("group.max.session.timeout.ms")?;
    if group_max_session_timeout_ms < group_min_session_timeout_ms {
        return Err(ConfigError::invalid(
            "group.max.session.timeout.ms",
            &group_max_session_timeout_ms.to_string(),
            format!(
                "must be at least group.min.session.timeout.ms ({group_min_session_timeout_ms})"
            ),
        ));
    }

    let (group_consumer_session_timeout_ms, group_consumer_heartbeat_interval_ms) =
        consumer_group_timeouts(&r)?;

    let overrides_raw = r.string("max.connections.per.ip.overrides")?;
    let mut max_connections_per_ip_overrides = BTreeMap::new();
    for entry in split_list(&overrides_raw) {
        let parsed = entry
            .rsplit_once(':')
            .and_then(|(h, n)| Some((h.trim().to_string(), n.trim().parse::<i32>().ok()?)))
            .filter(|(h, n)| !h.is_empty() && *n >= 0);
        let (host, n) = parsed.ok_or_else(|| {
            ConfigError::invalid(
                "max.connections.per.ip.overrides",
                &overrides_raw,
                format!("entry {entry:?} is not host:count"),
            )
        })?;
        max_connections_per_ip_overrides.insert(host, n);
    }

    let super_users = security
        .get("super.users")
        .map(|s| {
            s.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();

    let topic_defaults = broker_topic_defaults(&r)?;

    let config = BrokerConfig {
        node_id,
        process_roles,
        listeners,
        advertised_listeners,
        listener_security_protocol_map: protocol_map,
        inter_broker_listener_name,
        controller_listener_names,
        controller_quorum_voters,
        controller_quorum_bootstrap_servers,
        controller_quorum_auto_join_enable: r.bool("controller.quorum.auto.join.enable")?,
        log_dirs,
        metadata_log_dir: r.opt_string("metadata.log.dir")?,
        broker_rack: r.opt_string("broker.rack")?,
        num_partitions: r.int("num.partitions")?,
        default_replication_factor: r.int("default.replication.factor")?,
        min_insync_replicas: r.int("min.insync.replicas")?,
        auto_create_topics_enable: r.bool("auto.create.topics.enable")?,
        delete_topic_enable: r.bool("delete.topic.enable")?,
        unclean_leader_election_enable: r.bool("unclean.leader.election.enable")?,
        auto_leader_rebalance_enable: r.bool("auto.leader.rebalance.enable")?,
        leader_imbalance_check_interval_seconds: r
            .long("leader.imbalance.check.interval.seconds")?,
        leader_imbalance_per_broker_percentage: r.int("leader.imbalance.per.broker.percentage")?,
        log_segment_bytes: r.int("log.segment.bytes")?,
        log_roll_ms,
        log_roll_jitter_ms,
        log_index_interval_bytes: r.int("log.index.interval.bytes")?,
        log_index_size_max_bytes: r.int("log.index.size.max.bytes")?,
        log_flush_interval_messages: r.long("log.flush.interval.messages")?,
        log_flush_interval_ms,
        log_flush_scheduler_interval_ms,
        log_flush_offset_checkpoint_interval_ms: r
            .int("log.flush.offset.checkpoint.interval.ms")?,
        log_preallocate: r.bool("log.preallocate")?,
        log_segment_delete_delay_ms: r.long("log.segment.delete.delay.ms")?,
        message_max_bytes: r.int("message.max.bytes")?,
        fetch_max_bytes: r.int("fetch.max.bytes")?,
        compression_type: CompressionType::parse(
            "compression.type",
            &r.string("compression.type")?,
        )?,
        log_message_timestamp_type: TimestampType::parse(
            "log.message.timestamp.type",
            &r.string("log.message.timestamp.type")?,
        )?,
        log_message_timestamp_before_max_ms: r.long("log.message.timestamp.before.max.ms")?,
        log_message_timestamp_after_max_ms: r.long("log.message.timestamp.after.max.ms")?,
        log_retention_ms,
        log_retention_bytes: r.long("log.retention.bytes")?,
        log_retention_check_interval_ms: r.long("log.retention.check.interval.ms")?,
        log_cleanup_policy: CleanupPolicy::from_list(&r.list("log.cleanup.policy")?),
        log_cleaner_enable: r.bool("log.cleaner.enable")?,
        log_cleaner_threads: r.int("log.cleaner.threads")?,
        log_cleaner_backoff_ms: r.long("log.cleaner.backoff.ms")?,
        log_cleaner_delete_retention_ms: r.long("log.cleaner.delete.retention.ms")?,
        log_cleaner_min_compaction_lag_ms: r.long("log.cleaner.min.compaction.lag.ms")?,
        log_cleaner_max_compaction_lag_ms: r.long("log.cleaner.max.compaction.lag.ms")?,
        log_cleaner_min_cleanable_ratio: r.double("log.cleaner.min.cleanable.ratio")?,
        log_cleaner_dedupe_buffer_size: r.long("log.cleaner.dedupe.buffer.size")?,
        log_cleaner_io_buffer_load_factor: r.double("log.cleaner.io.buffer.load.factor")?,
        log_cleaner_io_max_bytes_per_second: r.double("log.cleaner.io.max.bytes.per.second")?,
        num_recovery_threads_per_data_dir: r.int("num.recovery.threads.per.data.dir")?,
        num_io_threads: r.int("num.io.threads")?,
        num_network_threads: r.int("num.network.threads")?,
        queued_max_requests: r.int("queued.max.requests")?,
        socket_request_max_bytes: r.int("socket.request.max.bytes")?,
        socket_send_buffer_bytes: r.int("socket.send.buffer.bytes")?,
        socket_receive_buffer_bytes: r.int("socket.receive.buffer.bytes")?,
        connections_max_idle_ms: r.long("connections.max.idle.ms")?,
        max_connections: r.int("max.connections")?,
        max_connections_per_ip: r.int("max.connections.per.ip")?,
        max_connections_per_ip_overrides,
        connection_failed_authentication_delay_ms: r
            .int("connection.failed.authentication.delay.ms")?,
        offsets_topic_num_partitions: r.int("offsets.topic.num.partitions")?,
        offsets_topic_replication_factor: r.short("offsets.topic.replication.factor")?,
        offsets_topic_segment_bytes: r.int("offsets.topic.segment.bytes")?,
        offsets_retention_minutes: r.int("offsets.retention.minutes")?,
        offsets_retention_check_interval_ms: r.long("offsets.retention.check.interval.ms")?,
        offsets_commit_timeout_ms: r.int("offsets.commit.timeout.ms")?,
        offset_metadata_max_bytes: r.int("offset.metadata.max.bytes")?,
        group_initial_rebalance_delay_ms: r.int("group.initial.rebalance.delay.ms")?,
        group_min_session_timeout_ms,
        group_max_session_timeout_ms,
        group_max_size: r.int("group.max.size")?,
        group_coordinator_rebalance_protocols: r.list("group.coordinator.rebalance.protocols")?,
        group_consumer_session_timeout_ms,
        group_consumer_heartbeat_interval_ms,
        group_consumer_max_size: r.int("group.consumer.max.size")?,
        group_consumer_assignors: r.list("group.consumer.assignors")?,
        group_consumer_migration_policy: r.string("group.consumer.migration.policy")?,
        transaction_state_log_num_partitions: r.int("transaction.state.log.num.partitions")?,
        transaction_state_log_replication_factor: r
            .short("transaction.state.log.replication.factor")?,
        transaction_state_log_min_isr: r.int("transaction.state.log.min.isr")?,
        transaction_max_timeout_ms: r.int("transaction.max.timeout.ms")?,
        transactional_id_expiration_ms: r.int("transactional.id.expiration.ms")?,
        producer_id_expiration_ms: r.int("producer.id.expiration.ms")?,
        replica_lag_time_max_ms: r.long("replica.lag.time.max.ms")?,
        replica_fetch_max_bytes: r.int("replica.fetch.max.bytes")?,
        replica_fetch_min_bytes: r.int("replica.fetch.min.bytes")?,
        replica_fetch_wait_max_ms: r.int("replica.fetch.wait.max.ms")?,
        replica_fetch_response_max_bytes: r.int("replica.fetch.response.max.bytes")?,
        replica_fetch_backoff_ms: r.int("replica.fetch.backoff.ms")?,
        replica_socket_timeout_ms: r.int("replica.socket.timeout.ms")?,
        num_replica_fetchers: r.int("num.replica.fetchers")?,
        replica_high_watermark_checkpoint_interval_ms: r
            .long("replica.high.watermark.checkpoint.interval.ms")?,
        broker_heartbeat_interval_ms: r.int("broker.heartbeat.interval.ms")?,
        broker_session_timeout_ms: r.int("broker.session.timeout.ms")?,
        controller_quorum_election_timeout_ms: r.int("controller.quorum.election.timeout.ms")?,
        controller_quorum_fetch_timeout_ms: r.int("controller.quorum.fetch.timeout.ms")?,
        authorizer_class_name: r.string("authorizer.class.name")?,
        super_users,
        security: SecurityConfig::new(security),
        explicit: KeysOnly(explicit),
        topic_defaults,
        source_pairs: KeysOnlyPairs::default(),
        dynamic_sources: BTreeMap::new(),
    };
    Ok(config)
}

/// `log.retention.ms` > `log.retention.minutes` > `log.retention.hours`; negative means
/// forever (-1) and 0 is refused, as in Kafka.
fn retention_ms(r: &Resolver<'_>) -> Result<i64, ConfigError> {
    let (key, ms) = if let Some(ms) = r.opt_long("log.retention.ms")? {
        ("log.retention.ms", ms)
    } else if let Some(min) = r.opt_int("log.retention.minutes")? {
        ("log.retention.minutes", i64::from(min) * 60_000)
    } else {
        (
            "log.retention.hours",
            i64::from(r.int("log.retention.hours")?) * 3_600_000,
        )
    };
    if ms == 0 {
        let raw = r.raw(key).unwrap_or_default();
        return Err(ConfigError::invalid(
            key,
            &raw,
            "log.retention.ms must be unlimited (-1) or, greater than or equal to 1",
        ));
    }
    Ok(if ms < 0 { -1 } else { ms })
}

fn parse_listeners(
    key: &str,
    entries: &[String],
    protocol_map: &BTreeMap<String, SecurityProtocol>,
) -> Result<Vec<Listener>, ConfigError> {
    let raw = entries.join(",");
    let mut out: Vec<Listener> = Vec::new();
    for entry in entries {
        let (name, host, port) =
            parse_endpoint(entry).map_err(|e| ConfigError::invalid(key, &raw, e))?;
        let security_protocol = *protocol_map.get(&name).ok_or_else(|| {
            ConfigError::invalid(
                key,
                &raw,
                format!("no security protocol defined for listener {name} in listener.security.protocol.map"),
            )
        })?;
        if out.iter().any(|l| l.name == name) {
            return Err(ConfigError::invalid(
                key,
                &raw,
                format!("each listener must have a different name; {name} appears twice"),
            ));
        }
        let v6 = |h: &str| h.contains(':');
        if port != 0
            && out
                .iter()
                .any(|l| l.port == port && v6(&l.host) == v6(&host))
        {
            return Err(ConfigError::invalid(
                key,
                &raw,
                format!("each listener must have a different port; {port} is used twice"),
            ));
        }
        out.push(Listener {
            name,
            host,
            port,
            security_protocol,
        });
    }
    Ok(out)
}

fn check_controller_listeners(
    roles: &[ProcessRole],
    names: &[String],
    listeners: &[Listener],
    r: &Resolver<'_>,
) -> Result<(), ConfigError> {
    let key = "controller.listener.names";
    let raw = r.raw(key).unwrap_or_default();
    let is_controller = roles.contains(&ProcessRole::Controller);
    let is_broker = roles.contains(&ProcessRole::Broker);
    if (is_controller || is_broker) && names.is_empty() {
        return Err(ConfigError::invalid(
            key,
            &raw,
            "must contain at least one value when process.roles is set",
        ));
    }
    for name in names {
        let defined = listeners.iter().any(|l| &l.name == name);
        if is_controller && !defined {
            return Err(ConfigError::invalid(
                key,
                &raw,
                format!("controller listener {name} is not defined in listeners"),
            ));
        }
        if is_broker && !is_controller && defined {
            return Err(ConfigError::invalid(
                key,
                &raw,
                format!("must not contain a value appearing in listeners ({name}) when running with just the broker role"),
            ));
        }
    }
    Ok(())
}

/// `group.consumer.session.timeout.ms` and `group.consumer.heartbeat.interval.ms`, checked against their
/// min/max keys and each other as Kafka's GroupCoordinatorConfig does.
fn consumer_group_timeouts(r: &Resolver<'_>) -> Result<(i32, i32), ConfigError> {
    let session = r.int("group.consumer.session.timeout.ms")?;
    let min_session = r.int("group.consumer.min.session.timeout.ms")?;
    let max_session = r.int("group.consumer.max.session.timeout.ms")?;
    let interval = r.int("group.consumer.heartbeat.interval.ms")?;
    let min_interval = r.int("group.consumer.min.heartbeat.interval.ms")?;
    let max_interval = r.int("group.consumer.max.heartbeat.interval.ms")?;
    let bad = |key: &str, value: i32, why: String| {
        Err(ConfigError::invalid(key, &value.to_string(), why))
    };
    if !(min_session..=max_session).contains(&session) {
        return bad(
            "group.consumer.session.timeout.ms",
            session,
            format!("must be between group.consumer.min.session.timeout.ms ({min_session}) and group.consumer.max.session.timeout.ms ({max_session})"),
        );
    }
    if !(min_interval..=max_interval).contains(&interval) {
        return bad(
            "group.consumer.heartbeat.interval.ms",
            interval,
            format!("must be between group.consumer.min.heartbeat.interval.ms ({min_interval}) and group.consumer.max.heartbeat.interval.ms ({max_interval})"),
        );
    }
    if interval >= session {
        return bad(
            "group.consumer.heartbeat.interval.ms",
            interval,
            format!("must be less than group.consumer.session.timeout.ms ({session})"),
        );
    }
    Ok((session, interval))
}

#[cfg(test)]
mod dynamic_tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn dynamic_layers_override_static_in_kafkas_order() {
        let base = BrokerConfig::from_pairs(&[
            ("log.retention.ms".into(), "1000".into()),
            ("message.max.bytes".into(), "5000".into()),
        ])
        .unwrap()
        .config;
        let cfg = base
            .with_dynamic(
                &map(&[("log.retention.ms", "2000"), ("message.max.bytes", "6000")]),
                &map(&[("message.max.bytes", "7000")]),
            )
            .unwrap();
        assert_eq!(cfg.log_retention_ms, 2000);
        assert_eq!(cfg.message_max_bytes, 7000);
        let rows = cfg.describe();
        let row = |k: &str| rows.iter().find(|e| e.name == k).unwrap().clone();
        assert_eq!(
            row("message.max.bytes").source,
            ConfigSource::DynamicBrokerConfig
        );
        assert_eq!(
            row("log.retention.ms").source,
            ConfigSource::DynamicDefaultBrokerConfig
        );
        assert!(!row("log.retention.ms").read_only);
        assert!(row("log.dirs").read_only);
        // The static configuration itself is untouched.
        assert_eq!(base.message_max_bytes, 5000);
    }

    #[test]
    fn only_dynamic_keys_with_valid_values_are_accepted() {
        assert!(validate_dynamic_broker_configs(&map(&[("log.retention.ms", "5")])).is_ok());
        assert!(validate_dynamic_broker_configs(&map(&[("log.cleaner.threads", "2")])).is_ok());
        let e = validate_dynamic_broker_configs(&map(&[("listeners", "PLAINTEXT://:1")]));
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("Cannot update these configs dynamically"));
        let e = validate_dynamic_broker_configs(&map(&[("log.retention.ms", "x")]));
        assert!(e.unwrap_err().to_string().contains("log.retention.ms"));
        let e = validate_dynamic_broker_configs(&map(&[("nope", "1")]));
        assert!(e
            .unwrap_err()
            .to_string()
            .contains("Unknown broker config name"));
    }
}
