//! Criterion micro-benchmarks of the hot paths, each on realistic input:
//! frame decode; flow lookup and in-order reassembly over 10,000 open flows;
//! out-of-order reassembly; HTTP/1 head parsing; HTTP/2 frames with HPACK;
//! one HTTP/1.1 keep-alive exchange through the whole worker engine (flow,
//! reassembly, parsing, analysis); HPACK decoding; path templating;
//! credential classification; the sensitive-data scan of a JSON body; and a
//! batch of endpoint writes to RocksDB.
//!
//! cargo bench --bench micro            (add `-- NAME` to run one)

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use apitap::analyze::fingerprint::{Fingerprinter, KEY_LEN};
use apitap::config::Config;
use apitap::decode::{DecodeLimits, Decoded, Decoder, LinkType, TcpFlags, TcpSegment};
use apitap::proto::{BodyInfo, Header, HttpTransaction};

/// An Ethernet/IPv4/TCP frame carrying `payload`.
fn frame(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00, 0x45, 0];
    f.extend_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&80u16.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&1u32.to_be_bytes());
    f.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

const REQUEST: &[u8] = b"GET /v2/users/1842/orders?page=2 HTTP/1.1\r\nHost: api.shop.test\r\nUser-Agent: okhttp/4.12\r\nAccept: application/json\r\nAuthorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxODQyIiwiZXhwIjoyMDI5OTEwNDAwfQ.c2lnbmF0dXJlc2lnbmF0dXJlc2ln\r\nCookie: sid=702b0a921ab7b55c7a121ca06c119f78\r\n\r\n";
const BODY: &[u8] = br#"{"orders":[{"id":"0f8fad5b-d9cb-469f-a165-70867728950e","email":"ann@example.com","phone":"+14155550123","card":"4111111111111111","total":42.5,"items":[{"sku":"SKU-000108","qty":2}]},{"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","email":"bob@example.com","total":13.0,"items":[]}],"page":2,"next":"/v2/users/1842/orders?page=3"}"#;

fn response() -> Vec<u8> {
    let mut r = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nServer: nginx\r\n\r\n", BODY.len()).into_bytes();
    r.extend_from_slice(BODY);
    r
}

fn tx() -> HttpTransaction {
    let h = |n: &'static str, v: &[u8]| Header { name: n.into(), value: v.into() };
    HttpTransaction {
        host: Some("api.shop.test".into()),
        request_headers: vec![
            h("authorization", b"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxODQyIiwiZXhwIjoyMDI5OTEwNDAwfQ.c2lnbmF0dXJlc2lnbmF0dXJlc2ln"),
            h("cookie", b"sid=702b0a921ab7b55c7a121ca06c119f78"),
            h("user-agent", b"okhttp/4.12"),
        ],
        response_headers: vec![h("content-type", b"application/json")],
        status: Some(200),
        response_body: BodyInfo { length: BODY.len() as u64, sample: BODY.to_vec(), gap_bytes: 0 },
        ..HttpTransaction::new("10.0.0.1:40000".parse().expect("address"), "10.0.0.2:80".parse().expect("address"), "GET", "/v2/users/1842/orders?page=2")
    }
}

fn decode(c: &mut Criterion) {
    let f = frame(1, 0x18, REQUEST);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(f.len() as u64));
    let mut d = Decoder::new(DecodeLimits::default());
    g.bench_function("ethernet_ipv4_tcp_frame", |b| {
        b.iter(|| matches!(d.decode(LinkType::from_dlt(1), 1, std::hint::black_box(&f)), Decoded::Tcp(_)))
    });
    g.finish();
}

