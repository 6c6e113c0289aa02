//! Which worker owns each TCP connection.
//!
//! A mirror port's bytes come in few heavy connections (pooled keep-alive
//! and HTTP/2 connections), and those open in bursts: a client pool, a load
//! balancer's upstream connections. Sharding by the symmetric hash alone
//! spreads connections evenly in number but not in bytes — one worker gets
//! five of a burst of eight, and the other waits for it. So a connection
//! whose opening SYN the reader sees is *placed* on the worker with the
//! least recent work, counting the new connection itself as
//! [`NEW_CONNECTION_COST`] bytes (a burst of openings alternates), and
//! remembered in a bounded table; every later segment of it, in either
//! direction, goes to the same worker. A segment of a connection the table
//! does not hold (picked up mid-stream, or opened while its table bucket was
//! full) goes by the symmetric hash, as before, and so always to one worker.
//!
//! The table forgets a connection only after `flow.idle_timeout_secs` of
//! packet time without a segment; the worker has closed its flow by then,
//! so a connection never moves between workers while one holds its state.
//! (One case can split it: a retransmitted SYN of a connection that found
//! its bucket full, arriving after a slot in the bucket expired.)

use crate::decode::TcpFlags;

/// Work counted for a new connection when placing it, in bytes: so that
/// connections opened together, before any of their bytes flow, alternate
/// between workers instead of all going to the one that was idle a moment
/// ago.
pub const NEW_CONNECTION_COST: u64 = 1 << 20;

/// Packet time after which the recent work of each worker counts half.
const HALF_LIFE_US: u64 = 1_000_000;

/// Connections per table bucket.
const WAYS: usize = 4;

/// Most slots in the table whatever `flow.max_flows` says (64 MiB of
/// address space, touched only as connections arrive).
const MAX_SLOTS: usize = 1 << 22;

/// Words per slot in the table: the connection's symmetric hash (`0`:
/// free; a hash of 0 is kept as 1), then its worker in the low half and the
/// packet time of its last segment, in seconds, in the high half.
const SLOT_WORDS: usize = 2;

/// Words per bucket (a cache line's worth).
const BUCKET_WORDS: usize = WAYS * SLOT_WORDS;

/// Counters of the placement.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RouteStats {
    /// Connections placed on the least-loaded worker at their SYN.
    pub placed: u64,
    /// SYNs whose table bucket was full of live connections: the connection
    /// went by the symmetric hash (limit: `flow.max_flows` slots, at most
    /// [`MAX_SLOTS`]).
    pub table_full: u64,
}

/// How segments are given to workers (`pipeline.balance`).
pub struct Router {
    workers: usize,
    /// Buckets of [`WAYS`] slots of [`SLOT_WORDS`] words: plain words, so
    /// that the table is zeroed memory whose pages are touched only as
    /// connections arrive.
    table: Vec<u64>,
    /// Recent work per worker: wire bytes, halved every [`HALF_LIFE_US`].
    load: Vec<u64>,
    decayed_at_us: u64,
    idle_s: u32,
    stats: RouteStats,
}

impl Router {
    /// A router over `workers` workers remembering up to about `max_flows`
    /// placed connections (rounded up to a power of two, at most
    /// [`MAX_SLOTS`]), each forgotten
    /// after `idle_timeout_secs` of packet time without a segment.
    pub fn new(workers: usize, max_flows: usize, idle_timeout_secs: u64, hash_only: bool) -> Router {
        let workers = workers.max(1);
        let slots = if hash_only || workers == 1 { 0 } else { max_flows.clamp(WAYS, MAX_SLOTS).next_power_of_two() };
        Router {
            workers,
            table: vec![0; slots * SLOT_WORDS],
            load: vec![0; workers],
            decayed_at_us: 0,
            idle_s: u32::try_from(idle_timeout_secs).unwrap_or(u32::MAX),
            stats: RouteStats::default(),
        }
    }

    pub fn stats(&self) -> RouteStats {
        self.stats
    }

