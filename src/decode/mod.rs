//! Link layers, tunnels, IPv4/IPv6 (with defragmentation) and TCP.
//!
//! Contract: `decode` is a pure function of frame bytes, the link type and
//! packet time. It never panics on any input; truncated or malformed frames
//! are counted in [`DecodeStats`] and reported as [`Decoded::Malformed`].
//!
//! # What is decoded
//!
//! ```text
//! link:    Ethernet II (IEEE 802.3) | BSD null/loop | raw IP | IPv4 | IPv6
//!          | Linux SLL (v1, v2) | NFLOG
//! L2.5:    802.1Q / 802.1ad / QinQ tags (0x8100, 0x88a8, 0x9100, 0x9200),
//!          MPLS label stacks (RFC 3032; 0x8847, 0x8848), PPPoE session (RFC 2516)
//! IP:      IPv4 (RFC 791; options skipped, header checksum NOT verified),
//!          IPv6 (RFC 8200; hop-by-hop, routing, destination options, AH,
//!          fragment headers), fragment reassembly for both (see `frag`)
//! tunnels: GRE (RFC 2784/2890, routing of RFC 1701), transparent Ethernet
//!          bridging, ERSPAN types I/II/III, VXLAN (RFC 7348, UDP 4789),
//!          GENEVE (RFC 8926, UDP 6081), IPv4/IPv6 in IPv4/IPv6 (protocols 4, 41)
//! L4:      TCP (RFC 9293): options skipped, payload trimmed to the IP length
//! ```
//!
//! The innermost TCP segment is returned. Everything else that is valid is
//! [`Decoded::NotTcp`]; a fragment waiting for the rest of its datagram is
//! [`Decoded::FragmentHeld`].
//!
//! # Laxness at the capture edge
//!
//! Captures are taken after checksum and segmentation offload, and are cut
//! at the snap length. So checksums are not verified; an IPv4 total length
//! or IPv6 payload length of 0 (segmentation offload) means "up to the end of
//! the capture"; Ethernet padding is trimmed by the IP length; and a TCP
//! segment whose payload was cut by the snap length is returned with the
//! bytes that were captured (counted in [`DecodeStats::snap_truncated`]), so
//! the flow layer sees the missing bytes as a gap. A header that is cut
//! short is [`DropReason::Truncated`]; [`Decoder::last_error`] tells in which
//! layer parsing stopped.
//!
//! # Cost
//!
//! No heap allocation per packet, except to buffer fragments. Each layer is
//! a fixed-size checked read; the state machine in `walk` visits each layer
//! once.
//!
//! # Module layout
//!
//! - `bytes`: checked reads and the cursor;
//! - `link`: link layers, VLAN, MPLS, PPPoE;
//! - `ip`: IPv4, IPv6 and its extension headers, UDP dispatch;
//! - `tunnel`: GRE/ERSPAN, VXLAN, GENEVE;
//! - `tcp`: the TCP header;
//! - `frag`: bounded fragment reassembly;
//! - `walk`: the layer state machine tying them together.

#![deny(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used))]

mod bytes;
mod frag;
mod ip;
mod link;
mod tcp;
mod tunnel;
mod walk;

#[cfg(test)]
mod testpcap;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

/// TCP flag bits as they appear in byte 13 of the TCP header (RFC 9293 §3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;

    #[inline]
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    #[inline]
    pub fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    #[inline]
    pub fn ack(self) -> bool {
        self.has(Self::ACK)
    }
    #[inline]
    pub fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    #[inline]
    pub fn rst(self) -> bool {
        self.has(Self::RST)
    }
}

/// A connection identity that is the same for both directions: the two
/// socket addresses in a canonical order (`lo <= hi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub lo: SocketAddr,
    pub hi: SocketAddr,
}

impl FlowKey {
    /// The key of the connection between `a` and `b`, whichever sent the packet.
    pub fn new(a: SocketAddr, b: SocketAddr) -> FlowKey {
        if a <= b {
            FlowKey { lo: a, hi: b }
        } else {
            FlowKey { lo: b, hi: a }
        }
    }

