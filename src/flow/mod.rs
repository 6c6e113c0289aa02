//! The bounded flow table and per-direction TCP reassembly.
//!
//! Contract: [`FlowTable::process`] turns TCP segments and their packet time
//! (microseconds) into ordered [`Chunk`]s per [`Direction`], handed to a
//! [`FlowHandler`]. It is a pure function of its inputs: no threads, clocks or
//! files. It never panics on any segment (arbitrary sequence and
//! acknowledgment numbers and flags), every allocation is bounded by a named
//! limit in [`FlowLimits`], and every limit that bites is counted in
//! [`FlowStats`].
//!
//! # What a handler sees
//!
//! For every flow: one [`FlowHandler::open`], then any number of
//! [`FlowHandler::chunk`] calls per direction, exactly one [`Chunk::End`] per
//! direction (always before `close`), then exactly one
//! [`FlowHandler::close`]. Within one direction the chunks describe the byte
//! stream in order: `Data` is the next bytes, `Gap(n)` says the next `n`
//! bytes are missing (lost before the capture, or abandoned because a limit
//! was reached), `End` says no byte follows.
//!
//! In-order segments are delivered straight from the segment payload (no
//! copy); only out-of-order bytes are copied into a per-direction buffer.
//! `Data` slices borrow the segment or that buffer and must not be kept.
//!
//! # Reassembly rules (RFC 9293 §3.4, §3.10.7.4)
//!
//! * Each direction tracks sequence numbers relative to its initial sequence
//!   number: ISN+1 from a SYN (RFC 9293 §3.4.1), else the first segment that
//!   carries data or FIN in that direction (mid-stream pickup). Relative
//!   offsets are 64-bit, so the buffer never sees the 2^32 wrap; the mapping
//!   from a 32-bit sequence number uses serial-number arithmetic (RFC 1982).
//! * A segment more than 2^30 bytes ahead of the next expected byte cannot lie
//!   in any receive window (RFC 7323 §2.3 caps a scaled window at 2^30) and is
//!   dropped (`segments_out_of_window`).
//! * Bytes already delivered are dropped (`retransmissions`); a segment that is
//!   partly new delivers only its new part.
//! * Out-of-order bytes are buffered; where they overlap bytes already
//!   buffered, the first copy wins (`overlaps`, and `overlap_conflicts` when
//!   the bytes differ).
//! * Gaps: see [`Chunk::Gap`] for the exact rules.
//! * FIN ends a direction once the stream reaches the FIN in order; a RST
//!   within its sender's window ends both directions at once (holes become
//!   gaps).
//!
//! # Flow table
//!
//! At most [`FlowLimits::max_flows`] flows. When full, flows past their
//! timeout are expired first, then the flow whose timeout is nearest is
//! evicted. Among flows in the same phase that is the least recently active
//! one; closed flows and flows without data have shorter timeouts, so they
//! tend to go before established ones. A deadline-ordered heap with lazy
//! re-insertion makes this O(log n) amortised per packet, never a scan.
//!
//! # Known limitations
//!
//! * Acknowledgments are trusted on plausibility only (see [`Chunk::Gap`]
//!   rule 2): a spoofed ACK with a plausible sequence number can declare
//!   bytes lost. It costs data, never memory.
//! * Rule 2 assumes the capture shows each connection in causal order. A
//!   tap that delivers an ACK before the data it acknowledges makes that
//!   data arrive after its gap; it is then dropped as a retransmission.
//! * When both the last data segment and the FIN are lost, the ACK of the
//!   FIN makes the final gap one byte too long (the FIN's sequence number).
//! * Overlaps are compared only with bytes still buffered; bytes already
//!   delivered are not kept, so a retransmission that rewrites them is
//!   dropped without a conflict being counted.
//! * At mid-stream pickup a direction starts at its first captured segment
//!   with data; if that segment was itself out of order, the bytes before it
//!   can never be placed and are dropped.
//! * The table-wide out-of-order budget is first come, first served: a flow
//!   that finds it exhausted skips its own hole rather than reclaiming
//!   memory held by other flows.
//! * RSTs are checked against the largest possible window only, not for an
//!   exact match (RFC 5961 §3.2): a spoofed in-window RST ends both
//!   directions. Data that then continues exactly where the stream stopped
//!   resumes it in a new flow (`flows_resumed_after_rst`); a hole just
//!   before that point cannot be told from a real end.
//! * The flow-key hasher is fast but not keyed: crafted 4-tuples can slow
//!   the map down (never change its results).

