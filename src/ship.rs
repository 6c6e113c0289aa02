//! Shipping events from the durable outbox to SIEM sinks.
//!
//! The aggregator appends every event to the store's outbox before anything
//! is sent. One thread per sink reads the outbox from its cursor, sends, and
//! moves the cursor only when delivery is confirmed, so a crash, a restart or
//! a receiver that goes away loses nothing: delivery is at least once.
//!
//! Syslog (RFC 5424 message, RFC 5425 octet-counted framing, TLS by rustls or
//! plain TCP) has no acknowledgement. An event counts as delivered once it
//! has stayed `outbox.confirm_secs` on a connection that is still healthy
//! (checked by reading from it: a receiver that went away shows as EOF or an
//! error); when a connection breaks, everything sent but not yet confirmed is
//! sent again after reconnecting (counted as `retried`). On a clean stop the
//! sink ends TLS with close_notify and waits for the receiver to close too:
//! then everything sent was read, and it is all confirmed at once.
//!
//! Retries back off exponentially (100 ms doubling, up to
//! `outbox.max_backoff_secs`) with jitter.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use thiserror::Error;

use crate::config::{OutboxConfig, SinkConfig};
use crate::store::Store;

#[derive(Debug, Error)]
pub enum ShipError {
    #[error("sink {sink}: cannot read {path}: {message}; check the file (PEM)")]
    Pem { sink: String, path: String, message: String },
    #[error("sink {sink}: TLS setup failed: {message}")]
    Tls { sink: String, message: String },
    #[error("sink {sink}: server name {name:?} is not valid; set server_name")]
    ServerName { sink: String, name: String },
    #[error("cannot start the thread of sink {0}")]
    Spawn(String),
}

/// Counters of one sink.
#[derive(Debug, Default)]
pub struct SinkCounters {
    /// Events confirmed delivered.
    pub sent: AtomicU64,
    /// Events sent again after a broken connection.
    pub retried: AtomicU64,
    /// Connection or write failures.
    pub failures: AtomicU64,
    /// Events left in the outbox when the sink stopped.
    pub spooled: AtomicU64,
    /// Events the receiver rejected for good (written to the dead-letter file).
    pub dead_lettered: AtomicU64,
}

/// What a sink reports at the end.
#[derive(Clone, Debug, Serialize)]
pub struct SinkReport {
    pub name: String,
    pub sent: u64,
    pub retried: u64,
    pub failures: u64,
    pub spooled: u64,
    pub dead_lettered: u64,
    pub cursor: u64,
}

/// Connection-level settings of a syslog sink.
struct Syslog {
    name: String,
    address: String,
    tls: TlsSetup,
    batch: usize,
    hostname: String,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref(),
        }
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(b).and_then(|()| s.flush()),
            Conn::Tls(s) => s.write_all(b).and_then(|()| s.flush()),
        }
    }

    /// Whether the receiver is still there: it never sends data, so a
    /// readable socket means EOF or an error.
    fn alive(&mut self) -> bool {
        if self.tcp().set_nonblocking(true).is_err() {
            return false;
        }
        let mut buf = [0u8; 512];
        let r = self.read(&mut buf);
        let alive = matches!(r, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock) || matches!(r, Ok(n) if n > 0);
        alive && self.tcp().set_nonblocking(false).is_ok()
    }

    /// Ends the session cleanly and waits (bounded) for the receiver to close:
    /// true when it did, i.e. it read everything.
    fn close(mut self, wait: Duration) -> bool {
        if let Conn::Tls(s) = &mut self {
            s.conn.send_close_notify();
            if s.conn.complete_io(&mut s.sock).is_err() {
                return false;
            }
        }
        let tcp = self.tcp();
        if tcp.shutdown(std::net::Shutdown::Write).is_err() || tcp.set_read_timeout(Some(wait)).is_err() {
            return false;
        }
        let mut buf = [0u8; 512];
        let deadline = Instant::now() + wait;
        let mut raw = tcp;
        while Instant::now() < deadline {
            match raw.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        false
    }
}

