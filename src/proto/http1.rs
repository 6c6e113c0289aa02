//! HTTP/1.0 and HTTP/1.1 (RFC 9112), both directions of one connection.
//!
//! Each direction is an incremental state machine ([`State`]) fed with the
//! reassembled stream: message heads are parsed with `httparse` (with a lenient
//! fallback for request lines that real clients and attackers send, such as a
//! missing version), bodies are framed by Content-Length, chunked coding or
//! connection close (RFC 9112 §6.3) and never buffered beyond the scan limit.
//! Requests are queued and paired with responses in order (pipelining).
//!
//! Gaps (bytes the capture lost): inside a body of known length they are
//! skipped; anywhere else the direction resynchronises by probing each line
//! start for the next message head.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::{lossy, Anomalies, BodyInfo, Header, HeaderName, HttpTransaction, HttpVersion, ProtoStats, HeadFacts, Sampling, TxSink};
use crate::config::HttpConfig;
use crate::flow::Chunk;

/// Header slots handed to httparse; `http.max_headers` may lower the number kept.
const HEADER_SLOTS: usize = 256;
/// Longest chunk-size line (with extensions) accepted before the body is declared broken.
const MAX_CHUNK_LINE: usize = 1024;
/// Longest method token accepted by the lenient request-line parser.
const MAX_METHOD_LEN: usize = 24;

/// Outcome of checking whether bytes can begin a message head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Yes,
    No,
    /// Too few bytes to tell.
    Maybe,
}

fn is_tchar(b: u8) -> bool {
    matches!(b, b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
        || b.is_ascii_alphanumeric()
}

/// Whether `data` can start a request line: a method token (upper-case letters,
/// digits, `_`, `-`) followed by a space and a non-space byte.
fn request_start(data: &[u8]) -> Verdict {
    for (i, &b) in data.iter().enumerate() {
        if b == b' ' {
            if i == 0 {
                return Verdict::No;
            }
            return match data.get(i + 1) {
                None => Verdict::Maybe,
                Some(b' ') | Some(b'\r') | Some(b'\n') => {
                    // "GET \n": still a request line of a kind, but not one we report
                    Verdict::No
                }
                Some(_) => Verdict::Yes,
            };
        }
        if i >= MAX_METHOD_LEN || !(b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
            return Verdict::No;
        }
    }
    Verdict::Maybe
}

/// Whether `data` can start a status line (`HTTP/1.x `).
fn response_start(data: &[u8]) -> Verdict {
    const P: &[u8] = b"HTTP/";
    if data.iter().zip(P).any(|(a, b)| a != b) {
        return Verdict::No;
    }
    if data.len() < P.len() + 1 {
        return Verdict::Maybe;
    }
    match data.get(P.len()) {
        Some(b'0'..=b'9') => Verdict::Yes,
        _ => Verdict::No,
    }
}

/// Whether the first bytes of a stream look like an HTTP/1 request.
pub fn looks_like_request_start(data: &[u8]) -> bool {
    request_start(data) == Verdict::Yes
}

/// Whether a message head (request or status line) starts at a line start inside `data`.
pub fn contains_message_start(data: &[u8]) -> bool {
    let starts = std::iter::once(0).chain(data.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1));
    starts.filter_map(|p| data.get(p..)).any(|d| request_start(d) == Verdict::Yes || response_start(d) == Verdict::Yes)
}

/// Whether the first bytes of a stream could be an HTTP/1 message (possibly incomplete).
pub fn could_be_http_text(data: &[u8]) -> bool {
    request_start(data) != Verdict::No || response_start(data) != Verdict::No
}

/// End of a message head: the index just past the blank line, if present,
/// and whether a line of `buf[from..end]` ended in a bare LF (an LF not
/// after a CR, at index 0 aside). Accepts CRLF and bare LF line endings.
fn find_head_end(buf: &[u8], from: usize) -> Option<(usize, bool)> {
    let mut i = from;
    let mut bare = false;
    while i < buf.len() {
        let p = memchr::memchr(b'\n', buf.get(i..)?)? + i;
        bare |= p > 0 && buf.get(p - 1) != Some(&b'\r');
        // blank line: "\n\n" (its second LF is bare) or "\n\r\n"
        match (buf.get(p + 1), buf.get(p + 2)) {
            (Some(b'\n'), _) => return Some((p + 2, true)),
            (Some(b'\r'), Some(b'\n')) => return Some((p + 3, bare)),
            _ => {}
        }
        i = p + 1;
    }
    None
}

/// How the body of a message is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyKind {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Chunked transfer coding states (RFC 9112 §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    /// Reading the chunk-size line (collected in the side buffer).
    Size,
    /// Reading chunk data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Reading trailer fields until a blank line (collected in the side buffer).
    Trailers,
}

/// One direction's parser state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for or accumulating a message head.
    Head,
    /// Body delimited by length: bytes left.
    Length(u64),
    Chunked(ChunkState),
    UntilClose,
    /// Looking for the next message head after a gap or garbage.
    Resync,
    /// Protocol switched (Upgrade, CONNECT) or HTTP/0.9 response: bytes are not HTTP/1.
    Tunnel,
    /// Given up on this direction.
    Dead,
}

impl State {
    /// Reading a message body.
    fn is_body(self) -> bool {
        matches!(self, State::Length(_) | State::Chunked(_) | State::UntilClose)
    }
}

/// One direction of the connection.
struct Side {
    state: State,
    /// Partial head, chunk-size line or trailers.
    buf: Vec<u8>,
    /// Packet time of the first byte of the message in progress.
    msg_ts: u64,
    /// Whether the next byte starts a line (for resynchronisation).
    line_start: bool,
    /// Bytes scanned since resynchronisation started.
    resync_scanned: usize,
    /// Body info of the message in progress.
    body: BodyInfo,
    /// Bytes of that body to keep as its sample (the transaction's
    /// [`Sampling`]; at most `http.body_scan_bytes`).
    keep: usize,
    anomalies: Anomalies,
}

impl Side {
    fn new(state: State) -> Side {
        Side {
            state,
            buf: Vec::new(),
            msg_ts: 0,
            line_start: true,
            resync_scanned: 0,
            body: BodyInfo::default(),
            keep: usize::MAX,
            anomalies: Anomalies::default(),
        }
    }
}

/// A request waiting for its response.
struct Pending {
    /// Boxed: a queue of a few waiting requests stays a few words per
    /// connection (a transaction is several hundred bytes).
    tx: Box<HttpTransaction>,
    /// HTTP/0.9 request: the response is a bare body, no status line.
    http09: bool,
    /// Request body still being read (the request is not complete yet).
    body_open: bool,
    /// [`HttpTransaction::held_bytes`] of `tx` when it was queued (its body
    /// sample, which grows after, is counted apart).
    held: usize,
}

/// A response head that has been parsed, body in progress.
struct ResponseHead {
    status: u16,
    headers: Vec<Header>,
    ts: u64,
    /// Heap bytes of `headers`.
    held: usize,
}

/// Both directions of one HTTP/1 connection.
pub struct Http1Connection {
    client: SocketAddr,
    server: SocketAddr,
    req: Side,
    resp: Side,
    pending: VecDeque<Pending>,
    response: Option<ResponseHead>,
    /// The response direction lost bytes since the last response head: whole
    /// responses may be gone, so pairing must not rely on order alone.
    responses_lost: bool,
    /// A request answered by `101` to `Upgrade: h2c`, waiting to be handed to HTTP/2.
    /// (Boxed: a transaction is several hundred bytes, and every HTTP/1
    /// connection holds this slot.)
    h2c_upgrade: Option<Box<HttpTransaction>>,
    /// A CONNECT was accepted: the bytes that follow are a new connection's.
    tunnel_opened: bool,
    /// Given up pairing ([`Self::shed`]): requests are reported as they complete.
    requests_only: bool,
}

/// Parsed request head.
struct RequestHead {
    method: std::borrow::Cow<'static, str>,
    target: String,
    version: Option<HttpVersion>,
    headers: Vec<Header>,
    anomalies: Anomalies,
}

