//! Live counters for `apitap capture`, served in the Prometheus text format
//! (version 0.0.4) on `metrics.listen`.
//!
//! Names follow Prometheus conventions (`apitap_…_total` for counters, units
//! in the name); labels carry only small fixed sets (protocol, queue, reason,
//! sink, result) — never a path, an address or a user.
//!
//! Writers: the capture loop (packets, bytes, kernel and interface drops,
//! reader drops), the workers (flows, gaps; each owns one slot so no counter
//! is shared between workers), the aggregator (transactions, events, store
//! writes). Readers: the HTTP endpoint and the health line.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Per-worker flow counters (one writer each).
#[derive(Debug, Default)]
pub struct WorkerMetrics {
    pub flows_active: AtomicU64,
    pub flows_created: AtomicU64,
    pub flows_evicted_limit: AtomicU64,
    pub flows_timed_out: AtomicU64,
    pub tcp_gaps: AtomicU64,
    pub queue_batches_dropped: AtomicU64,
    /// Bytes this worker's protocol parsers hold now, and the connections
    /// that grew past their share of `http.max_parser_bytes_total`.
    pub parser_bytes: AtomicU64,
    pub parser_shed: AtomicU64,
}

/// Every live counter.
#[derive(Debug, Default)]
pub struct Metrics {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
    pub kernel_received: AtomicU64,
    pub kernel_dropped: AtomicU64,
    pub interface_dropped: AtomicU64,
    pub transactions_http1: AtomicU64,
    pub transactions_h2: AtomicU64,
    pub transactions_grpc: AtomicU64,
    pub events_written: AtomicU64,
    pub events_failed: AtomicU64,
    pub store_writes: AtomicU64,
    pub store_write_micros: AtomicU64,
    pub store_write_errors: AtomicU64,
    pub outbox_appended: AtomicU64,
    pub outbox_dropped: AtomicU64,
    /// TLS sessions by decryption outcome.
    pub tls_decrypted: AtomicU64,
    pub tls_without_keys: AtomicU64,
    pub tls_failed: AtomicU64,
    pub tls_not_attempted: AtomicU64,
    pub findings_new: AtomicU64,
    pub workers: Vec<WorkerMetrics>,
    /// SIEM sinks by name (their threads own the counters).
    pub sinks: Vec<(String, Arc<crate::ship::SinkCounters>)>,
}

impl Metrics {
    pub fn new(workers: usize) -> Metrics {
        Metrics { workers: (0..workers).map(|_| WorkerMetrics::default()).collect(), ..Metrics::default() }
    }

    /// Counts one transaction of `protocol` ("http1", "h2", "grpc").
    pub fn transaction(&self, protocol: &str) {
        match protocol {
            "h2" => &self.transactions_h2,
            "grpc" => &self.transactions_grpc,
            _ => &self.transactions_http1,
        }
        .fetch_add(1, Relaxed);
    }

    pub fn transactions(&self) -> u64 {
        self.transactions_http1.load(Relaxed) + self.transactions_h2.load(Relaxed) + self.transactions_grpc.load(Relaxed)
    }

    pub fn reader_drops(&self) -> u64 {
        self.workers.iter().map(|w| w.queue_batches_dropped.load(Relaxed)).sum()
    }

    pub fn flows_active(&self) -> u64 {
        self.workers.iter().map(|w| w.flows_active.load(Relaxed)).sum()
    }

    /// Bytes the protocol parsers of all workers hold now.
    pub fn parser_bytes(&self) -> u64 {
        self.workers.iter().map(|w| w.parser_bytes.load(Relaxed)).sum()
    }

