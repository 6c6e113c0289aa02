//! A streaming reader of pcap and pcapng capture files (or pipes), for
//! `replay`: one large `read(2)` fills a buffer of many records, and each
//! packet is handed out as a view into it — no per-packet system call, copy
//! or allocation. Every header field is hostile: lengths are checked against
//! what was read and against [`MAX_RECORD_BYTES`], and a damaged file stops
//! with a [`FileError`] that says where, after the packets before it were
//! delivered.
//!
//! pcap: both byte orders, microsecond and nanosecond magic numbers.
//! pcapng: several sections (each with its own byte order) and interfaces
//! (each with its own link type, `if_tsresol` and `if_tsoffset`); Enhanced,
//! Simple and the obsolete Packet blocks carry packets; every other block is
//! skipped without being buffered whole.
//!
//! A whole file already in memory (a mapped file: see
//! `capture::sources`) is read in place with [`Reader::over`], without the
//! copy `read(2)` makes.

#![deny(unsafe_code)]
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used))]

use std::io::Read;

use thiserror::Error;

/// Largest packet record (or pcapng block that must be read whole) accepted.
/// libpcap's own ceiling for a captured length is 256 KiB; pcapng option
/// blocks may be longer. A record over this stops the file with an error.
pub const MAX_RECORD_BYTES: usize = 16 << 20;
/// Bytes asked of the source per `read(2)` (the buffer's size at rest).
pub const READ_BYTES: usize = 1 << 20;
/// Interfaces remembered per pcapng section.
pub const MAX_INTERFACES: usize = 4096;

#[derive(Debug, Error)]
pub enum FileError {
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a pcap or pcapng file (it starts with {0:02x?})")]
    NotCapture(Vec<u8>),
    #[error("the file is empty")]
    Empty,
    #[error("truncated at byte {offset}: a {what} of {needed} bytes, but the file ends after {got}")]
    Truncated { offset: u64, what: &'static str, needed: u64, got: u64 },
    #[error("damaged at byte {offset}: {reason}")]
    Damaged { offset: u64, reason: String },
}

/// One packet: the link type of its interface (a `LINKTYPE_` value), its
/// time in µs since the epoch, and the captured bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub link: u32,
    pub ts_us: u64,
    pub data: &'a [u8],
}

/// Timestamp unit of a pcapng interface.
#[derive(Clone, Copy, Debug)]
enum Resolution {
    /// 10^-n seconds.
    Decimal(u8),
    /// 2^-n seconds.
    Binary(u8),
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    link: u32,
    snaplen: u32,
    resolution: Resolution,
    offset_secs: i64,
}

#[derive(Debug)]
enum Format {
    Pcap { big_endian: bool, nanos: bool, link: u32 },
    Pcapng { big_endian: bool, interfaces: Vec<Interface> },
}

/// The bytes a [`Reader`] reads from.
enum Buf {
    /// Filled from the source by `read(2)`.
    Read(Vec<u8>),
    /// The whole input, in memory already.
    Whole(Box<dyn AsRef<[u8]> + Send>),
}

impl Buf {
    fn bytes(&self) -> &[u8] {
        match self {
            Buf::Read(v) => v,
            Buf::Whole(b) => (**b).as_ref(),
        }
    }
}

/// A pcap/pcapng reader over any byte source (a file, a pipe), or over a
/// whole file in memory.
pub struct Reader<R: Read> {
    src: R,
    buf: Buf,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    offset: u64,
    format: Format,
    /// The first link type (pcap header or first pcapng interface).
    first_link: Option<u32>,
    eof: bool,
}

/// Bytes past a record's start that decoding its frame reads (record
/// header, Ethernet, IPv4 and TCP with options); prefetched with it.
const NEXT_HEADERS_BYTES: usize = 16 + 14 + 20 + 32;
/// How far ahead of the record just read the file is prefetched, a line at
/// a time: the first touch of the bytes that workers read in place is then
/// not a wait for memory (8 KiB measured the same).
const PREFETCH_AHEAD: usize = 4096;

/// Asks the processor to start loading the cache line that holds `b[at]`
/// (nothing when `at` is past the end, or on other architectures). A mapped
/// file's records are read once, far apart: without this, every record
/// header is a wait for memory.
#[inline]
#[allow(unsafe_code)]
pub(crate) fn prefetch(b: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = b.get(at) {
        // SAFETY: a prefetch is a hint that reads nothing into the program
        // and never faults; its address is that of a live byte of `b`, and
        // SSE is part of every x86-64 processor.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(std::ptr::from_ref(p).cast::<i8>()) };
    }
}

