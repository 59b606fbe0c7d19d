//! `failover`: how long produce is interrupted when a partition leader is killed with SIGKILL.
//!
//! Runs against a cluster started with `kavka cluster up --dir DIR` (it reads the nodes' pid files,
//! logs and `server.properties` under `DIR/node-<i>/`):
//!
//! 1. finds the active controller: the leader of the highest term in the nodes' "metadata quorum
//!    leader changed" log lines;
//! 2. creates a 1-partition topic with a manual replica assignment whose first (preferred, hence
//!    initial leader) replica is the victim: the controller itself (`--victim leader-controller`) or
//!    the lowest node id that is not the controller (`--victim leader`, the default), and
//!    `min.insync.replicas=2`; waits until Metadata shows the victim leading with every replica in
//!    sync;
//! 3. produces small records (`--size`, default 100 B) with acks=all, `linger.ms=0`, paced at
//!    `--rate` records/s (default 200), and notes every record's send and acknowledgement time;
//! 4. after `--warmup-secs` (default 3) sends SIGKILL to the victim's pid (from its pid file) and
//!    keeps producing until a record sent after the kill is acknowledged, plus `--after-secs`
//!    (default 2), for at most `--timeout-secs` (default 60);
//! 5. prints one `key=value` line:
//!    - `failover_ms`: from the kill to the first successful acknowledgement of a record sent after
//!      the kill (the figure the target is about: a new leader serves produce requests);
//!    - `ack_gap_ms`: the longest time without any successful acknowledgement around the kill (from
//!      the last acknowledgement before it to the next one, which may be of a record sent before
//!      the kill and retried by the client);
//!    - `fenced_ms`: from the kill to the controller's "brokers fenced: session expired" log line
//!      (the moment the controller moves the dead broker's leaderships; the client still has to
//!      learn the new leader from Metadata and retry: `client_ms` = failover_ms - fenced_ms);
//!    - `controller_ms`: from the kill to the first "metadata quorum leader changed" line naming
//!      another node (controller failover only);
//!    - `target_ms` (= broker.session.timeout.ms + 2000, read from `DIR/node-1/server.properties`,
//!      9000 by default) and `met`.
//!
//! The producer uses librdkafka's defaults for retries and metadata refresh (`retry.backoff.ms=100`,
//! `retry.backoff.max.ms=1000`); `--producer-conf key=value,...` adds settings.
//! `KAVKA_BENCH_LOG=1` prints librdkafka's log lines (with `KAVKA_BENCH_DEBUG=contexts`, its debug
//! output) to stderr.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::{create_topics, parse_config_list, Args};

const NOT_YET: u64 = u64::MAX;

/// Every acknowledgement (sequence number, time since `start` in ns, success), and the first
/// successful one of a record sent after the kill.
struct AckContext {
    start: Instant,
    acks: Mutex<Vec<(u64, u64, bool)>>,
    /// The first sequence number sent after the kill (`NOT_YET` before the kill).
    first_seq_after_kill: AtomicU64,
    /// ns since `start` of the first successful acknowledgement of a record with a sequence number
    /// >= `first_seq_after_kill` (`NOT_YET` until then).
    first_ack_after_kill_ns: AtomicU64,
    log: bool,
}

impl ClientContext for AckContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        if self.log {
            eprintln!("{:.3} {level:?} {fac} {msg}", wall_secs(SystemTime::now()));
        }
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let now = self.start.elapsed().as_nanos() as u64;
        let ok = result.is_ok();
        if ok && seq as u64 >= self.first_seq_after_kill.load(Ordering::Acquire) {
            let _ = self.first_ack_after_kill_ns.compare_exchange(
                NOT_YET,
                now,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        if let Ok(mut v) = self.acks.lock() {
            v.push((seq as u64, now, ok));
        }
    }
}

fn wall_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds of a log line's leading `2026-11-23T00:16:30.167200Z` timestamp.
fn log_time(line: &str) -> Option<f64> {
    let ts = line.split_whitespace().next()?.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, mo, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let s: f64 = t.next()?.parse().ok()?;
    Some((days_from_civil(y, mo, dd) * 86_400 + h * 3600 + mi * 60) as f64 + s)
}

