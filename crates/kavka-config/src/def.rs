//! Definitions of keys (type, default, validator) and the parsing of raw text into
//! typed values, following Kafka's `ConfigDef`.

use std::collections::BTreeMap;

use crate::describe::ConfigType;
use crate::error::ConfigError;

/// A value check applied after type parsing, like Kafka's `ConfigDef.Validator`s.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Validator {
    None,
    /// Integer at least this.
    AtLeast(i64),
    /// Integer within the closed range.
    Between(i64, i64),
    /// Double within the closed range.
    DoubleBetween(f64, f64),
    /// String equal (case-sensitively, as Kafka's `ValidString`) to one of these.
    OneOf(&'static [&'static str]),
    /// Every list element is one of these.
    ListOf(&'static [&'static str]),
    /// A list of non-empty, distinct entries (`log.dirs`).
    NonEmptyDistinctList,
    /// `-1` or 1..=9, as `compression.gzip.level`.
    GzipLevel,
    /// `*` or `partition:broker` pairs, as the replication throttle lists.
    ThrottledReplicas,
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Bool(bool),
    Str(String),
    Int(i32),
    Short(i16),
    Long(i64),
    Double(f64),
    List(Vec<String>),
}

impl Value {
    /// The text Kafka's `ConfigDef.convertToString` would give.
    pub(crate) fn to_kafka_string(&self) -> String {
        match self {
            Value::Bool(b) => b.to_string(),
            Value::Str(s) => s.clone(),
            Value::Int(v) => v.to_string(),
            Value::Short(v) => v.to_string(),
            Value::Long(v) => v.to_string(),
            Value::Double(d) => java_double(*d),
            Value::List(l) => l.join(","),
        }
    }

    pub(crate) fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(i64::from(*v)),
            Value::Short(v) => Some(i64::from(*v)),
            Value::Long(v) => Some(*v),
            _ => None,
        }
    }
}

/// Java prints whole doubles with a trailing `.0`; clients show what Kafka shows.
fn java_double(d: f64) -> String {
    if d.is_finite() && d.fract() == 0.0 && d.abs() < 1e7 {
        format!("{d:.1}")
    } else {
        d.to_string()
    }
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// Default as text; `None` is Kafka's `null` default.
    pub default: Option<&'static str>,
    pub validator: Validator,
    pub doc: &'static str,
}

pub(crate) const fn key(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    doc: &'static str,
) -> KeyDef {
    KeyDef {
        name,
        ty,
        default,
        validator,
        doc,
    }
}

impl KeyDef {
    /// Parses and validates `raw`; errors name this key and the raw value.
    pub(crate) fn parse(&self, raw: &str) -> Result<Value, ConfigError> {
        let value = parse_typed(self.name, self.ty, raw)?;
        validate(self.name, raw, &value, self.validator)?;
        Ok(value)
    }

    /// Kafka treats passwords (and keys of unknown type) as sensitive.
    pub(crate) fn sensitive(&self) -> bool {
        matches!(self.ty, ConfigType::Password | ConfigType::Unknown)
    }
}

fn parse_typed(key: &str, ty: ConfigType, raw: &str) -> Result<Value, ConfigError> {
    let t = raw.trim();
    let bad = |what: &str| ConfigError::invalid(key, raw, format!("expected {what}"));
    Ok(match ty {
        ConfigType::Boolean => {
            if t.eq_ignore_ascii_case("true") {
                Value::Bool(true)
            } else if t.eq_ignore_ascii_case("false") {
                Value::Bool(false)
            } else {
                return Err(bad("true or false"));
            }
        }
        ConfigType::Int => Value::Int(t.parse().map_err(|_| bad("a 32-bit integer"))?),
        ConfigType::Short => Value::Short(t.parse().map_err(|_| bad("a 16-bit integer"))?),
        ConfigType::Long => Value::Long(t.parse().map_err(|_| bad("a 64-bit integer"))?),
        ConfigType::Double => {
            let d: f64 = t.parse().map_err(|_| bad("a number"))?;
            if d.is_nan() {
                return Err(bad("a number"));
            }
            Value::Double(d)
        }
        ConfigType::List => Value::List(split_list(t)),
        ConfigType::String | ConfigType::Class | ConfigType::Password | ConfigType::Unknown => {
            Value::Str(t.to_string())
        }
    })
}

