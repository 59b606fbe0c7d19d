//! Kafka's `ssl.*` settings turned into rustls configurations.
//!
//! Every key is read for one listener with [`SecurityConfig::for_listener`]: `listener.name.<name>.<key>`
//! wins over `<key>`. The keys, their defaults (Kafka 4.x) and what Kavka does with them:
//!
//! | key | default | meaning here |
//! |---|---|---|
//! | `ssl.keystore.type` | `JKS` | `JKS`, `PKCS12` or `PEM` (any case). For JKS and PKCS12 the file's own format wins, as with Java's `keystore.type.compat`. |
//! | `ssl.keystore.location` | - | the key store file; for PEM a file holding the private key and the certificate chain (e.g. `cat privkey.pem fullchain.pem`) |
//! | `ssl.keystore.password` | - | JKS/PKCS12 store password; required with a location; refused with PEM (Kafka's rule) |
//! | `ssl.key.password` | store password | JKS/PKCS12 key entry password; for PEM the password of an `ENCRYPTED PRIVATE KEY` (PKCS#8) |
//! | `ssl.keystore.certificate.chain` | - | PEM certificate chain as inline text (PEM type only, with `ssl.keystore.key`) |
//! | `ssl.keystore.key` | - | PEM private key as inline text (PEM type only, with the chain, without a location) |
//! | `ssl.keystore.key.location` | - | **Kavka extension**: with `ssl.keystore.type=PEM`, a separate private key file, `ssl.keystore.location` then naming the certificate chain file (Let's Encrypt's `fullchain.pem` + `privkey.pem`, both watched for reload) |
//! | `ssl.truststore.type` | `JKS` | `JKS`, `PKCS12` or `PEM` |
//! | `ssl.truststore.location` | - | trust store file (PEM: one or more `CERTIFICATE`s) |
//! | `ssl.truststore.password` | - | JKS/PKCS12 password; when unset the store is read without integrity check, as Java does; refused with PEM |
//! | `ssl.truststore.certificates` | - | trusted certificates as inline PEM text (PEM type only) |
//! | `ssl.client.auth` | `none` | `required`, `requested` or `none`; on SASL_SSL listeners only the listener-prefixed key counts (Kafka, KIP-684) |
//! | `ssl.enabled.protocols` | `TLSv1.2,TLSv1.3` | only these two exist in rustls; `TLSv1.1`, `TLSv1`, `SSLv3` are refused |
//! | `ssl.protocol` | `TLSv1.3` | only `TLSv1.2` has an effect: outgoing connections then stay on TLS 1.2 (Kafka's client behaviour) |
//! | `ssl.cipher.suites` | all | Java/IANA names (`TLS_AES_128_GCM_SHA256`, `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384`, ...); empty = rustls' defaults; a name rustls' ring provider lacks is an error |
//! | `ssl.endpoint.identification.algorithm` | `https` | outgoing connections: `https` checks the peer's host name or IP against its certificate, empty checks the chain only |
//!
//! Private keys may be RSA, ECDSA (P-256, P-384) or Ed25519. With no trust store, client authentication
//! and outgoing connections are refused at configuration time (Kafka would fall back to the JVM's CA
//! list; point `ssl.truststore.type=PEM` + `ssl.truststore.location` at the system bundle, e.g.
//! `/etc/ssl/certs/ca-certificates.crt`, for public CAs).
//!
//! Nothing here installs a process-wide rustls provider: each configuration carries its own ring
//! [`CryptoProvider`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kavka_config::SecurityConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore,
    ServerConfig, SignatureScheme, SupportedProtocolVersion,
};

use super::store::{self, BinaryFormat, KeyMaterial};

