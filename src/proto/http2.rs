//! HTTP/2 (RFC 9113) in both directions of one connection, with gRPC.
//!
//! ```text
//!  +-----------------------------------------------+
//!  |                 Length (24)                   |
//!  +---------------+---------------+---------------+
//!  |   Type (8)    |   Flags (8)   |
//!  +-+-------------+---------------+-------------------------------+
//!  |R|                 Stream Identifier (31)                      |
//!  +=+=============================================================+
//!  |                   Frame Payload (0...)                      ...
//!  +---------------------------------------------------------------+
//! ```
//!
//! Each direction is a frame parser ([`FrameState`]); header blocks
//! (HEADERS/PUSH_PROMISE + CONTINUATION) are decoded by that direction's HPACK
//! decoder ([`super::hpack`]), and streams become [`HttpTransaction`]s.
//!
//! **Mid-stream pickup.** When the connection start was not seen (or after a
//! gap), a direction has no frame boundary: it looks for a position where a
//! valid frame header is followed by another valid frame header exactly where
//! the first frame ends (or by the end of the data), and starts there. Its
//! HPACK decoder is then in mid-stream mode: static-table references,
//! literals and entries added after joining decode; references to entries
//! added before joining come out as unknown fields. A request is kept when
//! its `:method` and `:path` are known; otherwise it is counted
//! (`h2_requests_unknown`) and dropped — nothing is guessed.
//!
//! **Roles.** Requests are recognised by `:method`, responses by `:status`,
//! whichever direction carries them, so a wrong client/server guess by the
//! flow layer does not lose anything.

use std::net::SocketAddr;

use super::hpack::{self, Field};
use super::{lossy, Anomalies, BodyInfo, GrpcInfo, Header, HttpTransaction, HttpVersion, ProtoStats, HeadFacts, Sampling, TxSink};
use crate::config::{Http2Config, HttpConfig};
use crate::flow::{Chunk, FastMap};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const PRIORITY: u8 = 2;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;

const FLAG_END_STREAM: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const FLAG_PADDED: u8 = 0x8;
const FLAG_PRIORITY: u8 = 0x20;

/// SETTINGS_HEADER_TABLE_SIZE (RFC 9113 §6.5.2).
const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
/// Default HPACK table size before SETTINGS says otherwise.
const DEFAULT_TABLE_SIZE: usize = 4096;
/// Largest frame length a peer may announce (2^24 - 1).
const MAX_FRAME_LEN: u32 = (1 << 24) - 1;

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FrameHeader {
    len: u32,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameHeader {
    fn parse(b: &[u8]) -> Option<FrameHeader> {
        let &[l0, l1, l2, kind, flags, s0, s1, s2, s3] = b.first_chunk::<FRAME_HEADER_LEN>()?;
        let len = u32::from_be_bytes([0, l0, l1, l2]);
        let stream = u32::from_be_bytes([s0, s1, s2, s3]) & 0x7fff_ffff;
        Some(FrameHeader { len, kind, flags, stream })
    }

    /// Whether this header is plausible for a known frame type: the checks a
    /// receiver would make on type, flags, stream and fixed lengths. Used to
    /// recognise frames without a preface.
    fn plausible(&self, max_len: u32) -> bool {
        if self.len > max_len {
            return false;
        }
        let (flags_ok, stream_ok, len_ok) = match self.kind {
            DATA => (self.flags & !(FLAG_END_STREAM | FLAG_PADDED) == 0, self.stream != 0, true),
            HEADERS => (
                self.flags & !(FLAG_END_STREAM | FLAG_END_HEADERS | FLAG_PADDED | FLAG_PRIORITY) == 0,
                self.stream != 0,
                true,
            ),
            PRIORITY => (self.flags == 0, self.stream != 0, self.len == 5),
            RST_STREAM => (self.flags == 0, self.stream != 0, self.len == 4),
            SETTINGS => (self.flags & !1 == 0, self.stream == 0, self.len % 6 == 0 && (self.flags == 0 || self.len == 0)),
            PUSH_PROMISE => (self.flags & !(FLAG_END_HEADERS | FLAG_PADDED) == 0, self.stream != 0, self.len >= 4),
            PING => (self.flags & !1 == 0, self.stream == 0, self.len == 8),
            GOAWAY => (self.flags == 0, self.stream == 0, self.len >= 8),
            WINDOW_UPDATE => (self.flags == 0, true, self.len == 4),
            CONTINUATION => (self.flags & !FLAG_END_HEADERS == 0, self.stream != 0, true),
            _ => (false, false, false),
        };
        flags_ok && stream_ok && len_ok
    }
}

/// Stricter plausibility for picking up a stream: frames a real peer never
/// sends empty (a header block, data without END_STREAM) are refused, since
/// runs of zero bytes would otherwise parse as frames.
fn plausible_for_sync(h: &FrameHeader, max_len: u32) -> bool {
    h.plausible(max_len)
        && !(h.len == 0 && matches!(h.kind, HEADERS | CONTINUATION | PUSH_PROMISE))
        && !(h.len == 0 && h.kind == DATA && h.flags & FLAG_END_STREAM == 0)
}

/// Where a frame sequence can be picked up in `data`: the first offset from
/// which every frame header up to the end of `data` is plausible (the last
/// frame may be cut by the end of the data). Returns the offset.
pub fn find_frame_sync(data: &[u8], max_len: u32) -> Option<usize> {
    if let Some(p) = memchr::memmem::find(data, PREFACE) {
        return Some(p + PREFACE.len());
    }
    let last = data.len().checked_sub(FRAME_HEADER_LEN)?;
    (0..=last).find(|&p| {
        let mut at = p;
        let mut frames = 0;
        loop {
            let Some(h) = data.get(at..).and_then(FrameHeader::parse) else {
                // fewer than 9 bytes left: fine after at least one complete frame
                return frames > 0;
            };
            if !plausible_for_sync(&h, max_len) {
                return false;
            }
            frames += 1;
            at += FRAME_HEADER_LEN + h.len as usize;
            // eight chained frames are proof enough, and bound the work per offset
            if at >= data.len() || frames >= 8 {
                return true;
            }
        }
    })
}

/// A frame boundary proven by at least two complete, chained, plausible frames
/// (or the client preface), strong enough to call unknown bytes HTTP/2.
pub fn strong_frame_sync(data: &[u8], max_len: u32) -> Option<usize> {
    if let Some(p) = memchr::memmem::find(data, PREFACE) {
        return Some(p + PREFACE.len());
    }
    let last = data.len().checked_sub(FRAME_HEADER_LEN)?;
    (0..=last).find(|&p| {
        let mut at = p;
        for _ in 0..2 {
            let Some(h) = data.get(at..).and_then(FrameHeader::parse) else { return false };
            if !plausible_for_sync(&h, max_len) {
                return false;
            }
            at += FRAME_HEADER_LEN + h.len as usize;
            if at > data.len() {
                return false;
            }
        }
        true
    })
}

/// Whether `data` (the first bytes of a direction) looks like HTTP/2 frames.
pub fn looks_like_frames(data: &[u8]) -> bool {
    if data.starts_with(PREFACE) || (data.len() < PREFACE.len() && PREFACE.starts_with(data) && data.len() >= 4) {
        return true;
    }
    // a chain of at least two plausible frames from the very first byte
    let Some(h) = FrameHeader::parse(data) else { return false };
    if !h.plausible(1 << 20) {
        return false;
    }
    let next = FRAME_HEADER_LEN + h.len as usize;
    match data.get(next..).and_then(FrameHeader::parse) {
        Some(n) => n.plausible(1 << 20),
        None => next == data.len() && h.kind == SETTINGS,
    }
}

/// Frame parser state of one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrameState {
    /// Skipping the client preface: bytes still expected.
    Preface(usize),
    /// Reading a frame header (collected in `buf`).
    Header,
    /// Buffering a non-DATA payload (in `buf`).
    Payload(FrameHeader),
    /// Streaming a DATA payload: bytes left, pad bytes at the end, whether the pad length is still to read.
    Data { hdr: FrameHeader, left: u32, pad: u32, need_pad_len: bool },
    /// Skipping a payload (too large, or of an unknown type).
    Skip(u32),
    /// Looking for a frame boundary (mid-stream or after a gap).
    Resync,
}