/// Which kind of head a header list belongs to (each has its own [`NAMES`]).
#[derive(Clone, Copy)]
enum HeadKind {
    Request = 0,
    Response = 1,
    Other = 2,
}

/// Header positions remembered per kind of head, and the longest name.
const NAME_SLOTS: usize = 32;
const NAME_SLOT_BYTES: usize = 32;

/// A known header name as last sent at one position of a head: its bytes as
/// sent and the shared name they resolve to.
#[derive(Clone, Copy)]
struct NameSlot {
    len: u8,
    raw: [u8; NAME_SLOT_BYTES],
    name: &'static str,
}

std::thread_local! {
    /// The known names last seen at each position of request, response and
    /// other heads on this thread: clients and servers send the same names in
    /// the same order message after message, so a name is mostly the bytes
    /// already resolved at its position (one comparison instead of a
    /// lower-cased copy and a table lookup).
    static NAMES: std::cell::RefCell<[[Option<NameSlot>; NAME_SLOTS]; 3]> = const { std::cell::RefCell::new([[None; NAME_SLOTS]; 3]) };
}

/// The name `bytes` resolve to: from `slot` when it holds these bytes, else
/// worked out (and remembered in `slot` when it is a known name).
fn name_at(slot: Option<&mut Option<NameSlot>>, bytes: &[u8]) -> HeaderName {
    let Some(slot) = slot else { return super::header_name(bytes) };
    if let Some(k) = held_name(slot, bytes) {
        return HeaderName::Borrowed(k);
    }
    let name = super::header_name(bytes);
    if let (HeaderName::Borrowed(k), Ok(len)) = (&name, u8::try_from(bytes.len())) {
        let mut raw = [0u8; NAME_SLOT_BYTES];
        if let Some(r) = raw.get_mut(..bytes.len()) {
            r.copy_from_slice(bytes);
            *slot = Some(NameSlot { len, raw, name: k });
        }
    }
    name
}

/// The known name `slot` holds for exactly these bytes.
#[inline]
fn held_name(slot: &Option<NameSlot>, bytes: &[u8]) -> Option<&'static str> {
    slot.as_ref().filter(|held| held.raw.get(..usize::from(held.len)).is_some_and(|raw| super::short_eq(raw, bytes))).map(|held| held.name)
}

fn collect_headers(raw: &[httparse::Header<'_>], max: usize, kind: HeadKind, anomalies: &mut Anomalies) -> Vec<Header> {
    // the vector is filled with empty headers first and each is then written
    // where it is: a header built aside and pushed is stored field by field
    // and loaded back whole, which stalls (the store cannot be forwarded)
    let mut out = Vec::new();
    out.resize_with(raw.len().min(max), || Header::EMPTY);
    let mut n = 0usize;
    NAMES.with(|cell| {
        let mut names = cell.try_borrow_mut().ok();
        let mut slots = names.as_deref_mut().and_then(|n| n.get_mut(kind as usize));
        for h in raw.iter().filter(|h| !h.name.is_empty()) {
            let Some(dst) = out.get_mut(n) else {
                anomalies.set(Anomalies::TOO_MANY_HEADERS);
                break;
            };
            let slot = slots.as_deref_mut().and_then(|s| s.get_mut(n));
            dst.name = match slot.as_deref().and_then(|s| held_name(s, h.name.as_bytes())) {
                Some(k) => HeaderName::Borrowed(k),
                None => name_at(slot, h.name.as_bytes()),
            };
            dst.value.set(h.value);
            n += 1;
        }
    });
    out.truncate(n);
    out
}

fn header_parser_config() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_spaces_after_header_name_in_responses(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .ignore_invalid_headers_in_requests(true)
        .ignore_invalid_headers_in_responses(true);
    c
}

fn version_of(minor: Option<u8>) -> HttpVersion {
    match minor {
        Some(0) => HttpVersion::Http10,
        _ => HttpVersion::Http11,
    }
}

/// Parses the header block after the first line, leniently.
fn parse_header_block(block: &[u8], max: usize, anomalies: &mut Anomalies) -> Vec<Header> {
    let mut slots = [httparse::EMPTY_HEADER; HEADER_SLOTS];
    // header fields one per line; httparse::parse_headers handles the block
    match httparse::parse_headers(block, &mut slots) {
        Ok(httparse::Status::Complete((_, hs))) => collect_headers(hs, max, HeadKind::Other, anomalies),
        Ok(httparse::Status::Partial) | Err(_) => {
            // fall back to a line-by-line split, skipping lines without a colon
            let mut out = Vec::new();
            for line in block.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.is_empty() {
                    break;
                }
                if let Some(c) = line.iter().position(|&b| b == b':') {
                    if out.len() >= max {
                        anomalies.set(Anomalies::TOO_MANY_HEADERS);
                        break;
                    }
                    let name = line.get(..c).unwrap_or_default();
                    let value = line.get(c + 1..).unwrap_or_default();
                    let value = value.trim_ascii();
                    out.push(Header { name: super::header_name(name.trim_ascii()), value: value.into() });
                }
            }
            out
        }
    }
}

/// Parses a request head (`head` ends with the blank line, or is a lone
/// HTTP/0.9 request line).
fn parse_request_head(head: &[u8], cfg: &HttpConfig) -> Option<RequestHead> {
    let mut anomalies = Anomalies::default();
    // uninitialised slots: httparse fills what it parses (initialising 256
    // slots would cost more than parsing a typical head)
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_SLOTS];
    let mut req = httparse::Request::new(&mut []);
    if let Ok(httparse::Status::Complete(_)) = header_parser_config().parse_request_with_uninit_headers(&mut req, head, &mut slots) {
        let method = super::method_text(req.method.unwrap_or_default().as_bytes());
        let target = req.path.unwrap_or_default().to_string();
        let version = Some(version_of(req.version));
        let headers = collect_headers(req.headers, cfg.max_headers, HeadKind::Request, &mut anomalies);
        return Some(RequestHead { method, target, version, headers, anomalies });
    }
    // Lenient path: METHOD SP TARGET [SP VERSION] with odd bytes in the target,
    // a malformed or missing version, or repeated spaces.
    let line_end = head.iter().position(|&b| b == b'\n')?;
    let line = head.get(..line_end)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ').filter(|p| !p.is_empty());
    let method = parts.next()?;
    if method.is_empty() || method.len() > MAX_METHOD_LEN || !method.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    let target = parts.next()?;
    let version_tok = parts.next();
    let version = match version_tok {
        None => None,
        Some(v) if v.starts_with(b"HTTP/1.0") => Some(HttpVersion::Http10),
        Some(v) if v.starts_with(b"HTTP/") => Some(HttpVersion::Http11),
        Some(_) => return None,
    };
    anomalies.set(Anomalies::INVALID_REQUEST_HEAD);
    let rest = head.get(line_end + 1..).unwrap_or_default();
    let headers = parse_header_block(rest, cfg.max_headers, &mut anomalies);
    Some(RequestHead { method: super::method_text(method), target: lossy(target), version, headers, anomalies })
}

/// Parses a status line and header block: (status, headers, anomalies).
fn parse_response_head(head: &[u8], cfg: &HttpConfig) -> Option<(u16, Vec<Header>, Anomalies)> {
    let mut anomalies = Anomalies::default();
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_SLOTS];
    let mut resp = httparse::Response::new(&mut []);
    if let Ok(httparse::Status::Complete(_)) = header_parser_config().parse_response_with_uninit_headers(&mut resp, head, &mut slots) {
        let code = resp.code?;
        let headers = collect_headers(resp.headers, cfg.max_headers, HeadKind::Response, &mut anomalies);
        return Some((code, headers, anomalies));
    }
    // Lenient: "HTTP/x.y ddd[ reason]" with oddities elsewhere.
    let line_end = head.iter().position(|&b| b == b'\n')?;
    let line = head.get(..line_end)?;
    let mut parts = line.split(|&b| b == b' ' || b == b'\r').filter(|p| !p.is_empty());
    let version = parts.next()?;
    if !version.starts_with(b"HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = code.iter().fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    anomalies.set(Anomalies::INVALID_RESPONSE_HEAD);
    let headers = parse_header_block(head.get(line_end + 1..).unwrap_or_default(), cfg.max_headers, &mut anomalies);
    Some((status, headers, anomalies))
}

