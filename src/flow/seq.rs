//! TCP sequence-number arithmetic.
//!
//! Sequence numbers are 32-bit and wrap (RFC 9293 §3.4): comparisons are
//! serial-number comparisons (RFC 1982 §3.2), never plain integer ones. The
//! reassembler maps each 32-bit number to a 64-bit offset relative to the
//! direction's initial sequence number, so that buffering and gap logic
//! never see the wrap.
//!
//! ```text
//!            behind (old, retransmitted)   |   ahead (new, maybe out of order)
//!   ... ---------------------------------- next ---------------------------------- ...
//!        distance in [-2^31, 0)                 distance in [0, 2^31)
//!                                               accepted only in [0, MAX_AHEAD]
//! ```

/// The furthest ahead of the next expected byte that a segment or an
/// acknowledgment is believed: 2^30, the largest receive window a peer can
/// advertise with window scaling (RFC 7323 §2.3). Anything further cannot be
/// inside the window and is treated as garbage.
pub(crate) const MAX_AHEAD: u32 = 1 << 30;

/// The signed distance from `from` to `to` in sequence space: positive when
/// `to` comes after `from`. Exactly half-way (2^31) counts as behind.
#[inline]
pub(crate) fn distance(to: u32, from: u32) -> i32 {
    to.wrapping_sub(from) as i32
}

/// Whether `seq` lies within [`MAX_AHEAD`] of `reference`, before or after.
#[inline]
pub(crate) fn near(seq: u32, reference: u32) -> bool {
    distance(seq, reference).unsigned_abs() <= MAX_AHEAD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_is_serial_arithmetic_across_the_wrap() {
        assert_eq!(distance(5, 3), 2);
        assert_eq!(distance(3, 5), -2);
        assert_eq!(distance(2, u32::MAX - 1), 4);
        assert_eq!(distance(u32::MAX - 1, 2), -4);
        assert_eq!(distance(0, 0), 0);
        assert_eq!(distance(1 << 31, 0), i32::MIN);
        assert_eq!(distance(0, 1 << 31), i32::MIN);
        assert_eq!(distance((1 << 31) - 1, 0), i32::MAX);
    }

    #[test]
    fn near_is_symmetric_and_bounded() {
        assert!(near(0, 0));
        assert!(near(MAX_AHEAD, 0));
        assert!(near(0, MAX_AHEAD));
        assert!(near(0u32.wrapping_sub(MAX_AHEAD), 0));
        assert!(!near(MAX_AHEAD + 1, 0));
        assert!(!near(1 << 31, 0));
        assert!(near(10, u32::MAX - 10));
    }
}
