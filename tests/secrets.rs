//! Secret hygiene: replay captures full of credentials and card numbers and
//! look for them everywhere apitap writes — the store's files on disk
//! (written uncompressed for this test), events in OCSF and ECS (transactions,
//! inventory, findings, call summaries), `dump`, `findings`, `report`,
//! `openapi`, `dump --tls`, the run summary and the log. Zero hits. The TLS
//! sessions are decrypted with their key logs, whose secrets are searched for too.
//!
//! The credentials come from the generator's truth (`credentials`); the card
//! numbers are found in the capture itself by this test (16-digit runs with
//! a valid Luhn checksum), independently of the code under test.

mod common;

use common::*;
use std::path::Path;

fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, c) in d.iter().rev().enumerate() {
        let mut v = u32::from(c - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// 16-digit card numbers (Luhn-valid, Visa/Mastercard prefixes) in raw bytes.
fn card_numbers(bytes: &[u8]) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut i = 0;
    while i + 16 <= bytes.len() {
        let w = &bytes[i..i + 16];
        let bounded = (i == 0 || !bytes[i - 1].is_ascii_digit()) && bytes.get(i + 16).is_none_or(|b| !b.is_ascii_digit());
        if bounded && w.iter().all(u8::is_ascii_digit) && (w[0] == b'4' || w[0] == b'5') && luhn(w) {
            out.insert(String::from_utf8_lossy(w).into_owned());
            i += 16;
        } else {
            i += 1;
        }
    }
    out
}

fn credentials(truth: &Path) -> Vec<String> {
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(truth).unwrap()).unwrap();
    let mut out = Vec::new();
    fn walk(v: &serde_json::Value, key: &str, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if s.len() >= 8 && !s.contains('@') && key != "name" && key != "role" => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, key, out)),
            serde_json::Value::Object(o) => o.iter().for_each(|(k, x)| walk(x, k, out)),
            _ => {}
        }
    }
    walk(&t["credentials"], "", &mut out);
    out
}

fn all_bytes_under(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            all_bytes_under(&p, out);
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
}

fn check_capture(pcap: &Path, truth: &Path, spec: &Path, keylog: &Path) {
    let dir = tempfile::tempdir().unwrap();
    let mut secrets = credentials(truth);
    // the TLS secrets of the key log (the sessions are decrypted: their
    // credentials are analysed too) must not leak either
    let tls_secrets: Vec<String> = std::fs::read_to_string(keylog).unwrap().lines().filter_map(|l| l.split(' ').nth(2).map(str::to_string)).collect();
    assert!(!tls_secrets.is_empty());
    let cards = card_numbers(&std::fs::read(pcap).unwrap());
    eprintln!("{}: {} credentials from the truth, {} card numbers found in the capture", pcap.display(), secrets.len(), cards.len());
    assert!(secrets.len() >= 10, "the truth lists the credentials used");
    assert!(!cards.is_empty(), "the capture carries card numbers");
    secrets.extend(cards);
    secrets.extend(tls_secrets);

    let mut outputs: Vec<(String, Vec<u8>)> = Vec::new();
    for (format, calls) in [("ocsf", true), ("ecs", false)] {
        let cfg = dir.path().join(format!("{format}.toml"));
        std::fs::write(&cfg, format!("[store]\ncompression = \"none\"\nflush_max_dirty = 1\n[output]\nformat = \"{format}\"\ncall_summaries = {calls}\n")).unwrap();
        let store = dir.path().join(format!("store-{format}"));
        let ev = dir.path().join(format!("ev-{format}.jsonl"));
        let stats = dir.path().join(format!("stats-{format}.json"));
        let s = store.to_str().unwrap();
        let o = run_ok(&[
            "replay", "--config", cfg.to_str().unwrap(), "--store", s, "--events", ev.to_str().unwrap(), "--transactions",
            "--stats-json", stats.to_str().unwrap(), "--spec", spec.to_str().unwrap(), "--tls-keylog", keylog.to_str().unwrap(), pcap.to_str().unwrap(),
        ]);
        outputs.push(("replay log".into(), o.stderr));
        run_ok(&["baseline", "save", "b", "--store", s]);
        for args in [
            vec!["dump", "--store", s, "--format", "json"],
            vec!["dump", "--store", s],
            vec!["dump", "--tls", "--store", s, "--format", "json"],
            vec!["findings", "--store", s, "--format", "json", "--all"],
            vec!["report", "--store", s, "--format", "json"],
            vec!["drift", "--store", s, "--baseline", "b", "--format", "json"],
            vec!["openapi", "--store", s],
        ] {
            let o = run_ok(&args);
            outputs.push((format!("apitap {}", args.join(" ")), [o.stdout, o.stderr].concat()));
        }
        outputs.push((ev.display().to_string(), std::fs::read(&ev).unwrap()));
        outputs.push((stats.display().to_string(), std::fs::read(&stats).unwrap()));
        all_bytes_under(&store, &mut outputs);
    }
    let mut hits = Vec::new();
    for (name, bytes) in &outputs {
        for s in &secrets {
            if bytes.windows(s.len()).any(|w| w == s.as_bytes()) {
                hits.push(format!("{s} in {name}"));
            }
        }
    }
    eprintln!("searched {} outputs ({} bytes) for {} secrets", outputs.len(), outputs.iter().map(|(_, b)| b.len()).sum::<usize>(), secrets.len());
    assert!(hits.is_empty(), "secrets written in the clear:\n{}", hits.join("\n"));
}

#[test]
fn no_credential_or_card_number_is_written_anywhere() {
    check_capture(&fixture("sample.pcap"), &fixture("sample.truth.json"), &fixture("sample.openapi.json"), &fixture("sample.keylog"));
}

#[test]
fn no_secret_from_the_trafficgen_capture_is_written_anywhere() {
    let Some(shared) = shared() else { return };
    let tg = shared.join("trafficgen");
    check_capture(&tg.join("small.pcap"), &tg.join("small.truth.json"), &tg.join("openapi.json"), &tg.join("small.keylog"));
}