/// Framing of a message from its headers: Transfer-Encoding, then Content-Length.
fn framing(headers: &[Header], anomalies: &mut Anomalies, is_request: bool) -> BodyKind {
    let mut te_chunked_last = None;
    // Content-Length values: the first, the last, how many, whether all agree
    let (mut first, mut last, mut count, mut agree) = (None::<u64>, 0u64, 0usize, true);
    let mut bad_length = false;
    for h in headers {
        if h.name == "transfer-encoding" {
            let last_coding = h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii).rfind(|s| !s.is_empty()).unwrap_or(b"");
            te_chunked_last = Some(last_coding.eq_ignore_ascii_case(b"chunked"));
        } else if h.name == "content-length" {
            for part in h.value.split(|&b| b == b',') {
                let t = part.trim_ascii();
                match std::str::from_utf8(t).ok().and_then(|s| s.parse::<u64>().ok()) {
                    Some(n) => {
                        agree &= first.is_none_or(|f| f == n);
                        first.get_or_insert(n);
                        last = n;
                        count += 1;
                    }
                    None => bad_length = true,
                }
            }
        }
    }
    if let Some(chunked) = te_chunked_last {
        if count > 0 {
            anomalies.set(Anomalies::CL_AND_TE);
        }
        if chunked {
            return BodyKind::Chunked;
        }
        anomalies.set(Anomalies::UNKNOWN_TE);
        return if is_request { BodyKind::None } else { BodyKind::UntilClose };
    }
    if count > 1 {
        anomalies.set(Anomalies::MULTIPLE_CONTENT_LENGTH);
    }
    let length = |n: u64| if n == 0 { BodyKind::None } else { BodyKind::Length(n) };
    match first {
        Some(n) if !bad_length && agree => length(n),
        // conflicting or malformed lengths (an anomaly, flagged above): the last
        // valid value wins, as in Wireshark's dissector
        Some(_) => length(last),
        None if bad_length => {
            anomalies.set(Anomalies::MULTIPLE_CONTENT_LENGTH);
            if is_request {
                BodyKind::None
            } else {
                BodyKind::UntilClose
            }
        }
        None if is_request => BodyKind::None,
        None => BodyKind::UntilClose,
    }
}

fn header_str(headers: &[Header], name: &str) -> Option<String> {
    headers.iter().find(|h| h.name == name).map(|h| lossy(&h.value))
}

impl Http1Connection {
    /// A connection; `midstream` when its start was not seen (parsers begin by resynchronising).
    pub fn new(client: SocketAddr, server: SocketAddr, midstream: bool, _cfg: &HttpConfig) -> Http1Connection {
        let start = if midstream { State::Resync } else { State::Head };
        Http1Connection {
            client,
            server,
            req: Side::new(start),
            resp: Side::new(start),
            pending: VecDeque::new(),
            response: None,
            responses_lost: false,
            h2c_upgrade: None,
            requests_only: false,
            tunnel_opened: false,
        }
    }

    fn side(&mut self, is_req: bool) -> &mut Side {
        if is_req {
            &mut self.req
        } else {
            &mut self.resp
        }
    }

    /// Feeds a chunk of the request (`is_req`) or response direction. Returns
    /// how many bytes of a `Data` chunk were HTTP/1 (the rest follows a protocol switch).
    pub fn on_chunk(
        &mut self,
        is_req: bool,
        chunk: Chunk<'_>,
        ts: u64,
        cfg: &HttpConfig,
        stats: &mut ProtoStats,
        out: &mut dyn TxSink,
    ) -> usize {
        let consumed = match chunk {
            Chunk::Data(d) => self.feed(is_req, d, ts, cfg, stats, out),
            Chunk::Gap(n) => {
                self.gap(is_req, n, cfg, stats, out);
                0
            }
            Chunk::End => {
                self.end(is_req, cfg, stats, out);
                0
            }
        };
        if self.requests_only {
            self.report_complete_requests(stats, out);
        }
        consumed
    }

    /// Bytes this connection holds: partial heads, the bodies in progress,
    /// requests waiting for their responses and the response being read.
    /// O(waiting requests): at most `http.max_pending_requests`, and one or
    /// none on most connections.
    pub fn held_bytes(&self) -> usize {
        let side = |s: &Side| s.buf.capacity() + s.body.sample.capacity();
        side(&self.req)
            + side(&self.resp)
            + self.pending.iter().map(|p| p.held + p.tx.request_body.sample.capacity()).sum::<usize>()
            + self.pending.capacity() * std::mem::size_of::<Pending>()
            + self.response.as_ref().map_or(0, |r| r.held)
            + self.h2c_upgrade.as_ref().map_or(0, |t| t.held_bytes())
    }

    /// Frees what the connection holds for pairing, when the parsers' memory
    /// budget is spent: the requests waiting are reported without a response,
    /// the response in progress is dropped, and from here on the responses
    /// are not read and each request is reported as soon as it is complete.
    /// Requests are not lost; only this connection's responses are.
    pub fn shed(&mut self, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        if !self.requests_only {
            stats.parser_bytes_limit_hit += 1;
        }
        self.requests_only = true;
        self.response = None;
        self.resp.state = State::Dead;
        self.resp.buf = Vec::new();
        self.resp.body = BodyInfo::default();
        self.h2c_upgrade = None;
        self.report_complete_requests(stats, out);
        self.pending.shrink_to_fit();
    }

    /// Reports the complete requests at the front of the queue without a
    /// response (after [`Self::shed`]: none is awaited).
    fn report_complete_requests(&mut self, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        while self.pending.front().is_some_and(|p| !p.body_open) {
            if let Some(p) = self.pending.pop_front() {
                self.emit_unanswered(p, stats, out);
            }
        }
    }

    /// The request whose `Upgrade: h2c` the server accepted, once: the caller
    /// continues the connection as HTTP/2 with it as stream 1.
    pub fn take_h2c_upgrade(&mut self) -> Option<HttpTransaction> {
        self.h2c_upgrade.take().map(|b| *b)
    }

    /// Whether a CONNECT tunnel opened during the last call, once.
    pub fn take_tunnel_opened(&mut self) -> bool {
        std::mem::take(&mut self.tunnel_opened)
    }

    fn feed(&mut self, is_req: bool, data: &[u8], ts: u64, cfg: &HttpConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) -> usize {
        if !is_req {
            self.prepare_response();
        }
        let total = data.len();
        let mut data = data;
        while !data.is_empty() {
            let state = self.side(is_req).state;
            let consumed = match state {
                State::Head => self.head(is_req, data, ts, cfg, stats, out),
                State::Length(_) | State::Chunked(_) | State::UntilClose => self.body(is_req, data, cfg, stats, out),
                State::Resync => self.resync(is_req, data, cfg, stats),
                State::Tunnel | State::Dead => break,
            };
            // every handler consumes at least one byte or changes state; guard anyway
            let consumed = consumed.min(data.len());
            let side = self.side(is_req);
            if state.is_body() {
                // Body bytes are mostly never read (only sampled bodies are):
                // their last byte is not fetched just for this. A body that
                // ended leaves the side at a message boundary, a line start.
                if consumed > 0 {
                    side.line_start = !side.state.is_body();
                }
            } else if let Some(last) = data.get(..consumed).and_then(|d| d.last()) {
                side.line_start = *last == b'\n';
            }
            data = data.get(consumed..).unwrap_or_default();
        }
        total - data.len()
    }

