//! Threads and queues: the reader decodes and shards segments by connection
//! (the symmetric flow hash; connections opened in view placed by load, see
//! [`route`]) into per-worker batches over bounded crossbeam channels;
//! workers run an [`Engine`] each; one aggregator merges the inventory into
//! the store and writes events.
//!
//! Queue policies: in replay every queue blocks when full (nothing is lost);
//! in live capture the reader drops a batch it cannot queue and counts it
//! (`reader_batches_dropped`), so the capture ring never stalls. Emptied
//! batches travel back to the reader on a free list, so steady-state packet
//! handling allocates nothing.
//!
//! Payloads of a mapped capture file (replay) are not copied: a batch holds
//! a handle on the file and the payloads' offsets in it, and the workers read
//! them in place. The reader lets go of the file's pages only before the
//! oldest batch a worker has not finished ([`Pipeline::held_from`]).
//! Payloads from elsewhere (live capture, pipes, reassembled IP fragments)
//! are copied into the batch.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::analyze::Observation;
use crate::capture::{FrameSink, MappedFile};
use crate::config::{Balance, Config};
use crate::decode::{DecodeStats, Decoded, Decoder, LinkType};
use crate::engine::{Engine, EngineOutput, SegmentMeta};
use crate::export::{ExportError, JsonLinesSink};
use crate::inventory::templates::LearnConfig;
use crate::inventory::findings::{Detector, Endpoint};
use crate::inventory::Inventory;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

mod route;
use route::Router;

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error("cannot start a pipeline thread: {0}")]
    Spawn(std::io::Error),
    #[error("a pipeline thread stopped unexpectedly; this is a bug, please report it with the capture if possible")]
    ThreadPanicked,
}

/// What the reader does when a worker queue is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullPolicy {
    /// Wait (replay: lose nothing).
    Block,
    /// Drop the batch and count it (live capture).
    Drop,
}

/// Pipeline settings beyond the configuration file.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    pub workers: usize,
    /// The store's key for fingerprints of secrets.
    pub fingerprint_key: [u8; crate::analyze::fingerprint::KEY_LEN],
    pub transactions: bool,
    pub policy: FullPolicy,
    /// Live counters (capture); `None` in replay.
    pub metrics: Option<Arc<Metrics>>,
    /// API specifications (shadow and zombie findings); empty = none.
    pub spec: crate::inventory::spec::Spec,
    /// Baseline to report drift against while running.
    pub baseline: Option<crate::inventory::baseline::Baseline>,
    /// TLS secrets to decrypt sessions with.
    pub keylog: Option<Arc<crate::proto::tls::KeyLog>>,
}

/// A batch of segments for one worker: metadata, the payloads that were
/// copied, and the mapped file the others lie in.
struct Batch {
    metas: Vec<SegmentMeta>,
    /// Copied payloads (`SegmentMeta::in_file` unset).
    data: Vec<u8>,
    /// The file the payloads with `SegmentMeta::in_file` lie in.
    file: Option<Arc<MappedFile>>,
}

/// A mapped file's identity: its address, only ever compared.
fn file_id(f: &Arc<MappedFile>) -> usize {
    Arc::as_ptr(f) as usize
}

impl Batch {
    /// The offset of the batch's first payload read in place, when the batch
    /// reads the file `current` ([`file_id`]): payloads come in file order,
    /// so no other lies before it.
    fn held_in(&self, current: usize) -> Option<u64> {
        if self.file.as_ref().map(file_id) != Some(current) {
            return None;
        }
        self.metas.iter().find(|m| m.in_file).map(|m| m.offset)
    }
}

/// Flows ended per step when the input ends (see `worker_loop`).
const FINISH_STEP_FLOWS: usize = 1024;

/// Observation vectors the aggregator is done with, waiting to go back to
/// the worker that filled them, per worker: the worker drops the
/// observations (the memory is that thread's, so it is freed without
/// cross-thread hand-offs) and fills the vector again (it keeps the capacity
/// of the largest output it held). Beyond these, the aggregator drops them.
const SPARE_VECTORS_PER_WORKER: usize = 4;

/// Bytes of copied payload after which a batch is sent even if not full.
const BATCH_MAX_BYTES: usize = 512 * 1024;

enum AggMsg {
    /// A worker's output, and the worker's index (its observations go back to it).
    Output(usize, EngineOutput),
    /// Reopen output files (log rotation); with a target, switch the event
    /// output to it ("" = stop writing events).
    Reopen(Option<String>),
    Done { flow: Value, proto: Value },
}

/// Counters of the pipeline itself.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PipelineStats {
    pub packets: u64,
    pub bytes: u64,
    pub segments: u64,
    pub batches: u64,
    pub reader_batches_dropped: u64,
    pub reader_segments_dropped: u64,
    /// Batches the reader had to allocate because no used one had come back
    /// yet (start-up and workers falling behind; each up to 512 KiB).
    pub reader_batches_allocated: u64,
    /// Segments whose payload the workers read in place in a mapped capture
    /// file (the others were copied into their batch).
    pub segments_in_place: u64,
    /// Connections placed on the least-loaded worker at their SYN
    /// (`pipeline.balance = "load"`; the others went by the symmetric hash).
    pub connections_placed: u64,
    /// Openings that found the placement table's bucket full and went by the
    /// hash (the table holds about `flow.max_flows` connections).
    pub placement_table_full: u64,
    /// Bytes of the frames whose segments went to each worker.
    pub worker_bytes: Vec<u64>,
}

