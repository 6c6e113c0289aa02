//! Sensitive data in HTTP messages: which kinds a request or a response
//! carries, where, and a keyed fingerprint and redacted sample of each —
//! never the value itself.
//!
//! # Contract
//! [`scan_request`] and [`scan_response`] are pure functions of one
//! [`HttpTransaction`], the [`ScanLimits`] and the [`Fingerprinter`]; they
//! never panic on input, allocate in proportion to the limits, and count
//! every limit they reach in [`ScanStats`]. A body scan is remembered per
//! thread (`BODY_MEMO`, keyed by everything it reads) and replayed when the
//! same body comes again: same findings, same counters, plus
//! [`ScanStats::body_memo_hits`].
//!
//! # What is scanned
//! - Request: path segments, query parameters (names guide kinds), headers
//!   and the body. `Authorization`/`Proxy-Authorization` are left to the auth
//!   classifier; API-key headers (`X-API-Key`, `Api-Key`, `X-Auth-Token`, …)
//!   give [`SensitiveKind::ApiKey`]; cookies are searched for personal data
//!   only (a session cookie is a credential, not a leak).
//! - Response: headers (`Set-Cookie` for personal data only) and the body.
//!   Personal data that the response only echoes from the request (its
//!   target, the start of its body, its Basic user name — a login answering
//!   with the user name it was sent) is not disclosure and is only counted;
//!   credentials are reported even when echoed.
//! - Bodies are decoded (`gzip`, `x-gzip`, `deflate` zlib or raw, `br`, up to
//!   three stacked) under the bomb guard, cut to
//!   [`ScanLimits::max_scan_bytes`], then read by media type (sniffed when
//!   untyped; images, audio, video, fonts, archives and octet streams are
//!   skipped): JSON (a streaming walk that keeps key paths and reads a cut
//!   sample up to the cut; a tolerant `"key": value` scan after a syntax
//!   error), form-urlencoded, multipart form data, XML/HTML (element,
//!   attribute and label names guide kinds), CSV (the header row names the
//!   columns) and any other text.
//!
//! # Precision
//! A kind is reported only when a validator accepts the value: checksums
//! (Luhn with brand prefix and length for cards, mod 97 for IBANs, JWT header
//! with `alg`), ranges (SSN areas, dates, IPv4 octets), and for kinds whose
//! shape alone is ambiguous (phone numbers without `+`, dates of birth, IP
//! addresses, postal addresses, passwords, API keys) a name that says so.
//!
//! # Output
//! One [`Finding`] per kind and location (`count` tells how many values were
//! seen there), with the fingerprint of the first value, normalised
//! (card digits, lower-case e-mail, compact IBAN…), and a redacted sample
//! that keeps at most a few characters of long values.

mod decompress;
mod formats;
mod json;
mod keys;
mod text;
mod validate;
#[cfg(test)]
mod calibrate;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

use crate::analyze::fingerprint::{redact, Fingerprinter};
use crate::proto::{BodyInfo, Header, HttpTransaction};

use self::decompress::End;
use self::keys::Hint;

/// A kind of sensitive data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensitiveKind {
    Email,
    Phone,
    CreditCard,
    Iban,
    Ssn,
    DateOfBirth,
    Address,
    IpAddress,
    Jwt,
    Secret,
    Password,
    ApiKey,
}

impl SensitiveKind {
    /// Every kind, in order.
    pub const ALL: [SensitiveKind; 12] = [
        SensitiveKind::Email,
        SensitiveKind::Phone,
        SensitiveKind::CreditCard,
        SensitiveKind::Iban,
        SensitiveKind::Ssn,
        SensitiveKind::DateOfBirth,
        SensitiveKind::Address,
        SensitiveKind::IpAddress,
        SensitiveKind::Jwt,
        SensitiveKind::Secret,
        SensitiveKind::Password,
        SensitiveKind::ApiKey,
    ];

