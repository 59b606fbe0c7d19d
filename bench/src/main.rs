//! `kavka-bench`: a small librdkafka-based load generator.
//!
//! ```text
//! kavka-bench produce --bootstrap HOST:PORT --topic T --size BYTES --count N --acks 1|all [--rate R]
//! kavka-bench consume --bootstrap HOST:PORT --topic T --partitions P --count N
//! kavka-bench create-topic --bootstrap HOST:PORT --topic T --partitions P [--replication-factor R]
//!             [--config key=value,...]
//! kavka-bench fetch-raw --bootstrap HOST:PORT --topic T --partitions P
//! kavka-bench group-vs-assign --bootstrap HOST:PORT [--partitions 8] [--size 1024] [--count 300000]
//!             [--rounds 3] [--commit-interval-ms 100] [--protocol classic|consumer]
//! kavka-bench rebalance --bootstrap HOST:PORT [--partitions 100] [--members 10]
//!             [--assignor range|cooperative-sticky] [--session-timeout-ms 10000]
//!             [--heartbeat-ms MS] [--protocol classic|consumer]
//! kavka-bench has-kip848 --bootstrap HOST:PORT
//! kavka-bench compaction --bootstrap HOST:PORT --broker-log FILE [--phase a|b|ab] [--mib 500]
//!             [--rounds 3] [--dirty-mib 500] [--produce-secs S] (see compaction.rs)
//! kavka-bench failover --cluster-dir DIR --bootstrap HOST:PORT,... [--victim leader|leader-controller]
//!             [--rate 200] [--warmup-secs 3] [--after-secs 2] [--timeout-secs 60] (see failover.rs)
//! ```
//! `fetch-raw` reads every partition from offset 0 to its end with plain Fetch v12 requests
//! (8 MiB per partition, one connection, no decoding of records): the broker's read path
//! without a client library's per-record work.
//! Each run prints one line of `key=value` pairs (parsed by `bench/run.sh`).
//! The topic must exist; produce spreads records over its partitions (null keys).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

mod compaction;
mod failover;
mod group;

/// Parsed `--key value` options.
struct Args {
    cmd: String,
    opts: HashMap<String, String>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut it = std::env::args().skip(1);
        let cmd = it.next().ok_or("missing command: produce | consume")?;
        let mut opts = HashMap::new();
        while let Some(k) = it.next() {
            let key = k
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --option, got {k}"))?;
            let v = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            opts.insert(key.to_string(), v);
        }
        Ok(Args { cmd, opts })
    }

    fn get(&self, k: &str) -> Result<&str, String> {
        self.opts
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("missing --{k}"))
    }

    fn num(&self, k: &str) -> Result<u64, String> {
        self.get(k)?.parse().map_err(|e| format!("--{k}: {e}"))
    }

    fn num_or(&self, k: &str, default: u64) -> Result<u64, String> {
        match self.opts.get(k) {
            Some(v) => v.parse().map_err(|e| format!("--{k}: {e}")),
            None => Ok(default),
        }
    }
}

/// Records every delivery's latency. Deliveries are reported on librdkafka's polling thread
/// only, so the mutex is uncontended.
struct LatencyContext {
    start: Instant,
    latencies_us: Mutex<Vec<u32>>,
    errors: AtomicU64,
}

impl ClientContext for LatencyContext {}

