//! Kavka wire guard: validates Kafka request frames against Kafka's JSON message schemas
//! before anything hands them to the `kafka-protocol` decoders.
//!
//! Those decoders reserve `Vec::with_capacity(n)` for element counts read straight off the
//! wire, so a 14-byte frame can ask for tens of gigabytes. [`validate_request`] walks the
//! frame once, field by field, for the exact API and version, and proves that every length
//! and count fits in the bytes actually present. A frame it accepts can be decoded without
//! any allocation larger than a small multiple of the frame itself.
//!
//! The walk allocates nothing proportional to claimed lengths (only error messages are
//! built, and only on failure) and is linear in the frame size.

mod decode;
mod schema;

#[cfg(test)]
mod gen_tests;

use std::sync::OnceLock;

pub use decode::{decode_request, DecodeError, DecodedRequest};
use schema::{Field, Kind, Message, Prim, StructDef};

/// Api key, version and correlation id of a request, as read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeaderInfo {
    /// The request's API key.
    pub api_key: i16,
    /// The request's API version.
    pub api_version: i16,
    /// The correlation id the response must carry.
    pub correlation_id: i32,
}

/// What [`validate_request_report`] learnt about an accepted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatedFrame {
    /// The request header's key fields.
    pub header: RequestHeaderInfo,
    /// Header version used (1, or 2 for flexible API versions).
    pub header_version: i16,
    /// Length of the request header in bytes; the body starts here.
    pub header_len: usize,
    /// Bytes left over after the body. Kafka tolerates them; worth a log line.
    pub trailing_bytes: usize,
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Fewer than the 8 bytes of api key, version and correlation id.
    #[error("frame too short for a request header")]
    TooShort,
    /// No embedded schema for this API key.
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// The API is known but not in this version.
    #[error("unsupported version {version} of api key {api_key}")]
    UnsupportedVersion {
        /// The request's API key.
        api_key: i16,
        /// The requested version.
        version: i16,
    },
    /// The frame does not match the schema; `field` is the path to the offending field
    /// (for example `body.Topics[2].Partitions[0].Records`).
    #[error("malformed field {field}: {reason}")]
    Malformed {
        /// Path of the field that failed.
        field: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The embedded schemas failed to load: a build defect, covered by this crate's tests.
    #[error("embedded schema error: {0}")]
    Schema(String),
}

/// Reads api key, version and correlation id from the first 8 bytes, if present (used to
/// address an error response even when the rest of the frame is bad).
pub fn peek_header(frame: &[u8]) -> Option<RequestHeaderInfo> {
    let b = frame.get(..8)?;
    Some(RequestHeaderInfo {
        api_key: i16::from_be_bytes([b[0], b[1]]),
        api_version: i16::from_be_bytes([b[2], b[3]]),
        correlation_id: i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
    })
}

/// Validates a whole request frame (the bytes after the 4-byte size prefix): the request
/// header (v1, or v2 with tagged fields when the API version is flexible) and the body for
/// that API and version. Trailing bytes after the body are allowed.
pub fn validate_request(frame: &[u8]) -> Result<RequestHeaderInfo, FrameError> {
    validate_request_report(frame).map(|r| r.header)
}

