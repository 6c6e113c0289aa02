//! Fuzz entry points, one per parser, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the replay test
//! (`tests/fuzz_regressions.rs`), which includes this file with
//! `#[path = "../fuzz/harness.rs"] mod harness;` so both run the same code.
//!
//! Every entry point takes arbitrary bytes and must return without panicking:
//! the library promises not to panic on any input. Besides that, each checks
//! the contracts the library documents for its API (flow chunks are never
//! empty and a direction ends once; HPACK memory stays within its caps;
//! counters add up). A violated contract panics, and the fuzzer reports it.
//!
//! Input formats are small hand-rolled structures read with [`Input`]: past
//! the end of the data every read yields zeros or nothing, so every byte
//! string is a valid input. `fuzz/seed.sh` writes seeds in these formats.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use apitap::config::{Http2Config, HttpConfig};
use apitap::decode::{self, DecodeLimits, Decoded, FlowKey, LinkType, TcpFlags, TcpSegment};
use apitap::flow::{Chunk, Direction, FlowHandler, FlowLimits, FlowTable};
use apitap::proto::hpack::{self, Field};
use apitap::proto::http1::Http1Connection;
use apitap::proto::http2::H2Connection;
use apitap::proto::{Connection, HttpTransaction, ProtoConfig, ProtoStats};

/// The targets by name: the directory names under `fuzz/seeds/` and
/// `fuzz/regressions/`, and the binaries under `fuzz/fuzz_targets/`.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("decode", decode_frame),
    ("defrag", defrag),
    ("flow", flow),
    ("http1", http1),
    ("http2", http2),
    ("hpack", hpack_blocks),
    ("auth", auth),
    ("bodies", bodies),
    ("template", template),
    ("analyze", analyze),
    ("tls", tls),
    ("pcapfile", pcapfile),
];

// ---------------------------------------------------------------------------
// Reading the input.
// ---------------------------------------------------------------------------

/// A cursor over the fuzz input. Reads past the end yield zeros (integers)
/// or shorter slices, never a panic.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = self.pos.saturating_add(n);
        &self.data[start..end]
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }
}

/// Keeps the optimiser from discarding what a parser returned.
fn touch(bytes: &[u8]) {
    std::hint::black_box(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)));
}

fn touch_transactions(out: &mut Vec<HttpTransaction>) {
    for tx in out.drain(..) {
        std::hint::black_box(format!("{tx:?}").len());
    }
}

// ---------------------------------------------------------------------------
// decode: one frame.
// ---------------------------------------------------------------------------

/// Link types the first input byte selects (its value modulo the length).
/// The last one is not supported by the decoder and must be refused cleanly.
pub const LINK_TYPES: &[i32] = &[1, 0, 108, 101, 12, 14, 228, 229, 113, 276, 239, 147];

pub fn link_type(sel: u8) -> LinkType {
    LinkType::from_dlt(LINK_TYPES[usize::from(sel) % LINK_TYPES.len()])
}

fn check_decoded(d: Decoded<'_>) {
    match d {
        Decoded::Tcp(seg) => {
            touch(seg.payload);
            std::hint::black_box(seg.key().symmetric_hash());
        }
        Decoded::NotTcp | Decoded::FragmentHeld => {}
        Decoded::Malformed(reason) => {
            std::hint::black_box(reason);
        }
    }
}

/// `decode`: `[link type selector][frame]`, through [`decode::Decoder::decode`].
pub fn decode_frame(data: &[u8]) {
    let mut inp = Input::new(data);
    let link = link_type(inp.u8());
    let frame = inp.rest();
    let mut dec = decode::Decoder::new(DecodeLimits::default());
    check_decoded(dec.decode(link, 1_000_000, frame));
    std::hint::black_box(dec.last_error());
}

// ---------------------------------------------------------------------------
// defrag: a sequence of frames, most of them IP fragments.
// ---------------------------------------------------------------------------

/// Addresses the synthetic fragments use (fragments of one datagram share them).
const V4: [[u8; 4]; 2] = [[10, 0, 0, 1], [10, 0, 0, 2]];
const V6: [[u8; 16]; 2] = [
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
];

/// An IPv4 fragment on a raw-IP link: a well-formed header around fuzzer
/// bytes, with the fuzzer's identification, offset, MF flag and protocol.
fn ipv4_fragment(swap: bool, id: u16, offset8: u16, more: bool, proto: u8, payload: &[u8], frame: &mut Vec<u8>) {
    let total = (20 + payload.len()).min(usize::from(u16::MAX)) as u16;
    let frag = (offset8 & 0x1fff) | if more { 0x2000 } else { 0 };
    let (s, d) = if swap { (V4[1], V4[0]) } else { (V4[0], V4[1]) };
    frame.extend_from_slice(&[0x45, 0]);
    frame.extend_from_slice(&total.to_be_bytes());
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&frag.to_be_bytes());
    frame.extend_from_slice(&[64, proto, 0, 0]);
    frame.extend_from_slice(&s);
    frame.extend_from_slice(&d);
    frame.extend_from_slice(payload);
}

