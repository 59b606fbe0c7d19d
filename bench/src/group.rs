//! Consumer-group benchmarks.
//!
//! `group-vs-assign` checks that group membership stays off the fetch path: the same preloaded
//! topic is read to its end by an assign()-based consumer and by a subscribe()-based group
//! member (auto commit on), alternating, and the two throughputs are compared.
//!
//! `rebalance` times how long a group of N members needs until every partition of a topic is
//! owned, then the same after one member joins and after one member leaves.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::{consumer_base_config, create_topic_named, raw_request, Args};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Protocol {
    Classic,
    /// KIP-848 (`group.protocol=consumer`).
    Consumer,
}

impl Protocol {
    fn parse(a: &Args) -> Result<Protocol, String> {
        match a.get("protocol").unwrap_or("classic") {
            "classic" => Ok(Protocol::Classic),
            "consumer" => Ok(Protocol::Consumer),
            other => Err(format!(
                "--protocol: expected classic or consumer, got {other}"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Protocol::Classic => "classic",
            Protocol::Consumer => "consumer",
        }
    }
}

/// librdkafka falls back to the classic protocol only in some versions and fails obscurely in
/// others when the broker lacks ConsumerGroupHeartbeat, so ask the broker first.
fn require_kip848(bootstrap: &str) -> Result<(), String> {
    use kafka_protocol::messages::ApiVersionsRequest;
    let first = bootstrap.split(',').next().unwrap_or(bootstrap);
    let mut stream =
        std::net::TcpStream::connect(first).map_err(|e| format!("connect {first}: {e}"))?;
    let (resp, _) = raw_request(&mut stream, 1, 0, &ApiVersionsRequest::default())?;
    if resp.api_keys.iter().any(|k| k.api_key == 68) {
        Ok(())
    } else {
        Err(
            "--protocol consumer: the broker does not advertise ConsumerGroupHeartbeat \
             (ApiVersions key 68), so it has no KIP-848 support"
                .to_string(),
        )
    }
}

/// `kavka-bench has-kip848`: prints `kip848=yes` or `kip848=no`, for bench/run.sh.
pub fn has_kip848(a: &Args) -> Result<(), String> {
    let yes = require_kip848(a.get("bootstrap")?).is_ok();
    println!("kip848={}", if yes { "yes" } else { "no" });
    Ok(())
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

/// Writes `count` records of `size` bytes with the `produce` command's settings, then returns
/// how many records the partitions hold (the consumers' target, so a lost send cannot hang them).
fn preload(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    size: usize,
    count: u64,
) -> Result<u64, String> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "1")
        .set("compression.type", "none")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("enable.idempotence", "false")
        .create()
        .map_err(|e| format!("create producer: {e}"))?;
    let mut payload = vec![b'x'; size];
    let t0 = Instant::now();
    for i in 0..count {
        let stamp = i.to_le_bytes();
        let n = stamp.len().min(size);
        payload[..n].copy_from_slice(&stamp[..n]);
        let mut rec = BaseRecord::<(), [u8], ()>::to(topic).payload(&payload);
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
    let probe: BaseConsumer = consumer_base_config(bootstrap)?
        .set("group.id", "kavka-bench-watermarks")
        .create()
        .map_err(|e| format!("create consumer: {e}"))?;
    let mut total = 0u64;
    for p in 0..partitions {
        let (lo, hi) = probe
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .map_err(|e| format!("watermarks of partition {p}: {e}"))?;
        total += (hi - lo) as u64;
    }
    eprintln!(
        "[group-vs-assign] preloaded {topic}: {total} records of {size} B in {secs:.1} s ({:.1} MiB/s)",
        (count as usize * size) as f64 / secs / 1048576.0
    );
    Ok(total)
}

/// Counts the auto commits of a group member, to show that commits happened during the run.
#[derive(Default)]
struct CommitCounter {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for CommitCounter {}

impl ConsumerContext for CommitCounter {
    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => self.ok.fetch_add(1, Ordering::Relaxed),
            // "no offset to commit" when nothing was consumed since the last commit: not a failure.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => 0,
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

struct Run {
    bytes: u64,
    /// From assign()/subscribe() to the last record.
    total: Duration,
    /// From the first record to the last.
    streaming: Duration,
    /// From assign()/subscribe() to the first record (for a group member, the join).
    to_first: Duration,
}

impl Run {
    fn mib_s(&self) -> f64 {
        self.bytes as f64 / self.streaming.as_secs_f64() / 1048576.0
    }

    fn mib_s_total(&self) -> f64 {
        self.bytes as f64 / self.total.as_secs_f64() / 1048576.0
    }
}

fn drain<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    start: Instant,
    records: u64,
) -> Result<Run, String> {
    let deadline = start + Duration::from_secs(600);
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut first = None;
    while n < records {
        if Instant::now() > deadline {
            return Err(format!("consumed only {n} of {records} records"));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                first.get_or_insert_with(Instant::now);
                n += 1;
                bytes += m.payload_len() as u64;
            }
            Some(Err(e)) => return Err(format!("consume: {e}")),
            None => {}
        }
    }
    let end = Instant::now();
    let first = first.unwrap_or(end);
    Ok(Run {
        bytes,
        total: end - start,
        streaming: end - first,
        to_first: first - start,
    })
}

fn assign_run(bootstrap: &str, topic: &str, partitions: i32, records: u64) -> Result<Run, String> {
    let consumer: BaseConsumer = consumer_base_config(bootstrap)?
        // librdkafka refuses assign() without a group.id; the group is never joined.
        .set("group.id", "kavka-bench-assign-only")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| format!("create consumer: {e}"))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| format!("assign: {e}"))?;
    }
    let start = Instant::now();
    consumer.assign(&tpl).map_err(|e| format!("assign: {e}"))?;
    drain(&consumer, start, records)
}

