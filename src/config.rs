//! `sensor.toml`: the schema, its defaults and its validation.
//!
//! Every setting has a default here, and `sensor.toml` at the top of the
//! repository documents the same defaults (a test keeps the two equal).
//! Unknown keys are errors, so a typo never silently falls back to a default.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use thiserror::Error;

use crate::decode::DecodeLimits;
use crate::flow::FlowLimits;

/// Errors from loading or validating the configuration.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}; check the path given to --config")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}; see the documented sensor.toml for every key and its default")]
    Parse { path: PathBuf, message: String },
    #[error("config setting {key} = {value} is out of range: {hint}")]
    Invalid { key: &'static str, value: String, hint: &'static str },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub store: StoreConfig,
    pub output: OutputConfig,
    pub pipeline: PipelineConfig,
    pub decode: DecodeConfig,
    pub flow: FlowConfig,
    pub http: HttpConfig,
    pub http2: Http2Config,
    pub templates: TemplatesConfig,
    pub auth: crate::analyze::auth::AuthConfig,
    pub sensitive: SensitiveConfig,
    pub exposure: crate::analyze::context::ExposureConfig,
    /// Business tags by host/path globs: `[[tags]] host = "*.example.com" path = "/admin/**" owner = "…" data_classification = "…" tier = "…"`.
    pub tags: Vec<crate::analyze::context::TagRule>,
    pub capture: CaptureConfig,
    pub metrics: MetricsConfig,
    pub outbox: OutboxConfig,
    pub findings: FindingsConfig,
    pub tls: TlsConfig,
    /// SIEM sinks fed from the durable outbox: `[[sinks]] name = "siem" kind = "syslog" address = "siem.example.com:6514" ca_file = "/etc/apitap/siem-ca.pem"`.
    pub sinks: Vec<SinkConfig>,
}

/// TLS sessions.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// NSS key log (`SSLKEYLOGFILE` format) with the secrets of sessions to
    /// decrypt; "" = none (TLS services are still inventoried from their handshakes).
    pub keylog: PathBuf,
}

/// Findings: spec comparison, attack detectors, posture checks, drift.
/// Windows and times are packet time.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FindingsConfig {
    /// OpenAPI 3.x (or Swagger 2.0) documents, JSON or YAML: endpoints not in
    /// them are `shadow_api`, deprecated ones still called are `zombie_api`.
    pub specs: Vec<PathBuf>,
    /// Path prefixes whose endpoints are retired (e.g. "/v1/"): still called = `zombie_api`.
    pub sunset_prefixes: Vec<String>,
    /// An endpoint called again after this many days of silence is `zombie_api` (0 = off).
    pub zombie_silent_days: u64,
    /// Baseline (saved with `apitap baseline save NAME`) to report drift
    /// against while running; "" = none.
    pub baseline: String,
    /// Length of the detectors' windows.
    pub window_secs: u64,
    /// Clients (or client/endpoint pairs) each detector tracks at once; new
    /// ones are not tracked while full (counted as `detector_table_full`).
    pub max_tracked: usize,
    /// `bola_enumeration`: distinct object ids of one endpoint from one client in a window.
    pub bola_min_ids: usize,
    /// `credential_stuffing`: failed logins (401/403) from one client in a window…
    pub stuffing_min_failures: u64,
    /// …or this many failed logins against one login endpoint in a window…
    pub stuffing_spread_min_failures: u64,
    /// …spread over at least this many clients.
    pub stuffing_spread_min_clients: usize,
    /// `recon_scanning`: distinct 404 paths from one client in a window…
    pub recon_min_paths: usize,
    /// …under at least this many distinct parent directories.
    pub recon_min_dirs: usize,
    /// `rate_spike` / `error_spike` fire only after this many windows of baseline.
    pub spike_min_windows: u64,
    /// A window is a spike at this multiple of the learned mean…
    pub spike_factor: f64,
    /// …and at least this many requests (errors for `error_spike`).
    pub spike_min_requests: u64,
}