#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used))]

mod reassembly;
mod seq;
mod table;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use serde::Serialize;

use crate::decode::FlowKey;

pub use table::{FlowTable, KeyHasher};

/// A hash map with the fast, unkeyed [`KeyHasher`], for small integer keys
/// whose number is bounded (flow slots, HTTP/2 stream ids). Never use it for
/// attacker-chosen strings: those need std's keyed hasher.
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<KeyHasher>>;

/// The direction of a segment relative to the roles the table assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (the side that sent the SYN, or the guess at mid-stream) to the server.
    ToServer,
    /// From the server to the client.
    ToClient,
}

impl Direction {
    /// Both directions, in index order.
    pub const BOTH: [Direction; 2] = [Direction::ToServer, Direction::ToClient];

    /// 0 for [`Direction::ToServer`], 1 for [`Direction::ToClient`]; for per-direction arrays.
    #[inline]
    pub fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }

    /// This direction's element of a per-direction pair.
    #[inline]
    pub fn pick<T>(self, pair: &[T; 2]) -> &T {
        let [to_server, to_client] = pair;
        match self {
            Direction::ToServer => to_server,
            Direction::ToClient => to_client,
        }
    }

    /// This direction's element of a per-direction pair, mutably.
    #[inline]
    pub fn pick_mut<T>(self, pair: &mut [T; 2]) -> &mut T {
        let [to_server, to_client] = pair;
        match self {
            Direction::ToServer => to_server,
            Direction::ToClient => to_client,
        }
    }

    /// The other direction.
    #[inline]
    pub fn opposite(self) -> Direction {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }
}

/// One piece of a reassembled direction, in stream order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// The next bytes of the stream (never empty). Borrows the current
    /// segment's payload or the reassembly buffer: do not keep it.
    Data(&'a [u8]),
    /// The next `n` bytes (`n > 0`) of the stream are missing. A gap is emitted
    /// only for sequence space that lies between delivered bytes and a known
    /// later point of the stream:
    ///
    /// 1. **Limit**: an out-of-order segment does not fit in the buffer
    ///    ([`FlowLimits::max_ooo_bytes_per_dir`], `max_ooo_segments_per_dir`,
    ///    or the table-wide `max_ooo_bytes_total`). The stream skips ahead to
    ///    the earliest byte it holds (buffered or the new segment): the hole
    ///    before it becomes a gap, and delivery continues from there. Repeated
    ///    until the segment fits or has been delivered.
    /// 2. **Acknowledged loss**: the other direction acknowledges bytes beyond
    ///    the next expected byte (the receiver got data the capture lost).
    ///    The stream skips to the earliest buffered byte or to the
    ///    acknowledged point, whichever comes first, and repeats while the
    ///    acknowledgment is still ahead (a known FIN caps it: the ACK of a
    ///    FIN is one past the data). An acknowledgment is used only from a
    ///    segment without SYN or RST whose sender has been seen before with a
    ///    sequence number within 2^30 of this segment's, and only when it
    ///    lies at most 2^30 ahead (RFC 7323 §2.3). With nothing buffered and
    ///    no FIN seen, an acknowledgment exactly one ahead is ignored: it may
    ///    acknowledge a FIN the capture lost.
    /// 3. **End of the direction**: at RST, timeout, eviction, port reuse or
    ///    [`FlowTable::flush_all`], buffered bytes are delivered with the
    ///    holes between them as gaps, and a hole before a known FIN too.
    Gap(u64),
    /// No more bytes in this direction: the FIN was reached in order, or a
    /// RST was seen, or the flow was closed. Sent exactly once per direction.
    End,
}