fn engine_exchange(c: &mut Criterion) {
    // one keep-alive connection: each iteration is one request and its response
    let cfg = Config::default();
    let mut e = apitap::engine::Engine::new(&cfg, false, [7; KEY_LEN]);
    let (cli, srv) = ("10.0.0.1:40000".parse().expect("address"), "10.0.0.2:80".parse().expect("address"));
    let seg = |src, dst, seq: u32, ack: u32, flags: u8, payload: &'static [u8]| TcpSegment { src, dst, seq, ack, flags: TcpFlags(flags), window: 65535, payload };
    e.segment(&seg(cli, srv, 0, 0, 0x02, b""), 1);
    e.segment(&seg(srv, cli, 0, 1, 0x12, b""), 2);
    let resp: &'static [u8] = Box::leak(response().into_boxed_slice());
    let (mut cseq, mut sseq, mut ts) = (1u32, 1u32, 3u64);
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Bytes((REQUEST.len() + resp.len()) as u64));
    g.bench_function("http1_exchange_with_analysis", |b| {
        b.iter(|| {
            e.segment(&seg(cli, srv, cseq, sseq, 0x18, REQUEST), ts);
            cseq = cseq.wrapping_add(REQUEST.len() as u32);
            e.segment(&seg(srv, cli, sseq, cseq, 0x18, resp), ts + 100);
            sseq = sseq.wrapping_add(resp.len() as u32);
            ts += 1000;
            std::hint::black_box(e.take_output().observations.len())
        })
    });
    g.finish();
}

fn hpack(c: &mut Criterion) {
    // :method GET, :scheme https, :path /, :authority (literal, indexed), user-agent (literal, indexed)
    let mut block = vec![0x82, 0x87, 0x84, 0x41, 0x0d];
    block.extend_from_slice(b"api.shop.test");
    block.extend_from_slice(&[0x7a, 0x0b]);
    block.extend_from_slice(b"okhttp/4.12");
    let mut g = c.benchmark_group("hpack");
    g.throughput(Throughput::Bytes(block.len() as u64));
    g.bench_function("request_block_then_indexed_repeat", |b| {
        b.iter(|| {
            let mut d = apitap::proto::hpack::Decoder::new(4096, 65536);
            let mut out = Vec::new();
            let _ = d.decode(&block, 1 << 20, &mut out);
            out.clear();
            let _ = d.decode(&[0x82, 0x87, 0x84, 0xbe, 0xbf], 1 << 20, &mut out);
            std::hint::black_box(out.len())
        })
    });
    g.finish();
}

fn analysis(c: &mut Criterion) {
    let t = tx();
    let fp = Fingerprinter::new([7; KEY_LEN]);
    let auth_cfg = apitap::analyze::auth::AuthConfig::default();
    let limits = apitap::analyze::sensitive::ScanLimits::default();
    let paths = ["/v2/users/1842/orders", "/v2/orders/0f8fad5b-d9cb-469f-a165-70867728950e/items", "/v2/products/blue-widget-42/reviews", "/static/app.3f2a.js"];
    let mut g = c.benchmark_group("analyze");
    g.bench_function("typed_template_4_paths", |b| b.iter(|| paths.iter().map(|p| apitap::analyze::template::typed_template(std::hint::black_box(p)).len()).sum::<usize>()));
    g.bench_function("auth_classify_bearer_jwt_and_cookie", |b| b.iter(|| apitap::analyze::auth::classify(std::hint::black_box(&t), &auth_cfg, &fp, false).len()));
    g.throughput(Throughput::Bytes(BODY.len() as u64));
    g.bench_function("sensitive_scan_json_response", |b| {
        b.iter(|| {
            let mut st = apitap::analyze::sensitive::ScanStats::default();
            apitap::analyze::sensitive::scan_response(std::hint::black_box(&t), &limits, &fp, &mut st).len()
        })
    });
    // The same work on values never seen before (the per-thread memos miss:
    // 8,192 distinct values cycle through memos of 1,024 to 4,096 entries).
    const UNSEEN: usize = 8192;
    let paths: Vec<String> = (0..UNSEEN).map(|i| format!("/v2/users/{}/orders/{:x}", 1000 + i, 0x5eed_0000_0000u64 + i as u64)).collect();
    let mut i = 0usize;
    g.bench_function("typed_template_unseen_path", |b| {
        b.iter(|| {
            i = (i + 1) % UNSEEN;
            apitap::analyze::template::typed_template(std::hint::black_box(&paths[i])).len()
        })
    });
    let with_token = |k: usize| {
        let mut t = tx();
        let sig = format!("c2lnbmF0dXJl{k:08}");
        t.request_headers[0].value = format!("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxODQyIiwiZXhwIjoyMDI5OTEwNDAwfQ.{sig}").into_bytes().into();
        t.request_headers[1].value = format!("sid=702b0a921ab7b55c7a121ca0{k:08}").into_bytes().into();
        t
    };
    let txs: Vec<HttpTransaction> = (0..UNSEEN).map(with_token).collect();
    g.bench_function("auth_classify_unseen_tokens", |b| {
        b.iter(|| {
            i = (i + 1) % UNSEEN;
            apitap::analyze::auth::classify(std::hint::black_box(&txs[i]), &auth_cfg, &fp, false).len()
        })
    });
    let bodies: Vec<HttpTransaction> = (0..UNSEEN)
        .map(|k| {
            let mut t = tx();
            let body = String::from_utf8_lossy(BODY).replace("\"page\":2", &format!("\"page\":{}", 2 + k));
            t.response_body = BodyInfo { length: body.len() as u64, sample: body.into_bytes(), gap_bytes: 0 };
            t
        })
        .collect();
    g.throughput(Throughput::Bytes(BODY.len() as u64));
    g.bench_function("sensitive_scan_json_response_unseen_body", |b| {
        b.iter(|| {
            i = (i + 1) % UNSEEN;
            let mut st = apitap::analyze::sensitive::ScanStats::default();
            apitap::analyze::sensitive::scan_response(std::hint::black_box(&bodies[i]), &limits, &fp, &mut st).len()
        })
    });
    g.finish();
}

