//! The broker process: wires configuration, metadata, replicas and listeners together, runs background
//! tasks, and shuts down cleanly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kavka_config::BrokerConfig;
use tokio::sync::watch;

use crate::coordinator::classic::{ClassicGroups, GroupSettings, OffsetExpiry};
use crate::coordinator::consumer::{self, ConsumerGroups, ConsumerSettings};
use crate::coordinator::consumer_records::{ConsumerGroupKey, ConsumerGroupValue};
use crate::coordinator::records::OffsetsKey;
use crate::coordinator::{ConsumerGroupRecords, GroupCoordinator, OffsetsRecord, OffsetsValue};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{CreateTopicsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::lifecycle::{self, BrokerLifecycle};
use crate::controller::channel::ControllerChannel;
use crate::controller::quorum::{MetadataQuorum, QuorumError, QuorumJournal, QuorumTiming};
use crate::controller::raft::network::{join_quorum, JoinAs, QuorumContact};
use crate::controller::raft::ControllerNode;
use crate::handlers::now_ms;
use crate::meta_properties::{new_cluster_id, parse_meta_properties, render_meta_properties};
use crate::metadata::{
    BrokerEndpoint, Controller, ControllerError, MetadataError, MetadataImage, NewTopic,
    TopicDefaults,
};
use crate::network::{bind_listeners, run_listener, NodeTls};
use crate::replica::ReplicaManager;
use crate::storage_format;

/// Errors that stop the broker from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("log directory {path}: {message}")]
    LogDir { path: String, message: String },
    #[error("opening partition logs: {0}")]
    Storage(#[from] kavka_storage::StorageError),
    #[error(transparent)]
    Listener(#[from] std::io::Error),
    #[error("metadata quorum: {0}")]
    Quorum(#[from] QuorumError),
    #[error("{0}")]
    Config(String),
    /// The metadata log could not be written (Kafka halts the node when its metadata log directory
    /// fails): the node stops rather than serve on as a broker whose controller side is gone.
    #[error("the metadata log in {dir} failed: {reason}")]
    MetadataLogFailed { dir: String, reason: String },
}

/// Shared state of a running broker, handed to every connection.
pub struct Broker {
    pub config: Arc<BrokerConfig>,
    pub node_id: i32,
    pub cluster_id: String,
    pub controller: Arc<Controller>,
    /// This node's member of the metadata quorum (the Raft group the controller writes through).
    pub quorum: Arc<MetadataQuorum>,
    /// This broker's registration with the controller.
    pub lifecycle: BrokerLifecycle,
    /// Requests to the active controller when it runs on another node.
    pub controller_channel: ControllerChannel,
    /// Registration and heartbeats go on their own connection, as in Kafka: they must never wait
    /// behind a slow admin request, or a healthy broker's session would expire.
    pub lifecycle_channel: ControllerChannel,
    /// ISR changes (AlterPartition) go on their own connection too: a leader waiting to shrink the ISR
    /// must not queue behind an admin request.
    pub isr_channel: ControllerChannel,
    pub replicas: Arc<ReplicaManager>,
    /// Committed offsets and the groups they belong to (replayed from `__consumer_offsets`).
    pub groups: GroupCoordinator,
    /// Classic group membership (JoinGroup/SyncGroup/Heartbeat/LeaveGroup).
    pub membership: ClassicGroups,
    /// Consumer-protocol groups (KIP-848: ConsumerGroupHeartbeat).
    pub consumers: ConsumerGroups,
    /// Serializes membership writes to `__consumer_offsets` (see `persist_groups`); holds the consumer
    /// group records as last written, so that only what changed is appended.
    pub group_writes: tokio::sync::Mutex<ConsumerGroupRecords>,
    /// The `__consumer_offsets` partitions whose groups this node coordinates (it leads them).
    pub coordinated: crate::coordinator::loading::CoordinatedPartitions,
    /// Set once the broker is registered and caught up: before that, a listener that had to open early
    /// (a broker-only node's inter-broker listener carries the metadata log) turns clients away.
    pub serving_clients: std::sync::atomic::AtomicBool,
    /// The configuration in force: `config` plus the dynamic broker configuration of the metadata log.
    pub effective: EffectiveConfig,
    /// What the image publisher last made of the dynamic broker configuration.
    pub(crate) published_broker_configs: Arc<std::sync::Mutex<Option<BrokerConfigs>>>,
    /// TLS of the node's SSL listeners and of its connections to other nodes' SSL listeners.
    pub tls: Arc<NodeTls>,
    /// ACL authorization (`authorizer.class.name`); allows everything when none is configured.
    pub authorizer: crate::security::acl::Authorizer,
    /// The SCRAM users of `kavka storage format --add-scram`, until the log holds them.
    pub bootstrap_scram: Arc<Vec<crate::security::scram_bootstrap::BootstrapScram>>,
}

/// The broker configuration in force, replaced when dynamic configuration changes.
pub type EffectiveConfig = Arc<std::sync::RwLock<Arc<BrokerConfig>>>;

/// `base` with the image's dynamic broker configuration on top (cluster default, then this node's).
/// Stored values were validated when written; if a newer validation refuses them, the static
/// configuration stays in force and the problem is logged.
pub fn effective_config(base: &BrokerConfig, image: &MetadataImage, node_id: i32) -> BrokerConfig {
    let mut with_defaults = base.clone();
    if let Some(d) = image.cluster_defaults {
        with_defaults.num_partitions = d.num_partitions;
        with_defaults.default_replication_factor = d.default_replication_factor;
        with_defaults.min_insync_replicas = d.min_insync_replicas;
    }
    let cluster = image.broker_config("");
    let node = image.broker_config(&node_id.to_string());
    if cluster.is_empty() && node.is_empty() {
        return with_defaults;
    }
    with_defaults
        .with_dynamic(&cluster, &node)
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "invalid dynamic broker configuration; using the static one");
            with_defaults.clone()
        })
}