    /// Head state: skip blank lines between messages, accumulate until the blank line.
    fn head(&mut self, is_req: bool, data: &[u8], ts: u64, cfg: &HttpConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) -> usize {
        let side = self.side(is_req);
        if side.buf.is_empty() {
            let blank = data.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            if blank > 0 {
                return blank;
            }
            let verdict = if is_req { request_start(data) } else { response_start(data) };
            if verdict == Verdict::No {
                side.anomalies.set(if is_req { Anomalies::INVALID_REQUEST_HEAD } else { Anomalies::INVALID_RESPONSE_HEAD });
                stats.anomalies += 1;
                side.state = State::Resync;
                side.line_start = false;
                return 0;
            }
            side.msg_ts = ts;
            if let Some((end, bare_lf)) = find_head_end(data, 0).filter(|&(e, _)| e <= cfg.max_header_bytes) {
                // every line of the head was looked at: its bare LFs are known
                self.complete_head(is_req, data.get(..end).unwrap_or_default(), Some(bare_lf), cfg, stats, out);
                return end;
            }
            if is_req {
                if let Some(n) = http09_request_len(data) {
                    self.complete_head(is_req, data.get(..n).unwrap_or_default(), None, cfg, stats, out);
                    return n;
                }
            }
            let side = self.side(is_req);
            let take = data.len().min(cfg.max_header_bytes);
            side.buf.extend_from_slice(data.get(..take).unwrap_or_default());
            if side.buf.len() >= cfg.max_header_bytes {
                self.head_too_large(is_req, stats);
            }
            return take;
        }
        let old = side.buf.len();
        let room = cfg.max_header_bytes.saturating_sub(old);
        let take = data.len().min(room);
        side.buf.extend_from_slice(data.get(..take).unwrap_or_default());
        if let Some((end, _)) = find_head_end(&side.buf, old.saturating_sub(2)) {
            let mut head = std::mem::take(&mut side.buf);
            self.complete_head(is_req, head.get(..end).unwrap_or_default(), None, cfg, stats, out);
            head.clear();
            let side = self.side(is_req);
            if side.buf.is_empty() {
                side.buf = head; // keep the allocation
            }
            return end.saturating_sub(old);
        }
        if is_req && data.len() == take {
            if let Some(n) = http09_request_len(&side.buf) {
                let mut head = std::mem::take(&mut side.buf);
                self.complete_head(is_req, head.get(..n).unwrap_or_default(), None, cfg, stats, out);
                head.clear();
                self.side(is_req).buf = head;
                return take;
            }
        }
        let side = self.side(is_req);
        if side.buf.len() >= cfg.max_header_bytes {
            self.head_too_large(is_req, stats);
        } else if (if is_req { request_start(&side.buf) } else { response_start(&side.buf) }) == Verdict::No {
            side.buf.clear();
            side.state = State::Resync;
            stats.anomalies += 1;
        }
        take.max(1).min(data.len())
    }

    fn head_too_large(&mut self, is_req: bool, stats: &mut ProtoStats) {
        let side = self.side(is_req);
        side.buf.clear();
        side.anomalies.set(Anomalies::HEADER_TOO_LARGE);
        side.state = State::Resync;
        stats.header_limit_hit += 1;
        stats.anomalies += 1;
    }

    /// A complete head: start the message and its body. `bare_lf`: whether
    /// it has a bare LF, when the caller knows (else it is looked for here).
    fn complete_head(&mut self, is_req: bool, head: &[u8], bare_lf: Option<bool>, cfg: &HttpConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let bare_lf = bare_lf.unwrap_or_else(|| memchr::memchr_iter(b'\n', head).any(|i| i > 0 && head.get(i - 1) != Some(&b'\r')));
        if bare_lf {
            self.side(is_req).anomalies.set(Anomalies::BARE_LF);
        }
        if is_req {
            self.complete_request_head(head, cfg, stats, out);
        } else {
            self.complete_response_head(head, cfg, stats, out);
        }
    }

    fn complete_request_head(&mut self, head: &[u8], cfg: &HttpConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let Some(parsed) = parse_request_head(head, cfg) else {
            self.req.anomalies.set(Anomalies::INVALID_REQUEST_HEAD);
            stats.anomalies += 1;
            self.req.state = State::Resync;
            return;
        };
        let http09 = parsed.version.is_none() && parsed.headers.is_empty() && !head.windows(2).any(|w| w == b"\n\n" || w == b"\n\r");
        let mut anomalies = parsed.anomalies;
        anomalies.0 |= std::mem::take(&mut self.req.anomalies).0;
        let kind = if http09 { BodyKind::None } else { framing(&parsed.headers, &mut anomalies, true) };
        let is_connect = parsed.method.eq_ignore_ascii_case("CONNECT");
        let host = parsed.headers.iter().find(|h| h.name == "host").map(|h| super::shared_host(&h.value));
        let version = parsed.version.unwrap_or(HttpVersion::Http09);
        let sampling = out.sampling(&HeadFacts {
            method: parsed.method.as_bytes(),
            target: parsed.target.as_bytes(),
            host: host.as_deref().map(str::as_bytes),
            server: self.server,
        });
        let request_keep = sampling.request_keep(cfg.body_scan_bytes);
        let tx = HttpTransaction {
            client: self.client,
            server: self.server,
            version,
            method: parsed.method,
            target: parsed.target,
            host,
            request_headers: parsed.headers,
            response_headers: Vec::new(),
            status: None,
            interim_statuses: Vec::new(),
            request_ts_us: self.req.msg_ts,
            response_ts_us: None,
            request_body: BodyInfo::default(),
            response_body: BodyInfo::default(),
            upgrade: None,
            anomalies,
            stream_id: None,
            pushed: false,
            grpc: None,
            decrypted: false,
            sampling: Some(sampling),
        };
        if !anomalies.is_empty() {
            stats.anomalies += 1;
        }
        if self.pending.len() >= cfg.max_pending_requests {
            if let Some(old) = self.pending.pop_front() {
                stats.pending_limit_dropped += 1;
                self.emit_unanswered(old, stats, out);
            }
        }
        self.req.body = BodyInfo::default();
        self.req.keep = request_keep;
        self.req.state = match kind {
            BodyKind::None | BodyKind::UntilClose => State::Head,
            BodyKind::Length(n) => State::Length(n),
            BodyKind::Chunked => State::Chunked(ChunkState::Size),
        };
        let body_open = !matches!(self.req.state, State::Head);
        if is_connect || http09 {
            // the client speaks the tunnelled protocol (or waits for a bare body) from now on
            self.req.state = State::Tunnel;
        }
        let held = tx.held_bytes();
        self.pending.push_back(Pending { tx: Box::new(tx), http09, body_open, held });
    }

    fn complete_response_head(&mut self, head: &[u8], cfg: &HttpConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let Some((status, headers, mut anomalies)) = parse_response_head(head, cfg) else {
            self.resp.anomalies.set(Anomalies::INVALID_RESPONSE_HEAD);
            stats.anomalies += 1;
            self.resp.state = State::Resync;
            return;
        };
        anomalies.0 |= self.resp.anomalies.0;
        self.resp.anomalies = anomalies;
        if (100..200).contains(&status) && status != 101 {
            if let Some(p) = self.pending.front_mut() {
                p.tx.interim_statuses.push(status);
            }
            self.resp.anomalies = Anomalies::default();
            self.resp.state = State::Head;
            return;
        }
        if std::mem::take(&mut self.responses_lost) {
            self.drop_requests_answered_in_gap(self.resp.msg_ts, stats, out);
        }
        let (method_head, method_connect) = match self.pending.front() {
            Some(p) => (p.tx.method.eq_ignore_ascii_case("HEAD"), p.tx.method.eq_ignore_ascii_case("CONNECT")),
            None => (false, false),
        };
        let mut kind = framing(&headers, &mut self.resp.anomalies, false);
        if method_head || status == 204 || status == 304 || status == 101 || (method_connect && (200..300).contains(&status)) {
            kind = BodyKind::None;
        }
        let ts = self.resp.msg_ts;
        let held = super::headers_bytes(&headers);
        self.response = Some(ResponseHead { status, headers, ts, held });
        self.resp.body = BodyInfo::default();
        // the request it answers decided (a response without one is not reported)
        let sampling = self.pending.front().map_or(&Sampling::NONE, |p| p.tx.sampling.as_ref().unwrap_or(&Sampling::ALL));
        self.resp.keep = sampling.response_keep(cfg.body_scan_bytes, Some(status));
        if status == 101 || (method_connect && (200..300).contains(&status)) {
            let proto = self
                .response
                .as_ref()
                .and_then(|r| header_str(&r.headers, "upgrade"))
                .unwrap_or_else(|| if method_connect { "CONNECT".to_string() } else { "unknown".to_string() });
            stats.upgrades += 1;
            let h2c = status == 101 && proto.trim().eq_ignore_ascii_case("h2c");
            if h2c && self.pending.len() == 1 {
                // the request becomes HTTP/2 stream 1; its final response comes there
                self.response = None;
                if let Some(p) = self.pending.pop_front() {
                    self.h2c_upgrade = Some(p.tx);
                }
            } else {
                self.finish_response(stats, out, Some(proto));
                self.tunnel_opened = method_connect;
            }
            self.req.state = State::Tunnel;
            self.resp.state = State::Tunnel;
            return;
        }
        if method_connect {
            // CONNECT refused: the client is back to HTTP
            self.req.state = State::Resync;
        }
        match kind {
            BodyKind::None => {
                self.resp.state = State::Head;
                self.finish_response(stats, out, None);
            }
            BodyKind::Length(n) => self.resp.state = State::Length(n),
            BodyKind::Chunked => self.resp.state = State::Chunked(ChunkState::Size),
            BodyKind::UntilClose => self.resp.state = State::UntilClose,
        }
    }

