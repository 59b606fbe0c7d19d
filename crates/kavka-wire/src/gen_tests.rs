//! Schema-driven frame generation for tests.
//!
//! For every API and version the generator writes a complete instance of the request
//! (every array with one element, every optional string present, known tagged fields
//! filled), so nested structures are exercised too. Three things are checked with it:
//! the instance is accepted and the `kafka-protocol` crate decodes it (schema and crate
//! agree); replacing any single length prefix by a hostile value is refused; and every
//! strict prefix of a valid frame is refused.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use super::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hostile {
    None,
    /// Claims far more bytes or elements than the frame holds.
    Huge,
    /// Classic encodings: -2. Compact encodings: a varint that never terminates.
    Negative,
    /// Null (-1 / compact 0) for a field that is not nullable in this version.
    NullForbidden,
}

struct Gen<'a> {
    msg: &'a Message,
    v: i16,
    /// Emit null for every nullable field instead of a value.
    nulls: bool,
    mode: Hostile,
    /// Which length prefix (in emission order) to corrupt.
    target: usize,
    seen: usize,
    hit: bool,
    /// Replaces the body's own tagged-field section when set.
    root_tagged: Option<Vec<u8>>,
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Gen<'_> {
    fn len_prefix(&mut self, out: &mut Vec<u8>, flexible: bool, width: u8, actual: usize) {
        let slot = self.seen;
        self.seen += 1;
        if self.mode != Hostile::None && slot == self.target {
            self.hit = true;
            match (self.mode, flexible, width) {
                (Hostile::Huge, true, _) => put_uvarint(out, u32::MAX),
                (Hostile::Huge, false, 2) => out.extend_from_slice(&i16::MAX.to_be_bytes()),
                (Hostile::Huge, false, _) => out.extend_from_slice(&i32::MAX.to_be_bytes()),
                (Hostile::Negative, true, _) => out.extend_from_slice(&[0x80; 6]),
                (Hostile::Negative, false, 2) => out.extend_from_slice(&(-2i16).to_be_bytes()),
                (Hostile::Negative, false, _) => out.extend_from_slice(&(-2i32).to_be_bytes()),
                (Hostile::NullForbidden, true, _) => out.push(0),
                (Hostile::NullForbidden, false, 2) => out.extend_from_slice(&(-1i16).to_be_bytes()),
                (Hostile::NullForbidden, false, _) => out.extend_from_slice(&(-1i32).to_be_bytes()),
                (Hostile::None, _, _) => unreachable!(),
            }
            return;
        }
        if flexible {
            put_uvarint(out, actual as u32 + 1);
        } else if width == 2 {
            out.extend_from_slice(&(actual as i16).to_be_bytes());
        } else {
            out.extend_from_slice(&(actual as i32).to_be_bytes());
        }
    }

    fn null(out: &mut Vec<u8>, flexible: bool, width: u8) {
        if flexible {
            out.push(0);
        } else if width == 2 {
            out.extend_from_slice(&(-1i16).to_be_bytes());
        } else {
            out.extend_from_slice(&(-1i32).to_be_bytes());
        }
    }

    fn gen_struct(&mut self, out: &mut Vec<u8>, def: &StructDef, root: bool) {
        let msg = self.msg;
        let v = self.v;
        for f in &def.fields {
            if f.versions.contains(v) && f.tag.is_none() {
                // A hostile null only makes sense where null is forbidden.
                let nullable = f.nullable.contains(v);
                self.gen_value(out, &f.kind, is_flexible(msg, f, v), nullable);
            }
        }
        if !msg.flexible.contains(v) {
            return;
        }
        if root {
            if let Some(section) = self.root_tagged.clone() {
                out.extend_from_slice(&section);
                return;
            }
        }
        let mut tagged: Vec<(u32, Vec<u8>)> = Vec::new();
        for f in &def.fields {
            if let Some((tag, tv)) = f.tag {
                if f.versions.contains(v) && tv.contains(v) {
                    let mut buf = Vec::new();
                    self.gen_value(
                        &mut buf,
                        &f.kind,
                        is_flexible(msg, f, v),
                        f.nullable.contains(v),
                    );
                    tagged.push((tag, buf));
                }
            }
        }
        tagged.sort_by_key(|(t, _)| *t);
        put_uvarint(out, tagged.len() as u32);
        for (tag, buf) in tagged {
            put_uvarint(out, tag);
            put_uvarint(out, buf.len() as u32);
            out.extend_from_slice(&buf);
        }
    }

    fn gen_value(&mut self, out: &mut Vec<u8>, kind: &Kind, flexible: bool, nullable: bool) {
        let null_now = nullable && self.nulls;
        match kind {
            Kind::Prim(p) => match p.fixed_size() {
                Some(n) => {
                    // bool 1, other numbers a recognisable non-zero pattern.
                    let fill = if *p == Prim::Bool { 1 } else { 0x11 };
                    out.extend(std::iter::repeat_n(fill, n));
                }
                None => {
                    let width = if *p == Prim::String { 2 } else { 4 };
                    if null_now {
                        Self::null(out, flexible, width);
                        return;
                    }
                    let payload: &[u8] = if *p == Prim::String { b"ab" } else { b"xyz" };
                    if self.mode == Hostile::NullForbidden && nullable {
                        // Skip this slot: -1 would be legitimate here.
                        self.seen_skip();
                    }
                    self.len_prefix(out, flexible, width, payload.len());
                    out.extend_from_slice(payload);
                }
            },
            Kind::Struct(idx) => {
                if nullable {
                    if self.nulls {
                        out.push(0xff);
                        return;
                    }
                    out.push(1);
                }
                let def = &self.msg.structs[*idx];
                self.gen_struct(out, def, false);
            }
            Kind::Array(elem) => {
                if null_now {
                    Self::null(out, flexible, 4);
                    return;
                }
                if self.mode == Hostile::NullForbidden && nullable {
                    self.seen_skip();
                }
                self.len_prefix(out, flexible, 4, 1);
                self.gen_value(out, elem, flexible, false);
            }
        }
    }

    /// Moves the hostile target past a slot where the hostile value would be legal.
    fn seen_skip(&mut self) {
        if self.seen == self.target {
            self.target += 1;
        }
    }
}