/// Says, once per change of the controllers' topic defaults, where this node's own configuration
/// disagrees with them: the controllers' values apply, and a value set only here must not look in force.
fn report_cluster_defaults(base: &BrokerConfig, defaults: &crate::metadata::ClusterDefaults) {
    let differences = [
        (
            "num.partitions",
            base.num_partitions,
            defaults.num_partitions,
        ),
        (
            "default.replication.factor",
            base.default_replication_factor,
            defaults.default_replication_factor,
        ),
        (
            "min.insync.replicas",
            base.min_insync_replicas,
            defaults.min_insync_replicas,
        ),
    ];
    for (key, here, cluster) in differences {
        if here != cluster {
            tracing::warn!(
                key,
                this_node = here,
                controllers = cluster,
                "this node's configuration differs from the controllers' cluster default; the controllers' value applies"
            );
        }
    }
}

impl Broker {
    /// The configuration in force (static plus dynamic).
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        match self.effective.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl Broker {
    /// Writes changed group membership to `__consumer_offsets` (best effort: a failed write is logged;
    /// the group keeps working and is stored again at its next change).
    pub async fn persist_groups(&self, dirty: crate::coordinator::classic::Dirty) {
        if dirty.is_empty() {
            return;
        }
        // Snapshot under the write lock: two writers can never store an older state after a newer one.
        let _writing = self.group_writes.lock().await;
        for group in dirty {
            let Some(value) = self.membership.snapshot(&group, now_ms()) else {
                continue;
            };
            let record = (
                crate::coordinator::records::OffsetsKey::GroupMetadata {
                    group: group.clone(),
                },
                Some(crate::coordinator::OffsetsValue::Group(value)),
            );
            if let Err(code) =
                crate::coordinator::write_group_records(self, &group, vec![record]).await
            {
                tracing::warn!(group = %group, error_code = code, "cannot store group membership");
            }
        }
    }
}

impl Broker {
    /// Writes the records of consumer groups whose state changed: what differs from the last write, and
    /// tombstones for what is gone (a departed member, a deleted group). Returns the Kafka error code of
    /// a failed write, which the caller answers with.
    pub async fn persist_consumer_groups(&self, dirty: Vec<String>) -> Result<(), i16> {
        let mut written = self.group_writes.lock().await;
        let mut result = Ok(());
        for group in dirty {
            let wanted = self
                .consumers
                .group(&group)
                .map(|g| consumer::group_records(&group, &g))
                .unwrap_or_default();
            let old = written.get(&group);
            let mut changes: Vec<OffsetsRecord> = Vec::new();
            // Kafka's order: member metadata, group epoch, targets, then current assignments; removals
            // current assignment first.
            let mut upserts: Vec<(&ConsumerGroupKey, &ConsumerGroupValue)> = wanted
                .iter()
                .filter(|(k, v)| old.and_then(|o| o.get(*k)) != Some(*v))
                .collect();
            upserts.sort_by_key(|(k, _)| write_rank(k));
            for (k, v) in upserts {
                changes.push((
                    OffsetsKey::ConsumerGroup(k.clone()),
                    Some(OffsetsValue::ConsumerGroup(v.clone())),
                ));
            }
            if let Some(old) = old {
                let mut gone: Vec<&ConsumerGroupKey> =
                    old.keys().filter(|k| !wanted.contains_key(*k)).collect();
                gone.sort_by_key(|k| std::cmp::Reverse(k.record_type()));
                changes.extend(
                    gone.into_iter()
                        .map(|k| (OffsetsKey::ConsumerGroup(k.clone()), None)),
                );
            }
            if changes.is_empty() {
                continue;
            }
            match crate::coordinator::write_group_records(self, &group, changes).await {
                Ok(()) => {
                    if wanted.is_empty() {
                        written.remove(&group);
                    } else {
                        written.insert(group, wanted);
                    }
                }
                Err(code) => {
                    tracing::warn!(group = %group, error_code = code, "cannot store consumer group state");
                    result = Err(code);
                }
            }
        }
        result
    }
}

fn write_rank(key: &ConsumerGroupKey) -> u8 {
    match key {
        ConsumerGroupKey::MemberMetadata { .. } => 0,
        ConsumerGroupKey::Metadata { .. } => 1,
        ConsumerGroupKey::TargetAssignmentMember { .. } => 2,
        ConsumerGroupKey::TargetAssignmentMetadata { .. } => 3,
        ConsumerGroupKey::CurrentMemberAssignment { .. } => 4,
    }
}

impl Broker {
    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.controller.image()
    }

