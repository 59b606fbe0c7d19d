//! Accepts connections on each configured listener and hands each to its own task, after the TLS
//! handshake on an SSL listener.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use super::connection::{serve_connection, ConnectionContext};
use super::quotas::{ConnectionPermit, ConnectionQuotas};
use super::tls::{handshake_timeout, ListenerTls, NodeTls};
use crate::security::principal::ANONYMOUS;
use crate::security::sasl::{failed_authentication_delay, SaslListener};
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
    /// Set on an SSL listener.
    pub tls: Option<Arc<ListenerTls>>,
    /// Set on a SASL_PLAINTEXT or SASL_SSL listener (its settings, checked at start-up).
    pub sasl: Option<Arc<SaslListener>>,
    /// `max.connections` and `max.connections.per.ip`, shared with the node's other broker listeners
    /// (or, on a controller listener, with the other controller listeners).
    pub quotas: Arc<ConnectionQuotas>,
    /// The inter-broker listener of a node with other listeners too: not held back by
    /// `max.connections` (as in Kafka), so replication goes on while clients fill the node.
    pub protected: bool,
}

/// `max.connections.per.ip.overrides` with each host resolved to its addresses (Kafka resolves them
/// with `InetAddress.getByName` when it reads the setting; a name that does not resolve stops start-up).
async fn per_ip_overrides(
    config: &kavka_config::BrokerConfig,
) -> Result<Vec<(std::net::IpAddr, i32)>, std::io::Error> {
    let mut out = Vec::new();
    for (host, n) in &config.max_connections_per_ip_overrides {
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            out.push((ip, *n));
            continue;
        }
        let addrs = tokio::net::lookup_host((host.as_str(), 0))
            .await
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("max.connections.per.ip.overrides: cannot resolve host {host:?}: {e}"),
                )
            })?;
        out.extend(addrs.map(|a| (a.ip(), *n)));
    }
    Ok(out)
}

/// Binds every listener in the configuration; fails start-up if any address cannot be bound.
pub async fn bind_listeners(
    config: &kavka_config::BrokerConfig,
    tls: &NodeTls,
) -> Result<Vec<BoundListener>, std::io::Error> {
    let overrides = per_ip_overrides(config).await?;
    // Kafka runs one socket server (with its own connection counts) for the broker's listeners and
    // another for the controller's.
    let quotas = || {
        ConnectionQuotas::new(
            config.max_connections,
            config.max_connections_per_ip,
            overrides.iter().copied(),
        )
    };
    let (broker_quotas, controller_quotas) = (quotas(), quotas());
    let broker_listener_count = config
        .listeners
        .iter()
        .filter(|l| !config.controller_listener_names.contains(&l.name))
        .count();
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
        let is_controller = config.controller_listener_names.contains(&listener.name);
        bound.push(BoundListener {
            name: listener.name.clone(),
            socket,
            local_addr,
            advertised_host,
            advertised_port,
            is_controller,
            security_protocol: listener.security_protocol,
            tls: tls.listener(&listener.name),
            sasl: tls.sasl_listener(&listener.name),
            quotas: if is_controller {
                controller_quotas.clone()
            } else {
                broker_quotas.clone()
            },
            protected: !is_controller
                && listener.name == config.inter_broker_listener_name
                && broker_listener_count > 1,
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
                    // At max.connections this waits (the listener accepts nothing more) until a
                    // connection closes, as Kafka's acceptor does.
                    let permit = tokio::select! {
                        permit = listener.quotas.acquire(peer.ip(), listener.protected) => permit,
                        _ = shutdown.changed() => break,
                    };
                    let permit = match permit {
                        Ok(permit) => permit,
                        Err(e) => {
                            tracing::info!(peer = %peer, listener = %listener.name, reason = %e, "connection rejected");
                            drop(stream);
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let ctx = ConnectionContext {
                        peer,
                        listener_name: listener.name.clone(),
                        advertised: advertised.clone(),
                        is_controller_listener: listener.is_controller,
                        principal: ANONYMOUS.to_string(),
                    };
                    match &listener.tls {
                        None => {
                            let (read, write) = stream.into_split();
                            tokio::spawn(counted(permit, serve_connection(read, write, ctx, listener.sasl.clone(), broker.clone(), shutdown.clone())));
                        }
                        Some(tls) => {
                            tokio::spawn(counted(permit, serve_tls_connection(stream, tls.clone(), ctx, listener.sasl.clone(), broker.clone(), shutdown.clone())));
                        }
                    }
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

/// Serves a connection, holding its slot in the connection counts until it ends.
async fn counted(permit: ConnectionPermit, serve: impl std::future::Future<Output = ()>) {
    serve.await;
    drop(permit);
}

/// Completes the TLS handshake of a new connection (within [`handshake_timeout`]), takes the client's
/// principal from its certificate, and serves it. A failed handshake or an unmapped certificate closes
/// the connection with a log line naming the peer and the reason.
async fn serve_tls_connection(
    stream: tokio::net::TcpStream,
    tls: Arc<ListenerTls>,
    mut ctx: ConnectionContext,
    sasl: Option<Arc<SaslListener>>,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) {
    let Some(acceptor) = tls.acceptor() else {
        return;
    };
    let handshake = acceptor.accept(stream).into_fallible();
    let timeout = handshake_timeout(&broker.config);
    let stream = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(stream)) => stream,
        // A peer that connects and closes without a word (a port probe, a load balancer's health check)
        // is not worth a warning.
        Ok(Err((e, _))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!(peer = %ctx.peer, listener = %ctx.listener_name, "connection closed before the TLS handshake");
            return;
        }
        Ok(Err((e, socket))) => {
            tracing::warn!(peer = %ctx.peer, listener = %ctx.listener_name, reason = %e, "connection rejected: TLS handshake failed");
            // As after a failed SASL login: the socket closes only after
            // connection.failed.authentication.delay.ms, which slows down a peer trying certificates.
            // The listener's value, as for SASL (start-up has checked that it parses).
            let delay =
                failed_authentication_delay(&broker.config, &ctx.listener_name).unwrap_or_default();
            tokio::time::sleep(delay).await;
            drop(socket);
            return;
        }
        Err(_) => {
            tracing::warn!(peer = %ctx.peer, listener = %ctx.listener_name, timeout_ms = timeout.as_millis() as u64, "connection rejected: TLS handshake not completed in time");
            return;
        }
    };
    match tls.principal(stream.get_ref().1.peer_certificates()) {
        Ok(principal) => ctx.principal = principal,
        Err(e) => {
            tracing::warn!(peer = %ctx.peer, listener = %ctx.listener_name, reason = %e, "connection rejected: no principal for the client certificate");
            return;
        }
    }
    let (read, write) = tokio::io::split(stream);
    serve_connection(read, write, ctx, sasl, broker, shutdown).await;
}
