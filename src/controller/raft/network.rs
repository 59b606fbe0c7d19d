//! The transport of the metadata Raft group: openraft's RPCs (AppendEntries, Vote, InstallSnapshot)
//! carried between controllers over their controller listeners.
//!
//! A Raft RPC is an ordinary Kafka-framed request (4-byte size, request header v1) under the Kavka-private
//! API key [`RAFT_RPC_API_KEY`], so it shares the controller listener and its frame-size limit with the
//! Kafka APIs controllers serve. The body is the JSON encoding of openraft's own (serde) request types
//! together with the node id the sender means to reach: a node answers only RPCs addressed to it, because
//! openraft's leader cannot survive hearing its own voice through a misconfigured address.
//! Only controllers accept this key, and broker-only nodes on their inter-broker listener (they follow the
//! log as openraft learners, Kafka's observers; see `dispatch::handle_frame`). It is never advertised.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::types::{ControllerNode, MetadataRaft, MetadataRaftConfig};
use crate::controller::connection::FramedConnection;

/// The API key of a Raft RPC frame. Outside Kafka's range (Kafka's keys are below 100), so no Kafka client
/// or broker ever sends it by accident.
pub const RAFT_RPC_API_KEY: i16 = 10_000;
/// Largest Raft RPC frame read, either way: a snapshot chunk (openraft's default 3 MiB) or a batch of
/// metadata entries, JSON-encoded, with room to spare.
pub const MAX_RAFT_FRAME: usize = 64 * 1024 * 1024;
/// Largest metadata snapshot a controller accepts.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;
/// Bytes of the request header v1 that precedes the body: key, version, correlation id, null client id.
const REQUEST_HEADER_LEN: usize = 10;

type NodeId = u64;
type Rpc<E> = RPCError<NodeId, ControllerNode, E>;

/// An RPC and the node it is meant for.
#[derive(Debug, Serialize, Deserialize)]
struct RaftRpcFrame {
    target: NodeId,
    rpc: RaftRpc,
}

#[derive(Debug, Serialize, Deserialize)]
enum RaftRpc {
    AppendEntries(AppendEntriesRequest<MetadataRaftConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<MetadataRaftConfig>),
    /// A broker-only node asks the active controller to replicate the log to it (as a learner).
    AddObserver {
        node_id: NodeId,
        node: ControllerNode,
    },
}

#[derive(Debug, Serialize, Deserialize)]
enum RaftRpcReply {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    AddObserver(Result<(), String>),
    /// The request needs the active controller; this node is not it.
    NotLeader {
        leader: Option<NodeId>,
    },
    /// The frame reached a node other than the one it was addressed to.
    WrongNode {
        this_node: NodeId,
    },
    /// The receiver could not decode the frame.
    Malformed {
        reason: String,
    },
}

/// Why a Raft RPC frame could not be answered; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum RaftRpcError {
    #[error("Raft RPC frame is shorter than its header")]
    Short,
    #[error("Raft RPC frame carries a client id; controllers send none")]
    UnexpectedClientId,
}

/// Serves one Raft RPC frame (the whole frame after its size prefix) on controller `this_node` and returns
/// the response frame (size prefix included).
pub async fn serve_rpc(
    frame: &[u8],
    raft: &MetadataRaft,
    this_node: NodeId,
) -> Result<Bytes, RaftRpcError> {
    if frame.len() < REQUEST_HEADER_LEN {
        return Err(RaftRpcError::Short);
    }
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    if i16::from_be_bytes([frame[8], frame[9]]) != -1 {
        return Err(RaftRpcError::UnexpectedClientId);
    }
    let reply = match serde_json::from_slice::<RaftRpcFrame>(&frame[REQUEST_HEADER_LEN..]) {
        Err(e) => RaftRpcReply::Malformed {
            reason: e.to_string(),
        },
        Ok(request) if request.target != this_node => {
            tracing::warn!(
                this_node,
                target = request.target,
                "Raft RPC addressed to another node: check controller.quorum.voters"
            );
            RaftRpcReply::WrongNode { this_node }
        }
        Ok(request) => match request.rpc {
            RaftRpc::AppendEntries(rpc) => {
                RaftRpcReply::AppendEntries(raft.append_entries(rpc).await)
            }
            RaftRpc::Vote(rpc) => RaftRpcReply::Vote(raft.vote(rpc).await),
            // openraft writes a chunk at its offset into an in-memory buffer: a far offset would
            // allocate without bound.
            RaftRpc::InstallSnapshot(rpc)
                if rpc.offset.saturating_add(rpc.data.len() as u64) > MAX_SNAPSHOT_BYTES =>
            {
                RaftRpcReply::Malformed {
                    reason: format!(
                        "snapshot chunk at offset {} exceeds the {MAX_SNAPSHOT_BYTES}-byte limit",
                        rpc.offset
                    ),
                }
            }
            RaftRpc::InstallSnapshot(rpc) => {
                RaftRpcReply::InstallSnapshot(raft.install_snapshot(rpc).await)
            }
            RaftRpc::AddObserver { node_id, node } => {
                add_observer(raft, this_node, node_id, node).await
            }
        },
    };
    // Serializing openraft's plain data types cannot fail; a failure would be a bug worth a loud reply.
    let json = serde_json::to_vec(&reply).unwrap_or_else(|e| {
        serde_json::to_vec(&RaftRpcReply::Malformed {
            reason: format!("cannot encode the reply: {e}"),
        })
        .unwrap_or_default()
    });
    let mut frame = BytesMut::with_capacity(8 + json.len());
    frame.put_i32((4 + json.len()) as i32);
    frame.put_i32(correlation_id);
    frame.put_slice(&json);
    Ok(frame.freeze())
}

