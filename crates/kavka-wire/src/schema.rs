//! Loading Kafka's JSON message schemas into a compact form that the validator walks.
//!
//! Parsing happens once per process; the walker then only compares small integers, so the
//! per-request cost is linear in the frame and independent of how the JSON was written.

use serde_json::Value;

/// An inclusive range of versions; `lo > hi` means "no versions".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Versions {
    pub lo: i16,
    pub hi: i16,
}

impl Versions {
    pub const NONE: Versions = Versions { lo: 1, hi: 0 };

    pub fn contains(self, v: i16) -> bool {
        self.lo <= v && v <= self.hi
    }

    /// Parses Kafka's version notation: `"3+"`, `"2-7"`, `"5"`, `"none"`.
    fn parse(s: &str) -> Result<Versions, String> {
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(Versions::NONE);
        }
        let num = |t: &str| {
            t.trim()
                .parse::<i16>()
                .map_err(|e| format!("bad version {t:?}: {e}"))
        };
        if let Some(lo) = s.strip_suffix('+') {
            return Ok(Versions {
                lo: num(lo)?,
                hi: i16::MAX,
            });
        }
        if let Some((lo, hi)) = s.split_once('-') {
            return Ok(Versions {
                lo: num(lo)?,
                hi: num(hi)?,
            });
        }
        let v = num(s)?;
        Ok(Versions { lo: v, hi: v })
    }
}

/// Fixed-size and length-prefixed primitive types of the Kafka schema language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prim {
    Bool,
    Int8,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    Float64,
    Uuid,
    String,
    Bytes,
    Records,
}

impl Prim {
    fn parse(s: &str) -> Option<Prim> {
        Some(match s {
            "bool" => Prim::Bool,
            "int8" => Prim::Int8,
            "int16" => Prim::Int16,
            "uint16" => Prim::UInt16,
            "int32" => Prim::Int32,
            "uint32" => Prim::UInt32,
            "int64" => Prim::Int64,
            "float64" => Prim::Float64,
            "uuid" => Prim::Uuid,
            "string" => Prim::String,
            "bytes" => Prim::Bytes,
            "records" => Prim::Records,
            _ => return None,
        })
    }

    /// Width of a fixed-size primitive, `None` for length-prefixed ones.
    pub fn fixed_size(self) -> Option<usize> {
        match self {
            Prim::Bool | Prim::Int8 => Some(1),
            Prim::Int16 | Prim::UInt16 => Some(2),
            Prim::Int32 | Prim::UInt32 => Some(4),
            Prim::Int64 | Prim::Float64 => Some(8),
            Prim::Uuid => Some(16),
            Prim::String | Prim::Bytes | Prim::Records => None,
        }
    }
}

/// The shape of one field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Prim(Prim),
    /// Index into [`Message::structs`].
    Struct(usize),
    Array(Box<Kind>),
}

#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub name: Box<str>,
    pub kind: Kind,
    pub versions: Versions,
    pub nullable: Versions,
    /// Overrides the message's flexible versions for this field's own encoding
    /// (the request header's ClientId stays a classic string in header v2).
    pub flexible: Option<Versions>,
    /// `(tag, taggedVersions)` for fields carried in the tagged-field section.
    pub tag: Option<(u32, Versions)>,
}

#[derive(Debug, Clone)]
pub(crate) struct StructDef {
    pub fields: Vec<Field>,
}

/// One message schema in walkable form.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub api_key: Option<i16>,
    pub name: Box<str>,
    pub valid: Versions,
    pub flexible: Versions,
    /// `structs[0]` is the message body itself.
    pub structs: Vec<StructDef>,
}

/// Removes `//` comments (outside string literals), which Kafka's schema files use freely
/// but JSON does not allow.
pub(crate) fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c == '/' && chars.peek() == Some(&'/') {
            for d in chars.by_ref() {
                if d == '\n' {
                    out.push('\n');
                    break;
                }
            }
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    out
}

fn get_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

fn versions_attr(obj: &Value, key: &str) -> Result<Option<Versions>, String> {
    match get_str(obj, key) {
        Some(s) => Versions::parse(s).map(Some),
        None => Ok(None),
    }
}

struct Builder<'a> {
    structs: Vec<StructDef>,
    common: Vec<(&'a str, &'a Value)>,
    /// Common structs already converted, by name, so shared shapes are built once.
    common_done: Vec<(&'a str, usize)>,
}

impl<'a> Builder<'a> {
    fn build_struct(&mut self, fields: &'a Value, ctx: &str) -> Result<usize, String> {
        let idx = self.structs.len();
        self.structs.push(StructDef { fields: Vec::new() });
        let list = fields
            .as_array()
            .ok_or_else(|| format!("{ctx}: fields is not an array"))?;
        let mut out = Vec::with_capacity(list.len());
        for f in list {
            out.push(self.build_field(f, ctx)?);
        }
        self.structs[idx].fields = out;
        Ok(idx)
    }

