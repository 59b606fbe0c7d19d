//! Committed offsets of a group (OffsetFetch, OffsetCommit), shared by the consumer and
//! `kavka consumer-groups`.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetFetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::error::check;
use super::{ClientError, KafkaClient};

/// A topic partition.
pub type TopicPartition = (String, i32);

/// Who commits: a member of a consumer-protocol group (id and epoch), a classic member (id and
/// generation), or an admin tool (none: only an empty group accepts it).
#[derive(Clone, Debug, Default)]
pub struct Committer {
    pub member_id: String,
    pub epoch: i32,
}

impl Committer {
    pub fn admin() -> Committer {
        Committer {
            member_id: String::new(),
            epoch: -1,
        }
    }
}

/// Errors after which a group request succeeds once the coordinator is found again or done loading:
/// COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR.
pub fn coordinator_retriable(code: i16) -> bool {
    matches!(code, 14..=16)
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// The committed offsets of `group` on `coordinator`; `partitions: None` asks for every committed
/// partition. Partitions without a committed offset are absent.
pub async fn fetch_committed(
    client: &mut KafkaClient,
    coordinator: i32,
    group: &str,
    partitions: Option<&[TopicPartition]>,
    member: Option<&Committer>,
) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions.unwrap_or(&[]) {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let connection = client.node(coordinator)?;
    let version = connection.version_for::<OffsetFetchRequest>().await?;
    let context = || format!("fetching the committed offsets of group '{group}'");
    let mut committed = BTreeMap::new();
    if version >= 8 {
        let topics = partitions.map(|_| {
            by_topic
                .iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(ps.clone())
                })
                .collect()
        });
        let mut entry = OffsetFetchRequestGroup::default()
            .with_group_id(group_id(group))
            .with_topics(topics);
        if let Some(m) = member {
            entry = entry
                .with_member_id(Some(StrBytes::from_string(m.member_id.clone())))
                .with_member_epoch(m.epoch);
        }
        let request = OffsetFetchRequest::default()
            .with_groups(vec![entry])
            .with_require_stable(true);
        let response = connection.send_at(&request, version).await?;
        let g = response
            .groups
            .first()
            .ok_or_else(|| ClientError::Protocol("OffsetFetch answered no group".into()))?;
        check(g.error_code, None, context)?;
        for t in &g.topics {
            for p in &t.partitions {
                check(p.error_code, None, context)?;
                if p.committed_offset >= 0 {
                    committed.insert((t.name.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
    } else {
        let topics = partitions.map(|_| {
            by_topic
                .iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(ps.clone())
                })
                .collect()
        });
        let request = OffsetFetchRequest::default()
            .with_group_id(group_id(group))
            .with_topics(topics);
        let response = connection.send_at(&request, version).await?;
        check(response.error_code, None, context)?;
        for t in &response.topics {
            for p in &t.partitions {
                check(p.error_code, None, context)?;
                if p.committed_offset >= 0 {
                    committed.insert((t.name.to_string(), p.partition_index), p.committed_offset);
                }
            }
        }
    }
    Ok(committed)
}

/// Commits `offsets` for `group` on `coordinator` as `committer`.
pub async fn commit(
    client: &mut KafkaClient,
    coordinator: i32,
    group: &str,
    committer: &Committer,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> Result<(), ClientError> {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), offset) in offsets {
        by_topic.entry(t.as_str()).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*offset)
                .with_committed_leader_epoch(-1),
        );
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(committer.epoch)
        .with_member_id(StrBytes::from_string(committer.member_id.clone()))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = client.send_to(coordinator, &request).await?;
    for t in &response.topics {
        for p in &t.partitions {
            check(p.error_code, None, || {
                format!(
                    "committing the offset of {}-{} for group '{group}'",
                    t.name.as_str(),
                    p.partition_index
                )
            })?;
        }
    }
    Ok(())
}