    /// A stable (not randomised) hash, identical for both directions, used to
    /// shard connections over workers: one word per endpoint (the address
    /// folded to 64 bits, then the port), an FxHash-style step per word and
    /// the murmur3 finaliser so that the low bits are usable for `% workers`.
    pub fn symmetric_hash(&self) -> u64 {
        #[inline]
        fn word(sa: &SocketAddr) -> u64 {
            let ip = match sa {
                SocketAddr::V4(v) => u64::from(u32::from(*v.ip())),
                SocketAddr::V6(v) => {
                    let x = u128::from(*v.ip());
                    (x as u64) ^ ((x >> 64) as u64).rotate_left(17)
                }
            };
            ip.rotate_left(16) ^ u64::from(sa.port())
        }
        let mut h = 0u64;
        for w in [word(&self.lo), word(&self.hi)] {
            h = (h.rotate_left(5) ^ w).wrapping_mul(0xf135_7aea_2e62_a9c5);
        }
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

/// One TCP segment, borrowed from the frame (or from a reassembled IP datagram).
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub payload: &'a [u8],
}

impl TcpSegment<'_> {
    pub fn key(&self) -> FlowKey {
        FlowKey::new(self.src, self.dst)
    }
}

// ---------------------------------------------------------------------------
// Link types, limits, results and counters.
// ---------------------------------------------------------------------------

/// The link layer of a capture: the pcap `LINKTYPE_`/`DLT_` value, mapped to
/// what the decoder understands (see <https://www.tcpdump.org/linktypes.html>).
///
/// An open enum: a value the decoder does not know stays as `Unknown(raw)`,
/// and frames on it are counted as [`DropReason::UnsupportedLink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// `LINKTYPE_ETHERNET` (1): Ethernet II / IEEE 802.3.
    Ethernet,
    /// `LINKTYPE_NULL` (0) and `LINKTYPE_LOOP` (108): BSD loopback, a 4-byte
    /// address family in host or network byte order.
    Null,
    /// `LINKTYPE_RAW` (101) and the `DLT_RAW` values 12 and 14: IPv4 or IPv6,
    /// told apart by the version nibble.
    Raw,
    /// `LINKTYPE_IPV4` (228).
    Ipv4,
    /// `LINKTYPE_IPV6` (229).
    Ipv6,
    /// `LINKTYPE_LINUX_SLL` (113): Linux cooked capture v1, 16-byte header.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276): Linux cooked capture v2, 20-byte header.
    LinuxSll2,
    /// `LINKTYPE_NFLOG` (239): Linux netfilter log, TLV-encapsulated packets.
    Nflog,
    /// Any other link type, kept as its raw value.
    Unknown(i32),
}

impl LinkType {
    /// Maps a pcap/pcapng link type (or `DLT_` value) to a [`LinkType`].
    pub fn from_dlt(dlt: i32) -> LinkType {
        match dlt {
            0 | 108 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            239 => LinkType::Nflog,
            276 => LinkType::LinuxSll2,
            other => LinkType::Unknown(other),
        }
    }

    /// The canonical `LINKTYPE_` value (the raw value for `Unknown`).
    pub fn dlt(self) -> i32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::Nflog => 239,
            LinkType::LinuxSll2 => 276,
            LinkType::Unknown(v) => v,
        }
    }

    /// Whether [`Decoder::decode`] can decode frames of this link type.
    pub fn is_supported(self) -> bool {
        !matches!(self, LinkType::Unknown(_))
    }

    /// The libpcap name of the link type (`EN10MB`, `LINUX_SLL2`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LinkType::Ethernet => "EN10MB",
            LinkType::Null => "NULL",
            LinkType::Raw => "RAW",
            LinkType::Ipv4 => "IPV4",
            LinkType::Ipv6 => "IPV6",
            LinkType::LinuxSll => "LINUX_SLL",
            LinkType::LinuxSll2 => "LINUX_SLL2",
            LinkType::Nflog => "NFLOG",
            LinkType::Unknown(_) => "UNKNOWN",
        }
    }
}