/// Like [`validate_request`], also reporting where the body starts and how many bytes
/// trail it.
pub fn validate_request_report(frame: &[u8]) -> Result<ValidatedFrame, FrameError> {
    let header = peek_header(frame).ok_or(FrameError::TooShort)?;
    let reg = registry().map_err(|e| FrameError::Schema(e.clone()))?;
    let msg = reg
        .request(header.api_key)
        .ok_or(FrameError::UnknownApiKey(header.api_key))?;
    let version = header.api_version;
    if !msg.valid.contains(version) {
        return Err(FrameError::UnsupportedVersion {
            api_key: header.api_key,
            version,
        });
    }
    // Header v2 goes with flexible API versions (ApiVersions from v3 included); the only
    // header v0 user, ControlledShutdown v0, is not accepted here.
    let header_version: i16 = if msg.flexible.contains(version) { 2 } else { 1 };
    let mut cur = Cursor { buf: frame, pos: 0 };
    walk_struct(
        &mut cur,
        &reg.header,
        &reg.header.structs[0],
        header_version,
    )
    .map_err(|e| e.into_frame_error("header"))?;
    let header_len = cur.pos;
    walk_struct(&mut cur, msg, &msg.structs[0], version).map_err(|e| e.into_frame_error("body"))?;
    Ok(ValidatedFrame {
        header,
        header_version,
        header_len,
        trailing_bytes: cur.remaining(),
    })
}

/// The version range our embedded schema knows for an API key (None for unknown keys).
pub fn schema_versions(api_key: i16) -> Option<(i16, i16)> {
    let msg = registry().ok()?.request(api_key)?;
    Some((msg.valid.lo, msg.valid.hi))
}

/// The schema name of a request API (for example `"ProduceRequest"`), None when unknown.
pub fn request_name(api_key: i16) -> Option<&'static str> {
    let msg = registry().ok()?.request(api_key)?;
    Some(&msg.name)
}

/// Api keys with an embedded request schema, ascending.
pub fn known_api_keys() -> Vec<i16> {
    match registry() {
        Ok(reg) => reg
            .by_key
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_some())
            .map(|(k, _)| k as i16)
            .collect(),
        Err(_) => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Schema registry

macro_rules! schemas {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../schemas/", $name, ".json")))),*]
    };
}

/// The embedded request schemas, by file name.
const REQUEST_SCHEMAS: &[(&str, &str)] = schemas![
    "ProduceRequest",
    "FetchRequest",
    "ListOffsetsRequest",
    "MetadataRequest",
    "OffsetCommitRequest",
    "OffsetFetchRequest",
    "FindCoordinatorRequest",
    "JoinGroupRequest",
    "HeartbeatRequest",
    "LeaveGroupRequest",
    "SyncGroupRequest",
    "DescribeGroupsRequest",
    "ListGroupsRequest",
    "SaslHandshakeRequest",
    "ApiVersionsRequest",
    "CreateTopicsRequest",
    "DeleteTopicsRequest",
    "DeleteRecordsRequest",
    "InitProducerIdRequest",
    "OffsetForLeaderEpochRequest",
    "DescribeConfigsRequest",
    "AlterConfigsRequest",
    "DescribeLogDirsRequest",
    "SaslAuthenticateRequest",
    "CreatePartitionsRequest",
    "DeleteGroupsRequest",
    "IncrementalAlterConfigsRequest",
    "OffsetDeleteRequest",
    "DescribeClusterRequest",
    "ConsumerGroupHeartbeatRequest",
    "ConsumerGroupDescribeRequest",
    "CreateAclsRequest",
    "DescribeAclsRequest",
    "DeleteAclsRequest",
    "DescribeUserScramCredentialsRequest",
    "AlterUserScramCredentialsRequest",
    "ElectLeadersRequest",
    "AlterPartitionReassignmentsRequest",
    "ListPartitionReassignmentsRequest",
    "DescribeProducersRequest",
    "AddPartitionsToTxnRequest",
    "AddOffsetsToTxnRequest",
    "EndTxnRequest",
    "TxnOffsetCommitRequest",
    "WriteTxnMarkersRequest",
    "AlterPartitionRequest",
    "BrokerRegistrationRequest",
    "BrokerHeartbeatRequest",
    "EnvelopeRequest",
    "DescribeQuorumRequest",
];

const HEADER_SCHEMA: &str = include_str!("../schemas/RequestHeader.json");

struct Registry {
    header: Message,
    /// Indexed by api key; Kafka's keys are small and dense.
    by_key: Vec<Option<Message>>,
}

