//! Hostile captures made by `tests/common/craft.rs` and replayed through
//! the real binary: each must replay without a panic (exit 0), keep peak
//! memory under a bound, and move the named limit or anomaly counter that
//! says what happened (from `--stats-json`).

mod common;

use common::craft::*;
use common::*;
use serde_json::Value;
use std::path::Path;

/// Peak memory any of these replays may use (the whole sensor, default limits).
const MAX_RSS_KB: i64 = 256 * 1024;

/// Replays `p` (with extra `sensor.toml` text); returns the summary and the peak RSS (KiB).
fn replay(p: &Pcap, config: &str) -> (Value, i64) {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("in.pcap");
    p.write(&pcap);
    replay_file(&pcap, config)
}

/// [`replay`] of a capture file. The peak RSS is the child's own only if
/// this process never held more: Linux keeps the larger of the two across
/// the exec of a child spawned with a shared address space.
fn replay_file(pcap: &Path, config: &str) -> (Value, i64) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sensor.toml");
    std::fs::write(&cfg, config).unwrap();
    let stats = dir.path().join("stats.json");
    let store = dir.path().join("store");
    // reaped by the wait4 below, which also gives its peak memory
    #[allow(clippy::zombie_processes)]
    let mut child = std::process::Command::new(bin())
        .args(["replay", "--no-progress", "--config", cfg.to_str().unwrap(), "--store", store.to_str().unwrap()])
        .args(["--stats-json", stats.to_str().unwrap(), pcap.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 on our own child, with valid pointers to locals.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "replay failed (status {status}): {err}");
    let s: Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    (s, ru.ru_maxrss)
}

