//! Calibration against the fixture capture's ground truth (run by hand:
//! `cargo test --release --lib analyze::sensitive::calibrate -- --ignored --nocapture`).
//!
//! Replays `fixtures/sample.pcap` through the decode, flow and protocol
//! layers, scans every transaction, groups the kinds found by the truth's
//! endpoint templates and compares them with `resp_sensitive` and
//! `req_sensitive` in `fixtures/sample.truth.json`: recall, and every kind
//! found where the truth lists none.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::analyze::fingerprint::{Fingerprinter, KEY_LEN};
use crate::config::Config;
use crate::decode::{Decoded, Decoder, FlowKey, LinkType};
use crate::flow::{Chunk, Direction, FlowHandler, FlowTable};
use crate::proto::{Connection, ProtoConfig, ProtoStats};

struct Collect {
    cfg: ProtoConfig,
    stats: ProtoStats,
    txs: Vec<HttpTransaction>,
}

impl FlowHandler for Collect {
    type State = Connection;
    fn open(&mut self, _k: &FlowKey, client: SocketAddr, server: SocketAddr, midstream: bool, _ts: u64) -> Connection {
        Connection::new(client, server, midstream, &mut self.stats)
    }
    fn chunk(&mut self, s: &mut Connection, dir: Direction, chunk: Chunk<'_>, ts: u64) {
        s.on_chunk(dir, chunk, ts, &self.cfg, &mut self.stats, &mut self.txs);
    }
    fn close(&mut self, mut s: Connection, ts: u64) {
        s.on_close(ts, &self.cfg, &mut self.stats, &mut self.txs);
    }
}

/// The records of a classic pcap file: (link type, ts µs, frame).
fn pcap_records(b: &[u8]) -> (i32, Vec<(u64, &[u8])>) {
    let magic = b.get(..4).map(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]])).unwrap_or(0);
    let (le, nanos) = match magic {
        0xa1b2_c3d4 => (true, false),
        0xa1b2_3c4d => (true, true),
        0xd4c3_b2a1 => (false, false),
        0x4d3c_b2a1 => (false, true),
        _ => return (0, Vec::new()),
    };
    let u32at = |o: usize| {
        b.get(o..o + 4).map_or(0, |s| {
            let a = [s[0], s[1], s[2], s[3]];
            if le { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) }
        })
    };
    let link = u32at(20) as i32;
    let mut out = Vec::new();
    let mut o = 24usize;
    while o + 16 <= b.len() {
        let (sec, frac, incl) = (u64::from(u32at(o)), u64::from(u32at(o + 4)), u32at(o + 8) as usize);
        let us = if nanos { frac / 1000 } else { frac };
        let Some(frame) = b.get(o + 16..o + 16 + incl) else { break };
        out.push((sec * 1_000_000 + us, frame));
        o += 16 + incl;
    }
    (link, out)
}

/// The records of a pcapng file (enhanced and simple packet blocks), each
/// with its interface's link type; timestamps taken as microseconds.
fn pcapng_records(b: &[u8]) -> Vec<(i32, u64, &[u8])> {
    let mut out = Vec::new();
    let mut links: Vec<i32> = Vec::new();
    let mut le = true;
    let mut o = 0usize;
    let u32at = |b: &[u8], o: usize, le: bool| {
        b.get(o..o + 4).map_or(0, |s| {
            let a = [s[0], s[1], s[2], s[3]];
            if le { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) }
        })
    };
    while o + 12 <= b.len() {
        let btype = u32at(b, o, le);
        if btype == 0x0a0d_0d0a {
            le = b.get(o + 8..o + 12) == Some(&[0x4d, 0x3c, 0x2b, 0x1a][..]);
            links.clear();
        }
        let blen = u32at(b, o + 4, le) as usize;
        if blen < 12 || o + blen > b.len() {
            break;
        }
        match u32at(b, o, le) {
            1 => {
                let lt = b.get(o + 8..o + 10).map_or(0, |s| if le { u16::from_le_bytes([s[0], s[1]]) } else { u16::from_be_bytes([s[0], s[1]]) });
                links.push(i32::from(lt));
            }
            6 => {
                let ifc = u32at(b, o + 8, le) as usize;
                let ts = (u64::from(u32at(b, o + 12, le)) << 32) | u64::from(u32at(b, o + 16, le));
                let cap = u32at(b, o + 20, le) as usize;
                if let Some(frame) = b.get(o + 28..o + 28 + cap) {
                    out.push((links.get(ifc).copied().unwrap_or(1), ts, frame));
                }
            }
            3 => {
                let cap = blen.saturating_sub(16);
                if let Some(frame) = b.get(o + 12..o + 12 + cap) {
                    out.push((links.first().copied().unwrap_or(1), 0, frame));
                }
            }
            _ => {}
        }
        o += blen;
    }
    out
}

