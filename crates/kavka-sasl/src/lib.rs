//! SASL mechanism logic for Kavka, kept free of networking and async so that the exact byte-level
//! behaviour Kafka clients rely on can be unit-tested against the RFC vectors in isolation from the
//! broker's connection handling.

mod error;
pub mod jaas;
pub mod plain;
pub mod scram;

pub use error::SaslError;
pub use jaas::{parse_jaas_config, JaasConfig};
pub use plain::{parse_plain, passwords_match, plain_token, PlainToken};
pub use scram::{
    random_salt, salted_password, ScramClient, ScramCredential, ScramMechanism, ScramServer,
    MAX_ITERATIONS, MIN_ITERATIONS,
};

/// Every SASL token handed to this crate is refused above this size, so that a client cannot make the
/// broker buffer or parse (or, for SCRAM, hash) arbitrarily large input before authenticating.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

pub(crate) fn check_size(msg: &[u8]) -> Result<(), SaslError> {
    if msg.len() > MAX_MESSAGE_SIZE {
        return Err(SaslError::MessageTooLarge {
            size: msg.len(),
            max: MAX_MESSAGE_SIZE,
        });
    }
    Ok(())
}