/// Totals of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RunTotals {
    pub pipeline: PipelineStats,
    pub decode: DecodeStats,
    pub flow: Value,
    pub proto: Value,
    pub observations: u64,
    pub endpoints_updated: u64,
    pub events_written: u64,
    /// Events that could not be written (the output failed; the inventory went on).
    pub events_failed: u64,
    /// The first output error, for the user.
    pub events_error: Option<String>,
    /// Events written to the outbox for the SIEM sinks.
    pub outbox_appended: u64,
    /// Events not spooled because the outbox was full (capture).
    pub outbox_dropped: u64,
    /// Inventory events (endpoint discovered or changed) emitted.
    pub inventory_events: u64,
    pub store_flushes: u64,
    pub template_rules_learned: u64,
    pub endpoints_retemplated: u64,
    /// Findings first seen in this run, and resolved ones that fired again.
    pub findings_new: u64,
    pub findings_reopened: u64,
    /// Open findings per kind after this run's deltas (new or updated in this run).
    pub findings_by_kind: std::collections::BTreeMap<String, u64>,
    pub detectors: crate::inventory::findings::DetectorStats,
    /// TLS sessions seen, and those decrypted with the key log.
    pub tls_sessions: u64,
    pub tls_decrypted: u64,
    pub tls_without_keys: u64,
    pub tls_failed: u64,
}

struct AggReport {
    flow: Value,
    proto: Value,
    observations: u64,
    endpoints_updated: u64,
    events_written: u64,
    events_failed: u64,
    /// Counts of sinks replaced by a reload.
    events_written_before: u64,
    events_failed_before: u64,
    events_error: Option<String>,
    outbox_appended: u64,
    outbox_dropped: u64,
    inventory_events: u64,
    store_flushes: u64,
    rules_learned: u64,
    endpoints_retemplated: u64,
    findings_new: u64,
    findings_reopened: u64,
    findings_by_kind: std::collections::BTreeMap<String, u64>,
    detectors: crate::inventory::findings::DetectorStats,
    tls_sessions: u64,
    tls_decrypted: u64,
    tls_without_keys: u64,
    tls_failed: u64,
}

/// Sink counters into the report and metrics. Totals of sinks replaced by a
/// reload are kept in `events_*_before`.
fn sink_counts(report: &mut AggReport, s: &JsonLinesSink, metrics: Option<&Metrics>) {
    report.events_written = report.events_written_before + s.written();
    report.events_failed = report.events_failed_before + s.lost();
    if let Some(m) = metrics {
        m.events_written.store(report.events_written, Relaxed);
        m.events_failed.store(report.events_failed, Relaxed);
    }
}

/// Seconds between repeated log lines about a failing event output.
const OUTPUT_ERROR_LOG_SECS: u64 = 60;

/// Event output failures never stop the inventory: they are counted, the
/// first is kept for the summary, and the log says so at most once a minute.
struct OutputErrors {
    last_log: Option<Instant>,
}

impl OutputErrors {
    fn failed(&mut self, report: &mut AggReport, e: &ExportError) {
        if report.events_error.is_none() {
            report.events_error = Some(e.to_string());
        }
        if self.last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(OUTPUT_ERROR_LOG_SECS)) {
            eprintln!("apitap: {e}; events are being lost; the inventory keeps being stored");
            self.last_log = Some(Instant::now());
        }
    }
}

/// Adds the numbers of `b` into `a`, field by field (stats structs of workers).
pub fn add_json(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(am), Value::Object(bm)) => {
            for (k, bv) in bm {
                match am.get_mut(k) {
                    Some(av) => add_json(av, bv),
                    None => {
                        am.insert(k.clone(), bv.clone());
                    }
                }
            }
        }
        (a @ Value::Number(_), Value::Number(bn)) => {
            let sum = a.as_u64().unwrap_or(0).saturating_add(bn.as_u64().unwrap_or(0));
            *a = Value::from(sum);
        }
        (a @ Value::Null, b) => *a = b.clone(),
        _ => {}
    }
}

/// A running pipeline.
pub struct Pipeline {
    decoder: Decoder,
    senders: Vec<Sender<Batch>>,
    filling: Vec<Batch>,
    free: Receiver<Batch>,
    batch_packets: usize,
    policy: FullPolicy,
    workers: Vec<JoinHandle<()>>,
    aggregator: Option<JoinHandle<Result<AggReport, PipelineError>>>,
    /// Control messages to the aggregator; dropped by `finish`.
    control: Option<Sender<AggMsg>>,
    metrics: Option<Arc<Metrics>>,
    stats: PipelineStats,
    keylog: Arc<KeylogShare>,
    /// Batches each worker has finished (it counts them up).
    finished: Arc<[AtomicU64]>,
    /// Batches queued to each worker so far.
    queued: Vec<u64>,
    /// Per worker, the queued batches that read the current mapped file in
    /// place: their number in the worker's queue order and their first
    /// payload's offset (for [`Pipeline::held_from`]).
    in_place: Vec<VecDeque<(u64, u64)>>,
    /// The mapped file frames came from last (its address: identity only).
    current_file: usize,
    /// Which worker owns each connection.
    router: Router,
}