fn group_run(
    bootstrap: &str,
    topic: &str,
    group: &str,
    protocol: Protocol,
    commit_interval_ms: u64,
    records: u64,
) -> Result<(Run, u64, u64), String> {
    let mut cfg = consumer_base_config(bootstrap)?;
    cfg.set("group.id", group)
        .set("group.protocol", protocol.name())
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", commit_interval_ms.to_string());
    let consumer: BaseConsumer<CommitCounter> = cfg
        .create_with_context(CommitCounter::default())
        .map_err(|e| format!("create consumer: {e}"))?;
    let start = Instant::now();
    consumer
        .subscribe(&[topic])
        .map_err(|e| format!("subscribe: {e}"))?;
    let run = drain(&consumer, start, records)?;
    let ctx = consumer.context();
    // Counted before close: the commit on close is not part of the consumption.
    let commits = (
        ctx.ok.load(Ordering::Relaxed),
        ctx.failed.load(Ordering::Relaxed),
    );
    drop(consumer);
    Ok((run, commits.0, commits.1))
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

/// The comparison uses medians: on a shared machine one run in several is slowed by other
/// processes, and a mean lets that one run decide the ratio.
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn fmt_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.1}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn group_vs_assign(a: &Args) -> Result<(), String> {
    let bootstrap = a.get("bootstrap")?;
    let partitions = a.num_or("partitions", 8)? as i32;
    let size = a.num_or("size", 1024)? as usize;
    let count = a.num_or("count", 300_000)?;
    let rounds = a.num_or("rounds", 3)?.max(1);
    // librdkafka's default is 5000 ms, which a sub-second run would never reach; committing
    // every 100 ms puts several commits inside each run, a heavier load than the default.
    let commit_ms = a.num_or("commit-interval-ms", 100)?;
    let protocol = Protocol::parse(a)?;
    if protocol == Protocol::Consumer {
        require_kip848(bootstrap)?;
    }
    let stamp = unix_ms();
    let topic = match a.get("topic") {
        Ok(t) => t.to_string(),
        Err(_) => format!("bench-gva-{stamp}"),
    };
    create_topic_named(bootstrap, &topic, partitions)?;
    let records = preload(bootstrap, &topic, partitions, size, count)?;

    let (mut assign, mut group, mut group_total, mut joins) = (vec![], vec![], vec![], vec![]);
    let mut commits = (0u64, 0u64);
    for round in 0..rounds {
        // Alternating which variant goes first cancels any advantage of going second.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for is_group in order {
            if is_group {
                let gid = format!("kavka-bench-gva-{stamp}-{round}");
                let (run, ok, failed) =
                    group_run(bootstrap, &topic, &gid, protocol, commit_ms, records)?;
                println!(
                    "mode=group-vs-assign round={} variant=group protocol={} records={records} \
                     join_ms={:.0} streaming_secs={:.3} mib_per_s={:.1} incl_join_mib_per_s={:.1} \
                     commits={ok} commit_errors={failed}",
                    round + 1,
                    protocol.name(),
                    run.to_first.as_secs_f64() * 1000.0,
                    run.streaming.as_secs_f64(),
                    run.mib_s(),
                    run.mib_s_total()
                );
                commits.0 += ok;
                commits.1 += failed;
                group.push(run.mib_s());
                group_total.push(run.mib_s_total());
                joins.push(run.to_first.as_secs_f64() * 1000.0);
            } else {
                let run = assign_run(bootstrap, &topic, partitions, records)?;
                println!(
                    "mode=group-vs-assign round={} variant=assign records={records} \
                     first_record_ms={:.0} streaming_secs={:.3} mib_per_s={:.1} incl_start_mib_per_s={:.1}",
                    round + 1,
                    run.to_first.as_secs_f64() * 1000.0,
                    run.streaming.as_secs_f64(),
                    run.mib_s(),
                    run.mib_s_total()
                );
                assign.push(run.mib_s());
            }
        }
    }
    let (am, gm, gtm) = (median(&assign), median(&group), median(&group_total));
    println!(
        "mode=group-vs-assign summary=1 protocol={} partitions={partitions} size={size} \
         records={records} rounds={rounds} commit_interval_ms={commit_ms} \
         assign_mib_per_s={am:.1} group_mib_per_s={gm:.1} ratio={:.3} \
         group_incl_join_mib_per_s={gtm:.1} ratio_incl_join={:.3} ratio_of_means={:.3} \
         join_ms={:.0} commits={} commit_errors={} assign_runs={} group_runs={}",
        protocol.name(),
        gm / am,
        gtm / am,
        mean(&group) / mean(&assign),
        median(&joins),
        commits.0,
        commits.1,
        fmt_list(&assign),
        fmt_list(&group)
    );
    Ok(())
}

