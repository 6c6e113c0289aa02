//! The HTTP SIEM sinks against in-process protocol mocks (no Splunk or
//! Elasticsearch server exists in Debian's packages). The mocks check what a
//! real receiver checks — method, path, headers, framing, batch sizes — and
//! script the answers that matter: 503 (retry), 400 (dead letter), bulk item
//! errors, 409 for an id created before.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

struct Request {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn read_request(s: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = req.parse(&buf) {
            let h: HashMap<String, String> =
                req.headers.iter().map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned())).collect();
            let want: usize = h.get("content-length").and_then(|v| v.parse().ok()).expect("requests carry Content-Length");
            let (method, path) = (req.method.unwrap().to_string(), req.path.unwrap().to_string());
            let mut body = buf[len..].to_vec();
            while body.len() < want {
                let n = s.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            return Some(Request { method, path, headers: h, body });
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn respond(s: &mut TcpStream, status: u16, body: &str) {
    let _ = write!(s, "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
}

/// Serves `handle(request number, request)` → (status, body) until the test ends.
fn mock(handle: impl Fn(usize, &Request) -> (u16, String) + Send + Sync + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let handle = Arc::new(handle);
    let count = Arc::new(Mutex::new(0usize));
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut s) = conn else { continue };
            let (handle, count) = (Arc::clone(&handle), Arc::clone(&count));
            std::thread::spawn(move || {
                while let Some(req) = read_request(&mut s) {
                    let n = {
                        let mut c = count.lock().unwrap();
                        *c += 1;
                        *c
                    };
                    let (status, body) = handle(n, &req);
                    respond(&mut s, status, &body);
                }
            });
        }
    });
    port
}

fn replay_with(dir: &Path, sink: &str) -> (Vec<serde_json::Value>, serde_json::Value) {
    let cfg = dir.join("sensor.toml");
    let dead = dir.join("dead.jsonl");
    std::fs::write(&cfg, format!("[outbox]\nmax_backoff_secs = 1\ndead_letter = \"{}\"\n\n[[sinks]]\n{sink}", dead.display())).unwrap();
    let (store, events, stats) = (dir.join("store"), dir.join("events.jsonl"), dir.join("stats.json"));
    let o = replay_sample_with(&cfg, &store, &events, Some(&stats));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (read_jsonl(&events), serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap())
}

fn uid(e: &serde_json::Value) -> String {
    e["metadata"]["uid"].as_str().unwrap().to_string()
}

