//! Checked reads over packet bytes and a cursor that tracks where in the
//! decoded buffer it stands.
//!
//! Every read returns `Option`; nothing here can panic whatever the input.
//! Fixed-size headers are taken as `&[u8; N]` once their length is checked,
//! so the accessors of the header views index arrays with constants, which
//! the compiler verifies.

/// `N` bytes at `off`, if present.
#[inline]
pub(super) fn array_at<const N: usize>(b: &[u8], off: usize) -> Option<&[u8; N]> {
    b.get(off..)?.first_chunk::<N>()
}

/// Big-endian (network order) `u16` at `off`.
#[inline]
pub(super) fn be16(b: &[u8], off: usize) -> Option<u16> {
    array_at::<2>(b, off).map(|a| u16::from_be_bytes(*a))
}

/// Big-endian (network order) `u32` at `off`.
#[inline]
pub(super) fn be32(b: &[u8], off: usize) -> Option<u32> {
    array_at::<4>(b, off).map(|a| u32::from_be_bytes(*a))
}

/// Little-endian `u16` at `off`.
#[inline]
pub(super) fn le16(b: &[u8], off: usize) -> Option<u16> {
    array_at::<2>(b, off).map(|a| u16::from_le_bytes(*a))
}

/// Big-endian `u16` from two constant positions of a checked array.
#[inline]
pub(super) fn be16_of(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

/// A read position inside the buffer being decoded (the frame, or a
/// reassembled datagram).
///
/// `buf` is what remains to decode, already trimmed to the innermost length
/// field seen so far; `base` is the absolute offset of `buf[0]` in the whole
/// buffer, so that a payload can be reported as a range and re-borrowed by
/// the caller from whichever buffer it came from.
#[derive(Clone, Copy, Debug)]
pub(super) struct Cursor<'b> {
    pub buf: &'b [u8],
    pub base: usize,
}

impl<'b> Cursor<'b> {
    pub fn new(buf: &'b [u8]) -> Cursor<'b> {
        Cursor { buf, base: 0 }
    }

    /// Drops the first `n` bytes; `false` (and no change) if fewer remain.
    #[inline]
    pub fn skip(&mut self, n: usize) -> bool {
        match self.buf.get(n..) {
            Some(rest) => {
                self.buf = rest;
                // `n <= buf.len()`, so `base + n` never exceeds the buffer length.
                self.base += n;
                true
            }
            None => false,
        }
    }

    /// Limits the remaining bytes to `len` (a length field of the current
    /// layer). Returns `true` when fewer than `len` bytes were captured, i.e.
    /// the capture cut the packet short (snap length).
    #[inline]
    pub fn trim(&mut self, len: usize) -> bool {
        match self.buf.get(..len) {
            Some(head) => {
                self.buf = head;
                false
            }
            None => true,
        }
    }

    /// Absolute range of the remaining bytes.
    #[inline]
    pub fn range(&self) -> std::ops::Range<usize> {
        self.base..self.base + self.buf.len()
    }
}