    /// The snake_case name used in events and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            SensitiveKind::Email => "email",
            SensitiveKind::Phone => "phone",
            SensitiveKind::CreditCard => "credit_card",
            SensitiveKind::Iban => "iban",
            SensitiveKind::Ssn => "ssn",
            SensitiveKind::DateOfBirth => "date_of_birth",
            SensitiveKind::Address => "address",
            SensitiveKind::IpAddress => "ip_address",
            SensitiveKind::Jwt => "jwt",
            SensitiveKind::Secret => "secret",
            SensitiveKind::Password => "password",
            SensitiveKind::ApiKey => "api_key",
        }
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> Option<SensitiveKind> {
        SensitiveKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Credentials (as opposed to personal data).
    pub fn is_credential(self) -> bool {
        matches!(self, SensitiveKind::Jwt | SensitiveKind::Secret | SensitiveKind::Password | SensitiveKind::ApiKey)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// Characters a redacted sample keeps at each end (only of long values).
    fn redact_keep(self, len: usize) -> usize {
        match self {
            SensitiveKind::CreditCard | SensitiveKind::Iban | SensitiveKind::Jwt => 4,
            SensitiveKind::Email | SensitiveKind::Phone => 2,
            SensitiveKind::Secret | SensitiveKind::ApiKey if len >= 32 => 4,
            _ => 0,
        }
    }
}

impl fmt::Display for SensitiveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where in a message a value was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A header, by lower-case name.
    Header(String),
    /// A query parameter, by name.
    Query(String),
    /// A path segment.
    Path,
    /// The body: a JSON path (`$.user.email`, `$.users[*].phone`, `$..email`
    /// after a syntax error), a form or multipart field name (`password`,
    /// `upload/text` for a part's content), an XML/HTML element (`//Email`),
    /// a CSV column (`csv:email`) or `text`. Names that could themselves be
    /// data (not identifier-like) are shown as `*`.
    Body(String),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Header(h) => write!(f, "header:{h}"),
            Location::Query(q) => write!(f, "query:{q}"),
            Location::Path => f.write_str("path"),
            Location::Body(b) => write!(f, "body:{b}"),
        }
    }
}

/// One kind of sensitive data at one location of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: SensitiveKind,
    pub location: Location,
    /// Keyed fingerprint of the first (normalised) value seen there.
    pub fingerprint: String,
    /// Redacted sample of that value (its shape, a few characters of long values).
    pub redacted: String,
    /// Values of this kind seen at this location.
    pub count: u32,
}

/// Budgets of one scan (see `[sensitive]` in `sensor.toml`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanLimits {
    /// Bytes any decompression stage may produce (bomb guard).
    pub max_decompressed_bytes: usize,
    /// Bytes of each (decoded) body scanned; the last decompression stage stops here too.
    /// 0: bodies are neither decoded nor read (bodies not sampled).
    pub max_scan_bytes: usize,
    /// Findings kept per message; scanning stops at the limit.
    pub max_findings: usize,
    /// JSON nesting followed; deeper values are skipped.
    pub max_json_depth: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits { max_decompressed_bytes: 1 << 20, max_scan_bytes: 64 * 1024, max_findings: 64, max_json_depth: 32 }
    }
}

/// Counters of the scanner (per worker; add them up).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScanStats {
    /// Bodies read (decoded and given to a format scanner).
    pub bodies_scanned: u64,
    /// Bodies that had a content coding undone.
    pub decompressed: u64,
    /// Bodies whose compressed data was invalid (what decoded before is scanned).
    pub decompress_errors: u64,
    /// Bodies with a content coding this scanner does not know (not scanned).
    pub unsupported_encoding: u64,
    /// Decompression stages stopped at `max_decompressed_bytes`.
    pub bomb_guard_hit: u64,
    /// Bodies cut at `max_scan_bytes`.
    pub scan_limit_hit: u64,
    /// Messages that reached `max_findings`.
    pub findings_limit_hit: u64,
    /// JSON bodies with a syntax error, scanned on from there by the tolerant scanner.
    pub json_parse_fallbacks: u64,
    /// JSON bodies that ended inside the document (cut samples); scanned up to the cut.
    pub json_truncated: u64,
    /// JSON bodies nested deeper than `max_json_depth` (the deeper part is skipped).
    pub json_depth_limit_hit: u64,
    /// Multipart bodies with more parts than are read.
    pub multipart_parts_limit_hit: u64,
    /// Bodies not scanned because they are binary (images, archives, octet streams).
    pub binary_skipped: u64,
    /// Personal data in a response that only echoes the request (its target,
    /// body or Basic user name): not reported.
    pub echoed_values: u64,
    /// Bodies whose scan was remembered from an identical body (same bytes,
    /// media headers and request echo sources) on the same worker.
    pub body_memo_hits: u64,
}

impl ScanStats {
    /// Adds another worker's counters.
    pub fn add(&mut self, o: &ScanStats) {
        self.bodies_scanned += o.bodies_scanned;
        self.decompressed += o.decompressed;
        self.decompress_errors += o.decompress_errors;
        self.unsupported_encoding += o.unsupported_encoding;
        self.bomb_guard_hit += o.bomb_guard_hit;
        self.scan_limit_hit += o.scan_limit_hit;
        self.findings_limit_hit += o.findings_limit_hit;
        self.json_parse_fallbacks += o.json_parse_fallbacks;
        self.json_truncated += o.json_truncated;
        self.json_depth_limit_hit += o.json_depth_limit_hit;
        self.multipart_parts_limit_hit += o.multipart_parts_limit_hit;
        self.binary_skipped += o.binary_skipped;
        self.echoed_values += o.echoed_values;
        self.body_memo_hits += o.body_memo_hits;
    }

