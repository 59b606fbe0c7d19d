//! Accepts connections on each configured listener and hands each to its own task.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::connection::{serve_connection, ConnectionContext};
use crate::server::Broker;

/// A listener socket bound at start-up, with the endpoint advertised to clients that connect to it.
pub struct BoundListener {
    pub name: String,
    pub socket: TcpListener,
    pub local_addr: SocketAddr,
    /// Host and port written into Metadata responses for clients of this listener.
    pub advertised_host: String,
    pub advertised_port: i32,
    /// Named in `controller.listener.names`: it also carries the controllers' Raft RPCs.
    pub is_controller: bool,
    /// From `listener.security.protocol.map`.
    pub security_protocol: kavka_config::SecurityProtocol,
}

/// Binds every listener in the configuration; fails start-up if any address cannot be bound.
pub async fn bind_listeners(
    config: &kavka_config::BrokerConfig,
) -> Result<Vec<BoundListener>, std::io::Error> {
    let mut bound = Vec::new();
    for listener in &config.listeners {
        let host = if listener.host.is_empty() {
            "0.0.0.0"
        } else {
            listener.host.as_str()
        };
        let socket = TcpListener::bind((host, listener.port))
            .await
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot bind listener {}://{host}:{}: {e}",
                        listener.name, listener.port
                    ),
                )
            })?;
        let local_addr = socket.local_addr()?;
        let advertised = config
            .advertised_listeners
            .iter()
            .find(|a| a.name == listener.name);
        let (mut advertised_host, mut advertised_port) = match advertised {
            Some(a) => (a.host.clone(), a.port as i32),
            None => (listener.host.clone(), local_addr.port() as i32),
        };
        // Port 0 means "any free port": advertise the one the OS picked.
        if advertised_port == 0 {
            advertised_port = local_addr.port() as i32;
        }
        if advertised_host.is_empty() || advertised_host == "0.0.0.0" {
            advertised_host = local_addr.ip().to_string();
            if local_addr.ip().is_unspecified() {
                advertised_host = "127.0.0.1".to_string();
            }
        }
        tracing::info!(
            listener = %listener.name,
            address = %local_addr,
            advertised = %format!("{advertised_host}:{advertised_port}"),
            "listening"
        );
        bound.push(BoundListener {
            name: listener.name.clone(),
            socket,
            local_addr,
            advertised_host,
            advertised_port,
            is_controller: config.controller_listener_names.contains(&listener.name),
            security_protocol: listener.security_protocol,
        });
    }
    Ok(bound)
}

/// Accepts connections until shutdown is signalled.
pub async fn run_listener(
    listener: BoundListener,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let advertised = Arc::new((listener.advertised_host.clone(), listener.advertised_port));
    loop {
        tokio::select! {
            accepted = listener.socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let ctx = ConnectionContext {
                        peer,
                        listener_name: listener.name.clone(),
                        advertised: advertised.clone(),
                        is_controller_listener: listener.is_controller,
                    };
                    tokio::spawn(serve_connection(stream, ctx, broker.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = %listener.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}
