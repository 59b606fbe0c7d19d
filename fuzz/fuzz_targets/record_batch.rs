//! One partition's records of a Produce request through the produce path (validation,
//! decompression of every codec, record walk): `kavka_fuzz_entry::record_batch`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kavka_fuzz_entry::record_batch(data));