/// The integer after `key` in `line` (e.g. `leader=Some(` or `term=`).
fn int_after(line: &str, key: &str) -> Option<i64> {
    let rest = &line[line.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The node ids of a `cluster up` directory (its `node-<i>` subdirectories), sorted.
fn node_ids(dir: &Path) -> Result<Vec<i32>, String> {
    let mut ids: Vec<i32> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("node-")?.parse().ok())
        .collect();
    ids.sort_unstable();
    if ids.is_empty() {
        return Err(format!("no node-<i> directories in {}", dir.display()));
    }
    Ok(ids)
}

fn node_dir(dir: &Path, id: i32) -> PathBuf {
    dir.join(format!("node-{id}"))
}

fn read_log(dir: &Path, id: i32) -> String {
    std::fs::read(node_dir(dir, id).join("kavka.log"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// "metadata quorum leader changed" lines of every node: (time, term, leader).
fn quorum_changes(dir: &Path, ids: &[i32]) -> Vec<(f64, i64, i32)> {
    let mut out = Vec::new();
    for &id in ids {
        for line in read_log(dir, id).lines() {
            if !line.contains("metadata quorum leader changed") {
                continue;
            }
            if let (Some(t), Some(term), Some(leader)) = (
                log_time(line),
                int_after(line, "term="),
                int_after(line, "leader=Some("),
            ) {
                out.push((t, term, leader as i32));
            }
        }
    }
    out
}

/// The active controller: the leader of the highest term any node logged.
fn active_controller(dir: &Path, ids: &[i32]) -> Option<i32> {
    quorum_changes(dir, ids)
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(a.0.total_cmp(&b.0)))
        .map(|(_, _, leader)| leader)
}

/// `broker.session.timeout.ms` from node 1's `server.properties` (Kafka's default 9000 if unset).
fn session_timeout_ms(dir: &Path, ids: &[i32]) -> u64 {
    let text = std::fs::read_to_string(node_dir(dir, ids[0]).join("server.properties"))
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("broker.session.timeout.ms"))
        .filter_map(|rest| {
            rest.trim_start()
                .strip_prefix(['=', ':'])?
                .trim()
                .parse()
                .ok()
        })
        .next_back()
        .unwrap_or(9000)
}

/// The pid in `node-<id>/pid`, if it is a live process whose command line mentions kavka.
fn live_pid(dir: &Path, id: i32) -> Result<i32, String> {
    let path = node_dir(dir, id).join("pid");
    let pid: i32 = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if pid <= 0 || !cmdline.windows(5).any(|w| w == b"kavka") {
        return Err(format!(
            "{}: pid {pid} is not a live kavka process",
            path.display()
        ));
    }
    Ok(pid)
}

/// (leader, in-sync replica count) of partition 0 of `topic`, as Metadata reports it.
fn leader_of(p: &ThreadedProducer<AckContext>, topic: &str) -> Result<(i32, usize), String> {
    let md = p
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .map_err(|e| format!("metadata: {e}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or("topic missing from metadata")?;
    let part = t
        .partitions()
        .iter()
        .find(|p| p.id() == 0)
        .ok_or("partition 0 missing from metadata")?;
    Ok((part.leader(), part.isr().len()))
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

pub fn failover(a: &Args) -> Result<(), String> {
    let dir = PathBuf::from(a.get("cluster-dir")?);
    let bootstrap = a.get("bootstrap")?;
    let victim_kind = a.get("victim").unwrap_or("leader");
    let rate = a.num_or("rate", 200)?.max(1);
    let size = a.num_or("size", 100)? as usize;
    let warmup = Duration::from_secs(a.num_or("warmup-secs", 3)?);
    let after = Duration::from_secs(a.num_or("after-secs", 2)?);
    let timeout = Duration::from_secs(a.num_or("timeout-secs", 60)?);
    let min_isr = a.num_or("min-insync", 2)?;
    let ids = node_ids(&dir)?;
    let session_ms = session_timeout_ms(&dir, &ids);

    // 1. The active controller.
    let wait_until = Instant::now() + Duration::from_secs(30);
    let controller = loop {
        if let Some(c) = active_controller(&dir, &ids) {
            break c;
        }
        if Instant::now() > wait_until {
            return Err("no \"metadata quorum leader changed\" line in the node logs".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // 2. The victim leads the topic's only partition.
    let victim = match victim_kind {
        "leader-controller" => controller,
        "leader" => *ids
            .iter()
            .find(|&&id| id != controller)
            .ok_or("a one-node cluster has no non-controller node")?,
        other => {
            return Err(format!(
                "--victim {other}: want leader or leader-controller"
            ))
        }
    };
    let mut assignment = vec![victim];
    assignment.extend(ids.iter().copied().filter(|&id| id != victim));
    let topic = match a.opts.get("topic") {
        Some(t) => t.clone(),
        None => format!(
            "failover-{victim_kind}-{}",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        ),
    };
    let replicas = [&assignment[..]];
    let min_isr_s = min_isr.to_string();
    create_topics(
        bootstrap,
        &[
            NewTopic::new(&topic, 1, TopicReplication::Variable(&replicas))
                .set("min.insync.replicas", &min_isr_s),
        ],
    )?;

    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("compression.type", "none")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "120000");
    if let Ok(debug) = std::env::var("KAVKA_BENCH_DEBUG") {
        cfg.set("debug", debug)
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    if let Some(extra) = a.opts.get("producer-conf") {
        for (k, v) in parse_config_list(extra)? {
            cfg.set(k, v);
        }
    }
    let ctx = AckContext {
        start: Instant::now(),
        acks: Mutex::new(Vec::new()),
        first_seq_after_kill: AtomicU64::new(NOT_YET),
        first_ack_after_kill_ns: AtomicU64::new(NOT_YET),
        log: std::env::var_os("KAVKA_BENCH_LOG").is_some(),
    };
    let producer: ThreadedProducer<AckContext> = cfg
        .create_with_context(ctx)
        .map_err(|e| format!("create producer: {e}"))?;
    let wait_until = Instant::now() + Duration::from_secs(30);
    loop {
        match leader_of(&producer, &topic) {
            Ok((leader, isr)) if leader == victim && isr == ids.len() => break,
            Ok((leader, isr)) if Instant::now() > wait_until => {
                return Err(format!(
                "partition 0 of {topic}: leader {leader} with {isr} in sync, want {victim} with {}",
                ids.len()
            ))
            }
            Err(e) if Instant::now() > wait_until => return Err(e),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }

    // 3.-4. Produce, kill, produce on.
    let start = producer.context().start;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut payload = vec![b'x'; size];
    let t0 = Instant::now();
    let mut kill: Option<(u64, SystemTime, i32, bool)> = None; // (ns since start, wall, pid, was controller)
    let mut seq: u64 = 0;
    let mut end: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) || now - t0 > warmup + timeout {
            break;
        }
        if kill.is_none() && now - t0 >= warmup {
            let acked = producer.context().acks.lock().map(|v| v.len()).unwrap_or(0);
            if acked == 0 {
                return Err("no record acknowledged during the warm-up".into());
            }
            let pid = live_pid(&dir, victim)?;
            // The controller may have moved since the topic was created: report what it was.
            let was_controller = active_controller(&dir, &ids) == Some(victim);
            producer
                .context()
                .first_seq_after_kill
                .store(seq, Ordering::Release);
            let wall = SystemTime::now();
            let ns = start.elapsed().as_nanos() as u64;
            // SAFETY: kill(2) on the pid of a node of the cluster this run was pointed at.
            if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
                return Err(format!(
                    "kill -9 {pid}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            kill = Some((ns, wall, pid, was_controller));
        }
        if end.is_none()
            && producer
                .context()
                .first_ack_after_kill_ns
                .load(Ordering::Acquire)
                != NOT_YET
        {
            end = Some(Instant::now() + after);
        }
        let due = t0 + interval.mul_f64(seq as f64);
        if due > now {
            std::thread::sleep((due - now).min(Duration::from_millis(5)));
            continue;
        }
        let stamp = seq.to_le_bytes();
        let n = stamp.len().min(size);
        payload[..n].copy_from_slice(&stamp[..n]);
        let mut rec = BaseRecord::<(), [u8], usize>::with_opaque_to(&topic, seq as usize)
            .payload(&payload)
            .partition(0);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(format!("send: {e}")),
            }
        }
        seq += 1;
    }
    let flushed = producer.flush(Duration::from_secs(30)).is_ok();
    let (kill_ns, kill_wall, pid, was_controller) = kill.ok_or("the victim was never killed")?;
    let new_leader = leader_of(&producer, &topic)
        .map(|(l, _)| l.to_string())
        .unwrap_or_else(|_| "unknown".into());

    // 5. Figures.
    let ctx = producer.context();
    let acks = ctx.acks.lock().map_err(|_| "ack lock poisoned")?.clone();
    let errors = acks.iter().filter(|a| !a.2).count();
    let mut ok_times: Vec<u64> = acks.iter().filter(|a| a.2).map(|a| a.1).collect();
    ok_times.sort_unstable();
    let first_after = ctx.first_ack_after_kill_ns.load(Ordering::Acquire);
    let failover_ms = (first_after != NOT_YET).then(|| ms(first_after - kill_ns));
    let ack_gap_ms = ok_times
        .windows(2)
        .filter(|w| w[1] > kill_ns)
        .map(|w| w[1] - w[0])
        .max()
        .map(ms);
    let kill_wall_s = wall_secs(kill_wall);
    let others: Vec<i32> = ids.iter().copied().filter(|&id| id != victim).collect();
    let mut fenced: Option<f64> = None;
    for &id in &others {
        for line in read_log(&dir, id).lines() {
            if line.contains("brokers fenced: session expired") {
                if let Some(t) = log_time(line).filter(|t| *t >= kill_wall_s) {
                    fenced = Some(fenced.map_or(t, |f| f.min(t)));
                }
            }
        }
    }
    let new_controller = quorum_changes(&dir, &others)
        .into_iter()
        .filter(|(t, _, leader)| *t >= kill_wall_s && *leader != victim)
        .map(|(t, _, _)| t)
        .reduce(f64::min);
    let since_kill = |t: Option<f64>| t.map(|t| (t - kill_wall_s) * 1000.0);
    let fenced_ms = since_kill(fenced);
    let fmt = |v: Option<f64>| v.map_or("none".to_string(), |v| format!("{v:.0}"));
    let target_ms = session_ms + 2000;
    let met = match failover_ms {
        Some(f) if f <= target_ms as f64 => "yes",
        _ => "no",
    };
    println!(
        "mode=failover victim={victim_kind} controller={controller} killed={victim} pid={pid} \
         killed_was_controller={} session_timeout_ms={session_ms} failover_ms={} ack_gap_ms={} \
         fenced_ms={} client_ms={} controller_ms={} target_ms={target_ms} met={met} \
         new_leader={new_leader} topic={topic} rate={rate} sent={seq} acked={} errors={errors} \
         unacked={} flushed={flushed}",
        if was_controller { "yes" } else { "no" },
        fmt(failover_ms),
        fmt(ack_gap_ms),
        fmt(fenced_ms),
        fmt(failover_ms.zip(fenced_ms).map(|(f, d)| f - d)),
        fmt(since_kill(new_controller)),
        ok_times.len(),
        seq as usize - acks.len(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_log_timestamps() {
        let t = log_time("2026-11-23T00:16:30.167200Z  INFO kavka::controller::quorum: x").unwrap();
        // 2026-11-23 is day 20780 since the epoch.
        assert!((t - (20_780.0 * 86_400.0 + 16.0 * 60.0 + 30.1672)).abs() < 1e-6);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn reads_quorum_lines() {
        let l = "2026-11-23T00:16:30.159494Z  INFO kavka::controller::quorum: metadata quorum leader changed leader=Some(3) term=12 this_node=3";
        assert_eq!(int_after(l, "leader=Some("), Some(3));
        assert_eq!(int_after(l, "term="), Some(12));
    }
}
