//! The TCP header (RFC 9293 §3.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Sequence Number                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Acknowledgment Number                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Data |       |C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Checksum            |         Urgent Pointer        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options (Data Offset > 5)                  |
//! ```
//!
//! The checksum is not verified (offload). Options are skipped. The payload
//! is what follows the options up to the end of the IP payload, which the
//! cursor has already been trimmed to.

use std::net::{IpAddr, SocketAddr};

use super::bytes::{array_at, be16_of, Cursor};
use super::walk::TcpMeta;
use super::{DropReason, TcpFlags};

/// Length of the fixed part of the header.
const FIXED_LEN: usize = 20;
/// Byte offsets in the fixed part.
const DATA_OFFSET: usize = 12;
const FLAGS: usize = 13;

/// Parses the TCP header at the cursor.
pub(super) fn segment(cur: &Cursor<'_>, src: IpAddr, dst: IpAddr) -> Result<TcpMeta, DropReason> {
    let h: &[u8; FIXED_LEN] = array_at(cur.buf, 0).ok_or(DropReason::Truncated)?;
    let header_len = usize::from(h[DATA_OFFSET] >> 4) * 4;
    if header_len < FIXED_LEN {
        return Err(DropReason::BadHeader);
    }
    if header_len > cur.buf.len() {
        return Err(DropReason::Truncated);
    }
    let range = cur.range();
    Ok(TcpMeta {
        src: SocketAddr::new(src, be16_of(h[0], h[1])),
        dst: SocketAddr::new(dst, be16_of(h[2], h[3])),
        seq: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        ack: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        flags: TcpFlags(h[FLAGS]),
        window: be16_of(h[14], h[15]),
        payload: range.start.saturating_add(header_len)..range.end,
    })
}
