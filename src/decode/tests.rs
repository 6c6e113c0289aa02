//! Tests: every link type and encapsulation built by hand, every truncation
//! length, random mutations, fragment reassembly policies, and the real
//! captures of the shared corpus.

#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::*;

// ---------------------------------------------------------------------------
// Frame builders. Checksums are left at zero: the decoder does not read them.
// ---------------------------------------------------------------------------

const PAYLOAD: &[u8] = b"GET /api/v1/items?id=7 HTTP/1.1\r\nHost: example.test\r\n\r\n";
const C4: [u8; 4] = [10, 0, 0, 1];
const S4: [u8; 4] = [10, 0, 0, 2];
const O4A: [u8; 4] = [192, 0, 2, 1];
const O4B: [u8; 4] = [192, 0, 2, 2];
const C6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const S6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const O6A: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa];
const O6B: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xb];
const SPORT: u16 = 40000;
const DPORT: u16 = 80;
const SEQ: u32 = 0x0102_0304;
const ACK: u32 = 0xa0b0_c0d0;
const WINDOW: u16 = 502;
const PSH_ACK: u8 = TcpFlags::PSH | TcpFlags::ACK;

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn tcp_with(sport: u16, dport: u16, opts: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let doff = ((20 + opts.len()) / 4) as u8;
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&SEQ.to_be_bytes());
    h.extend_from_slice(&ACK.to_be_bytes());
    h.push(doff << 4);
    h.push(PSH_ACK);
    h.extend_from_slice(&WINDOW.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h.extend_from_slice(opts);
    h.extend_from_slice(payload);
    h
}

fn tcp(payload: &[u8]) -> Vec<u8> {
    tcp_with(SPORT, DPORT, &[], payload)
}

fn ipv4_full(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    id: u16,
    frag: u16,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let hl = 20 + opts.len();
    let total = (hl + payload.len()) as u16;
    let mut h = vec![0x40 | (hl / 4) as u8, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(opts);
    h.extend_from_slice(payload);
    h
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_full(src, dst, proto, 0x1234, 0x4000, &[], payload)
}

fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

fn eth(et: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A VLAN tag body (TCI, inner EtherType) followed by `payload`.
fn tag(vid: u16, inner: u16, payload: &[u8]) -> Vec<u8> {
    cat(&[&vid.to_be_bytes(), &inner.to_be_bytes(), payload])
}

fn mpls_label(label: u32, bottom: bool) -> [u8; 4] {
    let v = (label << 12) | (u32::from(bottom) << 8) | 64;
    v.to_be_bytes()
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&sport.to_be_bytes());
    h.extend_from_slice(&dport.to_be_bytes());
    h.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(payload);
    h
}

fn gre(flags: u8, proto: u16, fields: &[u8], payload: &[u8]) -> Vec<u8> {
    cat(&[&[flags, 0], &proto.to_be_bytes(), fields, payload])
}

fn v4_tcp() -> Vec<u8> {
    ipv4(C4, S4, 6, &tcp(PAYLOAD))
}

fn v6_tcp() -> Vec<u8> {
    ipv6(C6, S6, 6, &tcp(PAYLOAD))
}

fn sa4(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port)
}

fn sa6(ip: [u8; 16], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)
}

/// Frames per link type and encapsulation, each carrying the same TCP
/// segment from a client to port 80.
struct Case {
    name: &'static str,
    link: LinkType,
    frame: Vec<u8>,
    v6: bool,
    vlan: bool,
    mpls: bool,
    tunnels: bool,
}

fn case(name: &'static str, link: LinkType, frame: Vec<u8>, v6: bool) -> Case {
    Case {
        name,
        link,
        frame,
        v6,
        vlan: false,
        mpls: false,
        tunnels: false,
    }
}

impl Case {
    fn vlan(mut self) -> Case {
        self.vlan = true;
        self
    }
    fn mpls(mut self) -> Case {
        self.mpls = true;
        self
    }
    fn tunnel(mut self) -> Case {
        self.tunnels = true;
        self
    }
}

