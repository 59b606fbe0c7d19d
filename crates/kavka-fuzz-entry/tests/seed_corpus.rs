//! Writes the seed corpus of the fuzz targets: `cargo test -p kavka-fuzz-entry --test seed_corpus
//! -- --ignored`. Seeds are files named after what they hold; `cargo fuzz cmin` later renames the
//! minimised corpus to content hashes. Large inputs (decompression bombs over the 64 MiB bound) go
//! to `fuzz/regressions/` so that they do not raise the fuzzer's input-size limit.
//!
//! - `request_frame`: every request type `kafka-protocol` encodes, at every version both it and
//!   Kavka's schemas support, default-valued and (for the main APIs) populated; Produce frames
//!   carrying a real batch of each codec; an Envelope around a CreateTopics request; the
//!   TRAPS.md DeleteGroups bomb. (`kavka-wire`'s own ignored test `write_schema_seeds` adds a
//!   fully populated instance of every schema version.)
//! - `record_batch`: valid batches of every codec (plain, idempotent, transactional, null keys,
//!   raw and xerial-framed snappy), the interesting invalid ones (CRC, magic, counts, lengths,
//!   control batch, base offset, producer fields, codec id, trailing bytes), decompression bombs.

#[path = "../../kavka-wire/tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{EnvelopeRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

fn dir(kind: &str, target: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join(target);
    std::fs::create_dir_all(&d).expect("create corpus dir");
    d
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    std::fs::write(dir.join(format!("seed-{name}")), data).expect("write seed");
}

struct Spec {
    count: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    null_keys: bool,
}

const PLAIN: Spec = Spec {
    count: 3,
    producer_id: -1,
    producer_epoch: -1,
    base_sequence: -1,
    transactional: false,
    null_keys: false,
};

fn encode(spec: &Spec, codec: Compression) -> Vec<u8> {
    let records: Vec<Record> = (0..spec.count)
        .map(|i| {
            let mut headers = indexmap_headers();
            if i % 2 == 1 {
                headers.clear();
            }
            Record {
                transactional: spec.transactional,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: spec.producer_id,
                producer_epoch: spec.producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: spec.base_sequence.wrapping_add(i as i32),
                timestamp: 1_700_000_000_000 + i,
                key: (!spec.null_keys && i % 3 != 1).then(|| Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; 20])),
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: codec,
        },
    )
    .expect("encode batch");
    buf.to_vec()
}

fn indexmap_headers() -> kafka_protocol::indexmap::IndexMap<StrBytes, Option<Bytes>> {
    let mut h = kafka_protocol::indexmap::IndexMap::new();
    h.insert(
        StrBytes::from_static_str("h"),
        Some(Bytes::from_static(b"hv")),
    );
    h
}

fn fix_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// A batch around an arbitrary (compressed) records payload, with a correct CRC.
fn hand_built(attributes: i16, record_count: i32, payload: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(61 + payload.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + payload.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&(record_count - 1).to_be_bytes());
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&record_count.to_be_bytes());
    b.extend_from_slice(payload);
    fix_crc(&mut b);
    b
}

const CODECS: [(Compression, &str); 5] = [
    (Compression::None, "none"),
    (Compression::Gzip, "gzip"),
    (Compression::Snappy, "snappy"),
    (Compression::Lz4, "lz4"),
    (Compression::Zstd, "zstd"),
];

/// 64 MiB + 1 KiB of zeros: just over the produce path's decompression bound.
const BOMB_LEN: usize = (64 << 20) + 1024;

