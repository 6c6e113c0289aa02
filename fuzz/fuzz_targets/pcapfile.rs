//! Fuzz target `pcapfile`: see `tls` in `fuzz/harness.rs` for the input format.
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::pcapfile(data));
