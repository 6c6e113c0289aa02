//! Functions of one transaction: what endpoint it hit and what it tells us.
//!
//! [`observe`] turns an [`HttpTransaction`] into an [`Observation`]: the
//! endpoint key (host, method, typed path template — or a user template),
//! credentials classified and fingerprinted ([`auth`]), sensitive data kinds
//! ([`sensitive`]), the client's class and the endpoint's tags ([`context`]),
//! and data shapes without values ([`shape`]). Nothing secret survives into
//! an observation: only kinds, fingerprints and redacted samples.

#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used))]

pub mod fingerprint;
pub mod sensitive;
pub mod auth;
pub mod context;
pub mod shape;
pub mod template;
pub mod posture;

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use crate::proto::{HttpTransaction, HttpVersion};

/// The identity of an API endpoint in the inventory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    /// Host name (lower case, no port), or the server address when the request
    /// named none. Shared with the worker's memo of the last host seen.
    pub host: std::sync::Arc<str>,
    /// Upper case; the common methods shared, not copied ([`method_name`]).
    pub method: std::borrow::Cow<'static, str>,
    /// Path (later: path template); shared with the memo of typed templates.
    pub path: std::sync::Arc<str>,
}

/// What one transaction contributes to the inventory.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub key: EndpointKey,
    /// The path came from a user template: it is not learned from.
    pub fixed: bool,
    pub status: Option<u16>,
    pub ts_us: u64,
    pub protocol: &'static str,
    pub client: IpAddr,
    /// `internal`, `partner` or `external`.
    pub client_class: &'static str,
    /// The request carried X-Forwarded-For / Forwarded.
    pub forwarded: bool,
    pub tags: Vec<(String, String)>,
    /// Credentials carried, classified and fingerprinted (no raw values); empty = none.
    pub credentials: Vec<auth::Credential>,
    pub req_sensitive: Vec<sensitive::SensitiveKind>,
    pub resp_sensitive: Vec<sensitive::SensitiveKind>,
    pub query: Vec<(String, &'static str)>,
    /// Media type (lower case, no parameters); the common ones shared.
    pub req_content_type: Option<Cow<'static, str>>,
    pub resp_content_type: Option<Cow<'static, str>>,
    pub latency_us: Option<u64>,
    pub req_bytes: u64,
    pub resp_bytes: u64,
    /// Schemas of sampled JSON bodies (boxed: most observations have none,
    /// and every one is moved to the aggregator and back).
    pub req_shape: Option<Box<shape::Shape>>,
    pub resp_shape: Option<Box<shape::Shape>>,
    /// The concrete value of the template's last parameter (`/v2/users/17`
    /// → `17`), at most [`MAX_OBJECT_ID`] bytes; for enumeration detection.
    pub object_id: Option<String>,
    /// Sensitive kinds found in the request's path or query string.
    pub url_sensitive: Vec<sensitive::SensitiveKind>,
    pub posture: posture::PostureFlags,
    /// Read from a TLS session decrypted with key-log secrets.
    pub decrypted: bool,
}

impl Observation {
    /// An observation with only the endpoint, status and time (no analysis results).
    pub fn bare(key: EndpointKey, status: Option<u16>, ts_us: u64, protocol: &'static str, client: IpAddr) -> Observation {
        Observation {
            key,
            fixed: false,
            status,
            ts_us,
            protocol,
            client,
            client_class: "external",
            forwarded: false,
            tags: Vec::new(),
            credentials: Vec::new(),
            req_sensitive: Vec::new(),
            resp_sensitive: Vec::new(),
            query: Vec::new(),
            req_content_type: None,
            resp_content_type: None,
            latency_us: None,
            req_bytes: 0,
            resp_bytes: 0,
            req_shape: None,
            resp_shape: None,
            object_id: None,
            url_sensitive: Vec::new(),
            posture: posture::PostureFlags::default(),
            decrypted: false,
        }
    }
}

/// Longest object id kept on an observation.
pub const MAX_OBJECT_ID: usize = 128;

/// The concrete segment under the template's last `{parameter}`, when the
/// path and the template have the same number of segments.
fn object_id(path: &str, template: &str) -> Option<String> {
    let (p, t) = (path.as_bytes(), template.as_bytes());
    if p == t || memchr::memchr_iter(b'/', p).count() != memchr::memchr_iter(b'/', t).count() {
        return None;
    }
    let slash = |b: &u8| *b == b'/';
    p.split(slash).zip(t.split(slash)).filter(|(_, t)| t.first() == Some(&b'{')).last().and_then(|(p, _)| {
        if p.is_empty() || p.len() > MAX_OBJECT_ID {
            None
        } else {
            // split at ASCII '/', so still UTF-8: nothing is replaced
            Some(crate::proto::lossy(p))
        }
    })
}

