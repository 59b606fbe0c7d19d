//! A consumer of one topic: either assigned partitions (no group, nothing committed) or a member of a
//! group through the KIP-848 consumer protocol (ConsumerGroupHeartbeat: the coordinator assigns the
//! partitions), committing its positions with its member epoch. Fetches go to every partition leader
//! concurrently.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ConsumerGroupHeartbeatRequest, FetchRequest, GroupId, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinSet;

use super::cluster::TopicInfo;
use super::connection::BrokerConnection;
use super::error::check;
use super::groups::{self, Committer};
use super::records::{decode_records, ConsumedRecord};
use super::{ClientError, ClientProperties, KafkaClient};

/// How long to wait before asking again after a coordinator error.
const COORDINATOR_RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

/// Where a partition without a committed offset starts (`auto.offset.reset`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartOffset {
    Earliest,
    Latest,
    At(i64),
}

/// The Java consumer's settings this consumer honours (same names and defaults).
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    pub fetch_max_wait: Duration,
    pub fetch_min_bytes: i32,
    pub fetch_max_bytes: i32,
    pub max_partition_fetch_bytes: i32,
    pub isolation_level: i8,
    pub auto_offset_reset: StartOffset,
    pub rebalance_timeout: Duration,
}

impl ConsumerConfig {
    pub fn from_properties(p: &ClientProperties) -> Result<ConsumerConfig, ClientError> {
        let int = |key: &str, default: i64| -> Result<i32, ClientError> {
            let v = p.get_i64(key, default)?;
            i32::try_from(v)
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| ClientError::Config(format!("{key}: {v} is out of range")))
        };
        let isolation_level = match p.get("isolation.level").unwrap_or("read_uncommitted") {
            "read_uncommitted" => 0,
            "read_committed" => 1,
            other => {
                return Err(ClientError::Config(format!(
                    "isolation.level: {other:?} is not read_uncommitted or read_committed"
                )))
            }
        };
        let auto_offset_reset = match p.get("auto.offset.reset").unwrap_or("latest") {
            "latest" => StartOffset::Latest,
            "earliest" => StartOffset::Earliest,
            other => {
                return Err(ClientError::Config(format!(
                    "auto.offset.reset: {other:?} is not earliest or latest"
                )))
            }
        };
        Ok(ConsumerConfig {
            fetch_max_wait: p.get_ms("fetch.max.wait.ms", Duration::from_millis(500))?,
            fetch_min_bytes: int("fetch.min.bytes", 1)?,
            fetch_max_bytes: int("fetch.max.bytes", 52_428_800)?,
            max_partition_fetch_bytes: int("max.partition.fetch.bytes", 1_048_576)?,
            isolation_level,
            auto_offset_reset,
            rebalance_timeout: p.get_ms("max.poll.interval.ms", Duration::from_secs(300))?,
        })
    }
}

/// The group side of a subscribed consumer.
struct Membership {
    group: String,
    coordinator: i32,
    member_id: String,
    epoch: i32,
    heartbeat_interval: Duration,
    next_heartbeat: Instant,
}

pub struct Consumer {
    client: KafkaClient,
    topic: TopicInfo,
    config: ConsumerConfig,
    /// Next offset to fetch per assigned partition.
    positions: BTreeMap<i32, i64>,
    /// Fetch connections per leader, separate from the client's so fetches to leaders run together.
    fetchers: BTreeMap<i32, BrokerConnection>,
    membership: Option<Membership>,
    buffered: VecDeque<(i32, ConsumedRecord)>,
    metadata_stale: bool,
}

impl Consumer {
    /// Consumes `partitions` (all when `None`) of `topic` from `start`, outside any group.
    pub async fn assign(
        mut client: KafkaClient,
        topic: &str,
        partitions: Option<Vec<i32>>,
        start: StartOffset,
        config: ConsumerConfig,
    ) -> Result<Consumer, ClientError> {
        let info = client.topic(topic).await?;
        let partitions = match partitions {
            Some(ps) => {
                for p in &ps {
                    if !(0..info.partitions.len() as i32).contains(p) {
                        return Err(ClientError::Failed(format!(
                            "partition {p} of topic '{topic}' does not exist (it has {})",
                            info.partitions.len()
                        )));
                    }
                }
                ps
            }
            None => (0..info.partitions.len() as i32).collect(),
        };
        let mut consumer = Consumer::new(client, info, config);
        let positions = consumer.resolve(&partitions, start).await?;
        consumer.positions = positions;
        Ok(consumer)
    }

