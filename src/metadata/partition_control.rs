//! The controller's side of ISR changes (Kafka's AlterPartition): a partition leader asks to shrink the
//! in-sync replica set when followers fall behind, or to expand it when one has caught up, and the
//! controller validates the request against the partition as the metadata log records it. The ISR in the
//! metadata image is therefore the truth every node (and a future leader election) relies on.

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::broker_control::partition_change;
use super::controller::{Controller, ControllerError};
use super::image::{MetadataImage, PartitionImage};
use super::reassignment;

/// One partition's requested ISR, as AlterPartition carries it.
#[derive(Debug, Clone)]
pub struct IsrChangeRequest {
    pub topic_id: Uuid,
    pub partition: i32,
    /// The leader epoch and partition epoch the leader decided on.
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Each proposed member with the broker epoch the leader saw it fetch with (-1 when unknown).
    pub new_isr: Vec<(i32, i64)>,
}

/// The controller's answer for one partition: the partition's state after the request (on success the
/// new ISR and partition epoch), or why it was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChangeResult {
    pub topic_id: Uuid,
    pub partition: i32,
    pub error: Option<ResponseError>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
}

impl Controller {
    /// Handles AlterPartition from broker `broker_id` (at `broker_epoch`): every acceptable change is
    /// committed in one batch, each partition gets its own result. A stale broker epoch refuses the whole
    /// request with STALE_BROKER_EPOCH, as Kafka does.
    pub fn alter_partition(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        requests: Vec<IsrChangeRequest>,
    ) -> Result<Vec<IsrChangeResult>, ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        match image.brokers.get(&broker_id) {
            Some(b) if b.epoch == broker_epoch => {}
            Some(b) => {
                return Err(ControllerError::StaleBrokerEpoch(format!(
                    "Expected broker epoch {}, but got broker epoch {broker_epoch}",
                    b.epoch
                )))
            }
            None => return Err(ControllerError::BrokerIdNotRegistered(broker_id)),
        }
        let mut results = Vec::with_capacity(requests.len());
        let mut records = Vec::new();
        let mut working: MetadataImage = (*image).clone();
        for request in &requests {
            let current = image
                .topic_by_id(&request.topic_id)
                .map(|t| t.partitions.get(request.partition as usize));
            let outcome = match current {
                None => Err(ResponseError::UnknownTopicId),
                Some(None) => Err(ResponseError::UnknownTopicOrPartition),
                Some(Some(p)) => validate(&image, broker_id, request, p).map(|isr| (p, isr)),
            };
            match outcome {
                Ok((p, isr)) => {
                    let min_isr = image
                        .topic_by_id(&request.topic_id)
                        .map_or(1, |t| self.min_isr(t));
                    let change = partition_change(request.topic_id, p, isr, p.leader, min_isr);
                    working.apply(&change);
                    records.push(change);
                    // The new ISR may complete a reassignment (every adding replica in sync).
                    let changed = working
                        .topic_by_id(&request.topic_id)
                        .and_then(|t| t.partitions.get(request.partition as usize))
                        .cloned();
                    if let Some(done) = changed.as_ref().and_then(|c| {
                        reassignment::completion(&working, request.topic_id, c, min_isr)
                    }) {
                        working.apply(&done);
                        records.push(done);
                    }
                    let Some(now) = working
                        .topic_by_id(&request.topic_id)
                        .and_then(|t| t.partitions.get(request.partition as usize))
                    else {
                        continue;
                    };
                    results.push(IsrChangeResult {
                        topic_id: request.topic_id,
                        partition: p.partition,
                        error: None,
                        leader: now.leader,
                        leader_epoch: now.leader_epoch,
                        isr: now.isr.clone(),
                        partition_epoch: now.partition_epoch,
                    });
                }
                Err(error) => {
                    let (leader, leader_epoch, isr, partition_epoch) = current
                        .flatten()
                        .map(|p| (p.leader, p.leader_epoch, p.isr.clone(), p.partition_epoch))
                        .unwrap_or((-1, -1, Vec::new(), -1));
                    results.push(IsrChangeResult {
                        topic_id: request.topic_id,
                        partition: request.partition,
                        error: Some(error),
                        leader,
                        leader_epoch,
                        isr,
                        partition_epoch,
                    });
                }
            }
        }
        if !records.is_empty() {
            self.journal.commit(records)?;
            for r in results.iter().filter(|r| r.error.is_none()) {
                let topic = image
                    .topic_by_id(&r.topic_id)
                    .map(|t| t.name.as_str())
                    .unwrap_or("?");
                tracing::info!(topic, partition = r.partition, isr = ?r.isr, partition_epoch = r.partition_epoch, "ISR changed");
            }
        }
        Ok(results)
    }
}

