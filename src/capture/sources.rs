//! Capture files and directories for `replay` (read by [`super::file`]), and
//! live interfaces through libpcap.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use super::file;
use crate::decode::LinkType;

#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("{path}: no such file or directory; check the path")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot read it ({source}); check its permissions")]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a capture file apitap can read ({message}); give a pcap or pcapng file")]
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
    /// Set when reading stopped early: where and why, after `packets` packets.
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
        } else if std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()) {
            // a pipe (e.g. `tcpdump -w - | apitap replay /dev/stdin`): opening
            // it here would consume the writer's start; libpcap opens it once
            out.push(p.clone());
        } else {
            std::fs::File::open(p).map_err(|e| CaptureError::Unreadable { path: p.clone(), source: e })?;
            out.push(p.clone());
        }
    }
    Ok(Inputs { files: out, skipped })
}

/// The link type of a handle when apitap decodes it, else its number and name.
fn supported_link(dl: pcap::Linktype) -> Result<LinkType, (i32, String)> {
    let link = LinkType::from_dlt(dl.0);
    if link.is_supported() {
        Ok(link)
    } else {
        Err((dl.0, dl.get_name().unwrap_or_else(|_| "unknown".into())))
    }
}

/// A packet header's time in µs since the epoch (negative times become 0).
fn packet_time_us(h: &pcap::PacketHeader) -> u64 {
    let secs = u64::try_from(h.ts.tv_sec).unwrap_or(0);
    let usecs = u64::try_from(h.ts.tv_usec).unwrap_or(0).min(999_999);
    secs.saturating_mul(1_000_000).saturating_add(usecs)
}

/// Packets between two progress calls.
const PROGRESS_EVERY: u64 = 65_536;

/// The link type apitap decodes for a `LINKTYPE_` value, else its number and
/// name (libpcap's name for it, for the error message).
fn supported_linktype(lt: u32) -> Result<LinkType, (i32, String)> {
    supported_link(pcap::Linktype(i32::try_from(lt).unwrap_or(i32::MAX)))
}

/// Where [`replay_file`] delivers frames. Any `FnMut(link, ts_us, frame)`
/// is one; the pipeline is another, which keeps a handle on a mapped file and
/// reads payloads in place later instead of copying them.
pub trait FrameSink {
    /// One frame, with its time in µs since the epoch. `file` is the mapped
    /// file the frame lies in, when the input is one: `frame` is then a part
    /// of `file.bytes()`, which a sink may keep reading after it returns.
    fn frame(&mut self, link: LinkType, ts_us: u64, frame: &[u8], file: Option<&Arc<MappedFile>>);

    /// The lowest offset of the current mapped file the sink will still
    /// read (`u64::MAX`: none). The replay lets go of the pages before it.
    fn held_from(&mut self) -> u64 {
        u64::MAX
    }
}

impl<F: FnMut(LinkType, u64, &[u8])> FrameSink for F {
    fn frame(&mut self, link: LinkType, ts_us: u64, frame: &[u8], _file: Option<&Arc<MappedFile>>) {
        self(link, ts_us, frame);
    }
}

/// Replays one capture file (or pipe) with apitap's own reader, handing
/// every packet to `sink` and calling `progress(bytes_read)` now and then. A
/// damaged or truncated file delivers what precedes the damage and says
/// where it stopped in [`FileReport::stopped`].
pub fn replay_file<S: FrameSink + ?Sized>(path: &Path, sink: &mut S, progress: impl FnMut(u64)) -> Result<FileReport, CaptureError> {
    replay_file_with(path, true, sink, progress)
}

/// [`replay_file`] reading even a regular file by `read(2)` instead of
/// mapping it (what pipes always get; kept to compare the two in `benches/`
/// and tests).
pub fn replay_file_read<S: FrameSink + ?Sized>(path: &Path, sink: &mut S, progress: impl FnMut(u64)) -> Result<FileReport, CaptureError> {
    replay_file_with(path, false, sink, progress)
}

