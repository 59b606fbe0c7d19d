//! Tests of the TLS configuration layer with real handshakes (rustls connections over in-memory buffers,
//! and one tokio-rustls exchange over loopback TCP), certificates made with rcgen, PKCS12 stores written
//! with p12-keystore, and, when `keytool` and `openssl` are on PATH, stores and keys made by them.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use kavka_config::SecurityConfig;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SignatureAlgorithm,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

use super::principal::{PrincipalMapper, ANONYMOUS};
use super::tls::*;

fn security(pairs: &[(&str, &str)]) -> SecurityConfig {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    kavka_config::BrokerConfig::from_pairs(&pairs)
        .expect("valid config")
        .config
        .security
}

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        Self::new_signed(name, None)
    }

    fn new_signed(name: &str, parent: Option<&Ca>) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let issuer = match parent {
            None => CertifiedIssuer::self_signed(params, key).unwrap(),
            Some(p) => CertifiedIssuer::signed_by(params, key, &p.issuer).unwrap(),
        };
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf_with_key(&self, cn: &str, sans: &[&str], key: KeyPair) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        // CertificateParams::new starts with a CN; start from an empty name to control the order.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Kavka");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
        }
    }

    fn leaf(&self, cn: &str, sans: &[&str]) -> Leaf {
        self.leaf_with_key(cn, sans, KeyPair::generate().unwrap())
    }

    fn leaf_alg(&self, cn: &str, sans: &[&str], alg: &'static SignatureAlgorithm) -> Leaf {
        self.leaf_with_key(cn, sans, KeyPair::generate_for(alg).unwrap())
    }
}

/// Inline PEM key store + trust store settings (optionally listener-prefixed).
fn pem_settings(leaf: Option<&Leaf>, trust: Option<&str>) -> Vec<(String, String)> {
    let mut v = Vec::new();
    if let Some(leaf) = leaf {
        v.push(("ssl.keystore.type".into(), "PEM".into()));
        v.push((
            "ssl.keystore.certificate.chain".into(),
            leaf.cert_pem.clone(),
        ));
        v.push(("ssl.keystore.key".into(), leaf.key_pem.clone()));
    }
    if let Some(trust) = trust {
        v.push(("ssl.truststore.type".into(), "PEM".into()));
        v.push(("ssl.truststore.certificates".into(), trust.to_string()));
    }
    v
}

fn sec_of(v: &[(String, String)], extra: &[(&str, &str)]) -> SecurityConfig {
    let mut pairs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.extend_from_slice(extra);
    security(&pairs)
}

#[derive(Debug)]
struct Handshake {
    server_peer: Option<Vec<CertificateDer<'static>>>,
    version: rustls::ProtocolVersion,
    suite: rustls::CipherSuite,
}

/// Runs a handshake between the two configurations over in-memory buffers, then one round trip of
/// application data (so that a TLS 1.3 server's verdict on the client certificate is seen).
fn handshake(
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    name: &str,
) -> Result<Handshake, String> {
    let mut c = ClientConnection::new(client, ServerName::try_from(name.to_string()).unwrap())
        .map_err(|e| e.to_string())?;
    let mut s = ServerConnection::new(server).map_err(|e| e.to_string())?;
    let mut sent_data = false;
    for _ in 0..50 {
        let mut moved = false;
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            moved = true;
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).unwrap();
            }
            s.process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            moved = true;
            let mut rd = &buf[..];
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
            }
            c.process_new_packets()
                .map_err(|e| format!("client: {e}"))?;
        }
        if !c.is_handshaking() && !s.is_handshaking() && !sent_data {
            use std::io::Write;
            c.writer().write_all(b"ping").unwrap();
            s.writer().write_all(b"pong").unwrap();
            sent_data = true;
            continue;
        }
        if !moved && sent_data {
            break;
        }
    }
    if c.is_handshaking() || s.is_handshaking() {
        return Err("handshake did not complete".into());
    }
    let mut got = [0u8; 4];
    use std::io::Read;
    s.reader()
        .read_exact(&mut got)
        .map_err(|e| format!("server read: {e}"))?;
    assert_eq!(&got, b"ping");
    Ok(Handshake {
        server_peer: s
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect()),
        version: s.protocol_version().unwrap(),
        suite: s.negotiated_cipher_suite().unwrap().suite(),
    })
}

