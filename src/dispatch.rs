//! Dispatch: API key + version -> handler. Every frame is checked against the message schema (kavka-wire)
//! before the `kafka-protocol` decoders see it, because those pre-allocate from counts read off the wire.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseHeader, ResponseKind, SaslAuthenticateResponse,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::Encodable;
use kavka_config::BrokerConfig;

use crate::controller::raft::network::{serve_rpc, RAFT_RPC_API_KEY};
use crate::handlers;
use crate::network::ConnectionContext;
use crate::server::Broker;

/// The APIs this broker serves end to end, with the version ranges advertised in ApiVersions.
/// Produce is advertised from v0 although v0-v2 are refused on arrival (as Kafka 4 does): librdkafka
/// silently disables compression when the advertised minimum is above 0 (KAFKA-18659).
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 13),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    // Kafka 4 serves AlterConfigs v0-v2 and IncrementalAlterConfigs v0-v1.
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    // Answered by the Raft leader (the active controller); brokers forward it there, as Kafka's do.
    (ApiKey::DescribeQuorum, 0, 2),
    // librdkafka enables LZ4 only when FindCoordinator is advertised from v0 (rdkafka_feature.c).
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    // Kafka 4 removed JoinGroup v0-v1 (KIP-896).
    (ApiKey::JoinGroup, 2, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    // KIP-848, only while `consumer` is in group.coordinator.rebalance.protocols (see `enabled`).
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // Kafka 4 removed v0 of the ACL APIs (KIP-896).
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    // Advertised from v0 as Kafka 4 does: librdkafka 2.0 does not start SASL otherwise. A v0 handshake
    // (raw SASL tokens without Kafka framing after it, replaced by SaslAuthenticate in KIP-152) is refused
    // when a client sends one (`network::connection`).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
];

/// Whether the configuration enables an API: the consumer group protocol can be switched off, and then
/// is neither advertised nor served, as in Kafka.
fn enabled(api_key: ApiKey, config: &BrokerConfig) -> bool {
    match api_key {
        ApiKey::ConsumerGroupHeartbeat | ApiKey::ConsumerGroupDescribe => config
            .group_coordinator_rebalance_protocols
            .iter()
            .any(|p| p == "consumer"),
        _ => true,
    }
}

/// Lowest Produce version actually served (Kafka 4 removed v0-v2).
const MIN_SERVED_PRODUCE_VERSION: i16 = 3;

/// The per-request facts handlers need.
#[derive(Debug, Clone)]
pub struct RequestContext<'a> {
    pub connection: &'a ConnectionContext,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: Option<String>,
}

/// What the session does with a frame.
pub enum FrameOutcome {
    /// A complete, size-prefixed response.
    Respond(Bytes),
    /// acks=0 produce: the client expects no response.
    NoResponse,
    /// Close the connection; the reason is logged with the peer address.
    Close(String),
    /// Send this response, then close the connection (a failed authentication).
    RespondAndClose(Bytes, String),
}

fn supported_range(
    api_key: ApiKey,
    config: &BrokerConfig,
    conn: &ConnectionContext,
) -> Option<(i16, i16)> {
    let controller_apis: &[(ApiKey, i16, i16)] = if conn.is_controller_listener {
        CONTROLLER_LISTENER_APIS
    } else {
        &[]
    };
    SUPPORTED_APIS
        .iter()
        .chain(controller_apis)
        .find(|(k, _, _)| *k == api_key && enabled(*k, config))
        .map(|(_, min, max)| (*min, *max))
}

/// Controller APIs a broker sends the active controller: accepted only on a controller listener, never
/// advertised to clients.
const CONTROLLER_LISTENER_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::BrokerRegistration, 0, 4),
    (ApiKey::BrokerHeartbeat, 0, 1),
    (ApiKey::AlterPartition, 2, 3),
    // Client requests a broker forwards, with the client's principal (see `serve_envelope`).
    (ApiKey::Envelope, 0, 0),
];

