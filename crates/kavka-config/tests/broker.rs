//! Broker configuration through the public API.

use kavka_config::{
    parse_override, parse_properties, BrokerConfig, CompressionType, ConfigError, ConfigSource,
    ConfigType, LoadedConfig, ProcessRole, SecurityProtocol, TimestampType,
};

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(items: &[(&str, &str)]) -> Result<LoadedConfig, ConfigError> {
    BrokerConfig::from_pairs(&pairs(items))
}

fn cfg(items: &[(&str, &str)]) -> BrokerConfig {
    load(items).expect("valid config").config
}

/// Asserts the error is an InvalidValue naming `key`, and that its message names it too.
fn assert_invalid(items: &[(&str, &str)], key: &str) {
    match load(items) {
        Err(e @ ConfigError::InvalidValue { .. }) => {
            let msg = e.to_string();
            if let ConfigError::InvalidValue { key: k, .. } = &e {
                assert_eq!(k, key, "{msg}");
            }
            assert!(msg.contains(key), "{msg}");
        }
        other => panic!("expected InvalidValue for {key}, got {other:?}"),
    }
}

#[test]
fn embedded_defaults() {
    let loaded = load(&[]).unwrap();
    assert!(loaded.unknown_keys.is_empty());
    let c = loaded.config;
    assert_eq!(c.node_id, 0);
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://127.0.0.1:9092");
    assert_eq!(
        c.listeners[0].security_protocol,
        SecurityProtocol::Plaintext
    );
    assert_eq!(c.advertised_listeners, c.listeners);
    assert_eq!(c.log_dirs, vec!["./kavka-data".to_string()]);
    assert_eq!(c.num_partitions, 1);
    assert!(c.auto_create_topics_enable);
    assert!(c.process_roles.is_empty());
    assert_eq!(c.inter_broker_listener_name, "PLAINTEXT");
}

#[test]
fn kafka_defaults() {
    let c = cfg(&[]);
    assert_eq!(c.default_replication_factor, 1);
    assert_eq!(c.min_insync_replicas, 1);
    assert!(c.delete_topic_enable);
    assert_eq!(c.log_segment_bytes, 1_073_741_824);
    assert_eq!(c.log_roll_ms, 168 * 3_600_000);
    assert_eq!(c.log_roll_jitter_ms, 0);
    assert_eq!(c.log_index_interval_bytes, 4096);
    assert_eq!(c.log_index_size_max_bytes, 10 * 1024 * 1024);
    assert_eq!(c.log_flush_interval_messages, i64::MAX);
    assert_eq!(c.log_flush_interval_ms, i64::MAX);
    assert_eq!(c.log_flush_scheduler_interval_ms, i64::MAX);
    assert_eq!(c.message_max_bytes, 1_048_588);
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
    assert_eq!(c.log_message_timestamp_type, TimestampType::CreateTime);
    assert_eq!(c.log_message_timestamp_after_max_ms, 3_600_000);
    assert_eq!(c.log_message_timestamp_before_max_ms, i64::MAX);
    assert_eq!(c.log_retention_ms, 7 * 24 * 3_600_000);
    assert_eq!(c.log_retention_bytes, -1);
    assert_eq!(c.log_retention_check_interval_ms, 300_000);
    assert!(c.log_cleanup_policy.delete && !c.log_cleanup_policy.compact);
    assert_eq!(c.num_io_threads, 8);
    assert_eq!(c.num_network_threads, 3);
    assert_eq!(c.offsets_topic_num_partitions, 50);
    assert_eq!(c.offsets_topic_replication_factor, 3);
    assert_eq!(c.group_initial_rebalance_delay_ms, 3000);
    assert_eq!(c.group_min_session_timeout_ms, 6000);
    assert_eq!(c.group_max_session_timeout_ms, 1_800_000);
    assert_eq!(c.offsets_retention_minutes, 10_080);
    assert_eq!(c.broker_rack, None);
    assert_eq!(c.connections_max_idle_ms, 600_000);
    assert_eq!(c.max_connections, i32::MAX);
    assert_eq!(c.max_connections_per_ip, i32::MAX);
    assert!(!c.unclean_leader_election_enable);
    assert_eq!(c.compression_type, CompressionType::Producer);
    assert_eq!(c.transaction_state_log_replication_factor, 3);
    assert_eq!(c.transaction_state_log_min_isr, 2);
    assert_eq!(c.replica_lag_time_max_ms, 30_000);
    assert_eq!(c.listener_security_protocol_map.len(), 4);
    assert_eq!(
        c.listener_security_protocol_map.get("SASL_SSL"),
        Some(&SecurityProtocol::SaslSsl)
    );
}

