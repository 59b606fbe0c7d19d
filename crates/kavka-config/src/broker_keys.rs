//! The broker keys Kavka knows: Kafka 4.x names, types, defaults and ranges (from
//! `KafkaConfig` and the `*Configs` classes), with Kavka's embedded defaults for
//! `node.id`, `listeners` and `log.dirs`.

use crate::def::{key, KeyDef, Validator as V};
use crate::describe::ConfigType as T;

const INT_MAX: &str = "2147483647";
const LONG_MAX: &str = "9223372036854775807";
const PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// Sorted by name so DescribeConfigs output is stable.
pub(crate) static BROKER_KEYS: &[KeyDef] = &[
    key(
        "advertised.listeners",
        T::List,
        None,
        V::None,
        "Listeners published to clients, if different from listeners.",
    ),
    key(
        "alter.config.policy.class.name",
        T::Class,
        None,
        V::None,
        "AlterConfigs policy class (accepted, not used).",
    ),
    key(
        "authorizer.class.name",
        T::String,
        Some(""),
        V::None,
        "Authorizer class; empty disables authorization.",
    ),
    key(
        "auto.create.topics.enable",
        T::Boolean,
        Some("true"),
        V::None,
        "Create topics automatically on metadata requests.",
    ),
    key(
        "auto.leader.rebalance.enable",
        T::Boolean,
        Some("true"),
        V::None,
        "Move leadership back to preferred replicas periodically.",
    ),
    key(
        "background.threads",
        T::Int,
        Some("10"),
        V::AtLeast(1),
        "Threads for background tasks.",
    ),
    key(
        "broker.heartbeat.interval.ms",
        T::Int,
        Some("2000"),
        V::None,
        "Broker heartbeat interval to the controller.",
    ),
    key(
        "broker.id",
        T::Int,
        Some("-1"),
        V::None,
        "Alias of node.id.",
    ),
    key(
        "broker.rack",
        T::String,
        None,
        V::None,
        "Rack of the broker, for rack-aware replica placement.",
    ),
    key(
        "broker.session.timeout.ms",
        T::Int,
        Some("9000"),
        V::None,
        "Time without heartbeat after which a broker is fenced.",
    ),
    key(
        "compression.gzip.level",
        T::Int,
        Some("-1"),
        V::GzipLevel,
        "Default gzip level.",
    ),
    key(
        "compression.lz4.level",
        T::Int,
        Some("9"),
        V::Between(1, 17),
        "Default lz4 level.",
    ),
    key(
        "compression.type",
        T::String,
        Some("producer"),
        V::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        "Default final compression of topics.",
    ),
    key(
        "compression.zstd.level",
        T::Int,
        Some("3"),
        V::Between(-131072, 22),
        "Default zstd level.",
    ),
    key(
        "connection.failed.authentication.delay.ms",
        T::Int,
        Some("100"),
        V::AtLeast(0),
        "Delay before closing a connection that failed authentication.",
    ),
    key(
        "connections.max.idle.ms",
        T::Long,
        Some("600000"),
        V::None,
        "Idle connections are closed after this long.",
    ),
    key(
        "controller.listener.names",
        T::String,
        None,
        V::None,
        "Comma-separated names of the listeners used by the controller.",
    ),
    key(
        "controller.quorum.auto.join.enable",
        T::Boolean,
        Some("false"),
        V::None,
        "Whether a controller that is not a voter of a dynamic quorum asks to become one at start-up.",
    ),
    key(
        "controller.quorum.bootstrap.servers",
        T::List,
        Some(""),
        V::None,
        "host:port endpoints to discover the controller quorum.",
    ),
    key(
        "controller.quorum.election.timeout.ms",
        T::Int,
        Some("1000"),
        V::None,
        "Maximum time without a leader before an election.",
    ),
    key(
        "controller.quorum.fetch.timeout.ms",
        T::Int,
        Some("2000"),
        V::None,
        "Maximum time without a successful fetch from the leader.",
    ),
    key(
        "controller.quorum.voters",
        T::List,
        Some(""),
        V::None,
        "Static voters as id@host:port.",
    ),
    key(
        "create.topic.policy.class.name",
        T::Class,
        None,
        V::None,
        "CreateTopics policy class (accepted, not used).",
    ),
    key(
        "default.replication.factor",
        T::Int,
        Some("1"),
        V::None,
        "Replication factor of automatically created topics.",
    ),
    key(
        "delete.topic.enable",
        T::Boolean,
        Some("true"),
        V::None,
        "Allow topic deletion.",
    ),
    key(
        "fetch.max.bytes",
        T::Int,
        Some("57671680"),
        V::AtLeast(1024),
        "Maximum bytes returned by one Fetch request (caps the client's max_bytes).",
    ),
    key(
        "group.consumer.assignors",
        T::List,
        Some("uniform,range"),
        V::ListOf(&["uniform", "range"]),
        "Server-side assignors of consumer-protocol groups; the first is the default.",
    ),
    key(
        "group.consumer.heartbeat.interval.ms",
        T::Int,
        Some("5000"),
        V::AtLeast(1),
        "Heartbeat interval of consumer-protocol groups.",
    ),
    key(
        "group.consumer.max.heartbeat.interval.ms",
        T::Int,
        Some("15000"),
        V::AtLeast(1),
        "Largest heartbeat interval of consumer-protocol groups.",
    ),
    key(
        "group.consumer.max.session.timeout.ms",
        T::Int,
        Some("60000"),
        V::AtLeast(1),
        "Largest session timeout of consumer-protocol groups.",
    ),
    key(
        "group.consumer.max.size",
        T::Int,
        Some(INT_MAX),
        V::AtLeast(1),
        "Maximum members of a consumer-protocol group.",
    ),
    key(
        "group.consumer.migration.policy",
        T::String,
        Some("bidirectional"),
        V::OneOf(&["disabled", "upgrade", "downgrade", "bidirectional"]),
        "Conversion between classic and consumer groups (Kavka converts empty groups only).",
    ),
    key(
        "group.consumer.min.heartbeat.interval.ms",
        T::Int,
        Some("5000"),
        V::AtLeast(1),
        "Smallest heartbeat interval of consumer-protocol groups.",
    ),
    key(
        "group.consumer.min.session.timeout.ms",
        T::Int,
        Some("45000"),
        V::AtLeast(1),
        "Smallest session timeout of consumer-protocol groups.",
    ),
    key(
        "group.consumer.session.timeout.ms",
        T::Int,
        Some("45000"),
        V::AtLeast(1),
        "Session timeout of consumer-protocol groups.",
    ),
    key(
        "group.coordinator.rebalance.protocols",
        T::List,
        Some("classic,consumer"),
        V::ListOf(&["classic", "consumer", "share", "streams"]),
        "Enabled group rebalance protocols.",
    ),
    key(
        "group.initial.rebalance.delay.ms",
        T::Int,
        Some("3000"),
        V::None,
        "Delay of the first rebalance of a new classic group.",
    ),
    key(
        "group.max.session.timeout.ms",
        T::Int,
        Some("1800000"),
        V::None,
        "Largest session timeout a classic member may ask for.",
    ),
    key(
        "group.max.size",
        T::Int,
        Some(INT_MAX),
        V::AtLeast(1),
        "Maximum members of a classic group.",
    ),
    key(
        "group.min.session.timeout.ms",
        T::Int,
        Some("6000"),
        V::None,
        "Smallest session timeout a classic member may ask for.",
    ),
    key(
        "inter.broker.listener.name",
        T::String,
        None,
        V::None,
        "Listener used between brokers.",
    ),
    key(
        "leader.imbalance.check.interval.seconds",
        T::Long,
        Some("300"),
        V::AtLeast(1),
        "How often leader balance is checked.",
    ),
    key(
        "leader.imbalance.per.broker.percentage",
        T::Int,
        Some("10"),
        V::None,
        "Leader imbalance allowed per broker.",
    ),
    key(
        "listener.security.protocol.map",
        T::String,
        Some("SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"),
        V::None,
        "Listener name to security protocol map.",
    ),
    key(
        "listeners",
        T::List,
        Some("PLAINTEXT://127.0.0.1:9092"),
        V::None,
        "Endpoints to listen on, NAME://host:port.",
    ),
    key(
        "log.cleaner.backoff.ms",
        T::Long,
        Some("15000"),
        V::AtLeast(0),
        "Sleep when there is nothing to clean.",
    ),
    key(
        "log.cleaner.dedupe.buffer.size",
        T::Long,
        Some("134217728"),
        V::None,
        "Memory for compaction deduplication.",
    ),
    key(
        "log.cleaner.delete.retention.ms",
        T::Long,
        Some("86400000"),
        V::AtLeast(0),
        "Default delete.retention.ms.",
    ),
    key(
        "log.cleaner.enable",
        T::Boolean,
        Some("true"),
        V::None,
        "Run the log cleaner.",
    ),
    key(
        "log.cleaner.io.buffer.load.factor",
        T::Double,
        Some("0.9"),
        V::None,
        "Fill ratio of the compaction deduplication map.",
    ),
    key(
        "log.cleaner.io.buffer.size",
        T::Int,
        Some("524288"),
        V::AtLeast(0),
        "I/O buffer memory of the cleaner.",
    ),
    key(
        "log.cleaner.io.max.bytes.per.second",
        T::Double,
        Some("1.7976931348623157E308"),
        V::None,
        "Compaction I/O limit (bytes read plus written per second).",
    ),
    key(
        "log.cleaner.max.compaction.lag.ms",
        T::Long,
        Some(LONG_MAX),
        V::AtLeast(1),
        "Default max.compaction.lag.ms.",
    ),
    key(
        "log.cleaner.min.cleanable.ratio",
        T::Double,
        Some("0.5"),
        V::DoubleBetween(0.0, 1.0),
        "Default min.cleanable.dirty.ratio.",
    ),
    key(
        "log.cleaner.min.compaction.lag.ms",
        T::Long,
        Some("0"),
        V::AtLeast(0),
        "Default min.compaction.lag.ms.",
    ),
    key(
        "log.cleaner.threads",
        T::Int,
        Some("1"),
        V::AtLeast(0),
        "Log cleaner threads.",
    ),
    key(
        "log.cleanup.policy",
        T::List,
        Some("delete"),
        V::ListOf(&["compact", "delete"]),
        "Default cleanup.policy.",
    ),
    key(
        "log.dir",
        T::List,
        Some("/tmp/kafka-logs"),
        V::NonEmptyDistinctList,
        "Log directory, used when log.dirs is not set.",
    ),
    key(
        "log.dir.failure.timeout.ms",
        T::Long,
        Some("30000"),
        V::AtLeast(1),
        "Shut down if a failed log dir cannot be reported for this long.",
    ),
    key(
        "log.dirs",
        T::List,
        Some("./kavka-data"),
        V::NonEmptyDistinctList,
        "Directories where partition data is stored.",
    ),
    key(
        "log.flush.interval.messages",
        T::Long,
        Some(LONG_MAX),
        V::AtLeast(1),
        "Default flush.messages.",
    ),
    key(
        "log.flush.interval.ms",
        T::Long,
        None,
        V::None,
        "Default flush.ms; log.flush.scheduler.interval.ms if not set.",
    ),
    key(
        "log.flush.offset.checkpoint.interval.ms",
        T::Int,
        Some("60000"),
        V::AtLeast(0),
        "How often the recovery point is checkpointed.",
    ),
    key(
        "log.flush.scheduler.interval.ms",
        T::Long,
        Some(LONG_MAX),
        V::None,
        "How often the flusher checks for logs to flush.",
    ),
    key(
        "log.flush.start.offset.checkpoint.interval.ms",
        T::Int,
        Some("60000"),
        V::AtLeast(0),
        "How often log start offsets are checkpointed.",
    ),
    key(
        "log.index.interval.bytes",
        T::Int,
        Some("4096"),
        V::AtLeast(0),
        "Default index.interval.bytes.",
    ),
    key(
        "log.index.size.max.bytes",
        T::Int,
        Some("10485760"),
        V::AtLeast(4),
        "Default segment.index.bytes.",
    ),
    key(
        "log.local.retention.bytes",
        T::Long,
        Some("-2"),
        V::AtLeast(-2),
        "Default local.retention.bytes.",
    ),
    key(
        "log.local.retention.ms",
        T::Long,
        Some("-2"),
        V::AtLeast(-2),
        "Default local.retention.ms.",
    ),
    key(
        "log.message.timestamp.after.max.ms",
        T::Long,
        Some("3600000"),
        V::AtLeast(0),
        "Default message.timestamp.after.max.ms.",
    ),
    key(
        "log.message.timestamp.before.max.ms",
        T::Long,
        Some(LONG_MAX),
        V::AtLeast(0),
        "Default message.timestamp.before.max.ms.",
    ),
    key(
        "log.message.timestamp.type",
        T::String,
        Some("CreateTime"),
        V::OneOf(&["CreateTime", "LogAppendTime"]),
        "Default message.timestamp.type.",
    ),
    key(
        "log.preallocate",
        T::Boolean,
        Some("false"),
        V::None,
        "Default preallocate.",
    ),
    key(
        "log.retention.bytes",
        T::Long,
        Some("-1"),
        V::None,
        "Default retention.bytes.",
    ),
    key(
        "log.retention.check.interval.ms",
        T::Long,
        Some("300000"),
        V::AtLeast(1),
        "How often retention is enforced.",
    ),
    key(
        "log.retention.hours",
        T::Int,
        Some("168"),
        V::None,
        "Default retention in hours, after log.retention.ms and log.retention.minutes.",
    ),
    key(
        "log.retention.minutes",
        T::Int,
        None,
        V::None,
        "Default retention in minutes, after log.retention.ms.",
    ),
    key(
        "log.retention.ms",
        T::Long,
        None,
        V::None,
        "Default retention.ms; -1 keeps data forever.",
    ),
    key(
        "log.roll.hours",
        T::Int,
        Some("168"),
        V::AtLeast(1),
        "Default segment roll time in hours, after log.roll.ms.",
    ),
    key(
        "log.roll.jitter.hours",
        T::Int,
        Some("0"),
        V::AtLeast(0),
        "Default segment jitter in hours, after log.roll.jitter.ms.",
    ),
    key(
        "log.roll.jitter.ms",
        T::Long,
        None,
        V::None,
        "Default segment.jitter.ms.",
    ),
    key("log.roll.ms", T::Long, None, V::None, "Default segment.ms."),
    key(
        "log.segment.bytes",
        T::Int,
        Some("1073741824"),
        V::AtLeast(1024 * 1024),
        "Default segment.bytes.",
    ),
    key(
        "log.segment.delete.delay.ms",
        T::Long,
        Some("60000"),
        V::AtLeast(0),
        "Default file.delete.delay.ms.",
    ),
    key(
        "max.connection.creation.rate",
        T::Int,
        Some(INT_MAX),
        V::AtLeast(0),
        "Maximum new connections per second.",
    ),
    key(
        "max.connections",
        T::Int,
        Some(INT_MAX),
        V::AtLeast(0),
        "Maximum open connections.",
    ),
    key(
        "max.connections.per.ip",
        T::Int,
        Some(INT_MAX),
        V::AtLeast(0),
        "Maximum open connections from one address.",
    ),
    key(
        "max.connections.per.ip.overrides",
        T::String,
        Some(""),
        V::None,
        "Per-host overrides of max.connections.per.ip, host:count,...",
    ),
    key(
        "message.max.bytes",
        T::Int,
        Some("1048588"),
        V::AtLeast(0),
        "Default max.message.bytes.",
    ),
    key(
        "metadata.log.dir",
        T::String,
        None,
        V::None,
        "Directory of the metadata log; the first log dir if not set.",
    ),
    key(
        "min.insync.replicas",
        T::Int,
        Some("1"),
        V::AtLeast(1),
        "Default min.insync.replicas.",
    ),
    key(
        "node.id",
        T::Int,
        Some("0"),
        V::None,
        "Id of this node in the cluster.",
    ),
    key(
        "num.io.threads",
        T::Int,
        Some("8"),
        V::AtLeast(1),
        "Request handler threads (accepted, unused).",
    ),
    key(
        "num.network.threads",
        T::Int,
        Some("3"),
        V::AtLeast(1),
        "Network threads (accepted, unused).",
    ),
    key(
        "num.partitions",
        T::Int,
        Some("1"),
        V::AtLeast(1),
        "Default partition count of new topics.",
    ),
    key(
        "num.recovery.threads.per.data.dir",
        T::Int,
        Some("2"),
        V::AtLeast(1),
        "Threads per data dir for recovery and shutdown flush.",
    ),
    key(
        "num.replica.fetchers",
        T::Int,
        Some("1"),
        V::None,
        "Fetcher threads per source broker.",
    ),
    key(
        "offset.metadata.max.bytes",
        T::Int,
        Some("4096"),
        V::None,
        "Maximum size of committed offset metadata.",
    ),
    key(
        "offsets.commit.timeout.ms",
        T::Int,
        Some("5000"),
        V::AtLeast(1),
        "Offset commit timeout.",
    ),
    key(
        "offsets.load.buffer.size",
        T::Int,
        Some("5242880"),
        V::AtLeast(1),
        "Read size when loading offsets.",
    ),
    key(
        "offsets.retention.check.interval.ms",
        T::Long,
        Some("600000"),
        V::AtLeast(1),
        "How often stale offsets are checked.",
    ),
    key(
        "offsets.retention.minutes",
        T::Int,
        Some("10080"),
        V::AtLeast(1),
        "How long committed offsets of empty groups are kept.",
    ),
    key(
        "offsets.topic.num.partitions",
        T::Int,
        Some("50"),
        V::AtLeast(1),
        "Partitions of __consumer_offsets.",
    ),
    key(
        "offsets.topic.replication.factor",
        T::Short,
        Some("3"),
        V::AtLeast(1),
        "Replication factor of __consumer_offsets.",
    ),
    key(
        "offsets.topic.segment.bytes",
        T::Int,
        Some("104857600"),
        V::AtLeast(1),
        "Segment size of __consumer_offsets.",
    ),
    key(
        "process.roles",
        T::List,
        Some(""),
        V::ListOf(&["broker", "controller"]),
        "Roles of this node: broker, controller or both.",
    ),
    key(
        "producer.id.expiration.ms",
        T::Int,
        Some("86400000"),
        V::AtLeast(1),
        "Idle producer ids expire after this long.",
    ),
    key(
        "queued.max.requests",
        T::Int,
        Some("500"),
        V::AtLeast(1),
        "Queued requests before network threads stop reading.",
    ),
    key(
        "replica.fetch.backoff.ms",
        T::Int,
        Some("1000"),
        V::AtLeast(0),
        "Sleep after a fetch error.",
    ),
    key(
        "replica.fetch.max.bytes",
        T::Int,
        Some("1048576"),
        V::AtLeast(0),
        "Bytes fetched per partition by followers.",
    ),
    key(
        "replica.fetch.min.bytes",
        T::Int,
        Some("1"),
        V::None,
        "Minimum bytes of a follower fetch response.",
    ),
    key(
        "replica.fetch.response.max.bytes",
        T::Int,
        Some("10485760"),
        V::AtLeast(0),
        "Maximum bytes of a follower fetch response.",
    ),
    key(
        "replica.fetch.wait.max.ms",
        T::Int,
        Some("500"),
        V::None,
        "Maximum wait of a follower fetch.",
    ),
    key(
        "replica.high.watermark.checkpoint.interval.ms",
        T::Long,
        Some("5000"),
        V::None,
        "How often high watermarks are checkpointed.",
    ),
    key(
        "replica.lag.time.max.ms",
        T::Long,
        Some("30000"),
        V::None,
        "Followers behind for this long leave the ISR.",
    ),
    key(
        "replica.socket.receive.buffer.bytes",
        T::Int,
        Some("65536"),
        V::None,
        "Socket receive buffer of replica fetchers.",
    ),
    key(
        "replica.socket.timeout.ms",
        T::Int,
        Some("30000"),
        V::None,
        "Socket timeout of replica fetchers.",
    ),
    key(
        "sasl.enabled.mechanisms",
        T::List,
        Some("GSSAPI"),
        V::None,
        "SASL mechanisms enabled on the server.",
    ),
    key(
        "sasl.mechanism.controller.protocol",
        T::String,
        Some("GSSAPI"),
        V::None,
        "SASL mechanism used to talk to controllers.",
    ),
    key(
        "sasl.mechanism.inter.broker.protocol",
        T::String,
        Some("GSSAPI"),
        V::None,
        "SASL mechanism used between brokers.",
    ),
    key(
        "security.inter.broker.protocol",
        T::String,
        Some("PLAINTEXT"),
        V::OneOf(PROTOCOLS),
        "Protocol between brokers, if inter.broker.listener.name is not set.",
    ),
    key(
        "socket.listen.backlog.size",
        T::Int,
        Some("50"),
        V::AtLeast(1),
        "Pending connection backlog.",
    ),
    key(
        "socket.receive.buffer.bytes",
        T::Int,
        Some("102400"),
        V::None,
        "SO_RCVBUF of server sockets; -1 for the OS default.",
    ),
    key(
        "socket.request.max.bytes",
        T::Int,
        Some("104857600"),
        V::AtLeast(1),
        "Largest request accepted.",
    ),
    key(
        "socket.send.buffer.bytes",
        T::Int,
        Some("102400"),
        V::None,
        "SO_SNDBUF of server sockets; -1 for the OS default.",
    ),
    key(
        "ssl.client.auth",
        T::String,
        Some("none"),
        V::OneOf(&["required", "requested", "none"]),
        "Whether TLS client certificates are required.",
    ),
    key(
        "ssl.enabled.protocols",
        T::List,
        Some("TLSv1.2,TLSv1.3"),
        V::None,
        "TLS protocol versions enabled.",
    ),
    key(
        "ssl.endpoint.identification.algorithm",
        T::String,
        Some("https"),
        V::None,
        "Server host name verification algorithm.",
    ),
    key(
        "ssl.key.password",
        T::Password,
        None,
        V::None,
        "Password of the private key.",
    ),
    key(
        "ssl.keystore.certificate.chain",
        T::Password,
        None,
        V::None,
        "PEM certificate chain.",
    ),
    key(
        "ssl.keystore.key",
        T::Password,
        None,
        V::None,
        "PEM private key.",
    ),
    key(
        "ssl.keystore.location",
        T::String,
        None,
        V::None,
        "Key store file.",
    ),
    key(
        "ssl.keystore.password",
        T::Password,
        None,
        V::None,
        "Key store password.",
    ),
    key(
        "ssl.keystore.type",
        T::String,
        Some("JKS"),
        V::None,
        "Key store format: JKS, PKCS12 or PEM.",
    ),
    key(
        "ssl.principal.mapping.rules",
        T::String,
        Some("DEFAULT"),
        V::None,
        "Rules mapping certificate DNs to principal names.",
    ),
    key(
        "ssl.protocol",
        T::String,
        Some("TLSv1.3"),
        V::None,
        "TLS protocol.",
    ),
    key(
        "ssl.truststore.certificates",
        T::Password,
        None,
        V::None,
        "PEM trusted certificates.",
    ),
    key(
        "ssl.truststore.location",
        T::String,
        None,
        V::None,
        "Trust store file.",
    ),
    key(
        "ssl.truststore.password",
        T::Password,
        None,
        V::None,
        "Trust store password.",
    ),
    key(
        "ssl.truststore.type",
        T::String,
        Some("JKS"),
        V::None,
        "Trust store format: JKS, PKCS12 or PEM.",
    ),
    key(
        "transaction.max.timeout.ms",
        T::Int,
        Some("900000"),
        V::AtLeast(1),
        "Largest transaction timeout a producer may ask for.",
    ),
    key(
        "transaction.state.log.min.isr",
        T::Int,
        Some("2"),
        V::AtLeast(1),
        "min.insync.replicas of __transaction_state.",
    ),
    key(
        "transaction.state.log.num.partitions",
        T::Int,
        Some("50"),
        V::AtLeast(1),
        "Partitions of __transaction_state.",
    ),
    key(
        "transaction.state.log.replication.factor",
        T::Short,
        Some("3"),
        V::AtLeast(1),
        "Replication factor of __transaction_state.",
    ),
    key(
        "transaction.state.log.segment.bytes",
        T::Int,
        Some("104857600"),
        V::AtLeast(1),
        "Segment size of __transaction_state.",
    ),
    key(
        "transactional.id.expiration.ms",
        T::Int,
        Some("604800000"),
        V::AtLeast(1),
        "Idle transactional ids expire after this long.",
    ),
    key(
        "unclean.leader.election.enable",
        T::Boolean,
        Some("false"),
        V::None,
        "Default unclean.leader.election.enable.",
    ),
];