fn tools_available(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg(if tool == "keytool" {
            "-help"
        } else {
            "version"
        })
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("SKIPPED: {tool} is not on PATH");
    }
    ok
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------------------------
// Client authentication.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn required_client_auth() {
    let ca = Ca::new("ca");
    let other_ca = Ca::new("other-ca");
    let server_leaf = ca.leaf("broker", &["localhost"]);
    let client_leaf = ca.leaf("app", &[]);
    let stranger = other_ca.leaf("stranger", &[]);

    let server = server_config(
        "SSL",
        &sec_of(
            &pem_settings(Some(&server_leaf), Some(&ca.pem())),
            &[("ssl.client.auth", "required")],
        ),
    )
    .unwrap();

    // A trusted client certificate: accepted, and its principal is the mapped DN.
    let client = client_config(
        "SSL",
        &sec_of(&pem_settings(Some(&client_leaf), Some(&ca.pem())), &[]),
    )
    .unwrap();
    let hs = handshake(client, server.clone(), "localhost").unwrap();
    let mapper = PrincipalMapper::from_rules("RULE:^CN=([^,]*),.*$/$1/,DEFAULT").unwrap();
    assert_eq!(
        mapper.principal(hs.server_peer.as_deref()).unwrap(),
        "User:app"
    );
    assert_eq!(
        PrincipalMapper::default()
            .principal(hs.server_peer.as_deref())
            .unwrap(),
        "User:CN=app,O=Kavka"
    );

    // No certificate: refused.
    let anonymous =
        client_config("SSL", &sec_of(&pem_settings(None, Some(&ca.pem())), &[])).unwrap();
    let err = handshake(anonymous, server.clone(), "localhost").unwrap_err();
    assert!(err.starts_with("server:"), "{err}");

    // A certificate from another CA: refused.
    let strange = client_config(
        "SSL",
        &sec_of(&pem_settings(Some(&stranger), Some(&ca.pem())), &[]),
    )
    .unwrap();
    let err = handshake(strange, server, "localhost").unwrap_err();
    assert!(err.starts_with("server:"), "{err}");
}

#[test]
fn requested_client_auth() {
    let ca = Ca::new("ca");
    let other_ca = Ca::new("other-ca");
    let server_leaf = ca.leaf("broker", &["localhost"]);
    let client_leaf = ca.leaf("app", &[]);
    let server = server_config(
        "SSL",
        &sec_of(
            &pem_settings(Some(&server_leaf), Some(&ca.pem())),
            &[("ssl.client.auth", "requested")],
        ),
    )
    .unwrap();

    let with_cert = client_config(
        "SSL",
        &sec_of(&pem_settings(Some(&client_leaf), Some(&ca.pem())), &[]),
    )
    .unwrap();
    let hs = handshake(with_cert, server.clone(), "localhost").unwrap();
    assert_eq!(
        PrincipalMapper::default()
            .principal(hs.server_peer.as_deref())
            .unwrap(),
        "User:CN=app,O=Kavka"
    );

    let without = client_config("SSL", &sec_of(&pem_settings(None, Some(&ca.pem())), &[])).unwrap();
    let hs = handshake(without, server.clone(), "localhost").unwrap();
    assert!(hs.server_peer.is_none());
    assert_eq!(
        PrincipalMapper::default()
            .principal(hs.server_peer.as_deref())
            .unwrap(),
        ANONYMOUS
    );

    // A certificate that is presented is still verified.
    let stranger = other_ca.leaf("stranger", &[]);
    let strange = client_config(
        "SSL",
        &sec_of(&pem_settings(Some(&stranger), Some(&ca.pem())), &[]),
    )
    .unwrap();
    assert!(handshake(strange, server, "localhost").is_err());
}

#[test]
fn no_client_auth_by_default() {
    let ca = Ca::new("ca");
    let server_leaf = ca.leaf("broker", &["localhost"]);
    let client_leaf = ca.leaf("app", &[]);
    let server =
        server_config("SSL", &sec_of(&pem_settings(Some(&server_leaf), None), &[])).unwrap();
    let client = client_config(
        "SSL",
        &sec_of(&pem_settings(Some(&client_leaf), Some(&ca.pem())), &[]),
    )
    .unwrap();
    let hs = handshake(client, server, "localhost").unwrap();
    assert!(
        hs.server_peer.is_none(),
        "the server asked for no certificate"
    );
}

