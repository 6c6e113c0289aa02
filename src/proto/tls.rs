//! TLS on a mirrored connection: the handshake in the clear (ClientHello,
//! ServerHello, and the certificate of TLS ≤ 1.2) for the TLS service
//! inventory, and — given key-log secrets as data — record decryption that
//! hands the plaintext to a fresh [`super::Connection`] (HTTP/1 or HTTP/2,
//! recognised from content as on any connection).
//!
//! # Wire formats (RFC 8446 §5.1, §4; RFC 5246 §6.2)
//! ```text
//! record:     type(1) legacy_version(2) length(2) fragment(length ≤ 2^14 + 256)
//! handshake:  msg_type(1) length(3) body
//! ClientHello: version(2) random(32) session_id<0..32> cipher_suites<2..2^16-2>
//!              compression<1..255> extensions<0..2^16-1>
//! ServerHello: version(2) random(32) session_id<0..32> cipher_suite(2)
//!              compression(1) extensions<0..2^16-1>
//! ```
//! Decryption: TLS 1.3 with `{CLIENT,SERVER}_{HANDSHAKE,}_TRAFFIC_SECRET*`
//! (RFC 8446 §7.1–7.3: keys from HKDF-Expand-Label, nonce = iv ⊕ sequence;
//! the inner content type is the last non-zero byte), TLS 1.2 with
//! `CLIENT_RANDOM` master secrets (RFC 5246 §6.3 key block from the PRF;
//! AES-GCM with an 8-byte explicit nonce, RFC 5288; ChaCha20-Poly1305 with
//! iv ⊕ sequence, RFC 7905). The primitives (HKDF, HMAC, AEAD) are ring's.
//!
//! # Limits
//! Handshake bytes buffered per direction: [`MAX_HANDSHAKE_BYTES`]; a record
//! longer than [`MAX_RECORD`] or a gap ends decryption of that direction
//! (counted); nothing else is buffered beyond one record.

use std::collections::HashMap;
use std::net::SocketAddr;

use ring::{aead, hkdf, hmac};
use serde::Serialize;

use super::{Chunk, Connection, Direction, ProtoConfig, ProtoStats, TxSink};

/// Handshake bytes (and one partial record) buffered per direction.
pub const MAX_HANDSHAKE_BYTES: usize = 64 * 1024;
/// Longest record accepted (2^14 + 256 of ciphertext expansion, and the 5-byte header).
pub const MAX_RECORD: usize = (1 << 14) + 256 + 5;
/// Protected bytes held per connection while its secrets are not yet in
/// the key log (a key log written by the client as it connects reaches the
/// sensor after the handshake); beyond it they are dropped and counted.
pub const MAX_PENDING_BYTES: usize = 256 * 1024;
/// Lines of a key log kept (each a few hundred bytes).
pub const MAX_KEYLOG_ENTRIES: usize = 1 << 20;

const CT_CCS: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APPDATA: u8 = 23;

const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const HS_CERTIFICATE: u8 = 11;
const HS_FINISHED: u8 = 20;
const HS_KEY_UPDATE: u8 = 24;

const EXT_SNI: u16 = 0;
const EXT_GROUPS: u16 = 10;
const EXT_SIG_ALGS: u16 = 13;
const EXT_ALPN: u16 = 16;
const EXT_VERSIONS: u16 = 43;

/// Secrets of one session from an NSS key log, by label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    /// TLS ≤ 1.2 `CLIENT_RANDOM` (48 bytes).
    pub master: Option<Vec<u8>>,
    pub client_handshake: Option<Vec<u8>>,
    pub server_handshake: Option<Vec<u8>>,
    pub client_traffic0: Option<Vec<u8>>,
    pub server_traffic0: Option<Vec<u8>>,
}

/// An NSS key log (`SSLKEYLOGFILE`), by client random.
#[derive(Clone, Debug, Default)]
pub struct KeyLog {
    sessions: HashMap<[u8; 32], Secrets>,
}

/// What reading a key log found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KeyLogStats {
    pub lines: u64,
    pub secrets: u64,
    pub sessions: u64,
    /// Lines that are not `LABEL <64 hex> <hex>` (comments and blank lines excluded).
    pub malformed: u64,
    /// Labels this sensor does not use (EXPORTER_SECRET, EARLY_*…).
    pub unused: u64,
    /// Lines past [`MAX_KEYLOG_ENTRIES`].
    pub limit_dropped: u64,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

impl KeyLog {
    /// Parses key-log text (every line `LABEL CLIENT_RANDOM SECRET`, hex).
    pub fn parse(text: &str) -> (KeyLog, KeyLogStats) {
        let mut kl = KeyLog::default();
        let mut st = KeyLogStats::default();
        kl.add(text, &mut st);
        (kl, st)
    }

    /// Adds the lines of `text` (a re-read of an append-only file adds the new ones).
    pub fn add(&mut self, text: &str, st: &mut KeyLogStats) {
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            st.lines += 1;
            let mut parts = line.split_ascii_whitespace();
            let (Some(label), Some(cr), Some(secret), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                st.malformed += 1;
                continue;
            };
            let (Some(cr), Some(secret)) = (unhex(cr).and_then(|v| <[u8; 32]>::try_from(v).ok()), unhex(secret)) else {
                st.malformed += 1;
                continue;
            };
            if !self.sessions.contains_key(&cr) && self.sessions.len() >= MAX_KEYLOG_ENTRIES {
                st.limit_dropped += 1;
                continue;
            }
            let e = self.sessions.entry(cr).or_default();
            let slot = match label {
                "CLIENT_RANDOM" => &mut e.master,
                "CLIENT_HANDSHAKE_TRAFFIC_SECRET" => &mut e.client_handshake,
                "SERVER_HANDSHAKE_TRAFFIC_SECRET" => &mut e.server_handshake,
                "CLIENT_TRAFFIC_SECRET_0" => &mut e.client_traffic0,
                "SERVER_TRAFFIC_SECRET_0" => &mut e.server_traffic0,
                _ => {
                    st.unused += 1;
                    continue;
                }
            };
            *slot = Some(secret);
            st.secrets += 1;
        }
        st.sessions = self.sessions.len() as u64;
    }

    pub fn get(&self, client_random: &[u8; 32]) -> Option<&Secrets> {
        self.sessions.get(client_random)
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

/// A certificate's names and validity (DER, as far as it parses).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    pub subject_cn: Option<String>,
    pub issuer_cn: Option<String>,
    /// Seconds since the epoch.
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
}