pub(crate) fn broker_key(name: &str) -> Option<&'static KeyDef> {
    BROKER_KEYS.iter().find(|k| k.name == name)
}

/// Keys kept as raw strings for the security layers (besides those typed above): any
/// `ssl.`, `sasl.` or per-listener `listener.name.` key and a few authorizer keys.
pub(crate) fn is_raw_security_key(name: &str) -> bool {
    const PREFIXES: &[&str] = &["ssl.", "sasl.", "listener.name."];
    const KEYS: &[&str] = &[
        "super.users",
        "allow.everyone.if.no.acl.found",
        "principal.builder.class",
        "security.providers",
        "connections.max.reauth.ms",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || KEYS.contains(&name)
}

/// Keys that are synonyms of one another at broker level, highest priority first
/// (Kafka's `DynamicBrokerConfig.brokerConfigSynonyms`).
pub(crate) fn broker_synonym_chain(name: &str) -> &'static [&'static str] {
    const CHAINS: &[&[&str]] = &[
        &["log.roll.ms", "log.roll.hours"],
        &["log.roll.jitter.ms", "log.roll.jitter.hours"],
        &["log.flush.interval.ms", "log.flush.scheduler.interval.ms"],
        &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
    ];
    CHAINS
        .iter()
        .copied()
        .find(|c| c.contains(&name))
        .unwrap_or(&[])
}

