//! Elastic Common Schema (ECS) form of the OCSF events, for `output.format =
//! "ecs"`: the same events, mapped field by field from their OCSF form.
//!
//! | OCSF | ECS |
//! |---|---|
//! | HTTP Activity 4002 (one transaction) | `event.kind` event, `event.category` [network, web], `event.action` http-transaction |
//! | HTTP Activity 4002 with `count` (call summary) | `event.kind` event, `event.action` api-call-summary, `event.start`/`end` |
//! | Cloud Resources Inventory Info 5023 | `event.kind` asset, `event.action` api-endpoint-discovered / api-endpoint-changed, `entity.*` |
//! | `metadata.uid` | `event.id` |
//! | `src_endpoint` / `dst_endpoint` | `source.*` / `destination.*` |
//! | `http_request` / `http_response` | `http.request.*` / `http.response.*`, `url.*`, `user_agent.original` |
//! | `connection_info.community_uid` | `network.community_id` |
//! | `unmapped` | `apitap.*` |

use serde_json::{json, Map, Value};

pub const ECS_VERSION: &str = "9.4.0";

fn ms_to_rfc3339(ms: &Value) -> Value {
    ms.as_u64().map(|m| Value::String(crate::export::rfc3339_us(m.saturating_mul(1000)))).unwrap_or(Value::Null)
}

fn put(o: &mut Map<String, Value>, key: &str, v: &Value) {
    if !v.is_null() {
        o.insert(key.to_string(), v.clone());
    }
}

fn endpoint(e: &Value, url_host: &Value) -> Value {
    let mut o = Map::new();
    put(&mut o, "ip", &e["ip"]);
    put(&mut o, "port", &e["port"]);
    put(&mut o, "address", &e["ip"]);
    put(&mut o, "domain", url_host);
    Value::Object(o)
}