/// The key log the workers decrypt with, replaceable while they run (a
/// re-read of an append-only key-log file): workers look at `generation`
/// once per batch and take the new one when it moved.
#[derive(Default)]
struct KeylogShare {
    generation: std::sync::atomic::AtomicU64,
    current: std::sync::Mutex<Option<Arc<crate::proto::tls::KeyLog>>>,
}

fn new_batch(cap: usize) -> Batch {
    // the payload buffer grows when payloads are copied (live capture):
    // batches that read a mapped file in place never touch one
    Batch { metas: Vec::with_capacity(cap), data: Vec::new(), file: None }
}

impl Pipeline {
    /// Starts workers and the aggregator. The store and sink move to the aggregator.
    pub fn start(cfg: &Config, opts: &PipelineOptions, store: Arc<Store>, sink: Option<JsonLinesSink>) -> Result<Pipeline, PipelineError> {
        let n = opts.workers.max(1);
        let (agg_tx, agg_rx) = bounded::<AggMsg>(n * 16);
        let (free_tx, free_rx) = bounded::<Batch>(n * (cfg.pipeline.queue_batches + 2));
        // observation vectors the aggregator is done with, back to the worker that filled them
        let mut spare_txs = Vec::with_capacity(n);
        let mut senders = Vec::with_capacity(n);
        let mut workers = Vec::with_capacity(n);
        let keylog = Arc::new(KeylogShare::default());
        let finished: Arc<[AtomicU64]> = (0..n).map(|_| AtomicU64::new(0)).collect();
        if let Ok(mut k) = keylog.current.lock() {
            k.clone_from(&opts.keylog);
        }
        // flow.max_flows and flow.max_ooo_bytes_total are sensor-wide: each
        // worker owns its share of the flows (hash and placement both spread
        // connections about evenly in number)
        let mut per_worker = cfg.clone();
        per_worker.flow.max_flows = cfg.flow.max_flows.div_ceil(n).max(16);
        per_worker.flow.max_ooo_bytes_total = cfg.flow.max_ooo_bytes_total.div_ceil(n);
        per_worker.http.max_parser_bytes_total = cfg.http.max_parser_bytes_total.div_ceil(n);
        for i in 0..n {
            let (tx, rx) = bounded::<Batch>(cfg.pipeline.queue_batches);
            senders.push(tx);
            let mut engine = Engine::new(&per_worker, opts.transactions, opts.fingerprint_key);
            engine.set_keylog(opts.keylog.clone());
            let agg = agg_tx.clone();
            let free = free_tx.clone();
            let m = opts.metrics.clone();
            let share = Arc::clone(&keylog);
            let done = Arc::clone(&finished);
            let (spare_tx, spare) = bounded::<Vec<Observation>>(SPARE_VECTORS_PER_WORKER);
            spare_txs.push(spare_tx);
            let h = std::thread::Builder::new()
                .name(format!("apitap-worker-{i}"))
                .spawn(move || worker_loop(i, &mut engine, &rx, &agg, &free, m.as_deref().and_then(|m| m.workers.get(i)), &share, &spare, done.get(i)))
                .map_err(PipelineError::Spawn)?;
            workers.push(h);
        }
        let control = Some(agg_tx);
        let agg_metrics = opts.metrics.clone();
        let flush_every = Duration::from_secs(cfg.store.flush_interval_secs.max(1));
        let max_dirty = cfg.store.flush_max_dirty.max(1);
        let learn = cfg.templates.learn.clone();
        let output = cfg.output.clone();
        let detector = Detector::new(&cfg.findings, opts.spec.clone(), opts.baseline.clone());
        let outbox = if cfg.sinks.is_empty() {
            None
        } else {
            Some(OutboxPolicy {
                sinks: cfg.sinks.iter().map(|s| s.name.clone()).collect(),
                max_events: cfg.outbox.max_events.max(1),
                wait: opts.policy == FullPolicy::Block,
            })
        };
        let aggregator = std::thread::Builder::new()
            .name("apitap-aggregator".into())
            .spawn(move || aggregate(&agg_rx, learn, detector, &store, sink, flush_every, max_dirty, agg_metrics.as_deref(), outbox, &output, &spare_txs))
            .map_err(PipelineError::Spawn)?;
        Ok(Pipeline {
            decoder: Decoder::new(cfg.decode_limits()),
            senders,
            filling: (0..n).map(|_| new_batch(cfg.pipeline.batch_packets)).collect(),
            free: free_rx,
            batch_packets: cfg.pipeline.batch_packets,
            policy: opts.policy,
            workers,
            aggregator: Some(aggregator),
            control,
            metrics: opts.metrics.clone(),
            stats: PipelineStats { worker_bytes: vec![0; n], ..PipelineStats::default() },
            keylog,
            finished,
            queued: vec![0; n],
            in_place: (0..n).map(|_| VecDeque::new()).collect(),
            current_file: 0,
            router: Router::new(n, cfg.flow.max_flows, cfg.flow.idle_timeout_secs, cfg.pipeline.balance == Balance::Hash),
        })
    }

