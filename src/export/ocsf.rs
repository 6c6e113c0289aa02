//! OCSF 1.x event builders.
//!
//! HTTP Activity (class 4002, category 4) per transaction. Header values are
//! never exported: Authorization, Cookie and the like may carry secrets.

use serde_json::{json, Map, Value};

use crate::analyze::{split_target, Observation};
use crate::proto::HttpTransaction;

/// OCSF schema version the events declare.
pub const OCSF_VERSION: &str = "1.8.0";
pub const PRODUCT_NAME: &str = "apitap";
pub const PRODUCT_VERSION: &str = env!("CARGO_PKG_VERSION");

pub const CLASS_HTTP_ACTIVITY: u32 = 4002;
pub const CATEGORY_NETWORK: u32 = 4;

/// OCSF HTTP Activity `activity_id` for a method (99 = Other).
pub fn http_activity_id(method: &str) -> (u32, &'static str) {
    match method.to_ascii_uppercase().as_str() {
        "CONNECT" => (1, "Connect"),
        "DELETE" => (2, "Delete"),
        "GET" => (3, "Get"),
        "HEAD" => (4, "Head"),
        "OPTIONS" => (5, "Options"),
        "POST" => (6, "Post"),
        "PUT" => (7, "Put"),
        "TRACE" => (8, "Trace"),
        _ => (99, "Other"),
    }
}

