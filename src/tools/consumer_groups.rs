//! `kavka consumer-groups`: Kafka's `kafka-consumer-groups` (ListGroups, DescribeGroups or
//! ConsumerGroupDescribe, OffsetFetch, ListOffsets, OffsetCommit, DeleteGroups). Classic and
//! consumer-protocol groups are both shown.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Buf;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerProtocolAssignment, DeleteGroupsRequest,
    DescribeGroupsRequest, GroupId, ListGroupsRequest,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use super::AdminConnection;
use crate::client::consumer::{list_offsets, EARLIEST, LATEST};
use crate::client::error::check;
use crate::client::groups::{self, Committer, TopicPartition};
use crate::client::{ClientError, KafkaClient};

/// GROUP_ID_NOT_FOUND: Kafka's answer for a group it does not know (and, to ConsumerGroupDescribe, for a
/// classic group).
const GROUP_ID_NOT_FOUND: i16 = 69;

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["list", "describe", "delete", "reset_offsets"])))]
#[command(group(clap::ArgGroup::new("scenario").args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
pub struct ConsumerGroupsArgs {
    #[command(flatten)]
    pub connection: AdminConnection,
    /// List the groups.
    #[arg(long)]
    pub list: bool,
    /// Describe --group: committed offset, log end offset and lag per partition, and its members.
    #[arg(long)]
    pub describe: bool,
    /// Delete --group (it must have no members).
    #[arg(long)]
    pub delete: bool,
    /// Reset the committed offsets of --group (it must have no members); needs a scenario.
    #[arg(long)]
    pub reset_offsets: bool,
    /// The group.
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// With --describe: show the members instead of the offsets.
    #[arg(long)]
    pub members: bool,
    /// With --describe: show the group's state instead of the offsets.
    #[arg(long)]
    pub state: bool,
    /// With --reset-offsets: the topic, optionally with partitions (TOPIC or TOPIC:0,1).
    #[arg(long, value_name = "TOPIC[:P,P]")]
    pub topic: Vec<String>,
    /// With --reset-offsets: every topic the group has committed offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// Reset to the log start.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the log end.
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to this offset (kept within the log's bounds).
    #[arg(long, value_name = "OFFSET")]
    pub to_offset: Option<i64>,
    /// Reset to the first offset at or after this time: YYYY-MM-DDTHH:mm:SS.sss, UTC unless it ends
    /// with Z or an offset such as +01:00.
    #[arg(long, value_name = "DATETIME")]
    pub to_datetime: Option<String>,
    /// Move the committed offsets by N (negative: back), kept within the log's bounds.
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// With --reset-offsets: show the new offsets without committing them (the default).
    #[arg(long)]
    pub dry_run: bool,
    /// With --reset-offsets: commit the new offsets.
    #[arg(long, conflicts_with = "dry_run")]
    pub execute: bool,
}

pub async fn run(args: ConsumerGroupsArgs) -> Result<(), ClientError> {
    let mut client = args.connection.connect("kavka-consumer-groups").await?;
    if args.list {
        let request = ListGroupsRequest::default();
        let response = client.send_any(&request).await?;
        check(response.error_code, None, || "listing groups".into())?;
        let names: BTreeSet<String> = response
            .groups
            .iter()
            .map(|g| g.group_id.to_string())
            .collect();
        for name in names {
            println!("{name}");
        }
        return Ok(());
    }
    let group = args
        .group
        .clone()
        .ok_or_else(|| ClientError::Config("--group is required".into()))?;
    if args.describe {
        describe(&mut client, &group, &args).await
    } else if args.delete {
        delete(&mut client, &group).await
    } else {
        reset_offsets(&mut client, &group, &args).await
    }
}

/// A group member as both protocols describe it.
struct MemberView {
    member_id: String,
    client_id: String,
    host: String,
    partitions: Vec<TopicPartition>,
}

/// A group as both protocols describe it.
struct GroupView {
    coordinator: i32,
    state: String,
    assignor: String,
    members: Vec<MemberView>,
}

async fn describe_group(client: &mut KafkaClient, group: &str) -> Result<GroupView, ClientError> {
    let coordinator = client.find_coordinator(0, group).await?;
    let connection = client.node(coordinator)?;
    if connection
        .supports::<ConsumerGroupDescribeRequest>()
        .await?
    {
        let request = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_string()))]);
        let response = connection.send(&request).await?;
        if let Some(g) = response.groups.first() {
            // GROUP_ID_NOT_FOUND: not a consumer-protocol group; try the classic protocol below.
            if g.error_code == 0 {
                return Ok(GroupView {
                    coordinator,
                    state: g.group_state.to_string(),
                    assignor: g.assignor_name.to_string(),
                    members: g
                        .members
                        .iter()
                        .map(|m| MemberView {
                            member_id: m.member_id.to_string(),
                            client_id: m.client_id.to_string(),
                            host: m.client_host.to_string(),
                            partitions: m
                                .assignment
                                .topic_partitions
                                .iter()
                                .flat_map(|t| {
                                    t.partitions.iter().map(|p| (t.topic_name.to_string(), *p))
                                })
                                .collect(),
                        })
                        .collect(),
                });
            } else if g.error_code != GROUP_ID_NOT_FOUND {
                check(g.error_code, g.error_message.as_deref(), || {
                    format!("describing group '{group}'")
                })?;
            }
        }
    }
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let response = client.send_to(coordinator, &request).await?;
    let g = response
        .groups
        .first()
        .ok_or_else(|| ClientError::Protocol("DescribeGroups answered no group".into()))?;
    if g.error_code == GROUP_ID_NOT_FOUND {
        return Err(ClientError::Failed(format!(
            "consumer group '{group}' does not exist"
        )));
    }
    check(g.error_code, g.error_message.as_deref(), || {
        format!("describing group '{group}'")
    })?;
    Ok(GroupView {
        coordinator,
        state: g.group_state.to_string(),
        assignor: g.protocol_data.to_string(),
        members: g
            .members
            .iter()
            .map(|m| MemberView {
                member_id: m.member_id.to_string(),
                client_id: m.client_id.to_string(),
                host: m.client_host.to_string(),
                partitions: classic_assignment(&m.member_assignment),
            })
            .collect(),
    })
}

