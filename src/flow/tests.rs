//! Tests of the flow table through its public API, with a handler that
//! records every chunk and checks the handler contract as it goes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::reassembly;
use super::table::guess_server;
use super::*;
use crate::decode::{TcpFlags, TcpSegment};

const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const FIN: u8 = TcpFlags::FIN;
const RST: u8 = TcpFlags::RST;
const SEC: u64 = 1_000_000;

/// An owned chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Data(Vec<u8>),
    Gap(u64),
    End,
}

fn data(b: &[u8]) -> Ev {
    Ev::Data(b.to_vec())
}

#[derive(Debug)]
struct Rec {
    client: SocketAddr,
    server: SocketAddr,
    dirs: [Vec<Ev>; 2],
    /// Address of each `Data` slice, to check zero-copy delivery.
    ptrs: Vec<usize>,
    closed: Option<u64>,
}

impl Rec {
    /// The events of `dir` with adjacent data merged.
    fn stream(&self, dir: Direction) -> Vec<Ev> {
        let mut v: Vec<Ev> = Vec::new();
        for e in &self.dirs[dir.index()] {
            match (v.last_mut(), e) {
                (Some(Ev::Data(a)), Ev::Data(b)) => a.extend_from_slice(b),
                _ => v.push(e.clone()),
            }
        }
        v
    }

    /// All data bytes of `dir`, gaps ignored.
    fn bytes(&self, dir: Direction) -> Vec<u8> {
        let mut v = Vec::new();
        for e in &self.dirs[dir.index()] {
            if let Ev::Data(d) = e {
                v.extend_from_slice(d);
            }
        }
        v
    }
}

/// Records chunks and asserts the handler contract: chunks only between
/// open and close, nothing after End, non-empty Data and Gap, End in both
/// directions before close.
#[derive(Default)]
struct Recorder {
    flows: Vec<Rec>,
}

impl FlowHandler for Recorder {
    type State = usize;

    fn open(&mut self, key: &crate::decode::FlowKey, client: SocketAddr, server: SocketAddr, _midstream: bool, _ts: u64) -> usize {
        assert_eq!(*key, crate::decode::FlowKey::new(client, server));
        self.flows.push(Rec { client, server, dirs: [Vec::new(), Vec::new()], ptrs: Vec::new(), closed: None });
        self.flows.len() - 1
    }

    fn chunk(&mut self, state: &mut usize, dir: Direction, chunk: Chunk<'_>, _ts: u64) {
        let f = &mut self.flows[*state];
        assert!(f.closed.is_none(), "chunk after close");
        let evs = &mut f.dirs[dir.index()];
        assert_ne!(evs.last(), Some(&Ev::End), "chunk after End");
        match chunk {
            Chunk::Data(d) => {
                assert!(!d.is_empty(), "empty Data");
                f.ptrs.push(d.as_ptr() as usize);
                evs.push(Ev::Data(d.to_vec()));
            }
            Chunk::Gap(n) => {
                assert!(n > 0, "empty Gap");
                evs.push(Ev::Gap(n));
            }
            Chunk::End => evs.push(Ev::End),
        }
    }

    fn close(&mut self, state: usize, ts: u64) {
        let f = &mut self.flows[state];
        assert!(f.closed.is_none(), "closed twice");
        for d in Direction::BOTH {
            assert_eq!(f.dirs[d.index()].last(), Some(&Ev::End), "close before End ({d:?})");
            let ends = f.dirs[d.index()].iter().filter(|e| **e == Ev::End).count();
            assert_eq!(ends, 1, "End count ({d:?})");
        }
        f.closed = Some(ts);
    }
}

fn sa(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), port)
}

fn seg<'a>(src: SocketAddr, dst: SocketAddr, seq: u32, ack: u32, flags: u8, payload: &'a [u8]) -> TcpSegment<'a> {
    TcpSegment { src, dst, seq, ack, flags: TcpFlags(flags), window: 65535, payload }
}

/// A connection between a client and a server with given ISNs; offsets are
/// relative to ISN+1 of each side.
#[derive(Clone, Copy)]
struct Conn {
    c: SocketAddr,
    s: SocketAddr,
    ci: u32,
    si: u32,
}

impl Conn {
    fn new(ci: u32, si: u32) -> Conn {
        Conn { c: sa(1, 40000), s: sa(2, 80), ci, si }
    }
    fn syn(&self) -> TcpSegment<'static> {
        seg(self.c, self.s, self.ci, 0, SYN, b"")
    }
    fn syn_ack(&self) -> TcpSegment<'static> {
        seg(self.s, self.c, self.si, self.ci.wrapping_add(1), SYN | ACK, b"")
    }
    /// Client to server: bytes at offset `off`, acknowledging server offset `ack`.
    fn c<'a>(&self, off: u32, ack: u32, flags: u8, p: &'a [u8]) -> TcpSegment<'a> {
        seg(
            self.c,
            self.s,
            self.ci.wrapping_add(1).wrapping_add(off),
            self.si.wrapping_add(1).wrapping_add(ack),
            flags | ACK,
            p,
        )
    }
    /// Server to client.
    fn s<'a>(&self, off: u32, ack: u32, flags: u8, p: &'a [u8]) -> TcpSegment<'a> {
        seg(
            self.s,
            self.c,
            self.si.wrapping_add(1).wrapping_add(off),
            self.ci.wrapping_add(1).wrapping_add(ack),
            flags | ACK,
            p,
        )
    }
    fn handshake(&self, t: &mut FlowTable<usize>, h: &mut Recorder, ts: u64) {
        t.process(&self.syn(), ts, h);
        t.process(&self.syn_ack(), ts, h);
        t.process(&self.c(0, 0, 0, b""), ts, h);
    }
}

/// xorshift64*: a small deterministic generator for property tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

fn table() -> (FlowTable<usize>, Recorder) {
    (FlowTable::new(FlowLimits::default()), Recorder::default())
}

use Direction::{ToClient, ToServer};