/// Kafka's list syntax: comma-separated with whitespace around commas ignored; an empty
/// string is the empty list, but empty elements inside are kept (validators reject them).
pub(crate) fn split_list(t: &str) -> Vec<String> {
    let t = t.trim();
    if t.is_empty() {
        return Vec::new();
    }
    t.split(',').map(|s| s.trim().to_string()).collect()
}

fn validate(key: &str, raw: &str, value: &Value, validator: Validator) -> Result<(), ConfigError> {
    let err = |reason: String| Err(ConfigError::invalid(key, raw, reason));
    match validator {
        Validator::None => Ok(()),
        Validator::AtLeast(min) => match value.as_i64() {
            Some(v) if v < min => err(format!("value must be at least {min}")),
            _ => Ok(()),
        },
        Validator::Between(lo, hi) => match value.as_i64() {
            Some(v) if v < lo || v > hi => err(format!("value must be between {lo} and {hi}")),
            _ => Ok(()),
        },
        Validator::DoubleBetween(lo, hi) => match value {
            Value::Double(d) if *d < lo || *d > hi => {
                err(format!("value must be between {lo} and {hi}"))
            }
            _ => Ok(()),
        },
        Validator::OneOf(allowed) => match value {
            Value::Str(s) if !allowed.contains(&s.as_str()) => {
                err(format!("string must be one of: {}", allowed.join(", ")))
            }
            _ => Ok(()),
        },
        Validator::ListOf(allowed) => match value {
            Value::List(items) => {
                for item in items {
                    if !allowed.contains(&item.as_str()) {
                        return err(format!(
                            "invalid value {item:?}, every element must be one of: {}",
                            allowed.join(", ")
                        ));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        },
        Validator::NonEmptyDistinctList => match value {
            Value::List(items) => {
                if items.is_empty() {
                    return err("empty list is not allowed".into());
                }
                if items.iter().any(|i| i.is_empty()) {
                    return err("empty entries are not allowed".into());
                }
                for (n, item) in items.iter().enumerate() {
                    if items[..n].contains(item) {
                        return err(format!("duplicate entry {item:?}"));
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        },
        Validator::GzipLevel => match value.as_i64() {
            Some(v) if v != -1 && !(1..=9).contains(&v) => {
                err("value must be -1 (default) or between 1 and 9".into())
            }
            _ => Ok(()),
        },
        Validator::ThrottledReplicas => match value {
            Value::List(items) => {
                if items.len() == 1 && items[0] == "*" {
                    return Ok(());
                }
                for item in items {
                    let ok = item.split_once(':').is_some_and(|(p, b)| {
                        !p.is_empty()
                            && !b.is_empty()
                            && p.bytes().all(|c| c.is_ascii_digit())
                            && b.bytes().all(|c| c.is_ascii_digit())
                    });
                    if !ok {
                        return err(
                            "must be the wildcard '*' or a list of partitionId:brokerId".into()
                        );
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        },
    }
}

/// Looks keys up in an explicit map, then a fallback map of computed defaults, then the
/// key's own default, and hands back typed values. Type mismatches cannot happen for
/// keys defined in the table; they surface as [`ConfigError::Missing`] rather than a panic.
pub(crate) struct Resolver<'a> {
    pub lookup: fn(&str) -> Option<&'static KeyDef>,
    pub explicit: &'a BTreeMap<String, String>,
    pub fallback: Option<&'a BTreeMap<&'static str, String>>,
}

impl Resolver<'_> {
    fn def(&self, name: &str) -> Result<&'static KeyDef, ConfigError> {
        (self.lookup)(name).ok_or_else(|| ConfigError::Missing {
            key: name.to_string(),
        })
    }

    /// The raw text in force for `name`, if any.
    pub(crate) fn raw(&self, name: &str) -> Option<String> {
        if let Some(v) = self.explicit.get(name) {
            return Some(v.clone());
        }
        if let Some(v) = self.fallback.and_then(|f| f.get(name)) {
            return Some(v.clone());
        }
        (self.lookup)(name).and_then(|d| d.default.map(str::to_string))
    }

    pub(crate) fn value(&self, name: &str) -> Result<Option<Value>, ConfigError> {
        let def = self.def(name)?;
        match self.raw(name) {
            Some(raw) => def.parse(&raw).map(Some),
            None => Ok(None),
        }
    }

    fn required(&self, name: &str) -> Result<Value, ConfigError> {
        self.value(name)?.ok_or_else(|| ConfigError::Missing {
            key: name.to_string(),
        })
    }

    fn mismatch(name: &str) -> ConfigError {
        ConfigError::Missing {
            key: name.to_string(),
        }
    }

    pub(crate) fn int(&self, name: &str) -> Result<i32, ConfigError> {
        match self.required(name)? {
            Value::Int(v) => Ok(v),
            _ => Err(Self::mismatch(name)),
        }
    }

    pub(crate) fn opt_int(&self, name: &str) -> Result<Option<i32>, ConfigError> {
        match self.value(name)? {
            None => Ok(None),
            Some(Value::Int(v)) => Ok(Some(v)),
            Some(_) => Err(Self::mismatch(name)),
        }
    }

    pub(crate) fn short(&self, name: &str) -> Result<i16, ConfigError> {
        match self.required(name)? {
            Value::Short(v) => Ok(v),
            _ => Err(Self::mismatch(name)),
        }
    }

    pub(crate) fn long(&self, name: &str) -> Result<i64, ConfigError> {
        match self.required(name)? {
            Value::Long(v) => Ok(v),
            _ => Err(Self::mismatch(name)),
        }
    }

    pub(crate) fn opt_long(&self, name: &str) -> Result<Option<i64>, ConfigError> {
        match self.value(name)? {
            None => Ok(None),
            Some(Value::Long(v)) => Ok(Some(v)),
            Some(_) => Err(Self::mismatch(name)),
        }
    }

    pub(crate) fn bool(&self, name: &str) -> Result<bool, ConfigError> {
        match self.required(name)? {
            Value::Bool(v) => Ok(v),
            _ => Err(Self::mismatch(name)),
        }
    }

    pub(crate) fn double(&self, name: &str) -> Result<f64, ConfigError> {
        match self.required(name)? {
            Value::Double(v) => Ok(v),
            _ => Err(Self::mismatch(name)),
        }
    }

    pub(crate) fn string(&self, name: &str) -> Result<String, ConfigError> {
        match self.required(name)? {
            Value::Str(v) => Ok(v),
            _ => Err(Self::mismatch(name)),
        }
    }

    pub(crate) fn opt_string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.value(name)? {
            None => Ok(None),
            Some(Value::Str(v)) => Ok(Some(v)),
            Some(_) => Err(Self::mismatch(name)),
        }
    }

    pub(crate) fn list(&self, name: &str) -> Result<Vec<String>, ConfigError> {
        match self.value(name)? {
            None => Ok(Vec::new()),
            Some(Value::List(v)) => Ok(v),
            Some(_) => Err(Self::mismatch(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_types_like_kafka() {
        let b = key("b", ConfigType::Boolean, None, Validator::None, "");
        assert_eq!(b.parse(" TRUE ").unwrap(), Value::Bool(true));
        assert!(b.parse("yes").is_err());
        let i = key("i", ConfigType::Int, None, Validator::AtLeast(1), "");
        assert_eq!(i.parse(" 5").unwrap(), Value::Int(5));
        assert!(i.parse("0").is_err());
        assert!(i.parse("2147483648").is_err());
        let l = key("l", ConfigType::List, None, Validator::None, "");
        assert_eq!(
            l.parse(" a , b,c ").unwrap(),
            Value::List(vec!["a".into(), "b".into(), "c".into()])
        );
        assert_eq!(l.parse("  ").unwrap(), Value::List(vec![]));
        let d = key(
            "d",
            ConfigType::Double,
            None,
            Validator::DoubleBetween(0.0, 1.0),
            "",
        );
        assert_eq!(d.parse("0.25").unwrap(), Value::Double(0.25));
        assert!(d.parse("1.5").is_err());
        assert!(d.parse("NaN").is_err());
    }

    #[test]
    fn kafka_strings() {
        assert_eq!(Value::Double(1.0).to_kafka_string(), "1.0");
        assert_eq!(Value::Double(0.5).to_kafka_string(), "0.5");
        assert_eq!(
            Value::List(vec!["a".into(), "b".into()]).to_kafka_string(),
            "a,b"
        );
    }

    #[test]
    fn throttled_replicas() {
        let t = key(
            "t",
            ConfigType::List,
            None,
            Validator::ThrottledReplicas,
            "",
        );
        assert!(t.parse("*").is_ok());
        assert!(t.parse("").is_ok());
        assert!(t.parse("0:1, 1:2").is_ok());
        assert!(t.parse("0-1").is_err());
        assert!(t.parse("*,0:1").is_err());
    }
}