impl Default for FindingsConfig {
    fn default() -> Self {
        FindingsConfig {
            specs: Vec::new(),
            sunset_prefixes: Vec::new(),
            zombie_silent_days: 90,
            baseline: String::new(),
            window_secs: 60,
            max_tracked: 100_000,
            bola_min_ids: 50,
            stuffing_min_failures: 20,
            stuffing_spread_min_failures: 100,
            stuffing_spread_min_clients: 10,
            recon_min_paths: 10,
            recon_min_dirs: 4,
            spike_min_windows: 10,
            spike_factor: 10.0,
            spike_min_requests: 200,
        }
    }
}

/// The durable outbox between the pipeline and the SIEM sinks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Events spooled (written, not yet delivered by every sink). When full,
    /// `replay` waits for the sinks; `capture` drops the newest events and counts them.
    pub max_events: u64,
    /// Seconds a sent event must stay on a healthy connection before it counts
    /// as delivered (syslog has no acknowledgement: after a broken connection
    /// everything sent within this window is sent again).
    pub confirm_secs: u64,
    /// Seconds `replay` and a stopping `capture` wait for sinks to deliver what
    /// is spooled; the rest stays in the outbox for the next start.
    pub drain_timeout_secs: u64,
    /// Longest wait between retries of a failing sink (exponential backoff with jitter).
    pub max_backoff_secs: u64,
    /// File (JSON lines) for events a receiver rejected permanently (HTTP 4xx),
    /// with the reason; "" = `<store.path>.dead-letter.jsonl`.
    pub dead_letter: String,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig { max_events: 1_000_000, confirm_secs: 2, drain_timeout_secs: 60, max_backoff_secs: 30, dead_letter: String::new() }
    }
}

/// One SIEM sink.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Unique name (keeps the sink's place in the outbox across restarts).
    pub name: String,
    /// "syslog": RFC 5424 messages, RFC 5425 octet-counted framing;
    /// "hec": Splunk HTTP Event Collector; "elasticsearch": the `_bulk` API.
    pub kind: String,
    /// host:port of the receiver.
    pub address: String,
    /// TLS (RFC 5425) with certificate verification; false = plain TCP.
    #[serde(default = "yes")]
    pub tls: bool,
    /// PEM file of the CA(s) that signed the receiver's certificate (required with TLS).
    #[serde(default)]
    pub ca_file: String,
    /// Client certificate chain and key (PEM) when the receiver asks for one.
    #[serde(default)]
    pub client_cert: String,
    #[serde(default)]
    pub client_key: String,
    /// Name checked against the receiver's certificate (default: the host of `address`).
    #[serde(default)]
    pub server_name: String,
    /// Events per write (per HTTP request for hec and elasticsearch).
    #[serde(default = "default_sink_batch")]
    pub batch_events: usize,
    /// HTTP sinks: the request path (default: /services/collector/event for
    /// hec, /_bulk for elasticsearch).
    #[serde(default)]
    pub path: String,
    /// hec: the HEC token (sent as `Authorization: Splunk <token>`); never logged.
    #[serde(default)]
    pub token: String,
    /// elasticsearch: the index events are created in.
    #[serde(default = "default_index")]
    pub index: String,
}

fn default_index() -> String {
    "apitap-events".to_string()
}

fn yes() -> bool {
    true
}

fn default_sink_batch() -> usize {
    500
}


