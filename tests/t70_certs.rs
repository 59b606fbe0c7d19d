//! `kavka certs`: the CA, node and client certificates, their keystores and property files, checked with
//! x509-parser, rustls' WebPKI verifiers, p12-keystore, and (when installed) keytool and openssl.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

fn kavka(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kavka"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run kavka")
}

/// Runs `kavka certs ...` and expects success; returns stdout.
fn certs_ok(args: &[&str], cwd: &Path) -> String {
    let mut full = vec!["certs"];
    full.extend_from_slice(args);
    let out = kavka(&full, cwd);
    assert!(
        out.status.success(),
        "kavka {full:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `kavka certs ...` and expects the one-line failure; returns stderr.
fn certs_err(args: &[&str], cwd: &Path) -> String {
    let mut full = vec!["certs"];
    full.extend_from_slice(args);
    let out = kavka(&full, cwd);
    assert_eq!(
        out.status.code(),
        Some(1),
        "kavka {full:?} should fail with exit 1"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("Error: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        !stderr.contains("backtrace") && !stderr.contains("panicked"),
        "{stderr}"
    );
    stderr
}

fn pem_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn password(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.password"))).unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(dir: &Path) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in pem_certs(&dir.join("ca.pem")) {
        roots.add(cert).unwrap();
    }
    Arc::new(roots)
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
        .unwrap_or(false)
}

/// A CA, node kafka-1 (kafka-1, localhost, 10.0.0.1, ::1) and client app under `<tmp>/kavka-certs`.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let ca_out = certs_ok(&["ca"], tmp.path());
    assert_eq!(
        ca_out.lines().collect::<Vec<_>>(),
        [
            "Wrote ./kavka-certs/ca-key.pem",
            "Wrote ./kavka-certs/ca.pem",
            "Wrote ./kavka-certs/truststore.p12",
            "Wrote ./kavka-certs/truststore.password",
        ]
    );
    let node_out = certs_ok(
        &[
            "node",
            "--name",
            "kafka-1",
            "--dns",
            "kafka-1",
            "--dns",
            "localhost",
            "--ip",
            "10.0.0.1",
            "--ip",
            "::1",
        ],
        tmp.path(),
    );
    assert_eq!(node_out.lines().count(), 4, "{node_out}");
    let client_out = certs_ok(&["client", "--name", "app"], tmp.path());
    assert_eq!(client_out.lines().count(), 6, "{client_out}");
    assert!(client_out.contains("Wrote ./kavka-certs/app-client-ssl.properties"));
    let dir = tmp.path().join("kavka-certs");
    (tmp, dir)
}

#[test]
fn writes_every_file_with_private_keys_0600() {
    let (_tmp, dir) = setup();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "app-client-ssl.properties",
            "app-key.pem",
            "app-librdkafka.properties",
            "app.p12",
            "app.password",
            "app.pem",
            "ca-key.pem",
            "ca.pem",
            "kafka-1-key.pem",
            "kafka-1.p12",
            "kafka-1.password",
            "kafka-1.pem",
            "truststore.p12",
            "truststore.password",
        ]
    );
    #[cfg(unix)]
    for secret in [
        "ca-key.pem",
        "kafka-1-key.pem",
        "app-key.pem",
        "kafka-1.p12",
        "app.p12",
        "kafka-1.password",
        "app.password",
        "truststore.password",
        "app-client-ssl.properties",
    ] {
        assert_eq!(mode(&dir.join(secret)), 0o600, "{secret}");
    }
    for key in ["ca-key.pem", "kafka-1-key.pem", "app-key.pem"] {
        let text = std::fs::read_to_string(dir.join(key)).unwrap();
        assert!(
            text.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{key}: PKCS#8 PEM"
        );
        assert!(matches!(
            PrivateKeyDer::from_pem_file(dir.join(key)).unwrap(),
            PrivateKeyDer::Pkcs8(_)
        ));
    }
    assert_eq!(password(&dir, "app").len(), 24);
    assert_ne!(password(&dir, "app"), password(&dir, "kafka-1"));
}

