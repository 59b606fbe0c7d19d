//! Consumer groups through the rdkafka crate (librdkafka), over both protocols: the classic
//! rebalance protocol and KIP-848's `group.protocol=consumer`. Two members subscribe to a
//! 6-partition topic, split it, consume every record exactly once while committing synchronously
//! after processing; one member closes mid-stream and the other takes over its partitions from the
//! committed offsets.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::{client_config, create_topic, producer, topic_name, Broker};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

const PARTITIONS: i32 = 6;

fn member(broker: &Broker, group: &str, protocol: &str) -> BaseConsumer {
    let mut cfg = client_config(broker);
    cfg.set("group.id", group)
        .set("group.protocol", protocol)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    if protocol == "classic" {
        cfg.set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500");
    }
    cfg.create().expect("create group member")
}

fn owned(c: &BaseConsumer) -> BTreeSet<i32> {
    c.assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls both members (committing what each processed) until `done` holds or the deadline passes.
fn pump(
    members: &[&BaseConsumer],
    seen: &mut HashMap<String, usize>,
    deadline: Duration,
    done: impl Fn(&[&BaseConsumer], &HashMap<String, usize>) -> bool,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        for c in members {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
                *seen.entry(value).or_default() += 1;
                c.commit_message(&m, CommitMode::Sync)
                    .expect("synchronous commit after processing");
            }
        }
        if done(members, seen) {
            return true;
        }
    }
    false
}

async fn produce(broker: &Broker, topic: &str, values: &[String]) {
    let p = producer(broker, &[("linger.ms", "5")]);
    for (i, v) in values.iter().enumerate() {
        p.send(
            FutureRecord::to(topic)
                .payload(v.as_bytes())
                .key(v.as_bytes())
                .partition(i as i32 % PARTITIONS),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    }
}

async fn group_splits_consumes_once_and_takes_over(protocol: &str) {
    let broker = Broker::start_with(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.consumer.min.session.timeout.ms", "2000"),
        ("group.consumer.session.timeout.ms", "6000"),
        ("group.consumer.min.heartbeat.interval.ms", "500"),
        ("group.consumer.heartbeat.interval.ms", "500"),
    ]);
    let topic = topic_name(&format!("groups-{protocol}"));
    create_topic(&broker, &topic, PARTITIONS).await;
    let group = format!("{topic}-group");
    let first: Vec<String> = (0..300).map(|i| format!("a{i:04}")).collect();
    produce(&broker, &topic, &first).await;

    let a = member(&broker, &group, protocol);
    let b = member(&broker, &group, protocol);
    a.subscribe(&[&topic]).expect("subscribe");
    b.subscribe(&[&topic]).expect("subscribe");
    let mut seen = HashMap::new();
    let split = pump(&[&a, &b], &mut seen, Duration::from_secs(40), |m, seen| {
        let (x, y) = (owned(m[0]), owned(m[1]));
        x.len() == 3 && y.len() == 3 && x.is_disjoint(&y) && seen.len() == 300
    });
    assert!(
        split,
        "{protocol}: members did not split 3/3 and consume everything: {:?} / {:?}, {} seen\n{}",
        owned(&a),
        owned(&b),
        seen.len(),
        broker.log_tail()
    );

    // One member leaves; the other takes over its partitions from the committed offsets.
    drop(b);
    let second: Vec<String> = (0..300).map(|i| format!("b{i:04}")).collect();
    produce(&broker, &topic, &second).await;
    let took_over = pump(&[&a], &mut seen, Duration::from_secs(40), |m, seen| {
        owned(m[0]).len() == PARTITIONS as usize && seen.len() == 600
    });
    assert!(
        took_over,
        "{protocol}: the remaining member did not take over and consume everything: {:?}, {} seen\n{}",
        owned(&a),
        seen.len(),
        broker.log_tail()
    );
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{protocol}: consumed more than once: {twice:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_group_splits_consumes_once_and_takes_over() {
    group_splits_consumes_once_and_takes_over("classic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_protocol_group_splits_consumes_once_and_takes_over() {
    group_splits_consumes_once_and_takes_over("consumer").await;
}