fn replay_file_with<S: FrameSink + ?Sized>(path: &Path, map: bool, sink: &mut S, mut progress: impl FnMut(u64)) -> Result<FileReport, CaptureError> {
    let f = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CaptureError::NotFound { path: path.to_path_buf() },
        _ => CaptureError::Unreadable { path: path.to_path_buf(), source: e },
    })?;
    let not_capture = |e: file::FileError| CaptureError::NotCapture { path: path.to_path_buf(), message: e.to_string() };
    // a regular file is read where the page cache holds it; a pipe or a file
    // that cannot be mapped through read(2)
    match MappedFile::new(&f).filter(|_| map) {
        Some(m) => {
            let m = Arc::new(m);
            let reader = file::Reader::over(Box::new(SharedBytes(Arc::clone(&m)))).map_err(not_capture)?;
            replay_records(path, reader, Some(&m), sink, &mut progress)
        }
        None => replay_records(path, file::Reader::new(f).map_err(not_capture)?, None, sink, &mut progress),
    }
}

/// A regular file mapped read-only into memory, for [`replay_file`]: records
/// are read where the page cache holds them instead of being copied out by
/// `read(2)`, and a [`FrameSink`] may keep a handle on it to read payloads
/// in place on other threads. A file that shrinks while it is replayed
/// would stop the process (SIGBUS on the pages past its new end): `replay`
/// is for finished captures (one still being written only grows, and what
/// is appended after the start is not read).
pub struct MappedFile {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is read-only for its whole life and owned by this value
// alone (unmapped in its drop, after the last handle is gone): moving it to
// another thread or reading it from several at once is sound.
unsafe impl Send for MappedFile {}
// SAFETY: see above; nothing writes through the mapping.
unsafe impl Sync for MappedFile {}

impl MappedFile {
    /// The whole of `f` mapped, if it is a non-empty regular file the system maps.
    fn new(f: &std::fs::File) -> Option<MappedFile> {
        use std::os::fd::AsRawFd;
        let meta = f.metadata().ok()?;
        let len = usize::try_from(meta.len()).ok()?;
        if !meta.is_file() || len == 0 {
            return None;
        }
        // SAFETY: asks for a new private read-only mapping of `len` bytes of an
        // open file; nothing is accessed here and failure is checked below.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_PRIVATE, f.as_raw_fd(), 0) };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(MappedFile { ptr, len })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr + len` is a live read-only mapping that this value
        // owns and unmaps only when dropped, after every borrow of it.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }

    /// Where `part` lies in the file, if it is a part of [`Self::bytes`].
    pub fn offset_of(&self, part: &[u8]) -> Option<u64> {
        let start = (part.as_ptr() as usize).checked_sub(self.ptr as usize)?;
        let end = start.checked_add(part.len())?;
        if end <= self.len {
            u64::try_from(start).ok()
        } else {
            None
        }
    }

    /// Unmaps the pages between offsets `from` and `end` (rounded down to
    /// pages) from the process (they stay in the page cache): a replay's
    /// resident memory does not grow with the file. Reading them again faults
    /// them back in from the file, unchanged (and such a page, behind the
    /// next release's start, stays mapped until the replay ends: only a
    /// pcapng block longer than the release lag is read that way). Returns
    /// where the next release starts (the rounded `end`, or `from` when
    /// nothing was released).
    fn release(&self, from: u64, end: u64) -> u64 {
        let page = 4096usize;
        let from_at = usize::try_from(from).unwrap_or(usize::MAX).min(self.len) / page * page;
        let end_at = usize::try_from(end).unwrap_or(usize::MAX).min(self.len) / page * page;
        if end_at <= from_at {
            return from;
        }
        // SAFETY: `ptr + from_at .. ptr + end_at` lies within the live private
        // read-only mapping made in `new` (`from_at < end_at ≤ len`, both
        // page-aligned from the page-aligned start); MADV_DONTNEED on clean
        // file-backed pages only drops them from the process: a later read
        // faults them in again from the file.
        unsafe { libc::madvise(self.ptr.cast::<u8>().add(from_at).cast(), end_at - from_at, libc::MADV_DONTNEED) };
        end_at as u64
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping made in `new`; the last handle is gone,
        // so nothing borrows it any more.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// A handle on a [`MappedFile`] as the bytes [`file::Reader::over`] reads.
struct SharedBytes(Arc<MappedFile>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// Bytes replayed between two releases of the pages read ([`MappedFile::release`]).
const RELEASE_EVERY_BYTES: u64 = 4 << 20;

/// Bytes behind the reader kept mapped: pcapng reads a block again just
/// after consuming it. A longer block's start, let go of already, is read
/// back from the file (a page fault, not an error).
const RELEASE_LAG_BYTES: u64 = 1 << 20;

/// The record loop of [`replay_file`].
fn replay_records<R: std::io::Read, S: FrameSink + ?Sized>(
    path: &Path,
    mut reader: file::Reader<R>,
    mapped: Option<&Arc<MappedFile>>,
    sink: &mut S,
    progress: &mut impl FnMut(u64),
) -> Result<FileReport, CaptureError> {
    let mut released = 0u64;
    // the file before this offset is no longer mapped in (see `MappedFile::release`)
    let mut unmapped = 0u64;
    // the file's (first interface's) link type must be one apitap decodes;
    // packets of further pcapng interfaces with other link types are decoded
    // as their own link type says (the decoder counts those it cannot read)
    let first = reader.link().map(supported_linktype).transpose().map_err(|(dlt, name)| CaptureError::UnsupportedLink { path: path.to_path_buf(), dlt, name })?;
    let mut report = FileReport {
        path: path.to_path_buf(),
        link_type: first.map_or("none", LinkType::name),
        packets: 0,
        bytes: 0,
        stopped: None,
    };
    let mut cached: Option<(u32, LinkType)> = None;
    loop {
        match reader.next_packet() {
            Ok(Some(pkt)) => {
                let link = match cached {
                    Some((lt, l)) if lt == pkt.link => l,
                    _ => {
                        let l = LinkType::from_dlt(i32::try_from(pkt.link).unwrap_or(i32::MAX));
                        cached = Some((pkt.link, l));
                        l
                    }
                };
                report.packets += 1;
                report.bytes += pkt.data.len() as u64;
                sink.frame(link, pkt.ts_us, pkt.data, mapped);
                if report.packets % PROGRESS_EVERY == 0 {
                    progress(reader.position());
                }
                if let Some(m) = mapped {
                    if reader.position().saturating_sub(released) >= RELEASE_EVERY_BYTES {
                        released = reader.position();
                        // what the sink still reads stays mapped; what was
                        // let go of before is not walked again
                        unmapped = m.release(unmapped, released.saturating_sub(RELEASE_LAG_BYTES).min(sink.held_from()));
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                report.stopped = Some(e.to_string());
                break;
            }
        }
    }
    if report.link_type == "none" {
        if let Some(l) = cached {
            report.link_type = l.1.name();
        }
    }
    progress(reader.position());
    Ok(report)
}

/// Replays one capture file through libpcap's offline reader (the reader
/// `replay` used before [`replay_file`]; kept to check the two agree and to
/// compare their speed in `benches/`).
pub fn replay_file_libpcap(path: &Path, mut on_packet: impl FnMut(LinkType, u64, &[u8])) -> Result<FileReport, CaptureError> {
    let mut cap = pcap::Capture::from_file(path).map_err(|e| {
        if !path.exists() {
            CaptureError::NotFound { path: path.to_path_buf() }
        } else {
            CaptureError::NotCapture { path: path.to_path_buf(), message: e.to_string() }
        }
    })?;
    let link = supported_link(cap.get_datalink())
        .map_err(|(dlt, name)| CaptureError::UnsupportedLink { path: path.to_path_buf(), dlt, name })?;
    let mut report =
        FileReport { path: path.to_path_buf(), link_type: link.name(), packets: 0, bytes: 0, stopped: None };
    loop {
        match cap.next_packet() {
            Ok(pkt) => {
                report.packets += 1;
                report.bytes += pkt.data.len() as u64;
                on_packet(link, packet_time_us(pkt.header), pkt.data);
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => {
                report.stopped = Some(e.to_string());
                break;
            }
        }
    }
    Ok(report)
}

/// Errors of live capture.
#[derive(Debug, Error)]
pub enum LiveError {
    #[error("interface {iface}: cannot capture ({message}); check the name (`ip link` lists interfaces) and run as root or with CAP_NET_RAW and CAP_NET_ADMIN")]
    Open { iface: String, message: String },
    #[error("interface {iface}: BPF filter {filter:?} is not valid ({message}); check it with `tcpdump -d`")]
    Filter { iface: String, filter: String, message: String },
    #[error("interface {iface}: link type {dlt} ({name}) is not supported; capture on an Ethernet, cooked or raw-IP interface")]
    UnsupportedLink { iface: String, dlt: i32, name: String },
    #[error("interface {iface}: capture failed ({message}); the interface may have gone down")]
    Read { iface: String, message: String },
}

/// Settings of a live capture handle.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub snaplen: u32,
    pub promiscuous: bool,
    pub buffer_bytes: u32,
    pub timeout_ms: u32,
    pub immediate: bool,
    pub filter: String,
}

/// Kernel and interface counters of a live handle (libpcap `pcap_stats`).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LiveStats {
    /// Packets the kernel passed the filter.
    pub received: u64,
    /// Packets dropped because the kernel buffer was full.
    pub kernel_dropped: u64,
    /// Packets the interface or its driver dropped.
    pub interface_dropped: u64,
}

/// What one call of [`LiveCapture::next`] saw.
pub enum LiveNext {
    Packet,
    /// The read timeout passed without a packet.
    Idle,
}

/// A live capture handle on one interface.
pub struct LiveCapture {
    cap: pcap::Capture<pcap::Active>,
    fd: std::os::fd::RawFd,
    wait_ms: i32,
    link: LinkType,
    iface: String,
    /// pcap_stats counters are 32-bit and wrap; these keep 64-bit totals.
    last: (u32, u32, u32),
    totals: LiveStats,
}

impl LiveCapture {
    /// Opens `iface` (needs CAP_NET_RAW and CAP_NET_ADMIN) and applies the filter.
    pub fn open(iface: &str, o: &LiveOptions) -> Result<LiveCapture, LiveError> {
        let open_err = |e: pcap::Error| LiveError::Open { iface: iface.to_string(), message: e.to_string() };
        let inactive = pcap::Capture::from_device(iface).map_err(open_err)?;
        let mut cap = inactive
            .snaplen(i32::try_from(o.snaplen).unwrap_or(i32::MAX))
            .promisc(o.promiscuous)
            .buffer_size(i32::try_from(o.buffer_bytes).unwrap_or(i32::MAX))
            .timeout(i32::try_from(o.timeout_ms).unwrap_or(1000))
            .immediate_mode(o.immediate)
            .open()
            .map_err(open_err)?;
        if !o.filter.is_empty() {
            cap.filter(&o.filter, true).map_err(|e| LiveError::Filter {
                iface: iface.to_string(),
                filter: o.filter.clone(),
                message: e.to_string(),
            })?;
        }
        let link = supported_link(cap.get_datalink())
            .map_err(|(dlt, name)| LiveError::UnsupportedLink { iface: iface.to_string(), dlt, name })?;
        // Non-blocking, and waited on with poll(2): libpcap's read timeout on
        // Linux does not fire while the link is silent, and the capture loop
        // must look at signals and timers on a silent link too.
        let cap = cap.setnonblock().map_err(open_err)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&cap);
        let wait_ms = i32::try_from(o.timeout_ms).unwrap_or(1000);
        Ok(LiveCapture { cap, fd, wait_ms, link, iface: iface.to_string(), last: (0, 0, 0), totals: LiveStats::default() })
    }

    pub fn interface(&self) -> &str {
        &self.iface
    }

    pub fn link_name(&self) -> &'static str {
        self.link.name()
    }

    /// Hands the next packet to `on_packet`, or waits for one at most the read
    /// timeout and says `Idle`.
    pub fn next(&mut self, on_packet: impl FnOnce(LinkType, u64, &[u8])) -> Result<LiveNext, LiveError> {
        match self.cap.next_packet() {
            Ok(pkt) => {
                on_packet(self.link, packet_time_us(pkt.header), pkt.data);
                Ok(LiveNext::Packet)
            }
            Err(pcap::Error::TimeoutExpired) => {
                let mut pfd = libc::pollfd { fd: self.fd, events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd; the descriptor belongs to the open handle.
                // EINTR (a signal) just returns early, which is what the caller wants.
                unsafe { libc::poll(&mut pfd, 1, self.wait_ms) };
                Ok(LiveNext::Idle)
            }
            Err(e) => Err(LiveError::Read { iface: self.iface.clone(), message: e.to_string() }),
        }
    }

    /// Kernel and interface counters so far (64-bit, across 32-bit wraps).
    pub fn stats(&mut self) -> LiveStats {
        if let Ok(s) = self.cap.stats() {
            let now = (s.received, s.dropped, s.if_dropped);
            self.totals.received += u64::from(now.0.wrapping_sub(self.last.0));
            self.totals.kernel_dropped += u64::from(now.1.wrapping_sub(self.last.1));
            self.totals.interface_dropped += u64::from(now.2.wrapping_sub(self.last.2));
            self.last = now;
        }
        self.totals
    }
}
