//! The key/value layout of records in `__consumer_offsets`, as Kafka writes them (OffsetCommitKey v1 /
//! OffsetCommitValue v3, GroupMetadataKey v2), so the topic stays readable by Kafka's own tooling. These
//! schemas live in Kafka's group-coordinator module, not in the `kafka-protocol` crate; they are a handful of
//! fixed fields.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::consumer_records::ConsumerGroupKey;

const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
const GROUP_METADATA_KEY_VERSION: i16 = 2;
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;

/// A decoded record key of `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsKey {
    /// A committed offset of one partition for one group.
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
    },
    /// Group membership metadata (written by the membership protocol; only tombstoned here).
    GroupMetadata { group: String },
    /// A record of a consumer-protocol (KIP-848) group.
    ConsumerGroup(ConsumerGroupKey),
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// A record in `__consumer_offsets` that cannot be understood.
#[derive(Debug, thiserror::Error)]
#[error("undecodable __consumer_offsets record: {0}")]
pub struct RecordFormatError(pub &'static str);

/// Kafka strings carry an int16 length: a longer string is refused, never written with a wrapped length
/// (which would make the record, and replay of its partition, unreadable).
fn put_string(buf: &mut BytesMut, s: &str) -> Result<(), RecordFormatError> {
    let len =
        i16::try_from(s.len()).map_err(|_| RecordFormatError("string longer than 32767 bytes"))?;
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
    Ok(())
}

fn get_string(buf: &mut Bytes) -> Result<String, RecordFormatError> {
    if buf.remaining() < 2 {
        return Err(RecordFormatError("truncated string length"));
    }
    let len = buf.get_i16();
    if len < 0 || len as usize > buf.remaining() {
        return Err(RecordFormatError("bad string length"));
    }
    let bytes = buf.split_to(len as usize);
    String::from_utf8(bytes.to_vec()).map_err(|_| RecordFormatError("string is not UTF-8"))
}

fn get_i32(buf: &mut Bytes) -> Result<i32, RecordFormatError> {
    if buf.remaining() < 4 {
        return Err(RecordFormatError("truncated int32"));
    }
    Ok(buf.get_i32())
}

fn get_i64(buf: &mut Bytes) -> Result<i64, RecordFormatError> {
    if buf.remaining() < 8 {
        return Err(RecordFormatError("truncated int64"));
    }
    Ok(buf.get_i64())
}

/// Longest group id that can be stored (Kafka's string length prefix is an int16).
pub const MAX_GROUP_ID_LEN: usize = i16::MAX as usize;

impl OffsetsKey {
    pub fn encode(&self) -> Result<Bytes, RecordFormatError> {
        let mut buf = BytesMut::with_capacity(64);
        match self {
            OffsetsKey::OffsetCommit {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(OFFSET_COMMIT_KEY_VERSION);
                put_string(&mut buf, group)?;
                put_string(&mut buf, topic)?;
                buf.put_i32(*partition);
            }
            OffsetsKey::GroupMetadata { group } => {
                buf.put_i16(GROUP_METADATA_KEY_VERSION);
                put_string(&mut buf, group)?;
            }
            OffsetsKey::ConsumerGroup(key) => key.encode(&mut buf)?,
        }
        Ok(buf.freeze())
    }

    /// Decodes a key; `Ok(None)` for record types this broker does not use (such as Kafka's resolved-regex
    /// records), which replay skips.
    pub fn decode(mut buf: Bytes) -> Result<Option<OffsetsKey>, RecordFormatError> {
        if buf.remaining() < 2 {
            return Err(RecordFormatError("truncated key version"));
        }
        match buf.get_i16() {
            0 | 1 => Ok(Some(OffsetsKey::OffsetCommit {
                group: get_string(&mut buf)?,
                topic: get_string(&mut buf)?,
                partition: get_i32(&mut buf)?,
            })),
            2 => Ok(Some(OffsetsKey::GroupMetadata {
                group: get_string(&mut buf)?,
            })),
            other => Ok(ConsumerGroupKey::decode(other, &mut buf)?.map(OffsetsKey::ConsumerGroup)),
        }
    }
}

impl OffsetCommitValue {
    pub fn encode(&self) -> Result<Bytes, RecordFormatError> {
        let mut buf = BytesMut::with_capacity(32 + self.metadata.len());
        buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
        buf.put_i64(self.offset);
        buf.put_i32(self.leader_epoch);
        put_string(&mut buf, &self.metadata)?;
        buf.put_i64(self.commit_timestamp);
        Ok(buf.freeze())
    }

    /// Decodes value versions 0-3 (v1 carries an expire timestamp after the commit timestamp; v2 drops it;
    /// v3 adds the leader epoch).
    pub fn decode(mut buf: Bytes) -> Result<OffsetCommitValue, RecordFormatError> {
        if buf.remaining() < 2 {
            return Err(RecordFormatError("truncated value version"));
        }
        let version = buf.get_i16();
        if !(0..=4).contains(&version) {
            return Err(RecordFormatError("unknown offset commit value version"));
        }
        let offset = get_i64(&mut buf)?;
        let leader_epoch = if version >= 3 { get_i32(&mut buf)? } else { -1 };
        let metadata = get_string(&mut buf)?;
        let commit_timestamp = get_i64(&mut buf)?;
        Ok(OffsetCommitValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_commit_round_trip() {
        let key = OffsetsKey::OffsetCommit {
            group: "app".into(),
            topic: "temperature".into(),
            partition: 7,
        };
        assert_eq!(
            OffsetsKey::decode(key.encode().expect("encode")).expect("key"),
            Some(key)
        );
        let value = OffsetCommitValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp: 1_700_000_000_000,
        };
        assert_eq!(
            OffsetCommitValue::decode(value.encode().expect("encode")).expect("value"),
            value
        );
    }

    #[test]
    fn layout_matches_kafka() {
        let key = OffsetsKey::OffsetCommit {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
        };
        assert_eq!(
            key.encode().expect("encode").as_ref(),
            &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]
        );
        let group = OffsetsKey::GroupMetadata { group: "g".into() };
        assert_eq!(
            group.encode().expect("encode").as_ref(),
            &[0, 2, 0, 1, b'g']
        );
    }

    #[test]
    fn overlong_strings_are_refused_not_wrapped() {
        let key = OffsetsKey::GroupMetadata {
            group: "g".repeat(40_000),
        };
        assert!(key.encode().is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&[][..], &[0, 1, 0x7f, 0xff][..], &[0, 1, 0, 1, b'g'][..]] {
            assert!(OffsetsKey::decode(Bytes::copy_from_slice(bytes)).is_err());
        }
        assert!(OffsetCommitValue::decode(Bytes::from_static(&[0, 3, 0, 0])).is_err());
        assert!(OffsetCommitValue::decode(Bytes::from_static(&[0, 9])).is_err());
        // Kafka's resolved-regex records (type 16) are skipped; a truncated consumer-group key is an error.
        assert_eq!(
            OffsetsKey::decode(Bytes::from_static(&[0, 16, 1])).expect("skip"),
            None
        );
        assert!(OffsetsKey::decode(Bytes::from_static(&[0, 7, 1])).is_err());
    }

    #[test]
    fn reads_older_value_versions() {
        // v1: offset, metadata, commit timestamp, expire timestamp.
        let mut buf = BytesMut::new();
        buf.put_i16(1);
        buf.put_i64(9);
        buf.put_i16(0);
        buf.put_i64(5);
        buf.put_i64(6);
        let value = OffsetCommitValue::decode(buf.freeze()).expect("v1");
        assert_eq!(
            (value.offset, value.leader_epoch, value.commit_timestamp),
            (9, -1, 5)
        );
    }
}

/// A classic group's membership as stored (GroupMetadataValue v3: the version Kafka writes for groups
/// with static members; readable back to v0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<StoredMember>,
}