#[test]
fn in_order_segments_are_delivered_without_copying() {
    let (mut t, mut h) = table();
    let k = Conn::new(1000, 5000);
    k.handshake(&mut t, &mut h, 0);
    let req1 = b"GET / HTTP/1.1\r\n".to_vec();
    let req2 = b"Host: x\r\n\r\n".to_vec();
    let resp = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec();
    t.process(&k.c(0, 0, 0, &req1), 1, &mut h);
    t.process(&k.c(16, 0, 0, &req2), 2, &mut h);
    t.process(&k.s(0, 27, 0, &resp), 3, &mut h);
    let f = &h.flows[0];
    assert_eq!(f.ptrs, vec![req1.as_ptr() as usize, req2.as_ptr() as usize, resp.as_ptr() as usize]);
    assert_eq!((f.client, f.server), (k.c, k.s));
    let (q, r) = ((req1.len() + req2.len()) as u32, resp.len() as u32);
    t.process(&k.c(q, r, FIN, b""), 4, &mut h);
    t.process(&k.s(r, q + 1, FIN, b""), 5, &mut h);
    t.process(&k.c(q + 1, r + 1, 0, b""), 6, &mut h);
    let f = &h.flows[0];
    assert_eq!(f.stream(ToServer), vec![data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Ev::End]);
    assert_eq!(f.stream(ToClient), vec![data(&resp), Ev::End]);
    assert_eq!(f.closed, None, "kept for late packets");
    assert_eq!(t.len(), 1);
    t.expire(5 + SEC, &mut h);
    assert_eq!(t.len(), 1);
    t.expire(5 + 5 * SEC, &mut h);
    assert_eq!(t.len(), 0);
    assert_eq!(h.flows[0].closed, Some(5 + 5 * SEC));
    let s = t.stats();
    assert_eq!((s.flows_created, s.flows_midstream, s.flows_closed), (1, 0, 1));
    assert_eq!((s.bytes_delivered, s.bytes_reassembled, s.gaps, s.retransmissions), (65, 0, 0, 0));
}

#[test]
fn reversed_segments_are_reassembled() {
    let (mut t, mut h) = table();
    let k = Conn::new(77, 99);
    k.handshake(&mut t, &mut h, 0);
    let body = pattern(2000, 3);
    for i in (0..20u32).rev() {
        let off = i * 100;
        let fl = if i == 19 { FIN } else { 0 };
        t.process(&k.c(off, 0, fl, &body[off as usize..off as usize + 100]), 1, &mut h);
    }
    assert_eq!(h.flows[0].stream(ToServer), vec![Ev::Data(body), Ev::End]);
    let s = t.stats();
    assert_eq!(s.out_of_order, 19);
    assert_eq!(s.bytes_reassembled, 1900);
    assert_eq!(t.ooo_bytes(), 0);
}

#[test]
fn random_permutations_reassemble_exactly() {
    let mut rng = Rng(0x5eed_0001);
    for trial in 0..300 {
        let limits =
            FlowLimits { max_ooo_segments_per_dir: 100_000, max_ooo_bytes_per_dir: 1 << 24, ..FlowLimits::default() };
        let mut t = FlowTable::new(limits);
        let mut h = Recorder::default();
        // ISNs near the wrap in a third of the trials.
        let ci = if trial % 3 == 0 { u32::MAX - rng.below(5000) as u32 } else { rng.next() as u32 };
        let k = Conn::new(ci, rng.next() as u32);
        k.handshake(&mut t, &mut h, 0);
        let len = 1 + rng.below(6000) as usize;
        let body = pattern(len, trial as u8);
        // Random cuts, then random extra segments that overlap (same bytes).
        let mut segs: Vec<(usize, usize)> = Vec::new();
        let mut at = 0;
        while at < len {
            let n = (1 + rng.below(400) as usize).min(len - at);
            segs.push((at, at + n));
            at += n;
        }
        for _ in 0..rng.below(10) {
            let a = rng.below(len as u64) as usize;
            let b = (a + 1 + rng.below(700) as usize).min(len);
            segs.push((a, b));
        }
        rng.shuffle(&mut segs);
        for (a, b) in &segs {
            let fl = if *b == len { FIN } else { 0 };
            t.process(&k.c(*a as u32, 0, fl, &body[*a..*b]), 1, &mut h);
        }
        assert_eq!(h.flows[0].stream(ToServer), vec![Ev::Data(body), Ev::End], "trial {trial}");
        assert_eq!(t.stats().gaps, 0);
        assert_eq!(t.stats().overlap_conflicts, 0);
        assert_eq!(t.ooo_bytes(), 0);
    }
}

#[test]
fn retransmissions_are_dropped_and_partial_ones_trimmed() {
    let (mut t, mut h) = table();
    let k = Conn::new(1, 2);
    k.handshake(&mut t, &mut h, 0);
    t.process(&k.c(0, 0, 0, b"hello"), 1, &mut h);
    t.process(&k.c(0, 0, 0, b"hello"), 2, &mut h);
    t.process(&k.c(2, 0, 0, b"llo world"), 3, &mut h);
    t.process(&k.c(0, 0, 0, b""), 4, &mut h); // a bare ACK is no retransmission
    assert_eq!(h.flows[0].stream(ToServer), vec![data(b"hello world")]);
    let s = t.stats();
    assert_eq!((s.retransmissions, s.retransmitted_bytes), (2, 8));
}