/// An IPv6 packet with a Fragment extension header (RFC 8200 §4.5).
fn ipv6_fragment(swap: bool, id: u32, offset8: u16, more: bool, proto: u8, payload: &[u8], frame: &mut Vec<u8>) {
    let plen = (8 + payload.len()).min(usize::from(u16::MAX)) as u16;
    let (s, d) = if swap { (V6[1], V6[0]) } else { (V6[0], V6[1]) };
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&plen.to_be_bytes());
    frame.extend_from_slice(&[44, 64]);
    frame.extend_from_slice(&s);
    frame.extend_from_slice(&d);
    let off = ((offset8 & 0x1fff) << 3) | u16::from(more);
    frame.extend_from_slice(&[proto, 0]);
    frame.extend_from_slice(&off.to_be_bytes());
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(payload);
}

fn defrag_limits(sel: u8) -> DecodeLimits {
    if sel & 0x80 == 0 {
        return DecodeLimits::default();
    }
    DecodeLimits {
        max_frag_datagrams: usize::from(sel & 0x03),
        max_frag_bytes: [256, 2048, 65536, 1 << 20][usize::from((sel >> 2) & 0x03)],
        frag_timeout_us: [1_000, 50_000, 1_000_000, 30_000_000][usize::from((sel >> 4) & 0x03)],
        max_tunnel_depth: (sel >> 6) & 0x01,
    }
}

/// `defrag`: `[limits selector]` then records, each starting with an op byte:
///
/// - op bit 7 clear: a synthetic fragment on a raw-IP link. Bit 0 IPv6, bit 1
///   MF, bit 2 reversed addresses, bits 3-4 protocol (TCP, UDP, TCP, fuzzer
///   byte). Then `id u16`, `offset u16` (8-byte units), `dt u8` (ms),
///   `len u16`, `len` payload bytes (for protocol 3, one more byte first).
/// - op bit 7 set: a raw frame on link `op & 0x0f` (see [`LINK_TYPES`]):
///   `dt u8`, `len u16`, `len` frame bytes.
pub fn defrag(data: &[u8]) {
    let mut inp = Input::new(data);
    let mut dec = decode::Decoder::new(defrag_limits(inp.u8()));
    let mut ts: u64 = 1_000_000;
    let mut frame = Vec::new();
    let mut frames = 0;
    while !inp.is_empty() && frames < 4096 {
        frames += 1;
        let op = inp.u8();
        frame.clear();
        let link = if op & 0x80 == 0 {
            let v6 = op & 1 != 0;
            let more = op & 2 != 0;
            let swap = op & 4 != 0;
            let proto = match (op >> 3) & 3 {
                0 | 2 => 6,
                1 => 17,
                _ => inp.u8(),
            };
            let id = inp.u16();
            let offset8 = inp.u16();
            ts = ts.saturating_add(u64::from(inp.u8()) * 1000);
            let len = usize::from(inp.u16());
            let payload = inp.bytes(len);
            if v6 {
                ipv6_fragment(swap, u32::from(id), offset8, more, proto, payload, &mut frame);
            } else {
                ipv4_fragment(swap, id, offset8, more, proto, payload, &mut frame);
            }
            LinkType::Raw
        } else {
            ts = ts.saturating_add(u64::from(inp.u8()) * 1000);
            let len = usize::from(inp.u16());
            frame.extend_from_slice(inp.bytes(len));
            link_type(op & 0x0f)
        };
        check_decoded(dec.decode(link, ts, &frame));
        let (datagrams, bytes) = dec.frag_usage();
        let limits = dec.limits();
        assert!(
            datagrams <= limits.max_frag_datagrams.max(1),
            "{datagrams} datagrams under reassembly, limit {}",
            limits.max_frag_datagrams
        );
        assert!(bytes <= limits.max_frag_bytes, "{bytes} bytes under reassembly, limit {}", limits.max_frag_bytes);
    }
    std::hint::black_box(dec.stats());
}

// ---------------------------------------------------------------------------
// flow: TCP segments through the flow table into the protocol layer.
// ---------------------------------------------------------------------------

/// Endpoint pairs the segments use: two IPv4 flows to common ports, one
/// IPv6, and one whose ports give no hint of the server.
fn endpoints(pair: usize) -> (SocketAddr, SocketAddr) {
    let v4 = |a: u8, p: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, a)), p);
    let v6 = |a: u16, p: u16| SocketAddr::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, a)), p);
    match pair & 3 {
        0 => (v4(1, 40000), v4(2, 80)),
        1 => (v4(1, 40001), v4(2, 8080)),
        2 => (v6(1, 50000), v6(2, 443)),
        _ => (v4(3, 33333), v4(4, 44444)),
    }
}

/// The proto layer behind the flow table, checking the table's chunk contract.
struct ProtoHandler {
    cfg: ProtoConfig,
    stats: ProtoStats,
    txs: Vec<HttpTransaction>,
    open: usize,
    /// Requests' bodies sampled by what their heads hold (else every body read).
    sampled: bool,
}

/// A sink that samples by the head's bytes (chosen by the fuzzer): each of
/// the four samplings comes up.
struct FuzzSink<'a> {
    txs: &'a mut Vec<HttpTransaction>,
    sampled: bool,
}

impl apitap::proto::TxSink for FuzzSink<'_> {
    fn txs(&mut self) -> &mut Vec<HttpTransaction> {
        self.txs
    }

    fn sampling(&mut self, head: &apitap::proto::HeadFacts<'_>) -> apitap::proto::Sampling {
        if !self.sampled {
            return apitap::proto::Sampling::ALL;
        }
        let n = head.method.len() + head.target.len() + head.host.map_or(0, <[u8]>::len);
        apitap::proto::Sampling { body_scan: n & 1 != 0, shapes: n & 2 != 0, template: None }
    }
}