fn header_bytes(api_key: i16, version: i16, header_version: i16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&api_key.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&0x0102_0304i32.to_be_bytes());
    out.extend_from_slice(&5i16.to_be_bytes());
    out.extend_from_slice(b"kavka");
    if header_version >= 2 {
        out.push(0);
    }
    out
}

struct Generated {
    frame: Vec<u8>,
    hit: bool,
    slots: usize,
}

fn generate(
    api_key: i16,
    v: i16,
    nulls: bool,
    mode: Hostile,
    target: usize,
    root_tagged: Option<Vec<u8>>,
) -> Generated {
    let reg = registry().expect("schemas");
    let msg = reg.request(api_key).expect("known api");
    let hv = if msg.flexible.contains(v) { 2 } else { 1 };
    let mut frame = header_bytes(api_key, v, hv);
    let mut g = Gen {
        msg,
        v,
        nulls,
        mode,
        target,
        seen: 0,
        hit: false,
        root_tagged,
    };
    g.gen_struct(&mut frame, &msg.structs[0], true);
    Generated {
        frame,
        hit: g.hit,
        slots: g.seen,
    }
}

/// `ApiKey::valid_versions()` in kafka-protocol 0.18 claims one version more than the
/// request types decode for these APIs (OffsetCommitRequest 2-9, OffsetFetchRequest 1-9,
/// InitProducerIdRequest 0-5): our schemas follow the request types.
const CRATE_TABLE_OVERSTATES: &[(i16, i16)] = &[(8, 10), (9, 10), (22, 6)];

