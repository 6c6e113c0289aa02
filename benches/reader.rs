//! Capture-file readers alone: apitap's own reader (`capture::replay_file`,
//! used by `replay`: a regular file mapped into memory), the same reader fed
//! by `read(2)` (as pipes are), and libpcap's offline reader, on the same
//! file, each touching every packet byte (a checksum) and nothing else.
//!
//! cargo bench --bench reader                                   # fixtures/sample.pcap
//! APITAP_BENCH_PCAP=/path/large.pcap APITAP_BENCH_ROUNDS=3 cargo bench --bench reader
//!
//! Prints MB/s per round and the median per reader.

use std::path::PathBuf;
use std::time::Instant;

use apitap::capture;

fn main() {
    let pcap = std::env::var("APITAP_BENCH_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample.pcap"));
    let rounds: usize = std::env::var("APITAP_BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let size = std::fs::metadata(&pcap).map(|m| m.len()).unwrap_or(0) as f64;
    // page cache warm for both alike
    let _ = std::fs::read(&pcap);
    for name in ["apitap reader", "apitap read(2)", "libpcap"] {
        let mut rates = Vec::new();
        for _ in 0..rounds {
            let mut sum = 0u64;
            let t0 = Instant::now();
            let mut visit = |_: apitap::decode::LinkType, ts: u64, f: &[u8]| sum = sum.wrapping_add(ts).wrapping_add(f.iter().map(|b| u64::from(*b)).sum::<u64>());
            let rep = match name {
                "libpcap" => capture::replay_file_libpcap(&pcap, visit),
                "apitap read(2)" => capture::replay_file_read(&pcap, &mut visit, |_| {}),
                _ => capture::replay_file(&pcap, &mut visit, |_| {}),
            }
            .expect("read the capture");
            let secs = t0.elapsed().as_secs_f64();
            rates.push(size / 1e6 / secs);
            println!("{name:14} {} packets in {secs:.3} s: {:.0} MB/s (checksum {sum:x})", rep.packets, size / 1e6 / secs);
        }
        rates.sort_by(f64::total_cmp);
        println!("{name:14} median {:.0} MB/s over {rounds} rounds", rates[rates.len() / 2]);
    }
}