#[test]
fn overlaps_first_copy_wins_and_conflicts_are_counted() {
    let (mut t, mut h) = table();
    let k = Conn::new(10, 20);
    k.handshake(&mut t, &mut h, 0);
    t.process(&k.c(2, 0, 0, b"cdef"), 1, &mut h);
    t.process(&k.c(3, 0, 0, b"defg"), 1, &mut h); // same bytes: overlap, no conflict
    assert_eq!((t.stats().overlaps, t.stats().overlap_conflicts), (1, 0));
    t.process(&k.c(2, 0, 0, b"CDEFGHij"), 1, &mut h); // differs from both pieces
    assert_eq!((t.stats().overlaps, t.stats().overlap_conflicts), (3, 2));
    t.process(&k.c(0, 0, 0, b"ab"), 1, &mut h);
    assert_eq!(h.flows[0].stream(ToServer), vec![data(b"abcdefgHij")]);
    // An in-order segment overlapping buffered bytes: the buffered copy wins.
    t.process(&k.c(14, 0, 0, b"op"), 1, &mut h);
    t.process(&k.c(10, 0, 0, b"klmnOPq"), 1, &mut h);
    assert_eq!(h.flows[0].stream(ToServer), vec![data(b"abcdefgHijklmnopq")]);
    assert_eq!((t.stats().overlaps, t.stats().overlap_conflicts), (4, 3));
}

#[test]
fn lost_segment_acknowledged_by_the_other_side_becomes_a_gap() {
    let (mut t, mut h) = table();
    let k = Conn::new(4000, 9000);
    k.handshake(&mut t, &mut h, 0);
    let body = pattern(300, 1);
    t.process(&k.c(0, 0, 0, &body[..100]), 1, &mut h);
    // 100..200 lost by the capture
    t.process(&k.c(200, 0, 0, &body[200..]), 2, &mut h);
    assert_eq!(h.flows[0].dirs[0].len(), 1);
    t.process(&k.s(0, 300, 0, b""), 3, &mut h); // the server got everything
    assert_eq!(h.flows[0].stream(ToServer), vec![data(&body[..100]), Ev::Gap(100), data(&body[200..])]);
    let s = t.stats();
    assert_eq!((s.gaps, s.gap_bytes, s.ack_gaps), (1, 100, 1));

    // Nothing buffered: the lost tail is declared once acknowledged.
    t.process(&k.s(0, 0, 0, b"HTTP/1.1 200 OK\r\n"), 4, &mut h);
    // server bytes 17..40 lost; the client acknowledges 40
    t.process(&k.c(300, 40, 0, b""), 5, &mut h);
    assert_eq!(h.flows[0].stream(ToClient), vec![data(b"HTTP/1.1 200 OK\r\n"), Ev::Gap(23)]);
    // The lost bytes arriving late are retransmissions now.
    t.process(&k.s(17, 300, 0, &[b'x'; 23]), 6, &mut h);
    assert_eq!(h.flows[0].stream(ToClient), vec![data(b"HTTP/1.1 200 OK\r\n"), Ev::Gap(23)]);
    assert_eq!(t.stats().retransmissions, 1);
}

#[test]
fn acks_are_used_only_from_an_established_direction() {
    let (mut t, mut h) = table();
    let (c, s) = (sa(1, 50000), sa(2, 80));
    // Mid-stream: the client's data synchronises the client direction.
    t.process(&seg(c, s, 1000, 7000, ACK, b"abc"), 0, &mut h);
    // The server's first segment: its ACK is not trusted yet.
    t.process(&seg(s, c, 7000, 1010, ACK, b""), 1, &mut h);
    assert_eq!(h.flows[0].stream(ToServer), vec![data(b"abc")]);
    // A segment at an absurd sequence number relative to the last one: ignored.
    t.process(&seg(s, c, 7000u32.wrapping_add(1 << 31), 1010, ACK, b""), 2, &mut h);
    assert_eq!(h.flows[0].stream(ToServer), vec![data(b"abc")]);
    // Absurd ACK values: ignored.
    t.process(&seg(s, c, 7000, 1003 + (1 << 30) + 1, ACK, b""), 3, &mut h);
    t.process(&seg(s, c, 7000, 999, ACK, b""), 3, &mut h);
    assert_eq!(h.flows[0].stream(ToServer), vec![data(b"abc")]);
    // Now established: 1003..1010 was lost.
    t.process(&seg(s, c, 7000, 1010, ACK, b""), 4, &mut h);
    assert_eq!(h.flows[0].stream(ToServer), vec![data(b"abc"), Ev::Gap(7)]);
    // A RST's acknowledgment number is never used.
    t.process(&seg(c, s, 1010, 7000 + 50, RST, b""), 5, &mut h);
    assert_eq!(h.flows[0].stream(ToClient), vec![Ev::End]);
}

#[test]
fn fin_ends_a_direction_once_reached_in_order() {
    let (mut t, mut h) = table();
    let k = Conn::new(0, 0);
    k.handshake(&mut t, &mut h, 0);
    t.process(&k.s(0, 0, 0, b"first "), 1, &mut h);
    t.process(&k.s(12, 0, FIN, b"third"), 1, &mut h);
    assert_eq!(h.flows[0].stream(ToClient), vec![data(b"first ")]);
    t.process(&k.s(6, 0, 0, b"second"), 1, &mut h);
    assert_eq!(h.flows[0].stream(ToClient), vec![data(b"first secondthird"), Ev::End]);
    // Bytes after the FIN, and the ACK of the FIN, change nothing.
    t.process(&k.s(17, 0, 0, b"after"), 1, &mut h);
    t.process(&k.c(0, 18, 0, b""), 1, &mut h);
    assert_eq!(h.flows[0].stream(ToClient), vec![data(b"first secondthird"), Ev::End]);
    assert_eq!(t.stats().segments_after_end, 1);
    // The client closes too: the flow is closed, then removed after closed_timeout.
    t.process(&k.c(0, 18, FIN, b""), 2 * SEC, &mut h);
    assert_eq!(h.flows[0].stream(ToServer), vec![Ev::End]);
    t.expire(7 * SEC - 1, &mut h);
    assert_eq!(t.len(), 1);
    t.expire(7 * SEC, &mut h);
    assert_eq!((t.len(), t.stats().flows_closed), (0, 1));
}