/// Every (api key, version) that both our schema and the crate support.
fn common_versions() -> Vec<(i16, i16)> {
    let mut out = Vec::new();
    for key in known_api_keys() {
        let api = ApiKey::try_from(key).expect("crate knows every schema api key");
        let crate_range = api.valid_versions();
        let (lo, hi) = schema_versions(key).expect("schema range");
        for v in crate_range.min..=crate_range.max {
            if lo <= v && v <= hi {
                out.push((key, v));
            } else {
                assert!(
                    CRATE_TABLE_OVERSTATES.contains(&(key, v)),
                    "{}: schema {lo}-{hi} must cover crate version {v}",
                    request_name(key).unwrap_or("?"),
                );
            }
        }
    }
    out
}

fn crate_decode(frame: &[u8], report: &ValidatedFrame) -> Result<(), String> {
    let mut buf = Bytes::copy_from_slice(frame);
    let api = ApiKey::try_from(report.header.api_key).map_err(|_| "api key".to_string())?;
    let hv = api.request_header_version(report.header.api_version);
    if hv != report.header_version {
        return Err(format!(
            "header version: crate {hv}, ours {}",
            report.header_version
        ));
    }
    let before = buf.len();
    RequestHeader::decode(&mut buf, hv).map_err(|e| format!("header: {e:#}"))?;
    if before - buf.len() != report.header_len {
        return Err("header length differs".into());
    }
    RequestKind::decode(api, &mut buf, report.header.api_version)
        .map_err(|e| format!("body: {e:#}"))?;
    if buf.len() != report.trailing_bytes {
        return Err(format!(
            "crate left {} bytes, we saw {} trailing",
            buf.len(),
            report.trailing_bytes
        ));
    }
    Ok(())
}

#[test]
fn generated_instances_are_accepted_and_decode_with_the_crate() {
    let mut checked = 0;
    for (key, v) in common_versions() {
        for nulls in [false, true] {
            let g = generate(key, v, nulls, Hostile::None, 0, None);
            let name = request_name(key).unwrap_or("?");
            let report = validate_request_report(&g.frame)
                .unwrap_or_else(|e| panic!("{name} v{v} nulls={nulls}: rejected: {e}"));
            assert_eq!(report.trailing_bytes, 0, "{name} v{v}");
            if let Err(e) = crate_decode(&g.frame, &report) {
                panic!("{name} v{v} nulls={nulls}: crate disagrees: {e}");
            }
            checked += 1;
        }
    }
    assert!(checked > 300, "only {checked} instances");
}

#[test]
fn every_hostile_length_is_rejected() {
    let mut hits = 0;
    for (key, v) in common_versions() {
        let name = request_name(key).unwrap_or("?");
        let slots = generate(key, v, false, Hostile::None, 0, None).slots;
        for mode in [Hostile::Huge, Hostile::Negative, Hostile::NullForbidden] {
            for target in 0..slots {
                let g = generate(key, v, false, mode, target, None);
                if !g.hit {
                    continue;
                }
                hits += 1;
                match validate_request(&g.frame) {
                    Err(FrameError::Malformed { .. }) => {}
                    other => panic!("{name} v{v} {mode:?} slot {target}: {other:?}"),
                }
            }
        }
    }
    assert!(hits > 1000, "only {hits} hostile frames");
}

#[test]
fn every_truncation_is_rejected() {
    for (key, v) in common_versions() {
        let g = generate(key, v, false, Hostile::None, 0, None);
        for cut in 0..g.frame.len() {
            let res = validate_request(&g.frame[..cut]);
            let ok = match res {
                Err(FrameError::TooShort) => cut < 8,
                Err(FrameError::Malformed { .. }) => cut >= 8,
                _ => false,
            };
            assert!(ok, "{:?} v{v} cut at {cut}: {res:?}", request_name(key));
        }
    }
}

