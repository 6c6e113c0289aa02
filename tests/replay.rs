//! End-to-end replay: real libpcap, real RocksDB, the real binary.

mod common;

use common::*;
use std::path::Path;

fn replay_sample(store: &Path, events: &Path, workers: &str) {
    run_ok(&[
        "replay",
        "--store",
        store.to_str().unwrap(),
        "--transactions",
        "--events",
        events.to_str().unwrap(),
        "--workers",
        workers,
        fixture("sample.pcap").to_str().unwrap(),
    ]);
}

/// The transaction events (HTTP Activity) among all events.
fn transactions(all: &[serde_json::Value]) -> Vec<serde_json::Value> {
    all.iter().filter(|e| e["class_uid"] == 4002).cloned().collect()
}

fn dump_json(store: &Path) -> Vec<serde_json::Value> {
    let o = run_ok(&["dump", "--store", store.to_str().unwrap(), "--format", "json"]);
    serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("dump json is JSON").as_array().cloned().unwrap_or_default()
}

#[test]
fn sample_transactions_match_ground_truth_per_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("ev.jsonl");
    replay_sample(&dir.path().join("store"), &ev, "2");
    let events = read_jsonl(&ev);
    let truth = read_jsonl(&fixture("sample.truth.jsonl"));
    for (proto, h2) in [("http1", false), ("h2", true)] {
        let of_proto: Vec<serde_json::Value> =
            events.iter().filter(|e| (e["http_request"]["version"] == "HTTP/2") == h2).cloned().collect();
        let (recall, precision, matched) = score(&truth_keys(&truth, Some(proto)), &event_keys(&of_proto));
        eprintln!("sample {proto}: recall {recall:.4} precision {precision:.4} matched {matched}");
        assert!(matched > 1000, "{proto}: the sample has over a thousand requests");
        assert!(recall >= 0.99, "{proto} recall {recall}");
        assert!(precision >= 0.99, "{proto} precision {precision}");
    }
}