/// Body samples stay within the configured size and the body, and a request
/// whose bodies are not read keeps none of its own.
fn check_samples(txs: &[HttpTransaction], limit: usize) {
    for tx in txs {
        for b in [&tx.request_body, &tx.response_body] {
            assert!(b.sample.len() <= limit && b.sample.len() as u64 <= b.length, "sample {} of {} (limit {limit})", b.sample.len(), b.length);
        }
        if tx.sampling.as_ref().is_some_and(|s| !s.body_scan && !s.shapes) {
            assert!(tx.request_body.sample.is_empty(), "unread request body kept: {tx:?}");
        }
    }
}

/// A connection and, per direction, whether `End` was delivered.
struct FlowState {
    conn: Connection,
    ended: [bool; 2],
}

impl FlowHandler for ProtoHandler {
    type State = FlowState;

    fn open(&mut self, _key: &FlowKey, client: SocketAddr, server: SocketAddr, midstream: bool, _ts: u64) -> FlowState {
        self.open += 1;
        FlowState { conn: Connection::new(client, server, midstream, &mut self.stats), ended: [false; 2] }
    }

    fn chunk(&mut self, st: &mut FlowState, dir: Direction, chunk: Chunk<'_>, ts: u64) {
        let ended = &mut st.ended[dir.index()];
        assert!(!*ended, "{chunk:?} after End in {dir:?}");
        match chunk {
            Chunk::Data(d) => assert!(!d.is_empty(), "empty Data chunk"),
            Chunk::Gap(n) => assert!(n > 0, "Gap(0)"),
            Chunk::End => *ended = true,
        }
        let mut sink = FuzzSink { txs: &mut self.txs, sampled: self.sampled };
        st.conn.on_chunk(dir, chunk, ts, &self.cfg, &mut self.stats, &mut sink);
        // a connection holding more than a small budget is shed, as the
        // engine does when the sensor's is spent: it must stay consistent
        if st.conn.held_bytes() > FUZZ_SHED_BYTES {
            let _ = st.conn.shed(ts, &self.cfg, &mut self.stats, &mut sink);
        }
        check_samples(&self.txs, self.cfg.http.body_scan_bytes);
        touch_transactions(&mut self.txs);
    }

    fn close(&mut self, mut st: FlowState, ts: u64) {
        assert!(st.ended == [true, true], "close before End in both directions: {:?}", st.ended);
        self.open -= 1;
        let mut sink = FuzzSink { txs: &mut self.txs, sampled: self.sampled };
        st.conn.on_close(ts, &self.cfg, &mut self.stats, &mut sink);
        check_samples(&self.txs, self.cfg.http.body_scan_bytes);
        touch_transactions(&mut self.txs);
    }
}

/// Bytes a fuzzed connection may hold before it is shed.
const FUZZ_SHED_BYTES: usize = 4096;

fn small_http_config() -> HttpConfig {
    HttpConfig {
        max_header_bytes: 512,
        max_headers: 8,
        max_pending_requests: 2,
        max_parser_bytes_total: FUZZ_SHED_BYTES,
        body_scan_bytes: 64,
        resync_scan_bytes: 2048,
    }
}

fn small_http2_config() -> Http2Config {
    Http2Config {
        max_streams_per_connection: 3,
        max_header_list_bytes: 1024,
        max_header_block_bytes: 1024,
        max_continuation_frames: 3,
        max_hpack_table_bytes: 256,
        max_frame_bytes: 16_384,
        max_frames_per_connection: 64,
    }
}

fn flow_limits(sel: u8) -> FlowLimits {
    if sel & 0x01 == 0 {
        return FlowLimits::default();
    }
    FlowLimits {
        max_flows: usize::from((sel >> 1) & 0x03),
        max_ooo_bytes_per_dir: [0, 300, 4096, 65536][usize::from((sel >> 3) & 0x03)],
        max_ooo_segments_per_dir: [1, 4, 64, 256][usize::from((sel >> 5) & 0x03)],
        max_ooo_bytes_total: 1 << 20,
        idle_timeout_us: 200_000,
        closed_timeout_us: 50_000,
        syn_timeout_us: 100_000,
    }
}