#[test]
fn node_certificate_chains_to_the_ca_for_its_names_and_addresses() {
    let (_tmp, dir) = setup();
    let chain = pem_certs(&dir.join("kafka-1.pem"));
    let ca = pem_certs(&dir.join("ca.pem"));
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], ca[0], "the chain ends with the CA");

    let (_, ca_x509) = x509_parser::parse_x509_certificate(&ca[0]).unwrap();
    assert!(ca_x509.is_ca());
    assert!(ca_x509.key_usage().unwrap().unwrap().value.key_cert_sign());
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(leaf.subject().to_string(), "O=Kavka, CN=kafka-1");
    assert!(!leaf.is_ca());
    use x509_parser::extensions::GeneralName;
    let sans = &leaf
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    let sans: Vec<String> = sans
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(dns) => format!("DNS:{dns}"),
            GeneralName::IPAddress(b) if b.len() == 4 => {
                format!(
                    "IP:{}",
                    std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap())
                )
            }
            GeneralName::IPAddress(b) => {
                format!(
                    "IP:{}",
                    std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap())
                )
            }
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sans,
        ["DNS:kafka-1", "DNS:localhost", "IP:10.0.0.1", "IP:::1"]
    );
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);

    let verifier = WebPkiServerVerifier::builder_with_provider(roots(&dir), provider())
        .build()
        .unwrap();
    for name in [
        ServerName::try_from("kafka-1").unwrap(),
        ServerName::try_from("localhost").unwrap(),
        ServerName::try_from("10.0.0.1").unwrap(),
        ServerName::try_from("::1").unwrap(),
    ] {
        verifier
            .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
    }
    for wrong in ["kafka-2", "10.0.0.2"] {
        let name = ServerName::try_from(wrong).unwrap();
        assert!(
            verifier
                .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
                .is_err(),
            "{wrong}"
        );
    }
    // Nodes are clients of each other too.
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots(&dir), provider())
        .build()
        .unwrap();
    client_verifier
        .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
        .unwrap();
}

#[test]
fn client_certificate_verifies_as_a_client_only() {
    let (_tmp, dir) = setup();
    let chain = pem_certs(&dir.join("app.pem"));
    assert_eq!(chain.len(), 2);
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    assert_eq!(leaf.subject().to_string(), "O=Kavka, CN=app");
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);

    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&dir), provider())
        .build()
        .unwrap();
    verifier
        .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
        .unwrap();
    let server_verifier = WebPkiServerVerifier::builder_with_provider(roots(&dir), provider())
        .build()
        .unwrap();
    let name = ServerName::try_from("app").unwrap();
    assert!(server_verifier
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now())
        .is_err());
}

#[test]
fn keystores_open_with_their_password_files() {
    let (_tmp, dir) = setup();
    for name in ["kafka-1", "app"] {
        let data = std::fs::read(dir.join(format!("{name}.p12"))).unwrap();
        assert!(
            KeyStore::from_pkcs12(&data, "wrong-password", Pkcs12ImportPolicy::Strict).is_err()
        );
        let store = KeyStore::from_pkcs12(&data, &password(&dir, name), Pkcs12ImportPolicy::Strict)
            .unwrap();
        let (alias, chain) = store.private_key_chain().expect("a key entry");
        assert_eq!(alias, name);
        let key = PrivateKeyDer::from_pem_file(dir.join(format!("{name}-key.pem"))).unwrap();
        assert_eq!(chain.key().as_der(), key.secret_der());
        let pem = pem_certs(&dir.join(format!("{name}.pem")));
        let certs: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
        assert_eq!(certs, pem.iter().map(|c| c.as_ref()).collect::<Vec<_>>());
    }
    let data = std::fs::read(dir.join("truststore.p12")).unwrap();
    let store = KeyStore::from_pkcs12(
        &data,
        &password(&dir, "truststore"),
        Pkcs12ImportPolicy::Strict,
    )
    .unwrap();
    assert_eq!(store.entries_len(), 1);
    match store.entry("kavka-ca") {
        Some(KeyStoreEntry::Certificate(cert)) => {
            assert_eq!(cert.as_der(), pem_certs(&dir.join("ca.pem"))[0].as_ref())
        }
        other => panic!("expected the CA as a trusted entry, got {other:?}"),
    }
}