/// A mapped capture file's payloads are read by the workers in place; a
/// pipe's are copied into the batches. Both give the same transactions.
#[test]
fn a_piped_capture_gives_the_same_transactions_as_the_mapped_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let run_replay = |input: &Path, name: &str| {
        let ev = dir.path().join(format!("{name}.jsonl"));
        let stats = dir.path().join(format!("{name}.stats.json"));
        let mut child = std::process::Command::new(bin())
            .args(["replay", "--no-progress", "--workers", "2", "--store", store.to_str().unwrap(), "--transactions"])
            .args(["--events", ev.to_str().unwrap(), "--stats-json", stats.to_str().unwrap(), input.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if name == "piped" {
            let mut w = std::fs::OpenOptions::new().write(true).open(input).unwrap();
            std::io::Write::write_all(&mut w, &std::fs::read(fixture("sample.pcap")).unwrap()).unwrap();
        }
        assert!(child.wait().unwrap().success(), "{name} replay failed");
        let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
        let mut tx: Vec<String> = transactions(&read_jsonl(&ev)).iter().map(|e| e.to_string()).collect();
        tx.sort();
        (tx, stats)
    };
    let (mapped, mapped_stats) = run_replay(&fixture("sample.pcap"), "mapped");
    let fifo = dir.path().join("capture.fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let (piped, piped_stats) = run_replay(&fifo, "piped");
    let segments = mapped_stats["tcp_segments"].as_u64().unwrap();
    eprintln!("segments {segments}, read in place: mapped {}, piped {}", mapped_stats["tcp_segments_read_in_place"], piped_stats["tcp_segments_read_in_place"]);
    assert!(segments > 5_000, "{mapped_stats}");
    assert_eq!(piped_stats["tcp_segments"].as_u64(), Some(segments));
    // sample.pcap has no IP fragments: every payload lies in the file
    assert_eq!(mapped_stats["tcp_segments_read_in_place"].as_u64(), Some(segments));
    assert_eq!(piped_stats["tcp_segments_read_in_place"].as_u64(), Some(0));
    // the parsers' memory is counted while connections hold it and given
    // back, every byte, when they end; the sample is far below the budget
    for s in [&mapped_stats, &piped_stats] {
        let h = &s["http"];
        assert_eq!(h["parser_bytes_held"].as_u64(), Some(0), "bytes still counted after every connection ended: {h}");
        assert!(h["parser_bytes_peak"].as_u64().is_some_and(|p| p > 0), "{h}");
        assert_eq!(h["parser_bytes_limit_hit"].as_u64(), Some(0), "{h}");
    }
    assert!(mapped.len() > 2_000, "{} transactions", mapped.len());
    assert_eq!(mapped.len(), piped.len());
    if let Some(i) = (0..mapped.len()).find(|&i| mapped[i] != piped[i]) {
        panic!("transaction events differ:\nmapped {}\npiped  {}", mapped[i], piped[i]);
    }
}

#[test]
fn transaction_events_follow_the_documented_ocsf_contract() {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("ev.jsonl");
    replay_sample(&dir.path().join("store"), &ev, "2");
    let all = read_jsonl(&ev);
    // besides transactions, only inventory events (class 5023) and findings
    // (2004, 2007), each with a test of its own
    assert!(all.iter().all(|e| [4002, 5023, 2004, 2007].iter().any(|c| e["class_uid"] == *c)));
    let events = transactions(&all);
    assert!(!events.is_empty());
    let mut uids = std::collections::HashSet::new();
    let (first_ts, last_ts) = (1_700_000_000_000u64, 4_000_000_000_000u64);
    for e in &events {
        assert_eq!(e["class_uid"], 4002);
        assert_eq!(e["category_uid"], 4);
        let act = e["activity_id"].as_u64().unwrap();
        assert_eq!(e["type_uid"].as_u64().unwrap(), 4002 * 100 + act);
        let method = e["http_request"]["http_method"].as_str().unwrap();
        let expect = match method {
            "GET" => 3,
            "POST" => 6,
            "PUT" => 7,
            "DELETE" => 2,
            "HEAD" => 4,
            "OPTIONS" => 5,
            _ => 99,
        };
        assert_eq!(act, expect, "activity_id for {method}");
        assert!(e["severity_id"].is_u64());
        let t = e["time"].as_u64().unwrap();
        assert!(t > first_ts && t < last_ts, "time is epoch ms: {t}");
        assert_eq!(e["metadata"]["product"]["name"], "apitap");
        assert!(e["metadata"]["version"].is_string());
        assert!(uids.insert(e["metadata"]["uid"].as_str().unwrap().to_string()), "metadata.uid is unique");
        assert!(e["src_endpoint"]["ip"].is_string() && e["src_endpoint"]["port"].is_u64());
        assert!(e["dst_endpoint"]["ip"].is_string() && e["dst_endpoint"]["port"].is_u64());
        let v = e["http_request"]["version"].as_str().unwrap();
        assert!(["HTTP/1.0", "HTTP/1.1", "HTTP/0.9", "HTTP/2"].contains(&v), "{v}");
        let host = e["http_request"]["url"]["hostname"].as_str();
        if let Some(h) = host {
            assert!(!h.contains(':') || h.contains("::"), "hostname without port: {h}");
            assert_ne!(Some(h), e["dst_endpoint"]["ip"].as_str());
        }
        let path = e["http_request"]["url"]["path"].as_str().unwrap();
        assert!(!path.contains('?'));
        if e["http_response"].is_object() {
            assert!(e["http_response"]["code"].is_u64());
            assert!(e["http_response"]["length"].is_u64());
        }
    }
    // no dotted keys anywhere: nested objects only
    fn no_dots(v: &serde_json::Value) {
        if let Some(o) = v.as_object() {
            for (k, x) in o {
                assert!(!k.contains('.'), "dotted key {k}");
                no_dots(x);
            }
        }
    }
    events.iter().for_each(no_dots);
}

#[test]
fn secrets_never_appear_in_events() {
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("ev.jsonl");
    replay_sample(&dir.path().join("store"), &ev, "1");
    let text = std::fs::read_to_string(&ev).unwrap();
    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture("sample.truth.json")).unwrap()).unwrap();
    // every credential string the generator used (all fake) must be absent
    let mut secrets = Vec::new();
    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if s.len() >= 8 => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
    collect(&truth["credentials"], &mut secrets);
    // e-mail addresses are personal data, not credentials; user names are not secret
    secrets.retain(|s| !s.contains('@') && s != "legacy-app");
    assert!(secrets.len() >= 10, "the truth lists the credentials used: {secrets:?}");
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "credential {s} appears in the events");
    }
    // The contract (README, "Transaction events"): no header of the request or
    // response is copied into events except User-Agent; authentication is named
    // by its scheme from the documented vocabulary, never by its value.
    // (Finding events carry fixed titles such as "Basic authentication over
    // cleartext HTTP" and no header at all; the credential values above are
    // checked in them too.)
    let vocabulary = ["none", "basic", "bearer", "bearer_jwt", "api_key_header", "api_key_query", "cookie_session"];
    let lower: String = text
        .lines()
        .filter(|l| !l.contains("\"class_uid\":2004") && !l.contains("\"class_uid\":2007"))
        .collect::<Vec<_>>()
        .join("\n")
        .to_lowercase();
    for needle in ["bearer ", "basic ", "\"authorization\"", "\"cookie\"", "\"set-cookie\"", "\"x-api-key\""] {
        assert!(!lower.contains(needle), "{needle} in events");
    }
    let mut schemes = 0;
    for line in text.lines() {
        let ev: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(a) = ev["unmapped"]["auth"].as_array() {
            for s in a {
                let s = s.as_str().unwrap();
                assert!(vocabulary.contains(&s) || s.starts_with("other"), "auth scheme {s} outside the vocabulary");
                schemes += 1;
            }
        }
    }
    assert!(schemes > 100, "the sample's authenticated requests are named by scheme");
}

