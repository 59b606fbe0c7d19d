//! The principal of a TLS client that presented a certificate (mTLS), as Kafka builds it.
//!
//! Kafka's `DefaultKafkaPrincipalBuilder` takes the peer certificate's subject distinguished name as
//! Java's `X500Principal.getName()` prints it (RFC 2253: most specific RDN first, `CN=app,OU=eng,O=Kavka,C=US`),
//! rewrites it with `ssl.principal.mapping.rules` (`SslPrincipalMapper`) and makes it a `User:` principal. A
//! connection without a client certificate is `User:ANONYMOUS`.
//!
//! Rules (Kafka's syntax, several separated by commas, first match wins):
//! * `DEFAULT`: the distinguished name unchanged;
//! * `RULE:pattern/replacement/` with an optional `L` or `U` after the last slash to lower- or upper-case the
//!   result. The rule applies when `pattern` matches the *whole* name; the name is then rewritten with every
//!   match of `pattern` replaced by `replacement` (Java's `String.replaceAll`: `$1`, `${name}` refer to groups,
//!   `\x` is a literal `x`; a back reference to a group the pattern does not have is literal text, as in Kafka).
//!   `/` inside the pattern or replacement is written `\/`.
//!
//! Kafka compiles patterns with `java.util.regex`; Kavka uses the `regex` crate, which has the same syntax for
//! everything such rules normally use (classes, groups, lazy quantifiers, anchors) but no look-around or
//! back references inside the pattern: a rule using those is refused when the rules are parsed.
//!
//! A name that no rule matches fails the connection's authentication, as in Kafka (`NoMatchingRule`).

use std::fmt;

use regex::Regex;

/// The key holding the rules.
pub const SSL_PRINCIPAL_MAPPING_RULES: &str = "ssl.principal.mapping.rules";
/// Kafka's default rules.
pub const DEFAULT_SSL_PRINCIPAL_MAPPING_RULES: &str = "DEFAULT";
/// The principal of a connection without a client certificate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Why rules could not be parsed, or a principal could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// `ssl.principal.mapping.rules` is not valid.
    #[error("invalid {key}: {reason}")]
    InvalidRules {
        /// The key as set (possibly with its `listener.name.<name>.` prefix).
        key: String,
        /// What is wrong, naming the rule.
        reason: String,
    },
    /// No rule applies to the certificate's distinguished name.
    #[error("no ssl.principal.mapping.rules rule applies to {dn}, rules {rules}")]
    NoMatchingRule {
        /// The distinguished name.
        dn: String,
        /// The rules, as Kafka prints them.
        rules: String,
    },
    /// The client certificate could not be parsed.
    #[error("cannot parse the client certificate: {0}")]
    BadCertificate(String),
}

/// `ssl.principal.mapping.rules`, parsed once.
#[derive(Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl fmt::Debug for PrincipalMapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Kafka's `SslPrincipalMapper.toString()`: `SslPrincipalMapper(rules = [RULE:.../.../L, DEFAULT])`.
impl fmt::Display for PrincipalMapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SslPrincipalMapper(rules = {})", self.rules_string())
    }
}

impl Default for PrincipalMapper {
    fn default() -> Self {
        PrincipalMapper {
            rules: vec![Rule::Default],
        }
    }
}

#[derive(Clone)]
enum Rule {
    Default,
    Rewrite(Box<RewriteRule>),
}

#[derive(Clone)]
struct RewriteRule {
    /// The pattern as written (for display).
    pattern_text: String,
    /// The replacement as written (for display).
    replacement_text: String,
    /// `\A(?:pattern)\z`: Java's `Matcher.matches()`.
    whole: Regex,
    /// The pattern itself, for the `replaceAll`.
    find: Regex,
    replacement: Vec<ReplacementPart>,
    case: Case,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Clone)]
enum ReplacementPart {
    Literal(String),
    Group(usize),
    Named(String),
}

// Kafka's grammar (SslPrincipalMapper.RULE_PATTERN / RULE_SPLITTER), unchanged: the `regex` crate's
// leftmost-first semantics pick the same alternatives as Java's backtracking matcher for these patterns.
const RULE_PATTERN: &str = r"(DEFAULT)|RULE:((\\.|[^\\/])*)/((\\.|[^\\/])*)/([LU]?).*?|(.*?)";

