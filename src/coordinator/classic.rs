//! The classic consumer group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup), with Kafka's
//! semantics: KIP-394 member ids handed out on a first join, generations, a leader member that computes
//! assignments, session and rebalance timeouts, `group.initial.rebalance.delay.ms`, and static membership
//! (KIP-345: a member with `group.instance.id` that comes back within its session timeout takes its old
//! place without a rebalance). Client-side protocols such as cooperative-sticky run over this unchanged.
//!
//! All state changes happen under one lock and never await; requests that must wait for a rebalance get a
//! oneshot receiver. A periodic `tick` expires sessions and rebalance deadlines.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;

use super::records::{GroupMetadataValue, StoredMember};

/// Where a classic group is in its rebalance cycle (Kafka's state names, shown by DescribeGroups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Empty => "Empty",
            Phase::PreparingRebalance => "PreparingRebalance",
            Phase::CompletingRebalance => "CompletingRebalance",
            Phase::Stable => "Stable",
        }
    }
}

/// Broker settings that bound groups (Kafka's `group.*` keys).
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub initial_rebalance_delay: Duration,
    pub max_size: usize,
}

/// What a JoinGroup is answered with.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, instance id, metadata): only for the leader.
    pub members: Vec<(String, Option<String>, Bytes)>,
    /// KIP-814: a static leader rejoining a stable group learns the members but must not reassign.
    pub skip_assignment: bool,
    /// For clients below JoinGroup v9 (no skip_assignment), that same answer names the previous leader
    /// id and no members, so the rejoined leader acts as a follower and does not reassign.
    pub leader_before_rejoin: Option<String>,
}

/// What a SyncGroup is answered with.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub assignment: Bytes,
}

/// A JoinGroup/SyncGroup answer, now or after the rebalance.
pub enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

/// A join request as the coordinator needs it.
pub struct JoinRequest {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a first join without a member id gets MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
}

struct Member {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    heartbeat_deadline: Instant,
    join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
}

struct Group {
    phase: Phase,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    /// Insertion order = join order: the first member becomes leader when none is left.
    members: IndexMap<String, Member>,
    /// KIP-394: member ids handed out, awaiting the member's second join; value = expiry.
    pending: HashMap<String, Instant>,
    static_members: HashMap<String, String>,
    rebalance_deadline: Option<Instant>,
    /// group.initial.rebalance.delay.ms window of a rebalance that started from Empty.
    initial_delay_until: Option<Instant>,
    initial_delay_limit: Option<Instant>,
    /// A member joined during the current initial-delay window: when it ends, one more window runs.
    new_member_added: bool,
    /// CompletingRebalance: members that have not sent SyncGroup yet, and when they are given up on
    /// (Kafka's pending-sync timer: the rebalance timeout).
    pending_sync: std::collections::HashSet<String>,
    sync_deadline: Option<Instant>,
    /// Wall-clock time the group last became Empty: offset retention counts from here.
    empty_since_ms: Option<i64>,
}

impl Group {
    fn new() -> Group {
        Group {
            phase: Phase::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            rebalance_deadline: None,
            initial_delay_until: None,
            initial_delay_limit: None,
            new_member_added: false,
            pending_sync: Default::default(),
            sync_deadline: None,
            empty_since_ms: None,
        }
    }

    /// Protocols every member supports, in the order of the first member's preference.
    fn common_protocols(&self) -> Vec<String> {
        let Some((_, first)) = self.members.first() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect()
    }

