//! Replays the committed fuzz inputs as an ordinary test: every file under
//! `fuzz/seeds/<target>/` and `fuzz/regressions/<target>/` goes through the
//! same entry point as the cargo-fuzz target of that name (the code is shared:
//! `fuzz/harness.rs`). None may panic, and every failing file is reported, not
//! just the first.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
    v.sort();
    v
}

fn replay(kind: &str) -> (usize, Vec<String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind);
    let mut ran = 0;
    let mut failures = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&root) {
        for d in rd.flatten() {
            let name = d.file_name().to_string_lossy().into_owned();
            if d.path().is_dir() && !harness::TARGETS.iter().any(|(t, _)| *t == name) {
                failures.push(format!("{kind}/{name}: no fuzz target of that name"));
            }
        }
    }
    for (target, run) in harness::TARGETS {
        for path in files(&root.join(target)) {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            ran += 1;
            if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                failures.push(format!("{kind}/{target}/{}", path.file_name().unwrap_or_default().to_string_lossy()));
            }
        }
    }
    (ran, failures)
}

#[test]
fn fuzz_seeds_replay_without_panic() {
    let (ran, failures) = replay("seeds");
    assert!(ran > 0, "no seeds under fuzz/seeds");
    assert!(failures.is_empty(), "{} of {ran} seeds panicked:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn fuzz_regressions_replay_without_panic() {
    let (ran, failures) = replay("regressions");
    assert!(failures.is_empty(), "{} of {ran} regression inputs panicked:\n{}", failures.len(), failures.join("\n"));
}

/// Every target has committed seeds, so each entry point runs in CI.
#[test]
fn every_fuzz_target_has_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("seeds");
    for (target, _) in harness::TARGETS {
        let n = files(&root.join(target)).len();
        assert!(n > 0, "fuzz/seeds/{target} is empty");
        assert!(n <= 50, "fuzz/seeds/{target} holds {n} files; keep at most 50");
    }
}

/// The `auth` target's contract accepts exactly the two shapes the redaction
/// makes (checked against `fingerprint::redact` itself) and rejects samples
/// that show more of a value.
#[test]
fn auth_contract_accepts_the_redaction_and_rejects_longer_reveals() {
    use apitap::analyze::fingerprint::redact;
    for v in ["short", "4111111111111111", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "ab…cd (11 chars)…(11", "ééééééééééééééééé"] {
        let s = redact(v, 4);
        assert!(harness::redaction_is_bounded(&s), "{v:?} -> {s:?} refused");
    }
    for bad in [
        "4111111111111111",
        "41111…1111 (16 chars)",
        "4111…1111 (15 chars)",
        "4111…1111 (x chars)",
        "4111-1111 (16 chars)",
        "<redacted 6 chars",
        "",
    ] {
        assert!(!harness::redaction_is_bounded(bad), "{bad:?} accepted");
    }
}
