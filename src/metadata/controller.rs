//! The controller: validates metadata changes and commits them as records to the metadata log through a
//! [`MetadataJournal`] (the Raft quorum in Kavka, see `crate::controller`), deciding on the image that
//! journal vouches is current.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::image::MetadataImage;
use super::records::MetadataRecord;
use super::MetadataError;

/// Producer ids are reserved in blocks so that the log is written once per block, not per producer.
const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;
/// Kafka's cap on partitions created by one request (ReplicationControlManager.MAX_PARTITIONS_PER_BATCH):
/// also what keeps a request from making the controller allocate without bound.
pub const MAX_PARTITIONS_PER_REQUEST: i32 = 10_000;
/// Kafka's limit on topic name length (so that `<topic>-<partition>` fits in a file name).
const MAX_TOPIC_NAME_LEN: usize = 249;

/// A topic creation request after defaults (-1) have been resolved by the caller or not.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 = `num.partitions`.
    pub num_partitions: i32,
    /// -1 = `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual assignment: replicas per partition, in partition order.
    pub assignments: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

/// How a request names a topic.
#[derive(Debug, Clone)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

/// A rejected metadata change, carrying the Kafka error it is reported as.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Topic '{0}' already exists.")]
    TopicAlreadyExists(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidReplicaAssignment(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("Excessively large number of partitions per request.")]
    TooManyPartitions,
    #[error("This server does not host this topic-partition.")]
    UnknownTopic,
    #[error("This server does not host this topic ID.")]
    UnknownTopicId,
    #[error("Topic deletion is disabled.")]
    TopicDeletionDisabled,
    /// This node is not (or no longer) the active controller: the client or forwarding broker retries
    /// against the current one.
    #[error("{0}")]
    NotController(String),
    /// The active controller (another node) refused the change with this Kafka error.
    #[error("{message}")]
    Remote { code: i16, message: String },
    #[error("The metadata quorum did not answer within {0:?} (is a majority of controllers up?)")]
    QuorumTimeout(std::time::Duration),
    #[error("{0}")]
    DuplicateBrokerRegistration(String),
    #[error("Broker {0} is not registered.")]
    BrokerIdNotRegistered(i32),
    #[error("{0}")]
    StaleBrokerEpoch(String),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

impl ControllerError {
    /// The Kafka error code a client expects for this rejection.
    pub fn code(&self) -> i16 {
        if let ControllerError::Remote { code, .. } = self {
            return *code;
        }
        let error = match self {
            ControllerError::Remote { .. } => ResponseError::UnknownServerError,
            ControllerError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
            ControllerError::InvalidTopic(_) => ResponseError::InvalidTopicException,
            ControllerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            ControllerError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            ControllerError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            ControllerError::InvalidConfig(_) => ResponseError::InvalidConfig,
            ControllerError::InvalidRequest(_) => ResponseError::InvalidRequest,
            ControllerError::TooManyPartitions => ResponseError::PolicyViolation,
            ControllerError::UnknownTopic => ResponseError::UnknownTopicOrPartition,
            ControllerError::UnknownTopicId => ResponseError::UnknownTopicId,
            ControllerError::TopicDeletionDisabled => ResponseError::TopicDeletionDisabled,
            ControllerError::NotController(_) => ResponseError::NotController,
            ControllerError::QuorumTimeout(_) => ResponseError::RequestTimedOut,
            ControllerError::DuplicateBrokerRegistration(_) => {
                ResponseError::DuplicateBrokerRegistration
            }
            ControllerError::BrokerIdNotRegistered(_) => ResponseError::BrokerIdNotRegistered,
            ControllerError::StaleBrokerEpoch(_) => ResponseError::StaleBrokerEpoch,
            ControllerError::Metadata(_) => ResponseError::KafkaStorageError,
        };
        error.code()
    }
}

/// Defaults the controller applies to topic creation (from the broker configuration).
#[derive(Debug, Clone)]
pub struct TopicDefaults {
    pub num_partitions: i32,
    pub replication_factor: i16,
    pub delete_topic_enable: bool,
    /// `min.insync.replicas` of the controllers: the cluster default for topics without an override.
    pub min_insync_replicas: i32,
}

/// Where the controller commits its records and reads the image it decides on.
pub trait MetadataJournal: Send + Sync {
    /// The image to decide a change on: it holds every record committed before the call. Fails with
    /// [`ControllerError::NotController`] when this node may not write.
    fn image_for_update(&self) -> Result<Arc<MetadataImage>, ControllerError>;
    /// Commits `records` atomically (all or none) and returns an image that includes them.
    fn commit(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, ControllerError>;
    /// The newest image this node has applied; cheap, and possibly behind the quorum.
    fn latest(&self) -> Arc<MetadataImage>;
}

pub(super) struct ControllerState {
    /// The next producer id to hand out, inside the block this controller reserved.
    next_producer_id: i64,
    /// End (exclusive) of that block; 0 until the first reservation.
    producer_id_block_end: i64,
}

/// Decides cluster metadata changes; the journal makes them durable and shared.
pub struct Controller {
    node_id: i32,
    defaults: TopicDefaults,
    pub(super) journal: Arc<dyn MetadataJournal>,
    /// Serializes this node's decisions, so two requests never decide on the same image.
    state: Mutex<ControllerState>,
    /// When each broker was last heard from (BrokerHeartbeat), as this controller saw it: session
    /// state is not in the log, so a new active controller gives every broker a fresh session.
    pub(super) heartbeats: Mutex<std::collections::HashMap<i32, std::time::Instant>>,
    /// When the last fencing check completed (see `fence_expired_brokers`).
    pub(super) last_fence_check: Mutex<Option<std::time::Instant>>,
}

impl Controller {
    pub fn new(
        node_id: i32,
        defaults: TopicDefaults,
        journal: Arc<dyn MetadataJournal>,
    ) -> Controller {
        Controller {
            node_id,
            defaults,
            journal,
            state: Mutex::new(ControllerState {
                next_producer_id: 0,
                producer_id_block_end: 0,
            }),
            heartbeats: Mutex::new(Default::default()),
            last_fence_check: Mutex::new(None),
        }
    }

    /// The newest image this node has applied; cheap (an `Arc` clone).
    pub fn image(&self) -> Arc<MetadataImage> {
        self.journal.latest()
    }

    /// Publishes this controller's topic defaults as the cluster's when the image holds others (or none):
    /// run by the active controller, so brokers apply the controllers' values. Returns whether it wrote.
    pub fn publish_cluster_defaults(&self) -> Result<bool, ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        let mine = super::records::ClusterDefaults {
            num_partitions: self.defaults.num_partitions,
            default_replication_factor: i32::from(self.defaults.replication_factor),
            min_insync_replicas: self.defaults.min_insync_replicas,
        };
        if image.cluster_defaults == Some(mine) {
            return Ok(false);
        }
        self.journal
            .commit(vec![MetadataRecord::ClusterDefaults(mine)])?;
        tracing::info!(
            num_partitions = mine.num_partitions,
            default_replication_factor = mine.default_replication_factor,
            min_insync_replicas = mine.min_insync_replicas,
            "cluster topic defaults published by the active controller"
        );
        Ok(true)
    }

    /// A topic's `min.insync.replicas`: its override, else the controllers' (Kafka 4's cluster default).
    pub(super) fn min_isr(&self, topic: &super::image::TopicImage) -> usize {
        topic
            .configs
            .get("min.insync.replicas")
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(self.defaults.min_insync_replicas)
            .max(1) as usize
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, ControllerState> {
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Validates a topic creation; with `validate_only` nothing is written. Returns the topic id and the
    /// resolved partition count and replication factor.
    pub fn create_topic(
        &self,
        topic: &NewTopic,
        validate_only: bool,
    ) -> Result<(Uuid, i32, i16), ControllerError> {
        validate_topic_name(&topic.name)?;
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        if image.topics.contains_key(&topic.name) {
            return Err(ControllerError::TopicAlreadyExists(topic.name.clone()));
        }
        let collision_key = topic.name.replace('.', "_");
        if let Some(existing) = image
            .topics
            .keys()
            .find(|name| name.replace('.', "_") == collision_key)
        {
            return Err(ControllerError::InvalidTopic(format!(
                "Topic '{}' collides with existing topic: {existing}",
                topic.name
            )));
        }
        let live = live_broker_ids(&image);
        let assignments = if topic.assignments.is_empty() {
            let partitions = if topic.num_partitions == -1 {
                self.defaults.num_partitions
            } else {
                topic.num_partitions
            };
            let rf = if topic.replication_factor == -1 {
                self.defaults.replication_factor
            } else {
                topic.replication_factor
            };
            if partitions < 1 {
                return Err(ControllerError::InvalidPartitions(
                    "Number of partitions was set to an invalid non-positive value.".into(),
                ));
            }
            if rf < 1 {
                return Err(ControllerError::InvalidReplicationFactor(
                    "Replication factor must be larger than 0.".into(),
                ));
            }
            if partitions > MAX_PARTITIONS_PER_REQUEST {
                return Err(ControllerError::TooManyPartitions);
            }
            assign_replicas(&live, partitions, rf)?
        } else {
            if topic.num_partitions != -1 || topic.replication_factor != -1 {
                return Err(ControllerError::InvalidRequest(
                    "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.".into(),
                ));
            }
            if topic.assignments.len() > MAX_PARTITIONS_PER_REQUEST as usize {
                return Err(ControllerError::TooManyPartitions);
            }
            validate_assignments(&topic.assignments, &live)?;
            topic.assignments.clone()
        };
        let config_pairs: Vec<(String, String)> = topic
            .configs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        kavka_config::validate_topic_configs(&config_pairs)
            .map_err(|e| ControllerError::InvalidConfig(e.to_string()))?;
        let partitions = assignments.len() as i32;
        let rf = assignments.first().map(|r| r.len()).unwrap_or(0) as i16;
        let topic_id = Uuid::new_v4();
        if validate_only {
            return Ok((topic_id, partitions, rf));
        }
        let mut records = vec![MetadataRecord::Topic {
            name: topic.name.clone(),
            topic_id,
        }];
        if !topic.configs.is_empty() {
            records.push(MetadataRecord::TopicConfig {
                topic_id,
                configs: topic
                    .configs
                    .iter()
                    .map(|(k, v)| (k.clone(), Some(v.clone())))
                    .collect(),
            });
        }
        records.extend(partition_records(topic_id, 0, &assignments, &live));
        self.journal.commit(records)?;
        tracing::info!(topic = %topic.name, %topic_id, partitions, replication_factor = rf, "topic created");
        Ok((topic_id, partitions, rf))
    }

    /// Deletes a topic by name or id; returns its name and id.
    pub fn delete_topic(&self, topic: &TopicRef) -> Result<(String, Uuid), ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        let found = match topic {
            TopicRef::Name(name) => image.topic(name).ok_or(ControllerError::UnknownTopic)?,
            TopicRef::Id(id) => image
                .topic_by_id(id)
                .ok_or(ControllerError::UnknownTopicId)?,
        };
        let (name, topic_id) = (found.name.clone(), found.topic_id);
        if !self.defaults.delete_topic_enable {
            return Err(ControllerError::TopicDeletionDisabled);
        }
        if found.is_internal() {
            return Err(ControllerError::InvalidRequest(format!(
                "Topic {name} is an internal topic and cannot be deleted."
            )));
        }
        self.journal
            .commit(vec![MetadataRecord::RemoveTopic { topic_id }])?;
        tracing::info!(topic = %name, %topic_id, "topic deleted");
        Ok((name, topic_id))
    }

    /// Replaces a topic's configuration overrides with `overrides` (AlterConfigs and
    /// IncrementalAlterConfigs compute the new set; `build` gets the current one). Values are validated
    /// as for CreateTopics; `validate_only` checks without writing.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        validate_only: bool,
        build: impl FnOnce(
            &BTreeMap<String, String>,
        ) -> Result<BTreeMap<String, String>, kavka_config::ConfigError>,
    ) -> Result<(), ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        let topic = image.topic(name).ok_or(ControllerError::UnknownTopic)?;
        let topic_id = topic.topic_id;
        let next =
            build(&topic.configs).map_err(|e| ControllerError::InvalidConfig(e.to_string()))?;
        let pairs: Vec<(String, String)> =
            next.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        kavka_config::validate_topic_configs(&pairs)
            .map_err(|e| ControllerError::InvalidConfig(e.to_string()))?;
        if validate_only {
            return Ok(());
        }
        let changes = config_changes(&topic.configs, &next);
        if changes.is_empty() {
            return Ok(());
        }
        tracing::info!(topic = %name, changes = ?changes, "topic configuration changed");
        self.journal.commit(vec![MetadataRecord::TopicConfig {
            topic_id,
            configs: changes,
        }])?;
        Ok(())
    }

    /// Replaces the dynamic configuration of one broker level ("" = cluster-wide default) with what
    /// `build` makes of the current one; only keys Kafka can change at run time are accepted, and the
    /// result must give a valid broker configuration on top of `base` (the static one).
    pub fn alter_broker_configs(
        &self,
        broker: &str,
        base: &kavka_config::BrokerConfig,
        validate_only: bool,
        build: impl FnOnce(
            &BTreeMap<String, String>,
        ) -> Result<BTreeMap<String, String>, kavka_config::ConfigError>,
    ) -> Result<(), ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        let current = image.broker_config(broker);
        let invalid = |e: kavka_config::ConfigError| ControllerError::InvalidConfig(e.to_string());
        let next = build(&current).map_err(invalid)?;
        kavka_config::validate_dynamic_broker_configs(&next).map_err(invalid)?;
        let (default_level, node_level) = if broker.is_empty() {
            (next.clone(), image.broker_config(&self.node_id.to_string()))
        } else {
            (image.broker_config(""), next.clone())
        };
        base.with_dynamic(&default_level, &node_level)
            .map_err(invalid)?;
        if validate_only {
            return Ok(());
        }
        let changes = config_changes(&current, &next);
        if changes.is_empty() {
            return Ok(());
        }
        tracing::info!(broker = %broker, changes = ?changes, "dynamic broker configuration changed");
        self.journal.commit(vec![MetadataRecord::BrokerConfig {
            broker: broker.to_string(),
            configs: changes,
        }])?;
        Ok(())
    }

    /// Grows a topic to `count` partitions (Kafka never shrinks).
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        let topic = image.topic(name).ok_or(ControllerError::UnknownTopic)?;
        let current = topic.partitions.len() as i32;
        if count < current {
            return Err(ControllerError::InvalidPartitions(format!(
                "Topic currently has {current} partitions, which is higher than the requested {count}."
            )));
        }
        if count == current {
            return Err(ControllerError::InvalidPartitions(format!(
                "Topic already has {current} partitions."
            )));
        }
        if count - current > MAX_PARTITIONS_PER_REQUEST {
            return Err(ControllerError::TooManyPartitions);
        }
        let rf = topic
            .partitions
            .first()
            .map(|p| p.replicas.len())
            .unwrap_or(1) as i16;
        let topic_id = topic.topic_id;
        let live = live_broker_ids(&image);
        let new_assignments = match assignments {
            Some(given) => {
                if given.len() as i32 != count - current {
                    return Err(ControllerError::InvalidReplicaAssignment(format!(
                        "Increasing the number of partitions by {} but {} assignments provided.",
                        count - current,
                        given.len()
                    )));
                }
                validate_assignments(given, &live)?;
                given.to_vec()
            }
            None => assign_replicas(&live, count - current, rf)?,
        };
        if validate_only {
            return Ok(());
        }
        let records = partition_records(topic_id, current, &new_assignments, &live);
        self.journal.commit(records)?;
        tracing::info!(topic = %name, from = current, to = count, "partitions added");
        Ok(())
    }

    /// Hands out a producer id that was never handed out before, even across restarts and controller
    /// failovers: ids come from a block this controller reserved in the log, starting where the log's last
    /// reservation ended (a block cut short by a restart or failover is simply skipped).
    pub fn allocate_producer_id(&self) -> Result<i64, ControllerError> {
        let mut state = self.lock();
        if state.next_producer_id >= state.producer_id_block_end {
            let image = self.journal.image_for_update()?;
            let start = image.next_producer_id_block;
            let end = start + PRODUCER_ID_BLOCK_SIZE;
            self.journal.commit(vec![MetadataRecord::ProducerIds {
                next_block_start: end,
            }])?;
            state.next_producer_id = start;
            state.producer_id_block_end = end;
        }
        let id = state.next_producer_id;
        state.next_producer_id += 1;
        Ok(id)
    }
}