/// Asks the processor to start loading the cache line that holds `v`.
#[inline]
#[allow(unsafe_code)]
pub(crate) fn prefetch_value<T>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as in `prefetch`: a hint on the address of a live value.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(std::ptr::from_ref(v).cast::<i8>())
    };
}

fn u16_at(b: &[u8], at: usize, big: bool) -> Option<u16> {
    let a: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(if big { u16::from_be_bytes(a) } else { u16::from_le_bytes(a) })
}

fn u32_at(b: &[u8], at: usize, big: bool) -> Option<u32> {
    let a: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if big { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) })
}

/// LINKTYPE_ value of a pcap header's link field (the upper bits carry FCS
/// information, as libpcap's `LT_LINKTYPE` strips).
fn pcap_link(raw: u32) -> u32 {
    raw & 0x03FF_FFFF
}

impl Reader<std::io::Empty> {
    /// A reader of a whole file in memory (a mapped file): records are read
    /// where they lie.
    pub fn over(whole: Box<dyn AsRef<[u8]> + Send>) -> Result<Reader<std::io::Empty>, FileError> {
        Reader::start(std::io::empty(), Buf::Whole(whole))
    }
}

impl<R: Read> Reader<R> {
    /// Reads the file header (and, for pcapng, the first section's interfaces
    /// as they come). Fails on an empty file or an unknown magic number.
    pub fn new(src: R) -> Result<Reader<R>, FileError> {
        Reader::start(src, Buf::Read(vec![0; READ_BYTES]))
    }

    /// A reader of `buf` (empty, to be filled from `src`; or whole), past the file header.
    fn start(src: R, buf: Buf) -> Result<Reader<R>, FileError> {
        // a whole input is all there: read to its end, nothing more to come
        let (end, eof) = match &buf {
            Buf::Read(_) => (0, false),
            Buf::Whole(b) => ((**b).as_ref().len(), true),
        };
        let mut r = Reader { src, buf, start: 0, end, offset: 0, format: Format::Pcap { big_endian: false, nanos: false, link: 0 }, first_link: None, eof };
        if !r.fill(4)? {
            return Err(if r.end == 0 { FileError::Empty } else { FileError::NotCapture(r.unread().to_vec()) });
        }
        let head = r.unread();
        let magic_le = u32_at(head, 0, false).unwrap_or(0);
        match magic_le {
            0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1 => {
                if !r.fill(24)? {
                    return Err(r.truncated("pcap file header", 24));
                }
                let h = r.unread();
                let big_endian = matches!(magic_le, 0xd4c3_b2a1 | 0x4d3c_b2a1);
                let nanos = matches!(magic_le, 0xa1b2_3c4d | 0x4d3c_b2a1);
                let link = pcap_link(u32_at(h, 20, big_endian).unwrap_or(0));
                r.format = Format::Pcap { big_endian, nanos, link };
                r.first_link = Some(link);
                r.consume(24);
            }
            0x0a0d_0d0a => {
                // the section header is read as the first block of next()
                r.format = Format::Pcapng { big_endian: false, interfaces: Vec::new() };
                r.read_leading_pcapng_blocks()?;
            }
            _ => return Err(FileError::NotCapture(head.get(..4).unwrap_or(head).to_vec())),
        }
        Ok(r)
    }

    /// The link type of the file (pcap) or of its first interface (pcapng),
    /// once known; `None` for a pcapng file without interfaces before its first packet.
    pub fn link(&self) -> Option<u32> {
        self.first_link
    }

    /// Bytes consumed so far (the offset of the next record).
    pub fn position(&self) -> u64 {
        self.offset
    }

    fn unread(&self) -> &[u8] {
        self.buf.bytes().get(self.start..self.end).unwrap_or(&[])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.offset += n as u64;
    }

    fn truncated(&self, what: &'static str, needed: usize) -> FileError {
        FileError::Truncated { offset: self.offset, what, needed: needed as u64, got: (self.end - self.start) as u64 }
    }

