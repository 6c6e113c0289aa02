//! TLS: sessions decrypted from an NSS key log and their requests checked
//! against the generator's ground truth (`../shared/tools/conformance` with
//! the truth that includes the decryptable TLS requests); the TLS service
//! inventory (`dump --tls`) against the truth's per-request TLS facts; and
//! the bundled sample with no, the right, and a corrupted key log.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

fn replay(store: &Path, pcap: &Path, keylog: Option<&Path>, events: &Path, stats: &Path) {
    let mut args = vec!["replay", "--no-progress", "--store", store.to_str().unwrap(), "--transactions", "--events", events.to_str().unwrap()];
    args.extend(["--stats-json", stats.to_str().unwrap()]);
    if let Some(k) = keylog {
        args.extend(["--tls-keylog", k.to_str().unwrap()]);
    }
    args.push(pcap.to_str().unwrap());
    run_ok(&args);
}

fn tls_dump(store: &Path) -> Vec<Value> {
    let o = run_ok(&["dump", "--tls", "--store", store.to_str().unwrap(), "--format", "json"]);
    serde_json::from_slice::<Value>(&o.stdout).unwrap().as_array().cloned().unwrap()
}

fn transactions(events: &Path) -> Vec<Value> {
    read_jsonl(events).into_iter().filter(|e| e["class_uid"] == 4002).collect()
}