fn pem_error(sink: &str, path: &str, e: impl std::fmt::Display) -> ShipError {
    ShipError::Pem { sink: sink.to_string(), path: path.to_string(), message: e.to_string() }
}

fn tls_config(c: &SinkConfig) -> Result<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>), ShipError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&c.ca_file).map_err(|e| pem_error(&c.name, &c.ca_file, e))?;
    for cert in certs {
        let cert = cert.map_err(|e| pem_error(&c.name, &c.ca_file, e))?;
        roots.add(cert).map_err(|e| pem_error(&c.name, &c.ca_file, e))?;
    }
    if roots.is_empty() {
        return Err(pem_error(&c.name, &c.ca_file, "no certificate in it"));
    }
    let tls = |e: rustls::Error| ShipError::Tls { sink: c.name.clone(), message: e.to_string() };
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_root_certificates(roots);
    let config = if c.client_cert.is_empty() {
        builder.with_no_client_auth()
    } else {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.client_cert)
            .map_err(|e| pem_error(&c.name, &c.client_cert, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| pem_error(&c.name, &c.client_cert, e))?;
        let key = PrivateKeyDer::from_pem_file(&c.client_key).map_err(|e| pem_error(&c.name, &c.client_key, e))?;
        builder.with_client_auth_cert(chain, key).map_err(tls)?
    };
    let host = if c.server_name.is_empty() {
        c.address.rsplit_once(':').map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']')).unwrap_or("")
    } else {
        c.server_name.as_str()
    };
    let name = ServerName::try_from(host.to_string()).map_err(|_| ShipError::ServerName { sink: c.name.clone(), name: host.to_string() })?;
    Ok((Arc::new(config), name))
}

type TlsSetup = Option<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>)>;

/// A TCP connection to `address`, with TLS when configured (the handshake
/// completes here, so certificate errors show at connect).
fn connect(address: &str, tls: &TlsSetup) -> std::io::Result<Conn> {
    let addr = address.to_socket_addrs()?.next().ok_or_else(|| std::io::Error::other(format!("{address} resolves to no address")))?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_nodelay(true)?;
    tcp.set_write_timeout(Some(Duration::from_secs(30)))?;
    match tls {
        None => Ok(Conn::Plain(tcp)),
        Some((cfg, name)) => {
            let conn = rustls::ClientConnection::new(Arc::clone(cfg), name.clone()).map_err(std::io::Error::other)?;
            let mut s = rustls::StreamOwned::new(conn, tcp);
            s.conn.complete_io(&mut s.sock)?;
            Ok(Conn::Tls(Box::new(s)))
        }
    }
}

impl Syslog {
    fn connect(&self) -> std::io::Result<Conn> {
        connect(&self.address, &self.tls)
    }

    /// Frames one event: RFC 5425 `MSG-LEN SP SYSLOG-MSG`, the message RFC 5424
    /// with facility local0, severity informational, MSGID "ocsf", the event as MSG.
    fn frame(&self, out: &mut Vec<u8>, event: &[u8], now: &str) {
        let head = format!("<134>1 {now} {} apitap {} ocsf - ", self.hostname, std::process::id());
        let len = head.len() + event.len();
        out.extend_from_slice(format!("{len} ").as_bytes());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(event);
    }
}

fn rfc3339_now() -> String {
    let us = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
    crate::export::rfc3339_us(us)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "-".to_string())
}

/// A little jitter from the clock: no randomness source needed for spreading retries.
fn jitter(max_ms: u64) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    Duration::from_millis(u64::from(nanos) % max_ms.max(1))
}

/// The running sink threads.
pub struct Shipper {
    stop: Arc<AtomicBool>,
    threads: Vec<(String, Arc<SinkCounters>, JoinHandle<u64>)>,
}