#[test]
fn rst_delivers_what_it_can_and_ends_both_ways() {
    let (mut t, mut h) = table();
    let k = Conn::new(100, 200);
    k.handshake(&mut t, &mut h, 0);
    t.process(&k.c(0, 0, 0, b"aaaa"), 1, &mut h);
    t.process(&k.c(8, 0, 0, b"cccc"), 2, &mut h);
    t.process(&k.s(0, 4, 0, b"resp"), 3, &mut h);
    t.process(&k.s(10, 4, 0, b"more"), 3, &mut h);
    t.process(&seg(k.s, k.c, 201 + 4, 0, RST, b"diagnostic"), 4, &mut h);
    let f = &h.flows[0];
    assert_eq!(f.stream(ToServer), vec![data(b"aaaa"), Ev::Gap(4), data(b"cccc"), Ev::End]);
    assert_eq!(f.stream(ToClient), vec![data(b"resp"), Ev::Gap(6), data(b"more"), Ev::End]);
    assert_eq!(t.ooo_bytes(), 0);
    // Late segments are absorbed by the closed flow; it goes after closed_timeout.
    t.process(&k.c(4, 0, 0, b"bbbb"), 5, &mut h);
    assert_eq!(h.flows.len(), 1);
    t.expire(4 + 5 * SEC, &mut h);
    assert_eq!(h.flows[0].closed, Some(4 + 5 * SEC));
    assert_eq!(t.stats().flows_closed, 1);
}

#[test]
fn rst_outside_the_window_is_ignored() {
    let (mut t, mut h) = table();
    let k = Conn::new(100, 200);
    k.handshake(&mut t, &mut h, 0);
    t.process(&k.c(0, 0, 0, b"abcd"), 1, &mut h);
    t.process(&seg(k.c, k.s, 101 + 2, 0, RST, b""), 2, &mut h); // behind: already seen
    t.process(&seg(k.c, k.s, 101 + 4 + (1 << 30) + 1, 0, RST, b""), 2, &mut h); // beyond any window
    t.process(&k.c(4, 0, 0, b"efgh"), 3, &mut h);
    assert_eq!(h.flows[0].stream(ToServer), vec![data(b"abcdefgh")]);
    assert_eq!(t.stats().rst_ignored, 2);
    t.process(&seg(k.s, k.c, 201 + 1000, 0, RST, b""), 4, &mut h); // in window
    assert_eq!(h.flows[0].stream(ToServer), vec![data(b"abcdefgh"), Ev::End]);
    assert_eq!(h.flows[0].stream(ToClient), vec![Ev::End]);
}

#[test]
fn data_continuing_after_an_ignored_rst_resumes_the_flow() {
    // A RST the server ignores (Suricata security-4710: a RST with a TCP-MD5
    // option the server cannot verify), then the real request and response.
    let (mut t, mut h) = table();
    let k = Conn::new(36821, 1_102_880_489);
    k.handshake(&mut t, &mut h, 0);
    t.process(&seg(k.c, k.s, 36822, 1_102_880_490, RST | ACK, b""), 1, &mut h);
    assert_eq!(h.flows[0].stream(ToServer), vec![Ev::End]);
    t.process(&k.c(0, 0, TcpFlags::PSH, b"GET /ultrasurf.html HTTP/1.1\r\n\r\n"), 2, &mut h);
    t.process(&k.s(0, 33, 0, b"HTTP/1.1 200 OK\r\n\r\n"), 3, &mut h);
    t.process(&k.s(19, 33, FIN, b""), 3, &mut h);
    assert_eq!(h.flows.len(), 2);
    assert_eq!(h.flows[0].closed, Some(2));
    let f = &h.flows[1];
    assert_eq!((f.client, f.server), (k.c, k.s));
    assert_eq!(f.stream(ToServer), vec![data(b"GET /ultrasurf.html HTTP/1.1\r\n\r\n")]);
    assert_eq!(f.stream(ToClient), vec![data(b"HTTP/1.1 200 OK\r\n\r\n"), Ev::End]);
    let s = t.stats();
    assert_eq!((s.flows_resumed_after_rst, s.flows_closed, s.flows_midstream), (1, 1, 0));
    // A late retransmission after a real RST does not resume anything.
    t.process(&seg(k.s, k.c, 1_102_880_490 + 20, 0, RST, b""), 4, &mut h);
    t.process(&k.c(0, 0, 0, b"GET /ultrasurf.html"), 5, &mut h);
    assert_eq!(h.flows.len(), 2);
}

#[test]
fn midstream_pickup_guesses_the_server() {
    let (mut t, mut h) = table();
    let cases = [
        (sa(1, 51000), sa(2, 80), 2),    // to a low port
        (sa(3, 443), sa(4, 51000), 3),   // from a low port: the sender is the server
        (sa(5, 9000), sa(6, 7000), 6),   // nothing known: the destination
        (sa(7, 7000), sa(8, 9000), 8),   // likewise
        (sa(9, 8080), sa(10, 33000), 9), // a well-known HTTP port
        (sa(11, 3000), sa(12, 3000), 12),
    ];
    for (i, (src, dst, server_ip)) in cases.iter().enumerate() {
        t.process(&seg(*src, *dst, 5, 6, ACK, b"x"), 0, &mut h);
        let f = &h.flows[i];
        assert_eq!(f.server.ip(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, *server_ip)), "case {i}");
        let dir = if *src == f.client { ToServer } else { ToClient };
        assert_eq!(f.stream(dir), vec![data(b"x")]);
    }
    assert_eq!(t.stats().flows_midstream, cases.len() as u64);
    assert_eq!(guess_server(sa(1, 1023), sa(2, 1022)), sa(2, 1022));
    assert_eq!(guess_server(sa(1, 5000), sa(2, 9200)), sa(1, 5000));
}