/// How decryption of a session went.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decryption {
    /// No key log given, or the handshake was not seen.
    #[default]
    NotAttempted,
    /// The key log has no secrets for this session.
    NoKeys,
    Decrypted,
    /// Keys were there but decryption failed (the reason).
    Failed(String),
}

/// What one TLS session showed, for the TLS inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TlsSession {
    pub client: Option<SocketAddr>,
    pub server: Option<SocketAddr>,
    pub sni: Option<String>,
    pub alpn_offered: Vec<String>,
    pub alpn: Option<String>,
    /// Versions offered (supported_versions, else the legacy version), as wire codes.
    pub versions_offered: Vec<u16>,
    pub version: Option<u16>,
    pub ciphers_offered: Vec<u16>,
    pub cipher: Option<u16>,
    pub ja4: Option<String>,
    pub cert: Option<CertInfo>,
    pub decryption: Decryption,
    /// Packet time (µs) of the ClientHello.
    pub ts_us: u64,
    /// Records that failed authentication.
    pub bad_records: u64,
}

/// `0x0304` → `TLSv1.3`.
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSLv3".into(),
        0x0301 => "TLSv1.0".into(),
        0x0302 => "TLSv1.1".into(),
        0x0303 => "TLSv1.2".into(),
        0x0304 => "TLSv1.3".into(),
        other => format!("0x{other:04x}"),
    }
}

fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

// ------------------------------------------------------------- byte reader

struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = self.0.split_at_checked(n)?;
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        let b: [u8; 2] = self.take(2)?.try_into().ok()?;
        Some(u16::from_be_bytes(b))
    }
    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(b.iter().fold(0usize, |a, x| (a << 8) | usize::from(*x)))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u8()?);
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

fn u16s(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2).filter_map(|c| <[u8; 2]>::try_from(c).ok()).map(u16::from_be_bytes).collect()
}

fn alpn_list(b: &[u8]) -> Vec<String> {
    let mut r = Rd(b);
    let Some(list) = r.vec16() else { return Vec::new() };
    let mut r = Rd(list);
    let mut out = Vec::new();
    while let Some(p) = r.vec8() {
        out.push(String::from_utf8_lossy(p).into_owned());
        if out.len() >= 16 {
            break;
        }
    }
    out
}

// ------------------------------------------------------------- hellos and JA4

struct Hello {
    random: [u8; 32],
    ciphers: Vec<u16>,
    exts: Vec<u16>,
    sni: Option<String>,
    alpn: Vec<String>,
    versions: Vec<u16>,
    sig_algs: Vec<u16>,
    legacy_version: u16,
}

fn parse_hello(body: &[u8], client: bool) -> Option<Hello> {
    let mut r = Rd(body);
    let legacy_version = r.u16()?;
    let random: [u8; 32] = r.take(32)?.try_into().ok()?;
    r.vec8()?; // session id
    let ciphers = if client { u16s(r.vec16()?) } else { vec![r.u16()?] };
    if client {
        r.vec8()?;
    } else {
        r.u8()?;
    }
    let mut h = Hello { random, ciphers, exts: Vec::new(), sni: None, alpn: Vec::new(), versions: Vec::new(), sig_algs: Vec::new(), legacy_version };
    let Some(exts) = r.vec16() else { return Some(h) };
    let mut r = Rd(exts);
    while let (Some(t), Some(data)) = (r.u16(), r.vec16()) {
        h.exts.push(t);
        match t {
            EXT_SNI if client => {
                // server_name_list<1..2^16-1>: name_type(1) host_name<1..2^16-1>
                let mut s = Rd(data);
                let mut list = Rd(s.vec16().unwrap_or_default());
                if list.u8() == Some(0) {
                    if let Some(name) = list.vec16() {
                        h.sni = Some(String::from_utf8_lossy(name).to_ascii_lowercase());
                    }
                }
            }
            EXT_ALPN => h.alpn = alpn_list(data),
            EXT_VERSIONS if client => h.versions = u16s(Rd(data).vec8().unwrap_or_default()),
            EXT_VERSIONS => h.versions = u16s(data),
            EXT_SIG_ALGS => h.sig_algs = u16s(Rd(data).vec16().unwrap_or_default()),
            EXT_GROUPS => {}
            _ => {}
        }
        if h.exts.len() >= 256 {
            break;
        }
    }
    Some(h)
}

