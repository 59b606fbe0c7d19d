//! TLS on this node's listeners and on its own connections to other nodes, with certificate hot reload.
//!
//! Each listener name whose security protocol is SSL gets one [`ListenerTls`]: the rustls server
//! configuration this node serves it with (when it has such a listener) and the client configuration it
//! uses to reach other nodes' listeners of that name (the controller listener, the inter-broker listener),
//! both built by `security::tls` from Kafka's `ssl.*` keys. The files they were read from are watched
//! (`ssl.keystore.location`, `ssl.truststore.location`, ...): when one changes, or on SIGHUP, both are
//! rebuilt and swapped in for new connections; established connections keep the session they have. A file
//! that does not load is refused with a log line and the previous certificate stays in use.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use kavka_config::{BrokerConfig, SecurityProtocol};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::security::{self, PrincipalError, PrincipalMapper, ServerTlsOptions, TlsError};

/// How long a client has at most to complete its TLS handshake, or its SASL authentication frame by
/// frame: see [`handshake_timeout`].
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The time a client has to complete its TLS handshake, and to send each frame before it has
/// authenticated on a SASL listener: [`HANDSHAKE_TIMEOUT`], or `connections.max.idle.ms` when that
/// is shorter. A peer that opens connections and trickles bytes (slowloris) without ever
/// authenticating holds each for this long, not for the 10-minute idle timeout of a client.
pub fn handshake_timeout(config: &BrokerConfig) -> Duration {
    HANDSHAKE_TIMEOUT.min(Duration::from_millis(
        config.connections_max_idle_ms.max(1) as u64
    ))
}
/// How often watched certificate files are checked for changes.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// The TLS side of one listener name.
pub struct ListenerTls {
    listener: String,
    security: kavka_config::SecurityConfig,
    /// Whether this node serves a listener of this name (else it only connects to others').
    serves: bool,
    server: RwLock<Option<Arc<ServerConfig>>>,
    client: RwLock<Option<Arc<ClientConfig>>>,
    mapper: PrincipalMapper,
    files: Vec<PathBuf>,
    /// Modification time and length of each watched file, as last loaded.
    stamps: Mutex<Vec<Option<(SystemTime, u64)>>>,
}

/// Why the TLS settings of a listener cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ListenerTlsError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Principal(#[from] PrincipalError),
}

impl ListenerTls {
    fn load(
        listener: &str,
        config: &BrokerConfig,
        serves: bool,
    ) -> Result<ListenerTls, ListenerTlsError> {
        Self::from_security(listener, config.security.clone(), serves)
    }

    /// The client side only: how a command-line client connects to SSL listeners, from the Java client's
    /// `ssl.*` keys of its property file.
    pub fn client(security: kavka_config::SecurityConfig) -> Result<ListenerTls, ListenerTlsError> {
        Self::from_security("client", security, false)
    }

    fn from_security(
        listener: &str,
        security: kavka_config::SecurityConfig,
        serves: bool,
    ) -> Result<ListenerTls, ListenerTlsError> {
        let files = security::watched_files(listener, &security);
        let stamps = files.iter().map(stamp).collect();
        let tls = ListenerTls {
            listener: listener.to_string(),
            mapper: PrincipalMapper::for_listener(listener, &security)?,
            security,
            serves,
            server: RwLock::new(None),
            client: RwLock::new(None),
            files,
            stamps: Mutex::new(stamps),
        };
        let (server, client) = tls.build()?;
        *tls.server.write().unwrap_or_else(|p| p.into_inner()) = server;
        *tls.client.write().unwrap_or_else(|p| p.into_inner()) = client;
        Ok(tls)
    }

    /// Builds the server configuration (if this node serves the listener) and the client configuration
    /// (if the settings allow outgoing connections: a trust store is configured).
    #[allow(clippy::type_complexity)]
    fn build(&self) -> Result<(Option<Arc<ServerConfig>>, Option<Arc<ClientConfig>>), TlsError> {
        let server = if self.serves {
            Some(security::server_config_with(
                &self.listener,
                &self.security,
                ServerTlsOptions::default(),
            )?)
        } else {
            None
        };
        // A node serving an SSL listener it never connects to (a client listener) may have no trust store;
        // a node that must connect (controller, inter-broker) fails when it first tries, naming the key.
        let client = match security::client_config(&self.listener, &self.security) {
            Ok(client) => Some(client),
            Err(e) if self.serves => {
                tracing::debug!(listener = %self.listener, error = %e, "no outgoing TLS configuration");
                None
            }
            Err(e) => return Err(e),
        };
        Ok((server, client))
    }

    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The acceptor for a new connection, with the current certificate.
    pub fn acceptor(&self) -> Option<tokio_rustls::TlsAcceptor> {
        self.server
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map(tokio_rustls::TlsAcceptor::from)
    }