/// Everything `observe` needs besides the transaction, built once per worker.
#[derive(Clone, Debug)]
pub struct AnalyzeContext {
    pub templates: crate::config::TemplatesConfig,
    pub exposure: context::Exposure,
    pub tags: Vec<context::TagRule>,
    pub auth: auth::AuthConfig,
    pub scan: sensitive::ScanLimits,
    pub fingerprints: fingerprint::Fingerprinter,
}

/// Which costly parts of the analysis run for one transaction: decided per
/// endpoint family ([`sample_family`]) when the request head is complete, so
/// that the parsers copy only the bodies that will be read.
pub type Depth = crate::proto::Sampling;

/// Counters of the analysis, per worker.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct AnalyzeStats {
    pub observations: u64,
    pub ignored: u64,
    pub assets_skipped: u64,
    pub shapes: u64,
    pub bodies_not_sampled: u64,
    pub scan: sensitive::ScanStats,
}

/// The host part of a `Host` header or `:authority`: no userinfo, no port, no
/// IPv6 brackets, lower case, no trailing dot. `None` when nothing is left.
pub fn normalize_host(raw: &str) -> Option<String> {
    host_span(raw).map(str::to_ascii_lowercase)
}

/// What [`normalize_host`] keeps of `raw`, before lower-casing.
fn host_span(raw: &str) -> Option<&str> {
    host_range(raw.as_bytes()).and_then(|r| raw.get(r))
}

/// [`host_span`] over bytes.
fn host_span_bytes(raw: &[u8]) -> Option<&[u8]> {
    host_range(raw).and_then(|r| raw.get(r))
}

/// Where [`host_span`] lies in `raw` (cut at ASCII bytes only): the usual
/// hosts (a name, with or without a port) in one or two searches, the others
/// (userinfo, IPv6 literals, several colons) in one pass.
fn host_range(raw: &[u8]) -> Option<std::ops::Range<usize>> {
    let lead = raw.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let body = raw.get(lead..)?.trim_ascii_end();
    let plain = match memchr::memchr2(b'@', b':', body) {
        None => Some(body.len()),
        Some(i) if body.get(i) == Some(&b':') && memchr::memchr2(b'@', b':', body.get(i + 1..).unwrap_or_default()).is_none() => Some(i),
        Some(_) => None,
    };
    if let Some(mut e) = plain.filter(|_| body.first() != Some(&b'[')) {
        while e > 0 && body.get(e - 1) == Some(&b'.') {
            e -= 1;
        }
        return (e > 0).then_some(lead..lead + e);
    }
    // userinfo ends at the last '@'; count the colons after it
    let (mut from, mut colons, mut first_colon) = (0usize, 0usize, body.len());
    for (i, &b) in body.iter().enumerate() {
        if b == b'@' {
            from = i + 1;
            colons = 0;
            first_colon = body.len();
        } else if b == b':' {
            if colons == 0 {
                first_colon = i;
            }
            colons += 1;
        }
    }
    let (mut s, mut e) = (from, body.len());
    if body.get(s) == Some(&b'[') {
        // an IPv6 literal: what the brackets hold
        s += 1;
        e = body.get(s..).and_then(|r| memchr::memchr(b']', r)).map_or(e, |i| s + i);
    } else if colons == 1 {
        e = first_colon;
    }
    while e > s && body.get(e - 1) == Some(&b'.') {
        e -= 1;
    }
    (e > s).then_some(lead + s..lead + e)
}

/// Splits a request target into (path, query). The absolute form
/// (`http://host/p?q`) gives its path; the authority form of CONNECT and the
/// asterisk form are kept as sent.
pub fn split_target<'a>(method: &str, target: &'a str) -> (&'a str, Option<&'a str>) {
    if method.eq_ignore_ascii_case("CONNECT") {
        return (target, None);
    }
    // the query runs from the first '?' to a '#' after it; a '#' first ends the path
    let (path, query) = match memchr::memchr2(b'?', b'#', target.as_bytes()) {
        Some(i) if target.as_bytes().get(i) == Some(&b'?') => {
            let rest = target.get(i + 1..).unwrap_or("");
            let query = rest.get(..memchr::memchr(b'#', rest.as_bytes()).unwrap_or(rest.len())).unwrap_or(rest);
            (target.get(..i).unwrap_or(""), Some(query))
        }
        Some(i) => (target.get(..i).unwrap_or(""), None),
        None => (target, None),
    };
    let path = match path_start(path.as_bytes()) {
        Some(at) => path.get(at..).unwrap_or("/"),
        None => "/",
    };
    (path, query)
}