/// Adds a broker-only node as a learner, if this node leads the quorum. A voter's id is refused: openraft
/// would otherwise take the new address for that voter.
async fn add_observer(
    raft: &MetadataRaft,
    this_node: NodeId,
    node_id: NodeId,
    node: ControllerNode,
) -> RaftRpcReply {
    let metrics = raft.metrics().borrow().clone();
    if metrics.current_leader != Some(this_node) {
        return RaftRpcReply::NotLeader {
            leader: metrics.current_leader,
        };
    }
    if metrics
        .membership_config
        .membership()
        .voter_ids()
        .any(|v| v == node_id)
    {
        return RaftRpcReply::AddObserver(Err(format!(
            "node {node_id} is a controller (a voter of the metadata quorum); a broker-only node needs its own node.id"
        )));
    }
    let known = metrics
        .membership_config
        .nodes()
        .any(|(id, n)| *id == node_id && *n == node);
    if known {
        return RaftRpcReply::AddObserver(Ok(()));
    }
    match raft.add_learner(node_id, node.clone(), false).await {
        Ok(_) => {
            tracing::info!(node_id, address = %node, "broker-only node follows the metadata log");
            RaftRpcReply::AddObserver(Ok(()))
        }
        Err(e) => RaftRpcReply::AddObserver(Err(e.to_string())),
    }
}

/// Asks the voters, the active controller first once known, to replicate the metadata log to this
/// broker-only node at `node` (its inter-broker listener). Errors say why no voter accepted.
pub async fn join_as_observer(
    voters: &std::collections::BTreeMap<NodeId, ControllerNode>,
    node_id: NodeId,
    node: &ControllerNode,
) -> Result<(), String> {
    let mut target = voters.keys().next().copied();
    let mut tried = std::collections::BTreeSet::new();
    let mut last_error = String::from("no controller in controller.quorum.voters");
    while let Some(voter) = target {
        tried.insert(voter);
        let Some(address) = voters.get(&voter) else {
            break;
        };
        let mut client = ControllerClient {
            target: voter,
            connection: FramedConnection::new(address.to_string(), MAX_RAFT_FRAME),
            next_correlation_id: 0,
            reachable: None,
        };
        let rpc = RaftRpc::AddObserver {
            node_id,
            node: node.clone(),
        };
        let next_untried = voters.keys().copied().find(|v| !tried.contains(v));
        target = match client
            .exchange(rpc, &RPCOption::new(Duration::from_secs(10)))
            .await
        {
            Ok(RaftRpcReply::AddObserver(Ok(()))) => return Ok(()),
            Ok(RaftRpcReply::AddObserver(Err(e))) => return Err(e),
            Ok(RaftRpcReply::NotLeader { leader: Some(l) }) if !tried.contains(&l) => Some(l),
            Ok(other) => {
                last_error = format!("controller {voter}: {other:?}");
                next_untried
            }
            Err(e) => {
                last_error = format!("controller {voter} at {address}: {e}");
                next_untried
            }
        };
    }
    Err(last_error)
}

/// Creates the clients openraft uses to reach the other controllers.
#[derive(Debug, Clone, Default)]
pub struct ControllerNetwork;

impl RaftNetworkFactory<MetadataRaftConfig> for ControllerNetwork {
    type Network = ControllerClient;