/// `flow`: `[limits selector][config selector]`, then segments. Config
/// selector bits: 0 small HTTP limits, 1 small HTTP/2 limits, 2 every body
/// read (else requests are sampled by their heads' bytes, [`FuzzSink`]).
///
/// `[sel][flags][seq][ack][dt u8 (ms)][len]payload`, where `sel` bits 0-1
/// pick the endpoint pair, bit 2 the direction (set: server to client),
/// bit 3 absolute sequence numbers (`seq u32`, `ack u32`) instead of offsets
/// from the next expected byte (`seq i16`, `ack i16`), bit 4 a 16-bit
/// length (else 8-bit). `flags` is the TCP flags byte.
pub fn flow(data: &[u8]) {
    let mut inp = Input::new(data);
    let limits = flow_limits(inp.u8());
    let conf = inp.u8();
    let cfg = ProtoConfig {
        http: if conf & 1 != 0 { small_http_config() } else { HttpConfig::default() },
        http2: if conf & 2 != 0 { small_http2_config() } else { Http2Config::default() },
        keylog: None,
    };
    let mut handler = ProtoHandler { cfg, stats: ProtoStats::default(), txs: Vec::new(), open: 0, sampled: conf & 4 == 0 };
    let max_total = limits.max_ooo_bytes_total;
    let mut table: FlowTable<FlowState> = FlowTable::new(limits);
    // Next sequence number per endpoint pair and direction, for relative records.
    let mut next = [[0x1000_0000u32, 0x2000_0000u32]; 4];
    let mut ts: u64 = 1_000_000;
    let mut segments = 0;
    while !inp.is_empty() && segments < 4096 {
        segments += 1;
        let sel = inp.u8();
        let pair = usize::from(sel & 3);
        let back = sel & 4 != 0;
        let flags = TcpFlags(inp.u8());
        let (seq, ack) = if sel & 8 != 0 {
            (inp.u32(), inp.u32())
        } else {
            let ds = inp.u16() as i16;
            let da = inp.u16() as i16;
            let (me, peer) = if back { (1, 0) } else { (0, 1) };
            (next[pair][me].wrapping_add(ds as i32 as u32), next[pair][peer].wrapping_add(da as i32 as u32))
        };
        ts = ts.saturating_add(u64::from(inp.u8()) * 1000);
        let len = if sel & 16 != 0 { usize::from(inp.u16()) } else { usize::from(inp.u8()) };
        let payload = inp.bytes(len);
        let (a, b) = endpoints(pair);
        let (src, dst) = if back { (b, a) } else { (a, b) };
        let me = usize::from(back);
        let syn_fin = u32::from(flags.syn()) + u32::from(flags.fin());
        next[pair][me] = seq.wrapping_add(payload.len() as u32).wrapping_add(syn_fin);
        let seg = TcpSegment { src, dst, seq, ack, flags, window: 65535, payload };
        table.process(&seg, ts, &mut handler);
        if segments % 16 == 0 {
            table.expire(ts, &mut handler);
        }
        assert!(table.ooo_bytes() <= max_total, "{} out-of-order bytes, limit {max_total}", table.ooo_bytes());
        assert_eq!(table.len(), handler.open, "flows in the table vs. flows open in the handler");
    }
    table.flush_all(ts, &mut handler);
    assert!(table.is_empty());
    assert_eq!(handler.open, 0, "flows never closed");
    let s = table.stats();
    let gone = s.flows_closed + s.flows_timed_out + s.flows_evicted_limit + s.flows_superseded + s.flows_flushed;
    assert_eq!(s.flows_created, gone, "every flow created is counted once as gone: {s:?}");
}

// ---------------------------------------------------------------------------
// http1: request and response bytes cut at fuzzer-chosen points.
// ---------------------------------------------------------------------------

fn client_server() -> (SocketAddr, SocketAddr) {
    endpoints(0)
}

/// `http1`: `[flags][nsteps][steps...][reqlen u16][request][response]`.
///
/// `flags` bit 0: joined mid-stream; bit 1: small limits; bits 2-3: piece
/// size unit (1, 8, 64, 512). Each step byte feeds the next piece of one
/// side (bit 7 set: the response): `step & 0x7f` units of bytes, or when it
/// is 0, a gap of the next input byte + 1 bytes (the stream skips those
/// bytes). After the steps, the rest of each side is fed whole, the request
/// first; then both sides end.
pub fn http1(data: &[u8]) {
    let mut inp = Input::new(data);
    let flags = inp.u8();
    let nsteps = usize::from(inp.u8());
    let steps: Vec<u8> = inp.bytes(nsteps).to_vec();
    let mut gap_lens = Vec::new();
    for s in &steps {
        if s & 0x7f == 0 {
            gap_lens.push(u64::from(inp.u8()) + 1);
        }
    }
    let reqlen = usize::from(inp.u16());
    let req = inp.bytes(reqlen);
    let resp = inp.rest();
    let midstream = flags & 1 != 0;
    let cfg = ProtoConfig {
        http: if flags & 2 != 0 { small_http_config() } else { HttpConfig::default() },
        http2: Http2Config::default(),
        keylog: None,
    };
    let unit = [1usize, 8, 64, 512][usize::from((flags >> 2) & 3)];

    let (client, server) = client_server();
    let mut h1 = Some(Http1Connection::new(client, server, midstream, &cfg.http));
    let mut h2: Option<H2Connection> = None;
    let mut stats = ProtoStats::default();
    let mut out = Vec::new();
    let mut pos = [0usize; 2];
    let sides = [req, resp];
    let mut gaps = gap_lens.into_iter();
    let mut ts = 1u64;

    let mut feed = |is_req: bool, chunk: Chunk<'_>, ts: u64, h1: &mut Option<Http1Connection>, h2: &mut Option<H2Connection>| {
        if let Some(c) = h2.as_mut() {
            c.on_chunk(is_req, chunk, ts, &cfg.http, &mut stats, &mut out);
        } else if let Some(c) = h1.as_mut() {
            let consumed = c.on_chunk(is_req, chunk, ts, &cfg.http, &mut stats, &mut out);
            if let Chunk::Data(d) = chunk {
                assert!(consumed <= d.len(), "consumed {consumed} of {} bytes", d.len());
            }
            if c.take_tunnel_opened() {
                // What follows is another protocol inside the tunnel.
                if let Some(mut c) = h1.take() {
                    c.finish(ts, &cfg.http, &mut stats, &mut out);
                }
            } else if let Some(up) = c.take_h2c_upgrade() {
                // The rest of this chunk and everything after is HTTP/2.
                let mut c2 = H2Connection::upgraded(up.client, up.server, up, &cfg.http2);
                if let Chunk::Data(d) = chunk {
                    if let Some(rest) = d.get(consumed..).filter(|r| !r.is_empty()) {
                        c2.on_chunk(is_req, Chunk::Data(rest), ts, &cfg.http, &mut stats, &mut out);
                    }
                }
                *h1 = None;
                *h2 = Some(c2);
            }
        }
        touch_transactions(&mut out);
    };

    for s in steps {
        ts += 1;
        let side = usize::from(s >> 7);
        let is_req = side == 0;
        let n = usize::from(s & 0x7f);
        if n == 0 {
            let g = gaps.next().unwrap_or(1);
            let skip = (g as usize).min(sides[side].len() - pos[side]);
            pos[side] += skip;
            feed(is_req, Chunk::Gap(g), ts, &mut h1, &mut h2);
            continue;
        }
        let end = pos[side].saturating_add(n * unit).min(sides[side].len());
        if end > pos[side] {
            feed(is_req, Chunk::Data(&sides[side][pos[side]..end]), ts, &mut h1, &mut h2);
            pos[side] = end;
        }
    }
    for side in 0..2 {
        ts += 1;
        if pos[side] < sides[side].len() {
            feed(side == 0, Chunk::Data(&sides[side][pos[side]..]), ts, &mut h1, &mut h2);
        }
    }
    feed(true, Chunk::End, ts + 1, &mut h1, &mut h2);
    feed(false, Chunk::End, ts + 2, &mut h1, &mut h2);
    drop(feed);
    if let Some(c) = h1.as_mut() {
        c.finish(ts + 3, &cfg.http, &mut stats, &mut out);
    }
    if let Some(c) = h2.as_mut() {
        c.finish(&mut stats, &mut out);
    }
    touch_transactions(&mut out);
}

