//! The `__consumer_offsets` records of consumer-protocol (KIP-848) groups, in Kafka's layout: the key is an
//! int16 record type and plain (non-flexible) strings; the value is an int16 version (0) and a flexible
//! body (compact strings and arrays, tagged fields), as Kafka's group coordinator writes them.
//!
//! | type | key | value |
//! |---|---|---|
//! | 3 | group | group epoch |
//! | 5 | group, member | member metadata (subscription, client) |
//! | 6 | group | target assignment epoch |
//! | 7 | group, member | the member's target assignment |
//! | 8 | group, member | the member's current assignment and epochs |
//!
//! Kafka's type 4 (partition metadata, 4.0) and 16 (resolved regexes) are not written; on replay they are
//! skipped, and what they cached is recomputed from the metadata image.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use integer_encoding::VarInt;
use uuid::Uuid;

use super::assignor::Assignment;
use super::records::RecordFormatError;

pub const METADATA_TYPE: i16 = 3;
pub const MEMBER_METADATA_TYPE: i16 = 5;
pub const TARGET_ASSIGNMENT_METADATA_TYPE: i16 = 6;
pub const TARGET_ASSIGNMENT_MEMBER_TYPE: i16 = 7;
pub const CURRENT_MEMBER_ASSIGNMENT_TYPE: i16 = 8;
/// Kafka record types of consumer groups that this coordinator reads past (see the module notes).
pub const SKIPPED_TYPES: [i16; 2] = [4, 16];
const VALUE_VERSION: i16 = 0;

/// The key of a consumer-group record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConsumerGroupKey {
    Metadata { group: String },
    MemberMetadata { group: String, member: String },
    TargetAssignmentMetadata { group: String },
    TargetAssignmentMember { group: String, member: String },
    CurrentMemberAssignment { group: String, member: String },
}

/// A member's subscription and client details (ConsumerGroupMemberMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// A member's reconciliation state (ConsumerGroupCurrentMemberAssignmentValue).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

/// The value of a consumer-group record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerGroupValue {
    Metadata { epoch: i32 },
    MemberMetadata(MemberMetadata),
    TargetAssignmentMetadata { assignment_epoch: i32 },
    TargetAssignmentMember(Assignment),
    CurrentMemberAssignment(CurrentAssignment),
}

/// Key strings are int16-length strings, as in the other record keys.
fn put_key_string(buf: &mut BytesMut, s: &str) -> Result<(), RecordFormatError> {
    let len =
        i16::try_from(s.len()).map_err(|_| RecordFormatError("string longer than 32767 bytes"))?;
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

fn take(buf: &mut Bytes, n: usize) -> Result<Bytes, RecordFormatError> {
    if n > buf.remaining() {
        return Err(RecordFormatError("field runs past the end of the record"));
    }
    Ok(buf.split_to(n))
}

fn get_key_string(buf: &mut Bytes) -> Result<String, RecordFormatError> {
    let len = get_i16(buf)?;
    if len < 0 {
        return Err(RecordFormatError("null string in a key"));
    }
    utf8(take(buf, len as usize)?)
}

fn utf8(bytes: Bytes) -> Result<String, RecordFormatError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| RecordFormatError("string is not UTF-8"))
}

fn get_i16(buf: &mut Bytes) -> Result<i16, RecordFormatError> {
    Ok(i16::from_be_bytes(
        take(buf, 2)?.as_ref().try_into().unwrap_or_default(),
    ))
}

fn get_i32(buf: &mut Bytes) -> Result<i32, RecordFormatError> {
    Ok(i32::from_be_bytes(
        take(buf, 4)?.as_ref().try_into().unwrap_or_default(),
    ))
}

fn put_uvarint(buf: &mut BytesMut, v: u32) {
    let mut scratch = [0u8; 5];
    let n = v.encode_var(&mut scratch);
    buf.put_slice(&scratch[..n]);
}

fn get_uvarint(buf: &mut Bytes) -> Result<u32, RecordFormatError> {
    let (v, n) = u32::decode_var(buf.as_ref()).ok_or(RecordFormatError("bad varint"))?;
    buf.advance(n);
    Ok(v)
}

/// A compact length: stored as count + 1, 0 meaning null.
fn put_compact_len(buf: &mut BytesMut, len: Option<usize>) -> Result<(), RecordFormatError> {
    let v = match len {
        None => 0,
        Some(n) => u32::try_from(n + 1).map_err(|_| RecordFormatError("field too long"))?,
    };
    put_uvarint(buf, v);
    Ok(())
}

