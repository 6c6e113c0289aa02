//! Bad input and bad configuration: one clear error naming the file and what
//! to do, a non-zero exit, and nothing already stored lost.

mod common;

use common::*;
use std::path::Path;

fn pcap_header(linktype: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&65535u32.to_le_bytes());
    h.extend_from_slice(&linktype.to_le_bytes());
    h
}

fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn endpoints(store: &Path) -> Vec<serde_json::Value> {
    let o = run_ok(&["dump", "--store", store.to_str().unwrap(), "--format", "json"]);
    serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap().as_array().cloned().unwrap()
}

#[test]
fn missing_file_fails_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let o = run(&["replay", "--store", store.to_str().unwrap(), "/nonexistent/capture.pcap"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_of(&o);
    assert!(e.contains("/nonexistent/capture.pcap") && e.contains("no such file"), "{e}");
    assert_eq!(e.lines().count(), 1, "one clear error: {e}");
}

#[test]
fn non_capture_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.txt");
    std::fs::write(&f, "this is not a capture\n").unwrap();
    let o = run(&["replay", "--store", dir.path().join("s").to_str().unwrap(), f.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    let e = stderr_of(&o);
    assert!(e.contains("notes.txt") && e.contains("not a capture file"), "{e}");
}

#[test]
fn unsupported_link_type_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("user0.pcap");
    let mut bytes = pcap_header(147);
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(&f, bytes).unwrap();
    let o = run(&["replay", "--store", dir.path().join("s").to_str().unwrap(), f.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    let e = stderr_of(&o);
    assert!(e.contains("user0.pcap") && e.contains("link type 147"), "{e}");
}

#[test]
fn truncated_capture_replays_what_is_readable_then_says_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let full = std::fs::read(fixture("sample.pcap")).unwrap();
    let cut = dir.path().join("cut.pcap");
    // cut in the middle of a record, about half way through
    std::fs::write(&cut, &full[..full.len() / 2 + 7]).unwrap();
    let store = dir.path().join("store");
    let o = run(&["replay", "--store", store.to_str().unwrap(), cut.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "completed with input problems: {}", stderr_of(&o));
    let e = stderr_of(&o);
    assert!(e.contains("cut.pcap") && e.contains("stopped after packet"), "{e}");
    let eps = endpoints(&store);
    assert!(eps.len() > 10, "what was readable is stored");
}

#[test]
fn store_path_that_is_a_file_is_a_clear_error_and_keeps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("not-a-dir");
    std::fs::write(&f, "keep me").unwrap();
    let o = run(&["replay", "--store", f.to_str().unwrap(), fixture("sample.pcap").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr_of(&o);
    assert!(e.contains("cannot open the store") && e.contains("not-a-dir"), "{e}");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "keep me");
}

#[test]
fn dump_of_a_missing_store_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&["dump", "--store", dir.path().join("nothing").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("run `apitap replay`"), "{}", stderr_of(&o));
}

#[test]
fn newer_schema_is_refused_and_data_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    run_ok(&["replay", "--store", store.to_str().unwrap(), fixture("sample.pcap").to_str().unwrap()]);
    let before = endpoints(&store);
    {
        let s = apitap::store::Store::open(&store, apitap::store::Access::ReadWrite).unwrap();
        s.put_meta(b"schema_version", (apitap::store::SCHEMA_VERSION + 1).to_string().as_bytes()).unwrap();
    }
    let o = run(&["replay", "--store", store.to_str().unwrap(), fixture("sample.pcap").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr_of(&o).contains("newer apitap"), "{}", stderr_of(&o));
    let o = run(&["dump", "--store", store.to_str().unwrap(), "--format", "json"]);
    assert!(stderr_of(&o).contains("newer apitap"));
    {
        let s = apitap::store::Store::open(&store, apitap::store::Access::ReadWrite);
        assert!(s.is_err());
    }
    // put the version back: nothing was lost
    drop(before.clone());
    let db = rocksdb_reset(&store);
    assert!(db);
    assert_eq!(endpoints(&store), before);
}

/// Resets the schema version with the library's raw meta writer (bypassing the check).
fn rocksdb_reset(store: &Path) -> bool {
    apitap::store::reset_schema_for_tests(store).is_ok()
}

/// Replays the sample with `config` as its sensor.toml; the refusal's
/// message (exit status 1 expected).
fn refused_config(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(&cfg, config).unwrap();
    let o = run(&["replay", "--config", cfg.to_str().unwrap(), "--store", dir.path().join("s").to_str().unwrap(), fixture("sample.pcap").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    stderr_of(&o)
}

#[test]
fn bad_config_names_the_key() {
    let e = refused_config("[flow]\nmax_flowz = 1\n");
    assert!(e.contains("sensor.toml") && e.contains("max_flowz"), "{e}");
}

#[test]
fn a_parser_budget_below_its_minimum_is_refused_with_the_fix() {
    let e = refused_config("[http]\nmax_parser_bytes_total = 4096\n");
    assert!(e.contains("http.max_parser_bytes_total") && e.contains("1048576"), "{e}");
}

#[test]
fn directory_input_replays_every_capture_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::copy(fixture("sample.pcap"), inbox.join("b.pcap")).unwrap();
    std::fs::copy(fixture("sample.pcap"), inbox.join("a.pcap")).unwrap();
    let stats = dir.path().join("stats.json");
    let o = run_ok(&["replay", "--store", dir.path().join("s").to_str().unwrap(), "--stats-json", stats.to_str().unwrap(), inbox.to_str().unwrap()]);
    let _ = o;
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    let files: Vec<&str> = s["files"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(files.len(), 2);
    assert!(files[0].ends_with("a.pcap") && files[1].ends_with("b.pcap"));
    let frames = 10_048u64; // the fixture README's frame count
    assert_eq!(s["packets"].as_u64().unwrap(), 2 * frames);
    for k in ["flows", "transactions", "http_anomalies", "tcp_gaps", "tcp_out_of_order", "tcp_overlaps", "elapsed_secs", "throughput_mbytes_per_sec"] {
        assert!(s[k].is_number(), "summary has {k}");
    }
    assert!(s["drops_by_limit"].is_object());
}

#[test]
fn a_full_event_output_loses_events_but_never_the_inventory() {
    // /dev/full fails every write with ENOSPC, like a full disk
    if !Path::new("/dev/full").exists() {
        eprintln!("notice: skipping: no /dev/full here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (good, full) = (dir.path().join("good"), dir.path().join("full"));
    let o = run(&["replay", "--store", good.to_str().unwrap(), fixture("sample.pcap").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr_of(&o));
    let stats = dir.path().join("stats.json");
    let o = run(&[
        "replay",
        "--store",
        full.to_str().unwrap(),
        "--events",
        "/dev/full",
        "--transactions",
        "--stats-json",
        stats.to_str().unwrap(),
        fixture("sample.pcap").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(3), "completed, with the output problem reported: {}", stderr_of(&o));
    let e = stderr_of(&o);
    assert!(e.contains("/dev/full") && e.contains("events were not written"), "{e}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    let truth = read_jsonl(&fixture("sample.truth.jsonl")).len() as u64;
    // every transaction's event was lost, none written (the truth counts the cleartext requests)
    assert!(s["events_failed"].as_u64().unwrap() >= truth, "{s}");
    assert_eq!(s["events_written"], 0);
    // and the inventory is the same as without events
    assert_eq!(endpoints(&full), endpoints(&good));
}
