//! The transport of the metadata Raft group: openraft's RPCs (AppendEntries, Vote, InstallSnapshot)
//! carried between controllers over their controller listeners.
//!
//! A Raft RPC is an ordinary Kafka-framed request (4-byte size, request header v1) under the Kavka-private
//! API key [`RAFT_RPC_API_KEY`], so it shares the controller listener and its frame-size limit with the
//! Kafka APIs controllers serve. The body is the JSON encoding of openraft's own (serde) request types
//! together with the node id the sender means to reach and its cluster id: a node answers only RPCs addressed
//! to it, because openraft's leader cannot survive hearing its own voice through a misconfigured address,
//! and only from its own cluster (Kafka's INCONSISTENT_CLUSTER_ID). The two membership requests
//! ([`join_quorum`]) may be sent to an address alone (`controller.quorum.bootstrap.servers`, KIP-853).
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
use crate::network::PeerSecurity;

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

/// An RPC, the node it is meant for and the sender's cluster.
#[derive(Debug, Serialize, Deserialize)]
struct RaftRpcFrame {
    /// None only for a membership request sent to a bootstrap address, whose node id the sender cannot
    /// know; whichever controller listens there answers, or names the active controller.
    target: Option<NodeId>,
    cluster_id: String,
    rpc: RaftRpc,
}

