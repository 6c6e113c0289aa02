//! The bounded flow table: roles, handshake, RST, timeouts and eviction.
//!
//! Flows live in a slab (`slots`) indexed from a hash map keyed by the
//! symmetric [`FlowKey`]. Timeouts and eviction use a min-heap of deadlines
//! with lazy invalidation:
//!
//! * each live flow has exactly one *valid* heap entry, the one whose
//!   deadline equals the flow's `queued` field and whose generation equals
//!   its slot's; any other entry is stale and skipped when popped;
//! * activity does not touch the heap (the deadline only moves later); when
//!   an entry is popped, the flow's current deadline is recomputed and the
//!   entry re-pushed if it moved;
//! * a phase change that brings the deadline earlier (the flow closed)
//!   pushes a new entry at once;
//! * stale entries are bounded: the heap is rebuilt from the live flows when
//!   it exceeds twice their number (plus a constant), which is amortised O(1).
//!
//! So expiry and eviction cost O(log n) amortised per flow event, never a scan.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;

use crate::decode::{FlowKey, TcpSegment};

use super::reassembly::{Ctx, Stream};
use super::seq;
use super::{Direction, FlowHandler, FlowLimits, FlowStats};

/// Ports taken as the server side at mid-stream pickup, besides all ports below 1024.
pub(crate) const WELL_KNOWN_HTTP_PORTS: [u16; 10] = [80, 443, 8080, 8000, 8008, 8081, 8443, 3000, 5000, 9200];

/// Slots per slab chunk: the table grows a chunk at a time and never moves
/// (or copies) the slots it has.
pub const SLAB_CHUNK: usize = 4096;

/// Flow slots in fixed-size chunks, indexed like one vector.
struct Slab<S> {
    chunks: Vec<Vec<Slot<S>>>,
    len: usize,
}

impl<S> Slab<S> {
    fn new() -> Self {
        Slab { chunks: Vec::new(), len: 0 }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, idx: usize) -> Option<&Slot<S>> {
        self.chunks.get(idx / SLAB_CHUNK)?.get(idx % SLAB_CHUNK)
    }

    fn get_mut(&mut self, idx: usize) -> Option<&mut Slot<S>> {
        self.chunks.get_mut(idx / SLAB_CHUNK)?.get_mut(idx % SLAB_CHUNK)
    }

    fn push(&mut self, slot: Slot<S>) {
        if self.chunks.last().is_none_or(|c| c.len() == SLAB_CHUNK) {
            self.chunks.push(Vec::with_capacity(SLAB_CHUNK));
        }
        if let Some(c) = self.chunks.last_mut() {
            c.push(slot);
            self.len += 1;
        }
    }

    fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    fn iter(&self) -> impl Iterator<Item = &Slot<S>> {
        self.chunks.iter().flatten()
    }
}

/// Stale heap entries tolerated beyond the number of live flows before a rebuild.
const HEAP_SLACK: usize = 1024;

/// The life of a flow, which chooses its timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No payload byte yet in either direction: `syn_timeout_us`.
    Fresh,
    /// Payload seen: `idle_timeout_us`.
    Active,
    /// Both directions ended at packet time `since`: `closed_timeout_us` from then.
    Closed { since: u64 },
}

/// Why a flow leaves the table; each reason has its counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Removal {
    Closed,
    TimedOut,
    Evicted,
    Superseded,
    Flushed,
}

struct Flow<S> {
    key: FlowKey,
    client: SocketAddr,
    streams: [Stream; 2],
    /// The last sequence number seen from each direction: a direction's
    /// acknowledgments are used only once it has been seen before.
    last_seq: [Option<u32>; 2],
    state: S,
    phase: Phase,
    /// Latest packet time seen on this flow.
    last_seen: u64,
    /// Deadline of this flow's valid heap entry.
    queued: u64,
    /// After a RST: per direction, the sequence number at which that
    /// direction's stream stopped. Data arriving exactly there means the
    /// receiver ignored the RST (see [`FlowTable::process`]).
    reset_at: [Option<u32>; 2],
}

impl<S> Flow<S> {
    fn deadline(&self, limits: &FlowLimits) -> u64 {
        match self.phase {
            Phase::Fresh => self.last_seen.saturating_add(limits.syn_timeout_us),
            Phase::Active => self.last_seen.saturating_add(limits.idle_timeout_us),
            Phase::Closed { since } => since.saturating_add(limits.closed_timeout_us),
        }
    }