/// Where the path begins in the part of a request target before its query:
/// at once (the origin form, and anything unrecognised), after the authority
/// of the absolute form (`http://host/p`), or `None` for an absolute form
/// without a path (which means `/`).
fn path_start(before_query: &[u8]) -> Option<usize> {
    if before_query.first() == Some(&b'/') {
        return Some(0);
    }
    match memchr::memmem::find(before_query, b"://") {
        Some(i) => memchr::memchr(b'/', before_query.get(i + 3..).unwrap_or_default()).map(|j| i + 3 + j),
        None => Some(0),
    }
}

/// Query parameter names whose values are credentials (compared case-insensitively,
/// ignoring `-` and `_`).
const SECRET_PARAMS: &[&str] = &[
    "apikey", "key", "token", "accesstoken", "idtoken", "refreshtoken", "authtoken", "auth", "password", "passwd",
    "pwd", "secret", "clientsecret", "sig", "signature", "session", "sessionid", "sid", "jwt", "code", "xapikey",
    "privatetoken", "bearer", "credential", "credentials",
];

/// Placeholder for a value that must not leave the sensor.
pub const REDACTED: &str = "<redacted>";

fn is_secret_param(name: &str) -> bool {
    let n: String = name.chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_ascii_lowercase();
    SECRET_PARAMS.contains(&n.as_str()) || n.ends_with("token") || n.ends_with("apikey") || n.ends_with("secret") || n.ends_with("password")
}

/// The query string with the values of credential-like parameters replaced by
/// [`REDACTED`]; names and other values are kept.
pub fn redact_query(q: &str) -> String {
    q.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret_param(name) => format!("{name}={REDACTED}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The protocol name recorded in the inventory.
pub fn protocol_name(v: HttpVersion) -> &'static str {
    match v {
        HttpVersion::Http09 => "http/0.9",
        HttpVersion::Http10 => "http/1.0",
        HttpVersion::Http11 => "http/1.1",
        HttpVersion::H2 => "h2",
    }
}

fn server_host(server: SocketAddr) -> String {
    server.ip().to_string()
}

fn content_type(headers: &[crate::proto::Header]) -> Option<Cow<'static, str>> {
    headers.iter().find(|h| h.name == "content-type").map(|h| {
        let v = &h.value;
        let media = v.get(..memchr::memchr(b';', v).unwrap_or(v.len())).unwrap_or_default().trim_ascii();
        if let Some(common) = COMMON_MEDIA_TYPES.iter().find(|c| media.eq_ignore_ascii_case(c.as_bytes())) {
            return Cow::Borrowed(*common);
        }
        let mut s = String::from_utf8_lossy(media).into_owned();
        s.make_ascii_lowercase();
        Cow::Owned(s)
    })
}

/// Media types shared rather than copied for every message that names them.
const COMMON_MEDIA_TYPES: [&str; 8] = [
    "application/json",
    "text/html",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "application/xml",
    "application/grpc",
    "application/octet-stream",
];

/// A request method in upper case: the common ones shared, others copied.
pub fn method_name(method: &str) -> Cow<'static, str> {
    match crate::proto::COMMON_METHODS.iter().find(|m| method.eq_ignore_ascii_case(m)) {
        Some(m) => Cow::Borrowed(*m),
        None => Cow::Owned(method.to_ascii_uppercase()),
    }
}

/// The JSON shape of a body, when it is JSON, complete and not content-encoded.
fn body_shape(body: &crate::proto::BodyInfo, headers: &[crate::proto::Header], ctype: Option<&str>) -> Option<shape::Shape> {
    let json = ctype.is_some_and(|c| c == "application/json" || c.ends_with("+json"));
    let encoded = headers.iter().any(|h| h.name == "content-encoding" && !h.value.eq_ignore_ascii_case(b"identity"));
    if !json || encoded || body.sample.is_empty() || body.sample.len() as u64 != body.length || body.gap_bytes > 0 {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(&body.sample).ok().map(|v| shape::Shape::of(&v))
}

/// The user template that matches `path` on `host`, if any.
fn user_template<'a>(templates: &'a crate::config::TemplatesConfig, host: &str, path: &str) -> Option<&'a str> {
    templates
        .rules
        .iter()
        .find(|r| r.host.as_deref().is_none_or(|h| h == "*" || context::host_glob(h, host)) && template::matches_template(&r.template, path))
        .map(|r| r.template.as_str())
}

