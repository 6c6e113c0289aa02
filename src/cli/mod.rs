//! Command line: `replay`, `capture`, `dump` and the other commands,
//! wiring, progress and exit codes. The posture commands (`findings`,
//! `baseline`, `drift`, `report`) are in [`posture`].

mod posture;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::capture::{self, FileReport};
use crate::config::Config;
use crate::export::JsonLinesSink;
use crate::inventory::EndpointRecord;
use crate::pipeline::{FullPolicy, Pipeline, PipelineOptions, RunTotals};
use crate::store::{Access, Store};

/// Exit status when the run completed but some input could not be (fully) read.
pub const EXIT_INPUT_PROBLEMS: i32 = 3;

#[derive(Parser, Debug)]
#[command(name = "apitap", version, about = "Passive API discovery and API-posture sensor", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Replay pcap/pcapng files (or directories of them) into the inventory.
    Replay(ReplayArgs),
    /// Capture live on an interface (a mirror port) until SIGTERM or SIGINT.
    Capture(CaptureArgs),
    /// Print the endpoint inventory of a store.
    Dump(DumpArgs),
    /// Write the inventory as an OpenAPI 3.1 document.
    Openapi(OpenapiArgs),
    /// The durable outbox of SIEM events.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// List findings (attacks, posture, shadow/zombie APIs, drift).
    Findings(posture::FindingsArgs),
    /// Baselines: approved snapshots of the inventory.
    Baseline {
        #[command(subcommand)]
        command: posture::BaselineCommand,
    },
    /// Differences between the inventory and a saved baseline.
    Drift(posture::DriftArgs),
    /// Posture KPIs, per-endpoint risk and documented-but-unused operations.
    Report(posture::ReportArgs),
}

#[derive(Subcommand, Debug)]
pub enum OutboxCommand {
    /// Events spooled and each sink's position (works beside a running sensor).
    Status {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Store directory (overrides store.path).
        #[arg(long, value_name = "DIR")]
        store: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Parser, Debug)]
pub struct OpenapiArgs {
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store directory (overrides store.path).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Only this host's endpoints (default: every host, each path listing its servers).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// Options shared by `replay` and `capture`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Configuration file (defaults are built in; see sensor.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store directory (overrides store.path).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Write JSON-lines events to this file, or "-" for standard output.
    #[arg(long, value_name = "PATH|-")]
    pub events: Option<String>,
    /// Emit one OCSF HTTP Activity event per request/response pair.
    #[arg(long)]
    pub transactions: bool,
    /// Worker threads (default: pipeline.workers, 0 = one per core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Write the run summary as JSON to this file (for capture: when it stops).
    #[arg(long, value_name = "PATH")]
    pub stats_json: Option<PathBuf>,
    /// OpenAPI document (JSON or YAML) of the documented API; repeat for several
    /// (added to findings.specs).
    #[arg(long, value_name = "FILE")]
    pub spec: Vec<PathBuf>,
    /// Report drift against this saved baseline while running (overrides findings.baseline).
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Decrypt TLS sessions whose secrets this NSS key log holds (overrides tls.keylog).
    #[arg(long, value_name = "FILE")]
    pub tls_keylog: Option<PathBuf>,
}

impl RunArgs {
    /// Applies the options over `cfg`; returns the worker count.
    fn apply(&self, cfg: &mut Config) -> Result<usize> {
        if let Some(s) = &self.store {
            cfg.store.path = s.clone();
        }
        if let Some(e) = &self.events {
            cfg.output.events = e.clone();
        }
        if self.transactions {
            cfg.output.transactions = true;
        }
        cfg.findings.specs.extend(self.spec.iter().cloned());
        if let Some(b) = &self.baseline {
            cfg.findings.baseline = b.clone();
        }
        if let Some(k) = &self.tls_keylog {
            cfg.tls.keylog = k.clone();
        }
        worker_count(cfg, self.workers)
    }
}

#[derive(Parser, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Never show the progress line, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Capture files or directories (every file in a directory, in name order).
    #[arg(required = true, value_name = "PCAP_OR_DIR")]
    pub inputs: Vec<PathBuf>,
}

#[derive(Parser, Debug)]
pub struct CaptureArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Interface to capture on (overrides capture.interface).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,
    /// BPF filter (overrides capture.filter), e.g. "tcp port 80 or tcp port 8080".
    #[arg(short = 'f', long = "filter", value_name = "BPF")]
    pub filter: Option<String>,
    /// Prometheus endpoint address (overrides metrics.listen), e.g. 127.0.0.1:9750.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Switch to this user once the interface is open (overrides capture.user).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DumpFormat {
    Table,
    Json,
}

#[derive(Parser, Debug)]
pub struct DumpArgs {
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store directory (overrides store.path).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: DumpFormat,
    /// The TLS service inventory instead of the API endpoints.
    #[arg(long)]
    pub tls: bool,
}

fn load_config(path: Option<&Path>) -> Result<Config> {
    match path {
        Some(p) => Ok(Config::load(p)?),
        None => Ok(Config::default()),
    }
}