/// A group member's rebalance callbacks, with their times.
struct MemberCtx {
    events: Mutex<Vec<Instant>>,
    log: bool,
}

/// What the main thread sees of one member: its current assignment (None once it is closed)
/// and its rebalance callback times.
struct MemberView {
    owned: Mutex<Option<BTreeSet<i32>>>,
    events: Arc<MemberCtx>,
    stop: AtomicBool,
    closed_after: Mutex<Option<Duration>>,
}

struct Settings {
    bootstrap: String,
    topic: String,
    group: String,
    protocol: Protocol,
    assignor: String,
    session_ms: u64,
    heartbeat_ms: Option<u64>,
}

fn member_config(s: &Settings) -> Result<ClientConfig, String> {
    let mut cfg = consumer_base_config(&s.bootstrap)?;
    cfg.set("group.id", &s.group)
        .set("group.protocol", s.protocol.name())
        .set("enable.auto.commit", "false");
    match s.protocol {
        Protocol::Classic => {
            cfg.set("partition.assignment.strategy", &s.assignor)
                .set("session.timeout.ms", s.session_ms.to_string());
            if let Some(h) = s.heartbeat_ms {
                cfg.set("heartbeat.interval.ms", h.to_string());
            }
        }
        // KIP-848: the broker assigns and sets the heartbeat interval; librdkafka rejects the
        // classic settings. Only the server-side assignor can be chosen.
        Protocol::Consumer => {
            if s.assignor == "range" || s.assignor == "uniform" {
                cfg.set("group.remote.assignor", &s.assignor);
            }
        }
    }
    Ok(cfg)
}

