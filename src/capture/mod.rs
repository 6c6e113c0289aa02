//! Packet sources: pcap and pcapng files (and directories of them), read by
//! apitap's own streaming reader ([`file`]) for `replay`, and live
//! interfaces through libpcap.

pub mod file;
#[cfg(feature = "sensor")]
mod sources;
#[cfg(feature = "sensor")]
pub use sources::*;