fn requests_gz(path: &Path) -> Vec<Value> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut text).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn trafficgen_tls_requests_are_decrypted_and_undecryptable_sessions_inventoried() {
    let Some(shared) = shared() else { return };
    let tg = shared.join("trafficgen");
    let dir = tempfile::tempdir().unwrap();
    let (store, ev, stats) = (dir.path().join("store"), dir.path().join("ev.jsonl"), dir.path().join("stats.json"));
    replay(&store, &tg.join("small.pcap"), Some(&tg.join("small.keylog")), &ev, &stats);
    let txs = transactions(&ev);
    let tx_file = dir.path().join("tx.jsonl");
    std::fs::write(&tx_file, txs.iter().map(|e| e.to_string() + "\n").collect::<String>()).unwrap();
    let o = std::process::Command::new(shared.join("tools/conformance")).arg(&tx_file).arg(tg.join("small.truth-tls.jsonl")).output().expect("conformance");
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    eprintln!("{}", out.trim());
    let recall: f64 = out.split("recall ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|r| r.parse().ok()).expect("recall in the output");
    assert!(recall >= 0.99, "recall {recall} against the truth with decryptable TLS requests");

    // the truth's per-request facts
    let reqs = requests_gz(&tg.join("small.requests.jsonl.gz"));
    let tls: Vec<&Value> = reqs.iter().filter(|r| r["tls"] == true).collect();
    let decryptable = tls.iter().filter(|r| r["decryptable_with_keylog"] == true).count();
    let decrypted = txs.iter().filter(|e| e["unmapped"]["decrypted"] == true).count();
    eprintln!("TLS requests in the truth: {}, decryptable {decryptable}; decrypted transactions {decrypted}", tls.len());
    assert!(decryptable > 0);
    assert_eq!(decrypted, decryptable, "every decryptable request, and only those, is reported decrypted");
    let sessions_decryptable: BTreeSet<(String, u64)> =
        tls.iter().filter(|r| r["decryptable_with_keylog"] == true).map(|r| (r["client_ip"].as_str().unwrap().to_string(), r["client_port"].as_u64().unwrap())).collect();
    let s: Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(s["tls_decrypted"].as_u64().unwrap() as usize, sessions_decryptable.len(), "decrypted sessions: {s}");

    // the TLS inventory: every (server, SNI) of the truth, with its negotiated ALPN
    // and versions, and the undecryptable sessions counted as without keys
    let dump = tls_dump(&store);
    let mut want: BTreeMap<(String, String), (BTreeSet<String>, BTreeSet<String>, bool)> = BTreeMap::new();
    for r in &tls {
        let e = want.entry((r["server_ip"].as_str().unwrap().to_string(), r["sni"].as_str().unwrap_or("").to_string())).or_default();
        e.0.insert(r["alpn"].as_str().unwrap_or("").to_string());
        e.1.insert(r["tls_version"].as_str().unwrap_or("").to_string());
        e.2 |= r["decryptable_with_keylog"] == false;
    }
    for ((ip, sni), (alpn, versions, opaque)) in &want {
        let svc = dump.iter().find(|d| d["server_ip"] == ip.as_str() && d["sni"] == sni.as_str()).unwrap_or_else(|| panic!("no TLS service {ip} {sni} in {dump:?}"));
        let got_alpn: BTreeSet<String> = svc["alpn"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
        let got_versions: BTreeSet<String> = svc["tls_versions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
        assert!(alpn.is_subset(&got_alpn), "{ip} {sni}: ALPN {got_alpn:?}, truth {alpn:?}");
        assert!(versions.is_subset(&got_versions), "{ip} {sni}: versions {got_versions:?}, truth {versions:?}");
        if *opaque {
            assert!(svc["sessions_without_keys"].as_u64().unwrap() > 0, "{ip} {sni}: the sessions without keys are counted: {svc}");
        }
        assert_eq!(svc["sessions_failed"], 0, "{svc}");
    }
}

#[test]
fn sample_without_a_key_log_inventories_tls_and_decrypts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ev, stats) = (dir.path().join("store"), dir.path().join("ev.jsonl"), dir.path().join("stats.json"));
    replay(&store, &fixture("sample.pcap"), None, &ev, &stats);
    assert!(transactions(&ev).iter().all(|e| e["unmapped"]["decrypted"].is_null()));
    let dump = tls_dump(&store);
    assert!(!dump.is_empty(), "the sample's TLS services are inventoried");
    for d in &dump {
        assert!(d["sni"].is_string(), "{d}");
        assert!(!d["alpn"].as_array().unwrap().is_empty(), "{d}");
        assert_eq!(d["sessions_not_attempted"], d["sessions"], "{d}");
    }
}

#[test]
fn sample_with_its_key_log_decrypts_and_a_corrupted_key_log_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ev, stats) = (dir.path().join("store"), dir.path().join("ev.jsonl"), dir.path().join("stats.json"));
    replay(&store, &fixture("sample.pcap"), Some(&fixture("sample.keylog")), &ev, &stats);
    let decrypted = transactions(&ev).iter().filter(|e| e["unmapped"]["decrypted"] == true).count();
    let s: Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    eprintln!("sample: {decrypted} decrypted transactions in {} sessions", s["tls_decrypted"]);
    assert!(decrypted > 0 && s["tls_decrypted"].as_u64().unwrap() > 0);
    let dump = tls_dump(&store);
    assert!(dump.iter().any(|d| d["sessions_decrypted"].as_u64().unwrap() > 0));

    // every secret altered: the sessions are tried, fail authentication, and are counted
    let text = std::fs::read_to_string(fixture("sample.keylog")).unwrap();
    let bad: String = text
        .lines()
        .map(|l| {
            let mut p: Vec<String> = l.split(' ').map(str::to_string).collect();
            if let Some(last) = p.last_mut() {
                *last = last.chars().map(|c| if c == '0' { '1' } else { '0' }).collect();
            }
            p.join(" ") + "\n"
        })
        .collect();
    let bad_log = dir.path().join("bad.keylog");
    std::fs::write(&bad_log, bad).unwrap();
    let (store2, ev2, stats2) = (dir.path().join("store2"), dir.path().join("ev2.jsonl"), dir.path().join("stats2.json"));
    replay(&store2, &fixture("sample.pcap"), Some(&bad_log), &ev2, &stats2);
    assert_eq!(transactions(&ev2).iter().filter(|e| e["unmapped"]["decrypted"] == true).count(), 0);
    let dump2 = tls_dump(&store2);
    let failed: u64 = dump2.iter().map(|d| d["sessions_failed"].as_u64().unwrap()).sum();
    assert!(failed > 0, "{dump2:?}");
    assert!(dump2.iter().any(|d| d["failures"].as_object().unwrap().keys().any(|k| k.contains("authentication failed"))), "{dump2:?}");
    // and without the plaintext, the plaintext requests are all still there
    assert_eq!(transactions(&ev2).len() + decrypted, transactions(&ev).len());
}