    async fn new_client(&mut self, target: NodeId, node: &ControllerNode) -> ControllerClient {
        // Connecting happens on first use: openraft creates clients for nodes that may be down.
        ControllerClient {
            target,
            connection: FramedConnection::new(node.to_string(), MAX_RAFT_FRAME),
            next_correlation_id: 0,
            reachable: None,
        }
    }
}

/// One controller's connection to another; openraft drives it one RPC at a time.
pub struct ControllerClient {
    target: NodeId,
    connection: FramedConnection,
    next_correlation_id: i32,
    /// Whether the last RPC got through: a change is logged once, not every retry.
    reachable: Option<bool>,
}

impl ControllerClient {
    /// Sends `rpc` and waits for its reply within the RPC's time limit. Any transport failure drops the
    /// connection (the next call reconnects) and reports the target unreachable, so openraft backs off.
    async fn call(
        &mut self,
        rpc: RaftRpc,
        option: &RPCOption,
    ) -> Result<RaftRpcReply, Unreachable> {
        let result = self.exchange(rpc, option).await;
        let reachable = result.is_ok();
        if self.reachable != Some(reachable) {
            match &result {
                Ok(_) => {
                    tracing::info!(controller = self.target, address = %self.connection.address(), "controller reachable")
                }
                Err(e) => {
                    tracing::warn!(controller = self.target, address = %self.connection.address(), error = %e, "controller unreachable")
                }
            }
            self.reachable = Some(reachable);
        }
        result
    }

    async fn exchange(
        &mut self,
        rpc: RaftRpc,
        option: &RPCOption,
    ) -> Result<RaftRpcReply, Unreachable> {
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let correlation_id = self.next_correlation_id;
        let body = serde_json::to_vec(&RaftRpcFrame {
            target: self.target,
            rpc,
        })
        .map_err(|e| Unreachable::new(&e))?;
        let mut frame = BytesMut::with_capacity(REQUEST_HEADER_LEN + body.len());
        frame.put_i16(RAFT_RPC_API_KEY);
        frame.put_i16(0);
        frame.put_i32(correlation_id);
        frame.put_i16(-1);
        frame.put_slice(&body);
        let reply = self
            .connection
            .exchange(&frame, option.hard_ttl())
            .await
            .map_err(|e| Unreachable::new(&e))?;
        if reply.get(..4) != Some(&correlation_id.to_be_bytes()[..]) {
            self.connection.reset();
            return Err(Unreachable::new(&std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "Raft RPC reply with a wrong correlation id",
            )));
        }
        serde_json::from_slice(&reply[4..]).map_err(|e| Unreachable::new(&e))
    }

    fn unexpected<E: std::error::Error>(&self, reply: RaftRpcReply) -> Rpc<E> {
        let what = match reply {
            RaftRpcReply::WrongNode { this_node } => format!(
                "{} answered as node {this_node}, not node {}: check controller.quorum.voters",
                self.connection.address(),
                self.target
            ),
            RaftRpcReply::Malformed { reason } => {
                format!(
                    "controller {} could not decode our RPC: {reason}",
                    self.target
                )
            }
            other => format!(
                "controller {} sent a mismatched reply: {other:?}",
                self.target
            ),
        };
        RPCError::Network(NetworkError::new(&std::io::Error::other(what)))
    }
}

/// Maps openraft's API error from the remote node into the RPC error openraft expects.
fn remote<E: std::error::Error>(
    target: NodeId,
    e: RaftError<NodeId, E>,
) -> Rpc<RaftError<NodeId, E>> {
    RPCError::RemoteError(openraft::error::RemoteError::new(target, e))
}

impl RaftNetwork<MetadataRaftConfig> for ControllerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<MetadataRaftConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, Rpc<RaftError<NodeId>>> {
        match self.call(RaftRpc::AppendEntries(rpc), &option).await? {
            RaftRpcReply::AppendEntries(result) => result.map_err(|e| remote(self.target, e)),
            other => Err(self.unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<MetadataRaftConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, Rpc<RaftError<NodeId, InstallSnapshotError>>> {
        match self.call(RaftRpc::InstallSnapshot(rpc), &option).await? {
            RaftRpcReply::InstallSnapshot(result) => result.map_err(|e| remote(self.target, e)),
            other => Err(self.unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, Rpc<RaftError<NodeId>>> {
        match self.call(RaftRpc::Vote(rpc), &option).await? {
            RaftRpcReply::Vote(result) => result.map_err(|e| remote(self.target, e)),
            other => Err(self.unexpected(other)),
        }
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // A controller that is down is retried twice a second, not in a tight loop.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(500)))
    }
}