/// Runs the command; returns the process exit status.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Replay(a) => replay(a),
        Command::Capture(a) => capture(a),
        Command::Dump(a) => dump(a),
        Command::Openapi(a) => openapi(a),
        Command::Outbox { command: OutboxCommand::Status { config, store, json } } => outbox_status(config, store, json),
        Command::Findings(a) => posture::findings(a),
        Command::Baseline { command } => posture::baseline(command),
        Command::Drift(a) => posture::drift(a),
        Command::Report(a) => posture::report(a),
    }
}

/// Re-reads an append-only key log (written by clients while apitap
/// captures): only the complete lines added since the last read.
struct KeylogWatcher {
    path: PathBuf,
    offset: u64,
    keylog: crate::proto::tls::KeyLog,
    stats: crate::proto::tls::KeyLogStats,
    last_check: Instant,
    error_logged: bool,
}

impl KeylogWatcher {
    fn new(cfg: &Config) -> Option<KeylogWatcher> {
        let path = cfg.tls.keylog.clone();
        if path.as_os_str().is_empty() {
            return None;
        }
        let mut w = KeylogWatcher {
            path,
            offset: 0,
            keylog: Default::default(),
            stats: Default::default(),
            last_check: Instant::now(),
            error_logged: false,
        };
        let _ = w.read_new();
        Some(w)
    }

    /// Reads what was appended; `Ok(true)` when new lines were added.
    fn read_new(&mut self) -> std::io::Result<bool> {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = std::fs::File::open(&self.path)?;
        let len = f.metadata()?.len();
        if len < self.offset {
            // truncated or replaced: read it all again
            self.offset = 0;
        }
        if len == self.offset {
            return Ok(false);
        }
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.take(len - self.offset).read_to_end(&mut buf)?;
        // complete lines only; a partly written last line is read next time
        let Some(end) = buf.iter().rposition(|b| *b == b'\n') else { return Ok(false) };
        let text = String::from_utf8_lossy(buf.get(..=end).unwrap_or_default()).into_owned();
        self.offset += end as u64 + 1;
        self.keylog.add(&text, &mut self.stats);
        Ok(true)
    }

    /// Checks the file twice a second; the new key log when it grew.
    fn poll(&mut self) -> Option<std::sync::Arc<crate::proto::tls::KeyLog>> {
        if self.last_check.elapsed() < std::time::Duration::from_millis(500) {
            return None;
        }
        self.last_check = Instant::now();
        match self.read_new() {
            Ok(true) => Some(std::sync::Arc::new(self.keylog.clone())),
            Ok(false) => None,
            Err(e) => {
                if !self.error_logged {
                    eprintln!("apitap: cannot re-read the TLS key log {}: {e}; the secrets read so far stay in use", self.path.display());
                    self.error_logged = true;
                }
                None
            }
        }
    }
}

/// The configured TLS key log, read and parsed.
fn load_keylog(cfg: &Config) -> Result<Option<std::sync::Arc<crate::proto::tls::KeyLog>>> {
    let p = &cfg.tls.keylog;
    if p.as_os_str().is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(p).with_context(|| format!("cannot read the TLS key log {}; check --tls-keylog / tls.keylog", p.display()))?;
    let (kl, st) = crate::proto::tls::KeyLog::parse(&text);
    eprintln!(
        "apitap: TLS key log {}: secrets of {} sessions ({} lines, {} malformed, {} unused labels)",
        p.display(),
        st.sessions,
        st.lines,
        st.malformed,
        st.unused
    );
    if kl.is_empty() {
        eprintln!("apitap: note: the key log holds no usable secret; TLS sessions are inventoried, not decrypted");
    }
    Ok(Some(std::sync::Arc::new(kl)))
}

/// RFC 3339 UTC time of a µs timestamp.
pub fn rfc3339(us: u64) -> String {
    crate::export::rfc3339_us(us)
}