#[test]
fn later_pairs_override_earlier() {
    let c = cfg(&[("num.partitions", "3"), ("num.partitions", "5")]);
    assert_eq!(c.num_partitions, 5);
}

#[test]
fn broker_id_is_an_alias_of_node_id() {
    assert_eq!(cfg(&[("broker.id", "7")]).node_id, 7);
    assert_eq!(cfg(&[("node.id", "4"), ("broker.id", "4")]).node_id, 4);
    assert_invalid(&[("node.id", "4"), ("broker.id", "5")], "broker.id");
    assert_invalid(&[("node.id", "-1")], "node.id");
    assert_invalid(&[("node.id", "x")], "node.id");
}

#[test]
fn log_dirs_falls_back_to_log_dir() {
    assert_eq!(cfg(&[("log.dir", "/a")]).log_dirs, vec!["/a"]);
    assert_eq!(
        cfg(&[("log.dir", "/a"), ("log.dirs", "/b, /c")]).log_dirs,
        vec!["/b", "/c"]
    );
    assert_invalid(&[("log.dirs", "/b,/b")], "log.dirs");
    assert_invalid(&[("log.dirs", "")], "log.dirs");
}

#[test]
fn retention_ms_minutes_hours_precedence() {
    assert_eq!(
        cfg(&[("log.retention.hours", "1")]).log_retention_ms,
        3_600_000
    );
    assert_eq!(
        cfg(&[("log.retention.hours", "1"), ("log.retention.minutes", "2")]).log_retention_ms,
        120_000
    );
    assert_eq!(
        cfg(&[
            ("log.retention.hours", "1"),
            ("log.retention.minutes", "2"),
            ("log.retention.ms", "5")
        ])
        .log_retention_ms,
        5
    );
    assert_eq!(cfg(&[("log.retention.ms", "-1")]).log_retention_ms, -1);
    assert_eq!(cfg(&[("log.retention.hours", "-3")]).log_retention_ms, -1);
    assert_invalid(&[("log.retention.ms", "0")], "log.retention.ms");
    assert_invalid(&[("log.retention.minutes", "0")], "log.retention.minutes");
}

#[test]
fn roll_and_flush_fallbacks() {
    assert_eq!(cfg(&[("log.roll.hours", "2")]).log_roll_ms, 7_200_000);
    assert_eq!(
        cfg(&[("log.roll.hours", "2"), ("log.roll.ms", "1000")]).log_roll_ms,
        1000
    );
    assert_invalid(&[("log.roll.ms", "0")], "log.roll.ms");
    assert_invalid(&[("log.roll.hours", "0")], "log.roll.hours");
    let c = cfg(&[("log.flush.scheduler.interval.ms", "2000")]);
    assert_eq!(c.log_flush_interval_ms, 2000);
    let c = cfg(&[
        ("log.flush.scheduler.interval.ms", "2000"),
        ("log.flush.interval.ms", "300"),
    ]);
    assert_eq!(c.log_flush_interval_ms, 300);
}

