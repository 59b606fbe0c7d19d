//! TLS for listeners and for this node's outgoing connections, and the principal of a TLS client.
//!
//! * [`tls`] turns Kafka's `ssl.*` settings of one listener (with `listener.name.<name>.` overrides) into
//!   rustls configurations: [`tls::server_config`] for an SSL/SASL_SSL listener, [`tls::client_config`] for
//!   this node's connections to other nodes' listeners of that name; [`tls::load_certified_key`] and
//!   [`tls::watched_files`] serve certificate hot reload.
//! * [`principal`] builds the `User:` principal of a client certificate the way Kafka does: its subject
//!   distinguished name in RFC 2253 form, rewritten by `ssl.principal.mapping.rules`.
//! * [`acl`] holds Kafka's ACL model and the authorizer that decides on the ACLs of the metadata log.

pub mod acl;
pub mod authz;
pub mod principal;
pub mod sasl;
pub mod scram_bootstrap;
mod store;
pub mod tls;

#[cfg(test)]
mod tests;

pub use principal::{peer_principal, PrincipalError, PrincipalMapper};
pub use tls::{
    client_auth, client_config, load_certified_key, server_config, server_config_with,
    watched_files, ClientAuth, ServerTlsOptions, TlsError,
};