    /// What was counted since `before` (counters only grow).
    fn since(&self, before: &ScanStats) -> ScanStats {
        ScanStats {
            bodies_scanned: self.bodies_scanned.saturating_sub(before.bodies_scanned),
            decompressed: self.decompressed.saturating_sub(before.decompressed),
            decompress_errors: self.decompress_errors.saturating_sub(before.decompress_errors),
            unsupported_encoding: self.unsupported_encoding.saturating_sub(before.unsupported_encoding),
            bomb_guard_hit: self.bomb_guard_hit.saturating_sub(before.bomb_guard_hit),
            scan_limit_hit: self.scan_limit_hit.saturating_sub(before.scan_limit_hit),
            findings_limit_hit: self.findings_limit_hit.saturating_sub(before.findings_limit_hit),
            json_parse_fallbacks: self.json_parse_fallbacks.saturating_sub(before.json_parse_fallbacks),
            json_truncated: self.json_truncated.saturating_sub(before.json_truncated),
            json_depth_limit_hit: self.json_depth_limit_hit.saturating_sub(before.json_depth_limit_hit),
            multipart_parts_limit_hit: self.multipart_parts_limit_hit.saturating_sub(before.multipart_parts_limit_hit),
            binary_skipped: self.binary_skipped.saturating_sub(before.binary_skipped),
            echoed_values: self.echoed_values.saturating_sub(before.echoed_values),
            body_memo_hits: self.body_memo_hits.saturating_sub(before.body_memo_hits),
        }
    }
}

/// Sensitive data in the request: path, query, headers, body.
pub fn scan_request(tx: &HttpTransaction, limits: &ScanLimits, fp: &Fingerprinter, stats: &mut ScanStats) -> Vec<Finding> {
    scan_request_split(tx, super::split_target(&tx.method, &tx.target), limits, fp, stats)
}

/// [`scan_request`] with the request's target already split into path and
/// query ([`super::split_target`]).
pub(crate) fn scan_request_split(
    tx: &HttpTransaction,
    (path, query): (&str, Option<&str>),
    limits: &ScanLimits,
    fp: &Fingerprinter,
    stats: &mut ScanStats,
) -> Vec<Finding> {
    let mut ctx = Ctx::new(Side::Request, limits, fp);
    if !tx.method.eq_ignore_ascii_case("CONNECT") {
        scan_path(&mut ctx, path.as_bytes());
        if let Some(q) = query {
            scan_query(&mut ctx, q.as_bytes());
        }
    }
    scan_headers(&mut ctx, &tx.request_headers);
    scan_body(&mut ctx, &tx.request_headers, &tx.request_body, stats);
    ctx.finish(stats)
}

/// Sensitive data in the response: headers and body. Personal data that
/// the response only echoes from the request is not reported (see [`ScanStats::echoed_values`]).
pub fn scan_response(tx: &HttpTransaction, limits: &ScanLimits, fp: &Fingerprinter, stats: &mut ScanStats) -> Vec<Finding> {
    let mut ctx = Ctx::new(Side::Response, limits, fp);
    ctx.echo_of = Some(tx);
    scan_headers(&mut ctx, &tx.response_headers);
    scan_body(&mut ctx, &tx.response_headers, &tx.response_body, stats);
    ctx.finish(stats)
}

// ---------------------------------------------------------------- context

/// Which message is scanned: credential rules differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