/// Transactions of a capture file, through the decode, flow and protocol layers.
fn transactions(bytes: &[u8]) -> Vec<HttpTransaction> {
    let cfg = Config::default();
    let mut decoder = Decoder::new(cfg.decode_limits());
    let mut table: FlowTable<Connection> = FlowTable::new(cfg.flow_limits());
    let mut h = Collect { cfg: ProtoConfig { http: cfg.http.clone(), http2: cfg.http2.clone(), keylog: None }, stats: ProtoStats::default(), txs: Vec::new() };
    let records: Vec<(i32, u64, &[u8])> = match pcap_records(bytes) {
        (0, _) => pcapng_records(bytes),
        (dlt, r) => r.into_iter().map(|(ts, f)| (dlt, ts, f)).collect(),
    };
    let mut last = 0;
    for (dlt, ts, frame) in records {
        last = last.max(ts);
        if let Decoded::Tcp(seg) = decoder.decode(LinkType::from_dlt(dlt), ts, frame) {
            table.process(&seg, ts, &mut h);
        }
    }
    table.flush_all(last, &mut h);
    h.txs
}

/// Every finding in the captures of `../shared/corpus` and trafficgen's
/// benign capture, for reading by eye (precision on traffic from elsewhere).
#[test]
#[ignore = "survey of ../shared captures; run by hand"]
fn survey_shared_corpus() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("shared");
    let mut files = Vec::new();
    for dir in ["corpus/dev", "corpus/test", "corpus", "trafficgen"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir)) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    let fp = Fingerprinter::new([1; KEY_LEN]);
    let limits = ScanLimits::default();
    let mut stats = ScanStats::default();
    let (mut txs_total, mut spent) = (0usize, Duration::ZERO);
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else { continue };
        let txs = transactions(&bytes);
        txs_total += txs.len();
        let mut lines: BTreeMap<String, (u64, String)> = BTreeMap::new();
        for tx in &txs {
            let t0 = Instant::now();
            let req = scan_request(tx, &limits, &fp, &mut stats);
            let resp = scan_response(tx, &limits, &fp, &mut stats);
            spent += t0.elapsed();
            let (path, _) = crate::analyze::split_target(&tx.method, &tx.target);
            let path: String = path.chars().take(60).collect();
            for (side, list) in [("req", &req), ("resp", &resp)] {
                for x in list.iter() {
                    let e = lines.entry(format!("  {side} {} {}", x.kind, x.location)).or_insert_with(|| (0, format!("{} [{} {path}]", x.redacted, tx.method)));
                    e.0 += 1;
                }
            }
        }
        if !lines.is_empty() {
            println!("{} ({} tx)", f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), txs.len());
            for (l, (n, example)) in lines.iter().take(40) {
                println!("{l} ×{n} e.g. {example}");
            }
            if lines.len() > 40 {
                println!("  … {} more", lines.len() - 40);
            }
        }
    }
    println!("{} files, {txs_total} transactions, {:.1} µs/transaction", files.len(), spent.as_secs_f64() * 1e6 / txs_total.max(1) as f64);
    println!("stats {}", serde_json::to_string(&stats).unwrap_or_default());
}

/// A truth template matches a path: same segment count, `{param}` matches any segment.
fn template_matches(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| (a.starts_with('{') && a.ends_with('}') && !b.is_empty()) || a == b)
}

#[derive(Default)]
struct Seen {
    txs: u64,
    req: BTreeMap<SensitiveKind, (u64, String)>,
    resp: BTreeMap<SensitiveKind, (u64, String)>,
}

fn note(m: &mut BTreeMap<SensitiveKind, (u64, String)>, f: &[Finding]) {
    for x in f {
        let e = m.entry(x.kind).or_insert_with(|| (0, format!("{} {}", x.location, x.redacted)));
        e.0 += 1;
    }
}

