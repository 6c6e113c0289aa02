//! Findings against the generator's ground truth: shadow and zombie
//! endpoints from the spec, each attack of the truth's `attacks[]` found
//! with its attacker and inside its observed window, no attack finding on a
//! client the truth does not list as an attacker, no attack findings on the
//! attack-free capture; durability (reopen, second replay, baseline
//! resolution and reopening), drift against a baseline, and the OCSF form.
//!
//! The bundled fixture always runs; `../shared/trafficgen` captures run when present.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn replay(store: &Path, pcap: &Path, spec: &Path, events: Option<&Path>, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["replay", "--store", store.to_str().unwrap(), "--spec", spec.to_str().unwrap()];
    if let Some(e) = events {
        args.extend(["--events", e.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    args.push(pcap.to_str().unwrap());
    run_ok(&args)
}

fn findings(store: &Path, all: bool) -> Vec<Value> {
    let mut args = vec!["findings", "--store", store.to_str().unwrap(), "--format", "json"];
    if all {
        args.push("--all");
    }
    let o = run_ok(&args);
    serde_json::from_slice::<Value>(&o.stdout).unwrap().as_array().cloned().unwrap()
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

type Ep = (String, String, String);

fn ep(f: &Value) -> Ep {
    (s(&f["host"]), s(&f["method"]), norm_template(&s(&f["path"])))
}

/// Scores the findings of one capture against its truth; returns the
/// per-kind table lines and asserts the acceptance rules.
fn score(name: &str, truth_path: &Path, fs: &[Value]) {
    let truth: Value = serde_json::from_slice(&std::fs::read(truth_path).unwrap()).unwrap();
    let observed = |e: &Value| e["observed"]["requests"].as_u64().unwrap_or(0) > 0;
    let endpoints = truth["endpoints"].as_array().unwrap();
    let key = |e: &Value| (s(&e["host"]), s(&e["method"]), norm_template(&s(&e["path"])));
    let want_shadow: BTreeSet<Ep> = endpoints.iter().filter(|e| e["documented"] == false && observed(e)).map(key).collect();
    let want_zombie: BTreeSet<Ep> = endpoints.iter().filter(|e| e["deprecated"] == true && observed(e)).map(key).collect();
    let got = |kind: &str| -> BTreeSet<Ep> { fs.iter().filter(|f| f["kind"] == kind).map(ep).collect() };
    let (got_shadow, got_zombie) = (got("shadow_api"), got("zombie_api"));
    let pr = |want: &BTreeSet<Ep>, got: &BTreeSet<Ep>| {
        let tp = want.intersection(got).count() as f64;
        (if got.is_empty() { 1.0 } else { tp / got.len() as f64 }, if want.is_empty() { 1.0 } else { tp / want.len() as f64 })
    };
    let (p, r) = pr(&want_shadow, &got_shadow);
    eprintln!("{name}: shadow_api   precision {p:.3} recall {r:.3} (truth {}, found {})", want_shadow.len(), got_shadow.len());
    let (p, r) = pr(&want_zombie, &got_zombie);
    eprintln!("{name}: zombie_api   precision {p:.3} recall {r:.3} (truth {}, found {})", want_zombie.len(), got_zombie.len());
    assert_eq!(got_shadow, want_shadow, "{name}: shadow_api endpoints");
    assert_eq!(got_zombie, want_zombie, "{name}: zombie_api endpoints");

    // posture kinds the truth states per endpoint (seen in cleartext)
    let plain = |e: &Value| {
        let bp = &e["observed"]["by_protocol"];
        bp["http1"].as_u64().unwrap_or(0) + bp["h2c"].as_u64().unwrap_or(0) > 0
    };
    let leaks = |e: &Value| e["resp_sensitive"].as_array().unwrap().iter().any(|k| k != "jwt");
    let posture: [(&str, Box<dyn Fn(&Value) -> bool>); 3] = [
        ("unauthenticated_sensitive_data", Box::new(|e: &Value| e["auth"] == "none" && leaks(e))),
        ("basic_auth_cleartext", Box::new(|e: &Value| e["auth"] == "basic")),
        ("credentials_in_url", Box::new(|e: &Value| e["auth"] == "api_key_query")),
    ];
    for (kind, rule) in &posture {
        let want: BTreeSet<Ep> = endpoints.iter().filter(|e| plain(e) && rule(e)).map(key).collect();
        let got = got(kind);
        let (p, r) = pr(&want, &got);
        eprintln!("{name}: {kind} precision {p:.3} recall {r:.3} (truth {}, found {})", want.len(), got.len());
        assert_eq!(got, want, "{name}: {kind} endpoints");
    }

    let attacks = truth["attacks"].as_array().unwrap();
    let attackers: BTreeSet<String> = attacks.iter().flat_map(|a| a["client_ips"].as_array().unwrap().iter().map(s)).collect();
    // every attack: its kind, naming its client, detected inside the window (−60 s, +300 s)
    for a in attacks {
        let kind = s(&a["type"]);
        let ips: BTreeSet<String> = a["client_ips"].as_array().unwrap().iter().map(s).collect();
        let start = a["observed_window"]["start"].as_f64().unwrap() - 60.0;
        let end = a["observed_window"]["end"].as_f64().unwrap() + 300.0;
        let hit = fs.iter().find(|f| {
            let t = f["detected_us"].as_u64().unwrap() as f64 / 1e6;
            let names = f["actor_ip"].as_str().is_some_and(|ip| ips.contains(ip))
                || f["clients"].as_array().unwrap().iter().any(|c| ips.contains(c.as_str().unwrap()));
            f["kind"] == kind.as_str() && names && t >= start && t <= end
        });
        eprintln!("{name}: attack {kind} from {ips:?}: {}", if hit.is_some() { "found" } else { "MISSED" });
        assert!(hit.is_some(), "{name}: attack {kind} from {ips:?} not reported inside its window");
    }
    // attack findings name attackers only; per kind: precision over actors
    let mut per_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for f in fs.iter().filter(|f| f["class"] == "detection_finding") {
        let actor = s(&f["actor_ip"]);
        let e = per_kind.entry(s(&f["kind"])).or_default();
        e.1 += 1;
        if attackers.contains(&actor) {
            e.0 += 1;
        }
    }
    for (k, (tp, n)) in &per_kind {
        eprintln!("{name}: {k:<20} attack findings {n}, naming an attacker {tp} (precision {:.3})", *tp as f64 / *n as f64);
    }
    let strays: Vec<String> =
        fs.iter().filter(|f| f["class"] == "detection_finding" && !attackers.contains(&s(&f["actor_ip"]))).map(|f| format!("{} {}", f["kind"], f["actor_ip"])).collect();
    assert!(strays.is_empty(), "{name}: attack findings naming clients that are not attackers: {strays:?}");
}

#[test]
fn bundled_sample_findings_match_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    replay(&store, &fixture("sample.pcap"), &fixture("sample.openapi.json"), None, &[]);
    score("sample", &fixture("sample.truth.json"), &findings(&store, false));
}

#[test]
fn trafficgen_small_findings_match_ground_truth_and_benign_has_no_attacks() {
    let Some(shared) = shared() else { return };
    let tg = shared.join("trafficgen");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("small");
    replay(&store, &tg.join("small.pcap"), &tg.join("openapi.json"), None, &[]);
    score("small", &tg.join("small.truth.json"), &findings(&store, false));

    let store = dir.path().join("benign");
    replay(&store, &tg.join("benign.pcap"), &tg.join("openapi.json"), None, &[]);
    let fs = findings(&store, false);
    let attacks: Vec<String> = fs.iter().filter(|f| f["class"] == "detection_finding").map(|f| format!("{} {}", f["kind"], f["actor_ip"])).collect();
    eprintln!("benign: {} findings, {} attack findings", fs.len(), attacks.len());
    assert!(attacks.is_empty(), "benign capture gave attack findings: {attacks:?}");
    score("benign", &tg.join("benign.truth.json"), &fs);
}

#[test]
fn findings_are_durable_not_duplicated_resolved_by_a_baseline_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let (pcap, spec) = (fixture("sample.pcap"), fixture("sample.openapi.json"));
    let ev1 = dir.path().join("ev1.jsonl");
    replay(&store, &pcap, &spec, Some(&ev1), &[]);
    let first = findings(&store, false);
    assert!(!first.is_empty());
    let uid_set = |fs: &[Value]| fs.iter().map(|f| s(&f["uid"])).collect::<BTreeSet<_>>();
    // one event per finding, every one a Create
    let finding_events: Vec<Value> = read_jsonl(&ev1).into_iter().filter(|e| e["class_uid"] == 2004 || e["class_uid"] == 2007).collect();
    assert_eq!(finding_events.iter().map(|e| s(&e["finding_info"]["uid"])).collect::<BTreeSet<_>>(), uid_set(&first));
    assert_eq!(finding_events.len(), first.len(), "one event per new finding");
    assert!(finding_events.iter().all(|e| e["activity_id"] == 1));
    // the same fields in the event and in `apitap findings --format json`
    for e in &finding_events {
        let f = first.iter().find(|f| f["uid"] == e["finding_info"]["uid"]).unwrap();
        assert_eq!(e["finding_info"]["types"][0], f["kind"]);
        assert_eq!(e["severity_id"], f["severity_id"]);
        assert_eq!(e["resources"][0]["data"]["path_template"], f["path"]);
        assert_eq!(e["resources"][0]["data"]["method"], f["method"]);
        assert_eq!(e["resources"][0]["hostname"], f["host"]);
        if e["class_uid"] == 2004 {
            assert_eq!(e["evidences"][0]["src_endpoint"]["ip"], f["actor_ip"]);
        }
    }

    // a second replay of the same capture: same findings, no new events
    let ev2 = dir.path().join("ev2.jsonl");
    replay(&store, &pcap, &spec, Some(&ev2), &[]);
    let second = findings(&store, false);
    assert_eq!(uid_set(&second), uid_set(&first), "a second replay must not add findings");
    assert!(!read_jsonl(&ev2).iter().any(|e| e["class_uid"] == 2004 || e["class_uid"] == 2007), "no finding events for known open findings");
    for f in &second {
        let before = first.iter().find(|g| g["uid"] == f["uid"]).unwrap();
        assert_eq!(f["count"].as_u64().unwrap(), 2 * before["count"].as_u64().unwrap(), "counts add up: {}", f["uid"]);
    }

    // a baseline resolves them; the next replay reopens them (activity Update)
    let o = run_ok(&["baseline", "save", "approved", "--store", store.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("{} open finding(s) resolved", first.len())));
    assert!(findings(&store, false).is_empty(), "no open findings after the baseline");
    assert_eq!(findings(&store, true).len(), first.len());
    let ev3 = dir.path().join("ev3.jsonl");
    replay(&store, &pcap, &spec, Some(&ev3), &[]);
    let reopened: Vec<Value> = read_jsonl(&ev3).into_iter().filter(|e| e["class_uid"] == 2004 || e["class_uid"] == 2007).collect();
    assert_eq!(reopened.len(), first.len());
    assert!(reopened.iter().all(|e| e["activity_id"] == 2));
    assert!(findings(&store, false).iter().all(|f| f["reopened"] == 1));
}

#[test]
fn drift_against_a_baseline_lists_exactly_the_endpoints_the_truths_differ_by() {
    let Some(shared) = shared() else { return };
    let tg = shared.join("trafficgen");
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let spec = tg.join("openapi.json");
    replay(&store, &tg.join("benign.pcap"), &spec, None, &[]);
    run_ok(&["baseline", "save", "benign", "--store", store.to_str().unwrap()]);
    let ev = dir.path().join("ev.jsonl");
    replay(&store, &tg.join("small.pcap"), &spec, Some(&ev), &["--baseline", "benign"]);
    let o = run_ok(&["drift", "--store", store.to_str().unwrap(), "--baseline", "benign", "--format", "json"]);
    let drift: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    let new: BTreeSet<Ep> = drift.iter().filter(|d| d["change"] == "new_endpoint").map(ep).collect();
    // ground truth: endpoints answered (not 404) in small and not in benign
    let answered = |p: &str| -> BTreeSet<Ep> {
        let t: Value = serde_json::from_slice(&std::fs::read(tg.join(p)).unwrap()).unwrap();
        t["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                let bp = &e["observed"]["by_protocol"];
                let plain = bp["http1"].as_u64().unwrap_or(0) + bp["h2c"].as_u64().unwrap_or(0) > 0;
                plain && e["observed"]["by_status"].as_object().unwrap().keys().any(|k| k != "404")
            })
            .map(|e| (s(&e["host"]), s(&e["method"]), norm_template(&s(&e["path"]))))
            .collect()
    };
    let want: BTreeSet<Ep> = answered("small.truth.json").difference(&answered("benign.truth.json")).cloned().collect();
    eprintln!("drift: new endpoints {new:?}, truth {want:?}");
    assert!(!want.is_empty());
    assert_eq!(new, want, "new endpoints must be exactly the truth's difference (404-only paths are not endpoints)");
    // drift was also reported while running, as posture findings
    let live: BTreeSet<Ep> = read_jsonl(&ev)
        .iter()
        .filter(|e| e["class_uid"] == 2007 && e["finding_info"]["types"][0] == "drift_new_endpoint")
        .map(|e| (s(&e["resources"][0]["hostname"]), s(&e["resources"][0]["data"]["method"]), norm_template(&s(&e["resources"][0]["data"]["path_template"]))))
        .collect();
    assert!(want.is_subset(&live), "live drift events {live:?} miss some of {want:?}");
    // and the report's KPIs carry the drift detection time
    let o = run_ok(&["report", "--store", store.to_str().unwrap(), "--spec", spec.to_str().unwrap(), "--format", "json"]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["drift_findings"].as_u64().unwrap() >= want.len() as u64);
    assert!(r["mean_time_to_drift_detection_ms"].as_f64().is_some());
    assert!(r["share_documented"].as_f64().unwrap() < 1.0, "shadow endpoints make the documented share below 1");
}