    fn server(&self) -> SocketAddr {
        if self.key.lo == self.client {
            self.key.hi
        } else {
            self.key.lo
        }
    }

    fn direction_of(&self, src: SocketAddr) -> Direction {
        if src == self.client {
            Direction::ToServer
        } else {
            Direction::ToClient
        }
    }
}

struct Slot<S> {
    /// Bumped whenever the slot is emptied, so that old heap entries go stale.
    gen: u32,
    flow: Option<Flow<S>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    deadline: u64,
    idx: u32,
    gen: u32,
}

/// A fast, non-cryptographic hasher for flow keys (the FxHash word step with
/// a final avalanche so that both the low and high bits are usable). Not
/// keyed: see the module's known limitations.
#[derive(Clone, Copy, Default)]
pub struct KeyHasher(u64);

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0xf135_7aea_2e62_a9c5);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            for (to, from) in w.iter_mut().zip(rest) {
                *to = *from;
            }
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

type KeyMap = HashMap<FlowKey, u32, BuildHasherDefault<KeyHasher>>;

/// The bounded table of TCP flows of one worker, with per-direction
/// reassembly. See the [module documentation](super) for the contract.
pub struct FlowTable<S> {
    limits: FlowLimits,
    /// `limits.max_flows`, clamped to `1..=u32::MAX`.
    max_flows: usize,
    map: KeyMap,
    slots: Slab<S>,
    free: Vec<u32>,
    heap: BinaryHeap<Reverse<Entry>>,
    /// Out-of-order bytes buffered across all flows.
    ooo_total: usize,
    stats: FlowStats,
    /// Where [`FlowTable::flush_some`] goes on.
    flush_cursor: usize,
}

