//! Reading key and trust material from PEM text, PKCS#12 files and Java JKS files.
//!
//! Every error here is a plain message that names no secret (no password, no key bytes); the caller adds
//! the listener, key and file.

use p12_keystore::{KeyStore as P12KeyStore, Pkcs12Archive, Pkcs12ImportPolicy};
use rustls::pki_types::pem::{self, PemObject, SectionKind};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};

use super::principal::der_tlv;

/// A private key and its certificate chain (end-entity certificate first).
pub(crate) struct KeyMaterial {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// The binary formats a JKS or PKCS12 `ssl.*store.type` may hold. Like Java's default
/// `keystore.type.compat=true`, the file's own format wins over the configured type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryFormat {
    Jks,
    Pkcs12,
}

const JKS_MAGIC: [u8; 4] = [0xfe, 0xed, 0xfe, 0xed];
const JCEKS_MAGIC: [u8; 4] = [0xce, 0xce, 0xce, 0xce];

pub(crate) fn sniff(data: &[u8]) -> Result<BinaryFormat, String> {
    if data.starts_with(&JKS_MAGIC) {
        Ok(BinaryFormat::Jks)
    } else if data.starts_with(&JCEKS_MAGIC) {
        Err("JCEKS stores are not supported; convert with `keytool -importkeystore -deststoretype PKCS12`".into())
    } else if data.first() == Some(&0x30) {
        Ok(BinaryFormat::Pkcs12)
    } else if String::from_utf8_lossy(&data[..data.len().min(4096)]).contains("-----BEGIN") {
        Err("the file is PEM text; set the store type to PEM".into())
    } else if data.is_empty() {
        Err("the file is empty".into())
    } else {
        Err("the file is neither a PKCS12 nor a JKS store".into())
    }
}

fn pem_error(e: pem::Error) -> String {
    // The variants carrying text hold a BEGIN line or a base64 error description, never key bytes, but
    // say it in our own words anyway.
    match e {
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "malformed PEM BEGIN line".into(),
        pem::Error::Base64Decode(_) => "invalid base64 in a PEM section".into(),
        pem::Error::SectionTooLarge => "a PEM section is too large".into(),
        pem::Error::Io(e) => format!("read error: {e}"),
        _ => "malformed PEM".into(),
    }
}

/// All `CERTIFICATE` sections, in order; at least one.
pub(crate) fn pem_certificates(text: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err("no PEM CERTIFICATE found".into());
    }
    Ok(certs)
}

/// The bodies of `-----BEGIN ENCRYPTED PRIVATE KEY-----` sections (PKCS#8 EncryptedPrivateKeyInfo), which
/// `rustls-pki-types` does not recognise.
fn encrypted_pkcs8_sections(text: &str) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine as _;
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let body_start = start + BEGIN.len();
        let end = rest[body_start..]
            .find(END)
            .ok_or("an ENCRYPTED PRIVATE KEY section has no END line")?;
        let body: String = rest[body_start..body_start + end]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| "invalid base64 in the ENCRYPTED PRIVATE KEY section")?;
        out.push(der);
        rest = &rest[body_start + end + END.len()..];
    }
    Ok(out)
}

/// The one private key in PEM text: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`), SEC1
/// (`EC PRIVATE KEY`), or an encrypted PKCS#8 key (`ENCRYPTED PRIVATE KEY`) decrypted with `password`.
/// `password_key` names the password setting in messages.
pub(crate) fn pem_private_key(
    text: &[u8],
    password: Option<&str>,
    password_key: &str,
) -> Result<PrivateKeyDer<'static>, String> {
    let as_text = String::from_utf8_lossy(text);
    if as_text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(format!(
            "the private key is encrypted in OpenSSL's legacy PEM format, which is not supported; convert it \
             to encrypted PKCS#8 (`openssl pkcs8 -topk8 -v2 aes-256-cbc`) and give its password in {password_key}"
        ));
    }
    let mut keys: Vec<PrivateKeyDer<'static>> = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(text) {
        let (kind, der) = section.map_err(pem_error)?;
        match kind {
            SectionKind::PrivateKey => keys.push(PrivatePkcs8KeyDer::from(der).into()),
            SectionKind::RsaPrivateKey => keys.push(PrivatePkcs1KeyDer::from(der).into()),
            SectionKind::EcPrivateKey => keys.push(PrivateSec1KeyDer::from(der).into()),
            _ => {}
        }
    }
    for encrypted in encrypted_pkcs8_sections(&as_text)? {
        let Some(password) = password else {
            return Err(format!(
                "the private key is encrypted (ENCRYPTED PRIVATE KEY) but {password_key} is not set"
            ));
        };
        keys.push(
            PrivatePkcs8KeyDer::from(decrypt_pkcs8(&encrypted, password, password_key)?).into(),
        );
    }
    match keys.len() {
        0 => Err("no PEM private key found (expected PRIVATE KEY, RSA PRIVATE KEY, EC PRIVATE KEY or ENCRYPTED PRIVATE KEY)".into()),
        1 => Ok(keys.pop().expect("one key")),
        n => Err(format!("expected one private key, found {n}")),
    }
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

