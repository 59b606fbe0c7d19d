//! Topic-level configuration: the keys, validation, resolution against the broker's
//! defaults, and DescribeConfigs rows for a topic resource.

use std::collections::BTreeMap;

use crate::broker::BrokerConfig;
use crate::def::{key, KeyDef, Resolver, Validator};
use crate::describe::{ConfigEntry, ConfigSource, ConfigSynonym, ConfigType as T};
use crate::error::ConfigError;
use crate::types::{CleanupPolicy, CompressionType, TimestampType};

const LONG_MAX: &str = "9223372036854775807";
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

/// A topic key and the broker keys that supply its default, in Kafka's priority order,
/// each with the factor that converts it to the topic key's unit.
pub(crate) struct TopicKey {
    pub def: KeyDef,
    pub synonyms: &'static [(&'static str, i64)],
    /// Internal keys are accepted but never listed by DescribeConfigs.
    pub internal: bool,
}

const fn t(def: KeyDef, synonyms: &'static [(&'static str, i64)]) -> TopicKey {
    TopicKey {
        def,
        synonyms,
        internal: false,
    }
}

/// Kafka 4.x `LogConfig` keys, sorted by name.
pub(crate) static TOPIC_KEYS: &[TopicKey] = &[
    t(key("cleanup.policy", T::List, Some("delete"), Validator::ListOf(&["compact", "delete"]),
        "Retention policy for old segments: delete, compact, or both."),
        &[("log.cleanup.policy", 1)]),
    t(key("compression.gzip.level", T::Int, Some("-1"), Validator::GzipLevel,
        "Compression level when compression.type is gzip."),
        &[("compression.gzip.level", 1)]),
    t(key("compression.lz4.level", T::Int, Some("9"), Validator::Between(1, 17),
        "Compression level when compression.type is lz4."),
        &[("compression.lz4.level", 1)]),
    t(key("compression.type", T::String, Some("producer"),
        Validator::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        "Final compression of the topic's data; producer keeps the producer's codec."),
        &[("compression.type", 1)]),
    t(key("compression.zstd.level", T::Int, Some("3"), Validator::Between(-131072, 22),
        "Compression level when compression.type is zstd."),
        &[("compression.zstd.level", 1)]),
    t(key("delete.retention.ms", T::Long, Some("86400000"), Validator::AtLeast(0),
        "How long delete tombstones are retained on compacted topics."),
        &[("log.cleaner.delete.retention.ms", 1)]),
    t(key("file.delete.delay.ms", T::Long, Some("60000"), Validator::AtLeast(0),
        "Time to wait before deleting a file from the filesystem."),
        &[("log.segment.delete.delay.ms", 1)]),
    t(key("flush.messages", T::Long, Some(LONG_MAX), Validator::AtLeast(1),
        "Messages written to a partition before an fsync is forced."),
        &[("log.flush.interval.messages", 1)]),
    t(key("flush.ms", T::Long, Some(LONG_MAX), Validator::AtLeast(0),
        "Time after which an fsync of the log is forced."),
        &[("log.flush.interval.ms", 1), ("log.flush.scheduler.interval.ms", 1)]),
    t(key("follower.replication.throttled.replicas", T::List, Some(""), Validator::ThrottledReplicas,
        "Replicas whose log replication is throttled on the follower side."),
        &[]),
    t(key("index.interval.bytes", T::Int, Some("4096"), Validator::AtLeast(0),
        "How often an entry is added to the offset index."),
        &[("log.index.interval.bytes", 1)]),
    t(key("leader.replication.throttled.replicas", T::List, Some(""), Validator::ThrottledReplicas,
        "Replicas whose log replication is throttled on the leader side."),
        &[]),
    t(key("local.retention.bytes", T::Long, Some("-2"), Validator::AtLeast(-2),
        "Local log size retained with tiered storage; -2 means retention.bytes."),
        &[("log.local.retention.bytes", 1)]),
    t(key("local.retention.ms", T::Long, Some("-2"), Validator::AtLeast(-2),
        "Local log age retained with tiered storage; -2 means retention.ms."),
        &[("log.local.retention.ms", 1)]),
    t(key("max.compaction.lag.ms", T::Long, Some(LONG_MAX), Validator::AtLeast(1),
        "Maximum time a message stays ineligible for compaction."),
        &[("log.cleaner.max.compaction.lag.ms", 1)]),
    t(key("max.message.bytes", T::Int, Some("1048588"), Validator::AtLeast(0),
        "Largest record batch size allowed."),
        &[("message.max.bytes", 1)]),
    t(key("message.timestamp.after.max.ms", T::Long, Some("3600000"), Validator::AtLeast(0),
        "How far a CreateTime timestamp may be ahead of the broker's clock."),
        &[("log.message.timestamp.after.max.ms", 1)]),
    t(key("message.timestamp.before.max.ms", T::Long, Some(LONG_MAX), Validator::AtLeast(0),
        "How far a CreateTime timestamp may be behind the broker's clock."),
        &[("log.message.timestamp.before.max.ms", 1)]),
    t(key("message.timestamp.type", T::String, Some("CreateTime"),
        Validator::OneOf(&["CreateTime", "LogAppendTime"]),
        "Whether record timestamps are the producer's (CreateTime) or the broker's (LogAppendTime)."),
        &[("log.message.timestamp.type", 1)]),
    t(key("min.cleanable.dirty.ratio", T::Double, Some("0.5"), Validator::DoubleBetween(0.0, 1.0),
        "Minimum ratio of dirty log to total log for compaction to run."),
        &[("log.cleaner.min.cleanable.ratio", 1)]),
    t(key("min.compaction.lag.ms", T::Long, Some("0"), Validator::AtLeast(0),
        "Minimum time a message stays uncompacted."),
        &[("log.cleaner.min.compaction.lag.ms", 1)]),
    t(key("min.insync.replicas", T::Int, Some("1"), Validator::AtLeast(1),
        "Minimum in-sync replicas for an acks=all write to succeed."),
        &[("min.insync.replicas", 1)]),
    t(key("preallocate", T::Boolean, Some("false"), Validator::None,
        "Preallocate the file when creating a new segment."),
        &[("log.preallocate", 1)]),
    t(key("remote.log.copy.disable", T::Boolean, Some("false"), Validator::None,
        "Stop copying segments to tiered storage."),
        &[]),
    t(key("remote.log.delete.on.disable", T::Boolean, Some("false"), Validator::None,
        "Delete tiered data when tiered storage is disabled for the topic."),
        &[]),
    t(key("remote.storage.enable", T::Boolean, Some("false"), Validator::None,
        "Enable tiered storage for the topic."),
        &[]),
    t(key("retention.bytes", T::Long, Some("-1"), Validator::None,
        "Maximum partition size before old segments are deleted; -1 is unlimited."),
        &[("log.retention.bytes", 1)]),
    t(key("retention.ms", T::Long, Some("604800000"), Validator::AtLeast(-1),
        "Maximum age of a segment before deletion; -1 is unlimited."),
        &[("log.retention.ms", 1), ("log.retention.minutes", MINUTE_MS), ("log.retention.hours", HOUR_MS)]),
    t(key("segment.bytes", T::Int, Some("1073741824"), Validator::AtLeast(1024 * 1024),
        "Segment file size."),
        &[("log.segment.bytes", 1)]),
    t(key("segment.index.bytes", T::Int, Some("10485760"), Validator::AtLeast(4),
        "Size of the offset and time indexes of a segment."),
        &[("log.index.size.max.bytes", 1)]),
    t(key("segment.jitter.ms", T::Long, Some("0"), Validator::AtLeast(0),
        "Maximum random jitter subtracted from segment.ms."),
        &[("log.roll.jitter.ms", 1), ("log.roll.jitter.hours", HOUR_MS)]),
    t(key("segment.ms", T::Long, Some("604800000"), Validator::AtLeast(1),
        "Time after which a segment is rolled even if not full."),
        &[("log.roll.ms", 1), ("log.roll.hours", HOUR_MS)]),
    t(key("unclean.leader.election.enable", T::Boolean, Some("false"), Validator::None,
        "Allow out-of-sync replicas to become leader as a last resort."),
        &[("unclean.leader.election.enable", 1)]),
    // Kafka's testing-only escape hatch below segment.bytes' 1 MiB minimum; never described.
    TopicKey {
        def: key("internal.segment.bytes", T::Int, None, Validator::AtLeast(14),
            "Segment size overriding segment.bytes, for tests only."),
        synonyms: &[],
        internal: true,
    },
];

