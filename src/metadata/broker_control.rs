//! The controller's side of the broker lifecycle (Kafka's BrokerRegistration and BrokerHeartbeat): brokers
//! register fenced, are unfenced once they have caught up with the metadata, are fenced again when their
//! session expires or they ask to shut down, and fencing moves the partition leaderships they held.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::controller::{Controller, ControllerError};
use super::image::{MetadataImage, PartitionImage, TopicImage};
use super::records::{BrokerEndpoint, MetadataRecord};

/// A broker's registration request, as BrokerRegistration carries it.
#[derive(Debug, Clone)]
pub struct BrokerRegistrationInput {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    /// The broker epoch this node had when it last shut down cleanly, -1 if it did not (KIP-966): a
    /// value other than its registered epoch means it may have lost unflushed records.
    pub previous_broker_epoch: i64,
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
        // A new incarnation replaces one that was still unfenced (it crashed and came back within its
        // session, or this controller has no session for it): its leaderships move first, so the new
        // process takes them back only through an election that bumps the leader epoch, and clients
        // notice the restart (its log may have lost an unflushed tail).
        let min_isr = |t: &TopicImage| self.min_isr(t);
        let mut working: MetadataImage = (*image).clone();
        let mut records = Vec::new();
        if let Some(existing) = image.brokers.get(&request.broker_id) {
            if !existing.fenced {
                for record in leadership_moves_off(&working, request.broker_id, &min_isr) {
                    working.apply(&record);
                    records.push(record);
                }
            }
            if request.previous_broker_epoch != existing.epoch {
                let recovery = after_unclean_shutdown(&working, request.broker_id, &min_isr);
                if !recovery.is_empty() {
                    tracing::warn!(
                        broker = request.broker_id,
                        partitions = recovery.len(),
                        "broker restarted after an unclean shutdown: it no longer counts as holding every committed record"
                    );
                }
                records.extend(recovery);
            }
        }
        records.push(MetadataRecord::RegisterBroker {
            broker_id: request.broker_id,
            incarnation_id: request.incarnation_id,
            endpoints: request.endpoints,
            rack: request.rack,
        });
        let image = self.journal.commit(records)?;
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
                records.extend(leadership_moves_off(&image, id, &|t| self.min_isr(t)));
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
        // A broker that began a controlled shutdown stays fenced until it registers again (a new
        // incarnation): a heartbeat that was in flight when it asked to stop must not undo that.
        if registration.fenced && caught_up && !registration.in_controlled_shutdown {
            let mut records = vec![MetadataRecord::BrokerRegistrationChange {
                broker_id: id,
                broker_epoch: epoch,
                fenced: Some(false),
                in_controlled_shutdown: Some(false),
            }];
            records.extend(leadership_for_unfenced(&image, id, &|t| self.min_isr(t)));
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
    /// returns the fenced ids. After a pause (this controller just became active, or had no majority)
    /// nobody's heartbeats are known: every live broker then gets `takeover_grace` to be heard from, a
    /// few heartbeat intervals rather than a whole session (Kafka gives a whole session), so that a
    /// broker that died together with the previous controller is fenced soon after the election.
    pub fn fence_expired_brokers(
        &self,
        session_timeout: Duration,
        takeover_grace: Duration,
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
                let heard = now
                    .checked_sub(session_timeout.saturating_sub(takeover_grace))
                    .unwrap_or(now);
                for broker in image.live_brokers() {
                    heartbeats.insert(broker.broker_id, heard);
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
            for record in leadership_moves_off(&working, *id, &|t| self.min_isr(t)) {
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

/// `min.insync.replicas` of a topic, as the controller resolves it.
type MinIsr<'a> = &'a dyn Fn(&TopicImage) -> usize;

/// Partition changes that take leadership (and ISR membership) away from `broker`: each partition it
/// leads gets the first other in-sync replica that is live as leader, else the first live eligible leader
/// replica (KIP-966: it holds every record acknowledged with acks=all), else no leader (-1). The broker
/// leaves the ISR unless it is the last member: the last in-sync replica stays recorded so that it, or an
/// eligible leader replica, and nothing else can lead again (no unclean election).
fn leadership_moves_off(
    image: &MetadataImage,
    broker: i32,
    min_isr: MinIsr<'_>,
) -> Vec<MetadataRecord> {
    let live = |id: i32| id != broker && image.live_broker(id).is_some();
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            if p.leader != broker && !(p.isr.contains(&broker) && p.isr.len() > 1) {
                continue;
            }
            let mut isr: Vec<i32> = if p.isr.len() > 1 {
                p.isr.iter().copied().filter(|r| *r != broker).collect()
            } else {
                p.isr.clone()
            };
            let leader = if p.leader == broker {
                match p
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| isr.contains(r) && live(*r))
                {
                    Some(leader) => leader,
                    None => match p.elr.iter().copied().find(|r| live(*r)) {
                        Some(eligible) => {
                            isr = vec![eligible];
                            eligible
                        }
                        None => -1,
                    },
                }
            } else {
                p.leader
            };
            records.push(partition_change(
                topic.topic_id,
                p,
                isr,
                leader,
                min_isr(topic),
            ));
        }
    }
    records
}

/// Leaderless partitions `broker` may lead now that it is unfenced: those whose ISR holds it, and those
/// whose eligible leader replicas hold it while no in-sync replica is live.
fn leadership_for_unfenced(
    image: &MetadataImage,
    broker: i32,
    min_isr: MinIsr<'_>,
) -> Vec<MetadataRecord> {
    let live_isr = |p: &PartitionImage| {
        p.isr
            .iter()
            .any(|r| *r != broker && image.live_broker(*r).is_some())
    };
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            if p.leader != -1 {
                continue;
            }
            if p.isr.contains(&broker) {
                records.push(partition_change(
                    topic.topic_id,
                    p,
                    p.isr.clone(),
                    broker,
                    min_isr(topic),
                ));
            } else if p.elr.contains(&broker) && !live_isr(p) {
                records.push(partition_change(
                    topic.topic_id,
                    p,
                    vec![broker],
                    broker,
                    min_isr(topic),
                ));
            }
        }
    }
    records
}

