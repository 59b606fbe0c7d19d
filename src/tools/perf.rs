//! `kavka perf produce` / `kavka perf consume`: Kafka's `kafka-producer-perf-test` and
//! `kafka-consumer-perf-test`, with their options and summary lines.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::connect;
use super::console_producer::now_ms;
use crate::client::consumer::{Consumer, ConsumerConfig, StartOffset};
use crate::client::producer::{Delivery, Producer, ProducerConfig};
use crate::client::records::OutgoingRecord;
use crate::client::{ClientError, ClientProperties};

/// How often a progress line is printed.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// Latencies kept for the percentiles (evenly sampled beyond this), as Kafka's tool samples.
const MAX_LATENCY_SAMPLES: u64 = 500_000;
const MB: f64 = 1024.0 * 1024.0;

#[derive(clap::Subcommand, Debug)]
pub enum PerfCommand {
    /// Produce records as fast as allowed and print throughput and latency (kafka-producer-perf-test).
    Produce(ProducePerfArgs),
    /// Consume records and print throughput (kafka-consumer-perf-test).
    Consume(ConsumePerfArgs),
}

#[derive(clap::Args, Debug)]
pub struct ProducePerfArgs {
    /// The broker(s) to connect to (else bootstrap.servers in --producer-props / --producer.config).
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: Option<String>,
    /// The topic to produce to.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// How many records to produce.
    #[arg(long, value_name = "N")]
    pub num_records: u64,
    /// The size of each record in bytes (or use --payload-file).
    #[arg(long, value_name = "BYTES", conflicts_with = "payload_file")]
    pub record_size: Option<usize>,
    /// A file whose lines are the payloads, picked at random.
    #[arg(long, value_name = "FILE")]
    pub payload_file: Option<PathBuf>,
    /// The most records per second to send; -1 for no limit.
    #[arg(long, value_name = "RPS", allow_hyphen_values = true)]
    pub throughput: f64,
    /// Producer properties with the Java client's names, e.g. acks=all compression.type=lz4.
    #[arg(long, value_name = "KEY=VALUE", num_args = 1..)]
    pub producer_props: Vec<String>,
    /// A producer property file with the Java client's keys.
    #[arg(
        long = "producer.config",
        visible_alias = "command-config",
        value_name = "FILE"
    )]
    pub producer_config: Option<PathBuf>,
    /// Accepted for compatibility with Kafka's tool; kavka prints no client metrics.
    #[arg(long)]
    pub print_metrics: bool,
}

#[derive(clap::Args, Debug)]
pub struct ConsumePerfArgs {
    /// The broker(s) to connect to.
    #[arg(long, value_name = "HOST:PORT")]
    pub bootstrap_server: String,
    /// The topic to consume.
    #[arg(long, value_name = "TOPIC")]
    pub topic: String,
    /// How many records to consume.
    #[arg(long, visible_alias = "messages", value_name = "N")]
    pub num_records: u64,
    /// Consume as a member of this group (default: no group, every partition from the start).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Give up when no record arrives for this long.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub timeout: u64,
    /// Start at the log end instead of the log start.
    #[arg(long)]
    pub from_latest: bool,
    /// A consumer property file with the Java client's keys.
    #[arg(
        long = "consumer.config",
        visible_alias = "command-config",
        value_name = "FILE"
    )]
    pub consumer_config: Option<PathBuf>,
    /// Print the header line of the summary only once (no effect; accepted for compatibility).
    #[arg(long)]
    pub hide_header: bool,
}

pub async fn run(command: PerfCommand) -> Result<(), ClientError> {
    match command {
        PerfCommand::Produce(args) => produce(args).await,
        PerfCommand::Consume(args) => consume(args).await,
    }
}

/// Latency statistics in Kafka's producer perf style.
struct Stats {
    start: Instant,
    count: u64,
    bytes: u64,
    total_latency_ms: f64,
    max_latency_ms: f64,
    sample_every: u64,
    samples: Vec<u32>,
    window: Window,
}

struct Window {
    start: Instant,
    count: u64,
    bytes: u64,
    total_latency_ms: f64,
    max_latency_ms: f64,
}

impl Window {
    fn new() -> Window {
        Window {
            start: Instant::now(),
            count: 0,
            bytes: 0,
            total_latency_ms: 0.0,
            max_latency_ms: 0.0,
        }
    }
}

impl Stats {
    fn new(num_records: u64) -> Stats {
        Stats {
            start: Instant::now(),
            count: 0,
            bytes: 0,
            total_latency_ms: 0.0,
            max_latency_ms: 0.0,
            sample_every: (num_records / MAX_LATENCY_SAMPLES).max(1),
            samples: Vec::new(),
            window: Window::new(),
        }
    }

    fn record(&mut self, latency: Duration, bytes: usize) {
        let ms = latency.as_secs_f64() * 1000.0;
        if self.count.is_multiple_of(self.sample_every) {
            self.samples.push(ms as u32);
        }
        self.count += 1;
        self.bytes += bytes as u64;
        self.total_latency_ms += ms;
        self.max_latency_ms = self.max_latency_ms.max(ms);
        let w = &mut self.window;
        w.count += 1;
        w.bytes += bytes as u64;
        w.total_latency_ms += ms;
        w.max_latency_ms = w.max_latency_ms.max(ms);
    }

