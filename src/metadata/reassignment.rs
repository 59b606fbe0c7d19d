//! Partition reassignment (Kafka's AlterPartitionReassignments / ListPartitionReassignments), decided by
//! the controller. A reassignment to a target replica set first widens the replicas to target plus the
//! original set (`adding_replicas` fetch from the leader like any follower), and completes when every
//! adding replica has joined the ISR: the replicas become the target, removed replicas leave the ISR, and
//! a leader that is being removed hands over to an in-sync member of the target.

use kafka_protocol::error::ResponseError;

use super::broker_control::partition_change;
use super::controller::{Controller, ControllerError};
use super::image::{MetadataImage, PartitionImage};
use super::records::MetadataRecord;

/// One partition's requested reassignment: a target replica list, or `None` to cancel an ongoing one.
#[derive(Debug, Clone)]
pub struct ReassignmentRequest {
    pub topic: String,
    pub partition: i32,
    pub target: Option<Vec<i32>>,
}

/// The outcome for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassignmentResult {
    pub topic: String,
    pub partition: i32,
    pub error: Option<(ResponseError, String)>,
}

/// A reassignment in progress, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Controller {
    /// Starts (or cancels) reassignments; every accepted change is committed in one batch.
    /// `allow_replication_factor_change` false (KIP-860) refuses a target of another size.
    pub fn alter_partition_reassignments(
        &self,
        requests: Vec<ReassignmentRequest>,
        allow_replication_factor_change: bool,
    ) -> Result<Vec<ReassignmentResult>, ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        let mut working: MetadataImage = (*image).clone();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(requests.len());
        for request in requests {
            let outcome = self.reassign(&working, &request, allow_replication_factor_change);
            let error = match outcome {
                Ok(Some(record)) => {
                    working.apply(&record);
                    records.push(record);
                    None
                }
                Ok(None) => None,
                Err(e) => Some(e),
            };
            results.push(ReassignmentResult {
                topic: request.topic,
                partition: request.partition,
                error,
            });
        }
        if !records.is_empty() {
            self.journal.commit(records)?;
            for r in results.iter().filter(|r| r.error.is_none()) {
                tracing::info!(topic = %r.topic, partition = r.partition, "partition reassignment changed");
            }
        }
        Ok(results)
    }

    /// The change one request makes, if any.
    fn reassign(
        &self,
        image: &MetadataImage,
        request: &ReassignmentRequest,
        allow_replication_factor_change: bool,
    ) -> Result<Option<MetadataRecord>, (ResponseError, String)> {
        let unknown = || {
            (
                ResponseError::UnknownTopicOrPartition,
                format!(
                    "No such partition as {}-{}",
                    request.topic, request.partition
                ),
            )
        };
        let topic = image.topic(&request.topic).ok_or_else(unknown)?;
        let p = usize::try_from(request.partition)
            .ok()
            .and_then(|i| topic.partitions.get(i))
            .ok_or_else(unknown)?;
        let min_isr = self.min_isr(topic);
        let original: Vec<i32> = p
            .replicas
            .iter()
            .copied()
            .filter(|r| !p.adding_replicas.contains(r))
            .collect();
        let Some(target) = &request.target else {
            if p.adding_replicas.is_empty() && p.removing_replicas.is_empty() {
                return Err((
                    ResponseError::NoReassignmentInProgress,
                    format!(
                        "No ongoing reassignment for {}-{}",
                        request.topic, request.partition
                    ),
                ));
            }
            return Ok(Some(with_replicas(
                image,
                topic.topic_id,
                p,
                original,
                min_isr,
            )));
        };
        validate_target(image, target)?;
        if !allow_replication_factor_change && target.len() != original.len() {
            return Err((
                ResponseError::InvalidReplicationFactor,
                format!(
                    "The replication factor is changed from {} to {} but allowReplicationFactorChange is false",
                    original.len(),
                    target.len()
                ),
            ));
        }
        if *target == p.replicas && p.adding_replicas.is_empty() {
            return Ok(None);
        }
        let adding: Vec<i32> = target
            .iter()
            .copied()
            .filter(|r| !original.contains(r))
            .collect();
        let removing: Vec<i32> = original
            .iter()
            .copied()
            .filter(|r| !target.contains(r))
            .collect();
        if adding.iter().all(|r| p.isr.contains(r)) {
            // Nothing to copy: the partition moves to the target at once.
            return Ok(Some(with_replicas(
                image,
                topic.topic_id,
                p,
                target.clone(),
                min_isr,
            )));
        }
        let mut replicas = target.clone();
        replicas.extend(removing.iter().copied());
        let mut record = partition_change(topic.topic_id, p, p.isr.clone(), p.leader, min_isr);
        if let MetadataRecord::Partition {
            replicas: r,
            adding_replicas,
            removing_replicas,
            ..
        } = &mut record
        {
            *r = replicas;
            *adding_replicas = adding;
            *removing_replicas = removing;
        }
        Ok(Some(record))
    }

    /// Reassignments in progress, for the given partitions (`None`: all of them).
    pub fn list_partition_reassignments(
        &self,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<OngoingReassignment> {
        let image = self.image();
        let ongoing = |topic: &str, p: &PartitionImage| OngoingReassignment {
            topic: topic.to_string(),
            partition: p.partition,
            replicas: p.replicas.clone(),
            adding: p.adding_replicas.clone(),
            removing: p.removing_replicas.clone(),
        };
        let in_progress =
            |p: &PartitionImage| !p.adding_replicas.is_empty() || !p.removing_replicas.is_empty();
        match wanted {
            None => image
                .topics
                .values()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .filter(|p| in_progress(p))
                        .map(|p| ongoing(&t.name, p))
                })
                .collect(),
            Some(wanted) => wanted
                .iter()
                .filter_map(|(name, partitions)| image.topic(name).map(|t| (t, partitions)))
                .flat_map(|(t, partitions)| {
                    partitions
                        .iter()
                        .filter_map(|i| usize::try_from(*i).ok().and_then(|i| t.partitions.get(i)))
                        .filter(|p| in_progress(p))
                        .map(|p| ongoing(&t.name, p))
                })
                .collect(),
        }
    }
}

