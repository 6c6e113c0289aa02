//! One worker's work, as a pure state machine: TCP segments → flow table and
//! reassembly → protocol parsers → transactions → observations and events.
//!
//! The pipeline owns the threads and hands each worker its segments; the
//! engine never sees a thread, a clock or a file.

use std::net::SocketAddr;

use crate::analyze::{self, AnalyzeContext, AnalyzeStats, Depth, Observation};
use crate::config::Config;
use crate::decode::{FlowKey, TcpFlags, TcpSegment};
use crate::export::ocsf;
use crate::flow::{Chunk, Direction, FlowHandler, FlowStats, FlowTable};
use crate::proto::{Connection, HeadFacts, HttpTransaction, ProtoConfig, ProtoStats, Sampling, TxSink};

/// Body shapes computed for the first this many transactions of an endpoint…
const SHAPES_PER_ENDPOINT: u32 = 8;
/// …and then for one in this many.
const SHAPE_SAMPLE_EVERY: u32 = 256;
/// Endpoints remembered for sampling per worker (the table restarts beyond it).
const ENDPOINT_TABLE_LIMIT: usize = 65_536;

/// Observations an output vector is made for at once (a batch of segments
/// completes up to about this many transactions).
const OBSERVATIONS_RESERVE: usize = 128;

/// How often (packet time) idle flows are expired.
const EXPIRE_EVERY_US: u64 = 1_000_000;

/// A decoded TCP segment whose payload lives in a batch buffer.
#[derive(Clone, Copy, Debug)]
pub struct SegmentMeta {
    pub ts_us: u64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// Payload position: in the mapped file when `in_file`, else in the
    /// batch's buffer of copied payloads.
    pub offset: u64,
    pub len: u32,
    pub in_file: bool,
}

impl SegmentMeta {
    /// The segment view over `payload`.
    pub fn segment<'a>(&self, payload: &'a [u8]) -> TcpSegment<'a> {
        TcpSegment { src: self.src, dst: self.dst, seq: self.seq, ack: self.ack, flags: self.flags, window: self.window, payload }
    }
}

/// What an engine produced since its output was last taken.
#[derive(Default)]
pub struct EngineOutput {
    pub observations: Vec<Observation>,
    /// TLS sessions that ended (handshake facts and decryption outcome).
    pub tls: Vec<crate::proto::tls::TlsSession>,
    /// Serialised event lines (JSON + '\n'), when transaction events are on.
    pub events: Vec<u8>,
    pub event_count: u64,
}

impl EngineOutput {
    pub fn is_empty(&self) -> bool {
        self.observations.is_empty() && self.events.is_empty() && self.tls.is_empty()
    }
}

/// The protocol side of the flow table.
struct Handler {
    http: ProtoConfig,
    stats: ProtoStats,
    txs: Vec<HttpTransaction>,
    tls: Vec<crate::proto::tls::TlsSession>,
    sampler: Sampler,
    /// Bytes the parsers of this worker's connections hold (the sum of their
    /// [`Connection::held_bytes`], as last seen), and its limit: this worker's
    /// share of `http.max_parser_bytes_total`.
    held: usize,
    max_held: usize,
}

/// Decides, per endpoint family ([`analyze::sample_family`]), which
/// transactions' bodies the analysis reads: the first `scan_first` of a
/// family and then one in `scan_every` are scanned, the first
/// [`SHAPES_PER_ENDPOINT`] and then one in [`SHAPE_SAMPLE_EVERY`] give
/// shapes. Asked by the parsers when a request head is complete, so that
/// the other bodies are counted, not copied.
struct Sampler {
    templates: crate::config::TemplatesConfig,
    /// Transactions seen per endpoint family (under a keyed hash of the family; bounded).
    per_family: std::collections::HashMap<u64, u32, crate::analyze::fingerprint::PreHashed>,
    /// Seeds the family hash.
    family_seed: u64,
    scan_first: u32,
    scan_every: u32,
    /// The last host value seen (and server: a value without a host part
    /// stands for the server's address) and its part of the family hash.
    last_host: Option<(Vec<u8>, SocketAddr, analyze::FamilyHost)>,
}

impl Sampler {
    fn host(&mut self, head: &HeadFacts<'_>) -> analyze::FamilyHost {
        let Some(raw) = head.host.filter(|h| h.len() <= analyze::HOST_MEMO_BYTES) else {
            return analyze::FamilyHost::of(self.family_seed, head.host, head.server);
        };
        match &mut self.last_host {
            Some((last, server, key)) if last.as_slice() == raw && *server == head.server => *key,
            Some((last, server, key)) => {
                *key = analyze::FamilyHost::of(self.family_seed, Some(raw), head.server);
                *server = head.server;
                last.clear();
                last.extend_from_slice(raw);
                *key
            }
            None => {
                let key = analyze::FamilyHost::of(self.family_seed, Some(raw), head.server);
                self.last_host = Some((raw.to_vec(), head.server, key));
                key
            }
        }
    }

