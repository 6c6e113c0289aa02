//! Application protocols over a reassembled TCP connection.
//!
//! A [`Connection`] receives the [`Chunk`]s of both directions of one TCP
//! connection, detects the protocol from the first bytes, and produces
//! [`HttpTransaction`]s — the one currency every parser here emits.

#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used))]

pub mod hpack;
pub mod http1;
pub mod http2;
pub mod tls;

use std::net::SocketAddr;

use serde::Serialize;

use crate::config::{Http2Config, HttpConfig};
use crate::flow::{Chunk, Direction};

/// HTTP version of a request as it was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum HttpVersion {
    Http09,
    Http10,
    Http11,
    H2,
}

impl HttpVersion {
    /// The version as it appears in OCSF `http_request.version`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpVersion::Http09 => "HTTP/0.9",
            HttpVersion::Http10 => "HTTP/1.0",
            HttpVersion::Http11 => "HTTP/1.1",
            HttpVersion::H2 => "HTTP/2",
        }
    }
}

/// One header field. Names are lower-cased; values are kept as sent (bounded
/// by the header limits) and must be classified before anything leaves the sensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    pub value: HeaderValue,
}

impl Header {
    /// No name, no value: a place to write a header into.
    pub const EMPTY: Header = Header { name: HeaderName::Borrowed(""), value: HeaderValue::EMPTY };
}

/// A lower-case header name: one of [`known_names`] without an allocation of
/// its own, any other name owned.
pub type HeaderName = std::borrow::Cow<'static, str>;

/// Header names common enough to be shared instead of copied for every
/// message, besides those of the HPACK static table ([`known_names`]): the
/// other pseudo-headers and the names of connections, authentication,
/// proxies, CORS, tracing and gRPC.
const MORE_KNOWN_NAMES: &[&str] = &[
    ":protocol", "connection", "keep-alive", "proxy-connection", "upgrade", "http2-settings", "te", "trailer",
    "priority", "alt-svc", "origin", "forwarded", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
    "x-forwarded-port", "x-real-ip", "x-client-ip", "true-client-ip", "x-request-id", "x-correlation-id",
    "x-requested-with", "x-csrf-token", "x-xsrf-token", "x-auth-token", "x-access-token", "x-api-key", "api-key",
    "apikey", "x-http-method-override", "x-original-url", "x-content-type-options", "x-frame-options",
    "x-xss-protection", "x-powered-by", "content-security-policy", "referrer-policy",
    "access-control-allow-credentials", "access-control-allow-headers", "access-control-allow-methods",
    "access-control-expose-headers", "access-control-max-age", "access-control-request-method",
    "access-control-request-headers", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
    "traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid", "x-amzn-trace-id", "grpc-status", "grpc-message",
    "grpc-encoding", "grpc-accept-encoding", "grpc-timeout", "upgrade-insecure-requests", "dnt", "sec-fetch-dest",
    "sec-fetch-mode", "sec-fetch-site", "sec-fetch-user", "pragma", "x-cache", "x-amz-date", "x-goog-api-key",
];

/// Every known name: the HPACK static table's (RFC 7541 Appendix A), then
/// [`MORE_KNOWN_NAMES`] (a name may come twice; the table keeps one).
fn known_names() -> impl Iterator<Item = &'static str> {
    hpack::static_names().chain(MORE_KNOWN_NAMES.iter().copied())
}

/// Longest known name ([`known_names`]; longer names are never looked up).
const KNOWN_NAME_MAX: usize = 40;
/// Slots of the known-name lookup table (a power of two, at least four
/// times the names, so probes stay short).
const KNOWN_SLOTS: usize = 1024;

/// Slot of a lower-case name in the known-name table: a few of its bytes and
/// its length mixed (names differ early, late or in length).
fn known_slot(b: &[u8]) -> usize {
    let n = b.len();
    let at = |i: usize| u64::from(b.get(i).copied().unwrap_or(0));
    let h = (n as u64) ^ at(0) << 8 ^ at(1) << 16 ^ at(n / 2) << 24 ^ at(n.wrapping_sub(2)) << 32 ^ at(n.wrapping_sub(1)) << 40;
    (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize % KNOWN_SLOTS
}

/// The known-name table: open addressing over [`known_slot`].
fn known_table() -> &'static [Option<&'static str>] {
    static TABLE: std::sync::OnceLock<Vec<Option<&'static str>>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![None; KNOWN_SLOTS];
        for name in known_names() {
            let mut i = known_slot(name.as_bytes());
            loop {
                match t.get(i) {
                    Some(Some(held)) if *held == name => break,
                    Some(Some(_)) => i = (i + 1) % KNOWN_SLOTS,
                    _ => {
                        if let Some(s) = t.get_mut(i) {
                            *s = Some(name);
                        }
                        break;
                    }
                }
            }
        }
        t
    })
}

/// Byte-string equality that compares strings of up to 16 bytes (most
/// header names, short HPACK literals) in machine words instead of calling
/// `memcmp`, which costs more than the comparison at these lengths; longer
/// strings compare as slices do.
#[inline]
pub(crate) fn short_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| s.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()).map(u64::from_ne_bytes);
    let half = |s: &[u8], at: usize| s.get(at..at + 4).and_then(|w| <[u8; 4]>::try_from(w).ok()).map(u32::from_ne_bytes);
    match n {
        // two words that overlap in the middle cover every byte
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// The shared spelling of a lower-case name, when it is a known one.
pub(crate) fn known_name(lower: &[u8]) -> Option<&'static str> {
    let table = known_table();
    let mut i = known_slot(lower);
    loop {
        match table.get(i).copied().flatten() {
            Some(k) if short_eq(k.as_bytes(), lower) => return Some(k),
            Some(_) => i = (i + 1) % KNOWN_SLOTS,
            None => return None,
        }
    }
}