/// Requests that change cluster metadata, and DescribeQuorum, which only the Raft leader can answer: a
/// broker relays them to the active controller when that is another node (controllers never relay what
/// reaches their controller listener, so nothing loops).
const FORWARDED_TO_CONTROLLER: &[ApiKey] = &[
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::InitProducerId,
    ApiKey::ElectLeaders,
    ApiKey::AlterPartitionReassignments,
    ApiKey::ListPartitionReassignments,
    ApiKey::DescribeQuorum,
    ApiKey::CreateAcls,
    ApiKey::DeleteAcls,
    ApiKey::AlterUserScramCredentials,
];

pub async fn handle_frame(frame: Bytes, conn: &ConnectionContext, broker: &Broker) -> FrameOutcome {
    let Some(peeked) = kavka_wire::peek_header(&frame) else {
        return FrameOutcome::Close("frame shorter than a request header".into());
    };
    // A broker-only node follows the metadata log as a learner, on its inter-broker listener.
    let raft_listener = conn.is_controller_listener
        || (!broker.config.is_controller()
            && conn.listener_name == broker.config.inter_broker_listener_name);
    if peeked.api_key == RAFT_RPC_API_KEY {
        if !raft_listener {
            return FrameOutcome::Close(
                "Raft RPC on a listener that is not a controller listener".into(),
            );
        }
        let ctx = RequestContext {
            connection: conn,
            api_version: peeked.api_version,
            correlation_id: peeked.correlation_id,
            client_id: None,
        };
        if !crate::security::authz::Authz::new(broker, &ctx)
            .allows_cluster(crate::security::acl::AclOperation::ClusterAction)
        {
            return FrameOutcome::Close(format!(
                "Raft RPC from {}, which lacks CLUSTER_ACTION on the cluster",
                conn.principal
            ));
        }
        let (raft, node_id) = (broker.quorum.raft(), broker.quorum.node_id());
        return match serve_rpc(&frame, raft, node_id, &broker.cluster_id).await {
            Ok(response) => FrameOutcome::Respond(response),
            Err(e) => FrameOutcome::Close(e.to_string()),
        };
    }
    if !conn.is_controller_listener
        && !broker
            .serving_clients
            .load(std::sync::atomic::Ordering::Acquire)
    {
        return FrameOutcome::Close("the broker is starting and does not serve clients yet".into());
    }
    let Ok(api_key) = ApiKey::try_from(peeked.api_key) else {
        return FrameOutcome::Close(format!("unknown API key {}", peeked.api_key));
    };
    let version = peeked.api_version;
    let Some((min, max)) = supported_range(api_key, &broker.config, conn) else {
        return FrameOutcome::Close(format!(
            "API {api_key:?} (key {}) is not supported by this broker",
            peeked.api_key
        ));
    };
    if api_key == ApiKey::ApiVersions && !(min..=max).contains(&version) {
        // KIP-511: answer an unknown ApiVersions version in v0 format so the client can pick a version.
        return encode_response(
            peeked.correlation_id,
            0,
            0,
            &ResponseKind::ApiVersions(handlers::api_versions::unsupported_version_response(
                broker,
            )),
        );
    }
    if !(min..=max).contains(&version)
        || (api_key == ApiKey::Produce && version < MIN_SERVED_PRODUCE_VERSION)
    {
        return FrameOutcome::Close(format!(
            "{api_key:?} version {version} is not supported (supported: {}..={max})",
            if api_key == ApiKey::Produce {
                MIN_SERVED_PRODUCE_VERSION
            } else {
                min
            }
        ));
    }
    // Schema validation, then the crate's decoders (kavka-wire: they pre-allocate from wire counts).
    let decoded = match kavka_wire::decode_request(frame.clone()) {
        Ok(decoded) => decoded,
        Err(e) => {
            return FrameOutcome::Close(format!("malformed {api_key:?} v{version} request: {e}"))
        }
    };
    if FORWARDED_TO_CONTROLLER.contains(&api_key) && !conn.is_controller_listener {
        if let Some((controller, _)) = broker.controller_channel.remote_controller() {
            match broker
                .controller_channel
                .forward(&frame, &conn.principal, conn.peer.ip())
                .await
            {
                Ok(response) => return FrameOutcome::Respond(response),
                // Answered here instead: the local controller refuses with NOT_CONTROLLER, and the
                // client retries once it has fresh metadata.
                Err(e) => {
                    tracing::warn!(api = ?api_key, controller, error = %e, "cannot forward to the active controller")
                }
            }
        }
    }
    let (header, request) = (decoded.header, decoded.request);
    let ctx = RequestContext {
        connection: conn,
        api_version: version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.as_ref().map(|s| s.to_string()),
    };
    // What only other nodes of the cluster may send: their principal needs CLUSTER_ACTION, as in Kafka.
    if CONTROLLER_LISTENER_APIS
        .iter()
        .any(|(k, _, _)| *k == api_key)
        && !crate::security::authz::Authz::new(broker, &ctx)
            .allows_cluster(crate::security::acl::AclOperation::ClusterAction)
    {
        return FrameOutcome::Close(format!(
            "{api_key:?} from {}, which lacks CLUSTER_ACTION on the cluster",
            conn.principal
        ));
    }
    let response = match request {
        RequestKind::Envelope(req) => {
            ResponseKind::Envelope(Box::pin(serve_envelope(broker, conn, req)).await)
        }
        RequestKind::ApiVersions(req) => {
            ResponseKind::ApiVersions(handlers::api_versions::handle(broker, &ctx, req))
        }
        RequestKind::BrokerRegistration(req) => ResponseKind::BrokerRegistration(
            handlers::broker_registration::handle(broker, req).await,
        ),
        RequestKind::BrokerHeartbeat(req) => {
            ResponseKind::BrokerHeartbeat(handlers::broker_heartbeat::handle(broker, req).await)
        }
        RequestKind::AlterPartition(req) => ResponseKind::AlterPartition(
            handlers::alter_partition::handle(broker, version, req).await,
        ),
        RequestKind::OffsetForLeaderEpoch(req) => ResponseKind::OffsetForLeaderEpoch(
            handlers::offset_for_leader_epoch::handle(broker, &ctx, req).await,
        ),
        RequestKind::Metadata(req) => {
            ResponseKind::Metadata(handlers::metadata::handle(broker, &ctx, req).await)
        }
        RequestKind::Produce(req) => {
            let acks = req.acks;
            let response = handlers::produce::handle(broker, &ctx, req).await;
            if acks == 0 {
                // As Kafka: an acks=0 producer hears of a failure only through its connection closing,
                // which makes it refresh metadata.
                let failed = response
                    .responses
                    .iter()
                    .flat_map(|t| t.partition_responses.iter())
                    .find(|p| p.error_code != 0);
                if let Some(p) = failed {
                    return FrameOutcome::Close(format!(
                        "acks=0 produce failed with error code {} on partition {}",
                        p.error_code, p.index
                    ));
                }
                return FrameOutcome::NoResponse;
            }
            ResponseKind::Produce(response)
        }
        RequestKind::Fetch(req) => {
            ResponseKind::Fetch(handlers::fetch::handle(broker, &ctx, req).await)
        }
        RequestKind::ListOffsets(req) => {
            ResponseKind::ListOffsets(handlers::list_offsets::handle(broker, &ctx, req).await)
        }
        RequestKind::CreateTopics(req) => {
            ResponseKind::CreateTopics(handlers::create_topics::handle(broker, &ctx, req).await)
        }
        RequestKind::DeleteTopics(req) => {
            ResponseKind::DeleteTopics(handlers::delete_topics::handle(broker, &ctx, req).await)
        }
        RequestKind::AlterPartitionReassignments(req) => ResponseKind::AlterPartitionReassignments(
            handlers::alter_partition_reassignments::handle(broker, &ctx, req).await,
        ),
        RequestKind::ListPartitionReassignments(req) => ResponseKind::ListPartitionReassignments(
            handlers::list_partition_reassignments::handle(broker, &ctx, req).await,
        ),
        RequestKind::DescribeQuorum(req) => {
            ResponseKind::DescribeQuorum(handlers::describe_quorum::handle(broker, &ctx, req).await)
        }
        RequestKind::ElectLeaders(req) => {
            ResponseKind::ElectLeaders(handlers::elect_leaders::handle(broker, &ctx, req).await)
        }
        RequestKind::CreatePartitions(req) => ResponseKind::CreatePartitions(
            handlers::create_partitions::handle(broker, &ctx, req).await,
        ),
        RequestKind::InitProducerId(req) => ResponseKind::InitProducerId(
            handlers::init_producer_id::handle(broker, &ctx, req).await,
        ),
        RequestKind::DescribeConfigs(req) => {
            ResponseKind::DescribeConfigs(handlers::describe_configs::handle(broker, &ctx, req))
        }
        RequestKind::FindCoordinator(req) => ResponseKind::FindCoordinator(
            handlers::find_coordinator::handle(broker, &ctx, req).await,
        ),
        RequestKind::JoinGroup(req) => {
            ResponseKind::JoinGroup(handlers::join_group::handle(broker, &ctx, req).await)
        }
        RequestKind::SyncGroup(req) => {
            ResponseKind::SyncGroup(handlers::sync_group::handle(broker, &ctx, req).await)
        }
        RequestKind::Heartbeat(req) => {
            ResponseKind::Heartbeat(handlers::heartbeat::handle(broker, &ctx, req))
        }
        RequestKind::LeaveGroup(req) => {
            ResponseKind::LeaveGroup(handlers::leave_group::handle(broker, &ctx, req).await)
        }
        RequestKind::OffsetCommit(req) => {
            ResponseKind::OffsetCommit(handlers::offset_commit::handle(broker, &ctx, req).await)
        }
        RequestKind::OffsetFetch(req) => {
            ResponseKind::OffsetFetch(handlers::offset_fetch::handle(broker, &ctx, req))
        }
        RequestKind::OffsetDelete(req) => {
            ResponseKind::OffsetDelete(handlers::offset_delete::handle(broker, &ctx, req).await)
        }
        RequestKind::ListGroups(req) => {
            ResponseKind::ListGroups(handlers::list_groups::handle(broker, &ctx, req))
        }
        RequestKind::ConsumerGroupHeartbeat(req) => ResponseKind::ConsumerGroupHeartbeat(
            handlers::consumer_group_heartbeat::handle(broker, &ctx, req).await,
        ),
        RequestKind::ConsumerGroupDescribe(req) => ResponseKind::ConsumerGroupDescribe(
            handlers::consumer_group_describe::handle(broker, &ctx, req),
        ),
        RequestKind::AlterConfigs(req) => {
            ResponseKind::AlterConfigs(handlers::alter_configs::handle(broker, &ctx, req).await)
        }
        RequestKind::IncrementalAlterConfigs(req) => ResponseKind::IncrementalAlterConfigs(
            handlers::incremental_alter_configs::handle(broker, &ctx, req).await,
        ),
        RequestKind::DeleteRecords(req) => {
            ResponseKind::DeleteRecords(handlers::delete_records::handle(broker, &ctx, req).await)
        }
        RequestKind::DescribeLogDirs(req) => ResponseKind::DescribeLogDirs(
            handlers::describe_log_dirs::handle(broker, &ctx, req).await,
        ),
        RequestKind::DescribeGroups(req) => {
            ResponseKind::DescribeGroups(handlers::describe_groups::handle(broker, &ctx, req))
        }
        RequestKind::DeleteGroups(req) => {
            ResponseKind::DeleteGroups(handlers::delete_groups::handle(broker, &ctx, req).await)
        }
        RequestKind::DescribeCluster(req) => {
            ResponseKind::DescribeCluster(handlers::describe_cluster::handle(broker, &ctx, req))
        }
        RequestKind::CreateAcls(req) => {
            ResponseKind::CreateAcls(handlers::create_acls::handle(broker, &ctx, req).await)
        }
        RequestKind::DescribeAcls(req) => {
            ResponseKind::DescribeAcls(handlers::describe_acls::handle(broker, &ctx, req))
        }
        // On a SASL listener the connection's authentication layer answers these; here the listener has
        // no SASL, as Kafka answers.
        RequestKind::SaslHandshake(_) => ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code()),
        ),
        RequestKind::SaslAuthenticate(_) => ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(handlers::str_bytes(format!(
                    "listener {} does not use SASL",
                    conn.listener_name
                )))),
        ),
        RequestKind::DescribeUserScramCredentials(req) => {
            ResponseKind::DescribeUserScramCredentials(
                handlers::describe_user_scram_credentials::handle(broker, &ctx, req),
            )
        }
        RequestKind::AlterUserScramCredentials(req) => ResponseKind::AlterUserScramCredentials(
            handlers::alter_user_scram_credentials::handle(broker, &ctx, req).await,
        ),
        RequestKind::DeleteAcls(req) => {
            ResponseKind::DeleteAcls(handlers::delete_acls::handle(broker, &ctx, req).await)
        }
        // Unreachable while every SUPPORTED_APIS entry has an arm (a unit test checks that).
        _ => return FrameOutcome::Close(format!("no handler for advertised API {api_key:?}")),
    };
    encode_response(
        header.correlation_id,
        api_key.response_header_version(version),
        version,
        &response,
    )
}