    /// Replaces the key log the workers decrypt new TLS sessions with.
    pub fn set_keylog(&self, keylog: Arc<crate::proto::tls::KeyLog>) {
        if let Ok(mut k) = self.keylog.current.lock() {
            *k = Some(keylog);
        }
        self.keylog.generation.fetch_add(1, Relaxed);
    }

    /// Decodes one frame and queues its TCP segment for the worker that owns the flow.
    pub fn packet(&mut self, link: LinkType, ts_us: u64, frame: &[u8]) {
        self.frame_in(link, ts_us, frame, None);
    }

    /// [`Pipeline::packet`] for a frame that may lie in a mapped file: its
    /// payload is then read in place by the worker, not copied.
    fn frame_in(&mut self, link: LinkType, ts_us: u64, frame: &[u8], file: Option<&Arc<MappedFile>>) {
        self.stats.packets += 1;
        self.stats.bytes += frame.len() as u64;
        let seg = match self.decoder.decode(link, ts_us, frame) {
            Decoded::Tcp(seg) => seg,
            _ => return,
        };
        self.stats.segments += 1;
        let w = self.router.route(seg.key().symmetric_hash(), seg.flags, ts_us, frame.len());
        if let Some(b) = self.stats.worker_bytes.get_mut(w) {
            *b += frame.len() as u64;
        }
        let mut meta = SegmentMeta {
            ts_us,
            src: seg.src,
            dst: seg.dst,
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            window: seg.window,
            offset: 0,
            len: u32::try_from(seg.payload.len()).unwrap_or(0),
            in_file: false,
        };
        match file.and_then(|f| f.offset_of(seg.payload).map(|at| (f, at))) {
            Some((f, at)) => {
                let id = file_id(f);
                if id != self.current_file {
                    // batches of an earlier file no longer hold this one's pages
                    self.current_file = id;
                    self.in_place.iter_mut().for_each(VecDeque::clear);
                }
                if self.filling.get(w).and_then(|b| b.file.as_ref()).is_some_and(|bf| !Arc::ptr_eq(bf, f)) {
                    self.send(w);
                }
                let Some(batch) = self.filling.get_mut(w) else { return };
                if batch.file.is_none() {
                    batch.file = Some(Arc::clone(f));
                }
                self.stats.segments_in_place += 1;
                meta.offset = at;
                meta.in_file = true;
                batch.metas.push(meta);
            }
            None => {
                let Some(batch) = self.filling.get_mut(w) else { return };
                meta.offset = batch.data.len() as u64;
                batch.data.extend_from_slice(seg.payload);
                batch.metas.push(meta);
            }
        }
        let Some(batch) = self.filling.get(w) else { return };
        if batch.metas.len() >= self.batch_packets || batch.data.len() >= BATCH_MAX_BYTES {
            self.send(w);
        }
    }

    fn send(&mut self, w: usize) {
        let Some(slot) = self.filling.get_mut(w) else { return };
        if slot.metas.is_empty() {
            return;
        }
        // the replacement is taken after the hand-over: a worker that was
        // behind has returned a batch by then, so batches are reused, not
        // allocated while the reader waits and dropped by the worker later
        let batch = std::mem::replace(slot, Batch { metas: Vec::new(), data: Vec::new(), file: None });
        let first_in_file = batch.held_in(self.current_file);
        let placement = self.router.stats();
        self.stats.connections_placed = placement.placed;
        self.stats.placement_table_full = placement.table_full;
        if let Some(tx) = self.senders.get(w) {
            self.stats.batches += 1;
            let queued = match self.policy {
                // a closed channel means the worker is gone; finish() reports why
                FullPolicy::Block => tx.send(batch).is_ok(),
                FullPolicy::Drop => match tx.try_send(batch) {
                    Ok(()) => true,
                    Err(TrySendError::Full(b)) | Err(TrySendError::Disconnected(b)) => {
                        self.stats.reader_batches_dropped += 1;
                        self.stats.reader_segments_dropped += b.metas.len() as u64;
                        if let Some(m) = self.metrics.as_deref().and_then(|m| m.workers.get(w)) {
                            m.queue_batches_dropped.fetch_add(1, Relaxed);
                        }
                        false
                    }
                },
            };
            if queued {
                if let (Some(n), Some(held)) = (self.queued.get_mut(w), self.in_place.get_mut(w)) {
                    *n += 1;
                    if let Some(at) = first_in_file {
                        held.push_back((*n, at));
                    }
                }
            }
        }
        let replacement = match self.free.try_recv() {
            Ok(mut b) => {
                b.metas.clear();
                b.data.clear();
                b.file = None;
                b
            }
            Err(_) => {
                self.stats.reader_batches_allocated += 1;
                new_batch(self.batch_packets)
            }
        };
        if let Some(slot) = self.filling.get_mut(w) {
            *slot = replacement;
        }
    }