fn ext_chain_v6() -> Vec<u8> {
    // HBH(8, PadN) -> Destination options(16) -> Routing(type 0, 8) -> AH(12+4) -> TCP
    let hbh = [60u8, 0, 1, 4, 0, 0, 0, 0];
    let dst = [43u8, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let rt = [51u8, 0, 0, 0, 0, 0, 0, 0];
    // AH: payload len = (total/4) - 2 = (16/4) - 2 = 2
    let ah = [6u8, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd];
    ipv6(C6, S6, 0, &cat(&[&hbh, &dst, &rt, &ah, &tcp(PAYLOAD)]))
}

fn nflog(family: u8, packet: &[u8]) -> Vec<u8> {
    let mut f = vec![family, 0, 0, 42];
    // NFULA_PACKET_HDR (1): 8 bytes value
    f.extend_from_slice(&[8, 0, 1, 0, 0x08, 0x00, 3, 0]);
    // NFULA_PREFIX (10): "abc\0\0" -> length 9, padded to 12
    f.extend_from_slice(&[9, 0, 10, 0, b'a', b'b', b'c', 0, 0, 0, 0, 0]);
    // NFULA_UID (11)
    f.extend_from_slice(&[8, 0, 11, 0, 0, 0, 0, 0]);
    // NFULA_PAYLOAD (9)
    f.extend_from_slice(&((4 + packet.len()) as u16).to_le_bytes());
    f.extend_from_slice(&[9, 0]);
    f.extend_from_slice(packet);
    while f.len() % 4 != 0 {
        f.push(0);
    }
    f
}

fn sll(proto: u16, packet: &[u8]) -> Vec<u8> {
    cat(&[
        &[0, 0, 0, 1, 0, 6],
        &[2, 0, 0, 0, 0, 1, 0, 0],
        &proto.to_be_bytes(),
        packet,
    ])
}

fn sll2(proto: u16, packet: &[u8]) -> Vec<u8> {
    cat(&[
        &proto.to_be_bytes(),
        &[0, 0],
        &[0, 0, 0, 2],
        &[0, 1],
        &[0, 6],
        &[2, 0, 0, 0, 0, 1, 0, 0],
        packet,
    ])
}

fn cases() -> Vec<Case> {
    use LinkType as L;
    let v4 = v4_tcp();
    let v6 = v6_tcp();
    let inner_eth4 = eth(0x0800, &v4);
    let inner_eth6 = eth(0x86DD, &v6);
    let outer4 = |proto: u8, p: &[u8]| eth(0x0800, &ipv4(O4A, O4B, proto, p));
    let outer6 = |proto: u8, p: &[u8]| eth(0x86DD, &ipv6(O6A, O6B, proto, p));
    let erspan2_hdr = [0x10, 0x00, 0x00, 0x01, 0, 0, 0, 7];
    let erspan3_hdr = |ft: u8, o: bool| {
        let mut h = vec![
            0x20,
            0x00,
            0x00,
            0x01,
            0,
            0,
            0,
            0,
            0,
            0,
            ft << 2,
            u8::from(o),
        ];
        if o {
            h.extend_from_slice(&[0; 8]);
        }
        h
    };
    vec![
        case("ethernet-ipv4", L::Ethernet, eth(0x0800, &v4), false),
        case("ethernet-ipv6", L::Ethernet, eth(0x86DD, &v6), true),
        case(
            "ethernet-ipv4-options-tcp-options",
            L::Ethernet,
            eth(
                0x0800,
                &ipv4_full(
                    C4,
                    S4,
                    6,
                    1,
                    0x4000,
                    &[1, 1, 1, 0],
                    &tcp_with(
                        SPORT,
                        DPORT,
                        &[2, 4, 5, 0xb4, 1, 3, 3, 7, 4, 2, 0, 0],
                        PAYLOAD,
                    ),
                ),
            ),
            false,
        ),
        case(
            "vlan",
            L::Ethernet,
            eth(0x8100, &tag(100, 0x0800, &v4)),
            false,
        )
        .vlan(),
        case(
            "vlan-0",
            L::Ethernet,
            eth(0x8100, &tag(0, 0x86DD, &v6)),
            true,
        )
        .vlan(),
        case(
            "qinq",
            L::Ethernet,
            eth(0x88A8, &tag(10, 0x8100, &tag(20, 0x0800, &v4))),
            false,
        )
        .vlan(),
        case(
            "qinqinq",
            L::Ethernet,
            eth(
                0x9100,
                &tag(1, 0x88A8, &tag(2, 0x8100, &tag(3, 0x0800, &v4))),
            ),
            false,
        )
        .vlan(),
        case(
            "mpls",
            L::Ethernet,
            eth(0x8847, &cat(&[&mpls_label(16, true), &v4])),
            false,
        )
        .mpls(),
        case(
            "mpls-stack-ipv6",
            L::Ethernet,
            eth(
                0x8847,
                &cat(&[
                    &mpls_label(16, false),
                    &mpls_label(17, false),
                    &mpls_label(18, true),
                    &v6,
                ]),
            ),
            true,
        )
        .mpls(),
        case(
            "mpls-multicast",
            L::Ethernet,
            eth(0x8848, &cat(&[&mpls_label(5, true), &v4])),
            false,
        )
        .mpls(),
        case(
            "mpls-in-vlan",
            L::Ethernet,
            eth(
                0x8100,
                &tag(7, 0x8847, &cat(&[&mpls_label(1000, true), &v4])),
            ),
            false,
        )
        .vlan()
        .mpls(),
        case(
            "mpls-pw-ethernet-control-word",
            L::Ethernet,
            eth(
                0x8847,
                &cat(&[&mpls_label(99, true), &[0, 0, 0, 5], &inner_eth4]),
            ),
            false,
        )
        .mpls(),
        case(
            "mpls-pw-ethernet-no-control-word",
            L::Ethernet,
            eth(0x8847, &cat(&[&mpls_label(99, true), &inner_eth6])),
            true,
        )
        .mpls(),
        case(
            "pppoe-ipv4",
            L::Ethernet,
            eth(
                0x8864,
                &cat(&[
                    &[0x11, 0, 0, 1],
                    &((v4.len() + 2) as u16).to_be_bytes(),
                    &[0, 0x21],
                    &v4,
                ]),
            ),
            false,
        ),
        case(
            "pppoe-ipv6",
            L::Ethernet,
            eth(
                0x8864,
                &cat(&[
                    &[0x11, 0, 0, 1],
                    &((v6.len() + 2) as u16).to_be_bytes(),
                    &[0, 0x57],
                    &v6,
                ]),
            ),
            true,
        ),
        case("sll-ipv4", L::LinuxSll, sll(0x0800, &v4), false),
        case(
            "sll-vlan-ipv6",
            L::LinuxSll,
            sll(0x8100, &tag(5, 0x86DD, &v6)),
            true,
        )
        .vlan(),
        case("sll2-ipv4", L::LinuxSll2, sll2(0x0800, &v4), false),
        case("sll2-ipv6", L::LinuxSll2, sll2(0x86DD, &v6), true),
        case("nflog-ipv4", L::Nflog, nflog(2, &v4), false),
        case("nflog-ipv6", L::Nflog, nflog(10, &v6), true),
        case(
            "null-host-order-ipv4",
            L::Null,
            cat(&[&2u32.to_le_bytes(), &v4]),
            false,
        ),
        case(
            "loop-network-order-ipv4",
            L::Null,
            cat(&[&2u32.to_be_bytes(), &v4]),
            false,
        ),
        case(
            "null-ipv6-24",
            L::Null,
            cat(&[&24u32.to_le_bytes(), &v6]),
            true,
        ),
        case(
            "null-ipv6-28",
            L::Null,
            cat(&[&28u32.to_le_bytes(), &v6]),
            true,
        ),
        case(
            "null-ipv6-30",
            L::Null,
            cat(&[&30u32.to_le_bytes(), &v6]),
            true,
        ),
        case(
            "loop-ipv6-30",
            L::Null,
            cat(&[&30u32.to_be_bytes(), &v6]),
            true,
        ),
        case("raw-ipv4", L::Raw, v4.clone(), false),
        case("raw-ipv6", L::Raw, v6.clone(), true),
        case("linktype-ipv4", L::Ipv4, v4.clone(), false),
        case("linktype-ipv6", L::Ipv6, v6.clone(), true),
        case("ipv6-extension-headers", L::Raw, ext_chain_v6(), true),
        case(
            "ipv6-atomic-fragment",
            L::Raw,
            ipv6(
                C6,
                S6,
                44,
                &cat(&[&[6, 0, 0, 0, 0, 0, 0, 9], &tcp(PAYLOAD)]),
            ),
            true,
        ),
        case(
            "ipv4-ah",
            L::Raw,
            ipv4(
                C4,
                S4,
                51,
                &cat(&[&[6u8, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], &tcp(PAYLOAD)]),
            ),
            false,
        ),
        case(
            "gre-ipv4",
            L::Ethernet,
            outer4(47, &gre(0, 0x0800, &[], &v4)),
            false,
        )
        .tunnel(),
        case(
            "gre-checksum-key-seq",
            L::Ethernet,
            outer4(
                47,
                &gre(0xB0, 0x86DD, &[0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 1], &v6),
            ),
            true,
        )
        .tunnel(),
        case(
            "gre-routing",
            L::Ethernet,
            outer4(
                47,
                &gre(
                    0x40,
                    0x0800,
                    &[0, 0, 0, 0, 0x08, 0x00, 0, 4, 1, 2, 3, 4, 0, 0, 0, 0],
                    &v4,
                ),
            ),
            false,
        )
        .tunnel(),
        case(
            "gre-teb",
            L::Ethernet,
            outer4(47, &gre(0x20, 0x6558, &[0, 0, 0, 1], &inner_eth4)),
            false,
        )
        .tunnel(),
        case(
            "gre-mpls",
            L::Ethernet,
            outer4(47, &gre(0, 0x8847, &[], &cat(&[&mpls_label(3, true), &v4]))),
            false,
        )
        .tunnel()
        .mpls(),
        case(
            "erspan-i",
            L::Ethernet,
            outer4(47, &gre(0, 0x88BE, &[], &inner_eth4)),
            false,
        )
        .tunnel(),
        case(
            "erspan-ii",
            L::Ethernet,
            outer4(
                47,
                &gre(
                    0x10,
                    0x88BE,
                    &[0, 0, 0, 9],
                    &cat(&[&erspan2_hdr, &inner_eth6]),
                ),
            ),
            true,
        )
        .tunnel(),
        case(
            "erspan-iii",
            L::Ethernet,
            outer4(
                47,
                &gre(
                    0x10,
                    0x22EB,
                    &[0, 0, 0, 9],
                    &cat(&[&erspan3_hdr(0, false), &eth(0x8100, &tag(9, 0x0800, &v4))]),
                ),
            ),
            false,
        )
        .tunnel()
        .vlan(),
        case(
            "erspan-iii-subheader",
            L::Ethernet,
            outer4(
                47,
                &gre(
                    0x10,
                    0x22EB,
                    &[0, 0, 0, 9],
                    &cat(&[&erspan3_hdr(0, true), &inner_eth4]),
                ),
            ),
            false,
        )
        .tunnel(),
        case(
            "erspan-iii-ip-frame",
            L::Ethernet,
            outer4(
                47,
                &gre(
                    0x10,
                    0x22EB,
                    &[0, 0, 0, 9],
                    &cat(&[&erspan3_hdr(2, false), &v6]),
                ),
            ),
            true,
        )
        .tunnel(),
        case(
            "gre-over-ipv6",
            L::Ethernet,
            outer6(47, &gre(0, 0x86DD, &[], &v6)),
            true,
        )
        .tunnel(),
        case(
            "vxlan",
            L::Ethernet,
            outer4(
                17,
                &udp(
                    51000,
                    4789,
                    &cat(&[&[0x08, 0, 0, 0, 0, 0, 100, 0], &inner_eth4]),
                ),
            ),
            false,
        )
        .tunnel(),
        case(
            "geneve-options",
            L::Ethernet,
            outer6(
                17,
                &udp(
                    51000,
                    6081,
                    &cat(&[
                        &[0x02, 0, 0x65, 0x58, 0, 0, 100, 0],
                        &[0, 1, 2, 1, 0, 0, 0, 0],
                        &inner_eth6,
                    ]),
                ),
            ),
            true,
        )
        .tunnel(),
        case(
            "geneve-ipv4",
            L::Ethernet,
            outer4(
                17,
                &udp(51000, 6081, &cat(&[&[0, 0, 0x08, 0x00, 0, 0, 1, 0], &v4])),
            ),
            false,
        )
        .tunnel(),
        case("ipv4-in-ipv4", L::Ethernet, outer4(4, &v4), false).tunnel(),
        case("ipv6-in-ipv4", L::Ethernet, outer4(41, &v6), true).tunnel(),
        case("ipv4-in-ipv6", L::Ethernet, outer6(4, &v4), false).tunnel(),
        case("ipv6-in-ipv6", L::Raw, ipv6(O6A, O6B, 41, &v6), true).tunnel(),
        case(
            "vxlan-in-gre-in-vlan",
            L::Ethernet,
            eth(
                0x8100,
                &tag(
                    3,
                    0x0800,
                    &ipv4(
                        O4A,
                        O4B,
                        47,
                        &gre(
                            0,
                            0x0800,
                            &[],
                            &ipv4(
                                O4B,
                                O4A,
                                17,
                                &udp(1, 4789, &cat(&[&[0x08, 0, 0, 0, 0, 0, 1, 0], &inner_eth6])),
                            ),
                        ),
                    ),
                ),
            ),
            true,
        )
        .vlan()
        .tunnel(),
    ]
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Every frame counts once in exactly one outcome counter.
fn check_invariant(d: &Decoder) {
    let s = d.stats();
    let sum = s.tcp
        + s.non_tcp
        + s.non_ip
        + s.truncated
        + s.bad_header
        + s.unsupported_link
        + s.tunnel_too_deep
        + s.frag_held
        + s.frag_refused;
    assert_eq!(s.packets, sum, "outcome counters do not add up: {s:?}");
}

#[derive(Debug, PartialEq)]
struct Seg {
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload: Vec<u8>,
}

fn seg(d: Decoded<'_>) -> Option<Seg> {
    match d {
        Decoded::Tcp(t) => Some(Seg {
            src: t.src,
            dst: t.dst,
            seq: t.seq,
            ack: t.ack,
            flags: t.flags.0,
            window: t.window,
            payload: t.payload.to_vec(),
        }),
        _ => None,
    }
}

fn expect_tcp(d: &mut Decoder, link: LinkType, ts: u64, frame: &[u8]) -> Seg {
    let r = d.decode(link, ts, frame);
    let s = seg(r).unwrap_or_else(|| panic!("expected TCP, got {r:?}"));
    s
}

fn outcome(r: &Decoded<'_>) -> &'static str {
    match r {
        Decoded::Tcp(_) => "tcp",
        Decoded::NotTcp => "not-tcp",
        Decoded::FragmentHeld => "held",
        Decoded::Malformed(_) => "malformed",
    }
}

/// Deterministic xorshift for the mutation tests.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

// ---------------------------------------------------------------------------
// Link types
// ---------------------------------------------------------------------------

#[test]
fn link_type_mapping() {
    let table = [
        (0, LinkType::Null, "NULL"),
        (108, LinkType::Null, "NULL"),
        (1, LinkType::Ethernet, "EN10MB"),
        (12, LinkType::Raw, "RAW"),
        (14, LinkType::Raw, "RAW"),
        (101, LinkType::Raw, "RAW"),
        (113, LinkType::LinuxSll, "LINUX_SLL"),
        (228, LinkType::Ipv4, "IPV4"),
        (229, LinkType::Ipv6, "IPV6"),
        (239, LinkType::Nflog, "NFLOG"),
        (276, LinkType::LinuxSll2, "LINUX_SLL2"),
    ];
    for (dlt, lt, name) in table {
        assert_eq!(LinkType::from_dlt(dlt), lt);
        assert!(lt.is_supported());
        assert_eq!(lt.name(), name);
        assert_eq!(LinkType::from_dlt(lt.dlt()), lt);
    }
    let unknown = LinkType::from_dlt(127);
    assert_eq!(unknown, LinkType::Unknown(127));
    assert!(!unknown.is_supported());
    assert_eq!(unknown.name(), "UNKNOWN");
    assert_eq!(unknown.to_string(), "UNKNOWN(127)");
    assert_eq!(unknown.dlt(), 127);

    let mut d = Decoder::new(DecodeLimits::default());
    assert!(matches!(
        d.decode(unknown, 0, &v4_tcp()),
        Decoded::Malformed(DropReason::UnsupportedLink)
    ));
    assert_eq!(d.stats().unsupported_link, 1);
    assert_eq!(
        d.last_error(),
        Some(DecodeError {
            layer: Layer::Link,
            reason: DropReason::UnsupportedLink
        })
    );
    assert_eq!(
        d.last_error().unwrap().to_string(),
        "unsupported link type (link layer)"
    );
    check_invariant(&d);
}

#[test]
fn defaults() {
    let l = DecodeLimits::default();
    assert_eq!(l.max_frag_datagrams, 1024);
    assert_eq!(l.max_frag_bytes, 16 * 1024 * 1024);
    assert_eq!(l.frag_timeout_us, 30_000_000);
    assert_eq!(l.max_tunnel_depth, 4);
}

// ---------------------------------------------------------------------------
// Every encapsulation, whole and cut at every length
// ---------------------------------------------------------------------------

#[test]
fn every_encapsulation_decodes() {
    let cases = cases();
    let mut names = BTreeSet::new();
    for c in &cases {
        assert!(names.insert(c.name), "duplicate case {}", c.name);
        let mut d = Decoder::new(DecodeLimits::default());
        let s = expect_tcp(&mut d, c.link, 1, &c.frame);
        let (src, dst) = if c.v6 {
            (sa6(C6, SPORT), sa6(S6, DPORT))
        } else {
            (sa4(C4, SPORT), sa4(S4, DPORT))
        };
        let want = Seg {
            src,
            dst,
            seq: SEQ,
            ack: ACK,
            flags: PSH_ACK,
            window: WINDOW,
            payload: PAYLOAD.to_vec(),
        };
        assert_eq!(s, want, "case {}", c.name);
        let st = d.stats();
        assert_eq!((st.packets, st.tcp), (1, 1), "case {}", c.name);
        assert_eq!(st.vlan, u64::from(c.vlan), "vlan counter, case {}", c.name);
        assert_eq!(st.mpls, u64::from(c.mpls), "mpls counter, case {}", c.name);
        assert_eq!(
            st.tunnels,
            u64::from(c.tunnels),
            "tunnel counter, case {}",
            c.name
        );
        assert_eq!(st.snap_truncated, 0, "case {}", c.name);
        check_invariant(&d);
    }
}

#[test]
fn ethernet_padding_is_trimmed() {
    let mut frame = eth(0x0800, &ipv4(C4, S4, 6, &tcp(b"hi")));
    frame.extend_from_slice(&[0; 12]);
    let mut d = Decoder::new(DecodeLimits::default());
    assert_eq!(
        expect_tcp(&mut d, LinkType::Ethernet, 0, &frame).payload,
        b"hi"
    );
    // Same for IPv6 and for a bare ACK.
    let mut frame = eth(0x86DD, &ipv6(C6, S6, 6, &tcp(b"")));
    frame.extend_from_slice(&[0xee; 6]);
    assert_eq!(
        expect_tcp(&mut d, LinkType::Ethernet, 0, &frame).payload,
        b""
    );
    assert_eq!(d.stats().snap_truncated, 0);
}

#[test]
fn every_truncation_length() {
    for c in cases() {
        let full_len = c.frame.len();
        for len in 0..=full_len {
            let mut d = Decoder::new(DecodeLimits::default());
            let r = d.decode(c.link, 0, &c.frame[..len]);
            let mut returned_len = None;
            match r {
                Decoded::Tcp(t) => {
                    returned_len = Some(t.payload.len());
                    assert_eq!(
                        (t.src.port(), t.dst.port()),
                        (SPORT, DPORT),
                        "{} cut at {len}",
                        c.name
                    );
                    assert!(PAYLOAD.starts_with(t.payload), "{} cut at {len}", c.name);
                    if len == full_len {
                        assert_eq!(t.payload, PAYLOAD);
                    }
                }
                Decoded::Malformed(reason) => {
                    assert!(len < full_len, "{}: whole frame malformed", c.name);
                    assert!(
                        matches!(reason, DropReason::Truncated | DropReason::BadHeader),
                        "{} cut at {len}: {reason:?}",
                        c.name
                    );
                    assert!(d.last_error().is_some());
                }
                Decoded::NotTcp | Decoded::FragmentHeld => assert!(len < full_len, "{}", c.name),
            }
            check_invariant(&d);
            // A cut inside the TCP payload is reported as a snap cut; a cut
            // in trailing padding is not.
            let cut_payload = returned_len.is_some_and(|n| n < PAYLOAD.len());
            assert_eq!(
                d.stats().snap_truncated,
                u64::from(cut_payload),
                "{} cut at {len}",
                c.name
            );
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut d = Decoder::new(DecodeLimits {
        max_frag_datagrams: 16,
        max_frag_bytes: 64 * 1024,
        ..Default::default()
    });
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut ts = 0u64;
    for c in cases() {
        for _ in 0..1500 {
            let mut f = c.frame.clone();
            for _ in 0..=rng.below(4) {
                let i = rng.below(f.len());
                match rng.below(3) {
                    0 => f[i] ^= 1 << rng.below(8),
                    1 => f[i] = rng.next() as u8,
                    _ => f[i] = [0, 0xff, 0x40, 0x60, 0x05][rng.below(5)],
                }
            }
            if rng.below(4) == 0 {
                f.truncate(rng.below(f.len() + 1));
            }
            ts += rng.below(2_000_000) as u64;
            let r = d.decode(c.link, ts, &f);
            *outcomes.entry(outcome(&r)).or_default() += 1;
        }
    }
    // Random bytes on every link type.
    for dlt in [0, 1, 12, 113, 228, 229, 239, 276] {
        for _ in 0..2000 {
            let n = rng.below(120);
            let f: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            let r = d.decode(LinkType::from_dlt(dlt), ts, &f);
            *outcomes.entry(outcome(&r)).or_default() += 1;
        }
    }
    check_invariant(&d);
    let (open, bytes) = d.frag_usage();
    assert!(open <= 16 && bytes <= 64 * 1024);
    eprintln!("mutation outcomes: {outcomes:?}");
    assert!(outcomes.get("tcp").copied().unwrap_or(0) > 0);
    assert!(outcomes.get("malformed").copied().unwrap_or(0) > 0);
}

#[test]
fn agrees_with_etherparse_builder() {
    use etherparse::PacketBuilder;
    let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
        .single_vlan(etherparse::VlanId::try_new(42).unwrap())
        .ipv4(C4, S4, 20)
        .tcp(SPORT, DPORT, SEQ, 4000)
        .ack(ACK)
        .psh();
    let mut frame = Vec::new();
    b.write(&mut frame, PAYLOAD).unwrap();
    let mut d = Decoder::new(DecodeLimits::default());
    let s = expect_tcp(&mut d, LinkType::Ethernet, 0, &frame);
    assert_eq!(
        s,
        Seg {
            src: sa4(C4, SPORT),
            dst: sa4(S4, DPORT),
            seq: SEQ,
            ack: ACK,
            flags: PSH_ACK,
            window: 4000,
            payload: PAYLOAD.to_vec()
        }
    );

    let b = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
        .ipv6(S6, C6, 20)
        .tcp(DPORT, SPORT, 7, 100)
        .syn()
        .ack(8);
    let mut frame = Vec::new();
    b.write(&mut frame, &[]).unwrap();
    let s = expect_tcp(&mut d, LinkType::Ethernet, 0, &frame);
    assert_eq!(
        (s.src, s.dst, s.seq, s.ack, s.window),
        (sa6(S6, DPORT), sa6(C6, SPORT), 7, 8, 100)
    );
    assert!(TcpFlags(s.flags).syn() && TcpFlags(s.flags).ack());
    assert!(s.payload.is_empty());
}

// ---------------------------------------------------------------------------
// Capture-edge laxness and header errors
// ---------------------------------------------------------------------------

#[test]
fn ipv4_total_length_zero_means_whole_capture() {
    let mut p = v4_tcp();
    p[2] = 0;
    p[3] = 0;
    let mut d = Decoder::new(DecodeLimits::default());
    assert_eq!(expect_tcp(&mut d, LinkType::Raw, 0, &p).payload, PAYLOAD);
    let mut p = v6_tcp();
    p[4] = 0;
    p[5] = 0;
    assert_eq!(expect_tcp(&mut d, LinkType::Raw, 0, &p).payload, PAYLOAD);
}

#[test]
fn snap_length_cut_returns_captured_payload() {
    let frame = eth(0x0800, &v4_tcp());
    let cut = &frame[..frame.len() - 10];
    let mut d = Decoder::new(DecodeLimits::default());
    let s = expect_tcp(&mut d, LinkType::Ethernet, 0, cut);
    assert_eq!(s.payload, &PAYLOAD[..PAYLOAD.len() - 10]);
    assert_eq!(d.stats().snap_truncated, 1);
}

#[test]
fn bad_headers() {
    let mut d = Decoder::new(DecodeLimits::default());
    let check = |d: &mut Decoder, link, f: &[u8], want: DropReason, layer: Layer| {
        let r = d.decode(link, 0, f);
        assert!(
            matches!(r, Decoded::Malformed(x) if x == want),
            "{r:?}, want {want:?}"
        );
        assert_eq!(d.last_error().map(|e| e.layer), Some(layer));
    };
    // IHL below 5.
    let mut p = v4_tcp();
    p[0] = 0x44;
    check(
        &mut d,
        LinkType::Raw,
        &p,
        DropReason::BadHeader,
        Layer::Ipv4,
    );
    // Total length below the header.
    let mut p = v4_tcp();
    p[3] = 10;
    p[2] = 0;
    check(
        &mut d,
        LinkType::Raw,
        &p,
        DropReason::BadHeader,
        Layer::Ipv4,
    );
    // IPv6 on the IPv4 link type, and the reverse.
    check(
        &mut d,
        LinkType::Ipv4,
        &v6_tcp(),
        DropReason::BadHeader,
        Layer::Ipv4,
    );
    check(
        &mut d,
        LinkType::Ipv6,
        &v4_tcp(),
        DropReason::BadHeader,
        Layer::Ipv6,
    );
    // Version 5 on a raw link.
    let mut p = v4_tcp();
    p[0] = 0x55;
    check(&mut d, LinkType::Raw, &p, DropReason::BadHeader, Layer::Ip);
    // TCP data offset below 5.
    let mut p = v4_tcp();
    p[20 + 12] = 0x40;
    check(&mut d, LinkType::Raw, &p, DropReason::BadHeader, Layer::Tcp);
    // TCP data offset past the end.
    let p = ipv4(C4, S4, 6, &tcp_with(SPORT, DPORT, &[1, 1, 1, 1], b"")[..22]);
    check(&mut d, LinkType::Raw, &p, DropReason::Truncated, Layer::Tcp);
    // IHL past the end of the capture.
    let mut p = v4_tcp();
    p[0] = 0x4f;
    check(
        &mut d,
        LinkType::Raw,
        &p[..40],
        DropReason::Truncated,
        Layer::Ipv4,
    );
    // A zero-length NFLOG TLV.
    check(
        &mut d,
        LinkType::Nflog,
        &[2, 0, 0, 0, 0, 0, 9, 0, 0x45],
        DropReason::BadHeader,
        Layer::Link,
    );
    // An extension header running past the datagram.
    let p = ipv6(C6, S6, 0, &[6, 9, 0, 0, 0, 0, 0, 0]);
    check(
        &mut d,
        LinkType::Raw,
        &p,
        DropReason::Truncated,
        Layer::IpExtension,
    );
    check_invariant(&d);
    assert_eq!(d.stats().bad_header, 7);
    assert_eq!(d.stats().truncated, 3);
}

#[test]
fn not_tcp() {
    let mut d = Decoder::new(DecodeLimits::default());
    let frames: Vec<(&str, LinkType, Vec<u8>, bool)> = vec![
        (
            "udp-dns",
            LinkType::Ethernet,
            eth(0x0800, &ipv4(C4, S4, 17, &udp(5353, 53, b"query"))),
            true,
        ),
        (
            "icmp",
            LinkType::Ethernet,
            eth(0x0800, &ipv4(C4, S4, 1, &[8, 0, 0, 0, 0, 1, 0, 1])),
            true,
        ),
        (
            "icmpv6",
            LinkType::Raw,
            ipv6(C6, S6, 58, &[128, 0, 0, 0]),
            true,
        ),
        (
            "ipv6-no-next-header",
            LinkType::Raw,
            ipv6(C6, S6, 59, &[]),
            true,
        ),
        ("esp", LinkType::Raw, ipv4(C4, S4, 50, &[0; 16]), true),
        (
            "vxlan-without-i-flag",
            LinkType::Raw,
            ipv4(C4, S4, 17, &udp(1, 4789, &[0; 30])),
            true,
        ),
        (
            "geneve-version-1",
            LinkType::Raw,
            ipv4(C4, S4, 17, &udp(1, 6081, &[0x40; 30])),
            true,
        ),
        (
            "gre-version-1-pptp",
            LinkType::Raw,
            ipv4(
                C4,
                S4,
                47,
                &[0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0],
            ),
            true,
        ),
        ("arp", LinkType::Ethernet, eth(0x0806, &[0; 28]), false),
        ("lldp", LinkType::Ethernet, eth(0x88CC, &[0; 20]), false),
        (
            "802.3-llc",
            LinkType::Ethernet,
            eth(0x0030, &[0x42, 0x42, 0x03]),
            false,
        ),
        (
            "pppoe-lcp",
            LinkType::Ethernet,
            eth(0x8864, &[0x11, 0, 0, 1, 0, 4, 0xc0, 0x21, 1, 1]),
            false,
        ),
        (
            "null-unknown-family",
            LinkType::Null,
            cat(&[&7u32.to_le_bytes(), &v4_tcp()]),
            false,
        ),
        (
            "nflog-without-payload",
            LinkType::Nflog,
            vec![2, 0, 0, 0, 8, 0, 1, 0, 0, 0, 0, 0],
            false,
        ),
        (
            "sll-netlink",
            LinkType::LinuxSll,
            sll(0x0010, &[0; 16]),
            false,
        ),
        (
            "gre-unknown-payload",
            LinkType::Raw,
            ipv4(C4, S4, 47, &gre(0, 0x1234, &[], &[0; 10])),
            false,
        ),
    ];
    for (name, link, f, ip) in frames {
        let before = d.stats().clone();
        let r = d.decode(link, 0, &f);
        assert!(matches!(r, Decoded::NotTcp), "{name}: {r:?}");
        let after = d.stats();
        if ip {
            assert_eq!(after.non_tcp, before.non_tcp + 1, "{name}");
        } else {
            assert_eq!(after.non_ip, before.non_ip + 1, "{name}");
        }
    }
    check_invariant(&d);
}

// ---------------------------------------------------------------------------
// Tunnel depth
// ---------------------------------------------------------------------------

/// `levels` GRE (or IP-in-IP) layers around the client's IPv4 TCP packet.
fn nested(levels: usize, ipip: bool) -> Vec<u8> {
    let mut p = v4_tcp();
    for _ in 0..levels {
        p = if ipip {
            ipv4(O4A, O4B, 4, &p)
        } else {
            ipv4(O4A, O4B, 47, &gre(0, 0x0800, &[], &p))
        };
    }
    eth(0x0800, &p)
}

#[test]
fn tunnel_depth_is_bounded() {
    for ipip in [false, true] {
        let mut d = Decoder::new(DecodeLimits::default());
        for levels in 0..=4 {
            let s = expect_tcp(&mut d, LinkType::Ethernet, 0, &nested(levels, ipip));
            assert_eq!(s.src, sa4(C4, SPORT));
        }
        for levels in 5..=7 {
            let f = nested(levels, ipip);
            let r = d.decode(LinkType::Ethernet, 0, &f);
            assert!(
                matches!(r, Decoded::Malformed(DropReason::TunnelTooDeep)),
                "{levels}: {r:?}"
            );
        }
        assert_eq!(d.stats().tunnel_too_deep, 3);
        assert_eq!(d.stats().tunnels, 4 + 3);
        check_invariant(&d);
    }
    let mut d = Decoder::new(DecodeLimits {
        max_tunnel_depth: 0,
        ..Default::default()
    });
    assert!(matches!(
        d.decode(LinkType::Ethernet, 0, &nested(1, false)),
        Decoded::Malformed(DropReason::TunnelTooDeep)
    ));
    assert_eq!(d.last_error().unwrap().layer, Layer::Gre);
    expect_tcp(&mut d, LinkType::Ethernet, 0, &nested(0, false));
    // VLAN tags and MPLS labels do not count as tunnels.
    let many_tags = (0..50).fold(tag(0, 0x0800, &v4_tcp()), |p, _| tag(1, 0x8100, &p));
    expect_tcp(&mut d, LinkType::Ethernet, 0, &eth(0x8100, &many_tags));
}

// ---------------------------------------------------------------------------
// Fragment reassembly
// ---------------------------------------------------------------------------

/// The IP payload of a TCP segment big enough to need several fragments.
fn big_segment() -> (Vec<u8>, Vec<u8>) {
    let body: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let seg = tcp(&body);
    (seg, body)
}

/// IPv4 fragments (Ethernet frames) of `payload`, `chunk` bytes each.
fn frags_v4(id: u16, proto: u8, payload: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let n = payload.len().div_ceil(chunk);
    (0..n)
        .map(|i| {
            let start = i * chunk;
            let end = (start + chunk).min(payload.len());
            let more = end < payload.len();
            let frag = ((start / 8) as u16) | if more { 0x2000 } else { 0 };
            eth(
                0x0800,
                &ipv4_full(C4, S4, proto, id, frag, &[], &payload[start..end]),
            )
        })
        .collect()
}

fn frag_v4_at(id: u16, offset: usize, more: bool, data: &[u8]) -> Vec<u8> {
    let frag = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
    eth(0x0800, &ipv4_full(C4, S4, 6, id, frag, &[], data))
}

/// IPv6 fragments (raw frames) of `payload`, with an extension header
/// before the Fragment header.
fn frags_v6(id: u32, next: u8, payload: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let n = payload.len().div_ceil(chunk);
    (0..n)
        .map(|i| {
            let start = i * chunk;
            let end = (start + chunk).min(payload.len());
            let more = end < payload.len();
            let off = (((start / 8) as u16) << 3) | u16::from(more);
            let fh = cat(&[&[next, 0], &off.to_be_bytes(), &id.to_be_bytes()]);
            let hbh = [44u8, 0, 1, 4, 0, 0, 0, 0];
            ipv6(C6, S6, 0, &cat(&[&hbh, &fh, &payload[start..end]]))
        })
        .collect()
}

fn run_frags(d: &mut Decoder, link: LinkType, frames: &[Vec<u8>], order: &[usize]) -> Option<Seg> {
    let mut out = None;
    for (k, &i) in order.iter().enumerate() {
        let r = d.decode(link, k as u64, &frames[i]);
        if k + 1 < order.len() {
            assert!(matches!(r, Decoded::FragmentHeld), "fragment {i}: {r:?}");
        } else {
            out = seg(r);
        }
    }
    out
}

#[test]
fn ipv4_fragments_in_any_order() {
    let (segment, body) = big_segment();
    let frames = frags_v4(77, 6, &segment, 200);
    assert_eq!(frames.len(), 6);
    let orders: Vec<Vec<usize>> = vec![
        vec![0, 1, 2, 3, 4, 5],
        vec![5, 4, 3, 2, 1, 0],
        vec![3, 0, 5, 1, 4, 2],
        vec![5, 0, 1, 2, 3, 4],
    ];
    for order in orders {
        let mut d = Decoder::new(DecodeLimits::default());
        let s = run_frags(&mut d, LinkType::Ethernet, &frames, &order).expect("reassembled");
        assert_eq!((s.src, s.dst, s.seq), (sa4(C4, SPORT), sa4(S4, DPORT), SEQ));
        assert_eq!(s.payload, body);
        let st = d.stats();
        assert_eq!(
            (st.fragments, st.reassembled, st.frag_held, st.tcp),
            (6, 1, 5, 1)
        );
        assert_eq!(d.frag_usage(), (0, 0));
        check_invariant(&d);
    }
}

#[test]
fn ipv6_fragments_in_any_order() {
    let (segment, body) = big_segment();
    let frames = frags_v6(0xdead_beef, 6, &segment, 256);
    assert_eq!(frames.len(), 4);
    for order in [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]] {
        let mut d = Decoder::new(DecodeLimits::default());
        let s = run_frags(&mut d, LinkType::Raw, &frames, &order).expect("reassembled");
        assert_eq!((s.src, s.dst), (sa6(C6, SPORT), sa6(S6, DPORT)));
        assert_eq!(s.payload, body);
        assert_eq!(d.stats().reassembled, 1);
        check_invariant(&d);
    }
    // IPv6 fragments of UDP complete as not-TCP.
    let frames = frags_v6(5, 17, &udp(1, 53, &[7; 300]), 160);
    let mut d = Decoder::new(DecodeLimits::default());
    assert!(matches!(
        d.decode(LinkType::Raw, 0, &frames[0]),
        Decoded::FragmentHeld
    ));
    assert!(matches!(
        d.decode(LinkType::Raw, 0, &frames[1]),
        Decoded::NotTcp
    ));
}

#[test]
fn overlapping_fragments_first_wins() {
    let (segment, _) = big_segment();
    let total = segment.len(); // 1020
    let mut d = Decoder::new(DecodeLimits::default());
    // [0, 400) original.
    assert!(matches!(
        d.decode(
            LinkType::Ethernet,
            0,
            &frag_v4_at(9, 0, true, &segment[..400])
        ),
        Decoded::FragmentHeld
    ));
    // [320, 720) with the overlapping [320, 400) forged: must not win.
    let mut forged = segment[320..720].to_vec();
    forged[..80].fill(b'X');
    assert!(matches!(
        d.decode(LinkType::Ethernet, 1, &frag_v4_at(9, 320, true, &forged)),
        Decoded::FragmentHeld
    ));
    assert_eq!(d.stats().frag_overlaps, 1);
    // An exact repeat brings nothing: dropped as an overlap.
    let f = frag_v4_at(9, 0, true, &segment[..400]);
    let r = d.decode(LinkType::Ethernet, 2, &f);
    assert!(
        matches!(r, Decoded::Malformed(DropReason::FragOverlap)),
        "{r:?}"
    );
    assert_eq!(d.stats().frag_overlaps, 2);
    assert_eq!(d.last_error().unwrap().layer, Layer::Fragment);
    // The rest.
    let s = seg(d.decode(
        LinkType::Ethernet,
        3,
        &frag_v4_at(9, 720, false, &segment[720..]),
    ))
    .expect("complete");
    assert_eq!(s.payload, segment[20..total].to_vec());
    assert_eq!(d.stats().reassembled, 1);
    check_invariant(&d);
}

#[test]
fn fragment_datagram_limit_evicts_oldest() {
    let (segment, body) = big_segment();
    let mut d = Decoder::new(DecodeLimits {
        max_frag_datagrams: 2,
        ..Default::default()
    });
    let a = frags_v4(1, 6, &segment, 512);
    let b = frags_v4(2, 6, &segment, 512);
    let c = frags_v4(3, 6, &segment, 512);
    for f in [&a[0], &b[0], &c[0]] {
        assert!(matches!(
            d.decode(LinkType::Ethernet, 0, f),
            Decoded::FragmentHeld
        ));
    }
    assert_eq!(d.stats().frag_dropped_limit, 1);
    assert_eq!(d.frag_usage().0, 2);
    // Datagram 1 was evicted: its second half alone opens a new datagram (evicting 2).
    assert!(matches!(
        d.decode(LinkType::Ethernet, 0, &a[1]),
        Decoded::FragmentHeld
    ));
    assert_eq!(d.stats().frag_dropped_limit, 2);
    // Datagram 3 is intact.
    assert_eq!(
        seg(d.decode(LinkType::Ethernet, 0, &c[1]))
            .expect("complete")
            .payload,
        body
    );
    check_invariant(&d);

    let mut d = Decoder::new(DecodeLimits {
        max_frag_datagrams: 0,
        ..Default::default()
    });
    assert!(matches!(
        d.decode(LinkType::Ethernet, 0, &a[0]),
        Decoded::Malformed(DropReason::FragLimit)
    ));
    assert_eq!(d.stats().frag_dropped_limit, 1);
    check_invariant(&d);
}

#[test]
fn fragment_byte_limit() {
    let (segment, body) = big_segment();
    let a = frags_v4(1, 6, &segment, 512);
    let b = frags_v4(2, 6, &segment, 512);
    // Room for one datagram's buffer only: the second evicts the first.
    let mut d = Decoder::new(DecodeLimits {
        max_frag_bytes: 1100,
        ..Default::default()
    });
    assert!(matches!(
        d.decode(LinkType::Ethernet, 0, &a[0]),
        Decoded::FragmentHeld
    ));
    assert!(matches!(
        d.decode(LinkType::Ethernet, 0, &b[0]),
        Decoded::FragmentHeld
    ));
    assert_eq!(d.stats().frag_dropped_limit, 0);
    // a[1] grows datagram 1 to 1020 bytes: datagram 2 must go.
    assert_eq!(
        seg(d.decode(LinkType::Ethernet, 0, &a[1]))
            .expect("complete")
            .payload,
        body
    );
    assert_eq!(d.stats().frag_dropped_limit, 1);
    assert_eq!(d.frag_usage(), (0, 0));
    // A datagram larger than the whole budget is refused.
    let mut d = Decoder::new(DecodeLimits {
        max_frag_bytes: 600,
        ..Default::default()
    });
    assert!(matches!(
        d.decode(LinkType::Ethernet, 0, &a[0]),
        Decoded::FragmentHeld
    ));
    assert!(matches!(
        d.decode(LinkType::Ethernet, 0, &a[1]),
        Decoded::Malformed(DropReason::FragLimit)
    ));
    assert_eq!(d.frag_usage(), (0, 0));
    check_invariant(&d);
}

#[test]
fn fragment_timeout_by_packet_time() {
    let (segment, _) = big_segment();
    let a = frags_v4(1, 6, &segment, 512);
    let mut d = Decoder::new(DecodeLimits::default());
    assert!(matches!(
        d.decode(LinkType::Ethernet, 1_000_000, &a[0]),
        Decoded::FragmentHeld
    ));
    // Within the timeout another packet leaves it alone.
    d.decode(LinkType::Ethernet, 31_000_000, &eth(0x0806, &[0; 28]));
    assert_eq!(d.frag_usage().0, 1);
    // Past it, any packet expires it.
    d.decode(LinkType::Ethernet, 31_000_001, &eth(0x0806, &[0; 28]));
    assert_eq!(d.frag_usage(), (0, 0));
    assert_eq!(d.stats().frag_timeouts, 1);
    // The late second half does not complete anything.
    assert!(matches!(
        d.decode(LinkType::Ethernet, 31_000_002, &a[1]),
        Decoded::FragmentHeld
    ));
    check_invariant(&d);
}

#[test]
fn inconsistent_fragments() {
    let mut d = Decoder::new(DecodeLimits::default());
    let data = [0u8; 64];
    assert!(matches!(
        d.decode(LinkType::Ethernet, 0, &frag_v4_at(4, 64, false, &data)),
        Decoded::FragmentHeld
    ));
    // A second "last" fragment ending elsewhere.
    assert!(matches!(
        d.decode(
            LinkType::Ethernet,
            0,
            &frag_v4_at(4, 64, false, &data[..32])
        ),
        Decoded::Malformed(DropReason::BadHeader)
    ));
    // A middle fragment past the end.
    assert!(matches!(
        d.decode(LinkType::Ethernet, 0, &frag_v4_at(4, 128, true, &data)),
        Decoded::Malformed(DropReason::BadHeader)
    ));
    // Past 65535 bytes (offset 8191 * 8 + 64).
    let f = frag_v4_at(5, 8191 * 8, false, &data);
    let r = d.decode(LinkType::Ethernet, 0, &f);
    assert!(
        matches!(r, Decoded::Malformed(DropReason::BadHeader)),
        "{r:?}"
    );
    // A fragment cut by the snap length cannot be reassembled.
    let f = frag_v4_at(6, 0, true, &data);
    assert!(matches!(
        d.decode(LinkType::Ethernet, 0, &f[..f.len() - 1]),
        Decoded::Malformed(DropReason::Truncated)
    ));
    assert_eq!(d.last_error().unwrap().layer, Layer::Fragment);
    assert_eq!(d.stats().fragments, 5);
    check_invariant(&d);
}

#[test]
fn fragmented_outer_tunnel_packet() {
    // ERSPAN II mirrored traffic whose outer IPv4 packet is fragmented.
    let inner = eth(0x0800, &ipv4(C4, S4, 6, &big_segment().0));
    let gre_payload = gre(
        0x10,
        0x88BE,
        &[0, 0, 0, 1],
        &cat(&[&[0x10, 0, 0, 1, 0, 0, 0, 0], &inner]),
    );
    let frames = frags_v4(300, 47, &gre_payload, 400);
    let mut d = Decoder::new(DecodeLimits::default());
    let order: Vec<usize> = (0..frames.len()).rev().collect();
    let s = run_frags(&mut d, LinkType::Ethernet, &frames, &order).expect("reassembled");
    assert_eq!(s.payload, big_segment().1);
    assert_eq!(d.stats().tunnels, 1);
    check_invariant(&d);
}

#[test]
fn fragment_inside_reassembled_datagram() {
    // Inner IPv4 datagram in two fragments; each travels IP-in-IP, and the
    // outer packet carrying the second inner fragment is itself fragmented.
    let (segment, body) = big_segment();
    let inner = frags_v4(11, 6, &segment, 512); // Ethernet frames; strip the 14-byte header
    let inner0 = &inner[0][14..];
    let inner1 = &inner[1][14..];
    let mut d = Decoder::new(DecodeLimits::default());
    // Inner fragment 0, outer not fragmented.
    let f = ipv4(O4A, O4B, 4, inner0);
    let r = d.decode(LinkType::Raw, 0, &f);
    assert!(matches!(r, Decoded::FragmentHeld), "{r:?}");
    // Inner fragment 1 inside an outer datagram split in two.
    let outer: Vec<Vec<u8>> = (0..2)
        .map(|i| {
            let (start, end, frag) = if i == 0 {
                (0, 200, 0x2000u16)
            } else {
                (200, inner1.len(), 25u16)
            };
            ipv4_full(O4A, O4B, 4, 99, frag, &[], &inner1[start..end])
        })
        .collect();
    assert!(matches!(
        d.decode(LinkType::Raw, 1, &outer[0]),
        Decoded::FragmentHeld
    ));
    let s = seg(d.decode(LinkType::Raw, 2, &outer[1])).expect("both levels complete");
    assert_eq!(s.payload, body);
    assert_eq!((s.src, s.dst), (sa4(C4, SPORT), sa4(S4, DPORT)));
    assert_eq!(d.stats().reassembled, 2);
    assert_eq!(d.stats().fragments, 4);
    check_invariant(&d);
}

#[test]
fn fragment_truncations_never_panic() {
    let (segment, _) = big_segment();
    let frames = frags_v4(1, 6, &segment, 512);
    let mut d = Decoder::new(DecodeLimits::default());
    for f in &frames {
        for len in 0..=f.len() {
            let _ = d.decode(LinkType::Ethernet, 0, &f[..len]);
        }
    }
    check_invariant(&d);
}

// ---------------------------------------------------------------------------
// The shared capture corpus
// ---------------------------------------------------------------------------

fn corpus_dir() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/dev");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("APITAP_REQUIRE_SHARED").as_deref() == Ok("1") {
        panic!(
            "corpus directory {} is missing and APITAP_REQUIRE_SHARED=1",
            dir.display()
        );
    }
    eprintln!("skipping: corpus directory {} not found", dir.display());
    None
}

/// Per-capture results of decoding every packet.
#[derive(Debug, Default)]
struct Tally {
    outcomes: BTreeMap<&'static str, u64>,
    /// TCP segments carrying payload, by (src, dst).
    payload_segments: BTreeMap<(SocketAddr, SocketAddr), u64>,
    stats: DecodeStats,
}

fn decode_capture(path: &std::path::Path, truncations: bool) -> Tally {
    let bytes = std::fs::read(path).unwrap();
    let records = testpcap::read(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut d = Decoder::new(DecodeLimits::default());
    let mut t = Tally::default();
    for rec in &records {
        let r = d.decode(LinkType::from_dlt(rec.link), rec.ts_us, &rec.data);
        *t.outcomes.entry(outcome(&r)).or_default() += 1;
        if let Decoded::Tcp(s) = r {
            if !s.payload.is_empty() {
                *t.payload_segments.entry((s.src, s.dst)).or_default() += 1;
            }
        }
        if !truncations {
            continue;
        }
        // Every truncation of every real frame too.
        let mut d2 = Decoder::new(DecodeLimits::default());
        for len in 0..rec.data.len() {
            let _ = d2.decode(LinkType::from_dlt(rec.link), rec.ts_us, &rec.data[..len]);
        }
        check_invariant(&d2);
    }
    check_invariant(&d);
    t.stats = d.stats().clone();
    t
}

/// Server addresses of the requests in a truth file.
fn truth_servers(path: &std::path::Path) -> BTreeSet<SocketAddr> {
    let text = std::fs::read_to_string(path).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["requests"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["server"].as_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Captures that exercise the link layers and encapsulations.
const LINK_CORPUS: &[&str] = &[
    "zeek_vlan-qinqinq.pcap",
    "zeek_mpls-in-vlan.pcap",
    "zeek_erspan-fragmented-http.pcap",
    "zeek_nflog-http.pcap",
    "sv_decode-sll2.pcap",
    "sv_output-multi-eve-sll.pcap",
    "ppp_four_ipv6_http_streams.pcap",
    "ppp_frag_http_req.pcap",
    "sv_http-ipv6.pcap",
    "zeek_261-te-cl-desync.pcap",
    "zeek_http-vlan-0.pcap",
];

#[test]
fn corpus_link_layers_yield_http_segments() {
    let Some(dir) = corpus_dir() else { return };
    for name in LINK_CORPUS {
        let path = dir.join(name);
        assert!(path.is_file(), "{} missing", path.display());
        let t = decode_capture(&path, true);
        let truth = dir.join(
            name.replace(".pcapng", ".truth.json")
                .replace(".pcap", ".truth.json"),
        );
        let servers = truth_servers(&truth);
        assert!(!servers.is_empty(), "{name}: no requests in the truth file");
        let ports: BTreeSet<u16> = servers.iter().map(|s| s.port()).collect();
        let http_segments: u64 = t
            .payload_segments
            .iter()
            .filter(|((s, d), _)| ports.contains(&s.port()) || ports.contains(&d.port()))
            .map(|(_, n)| n)
            .sum();
        eprintln!(
            "{name}: {:?}, {http_segments} HTTP payload segments, stats {:?}",
            t.outcomes, t.stats
        );
        assert!(
            http_segments > 0,
            "{name}: no TCP payload to or from ports {ports:?}"
        );
    }
    let erspan = decode_capture(&dir.join("zeek_erspan-fragmented-http.pcap"), false).stats;
    assert!(erspan.reassembled > 0 && erspan.tunnels > 0, "{erspan:?}");
    let frag = decode_capture(&dir.join("ppp_frag_http_req.pcap"), false).stats;
    assert!(frag.reassembled > 0, "{frag:?}");
    let qinq = decode_capture(&dir.join("zeek_vlan-qinqinq.pcap"), false).stats;
    assert!(qinq.vlan > 0, "{qinq:?}");
    let mpls = decode_capture(&dir.join("zeek_mpls-in-vlan.pcap"), false).stats;
    assert!(mpls.mpls > 0, "{mpls:?}");
}

#[test]
fn corpus_every_capture_decodes() {
    let Some(dir) = corpus_dir() else { return };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut missing = Vec::new();
    for path in &files {
        let t = decode_capture(path, false);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let servers = truth_servers(&dir.join(format!("{stem}.truth.json")));
        let malformed = t.outcomes.get("malformed").copied().unwrap_or(0);
        eprintln!("{name}: {:?} malformed={malformed}", t.outcomes);
        // Every server of the truth's requests is seen in decoded segments
        // that carry payload to it.
        for s in &servers {
            let seen = t.payload_segments.keys().any(|(_, d)| d == s);
            if !seen {
                missing.push(format!("{name}: no payload to {s}"));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn nflog_big_endian_tlvs() {
    // The same record as written by a big-endian host.
    let v4 = v4_tcp();
    let mut f = vec![2, 0, 0, 1];
    f.extend_from_slice(&[0, 8, 0, 1, 0x08, 0x00, 3, 0]);
    f.extend_from_slice(&((4 + v4.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 9]);
    f.extend_from_slice(&v4);
    let mut d = Decoder::new(DecodeLimits::default());
    assert_eq!(expect_tcp(&mut d, LinkType::Nflog, 0, &f).payload, PAYLOAD);
}

#[test]
fn stats_serialize() {
    let mut d = Decoder::new(DecodeLimits::default());
    d.decode(LinkType::Ethernet, 0, &eth(0x0800, &v4_tcp()));
    d.decode(LinkType::Ethernet, 0, &eth(0x0806, &[0; 28]));
    let v = serde_json::to_value(d.stats()).unwrap();
    assert_eq!(v["packets"], 2);
    assert_eq!(v["tcp"], 1);
    assert_eq!(v["non_ip"], 1);
    assert_eq!(v["frag_timeouts"], 0);
}

/// The shard hash is the same for both directions of a connection, and it
/// spreads connections evenly over 2 and 3 workers whether clients differ by
/// port (one client, ephemeral ports in sequence) or by address (IPv4 and
/// IPv6 clients of one server port).
#[test]
fn symmetric_hash_is_direction_free_and_spreads_connections() {
    let server4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 10)), 443);
    let server6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::from(S6)), 443);
    let mut populations: Vec<Vec<FlowKey>> = Vec::new();
    populations.push((0..4000u16).map(|i| FlowKey::new(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 20, 21)), 32768 + i), server4)).collect());
    populations.push((0..4000u32).map(|i| FlowKey::new(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 51000), server4)).collect());
    populations.push(
        (0..4000u128)
            .map(|i| FlowKey::new(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(u128::from(Ipv6Addr::from(C6)) + (i << 64))), 51000), server6))
            .collect(),
    );
    for (p, keys) in populations.iter().enumerate() {
        for k in keys {
            assert_eq!(FlowKey::new(k.hi, k.lo).symmetric_hash(), k.symmetric_hash());
        }
        for workers in [2u64, 3] {
            let mut counts = vec![0usize; workers as usize];
            for k in keys {
                counts[(k.symmetric_hash() % workers) as usize] += 1;
            }
            let fair = keys.len() / workers as usize;
            for c in &counts {
                // within 10% of a fair share: about 5 standard deviations of a random split
                assert!(c.abs_diff(fair) * 10 < fair, "population {p}, {workers} workers: {counts:?}");
            }
        }
    }
}

