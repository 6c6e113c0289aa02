//! Fuzz target `decode`: see `decode_frame` in `fuzz/harness.rs` for the input format.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::decode_frame(data));