#[test]
fn client_property_files_point_at_the_files() {
    let (_tmp, dir) = setup();
    let abs = std::fs::canonicalize(&dir).unwrap();
    let abs = abs.to_str().unwrap();
    let java = std::fs::read_to_string(dir.join("app-client-ssl.properties")).unwrap();
    let props: Vec<(&str, &str)> = java
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split_once('=').unwrap())
        .collect();
    let app_password = password(&dir, "app");
    let trust_password = password(&dir, "truststore");
    let expected = [
        ("security.protocol", "SSL".to_string()),
        ("ssl.keystore.type", "PKCS12".into()),
        ("ssl.keystore.location", format!("{abs}/app.p12")),
        ("ssl.keystore.password", app_password.clone()),
        ("ssl.key.password", app_password),
        ("ssl.truststore.type", "PKCS12".into()),
        ("ssl.truststore.location", format!("{abs}/truststore.p12")),
        ("ssl.truststore.password", trust_password),
    ];
    let expected: Vec<(&str, &str)> = expected.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(props, expected);
    assert!(java.contains("User:CN=app,O=Kavka"));

    let rdkafka = std::fs::read_to_string(dir.join("app-librdkafka.properties")).unwrap();
    let props: Vec<&str> = rdkafka.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        props,
        [
            "security.protocol=ssl".to_string(),
            format!("ssl.ca.location={abs}/ca.pem"),
            format!("ssl.certificate.location={abs}/app.pem"),
            format!("ssl.key.location={abs}/app-key.pem"),
        ]
    );
}

