//! `kavka console-consumer`: Kafka's `kafka-console-consumer`, printing records as its
//! `DefaultMessageFormatter` does.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::connect;
use crate::client::consumer::{Consumer, ConsumerConfig, StartOffset};
use crate::client::records::{ConsumedRecord, TimestampKind};
use crate::client::{ClientError, ClientProperties};

#[derive(clap::Args, Debug)]
pub struct ConsoleConsumerArgs {
    /// The broker(s) to connect to: HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// The topic to consume.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// Start at the earliest offset when there is no committed offset (default: the latest).
    #[arg(long)]
    pub from_beginning: bool,
    /// Consume as a member of this group (consumer protocol), committing offsets.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Consume only this partition (without a group).
    #[arg(long, value_name = "N")]
    pub partition: Option<i32>,
    /// With --partition: earliest, latest (default) or an offset.
    #[arg(long, value_name = "OFFSET")]
    pub offset: Option<String>,
    /// Exit after this many records.
    #[arg(long, value_name = "N")]
    pub max_messages: Option<u64>,
    /// Exit when no record arrives for this long.
    #[arg(long, value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// A formatter property: print.key, print.value, print.partition, print.offset, print.timestamp,
    /// print.headers (true/false), key.separator, line.separator, headers.separator, null.literal
    /// (repeatable).
    #[arg(
        long = "property",
        visible_alias = "formatter-property",
        value_name = "KEY=VALUE"
    )]
    pub properties: Vec<String>,
    /// A consumer property with the Java client's name, e.g. fetch.max.wait.ms=100 (repeatable).
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    pub consumer_properties: Vec<String>,
    /// A consumer property file with the Java client's keys (security.protocol, ssl.*, sasl.*, ...).
    #[arg(
        long = "consumer.config",
        visible_alias = "command-config",
        value_name = "FILE"
    )]
    pub consumer_config: Option<PathBuf>,
    /// read_uncommitted (default) or read_committed.
    #[arg(long, value_name = "LEVEL")]
    pub isolation_level: Option<String>,
}

/// Kafka's `DefaultMessageFormatter` settings.
struct Formatter {
    print_timestamp: bool,
    print_partition: bool,
    print_offset: bool,
    print_headers: bool,
    print_key: bool,
    print_value: bool,
    key_separator: String,
    line_separator: String,
    headers_separator: String,
    null_literal: String,
}

impl Formatter {
    fn from_properties(items: &[String]) -> Result<Formatter, ClientError> {
        let mut f = Formatter {
            print_timestamp: false,
            print_partition: false,
            print_offset: false,
            print_headers: false,
            print_key: false,
            print_value: true,
            key_separator: "\t".into(),
            line_separator: "\n".into(),
            headers_separator: ",".into(),
            null_literal: "null".into(),
        };
        for item in items {
            let (k, v) = item.split_once('=').ok_or_else(|| {
                ClientError::Config(format!("--property {item:?} is not of the form key=value"))
            })?;
            let flag = v.trim().eq_ignore_ascii_case("true");
            match k.trim() {
                "print.timestamp" => f.print_timestamp = flag,
                "print.partition" => f.print_partition = flag,
                "print.offset" => f.print_offset = flag,
                "print.headers" => f.print_headers = flag,
                "print.key" => f.print_key = flag,
                "print.value" => f.print_value = flag,
                "key.separator" => f.key_separator = v.to_string(),
                "line.separator" => f.line_separator = v.to_string(),
                "headers.separator" => f.headers_separator = v.to_string(),
                "null.literal" => f.null_literal = v.to_string(),
                other => {
                    return Err(ClientError::Config(format!(
                        "--property {other}: unknown formatter property"
                    )))
                }
            }
        }
        Ok(f)
    }

    fn format(&self, partition: i32, r: &ConsumedRecord) -> String {
        let text = |b: &Option<bytes::Bytes>| match b {
            Some(b) => String::from_utf8_lossy(b).into_owned(),
            None => self.null_literal.clone(),
        };
        let mut columns = Vec::new();
        if self.print_timestamp {
            let kind = match r.timestamp_type {
                TimestampKind::CreateTime => "CreateTime",
                TimestampKind::LogAppendTime => "LogAppendTime",
            };
            columns.push(format!("{kind}:{}", r.timestamp));
        }
        if self.print_partition {
            columns.push(format!("Partition:{partition}"));
        }
        if self.print_offset {
            columns.push(format!("Offset:{}", r.offset));
        }
        if self.print_headers {
            if r.headers.is_empty() {
                columns.push("NO_HEADERS".into());
            } else {
                columns.push(
                    r.headers
                        .iter()
                        .map(|(k, v)| format!("{k}:{}", text(v)))
                        .collect::<Vec<_>>()
                        .join(&self.headers_separator),
                );
            }
        }
        if self.print_key {
            columns.push(text(&r.key));
        }
        if self.print_value {
            columns.push(text(&r.value));
        }
        let mut line = columns.join(&self.key_separator);
        line.push_str(&self.line_separator);
        line
    }
}