#[test]
fn same_inventory_with_one_and_four_workers() {
    let dir = tempfile::tempdir().unwrap();
    let (s1, s4) = (dir.path().join("s1"), dir.path().join("s4"));
    replay_sample(&s1, &dir.path().join("e1.jsonl"), "1");
    replay_sample(&s4, &dir.path().join("e4.jsonl"), "4");
    let (d1, d4) = (dump_json(&s1), dump_json(&s4));
    assert!(d1.len() > 20, "the sample has many endpoints");
    assert_eq!(d1, d4);
    let mut k1 = event_keys(&read_jsonl(&dir.path().join("e1.jsonl")));
    let mut k4 = event_keys(&read_jsonl(&dir.path().join("e4.jsonl")));
    k1.sort();
    k4.sort();
    assert_eq!(k1, k4);
}

#[test]
fn inventory_counts_match_truth_and_second_replay_adds() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let ev = dir.path().join("ev.jsonl");
    replay_sample(&store, &ev, "2");
    let first = dump_json(&store);
    let total: u64 = first.iter().map(|e| e["requests"].as_u64().unwrap()).sum();
    let events = transactions(&read_jsonl(&ev));
    assert_eq!(total, events.len() as u64, "every transaction lands in exactly one endpoint");
    // the truth's requests (HTTP/1 and h2c) to /health on api.shop.test
    let truth = read_jsonl(&fixture("sample.truth.jsonl"));
    let want = truth.iter().filter(|t| t["method"] == "GET" && t["path"] == "/health" && t["host"] == "api.shop.test").count() as u64;
    let got = first
        .iter()
        .find(|e| e["host"] == "api.shop.test" && e["path"] == "/health" && e["method"] == "GET")
        .map(|e| e["requests"].as_u64().unwrap())
        .unwrap_or(0);
    assert!(want > 0);
    assert_eq!(got, want, "GET api.shop.test/health count");
    for e in &first {
        for k in ["host", "method", "path", "first_seen", "last_seen"] {
            assert!(e[k].is_string(), "{k}");
        }
        assert!(e["statuses"].is_object() && e["protocols"].is_array());
        assert!(e["first_seen"].as_str().unwrap() <= e["last_seen"].as_str().unwrap());
        assert!(e["first_seen"].as_str().unwrap().starts_with("2026-"));
    }
    // a second replay into the same store adds to it
    replay_sample(&store, &dir.path().join("ev2.jsonl"), "3");
    let second = dump_json(&store);
    assert_eq!(first.len(), second.len());
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a["path"], b["path"]);
        assert_eq!(b["requests"].as_u64().unwrap(), 2 * a["requests"].as_u64().unwrap());
        assert_eq!(a["first_seen"], b["first_seen"]);
    }
}

#[test]
fn dump_table_is_sorted_and_aligned() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    replay_sample(&store, &dir.path().join("ev.jsonl"), "2");
    let o = run_ok(&["dump", "--store", store.to_str().unwrap()]);
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("HOST"));
    let col = lines[0].find("METHOD").unwrap();
    let rows = &lines[1..lines.len() - 1];
    let mut keys = Vec::new();
    for r in rows {
        assert!(r.len() > col && r.as_bytes()[col - 1] == b' ', "aligned METHOD column: {r}");
        let host = r[..col].trim().to_string();
        let rest: Vec<&str> = r[col..].split_whitespace().collect();
        keys.push((host, rest[1].to_string(), rest[0].to_string()));
    }
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "sorted by host, path, method");
    assert!(lines.last().unwrap().ends_with("endpoints"));
}