    /// The worker for a segment of the connection with symmetric hash
    /// `hash`, at packet time `ts_us`, of `wire_len` bytes on the wire.
    #[inline]
    pub fn route(&mut self, hash: u64, flags: TcpFlags, ts_us: u64, wire_len: usize) -> usize {
        let by_hash = usize::try_from(hash % self.workers as u64).unwrap_or(0);
        if self.table.is_empty() {
            return by_hash;
        }
        self.decay(ts_us);
        let now_s = u32::try_from(ts_us / 1_000_000).unwrap_or(u32::MAX);
        let key = hash.max(1);
        // the bucket from the hash's high bits (the low ones pick by_hash)
        let buckets = self.table.len() / BUCKET_WORDS;
        let at = (usize::try_from(hash >> 32).unwrap_or(0) & (buckets - 1)) * BUCKET_WORDS;
        let w = match self.table.get_mut(at..at + BUCKET_WORDS) {
            None => by_hash,
            Some(bucket) => {
                let mut slots = bucket.chunks_exact_mut(SLOT_WORDS);
                if let Some(s) = slots.find(|s| s.first() == Some(&key)) {
                    let worker = s.get(1).map_or(0, |v| *v as u32);
                    if let Some(v) = s.get_mut(1) {
                        *v = slot_value(now_s, worker);
                    }
                    worker as usize
                } else if flags.has(TcpFlags::SYN) && !flags.has(TcpFlags::ACK) {
                    let idle = self.idle_s;
                    let free = bucket.chunks_exact_mut(SLOT_WORDS).find(|s| match s {
                        [hash, value] => *hash == 0 || now_s.saturating_sub((*value >> 32) as u32) > idle,
                        _ => false,
                    });
                    match free {
                        Some([hash, value]) => {
                            let w = least_loaded(&self.load);
                            *hash = key;
                            *value = slot_value(now_s, u32::try_from(w).unwrap_or(0));
                            self.stats.placed += 1;
                            if let Some(l) = self.load.get_mut(w) {
                                *l = l.saturating_add(NEW_CONNECTION_COST);
                            }
                            w
                        }
                        _ => {
                            self.stats.table_full += 1;
                            by_hash
                        }
                    }
                } else {
                    by_hash
                }
            }
        };
        if let Some(l) = self.load.get_mut(w) {
            *l = l.saturating_add(wire_len as u64);
        }
        w
    }

    /// Halves the recent work once per elapsed half-life of packet time.
    #[inline]
    fn decay(&mut self, ts_us: u64) {
        if ts_us < self.decayed_at_us {
            // time went back (a new file, reordered input): start again from here
            self.decayed_at_us = ts_us;
            return;
        }
        let halvings = (ts_us - self.decayed_at_us) / HALF_LIFE_US;
        if halvings > 0 {
            let shift = u32::try_from(halvings.min(63)).unwrap_or(63);
            self.load.iter_mut().for_each(|l| *l >>= shift);
            self.decayed_at_us = ts_us;
        }
    }
}

/// A slot's second word: last-seen second and worker.
#[inline]
fn slot_value(seen_s: u32, worker: u32) -> u64 {
    u64::from(seen_s) << 32 | u64::from(worker)
}

