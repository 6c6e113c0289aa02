//! Live capture with real traffic: `apitap capture` on a veth interface
//! between two network namespaces this test creates, nginx answering real
//! clients (curl for HTTP/1.1, h2load for h2c prior knowledge), then SIGTERM; a
//! `kill -9` crash test; and the systemd unit checked by `systemd-analyze`.
//!
//! Needs root (namespaces, capture) and nginx, curl, h2load, ip. Without them
//! the tests print a notice and skip; `APITAP_REQUIRE_LIVE=1` (set by CI)
//! turns the skip into a failure.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn required() -> bool {
    std::env::var("APITAP_REQUIRE_LIVE").is_ok_and(|v| v == "1")
}

fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).stdout(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Whether this environment can run the live tests; prints why not.
fn live_ok() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc_geteuid() } == 0;
    let missing: Vec<&str> = ["ip", "nginx", "curl", "h2load"].into_iter().filter(|t| !have(t)).collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = if root { format!("missing tools: {missing:?} (apt-get install nginx curl nghttp2-client iproute2)") } else { "not root".to_string() };
    assert!(!required(), "live tests are required (APITAP_REQUIRE_LIVE=1) but cannot run: {why}");
    eprintln!("notice: skipping live capture test: {why}");
    false
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

/// Two network namespaces joined by a veth pair: the server side
/// (10.77.0.1, nginx and apitap capturing on its veth end) and the client side
/// (10.77.0.2, curl and h2load). Deleted on drop.
struct Lab {
    srv: String,
    cli: String,
    iface: String,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let id = format!("{tag}{}", std::process::id() % 100_000);
        let (srv, cli) = (format!("apitap-s-{id}"), format!("apitap-c-{id}"));
        let (vs, vc) = (format!("vs{id}"), format!("vc{id}"));
        for ns in [&srv, &cli] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
        }
        let ip = |args: &[&str]| assert!(Command::new("ip").args(args).status().unwrap().success(), "ip {args:?}");
        ip(&["netns", "add", &srv]);
        ip(&["netns", "add", &cli]);
        let lab = Lab { srv: srv.clone(), cli: cli.clone(), iface: vs.clone() };
        ip(&["link", "add", &vs, "type", "veth", "peer", "name", &vc]);
        ip(&["link", "set", &vs, "netns", &srv]);
        ip(&["link", "set", &vc, "netns", &cli]);
        for (ns, dev, addr) in [(&srv, &vs, "10.77.0.1/24"), (&cli, &vc, "10.77.0.2/24")] {
            ip(&["-n", ns, "addr", "add", addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn in_ns(ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// A command on the server side.
    fn srv(&self, program: &str) -> Command {
        Lab::in_ns(&self.srv, program)
    }

    /// A command on the client side.
    fn cli(&self, program: &str) -> Command {
        Lab::in_ns(&self.cli, program)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.srv, &self.cli] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A child stopped on drop (by its own PID): SIGTERM, so that nginx takes its
/// workers down with it, then SIGKILL after 5 s.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_some() {
            return;
        }
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx(lab: &Lab, dir: &Path) -> Guard {
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    // a self-signed certificate for the TLS listener (8443)
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=api.lab.test"])
        .arg("-keyout")
        .arg(dir.join("tls.key"))
        .arg("-out")
        .arg(dir.join("tls.crt"))
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "openssl could not make the test certificate");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\nevents {{ worker_connections 1024; }}\n\
             http {{\n access_log off;\n keepalive_requests 100000;\n client_body_temp_path {d}/body;\n proxy_temp_path {d}/proxy;\n fastcgi_temp_path {d}/fcgi;\n\
             uwsgi_temp_path {d}/uwsgi;\n scgi_temp_path {d}/scgi;\n\
             server {{\n  listen 8080;\n  listen 8081 http2;\n  listen 8443 ssl http2;\n  ssl_certificate {d}/tls.crt;\n  ssl_certificate_key {d}/tls.key;\n  ssl_protocols TLSv1.2 TLSv1.3;\n\
             location / {{ default_type application/json; return 200 '{{\"id\": 7, \"name\": \"widget\"}}'; }}\n }}\n}}\n"
        ),
    )
    .unwrap();
    let g = Guard(lab.srv("nginx").args(["-c", conf.to_str().unwrap()]).spawn().expect("start nginx"));
    // wait until both ports answer
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let ok = lab.cli("curl").args(["-s", "-o", "/dev/null", "http://10.77.0.1:8080/"]).status().is_ok_and(|s| s.success());
        if ok {
            return g;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nginx did not start; see {}", dir.join("nginx-error.log").display());
}

fn config(dir: &Path) -> PathBuf {
    let p = dir.join("sensor.toml");
    // flush the store every second so the crash test knows what must survive
    let extra = std::fs::read_to_string(dir.join("extra.toml")).unwrap_or_default();
    std::fs::write(&p, format!("[store]\nflush_interval_secs = 1\n[capture]\nhealth_interval_secs = 1\nbatch_max_wait_ms = 50\n{extra}")).unwrap();
    p
}

fn start_capture(lab: &Lab, dir: &Path, store: &Path, extra: &[&str]) -> Guard {
    start_capture_env(lab, dir, store, extra, &[])
}

fn start_capture_env(lab: &Lab, dir: &Path, store: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Guard {
    let cfg = config(dir);
    let mut c = lab.srv(bin().to_str().unwrap());
    for (k, v) in env {
        c.env(k, v);
    }
    c.args(["capture", "-i", &lab.iface, "-f", "tcp port 8080 or tcp port 8081 or tcp port 8443", "--config", cfg.to_str().unwrap(), "--store", store.to_str().unwrap()]);
    c.args(extra);
    c.stderr(std::fs::File::create(dir.join("capture.log")).unwrap());
    let g = Guard(c.spawn().expect("start apitap capture"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::fs::read_to_string(dir.join("capture.log")).unwrap_or_default().contains(&format!("capturing on {}", lab.iface)) {
            return g;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("apitap capture did not start: {}", std::fs::read_to_string(dir.join("capture.log")).unwrap_or_default());
}

fn signal(pid: u32, sig: &str) {
    assert!(Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

fn wait_exit(g: &mut Guard, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(st) = g.0.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "apitap did not stop within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http1_requests(lab: &Lab, n: u32) {
    let url = format!("http://10.77.0.1:8080/api/items/[1-{n}]");
    let o = lab.cli("curl").args(["-s", "-o", "/dev/null", "-w", "%{http_code}\\n", &url]).output().unwrap();
    let codes = String::from_utf8_lossy(&o.stdout);
    assert_eq!(codes.lines().filter(|l| *l == "200").count() as u32, n, "curl got {n} answers of 200");
}

fn h2c_requests(lab: &Lab, n: u32) {
    let uris: Vec<String> = (1..=5).map(|i| format!("http://10.77.0.1:8081/api/orders/{}", 1000 + i)).collect();
    let o = lab.cli("h2load").args(["-n", &n.to_string(), "-c", "4", "-m", "10"]).args(&uris).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(&format!("{n} succeeded")), "h2load: {text}");
}

fn dump(store: &Path) -> Vec<serde_json::Value> {
    let o = run_ok(&["dump", "--store", store.to_str().unwrap(), "--format", "json"]);
    serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap().as_array().cloned().unwrap()
}

fn requests_of(d: &[serde_json::Value], method: &str, path: &str) -> u64 {
    d.iter().filter(|e| e["method"] == method && e["path"] == path).map(|e| e["requests"].as_u64().unwrap()).sum()
}

#[test]
fn capture_counts_every_request_drops_none_and_stops_cleanly() {
    if !live_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let events = dir.path().join("events.jsonl");
    let stats = dir.path().join("stats.json");
    let lab = Lab::new("l");
    let _nginx = nginx(&lab, dir.path());
    let mut cap = start_capture(
        &lab,
        dir.path(),
        &store,
        &["--events", events.to_str().unwrap(), "--transactions", "--metrics", "127.0.0.1:9750", "--stats-json", stats.to_str().unwrap()],
    );
    let pid = cap.0.id();
    // no packet is parsed with privileges: every capability is gone
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let capeff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim().to_string();
    assert_eq!(u64::from_str_radix(&capeff, 16).unwrap(), 0, "capabilities left while capturing: {capeff}");

    let (n1, n2) = (6000u32, 6000u32);
    let started = Instant::now();
    http1_requests(&lab, n1);
    h2c_requests(&lab, n2);
    let secs = started.elapsed().as_secs_f64();
    eprintln!("live: {} requests in {secs:.2} s ({:.0} requests/s)", n1 + n2, f64::from(n1 + n2) / secs);

    // inspect while running: dump reads the live store (after a flush)
    std::thread::sleep(Duration::from_millis(2500));
    let d = dump(&store);
    assert_eq!(requests_of(&d, "GET", "/api/items/{id}"), u64::from(n1), "dump while running: {d:?}");
    // metrics while running
    let m = lab.srv("curl").args(["-s", "http://127.0.0.1:9750/metrics"]).output().unwrap();
    let text = String::from_utf8_lossy(&m.stdout);
    for name in [
        "apitap_packets_received_total",
        "apitap_packets_dropped_total{where=\"kernel\"} 0",
        "apitap_flows_active",
        "apitap_parser_bytes ",
        "apitap_parser_connections_shed_total 0",
        "apitap_transactions_total{protocol=\"http1\"} 6000",
        "apitap_store_write_seconds_total",
        "apitap_resident_memory_bytes",
    ] {
        assert!(text.contains(name), "metrics lack {name}:\n{text}");
    }

    signal(pid, "-TERM");
    let st = wait_exit(&mut cap, 30);
    assert!(st.success(), "exit status after SIGTERM: {st:?}");
    let log = std::fs::read_to_string(dir.path().join("capture.log")).unwrap();
    assert!(log.contains("apitap: health:"), "a health line in the log: {log}");
    assert!(log.contains(" MiB (0 connections shed), rss "), "the health line names the parsers' memory: {log}");

    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(s["capture"]["kernel_dropped"], 0, "{s}");
    assert_eq!(s["capture"]["interface_dropped"], 0, "{s}");
    assert_eq!(s["drops_by_limit"]["pipeline.reader_batches_dropped"], 0, "{s}");
    assert_eq!(s["transactions"].as_u64().unwrap(), u64::from(n1 + n2), "{s}");
    let d = dump(&store);
    assert_eq!(requests_of(&d, "GET", "/api/items/{id}"), u64::from(n1));
    assert_eq!(requests_of(&d, "GET", "/api/orders/{id}"), u64::from(n2));
    let all = read_jsonl(&events);
    let ev = of_class(&all, 4002);
    let h2 = ev.iter().filter(|e| e["http_request"]["version"] == "HTTP/2").count();
    assert_eq!((ev.len(), h2), ((n1 + n2) as usize, n2 as usize));
    assert!(ev.iter().all(|e| e["http_response"]["code"] == 200));
    // one inventory event per endpoint discovered
    let mut found: Vec<String> = of_class(&all, 5023).iter().map(|e| e["resources"][0]["data"]["path_template"].as_str().unwrap().to_string()).collect();
    found.sort();
    assert_eq!(found, ["/api/items/{id}", "/api/orders/{id}"]);
}

fn of_class(events: &[serde_json::Value], class: u64) -> Vec<serde_json::Value> {
    events.iter().filter(|e| e["class_uid"] == class).cloned().collect()
}

#[test]
fn kill_9_keeps_everything_flushed_before_and_sighup_reopens_events() {
    if !live_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let events = dir.path().join("events.jsonl");
    let lab = Lab::new("c");
    let _nginx = nginx(&lab, dir.path());
    // systemd's readiness protocol: a datagram socket named by NOTIFY_SOCKET
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut cap = start_capture_env(
        &lab,
        dir.path(),
        &store,
        &["--events", events.to_str().unwrap(), "--transactions"],
        &[("NOTIFY_SOCKET", &sock_path)],
    );
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY notification");
    assert!(String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "READY=1"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    http1_requests(&lab, 500);
    // log rotation: move the file away, SIGHUP, and the next events go to a new file
    let rotated = dir.path().join("events.jsonl.1");
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::rename(&events, &rotated).unwrap();
    signal(cap.0.id(), "-HUP");
    std::thread::sleep(Duration::from_millis(500));
    h2c_requests(&lab, 700);
    // the store flushes every second: wait well past it, then crash
    std::thread::sleep(Duration::from_millis(3000));
    signal(cap.0.id(), "-KILL");
    let st = wait_exit(&mut cap, 10);
    assert!(!st.success());
    let d = dump(&store);
    assert_eq!(requests_of(&d, "GET", "/api/items/{id}"), 500, "{d:?}");
    assert_eq!(requests_of(&d, "GET", "/api/orders/{id}"), 700, "{d:?}");
    assert_eq!(of_class(&read_jsonl(&rotated), 4002).len(), 500);
    assert_eq!(of_class(&read_jsonl(&events), 4002).len(), 700, "events after SIGHUP go to the reopened file");
    // and the store takes more writes after the crash
    let mut cap = start_capture(&lab, dir.path(), &store, &[]);
    http1_requests(&lab, 100);
    std::thread::sleep(Duration::from_millis(1000));
    signal(cap.0.id(), "-INT");
    assert!(wait_exit(&mut cap, 30).success());
    assert_eq!(requests_of(&dump(&store), "GET", "/api/items/{id}"), 600);
}

#[test]
fn systemd_unit_verifies_cleanly() {
    let unit = root().join("systemd/apitap.service");
    if !have("systemd-analyze") {
        assert!(!required(), "systemd-analyze is required (APITAP_REQUIRE_LIVE=1) but missing; apt-get install systemd");
        eprintln!("notice: skipping: systemd-analyze not installed");
        return;
    }
    // the unit names /usr/local/bin/apitap; verify against this build through a copy
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&unit).unwrap().replace("/usr/local/bin/apitap", bin().to_str().unwrap());
    let copy = dir.path().join("apitap.service");
    std::fs::write(&copy, text).unwrap();
    let o = Command::new("systemd-analyze").args(["verify", copy.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // lines about other units of the host (not ours) are not our concern
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("apitap")).collect();
    assert!(o.status.success() && ours.is_empty(), "systemd-analyze verify: {err}");
    for key in ["Type=notify", "AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN", "NoNewPrivileges=yes", "ProtectSystem=strict", "MemoryMax="] {
        assert!(std::fs::read_to_string(&unit).unwrap().contains(key), "unit lacks {key}");
    }
}

#[test]
fn capture_switches_to_the_configured_user_and_keeps_writing() {
    if !live_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // the user must be able to reach the store: open the test directory up
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let store = dir.path().join("store");
    let lab = Lab::new("u");
    let _nginx = nginx(&lab, dir.path());
    let mut cap = start_capture(&lab, dir.path(), &store, &["--user", "nobody"]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", cap.0.id())).unwrap();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace().map(String::from).collect::<Vec<_>>();
    assert_eq!(uid, ["65534"; 4], "real, effective, saved and fs uid are nobody's: {status}");
    http1_requests(&lab, 300);
    std::thread::sleep(Duration::from_millis(1500));
    signal(cap.0.id(), "-TERM");
    let st = wait_exit(&mut cap, 30);
    let log = std::fs::read_to_string(dir.path().join("capture.log")).unwrap();
    assert!(st.success(), "{log}");
    assert_eq!(requests_of(&dump(&store), "GET", "/api/items/{id}"), 300, "{log}");
    // the store now belongs to the user
    let meta = std::fs::metadata(&store).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 65534);
}

#[test]
fn a_full_outbox_drops_the_newest_events_in_capture_and_counts_them() {
    if !live_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // a sink nobody answers (a closed port) and a small outbox
    std::fs::write(
        dir.path().join("extra.toml"),
        "[outbox]\nmax_events = 50\ndrain_timeout_secs = 1\nmax_backoff_secs = 1\n[[sinks]]\nname = \"down\"\nkind = \"hec\"\naddress = \"127.0.0.1:9\"\ntls = false\ntoken = \"t\"\n",
    )
    .unwrap();
    let store = dir.path().join("store");
    let stats = dir.path().join("stats.json");
    let lab = Lab::new("o");
    let _nginx = nginx(&lab, dir.path());
    let mut cap = start_capture(&lab, dir.path(), &store, &["--transactions", "--stats-json", stats.to_str().unwrap()]);
    http1_requests(&lab, 300);
    std::thread::sleep(Duration::from_millis(1500));
    signal(cap.0.id(), "-TERM");
    let st = wait_exit(&mut cap, 30);
    let log = std::fs::read_to_string(dir.path().join("capture.log")).unwrap();
    // capture never waits for sinks: every request is in the inventory
    assert_eq!(requests_of(&dump(&store), "GET", "/api/items/{id}"), 300, "{log}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    let (spooled, dropped) = (s["outbox_appended"].as_u64().unwrap(), s["outbox_dropped"].as_u64().unwrap());
    assert!(spooled <= 50 && spooled > 0, "{s}");
    // the curl loop walks /api/items/1..300 in order: the enumeration
    // detector reports it, and its finding event is spooled or dropped too
    let findings = s["findings_new"].as_u64().unwrap();
    assert_eq!(s["findings_by_kind"]["bola_enumeration"], 1, "{s}");
    assert_eq!(spooled + dropped, 301 + findings, "300 transactions, one discovery event and the findings, spooled or dropped: {s}");
    assert_eq!(s["sinks"][0]["spooled"].as_u64(), Some(spooled), "{}", s["sinks"]);
    assert_eq!(st.code(), Some(3), "undelivered events are reported: {log}");
}

#[test]
fn an_unwritable_event_file_does_not_stop_capture() {
    if !live_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let stats = dir.path().join("stats.json");
    let lab = Lab::new("f");
    let _nginx = nginx(&lab, dir.path());
    // every write to /dev/full fails with ENOSPC
    let mut cap = start_capture(&lab, dir.path(), &store, &["--transactions", "--events", "/dev/full", "--stats-json", stats.to_str().unwrap()]);
    http1_requests(&lab, 100);
    std::thread::sleep(Duration::from_millis(1500));
    signal(cap.0.id(), "-TERM");
    let st = wait_exit(&mut cap, 30);
    let log = std::fs::read_to_string(dir.path().join("capture.log")).unwrap();
    assert_eq!(requests_of(&dump(&store), "GET", "/api/items/{id}"), 100, "every request is in the inventory: {log}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(s["events_written"], 0, "{s}");
    assert!(s["events_failed"].as_u64().unwrap() >= 100, "the lost events are counted: {s}");
    assert_eq!(st.code(), Some(3), "lost events are reported in the exit status: {log}");
}

#[test]
fn tls_sessions_are_decrypted_with_a_key_log_written_while_capturing() {
    if !live_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let stats = dir.path().join("stats.json");
    let keylog = dir.path().join("keys.log");
    std::fs::write(&keylog, "").unwrap();
    let lab = Lab::new("t");
    let _nginx = nginx(&lab, dir.path());
    let mut cap = start_capture(&lab, dir.path(), &store, &["--tls-keylog", keylog.to_str().unwrap(), "--stats-json", stats.to_str().unwrap()]);
    // curl writes the session's secrets to the key log as it connects: the
    // sensor sees the handshake first and the secrets a moment later
    for (version, n) in [(["--tlsv1.3", "--tls-max", "1.3"], 30), (["--tlsv1.2", "--tls-max", "1.2"], 20)] {
        let url = format!("https://api.lab.test:8443/api/tls/[1-{n}]");
        let o = lab
            .cli("curl")
            .env("SSLKEYLOGFILE", &keylog)
            .args(["-sS", "-k", version[0], version[1], version[2], "--resolve", "api.lab.test:8443:10.77.0.1", "-o", "/dev/null", "-w", "%{http_code}\\n", &url])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().filter(|l| *l == "200").count(), n, "curl {version:?}: {} {}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    }
    std::thread::sleep(Duration::from_millis(3000));
    signal(cap.0.id(), "-TERM");
    let st = wait_exit(&mut cap, 30);
    let log = std::fs::read_to_string(dir.path().join("capture.log")).unwrap();
    assert_eq!(st.code(), Some(0), "{log}");
    assert_eq!(requests_of(&dump(&store), "GET", "/api/tls/{id}"), 50, "every TLS request decrypted and inventoried: {log}");
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(s["tls_decrypted"], 2, "{s}");
    let o = run_ok(&["dump", "--tls", "--store", store.to_str().unwrap(), "--format", "json"]);
    let tls: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let svc = tls.iter().find(|t| t["sni"] == "api.lab.test").unwrap_or_else(|| panic!("{tls:?}"));
    assert_eq!(svc["sessions_decrypted"], 2, "{svc}");
    assert_eq!(svc["certificate"]["subject_cn"], "api.lab.test", "the TLS 1.2 certificate is read: {svc}");
    let versions: Vec<&str> = svc["tls_versions"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(versions, ["TLSv1.2", "TLSv1.3"], "{svc}");
}