fn fnv(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = seed;
    for p in parts {
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A stable id for a transaction: the same capture gives the same ids.
pub fn transaction_uid(tx: &HttpTransaction) -> String {
    let c = tx.client.to_string();
    let s = tx.server.to_string();
    let t = tx.request_ts_us.to_le_bytes();
    let r = tx.response_ts_us.unwrap_or(0).to_le_bytes();
    let l = tx.request_body.length.to_le_bytes();
    let id = tx.stream_id.unwrap_or(0).to_le_bytes();
    let parts: [&[u8]; 8] = [c.as_bytes(), s.as_bytes(), &t, &r, &l, &id, tx.method.as_bytes(), tx.target.as_bytes()];
    format!("{:016x}{:016x}", fnv(0xcbf2_9ce4_8422_2325, &parts), fnv(0x8422_2325_cbf2_9ce4, &parts))
}

/// Community ID v1 of a TCP flow (seed 0), the flow key Zeek and Suricata
/// log too: `1:` + base64(SHA-1(seed, addresses, protocol, 0, ports)) with
/// the endpoints in a canonical order, so both directions give the same id.
/// <https://github.com/corelight/community-id-spec>
pub fn community_id(a: std::net::SocketAddr, b: std::net::SocketAddr) -> String {
    use base64::Engine as _;
    use sha1::Digest as _;
    fn ip_bytes(ip: std::net::IpAddr) -> Vec<u8> {
        match ip {
            std::net::IpAddr::V4(v) => v.octets().to_vec(),
            std::net::IpAddr::V6(v) => v.octets().to_vec(),
        }
    }
    let (ia, ib) = (ip_bytes(a.ip()), ip_bytes(b.ip()));
    let ((ia, pa), (ib, pb)) =
        if (ia.as_slice(), a.port()) <= (ib.as_slice(), b.port()) { ((ia, a.port()), (ib, b.port())) } else { ((ib, b.port()), (ia, a.port())) };
    let mut h = sha1::Sha1::new();
    h.update(0u16.to_be_bytes());
    h.update(&ia);
    h.update(&ib);
    h.update([6u8, 0u8]);
    h.update(pa.to_be_bytes());
    h.update(pb.to_be_bytes());
    format!("1:{}", base64::engine::general_purpose::STANDARD.encode(h.finalize()))
}

/// The fields every HTTP Activity event shares, with `rest` added.
fn http_activity_head(method: &str, time_ms: u64, rest: Value) -> Value {
    let (activity_id, activity_name) = http_activity_id(method);
    let mut ev = json!({
        "class_uid": CLASS_HTTP_ACTIVITY,
        "class_name": "HTTP Activity",
        "category_uid": CATEGORY_NETWORK,
        "category_name": "Network Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_HTTP_ACTIVITY * 100 + activity_id,
        "type_name": format!("HTTP Activity: {activity_name}"),
        "severity_id": 1,
        "severity": "Informational",
        "time": time_ms,
    });
    if let (Some(head), Value::Object(rest)) = (ev.as_object_mut(), rest) {
        head.extend(rest);
    }
    ev
}

/// The HTTP Activity event of one transaction.
pub fn http_activity(tx: &HttpTransaction, obs: Option<&Observation>) -> Value {
    let (path, query) = split_target(&tx.method, &tx.target);
    let mut url = Map::new();
    if let Some(h) = tx.host.as_deref().and_then(crate::analyze::normalize_host) {
        url.insert("hostname".into(), Value::String(h));
    }
    url.insert("path".into(), Value::String(path.to_string()));
    if let Some(q) = query {
        url.insert("query_string".into(), Value::String(crate::analyze::redact_query(q)));
    }
    let mut request = Map::new();
    request.insert("http_method".into(), Value::String(tx.method.to_string()));
    request.insert("version".into(), Value::String(tx.version.as_str().to_string()));
    request.insert("url".into(), Value::Object(url));
    request.insert("length".into(), json!(tx.request_body.length));
    if let Some(ua) = tx.request_header("user-agent") {
        request.insert("user_agent".into(), Value::String(String::from_utf8_lossy(ua).into_owned()));
    }
    let time_ms = tx.request_ts_us / 1000;
    let mut ev = http_activity_head(&tx.method, time_ms, json!({
        "metadata": {
            "version": OCSF_VERSION,
            "uid": transaction_uid(tx),
            "product": { "name": PRODUCT_NAME, "vendor_name": PRODUCT_NAME, "version": PRODUCT_VERSION },
        },
        "src_endpoint": { "ip": tx.client.ip().to_string(), "port": tx.client.port() },
        "dst_endpoint": { "ip": tx.server.ip().to_string(), "port": tx.server.port() },
        "connection_info": { "protocol_name": "tcp", "protocol_num": 6, "direction_id": 1, "community_uid": community_id(tx.client, tx.server) },
        "http_request": Value::Object(request),
    }));
    let mut unmapped = Map::new();
    if let Some(obs) = obs {
        unmapped.insert("endpoint_host".into(), Value::String(obs.key.host.to_string()));
        unmapped.insert("endpoint_path".into(), Value::String(obs.key.path.to_string()));
        if !obs.credentials.is_empty() {
            let schemes: Vec<Value> = obs.credentials.iter().map(|c| Value::String(c.scheme.as_str().into_owned())).collect();
            unmapped.insert("auth".into(), Value::Array(schemes));
        }
        let kinds = |k: &[crate::analyze::sensitive::SensitiveKind]| -> Value { Value::Array(k.iter().map(|x| Value::String(x.as_str().into())).collect()) };
        if !obs.req_sensitive.is_empty() {
            unmapped.insert("request_sensitive".into(), kinds(&obs.req_sensitive));
        }
        if !obs.resp_sensitive.is_empty() {
            unmapped.insert("response_sensitive".into(), kinds(&obs.resp_sensitive));
        }
        unmapped.insert("client_class".into(), Value::String(obs.client_class.into()));
    }
    if tx.decrypted {
        unmapped.insert("decrypted".into(), Value::Bool(true));
    }
    if !tx.anomalies.is_empty() {
        unmapped.insert("anomalies".into(), Value::Array(tx.anomalies.names().map(|n| Value::String(n.into())).collect()));
    }
    if !tx.interim_statuses.is_empty() {
        unmapped.insert("interim_statuses".into(), json!(tx.interim_statuses));
    }
    if let Some(u) = &tx.upgrade {
        unmapped.insert("upgrade".into(), Value::String(u.clone()));
    }
    if let Some(id) = tx.stream_id {
        unmapped.insert("h2_stream_id".into(), json!(id));
    }
    if tx.pushed {
        unmapped.insert("server_push".into(), Value::Bool(true));
    }
    if let Some(g) = &tx.grpc {
        let mut o = Map::new();
        if let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.rsplit_once('/')) {
            o.insert("service".into(), Value::String(service.to_string()));
            o.insert("method".into(), Value::String(method.to_string()));
        }
        if let Some(st) = g.status {
            o.insert("status".into(), json!(st));
        }
        if let Some(m) = &g.message {
            o.insert("message".into(), Value::String(m.clone()));
        }
        o.insert("request_messages".into(), json!(g.request_messages));
        o.insert("response_messages".into(), json!(g.response_messages));
        o.insert("compressed".into(), Value::Bool(g.compressed));
        unmapped.insert("grpc".into(), Value::Object(o));
    }
    if let Some(obj) = ev.as_object_mut() {
        if let Some(code) = tx.status {
            let mut resp = Map::new();
            resp.insert("code".into(), json!(code));
            resp.insert("length".into(), json!(tx.response_body.length));
            if let Some(ct) = tx.response_header("content-type") {
                resp.insert("content_type".into(), Value::String(String::from_utf8_lossy(ct).into_owned()));
            }
            if let Some(rt) = tx.response_ts_us {
                resp.insert("latency".into(), json!(rt.saturating_sub(tx.request_ts_us) / 1000));
            }
            obj.insert("http_response".into(), Value::Object(resp));
            obj.insert("status_code".into(), Value::String(code.to_string()));
        }
        obj.insert("unmapped".into(), Value::Object(unmapped));
    }
    ev
}

/// A stable id of an endpoint (host, method, template): `ep:` + 16 hex digits.
pub fn endpoint_uid(host: &str, method: &str, path: &str) -> String {
    format!("ep:{:016x}", fnv(0xcbf2_9ce4_8422_2325, &[host.as_bytes(), method.as_bytes(), path.as_bytes()]))
}

fn product() -> Value {
    json!({ "name": PRODUCT_NAME, "vendor_name": PRODUCT_NAME, "version": PRODUCT_VERSION })
}

fn sorted_keys<V>(m: &std::collections::BTreeMap<String, V>) -> Vec<String> {
    m.keys().cloned().collect()
}

/// Cloud Resources Inventory Info (5023), activity Collect: an endpoint first
/// discovered (`before` is `None`) or changed (`gained` lists what it gained,
/// see [`crate::inventory::gained`]). `time_ms` is the packet time of the change.
pub fn inventory_event(rec: &crate::inventory::EndpointRecord, gained: &[String], discovered: bool) -> Value {
    let uid = endpoint_uid(&rec.host, &rec.method, &rec.path);
    let name = format!("{} {}{}", rec.method, rec.host, rec.path);
    let time_ms = rec.last_seen_us / 1000;
    let message = if discovered {
        format!("New API endpoint discovered: {name}")
    } else {
        format!("API endpoint changed: {name} (gained {})", gained.join(", "))
    };
    let mut labels: Vec<String> = rec.auth.reported().into_iter().map(|a| format!("auth:{a}")).collect();
    labels.extend(rec.response_sensitive.keys().chain(rec.request_sensitive.keys()).map(|k| format!("sensitive:{k}")));
    labels.extend(rec.exposure.keys().map(|k| format!("exposure:{k}")));
    labels.sort();
    labels.dedup();
    let statuses: Map<String, Value> = rec.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    json!({
        "category_uid": 5,
        "category_name": "Discovery",
        "class_uid": 5023,
        "class_name": "Cloud Resources Inventory Info",
        "activity_id": 2,
        "activity_name": "Collect",
        "type_uid": 502302,
        "type_name": "Cloud Resources Inventory Info: Collect",
        "severity_id": 1,
        "severity": "Informational",
        "time": time_ms,
        "message": message,
        "metadata": {
            "version": OCSF_VERSION,
            "uid": format!("{uid}:{}:{}", if discovered { "new" } else { "change" }, rec.last_seen_us),
            "correlation_uid": uid,
            "log_name": "api_inventory",
            "product": product(),
        },
        "resources": [{
            "uid": uid,
            "name": name,
            "type": "api_endpoint",
            "hostname": rec.host,
            "created_time": rec.first_seen_us / 1000,
            "labels": labels,
            "data": {
                "method": rec.method,
                "host": rec.host,
                "path_template": rec.path,
                "first_seen": crate::export::rfc3339_us(rec.first_seen_us),
                "last_seen": crate::export::rfc3339_us(rec.last_seen_us),
                "requests": rec.requests,
                "response_codes": statuses,
                "protocols": rec.protocols,
                "auth_schemes_seen": sorted_keys(&rec.auth.schemes_seen),
                "auth": rec.auth.reported(),
                "request_sensitive": sorted_keys(&rec.request_sensitive),
                "response_sensitive": sorted_keys(&rec.response_sensitive),
                "exposure": sorted_keys(&rec.exposure),
                "gained": gained,
            },
        }],
    })
}

/// A per-endpoint call summary: HTTP Activity with `count`, `start_time` and
/// `end_time` for the calls in `delta` (what was observed since the last
/// store flush).
pub fn call_summary(delta: &crate::inventory::EndpointRecord) -> Value {
    let uid = endpoint_uid(&delta.host, &delta.method, &delta.path);
    let (start, end) = (delta.first_seen_us / 1000, delta.last_seen_us / 1000);
    let statuses: Map<String, Value> = delta.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    http_activity_head(&delta.method, start, json!({
        "count": delta.requests,
        "start_time": start,
        "end_time": end,
        "message": format!("{} x {} {}{}", delta.requests, delta.method, delta.host, delta.path),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": format!("{uid}:calls:{}:{}:{}", delta.first_seen_us, delta.last_seen_us, delta.requests),
            "correlation_uid": uid,
            "log_name": "api_calls",
            "labels": [format!("endpoint_template:{}", delta.path)],
            "product": product(),
        },
        "http_request": {
            "http_method": delta.method,
            "url": { "hostname": delta.host, "path": delta.path },
        },
        "unmapped": {
            "summary": true,
            "statuses": statuses,
            "protocols": delta.protocols,
            "auth": sorted_keys(&delta.auth.schemes_seen),
            "request_sensitive": sorted_keys(&delta.request_sensitive),
            "response_sensitive": sorted_keys(&delta.response_sensitive),
        },
    }))
}