/// Live capture (`apitap capture`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Interface captured when `-i` is not given ("" = none: `-i` is then required).
    pub interface: String,
    /// Bytes kept of each packet.
    pub snaplen: u32,
    /// Promiscuous mode (a mirror port delivers frames for other hosts).
    pub promiscuous: bool,
    /// Kernel capture buffer, MiB: what absorbs bursts while the reader is busy.
    pub buffer_mib: u32,
    /// Milliseconds libpcap waits to fill a buffer before delivering packets
    /// (also how often the capture loop looks at signals and timers).
    pub timeout_ms: u32,
    /// Deliver every packet at once (lower latency, more wake-ups).
    pub immediate: bool,
    /// BPF filter applied in the kernel ("" = every packet); `-f` overrides it.
    pub filter: String,
    /// After the capture handle is open, switch to this user (its primary group)
    /// and give the store and event files to it. "" = keep the user; when that
    /// is root, every capability is dropped instead, so no packet is ever parsed
    /// with root privileges.
    pub user: String,
    /// Seconds between health lines in the log (0 = none).
    pub health_interval_secs: u64,
    /// Milliseconds a partly filled batch may wait in the reader before it is
    /// handed to its worker (latency on quiet links).
    pub batch_max_wait_ms: u64,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            interface: String::new(),
            snaplen: 262_144,
            promiscuous: true,
            buffer_mib: 64,
            timeout_ms: 100,
            immediate: false,
            filter: String::new(),
            user: String::new(),
            health_interval_secs: 60,
            batch_max_wait_ms: 200,
        }
    }
}

/// Prometheus metrics endpoint.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the Prometheus text endpoint (`GET /metrics`), e.g.
    /// "127.0.0.1:9750"; "" = off.
    pub listen: String,
}

/// Sensitive-data scanning budgets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensitiveConfig {
    /// Bytes a compressed body may expand to (bomb guard).
    pub max_decompressed_bytes: usize,
    /// Bytes of each (decompressed) body scanned.
    pub max_scan_bytes: usize,
    /// Findings kept per message.
    pub max_findings: usize,
    /// JSON nesting followed.
    pub max_json_depth: usize,
    /// Bodies of an endpoint's first this many transactions (per worker) are all scanned…
    pub body_scan_first: u32,
    /// …and after that one in this many (headers, query and path are always scanned).
    pub body_scan_every: u32,
}

impl Default for SensitiveConfig {
    fn default() -> Self {
        SensitiveConfig {
            max_decompressed_bytes: 1 << 20,
            max_scan_bytes: 64 * 1024,
            max_findings: 64,
            max_json_depth: 32,
            body_scan_first: 64,
            body_scan_every: 16,
        }
    }
}

