//! Conformance against the shared corpus of real captures and the generator's
//! capture, scored by `../shared/tools/conformance` (tshark-derived truth).

mod common;

use common::*;
use std::path::Path;

struct Score {
    name: String,
    truth: u64,
    events: u64,
    matched: u64,
    recall: f64,
    precision: f64,
}

fn conformance(shared: &Path, capture: &Path, truth: &Path, proto: &str, work: &Path) -> Score {
    let store = work.join("store");
    let ev = work.join("ev.jsonl");
    let stats = work.join("stats.json");
    let o = run(&["replay", "--store", store.to_str().unwrap(), "--transactions", "--events", ev.to_str().unwrap(), "--stats-json", stats.to_str().unwrap(), capture.to_str().unwrap()]);
    assert!(o.status.code() == Some(0), "replay of {} failed: {}", capture.display(), String::from_utf8_lossy(&o.stderr));
    // the parsers' memory accounting gives back, when the connections end,
    // every byte it counted (whatever the capture's damage), and these small
    // captures stay far below the budget
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(s["http"]["parser_bytes_held"].as_u64(), Some(0), "{}: parser bytes still counted at the end", capture.display());
    assert_eq!(s["http"]["parser_bytes_limit_hit"].as_u64(), Some(0), "{}", capture.display());
    let out = std::process::Command::new("python3")
        .arg(shared.join("tools/conformance"))
        .args(["--json", "--proto", proto, "--min-recall", "0", "--min-precision", "0"])
        .arg(&ev)
        .arg(truth)
        .output()
        .expect("python3 runs the conformance tool");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("conformance output for {}: {}", capture.display(), String::from_utf8_lossy(&out.stderr)));
    Score {
        name: capture.file_name().unwrap().to_string_lossy().into_owned(),
        truth: v["truth"].as_u64().unwrap(),
        events: v["events"].as_u64().unwrap(),
        matched: v["matched"].as_u64().unwrap(),
        recall: v["recall"].as_f64().unwrap(),
        precision: v["precision"].as_f64().unwrap(),
    }
}

/// Captures of the dev corpus whose truth holds only HTTP/1 requests (`h2` false)
/// or some HTTP/2 requests (`h2` true).
fn captures(corpus: &Path, h2: bool) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(corpus).unwrap().filter_map(Result::ok).map(|e| e.path()).collect();
    names.sort();
    for p in names {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        if !(n.ends_with(".pcap") || n.ends_with(".pcapng")) {
            continue;
        }
        let stem = n.rsplit_once('.').unwrap().0;
        let truth = corpus.join(format!("{stem}.truth.jsonl"));
        let rows = read_jsonl(&truth);
        if rows.iter().all(|r| r["proto"] == "http1") != h2 {
            out.push((p, truth));
        }
    }
    out
}

#[test]
fn http1_corpus_conformance() {
    corpus_conformance(false, 60);
}

#[test]
fn http2_corpus_conformance() {
    corpus_conformance(true, 15);
}

fn corpus_conformance(h2: bool, at_least: usize) {
    let Some(shared) = shared() else { return };
    let corpus = shared.join("corpus/dev");
    let caps = captures(&corpus, h2);
    assert!(caps.len() >= at_least, "expected at least {at_least} captures, found {}", caps.len());
    let dir = tempfile::tempdir().unwrap();
    let mut scores = Vec::new();
    for (i, (cap, truth)) in caps.iter().enumerate() {
        let work = dir.path().join(i.to_string());
        std::fs::create_dir_all(&work).unwrap();
        scores.push(conformance(&shared, cap, truth, "all", &work));
    }
    let (t, e, m): (u64, u64, u64) = scores.iter().fold((0, 0, 0), |a, s| (a.0 + s.truth, a.1 + s.events, a.2 + s.matched));
    let mut bad = Vec::new();
    for s in &scores {
        eprintln!("{:<48} truth {:>5} events {:>5} recall {:.3} precision {:.3}", s.name, s.truth, s.events, s.recall, s.precision);
        if s.recall < 0.9 || s.precision < 0.9 {
            bad.push(s.name.clone());
        }
    }
    let (recall, precision) = (m as f64 / t as f64, m as f64 / e.max(1) as f64);
    eprintln!("corpus: {} captures, truth {t}, events {e}, matched {m}, recall {recall:.4}, precision {precision:.4}", scores.len());
    assert!(bad.is_empty(), "captures under 0.9: {bad:?}");
    assert!(recall >= 0.99 && precision >= 0.99, "corpus recall {recall} precision {precision}");
}

#[test]
fn trafficgen_small_conformance_by_protocol() {
    let Some(shared) = shared() else { return };
    let tg = shared.join("trafficgen");
    for proto in ["http1", "h2"] {
        let dir = tempfile::tempdir().unwrap();
        let s = conformance(&shared, &tg.join("small.pcap"), &tg.join("small.truth.jsonl"), proto, dir.path());
        eprintln!("small.pcap {proto}: truth {} events {} recall {:.4} precision {:.4}", s.truth, s.events, s.recall, s.precision);
        assert!(s.recall >= 0.99 && s.precision >= 0.99, "{proto}");
    }
}
