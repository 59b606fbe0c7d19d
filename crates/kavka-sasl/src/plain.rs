//! SASL/PLAIN (RFC 4616) token handling, with Kafka's PlainSaslServer checks and messages.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{check_size, SaslError};

/// A parsed PLAIN token.
#[derive(Clone, PartialEq, Eq)]
pub struct PlainToken {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for PlainToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens end up in debug logs of failed logins; the password must not.
        f.debug_struct("PlainToken")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Parses a SASL/PLAIN token "authzid\0user\0password" (RFC 4616). Kafka refuses an authzid
/// different from the user name, and an empty user or password.
pub fn parse_plain(token: &[u8]) -> Result<PlainToken, SaslError> {
    check_size(token)?;
    let parts: Vec<&[u8]> = token.split(|&b| b == 0).collect();
    if parts.len() != 3 {
        return Err(SaslError::InvalidPlain(format!(
            "expected 3 tokens, got {}",
            parts.len()
        )));
    }
    let text = |b: &[u8]| {
        String::from_utf8(b.to_vec())
            .map_err(|_| SaslError::InvalidPlain("not valid UTF-8".to_owned()))
    };
    let authzid = text(parts[0])?;
    let user = text(parts[1])?;
    let password = text(parts[2])?;
    if user.is_empty() {
        return Err(SaslError::PlainUsernameMissing);
    }
    if password.is_empty() {
        return Err(SaslError::PlainPasswordMissing);
    }
    if !authzid.is_empty() && authzid != user {
        return Err(SaslError::AuthzidMismatch);
    }
    Ok(PlainToken { user, password })
}

/// The token a client sends: empty authzid, as Kafka's client does.
pub fn plain_token(user: &str, password: &str) -> Vec<u8> {
    let mut token = Vec::with_capacity(user.len() + password.len() + 2);
    token.push(0);
    token.extend_from_slice(user.as_bytes());
    token.push(0);
    token.extend_from_slice(password.as_bytes());
    token
}

/// Constant-time password comparison.
///
/// Both sides are hashed first so that neither the content nor the length of the expected password
/// leaks through timing.
pub fn passwords_match(expected: &str, given: &str) -> bool {
    let a = Sha256::digest(expected.as_bytes());
    let b = Sha256::digest(given.as_bytes());
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens() {
        let t = parse_plain(b"\0alice\0alice-secret").unwrap();
        assert_eq!(t.user, "alice");
        assert_eq!(t.password, "alice-secret");
        let t = parse_plain(b"alice\0alice\0pw").unwrap();
        assert_eq!(t.user, "alice");
        assert_eq!(parse_plain(&plain_token("bob", "pw")).unwrap().user, "bob");
    }

    #[test]
    fn edge_cases() {
        let err = parse_plain(b"alice\0pw").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Invalid SASL/PLAIN response: expected 3 tokens, got 2"
        );
        assert!(parse_plain(b"").is_err());
        assert!(parse_plain(b"\0a\0b\0c").is_err());
        assert!(matches!(
            parse_plain(b"\0\0pw"),
            Err(SaslError::PlainUsernameMissing)
        ));
        assert!(matches!(
            parse_plain(b"\0alice\0"),
            Err(SaslError::PlainPasswordMissing)
        ));
        let err = parse_plain(b"admin\0alice\0pw").unwrap_err();
        assert!(matches!(err, SaslError::AuthzidMismatch));
        assert!(parse_plain(b"\0al\xffice\0pw").is_err());
        let big = vec![b'a'; crate::MAX_MESSAGE_SIZE + 1];
        assert!(matches!(
            parse_plain(&big),
            Err(SaslError::MessageTooLarge { .. })
        ));
        assert_eq!(
            SaslError::InvalidUsernameOrPassword.to_string(),
            "Authentication failed: Invalid username or password"
        );
    }

    #[test]
    fn debug_hides_password() {
        let t = parse_plain(b"\0alice\0s3cr3t-pw").unwrap();
        let dbg = format!("{t:?}");
        assert!(dbg.contains("alice"));
        assert!(!dbg.contains("s3cr3t-pw"));
    }

    #[test]
    fn password_comparison() {
        assert!(passwords_match("secret", "secret"));
        assert!(!passwords_match("secret", "secreT"));
        assert!(!passwords_match("secret", "secret2"));
        assert!(!passwords_match("secret", ""));
    }
}