impl ProducerContext for LatencyContext {
    /// Send time in nanoseconds since `start`.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        if result.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let now = self.start.elapsed().as_nanos() as u64;
        let us = now.saturating_sub(sent_ns as u64) / 1000;
        if let Ok(mut v) = self.latencies_us.lock() {
            v.push(us.min(u32::MAX as u64) as u32);
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

fn produce(a: &Args) -> Result<(), String> {
    let bootstrap = a.get("bootstrap")?;
    let topic = a.get("topic")?;
    let size = a.num("size")? as usize;
    let count = a.num("count")?;
    let acks = a.get("acks")?;
    let ctx = LatencyContext {
        start: Instant::now(),
        latencies_us: Mutex::new(Vec::with_capacity(count as usize)),
        errors: AtomicU64::new(0),
    };
    let mut cfg = ClientConfig::new();
    apply_env_conf(&mut cfg, "KAVKA_BENCH_CLIENT_CONF")?;
    let producer: ThreadedProducer<LatencyContext> = cfg
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("compression.type", "none")
        .set("linger.ms", a.get("linger-ms").unwrap_or("5"))
        .set("batch.size", a.get("batch-size").unwrap_or("1000000"))
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "120000")
        .create_with_context(ctx)
        .map_err(|e| format!("create producer: {e}"))?;

    // Distinct but cheap payloads: a counter stamped into a fixed buffer.
    let mut payload = vec![b'x'; size];
    // With --rate, records are paced (records per second) so that latency is measured below
    // saturation instead of being dominated by time queued in the client.
    let rate = a
        .opts
        .get("rate")
        .map(|r| r.parse::<u64>())
        .transpose()
        .map_err(|e| format!("--rate: {e}"))?;
    let t0 = Instant::now();
    for i in 0..count {
        if let Some(rate) = rate.filter(|r| *r > 0) {
            let due = t0 + Duration::from_secs_f64(i as f64 / rate as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let stamp = i.to_le_bytes();
        let n = stamp.len().min(size);
        payload[..n].copy_from_slice(&stamp[..n]);
        let sent_ns = producer.context().start.elapsed().as_nanos() as usize;
        let mut rec =
            BaseRecord::<(), [u8], usize>::with_opaque_to(topic, sent_ns).payload(&payload);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => return Err(format!("send: {e}")),
            }
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .map_err(|e| format!("flush: {e}"))?;
    let secs = t0.elapsed().as_secs_f64();
    let ctx = producer.context();
    let mut lat = ctx
        .latencies_us
        .lock()
        .map_err(|_| "latency lock poisoned")?
        .clone();
    lat.sort_unstable();
    let bytes = (count as usize * size) as f64;
    println!(
        "mode=produce records={count} size={size} acks={acks} rate={} secs={secs:.3} \
         rec_per_s={:.0} mib_per_s={:.1} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} errors={}",
        rate.map_or("max".to_string(), |r| r.to_string()),
        count as f64 / secs,
        bytes / secs / 1048576.0,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        ctx.errors.load(Ordering::Relaxed)
    );
    Ok(())
}

/// Prints librdkafka's log lines (warnings and errors, plus debug contexts selected with
/// `KAVKA_BENCH_DEBUG`) to stderr, with a timestamp.
struct StderrLogContext;

impl ClientContext for StderrLogContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        eprintln!("{t:.3} {level:?} {fac} {msg}");
    }
}

impl rdkafka::consumer::ConsumerContext for StderrLogContext {}

/// The fetch settings every consumer of the benchmark shares, so that `consume`, and both
/// variants of `group-vs-assign`, differ only in how partitions are obtained.
fn consumer_base_config(bootstrap: &str) -> Result<ClientConfig, String> {
    let mut cfg = ClientConfig::new();
    if let Ok(debug) = std::env::var("KAVKA_BENCH_DEBUG") {
        // The rdkafka crate caps librdkafka's log level at the `log` crate's, which is off here.
        cfg.set("debug", debug)
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    cfg.set("bootstrap.servers", bootstrap)
        .set("enable.partition.eof", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "8388608")
        .set("queued.max.messages.kbytes", "262144");
    apply_env_conf(&mut cfg, "KAVKA_BENCH_CLIENT_CONF")?;
    // Extra settings for experiments: KAVKA_BENCH_CONSUMER_CONF="key=value,key=value".
    apply_env_conf(&mut cfg, "KAVKA_BENCH_CONSUMER_CONF")?;
    Ok(cfg)
}

/// Client settings from the environment variable `var` ("key=value,key=value"):
/// `KAVKA_BENCH_CLIENT_CONF` (every client: e.g. `security.protocol`, `ssl.ca.location`, SASL) and
/// `KAVKA_BENCH_CONSUMER_CONF` (consumers only).
fn apply_env_conf(cfg: &mut ClientConfig, var: &str) -> Result<(), String> {
    if let Ok(extra) = std::env::var(var) {
        for kv in extra.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("bad {var} entry {kv}"))?;
            cfg.set(k, v);
        }
    }
    Ok(())
}