// ---------------------------------------------------------------------------
// http2: frames both ways.
// ---------------------------------------------------------------------------

/// `http2`: `[flags]` then records `[op][len u16][bytes]`.
///
/// `flags` bit 0: joined mid-stream; bit 1: small limits; bit 2: the
/// connection continues an HTTP/1.1 `Upgrade: h2c` request (stream 1).
/// `op` bit 0: from the server; bits 1-2: 0 or 1 data, 2 a gap of `len`
/// bytes (no bytes follow), 3 the end of that direction (no length).
pub fn http2(data: &[u8]) {
    let mut inp = Input::new(data);
    let flags = inp.u8();
    let midstream = flags & 1 != 0;
    let http = if flags & 2 != 0 { small_http_config() } else { HttpConfig::default() };
    let h2cfg = if flags & 2 != 0 { small_http2_config() } else { Http2Config::default() };
    let (client, server) = client_server();
    let mut stats = ProtoStats::default();
    let mut out = Vec::new();
    let mut conn = if flags & 4 != 0 {
        // Obtain the stream-1 request the way the protocol layer does: from
        // the HTTP/1 parser that saw the Upgrade.
        let mut h1 = Http1Connection::new(client, server, false, &http);
        let req = b"GET /upgrade HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
        h1.on_chunk(true, Chunk::Data(req), 1, &http, &mut stats, &mut out);
        h1.on_chunk(false, Chunk::Data(resp), 2, &http, &mut stats, &mut out);
        match h1.take_h2c_upgrade() {
            Some(up) => H2Connection::upgraded(client, server, up, &h2cfg),
            None => H2Connection::new(client, server, midstream, &h2cfg),
        }
    } else {
        H2Connection::new(client, server, midstream, &h2cfg)
    };
    let mut ended = [false; 2];
    let mut ts = 10u64;
    let mut records = 0;
    while !inp.is_empty() && records < 4096 {
        records += 1;
        ts += 1;
        let op = inp.u8();
        let from_client = op & 1 == 0;
        let side = usize::from(!from_client);
        let chunk = match (op >> 1) & 3 {
            0 | 1 => {
                let len = usize::from(inp.u16());
                let d = inp.bytes(len);
                if d.is_empty() {
                    continue;
                }
                Chunk::Data(d)
            }
            2 => Chunk::Gap(u64::from(inp.u16()) + 1),
            _ => Chunk::End,
        };
        // The flow layer sends nothing after End in a direction.
        if ended[side] {
            continue;
        }
        ended[side] = chunk == Chunk::End;
        conn.on_chunk(from_client, chunk, ts, &http, &mut stats, &mut out);
        touch_transactions(&mut out);
    }
    for (side, done) in ended.iter().enumerate() {
        if !done {
            conn.on_chunk(side == 0, Chunk::End, ts + 1, &http, &mut stats, &mut out);
        }
    }
    conn.finish(&mut stats, &mut out);
    touch_transactions(&mut out);
}

// ---------------------------------------------------------------------------
// hpack: header blocks through one decoder.
// ---------------------------------------------------------------------------