    /// Joins `group` subscribed to `topic`; partitions without a committed offset start at
    /// `auto.offset.reset`.
    pub async fn subscribe(
        mut client: KafkaClient,
        topic: &str,
        group: &str,
        config: ConsumerConfig,
    ) -> Result<Consumer, ClientError> {
        let info = client.topic(topic).await?;
        let coordinator = client.find_coordinator(0, group).await?;
        if !client
            .node(coordinator)?
            .supports::<ConsumerGroupHeartbeatRequest>()
            .await?
        {
            return Err(ClientError::Failed(format!(
                "the group coordinator (broker {coordinator}) does not support the consumer group protocol (KIP-848)"
            )));
        }
        let mut consumer = Consumer::new(client, info, config);
        consumer.membership = Some(Membership {
            group: group.to_string(),
            coordinator,
            member_id: uuid::Uuid::new_v4().to_string(),
            epoch: 0,
            heartbeat_interval: Duration::from_secs(5),
            next_heartbeat: Instant::now(),
        });
        // Joined once the coordinator gave an epoch; it may first be loading the group or have moved.
        let deadline = Instant::now() + consumer.client.settings().request_timeout;
        loop {
            consumer.heartbeat().await?;
            if consumer.membership.as_ref().is_some_and(|m| m.epoch > 0) {
                return Ok(consumer);
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Failed(format!(
                    "could not join group '{group}' within {:?}",
                    consumer.client.settings().request_timeout
                )));
            }
        }
    }

    fn new(client: KafkaClient, topic: TopicInfo, config: ConsumerConfig) -> Consumer {
        Consumer {
            client,
            topic,
            config,
            positions: BTreeMap::new(),
            fetchers: BTreeMap::new(),
            membership: None,
            buffered: VecDeque::new(),
            metadata_stale: false,
        }
    }

    /// The partitions currently assigned.
    pub fn assignment(&self) -> Vec<i32> {
        self.positions.keys().copied().collect()
    }

    /// The next offset of each assigned partition.
    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    /// Records fetched within `timeout` (possibly none). Heartbeats as due.
    pub async fn poll(
        &mut self,
        timeout: Duration,
    ) -> Result<Vec<(i32, ConsumedRecord)>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = &self.membership {
                if Instant::now() >= m.next_heartbeat {
                    self.heartbeat().await?;
                }
            }
            if self.metadata_stale {
                self.metadata_stale = false;
                let name = self.topic.name.clone();
                self.topic = self.client.topic(&name).await?;
                self.fetchers.clear();
            }
            if !self.buffered.is_empty() {
                return Ok(self.buffered.drain(..).collect());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if self.positions.is_empty() {
                if left.is_zero() {
                    return Ok(Vec::new());
                }
                tokio::time::sleep(left.min(Duration::from_millis(100))).await;
                continue;
            }
            let wait = left.min(self.config.fetch_max_wait);
            let wait = match &self.membership {
                Some(m) => wait.min(m.next_heartbeat.saturating_duration_since(Instant::now())),
                None => wait,
            };
            self.fetch_once(wait).await?;
            if !self.buffered.is_empty() {
                return Ok(self.buffered.drain(..).collect());
            }
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
        }
    }

    /// Commits the current positions (group members only).
    pub async fn commit(&mut self) -> Result<(), ClientError> {
        let positions = self.positions.clone();
        self.commit_offsets(&positions).await
    }

    /// Commits `offsets` (partition to next offset to read) of assigned partitions (group members
    /// only): what a caller has processed, which may be behind what was fetched.
    pub async fn commit_offsets(
        &mut self,
        offsets: &BTreeMap<i32, i64>,
    ) -> Result<(), ClientError> {
        let Some(m) = &self.membership else {
            return Ok(());
        };
        let (group, coordinator) = (m.group.clone(), m.coordinator);
        let committer = Committer {
            member_id: m.member_id.clone(),
            epoch: m.epoch,
        };
        let offsets: BTreeMap<_, _> = offsets
            .iter()
            .filter(|(p, _)| self.positions.contains_key(p))
            .map(|(p, o)| ((self.topic.name.clone(), *p), *o))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.client.settings().request_timeout;
        let mut coordinator = coordinator;
        loop {
            match groups::commit(&mut self.client, coordinator, &group, &committer, &offsets).await
            {
                Err(e)
                    if (e.code().is_some_and(groups::coordinator_retriable)
                        || matches!(e, ClientError::Io { .. }))
                        && Instant::now() < deadline =>
                {
                    self.coordinator_moved().await?;
                    coordinator = self
                        .membership
                        .as_ref()
                        .map_or(coordinator, |m| m.coordinator);
                }
                other => return other,
            }
        }
    }

    /// Leaves the group (epoch -1), so that its partitions move on at once. Commits nothing: commit
    /// what was processed first.
    pub async fn close(mut self) -> Result<(), ClientError> {
        if self.membership.is_none() {
            return Ok(());
        }
        let m = self.membership.as_ref().expect("checked above");
        let request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(m.group.clone())))
            .with_member_id(StrBytes::from_string(m.member_id.clone()))
            .with_member_epoch(-1);
        let coordinator = m.coordinator;
        let response = self.client.send_to(coordinator, &request).await?;
        check(
            response.error_code,
            response.error_message.as_deref(),
            || "leaving the group".to_string(),
        )
    }

    /// One ConsumerGroupHeartbeat: reports the owned partitions, takes the assignment it returns.
    async fn heartbeat(&mut self) -> Result<(), ClientError> {
        let topic_id = self.topic.id;
        let owned: Vec<i32> = self.positions.keys().copied().collect();
        let rebalance_ms = self
            .config
            .rebalance_timeout
            .as_millis()
            .min(i32::MAX as u128) as i32;
        let Some(m) = self.membership.as_mut() else {
            return Ok(());
        };
        let request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(m.group.clone())))
            .with_member_id(StrBytes::from_string(m.member_id.clone()))
            .with_member_epoch(m.epoch)
            .with_rebalance_timeout_ms(rebalance_ms)
            .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_string(
                self.topic.name.clone(),
            ))]))
            // A joining member (epoch 0) must send an empty list, not the topic with no partitions.
            .with_topic_partitions(Some(if owned.is_empty() {
                Vec::new()
            } else {
                vec![TopicPartitions::default()
                    .with_topic_id(topic_id)
                    .with_partitions(owned)]
            }));
        let coordinator = m.coordinator;
        let response = match self.client.send_to(coordinator, &request).await {
            Ok(response) => response,
            // The coordinator's broker went away: find the group's new coordinator and try again.
            Err(ClientError::Io { .. }) => {
                self.coordinator_moved().await?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let m = self.membership.as_mut().expect("checked above");
        match response.error_code {
            0 => {}
            code if groups::coordinator_retriable(code) => {
                self.coordinator_moved().await?;
                return Ok(());
            }
            // FENCED_MEMBER_EPOCH and UNKNOWN_MEMBER_ID: the coordinator forgot this member; join again
            // with epoch 0 and give up the partitions.
            110 | 25 => {
                tracing::info!(group = %m.group, "fenced by the group coordinator; rejoining");
                m.epoch = 0;
                m.next_heartbeat = Instant::now();
                self.positions.clear();
                self.buffered.clear();
                return Ok(());
            }
            code => {
                return check(code, response.error_message.as_deref(), || {
                    format!("heartbeat to group '{}'", m.group)
                })
            }
        }
        if let Some(id) = &response.member_id {
            m.member_id = id.to_string();
        }
        m.epoch = response.member_epoch;
        m.heartbeat_interval =
            Duration::from_millis(response.heartbeat_interval_ms.max(100) as u64);
        m.next_heartbeat = Instant::now() + m.heartbeat_interval;
        let Some(assignment) = response.assignment else {
            return Ok(());
        };
        let target: BTreeSet<i32> = assignment
            .topic_partitions
            .iter()
            .filter(|t| t.topic_id == topic_id)
            .flat_map(|t| t.partitions.iter().copied())
            .collect();
        let revoked: Vec<i32> = self
            .positions
            .keys()
            .filter(|p| !target.contains(p))
            .copied()
            .collect();
        if !revoked.is_empty() {
            // Commit what was read before the partitions move on.
            self.commit().await?;
            for p in &revoked {
                self.positions.remove(p);
            }
            self.buffered.retain(|(p, _)| !revoked.contains(p));
        }
        let added: Vec<i32> = target
            .iter()
            .filter(|p| !self.positions.contains_key(p))
            .copied()
            .collect();
        if !added.is_empty() {
            let positions = self.committed_or_reset(&added).await?;
            self.positions.extend(positions);
        }
        Ok(())
    }

    /// After a coordinator error: the group's coordinator again (it may have moved or be loading the
    /// group), and the next heartbeat soon.
    async fn coordinator_moved(&mut self) -> Result<(), ClientError> {
        tokio::time::sleep(COORDINATOR_RETRY_BACKOFF).await;
        let group = match &self.membership {
            Some(m) => m.group.clone(),
            None => return Ok(()),
        };
        self.client.metadata(Some(Vec::new())).await?;
        let coordinator = self.client.find_coordinator(0, &group).await?;
        if let Some(m) = self.membership.as_mut() {
            m.coordinator = coordinator;
            m.next_heartbeat = Instant::now();
        }
        Ok(())
    }

    async fn committed_or_reset(
        &mut self,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, i64>, ClientError> {
        let m = self.membership.as_ref().expect("group members only");
        let (group, coordinator) = (m.group.clone(), m.coordinator);
        let committer = Committer {
            member_id: m.member_id.clone(),
            epoch: m.epoch,
        };
        let wanted: Vec<(String, i32)> = partitions
            .iter()
            .map(|p| (self.topic.name.clone(), *p))
            .collect();
        let deadline = Instant::now() + self.client.settings().request_timeout;
        let mut coordinator = coordinator;
        let committed = loop {
            match groups::fetch_committed(
                &mut self.client,
                coordinator,
                &group,
                Some(&wanted),
                Some(&committer),
            )
            .await
            {
                Err(e)
                    if e.code().is_some_and(groups::coordinator_retriable)
                        && Instant::now() < deadline =>
                {
                    self.coordinator_moved().await?;
                    coordinator = self
                        .membership
                        .as_ref()
                        .map_or(coordinator, |m| m.coordinator);
                }
                other => break other?,
            }
        };
        let mut positions = BTreeMap::new();
        let mut missing = Vec::new();
        for p in partitions {
            match committed.get(&(self.topic.name.clone(), *p)) {
                Some(o) => {
                    positions.insert(*p, *o);
                }
                None => missing.push(*p),
            }
        }
        if !missing.is_empty() {
            let reset = self.config.auto_offset_reset;
            positions.extend(self.resolve(&missing, reset).await?);
        }
        Ok(positions)
    }

    /// The offsets `start` means for `partitions`.
    async fn resolve(
        &mut self,
        partitions: &[i32],
        start: StartOffset,
    ) -> Result<BTreeMap<i32, i64>, ClientError> {
        let timestamp = match start {
            StartOffset::At(o) => return Ok(partitions.iter().map(|p| (*p, o)).collect()),
            StartOffset::Earliest => EARLIEST,
            StartOffset::Latest => LATEST,
        };
        list_offsets(&mut self.client, &self.topic, partitions, timestamp).await
    }

    /// One round of fetches, one per leader, run together.
    async fn fetch_once(&mut self, wait: Duration) -> Result<(), ClientError> {
        let mut per_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
        for (p, offset) in &self.positions {
            let leader = self
                .topic
                .partitions
                .get(*p as usize)
                .map_or(-1, |i| i.leader);
            if leader < 0 {
                self.metadata_stale = true;
                continue;
            }
            per_leader.entry(leader).or_default().push((*p, *offset));
        }
        let mut tasks = JoinSet::new();
        for (leader, partitions) in per_leader {
            let mut connection = match self.fetchers.remove(&leader) {
                Some(c) => c,
                None => {
                    let address = self.client.node(leader)?.address().to_string();
                    self.client.settings().connection(&address)
                }
            };
            let request = self.fetch_request(&partitions, wait);
            tasks.spawn(async move {
                let response = connection.send(&request).await;
                (leader, connection, response)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (leader, connection, response) =
                joined.map_err(|e| ClientError::Protocol(format!("fetch task failed: {e}")))?;
            match response {
                Ok(response) => {
                    self.fetchers.insert(leader, connection);
                    self.take_fetch_response(response).await?;
                }
                Err(e) => {
                    tracing::debug!(leader, error = %e, "fetch failed; refreshing metadata");
                    self.metadata_stale = true;
                }
            }
        }
        if self.metadata_stale && self.buffered.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    fn fetch_request(&self, partitions: &[(i32, i64)], wait: Duration) -> FetchRequest {
        FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(wait.as_millis().min(i32::MAX as u128) as i32)
            .with_min_bytes(self.config.fetch_min_bytes)
            .with_max_bytes(self.config.fetch_max_bytes)
            .with_isolation_level(self.config.isolation_level)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(self.topic.name.clone())))
                .with_topic_id(self.topic.id)
                .with_partitions(
                    partitions
                        .iter()
                        .map(|(p, offset)| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_fetch_offset(*offset)
                                .with_current_leader_epoch(-1)
                                .with_last_fetched_epoch(-1)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(self.config.max_partition_fetch_bytes)
                        })
                        .collect(),
                )])
    }

    async fn take_fetch_response(
        &mut self,
        response: kafka_protocol::messages::FetchResponse,
    ) -> Result<(), ClientError> {
        check(response.error_code, None, || "fetch".to_string())?;
        let mut out_of_range = Vec::new();
        for t in response.responses {
            let ours = t.topic_id == self.topic.id || t.topic.as_str() == self.topic.name;
            if !ours {
                continue;
            }
            for p in t.partitions {
                let Some(position) = self.positions.get(&p.partition_index).copied() else {
                    continue;
                };
                match p.error_code {
                    0 => {}
                    // OFFSET_OUT_OF_RANGE: the position fell off the log (retention) or is past its end.
                    1 => {
                        out_of_range.push(p.partition_index);
                        continue;
                    }
                    code if kafka_protocol::ResponseError::try_from_code(code)
                        .is_some_and(|e| e.is_retriable()) =>
                    {
                        self.metadata_stale = true;
                        continue;
                    }
                    code => {
                        return check(code, None, || {
                            format!("fetching {}-{}", self.topic.name, p.partition_index)
                        })
                    }
                }
                let Some(records) = p.records else { continue };
                let (records, next) = decode_records(records, position)?;
                if let Some(pos) = self.positions.get_mut(&p.partition_index) {
                    *pos = next;
                }
                self.buffered
                    .extend(records.into_iter().map(|r| (p.partition_index, r)));
            }
        }
        if !out_of_range.is_empty() {
            let reset = self.config.auto_offset_reset;
            let positions = self.resolve(&out_of_range, reset).await?;
            self.positions.extend(positions);
        }
        Ok(())
    }
}