/// `ssl.keystore.type` (see the module documentation).
pub const SSL_KEYSTORE_TYPE: &str = "ssl.keystore.type";
/// `ssl.keystore.location` (see the module documentation).
pub const SSL_KEYSTORE_LOCATION: &str = "ssl.keystore.location";
/// `ssl.keystore.password` (see the module documentation).
pub const SSL_KEYSTORE_PASSWORD: &str = "ssl.keystore.password";
/// `ssl.key.password` (see the module documentation).
pub const SSL_KEY_PASSWORD: &str = "ssl.key.password";
/// `ssl.keystore.key` (see the module documentation).
pub const SSL_KEYSTORE_KEY: &str = "ssl.keystore.key";
/// `ssl.keystore.certificate.chain` (see the module documentation).
pub const SSL_KEYSTORE_CERTIFICATE_CHAIN: &str = "ssl.keystore.certificate.chain";
/// Kavka extension (not a Kafka key): a PEM private key file beside the chain file in
/// `ssl.keystore.location`.
pub const SSL_KEYSTORE_KEY_LOCATION: &str = "ssl.keystore.key.location";
/// `ssl.truststore.type` (see the module documentation).
pub const SSL_TRUSTSTORE_TYPE: &str = "ssl.truststore.type";
/// `ssl.truststore.location` (see the module documentation).
pub const SSL_TRUSTSTORE_LOCATION: &str = "ssl.truststore.location";
/// `ssl.truststore.password` (see the module documentation).
pub const SSL_TRUSTSTORE_PASSWORD: &str = "ssl.truststore.password";
/// `ssl.truststore.certificates` (see the module documentation).
pub const SSL_TRUSTSTORE_CERTIFICATES: &str = "ssl.truststore.certificates";
/// `ssl.client.auth` (see the module documentation).
pub const SSL_CLIENT_AUTH: &str = "ssl.client.auth";
/// `ssl.enabled.protocols` (see the module documentation).
pub const SSL_ENABLED_PROTOCOLS: &str = "ssl.enabled.protocols";
/// `ssl.protocol` (see the module documentation).
pub const SSL_PROTOCOL: &str = "ssl.protocol";
/// `ssl.cipher.suites` (see the module documentation).
pub const SSL_CIPHER_SUITES: &str = "ssl.cipher.suites";
/// `ssl.endpoint.identification.algorithm` (see the module documentation).
pub const SSL_ENDPOINT_IDENTIFICATION_ALGORITHM: &str = "ssl.endpoint.identification.algorithm";

/// Why a listener's TLS settings cannot be used. Messages name the listener, the key and the file; they
/// never contain a password or key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A key's value is not one Kavka accepts.
    #[error("listener {listener}: invalid {key}: {reason}")]
    InvalidValue {
        listener: String,
        key: String,
        reason: String,
    },
    /// Keys that contradict each other, or one that needs another.
    #[error("listener {listener}: {reason}")]
    Config { listener: String, reason: String },
    /// A file named by a key cannot be read.
    #[error("listener {listener}: cannot read {path} ({key}): {source}")]
    Io {
        listener: String,
        key: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A key store, trust store or PEM value cannot be loaded.
    #[error("listener {listener}: cannot load {what} from {origin}: {reason}")]
    Load {
        listener: String,
        /// `key store` or `trust store`.
        what: &'static str,
        /// `file <path> (<key>)` or the key of an inline value.
        origin: String,
        reason: String,
    },
    /// rustls refused the resulting configuration.
    #[error("listener {listener}: {context}: {source}")]
    Rustls {
        listener: String,
        context: String,
        #[source]
        source: rustls::Error,
    },
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A client must present a certificate the trust store vouches for.
    Required,
    /// A client may present one; if it does, it must be trusted.
    Requested,
    /// Client certificates are not asked for (Kafka's default).
    None,
}

/// Options of [`server_config_with`].
#[derive(Default, Clone)]
pub struct ServerTlsOptions {
    /// Serves this resolver's certificate instead of loading the key store once (hot reload: a resolver
    /// whose [`CertifiedKey`] is swapped when [`watched_files`] change, built with [`load_certified_key`]).
    pub cert_resolver: Option<Arc<dyn ResolvesServerCert>>,
    /// The listener is SASL_SSL: only a listener-prefixed `ssl.client.auth` applies (Kafka's rule).
    pub sasl_ssl: bool,
}

