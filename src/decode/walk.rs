//! The layer state machine: one state per header kind, one handler per
//! state, one dispatch `match`.
//!
//! Each handler reads its header at the cursor, moves the cursor past it
//! (trimming it to the header's length field where there is one), and
//! returns either the next state or a final [`Step`]. Every state that reads
//! a header consumes at least one byte, and the pure dispatch states
//! (`Link`, `IpAuto`) cannot follow one another in a cycle, so
//! the walk ends; a cap on the number of steps backs that up.
//!
//! Payloads are reported as ranges into the buffer being walked, so that the
//! walk borrows nothing: the caller re-borrows the payload from the frame or
//! from the reassembly buffer.

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use super::bytes::Cursor;
use super::frag::FragTable;
use super::{ip, link, tcp, tunnel};
use super::{DecodeLimits, DecodeStats, DropReason, Layer, LinkType, TcpFlags};

/// What the walk has met so far, for the "also seen" counters.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Seen {
    pub vlan: bool,
    pub mpls: bool,
    pub tunnel: bool,
    /// The innermost IP header said more bytes than were captured.
    pub snapped: bool,
}

/// Everything a handler may need besides the bytes.
pub(super) struct Ctx<'t> {
    pub frags: &'t mut FragTable,
    pub stats: &'t mut DecodeStats,
    pub limits: &'t DecodeLimits,
    pub ts_us: u64,
    /// Tunnels decapsulated so far.
    pub depth: u8,
    pub seen: Seen,
}

impl Ctx<'_> {
    /// Accounts for one more tunnel, or refuses it past the depth limit.
    pub fn enter_tunnel(&mut self, layer: Layer) -> Result<(), Step> {
        if self.depth >= self.limits.max_tunnel_depth {
            return Err(Step::Drop(layer, DropReason::TunnelTooDeep));
        }
        self.depth = self.depth.saturating_add(1);
        self.seen.tunnel = true;
        Ok(())
    }
}

/// The header expected at the cursor.
#[derive(Clone, Copy, Debug)]
pub(super) enum Next {
    /// The capture's link-layer header.
    Link(LinkType),
    /// An Ethernet II header.
    Ethernet,
    /// One or more 802.1Q/802.1ad tags.
    Vlan,
    /// An MPLS label stack.
    Mpls,
    /// A PPPoE session header and PPP protocol field.
    Pppoe,
    /// IPv4 or IPv6, by the version nibble (dispatch only).
    IpAuto,
    Ipv4,
    Ipv6,
    /// The payload of an IP header (or of an IPv6 extension header, or a
    /// reassembled datagram): protocol number and the IP endpoints.
    Proto {
        proto: u8,
        src: IpAddr,
        dst: IpAddr,
    },
    /// A UDP header.
    Udp,
    Gre,
    Vxlan,
    Geneve,
}

impl Next {
    fn layer(self) -> Layer {
        match self {
            Next::Link(_) => Layer::Link,
            Next::Ethernet => Layer::Ethernet,
            Next::Vlan => Layer::Vlan,
            Next::Mpls => Layer::Mpls,
            Next::Pppoe => Layer::Pppoe,
            Next::IpAuto => Layer::Ip,
            Next::Ipv4 => Layer::Ipv4,
            Next::Ipv6 => Layer::Ipv6,
            Next::Proto { .. } => Layer::IpExtension,
            Next::Udp => Layer::Udp,
            Next::Gre => Layer::Gre,
            Next::Vxlan => Layer::Vxlan,
            Next::Geneve => Layer::Geneve,
        }
    }
}

/// A TCP segment with its payload as a range of the walked buffer.
#[derive(Clone, Debug)]
pub(super) struct TcpMeta {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub payload: Range<usize>,
}

impl TcpMeta {
    /// The segment, its payload borrowed from `buf` (the buffer walked).
    pub(super) fn segment_in(self, buf: &[u8]) -> super::TcpSegment<'_> {
        super::TcpSegment {
            src: self.src,
            dst: self.dst,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            payload: buf.get(self.payload).unwrap_or_default(),
        }
    }
}

/// A datagram completed from fragments, to be decoded from its transport
/// header on.
#[derive(Debug)]
pub(super) struct Reassembled {
    pub data: Vec<u8>,
    pub proto: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
}

/// How a walk ends.
#[derive(Debug)]
pub(super) enum Step {
    Tcp(TcpMeta),
    /// IP, not TCP.
    NotTcp,
    /// Not IP.
    NonIp,
    /// A fragment was buffered.
    Held,
    /// A fragment completed a datagram.
    Reassembled(Reassembled),
    Drop(Layer, DropReason),
}

/// What a handler returns: the next state, or the end of the walk.
pub(super) type Flow = Result<Next, Step>;

/// Shorthand for a dropping end.
#[inline]
pub(super) fn drop(layer: Layer, reason: DropReason) -> Step {
    Step::Drop(layer, reason)
}

/// Walks `data` from the header `start`.
pub(super) fn walk(ctx: &mut Ctx<'_>, data: &[u8], start: Next) -> Step {
    let mut cur = Cursor::new(data);
    let mut next = start;
    // Generous: a few states per tunnel level plus IPv6 extension headers.
    let max_steps = 1024 + 16 * usize::from(ctx.limits.max_tunnel_depth);
    for _ in 0..max_steps {
        let flow = match next {
            Next::Link(l) => link::link(l, &mut cur),
            Next::Ethernet => link::ethernet(&mut cur),
            Next::Vlan => link::vlan(ctx, &mut cur),
            Next::Mpls => link::mpls(ctx, &mut cur),
            Next::Pppoe => link::pppoe(&mut cur),
            Next::IpAuto => ip::ip_auto(&cur),
            Next::Ipv4 => ip::ipv4(ctx, &mut cur),
            Next::Ipv6 => ip::ipv6(ctx, &mut cur),
            Next::Proto { proto, src, dst } => ip::proto(ctx, &mut cur, proto, src, dst),
            Next::Udp => ip::udp(&mut cur),
            Next::Gre => tunnel::gre(ctx, &mut cur),
            Next::Vxlan => tunnel::vxlan(ctx, &mut cur),
            Next::Geneve => tunnel::geneve(ctx, &mut cur),
        };
        match flow {
            Ok(n) => next = n,
            Err(step) => return step,
        }
    }
    Step::Drop(next.layer(), DropReason::BadHeader)
}

/// The TCP handler's wrapper: a segment ends the walk either way.
#[inline]
pub(super) fn tcp_end(cur: &Cursor<'_>, src: IpAddr, dst: IpAddr) -> Step {
    match tcp::segment(cur, src, dst) {
        Ok(m) => Step::Tcp(m),
        Err(reason) => Step::Drop(Layer::Tcp, reason),
    }
}