fn sha256_12(s: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(s.as_bytes());
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The JA4 fingerprint of a ClientHello (FoxIO's JA4 specification, TCP).
fn ja4(h: &Hello) -> String {
    let ver = h.versions.iter().copied().filter(|v| !is_grease(*v)).max().unwrap_or(h.legacy_version);
    let v = match ver {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        _ => "00",
    };
    let sni = if h.sni.is_some() { 'd' } else { 'i' };
    let ciphers: Vec<u16> = h.ciphers.iter().copied().filter(|c| !is_grease(*c)).collect();
    let exts: Vec<u16> = h.exts.iter().copied().filter(|e| !is_grease(*e)).collect();
    let alpn = match h.alpn.first().map(|a| a.as_bytes()) {
        Some([]) | None => "00".to_string(),
        Some(a) => {
            let (f, l) = (a.first().copied().unwrap_or(b'0'), a.last().copied().unwrap_or(b'0'));
            if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                format!("{}{}", f as char, l as char)
            } else {
                format!("{:x}{:x}", f >> 4, l & 0xf)
            }
        }
    };
    let mut sc: Vec<String> = ciphers.iter().map(|c| format!("{c:04x}")).collect();
    sc.sort();
    let mut se: Vec<String> = exts.iter().filter(|e| **e != EXT_SNI && **e != EXT_ALPN).map(|e| format!("{e:04x}")).collect();
    se.sort();
    let sigs: Vec<String> = h.sig_algs.iter().filter(|s| !is_grease(**s)).map(|s| format!("{s:04x}")).collect();
    let ext_part = if sigs.is_empty() { se.join(",") } else { format!("{}_{}", se.join(","), sigs.join(",")) };
    let b = if sc.is_empty() { "000000000000".to_string() } else { sha256_12(&sc.join(",")) };
    let c = if se.is_empty() { "000000000000".to_string() } else { sha256_12(&ext_part) };
    format!("t{v}{sni}{:02}{:02}{alpn}_{b}_{c}", ciphers.len().min(99), exts.len().min(99))
}

// ------------------------------------------------------------- certificates (DER)

/// One DER element: (tag, contents, rest).
fn der(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let mut r = Rd(b);
    let tag = r.u8()?;
    let first = r.u8()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        r.take(n)?.iter().fold(0usize, |a, x| (a << 8) | usize::from(*x))
    };
    let body = r.take(len)?;
    Some((tag, body, r.rest()))
}

/// The common name (2.5.4.3) of an X.501 Name.
fn common_name(name: &[u8]) -> Option<String> {
    let mut rdns = name;
    while let Some((_, set, rest)) = der(rdns) {
        rdns = rest;
        let mut atvs = set;
        while let Some((_, atv, more)) = der(atvs) {
            atvs = more;
            let (_, oid, after) = der(atv)?;
            if oid == [0x55, 0x04, 0x03] {
                let (_, val, _) = der(after)?;
                return Some(String::from_utf8_lossy(val).chars().take(256).collect());
            }
        }
    }
    None
}

/// UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ) → epoch seconds.
fn der_time(tag: u8, v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let (year, rest) = match tag {
        0x17 => {
            let y: i64 = s.get(0..2)?.parse().ok()?;
            (if y < 50 { 2000 + y } else { 1900 + y }, s.get(2..)?)
        }
        0x18 => (s.get(0..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let n = |a: usize| -> Option<i64> { rest.get(a..a + 2)?.parse().ok() };
    let (mo, d, h, mi, se) = (n(0)?, n(2)?, n(4)?, n(6)?, n(8).unwrap_or(0));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    // days from the civil date (proleptic Gregorian)
    let y = if mo <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// Subject and issuer common names and validity of a DER certificate.
pub fn parse_certificate(cert: &[u8]) -> Option<CertInfo> {
    let (_, certificate, _) = der(cert)?;
    let (_, tbs, _) = der(certificate)?;
    let mut f = tbs;
    let (tag, _, rest) = der(f)?;
    if tag == 0xa0 {
        f = rest; // explicit version
    }
    let (_, _, f) = der(f)?; // serial
    let (_, _, f) = der(f)?; // signature algorithm
    let (_, issuer, f) = der(f)?;
    let (_, validity, f) = der(f)?;
    let (_, subject, _) = der(f)?;
    let (t1, nb, rest) = der(validity)?;
    let (t2, na, _) = der(rest)?;
    Some(CertInfo { subject_cn: common_name(subject), issuer_cn: common_name(issuer), not_before: der_time(t1, nb), not_after: der_time(t2, na) })
}

// ------------------------------------------------------------- key schedule

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    Chacha,
}

impl Cipher {
    fn alg(self) -> &'static aead::Algorithm {
        match self {
            Cipher::Aes128Gcm => &aead::AES_128_GCM,
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::Chacha => &aead::CHACHA20_POLY1305,
        }
    }
    fn key_len(self) -> usize {
        self.alg().key_len()
    }
}

/// The AEAD cipher and hash of a suite this sensor can decrypt.
fn suite(code: u16) -> Option<(Cipher, Hash)> {
    Some(match code {
        0x1301 => (Cipher::Aes128Gcm, Hash::Sha256),
        0x1302 => (Cipher::Aes256Gcm, Hash::Sha384),
        0x1303 => (Cipher::Chacha, Hash::Sha256),
        // TLS 1.2 ECDHE/DHE/RSA with AES-GCM and ChaCha20-Poly1305
        0xc02b | 0xc02f | 0x009e | 0x009c | 0xc0a0 => (Cipher::Aes128Gcm, Hash::Sha256),
        0xc02c | 0xc030 | 0x009f | 0x009d => (Cipher::Aes256Gcm, Hash::Sha384),
        0xcca8..=0xccaa => (Cipher::Chacha, Hash::Sha256),
        _ => return None,
    })
}

/// Whether a negotiated suite is weak (NULL, export, anonymous, RC4, DES/3DES, MD5).
pub fn weak_cipher(code: u16) -> bool {
    matches!(
        code,
        0x0000..=0x000a | 0x000b..=0x001b | 0x0060..=0x0066 | 0x008a | 0x008e | 0x0092 | 0xc002 | 0xc007 | 0xc00c | 0xc011 | 0xc016 | 0xc001 | 0xc006 | 0xc00b | 0xc010 | 0xc015 | 0xc003 | 0xc008 | 0xc00d | 0xc012 | 0xc017
    )
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
fn expand_label(hash: Hash, secret: &[u8], label: &str, len: usize) -> Option<Vec<u8>> {
    let alg = match hash {
        Hash::Sha256 => hkdf::HKDF_SHA256,
        Hash::Sha384 => hkdf::HKDF_SHA384,
    };
    let prk = hkdf::Prk::new_less_safe(alg, secret);
    let full = format!("tls13 {label}");
    let len16 = u16::try_from(len).ok()?.to_be_bytes();
    let llen = [u8::try_from(full.len()).ok()?];
    let info: [&[u8]; 4] = [&len16, &llen, full.as_bytes(), &[0u8]];
    let okm = prk.expand(&info, Len(len)).ok()?;
    let mut out = vec![0u8; len];
    okm.fill(&mut out).ok()?;
    Some(out)
}

/// The TLS 1.2 PRF (RFC 5246 §5): P_hash(secret, label + seed).
fn prf12(hash: Hash, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
    let alg = match hash {
        Hash::Sha256 => hmac::HMAC_SHA256,
        Hash::Sha384 => hmac::HMAC_SHA384,
    };
    let key = hmac::Key::new(alg, secret);
    let mut ls = label.to_vec();
    ls.extend_from_slice(seed);
    let mut a = hmac::sign(&key, &ls).as_ref().to_vec();
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&a);
        ctx.update(&ls);
        out.extend_from_slice(ctx.sign().as_ref());
        a = hmac::sign(&key, &a).as_ref().to_vec();
    }
    out.truncate(len);
    out
}

/// Record protection of one direction.
struct Keys {
    key: aead::LessSafeKey,
    iv: [u8; 12],
    /// TLS 1.2 AES-GCM: 4-byte implicit salt + 8-byte explicit nonce in the record.
    explicit_nonce: bool,
    seq: u64,
    tls13: bool,
    cipher: Cipher,
    hash: Hash,
    /// The current TLS 1.3 traffic secret (for KeyUpdate).
    secret: Vec<u8>,
}

impl Keys {
    fn tls13(cipher: Cipher, hash: Hash, secret: &[u8]) -> Option<Keys> {
        let key = expand_label(hash, secret, "key", cipher.key_len())?;
        let iv = expand_label(hash, secret, "iv", 12)?;
        Some(Keys {
            key: aead::LessSafeKey::new(aead::UnboundKey::new(cipher.alg(), &key).ok()?),
            iv: iv.try_into().ok()?,
            explicit_nonce: false,
            seq: 0,
            tls13: true,
            cipher,
            hash,
            secret: secret.to_vec(),
        })
    }

    /// Both directions of TLS 1.2 from the master secret: (client, server).
    fn tls12(cipher: Cipher, hash: Hash, master: &[u8], client_random: &[u8; 32], server_random: &[u8; 32]) -> Option<(Keys, Keys)> {
        let kl = cipher.key_len();
        let ivl = if cipher == Cipher::Chacha { 12 } else { 4 };
        let mut seed = server_random.to_vec();
        seed.extend_from_slice(client_random);
        let block = prf12(hash, master, b"key expansion", &seed, 2 * kl + 2 * ivl);
        let (ck, rest) = block.split_at_checked(kl)?;
        let (sk, rest) = rest.split_at_checked(kl)?;
        let (civ, siv) = rest.split_at_checked(ivl)?;
        let mk = |k: &[u8], iv: &[u8]| -> Option<Keys> {
            let mut ivb = [0u8; 12];
            ivb.get_mut(..iv.len())?.copy_from_slice(iv);
            Some(Keys {
                key: aead::LessSafeKey::new(aead::UnboundKey::new(cipher.alg(), k).ok()?),
                iv: ivb,
                explicit_nonce: cipher != Cipher::Chacha,
                seq: 0,
                tls13: false,
                cipher,
                hash,
                secret: Vec::new(),
            })
        };
        Some((mk(ck, civ)?, mk(sk, siv)?))
    }

    fn update(&mut self) -> Option<()> {
        let len = match self.hash {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
        };
        let next = expand_label(self.hash, &self.secret, "traffic upd", len)?;
        *self = Keys::tls13(self.cipher, self.hash, &next)?;
        Some(())
    }

    /// Decrypts one record (header + fragment); returns (content type, plaintext).
    fn open(&mut self, header: [u8; 5], fragment: &[u8]) -> Option<(u8, Vec<u8>)> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut nonce = self.iv;
        let body = if self.explicit_nonce {
            let (explicit, body) = fragment.split_at_checked(8)?;
            nonce.get_mut(4..)?.copy_from_slice(explicit);
            body
        } else {
            for (n, s) in nonce.iter_mut().skip(4).zip(seq.to_be_bytes()) {
                *n ^= s;
            }
            fragment
        };
        let mut buf = body.to_vec();
        let aad: Vec<u8> = if self.tls13 {
            header.to_vec()
        } else {
            let plain_len = u16::try_from(body.len().checked_sub(16)?).ok()?;
            let mut a = seq.to_be_bytes().to_vec();
            a.extend_from_slice(header.get(..3)?);
            a.extend_from_slice(&plain_len.to_be_bytes());
            a
        };
        let n = aead::Nonce::assume_unique_for_key(nonce);
        let plain_len = self.key.open_in_place(n, aead::Aad::from(&aad), &mut buf).ok()?.len();
        buf.truncate(plain_len);
        if self.tls13 {
            // TLSInnerPlaintext: content, then the type, then zero padding
            let end = buf.iter().rposition(|b| *b != 0)?;
            let ct = *buf.get(end)?;
            buf.truncate(end);
            Some((ct, buf))
        } else {
            Some((*header.first()?, buf))
        }
    }
}