/// `b` as text, invalid UTF-8 replaced (valid text, the common case, is
/// checked by the faster validator and copied as is).
pub(crate) fn lossy(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// Longest `Host`/`:authority` value [`shared_host`] keeps to share.
pub const SHARED_HOST_BYTES: usize = 256;
/// Slots of the per-thread table of shared hosts (direct-mapped).
const SHARED_HOST_SLOTS: usize = 256;

std::thread_local! {
    /// Hosts of recent requests on this thread, by a hash of their bytes:
    /// a server's name comes back on request after request, connection
    /// after connection, and each request then holds the one copy rather
    /// than its own. A slot is taken over by the next host that hashes to it.
    static SHARED_HOSTS: std::cell::RefCell<Vec<Option<std::sync::Arc<str>>>> = std::cell::RefCell::new(vec![None; SHARED_HOST_SLOTS]);
}

/// Places hosts in [`SHARED_HOSTS`] (a slot holds the exact bytes it is
/// compared with, so a fixed seed costs at most a slot taken over).
static SHARED_HOST_HASH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x6a09_e667_f3bc_c909);

/// A transaction's host from the raw header value (invalid UTF-8 replaced),
/// as the copy this thread already holds for those bytes when it has one
/// ([`SHARED_HOSTS`]; values up to [`SHARED_HOST_BYTES`]).
pub(crate) fn shared_host(raw: &[u8]) -> std::sync::Arc<str> {
    let make = || -> std::sync::Arc<str> {
        match std::str::from_utf8(raw) {
            Ok(s) => s.into(),
            Err(_) => String::from_utf8_lossy(raw).as_ref().into(),
        }
    };
    if raw.len() > SHARED_HOST_BYTES {
        return make();
    }
    let slot = std::hash::BuildHasher::hash_one(&SHARED_HOST_HASH, raw) as usize % SHARED_HOST_SLOTS;
    SHARED_HOSTS.with(|t| {
        let Ok(mut t) = t.try_borrow_mut() else { return make() };
        let Some(entry) = t.get_mut(slot) else { return make() };
        if let Some(h) = entry.as_ref().filter(|h| h.as_bytes() == raw) {
            return std::sync::Arc::clone(h);
        }
        let host = make();
        *entry = Some(std::sync::Arc::clone(&host));
        host
    })
}

/// The request methods shared as `&'static str` wherever a method is kept.
pub const COMMON_METHODS: [&str; 9] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE"];

/// A request method as sent (invalid UTF-8 replaced): the common methods, in
/// their usual upper case, shared rather than copied for every request.
pub fn method_text(raw: &[u8]) -> std::borrow::Cow<'static, str> {
    match COMMON_METHODS.iter().find(|m| m.as_bytes() == raw) {
        Some(m) => std::borrow::Cow::Borrowed(*m),
        None => std::borrow::Cow::Owned(lossy(raw)),
    }
}

/// A header name as it came off the wire, lower-cased (invalid UTF-8
/// replaced): shared when known, owned otherwise.
pub fn header_name(raw: &[u8]) -> HeaderName {
    let mut buf = [0u8; KNOWN_NAME_MAX];
    if let Some(lower) = buf.get_mut(..raw.len()) {
        lower.copy_from_slice(raw);
        lower.make_ascii_lowercase();
        if let Some(k) = known_name(lower) {
            return HeaderName::Borrowed(k);
        }
    }
    let mut s = lossy(raw);
    s.make_ascii_lowercase();
    HeaderName::Owned(s)
}

/// Bytes of a header value held in place (without an allocation of their own).
const VALUE_INLINE: usize = 30;

/// A header value's bytes as sent: short ones (most dates, lengths, media
/// types, user agents) held in place, longer ones on the heap.
#[derive(Clone)]
pub struct HeaderValue(ValueRepr);

#[derive(Clone)]
enum ValueRepr {
    /// `len` ≤ [`VALUE_INLINE`].
    Inline { len: u8, bytes: [u8; VALUE_INLINE] },
    Heap(Vec<u8>),
}

impl HeaderValue {
    /// A copy of `b` (in place when short).
    pub fn from_slice(b: &[u8]) -> HeaderValue {
        HeaderValue::from(b)
    }

    /// Makes this value a copy of `b`, writing a short one where the value
    /// already is: a header pushed empty and then set is written once, in
    /// its vector, instead of built aside and moved (a move right after a
    /// copy of variable length stalls the load that moves it).
    pub fn set(&mut self, b: &[u8]) {
        if let ValueRepr::Inline { len, bytes } = &mut self.0 {
            if let Some(dst) = bytes.get_mut(..b.len()) {
                dst.copy_from_slice(b);
                *len = b.len() as u8;
                return;
            }
        }
        *self = HeaderValue::from(b);
    }

    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            ValueRepr::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or(&[]),
            ValueRepr::Heap(v) => v,
        }
    }

    /// Bytes this value holds on the heap (none when short).
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            ValueRepr::Inline { .. } => 0,
            ValueRepr::Heap(v) => v.capacity(),
        }
    }
}

/// Bytes a header list holds on the heap: its vector's slots and the names
/// and values that do not fit in them (a shared known name holds none).
pub(crate) fn headers_bytes(h: &Vec<Header>) -> usize {
    let own = h.iter().map(|x| x.value.heap_bytes() + if let HeaderName::Owned(n) = &x.name { n.capacity() } else { 0 }).sum::<usize>();
    own + h.capacity() * std::mem::size_of::<Header>()
}

impl HeaderValue {
    /// The empty value.
    pub const EMPTY: HeaderValue = HeaderValue(ValueRepr::Inline { len: 0, bytes: [0; VALUE_INLINE] });
}

impl Default for HeaderValue {
    fn default() -> HeaderValue {
        HeaderValue::EMPTY
    }
}