#[test]
fn ranges_as_kafka() {
    assert_invalid(&[("num.partitions", "0")], "num.partitions");
    assert_invalid(&[("log.segment.bytes", "1000")], "log.segment.bytes");
    assert_eq!(
        cfg(&[("log.segment.bytes", "1048576")]).log_segment_bytes,
        1_048_576
    );
    assert_invalid(&[("message.max.bytes", "-1")], "message.max.bytes");
    assert_invalid(&[("min.insync.replicas", "0")], "min.insync.replicas");
    assert_invalid(
        &[("offsets.topic.replication.factor", "0")],
        "offsets.topic.replication.factor",
    );
    assert_invalid(
        &[("offsets.topic.replication.factor", "40000")],
        "offsets.topic.replication.factor",
    );
    assert_invalid(
        &[("auto.create.topics.enable", "yes")],
        "auto.create.topics.enable",
    );
    assert_invalid(
        &[("log.cleanup.policy", "delete,shred")],
        "log.cleanup.policy",
    );
    assert_invalid(
        &[("log.message.timestamp.type", "createtime")],
        "log.message.timestamp.type",
    );
    assert_invalid(&[("compression.type", "brotli")], "compression.type");
    assert_invalid(
        &[("log.cleaner.min.cleanable.ratio", "1.5")],
        "log.cleaner.min.cleanable.ratio",
    );
    assert_invalid(
        &[
            ("group.min.session.timeout.ms", "10"),
            ("group.max.session.timeout.ms", "5"),
        ],
        "group.max.session.timeout.ms",
    );
    let c = cfg(&[
        ("log.cleanup.policy", "compact, delete"),
        ("auto.create.topics.enable", " FALSE "),
    ]);
    assert!(c.log_cleanup_policy.compact && c.log_cleanup_policy.delete);
    assert!(!c.auto_create_topics_enable);
}

#[test]
fn listeners_and_protocol_map() {
    let c = cfg(&[
        ("listeners", "PLAINTEXT://:9092,secure://[::1]:9093"),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,SECURE:SASL_SSL",
        ),
        ("advertised.listeners", "PLAINTEXT://broker1:9092"),
    ]);
    assert_eq!(c.listeners[0].host, "");
    assert_eq!(c.listeners[1].name, "SECURE");
    assert_eq!(c.listeners[1].host, "::1");
    assert_eq!(c.listeners[1].security_protocol, SecurityProtocol::SaslSsl);
    assert_eq!(c.advertised_listeners.len(), 1);
    assert_eq!(c.advertised_listeners[0].host_port(), "broker1:9092");

    assert_invalid(&[("listeners", "PLAINTEXT://:99999")], "listeners");
    assert_invalid(&[("listeners", " ")], "listeners");
    assert_invalid(&[("listeners", "PLAINTEXT:9092")], "listeners");
    assert_invalid(&[("listeners", "FOO://:9092")], "listeners");
    assert_invalid(
        &[("listeners", "PLAINTEXT://:9092,SSL://:9092")],
        "listeners",
    );
    assert_invalid(
        &[("listeners", "PLAINTEXT://:9092,PLAINTEXT://:9093")],
        "listeners",
    );
    assert_invalid(
        &[("advertised.listeners", "PLAINTEXT://0.0.0.0:9092")],
        "advertised.listeners",
    );
    assert_invalid(
        &[("advertised.listeners", "SSL://h:9093")],
        "advertised.listeners",
    );
    assert_invalid(
        &[("listener.security.protocol.map", "A:NOPE")],
        "listener.security.protocol.map",
    );
    // Port 0 may repeat: each is an ephemeral port.
    cfg(&[("listeners", "PLAINTEXT://:0,SSL://:0")]);
}

#[test]
fn inter_broker_listener() {
    let c = cfg(&[
        ("listeners", "INTERNAL://:9094,EXTERNAL://:9092"),
        (
            "listener.security.protocol.map",
            "INTERNAL:PLAINTEXT,EXTERNAL:SSL",
        ),
        ("inter.broker.listener.name", "internal"),
    ]);
    assert_eq!(c.inter_broker_listener_name, "INTERNAL");
    assert_invalid(
        &[("inter.broker.listener.name", "NOPE")],
        "inter.broker.listener.name",
    );
    assert_invalid(
        &[
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("security.inter.broker.protocol", "PLAINTEXT"),
        ],
        "inter.broker.listener.name",
    );
}