/// The ECS form of one OCSF event produced by this crate.
pub fn from_ocsf(ev: &Value) -> Value {
    let product = json!({ "type": "sensor", "vendor": crate::export::ocsf::PRODUCT_NAME, "product": crate::export::ocsf::PRODUCT_NAME, "version": crate::export::ocsf::PRODUCT_VERSION });
    let mut out = Map::new();
    out.insert("@timestamp".into(), ms_to_rfc3339(&ev["time"]));
    out.insert("ecs".into(), json!({ "version": ECS_VERSION }));
    put(&mut out, "message", &ev["message"]);
    out.insert("observer".into(), product);
    match ev["class_uid"].as_u64() {
        Some(5023) => {
            let r = &ev["resources"][0];
            let d = &r["data"];
            let discovered = ev["message"].as_str().is_some_and(|m| m.starts_with("New"));
            out.insert(
                "event".into(),
                json!({
                    "kind": "asset",
                    "category": ["api"],
                    "type": [if discovered { "creation" } else { "change" }, "info"],
                    "action": if discovered { "api-endpoint-discovered" } else { "api-endpoint-changed" },
                    "dataset": "apitap.api_inventory",
                    "module": "apitap",
                    "id": ev["metadata"]["uid"],
                }),
            );
            out.insert(
                "entity".into(),
                json!({ "id": r["uid"], "name": r["name"], "type": "service", "sub_type": "api_endpoint", "source": "apitap",
                        "last_seen_timestamp": d["last_seen"] }),
            );
            out.insert("destination".into(), json!({ "domain": d["host"] }));
            out.insert("url".into(), json!({ "domain": d["host"], "path": d["path_template"] }));
            out.insert("http".into(), json!({ "request": { "method": d["method"] } }));
            put(&mut out, "tags", &r["labels"]);
            out.insert("apitap".into(), json!({ "endpoint": d }));
        }
        Some(class @ (2004 | 2007)) => {
            let r = &ev["resources"][0];
            let d = &r["data"];
            let fi = &ev["finding_info"];
            let attack = class == 2004;
            out.insert(
                "event".into(),
                json!({
                    "kind": if attack { "alert" } else { "state" },
                    "category": if attack { json!(["intrusion_detection", "api"]) } else { json!(["configuration", "api"]) },
                    "type": if attack { json!(["indicator"]) } else { json!(["info"]) },
                    "action": fi["types"][0],
                    "dataset": "apitap.api_findings",
                    "module": "apitap",
                    "id": ev["metadata"]["uid"],
                    "severity": ev["severity_id"],
                    "start": ms_to_rfc3339(&ev["start_time"]),
                    "end": ms_to_rfc3339(&ev["end_time"]),
                }),
            );
            out.insert("rule".into(), json!({ "id": fi["uid"], "name": fi["types"][0], "description": fi["title"] }));
            if let Some(ip) = ev["evidences"][0]["src_endpoint"]["ip"].as_str() {
                out.insert("source".into(), json!({ "ip": ip }));
            }
            out.insert("destination".into(), json!({ "domain": d["host"] }));
            out.insert("url".into(), json!({ "domain": d["host"], "path": d["path_template"] }));
            out.insert("http".into(), json!({ "request": { "method": d["method"] } }));
            out.insert("apitap".into(), json!({ "finding": ev["unmapped"]["apitap"], "endpoint_uid": r["uid"] }));
        }
        _ => {
            let req = &ev["http_request"];
            let resp = &ev["http_response"];
            let url = &req["url"];
            let summary = ev.get("count").is_some();
            let mut event = Map::new();
            event.insert("kind".into(), json!("event"));
            event.insert("category".into(), json!(["network", "web"]));
            event.insert("type".into(), json!(["access", "info"]));
            event.insert("action".into(), json!(if summary { "api-call-summary" } else { "http-transaction" }));
            event.insert("dataset".into(), json!(if summary { "apitap.api_calls" } else { "apitap.http" }));
            event.insert("module".into(), json!("apitap"));
            put(&mut event, "id", &ev["metadata"]["uid"]);
            if summary {
                put(&mut event, "start", &ms_to_rfc3339(&ev["start_time"]));
                put(&mut event, "end", &ms_to_rfc3339(&ev["end_time"]));
            }
            if let Some(code) = resp["code"].as_u64() {
                event.insert("outcome".into(), json!(if code < 400 { "success" } else { "failure" }));
            }
            out.insert("event".into(), Value::Object(event));
            if !ev["src_endpoint"].is_null() {
                out.insert("source".into(), endpoint(&ev["src_endpoint"], &Value::Null));
            }
            if !ev["dst_endpoint"].is_null() {
                out.insert("destination".into(), endpoint(&ev["dst_endpoint"], &url["hostname"]));
            }
            let mut network = Map::new();
            network.insert("transport".into(), json!("tcp"));
            network.insert("protocol".into(), json!("http"));
            put(&mut network, "community_id", &ev["connection_info"]["community_uid"]);
            out.insert("network".into(), Value::Object(network));
            let mut http = Map::new();
            if let Some(v) = req["version"].as_str() {
                http.insert("version".into(), json!(v.trim_start_matches("HTTP/")));
            }
            let mut request = Map::new();
            put(&mut request, "method", &req["http_method"]);
            if !req["length"].is_null() {
                request.insert("body".into(), json!({ "bytes": req["length"] }));
            }
            http.insert("request".into(), Value::Object(request));
            if !resp.is_null() {
                let mut response = Map::new();
                put(&mut response, "status_code", &resp["code"]);
                put(&mut response, "mime_type", &resp["content_type"]);
                if !resp["length"].is_null() {
                    response.insert("body".into(), json!({ "bytes": resp["length"] }));
                }
                http.insert("response".into(), Value::Object(response));
            }
            out.insert("http".into(), Value::Object(http));
            let mut u = Map::new();
            put(&mut u, "domain", &url["hostname"]);
            put(&mut u, "path", &url["path"]);
            put(&mut u, "query", &url["query_string"]);
            out.insert("url".into(), Value::Object(u));
            if !req["user_agent"].is_null() {
                out.insert("user_agent".into(), json!({ "original": req["user_agent"] }));
            }
            let mut related = Vec::new();
            for e in [&ev["src_endpoint"]["ip"], &ev["dst_endpoint"]["ip"]] {
                if let Some(ip) = e.as_str() {
                    related.push(json!(ip));
                }
            }
            if !related.is_empty() {
                out.insert("related".into(), json!({ "ip": related }));
            }
            let mut extra = ev["unmapped"].clone();
            if summary {
                if let Some(o) = extra.as_object_mut() {
                    o.insert("count".into(), ev["count"].clone());
                }
            }
            put(&mut out, "apitap", &extra);
        }
    }
    Value::Object(out)
}