#[test]
fn finding_events_are_valid_ocsf() {
    let Some(shared) = shared() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let ev = dir.path().join("ev.jsonl");
    replay(&store, &fixture("sample.pcap"), &fixture("sample.openapi.json"), Some(&ev), &[]);
    let only = dir.path().join("findings.jsonl");
    let lines: Vec<String> = read_jsonl(&ev).iter().filter(|e| e["class_uid"] == 2004 || e["class_uid"] == 2007).map(|e| e.to_string()).collect();
    assert!(lines.iter().any(|l| l.contains("\"class_uid\":2004")) && lines.iter().any(|l| l.contains("\"class_uid\":2007")));
    std::fs::write(&only, lines.join("\n") + "\n").unwrap();
    let o = std::process::Command::new("python3").arg(shared.join("tools/ocsf-validate")).arg(&only).output().expect("python3");
    let out = String::from_utf8_lossy(&o.stdout);
    eprintln!("{out}");
    assert!(o.status.success(), "ocsf-validate: {out}");
}

#[test]
fn report_has_the_kpis_and_orphans_and_bad_specs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let spec = fixture("sample.openapi.json");
    replay(&store, &fixture("sample.pcap"), &spec, None, &[]);
    let o = run_ok(&["report", "--store", store.to_str().unwrap(), "--spec", spec.to_str().unwrap(), "--format", "json"]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let n = run_ok(&["dump", "--store", store.to_str().unwrap(), "--format", "json"]);
    let dumped: Vec<Value> = serde_json::from_slice(&n.stdout).unwrap();
    assert_eq!(r["endpoints_inventoried"].as_u64().unwrap() as usize, dumped.len());
    assert_eq!(r["endpoints"].as_array().unwrap().len(), dumped.len());
    let exposing = dumped.iter().filter(|e| !e["response_sensitive"].as_array().unwrap().is_empty()).count();
    assert_eq!(r["endpoints_exposing_sensitive_data"].as_u64().unwrap() as usize, exposing);
    assert!(r["endpoints"].as_array().unwrap().windows(2).all(|w| w[0]["risk_score"].as_u64() >= w[1]["risk_score"].as_u64()));
    // orphans: documented operations the truth says were never requested in cleartext
    let truth: Value = serde_json::from_slice(&std::fs::read(fixture("sample.truth.json")).unwrap()).unwrap();
    let never: BTreeSet<(String, String)> = truth["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["documented"] == true)
        .filter(|e| {
            let bp = &e["observed"]["by_protocol"];
            bp["http1"].as_u64().unwrap_or(0) + bp["h2c"].as_u64().unwrap_or(0) == 0
        })
        .map(|e| (s(&e["method"]), norm_template(&s(&e["path"]))))
        .collect();
    let orphans: BTreeSet<(String, String)> = r["orphan_operations"].as_array().unwrap().iter().map(|o| (s(&o["method"]), norm_template(&s(&o["path"])))).collect();
    assert_eq!(orphans, never, "orphan operations");
    for fmt in ["table", "markdown"] {
        let o = run_ok(&["report", "--store", store.to_str().unwrap(), "--format", fmt]);
        assert!(String::from_utf8_lossy(&o.stdout).contains("Endpoints inventoried"));
    }
    // a spec that is not OpenAPI, and a missing one, stop the run with a message
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"info\": {}}").unwrap();
    let o = run(&["replay", "--store", dir.path().join("s2").to_str().unwrap(), "--spec", bad.to_str().unwrap(), fixture("sample.pcap").to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("not an OpenAPI"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["replay", "--store", dir.path().join("s3").to_str().unwrap(), "--spec", "/nonexistent.yaml", fixture("sample.pcap").to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("cannot read API specification"));
    let o = run(&["replay", "--store", store.to_str().unwrap(), "--baseline", "nope", fixture("sample.pcap").to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("apitap baseline save nope"));
}
