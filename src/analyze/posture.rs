//! Per-transaction posture facts that need the raw transaction: verbose
//! error pages, CORS answers, request-smuggling ambiguity. The inventory
//! turns them into findings per endpoint.

use crate::proto::{Anomalies, HttpTransaction};

/// Facts about one transaction, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PostureFlags(pub u8);

impl PostureFlags {
    /// The response carries a stack trace, a framework debug page or a database error text.
    pub const VERBOSE_ERROR: u8 = 1 << 0;
    /// `Access-Control-Allow-Credentials: true` with a wildcard, `null` or
    /// foreign reflected `Access-Control-Allow-Origin`.
    pub const CORS_CREDENTIALS: u8 = 1 << 1;
    /// The request framing is ambiguous (Content-Length with
    /// Transfer-Encoding, several Content-Length values, an unknown coding).
    pub const SMUGGLING: u8 = 1 << 2;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// Byte strings that only error pages and debug output contain. Matched
/// case-sensitively in the first bytes of a response body that is not
/// content-encoded.
const VERBOSE_MARKERS: &[&[u8]] = &[
    b"Traceback (most recent call last)",
    b"Exception in thread \"",
    b"\tat java.",
    b"\tat org.",
    b"at java.base/",
    b".java:",
    b"   at System.",
    b"System.NullReferenceException",
    b"Stack trace:",
    b"Whitelabel Error Page",
    b"Werkzeug Debugger",
    b"You're seeing this error because you have <code>DEBUG = True</code>",
    b"SQLSTATE[",
    b"You have an error in your SQL syntax",
    b"syntax error at or near",
    b"ORA-0",
    b"PG::SyntaxError",
    b"psycopg2.errors",
    b"sqlite3.OperationalError",
    b"Fatal error</b>:",
    b"<b>Warning</b>:",
    b"node_modules/",
    b"goroutine 1 [running]",
    b"panicked at ",
];

/// Body bytes searched for [`VERBOSE_MARKERS`].
pub const VERBOSE_SCAN_BYTES: usize = 8192;

// an error response whose bodies are not sampled keeps this much for the check
const _: () = assert!(crate::proto::ERROR_BODY_KEEP >= VERBOSE_SCAN_BYTES);

/// The posture facts of one transaction.
pub fn flags(tx: &HttpTransaction) -> PostureFlags {
    let mut f = 0u8;
    if tx.status.is_some_and(|s| s >= 400) && verbose(tx) {
        f |= PostureFlags::VERBOSE_ERROR;
    }
    if cors_credentials(tx) {
        f |= PostureFlags::CORS_CREDENTIALS;
    }
    if tx.anomalies.0 & (Anomalies::CL_AND_TE | Anomalies::MULTIPLE_CONTENT_LENGTH | Anomalies::UNKNOWN_TE) != 0 {
        f |= PostureFlags::SMUGGLING;
    }
    PostureFlags(f)
}

fn verbose(tx: &HttpTransaction) -> bool {
    let encoded = tx.response_headers.iter().any(|h| h.name == "content-encoding" && !h.value.eq_ignore_ascii_case(b"identity"));
    if encoded {
        return false;
    }
    let sample = &tx.response_body.sample;
    let body = sample.get(..sample.len().min(VERBOSE_SCAN_BYTES)).unwrap_or_default();
    verbose_finders().iter().any(|f| f.find(body).is_some())
}

/// Searchers for [`VERBOSE_MARKERS`], built once (building one costs more
/// than a search of a short body).
fn verbose_finders() -> &'static [memchr::memmem::Finder<'static>] {
    static FINDERS: std::sync::OnceLock<Vec<memchr::memmem::Finder<'static>>> = std::sync::OnceLock::new();
    FINDERS.get_or_init(|| VERBOSE_MARKERS.iter().filter(|m| !m.is_empty()).map(memchr::memmem::Finder::new).collect())
}

/// The host of an origin (`https://a.example.com:8443` → `a.example.com`).
fn origin_host(origin: &[u8]) -> Option<&[u8]> {
    let s = origin.split(|b| *b == b'/').nth(2)?;
    Some(s.split(|b| *b == b':').next().unwrap_or(s))
}

