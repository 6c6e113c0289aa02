//! API specifications (OpenAPI 3.x, Swagger 2.0; JSON or YAML): which
//! endpoints are documented and which are deprecated.
//!
//! # Matching
//! An observed endpoint (host, method, path template) is documented by an
//! operation when the method is the same, the host is one of the
//! operation's hosts (or the operation names none), and the paths have the
//! same segments, where a spec segment holding a `{parameter}` matches any
//! observed segment with the same literal prefix and suffix (so both
//! `/users/17` and `/users/{id}` match `/users/{userId}`).
//!
//! Hosts come from the operation's `servers`, else the path item's, else
//! the document's (OpenAPI 3), or `host` (Swagger 2). A server URL's path is
//! a prefix of every path under it (`https://api.example.com/v2` + `/users`).
//! A server without a host name (`/api`) gives the prefix only.

use std::collections::BTreeSet;

use serde_json::Value;
use thiserror::Error;

/// Errors from reading a specification.
#[derive(Debug, Error)]
pub enum SpecError {
    #[error("{source_name}: not JSON or YAML ({message}); give an OpenAPI document")]
    Syntax { source_name: String, message: String },
    #[error("{source_name}: not an OpenAPI 3.x or Swagger 2.0 document (no `openapi: 3…` or `swagger: \"2.0\"` key)")]
    NotOpenApi { source_name: String },
    #[error("{source_name}: has no `paths`; a spec without paths documents nothing")]
    NoPaths { source_name: String },
}

/// HTTP methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// One documented operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Host names (lower case); empty = any host.
    pub hosts: Vec<String>,
    /// Upper case.
    pub method: String,
    /// Full path template (server prefix included).
    pub path: String,
    pub deprecated: bool,
    pub operation_id: Option<String>,
    /// The file it came from.
    pub source: String,
}

/// Every operation of the loaded specifications.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spec {
    pub operations: Vec<Operation>,
}

/// What the specifications say about an observed endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Documented (the operation's index).
    Documented(usize),
    /// Documented and deprecated.
    Deprecated(usize),
    /// The host is covered by the specifications, the endpoint is not.
    Undocumented,
    /// No specification covers this host: nothing can be said.
    OutOfScope,
}

/// (host, path prefix) pairs of a `servers` array.
fn servers(v: Option<&Value>) -> Option<Vec<(Option<String>, String)>> {
    let list = v?.as_array()?;
    let out: Vec<(Option<String>, String)> = list.iter().filter_map(|s| s.get("url")?.as_str()).map(parse_server_url).collect();
    if out.is_empty() {
        None
    } else {
        Some(out)
    }
}

/// `https://api.example.com:8443/v2/` → (Some("api.example.com"), "/v2").
fn parse_server_url(url: &str) -> (Option<String>, String) {
    let (host, path) = match url.split_once("://") {
        Some((_, rest)) => match rest.find('/') {
            Some(i) => (rest.get(..i).unwrap_or(rest), rest.get(i..).unwrap_or("")),
            None => (rest, ""),
        },
        None => ("", url),
    };
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(':').next().unwrap_or(host).trim_end_matches('.').to_ascii_lowercase();
    // server variables in the host cannot be matched: treat them as any host
    let host = if host.is_empty() || host.contains('{') { None } else { Some(host) };
    (host, path.trim_end_matches('/').to_string())
}