/// Where a value sits, before it is rendered into a [`Location`] (only when
/// something is found there).
pub(crate) enum Loc<'a> {
    Header(&'a str),
    Query(&'a [u8]),
    Path,
    Text,
    /// A form or multipart field.
    Field(&'a [u8]),
    /// A JSON value: the document and the open containers.
    Json(&'a [u8], &'a [json::Frame]),
    /// A JSON value under this key, path unknown (tolerant scan).
    JsonAny(&'a [u8]),
    Xml(&'a [u8]),
    Csv(&'a [u8]),
}

const ALL_KINDS: u16 = 0x0fff;
/// Personal data kinds: what a cookie may leak.
const PERSONAL_KINDS: u16 = ALL_KINDS
    & !(1 << SensitiveKind::Jwt as u16)
    & !(1 << SensitiveKind::Secret as u16)
    & !(1 << SensitiveKind::Password as u16)
    & !(1 << SensitiveKind::ApiKey as u16);

/// The state of one message's scan: findings so far and the limits.
pub(crate) struct Ctx<'a> {
    side: Side,
    limits: &'a ScanLimits,
    fp: &'a Fingerprinter,
    findings: Vec<Finding>,
    /// Kinds that may be reported here (bit per kind).
    allow: u16,
    /// Kinds already reported for the value being scanned (not counted twice).
    suppress: u16,
    /// `max_findings` reached: scanners stop.
    full: bool,
    /// Rendered location of the current candidate (reused).
    loc_buf: String,
    /// Prefix of body locations (multipart parts).
    prefix: String,
    /// The exchange whose request a response may echo (responses only):
    /// personal data the request carried is an echo, not a disclosure.
    echo_of: Option<&'a HttpTransaction>,
    /// The parts of that request an echo is looked for in ([`echo_sources`]),
    /// worked out when the first candidate needs them.
    echo: Option<Vec<Cow<'a, [u8]>>>,
    /// Echo checks made (bounded by [`ECHO_CHECKS_MAX`]).
    echo_checks: usize,
    echoed: u64,
}

/// Bytes of each part of the request kept as echo sources.
const ECHO_SOURCE_MAX: usize = 4096;
/// Echo checks per response; later values are reported without one.
const ECHO_CHECKS_MAX: usize = 64;
/// Longest value checked for an echo.
const ECHO_VALUE_MAX: usize = 128;

/// The parts of the request a response may echo: the target, the start of
/// the body (percent-decoded too, for forms), and the Basic user name.
fn echo_sources(tx: &HttpTransaction) -> Vec<Cow<'_, [u8]>> {
    let clip = |b: &[u8]| -> usize { b.len().min(ECHO_SOURCE_MAX) };
    let mut out = Vec::with_capacity(4);
    let target = tx.target.as_bytes();
    out.push(percent_decode(target.get(..clip(target)).unwrap_or(&[]), true));
    let body = &tx.request_body.sample;
    let body = body.get(..clip(body)).unwrap_or(&[]);
    if !body.is_empty() {
        out.push(Cow::Borrowed(body));
        if let Cow::Owned(d) = percent_decode(body, true) {
            out.push(Cow::Owned(d));
        }
    }
    if let Some(auth) = header(&tx.request_headers, "authorization") {
        let auth = validate::trim(auth);
        if auth.len() > 6 && auth.get(..6).is_some_and(|s| s.eq_ignore_ascii_case(b"basic ")) {
            use base64::Engine as _;
            if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(validate::trim(auth.get(6..).unwrap_or(&[]))) {
                let user = raw.split(|&b| b == b':').next().unwrap_or(&[]).to_vec();
                if !user.is_empty() {
                    out.push(Cow::Owned(user));
                }
            }
        }
    }
    out
}

/// Whether `h` contains `n`, ignoring ASCII case (never for an empty `n`).
pub(crate) fn contains_ci(h: &[u8], n: &[u8]) -> bool {
    let Some(&first) = n.first() else { return false };
    h.len() >= n.len()
        && h.windows(n.len()).any(|w| w.first().is_some_and(|b| b.eq_ignore_ascii_case(&first)) && w.eq_ignore_ascii_case(n))
}

impl<'a> Ctx<'a> {
    fn new(side: Side, limits: &'a ScanLimits, fp: &'a Fingerprinter) -> Ctx<'a> {
        Ctx {
            side,
            limits,
            fp,
            findings: Vec::new(),
            allow: ALL_KINDS,
            suppress: 0,
            full: limits.max_findings == 0,
            loc_buf: String::new(),
            prefix: String::new(),
            echo_of: None,
            echo: None,
            echo_checks: 0,
            echoed: 0,
        }
    }

    pub(crate) fn side(&self) -> Side {
        self.side
    }

    pub(crate) fn is_full(&self) -> bool {
        self.full
    }

    fn finish(self, stats: &mut ScanStats) -> Vec<Finding> {
        if self.full && self.limits.max_findings > 0 {
            stats.findings_limit_hit += 1;
        }
        stats.echoed_values += self.echoed;
        self.findings
    }

    /// Records `kind` found at `loc` with value `raw`.
    pub(crate) fn report(&mut self, kind: SensitiveKind, loc: &Loc<'_>, raw: &[u8]) {
        if (self.allow & !self.suppress) & kind.bit() == 0 || self.full {
            return;
        }
        let mut buf = std::mem::take(&mut self.loc_buf);
        buf.clear();
        let tag = render(loc, &self.prefix, &mut buf);
        let existing = self.findings.iter_mut().find(|f| f.kind == kind && location_is(&f.location, tag, &buf));
        if let Some(f) = existing {
            f.count = f.count.saturating_add(1);
            self.loc_buf = buf;
            return;
        }
        if self.findings.len() >= self.limits.max_findings {
            self.full = true;
            self.loc_buf = buf;
            return;
        }
        // personal data the caller sent itself is not disclosed to it; credentials always count
        if let Some(tx) = self.echo_of.filter(|_| !kind.is_credential() && self.echo_checks < ECHO_CHECKS_MAX) {
            let v = validate::trim(raw);
            if (4..=ECHO_VALUE_MAX).contains(&v.len()) {
                self.echo_checks += 1;
                if self.echo.get_or_insert_with(|| echo_sources(tx)).iter().any(|s| contains_ci(s, v)) {
                    self.echoed += 1;
                    self.loc_buf = buf;
                    return;
                }
            }
        }
        let norm = normalise(kind, raw);
        let shown = String::from_utf8_lossy(&norm);
        let redacted = redact(&shown, kind.redact_keep(shown.chars().count()));
        let fingerprint = self.fp.fingerprint(kind.as_str(), &norm);
        let location = match tag {
            LocTag::Header => Location::Header(buf.clone()),
            LocTag::Query => Location::Query(buf.clone()),
            LocTag::Path => Location::Path,
            LocTag::Body => Location::Body(buf.clone()),
        };
        self.findings.push(Finding { kind, location, fingerprint, redacted, count: 1 });
        self.loc_buf = buf;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LocTag {
    Header,
    Query,
    Path,
    Body,
}

fn location_is(l: &Location, tag: LocTag, s: &str) -> bool {
    match (l, tag) {
        (Location::Header(h), LocTag::Header) => h == s,
        (Location::Query(q), LocTag::Query) => q == s,
        (Location::Path, LocTag::Path) => true,
        (Location::Body(b), LocTag::Body) => b == s,
        _ => false,
    }
}

/// Longest name shown in a location.
const MAX_SHOWN_NAME: usize = 64;

/// Appends a name when it is identifier-like (letters, digits, `_`, `-`,
/// `.`; at most 64 bytes, at most 4 digits), `*` otherwise: a name that could
/// be data (an e-mail used as a map key, a long number) is never shown.
fn push_name(out: &mut String, name: &[u8]) {
    let ok = !name.is_empty()
        && name.len() <= MAX_SHOWN_NAME
        && name.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        && name.iter().filter(|b| b.is_ascii_digit()).count() <= 4;
    match std::str::from_utf8(name) {
        Ok(s) if ok => out.push_str(s),
        _ => out.push('*'),
    }
}

fn render(loc: &Loc<'_>, prefix: &str, out: &mut String) -> LocTag {
    match loc {
        Loc::Header(h) => {
            push_name(out, h.as_bytes());
            LocTag::Header
        }
        Loc::Query(q) => {
            push_name(out, q);
            LocTag::Query
        }
        Loc::Path => LocTag::Path,
        body => {
            out.push_str(prefix);
            match body {
                Loc::Text => out.push_str("text"),
                Loc::Field(f) => push_name(out, f),
                Loc::Json(doc, frames) => json::render_path(doc, frames, out),
                Loc::JsonAny(k) => {
                    out.push_str("$..");
                    push_name(out, k);
                }
                Loc::Xml(e) => {
                    out.push_str("//");
                    push_name(out, e);
                }
                Loc::Csv(c) => {
                    out.push_str("csv:");
                    push_name(out, c);
                }
                Loc::Header(_) | Loc::Query(_) | Loc::Path => {}
            }
            LocTag::Body
        }
    }
}

/// The form of a value that is fingerprinted: equal values in different
/// spellings give the same fingerprint.
fn normalise(kind: SensitiveKind, raw: &[u8]) -> Vec<u8> {
    let t = validate::trim(raw);
    match kind {
        SensitiveKind::CreditCard | SensitiveKind::Ssn => t.iter().copied().filter(u8::is_ascii_digit).collect(),
        SensitiveKind::Phone => t.iter().copied().filter(|b| b.is_ascii_digit() || *b == b'+').collect(),
        SensitiveKind::Email => t.to_ascii_lowercase(),
        SensitiveKind::Iban => t.iter().copied().filter(u8::is_ascii_alphanumeric).map(|b| b.to_ascii_uppercase()).collect(),
        SensitiveKind::IpAddress => validate::ip_value(t).map_or_else(|| t.to_vec(), |ip| ip.to_string().into_bytes()),
        _ => t.to_vec(),
    }
}

// ---------------------------------------------------------------- target and headers

/// Percent-decodes (and, for forms and queries, turns `+` into a space).
/// Borrows when there is nothing to decode.
pub(crate) fn percent_decode(v: &[u8], plus_space: bool) -> Cow<'_, [u8]> {
    if !v.iter().any(|&b| b == b'%' || (plus_space && b == b'+')) {
        return Cow::Borrowed(v);
    }
    let hex = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0usize;
    while i < v.len() {
        let b = validate::at(v, i);
        if b == b'%' {
            if let (Some(h), Some(l)) = (hex(validate::at(v, i + 1)), hex(validate::at(v, i + 2))) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(if plus_space && b == b'+' { b' ' } else { b });
        i += 1;
    }
    Cow::Owned(out)
}

fn scan_path(ctx: &mut Ctx<'_>, path: &[u8]) {
    for seg in path.split(|&b| b == b'/') {
        if ctx.full {
            return;
        }
        if seg.is_empty() {
            continue;
        }
        let seg = percent_decode(seg, false);
        // bare digit segments are identifiers, not card numbers
        let ids_only = seg.iter().all(u8::is_ascii_digit);
        text::scan_text(ctx, &seg, &Loc::Path, text::TextOpts { cards: !ids_only, ip_label: false });
    }
}

/// Name/value pairs of a query string or form body (`&`-separated; `;` too
/// in queries), percent-decoded, each classified by its name.
pub(crate) fn scan_pairs(ctx: &mut Ctx<'_>, q: &[u8], query: bool) {
    for pair in q.split(|&b| b == b'&' || (query && b == b';')) {
        if ctx.full {
            return;
        }
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(p) => (pair.get(..p).unwrap_or(&[]), pair.get(p + 1..).unwrap_or(&[])),
            None => (pair, &[][..]),
        };
        let name = percent_decode(name, true);
        let value = percent_decode(value, true);
        let hint = keys::classify(&name);
        let loc = if query { Loc::Query(&name) } else { Loc::Field(&name) };
        // a name can be data too ("?alice@example.com")
        if name.contains(&b'@') {
            text::scan_text(ctx, &name, &loc, text::TextOpts::default());
        }
        text::scalar(ctx, hint, Hint::NONE, &value, false, &loc);
    }
}

fn scan_query(ctx: &mut Ctx<'_>, q: &[u8]) {
    scan_pairs(ctx, q, true);
}

/// Headers never scanned: framing, caching, negotiation, security policy.
fn boring_header(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "content-length"
            | "content-type"
            | "content-encoding"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "accept"
            | "accept-encoding"
            | "accept-language"
            | "accept-ranges"
            | "cache-control"
            | "pragma"
            | "expires"
            | "date"
            | "age"
            | "etag"
            | "last-modified"
            | "if-none-match"
            | "if-modified-since"
            | "if-match"
            | "vary"
            | "server"
            | "te"
            | "trailer"
            | "upgrade"
            | "expect"
            | "range"
            | "content-range"
            | "strict-transport-security"
            | "x-content-type-options"
            | "x-frame-options"
            | "x-xss-protection"
            | "content-security-policy"
            | "referrer-policy"
            | "permissions-policy"
            | "deprecation"
            | "sunset"
            | "priority"
            | "dnt"
            | "upgrade-insecure-requests"
            | "www-authenticate"
            | "proxy-authenticate"
            | "authentication-info"
            | "alt-svc"
            | "link"
            // the client software's name and version: long on every request, never API data
            | "user-agent"
    ) || name.starts_with("access-control-")
        || name.starts_with("sec-")
}

/// Headers that carry the client's address as proxies see it: infrastructure, not leakage.
fn forwarding_header(name: &str) -> bool {
    matches!(
        name,
        "x-forwarded-for"
            | "x-real-ip"
            | "forwarded"
            | "true-client-ip"
            | "cf-connecting-ip"
            | "x-client-ip"
            | "x-original-forwarded-for"
            | "x-cluster-client-ip"
            | "fastly-client-ip"
            | "via"
    )
}

/// A cookie header's values (`a=1; b=2`, or one `Set-Cookie` with attributes),
/// searched for personal data only.
fn scan_cookies(ctx: &mut Ctx<'_>, name: &str, value: &[u8], set_cookie: bool) {
    let saved = ctx.allow;
    ctx.allow &= PERSONAL_KINDS;
    let pairs: &mut dyn Iterator<Item = &[u8]> = if set_cookie {
        &mut value.split(|&b| b == b';').take(1)
    } else {
        &mut value.split(|&b| b == b';')
    };
    for pair in pairs {
        let v = pair.iter().position(|&b| b == b'=').and_then(|p| pair.get(p + 1..)).unwrap_or(pair);
        let v = percent_decode(validate::trim(v), false);
        text::scan_text(ctx, &v, &Loc::Header(name), text::TextOpts::default());
    }
    ctx.allow = saved;
}

fn scan_headers(ctx: &mut Ctx<'_>, headers: &[Header]) {
    for h in headers {
        if ctx.full {
            return;
        }
        let name: &str = &h.name;
        if name.starts_with(':') || boring_header(name) || forwarding_header(name) {
            continue;
        }
        match name {
            "authorization" | "proxy-authorization" => {}
            "cookie" => scan_cookies(ctx, name, &h.value, false),
            "set-cookie" => scan_cookies(ctx, name, &h.value, true),
            n if keys::is_api_key_header(n) => {
                let v = validate::trim(&h.value);
                if validate::is_jwt(v) {
                    ctx.report(SensitiveKind::Jwt, &Loc::Header(n), v);
                } else if validate::plausible_credential(v, 1) {
                    ctx.report(SensitiveKind::ApiKey, &Loc::Header(n), v);
                }
            }
            n => {
                // a header named like an IP field is about the connection, not a person
                let hint = keys::classify(n.as_bytes());
                let hint = Hint(hint.0 & !Hint::IP);
                text::scalar(ctx, hint, Hint::NONE, &h.value, false, &Loc::Header(n));
            }
        }
    }
}

// ---------------------------------------------------------------- bodies

/// How a body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Media {
    Json,
    Form,
    Multipart,
    /// XML and HTML: markup with text nodes and attributes.
    Markup,
    Csv,
    Text,
    Binary,
    /// No or an unknown type: decided from the content.
    Unknown,
}

/// The media type of a `Content-Type` value.
pub(crate) fn media_of(ctype: &[u8]) -> Media {
    let essence = ctype.split(|&b| b == b';').next().unwrap_or(&[]);
    let e = validate::trim(essence).to_ascii_lowercase();
    let e = e.as_slice();
    if e.is_empty() {
        return Media::Unknown;
    }
    if e == b"application/json" || e.ends_with(b"+json") || e == b"text/json" || e.ends_with(b"/x-ndjson") || e == b"application/json-seq" || e.ends_with(b"/jsonl") || e == b"application/x-json" {
        return Media::Json;
    }
    if e == b"application/x-www-form-urlencoded" {
        return Media::Form;
    }
    if e.starts_with(b"multipart/") {
        return Media::Multipart;
    }
    if e.ends_with(b"/xml") || e.ends_with(b"+xml") || e == b"text/html" || e == b"application/xhtml" {
        return Media::Markup;
    }
    if e == b"text/csv" || e == b"text/tab-separated-values" || e == b"application/csv" {
        return Media::Csv;
    }
    if e.starts_with(b"text/") || e == b"application/javascript" || e == b"application/graphql" || e.starts_with(b"application/grpc") || e == b"application/x-protobuf" || e == b"application/protobuf" {
        return Media::Text;
    }
    if e.starts_with(b"image/")
        || e.starts_with(b"audio/")
        || e.starts_with(b"video/")
        || e.starts_with(b"font/")
        || matches!(
            e,
            b"application/octet-stream"
                | b"application/pdf"
                | b"application/zip"
                | b"application/gzip"
                | b"application/x-gzip"
                | b"application/x-tar"
                | b"application/wasm"
                | b"application/vnd.ms-fontobject"
        )
    {
        return Media::Binary;
    }
    Media::Unknown
}

/// The media of an untyped body, from its first bytes.
pub(crate) fn sniff(data: &[u8]) -> Media {
    let head = data.get(..data.len().min(512)).unwrap_or(&[]);
    let control = head.iter().filter(|&&b| b < 0x09 || (b > 0x0d && b < 0x20) || b == 0x7f).count();
    if control * 10 > head.len() {
        return Media::Binary;
    }
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | Some(b'[') => Media::Json,
        Some(b'<') => Media::Markup,
        _ => Media::Text,
    }
}