struct Progress {
    on: bool,
    total: u64,
    done_before: u64,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn update(&mut self, name: &str, read: u64) {
        if !self.on || self.last.elapsed().as_millis() < 200 {
            return;
        }
        self.last = Instant::now();
        let done = self.done_before + read;
        let pct = if self.total > 0 { (done as f64 * 100.0 / self.total as f64).min(100.0) } else { 0.0 };
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let mbps = done as f64 / secs / 1e6;
        let width = 30usize;
        let filled = ((pct / 100.0) * width as f64) as usize;
        let bar: String = "#".repeat(filled) + &"-".repeat(width - filled.min(width));
        let mut err = std::io::stderr();
        let _ = write!(err, "\r[{bar}] {pct:5.1}% {mbps:7.1} MB/s  {name:.40}\x1b[K");
        let _ = err.flush();
    }
    fn clear(&self) {
        if self.on {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

fn replay(a: ReplayArgs) -> Result<i32> {
    let mut cfg = load_config(a.run.config.as_deref())?;
    let workers = a.run.apply(&mut cfg)?;
    let inputs = capture::expand_inputs(&a.inputs)?;
    if !inputs.skipped.is_empty() {
        eprintln!(
            "apitap: note: skipping {} file(s) that are not pcap/pcapng captures in the given directories (first: {})",
            inputs.skipped.len(),
            inputs.skipped[0].display()
        );
    }
    let files = inputs.files;
    let store = std::sync::Arc::new(Store::open_with(&cfg.store.path, Access::ReadWrite, cfg.store.compression)?);
    let fingerprint_key = store.fingerprint_key()?;
    let sink = if cfg.output.events.is_empty() { None } else { Some(JsonLinesSink::open(&cfg.output.events)?) };
    let shipper = crate::ship::Shipper::start(std::sync::Arc::clone(&store), &cfg.sinks, &cfg.outbox)?;
    if cfg.output.transactions && sink.is_none() && shipper.is_empty() {
        eprintln!("apitap: note: --transactions without --events: transaction events go nowhere");
    }
    let (spec, baseline) = posture::run_inputs(&cfg, &store)?;
    let opts = PipelineOptions {
        workers,
        fingerprint_key,
        transactions: cfg.output.transactions,
        policy: FullPolicy::Block,
        metrics: None,
        spec,
        baseline,
        keylog: load_keylog(&cfg)?,
    };
    let mut pipeline = Pipeline::start(&cfg, &opts, std::sync::Arc::clone(&store), sink)?;

    let total: u64 = files.iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| m.len()).sum();
    let mut progress = Progress {
        on: !a.no_progress && std::io::stderr().is_terminal(),
        total,
        done_before: 0,
        started: Instant::now(),
        last: Instant::now(),
    };
    let started = Instant::now();
    let mut reports: Vec<FileReport> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    for f in &files {
        let name = f.display().to_string();
        let res = capture::replay_file(f, &mut pipeline, |read| progress.update(&name, read));
        progress.done_before += std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        match res {
            Ok(r) => {
                if let Some(msg) = &r.stopped {
                    problems.push(format!(
                        "{}: reading stopped after packet {} ({msg}); the file is truncated or damaged — everything before that point was replayed and stored",
                        r.path.display(),
                        r.packets
                    ));
                }
                reports.push(r);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    progress.clear();
    let totals = pipeline.finish().context("the pipeline failed; what was flushed before is in the store")?;
    if let Some(p) = events_problem(&totals) {
        problems.push(p);
    }
    let sinks = finish_sinks(shipper, &store, &cfg, &mut problems);
    let elapsed = started.elapsed().as_secs_f64();
    let mut summary = summary_json(&reports, &totals, elapsed, workers, &problems);
    if let Some(o) = summary.as_object_mut() {
        o.insert("sinks".into(), sinks);
    }
    print_summary(&summary);
    if let Some(p) = &a.run.stats_json {
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        std::fs::write(p, text + "\n").with_context(|| format!("cannot write --stats-json {}", p.display()))?;
    }
    for p in &problems {
        eprintln!("apitap: error: {p}");
    }
    Ok(if problems.is_empty() { 0 } else { EXIT_INPUT_PROBLEMS })
}

fn worker_count(cfg: &mut Config, arg: Option<usize>) -> Result<usize> {
    if let Some(w) = arg {
        if w == 0 || w > 256 {
            bail!("--workers {w}: give between 1 and 256 worker threads");
        }
        cfg.pipeline.workers = w;
    }
    Ok(if cfg.pipeline.workers == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    } else {
        cfg.pipeline.workers
    })
}

/// `apitap capture`: live capture until SIGTERM/SIGINT (see [`crate::service`]).
fn capture(a: CaptureArgs) -> Result<i32> {
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;
    use std::time::Duration;

    let mut cfg = load_config(a.run.config.as_deref())?;
    // the file as loaded, to tell what a reload changes (options override it)
    let mut file_cfg = cfg.clone();
    // an --events option wins over the file, also on reload
    let events_from_config = a.run.events.is_none();
    let workers = a.run.apply(&mut cfg)?;
    if let Some(f) = a.filter {
        cfg.capture.filter = f;
    }
    if let Some(u) = a.user {
        cfg.capture.user = u;
    }
    if let Some(m) = a.metrics {
        cfg.metrics.listen = m;
        cfg.validate()?;
    }
    let iface = match a.interface {
        Some(i) => i,
        None if !cfg.capture.interface.is_empty() => cfg.capture.interface.clone(),
        None => bail!("no interface: give one with -i (`ip link` lists them) or set capture.interface in the configuration"),
    };
    let c = &cfg.capture;
    let live_opts = capture::LiveOptions {
        snaplen: c.snaplen,
        promiscuous: c.promiscuous,
        buffer_bytes: c.buffer_mib.saturating_mul(1 << 20),
        timeout_ms: c.timeout_ms,
        immediate: c.immediate,
        filter: c.filter.clone(),
    };
    // 1. the only step that needs privileges
    let mut live = capture::LiveCapture::open(&iface, &live_opts)?;
    // 2. files the process keeps writing, opened before privileges go
    let store = Arc::new(Store::open_with(&cfg.store.path, Access::ReadWrite, cfg.store.compression)?);
    let fingerprint_key = store.fingerprint_key()?;
    let (spec, baseline) = posture::run_inputs(&cfg, &store)?;
    let sink = if cfg.output.events.is_empty() { None } else { Some(JsonLinesSink::open(&cfg.output.events)?) };
    let events_path = PathBuf::from(&cfg.output.events);
    let mut give: Vec<&Path> = vec![cfg.store.path.as_path()];
    if !cfg.output.events.is_empty() && cfg.output.events != "-" {
        give.push(events_path.as_path());
    }
    // 3. privileges go before the first packet is read
    let privs = crate::service::drop_privileges(&cfg.capture.user, &give)?;
    let signals = crate::service::Signals::install()?;
    let shipper = crate::ship::Shipper::start(Arc::clone(&store), &cfg.sinks, &cfg.outbox)?;
    let metrics = Arc::new(crate::metrics::Metrics { sinks: shipper.counters(), ..crate::metrics::Metrics::new(workers) });
    let server = if cfg.metrics.listen.is_empty() {
        None
    } else {
        let addr: std::net::SocketAddr = cfg.metrics.listen.parse().context("metrics.listen")?;
        let srv = crate::metrics::MetricsServer::start(addr, Arc::clone(&metrics))
            .with_context(|| format!("cannot serve metrics on {addr}; choose a free address in metrics.listen"))?;
        Some(srv)
    };
    let opts = PipelineOptions {
        workers,
        fingerprint_key,
        transactions: cfg.output.transactions,
        policy: FullPolicy::Drop,
        metrics: Some(Arc::clone(&metrics)),
        spec,
        baseline,
        keylog: load_keylog(&cfg)?,
    };
    let mut pipeline = Pipeline::start(&cfg, &opts, Arc::clone(&store), sink)?;
    eprintln!(
        "apitap: capturing on {iface} ({}), {workers} workers, running as uid {} gid {} with no capabilities{}",
        live.link_name(),
        privs.uid,
        privs.gid,
        server.as_ref().map(|s| format!(", metrics on http://{}/metrics", s.local_addr())).unwrap_or_default()
    );
    crate::service::notify("READY=1\nSTATUS=capturing");

    let started = Instant::now();
    let mut batch_wait = Duration::from_millis(cfg.capture.batch_max_wait_ms.max(1));
    let mut health_every = Duration::from_secs(cfg.capture.health_interval_secs);
    let (mut last_partial, mut last_stats, mut last_health) = (Instant::now(), Instant::now(), Instant::now());
    let mut since_check = 0u32;
    let mut failure = None;
    let mut live_stats = capture::LiveStats::default();
    let mut keylog_watch = KeylogWatcher::new(&cfg);
    loop {
        let idle = match live.next(|link, ts, frame| pipeline.packet(link, ts, frame)) {
            Ok(capture::LiveNext::Packet) => false,
            Ok(capture::LiveNext::Idle) => true,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        since_check += 1;
        if !idle && since_check < 256 {
            continue;
        }
        since_check = 0;
        if signals.stop_requested() {
            break;
        }
        if signals.take_reload() {
            let note = match &a.run.config {
                Some(p) => match Config::load(p) {
                    Ok(new) => {
                        let changes = reload_changes(&file_cfg, &new);
                        if new.output.events != file_cfg.output.events && events_from_config {
                            pipeline.reopen_outputs(Some(new.output.events.clone()));
                            cfg.output.events = new.output.events.clone();
                        } else {
                            pipeline.reopen_outputs(None);
                        }
                        cfg.capture.health_interval_secs = new.capture.health_interval_secs;
                        cfg.capture.batch_max_wait_ms = new.capture.batch_max_wait_ms;
                        health_every = Duration::from_secs(new.capture.health_interval_secs);
                        batch_wait = Duration::from_millis(new.capture.batch_max_wait_ms.max(1));
                        file_cfg = new;
                        changes
                    }
                    Err(e) => {
                        pipeline.reopen_outputs(None);
                        format!("configuration not reloaded ({e}); the running one stays")
                    }
                },
                None => {
                    pipeline.reopen_outputs(None);
                    "no configuration file to reload".to_string()
                }
            };
            eprintln!("apitap: SIGHUP: output files reopened; {note}");
        }
        if last_partial.elapsed() >= batch_wait {
            pipeline.flush_partial();
            last_partial = Instant::now();
        }
        if let Some(k) = keylog_watch.as_mut().and_then(KeylogWatcher::poll) {
            pipeline.set_keylog(k);
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            live_stats = live.stats();
            publish(&metrics, &pipeline, &live_stats);
            last_stats = Instant::now();
        }
        if !health_every.is_zero() && last_health.elapsed() >= health_every {
            eprintln!(
                "apitap: health: {} packets, kernel drops {}, interface drops {}, queue drops {}, {} flows, {} transactions, parsers {} MiB ({} connections shed), rss {} MiB",
                metrics.packets.load(Relaxed),
                live_stats.kernel_dropped,
                live_stats.interface_dropped,
                metrics.reader_drops(),
                metrics.flows_active(),
                metrics.transactions(),
                metrics.parser_bytes() >> 20,
                metrics.parser_shed(),
                crate::metrics::resident_bytes() >> 20
            );
            last_health = Instant::now();
        }
    }
    crate::service::notify("STOPPING=1");
    live_stats = live.stats();
    publish(&metrics, &pipeline, &live_stats);
    let totals = pipeline.finish().context("the pipeline failed; what was flushed before is in the store")?;
    drop(server);
    let elapsed = started.elapsed().as_secs_f64();
    let mut problems: Vec<String> = events_problem(&totals).into_iter().collect();
    let sinks = finish_sinks(shipper, &store, &cfg, &mut problems);
    let mut summary = summary_json(&[], &totals, elapsed, workers, &problems);
    if let Some(o) = summary.as_object_mut() {
        o.insert("sinks".into(), sinks);
        o.insert("interface".into(), json!(iface));
        o.insert("capture".into(), json!(live_stats));
    }
    print_summary(&summary);
    eprintln!(
        "  capture on {iface}: kernel received {}, kernel drops {}, interface drops {}, queue drops {} batches",
        live_stats.received, live_stats.kernel_dropped, live_stats.interface_dropped, totals.pipeline.reader_batches_dropped
    );
    if let Some(p) = &a.run.stats_json {
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        std::fs::write(p, text + "\n").with_context(|| format!("cannot write --stats-json {}", p.display()))?;
    }
    if let Some(e) = failure {
        return Err(e).context("capture stopped; everything seen before is in the store");
    }
    for p in &problems {
        eprintln!("apitap: error: {p}");
    }
    Ok(if problems.is_empty() { 0 } else { EXIT_INPUT_PROBLEMS })
}

/// Lets the SIEM sinks drain, trims what all delivered, and reports them.
fn finish_sinks(shipper: crate::ship::Shipper, store: &Store, cfg: &Config, problems: &mut Vec<String>) -> Value {
    if shipper.is_empty() {
        return json!([]);
    }
    let reports = shipper.finish();
    crate::ship::trim(store, &cfg.sinks);
    for r in &reports {
        eprintln!(
            "  sink {}: {} events delivered, {} sent again, {} failures, {} rejected (dead-letter file), {} still in the outbox",
            r.name, r.sent, r.retried, r.failures, r.dead_lettered, r.spooled
        );
        if r.spooled > 0 {
            problems.push(format!(
                "sink {}: {} events could not be delivered within outbox.drain_timeout_secs; they stay in the outbox and are sent at the next start",
                r.name, r.spooled
            ));
        }
    }
    serde_json::to_value(&reports).unwrap_or(Value::Null)
}

/// The event output's failure, if any, for the summary and the exit status.
fn events_problem(t: &RunTotals) -> Option<String> {
    t.events_error.as_ref().map(|e| {
        format!("{e}; {} events were not written — the inventory in the store is complete", t.events_failed)
    })
}

/// What a SIGHUP applies, and what it cannot (named, for the log).
///
/// Applied at once: `output.events` (the event file switches), `capture.health_interval_secs`,
/// `capture.batch_max_wait_ms`. Everything else shapes state that workers,
/// the capture handle or the store already hold, and applies at the next start.
fn reload_changes(old: &Config, new: &Config) -> String {
    let mut applied = Vec::new();
    if old.output.events != new.output.events {
        applied.push("output.events");
    }
    if old.capture.health_interval_secs != new.capture.health_interval_secs {
        applied.push("capture.health_interval_secs");
    }
    if old.capture.batch_max_wait_ms != new.capture.batch_max_wait_ms {
        applied.push("capture.batch_max_wait_ms");
    }
    let mut rest = new.clone();
    rest.output.events = old.output.events.clone();
    rest.capture.health_interval_secs = old.capture.health_interval_secs;
    rest.capture.batch_max_wait_ms = old.capture.batch_max_wait_ms;
    let mut pending = Vec::new();
    macro_rules! section {
        ($($f:ident),*) => {$(
            if rest.$f != old.$f {
                pending.push(stringify!($f));
            }
        )*};
    }
    section!(store, output, pipeline, decode, flow, http, http2, templates, auth, sensitive, exposure, tags, capture, metrics);
    match (applied.is_empty(), pending.is_empty()) {
        (true, true) => "configuration unchanged".to_string(),
        (_, true) => format!("applied: {}", applied.join(", ")),
        (_, false) => format!(
            "applied: {}; changed sections that apply at the next start: {}",
            if applied.is_empty() { "nothing".to_string() } else { applied.join(", ") },
            pending.join(", ")
        ),
    }
}

fn publish(m: &crate::metrics::Metrics, p: &Pipeline, live: &capture::LiveStats) {
    use std::sync::atomic::Ordering::Relaxed;
    m.packets.store(p.stats().packets, Relaxed);
    m.bytes.store(p.stats().bytes, Relaxed);
    m.kernel_received.store(live.received, Relaxed);
    m.kernel_dropped.store(live.kernel_dropped, Relaxed);
    m.interface_dropped.store(live.interface_dropped, Relaxed);
}

fn get_u64(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(x) => cur = x,
            None => return 0,
        }
    }
    cur.as_u64().unwrap_or(0)
}

fn summary_json(reports: &[FileReport], t: &RunTotals, elapsed: f64, workers: usize, problems: &[String]) -> Value {
    let decode = serde_json::to_value(&t.decode).unwrap_or(Value::Null);
    let bytes = t.pipeline.bytes;
    // every named limit whose counter says data was dropped or cut
    let mut limits = serde_json::Map::new();
    for (section, v) in [("decode", &decode), ("flow", &t.flow), ("http", &t.proto)] {
        if let Some(obj) = v.as_object() {
            for (k, n) in obj {
                if k.contains("limit") || k.contains("evicted") || k.contains("gave_up") {
                    limits.insert(format!("{section}.{k}"), n.clone());
                }
            }
        }
    }
    limits.insert("pipeline.reader_batches_dropped".into(), json!(t.pipeline.reader_batches_dropped));
    json!({
        "files": reports,
        "workers": workers,
        "packets": t.pipeline.packets,
        "bytes": bytes,
        "tcp_segments": t.pipeline.segments,
        "batches": t.pipeline.batches,
        "reader_batches_allocated": t.pipeline.reader_batches_allocated,
        "tcp_segments_read_in_place": t.pipeline.segments_in_place,
        "connections_placed": t.pipeline.connections_placed,
        "placement_table_full": t.pipeline.placement_table_full,
        "worker_bytes": t.pipeline.worker_bytes,
        "flows": get_u64(&t.flow, &["flows_created"]),
        "transactions": get_u64(&t.proto, &["transactions"]),
        "http_anomalies": get_u64(&t.proto, &["anomalies"]),
        "tcp_gaps": get_u64(&t.flow, &["gaps"]),
        "tcp_out_of_order": get_u64(&t.flow, &["out_of_order"]),
        "tcp_overlaps": get_u64(&t.flow, &["overlaps"]),
        "drops_by_limit": limits,
        "endpoints_updated": t.endpoints_updated,
        "events_written": t.events_written,
        "events_failed": t.events_failed,
        "outbox_appended": t.outbox_appended,
        "outbox_dropped": t.outbox_dropped,
        "tls_sessions": t.tls_sessions,
        "tls_decrypted": t.tls_decrypted,
        "tls_without_keys": t.tls_without_keys,
        "tls_failed": t.tls_failed,
        "findings_new": t.findings_new,
        "findings_reopened": t.findings_reopened,
        "findings_by_kind": t.findings_by_kind,
        "detectors": t.detectors,
        "elapsed_secs": elapsed,
        "throughput_mbytes_per_sec": if elapsed > 0.0 { bytes as f64 / elapsed / 1e6 } else { 0.0 },
        "packets_per_sec": if elapsed > 0.0 { t.pipeline.packets as f64 / elapsed } else { 0.0 },
        "decode": decode,
        "flow": t.flow,
        "http": t.proto,
        "problems": problems,
    })
}

fn print_summary(s: &Value) {
    let g = |k: &str| get_u64(s, &[k]);
    let f = |k: &str| s.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    eprintln!(
        "apitap replay: {} packets, {} bytes, {} TCP segments, {} flows, {} transactions in {:.2}s ({:.1} MB/s, {:.0} packets/s, {} workers)",
        g("packets"),
        g("bytes"),
        g("tcp_segments"),
        g("flows"),
        g("transactions"),
        f("elapsed_secs"),
        f("throughput_mbytes_per_sec"),
        f("packets_per_sec"),
        g("workers"),
    );
    eprintln!(
        "  http anomalies {}, tcp gaps {}, out-of-order {}, overlaps {}, endpoints updated {}, events {}",
        g("http_anomalies"),
        g("tcp_gaps"),
        g("tcp_out_of_order"),
        g("tcp_overlaps"),
        g("endpoints_updated"),
        g("events_written")
    );
    let kinds: Vec<String> = s
        .get("findings_by_kind")
        .and_then(Value::as_object)
        .map(|o| o.iter().map(|(k, v)| format!("{k}={v}")).collect())
        .unwrap_or_default();
    if g("tls_sessions") > 0 {
        eprintln!(
            "  tls: {} sessions: {} decrypted, {} without keys, {} failed; {} plaintext bytes",
            g("tls_sessions"),
            g("tls_decrypted"),
            g("tls_without_keys"),
            g("tls_failed"),
            get_u64(s, &["http", "tls_plaintext_bytes"])
        );
    }
    eprintln!(
        "  findings: {} new, {} reopened{}{}",
        g("findings_new"),
        g("findings_reopened"),
        if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) },
        if get_u64(s, &["detectors", "detector_table_full"]) > 0 {
            format!("; detector_table_full={}", get_u64(s, &["detectors", "detector_table_full"]))
        } else {
            String::new()
        }
    );
    let per_worker: Vec<u64> = s.get("worker_bytes").and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default();
    let all: u64 = per_worker.iter().sum();
    if per_worker.len() > 1 && all > 0 {
        let shares: Vec<String> = per_worker.iter().map(|b| format!("{:.1}%", *b as f64 * 100.0 / all as f64)).collect();
        eprintln!(
            "  workers: bytes {}; {} connections placed by load{}",
            shares.join(" / "),
            g("connections_placed"),
            if g("placement_table_full") > 0 { format!(", {} by the hash (placement table full)", g("placement_table_full")) } else { String::new() }
        );
    }
    if let Some(obj) = s.get("drops_by_limit").and_then(Value::as_object) {
        let hit: Vec<String> =
            obj.iter().filter(|(_, v)| v.as_u64().unwrap_or(0) > 0).map(|(k, v)| format!("{k}={v}")).collect();
        if hit.is_empty() {
            eprintln!("  limits: none hit");
        } else {
            eprintln!("  limits hit: {}", hit.join(", "));
        }
    }
}

/// The JSON form of one TLS service in `dump --tls`.
pub fn tls_json(r: &crate::inventory::tls::TlsServiceRecord) -> Value {
    let alpn: Vec<&String> = if r.alpn.is_empty() { r.alpn_offered.keys().collect() } else { r.alpn.keys().collect() };
    json!({
        "server_ip": r.server_ip,
        "port": r.port,
        "sni": if r.sni.is_empty() { Value::Null } else { json!(r.sni) },
        "alpn": alpn,
        "alpn_negotiated": !r.alpn.is_empty(),
        "alpn_offered": r.alpn_offered.keys().collect::<Vec<_>>(),
        "tls_versions": r.versions.keys().collect::<Vec<_>>(),
        "tls_versions_offered": r.versions_offered,
        "cipher_suites": r.cipher_suites.keys().collect::<Vec<_>>(),
        "ja4": r.ja4.keys().collect::<Vec<_>>(),
        "clients": r.clients.len(),
        "clients_capped": r.clients_capped,
        "sessions": r.sessions,
        "sessions_decrypted": r.sessions_decrypted,
        "sessions_without_keys": r.sessions_without_keys,
        "sessions_failed": r.sessions_failed,
        "sessions_not_attempted": r.sessions_not_attempted,
        "failures": r.failures,
        "certificate": {
            "subject_cn": r.cert_subject,
            "issuer_cn": r.cert_issuer,
            "not_after": r.cert_not_after.and_then(|s| u64::try_from(s).ok()).map(|s| rfc3339(s.saturating_mul(1_000_000))),
        },
        "first_seen": rfc3339(r.first_seen_us),
        "last_seen": rfc3339(r.last_seen_us),
    })
}

fn dump_tls(store: &Store, format: DumpFormat) -> Result<i32> {
    let mut list = store.tls_services()?;
    list.sort_by(|x, y| (&x.sni, &x.server_ip, x.port).cmp(&(&y.sni, &y.server_ip, y.port)));
    let mut out = std::io::stdout().lock();
    match format {
        DumpFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &list.iter().map(tls_json).collect::<Vec<_>>())?;
            writeln!(out)?;
        }
        DumpFormat::Table => {
            let head = ["SERVER", "SNI", "ALPN", "VERSIONS", "CIPHERS", "CLIENTS", "SESSIONS", "DECRYPTED", "NO KEYS", "FAILED", "NO KEY LOG"];
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| {
                    let alpn = if r.alpn.is_empty() { r.alpn_offered.keys().cloned().collect::<Vec<_>>().join(",") + " (offered)" } else { r.alpn.keys().cloned().collect::<Vec<_>>().join(",") };
                    vec![
                        format!("{}:{}", r.server_ip, r.port),
                        if r.sni.is_empty() { "-".into() } else { r.sni.clone() },
                        alpn,
                        r.versions.keys().cloned().collect::<Vec<_>>().join(","),
                        r.cipher_suites.keys().cloned().collect::<Vec<_>>().join(","),
                        r.clients.len().to_string(),
                        r.sessions.to_string(),
                        r.sessions_decrypted.to_string(),
                        r.sessions_without_keys.to_string(),
                        r.sessions_failed.to_string(),
                        r.sessions_not_attempted.to_string(),
                    ]
                })
                .collect();
            let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
            for r in &rows {
                for (i, c) in r.iter().enumerate() {
                    if let Some(x) = w.get_mut(i) {
                        *x = (*x).max(c.chars().count());
                    }
                }
            }
            let line = |cells: Vec<String>| cells.iter().zip(&w).map(|(c, n)| format!("{c:n$}")).collect::<Vec<_>>().join("  ").trim_end().to_string();
            writeln!(out, "{}", line(head.iter().map(|s| s.to_string()).collect()))?;
            for r in rows {
                writeln!(out, "{}", line(r))?;
            }
        }
    }
    Ok(0)
}

