//! The consumer group protocol of KIP-848 (ConsumerGroupHeartbeat / ConsumerGroupDescribe): the broker
//! computes assignments with a server-side assignor and each member converges on its share through
//! heartbeats.
//!
//! Three epochs drive it, as in Kafka:
//! - the *group epoch* moves whenever something that affects the assignment changes (a member joins or
//!   leaves, a subscription changes, a subscribed topic gains partitions, appears or goes);
//! - the *assignment epoch* is the group epoch the current *target assignment* was computed for;
//! - each member's *member epoch* is the assignment epoch it has caught up with.
//!
//! A member moves towards its target in steps: first it is told to revoke what it must give up (state
//! `UnrevokedPartitions`, epoch unchanged); once its heartbeat shows it no longer owns those, it gets the new
//! epoch and whatever of its target is free. A partition still owned by another member (being revoked there)
//! is withheld (`UnreleasedPartitions`) until released, so no partition ever has two owners. A member that
//! does not revoke within its rebalance timeout, or stops heartbeating for the session timeout, is fenced.
//!
//! All state changes happen under one lock and never await; the caller persists the changed groups
//! (`records()`) before answering, so an acknowledged epoch survives a restart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::assignor::{self, Assignment, MemberSpec};
use super::consumer_records::{
    ConsumerGroupKey, ConsumerGroupValue, CurrentAssignment, MemberMetadata,
};
use crate::metadata::MetadataImage;

/// Member epoch of a heartbeat that joins or rejoins.
pub const JOIN_EPOCH: i32 = 0;
/// Member epoch of a heartbeat that leaves the group for good.
pub const LEAVE_EPOCH: i32 = -1;
/// Member epoch of a static member leaving temporarily: it keeps its place for the session timeout.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Broker settings of consumer-protocol groups (Kafka's `group.consumer.*` keys).
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub max_size: usize,
    /// `group.consumer.assignors`: the first is used when members name none.
    pub assignors: Vec<String>,
}

/// Where a member is in reaching its target assignment (Kafka's MemberState).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    /// Must revoke partitions before it can move on.
    UnrevokedPartitions,
    /// Caught up with the epoch, but part of its target is still owned by others.
    UnreleasedPartitions,
}

impl MemberState {
    /// The value stored in ConsumerGroupCurrentMemberAssignmentValue.State (Kafka's MemberState bytes).
    pub fn code(self) -> i8 {
        match self {
            MemberState::Stable => 0,
            MemberState::UnrevokedPartitions => 1,
            MemberState::UnreleasedPartitions => 2,
        }
    }

    pub fn from_code(code: i8) -> MemberState {
        match code {
            1 => MemberState::UnrevokedPartitions,
            2 => MemberState::UnreleasedPartitions,
            _ => MemberState::Stable,
        }
    }
}

/// A heartbeat as the coordinator needs it (fields of ConsumerGroupHeartbeatRequest, `None` = not sent).
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub group: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Vec<(Uuid, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
    /// Request version: v0 members get their id from the coordinator, v1 members bring their own.
    pub version: i16,
}

/// What a heartbeat is answered with.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatOutcome {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Sent when it changed, on a join, and on a full request; `None` = unchanged.
    pub assignment: Option<Assignment>,
}

impl HeartbeatOutcome {
    fn error(code: ResponseError, message: impl Into<String>) -> HeartbeatOutcome {
        HeartbeatOutcome {
            error: code.code(),
            message: Some(message.into()),
            ..Default::default()
        }
    }
}

/// A member of a consumer group.
#[derive(Debug, Clone)]
pub struct Member {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    /// `subscribed_topic_regex` compiled once (set together by `set_regex`): subscriptions are resolved
    /// against the metadata image at every heartbeat.
    compiled_regex: Option<regex::Regex>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
    session_deadline: Instant,
    revocation_deadline: Option<Instant>,
}

impl Member {
    /// A member with no subscription or assignment yet, its session starting now.
    fn blank(now: Instant, session: Duration) -> Member {
        Member {
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            compiled_regex: None,
            server_assignor: None,
            rebalance_timeout_ms: -1,
            member_epoch: JOIN_EPOCH,
            previous_member_epoch: JOIN_EPOCH,
            state: MemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline: now + session,
            revocation_deadline: None,
        }
    }

    /// Sets the subscription regex (`None` or empty: none). Requests are validated before they get
    /// here, and stored regexes were valid when written, so a pattern that no longer compiles
    /// matches nothing.
    fn set_regex(&mut self, regex: Option<String>) {
        let regex = regex.filter(|r| !r.is_empty());
        self.compiled_regex = regex.as_deref().and_then(|r| compile_regex(r).ok());
        self.subscribed_topic_regex = regex;
    }

    fn new(req: &HeartbeatRequest, now: Instant, session: Duration) -> Member {
        Member {
            instance_id: req.instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            ..Member::blank(now, session)
        }
    }

    fn owned_partitions(&self) -> impl Iterator<Item = (Uuid, i32)> + '_ {
        self.assigned
            .iter()
            .chain(self.pending_revocation.iter())
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
    }
}

/// A consumer-protocol group.
#[derive(Debug, Clone, Default)]
pub struct Group {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
    pub target: HashMap<String, Assignment>,
    /// Who holds each partition (as assigned or still being revoked): the holder's member epoch.
    partition_epochs: HashMap<(Uuid, i32), i32>,
    /// The subscribed topics (name → id, partition count) the current group epoch was computed with.
    subscription_metadata: Option<BTreeMap<String, (Uuid, i32)>>,
    /// Wall-clock time the group last became empty: offset retention counts from here.
    pub empty_since_ms: Option<i64>,
}