impl<S> FlowTable<S> {
    /// An empty table. Nothing is allocated before the first flow; a
    /// `max_flows` of 0 is treated as 1.
    pub fn new(limits: FlowLimits) -> Self {
        let max_flows = limits.max_flows.clamp(1, u32::MAX as usize);
        FlowTable {
            limits,
            max_flows,
            map: KeyMap::default(),
            slots: Slab::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            ooo_total: 0,
            flush_cursor: 0,
            stats: FlowStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &FlowStats {
        &self.stats
    }

    /// The limits in force.
    pub fn limits(&self) -> &FlowLimits {
        &self.limits
    }

    /// Flows in the table.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table holds no flow.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Out-of-order bytes buffered across all flows, each piece charged its
    /// length plus 64 bytes (bounded by `max_ooo_bytes_total`).
    pub fn ooo_bytes(&self) -> usize {
        self.ooo_total
    }

    /// Entries in the deadline heap, stale ones included.
    #[cfg(test)]
    pub(crate) fn heap_len(&self) -> usize {
        self.heap.len()
    }

    /// Feeds one TCP segment seen at packet time `ts_us`. Chunks that become
    /// deliverable go to `handler` at once; flows evicted to make room are
    /// closed through it too.
    ///
    /// A segment without a flow starts one if it carries a SYN, a FIN or
    /// data; a bare ACK or a RST does not (`segments_no_flow`). A SYN that
    /// does not belong to the flow on its 4-tuple (the flow has ended, or the
    /// SYN has another ISN or reversed roles) closes that flow and starts a
    /// new one (`port_reuse`).
    ///
    /// A RST is honoured only if its sequence number lies within the largest
    /// possible window of its sender's stream (`rst_ignored` otherwise). If,
    /// after a RST, data arrives exactly where its direction stopped, the
    /// receiver evidently ignored the RST (an evasion trick, e.g. a RST with
    /// a bad TCP-MD5 signature): the ended flow is closed and a new one with
    /// the same roles carries on from that segment (`flows_resumed_after_rst`).
    pub fn process<H: FlowHandler<State = S>>(&mut self, seg: &TcpSegment<'_>, ts_us: u64, handler: &mut H) {
        self.stats.segments += 1;
        let flags = seg.flags;
        let key = seg.key();
        let mut found = self.map.get(&key).copied();
        let mut keep_roles = None;
        if let Some(idx) = found {
            if flags.syn() && !flags.rst() {
                if let Some(reason) = self.replaced_by_syn(idx, seg) {
                    self.remove(idx, reason, ts_us, handler);
                    self.stats.port_reuse += 1;
                    found = None;
                }
            } else if let Some(roles) = self.resumed_after_rst(idx, seg) {
                self.remove(idx, Removal::Closed, ts_us, handler);
                self.stats.flows_resumed_after_rst += 1;
                keep_roles = Some(roles);
                found = None;
            }
        }
        let idx = match found {
            Some(idx) => idx,
            None => {
                let starts = !flags.rst() && (flags.syn() || flags.fin() || !seg.payload.is_empty());
                if !starts {
                    self.stats.segments_no_flow += 1;
                    return;
                }
                match self.create(seg, key, keep_roles, ts_us, handler) {
                    Some(idx) => idx,
                    None => {
                        self.stats.segments_no_flow += 1;
                        return;
                    }
                }
            }
        };
        self.apply(idx, seg, ts_us, handler);
    }

    /// Closes flows whose timeout has passed at packet time `now_us`:
    /// buffered bytes are delivered (holes as gaps), each direction gets
    /// [`super::Chunk::End`], then `close`. Call it about once per second
    /// of packet time; the cost is proportional to the flows that expire
    /// or were active since their deadline was queued.
    pub fn expire<H: FlowHandler<State = S>>(&mut self, now_us: u64, handler: &mut H) {
        while let Some(&Reverse(e)) = self.heap.peek() {
            if e.deadline > now_us {
                break;
            }
            self.heap.pop();
            let Some(flow) = live(&mut self.slots, e) else { continue };
            let actual = flow.deadline(&self.limits);
            if actual > now_us {
                flow.queued = actual;
                self.heap.push(Reverse(Entry { deadline: actual, ..e }));
                continue;
            }
            let reason = match flow.phase {
                Phase::Closed { .. } => Removal::Closed,
                Phase::Fresh | Phase::Active => Removal::TimedOut,
            };
            self.remove(e.idx, reason, now_us, handler);
        }
    }

    /// End of input: every flow delivers what it holds (holes as gaps), ends
    /// both directions and is closed (`flows_flushed`). The table is empty after.
    pub fn flush_all<H: FlowHandler<State = S>>(&mut self, now_us: u64, handler: &mut H) {
        while !self.flush_some(now_us, handler, usize::MAX) {}
    }

    /// Ends at most `max` flows as [`FlowTable::flush_all`] does; `true` once
    /// none is left (the table is then empty). Lets the caller take what the
    /// handler produced between steps instead of holding every flow's last
    /// transactions at once.
    pub fn flush_some<H: FlowHandler<State = S>>(&mut self, now_us: u64, handler: &mut H, max: usize) -> bool {
        let mut ended = 0usize;
        while self.flush_cursor < self.slots.len() {
            let idx = self.flush_cursor;
            if self.slots.get(idx).is_some_and(|s| s.flow.is_some()) {
                if ended >= max {
                    return false;
                }
                self.remove(idx as u32, Removal::Flushed, now_us, handler);
                ended += 1;
            }
            self.flush_cursor += 1;
        }
        self.heap.clear();
        self.slots.clear();
        self.free.clear();
        self.flush_cursor = 0;
        true
    }

    /// Whether a SYN on the 4-tuple of flow `idx` starts a new connection,
    /// and if so why the old flow goes.
    fn replaced_by_syn(&self, idx: u32, seg: &TcpSegment<'_>) -> Option<Removal> {
        let flow = self.slots.get(idx as usize)?.flow.as_ref()?;
        if let Phase::Closed { .. } = flow.phase {
            return Some(Removal::Closed);
        }
        // RFC 9293 §3.5: the SYN comes from the client, the SYN+ACK goes to it.
        let client = if seg.flags.ack() { seg.dst } else { seg.src };
        let dir = flow.direction_of(seg.src);
        if client != flow.client || !dir.pick(&flow.streams).syn_consistent(seg.seq) {
            return Some(Removal::Superseded);
        }
        None
    }

    /// Whether `seg` continues a flow closed by a RST exactly where one of
    /// its directions stopped; if so, the flow's client and server.
    fn resumed_after_rst(&self, idx: u32, seg: &TcpSegment<'_>) -> Option<(SocketAddr, SocketAddr)> {
        let flow = self.slots.get(idx as usize)?.flow.as_ref()?;
        if seg.payload.is_empty() || seg.flags.rst() {
            return None;
        }
        let dir = flow.direction_of(seg.src);
        (*dir.pick(&flow.reset_at) == Some(seg.seq)).then(|| (flow.client, flow.server()))
    }

    /// Opens a flow for `seg`, making room first; roles from `keep_roles`,
    /// else from the segment. `None` if no room could be made.
    fn create<H: FlowHandler<State = S>>(
        &mut self,
        seg: &TcpSegment<'_>,
        key: FlowKey,
        keep_roles: Option<(SocketAddr, SocketAddr)>,
        ts_us: u64,
        handler: &mut H,
    ) -> Option<u32> {
        if self.map.len() >= self.max_flows {
            self.make_room(ts_us, handler);
            if self.map.len() >= self.max_flows {
                return None;
            }
        }
        let (client, server, midstream) = match keep_roles {
            Some((client, server)) => (client, server, false),
            None => roles(seg),
        };
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.slots.push(Slot { gen: 0, flow: None });
                (self.slots.len() - 1) as u32
            }
        };
        // `free` holds only indices of existing slots
        let slot = self.slots.get_mut(idx as usize)?;
        let state = handler.open(&key, client, server, midstream || keep_roles.is_some(), ts_us);
        self.stats.flows_created += 1;
        if midstream {
            self.stats.flows_midstream += 1;
        }
        let mut flow = Flow {
            key,
            client,
            streams: [Stream::Unsynced, Stream::Unsynced],
            last_seq: [None, None],
            state,
            phase: Phase::Fresh,
            last_seen: ts_us,
            queued: 0,
            reset_at: [None, None],
        };
        flow.queued = flow.deadline(&self.limits);
        let deadline = flow.queued;
        slot.flow = Some(flow);
        let gen = slot.gen;
        self.map.insert(key, idx);
        self.push(Entry { deadline, idx, gen });
        Some(idx)
    }