// ------------------------------------------------------------- the connection

#[derive(Default)]
struct Dir {
    /// Bytes of an incomplete record.
    rec: Vec<u8>,
    /// Bytes of a record that is not read (protected, no keys) still to come:
    /// they are skipped, never buffered.
    skip: usize,
    /// Handshake bytes of an incomplete message (plaintext).
    hs: Vec<u8>,
    keys: Option<Keys>,
    /// TLS 1.2: a ChangeCipherSpec was seen, records are protected from here.
    ccs: bool,
    /// Framing or decryption broke: nothing more is read in this direction.
    dead: bool,
    /// TLS 1.3: the handshake of this direction finished (application keys in use).
    finished: bool,
}

/// One TLS connection.
pub struct TlsConnection {
    client: SocketAddr,
    server: SocketAddr,
    dirs: [Dir; 2],
    client_random: Option<[u8; 32]>,
    server_random: Option<[u8; 32]>,
    session: TlsSession,
    /// The decrypted conversation, analysed like any connection.
    inner: Option<Box<Connection>>,
    secrets: Option<Secrets>,
    decrypted_records: u64,
    /// Protected records waiting for their secrets (to the server?, header, fragment).
    pending: Vec<(bool, [u8; 5], Vec<u8>)>,
    pending_bytes: usize,
}

/// Index of a direction in `dirs` (0 = to the server).
fn di(to_server: bool) -> usize {
    usize::from(!to_server)
}

impl TlsConnection {
    /// Bytes held: incomplete records and handshake messages, records waiting
    /// for their secrets and the decrypted conversation's parsers.
    pub fn held_bytes(&self) -> usize {
        self.dirs.iter().map(|d| d.rec.capacity() + d.hs.capacity()).sum::<usize>()
            + self.pending_bytes
            + self.inner.as_ref().map_or(0, |c| c.held_bytes())
    }

    /// The decrypted conversation's parsers, to shed their memory (see
    /// [`Connection::shed`]); `None` before anything was decrypted.
    pub fn inner_mut(&mut self) -> Option<&mut Connection> {
        self.inner.as_deref_mut()
    }

    pub fn new(client: SocketAddr, server: SocketAddr, ts_us: u64) -> TlsConnection {
        let session = TlsSession { client: Some(client), server: Some(server), ts_us, ..TlsSession::default() };
        TlsConnection {
            client,
            server,
            dirs: Default::default(),
            client_random: None,
            server_random: None,
            session,
            inner: None,
            secrets: None,
            decrypted_records: 0,
            pending: Vec::new(),
            pending_bytes: 0,
        }
    }

    /// What the session showed so far.
    pub fn session(&self) -> &TlsSession {
        &self.session
    }

    /// Feeds bytes of one direction.
    #[allow(clippy::too_many_arguments)]
    pub fn on_chunk(&mut self, to_server: bool, chunk: Chunk<'_>, ts_us: u64, keylog: Option<&KeyLog>, cfg: &ProtoConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let i = di(to_server);
        self.late_secrets(keylog, ts_us, cfg, stats, out);
        match chunk {
            Chunk::Data(d) => {
                let Some(dir) = self.dirs.get_mut(i) else { return };
                if dir.dead {
                    return;
                }
                let n = dir.skip.min(d.len());
                dir.skip -= n;
                let d = d.get(n..).unwrap_or_default();
                if d.is_empty() {
                    return;
                }
                dir.rec.extend_from_slice(d);
                self.records(to_server, ts_us, keylog, cfg, stats, out);
            }
            Chunk::Gap(_) => {
                if let Some(dir) = self.dirs.get_mut(i) {
                    if !dir.dead {
                        dir.dead = true;
                        dir.rec.clear();
                        stats.tls_gaps += 1;
                        if dir.keys.is_some() {
                            self.fail("gap in the captured stream");
                        }
                    }
                }
                if let Some(inner) = self.inner.as_mut() {
                    let dir = if to_server { Direction::ToServer } else { Direction::ToClient };
                    inner.on_chunk(dir, chunk, ts_us, cfg, stats, out);
                }
            }
            Chunk::End => {
                if let Some(inner) = self.inner.as_mut() {
                    let dir = if to_server { Direction::ToServer } else { Direction::ToClient };
                    inner.on_chunk(dir, Chunk::End, ts_us, cfg, stats, out);
                }
            }
        }
    }

    /// Secrets that reached the key log after the handshake was seen: derive
    /// the keys now and decrypt the records held for them.
    fn late_secrets(&mut self, keylog: Option<&KeyLog>, ts_us: u64, cfg: &ProtoConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        if self.secrets.is_some() {
            return;
        }
        let (Some(kl), Some(cr)) = (keylog, self.client_random) else { return };
        let Some(sec) = kl.get(&cr) else { return };
        self.secrets = Some(sec.clone());
        if self.session.decryption == Decryption::NoKeys {
            self.session.decryption = Decryption::NotAttempted;
        }
        if self.session.version == Some(0x0304) {
            self.start_tls13();
        } else {
            for to_server in [true, false] {
                if self.dirs.get(di(to_server)).is_some_and(|d| d.ccs) {
                    self.start_tls12(to_server, keylog);
                }
            }
        }
        let held = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        for (to_server, head, fragment) in held {
            self.record(to_server, head, &fragment, ts_us, keylog, cfg, stats, out);
        }
    }

    fn fail(&mut self, why: &str) {
        if matches!(self.session.decryption, Decryption::NotAttempted | Decryption::Decrypted) {
            self.session.decryption = Decryption::Failed(why.to_string());
        }
    }