#[test]
fn syn_ack_without_syn_still_knows_both_directions() {
    let (mut t, mut h) = table();
    let k = Conn::new(u32::MAX, 12345);
    t.process(&k.syn_ack(), 0, &mut h);
    // The client's first data segment is lost; the next one is out of order.
    t.process(&k.c(3, 0, 0, b"def"), 1, &mut h);
    t.process(&k.s(0, 6, 0, b""), 2, &mut h);
    let f = &h.flows[0];
    assert_eq!(f.client, k.c);
    assert_eq!(f.stream(ToServer), vec![Ev::Gap(3), data(b"def")]);
    assert_eq!(t.stats().flows_midstream, 0);
}

#[test]
fn data_on_a_syn_is_delivered() {
    let (mut t, mut h) = table();
    let k = Conn::new(50, 60);
    t.process(&seg(k.c, k.s, 50, 0, SYN, b"early"), 0, &mut h);
    t.process(&k.syn_ack(), 0, &mut h);
    t.process(&k.c(5, 0, 0, b" data"), 1, &mut h);
    assert_eq!(h.flows[0].stream(ToServer), vec![data(b"early data")]);
}

#[test]
fn sequence_numbers_wrap() {
    let (mut t, mut h) = table();
    let k = Conn::new(u32::MAX - 10, u32::MAX);
    k.handshake(&mut t, &mut h, 0);
    let body = pattern(40, 9);
    // client bytes cross 2^32 at offset 10
    t.process(&k.c(20, 0, 0, &body[20..40]), 1, &mut h);
    t.process(&k.c(5, 0, 0, &body[5..20]), 1, &mut h);
    t.process(&k.c(0, 0, 0, &body[..5]), 1, &mut h);
    assert_eq!(h.flows[0].stream(ToServer), vec![Ev::Data(body.clone())]);
    // server offset 0 is sequence number 0: a lost segment across nothing,
    // then an ACK gap computed across the wrap on the client side
    t.process(&k.c(40, 0, 0, b"tail"), 2, &mut h); // offsets 40..44
                                                   // 44..50 lost, 50..52 buffered, server acknowledges 52
    t.process(&k.c(50, 0, 0, b"zz"), 2, &mut h);
    t.process(&k.s(0, 52, 0, b"ok"), 3, &mut h);
    let mut want = body.clone();
    want.extend_from_slice(b"tail");
    assert_eq!(h.flows[0].stream(ToServer), vec![Ev::Data(want), Ev::Gap(6), data(b"zz")]);
    assert_eq!(h.flows[0].stream(ToClient), vec![data(b"ok")]);
}

#[test]
fn per_direction_limit_forces_a_gap() {
    let limits = FlowLimits { max_ooo_bytes_per_dir: 1000, ..FlowLimits::default() };
    let mut t = FlowTable::new(limits);
    let mut h = Recorder::default();
    let k = Conn::new(1, 1);
    k.handshake(&mut t, &mut h, 0);
    let body = pattern(1600, 4);
    // 0..100 lost; 150-byte segments from 100 on: four fit (4 × (150 + 64)
    // bytes charged), the fifth does not.
    for i in 0..10u32 {
        let a = 100 + 150 * i as usize;
        t.process(&k.c(a as u32, 0, 0, &body[a..a + 150]), 1, &mut h);
        assert!(t.ooo_bytes() <= 1000);
    }
    assert_eq!(h.flows[0].stream(ToServer), vec![Ev::Gap(100), Ev::Data(body[100..].to_vec())]);
    let s = t.stats();
    assert_eq!((s.ooo_dropped_dir_limit, s.ooo_dropped_total_limit, s.gaps, s.gap_bytes), (1, 0, 1, 100));

    // The segment-count limit works the same way.
    let limits = FlowLimits { max_ooo_segments_per_dir: 3, ..FlowLimits::default() };
    let mut t = FlowTable::new(limits);
    let mut h = Recorder::default();
    k.handshake(&mut t, &mut h, 0);
    for off in [10u32, 20, 30, 40] {
        t.process(&k.c(off, 0, 0, b"x"), 1, &mut h);
    }
    assert_eq!(h.flows[0].stream(ToServer), vec![Ev::Gap(10), data(b"x")]);
    assert_eq!(t.stats().ooo_dropped_dir_limit, 1);
}

#[test]
fn global_limit_forces_a_gap() {
    let limits = FlowLimits { max_ooo_bytes_total: 1000, max_ooo_bytes_per_dir: 1000, ..FlowLimits::default() };
    let mut t = FlowTable::new(limits);
    let mut h = Recorder::default();
    let a = Conn::new(1, 1);
    let b = Conn { c: sa(3, 40001), ..a };
    a.handshake(&mut t, &mut h, 0);
    b.handshake(&mut t, &mut h, 0);
    t.process(&a.c(10, 0, 0, &[1; 800]), 1, &mut h);
    let held = 800 + reassembly::PIECE_OVERHEAD;
    assert_eq!(t.ooo_bytes(), held);
    t.process(&b.c(10, 0, 0, &[2; 300]), 1, &mut h);
    assert_eq!(h.flows[1].stream(ToServer), vec![Ev::Gap(10), data(&[2; 300])]);
    assert!(h.flows[0].dirs[0].is_empty(), "the other flow keeps its buffer");
    assert_eq!(t.ooo_bytes(), held);
    let s = t.stats();
    assert_eq!((s.ooo_dropped_total_limit, s.ooo_dropped_dir_limit), (1, 0));
    t.flush_all(2, &mut h);
    assert_eq!(h.flows[0].stream(ToServer), vec![Ev::Gap(10), data(&[1; 800]), Ev::End]);
    assert_eq!(t.ooo_bytes(), 0);
}