    /// Table full: expire what is due, then evict the flows nearest their deadline.
    fn make_room<H: FlowHandler<State = S>>(&mut self, now_us: u64, handler: &mut H) {
        self.expire(now_us, handler);
        while self.map.len() >= self.max_flows {
            let Some(Reverse(e)) = self.heap.pop() else { return };
            let Some(flow) = live(&mut self.slots, e) else { continue };
            let actual = flow.deadline(&self.limits);
            if actual != e.deadline {
                // Active since queued: re-queue at its real deadline and look again.
                flow.queued = actual;
                self.heap.push(Reverse(Entry { deadline: actual, ..e }));
                continue;
            }
            self.remove(e.idx, Removal::Evicted, now_us, handler);
        }
    }

    /// Applies one segment to flow `idx`.
    fn apply<H: FlowHandler<State = S>>(&mut self, idx: u32, seg: &TcpSegment<'_>, ts_us: u64, handler: &mut H) {
        let FlowTable { limits, slots, heap, ooo_total, stats, map, .. } = self;
        let Some(slot) = slots.get_mut(idx as usize) else { return };
        let gen = slot.gen;
        let Some(flow) = slot.flow.as_mut() else { return };
        let flags = seg.flags;
        if let Phase::Closed { .. } = flow.phase {
            // Late retransmissions and ACKs after the end: absorbed.
            if flags.fin() || !seg.payload.is_empty() {
                stats.segments_after_end += 1;
            }
            return;
        }
        flow.last_seen = flow.last_seen.max(ts_us);
        let dir = flow.direction_of(seg.src);
        let mut ctx = Ctx { limits, stats, ooo_total };
        let Flow { streams, state, last_seq, reset_at, .. } = flow;
        if flags.rst() {
            if dir.pick(streams).rst_acceptable(seg.seq) {
                // RFC 9293 §3.10.7.4 (second check): the connection is reset
                // in both directions. Holes become gaps, then End both ways.
                for d in Direction::BOTH {
                    *d.pick_mut(reset_at) =
                        d.pick_mut(streams).finish(&mut ctx, &mut |c| handler.chunk(state, d, c, ts_us));
                }
            } else {
                ctx.stats.rst_ignored += 1;
            }
        } else {
            let opp = dir.opposite();
            let [to_server, to_client] = streams;
            let (this, other) = match dir {
                Direction::ToServer => (to_server, to_client),
                Direction::ToClient => (to_client, to_server),
            };
            if flags.syn() {
                // RFC 9293 §3.5: SYN carries the ISN; the ACK of a SYN+ACK is
                // the other side's ISN+1.
                this.sync_from_syn(seg.seq);
                if flags.ack() {
                    other.sync_from_syn_ack(seg.ack);
                }
            } else if flags.ack() {
                // Chunk::Gap rule 2: trust the ACK only from a direction seen
                // before, at a plausible sequence number.
                let established = dir.pick(last_seq).is_some_and(|prev| seq::near(seg.seq, prev));
                if established {
                    other.on_ack(seg.ack, &mut ctx, &mut |c| handler.chunk(state, opp, c, ts_us));
                }
            }
            this.on_segment(seg.seq, flags.syn(), flags.fin(), seg.payload, &mut ctx, &mut |c| {
                handler.chunk(state, dir, c, ts_us)
            });
        }
        *dir.pick_mut(last_seq) = Some(seg.seq);
        if flow.phase == Phase::Fresh && !seg.payload.is_empty() && !flags.rst() {
            flow.phase = Phase::Active;
        }
        if flow.streams.iter().all(Stream::is_ended) {
            flow.phase = Phase::Closed { since: ts_us };
        }
        let deadline = flow.deadline(limits);
        if deadline < flow.queued {
            flow.queued = deadline;
            heap.push(Reverse(Entry { deadline, idx, gen }));
            maybe_compact(heap, slots, map.len());
        }
    }