impl Group {
    /// Kafka's ConsumerGroupState names.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    fn instance_owner(&self, instance: &str) -> Option<String> {
        self.members
            .iter()
            .find(|(_, m)| m.instance_id.as_deref() == Some(instance))
            .map(|(id, _)| id.clone())
    }

    /// No partition has two holders, so whatever this member holds is freed.
    fn release(&mut self, member: &Member) {
        for key in member.owned_partitions() {
            self.partition_epochs.remove(&key);
        }
    }

    fn hold(&mut self, member: &Member) {
        for key in member.owned_partitions() {
            self.partition_epochs.insert(key, member.member_epoch);
        }
    }

    /// Removes a member, frees its partitions and moves the group epoch (its share must be reassigned).
    fn remove_member(&mut self, member_id: &str, now_ms: i64) -> bool {
        let Some(member) = self.members.remove(member_id) else {
            return false;
        };
        self.release(&member);
        self.target.remove(member_id);
        self.group_epoch += 1;
        if self.members.is_empty() {
            self.empty_since_ms = Some(now_ms);
        }
        true
    }

    /// Rebuilds who-holds-what after a restore.
    pub fn rebuild_partition_epochs(&mut self) {
        self.partition_epochs.clear();
        let members: Vec<Member> = self.members.values().cloned().collect();
        for m in &members {
            self.hold(m);
        }
    }

    /// The assignor the group uses: the one most members ask for (ties to the earlier-configured one),
    /// else the broker's default.
    fn assignor_name<'a>(&'a self, configured: &'a [String]) -> &'a str {
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for name in configured {
            let v = votes.get(name.as_str()).copied().unwrap_or(0);
            if v > 0 && best.is_none_or(|(_, b)| v > b) {
                best = Some((name.as_str(), v));
            }
        }
        best.map(|(n, _)| n)
            .or_else(|| configured.first().map(String::as_str))
            .unwrap_or(assignor::UNIFORM)
    }

    /// Topics the members subscribe to, as they exist now.
    fn resolve_subscriptions(&self, image: &MetadataImage) -> BTreeMap<String, (Uuid, i32)> {
        let mut out = BTreeMap::new();
        for m in self.members.values() {
            for (name, id, count) in member_topics(m, image) {
                out.insert(name, (id, count));
            }
        }
        out
    }

    fn compute_target(&mut self, configured: &[String], image: &MetadataImage) {
        let assignor_name = self.assignor_name(configured).to_string();
        let topics: BTreeMap<Uuid, i32> = self
            .subscription_metadata
            .as_ref()
            .map(|m| m.values().copied().collect())
            .unwrap_or_default();
        let specs: Vec<MemberSpec> = self
            .members
            .iter()
            .map(|(id, m)| MemberSpec {
                member_id: id.clone(),
                instance_id: m.instance_id.clone(),
                topics: member_topics(m, image).map(|(_, id, _)| id).collect(),
                current: self.target.get(id).cloned().unwrap_or_default(),
            })
            .collect();
        self.target = assignor::assign(&assignor_name, &specs, &topics);
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves a member towards its target (Kafka's CurrentAssignmentBuilder). `owned` is what the member's
    /// heartbeat says it holds (`None`: not sent, so assume it still holds everything it was given).
    fn reconcile(&mut self, member_id: &str, owned: Option<&[(Uuid, Vec<i32>)]>, now: Instant) {
        let Some(member) = self.members.get(member_id).cloned() else {
            return;
        };
        let target_epoch = self.assignment_epoch;
        let next = match member.state {
            MemberState::Stable if member.member_epoch == target_epoch => return,
            MemberState::UnrevokedPartitions => {
                if owns_any(owned, &member.pending_revocation) {
                    return;
                }
                self.next_assignment(member_id, &member, target_epoch, owned)
            }
            _ => self.next_assignment(member_id, &member, target_epoch, owned),
        };
        self.release(&member);
        let mut next = next;
        next.revocation_deadline = match next.state {
            MemberState::UnrevokedPartitions => member
                .revocation_deadline
                .filter(|_| member.state == MemberState::UnrevokedPartitions)
                .or(Some(
                    now + Duration::from_millis(next.rebalance_timeout_ms.max(0) as u64),
                )),
            _ => None,
        };
        self.hold(&next);
        self.members.insert(member_id.to_string(), next);
    }

    fn next_assignment(
        &self,
        member_id: &str,
        member: &Member,
        target_epoch: i32,
        owned: Option<&[(Uuid, Vec<i32>)]>,
    ) -> Member {
        let empty = Assignment::new();
        let target = self.target.get(member_id).unwrap_or(&empty);
        next_assignment(member, target, target_epoch, owned, |key| {
            self.partition_epochs.get(&key).copied()
        })
    }
}

/// Kafka's computeNextAssignment: what a member should hold next on its way to `target`.
fn next_assignment(
    member: &Member,
    target: &Assignment,
    target_epoch: i32,
    owned: Option<&[(Uuid, Vec<i32>)]>,
    holder_epoch: impl Fn((Uuid, i32)) -> Option<i32>,
) -> Member {
    let mut keep = Assignment::new();
    let mut revoke = Assignment::new();
    let mut gain = Assignment::new();
    let mut unreleased = false;
    let topics: BTreeSet<Uuid> = target
        .keys()
        .chain(member.assigned.keys())
        .copied()
        .collect();
    for topic in topics {
        let wanted = target.get(&topic).cloned().unwrap_or_default();
        let has = member.assigned.get(&topic).cloned().unwrap_or_default();
        let kept: BTreeSet<i32> = has.intersection(&wanted).copied().collect();
        let lost: BTreeSet<i32> = has.difference(&wanted).copied().collect();
        let mut free = BTreeSet::new();
        for p in wanted.difference(&has) {
            // A partition is free once nobody holds it (or only this member does, at any epoch).
            match holder_epoch((topic, *p)) {
                None => {
                    free.insert(*p);
                }
                Some(_) if member_holds(member, topic, *p) => {
                    free.insert(*p);
                }
                Some(_) => unreleased = true,
            }
        }
        if !kept.is_empty() {
            keep.insert(topic, kept);
        }
        if !lost.is_empty() {
            revoke.insert(topic, lost);
        }
        if !free.is_empty() {
            gain.insert(topic, free);
        }
    }
    let mut next = member.clone();
    if !revoke.is_empty() && owns_any(owned, &revoke) {
        // Revocation first, at the current epoch: the member gives these up before getting anything new.
        next.state = MemberState::UnrevokedPartitions;
        next.assigned = keep;
        next.pending_revocation = revoke;
        return next;
    }
    let mut assigned = keep;
    for (topic, parts) in gain {
        assigned.entry(topic).or_default().extend(parts);
    }
    next.previous_member_epoch = member.member_epoch;
    next.member_epoch = target_epoch;
    next.assigned = assigned;
    next.pending_revocation = Assignment::new();
    next.state = if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
    next
}

fn member_holds(member: &Member, topic: Uuid, partition: i32) -> bool {
    member
        .assigned
        .get(&topic)
        .is_some_and(|s| s.contains(&partition))
        || member
            .pending_revocation
            .get(&topic)
            .is_some_and(|s| s.contains(&partition))
}

/// Whether the member's reported partitions include any of `partitions`. Not reported = assume it does.
fn owns_any(owned: Option<&[(Uuid, Vec<i32>)]>, partitions: &Assignment) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    owned.iter().any(|(topic, parts)| {
        partitions
            .get(topic)
            .is_some_and(|set| parts.iter().any(|p| set.contains(p)))
    })
}