#[test]
fn full_table_evicts_the_least_recently_active_flow() {
    let limits = FlowLimits { max_flows: 3, ..FlowLimits::default() };
    let mut t = FlowTable::new(limits);
    let mut h = Recorder::default();
    let conns: Vec<Conn> = (0..5).map(|i| Conn { c: sa(1, 40000 + i), ..Conn::new(7, 9) }).collect();
    for (i, k) in conns[..3].iter().enumerate() {
        t.process(&k.c(0, 0, 0, b"hi"), i as u64 + 1, &mut h);
    }
    t.process(&conns[1].c(4, 0, 0, b"buffered"), 4, &mut h); // flow 1 holds a hole
    t.process(&conns[0].c(2, 0, 0, b"!"), 5, &mut h); // flow 0 active again
    t.process(&conns[3].c(0, 0, 0, b"new"), 6, &mut h); // evicts flow 2 (last active at 3)
    assert_eq!(t.len(), 3);
    assert_eq!(h.flows[2].closed, Some(6));
    assert_eq!(h.flows[2].stream(ToServer), vec![data(b"hi"), Ev::End]);
    assert_eq!(h.flows[2].stream(ToClient), vec![Ev::End]);
    t.process(&conns[4].c(0, 0, 0, b"newer"), 7, &mut h); // evicts flow 1 (last active at 4)
    assert_eq!(h.flows[1].stream(ToServer), vec![data(b"hi"), Ev::Gap(2), data(b"buffered"), Ev::End]);
    assert_eq!(h.flows[0].closed, None);
    assert_eq!(t.stats().flows_evicted_limit, 2);
    assert_eq!(t.ooo_bytes(), 0);
}

#[test]
fn timeouts_close_idle_handshake_only_and_closed_flows() {
    let (mut t, mut h) = table();
    let idle = Conn::new(1, 1);
    let syn_only = Conn { c: sa(3, 1), ..idle };
    t.process(&idle.c(0, 0, 0, b"x"), 0, &mut h);
    t.process(&syn_only.syn(), 0, &mut h);
    t.expire(30 * SEC - 1, &mut h);
    assert_eq!(t.len(), 2);
    t.expire(30 * SEC, &mut h);
    assert_eq!((t.len(), h.flows[1].closed), (1, Some(30 * SEC)));
    t.process(&idle.c(1, 0, 0, b"y"), 100 * SEC, &mut h); // activity postpones the idle timeout
    t.expire(219 * SEC, &mut h);
    assert_eq!(t.len(), 1);
    t.expire(220 * SEC, &mut h);
    assert_eq!(t.len(), 0);
    assert_eq!(h.flows[0].stream(ToServer), vec![data(b"xy"), Ev::End]);
    assert_eq!(t.stats().flows_timed_out, 2);
}

#[test]
fn a_new_syn_reuses_the_port() {
    let (mut t, mut h) = table();
    let k = Conn::new(1000, 2000);
    k.handshake(&mut t, &mut h, 0);
    t.process(&k.c(0, 0, FIN, b"bye"), 1, &mut h);
    t.process(&k.s(0, 4, FIN, b""), 2, &mut h);
    assert_eq!(t.len(), 1);
    // Same 4-tuple, new connection, before closed_timeout.
    let k2 = Conn::new(900_000, 3000);
    t.process(&k2.syn(), 3, &mut h);
    assert_eq!(h.flows.len(), 2);
    assert_eq!(h.flows[0].closed, Some(3));
    t.process(&k2.syn(), 4, &mut h); // retransmitted SYN: same flow
    t.process(&k2.syn_ack(), 4, &mut h);
    t.process(&k2.c(0, 0, 0, b"again"), 5, &mut h);
    assert_eq!(h.flows.len(), 2);
    assert_eq!(h.flows[1].stream(ToServer), vec![data(b"again")]);
    // A SYN with another ISN on an open flow supersedes it.
    let k3 = Conn::new(5, 6);
    t.process(&k3.syn(), 6, &mut h);
    assert_eq!(h.flows.len(), 3);
    assert_eq!(h.flows[1].stream(ToServer), vec![data(b"again"), Ev::End]);
    let s = t.stats();
    assert_eq!((s.port_reuse, s.flows_closed, s.flows_superseded, t.len()), (2, 1, 1, 1));
}

#[test]
fn stale_heap_entries_stay_bounded() {
    let (mut t, mut h) = table();
    // Port reuse churn and RSTs at a standing packet time: every flow leaves
    // stale entries behind, which must not accumulate.
    for i in 0..20_000u32 {
        let k = Conn::new(i.wrapping_mul(100_003), 7);
        t.process(&k.syn(), 1, &mut h);
        if i % 3 == 0 {
            t.process(&seg(k.s, k.c, 8, 0, RST, b""), 1, &mut h);
        }
        assert!(t.heap_len() <= 2 * t.len() + 1024 + 1);
    }
    assert_eq!(t.len(), 1);
    assert_eq!(t.stats().port_reuse, 19_999);
}

#[test]
fn bare_acks_and_rsts_do_not_create_flows() {
    let (mut t, mut h) = table();
    let k = Conn::new(1, 2);
    t.process(&k.c(0, 0, 0, b""), 0, &mut h);
    t.process(&seg(k.c, k.s, 1, 2, RST, b""), 0, &mut h);
    t.process(&seg(k.c, k.s, 1, 2, RST | SYN, b""), 0, &mut h);
    assert_eq!((t.len(), t.stats().segments_no_flow), (0, 3));
}

#[test]
fn flush_all_delivers_buffered_bytes_and_closes_everything() {
    let (mut t, mut h) = table();
    let k = Conn::new(1, 2);
    k.handshake(&mut t, &mut h, 0);
    t.process(&k.c(0, 0, 0, b"ab"), 1, &mut h);
    t.process(&k.c(5, 0, FIN, b"fg"), 1, &mut h);
    t.process(&k.s(3, 0, 0, b"late"), 1, &mut h);
    t.flush_all(9, &mut h);
    let f = &h.flows[0];
    assert_eq!(f.stream(ToServer), vec![data(b"ab"), Ev::Gap(3), data(b"fg"), Ev::End]);
    assert_eq!(f.stream(ToClient), vec![Ev::Gap(3), data(b"late"), Ev::End]);
    assert_eq!(f.closed, Some(9));
    assert_eq!((t.len(), t.ooo_bytes(), t.stats().flows_flushed), (0, 0, 1));
    // The table is usable afterwards.
    k.handshake(&mut t, &mut h, 10);
    assert_eq!(t.len(), 1);
}

