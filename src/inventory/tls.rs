//! The TLS service inventory: one record per (server address, port, SNI),
//! aggregated from the sessions seen (commutative, like endpoint records).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::proto::tls::{version_name, Decryption, TlsSession};

/// Distinct clients and fingerprints kept per service.
pub const MAX_TLS_SET: usize = 64;

/// One TLS service as stored and dumped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsServiceRecord {
    pub server_ip: String,
    pub port: u16,
    /// Server name from the ClientHello ("" when none was sent).
    pub sni: String,
    pub sessions: u64,
    /// Negotiated ALPN protocol → sessions.
    pub alpn: BTreeMap<String, u64>,
    /// ALPN protocols offered by clients → sessions.
    pub alpn_offered: BTreeMap<String, u64>,
    /// Negotiated version (`TLSv1.3`) → sessions.
    pub versions: BTreeMap<String, u64>,
    pub versions_offered: BTreeSet<String>,
    /// Negotiated cipher suite (`0x1301`) → sessions.
    pub cipher_suites: BTreeMap<String, u64>,
    /// JA4 client fingerprint → sessions (at most [`MAX_TLS_SET`]).
    pub ja4: BTreeMap<String, u64>,
    pub clients: BTreeSet<IpAddr>,
    pub clients_capped: bool,
    pub sessions_decrypted: u64,
    /// A key log was given but had no secrets for the session.
    pub sessions_without_keys: u64,
    pub sessions_failed: u64,
    /// Sessions not attempted (no key log, or the handshake was not captured).
    pub sessions_not_attempted: u64,
    /// Failure reason → sessions.
    pub failures: BTreeMap<String, u64>,
    pub cert_subject: Option<String>,
    pub cert_issuer: Option<String>,
    /// Seconds since the epoch.
    pub cert_not_after: Option<i64>,
    pub first_seen_us: u64,
    pub last_seen_us: u64,
}

fn bump(m: &mut BTreeMap<String, u64>, k: &str, n: u64) {
    *m.entry(k.to_string()).or_default() += n;
}

impl TlsServiceRecord {
    /// The record key: `ip\0port\0sni`.
    pub fn key(&self) -> String {
        format!("{}\0{}\0{}", self.server_ip, self.port, self.sni)
    }

    /// The empty record a session belongs to.
    pub fn for_session(s: &TlsSession) -> Option<TlsServiceRecord> {
        let server = s.server?;
        Some(TlsServiceRecord { server_ip: server.ip().to_string(), port: server.port(), sni: s.sni.clone().unwrap_or_default(), ..Default::default() })
    }

    pub fn observe(&mut self, s: &TlsSession) {
        self.sessions += 1;
        if let Some(a) = &s.alpn {
            bump(&mut self.alpn, a, 1);
        }
        for a in &s.alpn_offered {
            bump(&mut self.alpn_offered, a, 1);
        }
        if let Some(v) = s.version {
            bump(&mut self.versions, &version_name(v), 1);
        }
        self.versions_offered.extend(s.versions_offered.iter().map(|v| version_name(*v)));
        if let Some(c) = s.cipher {
            bump(&mut self.cipher_suites, &format!("0x{c:04x}"), 1);
        }
        if let Some(j) = &s.ja4 {
            if self.ja4.len() < MAX_TLS_SET || self.ja4.contains_key(j) {
                bump(&mut self.ja4, j, 1);
            }
        }
        if let Some(c) = s.client {
            if self.clients.len() < MAX_TLS_SET {
                self.clients.insert(c.ip());
            } else if !self.clients.contains(&c.ip()) {
                self.clients_capped = true;
            }
        }
        match &s.decryption {
            Decryption::Decrypted => self.sessions_decrypted += 1,
            Decryption::NoKeys => self.sessions_without_keys += 1,
            Decryption::NotAttempted => self.sessions_not_attempted += 1,
            Decryption::Failed(why) => {
                self.sessions_failed += 1;
                if self.failures.len() < MAX_TLS_SET || self.failures.contains_key(why) {
                    bump(&mut self.failures, why, 1);
                }
            }
        }
        if let Some(c) = &s.cert {
            self.cert_subject = c.subject_cn.clone().or(self.cert_subject.take());
            self.cert_issuer = c.issuer_cn.clone().or(self.cert_issuer.take());
            self.cert_not_after = c.not_after.or(self.cert_not_after);
        }
        let t = s.ts_us;
        if t > 0 {
            self.first_seen_us = if self.first_seen_us == 0 { t } else { self.first_seen_us.min(t) };
            self.last_seen_us = self.last_seen_us.max(t);
        }
    }

    pub fn merge(&mut self, o: &TlsServiceRecord) {
        self.sessions += o.sessions;
        for (k, v) in &o.alpn {
            bump(&mut self.alpn, k, *v);
        }
        for (k, v) in &o.alpn_offered {
            bump(&mut self.alpn_offered, k, *v);
        }
        for (k, v) in &o.versions {
            bump(&mut self.versions, k, *v);
        }
        self.versions_offered.extend(o.versions_offered.iter().cloned());
        for (k, v) in &o.cipher_suites {
            bump(&mut self.cipher_suites, k, *v);
        }
        for (k, v) in &o.ja4 {
            if self.ja4.len() < MAX_TLS_SET || self.ja4.contains_key(k) {
                bump(&mut self.ja4, k, *v);
            }
        }
        for c in &o.clients {
            if self.clients.len() < MAX_TLS_SET {
                self.clients.insert(*c);
            } else if !self.clients.contains(c) {
                self.clients_capped = true;
            }
        }
        self.clients_capped |= o.clients_capped;
        self.sessions_decrypted += o.sessions_decrypted;
        self.sessions_without_keys += o.sessions_without_keys;
        self.sessions_failed += o.sessions_failed;
        self.sessions_not_attempted += o.sessions_not_attempted;
        for (k, v) in &o.failures {
            bump(&mut self.failures, k, *v);
        }
        if o.cert_subject.is_some() {
            self.cert_subject = o.cert_subject.clone();
        }
        if o.cert_issuer.is_some() {
            self.cert_issuer = o.cert_issuer.clone();
        }
        if o.cert_not_after.is_some() {
            self.cert_not_after = o.cert_not_after;
        }
        if o.first_seen_us > 0 {
            self.first_seen_us = if self.first_seen_us == 0 { o.first_seen_us } else { self.first_seen_us.min(o.first_seen_us) };
        }
        self.last_seen_us = self.last_seen_us.max(o.last_seen_us);
    }
}