#[test]
fn kraft_combined_mode() {
    let c = cfg(&[
        ("process.roles", "broker,controller"),
        ("node.id", "1"),
        ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
        ("controller.listener.names", "CONTROLLER"),
        ("controller.quorum.voters", "1@localhost:9093,2@h2:9093"),
    ]);
    assert!(c.is_broker() && c.is_controller());
    assert_eq!(
        c.process_roles,
        vec![ProcessRole::Broker, ProcessRole::Controller]
    );
    // Default map + controller listener: mapped to PLAINTEXT, as Kafka does.
    assert_eq!(
        c.listener_security_protocol_map.get("CONTROLLER"),
        Some(&SecurityProtocol::Plaintext)
    );
    // Controller listeners are not advertised to clients.
    assert_eq!(c.advertised_listeners.len(), 1);
    assert_eq!(c.advertised_listeners[0].name, "PLAINTEXT");
    assert_eq!(c.controller_listeners().len(), 1);
    assert_eq!(c.controller_quorum_voters.len(), 2);
    assert_eq!(c.controller_quorum_voters[1].host, "h2");

    assert_invalid(&[("process.roles", "broker,observer")], "process.roles");
    assert_invalid(&[("process.roles", "broker,broker")], "process.roles");
    assert_invalid(
        &[("process.roles", "controller")],
        "controller.listener.names",
    );
    assert_invalid(
        &[
            ("process.roles", "controller"),
            ("controller.listener.names", "CONTROLLER"),
        ],
        "controller.listener.names",
    );
    assert_invalid(
        &[("controller.quorum.voters", "1@h:1,1@h:2")],
        "controller.quorum.voters",
    );
    assert_invalid(
        &[("controller.quorum.voters", "h:1")],
        "controller.quorum.voters",
    );
}

#[test]
fn unknown_and_security_keys() {
    let loaded = load(&[
        ("zookeeper.connect", "localhost:2181"),
        ("zookeeper.connect", "other:2181"),
        ("ssl.keystore.location", "/ks.p12"),
        ("ssl.keystore.password", "secret"),
        ("sasl.enabled.mechanisms", "SCRAM-SHA-512,PLAIN"),
        ("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config", "x"),
        ("super.users", "User:admin; User:ops"),
        ("allow.everyone.if.no.acl.found", "true"),
        ("made.up", "1"),
        ("metrics.num.samples", "2"),
        ("metrics.num.sample", "2"),
    ])
    .unwrap();
    assert_eq!(
        loaded.unknown_keys,
        vec!["zookeeper.connect", "made.up", "metrics.num.sample"]
    );
    assert_eq!(loaded.ignored_keys, vec!["metrics.num.samples"]);
    let c = loaded.config;
    assert_eq!(c.super_users, vec!["User:admin", "User:ops"]);
    assert_eq!(c.security.get("ssl.keystore.password"), Some("secret"));
    assert!(!format!("{c:?}").contains("secret"));
    assert!(c
        .security
        .contains_key("listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"));
    assert_eq!(
        c.security.get("allow.everyone.if.no.acl.found"),
        Some("true")
    );
}

#[test]
fn error_message_names_key_and_value() {
    let err = load(&[("num.partitions", "many")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid value \"many\" for configuration num.partitions: expected a 32-bit integer"
    );
}

#[test]
fn override_arguments() {
    assert_eq!(
        parse_override("listeners=PLAINTEXT://:1=2").unwrap(),
        ("listeners".to_string(), "PLAINTEXT://:1=2".to_string())
    );
    assert!(matches!(
        parse_override("novalue"),
        Err(ConfigError::MalformedOverride { .. })
    ));
    assert!(parse_override("=v").is_err());
}

#[test]
fn load_file_then_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.properties");
    std::fs::write(
        &path,
        "# Kafka style file\nnode.id=3\nnum.partitions = 4\nlog.dirs=/data/a,\\\n    /data/b\n",
    )
    .unwrap();
    let overrides = vec![parse_override("num.partitions=6").unwrap()];
    let c = BrokerConfig::load(Some(&path), &overrides).unwrap().config;
    assert_eq!(c.node_id, 3);
    assert_eq!(c.num_partitions, 6);
    assert_eq!(c.log_dirs, vec!["/data/a", "/data/b"]);
    let missing = BrokerConfig::load(Some(&dir.path().join("nope")), &[]).unwrap_err();
    assert!(matches!(missing, ConfigError::Io { .. }));
}