/// Kafka's checks on a target replica list: not empty, no duplicates, only registered brokers.
fn validate_target(image: &MetadataImage, target: &[i32]) -> Result<(), (ResponseError, String)> {
    let invalid = |message: String| (ResponseError::InvalidReplicaAssignment, message);
    if target.is_empty() {
        return Err(invalid("The target replica list is empty.".into()));
    }
    let mut distinct = target.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != target.len() {
        return Err(invalid(format!(
            "The target replica list {target:?} contains a broker more than once."
        )));
    }
    if let Some(unknown) = target.iter().find(|r| !image.brokers.contains_key(r)) {
        return Err(invalid(format!(
            "The target replica list includes broker {unknown}, but no such broker is registered."
        )));
    }
    Ok(())
}

/// The partition moved to exactly `replicas` (a completed or cancelled reassignment): the ISR keeps its
/// members that stay, and a leader that leaves hands over to the first live in-sync member that stays.
fn with_replicas(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    p: &PartitionImage,
    replicas: Vec<i32>,
    min_isr: usize,
) -> MetadataRecord {
    let mut isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect();
    if isr.is_empty() {
        // Keep a claim for recovery: no member of the new set is known to be in sync.
        isr = p.isr.clone();
    }
    let leader = if replicas.contains(&p.leader) && isr.contains(&p.leader) {
        p.leader
    } else {
        replicas
            .iter()
            .copied()
            .find(|r| isr.contains(r) && image.live_broker(*r).is_some())
            .unwrap_or(-1)
    };
    let mut record = partition_change(topic_id, p, isr, leader, min_isr);
    if let MetadataRecord::Partition {
        replicas: r,
        adding_replicas,
        removing_replicas,
        elr,
        ..
    } = &mut record
    {
        elr.retain(|e| replicas.contains(e));
        *r = replicas;
        adding_replicas.clear();
        removing_replicas.clear();
    }
    record
}

