//! Reassembly of one direction of a TCP connection.
//!
//! A [`Stream`] turns the segments of one direction into [`Chunk`]s in stream
//! order. Positions are 64-bit offsets from the direction's initial sequence
//! number (see [`super::seq`]); offset `next` is the first byte not yet
//! delivered (RCV.NXT in RFC 9293 §3.3.1 terms, as seen by the capture).
//!
//! ```text
//!   delivered            hole         buffered        hole     buffered
//!   ━━━━━━━━━━━━━━━━━━━┫- - - - - -┣━━━━━━━━━━━━┫- - - - -┣━━━━━━━━┫ ... FIN
//!                     next         ooo[0].start                 ooo[1]    fin_at
//! ```
//!
//! Invariants of an open stream:
//! * buffered pieces are sorted, non-empty, do not overlap, and all start
//!   strictly after `next` (a piece reaching `next` is delivered at once);
//! * `ooo_bytes` is the sum of their costs (length plus [`PIECE_OVERHEAD`])
//!   and is also counted in the table-wide budget, which is given back
//!   whenever a piece leaves;
//! * once `fin_at` is known, `next <= fin_at` and nothing beyond it is delivered.

use std::collections::VecDeque;

use super::seq::{self, MAX_AHEAD};
use super::{Chunk, FlowLimits, FlowStats};

/// Bytes charged per buffered piece on top of its length, for the
/// allocation and the queue entry, so that many tiny pieces cannot hold much
/// more memory than the byte limits say.
pub(crate) const PIECE_OVERHEAD: usize = 64;

/// What a stream needs from the table while it works: the limits, the
/// counters and the table-wide out-of-order byte budget.
pub(crate) struct Ctx<'a> {
    pub limits: &'a FlowLimits,
    pub stats: &'a mut FlowStats,
    /// Out-of-order bytes buffered across the table.
    pub ooo_total: &'a mut usize,
}

/// One direction of a connection.
#[derive(Debug, Default)]
pub(crate) enum Stream {
    /// No initial sequence number known yet: no SYN and no segment with
    /// data or FIN seen in this direction.
    #[default]
    Unsynced,
    /// Sequence numbers are known; bytes are being delivered.
    Open(OpenStream),
    /// [`Chunk::End`] has been sent; everything else is ignored.
    Ended,
}

/// Out-of-order bytes held until the hole before them is filled.
#[derive(Debug)]
struct Piece {
    start: u64,
    data: Box<[u8]>,
}

impl Piece {
    #[inline]
    fn end(&self) -> u64 {
        self.start.saturating_add(self.data.len() as u64)
    }
}

/// The state of a synchronised direction.
#[derive(Debug)]
pub(crate) struct OpenStream {
    /// Sequence number of offset 0 (ISN+1 after a SYN).
    base: u32,
    /// Whether `base` came from the handshake (SYN, or the ACK of a SYN+ACK).
    from_syn: bool,
    /// Offset of the next byte to deliver.
    next: u64,
    /// Offset at which the FIN sits (the stream's length), once seen.
    fin_at: Option<u64>,
    /// Out-of-order pieces, sorted by `start`.
    ooo: VecDeque<Piece>,
    /// Sum of the costs of `ooo` (see [`PIECE_OVERHEAD`]).
    ooo_bytes: usize,
}

/// The effect a segment's bytes would have on the out-of-order buffer.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// Bytes not yet buffered (to be copied).
    new_bytes: usize,
    /// Pieces those bytes would form.
    new_pieces: usize,
    /// Buffered pieces the segment overlaps.
    overlaps: u64,
    /// Of those, overlaps in which the bytes differ.
    conflicts: u64,
}

impl Plan {
    /// What buffering would charge against the limits.
    fn cost(&self) -> usize {
        self.new_bytes.saturating_add(self.new_pieces.saturating_mul(PIECE_OVERHEAD))
    }
}

impl Stream {
    /// Whether [`Chunk::End`] has been sent.
    pub(crate) fn is_ended(&self) -> bool {
        matches!(self, Stream::Ended)
    }

    /// Out-of-order bytes held by this direction.
    #[cfg(test)]
    pub(crate) fn ooo_bytes(&self) -> usize {
        match self {
            Stream::Open(o) => o.ooo_bytes,
            _ => 0,
        }
    }