    /// Reads the complete records buffered in one direction.
    #[allow(clippy::too_many_arguments)]
    fn records(&mut self, to_server: bool, ts_us: u64, keylog: Option<&KeyLog>, cfg: &ProtoConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let i = di(to_server);
        loop {
            let Some(dir) = self.dirs.get_mut(i) else { return };
            let Some(head) = dir.rec.first_chunk::<5>().copied() else { return };
            let len = usize::from(u16::from_be_bytes([head[3], head[4]]));
            let valid_type = matches!(head[0], CT_CCS | CT_ALERT | CT_HANDSHAKE | CT_APPDATA) && head[1] == 3;
            if !valid_type || len + 5 > MAX_RECORD {
                dir.dead = true;
                dir.rec.clear();
                stats.tls_bad_records += 1;
                if dir.keys.is_some() {
                    self.fail("bad record framing");
                }
                return;
            }
            // protected records nobody can read are skipped, not buffered
            let holding = keylog.is_some() && self.secrets.is_none() && self.client_random.is_some();
            let readable = matches!(head[0], CT_HANDSHAKE | CT_CCS) && !(dir.ccs && self.session.version != Some(0x0304)) || dir.keys.is_some() || holding;
            if !readable {
                if dir.rec.len() >= len + 5 {
                    dir.rec.drain(..len + 5);
                    continue;
                }
                dir.skip = len + 5 - dir.rec.len();
                dir.rec.clear();
                return;
            }
            if dir.rec.len() < len + 5 {
                if dir.rec.len() > MAX_HANDSHAKE_BYTES {
                    dir.dead = true;
                    dir.rec.clear();
                }
                return;
            }
            let record: Vec<u8> = dir.rec.drain(..len + 5).collect();
            let fragment = record.get(5..).unwrap_or_default();
            self.record(to_server, head, fragment, ts_us, keylog, cfg, stats, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(&mut self, to_server: bool, head: [u8; 5], fragment: &[u8], ts_us: u64, keylog: Option<&KeyLog>, cfg: &ProtoConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        let i = di(to_server);
        let ct = head[0];
        if ct == CT_CCS {
            if let Some(d) = self.dirs.get_mut(i) {
                d.ccs = true;
            }
            if self.session.version != Some(0x0304) {
                self.start_tls12(to_server, keylog);
            }
            return;
        }
        let protected = self.dirs.get(i).is_some_and(|d| d.keys.is_some() && (d.ccs || self.session.version == Some(0x0304)));
        let encrypted_unkeyed = self.session.version == Some(0x0304) && ct == CT_APPDATA
            || self.dirs.get(i).is_some_and(|d| d.ccs) && self.session.version != Some(0x0304);
        if protected {
            let opened = self.dirs.get_mut(i).and_then(|d| d.keys.as_mut()).and_then(|k| k.open(head, fragment));
            let Some((inner_ct, plain)) = opened else {
                self.session.bad_records += 1;
                stats.tls_decrypt_failures += 1;
                self.fail("record authentication failed (wrong keys?)");
                if let Some(d) = self.dirs.get_mut(i) {
                    d.dead = true;
                }
                return;
            };
            self.decrypted_records += 1;
            if self.session.decryption == Decryption::NotAttempted || self.session.decryption == Decryption::NoKeys {
                self.session.decryption = Decryption::Decrypted;
            }
            match inner_ct {
                CT_HANDSHAKE => self.handshake(to_server, &plain, true, ts_us, keylog),
                CT_APPDATA => {
                    stats.tls_plaintext_bytes += plain.len() as u64;
                    let inner = self.inner.get_or_insert_with(|| {
                        stats.tls_decrypted_sessions += 1;
                        let mut c = Connection::new(self.client, self.server, false, stats);
                        c.inside_tls = true;
                        Box::new(c)
                    });
                    let dir = if to_server { Direction::ToServer } else { Direction::ToClient };
                    let before = out.txs().len();
                    inner.on_chunk(dir, Chunk::Data(&plain), ts_us, cfg, stats, out);
                    for t in out.txs().iter_mut().skip(before) {
                        t.decrypted = true;
                    }
                }
                _ => {}
            }
            return;
        }
        if encrypted_unkeyed {
            // protected, and no keys for it (yet: hold a bounded amount while a
            // key log is in use, its secrets may arrive a moment later)
            if keylog.is_some() && self.secrets.is_none() && self.client_random.is_some() {
                if self.pending_bytes + fragment.len() <= MAX_PENDING_BYTES {
                    self.pending_bytes += fragment.len() + 5;
                    self.pending.push((to_server, head, fragment.to_vec()));
                } else {
                    stats.tls_pending_limit_dropped += 1;
                }
            }
            return;
        }
        if ct == CT_HANDSHAKE {
            self.handshake(to_server, fragment, false, ts_us, keylog);
        }
    }

    /// Handshake bytes (plaintext, or decrypted when `protected`).
    fn handshake(&mut self, to_server: bool, bytes: &[u8], protected: bool, ts_us: u64, keylog: Option<&KeyLog>) {
        let i = di(to_server);
        let Some(dir) = self.dirs.get_mut(i) else { return };
        if dir.hs.len() + bytes.len() > MAX_HANDSHAKE_BYTES {
            dir.hs.clear();
            return;
        }
        dir.hs.extend_from_slice(bytes);
        loop {
            let Some(dir) = self.dirs.get_mut(i) else { return };
            let mut r = Rd(&dir.hs);
            let (Some(t), Some(len)) = (r.u8(), r.u24()) else { return };
            if dir.hs.len() < 4 + len {
                return;
            }
            let msg: Vec<u8> = dir.hs.drain(..4 + len).collect();
            let body = msg.get(4..).unwrap_or_default();
            self.message(to_server, t, body, protected, ts_us, keylog);
        }
    }

    fn message(&mut self, to_server: bool, t: u8, body: &[u8], protected: bool, ts_us: u64, keylog: Option<&KeyLog>) {
        match t {
            HS_CLIENT_HELLO if to_server && !protected => {
                let Some(h) = parse_hello(body, true) else { return };
                self.session.ts_us = ts_us;
                self.session.ja4 = Some(ja4(&h));
                self.session.sni = h.sni.clone();
                self.session.alpn_offered = h.alpn.clone();
                self.session.versions_offered = if h.versions.is_empty() { vec![h.legacy_version] } else { h.versions.iter().copied().filter(|v| !is_grease(*v)).collect() };
                self.session.ciphers_offered = h.ciphers.iter().copied().filter(|c| !is_grease(*c)).take(64).collect();
                self.client_random = Some(h.random);
                if let Some(kl) = keylog {
                    self.secrets = kl.get(&h.random).cloned();
                    self.session.decryption = if self.secrets.is_some() { Decryption::NotAttempted } else { Decryption::NoKeys };
                }
            }
            HS_SERVER_HELLO if !to_server && !protected => {
                let Some(h) = parse_hello(body, false) else { return };
                self.server_random = Some(h.random);
                self.session.cipher = h.ciphers.first().copied();
                self.session.version = Some(h.versions.first().copied().unwrap_or(h.legacy_version));
                self.session.alpn = h.alpn.first().cloned();
                if self.session.version == Some(0x0304) {
                    self.start_tls13();
                }
            }
            HS_CERTIFICATE if !to_server && self.session.cert.is_none() => {
                let mut r = Rd(body);
                if self.session.version == Some(0x0304) {
                    r.vec8(); // certificate_request_context
                }
                let Some(_total) = r.u24() else { return };
                let Some(n) = r.u24() else { return };
                if let Some(first) = r.take(n) {
                    self.session.cert = parse_certificate(first);
                }
            }
            HS_FINISHED if protected && self.session.version == Some(0x0304) => {
                // this direction's handshake is over: application traffic keys
                let secret = self.secrets.as_ref().and_then(|s| if to_server { s.client_traffic0.clone() } else { s.server_traffic0.clone() });
                let suite = self.session.cipher.and_then(suite);
                let i = di(to_server);
                match (secret, suite) {
                    (Some(sec), Some((c, h))) => {
                        if let Some(d) = self.dirs.get_mut(i) {
                            d.keys = Keys::tls13(c, h, &sec);
                            d.finished = true;
                        }
                    }
                    _ => {
                        if let Some(d) = self.dirs.get_mut(i) {
                            d.keys = None;
                            d.dead = true;
                        }
                        self.fail("no application traffic secret in the key log");
                    }
                }
            }
            HS_KEY_UPDATE if protected => {
                let i = di(to_server);
                if let Some(k) = self.dirs.get_mut(i).and_then(|d| d.keys.as_mut()) {
                    if k.update().is_none() {
                        self.fail("key update failed");
                    }
                }
            }
            _ => {}
        }
    }

    fn start_tls13(&mut self) {
        let Some(secrets) = self.secrets.as_ref() else { return };
        let Some((c, h)) = self.session.cipher.and_then(suite) else {
            self.fail("cipher suite not supported for decryption");
            return;
        };
        let (Some(cs), Some(ss)) = (secrets.client_handshake.as_ref(), secrets.server_handshake.as_ref()) else {
            self.fail("no handshake traffic secrets in the key log");
            return;
        };
        let (ck, sk) = (Keys::tls13(c, h, cs), Keys::tls13(c, h, ss));
        if let (Some(d), Some(k)) = (self.dirs.get_mut(0), ck) {
            d.keys = Some(k);
        }
        if let (Some(d), Some(k)) = (self.dirs.get_mut(1), sk) {
            d.keys = Some(k);
        }
    }

    fn start_tls12(&mut self, to_server: bool, _keylog: Option<&KeyLog>) {
        let i = di(to_server);
        if self.dirs.get(i).is_some_and(|d| d.keys.is_some()) {
            return;
        }
        let Some(master) = self.secrets.as_ref().and_then(|s| s.master.clone()) else { return };
        let (Some(cr), Some(sr)) = (self.client_random, self.server_random) else { return };
        let Some((c, h)) = self.session.cipher.and_then(suite) else {
            self.fail("cipher suite not supported for decryption");
            return;
        };
        match Keys::tls12(c, h, &master, &cr, &sr) {
            Some((ck, sk)) => {
                if let Some(d) = self.dirs.get_mut(i) {
                    d.keys = Some(if to_server { ck } else { sk });
                }
            }
            None => self.fail("key derivation failed"),
        }
    }

    /// The connection ended.
    pub fn finish(&mut self, ts_us: u64, cfg: &ProtoConfig, stats: &mut ProtoStats, out: &mut dyn TxSink) {
        self.late_secrets(cfg.keylog.as_deref(), ts_us, cfg, stats, out);
        if let Some(inner) = self.inner.as_mut() {
            let before = out.txs().len();
            inner.on_close(ts_us, cfg, stats, out);
            for t in out.txs().iter_mut().skip(before) {
                t.decrypted = true;
            }
        }
        if self.session.decryption == Decryption::NotAttempted && self.secrets.is_some() && self.decrypted_records == 0 {
            self.session.decryption = Decryption::Failed("no protected record decrypted".into());
        }
    }

    /// The session summary (taken once, at the end).
    pub fn take_session(&mut self) -> TlsSession {
        std::mem::take(&mut self.session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        unhex(&s).unwrap()
    }

    /// RFC 8448 §3 (Simple 1-RTT Handshake): the server's handshake traffic
    /// secret gives the handshake write key and iv (TLS_AES_128_GCM_SHA256).
    #[test]
    fn rfc8448_handshake_keys() {
        let secret = h("b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38");
        assert_eq!(expand_label(Hash::Sha256, &secret, "key", 16).unwrap(), h("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc"));
        assert_eq!(expand_label(Hash::Sha256, &secret, "iv", 12).unwrap(), h("5d 31 3e b2 67 12 76 ee 13 00 0b 30"));
    }

    /// The TLS 1.2 PRF (P_SHA256) test vector published with the TLS 1.2
    /// PRF test vectors (secret, seed, label "test label", 100 bytes).
    #[test]
    fn tls12_prf_sha256_vector() {
        let secret = h("9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35");
        let seed = h("a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c");
        let want = h("e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4 e6 1e db 5a
                      6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af 0f a0 22 f7 07 7d ef 17 ab fd 37 97 c0 56 4b
                      ab 4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba a4 80 82 d1 22 ee 42 c5 a7 2e 5a 51 10 ff
                      f7 01 87 34 7b 66");
        assert_eq!(prf12(Hash::Sha256, &secret, b"test label", &seed, 100), want);
    }

    #[test]
    fn keylog_lines_are_parsed_and_bad_ones_counted() {
        let cr = "a".repeat(64);
        let text = format!("# comment\nCLIENT_RANDOM {cr} {}\nSERVER_TRAFFIC_SECRET_0 {cr} {}\nEXPORTER_SECRET {cr} 00\nCLIENT_RANDOM zz 00\n", "11".repeat(48), "22".repeat(32));
        let (kl, st) = KeyLog::parse(&text);
        assert_eq!((st.lines, st.secrets, st.sessions, st.malformed, st.unused), (4, 2, 1, 1, 1));
        let s = kl.get(&[0xaa; 32]).unwrap();
        assert_eq!(s.master.as_deref(), Some(&[0x11u8; 48][..]));
        assert_eq!(s.server_traffic0.as_deref(), Some(&[0x22u8; 32][..]));
    }

    /// A ClientHello record: SNI, ALPN h2 + http/1.1, supported_versions
    /// 1.3/1.2, and a key_share of `share` bytes (post-quantum sized when large).
    fn client_hello(share: usize) -> Vec<u8> {
        let ext = |t: u16, body: &[u8]| -> Vec<u8> {
            let mut e = t.to_be_bytes().to_vec();
            e.extend_from_slice(&(body.len() as u16).to_be_bytes());
            e.extend_from_slice(body);
            e
        };
        let name = b"api.example.test";
        let mut sni = ((name.len() + 3) as u16).to_be_bytes().to_vec();
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        let alpn = [0, 12, 2, b'h', b'2', 8, b'h', b't', b't', b'p', b'/', b'1', b'.', b'1'];
        let mut exts = ext(0, &sni);
        exts.extend(ext(16, &alpn));
        exts.extend(ext(43, &[4, 3, 4, 3, 3]));
        exts.extend(ext(51, &vec![0x42; share]));
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02, 1, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend(exts);
        let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        hs.extend(body);
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    #[test]
    fn a_client_hello_over_several_segments_is_read_whole() {
        let cfg = ProtoConfig { http: Default::default(), http2: Default::default(), keylog: None };
        let (c, s): (SocketAddr, SocketAddr) = ("10.0.0.1:1000".parse().unwrap(), "10.0.0.2:443".parse().unwrap());
        let rec = client_hello(1700);
        assert!(rec.len() > 1700);
        let mut whole = TlsConnection::new(c, s, 0);
        let (mut st, mut out) = (ProtoStats::default(), Vec::new());
        whole.on_chunk(true, Chunk::Data(&rec), 1, None, &cfg, &mut st, &mut out);
        for seg in [1usize, 7, 536, 1448] {
            let mut t = TlsConnection::new(c, s, 0);
            for part in rec.chunks(seg) {
                t.on_chunk(true, Chunk::Data(part), 1, None, &cfg, &mut st, &mut out);
            }
            assert_eq!(t.session(), whole.session(), "segments of {seg}");
        }
        let ses = whole.session();
        assert_eq!(ses.sni.as_deref(), Some("api.example.test"));
        assert_eq!(ses.alpn_offered, ["h2", "http/1.1"]);
        assert_eq!(ses.versions_offered, [0x0304, 0x0303]);
        assert!(ses.ja4.as_deref().is_some_and(|j| j.starts_with("t13d0204h2_")), "{:?}", ses.ja4);
    }

    #[test]
    fn der_times_are_epoch_seconds() {
        assert_eq!(der_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(der_time(0x18, b"20380119031408Z"), Some(2_147_483_648));
        assert_eq!(der_time(0x17, b"991301000000Z"), None);
    }

    #[test]
    fn hostile_handshakes_never_panic() {
        let mut st = ProtoStats::default();
        let cfg = ProtoConfig { http: Default::default(), http2: Default::default(), keylog: None };
        let mut out = Vec::new();
        let c: SocketAddr = "10.0.0.1:1000".parse().unwrap();
        let s: SocketAddr = "10.0.0.2:443".parse().unwrap();
        let mut x = 7u32;
        for round in 0..2000 {
            let mut t = TlsConnection::new(c, s, 0);
            let mut rec = vec![22, 3, 1, 0, 60, 1, 0, 0, 56, 3, 3];
            for _ in 0..(round % 120) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                rec.push((x & 0xff) as u8);
            }
            t.on_chunk(true, Chunk::Data(&rec), 1, None, &cfg, &mut st, &mut out);
            t.on_chunk(false, Chunk::Data(&rec), 2, None, &cfg, &mut st, &mut out);
            t.finish(3, &cfg, &mut st, &mut out);
        }
    }
}
