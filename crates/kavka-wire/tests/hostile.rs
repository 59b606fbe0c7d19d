//! Hostile frames through the public API: the DeleteGroups allocation bomb and friends.
//! A counting allocator proves that refusing them costs no memory proportional to what
//! they claim.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use kavka_wire::{peek_header, validate_request, FrameError};

struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts requested bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// DeleteGroups v1: header (key 42, version 1, correlation id 1, null client id) and a
/// body claiming 2^31-1 group names. kafka-protocol 0.18 would reserve ~23.6 GB for it.
const DELETE_GROUPS_BOMB: [u8; 14] = [
    0x00, 0x2a, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
];

#[test]
fn delete_groups_bomb_is_rejected_with_flat_memory() {
    // Warm up the schema registry so its one-time allocation is not counted.
    let _ = validate_request(
        &common::frame(
            &kafka_protocol::messages::DeleteGroupsRequest::default(),
            1,
            1,
        )
        .expect("encode"),
    );
    let before = ALLOCATED.load(Ordering::Relaxed);
    let res = validate_request(&DELETE_GROUPS_BOMB);
    let used = ALLOCATED.load(Ordering::Relaxed) - before;
    match res {
        Err(FrameError::Malformed { field, reason }) => {
            assert_eq!(field, "body.GroupsNames");
            assert!(reason.contains("2147483647"), "{reason}");
        }
        other => panic!("bomb not rejected: {other:?}"),
    }
    // Only the error message is allocated (other tests may allocate concurrently, so the
    // bound is loose, but nowhere near the 23.6 GB the frame asks for).
    assert!(used < 1 << 20, "allocated {used} bytes");
    let info = peek_header(&DELETE_GROUPS_BOMB).expect("header still addressable");
    assert_eq!(
        (info.api_key, info.api_version, info.correlation_id),
        (42, 1, 1)
    );
}

#[test]
fn compact_counts_claiming_billions_are_rejected() {
    // DeleteGroups v2 (flexible): null client id, no header tags, compact count 2^32-2.
    let f = [
        0, 42, 0, 2, 0, 0, 0, 5, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0,
    ];
    assert!(
        matches!(validate_request(&f), Err(FrameError::Malformed { field, .. }) if field == "body.GroupsNames")
    );
    // Same with a compact string length of billions inside a one-element array.
    let f = [
        0, 42, 0, 2, 0, 0, 0, 5, 0xff, 0xff, 0, 2, 0xff, 0xff, 0xff, 0xff, 0x0f, 0,
    ];
    assert!(
        matches!(validate_request(&f), Err(FrameError::Malformed { field, .. }) if field == "body.GroupsNames[0]")
    );
}

#[test]
fn negative_lengths_are_rejected() {
    // DeleteGroups v1 with array count -2, then -1 (not nullable here).
    for count in [-2i32, -1, i32::MIN] {
        let mut f = DELETE_GROUPS_BOMB.to_vec();
        f[10..14].copy_from_slice(&count.to_be_bytes());
        assert!(
            matches!(validate_request(&f), Err(FrameError::Malformed { .. })),
            "count {count}"
        );
    }
    // One group whose name length is -2.
    let f = [0, 42, 0, 1, 0, 0, 0, 5, 0xff, 0xff, 0, 0, 0, 1, 0xff, 0xfe];
    assert!(
        matches!(validate_request(&f), Err(FrameError::Malformed { field, .. }) if field == "body.GroupsNames[0]")
    );
}

#[test]
fn produce_records_length_must_fit() {
    let mut f = common::frame(&common::produce(9), 9, 3).expect("encode");
    assert!(validate_request(&f).is_ok());
    // The records blob is the 70 bytes of 7s; its compact length (71) precedes it.
    let pos = f
        .windows(70)
        .position(|w| w.iter().all(|&b| b == 7))
        .expect("records");
    assert_eq!(f[pos - 1], 71);
    f[pos - 1] = 0x7f; // claims 126 bytes
    assert!(
        matches!(validate_request(&f), Err(FrameError::Malformed { field, .. }) if field.ends_with("Records"))
    );
}

#[test]
fn unknown_keys_and_versions_are_typed_errors() {
    assert_eq!(validate_request(&[0, 0, 0]), Err(FrameError::TooShort));
    assert_eq!(
        validate_request(&[0x7f, 0, 0, 0, 0, 0, 0, 1]),
        Err(FrameError::UnknownApiKey(0x7f00))
    );
    assert_eq!(
        validate_request(&[0xff, 0xff, 0, 0, 0, 0, 0, 1]),
        Err(FrameError::UnknownApiKey(-1))
    );
    assert_eq!(
        validate_request(&[0, 0, 0, 2, 0, 0, 0, 1, 0xff, 0xff]),
        Err(FrameError::UnsupportedVersion {
            api_key: 0,
            version: 2
        })
    );
    assert_eq!(kavka_wire::schema_versions(0), Some((3, 13)));
    assert_eq!(kavka_wire::schema_versions(18), Some((0, 4)));
    assert_eq!(kavka_wire::schema_versions(1000), None);
}
