//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks them.
//!
//! Kafka-specific behaviour kept here: the `tokenauth` extension in client-first (refused, since Kavka
//! has no delegation tokens), `=2C`/`=3D` user name escaping, no channel binding, and passwords used
//! as raw UTF-8 without SASLprep (Kafka does not normalise them either, so a SASLprep here would make
//! some passwords unusable against credentials created with Kafka's tools).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::{check_size, SaslError};

/// The two SCRAM mechanisms Kafka supports.
///
/// Serialised under the SASL mechanism names so that persisted credentials and configs read the same
/// as Kafka's `sasl.enabled.mechanisms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    /// The IANA/SASL name, as sent in SaslHandshake and listed in `sasl.enabled.mechanisms`.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Exact, case-sensitive match, as Kafka's mechanism lookup is.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::all().into_iter().find(|m| m.name() == name)
    }

    /// The id AlterUserScramCredentials and DescribeUserScramCredentials put on the wire.
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// `None` for 0 (Kafka's UNKNOWN) and anything else a newer client might send.
    pub fn from_kafka_type(t: i8) -> Option<Self> {
        match t {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn all() -> [ScramMechanism; 2] {
        [ScramMechanism::Sha256, ScramMechanism::Sha512]
    }

    fn digest_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                    .expect("HMAC accepts keys of any length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(key)
                    .expect("HMAC accepts keys of any length");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }
}

/// Kafka refuses fewer iterations than this (its ScramMechanism minIterations), both when storing
/// credentials and as a client, so weaker stored keys cannot be forced on it.
pub const MIN_ITERATIONS: i32 = 4096;
/// Kafka's AlterUserScramCredentials upper bound; also caps the CPU a server can make a client spend.
pub const MAX_ITERATIONS: i32 = 16384;

/// What a server stores per user and mechanism: enough to verify a proof, never enough to recover the
/// password or (without `server_key`) to impersonate the server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// Keys stay out of logs: `stored_key` is what an offline dictionary attack starts from.
impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    /// What AlterUserScramCredentials carries: the client already salted the password.
    pub fn from_salted_password(
        mech: ScramMechanism,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i32,
    ) -> Self {
        let client_key = mech.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: mech.hash(&client_key),
            server_key: mech.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// For credentials configured from plain passwords (static config, tests).
    pub fn from_password(
        mech: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: i32,
    ) -> Self {
        let salted = salted_password(mech, password, salt, iterations);
        Self::from_salted_password(mech, salt, &salted, iterations)
    }
}

/// RFC 5802's Hi(): PBKDF2 with HMAC of the mechanism's hash.
///
/// Iteration counts below 1 are treated as 1 rather than panicking, because the count may come from
/// stored data; callers that need Kafka's range check it against [`MIN_ITERATIONS`] themselves.
pub fn salted_password(
    mech: ScramMechanism,
    password: &str,
    salt: &[u8],
    iterations: i32,
) -> Vec<u8> {
    let rounds = iterations.max(1) as u32;
    let mut out = vec![0u8; mech.digest_len()];
    match mech {
        ScramMechanism::Sha256 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, rounds, &mut out)
        }
        ScramMechanism::Sha512 => {
            pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, rounds, &mut out)
        }
    }
    out
}

/// 32 random bytes from the OS: a salt long enough that precomputation across users is pointless.
pub fn random_salt() -> Vec<u8> {
    let mut salt = vec![0u8; 32];
    getrandom::fill(&mut salt).expect("the OS random number generator is unavailable");
    salt
}