fn spawn_member(
    s: Arc<Settings>,
    view: Arc<MemberView>,
) -> std::thread::JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let consumer: BaseConsumer<ArcCtx> = member_config(&s)?
            .create_with_context(ArcCtx(view.events.clone()))
            .map_err(|e| format!("create consumer: {e}"))?;
        consumer
            .subscribe(&[&s.topic])
            .map_err(|e| format!("subscribe: {e}"))?;
        while !view.stop.load(Ordering::Relaxed) {
            // The topic is empty: poll only serves the rebalance callbacks.
            if let Some(Err(e)) = consumer.poll(Duration::from_millis(20)) {
                eprintln!("[rebalance] member poll: {e}");
            }
            let owned = consumer
                .assignment()
                .map_err(|e| format!("assignment: {e}"))?
                .elements()
                .iter()
                .map(|e| e.partition())
                .collect::<BTreeSet<_>>();
            if let Ok(mut o) = view.owned.lock() {
                *o = Some(owned);
            }
        }
        if let Ok(mut o) = view.owned.lock() {
            *o = None;
        }
        let t = Instant::now();
        drop(consumer); // leaves the group
        if let Ok(mut c) = view.closed_after.lock() {
            *c = Some(t.elapsed());
        }
        Ok(())
    })
}

/// The context is shared with the main thread, which reads the callback times.
struct ArcCtx(Arc<MemberCtx>);

impl ClientContext for ArcCtx {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        if self.0.log || (level as i32) <= rdkafka::config::RDKafkaLogLevel::Warning as i32 {
            eprintln!("{:.3} {level:?} {fac} {msg}", unix_ms() as f64 / 1000.0);
        }
    }
}

impl ConsumerContext for ArcCtx {
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if !matches!(r, Rebalance::Error(_)) {
            if let Ok(mut e) = self.0.events.lock() {
                e.push(Instant::now());
            }
        }
    }
}

/// True when exactly `expected` members are open, own every partition exactly once between
/// them, and none is left empty. Counting members matters: before the others have joined, the
/// first member alone owns everything.
fn fully_assigned(members: &[Arc<MemberView>], expected: usize, partitions: i32) -> bool {
    let mut seen = BTreeSet::new();
    let mut open = 0;
    for m in members {
        let Ok(owned) = m.owned.lock() else {
            return false;
        };
        let Some(owned) = owned.as_ref() else {
            continue;
        };
        open += 1;
        if owned.is_empty() {
            return false;
        }
        for p in owned {
            if !seen.insert(*p) {
                return false;
            }
        }
    }
    open == expected && seen.len() == partitions as usize
}