/// The JSON form of one endpoint in `dump`.
pub fn endpoint_json(r: &EndpointRecord) -> Value {
    let statuses: serde_json::Map<String, Value> = r.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let mut sensitive: Vec<&String> = r.request_sensitive.keys().chain(r.response_sensitive.keys()).collect();
    sensitive.sort();
    sensitive.dedup();
    json!({
        "host": r.host,
        "method": r.method,
        "path": r.path,
        "requests": r.requests,
        "statuses": statuses,
        "no_response": r.no_response,
        "first_seen": rfc3339(r.first_seen_us),
        "last_seen": rfc3339(r.last_seen_us),
        "protocols": r.protocols,
        "auth": r.auth.reported(),
        "auth_seen": r.auth.schemes_seen,
        "auth_flags": r.auth.flags,
        "auth_mixed_success": r.auth.mixed_success(),
        "sensitive": sensitive,
        "request_sensitive": r.request_sensitive.keys().collect::<Vec<_>>(),
        "response_sensitive": r.response_sensitive.keys().collect::<Vec<_>>(),
        "exposure": r.exposure.keys().collect::<Vec<_>>(),
        "exposure_requests": r.exposure,
        "tags": r.tags,
        "clients": r.clients(),
        "clients_capped": r.clients_capped,
        "latency_ms": {
            "p50": r.latency_percentile_ms(50),
            "p90": r.latency_percentile_ms(90),
            "p99": r.latency_percentile_ms(99),
        },
        "request_size": r.request_size,
        "response_size": r.response_size,
        "request_content_types": r.request_content_types,
        "response_content_types": r.response_content_types,
        "query_params": r.query_params,
    })
}