/// A fresh printable nonce without ',' (RFC 5802 forbids it); base64 of 24 random bytes gives 192 bits.
fn random_nonce() -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("the OS random number generator is unavailable");
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// RFC 5802 `printable` minus ','.
fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// `=2C` -> ',' and `=3D` -> '='; any other '=' is malformed (RFC 5802 saslname).
fn unescape_name(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(pos) = rest.find('=') {
        out.push_str(&rest[..pos]);
        let esc = rest.get(pos..pos + 3)?;
        match esc {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return None,
        }
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    Some(out)
}

fn escape_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// Splits "k=value" where k is a single letter; RFC 5802 attributes are one ALPHA.
fn attr(field: &str) -> Option<(u8, &str)> {
    let b = field.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b'=' {
        Some((b[0], &field[2..]))
    } else {
        None
    }
}

enum ServerState {
    ClientFirst,
    ClientFinal {
        user: String,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        credential: ScramCredential,
    },
    Done,
}

/// Server side of one SCRAM exchange (RFC 5802): client-first -> server-first -> client-final ->
/// server-final.
///
/// One value per authentication attempt; any error leaves it unusable so that a client cannot retry
/// proofs against the same nonce.
pub struct ScramServer {
    mech: ScramMechanism,
    server_nonce: String,
    state: ServerState,
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hand-written so that the credential held between the two steps is never logged.
        let state = match self.state {
            ServerState::ClientFirst => "awaiting client-first",
            ServerState::ClientFinal { .. } => "awaiting client-final",
            ServerState::Done => "done",
        };
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mech)
            .field("state", &state)
            .finish()
    }
}

impl ScramServer {
    pub fn new(mech: ScramMechanism) -> Self {
        Self::with_nonce(mech, random_nonce())
    }

    /// Fixed server nonce, so the RFC vectors can be replayed.
    pub(crate) fn with_nonce(mech: ScramMechanism, server_nonce: String) -> Self {
        ScramServer {
            mech,
            server_nonce,
            state: ServerState::ClientFirst,
        }
    }

    /// Parses client-first-message (gs2 header "n,," or "n,a=authzid,"; channel binding "p=" or "y"
    /// refused; authzid, if present, must equal the user name), unescapes the user name, refuses
    /// `tokenauth=true` (no delegation tokens here), ignores other extensions, looks up the credential
    /// with `lookup(user)` and returns server-first-message "r=<client nonce><server nonce>,s=<base64
    /// salt>,i=<iterations>".
    pub fn handle_client_first(
        &mut self,
        msg: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Result<Vec<u8>, SaslError> {
        if !matches!(self.state, ServerState::ClientFirst) {
            self.state = ServerState::Done;
            return Err(SaslError::InvalidState("client-first already handled"));
        }
        self.state = ServerState::Done;
        check_size(msg)?;
        let msg = std::str::from_utf8(msg)
            .map_err(|_| SaslError::InvalidClientFirst("not valid UTF-8"))?;

        let (cb_flag, rest) = msg
            .split_once(',')
            .ok_or(SaslError::InvalidClientFirst("missing gs2 header"))?;
        match cb_flag {
            "n" => {}
            "y" => {
                return Err(SaslError::InvalidClientFirst(
                    "channel binding is not supported",
                ))
            }
            f if f.starts_with("p=") => {
                return Err(SaslError::InvalidClientFirst(
                    "channel binding is not supported",
                ))
            }
            _ => {
                return Err(SaslError::InvalidClientFirst(
                    "invalid gs2 channel binding flag",
                ))
            }
        }
        let (authzid_field, bare) = rest
            .split_once(',')
            .ok_or(SaslError::InvalidClientFirst("missing gs2 header"))?;
        let authzid = if authzid_field.is_empty() {
            None
        } else {
            let raw = authzid_field
                .strip_prefix("a=")
                .filter(|a| !a.is_empty())
                .ok_or(SaslError::InvalidClientFirst("invalid authorization id"))?;
            Some(
                unescape_name(raw)
                    .ok_or(SaslError::InvalidClientFirst("invalid authorization id"))?,
            )
        };
        let gs2_header = format!("n,{authzid_field},");

        let mut fields = bare.split(',');
        let user_field = fields.next().unwrap_or_default();
        if user_field.starts_with("m=") {
            return Err(SaslError::InvalidClientFirst(
                "mandatory extensions are not supported",
            ));
        }
        let user = user_field
            .strip_prefix("n=")
            .filter(|u| !u.is_empty())
            .and_then(unescape_name)
            .ok_or(SaslError::InvalidClientFirst("invalid user name"))?;
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .filter(|n| valid_nonce(n))
            .ok_or(SaslError::InvalidClientFirst("invalid nonce"))?;
        for ext in fields {
            let (key, value) = ext
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or(SaslError::InvalidClientFirst("invalid extension"))?;
            if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
                return Err(SaslError::TokenAuthUnsupported);
            }
            // Kafka ignores extensions it does not know; so do we.
        }
        if let Some(authzid) = &authzid {
            if *authzid != user {
                return Err(SaslError::AuthzidMismatch);
            }
        }

        let credential = lookup(&user).ok_or(SaslError::InvalidUserCredentials)?;
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        self.state = ServerState::ClientFinal {
            user,
            gs2_header,
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
            credential,
        };
        Ok(server_first.into_bytes())
    }