    /// After response bytes were lost, a response head seen at `ts` answers, as
    /// far as can be told, the latest request sent before it: earlier pending
    /// requests had their responses in the lost bytes (browsers do not
    /// pipeline). They are reported without a response.
    fn drop_requests_answered_in_gap(&mut self, ts: u64, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let before = self.pending.iter().filter(|p| p.tx.request_ts_us <= ts).count();
        for _ in 1..before {
            if let Some(mut p) = self.pending.pop_front() {
                p.tx.anomalies.set(Anomalies::RESPONSE_GAP);
                self.emit_unanswered(p, stats, out);
            }
        }
    }

    /// The response in progress is complete: pair it with the oldest request.
    fn finish_response(&mut self, stats: &mut ProtoStats, out: &mut dyn TxSink, upgrade: Option<String>) {
        let Some(resp) = self.response.take() else { return };
        let body = std::mem::take(&mut self.resp.body);
        let anomalies = std::mem::take(&mut self.resp.anomalies);
        let Some(mut p) = self.pending.pop_front() else {
            stats.responses_without_request += 1;
            return;
        };
        if p.body_open {
            // the server answered before the request body ended (e.g. an early error)
            p.tx.request_body = self.req.body.clone();
        }
        p.tx.status = Some(resp.status);
        p.tx.response_headers = resp.headers;
        p.tx.response_ts_us = Some(resp.ts);
        p.tx.response_body = body;
        p.tx.anomalies.0 |= anomalies.0;
        p.tx.upgrade = upgrade;
        if !anomalies.is_empty() {
            stats.anomalies += 1;
        }
        stats.transactions += 1;
        out.txs().push(*p.tx);
    }

    fn emit_unanswered(&mut self, mut p: Pending, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        p.tx.anomalies.set(Anomalies::NO_RESPONSE);
        stats.requests_without_response += 1;
        stats.transactions += 1;
        out.txs().push(*p.tx);
    }

    /// The request body in progress is complete.
    fn finish_request_body(&mut self) {
        let body = std::mem::take(&mut self.req.body);
        if let Some(p) = self.pending.iter_mut().rev().find(|p| p.body_open) {
            p.body_open = false;
            p.tx.request_body = body;
        }
    }

    fn body_done(&mut self, is_req: bool, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        self.side(is_req).state = State::Head;
        if is_req {
            self.finish_request_body();
        } else {
            self.finish_response(stats, out, None);
        }
    }

    /// Body states: consume body bytes.
    fn body(&mut self, is_req: bool, data: &[u8], cfg: &HttpConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) -> usize {
        let side = self.side(is_req);
        let limit = side.keep.min(cfg.body_scan_bytes);
        match side.state {
            State::Length(rem) => {
                let n = usize::try_from(rem).unwrap_or(usize::MAX).min(data.len());
                if side.body.sample.capacity() == 0 {
                    // the sample's final size is known: one allocation, no regrowth
                    let want = usize::try_from(rem).unwrap_or(usize::MAX).min(limit);
                    side.body.sample.reserve_exact(want);
                }
                side.body.add(data.get(..n).unwrap_or_default(), limit, stats);
                let left = rem - n as u64;
                if left == 0 {
                    self.body_done(is_req, stats, out);
                } else {
                    side.state = State::Length(left);
                }
                n
            }
            State::UntilClose => {
                side.body.add(data, limit, stats);
                data.len()
            }
            State::Chunked(cs) => self.chunked(is_req, cs, data, cfg, stats, out),
            _ => 0,
        }
    }

    fn bad_chunk(&mut self, is_req: bool, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let side = self.side(is_req);
        side.anomalies.set(Anomalies::BAD_CHUNK);
        side.buf.clear();
        stats.anomalies += 1;
        // The message ends here as far as we can tell. Its peer cannot frame
        // what follows either (servers reject and close), so this direction is
        // given up rather than resynchronised: bytes after a broken chunk are
        // not trusted as new messages.
        self.body_done(is_req, stats, out);
        self.side(is_req).state = State::Dead;
    }

    fn chunked(&mut self, is_req: bool, cs: ChunkState, data: &[u8], cfg: &HttpConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) -> usize {
        let side = self.side(is_req);
        match cs {
            ChunkState::Size => {
                let nl = data.iter().position(|&b| b == b'\n');
                let take = nl.map_or(data.len(), |p| p + 1);
                if side.buf.len() + take > MAX_CHUNK_LINE {
                    self.bad_chunk(is_req, stats, out);
                    return take.min(data.len());
                }
                side.buf.extend_from_slice(data.get(..take).unwrap_or_default());
                if nl.is_none() {
                    return take;
                }
                let line = std::mem::take(&mut side.buf);
                let digits: &[u8] = {
                    let t = line.trim_ascii();
                    let end = t.iter().position(|&b| b == b';' || b == b' ' || b == b'\t').unwrap_or(t.len());
                    t.get(..end).unwrap_or_default()
                };
                let size = if digits.is_empty() || digits.len() > 16 {
                    None
                } else {
                    std::str::from_utf8(digits).ok().and_then(|s| u64::from_str_radix(s, 16).ok())
                };
                side.buf = line;
                side.buf.clear();
                match size {
                    Some(0) => side.state = State::Chunked(ChunkState::Trailers),
                    Some(n) => side.state = State::Chunked(ChunkState::Data(n)),
                    None => self.bad_chunk(is_req, stats, out),
                }
                take
            }
            ChunkState::Data(rem) => {
                let n = usize::try_from(rem).unwrap_or(usize::MAX).min(data.len());
                side.body.add(data.get(..n).unwrap_or_default(), side.keep.min(cfg.body_scan_bytes), stats);
                let left = rem - n as u64;
                side.state = State::Chunked(if left == 0 { ChunkState::DataEnd } else { ChunkState::Data(left) });
                n
            }
            ChunkState::DataEnd => match data.first() {
                Some(b'\r') => 1,
                Some(b'\n') => {
                    side.state = State::Chunked(ChunkState::Size);
                    1
                }
                _ => {
                    self.bad_chunk(is_req, stats, out);
                    0
                }
            },
            ChunkState::Trailers => {
                let nl = data.iter().position(|&b| b == b'\n');
                let take = nl.map_or(data.len(), |p| p + 1);
                let line_start = side.buf.len();
                side.buf.extend_from_slice(data.get(..take).unwrap_or_default());
                if nl.is_some() {
                    let line = side.buf.get(line_start..).unwrap_or_default();
                    let blank = line == b"\n" || line == b"\r\n" || side.buf == b"\n" || side.buf == b"\r\n";
                    if blank {
                        side.buf.clear();
                        self.body_done(is_req, stats, out);
                        return take;
                    }
                    // a trailer field line: keep only the current line
                    side.buf.clear();
                } else if side.buf.len() > cfg.max_header_bytes {
                    self.bad_chunk(is_req, stats, out);
                }
                take
            }
        }
    }

