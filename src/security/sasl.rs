//! SASL authentication on SASL_PLAINTEXT and SASL_SSL listeners (SaslHandshake and SaslAuthenticate,
//! KIP-152 framing), with PLAIN against users of the listener's JAAS configuration and SCRAM-SHA-256/512
//! against the salted credentials of the metadata log. The mechanisms themselves are in `kavka-sasl`.
//!
//! A connection on a SASL listener answers only ApiVersions, SaslHandshake and SaslAuthenticate until it
//! has authenticated, with frames bounded by `sasl.server.max.receive.size`. With
//! `connections.max.reauth.ms` set, a session ends after that long unless the client re-authenticates
//! (KIP-368) as the same principal.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kavka_config::BrokerConfig;
use kavka_sasl::{
    parse_jaas_config, parse_plain, passwords_match, ScramCredential, ScramMechanism, ScramServer,
};

use crate::metadata::MetadataImage;
use crate::security::scram_bootstrap::BootstrapScram;

/// A user's SCRAM credential: the metadata log's, or the `--add-scram` one while the log does not hold
/// those yet.
pub fn scram_credential(
    image: &MetadataImage,
    bootstrap: &[BootstrapScram],
    user: &str,
    mechanism: ScramMechanism,
) -> Option<ScramCredential> {
    if let Some(found) = image
        .scram_credentials
        .get(user)
        .and_then(|m| m.get(&mechanism))
    {
        return Some(found.clone());
    }
    if image.scram_bootstrap_applied {
        return None;
    }
    bootstrap
        .iter()
        .find(|c| c.name == user && c.mechanism == mechanism)
        .map(|c| c.credential.clone())
}

/// The mechanisms Kavka serves.
pub const SUPPORTED_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// The pre-authentication frame bound when `sasl.server.max.receive.size` is not set: SASL tokens and
/// ApiVersions are a few hundred bytes, and nothing larger should be read from an unknown peer.
pub const DEFAULT_MAX_RECEIVE_SIZE: usize = 128 * 1024;

/// A listener's SASL settings.
#[derive(Clone)]
pub struct SaslListener {
    /// `sasl.enabled.mechanisms` of the listener.
    pub mechanisms: Vec<String>,
    /// PLAIN users (`user_<name>="<password>"` options of the listener's PLAIN JAAS configuration).
    plain_users: BTreeMap<String, String>,
    /// `connections.max.reauth.ms`; none when 0.
    pub reauth: Option<Duration>,
    /// `connection.failed.authentication.delay.ms`.
    pub failed_delay: Duration,
    /// `sasl.server.max.receive.size`: the frame bound before authentication.
    pub max_receive: usize,
}

impl std::fmt::Debug for SaslListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslListener")
            .field("mechanisms", &self.mechanisms)
            .field("plain_users", &self.plain_users.keys().collect::<Vec<_>>())
            .field("reauth", &self.reauth)
            .finish_non_exhaustive()
    }
}

