//! Link layers and what sits between them and IP: Ethernet, VLAN tags,
//! MPLS, PPPoE, BSD loopback, Linux cooked captures and NFLOG.

use super::bytes::{array_at, be16, be16_of, le16, Cursor};
use super::walk::{drop, Ctx, Flow, Next, Step};
use super::{DropReason, Layer, LinkType};

/// EtherTypes (IEEE 802 numbers registry).
pub(super) mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86DD;
    /// IEEE 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// IEEE 802.1ad service VLAN tag.
    pub const QINQ: u16 = 0x88A8;
    /// Pre-standard QinQ tags still seen in the field.
    pub const QINQ_9100: u16 = 0x9100;
    pub const QINQ_9200: u16 = 0x9200;
    pub const MPLS_UNICAST: u16 = 0x8847;
    pub const MPLS_MULTICAST: u16 = 0x8848;
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// Transparent Ethernet bridging (RFC 1701), Ethernet inside GRE/GENEVE.
    pub const TEB: u16 = 0x6558;
}

/// Dispatches to the header of the capture's link type.
pub(super) fn link(l: LinkType, cur: &mut Cursor<'_>) -> Flow {
    match l {
        LinkType::Ethernet => Ok(Next::Ethernet),
        LinkType::Null => null(cur),
        LinkType::Raw => Ok(Next::IpAuto),
        LinkType::Ipv4 => Ok(Next::Ipv4),
        LinkType::Ipv6 => Ok(Next::Ipv6),
        LinkType::LinuxSll => sll(cur),
        LinkType::LinuxSll2 => sll2(cur),
        LinkType::Nflog => nflog(cur),
        LinkType::Unknown(_) => Err(drop(Layer::Link, DropReason::UnsupportedLink)),
    }
}

/// What follows a given EtherType.
pub(super) fn by_ethertype(t: u16) -> Flow {
    use ethertype::*;
    match t {
        IPV4 => Ok(Next::Ipv4),
        IPV6 => Ok(Next::Ipv6),
        VLAN | QINQ | QINQ_9100 | QINQ_9200 => Ok(Next::Vlan),
        MPLS_UNICAST | MPLS_MULTICAST => Ok(Next::Mpls),
        PPPOE_SESSION => Ok(Next::Pppoe),
        TEB => Ok(Next::Ethernet),
        // ARP, LLDP, 802.3 lengths (LLC), anything else.
        _ => Err(Step::NonIp),
    }
}

/// Ethernet II header (IEEE 802.3 clause 3.2):
///
/// ```text
/// | destination MAC (6) | source MAC (6) | EtherType (2) |
/// ```
pub(super) const ETHERNET_LEN: usize = 14;
pub(super) const ETHERNET_TYPE: usize = 12;

pub(super) fn ethernet(cur: &mut Cursor<'_>) -> Flow {
    let t = be16(cur.buf, ETHERNET_TYPE).ok_or(drop(Layer::Ethernet, DropReason::Truncated))?;
    cur.skip(ETHERNET_LEN);
    by_ethertype(t)
}

/// 802.1Q / 802.1ad tags, as many as are stacked; the TPID was the
/// EtherType that led here:
///
/// ```text
/// | PCP(3) DEI(1) VID(12) | EtherType of what follows (2) |
/// ```
const VLAN_LEN: usize = 4;

pub(super) fn vlan(ctx: &mut Ctx<'_>, cur: &mut Cursor<'_>) -> Flow {
    ctx.seen.vlan = true;
    loop {
        let t = be16(cur.buf, 2).ok_or(drop(Layer::Vlan, DropReason::Truncated))?;
        cur.skip(VLAN_LEN);
        match t {
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_9100 | ethertype::QINQ_9200 => {}
            other => return by_ethertype(other),
        }
    }
}

/// MPLS label stack entries (RFC 3032 §2.1):
///
/// ```text
/// | Label (20) | TC (3) | S (1) | TTL (8) |
/// ```
///
/// After the entry with S (bottom of stack) set, the payload carries no
/// type: IPv4 and IPv6 are recognised by the version nibble. Nibble 0 is a
/// pseudowire control word (RFC 4385) when an Ethernet frame with a known
/// EtherType follows it; anything else is taken as an Ethernet pseudowire
/// without control word (RFC 4448).
const MPLS_ENTRY_LEN: usize = 4;
const MPLS_BOTTOM: u8 = 0x01;
const PW_CONTROL_WORD_LEN: usize = 4;