    fn decide(&mut self, head: &HeadFacts<'_>) -> Sampling {
        let host = self.host(head);
        let Some((key, template)) = analyze::sample_family(&self.templates, host, head) else {
            return Sampling::NONE;
        };
        if self.per_family.len() >= ENDPOINT_TABLE_LIMIT {
            self.per_family.clear();
        }
        let n = self.per_family.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        Sampling {
            // the first few, then one in SHAPE_SAMPLE_EVERY (shapes may vary)
            shapes: *n <= SHAPES_PER_ENDPOINT || *n % SHAPE_SAMPLE_EVERY == 0,
            body_scan: *n <= self.scan_first || *n % self.scan_every.max(1) == 0,
            template,
        }
    }

    /// The sampling of a transaction whose parser did not ask at its head.
    fn decide_late(&mut self, tx: &HttpTransaction) -> Sampling {
        self.decide(&HeadFacts { method: tx.method.as_bytes(), target: tx.target.as_bytes(), host: tx.host.as_deref().map(str::as_bytes), server: tx.server })
    }
}

/// The parsers' sink: the handler's transactions and its sampler.
struct Sink<'a> {
    txs: &'a mut Vec<HttpTransaction>,
    sampler: &'a mut Sampler,
}

impl TxSink for Sink<'_> {
    fn txs(&mut self) -> &mut Vec<HttpTransaction> {
        self.txs
    }

    fn sampling(&mut self, head: &HeadFacts<'_>) -> Sampling {
        self.sampler.decide(head)
    }
}

impl FlowHandler for Handler {
    type State = Connection;

    fn open(&mut self, _key: &FlowKey, client: SocketAddr, server: SocketAddr, midstream: bool, _ts_us: u64) -> Connection {
        Connection::new(client, server, midstream, &mut self.stats)
    }

    fn chunk(&mut self, state: &mut Connection, dir: Direction, chunk: Chunk<'_>, ts_us: u64) {
        let mut sink = Sink { txs: &mut self.txs, sampler: &mut self.sampler };
        state.on_chunk(dir, chunk, ts_us, &self.http, &mut self.stats, &mut sink);
        let (before, mut after) = (state.counted, state.held_bytes());
        self.held = self.held.saturating_sub(before).saturating_add(after);
        if after > before && self.held > self.max_held {
            // the connection that grew past the budget frees what it holds
            // (reported now): no connection's memory grows the total further
            // than one chunk's worth
            if let Some(s) = state.shed(ts_us, &self.http, &mut self.stats, &mut sink) {
                self.tls.push(s);
            }
            let freed = state.held_bytes();
            self.held = self.held.saturating_sub(after).saturating_add(freed);
            after = freed;
        }
        state.counted = after;
        let held = u64::try_from(self.held).unwrap_or(u64::MAX);
        self.stats.parser_bytes_held = held;
        if held > self.stats.parser_bytes_peak {
            self.stats.parser_bytes_peak = held;
        }
    }

    fn close(&mut self, mut state: Connection, ts_us: u64) {
        self.held = self.held.saturating_sub(state.counted);
        self.stats.parser_bytes_held = u64::try_from(self.held).unwrap_or(u64::MAX);
        let mut sink = Sink { txs: &mut self.txs, sampler: &mut self.sampler };
        state.on_close(ts_us, &self.http, &mut self.stats, &mut sink);
        if let Some(s) = state.take_tls_session() {
            self.tls.push(s);
        }
    }
}

/// One worker's state.
pub struct Engine {
    table: FlowTable<Connection>,
    handler: Handler,
    transactions: bool,
    format: crate::config::EventFormat,
    analyze: AnalyzeContext,
    analyze_stats: AnalyzeStats,
    now_us: u64,
    next_expire_us: u64,
    out: EngineOutput,
}

