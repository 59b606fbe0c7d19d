//! `kavka cluster status`: one page on a cluster's health: its id, the brokers (DescribeCluster, fenced
//! ones included where the broker lists them), the active controller, the metadata quorum
//! (DescribeQuorum, as Kafka's `kafka-metadata-quorum describe --status --replication` shows it) and the
//! under-replicated and offline partitions (Metadata).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::ReplicaState;
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::AdminConnection;
use crate::client::cluster::{topic_infos, TopicInfo};
use crate::client::error::check;
use crate::client::{ClientError, KafkaClient};

/// The metadata log's topic and partition, which DescribeQuorum names.
const METADATA_TOPIC: &str = "__cluster_metadata";

#[derive(clap::Args, Debug)]
pub struct ClusterStatusArgs {
    #[command(flatten)]
    pub connection: AdminConnection,
}

/// A broker as the status lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerLine {
    pub id: i32,
    pub address: String,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// One replica of the metadata quorum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumReplica {
    pub id: i32,
    pub log_end_offset: i64,
    /// Milliseconds since the Unix epoch, -1 when unknown.
    pub last_caught_up_timestamp: i64,
}

/// The metadata quorum as DescribeQuorum describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quorum {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
}

/// Everything the page shows.
#[derive(Clone, Debug)]
pub struct Status {
    pub cluster_id: Option<String>,
    /// The controller id DescribeCluster (or Metadata) names: with KRaft, the answering broker or
    /// another live one rather than the active controller, which only the quorum's leader tells.
    pub reported_controller: i32,
    pub brokers: Vec<BrokerLine>,
    /// The quorum, or why it is not known.
    pub quorum: Result<Quorum, String>,
    pub under_replicated: Vec<String>,
    pub offline: Vec<String>,
}