/// Whether what the member reports is within what it was given (a heartbeat that lost its response).
fn owned_within(owned: Option<&[(Uuid, Vec<i32>)]>, assigned: &Assignment) -> bool {
    let Some(owned) = owned else {
        return false;
    };
    owned.iter().all(|(topic, parts)| {
        parts.is_empty()
            || assigned
                .get(topic)
                .is_some_and(|set| parts.iter().all(|p| set.contains(p)))
    })
}

/// The existing topics a member subscribes to, by name or regex: (name, id, partition count). A regex
/// must match the whole name and, as in Kafka, is matched against every topic.
fn member_topics<'a>(
    m: &'a Member,
    image: &'a MetadataImage,
) -> impl Iterator<Item = (String, Uuid, i32)> + 'a {
    let by_name = m
        .subscribed_topic_names
        .iter()
        .filter_map(|n| image.topic(n));
    let by_regex = image.topics.values().filter(move |t| {
        m.compiled_regex
            .as_ref()
            .is_some_and(|re| re.is_match(&t.name))
    });
    by_name
        .chain(by_regex)
        .map(|t| (t.name.clone(), t.topic_id, t.partitions.len() as i32))
}

/// Kafka evaluates subscription regexes with RE2/J and requires them to match the whole topic name.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
}

/// What a ConsumerGroupDescribe shows of one member.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub member: Member,
    pub target: Assignment,
}

/// What a ConsumerGroupDescribe shows of a group.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<MemberDescription>,
}

/// All consumer-protocol groups on this coordinator.
pub struct ConsumerGroups {
    settings: ConsumerSettings,
    groups: Mutex<HashMap<String, Group>>,
}

/// Groups whose state changed and must be written to `__consumer_offsets`.
pub type Dirty = Vec<String>;