    /// Makes at least `need` unread bytes available; `false` when the source
    /// ends first (what it had stays unread).
    fn fill(&mut self, need: usize) -> Result<bool, FileError> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        let Buf::Read(buf) = &mut self.buf else {
            // the whole input is there: what is not, never will be
            return Ok(false);
        };
        if self.start > 0 {
            buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if buf.len() < need {
            buf.resize(need, 0);
        } else if buf.len() > READ_BYTES && need <= READ_BYTES {
            // give back what one huge record took
            buf.truncate(READ_BYTES.max(self.end));
            buf.shrink_to(READ_BYTES.max(self.end));
        }
        while self.end < need {
            if self.eof {
                return Ok(false);
            }
            let Some(room) = buf.get_mut(self.end..) else { return Ok(false) };
            match self.src.read(room) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(FileError::Io(e)),
            }
        }
        Ok(true)
    }

    /// Skips `n` bytes without holding them all.
    fn skip(&mut self, mut n: u64) -> Result<bool, FileError> {
        loop {
            let have = (self.end - self.start) as u64;
            let take = have.min(n);
            self.consume(usize::try_from(take).unwrap_or(usize::MAX));
            n -= take;
            if n == 0 {
                return Ok(true);
            }
            if !self.fill(1)? {
                return Ok(false);
            }
        }
    }

    /// The next packet, `None` at the end of the file. After an error the
    /// reader should not be used again.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, FileError> {
        match self.format {
            Format::Pcap { big_endian, nanos, link } => self.next_pcap(big_endian, nanos, link),
            Format::Pcapng { .. } => self.next_pcapng(),
        }
    }

    fn next_pcap(&mut self, big: bool, nanos: bool, link: u32) -> Result<Option<Packet<'_>>, FileError> {
        if !self.fill(16)? {
            return if self.start == self.end { Ok(None) } else { Err(self.truncated("record header", 16)) };
        }
        let h = self.unread();
        let secs = u32_at(h, 0, big).unwrap_or(0);
        let frac = u32_at(h, 4, big).unwrap_or(0);
        let caplen = u32_at(h, 8, big).unwrap_or(0) as usize;
        if caplen > MAX_RECORD_BYTES {
            return Err(FileError::Damaged {
                offset: self.offset,
                reason: format!("a record says it holds {caplen} bytes, over the {MAX_RECORD_BYTES}-byte limit; the file is corrupt from here"),
            });
        }
        if !self.fill(16 + caplen)? {
            return Err(self.truncated("packet record", 16 + caplen));
        }
        let usecs = if nanos { frac / 1000 } else { frac.min(999_999) };
        let ts_us = u64::from(secs) * 1_000_000 + u64::from(usecs);
        let at = self.start + 16;
        self.start += 16 + caplen;
        self.offset += (16 + caplen) as u64;
        let bytes = self.buf.bytes();
        // the next record's header and the frame headers behind it load
        // while this packet is decoded
        prefetch(bytes, self.start);
        prefetch(bytes, self.start + NEXT_HEADERS_BYTES);
        // and the bytes of this record's length, PREFETCH_AHEAD further on
        let mut ahead = at - 16 + PREFETCH_AHEAD;
        while ahead < self.start + PREFETCH_AHEAD {
            prefetch(bytes, ahead);
            ahead += 64;
        }
        let data = bytes.get(at..at + caplen).unwrap_or(&[]);
        Ok(Some(Packet { link, ts_us, data }))
    }

    /// Reads pcapng blocks up to the first packet block, so that the first
    /// interface's link type is known before the first packet.
    fn read_leading_pcapng_blocks(&mut self) -> Result<(), FileError> {
        while self.first_link.is_none() {
            match self.pcapng_block_header()? {
                None => return Ok(()),
                Some((2 | 3 | 6, _, _)) => return Ok(()),
                Some((kind, len, big)) => self.pcapng_control_block(kind, len, big)?,
            }
        }
        Ok(())
    }

    /// Type and total length of the next block (unread), `None` at the end.
    /// A section header sets the byte order for what follows.
    fn pcapng_block_header(&mut self) -> Result<Option<(u32, usize, bool)>, FileError> {
        if !self.fill(12)? {
            return if self.start == self.end { Ok(None) } else { Err(self.truncated("pcapng block header", 12)) };
        }
        let h = self.unread();
        let Format::Pcapng { big_endian, .. } = self.format else { return Ok(None) };
        let mut big = big_endian;
        if u32_at(h, 0, false) == Some(0x0a0d_0d0a) {
            big = match u32_at(h, 8, false) {
                Some(0x1a2b_3c4d) => false,
                Some(0x4d3c_2b1a) => true,
                _ => return Err(FileError::Damaged { offset: self.offset, reason: "a pcapng section header without a byte-order magic".into() }),
            };
        }
        let kind = u32_at(h, 0, big).unwrap_or(0);
        let len = u32_at(h, 4, big).unwrap_or(0) as usize;
        if len < 12 || len % 4 != 0 {
            return Err(FileError::Damaged { offset: self.offset, reason: format!("a pcapng block of type {kind:#x} says it is {len} bytes long (at least 12, a multiple of 4)") });
        }
        Ok(Some((kind, len, big)))
    }

    /// Section headers and interface descriptions are read whole; any other
    /// non-packet block is skipped.
    fn pcapng_control_block(&mut self, kind: u32, len: usize, big: bool) -> Result<(), FileError> {
        match kind {
            0x0a0d_0d0a | 1 => {
                if len > MAX_RECORD_BYTES {
                    return Err(FileError::Damaged { offset: self.offset, reason: format!("a pcapng header block of {len} bytes, over the {MAX_RECORD_BYTES}-byte limit") });
                }
                if !self.fill(len)? {
                    return Err(self.truncated("pcapng block", len));
                }
                let block = self.unread().get(..len).unwrap_or(&[]);
                if kind == 1 {
                    let iface = parse_idb(block, big).ok_or_else(|| FileError::Damaged { offset: self.offset, reason: "a pcapng interface description shorter than its fields".into() })?;
                    if self.first_link.is_none() {
                        self.first_link = Some(iface.link);
                    }
                    if let Format::Pcapng { interfaces, .. } = &mut self.format {
                        if interfaces.len() >= MAX_INTERFACES {
                            return Err(FileError::Damaged { offset: self.offset, reason: format!("more than {MAX_INTERFACES} interfaces in one pcapng section") });
                        }
                        interfaces.push(iface);
                    }
                } else {
                    self.format = Format::Pcapng { big_endian: big, interfaces: Vec::new() };
                }
                self.consume(len);
            }
            _ => {
                if !self.skip(len as u64)? {
                    return Err(FileError::Truncated { offset: self.offset, what: "pcapng block", needed: len as u64, got: 0 });
                }
            }
        }
        Ok(())
    }

    fn next_pcapng(&mut self) -> Result<Option<Packet<'_>>, FileError> {
        loop {
            let Some((kind, len, big)) = self.pcapng_block_header()? else { return Ok(None) };
            if !matches!(kind, 2 | 3 | 6) {
                self.pcapng_control_block(kind, len, big)?;
                continue;
            }
            if len > MAX_RECORD_BYTES {
                return Err(FileError::Damaged { offset: self.offset, reason: format!("a pcapng packet block of {len} bytes, over the {MAX_RECORD_BYTES}-byte limit; the file is corrupt from here") });
            }
            if !self.fill(len)? {
                return Err(self.truncated("pcapng packet block", len));
            }
            let at = self.offset;
            let Format::Pcapng { interfaces, .. } = &self.format else { return Ok(None) };
            let block = self.buf.bytes().get(self.start..self.start + len).unwrap_or(&[]);
            let parsed = parse_packet_block(block, kind, big, interfaces);
            self.start += len;
            self.offset += len as u64;
            let (iface, ts, data) = parsed.map_err(|reason| FileError::Damaged { offset: at, reason })?;
            if self.first_link.is_none() {
                self.first_link = Some(iface.link);
            }
            let Some(data) = self.buf.bytes().get(self.start - len..self.start).and_then(|b| b.get(data.0..data.0 + data.1)) else {
                return Err(FileError::Damaged { offset: at, reason: "packet data outside its block".into() });
            };
            return Ok(Some(Packet { link: iface.link, ts_us: ts, data }));
        }
    }
}

