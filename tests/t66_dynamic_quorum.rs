//! KIP-853 dynamic controller quorums (`controller.quorum.bootstrap.servers` instead of
//! `controller.quorum.voters`), end to end through real `kavka` processes on loopback whose data
//! directories are formatted with `kavka storage format`, as with Kafka's `kafka-storage` tool:
//!
//! - a quorum bootstrapped by one `--standalone` controller grows by auto join
//!   (`controller.quorum.auto.join.enable=true`): two controllers formatted
//!   `--no-initial-controllers` join as observers and are promoted to voters (DescribeQuorum then
//!   shows voters 1, 2, 3 and the three broker-only nodes as observers, one of which found the
//!   quorum through a still-joining controller alone), so the cluster survives a kill -9 of the
//!   only initial voter: a new active controller is elected among the joiners, topics can still
//!   be created, idempotent `acks=all` production goes on and every acknowledged record is read
//!   back; the killed controller, restarted, catches up with what was decided without it;
//! - 3 combined nodes formatted with one `--initial-controllers` list form a cluster that serves
//!   an RF 3 topic and survives a kill -9 of its active controller;
//! - a controller formatted `--no-initial-controllers` without auto join follows the metadata log
//!   but stays an observer: once the only voter is gone, no new active controller appears;
//! - a node formatted with another cluster id is refused by the quorum (its log says so) and
//!   neither becomes a voter nor registers as a broker;
//! - without a cluster (each check a process exit): `kavka storage random-uuid` prints a cluster
//!   id; `kavka storage format` writes `meta.properties` into every log directory and refuses the
//!   combinations Kafka refuses (no quorum flag for a dynamic controller, a quorum flag with
//!   static voters, an initial-voter flag on a broker-only node, an already formatted directory
//!   without `--ignore-formatted`), writing nothing then; a node with bootstrap servers refuses to
//!   start on an unformatted directory and names the command that formats it (while with
//!   `controller.quorum.voters` it still formats itself).
//!
//! Each test starts its own cluster. Waits are generous polling loops (the machine may be a busy
//! 2-core VM) and nothing is asserted about speed; the one liveness-negative check (no election
//! without a voter majority) watches for a bounded 10 s.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::{
    brokers_of, create_topic, wait_for_metadata, wait_for_quorum, Cluster, DynamicNode, FormatFlag,
    Partitions, Role, DYNAMIC_CLUSTER_ID,
};
use common::replication::{
    assert_acks_in_log, create_replicated_topic, create_topic_within, full_isr,
    idempotent_producer, others, send_values, spawn_send_values, values, Sent, SETTINGS, WAIT,
};
use common::{free_port, run_kavka, topic_name, Broker, KavkaRun, Readiness};

/// What a controller promoted from observer to voter logs.
const VOTER_LINE: &str = "voter of the metadata quorum";
/// What every node logs whenever it sees a new active controller.
const LEADER_LINE: &str = "metadata quorum leader changed leader=Some(";
/// How long topic creation may take after the active controller was killed.
const CREATE_AFTER_KILL: Duration = Duration::from_secs(60);
/// How long a one-shot `kavka` command (format, a refused start) may take to exit.
const EXIT_WITHIN: Duration = Duration::from_secs(30);
/// How long the liveness-negative checks watch for something that must not happen.
const MUST_NOT_HAPPEN_WITHIN: Duration = Duration::from_secs(10);
/// A second valid cluster id, for the node of another cluster.
const OTHER_CLUSTER_ID: &str = "o-4BZd3xSpyYcLpWcEmzWg";

/// A controller-only node formatted `--no-initial-controllers` that promotes itself to voter.
fn auto_joining_controller() -> DynamicNode {
    DynamicNode::new(Role::Controller, FormatFlag::NoInitialControllers)
        .with("controller.quorum.auto.join.enable", "true")
}

fn broker_only() -> DynamicNode {
    DynamicNode::new(Role::Broker, FormatFlag::None)
}