    /// The lowest offset of the current mapped file that a queued or
    /// filling batch still reads in place (`u64::MAX`: none).
    pub fn held_from(&mut self) -> u64 {
        let mut from = u64::MAX;
        for (w, held) in self.in_place.iter_mut().enumerate() {
            let done = self.finished.get(w).map_or(0, |f| f.load(Acquire));
            while held.front().is_some_and(|&(n, _)| n <= done) {
                held.pop_front();
            }
            if let Some(&(_, at)) = held.front() {
                from = from.min(at);
            }
        }
        for at in self.filling.iter().filter_map(|b| b.held_in(self.current_file)) {
            from = from.min(at);
        }
        from
    }

    /// Hands every partly filled batch to its worker (live capture calls this
    /// on a timer so that quiet links are not held back).
    pub fn flush_partial(&mut self) {
        for w in 0..self.filling.len() {
            if self.filling.get(w).is_some_and(|b| !b.metas.is_empty()) {
                self.send(w);
            }
        }
    }

    /// Asks the aggregator to reopen output files (log rotation), or to
    /// switch the event output to `events` (a path, "-", or "" for none).
    pub fn reopen_outputs(&self, events: Option<String>) {
        if let Some(c) = &self.control {
            let _ = c.send(AggMsg::Reopen(events));
        }
    }

    /// Counters so far (reader side).
    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// Decoder counters so far.
    pub fn decode_stats(&self) -> &DecodeStats {
        self.decoder.stats()
    }

    /// Sends what is pending, stops the workers, waits for the aggregator to
    /// write everything, and returns the totals.
    pub fn finish(mut self) -> Result<RunTotals, PipelineError> {
        for w in 0..self.senders.len() {
            self.send(w);
        }
        self.senders.clear();
        self.control = None;
        let mut panicked = false;
        for h in self.workers.drain(..) {
            panicked |= h.join().is_err();
        }
        let agg = self.aggregator.take().ok_or(PipelineError::ThreadPanicked)?;
        let report = agg.join().map_err(|_| PipelineError::ThreadPanicked)??;
        if panicked {
            return Err(PipelineError::ThreadPanicked);
        }
        Ok(RunTotals {
            pipeline: self.stats.clone(),
            decode: self.decoder.stats().clone(),
            flow: report.flow,
            proto: report.proto,
            observations: report.observations,
            endpoints_updated: report.endpoints_updated,
            events_written: report.events_written,
            events_failed: report.events_failed,
            events_error: report.events_error,
            outbox_appended: report.outbox_appended,
            outbox_dropped: report.outbox_dropped,
            inventory_events: report.inventory_events,
            store_flushes: report.store_flushes,
            template_rules_learned: report.rules_learned,
            endpoints_retemplated: report.endpoints_retemplated,
            findings_new: report.findings_new,
            findings_reopened: report.findings_reopened,
            findings_by_kind: report.findings_by_kind,
            detectors: report.detectors,
            tls_sessions: report.tls_sessions,
            tls_decrypted: report.tls_decrypted,
            tls_without_keys: report.tls_without_keys,
            tls_failed: report.tls_failed,
        })
    }
}

/// How many segments ahead a worker asks for the first cache lines of a
/// payload (a message head starts there; it was last touched on the reader's
/// core, if at all), so that parsing it does not start with a wait for memory.
const PAYLOAD_PREFETCH_SEGMENTS: usize = 4;
/// Bytes of a payload asked for ahead (a message head: HTTP/1 finds its end
/// by reading every line of it).
const PAYLOAD_PREFETCH_BYTES: usize = 512;

