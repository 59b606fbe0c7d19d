//! A lazily opened TCP connection that carries one Kafka-framed request and its response at a time: what
//! a controller uses to reach another controller (Raft RPCs), a broker to reach the active controller, and
//! a follower to fetch from a partition leader.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::network::{read_frame, ListenerTls};

type ReadHalf = BufReader<Pin<Box<dyn AsyncRead + Send + Sync>>>;
type WriteHalf = Pin<Box<dyn AsyncWrite + Send + Sync>>;

/// A connection to one address, opened on first use and again after any failure.
pub struct FramedConnection {
    address: String,
    max_response: usize,
    /// The TLS settings of the listener reached, when it is an SSL listener.
    tls: Option<Arc<ListenerTls>>,
    stream: Option<(ReadHalf, WriteHalf)>,
}

impl FramedConnection {
    /// `max_response` bounds the response frames read; `tls` is set when `address` is an SSL listener.
    pub fn new(
        address: String,
        max_response: usize,
        tls: Option<Arc<ListenerTls>>,
    ) -> FramedConnection {
        FramedConnection {
            address,
            max_response,
            tls,
            stream: None,
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends `body` as one size-prefixed frame and reads one response frame (without its size prefix)
    /// within `timeout` (an `io::ErrorKind::TimedOut` error past it). The stream is taken out for the
    /// exchange and kept only after a whole response was read: a failure, a timeout or a caller giving up
    /// half-way drops it, so no later request can be answered with an earlier request's response.
    pub async fn exchange(&mut self, body: &[u8], timeout: Duration) -> io::Result<Bytes> {
        let stream = self.stream.take();
        let (address, max_response, tls) = (&self.address, self.max_response, &self.tls);
        let attempt = async move {
            let (mut reader, mut writer) = match stream {
                Some(stream) => stream,
                None => open(address, tls.as_deref()).await?,
            };
            let size = i32::try_from(body.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "request too large"))?;
            // One write, so the frame leaves in as few segments as it can (the socket is NODELAY).
            let mut frame = Vec::with_capacity(body.len() + 4);
            frame.extend_from_slice(&size.to_be_bytes());
            frame.extend_from_slice(body);
            writer.write_all(&frame).await?;
            match read_frame(&mut reader, max_response).await {
                Ok(Some(frame)) => Ok((frame, (reader, writer))),
                Ok(None) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection",
                )),
                Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok((frame, stream))) => {
                self.stream = Some(stream);
                Ok(frame)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no response from {} within {timeout:?}", self.address),
            )),
        }
    }

    /// Forgets the stream (after a response that did not match its request).
    pub fn reset(&mut self) {
        self.stream = None;
    }
}

/// Connects to `address`, through TLS when `tls` is set.
async fn open(address: &str, tls: Option<&ListenerTls>) -> io::Result<(ReadHalf, WriteHalf)> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (read, write): (Pin<Box<dyn AsyncRead + Send + Sync>>, WriteHalf) = match tls {
        Some(tls) => {
            let (read, write) = tokio::io::split(tls.connect(address, stream).await?);
            (Box::pin(read), Box::pin(write))
        }
        None => {
            let (read, write) = stream.into_split();
            (Box::pin(read), Box::pin(write))
        }
    };
    Ok((BufReader::new(read), write))
}

/// A request body (header and message) of this node's own, at `version`, under `correlation_id`.
pub fn encode_request<R>(request: &R, version: i16, correlation_id: i32) -> Result<BytesMut, String>
where
    R: Request + Encodable + HeaderVersion,
{
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("kavka-broker")));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(version))
        .map_err(|e| e.to_string())?;
    request
        .encode(&mut body, version)
        .map_err(|e| e.to_string())?;
    Ok(body)
}

/// Decodes the response to a request sent with `encode_request`, checking it answers `correlation_id`.
pub fn decode_response<R>(
    mut response: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, String>
where
    R: Request,
    R::Response: Decodable + HeaderVersion,
{
    let header = ResponseHeader::decode(&mut response, R::Response::header_version(version))
        .map_err(|e| e.to_string())?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "response correlation id {} for request {correlation_id}",
            header.correlation_id
        ));
    }
    R::Response::decode(&mut response, version).map_err(|e| e.to_string())
}