impl Shipper {
    /// Starts one thread per sink. TLS settings are checked here, so a bad
    /// certificate file fails before any packet is read.
    pub fn start(store: Arc<Store>, sinks: &[SinkConfig], outbox: &OutboxConfig) -> Result<Shipper, ShipError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let host = hostname();
        for c in sinks {
            let tls = if c.tls { Some(tls_config(c)?) } else { None };
            let counters = Arc::new(SinkCounters::default());
            let (st, cn, stp, ob) = (Arc::clone(&store), Arc::clone(&counters), Arc::clone(&stop), outbox.clone());
            let thread = std::thread::Builder::new().name(format!("apitap-sink-{}", c.name));
            let h = if c.kind == "syslog" {
                let sink = Syslog { name: c.name.clone(), address: c.address.clone(), tls, batch: c.batch_events, hostname: host.clone() };
                thread.spawn(move || run_sink(&sink, &st, &cn, &stp, &ob))
            } else {
                let dead_letter = if outbox.dead_letter.is_empty() {
                    let mut p = store.path().as_os_str().to_owned();
                    p.push(".dead-letter.jsonl");
                    std::path::PathBuf::from(p)
                } else {
                    std::path::PathBuf::from(&outbox.dead_letter)
                };
                let sink = HttpSink::new(c, tls, host.clone(), dead_letter);
                thread.spawn(move || run_http_sink(&sink, &st, &cn, &stp, &ob))
            }
            .map_err(|_| ShipError::Spawn(c.name.clone()))?;
            threads.push((c.name.clone(), counters, h));
        }
        Ok(Shipper { stop, threads })
    }

    /// Whether any sink is configured.
    pub fn is_empty(&self) -> bool {
        self.threads.is_empty()
    }

    /// Live counters, by sink name.
    pub fn counters(&self) -> Vec<(String, Arc<SinkCounters>)> {
        self.threads.iter().map(|(n, c, _)| (n.clone(), Arc::clone(c))).collect()
    }

    /// Lets every sink deliver what is spooled (up to `outbox.drain_timeout_secs`), then stops them.
    pub fn finish(self) -> Vec<SinkReport> {
        self.stop.store(true, Relaxed);
        let mut out = Vec::new();
        for (name, c, h) in self.threads {
            let cursor = h.join().unwrap_or(0);
            out.push(SinkReport {
                name,
                sent: c.sent.load(Relaxed),
                retried: c.retried.load(Relaxed),
                failures: c.failures.load(Relaxed),
                spooled: c.spooled.load(Relaxed),
                dead_lettered: c.dead_lettered.load(Relaxed),
                cursor,
            });
        }
        out
    }
}

/// The lowest cursor of all configured sinks: everything up to it can go.
fn trim_point(store: &Store, names: &[String]) -> u64 {
    names.iter().map(|n| store.outbox_cursor(n).unwrap_or(0)).min().unwrap_or(0)
}