/// Named limits of the flow table. Every limit that bites has a counter in
/// [`FlowStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowLimits {
    /// Flows tracked at once; beyond it the flow nearest its timeout is
    /// evicted (`flows_evicted_limit`). At least 1 is used.
    pub max_flows: usize,
    /// Out-of-order bytes buffered per direction of a flow (`ooo_dropped_dir_limit`).
    /// Each buffered piece is charged its length plus 64 bytes of bookkeeping,
    /// here and in `max_ooo_bytes_total`, so the limits bound real memory.
    pub max_ooo_bytes_per_dir: usize,
    /// Out-of-order buffer entries per direction of a flow (`ooo_dropped_dir_limit`).
    pub max_ooo_segments_per_dir: usize,
    /// Out-of-order bytes buffered across the whole table (`ooo_dropped_total_limit`).
    pub max_ooo_bytes_total: usize,
    /// Packet time without any segment after which an established flow is closed.
    pub idle_timeout_us: u64,
    /// Packet time a flow is kept after it ended both ways (FIN both ways, or
    /// RST), to absorb late retransmissions and ACKs.
    pub closed_timeout_us: u64,
    /// Packet time without any segment after which a flow that has not carried
    /// a payload byte yet (unanswered SYNs, scans, bare handshakes) is closed.
    pub syn_timeout_us: u64,
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits {
            max_flows: 131_072,
            max_ooo_bytes_per_dir: 256 * 1024,
            max_ooo_segments_per_dir: 256,
            max_ooo_bytes_total: 64 * 1024 * 1024,
            idle_timeout_us: 120_000_000,
            closed_timeout_us: 5_000_000,
            syn_timeout_us: 30_000_000,
        }
    }
}

/// A [`FlowLimits`] value that cannot work as intended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlowLimitsError {
    /// A limit is zero where at least one is needed.
    #[error("flow limit `{name}` is 0: {hint}")]
    Zero {
        /// The field name.
        name: &'static str,
        /// What to set instead.
        hint: &'static str,
    },
    /// The per-direction byte limit exceeds the table-wide one.
    #[error(
        "max_ooo_bytes_per_dir ({per_dir}) exceeds max_ooo_bytes_total ({total}); lower the first or raise the second"
    )]
    PerDirAboveTotal {
        /// `max_ooo_bytes_per_dir`.
        per_dir: usize,
        /// `max_ooo_bytes_total`.
        total: usize,
    },
}

impl FlowLimits {
    /// Checks the limits for values that defeat their purpose. The table
    /// itself accepts any value (a zero `max_flows` is treated as 1; zero
    /// buffer limits mean every hole is skipped at once).
    pub fn validate(&self) -> Result<(), FlowLimitsError> {
        if self.max_flows == 0 {
            return Err(FlowLimitsError::Zero {
                name: "max_flows",
                hint: "track at least one flow (131072 is the default)",
            });
        }
        if self.idle_timeout_us == 0 {
            return Err(FlowLimitsError::Zero {
                name: "idle_timeout_us",
                hint: "use a positive timeout (120 s is the default)",
            });
        }
        if self.max_ooo_bytes_per_dir > self.max_ooo_bytes_total {
            return Err(FlowLimitsError::PerDirAboveTotal {
                per_dir: self.max_ooo_bytes_per_dir,
                total: self.max_ooo_bytes_total,
            });
        }
        Ok(())
    }
}