#[allow(clippy::too_many_arguments)]
fn worker_loop(
    index: usize,
    engine: &mut Engine,
    rx: &Receiver<Batch>,
    agg: &Sender<AggMsg>,
    free: &Sender<Batch>,
    metrics: Option<&crate::metrics::WorkerMetrics>,
    keylog: &KeylogShare,
    spare: &Receiver<Vec<Observation>>,
    finished: Option<&AtomicU64>,
) {
    let mut keylog_seen = 0u64;
    for mut batch in rx.iter() {
        let generation = keylog.generation.load(Relaxed);
        if generation != keylog_seen {
            keylog_seen = generation;
            if let Ok(k) = keylog.current.lock() {
                engine.set_keylog(k.clone());
            }
        }
        let file = batch.file.as_deref().map_or(&[][..], MappedFile::bytes);
        for (i, m) in batch.metas.iter().enumerate() {
            // the batch was written on the reader's core: its entries, then
            // the payloads they point at, are asked for ahead of their turn
            if let Some(later) = batch.metas.get(i + 2 * PAYLOAD_PREFETCH_SEGMENTS) {
                crate::capture::file::prefetch_value(later);
            }
            if let Some(next) = batch.metas.get(i + PAYLOAD_PREFETCH_SEGMENTS) {
                let from = if next.in_file { file } else { &batch.data };
                let at = usize::try_from(next.offset).unwrap_or(usize::MAX);
                let len = (next.len as usize).min(PAYLOAD_PREFETCH_BYTES);
                for line in (0..len).step_by(64) {
                    crate::capture::file::prefetch(from, at.saturating_add(line));
                }
            }
            let start = usize::try_from(m.offset).unwrap_or(usize::MAX);
            let end = start.saturating_add(m.len as usize);
            let from = if m.in_file { file } else { &batch.data };
            engine.segment(&m.segment(from.get(start..end).unwrap_or_default()), m.ts_us);
        }
        // the reader may let go of the file's pages this batch read
        if let Some(f) = finished {
            f.fetch_add(1, Release);
        }
        batch.file = None;
        let _ = free.try_send(batch);
        if let Some(wm) = metrics {
            let f = engine.flow_stats();
            wm.flows_active.store(engine.flows_active() as u64, Relaxed);
            wm.flows_created.store(f.flows_created, Relaxed);
            wm.flows_evicted_limit.store(f.flows_evicted_limit, Relaxed);
            wm.flows_timed_out.store(f.flows_timed_out, Relaxed);
            wm.tcp_gaps.store(f.gaps, Relaxed);
            let p = engine.proto_stats();
            wm.parser_bytes.store(p.parser_bytes_held, Relaxed);
            wm.parser_shed.store(p.parser_bytes_limit_hit, Relaxed);
        }
        let out = engine.take_output();
        if !out.is_empty() {
            if agg.send(AggMsg::Output(index, out)).is_err() {
                return; // the aggregator stopped (it reports why)
            }
            while let Ok(v) = spare.try_recv() {
                engine.recycle_observations(v);
            }
        }
    }
    // a key log re-read after the last batch still counts for the sessions flushed now
    if keylog.generation.load(Relaxed) != keylog_seen {
        if let Ok(k) = keylog.current.lock() {
            engine.set_keylog(k.clone());
        }
    }
    // flows still open end in steps, each step's output handed on before the
    // next: a million open flows never become a million transactions held at once
    loop {
        let done = engine.finish_some(FINISH_STEP_FLOWS);
        let out = engine.take_output();
        if !out.is_empty() && agg.send(AggMsg::Output(index, out)).is_err() {
            break;
        }
        if done {
            break;
        }
    }
    let flow = serde_json::to_value(engine.flow_stats()).unwrap_or(Value::Null);
    let mut proto = serde_json::to_value(engine.proto_stats()).unwrap_or(Value::Null);
    if let (Some(p), Ok(a)) = (proto.as_object_mut(), serde_json::to_value(engine.analyze_stats())) {
        p.insert("analyze".into(), a);
    }
    let _ = agg.send(AggMsg::Done { flow, proto });
}

impl FrameSink for Pipeline {
    fn frame(&mut self, link: LinkType, ts_us: u64, frame: &[u8], file: Option<&Arc<MappedFile>>) {
        self.frame_in(link, ts_us, frame, file);
    }

    fn held_from(&mut self) -> u64 {
        Pipeline::held_from(self)
    }
}