// 1.2.840.113549.1.7.1 (PKCS#7 data) and 1.2.840.113549.1.12.10.1.2 (PKCS#12 pkcs8ShroudedKeyBag).
const OID_DATA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
];
const OID_SHROUDED_KEY_BAG: &[u8] = &[
    0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a, 0x01, 0x02,
];

/// Decrypts a PKCS#8 EncryptedPrivateKeyInfo (PBES2 with PBKDF2 or scrypt and AES-CBC, or the PKCS#12
/// PBES1 schemes) with `p12-keystore`'s decryption: the structure is exactly a PKCS#12 shrouded key bag,
/// so it is wrapped in a minimal MAC-less PKCS#12 archive and read back.
fn decrypt_pkcs8(epki: &[u8], password: &str, password_key: &str) -> Result<Vec<u8>, String> {
    if der_tlv(epki).map(|(tag, ..)| tag) != Some(0x30) {
        return Err("the ENCRYPTED PRIVATE KEY section is not DER".into());
    }
    let bag = der(0x30, &[OID_SHROUDED_KEY_BAG, &der(0xa0, epki)].concat());
    let safe_contents = der(0x30, &bag);
    let safe = der(
        0x30,
        &[OID_DATA, &der(0xa0, &der(0x04, &safe_contents))].concat(),
    );
    let auth_safe = der(0x30, &safe);
    let content_info = der(
        0x30,
        &[OID_DATA, &der(0xa0, &der(0x04, &auth_safe))].concat(),
    );
    let pfx = der(0x30, &[&[0x02, 0x01, 0x03][..], &content_info].concat());
    let archive = Pkcs12Archive::from_pkcs12(&pfx, password).map_err(|_| {
        format!(
            "cannot decrypt the ENCRYPTED PRIVATE KEY: wrong {password_key}, or an encryption scheme other \
             than PBES2 (PBKDF2/scrypt with AES-CBC) or PKCS#12 PBE"
        )
    })?;
    archive
        .keys
        .first()
        .map(|k| k.key.as_der().to_vec())
        .ok_or_else(|| "the ENCRYPTED PRIVATE KEY holds no key".into())
}

/// A PKCS#12 archive without its MAC, so that it can be read without the password (Java reads a trust
/// store without `ssl.truststore.password` the same way: no integrity check).
fn strip_pfx_mac(data: &[u8]) -> Option<Vec<u8>> {
    let (tag, content, _, _) = der_tlv(data)?;
    if tag != 0x30 {
        return None;
    }
    let (vtag, _, version, rest) = der_tlv(content)?;
    let (ctag, _, content_info, _) = der_tlv(rest)?;
    if vtag != 0x02 || ctag != 0x30 {
        return None;
    }
    Some(der(0x30, &[version, content_info].concat()))
}

fn p12_error(e: p12_keystore::error::Error, password_key: &str) -> String {
    let text = e.to_string();
    if text.to_ascii_lowercase().contains("mac") {
        format!("integrity check failed: wrong {password_key} or a damaged file ({text})")
    } else {
        format!("{text} (wrong {password_key}, or a damaged or unsupported file)")
    }
}

/// The private key entry of a PKCS#12 key store (the first by alias if there are several).
pub(crate) fn pkcs12_key_entry(
    data: &[u8],
    store_password: &str,
    key_password: &str,
) -> Result<KeyMaterial, String> {
    let store = P12KeyStore::from_pkcs12(data, store_password, Pkcs12ImportPolicy::Strict)
        .or_else(|first| {
            // PKCS#12 has one password for everything, but accept a key password that differs from the
            // store password when it is the one that opens the file.
            if key_password != store_password {
                P12KeyStore::from_pkcs12(data, key_password, Pkcs12ImportPolicy::Strict)
                    .map_err(|_| first)
            } else {
                Err(first)
            }
        })
        .map_err(|e| p12_error(e, "ssl.keystore.password"))?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or("the store holds no private key entry")?;
    let certs: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    if certs.is_empty() {
        return Err("the private key entry has no certificate".into());
    }
    Ok(KeyMaterial {
        chain: certs,
        key: PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()).into(),
    })
}