fn consume(a: &Args) -> Result<(), String> {
    let bootstrap = a.get("bootstrap")?;
    let topic = a.get("topic")?;
    let partitions = a.num("partitions")? as i32;
    let count = a.num("count")?;
    let mut cfg = consumer_base_config(bootstrap)?;
    // librdkafka refuses assign() without a group.id; the group is never joined.
    cfg.set("group.id", "kavka-bench-assign-only")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer<StderrLogContext> = cfg
        .create_with_context(StderrLogContext)
        .map_err(|e| format!("create consumer: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| format!("assign: {e}"))?;
    }
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(600);
    let (mut n, mut bytes) = (0u64, 0u64);
    let progress = std::env::var_os("KAVKA_BENCH_PROGRESS").is_some();
    let mut next_report = t0 + Duration::from_secs(1);
    while n < count {
        if progress && Instant::now() >= next_report {
            eprintln!("{:.1}s: {n} records", t0.elapsed().as_secs_f64());
            next_report += Duration::from_secs(1);
        }
        if Instant::now() > deadline {
            return Err(format!("consumed only {n} of {count} records"));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                n += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => return Err(format!("consume: {e}")),
            None => {}
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "mode=consume records={n} secs={secs:.3} rec_per_s={:.0} mib_per_s={:.1}",
        n as f64 / secs,
        bytes as f64 / secs / 1048576.0
    );
    Ok(())
}

fn create_topic(a: &Args) -> Result<(), String> {
    let configs = match a.opts.get("config") {
        Some(list) => parse_config_list(list)?,
        None => Vec::new(),
    };
    create_topic_with(
        a.get("bootstrap")?,
        a.get("topic")?,
        a.num("partitions")? as i32,
        a.num_or("replication-factor", 1)? as i32,
        &configs,
    )
}

/// `key=value,key=value` (topic configs of `create-topic --config`).
fn parse_config_list(list: &str) -> Result<Vec<(String, String)>, String> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("bad --config entry {kv} (want key=value)"))
        })
        .collect()
}

fn create_topic_named(bootstrap: &str, topic: &str, partitions: i32) -> Result<(), String> {
    create_topic_with(bootstrap, topic, partitions, 1, &[])
}

/// Creates `topic` with `partitions` partitions of `replication_factor` replicas (placed by the
/// broker) and the given topic configs.
fn create_topic_with(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(String, String)],
) -> Result<(), String> {
    let mut new_topic = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    for (k, v) in configs {
        new_topic = new_topic.set(k, v);
    }
    create_topics(bootstrap, &[new_topic])
}