    /// Kafka's vote: each member votes for its most preferred common protocol; most votes wins.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.common_protocols();
        let mut votes: IndexMap<&str, usize> = candidates.iter().map(|c| (c.as_str(), 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.iter().any(|c| c == n))
            {
                if let Some(v) = votes.get_mut(name.as_str()) {
                    *v += 1;
                }
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, c)| count > c) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.to_string())
    }

    fn accepts_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self
            .protocol_type
            .as_deref()
            .is_some_and(|t| t != protocol_type)
        {
            return false;
        }
        let common = self.common_protocols();
        protocols.iter().any(|(n, _)| common.contains(n))
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    fn join_outcome_for(&self, member_id: &str) -> JoinOutcome {
        let leader = self.leader.clone().unwrap_or_default();
        let members = if member_id == leader {
            self.members
                .iter()
                .map(|(id, m)| {
                    let metadata = m
                        .protocols
                        .iter()
                        .find(|(n, _)| Some(n) == self.protocol.as_ref())
                        .map(|(_, md)| md.clone())
                        .unwrap_or_default();
                    (id.clone(), m.instance_id.clone(), metadata)
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
            skip_assignment: false,
            leader_before_rejoin: None,
        }
    }

    fn prepare_rebalance(
        &mut self,
        now: Instant,
        settings: &GroupSettings,
        reason: &str,
        id: &str,
    ) {
        if self.phase == Phase::PreparingRebalance {
            return;
        }
        // Members waiting for their assignment must rejoin: the assignment they wait for is obsolete.
        for m in self.members.values_mut() {
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncOutcome {
                    error: ResponseError::RebalanceInProgress.code(),
                    ..Default::default()
                });
            }
        }
        let from_empty = self.phase == Phase::Empty;
        self.pending_sync.clear();
        self.sync_deadline = None;
        self.phase = Phase::PreparingRebalance;
        self.rebalance_deadline = Some(now + self.max_rebalance_timeout());
        if from_empty && !settings.initial_rebalance_delay.is_zero() {
            self.initial_delay_until = Some(now + settings.initial_rebalance_delay);
            self.initial_delay_limit = Some(now + self.max_rebalance_timeout());
        }
        tracing::info!(
            group = id,
            generation = self.generation,
            reason,
            "preparing rebalance"
        );
    }

    /// Completes the join phase if every member has rejoined (or the deadline forces it). Returns true
    /// if the group became empty, which must be persisted.
    fn maybe_complete_join(&mut self, now: Instant, id: &str, delay: Duration) -> bool {
        if self.phase != Phase::PreparingRebalance {
            return false;
        }
        if let Some(until) = self.initial_delay_until {
            if now < until {
                return false;
            }
            // Kafka's initial delay: when a window ends with newcomers, one more window (bounded by the
            // rebalance timeout) lets the rest of a starting fleet arrive.
            let remaining = self
                .initial_delay_limit
                .map(|limit| limit.saturating_duration_since(now))
                .unwrap_or_default();
            if self.new_member_added && !remaining.is_zero() {
                self.new_member_added = false;
                self.initial_delay_until = Some(now + delay.min(remaining));
                return false;
            }
        }
        // KIP-394 members between MEMBER_ID_REQUIRED and their second join count as not yet joined.
        let all_joined =
            self.members.values().all(|m| m.join_waiter.is_some()) && self.pending.is_empty();
        let deadline_passed = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !all_joined && !deadline_passed {
            return false;
        }
        // Dynamic members that did not rejoin in time leave the group; static members leave only by
        // session timeout or LeaveGroup (KIP-345), as in Kafka.
        let missing: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.join_waiter.is_none() && m.instance_id.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for member in missing {
            tracing::info!(group = id, member = %member, "member removed: did not rejoin before the rebalance timeout");
            self.remove_member(&member);
        }
        self.initial_delay_until = None;
        self.initial_delay_limit = None;
        self.new_member_added = false;
        self.rebalance_deadline = None;
        self.generation += 1;
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            self.protocol = None;
            self.leader = None;
            self.empty_since_ms = Some(wall_clock_ms());
            tracing::info!(group = id, generation = self.generation, "group is empty");
            return true;
        }
        self.protocol = self.select_protocol();
        self.protocol_type = self.members.first().map(|(_, m)| m.protocol_type.clone());
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.phase = Phase::CompletingRebalance;
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        for member_id in self.members.keys().cloned().collect::<Vec<_>>() {
            let outcome = self.join_outcome_for(&member_id);
            if let Some(w) = self
                .members
                .get_mut(&member_id)
                .and_then(|m| m.join_waiter.take())
            {
                let _ = w.send(outcome);
            }
            if let Some(m) = self.members.get_mut(&member_id) {
                m.heartbeat_deadline = now + m.session_timeout;
            }
        }
        tracing::info!(
            group = id,
            generation = self.generation,
            members = self.members.len(),
            protocol = self.protocol.as_deref().unwrap_or(""),
            "rebalance: join phase complete"
        );
        // As Kafka, the new generation is stored with its assignment when the leader syncs: a record
        // written now would carry the previous assignment under the new generation.
        false
    }

    fn remove_member(&mut self, member_id: &str) {
        if let Some(m) = self.members.shift_remove(member_id) {
            if let Some(instance) = &m.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
            if let Some(w) = m.join_waiter {
                let _ = w.send(JoinOutcome {
                    error: ResponseError::UnknownMemberId.code(),
                    member_id: member_id.to_string(),
                    generation: -1,
                    ..Default::default()
                });
            }
            if let Some(w) = m.sync_waiter {
                let _ = w.send(SyncOutcome {
                    error: ResponseError::UnknownMemberId.code(),
                    ..Default::default()
                });
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = None;
        }
    }

    fn snapshot(&self, now_ms: i64) -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: now_ms,
            members: self
                .members
                .iter()
                .map(|(id, m)| StoredMember {
                    member_id: id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: m
                        .protocols
                        .iter()
                        .find(|(n, _)| Some(n) == self.protocol.as_ref())
                        .map(|(_, md)| md.clone())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

/// Summary of a group for DescribeGroups / ListGroups.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub phase: Phase,
    pub protocol_type: String,
    pub protocol: String,
    /// (member id, instance id, client id, client host, metadata, assignment)
    pub members: Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
}

/// All classic groups with members on this coordinator.
pub struct ClassicGroups {
    settings: GroupSettings,
    groups: Mutex<HashMap<String, Group>>,
}

/// Groups whose membership changed and must be written to `__consumer_offsets`. Ids, not snapshots:
/// the writer snapshots each group when it holds the write lock, so the log order is the state order.
pub type Dirty = Vec<String>;

/// Longest client-supplied prefix of a member id: the uuid makes ids unique, and a bounded id keeps
/// stored group records within Kafka's int16 string lengths whatever the client id is.
const MEMBER_ID_PREFIX_CHARS: usize = 128;

fn new_member_id(client_id: &str, instance_id: Option<&str>) -> String {
    let prefix: String = instance_id
        .unwrap_or(client_id)
        .chars()
        .take(MEMBER_ID_PREFIX_CHARS)
        .collect();
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

impl ClassicGroups {
    pub fn new(settings: GroupSettings) -> ClassicGroups {
        ClassicGroups {
            settings,
            groups: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        match self.groups.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// JoinGroup. Returns the reply and, if membership changed durably, the state to persist.
    pub fn join(&self, req: JoinRequest, now: Instant) -> (Reply<JoinOutcome>, Dirty) {
        let fail = |code: ResponseError, member_id: &str| {
            (
                Reply::Now(JoinOutcome {
                    error: code.code(),
                    generation: -1,
                    member_id: member_id.to_string(),
                    ..Default::default()
                }),
                Vec::new(),
            )
        };
        if req.session_timeout < self.settings.min_session_timeout
            || req.session_timeout > self.settings.max_session_timeout
        {
            return fail(ResponseError::InvalidSessionTimeout, &req.member_id);
        }
        let mut groups = self.lock();
        // Only a first join (no member id) may create a group, as in Kafka: failed joins naming ids
        // must not leave empty groups behind.
        if !groups.contains_key(&req.group) {
            if !req.member_id.is_empty() {
                return fail(ResponseError::UnknownMemberId, &req.member_id);
            }
            if req.protocol_type.is_empty() || req.protocols.is_empty() {
                return fail(ResponseError::InconsistentGroupProtocol, &req.member_id);
            }
        }
        let group = groups.entry(req.group.clone()).or_insert_with(Group::new);
        if !group.accepts_protocols(&req.protocol_type, &req.protocols) {
            return fail(ResponseError::InconsistentGroupProtocol, &req.member_id);
        }
        let mut member_id = req.member_id.clone();
        if member_id.is_empty() {
            if let Some(instance) = &req.instance_id {
                member_id = new_member_id(&req.client_id, Some(instance));
                if let Some(old_id) = group.static_members.get(instance).cloned() {
                    return self.replace_static_member(group, &req, old_id, member_id, now);
                }
            } else {
                member_id = new_member_id(&req.client_id, None);
                // Pending ids count against group.max.size: a client cannot grow them without bound.
                if group.members.len() + group.pending.len() >= self.settings.max_size {
                    return fail(ResponseError::GroupMaxSizeReached, "");
                }
                if req.require_known_member_id {
                    group
                        .pending
                        .insert(member_id.clone(), now + req.session_timeout);
                    return fail(ResponseError::MemberIdRequired, &member_id);
                }
            }
        } else if let Some(instance) = &req.instance_id {
            match group.static_members.get(instance) {
                Some(known) if *known != member_id => {
                    return fail(ResponseError::FencedInstanceId, &member_id)
                }
                None if !group.members.contains_key(&member_id) => {
                    return fail(ResponseError::UnknownMemberId, &member_id)
                }
                _ => {}
            }
        } else if !group.members.contains_key(&member_id)
            && group.pending.remove(&member_id).is_none()
        {
            return fail(ResponseError::UnknownMemberId, &member_id);
        }
        if !group.members.contains_key(&member_id) && group.members.len() >= self.settings.max_size
        {
            return fail(ResponseError::GroupMaxSizeReached, &member_id);
        }
        let (tx, rx) = oneshot::channel();
        let existing = group.members.get_mut(&member_id);
        match existing {
            Some(m) => {
                let unchanged = m.protocols == req.protocols;
                m.protocols = req.protocols.clone();
                m.session_timeout = req.session_timeout;
                m.rebalance_timeout = req.rebalance_timeout;
                m.heartbeat_deadline = now + req.session_timeout;
                let is_leader = group.leader.as_deref() == Some(member_id.as_str());
                match group.phase {
                    Phase::CompletingRebalance | Phase::Stable if unchanged && !is_leader => {
                        // A follower re-sending its join with the same metadata: answer with the current
                        // generation, no rebalance (Kafka does the same).
                        return (Reply::Now(group.join_outcome_for(&member_id)), Vec::new());
                    }
                    Phase::CompletingRebalance if unchanged => {
                        return (Reply::Now(group.join_outcome_for(&member_id)), Vec::new());
                    }
                    _ => {}
                }
                if let Some(m) = group.members.get_mut(&member_id) {
                    m.join_waiter = Some(tx);
                }
                group.prepare_rebalance(
                    now,
                    &self.settings,
                    "member rejoined with new metadata or as leader",
                    &req.group,
                );
            }
            None => {
                let member = Member {
                    instance_id: req.instance_id.clone(),
                    client_id: req.client_id.clone(),
                    client_host: req.client_host.clone(),
                    session_timeout: req.session_timeout,
                    rebalance_timeout: req.rebalance_timeout,
                    protocol_type: req.protocol_type.clone(),
                    protocols: req.protocols.clone(),
                    assignment: Bytes::new(),
                    heartbeat_deadline: now + req.session_timeout,
                    join_waiter: Some(tx),
                    sync_waiter: None,
                };
                group.members.insert(member_id.clone(), member);
                if let Some(instance) = &req.instance_id {
                    group
                        .static_members
                        .insert(instance.clone(), member_id.clone());
                }
                if group.protocol_type.is_none() {
                    group.protocol_type = Some(req.protocol_type.clone());
                }
                if group.phase == Phase::PreparingRebalance {
                    group.new_member_added |= group.initial_delay_until.is_some();
                    group.rebalance_deadline = Some(
                        group
                            .rebalance_deadline
                            .unwrap_or(now)
                            .max(now + req.rebalance_timeout),
                    );
                }
                group.prepare_rebalance(now, &self.settings, "new member joined", &req.group);
            }
        }
        let mut dirty = Vec::new();
        if group.maybe_complete_join(now, &req.group, self.settings.initial_rebalance_delay) {
            dirty.push(req.group.clone());
        }
        (Reply::Later(rx), dirty)
    }

    /// KIP-345: a static member restarted with a new member id. In a stable group with unchanged metadata
    /// it takes the old member's place (and assignment) without a rebalance.
    fn replace_static_member(
        &self,
        group: &mut Group,
        req: &JoinRequest,
        old_id: String,
        new_id: String,
        now: Instant,
    ) -> (Reply<JoinOutcome>, Dirty) {
        let Some(mut old) = group.members.shift_remove(&old_id) else {
            group
                .static_members
                .remove(req.instance_id.as_deref().unwrap_or_default());
            return (
                Reply::Now(JoinOutcome {
                    error: ResponseError::UnknownMemberId.code(),
                    generation: -1,
                    ..Default::default()
                }),
                Vec::new(),
            );
        };
        // The old incarnation is fenced: anything it still waits for fails.
        if let Some(w) = old.join_waiter.take() {
            let _ = w.send(JoinOutcome {
                error: ResponseError::FencedInstanceId.code(),
                generation: -1,
                member_id: old_id.clone(),
                ..Default::default()
            });
        }
        if let Some(w) = old.sync_waiter.take() {
            let _ = w.send(SyncOutcome {
                error: ResponseError::FencedInstanceId.code(),
                ..Default::default()
            });
        }
        old.protocols = req.protocols.clone();
        old.session_timeout = req.session_timeout;
        old.rebalance_timeout = req.rebalance_timeout;
        old.client_id = req.client_id.clone();
        old.client_host = req.client_host.clone();
        old.heartbeat_deadline = now + req.session_timeout;
        group.members.insert(new_id.clone(), old);
        if let Some(instance) = &req.instance_id {
            group
                .static_members
                .insert(instance.clone(), new_id.clone());
        }
        let leader_before_rejoin = group.leader.clone();
        if group.leader.as_deref() == Some(old_id.as_str()) {
            group.leader = Some(new_id.clone());
        }
        tracing::info!(group = %req.group, old = %old_id, new = %new_id, "static member rejoined");
        // As Kafka: only a change of the protocol the group would select forces a rebalance; new
        // subscription bytes under the same protocol do not.
        let selected_unchanged = group.select_protocol() == group.protocol;
        if group.phase == Phase::Stable && selected_unchanged {
            let mut outcome = group.join_outcome_for(&new_id);
            outcome.skip_assignment = group.leader.as_deref() == Some(new_id.as_str());
            outcome.leader_before_rejoin = leader_before_rejoin;
            let dirty = vec![req.group.clone()];
            return (Reply::Now(outcome), dirty);
        }
        let (tx, rx) = oneshot::channel();
        if let Some(m) = group.members.get_mut(&new_id) {
            m.join_waiter = Some(tx);
        }
        group.prepare_rebalance(
            now,
            &self.settings,
            "static member rejoined with new metadata",
            &req.group,
        );
        let mut dirty = Vec::new();
        if group.maybe_complete_join(now, &req.group, self.settings.initial_rebalance_delay) {
            dirty.push(req.group.clone());
        }
        (Reply::Later(rx), dirty)
    }

    /// SyncGroup. `assignments` is non-empty only from the leader.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> (Reply<SyncOutcome>, Dirty) {
        let fail = |code: ResponseError| {
            (
                Reply::Now(SyncOutcome {
                    error: code.code(),
                    ..Default::default()
                }),
                Vec::new(),
            )
        };
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return fail(ResponseError::UnknownMemberId);
        };
        if let Err(code) = check_member(group, member_id, instance_id) {
            return fail(code);
        }
        if generation != group.generation {
            return fail(ResponseError::IllegalGeneration);
        }
        if protocol_type.is_some_and(|t| Some(t) != group.protocol_type.as_deref())
            || protocol.is_some_and(|p| Some(p) != group.protocol.as_deref())
        {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        let ok = |group: &Group, assignment: Bytes| SyncOutcome {
            error: 0,
            protocol_type: group.protocol_type.clone(),
            protocol: group.protocol.clone(),
            assignment,
        };
        match group.phase {
            Phase::Empty => fail(ResponseError::UnknownMemberId),
            Phase::PreparingRebalance => fail(ResponseError::RebalanceInProgress),
            Phase::Stable => {
                let assignment = group
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                (Reply::Now(ok(group, assignment)), Vec::new())
            }
            Phase::CompletingRebalance => {
                group.pending_sync.remove(member_id);
                let (tx, rx) = oneshot::channel();
                if let Some(m) = group.members.get_mut(member_id) {
                    m.sync_waiter = Some(tx);
                    m.heartbeat_deadline = now + m.session_timeout;
                }
                if group.leader.as_deref() != Some(member_id) {
                    return (Reply::Later(rx), Vec::new());
                }
                let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
                for (id, m) in group.members.iter_mut() {
                    m.assignment = by_member.remove(id).unwrap_or_default();
                }
                group.phase = Phase::Stable;
                group.pending_sync.clear();
                group.sync_deadline = None;
                let outcome_base = ok(group, Bytes::new());
                for m in group.members.values_mut() {
                    if let Some(w) = m.sync_waiter.take() {
                        let _ = w.send(SyncOutcome {
                            assignment: m.assignment.clone(),
                            ..outcome_base.clone()
                        });
                    }
                }
                tracing::info!(
                    group = group_id,
                    generation = group.generation,
                    "rebalance complete: group stable"
                );
                (Reply::Later(rx), vec![group_id.to_string()])
            }
        }
    }

    /// Heartbeat: keeps a member's session alive and tells it when to rejoin.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return ResponseError::UnknownMemberId.code();
        };
        if let Err(code) = check_member(group, member_id, instance_id) {
            return code.code();
        }
        if generation != group.generation {
            return ResponseError::IllegalGeneration.code();
        }
        if let Some(m) = group.members.get_mut(member_id) {
            m.heartbeat_deadline = now + m.session_timeout;
        }
        match group.phase {
            Phase::PreparingRebalance => ResponseError::RebalanceInProgress.code(),
            Phase::Empty => ResponseError::UnknownMemberId.code(),
            Phase::CompletingRebalance | Phase::Stable => 0,
        }
    }

    /// LeaveGroup for one member (by member id, or instance id for static members).
    pub fn leave(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
    ) -> (i16, Dirty) {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(group_id) else {
            return (ResponseError::UnknownMemberId.code(), Vec::new());
        };
        let target = match instance_id {
            Some(instance) => match group.static_members.get(instance) {
                Some(known) if member_id.is_empty() || known == member_id => known.clone(),
                Some(_) => return (ResponseError::FencedInstanceId.code(), Vec::new()),
                None => return (ResponseError::UnknownMemberId.code(), Vec::new()),
            },
            None => {
                if group.pending.remove(member_id).is_some() {
                    return (0, Vec::new());
                }
                if !group.members.contains_key(member_id) {
                    return (ResponseError::UnknownMemberId.code(), Vec::new());
                }
                member_id.to_string()
            }
        };
        group.remove_member(&target);
        tracing::info!(group = group_id, member = %target, "member left the group");
        let dirty = self.after_removal(group, group_id, now);
        (0, dirty)
    }

    fn after_removal(&self, group: &mut Group, group_id: &str, now: Instant) -> Dirty {
        match group.phase {
            Phase::Stable | Phase::CompletingRebalance => {
                group.prepare_rebalance(now, &self.settings, "member removed", group_id);
            }
            Phase::Empty => {}
            Phase::PreparingRebalance => {}
        }
        if group.maybe_complete_join(now, group_id, self.settings.initial_rebalance_delay) {
            return vec![group_id.to_string()];
        }
        Vec::new()
    }

    /// Expires sessions, pending member ids and rebalance deadlines.
    pub fn tick(&self, now: Instant) -> Dirty {
        let mut dirty = Vec::new();
        let mut groups = self.lock();
        // Groups that never formed (every join failed or its pending id expired) are forgotten.
        groups.retain(|_, g| {
            !(g.generation == 0
                && g.members.is_empty()
                && g.pending.is_empty()
                && g.phase == Phase::Empty)
        });
        for (id, group) in groups.iter_mut() {
            group.pending.retain(|_, expiry| *expiry > now);
            // A member waiting in a join or sync is kept alive (Kafka's shouldKeepAlive).
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    m.join_waiter.is_none()
                        && m.sync_waiter.is_none()
                        && now >= m.heartbeat_deadline
                })
                .map(|(mid, _)| mid.clone())
                .collect();
            let mut changed = false;
            for member in &expired {
                tracing::info!(group = %id, member = %member, "member session expired");
                group.remove_member(member);
                changed = true;
            }
            if group.phase == Phase::CompletingRebalance
                && group.sync_deadline.is_some_and(|d| now >= d)
            {
                let unsynced: Vec<String> = group.pending_sync.drain().collect();
                group.sync_deadline = None;
                for member in &unsynced {
                    tracing::info!(group = %id, member = %member, "member removed: no SyncGroup before the rebalance timeout");
                    group.remove_member(member);
                    changed = true;
                }
            }
            if changed {
                dirty.extend(self.after_removal(group, id, now));
            } else if group.maybe_complete_join(now, id, self.settings.initial_rebalance_delay) {
                dirty.push(id.clone());
            }
        }
        dirty
    }

    /// Whether the group has members (DeleteGroups refuses such groups; OffsetCommit validates them).
    pub fn has_members(&self, group_id: &str) -> bool {
        self.lock()
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Validates an OffsetCommit against membership (Kafka's classic-group rules). `None` = not a
    /// group with membership state here.
    pub fn validate_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Option<Result<(), i16>> {
        let mut groups = self.lock();
        let group = groups.get_mut(group_id)?;
        if generation < 0 && group.phase == Phase::Empty {
            return Some(Ok(()));
        }
        if group.phase == Phase::CompletingRebalance {
            return Some(Err(ResponseError::RebalanceInProgress.code()));
        }
        if let Err(code) = check_member(group, member_id, instance_id) {
            return Some(Err(code.code()));
        }
        if generation != group.generation {
            return Some(Err(ResponseError::IllegalGeneration.code()));
        }
        // An offset commit counts as a sign of life in the old protocol.
        if let Some(m) = group.members.get_mut(member_id) {
            m.heartbeat_deadline = now + m.session_timeout;
        }
        Some(Ok(()))
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.lock();
        let g = groups.get(group_id)?;
        if g.members.is_empty() && g.phase == Phase::Empty && g.generation == 0 {
            return None;
        }
        Some(GroupDescription {
            phase: g.phase,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if g.phase == Phase::Stable || g.phase == Phase::CompletingRebalance {
                g.protocol.clone().unwrap_or_default()
            } else {
                String::new()
            },
            members: g
                .members
                .iter()
                .map(|(id, m)| {
                    let metadata = m
                        .protocols
                        .iter()
                        .find(|(n, _)| Some(n) == g.protocol.as_ref())
                        .map(|(_, md)| md.clone())
                        .unwrap_or_default();
                    (
                        id.clone(),
                        m.instance_id.clone(),
                        m.client_id.clone(),
                        m.client_host.clone(),
                        metadata,
                        m.assignment.clone(),
                    )
                })
                .collect(),
        })
    }

    pub fn group_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// How the group's committed offsets age.
    pub fn offset_expiry(&self, group_id: &str) -> OffsetExpiry {
        match self.lock().get(group_id) {
            None => OffsetExpiry::CommitTime,
            Some(g) if !g.members.is_empty() || g.phase != Phase::Empty => OffsetExpiry::InUse,
            Some(g) => g
                .empty_since_ms
                .map_or(OffsetExpiry::CommitTime, OffsetExpiry::EmptySince),
        }
    }

    /// The group's current membership as stored in `__consumer_offsets`, if it still exists.
    pub fn snapshot(&self, group_id: &str, now_ms: i64) -> Option<GroupMetadataValue> {
        self.lock().get(group_id).map(|g| g.snapshot(now_ms))
    }

    /// For OffsetDelete: `None` if the group has no members (offsets may go), `Some(None)` if it has
    /// members that do not use the "consumer" protocol type (Kafka refuses: the group is not empty),
    /// `Some(Some(topics))` with the topics its members subscribe to.
    pub fn subscribed_topics(&self, group_id: &str) -> Option<Option<BTreeSet<String>>> {
        let groups = self.lock();
        let g = groups.get(group_id)?;
        if g.members.is_empty() {
            return None;
        }
        if g.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return Some(None);
        }
        let mut topics = BTreeSet::new();
        for m in g.members.values() {
            for (name, metadata) in &m.protocols {
                if g.protocol.as_ref().is_none_or(|p| p == name) {
                    topics.extend(subscription_topics(metadata));
                }
            }
        }
        Some(Some(topics))
    }

    /// Forgets a group (DeleteGroups of an empty group).
    pub fn remove_group(&self, group_id: &str) {
        self.lock().remove(group_id);
    }

    /// Restores a group from its stored metadata (start-up replay): members come back with fresh
    /// sessions, so a consumer that keeps heartbeating keeps its assignment across a broker restart.
    pub fn restore(&self, group_id: &str, value: &GroupMetadataValue, now: Instant) {
        let mut group = Group::new();
        group.generation = value.generation;
        group.protocol_type = Some(value.protocol_type.clone()).filter(|t| !t.is_empty());
        group.protocol = value.protocol.clone();
        group.leader = value.leader.clone();
        for m in &value.members {
            let session = Duration::from_millis(m.session_timeout_ms.max(0) as u64);
            if let Some(instance) = &m.group_instance_id {
                group
                    .static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            group.members.insert(
                m.member_id.clone(),
                Member {
                    instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout: session,
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocol_type: value.protocol_type.clone(),
                    protocols: value
                        .protocol
                        .clone()
                        .map(|p| vec![(p, m.subscription.clone())])
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                    heartbeat_deadline: now + session,
                    join_waiter: None,
                    sync_waiter: None,
                },
            );
        }
        group.phase = if group.members.is_empty() {
            group.empty_since_ms = Some(value.current_state_timestamp);
            Phase::Empty
        } else {
            Phase::Stable
        };
        let mut groups = self.lock();
        if value.generation == 0 && value.members.is_empty() {
            groups.remove(group_id);
        } else {
            groups.insert(group_id.to_string(), group);
        }
    }
}

/// From when the offsets of a group age for `offsets.retention.minutes` (Kafka's
/// `offsetExpirationCondition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetExpiry {
    /// The group has members: its offsets do not expire.
    InUse,
    /// A group that used membership and is now empty: all offsets age from this time.
    EmptySince(i64),
    /// No membership state (a simple group): each offset ages from its commit.
    CommitTime,
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The protocol type Kafka's consumers use; their metadata is a ConsumerProtocolSubscription.
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topic list of a ConsumerProtocolSubscription (version i16, then an array of int16-length strings;
/// every version starts this way). Parsed by hand with every length checked against the bytes present:
/// this is client-supplied data, and the crate's decoders pre-allocate from claimed counts.
fn subscription_topics(metadata: &[u8]) -> Vec<String> {
    let mut topics = Vec::new();
    let Some(count_bytes) = metadata.get(2..6) else {
        return topics;
    };
    let count = i32::from_be_bytes([
        count_bytes[0],
        count_bytes[1],
        count_bytes[2],
        count_bytes[3],
    ]);
    let mut pos = 6usize;
    for _ in 0..count.max(0) {
        let Some(len) = metadata.get(pos..pos + 2) else {
            break;
        };
        let len = i16::from_be_bytes([len[0], len[1]]);
        if len < 0 {
            break;
        }
        let end = pos + 2 + len as usize;
        let Some(name) = metadata.get(pos + 2..end) else {
            break;
        };
        topics.push(String::from_utf8_lossy(name).into_owned());
        pos = end;
    }
    topics
}

fn check_member(
    group: &Group,
    member_id: &str,
    instance_id: Option<&str>,
) -> Result<(), ResponseError> {
    if let Some(instance) = instance_id {
        match group.static_members.get(instance) {
            Some(known) if known != member_id => return Err(ResponseError::FencedInstanceId),
            None if !group.members.contains_key(member_id) => {
                return Err(ResponseError::UnknownMemberId)
            }
            _ => {}
        }
    }
    if !group.members.contains_key(member_id) {
        return Err(ResponseError::UnknownMemberId);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(delay_ms: u64) -> GroupSettings {
        GroupSettings {
            min_session_timeout: Duration::from_millis(100),
            max_session_timeout: Duration::from_secs(300),
            initial_rebalance_delay: Duration::from_millis(delay_ms),
            max_size: 100,
        }
    }

    fn join_req(member: &str, instance: Option<&str>) -> JoinRequest {
        JoinRequest {
            group: "g".into(),
            member_id: member.into(),
            instance_id: instance.map(String::from),
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(30),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: true,
        }
    }

    fn now_outcome<T>(reply: Reply<T>) -> T {
        match reply {
            Reply::Now(v) => v,
            Reply::Later(mut rx) => rx.try_recv().expect("answered already"),
        }
    }

    /// KIP-394 first join, then the join with the handed-out id completes a one-member rebalance.
    fn join_one(c: &ClassicGroups, now: Instant) -> (String, JoinOutcome) {
        let (reply, _) = c.join(join_req("", None), now);
        let first = now_outcome(reply);
        assert_eq!(first.error, ResponseError::MemberIdRequired.code());
        let (reply, _) = c.join(join_req(&first.member_id, None), now);
        (first.member_id.clone(), now_outcome(reply))
    }

    #[test]
    fn single_member_lifecycle() {
        let c = ClassicGroups::new(settings(0));
        let now = Instant::now();
        let (id, joined) = join_one(&c, now);
        assert_eq!((joined.error, joined.generation), (0, 1));
        assert_eq!(joined.leader, id);
        assert_eq!(joined.members.len(), 1);
        let (reply, dirty) = c.sync(
            "g",
            &id,
            None,
            1,
            None,
            None,
            vec![(id.clone(), Bytes::from_static(b"a"))],
            now,
        );
        assert_eq!(now_outcome(reply).assignment, Bytes::from_static(b"a"));
        assert_eq!(dirty.len(), 1);
        assert_eq!(c.heartbeat("g", &id, None, 1, now), 0);
        assert_eq!(
            c.heartbeat("g", &id, None, 0, now),
            ResponseError::IllegalGeneration.code()
        );
        assert_eq!(
            c.heartbeat("g", "x", None, 1, now),
            ResponseError::UnknownMemberId.code()
        );
        let (code, _) = c.leave("g", &id, None, now);
        assert_eq!(code, 0);
        assert!(!c.has_members("g"));
    }

    #[test]
    fn second_member_triggers_rebalance_and_session_expiry_removes() {
        let c = ClassicGroups::new(settings(0));
        let now = Instant::now();
        let (a, _) = join_one(&c, now);
        c.sync("g", &a, None, 1, None, None, vec![], now);
        // B joins: the group prepares a rebalance; A learns it from its heartbeat and rejoins.
        let (reply, _) = c.join(join_req("", None), now);
        let b = now_outcome(reply).member_id;
        let (b_reply, _) = c.join(join_req(&b, None), now);
        assert!(matches!(b_reply, Reply::Later(_)));
        assert_eq!(
            c.heartbeat("g", &a, None, 1, now),
            ResponseError::RebalanceInProgress.code()
        );
        let (a_reply, _) = c.join(join_req(&a, None), now);
        let a_out = now_outcome(a_reply);
        let b_out = now_outcome(b_reply);
        assert_eq!((a_out.generation, b_out.generation), (2, 2));
        assert_eq!(a_out.leader, a, "the existing leader keeps leading");
        assert_eq!(a_out.members.len(), 2);
        assert!(b_out.members.is_empty());
        // B syncs first and waits for the leader.
        let (b_sync, _) = c.sync("g", &b, None, 2, None, None, vec![], now);
        let (a_sync, _) = c.sync(
            "g",
            &a,
            None,
            2,
            None,
            None,
            vec![(b.clone(), Bytes::from_static(b"for-b"))],
            now,
        );
        assert_eq!(now_outcome(b_sync).assignment, Bytes::from_static(b"for-b"));
        assert_eq!(now_outcome(a_sync).assignment, Bytes::new());
        // B stops heartbeating: after its session timeout it is removed and A must rejoin.
        let later = now + Duration::from_secs(11);
        c.heartbeat("g", &a, None, 2, now + Duration::from_secs(9));
        c.tick(later);
        let desc = c.describe("g").expect("group");
        assert_eq!(desc.phase, Phase::PreparingRebalance);
        assert_eq!(desc.members.len(), 1);
    }

    #[test]
    fn rebalance_timeout_drops_members_that_do_not_rejoin() {
        let c = ClassicGroups::new(settings(0));
        let now = Instant::now();
        let (a, _) = join_one(&c, now);
        c.sync("g", &a, None, 1, None, None, vec![], now);
        let (reply, _) = c.join(join_req("", None), now);
        let b = now_outcome(reply).member_id;
        let (b_reply, _) = c.join(join_req(&b, None), now);
        // A never rejoins; keep its session alive so only the rebalance timeout can remove it.
        let t = now + Duration::from_secs(31);
        c.tick(t);
        let out = now_outcome(b_reply);
        assert_eq!(out.generation, 2);
        assert_eq!(out.leader, b);
        assert!(!c.describe("g").expect("g").members.iter().any(|m| m.0 == a));
    }

    #[test]
    fn static_member_rejoins_without_rebalance() {
        let c = ClassicGroups::new(settings(0));
        let now = Instant::now();
        let (reply, _) = c.join(join_req("", Some("i1")), now);
        let first = now_outcome(reply);
        assert_eq!((first.error, first.generation), (0, 1));
        c.sync(
            "g",
            &first.member_id,
            Some("i1"),
            1,
            None,
            None,
            vec![(first.member_id.clone(), Bytes::from_static(b"x"))],
            now,
        );
        // Restart: new join without member id, same instance id, same metadata.
        // Restart with new subscription bytes under the same protocol: still no rebalance.
        let mut restarted = join_req("", Some("i1"));
        restarted.protocols = vec![("range".into(), Bytes::from_static(b"new-subscription"))];
        let (reply, dirty) = c.join(restarted, now);
        let again = now_outcome(reply);
        assert_eq!(again.error, 0);
        assert_eq!(again.generation, 1, "no new generation");
        assert!(
            again.skip_assignment,
            "the rejoining leader keeps the current assignment"
        );
        assert_eq!(again.members.len(), 1, "the leader learns the members");
        assert_ne!(again.member_id, first.member_id);
        assert_eq!(dirty.len(), 1);
        let (sync, _) = c.sync(
            "g",
            &again.member_id,
            Some("i1"),
            1,
            None,
            None,
            vec![],
            now,
        );
        assert_eq!(now_outcome(sync).assignment, Bytes::from_static(b"x"));
        // The old incarnation is fenced.
        assert_eq!(
            c.heartbeat("g", &first.member_id, Some("i1"), 1, now),
            ResponseError::FencedInstanceId.code()
        );
    }

    #[test]
    fn initial_delay_waits_for_more_members() {
        let c = ClassicGroups::new(settings(1000));
        let now = Instant::now();
        let (reply, _) = c.join(join_req("", None), now);
        let a = now_outcome(reply).member_id;
        let (a_reply, _) = c.join(join_req(&a, None), now);
        let Reply::Later(mut rx) = a_reply else {
            panic!("must wait for the initial delay")
        };
        assert!(rx.try_recv().is_err());
        c.tick(now + Duration::from_millis(500));
        assert!(rx.try_recv().is_err());
        c.tick(now + Duration::from_millis(1001));
        assert_eq!(rx.try_recv().expect("joined").generation, 1);
    }

    #[test]
    fn members_joining_in_the_initial_window_cost_one_more_window() {
        let c = ClassicGroups::new(settings(1000));
        let now = Instant::now();
        let mut waiting = Vec::new();
        for _ in 0..5 {
            let (reply, _) = c.join(join_req("", None), now);
            let id = now_outcome(reply).member_id;
            let (reply, _) = c.join(join_req(&id, None), now);
            let Reply::Later(rx) = reply else {
                panic!("waits")
            };
            waiting.push(rx);
        }
        c.tick(now + Duration::from_millis(1001));
        assert!(
            waiting[0].try_recv().is_err(),
            "newcomers earn one more window"
        );
        c.tick(now + Duration::from_millis(2002));
        for rx in &mut waiting {
            assert_eq!(rx.try_recv().expect("joined").generation, 1);
        }
    }

    #[test]
    fn subscription_topics_are_parsed_within_bounds() {
        let mut md = vec![0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 2, b'b', b'c'];
        assert_eq!(
            subscription_topics(&md),
            vec!["a".to_string(), "bc".to_string()]
        );
        // A count claiming billions of topics in a few bytes yields what is there, nothing more.
        md[2..6].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(subscription_topics(&md).len(), 2);
        assert!(subscription_topics(&[0, 1]).is_empty());
        assert!(subscription_topics(&[0, 1, 0, 0, 0, 1, 0x7f, 0xff]).is_empty());
    }

    #[test]
    fn a_leader_that_never_syncs_is_removed_at_the_rebalance_timeout() {
        let c = ClassicGroups::new(settings(0));
        let now = Instant::now();
        let (a, joined) = join_one(&c, now);
        assert_eq!(joined.generation, 1);
        // The leader heartbeats but never sends SyncGroup.
        c.heartbeat("g", &a, None, 1, now + Duration::from_secs(25));
        c.tick(now + Duration::from_secs(31));
        assert!(!c.has_members("g"), "the unsynced member is removed");
    }

    #[test]
    fn static_members_survive_the_rebalance_timeout() {
        let c = ClassicGroups::new(settings(0));
        let now = Instant::now();
        let (reply, _) = c.join(join_req("", Some("i1")), now);
        let s = now_outcome(reply).member_id;
        c.sync("g", &s, Some("i1"), 1, None, None, vec![], now);
        let (reply, _) = c.join(join_req("", None), now);
        let d = now_outcome(reply).member_id;
        let (d_reply, _) = c.join(join_req(&d, None), now);
        // The static member does not rejoin before the rebalance timeout but keeps heartbeating.
        for t in [9, 18, 27] {
            c.heartbeat("g", &s, Some("i1"), 1, now + Duration::from_secs(t));
        }
        c.tick(now + Duration::from_secs(31));
        let out = now_outcome(d_reply);
        assert_eq!(out.generation, 2);
        assert!(c.describe("g").expect("g").members.iter().any(|m| m.0 == s));
    }

    #[test]
    fn protocol_checks() {
        let c = ClassicGroups::new(settings(0));
        let now = Instant::now();
        let mut bad = join_req("", None);
        bad.session_timeout = Duration::from_millis(1);
        assert_eq!(
            now_outcome(c.join(bad, now).0).error,
            ResponseError::InvalidSessionTimeout.code()
        );
        join_one(&c, now);
        let mut other = join_req("", None);
        other.protocols = vec![("roundrobin".into(), Bytes::new())];
        other.require_known_member_id = false;
        assert_eq!(
            now_outcome(c.join(other, now).0).error,
            ResponseError::InconsistentGroupProtocol.code()
        );
    }
}
