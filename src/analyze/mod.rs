//! Functions of one transaction: what endpoint it hit and what it tells us.
//!
//! For now the endpoint path is the raw path of the request target; a path
//! template replaces it here later without changing the inventory's shape.

pub mod fingerprint;

use std::net::{IpAddr, SocketAddr};

use crate::proto::{HttpTransaction, HttpVersion};

/// The identity of an API endpoint in the inventory.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    /// Host name (lower case, no port), or the server address when the request named none.
    pub host: String,
    pub method: String,
    /// Path (later: path template).
    pub path: String,
}

/// What one transaction contributes to the inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub key: EndpointKey,
    pub status: Option<u16>,
    pub ts_us: u64,
    pub protocol: &'static str,
    pub client: IpAddr,
}

/// The host part of a `Host` header or `:authority`: no userinfo, no port, no
/// IPv6 brackets, lower case, no trailing dot. `None` when nothing is left.
pub fn normalize_host(raw: &str) -> Option<String> {
    let h = raw.trim();
    let h = h.rsplit_once('@').map_or(h, |(_, host)| host);
    let h = if let Some(rest) = h.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if h.matches(':').count() == 1 {
        h.split(':').next().unwrap_or("")
    } else {
        h
    };
    let h = h.trim_end_matches('.');
    if h.is_empty() {
        None
    } else {
        Some(h.to_ascii_lowercase())
    }
}

/// Splits a request target into (path, query). The absolute form
/// (`http://host/p?q`) gives its path; the authority form of CONNECT and the
/// asterisk form are kept as sent.
pub fn split_target<'a>(method: &str, target: &'a str) -> (&'a str, Option<&'a str>) {
    if method.eq_ignore_ascii_case("CONNECT") {
        return (target, None);
    }
    let without_fragment = target.split('#').next().unwrap_or(target);
    let (path, query) = match without_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (without_fragment, None),
    };
    let path = match path.find("://") {
        Some(i) if !path.starts_with('/') => {
            let after = path.get(i + 3..).unwrap_or("");
            match after.find('/') {
                Some(j) => after.get(j..).unwrap_or("/"),
                None => "/",
            }
        }
        _ => path,
    };
    (path, query)
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

/// The observation of one transaction.
pub fn observe(tx: &HttpTransaction) -> Observation {
    let host = tx.host.as_deref().and_then(normalize_host).unwrap_or_else(|| server_host(tx.server));
    let (path, _) = split_target(&tx.method, &tx.target);
    let path = if path.is_empty() { "/" } else { path };
    Observation {
        key: EndpointKey { host, method: tx.method.to_ascii_uppercase(), path: path.to_string() },
        status: tx.status,
        ts_us: tx.request_ts_us,
        protocol: if tx.grpc.is_some() { "grpc" } else { protocol_name(tx.version) },
        client: tx.client.ip(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn target_forms() {
        assert_eq!(split_target("GET", "/a/b?x=1"), ("/a/b", Some("x=1")));
        assert_eq!(split_target("GET", "http://h.example/a?x"), ("/a", Some("x")));
        assert_eq!(split_target("GET", "http://h.example"), ("/", None));
        assert_eq!(split_target("CONNECT", "h.example:443"), ("h.example:443", None));
        assert_eq!(split_target("OPTIONS", "*"), ("*", None));
        assert_eq!(split_target("GET", "/p#frag"), ("/p", None));
    }

    #[test]
    fn credential_query_values_are_redacted() {
        assert_eq!(redact_query("api_key=rk_1&id=5"), "api_key=<redacted>&id=5");
        assert_eq!(redact_query("access_token=x&X-Api-Key=y&page=2"), "access_token=<redacted>&X-Api-Key=<redacted>&page=2");
        assert_eq!(redact_query("user_id=42&flag"), "user_id=42&flag");
    }
}