#[test]
fn a_socket_talking_to_itself_does_not_confuse_the_table() {
    let (mut t, mut h) = table();
    let a = sa(1, 1234);
    t.process(&seg(a, a, 10, 10, SYN, b""), 0, &mut h);
    t.process(&seg(a, a, 10, 11, SYN | ACK, b""), 0, &mut h);
    t.process(&seg(a, a, 11, 11, ACK, b"self"), 0, &mut h);
    t.flush_all(1, &mut h);
    assert_eq!(h.flows[0].bytes(ToServer), b"self");
}

#[test]
fn limits_validate() {
    assert_eq!(FlowLimits::default().validate(), Ok(()));
    let l = FlowLimits { max_flows: 0, ..FlowLimits::default() };
    assert!(matches!(l.validate(), Err(FlowLimitsError::Zero { name: "max_flows", .. })));
    let l = FlowLimits { max_ooo_bytes_total: 10, ..FlowLimits::default() };
    assert!(l.validate().unwrap_err().to_string().contains("max_ooo_bytes_total"));
    // The table accepts even a zero limit.
    let mut t = FlowTable::new(FlowLimits { max_flows: 0, ..FlowLimits::default() });
    let mut h = Recorder::default();
    Conn::new(1, 1).handshake(&mut t, &mut h, 0);
    assert_eq!(t.len(), 1);
}

#[test]
fn stats_serialise_as_flat_counters() {
    let (t, _) = table();
    let v = serde_json::to_value(t.stats()).expect("counters serialise");
    let obj = v.as_object().expect("an object");
    assert!(obj.len() >= 20);
    assert!(obj.values().all(|x| x.as_u64() == Some(0)));
    assert!(obj.contains_key("overlap_conflicts"));
}

/// Checks that the Data chunks of `events` sit at their right place in
/// `original` (gaps advance the position). Returns the final position and
/// the delivered positions.
fn check_positions(events: &[Ev], original: &[u8]) -> (u64, Vec<bool>) {
    let mut pos = 0u64;
    let mut seen = vec![false; original.len()];
    for e in events {
        match e {
            Ev::Data(d) => {
                let at = pos as usize;
                assert!(at + d.len() <= original.len(), "data beyond the stream at {pos}");
                assert_eq!(&original[at..at + d.len()], &d[..], "data misplaced at {pos}");
                seen[at..at + d.len()].iter_mut().for_each(|s| *s = true);
                pos += d.len() as u64;
            }
            Ev::Gap(n) => pos += n,
            Ev::End => {}
        }
    }
    (pos, seen)
}

#[test]
fn property_capture_loss_becomes_gaps_of_the_right_length() {
    let mut rng = Rng(0xdead_beef_1234_5678);
    for trial in 0..400 {
        let (mut t, mut h) = table();
        let k = Conn::new(rng.next() as u32, rng.next() as u32);
        k.handshake(&mut t, &mut h, 0);
        let len = 1 + rng.below(5000) as usize;
        let body = pattern(len, trial as u8);
        let mut segs: Vec<(usize, usize)> = Vec::new();
        let mut at = 0;
        while at < len {
            let n = (1 + rng.below(600) as usize).min(len - at);
            segs.push((at, at + n));
            at += n;
        }
        // The network reorders a little and duplicates some segments; the
        // receiver gets everything; the capture loses about one segment in
        // eight and one ACK in four.
        for i in 0..segs.len() {
            let j = (i + rng.below(3) as usize).min(segs.len() - 1);
            segs.swap(i, j);
        }
        for _ in 0..rng.below(4) {
            let i = rng.below(segs.len() as u64) as usize;
            segs.insert(i + rng.below((segs.len() - i) as u64) as usize, segs[i]);
        }
        let mut received = vec![false; len];
        let mut captured = vec![false; len];
        for (a, b) in &segs {
            let fin = *b == len;
            if rng.below(8) != 0 {
                t.process(&k.c(*a as u32, 0, if fin { FIN } else { 0 }, &body[*a..*b]), 1, &mut h);
                // Bytes captured on their first transmission precede any
                // ACK that covers them, so they must be delivered.
                for i in *a..*b {
                    captured[i] |= !received[i];
                }
            }
            received[*a..*b].iter_mut().for_each(|r| *r = true);
            if rng.below(4) != 0 {
                let contiguous = received.iter().position(|r| !r).unwrap_or(len);
                // The FIN is acknowledged too once everything arrived.
                let ack = contiguous as u32 + u32::from(contiguous == len);
                t.process(&k.s(0, ack, 0, b""), 1, &mut h);
            }
        }
        t.flush_all(2, &mut h);
        let events = &h.flows[0].dirs[0];
        let (end, delivered) = check_positions(events, &body);
        // A lost FIN can make the final gap one byte too long (see Chunk::Gap).
        assert!(end <= len as u64 + 1, "trial {trial}: ended at {end} of {len}");
        for i in 0..len {
            assert!(!captured[i] || delivered[i], "trial {trial}: captured byte {i} not delivered");
        }
        let data: u64 = events.iter().map(|e| if let Ev::Data(d) = e { d.len() as u64 } else { 0 }).sum();
        let gaps: u64 = events.iter().map(|e| if let Ev::Gap(n) = e { *n } else { 0 }).sum();
        assert_eq!(data + gaps, end);
        assert_eq!(events.last(), Some(&Ev::End));
    }
}