/// A header block being assembled from HEADERS/PUSH_PROMISE + CONTINUATION.
struct PendingBlock {
    stream: u32,
    /// For PUSH_PROMISE: the promised stream.
    promised: Option<u32>,
    end_stream: bool,
    fragment: Vec<u8>,
    continuations: usize,
    ts: u64,
}

/// One direction of the connection.
struct Side {
    state: FrameState,
    buf: Vec<u8>,
    hpack: hpack::Decoder,
    block: Option<PendingBlock>,
    /// Packet time of the frame being read.
    frame_ts: u64,
    /// Bytes scanned while resynchronising.
    resync_scanned: usize,
}

/// One part (request or response side) of a stream.
#[derive(Default)]
struct Part {
    headers: Vec<Header>,
    ts: Option<u64>,
    body: BodyInfo,
    ended: bool,
    /// Some header referenced an unknown dynamic-table entry.
    unknown_fields: bool,
    grpc_messages: u64,
    grpc_compressed: bool,
    /// gRPC length-prefix parsing: bytes of the current message left to skip, or prefix bytes gathered.
    grpc_left: u64,
    grpc_prefix: [u8; 5],
    grpc_prefix_len: u8,
    /// Which bodies of the transaction are read (on a request part: decided
    /// at its head; `None` = every body).
    sampling: Option<Sampling>,
    /// Bytes of this part's body kept as its sample, as that decided (`None`:
    /// `http.body_scan_bytes`).
    keep: Option<usize>,
}

/// A stream's state.
#[derive(Default)]
struct Stream {
    request: Option<Part>,
    response: Option<Part>,
    interim: Vec<u16>,
    trailers: Vec<Header>,
    /// Set for a request that arrived over HTTP/1.1 `Upgrade: h2c`.
    upgraded: Option<Box<HttpTransaction>>,
    pushed: bool,
    reset: bool,
    anomalies: Anomalies,
    /// Order of creation, for eviction.
    seq: u64,
    /// The direction (0 = client side, 1 = server side) that carried the request.
    req_dir: Option<usize>,
    /// Heap bytes of its header lists, body samples and upgraded request
    /// (counted in [`H2Connection::held_bytes`]).
    held: usize,
}

/// Both directions of one HTTP/2 connection.
pub struct H2Connection {
    client: SocketAddr,
    server: SocketAddr,
    sides: [Side; 2],
    streams: FastMap<u32, Stream>,
    next_seq: u64,
    frames: u64,
    cfg: Http2Config,
    /// The direction whose header blocks carry `:method` (learned; 0 until seen).
    request_side: Option<usize>,
    /// Fields of the header block being decoded (reused from block to block).
    fields: Vec<Field>,
    /// Sum of the streams' `held`.
    stream_bytes: usize,
    /// Shed once ([`Self::shed`]): its open streams are reported as it grows.
    shed: bool,
}

/// Fields the reused decoding buffer keeps room for between header blocks.
const FIELDS_KEPT: usize = 32;

fn new_decoder(midstream: bool, cfg: &Http2Config) -> hpack::Decoder {
    let mut d = if midstream {
        hpack::Decoder::new_midstream(DEFAULT_TABLE_SIZE, cfg.max_hpack_table_bytes)
    } else {
        hpack::Decoder::new(DEFAULT_TABLE_SIZE, cfg.max_hpack_table_bytes)
    };
    d.set_max_list_bytes(cfg.max_header_list_bytes);
    d
}

fn new_side(state: FrameState, midstream: bool, cfg: &Http2Config) -> Side {
    let hpack = new_decoder(midstream, cfg);
    Side { state, buf: Vec::new(), hpack, block: None, frame_ts: 0, resync_scanned: 0 }
}

fn pseudo<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers.iter().find(|h| h.name == name).map(|h| h.value.as_slice())
}

fn parse_status(v: &[u8]) -> Option<u16> {
    if v.len() != 3 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0u16, |a, d| a * 10 + u16::from(d - b'0')))
}

/// Counts gRPC length-prefixed messages (RFC-less: gRPC over HTTP/2 spec,
/// "Length-Prefixed-Message": 1-byte compressed flag, 4-byte length).
fn grpc_frames(part: &mut Part, mut data: &[u8]) {
    while !data.is_empty() {
        if part.grpc_left > 0 {
            let n = usize::try_from(part.grpc_left).unwrap_or(usize::MAX).min(data.len());
            part.grpc_left -= n as u64;
            data = data.get(n..).unwrap_or_default();
            continue;
        }
        let need = 5 - usize::from(part.grpc_prefix_len);
        let n = need.min(data.len());
        for (i, b) in data.iter().take(n).enumerate() {
            if let Some(slot) = part.grpc_prefix.get_mut(usize::from(part.grpc_prefix_len) + i) {
                *slot = *b;
            }
        }
        part.grpc_prefix_len += n as u8;
        data = data.get(n..).unwrap_or_default();
        if part.grpc_prefix_len == 5 {
            let p = part.grpc_prefix;
            part.grpc_messages += 1;
            part.grpc_compressed |= p[0] & 1 == 1;
            part.grpc_left = u64::from(u32::from_be_bytes([p[1], p[2], p[3], p[4]]));
            part.grpc_prefix_len = 0;
        }
    }
}

fn is_grpc(headers: &[Header]) -> bool {
    headers.iter().any(|h| h.name == "content-type" && h.value.starts_with(b"application/grpc"))
}

impl H2Connection {
    /// A connection whose client preface is expected first (prior knowledge),
    /// or which is joined mid-stream.
    pub fn new(client: SocketAddr, server: SocketAddr, midstream: bool, cfg: &Http2Config) -> H2Connection {
        let (c, s) = if midstream {
            (FrameState::Resync, FrameState::Resync)
        } else {
            (FrameState::Preface(PREFACE.len()), FrameState::Header)
        };
        H2Connection {
            client,
            server,
            sides: [new_side(c, midstream, cfg), new_side(s, midstream, cfg)],
            streams: FastMap::default(),
            next_seq: 0,
            frames: 0,
            cfg: cfg.clone(),
            request_side: None,
            fields: Vec::new(),
            stream_bytes: 0,
            shed: false,
        }
    }