impl fmt::Debug for ServerTlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsOptions")
            .field("cert_resolver", &self.cert_resolver.is_some())
            .field("sasl_ssl", &self.sasl_ssl)
            .finish()
    }
}

/// The rustls server configuration of an SSL or SASL_SSL listener: its key store as server certificate,
/// `ssl.client.auth` against its trust store, its protocols and cipher suites.
pub fn server_config(
    listener: &str,
    security: &SecurityConfig,
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with(listener, security, ServerTlsOptions::default())
}

/// [`server_config`] with options (a certificate resolver for hot reload, SASL_SSL client-auth rule).
pub fn server_config_with(
    listener: &str,
    security: &SecurityConfig,
    options: ServerTlsOptions,
) -> Result<Arc<ServerConfig>, TlsError> {
    let s = Settings { listener, security };
    let provider = s.crypto_provider()?;
    let versions = s.protocol_versions(false)?;
    let auth = client_auth(listener, security, options.sasl_ssl)?;
    // Kafka loads (and so validates) a configured trust store whatever ssl.client.auth says.
    let roots = s.root_store()?;
    let resolver: Arc<dyn ResolvesServerCert> = match options.cert_resolver {
        Some(r) => r,
        None => Arc::new(SingleCertAndKey::from(load_certified_key(
            listener, security,
        )?)),
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| s.rustls("cannot use ssl.enabled.protocols / ssl.cipher.suites", e))?;
    let builder = match auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Required | ClientAuth::Requested => {
            let roots = roots.ok_or_else(|| {
                s.config(format!(
                    "{}={} needs a trust store: set {} or {}",
                    s.key(SSL_CLIENT_AUTH),
                    if auth == ClientAuth::Required {
                        "required"
                    } else {
                        "requested"
                    },
                    s.key(SSL_TRUSTSTORE_LOCATION),
                    s.key(SSL_TRUSTSTORE_CERTIFICATES)
                ))
            })?;
            let mut verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
            if auth == ClientAuth::Requested {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier.build().map_err(|e| {
                s.config(format!("cannot build the client certificate verifier: {e}"))
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    Ok(Arc::new(builder.with_cert_resolver(resolver)))
}

/// The rustls client configuration of this node's own connections to other nodes' listeners of this
/// name: its key store as client certificate (none if no key store is configured), its trust store, its
/// protocols and cipher suites, and `ssl.endpoint.identification.algorithm`.
pub fn client_config(
    listener: &str,
    security: &SecurityConfig,
) -> Result<Arc<ClientConfig>, TlsError> {
    let s = Settings { listener, security };
    let provider = s.crypto_provider()?;
    let versions = s.protocol_versions(true)?;
    let roots = s.root_store()?.ok_or_else(|| {
        s.config(format!(
            "outgoing TLS connections need a trust store: set {} or {}",
            s.key(SSL_TRUSTSTORE_LOCATION),
            s.key(SSL_TRUSTSTORE_CERTIFICATES)
        ))
    })?;
    let verify_host = match s.raw(SSL_ENDPOINT_IDENTIFICATION_ALGORITHM).map(str::trim) {
        None => true,
        Some("") => false,
        Some(v) if v.eq_ignore_ascii_case("https") => true,
        Some(other) => {
            return Err(s.invalid(
                SSL_ENDPOINT_IDENTIFICATION_ALGORITHM,
                format!(
                "{other:?}: only \"https\" (verify the host name) and \"\" (do not) are supported"
            ),
            ))
        }
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| s.config(format!("cannot build the server certificate verifier: {e}")))?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| s.rustls("cannot use ssl.enabled.protocols / ssl.cipher.suites", e))?;
    let builder = if verify_host {
        builder.with_webpki_verifier(webpki)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoHostnameVerifier { inner: webpki }))
    };
    let config = match s.keystore()? {
        Some(material) => builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(
            certified_key(&s, material)?,
        ))),
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The listener's key store as a rustls [`CertifiedKey`] (the private key checked against the
/// end-entity certificate), for a [`ResolvesServerCert`] that swaps it at runtime. An error if the
/// listener has no key store.
pub fn load_certified_key(
    listener: &str,
    security: &SecurityConfig,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let s = Settings { listener, security };
    let material = s.keystore()?.ok_or_else(|| {
        s.config(format!(
            "no key store: set {} (with {}), or {}=PEM with {} and {}",
            s.key(SSL_KEYSTORE_LOCATION),
            s.key(SSL_KEYSTORE_PASSWORD),
            s.key(SSL_KEYSTORE_TYPE),
            s.key(SSL_KEYSTORE_CERTIFICATE_CHAIN),
            s.key(SSL_KEYSTORE_KEY)
        ))
    })?;
    certified_key(&s, material).map(Arc::new)
}

/// The files this listener's TLS settings read (key store, separate PEM key, trust store), for watching:
/// when one changes, rebuild with [`load_certified_key`] / [`server_config_with`]. Inline PEM values
/// read no file.
pub fn watched_files(listener: &str, security: &SecurityConfig) -> Vec<PathBuf> {
    let s = Settings { listener, security };
    let mut files = Vec::new();
    for key in [
        SSL_KEYSTORE_LOCATION,
        SSL_KEYSTORE_KEY_LOCATION,
        SSL_TRUSTSTORE_LOCATION,
    ] {
        if let Some(path) = s.get(key) {
            let path = PathBuf::from(path);
            if !files.contains(&path) {
                files.push(path);
            }
        }
    }
    files
}

/// `ssl.client.auth` of a listener (default `none`). On a SASL_SSL listener only
/// `listener.name.<name>.ssl.client.auth` counts, as in Kafka.
pub fn client_auth(
    listener: &str,
    security: &SecurityConfig,
    sasl_ssl: bool,
) -> Result<ClientAuth, TlsError> {
    let s = Settings { listener, security };
    let value = if sasl_ssl {
        security.get(&s.prefixed(SSL_CLIENT_AUTH))
    } else {
        s.get(SSL_CLIENT_AUTH)
    };
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("none") => Ok(ClientAuth::None),
        Some("required") => Ok(ClientAuth::Required),
        Some("requested") => Ok(ClientAuth::Requested),
        Some(other) => Err(s.invalid(
            SSL_CLIENT_AUTH,
            format!("{other:?}: expected required, requested or none"),
        )),
    }
}