/// Handles the client request a broker forwarded in an Envelope as if the client had sent it here, with
/// the client's principal and address (the forwarding node was authorized for CLUSTER_ACTION already).
/// Only requests brokers forward are accepted inside.
async fn serve_envelope(
    broker: &Broker,
    conn: &ConnectionContext,
    request: kafka_protocol::messages::EnvelopeRequest,
) -> kafka_protocol::messages::EnvelopeResponse {
    use kafka_protocol::messages::EnvelopeResponse;
    let refuse = |error: ResponseError| EnvelopeResponse::default().with_error_code(error.code());
    let inner_key = kavka_wire::peek_header(&request.request_data)
        .and_then(|h| ApiKey::try_from(h.api_key).ok());
    if !inner_key.is_some_and(|k| FORWARDED_TO_CONTROLLER.contains(&k)) {
        return refuse(ResponseError::InvalidRequest);
    }
    let principal = request
        .request_principal
        .as_deref()
        .and_then(|p| std::str::from_utf8(p).ok())
        .filter(|p| p.contains(':'));
    let address = match request.client_host_address.len() {
        4 => <[u8; 4]>::try_from(&request.client_host_address[..])
            .ok()
            .map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(&request.client_host_address[..])
            .ok()
            .map(std::net::IpAddr::from),
        _ => None,
    };
    let (Some(principal), Some(address)) = (principal, address) else {
        return refuse(ResponseError::PrincipalDeserializationFailure);
    };
    let client = ConnectionContext {
        peer: std::net::SocketAddr::new(address, 0),
        principal: principal.to_string(),
        ..conn.clone()
    };
    match handle_frame(request.request_data, &client, broker).await {
        FrameOutcome::Respond(response) => {
            EnvelopeResponse::default().with_response_data(Some(response.slice(4..)))
        }
        FrameOutcome::NoResponse | FrameOutcome::Close(_) | FrameOutcome::RespondAndClose(..) => {
            refuse(ResponseError::InvalidRequest)
        }
    }
}