    /// The progress line for the window since the last one, then a new window.
    fn window_line(&mut self) -> String {
        let w = std::mem::replace(&mut self.window, Window::new());
        let secs = w.start.elapsed().as_secs_f64().max(1e-9);
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            w.count,
            w.count as f64 / secs,
            w.bytes as f64 / MB / secs,
            if w.count > 0 { w.total_latency_ms / w.count as f64 } else { 0.0 },
            w.max_latency_ms
        )
    }

    fn summary(&mut self) -> String {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        self.samples.sort_unstable();
        let pct = |p: f64| -> u32 {
            if self.samples.is_empty() {
                return 0;
            }
            let i = ((p * self.samples.len() as f64) as usize).min(self.samples.len() - 1);
            self.samples[i]
        };
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
            self.count,
            self.count as f64 / secs,
            self.bytes as f64 / MB / secs,
            if self.count > 0 { self.total_latency_ms / self.count as f64 } else { 0.0 },
            self.max_latency_ms,
            pct(0.5),
            pct(0.95),
            pct(0.99),
            pct(0.999)
        )
    }
}

/// Prints a progress line: rewritten in place on a terminal, one line per report otherwise.
fn progress(line: &str, terminal: bool) {
    let mut out = std::io::stdout().lock();
    let _ = if terminal {
        write!(out, "\r{line}\x1b[K")
    } else {
        writeln!(out, "{line}")
    };
    let _ = out.flush();
}

fn payloads(args: &ProducePerfArgs) -> Result<Vec<Bytes>, ClientError> {
    match (&args.payload_file, args.record_size) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path).map_err(|e| ClientError::PropertyFile {
                path: path.clone(),
                message: e.to_string(),
            })?;
            let lines: Vec<Bytes> = text
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| Bytes::from(l.to_string()))
                .collect();
            if lines.is_empty() {
                return Err(ClientError::Config(format!(
                    "--payload-file {}: no payloads in it",
                    path.display()
                )));
            }
            Ok(lines)
        }
        (None, Some(size)) => {
            // Kafka's tool sends random upper-case letters; a fixed random payload keeps the cost of
            // generating it out of the measurement.
            let seed = now_ms() as u64;
            let payload: Vec<u8> = (0..size as u64)
                .map(|i| {
                    let x = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(i.wrapping_mul(1442695040888963407));
                    b'A' + ((x >> 33) % 26) as u8
                })
                .collect();
            Ok(vec![Bytes::from(payload)])
        }
        (None, None) => Err(ClientError::Config(
            "either --record-size or --payload-file is needed".into(),
        )),
    }
}

async fn produce(args: ProducePerfArgs) -> Result<(), ClientError> {
    let payloads = payloads(&args)?;
    let properties = ClientProperties::load_optional(args.producer_config.as_deref())?
        .with_overrides(&args.producer_props)?;
    let bootstrap = args
        .bootstrap_server
        .clone()
        .or_else(|| properties.get("bootstrap.servers").map(str::to_string))
        .ok_or_else(|| {
            ClientError::Config(
                "--bootstrap-server (or bootstrap.servers in --producer-props) is needed".into(),
            )
        })?;
    let config = ProducerConfig::from_properties(&properties)?;
    // The Java producer's buffer.memory bounds what is queued but not yet acknowledged.
    let buffer = properties
        .get_i64("buffer.memory", 32 * 1024 * 1024)?
        .max(1) as usize;
    let record_size = payloads.iter().map(|p| p.len()).max().unwrap_or(1).max(1);
    let outstanding = (buffer / record_size).clamp(1, 1_000_000);
    let client = connect(&bootstrap, &properties, "producer-performance").await?;
    let producer = Producer::new(client, &args.topic, config).await?;
    let terminal = std::io::stdout().is_terminal();

    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, usize, Delivery)>(outstanding);
    let collector = tokio::spawn(async move {
        let mut stats = Stats::new(args.num_records);
        let mut next_report = Instant::now() + REPORT_INTERVAL;
        let mut first_error = None;
        while let Some((sent, size, delivery)) = rx.recv().await {
            match delivery.await {
                Ok(Ok(_)) => stats.record(sent.elapsed(), size),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(ClientError::Failed("the producer stopped".into()));
                }
            }
            if Instant::now() >= next_report {
                progress(&stats.window_line(), terminal);
                next_report = Instant::now() + REPORT_INTERVAL;
            }
        }
        (stats, first_error)
    });
    let start = Instant::now();
    for i in 0..args.num_records {
        let value = payloads[(i as usize) % payloads.len()].clone();
        let size = value.len();
        let record = OutgoingRecord {
            key: None,
            value: Some(value),
            headers: Vec::new(),
            timestamp: now_ms(),
        };
        let delivery = producer.send(record, None)?;
        if tx.send((Instant::now(), size, delivery)).await.is_err() {
            break;
        }
        if args.throughput > 0.0 {
            // Kafka's ThroughputThrottler: sleep whenever ahead of the target rate.
            let due = start + Duration::from_secs_f64((i + 1) as f64 / args.throughput);
            let now = Instant::now();
            if due > now {
                tokio::time::sleep(due - now).await;
            }
        }
    }
    drop(tx);
    producer.close().await;
    let (mut stats, first_error) = collector
        .await
        .map_err(|e| ClientError::Failed(format!("latency collector failed: {e}")))?;
    if terminal {
        println!();
    }
    println!("{}", stats.summary());
    match first_error {
        None => Ok(()),
        Some(e) => Err(ClientError::Failed(format!(
            "{} of {} records were not acknowledged: {e}",
            args.num_records - stats.count,
            args.num_records
        ))),
    }
}