fn run_sink(sink: &Syslog, store: &Store, c: &SinkCounters, stop: &AtomicBool, ob: &OutboxConfig) -> u64 {
    let mut cursor = store.outbox_cursor(&sink.name).unwrap_or(0);
    let mut sent_upto = cursor;
    // (last seq of a write, when it was written) not yet confirmed
    let mut unconfirmed: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut conn: Option<Conn> = None;
    let mut backoff = Duration::from_millis(100);
    let max_backoff = Duration::from_secs(ob.max_backoff_secs.max(1));
    let confirm = Duration::from_secs(ob.confirm_secs);
    let mut drain_deadline: Option<Instant> = None;
    let mut last_cursor_write = Instant::now();
    let mut buf = Vec::new();
    let mut logged_failure = false;
    let persist = |cursor: u64| {
        let _ = store.set_outbox_cursor(&sink.name, cursor);
    };
    loop {
        let stopping = stop.load(Relaxed);
        if stopping && drain_deadline.is_none() {
            drain_deadline = Some(Instant::now() + Duration::from_secs(ob.drain_timeout_secs));
        }
        let last = store.outbox_last();
        if stopping && sent_upto >= last {
            // everything is sent: a clean close confirms it all
            if let Some(cn) = conn.take() {
                if cn.close(Duration::from_secs(5)) {
                    c.sent.fetch_add(sent_upto - cursor, Relaxed);
                    cursor = sent_upto;
                }
            }
            if cursor >= last || drain_deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            // the close did not confirm: send the unconfirmed part again
            c.retried.fetch_add(sent_upto - cursor, Relaxed);
            sent_upto = cursor;
            unconfirmed.clear();
        }
        if drain_deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        // confirm what stayed long enough on a healthy connection
        if let Some(cn) = conn.as_mut() {
            if !unconfirmed.is_empty() && !cn.alive() {
                conn = None;
            } else {
                while let Some(&(seq, at)) = unconfirmed.front() {
                    if at.elapsed() < confirm {
                        break;
                    }
                    c.sent.fetch_add(seq - cursor, Relaxed);
                    cursor = seq;
                    unconfirmed.pop_front();
                }
            }
        }
        if conn.is_none() && sent_upto > cursor {
            // a broken connection: what was not confirmed goes again
            c.retried.fetch_add(sent_upto - cursor, Relaxed);
            sent_upto = cursor;
            unconfirmed.clear();
        }
        if last_cursor_write.elapsed() >= Duration::from_millis(200) {
            persist(cursor);
            last_cursor_write = Instant::now();
        }
        let batch = store.outbox_read(sent_upto, sink.batch).unwrap_or_default();
        if batch.is_empty() {
            std::thread::sleep(Duration::from_millis(if stopping { 5 } else { 20 }));
            continue;
        }
        if conn.is_none() {
            match sink.connect() {
                Ok(cn) => {
                    conn = Some(cn);
                    backoff = Duration::from_millis(100);
                    if logged_failure {
                        eprintln!("apitap: sink {}: connected to {} again", sink.name, sink.address);
                        logged_failure = false;
                    }
                }
                Err(e) => {
                    c.failures.fetch_add(1, Relaxed);
                    if !logged_failure {
                        eprintln!("apitap: sink {}: cannot deliver to {} ({e}); events stay in the outbox and are retried", sink.name, sink.address);
                        logged_failure = true;
                    }
                    std::thread::sleep(backoff + jitter(backoff.as_millis() as u64 / 2 + 1));
                    backoff = (backoff * 2).min(max_backoff);
                    continue;
                }
            }
        }
        buf.clear();
        let now = rfc3339_now();
        for (_, ev) in &batch {
            sink.frame(&mut buf, ev, &now);
        }
        let last_seq = batch.last().map(|(s, _)| *s).unwrap_or(sent_upto);
        match conn.as_mut().map(|cn| cn.write_all(&buf)) {
            Some(Ok(())) => {
                sent_upto = last_seq;
                unconfirmed.push_back((last_seq, Instant::now()));
            }
            _ => {
                c.failures.fetch_add(1, Relaxed);
                conn = None;
            }
        }
    }
    persist(cursor);
    c.spooled.store(store.outbox_last().saturating_sub(cursor), Relaxed);
    cursor
}

/// Deletes outbox entries every sink has delivered (called by the owner of the store).
pub fn trim(store: &Store, sinks: &[SinkConfig]) {
    let names: Vec<String> = sinks.iter().map(|s| s.name.clone()).collect();
    if names.is_empty() {
        return;
    }
    let upto = trim_point(store, &names);
    if upto > 0 {
        let _ = store.outbox_trim(upto);
    }
}

// ---------------------------------------------------------------------------
// HTTP sinks: Splunk HEC and Elasticsearch _bulk
// ---------------------------------------------------------------------------

