//! The immutable, in-memory view of the cluster metadata that every request is served from.

use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use super::records::{BrokerEndpoint, MetadataRecord};

/// One partition's assignment and leadership.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionImage {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Eligible leader replicas (KIP-966), see `MetadataRecord::Partition`.
    #[serde(default)]
    pub elr: Vec<i32>,
    /// A reassignment in progress (see `MetadataRecord::Partition`).
    #[serde(default)]
    pub adding_replicas: Vec<i32>,
    #[serde(default)]
    pub removing_replicas: Vec<i32>,
}

/// A registered broker as the controller last recorded it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    /// The metadata offset of its registration: requests carrying an older epoch are stale.
    pub epoch: i64,
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    /// Fenced brokers lead no partition and are not listed to clients.
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
}

impl BrokerRegistration {
    /// The endpoint of listener `name`, if the broker has one.
    pub fn endpoint(&self, name: &str) -> Option<&BrokerEndpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

/// A topic with its partitions (index = partition id) and configuration overrides.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: Vec<PartitionImage>,
    pub configs: BTreeMap<String, String>,
}

/// Kafka's internal topics: flagged in Metadata, never produced to by clients, and created only by the
/// coordinators that own them (never auto-created by a lookup).
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

impl TopicImage {
    pub fn is_internal(&self) -> bool {
        INTERNAL_TOPICS.contains(&self.name.as_str())
    }
}

