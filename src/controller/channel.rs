//! How a broker reaches the active controller: Kafka requests sent over the controller listener of
//! whichever voter leads the metadata quorum.
//!
//! Admin requests a client sends to any broker (CreateTopics, DeleteTopics, ...) are relayed here as they
//! came, frame for frame, and the controller's response goes back to the client unchanged, which is what
//! Kafka's broker-to-controller forwarding amounts to. Requests the broker makes on its own behalf (topic
//! auto-creation) are encoded here with the `kafka-protocol` types.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::EnvelopeRequest;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request};
use tokio::sync::Mutex;

use super::connection::{decode_response, encode_request, FramedConnection};
use super::quorum::MetadataQuorum;
use super::raft::ControllerNode;

/// Largest response read from the controller.
const MAX_RESPONSE: usize = 100 * 1024 * 1024;
/// How long one exchange with the controller may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request could not be exchanged with the active controller.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("no active controller is known")]
    NoController,
    #[error("this node is the active controller")]
    IsController,
    #[error("controller {node} at {address}: {source}")]
    Io {
        node: u64,
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("controller {node} did not answer within {timeout:?}")]
    Timeout { node: u64, timeout: Duration },
    #[error("encoding or decoding a controller request: {0}")]
    Codec(String),
    #[error("the controller refused the forwarded request with error code {0} (the forwarding node's principal needs CLUSTER_ACTION on the cluster, e.g. through super.users)")]
    Refused(i16),
}

/// A broker's connection to the active controller; one exchange at a time (admin traffic is light).
pub struct ControllerChannel {
    quorum: Arc<MetadataQuorum>,
    /// The connection and the controller node it goes to.
    connection: Mutex<Option<(u64, FramedConnection)>>,
    correlation: AtomicI32,
    /// How long one exchange may take.
    timeout: Duration,
}

impl ControllerChannel {
    pub fn new(quorum: Arc<MetadataQuorum>) -> ControllerChannel {
        ControllerChannel::with_timeout(quorum, EXCHANGE_TIMEOUT)
    }

    /// A channel whose exchanges give up after `timeout`: heartbeats must not wait on a controller that
    /// hangs for longer than the broker's session lasts.
    pub fn with_timeout(quorum: Arc<MetadataQuorum>, timeout: Duration) -> ControllerChannel {
        ControllerChannel {
            quorum,
            connection: Mutex::new(None),
            correlation: AtomicI32::new(0),
            timeout,
        }
    }

    /// The active controller when it is another node: the one requests must be sent to.
    pub fn remote_controller(&self) -> Option<(u64, ControllerNode)> {
        let leader = self.quorum.leader()?;
        if leader == self.quorum.node_id() {
            return None;
        }
        let metrics = self.quorum.raft().metrics();
        let metrics = metrics.borrow();
        let node = metrics
            .membership_config
            .nodes()
            .find(|(id, _)| **id == leader)?
            .1
            .clone();
        Some((leader, node))
    }

    /// Relays a client's request frame (without its size prefix) and returns the controller's response
    /// frame (with its size prefix), both untouched: the correlation id is the client's. The frame travels
    /// in an Envelope (key 58) with the client's principal and address, so that the controller authorizes
    /// the client, not this broker (as Kafka's forwarding does).
    pub async fn forward(
        &self,
        frame: &[u8],
        principal: &str,
        client: std::net::IpAddr,
    ) -> Result<Bytes, ChannelError> {
        let envelope = EnvelopeRequest::default()
            .with_request_data(Bytes::copy_from_slice(frame))
            .with_request_principal(Some(Bytes::copy_from_slice(principal.as_bytes())))
            .with_client_host_address(match client {
                std::net::IpAddr::V4(v4) => Bytes::copy_from_slice(&v4.octets()),
                std::net::IpAddr::V6(v6) => Bytes::copy_from_slice(&v6.octets()),
            });
        let answer = self.request(&envelope, 0).await?;
        if answer.error_code != 0 {
            return Err(ChannelError::Refused(answer.error_code));
        }
        let response = answer.response_data.unwrap_or_default();
        // The request header starts with key, version and then the correlation id; the response with it.
        if frame.get(4..8) != response.get(..4) {
            self.reset().await;
            return Err(ChannelError::Codec(
                "the controller's response does not match the forwarded request".into(),
            ));
        }
        let mut framed = BytesMut::with_capacity(response.len() + 4);
        framed.put_i32(response.len() as i32);
        framed.put_slice(&response);
        Ok(framed.freeze())
    }

    /// Sends a request of the broker's own at `version` and decodes the controller's response.
    pub async fn request<R>(&self, request: &R, version: i16) -> Result<R::Response, ChannelError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let correlation_id = self.correlation.fetch_add(1, Ordering::Relaxed);
        let body = encode_request(request, version, correlation_id).map_err(ChannelError::Codec)?;
        let response = self.exchange(&body).await?;
        let decoded = decode_response::<R>(response, version, correlation_id);
        if decoded.is_err() {
            self.reset().await;
        }
        decoded.map_err(ChannelError::Codec)
    }

    async fn reset(&self) {
        if let Some((_, connection)) = self.connection.lock().await.as_mut() {
            connection.reset();
        }
    }

    /// Sends one request frame body and reads one response frame, on a connection to the current active
    /// controller (a new one when the controller moved; `FramedConnection` reconnects after a failure).
    async fn exchange(&self, request: &[u8]) -> Result<Bytes, ChannelError> {
        let (node, target) = match self.remote_controller() {
            Some(found) => found,
            None if self.quorum.leader().is_some() => return Err(ChannelError::IsController),
            None => return Err(ChannelError::NoController),
        };
        let address = target.to_string();
        let mut guard = self.connection.lock().await;
        if guard
            .as_ref()
            .is_none_or(|(connected, _)| *connected != node)
        {
            *guard = Some((
                node,
                FramedConnection::new(
                    address.clone(),
                    MAX_RESPONSE,
                    self.quorum.controller_security(),
                ),
            ));
        }
        let Some((_, connection)) = guard.as_mut() else {
            return Err(ChannelError::NoController);
        };
        connection
            .exchange(request, self.timeout)
            .await
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::TimedOut => ChannelError::Timeout {
                    node,
                    timeout: self.timeout,
                },
                _ => ChannelError::Io {
                    node,
                    address,
                    source,
                },
            })
    }
}
