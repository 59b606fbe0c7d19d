//! Leader elections on request (Kafka's ElectLeaders) and automatic leader balancing
//! (`auto.leader.rebalance.enable`): leadership that moved away from a partition's preferred replica (the
//! first of its replicas) while that broker was down goes back to it once it is in sync again, and an
//! administrator can force an unclean election for a partition left without a leader.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use super::broker_control::partition_change;
use super::controller::{Controller, ControllerError};
use super::image::{MetadataImage, PartitionImage};

/// Kafka's ElectionType (the ElectLeaders `election_type` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Make the preferred replica (the first assigned one) leader, if it is live and in sync.
    Preferred,
    /// Give a leaderless partition a leader, out of sync if no in-sync replica is live (data may be lost).
    Unclean,
}

impl ElectionType {
    /// The wire value: 0 preferred, 1 unclean.
    pub fn from_wire(value: i8) -> Option<ElectionType> {
        match value {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// The outcome of one partition's election; `error: None` means a new leader was elected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElectionResult {
    pub topic: String,
    pub partition: i32,
    pub error: Option<ResponseError>,
    pub message: Option<String>,
}

impl Controller {
    /// Runs `election` for `partitions` (`None`: every partition of every topic, as a null topic list asks
    /// in ElectLeaders) and commits every new leader in one batch. Each partition gets a result in Kafka's
    /// terms: none (elected), ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE,
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE or UNKNOWN_TOPIC_OR_PARTITION.
    pub fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<ElectionResult>, ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        let wanted: Vec<(String, i32)> = match partitions {
            Some(list) => list,
            None => all_partitions(&image),
        };
        // Decisions already taken in this batch apply to it, so a partition named twice is elected once.
        let mut working: MetadataImage = (*image).clone();
        let mut elected: Vec<(String, i32)> = Vec::new();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(wanted.len());
        for (topic, partition) in wanted {
            let Some(t) = working.topic(&topic) else {
                results.push(ElectionResult {
                    message: Some(format!("No such topic as {topic}")),
                    topic,
                    partition,
                    error: Some(ResponseError::UnknownTopicOrPartition),
                });
                continue;
            };
            let Some(current) = usize::try_from(partition)
                .ok()
                .and_then(|i| t.partitions.get(i))
            else {
                results.push(ElectionResult {
                    message: Some(format!("No such partition as {topic}-{partition}")),
                    topic,
                    partition,
                    error: Some(ResponseError::UnknownTopicOrPartition),
                });
                continue;
            };
            let error = match elect(&working, current, election) {
                Ok((leader, isr)) => {
                    let record =
                        partition_change(t.topic_id, current, isr, leader, self.min_isr(t));
                    working.apply(&record);
                    records.push(record);
                    elected.push((topic.clone(), partition));
                    None
                }
                Err(error) => Some(error),
            };
            results.push(ElectionResult {
                topic,
                partition,
                error,
                message: None,
            });
        }
        if !records.is_empty() {
            self.journal.commit(records)?;
            for (topic, partition) in &elected {
                let Some(p) = working
                    .topic(topic)
                    .and_then(|t| t.partitions.get(*partition as usize))
                else {
                    continue;
                };
                tracing::info!(
                    topic = %topic,
                    partition,
                    leader = p.leader,
                    leader_epoch = p.leader_epoch,
                    isr = ?p.isr,
                    election = ?election,
                    "leader elected"
                );
            }
        }
        Ok(results)
    }

    /// Kafka's automatic leader balancing: for every broker, the partitions whose preferred replica it is
    /// but that another broker leads; when their share exceeds `imbalance_percentage` percent of the
    /// broker's preferred partitions, those whose preferred replica is live and in sync get it back as
    /// leader. Returns how many leaders moved (committed in one batch).
    pub fn rebalance_preferred_leaders(
        &self,
        imbalance_percentage: i32,
    ) -> Result<usize, ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        // Preferred broker -> (its preferred partitions, those led by another broker).
        let mut by_broker: BTreeMap<i32, PreferredShare<'_>> = BTreeMap::new();
        for topic in image.topics.values() {
            for p in &topic.partitions {
                let Some(&preferred) = p.replicas.first() else {
                    continue;
                };
                let entry = by_broker.entry(preferred).or_default();
                entry.0 += 1;
                if p.leader != preferred {
                    entry.1.push((topic.name.as_str(), p));
                }
            }
        }
        let mut records = Vec::new();
        let mut moved = Vec::new();
        for (broker, (total, imbalanced)) in &by_broker {
            if imbalanced.is_empty() {
                continue;
            }
            let ratio = imbalanced.len() as f64 / *total as f64;
            if ratio <= f64::from(imbalance_percentage) / 100.0 {
                continue;
            }
            if !eligible_leader(&image, *broker) {
                continue;
            }
            for (name, p) in imbalanced {
                if let Ok((leader, isr)) = elect(&image, p, ElectionType::Preferred) {
                    let Some(topic) = image.topic(name) else {
                        continue;
                    };
                    records.push(partition_change(
                        topic.topic_id,
                        p,
                        isr,
                        leader,
                        self.min_isr(topic),
                    ));
                    moved.push((*name, p.partition, p.leader, leader));
                }
            }
        }
        if records.is_empty() {
            return Ok(0);
        }
        self.journal.commit(records)?;
        for (topic, partition, from, to) in &moved {
            tracing::info!(
                topic,
                partition,
                from,
                leader = to,
                "leader moved back to its preferred replica (auto leader rebalance)"
            );
        }
        Ok(moved.len())
    }
}