pub async fn run(args: ClusterStatusArgs) -> Result<(), ClientError> {
    let mut client = args.connection.connect("kavka-cluster-status").await?;
    let (cluster_id, reported_controller, brokers) = brokers(&mut client).await?;
    let quorum = quorum(&mut client).await?;
    let metadata = client.metadata(None).await?;
    let (under_replicated, offline) = partition_health(&topic_infos(&metadata));
    let status = Status {
        cluster_id: cluster_id.or_else(|| client.cluster_id.clone()),
        reported_controller,
        brokers,
        quorum,
        under_replicated,
        offline,
    };
    print!("{}", render(&status, now_ms()));
    Ok(())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The cluster id, the controller the broker reports and the brokers: from DescribeCluster (with
/// fenced brokers when the broker serves v2), else from Metadata.
async fn brokers(
    client: &mut KafkaClient,
) -> Result<(Option<String>, i32, Vec<BrokerLine>), ClientError> {
    if !client
        .any_connection()
        .supports::<DescribeClusterRequest>()
        .await?
    {
        let brokers = client
            .brokers()
            .map(|b| BrokerLine {
                id: b.id,
                address: b.address(),
                rack: b.rack.clone(),
                fenced: false,
            })
            .collect();
        return Ok((client.cluster_id.clone(), client.controller_id, brokers));
    }
    let connection = client.any_connection();
    let version = connection.version_for::<DescribeClusterRequest>().await?;
    let mut request = DescribeClusterRequest::default();
    if version >= 1 {
        request = request.with_endpoint_type(1);
    }
    if version >= 2 {
        request = request.with_include_fenced_brokers(true);
    }
    let response = connection.send_at(&request, version).await?;
    check(
        response.error_code,
        response.error_message.as_deref(),
        || "describing the cluster".to_string(),
    )?;
    let mut brokers: Vec<BrokerLine> = response
        .brokers
        .iter()
        .map(|b| {
            let host = b.host.to_string();
            BrokerLine {
                id: b.broker_id.0,
                address: if host.contains(':') {
                    format!("[{host}]:{}", b.port)
                } else {
                    format!("{host}:{}", b.port)
                },
                rack: b.rack.as_ref().map(|r| r.to_string()),
                fenced: b.is_fenced,
            }
        })
        .collect();
    brokers.sort_by_key(|b| b.id);
    Ok((
        Some(response.cluster_id.to_string()),
        response.controller_id.0,
        brokers,
    ))
}

/// DescribeQuorum of the metadata partition; `Err(reason)` when the broker does not serve it or
/// refuses (a broker of another kind, or without the permission to describe the cluster).
async fn quorum(client: &mut KafkaClient) -> Result<Result<Quorum, String>, ClientError> {
    let connection = client.any_connection();
    if !connection.supports::<DescribeQuorumRequest>().await? {
        return Ok(Err(format!(
            "the broker at {} does not support DescribeQuorum",
            connection.address()
        )));
    }
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let response = match connection.send(&request).await {
        Ok(r) => r,
        Err(e @ (ClientError::Io { .. } | ClientError::Unreachable(_))) => return Err(e),
        Err(e) => return Ok(Err(e.to_string())),
    };
    Ok(quorum_of(&response))
}

/// The metadata partition's quorum from a DescribeQuorum response, or the error it carries.
pub fn quorum_of(response: &DescribeQuorumResponse) -> Result<Quorum, String> {
    let describe = |code: i16, message: Option<&StrBytes>| {
        ClientError::kafka("DescribeQuorum", code, message.map(|m| m.as_str())).to_string()
    };
    if response.error_code != 0 {
        return Err(describe(
            response.error_code,
            response.error_message.as_ref(),
        ));
    }
    let partition = response
        .topics
        .iter()
        .filter(|t| t.topic_name.as_str() == METADATA_TOPIC)
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == 0)
        .ok_or_else(|| "DescribeQuorum answered without the metadata partition".to_string())?;
    if partition.error_code != 0 {
        return Err(describe(
            partition.error_code,
            partition.error_message.as_ref(),
        ));
    }
    let replicas = |states: &[ReplicaState]| {
        states
            .iter()
            .map(|r| QuorumReplica {
                id: r.replica_id.0,
                log_end_offset: r.log_end_offset,
                last_caught_up_timestamp: r.last_caught_up_timestamp,
            })
            .collect()
    };
    Ok(Quorum {
        leader_id: partition.leader_id.0,
        leader_epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters: replicas(&partition.current_voters),
        observers: replicas(&partition.observers),
    })
}

/// `topic-partition` names of the under-replicated partitions (fewer in-sync replicas than replicas)
/// and of the offline ones (no leader), each in topic and partition order.
pub fn partition_health(topics: &[TopicInfo]) -> (Vec<String>, Vec<String>) {
    let mut under = Vec::new();
    let mut offline = Vec::new();
    for t in topics {
        for p in &t.partitions {
            let name = format!("{}-{}", t.name, p.index);
            if p.isr.len() < p.replicas.len() {
                under.push(name.clone());
            }
            if p.leader < 0 {
                offline.push(name);
            }
        }
    }
    (under, offline)
}

fn replica_line(kind: &str, r: &QuorumReplica, q: &Quorum, now_ms: i64) -> String {
    let mut line = format!("  {kind} {}:", r.id);
    if r.log_end_offset >= 0 {
        let lag = (q.high_watermark - r.log_end_offset).max(0);
        let _ = write!(line, " log end offset {}, lag {lag}", r.log_end_offset);
    } else {
        line.push_str(" log end offset unknown, lag unknown");
    }
    if r.last_caught_up_timestamp >= 0 {
        let ago = (now_ms - r.last_caught_up_timestamp).max(0);
        let _ = write!(line, ", last caught up {ago} ms ago");
    }
    if r.id == q.leader_id {
        line.push_str(" (leader)");
    }
    line
}

/// The page, each line ending in a newline.
pub fn render(status: &Status, now_ms: i64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Cluster id: {}",
        status.cluster_id.as_deref().unwrap_or("unknown")
    );
    // The quorum's leader is the active controller.
    match &status.quorum {
        Ok(q) if q.leader_id >= 0 => {
            let _ = writeln!(out, "Active controller: {}", q.leader_id);
        }
        _ if status.reported_controller >= 0 => {
            let _ = writeln!(
                out,
                "Active controller: unknown (the broker names {})",
                status.reported_controller
            );
        }
        _ => {
            let _ = writeln!(out, "Active controller: unknown");
        }
    }
    let live = status.brokers.iter().filter(|b| !b.fenced).count();
    let _ = writeln!(
        out,
        "Brokers: {} ({live} live, {} fenced)",
        status.brokers.len(),
        status.brokers.len() - live
    );
    for b in &status.brokers {
        let _ = write!(
            out,
            "  broker {} at {}, rack {}",
            b.id,
            b.address,
            b.rack.as_deref().unwrap_or("none")
        );
        out.push_str(if b.fenced { ", FENCED\n" } else { "\n" });
    }
    match &status.quorum {
        Ok(q) => {
            let _ = writeln!(
                out,
                "Metadata quorum: leader {}, leader epoch {}, high watermark {}",
                q.leader_id, q.leader_epoch, q.high_watermark
            );
            for r in &q.voters {
                let _ = writeln!(out, "{}", replica_line("voter", r, q, now_ms));
            }
            for r in &q.observers {
                let _ = writeln!(out, "{}", replica_line("observer", r, q, now_ms));
            }
        }
        Err(reason) => {
            let _ = writeln!(out, "Metadata quorum: not available ({reason})");
        }
    }
    let known: BTreeSet<i32> = status.brokers.iter().map(|b| b.id).collect();
    if let Ok(q) = &status.quorum {
        let missing: Vec<String> = q
            .voters
            .iter()
            .chain(&q.observers)
            .map(|r| r.id)
            .filter(|id| !known.contains(id))
            .map(|id| id.to_string())
            .collect();
        if !missing.is_empty() && !status.brokers.is_empty() {
            let _ = writeln!(
                out,
                "Quorum members not among the brokers listed (down, fenced or controller-only): {}",
                missing.join(", ")
            );
        }
    }
    let _ = writeln!(
        out,
        "Under-replicated partitions: {}",
        status.under_replicated.len()
    );
    for p in &status.under_replicated {
        let _ = writeln!(out, "  {p}");
    }
    let _ = writeln!(out, "Offline partitions: {}", status.offline.len());
    for p in &status.offline {
        let _ = writeln!(out, "  {p}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::cluster::PartitionInfo;
    use kafka_protocol::messages::describe_quorum_response;
    use kafka_protocol::messages::BrokerId;

    fn partition(index: i32, leader: i32, replicas: &[i32], isr: &[i32]) -> PartitionInfo {
        PartitionInfo {
            index,
            leader,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            ..PartitionInfo::default()
        }
    }

    #[test]
    fn under_replicated_and_offline_partitions() {
        let topics = vec![
            TopicInfo {
                name: "solo".into(),
                partitions: vec![partition(0, -1, &[2], &[2]), partition(1, 1, &[1], &[1])],
                ..TopicInfo::default()
            },
            TopicInfo {
                name: "temperature".into(),
                partitions: vec![
                    partition(0, 1, &[1, 2, 3], &[1, 3]),
                    partition(1, 3, &[1, 2, 3], &[1, 2, 3]),
                ],
                ..TopicInfo::default()
            },
        ];
        let (under, offline) = partition_health(&topics);
        assert_eq!(under, ["temperature-0"]);
        assert_eq!(offline, ["solo-0"]);
    }

    #[test]
    fn quorum_from_response() {
        let state = |id: i32, leo: i64, caught_up: i64| {
            describe_quorum_response::ReplicaState::default()
                .with_replica_id(BrokerId(id))
                .with_log_end_offset(leo)
                .with_last_caught_up_timestamp(caught_up)
        };
        let response = DescribeQuorumResponse::default().with_topics(vec![
            describe_quorum_response::TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
                .with_partitions(vec![describe_quorum_response::PartitionData::default()
                    .with_leader_id(BrokerId(1))
                    .with_leader_epoch(4)
                    .with_high_watermark(100)
                    .with_current_voters(vec![state(1, 101, 1000), state(2, 90, -1)])
                    .with_observers(vec![state(4, -1, -1)])]),
        ]);
        let q = quorum_of(&response).unwrap();
        assert_eq!((q.leader_id, q.leader_epoch, q.high_watermark), (1, 4, 100));
        assert_eq!(q.voters.len(), 2);
        let not_leader = DescribeQuorumResponse::default().with_topics(vec![
            describe_quorum_response::TopicData::default()
                .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
                .with_partitions(vec![
                    describe_quorum_response::PartitionData::default().with_error_code(6)
                ]),
        ]);
        assert!(quorum_of(&not_leader)
            .unwrap_err()
            .contains("NOT_LEADER_OR_FOLLOWER"));
    }

    #[test]
    fn page_layout() {
        let replica = |id, leo, t| QuorumReplica {
            id,
            log_end_offset: leo,
            last_caught_up_timestamp: t,
        };
        let status = Status {
            cluster_id: Some("abc".into()),
            reported_controller: 2,
            brokers: vec![
                BrokerLine {
                    id: 1,
                    address: "127.0.0.1:9092".into(),
                    rack: None,
                    fenced: false,
                },
                BrokerLine {
                    id: 2,
                    address: "127.0.0.1:9093".into(),
                    rack: Some("r2".into()),
                    fenced: true,
                },
            ],
            quorum: Ok(Quorum {
                leader_id: 1,
                leader_epoch: 4,
                high_watermark: 100,
                voters: vec![
                    replica(1, 101, 9_000),
                    replica(2, 90, -1),
                    replica(3, -1, -1),
                ],
                observers: vec![],
            }),
            under_replicated: vec!["t-0".into()],
            offline: vec![],
        };
        assert_eq!(
            render(&status, 10_000),
            "Cluster id: abc\n\
             Active controller: 1\n\
             Brokers: 2 (1 live, 1 fenced)\n\
             \x20 broker 1 at 127.0.0.1:9092, rack none\n\
             \x20 broker 2 at 127.0.0.1:9093, rack r2, FENCED\n\
             Metadata quorum: leader 1, leader epoch 4, high watermark 100\n\
             \x20 voter 1: log end offset 101, lag 0, last caught up 1000 ms ago (leader)\n\
             \x20 voter 2: log end offset 90, lag 10\n\
             \x20 voter 3: log end offset unknown, lag unknown\n\
             Quorum members not among the brokers listed (down, fenced or controller-only): 3\n\
             Under-replicated partitions: 1\n\
             \x20 t-0\n\
             Offline partitions: 0\n"
        );
        let unavailable = Status {
            quorum: Err("the broker does not support DescribeQuorum".into()),
            ..status
        };
        let page = render(&unavailable, 0);
        assert!(page.contains(
            "Metadata quorum: not available (the broker does not support DescribeQuorum)\n"
        ));
        assert!(page.contains("Active controller: unknown (the broker names 2)\n"));
    }
}