fn store(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("apitap-micro-{}", std::process::id()));
    let st = apitap::store::Store::open(&dir, apitap::store::Access::ReadWrite).expect("bench store");
    let records: Vec<apitap::inventory::EndpointRecord> = (0..1000)
        .map(|i| {
            let key = apitap::analyze::EndpointKey { host: format!("h{}.test", i % 10).into(), method: "GET".into(), path: format!("/v2/r{i}/{{id}}").into() };
            let mut r = apitap::inventory::EndpointRecord::new(&key);
            r.requests = 1;
            r
        })
        .collect();
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(records.len() as u64));
    g.bench_function("merge_1000_endpoint_records", |b| b.iter(|| st.merge_endpoints(std::hint::black_box(&records)).is_ok()));
    g.finish();
    drop(st);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A flow handler that only counts what reassembly delivers.
struct Count(u64);

impl apitap::flow::FlowHandler for Count {
    type State = ();
    fn open(&mut self, _: &apitap::decode::FlowKey, _: std::net::SocketAddr, _: std::net::SocketAddr, _: bool, _: u64) {}
    fn chunk(&mut self, _: &mut (), _: apitap::flow::Direction, c: apitap::flow::Chunk<'_>, _: u64) {
        if let apitap::flow::Chunk::Data(d) = c {
            self.0 += d.len() as u64;
        }
    }
    fn close(&mut self, _: (), _: u64) {}
}

fn flows(c: &mut Criterion) {
    const FLOWS: u32 = 10_000;
    let addr = |i: u32, port: u16| std::net::SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], port));
    let srv = std::net::SocketAddr::from(([10, 0, 0, 2], 80));
    let seg = |src, dst, seq: u32, ack: u32, flags: u8, payload: &'static [u8]| TcpSegment { src, dst, seq, ack, flags: TcpFlags(flags), window: 65535, payload };
    let mut t = apitap::flow::FlowTable::<()>::new(Config::default().flow_limits());
    let mut h = Count(0);
    for i in 0..FLOWS {
        t.process(&seg(addr(i, 40000), srv, 0, 0, 0x02, b""), 1, &mut h);
        t.process(&seg(srv, addr(i, 40000), 0, 1, 0x12, b""), 2, &mut h);
    }
    let mut seqs = vec![1u32; FLOWS as usize];
    let (mut i, mut ts) = (0usize, 3u64);
    let mut g = c.benchmark_group("flow");
    g.throughput(Throughput::Bytes(REQUEST.len() as u64));
    g.bench_function("lookup_and_in_order_segment_10k_flows", |b| {
        b.iter(|| {
            i = (i + 7919) % FLOWS as usize;
            let s = seqs[i];
            t.process(&seg(addr(i as u32, 40000), srv, s, 1, 0x18, REQUEST), ts, &mut h);
            seqs[i] = s.wrapping_add(REQUEST.len() as u32);
            ts += 1;
            std::hint::black_box(h.0)
        })
    });
    // three segments arriving last-first: two are buffered, then all delivered
    let mut t = apitap::flow::FlowTable::<()>::new(Config::default().flow_limits());
    let (cli, srv1) = (addr(1, 40001), srv);
    t.process(&seg(cli, srv1, 0, 0, 0x02, b""), 1, &mut h);
    t.process(&seg(srv1, cli, 0, 1, 0x12, b""), 2, &mut h);
    let part = &REQUEST[..64];
    let mut base = 1u32;
    g.throughput(Throughput::Bytes(3 * part.len() as u64));
    g.bench_function("out_of_order_3_segments", |b| {
        b.iter(|| {
            for k in [2u32, 1, 0] {
                t.process(&seg(cli, srv1, base.wrapping_add(k * part.len() as u32), 1, 0x18, part), ts, &mut h);
            }
            base = base.wrapping_add(3 * part.len() as u32);
            ts += 1;
            std::hint::black_box(h.0)
        })
    });
    g.finish();
}