impl Registry {
    fn request(&self, api_key: i16) -> Option<&Message> {
        let idx = usize::try_from(api_key).ok()?;
        self.by_key.get(idx)?.as_ref()
    }
}

fn load() -> Result<Registry, String> {
    let header = schema::parse_message(HEADER_SCHEMA).map_err(|e| format!("RequestHeader: {e}"))?;
    let mut by_key: Vec<Option<Message>> = Vec::new();
    for (file, src) in REQUEST_SCHEMAS {
        let msg = schema::parse_message(src).map_err(|e| format!("{file}: {e}"))?;
        let key = msg.api_key.ok_or_else(|| format!("{file}: no apiKey"))?;
        let idx = usize::try_from(key).map_err(|_| format!("{file}: negative apiKey"))?;
        if by_key.len() <= idx {
            by_key.resize_with(idx + 1, || None);
        }
        if by_key[idx].is_some() {
            return Err(format!("{file}: duplicate apiKey {key}"));
        }
        by_key[idx] = Some(msg);
    }
    Ok(Registry { header, by_key })
}

fn registry() -> Result<&'static Registry, &'static String> {
    static REG: OnceLock<Result<Registry, String>> = OnceLock::new();
    REG.get_or_init(load).as_ref()
}

// ---------------------------------------------------------------------------------------
// The walk

/// A validation failure on its way up: the innermost field's name and the reason, with
/// the enclosing path segments collected as the error unwinds (so nothing is built on the
/// success path).
#[derive(Debug)]
struct WalkError {
    /// Path segments, innermost first.
    path: Vec<String>,
    reason: String,
}

impl WalkError {
    fn new(reason: impl Into<String>) -> Self {
        WalkError {
            path: Vec::new(),
            reason: reason.into(),
        }
    }

    fn within(mut self, segment: impl FnOnce() -> String) -> Self {
        self.path.push(segment());
        self
    }

    fn into_frame_error(self, root: &str) -> FrameError {
        let mut field = String::from(root);
        for seg in self.path.iter().rev() {
            if !seg.starts_with('[') {
                field.push('.');
            }
            field.push_str(seg);
        }
        FrameError::Malformed {
            field,
            reason: self.reason,
        }
    }
}