    /// A connection upgraded from HTTP/1.1 (`Upgrade: h2c` + 101): `request`
    /// becomes stream 1, whose response comes as HTTP/2 (RFC 9113 §3.2 of RFC 7540).
    pub fn upgraded(client: SocketAddr, server: SocketAddr, request: HttpTransaction, cfg: &Http2Config) -> H2Connection {
        let mut c = H2Connection::new(client, server, false, cfg);
        let mut part = Part { ts: Some(request.request_ts_us), ended: true, sampling: request.sampling.clone(), ..Part::default() };
        part.headers = request.request_headers.clone();
        let held = super::headers_bytes(&part.headers) + request.held_bytes();
        let st = Stream { request: Some(part), upgraded: Some(Box::new(request)), seq: 0, req_dir: Some(0), held, ..Stream::default() };
        c.stream_bytes = held;
        c.next_seq = 1;
        c.streams.insert(1, st);
        c
    }

    /// Bytes this connection holds: frame and header-block buffers, the HPACK
    /// tables, the decoding buffer and the open streams (kept up to date as
    /// streams open, grow and end, so this is O(1)).
    pub fn held_bytes(&self) -> usize {
        let side = |s: &Side| s.buf.capacity() + s.hpack.held_bytes() + s.block.as_ref().map_or(0, |b| b.fragment.capacity());
        let [a, b] = &self.sides;
        side(a)
            + side(b)
            + self.fields.capacity() * std::mem::size_of::<Field>()
            + self.streams.capacity() * std::mem::size_of::<(u32, Stream)>()
            + self.stream_bytes
    }

    /// Frees what the connection holds for pairing, when the parsers' memory
    /// budget is spent: every open stream is reported now (its request
    /// without a response), and the buffers not in use are let go. The
    /// header tables stay — the next header blocks cannot be read without
    /// them — so the connection goes on reporting requests; a response that
    /// comes later for a reported stream is counted, not paired. Counted in
    /// `parser_bytes_limit_hit` the first time only.
    pub fn shed(&mut self, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        if !self.shed {
            self.shed = true;
            stats.parser_bytes_limit_hit += 1;
        }
        self.finish(stats, out);
        self.streams.shrink_to_fit();
        self.fields = Vec::new();
        for side in &mut self.sides {
            side.buf.shrink_to_fit();
        }
    }

    /// Feeds a chunk of the client (`from_client`) or server direction.
    pub fn on_chunk(
        &mut self,
        from_client: bool,
        chunk: Chunk<'_>,
        ts: u64,
        http: &HttpConfig,
        stats: &mut ProtoStats,
        out: &mut dyn TxSink,
    ) {
        let d = usize::from(!from_client);
        match chunk {
            Chunk::Data(data) => self.feed(d, data, ts, http, stats, out),
            Chunk::Gap(_) => {
                stats.h2_gaps += 1;
                let cfg = self.cfg.clone();
                if let Some(side) = self.sides.get_mut(d) {
                    // frame boundary and HPACK state are lost with the bytes
                    side.state = FrameState::Resync;
                    side.buf.clear();
                    side.block = None;
                    side.hpack = new_decoder(true, &cfg);
                }
            }
            Chunk::End => {}
        }
    }

    fn feed(&mut self, d: usize, mut data: &[u8], ts: u64, http: &HttpConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        while !data.is_empty() {
            let Some(side) = self.sides.get_mut(d) else { return };
            let consumed = match side.state {
                FrameState::Preface(left) => {
                    let n = left.min(data.len());
                    let off = PREFACE.len() - left;
                    let expect = PREFACE.get(off..off + n).unwrap_or_default();
                    if data.get(..n) != Some(expect) {
                        // not the preface after all: look for frames
                        stats.h2_anomalies += 1;
                        side.state = FrameState::Resync;
                        0
                    } else {
                        side.state = if left == n { FrameState::Header } else { FrameState::Preface(left - n) };
                        n
                    }
                }
                FrameState::Header => {
                    let need = FRAME_HEADER_LEN - side.buf.len();
                    let n = need.min(data.len());
                    if side.buf.is_empty() {
                        side.frame_ts = ts;
                    }
                    side.buf.extend_from_slice(data.get(..n).unwrap_or_default());
                    if side.buf.len() == FRAME_HEADER_LEN {
                        let hdr = FrameHeader::parse(&side.buf);
                        side.buf.clear();
                        if let Some(hdr) = hdr {
                            self.start_frame(d, hdr, stats);
                            self.zero_length_frame(d, hdr, http, stats, out);
                        }
                    }
                    n
                }
                FrameState::Payload(hdr) if side.buf.is_empty() && data.len() >= hdr.len as usize => {
                    // the whole payload is in this chunk: read where it lies
                    let n = hdr.len as usize;
                    side.state = FrameState::Header;
                    self.frame(d, hdr, data.get(..n).unwrap_or_default(), http, stats, out);
                    n
                }
                FrameState::Payload(hdr) => {
                    let need = (hdr.len as usize).saturating_sub(side.buf.len());
                    let n = need.min(data.len());
                    side.buf.extend_from_slice(data.get(..n).unwrap_or_default());
                    if side.buf.len() >= hdr.len as usize {
                        let payload = std::mem::take(&mut side.buf);
                        side.state = FrameState::Header;
                        self.frame(d, hdr, &payload, http, stats, out);
                        if let Some(side) = self.sides.get_mut(d) {
                            if side.buf.is_empty() {
                                side.buf = payload;
                                side.buf.clear();
                            }
                        }
                    }
                    n
                }
                FrameState::Data { hdr, left, pad, need_pad_len } => {
                    if need_pad_len {
                        let p = u32::from(data.first().copied().unwrap_or(0));
                        let left = left.saturating_sub(1);
                        if p > left {
                            stats.h2_anomalies += 1;
                            side.state = if left == 0 { FrameState::Header } else { FrameState::Skip(left) };
                        } else {
                            side.state = FrameState::Data { hdr, left: left - p, pad: p, need_pad_len: false };
                            self.finish_data_if_done(d, hdr, stats, out);
                        }
                        1
                    } else {
                        let n = (left as usize).min(data.len());
                        self.data(d, hdr, data.get(..n).unwrap_or_default(), http, stats);
                        let left = left - n as u32;
                        if let Some(side) = self.sides.get_mut(d) {
                            side.state = FrameState::Data { hdr, left, pad, need_pad_len: false };
                        }
                        self.finish_data_if_done(d, hdr, stats, out);
                        n
                    }
                }
                FrameState::Skip(left) => {
                    let n = (left as usize).min(data.len());
                    let left = left - n as u32;
                    side.state = if left == 0 { FrameState::Header } else { FrameState::Skip(left) };
                    n
                }
                FrameState::Resync => match find_frame_sync(data, self.cfg.max_frame_bytes as u32) {
                    Some(p) => {
                        stats.h2_resyncs += 1;
                        side.resync_scanned = 0;
                        side.state = FrameState::Header;
                        side.buf.clear();
                        p
                    }
                    None => {
                        side.resync_scanned = side.resync_scanned.saturating_add(data.len());
                        stats.h2_resync_bytes_skipped = stats.h2_resync_bytes_skipped.saturating_add(data.len() as u64);
                        data.len()
                    }
                },
            };
            data = data.get(consumed..).unwrap_or_default();
        }
    }