    fn push(&mut self, e: Entry) {
        self.heap.push(Reverse(e));
        maybe_compact(&mut self.heap, &self.slots, self.map.len());
    }

    /// Takes flow `idx` out of the table: delivers what it holds, ends both
    /// directions, closes it, counts `reason`.
    fn remove<H: FlowHandler<State = S>>(&mut self, idx: u32, reason: Removal, now_us: u64, handler: &mut H) {
        let Some(slot) = self.slots.get_mut(idx as usize) else { return };
        let Some(mut flow) = slot.flow.take() else { return };
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(idx);
        self.map.remove(&flow.key);
        let mut ctx = Ctx { limits: &self.limits, stats: &mut self.stats, ooo_total: &mut self.ooo_total };
        let Flow { streams, state, .. } = &mut flow;
        for d in Direction::BOTH {
            d.pick_mut(streams).finish(&mut ctx, &mut |c| handler.chunk(state, d, c, now_us));
        }
        handler.close(flow.state, now_us);
        let counter = match reason {
            Removal::Closed => &mut self.stats.flows_closed,
            Removal::TimedOut => &mut self.stats.flows_timed_out,
            Removal::Evicted => &mut self.stats.flows_evicted_limit,
            Removal::Superseded => &mut self.stats.flows_superseded,
            Removal::Flushed => &mut self.stats.flows_flushed,
        };
        *counter += 1;
    }
}

/// The flow a heap entry points to, if the entry is its valid one.
fn live<S>(slots: &mut Slab<S>, e: Entry) -> Option<&mut Flow<S>> {
    let slot = slots.get_mut(e.idx as usize)?;
    if slot.gen != e.gen {
        return None;
    }
    slot.flow.as_mut().filter(|f| f.queued == e.deadline)
}

/// Rebuilds the heap from the live flows when stale entries dominate it.
fn maybe_compact<S>(heap: &mut BinaryHeap<Reverse<Entry>>, slots: &Slab<S>, live_flows: usize) {
    if heap.len() <= live_flows.saturating_mul(2).saturating_add(HEAP_SLACK) {
        return;
    }
    let entries: Vec<Reverse<Entry>> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.flow.as_ref().map(|f| Reverse(Entry { deadline: f.queued, idx: i as u32, gen: s.gen })))
        .collect();
    *heap = BinaryHeap::from(entries);
}

/// Client, server, and whether the roles are a mid-stream guess.
fn roles(seg: &TcpSegment<'_>) -> (SocketAddr, SocketAddr, bool) {
    let f = seg.flags;
    if f.syn() && !f.ack() {
        (seg.src, seg.dst, false)
    } else if f.syn() {
        (seg.dst, seg.src, false)
    } else if guess_server(seg.src, seg.dst) == seg.src {
        (seg.dst, seg.src, true)
    } else {
        (seg.src, seg.dst, true)
    }
}

/// Mid-stream pickup: the side with the lower port if that port is below
/// 1024 or a well-known HTTP port, else the destination of the first segment.
pub(crate) fn guess_server(src: SocketAddr, dst: SocketAddr) -> SocketAddr {
    let lower = match src.port().cmp(&dst.port()) {
        std::cmp::Ordering::Less => src,
        std::cmp::Ordering::Greater => dst,
        std::cmp::Ordering::Equal => return dst,
    };
    if lower.port() < 1024 || WELL_KNOWN_HTTP_PORTS.contains(&lower.port()) {
        lower
    } else {
        dst
    }
}