/// The partitions of a classic consumer's assignment bytes (empty if they are not a consumer
/// assignment).
fn classic_assignment(bytes: &bytes::Bytes) -> Vec<TopicPartition> {
    let mut buf = bytes.clone();
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut buf, version) {
        Ok(a) => a
            .assigned_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// A group that does not exist: Dead, nothing committed.
fn missing(view: &GroupView, committed: &BTreeMap<TopicPartition, i64>) -> bool {
    view.state == "Dead" && committed.is_empty() && view.members.is_empty()
}

/// Prints rows as columns padded to their widest cell, as Kafka's tools do.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$} ", width = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// The log end offset of each of `partitions`.
async fn offsets_at(
    client: &mut KafkaClient,
    partitions: &BTreeSet<TopicPartition>,
    timestamp: i64,
) -> Result<BTreeMap<TopicPartition, i64>, ClientError> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t).or_default().push(*p);
    }
    let mut out = BTreeMap::new();
    for (topic, ps) in by_topic {
        let info = client.topic(topic).await?;
        for (p, o) in list_offsets(client, &info, &ps, timestamp).await? {
            out.insert((topic.to_string(), p), o);
        }
    }
    Ok(out)
}

async fn describe(
    client: &mut KafkaClient,
    group: &str,
    args: &ConsumerGroupsArgs,
) -> Result<(), ClientError> {
    let view = describe_group(client, group).await?;
    let committed = groups::fetch_committed(client, view.coordinator, group, None, None).await?;
    if missing(&view, &committed) {
        return Err(ClientError::Failed(format!(
            "consumer group '{group}' does not exist"
        )));
    }
    if args.state {
        let coordinator = client
            .brokers()
            .find(|b| b.id == view.coordinator)
            .map(|b| b.address())
            .unwrap_or_default();
        print_table(
            &[
                "GROUP",
                "COORDINATOR (ID)",
                "ASSIGNMENT-STRATEGY",
                "STATE",
                "#MEMBERS",
            ],
            &[vec![
                group.to_string(),
                format!("{coordinator} ({})", view.coordinator),
                view.assignor.clone(),
                view.state.clone(),
                view.members.len().to_string(),
            ]],
        );
        return Ok(());
    }
    if view.members.is_empty() {
        println!("\nConsumer group '{group}' has no active members.\n");
    }
    if args.members {
        let rows: Vec<Vec<String>> = view
            .members
            .iter()
            .map(|m| {
                vec![
                    group.to_string(),
                    m.member_id.clone(),
                    m.host.clone(),
                    m.client_id.clone(),
                    m.partitions.len().to_string(),
                ]
            })
            .collect();
        print_table(
            &["GROUP", "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"],
            &rows,
        );
        return Ok(());
    }
    let mut owner: BTreeMap<TopicPartition, &MemberView> = BTreeMap::new();
    for m in &view.members {
        for tp in &m.partitions {
            owner.insert(tp.clone(), m);
        }
    }
    let partitions: BTreeSet<TopicPartition> =
        committed.keys().chain(owner.keys()).cloned().collect();
    let ends = offsets_at(client, &partitions, LATEST).await?;
    let rows: Vec<Vec<String>> = partitions
        .iter()
        .map(|tp| {
            let current = committed.get(tp);
            let end = ends.get(tp);
            let lag = match (current, end) {
                (Some(c), Some(e)) => (e - c).max(0).to_string(),
                _ => "-".to_string(),
            };
            let dash = || "-".to_string();
            let m = owner.get(tp);
            vec![
                group.to_string(),
                tp.0.clone(),
                tp.1.to_string(),
                current.map_or_else(dash, i64::to_string),
                end.map_or_else(dash, i64::to_string),
                lag,
                m.map_or_else(dash, |m| m.member_id.clone()),
                m.map_or_else(dash, |m| m.host.clone()),
                m.map_or_else(dash, |m| m.client_id.clone()),
            ]
        })
        .collect();
    print_table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ],
        &rows,
    );
    Ok(())
}