/// What a decode gave, in a comparable form.
fn summary(r: &Decoded<'_>) -> String {
    match r {
        Decoded::Tcp(t) => format!("tcp {} {} {} {} {:?} {} {:?}", t.src, t.dst, t.seq, t.ack, t.flags, t.window, t.payload),
        other => format!("{other:?}"),
    }
}

/// The one-step path for Ethernet/IPv4/TCP gives what the full walk gives —
/// segment and counters alike — for every case, every truncation, IPv4
/// options, padding, total lengths of 0, short and long, fragments, other
/// protocols, and random mutations of them all.
#[test]
fn one_step_path_agrees_with_the_full_walk() {
    let mut frames: Vec<(LinkType, Vec<u8>)> = cases().into_iter().map(|c| (c.link, c.frame)).collect();
    let v4 = ipv4(C4, S4, 6, &tcp(PAYLOAD));
    let mut with_options = v4.clone();
    with_options[0] = 0x46;
    with_options.splice(20..20, [1, 1, 1, 0]);
    let mut padded = eth(0x0800, &v4);
    padded.extend_from_slice(&[0; 9]);
    for (at, value) in [(2usize, [0u8, 0]), (2, [0, 10]), (2, [0x40, 0]), (6, [0x20, 0]), (6, [0, 1]), (9, [0, 17])] {
        let mut f = v4.clone();
        if at == 9 {
            f[9] = value[1];
        } else {
            f[at..at + 2].copy_from_slice(&value);
        }
        frames.push((LinkType::Ethernet, eth(0x0800, &f)));
    }
    frames.push((LinkType::Ethernet, eth(0x0800, &with_options)));
    frames.push((LinkType::Ethernet, padded));
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut fast_ones = 0;
    let check = |link: LinkType, f: &[u8], fast_ones: &mut u32| {
        let mut fast = Decoder::new(DecodeLimits::default());
        let mut full = Decoder::new(DecodeLimits::default());
        let a = summary(&fast.decode(link, 7, f));
        full.stats.packets += 1;
        full.frags.expire(7, &full.limits, &mut full.stats);
        let b = summary(&full.decode_walk(link, 7, f));
        assert_eq!(a, b, "{link:?} {f:02x?}");
        assert_eq!(serde_json::to_value(fast.stats()).unwrap(), serde_json::to_value(full.stats()).unwrap(), "{link:?} {f:02x?}");
        if link == LinkType::Ethernet && ip::ethernet_ipv4_tcp(f).is_some() {
            *fast_ones += 1;
        }
    };
    for (link, frame) in &frames {
        for len in 0..=frame.len() {
            check(*link, &frame[..len], &mut fast_ones);
        }
        for _ in 0..400 {
            let mut f = frame.clone();
            for _ in 0..=rng.below(3) {
                let i = rng.below(f.len());
                f[i] ^= 1 << rng.below(8);
            }
            check(*link, &f, &mut fast_ones);
        }
    }
    // the comparison covered frames that took the one-step path
    assert!(fast_ones > 100, "{fast_ones}");
}
