//! `kavka certs`: the certificates a TLS-secured cluster needs, without openssl or keytool.
//!
//! Three commands, each writing into one directory (`--out`, default [`DEFAULT_DIR`]):
//!
//! - [`create_ca`] (`kavka certs ca`): the cluster's certificate authority, `ca.pem` and `ca-key.pem`, and
//!   `truststore.p12`, a PKCS#12 truststore holding the CA as a trusted certificate entry (alias
//!   [`TRUSTSTORE_ALIAS`]).
//! - [`create_node`] (`kavka certs node`): a node (broker and/or controller) certificate signed by the CA,
//!   with the DNS names and IP addresses its listeners are reached by as subject alternative names and
//!   both the serverAuth and clientAuth extended key usages (nodes are TLS servers to clients and TLS
//!   clients of each other).
//! - [`create_client`] (`kavka certs client`): a client certificate (clientAuth only) and two property files
//!   ready for clients: `<name>-client-ssl.properties` (the Java client and Kafka's command-line tools) and
//!   `<name>-librdkafka.properties` (librdkafka and everything built on it).
//!
//! For a node or client `<name>` the files are `<name>.pem` (certificate chain: the leaf, then the CA),
//! `<name>-key.pem` (the private key, unencrypted PKCS#8 PEM) and `<name>.p12` (a PKCS#12 keystore holding
//! the key and the chain under alias `<name>`). Keystores and the truststore are protected by the
//! `--password` given or, by default, by a generated one written to `<name>.password`
//! (`truststore.password` for the truststore), without a trailing newline.
//!
//! Subjects: the CA is `CN=Kavka CA <8 hex digits>, O=Kavka`; a node or client is `CN=<name>, O=Kavka`
//! ([`ORGANIZATION`]). The mTLS principal of a client is `User:` followed by the subject in RFC 2253 form,
//! as Kafka prints it: `User:CN=<name>,O=Kavka` (before any `ssl.principal.mapping.rules`).
//!
//! Keys are ECDSA P-256. The CA is valid for [`CA_VALIDITY`] (10 years), may sign end-entity certificates
//! only (path length 0) and carries keyCertSign and cRLSign; leaves are valid for at most
//! [`LEAF_VALIDITY`] (825 days, never past the CA's own expiry) and are explicitly not CAs. Every
//! certificate's validity starts [`BACKDATE`] in the past, for clocks slightly behind this one.
//!
//! Existing files are never replaced without `force`; private keys, keystores, password files and the
//! client property files (they hold passwords) are written with mode 0600, each file atomically (a
//! temporary file renamed into place).

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy, PrivateKeyChain};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData,
    SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// The directory `kavka certs` writes to (and reads the CA from) when no `--out` is given.
pub const DEFAULT_DIR: &str = "./kavka-certs";
/// The organization (`O=`) of every subject `kavka certs` writes.
pub const ORGANIZATION: &str = "Kavka";
/// How long the CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(3652 * 24 * 3600);
/// How long a node or client certificate is valid (the CA/Browser Forum's former maximum).
pub const LEAF_VALIDITY: Duration = Duration::from_secs(825 * 24 * 3600);
/// How far in the past every certificate's validity starts.
pub const BACKDATE: Duration = Duration::from_secs(3600);
/// The alias of the CA's entry in `truststore.p12`.
pub const TRUSTSTORE_ALIAS: &str = "kavka-ca";
/// The shortest password accepted (keytool refuses shorter store passwords).
pub const MIN_PASSWORD_LEN: usize = 6;

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
const TRUSTSTORE: &str = "truststore.p12";
const TRUSTSTORE_PASSWORD: &str = "truststore.password";
/// Names whose files would collide with the CA's.
const RESERVED_NAMES: [&str; 3] = ["ca", "ca-key", "truststore"];
const GENERATED_PASSWORD_LEN: usize = 24;

/// What every `kavka certs` command is given.
#[derive(Debug, Clone)]
pub struct Options {
    /// The directory written to, and the CA read from; created if missing.
    pub dir: PathBuf,
    /// The keystore (and, for the CA, truststore) password; `None` generates one and writes it to a
    /// `.password` file.
    pub password: Option<String>,
    /// Replace existing files instead of refusing.
    pub force: bool,
}

impl Options {
    /// Options for `dir`, a generated password, no overwriting.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Options {
            dir: dir.into(),
            password: None,
            force: false,
        }
    }
}

/// A change to the output directory, reported as it happens (`kavka certs` prints one line each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileEvent<'a> {
    /// The file was written (created or replaced).
    Wrote(&'a Path),
    /// A stale password file was removed: `--force` with `--password` replaced the keystore it opened.
    Removed(&'a Path),
}

impl fmt::Display for FileEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileEvent::Wrote(p) => write!(f, "Wrote {}", p.display()),
            FileEvent::Removed(p) => write!(f, "Removed {} (stale password file)", p.display()),
        }
    }
}