fn splitter() -> Regex {
    Regex::new(&format!(r"\s*({RULE_PATTERN})\s*(,\s*|$)")).expect("static regex")
}

fn parser() -> Regex {
    Regex::new(&format!(r"\A(?:{RULE_PATTERN})")).expect("static regex")
}

/// Java's `Matcher.find()` loop: the next search starts where the last match ended, one character further
/// after an empty match. Yields the captures of each match.
fn java_find_iter<'t>(re: &Regex, text: &'t str) -> Vec<regex::Captures<'t>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at <= text.len() {
        let Some(caps) = re.captures_at(text, at) else {
            break;
        };
        let m = caps.get(0).expect("group 0");
        at = if m.start() == m.end() {
            match text[m.end()..].chars().next() {
                Some(c) => m.end() + c.len_utf8(),
                None => text.len() + 1,
            }
        } else {
            m.end()
        };
        out.push(caps);
    }
    out
}

impl PrincipalMapper {
    /// Parses rules in Kafka's syntax; `key` names the setting in errors.
    pub fn from_rules_for_key(rules: &str, key: &str) -> Result<Self, PrincipalError> {
        let invalid = |reason: String| PrincipalError::InvalidRules {
            key: key.to_string(),
            reason,
        };
        let trimmed = rules.trim();
        let parser = parser();
        let mut parsed = Vec::new();
        for caps in java_find_iter(&splitter(), trimmed) {
            let rule = caps.get(1).map_or("", |m| m.as_str());
            let m = parser
                .captures(rule)
                .ok_or_else(|| invalid(format!("invalid rule: {rule}")))?;
            let end = m.get(0).map_or(0, |g| g.end());
            if end != rule.len() {
                return Err(invalid(format!(
                    "invalid rule: `{rule}`, unmatched substring: `{}`",
                    &rule[end..]
                )));
            }
            if m.get(1).is_some() {
                parsed.push(Rule::Default);
            } else if let Some(pattern) = m.get(2) {
                let replacement = m.get(4).map_or("", |g| g.as_str());
                let case = match m.get(6).map_or("", |g| g.as_str()) {
                    "L" => Case::Lower,
                    "U" => Case::Upper,
                    _ => Case::Keep,
                };
                parsed.push(Rule::Rewrite(Box::new(
                    RewriteRule::new(pattern.as_str(), replacement, case)
                        .map_err(|reason| invalid(format!("rule `{rule}`: {reason}")))?,
                )));
            }
            // Anything else is an empty rule: ignored, as in Kafka.
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// Parses rules in Kafka's syntax (errors name `ssl.principal.mapping.rules`).
    pub fn from_rules(rules: &str) -> Result<Self, PrincipalError> {
        Self::from_rules_for_key(rules, SSL_PRINCIPAL_MAPPING_RULES)
    }

    /// The mapper of one listener: `ssl.principal.mapping.rules` with its `listener.name.<name>.` override,
    /// Kafka's default `DEFAULT` when unset.
    pub fn for_listener(
        listener: &str,
        security: &kavka_config::SecurityConfig,
    ) -> Result<Self, PrincipalError> {
        let prefixed = format!(
            "listener.name.{}.{SSL_PRINCIPAL_MAPPING_RULES}",
            listener.to_ascii_lowercase()
        );
        let key = if security.get(&prefixed).is_some() {
            prefixed
        } else {
            SSL_PRINCIPAL_MAPPING_RULES.to_string()
        };
        let rules = security
            .for_listener(listener, SSL_PRINCIPAL_MAPPING_RULES)
            .unwrap_or(DEFAULT_SSL_PRINCIPAL_MAPPING_RULES);
        Self::from_rules_for_key(rules, &key)
    }

    /// The principal name (without `User:`) for a distinguished name: the first rule that applies.
    pub fn name(&self, distinguished_name: &str) -> Result<String, PrincipalError> {
        for rule in &self.rules {
            if let Some(name) = rule.apply(distinguished_name) {
                return Ok(name);
            }
        }
        Err(PrincipalError::NoMatchingRule {
            dn: distinguished_name.to_string(),
            rules: self.rules_string(),
        })
    }

    /// The principal (`User:<mapped name>`) of a peer certificate chain as rustls reports it
    /// (`Connection::peer_certificates()`); no certificate gives [`ANONYMOUS`].
    pub fn principal(
        &self,
        peer_certificates: Option<&[rustls::pki_types::CertificateDer<'_>]>,
    ) -> Result<String, PrincipalError> {
        match peer_certificates.and_then(|c| c.first()) {
            None => Ok(ANONYMOUS.to_string()),
            Some(cert) => {
                let dn = distinguished_name(cert.as_ref())?;
                Ok(format!("User:{}", self.name(&dn)?))
            }
        }
    }

    fn rules_string(&self) -> String {
        let rules: Vec<String> = self.rules.iter().map(|r| r.to_string()).collect();
        format!("[{}]", rules.join(", "))
    }
}

/// The principal of a TLS connection: `User:<mapped DN>` of the peer's end-entity certificate, or
/// `User:ANONYMOUS` without one. Pass `Connection::peer_certificates()`.
pub fn peer_principal(
    mapper: &PrincipalMapper,
    peer_certificates: Option<&[rustls::pki_types::CertificateDer<'_>]>,
) -> Result<String, PrincipalError> {
    mapper.principal(peer_certificates)
}

impl Rule {
    fn apply(&self, dn: &str) -> Option<String> {
        match self {
            Rule::Default => Some(dn.to_string()),
            Rule::Rewrite(r) => r.apply(dn),
        }
    }
}

impl fmt::Display for Rule {
    /// Kafka's `Rule.toString()`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Default => f.write_str("DEFAULT"),
            Rule::Rewrite(r) => {
                write!(f, "RULE:{}/{}", r.pattern_text, r.replacement_text)?;
                match r.case {
                    Case::Lower => f.write_str("/L"),
                    Case::Upper => f.write_str("/U"),
                    Case::Keep => Ok(()),
                }
            }
        }
    }
}

impl RewriteRule {
    fn new(pattern: &str, replacement: &str, case: Case) -> Result<Self, String> {
        // `\/` is how a rule writes `/`; Java's regex reads it as a literal slash. Turn it into `/` for the
        // `regex` crate and keep every other escape as written.
        let mut regex_src = String::with_capacity(pattern.len());
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('/') => regex_src.push('/'),
                    Some(n) => {
                        regex_src.push('\\');
                        regex_src.push(n);
                    }
                    None => regex_src.push('\\'),
                }
            } else {
                regex_src.push(c);
            }
        }
        let find = Regex::new(&regex_src).map_err(|e| format!("invalid pattern: {e}"))?;
        let whole = Regex::new(&format!(r"\A(?:{regex_src})\z"))
            .map_err(|e| format!("invalid pattern: {e}"))?;
        let group_count = find.captures_len() - 1;
        let names: Vec<&str> = find.capture_names().flatten().collect();
        let replacement_parts = parse_replacement(replacement, group_count, &names)?;
        Ok(RewriteRule {
            pattern_text: pattern.to_string(),
            replacement_text: replacement.to_string(),
            whole,
            find,
            replacement: replacement_parts,
            case,
        })
    }

    fn apply(&self, dn: &str) -> Option<String> {
        if !self.whole.is_match(dn) {
            return None;
        }
        // Java's `String.replaceAll(pattern, replacement)`.
        let mut out = String::with_capacity(dn.len());
        let mut last = 0;
        for caps in java_find_iter(&self.find, dn) {
            let m = caps.get(0).expect("group 0");
            out.push_str(&dn[last..m.start()]);
            for part in &self.replacement {
                match part {
                    ReplacementPart::Literal(s) => out.push_str(s),
                    ReplacementPart::Group(g) => {
                        out.push_str(caps.get(*g).map_or("", |m| m.as_str()))
                    }
                    ReplacementPart::Named(n) => {
                        out.push_str(caps.name(n).map_or("", |m| m.as_str()))
                    }
                }
            }
            last = m.end();
        }
        out.push_str(&dn[last.min(dn.len())..]);
        Some(match self.case {
            Case::Keep => out,
            Case::Lower => out.to_lowercase(),
            Case::Upper => out.to_uppercase(),
        })
    }
}