fn record_batch_seeds() {
    let corpus = dir("corpus", "record_batch");
    let regressions = dir("regressions", "record_batch");
    let idempotent = Spec {
        producer_id: 42,
        producer_epoch: 3,
        base_sequence: 0,
        ..PLAIN
    };
    let transactional = Spec {
        transactional: true,
        ..idempotent
    };
    let null_keys = Spec {
        count: 10,
        null_keys: true,
        ..PLAIN
    };
    for (codec, name) in CODECS {
        write(&corpus, &format!("{name}-plain"), &encode(&PLAIN, codec));
        write(
            &corpus,
            &format!("{name}-idempotent"),
            &encode(&idempotent, codec),
        );
        write(
            &corpus,
            &format!("{name}-transactional"),
            &encode(&transactional, codec),
        );
        write(
            &corpus,
            &format!("{name}-null-keys"),
            &encode(&null_keys, codec),
        );
    }
    // Snappy as librdkafka writes it: one raw block, no xerial framing.
    let plain = encode(&PLAIN, Compression::None);
    let raw = snap::raw::Encoder::new()
        .compress_vec(&plain[61..])
        .expect("snappy");
    write(&corpus, "snappy-raw-block", &hand_built(2, 3, &raw));

    // Invalid ones, each differing from a valid batch in one respect.
    let edit = |name: &str, f: &dyn Fn(&mut Vec<u8>), crc: bool| {
        let mut b = plain.clone();
        f(&mut b);
        if crc {
            fix_crc(&mut b);
        }
        write(&corpus, name, &b);
    };
    edit("bad-crc", &|b| b[70] ^= 0xff, false);
    edit("magic-1", &|b| b[16] = 1, true);
    edit(
        "magic-0-short",
        &|b| {
            b[16] = 0;
            b.truncate(30)
        },
        false,
    );
    edit("count-mismatch", &|b| b[60] = 4, true);
    edit(
        "count-zero",
        &|b| b[57..61].copy_from_slice(&0i32.to_be_bytes()),
        true,
    );
    edit(
        "count-huge",
        &|b| {
            b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
            b[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        },
        true,
    );
    edit("control-batch", &|b| b[22] |= 0x20, true);
    edit("base-offset-5", &|b| b[7] = 5, false);
    edit("truncated", &|b| b.truncate(b.len() - 3), false);
    edit("trailing-bytes", &|b| b.extend_from_slice(&[0; 5]), false);
    edit(
        "two-batches",
        &|b| {
            let again = b.clone();
            b.extend_from_slice(&again)
        },
        false,
    );
    edit(
        "batch-length-short",
        &|b| b[8..12].copy_from_slice(&48i32.to_be_bytes()),
        false,
    );
    edit(
        "batch-length-huge",
        &|b| b[8..12].copy_from_slice(&i32::MAX.to_be_bytes()),
        false,
    );
    edit(
        "producer-without-sequence",
        &|b| b[43..51].copy_from_slice(&42i64.to_be_bytes()),
        true,
    );
    edit("codec-5", &|b| b[22] |= 5, true);
    edit("record-length-negative", &|b| b[61] = 1, true);
    edit(
        "record-offset-delta-gap",
        &|b| {
            // First record: length, attributes, timestamp delta, then the offset delta.
            let at = 61 + 1 + 1 + 1;
            b[at] = 4;
        },
        true,
    );
    edit("log-append-time", &|b| b[22] |= 0x08, true);

    // Decompression bombs: a few bytes that expand past the bound.
    let zeros = vec![0u8; BOMB_LEN];
    let zstd_bomb = zstd::bulk::compress(&zeros, 19).expect("zstd");
    write(&corpus, "zstd-bomb", &hand_built(4, 1, &zstd_bomb));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&zeros).expect("gzip");
    write(
        &regressions,
        "gzip-bomb",
        &hand_built(1, 1, &gz.finish().expect("gzip")),
    );
    let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
    lz.write_all(&zeros).expect("lz4");
    write(
        &regressions,
        "lz4-bomb",
        &hand_built(3, 1, &lz.finish().expect("lz4")),
    );
    // Raw snappy whose length preamble claims 1 GiB: refused before anything is allocated.
    let mut claim = vec![0x80, 0x80, 0x80, 0x80, 0x04];
    claim.extend_from_slice(&[0; 8]);
    write(&corpus, "snappy-claims-1gib", &hand_built(2, 1, &claim));
    // Raw snappy claiming 64 MiB (within the bound) in 13 bytes: refused as impossible for the
    // block's size before anything is allocated.
    let mut claim = vec![0x80, 0x80, 0x80, 0x20];
    claim.extend_from_slice(&[0; 9]);
    write(&corpus, "snappy-claims-64mib", &hand_built(2, 1, &claim));
    // xerial framing with a block length past the end.
    let mut xerial = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    xerial.extend_from_slice(&0x7fff_ffffu32.to_be_bytes());
    xerial.extend_from_slice(&[0; 4]);
    write(
        &corpus,
        "snappy-xerial-bad-block-length",
        &hand_built(2, 1, &xerial),
    );
}

fn produce_frame(version: i16, records: Vec<u8>) -> Vec<u8> {
    let mut topic =
        TopicProduceData::default().with_partition_data(vec![PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(Bytes::from(records)))]);
    topic = if version <= 12 {
        topic.with_name(TopicName(StrBytes::from_static_str("orders")))
    } else {
        topic.with_topic_id(uuid::Uuid::from_u128(0x0123_4567_89ab_cdef))
    };
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![topic]);
    common::frame(&request, version, 11).expect("produce frame")
}

fn request_frame_seeds() {
    let corpus = dir("corpus", "request_frame");
    for (name, frame) in common::default_frames()
        .into_iter()
        .chain(common::populated_frames())
    {
        write(&corpus, &name, &frame);
    }
    for (codec, name) in CODECS {
        for version in [3, 7, 9, 12, 13] {
            let frame = produce_frame(version, encode(&PLAIN, codec));
            write(
                &corpus,
                &format!("ProduceRequest v{version} {name}"),
                &frame,
            );
        }
    }
    let inner = common::frame(
        &kafka_protocol::messages::CreateTopicsRequest::default(),
        7,
        5,
    )
    .expect("inner frame");
    let envelope = EnvelopeRequest::default()
        .with_request_data(Bytes::from(inner))
        .with_request_principal(Some(Bytes::from_static(b"User:alice")))
        .with_client_host_address(Bytes::from_static(&[127, 0, 0, 1]));
    write(
        &corpus,
        "EnvelopeRequest v0 CreateTopics",
        &common::frame(&envelope, 0, 3).expect("envelope"),
    );
    // TRAPS.md: DeleteGroups v1 claiming ~2^31 groups in 14 bytes (a regression, kept whatever
    // `cargo fuzz cmin` makes of the corpus).
    write(
        &dir("regressions", "request_frame"),
        "DeleteGroups v1 count bomb",
        &[0, 42, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
    );
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    record_batch_seeds();
    request_frame_seeds();
}