pub(crate) fn encode_response(
    correlation_id: i32,
    header_version: i16,
    version: i16,
    response: &ResponseKind,
) -> FrameOutcome {
    // Fetch responses carry megabytes of records: size the buffer once instead of growing it by doubling
    // (each growth copies everything encoded so far).
    let body_hint = match response {
        ResponseKind::Fetch(fetch) => fetch.compute_size(version).unwrap_or(0),
        _ => 0,
    };
    let mut buf = BytesMut::with_capacity(256 + body_hint);
    buf.put_i32(0); // size, patched below
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    if let Err(e) = header.encode(&mut buf, header_version) {
        return FrameOutcome::Close(format!("cannot encode response header: {e}"));
    }
    if let Err(e) = response.encode(&mut buf, version) {
        return FrameOutcome::Close(format!("cannot encode response: {e}"));
    }
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    FrameOutcome::Respond(buf.freeze())
}

/// The ApiVersions entries advertised to clients.
pub fn advertised_api_versions(
    config: &BrokerConfig,
) -> Vec<kafka_protocol::messages::api_versions_response::ApiVersion> {
    SUPPORTED_APIS
        .iter()
        .filter(|(key, _, _)| enabled(*key, config))
        .map(|(key, min, max)| {
            kafka_protocol::messages::api_versions_response::ApiVersion::default()
                .with_api_key(*key as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use std::sync::Arc;

    fn default_request(key: ApiKey, version: i16) -> RequestKind {
        match key {
            ApiKey::Produce => RequestKind::Produce(ProduceRequest::default().with_acks(1)),
            ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default()),
            ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
            ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(
                kafka_protocol::messages::OffsetForLeaderEpochRequest::default(),
            ),
            ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
            ApiKey::ApiVersions => RequestKind::ApiVersions(
                ApiVersionsRequest::default()
                    .with_client_software_name(crate::handlers::str_bytes("test"))
                    .with_client_software_version(crate::handlers::str_bytes("1")),
            ),
            ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
            ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
            ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
            ApiKey::DescribeConfigs => {
                RequestKind::DescribeConfigs(DescribeConfigsRequest::default())
            }
            ApiKey::ElectLeaders => RequestKind::ElectLeaders(ElectLeadersRequest::default()),
            ApiKey::AlterPartitionReassignments => RequestKind::AlterPartitionReassignments(
                AlterPartitionReassignmentsRequest::default(),
            ),
            ApiKey::ListPartitionReassignments => {
                RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default())
            }
            ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(DescribeQuorumRequest::default()),
            ApiKey::CreatePartitions => {
                RequestKind::CreatePartitions(CreatePartitionsRequest::default())
            }
            ApiKey::DescribeCluster => {
                RequestKind::DescribeCluster(DescribeClusterRequest::default())
            }
            ApiKey::FindCoordinator if version >= 4 => RequestKind::FindCoordinator(
                FindCoordinatorRequest::default()
                    .with_coordinator_keys(vec![crate::handlers::str_bytes("g")]),
            ),
            ApiKey::FindCoordinator => RequestKind::FindCoordinator(
                FindCoordinatorRequest::default().with_key(crate::handlers::str_bytes("g")),
            ),
            ApiKey::OffsetCommit => RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(GroupId(crate::handlers::str_bytes("g")))
                    .with_generation_id_or_member_epoch(-1),
            ),
            ApiKey::OffsetFetch if version >= 8 => {
                RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(crate::handlers::str_bytes("g"))),
                ]))
            }
            ApiKey::OffsetFetch => RequestKind::OffsetFetch(
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(crate::handlers::str_bytes("g"))),
            ),
            ApiKey::OffsetDelete => RequestKind::OffsetDelete(OffsetDeleteRequest::default()),
            ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
            ApiKey::DescribeGroups => RequestKind::DescribeGroups(DescribeGroupsRequest::default()),
            ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
            ApiKey::DeleteRecords => RequestKind::DeleteRecords(DeleteRecordsRequest::default()),
            ApiKey::DescribeLogDirs => {
                RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default())
            }
            ApiKey::IncrementalAlterConfigs => {
                RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default())
            }
            ApiKey::ConsumerGroupHeartbeat => {
                RequestKind::ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest::default())
            }
            ApiKey::ConsumerGroupDescribe => {
                RequestKind::ConsumerGroupDescribe(ConsumerGroupDescribeRequest::default())
            }
            ApiKey::DeleteGroups => RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
            ApiKey::CreateAcls => RequestKind::CreateAcls(CreateAclsRequest::default()),
            ApiKey::DescribeAcls => RequestKind::DescribeAcls(DescribeAclsRequest::default()),
            ApiKey::DeleteAcls => RequestKind::DeleteAcls(DeleteAclsRequest::default()),
            ApiKey::SaslHandshake => RequestKind::SaslHandshake(SaslHandshakeRequest::default()),
            ApiKey::SaslAuthenticate => {
                RequestKind::SaslAuthenticate(SaslAuthenticateRequest::default())
            }
            ApiKey::DescribeUserScramCredentials => RequestKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsRequest::default(),
            ),
            ApiKey::AlterUserScramCredentials => {
                RequestKind::AlterUserScramCredentials(AlterUserScramCredentialsRequest::default())
            }
            // Unknown members get an immediate error answer (no waiting on a rebalance).
            ApiKey::JoinGroup => RequestKind::JoinGroup(
                JoinGroupRequest::default()
                    .with_group_id(GroupId(crate::handlers::str_bytes("g")))
                    .with_member_id(crate::handlers::str_bytes("unknown"))
                    .with_session_timeout_ms(10_000)
                    .with_protocol_type(crate::handlers::str_bytes("consumer")),
            ),
            ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default()),
            ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
            ApiKey::LeaveGroup if version >= 3 => {
                RequestKind::LeaveGroup(LeaveGroupRequest::default().with_members(vec![
                    leave_group_request::MemberIdentity::default()
                        .with_member_id(crate::handlers::str_bytes("x")),
                ]))
            }
            ApiKey::LeaveGroup => RequestKind::LeaveGroup(
                LeaveGroupRequest::default().with_member_id(crate::handlers::str_bytes("x")),
            ),
            other => panic!("test has no default request for advertised API {other:?}"),
        }
    }

    fn frame(key: ApiKey, version: i16) -> Bytes {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .encode(&mut buf, key.request_header_version(version))
            .expect("header");
        default_request(key, version)
            .encode(&mut buf, version)
            .expect("body");
        buf.freeze()
    }

    /// Every advertised API, at its lowest and highest advertised version, is answered (never a closed
    /// connection): an API in SUPPORTED_APIS without a dispatch arm fails here.
    #[tokio::test(flavor = "multi_thread")]
    async fn every_advertised_api_is_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir_str = dir.path().display().to_string();
        let config = kavka_config::BrokerConfig::from_pairs(&[("log.dirs".to_string(), dir_str)])
            .expect("config")
            .config;
        let broker_config = config.clone();
        let config = Arc::new(config);
        let quorum = Arc::new(
            crate::controller::quorum::MetadataQuorum::start(
                dir.path(),
                "test-cluster",
                Default::default(),
                0,
                [(0, Default::default())].into(),
                crate::controller::quorum::QuorumTiming {
                    election_timeout: std::time::Duration::from_millis(1000),
                },
            )
            .await
            .expect("quorum"),
        );
        quorum
            .wait_for_leader(std::time::Duration::from_secs(10))
            .await
            .expect("leader");
        let controller = crate::metadata::Controller::new(
            0,
            crate::metadata::TopicDefaults {
                num_partitions: 1,
                replication_factor: 1,
                delete_topic_enable: true,
                min_insync_replicas: 1,
            },
            Arc::new(crate::controller::quorum::QuorumJournal::new(
                quorum.clone(),
            )),
        );
        let broker = Broker {
            config: config.clone(),
            node_id: 0,
            cluster_id: "test".into(),
            controller: Arc::new(controller),
            controller_channel: crate::controller::channel::ControllerChannel::new(quorum.clone()),
            lifecycle_channel: crate::controller::channel::ControllerChannel::new(quorum.clone()),
            isr_channel: crate::controller::channel::ControllerChannel::new(quorum.clone()),
            lifecycle: crate::cluster::lifecycle::BrokerLifecycle::new(Vec::new(), -1),
            quorum,
            replicas: Arc::new(crate::replica::ReplicaManager::new(0, config)),
            groups: Default::default(),
            membership: crate::coordinator::classic::ClassicGroups::new(
                crate::server::group_settings(&broker_config),
            ),
            consumers: crate::coordinator::consumer::ConsumerGroups::new(
                crate::server::consumer_group_settings(&broker_config),
            ),
            group_writes: Default::default(),
            coordinated: Default::default(),
            serving_clients: std::sync::atomic::AtomicBool::new(true),
            effective: Arc::new(std::sync::RwLock::new(Arc::new(broker_config.clone()))),
            published_broker_configs: Default::default(),
            tls: Default::default(),
            authorizer: Default::default(),
            bootstrap_scram: Default::default(),
        };
        let conn = ConnectionContext {
            peer: "127.0.0.1:1".parse().expect("addr"),
            listener_name: "PLAINTEXT".into(),
            advertised: Arc::new(("127.0.0.1".into(), 9092)),
            is_controller_listener: false,
            principal: crate::security::principal::ANONYMOUS.into(),
        };
        for (key, min, max) in SUPPORTED_APIS {
            let min = if *key == ApiKey::Produce {
                MIN_SERVED_PRODUCE_VERSION
            } else {
                *min
            };
            for version in [min, *max] {
                match handle_frame(frame(*key, version), &conn, &broker).await {
                    FrameOutcome::Respond(bytes) => {
                        assert_eq!(&bytes[4..8], &7i32.to_be_bytes(), "{key:?} v{version}")
                    }
                    FrameOutcome::NoResponse => panic!("{key:?} v{version}: no response"),
                    FrameOutcome::RespondAndClose(..) => panic!("{key:?} v{version}: closed"),
                    FrameOutcome::Close(reason) => panic!("{key:?} v{version}: closed: {reason}"),
                }
            }
        }
        // Produce v0-v2 are advertised for librdkafka's sake but refused, as Kafka 4 does.
        // The codec cannot write v2, so take a v3 frame (same header layout) and relabel it.
        let mut v2 = BytesMut::from(&frame(ApiKey::Produce, 3)[..]);
        v2[2..4].copy_from_slice(&2i16.to_be_bytes());
        assert!(matches!(
            handle_frame(v2.freeze(), &conn, &broker).await,
            FrameOutcome::Close(_)
        ));
    }
    use kafka_protocol::protocol::VersionRange;

    fn crate_range(key: ApiKey) -> VersionRange {
        key.valid_versions()
    }

    #[test]
    fn advertised_versions_are_within_what_the_codec_supports() {
        for (key, min, max) in SUPPORTED_APIS {
            let range = crate_range(*key);
            let min = if *key == ApiKey::Produce {
                MIN_SERVED_PRODUCE_VERSION
            } else {
                *min
            };
            assert!(
                range.min <= min && *max <= range.max,
                "{key:?} {min}..={max} outside codec range {range:?}"
            );
            let schema = kavka_wire::schema_versions(*key as i16)
                .unwrap_or_else(|| panic!("no schema for {key:?}"));
            assert!(
                schema.0 <= min && *max <= schema.1,
                "{key:?} outside schema range"
            );
        }
    }
}