pub(crate) fn topic_key(name: &str) -> Option<&'static TopicKey> {
    TOPIC_KEYS.iter().find(|k| k.def.name == name)
}

fn topic_def(name: &str) -> Option<&'static KeyDef> {
    topic_key(name).map(|k| &k.def)
}

/// The public topic-level keys, sorted (internal keys excluded).
pub fn topic_config_names() -> impl Iterator<Item = &'static str> {
    TOPIC_KEYS
        .iter()
        .filter(|k| !k.internal)
        .map(|k| k.def.name)
}

/// Whether `name` is a broker key that serves as some topic key's default (a synonym).
pub(crate) fn is_topic_synonym(name: &str) -> bool {
    TOPIC_KEYS
        .iter()
        .any(|k| k.synonyms.iter().any(|(s, _)| *s == name))
}

/// Whether `name` is a topic-level key (including Kafka's internal ones).
pub fn is_topic_config(name: &str) -> bool {
    topic_key(name).is_some()
}

/// Checks topic overrides as CreateTopics/AlterConfigs receive them: every key must be a
/// topic config and every value must parse and satisfy its range. The error names the
/// first offending key.
pub fn validate_topic_configs(overrides: &[(String, String)]) -> Result<(), ConfigError> {
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in overrides {
        let def = topic_def(k).ok_or_else(|| ConfigError::UnknownTopicConfig { key: k.clone() })?;
        def.parse(v)?;
        last.insert(k.as_str(), v.as_str());
    }
    let lag = |k: &str| last.get(k).and_then(|v| v.trim().parse::<i64>().ok());
    if let (Some(min), Some(max)) = (lag("min.compaction.lag.ms"), lag("max.compaction.lag.ms")) {
        check_compaction_lags(min, max)?;
    }
    Ok(())
}