    /// The principal of a client that presented `certificates` (`User:ANONYMOUS` for none).
    pub fn principal(
        &self,
        certificates: Option<&[rustls_pki_types::CertificateDer<'_>]>,
    ) -> Result<String, PrincipalError> {
        self.mapper.principal(certificates)
    }

    /// Opens a TLS connection to `address` (`host:port`) as a client of this listener name.
    pub async fn connect(
        &self,
        address: &str,
        stream: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let config = self
            .client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                io::Error::other(format!(
                    "listener {} is SSL, but this node has no trust store to connect to it: set ssl.truststore.location",
                    self.listener
                ))
            })?;
        let host = address
            .rsplit_once(':')
            .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(address);
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
    }

    /// Reloads the configurations if a watched file changed (or `force`). Returns whether it reloaded.
    fn reload_if_changed(&self, force: bool) -> bool {
        let now: Vec<_> = self.files.iter().map(stamp).collect();
        {
            let stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *stamps == now {
                return false;
            }
        }
        match self.build() {
            Ok((server, client)) => {
                *self.server.write().unwrap_or_else(|p| p.into_inner()) = server;
                if client.is_some() {
                    *self.client.write().unwrap_or_else(|p| p.into_inner()) = client;
                }
                *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = now;
                tracing::info!(listener = %self.listener, "TLS certificates reloaded; new connections use them");
                true
            }
            Err(e) => {
                // Remember the broken state, so it is reported once, not every check.
                *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = now;
                tracing::error!(listener = %self.listener, error = %e, "TLS files changed but do not load; the previous certificates stay in use");
                false
            }
        }
    }
}

fn stamp(path: &PathBuf) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The TLS settings of every SSL listener name this node serves or connects to, and how it logs in to
/// SASL listeners of other nodes.
#[derive(Default)]
pub struct NodeTls {
    listeners: BTreeMap<String, Arc<ListenerTls>>,
    sasl_clients: BTreeMap<String, Arc<crate::security::sasl::SaslClientConfig>>,
    /// The settings of the node's SASL listeners, checked at start-up.
    sasl_listeners: BTreeMap<String, Arc<crate::security::sasl::SaslListener>>,
}

/// How this node connects to a listener of another node: TLS when the listener uses it, and the SASL
/// login when it is a SASL listener.
#[derive(Clone, Default)]
pub struct PeerSecurity {
    pub tls: Option<Arc<ListenerTls>>,
    pub sasl: Option<Arc<crate::security::sasl::SaslClientConfig>>,
}

impl NodeTls {
    /// Loads the TLS settings of the node's SSL listeners, and of the controller listener when this node
    /// only connects to it (a broker-only node). Fails on settings that do not load.
    pub fn load(config: &BrokerConfig) -> Result<NodeTls, ListenerTlsError> {
        let mut listeners = BTreeMap::new();
        let served: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
        let names = served
            .iter()
            .copied()
            .chain(config.controller_listener_names.iter().map(String::as_str));
        for name in names {
            if listeners.contains_key(name) || !is_tls(config, name) {
                continue;
            }
            let tls = ListenerTls::load(name, config, served.contains(&name))?;
            listeners.insert(name.to_string(), Arc::new(tls));
        }
        Ok(NodeTls {
            listeners,
            sasl_clients: BTreeMap::new(),
            sasl_listeners: BTreeMap::new(),
        })
    }

    /// Adds the SASL login of a listener name this node connects to.
    pub fn with_sasl_client(
        mut self,
        listener: &str,
        client: crate::security::sasl::SaslClientConfig,
    ) -> NodeTls {
        self.sasl_clients
            .insert(listener.to_string(), Arc::new(client));
        self
    }

    /// Adds the SASL settings of one of the node's SASL listeners.
    pub fn with_sasl_listener(
        mut self,
        listener: &str,
        settings: crate::security::sasl::SaslListener,
    ) -> NodeTls {
        self.sasl_listeners
            .insert(listener.to_string(), Arc::new(settings));
        self
    }

    /// The SASL settings of listener `name`, if it is one of the node's SASL listeners.
    pub fn sasl_listener(&self, name: &str) -> Option<Arc<crate::security::sasl::SaslListener>> {
        self.sasl_listeners.get(name).cloned()
    }

    /// How this node connects to listener `name` of another node.
    pub fn peer(&self, name: &str) -> PeerSecurity {
        PeerSecurity {
            tls: self.listener(name),
            sasl: self.sasl_clients.get(name).cloned(),
        }
    }

    /// The TLS settings of listener `name`, if it is an SSL listener.
    pub fn listener(&self, name: &str) -> Option<Arc<ListenerTls>> {
        self.listeners.get(name).cloned()
    }

    /// Checks the watched files every few seconds and on SIGHUP, until shutdown.
    pub async fn watch(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if self.listeners.is_empty() {
            return;
        }
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            let forced = tokio::select! {
                _ = tokio::time::sleep(RELOAD_CHECK_INTERVAL) => false,
                _ = async {
                    match hangup.as_mut() {
                        Some(signal) => { signal.recv().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => {
                    tracing::info!("SIGHUP: reloading TLS certificates");
                    true
                }
                _ = shutdown.changed() => return,
            };
            for tls in self.listeners.values() {
                let tls = tls.clone();
                // Loading keystores is file I/O and key parsing: off the async threads.
                let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed(forced)).await;
            }
        }
    }
}

/// Whether listener `name` uses TLS (SSL or SASL_SSL) per `listener.security.protocol.map`.
pub fn is_tls(config: &BrokerConfig, name: &str) -> bool {
    matches!(
        config.listener_security_protocol_map.get(name),
        Some(SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    )
}
