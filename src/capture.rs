//! Packet sources: pcap and pcapng files (and directories of them) through
//! libpcap's offline reader.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::decode::LinkType;

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("{path}: no such file or directory; check the path")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot read it ({source}); check its permissions")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a capture file libpcap can read ({message}); give a pcap or pcapng file")]
    NotCapture { path: PathBuf, message: String },
    #[error("{path}: link type {dlt} ({name}) is not supported; capture on Ethernet, Linux cooked (SLL/SLL2), raw IP, NFLOG or loopback, or convert the file with editcap")]
    UnsupportedLink { path: PathBuf, dlt: i32, name: String },
    #[error("{path}: the directory holds no pcap or pcapng files to replay")]
    EmptyDir { path: PathBuf },
}

/// What was read from one file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub link_type: &'static str,
    pub packets: u64,
    pub bytes: u64,
    /// Set when reading stopped early: libpcap's message, after `packets` packets.
    pub stopped: Option<String>,
}

/// Whether a file starts with a pcap (either byte order, µs or ns) or pcapng magic number.
pub fn has_capture_magic(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    let ok = std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic)).is_ok();
    ok && matches!(
        u32::from_le_bytes(magic),
        0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 | 0x0a0d_0d0a
    )
}

/// What [`expand_inputs`] found.
#[derive(Debug, Default)]
pub struct Inputs {
    pub files: Vec<PathBuf>,
    /// Files in directories that are not captures (skipped, with a notice).
    pub skipped: Vec<PathBuf>,
}

/// Expands the command-line inputs: files stay, directories become their
/// regular files (not hidden ones) in name order, skipping files that are not
/// captures. Every path is checked first so that a typo fails before anything
/// is replayed.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Inputs, CaptureError> {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for p in inputs {
        let meta = std::fs::metadata(p).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CaptureError::NotFound { path: p.clone() },
            _ => CaptureError::Unreadable { path: p.clone(), source: e },
        })?;
        if meta.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| CaptureError::Unreadable { path: p.clone(), source: e })?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(Result::ok)
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .collect();
            files.sort();
            let (caps, other): (Vec<PathBuf>, Vec<PathBuf>) = files.into_iter().partition(|f| has_capture_magic(f));
            if caps.is_empty() {
                return Err(CaptureError::EmptyDir { path: p.clone() });
            }
            out.extend(caps);
            skipped.extend(other);
        } else {
            std::fs::File::open(p).map_err(|e| CaptureError::Unreadable { path: p.clone(), source: e })?;
            out.push(p.clone());
        }
    }
    Ok(Inputs { files: out, skipped })
}

/// Per-record overhead used to estimate file progress (pcap record header).
const RECORD_OVERHEAD: u64 = 16;

/// Replays one capture file, calling `on_packet(link, ts_us, frame)` for every
/// packet and `progress(bytes_read_estimate)` now and then.
pub fn replay_file(
    path: &Path,
    mut on_packet: impl FnMut(LinkType, u64, &[u8]),
    mut progress: impl FnMut(u64),
) -> Result<FileReport, CaptureError> {
    let mut cap = pcap::Capture::from_file(path).map_err(|e| {
        if !path.exists() {
            CaptureError::NotFound { path: path.to_path_buf() }
        } else {
            CaptureError::NotCapture { path: path.to_path_buf(), message: e.to_string() }
        }
    })?;
    let dl = cap.get_datalink();
    let link = LinkType::from_dlt(dl.0);
    if !link.is_supported() {
        let name = dl.get_name().unwrap_or_else(|_| "unknown".into());
        return Err(CaptureError::UnsupportedLink { path: path.to_path_buf(), dlt: dl.0, name });
    }
    let mut report =
        FileReport { path: path.to_path_buf(), link_type: link.name(), packets: 0, bytes: 0, stopped: None };
    let mut read: u64 = 24;
    loop {
        match cap.next_packet() {
            Ok(pkt) => {
                let h = pkt.header;
                let secs = u64::try_from(h.ts.tv_sec).unwrap_or(0);
                let usecs = u64::try_from(h.ts.tv_usec).unwrap_or(0).min(999_999);
                let ts_us = secs.saturating_mul(1_000_000).saturating_add(usecs);
                report.packets += 1;
                report.bytes += pkt.data.len() as u64;
                read += pkt.data.len() as u64 + RECORD_OVERHEAD;
                on_packet(link, ts_us, pkt.data);
                if report.packets % 65_536 == 0 {
                    progress(read);
                }
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                report.stopped = Some(e.to_string());
                break;
            }
        }
    }
    progress(read);
    Ok(report)
}