/// The Java/IANA names of the cipher suites Kavka can offer (rustls' ring provider), most preferred
/// first: the values `ssl.cipher.suites` accepts.
pub fn supported_cipher_suites() -> Vec<String> {
    rustls::crypto::ring::default_provider()
        .cipher_suites
        .iter()
        .map(|s| iana_name(*s))
        .collect()
}

fn iana_name(suite: rustls::SupportedCipherSuite) -> String {
    let name = format!("{:?}", suite.suite());
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

fn certified_key(s: &Settings<'_>, material: KeyMaterial) -> Result<CertifiedKey, TlsError> {
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(material.chain, material.key, &provider).map_err(|e| {
        let reason = match e {
            rustls::Error::InconsistentKeys(_) => {
                "the private key does not match the first certificate of the chain".to_string()
            }
            other => format!(
                "unusable private key or certificate ({other}); supported keys are RSA, ECDSA P-256/P-384 \
                 and Ed25519"
            ),
        };
        s.load_error("key store", s.keystore_origin(), reason)
    })
}

/// Checks the chain like [`WebPkiServerVerifier`] but accepts a certificate issued for another name:
/// `ssl.endpoint.identification.algorithm=` (empty). webpki checks the chain first and the name last, so a
/// name error means the chain is trusted.
#[derive(Debug)]
struct NoHostnameVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for NoHostnameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[DistinguishedName]> {
        self.inner.root_hint_subjects()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreType {
    Jks,
    Pkcs12,
    Pem,
}

impl fmt::Display for StoreType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreType::Jks => "JKS",
            StoreType::Pkcs12 => "PKCS12",
            StoreType::Pem => "PEM",
        })
    }
}