/// Why a `kavka certs` command failed. Every message is one line meant for an operator.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// A file the command would write exists and `force` was not given.
    #[error("{} already exists; pass --force to replace {what}", path.display())]
    Exists { path: PathBuf, what: String },
    /// `node` or `client` found no CA in the directory.
    #[error("no CA in {}: {} not found; create one first with `kavka certs ca --out {}`", dir.display(), missing, dir.display())]
    NoCa { dir: PathBuf, missing: &'static str },
    /// The CA files exist but cannot sign.
    #[error("the CA in {} cannot be used: {reason}", dir.display())]
    BadCa { dir: PathBuf, reason: String },
    /// A node or client name that cannot be a file name and CN.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// A `--dns` value that is not a DNS name.
    #[error("invalid DNS name {name:?}: {reason}")]
    InvalidDnsName { name: String, reason: String },
    /// A `--password` that cannot be used.
    #[error("invalid password: {0}")]
    InvalidPassword(String),
    /// The truststore exists but neither its password file nor `--password` opens it.
    #[error("cannot open {}: {reason}", path.display())]
    Truststore { path: PathBuf, reason: String },
    /// A file-system operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Key or certificate generation failed.
    #[error("cannot generate {what}: {source}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    /// Building a PKCS#12 file failed.
    #[error("cannot build the PKCS#12 file {file}: {reason}")]
    Pkcs12 { file: String, reason: String },
    /// The system's random source failed.
    #[error("cannot generate a password: the system random source failed")]
    Random,
}

type Result<T> = std::result::Result<T, CertsError>;