impl Spec {
    /// Adds the operations of one document (`text` is JSON or YAML).
    pub fn add_document(&mut self, source_name: &str, text: &str) -> Result<usize, SpecError> {
        let doc: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(_) => serde_yaml::from_str(text)
                .map_err(|e| SpecError::Syntax { source_name: source_name.to_string(), message: e.to_string() })?,
        };
        let v3 = doc.get("openapi").and_then(Value::as_str).is_some_and(|v| v.starts_with('3'));
        let v2 = doc.get("swagger").and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_f64().map(|f| f.to_string()))).is_some_and(|v| v.starts_with('2'));
        if !v3 && !v2 {
            return Err(SpecError::NotOpenApi { source_name: source_name.to_string() });
        }
        let Some(paths) = doc.get("paths").and_then(Value::as_object) else {
            return Err(SpecError::NoPaths { source_name: source_name.to_string() });
        };
        let root = if v3 {
            servers(doc.get("servers")).unwrap_or_else(|| vec![(None, String::new())])
        } else {
            let host = doc.get("host").and_then(Value::as_str).map(|h| h.split(':').next().unwrap_or(h).to_ascii_lowercase());
            let base = doc.get("basePath").and_then(Value::as_str).unwrap_or("").trim_end_matches('/').to_string();
            vec![(host, base)]
        };
        let before = self.operations.len();
        for (path, item) in paths {
            let item_servers = servers(item.get("servers"));
            for m in METHODS {
                let Some(op) = item.get(m) else { continue };
                let srv = servers(op.get("servers")).or_else(|| item_servers.clone()).unwrap_or_else(|| root.clone());
                let deprecated = op.get("deprecated").and_then(Value::as_bool).unwrap_or(false);
                let operation_id = op.get("operationId").and_then(Value::as_str).map(str::to_string);
                // one operation per distinct prefix; hosts sharing a prefix share it
                let prefixes: BTreeSet<&str> = srv.iter().map(|(_, p)| p.as_str()).collect();
                for prefix in prefixes {
                    let hosts: Vec<String> = if srv.iter().any(|(h, p)| p == prefix && h.is_none()) {
                        Vec::new()
                    } else {
                        srv.iter().filter(|(_, p)| p == prefix).filter_map(|(h, _)| h.clone()).collect()
                    };
                    self.operations.push(Operation {
                        hosts,
                        method: m.to_ascii_uppercase(),
                        path: format!("{prefix}{path}"),
                        deprecated,
                        operation_id: operation_id.clone(),
                        source: source_name.to_string(),
                    });
                }
            }
        }
        Ok(self.operations.len() - before)
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// Every host some operation names.
    pub fn hosts(&self) -> BTreeSet<&str> {
        self.operations.iter().flat_map(|o| o.hosts.iter().map(String::as_str)).collect()
    }

    /// What the specifications say about `method host path`.
    pub fn verdict(&self, host: &str, method: &str, path: &str) -> Verdict {
        let mut in_scope = false;
        let mut found: Option<usize> = None;
        for (i, op) in self.operations.iter().enumerate() {
            if !op.hosts.is_empty() && !op.hosts.iter().any(|h| h == host) {
                continue;
            }
            in_scope = true;
            if op.method == method && path_matches(&op.path, path) {
                // prefer a live operation over a deprecated one documenting the same endpoint
                match found {
                    Some(j) if !self.operations.get(j).is_some_and(|o| o.deprecated) => {}
                    _ => found = Some(i),
                }
            }
        }
        match found {
            Some(i) if self.operations.get(i).is_some_and(|o| o.deprecated) => Verdict::Deprecated(i),
            Some(i) => Verdict::Documented(i),
            None if in_scope => Verdict::Undocumented,
            None => Verdict::OutOfScope,
        }
    }
}

/// Whether the observed path (concrete or templated) is an instance of the
/// spec path template.
pub fn path_matches(spec: &str, observed: &str) -> bool {
    let s: Vec<&str> = spec.trim_end_matches('/').split('/').collect();
    let o: Vec<&str> = observed.trim_end_matches('/').split('/').collect();
    s.len() == o.len() && s.iter().zip(&o).all(|(s, o)| segment_matches(s, o))
}