impl From<&[u8]> for HeaderValue {
    fn from(b: &[u8]) -> HeaderValue {
        let mut bytes = [0u8; VALUE_INLINE];
        match bytes.get_mut(..b.len()) {
            Some(dst) => {
                dst.copy_from_slice(b);
                HeaderValue(ValueRepr::Inline { len: b.len() as u8, bytes })
            }
            None => HeaderValue(ValueRepr::Heap(b.to_vec())),
        }
    }
}

impl<const N: usize> From<&[u8; N]> for HeaderValue {
    fn from(b: &[u8; N]) -> HeaderValue {
        HeaderValue::from(b.as_slice())
    }
}

impl From<&str> for HeaderValue {
    fn from(s: &str) -> HeaderValue {
        HeaderValue::from(s.as_bytes())
    }
}

impl From<Vec<u8>> for HeaderValue {
    /// Short values move in place (the vector is freed), long ones keep it.
    fn from(v: Vec<u8>) -> HeaderValue {
        if v.len() <= VALUE_INLINE {
            HeaderValue::from(v.as_slice())
        } else {
            HeaderValue(ValueRepr::Heap(v))
        }
    }
}

/// The traits of a type that stands for a run of bytes it returns from
/// `as_slice()`: it dereferences to them, compares by them (with itself, a
/// slice or a vector) and shows them as text.
macro_rules! byte_view {
    ($t:ty) => {
        impl std::ops::Deref for $t {
            type Target = [u8];
            fn deref(&self) -> &[u8] {
                self.as_slice()
            }
        }

        impl AsRef<[u8]> for $t {
            fn as_ref(&self) -> &[u8] {
                self.as_slice()
            }
        }

        impl PartialEq for $t {
            fn eq(&self, other: &$t) -> bool {
                self.as_slice() == other.as_slice()
            }
        }

        impl Eq for $t {}

        impl PartialEq<[u8]> for $t {
            fn eq(&self, other: &[u8]) -> bool {
                self.as_slice() == other
            }
        }

        impl PartialEq<Vec<u8>> for $t {
            fn eq(&self, other: &Vec<u8>) -> bool {
                self.as_slice() == other.as_slice()
            }
        }

        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:?}", String::from_utf8_lossy(self.as_slice()))
            }
        }
    };
}
pub(crate) use byte_view;

byte_view!(HeaderValue);

/// What was seen of one message body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BodyInfo {
    /// Body bytes on the wire (after de-chunking), including bytes lost in gaps.
    pub length: u64,
    /// The first `http.body_scan_bytes` bytes, for analysis.
    pub sample: Vec<u8>,
    /// Bytes of the body that the capture lost.
    pub gap_bytes: u64,
}

impl BodyInfo {
    /// Counts body bytes and keeps the first `limit` of them as the sample;
    /// the rest is counted as skipped, never buffered.
    pub fn add(&mut self, data: &[u8], limit: usize, stats: &mut ProtoStats) {
        self.length = self.length.saturating_add(data.len() as u64);
        let room = limit.saturating_sub(self.sample.len());
        let keep = room.min(data.len());
        self.sample.extend_from_slice(data.get(..keep).unwrap_or_default());
        stats.body_bytes_skipped = stats.body_bytes_skipped.saturating_add((data.len() - keep) as u64);
    }
}

/// Which bodies of a transaction the analysis reads, decided by the sink's
/// [`TxSink::sampling`] when the request head is complete: a body it will
/// not read is counted, not copied ([`Sampling::request_keep`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// Bodies are scanned for sensitive data.
    pub body_scan: bool,
    /// JSON bodies give the endpoint's schema.
    pub shapes: bool,
    /// The typed template of the request's path, when the sink worked it out
    /// to decide: the analysis takes it instead of looking the path up again.
    /// A sink sets it only to exactly what the analysis would make of the
    /// path (`analyze::template::shared_typed_template`).
    pub template: Option<std::sync::Arc<str>>,
}

impl Sampling {
    /// Every body read (what a sink that does not sample answers).
    pub const ALL: Sampling = Sampling { body_scan: true, shapes: true, template: None };
    /// No body read but the start of an error response ([`ERROR_BODY_KEEP`]).
    pub const NONE: Sampling = Sampling { body_scan: false, shapes: false, template: None };

    /// Whether any body of the transaction is read.
    fn reads_bodies(&self) -> bool {
        self.body_scan || self.shapes
    }

    /// Bytes of the request body to keep, of at most `limit`.
    pub fn request_keep(&self, limit: usize) -> usize {
        if self.reads_bodies() {
            limit
        } else {
            0
        }
    }

    /// Bytes of the response body to keep, of at most `limit`, for a final
    /// `status`: an error response keeps its start (the posture analysis looks
    /// for stack traces and debug pages there) even when not sampled.
    pub fn response_keep(&self, limit: usize, status: Option<u16>) -> usize {
        if self.reads_bodies() {
            limit
        } else if status.is_some_and(|s| s >= 400) {
            limit.min(ERROR_BODY_KEEP)
        } else {
            0
        }
    }
}

/// Bytes of an error response's body kept when its transaction's bodies are
/// not sampled ([`Sampling::response_keep`]).
pub const ERROR_BODY_KEEP: usize = 8192;

/// What a parser knows of a request when its head is complete.
#[derive(Clone, Copy, Debug)]
pub struct HeadFacts<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    /// `Host` (HTTP/1) or `:authority` (HTTP/2), as sent.
    pub host: Option<&'a [u8]>,
    pub server: SocketAddr,
}

/// Where parsers put the transactions they finish, and who decides, when a
/// request head is complete, which of its bodies will be read
/// ([`Sampling`]). A plain vector keeps every body.
pub trait TxSink {
    fn txs(&mut self) -> &mut Vec<HttpTransaction>;

    /// The sampling of the request whose head is `head`.
    fn sampling(&mut self, head: &HeadFacts<'_>) -> Sampling {
        let _ = head;
        Sampling::ALL
    }
}

impl TxSink for Vec<HttpTransaction> {
    fn txs(&mut self) -> &mut Vec<HttpTransaction> {
        self
    }
}