/// One change of IncrementalAlterConfigs (Kafka's AlterConfigOp.OpType).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    /// Set the key to the value.
    Set(String),
    /// Remove the override (back to the broker default).
    Delete,
    /// Add values to a list-type key (those not already in it).
    Append(String),
    /// Remove values from a list-type key.
    Subtract(String),
}

/// Applies IncrementalAlterConfigs operations to a topic's overrides as Kafka does
/// (`ConfigAdminManager.prepareIncrementalConfigs`): APPEND and SUBTRACT only on list keys,
/// starting from the override or, without one, the key's default; then the result is
/// validated like CreateTopics configs. The error names the offending key.
pub fn apply_topic_config_ops(
    current: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp)],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let next = apply_ops(current, ops, |key| {
        topic_def(key).ok_or_else(|| ConfigError::UnknownTopicConfig {
            key: key.to_string(),
        })
    })?;
    let pairs: Vec<(String, String)> = next.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    validate_topic_configs(&pairs)?;
    Ok(next)
}

/// The same operations on one level of dynamic broker configuration (the caller validates the
/// result with `validate_dynamic_broker_configs`).
pub fn apply_broker_config_ops(
    current: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp)],
) -> Result<BTreeMap<String, String>, ConfigError> {
    apply_ops(current, ops, |key| {
        crate::broker_keys::broker_key(key).ok_or_else(|| {
            ConfigError::invalid(key, "", format!("Unknown broker config name: {key}"))
        })
    })
}