    /// A DATA frame whose payload (and padding) is fully consumed ends here.
    fn finish_data_if_done(&mut self, d: usize, hdr: FrameHeader, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let Some(side) = self.sides.get_mut(d) else { return };
        if let FrameState::Data { left: 0, pad, .. } = side.state {
            side.state = if pad == 0 { FrameState::Header } else { FrameState::Skip(pad) };
            if hdr.flags & FLAG_END_STREAM != 0 {
                self.end_part(d, hdr.stream, stats, out);
            }
        }
    }

    fn start_frame(&mut self, d: usize, hdr: FrameHeader, stats: &mut ProtoStats) {
        self.frames += 1;
        stats.h2_frames += 1;
        let max = self.cfg.max_frame_bytes as u32;
        let Some(side) = self.sides.get_mut(d) else { return };
        if hdr.len > MAX_FRAME_LEN {
            side.state = FrameState::Resync;
            return;
        }
        // a header block must continue with CONTINUATION on the same stream
        if side.block.is_some() && !(hdr.kind == CONTINUATION && side.block.as_ref().is_some_and(|b| b.stream == hdr.stream)) {
            stats.h2_anomalies += 1;
            side.block = None;
        }
        side.state = match hdr.kind {
            DATA => {
                if hdr.len == 0 {
                    FrameState::Data { hdr, left: 0, pad: 0, need_pad_len: false }
                } else {
                    FrameState::Data { hdr, left: hdr.len, pad: 0, need_pad_len: hdr.flags & FLAG_PADDED != 0 }
                }
            }
            HEADERS | PRIORITY | RST_STREAM | SETTINGS | PUSH_PROMISE | PING | GOAWAY | WINDOW_UPDATE | CONTINUATION => {
                if hdr.len > max {
                    stats.h2_frame_limit_hit += 1;
                    if matches!(hdr.kind, HEADERS | CONTINUATION | PUSH_PROMISE) {
                        side.block = None;
                    }
                    FrameState::Skip(hdr.len)
                } else {
                    FrameState::Payload(hdr)
                }
            }
            _ => {
                stats.h2_unknown_frames += 1;
                FrameState::Skip(hdr.len)
            }
        };
        if side.state == FrameState::Skip(0) {
            side.state = FrameState::Header;
        }
        if self.cfg.max_frames_per_connection > 0 && self.frames > self.cfg.max_frames_per_connection {
            if self.frames == self.cfg.max_frames_per_connection + 1 {
                stats.h2_frames_limit_hit += 1;
            }
            if let Some(side) = self.sides.get_mut(d) {
                side.state = FrameState::Skip(hdr.len);
            }
        }
    }

    /// Frames without payload take effect at once (no bytes follow to drive them).
    fn zero_length_frame(&mut self, d: usize, hdr: FrameHeader, http: &HttpConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        if hdr.len != 0 {
            return;
        }
        let state = self.sides.get(d).map(|s| s.state);
        match state {
            Some(FrameState::Payload(h)) => {
                if let Some(side) = self.sides.get_mut(d) {
                    side.state = FrameState::Header;
                }
                self.frame(d, h, &[], http, stats, out);
            }
            Some(FrameState::Data { .. }) => self.finish_data_if_done(d, hdr, stats, out),
            _ => {}
        }
    }