/// A sink for tests: requests whose target starts with `/skip` have their
/// bodies left unread ([`Sampling::NONE`]), the others read; every head it
/// was asked about is recorded.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Picky {
    pub txs: Vec<HttpTransaction>,
    /// (method, target, host, server) of each head asked about.
    pub asked: Vec<(String, String, Option<String>, SocketAddr)>,
}

#[cfg(test)]
impl Picky {
    /// What both parsers must have made of three requests — `/skip/a` (5-byte
    /// body, 200 with 3 bytes), `/keep/b` (`world`, 200 with `xyz`) and
    /// `/skip/c` (an error response with `big` as its body) — to `server`,
    /// the first naming `first_host`, the others `api.example`.
    pub fn check_three(&self, first_host: &str, server: SocketAddr, big: &[u8]) {
        let heads: Vec<(&str, &str, Option<&str>)> = self.asked.iter().map(|(m, p, h, _)| (m.as_str(), p.as_str(), h.as_deref())).collect();
        assert_eq!(heads, [("POST", "/skip/a", Some(first_host)), ("POST", "/keep/b", Some("api.example")), ("GET", "/skip/c", Some("api.example"))]);
        assert!(self.asked.iter().all(|a| a.3 == server));
        let t = &self.txs;
        assert_eq!(t.len(), 3);
        // not read: counted only
        assert_eq!((t[0].request_body.length, t[0].request_body.sample.len()), (5, 0));
        assert_eq!((t[0].response_body.length, t[0].response_body.sample.len()), (3, 0));
        assert_eq!(t[0].sampling, Some(Sampling::NONE));
        // read: kept
        assert_eq!((t[1].request_body.sample.as_slice(), t[1].response_body.sample.as_slice()), (&b"world"[..], &b"xyz"[..]));
        assert_eq!(t[1].sampling, Some(Sampling::ALL));
        // an error response not read keeps the start the posture check reads
        assert_eq!(t[2].response_body.length, big.len() as u64);
        assert_eq!(t[2].response_body.sample.as_slice(), &big[..ERROR_BODY_KEEP]);
    }
}

#[cfg(test)]
impl TxSink for Picky {
    fn txs(&mut self) -> &mut Vec<HttpTransaction> {
        &mut self.txs
    }

    fn sampling(&mut self, head: &HeadFacts<'_>) -> Sampling {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        self.asked.push((text(head.method), text(head.target), head.host.map(text), head.server));
        if head.target.starts_with(b"/skip") {
            Sampling::NONE
        } else {
            Sampling::ALL
        }
    }
}

/// Anomalies seen on a transaction: data, not errors (bit set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Anomalies(pub u32);

impl Anomalies {
    pub const INVALID_REQUEST_HEAD: u32 = 1 << 0;
    pub const INVALID_RESPONSE_HEAD: u32 = 1 << 1;
    pub const HEADER_TOO_LARGE: u32 = 1 << 2;
    pub const TOO_MANY_HEADERS: u32 = 1 << 3;
    pub const MULTIPLE_CONTENT_LENGTH: u32 = 1 << 4;
    pub const CL_AND_TE: u32 = 1 << 5;
    pub const BAD_CHUNK: u32 = 1 << 6;
    pub const REQUEST_GAP: u32 = 1 << 7;
    pub const RESPONSE_GAP: u32 = 1 << 8;
    pub const BARE_LF: u32 = 1 << 9;
    pub const NO_RESPONSE: u32 = 1 << 10;
    pub const UNKNOWN_TE: u32 = 1 << 11;

    const NAMES: [(u32, &'static str); 12] = [
        (Self::INVALID_REQUEST_HEAD, "invalid_request_head"),
        (Self::INVALID_RESPONSE_HEAD, "invalid_response_head"),
        (Self::HEADER_TOO_LARGE, "header_too_large"),
        (Self::TOO_MANY_HEADERS, "too_many_headers"),
        (Self::MULTIPLE_CONTENT_LENGTH, "multiple_content_length"),
        (Self::CL_AND_TE, "content_length_and_transfer_encoding"),
        (Self::BAD_CHUNK, "bad_chunk"),
        (Self::REQUEST_GAP, "request_gap"),
        (Self::RESPONSE_GAP, "response_gap"),
        (Self::BARE_LF, "bare_lf"),
        (Self::NO_RESPONSE, "no_response"),
        (Self::UNKNOWN_TE, "unknown_transfer_encoding"),
    ];

    pub fn set(&mut self, bit: u32) {
        self.0 |= bit;
    }
    pub fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Names of the anomalies set, for events and summaries.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES.iter().filter(move |(b, _)| self.0 & b != 0).map(|(_, n)| *n)
    }
}

/// One request and, when the capture holds it, its final response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTransaction {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub version: HttpVersion,
    pub method: std::borrow::Cow<'static, str>,
    /// Request target exactly as sent (lossy UTF-8).
    pub target: String,
    /// `Host` header (HTTP/1) or `:authority` (HTTP/2) as sent (lossy
    /// UTF-8); shared by a connection's requests that send the same one.
    pub host: Option<std::sync::Arc<str>>,
    pub request_headers: Vec<Header>,
    pub response_headers: Vec<Header>,
    /// Final status (not 1xx, except 101).
    pub status: Option<u16>,
    /// Interim (1xx) statuses before the final one.
    pub interim_statuses: Vec<u16>,
    /// Packet time (µs) of the first byte of the request.
    pub request_ts_us: u64,
    /// Packet time (µs) of the first byte of the final response.
    pub response_ts_us: Option<u64>,
    pub request_body: BodyInfo,
    pub response_body: BodyInfo,
    /// Protocol named in `Upgrade` when the server switched protocols (or `CONNECT` tunnel).
    pub upgrade: Option<String>,
    pub anomalies: Anomalies,
    /// HTTP/2 stream identifier.
    pub stream_id: Option<u32>,
    /// Pushed by the server (HTTP/2 PUSH_PROMISE).
    pub pushed: bool,
    /// gRPC details when the request's content type is `application/grpc*`
    /// (boxed: rare, and every transaction moves this field).
    pub grpc: Option<Box<GrpcInfo>>,
    /// Read from a TLS session decrypted with key-log secrets.
    pub decrypted: bool,
    /// Which bodies the analysis reads, when decided at the request head
    /// (`None`: not decided; every body kept).
    pub sampling: Option<Sampling>,
}