/// An Interface Description Block: link type, snap length, `if_tsresol` (9)
/// and `if_tsoffset` (14).
fn parse_idb(block: &[u8], big: bool) -> Option<Interface> {
    let link = u32::from(u16_at(block, 8, big)?);
    let snaplen = u32_at(block, 12, big)?;
    let mut iface = Interface { link, snaplen, resolution: Resolution::Decimal(6), offset_secs: 0 };
    let opts_end = block.len().saturating_sub(4);
    let mut at = 16;
    while at + 4 <= opts_end {
        let code = u16_at(block, at, big)?;
        let olen = usize::from(u16_at(block, at + 2, big)?);
        let value = block.get(at + 4..(at + 4 + olen).min(opts_end))?;
        match (code, value) {
            (0, _) => break,
            (9, [r, ..]) => {
                iface.resolution = if r & 0x80 != 0 { Resolution::Binary(r & 0x7f) } else { Resolution::Decimal(*r) };
            }
            (14, v) if v.len() >= 8 => {
                let a: [u8; 8] = v.get(..8)?.try_into().ok()?;
                iface.offset_secs = if big { i64::from_be_bytes(a) } else { i64::from_le_bytes(a) };
            }
            _ => {}
        }
        at += 4 + olen.div_ceil(4) * 4;
    }
    Some(iface)
}