    /// Connections shed for the parser memory budget, all workers.
    pub fn parser_shed(&self) -> u64 {
        self.workers.iter().map(|w| w.parser_shed.load(Relaxed)).sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, kind: &str, values: &[(&str, u64)]| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in values {
                if labels.is_empty() {
                    let _ = writeln!(s, "{name} {v}");
                } else {
                    let _ = writeln!(s, "{name}{{{labels}}} {v}");
                }
            }
        };
        let sum = |f: fn(&WorkerMetrics) -> &AtomicU64| self.workers.iter().map(|w| f(w).load(Relaxed)).sum::<u64>();
        counter("apitap_packets_received_total", "Packets read from the capture handle.", "counter", &[("", self.packets.load(Relaxed))]);
        counter("apitap_bytes_received_total", "Bytes of packets read from the capture handle.", "counter", &[("", self.bytes.load(Relaxed))]);
        counter("apitap_kernel_packets_total", "Packets the kernel passed the capture filter (pcap_stats).", "counter", &[("", self.kernel_received.load(Relaxed))]);
        counter(
            "apitap_packets_dropped_total",
            "Packets lost before apitap saw them, by where.",
            "counter",
            &[("where=\"kernel\"", self.kernel_dropped.load(Relaxed)), ("where=\"interface\"", self.interface_dropped.load(Relaxed))],
        );
        let queues: Vec<(String, u64)> =
            self.workers.iter().enumerate().map(|(i, w)| (format!("queue=\"worker{i}\""), w.queue_batches_dropped.load(Relaxed))).collect();
        let queue_refs: Vec<(&str, u64)> = queues.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        counter("apitap_pipeline_batches_dropped_total", "Packet batches dropped because a worker queue was full.", "counter", &queue_refs);
        counter("apitap_flows_active", "TCP connections tracked now.", "gauge", &[("", sum(|w| &w.flows_active))]);
        counter("apitap_flows_created_total", "TCP connections tracked.", "counter", &[("", sum(|w| &w.flows_created))]);
        counter(
            "apitap_flows_evicted_total",
            "TCP connections closed early, by reason.",
            "counter",
            &[("reason=\"table_full\"", sum(|w| &w.flows_evicted_limit)), ("reason=\"idle_timeout\"", sum(|w| &w.flows_timed_out))],
        );
        counter("apitap_tcp_gaps_total", "Holes in TCP streams (lost packets).", "counter", &[("", sum(|w| &w.tcp_gaps))]);
        counter("apitap_parser_bytes", "Bytes the protocol parsers hold now (bounded by http.max_parser_bytes_total).", "gauge", &[("", self.parser_bytes())]);
        counter(
            "apitap_parser_connections_shed_total",
            "Connections that grew past the parser memory budget and freed what they held (their waiting requests reported without a response).",
            "counter",
            &[("", self.parser_shed())],
        );
        counter(
            "apitap_transactions_total",
            "HTTP request/response pairs, by protocol.",
            "counter",
            &[
                ("protocol=\"http1\"", self.transactions_http1.load(Relaxed)),
                ("protocol=\"h2\"", self.transactions_h2.load(Relaxed)),
                ("protocol=\"grpc\"", self.transactions_grpc.load(Relaxed)),
            ],
        );
        counter(
            "apitap_events_total",
            "Events handed to sinks, by sink and result.",
            "counter",
            &[("sink=\"file\",result=\"ok\"", self.events_written.load(Relaxed)), ("sink=\"file\",result=\"error\"", self.events_failed.load(Relaxed))],
        );
        counter(
            "apitap_tls_sessions_total",
            "TLS sessions seen, by decryption outcome (decrypted with the key log, no keys for them, failed, not attempted).",
            "counter",
            &[
                ("result=\"decrypted\"", self.tls_decrypted.load(Relaxed)),
                ("result=\"without_keys\"", self.tls_without_keys.load(Relaxed)),
                ("result=\"failed\"", self.tls_failed.load(Relaxed)),
                ("result=\"not_attempted\"", self.tls_not_attempted.load(Relaxed)),
            ],
        );
        counter("apitap_findings_new_total", "Findings first seen (or reopened) and emitted.", "counter", &[("", self.findings_new.load(Relaxed))]);
        counter("apitap_store_writes_total", "Batched writes to the inventory store.", "counter", &[("", self.store_writes.load(Relaxed))]);
        counter("apitap_store_write_errors_total", "Failed writes to the inventory store.", "counter", &[("", self.store_write_errors.load(Relaxed))]);
        counter(
            "apitap_outbox_events_total",
            "Events for SIEM sinks, by result (spooled in the outbox, or dropped because it was full).",
            "counter",
            &[("result=\"spooled\"", self.outbox_appended.load(Relaxed)), ("result=\"dropped\"", self.outbox_dropped.load(Relaxed))],
        );
        if !self.sinks.is_empty() {
            let _ = writeln!(s, "# HELP apitap_sink_events_total Events of SIEM sinks, by sink and result (sent = delivered, retried = sent again after a broken connection).\n# TYPE apitap_sink_events_total counter");
            for (name, c) in &self.sinks {
                let name = name.replace(['\\', '"', '\n'], "_");
                let _ = writeln!(s, "apitap_sink_events_total{{sink=\"{name}\",result=\"sent\"}} {}", c.sent.load(Relaxed));
                let _ = writeln!(s, "apitap_sink_events_total{{sink=\"{name}\",result=\"retried\"}} {}", c.retried.load(Relaxed));
            }
            let _ = writeln!(s, "# HELP apitap_sink_failures_total Connection and write failures of SIEM sinks.\n# TYPE apitap_sink_failures_total counter");
            for (name, c) in &self.sinks {
                let name = name.replace(['\\', '"', '\n'], "_");
                let _ = writeln!(s, "apitap_sink_failures_total{{sink=\"{name}\"}} {}", c.failures.load(Relaxed));
            }
        }
        let secs = self.store_write_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(s, "# HELP apitap_store_write_seconds_total Time spent in store writes.\n# TYPE apitap_store_write_seconds_total counter\napitap_store_write_seconds_total {secs:.6}");
        let _ = writeln!(s, "# HELP apitap_resident_memory_bytes Resident memory of the process.\n# TYPE apitap_resident_memory_bytes gauge\napitap_resident_memory_bytes {}", resident_bytes());
        s
    }
}

/// Resident set size of this process (from /proc/self/statm).
pub fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    pages * page
}

/// Largest request head read from a metrics client.
const MAX_REQUEST_BYTES: usize = 4096;

/// The HTTP endpoint: `GET /metrics` (or `/`) answers the exposition, anything else 404.
pub struct MetricsServer {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `listen` and serves `metrics` from a thread of its own.
    pub fn start(listen: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<MetricsServer> {
        let listener = TcpListener::bind(listen)?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("apitap-metrics".into()).spawn(move || {
            while !flag.load(Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => serve(conn, &metrics),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(50)),
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        })?;
        Ok(MetricsServer { stop, addr, thread: Some(thread) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, metrics: &Metrics) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.set_write_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; MAX_REQUEST_BYTES];
    let mut len = 0;
    while len < buf.len() {
        match conn.read(buf.get_mut(len..).unwrap_or_default()) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                len += n;
                if buf.get(..len).is_some_and(|b| b.windows(4).any(|w| w == b"\r\n\r\n")) {
                    break;
                }
            }
        }
    }
    let head = String::from_utf8_lossy(buf.get(..len).unwrap_or_default());
    let mut parts = head.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body, ctype) = if method == "GET" && (target == "/metrics" || target == "/") {
        ("200 OK", metrics.render(), "text/plain; version=0.0.4; charset=utf-8")
    } else {
        ("404 Not Found", "only GET /metrics is served\n".to_string(), "text/plain; charset=utf-8")
    };
    let _ = write!(conn, "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
}
