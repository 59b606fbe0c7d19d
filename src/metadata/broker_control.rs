//! The controller's side of the broker lifecycle (Kafka's BrokerRegistration and BrokerHeartbeat): brokers
//! register fenced, are unfenced once they have caught up with the metadata, are fenced again when their
//! session expires or they ask to shut down, and fencing moves the partition leaderships they held.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::controller::{Controller, ControllerError};
use super::image::MetadataImage;
use super::records::{BrokerEndpoint, MetadataRecord};

/// A broker's registration request, as BrokerRegistration carries it.
#[derive(Debug, Clone)]
pub struct BrokerRegistrationInput {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
}

/// A broker's heartbeat, as BrokerHeartbeat carries it.
#[derive(Debug, Clone, Copy)]
pub struct BrokerHeartbeatInput {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// The metadata offset the broker has applied.
    pub metadata_offset: i64,
    pub want_fence: bool,
    pub want_shut_down: bool,
}

/// The controller's answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub should_shut_down: bool,
}

impl Controller {
    /// Registers a broker (fenced) and returns its broker epoch. A retried registration of the same
    /// incarnation gets the same epoch; another incarnation of a node id whose session is still alive is
    /// refused with DUPLICATE_BROKER_REGISTRATION, as two processes must never share a node id.
    pub fn register_broker(
        &self,
        request: BrokerRegistrationInput,
        session_timeout: Duration,
    ) -> Result<i64, ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        if let Some(existing) = image.brokers.get(&request.broker_id) {
            if existing.incarnation_id == request.incarnation_id {
                return Ok(existing.epoch);
            }
            let alive = self
                .last_heartbeat(request.broker_id)
                .is_some_and(|at| at.elapsed() < session_timeout);
            if alive && !existing.fenced {
                return Err(ControllerError::DuplicateBrokerRegistration(format!(
                    "Another broker is registered with that broker id ({}) and its session has not expired.",
                    request.broker_id
                )));
            }
        }
        let image = self.journal.commit(vec![MetadataRecord::RegisterBroker {
            broker_id: request.broker_id,
            incarnation_id: request.incarnation_id,
            endpoints: request.endpoints,
            rack: request.rack,
        }])?;
        self.touch(request.broker_id);
        let epoch = image
            .brokers
            .get(&request.broker_id)
            .map(|b| b.epoch)
            .ok_or(ControllerError::BrokerIdNotRegistered(request.broker_id))?;
        tracing::info!(
            broker = request.broker_id,
            epoch,
            "broker registered (fenced until caught up)"
        );
        Ok(epoch)
    }

    /// Handles a heartbeat: renews the session, unfences a broker that has caught up with the metadata
    /// log, and fences one that asks to shut down (moving its leaderships first).
    pub fn broker_heartbeat(
        &self,
        heartbeat: BrokerHeartbeatInput,
    ) -> Result<HeartbeatReply, ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        let registration = image
            .brokers
            .get(&heartbeat.broker_id)
            .ok_or(ControllerError::BrokerIdNotRegistered(heartbeat.broker_id))?;
        if registration.epoch != heartbeat.broker_epoch {
            return Err(ControllerError::StaleBrokerEpoch(format!(
                "Expected broker epoch {}, but got broker epoch {}",
                registration.epoch, heartbeat.broker_epoch
            )));
        }
        self.touch(heartbeat.broker_id);
        let caught_up = heartbeat.metadata_offset >= registration.epoch;
        let (id, epoch) = (heartbeat.broker_id, registration.epoch);
        if heartbeat.want_shut_down || heartbeat.want_fence {
            if !registration.fenced {
                let mut records = vec![MetadataRecord::BrokerRegistrationChange {
                    broker_id: id,
                    broker_epoch: epoch,
                    fenced: Some(true),
                    in_controlled_shutdown: heartbeat.want_shut_down.then_some(true),
                }];
                records.extend(leadership_moves_off(&image, id));
                self.journal.commit(records)?;
                tracing::info!(
                    broker = id,
                    shutting_down = heartbeat.want_shut_down,
                    "broker fenced at its request"
                );
            }
            return Ok(HeartbeatReply {
                is_caught_up: caught_up,
                is_fenced: true,
                should_shut_down: heartbeat.want_shut_down,
            });
        }
        if registration.fenced && caught_up {
            let mut records = vec![MetadataRecord::BrokerRegistrationChange {
                broker_id: id,
                broker_epoch: epoch,
                fenced: Some(false),
                in_controlled_shutdown: Some(false),
            }];
            records.extend(leadership_for_unfenced(&image, id));
            self.journal.commit(records)?;
            tracing::info!(broker = id, epoch, "broker unfenced");
            return Ok(HeartbeatReply {
                is_caught_up: true,
                is_fenced: false,
                should_shut_down: false,
            });
        }
        Ok(HeartbeatReply {
            is_caught_up: caught_up,
            is_fenced: registration.fenced,
            should_shut_down: false,
        })
    }

    /// Fences every unfenced broker not heard from within `session_timeout` and moves its leaderships;
    /// returns the fenced ids. A broker this controller has no record of gets a fresh session instead
    /// (after a controller failover nobody's heartbeats are known yet).
    pub fn fence_expired_brokers(
        &self,
        session_timeout: Duration,
    ) -> Result<Vec<i32>, ControllerError> {
        let _deciding = self.lock();
        let image = self.journal.image_for_update()?;
        // If this controller could not check for a while (it just became active, or the quorum had no
        // majority), heartbeats it missed were not the brokers' fault: everyone gets a fresh session.
        let stalled = {
            let mut last = match self.last_fence_check.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let stalled = last.is_none_or(|at| at.elapsed() > session_timeout / 2);
            *last = Some(Instant::now());
            stalled
        };
        let mut expired = Vec::new();
        {
            let mut heartbeats = match self.heartbeats.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if stalled {
                let now = Instant::now();
                for broker in image.live_brokers() {
                    heartbeats.insert(broker.broker_id, now);
                }
                return Ok(Vec::new());
            }
            for broker in image.live_brokers() {
                let last = *heartbeats
                    .entry(broker.broker_id)
                    .or_insert_with(Instant::now);
                if last.elapsed() > session_timeout {
                    expired.push((broker.broker_id, broker.epoch));
                }
            }
        }
        if expired.is_empty() {
            return Ok(Vec::new());
        }
        let mut records = Vec::new();
        let mut working: MetadataImage = (*image).clone();
        for (id, epoch) in &expired {
            let change = MetadataRecord::BrokerRegistrationChange {
                broker_id: *id,
                broker_epoch: *epoch,
                fenced: Some(true),
                in_controlled_shutdown: None,
            };
            working.apply(&change);
            records.push(change);
            // Each fenced broker's moves are decided on the image with the previous ones applied, so a
            // leadership never moves to a broker fenced in the same batch.
            for record in leadership_moves_off(&working, *id) {
                working.apply(&record);
                records.push(record);
            }
        }
        self.journal.commit(records)?;
        let ids: Vec<i32> = expired.iter().map(|(id, _)| *id).collect();
        tracing::warn!(brokers = ?ids, session_timeout_ms = session_timeout.as_millis() as u64, "brokers fenced: session expired");
        Ok(ids)
    }

    fn touch(&self, broker_id: i32) {
        match self.heartbeats.lock() {
            Ok(mut g) => g.insert(broker_id, Instant::now()),
            Err(p) => p.into_inner().insert(broker_id, Instant::now()),
        };
    }

    fn last_heartbeat(&self, broker_id: i32) -> Option<Instant> {
        match self.heartbeats.lock() {
            Ok(g) => g.get(&broker_id).copied(),
            Err(p) => p.into_inner().get(&broker_id).copied(),
        }
    }
}

