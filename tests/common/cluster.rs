//! A cluster of `kavka` processes on loopback, for the multi-node tests, formatted with one shared
//! cluster id: either combined broker+controller nodes (every node a metadata-quorum voter and a
//! broker) or split roles (controller-only voters and broker-only nodes that follow the metadata log
//! as learners). Either with a static quorum (`controller.quorum.voters`, `meta.properties` written
//! by the harness) or a KIP-853 dynamic one (`controller.quorum.bootstrap.servers`, every node
//! formatted by `kavka storage format` with its own flag, see [`Cluster::start_dynamic`]). Also
//! Metadata helpers (raw `MetadataRequest`s to one node) and rdkafka admin
//! helpers that take a `bootstrap.servers` list rather than a single broker.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    describe_quorum_request, DescribeQuorumRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use super::{Broker, RawConn, Readiness};

/// Short broker sessions so that fencing is observable within a test (elections stay at Kafka's
/// default); overridable per cluster with `broker.session.timeout.ms`.
pub const SESSION_MS: u64 = 3000;
/// How long [`wait_for_metadata`] polls.
pub const WAIT: Duration = Duration::from_secs(40);
/// Every node's `meta.properties` carries it (what `kavka cluster up` writes for a local cluster).
pub const CLUSTER_ID: &str = "kavkaTestClusterId0001";

/// The clusters of one test file start one at a time, and each takes all its ports in one go: two
/// clusters picking ports at once could be handed the same just-released port.
static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The cluster id of [`Cluster::start_dynamic`]'s nodes (unless a node is given its own): a random
/// UUID in URL-safe base64, as `kavka storage random-uuid` prints one.
pub const DYNAMIC_CLUSTER_ID: &str = "4BKD8eJoRXmqVsrTtWtv3A";

/// How the metadata quorum of a [`Cluster`] is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quorum {
    /// `controller.quorum.voters` lists every controller; each data directory gets a
    /// `meta.properties` written by the harness.
    Static,
    /// `controller.quorum.bootstrap.servers` lists every controller (KIP-853); each data directory
    /// is formatted by `kavka storage format`.
    Dynamic,
}

/// Which of `kavka storage format`'s quorum flags a node of [`Cluster::start_dynamic`] gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatFlag {
    /// `--standalone`: the sole initial voter of the quorum.
    Standalone,
    /// `--initial-controllers 1@127.0.0.1:P1,...`: one of the initial voters, the list naming every
    /// node of the cluster given this flag (with its controller listener).
    InitialControllers,
    /// `--no-initial-controllers`: a controller that joins the existing quorum.
    NoInitialControllers,
    /// None of them: a broker-only node.
    None,
}

/// One node of [`Cluster::start_dynamic`].
#[derive(Debug, Clone)]
pub struct DynamicNode {
    pub role: Role,
    pub format: FormatFlag,
    /// This node's own settings, applied over the cluster's.
    pub extra: Vec<(String, String)>,
    /// The cluster id it is formatted with; [`DYNAMIC_CLUSTER_ID`] if `None`.
    pub cluster_id: Option<String>,
    /// Whether starting the cluster waits until this node is ready (see [`Readiness`]).
    pub await_start: bool,
    /// The controllers (node ids) its `controller.quorum.bootstrap.servers` names; every
    /// controller if `None`.
    pub bootstrap_from: Option<Vec<i32>>,
}

impl DynamicNode {
    pub fn new(role: Role, format: FormatFlag) -> DynamicNode {
        DynamicNode {
            role,
            format,
            extra: Vec::new(),
            cluster_id: None,
            await_start: true,
            bootstrap_from: None,
        }
    }

    /// Its `controller.quorum.bootstrap.servers` names only the controllers `ids`.
    pub fn bootstrap_from(mut self, ids: &[i32]) -> DynamicNode {
        self.bootstrap_from = Some(ids.to_vec());
        self
    }

    /// With the setting `key=value` on this node only.
    pub fn with(mut self, key: &str, value: &str) -> DynamicNode {
        self.extra.push((key.to_string(), value.to_string()));
        self
    }

    /// Formatted with `cluster_id` instead of [`DYNAMIC_CLUSTER_ID`].
    pub fn cluster_id(mut self, cluster_id: &str) -> DynamicNode {
        self.cluster_id = Some(cluster_id.to_string());
        self
    }

    /// Starting the cluster does not wait for this node (one that is expected never to be ready).
    pub fn unawaited(mut self) -> DynamicNode {
        self.await_start = false;
        self
    }
}