#[test]
fn events_validate_against_the_ocsf_1_8_0_schema() {
    let Some(shared) = shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let ev = dir.path().join("ev.jsonl");
    replay_sample(&dir.path().join("store"), &ev, "2");
    let o = std::process::Command::new("python3").arg(shared.join("tools/ocsf-validate")).arg(&ev).output().expect("python3");
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    if out.contains("pip install") && std::env::var("APITAP_REQUIRE_SHARED").as_deref() != Ok("1") {
        eprintln!("notice: skipping: the OCSF validator needs `pip install ocsf-json-schema jsonschema`");
        return;
    }
    assert!(o.status.success(), "ocsf-validate: {out}");
    assert!(out.contains("0 invalid") && out.contains("4002"), "{out}");
    // every transaction event carries the flow's Community ID
    let events = transactions(&read_jsonl(&ev));
    assert!(events.iter().all(|e| e["connection_info"]["community_uid"].as_str().is_some_and(|c| c.starts_with("1:"))));
}

#[test]
fn inventory_events_and_call_summaries_follow_the_inventory() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(&cfg, "[output]\ncall_summaries = true\n").unwrap();
    let ev = dir.path().join("ev.jsonl");
    let args = |ev: &Path| {
        vec![
            "replay".to_string(),
            "--config".into(),
            cfg.to_str().unwrap().into(),
            "--store".into(),
            store.to_str().unwrap().into(),
            "--events".into(),
            ev.to_str().unwrap().into(),
            fixture("sample.pcap").to_str().unwrap().into(),
        ]
    };
    let a = args(&ev);
    run_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let events = read_jsonl(&ev);
    let inventory: Vec<_> = events.iter().filter(|e| e["class_uid"] == 5023).collect();
    let summaries: Vec<_> = events.iter().filter(|e| e["class_uid"] == 4002).collect();
    // the contract: one discovery event per endpoint of the inventory
    let d = dump_json(&store);
    let mut discovered: Vec<(String, String, String)> = inventory
        .iter()
        .map(|e| {
            let r = &e["resources"][0]["data"];
            (r["host"].as_str().unwrap().into(), r["method"].as_str().unwrap().into(), r["path_template"].as_str().unwrap().into())
        })
        .collect();
    let mut dumped: Vec<(String, String, String)> =
        d.iter().map(|e| (e["host"].as_str().unwrap().into(), e["method"].as_str().unwrap().into(), e["path"].as_str().unwrap().into())).collect();
    discovered.sort();
    dumped.sort();
    assert_eq!(discovered, dumped);
    assert!(inventory.iter().all(|e| e["message"].as_str().unwrap().starts_with("New API endpoint discovered")));
    // call summaries count every request the ground truth lists (conformance of the sample is exact)
    let truth = read_jsonl(&fixture("sample.truth.jsonl")).len() as u64;
    assert!(summaries.iter().all(|e| e["count"].as_u64().unwrap() > 0 && e["start_time"].as_u64() <= e["end_time"].as_u64()));
    assert_eq!(summaries.iter().map(|e| e["count"].as_u64().unwrap()).sum::<u64>(), truth);
    // the same capture again: nothing new, nothing changed
    let ev2 = dir.path().join("ev2.jsonl");
    let a = args(&ev2);
    run_ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(read_jsonl(&ev2).iter().all(|e| e["class_uid"] != 5023), "a second identical replay discovers nothing");
    // both classes validate against OCSF 1.8.0
    let Some(shared) = shared() else { return };
    let o = std::process::Command::new("python3").arg(shared.join("tools/ocsf-validate")).arg(&ev).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    if out.contains("pip install") && std::env::var("APITAP_REQUIRE_SHARED").as_deref() != Ok("1") {
        return;
    }
    assert!(o.status.success() && out.contains("5023") && out.contains("0 invalid"), "{out}");
}

