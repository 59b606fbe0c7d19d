//! Java `.properties` text, as `java.util.Properties.load` reads it.

use crate::error::ConfigError;

/// Whitespace as `Properties.load` defines it: space, tab and form feed.
fn is_ws(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\u{c}'
}

/// Parses Java `.properties` text into `(key, value)` pairs in file order.
///
/// Follows `java.util.Properties.load`: one entry per logical line as `key=value`,
/// `key: value` or `key value`; lines whose first non-blank character is `#` or `!`
/// are comments; a line ending in an odd number of backslashes continues on the next
/// line (whose leading whitespace is dropped); `\t \n \r \f \uXXXX` escapes are decoded
/// and any other escaped character stands for itself (`\=`, `\:`, `\ `, `\\`). Leading
/// whitespace is dropped and, unlike Java, unescaped trailing whitespace of a value is
/// trimmed too. Duplicate keys are all returned; the caller lets the last one win.
///
/// The only error is a malformed `\uXXXX` escape.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let chars: Vec<char> = text.chars().collect();
    let mut pairs = Vec::new();
    let mut pos = 0;
    let mut line_no = 0;
    while pos < chars.len() {
        line_no += 1;
        let start_line = line_no;
        let mut logical: Vec<char> = Vec::new();
        let mut first = true;
        loop {
            let (line, next) = natural_line(&chars, pos);
            pos = next;
            let mut start = 0;
            while start < line.len() && is_ws(line[start]) {
                start += 1;
            }
            let line = &line[start..];
            if first && (line.is_empty() || line[0] == '#' || line[0] == '!') {
                // Blank and comment lines are never continued, whatever they end with.
                break;
            }
            first = false;
            let trailing = line.iter().rev().take_while(|&&c| c == '\\').count();
            if trailing % 2 == 1 {
                logical.extend_from_slice(&line[..line.len() - 1]);
                if pos >= chars.len() {
                    break;
                }
                line_no += 1;
                continue;
            }
            logical.extend_from_slice(line);
            break;
        }
        if logical.is_empty() {
            continue;
        }
        pairs.push(split_entry(&logical, start_line)?);
    }
    Ok(pairs)
}

/// One natural line starting at `pos` (without its terminator) and the index after the
/// terminator; `\n`, `\r` and `\r\n` all end a line.
fn natural_line(chars: &[char], pos: usize) -> (&[char], usize) {
    let mut end = pos;
    while end < chars.len() && chars[end] != '\n' && chars[end] != '\r' {
        end += 1;
    }
    let mut next = end;
    if next < chars.len() {
        if chars[next] == '\r' && next + 1 < chars.len() && chars[next + 1] == '\n' {
            next += 2;
        } else {
            next += 1;
        }
    }
    (&chars[pos..end], next)
}

/// Splits a logical line (leading whitespace already removed) into key and value.
fn split_entry(line: &[char], line_no: usize) -> Result<(String, String), ConfigError> {
    let mut i = 0;
    let mut key_end = line.len();
    let mut value_start = line.len();
    while i < line.len() {
        let c = line[i];
        if c == '\\' {
            i += 2;
            continue;
        }
        if c == '=' || c == ':' {
            key_end = i;
            value_start = i + 1;
            break;
        }
        if is_ws(c) {
            key_end = i;
            let mut j = i;
            while j < line.len() && is_ws(line[j]) {
                j += 1;
            }
            if j < line.len() && (line[j] == '=' || line[j] == ':') {
                j += 1;
            }
            value_start = j;
            break;
        }
        i += 1;
    }
    let key_end = key_end.min(line.len());
    let mut value_start = value_start.min(line.len());
    while value_start < line.len() && is_ws(line[value_start]) {
        value_start += 1;
    }
    let key = unescape(&line[..key_end], line_no)?;
    let value = unescape(&line[value_start..], line_no)?;
    Ok((key, value))
}

