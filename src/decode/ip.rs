//! IPv4 (RFC 791), IPv6 (RFC 8200) with its extension headers, the IP
//! Authentication Header (RFC 4302), and the dispatch on the IP protocol
//! number, including UDP (RFC 768) for the UDP-borne tunnels.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::bytes::{array_at, be16, be16_of, be32, Cursor};
use super::frag::{FragKey, FragOutcome, Fragment};
use super::walk::{drop, tcp_end, Ctx, Flow, Next, Reassembled, Step};
use super::{DropReason, Layer};

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
pub(super) mod protocol {
    pub const HOPOPT: u8 = 0;
    pub const IPV4: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const GRE: u8 = 47;
    pub const AH: u8 = 51;
    pub const IPV6_OPTS: u8 = 60;
}

/// UDP destination ports of the tunnels decapsulated.
pub(super) const VXLAN_PORT: u16 = 4789;
pub(super) const GENEVE_PORT: u16 = 6081;

/// IPv4 or IPv6 by the version nibble.
pub(super) fn ip_auto(cur: &Cursor<'_>) -> Flow {
    let b = *cur
        .buf
        .first()
        .ok_or(drop(Layer::Ip, DropReason::Truncated))?;
    match b >> 4 {
        4 => Ok(Next::Ipv4),
        6 => Ok(Next::Ipv6),
        _ => Err(drop(Layer::Ip, DropReason::BadHeader)),
    }
}

/// The IPv4 header (RFC 791 §3.1):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version|  IHL  |Type of Service|          Total Length         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         Identification        |Flags|      Fragment Offset    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Time to Live |    Protocol   |         Header Checksum       |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                       Source Address                          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Destination Address                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Options (IHL > 5)                          |
/// ```
///
/// The checksum is not verified. A total length of 0 (segmentation offload
/// on the capturing host) means "to the end of the capture".
struct Ipv4Header<'a> {
    h: &'a [u8; IPV4_MIN_LEN],
}

const IPV4_MIN_LEN: usize = 20;
const IPV4_MF: u16 = 0x2000;
const IPV4_OFFSET_MASK: u16 = 0x1FFF;

impl<'a> Ipv4Header<'a> {
    fn new(b: &'a [u8]) -> Option<Ipv4Header<'a>> {
        array_at(b, 0).map(|h| Ipv4Header { h })
    }
    fn version(&self) -> u8 {
        self.h[0] >> 4
    }
    fn header_len(&self) -> usize {
        usize::from(self.h[0] & 0x0F) * 4
    }
    fn total_len(&self) -> usize {
        usize::from(be16_of(self.h[2], self.h[3]))
    }
    fn ident(&self) -> u16 {
        be16_of(self.h[4], self.h[5])
    }
    fn more_fragments(&self) -> bool {
        be16_of(self.h[6], self.h[7]) & IPV4_MF != 0
    }
    /// Fragment offset in bytes.
    fn frag_offset(&self) -> usize {
        usize::from(be16_of(self.h[6], self.h[7]) & IPV4_OFFSET_MASK) * 8
    }
    fn protocol(&self) -> u8 {
        self.h[9]
    }
    fn src(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.h[12], self.h[13], self.h[14], self.h[15])
    }
    fn dst(&self) -> Ipv4Addr {
        Ipv4Addr::new(self.h[16], self.h[17], self.h[18], self.h[19])
    }
}

pub(super) fn ipv4(ctx: &mut Ctx<'_>, cur: &mut Cursor<'_>) -> Flow {
    let h = Ipv4Header::new(cur.buf).ok_or(drop(Layer::Ipv4, DropReason::Truncated))?;
    if h.version() != 4 {
        return Err(drop(Layer::Ipv4, DropReason::BadHeader));
    }
    let header_len = h.header_len();
    if header_len < IPV4_MIN_LEN {
        return Err(drop(Layer::Ipv4, DropReason::BadHeader));
    }
    let total = h.total_len();
    if total != 0 && total < header_len {
        return Err(drop(Layer::Ipv4, DropReason::BadHeader));
    }
    if header_len > cur.buf.len() {
        return Err(drop(Layer::Ipv4, DropReason::Truncated));
    }
    let snapped = total != 0 && cur.trim(total);
    ctx.seen.snapped = snapped;
    let (src, dst, proto) = (IpAddr::V4(h.src()), IpAddr::V4(h.dst()), h.protocol());
    let (more, offset, id) = (h.more_fragments(), h.frag_offset(), h.ident());
    cur.skip(header_len);
    if more || offset != 0 {
        let key = FragKey {
            src,
            dst,
            id: u32::from(id),
            proto,
        };
        return Err(fragment(
            ctx,
            key,
            Fragment {
                offset,
                more,
                proto,
                data: cur.buf,
            },
            snapped,
        ));
    }
    Ok(Next::Proto { proto, src, dst })
}

