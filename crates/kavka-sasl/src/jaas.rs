//! Kafka's `sasl.jaas.config` property: a single JAAS login-module entry.

use std::collections::BTreeMap;

use crate::{check_size, SaslError};

/// Kafka's `sasl.jaas.config` value: `<LoginModuleClass> <required|requisite|sufficient|optional>
/// key="value" key2=value2;` (one module entry; values quoted with "..." supporting \" and \\
/// escapes, or bare tokens; trailing ';' required as in Kafka).
#[derive(Clone, PartialEq, Eq)]
pub struct JaasConfig {
    pub login_module: String,
    /// Lower-cased, since Kafka accepts the flag in any case.
    pub control_flag: String,
    pub options: BTreeMap<String, String>,
}

impl std::fmt::Debug for JaasConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Option values are passwords; only their names may reach logs.
        f.debug_struct("JaasConfig")
            .field("login_module", &self.login_module)
            .field("control_flag", &self.control_flag)
            .field("option_keys", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl JaasConfig {
    /// The client identity of PLAIN and SCRAM login modules.
    pub fn username(&self) -> Option<&str> {
        self.options.get("username").map(String::as_str)
    }

    pub fn password(&self) -> Option<&str> {
        self.options.get("password").map(String::as_str)
    }

    /// PLAIN server users: options named user_<name>=<password> (Kafka's PlainLoginModule convention).
    pub fn plain_users(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("user_")
                    .filter(|name| !name.is_empty())
                    .map(|name| (name.to_owned(), v.clone()))
            })
            .collect()
    }
}

const CONTROL_FLAGS: [&str; 4] = ["required", "requisite", "sufficient", "optional"];

fn invalid(msg: impl Into<String>) -> SaslError {
    SaslError::InvalidJaasConfig(msg.into())
}

struct Lexer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Lexer<'_> {
    fn skip_ws(&mut self) {
        while self.chars.next_if(|c| c.is_whitespace()).is_some() {}
    }

    /// A bare token: anything up to whitespace or one of `= ; "`.
    fn word(&mut self) -> String {
        let mut s = String::new();
        while let Some(c) = self
            .chars
            .next_if(|c| !c.is_whitespace() && !matches!(c, '=' | ';' | '"'))
        {
            s.push(c);
        }
        s
    }

    /// The body of a "..." value after the opening quote. Unknown escapes yield the escaped
    /// character itself, as Java's StreamTokenizer (which Kafka uses) does.
    fn quoted(&mut self) -> Result<String, SaslError> {
        let mut s = String::new();
        loop {
            match self.chars.next() {
                None => return Err(invalid("unterminated quoted value")),
                Some('"') => return Ok(s),
                Some('\\') => match self.chars.next() {
                    None => return Err(invalid("unterminated quoted value")),
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some('r') => s.push('\r'),
                    Some(c) => s.push(c),
                },
                Some(c) => s.push(c),
            }
        }
    }
}

/// Parses one login-module entry. Values may hold secrets, so errors name positions and keys only.
/// A repeated option keeps its last value, as Kafka's parser does.
pub fn parse_jaas_config(value: &str) -> Result<JaasConfig, SaslError> {
    check_size(value.as_bytes())?;
    let mut lx = Lexer {
        chars: value.chars().peekable(),
    };
    lx.skip_ws();
    let login_module = lx.word();
    if login_module.is_empty() {
        return Err(invalid("login module class name expected"));
    }
    lx.skip_ws();
    let flag = lx.word().to_ascii_lowercase();
    if !CONTROL_FLAGS.contains(&flag.as_str()) {
        return Err(invalid(format!(
            "login module control flag expected after {login_module}"
        )));
    }

    let mut options = BTreeMap::new();
    loop {
        lx.skip_ws();
        match lx.chars.peek() {
            None => return Err(invalid("expected ';' at end of login module entry")),
            Some(';') => {
                lx.chars.next();
                break;
            }
            _ => {}
        }
        let key = lx.word();
        if key.is_empty() {
            return Err(invalid("option name expected"));
        }
        lx.skip_ws();
        if lx.chars.next() != Some('=') {
            return Err(invalid(format!("'=' expected after option {key}")));
        }
        lx.skip_ws();
        let val = if lx.chars.next_if_eq(&'"').is_some() {
            lx.quoted()?
        } else {
            let v = lx.word();
            if v.is_empty() {
                return Err(invalid(format!("value expected for option {key}")));
            }
            v
        };
        options.insert(key, val);
    }
    lx.skip_ws();
    if lx.chars.peek().is_some() {
        return Err(invalid(
            "only one login module entry is supported in sasl.jaas.config",
        ));
    }
    Ok(JaasConfig {
        login_module,
        control_flag: flag,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_login_module() {
        let c = parse_jaas_config(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";"#,
        )
        .unwrap();
        assert_eq!(
            c.login_module,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(c.control_flag, "required");
        assert_eq!(c.username(), Some("admin"));
        assert_eq!(c.password(), Some("admin-secret"));
        let users = c.plain_users();
        assert_eq!(users.len(), 2);
        assert_eq!(users["admin"], "admin-secret");
        assert_eq!(users["alice"], "alice-secret");
    }

    #[test]
    fn scram_login_module_and_bare_values() {
        let c = parse_jaas_config(
            "  org.apache.kafka.common.security.scram.ScramLoginModule REQUIRED\n  username=alice\n  password=\"al\\\"ice\\\\pw\" tokenauth=false ;  ",
        )
        .unwrap();
        assert_eq!(
            c.login_module,
            "org.apache.kafka.common.security.scram.ScramLoginModule"
        );
        assert_eq!(c.control_flag, "required");
        assert_eq!(c.username(), Some("alice"));
        assert_eq!(c.password(), Some("al\"ice\\pw"));
        assert_eq!(c.options["tokenauth"], "false");
        assert!(c.plain_users().is_empty());
    }

    #[test]
    fn no_options_and_empty_quoted_value() {
        let c = parse_jaas_config("a.B optional;").unwrap();
        assert!(c.options.is_empty());
        let c = parse_jaas_config(r#"a.B sufficient k="";"#).unwrap();
        assert_eq!(c.options["k"], "");
    }

    #[test]
    fn errors() {
        for bad in [
            r#"a.B required username="admin""#,
            r#"a.B required username="admin;"#,
            r#"a.B required password="x\"#,
            r#"a.B mandatory username="admin";"#,
            r#"a.B required username;"#,
            r#"a.B required username=;"#,
            r#"a.B required ="x";"#,
            r#"a.B required; c.D required;"#,
            "",
            ";",
        ] {
            assert!(
                matches!(parse_jaas_config(bad), Err(SaslError::InvalidJaasConfig(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn secrets_never_printed() {
        let value = r#"x.PlainLoginModule required username="admin" password="top-secret-1" user_bob="top-secret-2";"#;
        let c = parse_jaas_config(value).unwrap();
        let dbg = format!("{c:?}");
        assert!(dbg.contains("user_bob"));
        assert!(!dbg.contains("top-secret"));
        let err = parse_jaas_config(&value.replace(';', "")).unwrap_err();
        assert!(!err.to_string().contains("top-secret"));
        let err = parse_jaas_config(r#"x.Y required password="top-secret-3 foo"#).unwrap_err();
        assert!(!err.to_string().contains("top-secret"));
    }
}
