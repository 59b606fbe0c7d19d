//! Helpers shared by the integration tests: framing requests with kafka-protocol and
//! decoding frames back with it.

#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

/// Encodes `req` at `version` behind a request header, as a client would send it (without
/// the 4-byte size prefix).
pub fn frame<T: Request>(req: &T, version: i16, correlation_id: i32) -> Result<Vec<u8>, String> {
    let header = RequestHeader::default()
        .with_request_api_key(T::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("kavka-test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, T::header_version(version))
        .map_err(|e| format!("header: {e:#}"))?;
    req.encode(&mut buf, version)
        .map_err(|e| format!("body: {e:#}"))?;
    Ok(buf.to_vec())
}

/// The versions of `T` that both the crate and our schema support.
pub fn versions<T: Request>() -> Vec<i16> {
    let (lo, hi) = kavka_wire::schema_versions(T::KEY).expect("schema for every tested api");
    (T::VERSIONS.min..=T::VERSIONS.max)
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// Decodes header and body of a frame with kafka-protocol, as the broker would after
/// validation.
pub fn crate_decode(frame: &[u8]) -> Result<(RequestHeader, RequestKind), String> {
    let mut buf = Bytes::copy_from_slice(frame);
    let info = kavka_wire::peek_header(frame).ok_or("short")?;
    let api = ApiKey::try_from(info.api_key).map_err(|_| "unknown api key".to_string())?;
    let header = RequestHeader::decode(&mut buf, api.request_header_version(info.api_version))
        .map_err(|e| format!("{e:#}"))?;
    let body =
        RequestKind::decode(api, &mut buf, info.api_version).map_err(|e| format!("{e:#}"))?;
    Ok((header, body))
}

use kafka_protocol::messages::broker_heartbeat_request::*;
use kafka_protocol::messages::create_topics_request::*;
use kafka_protocol::messages::fetch_request::*;
use kafka_protocol::messages::join_group_request::*;
use kafka_protocol::messages::list_offsets_request::*;
use kafka_protocol::messages::metadata_request::*;
use kafka_protocol::messages::offset_commit_request::*;
use kafka_protocol::messages::offset_fetch_request::*;
use kafka_protocol::messages::produce_request::*;
use kafka_protocol::messages::sync_group_request::*;
use kafka_protocol::messages::*;
use uuid::Uuid;

macro_rules! for_each_request {
    ($mac:ident) => {
        $mac!(
            ProduceRequest,
            FetchRequest,
            ListOffsetsRequest,
            MetadataRequest,
            OffsetCommitRequest,
            OffsetFetchRequest,
            FindCoordinatorRequest,
            JoinGroupRequest,
            HeartbeatRequest,
            LeaveGroupRequest,
            SyncGroupRequest,
            DescribeGroupsRequest,
            ListGroupsRequest,
            SaslHandshakeRequest,
            ApiVersionsRequest,
            CreateTopicsRequest,
            DeleteTopicsRequest,
            DeleteRecordsRequest,
            InitProducerIdRequest,
            OffsetForLeaderEpochRequest,
            DescribeConfigsRequest,
            AlterConfigsRequest,
            DescribeLogDirsRequest,
            SaslAuthenticateRequest,
            CreatePartitionsRequest,
            DeleteGroupsRequest,
            IncrementalAlterConfigsRequest,
            OffsetDeleteRequest,
            DescribeClusterRequest,
            ConsumerGroupHeartbeatRequest,
            ConsumerGroupDescribeRequest,
            CreateAclsRequest,
            DescribeAclsRequest,
            DeleteAclsRequest,
            DescribeUserScramCredentialsRequest,
            AlterUserScramCredentialsRequest,
            ElectLeadersRequest,
            AlterPartitionReassignmentsRequest,
            ListPartitionReassignmentsRequest,
            DescribeProducersRequest,
            AddPartitionsToTxnRequest,
            AddOffsetsToTxnRequest,
            EndTxnRequest,
            TxnOffsetCommitRequest,
            WriteTxnMarkersRequest,
            AlterPartitionRequest,
            BrokerRegistrationRequest,
            BrokerHeartbeatRequest,
            DescribeQuorumRequest
        )
    };
}

/// Default-valued frames of every tested API at every common version, labelled.
pub fn default_frames() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    macro_rules! push_defaults {
        ($($t:ident),* $(,)?) => {$(
            let vs = versions::<$t>();
            assert!(!vs.is_empty(), "{}: no common versions", stringify!($t));
            for v in vs {
                let f = frame(&$t::default(), v, 7)
                    .unwrap_or_else(|e| panic!("{} v{v}: {e}", stringify!($t)));
                out.push((format!("{} v{v} default", stringify!($t)), f));
            }
        )*};
    }
    for_each_request!(push_defaults);
    out
}

fn s(x: &'static str) -> StrBytes {
    StrBytes::from_static_str(x)
}

fn topic(x: &'static str) -> TopicName {
    TopicName(s(x))
}

const TOPIC_ID: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);

pub fn produce(v: i16) -> ProduceRequest {
    let mut t = TopicProduceData::default().with_partition_data(vec![
        PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(Bytes::from_static(&[7u8; 70]))),
        PartitionProduceData::default()
            .with_index(1)
            .with_records(None),
    ]);
    t = if v <= 12 {
        t.with_name(topic("orders"))
    } else {
        t.with_topic_id(TOPIC_ID)
    };
    ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s("txn-1"))))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![t])
}