    /// Runs a controller operation on a blocking thread (it waits for the metadata quorum) and brings the
    /// hosted replicas in line with the resulting image before returning, so a created topic is writable
    /// as soon as the client hears about it.
    pub async fn with_controller<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Controller) -> Result<T, ControllerError> + Send + 'static,
    ) -> Result<T, ControllerError> {
        let controller = self.controller.clone();
        let publisher = self.publisher();
        let joined = tokio::task::spawn_blocking(move || {
            let result = operation(&controller)?;
            publisher.publish(&controller.image());
            Ok(result)
        })
        .await;
        match joined {
            Ok(result) => result,
            Err(e) => Err(ControllerError::Metadata(MetadataError::Invalid(format!(
                "controller task failed: {e}"
            )))),
        }
    }

    /// Creates a topic through the active controller, wherever it runs, and returns once this broker's
    /// image has it (a caller may look it up right away).
    pub async fn create_topic(&self, topic: NewTopic) -> Result<(), ControllerError> {
        if self.controller_channel.remote_controller().is_none() {
            return self
                .with_controller(move |c| c.create_topic(&topic, false).map(|_| ()))
                .await;
        }
        let name = topic.name.clone();
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(30_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                .with_num_partitions(topic.num_partitions)
                .with_replication_factor(topic.replication_factor)
                .with_configs(
                    topic
                        .configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default()
                                .with_name(StrBytes::from_string(k.clone()))
                                .with_value(Some(StrBytes::from_string(v.clone())))
                        })
                        .collect(),
                )]);
        let response = self
            .controller_channel
            .request(&request, 7)
            .await
            .map_err(|e| ControllerError::NotController(e.to_string()))?;
        let result = response
            .topics
            .first()
            .ok_or_else(|| ControllerError::Remote {
                code: ResponseError::UnknownServerError.code(),
                message: "the controller answered CreateTopics without the topic".into(),
            })?;
        match result.error_code {
            0 => {}
            code if code == ResponseError::TopicAlreadyExists.code() => {
                return Err(ControllerError::TopicAlreadyExists(name))
            }
            code => {
                return Err(ControllerError::Remote {
                    code,
                    message: result
                        .error_message
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                })
            }
        }
        let mut images = self.quorum.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_secs(10),
            images.wait_for(|image| image.topic(&name).is_some()),
        )
        .await;
        Ok(())
    }

    fn publisher(&self) -> ImagePublisher {
        ImagePublisher {
            replicas: self.replicas.clone(),
            base: self.config.clone(),
            effective: self.effective.clone(),
            node_id: self.node_id,
            broker_configs: self.published_broker_configs.clone(),
        }
    }
}

/// Brings this broker in line with a metadata image: hosted partitions and the configuration in force.
#[derive(Clone)]
struct ImagePublisher {
    replicas: Arc<ReplicaManager>,
    base: Arc<BrokerConfig>,
    effective: EffectiveConfig,
    node_id: i32,
    /// The dynamic broker configuration last turned into the effective configuration.
    broker_configs: Arc<std::sync::Mutex<Option<BrokerConfigs>>>,
}

/// The dynamic broker configuration and the controllers' topic defaults, with the image version they came
/// from.
type BrokerConfigs = (
    u64,
    BTreeMap<String, BTreeMap<String, String>>,
    Option<crate::metadata::ClusterDefaults>,
);

impl ImagePublisher {
    /// Blocking (it opens and deletes partition logs). Images older than one already published are
    /// ignored by the replica manager, so the controller path and the follower path may race.
    fn publish(&self, image: &MetadataImage) {
        let mut published = match self.broker_configs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        // The controller path and the publisher task may race: an image older than the one already
        // published must not bring back an older configuration.
        let newer = published
            .as_ref()
            .is_none_or(|(version, _, _)| image.last_applied > *version);
        let changed = published.as_ref().map(|(_, c, _)| c) != Some(&image.broker_configs);
        let defaults_changed =
            published.as_ref().map(|(_, _, d)| *d) != Some(image.cluster_defaults);
        if newer {
            *published = Some((
                image.last_applied,
                image.broker_configs.clone(),
                image.cluster_defaults,
            ));
        }
        if newer && defaults_changed {
            if let Some(defaults) = &image.cluster_defaults {
                report_cluster_defaults(&self.base, defaults);
            }
        }
        if newer && (changed || defaults_changed) {
            let config = Arc::new(effective_config(&self.base, image, self.node_id));
            self.replicas.set_broker_config(config.clone());
            match self.effective.write() {
                Ok(mut g) => *g = config,
                Err(p) => *p.into_inner() = config,
            }
        }
        self.replicas.apply_image(image, now_ms());
    }
}

/// Applies every image the quorum publishes (changes made through other controllers) until shutdown.
async fn image_publisher(
    publisher: ImagePublisher,
    mut images: watch::Receiver<Arc<MetadataImage>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = images.changed() => if changed.is_err() { break },
            _ = shutdown.changed() => break,
        }
        let image = images.borrow_and_update().clone();
        let publisher = publisher.clone();
        if tokio::task::spawn_blocking(move || publisher.publish(&image))
            .await
            .is_err()
        {
            tracing::error!("applying a metadata image failed");
        }
    }
}