type Walk<T> = Result<T, WalkError>;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Walk<&'a [u8]> {
        if n > self.remaining() {
            return Err(WalkError::new(format!(
                "needs {n} bytes, only {} left",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn i8(&mut self) -> Walk<i8> {
        Ok(self.take(1)?[0] as i8)
    }

    fn i16(&mut self) -> Walk<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Walk<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Unsigned varint of at most 5 bytes whose value fits in 32 bits; anything longer or
    /// wider is refused (the crate's decoder would silently truncate it).
    fn uvarint(&mut self) -> Walk<u32> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self
                .take(1)
                .map_err(|_| WalkError::new("truncated varint"))?[0];
            if i == 4 && b > 0x0f {
                return Err(WalkError::new("varint longer than 32 bits"));
            }
            value |= u32::from(b & 0x7f) << (i * 7);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WalkError::new("varint longer than 5 bytes"))
    }
}

/// Whether `field` uses compact (flexible) encodings in version `v` of `msg`.
fn is_flexible(msg: &Message, field: &Field, v: i16) -> bool {
    field.flexible.unwrap_or(msg.flexible).contains(v)
}

fn walk_struct(cur: &mut Cursor<'_>, msg: &Message, def: &StructDef, v: i16) -> Walk<()> {
    for field in &def.fields {
        if !field.versions.contains(v) || field.tag.is_some() {
            continue;
        }
        let flexible = is_flexible(msg, field, v);
        walk_value(
            cur,
            msg,
            &field.kind,
            v,
            flexible,
            field.nullable.contains(v),
        )
        .map_err(|e| e.within(|| field.name.to_string()))?;
    }
    if msg.flexible.contains(v) {
        walk_tagged(cur, msg, def, v)?;
    }
    Ok(())
}

fn walk_tagged(cur: &mut Cursor<'_>, msg: &Message, def: &StructDef, v: i16) -> Walk<()> {
    let ctx = || "_tagged_fields".to_string();
    let count = cur.uvarint().map_err(|e| e.within(ctx))?;
    // Each entry needs at least a tag byte and a size byte.
    if u64::from(count) * 2 > cur.remaining() as u64 {
        return Err(WalkError::new(format!(
            "{count} tagged fields cannot fit in {} bytes",
            cur.remaining()
        ))
        .within(ctx));
    }
    let mut prev: Option<u32> = None;
    for _ in 0..count {
        let tag = cur.uvarint().map_err(|e| e.within(ctx))?;
        if let Some(p) = prev {
            if tag <= p {
                let reason = if tag == p {
                    format!("duplicate tag {tag}")
                } else {
                    format!("tag {tag} after tag {p}: tags must increase")
                };
                return Err(WalkError::new(reason).within(ctx));
            }
        }
        prev = Some(tag);
        let size = cur.uvarint().map_err(|e| e.within(ctx))? as usize;
        let data = cur
            .take(size)
            .map_err(|e| e.within(|| format!("_tagged_fields[tag {tag}]")))?;
        let known = def.fields.iter().find(|f| {
            f.versions.contains(v) && matches!(f.tag, Some((t, tv)) if t == tag && tv.contains(v))
        });
        if let Some(field) = known {
            // A known tag must parse by its type and fill its declared size exactly, so
            // that a decoder reading it from the main buffer stays in step with us.
            let mut sub = Cursor { buf: data, pos: 0 };
            walk_value(
                &mut sub,
                msg,
                &field.kind,
                v,
                is_flexible(msg, field, v),
                field.nullable.contains(v),
            )
            .and_then(|()| {
                if sub.remaining() == 0 {
                    Ok(())
                } else {
                    Err(WalkError::new(format!(
                        "tagged field declares {size} bytes but its value uses {}",
                        sub.pos
                    )))
                }
            })
            .map_err(|e| e.within(|| field.name.to_string()))?;
        } else if def
            .fields
            .iter()
            .any(|f| matches!(f.tag, Some((t, _)) if t == tag))
        {
            // The schema knows this tag, but not in this version: the generated decoders refuse it
            // ("Tag N is not valid for version V"), so it is malformed, not an unknown extension.
            return Err(
                WalkError::new(format!("tag {tag} is not valid for version {v}")).within(ctx),
            );
        }
    }
    Ok(())
}

/// Reads a length prefix: compact (unsigned varint, 0 = null, n = n-1 items) or classic
/// (`classic_width` bytes, -1 = null). Returns None for null.
fn read_len(
    cur: &mut Cursor<'_>,
    flexible: bool,
    classic_width: u8,
    nullable: bool,
) -> Walk<Option<usize>> {
    let len: i64 = if flexible {
        i64::from(cur.uvarint()?) - 1
    } else if classic_width == 2 {
        i64::from(cur.i16()?)
    } else {
        i64::from(cur.i32()?)
    };
    match len {
        -1 if nullable => Ok(None),
        -1 => Err(WalkError::new("null where the schema forbids it")),
        n if n < -1 => Err(WalkError::new(format!("negative length {n}"))),
        n => usize::try_from(n)
            .map(Some)
            .map_err(|_| WalkError::new(format!("length {n} out of range"))),
    }
}

fn walk_value(
    cur: &mut Cursor<'_>,
    msg: &Message,
    kind: &Kind,
    v: i16,
    flexible: bool,
    nullable: bool,
) -> Walk<()> {
    match kind {
        Kind::Prim(p) => walk_prim(cur, *p, flexible, nullable),
        Kind::Struct(idx) => {
            if nullable {
                // Nullable structs carry a presence byte: -1 absent, 1 present.
                match cur.i8()? {
                    -1 => return Ok(()),
                    1 => {}
                    b => return Err(WalkError::new(format!("bad struct presence byte {b}"))),
                }
            }
            walk_struct(cur, msg, &msg.structs[*idx], v)
        }
        Kind::Array(elem) => {
            let Some(count) = read_len(cur, flexible, 4, nullable)? else {
                return Ok(());
            };
            let min = min_size(msg, elem, v, flexible).max(1);
            if count.saturating_mul(min) > cur.remaining() {
                return Err(WalkError::new(format!(
                    "array of {count} elements (at least {min} bytes each) cannot fit in {} bytes",
                    cur.remaining()
                )));
            }
            for i in 0..count {
                walk_value(cur, msg, elem, v, flexible, false)
                    .map_err(|e| e.within(|| format!("[{i}]")))?;
            }
            Ok(())
        }
    }
}

fn walk_prim(cur: &mut Cursor<'_>, p: Prim, flexible: bool, nullable: bool) -> Walk<()> {
    if let Some(n) = p.fixed_size() {
        cur.take(n)?;
        return Ok(());
    }
    let classic_width = if p == Prim::String { 2 } else { 4 };
    let Some(len) = read_len(cur, flexible, classic_width, nullable)? else {
        return Ok(());
    };
    let data = cur.take(len)?;
    if p == Prim::String && std::str::from_utf8(data).is_err() {
        return Err(WalkError::new("string is not valid UTF-8"));
    }
    Ok(())
}

/// The fewest bytes one value of `kind` can occupy on the wire in version `v`. Used to
/// refuse element counts that the remaining bytes cannot hold, which bounds what a
/// decoder reserves for the array.
fn min_size(msg: &Message, kind: &Kind, v: i16, flexible: bool) -> usize {
    match kind {
        Kind::Prim(p) => match p.fixed_size() {
            Some(n) => n,
            None if flexible => 1,
            None if *p == Prim::String => 2,
            None => 4,
        },
        Kind::Array(_) => {
            if flexible {
                1
            } else {
                4
            }
        }
        Kind::Struct(idx) => {
            let def = &msg.structs[*idx];
            let mut total = usize::from(msg.flexible.contains(v));
            for f in &def.fields {
                if f.versions.contains(v) && f.tag.is_none() {
                    total += if f.nullable.contains(v) && matches!(f.kind, Kind::Struct(_)) {
                        1
                    } else {
                        min_size(msg, &f.kind, v, is_flexible(msg, f, v))
                    };
                }
            }
            total
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_schemas_load() {
        let reg = registry().expect("schemas load");
        assert_eq!(known_api_keys().len(), REQUEST_SCHEMAS.len());
        assert!(reg.request(0).is_some());
        assert!(reg.request(-1).is_none());
        assert!(reg.request(999).is_none());
    }

    #[test]
    fn varint_limits() {
        let mut c = Cursor {
            buf: &[0xff, 0xff, 0xff, 0xff, 0x0f],
            pos: 0,
        };
        assert_eq!(c.uvarint().unwrap(), u32::MAX);
        let mut c = Cursor {
            buf: &[0xff, 0xff, 0xff, 0xff, 0x1f],
            pos: 0,
        };
        assert!(c.uvarint().is_err());
        let mut c = Cursor {
            buf: &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
            pos: 0,
        };
        assert!(c.uvarint().is_err());
        let mut c = Cursor {
            buf: &[0x80],
            pos: 0,
        };
        assert!(c.uvarint().is_err());
    }

    #[test]
    fn peek_needs_eight_bytes() {
        assert_eq!(peek_header(&[0; 7]), None);
        let h = peek_header(&[0, 42, 0, 1, 0, 0, 0, 7]).unwrap();
        assert_eq!((h.api_key, h.api_version, h.correlation_id), (42, 1, 7));
    }
}