fn header<'h>(headers: &'h [Header], name: &str) -> Option<&'h [u8]> {
    headers.iter().find(|h| h.name == name).map(|h| h.value.as_slice())
}

/// Undoes the content codings of a sample, under the bomb guard. `None`
/// when the body cannot be read.
fn decode_body<'b>(ctx: &Ctx<'_>, headers: &[Header], sample: &'b [u8], stats: &mut ScanStats) -> Option<Cow<'b, [u8]>> {
    let codings = match header(headers, "content-encoding").map(decompress::parse_codings) {
        None => return Some(Cow::Borrowed(sample)),
        Some(Ok(c)) => c,
        Some(Err(_)) => {
            stats.unsupported_encoding += 1;
            return None;
        }
    };
    if codings.is_empty() {
        return Some(Cow::Borrowed(sample));
    }
    let limits = ctx.limits;
    let mut cur: Cow<'b, [u8]> = Cow::Borrowed(sample);
    for (k, &coding) in codings.iter().enumerate() {
        let last = k + 1 == codings.len();
        let cap = if last { limits.max_decompressed_bytes.min(limits.max_scan_bytes) } else { limits.max_decompressed_bytes };
        let (out, end) = decompress::decode(coding, &cur, cap);
        match end {
            End::Complete | End::Truncated => {}
            End::Capped => {
                if last && limits.max_scan_bytes < limits.max_decompressed_bytes {
                    stats.scan_limit_hit += 1;
                } else {
                    stats.bomb_guard_hit += 1;
                }
            }
            End::Corrupt => stats.decompress_errors += 1,
        }
        if out.is_empty() && end == End::Corrupt {
            // a server that labels plain text as compressed: read it as sent
            if k == 0 && sniff(sample) != Media::Binary {
                return Some(Cow::Borrowed(sample));
            }
            return None;
        }
        cur = Cow::Owned(out);
    }
    stats.decompressed += 1;
    Some(cur)
}