/// KIP-966: a broker that restarts without a clean shutdown may have lost records it had acknowledged
/// (they were only in the page cache). It leaves every ELR; where it was the last in-sync replica of a
/// leaderless partition and an eligible leader replica exists, it leaves the ISR too, so the partition is
/// led by that replica (now, if it is live, else when it returns) and never by the one that lost data.
/// Without an eligible replica it keeps its claim: no replica is known to hold more.
fn after_unclean_shutdown(
    image: &MetadataImage,
    broker: i32,
    min_isr: MinIsr<'_>,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            let others: Vec<i32> = p.elr.iter().copied().filter(|r| *r != broker).collect();
            let sole_claim = p.leader == -1 && p.isr == [broker] && !others.is_empty();
            if !sole_claim && !p.elr.contains(&broker) {
                continue;
            }
            let (isr, leader) = if sole_claim {
                match others
                    .iter()
                    .copied()
                    .find(|r| image.live_broker(*r).is_some())
                {
                    Some(eligible) => (vec![eligible], eligible),
                    None => (Vec::new(), -1),
                }
            } else {
                (p.isr.clone(), p.leader)
            };
            let mut record = partition_change(topic.topic_id, p, isr, leader, min_isr(topic));
            if let MetadataRecord::Partition { elr, .. } = &mut record {
                elr.retain(|r| *r != broker);
            }
            records.push(record);
        }
    }
    records
}