/// Kafka's consumer perf date format (`yyyy-MM-dd HH:mm:ss:SSS`), in local time when known.
fn timestamp_text(at: time::OffsetDateTime) -> String {
    let at = time::UtcOffset::current_local_offset()
        .map(|o| at.to_offset(o))
        .unwrap_or(at);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}:{:03}",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

async fn consume(args: ConsumePerfArgs) -> Result<(), ClientError> {
    let mut properties = ClientProperties::load_optional(args.consumer_config.as_deref())?;
    if !args.from_latest {
        properties.set("auto.offset.reset", "earliest");
    }
    let config = ConsumerConfig::from_properties(&properties)?;
    let start_wall = time::OffsetDateTime::now_utc();
    let start = Instant::now();
    let client = connect(&args.bootstrap_server, &properties, "consumer-performance").await?;
    let mut consumer = match &args.group {
        Some(group) => Consumer::subscribe(client, &args.topic, group, config).await?,
        None => {
            let from = if args.from_latest {
                StartOffset::Latest
            } else {
                StartOffset::Earliest
            };
            Consumer::assign(client, &args.topic, None, from, config).await?
        }
    };
    let timeout = Duration::from_millis(args.timeout);
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut first_record: Option<Instant> = None;
    let mut last_record = Instant::now();
    while count < args.num_records {
        let left = timeout.saturating_sub(last_record.elapsed());
        if left.is_zero() {
            break;
        }
        let records = consumer.poll(left.min(Duration::from_secs(1))).await?;
        if records.is_empty() {
            continue;
        }
        first_record.get_or_insert_with(Instant::now);
        last_record = Instant::now();
        for (_, r) in records {
            count += 1;
            bytes += r.value.as_ref().map_or(0, |v| v.len()) as u64
                + r.key.as_ref().map_or(0, |k| k.len()) as u64;
            if count >= args.num_records {
                break;
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    // Time until the first record: joining the group (Kafka's rebalance.time.ms) and the first fetch.
    let rebalance_ms = first_record.map_or(0, |f| (f - start).as_millis()) as f64;
    let fetch_secs = (elapsed - rebalance_ms / 1000.0).max(1e-9);
    let end_wall = time::OffsetDateTime::now_utc();
    let _ = consumer.close().await;
    let mb = bytes as f64 / MB;
    println!("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec");
    println!(
        "{}, {}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
        timestamp_text(start_wall),
        timestamp_text(end_wall),
        mb,
        mb / elapsed,
        count,
        count as f64 / elapsed,
        rebalance_ms as u64,
        (fetch_secs * 1000.0) as u64,
        mb / fetch_secs,
        count as f64 / fetch_secs
    );
    if count < args.num_records {
        return Err(ClientError::Failed(format!(
            "consumed {count} of {} records: none arrived for {} ms",
            args.num_records, args.timeout
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_has_kafkas_fields() {
        let mut stats = Stats::new(10);
        for ms in 1..=10 {
            stats.record(Duration::from_millis(ms), 100);
        }
        let s = stats.summary();
        assert!(s.starts_with("10 records sent, "), "{s}");
        for part in [
            "records/sec (",
            "MB/sec), ",
            "ms avg latency, ",
            "ms max latency, ",
            "ms 50th, ",
            "ms 95th, ",
            "ms 99th, ",
            "ms 99.9th.",
        ] {
            assert!(s.contains(part), "{s} lacks {part}");
        }
        assert!(s.contains("5.50 ms avg latency"), "{s}");
        assert!(s.contains("10.00 ms max latency"), "{s}");
        assert!(s.contains("6 ms 50th"), "{s}");
    }

    #[test]
    fn record_size_payloads_have_that_size() {
        let args = ProducePerfArgs {
            bootstrap_server: None,
            topic: "t".into(),
            num_records: 1,
            record_size: Some(100),
            payload_file: None,
            throughput: -1.0,
            producer_props: Vec::new(),
            producer_config: None,
            print_metrics: false,
        };
        let p = payloads(&args).unwrap();
        assert_eq!(p[0].len(), 100);
        assert!(p[0].iter().all(u8::is_ascii_uppercase));
    }
}