fn apply_ops(
    current: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp)],
    lookup: impl Fn(&str) -> Result<&'static KeyDef, ConfigError>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut next = current.clone();
    for (key, op) in ops {
        let def = lookup(key)?;
        match op {
            ConfigOp::Set(v) => {
                next.insert(key.clone(), v.clone());
            }
            ConfigOp::Delete => {
                next.remove(key);
            }
            ConfigOp::Append(v) | ConfigOp::Subtract(v) => {
                let verb = if matches!(op, ConfigOp::Append(_)) {
                    "append"
                } else {
                    "subtract"
                };
                if def.ty != T::List {
                    return Err(ConfigError::invalid(
                        key,
                        v,
                        format!("Config value {verb} is not allowed for config key: {key}"),
                    ));
                }
                let start = next
                    .get(key)
                    .cloned()
                    .or_else(|| def.default.map(str::to_string))
                    .unwrap_or_default();
                let mut items: Vec<String> = split_list(&start);
                let given = split_list(v);
                if matches!(op, ConfigOp::Append(_)) {
                    for item in given {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                next.insert(key.clone(), items.join(","));
            }
        }
    }
    Ok(next)
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn check_compaction_lags(min: i64, max: i64) -> Result<(), ConfigError> {
    if min > max {
        return Err(ConfigError::invalid(
            "min.compaction.lag.ms",
            &min.to_string(),
            format!("conflict topic config setting min.compaction.lag.ms ({min}) > max.compaction.lag.ms ({max})"),
        ));
    }
    Ok(())
}

/// Computes every topic key's default from the broker configuration, as Kafka's
/// `extractLogConfigMap` does: the first broker synonym that is set wins (converted to
/// the topic key's unit), else the first synonym's default, else the topic default.
pub(crate) fn broker_topic_defaults(
    broker: &Resolver<'_>,
) -> Result<BTreeMap<&'static str, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for tk in TOPIC_KEYS {
        let chosen = tk
            .synonyms
            .iter()
            .find(|(s, _)| broker.explicit.contains_key(*s))
            .or_else(|| tk.synonyms.iter().find(|(s, _)| broker.raw(s).is_some()));
        let value = match chosen {
            Some((syn, factor)) => match broker.value(syn)? {
                Some(v) => match v.as_i64() {
                    Some(n) if *factor != 1 => Some(n.saturating_mul(*factor).to_string()),
                    _ => Some(v.to_kafka_string()),
                },
                None => None,
            },
            None => tk.def.default.map(str::to_string),
        };
        if let Some(mut value) = value {
            // Kafka turns any negative broker retention into "forever".
            if tk.def.name == "retention.ms" && value.starts_with('-') {
                value = "-1".to_string();
            }
            out.insert(tk.def.name, value);
        }
    }
    Ok(out)
}

/// The effective configuration of one topic: its overrides over the broker's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `compression.type`.
    pub compression_type: CompressionType,
    /// `compression.gzip.level`.
    pub compression_gzip_level: i32,
    /// `compression.lz4.level`.
    pub compression_lz4_level: i32,
    /// `compression.zstd.level`.
    pub compression_zstd_level: i32,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `file.delete.delay.ms`.
    pub file_delete_delay_ms: i64,
    /// `flush.messages`.
    pub flush_messages: i64,
    /// `flush.ms`.
    pub flush_ms: i64,
    /// `follower.replication.throttled.replicas`.
    pub follower_replication_throttled_replicas: Vec<String>,
    /// `index.interval.bytes`.
    pub index_interval_bytes: i32,
    /// `leader.replication.throttled.replicas`.
    pub leader_replication_throttled_replicas: Vec<String>,
    /// `local.retention.bytes`.
    pub local_retention_bytes: i64,
    /// `local.retention.ms`.
    pub local_retention_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `max.message.bytes`.
    pub max_message_bytes: i32,
    /// `message.timestamp.after.max.ms`.
    pub message_timestamp_after_max_ms: i64,
    /// `message.timestamp.before.max.ms`.
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `preallocate`.
    pub preallocate: bool,
    /// `remote.log.copy.disable`.
    pub remote_log_copy_disable: bool,
    /// `remote.log.delete.on.disable`.
    pub remote_log_delete_on_disable: bool,
    /// `remote.storage.enable`.
    pub remote_storage_enable: bool,
    /// `retention.bytes` (-1: unlimited).
    pub retention_bytes: i64,
    /// `retention.ms` (-1: unlimited).
    pub retention_ms: i64,
    /// `segment.bytes`; use [`TopicConfig::segment_size`] for the size in force.
    pub segment_bytes: i32,
    /// `segment.index.bytes`.
    pub segment_index_bytes: i32,
    /// `segment.jitter.ms`.
    pub segment_jitter_ms: i64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election_enable: bool,
    /// `internal.segment.bytes` (tests only).
    pub internal_segment_bytes: Option<i32>,
}

