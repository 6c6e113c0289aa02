//! SIEM shipping against a real receiver: rsyslog (Debian `rsyslog` +
//! `rsyslog-gnutls`) with a TLS listener on 127.0.0.1 and a self-signed CA
//! made here with openssl. Events go through the durable outbox and the
//! syslog-TLS sink (RFC 5424 in RFC 5425 octet-counted frames); rsyslog writes
//! each message body to a file, which is compared with the events apitap
//! wrote to its own JSON-lines file.
//!
//! Without rsyslogd, its gtls module or openssl the tests print a notice and
//! skip; `APITAP_REQUIRE_LIVE=1` (set by CI) makes them mandatory.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn can_run() -> bool {
    let gtls = ["/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so", "/usr/lib/aarch64-linux-gnu/rsyslog/lmnsd_gtls.so"]
        .iter()
        .any(|p| Path::new(p).exists());
    let tools = ["rsyslogd", "openssl"]
        .iter()
        .all(|t| Command::new("sh").args(["-c", &format!("command -v {t}")]).stdout(Stdio::null()).status().is_ok_and(|s| s.success()));
    if gtls && tools {
        return true;
    }
    let required = std::env::var("APITAP_REQUIRE_LIVE").is_ok_and(|v| v == "1");
    assert!(!required, "rsyslog tests are required (APITAP_REQUIRE_LIVE=1): apt-get install rsyslog rsyslog-gnutls openssl");
    eprintln!("notice: skipping: rsyslogd with its gtls module and openssl are needed (apt-get install rsyslog rsyslog-gnutls openssl)");
    false
}

fn sh(dir: &Path, script: &str) {
    let st = Command::new("sh").arg("-c").arg(script).current_dir(dir).stderr(Stdio::null()).status().unwrap();
    assert!(st.success(), "{script}");
}

