//! The session of one client connection: requests are read, handled and answered strictly in order (Kafka
//! clients pipeline requests and match responses by order as well as correlation id).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::watch;

use super::frame::{read_frame, FrameError};
use crate::dispatch::{handle_frame, FrameOutcome};
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
pub async fn serve_connection<R, W>(
    read_half: R,
    write_half: W,
    ctx: ConnectionContext,
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
    loop {
        let frame = tokio::select! {
            read = tokio::time::timeout(idle, read_frame(&mut reader, max_frame)) => read,
            _ = shutdown.changed() => break,
        };
        let frame = match frame {
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
        match handle_frame(frame, &ctx, &broker).await {
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
            FrameOutcome::Close(reason) => {
                tracing::warn!(peer = %ctx.peer, listener = %ctx.listener_name, %reason, "closing connection");
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
}