/// Nesting of multipart bodies followed.
const MAX_MULTIPART_NESTING: usize = 2;

/// Body scans remembered per thread ([`BODY_MEMO`]).
const BODY_MEMO_ENTRIES: usize = 1024;
/// Findings of one body beyond which its scan is not remembered.
const BODY_MEMO_FINDINGS_MAX: usize = 16;

/// What scanning one body added to a message's scan.
#[derive(Clone)]
struct BodyScan {
    findings: Vec<Finding>,
    stats: ScanStats,
    echoed: u64,
    echo_checks: usize,
    full: bool,
}

std::thread_local! {
    /// Body scans already made on this thread, under a 128-bit keyed hash of
    /// everything the scan reads (body, media headers, limits, echo sources,
    /// the state of the message's scan): a body served again (a list, a
    /// profile, a static document) is read once. Bounded; values never kept.
    static BODY_MEMO: std::cell::RefCell<crate::analyze::fingerprint::Memo<BodyScan>> =
        std::cell::RefCell::new(crate::analyze::fingerprint::Memo::with_entries(BODY_MEMO_ENTRIES));
}

fn scan_body(ctx: &mut Ctx<'_>, headers: &[Header], body: &BodyInfo, stats: &mut ScanStats) {
    if body.sample.is_empty() || ctx.full {
        return;
    }
    let l = ctx.limits;
    if l.max_scan_bytes == 0 {
        // a body not sampled (or no body scanning): nothing to read or decode
        return;
    }
    let mut state = [0u8; 8 * 9];
    let words = [
        ctx.fp.id(),
        ctx.side as u64,
        l.max_decompressed_bytes as u64,
        l.max_scan_bytes as u64,
        l.max_findings as u64,
        l.max_json_depth as u64,
        ctx.findings.len() as u64,
        ctx.echo_checks as u64,
        u64::from(ctx.allow) | u64::from(ctx.suppress) << 16,
    ];
    for (chunk, w) in state.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    let ctype = header(headers, "content-type").unwrap_or(&[]);
    let coding = header(headers, "content-encoding").unwrap_or(&[]);
    let mut parts: Vec<&[u8]> = Vec::with_capacity(8);
    parts.extend_from_slice(&[&state, ctx.prefix.as_bytes(), ctype, coding, &body.sample]);
    // what the echo sources are made of (the sources are a function of these)
    if let Some(tx) = ctx.echo_of {
        let (target, sample) = (tx.target.as_bytes(), tx.request_body.sample.as_slice());
        parts.extend_from_slice(&[
            target.get(..ECHO_SOURCE_MAX).unwrap_or(target),
            sample.get(..ECHO_SOURCE_MAX).unwrap_or(sample),
            header(&tx.request_headers, "authorization").unwrap_or(&[]),
        ]);
    }
    let Some(key) = BODY_MEMO.with(|m| m.try_borrow().ok().map(|m| m.key(&parts))) else {
        scan_body_now(ctx, headers, body, stats);
        return;
    };
    drop(parts);
    if let Some(done) = BODY_MEMO.with(|m| m.try_borrow().ok().and_then(|m| m.get(key))) {
        ctx.findings.extend(done.findings);
        stats.add(&done.stats);
        ctx.echoed += done.echoed;
        ctx.echo_checks = done.echo_checks;
        ctx.full = done.full;
        stats.body_memo_hits += 1;
        return;
    }
    let (before, echoed, found) = (stats.clone(), ctx.echoed, ctx.findings.len());
    scan_body_now(ctx, headers, body, stats);
    let added = ctx.findings.get(found..).unwrap_or(&[]);
    if added.len() <= BODY_MEMO_FINDINGS_MAX {
        let done = BodyScan {
            findings: added.to_vec(),
            stats: stats.since(&before),
            echoed: ctx.echoed.saturating_sub(echoed),
            echo_checks: ctx.echo_checks,
            full: ctx.full,
        };
        BODY_MEMO.with(|m| {
            if let Ok(mut m) = m.try_borrow_mut() {
                m.put(key, done);
            }
        });
    }
}