/// The names and security protocols of a [`Cluster`]'s listeners: each broker's client listener (also the
/// inter-broker listener) and each controller's `CONTROLLER` listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    /// The client listener's name (`listeners`, `advertised.listeners`, `inter.broker.listener.name`).
    pub client: String,
    /// Its security protocol in `listener.security.protocol.map`.
    pub client_protocol: String,
    /// The `CONTROLLER` listener's security protocol.
    pub controller_protocol: String,
}

impl Listeners {
    /// Every listener PLAINTEXT, the client listener named `PLAINTEXT` (what [`Cluster::start`] and
    /// the other constructors use).
    pub fn plaintext() -> Listeners {
        Listeners {
            client: "PLAINTEXT".into(),
            client_protocol: "PLAINTEXT".into(),
            controller_protocol: "PLAINTEXT".into(),
        }
    }

    /// Every listener SSL: the client listener named `SSL`, and the `CONTROLLER` listener. The nodes
    /// need `ssl.*` settings (see `tls::CertDir::server_settings`). The harness' Metadata helpers
    /// ([`metadata`], [`Cluster::wait_for_all_brokers`], ...) speak plaintext and cannot reach such a
    /// cluster: use `tls::TlsConn`.
    pub fn ssl() -> Listeners {
        Listeners {
            client: "SSL".into(),
            client_protocol: "SSL".into(),
            controller_protocol: "SSL".into(),
        }
    }

    fn is_plaintext_default(&self) -> bool {
        *self == Listeners::plaintext()
    }
}

/// What a node of a [`Cluster`] is (its `process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `broker,controller`: a quorum voter with a client and a controller listener.
    Combined,
    /// `controller`: a quorum voter with only a controller listener; hosts no partition.
    Controller,
    /// `broker`: no controller listener; follows the metadata log as a learner on its inter-broker
    /// (client) listener.
    Broker,
}

impl Role {
    /// Has a client listener and registers as a broker.
    pub fn is_broker(self) -> bool {
        self != Role::Controller
    }

    /// Votes in the metadata quorum.
    pub fn is_controller(self) -> bool {
        self != Role::Broker
    }
}

/// Nodes with ids 1..=n; `nodes[i]` is node `i + 1`. Dropping it kills every process.
pub struct Cluster {
    pub nodes: Vec<Broker>,
    /// `roles[i]` is node `i + 1`'s.
    roles: Vec<Role>,
}

