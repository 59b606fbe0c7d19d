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
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::quorum::MetadataQuorum;
use super::raft::ControllerNode;
use crate::network::read_frame;

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
    #[error("controller {node} did not answer within {EXCHANGE_TIMEOUT:?}")]
    Timeout { node: u64 },
    #[error("encoding or decoding a controller request: {0}")]
    Codec(String),
}

type Connection = (
    u64,
    BufReader<tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
);

/// A broker's connection to the active controller; one exchange at a time (admin traffic is light).
pub struct ControllerChannel {
    quorum: Arc<MetadataQuorum>,
    connection: Mutex<Option<Connection>>,
    correlation: AtomicI32,
}

impl ControllerChannel {
    pub fn new(quorum: Arc<MetadataQuorum>) -> ControllerChannel {
        ControllerChannel {
            quorum,
            connection: Mutex::new(None),
            correlation: AtomicI32::new(0),
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
    /// frame (with its size prefix), both untouched: the correlation id is the client's.
    pub async fn forward(&self, frame: &[u8]) -> Result<Bytes, ChannelError> {
        let mut out = BytesMut::with_capacity(frame.len() + 4);
        out.put_i32(frame.len() as i32);
        out.put_slice(frame);
        let response = self.exchange(out.freeze()).await?;
        // The request header starts with key, version and then the correlation id; the response with it.
        if frame.get(4..8) != response.get(..4) {
            *self.connection.lock().await = None;
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
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("kavka-broker")));
        let mut body = BytesMut::new();
        body.put_i32(0);
        header
            .encode(&mut body, R::header_version(version))
            .map_err(|e| ChannelError::Codec(e.to_string()))?;
        request
            .encode(&mut body, version)
            .map_err(|e| ChannelError::Codec(e.to_string()))?;
        let size = (body.len() - 4) as i32;
        body[..4].copy_from_slice(&size.to_be_bytes());
        let mut response = self.exchange(body.freeze()).await?;
        let header = ResponseHeader::decode(&mut response, R::Response::header_version(version))
            .map_err(|e| ChannelError::Codec(e.to_string()))?;
        if header.correlation_id != correlation_id {
            *self.connection.lock().await = None;
            return Err(ChannelError::Codec(format!(
                "response correlation id {} for request {correlation_id}",
                header.correlation_id
            )));
        }
        R::Response::decode(&mut response, version).map_err(|e| ChannelError::Codec(e.to_string()))
    }

    /// Writes one size-prefixed request and reads one response frame, on a connection to the current
    /// active controller (reconnecting when the controller moved or the connection broke).
    async fn exchange(&self, request: Bytes) -> Result<Bytes, ChannelError> {
        let (node, target) = match self.remote_controller() {
            Some(found) => found,
            None if self.quorum.leader().is_some() => return Err(ChannelError::IsController),
            None => return Err(ChannelError::NoController),
        };
        let address = target.to_string();
        let io = |source| ChannelError::Io {
            node,
            address: address.clone(),
            source,
        };
        let mut guard = self.connection.lock().await;
        // The connection is taken out for the exchange and put back only after a whole response was
        // read: if the caller gives up half-way (a timeout, a dropped future), the stream is dropped with
        // it instead of handing the unread response to the next request.
        let reusable = guard.take().filter(|(connected, _, _)| *connected == node);
        let attempt = async {
            let (_, mut reader, mut writer) = match reusable {
                Some(connection) => connection,
                None => {
                    let stream = TcpStream::connect(&address).await.map_err(io)?;
                    stream.set_nodelay(true).map_err(io)?;
                    let (read, write) = stream.into_split();
                    (node, BufReader::new(read), write)
                }
            };
            writer.write_all(&request).await.map_err(io)?;
            match read_frame(&mut reader, MAX_RESPONSE).await {
                Ok(Some(frame)) => Ok((frame, (node, reader, writer))),
                Ok(None) => Err(io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the controller closed the connection",
                ))),
                Err(e) => Err(io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
            }
        };
        match tokio::time::timeout(EXCHANGE_TIMEOUT, attempt).await {
            Ok(Ok((frame, connection))) => {
                *guard = Some(connection);
                Ok(frame)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ChannelError::Timeout { node }),
        }
    }
}