/// The walk of the commonest frame in one step: Ethernet II carrying IPv4
/// that is not a fragment, whose total length the capture holds (padding
/// after it is cut), carrying TCP. What the full walk would give for such a
/// frame; `None` for any other frame, and for one whose headers are not
/// valid, which then takes the full walk (and is counted there).
pub(super) fn ethernet_ipv4_tcp(frame: &[u8]) -> Option<super::walk::TcpMeta> {
    use super::link::{ethertype, ETHERNET_LEN, ETHERNET_TYPE};
    if be16(frame, ETHERNET_TYPE)? != ethertype::IPV4 {
        return None;
    }
    let mut cur = Cursor::new(frame);
    cur.skip(ETHERNET_LEN);
    let h = Ipv4Header::new(cur.buf)?;
    let (header_len, total) = (h.header_len(), h.total_len());
    if h.version() != 4 || header_len < IPV4_MIN_LEN || header_len > cur.buf.len() || h.protocol() != protocol::TCP || h.more_fragments() || h.frag_offset() != 0 {
        return None;
    }
    // a total length of 0 means "to the end of the capture" (no cut); one
    // beyond the capture (a snap cut) is counted by the full walk
    if total != 0 && (total < header_len || cur.trim(total)) {
        return None;
    }
    cur.skip(header_len);
    super::tcp::segment(&cur, IpAddr::V4(h.src()), IpAddr::V4(h.dst())).ok()
}

/// The IPv6 fixed header (RFC 8200 §3):
///
/// ```text
/// |Version| Traffic Class |           Flow Label                  |
/// |         Payload Length        |  Next Header  |   Hop Limit   |
/// |                  Source Address (16)                          |
/// |                  Destination Address (16)                     |
/// ```
///
/// A payload length of 0 (jumbogram, RFC 2675, or segmentation offload)
/// means "to the end of the capture".
const IPV6_LEN: usize = 40;

pub(super) fn ipv6(ctx: &mut Ctx<'_>, cur: &mut Cursor<'_>) -> Flow {
    let first = *cur
        .buf
        .first()
        .ok_or(drop(Layer::Ipv6, DropReason::Truncated))?;
    if first >> 4 != 6 {
        return Err(drop(Layer::Ipv6, DropReason::BadHeader));
    }
    let h: &[u8; IPV6_LEN] =
        array_at(cur.buf, 0).ok_or(drop(Layer::Ipv6, DropReason::Truncated))?;
    let payload_len = usize::from(be16_of(h[4], h[5]));
    let next = h[6];
    let (src, dst) = match (array_at::<16>(h, 8), array_at::<16>(h, 24)) {
        (Some(s), Some(d)) => (Ipv6Addr::from(*s), Ipv6Addr::from(*d)),
        _ => return Err(drop(Layer::Ipv6, DropReason::Truncated)),
    };
    cur.skip(IPV6_LEN);
    ctx.seen.snapped = payload_len != 0 && cur.trim(payload_len);
    Ok(Next::Proto {
        proto: next,
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst),
    })
}

/// Hands a fragment to the reassembly table.
fn fragment(ctx: &mut Ctx<'_>, key: FragKey, frag: Fragment<'_>, snapped: bool) -> Step {
    ctx.stats.fragments = ctx.stats.fragments.saturating_add(1);
    if snapped {
        // Bytes are missing from this fragment: reassembling it would
        // produce a datagram with a hole filled by zeroes.
        return drop(Layer::Fragment, DropReason::Truncated);
    }
    match ctx
        .frags
        .insert(key, frag, ctx.ts_us, ctx.limits, ctx.stats)
    {
        FragOutcome::Held => Step::Held,
        FragOutcome::Complete { data, proto } => Step::Reassembled(Reassembled {
            data,
            proto,
            src: key.src,
            dst: key.dst,
        }),
        FragOutcome::Drop(reason) => drop(Layer::Fragment, reason),
    }
}