/// Creates the CA in `opts.dir`: `ca.pem`, `ca-key.pem`, `truststore.p12` and, unless a password is given,
/// `truststore.password`. Refuses to replace an existing CA unless `opts.force`.
pub fn create_ca(opts: &Options, report: &mut dyn FnMut(FileEvent<'_>)) -> Result<()> {
    check_password(opts.password.as_deref())?;
    if !opts.force {
        for file in [CA_CERT, CA_KEY, TRUSTSTORE, TRUSTSTORE_PASSWORD] {
            let path = opts.dir.join(file);
            if exists(&path)? {
                return Err(CertsError::Exists {
                    path,
                    what: "the CA (certificates it issued will no longer be trusted)".into(),
                });
            }
        }
    }
    let now = unix_now();
    let ca = generate_ca(now)?;
    let mut out = OutDir::create(opts, report)?;
    out.write(CA_KEY, ca.key_pem.as_bytes(), Mode::Secret)?;
    out.write(CA_CERT, ca.cert_pem.as_bytes(), Mode::Public)?;
    write_truststore(&mut out, &ca.cert_der, opts.password.as_deref())?;
    Ok(())
}

/// Issues the node certificate `name` with the given DNS names and IP addresses as subject alternative
/// names (just `name` as a DNS name when both are empty), signed by the CA in `opts.dir`.
pub fn create_node(
    opts: &Options,
    name: &str,
    dns_names: &[String],
    ips: &[IpAddr],
    report: &mut dyn FnMut(FileEvent<'_>),
) -> Result<()> {
    let dns_names = if dns_names.is_empty() && ips.is_empty() {
        vec![name.to_string()]
    } else {
        dns_names.to_vec()
    };
    let kind = LeafKind::Node {
        dns_names,
        ips: ips.to_vec(),
    };
    create_leaf(opts, name, &kind, report)
}

/// Issues the client certificate `name`, signed by the CA in `opts.dir`, and writes its Java and
/// librdkafka property files.
pub fn create_client(
    opts: &Options,
    name: &str,
    report: &mut dyn FnMut(FileEvent<'_>),
) -> Result<()> {
    create_leaf(opts, name, &LeafKind::Client, report)
}

/// The principal Kafka (and Kavka) derives from the certificate `kavka certs` issues for `name`, before
/// any `ssl.principal.mapping.rules`.
pub fn principal_for(name: &str) -> String {
    format!("User:CN={},O={ORGANIZATION}", rfc2253_escape(name))
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LeafKind {
    Node {
        dns_names: Vec<String>,
        ips: Vec<IpAddr>,
    },
    Client,
}

impl LeafKind {
    fn label(&self) -> &'static str {
        match self {
            LeafKind::Node { .. } => "node",
            LeafKind::Client => "client",
        }
    }
}

fn create_leaf(
    opts: &Options,
    name: &str,
    kind: &LeafKind,
    report: &mut dyn FnMut(FileEvent<'_>),
) -> Result<()> {
    check_name(name)?;
    check_password(opts.password.as_deref())?;
    let sans = match kind {
        LeafKind::Node { dns_names, ips } => subject_alt_names(dns_names, ips)?,
        LeafKind::Client => Vec::new(),
    };
    let files = leaf_files(name, kind);
    if !opts.force {
        for file in &files {
            let path = opts.dir.join(file);
            if exists(&path)? {
                return Err(CertsError::Exists {
                    path,
                    what: format!("the {} certificate {name}", kind.label()),
                });
            }
        }
    }
    let ca = load_ca(&opts.dir)?;
    // Known before anything is written: a client's property files need the truststore's password.
    let truststore = match kind {
        LeafKind::Client => Some(truststore_state(&opts.dir, opts.password.as_deref())?),
        LeafKind::Node { .. } => None,
    };
    let now = unix_now();
    let leaf = issue_leaf(&ca, name, kind, sans, now)?;
    let (password, write_password_file) = match &opts.password {
        Some(p) => (p.clone(), false),
        None => (generate_password()?, true),
    };
    let p12 = keystore_p12(
        name,
        &leaf.key_der,
        &[&leaf.cert_der, &ca.cert_der],
        &password,
    )?;

    let mut out = OutDir::create(opts, report)?;
    out.write(
        &format!("{name}-key.pem"),
        leaf.key_pem.as_bytes(),
        Mode::Secret,
    )?;
    let chain = format!("{}{}", leaf.cert_pem, pem_certificate(&ca.cert_der));
    out.write(&format!("{name}.pem"), chain.as_bytes(), Mode::Public)?;
    out.write(&format!("{name}.p12"), &p12, Mode::Secret)?;
    out.password_file(&format!("{name}.password"), &password, write_password_file)?;

    if let Some(truststore) = truststore {
        let truststore_password = match truststore {
            TruststoreState::Opens(p) => p,
            TruststoreState::Missing => {
                write_truststore(&mut out, &ca.cert_der, opts.password.as_deref())?
            }
        };
        let dir = absolute_dir(&opts.dir)?;
        let java = java_client_properties(name, &dir, &password, &truststore_password)?;
        out.write(
            &format!("{name}-client-ssl.properties"),
            java.as_bytes(),
            Mode::Secret,
        )?;
        let rdkafka = librdkafka_properties(name, &dir)?;
        out.write(
            &format!("{name}-librdkafka.properties"),
            rdkafka.as_bytes(),
            Mode::Public,
        )?;
    }
    Ok(())
}

/// The files a leaf command owns (checked before writing, and refused without `force`).
fn leaf_files(name: &str, kind: &LeafKind) -> Vec<String> {
    let mut files = vec![
        format!("{name}.pem"),
        format!("{name}-key.pem"),
        format!("{name}.p12"),
        format!("{name}.password"),
    ];
    if *kind == LeafKind::Client {
        files.push(format!("{name}-client-ssl.properties"));
        files.push(format!("{name}-librdkafka.properties"));
    }
    files
}

// ---- generation ----

/// A freshly generated CA.
struct GeneratedCa {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: String,
}

fn generate_ca(now: u64) -> Result<GeneratedCa> {
    let gen_err = |source| CertsError::Generate {
        what: "the CA".into(),
        source,
    };
    let mut params = CertificateParams::default();
    let mut id = [0u8; 4];
    fill_random(&mut id)?;
    let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
    params.distinguished_name = subject(&format!("Kavka CA {id}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(
        &mut params,
        now.saturating_sub(BACKDATE.as_secs()),
        now + CA_VALIDITY.as_secs(),
    );
    let key = KeyPair::generate().map_err(gen_err)?;
    let key_pem = key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(params, key).map_err(gen_err)?;
    Ok(GeneratedCa {
        cert_pem: ca.pem(),
        cert_der: ca.der().to_vec(),
        key_pem,
    })
}

/// The CA read back from its directory, ready to sign.
struct LoadedCa {
    cert_der: Vec<u8>,
    not_after_unix: u64,
    issuer: Issuer<'static, KeyPair>,
}

fn load_ca(dir: &Path) -> Result<LoadedCa> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    for (path, file) in [(&cert_path, CA_CERT), (&key_path, CA_KEY)] {
        if !exists(path)? {
            return Err(CertsError::NoCa {
                dir: dir.to_path_buf(),
                missing: file,
            });
        }
    }
    let bad = |reason: String| CertsError::BadCa {
        dir: dir.to_path_buf(),
        reason,
    };
    let cert_pem = read(&cert_path)?;
    let cert_der = CertificateDer::from_pem_slice(&cert_pem)
        .map_err(|e| bad(format!("{CA_CERT} holds no PEM certificate ({e})")))?
        .to_vec();
    let key_pem = String::from_utf8(read(&key_path)?)
        .map_err(|_| bad(format!("{CA_KEY} is not a PEM file")))?;
    let key = KeyPair::from_pem(&key_pem)
        .map_err(|e| bad(format!("{CA_KEY} holds no usable private key ({e})")))?;

    let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
        .map_err(|e| bad(format!("{CA_CERT} cannot be parsed ({e})")))?;
    if !x509.is_ca() {
        return Err(bad(format!("{CA_CERT} is not a CA certificate")));
    }
    if x509.tbs_certificate.subject_pki.raw != key.subject_public_key_info().as_slice() {
        return Err(bad(format!("{CA_KEY} is not the key of {CA_CERT}")));
    }
    let not_after = x509.validity().not_after.timestamp();
    if not_after <= unix_now() as i64 {
        return Err(bad(format!(
            "{CA_CERT} expired on {}",
            x509.validity().not_after
        )));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name_of(x509.subject())
        .map_err(|reason| bad(format!("{CA_CERT}: {reason}")))?;
    // The leaves' authority key identifier must be the CA's subject key identifier.
    params.key_identifier_method = x509
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
            }
            _ => None,
        })
        .unwrap_or(KeyIdMethod::Sha256);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(LoadedCa {
        not_after_unix: not_after as u64,
        issuer: Issuer::new(params, key),
        cert_der,
    })
}

/// `name` (the CA's subject) as rcgen's distinguished name, every attribute with its original string
/// type, so that the issuer name of the leaves is byte-for-byte the CA's subject (path building compares
/// names as bytes).
fn distinguished_name_of(
    name: &x509_parser::x509::X509Name<'_>,
) -> std::result::Result<DistinguishedName, String> {
    use x509_parser::asn1_rs::Tag;
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(
                "multi-valued or empty relative distinguished names are not supported".into(),
            );
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or("an attribute type OID is too large")?
            .collect();
        let ty = DnType::from_oid(&oid);
        let data = attr.as_slice();
        let text =
            || std::str::from_utf8(data).map_err(|_| "an attribute is not valid text".to_string());
        let invalid = |e: rcgen::Error| format!("unsupported subject attribute ({e})");
        let value = match attr.attr_value().tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_string()),
            Tag::PrintableString => DnValue::PrintableString(text()?.try_into().map_err(invalid)?),
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into().map_err(invalid)?),
            Tag::T61String => DnValue::TeletexString(text()?.try_into().map_err(invalid)?),
            Tag::BmpString => DnValue::BmpString(
                rcgen::string::BmpString::from_utf16be(data.to_vec()).map_err(invalid)?,
            ),
            Tag::UniversalString => DnValue::UniversalString(
                rcgen::string::UniversalString::from_utf32be(data.to_vec()).map_err(invalid)?,
            ),
            other => return Err(format!("unsupported subject attribute string type {other}")),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

/// An issued node or client certificate with its key.
struct IssuedLeaf {
    cert_pem: String,
    cert_der: Vec<u8>,
    key_pem: String,
    key_der: Vec<u8>,
}

fn issue_leaf(
    ca: &LoadedCa,
    name: &str,
    kind: &LeafKind,
    sans: Vec<SanType>,
    now: u64,
) -> Result<IssuedLeaf> {
    let gen_err = |source| CertsError::Generate {
        what: format!("the {} certificate {name}", kind.label()),
        source,
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match kind {
        LeafKind::Node { .. } => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        LeafKind::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.subject_alt_names = sans;
    params.use_authority_key_identifier_extension = true;
    set_validity(
        &mut params,
        now.saturating_sub(BACKDATE.as_secs()),
        (now + LEAF_VALIDITY.as_secs()).min(ca.not_after_unix),
    );
    let key = KeyPair::generate().map_err(gen_err)?;
    let cert = params.signed_by(&key, &ca.issuer).map_err(gen_err)?;
    Ok(IssuedLeaf {
        cert_pem: cert.pem(),
        cert_der: cert.der().to_vec(),
        key_pem: key.serialize_pem(),
        key_der: key.serialize_der(),
    })
}

/// `CN=<common_name>, O=Kavka`, written most general first (O, then CN) as usual, so that RFC 2253 (which
/// reverses the order) prints `CN=<common_name>,O=Kavka`.
fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_validity(params: &mut CertificateParams, not_before_unix: u64, not_after_unix: u64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(not_before_unix);
    params.not_after = epoch + Duration::from_secs(not_after_unix);
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn subject_alt_names(dns_names: &[String], ips: &[IpAddr]) -> Result<Vec<SanType>> {
    let mut sans = Vec::new();
    for name in dns_names {
        check_dns_name(name)?;
        let ia5 =
            name.as_str()
                .try_into()
                .map_err(|e: rcgen::Error| CertsError::InvalidDnsName {
                    name: name.clone(),
                    reason: e.to_string(),
                })?;
        sans.push(SanType::DnsName(ia5));
    }
    sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    Ok(sans)
}

fn check_dns_name(name: &str) -> Result<()> {
    let invalid = |reason: &str| CertsError::InvalidDnsName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.parse::<IpAddr>().is_ok() {
        return Err(invalid("an IP address; pass it with --ip"));
    }
    // A wildcard is allowed as the whole leftmost label only.
    let rest = name.strip_prefix("*.").unwrap_or(name);
    if rustls_pki_types::DnsName::try_from(rest).is_err() || rest.contains('*') {
        return Err(invalid(
            "not a DNS name (letters, digits, hyphens and dots; a leading `*.` for a wildcard)",
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<()> {
    let invalid = |reason: &str| CertsError::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() || name.len() > 64 {
        return Err(invalid("must be 1 to 64 characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(invalid(
            "only letters, digits, `.`, `_` and `-` are allowed",
        ));
    }
    if name.starts_with(['.', '-']) {
        return Err(invalid("must not start with `.` or `-`"));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(invalid("its files would collide with the CA's"));
    }
    Ok(())
}

fn check_password(password: Option<&str>) -> Result<()> {
    let Some(p) = password else { return Ok(()) };
    if p.chars().count() < MIN_PASSWORD_LEN {
        return Err(CertsError::InvalidPassword(format!(
            "must be at least {MIN_PASSWORD_LEN} characters (keytool refuses shorter ones)"
        )));
    }
    if p.chars().any(char::is_control) {
        return Err(CertsError::InvalidPassword(
            "must not contain control characters".into(),
        ));
    }
    Ok(())
}

/// A random password of letters and digits (about 143 bits).
fn generate_password() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut password = String::with_capacity(GENERATED_PASSWORD_LEN);
    while password.len() < GENERATED_PASSWORD_LEN {
        let mut buf = [0u8; 32];
        fill_random(&mut buf)?;
        // Rejection sampling keeps the characters uniform: 248 = 4 * 62.
        for b in buf.iter().filter(|b| **b < 248) {
            if password.len() < GENERATED_PASSWORD_LEN {
                password.push(ALPHABET[usize::from(*b) % ALPHABET.len()] as char);
            }
        }
    }
    Ok(password)
}

fn fill_random(buf: &mut [u8]) -> Result<()> {
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(buf)
        .map_err(|_| CertsError::Random)
}

// ---- PKCS#12 ----

/// A PKCS#12 keystore holding `key_der` (PKCS#8) and `chain` (leaf first) under `alias`.
fn keystore_p12(alias: &str, key_der: &[u8], chain: &[&[u8]], password: &str) -> Result<Vec<u8>> {
    let file = format!("{alias}.p12");
    let p12_err = |e: p12_keystore::error::Error| CertsError::Pkcs12 {
        file: file.clone(),
        reason: e.to_string(),
    };
    let key = p12_keystore::PrivateKey::from_der(key_der).map_err(p12_err)?;
    let certs = chain
        .iter()
        .map(|der| p12_keystore::Certificate::from_der(der))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(p12_err)?;
    // Java names the local key id after the time; any bytes unique within the store do.
    let local_key_id = format!("kavka {alias}");
    let mut store = KeyStore::new();
    store.add_entry(
        alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, certs)),
    );
    store.writer(password).write().map_err(p12_err)
}

/// A PKCS#12 truststore holding the CA as a trusted certificate entry.
fn truststore_p12(ca_der: &[u8], password: &str) -> Result<Vec<u8>> {
    let p12_err = |e: p12_keystore::error::Error| CertsError::Pkcs12 {
        file: TRUSTSTORE.into(),
        reason: e.to_string(),
    };
    let cert = p12_keystore::Certificate::from_der(ca_der).map_err(p12_err)?;
    let mut store = KeyStore::new();
    store.add_entry(TRUSTSTORE_ALIAS, KeyStoreEntry::Certificate(cert));
    store.writer(password).write().map_err(p12_err)
}

/// Writes `truststore.p12` (and `truststore.password` unless `password` is given); returns its password.
fn write_truststore(out: &mut OutDir<'_>, ca_der: &[u8], password: Option<&str>) -> Result<String> {
    let (password, write_file) = match password {
        Some(p) => (p.to_string(), false),
        None => (generate_password()?, true),
    };
    let p12 = truststore_p12(ca_der, &password)?;
    out.write(TRUSTSTORE, &p12, Mode::Public)?;
    out.password_file(TRUSTSTORE_PASSWORD, &password, write_file)?;
    Ok(password)
}

enum TruststoreState {
    /// The truststore exists and opens with this password.
    Opens(String),
    /// There is no truststore (a CA brought from elsewhere): it is written with the client.
    Missing,
}

/// The truststore's password: `truststore.password` if present, else `--password`; whichever opens it.
fn truststore_state(dir: &Path, given: Option<&str>) -> Result<TruststoreState> {
    let path = dir.join(TRUSTSTORE);
    if !exists(&path)? {
        return Ok(TruststoreState::Missing);
    }
    let data = read(&path)?;
    let password_path = dir.join(TRUSTSTORE_PASSWORD);
    let from_file = if exists(&password_path)? {
        Some(read_password_file(&password_path)?)
    } else {
        None
    };
    for candidate in from_file.iter().map(String::as_str).chain(given) {
        if KeyStore::from_pkcs12(&data, candidate, Pkcs12ImportPolicy::Strict).is_ok() {
            return Ok(TruststoreState::Opens(candidate.to_string()));
        }
    }
    let reason = match (&from_file, given) {
        (Some(_), _) => format!(
            "the password in {} does not open it",
            password_path.display()
        ),
        (None, Some(_)) => format!(
            "{} is missing and --password does not open it",
            password_path.display()
        ),
        (None, None) => format!(
            "{} is missing; pass the truststore's password with --password",
            password_path.display()
        ),
    };
    Err(CertsError::Truststore { path, reason })
}

/// A password file's content: the file without trailing whitespace (a newline added by an editor).
pub fn read_password_file(path: &Path) -> Result<String> {
    let bytes = read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| CertsError::Io {
        action: "read",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
    })?;
    Ok(text.trim_end().to_string())
}

// ---- property files ----

fn java_client_properties(
    name: &str,
    dir: &Path,
    password: &str,
    truststore_password: &str,
) -> Result<String> {
    let keystore = path_text(&dir.join(format!("{name}.p12")))?;
    let truststore = path_text(&dir.join(TRUSTSTORE))?;
    let mut text = format!(
        "# TLS settings of client {name} for the Java client and Kafka's command-line tools \
         (--command-config), written by `kavka certs client`.\n\
         # The cluster sees this client as principal {}.\n",
        principal_for(name)
    );
    for (key, value) in [
        ("security.protocol", "SSL"),
        ("ssl.keystore.type", "PKCS12"),
        ("ssl.keystore.location", keystore.as_str()),
        ("ssl.keystore.password", password),
        ("ssl.key.password", password),
        ("ssl.truststore.type", "PKCS12"),
        ("ssl.truststore.location", truststore.as_str()),
        ("ssl.truststore.password", truststore_password),
    ] {
        text.push_str(key);
        text.push('=');
        text.push_str(&java_property_escape(value));
        text.push('\n');
    }
    Ok(text)
}

fn librdkafka_properties(name: &str, dir: &Path) -> Result<String> {
    let ca = path_text(&dir.join(CA_CERT))?;
    let cert = path_text(&dir.join(format!("{name}.pem")))?;
    let key = path_text(&dir.join(format!("{name}-key.pem")))?;
    Ok(format!(
        "# TLS settings of client {name} for librdkafka (kcat -F, confluent-kafka, ...), written by \
         `kavka certs client`.\n\
         # The cluster sees this client as principal {}.\n\
         security.protocol=ssl\n\
         ssl.ca.location={ca}\n\
         ssl.certificate.location={cert}\n\
         ssl.key.location={key}\n",
        principal_for(name)
    ))
}

/// A path as property-file text: UTF-8 and on one line.
fn path_text(path: &Path) -> Result<String> {
    match path.to_str() {
        Some(s) if !s.chars().any(char::is_control) => Ok(s.to_string()),
        _ => Err(CertsError::Io {
            action: "name",
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "the path cannot be written to a property file (not UTF-8, or control characters)",
            ),
        }),
    }
}

/// A value as `java.util.Properties.load` (ISO 8859-1) reads it back exactly.
fn java_property_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            ' ' if i == 0 => out.push_str("\\ "),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Escapes an attribute value for RFC 2253 (names from [`check_name`] never need it, but be exact).
fn rfc2253_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, ' ' | '#'))
            || (i + 1 == value.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn pem_certificate(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

// ---- files ----

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Private keys, keystores, passwords: owner only (0600).
    Secret,
    /// Certificates: 0644 (less if the umask says so).
    Public,
}

/// The output directory, reporting every change. The commands check up front that nothing they would
/// replace exists (unless `--force`); writes here replace.
struct OutDir<'r> {
    dir: PathBuf,
    report: &'r mut dyn FnMut(FileEvent<'_>),
}

