//! Sensitive-data scan cost on adversarial bodies: runs of candidate starts
//! that a naive scanner would re-examine from every position. For each
//! pattern and content type it prints MB/s at 8 KiB and 64 KiB and the ratio
//! of the per-byte costs (about 1 when the scan is linear, about 8 when it
//! is quadratic).
//!
//! cargo bench --bench scan

use std::time::Instant;

use apitap::analyze::fingerprint::{Fingerprinter, KEY_LEN};
use apitap::analyze::sensitive::{scan_response, ScanLimits, ScanStats};
use apitap::proto::{BodyInfo, Header, HttpTransaction};

fn tx(ct: &str, body: &[u8]) -> HttpTransaction {
    HttpTransaction {
        host: Some("bench.test".into()),
        response_headers: vec![Header { name: "content-type".into(), value: ct.as_bytes().into() }],
        status: Some(200),
        response_body: BodyInfo { length: body.len() as u64, sample: body.to_vec(), gap_bytes: 0 },
        ..HttpTransaction::new("10.0.0.1:40000".parse().expect("address"), "10.0.0.2:80".parse().expect("address"), "GET", "/")
    }
}

fn secs_per_byte(ct: &str, unit: &str, size: usize, limits: &ScanLimits, fp: &Fingerprinter) -> f64 {
    let t = tx(ct, unit.repeat(size / unit.len()).as_bytes());
    let rounds = (4 << 20) / size;
    let mut stats = ScanStats::default();
    let t0 = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(scan_response(&t, limits, fp, &mut stats));
    }
    t0.elapsed().as_secs_f64() / (rounds * size) as f64
}

fn main() {
    let units: &[&str] = &[
        "-eyJ", "-xoxb", "-ghp_", "+1( ", "://", "a@", "@a", "4111 ", "-----BEGIN PRIVATE KEY-----", "<a b=", "\"a\":", "[", "{\"a\":",
        "AKIA", "DE89 ", "123-45-", "1.2.3.", "12 Maple ", "--a\r\n", "&#", "\\u00", "a,", "\"",
    ];
    let limits = ScanLimits::default();
    let fp = Fingerprinter::new([1; KEY_LEN]);
    let mut worst = 0.0f64;
    for u in units {
        for ct in ["text/plain", "application/json", "text/html", "text/csv", "multipart/form-data; boundary=a", "application/x-www-form-urlencoded"] {
            let small = secs_per_byte(ct, u, 8 * 1024, &limits, &fp);
            let big = secs_per_byte(ct, u, 64 * 1024, &limits, &fp);
            let ratio = big / small;
            worst = worst.max(ratio);
            println!("{:<32} {:<34} {:8.1} MB/s at 8 KiB {:8.1} MB/s at 64 KiB  per-byte ratio {ratio:.2}", format!("{u:?}"), ct, 1e-6 / small, 1e-6 / big);
        }
    }
    println!("worst per-byte cost ratio 64 KiB / 8 KiB: {worst:.2} (1 = linear, 8 = quadratic)");
}
