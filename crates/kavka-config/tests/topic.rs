//! Topic configuration through the public API.

use std::collections::BTreeMap;

use kavka_config::{
    describe_topic_configs, topic_config_names, validate_topic_configs, BrokerConfig,
    CompressionType, ConfigError, ConfigSource, ConfigType, TimestampType, TopicConfig,
};

fn broker(items: &[(&str, &str)]) -> BrokerConfig {
    let pairs: Vec<(String, String)> = items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    BrokerConfig::from_pairs(&pairs)
        .expect("valid broker config")
        .config
}

fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    map(items).into_iter().collect()
}

#[test]
fn validation_accepts_good_and_names_bad_keys() {
    validate_topic_configs(&pairs(&[
        ("retention.ms", "-1"),
        ("cleanup.policy", "compact,delete"),
        ("min.cleanable.dirty.ratio", "0.1"),
        ("compression.type", "zstd"),
        ("leader.replication.throttled.replicas", "0:1,1:2"),
        ("internal.segment.bytes", "1024"),
    ]))
    .unwrap();

    match validate_topic_configs(&pairs(&[("retention.msx", "1")])) {
        Err(ConfigError::UnknownTopicConfig { key }) => assert_eq!(key, "retention.msx"),
        other => panic!("{other:?}"),
    }
    // A broker key is not a topic key.
    assert!(matches!(
        validate_topic_configs(&pairs(&[("log.retention.ms", "1")])),
        Err(ConfigError::UnknownTopicConfig { .. })
    ));
    for (k, v) in [
        ("retention.ms", "-2"),
        ("retention.ms", "abc"),
        ("segment.bytes", "1000"),
        ("cleanup.policy", "remove"),
        // Kafka's ValidList is case-sensitive.
        ("cleanup.policy", "Compact"),
        ("min.insync.replicas", "0"),
        ("message.timestamp.type", "Now"),
        ("min.cleanable.dirty.ratio", "2"),
        ("compression.gzip.level", "10"),
        ("compression.zstd.level", "23"),
        ("unclean.leader.election.enable", "maybe"),
        ("max.message.bytes", "-5"),
    ] {
        match validate_topic_configs(&pairs(&[(k, v)])) {
            Err(e @ ConfigError::InvalidValue { .. }) => {
                assert!(e.to_string().contains(k), "{e}")
            }
            other => panic!("{k}={v}: {other:?}"),
        }
    }
    assert!(validate_topic_configs(&pairs(&[
        ("min.compaction.lag.ms", "10"),
        ("max.compaction.lag.ms", "5")
    ]))
    .is_err());
}

#[test]
fn resolve_defaults_equal_kafka() {
    let t = TopicConfig::resolve(&BTreeMap::new(), &broker(&[])).unwrap();
    assert_eq!(t.retention_ms, 604_800_000);
    assert_eq!(t.retention_bytes, -1);
    assert_eq!(t.segment_bytes, 1_073_741_824);
    assert_eq!(t.segment_size(), 1_073_741_824);
    assert_eq!(t.segment_ms, 604_800_000);
    assert_eq!(t.segment_index_bytes, 10_485_760);
    assert_eq!(t.max_message_bytes, 1_048_588);
    assert_eq!(t.flush_messages, i64::MAX);
    assert_eq!(t.flush_ms, i64::MAX);
    assert_eq!(t.delete_retention_ms, 86_400_000);
    assert_eq!(t.file_delete_delay_ms, 60_000);
    assert_eq!(t.min_cleanable_dirty_ratio, 0.5);
    assert_eq!(t.message_timestamp_type, TimestampType::CreateTime);
    assert_eq!(t.message_timestamp_after_max_ms, 3_600_000);
    assert_eq!(t.compression_type, CompressionType::Producer);
    assert_eq!(t.compression_zstd_level, 3);
    assert!(t.cleanup_policy.delete && !t.cleanup_policy.compact);
    assert_eq!(t.min_insync_replicas, 1);
    assert_eq!(t.local_retention_ms, -2);
    assert!(!t.unclean_leader_election_enable);
    assert!(t.leader_replication_throttled_replicas.is_empty());
}

