//! Client settings from a Java client property file (`--command-config`, `--producer.config`,
//! `--consumer.config`) and `k=v` options, with the Java client's key names, so that one file serves the
//! Java client, Kafka's tools and `kavka`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kavka_config::SecurityConfig;

use super::ClientError;
use crate::network::ListenerTls;
use crate::network::PeerSecurity;
use crate::security::sasl::SaslClientConfig;

/// The SASL mechanisms this client logs in with.
const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
/// The Java client's `request.timeout.ms` default.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Client properties: a file's entries, then `--producer-property`-style overrides on top.
#[derive(Clone, Default)]
pub struct ClientProperties {
    entries: BTreeMap<String, String>,
}

impl std::fmt::Debug for ClientProperties {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be passwords.
        f.debug_set().entries(self.entries.keys()).finish()
    }
}

impl ClientProperties {
    /// Reads a `.properties` file.
    pub fn load(path: &Path) -> Result<ClientProperties, ClientError> {
        let fail = |message: String| ClientError::PropertyFile {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let pairs = kavka_config::parse_properties(&text).map_err(|e| fail(e.to_string()))?;
        let mut properties = ClientProperties::default();
        for (k, v) in pairs {
            properties.entries.insert(k, v);
        }
        // Checked now, so that a broken file is reported as the file's problem before any connection.
        properties.security().map_err(|e| fail(e.to_string()))?;
        properties
            .request_timeout()
            .map_err(|e| fail(e.to_string()))?;
        Ok(properties)
    }

    /// The properties of an optional file.
    pub fn load_optional(path: Option<&Path>) -> Result<ClientProperties, ClientError> {
        match path {
            Some(path) => Self::load(path),
            None => Ok(ClientProperties::default()),
        }
    }

    /// Applies `k=v` overrides (`--producer-property`, `--consumer-property`, `--producer-props`).
    pub fn with_overrides(mut self, overrides: &[String]) -> Result<ClientProperties, ClientError> {
        for item in overrides {
            let (k, v) = item.split_once('=').ok_or_else(|| {
                ClientError::Config(format!("{item:?} is not of the form key=value"))
            })?;
            self.entries
                .insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(self)
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.entries.insert(key.to_string(), value.into());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.get(key).map(String::as_str)
    }

    /// An integer property, `default` when absent.
    pub fn get_i64(&self, key: &str, default: i64) -> Result<i64, ClientError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| ClientError::Config(format!("{key}: {v:?} is not an integer"))),
        }
    }

    /// A duration property in milliseconds.
    pub fn get_ms(&self, key: &str, default: Duration) -> Result<Duration, ClientError> {
        let ms = self.get_i64(key, default.as_millis() as i64)?;
        u64::try_from(ms)
            .map(Duration::from_millis)
            .map_err(|_| ClientError::Config(format!("{key}: {ms} is negative")))
    }

    /// `client.id`, else `default`.
    pub fn client_id(&self, default: &str) -> String {
        self.get("client.id").unwrap_or(default).to_string()
    }

    /// `request.timeout.ms` (Java default 30 s).
    pub fn request_timeout(&self) -> Result<Duration, ClientError> {
        self.get_ms("request.timeout.ms", DEFAULT_REQUEST_TIMEOUT)
    }

    /// How to reach the brokers: TLS for `security.protocol` SSL / SASL_SSL (from the `ssl.*` keys) and
    /// the SASL login for SASL_PLAINTEXT / SASL_SSL.
    pub fn security(&self) -> Result<PeerSecurity, ClientError> {
        let protocol = self
            .get("security.protocol")
            .unwrap_or("PLAINTEXT")
            .trim()
            .to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(ClientError::Config(format!(
                    "security.protocol: unknown protocol {other:?} (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"
                )))
            }
        };
        let mut security = PeerSecurity::default();
        if tls {
            let ssl: BTreeMap<String, String> = self
                .entries
                .iter()
                .filter(|(k, _)| k.starts_with("ssl."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let listener = ListenerTls::client(SecurityConfig::new(ssl))
                .map_err(|e| ClientError::Config(e.to_string()))?;
            security.tls = Some(Arc::new(listener));
        }
        if sasl {
            security.sasl = Some(Arc::new(self.sasl_login()?));
        }
        Ok(security)
    }

    fn sasl_login(&self) -> Result<SaslClientConfig, ClientError> {
        let mechanism = self
            .get("sasl.mechanism")
            .unwrap_or("GSSAPI")
            .trim()
            .to_string();
        if !MECHANISMS.contains(&mechanism.as_str()) {
            return Err(ClientError::Config(format!(
                "sasl.mechanism: {mechanism} is not supported (use {})",
                MECHANISMS.join(", ")
            )));
        }
        let jaas = self.get("sasl.jaas.config").ok_or_else(|| {
            ClientError::Config(
                "sasl.jaas.config must hold the username and password to log in with".into(),
            )
        })?;
        let jaas = kavka_sasl::parse_jaas_config(jaas)
            .map_err(|e| ClientError::Config(format!("sasl.jaas.config: {e}")))?;
        match (jaas.username(), jaas.password()) {
            (Some(username), Some(password)) => Ok(SaslClientConfig {
                mechanism,
                username: username.to_string(),
                password: password.to_string(),
            }),
            _ => Err(ClientError::Config(
                "sasl.jaas.config needs username=\"...\" and password=\"...\" options".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> ClientProperties {
        let mut p = ClientProperties::default();
        for (k, v) in pairs {
            p.set(k, *v);
        }
        p
    }

    #[test]
    fn plaintext_by_default() {
        let s = ClientProperties::default().security().unwrap();
        assert!(s.tls.is_none() && s.sasl.is_none());
    }

    #[test]
    fn unknown_protocol_is_named() {
        let e = props(&[("security.protocol", "TLS")])
            .security()
            .err()
            .expect("refused");
        assert!(e.to_string().contains("\"TLS\""), "{e}");
    }

    #[test]
    fn sasl_from_jaas() {
        let p = props(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"s3cret\";",
            ),
        ]);
        let s = p.security().unwrap();
        let sasl = s.sasl.unwrap();
        assert_eq!(sasl.mechanism, "SCRAM-SHA-512");
        assert_eq!(sasl.username, "alice");
        assert_eq!(sasl.password, "s3cret");
        assert!(s.tls.is_none());
    }

    #[test]
    fn sasl_needs_a_supported_mechanism_and_credentials() {
        let e = props(&[("security.protocol", "SASL_PLAINTEXT")])
            .security()
            .err()
            .expect("refused");
        assert!(e.to_string().contains("GSSAPI"), "{e}");
        let e = props(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
        ])
        .security()
        .err()
        .expect("refused");
        assert!(e.to_string().contains("sasl.jaas.config"), "{e}");
    }

    #[test]
    fn ssl_without_trust_store_is_refused() {
        let e = props(&[("security.protocol", "SSL")])
            .security()
            .err()
            .expect("refused");
        assert!(e.to_string().contains("ssl.truststore.location"), "{e}");
    }

    #[test]
    fn malformed_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.properties");
        std::fs::write(&path, "security.protocol=NOPE\n").unwrap();
        let e = ClientProperties::load(&path).unwrap_err();
        assert!(
            e.to_string().starts_with(&path.display().to_string()),
            "{e}"
        );
        let e = ClientProperties::load(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn overrides_need_key_value() {
        let p = ClientProperties::default()
            .with_overrides(&["acks=all".into()])
            .unwrap();
        assert_eq!(p.get("acks"), Some("all"));
        assert!(ClientProperties::default()
            .with_overrides(&["acks".into()])
            .is_err());
    }
}