    /// Checks client-final-message: channel binding (base64 of the gs2 header, "biws" for "n,,"), the
    /// nonce equals the combined nonce, the proof (in constant time); returns server-final-message
    /// "v=<base64 server signature>" and the authenticated user name.
    pub fn handle_client_final(&mut self, msg: &[u8]) -> Result<(Vec<u8>, String), SaslError> {
        let state = std::mem::replace(&mut self.state, ServerState::Done);
        let ServerState::ClientFinal {
            user,
            gs2_header,
            client_first_bare,
            server_first,
            nonce,
            credential,
        } = state
        else {
            return Err(SaslError::InvalidState("client-final before client-first"));
        };
        check_size(msg)?;
        let msg = std::str::from_utf8(msg)
            .map_err(|_| SaslError::InvalidClientFinal("not valid UTF-8"))?;

        let (without_proof, proof_b64) = msg
            .rsplit_once(",p=")
            .ok_or(SaslError::InvalidClientFinal("missing proof"))?;
        let mut fields = without_proof.split(',');
        let cb = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or(SaslError::InvalidClientFinal("missing channel binding"))?;
        let client_nonce = fields
            .next()
            .and_then(|f| f.strip_prefix("r="))
            .ok_or(SaslError::InvalidClientFinal("missing nonce"))?;
        for ext in fields {
            if attr(ext).is_none() {
                return Err(SaslError::InvalidClientFinal("invalid extension"));
            }
        }
        if cb != B64.encode(gs2_header.as_bytes()) {
            return Err(SaslError::InvalidClientFinal("channel binding mismatch"));
        }
        // Kafka accepts a final nonce that ends with the combined one (librdkafka 2.0.x sends its own
        // nonce in front of it); the proof covers the message as received, so nothing is gained by it.
        if !client_nonce.ends_with(nonce.as_str()) {
            return Err(SaslError::NonceMismatch);
        }
        let proof = B64
            .decode(proof_b64)
            .map_err(|_| SaslError::InvalidClientFinal("invalid proof encoding"))?;
        let mechanism = self.mech.name();
        if proof.len() != self.mech.digest_len() {
            return Err(SaslError::InvalidProof { mechanism });
        }

        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = self
            .mech
            .hmac(&credential.stored_key, auth_message.as_bytes());
        let client_key = xor(&proof, &client_signature);
        let computed_stored_key = self.mech.hash(&client_key);
        if !bool::from(computed_stored_key.ct_eq(&credential.stored_key)) {
            return Err(SaslError::InvalidProof { mechanism });
        }
        let server_signature = self
            .mech
            .hmac(&credential.server_key, auth_message.as_bytes());
        let server_final = format!("v={}", B64.encode(server_signature));
        Ok((server_final.into_bytes(), user))
    }
}

enum ClientState {
    Initial,
    FirstSent { client_first_bare: String },
    FinalSent { server_signature: Vec<u8> },
}

/// Client side (the broker authenticating to other brokers, and tests).
pub struct ScramClient {
    mech: ScramMechanism,
    user: String,
    password: String,
    client_nonce: String,
    state: ClientState,
}

