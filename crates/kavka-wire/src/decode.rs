//! The one way Kavka turns a request frame into typed `kafka-protocol` values: the frame is
//! validated against its schema first ([`validate_request_report`]), and only a frame that
//! passes reaches the crate's decoders, which pre-allocate from counts read off the wire.
//!
//! The schema walk and the crate's decoders must read the same layout: if they disagreed
//! about where a field starts, the decoder could read a length the walk never checked. The
//! decode therefore cross-checks what the walk measured (header version, header length,
//! bytes left after the body) and reports any difference as [`DecodeError::Disagreement`]
//! instead of trusting either side. The fuzz target `request_frame` (see `fuzz/`) asserts
//! that this never happens and that a validated frame always decodes.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use crate::{validate_request_report, FrameError, RequestHeaderInfo};

/// A request frame that passed schema validation and was decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// The request's API.
    pub api_key: ApiKey,
    /// Key fields of the header as read by the validator (the same values as in `header`).
    pub info: RequestHeaderInfo,
    /// The decoded request header.
    pub header: RequestHeader,
    /// The decoded request body.
    pub request: RequestKind,
    /// Bytes after the body, which Kafka tolerates.
    pub trailing_bytes: usize,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame does not match its schema (or names an API or version with no schema).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The schema knows this API, the decoding crate does not.
    #[error("api key {0} has no decoder")]
    NoDecoder(i16),
    /// The schema knows this version of the API, the decoding crate does not.
    #[error("version {version} of {api_key:?} has no decoder")]
    NoDecoderVersion {
        /// The request's API.
        api_key: ApiKey,
        /// The requested version.
        version: i16,
    },
    /// The schema walk accepted the frame but the crate's decoder refused it, or the two
    /// read a different layout. A defect of the embedded schemas (never of the client);
    /// the frame is refused all the same.
    #[error("schema and decoder disagree on {api_key:?} v{version}: {detail}")]
    Disagreement {
        /// The request's API.
        api_key: ApiKey,
        /// The requested version.
        version: i16,
        /// What differed.
        detail: String,
    },
}

/// Validates `frame` (the bytes after the 4-byte size prefix) against its schema and, when it
/// passes, decodes header and body with `kafka-protocol`. Decoding from `Bytes` is zero-copy:
/// `bytes`/`records` fields of the result share `frame`'s buffer.
///
/// Callers decide first which APIs and versions they serve (this accepts every version both
/// the schema and the crate know).
pub fn decode_request(frame: Bytes) -> Result<DecodedRequest, DecodeError> {
    let report = validate_request_report(&frame)?;
    let info = report.header;
    let version = info.api_version;
    let api_key =
        ApiKey::try_from(info.api_key).map_err(|_| DecodeError::NoDecoder(info.api_key))?;
    let range = api_key.valid_versions();
    if version < range.min || version > range.max {
        return Err(DecodeError::NoDecoderVersion { api_key, version });
    }
    let disagree = |detail: String| DecodeError::Disagreement {
        api_key,
        version,
        detail,
    };
    let header_version = api_key.request_header_version(version);
    if header_version != report.header_version {
        return Err(disagree(format!(
            "request header version {header_version}, schema walk used {}",
            report.header_version
        )));
    }
    let mut body = frame;
    let total = body.len();
    let header = RequestHeader::decode(&mut body, header_version)
        .map_err(|e| disagree(format!("request header: {e:#}")))?;
    if total - body.len() != report.header_len {
        return Err(disagree(format!(
            "request header of {} bytes, schema walk measured {}",
            total - body.len(),
            report.header_len
        )));
    }
    if (
        header.request_api_key,
        header.request_api_version,
        header.correlation_id,
    ) != (info.api_key, info.api_version, info.correlation_id)
    {
        return Err(disagree("header fields differ".into()));
    }
    let request = RequestKind::decode(api_key, &mut body, version)
        .map_err(|e| disagree(format!("body: {e:#}")))?;
    if body.len() != report.trailing_bytes {
        return Err(disagree(format!(
            "decoder left {} bytes after the body, schema walk {}",
            body.len(),
            report.trailing_bytes
        )));
    }
    Ok(DecodedRequest {
        api_key,
        info,
        header,
        request,
        trailing_bytes: report.trailing_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_typed() {
        assert_eq!(
            decode_request(Bytes::from_static(&[0, 3])),
            Err(DecodeError::Frame(FrameError::TooShort))
        );
        // TRAPS.md: DeleteGroups v1 claiming ~2^31 group names in 14 bytes.
        let bomb =
            Bytes::from_static(&[0, 42, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decode_request(bomb),
            Err(DecodeError::Frame(FrameError::Malformed { .. }))
        ));
        // WriteTxnMarkers v2: in the schema, not in the crate.
        let f = Bytes::from_static(&[0, 27, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0, 1, 0]);
        assert!(matches!(
            decode_request(f),
            Err(DecodeError::NoDecoderVersion { version: 2, .. })
        ));
    }

    #[test]
    fn decodes_a_valid_frame_zero_copy() {
        // Metadata v4: header v1 (client id "c"), topics null, allow_auto_topic_creation true.
        let frame = Bytes::from_static(&[
            0, 3, 0, 4, 0, 0, 0, 9, 0, 1, b'c', 0xff, 0xff, 0xff, 0xff, 1,
        ]);
        let d = decode_request(frame).expect("decodes");
        assert_eq!(d.api_key, ApiKey::Metadata);
        assert_eq!(d.header.correlation_id, 9);
        assert_eq!(d.trailing_bytes, 0);
        assert!(
            matches!(d.request, RequestKind::Metadata(m) if m.topics.is_none() && m.allow_auto_topic_creation)
        );
    }
}