/// The offsets of `partitions` of `topic` at `timestamp` (`LATEST`, `EARLIEST` or milliseconds: the first
/// offset whose timestamp is at or after it; the log end when there is none), asked of each leader.
pub async fn list_offsets(
    client: &mut KafkaClient,
    topic: &TopicInfo,
    partitions: &[i32],
    timestamp: i64,
) -> Result<BTreeMap<i32, i64>, ClientError> {
    let mut per_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in partitions {
        let info = topic.partitions.get(*p as usize).ok_or_else(|| {
            ClientError::Failed(format!(
                "partition {p} of topic '{}' does not exist",
                topic.name
            ))
        })?;
        if info.leader < 0 {
            return Err(ClientError::Failed(format!(
                "partition {}-{p} has no leader",
                topic.name
            )));
        }
        per_leader.entry(info.leader).or_default().push(*p);
    }
    let mut offsets = BTreeMap::new();
    let mut after_end = Vec::new();
    for (leader, ps) in per_leader {
        let request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_isolation_level(0)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
                .with_partitions(
                    ps.iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        let response = client.send_to(leader, &request).await?;
        for t in &response.topics {
            for p in &t.partitions {
                check(p.error_code, None, || {
                    format!("listing offsets of {}-{}", topic.name, p.partition_index)
                })?;
                if p.offset < 0 {
                    after_end.push(p.partition_index);
                } else {
                    offsets.insert(p.partition_index, p.offset);
                }
            }
        }
    }
    if !after_end.is_empty() {
        // No record at or after the timestamp: the log end, as Kafka's tools do.
        let ends = Box::pin(list_offsets(client, topic, &after_end, LATEST)).await?;
        offsets.extend(ends);
    }
    Ok(offsets)
}