/// Partition changes that take leadership (and ISR membership) away from `broker`: each partition it
/// leads gets the first other in-sync replica that is live as leader, or no leader (-1) if there is none.
/// The broker leaves the ISR unless it is the last member: the last in-sync replica stays recorded so that
/// it, and only it, can lead again without losing acknowledged data (no unclean election).
fn leadership_moves_off(image: &MetadataImage, broker: i32) -> Vec<MetadataRecord> {
    let live = |id: i32| id != broker && image.brokers.get(&id).is_some_and(|b| !b.fenced);
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            if p.leader != broker && !(p.isr.contains(&broker) && p.isr.len() > 1) {
                continue;
            }
            let isr: Vec<i32> = if p.isr.len() > 1 {
                p.isr.iter().copied().filter(|r| *r != broker).collect()
            } else {
                p.isr.clone()
            };
            let leader = if p.leader == broker {
                p.replicas
                    .iter()
                    .copied()
                    .find(|r| isr.contains(r) && live(*r))
                    .unwrap_or(-1)
            } else {
                p.leader
            };
            records.push(partition_change(topic.topic_id, p, isr, leader));
        }
    }
    records
}

/// Partitions without a leader whose ISR holds `broker`: it leads them again once unfenced.
fn leadership_for_unfenced(image: &MetadataImage, broker: i32) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            if p.leader == -1 && p.isr.contains(&broker) {
                records.push(partition_change(topic.topic_id, p, p.isr.clone(), broker));
            }
        }
    }
    records
}

/// The full partition record after a change: a new leader bumps the leader epoch; any change bumps the
/// partition epoch (Kafka's PartitionChangeRecord semantics, written as a whole record).
fn partition_change(
    topic_id: Uuid,
    p: &super::image::PartitionImage,
    isr: Vec<i32>,
    leader: i32,
) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition: p.partition,
        replicas: p.replicas.clone(),
        leader_epoch: if leader != p.leader {
            p.leader_epoch + 1
        } else {
            p.leader_epoch
        },
        isr,
        leader,
        partition_epoch: p.partition_epoch + 1,
    }
}