impl SaslListener {
    /// The settings of listener `name`, with Kafka's `listener.name.<name>.` overrides. Refuses what would
    /// leave the listener unusable: a mechanism Kavka does not have (Kafka's default is GSSAPI, so the key
    /// must be set), or PLAIN without users.
    pub fn from_config(config: &BrokerConfig, name: &str) -> Result<SaslListener, String> {
        let security = &config.security;
        let mechanisms: Vec<String> = security
            .for_listener(name, "sasl.enabled.mechanisms")
            .unwrap_or("GSSAPI")
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        if mechanisms.is_empty() {
            return Err(format!(
                "listener {name} uses SASL but sasl.enabled.mechanisms is empty"
            ));
        }
        if let Some(unsupported) = mechanisms
            .iter()
            .find(|m| !SUPPORTED_MECHANISMS.contains(&m.as_str()))
        {
            return Err(format!(
                "listener {name}: SASL mechanism {unsupported} is not supported (set sasl.enabled.mechanisms to some of {})",
                SUPPORTED_MECHANISMS.join(",")
            ));
        }
        let mut plain_users = BTreeMap::new();
        if mechanisms.iter().any(|m| m == "PLAIN") {
            let key = format!(
                "listener.name.{}.plain.sasl.jaas.config",
                name.to_ascii_lowercase()
            );
            let jaas = security
                .get(&key)
                .or_else(|| security.for_listener(name, "sasl.jaas.config"))
                .ok_or_else(|| {
                    format!("listener {name} enables PLAIN but {key} is not set (its user_<name>=\"<password>\" options are the users)")
                })?;
            let jaas = parse_jaas_config(jaas).map_err(|e| format!("{key}: {e}"))?;
            plain_users = jaas.plain_users();
            if plain_users.is_empty() {
                return Err(format!(
                    "{key} defines no PLAIN users (options user_<name>=\"<password>\")"
                ));
            }
        }
        let number = |key: &str, default: i64| -> Result<i64, String> {
            match security
                .for_listener(name, key)
                .or_else(|| config.explicit_value(key))
            {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| format!("{key}: {v:?} is not a non-negative number")),
            }
        };
        let reauth_ms = number("connections.max.reauth.ms", 0)?;
        Ok(SaslListener {
            mechanisms,
            plain_users,
            reauth: (reauth_ms > 0).then(|| Duration::from_millis(reauth_ms as u64)),
            failed_delay: failed_authentication_delay(config, name)?,
            max_receive: number(
                "sasl.server.max.receive.size",
                DEFAULT_MAX_RECEIVE_SIZE as i64,
            )?
            .clamp(1024, i32::MAX as i64) as usize,
        })
    }
}

/// `connection.failed.authentication.delay.ms` of one listener: its `listener.name.<name>.` override
/// when set, else the broker-wide value (Kafka's default 100). The delay before closing a connection
/// whose SASL login or TLS handshake failed; both paths use this, so a listener's override covers both.
pub fn failed_authentication_delay(
    config: &BrokerConfig,
    listener: &str,
) -> Result<Duration, String> {
    const KEY: &str = "connection.failed.authentication.delay.ms";
    let ms = match config.security.for_listener(listener, KEY) {
        None => i64::from(config.connection_failed_authentication_delay_ms),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map_err(|_| format!("{KEY} of listener {listener}: {v:?} is not a number"))?,
    };
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| format!("{KEY} of listener {listener}: {ms} is negative"))
}

/// How this node authenticates to a SASL listener of another node: Kafka's
/// `sasl.mechanism.inter.broker.protocol` (or `sasl.mechanism.controller.protocol`) and the `username` /
/// `password` options of that listener's JAAS configuration for the mechanism.
#[derive(Clone)]
pub struct SaslClientConfig {
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslClientConfig")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl SaslClientConfig {
    /// The client settings for listener `name`, with the mechanism named by `mechanism_key`.
    pub fn from_config(
        config: &BrokerConfig,
        name: &str,
        mechanism_key: &str,
    ) -> Result<SaslClientConfig, String> {
        let security = &config.security;
        let mechanism = security
            .get(mechanism_key)
            .or_else(|| config.explicit_value(mechanism_key))
            .unwrap_or("GSSAPI")
            .trim()
            .to_string();
        if !SUPPORTED_MECHANISMS.contains(&mechanism.as_str()) {
            return Err(format!(
                "listener {name} carries traffic between nodes over SASL: set {mechanism_key} to one of {} (it is {mechanism})",
                SUPPORTED_MECHANISMS.join(",")
            ));
        }
        let key = format!(
            "listener.name.{}.{}.sasl.jaas.config",
            name.to_ascii_lowercase(),
            mechanism.to_ascii_lowercase()
        );
        let jaas = security
            .get(&key)
            .or_else(|| security.for_listener(name, "sasl.jaas.config"))
            .ok_or_else(|| {
                format!("{key} must hold this node's username and password for {mechanism}")
            })?;
        let jaas = parse_jaas_config(jaas).map_err(|e| format!("{key}: {e}"))?;
        match (jaas.username(), jaas.password()) {
            (Some(username), Some(password)) => Ok(SaslClientConfig {
                mechanism,
                username: username.to_string(),
                password: password.to_string(),
            }),
            _ => Err(format!(
                "{key} must have username and password options: this node logs in with them"
            )),
        }
    }
}

