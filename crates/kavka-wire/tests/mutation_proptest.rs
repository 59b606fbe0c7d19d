//! Valid frames, randomly corrupted: whatever the validator accepts must decode with
//! kafka-protocol without panicking (or aborting on a giant allocation), and in practice
//! decode successfully, since the validator walked the very same layout.

mod common;

use std::sync::OnceLock;

use proptest::prelude::*;

fn corpus() -> &'static Vec<Vec<u8>> {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        common::default_frames()
            .into_iter()
            .chain(common::populated_frames())
            .map(|(_, f)| f)
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    SetByte(usize, u8),
    Put16(usize, i16),
    Put32(usize, i32),
    PutVarint(usize, u32),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn varint(mut v: u32) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn overwrite(f: &mut [u8], pos: usize, bytes: &[u8]) {
    for (i, b) in bytes.iter().enumerate() {
        if let Some(slot) = f.get_mut(pos + i) {
            *slot = *b;
        }
    }
}

impl Mutation {
    fn apply(&self, f: &mut Vec<u8>) {
        let len = f.len().max(1);
        match self {
            Mutation::SetByte(p, b) => overwrite(f, p % len, &[*b]),
            Mutation::Put16(p, v) => overwrite(f, p % len, &v.to_be_bytes()),
            Mutation::Put32(p, v) => overwrite(f, p % len, &v.to_be_bytes()),
            Mutation::PutVarint(p, v) => overwrite(f, p % len, &varint(*v)),
            Mutation::Insert(p, bytes) => {
                let at = p % (f.len() + 1);
                f.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete(p, n) => {
                let at = p % len;
                let end = (at + n).min(f.len());
                if at < end {
                    f.drain(at..end);
                }
            }
            Mutation::Truncate(n) => f.truncate(n % len),
        }
    }
}

fn interesting_i32() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(-2),
        Just(-1),
        Just(0),
        Just(1),
        Just(i32::MAX),
        Just(i32::MIN),
        Just(0x1000_0000),
        0..300i32,
        any::<i32>()
    ]
}

fn interesting_i16() -> impl Strategy<Value = i16> {
    prop_oneof![
        Just(-2i16),
        Just(-1),
        Just(0),
        Just(i16::MAX),
        0..300i16,
        any::<i16>()
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Positions are taken modulo the frame length; biasing to the body (past the fixed
    // 8-byte header prefix) happens naturally since bodies are longer.
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::SetByte(p, b)),
        (any::<usize>(), interesting_i16()).prop_map(|(p, v)| Mutation::Put16(p, v)),
        (any::<usize>(), interesting_i32()).prop_map(|(p, v)| Mutation::Put32(p, v)),
        (
            any::<usize>(),
            prop_oneof![Just(u32::MAX), Just(0), 0..300u32, any::<u32>()]
        )
            .prop_map(|(p, v)| Mutation::PutVarint(p, v)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), 1..8usize).prop_map(|(p, n)| Mutation::Delete(p, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Versions our schema accepts but kafka-protocol 0.18's request types cannot decode.
fn crate_cannot_decode(api_key: i16, version: i16) -> bool {
    matches!((api_key, version), (27, 2) | (63, 2))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn accepted_mutants_decode_with_the_crate(
        pick in any::<usize>(),
        muts in proptest::collection::vec(mutation(), 1..5),
    ) {
        let corpus = corpus();
        let mut f = corpus[pick % corpus.len()].clone();
        for m in &muts {
            m.apply(&mut f);
        }
        if let Ok(info) = kavka_wire::validate_request(&f) {
            let res = common::crate_decode(&f);
            if !crate_cannot_decode(info.api_key, info.api_version) {
                prop_assert!(res.is_ok(), "validator accepted what the crate refuses: {:?}", res.err());
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = kavka_wire::validate_request(&bytes);
    }
}