/// Kafka 4.x broker keys that Kavka accepts but does not model (metrics, quotas,
/// tiered storage, share groups, tuning knobs with no Kavka equivalent). They are not
/// "unknown": an existing `server.properties` that sets them is valid, their values are
/// simply not used. Exact names only, so a typo still shows up as unknown.
pub(crate) static IGNORED_KAFKA_KEYS: &[&str] = &[
    "alter.log.dirs.replication.quota.window.num",
    "alter.log.dirs.replication.quota.window.size.seconds",
    "client.quota.callback.class",
    "config.providers",
    "controller.performance.always.log.threshold.ms",
    "controller.performance.sample.period.ms",
    "controller.quorum.append.linger.ms",
    "controller.quorum.election.backoff.max.ms",
    "controller.quorum.request.timeout.ms",
    "controller.quorum.retry.backoff.ms",
    "controller.socket.timeout.ms",
    "cordoned.log.dirs",
    "delegation.token.expiry.check.interval.ms",
    "delegation.token.expiry.time.ms",
    "delegation.token.max.lifetime.ms",
    "delegation.token.secret.key",
    "delete.records.purgatory.purge.interval.requests",
    "early.start.listeners",
    "eligible.leader.replicas.enable",
    "fetch.purgatory.purge.interval.requests",
    "follower.fetch.last.tiered.offset.enable",
    "group.coordinator.append.linger.ms",
    "group.coordinator.threads",
    "group.share.delivery.count.limit",
    "group.share.enable",
    "group.share.heartbeat.interval.ms",
    "group.share.max.groups",
    "group.share.max.size",
    "group.share.record.lock.duration.ms",
    "group.share.session.timeout.ms",
    "initial.broker.registration.timeout.ms",
    "kafka.metrics.polling.interval.secs",
    "kafka.metrics.reporters",
    "log.initial.task.delay.ms",
    "max.incremental.fetch.session.cache.slots",
    "max.request.partition.size.limit",
    "metadata.log.max.record.bytes.between.snapshots",
    "metadata.log.max.snapshot.interval.ms",
    "metadata.log.segment.bytes",
    "metadata.log.segment.ms",
    "metadata.max.idle.interval.ms",
    "metadata.max.retention.bytes",
    "metadata.max.retention.ms",
    "metric.reporters",
    "metrics.num.samples",
    "metrics.recording.level",
    "metrics.sample.window.ms",
    "num.replica.alter.log.dirs.threads",
    "offsets.topic.compression.codec",
    "password.encoder.cipher.algorithm",
    "password.encoder.iterations",
    "password.encoder.key.length",
    "password.encoder.keyfactory.algorithm",
    "password.encoder.old.secret",
    "password.encoder.secret",
    "producer.id.expiration.check.interval.ms",
    "producer.purgatory.purge.interval.requests",
    "quota.window.num",
    "quota.window.size.seconds",
    "remote.log.index.file.cache.total.size.bytes",
    "remote.log.manager.copier.thread.pool.size",
    "remote.log.manager.expiration.thread.pool.size",
    "remote.log.manager.task.interval.ms",
    "remote.log.manager.thread.pool.size",
    "remote.log.metadata.manager.class.name",
    "remote.log.metadata.manager.class.path",
    "remote.log.metadata.manager.impl.prefix",
    "remote.log.metadata.manager.listener.name",
    "remote.log.reader.max.pending.tasks",
    "remote.log.reader.threads",
    "remote.log.storage.manager.class.name",
    "remote.log.storage.manager.class.path",
    "remote.log.storage.manager.impl.prefix",
    "remote.log.storage.system.enable",
    "replica.selector.class",
    "replication.quota.window.num",
    "replication.quota.window.size.seconds",
    "server.max.startup.time.ms",
    "share.coordinator.state.topic.min.isr",
    "share.coordinator.state.topic.num.partitions",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.segment.bytes",
    "socket.connection.setup.timeout.max.ms",
    "socket.connection.setup.timeout.ms",
    "telemetry.max.bytes",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transaction.partition.verification.enable",
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "transaction.state.log.load.buffer.size",
    "transaction.two.phase.commit.enable",
    "unstable.api.versions.enable",
    "unstable.feature.versions.enable",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::TOPIC_KEYS;

    #[test]
    fn tables_are_sorted_unique_and_defaults_valid() {
        for w in BROKER_KEYS.windows(2) {
            assert!(w[0].name < w[1].name, "{} !< {}", w[0].name, w[1].name);
        }
        for k in BROKER_KEYS {
            if let Some(d) = k.default {
                k.parse(d)
                    .unwrap_or_else(|e| panic!("default of {} invalid: {e}", k.name));
            }
        }
        let public: Vec<_> = TOPIC_KEYS.iter().filter(|k| !k.internal).collect();
        for w in public.windows(2) {
            assert!(w[0].def.name < w[1].def.name);
        }
        for tk in TOPIC_KEYS {
            if let Some(d) = tk.def.default {
                tk.def.parse(d).unwrap_or_else(|e| panic!("{e}"));
            }
            for (syn, _) in tk.synonyms {
                let b = broker_key(syn).unwrap_or_else(|| panic!("synonym {syn} undefined"));
                // A broker synonym shares the topic key's type (modulo unit conversion).
                if tk.synonyms.len() == 1 {
                    assert_eq!(b.ty, tk.def.ty, "{syn}");
                }
            }
        }
    }

    #[test]
    fn ignored_keys_are_sorted_and_disjoint_from_modelled_keys() {
        for w in IGNORED_KAFKA_KEYS.windows(2) {
            assert!(w[0] < w[1], "{} !< {}", w[0], w[1]);
        }
        for k in IGNORED_KAFKA_KEYS {
            assert!(broker_key(k).is_none(), "{k} is modelled");
            assert!(!is_raw_security_key(k), "{k} is a security key");
        }
    }

    #[test]
    fn topic_defaults_match_broker_synonym_defaults() {
        // Kafka's topic defaults equal the converted defaults of their broker synonyms.
        let cfg = crate::BrokerConfig::embedded_default().expect("defaults load");
        for tk in TOPIC_KEYS.iter().filter(|k| !k.synonyms.is_empty()) {
            assert_eq!(
                cfg.topic_defaults().get(tk.def.name).map(String::as_str),
                tk.def.default,
                "{}",
                tk.def.name
            );
        }
    }
}