/// Longest name or value of the static table (`access-control-allow-origin`, RFC 7541 Appendix A).
const STATIC_TABLE_LONGEST: usize = 27;
const TABLE_SIZES: [usize; 8] = [0, 1, 31, 64, 256, 4096, 65536, 1 << 31];
const HARD_LIMITS: [usize; 4] = [0, 100, 4096, 65536];

/// `hpack`: `[mode]` then records `[op][len u16][block]`.
///
/// `mode` bit 0: a mid-stream decoder; bits 1-3: the initial table size
/// bound; bits 4-5: the memory cap; bit 6: a 16-byte string limit; bit 7:
/// a 64-byte header list limit. `op` bit 0: announce the table size
/// `TABLE_SIZES[op >> 1 & 7]` (SETTINGS) before the block.
pub fn hpack_blocks(data: &[u8]) {
    let mut inp = Input::new(data);
    let mode = inp.u8();
    let table = TABLE_SIZES[usize::from((mode >> 1) & 7)];
    let hard = HARD_LIMITS[usize::from((mode >> 4) & 3)];
    let mut dec = if mode & 1 != 0 {
        hpack::Decoder::new_midstream(table, hard)
    } else {
        hpack::Decoder::new(table, hard)
    };
    let max_field = if mode & 0x40 != 0 { 16 } else { 1 << 20 };
    if mode & 0x80 != 0 {
        dec.set_max_list_bytes(64);
    }
    let mut out: Vec<Field> = Vec::new();
    let mut blocks = 0;
    while !inp.is_empty() && blocks < 4096 {
        blocks += 1;
        let op = inp.u8();
        if op & 1 != 0 {
            dec.set_max_table_size(TABLE_SIZES[usize::from((op >> 1) & 7)]);
        }
        let len = usize::from(inp.u16());
        let block = inp.bytes(len);
        out.clear();
        let r = dec.decode(block, max_field, &mut out);
        if let Err(e) = &r {
            std::hint::black_box(e.is_fatal());
        }
        // Literal strings are bounded by `max_field`; names and values from
        // the static table are constants, not subject to it.
        let bound = max_field.max(STATIC_TABLE_LONGEST);
        for f in &out {
            if let Some(n) = f.name() {
                assert!(n.len() <= bound, "name of {} bytes over the {max_field} limit", n.len());
            }
            if let Some(v) = f.value() {
                assert!(v.len() <= bound, "value of {} bytes over the {max_field} limit", v.len());
            }
        }
        assert!(dec.kept_bytes() <= hard, "{} bytes kept, cap {hard}", dec.kept_bytes());
        assert!(
            dec.table_len() <= hard / hpack::ENTRY_OVERHEAD,
            "{} entries tracked, cap {}",
            dec.table_len(),
            hard / hpack::ENTRY_OVERHEAD
        );
        std::hint::black_box(dec.stats());
    }
}

// ---------------------------------------------------------------------------
// Analysis of one transaction: credentials (JWT, Basic, API keys), bodies
// (decoders and the sensitive-data scan), path templates, and the whole
// observe → inventory → findings chain.
// ---------------------------------------------------------------------------

/// Header names the transaction builder picks from (the last selector byte
/// values take the name from the input instead).
const HEADER_NAMES: &[&str] = &[
    "authorization", "cookie", "x-api-key", "content-type", "content-encoding", "origin", "set-cookie",
    "access-control-allow-origin", "access-control-allow-credentials", "proxy-authorization", "x-auth-token",
    "transfer-encoding", "x-forwarded-for", "user-agent", "api-key", "forwarded",
];
const METHODS: &[&str] = &["GET", "POST", "PUT", "DELETE", "PATCH", "CONNECT", "OPTIONS", "get"];

fn headers(inp: &mut Input<'_>) -> Vec<apitap::proto::Header> {
    let n = usize::from(inp.u8() % 12);
    (0..n)
        .map(|_| {
            let sel = usize::from(inp.u8());
            let name = match HEADER_NAMES.get(sel) {
                Some(n) => n.to_string(),
                None => {
                    let len = usize::from(inp.u8() % 32);
                    String::from_utf8_lossy(inp.bytes(len)).to_ascii_lowercase()
                }
            };
            let len = usize::from(inp.u16() % 4096);
            apitap::proto::Header { name: name.into(), value: inp.bytes(len).into() }
        })
        .collect()
}

/// `[method][target len u8][target][host len u8][host][request headers]
/// [response headers][status u16][request body len u16][request body][response body…]`.
pub fn transaction(inp: &mut Input<'_>) -> HttpTransaction {
    let method = METHODS[usize::from(inp.u8()) % METHODS.len()].to_string();
    let tlen = usize::from(inp.u8());
    let target = String::from_utf8_lossy(inp.bytes(tlen)).into_owned();
    let hlen = usize::from(inp.u8() % 64);
    let host: Option<std::sync::Arc<str>> = Some(String::from_utf8_lossy(inp.bytes(hlen))).filter(|h| !h.is_empty()).map(|h| h.as_ref().into());
    let request_headers = headers(inp);
    let response_headers = headers(inp);
    let status = match inp.u16() {
        0 => None,
        s => Some(s % 1000),
    };
    let blen = usize::from(inp.u16());
    let req_body = inp.bytes(blen).to_vec();
    let resp_body = inp.rest().to_vec();
    let (client, server) = client_server();
    let body = |b: Vec<u8>| apitap::proto::BodyInfo { length: b.len() as u64, sample: b, gap_bytes: 0 };
    HttpTransaction {
        client,
        server,
        version: apitap::proto::HttpVersion::Http11,
        method: method.into(),
        target,
        host,
        request_headers,
        response_headers,
        status,
        interim_statuses: Vec::new(),
        request_ts_us: 1_800_000_000_000_000,
        response_ts_us: Some(1_800_000_000_001_000),
        request_body: body(req_body),
        response_body: body(resp_body),
        upgrade: None,
        anomalies: apitap::proto::Anomalies::default(),
        stream_id: None,
        pushed: false,
        grpc: None,
        decrypted: false,
        sampling: None,
    }
}

