//! OpenAPI 3.1 document of the discovered inventory.
//!
//! Paths are the learned templates; path parameters take their type from the
//! template's parameter name (`{id}` integer, `{uuid}` string/uuid, …); query
//! parameters, request and response content types and JSON schemas (types
//! only, never values) come from what was observed; `securitySchemes` from
//! the authentication seen; `x-apitap` carries counts, sensitivity and
//! exposure. Operations are keyed by path template; when several hosts serve
//! the same template, the path item lists them all under `servers`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::inventory::EndpointRecord;

fn param_schema(name: &str) -> Value {
    match name {
        "id" => json!({"type": "integer"}),
        "uuid" => json!({"type": "string", "format": "uuid"}),
        "date" => json!({"type": "string", "format": "date"}),
        "email" => json!({"type": "string", "format": "email"}),
        _ => json!({"type": "string"}),
    }
}

fn security_scheme(name: &str) -> Option<Value> {
    Some(match name {
        "basic" => json!({"type": "http", "scheme": "basic"}),
        "bearer" => json!({"type": "http", "scheme": "bearer"}),
        "bearer_jwt" => json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}),
        "api_key_header" => json!({"type": "apiKey", "in": "header", "name": "X-API-Key"}),
        "api_key_query" => json!({"type": "apiKey", "in": "query", "name": "api_key"}),
        "cookie_session" => json!({"type": "apiKey", "in": "cookie", "name": "session"}),
        _ => return None,
    })
}

/// Valid OpenAPI path template: parameters renamed where a name repeats
/// (`/a/{id}/b/{id}` → `/a/{id}/b/{id2}`), and their names in order.
fn path_and_params(template: &str) -> (String, Vec<(String, String)>) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut params = Vec::new();
    let mut out = Vec::new();
    for seg in template.split('/') {
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')).filter(|n| !n.is_empty()) {
            let n = seen.entry(name.to_string()).or_insert(0);
            *n += 1;
            let unique = if *n == 1 { name.to_string() } else { format!("{name}{n}") };
            out.push(format!("{{{unique}}}"));
            params.push((unique, name.to_string()));
        } else {
            // braces are reserved in OpenAPI path templates
            out.push(seg.replace(['{', '}'], "_"));
        }
    }
    let p = out.join("/");
    (if p.starts_with('/') { p } else { format!("/{p}") }, params)
}

fn operation(r: &EndpointRecord, schemes: &mut BTreeSet<String>) -> Value {
    let (_, params) = path_and_params(&r.path);
    let mut parameters: Vec<Value> = params
        .iter()
        .map(|(name, kind)| json!({"name": name, "in": "path", "required": true, "schema": param_schema(kind)}))
        .collect();
    for (name, types) in &r.query_params {
        let t = if types.len() == 1 { types.iter().next().cloned().unwrap_or_default() } else { "string".to_string() };
        parameters.push(json!({"name": name, "in": "query", "required": false, "schema": {"type": t}}));
    }
    let mut op = Map::new();
    op.insert("operationId".into(), Value::String(format!("{} {}{}", r.method, r.host, r.path)));
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }
    if !r.request_content_types.is_empty() {
        let mut content = Map::new();
        for ct in r.request_content_types.keys() {
            let schema = if ct.contains("json") { r.request_schema.as_ref().map(|s| s.to_schema()) } else { None };
            content.insert(ct.clone(), json!({"schema": schema.unwrap_or_else(|| json!({}))}));
        }
        op.insert("requestBody".into(), json!({"content": content}));
    }
    let mut responses = Map::new();
    for code in r.statuses.keys() {
        let mut resp = Map::new();
        resp.insert("description".into(), Value::String(format!("observed {code}")));
        if (200..300).contains(code) && !r.response_content_types.is_empty() {
            let mut content = Map::new();
            for ct in r.response_content_types.keys() {
                let schema = if ct.contains("json") { r.response_schema.as_ref().map(|s| s.to_schema()) } else { None };
                content.insert(ct.clone(), json!({"schema": schema.unwrap_or_else(|| json!({}))}));
            }
            resp.insert("content".into(), Value::Object(content));
        }
        responses.insert(code.to_string(), Value::Object(resp));
    }
    if responses.is_empty() {
        responses.insert("default".into(), json!({"description": "no response observed"}));
    }
    op.insert("responses".into(), Value::Object(responses));
    let reported = r.auth.reported();
    let sec: Vec<Value> = reported
        .iter()
        .filter_map(|a| {
            security_scheme(a).map(|_| {
                schemes.insert(a.clone());
                json!({ a.clone(): [] })
            })
        })
        .collect();
    if reported.iter().any(|a| a == "none") {
        op.insert("security".into(), json!([{}]));
    } else if !sec.is_empty() {
        op.insert("security".into(), Value::Array(sec));
    }
    op.insert(
        "x-apitap".into(),
        json!({
            "host": r.host,
            "requests": r.requests,
            "statuses": r.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<String, Value>>(),
            "auth": reported,
            "request_sensitive": r.request_sensitive.keys().collect::<Vec<_>>(),
            "response_sensitive": r.response_sensitive.keys().collect::<Vec<_>>(),
            "exposure": r.exposure.keys().collect::<Vec<_>>(),
            "protocols": r.protocols,
            "clients": r.clients(),
        }),
    );
    Value::Object(op)
}