    /// A complete non-DATA frame.
    fn frame(&mut self, d: usize, hdr: FrameHeader, payload: &[u8], http: &HttpConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        match hdr.kind {
            HEADERS => {
                let mut p = payload;
                let mut pad = 0usize;
                if hdr.flags & FLAG_PADDED != 0 {
                    pad = usize::from(p.first().copied().unwrap_or(0));
                    p = p.get(1..).unwrap_or_default();
                }
                if hdr.flags & FLAG_PRIORITY != 0 {
                    p = p.get(5..).unwrap_or_default();
                }
                let Some(frag) = p.len().checked_sub(pad).and_then(|n| p.get(..n)) else {
                    stats.h2_anomalies += 1;
                    return;
                };
                self.begin_block(d, hdr.stream, None, hdr.flags, frag, stats, http, out);
            }
            PUSH_PROMISE => {
                let mut p = payload;
                let mut pad = 0usize;
                if hdr.flags & FLAG_PADDED != 0 {
                    pad = usize::from(p.first().copied().unwrap_or(0));
                    p = p.get(1..).unwrap_or_default();
                }
                let Some(id) = p.first_chunk::<4>().map(|b| u32::from_be_bytes(*b) & 0x7fff_ffff) else {
                    stats.h2_anomalies += 1;
                    return;
                };
                p = p.get(4..).unwrap_or_default();
                let Some(frag) = p.len().checked_sub(pad).and_then(|n| p.get(..n)) else {
                    stats.h2_anomalies += 1;
                    return;
                };
                stats.h2_pushes += 1;
                self.begin_block(d, hdr.stream, Some(id), hdr.flags & !FLAG_END_STREAM, frag, stats, http, out);
            }
            CONTINUATION => {
                let max_cont = self.cfg.max_continuation_frames;
                let max_block = self.cfg.max_header_block_bytes;
                let Some(side) = self.sides.get_mut(d) else { return };
                let Some(block) = side.block.as_mut() else {
                    stats.h2_anomalies += 1;
                    return;
                };
                block.continuations += 1;
                if block.continuations > max_cont || block.fragment.len() + payload.len() > max_block {
                    stats.h2_header_limit_hit += 1;
                    side.block = None;
                    return;
                }
                block.fragment.extend_from_slice(payload);
                if hdr.flags & FLAG_END_HEADERS != 0 {
                    if let Some(mut b) = side.block.take() {
                        let fragment = std::mem::take(&mut b.fragment);
                        self.header_block(d, b, &fragment, http, stats, out);
                    }
                }
            }
            // (an ACK carries no settings)
            SETTINGS if hdr.flags & 1 == 0 => {
                for s in payload.chunks_exact(6) {
                    // every chunk of `chunks_exact(6)` converts
                    let Ok([i0, i1, v0, v1, v2, v3]) = <[u8; 6]>::try_from(s) else { continue };
                    let id = u16::from_be_bytes([i0, i1]);
                    let v = u32::from_be_bytes([v0, v1, v2, v3]);
                    if id == SETTINGS_HEADER_TABLE_SIZE {
                        // bounds the encoder of the *other* direction
                        if let Some(other) = self.sides.get_mut(1 - d) {
                            other.hpack.set_max_table_size(v as usize);
                        }
                    }
                }
            }
            RST_STREAM => {
                if let Some(st) = self.streams.get_mut(&hdr.stream) {
                    st.reset = true;
                }
                self.maybe_emit(hdr.stream, true, stats, out);
            }
            GOAWAY => {
                stats.h2_goaways += 1;
                if let Some(last) = payload.first_chunk::<4>().map(|b| u32::from_be_bytes(*b) & 0x7fff_ffff) {
                    // streams above `last` were not processed by the sender of GOAWAY
                    let dead: Vec<u32> = self.streams.keys().copied().filter(|s| *s > last && *s % 2 == 1).collect();
                    for s in dead {
                        if let Some(st) = self.streams.get_mut(&s) {
                            st.reset = true;
                        }
                        self.maybe_emit(s, true, stats, out);
                    }
                }
            }
            _ => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn begin_block(
        &mut self,
        d: usize,
        stream: u32,
        promised: Option<u32>,
        flags: u8,
        frag: &[u8],
        stats: &mut ProtoStats,
        http: &HttpConfig,
        out: &mut dyn TxSink,
    ) {
        let Some(side) = self.sides.get_mut(d) else { return };
        let end_stream = flags & FLAG_END_STREAM != 0;
        let ts = side.frame_ts;
        if flags & FLAG_END_HEADERS != 0 {
            // the whole block is in this frame: decoded where it lies
            let block = PendingBlock { stream, promised, end_stream, fragment: Vec::new(), continuations: 0, ts };
            self.header_block(d, block, frag, http, stats, out);
        } else {
            side.block = Some(PendingBlock { stream, promised, end_stream, fragment: frag.to_vec(), continuations: 0, ts });
        }
    }

    /// A complete header block, `fragment` (a single frame's, or the
    /// `block`'s own when it came in CONTINUATION frames): decode it and
    /// attach it to its stream.
    fn header_block(
        &mut self,
        d: usize,
        block: PendingBlock,
        fragment: &[u8],
        http: &HttpConfig,
        stats: &mut ProtoStats,
        out: &mut dyn TxSink,
    ) {
        let max_list = self.cfg.max_header_list_bytes;
        let Some(side) = self.sides.get_mut(d) else { return };
        let mut fields = std::mem::take(&mut self.fields);
        fields.clear();
        let res = side.hpack.decode(fragment, max_list, &mut fields);
        if res.is_err() {
            stats.h2_hpack_errors += 1;
        }
        // empty headers first, each then written where it is (a header built
        // aside and pushed is stored field by field and loaded back whole,
        // which stalls)
        let mut headers = Vec::new();
        headers.resize_with(fields.len().min(http.max_headers), || Header::EMPTY);
        let mut n_headers = 0usize;
        let mut unknown = false;
        let mut list_bytes = 0usize;
        for f in fields.drain(..) {
            match f {
                Field::Known { name, value, .. } => {
                    list_bytes = list_bytes.saturating_add(name.len() + value.len() + 32);
                    let dst = match headers.get_mut(n_headers) {
                        Some(dst) if list_bytes <= max_list => dst,
                        _ => {
                            stats.h2_header_limit_hit += 1;
                            break;
                        }
                    };
                    dst.name = match name {
                        // shared names are known lower-case names
                        super::hpack::FieldName::Shared(n) => super::HeaderName::Borrowed(n),
                        // not a known name (HPACK looked): kept as it is, lower-cased
                        super::hpack::FieldName::Bytes(b) => {
                            let mut n = String::from_utf8(b).unwrap_or_else(|e| lossy(e.as_bytes()));
                            n.make_ascii_lowercase();
                            super::HeaderName::Owned(n)
                        }
                    };
                    dst.value = value;
                    n_headers += 1;
                }
                Field::Unknown { .. } => {
                    unknown = true;
                    stats.h2_unknown_fields += 1;
                }
            }
        }
        headers.truncate(n_headers);
        // what the list holds, counted without walking it again: its slots,
        // and the list size (each name and value plus 32 bytes), which covers
        // the names and values kept on the heap
        let held = headers.capacity() * std::mem::size_of::<Header>() + list_bytes;
        if fields.capacity() <= FIELDS_KEPT {
            self.fields = fields;
        }
        let stream_id = block.promised.unwrap_or(block.stream);
        let has_method = pseudo(&headers, ":method").is_some();
        if has_method && block.promised.is_none() {
            self.request_side = Some(d);
        }
        let status = pseudo(&headers, ":status").and_then(parse_status);
        // a block whose pseudo-headers are all unknown (mid-stream HPACK) is a
        // request when it comes from the side that sends requests and opens the stream
        let unknown_request = unknown
            && !has_method
            && status.is_none()
            && d == self.request_side.unwrap_or(0)
            && self.streams.get(&stream_id).is_none_or(|st| st.request.is_none() && st.response.is_none());
        let is_request = has_method || block.promised.is_some() || unknown_request;
        if !self.streams.contains_key(&stream_id) {
            self.make_room(stats, out);
            let seq = self.next_seq;
            self.next_seq += 1;
            self.streams.insert(stream_id, Stream { seq, pushed: block.promised.is_some(), ..Stream::default() });
        }
        let Some(st) = self.streams.get_mut(&stream_id) else { return };
        if res.is_err() {
            st.anomalies.set(Anomalies::INVALID_REQUEST_HEAD);
        }
        let end = block.end_stream;
        if is_request && st.request.is_none() {
            let req_dir = if block.promised.is_some() { 1 - d } else { d };
            st.req_dir = Some(req_dir);
            let sampling = match (pseudo(&headers, ":method"), pseudo(&headers, ":path")) {
                (Some(method), Some(target)) => Some(out.sampling(&HeadFacts {
                    method,
                    target,
                    host: pseudo(&headers, ":authority").or_else(|| pseudo(&headers, "host")),
                    // the side that sends the request is the client (as in `build`)
                    server: if req_dir == 1 { self.client } else { self.server },
                })),
                _ => None,
            };
            let keep = sampling.as_ref().map(|s| s.request_keep(http.body_scan_bytes));
            st.held += held;
            self.stream_bytes += held;
            st.request = Some(Part { headers, ts: Some(block.ts), unknown_fields: unknown, sampling, keep, ..Part::default() });
            if block.promised.is_some() {
                // a promised request has no body
                if let Some(r) = st.request.as_mut() {
                    r.ended = true;
                }
                return;
            }
            if end {
                self.end_part(d, stream_id, stats, out);
            }
            return;
        }
        if let Some(code) = status {
            if (100..200).contains(&code) && code != 101 {
                st.interim.push(code);
                return;
            }
            if st.response.is_none() {
                let keep = st.request.as_ref().and_then(|r| r.sampling.as_ref()).map(|s| s.response_keep(http.body_scan_bytes, Some(code)));
                st.held += held;
                self.stream_bytes += held;
                st.response = Some(Part { headers, ts: Some(block.ts), unknown_fields: unknown, keep, ..Part::default() });
                if end {
                    self.end_response(stream_id, stats, out);
                }
                return;
            }
        }
        // trailers (or an unrecognisable block)
        let is_response_side = st.response.is_some();
        st.trailers.extend(headers);
        st.held += held;
        self.stream_bytes += held;
        if unknown && !is_response_side {
            if let Some(r) = st.request.as_mut() {
                r.unknown_fields = true;
            }
        }
        if end {
            if is_response_side {
                self.end_response(stream_id, stats, out);
            } else {
                self.end_part(d, stream_id, stats, out);
            }
        }
    }

    /// Ends the part of `stream` carried by direction `d`.
    fn end_part(&mut self, d: usize, stream: u32, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let Some(st) = self.streams.get_mut(&stream) else { return };
        if st.req_dir == Some(d) {
            if let Some(r) = st.request.as_mut() {
                r.ended = true;
            }
            return;
        }
        if let Some(r) = st.response.as_mut() {
            r.ended = true;
        }
        self.maybe_emit(stream, false, stats, out);
    }

    fn end_response(&mut self, stream: u32, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        if let Some(r) = self.streams.get_mut(&stream).and_then(|s| s.response.as_mut()) {
            r.ended = true;
        }
        self.maybe_emit(stream, false, stats, out);
    }

    /// DATA payload bytes for `stream` from direction `d`.
    fn data(&mut self, d: usize, hdr: FrameHeader, bytes: &[u8], http: &HttpConfig, stats: &mut ProtoStats) {
        let Some(st) = self.streams.get_mut(&hdr.stream) else {
            stats.h2_data_without_stream += 1;
            return;
        };
        let grpc = st.request.as_ref().is_some_and(|r| is_grpc(&r.headers));
        let part = if st.req_dir == Some(d) { st.request.as_mut() } else { st.response.as_mut() };
        let Some(part) = part else { return };
        let before = part.body.sample.capacity();
        part.body.add(bytes, part.keep.unwrap_or(http.body_scan_bytes), stats);
        let grown = part.body.sample.capacity().saturating_sub(before);
        if grpc {
            grpc_frames(part, bytes);
        }
        st.held += grown;
        self.stream_bytes += grown;
    }

    /// Evicts the oldest stream when the stream table is full.
    fn make_room(&mut self, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        if self.streams.len() < self.cfg.max_streams_per_connection {
            return;
        }
        stats.h2_stream_limit_hit += 1;
        if let Some((&oldest, _)) = self.streams.iter().min_by_key(|(_, s)| s.seq) {
            self.maybe_emit(oldest, true, stats, out);
            if let Some(st) = self.streams.remove(&oldest) {
                self.stream_bytes = self.stream_bytes.saturating_sub(st.held);
            }
        }
    }

    /// Emits the stream's transaction when it is complete (or `force`d).
    fn maybe_emit(&mut self, stream: u32, force: bool, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let done = match self.streams.get(&stream) {
            Some(st) => force || st.reset || st.response.as_ref().is_some_and(|r| r.ended),
            None => false,
        };
        if !done {
            return;
        }
        let Some(st) = self.streams.remove(&stream) else { return };
        self.stream_bytes = self.stream_bytes.saturating_sub(st.held);
        if let Some(tx) = self.build(stream, st, stats) {
            stats.transactions += 1;
            if tx.status.is_none() {
                stats.requests_without_response += 1;
            }
            out.txs().push(tx);
        }
    }

    fn build(&self, stream: u32, st: Stream, stats: &mut ProtoStats) -> Option<HttpTransaction> {
        let Some(req) = st.request else {
            stats.responses_without_request += 1;
            return None;
        };
        let mut anomalies = st.anomalies;
        let resp = st.response;
        let status = resp.as_ref().and_then(|r| pseudo(&r.headers, ":status")).and_then(parse_status);
        if status.is_none() {
            anomalies.set(Anomalies::NO_RESPONSE);
        }
        let grpc = if is_grpc(&req.headers) {
            let trailer = |n: &str| {
                st.trailers
                    .iter()
                    .chain(resp.iter().flat_map(|r| r.headers.iter()))
                    .find(|h| h.name == n)
                    .map(|h| lossy(&h.value))
            };
            Some(Box::new(GrpcInfo {
                status: trailer("grpc-status").and_then(|s| s.trim().parse().ok()),
                message: trailer("grpc-message"),
                request_messages: req.grpc_messages,
                response_messages: resp.as_ref().map_or(0, |r| r.grpc_messages),
                compressed: req.grpc_compressed || resp.as_ref().is_some_and(|r| r.grpc_compressed),
            }))
        } else {
            None
        };
        let (response_headers, response_ts, response_body) = match resp {
            Some(r) => (r.headers, r.ts, r.body),
            None => (Vec::new(), None, BodyInfo::default()),
        };
        if let Some(mut tx) = st.upgraded.map(|b| *b) {
            // the HTTP/1.1 request that asked for h2c: its final response is stream 1's
            tx.interim_statuses.push(101);
            tx.interim_statuses.extend(st.interim);
            tx.status = status;
            tx.response_headers = response_headers;
            tx.response_ts_us = response_ts;
            tx.response_body = response_body;
            tx.upgrade = Some("h2c".to_string());
            tx.anomalies.0 |= anomalies.0;
            tx.stream_id = Some(stream);
            tx.grpc = grpc;
            return Some(tx);
        }
        let method = pseudo(&req.headers, ":method").map(super::method_text);
        let path = pseudo(&req.headers, ":path").map(lossy);
        let (Some(method), Some(target)) = (method, path) else {
            stats.h2_requests_unknown += 1;
            return None;
        };
        let host = pseudo(&req.headers, ":authority").or_else(|| pseudo(&req.headers, "host")).map(super::shared_host);
        // the side that sent the request is the client, whatever was guessed
        let (client, server) = if st.req_dir == Some(1) { (self.server, self.client) } else { (self.client, self.server) };
        Some(HttpTransaction {
            client,
            server,
            version: HttpVersion::H2,
            method,
            target,
            host,
            request_headers: req.headers,
            response_headers,
            status,
            interim_statuses: st.interim,
            request_ts_us: req.ts.unwrap_or(0),
            response_ts_us: response_ts,
            request_body: req.body,
            response_body,
            upgrade: None,
            anomalies,
            stream_id: Some(stream),
            pushed: st.pushed,
            grpc,
            decrypted: false,
            sampling: req.sampling,
        })
    }

    /// The connection ended: every stream with a known request is reported.
    pub fn finish(&mut self, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let mut ids: Vec<(u64, u32)> = self.streams.iter().map(|(id, s)| (s.seq, *id)).collect();
        ids.sort_unstable();
        for (_, id) in ids {
            self.maybe_emit(id, true, stats, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// HPACK literal without indexing, new name (RFC 7541 §6.2.2), no Huffman.
    fn lit(name: &str, value: &str) -> Vec<u8> {
        let mut b = vec![0x00, name.len() as u8];
        b.extend_from_slice(name.as_bytes());
        b.push(value.len() as u8);
        b.extend_from_slice(value.as_bytes());
        b
    }

    /// HPACK literal with incremental indexing and an indexed static name.
    fn lit_idx(name_index: u8, value: &str) -> Vec<u8> {
        let mut b = vec![0x40 | name_index, value.len() as u8];
        b.extend_from_slice(value.as_bytes());
        b
    }

    fn request_block(method_get: bool, path: &str, authority: &str, extra: &[(&str, &str)]) -> Vec<u8> {
        let mut b = vec![if method_get { 0x82 } else { 0x83 }, 0x86];
        b.extend(lit_idx(4, path));
        b.extend(lit_idx(1, authority));
        for (n, v) in extra {
            b.extend(lit(n, v));
        }
        b
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    struct Run {
        conn: H2Connection,
        stats: ProtoStats,
        out: Vec<HttpTransaction>,
        http: HttpConfig,
    }

    impl Run {
        fn new(midstream: bool) -> Run {
            Run {
                conn: H2Connection::new(addr("10.0.0.1:40000"), addr("10.0.0.2:8081"), midstream, &Http2Config::default()),
                stats: ProtoStats::default(),
                out: Vec::new(),
                http: HttpConfig::default(),
            }
        }
        fn feed(&mut self, from_client: bool, bytes: &[u8], piece: usize) {
            for p in bytes.chunks(piece.max(1)) {
                self.conn.on_chunk(from_client, Chunk::Data(p), 1_000, &self.http, &mut self.stats, &mut self.out);
            }
        }
        fn finish(mut self) -> (Vec<HttpTransaction>, ProtoStats) {
            self.conn.finish(&mut self.stats, &mut self.out);
            (self.out, self.stats)
        }
    }

    /// Bodies the sink will not read are counted but not kept; an error
    /// response keeps its start; the others keep their bodies; the sink is
    /// asked with the request's pseudo-headers and the server's address.
    #[test]
    fn unsampled_bodies_are_counted_not_kept() {
        let mut r = Run::new(false);
        let mut sink = crate::proto::Picky::default();
        let big = vec![b'e'; crate::proto::ERROR_BODY_KEEP + 3000];
        let mut c = PREFACE.to_vec();
        c.extend(frame(SETTINGS, 0, 0, &[]));
        c.extend(frame(HEADERS, FLAG_END_HEADERS, 1, &request_block(false, "/skip/a", "api.example", &[])));
        c.extend(frame(DATA, FLAG_END_STREAM, 1, b"hello"));
        c.extend(frame(HEADERS, FLAG_END_HEADERS, 3, &request_block(false, "/keep/b", "api.example", &[])));
        c.extend(frame(DATA, FLAG_END_STREAM, 3, b"world"));
        c.extend(frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 5, &request_block(true, "/skip/c", "api.example", &[])));
        let mut s = frame(SETTINGS, 0, 0, &[]);
        s.extend(frame(HEADERS, FLAG_END_HEADERS, 1, &[0x88]));
        s.extend(frame(DATA, FLAG_END_STREAM, 1, b"abc"));
        s.extend(frame(HEADERS, FLAG_END_HEADERS, 3, &[0x88]));
        s.extend(frame(DATA, FLAG_END_STREAM, 3, b"xyz"));
        s.extend(frame(HEADERS, FLAG_END_HEADERS, 5, &[0x8d]));
        s.extend(frame(DATA, FLAG_END_STREAM, 5, &big));
        r.conn.on_chunk(true, Chunk::Data(&c), 1, &r.http, &mut r.stats, &mut sink);
        r.conn.on_chunk(false, Chunk::Data(&s), 2, &r.http, &mut r.stats, &mut sink);
        sink.check_three("api.example", addr("10.0.0.2:8081"), &big);
        // the three requests name the same authority: one copy for all
        let first = sink.txs[0].host.clone().unwrap();
        assert!(sink.txs.iter().all(|t| t.host.as_ref().is_some_and(|h| std::sync::Arc::ptr_eq(h, &first))));
    }

    fn simple_exchange() -> (Vec<u8>, Vec<u8>) {
        let mut c = PREFACE.to_vec();
        c.extend(frame(SETTINGS, 0, 0, &[0, 1, 0, 0, 0x10, 0]));
        c.extend(frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, &request_block(true, "/v1/items?page=2", "api.example:8081", &[("user-agent", "t")])));
        c.extend(frame(HEADERS, FLAG_END_HEADERS, 3, &request_block(false, "/v1/items", "api.example", &[("content-type", "application/json")])));
        c.extend(frame(DATA, FLAG_END_STREAM, 3, b"{\"a\":1}"));
        let mut s = frame(SETTINGS, 0, 0, &[]);
        s.extend(frame(SETTINGS, 1, 0, &[]));
        s.extend(frame(HEADERS, FLAG_END_HEADERS, 1, &[0x88]));
        s.extend(frame(DATA, FLAG_END_STREAM, 1, b"hello"));
        s.extend(frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 3, &[0x8d]));
        (c, s)
    }

    /// The streams' bytes counted in `held_bytes` are counted while a stream
    /// is open — at least its header lists and body samples — and given back
    /// exactly when it ends: after every exchange, the count is zero again.
    #[test]
    fn stream_bytes_are_counted_while_open_and_given_back() {
        let (c, s) = simple_exchange();
        for piece in [1, 7, usize::MAX] {
            let mut r = Run::new(false);
            r.feed(true, &c, piece);
            // both requests wait for their responses
            let open: usize = r.conn.streams.values().map(|st| st.request.as_ref().map_or(0, |p| crate::proto::headers_bytes(&p.headers) + p.body.sample.capacity())).sum();
            assert_eq!(r.conn.streams.len(), 2);
            assert!(open > 0 && r.conn.stream_bytes >= open, "{} counted, {open} held", r.conn.stream_bytes);
            assert!(r.conn.held_bytes() >= r.conn.stream_bytes);
            r.feed(false, &s, piece);
            assert!(r.conn.streams.is_empty());
            assert_eq!(r.conn.stream_bytes, 0, "piece {piece}");
            let (t, _) = r.finish();
            assert_eq!(t.len(), 2);
        }
        // a stream that never ends is given back when the connection ends
        let mut r = Run::new(false);
        r.feed(true, &c, usize::MAX);
        r.conn.finish(&mut r.stats, &mut r.out);
        assert_eq!((r.conn.stream_bytes, r.out.len()), (0, 2));
    }

    /// `shed` reports the open streams without a response and keeps the
    /// header tables: a later request that refers to a table entry added
    /// before is still decoded and reported; the late response of a reported
    /// stream is counted, not paired. Counted once.
    #[test]
    fn shed_reports_open_streams_and_keeps_decoding() {
        let mut r = Run::new(false);
        let mut c = PREFACE.to_vec();
        c.extend(frame(SETTINGS, 0, 0, &[]));
        // :authority with incremental indexing: dynamic entry 62
        c.extend(frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, &request_block(true, "/a", "api.example", &[])));
        r.feed(true, &c, usize::MAX);
        assert_eq!(r.conn.streams.len(), 1);
        r.conn.shed(&mut r.stats, &mut r.out);
        assert_eq!(r.stats.parser_bytes_limit_hit, 1);
        assert_eq!(summary(&r.out), [("GET".into(), "/a".into(), Some("api.example".into()), None, 0, 0)]);
        assert_eq!(r.conn.stream_bytes, 0);
        // the next request names the authority by its dynamic index: 63 once
        // its own path is added in front of it (0xbf)
        let mut next = vec![0x82, 0x86];
        next.extend(lit_idx(4, "/b"));
        next.push(0xbf);
        let mut c2 = frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 3, &next);
        c2.extend(frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 5, &request_block(true, "/c", "api.example", &[])));
        r.feed(true, &c2, usize::MAX);
        // the late response of stream 1 pairs with nothing; stream 3's pairs
        let mut s = frame(SETTINGS, 0, 0, &[]);
        s.extend(frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, &[0x88]));
        s.extend(frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 3, &[0x88]));
        r.feed(false, &s, usize::MAX);
        r.conn.shed(&mut r.stats, &mut r.out);
        assert_eq!(r.stats.parser_bytes_limit_hit, 1, "counted once per connection");
        let (t, st) = r.finish();
        assert_eq!(
            summary(&t),
            [
                ("GET".into(), "/a".into(), Some("api.example".into()), None, 0, 0),
                ("GET".into(), "/b".into(), Some("api.example".into()), Some(200), 0, 0),
                ("GET".into(), "/c".into(), Some("api.example".into()), None, 0, 0),
            ]
        );
        assert_eq!(st.responses_without_request, 1);
    }

    fn summary(t: &[HttpTransaction]) -> Vec<(String, String, Option<String>, Option<u16>, u64, u64)> {
        let mut v: Vec<_> = t
            .iter()
            .map(|x| (x.method.to_string(), x.target.clone(), x.host.as_deref().map(str::to_string), x.status, x.request_body.length, x.response_body.length))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn prior_knowledge_exchange_whole_and_byte_at_a_time() {
        let (c, s) = simple_exchange();
        let mut results = Vec::new();
        for piece in [usize::MAX, 1, 7] {
            let mut r = Run::new(false);
            r.feed(true, &c, piece);
            r.feed(false, &s, piece);
            let (t, st) = r.finish();
            assert_eq!(st.h2_hpack_errors, 0);
            results.push(summary(&t));
        }
        assert_eq!(results[0], vec![
            ("GET".into(), "/v1/items?page=2".into(), Some("api.example:8081".into()), Some(200), 0, 5),
            ("POST".into(), "/v1/items".into(), Some("api.example".into()), Some(404), 7, 0),
        ]);
        assert_eq!(results[0], results[1]);
        assert_eq!(results[0], results[2]);
    }

    #[test]
    fn every_truncation_length_is_safe() {
        let (c, s) = simple_exchange();
        for n in 0..=c.len() {
            for m in [0, s.len() / 2, s.len()] {
                let mut r = Run::new(false);
                r.feed(true, &c[..n], 3);
                r.feed(false, &s[..m], 5);
                let (t, _) = r.finish();
                assert!(t.len() <= 2);
            }
        }
    }

    #[test]
    fn continuation_padding_and_priority() {
        let block = request_block(true, "/p", "h", &[("x-a", "1"), ("x-b", "2")]);
        let (a, b) = block.split_at(5);
        let mut headers_payload = vec![3u8]; // pad length
        headers_payload.extend_from_slice(&[0, 0, 0, 0, 16]); // priority
        headers_payload.extend_from_slice(a);
        headers_payload.extend_from_slice(&[0, 0, 0]);
        let mut c = PREFACE.to_vec();
        c.extend(frame(HEADERS, FLAG_PADDED | FLAG_PRIORITY | FLAG_END_STREAM, 1, &headers_payload));
        c.extend(frame(CONTINUATION, FLAG_END_HEADERS, 1, b));
        let mut s = frame(HEADERS, FLAG_END_HEADERS, 1, &[0x88]);
        let mut data = vec![2u8];
        data.extend_from_slice(b"ok\0\0");
        s.extend(frame(DATA, FLAG_PADDED | FLAG_END_STREAM, 1, &data));
        let mut r = Run::new(false);
        r.feed(true, &c, usize::MAX);
        r.feed(false, &s, 1);
        let (t, _) = r.finish();
        assert_eq!(summary(&t), vec![("GET".into(), "/p".into(), Some("h".into()), Some(200), 0, 2)]);
        assert_eq!(t[0].request_header("x-b"), Some(&b"2"[..]));
    }

    #[test]
    fn reset_stream_reports_request_without_response() {
        let mut c = PREFACE.to_vec();
        c.extend(frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, &request_block(true, "/slow", "h", &[])));
        let s = frame(RST_STREAM, 0, 1, &[0, 0, 0, 8]);
        let mut r = Run::new(false);
        r.feed(true, &c, usize::MAX);
        r.feed(false, &s, usize::MAX);
        assert_eq!(r.out.len(), 1, "RST_STREAM closes the stream at once");
        assert_eq!(r.out[0].status, None);
    }

    #[test]
    fn midstream_pickup_finds_frame_boundary() {
        let (c, s) = simple_exchange();
        // drop the preface and part of the SETTINGS frame: the parser must find the HEADERS frame
        let mut r = Run::new(true);
        r.feed(true, &c[PREFACE.len() + 4..], usize::MAX);
        r.feed(false, &s[3..], usize::MAX);
        let (t, st) = r.finish();
        assert_eq!(st.h2_resyncs, 2);
        assert_eq!(summary(&t).len(), 2);
        assert!(t.iter().all(|x| x.status.is_some()));
    }

    #[test]
    fn unknown_frame_types_are_skipped_and_counted() {
        let mut c = PREFACE.to_vec();
        c.extend(frame(0xfa, 0xff, 1, b"whatever"));
        c.extend(frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, &request_block(true, "/", "h", &[])));
        let mut r = Run::new(false);
        r.feed(true, &c, 2);
        r.feed(false, &frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, &[0x88]), usize::MAX);
        let (t, st) = r.finish();
        assert_eq!(st.h2_unknown_frames, 1);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn grpc_messages_and_status_from_trailers() {
        let mut c = PREFACE.to_vec();
        c.extend(frame(HEADERS, FLAG_END_HEADERS, 1, &request_block(false, "/shop.v1.Cart/Add", "h", &[("content-type", "application/grpc+proto")])));
        let mut msgs = vec![0u8, 0, 0, 0, 3, 1, 2, 3];
        msgs.extend_from_slice(&[1, 0, 0, 0, 2, 9, 9]);
        c.extend(frame(DATA, FLAG_END_STREAM, 1, &msgs));
        let mut s = frame(HEADERS, FLAG_END_HEADERS, 1, &{
            let mut b = vec![0x88];
            b.extend(lit("content-type", "application/grpc"));
            b
        });
        s.extend(frame(DATA, 0, 1, &[0, 0, 0, 0, 1, 7]));
        s.extend(frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, &{
            let mut b = lit("grpc-status", "5");
            b.extend(lit("grpc-message", "not found"));
            b
        }));
        let mut r = Run::new(false);
        r.feed(true, &c, 3);
        r.feed(false, &s, 4);
        let (t, _) = r.finish();
        assert_eq!(t.len(), 1);
        let g = t[0].grpc.clone().unwrap();
        assert_eq!((g.status, g.message.as_deref()), (Some(5), Some("not found")));
        assert_eq!((g.request_messages, g.response_messages, g.compressed), (2, 1, true));
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let (c, s) = simple_exchange();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..400 {
            let mut a = c.clone();
            let mut b = s.clone();
            for _ in 0..(next() % 8) {
                let i = (next() as usize) % a.len();
                a[i] = next() as u8;
                let j = (next() as usize) % b.len();
                b[j] = next() as u8;
            }
            let mut r = Run::new(next() % 2 == 0);
            r.feed(true, &a, 1 + (next() % 13) as usize);
            r.conn.on_chunk(false, Chunk::Gap(5), 0, &r.http, &mut r.stats, &mut r.out);
            r.feed(false, &b, 1 + (next() % 13) as usize);
            let _ = r.finish();
        }
    }

    #[test]
    fn recognises_frames_without_preface() {
        let (_, s) = simple_exchange();
        assert!(looks_like_frames(&s));
        assert!(!looks_like_frames(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!looks_like_frames(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"));
    }
}