fn segment_matches(spec: &str, observed: &str) -> bool {
    let (Some(open), Some(close)) = (spec.find('{'), spec.rfind('}')) else {
        return spec == observed;
    };
    let prefix = spec.get(..open).unwrap_or("");
    let suffix = spec.get(close + 1..).unwrap_or("");
    !observed.is_empty() && observed.len() >= prefix.len() + suffix.len() && observed.starts_with(prefix) && observed.ends_with(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"openapi":"3.0.3","servers":[{"url":"https://api.shop.test"}],"paths":{
        "/v2/users/{id}":{"get":{"operationId":"u"}},
        "/v1/users/{id}":{"get":{"deprecated":true}},
        "/v1/login":{"servers":[{"url":"https://auth.shop.test"}],"post":{}},
        "/files/{name}.json":{"get":{}}}}"#;

    /// The verdict with the operation's path instead of its index.
    fn v(s: &Spec, host: &str, method: &str, path: &str) -> (&'static str, String) {
        let op = |i: usize| s.operations.get(i).map(|o| o.path.clone()).unwrap_or_default();
        match s.verdict(host, method, path) {
            Verdict::Documented(i) => ("documented", op(i)),
            Verdict::Deprecated(i) => ("deprecated", op(i)),
            Verdict::Undocumented => ("undocumented", String::new()),
            Verdict::OutOfScope => ("out_of_scope", String::new()),
        }
    }

    #[test]
    fn documented_deprecated_undocumented_and_out_of_scope() {
        let mut s = Spec::default();
        assert_eq!(s.add_document("t.json", DOC).unwrap(), 4);
        let d = |p: &str| ("documented", p.to_string());
        let none = |k: &'static str| (k, String::new());
        assert_eq!(v(&s, "api.shop.test", "GET", "/v2/users/{id}"), d("/v2/users/{id}"));
        assert_eq!(v(&s, "api.shop.test", "GET", "/v2/users/17"), d("/v2/users/{id}"));
        assert_eq!(v(&s, "api.shop.test", "GET", "/v1/users/{id}"), ("deprecated", "/v1/users/{id}".to_string()));
        assert_eq!(v(&s, "api.shop.test", "DELETE", "/v2/users/{id}"), none("undocumented"));
        assert_eq!(v(&s, "api.shop.test", "GET", "/v2/admin/export-users"), none("undocumented"));
        assert_eq!(v(&s, "auth.shop.test", "POST", "/v1/login"), d("/v1/login"));
        assert_eq!(v(&s, "api.shop.test", "POST", "/v1/login"), none("undocumented"), "login lives on auth.shop.test only");
        assert_eq!(v(&s, "api.shop.test", "GET", "/files/a.json"), d("/files/{name}.json"));
        assert_eq!(v(&s, "api.shop.test", "GET", "/files/a.xml"), none("undocumented"));
        assert_eq!(v(&s, "other.test", "GET", "/v2/users/1"), none("out_of_scope"));
    }

    #[test]
    fn yaml_swagger2_and_server_prefixes() {
        let mut s = Spec::default();
        s.add_document("a.yaml", "openapi: 3.1.0\nservers:\n  - url: https://x.test/api/\npaths:\n  /items:\n    get: {}\n").unwrap();
        s.add_document("b.yaml", "swagger: '2.0'\nhost: y.test:8080\nbasePath: /v1\npaths:\n  /things/{id}:\n    delete:\n      deprecated: true\n").unwrap();
        assert_eq!(v(&s, "x.test", "GET", "/api/items"), ("documented", "/api/items".to_string()));
        assert_eq!(v(&s, "x.test", "GET", "/items"), ("undocumented", String::new()));
        assert_eq!(v(&s, "y.test", "DELETE", "/v1/things/{id}"), ("deprecated", "/v1/things/{id}".to_string()));
    }

    #[test]
    fn bad_documents_say_what_is_wrong() {
        let mut s = Spec::default();
        assert!(matches!(s.add_document("x", "{not json: ["), Err(SpecError::Syntax { .. })));
        assert!(matches!(s.add_document("x", "{\"info\":{}}"), Err(SpecError::NotOpenApi { .. })));
        assert!(matches!(s.add_document("x", "{\"openapi\":\"3.0.0\"}"), Err(SpecError::NoPaths { .. })));
    }
}