/// One member in [`GroupMetadataValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

const GROUP_METADATA_VALUE_VERSION: i16 = 3;

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) -> Result<(), RecordFormatError> {
    match s {
        Some(s) => put_string(buf, s),
        None => {
            buf.put_i16(-1);
            Ok(())
        }
    }
}

fn get_nullable_string(buf: &mut Bytes) -> Result<Option<String>, RecordFormatError> {
    if buf.remaining() < 2 {
        return Err(RecordFormatError("truncated string length"));
    }
    if i16::from_be_bytes([buf[0], buf[1]]) == -1 {
        buf.advance(2);
        return Ok(None);
    }
    get_string(buf).map(Some)
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) -> Result<(), RecordFormatError> {
    let len = i32::try_from(b.len()).map_err(|_| RecordFormatError("bytes longer than 2 GiB"))?;
    buf.put_i32(len);
    buf.put_slice(b);
    Ok(())
}

fn get_bytes(buf: &mut Bytes) -> Result<Bytes, RecordFormatError> {
    let len = get_i32(buf)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    if len as usize > buf.remaining() {
        return Err(RecordFormatError("bad bytes length"));
    }
    Ok(buf.split_to(len as usize))
}

impl GroupMetadataValue {
    pub fn encode(&self) -> Result<Bytes, RecordFormatError> {
        let mut buf = BytesMut::with_capacity(128);
        buf.put_i16(GROUP_METADATA_VALUE_VERSION);
        put_string(&mut buf, &self.protocol_type)?;
        buf.put_i32(self.generation);
        put_nullable_string(&mut buf, self.protocol.as_deref())?;
        put_nullable_string(&mut buf, self.leader.as_deref())?;
        buf.put_i64(self.current_state_timestamp);
        buf.put_i32(self.members.len() as i32);
        for m in &self.members {
            put_string(&mut buf, &m.member_id)?;
            put_nullable_string(&mut buf, m.group_instance_id.as_deref())?;
            put_string(&mut buf, &m.client_id)?;
            put_string(&mut buf, &m.client_host)?;
            buf.put_i32(m.rebalance_timeout_ms);
            buf.put_i32(m.session_timeout_ms);
            put_bytes(&mut buf, &m.subscription)?;
            put_bytes(&mut buf, &m.assignment)?;
        }
        Ok(buf.freeze())
    }