/// The last two labels of a host name (`api.shop.test` → `shop.test`).
fn site(host: &[u8]) -> &[u8] {
    let mut dots = host.iter().enumerate().filter(|(_, b)| **b == b'.').map(|(i, _)| i).collect::<Vec<_>>();
    dots.pop();
    match dots.last() {
        Some(i) => host.get(i + 1..).unwrap_or(host),
        None => host,
    }
}

fn cors_credentials(tx: &HttpTransaction) -> bool {
    let creds = tx.response_header("access-control-allow-credentials").is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"true"));
    if !creds {
        return false;
    }
    let Some(allowed) = tx.response_header("access-control-allow-origin").map(<[u8]>::trim_ascii) else {
        return false;
    };
    if allowed == b"*" || allowed.eq_ignore_ascii_case(b"null") {
        return true;
    }
    // a reflected origin of another site: the server echoes whatever it is sent
    let Some(origin) = tx.request_header("origin").map(<[u8]>::trim_ascii) else {
        return false;
    };
    let host = tx.host.as_deref().map(|h| h.split(':').next().unwrap_or(h).as_bytes().to_ascii_lowercase()).unwrap_or_default();
    match origin_host(origin) {
        Some(oh) => allowed == origin && !host.is_empty() && site(&oh.to_ascii_lowercase()) != site(&host),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{BodyInfo, Header};

    fn tx(status: u16, req: &[(&str, &str)], resp: &[(&str, &str)], body: &[u8]) -> HttpTransaction {
        let h = |v: &[(&str, &str)]| v.iter().map(|(n, v)| Header { name: n.to_string().into(), value: v.as_bytes().into() }).collect();
        HttpTransaction {
            host: Some("api.shop.test".into()),
            request_headers: h(req),
            response_headers: h(resp),
            status: Some(status),
            response_body: BodyInfo { length: body.len() as u64, sample: body.to_vec(), gap_bytes: 0 },
            ..HttpTransaction::new("198.18.10.11:40000".parse().unwrap(), "198.18.0.10:80".parse().unwrap(), "GET", "/x")
        }
    }

    #[test]
    fn stack_traces_and_sql_errors_are_verbose_only_in_error_responses() {
        let body = br#"{"error":"x","detail":"SQLSTATE[42601]: syntax error at or near"}"#;
        assert!(flags(&tx(500, &[], &[], body)).has(PostureFlags::VERBOSE_ERROR));
        assert!(!flags(&tx(200, &[], &[], body)).has(PostureFlags::VERBOSE_ERROR));
        assert!(!flags(&tx(500, &[], &[], br#"{"error":"internal_error"}"#)).has(PostureFlags::VERBOSE_ERROR));
        assert!(!flags(&tx(500, &[], &[("content-encoding", "gzip")], body)).has(PostureFlags::VERBOSE_ERROR));
    }

    #[test]
    fn cors_with_credentials_is_flagged_for_wildcard_null_and_foreign_reflection() {
        let creds = ("access-control-allow-credentials", "true");
        assert!(flags(&tx(200, &[], &[("access-control-allow-origin", "*"), creds], b"")).has(PostureFlags::CORS_CREDENTIALS));
        assert!(flags(&tx(200, &[], &[("access-control-allow-origin", "null"), creds], b"")).has(PostureFlags::CORS_CREDENTIALS));
        let evil = [("origin", "https://evil.example")];
        assert!(flags(&tx(200, &evil, &[("access-control-allow-origin", "https://evil.example"), creds], b"")).has(PostureFlags::CORS_CREDENTIALS));
        let own = [("origin", "https://www.shop.test")];
        assert!(!flags(&tx(200, &own, &[("access-control-allow-origin", "https://www.shop.test"), creds], b"")).has(PostureFlags::CORS_CREDENTIALS));
        assert!(!flags(&tx(200, &[], &[("access-control-allow-origin", "*")], b"")).has(PostureFlags::CORS_CREDENTIALS));
    }
}