/// The endpoint family a request's bodies are sampled by: its host, method
/// and the first two segments of its template (the host, method and
/// template [`observe`] gives it), with the template's depth, as a hash under
/// `seed` ([`FamilyHash`]) — worked out from the request head alone, without
/// allocating unless user templates are configured. Free-text parameters are
/// only learned later, in the aggregator, so a template's slugs still stand
/// for themselves here. `None` when [`observe`] will leave the request out
/// (an ignored path, a skipped static asset): none of its bodies is read.
///
/// With the key comes the typed template of the path when it was worked out
/// (no user template applies and the method is not CONNECT): exactly what
/// [`observe`] would make of the path, handed on in [`Depth::template`].
pub fn sample_family(templates: &crate::config::TemplatesConfig, host: FamilyHost, head: &crate::proto::HeadFacts<'_>) -> Option<(u64, Option<std::sync::Arc<str>>)> {
    let text = |b| String::from_utf8_lossy(b);
    let connect = head.method.eq_ignore_ascii_case(b"CONNECT");
    let path = if connect { head.target } else { target_path(head.target) };
    let path: &[u8] = if path.is_empty() { b"/" } else { path };
    if !templates.ignore.is_empty() && templates.ignore.iter().any(|g| template::matches_template(g, &text(path))) {
        return None;
    }
    let user = if templates.rules.is_empty() {
        None
    } else {
        let server = server_host(head.server);
        let host = head.host.and_then(host_span_bytes).unwrap_or(server.as_bytes());
        user_template(templates, &String::from_utf8_lossy(host).to_ascii_lowercase(), &text(path))
    };
    // host, method, the template up to its third '/', and its depth
    let family = |template: &str, (third, depth): (usize, u64)| -> Option<u64> {
        if templates.assets == crate::config::AssetPolicy::Skip
            && template.ends_with("{file}")
            && path.rsplit(|b| *b == b'/').next().is_some_and(|last| template::is_asset(&text(last)))
        {
            return None;
        }
        let t = template.as_bytes();
        let mut h = FamilyHash(host.0);
        h.part(head.method);
        h.part(t.get(..third).unwrap_or(t));
        Some(h.finish(depth))
    };
    match user {
        Some(t) => family(t, template::third_and_depth(t)).map(|k| (k, None)),
        None if connect => {
            let t = text(path);
            family(&t, template::third_and_depth(&t)).map(|k| (k, None))
        }
        // (the memo remembers where the template's third '/' is)
        None => template::with_typed_template(path, |t| family(&t.template, (t.third, t.depth)).map(|k| (k, Some(std::sync::Arc::clone(&t.template))))),
    }
}

/// The path of a request target, as [`split_target`] gives it (for any
/// method but CONNECT), in bytes.
fn target_path(target: &[u8]) -> &[u8] {
    let path = match memchr::memchr2(b'?', b'#', target) {
        Some(i) => target.get(..i).unwrap_or_default(),
        None => target,
    };
    match path_start(path) {
        Some(at) => path.get(at..).unwrap_or(b"/"),
        None => b"/",
    }
}

/// The host part of a request's sampling family ([`sample_family`]): the
/// host [`observe`] gives its endpoint (lower case; the server's address when
/// the request names none), hashed under `seed`. Worked out once per host
/// value by a caller that remembers it: requests of a connection repeat it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilyHost(u64);

impl FamilyHost {
    pub fn of(seed: u64, host: Option<&[u8]>, server: SocketAddr) -> FamilyHost {
        let span = host.and_then(host_span_bytes);
        let server = span.is_none().then(|| server_host(server));
        let host = span.or(server.as_deref().map(str::as_bytes)).unwrap_or_default();
        let mut h = FamilyHash::new(seed);
        h.part(&host.to_ascii_lowercase());
        FamilyHost(h.0)
    }
}

/// The sampling key of an endpoint family ([`sample_family`]): a seeded
/// multiply-rotate hash of its parts (length-prefixed) and depth. Not
/// collision-resistant against a client that learns the seed, and it need
/// not be: two families that share a key only share a sampling counter (a
/// client can shift sampling as much by sending more requests), while the
/// sampler's table is bounded whatever the keys.
struct FamilyHash(u64);

impl FamilyHash {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn new(seed: u64) -> FamilyHash {
        FamilyHash(seed)
    }