/// A finding as an OCSF event: Detection Finding (2004) for attacks,
/// Application Security Posture Finding (2007) for posture, shadow, zombie
/// and drift. Activity Create for a new finding, Update when a resolved one
/// reopens. `finding_info.types` holds the finding kind; the endpoint is in
/// `resources[]`; an attack's actor is in `evidences[].src_endpoint.ip`.
pub fn finding_event(f: &crate::inventory::findings::Finding, reopened: bool) -> Value {
    let attack = f.kind.is_attack();
    let (class_uid, class_name) = if attack { (2004, "Detection Finding") } else { (2007, "Application Security Posture Finding") };
    let (activity_id, activity_name) = if reopened { (2, "Update") } else { (1, "Create") };
    let ep_uid = endpoint_uid(&f.host, &f.method, &f.path);
    let name = format!("{} {}{}", f.method, f.host, f.path);
    let time_ms = if reopened { f.last_seen_us / 1000 } else { f.detected_us / 1000 };
    let evidence: Map<String, Value> = f.evidence.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let clients: Vec<String> = f.clients.iter().map(ToString::to_string).collect();
    let mut ev = json!({
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": class_uid,
        "class_name": class_name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": format!("{class_name}: {activity_name}"),
        "severity_id": f.severity.id(),
        "severity": f.severity.name(),
        "status_id": 1,
        "status": "New",
        "time": time_ms,
        "start_time": f.first_seen_us / 1000,
        "end_time": f.last_seen_us / 1000,
        "count": f.count,
        "message": format!("{}: {name}", f.kind.title()),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": format!("{}:{}", f.uid, if reopened { format!("reopen{}", f.reopened) } else { "new".to_string() }),
            "correlation_uid": f.uid,
            "log_name": "api_findings",
            "product": product(),
        },
        "finding_info": {
            "uid": f.uid,
            "title": f.kind.title(),
            "types": [f.kind.as_str()],
            "desc": format!("{} on {name}", f.kind.title()),
            "created_time": f.detected_us / 1000,
            "first_seen_time": f.first_seen_us / 1000,
            "last_seen_time": f.last_seen_us / 1000,
            "product": product(),
        },
        "resources": [{
            "uid": ep_uid,
            "name": name,
            "type": "api_endpoint",
            "hostname": f.host,
            "data": { "method": f.method, "host": f.host, "path_template": f.path },
        }],
        "remediation": { "desc": f.kind.remediation() },
        "unmapped": {
            "apitap": { "kind": f.kind.as_str(), "evidence": evidence, "clients": clients },
        },
    });
    if !attack {
        if let Some(obj) = ev.as_object_mut() {
            obj.insert("application".into(), json!({ "name": f.host, "hostname": f.host }));
        }
    }
    if attack {
        if let (Some(obj), Some(actor)) = (ev.as_object_mut(), f.actor) {
            obj.insert("evidences".into(), json!([{ "src_endpoint": { "ip": actor.to_string() }, "data": evidence }]));
        }
    }
    ev
}

#[cfg(test)]
mod tests {
    use super::community_id;

    #[test]
    fn community_id_matches_the_specification_example() {
        // the TCP example of the Community ID specification's README
        let a = "128.232.110.120:34855".parse().unwrap();
        let b = "66.35.250.204:80".parse().unwrap();
        assert_eq!(community_id(a, b), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
        assert_eq!(community_id(b, a), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "direction does not matter");
    }
}