#[test]
fn client_auth_values_and_sasl_ssl_rule() {
    let s = security(&[("ssl.client.auth", "required")]);
    assert_eq!(client_auth("SSL", &s, false).unwrap(), ClientAuth::Required);
    // On SASL_SSL listeners only the listener-prefixed key counts (Kafka's KIP-684 rule).
    assert_eq!(client_auth("SASL_SSL", &s, true).unwrap(), ClientAuth::None);
    let s = security(&[
        ("ssl.client.auth", "required"),
        ("listener.name.sasl_ssl.ssl.client.auth", "REQUESTED"),
    ]);
    assert_eq!(
        client_auth("SASL_SSL", &s, true).unwrap(),
        ClientAuth::Requested
    );
    assert_eq!(client_auth("SSL", &s, false).unwrap(), ClientAuth::Required);
    assert_eq!(
        client_auth("SSL", &security(&[]), false).unwrap(),
        ClientAuth::None
    );
    let s = security(&[("listener.name.ssl.ssl.client.auth", "maybe")]);
    let err = client_auth("SSL", &s, false).unwrap_err().to_string();
    assert!(err.contains("listener.name.ssl.ssl.client.auth"), "{err}");

    // Client authentication needs a trust store.
    let ca = Ca::new("ca");
    let leaf = ca.leaf("broker", &["localhost"]);
    let err = server_config(
        "SSL",
        &sec_of(
            &pem_settings(Some(&leaf), None),
            &[("ssl.client.auth", "required")],
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("ssl.truststore.location"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------
// Protocols and cipher suites.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn protocols() {
    let ca = Ca::new("ca");
    let leaf = ca.leaf("broker", &["localhost"]);
    let base = pem_settings(Some(&leaf), Some(&ca.pem()));
    let tls13_server = server_config(
        "SSL",
        &sec_of(&base, &[("ssl.enabled.protocols", "TLSv1.3")]),
    )
    .unwrap();
    let tls12_client = client_config(
        "SSL",
        &sec_of(&base, &[("ssl.enabled.protocols", "TLSv1.2")]),
    )
    .unwrap();
    assert!(handshake(tls12_client.clone(), tls13_server.clone(), "localhost").is_err());

    let default_server = server_config("SSL", &sec_of(&base, &[])).unwrap();
    let default_client = client_config("SSL", &sec_of(&base, &[])).unwrap();
    assert_eq!(
        handshake(default_client.clone(), default_server.clone(), "localhost")
            .unwrap()
            .version,
        rustls::ProtocolVersion::TLSv1_3
    );
    assert_eq!(
        handshake(tls12_client, default_server.clone(), "localhost")
            .unwrap()
            .version,
        rustls::ProtocolVersion::TLSv1_2
    );
    // ssl.protocol=TLSv1.2 keeps outgoing connections on TLS 1.2 (Kafka's documented client behaviour).
    let pinned = client_config("SSL", &sec_of(&base, &[("ssl.protocol", "TLSv1.2")])).unwrap();
    assert_eq!(
        handshake(pinned, default_server, "localhost")
            .unwrap()
            .version,
        rustls::ProtocolVersion::TLSv1_2
    );

    for old in ["TLSv1.2,TLSv1.1,TLSv1", "SSLv3"] {
        let err = server_config("SSL", &sec_of(&base, &[("ssl.enabled.protocols", old)]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ssl.enabled.protocols") && err.contains("not supported"),
            "{err}"
        );
    }
    let err = server_config("SSL", &sec_of(&base, &[("ssl.enabled.protocols", "TLSv9")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("TLSv9"), "{err}");
}

#[test]
fn cipher_suites() {
    let ca = Ca::new("ca");
    let leaf = ca.leaf("broker", &["localhost"]); // ECDSA P-256 key
    let base = pem_settings(Some(&leaf), Some(&ca.pem()));
    let server = server_config(
        "SSL",
        &sec_of(
            &base,
            &[(
                "ssl.cipher.suites",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256",
            )],
        ),
    )
    .unwrap();
    let client = client_config("SSL", &sec_of(&base, &[])).unwrap();
    let hs = handshake(client, server.clone(), "localhost").unwrap();
    assert_eq!(hs.suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    let client12 = client_config(
        "SSL",
        &sec_of(&base, &[("ssl.enabled.protocols", "TLSv1.2")]),
    )
    .unwrap();
    let hs = handshake(client12, server, "localhost").unwrap();
    assert_eq!(
        hs.suite,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    );

    assert!(supported_cipher_suites().contains(&"TLS_CHACHA20_POLY1305_SHA256".to_string()));
    assert!(
        supported_cipher_suites().contains(&"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384".to_string())
    );

    let err = server_config(
        "SSL",
        &sec_of(
            &base,
            &[(
                "listener.name.ssl.ssl.cipher.suites",
                "TLS_AES_128_GCM_SHA256,TLS_RSA_WITH_AES_128_CBC_SHA,BOGUS",
            )],
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("listener.name.ssl.ssl.cipher.suites")
            && err.contains("TLS_RSA_WITH_AES_128_CBC_SHA, BOGUS")
            && !err.contains("not supported: TLS_AES_128_GCM_SHA256"),
        "{err}"
    );
    // Only TLS 1.3 suites with only TLS 1.2 enabled: nothing usable.
    let err = server_config(
        "SSL",
        &sec_of(
            &base,
            &[
                ("ssl.cipher.suites", "TLS_AES_256_GCM_SHA384"),
                ("ssl.enabled.protocols", "TLSv1.2"),
            ],
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("ssl.cipher.suites"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------
// Endpoint identification.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn endpoint_identification() {
    let ca = Ca::new("ca");
    let other_ca = Ca::new("other-ca");
    let leaf = ca.leaf("broker", &["broker-1.example", "127.0.0.1"]);
    let server = server_config("SSL", &sec_of(&pem_settings(Some(&leaf), None), &[])).unwrap();
    let trust = pem_settings(None, Some(&ca.pem()));

    // Default (https): the name must match, DNS or IP.
    let strict = client_config("SSL", &sec_of(&trust, &[])).unwrap();
    handshake(strict.clone(), server.clone(), "broker-1.example").unwrap();
    handshake(strict.clone(), server.clone(), "127.0.0.1").unwrap();
    let err = handshake(strict, server.clone(), "wrong.example").unwrap_err();
    assert!(err.contains("client:"), "{err}");
    let explicit = client_config(
        "SSL",
        &sec_of(
            &trust,
            &[("ssl.endpoint.identification.algorithm", "HTTPS")],
        ),
    )
    .unwrap();
    assert!(handshake(explicit, server.clone(), "wrong.example").is_err());

    // Empty: a wrong name is accepted...
    let lax = client_config(
        "SSL",
        &sec_of(&trust, &[("ssl.endpoint.identification.algorithm", "")]),
    )
    .unwrap();
    handshake(lax.clone(), server, "wrong.example").unwrap();
    // ...but an untrusted chain still is not.
    let stranger = other_ca.leaf("stranger", &["wrong.example"]);
    let untrusted_server =
        server_config("SSL", &sec_of(&pem_settings(Some(&stranger), None), &[])).unwrap();
    let err = handshake(lax, untrusted_server, "wrong.example").unwrap_err();
    assert!(
        err.contains("client:") && err.contains("UnknownIssuer"),
        "{err}"
    );

    let err = client_config(
        "SSL",
        &sec_of(
            &trust,
            &[("ssl.endpoint.identification.algorithm", "ldaps")],
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("ssl.endpoint.identification.algorithm"),
        "{err}"
    );

    // Outgoing connections need a trust store.
    let err = client_config("SSL", &security(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("trust store"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------
// Key stores and trust stores.
// ---------------------------------------------------------------------------------------------------------

#[test]
fn pem_files_lets_encrypt_layout() {
    let root = Ca::new("root");
    let intermediate = Ca::new_signed("intermediate", Some(&root));
    let leaf = intermediate.leaf("broker", &["localhost"]);
    let dir = tempfile::tempdir().unwrap();
    let fullchain = format!("{}{}", leaf.cert_pem, intermediate.pem());
    let fullchain_path = write(dir.path(), "fullchain.pem", &fullchain);
    let privkey_path = write(dir.path(), "privkey.pem", &leaf.key_pem);
    let combined_path = write(
        dir.path(),
        "combined.pem",
        format!("{}{}", leaf.key_pem, fullchain),
    );
    let root_path = write(dir.path(), "root.pem", root.pem());
    let client = client_config(
        "SSL",
        &security(&[
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", &root_path),
        ]),
    )
    .unwrap();

    // Kafka's way: one PEM file with the key and the chain.
    let s = security(&[
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", &combined_path),
    ]);
    handshake(
        client.clone(),
        server_config("SSL", &s).unwrap(),
        "localhost",
    )
    .unwrap();
    assert_eq!(load_certified_key("SSL", &s).unwrap().cert.len(), 2);
    assert_eq!(
        watched_files("SSL", &s),
        vec![std::path::PathBuf::from(&combined_path)]
    );

    // Kavka extension: certbot's two files as they are.
    let s = security(&[
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", &fullchain_path),
        ("ssl.keystore.key.location", &privkey_path),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", &root_path),
    ]);
    handshake(client, server_config("SSL", &s).unwrap(), "localhost").unwrap();
    assert_eq!(
        watched_files("SSL", &s),
        vec![
            std::path::PathBuf::from(&fullchain_path),
            std::path::PathBuf::from(&privkey_path),
            std::path::PathBuf::from(&root_path)
        ]
    );
    // The chain file alone has no key.
    let err = load_certified_key(
        "SSL",
        &security(&[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", &fullchain_path),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("no PEM private key") && err.contains(&fullchain_path),
        "{err}"
    );
    // The extension needs the PEM type.
    let err = load_certified_key(
        "SSL",
        &security(&[
            ("ssl.keystore.location", &fullchain_path),
            ("ssl.keystore.password", "x"),
            ("ssl.keystore.key.location", &privkey_path),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("ssl.keystore.key.location"), "{err}");
}

#[test]
fn key_types() {
    let ca = Ca::new("ca");
    let trust = pem_settings(None, Some(&ca.pem()));
    let client = client_config("SSL", &sec_of(&trust, &[])).unwrap();
    let client12 = client_config(
        "SSL",
        &sec_of(&trust, &[("ssl.enabled.protocols", "TLSv1.2")]),
    )
    .unwrap();
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
    ] {
        let leaf = ca.leaf_alg("broker", &["localhost"], alg);
        let server = server_config("SSL", &sec_of(&pem_settings(Some(&leaf), None), &[])).unwrap();
        handshake(client.clone(), server.clone(), "localhost")
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        handshake(client12.clone(), server, "localhost")
            .unwrap_or_else(|e| panic!("{alg:?} TLS1.2: {e}"));
    }
}

#[test]
fn openssl_keys_rsa_pkcs1_sec1_and_encrypted_pkcs8() {
    if !tools_available("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = Ca::new("ca");
    let trust = pem_settings(None, Some(&ca.pem()));
    let client = client_config("SSL", &sec_of(&trust, &[])).unwrap();

    // RSA as PKCS#1 ("RSA PRIVATE KEY") and EC as SEC1 ("EC PRIVATE KEY").
    let rsa1 = d.join("rsa1.pem");
    run(Command::new("openssl")
        .args(["genrsa", "-traditional", "-out"])
        .arg(&rsa1)
        .arg("2048"));
    let sec1 = d.join("sec1.pem");
    run(Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&sec1));
    for (path, marker) in [
        (&rsa1, "BEGIN RSA PRIVATE KEY"),
        (&sec1, "BEGIN EC PRIVATE KEY"),
    ] {
        let traditional = std::fs::read_to_string(path).unwrap();
        assert!(traditional.contains(marker), "{traditional}");
        let p8 = d.join("p8.pem");
        run(Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-in"])
            .arg(path)
            .arg("-out")
            .arg(&p8));
        let key = KeyPair::from_pem(&std::fs::read_to_string(&p8).unwrap()).unwrap();
        let mut leaf = ca.leaf_with_key("broker", &["localhost"], key);
        leaf.key_pem = traditional;
        let server = server_config("SSL", &sec_of(&pem_settings(Some(&leaf), None), &[])).unwrap();
        handshake(client.clone(), server, "localhost").unwrap_or_else(|e| panic!("{marker}: {e}"));
    }

    // Encrypted PKCS#8, PBES2 (AES-256-CBC) as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it.
    let leaf = ca.leaf("broker", &["localhost"]);
    let plain = write(d, "plain.pem", &leaf.key_pem);
    let enc = d.join("enc.pem");
    run(Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:s3cret-pw",
            "-in",
        ])
        .arg(&plain)
        .arg("-out")
        .arg(&enc));
    let enc_pem = std::fs::read_to_string(&enc).unwrap();
    assert!(enc_pem.contains("BEGIN ENCRYPTED PRIVATE KEY"));
    let mut enc_leaf = Leaf {
        key_pem: enc_pem.clone(),
        ..ca.leaf("unused", &[])
    };
    enc_leaf.cert_pem = leaf.cert_pem.clone();
    let base = pem_settings(Some(&enc_leaf), None);
    let server =
        server_config("SSL", &sec_of(&base, &[("ssl.key.password", "s3cret-pw")])).unwrap();
    handshake(client.clone(), server, "localhost").unwrap();
    let err = server_config(
        "SSL",
        &sec_of(&base, &[("ssl.key.password", "wrong-pw-123")]),
    )
    .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("ssl.key.password") && !text.contains("wrong-pw-123"),
        "{text}"
    );
    let err = server_config("SSL", &sec_of(&base, &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ssl.key.password") && err.contains("ssl.keystore.key"),
        "{err}"
    );

    // PBES1 (PKCS#12 3DES), `-v1 PBE-SHA1-3DES`.
    let enc1 = d.join("enc1.pem");
    run(Command::new("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v1",
            "PBE-SHA1-3DES",
            "-passout",
            "pass:s3cret-pw",
            "-in",
        ])
        .arg(&plain)
        .arg("-out")
        .arg(&enc1));
    let combined = write(
        d,
        "combined-enc.pem",
        format!(
            "{}{}",
            std::fs::read_to_string(&enc1).unwrap(),
            leaf.cert_pem
        ),
    );
    let s = security(&[
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.location", &combined),
        ("ssl.key.password", "s3cret-pw"),
    ]);
    handshake(
        client.clone(),
        server_config("SSL", &s).unwrap(),
        "localhost",
    )
    .unwrap();

    // OpenSSL's legacy encrypted PEM: refused with advice.
    let legacy = d.join("legacy.pem");
    run(Command::new("openssl")
        .args([
            "rsa",
            "-traditional",
            "-aes256",
            "-passout",
            "pass:s3cret-pw",
            "-in",
        ])
        .arg(&rsa1)
        .arg("-out")
        .arg(&legacy));
    let mut legacy_leaf = Leaf {
        key_pem: std::fs::read_to_string(&legacy).unwrap(),
        ..ca.leaf("x", &[])
    };
    legacy_leaf.cert_pem = leaf.cert_pem.clone();
    let err = server_config(
        "SSL",
        &sec_of(
            &pem_settings(Some(&legacy_leaf), None),
            &[("ssl.key.password", "s3cret-pw")],
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("legacy"), "{err}");
}

#[test]
fn mismatched_key_and_certificate() {
    let ca = Ca::new("ca");
    let a = ca.leaf("a", &["localhost"]);
    let b = ca.leaf("b", &["localhost"]);
    let mixed = Leaf {
        key_pem: b.key_pem.clone(),
        ..a
    };
    let err = load_certified_key("SSL", &sec_of(&pem_settings(Some(&mixed), None), &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not match"), "{err}");
    assert!(!err.contains("PRIVATE KEY-----"), "{err}");
}

fn p12_keystore(leaf: &Leaf, chain_extra: &[&[u8]], password: &str) -> Vec<u8> {
    let mut ks = p12_keystore::KeyStore::new();
    let mut certs = vec![p12_keystore::Certificate::from_der(&leaf.cert_der).unwrap()];
    for c in chain_extra {
        certs.push(p12_keystore::Certificate::from_der(c).unwrap());
    }
    let chain = p12_keystore::PrivateKeyChain::new(
        b"key-1".as_slice(),
        p12_keystore::PrivateKey::from_der(&leaf.key_der).unwrap(),
        certs,
    );
    ks.add_entry(
        "broker",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    ks.writer(password).write().unwrap()
}

fn p12_truststore(ca_der: &[u8], password: &str) -> Vec<u8> {
    let mut ks = p12_keystore::KeyStore::new();
    ks.add_entry(
        "ca",
        p12_keystore::KeyStoreEntry::Certificate(
            p12_keystore::Certificate::from_der(ca_der).unwrap(),
        ),
    );
    ks.writer(password).write().unwrap()
}

#[test]
fn pkcs12_stores() {
    let ca = Ca::new("ca");
    let server_leaf = ca.leaf("broker", &["localhost"]);
    let client_leaf = ca.leaf("app", &[]);
    let dir = tempfile::tempdir().unwrap();
    let server_ks = write(
        dir.path(),
        "server.p12",
        p12_keystore(&server_leaf, &[ca.issuer.der()], "ks-pass-1"),
    );
    let client_ks = write(
        dir.path(),
        "client.p12",
        p12_keystore(&client_leaf, &[], "ks-pass-2"),
    );
    let ts = write(
        dir.path(),
        "trust.p12",
        p12_truststore(ca.issuer.der(), "ts-pass-1"),
    );

    let server = server_config(
        "SSL",
        &security(&[
            ("ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.location", &server_ks),
            ("ssl.keystore.password", "ks-pass-1"),
            ("ssl.truststore.type", "PKCS12"),
            ("ssl.truststore.location", &ts),
            ("ssl.truststore.password", "ts-pass-1"),
            ("ssl.client.auth", "required"),
        ]),
    )
    .unwrap();
    // The default type (JKS) reads a PKCS12 file too, as Java's keystore.type.compat does.
    let client = client_config(
        "SSL",
        &security(&[
            ("ssl.keystore.location", &client_ks),
            ("ssl.keystore.password", "ks-pass-2"),
            ("ssl.truststore.location", &ts),
            ("ssl.truststore.password", "ts-pass-1"),
        ]),
    )
    .unwrap();
    let hs = handshake(client, server, "localhost").unwrap();
    assert_eq!(
        PrincipalMapper::default()
            .principal(hs.server_peer.as_deref())
            .unwrap(),
        "User:CN=app,O=Kavka"
    );

    // A wrong store password: an error naming the key and file, never the password.
    let err = server_config(
        "SSL",
        &security(&[
            ("ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.location", &server_ks),
            ("ssl.keystore.password", "hunter2-wrong"),
        ]),
    )
    .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("ssl.keystore.password")
            && text.contains(&server_ks)
            && !text.contains("hunter2"),
        "{text}"
    );
    // A key store needs its password (Kafka's rule).
    let err = server_config(
        "SSL",
        &security(&[
            ("ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.location", &server_ks),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("ssl.keystore.password is not"), "{err}");
    // A missing file names the key and the path.
    let err = server_config(
        "SSL",
        &security(&[
            ("ssl.keystore.location", "/nonexistent/ks.p12"),
            ("ssl.keystore.password", "x"),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("/nonexistent/ks.p12") && err.contains("ssl.keystore.location"),
        "{err}"
    );
    // A trust store without its password: read without integrity check. p12-keystore encrypts the
    // certificates, so this one cannot be read; the message says what to set.
    let err = client_config(
        "SSL",
        &security(&[
            ("ssl.truststore.type", "PKCS12"),
            ("ssl.truststore.location", &ts),
        ]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("ssl.truststore.password"), "{err}");
}

#[test]
fn configuration_conflicts_follow_kafka() {
    let ca = Ca::new("ca");
    let leaf = ca.leaf("broker", &["localhost"]);
    let check = |pairs: &[(&str, &str)], needle: &str| {
        let err = server_config("SSL", &security(pairs))
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{pairs:?}: {err}");
    };
    check(
        &[
            ("ssl.keystore.key", &leaf.key_pem),
            ("ssl.keystore.certificate.chain", &leaf.cert_pem),
        ],
        "ssl.keystore.type=PEM",
    );
    check(
        &[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.key", &leaf.key_pem),
        ],
        "ssl.keystore.certificate.chain is not",
    );
    check(
        &[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.certificate.chain", &leaf.cert_pem),
        ],
        "ssl.keystore.key is not",
    );
    check(
        &[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.key", &leaf.key_pem),
            ("ssl.keystore.certificate.chain", &leaf.cert_pem),
            ("ssl.keystore.location", "/x.pem"),
        ],
        "both ssl.keystore.key and ssl.keystore.location",
    );
    check(
        &[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.key", &leaf.key_pem),
            ("ssl.keystore.certificate.chain", &leaf.cert_pem),
            ("ssl.keystore.password", "pw-123456"),
        ],
        "ssl.keystore.password cannot be used with PEM",
    );
    check(
        &[("ssl.keystore.password", "pw-123456")],
        "ssl.keystore.location is not",
    );
    check(
        &[
            ("ssl.keystore.type", "BKS"),
            ("ssl.keystore.location", "/x"),
        ],
        "ssl.keystore.type",
    );
    check(&[], "no key store");
    let mut with_key = pem_settings(Some(&leaf), None);
    with_key.push(("ssl.truststore.certificates".into(), ca.pem()));
    let err = server_config("SSL", &sec_of(&with_key, &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ssl.truststore.type=PEM"), "{err}");
    let err = server_config(
        "SSL",
        &sec_of(
            &pem_settings(Some(&leaf), Some(&ca.pem())),
            &[("ssl.truststore.location", "/x.pem")],
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("both ssl.truststore.location and ssl.truststore.certificates"),
        "{err}"
    );
    let err = server_config(
        "SSL",
        &sec_of(
            &pem_settings(Some(&leaf), Some(&ca.pem())),
            &[("ssl.truststore.password", "pw-123456")],
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("ssl.truststore.password cannot be used with PEM"),
        "{err}"
    );
    // A JKS/PKCS12 type pointing at a PEM file says so.
    let dir = tempfile::tempdir().unwrap();
    let pem_file = write(dir.path(), "ca.pem", ca.pem());
    let err = client_config("SSL", &security(&[("ssl.truststore.location", &pem_file)]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("set the store type to PEM"), "{err}");
}

#[test]
fn listener_prefix_overrides_and_errors_name_the_prefixed_key() {
    let ca = Ca::new("ca");
    let good = ca.leaf("broker", &["localhost"]);
    let mut pairs: Vec<(String, String)> = Vec::new();
    // Broker-wide settings are broken; the listener's own are good.
    pairs.push(("ssl.keystore.type".into(), "PEM".into()));
    pairs.push(("ssl.keystore.location".into(), "/nonexistent.pem".into()));
    for (k, v) in pem_settings(Some(&good), Some(&ca.pem())) {
        pairs.push((format!("listener.name.internal.{k}"), v));
    }
    pairs.push((
        "listener.name.internal.ssl.keystore.location".into(),
        String::new(),
    ));
    let s = sec_of(&pairs, &[]);
    let server = server_config("INTERNAL", &s).unwrap();
    let client = client_config("INTERNAL", &s).unwrap();
    handshake(client, server, "localhost").unwrap();
    let err = server_config("EXTERNAL", &s).unwrap_err().to_string();
    assert!(
        err.contains("listener EXTERNAL") && err.contains("/nonexistent.pem"),
        "{err}"
    );
    let s = security(&[("listener.name.internal.ssl.enabled.protocols", "TLSv1")]);
    let err = server_config("INTERNAL", &s).unwrap_err().to_string();
    assert!(
        err.contains("listener.name.internal.ssl.enabled.protocols"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------------------
// keytool-made stores (skipped without keytool).
// ---------------------------------------------------------------------------------------------------------

#[test]
fn keytool_pkcs12_and_jks_stores() {
    if !tools_available("keytool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for store_type in ["PKCS12", "JKS"] {
        let ext = store_type.to_ascii_lowercase();
        let ks = d.join(format!("server.{ext}"));
        let cert = d.join(format!("server-{ext}.crt"));
        let ts = d.join(format!("trust.{ext}"));
        let mut genkey = Command::new("keytool");
        genkey
            .args([
                "-genkeypair",
                "-keyalg",
                "RSA",
                "-keysize",
                "2048",
                "-alias",
                "broker",
            ])
            .args([
                "-dname",
                "CN=localhost,OU=eng,O=Kavka,C=US",
                "-ext",
                "SAN=dns:localhost",
            ])
            .args([
                "-validity",
                "30",
                "-storetype",
                store_type,
                "-storepass",
                "store-pass-1",
            ])
            .arg("-keystore")
            .arg(&ks);
        if store_type == "JKS" {
            // JKS allows a key password of its own.
            genkey.args(["-keypass", "key-pass-1"]);
        }
        run(&mut genkey);
        let mut export = Command::new("keytool");
        export
            .args([
                "-exportcert",
                "-rfc",
                "-alias",
                "broker",
                "-storepass",
                "store-pass-1",
            ])
            .arg("-keystore")
            .arg(&ks)
            .arg("-file")
            .arg(&cert);
        run(&mut export);
        let mut import = Command::new("keytool");
        import
            .args([
                "-importcert",
                "-noprompt",
                "-alias",
                "broker-ca",
                "-storetype",
                store_type,
            ])
            .args(["-storepass", "trust-pass-1"])
            .arg("-keystore")
            .arg(&ts)
            .arg("-file")
            .arg(&cert);
        run(&mut import);

        let ks = ks.to_string_lossy().into_owned();
        let ts = ts.to_string_lossy().into_owned();
        let mut server_pairs = vec![
            ("ssl.keystore.type", store_type),
            ("ssl.keystore.location", ks.as_str()),
            ("ssl.keystore.password", "store-pass-1"),
        ];
        if store_type == "JKS" {
            server_pairs.push(("ssl.key.password", "key-pass-1"));
        }
        let server = server_config("SSL", &security(&server_pairs))
            .unwrap_or_else(|e| panic!("{store_type} key store: {e}"));
        let key = load_certified_key("SSL", &security(&server_pairs)).unwrap();
        assert_eq!(
            super::principal::distinguished_name(key.cert[0].as_ref()).unwrap(),
            "CN=localhost,OU=eng,O=Kavka,C=US"
        );

        let with_password = client_config(
            "SSL",
            &security(&[
                ("ssl.truststore.type", store_type),
                ("ssl.truststore.location", &ts),
                ("ssl.truststore.password", "trust-pass-1"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{store_type} trust store: {e}"));
        handshake(with_password, server.clone(), "localhost")
            .unwrap_or_else(|e| panic!("{store_type}: {e}"));

        // Without the trust store password: JKS is read without its integrity check, as Java does;
        // keytool's PKCS12 stores may have encrypted certificates, which need the password.
        match client_config(
            "SSL",
            &security(&[
                ("ssl.truststore.type", store_type),
                ("ssl.truststore.location", &ts),
            ]),
        ) {
            Ok(client) => {
                println!("{store_type} trust store read without a password");
                handshake(client, server.clone(), "localhost").unwrap();
            }
            Err(e) => {
                assert_eq!(store_type, "PKCS12", "{e}");
                println!("{store_type} trust store without password: {e}");
                assert!(e.to_string().contains("ssl.truststore.password"), "{e}");
            }
        }
        // A wrong trust store password is an integrity error.
        let err = client_config(
            "SSL",
            &security(&[
                ("ssl.truststore.type", store_type),
                ("ssl.truststore.location", &ts),
                ("ssl.truststore.password", "not-the-password"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ssl.truststore.password") && !err.contains("not-the-password"),
            "{err}"
        );
        if store_type == "JKS" {
            // The wrong key password is named.
            let err = server_config(
                "SSL",
                &security(&[
                    ("ssl.keystore.location", ks.as_str()),
                    ("ssl.keystore.password", "store-pass-1"),
                ]),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("ssl.key.password"), "{err}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// A real connection over loopback TCP with tokio-rustls.
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn tokio_rustls_loopback_mtls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ca = Ca::new("ca");
    let server_leaf = ca.leaf("broker", &["127.0.0.1"]);
    let client_leaf = ca.leaf("app", &[]);
    let server = server_config(
        "SSL",
        &sec_of(
            &pem_settings(Some(&server_leaf), Some(&ca.pem())),
            &[("ssl.client.auth", "required")],
        ),
    )
    .unwrap();
    let client = client_config(
        "SSL",
        &sec_of(&pem_settings(Some(&client_leaf), Some(&ca.pem())), &[]),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let principal = PrincipalMapper::from_rules("RULE:^CN=([^,]*),.*$/$1/L")
            .unwrap()
            .principal(tls.get_ref().1.peer_certificates())
            .unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        tls.write_all(b"pong").await.unwrap();
        tls.shutdown().await.ok();
        principal
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(client);
    let mut tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"ping").await.unwrap();
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"pong");
    assert_eq!(server_task.await.unwrap(), "User:app");
}

#[test]
fn debug_output_hides_secrets() {
    let ca = Ca::new("ca");
    let leaf = ca.leaf("broker", &["localhost"]);
    let s = sec_of(
        &pem_settings(Some(&leaf), None),
        &[("ssl.cipher.suites", "NOPE")],
    );
    let err = server_config("SSL", &s).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let opts = ServerTlsOptions::default();
    assert!(format!("{opts:?}").contains("cert_resolver"));
}