/// The TLS settings of the node's SSL listeners and its SASL logins to other nodes, after checking the
/// SASL settings of its SASL listeners (a listener that could authenticate nobody is refused at start-up
/// rather than at the first client).
fn load_tls(config: &BrokerConfig) -> Result<NodeTls, StartupError> {
    use crate::security::sasl::{SaslClientConfig, SaslListener};
    use kavka_config::SecurityProtocol;
    let protocol = |name: &str| config.listener_security_protocol_map.get(name).copied();
    let is_sasl = |name: &str| {
        matches!(
            protocol(name),
            Some(SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl)
        )
    };
    // The active controller sends the metadata log to a broker-only node's inter-broker listener with the
    // controller listener's settings.
    let inter_broker = &config.inter_broker_listener_name;
    if !config.is_controller() {
        if let Some(controller) = config.controller_listener_names.first() {
            if protocol(controller) != protocol(inter_broker) {
                return Err(StartupError::Config(format!(
                    "a broker-only node receives the metadata log on its inter-broker listener {inter_broker}, so it must use the security protocol of the controller listener {controller}"
                )));
            }
        }
    }
    let mut tls = NodeTls::load(config).map_err(|e| StartupError::Config(e.to_string()))?;
    // Checked here for every listener, since SSL listeners read it only when a handshake fails.
    for listener in &config.listeners {
        crate::security::sasl::failed_authentication_delay(config, &listener.name)
            .map_err(StartupError::Config)?;
    }
    for listener in config.listeners.iter().filter(|l| is_sasl(&l.name)) {
        let settings =
            SaslListener::from_config(config, &listener.name).map_err(StartupError::Config)?;
        tls = tls.with_sasl_listener(&listener.name, settings);
    }
    // How this node logs in to the SASL listeners of other nodes it reaches.
    let logins = [
        (Some(inter_broker), "sasl.mechanism.inter.broker.protocol"),
        (
            config.controller_listener_names.first(),
            "sasl.mechanism.controller.protocol",
        ),
    ];
    for (listener, mechanism_key) in logins {
        let Some(listener) = listener.filter(|l| is_sasl(l)) else {
            continue;
        };
        let client = SaslClientConfig::from_config(config, listener, mechanism_key)
            .map_err(StartupError::Config)?;
        tls = tls.with_sasl_client(listener, client);
    }
    Ok(tls)
}

/// How this node takes part in the metadata quorum.
struct QuorumPlan {
    /// The voters a pristine log is initialized with when this node is one of them: `controller.quorum.voters`,
    /// the initial voters `kavka storage format` wrote for a dynamic quorum, or this node alone when neither
    /// quorum key is set (the single-node default, which needs no controller listener since it never talks to
    /// a peer). Empty for a node that joins a dynamic quorum.
    initial_voters: BTreeMap<u64, ControllerNode>,
    /// The controllers a node that is not a voter asks to join: the static voters, or the addresses of
    /// `controller.quorum.bootstrap.servers`.
    contacts: Vec<QuorumContact>,
    /// In a dynamic quorum (KIP-853), a controller's address for the others: where it is replicated to
    /// while it joins as an observer.
    joining_controller_address: Option<ControllerNode>,
}

fn quorum_plan(config: &BrokerConfig, metadata_dir: &Path) -> Result<QuorumPlan, StartupError> {
    let node_id = config.node_id as u64;
    if storage_format::is_dynamic_quorum(config) {
        let initial_voters = storage_format::read_initial_voters(metadata_dir)
            .map_err(|message| StartupError::LogDir {
                path: metadata_dir.display().to_string(),
                message,
            })?
            .unwrap_or_default();
        let joining_controller_address = if config.is_controller() {
            Some(storage_format::controller_endpoint(config).map_err(StartupError::Config)?)
        } else {
            None
        };
        return Ok(QuorumPlan {
            initial_voters,
            joining_controller_address,
            contacts: config
                .controller_quorum_bootstrap_servers
                .iter()
                .map(|address| QuorumContact {
                    node_id: None,
                    address: address.clone(),
                })
                .collect(),
        });
    }
    if config.controller_quorum_voters.is_empty() {
        return Ok(QuorumPlan {
            initial_voters: BTreeMap::from([(node_id, ControllerNode::default())]),
            contacts: Vec::new(),
            joining_controller_address: None,
        });
    }
    let voters: BTreeMap<u64, ControllerNode> = config
        .controller_quorum_voters
        .iter()
        .map(|v| {
            (
                v.id as u64,
                ControllerNode {
                    host: v.host.clone(),
                    port: v.port,
                },
            )
        })
        .collect();
    Ok(QuorumPlan {
        contacts: voters
            .iter()
            .map(|(id, node)| QuorumContact {
                node_id: Some(*id),
                address: node.to_string(),
            })
            .collect(),
        initial_voters: voters,
        joining_controller_address: None,
    })
}