fn parsers(c: &mut Criterion) {
    use apitap::flow::Chunk;
    use apitap::proto::http1::Http1Connection;
    use apitap::proto::http2::H2Connection;
    let cfg = Config::default();
    let (cli, srv) = ("10.0.0.1:40000".parse().expect("address"), "10.0.0.2:80".parse().expect("address"));
    let resp = response();
    let mut stats = apitap::proto::ProtoStats::default();
    let mut out = Vec::new();
    let mut g = c.benchmark_group("proto");
    let mut h1 = Http1Connection::new(cli, srv, false, &cfg.http);
    g.throughput(Throughput::Bytes((REQUEST.len() + resp.len()) as u64));
    g.bench_function("http1_request_and_response", |b| {
        b.iter(|| {
            h1.on_chunk(true, Chunk::Data(REQUEST), 1, &cfg.http, &mut stats, &mut out);
            h1.on_chunk(false, Chunk::Data(&resp), 2, &cfg.http, &mut stats, &mut out);
            let n = out.len();
            out.clear();
            std::hint::black_box(n)
        })
    });
    // HTTP/2: a request HEADERS (HPACK: static indexes, literals added to the
    // table, then indexed repeats) and a response HEADERS + DATA per stream
    let frame = |kind: u8, flags: u8, stream: u32, payload: &[u8]| {
        let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
        f.extend_from_slice(&[kind, flags]);
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    };
    let mut first = vec![0x82, 0x86, 0x44, 0x0c];
    first.extend_from_slice(b"/v2/users/18");
    first.extend_from_slice(&[0x41, 0x0d]);
    first.extend_from_slice(b"api.shop.test");
    first.extend_from_slice(&[0x7a, 0x0b]);
    first.extend_from_slice(b"okhttp/4.12");
    let repeat = [0x82, 0x86, 0xc0, 0xbf, 0xbe];
    let resp_block = [0x88, 0x5f, 0x10];
    let mut resp_block = resp_block.to_vec();
    resp_block.extend_from_slice(b"application/json");
    let mut client = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    client.extend(frame(4, 0, 0, &[]));
    client.extend(frame(1, 5, 1, &first));
    let mut server = frame(4, 0, 0, &[]);
    server.extend(frame(1, 4, 1, &resp_block));
    server.extend(frame(0, 1, 1, BODY));
    let mut h2 = H2Connection::new(cli, srv, false, &cfg.http2);
    h2.on_chunk(true, Chunk::Data(&client), 1, &cfg.http, &mut stats, &mut out);
    h2.on_chunk(false, Chunk::Data(&server), 2, &cfg.http, &mut stats, &mut out);
    out.clear();
    let mut stream = 3u32;
    g.throughput(Throughput::Elements(1));
    g.bench_function("http2_stream_headers_hpack_and_data", |b| {
        b.iter(|| {
            let req = frame(1, 5, stream, &repeat);
            let mut rsp = frame(1, 4, stream, &resp_block);
            rsp.extend(frame(0, 1, stream, BODY));
            h2.on_chunk(true, Chunk::Data(&req), 3, &cfg.http, &mut stats, &mut out);
            h2.on_chunk(false, Chunk::Data(&rsp), 4, &cfg.http, &mut stats, &mut out);
            stream = stream.wrapping_add(2) & 0x7fff_ffff;
            let n = out.len();
            out.clear();
            std::hint::black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, decode, flows, parsers, engine_exchange, hpack, analysis, store);
criterion_main!(benches);