impl ConsumerGroups {
    pub fn new(settings: ConsumerSettings) -> ConsumerGroups {
        ConsumerGroups {
            settings,
            groups: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &ConsumerSettings {
        &self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        match self.groups.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Request checks that need no group state (Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid,
    /// in its order: the first failing check is reported).
    fn validate(&self, req: &HeartbeatRequest) -> Result<(), HeartbeatOutcome> {
        let invalid = |m: &str| Err(HeartbeatOutcome::error(ResponseError::InvalidRequest, m));
        let blank = |s: &str| s.trim().is_empty();
        let epoch = req.member_epoch;
        if (req.version >= 1 || epoch > 0 || epoch == LEAVE_EPOCH) && blank(&req.member_id) {
            return invalid("MemberId can't be empty.");
        }
        if blank(&req.group) {
            return invalid("GroupId can't be empty.");
        }
        if req.instance_id.as_deref().is_some_and(blank) {
            return invalid("InstanceId can't be empty.");
        }
        if req.rack_id.as_deref().is_some_and(blank) {
            return invalid("RackId can't be empty.");
        }
        if epoch == JOIN_EPOCH {
            if req.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if !req.owned.as_ref().is_some_and(Vec::is_empty) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return invalid("Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.");
            }
        } else if epoch == STATIC_LEAVE_EPOCH {
            if req.instance_id.is_none() {
                return invalid("InstanceId can't be null.");
            }
        } else if epoch < STATIC_LEAVE_EPOCH {
            return invalid("MemberEpoch is invalid.");
        }
        if let Some(assignor) = &req.server_assignor {
            if !self.settings.assignors.iter().any(|a| a == assignor) {
                return Err(HeartbeatOutcome::error(
                    ResponseError::UnsupportedAssignor,
                    format!(
                        "ServerAssignor {assignor} is not supported. Supported assignors: {}.",
                        self.settings.assignors.join(", ")
                    ),
                ));
            }
        }
        if let Some(regex) = req
            .subscribed_topic_regex
            .as_deref()
            .filter(|r| !r.is_empty())
        {
            if let Err(e) = compile_regex(regex) {
                return Err(HeartbeatOutcome::error(
                    ResponseError::InvalidRegularExpression,
                    format!(
                        "SubscribedTopicRegex `{regex}` is not a valid regular expression: {e}."
                    ),
                ));
            }
        }
        Ok(())
    }

    /// ConsumerGroupHeartbeat. `image` resolves subscriptions; `now_ms` is wall-clock time (for offset
    /// retention). Returns the answer and the groups to persist before sending it. The caller has already
    /// dealt with a classic group of the same id (see `handlers::consumer_group_heartbeat`).
    pub fn heartbeat(
        &self,
        req: &HeartbeatRequest,
        image: &MetadataImage,
        now: Instant,
        now_ms: i64,
    ) -> (HeartbeatOutcome, Dirty) {
        if let Err(outcome) = self.validate(req) {
            return (outcome, Vec::new());
        }
        let mut groups = self.lock();
        if req.member_epoch != JOIN_EPOCH && !groups.contains_key(&req.group) {
            return (
                HeartbeatOutcome::error(
                    ResponseError::GroupIdNotFound,
                    format!("Consumer group {} not found.", req.group),
                ),
                Vec::new(),
            );
        }
        let group = groups.entry(req.group.clone()).or_default();
        if req.member_epoch == LEAVE_EPOCH || req.member_epoch == STATIC_LEAVE_EPOCH {
            return leave(group, req, now_ms);
        }
        let epoch_at_start = group.group_epoch;
        let member_id = match find_member(group, req, &self.settings, now) {
            Ok(id) => id,
            Err(outcome) => {
                if group.members.is_empty() && group.group_epoch == 0 {
                    groups.remove(&req.group);
                }
                return (outcome, Vec::new());
            }
        };
        let before = group.members.get(&member_id).cloned();
        let mut dirty = before.is_none();
        let mut bump = group.group_epoch == 0;
        let member = group
            .members
            .entry(member_id.clone())
            .or_insert_with(|| Member::new(req, now, self.settings.session_timeout));
        bump |= update_subscription(member, req);
        member.session_deadline = now + self.settings.session_timeout;
        dirty |= before.as_ref().is_none_or(|b| !same_metadata(b, member));
        if before.is_none() {
            group.empty_since_ms = None;
            tracing::info!(group = %req.group, member = %member_id, "consumer group member joined");
        }
        // Subscribed topics that appeared, went, or changed partition count move the group epoch as
        // membership changes do (also after a restart, when what the stored target was computed from is
        // not known).
        let resolved = group.resolve_subscriptions(image);
        if bump || group.subscription_metadata.as_ref() != Some(&resolved) {
            if group.group_epoch == epoch_at_start {
                group.group_epoch += 1;
            }
            group.subscription_metadata = Some(resolved);
            dirty = true;
        }
        if group.group_epoch > group.assignment_epoch {
            group.compute_target(&self.settings.assignors, image);
            dirty = true;
        }
        group.reconcile(&member_id, req.owned.as_deref(), now);
        let Some(member) = group.members.get(&member_id) else {
            return (
                HeartbeatOutcome::error(ResponseError::UnknownServerError, "member vanished"),
                Vec::new(),
            );
        };
        dirty |= before.as_ref().is_none_or(|b| {
            b.assigned != member.assigned
                || b.member_epoch != member.member_epoch
                || b.previous_member_epoch != member.previous_member_epoch
                || b.state != member.state
                || b.pending_revocation != member.pending_revocation
        });
        let full_request = req.rebalance_timeout_ms != -1
            && (req.subscribed_topic_names.is_some() || req.subscribed_topic_regex.is_some())
            && req.owned.is_some();
        let send_assignment = req.member_epoch == JOIN_EPOCH
            || full_request
            || before
                .as_ref()
                .is_none_or(|b| b.assigned != member.assigned);
        let outcome = HeartbeatOutcome {
            error: 0,
            message: None,
            member_id: Some(member_id.clone()),
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: self
                .settings
                .heartbeat_interval
                .as_millis()
                .min(i32::MAX as u128) as i32,
            assignment: send_assignment.then(|| member.assigned.clone()),
        };
        let dirty = if dirty {
            vec![req.group.clone()]
        } else {
            Vec::new()
        };
        (outcome, dirty)
    }

    /// Expires sessions and revocation deadlines: such members are fenced and their partitions move.
    pub fn tick(&self, now: Instant, now_ms: i64) -> Dirty {
        let mut dirty = Vec::new();
        let mut groups = self.lock();
        for (id, group) in groups.iter_mut() {
            let expired: Vec<(String, &'static str)> = group
                .members
                .iter()
                .filter_map(|(mid, m)| {
                    if now >= m.session_deadline {
                        Some((mid.clone(), "session timeout"))
                    } else if m.revocation_deadline.is_some_and(|d| now >= d) {
                        Some((
                            mid.clone(),
                            "did not revoke partitions within the rebalance timeout",
                        ))
                    } else {
                        None
                    }
                })
                .collect();
            for (member, why) in &expired {
                tracing::info!(group = %id, member = %member, reason = why, "consumer group member fenced");
                group.remove_member(member, now_ms);
            }
            if !expired.is_empty() {
                dirty.push(id.clone());
            }
        }
        dirty
    }

    /// Whether a group of this protocol exists here (with or without members).
    pub fn contains(&self, group_id: &str) -> bool {
        self.lock().contains_key(group_id)
    }

    pub fn has_members(&self, group_id: &str) -> bool {
        self.lock()
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    pub fn group_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// A copy of the group's state (for persisting and describing).
    pub fn group(&self, group_id: &str) -> Option<Group> {
        self.lock().get(group_id).cloned()
    }

    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let groups = self.lock();
        let g = groups.get(group_id)?;
        Some(GroupDescription {
            state: g.state_name(),
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            assignor: g.assignor_name(&self.settings.assignors).to_string(),
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    member: m.clone(),
                    target: g.target.get(id).cloned().unwrap_or_default(),
                })
                .collect(),
        })
    }

    /// Topics the group's members subscribe to (OffsetDelete refuses offsets of those). `None` if the
    /// group is not here or has no members.
    pub fn subscribed_topics(
        &self,
        group_id: &str,
        image: &MetadataImage,
    ) -> Option<BTreeSet<String>> {
        let groups = self.lock();
        let g = groups.get(group_id).filter(|g| !g.members.is_empty())?;
        Some(g.resolve_subscriptions(image).into_keys().collect())
    }

    /// Validates an OffsetCommit (or, with `commit == false`, an OffsetFetch) from a member (Kafka's
    /// ConsumerGroup.validateOffsetCommit / validateOffsetFetch). `None` = not a consumer group here.
    pub fn validate_offsets_request(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        api_version: i16,
        commit: bool,
    ) -> Option<Result<(), (i16, String)>> {
        let groups = self.lock();
        let group = groups.get(group_id)?;
        if commit && member_epoch < 0 && group.members.is_empty() {
            return Some(Ok(()));
        }
        if !commit && member_epoch < 0 && member_id.is_empty() {
            return Some(Ok(()));
        }
        let Some(member) = group.members.get(member_id) else {
            return Some(Err((
                ResponseError::UnknownMemberId.code(),
                format!("Member {member_id} is not a member of group {group_id}."),
            )));
        };
        if commit && api_version < 9 {
            return Some(Err((
                ResponseError::UnsupportedVersion.code(),
                "OffsetCommit version 9 or above must be used by members using the consumer group protocol".into(),
            )));
        }
        // An exact match is required; an offsets request never fences (that is the heartbeat's job).
        if member_epoch != member.member_epoch {
            return Some(Err((
                ResponseError::StaleMemberEpoch.code(),
                format!(
                    "The member epoch ({member_epoch}) does not match the expected epoch ({}).",
                    member.member_epoch
                ),
            )));
        }
        Some(Ok(()))
    }

    /// How the group's committed offsets age (`None` = not a consumer group here).
    pub fn offset_expiry(&self, group_id: &str) -> Option<super::classic::OffsetExpiry> {
        use super::classic::OffsetExpiry;
        let groups = self.lock();
        let g = groups.get(group_id)?;
        Some(if !g.members.is_empty() {
            OffsetExpiry::InUse
        } else {
            g.empty_since_ms
                .map_or(OffsetExpiry::CommitTime, OffsetExpiry::EmptySince)
        })
    }

    /// Forgets a group (DeleteGroups of an empty group, or its conversion to a classic group).
    pub fn remove_group(&self, group_id: &str) -> Option<Group> {
        self.lock().remove(group_id)
    }

    /// Installs a group rebuilt from `__consumer_offsets` (start-up replay).
    pub fn restore(&self, group_id: &str, mut group: Group) {
        group.rebuild_partition_epochs();
        self.lock().insert(group_id.to_string(), group);
    }
}

/// The member a (non-leave) heartbeat is from, checked as Kafka does; `Ok` with an id not yet in the group
/// means a new member. A static member coming back (epoch 0, its instance id held by a member that left
/// with epoch -2) takes over its predecessor's place and assignment under its new member id.
fn find_member(
    group: &mut Group,
    req: &HeartbeatRequest,
    settings: &ConsumerSettings,
    now: Instant,
) -> Result<String, HeartbeatOutcome> {
    let member_id = if req.member_id.is_empty() {
        // v0: the coordinator names the member.
        Uuid::new_v4().to_string()
    } else {
        req.member_id.clone()
    };
    let joining = req.member_epoch == JOIN_EPOCH;
    let is_member = group.members.contains_key(&member_id);
    if !is_member && group.members.len() >= settings.max_size && joining {
        let replaces_static = req
            .instance_id
            .as_deref()
            .is_some_and(|i| group.instance_owner(i).is_some());
        if !replaces_static {
            return Err(HeartbeatOutcome::error(
                ResponseError::GroupMaxSizeReached,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    settings.max_size
                ),
            ));
        }
    }
    let existing = match &req.instance_id {
        Some(instance) => {
            let owner = group.instance_owner(instance);
            match owner {
                None if joining => None,
                None => {
                    return Err(HeartbeatOutcome::error(
                        ResponseError::UnknownMemberId,
                        format!("Instance id {instance} is unknown."),
                    ))
                }
                Some(owner) if joining && owner != member_id => {
                    let held = group.members.get(&owner).map(|m| m.member_epoch);
                    if held != Some(STATIC_LEAVE_EPOCH) {
                        return Err(HeartbeatOutcome::error(
                            ResponseError::UnreleasedInstanceId,
                            format!("Static member {member_id} with instance id {instance} cannot join the group because the instance id is owned by {owner} member."),
                        ));
                    }
                    replace_static_member(group, &owner, &member_id, req, now, settings);
                    return Ok(member_id);
                }
                Some(owner) if owner != member_id => {
                    return Err(HeartbeatOutcome::error(
                        ResponseError::FencedInstanceId,
                        format!("Static member {member_id} with instance id {instance} was fenced by member {owner}."),
                    ))
                }
                Some(owner) => group.members.get(&owner),
            }
        }
        None => match group.members.get(&member_id) {
            None if joining => None,
            None => {
                return Err(HeartbeatOutcome::error(
                    ResponseError::UnknownMemberId,
                    format!("Member {member_id} is not a member of group {}.", req.group),
                ))
            }
            found => found,
        },
    };
    if let Some(member) = existing {
        // Epoch 0 from a known member is a rejoin (KAFKA-19233): it stays and is reconciled. Otherwise the
        // epoch must be the current one, or the previous one if the response that moved it was lost.
        let lost_response = req.member_epoch == member.previous_member_epoch
            && owned_within(req.owned.as_deref(), &member.assigned);
        if !joining
            && (req.member_epoch > member.member_epoch
                || (req.member_epoch < member.member_epoch && !lost_response))
        {
            let relation = if req.member_epoch > member.member_epoch {
                "greater"
            } else {
                "smaller"
            };
            return Err(HeartbeatOutcome::error(
                ResponseError::FencedMemberEpoch,
                format!(
                    "The consumer group member has a {relation} member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                    req.member_epoch, member.member_epoch
                ),
            ));
        }
    }
    Ok(member_id)
}

fn replace_static_member(
    group: &mut Group,
    previous_id: &str,
    member_id: &str,
    req: &HeartbeatRequest,
    now: Instant,
    settings: &ConsumerSettings,
) {
    let Some(previous) = group.members.remove(previous_id) else {
        return;
    };
    group.release(&previous);
    let mut member = previous;
    member.member_epoch = JOIN_EPOCH;
    member.previous_member_epoch = JOIN_EPOCH;
    member.pending_revocation = Assignment::new();
    member.state = MemberState::Stable;
    member.revocation_deadline = None;
    member.session_deadline = now + settings.session_timeout;
    member.client_id = req.client_id.clone();
    member.client_host = req.client_host.clone();
    if let Some(target) = group.target.remove(previous_id) {
        group.target.insert(member_id.to_string(), target);
    }
    group.hold(&member);
    group.members.insert(member_id.to_string(), member);
    tracing::info!(group = %req.group, member = %member_id, previous = %previous_id, "static consumer group member replaced its previous incarnation");
}

/// Whether two states of a member have the same stored metadata (ConsumerGroupMemberMetadataValue).
fn same_metadata(a: &Member, b: &Member) -> bool {
    a.instance_id == b.instance_id
        && a.rack_id == b.rack_id
        && a.client_id == b.client_id
        && a.client_host == b.client_host
        && a.subscribed_topic_names == b.subscribed_topic_names
        && a.subscribed_topic_regex == b.subscribed_topic_regex
        && a.server_assignor == b.server_assignor
        && a.rebalance_timeout_ms == b.rebalance_timeout_ms
}

/// Applies the fields a heartbeat carries (null = unchanged); true if the subscription changed, which
/// moves the group epoch.
fn update_subscription(member: &mut Member, req: &HeartbeatRequest) -> bool {
    let mut changed = false;
    if let Some(names) = &req.subscribed_topic_names {
        let mut names = names.clone();
        names.sort();
        names.dedup();
        if names != member.subscribed_topic_names {
            member.subscribed_topic_names = names;
            changed = true;
        }
    }
    if let Some(regex) = &req.subscribed_topic_regex {
        let regex = Some(regex.clone()).filter(|r| !r.is_empty());
        if regex != member.subscribed_topic_regex {
            member.set_regex(regex);
            changed = true;
        }
    }
    if req.server_assignor.is_some() {
        member.server_assignor = req.server_assignor.clone();
    }
    if req.rack_id.is_some() {
        member.rack_id = req.rack_id.clone();
    }
    if req.instance_id.is_some() {
        member.instance_id = req.instance_id.clone();
    }
    if req.rebalance_timeout_ms != -1 {
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
    }
    member.client_id = req.client_id.clone();
    member.client_host = req.client_host.clone();
    changed
}

/// Epoch -1 (leave for good) or -2 (static member leaving for a while).
fn leave(group: &mut Group, req: &HeartbeatRequest, now_ms: i64) -> (HeartbeatOutcome, Dirty) {
    // A static member is known by its instance id.
    let member_id = match &req.instance_id {
        Some(instance) => match group.instance_owner(instance) {
            Some(owner) if owner != req.member_id => {
                return (
                    HeartbeatOutcome::error(
                        ResponseError::FencedInstanceId,
                        format!(
                            "Static member {} with instance id {instance} was fenced by member {owner}.",
                            req.member_id
                        ),
                    ),
                    Vec::new(),
                )
            }
            Some(owner) => owner,
            None => {
                return (
                    HeartbeatOutcome::error(
                        ResponseError::UnknownMemberId,
                        format!("Instance id {instance} is unknown."),
                    ),
                    Vec::new(),
                )
            }
        },
        None => req.member_id.clone(),
    };
    if !group.members.contains_key(&member_id) {
        return (
            HeartbeatOutcome::error(
                ResponseError::UnknownMemberId,
                format!("Member {member_id} is not a member of group {}.", req.group),
            ),
            Vec::new(),
        );
    }
    if req.member_epoch == STATIC_LEAVE_EPOCH {
        // It keeps its partitions until its session runs out, so a restart does not rebalance; the
        // session timer is not extended by leaving.
        if let Some(m) = group.members.get(&member_id).cloned() {
            group.release(&m);
            let mut m = m;
            m.member_epoch = STATIC_LEAVE_EPOCH;
            m.pending_revocation = Assignment::new();
            m.state = MemberState::Stable;
            m.revocation_deadline = None;
            group.hold(&m);
            group.members.insert(member_id.clone(), m);
        }
        tracing::info!(group = %req.group, member = %member_id, "static consumer group member left temporarily");
    } else {
        group.remove_member(&member_id, now_ms);
        tracing::info!(group = %req.group, member = %member_id, "consumer group member left");
    }
    (
        HeartbeatOutcome {
            member_id: Some(req.member_id.clone()),
            member_epoch: req.member_epoch,
            ..Default::default()
        },
        vec![req.group.clone()],
    )
}

/// What `__consumer_offsets` must hold for a group in this state (a group that is gone holds nothing).
pub fn group_records(group_id: &str, g: &Group) -> BTreeMap<ConsumerGroupKey, ConsumerGroupValue> {
    let group = || group_id.to_string();
    let mut out = BTreeMap::new();
    out.insert(
        ConsumerGroupKey::Metadata { group: group() },
        ConsumerGroupValue::Metadata {
            epoch: g.group_epoch,
        },
    );
    out.insert(
        ConsumerGroupKey::TargetAssignmentMetadata { group: group() },
        ConsumerGroupValue::TargetAssignmentMetadata {
            assignment_epoch: g.assignment_epoch,
        },
    );
    for (id, m) in &g.members {
        let member = || id.clone();
        out.insert(
            ConsumerGroupKey::MemberMetadata {
                group: group(),
                member: member(),
            },
            ConsumerGroupValue::MemberMetadata(MemberMetadata {
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: m.subscribed_topic_names.clone(),
                subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                server_assignor: m.server_assignor.clone(),
            }),
        );
        if let Some(target) = g.target.get(id) {
            out.insert(
                ConsumerGroupKey::TargetAssignmentMember {
                    group: group(),
                    member: member(),
                },
                ConsumerGroupValue::TargetAssignmentMember(target.clone()),
            );
        }
        out.insert(
            ConsumerGroupKey::CurrentMemberAssignment {
                group: group(),
                member: member(),
            },
            ConsumerGroupValue::CurrentMemberAssignment(CurrentAssignment {
                member_epoch: m.member_epoch,
                previous_member_epoch: m.previous_member_epoch,
                state: m.state.code(),
                assigned: m.assigned.clone(),
                pending_revocation: m.pending_revocation.clone(),
            }),
        );
    }
    out
}

/// Rebuilds a group from its records (start-up replay); `None` if they do not describe a live group.
/// Members get a fresh session, so consumers that keep heartbeating keep their partitions and epochs.
pub fn group_from_records(
    records: &BTreeMap<ConsumerGroupKey, ConsumerGroupValue>,
    now: Instant,
    now_ms: i64,
    session: Duration,
) -> Option<Group> {
    let mut group = Group::default();
    let mut found = false;
    for (key, value) in records {
        match (key, value) {
            (ConsumerGroupKey::Metadata { .. }, ConsumerGroupValue::Metadata { epoch }) => {
                group.group_epoch = *epoch;
                found = true;
            }
            (
                ConsumerGroupKey::TargetAssignmentMetadata { .. },
                ConsumerGroupValue::TargetAssignmentMetadata { assignment_epoch },
            ) => group.assignment_epoch = *assignment_epoch,
            (
                ConsumerGroupKey::MemberMetadata { member, .. },
                ConsumerGroupValue::MemberMetadata(m),
            ) => {
                let entry = group
                    .members
                    .entry(member.clone())
                    .or_insert_with(|| Member::blank(now, session));
                entry.instance_id = m.instance_id.clone();
                entry.rack_id = m.rack_id.clone();
                entry.client_id = m.client_id.clone();
                entry.client_host = m.client_host.clone();
                entry.subscribed_topic_names = m.subscribed_topic_names.clone();
                entry.set_regex(m.subscribed_topic_regex.clone());
                entry.rebalance_timeout_ms = m.rebalance_timeout_ms;
                entry.server_assignor = m.server_assignor.clone();
            }
            _ => {}
        }
    }
    if !found {
        return None;
    }
    // Assignments only for members whose metadata exists (a member's records are written together).
    for (key, value) in records {
        match (key, value) {
            (
                ConsumerGroupKey::TargetAssignmentMember { member, .. },
                ConsumerGroupValue::TargetAssignmentMember(a),
            ) if group.members.contains_key(member) => {
                group.target.insert(member.clone(), a.clone());
            }
            (
                ConsumerGroupKey::CurrentMemberAssignment { member, .. },
                ConsumerGroupValue::CurrentMemberAssignment(c),
            ) => {
                if let Some(m) = group.members.get_mut(member) {
                    m.member_epoch = c.member_epoch;
                    m.previous_member_epoch = c.previous_member_epoch;
                    m.state = MemberState::from_code(c.state);
                    m.assigned = c.assigned.clone();
                    m.pending_revocation = c.pending_revocation.clone();
                    if m.state == MemberState::UnrevokedPartitions {
                        m.revocation_deadline =
                            Some(now + Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64));
                    }
                }
            }
            _ => {}
        }
    }
    if group.members.is_empty() {
        group.empty_since_ms = Some(now_ms);
    }
    Some(group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{PartitionImage, TopicImage};

    const TOPIC: Uuid = Uuid::from_u128(0x10);

    fn image(partitions: i32) -> MetadataImage {
        let mut image = MetadataImage::default();
        let topic = TopicImage {
            name: "orders".into(),
            topic_id: TOPIC,
            partitions: (0..partitions)
                .map(|p| PartitionImage {
                    partition: p,
                    replicas: vec![0],
                    isr: vec![0],
                    leader: 0,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    elr: Vec::new(),
                    adding_replicas: Vec::new(),
                    removing_replicas: Vec::new(),
                })
                .collect(),
            configs: Default::default(),
        };
        image.topic_names_by_id.insert(TOPIC, "orders".into());
        image.topics.insert("orders".into(), topic);
        image
    }

    fn groups() -> ConsumerGroups {
        ConsumerGroups::new(ConsumerSettings {
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(5),
            max_size: 3,
            assignors: vec!["uniform".into(), "range".into()],
        })
    }

    fn join(member: &str) -> HeartbeatRequest {
        HeartbeatRequest {
            group: "g".into(),
            member_id: member.into(),
            member_epoch: 0,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["orders".into()]),
            owned: Some(Vec::new()),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            version: 1,
            ..Default::default()
        }
    }