#[test]
fn resolve_uses_broker_synonyms_then_overrides() {
    let b = broker(&[
        ("log.retention.hours", "24"),
        ("log.segment.bytes", "2097152"),
        ("message.max.bytes", "5000"),
        ("log.flush.interval.messages", "10"),
        ("log.roll.hours", "1"),
        ("log.flush.scheduler.interval.ms", "700"),
        ("min.insync.replicas", "2"),
        ("log.cleanup.policy", "compact"),
        ("log.cleaner.min.cleanable.ratio", "0.2"),
    ]);
    let t = TopicConfig::resolve(&BTreeMap::new(), &b).unwrap();
    assert_eq!(t.retention_ms, 86_400_000);
    assert_eq!(t.segment_bytes, 2_097_152);
    assert_eq!(t.max_message_bytes, 5000);
    assert_eq!(t.flush_messages, 10);
    assert_eq!(t.segment_ms, 3_600_000);
    assert_eq!(t.flush_ms, 700);
    assert_eq!(t.min_insync_replicas, 2);
    assert!(t.cleanup_policy.compact && !t.cleanup_policy.delete);
    assert_eq!(t.min_cleanable_dirty_ratio, 0.2);
    // Compacted topics roll no later than max.compaction.lag.ms.
    assert_eq!(t.max_segment_ms(), 3_600_000);

    let t = TopicConfig::resolve(
        &map(&[
            ("retention.ms", "1000"),
            ("max.message.bytes", "100"),
            ("internal.segment.bytes", "4096"),
        ]),
        &b,
    )
    .unwrap();
    assert_eq!(t.retention_ms, 1000);
    assert_eq!(t.max_message_bytes, 100);
    assert_eq!(t.segment_size(), 4096);

    // minutes beat hours; ms beats both.
    let b2 = broker(&[
        ("log.retention.hours", "24"),
        ("log.retention.minutes", "30"),
    ]);
    assert_eq!(
        TopicConfig::resolve(&BTreeMap::new(), &b2)
            .unwrap()
            .retention_ms,
        1_800_000
    );
    let b3 = broker(&[("log.retention.ms", "-1"), ("log.retention.minutes", "30")]);
    assert_eq!(
        TopicConfig::resolve(&BTreeMap::new(), &b3)
            .unwrap()
            .retention_ms,
        -1
    );
}

#[test]
fn resolve_rejects_unknown_and_bad_overrides() {
    let b = broker(&[]);
    assert!(matches!(
        TopicConfig::resolve(&map(&[("nope", "1")]), &b),
        Err(ConfigError::UnknownTopicConfig { .. })
    ));
    match TopicConfig::resolve(&map(&[("segment.ms", "0")]), &b) {
        Err(ConfigError::InvalidValue { key, .. }) => assert_eq!(key, "segment.ms"),
        other => panic!("{other:?}"),
    }
    // Compaction lags are checked against the merged configuration.
    let b = broker(&[("log.cleaner.max.compaction.lag.ms", "100")]);
    assert!(TopicConfig::resolve(&map(&[("min.compaction.lag.ms", "200")]), &b).is_err());
}

#[test]
fn describe_sources_and_synonyms() {
    let b = broker(&[
        ("log.retention.hours", "24"),
        ("log.retention.minutes", "90"),
        ("log.segment.bytes", "2097152"),
    ]);
    let rows = describe_topic_configs(&map(&[("max.message.bytes", "2000")]), &b);
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let expected: Vec<&str> = topic_config_names().collect();
    assert_eq!(names, expected);
    assert!(!names.contains(&"internal.segment.bytes"));
    assert!(names.contains(&"cleanup.policy") && names.contains(&"unclean.leader.election.enable"));
    let row = |n: &str| rows.iter().find(|r| r.name == n).unwrap();

    // Override: DYNAMIC_TOPIC_CONFIG first, then the broker synonym's default.
    let mm = row("max.message.bytes");
    assert_eq!(mm.value.as_deref(), Some("2000"));
    assert_eq!(mm.source, ConfigSource::DynamicTopicConfig);
    assert_eq!(mm.source.code(), 1);
    assert!(!mm.read_only);
    let syn: Vec<(&str, ConfigSource)> = mm
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.source))
        .collect();
    assert_eq!(
        syn,
        vec![
            ("max.message.bytes", ConfigSource::DynamicTopicConfig),
            ("message.max.bytes", ConfigSource::DefaultConfig)
        ]
    );
    assert_eq!(mm.synonyms[1].value.as_deref(), Some("1048588"));

    // Broker synonyms set: STATIC_BROKER_CONFIG, converted value, Kafka's order.
    let rm = row("retention.ms");
    assert_eq!(rm.value.as_deref(), Some("5400000"));
    assert_eq!(rm.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(rm.config_type, ConfigType::Long);
    let syn: Vec<(&str, Option<&str>, ConfigSource)> = rm
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
        .collect();
    assert_eq!(
        syn,
        vec![
            (
                "log.retention.minutes",
                Some("90"),
                ConfigSource::StaticBrokerConfig
            ),
            (
                "log.retention.hours",
                Some("24"),
                ConfigSource::StaticBrokerConfig
            ),
            (
                "log.retention.hours",
                Some("168"),
                ConfigSource::DefaultConfig
            ),
        ]
    );

    let sb = row("segment.bytes");
    assert_eq!(sb.value.as_deref(), Some("2097152"));
    assert_eq!(sb.source, ConfigSource::StaticBrokerConfig);

    // Nothing set: DEFAULT_CONFIG.
    let cp = row("cleanup.policy");
    assert_eq!(cp.value.as_deref(), Some("delete"));
    assert_eq!(cp.source, ConfigSource::DefaultConfig);
    assert_eq!(cp.config_type, ConfigType::List);
    assert_eq!(cp.synonyms.len(), 1);
    assert_eq!(cp.synonyms[0].name, "log.cleanup.policy");

    // No broker synonym at all.
    let rs = row("remote.storage.enable");
    assert_eq!(rs.source, ConfigSource::DefaultConfig);
    assert!(rs.synonyms.is_empty());
    assert_eq!(rs.value.as_deref(), Some("false"));

    let fm = row("flush.ms");
    let names: Vec<&str> = fm.synonyms.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["log.flush.scheduler.interval.ms"]);
}
