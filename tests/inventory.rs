//! The inventory against the generator's ground truth (fixtures/sample.truth.json):
//! path templates, authentication, sensitive data; the OpenAPI export checked by
//! an independent validator; and no credential anywhere in the store or exports.

mod common;

use common::*;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;


fn replay(store: &Path, extra: &[&str]) {
    let mut args = vec!["replay", "--store", store.to_str().unwrap()];
    args.extend_from_slice(extra);
    let f = fixture("sample.pcap");
    args.push(f.to_str().unwrap());
    run_ok(&args);
}

fn dump(store: &Path) -> Vec<serde_json::Value> {
    let o = run_ok(&["dump", "--store", store.to_str().unwrap(), "--format", "json"]);
    serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap().as_array().cloned().unwrap()
}

type Key = (String, String, String);

#[test]
fn templates_auth_and_sensitive_data_match_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    replay(&store, &[]);
    let d = dump(&store);
    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture("sample.truth.json")).unwrap()).unwrap();
    let mut t: HashMap<Key, &serde_json::Value> = HashMap::new();
    let mut plaintext = Vec::new();
    for e in truth["endpoints"].as_array().unwrap() {
        let k = (e["host"].as_str().unwrap().to_string(), e["method"].as_str().unwrap().to_string(), norm_template(e["path"].as_str().unwrap()));
        let bp = &e["observed"]["by_protocol"];
        if bp["http1"].as_u64().unwrap_or(0) + bp["h2c"].as_u64().unwrap_or(0) > 0 {
            plaintext.push(k.clone());
        }
        t.insert(k, e);
    }
    let mut dumped: HashMap<Key, &serde_json::Value> = HashMap::new();
    for e in &d {
        let k = (e["host"].as_str().unwrap().to_string(), e["method"].as_str().unwrap().to_string(), norm_template(e["path"].as_str().unwrap()));
        assert!(dumped.insert(k.clone(), e).is_none(), "template listed twice: {k:?}");
    }
    // templates
    let found: Vec<&Key> = plaintext.iter().filter(|k| dumped.contains_key(*k)).collect();
    let recall = found.len() as f64 / plaintext.len() as f64;
    let answered: Vec<&Key> = dumped
        .iter()
        .filter(|(_, e)| e["statuses"].as_object().unwrap().keys().any(|s| s.starts_with('2') || s.starts_with('3')))
        .map(|(k, _)| k)
        .collect();
    let precision = answered.iter().filter(|k| t.contains_key(**k)).count() as f64 / answered.len() as f64;
    eprintln!("templates: recall {recall:.3} ({} of {}), precision {precision:.3} ({} answered)", found.len(), plaintext.len(), answered.len());
    assert!(recall >= 0.95 && precision >= 0.95);
    // authentication
    let auth_ok = found
        .iter()
        .filter(|k| {
            let want = t[**k]["auth"].as_str().unwrap();
            let got: Vec<&str> = dumped[**k]["auth"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            if want == "none" { got == ["none"] } else { got.contains(&want) }
        })
        .count() as f64
        / found.len() as f64;
    eprintln!("auth: {auth_ok:.3}");
    assert!(auth_ok >= 0.95);
    // response sensitive kinds
    let (mut tp, mut total, mut false_kinds) = (0, 0, Vec::new());
    for k in &found {
        let want: BTreeSet<&str> = t[*k]["resp_sensitive"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let got: BTreeSet<&str> = dumped[*k]["response_sensitive"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        total += want.len();
        tp += want.intersection(&got).count();
        if want.is_empty() && !got.is_empty() {
            false_kinds.push((k, got));
        }
    }
    let sens_recall = tp as f64 / total as f64;
    eprintln!("response sensitive kinds: recall {sens_recall:.3} ({tp} of {total}); endpoints with kinds but none in truth: {false_kinds:?}");
    assert!(sens_recall >= 0.9);
    assert!(false_kinds.is_empty());
}

#[test]
fn openapi_export_validates() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    replay(&store, &[]);
    let out = dir.path().join("openapi.json");
    run_ok(&["openapi", "--store", store.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v2/users/{id}"]["get"]["parameters"][0]["schema"]["type"] == "integer");
    let one_host = dir.path().join("api.json");
    run_ok(&["openapi", "--store", store.to_str().unwrap(), "--host", "api.shop.test", "-o", one_host.to_str().unwrap()]);
    for f in [&out, &one_host] {
        let v = std::process::Command::new("python3").args(["-m", "openapi_spec_validator"]).arg(f).output().expect("python3");
        let text = String::from_utf8_lossy(&v.stdout).to_string() + &String::from_utf8_lossy(&v.stderr);
        if text.contains("No module named openapi_spec_validator") {
            if std::env::var("APITAP_REQUIRE_SHARED").is_ok_and(|x| x == "1") {
                panic!("openapi-spec-validator is required (pip install openapi-spec-validator)");
            }
            eprintln!("notice: skipping validation: pip install openapi-spec-validator");
            return;
        }
        assert!(v.status.success(), "{} does not validate: {text}", f.display());
    }
}

/// Every file under `dir`, recursively, as bytes.
fn all_bytes(dir: &Path, out: &mut Vec<(std::path::PathBuf, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            all_bytes(&p, out);
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
        }
    }
}

#[test]
fn no_credential_in_the_store_or_any_export() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let ev = dir.path().join("ev.jsonl");
    replay(&store, &["--transactions", "--events", ev.to_str().unwrap()]);
    let o = run_ok(&["dump", "--store", store.to_str().unwrap(), "--format", "json"]);
    std::fs::write(dir.path().join("dump.json"), &o.stdout).unwrap();
    let o = run_ok(&["dump", "--store", store.to_str().unwrap()]);
    std::fs::write(dir.path().join("dump.txt"), &o.stdout).unwrap();
    run_ok(&["openapi", "--store", store.to_str().unwrap(), "-o", dir.path().join("openapi.json").to_str().unwrap()]);
    // RocksDB compresses its tables: flush is done at exit, and values are
    // also checked through the library, uncompressed
    let truth: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture("sample.truth.json")).unwrap()).unwrap();
    let mut secrets = Vec::new();
    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if s.len() >= 8 && !s.contains('@') && s != "legacy-app" => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
    collect(&truth["credentials"], &mut secrets);
    // the Basic header values are "Basic <b64>": the base64 part alone is the secret
    let extra: Vec<String> = secrets.iter().filter_map(|s| s.strip_prefix("Basic ").map(String::from)).collect();
    secrets.extend(extra);
    assert!(secrets.len() >= 10);
    let mut files = Vec::new();
    all_bytes(dir.path(), &mut files);
    assert!(files.len() > 5);
    for (path, bytes) in &files {
        for s in &secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "credential {s} found in {}",
                path.display()
            );
        }
    }
    // and through the store's own reader (values uncompressed)
    let st = apitap::store::Store::open(&store, apitap::store::Access::ReadOnly).unwrap();
    let text = serde_json::to_string(&st.endpoints().unwrap().iter().map(apitap::cli::endpoint_json).collect::<Vec<_>>()).unwrap();
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "credential {s} in a stored record");
    }
}