/// Registered, unfenced brokers: those that may host new replicas, ordered so that consecutive brokers
/// sit in different racks (`broker.rack`) wherever the racks allow: one broker of each rack in turn, as
/// Kafka's rack-aware placement orders them. Replicas placed on consecutive brokers of this list then
/// spread over racks; without racks the order is by broker id.
fn live_broker_ids(image: &MetadataImage) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for b in image.live_brokers() {
        by_rack
            .entry(b.rack.as_deref())
            .or_default()
            .push(b.broker_id);
    }
    let mut racks: Vec<std::collections::VecDeque<i32>> =
        by_rack.into_values().map(Into::into).collect();
    let mut ordered = Vec::new();
    while racks.iter().any(|r| !r.is_empty()) {
        for rack in &mut racks {
            if let Some(id) = rack.pop_front() {
                ordered.push(id);
            }
        }
    }
    ordered
}

/// New partitions: every live replica starts in sync (all logs are empty), the first live one leads; a
/// partition whose replicas are all fenced starts without a leader, as in Kafka.
fn partition_records(
    topic_id: Uuid,
    first_partition: i32,
    assignments: &[Vec<i32>],
    live: &[i32],
) -> Vec<MetadataRecord> {
    assignments
        .iter()
        .enumerate()
        .map(|(i, replicas)| {
            let isr: Vec<i32> = replicas
                .iter()
                .copied()
                .filter(|r| live.contains(r))
                .collect();
            MetadataRecord::Partition {
                topic_id,
                partition: first_partition + i as i32,
                replicas: replicas.clone(),
                leader: isr.first().copied().unwrap_or(-1),
                isr,
                leader_epoch: 0,
                partition_epoch: 0,
                elr: Vec::new(),
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
            }
        })
        .collect()
}