/// The full partition record after a change: a new leader bumps the leader epoch; any change bumps the
/// partition epoch (Kafka's PartitionChangeRecord semantics, written as a whole record). Members that
/// leave an ISR which is then below `min_isr` become eligible leader replicas (KIP-966: every record
/// acknowledged with acks=all reached them); members of the ISR leave the ELR, and an ISR of at least
/// `min_isr` clears it.
pub(super) fn partition_change(
    topic_id: Uuid,
    p: &PartitionImage,
    isr: Vec<i32>,
    leader: i32,
    min_isr: usize,
) -> MetadataRecord {
    let elr = if isr.len() >= min_isr {
        Vec::new()
    } else {
        let mut elr: Vec<i32> = p.elr.iter().copied().filter(|r| !isr.contains(r)).collect();
        for r in &p.isr {
            if !isr.contains(r) && !elr.contains(r) {
                elr.push(*r);
            }
        }
        elr
    };
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
        elr,
        adding_replicas: p.adding_replicas.clone(),
        removing_replicas: p.removing_replicas.clone(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use kafka_protocol::error::ResponseError;

    use super::*;
    use crate::metadata::controller::{NewTopic, TopicDefaults};
    use crate::metadata::test_journal::FileJournal;

    const SESSION: Duration = Duration::from_secs(30);

    pub(in crate::metadata) fn controller(dir: &std::path::Path) -> Controller {
        Controller::new(
            1,
            TopicDefaults {
                num_partitions: 1,
                replication_factor: 1,
                delete_topic_enable: true,
                min_insync_replicas: 2,
            },
            Arc::new(FileJournal::open(dir)),
        )
    }

    fn registration(id: i32) -> BrokerRegistrationInput {
        BrokerRegistrationInput {
            broker_id: id,
            incarnation_id: Uuid::new_v4(),
            endpoints: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9000 + id as u16,
                security_protocol: 0,
            }],
            rack: None,
            previous_broker_epoch: -1,
        }
    }

    fn heartbeat(id: i32, epoch: i64, offset: i64) -> BrokerHeartbeatInput {
        BrokerHeartbeatInput {
            broker_id: id,
            broker_epoch: epoch,
            metadata_offset: offset,
            want_fence: false,
            want_shut_down: false,
        }
    }

    /// Registers and unfences brokers 1..=n; returns their epochs.
    pub(in crate::metadata) fn live_cluster(c: &Controller, n: i32) -> Vec<i64> {
        (1..=n)
            .map(|id| {
                let epoch = c
                    .register_broker(registration(id), SESSION)
                    .expect("register");
                let reply = c
                    .broker_heartbeat(heartbeat(id, epoch, i64::MAX))
                    .expect("heartbeat");
                assert!(!reply.is_fenced, "broker {id} unfenced once caught up");
                epoch
            })
            .collect()
    }

    fn topic(c: &Controller, name: &str, assignments: Vec<Vec<i32>>) {
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
        .expect("create topic");
    }

    /// Asks broker `id` to be fenced as a controlled shutdown would.
    fn shut_down(c: &Controller, id: i32, epoch: i64) {
        let mut input = heartbeat(id, epoch, i64::MAX);
        input.want_shut_down = true;
        c.broker_heartbeat(input).expect("shutdown heartbeat");
    }

    /// A new incarnation of `id` that registers (saying whether its last stop was clean) and is unfenced.
    fn restart(c: &Controller, id: i32, previous_epoch: i64) -> i64 {
        let mut input = registration(id);
        input.previous_broker_epoch = previous_epoch;
        let epoch = c.register_broker(input, SESSION).expect("register");
        c.broker_heartbeat(heartbeat(id, epoch, i64::MAX))
            .expect("heartbeat");
        epoch
    }

    /// Brokers 1-3, a partition on all three (min.insync.replicas=2), then 3, 2 and 1 shut down in turn:
    /// the ISR is [1] (the last member keeps its claim) and 2 left it while it was below the minimum.
    fn eligible_leader_setup(dir: &std::path::Path) -> (Controller, Vec<i64>) {
        let c = controller(dir);
        let epochs = live_cluster(&c, 3);
        topic(&c, "t", vec![vec![1, 2, 3]]);
        shut_down(&c, 3, epochs[2]);
        let p = c.image().topic("t").expect("t").partitions[0].clone();
        assert_eq!(
            (p.isr.clone(), p.elr.clone()),
            (vec![1, 2], vec![]),
            "ISR at the minimum: no ELR"
        );
        shut_down(&c, 2, epochs[1]);
        let p = c.image().topic("t").expect("t").partitions[0].clone();
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1], vec![2]));
        shut_down(&c, 1, epochs[0]);
        let p = c.image().topic("t").expect("t").partitions[0].clone();
        assert_eq!(
            (p.leader, p.isr.clone(), p.elr.clone()),
            (-1, vec![1], vec![2])
        );
        (c, epochs)
    }

    #[test]
    fn an_eligible_leader_replica_leads_when_no_in_sync_replica_is_live() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, epochs) = eligible_leader_setup(dir.path());
        restart(&c, 2, epochs[1]);
        let p = c.image().topic("t").expect("t").partitions[0].clone();
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
        assert!(!p.elr.contains(&2));
    }

    #[test]
    fn a_last_in_sync_replica_that_crashed_never_leads_over_an_eligible_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, epochs) = eligible_leader_setup(dir.path());
        // Broker 1 comes back from a crash (no clean-shutdown epoch): it may have lost acknowledged
        // records, so it gives up its claim and does not lead, although it was the last ISR member.
        restart(&c, 1, -1);
        let p = c.image().topic("t").expect("t").partitions[0].clone();
        assert_eq!(
            (p.leader, p.isr.clone(), p.elr.clone()),
            (-1, vec![], vec![2])
        );
        // The eligible replica leads once it is back.
        restart(&c, 2, epochs[1]);
        let p = c.image().topic("t").expect("t").partitions[0].clone();
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    }

    #[test]
    fn a_last_in_sync_replica_that_stopped_cleanly_leads_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, epochs) = eligible_leader_setup(dir.path());
        restart(&c, 1, epochs[0]);
        let p = c.image().topic("t").expect("t").partitions[0].clone();
        assert_eq!(
            (p.leader, p.isr.clone(), p.elr.clone()),
            (1, vec![1], vec![2])
        );
    }

    #[test]
    fn replicas_spread_over_racks_and_leaders_over_brokers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        let racks = [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")];
        for (id, rack) in racks {
            let mut input = registration(id);
            input.rack = Some(rack.into());
            let epoch = c.register_broker(input, SESSION).expect("register");
            c.broker_heartbeat(heartbeat(id, epoch, i64::MAX))
                .expect("heartbeat");
        }
        c.create_topic(
            &NewTopic {
                name: "spread".into(),
                num_partitions: 12,
                replication_factor: 3,
                assignments: Vec::new(),
                configs: BTreeMap::new(),
            },
            false,
        )
        .expect("create topic");
        let image = c.image();
        let rack_of = |id: i32| racks.iter().find(|(b, _)| *b == id).map(|(_, r)| *r);
        let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
        for p in &image.topic("spread").expect("topic").partitions {
            let mut used: Vec<_> = p.replicas.iter().map(|r| rack_of(*r)).collect();
            used.sort();
            used.dedup();
            assert_eq!(
                used.len(),
                3,
                "partition {} replicas {:?} share a rack",
                p.partition,
                p.replicas
            );
            *leaders.entry(p.leader).or_default() += 1;
        }
        assert!(
            leaders.values().all(|n| *n == 2),
            "leaders per broker: {leaders:?}"
        );
    }

    #[test]
    fn a_broker_is_unfenced_only_once_caught_up_with_its_registration() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        let reg = registration(1);
        let epoch = c.register_broker(reg.clone(), SESSION).expect("register");
        assert!(c.image().brokers[&1].fenced);
        // A retry of the same incarnation gets the same epoch and writes nothing.
        let offset = c.image().metadata_offset;
        assert_eq!(c.register_broker(reg, SESSION).expect("retry"), epoch);
        assert_eq!(c.image().metadata_offset, offset);
        let behind = c
            .broker_heartbeat(heartbeat(1, epoch, epoch - 1))
            .expect("heartbeat");
        assert!(behind.is_fenced && !behind.is_caught_up);
        let caught_up = c
            .broker_heartbeat(heartbeat(1, epoch, epoch))
            .expect("heartbeat");
        assert!(!caught_up.is_fenced && caught_up.is_caught_up);
        assert_eq!(c.image().live_brokers().count(), 1);
    }

    #[test]
    fn heartbeats_with_a_wrong_epoch_or_unknown_id_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        let epoch = c
            .register_broker(registration(1), SESSION)
            .expect("register");
        let stale = c
            .broker_heartbeat(heartbeat(1, epoch - 1, epoch))
            .unwrap_err();
        assert_eq!(stale.code(), ResponseError::StaleBrokerEpoch.code());
        let unknown = c.broker_heartbeat(heartbeat(9, epoch, epoch)).unwrap_err();
        assert_eq!(unknown.code(), ResponseError::BrokerIdNotRegistered.code());
    }

    #[test]
    fn another_incarnation_of_a_live_broker_is_a_duplicate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        live_cluster(&c, 1);
        let err = c.register_broker(registration(1), SESSION).unwrap_err();
        assert_eq!(
            err.code(),
            ResponseError::DuplicateBrokerRegistration.code()
        );
    }

    #[test]
    fn controlled_shutdown_moves_leadership_and_stays_fenced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        let epochs = live_cluster(&c, 2);
        topic(&c, "t", vec![vec![1, 2]]);
        // Both replicas in sync (as the ISR will be once followers replicate).
        let p = c.image().topic("t").expect("t").partitions[0].clone();
        let topic_id = c.image().topic("t").expect("t").topic_id;
        c.journal
            .commit(vec![MetadataRecord::Partition {
                topic_id,
                partition: 0,
                replicas: vec![1, 2],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch + 1,
                elr: Vec::new(),
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
            }])
            .expect("isr");
        let reply = c
            .broker_heartbeat(BrokerHeartbeatInput {
                want_shut_down: true,
                ..heartbeat(1, epochs[0], i64::MAX)
            })
            .expect("shutdown heartbeat");
        assert!(reply.is_fenced && reply.should_shut_down);
        let after = c.image().topic("t").expect("t").partitions[0].clone();
        assert_eq!((after.leader, after.isr.clone()), (2, vec![2]));
        assert_eq!(after.leader_epoch, p.leader_epoch + 1);
        // A regular heartbeat that was in flight does not unfence it.
        let late = c
            .broker_heartbeat(heartbeat(1, epochs[0], i64::MAX))
            .expect("late heartbeat");
        assert!(late.is_fenced);
        assert!(c.image().brokers[&1].fenced);
    }

    #[test]
    fn a_new_active_controller_gives_brokers_a_short_grace_not_a_whole_session() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        let epochs = live_cluster(&c, 2);
        let (session, grace) = (Duration::from_secs(30), Duration::from_millis(40));
        // The first check (as after an election) starts everyone's grace.
        assert!(c
            .fence_expired_brokers(session, grace)
            .expect("check")
            .is_empty());
        let started = std::time::Instant::now();
        let fenced = loop {
            std::thread::sleep(Duration::from_millis(5));
            c.broker_heartbeat(heartbeat(1, epochs[0], i64::MAX))
                .expect("1 is alive");
            let fenced = c.fence_expired_brokers(session, grace).expect("check");
            if !fenced.is_empty() || started.elapsed() > Duration::from_secs(5) {
                break fenced;
            }
        };
        assert_eq!(
            fenced,
            vec![2],
            "the silent broker goes, the heartbeating one stays"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn an_expired_session_fences_and_the_last_in_sync_replica_keeps_its_claim() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = controller(dir.path());
        let epochs = live_cluster(&c, 2);
        topic(&c, "t", vec![vec![2]]);
        let before = c.image().topic("t").expect("t").partitions[0].clone();
        let session = Duration::from_millis(50);
        // The first check after a pause gives everyone a fresh session.
        assert!(c
            .fence_expired_brokers(session, session)
            .expect("check")
            .is_empty());
        // Checked often, as the scheduler does; broker 1 keeps heartbeating, broker 2 is silent.
        let started = std::time::Instant::now();
        let fenced = loop {
            std::thread::sleep(Duration::from_millis(5));
            c.broker_heartbeat(heartbeat(1, epochs[0], i64::MAX))
                .expect("1 is alive");
            let fenced = c.fence_expired_brokers(session, session).expect("check");
            if !fenced.is_empty() || started.elapsed() > Duration::from_secs(2) {
                break fenced;
            }
        };
        assert_eq!(fenced, vec![2]);
        assert!(
            started.elapsed() >= session,
            "fenced only after its session"
        );
        let fenced = c.image().topic("t").expect("t").partitions[0].clone();
        assert_eq!(
            (fenced.leader, fenced.isr.clone()),
            (-1, vec![2]),
            "no unclean election"
        );
        // Back: it leads again, under a new epoch.
        let epoch = c
            .register_broker(registration(2), SESSION)
            .expect("re-register");
        c.broker_heartbeat(heartbeat(2, epoch, i64::MAX))
            .expect("heartbeat");
        let back = c.image().topic("t").expect("t").partitions[0].clone();
        assert_eq!(back.leader, 2);
        assert_eq!(back.leader_epoch, before.leader_epoch + 2);
    }

    #[test]
    fn a_restarted_incarnation_takes_its_partitions_back_under_a_new_epoch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir_path = dir.path().to_path_buf();
        {
            let c = controller(&dir_path);
            live_cluster(&c, 1);
            topic(&c, "t", vec![vec![1]]);
        }
        // A new controller process (no sessions known) sees a new incarnation of broker 1.
        let c = controller(&dir_path);
        let before = c.image().topic("t").expect("t").partitions[0].clone();
        let epoch = c
            .register_broker(registration(1), SESSION)
            .expect("re-register");
        assert_eq!(c.image().topic("t").expect("t").partitions[0].leader, -1);
        c.broker_heartbeat(heartbeat(1, epoch, i64::MAX))
            .expect("heartbeat");
        let after = c.image().topic("t").expect("t").partitions[0].clone();
        assert_eq!(after.leader, 1);
        assert_eq!(after.leader_epoch, before.leader_epoch + 2);
    }
}
