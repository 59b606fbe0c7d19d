//! `compaction`: the log cleaner's throughput, and what it costs produce on other topics.
//!
//! Phase A preloads a compacted topic (1 partition) with 1 KiB records whose keys are drawn
//! uniformly from a set of 10% of the record count, while `min.compaction.lag.ms` (one hour)
//! keeps the cleaner off it; then it lowers the lag to 0 with AlterConfigs, so that the whole
//! dirty section is cleaned in one measured window, and reads the cleaner's figures from the
//! broker's "log compacted" log lines (the broker's log file is an argument).
//!
//! Phase B measures produce throughput to a fresh non-compacted topic for a fixed time, with
//! the cleaner idle and while it cleans a freshly loaded dirty topic, alternating which comes
//! first each round, and reports the drop.
//!
//! The broker should run with a short `log.cleaner.backoff.ms` (run.sh: 100), so that the
//! cleaner notices the lowered lag at once: with Kafka's 15 s default the trigger would wait
//! for the cleaner's sleep.

use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::{create_topic_named, Args};

/// Long enough that nothing loaded in a run becomes cleanable before the trigger.
const HOLD_LAG_MS: &str = "3600000";

/// Counts acknowledged records and failures.
#[derive(Default)]
struct CountingContext {
    acked: AtomicU64,
    errors: AtomicU64,
}

impl ClientContext for CountingContext {}

impl ProducerContext for CountingContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.errors.fetch_add(1, Ordering::Relaxed);
        } else {
            self.acked.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The core benchmark's producer settings, but with the client queue capped at 64 MiB: a
/// time-bounded run must not leave a large backlog to flush after its window.
fn producer(bootstrap: &str, acks: &str) -> Result<ThreadedProducer<CountingContext>, String> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("compression.type", "none")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "65536")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "120000")
        .create_with_context(CountingContext::default())
        .map_err(|e| format!("create producer: {e}"))
}

/// Sends one record, waiting while the client queue is full.
fn send(
    p: &ThreadedProducer<CountingContext>,
    mut rec: BaseRecord<'_, [u8], [u8], ()>,
) -> Result<(), String> {
    loop {
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => return Err(format!("send: {e}")),
        }
    }
}

fn finish(p: &ThreadedProducer<CountingContext>, what: &str) -> Result<(), String> {
    p.flush(Duration::from_secs(300))
        .map_err(|e| format!("{what}: flush: {e}"))?;
    let errors = p.context().errors.load(Ordering::Relaxed);
    if errors > 0 {
        return Err(format!("{what}: {errors} records failed"));
    }
    Ok(())
}

/// splitmix64: a fixed-seed generator, so every run draws the same key sequence.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Produces `records` records of `size` value bytes with keys `key-NNNNNNNNNN` drawn uniformly
/// from `unique` keys. Returns the seconds taken.
fn load_keyed(
    bootstrap: &str,
    topic: &str,
    records: u64,
    size: usize,
    unique: u64,
    seed: u64,
) -> Result<f64, String> {
    let p = producer(bootstrap, "1")?;
    let mut rng = SplitMix(seed);
    let mut value = vec![b'v'; size];
    let mut key = *b"key-0000000000";
    let t0 = Instant::now();
    for i in 0..records {
        let mut k = rng.next() % unique;
        for d in key[4..].iter_mut().rev() {
            *d = b'0' + (k % 10) as u8;
            k /= 10;
        }
        let stamp = i.to_le_bytes();
        let n = stamp.len().min(size);
        value[..n].copy_from_slice(&stamp[..n]);
        send(&p, BaseRecord::to(topic).key(&key[..]).payload(&value[..]))?;
    }
    finish(&p, "load")?;
    Ok(t0.elapsed().as_secs_f64())
}

/// One time-bounded produce run.
struct ProduceRun {
    /// CPU use during the run (CpuTicks::describe_since).
    cpu: String,
    start: Instant,
    end: Instant,
    /// The same two moments in Unix seconds, to compare with the broker's log timestamps.
    start_unix: f64,
    end_unix: f64,
    bytes: u64,
}

impl ProduceRun {
    fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / (self.end - self.start).as_secs_f64() / 1048576.0
    }
}