impl<'r> OutDir<'r> {
    fn create(opts: &Options, report: &'r mut dyn FnMut(FileEvent<'_>)) -> Result<Self> {
        fs::create_dir_all(&opts.dir).map_err(|source| CertsError::Io {
            action: "create directory",
            path: opts.dir.clone(),
            source,
        })?;
        Ok(OutDir {
            dir: opts.dir.clone(),
            report,
        })
    }

    /// Writes `file` atomically: a temporary file with the final mode, synced, renamed into place.
    fn write(&mut self, file: &str, data: &[u8], mode: Mode) -> Result<()> {
        let path = self.dir.join(file);
        let tmp = self.dir.join(format!(".{file}.tmp-{}", std::process::id()));
        let io_err = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| CertsError::Io {
                action,
                path,
                source,
            }
        };
        let _ = fs::remove_file(&tmp);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(match mode {
                Mode::Secret => 0o600,
                Mode::Public => 0o644,
            });
        }
        #[cfg(not(unix))]
        let _ = mode;
        let written = options
            .open(&tmp)
            .and_then(|mut f| {
                f.write_all(data)?;
                f.sync_all()
            })
            .map_err(io_err("write", &tmp));
        let renamed =
            written.and_then(|()| fs::rename(&tmp, &path).map_err(io_err("write", &path)));
        if renamed.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        renamed?;
        (self.report)(FileEvent::Wrote(&path));
        Ok(())
    }

    /// Writes a generated password to `file`; with a given password (`write` false), removes a stale
    /// `file` left by an earlier run, which would no longer open the keystore.
    fn password_file(&mut self, file: &str, password: &str, write: bool) -> Result<()> {
        if write {
            return self.write(file, password.as_bytes(), Mode::Secret);
        }
        let path = self.dir.join(file);
        match fs::remove_file(&path) {
            Ok(()) => {
                (self.report)(FileEvent::Removed(&path));
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CertsError::Io {
                action: "remove",
                path,
                source,
            }),
        }
    }
}