#[test]
fn kafka_sample_server_properties_loads() {
    // The shape of Kafka 4's config/server.properties.
    let text = r#"
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
"#;
    let loaded = BrokerConfig::from_pairs(&parse_properties(text).unwrap()).unwrap();
    assert!(loaded.unknown_keys.is_empty(), "{:?}", loaded.unknown_keys);
    assert_eq!(
        loaded.ignored_keys,
        vec![
            "share.coordinator.state.topic.replication.factor",
            "share.coordinator.state.topic.min.isr"
        ]
    );
    let c = loaded.config;
    assert_eq!(c.offsets_topic_replication_factor, 1);
    assert_eq!(c.advertised_listeners.len(), 1);
    assert_eq!(c.advertised_listeners[0].host_port(), "localhost:9092");
    assert_eq!(
        c.controller_quorum_bootstrap_servers,
        vec!["localhost:9093"]
    );
}

#[test]
fn describe_broker() {
    let c = cfg(&[
        ("num.partitions", "3"),
        ("log.retention.hours", "24"),
        ("ssl.keystore.password", "secret"),
        ("auto.create.topics.enable", "TRUE"),
    ]);
    let rows = c.describe();
    let row = |n: &str| {
        rows.iter()
            .find(|r| r.name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };

    let np = row("num.partitions");
    assert_eq!(np.value.as_deref(), Some("3"));
    assert_eq!(np.source, ConfigSource::StaticBrokerConfig);
    assert_eq!(np.source.code(), 4);
    assert_eq!(np.config_type, ConfigType::Int);
    assert_eq!(np.config_type.code(), 3);
    assert!(np.read_only);
    assert_eq!(np.synonyms.len(), 2);
    assert_eq!(np.synonyms[0].source, ConfigSource::StaticBrokerConfig);
    assert_eq!(np.synonyms[1].source, ConfigSource::DefaultConfig);
    assert_eq!(np.synonyms[1].value.as_deref(), Some("1"));

    assert_eq!(
        row("auto.create.topics.enable").value.as_deref(),
        Some("true")
    );

    let dr = row("default.replication.factor");
    assert_eq!(dr.source, ConfigSource::DefaultConfig);
    assert_eq!(dr.source.code(), 5);
    assert_eq!(dr.value.as_deref(), Some("1"));

    let pw = row("ssl.keystore.password");
    assert!(pw.sensitive);
    assert_eq!(pw.value, None);
    assert_eq!(pw.config_type.code(), 9);
    assert_eq!(pw.source, ConfigSource::StaticBrokerConfig);
    assert!(pw.synonyms.iter().all(|s| s.value.is_none()));

    let hours = row("log.retention.hours");
    assert_eq!(hours.value.as_deref(), Some("24"));
    assert_eq!(hours.source, ConfigSource::StaticBrokerConfig);
    let minutes = row("log.retention.minutes");
    assert_eq!(minutes.value, None);
    // As Kafka: synonyms of higher priority than the key itself are dropped.
    assert_eq!(minutes.source, ConfigSource::DefaultConfig);
    assert!(minutes.synonyms.is_empty());

    assert_eq!(row("log.cleanup.policy").config_type, ConfigType::List);
    assert_eq!(
        row("log.cleaner.min.cleanable.ratio").value.as_deref(),
        Some("0.5")
    );
    assert!(rows.iter().all(|r| r.documentation.is_some()));
}