fn fingerprinter() -> apitap::analyze::fingerprint::Fingerprinter {
    apitap::analyze::fingerprint::Fingerprinter::new([7u8; apitap::analyze::fingerprint::KEY_LEN])
}

/// `auth`: `[over TLS flag][transaction]` through `analyze::auth::classify`.
/// Contract (the redaction's, checked on its output so that no input can
/// spell its way around it): every credential's sample is either
/// `<redacted N chars>` or `HEAD…TAIL (N chars)` with exactly 4 characters at
/// each end of a value of N ≥ 16 characters — never more than 8 characters of
/// a secret, and never more than half of it.
pub fn auth(data: &[u8]) {
    let mut inp = Input::new(data);
    let tls = inp.u8() & 1 != 0;
    let tx = transaction(&mut inp);
    let creds = apitap::analyze::auth::classify(&tx, &apitap::analyze::auth::AuthConfig::default(), &fingerprinter(), tls);
    for c in &creds {
        assert!(redaction_is_bounded(&c.redacted), "sample {:?} of a {:?} credential carried by {:?} reveals more than the redaction allows", c.redacted, c.scheme, c.carrier);
        std::hint::black_box(format!("{c:?}").len());
    }
}

/// Whether `sample` has one of the two shapes of `fingerprint::redact` with 4
/// kept characters (see [`auth`]).
pub fn redaction_is_bounded(sample: &str) -> bool {
    let count = |digits: &str| digits.parse::<usize>().ok();
    if let Some(n) = sample.strip_prefix("<redacted ").and_then(|r| r.strip_suffix(" chars>")) {
        return count(n).is_some();
    }
    let Some((shown, n)) = sample.strip_suffix(" chars)").and_then(|r| r.rsplit_once(" (")) else { return false };
    let Some(n) = count(n) else { return false };
    let shown: Vec<char> = shown.chars().collect();
    n >= 16 && shown.len() == 9 && shown.get(4) == Some(&'…')
}

/// `bodies`: `[limits selector][transaction]` through
/// `analyze::sensitive::scan_request` and `scan_response` (content types and
/// encodings come from the headers: gzip, deflate, br, JSON, XML, forms,
/// multipart, CSV, text). Contract: at most `max_findings` findings per message.
pub fn bodies(data: &[u8]) {
    let mut inp = Input::new(data);
    let sel = inp.u8();
    let mut limits = apitap::analyze::sensitive::ScanLimits::default();
    if sel & 1 != 0 {
        limits.max_decompressed_bytes = 4096;
        limits.max_scan_bytes = 1024;
        limits.max_findings = 4;
        limits.max_json_depth = 4;
    }
    let tx = transaction(&mut inp);
    let fp = fingerprinter();
    let mut stats = apitap::analyze::sensitive::ScanStats::default();
    let req = apitap::analyze::sensitive::scan_request(&tx, &limits, &fp, &mut stats);
    let resp = apitap::analyze::sensitive::scan_response(&tx, &limits, &fp, &mut stats);
    assert!(req.len() <= limits.max_findings && resp.len() <= limits.max_findings, "findings over max_findings");
    std::hint::black_box(format!("{req:?}{resp:?}").len());
}

/// `template`: lines of `[host selector][path]` (newline-separated) through
/// the typed templates, the inventory's learned templates, spec matching and
/// the posture flags. Contract: a typed template has the path's segment count
/// and templating it again changes nothing.
pub fn template(data: &[u8]) {
    use apitap::analyze::template::typed_template;
    let mut templater = apitap::inventory::templates::Templater::new(apitap::inventory::templates::LearnConfig::default());
    for line in data.split(|b| *b == b'\n') {
        let Some((h, rest)) = line.split_first() else { continue };
        let host = ["a.test", "b.test", "c.test"][usize::from(*h) % 3];
        let path = String::from_utf8_lossy(rest);
        let t = typed_template(&path);
        assert_eq!(t.matches('/').count(), path.matches('/').count(), "segment count changed: {path:?} -> {t:?}");
        assert_eq!(typed_template(&t), t, "templating is not idempotent for {path:?}");
        let learned = templater.learn(host, &t);
        std::hint::black_box(learned.len());
        let applied = templater.apply(host, &t);
        std::hint::black_box(apitap::inventory::spec::path_matches(&applied, &path));
        std::hint::black_box(apitap::inventory::spec::path_matches(&path, &applied));
    }
}