    /// Resync state: find a line start that begins a message head.
    fn resync(&mut self, is_req: bool, data: &[u8], cfg: &HttpConfig, stats: &mut ProtoStats) -> usize {
        let side = self.side(is_req);
        let check = |d: &[u8]| if is_req { request_start(d) } else { response_start(d) };
        let mut pos = if side.line_start { Some(0) } else { None };
        let mut scan = 0usize;
        loop {
            let p = match pos {
                Some(p) => p,
                None => match data.get(scan..).and_then(|d| d.iter().position(|&b| b == b'\n')) {
                    Some(off) => scan + off + 1,
                    None => break,
                },
            };
            pos = None;
            if p >= data.len() {
                break;
            }
            let rest = data.get(p..).unwrap_or_default();
            match check(rest) {
                Verdict::Yes | Verdict::Maybe => {
                    side.state = State::Head;
                    side.resync_scanned = 0;
                    side.buf.clear();
                    stats.resyncs += 1;
                    return p;
                }
                Verdict::No => scan = p,
            }
        }
        side.resync_scanned = side.resync_scanned.saturating_add(data.len());
        if side.resync_scanned > cfg.resync_scan_bytes {
            side.state = State::Dead;
            stats.resync_gave_up += 1;
        }
        data.len()
    }

    fn gap(&mut self, is_req: bool, n: u64, cfg: &HttpConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let _ = cfg;
        let flag = if is_req { Anomalies::REQUEST_GAP } else { Anomalies::RESPONSE_GAP };
        if !is_req {
            // a gap inside a body of known length loses no message; any other may
            let absorbed = matches!(self.resp.state, State::Length(rem) if n <= rem);
            self.responses_lost |= !absorbed;
        }
        let side = self.side(is_req);
        // the byte after a gap is probed as a possible message start (the gap
        // often ends at a message boundary: a lost body or a lost message)
        side.line_start = true;
        match side.state {
            State::Head => {
                if !side.buf.is_empty() {
                    stats.gaps_in_head += 1;
                }
                side.buf.clear();
                side.state = State::Resync;
            }
            State::Length(rem) => {
                side.anomalies.set(flag);
                side.body.gap_bytes = side.body.gap_bytes.saturating_add(n.min(rem));
                side.body.length = side.body.length.saturating_add(n.min(rem));
                if n >= rem {
                    self.body_done(is_req, stats, out);
                    if n > rem {
                        self.side(is_req).state = State::Resync;
                    }
                } else {
                    side.state = State::Length(rem - n);
                }
            }
            State::Chunked(_) => {
                side.anomalies.set(flag);
                side.body.gap_bytes = side.body.gap_bytes.saturating_add(n);
                side.buf.clear();
                self.body_done(is_req, stats, out);
                self.side(is_req).state = State::Resync;
            }
            State::UntilClose => {
                side.anomalies.set(flag);
                side.body.gap_bytes = side.body.gap_bytes.saturating_add(n);
                side.body.length = side.body.length.saturating_add(n);
            }
            State::Resync | State::Tunnel | State::Dead => {}
        }
        if is_req {
            if let Some(p) = self.pending.back_mut() {
                p.tx.anomalies.set(flag);
            }
        }
    }

    fn end(&mut self, is_req: bool, cfg: &HttpConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let _ = cfg;
        let side = self.side(is_req);
        match side.state {
            State::UntilClose | State::Length(_) | State::Chunked(_) => self.body_done(is_req, stats, out),
            State::Tunnel if !is_req => {
                // an HTTP/0.9 response: the bare body ran until close
                if self.pending.front().is_some_and(|p| p.http09) {
                    if let Some(p) = self.pending.pop_front() {
                        stats.transactions += 1;
                        out.txs().push(*p.tx);
                    }
                }
            }
            _ => {}
        }
        let side = self.side(is_req);
        side.buf.clear();
        if !matches!(side.state, State::Tunnel) {
            side.state = State::Dead;
        }
    }

    /// The connection is closing: complete what is in progress and report
    /// requests that never got a response.
    pub fn finish(&mut self, _ts: u64, cfg: &HttpConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        self.end(false, cfg, stats, out);
        if self.response.is_some() {
            self.finish_response(stats, out, None);
        }
        self.end(true, cfg, stats, out);
        while let Some(p) = self.pending.pop_front() {
            if p.http09 {
                stats.transactions += 1;
                out.txs().push(*p.tx);
            } else {
                self.emit_unanswered(p, stats, out);
            }
        }
    }

    /// Called when the response side sees bytes while an HTTP/0.9 request waits:
    /// such responses have no status line.
    fn response_is_http09(&self) -> bool {
        self.pending.front().is_some_and(|p| p.http09)
    }
}

/// Length of an HTTP/0.9 request (`GET SP target LF`, nothing after it), if `data` is one.
fn http09_request_len(data: &[u8]) -> Option<usize> {
    let nl = data.iter().position(|&b| b == b'\n')?;
    if nl + 1 != data.len() {
        return None;
    }
    let line = data.get(..nl)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line.strip_prefix(b"GET ")?;
    if rest.is_empty() || rest.contains(&b' ') {
        return None;
    }
    Some(nl + 1)
}