#[test]
fn keytool_reads_the_pkcs12_files() {
    if !on_path("keytool") {
        println!("keytool is not on PATH: skipping the keytool checks");
        return;
    }
    let (tmp, dir) = setup();
    for (file, pass_name, entry_type) in [
        ("kafka-1.p12", "kafka-1", "PrivateKeyEntry"),
        ("app.p12", "app", "PrivateKeyEntry"),
        ("truststore.p12", "truststore", "trustedCertEntry"),
    ] {
        let pass = password(&dir, pass_name);
        let path = dir.join(file);
        let out = Command::new("keytool")
            .args(["-list", "-storetype", "PKCS12", "-keystore"])
            .arg(&path)
            .args(["-storepass", &pass])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "keytool -list {file}: {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(entry_type), "{file}: {stdout}");
        if entry_type == "PrivateKeyEntry" {
            // Copying the entry makes keytool decrypt the private key, not just list it.
            let copy = tmp.path().join(format!("copy-{file}"));
            let out = Command::new("keytool")
                .args(["-importkeystore", "-noprompt", "-srcstoretype", "PKCS12"])
                .arg("-srckeystore")
                .arg(&path)
                .args(["-srcstorepass", &pass, "-deststoretype", "PKCS12"])
                .arg("-destkeystore")
                .arg(&copy)
                .args(["-deststorepass", &pass])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "keytool -importkeystore {file}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn openssl_verifies_the_chains() {
    if !on_path("openssl") {
        println!("openssl is not on PATH: skipping the openssl checks");
        return;
    }
    let (_tmp, dir) = setup();
    for (file, purpose) in [
        ("kafka-1.pem", "sslserver"),
        ("kafka-1.pem", "sslclient"),
        ("app.pem", "sslclient"),
    ] {
        let out = Command::new("openssl")
            .args(["verify", "-purpose", purpose, "-CAfile", "ca.pem", file])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl verify {file} ({purpose}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new("openssl")
        .args([
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            "ca.pem",
            "app.pem",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a client certificate is no server certificate"
    );
}

#[test]
fn refuses_to_overwrite_without_force() {
    let (tmp, dir) = setup();
    let ca_before = std::fs::read(dir.join("ca.pem")).unwrap();
    let err = certs_err(&["ca"], tmp.path());
    assert!(
        err.contains("ca.pem already exists") && err.contains("--force"),
        "{err}"
    );
    let err = certs_err(&["node", "--name", "kafka-1"], tmp.path());
    assert!(err.contains("kafka-1") && err.contains("--force"), "{err}");
    let err = certs_err(&["client", "--name", "app"], tmp.path());
    assert!(err.contains("app") && err.contains("--force"), "{err}");
    // A client may not take a node's name either.
    let err = certs_err(&["client", "--name", "kafka-1"], tmp.path());
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap(), ca_before);

    let node_before = std::fs::read(dir.join("kafka-1.pem")).unwrap();
    let out = certs_ok(
        &["node", "--name", "kafka-1", "--dns", "kafka-1", "--force"],
        tmp.path(),
    );
    assert_eq!(out.lines().count(), 4, "{out}");
    assert_ne!(std::fs::read(dir.join("kafka-1.pem")).unwrap(), node_before);
    let out = certs_ok(&["ca", "--force"], tmp.path());
    assert_eq!(out.lines().count(), 4, "{out}");
    assert_ne!(std::fs::read(dir.join("ca.pem")).unwrap(), ca_before);
}

#[test]
fn node_and_client_need_a_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let err = certs_err(
        &["node", "--name", "kafka-1", "--dns", "kafka-1"],
        tmp.path(),
    );
    assert!(err.contains("no CA in ./kavka-certs"), "{err}");
    assert!(err.contains("kavka certs ca"), "{err}");
    let err = certs_err(
        &["client", "--name", "app", "--out", "elsewhere"],
        tmp.path(),
    );
    assert!(
        err.contains("no CA in elsewhere") && err.contains("kavka certs ca --out elsewhere"),
        "{err}"
    );
    assert!(!tmp.path().join("kavka-certs").exists(), "nothing written");
}

#[test]
fn bad_arguments_are_one_line_errors() {
    let (tmp, _dir) = setup();
    let err = certs_err(&["node", "--name", "../escape"], tmp.path());
    assert!(err.contains("invalid name"), "{err}");
    let err = certs_err(&["node", "--name", "ca"], tmp.path());
    assert!(err.contains("invalid name"), "{err}");
    let err = certs_err(&["node", "--name", "n", "--dns", "10.0.0.1"], tmp.path());
    assert!(err.contains("--ip"), "{err}");
    let err = certs_err(
        &["client", "--name", "c", "--password", "short"],
        tmp.path(),
    );
    assert!(err.contains("at least 6"), "{err}");
}

#[test]
fn given_password_protects_every_store_and_is_not_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = certs_ok(
        &["ca", "--out", "certs", "--password", "s3cret-pw"],
        tmp.path(),
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    certs_ok(
        &[
            "node",
            "--out",
            "certs",
            "--name",
            "n1",
            "--ip",
            "127.0.0.1",
            "--password",
            "s3cret-pw",
        ],
        tmp.path(),
    );
    certs_ok(
        &[
            "client",
            "--out",
            "certs",
            "--name",
            "c1",
            "--password",
            "s3cret-pw",
        ],
        tmp.path(),
    );
    let dir = tmp.path().join("certs");
    for file in ["truststore.password", "n1.password", "c1.password"] {
        assert!(!dir.join(file).exists(), "{file}");
    }
    for file in ["truststore.p12", "n1.p12", "c1.p12"] {
        let data = std::fs::read(dir.join(file)).unwrap();
        KeyStore::from_pkcs12(&data, "s3cret-pw", Pkcs12ImportPolicy::Strict)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let java = std::fs::read_to_string(dir.join("c1-client-ssl.properties")).unwrap();
    assert!(java.contains("ssl.keystore.password=s3cret-pw\n"));
    assert!(java.contains("ssl.truststore.password=s3cret-pw\n"));

    // A client with a generated password still finds the truststore's given password: it must be passed.
    let err = certs_err(&["client", "--out", "certs", "--name", "c2"], tmp.path());
    assert!(err.contains("truststore"), "{err}");
}