#[test]
#[ignore = "calibration run over fixtures/sample.pcap; run by hand"]
fn calibrate_sample_pcap() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let Ok(pcap) = std::fs::read(root.join("fixtures/sample.pcap")) else {
        eprintln!("fixtures/sample.pcap missing");
        return;
    };
    let truth: serde_json::Value = std::fs::read(root.join("fixtures/sample.truth.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let endpoints = truth["endpoints"].as_array().cloned().unwrap_or_default();

    let h = Collect { cfg: ProtoConfig { http: Config::default().http, http2: Config::default().http2, keylog: None }, stats: ProtoStats::default(), txs: transactions(&pcap) };

    let fp = Fingerprinter::new([1; KEY_LEN]);
    let limits = ScanLimits::default();
    let mut stats = ScanStats::default();
    let mut seen: BTreeMap<usize, Seen> = BTreeMap::new();
    let mut unmatched = 0u64;
    let mut unmatched_kinds: BTreeMap<SensitiveKind, (u64, String)> = BTreeMap::new();
    let mut spent = Duration::ZERO;
    let mut scanned = 0u64;
    for tx in &h.txs {
        let t0 = Instant::now();
        let req = scan_request(tx, &limits, &fp, &mut stats);
        let resp = if tx.status.is_some() { scan_response(tx, &limits, &fp, &mut stats) } else { Vec::new() };
        spent += t0.elapsed();
        scanned += 1;
        let host = tx.host.as_deref().and_then(crate::analyze::normalize_host).unwrap_or_default();
        let (path, _) = crate::analyze::split_target(&tx.method, &tx.target);
        let idx = endpoints.iter().position(|e| {
            e["method"].as_str() == Some(&*tx.method) && e["host"].as_str() == Some(host.as_str()) && e["path"].as_str().is_some_and(|t| template_matches(t, path))
        });
        match idx {
            Some(i) => {
                let s = seen.entry(i).or_default();
                s.txs += 1;
                note(&mut s.req, &req);
                note(&mut s.resp, &resp);
            }
            None => {
                unmatched += 1;
                note(&mut unmatched_kinds, &req);
                note(&mut unmatched_kinds, &resp);
            }
        }
    }

    let kinds_of = |v: &serde_json::Value| -> BTreeSet<SensitiveKind> {
        v.as_array().map(|a| a.iter().filter_map(|k| k.as_str().and_then(SensitiveKind::from_name)).collect()).unwrap_or_default()
    };
    let mut totals = [(0usize, 0usize, 0usize, 0usize); 2]; // (truth kinds, found of them, false kinds, endpoints with false kinds)
    println!("transactions {} (unmatched {unmatched}), scan time {:.1} µs/transaction", h.txs.len(), spent.as_secs_f64() * 1e6 / scanned.max(1) as f64);
    for (i, e) in endpoints.iter().enumerate() {
        let Some(s) = seen.get(&i) else {
            println!("-- {} {}{}: not in the cleartext capture", e["method"].as_str().unwrap_or(""), e["host"].as_str().unwrap_or(""), e["path"].as_str().unwrap_or(""));
            continue;
        };
        for (side, (found, want)) in [(&s.resp, kinds_of(&e["resp_sensitive"])), (&s.req, kinds_of(&e["req_sensitive"]))].into_iter().enumerate() {
            let got: BTreeSet<SensitiveKind> = found.keys().copied().collect();
            let hit = want.intersection(&got).count();
            let missing: Vec<_> = want.difference(&got).collect();
            let extra: Vec<_> = got.difference(&want).map(|k| format!("{k} ×{} e.g. {}", found[k].0, found[k].1)).collect();
            totals[side].0 += want.len();
            totals[side].1 += hit;
            totals[side].2 += extra.len();
            totals[side].3 += usize::from(!extra.is_empty());
            if !missing.is_empty() || !extra.is_empty() {
                println!(
                    "{} {} {}{} ({} tx): truth {:?} found {:?} missing {:?} extra {:?}",
                    if side == 0 { "RESP" } else { "REQ " },
                    e["method"].as_str().unwrap_or(""),
                    e["host"].as_str().unwrap_or(""),
                    e["path"].as_str().unwrap_or(""),
                    s.txs,
                    want,
                    got,
                    missing,
                    extra
                );
            }
        }
    }
    for (side, name) in [(0, "response"), (1, "request")] {
        let (t, f, x, ex) = totals[side];
        println!("{name}: recall {f}/{t} = {:.3}; false kinds {x} on {ex} endpoints", f as f64 / t.max(1) as f64);
    }
    println!("unmatched requests: kinds {:?}", unmatched_kinds);
    println!("stats {}", serde_json::to_string(&stats).unwrap_or_default());
}