#[test]
fn tagged_section_abuse_is_rejected() {
    let bad_sections: &[(&str, &[u8])] = &[
        ("duplicate tag", &[2, 100, 1, 0xaa, 100, 1, 0xbb]),
        ("descending tags", &[2, 101, 0, 100, 0]),
        ("count of billions", &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ("size of billions", &[1, 100, 0xff, 0xff, 0xff, 0x7f]),
        ("count past the end", &[3, 100, 0]),
        ("overlong varint", &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
    ];
    let mut flexible_seen = 0;
    for (key, v) in common_versions() {
        let reg = registry().expect("schemas");
        if !reg.request(key).is_some_and(|m| m.flexible.contains(v)) {
            continue;
        }
        flexible_seen += 1;
        for (what, section) in bad_sections {
            let g = generate(key, v, false, Hostile::None, 0, Some(section.to_vec()));
            assert!(
                matches!(
                    validate_request(&g.frame),
                    Err(FrameError::Malformed { .. })
                ),
                "{:?} v{v}: {what} accepted",
                request_name(key)
            );
        }
        // Unknown tags in increasing order are fine, and the crate agrees.
        let g = generate(
            key,
            v,
            false,
            Hostile::None,
            0,
            Some(vec![2, 100, 1, 0xaa, 101, 0]),
        );
        let report = validate_request_report(&g.frame).expect("unknown tags accepted");
        crate_decode(&g.frame, &report).expect("crate decodes unknown tags");
    }
    assert!(flexible_seen > 100);
}

#[test]
fn known_tagged_fields_must_fill_their_size() {
    // Fetch v12, tag 0 = ClusterId (compact nullable string).
    let good = generate(
        1,
        12,
        false,
        Hostile::None,
        0,
        Some(vec![1, 0, 3, 3, b'a', b'b']),
    )
    .frame;
    let report = validate_request_report(&good).expect("well-sized tag");
    crate_decode(&good, &report).expect("crate agrees");
    let short = generate(
        1,
        12,
        false,
        Hostile::None,
        0,
        Some(vec![1, 0, 4, 3, b'a', b'b', 0]),
    )
    .frame;
    assert!(
        matches!(validate_request(&short), Err(FrameError::Malformed { field, .. }) if field.contains("ClusterId"))
    );
    // BrokerHeartbeat v1, tag 0 = OfflineLogDirs ([]uuid) claiming a billion entries.
    let mut section = vec![1, 0, 6];
    section.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0]);
    let huge = generate(63, 1, false, Hostile::None, 0, Some(section)).frame;
    assert!(
        matches!(validate_request(&huge), Err(FrameError::Malformed { field, .. }) if field.contains("OfflineLogDirs"))
    );
}

#[test]
fn header_client_id_and_tags_are_checked() {
    // Metadata v4 (header v1) with a client id claiming 32767 bytes.
    let mut f = vec![0, 3, 0, 4, 0, 0, 0, 1, 0x7f, 0xff, b'x'];
    assert!(
        matches!(validate_request(&f), Err(FrameError::Malformed { field, .. }) if field == "header.ClientId")
    );
    f[8..10].copy_from_slice(&(-2i16).to_be_bytes());
    assert!(matches!(
        validate_request(&f),
        Err(FrameError::Malformed { .. })
    ));
    // Metadata v12 (header v2) with a duplicated header tag.
    let mut f = vec![0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 2, 7, 0, 7, 0];
    f.extend_from_slice(&[1, 1, 0, 1, 0]); // topics: empty, flags, no tags
    assert!(
        matches!(validate_request(&f), Err(FrameError::Malformed { field, reason }) if field.starts_with("header") && reason.contains("duplicate"))
    );
}

/// Seeds for the `request_frame` fuzz target: a fully populated instance of every API version
/// both the schema and the crate know (and its all-nulls twin). Run by hand:
/// `cargo test -p kavka-wire write_schema_seeds -- --ignored`.
#[test]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_schema_seeds() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/request_frame");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    for (key, v) in common_versions() {
        for nulls in [false, true] {
            let g = generate(key, v, nulls, Hostile::None, 0, None);
            let name = request_name(key).unwrap_or("unknown");
            let suffix = if nulls { "-nulls" } else { "" };
            std::fs::write(
                dir.join(format!("seed-schema-{name}-v{v}{suffix}")),
                &g.frame,
            )
            .expect("write seed");
        }
    }
}