pub fn fetch(v: i16) -> FetchRequest {
    let mut p = FetchPartition::default()
        .with_partition(3)
        .with_fetch_offset(100)
        .with_partition_max_bytes(1 << 20);
    if v >= 9 {
        p = p.with_current_leader_epoch(5);
    }
    if v >= 12 {
        p = p.with_last_fetched_epoch(4);
    }
    if v >= 5 {
        p = p.with_log_start_offset(0);
    }
    if v >= 17 {
        p = p.with_replica_directory_id(TOPIC_ID);
    }
    if v >= 18 {
        p = p.with_high_watermark(42);
    }
    let mut t = FetchTopic::default().with_partitions(vec![p.clone(), p.with_partition(4)]);
    t = if v <= 12 {
        t.with_topic(topic("orders"))
    } else {
        t.with_topic_id(TOPIC_ID)
    };
    let mut r = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_isolation_level(1)
        .with_topics(vec![t.clone(), t]);
    if v <= 14 {
        r = r.with_replica_id(BrokerId(-1));
    } else {
        r = r.with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(2))
                .with_replica_epoch(9),
        );
    }
    if v >= 7 {
        let mut f = ForgottenTopic::default().with_partitions(vec![1, 2, 3]);
        f = if v <= 12 {
            f.with_topic(topic("old"))
        } else {
            f.with_topic_id(TOPIC_ID)
        };
        r = r
            .with_session_id(12)
            .with_session_epoch(3)
            .with_forgotten_topics_data(vec![f]);
    }
    if v >= 11 {
        r = r.with_rack_id(s("rack-a"));
    }
    if v >= 12 {
        r = r.with_cluster_id(Some(s("cluster-1")));
    }
    r
}

pub fn metadata(v: i16) -> MetadataRequest {
    let mut t = MetadataRequestTopic::default().with_name(Some(topic("orders")));
    if v >= 10 {
        t = t.with_topic_id(TOPIC_ID);
    }
    let mut r = MetadataRequest::default().with_topics(Some(vec![t]));
    if v >= 4 {
        r = r.with_allow_auto_topic_creation(false);
    }
    if v >= 8 {
        r = r.with_include_topic_authorized_operations(true);
    }
    if v >= 12 {
        r = r.with_unknown_tagged_field(100, Bytes::from_static(b"future"));
    }
    r
}

pub fn offset_commit(v: i16) -> OffsetCommitRequest {
    let mut p = OffsetCommitRequestPartition::default()
        .with_partition_index(0)
        .with_committed_offset(10)
        .with_committed_metadata(Some(s("meta")));
    if v >= 6 {
        p = p.with_committed_leader_epoch(2);
    }
    let mut r = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("g1")))
        .with_generation_id_or_member_epoch(3)
        .with_member_id(s("m1"))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic("orders"))
            .with_partitions(vec![
                p.clone(),
                p.with_partition_index(1).with_committed_metadata(None),
            ])]);
    if v >= 7 {
        r = r.with_group_instance_id(Some(s("inst")));
    }
    if v <= 4 {
        r = r.with_retention_time_ms(1000);
    }
    r
}