/// What was seen of a gRPC call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcInfo {
    /// `grpc-status` from the trailers (or a trailers-only response).
    pub status: Option<u32>,
    pub message: Option<String>,
    /// Length-prefixed messages in each direction.
    pub request_messages: u64,
    pub response_messages: u64,
    /// Some message had the compressed flag set.
    pub compressed: bool,
}

impl HttpTransaction {
    /// Bytes this transaction holds while a parser keeps it: the value itself,
    /// its header lists, target and body samples (what a request waiting for
    /// its response costs the parser's memory budget).
    pub fn held_bytes(&self) -> usize {
        std::mem::size_of::<HttpTransaction>()
            + headers_bytes(&self.request_headers)
            + headers_bytes(&self.response_headers)
            + self.target.capacity()
            + self.request_body.sample.capacity()
            + self.response_body.sample.capacity()
            + self.interim_statuses.capacity() * std::mem::size_of::<u16>()
    }

    /// A transaction with only its endpoints, method and target set (no
    /// headers, bodies, status or times), for code that builds one by hand.
    pub fn new(client: SocketAddr, server: SocketAddr, method: &str, target: &str) -> HttpTransaction {
        HttpTransaction {
            client,
            server,
            version: HttpVersion::Http11,
            method: method_text(method.as_bytes()),
            target: target.to_string(),
            host: None,
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            status: None,
            interim_statuses: Vec::new(),
            request_ts_us: 0,
            response_ts_us: None,
            request_body: BodyInfo::default(),
            response_body: BodyInfo::default(),
            upgrade: None,
            anomalies: Anomalies::default(),
            stream_id: None,
            pushed: false,
            grpc: None,
            decrypted: false,
            sampling: None,
        }
    }

    /// The first request header with this (lower-case) name.
    pub fn request_header(&self, name: &str) -> Option<&[u8]> {
        self.request_headers.iter().find(|h| h.name == name).map(|h| h.value.as_slice())
    }
    /// The first response header with this (lower-case) name.
    pub fn response_header(&self, name: &str) -> Option<&[u8]> {
        self.response_headers.iter().find(|h| h.name == name).map(|h| h.value.as_slice())
    }
}

/// Counters of the protocol layer, per worker.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ProtoStats {
    pub connections: u64,
    pub http1_connections: u64,
    pub h2_connections: u64,
    pub h2_upgrades: u64,
    pub connect_tunnels: u64,
    pub tls_connections: u64,
    pub unknown_connections: u64,
    pub transactions: u64,
    pub requests_without_response: u64,
    pub responses_without_request: u64,
    pub anomalies: u64,
    pub gaps_in_head: u64,
    pub resyncs: u64,
    pub resync_gave_up: u64,
    pub upgrades: u64,
    pub pending_limit_dropped: u64,
    /// Connections that grew while the parsers' memory across connections
    /// was over `http.max_parser_bytes_total`, and freed what they held
    /// ([`Connection::shed`]); each counted once.
    pub parser_bytes_limit_hit: u64,
    /// The most bytes the parsers held at once (`http.max_parser_bytes_total`
    /// bounds it); summed over the workers, an upper bound of the sensor's.
    pub parser_bytes_peak: u64,
    /// Bytes the parsers hold now (summed over the workers): after a replay,
    /// with every connection ended, none.
    pub parser_bytes_held: u64,
    pub header_limit_hit: u64,
    pub body_bytes_skipped: u64,
    pub h2_frames: u64,
    pub h2_unknown_frames: u64,
    pub h2_anomalies: u64,
    pub h2_gaps: u64,
    pub h2_resyncs: u64,
    pub h2_resync_bytes_skipped: u64,
    pub h2_hpack_errors: u64,
    pub h2_unknown_fields: u64,
    pub h2_requests_unknown: u64,
    pub h2_pushes: u64,
    pub h2_goaways: u64,
    pub h2_data_without_stream: u64,
    pub h2_frame_limit_hit: u64,
    pub h2_header_limit_hit: u64,
    pub h2_stream_limit_hit: u64,
    pub h2_frames_limit_hit: u64,
    /// TLS: sessions whose plaintext went to the HTTP parsers.
    pub tls_decrypted_sessions: u64,
    /// TLS: decrypted application bytes.
    pub tls_plaintext_bytes: u64,
    /// TLS: records that failed authentication with the key log's keys.
    pub tls_decrypt_failures: u64,
    /// TLS: malformed or oversized records (that direction is no longer read).
    pub tls_bad_records: u64,
    /// TLS: gaps in a TLS stream (record framing is lost there).
    pub tls_gaps: u64,
    /// TLS: protected records dropped while waiting for their secrets
    /// (`tls::MAX_PENDING_BYTES` per connection).
    pub tls_pending_limit_dropped: u64,
}

/// The protocol a connection was recognised as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Detected {
    /// Nothing decided yet.
    Pending,
    Http1,
    /// HTTP/2 client preface seen (parsed by a later protocol module).
    H2,
    Tls,
    /// Not a protocol we analyse; bytes are ignored.
    Other,
}

