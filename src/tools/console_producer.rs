//! `kavka console-producer`: Kafka's `kafka-console-producer`. Each stdin line is one record; with
//! `parse.key=true` the key is what precedes the first `key.separator`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::io::AsyncBufReadExt;

use super::connect;
use crate::client::producer::{Producer, ProducerConfig};
use crate::client::records::OutgoingRecord;
use crate::client::{ClientError, ClientProperties};

#[derive(clap::Args, Debug)]
pub struct ConsoleProducerArgs {
    /// The broker(s) to connect to: HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// The topic to produce to.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// A line reader property: parse.key=true, key.separator=S, ignore.error=true (repeatable).
    #[arg(
        long = "property",
        visible_alias = "reader-property",
        value_name = "KEY=VALUE"
    )]
    pub properties: Vec<String>,
    /// A producer property with the Java client's name, e.g. acks=all, linger.ms=0 (repeatable).
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    pub producer_properties: Vec<String>,
    /// A producer property file with the Java client's keys (security.protocol, ssl.*, sasl.*, ...).
    #[arg(
        long = "producer.config",
        visible_alias = "command-config",
        value_name = "FILE"
    )]
    pub producer_config: Option<PathBuf>,
    /// Compression codec: none, gzip, snappy, lz4 or zstd (compression.type).
    #[arg(long, value_name = "CODEC")]
    pub compression_codec: Option<String>,
    /// Acknowledgements required: all, -1, 0 or 1 (acks). Default all.
    #[arg(long, value_name = "ACKS", allow_hyphen_values = true)]
    pub request_required_acks: Option<String>,
    /// Wait for each record's acknowledgement before reading the next line.
    #[arg(long)]
    pub sync: bool,
}

/// The `--property` settings of the line reader.
struct LineFormat {
    parse_key: bool,
    key_separator: String,
    ignore_error: bool,
}

impl LineFormat {
    fn from_properties(items: &[String]) -> Result<LineFormat, ClientError> {
        let mut format = LineFormat {
            parse_key: false,
            key_separator: "\t".to_string(),
            ignore_error: false,
        };
        for item in items {
            let (k, v) = item.split_once('=').ok_or_else(|| {
                ClientError::Config(format!("--property {item:?} is not of the form key=value"))
            })?;
            match k.trim() {
                "parse.key" => format.parse_key = v.trim().eq_ignore_ascii_case("true"),
                "key.separator" => format.key_separator = v.to_string(),
                "ignore.error" => format.ignore_error = v.trim().eq_ignore_ascii_case("true"),
                other => {
                    return Err(ClientError::Config(format!(
                        "--property {other}: unknown (parse.key, key.separator, ignore.error)"
                    )))
                }
            }
        }
        if format.key_separator.is_empty() {
            return Err(ClientError::Config(
                "key.separator must not be empty".into(),
            ));
        }
        Ok(format)
    }

    /// The key and value of `line`.
    fn split(&self, line: &str) -> Result<(Option<Bytes>, Bytes), ClientError> {
        if !self.parse_key {
            return Ok((None, Bytes::from(line.to_string())));
        }
        match line.split_once(self.key_separator.as_str()) {
            Some((k, v)) => Ok((Some(Bytes::from(k.to_string())), Bytes::from(v.to_string()))),
            None if self.ignore_error => Ok((None, Bytes::from(line.to_string()))),
            None => Err(ClientError::Failed(format!(
                "no key separator {:?} in line {line:?} (parse.key=true)",
                self.key_separator
            ))),
        }
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

pub async fn run(args: ConsoleProducerArgs) -> Result<(), ClientError> {
    let format = LineFormat::from_properties(&args.properties)?;
    let mut properties = ClientProperties::load_optional(args.producer_config.as_deref())?
        .with_overrides(&args.producer_properties)?;
    if let Some(codec) = &args.compression_codec {
        properties.set("compression.type", codec.clone());
    }
    if let Some(acks) = &args.request_required_acks {
        properties.set("acks", acks.clone());
    }
    let config = ProducerConfig::from_properties(&properties)?;
    let client = connect(&args.bootstrap_server, &properties, "console-producer").await?;
    let producer = Producer::new(client, &args.topic, config).await?;

    // Deliveries are checked by a task of their own, so that reading stdin is never held up by
    // acknowledgements (except with --sync).
    let (tx, mut rx) = tokio::sync::mpsc::channel(10_000);
    let checker = tokio::spawn(async move {
        let (mut failed, mut first_error) = (0u64, None);
        while let Some(delivery) = rx.recv().await {
            let delivery: crate::client::producer::Delivery = delivery;
            let outcome = match delivery.await {
                Ok(result) => result.map(|_| ()),
                Err(_) => Err(ClientError::Failed("the producer stopped".into())),
            };
            if let Err(e) = outcome {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
        (failed, first_error)
    });
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut sent = 0u64;
    let mut read_error = None;
    loop {
        let line = match lines.next_line().await {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                read_error = Some(ClientError::Failed(format!("cannot read stdin: {e}")));
                break;
            }
        };
        let (key, value) = match format.split(&line) {
            Ok(kv) => kv,
            Err(e) => {
                read_error = Some(e);
                break;
            }
        };
        let record = OutgoingRecord {
            key,
            value: Some(value),
            headers: Vec::new(),
            timestamp: now_ms(),
        };
        let delivery = producer.send(record, None)?;
        sent += 1;
        if args.sync {
            producer.flush().await;
        }
        if tx.send(delivery).await.is_err() {
            break;
        }
    }
    drop(tx);
    producer.close().await;
    let (failed, first_error) = checker
        .await
        .map_err(|e| ClientError::Failed(format!("delivery check failed: {e}")))?;
    if let Some(e) = read_error {
        return Err(e);
    }
    match first_error {
        None => Ok(()),
        Some(e) => Err(ClientError::Failed(format!(
            "{failed} of {sent} records were not delivered: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_at_the_first_separator() {
        let f = LineFormat::from_properties(&["parse.key=true".into(), "key.separator=:".into()])
            .unwrap();
        let (k, v) = f.split("kitchen:21.5:C").unwrap();
        assert_eq!(k.as_deref(), Some(&b"kitchen"[..]));
        assert_eq!(&v[..], b"21.5:C");
        assert!(f.split("no separator").is_err());
        let plain = LineFormat::from_properties(&[]).unwrap();
        assert_eq!(plain.split("a\tb").unwrap().0, None);
        assert!(LineFormat::from_properties(&["colour=blue".into()]).is_err());
    }
}