/// Sends one CreateTopics request and fails if any topic was not created.
fn create_topics(bootstrap: &str, topics: &[NewTopic<'_>]) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| format!("create admin client: {e}"))?;
    let res = futures_executor::block_on(admin.create_topics(
        topics,
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))
    .map_err(|e| format!("CreateTopics: {e}"))?;
    for r in res {
        r.map_err(|(t, e)| format!("create {t}: {e}"))?;
    }
    Ok(())
}

/// One request/response exchange on a blocking connection.
fn raw_request<R: kafka_protocol::protocol::Request>(
    stream: &mut std::net::TcpStream,
    correlation_id: i32,
    version: i16,
    req: &R,
) -> Result<(R::Response, usize), String> {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::{RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
    use std::io::{Read, Write};
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("kavka-bench")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(version))
        .map_err(|e| e.to_string())?;
    req.encode(&mut body, version).map_err(|e| e.to_string())?;
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    stream.write_all(&frame).map_err(|e| e.to_string())?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(|e| e.to_string())?;
    let len = i32::from_be_bytes(len);
    if !(0..=256 << 20).contains(&len) {
        return Err(format!("bad response length {len}"));
    }
    let mut buf = vec![0u8; len as usize];
    stream.read_exact(&mut buf).map_err(|e| e.to_string())?;
    let mut bytes = bytes::Bytes::from(buf);
    ResponseHeader::decode(&mut bytes, R::Response::header_version(version))
        .map_err(|e| e.to_string())?;
    let resp = R::Response::decode(&mut bytes, version).map_err(|e| e.to_string())?;
    Ok((resp, len as usize))
}

/// The offset after the last complete record batch in `records`, if any (reads only the
/// batch headers: base offset at 0, length at 8, last offset delta at 23).
fn next_offset_after(records: &[u8]) -> Option<i64> {
    let mut pos = 0usize;
    let mut next = None;
    while pos + 27 <= records.len() {
        let base = i64::from_be_bytes(records[pos..pos + 8].try_into().ok()?);
        let len = i32::from_be_bytes(records[pos + 8..pos + 12].try_into().ok()?);
        let end = pos + 12 + usize::try_from(len).ok()?;
        if end > records.len() {
            break;
        }
        let delta = i32::from_be_bytes(records[pos + 23..pos + 27].try_into().ok()?);
        next = Some(base + delta as i64 + 1);
        pos = end;
    }
    next
}

fn fetch_raw(a: &Args) -> Result<(), String> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let topic = a.get("topic")?.to_string();
    let partitions = a.num("partitions")? as i32;
    let mut stream =
        std::net::TcpStream::connect(a.get("bootstrap")?).map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut offsets = vec![0i64; partitions as usize];
    let mut done = vec![false; partitions as usize];
    let (mut bytes, mut requests) = (0u64, 0i32);
    let t0 = Instant::now();
    while done.iter().any(|d| !d) {
        let parts = (0..partitions)
            .filter(|p| !done[*p as usize])
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(offsets[p as usize])
                    .with_partition_max_bytes(8 << 20)
                    .with_current_leader_epoch(-1)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
            })
            .collect();
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(64 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                .with_partitions(parts)]);
        requests += 1;
        let (resp, _) = raw_request(&mut stream, requests, 12, &req)?;
        for t in &resp.responses {
            for p in &t.partitions {
                let i = p.partition_index as usize;
                if p.error_code != 0 || i >= done.len() {
                    return Err(format!("fetch partition {}: error {}", i, p.error_code));
                }
                let recs = p.records.as_deref().unwrap_or_default();
                bytes += recs.len() as u64;
                match next_offset_after(recs) {
                    Some(next) => offsets[i] = next,
                    None => done[i] = true,
                }
                if offsets[i] >= p.high_watermark {
                    done[i] = true;
                }
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "mode=fetch-raw requests={requests} bytes={bytes} secs={secs:.3} mib_per_s={:.1}",
        bytes as f64 / secs / 1048576.0
    );
    Ok(())
}

fn main() {
    let res = Args::parse().and_then(|a| match a.cmd.as_str() {
        "produce" => produce(&a),
        "consume" => consume(&a),
        "create-topic" => create_topic(&a),
        "fetch-raw" => fetch_raw(&a),
        "group-vs-assign" => group::group_vs_assign(&a),
        "rebalance" => group::rebalance(&a),
        "has-kip848" => group::has_kip848(&a),
        "compaction" => compaction::compaction(&a),
        "failover" => failover::failover(&a),
        other => Err(format!("unknown command {other}")),
    });
    if let Err(e) = res {
        eprintln!("kavka-bench: {e}");
        std::process::exit(1);
    }
}