#[test]
fn ecs_output_maps_the_same_events() {
    let dir = tempfile::tempdir().unwrap();
    let (ocsf, ecs) = (dir.path().join("ocsf.jsonl"), dir.path().join("ecs.jsonl"));
    replay_sample(&dir.path().join("s1"), &ocsf, "2");
    let cfg = dir.path().join("ecs.toml");
    std::fs::write(&cfg, "[output]\nformat = \"ecs\"\n").unwrap();
    let s2 = dir.path().join("s2");
    run_ok(&["replay", "--config", cfg.to_str().unwrap(), "--store", s2.to_str().unwrap(), "--transactions", "--events", ecs.to_str().unwrap(), fixture("sample.pcap").to_str().unwrap()]);
    let (o, e) = (read_jsonl(&ocsf), read_jsonl(&ecs));
    assert_eq!(o.len(), e.len());
    let mut ids = std::collections::HashSet::new();
    for ev in &e {
        assert_eq!(ev["ecs"]["version"], "9.4.0");
        assert!(ev["@timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{ev}");
        assert!(ids.insert(ev["event"]["id"].as_str().unwrap().to_string()), "event.id is unique");
    }
    // the same transactions, field for field
    let key_o = |v: &serde_json::Value| {
        (v["http_request"]["http_method"].clone(), v["http_request"]["url"]["hostname"].clone(), v["http_request"]["url"]["path"].clone(), v["http_response"]["code"].clone(), v["src_endpoint"]["port"].clone())
    };
    let key_e = |v: &serde_json::Value| {
        (v["http"]["request"]["method"].clone(), v["url"]["domain"].clone(), v["url"]["path"].clone(), v["http"]["response"]["status_code"].clone(), v["source"]["port"].clone())
    };
    let mut a: Vec<String> = o.iter().filter(|v| v["class_uid"] == 4002).map(|v| format!("{:?}", key_o(v))).collect();
    let mut b: Vec<String> = e.iter().filter(|v| v["event"]["action"] == "http-transaction").map(|v| format!("{:?}", key_e(v))).collect();
    a.sort();
    b.sort();
    assert_eq!(a.len(), read_jsonl(&fixture("sample.truth.jsonl")).len());
    assert_eq!(a, b);
    let assets = e.iter().filter(|v| v["event"]["kind"] == "asset").count();
    assert_eq!(assets, o.iter().filter(|v| v["class_uid"] == 5023).count());
}

/// Connections opened in view are placed on workers by load
/// (`pipeline.balance = "load"`, the default); `"hash"` shards by the hash
/// alone. Either way every transaction is found, the same ones, and the
/// bytes given to the workers add up to at most the capture's.
#[test]
fn placement_by_load_finds_the_same_transactions_as_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let hash_cfg = dir.path().join("hash.toml");
    std::fs::write(&hash_cfg, "[pipeline]\nbalance = \"hash\"\n").unwrap();
    let run = |name: &str, config: Option<&Path>| {
        let ev = dir.path().join(format!("{name}.jsonl"));
        let stats = dir.path().join(format!("{name}.stats.json"));
        let store = dir.path().join(format!("{name}.store"));
        let mut args = vec!["replay", "--no-progress", "--workers", "2", "--store", store.to_str().unwrap(), "--transactions"];
        args.extend(["--events", ev.to_str().unwrap(), "--stats-json", stats.to_str().unwrap()]);
        if let Some(c) = config {
            args.extend(["--config", c.to_str().unwrap()]);
        }
        let sample = fixture("sample.pcap");
        args.push(sample.to_str().unwrap());
        run_ok(&args);
        let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
        (read_jsonl(&ev), s)
    };
    let (placed_ev, placed) = run("load", None);
    let (hashed_ev, hashed) = run("hash", Some(&hash_cfg));
    let n = |s: &serde_json::Value, k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in the summary"));
    assert!(n(&placed, "connections_placed") > 0, "the sample's connections open in view");
    assert!(n(&placed, "connections_placed") <= n(&placed, "flows"));
    assert_eq!(n(&placed, "placement_table_full"), 0);
    assert_eq!(n(&hashed, "connections_placed"), 0);
    for s in [&placed, &hashed] {
        let per: Vec<u64> = s["worker_bytes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(per.len(), 2);
        assert!(per.iter().all(|b| *b > 0), "both workers get connections: {per:?}");
        assert!(per.iter().sum::<u64>() <= n(s, "bytes"));
    }
    let truth = read_jsonl(&fixture("sample.truth.jsonl"));
    let mut a = event_keys(&transactions(&placed_ev));
    let mut b = event_keys(&transactions(&hashed_ev));
    assert_eq!(a.len(), truth.len(), "every request of the truth, once");
    a.sort();
    b.sort();
    assert_eq!(a, b);
}