    fn struct_by_name(&mut self, name: &str, ctx: &str) -> Result<usize, String> {
        if let Some((_, idx)) = self.common_done.iter().find(|(n, _)| *n == name) {
            return Ok(*idx);
        }
        let (cname, def) = self
            .common
            .iter()
            .find(|(n, _)| *n == name)
            .copied()
            .ok_or_else(|| format!("{ctx}: unknown type {name:?}"))?;
        let fields = def
            .get("fields")
            .ok_or_else(|| format!("{ctx}: common struct {name} has no fields"))?;
        let idx = self.build_struct(fields, ctx)?;
        self.common_done.push((cname, idx));
        Ok(idx)
    }

    fn build_field(&mut self, f: &'a Value, ctx: &str) -> Result<Field, String> {
        let name = get_str(f, "name").ok_or_else(|| format!("{ctx}: field without name"))?;
        let ctx = format!("{ctx}.{name}");
        let ty = get_str(f, "type").ok_or_else(|| format!("{ctx}: no type"))?;
        let versions =
            versions_attr(f, "versions")?.ok_or_else(|| format!("{ctx}: no versions"))?;
        let nullable = versions_attr(f, "nullableVersions")?.unwrap_or(Versions::NONE);
        let flexible = versions_attr(f, "flexibleVersions")?;
        let tag = match f.get("tag") {
            None => None,
            Some(t) => {
                // Kafka's files spell tags both as numbers and as strings.
                let n = t
                    .as_u64()
                    .or_else(|| t.as_str().and_then(|s| s.trim().parse::<u64>().ok()))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("{ctx}: bad tag"))?;
                let tv = versions_attr(f, "taggedVersions")?
                    .ok_or_else(|| format!("{ctx}: tag without taggedVersions"))?;
                Some((n, tv))
            }
        };
        let (is_array, elem) = match ty.strip_prefix("[]") {
            Some(e) => (true, e),
            None => (false, ty),
        };
        let elem_kind = match Prim::parse(elem) {
            Some(p) => Kind::Prim(p),
            None => match f.get("fields") {
                Some(fields) => Kind::Struct(self.build_struct(fields, &ctx)?),
                None => Kind::Struct(self.struct_by_name(elem, &ctx)?),
            },
        };
        let kind = if is_array {
            Kind::Array(Box::new(elem_kind))
        } else {
            elem_kind
        };
        Ok(Field {
            name: name.into(),
            kind,
            versions,
            nullable,
            flexible,
            tag,
        })
    }
}

/// Parses one schema file (with comments) into walkable form.
pub(crate) fn parse_message(src: &str) -> Result<Message, String> {
    let json: Value = serde_json::from_str(&strip_comments(src)).map_err(|e| e.to_string())?;
    let name = get_str(&json, "name").ok_or("schema without name")?;
    let api_key = match json.get("apiKey") {
        Some(v) => Some(
            v.as_i64()
                .and_then(|n| i16::try_from(n).ok())
                .ok_or_else(|| format!("{name}: bad apiKey"))?,
        ),
        None => None,
    };
    let valid = versions_attr(&json, "validVersions")?
        .ok_or_else(|| format!("{name}: no validVersions"))?;
    let flexible = versions_attr(&json, "flexibleVersions")?.unwrap_or(Versions::NONE);
    let mut builder = Builder {
        structs: Vec::new(),
        common: Vec::new(),
        common_done: Vec::new(),
    };
    if let Some(common) = json.get("commonStructs").and_then(Value::as_array) {
        for c in common {
            let cname =
                get_str(c, "name").ok_or_else(|| format!("{name}: unnamed common struct"))?;
            builder.common.push((cname, c));
        }
    }
    let fields = json
        .get("fields")
        .ok_or_else(|| format!("{name}: no fields"))?;
    let root = builder.build_struct(fields, name)?;
    debug_assert_eq!(root, 0);
    Ok(Message {
        api_key,
        name: name.into(),
        valid,
        flexible,
        structs: builder.structs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_notation() {
        assert_eq!(
            Versions::parse("3+").unwrap(),
            Versions {
                lo: 3,
                hi: i16::MAX
            }
        );
        assert_eq!(Versions::parse("2-7").unwrap(), Versions { lo: 2, hi: 7 });
        assert_eq!(Versions::parse("5").unwrap(), Versions { lo: 5, hi: 5 });
        let none = Versions::parse("none").unwrap();
        assert!(!none.contains(0) && !none.contains(i16::MAX));
        assert!(Versions::parse("x").is_err());
    }

    #[test]
    fn comments_inside_strings_survive() {
        let s = strip_comments("{ \"a\": \"http://x\" // gone\n}");
        assert_eq!(s, "{ \"a\": \"http://x\" \n}");
    }
}