/// Per-connection protocol state: detection, role correction and the parser.
pub struct Connection {
    client: SocketAddr,
    server: SocketAddr,
    /// Whether the flow layer's client/server guess turned out reversed.
    swapped: bool,
    detected: Detected,
    /// Whether the stream start (SYN) was seen: content must then start with a message.
    midstream: bool,
    http1: Option<Box<http1::Http1Connection>>,
    http2: Option<Box<http2::H2Connection>>,
    tls: Option<Box<tls::TlsConnection>>,
    /// Bytes looked at while detecting a connection joined mid-stream.
    probed: usize,
    /// The plaintext of a decrypted TLS session: TLS inside is not decrypted again.
    pub(crate) inside_tls: bool,
    /// [`Self::held_bytes`] when the owner last counted it (the owner's to
    /// keep: it sums this over its connections).
    pub counted: usize,
}

/// Bytes of a connection joined mid-stream examined for a recognisable
/// protocol before it is handed to the HTTP/1 parser's resynchronisation.
const MIDSTREAM_PROBE_BYTES: usize = 256 * 1024;

/// Protocol settings handed to every connection.
pub struct ProtoConfig {
    pub http: HttpConfig,
    pub http2: Http2Config,
    /// TLS secrets (NSS key log) to decrypt sessions with; `None` = none.
    pub keylog: Option<std::sync::Arc<tls::KeyLog>>,
}

impl Connection {
    /// A new connection between `client` and `server` as the flow layer guessed them.
    pub fn new(client: SocketAddr, server: SocketAddr, midstream: bool, stats: &mut ProtoStats) -> Connection {
        stats.connections += 1;
        Connection { client, server, swapped: false, detected: Detected::Pending, midstream, http1: None, http2: None, tls: None, probed: 0, inside_tls: false, counted: 0 }
    }

    fn detect(&mut self, dir: Direction, data: &[u8], cfg: &ProtoConfig, stats: &mut ProtoStats) {
        // Correct the flow layer's guess from content: a response in the "to server"
        // direction or a request (or the HTTP/2 preface) in the "to client"
        // direction means the roles are reversed.
        let looks_response = data.starts_with(b"HTTP/1.") || data.starts_with(b"HTTP/0.9");
        let looks_request = http1::looks_like_request_start(data);
        let preface = data.iter().zip(http2::PREFACE).all(|(a, b)| a == b) && data.len() >= 4;
        match dir {
            Direction::ToServer if looks_response && !looks_request => self.swapped = true,
            Direction::ToClient if (looks_request || preface) && !looks_response => self.swapped = true,
            _ => {}
        }
        let (client, server) = if self.swapped { (self.server, self.client) } else { (self.client, self.server) };
        self.detected = if preface {
            stats.h2_connections += 1;
            self.http2 = Some(Box::new(http2::H2Connection::new(client, server, false, &cfg.http2)));
            Detected::H2
        } else if matches!(data, [0x16, 0x03, minor, ..] if *minor <= 0x04) {
            stats.tls_connections += 1;
            if !self.inside_tls {
                self.tls = Some(Box::new(tls::TlsConnection::new(client, server, 0)));
            }
            Detected::Tls
        } else if looks_request || looks_response {
            stats.http1_connections += 1;
            Detected::Http1
        } else if http2::looks_like_frames(data) {
            // HTTP/2 frames without a preface: the server speaking first, or a
            // connection joined after its start
            stats.h2_connections += 1;
            self.http2 = Some(Box::new(http2::H2Connection::new(client, server, self.midstream, &cfg.http2)));
            Detected::H2
        } else if self.midstream {
            // Joined mid-stream, the first bytes may fall anywhere inside a message:
            // look for a chain of HTTP/2 frames or an HTTP/1 message start inside
            // them, and wait for more bytes when neither shows yet (bounded).
            if http2::strong_frame_sync(data, cfg.http2.max_frame_bytes as u32).is_some() {
                stats.h2_connections += 1;
                self.http2 = Some(Box::new(http2::H2Connection::new(client, server, true, &cfg.http2)));
                Detected::H2
            } else if http1::contains_message_start(data) {
                stats.http1_connections += 1;
                Detected::Http1
            } else {
                self.probed = self.probed.saturating_add(data.len());
                if self.probed < MIDSTREAM_PROBE_BYTES {
                    return;
                }
                stats.http1_connections += 1;
                Detected::Http1
            }
        } else if http1::could_be_http_text(data) {
            stats.http1_connections += 1;
            Detected::Http1
        } else {
            stats.unknown_connections += 1;
            Detected::Other
        };
        if self.detected == Detected::Http1 {
            self.http1 = Some(Box::new(http1::Http1Connection::new(client, server, self.midstream, &cfg.http)));
        }
    }

    /// Bytes the parsers of this connection hold beyond the connection's own
    /// fixed size: partial messages, requests waiting for their responses,
    /// HTTP/2 streams and header tables, TLS records and what they decrypt to.
    /// Kept up to date by the parsers, so asking is cheap.
    pub fn held_bytes(&self) -> usize {
        self.http1.as_ref().map_or(0, |h| h.held_bytes())
            + self.http2.as_ref().map_or(0, |h| h.held_bytes())
            + self.tls.as_ref().map_or(0, |t| t.held_bytes())
    }

    /// Frees the connection's memory when the parsers' budget is spent: what
    /// it holds for pairing is reported now (open requests without a
    /// response). HTTP/1 goes on reporting each request as soon as it is
    /// complete and stops reading responses; HTTP/2 keeps its header tables
    /// and reports its open streams whenever it grows again; a decrypted TLS
    /// session sheds its inner protocol so. Anything else (TLS records
    /// waiting for their secrets, a connection still being detected) is
    /// given up: not parsed further. Returns the TLS session summary of a
    /// connection given up, if it had one.
    pub fn shed(&mut self, ts_us: u64, cfg: &ProtoConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) -> Option<tls::TlsSession> {
        if let Some(h1) = self.http1.as_mut() {
            // HTTP/1 needs no state to read requests: it keeps reporting them
            h1.shed(stats, out);
            return None;
        }
        if let Some(h2) = self.http2.as_mut() {
            h2.shed(stats, out);
            return None;
        }
        if let Some(inner) = self.tls.as_mut().and_then(|t| t.inner_mut()) {
            // the decrypted conversation sheds as its own protocol does
            return inner.shed(ts_us, cfg, stats, out);
        }
        stats.parser_bytes_limit_hit += 1;
        self.on_close(ts_us, cfg, stats, out);
        let session = self.take_tls_session();
        self.http1 = None;
        self.http2 = None;
        self.tls = None;
        self.detected = Detected::Other;
        session
    }