/// Counters of the flow table. Every flow created is eventually counted in
/// exactly one of `flows_closed`, `flows_timed_out`, `flows_evicted_limit`,
/// `flows_superseded` or `flows_flushed`, or is still in the table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowStats {
    /// Flows opened (handler `open` calls).
    pub flows_created: u64,
    /// Flows opened without a SYN or SYN+ACK (roles guessed from ports).
    pub flows_midstream: u64,
    /// Flows closed because the table was full.
    pub flows_evicted_limit: u64,
    /// Flows closed after `idle_timeout_us` or `syn_timeout_us` of silence.
    pub flows_timed_out: u64,
    /// Flows closed after they ended both ways (FIN both ways, or RST):
    /// after `closed_timeout_us`, or when a new SYN reused the 4-tuple.
    pub flows_closed: u64,
    /// Flows still open that a new handshake on the same 4-tuple replaced
    /// (a SYN with another initial sequence number, or with swapped roles).
    pub flows_superseded: u64,
    /// Flows closed by [`FlowTable::flush_all`].
    pub flows_flushed: u64,
    /// New flows started by a SYN on a 4-tuple that still had a flow (closed or superseded).
    pub port_reuse: u64,
    /// New flows started because data continued exactly where a RST had
    /// ended the stream (the receiver ignored the RST); the old flow counts
    /// in `flows_closed`.
    pub flows_resumed_after_rst: u64,
    /// Segments given to [`FlowTable::process`].
    pub segments: u64,
    /// Segments without a flow that do not start one (bare ACK or RST).
    pub segments_no_flow: u64,
    /// Segments carrying data or FIN for a flow or direction that has already ended.
    pub segments_after_end: u64,
    /// RSTs outside the sender's possible window, ignored as the receiver would.
    pub rst_ignored: u64,
    /// Segments more than 2^30 ahead of the next expected byte (dropped).
    pub segments_out_of_window: u64,
    /// Segments that carried bytes already delivered (wholly or partly).
    pub retransmissions: u64,
    /// Bytes dropped because they were already delivered.
    pub retransmitted_bytes: u64,
    /// Segments that arrived ahead of the next expected byte.
    pub out_of_order: u64,
    /// Overlaps between a segment and bytes already buffered (first copy wins).
    pub overlaps: u64,
    /// Overlaps in which the bytes differ: an anomaly (evasion or corruption).
    pub overlap_conflicts: u64,
    /// Bytes dropped because they lie beyond the direction's FIN.
    pub bytes_after_fin: u64,
    /// `Gap` chunks emitted.
    pub gaps: u64,
    /// Bytes covered by `Gap` chunks.
    pub gap_bytes: u64,
    /// Of `gaps`, those emitted because the other side acknowledged missing bytes.
    pub ack_gaps: u64,
    /// Skip-aheads forced by `max_ooo_bytes_per_dir` or `max_ooo_segments_per_dir`.
    pub ooo_dropped_dir_limit: u64,
    /// Skip-aheads forced by `max_ooo_bytes_total`.
    pub ooo_dropped_total_limit: u64,
    /// Bytes delivered as `Data`.
    pub bytes_delivered: u64,
    /// Of `bytes_delivered`, those copied through the out-of-order buffer.
    pub bytes_reassembled: u64,
}

/// The consumer of reassembled streams, typically the protocol layer.
pub trait FlowHandler {
    /// Per-flow state, created by `open` and consumed by `close`.
    type State;

    /// A new flow. `client` sent the SYN (or is the guess at mid-stream
    /// pickup); `server` is the other side. `midstream` is true when the
    /// streams do not start at the connection's first byte (no handshake seen,
    /// or a flow resumed after an ignored RST), so the first bytes delivered
    /// may fall in the middle of a message.
    fn open(&mut self, key: &FlowKey, client: SocketAddr, server: SocketAddr, midstream: bool, ts_us: u64) -> Self::State;

    /// The next chunk of direction `dir`. `Data` must not be kept past this call.
    fn chunk(&mut self, state: &mut Self::State, dir: Direction, chunk: Chunk<'_>, ts_us: u64);

    /// The flow is gone; both directions have already received [`Chunk::End`].
    fn close(&mut self, state: Self::State, ts_us: u64);
}
