//! The session of one client connection: requests are read, handled and answered strictly in order (Kafka
//! clients pipeline requests and match responses by order as well as correlation id).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::watch;

use super::frame::{read_frame, FrameError};
use super::tls::handshake_timeout;
use crate::dispatch::{encode_response, handle_frame, FrameOutcome};
use crate::security::sasl::{ResponseBody, SaslListener, SaslSession, SaslStep};
use crate::server::Broker;

/// What a handler may need to know about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    pub peer: SocketAddr,
    pub listener_name: String,
    /// Advertised (host, port) of the listener.
    pub advertised: Arc<(String, i32)>,
    /// The connection came in on a controller listener (`controller.listener.names`).
    pub is_controller_listener: bool,
    /// Who the client is: `User:` + its mapped certificate name on an SSL listener, else `User:ANONYMOUS`.
    pub principal: String,
}

/// Serves the requests of one connection (both halves of its stream, plain or TLS) until it closes.
/// `sasl` is set on a SASL_PLAINTEXT or SASL_SSL listener: the client must then authenticate first.
pub async fn serve_connection<R, W>(
    read_half: R,
    write_half: W,
    mut ctx: ConnectionContext,
    sasl: Option<Arc<SaslListener>>,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let mut writer = BufWriter::with_capacity(64 * 1024, write_half);
    let max_frame = broker.config.socket_request_max_bytes as usize;
    let idle = Duration::from_millis(broker.config.connections_max_idle_ms.max(1) as u64);
    let pre_auth = handshake_timeout(&broker.config);
    let mut session = sasl.as_ref().map(|_| SaslSession::new());
    loop {
        // Before authentication a frame is bounded in size by the SASL listener's limit and in time
        // by the handshake timeout; afterwards by socket.request.max.bytes and connections.max.idle.ms
        // (which a whole frame must arrive within: bytes trickled in one at a time do not keep a
        // connection open).
        let (limit, timeout, authenticating) = match (&sasl, &session) {
            (Some(listener), Some(session)) if !session.ever_authenticated() => {
                (listener.max_receive.min(max_frame), pre_auth, true)
            }
            _ => (max_frame, idle, false),
        };
        let frame = tokio::select! {
            read = tokio::time::timeout(timeout, read_frame(&mut reader, limit)) => read,
            _ = shutdown.changed() => break,
        };
        let frame = match frame {
            Err(_) if authenticating => {
                tracing::warn!(peer = %ctx.peer, listener = %ctx.listener_name, timeout_ms = timeout.as_millis() as u64, "connection rejected: SASL authentication not completed in time");
                break;
            }
            Err(_) => {
                tracing::info!(peer = %ctx.peer, idle_ms = idle.as_millis() as u64, "closing idle connection (connections.max.idle.ms)");
                break;
            }
            Ok(Ok(Some(frame))) => frame,
            Ok(Ok(None)) => break,
            Ok(Err(FrameError::Io(e))) => {
                tracing::debug!(peer = %ctx.peer, error = %e, "connection read error");
                break;
            }
            Ok(Err(e)) => {
                tracing::warn!(peer = %ctx.peer, listener = %ctx.listener_name, reason = %e, "closing connection: bad frame");
                break;
            }
        };
        let outcome = match (&sasl, &mut session) {
            (Some(listener), Some(session)) => {
                match authentication_gate(frame, listener, session, &mut ctx, &broker).await {
                    Gate::Pass(frame) => handle_frame(frame, &ctx, &broker).await,
                    Gate::Answer(outcome) => outcome,
                }
            }
            _ => handle_frame(frame, &ctx, &broker).await,
        };
        match outcome {
            FrameOutcome::Respond(response) => {
                let written = async {
                    writer.write_all(&response).await?;
                    writer.flush().await
                };
                if let Err(e) = written.await {
                    tracing::debug!(peer = %ctx.peer, error = %e, "connection write error");
                    break;
                }
            }
            FrameOutcome::NoResponse => {}
            FrameOutcome::RespondAndClose(response, reason) => {
                let _ = writer.write_all(&response).await;
                let _ = writer.flush().await;
                tracing::debug!(peer = %ctx.peer, %reason, "closing connection after the response");
                break;
            }
            FrameOutcome::Close(reason) => {
                tracing::warn!(peer = %ctx.peer, listener = %ctx.listener_name, %reason, "closing connection");
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
}

/// What the SASL layer makes of a frame on a SASL listener.
enum Gate {
    /// An ordinary request of an authenticated client, or ApiVersions: dispatch it.
    Pass(Bytes),
    /// Answered (or refused) here.
    Answer(FrameOutcome),
}

/// Serves SaslHandshake and SaslAuthenticate, and lets nothing else but ApiVersions through before the
/// client has authenticated (or after its session expired without re-authentication).
async fn authentication_gate(
    frame: Bytes,
    listener: &SaslListener,
    session: &mut SaslSession,
    ctx: &mut ConnectionContext,
    broker: &Broker,
) -> Gate {
    let Some(peeked) = kavka_wire::peek_header(&frame) else {
        return Gate::Answer(FrameOutcome::Close(
            "frame shorter than a request header".into(),
        ));
    };
    let now = Instant::now();
    let api_key = ApiKey::try_from(peeked.api_key).ok();
    if !matches!(
        api_key,
        Some(ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
    ) {
        if api_key == Some(ApiKey::ApiVersions) || session.principal(now).is_some() {
            return Gate::Pass(frame);
        }
        let reason = if session.expired(now) {
            "the SASL session expired without re-authentication (connections.max.reauth.ms)".into()
        } else {
            format!(
                "unexpected request (API key {}) before SASL authentication",
                peeked.api_key
            )
        };
        return Gate::Answer(FrameOutcome::Close(reason));
    }
    let version = peeked.api_version;
    if api_key == Some(ApiKey::SaslHandshake) && version == 0 {
        return Gate::Answer(FrameOutcome::Close(
            "SaslHandshake v0 (raw SASL tokens) is not supported: the client must use v1 with SaslAuthenticate".into(),
        ));
    }
    let request = match decode_sasl_request(&frame) {
        Ok(request) => request,
        Err(reason) => return Gate::Answer(FrameOutcome::Close(reason)),
    };
    let step = match &request {
        RequestKind::SaslHandshake(handshake) => session.handshake(listener, handshake),
        RequestKind::SaslAuthenticate(authenticate) => {
            let image = broker.controller.image();
            let scram = |user: &str, mechanism| {
                crate::security::sasl::scram_credential(
                    &image,
                    &broker.bootstrap_scram,
                    user,
                    mechanism,
                )
            };
            session.authenticate(listener, &scram, authenticate, version, now)
        }
        _ => return Gate::Answer(FrameOutcome::Close("not a SASL request".into())),
    };
    let (body, failure) = match step {
        SaslStep::Respond(body) => (body, None),
        SaslStep::Fail { response, reason } => (response, Some(reason)),
    };
    let response = match body {
        ResponseBody::Handshake(r) => ResponseKind::SaslHandshake(r),
        ResponseBody::Authenticate(r) => ResponseKind::SaslAuthenticate(r),
    };
    let key = api_key.unwrap_or(ApiKey::SaslHandshake);
    let encoded = encode_response(
        peeked.correlation_id,
        key.response_header_version(version),
        version,
        &response,
    );
    match failure {
        None => {
            if let Some(principal) = session.principal(now) {
                if ctx.principal != principal {
                    tracing::info!(peer = %ctx.peer, listener = %ctx.listener_name, principal = %principal, "SASL authentication succeeded");
                    ctx.principal = principal.to_string();
                }
            }
            Gate::Answer(encoded)
        }
        Some(reason) => {
            // Never the token: it may hold a password.
            tracing::warn!(peer = %ctx.peer, listener = %ctx.listener_name, %reason, "connection rejected: SASL authentication failed");
            // Slows down password guessing: the answer comes after a delay, then the connection closes.
            tokio::time::sleep(listener.failed_delay).await;
            Gate::Answer(match encoded {
                FrameOutcome::Respond(bytes) => FrameOutcome::RespondAndClose(bytes, reason),
                other => other,
            })
        }
    }
}

/// Decodes a SaslHandshake or SaslAuthenticate request after checking it against its schema (the
/// decoders pre-allocate from counts read off the wire). Only versions Kavka advertises are accepted.
fn decode_sasl_request(frame: &Bytes) -> Result<RequestKind, String> {
    let peeked = kavka_wire::peek_header(frame).ok_or("frame shorter than a request header")?;
    let key = ApiKey::try_from(peeked.api_key).map_err(|_| "unknown API key".to_string())?;
    let version = peeked.api_version;
    let supported = crate::dispatch::SUPPORTED_APIS
        .iter()
        .any(|(k, min, max)| *k == key && (*min..=*max).contains(&version));
    if !supported {
        return Err(format!("{key:?} version {version} is not supported"));
    }
    kavka_wire::decode_request(frame.clone())
        .map(|decoded| decoded.request)
        .map_err(|e| format!("malformed {key:?} v{version}: {e}"))
}