/// CPU time so far, in clock ticks (USER_HZ): the whole machine (busy, all), the broker's
/// process (if its pid is known) and this one. The machine is shared, so every produce window
/// reports how much CPU went to neither the broker nor this load generator.
#[derive(Clone, Copy, Default)]
struct CpuTicks {
    machine_busy: u64,
    machine_all: u64,
    broker: u64,
    generator: u64,
}

/// utime + stime of a process, from /proc/PID/stat (fields 14 and 15; the command name in
/// parentheses may hold spaces, so count from its closing parenthesis).
fn process_ticks(pid: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return 0;
    };
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)
}

impl CpuTicks {
    fn now(broker_pid: Option<&str>) -> CpuTicks {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        // "cpu  user nice system idle iowait irq softirq steal ..."; idle and iowait are not busy.
        let v: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let all: u64 = v.iter().take(8).sum();
        let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
        CpuTicks {
            machine_busy: all - idle,
            machine_all: all,
            broker: broker_pid.map_or(0, process_ticks),
            generator: process_ticks("self"),
        }
    }

    /// `cpu_busy_pct` is of the whole machine (100 = every core busy); the others are in cores
    /// (1.00 = one core).
    fn describe_since(&self, start: &CpuTicks) -> String {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let all = (self.machine_all - start.machine_all).max(1) as f64;
        let busy = (self.machine_busy - start.machine_busy) as f64;
        let broker = (self.broker - start.broker) as f64;
        let generator = (self.generator - start.generator) as f64;
        format!(
            "cpu_busy_pct={:.0} broker_cores={:.2} generator_cores={:.2} other_cores={:.2}",
            100.0 * busy / all,
            cores * broker / all,
            cores * generator / all,
            (cores * (busy - broker - generator) / all).max(0.0)
        )
    }
}

/// Produces null-keyed records of `size` bytes to `topic` for `secs`, then flushes; the rate
/// counts the flush.
fn produce_for(
    bootstrap: &str,
    topic: &str,
    size: usize,
    secs: f64,
    acks: &str,
    broker_pid: Option<&str>,
) -> Result<ProduceRun, String> {
    let p = producer(bootstrap, acks)?;
    let mut payload = vec![b'x'; size];
    // Connect and learn the leader before the clock starts, as a long-running producer would.
    p.client()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| format!("metadata: {e}"))?;
    let cpu0 = CpuTicks::now(broker_pid);
    let (start, start_unix) = (Instant::now(), unix_now());
    let until = start + Duration::from_secs_f64(secs);
    let mut i = 0u64;
    while Instant::now() < until {
        // Check the clock only every 256 records: Instant::now() is not free at ~1M records/s.
        for _ in 0..256 {
            let stamp = i.to_le_bytes();
            let n = stamp.len().min(size);
            payload[..n].copy_from_slice(&stamp[..n]);
            send(
                &p,
                BaseRecord::<[u8], [u8], ()>::to(topic).payload(&payload[..]),
            )?;
            i += 1;
        }
    }
    finish(&p, "produce")?;
    let (end, end_unix) = (Instant::now(), unix_now());
    Ok(ProduceRun {
        cpu: CpuTicks::now(broker_pid).describe_since(&cpu0),
        start,
        end,
        start_unix,
        end_unix,
        bytes: i * size as u64,
    })
}

fn admin(bootstrap: &str) -> Result<AdminClient<DefaultClientContext>, String> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| format!("create admin client: {e}"))
}

/// The compacted topic's settings; `lag_ms` is the only one that changes.
fn compacted_configs<'a>(segment_bytes: &'a str, lag_ms: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("cleanup.policy", "compact"),
        ("segment.bytes", segment_bytes),
        ("min.cleanable.dirty.ratio", "0.5"),
        ("min.compaction.lag.ms", lag_ms),
    ]
}

fn create_compacted(bootstrap: &str, topic: &str, segment_bytes: &str) -> Result<(), String> {
    let mut t = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (k, v) in compacted_configs(segment_bytes, HOLD_LAG_MS) {
        t = t.set(k, v);
    }
    let res = futures_executor::block_on(admin(bootstrap)?.create_topics(
        &[t],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))
    .map_err(|e| format!("CreateTopics: {e}"))?;
    for r in res {
        r.map_err(|(t, e)| format!("create {t}: {e}"))?;
    }
    Ok(())
}

