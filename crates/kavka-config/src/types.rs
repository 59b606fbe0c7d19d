//! Typed values that several keys share: listeners, security protocols, roles, policies.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::ConfigError;

/// A listener's security protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name for it, e.g. `SASL_SSL`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Kafka's numeric id for it (SecurityProtocol.id), as BrokerRegistration carries it.
    pub fn id(&self) -> i16 {
        match self {
            SecurityProtocol::Plaintext => 0,
            SecurityProtocol::Ssl => 1,
            SecurityProtocol::SaslPlaintext => 2,
            SecurityProtocol::SaslSsl => 3,
        }
    }

    /// Parses a protocol name, case-insensitively as Kafka does.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    /// Whether connections are wrapped in TLS.
    pub fn uses_tls(&self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients authenticate with SASL.
    pub fn uses_sasl(&self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One endpoint of `listeners` / `advertised.listeners`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Listener name, upper-cased as Kafka normalises it (e.g. `PLAINTEXT`, `CONTROLLER`).
    pub name: String,
    /// Host as written, without IPv6 brackets; empty means all interfaces (for
    /// `listeners`) or "the local host name" (for advertised listeners).
    pub host: String,
    /// Port; 0 means an ephemeral port chosen at bind time.
    pub port: u16,
    /// The protocol from `listener.security.protocol.map`.
    pub security_protocol: SecurityProtocol,
}

impl Listener {
    /// `host:port`, bracketing IPv6 literals, suitable for binding or advertising.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.name, self.host_port())
    }
}

/// Splits `host:port` or `[v6]:port`; the host may be empty. Port must be 0..=65535.
pub(crate) fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "unterminated '[' in IPv6 address".to_string())?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| "expected ':port' after IPv6 address".to_string())?;
        (host, port)
    } else {
        s.rsplit_once(':')
            .ok_or_else(|| "expected host:port".to_string())?
    };
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-%._:".contains(c))
    {
        return Err(format!("invalid host {host:?}"));
    }
    let port: i64 = port
        .trim()
        .parse()
        .map_err(|_| format!("invalid port {port:?}"))?;
    let port = u16::try_from(port).map_err(|_| format!("port {port} is not in 0..65535"))?;
    Ok((host.to_string(), port))
}

/// Parses `NAME://host:port` into (upper-cased name, host, port).
pub(crate) fn parse_endpoint(s: &str) -> Result<(String, String, u16), String> {
    let (name, rest) = s
        .split_once("://")
        .ok_or_else(|| format!("{s:?} is not of the form NAME://host:port"))?;
    if name.is_empty() {
        return Err(format!("{s:?} has no listener name"));
    }
    let (host, port) = split_host_port(rest).map_err(|e| format!("{s:?}: {e}"))?;
    Ok((name.to_ascii_uppercase(), host, port))
}

/// One entry of `controller.quorum.voters` (`id@host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    /// The voter's node id.
    pub id: i32,
    /// Its controller listener host.
    pub host: String,
    /// Its controller listener port.
    pub port: u16,
}

pub fn parse_voter(s: &str) -> Result<QuorumVoter, String> {
    let (id, addr) = s
        .split_once('@')
        .ok_or_else(|| format!("{s:?} is not of the form id@host:port"))?;
    let id: i32 = id
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: node id {id:?} is not an integer"))?;
    if id < 0 {
        return Err(format!("{s:?}: node id must be non-negative"));
    }
    let (host, port) = split_host_port(addr).map_err(|e| format!("{s:?}: {e}"))?;
    if host.is_empty() {
        return Err(format!("{s:?}: host must not be empty"));
    }
    Ok(QuorumVoter { id, host, port })
}

/// A KRaft process role (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProcessRole {
    /// Serves clients and hosts partitions.
    Broker,
    /// Votes in the metadata quorum.
    Controller,
}

/// `message.timestamp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampType {
    /// Keep the producer's timestamp.
    CreateTime,
    /// Stamp records with the broker's append time.
    LogAppendTime,
}

impl TimestampType {
    pub(crate) fn parse(key: &str, s: &str) -> Result<Self, ConfigError> {
        match s {
            "CreateTime" => Ok(TimestampType::CreateTime),
            "LogAppendTime" => Ok(TimestampType::LogAppendTime),
            _ => Err(ConfigError::invalid(
                key,
                s,
                "must be CreateTime or LogAppendTime",
            )),
        }
    }
}

/// `compression.type` at broker/topic level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressionType {
    /// Keep whatever codec the producer used.
    Producer,
    /// Store uncompressed.
    Uncompressed,
    /// gzip.
    Gzip,
    /// Snappy.
    Snappy,
    /// LZ4.
    Lz4,
    /// Zstandard.
    Zstd,
}

