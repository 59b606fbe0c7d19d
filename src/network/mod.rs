//! Listener and session layers: TCP accept, per-connection tasks, frame reading and in-order responses.

mod connection;
mod frame;
mod listener;
mod quotas;
mod tls;

pub use connection::ConnectionContext;
pub use frame::{read_frame, FrameError, MIN_REQUEST_FRAME};
pub use listener::{bind_listeners, run_listener, BoundListener};
pub use quotas::{ConnectionPermit, ConnectionQuotas, QuotaError};
pub use tls::{
    handshake_timeout, is_tls, ListenerTls, ListenerTlsError, NodeTls, PeerSecurity,
    HANDSHAKE_TIMEOUT,
};