fn outbox_status(config: Option<PathBuf>, store_dir: Option<PathBuf>, as_json: bool) -> Result<i32> {
    let mut cfg = load_config(config.as_deref())?;
    if let Some(s) = store_dir {
        cfg.store.path = s;
    }
    let store = Store::open(&cfg.store.path, Access::ReadOnly)?;
    let last = store.outbox_last();
    let mut sinks = Vec::new();
    for s in &cfg.sinks {
        let cursor = store.outbox_cursor(&s.name)?;
        sinks.push(json!({ "name": s.name, "kind": s.kind, "address": s.address, "delivered_up_to": cursor, "pending": last.saturating_sub(cursor) }));
    }
    let oldest = store.outbox_read(0, 1)?.first().map(|(seq, _)| *seq);
    let spooled = oldest.map(|o| last + 1 - o).unwrap_or(0);
    let v = json!({ "store": cfg.store.path, "last_sequence": last, "spooled": spooled, "max_events": cfg.outbox.max_events, "sinks": sinks });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("outbox of {}: {spooled} events spooled (limit {}), last sequence {last}", cfg.store.path.display(), cfg.outbox.max_events);
        if cfg.sinks.is_empty() {
            println!("no sinks configured (give --config with [[sinks]])");
        }
        for s in &sinks {
            println!("  sink {:<16} {:<8} {:<28} delivered up to {:>10}  pending {:>10}", s["name"].as_str().unwrap_or(""), s["kind"].as_str().unwrap_or(""), s["address"].as_str().unwrap_or(""), s["delivered_up_to"], s["pending"]);
        }
    }
    Ok(0)
}

