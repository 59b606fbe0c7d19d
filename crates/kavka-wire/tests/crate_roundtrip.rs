//! Frames encoded by kafka-protocol are accepted: proves the embedded schemas describe the
//! same wire format as the crate, for every API and every version both support.

mod common;

use kavka_wire::{validate_request, validate_request_report};

fn check_all(frames: &[(String, Vec<u8>)]) {
    for (label, f) in frames {
        let report =
            validate_request_report(f).unwrap_or_else(|e| panic!("{label}: rejected: {e}"));
        assert_eq!(report.trailing_bytes, 0, "{label}");
        let info = validate_request(f).expect("same answer");
        assert_eq!(info, report.header);
        assert_eq!(
            info.correlation_id,
            if label.ends_with("default") { 7 } else { 9 },
            "{label}"
        );
        let (header, _) = common::crate_decode(f).unwrap_or_else(|e| panic!("{label}: crate: {e}"));
        assert_eq!(header.request_api_key, info.api_key, "{label}");
        assert_eq!(header.request_api_version, info.api_version, "{label}");
    }
}

#[test]
fn default_requests_of_every_api_and_version_are_accepted() {
    let frames = common::default_frames();
    assert!(frames.len() > 200, "only {} frames", frames.len());
    check_all(&frames);
}

#[test]
fn populated_requests_of_the_main_apis_are_accepted() {
    let frames = common::populated_frames();
    assert!(frames.len() > 80, "only {} frames", frames.len());
    check_all(&frames);
}

#[test]
fn trailing_bytes_are_tolerated_and_reported() {
    let mut f = common::frame(&common::metadata(12), 12, 1).expect("encode");
    f.extend_from_slice(&[0, 0, 0]);
    let report = validate_request_report(&f).expect("trailing bytes are not fatal");
    assert_eq!(report.trailing_bytes, 3);
}