/// Lowers `min.compaction.lag.ms` to 0, which makes the whole loaded log cleanable. rdkafka
/// offers only the legacy AlterConfigs, which replaces all of a topic's overrides, so every
/// override is sent again.
fn trigger(bootstrap: &str, topic: &str, segment_bytes: &str) -> Result<(), String> {
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (k, v) in compacted_configs(segment_bytes, "0") {
        alter = alter.set(k, v);
    }
    let res =
        futures_executor::block_on(admin(bootstrap)?.alter_configs(&[alter], &AdminOptions::new()))
            .map_err(|e| format!("AlterConfigs: {e}"))?;
    for r in res {
        r.map_err(|(t, e)| format!("alter {t:?}: {e}"))?;
    }
    Ok(())
}

/// Writes dirty pages back (`sync`), so that every measured window starts with the same
/// (empty) writeback backlog; otherwise the previous load's writeback lands in whichever
/// window comes next.
fn sync_disks(enabled: bool) -> Result<(), String> {
    if enabled {
        let st = std::process::Command::new("sync")
            .status()
            .map_err(|e| format!("sync: {e}"))?;
        if !st.success() {
            return Err(format!("sync: {st}"));
        }
    }
    Ok(())
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Days from 1970-01-01 to a proleptic Gregorian date (eras of 400 years of 146097 days,
/// years counted from March so that the leap day comes last).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Unix seconds of a log line's leading `2026-11-22T18:06:05.533592Z` (tracing's UTC stamp).
fn line_time(line: &str) -> Option<f64> {
    let ts = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, mo, da) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, mi) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    Some((days_from_civil(y, mo, da) * 86400 + h * 3600 + mi * 60) as f64 + sec)
}

/// One "log compacted" line of the broker's log.
#[derive(Clone, Copy)]
struct CleanRound {
    cleaned_up_to: i64,
    read_bytes: u64,
    written_bytes: u64,
    elapsed_ms: u64,
    /// When the round ended (the line's timestamp, Unix seconds).
    end_unix: f64,
    /// When this program saw the line (drives only the wait for quiet).
    seen: Instant,
}

/// Follows the broker's log file from a position on.
struct BrokerLog {
    path: String,
    pos: u64,
    partial: String,
}

impl BrokerLog {
    /// Starts at the file's current end.
    fn open_at_end(path: &str) -> Result<BrokerLog, String> {
        let len = std::fs::metadata(path)
            .map_err(|e| format!("broker log {path}: {e}"))?
            .len();
        Ok(BrokerLog {
            path: path.to_string(),
            pos: len,
            partial: String::new(),
        })
    }

    /// The complete lines appended since the last call.
    fn new_lines(&mut self) -> Result<Vec<String>, String> {
        let mut f = std::fs::File::open(&self.path)
            .map_err(|e| format!("broker log {}: {e}", self.path))?;
        f.seek(SeekFrom::Start(self.pos))
            .map_err(|e| format!("broker log: {e}"))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| format!("broker log: {e}"))?;
        self.pos += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let mut lines: Vec<String> = self.partial.split('\n').map(str::to_string).collect();
        // The last piece is an unfinished line (or empty after a final newline).
        self.partial = lines.pop().unwrap_or_default();
        Ok(lines)
    }

    /// The "log compacted" rounds of `topic` among the new lines.
    fn rounds(&mut self, topic: &str) -> Result<Vec<CleanRound>, String> {
        let seen = Instant::now();
        Ok(self
            .new_lines()?
            .iter()
            .filter_map(|l| parse_round(l, topic, seen))
            .collect())
    }
}

