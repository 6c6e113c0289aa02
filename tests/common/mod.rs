//! Helpers shared by the integration tests: running the real binary, finding
//! `../shared`, and matching events against ground truth.
#![allow(dead_code)]

pub mod craft;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_apitap"))
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("fixtures").join(name)
}

/// `../shared` beside the checkout, or `None` (with a printed notice) when it
/// is absent. With `APITAP_REQUIRE_SHARED=1` its absence fails the test.
pub fn shared() -> Option<PathBuf> {
    let p = root().join("..").join("shared");
    if p.is_dir() {
        return Some(p);
    }
    if std::env::var("APITAP_REQUIRE_SHARED").is_ok_and(|v| v == "1") {
        panic!("../shared is required (APITAP_REQUIRE_SHARED=1) but missing at {}", p.display());
    }
    eprintln!("notice: skipping: ../shared is not beside the checkout ({})", p.display());
    None
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run apitap")
}

pub fn run_ok(args: &[&str]) -> Output {
    let o = run(args);
    assert!(
        o.status.success(),
        "apitap {:?} failed: {}\n{}",
        args,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `apitap replay --config CONFIG --store STORE --transactions --events EVENTS
/// [--stats-json STATS] fixtures/sample.pcap`.
pub fn replay_sample_with(config: &Path, store: &Path, events: &Path, stats: Option<&Path>) -> Output {
    let mut args = vec!["replay", "--config", config.to_str().unwrap(), "--store", store.to_str().unwrap()];
    args.extend(["--transactions", "--events", events.to_str().unwrap()]);
    if let Some(s) = stats {
        args.extend(["--stats-json", s.to_str().unwrap()]);
    }
    let f = fixture("sample.pcap");
    args.push(f.to_str().unwrap());
    run(&args)
}

pub fn read_jsonl(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("event line is JSON")).collect()
}

pub type Key = (String, String, String, Option<u64>);

/// The same normalisation as the conformance tool: lower-case host without
/// port/userinfo/brackets, path without query, status or none.
pub fn norm_host(h: Option<&str>) -> String {
    let h = h.unwrap_or("").trim().to_lowercase();
    let h = h.rsplit('@').next().unwrap_or("").to_string();
    let h = if let Some(r) = h.strip_prefix('[') {
        r.split(']').next().unwrap_or("").to_string()
    } else if h.matches(':').count() == 1 {
        h.split(':').next().unwrap_or("").to_string()
    } else {
        h
    };
    h.trim_end_matches('.').to_string()
}

pub fn norm_path(p: &str) -> String {
    p.split('?').next().unwrap_or("").split('#').next().unwrap_or("").to_string()
}

pub fn event_keys(events: &[serde_json::Value]) -> Vec<Key> {
    events
        .iter()
        .filter(|e| e["class_uid"] == 4002)
        .map(|e| {
            let r = &e["http_request"];
            (
                r["http_method"].as_str().unwrap_or("").to_uppercase(),
                norm_host(r["url"]["hostname"].as_str()),
                norm_path(r["url"]["path"].as_str().unwrap_or("")),
                e["http_response"]["code"].as_u64(),
            )
        })
        .collect()
}

pub fn truth_keys(truth: &[serde_json::Value], proto: Option<&str>) -> Vec<Key> {
    truth
        .iter()
        .filter(|t| proto.is_none_or(|p| t["proto"] == p))
        .filter(|t| t["path"].as_str().is_some_and(|p| !p.is_empty()))
        .map(|t| {
            (
                t["method"].as_str().unwrap_or("").to_uppercase(),
                norm_host(t["host"].as_str()),
                norm_path(t["path"].as_str().unwrap_or("")),
                t["status"].as_u64(),
            )
        })
        .collect()
}

/// Multiset matching: (recall, precision, matched).
pub fn score(truth: &[Key], seen: &[Key]) -> (f64, f64, usize) {
    let mut want: HashMap<&Key, usize> = HashMap::new();
    for k in truth {
        *want.entry(k).or_default() += 1;
    }
    let mut matched = 0;
    for k in seen {
        if let Some(n) = want.get_mut(k) {
            if *n > 0 {
                *n -= 1;
                matched += 1;
            }
        }
    }
    let recall = if truth.is_empty() { 1.0 } else { matched as f64 / truth.len() as f64 };
    let precision = if seen.is_empty() { if truth.is_empty() { 1.0 } else { 0.0 } } else { matched as f64 / seen.len() as f64 };
    (recall, precision, matched)
}

/// A path template with every `{parameter}` written `{}`, so templates
/// compare by shape whatever their parameter names.
pub fn norm_template(p: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in p.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    out.push_str("{}");
                }
            }
            '}' => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}