/// Java's replacement syntax (`Matcher.appendReplacement`) with Kafka's `escapeLiteralBackReferences`: a
/// `$n` whose first digit names no group is literal text; further digits join the group number while it
/// stays a valid group.
fn parse_replacement(
    replacement: &str,
    group_count: usize,
    names: &[&str],
) -> Result<Vec<ReplacementPart>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let chars: Vec<char> = replacement.chars().collect();
    let mut i = 0;
    let flush = |literal: &mut String, parts: &mut Vec<ReplacementPart>| {
        if !literal.is_empty() {
            parts.push(ReplacementPart::Literal(std::mem::take(literal)));
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err("replacement ends with a lone `\\`".to_string());
                };
                literal.push(next);
                i += 2;
            }
            '$' => {
                match chars.get(i + 1) {
                    Some(d) if d.is_ascii_digit() => {
                        let first = d.to_digit(10).unwrap_or(0) as usize;
                        if first > group_count {
                            if group_count == 0 {
                                // Kafka leaves the reference alone and Java then fails every match.
                                return Err(format!(
                                    "replacement refers to group ${first} but the pattern has no groups"
                                ));
                            }
                            // Kafka escapes it: a literal `$`, the digits follow as text.
                            literal.push('$');
                            i += 1;
                            continue;
                        }
                        let mut group = first;
                        let mut j = i + 2;
                        while let Some(d) = chars.get(j).and_then(|c| c.to_digit(10)) {
                            let candidate = group * 10 + d as usize;
                            if candidate > group_count {
                                break;
                            }
                            group = candidate;
                            j += 1;
                        }
                        flush(&mut literal, &mut parts);
                        parts.push(ReplacementPart::Group(group));
                        i = j;
                    }
                    Some('{') => {
                        let close = chars[i + 2..]
                            .iter()
                            .position(|&c| c == '}')
                            .ok_or_else(|| "replacement has an unclosed `${`".to_string())?;
                        let name: String = chars[i + 2..i + 2 + close].iter().collect();
                        if !names.contains(&name.as_str()) {
                            return Err(format!("replacement refers to unknown group `{name}`"));
                        }
                        flush(&mut literal, &mut parts);
                        parts.push(ReplacementPart::Named(name));
                        i += 3 + close;
                    }
                    _ => {
                        return Err(
                            "illegal group reference in replacement (write a literal `$` as `\\$`)"
                                .to_string(),
                        )
                    }
                }
            }
            _ => {
                literal.push(c);
                i += 1;
            }
        }
    }
    flush(&mut literal, &mut parts);
    Ok(parts)
}