/// IPv6 Fragment header (RFC 8200 §4.5):
///
/// ```text
/// | Next Header (1) | Reserved (1) | Fragment Offset (13) | Res (2) | M (1) |
/// | Identification (4) |
/// ```
const IPV6_FRAG_LEN: usize = 8;

/// Dispatch on the protocol number found in an IP header, an extension
/// header, or a reassembled datagram.
pub(super) fn proto(
    ctx: &mut Ctx<'_>,
    cur: &mut Cursor<'_>,
    proto: u8,
    src: IpAddr,
    dst: IpAddr,
) -> Flow {
    use protocol::*;
    let v6 = src.is_ipv6();
    let ext = || drop(Layer::IpExtension, DropReason::Truncated);
    match proto {
        TCP => Err(tcp_end(cur, src, dst)),
        UDP => Ok(Next::Udp),
        GRE => Ok(Next::Gre),
        IPV4 => {
            ctx.enter_tunnel(Layer::Ipv4)?;
            Ok(Next::Ipv4)
        }
        IPV6 => {
            ctx.enter_tunnel(Layer::Ipv6)?;
            Ok(Next::Ipv6)
        }
        // Hop-by-hop, routing and destination options (RFC 8200 §4.3-4.6):
        // | Next Header (1) | Hdr Ext Len (1, 8-octet units beyond the first) | ... |
        HOPOPT | IPV6_ROUTE | IPV6_OPTS if v6 => {
            let h: &[u8; 2] = array_at(cur.buf, 0).ok_or_else(ext)?;
            let len = (usize::from(h[1]) + 1) * 8;
            let next = h[0];
            if !cur.skip(len) {
                return Err(ext());
            }
            Ok(Next::Proto {
                proto: next,
                src,
                dst,
            })
        }
        // Authentication Header (RFC 4302 §2): | Next Header | Payload Len
        // (4-octet units, minus 2) | ... |, in IPv4 and IPv6 alike.
        AH => {
            let h: &[u8; 2] = array_at(cur.buf, 0).ok_or_else(ext)?;
            let len = (usize::from(h[1]) + 2) * 4;
            let next = h[0];
            if !cur.skip(len) {
                return Err(ext());
            }
            Ok(Next::Proto {
                proto: next,
                src,
                dst,
            })
        }
        IPV6_FRAG if v6 => {
            let h: &[u8; IPV6_FRAG_LEN] = array_at(cur.buf, 0).ok_or_else(ext)?;
            let next = h[0];
            let off_flags = be16_of(h[2], h[3]);
            let offset = usize::from(off_flags >> 3) * 8;
            let more = off_flags & 1 != 0;
            let id = be32(h, 4).unwrap_or_default();
            cur.skip(IPV6_FRAG_LEN);
            if offset == 0 && !more {
                // An atomic fragment (RFC 6946): the whole datagram.
                return Ok(Next::Proto {
                    proto: next,
                    src,
                    dst,
                });
            }
            let key = FragKey {
                src,
                dst,
                id,
                proto: 0,
            };
            let snapped = ctx.seen.snapped;
            Err(fragment(
                ctx,
                key,
                Fragment {
                    offset,
                    more,
                    proto: next,
                    data: cur.buf,
                },
                snapped,
            ))
        }
        // No next header (IPv6), ICMP, ESP, SCTP, ...
        _ => Err(Step::NotTcp),
    }
}

/// UDP header (RFC 768): | src port | dst port | length | checksum |.
/// Only the tunnel ports lead further.
const UDP_LEN: usize = 8;

pub(super) fn udp(cur: &mut Cursor<'_>) -> Flow {
    let dport = be16(cur.buf, 2).ok_or(drop(Layer::Udp, DropReason::Truncated))?;
    let len = be16(cur.buf, 4).ok_or(drop(Layer::Udp, DropReason::Truncated))?;
    if !cur.skip(UDP_LEN) {
        return Err(drop(Layer::Udp, DropReason::Truncated));
    }
    let len = usize::from(len);
    if len >= UDP_LEN {
        cur.trim(len - UDP_LEN);
    }
    match dport {
        VXLAN_PORT => Ok(Next::Vxlan),
        GENEVE_PORT => Ok(Next::Geneve),
        _ => Err(Step::NotTcp),
    }
}
