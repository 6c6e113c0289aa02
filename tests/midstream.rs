//! Mid-stream pickup: replay the sample capture with its first 20% of packets
//! removed (long-lived h2c and HTTP/1.1 connections are then joined after
//! their start) and score the requests that begin after the cut against the
//! generator's ground truth.

mod common;

use common::*;

#[test]
fn requests_after_a_cut_are_reported_without_invention() {
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    let mut cap = pcap::Capture::from_file(fixture("sample.pcap")).unwrap();
    let total = 10_048; // frames in the fixture (fixtures/README.md)
    let skip = total / 5;
    let dead = pcap::Capture::dead(cap.get_datalink()).unwrap();
    let mut w = dead.savefile(&cut).unwrap();
    let mut n = 0;
    let mut first_ts = None;
    while let Ok(p) = cap.next_packet() {
        n += 1;
        if n > skip {
            first_ts.get_or_insert(p.header.ts.tv_sec as f64 + p.header.ts.tv_usec as f64 / 1e6);
            w.write(&p);
        }
    }
    w.flush().unwrap();
    drop(w);
    assert_eq!(n, total);
    let after = first_ts.unwrap();
    let ev = dir.path().join("ev.jsonl");
    let stats = dir.path().join("stats.json");
    run_ok(&["replay", "--store", dir.path().join("s").to_str().unwrap(), "--transactions", "--events", ev.to_str().unwrap(), "--stats-json", stats.to_str().unwrap(), cut.to_str().unwrap()]);
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert!(stats["flow"]["flows_midstream"].as_u64().unwrap() >= 1, "the long-lived connections are joined mid-stream");
    let events: Vec<serde_json::Value> = read_jsonl(&ev).into_iter().filter(|e| e["class_uid"] == 4002).collect();
    let truth = read_jsonl(&fixture("sample.truth.jsonl"));
    for proto in ["http1", "h2"] {
        let want: Vec<Key> = truth
            .iter()
            .filter(|t| t["proto"] == proto && t["t"].as_f64().unwrap() >= after)
            .map(|t| (t["method"].as_str().unwrap().to_string(), String::new(), norm_path(t["path"].as_str().unwrap()), None))
            .collect();
        let seen: Vec<Key> = events
            .iter()
            .filter(|e| {
                let v = e["http_request"]["version"].as_str().unwrap_or("");
                (proto == "h2") == (v == "HTTP/2")
            })
            .filter(|e| e["time"].as_f64().unwrap() / 1000.0 >= after - 0.001)
            .map(|e| (e["http_request"]["http_method"].as_str().unwrap().to_string(), String::new(), norm_path(e["http_request"]["url"]["path"].as_str().unwrap()), None))
            .collect();
        let (recall, precision, _) = score(&want, &seen);
        eprintln!("{proto} after the cut: truth {} events {} recall {recall:.4} precision {precision:.4}", want.len(), seen.len());
        assert!(want.len() > 100, "{proto}: the cut leaves requests to score");
        assert!(recall >= 0.9, "{proto} recall {recall}");
        assert!(precision >= 0.99, "{proto} precision {precision} (invented requests)");
    }
}