// ---------------------------------------------------------------------------------------------------------
// Distinguished names, as Java's X500Principal.getName() (RFC 2253) prints them.
// ---------------------------------------------------------------------------------------------------------

/// The subject distinguished name of a DER certificate, formatted as Java's `X500Principal.getName()`
/// (RFC 2253): RDNs most specific first (the reverse of their order in the certificate), joined by `,`;
/// the attributes of a multi-valued RDN joined by `+`; the keywords `CN`, `C`, `L`, `ST`, `O`, `OU`,
/// `STREET`, `DC` and `UID`, any other attribute as its dotted OID with the value as `#` and the hex of its
/// DER encoding (e.g. `1.2.840.113549.1.9.1=#16...` for an e-mail address); `,=+<>#;"\` escaped with `\`,
/// as are leading and trailing spaces.
pub fn distinguished_name(cert_der: &[u8]) -> Result<String, PrincipalError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| PrincipalError::BadCertificate(e.to_string()))?;
    format_name(cert.tbs_certificate.subject.as_raw())
        .ok_or_else(|| PrincipalError::BadCertificate("malformed subject name".to_string()))
}

/// A DER element: tag, content, the whole element, and the input after it.
pub(super) type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// The first DER element of `input` (short tags, definite lengths up to 4 bytes).
pub(super) fn der_tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let tag = *input.first()?;
    if tag & 0x1f == 0x1f {
        return None; // high tag numbers do not occur in names
    }
    let first = *input.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    if end > input.len() {
        return None;
    }
    Some((tag, &input[header..end], &input[..end], &input[end..]))
}