/// The trusted certificates of a PKCS#12 trust store: the certificates keytool marks trusted
/// (`-importcert`), and the end-entity certificates of key entries (Java trusts those too); a store with
/// neither (e.g. `openssl pkcs12 -export -nokeys`) trusts every certificate it holds.
pub(crate) fn pkcs12_trusted(
    data: &[u8],
    password: Option<&str>,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let archive = match password {
        Some(pw) => Pkcs12Archive::from_pkcs12(data, pw)
            .map_err(|e| p12_error(e, "ssl.truststore.password"))?,
        None => {
            let stripped = strip_pfx_mac(data).ok_or("not a PKCS12 file")?;
            Pkcs12Archive::from_pkcs12(&stripped, "").map_err(|e| {
                format!(
                    "cannot read it without a password ({e}); its certificates are probably encrypted: set \
                     ssl.truststore.password"
                )
            })?
        }
    };
    let key_ids: Vec<&[u8]> = archive
        .keys
        .iter()
        .filter_map(|k| k.local_key_id.as_ref().map(|id| id.0.as_slice()))
        .collect();
    let mut certs: Vec<CertificateDer<'static>> = archive
        .certs
        .iter()
        .filter(|c| {
            c.trusted
                || c.local_key_id
                    .as_deref()
                    .is_some_and(|id| key_ids.contains(&id))
        })
        .map(|c| CertificateDer::from(c.cert.as_der().to_vec()))
        .collect();
    if certs.is_empty() {
        certs = archive
            .certs
            .iter()
            .filter(|c| c.local_key_id.is_none())
            .map(|c| CertificateDer::from(c.cert.as_der().to_vec()))
            .collect();
    }
    if certs.is_empty() {
        return Err("the store holds no certificates".into());
    }
    Ok(certs)
}

/// The entries of a JKS file, sorted by alias; the integrity digest is checked when a password is given
/// (Java skips the check without one).
fn jks_entries(
    data: &[u8],
    password: Option<&str>,
    password_key: &str,
) -> Result<Vec<(String, jks::Entry)>, String> {
    let mut reader = data;
    let mut decoder = jks::decoder::Decoder::new(&mut reader);
    if let Some(pw) = password {
        decoder.update_digest(&jks::common::password_bytes(pw.as_bytes()));
        decoder.update_digest(jks::common::WHITENER_MESSAGE);
    }
    let malformed = |e: jks::KeyStoreError| format!("malformed JKS file: {e}");
    if decoder.read_u32().map_err(malformed)? != jks::common::MAGIC {
        return Err("not a JKS file".into());
    }
    let version = decoder.read_u32().map_err(malformed)?;
    let count = decoder.read_u32().map_err(malformed)?;
    let mut entries = Vec::new();
    for _ in 0..count {
        entries.push(decoder.read_entry(version).map_err(malformed)?);
    }
    if password.is_some() {
        decoder.verify_digest().map_err(|_| {
            format!("integrity check failed: wrong {password_key} or a damaged file")
        })?;
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// The private key entry of a JKS key store (the first by alias if there are several).
pub(crate) fn jks_key_entry(
    data: &[u8],
    store_password: &str,
    key_password: &str,
) -> Result<KeyMaterial, String> {
    let entries = jks_entries(data, Some(store_password), "ssl.keystore.password")?;
    let entry = entries
        .into_iter()
        .find_map(|(_, e)| match e {
            jks::Entry::PrivateKey(pke) => Some(pke),
            jks::Entry::TrustedCertificate(_) => None,
        })
        .ok_or("the store holds no private key entry")?;
    let key = jks::keyprotector::decrypt(
        &entry.private_key,
        key_password.as_bytes(),
        jks::common::password_bytes,
    )
    .map_err(|_| {
        "cannot decrypt the private key entry: wrong ssl.key.password (or ssl.keystore.password when \
         ssl.key.password is not set)"
            .to_string()
    })?;
    let chain: Vec<CertificateDer<'static>> = entry
        .certificate_chain
        .iter()
        .map(|c| CertificateDer::from(c.content.clone()))
        .collect();
    if chain.is_empty() {
        return Err("the private key entry has no certificate".into());
    }
    Ok(KeyMaterial {
        chain,
        key: PrivatePkcs8KeyDer::from(key).into(),
    })
}

/// The trusted certificates of a JKS trust store: trusted certificate entries and the end-entity
/// certificates of key entries, as Java's trust manager uses them.
pub(crate) fn jks_trusted(
    data: &[u8],
    password: Option<&str>,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> =
        jks_entries(data, password, "ssl.truststore.password")?
            .into_iter()
            .filter_map(|(_, e)| match e {
                jks::Entry::TrustedCertificate(t) => Some(t.certificate.content),
                jks::Entry::PrivateKey(k) => k.certificate_chain.first().map(|c| c.content.clone()),
            })
            .map(CertificateDer::from)
            .collect();
    if certs.is_empty() {
        return Err("the store holds no certificates".into());
    }
    Ok(certs)
}