/// Microseconds since the epoch of a pcapng timestamp in `res` units.
fn pcapng_time_us(raw: u64, res: Resolution, offset_secs: i64) -> u64 {
    let us: u128 = match res {
        Resolution::Decimal(n) if n >= 6 => u128::from(raw) / 10u128.saturating_pow(u32::from(n) - 6),
        Resolution::Decimal(n) => u128::from(raw).saturating_mul(10u128.pow(6 - u32::from(n))),
        Resolution::Binary(n) if n < 64 => u128::from(raw).saturating_mul(1_000_000) >> n,
        Resolution::Binary(_) => 0,
    };
    let us = u64::try_from(us).unwrap_or(u64::MAX);
    if offset_secs >= 0 {
        us.saturating_add(offset_secs.unsigned_abs().saturating_mul(1_000_000))
    } else {
        us.saturating_sub(offset_secs.unsigned_abs().saturating_mul(1_000_000))
    }
}

/// The interface, time and (start, length) of the data within the block of
/// an Enhanced (6), Simple (3) or obsolete Packet (2) block.
fn parse_packet_block(block: &[u8], kind: u32, big: bool, interfaces: &[Interface]) -> Result<(Interface, u64, (usize, usize)), String> {
    let short = || format!("a pcapng block of type {kind} shorter than its fields");
    let body_end = block.len().saturating_sub(4);
    let iface_of = |id: u32| {
        interfaces.get(id as usize).copied().ok_or_else(|| format!("a packet names interface {id}, but the section describes {}", interfaces.len()))
    };
    match kind {
        3 => {
            let iface = iface_of(0)?;
            let orig = u32_at(block, 8, big).ok_or_else(short)? as usize;
            let mut caplen = orig.min(body_end.saturating_sub(12));
            if iface.snaplen != 0 {
                caplen = caplen.min(iface.snaplen as usize);
            }
            Ok((iface, 0, (12, caplen)))
        }
        _ => {
            let (id, ts_at, len_at, data_at) = if kind == 6 {
                (u32_at(block, 8, big).ok_or_else(short)?, 12, 20, 28)
            } else {
                (u32::from(u16_at(block, 8, big).ok_or_else(short)?), 12, 20, 28)
            };
            let iface = iface_of(id)?;
            let hi = u32_at(block, ts_at, big).ok_or_else(short)?;
            let lo = u32_at(block, ts_at + 4, big).ok_or_else(short)?;
            let caplen = u32_at(block, len_at, big).ok_or_else(short)? as usize;
            if data_at + caplen > body_end {
                return Err(format!("a packet of {caplen} bytes in a block of {} bytes", block.len()));
            }
            let ts = pcapng_time_us((u64::from(hi) << 32) | u64::from(lo), iface.resolution, iface.offset_secs);
            Ok((iface, ts, (data_at, caplen)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_le(nanos: bool, link: u32, recs: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut v = Vec::new();
        v.extend_from_slice(&magic.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&link.to_le_bytes());
        for (s, f, d) in recs {
            v.extend_from_slice(&s.to_le_bytes());
            v.extend_from_slice(&f.to_le_bytes());
            v.extend_from_slice(&(d.len() as u32).to_le_bytes());
            v.extend_from_slice(&(d.len() as u32).to_le_bytes());
            v.extend_from_slice(d);
        }
        v
    }

    fn all<R: Read>(r: &mut Reader<R>) -> (Vec<(u32, u64, Vec<u8>)>, Option<FileError>) {
        let mut out = Vec::new();
        loop {
            match r.next_packet() {
                Ok(Some(p)) => out.push((p.link, p.ts_us, p.data.to_vec())),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    /// A reader that hands out one byte per read, like a slow pipe.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(d)) => {
                    *d = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn pcap_micro_and_nano_both_byte_orders() {
        let f = pcap_le(false, 1, &[(10, 5, b"abc"), (11, 999_999, b"")]);
        let (p, e) = all(&mut Reader::new(&f[..]).unwrap());
        assert!(e.is_none());
        assert_eq!(p, vec![(1, 10_000_005, b"abc".to_vec()), (1, 11_999_999, vec![])]);
        let f = pcap_le(true, 101, &[(1, 1_500_000_000 % 1_000_000_000, b"xy")]);
        let (p, _) = all(&mut Reader::new(&f[..]).unwrap());
        assert_eq!(p, vec![(101, 1_500_000, b"xy".to_vec())]);
        // big-endian header and records
        let mut be = Vec::new();
        be.extend_from_slice(&0xa1b2_c3d4u32.to_be_bytes());
        be.extend_from_slice(&[0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1]);
        be.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0xaa]);
        let (p, e) = all(&mut Reader::new(&be[..]).unwrap());
        assert!(e.is_none());
        assert_eq!(p, vec![(1, 2_000_003, vec![0xaa])]);
    }

    #[test]
    fn records_across_reads_and_a_slow_pipe() {
        let big = vec![7u8; 3 * READ_BYTES / 2];
        let recs: Vec<(u32, u32, &[u8])> = (0..5).map(|i| (i, 0, &big[..(i as usize * 1000) % big.len() + 1])).chain([(9, 0, &big[..])]).collect();
        let f = pcap_le(false, 1, &recs);
        let (p, e) = all(&mut Reader::new(&f[..]).unwrap());
        assert!(e.is_none());
        assert_eq!(p.len(), 6);
        assert_eq!(p[5].2.len(), big.len());
        let small = pcap_le(false, 1, &[(1, 0, b"hello"), (2, 0, b"world")]);
        let (p, e) = all(&mut Reader::new(Trickle(&small)).unwrap());
        assert!(e.is_none());
        assert_eq!(p.iter().map(|x| x.2.clone()).collect::<Vec<_>>(), vec![b"hello".to_vec(), b"world".to_vec()]);
    }

    #[test]
    fn damage_stops_with_where_and_why_after_the_good_packets() {
        let f = pcap_le(false, 1, &[(1, 0, b"good"), (2, 0, b"cut here")]);
        let (p, e) = all(&mut Reader::new(&f[..f.len() - 3]).unwrap());
        assert_eq!(p.len(), 1);
        let e = e.unwrap().to_string();
        assert!(e.contains("truncated at byte 44") && e.contains("24 bytes") && e.contains("after 21"), "{e}");
        let mut huge = pcap_le(false, 1, &[]);
        huge.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        let (_, e) = all(&mut Reader::new(&huge[..]).unwrap());
        assert!(e.unwrap().to_string().contains("over the"));
        assert!(matches!(Reader::new(&b""[..]), Err(FileError::Empty)));
        assert!(matches!(Reader::new(&b"GET / HTTP/1.1\r\n"[..]), Err(FileError::NotCapture(_))));
        assert!(matches!(Reader::new(&f[..10]), Err(FileError::Truncated { .. })));
    }

    fn block(kind: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let len = (body.len() + 12) as u32;
        let mut v = kind.to_le_bytes().to_vec();
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&body);
        v.extend_from_slice(&len.to_le_bytes());
        v
    }

    fn shb() -> Vec<u8> {
        let mut b = 0x1a2b_3c4du32.to_le_bytes().to_vec();
        b.extend_from_slice(&[1, 0, 0, 0]);
        b.extend_from_slice(&(-1i64).to_le_bytes());
        block(0x0a0d_0d0a, &b)
    }

    fn idb(link: u16, opts: &[(u16, &[u8])]) -> Vec<u8> {
        let mut b = link.to_le_bytes().to_vec();
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&0u32.to_le_bytes());
        for (code, v) in opts {
            b.extend_from_slice(&code.to_le_bytes());
            b.extend_from_slice(&(v.len() as u16).to_le_bytes());
            b.extend_from_slice(v);
            while b.len() % 4 != 0 {
                b.push(0);
            }
        }
        b.extend_from_slice(&[0, 0, 0, 0]);
        block(1, &b)
    }

    fn epb(iface: u32, ts: u64, data: &[u8]) -> Vec<u8> {
        let mut b = iface.to_le_bytes().to_vec();
        b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(ts as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        block(6, &b)
    }

    #[test]
    fn a_whole_file_in_memory_reads_as_the_stream_does() {
        // the inputs of the tests above and below, each read both ways
        let big = vec![7u8; 3 * READ_BYTES / 2];
        let recs: Vec<(u32, u32, &[u8])> = (0..5).map(|i| (i, 0, &big[..(i as usize * 1000) % big.len() + 1])).chain([(9, 0, &big[..])]).collect();
        let good = pcap_le(true, 1, &recs);
        let cut = pcap_le(false, 1, &[(1, 0, b"good"), (2, 0, b"cut here")]);
        let mut huge = pcap_le(false, 1, &[]);
        huge.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        let mut ng = shb();
        ng.extend(block(4, &[0u8; 40]));
        ng.extend(idb(113, &[(9, &[9]), (14, &10i64.to_le_bytes())]));
        ng.extend(epb(0, 2_000_000_000, b"sll"));
        ng.extend(block(3, &[4, 0, 0, 0, b's', b'p', b'b', b'!']));
        ng.extend(shb());
        ng.extend(epb(0, 0, b"x"));
        for input in [good.clone(), cut[..cut.len() - 3].to_vec(), huge, ng] {
            let (p1, e1) = all(&mut Reader::new(&input[..]).unwrap());
            let (p2, e2) = all(&mut Reader::over(Box::new(input.clone())).unwrap());
            assert_eq!(p1, p2);
            assert_eq!(e1.map(|e| e.to_string()), e2.map(|e| e.to_string()));
        }
        assert_eq!(all(&mut Reader::over(Box::new(good)).unwrap()).0.len(), 6);
        assert!(matches!(Reader::over(Box::new(Vec::new())), Err(FileError::Empty)));
        assert!(matches!(Reader::over(Box::new(cut[..10].to_vec())), Err(FileError::Truncated { .. })));
    }

    #[test]
    fn pcapng_interfaces_resolutions_and_skipped_blocks() {
        let mut f = shb();
        f.extend(block(4, &[0u8; 40])); // name resolution: skipped
        f.extend(idb(1, &[]));
        f.extend(idb(113, &[(9, &[9]), (14, &10i64.to_le_bytes())])); // ns, +10 s
        f.extend(idb(101, &[(9, &[0x80 | 10])])); // 2^-10 s
        f.extend(epb(0, 1_000_001, b"eth"));
        f.extend(epb(1, 2_000_000_000, b"sll"));
        f.extend(epb(2, 1024 * 3, b"raw"));
        f.extend(block(3, &[4, 0, 0, 0, b's', b'p', b'b', b'!']));
        let (p, e) = all(&mut Reader::new(&f[..]).unwrap());
        assert!(e.is_none(), "{e:?}");
        assert_eq!(
            p,
            vec![
                (1, 1_000_001, b"eth".to_vec()),
                (113, 12_000_000, b"sll".to_vec()),
                (101, 3_000_000, b"raw".to_vec()),
                (1, 0, b"spb!".to_vec()),
            ]
        );
        // a second section restarts the interface list
        let mut g = f.clone();
        g.extend(shb());
        g.extend(epb(0, 0, b"x"));
        let (p, e) = all(&mut Reader::new(&g[..]).unwrap());
        assert_eq!(p.len(), 4);
        assert!(e.unwrap().to_string().contains("names interface 0, but the section describes 0"));
        let r = Reader::new(&f[..]).unwrap();
        assert_eq!(r.link(), Some(1));
    }

    #[test]
    fn pcapng_damage_is_reported_not_obeyed() {
        let mut f = shb();
        f.extend(idb(1, &[]));
        let mut bad = epb(0, 0, b"abcd");
        bad[20..24].copy_from_slice(&1000u32.to_le_bytes()); // caplen past the block
        f.extend(bad);
        let (p, e) = all(&mut Reader::new(&f[..]).unwrap());
        assert!(p.is_empty());
        assert!(e.unwrap().to_string().contains("a packet of 1000 bytes"));
        let mut g = shb();
        g.extend_from_slice(&6u32.to_le_bytes());
        g.extend_from_slice(&13u32.to_le_bytes());
        g.extend_from_slice(&[0; 8]);
        // (read while looking for the first interface, before any packet)
        let e = Reader::new(&g[..]).err().unwrap();
        assert!(e.to_string().contains("multiple of 4"), "{e}");
    }
}