    /// The TLS session summary of a TLS connection (taken once, after `on_close`).
    pub fn take_tls_session(&mut self) -> Option<tls::TlsSession> {
        self.tls.as_mut().map(|t| t.take_session())
    }

    /// Feeds one chunk of one direction; finished transactions are appended to `out`.
    pub fn on_chunk(
        &mut self,
        dir: Direction,
        chunk: Chunk<'_>,
        ts_us: u64,
        cfg: &ProtoConfig,
        stats: &mut ProtoStats,
        out: &mut dyn TxSink,
    ) {
        if self.detected == Detected::Pending {
            match chunk {
                Chunk::Data(d) if !d.is_empty() => {
                    self.detect(dir, d, cfg, stats);
                    if self.detected == Detected::Pending {
                        return;
                    }
                }
                Chunk::Gap(_) => {
                    // A gap before any byte: from here on this is a mid-stream pickup.
                    self.midstream = true;
                    return;
                }
                _ => return,
            }
        }
        let to_server = (dir == Direction::ToServer) != self.swapped;
        if let Some(t) = self.tls.as_mut() {
            t.on_chunk(to_server, chunk, ts_us, cfg.keylog.as_deref(), cfg, stats, out);
            return;
        }
        if let Some(h2) = self.http2.as_mut() {
            h2.on_chunk(to_server, chunk, ts_us, &cfg.http, stats, out);
            return;
        }
        let Some(h1) = self.http1.as_mut() else { return };
        let consumed = h1.on_chunk(to_server, chunk, ts_us, &cfg.http, stats, out);
        if h1.take_tunnel_opened() {
            // CONNECT accepted: what follows is a new connection inside the tunnel
            // (TLS, or HTTP spoken through a proxy); detect it afresh
            self.http1 = None;
            self.detected = Detected::Pending;
            self.midstream = false;
            stats.connect_tunnels += 1;
            if let Chunk::Data(d) = chunk {
                if let Some(rest) = d.get(consumed..).filter(|r| !r.is_empty()) {
                    self.on_chunk(dir, Chunk::Data(rest), ts_us, cfg, stats, out);
                }
            }
            return;
        }
        if let Some(req) = h1.take_h2c_upgrade() {
            // HTTP/1.1 Upgrade: h2c answered with 101: HTTP/2 from here on
            stats.h2_upgrades += 1;
            let (client, server) = (req.client, req.server);
            let mut h2 = http2::H2Connection::upgraded(client, server, req, &cfg.http2);
            if let Chunk::Data(d) = chunk {
                if let Some(rest) = d.get(consumed..).filter(|r| !r.is_empty()) {
                    h2.on_chunk(to_server, Chunk::Data(rest), ts_us, &cfg.http, stats, out);
                }
            }
            self.http1 = None;
            self.http2 = Some(Box::new(h2));
            self.detected = Detected::H2;
        }
    }