/// Where a connection's authentication stands.
enum Stage {
    /// Waiting for SaslHandshake.
    Handshake,
    /// The mechanism is chosen; SaslAuthenticate carries its tokens.
    Exchange {
        mechanism: String,
        exchange: Exchange,
    },
}

enum Exchange {
    Plain,
    /// Waiting for the client-first message.
    ScramFirst(ScramMechanism),
    /// Waiting for the client-final message.
    ScramFinal(Box<ScramServer>),
}

/// The authentication of one connection on a SASL listener.
pub struct SaslSession {
    stage: Stage,
    /// The mechanism and principal of the last successful authentication.
    authenticated: Option<(String, String)>,
    /// When the session ends unless the client re-authenticates (KIP-368).
    expires: Option<Instant>,
}

/// What the connection does after a SASL request.
pub enum SaslStep {
    /// Answer and go on.
    Respond(ResponseBody),
    /// Authentication failed: answer (after the failed-authentication delay) and close.
    Fail {
        response: ResponseBody,
        reason: String,
    },
}

/// A SASL response to encode.
pub enum ResponseBody {
    Handshake(SaslHandshakeResponse),
    Authenticate(SaslAuthenticateResponse),
}

impl Default for SaslSession {
    fn default() -> Self {
        SaslSession::new()
    }
}

impl SaslSession {
    pub fn new() -> SaslSession {
        SaslSession {
            stage: Stage::Handshake,
            authenticated: None,
            expires: None,
        }
    }

    /// The principal, once authenticated and while the session lasts.
    pub fn principal(&self, now: Instant) -> Option<&str> {
        if self.expires.is_some_and(|end| now >= end) {
            return None;
        }
        self.authenticated.as_ref().map(|(_, p)| p.as_str())
    }

    /// Whether the client authenticated at some point and its session has since ended.
    pub fn expired(&self, now: Instant) -> bool {
        self.authenticated.is_some() && self.expires.is_some_and(|end| now >= end)
    }

    /// Whether the client has authenticated at some point (the pre-authentication limits then no longer
    /// apply, even while it re-authenticates).
    pub fn ever_authenticated(&self) -> bool {
        self.authenticated.is_some()
    }

    pub fn handshake(
        &mut self,
        listener: &SaslListener,
        request: &SaslHandshakeRequest,
    ) -> SaslStep {
        let enabled: Vec<_> = listener
            .mechanisms
            .iter()
            .map(|m| crate::handlers::str_bytes(m.clone()))
            .collect();
        let response = |code: i16| {
            ResponseBody::Handshake(
                SaslHandshakeResponse::default()
                    .with_error_code(code)
                    .with_mechanisms(enabled.clone()),
            )
        };
        if !matches!(self.stage, Stage::Handshake) {
            return SaslStep::Fail {
                response: response(ResponseError::IllegalSaslState.code()),
                reason: "SaslHandshake received in the middle of an authentication".into(),
            };
        }
        let mechanism = request.mechanism.as_str();
        if !listener.mechanisms.iter().any(|m| m == mechanism) {
            return SaslStep::Fail {
                response: response(ResponseError::UnsupportedSaslMechanism.code()),
                reason: format!("unsupported SASL mechanism {mechanism:?}"),
            };
        }
        // KIP-368: a re-authentication keeps the mechanism of the session.
        if let Some((used, _)) = &self.authenticated {
            if used != mechanism {
                return SaslStep::Fail {
                    response: response(ResponseError::IllegalSaslState.code()),
                    reason: format!(
                        "re-authentication with mechanism {mechanism} in a session authenticated with {used}"
                    ),
                };
            }
        }
        self.stage = Stage::Exchange {
            mechanism: mechanism.to_string(),
            exchange: match ScramMechanism::from_name(mechanism) {
                Some(scram) => Exchange::ScramFirst(scram),
                None => Exchange::Plain,
            },
        };
        SaslStep::Respond(response(0))
    }

