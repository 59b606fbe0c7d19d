//! The operator command line: Kafka's tools (`kafka-topics`, `kafka-console-producer`, ...) as
//! `kavka` subcommands with the same option names, over [`crate::client`]. Each module holds one
//! command's clap arguments and its `run`; output goes to stdout in Kafka's formats, and every failure
//! is a [`ClientError`] that `main` prints as one `Error: ...` line.

pub mod acls;
pub mod cluster_status;
pub mod configs;
pub mod console_consumer;
pub mod console_producer;
pub mod consumer_groups;
pub mod perf;
pub mod topics;
pub mod users;

use std::path::PathBuf;

use crate::client::cluster::ClientSettings;
use crate::client::{ClientError, ClientProperties, KafkaClient};

/// The options every admin command takes.
#[derive(clap::Args, Clone, Debug)]
pub struct AdminConnection {
    /// The broker(s) to connect to: HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// A property file with the Java client's keys (security.protocol, ssl.*, sasl.mechanism,
    /// sasl.jaas.config, client.id, request.timeout.ms).
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
}

impl AdminConnection {
    pub fn properties(&self) -> Result<ClientProperties, ClientError> {
        ClientProperties::load_optional(self.command_config.as_deref())
    }

    /// Connects as `client_id` (unless the property file sets client.id).
    pub async fn connect(&self, client_id: &str) -> Result<KafkaClient, ClientError> {
        connect(&self.bootstrap_server, &self.properties()?, client_id).await
    }
}

/// Connects to `bootstrap` with `properties`.
pub async fn connect(
    bootstrap: &str,
    properties: &ClientProperties,
    client_id: &str,
) -> Result<KafkaClient, ClientError> {
    let settings = ClientSettings::from_properties(properties, client_id)?;
    KafkaClient::connect(bootstrap, settings).await
}

/// Splits `k=v` items, each possibly a comma-separated list (`--add-config a=1,b=2`), keeping commas
/// inside square brackets (`SCRAM-SHA-512=[iterations=8192,password=x]`).
pub fn split_config_list(items: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for item in items {
        let mut depth = 0i32;
        let mut current = String::new();
        for ch in item.chars() {
            match ch {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            if ch == ',' && depth <= 0 {
                if !current.trim().is_empty() {
                    out.push(current.trim().to_string());
                }
                current.clear();
            } else {
                current.push(ch);
            }
        }
        if !current.trim().is_empty() {
            out.push(current.trim().to_string());
        }
    }
    out
}

/// `k=v` into its parts, with the item named in the error.
pub fn key_value(item: &str) -> Result<(String, String), ClientError> {
    item.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| ClientError::Config(format!("{item:?} is not of the form key=value")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_split_outside_brackets() {
        let items = vec![
            "a=1,b=2".to_string(),
            "SCRAM-SHA-512=[iterations=8192,password=x],c=3".to_string(),
        ];
        assert_eq!(
            split_config_list(&items),
            [
                "a=1",
                "b=2",
                "SCRAM-SHA-512=[iterations=8192,password=x]",
                "c=3"
            ]
        );
        assert!(key_value("novalue").is_err());
        assert_eq!(key_value("k = v").unwrap(), ("k".into(), "v".into()));
    }
}