pub fn offset_fetch(v: i16) -> OffsetFetchRequest {
    let r = OffsetFetchRequest::default();
    if v <= 7 {
        let r = r.with_group_id(GroupId(s("g1"))).with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(topic("orders"))
                .with_partition_indexes(vec![0, 1]),
        ]));
        return if v >= 7 {
            r.with_require_stable(true)
        } else {
            r
        };
    }
    let mut g = OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(s("g1")))
        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
            .with_name(topic("orders"))
            .with_partition_indexes(vec![0, 1, 2])]));
    if v >= 9 {
        g = g.with_member_id(Some(s("m1"))).with_member_epoch(4);
    }
    r.with_groups(vec![
        g,
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("g2")))
            .with_topics(None),
    ])
    .with_require_stable(true)
}

pub fn join_group(v: i16) -> JoinGroupRequest {
    let mut r = JoinGroupRequest::default()
        .with_group_id(GroupId(s("g1")))
        .with_session_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"\x00\x01meta"))]);
    if v >= 1 {
        r = r.with_rebalance_timeout_ms(20_000);
    }
    if v >= 5 {
        r = r.with_group_instance_id(Some(s("inst")));
    }
    if v >= 8 {
        r = r.with_reason(Some(s("rejoin")));
    }
    r
}

pub fn sync_group(v: i16) -> SyncGroupRequest {
    let mut r = SyncGroupRequest::default()
        .with_group_id(GroupId(s("g1")))
        .with_generation_id(2)
        .with_member_id(s("m1"))
        .with_assignments(vec![SyncGroupRequestAssignment::default()
            .with_member_id(s("m1"))
            .with_assignment(Bytes::from_static(b"assign"))]);
    if v >= 3 {
        r = r.with_group_instance_id(Some(s("inst")));
    }
    if v >= 5 {
        r = r
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")));
    }
    r
}

pub fn create_topics(_v: i16) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic("orders"))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(vec![BrokerId(1), BrokerId(2)])])
            .with_configs(vec![
                CreatableTopicConfig::default()
                    .with_name(s("cleanup.policy"))
                    .with_value(Some(s("compact"))),
                CreatableTopicConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(None),
            ])])
        .with_timeout_ms(5000)
        .with_validate_only(true)
}

pub fn api_versions(v: i16) -> ApiVersionsRequest {
    let r = ApiVersionsRequest::default();
    if v >= 3 {
        r.with_client_software_name(s("kavka-test"))
            .with_client_software_version(s("1.0"))
    } else {
        r
    }
}

pub fn list_offsets(v: i16) -> ListOffsetsRequest {
    let mut p = ListOffsetsPartition::default()
        .with_partition_index(0)
        .with_timestamp(-1);
    if v >= 4 {
        p = p.with_current_leader_epoch(3);
    }
    let mut r = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic("orders"))
            .with_partitions(vec![p])]);
    if v >= 2 {
        r = r.with_isolation_level(1);
    }
    if v >= 10 {
        r = r.with_timeout_ms(1000);
    }
    r
}

pub fn delete_groups(_v: i16) -> DeleteGroupsRequest {
    DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("a")), GroupId(s("b"))])
}

pub fn broker_heartbeat(v: i16) -> BrokerHeartbeatRequest {
    let r = BrokerHeartbeatRequest::default()
        .with_broker_id(BrokerId(1))
        .with_broker_epoch(5)
        .with_current_metadata_offset(100);
    if v >= 1 {
        r.with_offline_log_dirs(vec![TOPIC_ID, Uuid::from_u128(7)])
    } else {
        r
    }
}

/// Populated frames of the main APIs at every common version, labelled.
pub fn populated_frames() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    macro_rules! push_populated {
        ($($t:ident => $build:ident),* $(,)?) => {$(
            for v in versions::<$t>() {
                let f = frame(&$build(v), v, 9)
                    .unwrap_or_else(|e| panic!("{} v{v}: {e}", stringify!($t)));
                out.push((format!("{} v{v} populated", stringify!($t)), f));
            }
        )*};
    }
    push_populated!(
        ProduceRequest => produce,
        FetchRequest => fetch,
        MetadataRequest => metadata,
        OffsetCommitRequest => offset_commit,
        OffsetFetchRequest => offset_fetch,
        JoinGroupRequest => join_group,
        SyncGroupRequest => sync_group,
        CreateTopicsRequest => create_topics,
        ApiVersionsRequest => api_versions,
        ListOffsetsRequest => list_offsets,
        DeleteGroupsRequest => delete_groups,
        BrokerHeartbeatRequest => broker_heartbeat,
    );
    out
}