    fn mix(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(23) ^ w).wrapping_mul(Self::K);
    }

    fn part(&mut self, p: &[u8]) {
        self.mix(p.len() as u64);
        let mut chunks = p.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let mut w = [0u8; 8];
        let rest = chunks.remainder();
        if let Some(dst) = w.get_mut(..rest.len()) {
            dst.copy_from_slice(rest);
        }
        self.mix(u64::from_le_bytes(w));
    }

    fn finish(mut self, depth: u64) -> u64 {
        self.mix(depth);
        // final avalanche (the table uses the low bits as they are)
        let mut h = self.0;
        h ^= h >> 29;
        h = h.wrapping_mul(Self::K);
        h ^ (h >> 32)
    }
}

/// The observation of one transaction, or `None` when configuration says to
/// leave it out (ignored paths, skipped static assets).
///
/// `d` says which costly parts to run (see [`sample_family`]): body shapes
/// add nothing after an endpoint's first few bodies, and bodies are scanned
/// for sensitive data on a per-endpoint sample once an endpoint is well
/// known (headers, query and path are always scanned).
pub fn observe(tx: &HttpTransaction, ctx: &AnalyzeContext, stats: &mut AnalyzeStats, d: &Depth) -> Option<Observation> {
    let host = endpoint_host(tx);
    let (path, query) = split_target(&tx.method, &tx.target);
    let split = (path, query);
    let path = if path.is_empty() { "/" } else { path };
    if ctx.templates.ignore.iter().any(|g| template::matches_template(g, path)) {
        stats.ignored += 1;
        return None;
    }
    let (template, fixed): (std::sync::Arc<str>, bool) = match user_template(&ctx.templates, &host, path) {
        Some(t) => (t.into(), true),
        None if tx.method.eq_ignore_ascii_case("CONNECT") => (path.into(), true),
        // the sampler's, when it worked the template out (the same path)
        None => match &d.template {
            Some(t) => (std::sync::Arc::clone(t), false),
            None => (template::shared_typed_template(path), false),
        },
    };
    if ctx.templates.assets == crate::config::AssetPolicy::Skip && template.ends_with("{file}") && path.rsplit('/').next().is_some_and(template::is_asset) {
        stats.assets_skipped += 1;
        return None;
    }
    stats.observations += 1;
    let credentials = auth::classify_split(tx, query, &ctx.auth, &ctx.fingerprints, false);
    let kinds = |f: Vec<sensitive::Finding>| {
        let mut k: Vec<sensitive::SensitiveKind> = f.into_iter().map(|f| f.kind).collect();
        k.sort();
        k.dedup();
        k
    };
    let unsampled;
    let scan = if d.body_scan {
        &ctx.scan
    } else {
        stats.bodies_not_sampled += 1;
        unsampled = sensitive::ScanLimits { max_scan_bytes: 0, max_decompressed_bytes: 0, ..ctx.scan.clone() };
        &unsampled
    };
    let req_found = sensitive::scan_request_split(tx, split, scan, &ctx.fingerprints, &mut stats.scan);
    let mut url_sensitive: Vec<sensitive::SensitiveKind> = req_found
        .iter()
        .filter(|f| matches!(f.location, sensitive::Location::Path | sensitive::Location::Query(_)))
        .map(|f| f.kind)
        .collect();
    url_sensitive.sort();
    url_sensitive.dedup();
    let req_sensitive = kinds(req_found);
    let resp_sensitive = if tx.status.is_some() { kinds(sensitive::scan_response(tx, scan, &ctx.fingerprints, &mut stats.scan)) } else { Vec::new() };
    let req_content_type = content_type(&tx.request_headers);
    let resp_content_type = content_type(&tx.response_headers);
    let shapes = d.shapes;
    let req_shape = if shapes { body_shape(&tx.request_body, &tx.request_headers, req_content_type.as_deref()) } else { None };
    // the schema of success responses only: error bodies have shapes of their own
    let resp_shape = if shapes && tx.status.is_some_and(|s| (200..300).contains(&s)) {
        body_shape(&tx.response_body, &tx.response_headers, resp_content_type.as_deref())
    } else {
        None
    };
    stats.shapes += u64::from(req_shape.is_some()) + u64::from(resp_shape.is_some());
    let (req_shape, resp_shape) = (req_shape.map(Box::new), resp_shape.map(Box::new));
    let forwarded = tx.request_headers.iter().any(|h| h.name == "x-forwarded-for" || h.name == "forwarded");
    let client = if ctx.exposure.trust_forwarded_for { forwarded_client(tx).unwrap_or(tx.client.ip()) } else { tx.client.ip() };
    let tags = context::tags(&ctx.tags, &host, &template);
    let object_id = object_id(path, &template);
    Some(Observation {
        object_id,
        url_sensitive,
        posture: posture::flags(tx),
        decrypted: tx.decrypted,
        key: EndpointKey { host, method: method_name(&tx.method), path: template },
        fixed,
        status: tx.status,
        ts_us: tx.request_ts_us,
        protocol: if tx.grpc.is_some() { "grpc" } else { protocol_name(tx.version) },
        client,
        client_class: ctx.exposure.class(client),
        forwarded,
        tags,
        credentials,
        req_sensitive,
        resp_sensitive,
        query: query.map(shape::query_params).unwrap_or_default(),
        req_content_type,
        resp_content_type,
        latency_us: tx.response_ts_us.map(|r| r.saturating_sub(tx.request_ts_us)),
        req_bytes: tx.request_body.length,
        resp_bytes: tx.response_body.length,
        req_shape,
        resp_shape,
    })
}