    /// One SaslAuthenticate token. `scram` finds a user's SCRAM credential; `version` decides whether the
    /// session lifetime is reported (v1+).
    pub fn authenticate(
        &mut self,
        listener: &SaslListener,
        scram: &dyn Fn(&str, ScramMechanism) -> Option<ScramCredential>,
        request: &SaslAuthenticateRequest,
        version: i16,
        now: Instant,
    ) -> SaslStep {
        let failed = |code: ResponseError, message: String, reason: String| SaslStep::Fail {
            response: ResponseBody::Authenticate(
                SaslAuthenticateResponse::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(crate::handlers::str_bytes(message))),
            ),
            reason,
        };
        let stage = std::mem::replace(&mut self.stage, Stage::Handshake);
        let Stage::Exchange {
            mechanism,
            exchange,
        } = stage
        else {
            return failed(
                ResponseError::IllegalSaslState,
                "Unexpected SaslAuthenticate request: no SaslHandshake before it".into(),
                "SaslAuthenticate without SaslHandshake".into(),
            );
        };
        let token = &request.auth_bytes[..];
        let outcome: Result<(Vec<u8>, Option<String>), kavka_sasl::SaslError> = match exchange {
            Exchange::Plain => {
                parse_plain(token).and_then(|plain| match listener.plain_users.get(&plain.user) {
                    Some(expected) if passwords_match(expected, &plain.password) => {
                        Ok((Vec::new(), Some(plain.user)))
                    }
                    _ => Err(kavka_sasl::SaslError::InvalidUsernameOrPassword),
                })
            }
            Exchange::ScramFirst(mechanism_of_exchange) => {
                let mut server = ScramServer::new(mechanism_of_exchange);
                let lookup = |user: &str| scram(user, mechanism_of_exchange);
                server.handle_client_first(token, lookup).map(|challenge| {
                    self.stage = Stage::Exchange {
                        mechanism: mechanism.clone(),
                        exchange: Exchange::ScramFinal(Box::new(server)),
                    };
                    (challenge, None)
                })
            }
            Exchange::ScramFinal(mut server) => server
                .handle_client_final(token)
                .map(|(last, user)| (last, Some(user))),
        };
        match outcome {
            Err(e) => failed(
                ResponseError::SaslAuthenticationFailed,
                e.to_string(),
                e.to_string(),
            ),
            Ok((auth_bytes, None)) => SaslStep::Respond(ResponseBody::Authenticate(
                SaslAuthenticateResponse::default().with_auth_bytes(auth_bytes.into()),
            )),
            Ok((auth_bytes, Some(user))) => {
                let principal = format!("User:{user}");
                if let Some((_, previous)) = &self.authenticated {
                    if *previous != principal {
                        return failed(
                            ResponseError::SaslAuthenticationFailed,
                            "Cannot change principals during re-authentication".into(),
                            format!("re-authentication as {principal} in a session of {previous}"),
                        );
                    }
                }
                self.authenticated = Some((mechanism, principal));
                self.expires = listener.reauth.map(|lifetime| now + lifetime);
                let lifetime_ms = if version >= 1 {
                    listener.reauth.map_or(0, |d| d.as_millis() as i64)
                } else {
                    0
                };
                SaslStep::Respond(ResponseBody::Authenticate(
                    SaslAuthenticateResponse::default()
                        .with_auth_bytes(auth_bytes.into())
                        .with_session_lifetime_ms(lifetime_ms),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_sasl::{plain_token, ScramClient, ScramCredential};

    fn listener(reauth_ms: Option<u64>) -> SaslListener {
        SaslListener {
            mechanisms: SUPPORTED_MECHANISMS.iter().map(|m| m.to_string()).collect(),
            plain_users: [("alice".to_string(), "alice-secret".to_string())].into(),
            reauth: reauth_ms.map(Duration::from_millis),
            failed_delay: Duration::ZERO,
            max_receive: DEFAULT_MAX_RECEIVE_SIZE,
        }
    }

    fn handshake(session: &mut SaslSession, l: &SaslListener, mechanism: &str) -> i16 {
        let request = SaslHandshakeRequest::default()
            .with_mechanism(crate::handlers::str_bytes(mechanism.to_string()));
        match session.handshake(l, &request) {
            SaslStep::Respond(ResponseBody::Handshake(r)) => r.error_code,
            SaslStep::Fail {
                response: ResponseBody::Handshake(r),
                ..
            } => r.error_code,
            _ => panic!("not a handshake response"),
        }
    }

    /// Error code, auth bytes and session lifetime of one SaslAuthenticate.
    fn authenticate(
        session: &mut SaslSession,
        l: &SaslListener,
        image: &MetadataImage,
        token: Vec<u8>,
        now: Instant,
    ) -> (i16, Vec<u8>, i64) {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(token.into());
        let scram = |user: &str, mechanism| scram_credential(image, &[], user, mechanism);
        match session.authenticate(l, &scram, &request, 2, now) {
            SaslStep::Respond(ResponseBody::Authenticate(r))
            | SaslStep::Fail {
                response: ResponseBody::Authenticate(r),
                ..
            } => (r.error_code, r.auth_bytes.to_vec(), r.session_lifetime_ms),
            _ => panic!("not an authenticate response"),
        }
    }

    #[test]
    fn plain_right_and_wrong_passwords() {
        let (l, image, now) = (listener(None), MetadataImage::default(), Instant::now());
        let mut ok = SaslSession::new();
        assert_eq!(handshake(&mut ok, &l, "PLAIN"), 0);
        let (code, _, lifetime) = authenticate(
            &mut ok,
            &l,
            &image,
            plain_token("alice", "alice-secret"),
            now,
        );
        assert_eq!((code, lifetime), (0, 0));
        assert_eq!(ok.principal(now), Some("User:alice"));
        let mut bad = SaslSession::new();
        assert_eq!(handshake(&mut bad, &l, "PLAIN"), 0);
        let (code, _, _) = authenticate(&mut bad, &l, &image, plain_token("alice", "nope"), now);
        assert_eq!(code, ResponseError::SaslAuthenticationFailed.code());
        assert_eq!(bad.principal(now), None);
        let mut unknown = SaslSession::new();
        assert_eq!(
            handshake(&mut unknown, &l, "GSSAPI"),
            ResponseError::UnsupportedSaslMechanism.code()
        );
    }

    #[test]
    fn scram_exchange_against_the_image() {
        let (l, now) = (listener(None), Instant::now());
        let mut image = MetadataImage::default();
        let mechanism = ScramMechanism::Sha512;
        image
            .scram_credentials
            .entry("bob".into())
            .or_default()
            .insert(
                mechanism,
                ScramCredential::from_password(mechanism, "bob-secret", b"salt-salt", 4096),
            );
        for (password, expected) in [("bob-secret", 0), ("wrong", 58)] {
            let mut session = SaslSession::new();
            assert_eq!(handshake(&mut session, &l, "SCRAM-SHA-512"), 0);
            let mut client = ScramClient::new(mechanism, "bob", password);
            let (code, server_first, _) =
                authenticate(&mut session, &l, &image, client.client_first(), now);
            assert_eq!(code, 0);
            let client_final = client.handle_server_first(&server_first).expect("final");
            let (code, server_final, _) = authenticate(&mut session, &l, &image, client_final, now);
            assert_eq!(code, expected, "password {password}");
            if expected == 0 {
                client
                    .verify_server_final(&server_final)
                    .expect("server proof");
                assert_eq!(session.principal(now), Some("User:bob"));
            }
        }
        // A SHA-256 exchange does not find a SHA-512-only user.
        let mut session = SaslSession::new();
        assert_eq!(handshake(&mut session, &l, "SCRAM-SHA-256"), 0);
        let mut client = ScramClient::new(ScramMechanism::Sha256, "bob", "bob-secret");
        let (code, _, _) = authenticate(&mut session, &l, &image, client.client_first(), now);
        assert_eq!(code, 58);
    }

    #[test]
    fn reauthentication_keeps_the_principal_and_extends_the_session() {
        let (l, image, start) = (
            listener(Some(1000)),
            MetadataImage::default(),
            Instant::now(),
        );
        let mut plain_users = l.plain_users.clone();
        plain_users.insert("mallory".into(), "m".into());
        let l = SaslListener { plain_users, ..l };
        let mut session = SaslSession::new();
        handshake(&mut session, &l, "PLAIN");
        let (code, _, lifetime) = authenticate(
            &mut session,
            &l,
            &image,
            plain_token("alice", "alice-secret"),
            start,
        );
        assert_eq!((code, lifetime), (0, 1000));
        let later = start + Duration::from_millis(1500);
        assert!(session.expired(later) && session.principal(later).is_none());
        // Re-authenticating before the end moves it.
        let soon = start + Duration::from_millis(800);
        assert_eq!(handshake(&mut session, &l, "PLAIN"), 0);
        authenticate(
            &mut session,
            &l,
            &image,
            plain_token("alice", "alice-secret"),
            soon,
        );
        assert_eq!(session.principal(later), Some("User:alice"));
        // Another mechanism, or another user, is refused.
        assert_eq!(
            handshake(&mut session, &l, "SCRAM-SHA-256"),
            ResponseError::IllegalSaslState.code()
        );
        let mut session2 = SaslSession::new();
        handshake(&mut session2, &l, "PLAIN");
        authenticate(
            &mut session2,
            &l,
            &image,
            plain_token("alice", "alice-secret"),
            start,
        );
        handshake(&mut session2, &l, "PLAIN");
        let (code, _, _) = authenticate(
            &mut session2,
            &l,
            &image,
            plain_token("mallory", "m"),
            start,
        );
        assert_eq!(code, ResponseError::SaslAuthenticationFailed.code());
    }

    #[test]
    fn bootstrap_credentials_count_until_the_log_has_them() {
        let mechanism = ScramMechanism::Sha256;
        let boot = BootstrapScram {
            name: "node".into(),
            mechanism,
            credential: ScramCredential::from_password(mechanism, "boot", b"salt", 4096),
        };
        let mut image = MetadataImage::default();
        let found = |image: &MetadataImage| {
            scram_credential(image, std::slice::from_ref(&boot), "node", mechanism)
        };
        assert_eq!(found(&image), Some(boot.credential.clone()));
        assert_eq!(
            scram_credential(
                &image,
                std::slice::from_ref(&boot),
                "node",
                ScramMechanism::Sha512
            ),
            None
        );
        image.scram_bootstrap_applied = true;
        // Deleted (or never written) after the bootstrap: the file no longer counts.
        assert_eq!(found(&image), None);
        let changed = ScramCredential::from_password(mechanism, "new", b"salt", 4096);
        image
            .scram_credentials
            .entry("node".into())
            .or_default()
            .insert(mechanism, changed.clone());
        assert_eq!(found(&image), Some(changed));
    }

    #[test]
    fn listener_configuration_is_checked() {
        let config = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            kavka_config::BrokerConfig::from_pairs(&pairs)
                .expect("config")
                .config
        };
        // Kafka's default mechanism is GSSAPI, which Kavka does not have.
        let err = SaslListener::from_config(&config(&[]), "SASL_PLAINTEXT").unwrap_err();
        assert!(err.contains("GSSAPI"), "{err}");
        let err = SaslListener::from_config(
            &config(&[("sasl.enabled.mechanisms", "PLAIN")]),
            "SASL_PLAINTEXT",
        )
        .unwrap_err();
        assert!(err.contains("plain.sasl.jaas.config"), "{err}");
        let ok = SaslListener::from_config(
            &config(&[
                ("listener.name.sasl_plaintext.sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512"),
                (
                    "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                    "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"p\";",
                ),
                ("connections.max.reauth.ms", "60000"),
            ]),
            "SASL_PLAINTEXT",
        )
        .expect("listener");
        assert_eq!(ok.mechanisms, ["PLAIN", "SCRAM-SHA-512"]);
        assert_eq!(ok.reauth, Some(Duration::from_secs(60)));
        assert_eq!(ok.failed_delay, Duration::from_millis(100));
        assert!(!format!("{ok:?}").contains("\"p\""));

        // The failed-authentication delay: the listener's override, else the broker-wide value.
        let delays = config(&[
            ("connection.failed.authentication.delay.ms", "250"),
            (
                "listener.name.internal.connection.failed.authentication.delay.ms",
                "1000",
            ),
        ]);
        assert_eq!(
            failed_authentication_delay(&delays, "INTERNAL"),
            Ok(Duration::from_secs(1))
        );
        assert_eq!(
            failed_authentication_delay(&delays, "CLIENT"),
            Ok(Duration::from_millis(250))
        );
        let negative = config(&[(
            "listener.name.internal.connection.failed.authentication.delay.ms",
            "-1",
        )]);
        assert!(failed_authentication_delay(&negative, "INTERNAL").is_err());
    }
}