/// Largest response head and body read from an HTTP receiver.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
const MAX_RESPONSE_BODY: usize = 16 << 20;

enum HttpKind {
    Hec { token: String },
    Elastic { index: String },
}

struct HttpSink {
    name: String,
    address: String,
    host_header: String,
    path: String,
    tls: TlsSetup,
    batch: usize,
    kind: HttpKind,
    hostname: String,
    dead_letter: std::path::PathBuf,
}

/// What a receiver answered for one batch.
enum Verdict {
    /// Everything delivered (Elasticsearch: created or already there).
    Delivered,
    /// Try the whole batch again later (429, 5xx, or some bulk items so).
    Retry(String),
    /// These batch positions were rejected for good, with the reason; the rest delivered.
    Rejected(Vec<(usize, String)>),
}

fn event_id(ev: &serde_json::Value) -> String {
    ev["metadata"]["uid"].as_str().or_else(|| ev["event"]["id"].as_str()).unwrap_or("").to_string()
}

impl HttpSink {
    fn new(c: &SinkConfig, tls: TlsSetup, hostname: String, dead_letter: std::path::PathBuf) -> HttpSink {
        let kind = if c.kind == "hec" { HttpKind::Hec { token: c.token.clone() } } else { HttpKind::Elastic { index: c.index.clone() } };
        let path = if !c.path.is_empty() {
            c.path.clone()
        } else if c.kind == "hec" {
            "/services/collector/event".to_string()
        } else {
            "/_bulk".to_string()
        };
        let host_header = if c.server_name.is_empty() { c.address.clone() } else { c.server_name.clone() };
        HttpSink { name: c.name.clone(), address: c.address.clone(), host_header, path, tls, batch: c.batch_events, kind, hostname, dead_letter }
    }

    /// The request body of a batch.
    fn body(&self, batch: &[(u64, Vec<u8>)]) -> (Vec<u8>, &'static str) {
        let mut out = Vec::new();
        match &self.kind {
            HttpKind::Hec { .. } => {
                for (_, ev) in batch {
                    let v: serde_json::Value = serde_json::from_slice(ev).unwrap_or(serde_json::Value::Null);
                    let ms = v["time"].as_u64().unwrap_or(0);
                    out.extend_from_slice(
                        format!("{{\"time\":{}.{:03},\"host\":{},\"source\":\"apitap\",\"sourcetype\":\"_json\",\"event\":", ms / 1000, ms % 1000, serde_json::Value::String(self.hostname.clone()))
                            .as_bytes(),
                    );
                    out.extend_from_slice(ev);
                    out.extend_from_slice(b"}\n");
                }
                (out, "application/json")
            }
            HttpKind::Elastic { index } => {
                for (_, ev) in batch {
                    let v: serde_json::Value = serde_json::from_slice(ev).unwrap_or(serde_json::Value::Null);
                    let action = serde_json::json!({ "create": { "_index": index, "_id": event_id(&v) } });
                    out.extend_from_slice(action.to_string().as_bytes());
                    out.push(b'\n');
                    out.extend_from_slice(ev);
                    out.push(b'\n');
                }
                (out, "application/x-ndjson")
            }
        }
    }

    fn post(&self, conn: &mut Conn, body: &[u8], ctype: &str) -> std::io::Result<(u16, Vec<u8>, bool)> {
        let auth = match &self.kind {
            HttpKind::Hec { token } => format!("Authorization: Splunk {token}\r\n"),
            HttpKind::Elastic { .. } => String::new(),
        };
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: apitap/{}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{auth}Connection: keep-alive\r\n\r\n",
            self.path,
            self.host_header,
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        conn.write_all(&req)?;
        read_response(conn)
    }