pub(super) fn mpls(ctx: &mut Ctx<'_>, cur: &mut Cursor<'_>) -> Flow {
    ctx.seen.mpls = true;
    loop {
        let e: &[u8; MPLS_ENTRY_LEN] =
            array_at(cur.buf, 0).ok_or(drop(Layer::Mpls, DropReason::Truncated))?;
        let bottom = e[2] & MPLS_BOTTOM != 0;
        cur.skip(MPLS_ENTRY_LEN);
        if bottom {
            break;
        }
    }
    let first = *cur
        .buf
        .first()
        .ok_or(drop(Layer::Mpls, DropReason::Truncated))?;
    match first >> 4 {
        4 => Ok(Next::Ipv4),
        6 => Ok(Next::Ipv6),
        0 if has_known_ethertype(cur.buf.get(PW_CONTROL_WORD_LEN..).unwrap_or_default()) => {
            cur.skip(PW_CONTROL_WORD_LEN);
            Ok(Next::Ethernet)
        }
        _ => Ok(Next::Ethernet),
    }
}

/// Whether `b` looks like an Ethernet frame carrying IP, ARP, VLAN or MPLS.
fn has_known_ethertype(b: &[u8]) -> bool {
    use ethertype::*;
    matches!(
        be16(b, ETHERNET_TYPE),
        Some(IPV4 | IPV6 | ARP | VLAN | QINQ | QINQ_9100 | MPLS_UNICAST | MPLS_MULTICAST)
    )
}

/// PPPoE session stage (RFC 2516 §4) and the PPP protocol field (RFC 1661):
///
/// ```text
/// | VER(4) TYPE(4) | CODE (1) | SESSION_ID (2) | LENGTH (2) | PPP protocol (2) |
/// ```
///
/// LENGTH counts the PPP payload including its protocol field.
const PPPOE_LEN: usize = 6;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;

pub(super) fn pppoe(cur: &mut Cursor<'_>) -> Flow {
    let h: &[u8; PPPOE_LEN + 2] =
        array_at(cur.buf, 0).ok_or(drop(Layer::Pppoe, DropReason::Truncated))?;
    let len = usize::from(be16_of(h[4], h[5]));
    let proto = be16_of(h[6], h[7]);
    cur.skip(PPPOE_LEN);
    cur.trim(len);
    cur.skip(2);
    match proto {
        PPP_IPV4 => Ok(Next::Ipv4),
        PPP_IPV6 => Ok(Next::Ipv6),
        _ => Err(Step::NonIp),
    }
}

/// BSD loopback (`LINKTYPE_NULL`, `LINKTYPE_LOOP`): a 4-byte address family,
/// in the capturing host's byte order for NULL and network order for LOOP.
/// Both orders are tried. IPv6's value differs between systems.
const NULL_LEN: usize = 4;
const AF_INET: u32 = 2;
/// AF_INET6 on NetBSD/OpenBSD/BSDi, FreeBSD/DragonFly, and Darwin.
const AF_INET6_BSD: u32 = 24;
const AF_INET6_FREEBSD: u32 = 28;
const AF_INET6_DARWIN: u32 = 30;

pub(super) fn null(cur: &mut Cursor<'_>) -> Flow {
    let f: &[u8; NULL_LEN] =
        array_at(cur.buf, 0).ok_or(drop(Layer::Link, DropReason::Truncated))?;
    cur.skip(NULL_LEN);
    for family in [u32::from_le_bytes(*f), u32::from_be_bytes(*f)] {
        match family {
            AF_INET => return Ok(Next::Ipv4),
            AF_INET6_BSD | AF_INET6_FREEBSD | AF_INET6_DARWIN => return Ok(Next::Ipv6),
            _ => {}
        }
    }
    Err(Step::NonIp)
}

