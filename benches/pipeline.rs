//! Replay throughput harness: the whole pipeline (libpcap reader, decode,
//! sharding, workers, HTTP parsing, inventory, RocksDB) on a capture file.
//!
//! cargo bench --bench pipeline                          # fixtures/sample.pcap, 5 rounds
//! APITAP_BENCH_PCAP=/path/large.pcap APITAP_BENCH_ROUNDS=1 APITAP_BENCH_WORKERS=2 cargo bench --bench pipeline
//!
//! Prints MB/s and packets/s per round and the best round. Peak memory is
//! measured on the binary with `/usr/bin/time -v` (see the README).

use std::path::PathBuf;
use std::time::Instant;

use apitap::capture;
use apitap::config::Config;
use apitap::pipeline::{FullPolicy, Pipeline, PipelineOptions};
use apitap::store::{Access, Store};

fn main() {
    let pcap = std::env::var("APITAP_BENCH_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample.pcap"));
    let rounds: usize = std::env::var("APITAP_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let workers: usize = std::env::var("APITAP_BENCH_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    let transactions = std::env::var("APITAP_BENCH_TRANSACTIONS").is_ok_and(|v| v == "1");
    let cfg = Config::default();
    let mut best = 0.0f64;
    for round in 0..rounds {
        let dir = std::env::temp_dir().join(format!("apitap-bench-{}-{round}", std::process::id()));
        let store = std::sync::Arc::new(Store::open(&dir, Access::ReadWrite).expect("open bench store"));
        let sink = if transactions { Some(apitap::export::JsonLinesSink::open("/dev/null").expect("sink")) } else { None };
        let fingerprint_key = store.fingerprint_key().expect("fingerprint key");
        let opts = PipelineOptions { workers, fingerprint_key, transactions, policy: FullPolicy::Block, metrics: None, spec: Default::default(), baseline: None, keylog: None };
        let mut p = Pipeline::start(&cfg, &opts, store, sink).expect("start pipeline");
        let t0 = Instant::now();
        let rep = capture::replay_file(&pcap, &mut p, |_| {}).expect("replay");
        let totals = p.finish().expect("finish");
        let secs = t0.elapsed().as_secs_f64();
        let mbps = rep.bytes as f64 / secs / 1e6;
        best = best.max(mbps);
        println!(
            "round {round}: {} packets, {} bytes, {} transactions in {secs:.3}s: {mbps:.1} MB/s, {:.0} packets/s ({workers} workers)",
            rep.packets,
            rep.bytes,
            totals.proto["transactions"],
            rep.packets as f64 / secs
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!("best: {best:.1} MB/s on {}", pcap.display());
}