fn split_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

/// One listener's view of the security settings.
struct Settings<'a> {
    listener: &'a str,
    security: &'a SecurityConfig,
}

impl<'a> Settings<'a> {
    fn prefixed(&self, key: &str) -> String {
        format!("listener.name.{}.{key}", self.listener.to_ascii_lowercase())
    }

    /// The value as set (possibly empty).
    fn raw(&self, key: &str) -> Option<&'a str> {
        self.security.for_listener(self.listener, key)
    }

    /// The value, unset when empty.
    fn get(&self, key: &str) -> Option<&'a str> {
        self.raw(key).filter(|v| !v.trim().is_empty())
    }

    /// The key as the user set it: with its listener prefix if that is where the value comes from.
    fn key(&self, key: &str) -> String {
        let prefixed = self.prefixed(key);
        if self.security.get(&prefixed).is_some() {
            prefixed
        } else {
            key.to_string()
        }
    }

    fn invalid(&self, key: &str, reason: impl Into<String>) -> TlsError {
        TlsError::InvalidValue {
            listener: self.listener.to_string(),
            key: self.key(key),
            reason: reason.into(),
        }
    }

    fn config(&self, reason: impl Into<String>) -> TlsError {
        TlsError::Config {
            listener: self.listener.to_string(),
            reason: reason.into(),
        }
    }

    fn rustls(&self, context: &str, source: rustls::Error) -> TlsError {
        TlsError::Rustls {
            listener: self.listener.to_string(),
            context: context.to_string(),
            source,
        }
    }

    fn load_error(&self, what: &'static str, origin: String, reason: String) -> TlsError {
        TlsError::Load {
            listener: self.listener.to_string(),
            what,
            origin,
            reason,
        }
    }

    fn file_origin(&self, key: &str, path: &str) -> String {
        format!("file {path} ({})", self.key(key))
    }

    fn keystore_origin(&self) -> String {
        match (
            self.get(SSL_KEYSTORE_LOCATION),
            self.get(SSL_KEYSTORE_KEY_LOCATION),
        ) {
            (Some(p), Some(k)) => format!(
                "{} and {}",
                self.file_origin(SSL_KEYSTORE_LOCATION, p),
                self.file_origin(SSL_KEYSTORE_KEY_LOCATION, k)
            ),
            (Some(p), None) => self.file_origin(SSL_KEYSTORE_LOCATION, p),
            _ => format!(
                "{} and {}",
                self.key(SSL_KEYSTORE_CERTIFICATE_CHAIN),
                self.key(SSL_KEYSTORE_KEY)
            ),
        }
    }

    fn read(&self, key: &str, path: &str) -> Result<Vec<u8>, TlsError> {
        std::fs::read(Path::new(path)).map_err(|source| TlsError::Io {
            listener: self.listener.to_string(),
            key: self.key(key),
            path: PathBuf::from(path),
            source,
        })
    }

    fn store_type(&self, key: &str) -> Result<StoreType, TlsError> {
        match self.get(key).map(str::trim) {
            None => Ok(StoreType::Jks),
            Some(v) if v.eq_ignore_ascii_case("JKS") => Ok(StoreType::Jks),
            Some(v) if v.eq_ignore_ascii_case("PKCS12") => Ok(StoreType::Pkcs12),
            Some(v) if v.eq_ignore_ascii_case("PEM") => Ok(StoreType::Pem),
            Some(v) => Err(self.invalid(
                key,
                format!("{v:?}: supported types are JKS, PKCS12 and PEM"),
            )),
        }
    }

    /// Kafka's `DefaultSslEngineFactory.createKeystore`, plus the Kavka `ssl.keystore.key.location`.
    fn keystore(&self) -> Result<Option<KeyMaterial>, TlsError> {
        let ty = self.store_type(SSL_KEYSTORE_TYPE)?;
        let location = self.get(SSL_KEYSTORE_LOCATION);
        let password = self.raw(SSL_KEYSTORE_PASSWORD);
        let key_password = self.raw(SSL_KEY_PASSWORD);
        let inline_key = self.get(SSL_KEYSTORE_KEY);
        let inline_chain = self.get(SSL_KEYSTORE_CERTIFICATE_CHAIN);
        let key_location = self.get(SSL_KEYSTORE_KEY_LOCATION);
        let k = |key: &str| self.key(key);
        let pem_password_refused = || {
            self.config(format!(
                "{} cannot be used with PEM key stores; an encrypted PEM key's password goes in {}",
                k(SSL_KEYSTORE_PASSWORD),
                k(SSL_KEY_PASSWORD)
            ))
        };
        let load = |origin: String, r: Result<KeyMaterial, String>| {
            r.map_err(|reason| self.load_error("key store", origin, reason))
        };
        if let Some(key_pem) = inline_key {
            if ty != StoreType::Pem {
                return Err(self.config(format!(
                    "{} can be set only with {}=PEM, but the key store type is {ty}",
                    k(SSL_KEYSTORE_KEY),
                    k(SSL_KEYSTORE_TYPE)
                )));
            }
            let Some(chain_pem) = inline_chain else {
                return Err(self.config(format!(
                    "{} is set but {} is not",
                    k(SSL_KEYSTORE_KEY),
                    k(SSL_KEYSTORE_CERTIFICATE_CHAIN)
                )));
            };
            if location.is_some() || key_location.is_some() {
                return Err(self.config(format!(
                    "both {} and {} are set; use the inline PEM values or files, not both (a PEM file in {} \
                     may hold the key and the chain)",
                    k(SSL_KEYSTORE_KEY),
                    k(if location.is_some() {
                        SSL_KEYSTORE_LOCATION
                    } else {
                        SSL_KEYSTORE_KEY_LOCATION
                    }),
                    k(SSL_KEYSTORE_LOCATION)
                )));
            }
            if password.is_some() {
                return Err(pem_password_refused());
            }
            let chain = store::pem_certificates(chain_pem.as_bytes()).map_err(|reason| {
                self.load_error("key store", k(SSL_KEYSTORE_CERTIFICATE_CHAIN), reason)
            })?;
            let key =
                store::pem_private_key(key_pem.as_bytes(), key_password, &k(SSL_KEY_PASSWORD))
                    .map_err(|reason| self.load_error("key store", k(SSL_KEYSTORE_KEY), reason))?;
            return Ok(Some(KeyMaterial { chain, key }));
        }
        if inline_chain.is_some() {
            return Err(self.config(format!(
                "{} is set but {} is not",
                k(SSL_KEYSTORE_CERTIFICATE_CHAIN),
                k(SSL_KEYSTORE_KEY)
            )));
        }
        if ty == StoreType::Pem {
            if let Some(path) = location {
                if password.is_some() {
                    return Err(pem_password_refused());
                }
                let text = self.read(SSL_KEYSTORE_LOCATION, path)?;
                let origin = self.file_origin(SSL_KEYSTORE_LOCATION, path);
                let chain = store::pem_certificates(&text)
                    .map_err(|reason| self.load_error("key store", origin.clone(), reason))?;
                let (key_text, key_origin) = match key_location {
                    Some(key_path) => (
                        self.read(SSL_KEYSTORE_KEY_LOCATION, key_path)?,
                        self.file_origin(SSL_KEYSTORE_KEY_LOCATION, key_path),
                    ),
                    None => (text, origin),
                };
                let key = store::pem_private_key(&key_text, key_password, &k(SSL_KEY_PASSWORD))
                    .map_err(|reason| self.load_error("key store", key_origin, reason))?;
                return Ok(Some(KeyMaterial { chain, key }));
            }
        }
        if key_location.is_some() {
            return Err(self.config(format!(
                "{} (a Kavka extension) needs {}=PEM and {} naming the certificate chain file",
                k(SSL_KEYSTORE_KEY_LOCATION),
                k(SSL_KEYSTORE_TYPE),
                k(SSL_KEYSTORE_LOCATION)
            )));
        }
        match (location, password) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(self.config(format!(
                "{} is set but {} is not",
                k(SSL_KEYSTORE_PASSWORD),
                k(SSL_KEYSTORE_LOCATION)
            ))),
            (Some(_), None) => Err(self.config(format!(
                "{} is set but {} is not",
                k(SSL_KEYSTORE_LOCATION),
                k(SSL_KEYSTORE_PASSWORD)
            ))),
            (Some(path), Some(password)) => {
                let data = self.read(SSL_KEYSTORE_LOCATION, path)?;
                let origin = self.file_origin(SSL_KEYSTORE_LOCATION, path);
                let key_password = key_password.unwrap_or(password);
                let format = store::sniff(&data)
                    .map_err(|reason| self.load_error("key store", origin.clone(), reason))?;
                let material = match format {
                    BinaryFormat::Jks => store::jks_key_entry(&data, password, key_password),
                    BinaryFormat::Pkcs12 => store::pkcs12_key_entry(&data, password, key_password),
                };
                load(origin, material).map(Some)
            }
        }
    }

    /// Kafka's `DefaultSslEngineFactory.createTruststore`.
    fn truststore(&self) -> Result<Option<Vec<CertificateDer<'static>>>, TlsError> {
        let ty = self.store_type(SSL_TRUSTSTORE_TYPE)?;
        let location = self.get(SSL_TRUSTSTORE_LOCATION);
        let password = self.raw(SSL_TRUSTSTORE_PASSWORD);
        let inline = self.get(SSL_TRUSTSTORE_CERTIFICATES);
        let k = |key: &str| self.key(key);
        let pem_password_refused = || {
            self.config(format!(
                "{} cannot be used with PEM trust stores",
                k(SSL_TRUSTSTORE_PASSWORD)
            ))
        };
        if let Some(pem) = inline {
            if ty != StoreType::Pem {
                return Err(self.config(format!(
                    "{} can be set only with {}=PEM, but the trust store type is {ty}",
                    k(SSL_TRUSTSTORE_CERTIFICATES),
                    k(SSL_TRUSTSTORE_TYPE)
                )));
            }
            if location.is_some() {
                return Err(self.config(format!(
                    "both {} and {} are set",
                    k(SSL_TRUSTSTORE_LOCATION),
                    k(SSL_TRUSTSTORE_CERTIFICATES)
                )));
            }
            if password.is_some() {
                return Err(pem_password_refused());
            }
            return store::pem_certificates(pem.as_bytes())
                .map(Some)
                .map_err(|reason| {
                    self.load_error("trust store", k(SSL_TRUSTSTORE_CERTIFICATES), reason)
                });
        }
        let Some(path) = location else {
            if password.is_some() {
                return Err(self.config(format!(
                    "{} is set but {} is not",
                    k(SSL_TRUSTSTORE_PASSWORD),
                    k(SSL_TRUSTSTORE_LOCATION)
                )));
            }
            return Ok(None);
        };
        let data = self.read(SSL_TRUSTSTORE_LOCATION, path)?;
        let origin = self.file_origin(SSL_TRUSTSTORE_LOCATION, path);
        let certs = if ty == StoreType::Pem {
            if password.is_some() {
                return Err(pem_password_refused());
            }
            store::pem_certificates(&data)
        } else {
            store::sniff(&data).and_then(|format| match format {
                BinaryFormat::Jks => store::jks_trusted(&data, password),
                BinaryFormat::Pkcs12 => store::pkcs12_trusted(&data, password),
            })
        };
        certs
            .map(Some)
            .map_err(|reason| self.load_error("trust store", origin, reason))
    }

    fn root_store(&self) -> Result<Option<Arc<RootCertStore>>, TlsError> {
        let Some(certs) = self.truststore()? else {
            return Ok(None);
        };
        let mut roots = RootCertStore::empty();
        for (i, cert) in certs.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                let origin = match self.get(SSL_TRUSTSTORE_LOCATION) {
                    Some(p) => self.file_origin(SSL_TRUSTSTORE_LOCATION, p),
                    None => self.key(SSL_TRUSTSTORE_CERTIFICATES),
                };
                self.load_error(
                    "trust store",
                    origin,
                    format!("certificate #{} is not a usable trust anchor: {e}", i + 1),
                )
            })?;
        }
        Ok(Some(Arc::new(roots)))
    }

    fn crypto_provider(&self) -> Result<Arc<CryptoProvider>, TlsError> {
        let mut provider = rustls::crypto::ring::default_provider();
        let names = self
            .get(SSL_CIPHER_SUITES)
            .map(split_list)
            .unwrap_or_default();
        if !names.is_empty() {
            let mut chosen = Vec::new();
            let mut unknown = Vec::new();
            for name in names {
                match provider
                    .cipher_suites
                    .iter()
                    .find(|s| iana_name(**s).eq_ignore_ascii_case(name))
                {
                    Some(suite) if !chosen.contains(suite) => chosen.push(*suite),
                    Some(_) => {}
                    None => unknown.push(name),
                }
            }
            if !unknown.is_empty() {
                return Err(self.invalid(
                    SSL_CIPHER_SUITES,
                    format!(
                        "not supported: {}; Kavka supports {}",
                        unknown.join(", "),
                        supported_cipher_suites().join(", ")
                    ),
                ));
            }
            provider.cipher_suites = chosen;
        }
        Ok(Arc::new(provider))
    }

    fn protocol_versions(
        &self,
        client: bool,
    ) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
        let configured = self
            .get(SSL_ENABLED_PROTOCOLS)
            .map(split_list)
            .unwrap_or_default();
        let names = if configured.is_empty() {
            vec!["TLSv1.2", "TLSv1.3"]
        } else {
            configured
        };
        let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
        for name in names {
            let v = if name.eq_ignore_ascii_case("TLSv1.3") {
                &rustls::version::TLS13
            } else if name.eq_ignore_ascii_case("TLSv1.2") {
                &rustls::version::TLS12
            } else if ["TLSv1.1", "TLSv1", "SSLv3", "SSLv2", "SSLv2Hello"]
                .iter()
                .any(|old| old.eq_ignore_ascii_case(name))
            {
                return Err(self.invalid(
                    SSL_ENABLED_PROTOCOLS,
                    format!("{name} is not supported: Kavka speaks TLSv1.2 and TLSv1.3 only"),
                ));
            } else {
                return Err(self.invalid(
                    SSL_ENABLED_PROTOCOLS,
                    format!("unknown protocol {name:?}: expected TLSv1.2 and/or TLSv1.3"),
                ));
            };
            if !versions.contains(&v) {
                versions.push(v);
            }
        }
        if client
            && self
                .get(SSL_PROTOCOL)
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("TLSv1.2"))
        {
            versions.retain(|v| v.version != rustls::ProtocolVersion::TLSv1_3);
            if versions.is_empty() {
                return Err(self.config(format!(
                    "{}=TLSv1.2 leaves no protocol of {} for outgoing connections",
                    self.key(SSL_PROTOCOL),
                    self.key(SSL_ENABLED_PROTOCOLS)
                )));
            }
        }
        // rustls' own check ("no usable cipher suites") says less.
        let provider_suites = self.crypto_provider()?;
        if !provider_suites
            .cipher_suites
            .iter()
            .any(|s| versions.contains(&s.version()))
        {
            return Err(self.invalid(
                SSL_CIPHER_SUITES,
                format!(
                    "none of these cipher suites can be used with {} ({})",
                    self.key(SSL_ENABLED_PROTOCOLS),
                    versions
                        .iter()
                        .map(|v| if v.version == rustls::ProtocolVersion::TLSv1_3 {
                            "TLSv1.3"
                        } else {
                            "TLSv1.2"
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            ));
        }
        Ok(versions)
    }
}