/// Segments with arbitrary addresses (from a small set, so that they
/// collide), sequence and acknowledgment numbers, flags, payloads and
/// timestamps (sometimes going backwards), against small limits.
fn hostile_segment<'a>(rng: &mut Rng, last: &mut [u32; 4], buf: &'a [u8], calm: bool) -> TcpSegment<'a> {
    let (src, dst) = if calm {
        // Three connections, mostly plain ACK segments moving forward:
        // buffers fill and limits bite.
        let (c, s) = (sa(1, 40000 + rng.below(3) as u16), sa(2, 80));
        if rng.below(2) == 0 {
            (c, s)
        } else {
            (s, c)
        }
    } else {
        let ports = [80, 1000, 40000];
        (
            sa(1 + rng.below(2) as u8, ports[rng.below(3) as usize]),
            sa(1 + rng.below(2) as u8, ports[rng.below(3) as usize]),
        )
    };
    let slot = rng.below(4) as usize;
    let seq = match rng.below(if calm { 50 } else { 4 }) {
        0 => rng.next() as u32,
        _ => last[slot].wrapping_add(rng.below(600) as u32).wrapping_sub(200),
    };
    last[slot] = seq;
    let ack = match rng.below(3) {
        0 => rng.next() as u32,
        _ => last[rng.below(4) as usize].wrapping_add(rng.below(400) as u32),
    };
    let flags = match rng.below(if calm { 200 } else { 4 }) {
        0 => rng.next() as u8,
        _ if calm => ACK,
        _ => ACK | [0, 0, 0, SYN, FIN, RST, SYN | ACK][rng.below(7) as usize],
    };
    let a = rng.below(buf.len() as u64) as usize;
    let n = rng.below(120).min((buf.len() - a) as u64) as usize;
    TcpSegment { src, dst, seq, ack, flags: TcpFlags(flags), window: rng.next() as u16, payload: &buf[a..a + n] }
}

#[test]
fn property_hostile_segments_never_break_the_contract() {
    let limits = FlowLimits {
        max_flows: 12,
        max_ooo_bytes_per_dir: 300,
        max_ooo_segments_per_dir: 6,
        max_ooo_bytes_total: 700,
        idle_timeout_us: 3_000,
        closed_timeout_us: 200,
        syn_timeout_us: 1_000,
    };
    let buf = pattern(4096, 0);
    let mut total = FlowStats::default();
    for seed in 1..=16u64 {
        let calm = seed % 2 == 0;
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut t = FlowTable::new(limits.clone());
        let mut h = Recorder::default();
        let mut last = [0u32; 4];
        let mut ts = 0u64;
        for i in 0..40_000 {
            ts = match rng.below(100) {
                0..=4 => ts.saturating_sub(rng.below(500)),
                5 => ts + 5_000,
                _ => ts + rng.below(50),
            };
            let s = hostile_segment(&mut rng, &mut last, &buf, calm);
            t.process(&s, ts, &mut h);
            assert!(t.len() <= 12);
            assert!(t.ooo_bytes() <= 700);
            if i % 64 == 0 {
                t.expire(ts, &mut h);
            }
        }
        t.flush_all(ts, &mut h);
        assert_eq!((t.len(), t.ooo_bytes()), (0, 0));
        assert!(h.flows.iter().all(|f| f.closed.is_some()));
        let s = t.stats();
        assert_eq!(s.flows_created, h.flows.len() as u64);
        assert_eq!(
            s.flows_created,
            s.flows_closed + s.flows_timed_out + s.flows_evicted_limit + s.flows_superseded + s.flows_flushed
        );
        total.flows_evicted_limit += s.flows_evicted_limit;
        total.flows_timed_out += s.flows_timed_out;
        total.overlap_conflicts += s.overlap_conflicts;
        total.ack_gaps += s.ack_gaps;
        total.ooo_dropped_dir_limit += s.ooo_dropped_dir_limit;
        total.ooo_dropped_total_limit += s.ooo_dropped_total_limit;
    }
    // The run reached the paths it is meant to exercise.
    let t = total;
    assert!(t.flows_evicted_limit > 0 && t.flows_timed_out > 0 && t.overlap_conflicts > 0 && t.ack_gaps > 0, "{t:?}");
    assert!(t.ooo_dropped_dir_limit > 0 && t.ooo_dropped_total_limit > 0, "{t:?}");
}

#[test]
fn property_honest_stream_is_exact_among_hostile_neighbours() {
    let buf = pattern(4096, 7);
    for seed in 1..=20u64 {
        let mut rng = Rng(seed ^ 0x0123_4567_89ab_cdef);
        let (mut t, mut h) = table();
        let k = Conn { c: sa(9, 50000), s: sa(9, 443), ..Conn::new(rng.next() as u32, rng.next() as u32) };
        k.handshake(&mut t, &mut h, 0);
        let honest = h.flows.len() - 1;
        let len = 20_000 + rng.below(20_000) as usize;
        let body = pattern(len, seed as u8);
        let mut segs: Vec<(usize, usize)> = Vec::new();
        let mut at = 0;
        while at < len {
            let n = (1 + rng.below(1460) as usize).min(len - at);
            segs.push((at, at + n));
            at += n;
        }
        for i in 0..segs.len() {
            let j = (i + rng.below(8) as usize).min(segs.len() - 1);
            segs.swap(i, j);
        }
        let mut last = [0u32; 4];
        let mut sent = vec![false; len];
        for (i, (a, b)) in segs.iter().enumerate() {
            for _ in 0..rng.below(4) {
                let s = hostile_segment(&mut rng, &mut last, &buf, i % 2 == 0);
                t.process(&s, i as u64, &mut h);
            }
            let fin = if *b == len { FIN } else { 0 };
            t.process(&k.c(*a as u32, 0, fin, &body[*a..*b]), i as u64, &mut h);
            if rng.below(5) == 0 {
                t.process(&k.c(*a as u32, 0, fin, &body[*a..*b]), i as u64, &mut h);
                // duplicate
            }
            sent[*a..*b].iter_mut().for_each(|x| *x = true);
            let contiguous = sent.iter().position(|x| !x).unwrap_or(len) as u32;
            t.process(&k.s(0, contiguous, 0, b""), i as u64, &mut h);
        }
        assert_eq!(h.flows[honest].stream(ToServer), vec![Ev::Data(body), Ev::End], "seed {seed}");
        t.flush_all(u64::MAX, &mut h);
    }
}