/// `meta.properties` in each log dir records the cluster id and node id (as Kafka's does), so that a data
/// directory is never silently reused by another node or cluster. A directory without one is formatted here
/// when `may_format`; otherwise (a dynamic quorum) it must have been formatted with `kavka storage format`.
fn load_or_create_meta_properties(
    dir: &Path,
    node_id: i32,
    may_format: bool,
) -> Result<String, StartupError> {
    let path = dir.join("meta.properties");
    let log_dir_error = |message: String| StartupError::LogDir {
        path: dir.display().to_string(),
        message,
    };
    if let Ok(text) = std::fs::read_to_string(&path) {
        let meta = parse_meta_properties(&text)
            .map_err(|e| log_dir_error(format!("unreadable meta.properties: {e}")))?;
        if meta.node_id != Some(node_id) {
            return Err(log_dir_error(format!(
                "meta.properties belongs to node.id {:?}, but this node is node.id {node_id}",
                meta.node_id
            )));
        }
        return Ok(meta.cluster_id);
    }
    if !may_format {
        return Err(log_dir_error(
            "not formatted: a node of a dynamic quorum (controller.quorum.bootstrap.servers) needs `kavka storage format --cluster-id <id> --config <file>` first, with --standalone, --initial-controllers or --no-initial-controllers on a controller".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| log_dir_error(e.to_string()))?;
    let cluster_id = new_cluster_id();
    let tmp = dir.join("meta.properties.tmp");
    std::fs::write(&tmp, render_meta_properties(&cluster_id, node_id))
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| log_dir_error(e.to_string()))?;
    tracing::info!(%cluster_id, dir = %dir.display(), "formatted new log directory");
    Ok(cluster_id)
}

/// Starts the broker and runs it until `shutdown` resolves.
pub async fn run(
    config: BrokerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StartupError> {
    let config = Arc::new(config);
    let tls = Arc::new(load_tls(&config)?);
    let authorizer = crate::security::acl::Authorizer::from_config(
        &config.authorizer_class_name,
        &config.super_users,
        config
            .security
            .get("allow.everyone.if.no.acl.found")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
    )
    .map_err(StartupError::Config)?;
    let node_id = config.node_id;
    let log_dirs: Vec<PathBuf> = config.log_dirs.iter().map(PathBuf::from).collect();
    let first_dir = log_dirs
        .first()
        .cloned()
        .ok_or_else(|| StartupError::LogDir {
            path: String::new(),
            message: "log.dirs is empty".into(),
        })?;
    let mut cluster_id = String::new();
    for dir in &log_dirs {
        let id = load_or_create_meta_properties(
            dir,
            node_id,
            !storage_format::is_dynamic_quorum(&config),
        )?;
        if cluster_id.is_empty() {
            cluster_id = id;
        } else if cluster_id != id {
            return Err(StartupError::LogDir {
                path: dir.display().to_string(),
                message: format!(
                    "belongs to cluster {id}, but {} belongs to {cluster_id}",
                    first_dir.display()
                ),
            });
        }
    }
    let plan = quorum_plan(&config, &first_dir)?;
    let bootstrap_scram =
        crate::security::scram_bootstrap::read(&first_dir).map_err(|message| {
            StartupError::LogDir {
                path: first_dir.display().to_string(),
                message,
            }
        })?;
    let quorum = Arc::new(
        MetadataQuorum::start(
            &first_dir,
            &cluster_id,
            config
                .controller_listener_names
                .first()
                .map(|name| tls.peer(name))
                .unwrap_or_default(),
            node_id as u64,
            plan.initial_voters.clone(),
            QuorumTiming {
                election_timeout: Duration::from_millis(
                    config.controller_quorum_election_timeout_ms.max(1) as u64,
                ),
            },
        )
        .await?,
    );
    let controller = Arc::new(Controller::new(
        node_id,
        TopicDefaults {
            num_partitions: config.num_partitions,
            replication_factor: config.default_replication_factor.clamp(-1, i16::MAX as i32) as i16,
            delete_topic_enable: config.delete_topic_enable,
            min_insync_replicas: config.min_insync_replicas,
        },
        Arc::new(QuorumJournal::new(quorum.clone())),
    ));
    let effective = Arc::new(effective_config(&config, &quorum.image(), node_id));
    let replicas = Arc::new(ReplicaManager::new(node_id, effective.clone()));
    let (controller_listeners, client_listeners): (Vec<_>, Vec<_>) = bind_listeners(&config, &tls)
        .await?
        .into_iter()
        .partition(|l| l.is_controller);
    let endpoints = client_listeners
        .iter()
        .map(|l| BrokerEndpoint {
            name: l.name.clone(),
            host: l.advertised_host.clone(),
            port: u16::try_from(l.advertised_port).unwrap_or(0),
            security_protocol: l.security_protocol.id(),
        })
        .collect();
    let broker = Arc::new(Broker {
        lifecycle: BrokerLifecycle::new(
            endpoints,
            lifecycle::take_clean_shutdown_epoch(&first_dir),
        ),
        config: config.clone(),
        node_id,
        cluster_id: cluster_id.clone(),
        controller,
        quorum: quorum.clone(),
        controller_channel: ControllerChannel::new(quorum.clone()),
        // A heartbeat that a hung controller does not answer is given up within two intervals, so the
        // next one can reach a newly elected controller before this broker's session ends.
        lifecycle_channel: ControllerChannel::with_timeout(
            quorum.clone(),
            (Duration::from_millis(config.broker_heartbeat_interval_ms.max(1) as u64) * 2)
                .clamp(Duration::from_secs(2), Duration::from_secs(30)),
        ),
        isr_channel: ControllerChannel::new(quorum.clone()),
        replicas: replicas.clone(),
        groups: GroupCoordinator::default(),
        membership: ClassicGroups::new(group_settings(&config)),
        consumers: ConsumerGroups::new(consumer_group_settings(&config)),
        group_writes: tokio::sync::Mutex::new(ConsumerGroupRecords::new()),
        coordinated: Default::default(),
        serving_clients: std::sync::atomic::AtomicBool::new(false),
        effective: Arc::new(std::sync::RwLock::new(effective)),
        published_broker_configs: Arc::new(std::sync::Mutex::new(None)),
        tls: tls.clone(),
        authorizer,
        bootstrap_scram: Arc::new(bootstrap_scram),
    });
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    // A broker-only node receives the metadata log on its inter-broker listener, which therefore serves
    // from the start; clients are turned away there until the broker is ready.
    let broker_observer_address = (!config.is_controller()).then(|| {
        client_listeners
            .iter()
            .find(|l| l.name == config.inter_broker_listener_name)
            .map(|l| ControllerNode {
                host: l.advertised_host.clone(),
                port: u16::try_from(l.advertised_port).unwrap_or(0),
            })
    });
    let (early_listeners, client_listeners): (Vec<_>, Vec<_>) =
        client_listeners.into_iter().partition(|l| {
            broker_observer_address.is_some() && l.name == config.inter_broker_listener_name
        });
    // Controller listeners serve first: the quorum cannot elect a leader before its peers hear each other.
    for listener in controller_listeners.into_iter().chain(early_listeners) {
        tasks.push(tokio::spawn(run_listener(
            listener,
            broker.clone(),
            shutdown_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(tls.clone().watch(shutdown_rx.clone())));
    let mut shutdown = std::pin::pin!(shutdown);
    let catch_up = async {
        // Configuration validation guarantees a broker-only node's inter-broker listener exists.
        let observer_address = match (&broker_observer_address, &plan.joining_controller_address) {
            (Some(broker_address), _) => broker_address.clone(),
            (None, Some(controller_address)) if !quorum.is_voter(Duration::from_secs(2)).await => {
                Some(controller_address.clone())
            }
            _ => None,
        };
        if let Some(address) = &observer_address {
            join_quorum_as(
                &quorum,
                &plan.contacts,
                &cluster_id,
                address,
                JoinAs::Observer,
            )
            .await;
            if plan.joining_controller_address.is_some() {
                if config.controller_quorum_auto_join_enable {
                    // KIP-853's auto-join: the active controller promotes it once it has caught up.
                    let (quorum, contacts) = (quorum.clone(), plan.contacts.clone());
                    let (cluster_id, address) = (cluster_id.clone(), address.clone());
                    tokio::spawn(async move {
                        join_quorum_as(&quorum, &contacts, &cluster_id, &address, JoinAs::Voter)
                            .await
                    });
                } else {
                    tracing::info!(
                        "this controller follows the metadata log as an observer and does not vote: controller.quorum.auto.join.enable is false"
                    );
                }
            }
        }
        await_metadata(&quorum).await
    };
    // A node that cannot reach a majority waits here; a stop request must still stop it.
    tokio::select! {
        _ = catch_up => {}
        _ = &mut shutdown => {
            tracing::info!("stopped before the metadata quorum was reached");
            let _ = shutdown_tx.send(true);
            quorum.shutdown().await;
            return Ok(());
        }
        reason = quorum.failure() => {
            let _ = shutdown_tx.send(true);
            return Err(metadata_log_failed(&first_dir, reason));
        }
    }
    quorum.import_legacy_log(&first_dir).await?;
    if quorum.leader() == Some(quorum.node_id()) {
        // A restarted single node (or the active controller) brings its configured topic defaults into
        // force before any client is served, not at its first periodic check.
        if let Err(e) = broker
            .with_controller(|c| c.publish_cluster_defaults())
            .await
        {
            tracing::warn!(error = %e, "cannot publish the cluster topic defaults yet");
        }
    }
    {
        let publisher = broker.publisher();
        let image = quorum.image();
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || publisher.publish(&image))
            .await
            .map_err(|e| StartupError::LogDir {
                path: first_dir.display().to_string(),
                message: format!("log recovery task failed: {e}"),
            })?;
        tracing::info!(
            partitions = replicas.partition_count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "partition logs loaded"
        );
    }
    tasks.push(tokio::spawn(image_publisher(
        broker.publisher(),
        quorum.subscribe(),
        shutdown_rx.clone(),
    )));
    let session = Duration::from_millis(config.broker_session_timeout_ms.max(1) as u64);
    // A controller-only node (process.roles=controller) registers no broker, hosts no partition and
    // coordinates no group: it serves its controller listener only.
    if config.is_broker() {
        lifecycle::start(&broker, session).await;
        // Unfencing may have handed leaderships back: the replicas follow the image before the groups
        // of the offsets partitions this node leads are loaded.
        let (publisher, image) = (broker.publisher(), quorum.image());
        let _ = tokio::task::spawn_blocking(move || publisher.publish(&image)).await;
        // Once registered: groups whose offsets partition this node leads are loaded before clients are
        // served, so that no client sees an offset missing that was committed before a restart.
        crate::coordinator::loading::sync(&broker).await;
        tasks.push(tokio::spawn(crate::coordinator::loading::run(
            broker.clone(),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(lifecycle::run(
            broker.clone(),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::replica::fetcher::run(
            broker.clone(),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::replica::isr::run(
            broker.clone(),
            shutdown_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(fence_expired_brokers(
        broker.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(rebalance_leaders(
        broker.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(high_watermark_checkpointer(
        broker.clone(),
        shutdown_rx.clone(),
    )));
    broker
        .serving_clients
        .store(true, std::sync::atomic::Ordering::Release);
    for listener in client_listeners {
        tasks.push(tokio::spawn(run_listener(
            listener,
            broker.clone(),
            shutdown_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(group_timer(
        broker.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(flush_scheduler(
        broker.clone(),
        shutdown_rx.clone(),
    )));
    tasks.push(tokio::spawn(retention_scheduler(
        broker.clone(),
        shutdown_rx.clone(),
    )));
    // Compaction runs on its own thread: its work is long, blocking file I/O.
    let cleaner_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cleaner = config.log_cleaner_enable.then(|| {
        let (replicas, config, stop) = (
            replicas.clone(),
            broker.effective.clone(),
            cleaner_stop.clone(),
        );
        std::thread::Builder::new()
            .name("log-cleaner".into())
            .spawn(move || crate::replica::cleaner::run(replicas, config, stop))
    });
    tracing::info!(node_id, %cluster_id, "Kavka broker started");
    let failure = tokio::select! {
        _ = shutdown => None,
        reason = quorum.failure() => Some(metadata_log_failed(&first_dir, reason)),
    };
    match &failure {
        None => tracing::info!("shutting down"),
        Some(e) => {
            tracing::error!(error = %e, "shutting down: this node cannot follow the metadata log any more")
        }
    }
    lifecycle::controlled_shutdown(&broker, Duration::from_secs(5)).await;
    let _ = shutdown_tx.send(true);
    cleaner_stop.store(true, std::sync::atomic::Ordering::Release);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    if let Some(Ok(handle)) = cleaner {
        // The cleaner stops between segments; a swap in progress completes first.
        let _ = tokio::task::spawn_blocking(move || handle.join()).await;
    }
    quorum.shutdown().await;
    let started = std::time::Instant::now();
    let _ = tokio::task::spawn_blocking(move || replicas.close_all()).await;
    if broker.lifecycle.epoch() >= 0 {
        lifecycle::write_clean_shutdown_epoch(&first_dir, broker.lifecycle.epoch());
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "logs closed; broker stopped"
    );
    failure.map_or(Ok(()), Err)
}

fn metadata_log_failed(first_dir: &Path, reason: String) -> StartupError {
    StartupError::MetadataLogFailed {
        dir: first_dir
            .join(crate::controller::quorum::METADATA_DIR)
            .display()
            .to_string(),
        reason,
    }
}

/// Runs `operation` every `period` while this node is the active controller, until shutdown, handing
/// each outcome to `report`.
async fn on_active_controller<T: Send + 'static>(
    broker: &Broker,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
    operation: impl Fn(&Controller) -> Result<T, ControllerError> + Clone + Send + 'static,
    report: impl Fn(Result<T, ControllerError>),
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = shutdown.changed() => return,
        }
        if broker.quorum.leader() != Some(broker.quorum.node_id()) {
            continue;
        }
        report(broker.with_controller(operation.clone()).await);
    }
}

/// On the active controller: publishes its topic defaults as the cluster's (once, or when another
/// controller's differed) and fences brokers whose session expired, checking a few times per session.
async fn fence_expired_brokers(broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    let session = Duration::from_millis(broker.config.broker_session_timeout_ms.max(1) as u64);
    // A live broker heartbeats every interval, and retries a failed heartbeat (to a controller that
    // just died) within a quarter second: one interval and a second is enough to be heard from.
    let interval = Duration::from_millis(broker.config.broker_heartbeat_interval_ms.max(1) as u64);
    let takeover_grace = (interval + Duration::from_secs(1)).min(session);
    let tick = (session / 8).clamp(Duration::from_millis(50), Duration::from_millis(500));
    let bootstrap_scram = broker.bootstrap_scram.clone();
    let check = move |c: &Controller| {
        c.publish_cluster_defaults()?;
        c.apply_scram_bootstrap(&bootstrap_scram)?;
        c.fence_expired_brokers(session, takeover_grace)
    };
    on_active_controller(&broker, tick, shutdown, check, |outcome| {
        if let Err(e) = outcome {
            tracing::debug!(error = %e, "fencing check skipped");
        }
    })
    .await;
}

/// On the active controller, while `auto.leader.rebalance.enable`, moves leaderships back to their
/// preferred replicas every `leader.imbalance.check.interval.seconds` when a broker's share of partitions
/// led elsewhere exceeds `leader.imbalance.per.broker.percentage`.
async fn rebalance_leaders(broker: Arc<Broker>, shutdown: watch::Receiver<bool>) {
    if !broker.config.auto_leader_rebalance_enable {
        return;
    }
    let interval =
        Duration::from_secs(broker.config.leader_imbalance_check_interval_seconds.max(1) as u64);
    let percentage = broker.config.leader_imbalance_per_broker_percentage;
    let rebalance = move |c: &Controller| c.rebalance_preferred_leaders(percentage);
    on_active_controller(
        &broker,
        interval,
        shutdown,
        rebalance,
        |outcome| match outcome {
            Ok(0) => {}
            Ok(moved) => tracing::info!(moved, "leader imbalance corrected"),
            Err(e) => tracing::debug!(error = %e, "leader rebalance skipped"),
        },
    )
    .await;
}

/// A node that is not a voter asks the controllers to make it an observer (replicate the metadata log to
/// it) or a voter, until one accepts.
async fn join_quorum_as(
    quorum: &MetadataQuorum,
    contacts: &[QuorumContact],
    cluster_id: &str,
    address: &ControllerNode,
    join_as: JoinAs,
) {
    let mut logged = None;
    let (node_id, tls) = (quorum.node_id(), quorum.controller_security());
    loop {
        match join_quorum(contacts, cluster_id, tls.clone(), node_id, address, join_as).await {
            Ok(()) => {
                match join_as {
                    JoinAs::Observer => {
                        tracing::info!(%address, "following the metadata log as an observer")
                    }
                    JoinAs::Voter => {
                        tracing::info!(%address, "this controller is now a voter of the metadata quorum")
                    }
                }
                return;
            }
            Err(e) => {
                if logged.as_ref() != Some(&e) {
                    tracing::warn!(error = %e, ?join_as, "the metadata quorum did not accept this node yet; retrying");
                    logged = Some(e);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Waits, before clients are served, until this node knows the active controller and has applied the
/// metadata committed so far (as far as it can tell): a restarted broker must not answer from an image older
/// than the one it had. A quorum without a majority yet is waited for with a log line now and then.
async fn await_metadata(quorum: &MetadataQuorum) {
    let started = std::time::Instant::now();
    loop {
        if let Some(leader) = quorum.wait_for_leader(Duration::from_secs(5)).await {
            if leader == quorum.node_id() {
                // The leader has applied everything once it confirms leadership.
                if quorum.image_for_update().await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            } else {
                let target = quorum.raft().metrics().borrow().last_log_index.unwrap_or(0);
                let _ = quorum
                    .raft()
                    .wait(Some(Duration::from_secs(10)))
                    .applied_index_at_least(Some(target), "catch up at start-up")
                    .await;
                break;
            }
        }
        let voters = quorum
            .raft()
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect::<Vec<_>>();
        tracing::info!(
            ?voters,
            waited_ms = started.elapsed().as_millis() as u64,
            "waiting for the metadata quorum to elect a leader"
        );
    }
    tracing::info!(
        leader = ?quorum.leader(),
        metadata_offset = quorum.image().metadata_offset,
        "metadata caught up"
    );
}

/// Group limits from the broker configuration.
pub fn group_settings(config: &BrokerConfig) -> GroupSettings {
    let ms = |v: i32| Duration::from_millis(v.max(0) as u64);
    GroupSettings {
        min_session_timeout: ms(config.group_min_session_timeout_ms),
        max_session_timeout: ms(config.group_max_session_timeout_ms),
        initial_rebalance_delay: ms(config.group_initial_rebalance_delay_ms),
        max_size: config.group_max_size.max(1) as usize,
    }
}

/// Consumer-protocol group settings from the broker configuration.
pub fn consumer_group_settings(config: &BrokerConfig) -> ConsumerSettings {
    let ms = |v: i32| Duration::from_millis(v.max(0) as u64);
    ConsumerSettings {
        session_timeout: ms(config.group_consumer_session_timeout_ms),
        heartbeat_interval: ms(config.group_consumer_heartbeat_interval_ms),
        max_size: config.group_consumer_max_size.max(1) as usize,
        assignors: config.group_consumer_assignors.clone(),
    }
}

/// Expires group sessions and rebalance deadlines. 100 ms is well below any session timeout Kafka allows
/// (group.min.session.timeout.ms defaults to 6 s).
async fn group_timer(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let retention_check =
        Duration::from_millis(broker.config.offsets_retention_check_interval_ms.max(1) as u64);
    let mut next_retention_check = std::time::Instant::now() + retention_check;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let now = std::time::Instant::now();
                let dirty = broker.membership.tick(now);
                broker.persist_groups(dirty).await;
                let dirty = broker.consumers.tick(now, now_ms());
                let _ = broker.persist_consumer_groups(dirty).await;
                if now >= next_retention_check {
                    next_retention_check = now + retention_check;
                    expire_offsets(&broker).await;
                }
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// `offsets.retention.minutes`: committed offsets of groups without members are deleted once older
/// than the retention (tombstones in `__consumer_offsets`).
async fn expire_offsets(broker: &Broker) {
    let retention_ms = i64::from(broker.config.offsets_retention_minutes) * 60_000;
    let cutoff = now_ms().saturating_sub(retention_ms);
    let expired = broker.groups.expired_offsets(cutoff, |group| {
        broker
            .consumers
            .offset_expiry(group)
            .unwrap_or_else(|| broker.membership.offset_expiry(group))
    });
    for (group, records) in expired {
        let count = records.len();
        match crate::coordinator::write_group_records(broker, &group, records).await {
            Ok(()) => {
                tracing::info!(group = %group, offsets = count, "expired committed offsets (offsets.retention.minutes)")
            }
            Err(code) => {
                tracing::warn!(group = %group, error_code = code, "cannot expire committed offsets")
            }
        }
    }
    // An empty consumer group with no offsets left is deleted, as Kafka does once its offsets expire.
    let gone: Vec<String> = broker
        .consumers
        .group_ids()
        .into_iter()
        .filter(|g| {
            !broker.consumers.has_members(g)
                && broker.groups.group(g).is_none()
                && matches!(
                    broker.consumers.offset_expiry(g),
                    Some(OffsetExpiry::EmptySince(since)) if since < cutoff
                )
        })
        .collect();
    for group in gone {
        broker.consumers.remove_group(&group);
        if broker
            .persist_consumer_groups(vec![group.clone()])
            .await
            .is_ok()
        {
            tracing::info!(group = %group, "empty consumer group deleted (offsets.retention.minutes)");
        }
    }
}

/// Retention (`retention.ms`, `retention.bytes`, DeleteRecords' log start) every
/// `log.retention.check.interval.ms`, on a blocking thread (it deletes files).
async fn retention_scheduler(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let interval =
        Duration::from_millis(broker.config.log_retention_check_interval_ms.max(1) as u64);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let replicas = broker.replicas.clone();
                let _ = tokio::task::spawn_blocking(move || replicas.enforce_retention(now_ms())).await;
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// Time-based flushing (`log.flush.interval.ms` / topic `flush.ms`), checked every
/// `log.flush.scheduler.interval.ms` (at most once a second, since flush.ms is per log).
/// Writes every partition's high watermark every `replica.high.watermark.checkpoint.interval.ms`, so a
/// restarted replica knows what was committed (a crash loses at most one interval of progress).
async fn high_watermark_checkpointer(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let interval_ms = broker
        .config
        .replica_high_watermark_checkpoint_interval_ms
        .max(100) as u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let replicas = broker.replicas.clone();
                let _ = tokio::task::spawn_blocking(move || replicas.checkpoint_high_watermarks()).await;
            }
            _ = shutdown.changed() => break,
        }
    }
}

async fn flush_scheduler(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let interval_ms = broker
        .config
        .log_flush_scheduler_interval_ms
        .clamp(10, 1000) as u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let replicas = broker.replicas.clone();
                let _ = tokio::task::spawn_blocking(move || replicas.flush_due(now_ms())).await;
            }
            _ = shutdown.changed() => break,
        }
    }
}