#[allow(clippy::too_many_arguments)]
fn aggregate(
    rx: &Receiver<AggMsg>,
    learn: LearnConfig,
    mut det: Detector,
    store: &Store,
    sink: Option<JsonLinesSink>,
    flush_every: Duration,
    max_dirty: usize,
    metrics: Option<&Metrics>,
    outbox: Option<OutboxPolicy>,
    output: &crate::config::OutputConfig,
    spare: &[Sender<Vec<Observation>>],
) -> Result<AggReport, PipelineError> {
    let mut inv = Inventory::with_learning(learn);
    let mut tls_dirty: std::collections::HashMap<String, crate::inventory::tls::TlsServiceRecord> = std::collections::HashMap::new();
    let known: Vec<(String, String)> = store.endpoints()?.into_iter().map(|r| (r.host, r.path)).collect();
    inv.restore(store.rules()?, &known);
    let mut report = AggReport {
        flow: Value::Null,
        proto: Value::Null,
        observations: 0,
        endpoints_updated: 0,
        events_written: 0,
        events_failed: 0,
        events_written_before: 0,
        events_failed_before: 0,
        events_error: None,
        outbox_appended: 0,
        outbox_dropped: 0,
        inventory_events: 0,
        store_flushes: 0,
        rules_learned: 0,
        endpoints_retemplated: 0,
        findings_new: 0,
        findings_reopened: 0,
        findings_by_kind: std::collections::BTreeMap::new(),
        detectors: Default::default(),
        tls_sessions: 0,
        tls_decrypted: 0,
        tls_without_keys: 0,
        tls_failed: 0,
    };
    let mut last_flush = Instant::now();
    let mut em = Emitter {
        inventory_events: output.inventory_events && (sink.is_some() || outbox.is_some()),
        call_summaries: output.call_summaries && (sink.is_some() || outbox.is_some()),
        format: output.format,
        sink,
        outbox,
        errors: OutputErrors { last_log: None },
        outbox_full_logged: false,
    };
    let flush = |inv: &mut Inventory,
                 det: &mut Detector,
                 tls_dirty: &mut std::collections::HashMap<String, crate::inventory::tls::TlsServiceRecord>,
                 report: &mut AggReport,
                 em: &mut Emitter|
     -> Result<(), PipelineError> {
        let tls: Vec<crate::inventory::tls::TlsServiceRecord> = tls_dirty.drain().map(|(_, r)| r).collect();
        store.merge_tls(&tls)?;
        let rules = inv.take_new_rules();
        if !rules.is_empty() {
            report.endpoints_retemplated += store.apply_rules(&rules, |h, p| inv.template(h, p))?;
            report.rules_learned += rules.len() as u64;
        }
        let dirty = inv.take_dirty();
        report.endpoints_updated += dirty.len() as u64;
        let started = Instant::now();
        let written = store.merge_endpoints_tracked(&dirty);
        if let Some(m) = metrics {
            m.store_writes.fetch_add(1, Relaxed);
            m.store_write_micros.fetch_add(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX), Relaxed);
            if written.is_err() {
                m.store_write_errors.fetch_add(1, Relaxed);
            }
        }
        let merged = written?;
        for (delta, (_, before)) in dirty.iter().zip(&merged) {
            if let Some(b) = before {
                det.returned_after_silence(&delta.host, &delta.method, &delta.path, b.last_seen_us, delta.first_seen_us, delta.client_ips.iter().next().copied());
            }
        }
        // findings: pending deltas follow rules learned since they were made
        // (deltas that now share a template become one)
        let mut coalesced: std::collections::BTreeMap<String, crate::inventory::findings::Finding> = std::collections::BTreeMap::new();
        for mut f in det.take() {
            if f.method != "*" && f.method != "TLS" {
                let t = inv.template(&f.host, &f.path);
                if t != f.path {
                    f.path = t;
                    f.uid = crate::inventory::findings::finding_uid(f.kind, &f.host, &f.method, &f.path, f.actor);
                }
            }
            match coalesced.get_mut(&f.uid) {
                Some(e) => e.merge(&f),
                None => {
                    coalesced.insert(f.uid.clone(), f);
                }
            }
        }
        let deltas: Vec<crate::inventory::findings::Finding> = coalesced.into_values().collect();
        let findings = store.merge_findings(&deltas)?;
        let mut finding_lines = Vec::new();
        let mut finding_count = 0u64;
        for (now, before) in &findings {
            let reopened = before.as_ref().is_some_and(|b| !b.is_open()) && now.is_open();
            if before.is_none() {
                report.findings_new += 1;
            }
            if reopened {
                report.findings_reopened += 1;
            }
            if before.is_none() || reopened {
                *report.findings_by_kind.entry(now.kind.as_str().to_string()).or_default() += 1;
                if let Some(m) = metrics {
                    m.findings_new.fetch_add(1, Relaxed);
                }
                if em.sink.is_some() || em.outbox.is_some() {
                    push_line(&mut finding_lines, &crate::export::in_format(crate::export::ocsf::finding_event(now, reopened), em.format));
                    finding_count += 1;
                }
            }
        }
        if finding_count > 0 {
            em.emit(store, report, metrics, &finding_lines, finding_count)?;
        }
        if em.inventory_events || em.call_summaries {
            let mut lines = Vec::new();
            let mut count = 0u64;
            for (delta, (now, before)) in dirty.iter().zip(&merged) {
                let gained = before.as_ref().map(|b| crate::inventory::gained(b, now)).unwrap_or_default();
                if em.inventory_events && (before.is_none() || !gained.is_empty()) {
                    push_line(&mut lines, &crate::export::in_format(crate::export::ocsf::inventory_event(now, &gained, before.is_none()), em.format));
                    count += 1;
                    report.inventory_events += 1;
                }
                if em.call_summaries && delta.requests > 0 {
                    push_line(&mut lines, &crate::export::in_format(crate::export::ocsf::call_summary(delta), em.format));
                    count += 1;
                }
            }
            em.emit(store, report, metrics, &lines, count)?;
        }
        em.flush(report, metrics);
        report.store_flushes += 1;
        Ok(())
    };
    loop {
        match rx.recv_timeout(flush_every) {
            Ok(AggMsg::Output(worker, out)) => {
                report.observations += out.observations.len() as u64;
                for o in &out.observations {
                    let (path, key) = inv.observe(o);
                    det.observe(o, &Endpoint { host: &o.key.host, method: &o.key.method, path }, key);
                    if let Some(m) = metrics {
                        m.transaction(o.protocol);
                    }
                }
                for t in &out.tls {
                    det.observe_tls(t);
                    if let Some(mut rec) = crate::inventory::tls::TlsServiceRecord::for_session(t) {
                        let e = tls_dirty.entry(rec.key()).or_insert_with(|| {
                            rec.sessions = 0;
                            rec
                        });
                        e.observe(t);
                    }
                }
                if let Some(m) = metrics {
                    use crate::proto::tls::Decryption as D;
                    for t in &out.tls {
                        let c = match t.decryption {
                            D::Decrypted => &m.tls_decrypted,
                            D::NoKeys => &m.tls_without_keys,
                            D::Failed(_) => &m.tls_failed,
                            D::NotAttempted => &m.tls_not_attempted,
                        };
                        c.fetch_add(1, Relaxed);
                    }
                }
                report.tls_sessions += out.tls.len() as u64;
                report.tls_without_keys += out.tls.iter().filter(|t| t.decryption == crate::proto::tls::Decryption::NoKeys).count() as u64;
                report.tls_failed += out.tls.iter().filter(|t| matches!(t.decryption, crate::proto::tls::Decryption::Failed(_))).count() as u64;
                report.tls_decrypted += out.tls.iter().filter(|t| t.decryption == crate::proto::tls::Decryption::Decrypted).count() as u64;
                em.emit(store, &mut report, metrics, &out.events, out.event_count)?;
                // the vector goes back to its worker, which drops the observations and fills it again
                if let Some(back) = spare.get(worker) {
                    let _ = back.try_send(out.observations);
                }
            }
            Ok(AggMsg::Reopen(None)) => {
                if let Some(s) = em.sink.as_mut() {
                    if let Err(e) = s.reopen() {
                        em.errors.failed(&mut report, &e);
                    }
                }
            }
            Ok(AggMsg::Reopen(Some(target))) => {
                if let Some(s) = em.sink.as_mut() {
                    if let Err(e) = s.flush() {
                        em.errors.failed(&mut report, &e);
                    }
                    sink_counts(&mut report, s, metrics);
                }
                // a target that cannot be opened keeps the old one (and says why)
                let next = if target.is_empty() { Ok(None) } else { JsonLinesSink::open(&target).map(Some) };
                match next {
                    Ok(next) => {
                        report.events_written_before = report.events_written;
                        report.events_failed_before = report.events_failed;
                        em.sink = next;
                    }
                    Err(e) => eprintln!("apitap: reload: {e}; events keep going to the previous output"),
                }
            }
            Ok(AggMsg::Done { flow, proto }) => {
                add_json(&mut report.flow, &flow);
                add_json(&mut report.proto, &proto);
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        }
        if inv.dirty_len() >= max_dirty || last_flush.elapsed() >= flush_every {
            flush(&mut inv, &mut det, &mut tls_dirty, &mut report, &mut em)?;
            last_flush = Instant::now();
        }
    }
    flush(&mut inv, &mut det, &mut tls_dirty, &mut report, &mut em)?;
    report.detectors = det.stats().clone();
    store.flush()?;
    Ok(report)
}