/// Path templating: learning thresholds, user rules, assets.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TemplatesConfig {
    /// Cardinality learning of free-text path segments.
    pub learn: crate::inventory::templates::LearnConfig,
    /// Explicit templates that always win, e.g. `{ host = "api.example.com", template = "/v2/users/{id}" }`
    /// (`host` may be omitted or `*` for every host).
    pub rules: Vec<UserTemplate>,
    /// Path globs whose requests are not inventoried (`*` one segment, `**` any rest).
    pub ignore: Vec<String>,
    /// Static assets (images, fonts, scripts, styles): "group" into `{file}` or "skip".
    pub assets: AssetPolicy,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTemplate {
    #[serde(default)]
    pub host: Option<String>,
    pub template: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssetPolicy {
    #[default]
    Group,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Directory of the RocksDB inventory store.
    pub path: PathBuf,
    /// Endpoint updates are written to the store at least this often (seconds of wall time).
    pub flush_interval_secs: u64,
    /// ... or when this many endpoint records are dirty.
    pub flush_max_dirty: usize,
    /// Compression of the store's tables on disk.
    pub compression: StoreCompression,
}

/// How the store compresses its tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreCompression {
    #[default]
    Lz4,
    Zstd,
    None,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { path: PathBuf::from("apitap-store"), flush_interval_secs: 5, flush_max_dirty: 10_000, compression: StoreCompression::Lz4 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Where JSON-lines events go: a file path, "-" for stdout, or "" for nowhere.
    pub events: String,
    /// Emit one OCSF HTTP Activity event per request/response pair.
    pub transactions: bool,
    /// Emit an OCSF inventory event (Cloud Resources Inventory Info, 5023) when
    /// an endpoint is first discovered and when it changes (a new auth scheme,
    /// sensitive-data kind, client class or protocol).
    pub inventory_events: bool,
    /// Emit per-endpoint call summaries (HTTP Activity with `count`,
    /// `start_time`, `end_time`) at every store flush: the SIEM-friendly
    /// alternative to one event per transaction.
    pub call_summaries: bool,
    /// Event schema: "ocsf" (OCSF 1.8.0) or "ecs" (Elastic Common Schema, the same events mapped).
    pub format: EventFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    #[default]
    Ocsf,
    Ecs,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig { events: String::new(), transactions: false, inventory_events: true, call_summaries: false, format: EventFormat::Ocsf }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Worker threads; 0 means one per available core.
    pub workers: usize,
    /// Packets per batch handed from the reader to a worker.
    pub batch_packets: usize,
    /// Capacity of each worker's queue, in batches.
    pub queue_batches: usize,
    /// How connections are given to workers.
    pub balance: Balance,
}

/// How connections are given to workers (`pipeline.balance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Balance {
    /// A connection opened in view goes to the worker with the least recent
    /// work; the others by the symmetric hash.
    Load,
    /// Every connection by the symmetric hash of its addresses and ports.
    Hash,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig { workers: 0, batch_packets: 256, queue_batches: 64, balance: Balance::Load }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeConfig {
    /// IP datagrams being reassembled from fragments at once.
    pub max_frag_datagrams: usize,
    /// Bytes held for IP fragment reassembly in total.
    pub max_frag_bytes: usize,
    /// Seconds (packet time) before an incomplete datagram is dropped.
    pub frag_timeout_secs: u64,
    /// Nested tunnels (VLAN/MPLS excluded) decapsulated before giving up.
    pub max_tunnel_depth: u8,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        let d = DecodeLimits::default();
        DecodeConfig {
            max_frag_datagrams: d.max_frag_datagrams,
            max_frag_bytes: d.max_frag_bytes,
            frag_timeout_secs: d.frag_timeout_us / 1_000_000,
            max_tunnel_depth: d.max_tunnel_depth,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowConfig {
    /// TCP connections tracked by the sensor, split evenly over the workers;
    /// the least recently active is evicted beyond it.
    pub max_flows: usize,
    /// Out-of-order bytes buffered per direction of a connection.
    pub max_ooo_bytes_per_dir: usize,
    /// Out-of-order segments buffered per direction of a connection.
    pub max_ooo_segments_per_dir: usize,
    /// Out-of-order bytes buffered across all connections (split over the workers).
    pub max_ooo_bytes_total: usize,
    /// Seconds (packet time) of silence before an open connection is closed.
    pub idle_timeout_secs: u64,
    /// Seconds (packet time) a closed connection is kept for late packets.
    pub closed_timeout_secs: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        let f = FlowLimits::default();
        FlowConfig {
            max_flows: f.max_flows,
            max_ooo_bytes_per_dir: f.max_ooo_bytes_per_dir,
            max_ooo_segments_per_dir: f.max_ooo_segments_per_dir,
            max_ooo_bytes_total: f.max_ooo_bytes_total,
            idle_timeout_secs: f.idle_timeout_us / 1_000_000,
            closed_timeout_secs: f.closed_timeout_us / 1_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Bytes of one HTTP/1 message head (request/status line and headers).
    pub max_header_bytes: usize,
    /// Header fields kept per message.
    pub max_headers: usize,
    /// Requests awaiting their response on one connection (pipelining).
    pub max_pending_requests: usize,
    /// Bytes the protocol parsers hold across all connections (split over the
    /// workers): partial heads, requests awaiting their responses, HTTP/2
    /// streams and header tables, TLS records. A connection that grows past
    /// it frees what it holds for pairing (its open requests reported without
    /// a response; `proto::Connection::shed`), counted in
    /// `parser_bytes_limit_hit`.
    pub max_parser_bytes_total: usize,
    /// Bytes of each body kept for analysis; the rest is counted and skipped, never buffered.
    pub body_scan_bytes: usize,
    /// Bytes scanned for the next message head after a gap or a parse error before the
    /// direction is given up.
    pub resync_scan_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_header_bytes: 64 * 1024,
            max_headers: 128,
            max_pending_requests: 128,
            max_parser_bytes_total: 64 * 1024 * 1024,
            body_scan_bytes: 16 * 1024,
            resync_scan_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http2Config {
    /// Open streams tracked per connection; the oldest is reported and dropped beyond it.
    pub max_streams_per_connection: usize,
    /// Decoded bytes of one header list (name + value + 32 per field, RFC 9113 §6.5.2).
    pub max_header_list_bytes: usize,
    /// Encoded bytes of one header block (HEADERS/PUSH_PROMISE + CONTINUATION).
    pub max_header_block_bytes: usize,
    /// CONTINUATION frames in one header block.
    pub max_continuation_frames: usize,
    /// HPACK dynamic table bytes kept per direction, whatever the peer allows.
    pub max_hpack_table_bytes: usize,
    /// Largest non-DATA frame payload buffered; larger ones are skipped.
    pub max_frame_bytes: usize,
    /// Frames parsed per connection (0 = no limit); later frames are skipped.
    pub max_frames_per_connection: u64,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            max_streams_per_connection: 1024,
            max_header_list_bytes: 256 * 1024,
            max_header_block_bytes: 256 * 1024,
            max_continuation_frames: 64,
            max_hpack_table_bytes: 64 * 1024,
            max_frame_bytes: 1 << 20,
            max_frames_per_connection: 0,
        }
    }
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_path_buf(), message },
            other => other,
        })
    }

    /// Parses and validates configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { path: PathBuf::new(), message: e.to_string() })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks ranges that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn at_least(key: &'static str, v: usize, min: usize, hint: &'static str) -> Result<(), ConfigError> {
            if v < min {
                return Err(ConfigError::Invalid { key, value: v.to_string(), hint });
            }
            Ok(())
        }
        at_least("pipeline.batch_packets", self.pipeline.batch_packets, 1, "use at least 1 (256 is a good value)")?;
        at_least("pipeline.queue_batches", self.pipeline.queue_batches, 1, "use at least 1 (64 is a good value)")?;
        if self.pipeline.workers > 256 {
            return Err(ConfigError::Invalid {
                key: "pipeline.workers",
                value: self.pipeline.workers.to_string(),
                hint: "use 0 (one per core) or at most 256",
            });
        }
        at_least("flow.max_flows", self.flow.max_flows, 16, "use at least 16")?;
        at_least("http.max_header_bytes", self.http.max_header_bytes, 256, "use at least 256")?;
        at_least("http.max_headers", self.http.max_headers, 8, "use at least 8")?;
        at_least("http.max_pending_requests", self.http.max_pending_requests, 1, "use at least 1")?;
        at_least("http.max_parser_bytes_total", self.http.max_parser_bytes_total, 1 << 20, "use at least 1048576 (the default, 67108864, suits most sensors)")?;
        at_least("http2.max_streams_per_connection", self.http2.max_streams_per_connection, 1, "use at least 1")?;
        at_least("http2.max_frame_bytes", self.http2.max_frame_bytes, 16_384, "use at least 16384 (the HTTP/2 minimum frame size)")?;
        at_least("http2.max_header_list_bytes", self.http2.max_header_list_bytes, 1024, "use at least 1024")?;
        if let Err(bad) = crate::analyze::context::Exposure::new(&self.exposure) {
            return Err(ConfigError::Invalid { key: "exposure", value: bad, hint: "give networks as a.b.c.d/len or x::/len" });
        }
        if !self.metrics.listen.is_empty() && self.metrics.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Invalid {
                key: "metrics.listen",
                value: self.metrics.listen.clone(),
                hint: "give an IP address and port such as 127.0.0.1:9750, or \"\" for no metrics",
            });
        }
        at_least("capture.snaplen", self.capture.snaplen as usize, 64, "use at least 64 (262144 keeps whole packets)")?;
        at_least("capture.timeout_ms", self.capture.timeout_ms as usize, 1, "use at least 1 (100 is a good value)")?;
        let mut names = std::collections::HashSet::new();
        for sink in &self.sinks {
            let bad = |hint: &'static str| ConfigError::Invalid { key: "sinks", value: sink.name.clone(), hint };
            if sink.name.is_empty() || !names.insert(sink.name.clone()) {
                return Err(bad("give every sink a unique, non-empty name"));
            }
            if !matches!(sink.kind.as_str(), "syslog" | "hec" | "elasticsearch") {
                return Err(bad("kind must be \"syslog\", \"hec\" or \"elasticsearch\""));
            }
            if sink.kind == "hec" && sink.token.is_empty() {
                return Err(bad("a hec sink needs token"));
            }
            if sink.address.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()) {
                return Err(bad("address must be host:port"));
            }
            if sink.tls && sink.ca_file.is_empty() {
                return Err(bad("a TLS sink needs ca_file (the CA that signed the receiver's certificate)"));
            }
            if sink.client_cert.is_empty() != sink.client_key.is_empty() {
                return Err(bad("give both client_cert and client_key, or neither"));
            }
            if sink.batch_events == 0 {
                return Err(bad("batch_events must be at least 1"));
            }
        }
        if self.store.path.as_os_str().is_empty() {
            return Err(ConfigError::Invalid { key: "store.path", value: String::new(), hint: "give a directory" });
        }
        let f = &self.findings;
        at_least("findings.window_secs", usize::try_from(f.window_secs).unwrap_or(usize::MAX), 1, "use at least 1 (60 is a good value)")?;
        at_least("findings.max_tracked", f.max_tracked, 16, "use at least 16 (100000 is a good value)")?;
        at_least("findings.bola_min_ids", f.bola_min_ids, 2, "use at least 2 (50 is a good value)")?;
        at_least("findings.recon_min_paths", f.recon_min_paths, 2, "use at least 2 (10 is a good value)")?;
        at_least("findings.stuffing_spread_min_clients", f.stuffing_spread_min_clients, 2, "use at least 2 (10 is a good value)")?;
        if !(f.spike_factor.is_finite() && f.spike_factor > 1.0) {
            return Err(ConfigError::Invalid {
                key: "findings.spike_factor",
                value: f.spike_factor.to_string(),
                hint: "use a number above 1 (10 is a good value)",
            });
        }
        if f.sunset_prefixes.iter().any(|p| !p.starts_with('/')) {
            return Err(ConfigError::Invalid {
                key: "findings.sunset_prefixes",
                value: format!("{:?}", f.sunset_prefixes),
                hint: "each prefix is a path starting with '/', e.g. \"/v1/\"",
            });
        }
        Ok(())
    }

    /// The decoder limits this configuration sets.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_frag_datagrams: self.decode.max_frag_datagrams,
            max_frag_bytes: self.decode.max_frag_bytes,
            frag_timeout_us: self.decode.frag_timeout_secs.saturating_mul(1_000_000),
            max_tunnel_depth: self.decode.max_tunnel_depth,
        }
    }

    /// The flow-table limits this configuration sets.
    pub fn flow_limits(&self) -> FlowLimits {
        FlowLimits {
            max_flows: self.flow.max_flows,
            max_ooo_bytes_per_dir: self.flow.max_ooo_bytes_per_dir,
            max_ooo_segments_per_dir: self.flow.max_ooo_segments_per_dir,
            max_ooo_bytes_total: self.flow.max_ooo_bytes_total,
            idle_timeout_us: self.flow.idle_timeout_secs.saturating_mul(1_000_000),
            closed_timeout_us: self.flow.closed_timeout_secs.saturating_mul(1_000_000),
            ..FlowLimits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_sensor_toml_equals_builtin_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sensor.toml");
        let cfg = Config::load(&path).expect("sensor.toml must parse");
        assert_eq!(cfg, Config::default(), "sensor.toml must document exactly the built-in defaults");
    }

    #[test]
    fn unknown_keys_are_rejected_with_the_key_named() {
        let err = Config::parse("[flow]\nmax_flow = 3\n").unwrap_err().to_string();
        assert!(err.contains("max_flow"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let err = Config::parse("[pipeline]\nbatch_packets = 0\n").unwrap_err().to_string();
        assert!(err.contains("pipeline.batch_packets"), "{err}");
        assert!(Config::parse("[pipeline]\nworkers = 1000\n").is_err());
    }

    #[test]
    fn empty_text_gives_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }
}