/// Longest `Host` value the per-thread memos of the last host (here and in
/// the engine's sampler) remember.
pub const HOST_MEMO_BYTES: usize = 256;

/// A transaction's host value and server, and the endpoint host they make.
type LastHost = (Option<std::sync::Arc<str>>, SocketAddr, std::sync::Arc<str>);

std::thread_local! {
    /// The last host value (or, without one, server) [`endpoint_host`] worked
    /// out on this thread, and its endpoint host: a connection's requests
    /// repeat it.
    static LAST_HOST: std::cell::RefCell<Option<LastHost>> = const { std::cell::RefCell::new(None) };
}

/// The host of a transaction's endpoint: its `Host`/`:authority`
/// normalised ([`normalize_host`]), or the server's address when it names
/// none. Shared with a per-thread memo of the last one.
fn endpoint_host(tx: &HttpTransaction) -> std::sync::Arc<str> {
    let make = || -> std::sync::Arc<str> { template::shared_text(tx.host.as_deref().and_then(normalize_host).unwrap_or_else(|| server_host(tx.server))) };
    if tx.host.as_ref().is_some_and(|h| h.len() > HOST_MEMO_BYTES) {
        return make();
    }
    LAST_HOST.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else { return make() };
        if let Some((raw, server, host)) = m.as_ref() {
            let same_raw = match (raw, &tx.host) {
                (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b) || a == b,
                (None, None) => true,
                _ => false,
            };
            if *server == tx.server && same_raw {
                return std::sync::Arc::clone(host);
            }
        }
        let host = make();
        *m = Some((tx.host.clone(), tx.server, std::sync::Arc::clone(&host)));
        host
    })
}

