//! apitap: passive API discovery and API-posture sensor.
//!
//! Layers, each using only those above it (see `ARCHITECTURE` in the README):
//! `config` → `capture` → `decode` → `flow` → `proto` → `analyze` →
//! `inventory` → `store` → `export` → `ship` → `engine` → `metrics` →
//! `pipeline` → `service` → `cli`.
//! Everything from `decode` to `inventory` is pure: bytes, packet time and
//! configuration in, values out. The `sensor` feature adds the I/O layers
//! (libpcap, RocksDB, threads, CLI); without it the crate builds the parsers
//! alone, which is what the fuzz targets use.

// Unsafe code only where the OS offers no safe interface: poll(2) on the
// capture handle, mmap(2) of replayed files, sysconf, and the privilege drop
// (each call commented).
#![deny(unsafe_code)]

pub mod config;
#[allow(unsafe_code)]
pub mod capture;
pub mod decode;
pub mod flow;
pub mod proto;
pub mod analyze;
pub mod inventory;
#[cfg(feature = "sensor")]
pub mod store;
pub mod export;
pub mod engine;
#[cfg(feature = "sensor")]
#[allow(unsafe_code)]
pub mod metrics;
#[cfg(feature = "sensor")]
pub mod pipeline;
#[cfg(feature = "sensor")]
#[allow(unsafe_code)]
pub mod service;
#[cfg(feature = "sensor")]
pub mod ship;
#[cfg(feature = "sensor")]
pub mod cli;