impl TopicConfig {
    /// Resolves a topic's effective configuration: each key takes the topic override if
    /// present, else the broker's value for its synonyms (e.g. `log.retention.hours`
    /// converted to ms), else Kafka's default. Unknown keys and bad values are errors
    /// naming the key.
    pub fn resolve(
        overrides: &BTreeMap<String, String>,
        broker: &BrokerConfig,
    ) -> Result<TopicConfig, ConfigError> {
        for k in overrides.keys() {
            if topic_key(k).is_none() {
                return Err(ConfigError::UnknownTopicConfig { key: k.clone() });
            }
        }
        let r = Resolver {
            lookup: topic_def,
            explicit: overrides,
            fallback: Some(broker.topic_defaults()),
        };
        let cfg = TopicConfig {
            cleanup_policy: CleanupPolicy::from_list(&r.list("cleanup.policy")?),
            compression_type: CompressionType::parse(
                "compression.type",
                &r.string("compression.type")?,
            )?,
            compression_gzip_level: r.int("compression.gzip.level")?,
            compression_lz4_level: r.int("compression.lz4.level")?,
            compression_zstd_level: r.int("compression.zstd.level")?,
            delete_retention_ms: r.long("delete.retention.ms")?,
            file_delete_delay_ms: r.long("file.delete.delay.ms")?,
            flush_messages: r.long("flush.messages")?,
            flush_ms: r.long("flush.ms")?,
            follower_replication_throttled_replicas: r
                .list("follower.replication.throttled.replicas")?,
            index_interval_bytes: r.int("index.interval.bytes")?,
            leader_replication_throttled_replicas: r
                .list("leader.replication.throttled.replicas")?,
            local_retention_bytes: r.long("local.retention.bytes")?,
            local_retention_ms: r.long("local.retention.ms")?,
            max_compaction_lag_ms: r.long("max.compaction.lag.ms")?,
            max_message_bytes: r.int("max.message.bytes")?,
            message_timestamp_after_max_ms: r.long("message.timestamp.after.max.ms")?,
            message_timestamp_before_max_ms: r.long("message.timestamp.before.max.ms")?,
            message_timestamp_type: TimestampType::parse(
                "message.timestamp.type",
                &r.string("message.timestamp.type")?,
            )?,
            min_cleanable_dirty_ratio: r.double("min.cleanable.dirty.ratio")?,
            min_compaction_lag_ms: r.long("min.compaction.lag.ms")?,
            min_insync_replicas: r.int("min.insync.replicas")?,
            preallocate: r.bool("preallocate")?,
            remote_log_copy_disable: r.bool("remote.log.copy.disable")?,
            remote_log_delete_on_disable: r.bool("remote.log.delete.on.disable")?,
            remote_storage_enable: r.bool("remote.storage.enable")?,
            retention_bytes: r.long("retention.bytes")?,
            retention_ms: r.long("retention.ms")?,
            segment_bytes: r.int("segment.bytes")?,
            segment_index_bytes: r.int("segment.index.bytes")?,
            segment_jitter_ms: r.long("segment.jitter.ms")?,
            segment_ms: r.long("segment.ms")?,
            unclean_leader_election_enable: r.bool("unclean.leader.election.enable")?,
            internal_segment_bytes: r.opt_int("internal.segment.bytes")?,
        };
        check_compaction_lags(cfg.min_compaction_lag_ms, cfg.max_compaction_lag_ms)?;
        Ok(cfg)
    }

    /// The segment size in force: `internal.segment.bytes` if set, else `segment.bytes`.
    pub fn segment_size(&self) -> i32 {
        self.internal_segment_bytes.unwrap_or(self.segment_bytes)
    }