    /// The connection ended: pending requests are reported without a response.
    pub fn on_close(&mut self, ts_us: u64, cfg: &ProtoConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        if let Some(t) = self.tls.as_mut() {
            t.finish(ts_us, cfg, stats, out);
        }
        if let Some(h1) = self.http1.as_mut() {
            h1.finish(ts_us, &cfg.http, stats, out);
        }
        if let Some(h2) = self.http2.as_mut() {
            h2.finish(stats, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_host_is_the_value_sent_and_shared_while_it_repeats() {
        let a = shared_host(b"api.example:8443");
        let b = shared_host(b"api.example:8443");
        assert_eq!((&*a, &*b), ("api.example:8443", "api.example:8443"));
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        let c = shared_host(b"API.example:8443");
        assert_eq!(&*c, "API.example:8443");
        assert!(!std::sync::Arc::ptr_eq(&b, &c));
        // invalid UTF-8 replaced, never taken for the bytes it replaced
        assert_eq!(&*shared_host(b"bad\xffhost"), "bad\u{fffd}host");
        assert_eq!(&*shared_host("bad\u{fffd}host".as_bytes()), "bad\u{fffd}host");
        assert_eq!(&*shared_host(b"bad\xfehost"), "bad\u{fffd}host");
        // a value over the limit is made each time
        let long = "h".repeat(SHARED_HOST_BYTES + 1);
        let e = shared_host(long.as_bytes());
        assert_eq!(&*e, long.as_str());
        assert!(!std::sync::Arc::ptr_eq(&e, &shared_host(long.as_bytes())));
        // many hosts through the table: each still the text sent
        for i in 0..4 * SHARED_HOST_SLOTS {
            let h = format!("h{i}.example");
            assert_eq!(&*shared_host(h.as_bytes()), h.as_str());
        }
    }

    #[test]
    fn short_eq_is_slice_equality() {
        // every length up to 40 (the word paths end at 16), equal strings and
        // strings that differ in one byte at each position, or in length
        for n in 0..=40usize {
            let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(short_eq(&a, &a.clone()), "equal, {n} bytes");
            for at in 0..n {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert_eq!(short_eq(&a, &b), a == b, "{n} bytes, differing at {at}");
                assert!(!short_eq(&a, &b), "{n} bytes, differing at {at}");
            }
            let mut longer = a.clone();
            longer.push(b'z');
            assert!(!short_eq(&a, &longer) && !short_eq(&longer, &a), "{n} and {} bytes", n + 1);
        }
    }

    fn cfg() -> ProtoConfig {
        ProtoConfig { http: HttpConfig::default(), http2: Http2Config::default(), keylog: None }
    }

    #[test]
    fn h2c_upgrade_reports_the_request_once_with_the_stream_1_response() {
        let client: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let mut st = ProtoStats::default();
        let mut out = Vec::new();
        let c = cfg();
        let mut conn = Connection::new(client, server, false, &mut st);
        let req = b"GET /up HTTP/1.1\r\nHost: h.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
        conn.on_chunk(Direction::ToServer, Chunk::Data(req), 10, &c, &mut st, &mut out);
        // 101, then the server's SETTINGS and the stream-1 response in the same segment
        let mut resp = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
        resp.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // SETTINGS
        resp.extend_from_slice(&[0, 0, 1, 1, 4, 0, 0, 0, 1, 0x8d]); // HEADERS :status 404, END_HEADERS
        resp.extend_from_slice(&[0, 0, 2, 0, 1, 0, 0, 0, 1, b'n', b'o']); // DATA END_STREAM
        conn.on_chunk(Direction::ToClient, Chunk::Data(&resp), 20, &c, &mut st, &mut out);
        let mut pre = http2::PREFACE.to_vec();
        pre.extend_from_slice(&[0, 0, 0, 4, 1, 0, 0, 0, 0]); // SETTINGS ACK
        conn.on_chunk(Direction::ToServer, Chunk::Data(&pre), 30, &c, &mut st, &mut out);
        conn.on_close(40, &c, &mut st, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let t = &out[0];
        assert_eq!((t.version, &*t.method, t.target.as_str()), (HttpVersion::Http11, "GET", "/up"));
        assert_eq!(t.status, Some(404));
        assert_eq!(t.interim_statuses, vec![101]);
        assert_eq!(t.response_body.length, 2);
        assert_eq!(st.h2_upgrades, 1);
    }

    #[test]
    fn roles_are_corrected_from_content() {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let mut st = ProtoStats::default();
        let mut out = Vec::new();
        let c = cfg();
        // the flow layer guessed a as the client; the bytes say otherwise
        let mut conn = Connection::new(a, b, true, &mut st);
        conn.on_chunk(Direction::ToClient, Chunk::Data(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"), 1, &c, &mut st, &mut out);
        conn.on_chunk(Direction::ToServer, Chunk::Data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 2, &c, &mut st, &mut out);
        conn.on_close(3, &c, &mut st, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].client, out[0].server, out[0].status), (b, a, Some(200)));
    }

    #[test]
    fn header_names_are_lower_cased_and_known_ones_shared() {
        // every known name is found, whatever the case it was sent in
        for k in known_names() {
            assert!(k.len() <= KNOWN_NAME_MAX, "{k} is longer than KNOWN_NAME_MAX");
            assert_eq!(k.to_ascii_lowercase(), k, "{k} must be lower case");
            let n = header_name(k.to_ascii_uppercase().as_bytes());
            assert!(matches!(n, HeaderName::Borrowed(b) if b == k), "{k} not shared: {n:?}");
        }
        // other names are owned, lower-cased, with invalid UTF-8 replaced
        assert_eq!(header_name(b"X-Tenant-Id"), HeaderName::Owned("x-tenant-id".into()));
        assert!(matches!(header_name(b"x-tenant-id"), HeaderName::Owned(_)));
        assert_eq!(header_name(b"X-\xff"), "x-\u{fffd}");
        assert_eq!(header_name(b""), "");
        // a known name with a byte more or less, or longer than any known name, is not known
        assert!(matches!(header_name(b"hosts"), HeaderName::Owned(_)));
        assert!(matches!(header_name(b"hos"), HeaderName::Owned(_)));
        let long = "content-type".repeat(5);
        assert_eq!(header_name(long.to_ascii_uppercase().as_bytes()), long.as_str());
    }

    #[test]
    fn header_values_keep_their_bytes_in_place_or_on_the_heap() {
        for len in [0, 1, VALUE_INLINE - 1, VALUE_INLINE, VALUE_INLINE + 1, 4096] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let a = HeaderValue::from(bytes.as_slice());
            let b = HeaderValue::from(bytes.clone());
            assert_eq!(a.as_slice(), bytes.as_slice(), "len {len}");
            assert_eq!(a, b, "len {len}");
            assert_eq!(matches!(a.0, ValueRepr::Inline { .. }), len <= VALUE_INLINE, "len {len}");
            assert_eq!(matches!(b.0, ValueRepr::Inline { .. }), len <= VALUE_INLINE, "len {len}");
        }
        assert_ne!(HeaderValue::from("abc"), HeaderValue::from("abd"));
        assert_eq!(HeaderValue::default().as_slice(), b"");
    }

    #[test]
    fn a_header_value_set_in_place_holds_exactly_the_new_bytes() {
        let lens = [0, 1, 5, VALUE_INLINE - 1, VALUE_INLINE, VALUE_INLINE + 1, 300];
        for &before in &lens {
            for &after in &lens {
                let old: Vec<u8> = (0..before).map(|i| (i * 7 % 256) as u8).collect();
                let new: Vec<u8> = (0..after).map(|i| (i * 13 % 251) as u8 ^ 0x55).collect();
                let mut v = HeaderValue::from(old.as_slice());
                v.set(&new);
                assert_eq!(v.as_slice(), new.as_slice(), "{before} -> {after}");
                assert_eq!(v, HeaderValue::from(new.as_slice()), "{before} -> {after}");
                assert_eq!(matches!(v.0, ValueRepr::Inline { .. }), after <= VALUE_INLINE, "{before} -> {after}");
            }
        }
        let mut h = vec![Header::EMPTY; 2];
        assert!(h.iter().all(|h| h.name.is_empty() && h.value.as_slice().is_empty()));
        h[1].value.set(b"text/plain");
        assert_eq!(h[1].value.as_slice(), b"text/plain");
        assert_eq!(h[0].value.as_slice(), b"");
    }
}