/// Round-robin assignment with a per-partition shift, so leaders (first replica) spread over brokers.
fn assign_replicas(
    live: &[i32],
    partitions: i32,
    rf: i16,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    if rf as usize > live.len() {
        return Err(ControllerError::InvalidReplicationFactor(format!(
            "Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.",
            live.len()
        )));
    }
    // A random first broker, as Kafka's placement does, so single-partition topics do not all land on the
    // lowest node id.
    let start = (Uuid::new_v4().as_u128() % live.len() as u128) as usize;
    Ok((0..partitions as usize)
        .map(|p| {
            (0..rf as usize)
                .map(|r| live[(start + p + r) % live.len()])
                .collect()
        })
        .collect())
}

fn validate_assignments(assignments: &[Vec<i32>], live: &[i32]) -> Result<(), ControllerError> {
    let rf = assignments.first().map(|r| r.len()).unwrap_or(0);
    for (p, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes a partition ({p}) with no replicas."
            )));
        }
        if replicas.len() != rf {
            return Err(ControllerError::InvalidReplicaAssignment(
                "The manual partition assignment includes partitions with different replication factors."
                    .into(),
            ));
        }
        let mut seen = replicas.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != replicas.len() {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes the partition {p} with duplicate replicas."
            )));
        }
        if let Some(unknown) = replicas.iter().find(|b| !live.contains(b)) {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "The manual partition assignment includes broker {unknown}, but no such broker is registered."
            )));
        }
    }
    Ok(())
}