    fn verdict(&self, status: u16, body: &[u8], n: usize) -> Verdict {
        let excerpt = || String::from_utf8_lossy(body.get(..body.len().min(300)).unwrap_or_default()).into_owned();
        if status == 429 || status >= 500 {
            return Verdict::Retry(format!("HTTP {status}: {}", excerpt()));
        }
        if !(200..300).contains(&status) {
            let reason = format!("HTTP {status}: {}", excerpt());
            return Verdict::Rejected((0..n).map(|i| (i, reason.clone())).collect());
        }
        let HttpKind::Elastic { .. } = self.kind else { return Verdict::Delivered };
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
        if v["errors"] != serde_json::Value::Bool(true) {
            return Verdict::Delivered;
        }
        let mut rejected = Vec::new();
        for (i, item) in v["items"].as_array().map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
            let r = &item["create"];
            match r["status"].as_u64().unwrap_or(0) {
                200..=299 | 409 => {}
                429 | 500..=599 => return Verdict::Retry(format!("bulk item status {}", r["status"])),
                st => rejected.push((i, format!("bulk item status {st}: {}", r["error"]))),
            }
        }
        if rejected.is_empty() { Verdict::Delivered } else { Verdict::Rejected(rejected) }
    }

    fn dead_letter(&self, batch: &[(u64, Vec<u8>)], rejected: &[(usize, String)]) {
        let mut lines = Vec::new();
        for (i, reason) in rejected {
            if let Some((_, ev)) = batch.get(*i) {
                let v: serde_json::Value = serde_json::from_slice(ev).unwrap_or(serde_json::Value::Null);
                let line = serde_json::json!({ "sink": self.name, "reason": reason, "time": rfc3339_now(), "event": v });
                lines.extend_from_slice(line.to_string().as_bytes());
                lines.push(b'\n');
            }
        }
        let written = std::fs::OpenOptions::new().create(true).append(true).open(&self.dead_letter).and_then(|mut f| f.write_all(&lines));
        if let Err(e) = written {
            eprintln!("apitap: sink {}: cannot write the dead-letter file {} ({e}); {} rejected events are lost", self.name, self.dead_letter.display(), rejected.len());
        }
    }
}

/// Reads one HTTP/1.1 response: status, body (Content-Length, chunked or
/// until close), and whether the connection stays open.
fn read_response(conn: &mut Conn) -> std::io::Result<(u16, Vec<u8>, bool)> {
    conn.tcp().set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let (status, head_len, length, chunked, close) = loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(bad("the receiver closed the connection before answering"));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = resp.code.unwrap_or(0);
                let find = |name: &str| resp.headers.iter().find(|h| h.name.eq_ignore_ascii_case(name)).map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase());
                let length = find("content-length").and_then(|v| v.trim().parse::<usize>().ok());
                let chunked = find("transfer-encoding").is_some_and(|v| v.contains("chunked"));
                let close = find("connection").is_some_and(|v| v.contains("close"));
                break (status, len, length, chunked, close);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE_HEAD => {}
            Ok(httparse::Status::Partial) => return Err(bad("response head too large")),
            Err(e) => return Err(bad(&format!("not an HTTP response ({e})"))),
        }
    };
    let mut body: Vec<u8> = buf.split_off(head_len);
    if let Some(len) = length {
        if len > MAX_RESPONSE_BODY {
            return Err(bad("response body too large"));
        }
        while body.len() < len {
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                return Err(bad("response body cut short"));
            }
            body.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        body.truncate(len);
        return Ok((status, body, !close));
    }
    if chunked {
        let mut out = Vec::new();
        let mut raw = body;
        loop {
            // one chunk: size line, data, CRLF
            if let Some(pos) = raw.windows(2).position(|w| w == b"\r\n") {
                let size_line = String::from_utf8_lossy(raw.get(..pos).unwrap_or_default()).into_owned();
                let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16).map_err(|_| bad("bad chunk size"))?;
                if size == 0 {
                    return Ok((status, out, !close));
                }
                if out.len() + size > MAX_RESPONSE_BODY {
                    return Err(bad("response body too large"));
                }
                if raw.len() >= pos + 2 + size + 2 {
                    out.extend_from_slice(raw.get(pos + 2..pos + 2 + size).unwrap_or_default());
                    raw.drain(..pos + 2 + size + 2);
                    continue;
                }
            }
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                return Err(bad("chunked body cut short"));
            }
            raw.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }
    // no length: the body ends when the receiver closes
    loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok((status, body, false));
        }
        if body.len() + n > MAX_RESPONSE_BODY {
            return Err(bad("response body too large"));
        }
        body.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