impl std::fmt::Debug for ScramClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Hand-written so that the password is never logged.
        f.debug_struct("ScramClient")
            .field("mechanism", &self.mech)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    pub fn new(mech: ScramMechanism, user: &str, password: &str) -> Self {
        Self::with_nonce(mech, user, password, random_nonce())
    }

    /// Fixed client nonce, so the RFC vectors can be replayed.
    pub(crate) fn with_nonce(
        mech: ScramMechanism,
        user: &str,
        password: &str,
        client_nonce: String,
    ) -> Self {
        ScramClient {
            mech,
            user: user.to_owned(),
            password: password.to_owned(),
            client_nonce,
            state: ClientState::Initial,
        }
    }

    /// "n,,n=<escaped user>,r=<nonce>": no authzid, no channel binding, like Kafka's client.
    pub fn client_first(&mut self) -> Vec<u8> {
        let client_first_bare = format!("n={},r={}", escape_name(&self.user), self.client_nonce);
        let msg = format!("n,,{client_first_bare}");
        self.state = ClientState::FirstSent { client_first_bare };
        msg.into_bytes()
    }

    /// Returns client-final; checks the server nonce extends ours and the iteration count is within
    /// [`MIN_ITERATIONS`]..=[`MAX_ITERATIONS`] (a server could otherwise downgrade or stall us).
    pub fn handle_server_first(&mut self, msg: &[u8]) -> Result<Vec<u8>, SaslError> {
        let ClientState::FirstSent { client_first_bare } =
            std::mem::replace(&mut self.state, ClientState::Initial)
        else {
            return Err(SaslError::InvalidState("server-first before client-first"));
        };
        check_size(msg)?;
        let msg = std::str::from_utf8(msg)
            .map_err(|_| SaslError::InvalidServerFirst("not valid UTF-8"))?;
        let mut fields = msg.split(',');
        let first = fields.next().unwrap_or_default();
        if first.starts_with("m=") {
            return Err(SaslError::InvalidServerFirst(
                "mandatory extensions are not supported",
            ));
        }
        self.refused_by_server(first)?;
        let nonce = first
            .strip_prefix("r=")
            .filter(|n| valid_nonce(n))
            .ok_or(SaslError::InvalidServerFirst("invalid nonce"))?;
        let salt = fields
            .next()
            .and_then(|f| f.strip_prefix("s="))
            .and_then(|s| B64.decode(s).ok())
            .filter(|s| !s.is_empty())
            .ok_or(SaslError::InvalidServerFirst("invalid salt"))?;
        let iterations: i32 = fields
            .next()
            .and_then(|f| f.strip_prefix("i="))
            .and_then(|i| i.parse().ok())
            .ok_or(SaslError::InvalidServerFirst("invalid iteration count"))?;
        for ext in fields {
            if attr(ext).is_none() {
                return Err(SaslError::InvalidServerFirst("invalid extension"));
            }
        }
        if nonce.len() <= self.client_nonce.len() || !nonce.starts_with(&self.client_nonce) {
            return Err(SaslError::InvalidServerNonce);
        }
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(SaslError::InvalidIterations {
                iterations,
                min: MIN_ITERATIONS,
                max: MAX_ITERATIONS,
            });
        }

        let salted = salted_password(self.mech, &self.password, &salt, iterations);
        let client_key = self.mech.hmac(&salted, b"Client Key");
        let stored_key = self.mech.hash(&client_key);
        let without_proof = format!("c={},r={nonce}", B64.encode(b"n,,"));
        let auth_message = format!("{client_first_bare},{msg},{without_proof}");
        let client_signature = self.mech.hmac(&stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &client_signature);
        let server_key = self.mech.hmac(&salted, b"Server Key");
        let server_signature = self.mech.hmac(&server_key, auth_message.as_bytes());
        self.state = ClientState::FinalSent { server_signature };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// A server message starting with "e=" carries the server's refusal.
    fn refused_by_server(&self, first_field: &str) -> Result<(), SaslError> {
        match first_field.strip_prefix("e=") {
            Some(message) => Err(SaslError::ServerError {
                mechanism: self.mech.name(),
                message: message.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// "e=" -> error with the server's message; otherwise the server signature is compared in
    /// constant time, proving the server knows the credential (mutual authentication).
    pub fn verify_server_final(&self, msg: &[u8]) -> Result<(), SaslError> {
        let ClientState::FinalSent { server_signature } = &self.state else {
            return Err(SaslError::InvalidState("server-final before server-first"));
        };
        check_size(msg)?;
        let msg = std::str::from_utf8(msg)
            .map_err(|_| SaslError::InvalidServerFinal("not valid UTF-8"))?;
        let first = msg.split(',').next().unwrap_or_default();
        self.refused_by_server(first)?;
        let sig = first
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v).ok())
            .ok_or(SaslError::InvalidServerFinal("missing server signature"))?;
        if bool::from(sig.ct_eq(server_signature)) {
            Ok(())
        } else {
            Err(SaslError::InvalidServerSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC7677_CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const RFC7677_SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const RFC7677_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const RFC7677_CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const RFC7677_SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const RFC7677_CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const RFC7677_SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_credential() -> ScramCredential {
        let salt = B64.decode(RFC7677_SALT).unwrap();
        ScramCredential::from_password(ScramMechanism::Sha256, "pencil", &salt, 4096)
    }

    fn cred_for(mech: ScramMechanism, password: &str) -> ScramCredential {
        ScramCredential::from_password(mech, password, b"0123456789abcdef", MIN_ITERATIONS)
    }

    /// Runs a whole exchange; returns the server's verdict on client-final.
    fn exchange(
        mech: ScramMechanism,
        user: &str,
        client_password: &str,
        stored: ScramCredential,
    ) -> Result<String, SaslError> {
        let mut client = ScramClient::new(mech, user, client_password);
        let mut server = ScramServer::new(mech);
        let first = client.client_first();
        let expected_user = user.to_owned();
        let server_first = server.handle_client_first(&first, |u| {
            assert_eq!(u, expected_user);
            Some(stored)
        })?;
        let client_final = client.handle_server_first(&server_first)?;
        let (server_final, who) = server.handle_client_final(&client_final)?;
        client.verify_server_final(&server_final)?;
        Ok(who)
    }

    #[test]
    fn rfc7677_client_side() {
        let mut client = ScramClient::with_nonce(
            ScramMechanism::Sha256,
            "user",
            "pencil",
            RFC7677_CLIENT_NONCE.to_owned(),
        );
        assert_eq!(client.client_first(), RFC7677_CLIENT_FIRST.as_bytes());
        let client_final = client
            .handle_server_first(RFC7677_SERVER_FIRST.as_bytes())
            .unwrap();
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            RFC7677_CLIENT_FINAL
        );
        client
            .verify_server_final(RFC7677_SERVER_FINAL.as_bytes())
            .unwrap();
    }

    #[test]
    fn rfc7677_server_side() {
        let mut server =
            ScramServer::with_nonce(ScramMechanism::Sha256, RFC7677_SERVER_NONCE.to_owned());
        let server_first = server
            .handle_client_first(RFC7677_CLIENT_FIRST.as_bytes(), |u| {
                assert_eq!(u, "user");
                Some(rfc_credential())
            })
            .unwrap();
        assert_eq!(
            String::from_utf8(server_first).unwrap(),
            RFC7677_SERVER_FIRST
        );
        let (server_final, user) = server
            .handle_client_final(RFC7677_CLIENT_FINAL.as_bytes())
            .unwrap();
        assert_eq!(
            String::from_utf8(server_final).unwrap(),
            RFC7677_SERVER_FINAL
        );
        assert_eq!(user, "user");
    }

    /// RFC 5802 section 5's message shapes, with generated nonces.
    #[test]
    fn rfc5802_message_structure() {
        let mut client = ScramClient::new(ScramMechanism::Sha512, "user", "pencil");
        let first = String::from_utf8(client.client_first()).unwrap();
        let nonce = first.strip_prefix("n,,n=user,r=").unwrap();
        assert!(valid_nonce(nonce));
        let mut server = ScramServer::new(ScramMechanism::Sha512);
        let sf = server
            .handle_client_first(first.as_bytes(), |_| {
                Some(cred_for(ScramMechanism::Sha512, "pencil"))
            })
            .unwrap();
        let sf = String::from_utf8(sf).unwrap();
        let parts: Vec<&str> = sf.split(',').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts[0].starts_with(&format!("r={nonce}")));
        assert!(parts[0].len() > nonce.len() + 2);
        assert_eq!(parts[1], format!("s={}", B64.encode(b"0123456789abcdef")));
        assert_eq!(parts[2], "i=4096");
        let cf = String::from_utf8(client.handle_server_first(sf.as_bytes()).unwrap()).unwrap();
        let parts: Vec<&str> = cf.split(',').collect();
        assert_eq!(parts[0], "c=biws");
        assert_eq!(parts[1], sf.split(',').next().unwrap());
        assert_eq!(
            B64.decode(parts[2].strip_prefix("p=").unwrap())
                .unwrap()
                .len(),
            64
        );
        let (fin, _) = server.handle_client_final(cf.as_bytes()).unwrap();
        let fin = String::from_utf8(fin).unwrap();
        assert_eq!(
            B64.decode(fin.strip_prefix("v=").unwrap()).unwrap().len(),
            64
        );
    }

    #[test]
    fn credential_derivation_matches_rfc_keys() {
        // The RFC vector only verifies if stored/server keys are right; also check lengths per mech.
        for mech in ScramMechanism::all() {
            let c = cred_for(mech, "pw");
            assert_eq!(c.stored_key.len(), mech.digest_len());
            assert_eq!(c.server_key.len(), mech.digest_len());
            let salted = salted_password(mech, "pw", &c.salt, c.iterations);
            assert_eq!(
                ScramCredential::from_salted_password(mech, &c.salt, &salted, c.iterations),
                c
            );
        }
    }

    #[test]
    fn round_trip_both_mechanisms() {
        for mech in ScramMechanism::all() {
            let who = exchange(
                mech,
                "alice",
                "alice-secret",
                cred_for(mech, "alice-secret"),
            )
            .unwrap();
            assert_eq!(who, "alice");
        }
    }

    #[test]
    fn wrong_password_fails() {
        for mech in ScramMechanism::all() {
            let err = exchange(mech, "alice", "wrong", cred_for(mech, "alice-secret")).unwrap_err();
            assert!(matches!(err, SaslError::InvalidProof { .. }), "{err}");
            let text = err.to_string();
            assert!(!text.contains("wrong") && !text.contains("alice-secret"));
        }
    }

    #[test]
    fn mechanism_mismatch_fails() {
        let err = exchange(
            ScramMechanism::Sha256,
            "alice",
            "pw",
            cred_for(ScramMechanism::Sha512, "pw"),
        )
        .unwrap_err();
        assert!(matches!(err, SaslError::InvalidProof { .. }));
    }

    #[test]
    fn unknown_user_fails() {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let err = server
            .handle_client_first(b"n,,n=nobody,r=abc", |_| None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Authentication failed: Invalid user credentials"
        );
    }

    #[test]
    fn final_nonce_may_carry_a_prefix_as_librdkafka_2_0_sends() {
        // librdkafka 2.0.x puts its own nonce in front of the combined one; Kafka accepts that, and the
        // proof (over the message as received) still has to be right.
        let mech = ScramMechanism::Sha256;
        let credential = ScramCredential::from_password(mech, "pencil", b"saltsalt", 4096);
        let mut client = ScramClient::new(mech, "user", "pencil");
        let first = client.client_first();
        let client_nonce = std::str::from_utf8(&first)
            .unwrap()
            .rsplit("r=")
            .next()
            .unwrap()
            .to_owned();
        let mut server = ScramServer::new(mech);
        let server_first = server
            .handle_client_first(&first, |_| Some(credential.clone()))
            .unwrap();
        let server_first_text = std::str::from_utf8(&server_first).unwrap().to_owned();
        let combined = server_first_text
            .strip_prefix("r=")
            .and_then(|r| r.split(',').next())
            .unwrap()
            .to_owned();
        // Build the final message by hand with the prefixed nonce and a proof over it.
        let salted = salted_password(mech, "pencil", b"saltsalt", 4096);
        let client_key = mech.hmac(&salted, b"Client Key");
        let stored_key = mech.hash(&client_key);
        let without_proof = format!("c=biws,r={client_nonce}{combined}");
        let first_bare = std::str::from_utf8(&first)
            .unwrap()
            .trim_start_matches("n,,")
            .to_owned();
        let auth_message = format!("{first_bare},{server_first_text},{without_proof}");
        let signature = mech.hmac(&stored_key, auth_message.as_bytes());
        let proof = xor(&client_key, &signature);
        let last = format!("{without_proof},p={}", B64.encode(proof));
        let (_, user) = server
            .handle_client_final(last.as_bytes())
            .expect("accepted");
        assert_eq!(user, "user");
    }

    #[test]
    fn tampered_nonce_fails() {
        let mut server =
            ScramServer::with_nonce(ScramMechanism::Sha256, RFC7677_SERVER_NONCE.to_owned());
        server
            .handle_client_first(RFC7677_CLIENT_FIRST.as_bytes(), |_| Some(rfc_credential()))
            .unwrap();
        let tampered = RFC7677_CLIENT_FINAL.replace("k0,p=", "k1,p=");
        let err = server.handle_client_final(tampered.as_bytes()).unwrap_err();
        assert!(matches!(err, SaslError::NonceMismatch), "{err}");
        // The exchange is dead after a failure, even with the right message.
        assert!(server
            .handle_client_final(RFC7677_CLIENT_FINAL.as_bytes())
            .is_err());
    }

    #[test]
    fn tampered_proof_and_channel_binding_fail() {
        for (from, to) in [("p=dHzb", "p=eHzb"), ("c=biws", "c=eSws")] {
            let mut server =
                ScramServer::with_nonce(ScramMechanism::Sha256, RFC7677_SERVER_NONCE.to_owned());
            server
                .handle_client_first(RFC7677_CLIENT_FIRST.as_bytes(), |_| Some(rfc_credential()))
                .unwrap();
            let bad = RFC7677_CLIENT_FINAL.replace(from, to);
            assert!(server.handle_client_final(bad.as_bytes()).is_err());
        }
    }

    #[test]
    fn client_rejects_foreign_nonce_and_bad_iterations() {
        let mk = || {
            let mut c = ScramClient::with_nonce(
                ScramMechanism::Sha256,
                "user",
                "pencil",
                RFC7677_CLIENT_NONCE.to_owned(),
            );
            c.client_first();
            c
        };
        let err = mk()
            .handle_server_first(b"r=XXprNGfwEbeRWgbNEkqOsrv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap_err();
        assert!(matches!(err, SaslError::InvalidServerNonce));
        // The server must add its own part.
        let err = mk()
            .handle_server_first(b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap_err();
        assert!(matches!(err, SaslError::InvalidServerNonce));
        for i in ["4095", "16385", "-1"] {
            let msg = RFC7677_SERVER_FIRST.replace("i=4096", &format!("i={i}"));
            let err = mk().handle_server_first(msg.as_bytes()).unwrap_err();
            assert!(matches!(err, SaslError::InvalidIterations { .. }), "{err}");
        }
    }

    #[test]
    fn client_rejects_bad_server_final() {
        let mut c = ScramClient::with_nonce(
            ScramMechanism::Sha256,
            "user",
            "pencil",
            RFC7677_CLIENT_NONCE.to_owned(),
        );
        c.client_first();
        c.handle_server_first(RFC7677_SERVER_FIRST.as_bytes())
            .unwrap();
        let err = c.verify_server_final(b"e=invalid-proof").unwrap_err();
        assert!(err.to_string().contains("invalid-proof"));
        let err = c
            .verify_server_final(b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert!(matches!(err, SaslError::InvalidServerSignature));
        assert!(c.verify_server_final(b"x=1").is_err());
    }

    #[test]
    fn name_escaping_round_trip() {
        assert_eq!(escape_name("a,b=c"), "a=2Cb=3Dc");
        assert_eq!(unescape_name("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        assert_eq!(unescape_name("a=2D"), None);
        assert_eq!(unescape_name("a="), None);
        assert_eq!(unescape_name("a=2"), None);
        for mech in ScramMechanism::all() {
            let user = "we,ird=name";
            let mut client = ScramClient::new(mech, user, "pw");
            let first = String::from_utf8(client.client_first()).unwrap();
            assert!(first.starts_with("n,,n=we=2Cird=3Dname,r="));
            assert_eq!(
                exchange(mech, user, "pw", cred_for(mech, "pw")).unwrap(),
                user
            );
        }
    }

    #[test]
    fn bad_escape_refused() {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let err = server
            .handle_client_first(b"n,,n=a=2Db,r=abc", |_| panic!("no lookup"))
            .unwrap_err();
        assert!(matches!(err, SaslError::InvalidClientFirst(_)));
    }

    #[test]
    fn tokenauth_refused_other_extensions_ignored() {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let err = server
            .handle_client_first(b"n,,n=user,r=abc,tokenauth=true", |_| panic!("no lookup"))
            .unwrap_err();
        assert!(matches!(err, SaslError::TokenAuthUnsupported));
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        server
            .handle_client_first(b"n,,n=user,r=abc,foo=bar", |_| Some(rfc_credential()))
            .unwrap();
    }

    #[test]
    fn authzid_rules() {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        let err = server
            .handle_client_first(b"n,a=admin,n=user,r=abc", |_| panic!("no lookup"))
            .unwrap_err();
        assert!(matches!(err, SaslError::AuthzidMismatch));

        // Same authzid as user is accepted, and the channel binding must then carry that header.
        let mut server = ScramServer::with_nonce(ScramMechanism::Sha256, "srv".to_owned());
        server
            .handle_client_first(b"n,a=user,n=user,r=abc", |_| Some(rfc_credential()))
            .unwrap();
        let err = server
            .handle_client_final(b"c=biws,r=abcsrv,p=AAAA")
            .unwrap_err();
        assert!(matches!(err, SaslError::InvalidClientFinal(_)));
    }

    #[test]
    fn malformed_client_first_refused() {
        for msg in [
            &b"y,,n=user,r=abc"[..],
            b"p=tls-unique,,n=user,r=abc",
            b"n,,m=ext,n=user,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=user",
            b"n,,n=user,r=a,b",
            b"n,,n=user,r=",
            b"n,x=1,n=user,r=abc",
            b"",
            b"\xff,,n=user,r=abc",
        ] {
            let mut server = ScramServer::new(ScramMechanism::Sha256);
            assert!(
                server
                    .handle_client_first(msg, |_| Some(rfc_credential()))
                    .is_err(),
                "{msg:?}"
            );
        }
    }

    #[test]
    fn oversized_messages_refused() {
        let big = vec![b'a'; crate::MAX_MESSAGE_SIZE + 1];
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert!(matches!(
            server.handle_client_first(&big, |_| None),
            Err(SaslError::MessageTooLarge { .. })
        ));
        let mut client = ScramClient::new(ScramMechanism::Sha256, "u", "p");
        client.client_first();
        assert!(matches!(
            client.handle_server_first(&big),
            Err(SaslError::MessageTooLarge { .. })
        ));
    }

    #[test]
    fn out_of_order_calls_refused() {
        let mut server = ScramServer::new(ScramMechanism::Sha256);
        assert!(server
            .handle_client_final(RFC7677_CLIENT_FINAL.as_bytes())
            .is_err());
        let mut client = ScramClient::new(ScramMechanism::Sha256, "u", "p");
        assert!(client
            .handle_server_first(RFC7677_SERVER_FIRST.as_bytes())
            .is_err());
        assert!(client
            .verify_server_final(RFC7677_SERVER_FINAL.as_bytes())
            .is_err());
    }

    #[test]
    fn mechanism_names_and_ids() {
        for mech in ScramMechanism::all() {
            assert_eq!(ScramMechanism::from_name(mech.name()), Some(mech));
            assert_eq!(
                ScramMechanism::from_kafka_type(mech.kafka_type()),
                Some(mech)
            );
            let json = serde_json::to_string(&mech).unwrap();
            assert_eq!(json, format!("\"{}\"", mech.name()));
            assert_eq!(serde_json::from_str::<ScramMechanism>(&json).unwrap(), mech);
        }
        assert_eq!(ScramMechanism::Sha256.kafka_type(), 1);
        assert_eq!(ScramMechanism::Sha512.kafka_type(), 2);
        assert_eq!(ScramMechanism::from_kafka_type(0), None);
        assert_eq!(ScramMechanism::from_name("scram-sha-256"), None);
        assert_eq!(random_salt().len(), 32);
        assert_ne!(random_salt(), random_salt());
    }

    #[test]
    fn debug_hides_secrets() {
        let client = ScramClient::new(ScramMechanism::Sha256, "alice", "hunter2");
        assert!(!format!("{client:?}").contains("hunter2"));
    }
}