/// Kafka's topic name rules: 1..=249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`.
/// The record form of a configuration change: keys whose value differs in `next`, and `None` for keys
/// that `next` no longer has.
fn config_changes(
    current: &BTreeMap<String, String>,
    next: &BTreeMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    let removed = current
        .keys()
        .filter(|k| !next.contains_key(*k))
        .map(|k| (k.clone(), None));
    let set = next
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), Some(v.clone())));
    removed.chain(set).collect()
}

pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    if name.is_empty() {
        return Err(ControllerError::InvalidTopic(
            "Topic name is illegal, it can't be empty".into(),
        ));
    }
    if name == "." || name == ".." {
        return Err(ControllerError::InvalidTopic(
            "Topic name cannot be \".\" or \"..\"".into(),
        ));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        )));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Err(ControllerError::InvalidTopic(format!(
            "Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    use crate::metadata::test_journal::FileJournal;

    /// A controller whose cluster has one live broker, node 0.
    fn controller(dir: &Path) -> Controller {
        let journal = FileJournal::open(dir);
        if journal.latest().brokers.is_empty() {
            let image = journal
                .commit(vec![MetadataRecord::RegisterBroker {
                    broker_id: 0,
                    incarnation_id: Uuid::new_v4(),
                    endpoints: Vec::new(),
                    rack: None,
                }])
                .expect("register broker 0");
            let epoch = image.brokers[&0].epoch;
            journal
                .commit(vec![MetadataRecord::BrokerRegistrationChange {
                    broker_id: 0,
                    broker_epoch: epoch,
                    fenced: Some(false),
                    in_controlled_shutdown: None,
                }])
                .expect("unfence broker 0");
        }
        Controller::new(
            0,
            TopicDefaults {
                num_partitions: 1,
                replication_factor: 1,
                delete_topic_enable: true,
                min_insync_replicas: 1,
            },
            Arc::new(journal),
        )
    }

    #[test]
    fn the_active_controller_publishes_its_topic_defaults_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        assert_eq!(c.image().cluster_defaults, None);
        assert!(c.publish_cluster_defaults().expect("publish"));
        assert_eq!(
            c.image().cluster_defaults,
            Some(crate::metadata::ClusterDefaults {
                num_partitions: 1,
                default_replication_factor: 1,
                min_insync_replicas: 1,
            })
        );
        assert!(!c.publish_cluster_defaults().expect("publish again"));
        // A controller configured otherwise that becomes active replaces them.
        let other = Controller::new(
            1,
            TopicDefaults {
                num_partitions: 6,
                replication_factor: 3,
                delete_topic_enable: true,
                min_insync_replicas: 2,
            },
            c.journal.clone(),
        );
        assert!(other.publish_cluster_defaults().expect("publish"));
        let defaults = other.image().cluster_defaults.expect("defaults");
        assert_eq!(
            (
                defaults.num_partitions,
                defaults.default_replication_factor,
                defaults.min_insync_replicas
            ),
            (6, 3, 2)
        );
        // Brokers take them in place of their own configuration.
        let base = kavka_config::BrokerConfig::embedded_default().expect("defaults");
        let effective = crate::server::effective_config(&base, &other.image(), 0);
        assert_eq!(
            (
                effective.num_partitions,
                effective.default_replication_factor,
                effective.min_insync_replicas
            ),
            (6, 3, 2)
        );
    }

    fn new_topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.into(),
            num_partitions: partitions,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn create_is_durable_and_duplicate_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = {
            let c = controller(dir.path());
            let (id, partitions, rf) = c.create_topic(&new_topic("t", 3), false).expect("create");
            assert_eq!((partitions, rf), (3, 1));
            let err = c.create_topic(&new_topic("t", 3), false).unwrap_err();
            assert_eq!(err.code(), ResponseError::TopicAlreadyExists.code());
            id
        };
        let c = controller(dir.path());
        let image = c.image();
        let topic = image.topic("t").expect("topic survives restart");
        assert_eq!(topic.topic_id, id);
        assert_eq!(topic.partitions.len(), 3);
    }

    #[test]
    fn validate_only_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        c.create_topic(&new_topic("t", 2), true).expect("validate");
        assert!(c.image().topic("t").is_none());
    }

    #[test]
    fn rejects_bad_requests_with_kafka_codes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        let mut rf3 = new_topic("rf", 1);
        rf3.replication_factor = 3;
        assert_eq!(
            c.create_topic(&rf3, false).unwrap_err().code(),
            ResponseError::InvalidReplicationFactor.code()
        );
        assert_eq!(
            c.create_topic(&new_topic("zero", 0), false)
                .unwrap_err()
                .code(),
            ResponseError::InvalidPartitions.code()
        );
        assert_eq!(
            c.create_topic(&new_topic("bad/name", 1), false)
                .unwrap_err()
                .code(),
            ResponseError::InvalidTopicException.code()
        );
        c.create_topic(&new_topic("a.b", 1), false).expect("create");
        assert_eq!(
            c.create_topic(&new_topic("a_b", 1), false)
                .unwrap_err()
                .code(),
            ResponseError::InvalidTopicException.code()
        );
        let mut bad_config = new_topic("cfg", 1);
        bad_config
            .configs
            .insert("retention.ms".into(), "forever".into());
        assert_eq!(
            c.create_topic(&bad_config, false).unwrap_err().code(),
            ResponseError::InvalidConfig.code()
        );
        let mut manual = new_topic("manual", -1);
        manual.assignments = vec![vec![7]];
        assert_eq!(
            c.create_topic(&manual, false).unwrap_err().code(),
            ResponseError::InvalidReplicaAssignment.code()
        );
    }

    #[test]
    fn partition_count_is_capped_per_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        assert_eq!(
            c.create_topic(&new_topic("huge", i32::MAX), true)
                .unwrap_err()
                .code(),
            ResponseError::PolicyViolation.code()
        );
        c.create_topic(&new_topic("t", 1), false).expect("create");
        assert_eq!(
            c.create_partitions("t", i32::MAX, None, true)
                .unwrap_err()
                .code(),
            ResponseError::PolicyViolation.code()
        );
    }

    #[test]
    fn partitions_grow_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        c.create_topic(&new_topic("t", 2), false).expect("create");
        assert_eq!(
            c.create_partitions("t", 1, None, false).unwrap_err().code(),
            ResponseError::InvalidPartitions.code()
        );
        c.create_partitions("t", 4, None, false).expect("grow");
        assert_eq!(c.image().topic("t").expect("t").partitions.len(), 4);
        assert_eq!(
            c.create_partitions("nope", 4, None, false)
                .unwrap_err()
                .code(),
            ResponseError::UnknownTopicOrPartition.code()
        );
    }

    #[test]
    fn delete_by_name_and_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        c.create_topic(&new_topic("a", 1), false).expect("create");
        let (id, _, _) = c.create_topic(&new_topic("b", 1), false).expect("create");
        c.delete_topic(&TopicRef::Name("a".into())).expect("delete");
        c.delete_topic(&TopicRef::Id(id)).expect("delete by id");
        assert!(c.image().topics.is_empty());
        assert_eq!(
            c.delete_topic(&TopicRef::Id(id)).unwrap_err().code(),
            ResponseError::UnknownTopicId.code()
        );
    }

    #[test]
    fn producer_ids_never_repeat_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first: Vec<i64> = {
            let c = controller(dir.path());
            (0..3)
                .map(|_| c.allocate_producer_id().expect("id"))
                .collect()
        };
        let c = controller(dir.path());
        let next = c.allocate_producer_id().expect("id");
        assert!(first.iter().all(|id| *id < next));
    }
}