fn openapi(a: OpenapiArgs) -> Result<i32> {
    let mut cfg = load_config(a.config.as_deref())?;
    if let Some(s) = a.store {
        cfg.store.path = s;
    }
    let store = Store::open(&cfg.store.path, Access::ReadOnly)?;
    let eps = store.endpoints()?;
    if let Some(h) = &a.host {
        if !eps.iter().any(|r| &r.host == h) {
            bail!("no endpoint of host {h} in the store; `apitap dump` lists the hosts");
        }
    }
    let doc = crate::export::openapi::document(&eps, a.host.as_deref(), env!("CARGO_PKG_VERSION"));
    let text = serde_json::to_string_pretty(&doc)? + "\n";
    match &a.output {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
        }
    }
    Ok(0)
}

fn dump(a: DumpArgs) -> Result<i32> {
    let mut cfg = load_config(a.config.as_deref())?;
    if let Some(s) = a.store {
        cfg.store.path = s;
    }
    let store = Store::open(&cfg.store.path, Access::ReadOnly)?;
    if a.tls {
        return dump_tls(&store, a.format);
    }
    let mut eps = store.endpoints()?;
    eps.sort_by(|x, y| (&x.host, &x.path, &x.method).cmp(&(&y.host, &y.path, &y.method)));
    let mut out = std::io::stdout().lock();
    match a.format {
        DumpFormat::Json => {
            let arr: Vec<Value> = eps.iter().map(endpoint_json).collect();
            serde_json::to_writer_pretty(&mut out, &arr)?;
            writeln!(out)?;
        }
        DumpFormat::Table => {
            let rows: Vec<[String; 9]> = eps
                .iter()
                .map(|r| {
                    let st = r.statuses.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(",");
                    let st = if r.no_response > 0 {
                        if st.is_empty() { format!("-:{}", r.no_response) } else { format!("{st},-:{}", r.no_response) }
                    } else {
                        st
                    };
                    [
                        r.host.clone(),
                        r.method.clone(),
                        r.path.clone(),
                        r.requests.to_string(),
                        st,
                        r.auth.reported().join(","),
                        {
                            let mut k: Vec<&String> = r.request_sensitive.keys().chain(r.response_sensitive.keys()).collect();
                            k.sort();
                            k.dedup();
                            k.into_iter().cloned().collect::<Vec<_>>().join(",")
                        },
                        rfc3339(r.last_seen_us).get(..19).unwrap_or_default().replace('T', " "),
                        r.protocols.iter().cloned().collect::<Vec<_>>().join(","),
                    ]
                })
                .collect();
            let head = ["HOST", "METHOD", "PATH", "REQUESTS", "STATUSES", "AUTH", "SENSITIVE", "LAST SEEN (UTC)", "PROTOCOLS"];
            let mut w = head.map(str::len);
            for r in &rows {
                for (i, c) in r.iter().enumerate() {
                    w[i] = w[i].max(c.chars().count()).min(80);
                }
            }
            let line = |cells: &[String; 9]| -> String {
                cells
                    .iter()
                    .enumerate()
                    .map(|(i, c)| if i == 3 { format!("{c:>w$}", w = w[i]) } else { format!("{c:<w$}", w = w[i]) })
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            writeln!(out, "{}", line(&head.map(String::from)))?;
            for r in &rows {
                writeln!(out, "{}", line(r))?;
            }
            writeln!(out, "{} endpoints", rows.len())?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29T12:34:56.789Z (leap day)
        assert_eq!(rfc3339(951_827_696_789_000), "2000-02-29T12:34:56.789000Z");
        // 2026-11-23T18:11:16Z
        assert_eq!(rfc3339(1_795_457_476_000_000), "2026-11-23T18:11:16.000000Z");
    }
}