impl Http1Connection {
    /// Response bytes for an HTTP/0.9 request switch the response side to a bare body.
    pub(crate) fn prepare_response(&mut self) {
        if self.resp.state == State::Head && self.resp.buf.is_empty() && self.response_is_http09() {
            self.resp.state = State::Tunnel;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies the sink will not read are counted but not kept; an error
    /// response keeps its start; the others keep up to `body_scan_bytes`.
    #[test]
    fn unsampled_bodies_are_counted_not_kept() {
        let (client, server) = (addr("10.0.0.1:40000"), addr("10.0.0.2:80"));
        let c = cfg();
        let mut conn = Http1Connection::new(client, server, false, &c);
        let mut st = ProtoStats::default();
        let mut sink = super::super::Picky::default();
        let big = "e".repeat(super::super::ERROR_BODY_KEEP + 3000);
        let req = "POST /skip/a HTTP/1.1\r\nHost: Api.Example\r\nContent-Length: 5\r\n\r\nhello\
                   POST /keep/b HTTP/1.1\r\nHost: api.example\r\nContent-Length: 5\r\n\r\nworld\
                   GET /skip/c HTTP/1.1\r\nHost: api.example\r\n\r\n";
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc\
             HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n\
             HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\n\r\n{big}",
            big.len()
        );
        conn.on_chunk(true, Chunk::Data(req.as_bytes()), 1, &c, &mut st, &mut sink);
        conn.on_chunk(false, Chunk::Data(resp.as_bytes()), 2, &c, &mut st, &mut sink);
        // (the chunked response of /keep/b too)
        sink.check_three("Api.Example", server, big.as_bytes());
        // the host as sent; requests that repeat it share one copy
        let hosts: Vec<Option<&str>> = sink.txs.iter().map(|t| t.host.as_deref()).collect();
        assert_eq!(hosts, [Some("Api.Example"), Some("api.example"), Some("api.example")]);
        let same = |a: &HttpTransaction, b: &HttpTransaction| matches!((&a.host, &b.host), (Some(x), Some(y)) if std::sync::Arc::ptr_eq(x, y));
        assert!(same(&sink.txs[1], &sink.txs[2]) && !same(&sink.txs[0], &sink.txs[1]));
        // the limit still holds for bodies that are read
        let mut small = cfg();
        small.body_scan_bytes = 2;
        let mut conn = Http1Connection::new(client, server, false, &small);
        let mut sink = super::super::Picky::default();
        conn.on_chunk(true, Chunk::Data(b"GET /skip HTTP/1.1\r\nHost: h\r\n\r\n"), 1, &small, &mut st, &mut sink);
        conn.on_chunk(false, Chunk::Data(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope"), 2, &small, &mut st, &mut sink);
        assert_eq!(sink.txs[0].response_body.sample, b"no");
    }

    /// Names found through the per-position memory are the names
    /// `header_name` gives, whatever order, spelling and length they come in.
    #[test]
    fn remembered_header_names_are_the_names_worked_out_again() {
        let long = "X-".repeat(NAME_SLOT_BYTES);
        // known names of one length (six), others of their own, unknown ones, one too long to remember
        let names = ["Host", "host", "HOST", "Accept", "Cookie", "SERVER", "origin", "X-Tenant", "content-type", "Content-Length", "X-Api-Key", "x-api-key", "Hos", long.as_str(), "te"];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut raw: Vec<&str> = Vec::new();
            for _ in 0..(seed % (NAME_SLOTS as u64 + 8)) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                raw.push(names[(seed % names.len() as u64) as usize]);
            }
            let headers: Vec<httparse::Header<'_>> = raw.iter().map(|n| httparse::Header { name: n, value: b"v" }).collect();
            for kind in [HeadKind::Request, HeadKind::Response, HeadKind::Other] {
                let mut anomalies = Anomalies::default();
                let got = collect_headers(&headers, 128, kind, &mut anomalies);
                let want: Vec<HeaderName> = raw.iter().map(|n| crate::proto::header_name(n.as_bytes())).collect();
                assert_eq!(got.iter().map(|h| h.name.clone()).collect::<Vec<_>>(), want, "{raw:?}");
                // known names stay shared, whether found in memory or worked out
                for (h, w) in got.iter().zip(&want) {
                    assert_eq!(matches!(h.name, HeaderName::Borrowed(_)), matches!(w, HeaderName::Borrowed(_)));
                }
            }
        }
    }

    /// The head end and its bare-LF flag, found line by line, agree with a
    /// search for the blank line and a look at every LF of the head, for heads
    /// made of every mix of line endings.
    #[test]
    fn head_end_and_bare_lf_agree_with_a_look_at_every_line() {
        let ends: [&[u8]; 4] = [b"\r\n", b"\n", b"\r\r\n", b"\r\n\r"];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut head = Vec::new();
            for line in 0..(seed % 5 + 1) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                head.extend_from_slice(if line == 0 { b"GET /a HTTP/1.1" } else { b"X-A: b" });
                head.extend_from_slice(ends[(seed % 4) as usize]);
            }
            head.extend_from_slice(ends[(seed >> 8) as usize % 2]);
            head.extend_from_slice(b"body\n\n");
            let expected_end = (0..head.len()).find_map(|p| match (head.get(p), head.get(p + 1), head.get(p + 2)) {
                (Some(b'\n'), Some(b'\n'), _) => Some(p + 2),
                (Some(b'\n'), Some(b'\r'), Some(b'\n')) => Some(p + 3),
                _ => None,
            });
            let found = find_head_end(&head, 0);
            assert_eq!(found.map(|f| f.0), expected_end, "{:?}", String::from_utf8_lossy(&head));
            if let Some((end, bare)) = found {
                let h = &head[..end];
                let expected_bare = memchr::memchr_iter(b'\n', h).any(|i| i > 0 && h[i - 1] != b'\r');
                assert_eq!(bare, expected_bare, "{:?}", String::from_utf8_lossy(h));
            }
        }
    }

    /// One step of a conversation: request bytes, response bytes, a gap, or an end.
    enum Step<'a> {
        Req(&'a [u8]),
        Resp(&'a [u8]),
        ReqGap(u64),
        RespGap(u64),
    }
    use Step::*;

    fn cfg() -> HttpConfig {
        HttpConfig::default()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Runs a conversation, splitting every data step into pieces of `piece` bytes.
    fn run_with(steps: &[Step<'_>], piece: usize, midstream: bool, cfg: &HttpConfig) -> (Vec<HttpTransaction>, ProtoStats) {
        let mut c = Http1Connection::new(addr("10.0.0.1:40000"), addr("10.0.0.2:80"), midstream, cfg);
        let mut st = ProtoStats::default();
        let mut out = Vec::new();
        for (i, s) in steps.iter().enumerate() {
            let ts = i as u64 * 1000;
            match s {
                Req(d) | Resp(d) => {
                    let is_req = matches!(s, Req(_));
                    for p in d.chunks(piece.max(1)) {
                        c.on_chunk(is_req, Chunk::Data(p), ts, cfg, &mut st, &mut out);
                    }
                }
                ReqGap(n) => {
                    c.on_chunk(true, Chunk::Gap(*n), ts, cfg, &mut st, &mut out);
                }
                RespGap(n) => {
                    c.on_chunk(false, Chunk::Gap(*n), ts, cfg, &mut st, &mut out);
                }
            }
        }
        c.finish(0, cfg, &mut st, &mut out);
        (out, st)
    }

    fn run(steps: &[Step<'_>]) -> Vec<HttpTransaction> {
        let whole = run_with(steps, usize::MAX, false, &cfg()).0;
        // byte-at-a-time feeding must give the same transactions
        let bytewise = run_with(steps, 1, false, &cfg()).0;
        assert_eq!(summary(&whole), summary(&bytewise), "byte-at-a-time feeding differs");
        whole
    }

    fn summary(t: &[HttpTransaction]) -> Vec<(String, String, Option<String>, Option<u16>, u64, u64)> {
        t.iter()
            .map(|x| (x.method.to_string(), x.target.clone(), x.host.as_deref().map(str::to_string), x.status, x.request_body.length, x.response_body.length))
            .collect()
    }

    #[test]
    fn simple_get() {
        let t = run(&[Req(b"GET /a?b=1 HTTP/1.1\r\nHost: x.test\r\n\r\n"), Resp(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")]);
        assert_eq!(summary(&t), vec![("GET".into(), "/a?b=1".into(), Some("x.test".into()), Some(200), 0, 5)]);
        assert_eq!(t[0].version, HttpVersion::Http11);
        assert_eq!(t[0].response_body.sample, b"hello");
    }

    #[test]
    fn pipelined_requests_pair_in_order() {
        let t = run(&[
            Req(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\nHEAD /3 HTTP/1.1\r\nHost: h\r\n\r\n"),
            Resp(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
        ]);
        let s: Vec<_> = t.iter().map(|x| (x.target.as_str(), x.status)).collect();
        assert_eq!(s, vec![("/1", Some(200)), ("/2", Some(404)), ("/3", Some(200))]);
        assert_eq!(t[2].response_body.length, 0, "HEAD responses have no body");
    }

    #[test]
    fn chunked_with_trailers_and_extensions() {
        let t = run(&[
            Req(b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n"),
            Resp(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            Req(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n"),
            Resp(b"HTTP/1.1 204 No Content\r\n\r\n"),
        ]);
        assert_eq!(summary(&t), vec![
            ("POST".into(), "/up".into(), Some("h".into()), Some(201), 9, 3),
            ("GET".into(), "/next".into(), Some("h".into()), Some(204), 0, 0),
        ]);
        assert_eq!(t[0].request_body.sample, b"Wikipedia");
    }

    #[test]
    fn expect_100_continue_is_interim() {
        let t = run(&[
            Req(b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
            Resp(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Req(b"abc"),
            Resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].status, Some(200));
        assert_eq!(t[0].interim_statuses, vec![100]);
        assert_eq!(t[0].request_body.length, 3);
    }

    #[test]
    fn close_delimited_response_and_304() {
        let t = run(&[
            Req(b"GET /a HTTP/1.0\r\n\r\n"),
            Resp(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"),
            Req(b"GET /b HTTP/1.0\r\n\r\n"),
            Resp(b"HTTP/1.0 200 OK\r\n\r\nall of this until close"),
        ]);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].status, t[0].response_body.length), (Some(304), 0));
        assert_eq!((t[1].status, t[1].response_body.length), (Some(200), 23));
        assert_eq!(t[1].version, HttpVersion::Http10);
        assert_eq!(t[1].host, None);
    }

    #[test]
    fn upgrade_stops_parsing() {
        let t = run(&[
            Req(b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
            Resp(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x05hello"),
            Req(b"\x81\x85GET / HTTP/1.1\r\n\r\n"),
        ]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].status, Some(101));
        assert_eq!(t[0].upgrade.as_deref(), Some("websocket"));
    }

    #[test]
    fn requests_without_response_are_reported() {
        let (t, st) = run_with(&[Req(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\nGET /y HTTP/1.1\r\nHost: h\r\n\r\n")], 7, false, &cfg());
        assert_eq!(t.len(), 2);
        assert!(t.iter().all(|x| x.status.is_none() && x.anomalies.has(Anomalies::NO_RESPONSE)));
        assert_eq!(st.requests_without_response, 2);
    }

    #[test]
    fn gap_inside_known_length_body_is_skipped() {
        let t = run(&[
            Req(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab"),
            ReqGap(6),
            Req(b"cdGET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
            Resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ]);
        let s: Vec<_> = t.iter().map(|x| (x.target.as_str(), x.status, x.request_body.length)).collect();
        assert_eq!(s, vec![("/a", Some(200), 10), ("/b", Some(200), 0)]);
        assert_eq!(t[0].request_body.gap_bytes, 6);
        assert!(t[0].anomalies.has(Anomalies::REQUEST_GAP));
    }

    #[test]
    fn gap_in_response_body_then_resync_on_next_head() {
        let t = run(&[
            Req(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
            Resp(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123"),
            RespGap(100),
            Resp(b"ef\r\n0\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        ]);
        let s: Vec<_> = t.iter().map(|x| (x.target.as_str(), x.status)).collect();
        assert_eq!(s, vec![("/a", Some(200)), ("/b", Some(404))]);
    }

    #[test]
    fn midstream_pickup_resyncs_on_request_line() {
        let steps = [
            Req(b"tail of an earlier body\r\nGET /c HTTP/1.1\r\nHost: h\r\n\r\n"),
            Resp(b"of an earlier response\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ];
        let (t, _) = run_with(&steps, usize::MAX, true, &cfg());
        assert_eq!(summary(&t), vec![("GET".into(), "/c".into(), Some("h".into()), Some(200), 0, 0)]);
        let (t1, _) = run_with(&steps, 1, true, &cfg());
        assert_eq!(summary(&t), summary(&t1));
    }

    #[test]
    fn lenient_request_lines() {
        let t = run(&[
            Req(b"OPTIONS HTTP/1.1\r\nHost: www.example.com\r\n\r\n"),
            Resp(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
            Req(b"GET /x HTTP/1.\r\nHost: www.example.com\r\n\r\n"),
            Resp(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ]);
        let s: Vec<_> = t.iter().map(|x| (&*x.method, x.target.as_str(), x.status)).collect();
        assert_eq!(s, vec![("OPTIONS", "HTTP/1.1", Some(400)), ("GET", "/x", Some(200))]);
    }

    #[test]
    fn http09_request_has_bare_body_response() {
        let t = run(&[Req(b"GET /zeek.html\n"), Resp(b"<html>hello</html>\n")]);
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].version, t[0].status), (HttpVersion::Http09, None));
    }

    #[test]
    fn connect_tunnel() {
        let t = run(&[
            Req(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01\x00\x05hello"),
            Resp(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03\x00\x02hi"),
        ]);
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].target.as_str(), t[0].status), ("example.com:443", Some(200)));
    }

    #[test]
    fn header_limit_is_enforced_and_counted() {
        let mut c = cfg();
        c.max_header_bytes = 256;
        let big = format!("GET /a HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(1000));
        let (t, st) = run_with(&[Req(big.as_bytes())], 100, false, &c);
        assert_eq!(st.header_limit_hit, 1);
        assert_eq!(t.iter().map(|x| x.target.as_str()).collect::<Vec<_>>(), vec!["/b"]);
    }

    #[test]
    fn pending_limit_reports_oldest_without_response() {
        let mut c = cfg();
        c.max_pending_requests = 2;
        let (t, st) = run_with(&[Req(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n")], usize::MAX, false, &c);
        assert_eq!(st.pending_limit_dropped, 1);
        assert_eq!(t.len(), 3);
    }

    /// After `shed`, the waiting requests are reported at once without a
    /// response, responses are no longer read, every later request is
    /// reported as soon as it is complete (its body included), and nothing is
    /// held for pairing any more.
    #[test]
    fn shed_reports_waiting_requests_and_keeps_reporting_the_next() {
        let c = cfg();
        let mut st = ProtoStats::default();
        let mut out = Vec::new();
        let mut h = Http1Connection::new("10.0.0.1:1000".parse().unwrap(), "10.0.0.2:80".parse().unwrap(), false, &c);
        h.on_chunk(true, Chunk::Data(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"), 1, &c, &mut st, &mut out);
        h.on_chunk(false, Chunk::Data(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"), 2, &c, &mut st, &mut out);
        assert!(out.is_empty());
        let waiting = h.held_bytes();
        h.shed(&mut st, &mut out);
        assert_eq!(st.parser_bytes_limit_hit, 1);
        let got: Vec<(&str, Option<u16>)> = out.iter().map(|t| (t.target.as_str(), t.status)).collect();
        assert_eq!(got, [("/1", None), ("/2", None)]);
        assert!(out.iter().all(|t| t.anomalies.has(Anomalies::NO_RESPONSE)));
        assert!(h.held_bytes() < waiting, "{} held after shedding, {waiting} before", h.held_bytes());
        // the rest of the response is not read; the next request is reported when complete
        h.on_chunk(false, Chunk::Data(b"56789HTTP/1.1 404 Not Found\r\n\r\n"), 3, &c, &mut st, &mut out);
        h.on_chunk(true, Chunk::Data(b"POST /3 HTTP/1.1\r\nContent-Length: 4\r\n\r\nab"), 4, &c, &mut st, &mut out);
        assert_eq!(out.len(), 2, "a request reported before its body ended");
        h.on_chunk(true, Chunk::Data(b"cd"), 5, &c, &mut st, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!((out[2].target.as_str(), out[2].status, out[2].request_body.sample.as_slice()), ("/3", None, &b"abcd"[..]));
        assert!(h.pending.is_empty() && h.response.is_none());
        // shedding again is not counted again
        h.shed(&mut st, &mut out);
        assert_eq!(st.parser_bytes_limit_hit, 1);
        h.finish(6, &c, &mut st, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(st.responses_without_request, 0);
    }

    #[test]
    fn body_scan_limit_bounds_the_sample() {
        let mut c = cfg();
        c.body_scan_bytes = 4;
        let (t, st) = run_with(&[Req(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789")], 3, false, &c);
        assert_eq!(t[0].request_body.sample, b"0123");
        assert_eq!(t[0].request_body.length, 10);
        assert_eq!(st.body_bytes_skipped, 6);
    }

    #[test]
    fn every_truncation_length_is_safe() {
        let conv: &[u8] = b"POST /p?q=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        let resp: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nHTTP/1.0 500 X\r\n\r\nbody";
        for n in 0..=conv.len() {
            for m in [0, resp.len() / 2, resp.len()] {
                for piece in [1, 3, usize::MAX] {
                    let (t, _) = run_with(&[Req(&conv[..n]), Resp(&resp[..m])], piece, false, &cfg());
                    assert!(t.len() <= 2);
                }
            }
        }
        for m in 0..=resp.len() {
            let (t, _) = run_with(&[Req(conv), Resp(&resp[..m])], 1, false, &cfg());
            assert_eq!(t.len(), 2, "both requests are always reported (truncated response at {m})");
        }
    }

    #[test]
    fn hostile_bytes_never_panic() {
        // a deterministic xorshift stream of bytes biased towards HTTP syntax
        let alphabet: &[u8] = b"GET HTTP/1.1\r\n:0123456789abcdefContent-Length: Transfer-Encoding: chunked\r\n\r\n ;";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..300 {
            let len = (next() % 400) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 5 == 0 { (r >> 8) as u8 } else { alphabet[(r >> 8) as usize % alphabet.len()] }
                })
                .collect();
            let split = (next() as usize) % (bytes.len() + 1);
            let steps = [Req(&bytes[..split]), RespGap(next() % 50), Resp(&bytes[split..]), ReqGap(3), Req(&bytes)];
            let _ = run_with(&steps, 1 + (next() % 17) as usize, next() % 2 == 0, &cfg());
        }
    }
}