/// Appends one serialised event and its newline.
fn push_line(out: &mut Vec<u8>, v: &Value) {
    if serde_json::to_writer(&mut *out, v).is_ok() {
        out.push(b'\n');
    }
}

/// Where the aggregator's events go: the JSON-lines sink and the outbox.
struct Emitter {
    sink: Option<JsonLinesSink>,
    outbox: Option<OutboxPolicy>,
    errors: OutputErrors,
    outbox_full_logged: bool,
    inventory_events: bool,
    call_summaries: bool,
    format: crate::config::EventFormat,
}

impl Emitter {
    /// Writes `count` serialised events to the sink and spools them in the outbox.
    fn emit(&mut self, store: &Store, report: &mut AggReport, metrics: Option<&Metrics>, lines: &[u8], count: u64) -> Result<(), PipelineError> {
        if lines.is_empty() {
            return Ok(());
        }
        if let Some(s) = self.sink.as_mut() {
            if let Err(e) = s.write_raw(lines, count) {
                self.errors.failed(report, &e);
            }
            sink_counts(report, s, metrics);
        }
        if let Some(ob) = &self.outbox {
            let mut spooled = store.outbox_last().saturating_sub(ob.delivered(store));
            while ob.wait && spooled + count > ob.max_events {
                if !self.outbox_full_logged {
                    eprintln!("apitap: the outbox holds {spooled} events (outbox.max_events): waiting for the sinks");
                    self.outbox_full_logged = true;
                }
                std::thread::sleep(Duration::from_millis(20));
                spooled = store.outbox_last().saturating_sub(ob.delivered(store));
            }
            if spooled + count > ob.max_events {
                report.outbox_dropped += count;
                if let Some(m) = metrics {
                    m.outbox_dropped.fetch_add(count, Relaxed);
                }
            } else {
                store.outbox_append(lines)?;
                report.outbox_appended += count;
                if let Some(m) = metrics {
                    m.outbox_appended.fetch_add(count, Relaxed);
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self, report: &mut AggReport, metrics: Option<&Metrics>) {
        if let Some(s) = self.sink.as_mut() {
            if let Err(e) = s.flush() {
                self.errors.failed(report, &e);
            }
            sink_counts(report, s, metrics);
        }
    }
}

/// How the aggregator feeds the outbox.
struct OutboxPolicy {
    sinks: Vec<String>,
    max_events: u64,
    /// Replay waits for the sinks when the outbox is full; capture drops the newest.
    wait: bool,
}

impl OutboxPolicy {
    /// Sequence number every sink has delivered.
    fn delivered(&self, store: &Store) -> u64 {
        self.sinks.iter().map(|n| store.outbox_cursor(n).unwrap_or(0)).min().unwrap_or(0)
    }
}