fn run_http_sink(sink: &HttpSink, store: &Store, c: &SinkCounters, stop: &AtomicBool, ob: &OutboxConfig) -> u64 {
    let mut cursor = store.outbox_cursor(&sink.name).unwrap_or(0);
    let mut conn: Option<Conn> = None;
    let mut backoff = Duration::from_millis(100);
    let max_backoff = Duration::from_secs(ob.max_backoff_secs.max(1));
    let mut drain_deadline: Option<Instant> = None;
    let mut logged_failure = false;
    loop {
        let stopping = stop.load(Relaxed);
        if stopping && drain_deadline.is_none() {
            drain_deadline = Some(Instant::now() + Duration::from_secs(ob.drain_timeout_secs));
        }
        if (stopping && cursor >= store.outbox_last()) || drain_deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let batch = store.outbox_read(cursor, sink.batch).unwrap_or_default();
        let Some(&(last_seq, _)) = batch.last() else {
            std::thread::sleep(Duration::from_millis(if stopping { 5 } else { 20 }));
            continue;
        };
        let (body, ctype) = sink.body(&batch);
        let mut fail = |why: String, c: &SinkCounters| {
            c.failures.fetch_add(1, Relaxed);
            if !logged_failure {
                eprintln!("apitap: sink {}: cannot deliver to {} ({why}); events stay in the outbox and are retried", sink.name, sink.address);
                logged_failure = true;
            }
        };
        if conn.is_none() {
            match connect(&sink.address, &sink.tls) {
                Ok(cn) => conn = Some(cn),
                Err(e) => {
                    fail(e.to_string(), c);
                    std::thread::sleep(backoff + jitter(backoff.as_millis() as u64 / 2 + 1));
                    backoff = (backoff * 2).min(max_backoff);
                    continue;
                }
            }
        }
        let answer = match conn.as_mut() {
            Some(cn) => sink.post(cn, &body, ctype),
            None => continue,
        };
        let verdict = match answer {
            Ok((status, resp, keep)) => {
                if !keep {
                    conn = None;
                }
                sink.verdict(status, &resp, batch.len())
            }
            Err(e) => {
                conn = None;
                Verdict::Retry(e.to_string())
            }
        };
        match verdict {
            Verdict::Retry(why) => {
                fail(why, c);
                c.retried.fetch_add(batch.len() as u64, Relaxed);
                std::thread::sleep(backoff + jitter(backoff.as_millis() as u64 / 2 + 1));
                backoff = (backoff * 2).min(max_backoff);
                continue;
            }
            Verdict::Delivered => {
                c.sent.fetch_add(batch.len() as u64, Relaxed);
            }
            Verdict::Rejected(rejected) => {
                sink.dead_letter(&batch, &rejected);
                c.dead_lettered.fetch_add(rejected.len() as u64, Relaxed);
                c.sent.fetch_add((batch.len() - rejected.len().min(batch.len())) as u64, Relaxed);
            }
        }
        if logged_failure {
            eprintln!("apitap: sink {}: delivering to {} again", sink.name, sink.address);
            logged_failure = false;
        }
        backoff = Duration::from_millis(100);
        cursor = last_seq;
        let _ = store.set_outbox_cursor(&sink.name, cursor);
    }
    let _ = store.set_outbox_cursor(&sink.name, cursor);
    c.spooled.store(store.outbox_last().saturating_sub(cursor), Relaxed);
    cursor
}