fn n(s: &Value, path: &[&str]) -> u64 {
    path.iter().fold(s, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

fn check(name: &str, s: &Value, rss: i64, counter: &[&str]) {
    eprintln!("{name}: {} = {}, peak RSS {} MiB", counter.join("."), n(s, counter), rss / 1024);
    assert!(n(s, counter) > 0, "{name}: counter {} did not move: {s}", counter.join("."));
    assert!(rss < MAX_RSS_KB, "{name}: peak RSS {rss} KiB over {MAX_RSS_KB}");
}

fn client(i: u32) -> (std::net::Ipv4Addr, u16) {
    (client_ip(i), 40000 + (i % 20000) as u16)
}

fn server() -> (std::net::Ipv4Addr, u16) {
    (server_ip(), 80)
}

#[test]
fn syn_flood_over_a_million_flows_is_bounded_by_max_flows() {
    let mut p = Pcap::new();
    for i in 0..1_000_000u32 {
        let (ip, port) = client(i);
        p.tcp(ip, port, server_ip(), 80, i, 0, SYN, &[]);
    }
    // the default limits (sensor.toml: flow.max_flows = 131072, split over the workers)
    let (s, rss) = replay(&p, "");
    check("syn flood", &s, rss, &["flow", "flows_evicted_limit"]);
    let created = n(&s, &["flow", "flows_created"]);
    assert!(created >= 1_000_000 - 1);
    let max_flows = apitap::config::Config::default().flow.max_flows as u64;
    assert_eq!(max_flows, 131_072, "the default this test documents");
    // every flow beyond the limit evicted one (a worker's share rounds up)
    let evicted = n(&s, &["flow", "flows_evicted_limit"]);
    assert!(evicted + max_flows + 16 >= created && evicted <= created - max_flows / 2, "{evicted} evicted of {created}");
}

#[test]
fn overlapping_segments_with_different_data_are_counted() {
    let mut p = Pcap::new();
    let mut c = Conv::open(&mut p, client(1), server());
    let seq = c.cseq;
    c.client_at(&mut p, seq + 16, b"XXXXXXXXXXXXXXXX");
    c.to_server(&mut p, b"GET /a HTTP/1.1\r\nHost: x.test\r\n\r\n");
    c.client_at(&mut p, seq, b"GET /b HTTP/1.1\r\nHost: y.test\r\n\r\n");
    c.to_client(&mut p, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    c.close(&mut p);
    let (s, rss) = replay(&p, "");
    check("overlap", &s, rss, &["flow", "overlap_conflicts"]);
}

#[test]
fn out_of_order_storm_hits_the_per_direction_limit() {
    let mut p = Pcap::new();
    let c = Conv::open(&mut p, client(2), server());
    // 5,000 one-byte segments in reverse order: everything arrives before its predecessor
    for i in (1..5000u32).rev() {
        c.client_at(&mut p, c.cseq + i, b"a");
    }
    let (s, rss) = replay(&p, "[flow]\nmax_ooo_segments_per_dir = 64\n");
    check("ooo storm", &s, rss, &["flow", "ooo_dropped_dir_limit"]);
    assert!(n(&s, &["flow", "out_of_order"]) > 0);
}

#[test]
fn sequence_wrap_around_is_followed_and_huge_jumps_are_refused() {
    let mut p = Pcap::new();
    let mut c = Conv::open(&mut p, client(3), server());
    // move the client's sequence to just below 2^32, as if 4 GB had passed
    c.cseq = u32::MAX - 20;
    let mut c2 = Conv { client: client(4), server: server(), cseq: u32::MAX - 20, sseq: 77 };
    p.tcp(c2.client.0, c2.client.1, server_ip(), 80, c2.cseq - 1, 0, SYN, &[]);
    p.tcp(server_ip(), 80, c2.client.0, c2.client.1, 76, c2.cseq, SYN | ACK, &[]);
    c2.to_server(&mut p, b"GET /wrapped HTTP/1.1\r\nHost: w.test\r\n\r\n");
    c2.to_client(&mut p, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    c2.close(&mut p);
    // a jump of 2^31 on the first connection
    let far = c.cseq.wrapping_add(1 << 31);
    c.client_at(&mut p, far, b"GET /far HTTP/1.1\r\n\r\n");
    let (s, rss) = replay(&p, "");
    check("seq jump", &s, rss, &["flow", "segments_out_of_window"]);
    assert_eq!(n(&s, &["transactions"]), 1, "the request across the wrap is parsed: {s}");
}

#[test]
fn a_one_megabyte_header_line_hits_the_header_limit() {
    let mut p = Pcap::new();
    let mut c = Conv::open(&mut p, client(5), server());
    let mut req = b"GET /h HTTP/1.1\r\nHost: h.test\r\nX-Long: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 1 << 20));
    req.extend_from_slice(b"\r\n\r\n");
    c.to_server(&mut p, &req);
    c.to_client(&mut p, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    c.close(&mut p);
    let (s, rss) = replay(&p, "");
    check("1 MB header", &s, rss, &["http", "header_limit_hit"]);
}

#[test]
fn a_one_megabyte_jwt_is_not_decoded() {
    let mut p = Pcap::new();
    let mut c = Conv::open(&mut p, client(6), server());
    let mut req = b"GET /j HTTP/1.1\r\nHost: j.test\r\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.".to_vec();
    req.extend(std::iter::repeat_n(b'A', 1 << 20));
    req.extend_from_slice(b".c2ln\r\n\r\n");
    c.to_server(&mut p, &req);
    c.to_client(&mut p, b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
    c.close(&mut p);
    let (s, rss) = replay(&p, "");
    check("1 MB JWT", &s, rss, &["http", "header_limit_hit"]);
}

#[test]
fn ten_thousand_pipelined_requests_hit_the_pending_limit() {
    let mut p = Pcap::new();
    let mut c = Conv::open(&mut p, client(7), server());
    let mut reqs = Vec::new();
    for i in 0..10_000 {
        reqs.extend_from_slice(format!("GET /p/{i} HTTP/1.1\r\nHost: p.test\r\n\r\n").as_bytes());
    }
    c.to_server(&mut p, &reqs);
    let mut resps = Vec::new();
    for _ in 0..10_000 {
        resps.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    }
    c.to_client(&mut p, &resps);
    c.close(&mut p);
    let (s, rss) = replay(&p, "");
    check("pipelining", &s, rss, &["http", "pending_limit_dropped"]);
}

#[test]
fn chunk_sizes_that_overflow_64_bits_are_an_anomaly() {
    let mut p = Pcap::new();
    let mut c = Conv::open(&mut p, client(8), server());
    c.to_server(&mut p, b"POST /c HTTP/1.1\r\nHost: c.test\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffffffff\r\nxx\r\n0\r\n\r\n");
    c.to_client(&mut p, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    c.close(&mut p);
    let (s, rss) = replay(&p, "");
    check("chunk overflow", &s, rss, &["http_anomalies"]);
}

#[test]
fn conflicting_content_lengths_are_an_anomaly_and_a_smuggling_finding() {
    let mut p = Pcap::new();
    let mut c = Conv::open(&mut p, client(9), server());
    c.to_server(&mut p, b"POST /s HTTP/1.1\r\nHost: s.test\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd");
    c.to_client(&mut p, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    c.to_server(&mut p, b"POST /s HTTP/1.1\r\nHost: s.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    c.to_client(&mut p, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    c.close(&mut p);
    let (s, rss) = replay(&p, "");
    check("conflicting lengths", &s, rss, &["http_anomalies"]);
    assert_eq!(n(&s, &["findings_by_kind", "request_smuggling_risk"]), 1, "{s}");
}

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn h2_preface() -> Vec<u8> {
    let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    v.extend(h2_frame(4, 0, 0, &[]));
    v
}

/// :method GET, :scheme http, :path /, :authority h.test (literal, not indexed).
const H2_GET: &[u8] = &[0x82, 0x86, 0x84, 0x01, 0x06, b'h', b'.', b't', b'e', b's', b't'];

#[test]
fn h2_continuation_flood_hits_the_header_block_limit() {
    let mut p = Pcap::new();
    let mut c = Conv::open(&mut p, client(10), (server_ip(), 8081));
    let mut data = h2_preface();
    data.extend(h2_frame(1, 0, 1, H2_GET));
    // CONTINUATION frames without END_HEADERS, far beyond any header block limit
    let filler = [0x40u8, 0x01, b'x', 0x7f, 0x7f];
    let block: Vec<u8> = filler.iter().copied().cycle().take(16_000).collect();
    for _ in 0..200 {
        data.extend(h2_frame(9, 0, 1, &block));
    }
    c.to_server(&mut p, &data);
    c.close(&mut p);
    let (s, rss) = replay(&p, "");
    check("continuation flood", &s, rss, &["http", "h2_header_limit_hit"]);
}

#[test]
fn h2_one_hundred_thousand_streams_hit_the_stream_limit() {
    let mut p = Pcap::new();
    let mut c = Conv::open(&mut p, client(11), (server_ip(), 8081));
    let mut data = h2_preface();
    for i in 0..100_000u32 {
        data.extend(h2_frame(1, 0x4 | 0x1, 2 * i + 1, H2_GET));
    }
    c.to_server(&mut p, &data);
    c.close(&mut p);
    let (s, rss) = replay(&p, "");
    check("100k streams", &s, rss, &["http", "h2_stream_limit_hit"]);
}

#[test]
fn hpack_table_size_abuse_and_integer_overflow_are_hpack_errors() {
    let mut p = Pcap::new();
    let mut c = Conv::open(&mut p, client(12), (server_ip(), 8081));
    let mut data = h2_preface();
    // a dynamic table size update to 2^31 (above SETTINGS_HEADER_TABLE_SIZE)
    data.extend(h2_frame(1, 0x5, 1, &[0x3f, 0xe1, 0xff, 0xff, 0xff, 0x07, 0x82]));
    // an integer that never ends (continuation bytes past 64 bits)
    let mut overflow = vec![0x7f];
    overflow.extend(std::iter::repeat_n(0xffu8, 12));
    overflow.push(0x01);
    data.extend(h2_frame(1, 0x5, 3, &overflow));
    c.to_server(&mut p, &data);
    c.close(&mut p);
    let (s, rss) = replay(&p, "");
    check("hpack abuse", &s, rss, &["http", "h2_hpack_errors"]);
}

#[test]
fn a_gzip_bomb_stops_at_the_decompression_guard() {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![b'0'; 1 << 20];
    for _ in 0..100 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    let mut p = Pcap::new();
    let mut c = Conv::open(&mut p, client(13), server());
    c.to_server(&mut p, b"GET /bomb HTTP/1.1\r\nHost: b.test\r\n\r\n");
    let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", bomb.len()).into_bytes();
    resp.extend_from_slice(&bomb);
    c.to_client(&mut p, &resp);
    c.close(&mut p);
    // scan budget above the decompression budget: the bomb guard is what stops it
    let (s, rss) = replay(&p, "[http]\nbody_scan_bytes = 1048576\n[sensitive]\nmax_scan_bytes = 16777216\n");
    check("gzip bomb", &s, rss, &["http", "analyze", "scan", "bomb_guard_hit"]);
}

#[test]
fn binary_garbage_on_port_80_is_an_unknown_connection() {
    let mut p = Pcap::new();
    let mut c = Conv::open(&mut p, client(14), server());
    let mut x: u32 = 12345;
    let garbage: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x & 0xff) as u8
        })
        .collect();
    c.to_server(&mut p, &garbage);
    c.to_client(&mut p, &garbage[..50_000]);
    c.close(&mut p);
    let (s, rss) = replay(&p, "");
    check("garbage", &s, rss, &["http", "unknown_connections"]);
    assert_eq!(n(&s, &["transactions"]), 0);
}

/// The same hostile captures concatenated replay fine as one file too
/// (state from one attack does not break the parsing of the next).
#[test]
fn crafted_captures_are_valid_pcap_for_libpcap() {
    let mut p = Pcap::new();
    let mut c = Conv::open(&mut p, client(20), server());
    c.to_server(&mut p, b"GET /ok HTTP/1.1\r\nHost: ok.test\r\n\r\n");
    c.to_client(&mut p, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    c.close(&mut p);
    let (s, _) = replay(&p, "");
    assert_eq!(n(&s, &["transactions"]), 1, "{s}");
    assert_eq!(n(&s, &["packets"]), p.frames);
    let _ = Path::new("");
}

/// A capture larger than the memory bound: the workers read its payloads in
/// place in the mapped file, and the reader lets go of the pages behind
/// them, so peak memory stays under the bound however long the file is.
#[test]
fn a_capture_larger_than_the_memory_bound_replays_within_it() {
    const CONNECTIONS: u32 = 300;
    const SEGMENTS: usize = 1_000;
    const SEGMENT_BYTES: usize = 1_400;
    // written a connection at a time: this process stays small (see replay_file)
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("large.pcap");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let chunk: Vec<u8> = (0..SEGMENT_BYTES).map(|i| b'a' + (i % 26) as u8).collect();
    for i in 0..CONNECTIONS {
        let mut p = Pcap::new();
        let mut c = Conv::open(&mut p, client(i), server());
        c.to_server(&mut p, format!("GET /v1/files/{i} HTTP/1.1\r\nHost: files.test\r\n\r\n").as_bytes());
        c.to_client(&mut p, format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n", SEGMENTS * SEGMENT_BYTES).as_bytes());
        for _ in 0..SEGMENTS {
            c.to_client(&mut p, &chunk);
        }
        c.close(&mut p);
        // the file header once, then records
        let records = if i == 0 { &p.buf[..] } else { &p.buf[24..] };
        std::io::Write::write_all(&mut out, records).unwrap();
    }
    drop(out);
    let file_bytes = std::fs::metadata(&path).unwrap().len() as i64;
    assert!(file_bytes > MAX_RSS_KB * 1024 + (100 << 20), "the capture ({file_bytes} bytes) must outgrow the bound");
    let (s, rss) = replay_file(&path, "");
    eprintln!("{} MB capture: peak RSS {} MiB, {} segments read in place", file_bytes >> 20, rss / 1024, n(&s, &["tcp_segments_read_in_place"]));
    assert_eq!(n(&s, &["transactions"]), u64::from(CONNECTIONS), "{s}");
    assert_eq!(n(&s, &["tcp_segments_read_in_place"]), n(&s, &["tcp_segments"]), "{s}");
    assert!(rss < MAX_RSS_KB, "peak RSS {rss} KiB over {MAX_RSS_KB} for a {file_bytes}-byte capture");
}

/// Connections that each pipeline requests nobody answers (a one-direction
/// mirror, or a flood): with `http.max_parser_bytes_total` at its minimum,
/// the parsers' memory stops at it — connections that grow past it free
/// what they hold and are counted — and every request is still reported,
/// without a response. With the default budget the same capture holds more
/// than that minimum and nothing is shed: the limit is what bounded it.
#[test]
fn unanswered_requests_stop_at_the_parser_memory_budget() {
    let mut p = Pcap::new();
    let cookie = "c".repeat(900);
    let (conns, per_conn) = (1500u32, 4usize);
    for i in 0..conns {
        let mut c = Conv::open(&mut p, client(100 + i), server());
        for k in 0..per_conn {
            let req = format!("GET /api/items/{i}/{k} HTTP/1.1\r\nHost: budget.test\r\nCookie: s={cookie}\r\n\r\n");
            c.to_server(&mut p, req.as_bytes());
        }
    }
    let requests = u64::from(conns) * per_conn as u64;
    let budget = 1u64 << 20;
    let (s, rss) = replay(&p, &format!("[pipeline]\nworkers = 1\n[http]\nmax_parser_bytes_total = {budget}\n"));
    check("parser budget", &s, rss, &["http", "parser_bytes_limit_hit"]);
    assert_eq!(n(&s, &["http", "transactions"]), requests, "a request of a shed connection was not reported: {s}");
    assert_eq!(n(&s, &["http", "requests_without_response"]), requests);
    // the total passes the budget by at most what one chunk (one segment) adds
    let peak = n(&s, &["http", "parser_bytes_peak"]);
    assert!(peak > 0 && peak <= budget + 16 * 1024, "peak {peak} over the budget {budget}");
    assert_eq!(n(&s, &["http", "parser_bytes_held"]), 0, "bytes still counted after every connection ended");

    let (d, _) = replay(&p, "[pipeline]\nworkers = 1\n");
    assert_eq!(n(&d, &["http", "parser_bytes_limit_hit"]), 0);
    assert!(n(&d, &["http", "parser_bytes_peak"]) > budget, "the capture does not need the budget: {d}");
    assert_eq!(n(&d, &["http", "transactions"]), requests);
    assert_eq!(n(&d, &["http", "parser_bytes_held"]), 0);
}

/// The same for HTTP/2: connections whose streams are never answered. A
/// connection past the budget reports its open streams and keeps its header
/// tables, so its later requests are still decoded and reported.
#[test]
fn unanswered_h2_streams_stop_at_the_parser_memory_budget() {
    let mut p = Pcap::new();
    let (conns, per_conn) = (300u32, 20u32);
    for i in 0..conns {
        let mut c = Conv::open(&mut p, client(3000 + i), (server_ip(), 8081));
        let mut data = h2_preface();
        for k in 0..per_conn {
            // :method GET, :scheme http, :path and :authority without indexing,
            // and seven 120-byte custom fields
            let path = format!("/api/items/{i}/{k}");
            let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
            block.extend_from_slice(path.as_bytes());
            block.extend_from_slice(&[0x01, 0x06, b'h', b'.', b't', b'e', b's', b't']);
            for f in 0..7u8 {
                block.extend_from_slice(&[0x00, 0x07, b'x', b'-', b'f', b'i', b'e', b'l', b'a' + f, 120]);
                block.extend(std::iter::repeat_n(b'v', 120));
            }
            data.extend(h2_frame(1, 0x4 | 0x1, 2 * k + 1, &block));
        }
        c.to_server(&mut p, &data);
    }
    let requests = u64::from(conns * per_conn);
    let budget = 1u64 << 20;
    let (s, rss) = replay(&p, &format!("[pipeline]\nworkers = 1\n[http]\nmax_parser_bytes_total = {budget}\n"));
    check("h2 parser budget", &s, rss, &["http", "parser_bytes_limit_hit"]);
    assert_eq!(n(&s, &["http", "transactions"]), requests, "a stream reported when its connection was shed went missing: {s}");
    let peak = n(&s, &["http", "parser_bytes_peak"]);
    assert!(peak > 0 && peak <= budget + 64 * 1024, "peak {peak} over the budget {budget}");
    assert_eq!(n(&s, &["http", "parser_bytes_held"]), 0);

    let (d, _) = replay(&p, "[pipeline]\nworkers = 1\n");
    assert_eq!(n(&d, &["http", "parser_bytes_limit_hit"]), 0);
    assert!(n(&d, &["http", "parser_bytes_peak"]) > budget, "the capture does not need the budget: {d}");
    assert_eq!(n(&d, &["http", "transactions"]), requests);
    assert_eq!(n(&d, &["http", "parser_bytes_held"]), 0);
}