/// The fold of the metadata log up to `last_applied` records.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct MetadataImage {
    pub topics: BTreeMap<String, TopicImage>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    /// Producer ids below this have been reserved.
    pub next_producer_id_block: i64,
    /// Number of records applied; a version for tests and logging.
    pub last_applied: u64,
    /// Dynamic broker configuration: "" = cluster-wide default, else per node id.
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Raft log index of the last applied entry: the metadata offset brokers report.
    pub metadata_offset: u64,
    /// Registered brokers by node id.
    #[serde(default)]
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// The controllers' topic defaults, once an active controller has published them.
    #[serde(default)]
    pub cluster_defaults: Option<super::records::ClusterDefaults>,
    /// Access control entries by id: what the authorizer decides on.
    #[serde(default)]
    pub acls: BTreeMap<Uuid, crate::security::acl::AclBinding>,
    /// SCRAM credentials by user name and mechanism.
    #[serde(default)]
    pub scram_credentials:
        BTreeMap<String, BTreeMap<kavka_sasl::ScramMechanism, kavka_sasl::ScramCredential>>,
    /// Whether the `--add-scram` credentials were written into the log.
    #[serde(default)]
    pub scram_bootstrap_applied: bool,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    /// The dynamic broker settings of one level ("" = cluster-wide default, else a node id).
    pub fn broker_config(&self, broker: &str) -> BTreeMap<String, String> {
        self.broker_configs.get(broker).cloned().unwrap_or_default()
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names_by_id
            .get(id)
            .and_then(|name| self.topics.get(name))
    }

    /// Applies one record. Records that refer to unknown topics are ignored: they can only come from a log
    /// that recorded a partition after its topic's removal, which the controller never writes.
    pub fn apply(&mut self, record: &MetadataRecord) {
        self.last_applied += 1;
        match record {
            MetadataRecord::Topic { name, topic_id } => {
                self.topic_names_by_id.insert(*topic_id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        topic_id: *topic_id,
                        partitions: Vec::new(),
                        configs: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
                elr,
                adding_replicas,
                removing_replicas,
            } => {
                let Some(name) = self.topic_names_by_id.get(topic_id) else {
                    return;
                };
                let Some(topic) = self.topics.get_mut(name) else {
                    return;
                };
                let image = PartitionImage {
                    partition: *partition,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                    elr: elr.clone(),
                    adding_replicas: adding_replicas.clone(),
                    removing_replicas: removing_replicas.clone(),
                };
                let index = *partition as usize;
                if index < topic.partitions.len() {
                    topic.partitions[index] = image;
                } else if index == topic.partitions.len() {
                    topic.partitions.push(image);
                }
            }
            MetadataRecord::TopicConfig { topic_id, configs } => {
                let Some(name) = self.topic_names_by_id.get(topic_id) else {
                    return;
                };
                if let Some(topic) = self.topics.get_mut(name) {
                    for (key, value) in configs {
                        match value {
                            Some(v) => {
                                topic.configs.insert(key.clone(), v.clone());
                            }
                            None => {
                                topic.configs.remove(key);
                            }
                        }
                    }
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.topic_names_by_id.remove(topic_id) {
                    self.topics.remove(&name);
                }
            }
            MetadataRecord::ProducerIds { next_block_start } => {
                self.next_producer_id_block = self.next_producer_id_block.max(*next_block_start);
            }
            MetadataRecord::ClusterDefaults(defaults) => {
                self.cluster_defaults = Some(*defaults);
            }
            MetadataRecord::BrokerConfig { broker, configs } => {
                let entry = self.broker_configs.entry(broker.clone()).or_default();
                for (key, value) in configs {
                    match value {
                        Some(v) => {
                            entry.insert(key.clone(), v.clone());
                        }
                        None => {
                            entry.remove(key);
                        }
                    }
                }
                if entry.is_empty() {
                    self.broker_configs.remove(broker);
                }
            }
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                endpoints,
                rack,
            } => {
                self.brokers.insert(
                    *broker_id,
                    BrokerRegistration {
                        broker_id: *broker_id,
                        incarnation_id: *incarnation_id,
                        epoch: self.metadata_offset as i64,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: true,
                        in_controlled_shutdown: false,
                    },
                );
            }
            MetadataRecord::AccessControlEntry { id, acl } => {
                self.acls.insert(*id, acl.clone());
            }
            MetadataRecord::RemoveAccessControlEntry { id } => {
                self.acls.remove(id);
            }
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                credential,
            } => {
                self.scram_credentials
                    .entry(name.clone())
                    .or_default()
                    .insert(*mechanism, credential.clone());
            }
            MetadataRecord::ScramBootstrapApplied => self.scram_bootstrap_applied = true,
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                if let Some(user) = self.scram_credentials.get_mut(name) {
                    user.remove(mechanism);
                    if user.is_empty() {
                        self.scram_credentials.remove(name);
                    }
                }
            }
            MetadataRecord::BrokerRegistrationChange {
                broker_id,
                broker_epoch,
                fenced,
                in_controlled_shutdown,
            } => {
                if let Some(broker) = self.brokers.get_mut(broker_id) {
                    if broker.epoch == *broker_epoch {
                        if let Some(fenced) = fenced {
                            broker.fenced = *fenced;
                        }
                        if let Some(shutting_down) = in_controlled_shutdown {
                            broker.in_controlled_shutdown = *shutting_down;
                        }
                    }
                }
            }
        }
    }

    /// Registered brokers that are not fenced: the ones that may lead partitions and that clients see.
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// Broker `id` if it is registered and not fenced.
    pub fn live_broker(&self, id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&id).filter(|b| !b.fenced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(topic_id: Uuid, p: i32) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition: p,
            replicas: vec![0],
            isr: vec![0],
            leader: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            elr: Vec::new(),
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    #[test]
    fn folds_topic_lifecycle() {
        let id = Uuid::new_v4();
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::Topic {
            name: "t".into(),
            topic_id: id,
        });
        image.apply(&partition(id, 0));
        image.apply(&partition(id, 1));
        image.apply(&MetadataRecord::TopicConfig {
            topic_id: id,
            configs: [("retention.ms".to_string(), Some("1000".to_string()))].into(),
        });
        let topic = image.topic("t").expect("topic");
        assert_eq!(topic.partitions.len(), 2);
        assert_eq!(topic.configs["retention.ms"], "1000");
        assert_eq!(image.topic_by_id(&id).map(|t| t.name.as_str()), Some("t"));
        image.apply(&MetadataRecord::TopicConfig {
            topic_id: id,
            configs: [("retention.ms".to_string(), None)].into(),
        });
        assert!(image.topic("t").expect("topic").configs.is_empty());
        image.apply(&MetadataRecord::RemoveTopic { topic_id: id });
        assert!(image.topic("t").is_none());
        assert!(image.topic_by_id(&id).is_none());
        assert_eq!(image.last_applied, 6);
    }

    #[test]
    fn partition_of_unknown_topic_is_ignored() {
        let mut image = MetadataImage::default();
        image.apply(&partition(Uuid::new_v4(), 0));
        assert!(image.topics.is_empty());
    }

    #[test]
    fn producer_id_blocks_only_move_forward() {
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::ProducerIds {
            next_block_start: 2000,
        });
        image.apply(&MetadataRecord::ProducerIds {
            next_block_start: 1000,
        });
        assert_eq!(image.next_producer_id_block, 2000);
    }
}