impl Engine {
    /// An engine; `transactions` turns per-transaction events on; `fingerprint_key`
    /// is the store's key for fingerprints of secrets.
    pub fn new(cfg: &Config, transactions: bool, fingerprint_key: [u8; analyze::fingerprint::KEY_LEN]) -> Engine {
        Engine {
            analyze: analyze_context(cfg, fingerprint_key),
            analyze_stats: AnalyzeStats::default(),
            table: FlowTable::new(cfg.flow_limits()),
            handler: Handler {
                http: ProtoConfig { http: cfg.http.clone(), http2: cfg.http2.clone(), keylog: None },
                stats: ProtoStats::default(),
                txs: Vec::new(),
                tls: Vec::new(),
                sampler: Sampler {
                    templates: cfg.templates.clone(),
                    per_family: std::collections::HashMap::default(),
                    family_seed: std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), 0x6661_6d69_6c79u64),
                    scan_first: cfg.sensitive.body_scan_first,
                    scan_every: cfg.sensitive.body_scan_every,
                    last_host: None,
                },
                held: 0,
                max_held: cfg.http.max_parser_bytes_total,
            },
            transactions,
            format: cfg.output.format,
            now_us: 0,
            next_expire_us: 0,
            out: EngineOutput::default(),
        }
    }

    /// Decrypts TLS sessions whose secrets `keylog` holds (replaces the previous key log).
    pub fn set_keylog(&mut self, keylog: Option<std::sync::Arc<crate::proto::tls::KeyLog>>) {
        self.handler.http.keylog = keylog;
    }

    /// Processes one segment.
    pub fn segment(&mut self, seg: &TcpSegment<'_>, ts_us: u64) {
        if ts_us > self.now_us {
            self.now_us = ts_us;
        }
        self.table.process(seg, ts_us, &mut self.handler);
        if self.now_us >= self.next_expire_us {
            if self.next_expire_us != 0 {
                self.table.expire(self.now_us, &mut self.handler);
            }
            self.next_expire_us = self.now_us.saturating_add(EXPIRE_EVERY_US);
        }
        if !self.handler.txs.is_empty() || !self.handler.tls.is_empty() {
            self.drain();
        }
    }

    /// End of input: flush every flow.
    pub fn finish(&mut self) {
        while !self.finish_some(usize::MAX) {}
    }

    /// End of input, a step at a time: flushes at most `max` flows and
    /// analyses their transactions; `true` once every flow is flushed. The
    /// caller takes the output between steps (memory stays bounded by the
    /// step, not by the number of open flows).
    pub fn finish_some(&mut self, max: usize) -> bool {
        let done = self.table.flush_some(self.now_us, &mut self.handler, max);
        self.drain();
        done
    }

    fn drain(&mut self) {
        self.out.tls.append(&mut self.handler.tls);
        // one allocation for the batch's observations, not a growing vector
        // (a batch's segments complete many transactions, a few at a time);
        // a vector that has room (a recycled one) is not grown ahead of need
        let want = if self.out.observations.capacity() == 0 { self.handler.txs.len().max(OBSERVATIONS_RESERVE) } else { self.handler.txs.len() };
        self.out.observations.reserve(want);
        let sampler = &mut self.handler.sampler;
        // read in place (a transaction is several hundred bytes), dropped together after
        for tx in &self.handler.txs {
            let late: Depth;
            let depth = match &tx.sampling {
                Some(d) => d,
                None => {
                    late = sampler.decide_late(tx);
                    &late
                }
            };
            let obs = analyze::observe(tx, &self.analyze, &mut self.analyze_stats, depth);
            if self.transactions {
                let ev = crate::export::in_format(ocsf::http_activity(tx, obs.as_ref()), self.format);
                if serde_json::to_writer(&mut self.out.events, &ev).is_ok() {
                    self.out.events.push(b'\n');
                    self.out.event_count += 1;
                }
            }
            if let Some(o) = obs {
                self.out.observations.push(o);
            }
        }
        self.handler.txs.clear();
    }

    /// Takes what was produced so far.
    pub fn take_output(&mut self) -> EngineOutput {
        std::mem::take(&mut self.out)
    }

    /// Gives back an observation vector taken earlier: its observations are
    /// dropped here (on the thread that made them), and the next output is
    /// collected in it instead of a fresh allocation.
    pub fn recycle_observations(&mut self, mut v: Vec<Observation>) {
        if self.out.observations.capacity() == 0 {
            v.clear();
            self.out.observations = v;
        }
    }

    pub fn flow_stats(&self) -> &FlowStats {
        self.table.stats()
    }

    /// Connections tracked now.
    pub fn flows_active(&self) -> usize {
        self.table.len()
    }

    pub fn proto_stats(&self) -> &ProtoStats {
        &self.handler.stats
    }

    pub fn analyze_stats(&self) -> &AnalyzeStats {
        &self.analyze_stats
    }
}

/// The analysis context a configuration describes (validated configurations
/// always compile; a bad network list falls back to the default classes).
pub fn analyze_context(cfg: &Config, fingerprint_key: [u8; analyze::fingerprint::KEY_LEN]) -> AnalyzeContext {
    AnalyzeContext {
        templates: cfg.templates.clone(),
        exposure: analyze::context::Exposure::new(&cfg.exposure).unwrap_or_default(),
        tags: cfg.tags.clone(),
        auth: cfg.auth.clone(),
        scan: analyze::sensitive::ScanLimits {
            max_decompressed_bytes: cfg.sensitive.max_decompressed_bytes,
            max_scan_bytes: cfg.sensitive.max_scan_bytes,
            max_findings: cfg.sensitive.max_findings,
            max_json_depth: cfg.sensitive.max_json_depth,
        },
        fingerprints: analyze::fingerprint::Fingerprinter::new(fingerprint_key),
    }
}