impl std::fmt::Display for LinkType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkType::Unknown(v) => write!(f, "UNKNOWN({v})"),
            other => f.write_str(other.name()),
        }
    }
}

/// Bounds on the decoder's own memory and work.
#[derive(Clone, Debug)]
pub struct DecodeLimits {
    /// IP datagrams under reassembly at once; starting one more evicts the
    /// oldest (counted in [`DecodeStats::frag_dropped_limit`]). 0 disables
    /// reassembly (every fragment is dropped as [`DropReason::FragLimit`]).
    pub max_frag_datagrams: usize,
    /// Bytes buffered for reassembly over all datagrams.
    pub max_frag_bytes: usize,
    /// Packet-time microseconds after its first fragment before an incomplete
    /// datagram is dropped (counted in [`DecodeStats::frag_timeouts`]).
    pub frag_timeout_us: u64,
    /// Nested tunnels (GRE/ERSPAN, VXLAN, GENEVE, IP-in-IP) decapsulated
    /// before giving up with [`DropReason::TunnelTooDeep`]; VLAN tags and
    /// MPLS labels do not count.
    pub max_tunnel_depth: u8,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_frag_datagrams: 1024,
            max_frag_bytes: 16 * 1024 * 1024,
            frag_timeout_us: 30_000_000,
            max_tunnel_depth: 4,
        }
    }
}

/// The result of decoding one frame.
#[derive(Clone, Copy, Debug)]
pub enum Decoded<'a> {
    /// The innermost TCP segment. Its payload borrows from the frame, or from
    /// the decoder's reassembly buffer when the frame completed a datagram.
    Tcp(TcpSegment<'a>),
    /// Valid, but not TCP: IP carrying something else (UDP that is not a
    /// tunnel, ICMP, ESP, ...), or not IP at all (ARP, LLDP, ...).
    NotTcp,
    /// A fragment was buffered; its datagram is not complete yet.
    FragmentHeld,
    /// The frame was dropped, for this reason.
    Malformed(DropReason),
}

/// Why a frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DropReason {
    /// A header is cut short: the capture ended (snap length) or a length
    /// field points past the data. Also a fragment whose data was cut by the
    /// snap length, since it cannot be reassembled faithfully.
    #[error("header cut short")]
    Truncated,
    /// A header field is impossible: wrong IP version, IPv4 IHL below 5 or a
    /// total length below the header, TCP data offset below 5, a zero-length
    /// NFLOG TLV, fragments past 65 535 bytes or disagreeing on the datagram
    /// end, more layers than the decoder walks.
    #[error("invalid header field")]
    BadHeader,
    /// The capture's link type is not one the decoder knows.
    #[error("unsupported link type")]
    UnsupportedLink,
    /// More nested tunnels than [`DecodeLimits::max_tunnel_depth`].
    #[error("too many nested tunnels")]
    TunnelTooDeep,
    /// Reassembly limits: the fragment's datagram did not fit in
    /// [`DecodeLimits::max_frag_bytes`], or reassembly is disabled.
    #[error("fragment reassembly limit reached")]
    FragLimit,
    /// The fragment only repeated bytes already received (first wins).
    #[error("fragment overlaps data already received")]
    FragOverlap,
}

/// A protocol layer, to say where decoding stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The link-layer header given by the capture's link type.
    Link,
    Ethernet,
    Vlan,
    Mpls,
    Pppoe,
    /// The IP version nibble (raw IP links, ERSPAN III, MPLS payloads).
    Ip,
    Ipv4,
    Ipv6,
    /// An IPv6 extension header or IP Authentication Header.
    IpExtension,
    /// Fragment reassembly.
    Fragment,
    Udp,
    Gre,
    Erspan,
    Vxlan,
    Geneve,
    Tcp,
}