    /// Decodes versions 0-3 (v1 adds the rebalance timeout, v2 the state timestamp, v3 instance ids).
    pub fn decode(mut buf: Bytes) -> Result<GroupMetadataValue, RecordFormatError> {
        if buf.remaining() < 2 {
            return Err(RecordFormatError("truncated value version"));
        }
        let version = buf.get_i16();
        if !(0..=3).contains(&version) {
            return Err(RecordFormatError("unknown group metadata value version"));
        }
        let protocol_type = get_string(&mut buf)?;
        let generation = get_i32(&mut buf)?;
        let protocol = get_nullable_string(&mut buf)?;
        let leader = get_nullable_string(&mut buf)?;
        let current_state_timestamp = if version >= 2 { get_i64(&mut buf)? } else { -1 };
        let count = get_i32(&mut buf)?;
        // Every member takes at least 20 bytes: a count beyond that is corruption, not a reason to allocate.
        if count < 0 || count as usize > buf.remaining() / 20 + 1 {
            return Err(RecordFormatError("bad member count"));
        }
        let mut members = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let member_id = get_string(&mut buf)?;
            let group_instance_id = if version >= 3 {
                get_nullable_string(&mut buf)?
            } else {
                None
            };
            let client_id = get_string(&mut buf)?;
            let client_host = get_string(&mut buf)?;
            let rebalance_timeout_ms = if version >= 1 { get_i32(&mut buf)? } else { -1 };
            let session_timeout_ms = get_i32(&mut buf)?;
            let rebalance_timeout_ms = if version >= 1 {
                rebalance_timeout_ms
            } else {
                session_timeout_ms
            };
            members.push(StoredMember {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription: get_bytes(&mut buf)?,
                assignment: get_bytes(&mut buf)?,
            });
        }
        Ok(GroupMetadataValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp,
            members,
        })
    }
}

#[cfg(test)]
mod group_value_tests {
    use super::*;

    #[test]
    fn group_metadata_round_trip() {
        let value = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 99,
            members: vec![StoredMember {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300000,
                session_timeout_ms: 45000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(
            GroupMetadataValue::decode(value.encode().expect("encode")).expect("decode"),
            value
        );
        let empty = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: None,
            leader: None,
            current_state_timestamp: 1,
            members: vec![],
        };
        assert_eq!(
            GroupMetadataValue::decode(empty.encode().expect("encode")).expect("decode"),
            empty
        );
    }

    #[test]
    fn lying_member_count_is_rejected() {
        let mut buf = BytesMut::new();
        buf.put_i16(3);
        put_string(&mut buf, "consumer").expect("short string");
        buf.put_i32(1);
        buf.put_i16(-1);
        buf.put_i16(-1);
        buf.put_i64(0);
        buf.put_i32(i32::MAX);
        assert!(GroupMetadataValue::decode(buf.freeze()).is_err());
    }
}