    /// The time after which a segment rolls: with compaction, no later than
    /// `max.compaction.lag.ms` (as Kafka's `maxSegmentMs`).
    pub fn max_segment_ms(&self) -> i64 {
        if self.cleanup_policy.compact && self.max_compaction_lag_ms > 0 {
            self.max_compaction_lag_ms.min(self.segment_ms)
        } else {
            self.segment_ms
        }
    }
}

/// DescribeConfigs rows for a topic: every public topic key (sorted by name) with its
/// effective value. Source is `DYNAMIC_TOPIC_CONFIG` for an override, else
/// `STATIC_BROKER_CONFIG` when one of its broker synonyms is set, else `DEFAULT_CONFIG`.
/// Synonyms, highest priority first: the override, then the set broker synonyms in
/// Kafka's order, then the defaults of the broker synonyms that have one.
///
/// Unlike Kafka, a set lower-priority synonym (`log.retention.hours` for `retention.ms`)
/// is reported as the source rather than hidden. Invalid overrides are shown as given
/// (they cannot be stored: validation happens on the way in).
pub fn describe_topic_configs(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
) -> Vec<ConfigEntry> {
    let defaults = broker.topic_defaults();
    let mut out = Vec::new();
    for tk in TOPIC_KEYS.iter().filter(|k| !k.internal) {
        let name = tk.def.name;
        let sensitive = tk.def.sensitive();
        let shown = |v: &str| -> Option<String> {
            if sensitive {
                None
            } else {
                Some(
                    tk.def
                        .parse(v)
                        .map(|p| p.to_kafka_string())
                        .unwrap_or_else(|_| v.to_string()),
                )
            }
        };
        let mut synonyms = Vec::new();
        let override_value = overrides.get(name);
        if let Some(v) = override_value {
            synonyms.push(ConfigSynonym {
                name: name.to_string(),
                value: shown(v),
                source: ConfigSource::DynamicTopicConfig,
            });
        }
        synonyms.extend(broker.synonyms_for(tk.synonyms.iter().map(|(s, _)| *s)));
        let value = match override_value {
            Some(v) => shown(v),
            None => defaults.get(name).and_then(|v| shown(v)),
        };
        out.push(ConfigEntry {
            name: name.to_string(),
            value,
            source: synonyms
                .first()
                .map(|s| s.source)
                .unwrap_or(ConfigSource::DefaultConfig),
            read_only: false,
            sensitive,
            config_type: tk.def.ty,
            synonyms,
            documentation: Some(tk.def.doc.to_string()),
        });
    }
    out
}

#[cfg(test)]
mod config_op_tests {
    use super::*;

    fn ops(list: &[(&str, ConfigOp)]) -> Vec<(String, ConfigOp)> {
        list.iter()
            .map(|(k, o)| (k.to_string(), o.clone()))
            .collect()
    }

    #[test]
    fn incremental_ops_follow_kafka() {
        let current = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let next = apply_topic_config_ops(
            &current,
            &ops(&[
                ("retention.ms", ConfigOp::Delete),
                ("cleanup.policy", ConfigOp::Append("compact".into())),
                ("segment.ms", ConfigOp::Set("60000".into())),
            ]),
        )
        .unwrap();
        assert_eq!(next.get("retention.ms"), None);
        // Append starts from the default ("delete").
        assert_eq!(next["cleanup.policy"], "delete,compact");
        let next = apply_topic_config_ops(
            &next,
            &ops(&[("cleanup.policy", ConfigOp::Subtract("delete".into()))]),
        )
        .unwrap();
        assert_eq!(next["cleanup.policy"], "compact");
        let err = apply_topic_config_ops(
            &next,
            &ops(&[("retention.ms", ConfigOp::Append("5".into()))]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("append is not allowed"), "{err}");
        let err =
            apply_topic_config_ops(&next, &ops(&[("retention.ms", ConfigOp::Set("x".into()))]))
                .unwrap_err();
        assert!(err.to_string().contains("retention.ms"), "{err}");
        assert!(matches!(
            apply_topic_config_ops(&next, &ops(&[("no.such.key", ConfigOp::Delete)])),
            Err(ConfigError::UnknownTopicConfig { .. })
        ));
    }
}