fn start_offset(args: &ConsoleConsumerArgs) -> Result<StartOffset, ClientError> {
    match (args.offset.as_deref(), args.from_beginning) {
        (Some(_), true) => Err(ClientError::Config(
            "--offset and --from-beginning cannot be used together".into(),
        )),
        (Some("earliest"), _) => Ok(StartOffset::Earliest),
        (Some("latest"), _) => Ok(StartOffset::Latest),
        (Some(o), _) => o
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .map(StartOffset::At)
            .ok_or_else(|| {
                ClientError::Config(format!(
                    "--offset {o:?}: use earliest, latest or a non-negative offset"
                ))
            }),
        (None, true) => Ok(StartOffset::Earliest),
        (None, false) => Ok(StartOffset::Latest),
    }
}

pub async fn run(args: ConsoleConsumerArgs) -> Result<(), ClientError> {
    let formatter = Formatter::from_properties(&args.properties)?;
    if args.group.is_some() && args.partition.is_some() {
        return Err(ClientError::Config(
            "--group and --partition cannot be used together".into(),
        ));
    }
    if args.offset.is_some() && args.partition.is_none() {
        return Err(ClientError::Config("--offset needs --partition".into()));
    }
    let start = start_offset(&args)?;
    let mut properties = ClientProperties::load_optional(args.consumer_config.as_deref())?
        .with_overrides(&args.consumer_properties)?;
    if let Some(level) = &args.isolation_level {
        properties.set("isolation.level", level.clone());
    }
    if args.from_beginning {
        properties.set("auto.offset.reset", "earliest");
    }
    let config = ConsumerConfig::from_properties(&properties)?;
    let client = connect(&args.bootstrap_server, &properties, "console-consumer").await?;
    let mut consumer = match &args.group {
        Some(group) => Consumer::subscribe(client, &args.topic, group, config).await?,
        None => {
            let partitions = args.partition.map(|p| vec![p]);
            Consumer::assign(client, &args.topic, partitions, start, config).await?
        }
    };
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let mut processed: u64 = 0;
    let mut last_record = Instant::now();
    // Next offset per partition after the records printed: what the group commits.
    let mut printed = std::collections::BTreeMap::new();
    let stdout = std::io::stdout();
    let outcome: Result<(), ClientError> = async {
        loop {
            if args.max_messages.is_some_and(|m| processed >= m) {
                return Ok(());
            }
            let wait = match timeout {
                Some(t) => {
                    let left = t.saturating_sub(last_record.elapsed());
                    if left.is_zero() {
                        return Ok(());
                    }
                    left.min(Duration::from_secs(1))
                }
                None => Duration::from_secs(1),
            };
            let records = tokio::select! {
                records = consumer.poll(wait) => records?,
                _ = tokio::signal::ctrl_c() => return Ok(()),
            };
            if records.is_empty() {
                continue;
            }
            last_record = Instant::now();
            let mut out = stdout.lock();
            for (partition, record) in &records {
                if args.max_messages.is_some_and(|m| processed >= m) {
                    break;
                }
                out.write_all(formatter.format(*partition, record).as_bytes())
                    .and_then(|_| out.flush())
                    .map_err(|e| ClientError::Failed(format!("cannot write to stdout: {e}")))?;
                processed += 1;
                printed.insert(*partition, record.offset + 1);
            }
            drop(out);
            if args.group.is_some() {
                consumer.commit_offsets(&printed).await?;
            }
        }
    }
    .await;
    // Leave the group even after an error (what was printed is committed), then report it.
    let closed = consumer.close().await;
    let outcome = outcome.and(closed);
    if outcome.is_ok() {
        eprintln!("Processed a total of {processed} messages");
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ConsumedRecord {
        ConsumedRecord {
            offset: 7,
            timestamp: 1_700_000_000_123,
            timestamp_type: TimestampKind::CreateTime,
            key: Some(bytes::Bytes::from_static(b"kitchen")),
            value: Some(bytes::Bytes::from_static(b"21.5")),
            headers: Vec::new(),
        }
    }

    #[test]
    fn formats_like_the_default_message_formatter() {
        let plain = Formatter::from_properties(&[]).unwrap();
        assert_eq!(plain.format(0, &record()), "21.5\n");
        let all = Formatter::from_properties(&[
            "print.timestamp=true".into(),
            "print.partition=true".into(),
            "print.offset=true".into(),
            "print.key=true".into(),
            "key.separator=:".into(),
        ])
        .unwrap();
        assert_eq!(
            all.format(2, &record()),
            "CreateTime:1700000000123:Partition:2:Offset:7:kitchen:21.5\n"
        );
        let mut null_key = record();
        null_key.key = None;
        let keyed = Formatter::from_properties(&["print.key=true".into()]).unwrap();
        assert_eq!(keyed.format(0, &null_key), "null\t21.5\n");
    }
}