/// Waits until the assignment is complete; returns the phase's wall time and, from the
/// members' rebalance callbacks after `start`, the time of the first and of the last one.
fn wait_assigned(
    members: &[Arc<MemberView>],
    expected: usize,
    partitions: i32,
    start: Instant,
) -> Result<(Duration, Option<Duration>, Option<Duration>), String> {
    let deadline = start + Duration::from_secs(120);
    while !fully_assigned(members, expected, partitions) {
        if Instant::now() > deadline {
            return Err("partitions not fully assigned after 120 s".to_string());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let took = start.elapsed();
    let mut times = vec![];
    for m in members {
        if let Ok(e) = m.events.events.lock() {
            times.extend(e.iter().filter(|t| **t >= start).map(|t| *t - start));
        }
    }
    Ok((
        took,
        times.iter().min().copied(),
        times.iter().max().copied(),
    ))
}

pub fn rebalance(a: &Args) -> Result<(), String> {
    let bootstrap = a.get("bootstrap")?.to_string();
    let partitions = a.num_or("partitions", 100)? as i32;
    let n = a.num_or("members", 10)? as usize;
    let protocol = Protocol::parse(a)?;
    if protocol == Protocol::Consumer {
        require_kip848(&bootstrap)?;
    }
    let default_assignor = if protocol == Protocol::Classic {
        "range"
    } else {
        "uniform"
    };
    let assignor = a.get("assignor").unwrap_or(default_assignor).to_string();
    let heartbeat_ms = a
        .opts
        .get("heartbeat-ms")
        .map(|h| h.parse::<u64>())
        .transpose()
        .map_err(|e| format!("--heartbeat-ms: {e}"))?;
    let stamp = unix_ms();
    let topic = match a.get("topic") {
        Ok(t) => t.to_string(),
        Err(_) => format!("bench-rebalance-{stamp}"),
    };
    create_topic_named(&bootstrap, &topic, partitions)?;
    let s = Arc::new(Settings {
        bootstrap,
        group: format!("kavka-bench-rebalance-{stamp}"),
        topic,
        protocol,
        assignor,
        session_ms: a.num_or("session-timeout-ms", 10_000)?,
        heartbeat_ms,
    });
    let log = std::env::var_os("KAVKA_BENCH_LOG").is_some();
    let new_view = || {
        Arc::new(MemberView {
            owned: Mutex::new(None),
            events: Arc::new(MemberCtx {
                events: Mutex::new(vec![]),
                log,
            }),
            stop: AtomicBool::new(false),
            closed_after: Mutex::new(None),
        })
    };
    let hb = match (protocol, heartbeat_ms) {
        (Protocol::Consumer, _) => "broker".to_string(),
        (_, Some(h)) => h.to_string(),
        (_, None) => "3000(default)".to_string(),
    };
    let describe =
        format!(
        "protocol={} assignor={} partitions={partitions} session_timeout_ms={} heartbeat_ms={hb}",
        protocol.name(),
        s.assignor,
        if protocol == Protocol::Classic { s.session_ms.to_string() } else { "broker".to_string() },
    );
    let report = |phase: &str,
                  members: usize,
                  r: (Duration, Option<Duration>, Option<Duration>),
                  extra: &str| {
        let ms = |d: Option<Duration>| {
            d.map_or("-".to_string(), |d| {
                format!("{:.0}", d.as_secs_f64() * 1000.0)
            })
        };
        println!(
            "mode=rebalance phase={phase} members={members} {describe} secs={:.3} \
             first_callback_ms={} last_callback_ms={}{extra}",
            r.0.as_secs_f64(),
            ms(r.1),
            ms(r.2)
        );
        r.0
    };

    let mut views: Vec<Arc<MemberView>> = vec![];
    let mut handles = vec![];
    // Phase 1: N members subscribe at once.
    let start = Instant::now();
    for _ in 0..n {
        let v = new_view();
        handles.push(spawn_member(s.clone(), v.clone()));
        views.push(v);
    }
    let join = report("join", n, wait_assigned(&views, n, partitions, start)?, "");
    // Let the group settle (a cooperative rebalance may still be finishing its second round).
    std::thread::sleep(Duration::from_secs(1));

    // Phase 2: one more member.
    let start = Instant::now();
    let v = new_view();
    handles.push(spawn_member(s.clone(), v.clone()));
    views.push(v);
    let add = report(
        "add",
        n + 1,
        wait_assigned(&views, n + 1, partitions, start)?,
        "",
    );
    std::thread::sleep(Duration::from_secs(1));

    // Phase 3: the first member closes (LeaveGroup).
    let start = Instant::now();
    views[0].stop.store(true, Ordering::Relaxed);
    let r = wait_assigned(&views, n, partitions, start)?;
    // The others may own everything before close() returns (a cooperative leaver revokes
    // first): wait for it to report.
    let mut closed = None;
    for _ in 0..500 {
        closed = views[0].closed_after.lock().ok().and_then(|c| *c);
        if closed.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let close_ms = closed.map_or("-".to_string(), |d| {
        format!("{:.0}", d.as_secs_f64() * 1000.0)
    });
    let remove = report("remove", n, r, &format!(" close_ms={close_ms}"));

    println!(
        "mode=rebalance summary=1 members={n} {describe} join_secs={:.3} add_secs={:.3} \
         remove_secs={:.3} group={}",
        join.as_secs_f64(),
        add.as_secs_f64(),
        remove.as_secs_f64(),
        s.group
    );
    for v in &views {
        v.stop.store(true, Ordering::Relaxed);
    }
    for h in handles {
        match h.join() {
            Ok(r) => r?,
            Err(_) => return Err("member thread panicked".to_string()),
        }
    }
    Ok(())
}