    fn beat(member: &str, epoch: i32, owned: Option<&BTreeSet<i32>>) -> HeartbeatRequest {
        HeartbeatRequest {
            group: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned: owned.map(|o| vec![(TOPIC, o.iter().copied().collect())]),
            version: 1,
            ..Default::default()
        }
    }

    fn parts(outcome: &HeartbeatOutcome) -> Option<BTreeSet<i32>> {
        outcome
            .assignment
            .as_ref()
            .map(|a| a.get(&TOPIC).cloned().unwrap_or_default())
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_revokes_it() {
        let g = groups();
        let img = image(4);
        let now = Instant::now();
        let (a, dirty) = g.heartbeat(&join("a"), &img, now, 0);
        assert_eq!(a.error, 0);
        assert_eq!(a.member_epoch, 1);
        assert_eq!(parts(&a), Some(BTreeSet::from([0, 1, 2, 3])));
        assert_eq!(dirty, vec!["g".to_string()]);

        // b joins: the target splits 2/2, but a still owns everything, so b gets nothing yet.
        let (b, _) = g.heartbeat(&join("b"), &img, now, 0);
        assert_eq!(b.member_epoch, 2);
        assert_eq!(parts(&b), Some(BTreeSet::new()));
        assert_eq!(g.describe("g").unwrap().state, "Reconciling");

        // a's next heartbeat tells it to revoke two partitions, at its old epoch.
        let all = BTreeSet::from([0, 1, 2, 3]);
        let (a2, _) = g.heartbeat(&beat("a", 1, Some(&all)), &img, now, 0);
        assert_eq!(a2.member_epoch, 1);
        let kept = parts(&a2).unwrap();
        assert_eq!(kept.len(), 2);
        // Not yet revoked: still at epoch 1, and b still waits.
        let (a3, _) = g.heartbeat(&beat("a", 1, Some(&all)), &img, now, 0);
        assert_eq!(a3.member_epoch, 1);
        let (b2, _) = g.heartbeat(&beat("b", 2, Some(&BTreeSet::new())), &img, now, 0);
        assert_eq!(b2.assignment, None, "unchanged assignment is not resent");
        // a acknowledges the revocation: it moves to epoch 2; b then gets the freed partitions.
        let (a4, _) = g.heartbeat(&beat("a", 1, Some(&kept)), &img, now, 0);
        assert_eq!(a4.member_epoch, 2);
        let (b3, _) = g.heartbeat(&beat("b", 2, Some(&BTreeSet::new())), &img, now, 0);
        let got = parts(&b3).unwrap();
        assert_eq!(got.len(), 2);
        assert!(got.is_disjoint(&kept));
        assert_eq!(g.describe("g").unwrap().state, "Stable");
    }

    #[test]
    fn epochs_are_checked() {
        let g = groups();
        let img = image(2);
        let now = Instant::now();
        g.heartbeat(&join("a"), &img, now, 0);
        let (r, _) = g.heartbeat(&beat("a", 5, None), &img, now, 0);
        assert_eq!(r.error, ResponseError::FencedMemberEpoch.code());
        let (r, _) = g.heartbeat(&beat("nobody", 1, None), &img, now, 0);
        assert_eq!(r.error, ResponseError::UnknownMemberId.code());
        // The previous epoch is accepted when the member's partitions are within its assignment
        // (the response that moved it was lost).
        g.heartbeat(&join("b"), &img, now, 0);
        let both = BTreeSet::from([0, 1]);
        let (a2, _) = g.heartbeat(&beat("a", 1, Some(&both)), &img, now, 0);
        let kept = parts(&a2).unwrap();
        let (a3, _) = g.heartbeat(&beat("a", 1, Some(&kept)), &img, now, 0);
        assert_eq!(a3.member_epoch, 2);
        let (lost, _) = g.heartbeat(&beat("a", 1, Some(&kept)), &img, now, 0);
        assert_eq!(lost.error, 0);
        let (r, _) = g.heartbeat(&beat("a", 1, Some(&both)), &img, now, 0);
        assert_eq!(r.error, ResponseError::FencedMemberEpoch.code());
    }

    #[test]
    fn requests_are_validated_as_kafka_does() {
        let g = groups();
        let img = image(1);
        let now = Instant::now();
        let mut r = join("a");
        r.rebalance_timeout_ms = -1;
        assert_eq!(
            g.heartbeat(&r, &img, now, 0).0.message.as_deref(),
            Some("RebalanceTimeoutMs must be provided in first request.")
        );
        let mut r = join("a");
        r.owned = None;
        assert_eq!(
            g.heartbeat(&r, &img, now, 0).0.error,
            ResponseError::InvalidRequest.code()
        );
        let mut r = join("");
        r.version = 1;
        assert_eq!(
            g.heartbeat(&r, &img, now, 0).0.message.as_deref(),
            Some("MemberId can't be empty.")
        );
        let mut r = join("a");
        r.server_assignor = Some("sticky".into());
        assert_eq!(
            g.heartbeat(&r, &img, now, 0).0.error,
            ResponseError::UnsupportedAssignor.code()
        );
        let mut r = join("a");
        r.subscribed_topic_regex = Some("(".into());
        assert_eq!(
            g.heartbeat(&r, &img, now, 0).0.error,
            ResponseError::InvalidRegularExpression.code()
        );
        // v0 joins without an id get one from the coordinator.
        let mut r = join("");
        r.version = 0;
        let (ok, _) = g.heartbeat(&r, &img, now, 0);
        assert_eq!(ok.error, 0);
        assert!(!ok.member_id.unwrap().is_empty());
        let (r, _) = g.heartbeat(&beat("x", 1, None).with_group("missing"), &img, now, 0);
        assert_eq!(r.error, ResponseError::GroupIdNotFound.code());
        // group.consumer.max.size = 3.
        g.heartbeat(&join("b"), &img, now, 0);
        g.heartbeat(&join("c"), &img, now, 0);
        assert_eq!(
            g.heartbeat(&join("d"), &img, now, 0).0.error,
            ResponseError::GroupMaxSizeReached.code()
        );
    }

    impl HeartbeatRequest {
        fn with_group(mut self, group: &str) -> Self {
            self.group = group.into();
            self
        }
    }

    #[test]
    fn expired_sessions_and_unrevoked_partitions_fence_members() {
        let g = groups();
        let img = image(2);
        let now = Instant::now();
        g.heartbeat(&join("a"), &img, now, 0);
        g.heartbeat(&join("b"), &img, now, 0);
        // a is asked to revoke and never does: fenced after its rebalance timeout (30 s).
        let both = BTreeSet::from([0, 1]);
        g.heartbeat(&beat("a", 1, Some(&both)), &img, now, 0);
        // b stays alive.
        g.heartbeat(
            &beat("b", 2, Some(&BTreeSet::new())),
            &img,
            now + Duration::from_secs(29),
            0,
        );
        assert!(g.tick(now + Duration::from_secs(29), 0).is_empty());
        assert_eq!(
            g.tick(now + Duration::from_secs(31), 0),
            vec!["g".to_string()]
        );
        let (r, _) = g.heartbeat(&beat("a", 1, None), &img, now + Duration::from_secs(32), 0);
        assert_eq!(r.error, ResponseError::UnknownMemberId.code());
        let (b, _) = g.heartbeat(
            &beat("b", 2, Some(&BTreeSet::new())),
            &img,
            now + Duration::from_secs(32),
            0,
        );
        assert_eq!(parts(&b), Some(both));
        // b's session runs out 45 s after its last heartbeat: the group is empty.
        assert_eq!(
            g.tick(now + Duration::from_secs(78), 1000),
            vec!["g".to_string()]
        );
        assert_eq!(g.describe("g").unwrap().state, "Empty");
        assert!(matches!(
            g.offset_expiry("g"),
            Some(super::super::classic::OffsetExpiry::EmptySince(1000))
        ));
    }

    #[test]
    fn a_static_member_restarts_without_a_rebalance() {
        let g = groups();
        let img = image(4);
        let now = Instant::now();
        let mut first = join("a-1");
        first.instance_id = Some("app-0".into());
        let (a, _) = g.heartbeat(&first, &img, now, 0);
        let mine = parts(&a).unwrap();
        let epoch_before = g.describe("g").unwrap().group_epoch;
        // While it is active, its instance id cannot be taken.
        let mut clash = join("a-2");
        clash.instance_id = Some("app-0".into());
        assert_eq!(
            g.heartbeat(&clash, &img, now, 0).0.error,
            ResponseError::UnreleasedInstanceId.code()
        );
        // It leaves temporarily (-2) and comes back under a new member id: same partitions, same epoch.
        let mut leave = beat("a-1", STATIC_LEAVE_EPOCH, None);
        leave.instance_id = Some("app-0".into());
        let (left, _) = g.heartbeat(&leave, &img, now, 0);
        assert_eq!((left.error, left.member_epoch), (0, STATIC_LEAVE_EPOCH));
        let (back, _) = g.heartbeat(&clash, &img, now, 0);
        assert_eq!(back.error, 0);
        assert_eq!(parts(&back), Some(mine));
        assert_eq!(g.describe("g").unwrap().group_epoch, epoch_before);
        // The old incarnation is fenced.
        let mut old = beat("a-1", 1, None);
        old.instance_id = Some("app-0".into());
        assert_eq!(
            g.heartbeat(&old, &img, now, 0).0.error,
            ResponseError::FencedInstanceId.code()
        );
    }

    #[test]
    fn new_partitions_of_a_subscribed_topic_are_assigned() {
        let g = groups();
        let now = Instant::now();
        let (a, _) = g.heartbeat(&join("a"), &image(2), now, 0);
        assert_eq!(parts(&a).unwrap().len(), 2);
        let (a2, _) = g.heartbeat(&beat("a", 1, None), &image(3), now, 0);
        assert_eq!(a2.member_epoch, 2);
        assert_eq!(parts(&a2), Some(BTreeSet::from([0, 1, 2])));
    }

    #[test]
    fn stored_records_rebuild_the_group() {
        let g = groups();
        let img = image(4);
        let now = Instant::now();
        g.heartbeat(&join("a"), &img, now, 0);
        g.heartbeat(&join("b"), &img, now, 0);
        let all = BTreeSet::from([0, 1, 2, 3]);
        g.heartbeat(&beat("a", 1, Some(&all)), &img, now, 0);
        let state = g.group("g").unwrap();
        let records = group_records("g", &state);
        let rebuilt = group_from_records(&records, now, 0, Duration::from_secs(45)).unwrap();
        assert_eq!(group_records("g", &rebuilt), records);
        let restored = groups();
        restored.restore("g", rebuilt);
        // a, mid-revocation, can finish it after the restart.
        let kept = state.members["a"].assigned[&TOPIC].clone();
        let (a, _) = restored.heartbeat(&beat("a", 1, Some(&kept)), &img, now, 0);
        assert_eq!(a.error, 0);
        assert!(a.member_epoch >= 2);
    }

    #[test]
    fn offset_commits_check_the_member_epoch() {
        let g = groups();
        let img = image(1);
        let now = Instant::now();
        g.heartbeat(&join("a"), &img, now, 0);
        assert_eq!(
            g.validate_offsets_request("g", "a", 1, 9, true),
            Some(Ok(()))
        );
        let stale = g.validate_offsets_request("g", "a", 0, 9, true);
        assert_eq!(
            stale.map(|r| r.map_err(|e| e.0)),
            Some(Err(ResponseError::StaleMemberEpoch.code()))
        );
        let old_version = g.validate_offsets_request("g", "a", 1, 8, true);
        assert_eq!(
            old_version.map(|r| r.map_err(|e| e.0)),
            Some(Err(ResponseError::UnsupportedVersion.code()))
        );
        let unknown = g.validate_offsets_request("g", "z", 1, 9, true);
        assert_eq!(
            unknown.map(|r| r.map_err(|e| e.0)),
            Some(Err(ResponseError::UnknownMemberId.code()))
        );
        // Admin commits (epoch -1) only while the group is empty; admin fetches always.
        let admin = g.validate_offsets_request("g", "", -1, 9, true);
        assert_eq!(
            admin.map(|r| r.map_err(|e| e.0)),
            Some(Err(ResponseError::UnknownMemberId.code()))
        );
        assert_eq!(
            g.validate_offsets_request("g", "", -1, 9, false),
            Some(Ok(()))
        );
        assert_eq!(g.validate_offsets_request("other", "", -1, 9, true), None);
    }
}