#[test]
fn hec_batches_envelopes_with_the_token_and_retries_on_503() {
    let dir = tempfile::tempdir().unwrap();
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let problems: Arc<Mutex<Vec<String>>> = Arc::default();
    let first_batch: Arc<Mutex<usize>> = Arc::default();
    let (g, p, fb) = (Arc::clone(&got), Arc::clone(&problems), Arc::clone(&first_batch));
    let port = mock(move |n, r| {
        let mut bad = Vec::new();
        if r.method != "POST" || r.path != "/services/collector/event" {
            bad.push(format!("{} {}", r.method, r.path));
        }
        if r.headers.get("authorization").map(String::as_str) != Some("Splunk test-token-123") {
            bad.push(format!("authorization {:?}", r.headers.get("authorization")));
        }
        if r.headers.get("content-type").map(String::as_str) != Some("application/json") {
            bad.push("content-type".into());
        }
        // HEC: concatenated envelopes {"time", "host", "source", "sourcetype", "event"}
        let envelopes: Vec<serde_json::Value> =
            serde_json::Deserializer::from_slice(&r.body).into_iter::<serde_json::Value>().map(|v| v.unwrap()).collect();
        if envelopes.is_empty() || envelopes.len() > 100 {
            bad.push(format!("batch of {}", envelopes.len()));
        }
        for e in &envelopes {
            if !(e["time"].is_number() && e["event"].is_object() && e["source"] == "apitap" && e["host"].is_string()) {
                bad.push(format!("envelope {e}"));
            }
        }
        p.lock().unwrap().extend(bad);
        if n == 1 {
            *fb.lock().unwrap() = envelopes.len();
            return (503, r#"{"text":"Server is busy","code":9}"#.into());
        }
        g.lock().unwrap().extend(envelopes.into_iter().map(|e| e["event"].clone()));
        (200, r#"{"text":"Success","code":0}"#.into())
    });
    let (written, stats) = replay_with(
        dir.path(),
        &format!("name = \"splunk\"\nkind = \"hec\"\naddress = \"127.0.0.1:{port}\"\ntls = false\ntoken = \"test-token-123\"\nbatch_events = 100\n"),
    );
    assert!(problems.lock().unwrap().is_empty(), "{:?}", problems.lock().unwrap());
    let got = got.lock().unwrap();
    let mut a: Vec<String> = written.iter().map(uid).collect();
    let mut b: Vec<String> = got.iter().map(uid).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b, "every event once, after the 503 was retried");
    let s = &stats["sinks"][0];
    // batches hold what the outbox has when the sink reads it (at most batch_events)
    assert_eq!(s["retried"].as_u64(), Some(*first_batch.lock().unwrap() as u64), "the first batch went again: {s}");
    assert_eq!(s["sent"].as_u64(), Some(written.len() as u64), "{s}");
    assert_eq!(s["spooled"], 0);
    // the token never reaches events, logs or the summary
    assert!(!std::fs::read_to_string(dir.path().join("stats.json")).unwrap().contains("test-token-123"));
}

#[test]
fn elasticsearch_bulk_creates_by_id_and_dead_letters_rejections() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Arc<Mutex<HashMap<String, serde_json::Value>>> = Arc::default();
    let problems: Arc<Mutex<Vec<String>>> = Arc::default();
    let refused: Arc<Mutex<usize>> = Arc::default();
    let (d, p, rf) = (Arc::clone(&docs), Arc::clone(&problems), Arc::clone(&refused));
    let port = mock(move |n, r| {
        if r.method != "POST" || r.path != "/_bulk" || r.headers.get("content-type").map(String::as_str) != Some("application/x-ndjson") {
            p.lock().unwrap().push(format!("{} {} {:?}", r.method, r.path, r.headers.get("content-type")));
        }
        if n == 2 {
            // a whole request refused: every event of it goes to the dead-letter file
            *rf.lock().unwrap() = String::from_utf8_lossy(&r.body).lines().count() / 2;
            return (400, r#"{"error":{"type":"illegal_argument_exception"},"status":400}"#.into());
        }
        let text = String::from_utf8_lossy(&r.body).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() % 2 != 0 || !text.ends_with('\n') {
            p.lock().unwrap().push("NDJSON pairs ending in a newline".into());
        }
        let mut items = Vec::new();
        for pair in lines.chunks(2) {
            let action: serde_json::Value = serde_json::from_str(pair[0]).unwrap();
            let doc: serde_json::Value = serde_json::from_str(pair[1]).unwrap();
            let id = action["create"]["_id"].as_str().unwrap().to_string();
            if action["create"]["_index"] != "apitap-events" || id != uid(&doc) {
                p.lock().unwrap().push(format!("action {action}"));
            }
            let mut docs = d.lock().unwrap();
            let status = if docs.contains_key(&id) { 409 } else { 201 };
            docs.insert(id, doc);
            items.push(serde_json::json!({ "create": { "_id": action["create"]["_id"], "status": status } }));
        }
        (200, serde_json::json!({ "errors": items.iter().any(|i| i["create"]["status"] != 201), "items": items }).to_string())
    });
    let (written, stats) = replay_with(
        dir.path(),
        &format!("name = \"elastic\"\nkind = \"elasticsearch\"\naddress = \"127.0.0.1:{port}\"\ntls = false\nbatch_events = 200\n"),
    );
    assert!(problems.lock().unwrap().is_empty(), "{:?}", problems.lock().unwrap());
    let dead = read_jsonl(&dir.path().join("dead.jsonl"));
    let refused = *refused.lock().unwrap() as u64;
    assert!(refused > 0);
    assert_eq!(dead.len() as u64, refused, "the refused request's batch is in the dead-letter file");
    assert!(dead.iter().all(|l| l["sink"] == "elastic" && l["reason"].as_str().unwrap().starts_with("HTTP 400")));
    let docs = docs.lock().unwrap();
    let dead_ids: std::collections::HashSet<String> = dead.iter().map(|l| uid(&l["event"])).collect();
    for e in &written {
        let id = uid(e);
        assert!(docs.contains_key(&id) != dead_ids.contains(&id), "event {id} is either indexed or dead-lettered");
        if let Some(doc) = docs.get(&id) {
            assert_eq!(doc, e);
        }
    }
    let s = &stats["sinks"][0];
    assert_eq!(s["dead_lettered"].as_u64(), Some(refused), "{s}");
    assert_eq!(s["sent"].as_u64(), Some(written.len() as u64 - refused), "{s}");
}

#[test]
fn undelivered_events_wait_in_the_outbox_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let (u, g) = (Arc::clone(&up), Arc::clone(&got));
    let port = mock(move |_, r| {
        if !u.load(std::sync::atomic::Ordering::SeqCst) {
            return (503, r#"{"text":"Server is busy","code":9}"#.into());
        }
        let envelopes = serde_json::Deserializer::from_slice(&r.body).into_iter::<serde_json::Value>();
        g.lock().unwrap().extend(envelopes.map(|e| e.unwrap()["event"].clone()));
        (200, r#"{"text":"Success","code":0}"#.into())
    });
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[outbox]\nmax_backoff_secs = 1\ndrain_timeout_secs = 2\n\n[[sinks]]\nname = \"splunk\"\nkind = \"hec\"\naddress = \"127.0.0.1:{port}\"\ntls = false\ntoken = \"t\"\n"
        ),
    )
    .unwrap();
    let store = dir.path().join("store");
    let run_once = |events: &Path| replay_sample_with(&cfg, &store, events, None);
    // 1. the receiver refuses everything: the replay ends after the drain timeout, status 3
    let first = dir.path().join("first.jsonl");
    let o = run_once(&first);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("stay in the outbox"), "{err}");
    let n1 = read_jsonl(&first).len() as u64;
    let st = run_ok(&["outbox", "status", "--config", cfg.to_str().unwrap(), "--store", store.to_str().unwrap(), "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["sinks"][0]["pending"].as_u64(), Some(n1), "{st}");
    assert!(got.lock().unwrap().is_empty());
    // 2. the receiver is back: the next start delivers the spooled events and its own
    up.store(true, std::sync::atomic::Ordering::SeqCst);
    let second = dir.path().join("second.jsonl");
    let o = run_once(&second);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let got: std::collections::HashSet<String> = got.lock().unwrap().iter().map(uid).collect();
    for e in read_jsonl(&first).iter().chain(read_jsonl(&second).iter()) {
        assert!(got.contains(&uid(e)), "event {} of a run was never delivered", uid(e));
    }
}