fn format_name(name_der: &[u8]) -> Option<String> {
    let (tag, mut rdns, _, _) = der_tlv(name_der)?;
    if tag != 0x30 {
        return None;
    }
    let mut formatted = Vec::new();
    while !rdns.is_empty() {
        let (tag, mut avas, _, rest) = der_tlv(rdns)?;
        if tag != 0x31 {
            return None;
        }
        rdns = rest;
        let mut parts = Vec::new();
        while !avas.is_empty() {
            let (tag, ava, _, rest) = der_tlv(avas)?;
            if tag != 0x30 {
                return None;
            }
            avas = rest;
            let (oid_tag, oid, _, value) = der_tlv(ava)?;
            if oid_tag != 0x06 {
                return None;
            }
            let (value_tag, value_content, value_tlv, _) = der_tlv(value)?;
            parts.push(format_ava(oid, value_tag, value_content, value_tlv)?);
        }
        formatted.push(parts.join("+"));
    }
    formatted.reverse();
    Some(formatted.join(","))
}

fn oid_string(oid: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = value.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    let first = *arcs.first()?;
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut s = format!("{a}.{b}");
    for arc in &arcs[1..] {
        s.push('.');
        s.push_str(&arc.to_string());
    }
    Some(s)
}

/// Java's `AVAKeyword` names that are RFC 2253 compliant.
fn rfc2253_keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// Java's `DerValue.isPrintableStringChar`.
fn is_printable_string_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            ' ' | '\'' | '(' | ')' | '+' | ',' | '-' | '.' | '/' | ':' | '=' | '?'
        )
}

