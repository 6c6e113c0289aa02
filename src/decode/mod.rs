//! Link layers, tunnels, IPv4/IPv6 (with defragmentation) and TCP.
//!
//! Contract: `decode` is a pure function of frame bytes, the link type and
//! packet time. It never panics on any input; truncated or malformed frames
//! are counted in [`DecodeStats`] and reported as [`Decoded::Malformed`].

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
    /// shard connections over workers. FNV-1a over the canonical key.
    pub fn symmetric_hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for sa in [self.lo, self.hi] {
            match sa {
                SocketAddr::V4(v) => eat(&v.ip().octets()),
                SocketAddr::V6(v) => eat(&v.ip().octets()),
            }
            eat(&sa.port().to_be_bytes());
        }
        // final avalanche so that low bits are usable for `% workers`
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
