//! Which groups this node coordinates: those whose `__consumer_offsets` partition it leads. When the
//! metadata makes this node the leader of such a partition, the partition's groups are loaded from its log
//! (group requests meanwhile get COORDINATOR_LOAD_IN_PROGRESS); when leadership moves away they are
//! unloaded (requests get NOT_COORDINATOR and clients find the new coordinator with FindCoordinator).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::watch;

use super::{consumer, partition_for, OFFSETS_TOPIC};
use crate::handlers::now_ms;
use crate::server::Broker;

/// How often leadership is compared with the loaded partitions, besides every metadata change.
const RESCAN: Duration = Duration::from_millis(200);

/// The offsets partitions this node coordinates: partition index to (leader epoch, loaded).
#[derive(Default)]
pub struct CoordinatedPartitions {
    partitions: Mutex<HashMap<i32, (i32, bool)>>,
    /// One load or unload pass at a time.
    pass: tokio::sync::Mutex<()>,
}

impl CoordinatedPartitions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, (i32, bool)>> {
        match self.partitions.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

/// Whether this node may answer for `group` now: NOT_COORDINATOR when another node leads the group's
/// offsets partition, COORDINATOR_LOAD_IN_PROGRESS while it is being loaded here. Before the offsets topic
/// exists every node may answer (there is no state yet; the first write creates the topic).
pub fn check(broker: &Broker, group: &str) -> Result<(), ResponseError> {
    let image = broker.image();
    let Some(topic) = image.topic(OFFSETS_TOPIC) else {
        return Ok(());
    };
    let index = partition_for(group, topic.partitions.len() as i32);
    let Some(p) = topic.partitions.get(index as usize) else {
        return Err(ResponseError::NotCoordinator);
    };
    if p.leader != broker.node_id {
        return Err(ResponseError::NotCoordinator);
    }
    let mut coordinated = broker.coordinated.lock();
    match coordinated.get(&index) {
        Some((epoch, true)) if *epoch == p.leader_epoch => Ok(()),
        None => {
            // A partition never loaded here whose log is empty (the offsets topic was just created) has
            // nothing to load: it is ready at once rather than after the loader's next pass.
            let empty = broker.replicas.get_for(topic, index).is_some_and(|r| {
                r.is_leader()
                    && r.log_end_offset() == r.log_start_offset()
                    && r.log_end_offset() == 0
            });
            if empty {
                coordinated.insert(index, (p.leader_epoch, true));
                Ok(())
            } else {
                Err(ResponseError::CoordinatorLoadInProgress)
            }
        }
        _ => Err(ResponseError::CoordinatorLoadInProgress),
    }
}

/// Waits, up to `limit`, while this node leads the group's offsets partition but cannot answer for it
/// yet (the partition was just created and is still being opened, or is loading): FindCoordinator
/// should not send a client to a coordinator that would answer COORDINATOR_LOAD_IN_PROGRESS, which
/// clients retry only after a back-off of seconds.
pub async fn settle(broker: &Broker, group: &str, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while matches!(
        check(broker, group),
        Err(ResponseError::CoordinatorLoadInProgress)
    ) && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs until shutdown, keeping the loaded groups in line with leadership.
pub async fn run(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut images = broker.quorum.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = images.changed() => {}
            _ = tokio::time::sleep(RESCAN) => {}
        }
        sync(&broker).await;
    }
}

/// One pass: loads the offsets partitions this node now leads (under a new leader epoch) and unloads
/// those it no longer leads.
pub async fn sync(broker: &Broker) {
    let _pass = broker.coordinated.pass.lock().await;
    let image = broker.image();
    let Some(topic) = image.topic(OFFSETS_TOPIC) else {
        return;
    };
    let count = topic.partitions.len() as i32;
    for p in &topic.partitions {
        // Leadership as the replica itself has applied it: loading needs the log this node leads.
        let replica = broker
            .replicas
            .get_for(topic, p.partition)
            .filter(|r| r.is_leader() && p.leader == broker.node_id);
        let current = broker.coordinated.lock().get(&p.partition).copied();
        match replica {
            Some(replica) if current != Some((p.leader_epoch, true)) => {
                broker
                    .coordinated
                    .lock()
                    .insert(p.partition, (p.leader_epoch, false));
                // Leading again under a new epoch: what is in memory may be behind the log. A partition
                // not coordinated before has nothing here to forget (it was unloaded when leadership
                // left), except groups that began before the offsets topic existed, which must stay.
                if current.is_some() {
                    unload(broker, p.partition, count).await;
                }
                let started = std::time::Instant::now();
                match load(broker, &replica).await {
                    Ok((records, groups)) => {
                        broker
                            .coordinated
                            .lock()
                            .insert(p.partition, (p.leader_epoch, true));
                        if records > 0 || current.is_some() {
                            tracing::info!(
                                partition = p.partition,
                                leader_epoch = p.leader_epoch,
                                records,
                                groups,
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "group coordinator loaded {OFFSETS_TOPIC} partition"
                            );
                        }
                    }
                    Err(e) => {
                        broker.coordinated.lock().remove(&p.partition);
                        tracing::error!(partition = p.partition, error = %e, "cannot load {OFFSETS_TOPIC} partition; will retry");
                    }
                }
            }
            Some(_) => {}
            None if current.is_some() => {
                broker.coordinated.lock().remove(&p.partition);
                unload(broker, p.partition, count).await;
                tracing::info!(
                    partition = p.partition,
                    "group coordinator unloaded {OFFSETS_TOPIC} partition (leadership moved)"
                );
            }
            None => {}
        }
    }
}

/// Replays one offsets partition: committed offsets, classic group membership and consumer groups.
/// Returns the records applied and the number of groups restored.
async fn load(
    broker: &Broker,
    partition: &crate::replica::Partition,
) -> Result<(usize, usize), String> {
    let (records, consumer_groups) = broker.groups.replay(partition, &broker.membership).await?;
    let now = std::time::Instant::now();
    let session = broker.consumers.settings().session_timeout;
    let groups = consumer_groups.len();
    let mut written = broker.group_writes.lock().await;
    for (group, stored) in consumer_groups {
        if let Some(state) = consumer::group_from_records(&stored, now, now_ms(), session) {
            // A group is of one type: the consumer group's records are the newer.
            broker.membership.remove_group(&group);
            broker.consumers.restore(&group, state);
        }
        // Remembered even if incomplete, so the next write tombstones what is stale.
        written.insert(group, stored);
    }
    Ok((records, groups))
}

/// Forgets every group of offsets partition `index` (of `count`).
async fn unload(broker: &Broker, index: i32, count: i32) {
    let mine = |group: &String| partition_for(group, count) == index;
    for group in broker.groups.group_ids().iter().filter(|g| mine(g)) {
        broker.groups.remove_group(group);
    }
    for group in broker.membership.group_ids().iter().filter(|g| mine(g)) {
        broker.membership.remove_group(group);
    }
    for group in broker.consumers.group_ids().iter().filter(|g| mine(g)) {
        broker.consumers.remove_group(group);
    }
    broker
        .group_writes
        .lock()
        .await
        .retain(|group, _| !mine(group));
}