impl Layer {
    /// A short lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Link => "link",
            Layer::Ethernet => "ethernet",
            Layer::Vlan => "vlan",
            Layer::Mpls => "mpls",
            Layer::Pppoe => "pppoe",
            Layer::Ip => "ip",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::IpExtension => "ip-extension",
            Layer::Fragment => "fragment",
            Layer::Udp => "udp",
            Layer::Gre => "gre",
            Layer::Erspan => "erspan",
            Layer::Vxlan => "vxlan",
            Layer::Geneve => "geneve",
            Layer::Tcp => "tcp",
        }
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where and why a frame was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{reason} ({layer} layer)")]
pub struct DecodeError {
    pub layer: Layer,
    pub reason: DropReason,
}

/// Counters of the decoder. Every frame counts once in `packets` and once in
/// exactly one of `tcp`, `non_tcp`, `non_ip`, `truncated`, `bad_header`,
/// `unsupported_link`, `tunnel_too_deep`, `frag_held`, `frag_refused`; the
/// other counters are "also seen" tallies.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct DecodeStats {
    /// Frames given to [`Decoder::decode`].
    pub packets: u64,
    /// Frames that yielded a TCP segment.
    pub tcp: u64,
    /// Frames that were IP but not TCP.
    pub non_tcp: u64,
    /// Frames that were not IP.
    pub non_ip: u64,
    /// Frames dropped as [`DropReason::Truncated`].
    pub truncated: u64,
    /// Frames dropped as [`DropReason::BadHeader`].
    pub bad_header: u64,
    /// Frames dropped as [`DropReason::UnsupportedLink`].
    pub unsupported_link: u64,
    /// Frames with at least one VLAN tag.
    pub vlan: u64,
    /// Frames with an MPLS label stack.
    pub mpls: u64,
    /// Frames with at least one tunnel decapsulated (GRE/ERSPAN/VXLAN/GENEVE/IP-in-IP).
    pub tunnels: u64,
    /// IP fragments seen (IPv4 with MF or an offset, IPv6 non-atomic Fragment header).
    pub fragments: u64,
    /// Datagrams completed from fragments.
    pub reassembled: u64,
    /// Datagrams evicted, or fragments refused, because of the reassembly limits.
    pub frag_dropped_limit: u64,
    /// Datagrams dropped incomplete after the reassembly timeout.
    pub frag_timeouts: u64,
    /// Fragments that overlapped bytes already received (first wins).
    pub frag_overlaps: u64,
    /// Frames dropped as [`DropReason::TunnelTooDeep`].
    pub tunnel_too_deep: u64,
    /// Frames that were fragments buffered without completing a datagram.
    pub frag_held: u64,
    /// Frames that were fragments dropped as [`DropReason::FragLimit`] or
    /// [`DropReason::FragOverlap`].
    pub frag_refused: u64,
    /// TCP segments returned with a payload shorter than the IP length said
    /// (cut by the snap length).
    pub snap_truncated: u64,
}

/// The decoder: stateless per frame, except for fragment reassembly and the
/// counters.
#[derive(Debug)]
pub struct Decoder {
    limits: DecodeLimits,
    stats: DecodeStats,
    frags: frag::FragTable,
    /// The last datagram completed from fragments; TCP payloads returned for
    /// it borrow from here until the next call.
    reassembled: Vec<u8>,
    last_error: Option<DecodeError>,
}

impl Decoder {
    /// A decoder with the given limits.
    pub fn new(limits: DecodeLimits) -> Decoder {
        Decoder {
            limits,
            stats: DecodeStats::default(),
            frags: frag::FragTable::default(),
            reassembled: Vec::new(),
            last_error: None,
        }
    }

    /// The limits the decoder was built with.
    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// The counters so far.
    pub fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    /// The layer and reason of the most recent [`Decoded::Malformed`] result.
    pub fn last_error(&self) -> Option<DecodeError> {
        self.last_error
    }

    /// IP datagrams currently under reassembly, and the bytes they hold.
    pub fn frag_usage(&self) -> (usize, usize) {
        (self.frags.len(), self.frags.bytes())
    }