/// Fails unless no node but `leader` was ever logged as the active controller.
fn assert_only_leader_ever_logged(cluster: &Cluster, leader: i32, context: &str) {
    let others: Vec<String> = cluster
        .ids()
        .into_iter()
        .flat_map(|id| {
            cluster
                .get(id)
                .log_lines_containing(LEADER_LINE)
                .into_iter()
                .filter(|l| !l.contains(&format!("{LEADER_LINE}{leader})")))
                .map(move |l| format!("node {id}: {l}"))
        })
        .collect();
    assert!(
        others.is_empty(),
        "expected node {leader} to be the only active controller ever logged {context}; the nodes \
         logged: {others:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quorum_grown_by_auto_join_survives_the_loss_of_its_only_initial_voter() {
    let nodes = [
        DynamicNode::new(Role::Controller, FormatFlag::Standalone),
        auto_joining_controller(),
        auto_joining_controller(),
        broker_only(),
        broker_only(),
        // Finds the quorum through node 3 alone, a controller that is itself still joining.
        broker_only().bootstrap_from(&[3]),
    ];
    let mut cluster = Cluster::start_dynamic(&nodes, SETTINGS);
    cluster.wait_for_all_brokers();
    for id in [2, 3] {
        let line = cluster.get(id).wait_for_log_line(
            VOTER_LINE,
            WAIT,
            &format!("node {id} (auto join) to be promoted to a voter"),
        );
        eprintln!("node {id}: {line}");
    }
    let quorum = wait_for_quorum(
        cluster.get(4),
        WAIT,
        "voters {1, 2, 3} and the brokers 4, 5, 6 as observers",
        |q| {
            q.voters == BTreeSet::from([1, 2, 3])
                && [4, 5, 6].iter().all(|id| q.observers.contains(id))
                && q.observers.is_disjoint(&q.voters)
        },
    );
    eprintln!("DescribeQuorum through node 4: {quorum:?}");
    let before = cluster.active_controller();
    eprintln!("active controller before the kill: {before} (node 1 bootstrapped the quorum)");

    let topic = topic_name("dyn-grown");
    let parts = create_replicated_topic(&cluster, &topic, 1, "2").await;
    let mut replicas = parts[0].replicas.clone();
    replicas.sort_unstable();
    assert_eq!(
        replicas,
        cluster.broker_ids(),
        "expected the replicas to be the three broker-only nodes: {}",
        parts[0]
    );
    let producer = idempotent_producer(&cluster);
    let sent = Arc::new(Sent::default());
    let task = spawn_send_values(&producer, &topic, values("g", 0..2000), 50, &sent);
    sent.wait_for_acks(1000, &task, "before killing node 1")
        .await;
    eprintln!(
        "killing node 1 (the only initial voter) after {} acks of {topic} ({})",
        sent.acked(),
        Partitions(&parts)
    );
    let killed_at = Instant::now();
    cluster.node(1).kill9();

    let successor = cluster.wait_for_active_controller(
        WAIT,
        "a new active controller among the promoted nodes 2 and 3 after node 1 was killed",
        |id| id == 2 || id == 3,
    );
    eprintln!(
        "node {successor} is the active controller {:?} after the kill",
        killed_at.elapsed()
    );
    let quorum = wait_for_quorum(
        cluster.get(5),
        WAIT,
        "leader 2 or 3 of voters {1, 2, 3}",
        |q| (q.leader == 2 || q.leader == 3) && q.voters == BTreeSet::from([1, 2, 3]),
    );
    eprintln!("DescribeQuorum through node 5 after the kill: {quorum:?}");
    task.await.expect("producing task");
    sent.assert_no_failures("across a kill -9 of node 1, the only initial voter");
    let acks = sent.acks.lock().unwrap().clone();
    assert_eq!(
        acks.len(),
        2000,
        "expected one acknowledgement per record sent"
    );

    let created = topic_name("dyn-after-kill");
    create_topic_within(&cluster, &created, 3, CREATE_AFTER_KILL).await;
    let survivors = others(&cluster, 1);
    let seen = cluster.wait_for_partitions(
        &survivors,
        &created,
        WAIT,
        &format!("{created} (created with node 1 down) with a leader"),
        |p| p.len() == 1 && p[0].leader > 0,
    );
    eprintln!(
        "{created} created {:?} after the kill: {}",
        killed_at.elapsed(),
        Partitions(&seen)
    );
    assert_acks_in_log(&cluster, &topic, &acks);

    // Node 1 comes back (started, as every controller, once it has caught up). It must follow the
    // quorum it left, not bootstrap a quorum of its own again: it shows the topic decided without
    // it, and one decided after its return.
    cluster.node(1).restart();
    cluster.wait_for_partitions(
        &[1],
        &created,
        WAIT,
        &format!("{created}, created while node 1 was down, on the restarted node 1"),
        |p| p.len() == 1 && p[0].leader > 0,
    );
    let later = topic_name("dyn-after-return");
    create_topic_within(&cluster, &later, 3, CREATE_AFTER_KILL).await;
    cluster.wait_for_partitions(
        &cluster.ids(),
        &later,
        WAIT,
        &format!("{later}, created after node 1 returned, on every node"),
        |p| p.len() == 1 && p[0].leader > 0,
    );
    cluster.wait_for_partitions(
        &cluster.ids(),
        &topic,
        WAIT,
        &format!("{topic} with a full ISR on every node"),
        full_isr,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn combined_nodes_with_initial_controllers_form_a_cluster_that_survives_a_controller_loss() {
    let nodes: Vec<DynamicNode> = (0..3)
        .map(|_| DynamicNode::new(Role::Combined, FormatFlag::InitialControllers))
        .collect();
    let mut cluster = Cluster::start_dynamic(&nodes, SETTINGS);
    cluster.wait_for_all_brokers();
    wait_for_quorum(
        cluster.get(1),
        WAIT,
        "the three initial controllers as voters",
        |q| q.voters == BTreeSet::from([1, 2, 3]) && q.leader > 0,
    );

    let topic = topic_name("dyn-combined");
    let parts = create_replicated_topic(&cluster, &topic, 1, "2").await;
    let producer = idempotent_producer(&cluster);
    let sent = Sent::default();
    send_values(&producer, &topic, &values("i", 0..500), 50, &sent).await;
    sent.assert_no_failures("with every node up");

    let controller = cluster.active_controller();
    eprintln!(
        "killing active controller {controller} after {} acks of {topic} ({})",
        sent.acked(),
        Partitions(&parts)
    );
    let killed_at = Instant::now();
    cluster.node(controller).kill9();
    let successor = cluster.wait_for_active_controller(
        WAIT,
        &format!("a new active controller after node {controller} was killed"),
        |id| id != controller,
    );
    eprintln!(
        "node {successor} is the active controller {:?} after the kill",
        killed_at.elapsed()
    );
    let created = topic_name("dyn-combined-after-kill");
    create_topic_within(&cluster, &created, 2, CREATE_AFTER_KILL).await;
    cluster.wait_for_partitions(
        &others(&cluster, controller),
        &created,
        WAIT,
        &format!("{created} with a leader other than the killed {controller}"),
        |p| p.len() == 1 && p[0].leader > 0 && p[0].leader != controller,
    );
    send_values(&producer, &topic, &values("j", 0..500), 50, &sent).await;
    sent.assert_no_failures(&format!(
        "with node {controller} killed (acks=all, min.insync.replicas=2)"
    ));
    let acks = sent.acks.lock().unwrap().clone();
    assert_acks_in_log(&cluster, &topic, &acks);

    cluster.node(controller).restart();
    cluster.wait_for_partitions(
        &cluster.ids(),
        &topic,
        WAIT,
        &format!("a full ISR again after node {controller} restarted"),
        full_isr,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_controller_without_auto_join_stays_an_observer() {
    let nodes = [
        DynamicNode::new(Role::Controller, FormatFlag::Standalone),
        // controller.quorum.auto.join.enable is left at its default (false).
        DynamicNode::new(Role::Controller, FormatFlag::NoInitialControllers),
        broker_only(),
    ];
    let mut cluster = Cluster::start_dynamic(&nodes, SETTINGS);
    cluster.wait_for_all_brokers();
    // The observer follows the metadata log: it shows a topic created through the broker.
    let topic = topic_name("dyn-observed");
    create_topic(&cluster.bootstrap(), &topic, 1, 1, &[]).await;
    cluster.wait_for_partitions(
        &[2],
        &topic,
        WAIT,
        &format!("{topic} on the observer, node 2"),
        |p| p.len() == 1 && p[0].leader == 3,
    );
    let quorum = wait_for_quorum(
        cluster.get(3),
        WAIT,
        "leader 1, the only voter, with node 2 among the observers",
        |q| q.leader == 1 && q.voters == BTreeSet::from([1]) && q.observers.contains(&2),
    );
    eprintln!("DescribeQuorum through node 3: {quorum:?}");
    // Give a wrongly enabled auto join time to happen before checking that it did not.
    std::thread::sleep(Duration::from_secs(3));
    let quorum = wait_for_quorum(cluster.get(3), WAIT, "leader 1", |q| q.leader == 1);
    assert_eq!(
        quorum.voters,
        BTreeSet::from([1]),
        "expected node 2 (no auto join) to stay an observer: {quorum:?}"
    );
    assert!(
        cluster.get(2).log_lines_containing(VOTER_LINE).is_empty(),
        "expected node 2 (no auto join) never to become a voter:\n{}",
        cluster.get(2).log_tail()
    );

    cluster.node(1).kill9();
    let until = Instant::now() + MUST_NOT_HAPPEN_WITHIN;
    while Instant::now() < until {
        assert_only_leader_ever_logged(
            &cluster,
            1,
            "(node 1 was the only voter; node 2 is an observer and must not be elected)",
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        cluster.get(2).log_lines_containing(VOTER_LINE).is_empty(),
        "expected node 2 (no auto join) never to become a voter:\n{}",
        cluster.get(2).log_tail()
    );
}

/// A line of `log` that reports a cluster id mismatch: it names both cluster ids.
fn cluster_id_refusal(log: &[String]) -> Option<&String> {
    log.iter().find(|l| {
        l.contains("cluster") && l.contains(OTHER_CLUSTER_ID) && l.contains(DYNAMIC_CLUSTER_ID)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_of_another_cluster_is_refused_by_the_quorum() {
    let nodes = [
        DynamicNode::new(Role::Controller, FormatFlag::Standalone),
        auto_joining_controller()
            .cluster_id(OTHER_CLUSTER_ID)
            .unawaited(),
        broker_only(),
        broker_only().cluster_id(OTHER_CLUSTER_ID).unawaited(),
    ];
    let cluster = Cluster::start_dynamic(&nodes, SETTINGS);
    wait_for_metadata(cluster.get(3), "broker 3 registered", |m| {
        brokers_of(m) == BTreeSet::from([3])
    });
    for id in [2, 4] {
        let deadline = Instant::now() + WAIT;
        loop {
            let log: Vec<String> = cluster.get(id).log().lines().map(str::to_string).collect();
            if let Some(line) = cluster_id_refusal(&log) {
                eprintln!("node {id} (cluster {OTHER_CLUSTER_ID}): {line}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "expected node {id}, formatted with cluster id {OTHER_CLUSTER_ID}, to log that \
                 the quorum (cluster {DYNAMIC_CLUSTER_ID}) refused it within {WAIT:?}\n{}",
                cluster.get(id).log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // It does not join: for a while, node 2 never becomes a voter nor starts, and broker 4 never
    // registers.
    let until = Instant::now() + MUST_NOT_HAPPEN_WITHIN;
    while Instant::now() < until {
        for id in [2, 4] {
            let node = cluster.get(id);
            assert!(
                node.log_lines_containing(VOTER_LINE).is_empty()
                    && node.log_lines_containing("Kavka broker started").is_empty(),
                "expected node {id} of another cluster neither to become a voter nor to start\n{}",
                node.log_tail()
            );
        }
        wait_for_metadata(cluster.get(3), "only broker 3 registered", |m| {
            brokers_of(m) == BTreeSet::from([3])
        });
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_only_leader_ever_logged(&cluster, 1, "(the only voter of the cluster)");
    let quorum = wait_for_quorum(cluster.get(3), WAIT, "leader 1", |q| q.leader == 1);
    assert!(
        quorum.voters == BTreeSet::from([1])
            && !quorum.observers.contains(&2)
            && !quorum.observers.contains(&4),
        "expected nodes 2 and 4 (another cluster) to be neither voters nor observers: {quorum:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Process exits, no cluster

fn kavka(args: &[&str]) -> KavkaRun {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    run_kavka(&args, EXIT_WITHIN)
}

/// `--override key=value` for each pair.
fn overrides(pairs: &[(&str, String)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| ["--override".to_string(), format!("{k}={v}")])
        .collect()
}

/// A controller-only node 1 of a dynamic quorum whose data is in `dirs` (its `log.dirs`).
fn dynamic_controller(dirs: &[&Path], port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("process.roles", "controller".into()),
        ("node.id", "1".into()),
        ("listeners", format!("CONTROLLER://127.0.0.1:{port}")),
        ("controller.listener.names", "CONTROLLER".into()),
        (
            "listener.security.protocol.map",
            "CONTROLLER:PLAINTEXT".into(),
        ),
        (
            "controller.quorum.bootstrap.servers",
            format!("127.0.0.1:{port}"),
        ),
        ("log.dirs", log_dirs(dirs)),
    ]
}

/// A broker-only node 4 of a dynamic quorum whose controller listens on `controller_port`.
fn dynamic_broker(dir: &Path, port: u16, controller_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("process.roles", "broker".into()),
        ("node.id", "4".into()),
        ("listeners", format!("PLAINTEXT://127.0.0.1:{port}")),
        (
            "advertised.listeners",
            format!("PLAINTEXT://127.0.0.1:{port}"),
        ),
        ("controller.listener.names", "CONTROLLER".into()),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
        ),
        ("inter.broker.listener.name", "PLAINTEXT".into()),
        (
            "controller.quorum.bootstrap.servers",
            format!("127.0.0.1:{controller_port}"),
        ),
        ("log.dirs", log_dirs(&[dir])),
    ]
}

/// A combined node 1 of a dynamic quorum.
fn dynamic_combined(dir: &Path, port: u16, controller_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("process.roles", "broker,controller".into()),
        ("node.id", "1".into()),
        (
            "listeners",
            format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"),
        ),
        ("controller.listener.names", "CONTROLLER".into()),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
        ),
        (
            "controller.quorum.bootstrap.servers",
            format!("127.0.0.1:{controller_port}"),
        ),
        ("log.dirs", log_dirs(&[dir])),
    ]
}

/// A controller-only node 1 of a static quorum (`controller.quorum.voters`).
fn static_controller(dir: &Path, port: u16) -> Vec<(&'static str, String)> {
    let mut settings = dynamic_controller(&[dir], port);
    settings.retain(|(k, _)| *k != "controller.quorum.bootstrap.servers");
    settings.push(("controller.quorum.voters", format!("1@127.0.0.1:{port}")));
    settings
}

fn log_dirs(dirs: &[&Path]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("kavka-t66-")
        .tempdir()
        .expect("temp dir")
}

/// Runs `kavka storage format --cluster-id ID <settings as overrides> <flags>`.
fn format(settings: &[(&str, String)], flags: &[&str]) -> KavkaRun {
    format_with_id(DYNAMIC_CLUSTER_ID, settings, flags)
}

fn format_with_id(cluster_id: &str, settings: &[(&str, String)], flags: &[&str]) -> KavkaRun {
    let mut args: Vec<String> = vec![
        "storage".into(),
        "format".into(),
        "--cluster-id".into(),
        cluster_id.into(),
    ];
    args.extend(overrides(settings));
    args.extend(flags.iter().map(|f| f.to_string()));
    run_kavka(&args, EXIT_WITHIN)
}

/// The keys of `dir/meta.properties`.
fn meta_properties(dir: &Path) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("meta.properties")).ok()?;
    Some(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

/// Fails unless `run` exited with code 1 and an `Error:` line on stderr (containing `needle`,
/// when given); `what` names the refused command.
fn assert_refused(run: &KavkaRun, needle: Option<&str>, what: &str) {
    let error_lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("Error:"))
        .collect();
    assert!(
        run.code() == Some(1) && error_lines.len() == 1,
        "expected {what} to be refused with exit code 1 and one `Error:` line on stderr; {run}"
    );
    if let Some(needle) = needle {
        assert!(
            error_lines[0].contains(needle),
            "expected the error of {what} to say {needle:?}; {run}"
        );
    }
}

#[test]
fn storage_random_uuid_prints_a_new_cluster_id() {
    let mut ids = BTreeSet::new();
    for _ in 0..2 {
        let run = kavka(&["storage", "random-uuid"]);
        assert!(
            run.succeeded(),
            "expected `kavka storage random-uuid` to exit 0; {run}"
        );
        let id = run.stdout.trim().to_string();
        // 16 bytes in URL-safe base64 without padding: 22 characters, the last one carrying only
        // two bits (so one of A, Q, g, w), as Kafka's Uuid.toString prints them.
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        assert!(
            id.len() == 22
                && id.chars().all(|c| ALPHABET.contains(c))
                && id.ends_with(['A', 'Q', 'g', 'w']),
            "expected a 22-character URL-safe base64 UUID on stdout, got {id:?}; {run}"
        );
        ids.insert(id);
    }
    assert_eq!(ids.len(), 2, "expected two calls to print two ids: {ids:?}");
}

#[test]
fn a_node_with_bootstrap_servers_refuses_an_unformatted_directory() {
    let (controller_port, client_port) = (free_port(), free_port());
    let dir = temp_dir();
    let cases = [
        (
            "controller-only",
            dynamic_controller(&[dir.path()], controller_port),
        ),
        (
            "broker-only",
            dynamic_broker(dir.path(), client_port, controller_port),
        ),
        (
            "combined",
            dynamic_combined(dir.path(), client_port, controller_port),
        ),
    ];
    for (what, settings) in cases {
        let mut args = vec!["broker".to_string()];
        args.extend(overrides(&settings));
        let run = run_kavka(&args, EXIT_WITHIN);
        assert!(
            run.code() == Some(1)
                && run.stderr.contains("not formatted")
                && run.stderr.contains("kavka storage format"),
            "expected a {what} node with controller.quorum.bootstrap.servers to refuse to start \
             on an unformatted directory (exit code 1, \"not formatted\", naming `kavka storage \
             format`); {run}"
        );
        assert!(
            meta_properties(dir.path()).is_none(),
            "expected the refused {what} node not to format {} itself",
            dir.path().display()
        );
    }

    // The control: with controller.quorum.voters instead, the same controller formats its
    // directory itself at first start, as before.
    let settings: Vec<(&str, String)> = static_controller(dir.path(), controller_port)
        .into_iter()
        .filter(|(k, _)| *k != "log.dirs")
        .collect();
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut node = Broker::launch_node(controller_port, &settings, None, Readiness::LogsStarted);
    node.wait_ready();
    assert!(
        meta_properties(node.data_dir()).is_some(),
        "expected a static-quorum controller to format its own directory at first start"
    );
}

#[test]
fn storage_format_writes_meta_properties_into_every_log_dir() {
    let port = free_port();
    // A standalone controller with two log directories.
    let (a, b) = (temp_dir(), temp_dir());
    let run = format(
        &dynamic_controller(&[a.path(), b.path()], port),
        &["--standalone"],
    );
    assert!(
        run.succeeded(),
        "expected format --standalone to succeed; {run}"
    );
    let mut directory_ids = BTreeSet::new();
    for dir in [a.path(), b.path()] {
        let meta = meta_properties(dir)
            .unwrap_or_else(|| panic!("expected {}/meta.properties; {run}", dir.display()));
        assert_eq!(
            meta.get("version").map(String::as_str),
            Some("1"),
            "{meta:?}"
        );
        assert_eq!(
            meta.get("cluster.id").map(String::as_str),
            Some(DYNAMIC_CLUSTER_ID),
            "{meta:?}"
        );
        assert_eq!(
            meta.get("node.id").map(String::as_str),
            Some("1"),
            "{meta:?}"
        );
        let directory_id = meta.get("directory.id").cloned().unwrap_or_default();
        assert!(
            !directory_id.is_empty(),
            "expected a directory.id: {meta:?}"
        );
        directory_ids.insert(directory_id);
    }
    assert_eq!(
        directory_ids.len(),
        2,
        "expected each log directory to get its own directory.id: {directory_ids:?}"
    );

    // A joining controller, an initial voter, and a broker-only node with none of the flags.
    let dir = temp_dir();
    let run = format(
        &dynamic_controller(&[dir.path()], port),
        &["--no-initial-controllers"],
    );
    assert!(
        run.succeeded(),
        "expected format --no-initial-controllers to succeed; {run}"
    );
    assert!(meta_properties(dir.path()).is_some(), "{run}");
    let dir = temp_dir();
    let list = format!(
        "1@127.0.0.1:{port},2@127.0.0.1:{},3@127.0.0.1:{}",
        free_port(),
        free_port()
    );
    let run = format(
        &dynamic_controller(&[dir.path()], port),
        &["--initial-controllers", &list],
    );
    assert!(
        run.succeeded(),
        "expected format --initial-controllers {list} to succeed; {run}"
    );
    assert!(meta_properties(dir.path()).is_some(), "{run}");
    let dir = temp_dir();
    let run = format(&dynamic_broker(dir.path(), free_port(), port), &[]);
    assert!(
        run.succeeded(),
        "expected a broker-only node to be formatted without a flag; {run}"
    );
    assert_eq!(
        meta_properties(dir.path()).and_then(|m| m.get("node.id").cloned()),
        Some("4".to_string()),
        "{run}"
    );

    // A node of a static quorum is formatted without any of the three flags.
    let dir = temp_dir();
    let run = format(&static_controller(dir.path(), port), &[]);
    assert!(
        run.succeeded(),
        "expected a static-quorum controller to be formatted; {run}"
    );
    assert!(meta_properties(dir.path()).is_some(), "{run}");

    // The settings may come from --config, as Kafka's tool takes them.
    let dir = temp_dir();
    let config_dir = temp_dir();
    let config = config_dir.path().join("server.properties");
    let settings = dynamic_controller(&[dir.path()], port);
    let text: String = settings.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&config, text).expect("write server.properties");
    let run = kavka(&[
        "storage",
        "format",
        "--cluster-id",
        DYNAMIC_CLUSTER_ID,
        "--config",
        config.to_str().expect("utf-8 path"),
        "--standalone",
    ]);
    assert!(
        run.succeeded(),
        "expected format --config FILE --standalone to succeed; {run}"
    );
    assert_eq!(
        meta_properties(dir.path()).and_then(|m| m.get("cluster.id").cloned()),
        Some(DYNAMIC_CLUSTER_ID.to_string()),
        "{run}"
    );
}

#[test]
fn storage_format_refuses_what_kafka_refuses_and_writes_nothing_then() {
    let port = free_port();
    let dir = temp_dir();
    let list = format!("1@127.0.0.1:{port}");
    let unwritten = |what: &str, run: &KavkaRun| {
        assert!(
            meta_properties(dir.path()).is_none(),
            "expected the refused {what} to write no meta.properties; {run}"
        );
    };

    let what = "format of a dynamic-quorum controller without --standalone, \
                --initial-controllers or --no-initial-controllers";
    let run = format(&dynamic_controller(&[dir.path()], port), &[]);
    assert_refused(&run, None, what);
    unwritten(what, &run);

    for flags in [
        vec!["--standalone"],
        vec!["--initial-controllers", list.as_str()],
        vec!["--no-initial-controllers"],
    ] {
        let what = format!("format {} with controller.quorum.voters set", flags[0]);
        let run = format(&static_controller(dir.path(), port), &flags);
        assert_refused(&run, None, &what);
        unwritten(&what, &run);
    }

    for flags in [
        vec!["--standalone"],
        vec!["--initial-controllers", list.as_str()],
    ] {
        let what = format!("format {} of a broker-only node", flags[0]);
        let run = format(&dynamic_broker(dir.path(), free_port(), port), &flags);
        assert_refused(&run, None, &what);
        unwritten(&what, &run);
    }

    // An already formatted directory.
    let settings = dynamic_controller(&[dir.path()], port);
    let run = format(&settings, &["--standalone"]);
    assert!(
        run.succeeded(),
        "expected the first format to succeed; {run}"
    );
    let first = std::fs::read_to_string(dir.path().join("meta.properties")).expect("formatted");
    let run = format_with_id(OTHER_CLUSTER_ID, &settings, &["--standalone"]);
    assert_refused(&run, Some("already formatted"), "a second format");
    // Kafka's tool skips formatted directories and, when none is left, says so and exits 0 (so a
    // start script may run it before every start).
    let run = format(&settings, &["--standalone", "--ignore-formatted"]);
    assert!(
        run.succeeded(),
        "expected a second format with --ignore-formatted to exit 0, as Kafka's does; {run}"
    );
    let after = std::fs::read_to_string(dir.path().join("meta.properties")).expect("formatted");
    assert_eq!(
        first, after,
        "expected --ignore-formatted to leave the formatted directory as it was"
    );
}
