//! The shapes DescribeConfigs answers with, independent of the wire crate.

/// Where a configuration value comes from, with Kafka's DescribeConfigs `ConfigSource` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigSource {
    /// Source unknown (code 0).
    Unknown,
    /// A topic-level override (code 1).
    DynamicTopicConfig,
    /// A dynamic per-broker override (code 2).
    DynamicBrokerConfig,
    /// A dynamic cluster-wide broker default (code 3).
    DynamicDefaultBrokerConfig,
    /// Set in the broker's static configuration: `server.properties` or `--override` (code 4).
    StaticBrokerConfig,
    /// The built-in default (code 5).
    DefaultConfig,
    /// A dynamic broker logger level (code 6).
    DynamicBrokerLoggerConfig,
    /// A client-metrics subscription (code 7).
    ClientMetricsConfig,
    /// A group-level override (code 8).
    GroupConfig,
}

impl ConfigSource {
    /// The numeric code sent in DescribeConfigs responses (v1+).
    pub fn code(&self) -> i8 {
        match self {
            ConfigSource::Unknown => 0,
            ConfigSource::DynamicTopicConfig => 1,
            ConfigSource::DynamicBrokerConfig => 2,
            ConfigSource::DynamicDefaultBrokerConfig => 3,
            ConfigSource::StaticBrokerConfig => 4,
            ConfigSource::DefaultConfig => 5,
            ConfigSource::DynamicBrokerLoggerConfig => 6,
            ConfigSource::ClientMetricsConfig => 7,
            ConfigSource::GroupConfig => 8,
        }
    }
}

/// A configuration's value type, with Kafka's DescribeConfigs `ConfigType` codes (v3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigType {
    /// Unknown (code 0).
    Unknown,
    /// `true`/`false` (code 1).
    Boolean,
    /// Free text (code 2).
    String,
    /// 32-bit integer (code 3).
    Int,
    /// 16-bit integer (code 4).
    Short,
    /// 64-bit integer (code 5).
    Long,
    /// Floating point (code 6).
    Double,
    /// Comma-separated list (code 7).
    List,
    /// A Java class name (code 8).
    Class,
    /// A secret; never shown (code 9).
    Password,
}

impl ConfigType {
    /// The numeric code sent in DescribeConfigs responses.
    pub fn code(&self) -> i8 {
        match self {
            ConfigType::Unknown => 0,
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Class => 8,
            ConfigType::Password => 9,
        }
    }
}

/// One synonym of a described configuration: another key (or the same key at another
/// level) that supplies or would supply its value, in priority order.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSynonym {
    /// The synonym's key, e.g. `log.retention.hours` for `retention.ms`.
    pub name: String,
    /// Its value as text; `None` when sensitive.
    pub value: Option<String>,
    /// Where that value comes from.
    pub source: ConfigSource,
}

/// One row of a DescribeConfigs answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    /// The key.
    pub name: String,
    /// The value as text, `None` when sensitive or when the key has no value.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be changed at run time.
    pub read_only: bool,
    /// Whether the value is a secret (then `value` is `None`).
    pub sensitive: bool,
    /// The value's type.
    pub config_type: ConfigType,
    /// The keys that supply this value, highest priority first.
    pub synonyms: Vec<ConfigSynonym>,
    /// One-line documentation.
    pub documentation: Option<String>,
}