/// A broker's preferred partitions: how many, and those (topic name, partition) another broker leads.
type PreferredShare<'a> = (usize, Vec<(&'a str, &'a PartitionImage)>);

fn all_partitions(image: &MetadataImage) -> Vec<(String, i32)> {
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition)))
        .collect()
}

/// A broker that may lead: registered, unfenced and not shutting down.
fn eligible_leader(image: &MetadataImage, id: i32) -> bool {
    image
        .live_broker(id)
        .is_some_and(|b| !b.in_controlled_shutdown)
}

/// The new leader and ISR an election gives `p`, or why there is none (Kafka's electLeader with
/// PartitionChangeBuilder).
fn elect(
    image: &MetadataImage,
    p: &PartitionImage,
    election: ElectionType,
) -> Result<(i32, Vec<i32>), ResponseError> {
    match election {
        ElectionType::Preferred => {
            let preferred = p
                .replicas
                .first()
                .copied()
                .ok_or(ResponseError::PreferredLeaderNotAvailable)?;
            if p.leader == preferred {
                return Err(ResponseError::ElectionNotNeeded);
            }
            if p.isr.contains(&preferred) && eligible_leader(image, preferred) {
                Ok((preferred, p.isr.clone()))
            } else {
                Err(ResponseError::PreferredLeaderNotAvailable)
            }
        }
        ElectionType::Unclean => {
            if p.leader != -1 {
                return Err(ResponseError::ElectionNotNeeded);
            }
            if let Some(leader) = p
                .replicas
                .iter()
                .copied()
                .find(|r| p.isr.contains(r) && eligible_leader(image, *r))
            {
                return Ok((leader, p.isr.clone()));
            }
            p.replicas
                .iter()
                .copied()
                .find(|r| eligible_leader(image, *r))
                .map(|leader| (leader, vec![leader]))
                .ok_or(ResponseError::EligibleLeadersNotAvailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::broker_control::tests::{controller, live_cluster};
    use crate::metadata::{BrokerHeartbeatInput, MetadataRecord, NewTopic};

    fn create(c: &Controller, name: &str, assignments: Vec<Vec<i32>>) {
        c.create_topic(
            &NewTopic {
                name: name.into(),
                num_partitions: -1,
                replication_factor: -1,
                assignments,
                configs: BTreeMap::new(),
            },
            false,
        )
        .expect("create");
    }

    fn partition(c: &Controller, topic: &str, p: usize) -> PartitionImage {
        c.image().topic(topic).expect("topic").partitions[p].clone()
    }

    /// Sets a partition's leader and ISR directly, as failovers and ISR changes would have.
    fn set(c: &Controller, topic: &str, p: usize, leader: i32, isr: Vec<i32>) {
        let image = c.image();
        let t = image.topic(topic).expect("topic");
        let current = &t.partitions[p];
        c.journal
            .commit(vec![partition_change(t.topic_id, current, isr, leader, 1)])
            .expect("commit");
    }

    fn shut_down(c: &Controller, id: i32, epoch: i64) {
        c.broker_heartbeat(BrokerHeartbeatInput {
            broker_id: id,
            broker_epoch: epoch,
            metadata_offset: i64::MAX,
            want_fence: false,
            want_shut_down: true,
        })
        .expect("heartbeat");
    }

    fn codes(results: &[ElectionResult]) -> Vec<Option<ResponseError>> {
        results.iter().map(|r| r.error).collect()
    }

    #[test]
    fn preferred_election_moves_leadership_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        live_cluster(&c, 3);
        create(&c, "t", vec![vec![1, 2, 3], vec![2, 3, 1], vec![3, 1, 2]]);
        // Partition 0 led by 2 (its preferred replica 1 in sync); partition 1 led by 3 with the preferred
        // replica 2 out of sync; partition 2 is led by its preferred replica.
        set(&c, "t", 0, 2, vec![1, 2, 3]);
        set(&c, "t", 1, 3, vec![3, 1]);
        let before = partition(&c, "t", 0);
        let results = c
            .elect_leaders(
                ElectionType::Preferred,
                Some(vec![
                    ("t".into(), 0),
                    ("t".into(), 1),
                    ("t".into(), 2),
                    ("t".into(), 3),
                    ("nope".into(), 0),
                ]),
            )
            .expect("elect");
        assert_eq!(
            codes(&results),
            vec![
                None,
                Some(ResponseError::PreferredLeaderNotAvailable),
                Some(ResponseError::ElectionNotNeeded),
                Some(ResponseError::UnknownTopicOrPartition),
                Some(ResponseError::UnknownTopicOrPartition),
            ]
        );
        let after = partition(&c, "t", 0);
        assert_eq!(after.leader, 1);
        assert_eq!(after.isr, vec![1, 2, 3]);
        assert_eq!(after.leader_epoch, before.leader_epoch + 1);
        assert_eq!(after.partition_epoch, before.partition_epoch + 1);
        assert_eq!(partition(&c, "t", 1).leader, 3);
        // Asked again: nothing to do, nothing written.
        let offset = c.image().metadata_offset;
        let again = c
            .elect_leaders(ElectionType::Preferred, Some(vec![("t".into(), 0)]))
            .expect("elect");
        assert_eq!(codes(&again), vec![Some(ResponseError::ElectionNotNeeded)]);
        assert_eq!(c.image().metadata_offset, offset);
    }

    #[test]
    fn a_fenced_preferred_replica_cannot_lead() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        let epochs = live_cluster(&c, 2);
        create(&c, "t", vec![vec![1, 2]]);
        set(&c, "t", 0, 2, vec![1, 2]);
        // Broker 1 is still recorded in sync but fenced.
        c.journal
            .commit(vec![MetadataRecord::BrokerRegistrationChange {
                broker_id: 1,
                broker_epoch: epochs[0],
                fenced: Some(true),
                in_controlled_shutdown: None,
            }])
            .expect("fence");
        let results = c
            .elect_leaders(ElectionType::Preferred, None)
            .expect("elect");
        assert_eq!(
            codes(&results),
            vec![Some(ResponseError::PreferredLeaderNotAvailable)]
        );
        assert_eq!(partition(&c, "t", 0).leader, 2);
    }

    #[test]
    fn all_partitions_are_elected_in_one_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        live_cluster(&c, 3);
        create(&c, "a", vec![vec![1, 2, 3], vec![2, 3, 1]]);
        create(&c, "b", vec![vec![3, 1, 2]]);
        set(&c, "a", 0, 3, vec![1, 2, 3]);
        set(&c, "a", 1, 1, vec![1, 2, 3]);
        set(&c, "b", 0, 2, vec![1, 2, 3]);
        let applied = c.image().last_applied;
        let results = c
            .elect_leaders(ElectionType::Preferred, None)
            .expect("elect");
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(|r| r.error.is_none()), "{results:?}");
        assert_eq!(c.image().last_applied, applied + 3);
        for (topic, p) in [("a", 0), ("a", 1), ("b", 0)] {
            let part = partition(&c, topic, p);
            assert_eq!(part.leader, part.replicas[0], "{topic}-{p}");
        }
    }

    #[test]
    fn a_partition_named_twice_is_elected_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        live_cluster(&c, 2);
        create(&c, "t", vec![vec![1, 2]]);
        set(&c, "t", 0, 2, vec![1, 2]);
        let before = partition(&c, "t", 0);
        let results = c
            .elect_leaders(
                ElectionType::Preferred,
                Some(vec![("t".into(), 0), ("t".into(), 0)]),
            )
            .expect("elect");
        assert_eq!(
            codes(&results),
            vec![None, Some(ResponseError::ElectionNotNeeded)]
        );
        assert_eq!(partition(&c, "t", 0).leader_epoch, before.leader_epoch + 1);
    }

    #[test]
    fn unclean_election_prefers_in_sync_replicas_then_any_live_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        let epochs = live_cluster(&c, 3);
        create(&c, "t", vec![vec![1, 2, 3], vec![1, 2, 3], vec![1, 2, 3]]);
        create(&c, "solo", vec![vec![1]]);
        // t-0: leaderless, 3 in sync and live. t-1: leaderless, only 1 (about to be fenced) in sync.
        // t-2: has a leader (2, once 1 is fenced). solo-0: its only replica is fenced.
        set(&c, "t", 0, -1, vec![1, 3]);
        set(&c, "t", 1, -1, vec![1]);
        shut_down(&c, 1, epochs[0]);
        assert_eq!(
            partition(&c, "solo", 0).leader,
            -1,
            "its only replica went down"
        );
        let mut wanted: Vec<(String, i32)> = (0..3).map(|p| ("t".to_string(), p)).collect();
        wanted.push(("solo".into(), 0));
        let results = c
            .elect_leaders(ElectionType::Unclean, Some(wanted))
            .expect("elect");
        assert_eq!(
            codes(&results),
            vec![
                None,
                None,
                Some(ResponseError::ElectionNotNeeded),
                Some(ResponseError::EligibleLeadersNotAvailable),
            ]
        );
        // Broker 1 left the ISR of partition 0 when it was fenced: 3 (in sync) wins over 2 (live).
        let p0 = partition(&c, "t", 0);
        assert_eq!((p0.leader, p0.isr.clone()), (3, vec![3]));
        let p1 = partition(&c, "t", 1);
        assert_eq!((p1.leader, p1.isr.clone()), (2, vec![2]), "unclean");
        assert_eq!(partition(&c, "solo", 0).leader, -1);
    }

    #[test]
    fn rebalance_moves_leaders_of_imbalanced_brokers_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        live_cluster(&c, 3);
        // Broker 1 is preferred for 4 partitions, broker 2 for 1.
        create(
            &c,
            "t",
            vec![
                vec![1, 2, 3],
                vec![1, 2, 3],
                vec![1, 2, 3],
                vec![1, 2, 3],
                vec![2, 3, 1],
            ],
        );
        // Broker 1 leads 3 of its 4 (25% imbalance); partition 4 is led by 3 (100% for broker 2) but its
        // preferred replica 2 is out of sync.
        set(&c, "t", 0, 2, vec![1, 2, 3]);
        set(&c, "t", 4, 3, vec![3, 1]);
        // 25% is within a 30% allowance: nothing moves.
        assert_eq!(c.rebalance_preferred_leaders(30).expect("rebalance"), 0);
        assert_eq!(partition(&c, "t", 0).leader, 2);
        // Above the default 10%: partition 0 goes back to 1; partition 4 cannot.
        let before = partition(&c, "t", 0);
        assert_eq!(c.rebalance_preferred_leaders(10).expect("rebalance"), 1);
        let after = partition(&c, "t", 0);
        assert_eq!(after.leader, 1);
        assert_eq!(after.leader_epoch, before.leader_epoch + 1);
        assert_eq!(partition(&c, "t", 4).leader, 3);
        // Once 2 is back in sync, it gets partition 4 back too.
        set(&c, "t", 4, 3, vec![3, 1, 2]);
        assert_eq!(c.rebalance_preferred_leaders(10).expect("rebalance"), 1);
        assert_eq!(partition(&c, "t", 4).leader, 2);
        assert_eq!(c.rebalance_preferred_leaders(10).expect("rebalance"), 0);
    }

    #[test]
    fn rebalance_skips_a_preferred_replica_that_is_down() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        let epochs = live_cluster(&c, 2);
        create(&c, "t", vec![vec![1, 2]]);
        shut_down(&c, 1, epochs[0]);
        assert_eq!(partition(&c, "t", 0).leader, 2);
        assert_eq!(c.rebalance_preferred_leaders(10).expect("rebalance"), 0);
        assert_eq!(partition(&c, "t", 0).leader, 2);
    }

    #[test]
    fn election_types_from_the_wire() {
        assert_eq!(ElectionType::from_wire(0), Some(ElectionType::Preferred));
        assert_eq!(ElectionType::from_wire(1), Some(ElectionType::Unclean));
        assert_eq!(ElectionType::from_wire(2), None);
    }
}