/// Linux cooked capture v1 (`LINKTYPE_LINUX_SLL`):
///
/// ```text
/// | packet type (2) | ARPHRD type (2) | addr len (2) | addr (8) | protocol (2) |
/// ```
///
/// The protocol is an EtherType for the link types that matter here.
const SLL_LEN: usize = 16;
const SLL_PROTOCOL: usize = 14;

pub(super) fn sll(cur: &mut Cursor<'_>) -> Flow {
    let t = be16(cur.buf, SLL_PROTOCOL).ok_or(drop(Layer::Link, DropReason::Truncated))?;
    cur.skip(SLL_LEN);
    by_ethertype(t)
}

/// Linux cooked capture v2 (`LINKTYPE_LINUX_SLL2`):
///
/// ```text
/// | protocol (2) | reserved (2) | interface index (4) | ARPHRD type (2)
/// | packet type (1) | addr len (1) | addr (8) |
/// ```
const SLL2_LEN: usize = 20;
const SLL2_PROTOCOL: usize = 0;

pub(super) fn sll2(cur: &mut Cursor<'_>) -> Flow {
    let t = be16(cur.buf, SLL2_PROTOCOL).ok_or(drop(Layer::Link, DropReason::Truncated))?;
    if !cur.skip(SLL2_LEN) {
        return Err(drop(Layer::Link, DropReason::Truncated));
    }
    by_ethertype(t)
}

/// Linux NFLOG (`LINKTYPE_NFLOG`): a 4-byte header then netlink-style TLVs.
///
/// ```text
/// | family (1) | version (1) | resource id (2, network order) |
/// | TLV length (2) | TLV type (2) | value ... padded to 4 bytes | ...
/// ```
///
/// TLV length and type are in the capturing host's byte order (little-endian
/// in practice; big-endian is recognised when the little-endian reading of
/// the first length is impossible). The length includes the 4-byte TLV
/// header and excludes the padding. The packet is the value of the
/// `NFULA_PAYLOAD` TLV (type 9); the family (2 AF_INET, 10 AF_INET6 as on
/// Linux) says which IP version it is.
const NFLOG_HEADER_LEN: usize = 4;
const NFLOG_TLV_HEADER_LEN: usize = 4;
const NFULA_PAYLOAD: u16 = 9;
/// Netlink attribute flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER) in the type.
const NLA_TYPE_MASK: u16 = 0x3FFF;
const NFLOG_AF_INET: u8 = 2;
const NFLOG_AF_INET6: u8 = 10;

pub(super) fn nflog(cur: &mut Cursor<'_>) -> Flow {
    let trunc = || drop(Layer::Link, DropReason::Truncated);
    let family = *cur.buf.first().ok_or_else(trunc)?;
    if !cur.skip(NFLOG_HEADER_LEN) {
        return Err(trunc());
    }
    let read16: fn(&[u8], usize) -> Option<u16> = {
        let le_ok = le16(cur.buf, 0).is_some_and(|l| {
            usize::from(l) >= NFLOG_TLV_HEADER_LEN && usize::from(l) <= cur.buf.len()
        });
        if le_ok || cur.buf.len() < NFLOG_TLV_HEADER_LEN {
            le16
        } else {
            be16
        }
    };
    while !cur.buf.is_empty() {
        let (Some(len), Some(typ)) = (read16(cur.buf, 0), read16(cur.buf, 2)) else {
            return Err(trunc());
        };
        let len = usize::from(len);
        if len < NFLOG_TLV_HEADER_LEN {
            return Err(drop(Layer::Link, DropReason::BadHeader));
        }
        if typ & NLA_TYPE_MASK == NFULA_PAYLOAD {
            // A TLV cut by the snap length still gives what was captured;
            // the IP header tells how much is missing.
            cur.trim(len);
            cur.skip(NFLOG_TLV_HEADER_LEN);
            return match family {
                NFLOG_AF_INET => Ok(Next::Ipv4),
                NFLOG_AF_INET6 => Ok(Next::Ipv6),
                _ => Ok(Next::IpAuto),
            };
        }
        let padded = len.saturating_add(3) & !3;
        if !cur.skip(padded) && !cur.skip(len) {
            return Err(trunc());
        }
    }
    // A log record without the packet.
    Err(Step::NonIp)
}