impl CompressionType {
    pub(crate) fn parse(key: &str, s: &str) -> Result<Self, ConfigError> {
        Ok(match s {
            "producer" => CompressionType::Producer,
            "uncompressed" => CompressionType::Uncompressed,
            "gzip" => CompressionType::Gzip,
            "snappy" => CompressionType::Snappy,
            "lz4" => CompressionType::Lz4,
            "zstd" => CompressionType::Zstd,
            _ => {
                return Err(ConfigError::invalid(
                    key,
                    s,
                    "must be one of uncompressed, zstd, lz4, snappy, gzip, producer",
                ))
            }
        })
    }
}

/// `cleanup.policy`: any combination of delete and compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CleanupPolicy {
    /// Delete old segments by time/size retention.
    pub delete: bool,
    /// Compact by key.
    pub compact: bool,
}

impl CleanupPolicy {
    pub(crate) fn from_list(items: &[String]) -> Self {
        let has = |p: &str| items.iter().any(|i| i.eq_ignore_ascii_case(p));
        CleanupPolicy {
            delete: has("delete"),
            compact: has("compact"),
        }
    }
}

/// The raw `ssl.*`, `sasl.*`, `listener.name.*` and authorizer keys, as set.
///
/// `Debug` prints keys only, so secrets (`*.password`, `sasl.jaas.config`, PEM keys)
/// never reach a log through `{:?}`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    entries: BTreeMap<String, String>,
}

impl SecurityConfig {
    /// Settings from `ssl.*` / `sasl.*` keys, for example a client's property file.
    pub fn new(entries: BTreeMap<String, String>) -> Self {
        SecurityConfig { entries }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// Whether `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// All keys and values, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `key` for one listener, following Kafka's per-listener overrides:
    /// `listener.name.<listener, lower-cased>.<key>` if set, else `key` itself. For
    /// SASL mechanism-specific keys pass e.g. `scram-sha-256.sasl.jaas.config`.
    pub fn for_listener(&self, listener: &str, key: &str) -> Option<&str> {
        let prefixed = format!("listener.name.{}.{key}", listener.to_ascii_lowercase());
        self.get(&prefixed).or_else(|| self.get(key))
    }
}

impl fmt::Debug for SecurityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.entries.keys()).finish()
    }
}

/// A map whose `Debug` shows keys only (it may hold passwords).
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct KeysOnly(pub BTreeMap<String, String>);

impl fmt::Debug for KeysOnly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("plaintext://:9092").unwrap(),
            ("PLAINTEXT".into(), "".into(), 9092)
        );
        assert_eq!(
            parse_endpoint("SSL://[::1]:9093").unwrap(),
            ("SSL".into(), "::1".into(), 9093)
        );
        assert_eq!(
            parse_endpoint("CLIENT://my-host.example:0").unwrap(),
            ("CLIENT".into(), "my-host.example".into(), 0)
        );
        assert!(parse_endpoint("PLAINTEXT://host:65536").is_err());
        assert!(parse_endpoint("PLAINTEXT://host:-1").is_err());
        assert!(parse_endpoint("PLAINTEXT://host").is_err());
        assert!(parse_endpoint("host:9092").is_err());
        assert!(parse_endpoint("://host:9092").is_err());
        assert!(parse_endpoint("P://ho st:1").is_err());
    }

    #[test]
    fn voters() {
        assert_eq!(
            parse_voter("1@localhost:9093").unwrap(),
            QuorumVoter {
                id: 1,
                host: "localhost".into(),
                port: 9093
            }
        );
        assert!(parse_voter("x@localhost:9093").is_err());
        assert!(parse_voter("localhost:9093").is_err());
        assert!(parse_voter("1@:9093").is_err());
    }

    #[test]
    fn security_config_debug_hides_values_and_listener_overrides_win() {
        let mut m = BTreeMap::new();
        m.insert("ssl.keystore.password".to_string(), "hunter2".to_string());
        m.insert(
            "listener.name.sasl_ssl.ssl.keystore.password".to_string(),
            "other".to_string(),
        );
        let s = SecurityConfig::new(m);
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(
            s.for_listener("SASL_SSL", "ssl.keystore.password"),
            Some("other")
        );
        assert_eq!(
            s.for_listener("SSL", "ssl.keystore.password"),
            Some("hunter2")
        );
        assert_eq!(s.for_listener("SSL", "ssl.truststore.location"), None);
    }

    #[test]
    fn listener_display() {
        let l = Listener {
            name: "SSL".into(),
            host: "::1".into(),
            port: 1,
            security_protocol: SecurityProtocol::Ssl,
        };
        assert_eq!(l.to_string(), "SSL://[::1]:1");
    }
}