/// HTTP methods OpenAPI has operation fields for.
fn operation_key(method: &str) -> Option<String> {
    let m = method.to_ascii_lowercase();
    matches!(m.as_str(), "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace").then_some(m)
}

/// The OpenAPI document of `records` (optionally only those of `host`).
pub fn document(records: &[EndpointRecord], host: Option<&str>, version: &str) -> Value {
    let mut paths: BTreeMap<String, (Map<String, Value>, BTreeSet<String>, BTreeMap<String, u64>)> = BTreeMap::new();
    let mut schemes = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    for r in records.iter().filter(|r| host.is_none_or(|h| r.host == h)) {
        let Some(key) = operation_key(&r.method) else { continue };
        let (path, _) = path_and_params(&r.path);
        if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
            continue;
        }
        hosts.insert(r.host.clone());
        let entry = paths.entry(path).or_default();
        entry.1.insert(r.host.clone());
        // when hosts share a template and a method, the busier endpoint describes it
        if entry.2.get(&key).is_none_or(|n| *n < r.requests) {
            entry.0.insert(key.clone(), operation(r, &mut schemes));
            entry.2.insert(key, r.requests);
        }
    }
    let mut out_paths = Map::new();
    for (p, (mut item, path_hosts, _)) in paths {
        if host.is_none() {
            item.insert("servers".into(), Value::Array(path_hosts.iter().map(|h| json!({"url": format!("http://{h}")})).collect()));
        }
        out_paths.insert(p, Value::Object(item));
    }
    let security_schemes: Map<String, Value> =
        schemes.iter().filter_map(|s| security_scheme(s).map(|v| (s.clone(), v))).collect();
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": match host { Some(h) => format!("{h} (discovered by apitap)"), None => "APIs discovered by apitap".to_string() },
            "version": version,
        },
        "servers": hosts.iter().map(|h| json!({"url": format!("http://{h}")})).collect::<Vec<_>>(),
        "paths": out_paths,
    });
    if !security_schemes.is_empty() {
        if let Some(o) = doc.as_object_mut() {
            o.insert("components".into(), json!({"securitySchemes": security_schemes}));
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameter_names_are_made_unique() {
        let (p, params) = path_and_params("/a/{id}/b/{id}/c");
        assert_eq!(p, "/a/{id}/b/{id2}/c");
        assert_eq!(params, vec![("id".into(), "id".into()), ("id2".into(), "id".into())]);
        assert_eq!(path_and_params("/x/{/y").0, "/x/_/y");
    }
}