/// A CA and a server certificate for localhost / 127.0.0.1.
fn certificates(dir: &Path) {
    sh(dir, "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=apitap test CA'");
    sh(dir, "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=localhost'");
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    sh(dir, "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Rsyslog {
    child: Child,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rsyslog(dir: &Path, port: u16) -> Rsyslog {
    let d = dir.display();
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{d}\" maxMessageSize=\"4m\" DefaultNetstreamDriver=\"gtls\"\n\
             DefaultNetstreamDriverCAFile=\"{d}/ca.pem\" DefaultNetstreamDriverCertFile=\"{d}/server.pem\"\n\
             DefaultNetstreamDriverKeyFile=\"{d}/server.key\")\n\
             module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n\
             input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
             template(name=\"msgonly\" type=\"string\" string=\"%msg%\\n\")\n\
             action(type=\"omfile\" file=\"{d}/received.log\" template=\"msgonly\")\n"
        ),
    )
    .unwrap();
    let _ = std::fs::remove_file(dir.join("rsyslog.pid"));
    // held from the start, so that rsyslogd is stopped on every path out
    let server = Rsyslog {
        child: Command::new("rsyslogd")
            .args(["-n", "-f", conf.to_str().unwrap(), "-i", dir.join("rsyslog.pid").to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(dir.join("rsyslogd.log")).unwrap())
            .spawn()
            .expect("start rsyslogd"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("rsyslogd did not listen on {port}: {}", std::fs::read_to_string(dir.join("rsyslogd.log")).unwrap_or_default());
}

fn sensor_toml(dir: &Path, port: u16) -> PathBuf {
    let p = dir.join("sensor.toml");
    std::fs::write(
        &p,
        format!(
            "[outbox]\nconfirm_secs = 2\ndrain_timeout_secs = 60\nmax_backoff_secs = 1\n\n[[sinks]]\nname = \"siem\"\nkind = \"syslog\"\n\
             address = \"127.0.0.1:{port}\"\nca_file = \"{}\"\nserver_name = \"localhost\"\nbatch_events = 100\n",
            dir.join("ca.pem").display()
        ),
    )
    .unwrap();
    p
}

/// The complete JSON lines of a file another process is writing (a line torn
/// by a read in the middle of a write, or by a killed writer, is skipped).
fn lines_so_far(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n').filter(|l| l.ends_with('\n')).filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Events by id; and how many ids came more than once.
fn by_uid(events: &[serde_json::Value]) -> (HashMap<String, serde_json::Value>, usize) {
    let mut m = HashMap::new();
    let mut dups = 0;
    for e in events {
        let uid = e["metadata"]["uid"].as_str().expect("every event has metadata.uid").to_string();
        if m.insert(uid, e.clone()).is_some() {
            dups += 1;
        }
    }
    (m, dups)
}

#[test]
fn every_event_arrives_at_rsyslog_over_tls_exactly_as_written() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let port = free_port();
    let _rs = rsyslog(dir.path(), port);
    let cfg = sensor_toml(dir.path(), port);
    let (store, events, stats) = (dir.path().join("store"), dir.path().join("events.jsonl"), dir.path().join("stats.json"));
    let o = replay_sample_with(&cfg, &store, &events, Some(&stats));
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    std::thread::sleep(Duration::from_millis(500));
    let (written, _) = by_uid(&read_jsonl(&events));
    let (received, dups) = by_uid(&read_jsonl(&dir.path().join("received.log")));
    assert!(written.len() > 2000, "the sample gives thousands of events");
    assert_eq!(dups, 0, "a healthy connection sends every event once");
    assert_eq!(received.len(), written.len());
    for (uid, e) in &written {
        assert_eq!(received.get(uid), Some(e), "event {uid} arrived changed or not at all");
    }
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(s["sinks"][0]["sent"].as_u64(), Some(written.len() as u64), "{}", s["sinks"]);
    assert_eq!(s["sinks"][0]["spooled"], 0);
    // the operator's view: everything delivered, nothing pending, outbox trimmed
    let o = run_ok(&["outbox", "status", "--config", cfg.to_str().unwrap(), "--store", store.to_str().unwrap(), "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["sinks"][0]["delivered_up_to"].as_u64(), Some(written.len() as u64), "{st}");
    assert_eq!(st["sinks"][0]["pending"], 0, "{st}");
    assert_eq!(st["spooled"], 0, "delivered events leave the outbox: {st}");
}

#[test]
fn killing_rsyslog_mid_replay_loses_nothing() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let port = free_port();
    let mut rs = rsyslog(dir.path(), port);
    let cfg = sensor_toml(dir.path(), port);
    let (store, events, stats) = (dir.path().join("store"), dir.path().join("events.jsonl"), dir.path().join("stats.json"));
    // the capture arrives through a pipe, so the replay is still running when rsyslog dies
    let fifo = dir.path().join("capture.fifo");
    sh(dir.path(), &format!("mkfifo {}", fifo.display()));
    let apitap = Command::new(bin())
        .args(["replay", "--config", cfg.to_str().unwrap(), "--store", store.to_str().unwrap(), "--transactions"])
        .args(["--events", events.to_str().unwrap(), "--stats-json", stats.to_str().unwrap(), fifo.to_str().unwrap()])
        .stderr(std::fs::File::create(dir.path().join("apitap.log")).unwrap())
        .spawn()
        .unwrap();
    let pcap = std::fs::read(fixture("sample.pcap")).unwrap();
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let half = pcap.len() / 2;
    w.write_all(&pcap[..half]).unwrap();
    w.flush().unwrap();
    // wait until rsyslog has received part of it, then kill it
    let received = dir.path().join("received.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    while lines_so_far(&received).is_empty() {
        assert!(Instant::now() < deadline, "nothing reached rsyslog: {}", std::fs::read_to_string(dir.path().join("apitap.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = lines_so_far(&received).len();
    let _ = rs.child.kill();
    let _ = rs.child.wait();
    std::thread::sleep(Duration::from_millis(1000));
    w.write_all(&pcap[half..]).unwrap();
    drop(w);
    std::thread::sleep(Duration::from_millis(1000));
    let _rs = rsyslog(dir.path(), port);
    let mut apitap = apitap;
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(st) = apitap.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "replay did not finish after rsyslog came back");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.path().join("apitap.log")).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{log}");
    std::thread::sleep(Duration::from_millis(500));
    let (written, _) = by_uid(&read_jsonl(&events));
    let (got, dups) = by_uid(&lines_so_far(&received));
    let missing: Vec<&String> = written.keys().filter(|u| !got.contains_key(*u)).collect();
    eprintln!("rsyslog killed after {before} events; written {}, received {} distinct, {dups} duplicates", written.len(), got.len());
    assert!(missing.is_empty(), "{} events never arrived: {:?}\n{log}", missing.len(), missing.iter().take(5).collect::<Vec<_>>());
    for (uid, e) in &written {
        assert_eq!(got.get(uid), Some(e), "event {uid} changed");
    }
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    assert_eq!(s["sinks"][0]["spooled"], 0, "{}", s["sinks"]);
    assert!(s["sinks"][0]["failures"].as_u64().unwrap() >= 1, "the broken connection was counted: {}", s["sinks"]);
}