/// The first address of X-Forwarded-For (only used when configured to trust it).
fn forwarded_client(tx: &HttpTransaction) -> Option<IpAddr> {
    let v = tx.request_header("x-forwarded-for")?;
    String::from_utf8_lossy(v).split(',').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_media_types_are_normalised_and_common_ones_shared() {
        for (m, want, shared) in [("get", "GET", true), ("Post", "POST", true), ("OPTIONS", "OPTIONS", true), ("propfind", "PROPFIND", false), ("", "", false)] {
            let got = method_name(m);
            assert_eq!(got, want);
            assert_eq!(matches!(got, Cow::Borrowed(_)), shared, "{m}");
        }
        let h = |v: &str| vec![crate::proto::Header { name: "content-type".into(), value: v.into() }];
        for (v, want, shared) in [
            ("application/json", "application/json", true),
            (" Application/JSON ; charset=utf-8", "application/json", true),
            ("text/HTML;q=1", "text/html", true),
            ("application/vnd.api+JSON", "application/vnd.api+json", false),
            ("", "", false),
        ] {
            let got = content_type(&h(v)).unwrap();
            assert_eq!(got, want, "{v}");
            assert_eq!(matches!(got, Cow::Borrowed(_)), shared, "{v}");
        }
        assert_eq!(content_type(&[]), None);
    }

    #[test]
    fn host_normalisation() {
        assert_eq!(normalize_host("Example.COM:8080").as_deref(), Some("example.com"));
        assert_eq!(normalize_host("user:pw@example.com").as_deref(), Some("example.com"));
        assert_eq!(normalize_host("[2001:db8::1]:443").as_deref(), Some("2001:db8::1"));
        assert_eq!(normalize_host("2001:db8::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(normalize_host("example.com.").as_deref(), Some("example.com"));
        assert_eq!(normalize_host(""), None);
        assert_eq!(normalize_host(":80"), None);
    }

    /// The host part the former normalisation kept (trim, userinfo, brackets,
    /// one port colon, trailing dots), written out again as the reference.
    fn host_span_reference(raw: &str) -> Option<String> {
        let h = raw.trim_ascii();
        let h = match h.rfind('@') {
            Some(i) => &h[i + 1..],
            None => h,
        };
        let h = if let Some(rest) = h.strip_prefix('[') {
            &rest[..rest.find(']').unwrap_or(rest.len())]
        } else if h.matches(':').count() == 1 {
            &h[..h.find(':').unwrap()]
        } else {
            h
        };
        let h = h.trim_end_matches('.');
        (!h.is_empty()).then(|| h.to_string())
    }

    #[test]
    fn host_span_is_the_host_part_of_every_shape() {
        let alphabet = ["a", "B", "1", ".", ":", "@", "[", "]", " ", "\t", "é"];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut s = String::new();
            for k in 0..(seed % 12) {
                s.push_str(alphabet[((seed >> (5 * k)) % alphabet.len() as u64) as usize]);
            }
            assert_eq!(host_span(&s).map(str::to_string), host_span_reference(&s), "{s:?}");
            assert_eq!(host_span_bytes(s.as_bytes()), host_span_reference(&s).as_deref().map(str::as_bytes), "{s:?}");
            assert_eq!(normalize_host(&s), host_span_reference(&s).map(|h| h.to_ascii_lowercase()), "{s:?}");
        }
    }

    /// Two requests share a sampling family exactly when the endpoint
    /// `observe` gives them shares host, method, the template's first two
    /// segments and its depth; requests `observe` leaves out have none.
    #[test]
    fn sampling_families_are_those_of_the_observed_endpoints() {
        let server: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let client: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let templates = crate::config::TemplatesConfig {
            ignore: vec!["/health".to_string(), "/internal/**".to_string()],
            assets: crate::config::AssetPolicy::Skip,
            rules: vec![crate::config::UserTemplate { host: Some("shop.example".to_string()), template: "/p/{sku}/reviews".to_string() }],
            ..Default::default()
        };
        let ctx = AnalyzeContext {
            templates: templates.clone(),
            exposure: context::Exposure::default(),
            tags: Vec::new(),
            auth: auth::AuthConfig::default(),
            scan: sensitive::ScanLimits::default(),
            fingerprints: fingerprint::Fingerprinter::new([1; fingerprint::KEY_LEN]),
        };
        let heads: &[(&str, &str, Option<&str>)] = &[
            ("GET", "/v2/users/17", Some("api.example")),
            ("GET", "/v2/users/18?x=1", Some("API.example:8080")),
            ("GET", "/v2/users/18/orders", Some("api.example")),
            ("GET", "/v2/users/19/orders", Some("user@api.example.")),
            ("POST", "/v2/users/17", Some("api.example")),
            ("GET", "/v2/items/17", Some("api.example")),
            ("GET", "/17/users/x", Some("api.example")),
            ("GET", "/18/users/x", Some("api.example")),
            ("GET", "/a/0f8fad5b-d9cb-469f-a165-70867728950e/b", Some("api.example")),
            ("GET", "/a/7c9e6679-7425-40de-944b-e07fc1f90ae7/b", Some("api.example")),
            ("GET", "/v2/users/17", None),
            ("GET", "http://api.example/v2/users/20", Some("api.example")),
            ("GET", "/p/123/reviews", Some("shop.example")),
            ("GET", "/p/456/reviews", Some("shop.example")),
            ("GET", "/p/456/reviews", Some("other.example")),
            ("CONNECT", "api.example:443", Some("api.example:443")),
            ("GET", "/health", Some("api.example")),
            ("GET", "/internal/metrics/x", Some("api.example")),
            ("GET", "/static/app/main.js", Some("api.example")),
            ("GET", "/static/app/main.json", Some("api.example")),
            ("GET", "", Some("api.example")),
            ("GET", "/", Some("[2001:db8::1]:80")),
        ];
        // (sampling key, the observed endpoint's host, method, template prefix and depth)
        type Family = (String, String, String, usize);
        let mut seen: Vec<(Option<u64>, Option<Family>)> = Vec::new();
        for (method, target, host) in heads {
            let facts = crate::proto::HeadFacts { method: method.as_bytes(), target: target.as_bytes(), host: host.map(str::as_bytes), server };
            let sampled = sample_family(&templates, FamilyHost::of(7, facts.host, facts.server), &facts);
            let mut tx = HttpTransaction::new(client, server, method, target);
            tx.host = host.map(Into::into);
            let mut stats = AnalyzeStats::default();
            let obs = observe(&tx, &ctx, &mut stats, &crate::proto::Sampling::ALL);
            // a template handed on is the one the analysis works out itself
            if let (Some((_, Some(t))), Some(o)) = (&sampled, &obs) {
                assert_eq!(&**t, &*o.key.path, "{method} {target} {host:?}");
            }
            let with_template = Depth { template: sampled.as_ref().and_then(|s| s.1.clone()), ..Depth::ALL };
            let carried = observe(&tx, &ctx, &mut AnalyzeStats::default(), &with_template);
            assert_eq!(carried.map(|o| o.key), obs.as_ref().map(|o| o.key.clone()), "{method} {target} {host:?}");
            let key = sampled.map(|s| s.0);
            let family = obs.map(|o| {
                let t = o.key.path.to_string();
                let third = t.match_indices('/').nth(2).map_or(t.len(), |(i, _)| i);
                (o.key.host.to_string(), method.to_string(), t[..third].to_string(), t.matches('/').count())
            });
            assert_eq!(key.is_some(), family.is_some(), "{method} {target} {host:?}");
            seen.push((key, family));
        }
        for (i, a) in seen.iter().enumerate() {
            for b in &seen[i + 1..] {
                if a.1.is_some() && b.1.is_some() {
                    assert_eq!(a.0 == b.0, a.1 == b.1, "{:?} / {:?}", a.1, b.1);
                }
            }
        }
        // the cases above do make both kinds of pairs
        assert_eq!(seen[0].0, seen[1].0);
        assert_ne!(seen[0].0, seen[2].0);
        assert_eq!(seen[12].0, seen[13].0);
        assert_ne!(seen[13].0, seen[14].0);
    }

    #[test]
    fn a_sampled_template_is_the_one_of_the_transactions_target_even_for_bytes_that_are_not_utf8() {
        let server: std::net::SocketAddr = "10.0.0.1:80".parse().unwrap();
        let templates = crate::config::TemplatesConfig::default();
        let targets: &[&[u8]] = &[
            b"/v1/users/\xff\xfe/orders",
            b"/v1/\xc3(/17?q=\xff",
            b"/caf\xc3\xa9/42#frag",
            b"http://h.example/v2/items/\x80\x80/7",
            b"",
            b"/",
            b"*",
        ];
        for &target in targets {
            let facts = crate::proto::HeadFacts { method: b"GET", target, host: Some(b"api.example"), server };
            let Some((_, Some(t))) = sample_family(&templates, FamilyHost::of(3, facts.host, facts.server), &facts) else {
                panic!("no template for {target:?}");
            };
            // what the transaction holds: the target as lossy text
            let text = String::from_utf8_lossy(target);
            let (path, _) = split_target("GET", &text);
            let path = if path.is_empty() { "/" } else { path };
            assert_eq!(&*t, &*template::shared_typed_template(path), "{target:?}");
            assert_eq!(&*t, template::typed_template(path).as_str(), "{target:?}");
        }
    }

    #[test]
    fn target_forms() {
        assert_eq!(split_target("GET", "/a/b?x=1"), ("/a/b", Some("x=1")));
        assert_eq!(split_target("GET", "http://h.example/a?x"), ("/a", Some("x")));
        assert_eq!(split_target("GET", "http://h.example"), ("/", None));
        assert_eq!(split_target("CONNECT", "h.example:443"), ("h.example:443", None));
        assert_eq!(split_target("OPTIONS", "*"), ("*", None));
        assert_eq!(split_target("GET", "/p#frag"), ("/p", None));
        assert_eq!(split_target("GET", "/p?a=1#frag?b"), ("/p", Some("a=1")));
        assert_eq!(split_target("GET", "/p#frag?b=2"), ("/p", None));
        assert_eq!(split_target("GET", "/p?"), ("/p", Some("")));
        assert_eq!(split_target("GET", "/p?#"), ("/p", Some("")));
        assert_eq!(split_target("GET", "http://h.example?x#y"), ("/", Some("x")));
        // the path the sampler reads from the head's bytes is the same
        for target in ["/a/b?x=1", "http://h.example/a?x", "http://h.example", "*", "/p#frag", "/p?a=1#frag?b", "/p?", "http://h.example?x#y", "", "h.example:443"] {
            assert_eq!(target_path(target.as_bytes()), split_target("GET", target).0.as_bytes(), "{target}");
        }
    }

    #[test]
    fn credential_query_values_are_redacted() {
        assert_eq!(redact_query("api_key=rk_1&id=5"), "api_key=<redacted>&id=5");
        assert_eq!(redact_query("access_token=x&X-Api-Key=y&page=2"), "access_token=<redacted>&X-Api-Key=<redacted>&page=2");
        assert_eq!(redact_query("user_id=42&flag"), "user_id=42&flag");
    }
}