#[derive(Debug, Serialize, Deserialize)]
enum RaftRpc {
    AppendEntries(AppendEntriesRequest<MetadataRaftConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<MetadataRaftConfig>),
    /// A node that is not a voter (a broker-only node, or a controller joining a dynamic quorum) asks the
    /// active controller to replicate the log to it (as a learner).
    AddObserver {
        node_id: NodeId,
        node: ControllerNode,
    },
    /// A controller following the log as an observer asks to become a voter (KIP-853's auto-join).
    PromoteToVoter {
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
    /// The answer to `AddObserver` or `PromoteToVoter`: done, or why not.
    Membership(Result<(), String>),
    /// The request needs the active controller; this node is not it. The leader's address lets a node
    /// that only knows bootstrap addresses go straight to it.
    NotLeader {
        leader: Option<NodeId>,
        address: Option<ControllerNode>,
    },
    /// The sender belongs to another cluster.
    WrongCluster {
        cluster_id: String,
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

/// Serves one Raft RPC frame (the whole frame after its size prefix) on controller `this_node` of cluster
/// `cluster_id` and returns the response frame (size prefix included).
pub async fn serve_rpc(
    frame: &[u8],
    raft: &MetadataRaft,
    this_node: NodeId,
    cluster_id: &str,
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
        Ok(request) if request.cluster_id != cluster_id => {
            warn_rejected(format!(
                "Raft RPC from a node of cluster {} refused: this node belongs to cluster {cluster_id}",
                request.cluster_id
            ));
            RaftRpcReply::WrongCluster {
                cluster_id: cluster_id.to_string(),
            }
        }
        Ok(request) if request.target.is_some_and(|t| t != this_node) => {
            warn_rejected(format!(
                "Raft RPC addressed to node {:?} refused by node {this_node}: check controller.quorum.voters",
                request.target
            ));
            RaftRpcReply::WrongNode { this_node }
        }
        Ok(RaftRpcFrame {
            target: None,
            rpc: RaftRpc::AppendEntries(_) | RaftRpc::Vote(_) | RaftRpc::InstallSnapshot(_),
            ..
        }) => RaftRpcReply::Malformed {
            reason: "a Raft RPC must name its target node".into(),
        },
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
            RaftRpc::PromoteToVoter { node_id, node } => {
                promote_to_voter(raft, this_node, node_id, node).await
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

/// Logs why an RPC was refused, at most every few seconds: the sender retries twice a second.
fn warn_rejected(reason: String) {
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
        *last = Some(std::time::Instant::now());
        tracing::warn!("{reason}");
    }
}

/// The reply of a node that does not lead the quorum to a request only the leader can answer.
fn not_leader(metrics: &Metrics) -> RaftRpcReply {
    let leader = metrics.current_leader;
    RaftRpcReply::NotLeader {
        leader,
        address: leader.and_then(|l| {
            metrics
                .membership_config
                .nodes()
                .find(|(id, _)| **id == l)
                .map(|(_, n)| n.clone())
        }),
    }
}

type Metrics = openraft::RaftMetrics<NodeId, ControllerNode>;

fn is_voter(metrics: &Metrics, node_id: NodeId) -> bool {
    metrics
        .membership_config
        .membership()
        .voter_ids()
        .any(|v| v == node_id)
}

/// Whether the membership has `node_id` (voter or learner) at exactly `node`'s address.
fn is_member_at(metrics: &Metrics, node_id: NodeId, node: &ControllerNode) -> bool {
    metrics
        .membership_config
        .nodes()
        .any(|(id, n)| *id == node_id && n == node)
}

/// Adds a node that is not a voter as a learner, if this node leads the quorum. A voter's id is refused:
/// openraft would otherwise take the new address for that voter.
async fn add_observer(
    raft: &MetadataRaft,
    this_node: NodeId,
    node_id: NodeId,
    node: ControllerNode,
) -> RaftRpcReply {
    let metrics = raft.metrics().borrow().clone();
    if metrics.current_leader != Some(this_node) {
        return not_leader(&metrics);
    }
    if is_voter(&metrics, node_id) {
        return RaftRpcReply::Membership(Err(format!(
            "node {node_id} is a voter of the metadata quorum; another node needs its own node.id"
        )));
    }
    if is_member_at(&metrics, node_id, &node) {
        return RaftRpcReply::Membership(Ok(()));
    }
    match raft.add_learner(node_id, node.clone(), false).await {
        Ok(_) => {
            tracing::info!(node_id, address = %node, "a new observer follows the metadata log");
            RaftRpcReply::Membership(Ok(()))
        }
        Err(e) => RaftRpcReply::Membership(Err(e.to_string())),
    }
}

/// Makes an observer that has caught up with the committed log a voter, if this node leads the quorum
/// (KIP-853's AddVoter, as a controller with `controller.quorum.auto.join.enable` asks for it). A node not
/// yet following the log, or still behind, is told so and asks again later.
async fn promote_to_voter(
    raft: &MetadataRaft,
    this_node: NodeId,
    node_id: NodeId,
    node: ControllerNode,
) -> RaftRpcReply {
    let metrics = raft.metrics().borrow().clone();
    if metrics.current_leader != Some(this_node) {
        return not_leader(&metrics);
    }
    if is_voter(&metrics, node_id) {
        return RaftRpcReply::Membership(Ok(()));
    }
    if !is_member_at(&metrics, node_id, &node) {
        return RaftRpcReply::Membership(Err(format!(
            "node {node_id} at {node} does not follow the metadata log yet"
        )));
    }
    let committed = metrics.last_applied.map(|l| l.index).unwrap_or(0);
    let matched = metrics
        .replication
        .as_ref()
        .and_then(|r| r.get(&node_id).cloned().flatten())
        .map(|l| l.index);
    if matched.is_none_or(|m| m < committed) {
        // No positions in the text: the node logs each distinct answer once while it retries.
        return RaftRpcReply::Membership(Err(format!(
            "node {node_id} has not caught up with the committed metadata log yet"
        )));
    }
    let voter = std::collections::BTreeSet::from([node_id]);
    match raft
        .change_membership(openraft::ChangeMembers::AddVoterIds(voter), true)
        .await
    {
        Ok(_) => {
            tracing::info!(node_id, address = %node, "controller added as a voter of the metadata quorum");
            RaftRpcReply::Membership(Ok(()))
        }
        Err(e) => RaftRpcReply::Membership(Err(e.to_string())),
    }
}

/// A controller a node can ask to join the quorum: by id and address (`controller.quorum.voters`), or by
/// address alone (`controller.quorum.bootstrap.servers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumContact {
    pub node_id: Option<NodeId>,
    pub address: String,
}

/// What a node asks of the quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinAs {
    /// To be replicated to, as a learner (Kafka's observer).
    Observer,
    /// To vote, once it follows the log and has caught up.
    Voter,
}

/// Asks the controllers in `contacts`, the active controller first once one names it, to make node
/// `node_id` (reachable at `node`) an observer or a voter. Errors say why no controller accepted.
pub async fn join_quorum(
    contacts: &[QuorumContact],
    cluster_id: &str,
    security: PeerSecurity,
    node_id: NodeId,
    node: &ControllerNode,
    join_as: JoinAs,
) -> Result<(), String> {
    let mut target = contacts.first().cloned();
    let mut tried = std::collections::BTreeSet::new();
    let mut last_error =
        String::from("no controller to ask: set controller.quorum.bootstrap.servers");
    while let Some(contact) = target {
        tried.insert(contact.address.clone());
        let mut connection =
            RpcConnection::new(contact.address.clone(), cluster_id, security.clone());
        let rpc = match join_as {
            JoinAs::Observer => RaftRpc::AddObserver {
                node_id,
                node: node.clone(),
            },
            JoinAs::Voter => RaftRpc::PromoteToVoter {
                node_id,
                node: node.clone(),
            },
        };
        let next_untried = contacts
            .iter()
            .find(|c| !tried.contains(&c.address))
            .cloned();
        let who = match contact.node_id {
            Some(id) => format!("controller {id} at {}", contact.address),
            None => format!("controller at {}", contact.address),
        };
        target = match connection
            .exchange(
                contact.node_id,
                rpc,
                &RPCOption::new(Duration::from_secs(10)),
            )
            .await
        {
            Ok(RaftRpcReply::Membership(result)) => return result,
            Ok(RaftRpcReply::WrongCluster { cluster_id: theirs }) => {
                return Err(format!(
                    "{who} belongs to cluster {theirs}, this node to {cluster_id}: format this node with that cluster id"
                ))
            }
            Ok(RaftRpcReply::NotLeader {
                leader: Some(leader),
                address: Some(address),
            }) if !tried.contains(&address.to_string()) => Some(QuorumContact {
                node_id: Some(leader),
                address: address.to_string(),
            }),
            Ok(other) => {
                last_error = format!("{who}: {other:?}");
                next_untried
            }
            Err(e) => {
                last_error = format!("{who}: {e}");
                next_untried
            }
        };
    }
    Err(last_error)
}

/// Creates the clients openraft uses to reach the other controllers.
#[derive(Clone)]
pub struct ControllerNetwork {
    /// This node's cluster id, sent with every RPC.
    pub cluster_id: String,
    /// How to reach the controller listener (TLS, SASL). Broker-only nodes receive the log on their
    /// inter-broker listener, which must then use the same security protocol (checked at their start-up).
    pub security: PeerSecurity,
}

impl RaftNetworkFactory<MetadataRaftConfig> for ControllerNetwork {
    type Network = ControllerClient;

    async fn new_client(&mut self, target: NodeId, node: &ControllerNode) -> ControllerClient {
        // Connecting happens on first use: openraft creates clients for nodes that may be down.
        ControllerClient {
            target,
            connection: RpcConnection::new(
                node.to_string(),
                &self.cluster_id,
                self.security.clone(),
            ),
            reachable: None,
        }
    }
}

/// A connection that carries Raft RPC frames, one exchange at a time.
struct RpcConnection {
    connection: FramedConnection,
    cluster_id: String,
    next_correlation_id: i32,
}

impl RpcConnection {
    fn new(address: String, cluster_id: &str, security: PeerSecurity) -> RpcConnection {
        RpcConnection {
            connection: FramedConnection::new(address, MAX_RAFT_FRAME, security),
            cluster_id: cluster_id.to_string(),
            next_correlation_id: 0,
        }
    }

    fn address(&self) -> &str {
        self.connection.address()
    }

    /// Sends `rpc` for node `target` (None: whichever controller listens at this address) and waits for
    /// the reply within the RPC's time limit.
    async fn exchange(
        &mut self,
        target: Option<NodeId>,
        rpc: RaftRpc,
        option: &RPCOption,
    ) -> Result<RaftRpcReply, Unreachable> {
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let correlation_id = self.next_correlation_id;
        let body = serde_json::to_vec(&RaftRpcFrame {
            target,
            cluster_id: self.cluster_id.clone(),
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
}

/// One controller's connection to another; openraft drives it one RPC at a time.
pub struct ControllerClient {
    target: NodeId,
    connection: RpcConnection,
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
        let result = self
            .connection
            .exchange(Some(self.target), rpc, option)
            .await;
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

    fn unexpected<E: std::error::Error>(&self, reply: RaftRpcReply) -> Rpc<E> {
        let what = match reply {
            RaftRpcReply::WrongNode { this_node } => format!(
                "{} answered as node {this_node}, not node {}: check controller.quorum.voters",
                self.connection.address(),
                self.target
            ),
            RaftRpcReply::WrongCluster { cluster_id } => format!(
                "controller {} belongs to cluster {cluster_id}, not to this node's",
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