    /// Decodes one frame captured at `ts_us` (packet time, microseconds) on
    /// a link of type `link`, and returns its innermost TCP segment or what
    /// else it was. Incomplete fragmented datagrams older than the timeout
    /// are expired first.
    pub fn decode<'a>(&'a mut self, link: LinkType, ts_us: u64, frame: &'a [u8]) -> Decoded<'a> {
        self.stats.packets = self.stats.packets.saturating_add(1);
        self.frags.expire(ts_us, &self.limits, &mut self.stats);
        if link == LinkType::Ethernet {
            if let Some(m) = ip::ethernet_ipv4_tcp(frame) {
                self.stats.tcp = self.stats.tcp.saturating_add(1);
                return Decoded::Tcp(m.segment_in(frame));
            }
        }
        self.decode_walk(link, ts_us, frame)
    }

    /// [`Decoder::decode`] past its one-step path for Ethernet/IPv4/TCP: the
    /// full walk of any frame (the packet is counted and fragments expired already).
    fn decode_walk<'a>(&'a mut self, link: LinkType, ts_us: u64, frame: &'a [u8]) -> Decoded<'a> {
        let mut ctx = walk::Ctx {
            frags: &mut self.frags,
            stats: &mut self.stats,
            limits: &self.limits,
            ts_us,
            depth: 0,
            seen: walk::Seen::default(),
        };
        let mut step = walk::walk(&mut ctx, frame, walk::Next::Link(link));
        let mut from_reassembly = false;
        // A completed datagram is decoded from its transport header on. It
        // may itself carry a fragment that completes another datagram; each
        // round consumes buffered fragments, so this ends.
        let step = loop {
            match step {
                walk::Step::Reassembled(r) => {
                    self.reassembled = r.data;
                    from_reassembly = true;
                    ctx.seen.snapped = false;
                    let next = walk::Next::Proto {
                        proto: r.proto,
                        src: r.src,
                        dst: r.dst,
                    };
                    step = walk::walk(&mut ctx, &self.reassembled, next);
                }
                other => break other,
            }
        };
        let seen = ctx.seen;

        let stats = &mut self.stats;
        let bump = |c: &mut u64| *c = c.saturating_add(1);
        if seen.vlan {
            bump(&mut stats.vlan);
        }
        if seen.mpls {
            bump(&mut stats.mpls);
        }
        if seen.tunnel {
            bump(&mut stats.tunnels);
        }
        match step {
            walk::Step::Tcp(m) => {
                bump(&mut stats.tcp);
                if seen.snapped {
                    bump(&mut stats.snap_truncated);
                }
                let buf: &'a [u8] = if from_reassembly {
                    &self.reassembled
                } else {
                    frame
                };
                Decoded::Tcp(m.segment_in(buf))
            }
            walk::Step::NotTcp => {
                bump(&mut stats.non_tcp);
                Decoded::NotTcp
            }
            walk::Step::NonIp => {
                bump(&mut stats.non_ip);
                Decoded::NotTcp
            }
            walk::Step::Held => {
                bump(&mut stats.frag_held);
                Decoded::FragmentHeld
            }
            walk::Step::Drop(layer, reason) => {
                match reason {
                    DropReason::Truncated => bump(&mut stats.truncated),
                    DropReason::BadHeader => bump(&mut stats.bad_header),
                    DropReason::UnsupportedLink => bump(&mut stats.unsupported_link),
                    DropReason::TunnelTooDeep => bump(&mut stats.tunnel_too_deep),
                    // Their specific counters were bumped by the fragment table.
                    DropReason::FragLimit | DropReason::FragOverlap => {
                        bump(&mut stats.frag_refused)
                    }
                }
                self.last_error = Some(DecodeError { layer, reason });
                Decoded::Malformed(reason)
            }
            // Consumed by the loop above.
            walk::Step::Reassembled(_) => Decoded::Malformed(DropReason::BadHeader),
        }
    }
}