    /// Whether a SYN with initial sequence number `isn` from this direction
    /// belongs to the connection already tracked: nothing known yet, or the
    /// same ISN as the handshake that opened it (a retransmitted SYN).
    pub(crate) fn syn_consistent(&self, isn: u32) -> bool {
        match self {
            Stream::Unsynced => true,
            Stream::Open(o) => o.from_syn && o.base == isn.wrapping_add(1),
            Stream::Ended => false,
        }
    }

    /// A SYN from this direction: data starts at ISN+1 (RFC 9293 §3.4.1).
    pub(crate) fn sync_from_syn(&mut self, isn: u32) {
        if let Stream::Unsynced = self {
            *self = Stream::Open(OpenStream::new(isn.wrapping_add(1), true));
        }
    }

    /// The ACK of a SYN+ACK sent to this direction acknowledges its ISN+1:
    /// this direction's data starts there even if its SYN was not captured.
    pub(crate) fn sync_from_syn_ack(&mut self, ack: u32) {
        if let Stream::Unsynced = self {
            *self = Stream::Open(OpenStream::new(ack, true));
        }
    }

    /// The sequence-space content of one segment from this direction: its
    /// payload (after the SYN, if `syn`) and its FIN.
    pub(crate) fn on_segment<E>(
        &mut self,
        seq: u32,
        syn: bool,
        fin: bool,
        payload: &[u8],
        ctx: &mut Ctx<'_>,
        emit: &mut E,
    ) where
        E: FnMut(Chunk<'_>),
    {
        let data_seq = seq.wrapping_add(u32::from(syn));
        if payload.is_empty() && !fin {
            return;
        }
        let o = match self {
            Stream::Open(o) => o,
            Stream::Unsynced => {
                // Mid-stream: the first segment with data or FIN defines offset 0.
                *self = Stream::Open(OpenStream::new(data_seq, false));
                match self {
                    Stream::Open(o) => o,
                    _ => return,
                }
            }
            Stream::Ended => {
                ctx.stats.segments_after_end += 1;
                return;
            }
        };
        o.on_segment(data_seq, fin, payload, ctx, emit);
        if o.reached_fin() {
            self.end(ctx, emit);
        }
    }

    /// An acknowledgment of this direction's bytes, sent by the other side.
    /// The caller has checked that the other side is established.
    pub(crate) fn on_ack<E>(&mut self, ack: u32, ctx: &mut Ctx<'_>, emit: &mut E)
    where
        E: FnMut(Chunk<'_>),
    {
        let Stream::Open(o) = self else { return };
        o.on_ack(ack, ctx, emit);
        if o.reached_fin() {
            self.end(ctx, emit);
        }
    }

    /// The direction ends now (RST, close, flush): buffered bytes are
    /// delivered with the holes before them as gaps, a hole before a known
    /// FIN becomes a gap, then [`Chunk::End`]. Does nothing if already ended.
    ///
    /// Returns the sequence number following the last byte placed, if the
    /// direction was open: where the sender would continue.
    pub(crate) fn finish<E>(&mut self, ctx: &mut Ctx<'_>, emit: &mut E) -> Option<u32>
    where
        E: FnMut(Chunk<'_>),
    {
        let mut resume = None;
        if let Stream::Open(o) = self {
            o.flush(ctx, emit);
            resume = Some(o.next_seq());
        }
        self.end(ctx, emit);
        resume
    }

    /// Whether a RST with sequence number `seq` from this direction lies in
    /// the largest window the receiver could have offered (RFC 9293
    /// §3.10.7.4, first check; RFC 7323 §2.3 for the 2^30 bound). A RST
    /// behind the bytes already seen, or far ahead, is ignored by the
    /// receiver and so is ignored here.
    pub(crate) fn rst_acceptable(&self, seq: u32) -> bool {
        match self {
            Stream::Open(o) => {
                let d = seq::distance(seq, o.next_seq());
                d >= 0 && d.unsigned_abs() <= MAX_AHEAD
            }
            Stream::Unsynced | Stream::Ended => true,
        }
    }

    /// Sends [`Chunk::End`] once and gives the buffer back.
    fn end<E>(&mut self, ctx: &mut Ctx<'_>, emit: &mut E)
    where
        E: FnMut(Chunk<'_>),
    {
        match std::mem::replace(self, Stream::Ended) {
            Stream::Ended => {}
            Stream::Unsynced => emit(Chunk::End),
            Stream::Open(mut o) => {
                o.release_all(ctx);
                emit(Chunk::End);
            }
        }
    }
}

impl OpenStream {
    fn new(base: u32, from_syn: bool) -> OpenStream {
        OpenStream { base, from_syn, next: 0, fin_at: None, ooo: VecDeque::new(), ooo_bytes: 0 }
    }

    /// The sequence number of offset `next`.
    #[inline]
    fn next_seq(&self) -> u32 {
        // Truncation is the point: offsets are sequence numbers modulo 2^32.
        self.base.wrapping_add(self.next as u32)
    }

    #[inline]
    fn reached_fin(&self) -> bool {
        matches!(self.fin_at, Some(f) if self.next >= f)
    }

    fn on_segment<E>(&mut self, data_seq: u32, fin: bool, payload: &[u8], ctx: &mut Ctx<'_>, emit: &mut E)
    where
        E: FnMut(Chunk<'_>),
    {
        let d = seq::distance(data_seq, self.next_seq());
        let len = payload.len() as u64;
        let start = i128::from(self.next) + i128::from(d);
        let end = start + i128::from(len);
        if d > 0 && (d.unsigned_abs() > MAX_AHEAD || u64::try_from(end).is_err()) {
            ctx.stats.segments_out_of_window += 1;
            return;
        }
        if fin && self.fin_at.is_none() && end >= i128::from(self.next) {
            // RFC 9293 §3.10.7.4 (eighth step): the FIN occupies the sequence
            // number after the segment's data. First FIN wins.
            self.fin_at = u64::try_from(end).ok();
        }
        if payload.is_empty() {
            return;
        }
        let (start, data) = match u64::try_from(start) {
            Ok(s) => (s, payload),
            Err(_) => {
                // Bytes before offset 0 precede what this direction tracks
                // (mid-stream start): they can no longer be placed.
                let skip = usize::try_from(-start).unwrap_or(usize::MAX);
                let Some(rest) = payload.get(skip..).filter(|r| !r.is_empty()) else {
                    ctx.stats.retransmissions += 1;
                    ctx.stats.retransmitted_bytes += len;
                    return;
                };
                ctx.stats.retransmitted_bytes += skip as u64;
                if self.next == 0 {
                    ctx.stats.retransmissions += 1;
                }
                (0, rest)
            }
        };
        self.accept(start, data, ctx, emit);
    }

    /// Places `data`, which starts at offset `start`: delivers what is in
    /// order, buffers what is ahead, drops what was delivered already.
    fn accept<E>(&mut self, mut start: u64, mut data: &[u8], ctx: &mut Ctx<'_>, emit: &mut E)
    where
        E: FnMut(Chunk<'_>),
    {
        let mut first = true;
        loop {
            if start < self.next {
                let dup = self.next - start;
                if first {
                    ctx.stats.retransmissions += 1;
                    ctx.stats.retransmitted_bytes += dup.min(data.len() as u64);
                }
                match usize::try_from(dup).ok().and_then(|dup| data.get(dup..)) {
                    Some(rest) if !rest.is_empty() => data = rest,
                    _ => return,
                }
                start = self.next;
            }
            if let Some(fin) = self.fin_at {
                let room = usize::try_from(fin.saturating_sub(start)).unwrap_or(usize::MAX);
                if let Some((kept, after)) = data.split_at_checked(room).filter(|(_, after)| !after.is_empty()) {
                    if first {
                        ctx.stats.bytes_after_fin += after.len() as u64;
                    }
                    data = kept;
                }
            }
            if data.is_empty() {
                return;
            }
            if first && !self.ooo.is_empty() {
                let plan = self.plan(start, data);
                ctx.stats.overlaps += plan.overlaps;
                ctx.stats.overlap_conflicts += plan.conflicts;
            }
            if start == self.next {
                // In order: straight from the segment, up to the first
                // buffered piece (which was there first and wins).
                let n = match self.ooo.front() {
                    Some(p) => usize::try_from(p.start - self.next).map_or(data.len(), |n| n.min(data.len())),
                    None => data.len(),
                };
                let (now, rest) = data.split_at(n);
                if !now.is_empty() {
                    self.deliver(now, false, ctx, emit);
                }
                self.drain(ctx, emit);
                if rest.is_empty() {
                    return;
                }
                data = rest;
                start += n as u64;
                first = false;
                continue;
            }
            // Ahead of `next`: buffer, within limits.
            if first {
                ctx.stats.out_of_order += 1;
                first = false;
            }
            let plan = self.plan(start, data);
            if plan.new_bytes == 0 {
                return;
            }
            let limits = ctx.limits;
            let cost = plan.cost();
            let over_dir = self.ooo_bytes.saturating_add(cost) > limits.max_ooo_bytes_per_dir
                || self.ooo.len().saturating_add(plan.new_pieces) > limits.max_ooo_segments_per_dir;
            let over_total = ctx.ooo_total.saturating_add(cost) > limits.max_ooo_bytes_total;
            if !over_dir && !over_total {
                self.insert(start, data, ctx);
                return;
            }
            // Chunk::Gap rule 1: skip ahead to the earliest byte held.
            if over_dir {
                ctx.stats.ooo_dropped_dir_limit += 1;
            } else {
                ctx.stats.ooo_dropped_total_limit += 1;
            }
            let target = self.ooo.front().map_or(start, |p| p.start.min(start));
            self.gap_to(target, ctx, emit);
            self.drain(ctx, emit);
        }
    }

    /// What buffering `data` at `start` would add, and which buffered pieces it overlaps.
    fn plan(&self, start: u64, data: &[u8]) -> Plan {
        let end = start.saturating_add(data.len() as u64);
        let mut plan = Plan::default();
        let mut cursor = start;
        let first = self.ooo.partition_point(|p| p.end() <= start);
        for p in self.ooo.range(first..) {
            if p.start >= end {
                break;
            }
            if p.start > cursor {
                plan.new_bytes += (p.start - cursor) as usize;
                plan.new_pieces += 1;
            }
            let (os, oe) = (p.start.max(start), p.end().min(end));
            plan.overlaps += 1;
            let ours = data.get((os - start) as usize..(oe - start) as usize);
            let theirs = p.data.get((os - p.start) as usize..(oe - p.start) as usize);
            if ours != theirs {
                plan.conflicts += 1;
            }
            cursor = cursor.max(p.end());
        }
        if cursor < end {
            plan.new_bytes += (end - cursor) as usize;
            plan.new_pieces += 1;
        }
        plan
    }

    /// Copies the bytes of `data` that no buffered piece covers (first copy wins).
    fn insert(&mut self, start: u64, data: &[u8], ctx: &mut Ctx<'_>) {
        let end = start.saturating_add(data.len() as u64);
        let mut i = self.ooo.partition_point(|p| p.end() <= start);
        let mut cursor = start;
        while cursor < end {
            let stop = match self.ooo.get(i) {
                Some(p) if p.start <= cursor => {
                    cursor = cursor.max(p.end());
                    i += 1;
                    continue;
                }
                Some(p) => p.start.min(end),
                None => end,
            };
            let Some(bytes) = data.get((cursor - start) as usize..(stop - start) as usize) else { return };
            let cost = bytes.len().saturating_add(PIECE_OVERHEAD);
            self.ooo_bytes = self.ooo_bytes.saturating_add(cost);
            *ctx.ooo_total = ctx.ooo_total.saturating_add(cost);
            self.ooo.insert(i, Piece { start: cursor, data: Box::from(bytes) });
            i += 1;
            cursor = stop;
        }
    }

    #[inline]
    fn deliver<E>(&mut self, data: &[u8], reassembled: bool, ctx: &mut Ctx<'_>, emit: &mut E)
    where
        E: FnMut(Chunk<'_>),
    {
        let n = data.len() as u64;
        emit(Chunk::Data(data));
        self.next = self.next.saturating_add(n);
        ctx.stats.bytes_delivered += n;
        if reassembled {
            ctx.stats.bytes_reassembled += n;
        }
    }

    /// Declares the bytes up to offset `to` missing. Returns whether a gap was emitted.
    fn gap_to<E>(&mut self, to: u64, ctx: &mut Ctx<'_>, emit: &mut E) -> bool
    where
        E: FnMut(Chunk<'_>),
    {
        if to <= self.next {
            return false;
        }
        let n = to - self.next;
        emit(Chunk::Gap(n));
        self.next = to;
        ctx.stats.gaps += 1;
        ctx.stats.gap_bytes += n;
        true
    }

    /// Delivers buffered pieces that have become contiguous with `next`.
    fn drain<E>(&mut self, ctx: &mut Ctx<'_>, emit: &mut E)
    where
        E: FnMut(Chunk<'_>),
    {
        while self.ooo.front().is_some_and(|p| p.start <= self.next) {
            let Some(p) = self.ooo.pop_front() else { break };
            self.release(p.data.len().saturating_add(PIECE_OVERHEAD), ctx);
            let end = p.end().min(self.fin_at.unwrap_or(u64::MAX));
            if end > self.next {
                if let Some(bytes) = p.data.get((self.next - p.start) as usize..(end - p.start) as usize) {
                    self.deliver(bytes, true, ctx, emit);
                }
            }
        }
    }

    /// Chunk::Gap rule 2: the other side acknowledged up to `ack`.
    fn on_ack<E>(&mut self, ack: u32, ctx: &mut Ctx<'_>, emit: &mut E)
    where
        E: FnMut(Chunk<'_>),
    {
        let d = seq::distance(ack, self.next_seq());
        if d <= 0 || d.unsigned_abs() > MAX_AHEAD {
            return;
        }
        let Some(mut acked) = self.next.checked_add(u64::from(d.unsigned_abs())) else { return };
        match self.fin_at {
            // The FIN takes one sequence number (RFC 9293 §3.4): its ACK is fin_at + 1.
            Some(f) => acked = acked.min(f),
            // Possibly the ACK of a FIN the capture lost: not evidence of lost data.
            None if d == 1 && self.ooo.is_empty() => return,
            None => {}
        }
        while acked > self.next {
            let target = self.ooo.front().map_or(acked, |p| p.start.min(acked));
            if self.gap_to(target, ctx, emit) {
                ctx.stats.ack_gaps += 1;
            }
            self.drain(ctx, emit);
            if self.reached_fin() {
                break;
            }
        }
    }

    /// Delivers everything buffered up to the FIN (if known), holes as gaps.
    fn flush<E>(&mut self, ctx: &mut Ctx<'_>, emit: &mut E)
    where
        E: FnMut(Chunk<'_>),
    {
        let limit = self.fin_at.unwrap_or(u64::MAX);
        while let Some(start) = self.ooo.front().map(|p| p.start) {
            if start >= limit {
                break;
            }
            self.gap_to(start, ctx, emit);
            self.drain(ctx, emit);
        }
        if let Some(f) = self.fin_at {
            self.gap_to(f, ctx, emit);
        }
    }

    fn release(&mut self, n: usize, ctx: &mut Ctx<'_>) {
        self.ooo_bytes = self.ooo_bytes.saturating_sub(n);
        *ctx.ooo_total = ctx.ooo_total.saturating_sub(n);
    }

    fn release_all(&mut self, ctx: &mut Ctx<'_>) {
        let n = self.ooo_bytes;
        self.release(n, ctx);
        self.ooo.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned copy of a chunk, for comparisons.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Out {
        Data(Vec<u8>),
        Gap(u64),
        End,
    }

    struct Harness {
        limits: FlowLimits,
        stats: FlowStats,
        total: usize,
        stream: Stream,
        out: Vec<Out>,
    }

    impl Harness {
        fn new(limits: FlowLimits) -> Harness {
            Harness { limits, stats: FlowStats::default(), total: 0, stream: Stream::Unsynced, out: Vec::new() }
        }

        fn seg(&mut self, seq: u32, flags: &str, payload: &[u8]) {
            let Harness { limits, stats, total, stream, out } = self;
            let mut ctx = Ctx { limits, stats, ooo_total: total };
            let syn = flags.contains('S');
            if syn {
                stream.sync_from_syn(seq);
            }
            stream.on_segment(seq, syn, flags.contains('F'), payload, &mut ctx, &mut |c| out.push(owned(c)));
        }

        fn ack(&mut self, ack: u32) {
            let Harness { limits, stats, total, stream, out } = self;
            let mut ctx = Ctx { limits, stats, ooo_total: total };
            stream.on_ack(ack, &mut ctx, &mut |c| out.push(owned(c)));
        }

        fn finish(&mut self) {
            let Harness { limits, stats, total, stream, out } = self;
            let mut ctx = Ctx { limits, stats, ooo_total: total };
            stream.finish(&mut ctx, &mut |c| out.push(owned(c)));
        }

        /// Output with adjacent data merged.
        fn merged(&self) -> Vec<Out> {
            let mut v: Vec<Out> = Vec::new();
            for o in &self.out {
                match (v.last_mut(), o) {
                    (Some(Out::Data(a)), Out::Data(b)) => a.extend_from_slice(b),
                    _ => v.push(o.clone()),
                }
            }
            v
        }
    }

    fn owned(c: Chunk<'_>) -> Out {
        match c {
            Chunk::Data(d) => {
                assert!(!d.is_empty(), "empty Data chunk");
                Out::Data(d.to_vec())
            }
            Chunk::Gap(n) => {
                assert!(n > 0, "empty Gap chunk");
                Out::Gap(n)
            }
            Chunk::End => Out::End,
        }
    }

    fn data(s: &str) -> Out {
        Out::Data(s.as_bytes().to_vec())
    }

    #[test]
    fn syn_then_data_in_order() {
        let mut h = Harness::new(FlowLimits::default());
        h.seg(99, "S", b"");
        h.seg(100, "", b"hello ");
        h.seg(106, "F", b"world");
        assert_eq!(h.out, vec![data("hello "), data("world"), Out::End]);
        assert!(h.stream.is_ended());
    }

    #[test]
    fn byte_at_a_time_in_every_order_of_three() {
        let perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        for p in perms {
            let mut h = Harness::new(FlowLimits::default());
            h.seg(9, "S", b"");
            for i in p {
                h.seg(10 + i as u32, "", &[b'a' + i as u8]);
            }
            assert_eq!(h.merged(), vec![data("abc")], "order {p:?}");
            assert_eq!(h.total, 0);
        }
    }

    #[test]
    fn plan_counts_new_bytes_pieces_and_conflicts() {
        let mut h = Harness::new(FlowLimits::default());
        h.seg(0, "", b"x");
        h.seg(10, "", b"abcd"); // offsets 10..14
        h.seg(20, "", b"efgh"); // offsets 20..24
        let Stream::Open(o) = &h.stream else { panic!() };
        let plan = o.plan(8, b"..abcd......EFGH..");
        assert_eq!(plan, Plan { new_bytes: 10, new_pieces: 3, overlaps: 2, conflicts: 1 });
        let plan = o.plan(11, b"bc");
        assert_eq!(plan, Plan { new_bytes: 0, new_pieces: 0, overlaps: 1, conflicts: 0 });
    }

    #[test]
    fn insert_fills_only_the_holes() {
        let mut h = Harness::new(FlowLimits::default());
        h.seg(0, "", b"x");
        h.seg(10, "", b"abcd");
        h.seg(20, "", b"efgh");
        h.seg(8, "", b"89ABCD012345EFGH67");
        assert_eq!(h.stats.overlaps, 2);
        assert_eq!(h.stats.overlap_conflicts, 2);
        assert_eq!(h.stream.ooo_bytes(), 18 + 5 * PIECE_OVERHEAD);
        h.seg(1, "", b"1234567");
        assert_eq!(h.merged(), vec![data("x123456789abcd012345efgh67")]);
        assert_eq!(h.total, 0);
    }

    #[test]
    fn ack_beyond_a_hole_gaps_to_the_buffered_piece() {
        let mut h = Harness::new(FlowLimits::default());
        h.seg(1000, "", b"aaaa");
        h.seg(1010, "", b"cccc"); // 1004..1010 lost
        h.ack(1008); // acknowledges part of the hole only
        h.ack(1014);
        assert_eq!(h.out, vec![data("aaaa"), Out::Gap(4), Out::Gap(2), data("cccc")]);
        assert_eq!(h.stats.ack_gaps, 2);
    }

    #[test]
    fn ack_one_past_the_data_is_a_lost_fin_not_a_gap() {
        let mut h = Harness::new(FlowLimits::default());
        h.seg(1000, "", b"aaaa");
        h.ack(1005);
        assert_eq!(h.out, vec![data("aaaa")]);
        h.ack(1006);
        assert_eq!(h.out, vec![data("aaaa"), Out::Gap(2)]);
    }

    #[test]
    fn ack_of_a_fin_is_clamped_to_the_fin() {
        let mut h = Harness::new(FlowLimits::default());
        h.seg(1000, "", b"aaaa");
        h.seg(1008, "F", b"cc"); // 1004..1008 lost, FIN at 1010
        h.ack(1011);
        assert_eq!(h.out, vec![data("aaaa"), Out::Gap(4), data("cc"), Out::End]);
    }

    #[test]
    fn absurd_acks_are_ignored() {
        let mut h = Harness::new(FlowLimits::default());
        h.seg(1000, "", b"aaaa");
        h.ack(1004 + MAX_AHEAD + 1);
        h.ack(1004u32.wrapping_add(1 << 31));
        h.ack(3);
        h.ack(999);
        assert_eq!(h.out, vec![data("aaaa")]);
    }

    #[test]
    fn fin_out_of_order_ends_after_the_hole() {
        let mut h = Harness::new(FlowLimits::default());
        h.seg(0, "", b"ab");
        h.seg(4, "F", b"ef");
        assert_eq!(h.out, vec![data("ab")]);
        h.seg(2, "", b"cdXX"); // "XX" overlaps the buffered "ef": first copy wins
        assert_eq!(h.merged(), vec![data("abcdef"), Out::End]);
    }

    #[test]
    fn data_beyond_the_fin_is_dropped() {
        let mut h = Harness::new(FlowLimits::default());
        h.seg(0, "F", b"ab");
        h.seg(2, "", b"zz");
        assert_eq!(h.out, vec![data("ab"), Out::End]);
        assert_eq!(h.stats.segments_after_end, 1);
    }

    #[test]
    fn finish_turns_holes_into_gaps() {
        let mut h = Harness::new(FlowLimits::default());
        h.seg(0, "", b"ab");
        h.seg(5, "", b"f");
        h.seg(8, "", b"ij");
        h.seg(11, "F", b"");
        h.finish();
        assert_eq!(h.out, vec![data("ab"), Out::Gap(3), data("f"), Out::Gap(2), data("ij"), Out::Gap(1), Out::End]);
        h.finish();
        assert_eq!(h.out.len(), 7, "End is sent once");
        assert_eq!(h.total, 0);
    }

    #[test]
    fn unsynced_stream_ends_without_data() {
        let mut h = Harness::new(FlowLimits::default());
        h.seg(5, "", b""); // a bare ACK does not synchronise
        assert!(matches!(h.stream, Stream::Unsynced));
        h.finish();
        assert_eq!(h.out, vec![Out::End]);
    }

    #[test]
    fn segment_limit_skips_ahead() {
        let limits = FlowLimits { max_ooo_segments_per_dir: 2, ..FlowLimits::default() };
        let mut h = Harness::new(limits);
        h.seg(0, "", b"a");
        h.seg(3, "", b"d");
        h.seg(5, "", b"f");
        h.seg(7, "", b"h"); // third piece: skip to offset 3
        assert_eq!(h.out, vec![data("a"), Out::Gap(2), data("d")]);
        assert_eq!(h.stats.ooo_dropped_dir_limit, 1);
        assert_eq!(h.stream.ooo_bytes(), 2 + 2 * PIECE_OVERHEAD);
    }

    #[test]
    fn a_segment_larger_than_the_buffer_is_delivered_after_a_gap() {
        let limits = FlowLimits { max_ooo_bytes_per_dir: 4, ..FlowLimits::default() };
        let mut h = Harness::new(limits);
        h.seg(0, "", b"a");
        h.seg(10, "", b"0123456789");
        assert_eq!(h.out, vec![data("a"), Out::Gap(9), data("0123456789")]);
        assert_eq!(h.stream.ooo_bytes(), 0);
    }

    #[test]
    fn out_of_window_segments_are_dropped() {
        let mut h = Harness::new(FlowLimits::default());
        h.seg(0, "", b"a");
        h.seg(MAX_AHEAD + 2, "", b"z");
        h.seg(u32::MAX - 5, "F", b"z"); // far behind: old
        assert_eq!(h.out, vec![data("a")]);
        assert_eq!(h.stats.segments_out_of_window, 1);
        assert_eq!(h.stats.retransmissions, 1);
    }

    #[test]
    fn bytes_before_the_midstream_start_are_dropped() {
        let mut h = Harness::new(FlowLimits::default());
        h.seg(100, "", b"cd");
        h.seg(98, "", b"abcdef");
        assert_eq!(h.merged(), vec![data("cdef")]);
        assert_eq!(h.stats.retransmitted_bytes, 4);
    }

    #[test]
    fn wrap_around_is_invisible() {
        let mut h = Harness::new(FlowLimits::default());
        let isn = u32::MAX - 3;
        h.seg(isn, "S", b"");
        h.seg(isn.wrapping_add(5), "", b"EFGH"); // crosses 0
        h.seg(isn.wrapping_add(1), "", b"ABCD");
        h.seg(isn.wrapping_add(9), "F", b"IJ");
        assert_eq!(h.merged(), vec![data("ABCDEFGHIJ"), Out::End]);
    }
}