/// A compact length checked against what remains (each element takes at least `min_size` bytes), so a
/// corrupt length cannot make us allocate.
fn get_compact_len(buf: &mut Bytes, min_size: usize) -> Result<Option<usize>, RecordFormatError> {
    let v = get_uvarint(buf)?;
    if v == 0 {
        return Ok(None);
    }
    let n = (v - 1) as usize;
    if n.saturating_mul(min_size) > buf.remaining() {
        return Err(RecordFormatError("length beyond the record"));
    }
    Ok(Some(n))
}

fn put_compact(buf: &mut BytesMut, s: Option<&str>) -> Result<(), RecordFormatError> {
    put_compact_len(buf, s.map(str::len))?;
    if let Some(s) = s {
        buf.put_slice(s.as_bytes());
    }
    Ok(())
}

fn get_compact(buf: &mut Bytes) -> Result<Option<String>, RecordFormatError> {
    match get_compact_len(buf, 1)? {
        None => Ok(None),
        Some(n) => utf8(take(buf, n)?).map(Some),
    }
}

fn put_no_tagged_fields(buf: &mut BytesMut) -> Result<(), RecordFormatError> {
    put_uvarint(buf, 0);
    Ok(())
}

/// Tagged fields a later Kafka version may add are read past.
fn skip_tagged_fields(buf: &mut Bytes) -> Result<(), RecordFormatError> {
    let count = get_uvarint(buf)?;
    for _ in 0..count {
        let _tag = get_uvarint(buf)?;
        let size = get_uvarint(buf)? as usize;
        take(buf, size)?;
    }
    Ok(())
}

/// Kafka's TopicPartitions struct: topic id, partitions, tagged fields.
fn put_assignment(buf: &mut BytesMut, assignment: &Assignment) -> Result<(), RecordFormatError> {
    put_compact_len(buf, Some(assignment.len()))?;
    for (topic, partitions) in assignment {
        buf.put_slice(topic.as_bytes());
        put_compact_len(buf, Some(partitions.len()))?;
        for p in partitions {
            buf.put_i32(*p);
        }
        put_no_tagged_fields(buf)?;
    }
    Ok(())
}

fn get_assignment(buf: &mut Bytes) -> Result<Assignment, RecordFormatError> {
    let mut out = Assignment::new();
    // 16-byte id + partitions length + tagged fields.
    for _ in 0..get_compact_len(buf, 18)?.unwrap_or(0) {
        let id = take(buf, 16)?;
        let topic = Uuid::from_slice(&id).map_err(|_| RecordFormatError("bad topic id"))?;
        let parts = out.entry(topic).or_default();
        for _ in 0..get_compact_len(buf, 4)?.unwrap_or(0) {
            parts.insert(get_i32(buf)?);
        }
        skip_tagged_fields(buf)?;
    }
    Ok(out)
}

impl ConsumerGroupKey {
    pub fn group(&self) -> &str {
        match self {
            ConsumerGroupKey::Metadata { group }
            | ConsumerGroupKey::MemberMetadata { group, .. }
            | ConsumerGroupKey::TargetAssignmentMetadata { group }
            | ConsumerGroupKey::TargetAssignmentMember { group, .. }
            | ConsumerGroupKey::CurrentMemberAssignment { group, .. } => group,
        }
    }

