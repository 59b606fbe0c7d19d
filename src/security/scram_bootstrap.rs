//! SCRAM credentials given to `kavka storage format --add-scram` (Kafka's option of the same name): users
//! that exist from a cluster's first start, before anyone could create them through the admin API. Nodes
//! that log in to each other with SCRAM need them, since the credentials otherwise live only in the
//! metadata log those very connections replicate.
//!
//! They are kept in [`BOOTSTRAP_SCRAM_FILE`] next to the initial voters. Until the active controller has
//! written them into the metadata log (once per cluster, with a marker record), a node checks SCRAM logins
//! against this file; afterwards only the log counts, so a credential changed or deleted later stays so.

use std::path::Path;

use base64::Engine;
use kavka_sasl::{random_salt, ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};
use serde::{Deserialize, Serialize};

use crate::controller::quorum::METADATA_DIR;

/// One JSON credential per line, in the metadata log's directory.
pub const BOOTSTRAP_SCRAM_FILE: &str = "bootstrap-scram";

/// A credential to create at a cluster's first start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapScram {
    pub name: String,
    pub mechanism: ScramMechanism,
    pub credential: ScramCredential,
}

/// Parses Kafka's `--add-scram` argument: `SCRAM-SHA-256=[name=alice,password=alice-secret]`, with
/// optional `iterations=N` (default 4096), or `salt=<base64>` and `saltedpassword=<base64>` instead of a
/// password. Values may be quoted.
pub fn parse_add_scram(arg: &str) -> Result<BootstrapScram, String> {
    let (mechanism, rest) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?}: expected MECHANISM=[name=...,password=...]"))?;
    let mechanism = ScramMechanism::from_name(mechanism.trim()).ok_or_else(|| {
        format!("unknown SCRAM mechanism {mechanism:?} (SCRAM-SHA-256 or SCRAM-SHA-512)")
    })?;
    let inner = rest
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(|| {
            format!("{mechanism:?}: the settings go in brackets: [name=...,password=...]")
        })?;
    let (mut name, mut password, mut iterations, mut salt, mut salted) =
        (None, None, None, None, None);
    for pair in inner.split(',') {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not key=value"))?;
        let value = value.trim().trim_matches('"').to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(value),
            "password" => password = Some(value),
            "iterations" => {
                iterations = Some(
                    value
                        .parse::<i32>()
                        .map_err(|_| format!("iterations {value:?} is not a number"))?,
                )
            }
            "salt" => salt = Some(decode(&value, "salt")?),
            "saltedpassword" => salted = Some(decode(&value, "saltedpassword")?),
            other => return Err(format!("unknown --add-scram setting {other:?}")),
        }
    }
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or("--add-scram needs name=")?;
    let iterations = iterations.unwrap_or(MIN_ITERATIONS);
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(format!(
            "iterations must be {MIN_ITERATIONS}..={MAX_ITERATIONS}, not {iterations}"
        ));
    }
    let credential = match (password, salt, salted) {
        (Some(password), salt, None) => ScramCredential::from_password(
            mechanism,
            &password,
            &salt.unwrap_or_else(random_salt),
            iterations,
        ),
        (None, Some(salt), Some(salted)) => {
            ScramCredential::from_salted_password(mechanism, &salt, &salted, iterations)
        }
        _ => {
            return Err(
                "--add-scram needs password=, or salt= and saltedpassword= (not both)".into(),
            )
        }
    };
    Ok(BootstrapScram {
        name,
        mechanism,
        credential,
    })
}

fn decode(value: &str, what: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .map_err(|_| format!("{what} is not base64"))
}

/// The file's text for `credentials`.
pub fn file_text(credentials: &[BootstrapScram]) -> String {
    credentials
        .iter()
        .filter_map(|c| serde_json::to_string(c).ok())
        .map(|line| line + "\n")
        .collect()
}

/// The credentials `kavka storage format --add-scram` wrote into `log_dir`, if any.
pub fn read(log_dir: &Path) -> Result<Vec<BootstrapScram>, String> {
    let path = log_dir.join(METADATA_DIR).join(BOOTSTRAP_SCRAM_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| format!("{}: {e}", path.display())))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_add_scram_arguments() {
        let c =
            parse_add_scram("SCRAM-SHA-512=[name=alice,password=\"alice-secret\",iterations=8192]")
                .expect("parse");
        assert_eq!(
            (c.name.as_str(), c.mechanism),
            ("alice", ScramMechanism::Sha512)
        );
        assert_eq!(c.credential.iterations, 8192);
        let expected = ScramCredential::from_password(
            ScramMechanism::Sha512,
            "alice-secret",
            &c.credential.salt,
            8192,
        );
        assert_eq!(c.credential, expected);
        let salted = parse_add_scram(
            "SCRAM-SHA-256=[name=bob,salt=\"c2FsdA==\",saltedpassword=\"cGFzc3dvcmQ=\"]",
        )
        .expect("salted");
        assert_eq!(salted.credential.salt, b"salt");
        for bad in [
            "SCRAM-SHA-1=[name=a,password=b]",
            "SCRAM-SHA-256=name=a,password=b",
            "SCRAM-SHA-256=[password=b]",
            "SCRAM-SHA-256=[name=a,password=b,iterations=10]",
            "SCRAM-SHA-256=[name=a]",
        ] {
            assert!(parse_add_scram(bad).is_err(), "{bad}");
        }
        let text = file_text(&[c.clone(), salted]);
        let dir = tempfile::tempdir().expect("dir");
        let meta = dir.path().join(METADATA_DIR);
        std::fs::create_dir_all(&meta).expect("mkdir");
        std::fs::write(meta.join(BOOTSTRAP_SCRAM_FILE), text).expect("write");
        assert_eq!(read(dir.path()).expect("read")[0], c);
    }
}