/// Kafka's validation order for one partition (ReplicationControlManager): a request newer than our state
/// means this controller is behind (NOT_CONTROLLER, the leader retries); an older one is fenced.
fn validate(
    image: &MetadataImage,
    broker_id: i32,
    request: &IsrChangeRequest,
    p: &PartitionImage,
) -> Result<Vec<i32>, ResponseError> {
    if request.leader_epoch > p.leader_epoch || request.partition_epoch > p.partition_epoch {
        return Err(ResponseError::NotController);
    }
    if request.leader_epoch < p.leader_epoch {
        return Err(ResponseError::FencedLeaderEpoch);
    }
    if p.leader != broker_id {
        return Err(ResponseError::InvalidRequest);
    }
    if request.partition_epoch < p.partition_epoch {
        return Err(ResponseError::InvalidUpdateVersion);
    }
    let isr: Vec<i32> = request.new_isr.iter().map(|(id, _)| *id).collect();
    let mut distinct = isr.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != isr.len()
        || !isr.contains(&p.leader)
        || isr.iter().any(|r| !p.replicas.contains(r))
    {
        return Err(ResponseError::InvalidRequest);
    }
    // A new member must be a live broker of the incarnation the leader saw fetching; members already in
    // the ISR may stay even if fenced meanwhile (fencing removes them itself).
    for (id, epoch) in &request.new_isr {
        if p.isr.contains(id) {
            continue;
        }
        let eligible = image.brokers.get(id).is_some_and(|b| {
            !b.fenced && !b.in_controlled_shutdown && (*epoch < 0 || b.epoch == *epoch)
        });
        if !eligible {
            return Err(ResponseError::IneligibleReplica);
        }
    }
    Ok(isr)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::metadata::broker_control::tests::{controller, live_cluster};

    fn live_cluster_controller(dir: &std::path::Path, n: i32) -> (Controller, Vec<i64>) {
        let c = controller(dir);
        let epochs = live_cluster(&c, n);
        (c, epochs)
    }
    use crate::metadata::NewTopic;

    fn request(c: &Controller, topic: &str, isr: Vec<i32>) -> IsrChangeRequest {
        let image = c.image();
        let t = image.topic(topic).expect("topic");
        let p = &t.partitions[0];
        IsrChangeRequest {
            topic_id: t.topic_id,
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: isr.into_iter().map(|id| (id, -1)).collect(),
        }
    }

    fn create(c: &Controller, name: &str) {
        c.create_topic(
            &NewTopic {
                name: name.into(),
                num_partitions: -1,
                replication_factor: -1,
                assignments: vec![vec![1, 2, 3]],
                configs: BTreeMap::new(),
            },
            false,
        )
        .expect("create");
    }

    #[test]
    fn new_partitions_start_with_every_live_replica_in_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, _) = live_cluster_controller(dir.path(), 3);
        create(&c, "t");
        let p = c.image().topic("t").expect("topic").partitions[0].clone();
        assert_eq!(p.isr, vec![1, 2, 3]);
        assert_eq!(p.leader, 1);
    }

    #[test]
    fn the_leader_shrinks_and_expands_the_isr() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, epochs) = live_cluster_controller(dir.path(), 3);
        create(&c, "t");
        let shrink = request(&c, "t", vec![1, 3]);
        let results = c
            .alter_partition(1, epochs[0], vec![shrink])
            .expect("alter");
        assert_eq!(results[0].error, None);
        assert_eq!(results[0].isr, vec![1, 3]);
        assert_eq!(results[0].partition_epoch, 1);
        let p = c.image().topic("t").expect("topic").partitions[0].clone();
        assert_eq!(
            (p.isr.clone(), p.partition_epoch, p.leader_epoch),
            (vec![1, 3], 1, 0)
        );
        let expand = request(&c, "t", vec![1, 3, 2]);
        let results = c
            .alter_partition(1, epochs[0], vec![expand])
            .expect("alter");
        assert_eq!(results[0].error, None);
        assert_eq!(
            c.image().topic("t").expect("topic").partitions[0].isr,
            vec![1, 3, 2]
        );
    }

    #[test]
    fn stale_or_invalid_requests_are_refused_with_kafkas_codes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, epochs) = live_cluster_controller(dir.path(), 3);
        create(&c, "t");
        // Only the leader may change the ISR.
        let r = c
            .alter_partition(2, epochs[1], vec![request(&c, "t", vec![1, 2])])
            .expect("alter");
        assert_eq!(r[0].error, Some(ResponseError::InvalidRequest));
        // The ISR must keep the leader and stay within the replicas.
        let r = c
            .alter_partition(1, epochs[0], vec![request(&c, "t", vec![2, 3])])
            .expect("alter");
        assert_eq!(r[0].error, Some(ResponseError::InvalidRequest));
        let r = c
            .alter_partition(1, epochs[0], vec![request(&c, "t", vec![1, 4])])
            .expect("alter");
        assert_eq!(r[0].error, Some(ResponseError::InvalidRequest));
        // An outdated partition epoch.
        let mut old = request(&c, "t", vec![1, 2]);
        c.alter_partition(1, epochs[0], vec![request(&c, "t", vec![1, 2])])
            .expect("alter");
        let r = c
            .alter_partition(1, epochs[0], vec![old.clone()])
            .expect("alter");
        assert_eq!(r[0].error, Some(ResponseError::InvalidUpdateVersion));
        // A request from the future: this controller is behind.
        old.partition_epoch = 99;
        let r = c.alter_partition(1, epochs[0], vec![old]).expect("alter");
        assert_eq!(r[0].error, Some(ResponseError::NotController));
        // A stale broker epoch refuses everything.
        let e = c
            .alter_partition(1, epochs[0] - 1, vec![request(&c, "t", vec![1])])
            .unwrap_err();
        assert_eq!(e.code(), ResponseError::StaleBrokerEpoch.code());
        // Unknown topic id.
        let mut unknown = request(&c, "t", vec![1]);
        unknown.topic_id = Uuid::new_v4();
        let r = c
            .alter_partition(1, epochs[0], vec![unknown])
            .expect("alter");
        assert_eq!(r[0].error, Some(ResponseError::UnknownTopicId));
    }

    #[test]
    fn a_fenced_broker_cannot_join_the_isr() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, epochs) = live_cluster_controller(dir.path(), 3);
        create(&c, "t");
        // Broker 3 asks to shut down: it is fenced and leaves the ISR.
        c.broker_heartbeat(crate::metadata::BrokerHeartbeatInput {
            broker_id: 3,
            broker_epoch: epochs[2],
            metadata_offset: i64::MAX,
            want_fence: false,
            want_shut_down: true,
        })
        .expect("heartbeat");
        assert_eq!(
            c.image().topic("t").expect("topic").partitions[0].isr,
            vec![1, 2]
        );
        let r = c
            .alter_partition(1, epochs[0], vec![request(&c, "t", vec![1, 2, 3])])
            .expect("alter");
        assert_eq!(r[0].error, Some(ResponseError::IneligibleReplica));
        // A member proposed with an older incarnation's epoch is not eligible either.
        let mut wrong_epoch = request(&c, "t", vec![1, 2]);
        wrong_epoch.new_isr = vec![(1, epochs[0]), (2, epochs[1] + 1000)];
        let shrunk = request(&c, "t", vec![1]);
        c.alter_partition(1, epochs[0], vec![shrunk])
            .expect("alter");
        wrong_epoch.partition_epoch =
            c.image().topic("t").expect("topic").partitions[0].partition_epoch;
        let r = c
            .alter_partition(1, epochs[0], vec![wrong_epoch])
            .expect("alter");
        assert_eq!(r[0].error, Some(ResponseError::IneligibleReplica));
    }
}