/// Decodes escapes and drops unescaped trailing whitespace.
fn unescape(chars: &[char], line_no: usize) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(chars.len());
    // Length of `out` up to the last character that must be kept: escaped whitespace
    // is deliberate and survives trimming.
    let mut keep = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' {
            out.push(c);
            if !is_ws(c) {
                keep = out.len();
            }
            i += 1;
            continue;
        }
        i += 1;
        let Some(&e) = chars.get(i) else {
            // A lone trailing backslash (continuation at end of input) stands for nothing.
            break;
        };
        i += 1;
        match e {
            't' => out.push('\t'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            'f' => out.push('\u{c}'),
            'u' => {
                let hex: String = chars.iter().skip(i).take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| ConfigError::Syntax {
                        line: line_no,
                        reason: format!("malformed \\uxxxx encoding: \\u{hex}"),
                    })?;
                i += 4;
                // A lone surrogate cannot be a Rust char; Java would keep it as a broken
                // UTF-16 unit, we substitute U+FFFD rather than fail the whole file.
                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            }
            other => out.push(other),
        }
        keep = out.len();
    }
    out.truncate(keep);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Vec<(String, String)> {
        parse_properties(text).expect("parses")
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn separators() {
        assert_eq!(
            p("a=1\nb: 2\nc 3\nd\t=\t4\ne   :5\nf\n"),
            vec![
                kv("a", "1"),
                kv("b", "2"),
                kv("c", "3"),
                kv("d", "4"),
                kv("e", "5"),
                kv("f", "")
            ]
        );
    }

    #[test]
    fn value_keeps_later_separators() {
        assert_eq!(p("url=a=b:c d"), vec![kv("url", "a=b:c d")]);
        assert_eq!(
            p("listeners=PLAINTEXT://:9092,SSL://h:9093"),
            vec![kv("listeners", "PLAINTEXT://:9092,SSL://h:9093")]
        );
    }

    #[test]
    fn comments_and_blank_lines() {
        let text = "# comment\n  ! also comment\n\n   \nkey=v # not a comment\n";
        assert_eq!(p(text), vec![kv("key", "v # not a comment")]);
    }

    #[test]
    fn comment_line_is_not_continued() {
        assert_eq!(p("# comment \\\nkey=v"), vec![kv("key", "v")]);
    }

    #[test]
    fn continuation_lines() {
        let text = "list=a,\\\n    b,\\\n\tc\nnext=1";
        assert_eq!(p(text), vec![kv("list", "a,b,c"), kv("next", "1")]);
        // A continued line that starts with '#' is data, not a comment.
        assert_eq!(p("k=x\\\n  #y"), vec![kv("k", "x#y")]);
        // Even number of backslashes: an escaped backslash, no continuation.
        assert_eq!(p("k=x\\\\\nj=2"), vec![kv("k", "x\\"), kv("j", "2")]);
        // Continuation at end of input.
        assert_eq!(p("k=x\\"), vec![kv("k", "x")]);
    }

    #[test]
    fn line_endings() {
        assert_eq!(
            p("a=1\r\nb=2\rc=3"),
            vec![kv("a", "1"), kv("b", "2"), kv("c", "3")]
        );
        assert_eq!(p("a=1,\\\r\n  2"), vec![kv("a", "1,2")]);
    }

    #[test]
    fn escapes() {
        assert_eq!(p(r"k=a\tb\nc\\d\=e\:f"), vec![kv("k", "a\tb\nc\\d=e:f")]);
        assert_eq!(p(r"k\ with\ space=v"), vec![kv("k with space", "v")]);
        assert_eq!(p(r"k\=x=v"), vec![kv("k=x", "v")]);
        assert_eq!(p(r"k=caf\u00e9 \u4E2D"), vec![kv("k", "café 中")]);
    }

    #[test]
    fn trims_surrounding_whitespace_but_not_escaped() {
        assert_eq!(p("   key   =   value   \n"), vec![kv("key", "value")]);
        assert_eq!(p("key=value\\ \n"), vec![kv("key", "value ")]);
    }

    #[test]
    fn malformed_unicode_escape_is_an_error_with_line() {
        let err = parse_properties("a=1\nb=\\u12G4\n").unwrap_err();
        match err {
            ConfigError::Syntax { line, .. } => assert_eq!(line, 2),
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse_properties("b=\\u12").is_err());
    }

    #[test]
    fn arbitrary_input_never_panics() {
        // Deterministic pseudo-random texts over the characters the parser treats specially.
        const ALPHABET: &[char] = &[
            '\\', '=', ':', ' ', '\t', '\n', '\r', '#', '!', 'u', 'a', '0', 'F', '\u{c}', 'é',
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let len = (seed >> 58) as usize;
            let text: String = (0..len)
                .map(|i| {
                    let x = seed.rotate_left(i as u32 * 7) ^ (i as u64);
                    ALPHABET[(x % ALPHABET.len() as u64) as usize]
                })
                .collect();
            match parse_properties(&text) {
                Ok(pairs) => {
                    let lines = text.split(['\n', '\r']).count();
                    assert!(pairs.len() <= lines, "{text:?}");
                }
                // Only a \u escape can be malformed.
                Err(_) => assert!(text.contains("\\u"), "{text:?}"),
            }
        }
    }

    #[test]
    fn duplicates_kept_in_order() {
        assert_eq!(p("a=1\na=2"), vec![kv("a", "1"), kv("a", "2")]);
    }
}