async fn delete(client: &mut KafkaClient, group: &str) -> Result<(), ClientError> {
    let coordinator = client.find_coordinator(0, group).await?;
    let request = DeleteGroupsRequest::default()
        .with_groups_names(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let response = client.send_to(coordinator, &request).await?;
    for r in &response.results {
        match r.error_code {
            0 => {}
            GROUP_ID_NOT_FOUND => {
                return Err(ClientError::Failed(format!(
                    "consumer group '{group}' does not exist"
                )))
            }
            68 => {
                return Err(ClientError::Failed(format!(
                "consumer group '{group}' is not empty: stop its consumers first (GROUP_NOT_EMPTY)"
            )))
            }
            code => check(code, None, || format!("deleting group '{group}'"))?,
        }
    }
    println!("Deletion of requested consumer groups ('{group}') was successful.");
    Ok(())
}

/// The partitions `--topic` / `--all-topics` select.
async fn reset_partitions(
    client: &mut KafkaClient,
    args: &ConsumerGroupsArgs,
    committed: &BTreeMap<TopicPartition, i64>,
) -> Result<BTreeSet<TopicPartition>, ClientError> {
    if args.all_topics {
        return Ok(committed.keys().cloned().collect());
    }
    if args.topic.is_empty() {
        return Err(ClientError::Config(
            "--reset-offsets needs --topic or --all-topics".into(),
        ));
    }
    let mut out = BTreeSet::new();
    for item in &args.topic {
        match item.split_once(':') {
            Some((topic, list)) => {
                let info = client.topic(topic).await?;
                for p in list.split(',') {
                    let p: i32 = p.trim().parse().map_err(|_| {
                        ClientError::Config(format!("--topic {item:?}: {p:?} is not a partition"))
                    })?;
                    if !(0..info.partitions.len() as i32).contains(&p) {
                        return Err(ClientError::Failed(format!(
                            "partition {p} of topic '{topic}' does not exist"
                        )));
                    }
                    out.insert((topic.to_string(), p));
                }
            }
            None => {
                let info = client.topic(item).await?;
                out.extend(info.partitions.iter().map(|p| (item.clone(), p.index)));
            }
        }
    }
    Ok(out)
}

/// Milliseconds since the epoch of `YYYY-MM-DDTHH:mm:SS[.sss][Z|±HH:MM]` (UTC without a zone).
pub fn parse_datetime(text: &str) -> Result<i64, ClientError> {
    use time::format_description::well_known::Rfc3339;
    let bad = || {
        ClientError::Config(format!(
            "--to-datetime {text:?}: use YYYY-MM-DDTHH:mm:SS.sss (optionally with Z or ±HH:MM)"
        ))
    };
    let has_zone = text.ends_with('Z')
        || text
            .get(text.len().saturating_sub(6)..)
            .is_some_and(|tail| {
                (tail.starts_with('+') || tail.starts_with('-')) && tail.contains(':')
            });
    let full = if has_zone {
        text.to_string()
    } else {
        format!("{text}Z")
    };
    let parsed = time::OffsetDateTime::parse(&full, &Rfc3339).map_err(|_| bad())?;
    Ok((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}

async fn reset_offsets(
    client: &mut KafkaClient,
    group: &str,
    args: &ConsumerGroupsArgs,
) -> Result<(), ClientError> {
    let view = describe_group(client, group).await?;
    if !view.members.is_empty() {
        return Err(ClientError::Failed(format!(
            "assignments can only be reset if the group '{group}' is inactive, but the current state is {} ({} members)",
            view.state,
            view.members.len()
        )));
    }
    let committed = groups::fetch_committed(client, view.coordinator, group, None, None).await?;
    let partitions = reset_partitions(client, args, &committed).await?;
    let earliest = offsets_at(client, &partitions, EARLIEST).await?;
    let latest = offsets_at(client, &partitions, LATEST).await?;
    let clamp = |tp: &TopicPartition, o: i64| {
        let low = earliest.get(tp).copied().unwrap_or(0);
        let high = latest.get(tp).copied().unwrap_or(o);
        o.clamp(low, high.max(low))
    };
    let new_offsets: BTreeMap<TopicPartition, i64> = if args.to_earliest {
        earliest.clone()
    } else if args.to_latest {
        latest.clone()
    } else if let Some(o) = args.to_offset {
        partitions
            .iter()
            .map(|tp| (tp.clone(), clamp(tp, o)))
            .collect()
    } else if let Some(n) = args.shift_by {
        partitions
            .iter()
            .map(|tp| {
                let current = committed
                    .get(tp)
                    .copied()
                    .unwrap_or_else(|| latest.get(tp).copied().unwrap_or(0));
                (tp.clone(), clamp(tp, current.saturating_add(n)))
            })
            .collect()
    } else if let Some(text) = &args.to_datetime {
        let at = parse_datetime(text)?;
        offsets_at(client, &partitions, at).await?
    } else {
        return Err(ClientError::Config(
            "--reset-offsets needs one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by".into(),
        ));
    };
    let rows: Vec<Vec<String>> = new_offsets
        .iter()
        .map(|((t, p), o)| vec![group.to_string(), t.clone(), p.to_string(), o.to_string()])
        .collect();
    print_table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
    if args.execute {
        groups::commit(
            client,
            view.coordinator,
            group,
            &Committer::admin(),
            &new_offsets,
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_are_utc_unless_zoned() {
        assert_eq!(parse_datetime("1970-01-01T00:00:01.500").unwrap(), 1500);
        assert_eq!(parse_datetime("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert_eq!(parse_datetime("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn classic_assignments_decode() {
        use bytes::BufMut;
        let mut b = bytes::BytesMut::new();
        b.put_i16(0); // version
        b.put_i32(1); // topics
        b.put_i16(1);
        b.put_slice(b"t");
        b.put_i32(2);
        b.put_i32(0);
        b.put_i32(2);
        b.put_i32(-1); // user data: null
        assert_eq!(
            classic_assignment(&b.freeze()),
            [("t".to_string(), 0), ("t".to_string(), 2)]
        );
        assert!(classic_assignment(&bytes::Bytes::from_static(b"x")).is_empty());
    }
}