fn format_ava(oid: &[u8], tag: u8, content: &[u8], tlv: &[u8]) -> Option<String> {
    let oid = oid_string(oid)?;
    let keyword = rfc2253_keyword(&oid);
    // Java's AVA.isDerString(value, false): PrintableString, T61String, IA5String, GeneralString,
    // UTF8String, BMPString.
    let text = match tag {
        0x13 | 0x14 | 0x16 | 0x1b | 0x0c => Some(String::from_utf8_lossy(content).into_owned()),
        0x1e => {
            let units: Vec<u16> = content
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    };
    let (Some(keyword), Some(text)) = (keyword, text) else {
        let mut s = format!("{}=#", keyword.unwrap_or(&oid));
        for b in tlv {
            s.push_str(&format!("{b:02x}"));
        }
        return Some(s);
    };
    const ESCAPEES: &str = ",=+<>#;\"\\";
    let mut escaped: Vec<char> = Vec::with_capacity(text.len());
    for c in text.chars() {
        if is_printable_string_char(c) || ESCAPEES.contains(c) {
            if ESCAPEES.contains(c) {
                escaped.push('\\');
            }
        } else if c == '\0' {
            escaped.extend(['\\', '0', '0']);
        }
        escaped.push(c);
    }
    let lead = escaped
        .iter()
        .position(|&c| c != ' ' && c != '\r')
        .unwrap_or(escaped.len());
    // One past the last character that is not trailing whitespace.
    let end = escaped
        .iter()
        .rposition(|&c| c != ' ' && c != '\r')
        .map_or(0, |t| t + 1);
    let mut s = format!("{keyword}=");
    for (i, c) in escaped.iter().enumerate() {
        if i < lead || i >= end {
            s.push('\\');
        }
        s.push(*c);
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(rules: &str) {
        PrincipalMapper::from_rules(rules).unwrap_or_else(|e| panic!("{rules}: {e}"));
    }

    fn invalid(rules: &str) {
        assert!(
            PrincipalMapper::from_rules(rules).is_err(),
            "{rules} should be refused"
        );
    }

    // Kafka's SslPrincipalMapperTest.testValidRules.
    #[test]
    fn valid_rules() {
        valid("DEFAULT");
        valid("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/");
        valid("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, DEFAULT");
        valid("RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/");
        valid("RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L");
        valid("RULE:^cn=(.?),ou=(.?),dc=(.?),dc=(.?)$/$1@$2/U");
        valid("RULE:^CN=([^,ADEFLTU,]+)(,.*|$)/$1/");
        valid("RULE:^CN=([^,DEFAULT,]+)(,.*|$)/$1/");
    }

    // Kafka's SslPrincipalMapperTest.testInvalidRules.
    #[test]
    fn invalid_rules() {
        invalid("default");
        invalid("DEFAUL");
        invalid("DEFAULT/L");
        invalid("DEFAULT/U");
        invalid("RULE:CN=(.*?),OU=ServiceUsers.*/$1");
        invalid("rule:^CN=(.*?),OU=ServiceUsers.*$/$1/");
        invalid("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U");
        invalid("RULE:^CN=(.*?),OU=ServiceUsers.*$/L");
        invalid("RULE:^CN=(.*?),OU=ServiceUsers.*$/U");
        invalid("RULE:^CN=(.*?),OU=ServiceUsers.*$/LU");
    }

    // Kafka's SslPrincipalMapperTest.testSslPrincipalMapper.
    #[test]
    fn kafka_mapper_cases() {
        let rules = [
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L",
            "RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L",
            "RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U",
            "RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U",
            "DEFAULT",
        ]
        .join(", ");
        let m = PrincipalMapper::from_rules(&rules).unwrap();
        assert_eq!(
            m.name("CN=Duke,OU=ServiceUsers,O=Org,C=US").unwrap(),
            "duke"
        );
        assert_eq!(
            m.name("CN=Duke,OU=SME,O=mycp,L=Fulton,ST=MD,C=US").unwrap(),
            "duke@sme"
        );
        assert_eq!(m.name("cn=duke,ou=sme,dc=mycp,dc=com").unwrap(), "DUKE@SME");
        assert_eq!(
            m.name("cN=duke,OU=JavaSoft,O=Sun Microsystems").unwrap(),
            "DUKE"
        );
        assert_eq!(
            m.name("OU=JavaSoft,O=Sun Microsystems,C=US").unwrap(),
            "OU=JavaSoft,O=Sun Microsystems,C=US"
        );
    }

    fn splits(expected: &str, rules: &str) {
        let m = PrincipalMapper::from_rules(rules).unwrap_or_else(|e| panic!("{rules}: {e}"));
        assert_eq!(
            m.to_string(),
            format!("SslPrincipalMapper(rules = {expected})"),
            "rules {rules:?}"
        );
    }

    // Kafka's SslPrincipalMapperTest.testRulesSplitting.
    #[test]
    fn rules_splitting() {
        splits("[]", "");
        splits("[DEFAULT]", "DEFAULT");
        splits("[RULE:/]", "RULE://");
        splits("[RULE:/.*]", "RULE:/.*/");
        splits("[RULE:/.*/L]", "RULE:/.*/L");
        splits("[RULE:/, DEFAULT]", "RULE://,DEFAULT");
        splits("[RULE:/, DEFAULT]", "  RULE:// ,  DEFAULT  ");
        splits(
            "[RULE:   /     , DEFAULT]",
            "  RULE:   /     / ,  DEFAULT  ",
        );
        splits(
            "[RULE:  /     /U, DEFAULT]",
            "  RULE:  /     /U   ,DEFAULT  ",
        );
        splits(
            "[RULE:([A-Z]*)/$1/U, RULE:([a-z]+)/$1, DEFAULT]",
            "  RULE:([A-Z]*)/$1/U   ,RULE:([a-z]+)/$1/,   DEFAULT  ",
        );
        // empty rules are ignored
        splits("[]", ",   , , ,      , , ,   ");
        splits("[RULE:/, DEFAULT]", ",,RULE://,,,DEFAULT,,");
        splits(
            "[RULE: /   , DEFAULT]",
            ",  , RULE: /   /    ,,,   DEFAULT, ,   ",
        );
        splits(
            "[RULE:   /  /U, DEFAULT]",
            "     ,  , RULE:   /  /U    ,,  ,DEFAULT, ,",
        );
        // escape sequences
        splits(r"[RULE:\/\\\(\)\n\t/\/\/]", r"RULE:\/\\\(\)\n\t/\/\//");
        splits(
            r"[RULE:\**\/+/*/L, RULE:\/*\**/**]",
            r"RULE:\**\/+/*/L,RULE:\/*\**/**/",
        );
        // rules rule
        splits(
            r"[RULE:,RULE:,/,RULE:,\//U, RULE:,/RULE:,, RULE:,RULE:,/L,RULE:,/L, RULE:, DEFAULT, /DEFAULT, DEFAULT]",
            r"RULE:,RULE:,/,RULE:,\//U,RULE:,/RULE:,/,RULE:,RULE:,/L,RULE:,/L,RULE:, DEFAULT, /DEFAULT/,DEFAULT",
        );
    }

    // Kafka's SslPrincipalMapperTest.testCommaWithWhitespace.
    #[test]
    fn comma_with_whitespace() {
        let m = PrincipalMapper::from_rules(r"RULE:^CN=((\\, *|\w)+)(,.*|$)/$1/,DEFAULT").unwrap();
        assert_eq!(
            m.name(r"CN=Tkac\, Adam,OU=ITZ,DC=geodis,DC=cz").unwrap(),
            r"Tkac\, Adam"
        );
    }

    // The examples of Kafka's security documentation ("Customizing SSL User Name").
    #[test]
    fn kafka_documentation_examples() {
        let m = PrincipalMapper::from_rules(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.name("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .unwrap(),
            "serviceuser"
        );
        assert_eq!(
            m.name("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .unwrap(),
            "adminuser@admin"
        );
        // "By default, the SSL user name will be of the form CN=writeuser,OU=Unknown,...".
        assert_eq!(
            PrincipalMapper::default()
                .name("CN=writeuser,OU=Unknown,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .unwrap(),
            "CN=writeuser,OU=Unknown,O=Unknown,L=Unknown,ST=Unknown,C=Unknown"
        );
        let upper = PrincipalMapper::from_rules("RULE:^CN=(.*?),OU=(.*?)$/$1/U").unwrap();
        assert_eq!(upper.name("CN=kafka,OU=Test").unwrap(), "KAFKA");
    }

    #[test]
    fn no_rule_applies() {
        let m = PrincipalMapper::from_rules("RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/").unwrap();
        let err = m.name("CN=x,OU=Other").unwrap_err();
        assert!(
            matches!(err, PrincipalError::NoMatchingRule { .. }),
            "{err}"
        );
        assert!(PrincipalMapper::from_rules("")
            .unwrap()
            .name("CN=x")
            .is_err());
    }

    #[test]
    fn replacement_semantics_follow_java() {
        // A back reference beyond the groups is literal (Kafka's escapeLiteralBackReferences).
        let m = PrincipalMapper::from_rules("RULE:^CN=(.*?),O=(.*)$/$1@$4/").unwrap();
        assert_eq!(m.name("CN=a,O=b").unwrap(), "a@$4");
        // $12 with two groups is group 1 followed by a literal 2.
        let m = PrincipalMapper::from_rules("RULE:^CN=(.*?),O=(.*)$/$12/").unwrap();
        assert_eq!(m.name("CN=a,O=b").unwrap(), "a2");
        // Escapes and named groups.
        let m = PrincipalMapper::from_rules(r"RULE:^CN=(?P<who>[^,]*).*$/\$${who}\//").unwrap();
        assert_eq!(m.name("CN=app,O=x").unwrap(), "$app/");
        // replaceAll replaces every match of an unanchored pattern that matches the whole name.
        let m = PrincipalMapper::from_rules("RULE:([a-z]+)/x$1/").unwrap();
        assert_eq!(m.name("abc").unwrap(), "xabc");
        let m = PrincipalMapper::from_rules("RULE:.*/x/").unwrap();
        assert_eq!(
            m.name("abc").unwrap(),
            "xx",
            "Java's \"abc\".replaceAll(\".*\", \"x\")"
        );
        // Java regex features the regex crate lacks are refused up front.
        assert!(PrincipalMapper::from_rules("RULE:^CN=(?=x)(.*)$/$1/").is_err());
        assert!(PrincipalMapper::from_rules("RULE:^CN=(.*)$/$1$/").is_err());
        assert!(PrincipalMapper::from_rules("RULE:^CN=.*$/$1/").is_err());
    }

    #[test]
    fn listener_override() {
        let mut pairs = vec![(
            "ssl.principal.mapping.rules".to_string(),
            "RULE:^CN=([^,]*).*$/$1/L".to_string(),
        )];
        let loaded = kavka_config::BrokerConfig::from_pairs(&pairs).unwrap();
        let m = PrincipalMapper::for_listener("SSL", &loaded.config.security).unwrap();
        assert_eq!(m.name("CN=App,O=x").unwrap(), "app");
        pairs.push((
            "listener.name.internal.ssl.principal.mapping.rules".to_string(),
            "RULE:^CN=[^,]*,O=(.*)$/$1/U".to_string(),
        ));
        let loaded = kavka_config::BrokerConfig::from_pairs(&pairs).unwrap();
        let m = PrincipalMapper::for_listener("INTERNAL", &loaded.config.security).unwrap();
        assert_eq!(m.name("CN=App,O=x").unwrap(), "X");
        pairs.push((
            "listener.name.bad.ssl.principal.mapping.rules".to_string(),
            "nonsense".to_string(),
        ));
        let loaded = kavka_config::BrokerConfig::from_pairs(&pairs).unwrap();
        let err = PrincipalMapper::for_listener("BAD", &loaded.config.security).unwrap_err();
        assert!(
            err.to_string()
                .contains("listener.name.bad.ssl.principal.mapping.rules"),
            "{err}"
        );
    }

    fn cert_with_dn(dn: rcgen::DistinguishedName) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = dn;
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn distinguished_name_is_rfc2253_most_specific_first() {
        use rcgen::{DnType, DnValue};
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(
            DnType::CountryName,
            DnValue::PrintableString("US".try_into().unwrap()),
        );
        dn.push(DnType::OrganizationName, "Kavka");
        dn.push(DnType::OrganizationalUnitName, "eng");
        dn.push(DnType::CommonName, "app");
        let der = cert_with_dn(dn);
        assert_eq!(
            distinguished_name(&der).unwrap(),
            "CN=app,OU=eng,O=Kavka,C=US"
        );

        let m = PrincipalMapper::default();
        let cert = rustls::pki_types::CertificateDer::from(der);
        assert_eq!(
            m.principal(Some(std::slice::from_ref(&cert))).unwrap(),
            "User:CN=app,OU=eng,O=Kavka,C=US"
        );
        assert_eq!(peer_principal(&m, None).unwrap(), ANONYMOUS);
        assert_eq!(m.principal(Some(&[])).unwrap(), ANONYMOUS);
        let mapped = PrincipalMapper::from_rules("RULE:^CN=([^,]*),.*$/$1/").unwrap();
        assert_eq!(
            mapped.principal(Some(std::slice::from_ref(&cert))).unwrap(),
            "User:app"
        );
    }

    #[test]
    fn distinguished_name_escaping_and_unknown_attributes() {
        use rcgen::{DnType, DnValue};
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(DnType::OrganizationName, " Acme, Inc. ");
        dn.push(DnType::CommonName, "a+b=c;#\"x\\<y>");
        // e-mail address (1.2.840.113549.1.9.1), an IA5String: no RFC 2253 keyword in Java.
        dn.push(
            DnType::CustomDnType(vec![1, 2, 840, 113549, 1, 9, 1]),
            DnValue::Ia5String("a@b.c".try_into().unwrap()),
        );
        let der = cert_with_dn(dn);
        let name = distinguished_name(&der).unwrap();
        // "a@b.c" as an IA5String: 16 05 61 40 62 2e 63.
        assert_eq!(
            name,
            r#"1.2.840.113549.1.9.1=#16056140622e63,CN=a\+b\=c\;\#\"x\\\<y\>,O=\ Acme\, Inc.\ "#
        );
    }

    #[test]
    fn bad_certificate() {
        let err = PrincipalMapper::default()
            .principal(Some(&[rustls::pki_types::CertificateDer::from(vec![
                1, 2, 3,
            ])]))
            .unwrap_err();
        assert!(matches!(err, PrincipalError::BadCertificate(_)));
    }

    #[test]
    fn oid_strings() {
        assert_eq!(
            oid_string(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]).unwrap(),
            "1.2.840.113549.1.9.1"
        );
        assert_eq!(oid_string(&[0x55, 0x04, 0x03]).unwrap(), "2.5.4.3");
        assert_eq!(
            oid_string(&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19]).unwrap(),
            "0.9.2342.19200300.100.1.25"
        );
    }
}
