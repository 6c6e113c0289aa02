//! IPv4 and IPv6 fragment reassembly (RFC 791 §3.2, RFC 8200 §4.5), bounded.
//!
//! Only the fragmentable part of a datagram is buffered: the transport
//! payload after the IP header (IPv4) or after the Fragment header (IPv6).
//! When every byte from 0 to the end given by the last fragment has been
//! seen, the buffer is handed back with the protocol number of the first
//! fragment, and decoding carries on at the transport layer.
//!
//! Policy, all by packet time and all counted in [`DecodeStats`]:
//! - **first wins**: bytes already received are never overwritten; a
//!   fragment that overlaps them only fills the holes it covers, and the
//!   overlap is counted (`frag_overlaps`). A fragment that brings nothing
//!   new is dropped as [`DropReason::FragOverlap`];
//! - **datagram limit**: starting a datagram when `max_frag_datagrams` are
//!   already open evicts the oldest one (`frag_dropped_limit`);
//! - **byte limit**: the buffers of all open datagrams (each sized to the
//!   highest fragment end seen) stay within `max_frag_bytes`; the oldest other
//!   datagrams are evicted to make room, and a fragment that still does not
//!   fit drops its own datagram as [`DropReason::FragLimit`];
//! - **timeout**: a datagram not completed `frag_timeout_us` after its first
//!   fragment is dropped (`frag_timeouts`);
//! - a datagram never exceeds 65 535 bytes of payload, and fragments that
//!   disagree about where it ends are [`DropReason::BadHeader`].

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::{DecodeLimits, DecodeStats, DropReason};

/// Largest fragmentable part a datagram can have: the 16-bit length fields
/// of IPv4 and IPv6 (jumbograms are never fragmented, RFC 2675 §3).
pub(super) const MAX_DATAGRAM: usize = 65_535;

/// IPv6 "No Next Header" (RFC 8200 §4.7), used if a completed datagram
/// somehow lacks the protocol of its first fragment.
const NO_NEXT_HEADER: u8 = 59;

/// Identity of a datagram under reassembly. For IPv4 (RFC 791) the protocol
/// is part of the identity; for IPv6 (RFC 8200 §4.5) it is not, and `proto`
/// is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct FragKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub id: u32,
    pub proto: u8,
}

/// One fragment, as found on the wire.
#[derive(Clone, Copy, Debug)]
pub(super) struct Fragment<'b> {
    /// Byte offset of `data` in the fragmentable part.
    pub offset: usize,
    /// The "more fragments" flag: `false` on the last fragment.
    pub more: bool,
    /// Protocol (next header) this fragment announces; for IPv6 only the
    /// one of the fragment at offset 0 counts (RFC 8200 §4.5).
    pub proto: u8,
    pub data: &'b [u8],
}

/// What became of a fragment.
#[derive(Debug)]
pub(super) enum FragOutcome {
    /// Buffered; the datagram still has holes.
    Held,
    /// The datagram is complete: its fragmentable part and protocol.
    Complete { data: Vec<u8>, proto: u8 },
    /// The fragment was not used.
    Drop(DropReason),
}

#[derive(Debug)]
struct Entry {
    serial: u64,
    /// Bytes received so far, sized to the highest fragment end seen.
    buf: Vec<u8>,
    /// Received byte ranges, sorted, disjoint and non-adjacent.
    have: Vec<(usize, usize)>,
    /// End of the datagram, known once the last fragment arrived.
    total: Option<usize>,
    /// Protocol of the first fragment, once it arrived.
    proto: Option<u8>,
}

impl Entry {
    fn max_end(&self) -> usize {
        self.have.last().map_or(0, |r| r.1)
    }

    fn is_complete(&self) -> bool {
        match (self.total, self.have.as_slice()) {
            (Some(0), []) => true,
            (Some(t), [(0, end)]) => *end == t,
            _ => false,
        }
    }

    /// Records `[start, end)` as received, keeping `have` sorted and merged.
    fn mark(&mut self, start: usize, end: usize) {
        if start >= end {
            return;
        }
        let mut lo = start;
        let mut hi = end;
        // Ranges that touch or overlap [start, end) are merged into it.
        self.have.retain(|&(s, e)| {
            if e < start || s > end {
                true
            } else {
                lo = lo.min(s);
                hi = hi.max(e);
                false
            }
        });
        let at = self.have.partition_point(|&(s, _)| s < lo);
        self.have.insert(at, (lo, hi));
    }
}

/// The datagrams under reassembly, with their age order for timeouts and
/// eviction.
#[derive(Debug, Default)]
pub(super) struct FragTable {
    map: HashMap<FragKey, Entry>,
    /// `(first_seen_us, key, serial)` in creation order. Items whose serial
    /// no longer matches the table are stale and skipped; the queue is
    /// compacted when stale items dominate.
    order: VecDeque<(u64, FragKey, u64)>,
    next_serial: u64,
    /// Sum of the buffer lengths of all open datagrams.
    bytes: usize,
}

