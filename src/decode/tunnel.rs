//! Tunnels: GRE with ERSPAN and transparent Ethernet bridging, VXLAN and
//! GENEVE. Each decapsulation counts one level against
//! [`DecodeLimits::max_tunnel_depth`](super::DecodeLimits::max_tunnel_depth).
//! A header is validated before the level is counted, so that a packet that
//! merely uses a tunnel's port without being one stays plain UDP.

use super::bytes::{array_at, be16, be16_of, Cursor};
use super::link::{by_ethertype, ethertype};
use super::walk::{drop, Ctx, Flow, Next, Step};
use super::{DropReason, Layer};

/// GRE header (RFC 2784 §2.1, key and sequence number RFC 2890 §2, routing
/// RFC 1701 §2.1):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |C|R|K|S|s|Recur|  Flags  | Ver |         Protocol Type         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |      Checksum (C or R)        |       Offset (C or R)         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         Key (K)                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                 Sequence Number (S)                           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                    Routing (R): SREs                          |
/// ```
///
/// Only version 0 is decapsulated; version 1 (enhanced GRE of PPTP,
/// RFC 2637) carries PPP and is left as "not TCP".
const GRE_LEN: usize = 4;
const GRE_C: u8 = 0x80;
const GRE_R: u8 = 0x40;
const GRE_K: u8 = 0x20;
const GRE_S: u8 = 0x10;
const GRE_VERSION_MASK: u8 = 0x07;
/// Source route entry header: | address family (2) | offset (1) | length (1) |.
const GRE_SRE_LEN: usize = 4;

/// GRE protocol types that are not plain EtherTypes of a payload.
const ERSPAN_II: u16 = 0x88BE;
const ERSPAN_III: u16 = 0x22EB;

pub(super) fn gre(ctx: &mut Ctx<'_>, cur: &mut Cursor<'_>) -> Flow {
    let trunc = || drop(Layer::Gre, DropReason::Truncated);
    let h: &[u8; GRE_LEN] = array_at(cur.buf, 0).ok_or_else(trunc)?;
    let flags = h[0];
    let version = h[1] & GRE_VERSION_MASK;
    let proto = be16_of(h[2], h[3]);
    if version != 0 {
        return Err(Step::NotTcp);
    }
    let mut len = GRE_LEN;
    for (present, field_len) in [
        (flags & (GRE_C | GRE_R) != 0, 4),
        (flags & GRE_K != 0, 4),
        (flags & GRE_S != 0, 4),
    ] {
        if present {
            len += field_len;
        }
    }
    if !cur.skip(len) {
        return Err(trunc());
    }
    if flags & GRE_R != 0 {
        // SREs until the null one (address family 0, length 0).
        loop {
            let sre: &[u8; GRE_SRE_LEN] = array_at(cur.buf, 0).ok_or_else(trunc)?;
            let family = be16_of(sre[0], sre[1]);
            let sre_len = usize::from(sre[3]);
            if !cur.skip(GRE_SRE_LEN + sre_len) {
                return Err(trunc());
            }
            if family == 0 && sre_len == 0 {
                break;
            }
        }
    }
    ctx.enter_tunnel(Layer::Gre)?;
    match proto {
        ethertype::TEB => Ok(Next::Ethernet),
        // ERSPAN type II (S set, 8-byte header) or type I (no header).
        ERSPAN_II => {
            if flags & GRE_S != 0 && !cur.skip(ERSPAN_II_LEN) {
                return Err(drop(Layer::Erspan, DropReason::Truncated));
            }
            Ok(Next::Ethernet)
        }
        ERSPAN_III => erspan3(cur),
        other => by_ethertype(other),
    }
}

/// ERSPAN type II header (draft-foschiano-erspan §4.1):
///
/// ```text
/// |  Ver  |          VLAN         | COS | En|T|    Session ID     |
/// |      Reserved         |                  Index                |
/// ```
const ERSPAN_II_LEN: usize = 8;

/// ERSPAN type III header (draft-foschiano-erspan §4.2), then an 8-byte
/// platform-specific subheader when O is set:
///
/// ```text
/// |  Ver  |          VLAN         | COS |BSO|T|     Session ID    |
/// |                          Timestamp                            |
/// |             SGT               |P|    FT   |   Hw ID   |D|Gra|O|
/// ```
///
/// FT (frame type) 0 is Ethernet, 2 is IP.
const ERSPAN_III_LEN: usize = 12;
const ERSPAN_III_SUBHEADER_LEN: usize = 8;
const ERSPAN_FT_ETHERNET: u8 = 0;
const ERSPAN_FT_IP: u8 = 2;

fn erspan3(cur: &mut Cursor<'_>) -> Flow {
    let h: &[u8; ERSPAN_III_LEN] =
        array_at(cur.buf, 0).ok_or(drop(Layer::Erspan, DropReason::Truncated))?;
    let frame_type = (h[10] >> 2) & 0x1F;
    let optional = h[11] & 0x01 != 0;
    let len = ERSPAN_III_LEN
        + if optional {
            ERSPAN_III_SUBHEADER_LEN
        } else {
            0
        };
    if !cur.skip(len) {
        return Err(drop(Layer::Erspan, DropReason::Truncated));
    }
    match frame_type {
        ERSPAN_FT_ETHERNET => Ok(Next::Ethernet),
        ERSPAN_FT_IP => Ok(Next::IpAuto),
        _ => Err(Step::NonIp),
    }
}

/// VXLAN header (RFC 7348 §5), after UDP to port 4789:
///
/// ```text
/// |R|R|R|R|I|R|R|R|            Reserved                           |
/// |                VXLAN Network Identifier (VNI) |   Reserved    |
/// ```
///
/// An Ethernet frame follows. Without the I flag the datagram is not
/// taken as VXLAN.
const VXLAN_LEN: usize = 8;
const VXLAN_I: u8 = 0x08;

pub(super) fn vxlan(ctx: &mut Ctx<'_>, cur: &mut Cursor<'_>) -> Flow {
    let flags = *cur
        .buf
        .first()
        .ok_or(drop(Layer::Vxlan, DropReason::Truncated))?;
    if flags & VXLAN_I == 0 {
        return Err(Step::NotTcp);
    }
    if !cur.skip(VXLAN_LEN) {
        return Err(drop(Layer::Vxlan, DropReason::Truncated));
    }
    ctx.enter_tunnel(Layer::Vxlan)?;
    Ok(Next::Ethernet)
}

/// GENEVE header (RFC 8926 §3.4), after UDP to port 6081:
///
/// ```text
/// |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
/// |        Virtual Network Identifier (VNI)       |    Reserved   |
/// |                    Variable-Length Options                    |
/// ```
///
/// Opt Len counts 4-byte words. The protocol type is an EtherType
/// (0x6558 for Ethernet). Only version 0 exists.
const GENEVE_LEN: usize = 8;

pub(super) fn geneve(ctx: &mut Ctx<'_>, cur: &mut Cursor<'_>) -> Flow {
    let first = *cur
        .buf
        .first()
        .ok_or(drop(Layer::Geneve, DropReason::Truncated))?;
    if first >> 6 != 0 {
        return Err(Step::NotTcp);
    }
    let proto = be16(cur.buf, 2).ok_or(drop(Layer::Geneve, DropReason::Truncated))?;
    let options = usize::from(first & 0x3F) * 4;
    if !cur.skip(GENEVE_LEN + options) {
        return Err(drop(Layer::Geneve, DropReason::Truncated));
    }
    ctx.enter_tunnel(Layer::Geneve)?;
    by_ethertype(proto)
}