/// `n` distinct free ports, all held at once while they are picked, so that each node's
/// controller port is known before any node starts.
pub fn free_ports(n: usize) -> Vec<u16> {
    let holders: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    holders
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

impl Cluster {
    /// Starts `n` combined nodes with the default cluster settings and waits until each accepts
    /// connections.
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, &[])
    }

    /// Like [`start`](Self::start), with extra `key=value` settings given to every node. A key
    /// that the cluster sets itself (e.g. `broker.session.timeout.ms`) is replaced, not repeated;
    /// the heartbeat interval follows an overridden session timeout unless it is given too.
    pub fn start_with(n: usize, extra: &[(&str, &str)]) -> Cluster {
        Cluster::start_roles(&vec![Role::Combined; n], extra)
    }

    /// Starts `controllers` controller-only nodes (ids 1..=controllers, the quorum's voters) and
    /// `brokers` broker-only nodes (the next ids), with `extra` settings as in
    /// [`start_with`](Self::start_with), and waits until every node is started: each controller
    /// has logged that it is, and each broker answers clients.
    pub fn start_split(controllers: usize, brokers: usize, extra: &[(&str, &str)]) -> Cluster {
        let roles: Vec<Role> = std::iter::repeat_n(Role::Controller, controllers)
            .chain(std::iter::repeat_n(Role::Broker, brokers))
            .collect();
        Cluster::start_roles(&roles, extra)
    }

    /// Starts node `i + 1` as `roles[i]`; see [`start_with`](Self::start_with).
    pub fn start_roles(roles: &[Role], extra: &[(&str, &str)]) -> Cluster {
        let nodes: Vec<DynamicNode> = roles
            .iter()
            .map(|role| DynamicNode::new(*role, FormatFlag::None))
            .collect();
        Cluster::start_nodes(&nodes, extra, Quorum::Static, &Listeners::plaintext())
    }

    /// Starts node `i + 1` as `nodes[i]` says (its role, its own settings over `extra`, whether the
    /// start waits for it; its format flag and cluster id are not used) with a static quorum as
    /// [`start_roles`](Self::start_roles) does, its listeners named and secured as `listeners` says.
    /// With a client listener other than `PLAINTEXT`, every broker (combined nodes too) gets
    /// `inter.broker.listener.name=<client listener>`, and a broker-only node counts as ready once its
    /// port accepts connections ([`Readiness::Accepts`]: the harness cannot send it ApiVersions over
    /// TLS).
    pub fn start_static_nodes(
        nodes: &[DynamicNode],
        extra: &[(&str, &str)],
        listeners: &Listeners,
    ) -> Cluster {
        Cluster::start_nodes(nodes, extra, Quorum::Static, listeners)
    }

    /// Starts node `i + 1` as `nodes[i]` says, in a KIP-853 dynamic quorum: every node is
    /// configured with `controller.quorum.bootstrap.servers` listing every controller's controller
    /// listener (and no `controller.quorum.voters`), and its data directory is formatted by
    /// `kavka storage format --cluster-id <its cluster id> --override ...<its settings>... <its
    /// flag>` before it is launched (`--initial-controllers` lists every node given that flag).
    /// `extra` goes to every node as in [`start_with`](Self::start_with), then each node's own
    /// settings on top. Waits until every node not marked [`DynamicNode::unawaited`] is started.
    pub fn start_dynamic(nodes: &[DynamicNode], extra: &[(&str, &str)]) -> Cluster {
        Cluster::start_nodes(nodes, extra, Quorum::Dynamic, &Listeners::plaintext())
    }

    fn start_nodes(
        specs: &[DynamicNode],
        extra: &[(&str, &str)],
        quorum: Quorum,
        listener_spec: &Listeners,
    ) -> Cluster {
        let _starting = STARTING.lock().unwrap_or_else(|p| p.into_inner());
        let roles: Vec<Role> = specs.iter().map(|n| n.role).collect();
        let brokers = roles.iter().filter(|r| r.is_broker()).count();
        let controllers = roles.iter().filter(|r| r.is_controller()).count();
        let mut ports = free_ports(brokers + controllers).into_iter();
        // Every broker's client port first, then every voter's controller port.
        let client_ports: Vec<Option<u16>> = roles
            .iter()
            .map(|r| r.is_broker().then(|| ports.next().expect("a port")))
            .collect();
        let controller_ports: Vec<Option<u16>> = roles
            .iter()
            .map(|r| r.is_controller().then(|| ports.next().expect("a port")))
            .collect();
        let voters = controller_ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.map(|p| format!("{}@127.0.0.1:{p}", i + 1)))
            .collect::<Vec<_>>()
            .join(",");
        let bootstrap_servers = controller_ports
            .iter()
            .flatten()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let initial_controllers = controller_ports
            .iter()
            .zip(specs)
            .enumerate()
            .filter(|(_, (_, spec))| spec.format == FormatFlag::InitialControllers)
            .filter_map(|(i, (p, _))| p.map(|p| format!("{}@127.0.0.1:{p}", i + 1)))
            .collect::<Vec<_>>()
            .join(",");
        let quorum_setting = match quorum {
            Quorum::Static => ("controller.quorum.voters", voters),
            Quorum::Dynamic => ("controller.quorum.bootstrap.servers", bootstrap_servers),
        };
        let session_ms: u64 = extra
            .iter()
            .find(|(k, _)| *k == "broker.session.timeout.ms")
            .map(|(_, v)| v.parse().expect("broker.session.timeout.ms is a number"))
            .unwrap_or(SESSION_MS);
        let mut nodes: Vec<Broker> = specs
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let role = &spec.role;
                let (client, controller) = (client_ports[i], controller_ports[i]);
                let client_listener =
                    client.map(|p| format!("{}://127.0.0.1:{p}", listener_spec.client));
                let full_map = format!(
                    "{}:{},CONTROLLER:{}",
                    listener_spec.client,
                    listener_spec.client_protocol,
                    listener_spec.controller_protocol
                );
                let controller_map = format!("CONTROLLER:{}", listener_spec.controller_protocol);
                let controller_listener = controller.map(|p| format!("CONTROLLER://127.0.0.1:{p}"));
                let (process_roles, protocol_map, readiness) = match role {
                    Role::Combined => ("broker,controller", full_map, Readiness::Accepts),
                    Role::Controller => ("controller", controller_map, Readiness::LogsStarted),
                    Role::Broker if listener_spec.client_protocol != "PLAINTEXT" => {
                        ("broker", full_map, Readiness::Accepts)
                    }
                    Role::Broker => ("broker", full_map, Readiness::Answers),
                };
                let listeners: Vec<String> = client_listener
                    .iter()
                    .chain(&controller_listener)
                    .cloned()
                    .collect();
                let mut settings: Vec<(String, String)> = vec![
                    ("process.roles".into(), process_roles.into()),
                    ("node.id".into(), (i + 1).to_string()),
                    ("listeners".into(), listeners.join(",")),
                ];
                if let Some(listener) = &client_listener {
                    settings.push(("advertised.listeners".into(), listener.clone()));
                }
                settings.extend([
                    ("controller.listener.names".into(), "CONTROLLER".into()),
                    ("listener.security.protocol.map".into(), protocol_map),
                ]);
                if *role == Role::Broker
                    || (role.is_broker() && !listener_spec.is_plaintext_default())
                {
                    settings.push((
                        "inter.broker.listener.name".into(),
                        listener_spec.client.clone(),
                    ));
                }
                settings.extend([
                    (quorum_setting.0.into(), quorum_setting.1.clone()),
                    ("broker.session.timeout.ms".into(), session_ms.to_string()),
                    (
                        "broker.heartbeat.interval.ms".into(),
                        (session_ms / 6).to_string(),
                    ),
                ]);
                if let (Quorum::Dynamic, Some(ids)) = (quorum, &spec.bootstrap_from) {
                    let only = ids
                        .iter()
                        .map(|id| {
                            let port = controller_ports[(id - 1) as usize]
                                .unwrap_or_else(|| panic!("node {id} is not a controller"));
                            format!("127.0.0.1:{port}")
                        })
                        .collect::<Vec<_>>()
                        .join(",");
                    let slot = settings
                        .iter_mut()
                        .find(|(k, _)| k == "controller.quorum.bootstrap.servers")
                        .expect("a dynamic quorum's bootstrap servers");
                    slot.1 = only;
                }
                let own = spec.extra.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                for (k, v) in extra.iter().copied().chain(own) {
                    match settings.iter_mut().find(|(key, _)| key == k) {
                        Some(slot) => slot.1 = v.to_string(),
                        None => settings.push((k.to_string(), v.to_string())),
                    }
                }
                let overrides: Vec<(&str, &str)> = settings
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let port = client.or(controller).expect("a node has a listener");
                match quorum {
                    Quorum::Static => Broker::launch_node(
                        port,
                        &overrides,
                        Some((CLUSTER_ID, i as i32 + 1)),
                        readiness,
                    ),
                    Quorum::Dynamic => {
                        let cluster_id = spec.cluster_id.as_deref().unwrap_or(DYNAMIC_CLUSTER_ID);
                        let mut args = vec!["--cluster-id".to_string(), cluster_id.to_string()];
                        match spec.format {
                            FormatFlag::Standalone => args.push("--standalone".into()),
                            FormatFlag::InitialControllers => args.extend([
                                "--initial-controllers".to_string(),
                                initial_controllers.clone(),
                            ]),
                            FormatFlag::NoInitialControllers => {
                                args.push("--no-initial-controllers".into())
                            }
                            FormatFlag::None => {}
                        }
                        Broker::launch_storage_formatted(port, &overrides, &args, readiness)
                    }
                }
            })
            .collect();
        for (node, spec) in nodes.iter_mut().zip(specs) {
            if spec.await_start {
                node.wait_ready();
            }
        }
        Cluster { nodes, roles }
    }

    /// Node `id`'s role.
    pub fn role(&self, id: i32) -> Role {
        self.roles[(id - 1) as usize]
    }

    /// The brokers (the nodes clients talk to), each with its id.
    fn brokers(&self) -> impl Iterator<Item = (i32, &Broker)> {
        self.nodes
            .iter()
            .zip(1..)
            .filter(|(_, id)| self.role(*id).is_broker())
            .map(|(node, id)| (id, node))
    }

    /// `bootstrap.servers` naming every broker.
    pub fn bootstrap(&self) -> String {
        self.brokers()
            .map(|(_, n)| n.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `bootstrap.servers` naming the brokers whose process is running (not killed).
    pub fn running_bootstrap(&self) -> String {
        self.brokers()
            .filter(|(_, n)| n.is_running())
            .map(|(_, n)| n.bootstrap())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `id` (1-based).
    pub fn node(&mut self, id: i32) -> &mut Broker {
        &mut self.nodes[(id - 1) as usize]
    }

    /// Node `id` (1-based), shared.
    pub fn get(&self, id: i32) -> &Broker {
        &self.nodes[(id - 1) as usize]
    }

    /// Every node id.
    pub fn ids(&self) -> Vec<i32> {
        (1..=self.nodes.len() as i32).collect()
    }

    /// The ids of the nodes that are brokers (all of them in a combined cluster).
    pub fn broker_ids(&self) -> Vec<i32> {
        self.brokers().map(|(id, _)| id).collect()
    }

    /// The ids of the metadata quorum's voters (all of them in a combined cluster).
    pub fn controller_ids(&self) -> Vec<i32> {
        self.ids()
            .into_iter()
            .filter(|id| self.role(*id).is_controller())
            .collect()
    }

    /// Waits until every broker lists every broker as a live (registered, unfenced) broker: before
    /// that, a topic with replication factor `n` cannot be placed (INVALID_REPLICATION_FACTOR).
    /// (A controller-only node lists no brokers: they have no endpoint on its controller listener.)
    pub fn wait_for_all_brokers(&self) {
        let all: BTreeSet<i32> = self.broker_ids().into_iter().collect();
        for (_, node) in self.brokers() {
            wait_for_metadata(node, &format!("all brokers {all:?}"), |m| {
                brokers_of(m) == all
            });
        }
    }

    /// The active controller as the nodes last logged it ("metadata quorum leader changed").
    pub fn active_controller(&self) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(id) = self.logged_active_controller() {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no node logged an active controller"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls the nodes' logs until the active controller they last logged satisfies `check`,
    /// within `limit`; returns it, or panics saying `what` was expected.
    pub fn wait_for_active_controller(
        &self,
        limit: Duration,
        what: &str,
        check: impl Fn(i32) -> bool,
    ) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            let latest = self.logged_active_controller();
            if let Some(id) = latest.filter(|id| check(*id)) {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "expected {what} within {limit:?}; the nodes last logged {latest:?} as the active \
                 controller"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The active controller of the latest "metadata quorum leader changed" line of any node's log
    /// (every start), if any.
    pub fn logged_active_controller(&self) -> Option<i32> {
        let mut latest: Option<(String, i32)> = None;
        for node in &self.nodes {
            for line in node.log().lines() {
                let Some(rest) = line
                    .split("metadata quorum leader changed leader=Some(")
                    .nth(1)
                else {
                    continue;
                };
                let Some(id) = rest.split(')').next().and_then(|id| id.parse().ok()) else {
                    continue;
                };
                let at = line
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if latest.as_ref().is_none_or(|(t, _)| at > *t) {
                    latest = Some((at, id));
                }
            }
        }
        latest.map(|(_, id)| id)
    }

    /// Polls Metadata on each of the nodes `on` (one after the other) until `check` holds for
    /// `topic`'s partitions on that node, all within `limit`; panics with what the failing node last
    /// answered. Returns the partitions as the last node of `on` saw them.
    pub fn wait_for_partitions(
        &self,
        on: &[i32],
        topic: &str,
        limit: Duration,
        what: &str,
        check: impl Fn(&[PartitionState]) -> bool,
    ) -> Vec<PartitionState> {
        let deadline = Instant::now() + limit;
        let mut seen = Vec::new();
        for &id in on {
            let node = self.get(id);
            let mut last: Option<Vec<PartitionState>> = None;
            loop {
                if let Some(parts) = metadata(node).and_then(|m| partitions_of(&m, topic)) {
                    if check(&parts) {
                        seen = parts;
                        break;
                    }
                    last = Some(parts);
                }
                if Instant::now() > deadline {
                    let last = last.map_or("nothing for the topic".to_string(), |p| {
                        Partitions(&p).to_string()
                    });
                    panic!(
                        "expected {what} on node {id} (port {}) within {limit:?} of asking; \
                         it last answered: {last}",
                        node.port
                    );
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        seen
    }
}

/// One node's Metadata (latest version, all topics); `None` if it cannot be reached or answers
/// badly.
pub fn metadata(node: &Broker) -> Option<MetadataResponse> {
    let mut conn = std::panic::catch_unwind(|| RawConn::connect(node)).ok()?;
    conn.request(12, &MetadataRequest::default().with_topics(None))
        .ok()
}

/// The metadata quorum as DescribeQuorum (v1) answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumState {
    pub leader: i32,
    pub leader_epoch: i32,
    pub voters: BTreeSet<i32>,
    pub observers: BTreeSet<i32>,
}

/// Asks `node` (a broker relays it to the active controller) to describe the metadata quorum
/// (`__cluster_metadata` partition 0); `None` if it cannot be reached or answers with an error.
pub fn describe_quorum(node: &Broker) -> Option<QuorumState> {
    let mut conn = std::panic::catch_unwind(|| RawConn::connect(node)).ok()?;
    let request = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![
                describe_quorum_request::PartitionData::default().with_partition_index(0)
            ]),
    ]);
    let response = conn.request(1, &request).ok()?;
    if response.error_code != 0 {
        return None;
    }
    let partition = response.topics.first()?.partitions.first()?;
    if partition.error_code != 0 {
        return None;
    }
    Some(QuorumState {
        leader: partition.leader_id.0,
        leader_epoch: partition.leader_epoch,
        voters: partition
            .current_voters
            .iter()
            .map(|r| r.replica_id.0)
            .collect(),
        observers: partition.observers.iter().map(|r| r.replica_id.0).collect(),
    })
}

/// Polls DescribeQuorum on `node` until `check` holds, within `limit`; panics with `what` and the
/// last answer otherwise.
pub fn wait_for_quorum(
    node: &Broker,
    limit: Duration,
    what: &str,
    check: impl Fn(&QuorumState) -> bool,
) -> QuorumState {
    let deadline = Instant::now() + limit;
    let mut last = None;
    loop {
        if let Some(state) = describe_quorum(node) {
            if check(&state) {
                return state;
            }
            last = Some(state);
        }
        assert!(
            Instant::now() < deadline,
            "expected {what} within {limit:?} from DescribeQuorum on port {}; it last answered \
             {last:?}",
            node.port
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn brokers_of(response: &MetadataResponse) -> BTreeSet<i32> {
    response.brokers.iter().map(|b| b.node_id.0).collect()
}

pub fn topics_of(response: &MetadataResponse) -> BTreeSet<String> {
    response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
        .collect()
}

/// Polls `check` on `node`'s Metadata until it holds, or panics with `what` and the node's last
/// answer, after [`WAIT`].
pub fn wait_for_metadata(
    node: &Broker,
    what: &str,
    check: impl Fn(&MetadataResponse) -> bool,
) -> MetadataResponse {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(response) = metadata(node) {
            if check(&response) {
                return response;
            }
            last = Some(response);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "node on port {} never showed {what}; last Metadata: {last:?}",
        node.port
    );
}

/// One partition as a node's Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: i32,
    pub error_code: i16,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

impl fmt::Display for PartitionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p{} leader={} epoch={} replicas={:?} isr={:?}",
            self.partition, self.leader, self.leader_epoch, self.replicas, self.isr
        )?;
        if self.error_code != 0 {
            write!(f, " error={}", self.error_code)?;
        }
        Ok(())
    }
}

/// Displays a partition list on one line.
pub struct Partitions<'a>(pub &'a [PartitionState]);

impl fmt::Display for Partitions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|p| p.to_string()).collect();
        write!(f, "[{}]", parts.join("; "))
    }
}

/// `topic`'s partitions in `response`, by partition index; `None` if the topic is absent.
pub fn partitions_of(response: &MetadataResponse, topic: &str) -> Option<Vec<PartitionState>> {
    let t = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic))?;
    let mut parts: Vec<PartitionState> = t
        .partitions
        .iter()
        .map(|p| PartitionState {
            partition: p.partition_index,
            error_code: p.error_code,
            leader: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            replicas: p.replica_nodes.iter().map(|r| r.0).collect(),
            isr: p.isr_nodes.iter().map(|r| r.0).collect(),
        })
        .collect();
    parts.sort_by_key(|p| p.partition);
    Some(parts)
}

/// An admin client for `bootstrap.servers`.
pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

/// Creates `name` with `partitions` partitions of replication factor `rf` and the topic
/// `configs`; fails the test on any error.
pub async fn create_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    rf: i32,
    configs: &[(&str, &str)],
) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = admin(bootstrap)
        .create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .expect("CreateTopics");
    for result in results {
        result.unwrap_or_else(|(topic, e)| panic!("creating {topic}: {e}"));
    }
}