/// The worker with the least recent work (the first of equals).
fn least_loaded(load: &[u64]) -> usize {
    let mut best = 0;
    let mut min = u64::MAX;
    for (i, &l) in load.iter().enumerate() {
        if l < min {
            min = l;
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::FlowKey;
    use std::net::SocketAddr;

    const SYN: TcpFlags = TcpFlags(TcpFlags::SYN);
    const SYN_ACK: TcpFlags = TcpFlags(TcpFlags::SYN | TcpFlags::ACK);
    const ACK: TcpFlags = TcpFlags(TcpFlags::ACK);

    fn conn(i: u16) -> u64 {
        let c: SocketAddr = format!("198.18.0.1:{}", 10_000 + i).parse().unwrap();
        let s: SocketAddr = "198.18.0.2:80".parse().unwrap();
        FlowKey::new(c, s).symmetric_hash()
    }

    #[test]
    fn a_burst_of_openings_is_spread_evenly() {
        // pick connections whose hashes all land on worker 0
        let same: Vec<u64> = (0..2000).map(conn).filter(|h| h % 2 == 0).take(8).collect();
        assert_eq!(same.len(), 8);
        let mut r = Router::new(2, 1024, 120, false);
        let mut per = [0; 2];
        for &h in &same {
            per[r.route(h, SYN, 1_000_000, 74)] += 1;
        }
        assert_eq!(per, [4, 4], "the hash alone would put all eight on worker 0");
        assert_eq!(r.stats().placed, 8);
    }

    #[test]
    fn a_placed_connection_stays_on_its_worker_both_ways() {
        let mut r = Router::new(2, 1024, 120, false);
        // load worker 0 so the next opening goes to worker 1 whatever its hash
        let busy = conn(1);
        let w0 = r.route(busy, SYN, 0, 74);
        for t in 0..100 {
            r.route(busy, ACK, t * 1000, 1514);
        }
        let h = (2..2000).map(conn).find(|h| (h % 2) as usize == w0).unwrap();
        let w = r.route(h, SYN, 200_000, 74);
        assert_ne!(w, w0, "placed away from the busy worker, against its hash");
        assert_eq!(r.route(h, SYN_ACK, 200_100, 74), w);
        for t in 0..50 {
            assert_eq!(r.route(h, ACK, 300_000 + t * 1000, 1514), w);
        }
        // a retransmitted SYN keeps the worker
        assert_eq!(r.route(h, SYN, 400_000, 74), w);
    }

    #[test]
    fn connections_picked_up_mid_stream_go_by_the_hash() {
        let mut r = Router::new(3, 1024, 120, false);
        for i in 0..200 {
            let h = conn(i);
            assert_eq!(r.route(h, ACK, 5_000_000, 1514), (h % 3) as usize);
            assert_eq!(r.route(h, SYN_ACK, 5_000_000, 74), (h % 3) as usize, "a SYN-ACK does not place");
        }
        assert_eq!(r.stats().placed, 0);
    }

    #[test]
    fn a_full_bucket_sends_new_connections_by_the_hash_and_counts_them() {
        // a table of one bucket
        let mut r = Router::new(2, WAYS, 120, false);
        let hs: Vec<u64> = (0..WAYS as u16 + 3).map(conn).collect();
        for &h in &hs {
            r.route(h, SYN, 1_000_000, 74);
        }
        assert_eq!(r.stats().placed, WAYS as u64);
        assert_eq!(r.stats().table_full, 3);
        for &h in &hs[WAYS..] {
            assert_eq!(r.route(h, ACK, 2_000_000, 1514), (h % 2) as usize);
        }
        // after the idle timeout a slot is free again for a new opening
        let late = conn(500);
        r.route(late, SYN, 1_000_000 + 121 * 1_000_000, 74);
        assert_eq!(r.stats().placed, WAYS as u64 + 1);
    }

    #[test]
    fn a_huge_flow_limit_gives_a_bounded_table() {
        let r = Router::new(2, usize::MAX, 120, false);
        assert_eq!(r.table.len(), MAX_SLOTS * SLOT_WORDS);
    }

    #[test]
    fn one_worker_or_hash_balance_keeps_no_table() {
        for r in [Router::new(1, 1024, 120, false), Router::new(4, 1024, 120, true)] {
            assert!(r.table.is_empty());
        }
        let mut r = Router::new(4, 1024, 120, true);
        for i in 0..100 {
            let h = conn(i);
            assert_eq!(r.route(h, SYN, 0, 74), (h % 4) as usize);
        }
    }

    #[test]
    fn recent_work_decays_with_packet_time() {
        let mut r = Router::new(2, 1024, 120, false);
        let a = conn(1);
        let wa = r.route(a, SYN, 0, 74);
        r.route(a, ACK, 0, 8 << 20);
        // long after, the old work has decayed: the next opening may go to
        // either worker, and the one after it goes to the other
        let b = conn(2);
        let c = conn(3);
        let wb = r.route(b, SYN, 60_000_000, 74);
        let wc = r.route(c, SYN, 60_000_000, 74);
        assert_ne!(wb, wc);
        // shortly after a's burst, a new opening avoids a's worker
        let mut r = Router::new(2, 1024, 120, false);
        let wa2 = r.route(a, SYN, 0, 74);
        assert_eq!(wa, wa2);
        r.route(a, ACK, 0, 8 << 20);
        assert_ne!(r.route(b, SYN, 500_000, 74), wa2);
    }

    #[test]
    fn no_connection_changes_worker_while_it_is_active() {
        // about 20,000 connections over a table of 1,024 slots (buckets fill
        // and slots expire), opened and carried on in an interleaved order,
        // each active far more often than the idle timeout: every segment of
        // one goes to one worker
        let mut r = Router::new(3, 1024, 120, false);
        let mut owner = std::collections::HashMap::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut open: Vec<u64> = Vec::new();
        let mut t = 0u64;
        for i in 0..200_000u64 {
            t += 1_000; // 1,000 segments a second: 200 s, so closed ones expire
            if open.len() < 2_000 || next() % 10 == 0 {
                let c: SocketAddr = format!("10.{}.{}.{}:{}", i % 200, (i / 200) % 250, (i / 50_000) % 250, 1024 + i % 60_000).parse().unwrap();
                let h = FlowKey::new(c, "198.18.0.2:443".parse().unwrap()).symmetric_hash();
                let w = r.route(h, SYN, t, 74);
                assert!(owner.insert(h, w).is_none_or(|old| old == w), "a connection moved");
                open.push(h);
            } else {
                let k = usize::try_from(next() % open.len() as u64).unwrap();
                let h = open[k];
                let w = r.route(h, if next() % 2 == 0 { ACK } else { SYN_ACK }, t, 1514);
                assert_eq!(owner[&h], w, "a segment went to another worker than its connection's");
            }
            if open.len() > 4_000 {
                // a connection ends; its slot frees 120 s later
                open.swap_remove(usize::try_from(next() % open.len() as u64).unwrap());
            }
        }
        let st = r.stats();
        assert!(st.placed > 500 && st.table_full > 1000, "both paths taken: {st:?}");
    }
}
