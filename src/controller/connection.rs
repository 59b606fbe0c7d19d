//! A lazily opened TCP connection that carries one Kafka-framed request and its response at a time: what
//! a controller uses to reach another controller (Raft RPCs), a broker to reach the active controller, and
//! a follower to fetch from a partition leader.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::network::{read_frame, PeerSecurity};
use crate::security::sasl::SaslClientConfig;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kavka_sasl::{plain_token, ScramClient, ScramMechanism};

type ReadHalf = BufReader<Pin<Box<dyn AsyncRead + Send + Sync>>>;
type WriteHalf = Pin<Box<dyn AsyncWrite + Send + Sync>>;

/// A connection to one address, opened on first use and again after any failure.
pub struct FramedConnection {
    address: String,
    max_response: usize,
    /// TLS and SASL of the listener reached.
    security: PeerSecurity,
    stream: Option<(ReadHalf, WriteHalf)>,
}

impl FramedConnection {
    /// `max_response` bounds the response frames read; `security` says how to reach the listener.
    pub fn new(address: String, max_response: usize, security: PeerSecurity) -> FramedConnection {
        FramedConnection {
            address,
            max_response,
            security,
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
        let (address, max_response, security) = (&self.address, self.max_response, &self.security);
        let attempt = async move {
            let (mut reader, mut writer) = match stream {
                Some(stream) => stream,
                None => open(address, security).await?,
            };
            write_frame(&mut writer, body).await?;
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

    /// Sends `body` as one frame and reads nothing: for requests the peer does not answer (Produce with
    /// acks=0).
    pub async fn send_only(&mut self, body: &[u8], timeout: Duration) -> io::Result<()> {
        let stream = self.stream.take();
        let (address, security) = (&self.address, &self.security);
        let attempt = async move {
            let (reader, mut writer) = match stream {
                Some(stream) => stream,
                None => open(address, security).await?,
            };
            write_frame(&mut writer, body).await?;
            Ok::<_, io::Error>((reader, writer))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(stream)) => {
                self.stream = Some(stream);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("cannot write to {} within {timeout:?}", self.address),
            )),
        }
    }

    /// Forgets the stream (after a response that did not match its request).
    pub fn reset(&mut self) {
        self.stream = None;
    }
}

/// Writes `body` with its size prefix in one write, so the frame leaves in as few segments as it can
/// (the socket is NODELAY).
async fn write_frame(writer: &mut WriteHalf, body: &[u8]) -> io::Result<()> {
    let size = i32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "request too large"))?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&size.to_be_bytes());
    frame.extend_from_slice(body);
    writer.write_all(&frame).await
}

/// Connects to `address`, through TLS and then a SASL login as `security` says.
async fn open(address: &str, security: &PeerSecurity) -> io::Result<(ReadHalf, WriteHalf)> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (read, write): (Pin<Box<dyn AsyncRead + Send + Sync>>, WriteHalf) = match &security.tls {
        Some(tls) => {
            let (read, write) = tokio::io::split(tls.connect(address, stream).await?);
            (Box::pin(read), Box::pin(write))
        }
        None => {
            let (read, write) = stream.into_split();
            (Box::pin(read), Box::pin(write))
        }
    };
    let (mut reader, mut writer) = (BufReader::new(read), write);
    if let Some(sasl) = &security.sasl {
        sasl_login(&mut reader, &mut writer, sasl)
            .await
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("SASL login to {address}: {e}"),
                )
            })?;
    }
    Ok((reader, writer))
}

/// Logs in to a SASL listener (SaslHandshake v1, then SaslAuthenticate v2 tokens) as `sasl` says.
async fn sasl_login(
    reader: &mut ReadHalf,
    writer: &mut WriteHalf,
    sasl: &SaslClientConfig,
) -> Result<(), String> {
    let handshake = SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_string(sasl.mechanism.clone()));
    let answer = exchange_once(reader, writer, &handshake, 1, 1).await?;
    if answer.error_code != 0 {
        return Err(format!(
            "mechanism {} refused (error {}; the listener offers {:?})",
            sasl.mechanism,
            answer.error_code,
            answer
                .mechanisms
                .iter()
                .map(|m| m.as_str())
                .collect::<Vec<_>>()
        ));
    }
    let authenticate =
        |token: Vec<u8>| SaslAuthenticateRequest::default().with_auth_bytes(token.into());
    let check = |answer: &kafka_protocol::messages::SaslAuthenticateResponse| {
        if answer.error_code == 0 {
            Ok(())
        } else {
            Err(format!(
                "error {}: {}",
                answer.error_code,
                answer.error_message.as_deref().unwrap_or("")
            ))
        }
    };
    match ScramMechanism::from_name(&sasl.mechanism) {
        None => {
            let token = plain_token(&sasl.username, &sasl.password);
            let answer = exchange_once(reader, writer, &authenticate(token), 2, 2).await?;
            check(&answer)
        }
        Some(mechanism) => {
            let mut client = ScramClient::new(mechanism, &sasl.username, &sasl.password);
            let first =
                exchange_once(reader, writer, &authenticate(client.client_first()), 2, 2).await?;
            check(&first)?;
            let last = client
                .handle_server_first(&first.auth_bytes)
                .map_err(|e| e.to_string())?;
            let done = exchange_once(reader, writer, &authenticate(last), 2, 3).await?;
            check(&done)?;
            client
                .verify_server_final(&done.auth_bytes)
                .map_err(|e| e.to_string())
        }
    }
}

/// One request and its response on a stream being set up (before it carries other traffic).
async fn exchange_once<R>(
    reader: &mut ReadHalf,
    writer: &mut WriteHalf,
    request: &R,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, String>
where
    R: Request + Encodable + HeaderVersion,
    R::Response: Decodable + HeaderVersion,
{
    let body = encode_request(request, version, correlation_id)?;
    write_frame(writer, &body)
        .await
        .map_err(|e| e.to_string())?;
    let response = read_frame(reader, MAX_SASL_RESPONSE)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the peer closed the connection")?;
    decode_response::<R>(response, version, correlation_id)
}

/// SASL answers are a few hundred bytes.
const MAX_SASL_RESPONSE: usize = 64 * 1024;

/// A request body (header and message) of this node's own, at `version`, under `correlation_id`.
pub fn encode_request<R>(request: &R, version: i16, correlation_id: i32) -> Result<BytesMut, String>
where
    R: Request + Encodable + HeaderVersion,
{
    encode_request_as(request, version, correlation_id, "kavka-broker")
}

/// [`encode_request`] with the header's client id.
pub fn encode_request_as<R>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> Result<BytesMut, String>
where
    R: Request + Encodable + HeaderVersion,
{
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
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
