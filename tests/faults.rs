//! Faults: `kill -9` in the middle of a replay (what was flushed stays, the
//! store reopens and takes the next replay), and a store on a full
//! filesystem (a clear error, and a store that works once there is room).
//! The full-filesystem test mounts a small tmpfs, so it needs root; it skips
//! with a notice otherwise, and `APITAP_REQUIRE_LIVE=1` (CI) makes it mandatory.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Requests per endpoint in a store (read-only open, works beside a writer).
fn requests(store: &Path) -> BTreeMap<String, u64> {
    let o = run(&["dump", "--store", store.to_str().unwrap(), "--format", "json"]);
    if !o.status.success() {
        return BTreeMap::new();
    }
    let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v.iter().map(|e| (format!("{} {}{}", e["method"].as_str().unwrap_or(""), e["host"].as_str().unwrap_or(""), e["path"].as_str().unwrap_or("")), e["requests"].as_u64().unwrap_or(0))).collect()
}

#[test]
fn kill_9_mid_replay_keeps_what_was_flushed_and_the_store_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(&cfg, "[store]\nflush_interval_secs = 1\n").unwrap();
    let fifo = dir.path().join("capture.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut child = Command::new(bin())
        .args(["replay", "--no-progress", "--config", cfg.to_str().unwrap(), "--store", store.to_str().unwrap(), fifo.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pcap = std::fs::read(fixture("sample.pcap")).unwrap();
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(&pcap[..pcap.len() / 2]).unwrap();
    w.flush().unwrap();
    // wait for a flush to be visible, then kill the writer without warning
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut flushed = requests(&store);
    while flushed.is_empty() {
        assert!(Instant::now() < deadline, "nothing was flushed to the store");
        std::thread::sleep(Duration::from_millis(100));
        flushed = requests(&store);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let flushed = requests(&store);
    child.kill().unwrap();
    let _ = child.wait();
    drop(w);
    let after = requests(&store);
    eprintln!("flushed before the kill: {} endpoints, {} requests; after: {} endpoints", flushed.len(), flushed.values().sum::<u64>(), after.len());
    for (ep, n) in &flushed {
        assert!(after.get(ep).copied().unwrap_or(0) >= *n, "{ep}: {n} requests flushed before the kill, {:?} after", after.get(ep));
    }
    // the store opens for writing again and takes a whole replay
    run_ok(&["replay", "--no-progress", "--store", store.to_str().unwrap(), fixture("sample.pcap").to_str().unwrap()]);
    let end = requests(&store);
    for (ep, n) in &after {
        assert!(end.get(ep).copied().unwrap_or(0) >= *n, "{ep} lost requests after the second replay");
    }
    assert!(end.values().sum::<u64>() > after.values().sum::<u64>());
    run_ok(&["findings", "--store", store.to_str().unwrap()]);
}

fn root_or_skip() -> bool {
    let uid = Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false);
    if !uid {
        assert!(
            !std::env::var("APITAP_REQUIRE_LIVE").is_ok_and(|v| v == "1"),
            "the full-filesystem test is required (APITAP_REQUIRE_LIVE=1) but needs root to mount a tmpfs"
        );
        eprintln!("notice: skipping: mounting a small tmpfs needs root");
    }
    uid
}

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_store_on_a_full_filesystem_fails_clearly_and_recovers() {
    if !root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    assert!(Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(&mnt).status().unwrap().success());
    let _m = Mount(mnt.clone());
    let store = mnt.join("store");
    // fill what the store's first files leave free
    let o = run(&["replay", "--no-progress", "--store", store.to_str().unwrap(), fixture("sample.pcap").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    let filler = mnt.join("filler");
    if o.status.success() {
        // the store fit: take the rest of the space and replay again
        let _ = std::fs::write(&filler, vec![0u8; 4 << 20]);
        let o2 = run(&["replay", "--no-progress", "--store", store.to_str().unwrap(), fixture("sample.pcap").to_str().unwrap()]);
        let err2 = String::from_utf8_lossy(&o2.stderr);
        assert!(!o2.status.success(), "a replay into a full filesystem must fail: {err2}");
        eprintln!("full filesystem: {err2}");
        assert!(err2.contains("No space left on device") && err2.contains("the filesystem is full: free space"), "{err2}");
    } else {
        eprintln!("full filesystem: {err}");
        assert!(err.contains("No space left on device") && err.contains("the filesystem is full: free space"), "the error says the disk is full and what to do: {err}");
        assert_eq!(o.status.code(), Some(1), "{err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    // with room again the same store opens, keeps what it had and takes a replay
    let _ = std::fs::remove_file(&filler);
    assert!(Command::new("mount").args(["-o", "remount,size=256m"]).arg(&mnt).status().unwrap().success());
    let before = requests(&store);
    run_ok(&["replay", "--no-progress", "--store", store.to_str().unwrap(), fixture("sample.pcap").to_str().unwrap()]);
    let after = requests(&store);
    for (ep, n) in &before {
        assert!(after.get(ep).copied().unwrap_or(0) >= *n, "{ep} lost requests");
    }
    assert!(!after.is_empty());
}