    pub fn record_type(&self) -> i16 {
        match self {
            ConsumerGroupKey::Metadata { .. } => METADATA_TYPE,
            ConsumerGroupKey::MemberMetadata { .. } => MEMBER_METADATA_TYPE,
            ConsumerGroupKey::TargetAssignmentMetadata { .. } => TARGET_ASSIGNMENT_METADATA_TYPE,
            ConsumerGroupKey::TargetAssignmentMember { .. } => TARGET_ASSIGNMENT_MEMBER_TYPE,
            ConsumerGroupKey::CurrentMemberAssignment { .. } => CURRENT_MEMBER_ASSIGNMENT_TYPE,
        }
    }

    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), RecordFormatError> {
        buf.put_i16(self.record_type());
        put_key_string(buf, self.group())?;
        match self {
            ConsumerGroupKey::MemberMetadata { member, .. }
            | ConsumerGroupKey::TargetAssignmentMember { member, .. }
            | ConsumerGroupKey::CurrentMemberAssignment { member, .. } => {
                put_key_string(buf, member)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Decodes the fields after the record type; `None` for types this coordinator does not use.
    pub fn decode(
        record_type: i16,
        buf: &mut Bytes,
    ) -> Result<Option<ConsumerGroupKey>, RecordFormatError> {
        let key = match record_type {
            METADATA_TYPE => ConsumerGroupKey::Metadata {
                group: get_key_string(buf)?,
            },
            MEMBER_METADATA_TYPE => ConsumerGroupKey::MemberMetadata {
                group: get_key_string(buf)?,
                member: get_key_string(buf)?,
            },
            TARGET_ASSIGNMENT_METADATA_TYPE => ConsumerGroupKey::TargetAssignmentMetadata {
                group: get_key_string(buf)?,
            },
            TARGET_ASSIGNMENT_MEMBER_TYPE => ConsumerGroupKey::TargetAssignmentMember {
                group: get_key_string(buf)?,
                member: get_key_string(buf)?,
            },
            CURRENT_MEMBER_ASSIGNMENT_TYPE => ConsumerGroupKey::CurrentMemberAssignment {
                group: get_key_string(buf)?,
                member: get_key_string(buf)?,
            },
            _ => return Ok(None),
        };
        Ok(Some(key))
    }
}

impl ConsumerGroupValue {
    pub fn encode(&self) -> Result<Bytes, RecordFormatError> {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i16(VALUE_VERSION);
        match self {
            ConsumerGroupValue::Metadata { epoch } => buf.put_i32(*epoch),
            ConsumerGroupValue::TargetAssignmentMetadata { assignment_epoch } => {
                buf.put_i32(*assignment_epoch)
            }
            ConsumerGroupValue::MemberMetadata(m) => {
                put_compact(&mut buf, m.instance_id.as_deref())?;
                put_compact(&mut buf, m.rack_id.as_deref())?;
                put_compact(&mut buf, Some(&m.client_id))?;
                put_compact(&mut buf, Some(&m.client_host))?;
                put_compact_len(&mut buf, Some(m.subscribed_topic_names.len()))?;
                for name in &m.subscribed_topic_names {
                    put_compact(&mut buf, Some(name))?;
                }
                put_compact(&mut buf, m.subscribed_topic_regex.as_deref())?;
                buf.put_i32(m.rebalance_timeout_ms);
                put_compact(&mut buf, m.server_assignor.as_deref())?;
            }
            ConsumerGroupValue::TargetAssignmentMember(a) => put_assignment(&mut buf, a)?,
            ConsumerGroupValue::CurrentMemberAssignment(c) => {
                buf.put_i32(c.member_epoch);
                buf.put_i32(c.previous_member_epoch);
                buf.put_i8(c.state);
                put_assignment(&mut buf, &c.assigned)?;
                put_assignment(&mut buf, &c.pending_revocation)?;
            }
        }
        put_no_tagged_fields(&mut buf)?;
        Ok(buf.freeze())
    }

    pub fn decode(
        record_type: i16,
        mut buf: Bytes,
    ) -> Result<ConsumerGroupValue, RecordFormatError> {
        if buf.remaining() < 2 {
            return Err(RecordFormatError("truncated value version"));
        }
        let version = get_i16(&mut buf)?;
        if version != VALUE_VERSION {
            return Err(RecordFormatError("unknown consumer group value version"));
        }
        let buf = &mut buf;
        let value = match record_type {
            METADATA_TYPE => ConsumerGroupValue::Metadata {
                epoch: get_i32(buf)?,
            },
            TARGET_ASSIGNMENT_METADATA_TYPE => ConsumerGroupValue::TargetAssignmentMetadata {
                assignment_epoch: get_i32(buf)?,
            },
            MEMBER_METADATA_TYPE => {
                let instance_id = get_compact(buf)?;
                let rack_id = get_compact(buf)?;
                let client_id = get_compact(buf)?.unwrap_or_default();
                let client_host = get_compact(buf)?.unwrap_or_default();
                let mut names = Vec::new();
                for _ in 0..get_compact_len(buf, 1)?.unwrap_or(0) {
                    names.push(get_compact(buf)?.unwrap_or_default());
                }
                ConsumerGroupValue::MemberMetadata(MemberMetadata {
                    instance_id,
                    rack_id,
                    client_id,
                    client_host,
                    subscribed_topic_names: names,
                    subscribed_topic_regex: get_compact(buf)?,
                    rebalance_timeout_ms: get_i32(buf)?,
                    server_assignor: get_compact(buf)?,
                })
            }
            TARGET_ASSIGNMENT_MEMBER_TYPE => {
                ConsumerGroupValue::TargetAssignmentMember(get_assignment(buf)?)
            }
            CURRENT_MEMBER_ASSIGNMENT_TYPE => {
                let member_epoch = get_i32(buf)?;
                let previous_member_epoch = get_i32(buf)?;
                let state = take(buf, 1)?[0] as i8;
                ConsumerGroupValue::CurrentMemberAssignment(CurrentAssignment {
                    member_epoch,
                    previous_member_epoch,
                    state,
                    assigned: get_assignment(buf)?,
                    pending_revocation: get_assignment(buf)?,
                })
            }
            _ => return Err(RecordFormatError("not a consumer group record type")),
        };
        skip_tagged_fields(buf)?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn roundtrip(key: ConsumerGroupKey, value: ConsumerGroupValue) {
        let mut kbuf = BytesMut::new();
        key.encode(&mut kbuf).unwrap();
        let mut kbytes = kbuf.freeze();
        let ty = kbytes.get_i16();
        assert_eq!(
            ConsumerGroupKey::decode(ty, &mut kbytes).unwrap(),
            Some(key)
        );
        assert!(kbytes.is_empty());
        let encoded = value.encode().unwrap();
        assert_eq!(ConsumerGroupValue::decode(ty, encoded).unwrap(), value);
    }

    #[test]
    fn records_round_trip() {
        let t = Uuid::from_u128(42);
        let assignment = Assignment::from([(t, BTreeSet::from([0, 3, 5]))]);
        let g = "orders".to_string();
        let m = "member-1".to_string();
        roundtrip(
            ConsumerGroupKey::Metadata { group: g.clone() },
            ConsumerGroupValue::Metadata { epoch: 7 },
        );
        roundtrip(
            ConsumerGroupKey::MemberMetadata {
                group: g.clone(),
                member: m.clone(),
            },
            ConsumerGroupValue::MemberMetadata(MemberMetadata {
                instance_id: Some("i-1".into()),
                rack_id: None,
                client_id: "client".into(),
                client_host: "/127.0.0.1".into(),
                subscribed_topic_names: vec!["a".into(), "b".into()],
                subscribed_topic_regex: Some("a.*".into()),
                rebalance_timeout_ms: 300_000,
                server_assignor: Some("range".into()),
            }),
        );
        roundtrip(
            ConsumerGroupKey::TargetAssignmentMember {
                group: g.clone(),
                member: m.clone(),
            },
            ConsumerGroupValue::TargetAssignmentMember(assignment.clone()),
        );
        roundtrip(
            ConsumerGroupKey::CurrentMemberAssignment {
                group: g,
                member: m,
            },
            ConsumerGroupValue::CurrentMemberAssignment(CurrentAssignment {
                member_epoch: 4,
                previous_member_epoch: 3,
                state: 1,
                assigned: assignment,
                pending_revocation: Assignment::new(),
            }),
        );
    }

    #[test]
    fn truncated_values_are_errors_not_panics() {
        let value = ConsumerGroupValue::CurrentMemberAssignment(CurrentAssignment {
            member_epoch: 1,
            previous_member_epoch: 0,
            state: 0,
            assigned: Assignment::from([(Uuid::from_u128(1), BTreeSet::from([1, 2]))]),
            pending_revocation: Assignment::new(),
        });
        let encoded = value.encode().unwrap();
        for len in 0..encoded.len() {
            assert!(ConsumerGroupValue::decode(
                CURRENT_MEMBER_ASSIGNMENT_TYPE,
                encoded.slice(..len)
            )
            .is_err());
        }
    }

    #[test]
    fn member_metadata_layout_matches_kafka() {
        // Version 0, then compact strings: null instance (0), null rack (0), "c" (2 'c'), "h" (2 'h'),
        // names [] (1), null regex (0), timeout, null assignor (0), no tagged fields (0).
        let value = ConsumerGroupValue::MemberMetadata(MemberMetadata {
            client_id: "c".into(),
            client_host: "h".into(),
            rebalance_timeout_ms: 5,
            ..Default::default()
        });
        assert_eq!(
            value.encode().unwrap().as_ref(),
            &[0, 0, 0, 0, 2, b'c', 2, b'h', 1, 0, 0, 0, 0, 5, 0, 0]
        );
    }
}