/// Parses `... log compacted topic=T partition=0 cleaned_up_to=N read_bytes=B written_bytes=W
/// elapsed_ms=E` (tracing's human format; the message comes first, then the fields).
fn parse_round(line: &str, topic: &str, seen: Instant) -> Option<CleanRound> {
    let rest = &line[line.find("log compacted ")? + "log compacted ".len()..];
    let field = |k: &str| {
        rest.split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
    };
    if field("topic")? != topic {
        return None;
    }
    Some(CleanRound {
        end_unix: line_time(line)?,
        cleaned_up_to: field("cleaned_up_to")?.parse().ok()?,
        read_bytes: field("read_bytes")?.parse().ok()?,
        written_bytes: field("written_bytes")?.parse().ok()?,
        elapsed_ms: field("elapsed_ms")?.parse().ok()?,
        seen,
    })
}

/// Waits until the cleaner has been quiet about `topic` for `quiet` after at least one round,
/// polling the log every 20 ms.
fn wait_cleaned(
    log: &mut BrokerLog,
    topic: &str,
    quiet: Duration,
    timeout: Duration,
) -> Result<Vec<CleanRound>, String> {
    let t0 = Instant::now();
    let mut rounds: Vec<CleanRound> = Vec::new();
    loop {
        rounds.extend(log.rounds(topic)?);
        if let Some(last) = rounds.last() {
            if last.seen.elapsed() >= quiet {
                return Ok(rounds);
            }
        }
        if t0.elapsed() > timeout {
            return Err(format!(
                "no \"log compacted\" line for {topic} within {timeout:?} (is --broker-log the broker's log, at level info?)"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct CleanStats {
    rounds: usize,
    read_bytes: u64,
    written_bytes: u64,
    elapsed_ms: u64,
    cleaned_up_to: i64,
    /// Trigger to the end of the last round.
    wall_secs: f64,
    /// When the cleaner started on the first round and finished the last (Unix seconds, from
    /// the log lines' timestamps).
    busy_from: f64,
    busy_to: f64,
}

impl CleanStats {
    /// `triggered`: Unix seconds just before the AlterConfigs request.
    fn of(rounds: &[CleanRound], triggered: f64) -> CleanStats {
        let busy_from = rounds
            .first()
            .map_or(triggered, |r| r.end_unix - r.elapsed_ms as f64 / 1000.0);
        let busy_to = rounds.last().map_or(triggered, |r| r.end_unix);
        CleanStats {
            rounds: rounds.len(),
            read_bytes: rounds.iter().map(|r| r.read_bytes).sum(),
            written_bytes: rounds.iter().map(|r| r.written_bytes).sum(),
            elapsed_ms: rounds.iter().map(|r| r.elapsed_ms).sum(),
            cleaned_up_to: rounds.last().map_or(-1, |r| r.cleaned_up_to),
            wall_secs: busy_to - triggered,
            busy_from,
            busy_to,
        }
    }

    /// Bytes of log cleaned (read_bytes: the rewrite pass; the offset map pass reads the dirty
    /// part once more, inside elapsed_ms) per second of cleaning time, in MB (10^6) and MiB.
    fn mb_per_s(&self) -> f64 {
        self.read_bytes as f64 / (self.elapsed_ms.max(1) as f64 / 1000.0) / 1e6
    }

    fn mib_per_s(&self) -> f64 {
        self.mb_per_s() * 1e6 / 1048576.0
    }

    fn wall_mb_per_s(&self) -> f64 {
        self.read_bytes as f64 / self.wall_secs.max(1e-3) / 1e6
    }

    fn describe(&self) -> String {
        format!(
            "clean_rounds={} cleaned_up_to={} read_bytes={} written_bytes={} clean_ms={} \
             clean_mb_per_s={:.1} clean_mib_per_s={:.1} trigger_to_last_s={:.3} wall_mb_per_s={:.1}",
            self.rounds,
            self.cleaned_up_to,
            self.read_bytes,
            self.written_bytes,
            self.elapsed_ms,
            self.mb_per_s(),
            self.mib_per_s(),
            self.wall_secs,
            self.wall_mb_per_s()
        )
    }
}

/// Settings shared by both phases.
struct Settings {
    bootstrap: String,
    broker_log: String,
    size: usize,
    unique_pct: f64,
    segment_bytes: String,
    quiet: Duration,
    sync: bool,
    stamp: u128,
    broker_pid: Option<String>,
}

impl Settings {
    fn records_for(&self, mib: u64) -> u64 {
        (mib * 1048576 / self.size as u64).max(1)
    }

    fn unique_for(&self, records: u64) -> u64 {
        ((records as f64 * self.unique_pct / 100.0).round() as u64).max(1)
    }

    /// Creates a compacted topic and loads it with the cleaner held off; returns its name.
    fn load_dirty(&self, name: &str, mib: u64, seed: u64) -> Result<(String, String), String> {
        let topic = format!("{name}-{}", self.stamp);
        create_compacted(&self.bootstrap, &topic, &self.segment_bytes)?;
        let records = self.records_for(mib);
        let unique = self.unique_for(records);
        let secs = load_keyed(&self.bootstrap, &topic, records, self.size, unique, seed)?;
        let info = format!(
            "records={records} unique_keys={unique} load_secs={secs:.3} load_mib_per_s={:.1}",
            (records * self.size as u64) as f64 / secs / 1048576.0
        );
        Ok((topic, info))
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn fmt_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.1}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Phase A: one dirty topic of `mib` MiB, cleaned in one measured window.
fn phase_a(s: &Settings, mib: u64) -> Result<CleanStats, String> {
    let mut log = BrokerLog::open_at_end(&s.broker_log)?;
    let (topic, info) = s.load_dirty("compact-a", mib, 1)?;
    // Any round before the trigger means the cleaner was not held off during the load.
    let early = log.rounds(&topic)?.len();
    sync_disks(s.sync)?;
    let triggered = unix_now();
    trigger(&s.bootstrap, &topic, &s.segment_bytes)?;
    let rounds = wait_cleaned(&mut log, &topic, s.quiet, Duration::from_secs(600))?;
    let stats = CleanStats::of(&rounds, triggered);
    println!(
        "mode=compaction phase=a topic={topic} mib={mib} size={} {info} early_rounds={early} {}",
        s.size,
        stats.describe()
    );
    Ok(stats)
}

/// Phase B: produce with the cleaner idle and busy, `rounds` times each.
fn phase_b(
    s: &Settings,
    rounds: u64,
    dirty_mib: u64,
    produce_secs: f64,
    partitions: i32,
    acks: &str,
) -> Result<(), String> {
    let (mut idle, mut busy, mut cleaner_mb) = (Vec::new(), Vec::new(), Vec::new());
    let mut min_overlap = 100.0f64;
    for round in 0..rounds {
        let (dirty, info) = s.load_dirty(&format!("compact-b{round}"), dirty_mib, 100 + round)?;
        println!("mode=compaction phase=b round={round} loaded={dirty} {info}");
        // Alternate the order so that neither variant always runs right after the load.
        let busy_first = round % 2 == 1;
        for busy_run in [busy_first, !busy_first] {
            let target = format!(
                "produce-b{round}-{}-{}",
                if busy_run { "busy" } else { "idle" },
                s.stamp
            );
            create_topic_named(&s.bootstrap, &target, partitions)?;
            sync_disks(s.sync)?;
            if !busy_run {
                let run = produce_for(
                    &s.bootstrap,
                    &target,
                    s.size,
                    produce_secs,
                    acks,
                    s.broker_pid.as_deref(),
                )?;
                println!(
                    "mode=compaction phase=b round={round} cleaner=idle secs={:.3} mib_per_s={:.1} {}",
                    (run.end - run.start).as_secs_f64(),
                    run.mib_per_s(),
                    run.cpu
                );
                idle.push(run.mib_per_s());
                continue;
            }
            let mut log = BrokerLog::open_at_end(&s.broker_log)?;
            let triggered = unix_now();
            trigger(&s.bootstrap, &dirty, &s.segment_bytes)?;
            // The cleaner looks for work every log.cleaner.backoff.ms (100 in run.sh), in 50 ms
            // sleeps: give it that long to start.
            std::thread::sleep(Duration::from_millis(150));
            let run = produce_for(
                &s.bootstrap,
                &target,
                s.size,
                produce_secs,
                acks,
                s.broker_pid.as_deref(),
            )?;
            let cleaned = wait_cleaned(&mut log, &dirty, s.quiet, Duration::from_secs(600))?;
            let stats = CleanStats::of(&cleaned, triggered);
            // The share of the produce window during which the cleaner was working.
            let from = run.start_unix.max(stats.busy_from);
            let to = run.end_unix.min(stats.busy_to);
            let overlap = 100.0 * (to - from).max(0.0) / (run.end_unix - run.start_unix);
            min_overlap = min_overlap.min(overlap);
            println!(
                "mode=compaction phase=b round={round} cleaner=busy secs={:.3} mib_per_s={:.1} \
                 overlap_pct={overlap:.0} {} {}",
                (run.end - run.start).as_secs_f64(),
                run.mib_per_s(),
                run.cpu,
                stats.describe()
            );
            busy.push(run.mib_per_s());
            cleaner_mb.push(stats.mb_per_s());
        }
    }
    let (i, b) = (mean(&idle), mean(&busy));
    // Other engineers' work on a shared machine moves both runs of a round alike more often than
    // it moves a whole benchmark, so the rounds' own drops are reported too.
    let paired: Vec<f64> = idle
        .iter()
        .zip(&busy)
        .map(|(i, b)| 100.0 * (i - b) / i)
        .collect();
    let mut sorted = paired.clone();
    sorted.sort_by(f64::total_cmp);
    let median_drop = match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    println!(
        "summary=1 phase=b rounds={rounds} dirty_mib={dirty_mib} produce_secs={produce_secs:.1} \
         partitions={partitions} acks={acks} idle_mib_per_s={i:.1} busy_mib_per_s={b:.1} \
         drop_pct={:.1} median_round_drop_pct={median_drop:.1} round_drops={} \
         min_overlap_pct={min_overlap:.0} busy_clean_mb_per_s={:.1} idle_runs={} \
         busy_runs={}",
        100.0 * (i - b) / i,
        fmt_list(&paired),
        mean(&cleaner_mb),
        fmt_list(&idle),
        fmt_list(&busy)
    );
    Ok(())
}

/// `kavka-bench compaction --bootstrap B --broker-log FILE [--phase a|b|ab] [--mib 500]
/// [--size 1024] [--unique-pct 10] [--segment-bytes 16777216] [--rounds 6] [--dirty-mib 2000]
/// [--produce-secs S] [--partitions 1] [--acks 1] [--quiet-ms 2000] [--sync 1] [--broker-pid PID]`
pub fn compaction(a: &Args) -> Result<(), String> {
    let s = Settings {
        bootstrap: a.get("bootstrap")?.to_string(),
        broker_log: a.get("broker-log")?.to_string(),
        size: a.num_or("size", 1024)? as usize,
        unique_pct: a
            .get("unique-pct")
            .unwrap_or("10")
            .parse()
            .map_err(|e| format!("--unique-pct: {e}"))?,
        segment_bytes: a.num_or("segment-bytes", 16 << 20)?.to_string(),
        quiet: Duration::from_millis(a.num_or("quiet-ms", 2000)?),
        sync: a.num_or("sync", 1)? != 0,
        broker_pid: a.get("broker-pid").ok().map(str::to_string),
        stamp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default(),
    };
    let phase = a.get("phase").unwrap_or("ab");
    let mib = a.num_or("mib", 500)?;
    let mut a_secs = None;
    if phase.contains('a') {
        let st = phase_a(&s, mib)?;
        a_secs = Some(st.elapsed_ms as f64 / 1000.0);
    }
    if phase.contains('b') {
        let dirty_mib = a.num_or("dirty-mib", 2000)?;
        // By default the produce window is 60% of phase A's cleaning time for the same load
        // (scaled to --dirty-mib), so that it lies within the cleaning even when produce slows
        // the cleaner down or the cleaner starts late (overlap_pct checks it).
        let produce_secs = match a.get("produce-secs") {
            Ok(v) => v.parse().map_err(|e| format!("--produce-secs: {e}"))?,
            Err(_) => a_secs
                .map(|t| (0.6 * t * dirty_mib as f64 / mib as f64).max(1.0))
                .unwrap_or(3.0),
        };
        phase_b(
            &s,
            a.num_or("rounds", 6)?,
            dirty_mib,
            produce_secs,
            a.num_or("partitions", 1)? as i32,
            a.get("acks").unwrap_or("1"),
        )?;
    }
    Ok(())
}
