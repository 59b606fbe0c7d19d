/// Errors of the SASL mechanisms.
///
/// The texts follow Kafka's where Kafka has one, because clients show them to operators and existing
/// runbooks search for them. They are sent to unauthenticated peers, so no variant ever carries a
/// password, a proof, a key or a whole client message (which could hold any of those).
#[derive(Debug, thiserror::Error)]
pub enum SaslError {
    #[error("SASL message of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },

    #[error("Invalid SCRAM client first message format: {0}")]
    InvalidClientFirst(&'static str),

    #[error("Invalid SCRAM server first message format: {0}")]
    InvalidServerFirst(&'static str),

    #[error("Invalid client final message: {0}")]
    InvalidClientFinal(&'static str),

    #[error("Invalid server final message: {0}")]
    InvalidServerFinal(&'static str),

    #[error("Authentication failed: Invalid user credentials")]
    InvalidUserCredentials,

    /// A wrong SCRAM proof; worded like Kafka's authenticator so clients report it the same way.
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}")]
    InvalidProof { mechanism: &'static str },

    #[error("Authentication failed: Client requested an authorization id that is different from username")]
    AuthzidMismatch,

    #[error("Authentication failed: delegation token authentication (tokenauth) is not supported")]
    TokenAuthUnsupported,

    #[error("Invalid client nonce in the final client message: nonce mismatch")]
    NonceMismatch,

    #[error("Invalid server nonce: does not start with client nonce")]
    InvalidServerNonce,

    #[error("Requested iterations {iterations} is outside the accepted range {min}..={max}")]
    InvalidIterations { iterations: i32, min: i32, max: i32 },

    #[error("Invalid server signature in server final message")]
    InvalidServerSignature,

    /// The server's own "e=" error; its text comes from the server, never from our secrets.
    #[error("Sasl authentication using {mechanism} failed with error: {message}")]
    ServerError {
        mechanism: &'static str,
        message: String,
    },

    #[error("SCRAM exchange step called out of order: {0}")]
    InvalidState(&'static str),

    #[error("Invalid SASL/PLAIN response: {0}")]
    InvalidPlain(String),

    #[error("Authentication failed: username not specified")]
    PlainUsernameMissing,

    #[error("Authentication failed: password not specified")]
    PlainPasswordMissing,

    #[error("Authentication failed: Invalid username or password")]
    InvalidUsernameOrPassword,

    #[error("Invalid JAAS configuration: {0}")]
    InvalidJaasConfig(String),
}