/// After an ISR change: the record that completes the partition's reassignment, if every adding replica
/// is now in sync.
pub(super) fn completion(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    p: &PartitionImage,
    min_isr: usize,
) -> Option<MetadataRecord> {
    if p.adding_replicas.is_empty() || !p.adding_replicas.iter().all(|r| p.isr.contains(r)) {
        return None;
    }
    let target: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| !p.removing_replicas.contains(r))
        .collect();
    Some(with_replicas(image, topic_id, p, target, min_isr))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::metadata::broker_control::tests::{controller, live_cluster};
    use crate::metadata::{IsrChangeRequest, NewTopic};

    fn setup(dir: &std::path::Path) -> (Controller, Vec<i64>) {
        let c = controller(dir);
        let epochs = live_cluster(&c, 4);
        c.create_topic(
            &NewTopic {
                name: "t".into(),
                num_partitions: -1,
                replication_factor: -1,
                assignments: vec![vec![1, 2, 3]],
                configs: BTreeMap::new(),
            },
            false,
        )
        .expect("create");
        (c, epochs)
    }

    fn reassign(c: &Controller, target: Option<Vec<i32>>) -> Option<ResponseError> {
        let request = ReassignmentRequest {
            topic: "t".into(),
            partition: 0,
            target,
        };
        let results = c
            .alter_partition_reassignments(vec![request], true)
            .expect("reassign");
        results[0].error.as_ref().map(|(e, _)| *e)
    }

    fn partition(c: &Controller) -> PartitionImage {
        c.image().topic("t").expect("topic").partitions[0].clone()
    }

    #[test]
    fn a_reassignment_completes_once_the_new_replicas_are_in_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, epochs) = setup(dir.path());
        assert_eq!(reassign(&c, Some(vec![2, 3, 4])), None);
        let p = partition(&c);
        assert_eq!(p.replicas, vec![2, 3, 4, 1]);
        assert_eq!(
            (p.adding_replicas.clone(), p.removing_replicas.clone()),
            (vec![4], vec![1])
        );
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1, 2, 3]));
        assert_eq!(c.list_partition_reassignments(None).len(), 1);
        // Broker 4 caught up: the leader adds it to the ISR, which completes the reassignment.
        let topic_id = c.image().topic("t").expect("topic").topic_id;
        let results = c
            .alter_partition(
                1,
                epochs[0],
                vec![IsrChangeRequest {
                    topic_id,
                    partition: 0,
                    leader_epoch: p.leader_epoch,
                    partition_epoch: p.partition_epoch,
                    new_isr: vec![(1, -1), (2, -1), (3, -1), (4, -1)],
                }],
            )
            .expect("alter partition");
        assert_eq!(results[0].error, None);
        let p = partition(&c);
        assert_eq!(p.replicas, vec![2, 3, 4]);
        assert_eq!(p.isr, vec![2, 3, 4]);
        assert_eq!(p.leader, 2, "the removed leader hands over to the target");
        assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
        assert_eq!(
            (results[0].leader, results[0].isr.clone()),
            (2, vec![2, 3, 4])
        );
        assert!(c.list_partition_reassignments(None).is_empty());
    }

    #[test]
    fn a_reassignment_can_be_cancelled_and_reordering_is_immediate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, _) = setup(dir.path());
        assert_eq!(reassign(&c, Some(vec![4, 2, 3])), None);
        assert_eq!(reassign(&c, None), None);
        let p = partition(&c);
        // As in Kafka, a cancelled reassignment keeps the original replicas in their merged order.
        assert_eq!((p.replicas.clone(), p.leader), (vec![2, 3, 1], 1));
        assert!(p.adding_replicas.is_empty() && p.removing_replicas.is_empty());
        assert_eq!(
            reassign(&c, None),
            Some(ResponseError::NoReassignmentInProgress)
        );
        // A new order of the same replicas needs no copying.
        assert_eq!(reassign(&c, Some(vec![3, 1, 2])), None);
        let p = partition(&c);
        assert_eq!((p.replicas.clone(), p.isr.len()), (vec![3, 1, 2], 3));
        assert!(c.list_partition_reassignments(None).is_empty());
    }

    #[test]
    fn invalid_targets_are_refused_with_kafkas_codes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, _) = setup(dir.path());
        for target in [vec![], vec![1, 1, 2], vec![1, 2, 9]] {
            assert_eq!(
                reassign(&c, Some(target.clone())),
                Some(ResponseError::InvalidReplicaAssignment),
                "{target:?}"
            );
        }
        let unknown = ReassignmentRequest {
            topic: "t".into(),
            partition: 5,
            target: Some(vec![1]),
        };
        let results = c
            .alter_partition_reassignments(vec![unknown], true)
            .expect("reassign");
        assert_eq!(
            results[0].error.as_ref().map(|(e, _)| *e),
            Some(ResponseError::UnknownTopicOrPartition)
        );
        let shrink = ReassignmentRequest {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![1, 2]),
        };
        let results = c
            .alter_partition_reassignments(vec![shrink], false)
            .expect("reassign");
        assert_eq!(
            results[0].error.as_ref().map(|(e, _)| *e),
            Some(ResponseError::InvalidReplicationFactor)
        );
    }
}