impl FragTable {
    /// Open datagrams.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes buffered over all open datagrams.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn is_live(&self, key: &FragKey, serial: u64) -> bool {
        self.map.get(key).is_some_and(|e| e.serial == serial)
    }

    fn remove(&mut self, key: &FragKey) -> Option<Entry> {
        let e = self.map.remove(key)?;
        self.bytes = self.bytes.saturating_sub(e.buf.len());
        Some(e)
    }

    /// Drops the datagrams whose first fragment is older than the timeout.
    /// Cheap when nothing is due: one look at the oldest item.
    pub fn expire(&mut self, now_us: u64, limits: &DecodeLimits, stats: &mut DecodeStats) {
        while let Some(&(first, key, serial)) = self.order.front() {
            if !self.is_live(&key, serial) {
                self.order.pop_front();
                continue;
            }
            if now_us <= first.saturating_add(limits.frag_timeout_us) {
                break;
            }
            self.order.pop_front();
            self.remove(&key);
            stats.frag_timeouts = stats.frag_timeouts.saturating_add(1);
        }
    }

    /// Evicts the oldest datagram other than `keep`; `false` if there is none.
    fn evict_oldest(&mut self, keep: &FragKey, stats: &mut DecodeStats) -> bool {
        let mut skipped_keep = None;
        let mut evicted = false;
        while let Some((first, key, serial)) = self.order.pop_front() {
            if !self.is_live(&key, serial) {
                continue;
            }
            if key == *keep {
                skipped_keep = Some((first, key, serial));
                continue;
            }
            self.remove(&key);
            stats.frag_dropped_limit = stats.frag_dropped_limit.saturating_add(1);
            evicted = true;
            break;
        }
        if let Some(item) = skipped_keep {
            self.order.push_front(item);
        }
        evicted
    }

    fn compact(&mut self) {
        if self.order.len() > self.map.len().saturating_mul(2).saturating_add(16) {
            let map = &self.map;
            self.order
                .retain(|(_, key, serial)| map.get(key).is_some_and(|e| e.serial == *serial));
        }
    }

    /// Adds one fragment of the datagram `key`.
    pub fn insert(
        &mut self,
        key: FragKey,
        frag: Fragment<'_>,
        now_us: u64,
        limits: &DecodeLimits,
        stats: &mut DecodeStats,
    ) -> FragOutcome {
        let start = frag.offset;
        let end = match start.checked_add(frag.data.len()) {
            Some(end) if end <= MAX_DATAGRAM => end,
            _ => return FragOutcome::Drop(DropReason::BadHeader),
        };
        if limits.max_frag_datagrams == 0 {
            stats.frag_dropped_limit = stats.frag_dropped_limit.saturating_add(1);
            return FragOutcome::Drop(DropReason::FragLimit);
        }

        // Fragments that contradict the end of the datagram are refused
        // before anything is allocated for them.
        if let Some(e) = self.map.get(&key) {
            let bad = if frag.more {
                e.total.is_some_and(|t| end > t)
            } else {
                e.total.is_some_and(|t| t != end) || e.max_end() > end
            };
            if bad {
                return FragOutcome::Drop(DropReason::BadHeader);
            }
        } else {
            while self.map.len() >= limits.max_frag_datagrams {
                if !self.evict_oldest(&key, stats) {
                    break;
                }
            }
            let serial = self.next_serial;
            self.next_serial = self.next_serial.wrapping_add(1);
            self.map.insert(
                key,
                Entry {
                    serial,
                    buf: Vec::new(),
                    have: Vec::new(),
                    total: None,
                    proto: None,
                },
            );
            self.order.push_back((now_us, key, serial));
            self.compact();
        }

        // Room for the bytes this fragment adds to the buffer.
        let cur_len = self.map.get(&key).map_or(0, |e| e.buf.len());
        let growth = end.saturating_sub(cur_len);
        if growth > 0 {
            while self.bytes.saturating_add(growth) > limits.max_frag_bytes {
                if !self.evict_oldest(&key, stats) {
                    break;
                }
            }
            if self.bytes.saturating_add(growth) > limits.max_frag_bytes {
                self.remove(&key);
                stats.frag_dropped_limit = stats.frag_dropped_limit.saturating_add(1);
                return FragOutcome::Drop(DropReason::FragLimit);
            }
        }

        let Some(e) = self.map.get_mut(&key) else {
            // Unreachable: the entry was found or created above.
            return FragOutcome::Drop(DropReason::FragLimit);
        };
        if growth > 0 {
            e.buf.resize(end, 0);
            self.bytes = self.bytes.saturating_add(growth);
        }
        // The last fragment is informative the first time: it fixes the end.
        let mut added = !frag.more && e.total.is_none();
        if !frag.more {
            e.total = Some(end);
        }
        if start == 0 && e.proto.is_none() {
            e.proto = Some(frag.proto);
        }

        // First wins: copy only into the holes of [start, end).
        let mut overlapped = false;
        let mut pos = start;
        let copy = |buf: &mut Vec<u8>, a: usize, b: usize| {
            let src = frag
                .data
                .get(a.saturating_sub(start)..b.saturating_sub(start));
            if let (Some(dst), Some(src)) = (buf.get_mut(a..b), src) {
                dst.copy_from_slice(src);
            }
        };
        for &(s, r_end) in &e.have {
            if r_end <= pos {
                continue;
            }
            if s >= end {
                break;
            }
            if s > pos {
                copy(&mut e.buf, pos, s);
                added = true;
            }
            overlapped = true;
            pos = r_end;
            if pos >= end {
                break;
            }
        }
        if pos < end {
            copy(&mut e.buf, pos, end);
            added = true;
        }
        e.mark(start, end);
        if overlapped {
            stats.frag_overlaps = stats.frag_overlaps.saturating_add(1);
        }

        if e.is_complete() {
            let proto = e.proto.unwrap_or(NO_NEXT_HEADER);
            let data = self.remove(&key).map(|e| e.buf).unwrap_or_default();
            stats.reassembled = stats.reassembled.saturating_add(1);
            return FragOutcome::Complete { data, proto };
        }
        if overlapped && !added {
            return FragOutcome::Drop(DropReason::FragOverlap);
        }
        FragOutcome::Held
    }
}