fn exists(path: &Path) -> Result<bool> {
    path.try_exists().map_err(|source| CertsError::Io {
        action: "check",
        path: path.to_path_buf(),
        source,
    })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| CertsError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })
}

fn absolute_dir(dir: &Path) -> Result<PathBuf> {
    fs::canonicalize(dir).map_err(|source| CertsError::Io {
        action: "resolve",
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use rustls::pki_types::{PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn quiet() -> impl FnMut(FileEvent<'_>) {
        |_| {}
    }

    /// A CA, node `kafka-1` (DNS kafka-1 and localhost, IP 127.0.0.1) and client `app` in a new directory.
    fn setup() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options::new(dir.path());
        create_ca(&opts, &mut quiet()).unwrap();
        create_node(
            &opts,
            "kafka-1",
            &["kafka-1".into(), "localhost".into()],
            &["127.0.0.1".parse().unwrap()],
            &mut quiet(),
        )
        .unwrap();
        create_client(&opts, "app", &mut quiet()).unwrap();
        dir
    }

    fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(path)
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn ca_is_a_ca_and_leaves_are_not() {
        let dir = setup();
        let ca = certs(&dir.path().join("ca.pem"));
        let (_, ca) = x509_parser::parse_x509_certificate(&ca[0]).unwrap();
        let bc = ca.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = ca.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        assert!(ca
            .subject()
            .to_string()
            .starts_with("O=Kavka, CN=Kavka CA "));
        let lifetime = ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp();
        assert_eq!(lifetime as u64, CA_VALIDITY.as_secs() + BACKDATE.as_secs());

        let now = unix_now() as i64;
        for (name, server) in [("kafka-1", true), ("app", false)] {
            let chain = certs(&dir.path().join(format!("{name}.pem")));
            assert_eq!(chain.len(), 2, "{name}: leaf then CA");
            assert_eq!(
                chain[1].as_ref(),
                certs(&dir.path().join("ca.pem"))[0].as_ref()
            );
            let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
            assert_eq!(leaf.subject().to_string(), format!("O=Kavka, CN={name}"));
            assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw());
            assert!(!leaf.basic_constraints().unwrap().unwrap().value.ca);
            let eku = leaf.extended_key_usage().unwrap().unwrap().value;
            assert!(eku.client_auth);
            assert_eq!(eku.server_auth, server, "{name}");
            let nb = leaf.validity().not_before.timestamp();
            let na = leaf.validity().not_after.timestamp();
            assert!(
                nb < now - 60 && nb >= now - 2 * 3600,
                "{name}: not-before slightly in the past"
            );
            assert!(na <= now + LEAF_VALIDITY.as_secs() as i64 + 60);
            assert!(na > now + 800 * 24 * 3600);
        }
    }

    #[test]
    fn password_is_random_alphanumeric() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), GENERATED_PASSWORD_LEN);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn names_dns_names_and_passwords_are_checked() {
        assert!(check_name("kafka-1").is_ok());
        assert!(check_name("app_2.prod").is_ok());
        for bad in [
            "",
            "ca",
            "truststore",
            "ca-key",
            "../x",
            "a/b",
            ".hidden",
            "-x",
            "with space",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_dns_name("kafka-1.example.com").is_ok());
        assert!(check_dns_name("*.kafka.svc").is_ok());
        for bad in ["10.0.0.1", "a..b", "*", "a.*.b", "under score!"] {
            assert!(check_dns_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_password(Some("12345")).is_err());
        assert!(check_password(Some("secret\npassword")).is_err());
        assert!(check_password(Some("s3cret=:# ok")).is_ok());
    }

    #[test]
    fn java_properties_escaping_round_trips() {
        assert_eq!(java_property_escape("/a/b.p12"), "/a/b.p12");
        assert_eq!(java_property_escape("C:\\x"), "C:\\\\x");
        assert_eq!(java_property_escape(" lead"), "\\ lead");
        assert_eq!(java_property_escape("pä"), "p\\u00E4");
        assert_eq!(java_property_escape("a=b:c#d"), "a=b:c#d");
        assert_eq!(principal_for("app"), "User:CN=app,O=Kavka");
        assert_eq!(rfc2253_escape("a,b"), "a\\,b");
    }

    #[test]
    fn ca_key_must_match_ca_cert() {
        let dir = setup();
        let other = tempfile::tempdir().unwrap();
        create_ca(&Options::new(other.path()), &mut quiet()).unwrap();
        fs::copy(
            other.path().join("ca-key.pem"),
            dir.path().join("ca-key.pem"),
        )
        .unwrap();
        let err = load_ca(dir.path()).err().unwrap();
        assert!(
            err.to_string().contains("is not the key of ca.pem"),
            "{err}"
        );
        // A leaf is not a CA.
        fs::copy(dir.path().join("app.pem"), dir.path().join("ca.pem")).unwrap();
        let err = load_ca(dir.path()).err().unwrap();
        assert!(err.to_string().contains("not a CA certificate"), "{err}");
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = setup();
        let opts = Options::new(dir.path());
        let err = create_ca(&opts, &mut quiet()).unwrap_err();
        assert!(matches!(err, CertsError::Exists { .. }), "{err}");
        let err = create_client(&opts, "app", &mut quiet()).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        let before = fs::read(dir.path().join("app.pem")).unwrap();
        let forced = Options {
            force: true,
            ..opts
        };
        let mut events = Vec::new();
        create_client(&forced, "app", &mut |e: FileEvent<'_>| {
            events.push(e.to_string())
        })
        .unwrap();
        assert_eq!(events.len(), 6, "{events:?}");
        assert_ne!(before, fs::read(dir.path().join("app.pem")).unwrap());
    }

    #[test]
    fn given_password_is_used_and_stale_password_file_removed() {
        let dir = setup();
        let opts = Options {
            dir: dir.path().to_path_buf(),
            password: Some("given-password".into()),
            force: true,
        };
        let mut events = Vec::new();
        create_client(&opts, "app", &mut |e: FileEvent<'_>| {
            events.push(e.to_string())
        })
        .unwrap();
        assert!(!dir.path().join("app.password").exists());
        assert!(
            events.iter().any(|e| e.starts_with("Removed")),
            "{events:?}"
        );
        let p12 = fs::read(dir.path().join("app.p12")).unwrap();
        assert!(KeyStore::from_pkcs12(&p12, "given-password", Pkcs12ImportPolicy::Strict).is_ok());
        let props = fs::read_to_string(dir.path().join("app-client-ssl.properties")).unwrap();
        assert!(props.contains("ssl.keystore.password=given-password\n"));
        // The truststore keeps the password of its own file.
        let trust = read_password_file(&dir.path().join("truststore.password")).unwrap();
        assert!(props.contains(&format!("ssl.truststore.password={trust}\n")));
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn server_config(dir: &Path) -> Arc<rustls::ServerConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certs(&dir.join("ca.pem")).remove(0)).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                certs(&dir.join("kafka-1.pem")),
                PrivateKeyDer::from_pem_file(dir.join("kafka-1-key.pem")).unwrap(),
            )
            .unwrap();
        Arc::new(config)
    }

    fn client_config(dir: &Path, with_cert: bool) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certs(&dir.join("ca.pem")).remove(0)).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if with_cert {
            builder
                .with_client_auth_cert(
                    certs(&dir.join("app.pem")),
                    PrivateKeyDer::from_pem_file(dir.join("app-key.pem")).unwrap(),
                )
                .unwrap()
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(config)
    }

    /// Runs a handshake (and one byte each way) over an in-memory pipe; returns the client certificate
    /// the server saw, or the first error.
    async fn handshake(
        dir: &Path,
        server_name: ServerName<'static>,
        with_cert: bool,
    ) -> std::result::Result<Vec<u8>, String> {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(dir));
        let connector = tokio_rustls::TlsConnector::from(client_config(dir, with_cert));
        let server = async move {
            let mut tls = acceptor
                .accept(server_io)
                .await
                .map_err(|e| e.to_string())?;
            let mut b = [0u8; 1];
            tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
            tls.write_all(&b).await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .ok_or("no client cert")?;
            Ok::<_, String>(peer[0].to_vec())
        };
        let client = async move {
            let mut tls = connector
                .connect(server_name, client_io)
                .await
                .map_err(|e| e.to_string())?;
            tls.write_all(b"x").await.map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            let mut b = [0u8; 1];
            tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(())
        };
        let (server, client) = tokio::join!(server, client);
        client?;
        server
    }

    #[tokio::test]
    async fn mutual_tls_handshake_with_issued_certificates() {
        let dir = setup();
        for name in [
            ServerName::try_from("kafka-1").unwrap(),
            ServerName::try_from("localhost").unwrap(),
            ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into()),
        ] {
            let peer = handshake(dir.path(), name.clone(), true)
                .await
                .unwrap_or_else(|e| panic!("{name:?}: {e}"));
            let (_, cert) = x509_parser::parse_x509_certificate(&peer).unwrap();
            assert_eq!(cert.subject().to_string(), "O=Kavka, CN=app");
        }
        // A name the node certificate does not carry is refused by the client.
        let err = handshake(dir.path(), ServerName::try_from("kafka-2").unwrap(), true)
            .await
            .unwrap_err();
        assert!(err.contains("certificate"), "{err}");
        // Client authentication is required.
        assert!(
            handshake(dir.path(), ServerName::try_from("kafka-1").unwrap(), false)
                .await
                .is_err()
        );
    }

    #[test]
    fn leaf_of_another_ca_is_not_trusted() {
        let a = setup();
        let b = setup();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(certs(&b.path().join("ca.pem")).remove(0))
            .unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        let chain = certs(&a.path().join("kafka-1.pem"));
        assert!(verifier
            .verify_client_cert(&chain[0], &chain[1..], rustls_pki_types::UnixTime::now())
            .is_err());
    }
}