fn scan_body_now(ctx: &mut Ctx<'_>, headers: &[Header], body: &BodyInfo, stats: &mut ScanStats) {
    let Some(data) = decode_body(ctx, headers, &body.sample, stats) else {
        return;
    };
    let max = ctx.limits.max_scan_bytes;
    let data: &[u8] = if data.len() > max {
        stats.scan_limit_hit += 1;
        data.get(..max).unwrap_or(&[])
    } else {
        &data
    };
    let ctype = header(headers, "content-type").unwrap_or(&[]);
    scan_media(ctx, ctype, data, stats, 0);
}

/// Reads a (decoded) body by its media type.
pub(crate) fn scan_media(ctx: &mut Ctx<'_>, ctype: &[u8], data: &[u8], stats: &mut ScanStats, nesting: usize) {
    if data.is_empty() {
        return;
    }
    let mut media = media_of(ctype);
    if media == Media::Unknown {
        media = sniff(data);
    }
    if media == Media::Multipart && nesting >= MAX_MULTIPART_NESTING {
        media = Media::Text;
    }
    if media == Media::Binary {
        stats.binary_skipped += 1;
        return;
    }
    if nesting == 0 {
        stats.bodies_scanned += 1;
    }
    match media {
        Media::Json => json::scan_json(ctx, data, stats),
        Media::Form => scan_pairs(ctx, data, false),
        Media::Multipart => formats::scan_multipart(ctx, ctype, data, stats, nesting),
        Media::Markup => formats::scan_markup(ctx, data),
        Media::Csv => formats::scan_csv(ctx, data),
        Media::Text | Media::Unknown | Media::Binary => text::scan_text(ctx, data, &Loc::Text, text::TextOpts { cards: true, ip_label: true }),
    }
}
