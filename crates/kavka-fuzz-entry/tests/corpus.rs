//! Replays every committed fuzz input (`fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`)
//! through the same entry functions the fuzz targets call, on the stable toolchain, so that
//! `cargo test --workspace` (CI) covers the corpus without `cargo fuzz`. Each input's peak heap use
//! is measured with a counting allocator and must stay under the fuzzer's `-malloc_limit_mb`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

/// Heap in use and its peak, per thread (the test harness runs tests on several threads).
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn grew(by: usize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(by);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn shrank(by: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(by)));
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are plain
// const-initialised thread locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        shrank(layout.size());
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap use of `f` at its peak, above what was in use when it started (this thread only).
fn peak_heap(f: impl FnOnce()) -> usize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    f();
    PEAK.with(Cell::get) - base
}

/// The fuzzer's `-malloc_limit_mb`: no input may come near it.
const PEAK_LIMIT: usize = 256 << 20;

/// The bound each target's inputs must keep to, tighter than [`PEAK_LIMIT`]: a record batch's
/// decompression stays within its bound, twice over (growing the output buffer briefly holds the old
/// and the new allocation), plus codec state; a request frame's decode within a multiple of the frame
/// (kavka-wire's array-count check, see the large-frame test below), plus the produce path of the
/// batch a Produce request carries.
fn peak_bound(target: &str, input_len: usize) -> usize {
    let batch = 2 * kavka_storage::batch::decompression_limit(kavka_fuzz_entry::MAX_MESSAGE_BYTES)
        + (32 << 20);
    match target {
        "request_frame" => 64 * input_len + batch,
        _ => batch,
    }
}

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
            continue;
        };
        files.extend(entries.map(|e| e.expect("directory entry").path()));
    }
    files.retain(|p| p.is_file());
    files.sort();
    files
}

/// Runs every input of `target` (at least `min_inputs` of them, so that a missing corpus fails).
fn replay(target: &str, min_inputs: usize) {
    let entry = kavka_fuzz_entry::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, f)| *f)
        .expect("known target");
    let files = inputs(target);
    let mut worst = (0, String::new());
    for file in &files {
        let data = std::fs::read(file).expect("readable corpus file");
        let peak = peak_heap(|| entry(&data));
        let bound = peak_bound(target, data.len()).min(PEAK_LIMIT);
        assert!(
            peak <= bound,
            "{}: peak heap {peak} bytes over {bound}",
            file.display()
        );
        if peak > worst.0 {
            worst = (peak, file.display().to_string());
        }
    }
    eprintln!(
        "{target}: {} inputs, largest peak heap {} bytes ({})",
        files.len(),
        worst.0,
        worst.1
    );
    assert!(
        files.len() >= min_inputs,
        "only {} {target} inputs: is fuzz/corpus missing?",
        files.len()
    );
}

#[test]
fn request_frame_corpus_replays() {
    replay("request_frame", 500);
}

#[test]
fn record_batch_corpus_replays() {
    replay("record_batch", 30);
}

#[test]
fn every_target_has_a_corpus_directory() {
    for (name, _) in kavka_fuzz_entry::TARGETS {
        assert!(
            fuzz_dir().join("corpus").join(name).is_dir(),
            "fuzz/corpus/{name} is missing"
        );
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A large but valid frame decodes to a bounded multiple of itself. DeleteGroups v2 with a million
/// empty group names (one byte each on the wire, a `StrBytes` each once decoded) is about the
/// worst ratio of decoded to wire size among the advertised APIs.
#[test]
fn decoding_a_large_valid_frame_stays_within_a_multiple_of_it() {
    let groups = 1_000_000u32;
    let mut frame = vec![0, 42, 0, 2, 0, 0, 0, 1, 0xff, 0xff, 0];
    put_uvarint(&mut frame, groups + 1);
    frame.extend(std::iter::repeat_n(1u8, groups as usize));
    frame.push(0);
    let peak = peak_heap(|| kavka_fuzz_entry::request_frame(&frame));
    let ratio = peak / frame.len();
    eprintln!(
        "{} byte frame: peak heap {peak} bytes ({ratio}x)",
        frame.len()
    );
    assert!(ratio <= 64, "decoding took {ratio} times the frame");
}