/// `analyze`: `[transaction]…` (several, each built from the rest of the
/// input) through `analyze::observe`, the inventory and the findings
/// detectors with a small spec and a tight table bound.
pub fn analyze(data: &[u8]) {
    let cfg = apitap::config::Config::default();
    let ctx = apitap::engine::analyze_context(&cfg, [7u8; apitap::analyze::fingerprint::KEY_LEN]);
    let mut spec = apitap::inventory::spec::Spec::default();
    let _ = spec.add_document("fuzz", r#"{"openapi":"3.0.0","paths":{"/v2/users/{id}":{"get":{}},"/v1/x":{"get":{"deprecated":true}}}}"#);
    let findings_cfg = apitap::config::FindingsConfig { max_tracked: 16, bola_min_ids: 2, recon_min_paths: 2, recon_min_dirs: 1, stuffing_min_failures: 1, ..Default::default() };
    let mut det = apitap::inventory::findings::Detector::new(&findings_cfg, spec, None);
    let mut inv = apitap::inventory::Inventory::new();
    let mut stats = apitap::analyze::AnalyzeStats::default();
    let mut inp = Input::new(data);
    for _ in 0..4 {
        if inp.is_empty() {
            break;
        }
        let n = usize::from(inp.u16());
        let chunk = inp.bytes(n);
        let tx = transaction(&mut Input::new(chunk));
        if let Some(o) = apitap::analyze::observe(&tx, &ctx, &mut stats, &apitap::proto::Sampling::ALL) {
            let (path, key) = inv.observe(&o);
            det.observe(&o, &apitap::inventory::findings::Endpoint { host: &o.key.host, method: &o.key.method, path }, key);
        }
    }
    let fs = det.take();
    for f in &fs {
        assert!(f.clients.len() <= apitap::inventory::findings::MAX_FINDING_CLIENTS);
    }
    std::hint::black_box(format!("{fs:?}").len());
    std::hint::black_box(inv.take_dirty().len());
}

// ---------------------------------------------------------------------------
// tls: records and handshakes of both directions, with gaps, through
// `proto::tls::TlsConnection` (with or without a key log naming the hello's
// client random, so the key schedule and record decryption run too).
// ---------------------------------------------------------------------------

/// `tls`: `[flags][steps: [selector u8][len u16][bytes]]…`. Selector bit 0:
/// direction (1 = to the server), bit 1: a gap instead of bytes. Flags bit
/// 0: give a key log with TLS 1.2 and 1.3 secrets for the client random
/// `0x01…01` (the seeds' ClientHellos use it), bit 1: end both directions.
pub fn tls(data: &[u8]) {
    use apitap::proto::tls::{KeyLog, TlsConnection};
    let mut inp = Input::new(data);
    let flags = inp.u8();
    let (client, server) = client_server();
    let keylog = (flags & 1 != 0).then(|| {
        let cr = "01".repeat(32);
        let text = format!(
            "CLIENT_RANDOM {cr} {}\nCLIENT_HANDSHAKE_TRAFFIC_SECRET {cr} {}\nSERVER_HANDSHAKE_TRAFFIC_SECRET {cr} {}\nCLIENT_TRAFFIC_SECRET_0 {cr} {}\nSERVER_TRAFFIC_SECRET_0 {cr} {}\n",
            "11".repeat(48), "22".repeat(32), "33".repeat(32), "44".repeat(48), "55".repeat(32)
        );
        KeyLog::parse(&text).0
    });
    let cfg = ProtoConfig { http: HttpConfig::default(), http2: Http2Config::default(), keylog: None };
    let mut stats = ProtoStats::default();
    let mut out = Vec::new();
    let mut t = TlsConnection::new(client, server, 1);
    let mut ts = 1u64;
    while !inp.is_empty() {
        let sel = inp.u8();
        let len = usize::from(inp.u16());
        let to_server = sel & 1 != 0;
        ts += 1;
        if sel & 2 != 0 {
            t.on_chunk(to_server, Chunk::Gap(len as u64), ts, keylog.as_ref(), &cfg, &mut stats, &mut out);
        } else {
            let bytes = inp.bytes(len);
            if !bytes.is_empty() {
                t.on_chunk(to_server, Chunk::Data(bytes), ts, keylog.as_ref(), &cfg, &mut stats, &mut out);
            }
        }
    }
    if flags & 2 != 0 {
        t.on_chunk(true, Chunk::End, ts, keylog.as_ref(), &cfg, &mut stats, &mut out);
        t.on_chunk(false, Chunk::End, ts, keylog.as_ref(), &cfg, &mut stats, &mut out);
    }
    t.finish(ts, &cfg, &mut stats, &mut out);
    let s = t.take_session();
    std::hint::black_box(format!("{s:?}").len());
    touch_transactions(&mut out);
}

/// `pcapfile`: the whole input is a capture file for `capture::file::Reader`
/// (pcap or pcapng, any byte order). Contract: every packet is a view into
/// what was read (never longer than the input), the reader's position never
/// passes the input's length, and reading ends (a packet costs at least 12
/// bytes of input).
pub fn pcapfile(data: &[u8]) {
    let Ok(mut r) = apitap::capture::file::Reader::new(data) else { return };
    let mut packets = 0usize;
    while let Ok(Some(p)) = r.next_packet() {
        assert!(p.data.len() <= data.len(), "a packet of {} bytes from {} bytes of input", p.data.len(), data.len());
        packets += 1;
        assert!(packets <= data.len() / 12, "{packets} packets from {} bytes", data.len());
    }
    assert!(r.position() <= data.len() as u64, "position {} past the input ({} bytes)", r.position(), data.len());
}
