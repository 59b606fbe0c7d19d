//! A request frame (after the 4-byte size prefix) through schema validation, the
//! `kafka-protocol` decode and, for Produce, the produce path: `kavka_fuzz_entry::request_frame`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kavka_fuzz_entry::request_frame(data));
