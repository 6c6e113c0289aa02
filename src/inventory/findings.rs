//! Findings: what should worry an operator — attacks seen in the traffic
//! (detection findings) and problems of an endpoint's posture (posture
//! findings: shadow and zombie APIs, weak authentication, data exposure,
//! drift from a baseline).
//!
//! # Contract
//! [`Detector::observe`] is a function of observations, their packet times
//! and the configuration: no clock, no I/O. Every table is bounded by
//! [`FindingsConfig::max_tracked`] (a full table counts
//! `detector_table_full` and leaves new keys untracked until old windows
//! expire). Findings are deltas ([`Finding::count`] occurrences since the
//! last [`Detector::take`]); the store merges them by [`Finding::uid`], so a
//! finding is one record however often and in however many runs it fires.
//!
//! # Detectors (windows of `window_secs` packet time)
//! | kind | rule |
//! |---|---|
//! | `bola_enumeration` | one client asks one endpoint for ≥ `bola_min_ids` distinct numeric object ids, at least half of the steps ascending by 1–2 (severity high); or for 4 × `bola_min_ids` ids in any order (medium). UUIDs, hashes and tokens are not guessable and not counted |
//! | `credential_stuffing` | ≥ `stuffing_min_failures` failed logins (401/403) from one client against a login endpoint (POST to a path naming login/signin/session/token/auth, or a request carrying a password); or ≥ `stuffing_spread_min_failures` from ≥ `stuffing_spread_min_clients` clients. Successful logins after failures raise it to critical |
//! | `recon_scanning` | ≥ `recon_min_paths` distinct 404 paths from one client under ≥ `recon_min_dirs` distinct parent directories |
//! | `rate_spike`, `error_spike` | after `spike_min_windows` windows of an endpoint's history, a window with `spike_factor` × its mean requests (responses ≥ 400) and at least `spike_min_requests` |
//!
//! # Posture checks (per transaction, one finding per endpoint)
//! `shadow_api` (not in the specs; the endpoint answered something other
//! than 404/410), `zombie_api` (deprecated in the specs, under a sunset
//! prefix, or called again after `zombie_silent_days` of silence),
//! `unauthenticated_sensitive_data` (2xx without credentials carrying
//! sensitive kinds other than a freshly issued JWT), `basic_auth_cleartext`,
//! `credentials_in_url`, `weak_jwt`, `sensitive_data_in_url`,
//! `verbose_error`, `cors_misconfiguration`, `request_smuggling_risk`,
//! `mixed_auth` (2xx both with credentials, at least 5 times, and without).
//! Drift against a baseline: `drift_new_endpoint`, `drift_auth_change`,
//! `drift_new_sensitive_data`, `drift_new_client_class`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::baseline::Baseline;
use super::spec::{Spec, Verdict};
use crate::analyze::auth::AuthScheme;
use crate::analyze::fingerprint::PreHashed;
use crate::analyze::sensitive::SensitiveKind;
use crate::analyze::Observation;
use crate::config::FindingsConfig;

/// The hasher of the detector tables: randomly seeded per table, much cheaper
/// than SipHash on the small keys here (addresses, keyed hashes, object ids).
/// Identities that are not checked on lookup (the endpoint hashes that key
/// findings) stay SipHash ([`key_hash`]).
type Fast = foldhash::fast::RandomState;

/// Client addresses kept per finding.
pub const MAX_FINDING_CLIENTS: usize = 16;
/// Findings waiting for [`Detector::take`]; beyond it new ones are counted and dropped.
pub const MAX_PENDING: usize = 65_536;
/// Distinct paths (or ids) remembered per client and window by one detector.
const MAX_WINDOW_SET: usize = 4096;

macro_rules! kinds {
    ($($v:ident => $s:literal, $title:literal, $attack:literal, $sev:ident;)*) => {
        /// What a finding is about; its name is the OCSF `finding_info.types` entry.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Kind {
            #[default]
            $($v,)*
        }
        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$v,)*];
            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$v => $s,)* }
            }
            pub fn title(self) -> &'static str {
                match self { $(Kind::$v => $title,)* }
            }
            /// An attack (OCSF Detection Finding) rather than posture (Application Security Posture Finding).
            pub fn is_attack(self) -> bool {
                match self { $(Kind::$v => $attack,)* }
            }
            fn base_severity(self) -> Severity {
                match self { $(Kind::$v => Severity::$sev,)* }
            }
            pub fn parse(s: &str) -> Option<Kind> {
                Kind::ALL.iter().copied().find(|k| k.as_str() == s)
            }
        }
    };
}

/// Evidence of a finding that needs none.
const NO_EVIDENCE: &[(&str, &str)] = &[];

/// The `flags` evidence of a weak-JWT finding for each set of flags (bit 0
/// `jwt_alg_none`, 1 `jwt_expired_accepted`, 2 `jwt_long_lived`, 3
/// `jwt_no_exp`): the names set, in name order, comma-separated.
const WEAK_JWT_EVIDENCE: [&str; 16] = [
    "",
    "jwt_alg_none",
    "jwt_expired_accepted",
    "jwt_alg_none,jwt_expired_accepted",
    "jwt_long_lived",
    "jwt_alg_none,jwt_long_lived",
    "jwt_expired_accepted,jwt_long_lived",
    "jwt_alg_none,jwt_expired_accepted,jwt_long_lived",
    "jwt_no_exp",
    "jwt_alg_none,jwt_no_exp",
    "jwt_expired_accepted,jwt_no_exp",
    "jwt_alg_none,jwt_expired_accepted,jwt_no_exp",
    "jwt_long_lived,jwt_no_exp",
    "jwt_alg_none,jwt_long_lived,jwt_no_exp",
    "jwt_expired_accepted,jwt_long_lived,jwt_no_exp",
    "jwt_alg_none,jwt_expired_accepted,jwt_long_lived,jwt_no_exp",
];

kinds! {
    ShadowApi => "shadow_api", "Undocumented (shadow) API endpoint in use", false, Medium;
    ZombieApi => "zombie_api", "Deprecated (zombie) API endpoint still called", false, Medium;
    BolaEnumeration => "bola_enumeration", "Object id enumeration (BOLA)", true, High;
    CredentialStuffing => "credential_stuffing", "Credential stuffing against a login endpoint", true, High;
    ReconScanning => "recon_scanning", "Reconnaissance scan (many distinct 404 paths)", true, Medium;
    RateSpike => "rate_spike", "Request rate far above the endpoint's baseline", true, Medium;
    ErrorSpike => "error_spike", "Error responses far above the endpoint's baseline", true, Medium;
    UnauthenticatedSensitiveData => "unauthenticated_sensitive_data", "Sensitive data returned without authentication", false, High;
    BasicAuthCleartext => "basic_auth_cleartext", "Basic authentication over cleartext HTTP", false, High;
    CredentialsInUrl => "credentials_in_url", "Credentials in the URL", false, High;
    WeakJwt => "weak_jwt", "Weak JWT accepted", false, Medium;
    SensitiveDataInUrl => "sensitive_data_in_url", "Personal data in the URL", false, Medium;
    VerboseError => "verbose_error", "Verbose error (stack trace, debug page or database error)", false, Low;
    CorsMisconfiguration => "cors_misconfiguration", "CORS allows credentials from any origin", false, Medium;
    RequestSmugglingRisk => "request_smuggling_risk", "Ambiguous request framing (request smuggling risk)", false, Medium;
    MixedAuth => "mixed_auth", "Endpoint succeeds with and without credentials", false, Medium;
    DriftNewEndpoint => "drift_new_endpoint", "New endpoint since the baseline", false, Low;
    DriftAuthChange => "drift_auth_change", "Authentication changed since the baseline", false, Medium;
    DriftNewSensitiveData => "drift_new_sensitive_data", "New sensitive data since the baseline", false, Medium;
    DriftNewClientClass => "drift_new_client_class", "New client class since the baseline", false, Low;
    WeakTls => "weak_tls", "Weak TLS version or cipher suite negotiated", false, Medium;
    ExpiredCertificate => "expired_certificate", "Expired server certificate", false, High;
    PlaintextAndTls => "plaintext_and_tls", "Host served over both cleartext HTTP and TLS", false, Low;
}

impl Kind {
    /// What to do about it (OCSF `remediation.desc`).
    pub fn remediation(self) -> &'static str {
        match self {
            Kind::ShadowApi => "Document the endpoint in the API specification and review it, or remove it.",
            Kind::ZombieApi => "Retire the deprecated endpoint: move its callers to the current version, then switch it off.",
            Kind::BolaEnumeration => "Enforce object-level authorization (the object must belong to the caller) and rate-limit the client.",
            Kind::CredentialStuffing => "Block or throttle the source, require MFA or CAPTCHA after failures, and reset the accounts that logged in.",
            Kind::ReconScanning => "Block or watch the scanning client; check that nothing it probed answered.",
            Kind::RateSpike => "Check the client behind the spike; apply rate limits per client and endpoint.",
            Kind::ErrorSpike => "Check the endpoint's health and the clients causing errors.",
            Kind::UnauthenticatedSensitiveData => "Require authentication on the endpoint or stop returning the sensitive fields.",
            Kind::BasicAuthCleartext => "Serve the endpoint over TLS only, and prefer tokens to Basic credentials.",
            Kind::CredentialsInUrl => "Move credentials from the URL to a header; rotate the ones exposed in logs.",
            Kind::WeakJwt => "Reject unsigned and expired tokens, require an expiry and keep token lifetimes short.",
            Kind::SensitiveDataInUrl => "Send personal data in request bodies, not URLs (they end up in logs and caches).",
            Kind::VerboseError => "Return generic error bodies; log stack traces and database errors server-side only.",
            Kind::CorsMisconfiguration => "Allow credentials only for an explicit list of trusted origins.",
            Kind::RequestSmugglingRisk => "Reject requests with both Content-Length and Transfer-Encoding or with conflicting lengths at the edge.",
            Kind::MixedAuth => "Require credentials on every request to the endpoint, or make it public on purpose.",
            Kind::DriftNewEndpoint => "Review the new endpoint and approve it with a new baseline.",
            Kind::DriftAuthChange => "Check why the endpoint's authentication changed; approve with a new baseline if intended.",
            Kind::DriftNewSensitiveData => "Check why the endpoint now carries this data; approve with a new baseline if intended.",
            Kind::DriftNewClientClass => "Check why new kinds of clients reach the endpoint (exposure changed?).",
            Kind::WeakTls => "Disable TLS 1.1 and older and weak cipher suites (RC4, 3DES, NULL, export) on the server.",
            Kind::ExpiredCertificate => "Renew the server certificate.",
            Kind::PlaintextAndTls => "Serve the host over TLS only (redirect cleartext HTTP, enable HSTS).",
        }
    }

    /// A drift finding (against a saved baseline).
    pub fn is_drift(self) -> bool {
        matches!(self, Kind::DriftNewEndpoint | Kind::DriftAuthChange | Kind::DriftNewSensitiveData | Kind::DriftNewClientClass)
    }
}

/// OCSF severity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Informational,
    #[default]
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// OCSF `severity_id`.
    pub fn id(self) -> u8 {
        match self {
            Severity::Informational => 1,
            Severity::Low => 2,
            Severity::Medium => 3,
            Severity::High => 4,
            Severity::Critical => 5,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Severity::Informational => "Informational",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
            Severity::Critical => "Critical",
        }
    }
}

/// Open until a baseline accepts it; a resolved finding that fires again reopens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    #[default]
    Open,
    Resolved,
}

/// One finding as stored, dumped and exported. Holds no secret: evidence is
/// counts, names, kinds and redacted samples.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Finding {
    /// Stable id: a digest of kind, endpoint and (for attacks) actor.
    pub uid: String,
    pub kind: Kind,
    pub severity: Severity,
    pub host: String,
    /// `*` for host-wide findings (recon).
    pub method: String,
    pub path: String,
    /// The client an attack finding is about.
    pub actor: Option<IpAddr>,
    /// Clients seen in the evidence (at most [`MAX_FINDING_CLIENTS`]).
    pub clients: BTreeSet<IpAddr>,
    /// Packet times (µs): first and last occurrence, and when the rule first fired.
    pub first_seen_us: u64,
    pub last_seen_us: u64,
    pub detected_us: u64,
    /// Occurrences (requests that matched the rule after it fired, or the rule's hits).
    pub count: u64,
    /// Named evidence values (counts, kinds, reasons, redacted samples).
    pub evidence: BTreeMap<String, String>,
    pub state: State,
    /// Wall-clock time (ms) a baseline resolved it.
    pub resolved_ms: Option<u64>,
    /// Times it fired again after being resolved.
    pub reopened: u64,
}

/// The stable id of a finding.
pub fn finding_uid(kind: Kind, host: &str, method: &str, path: &str, actor: Option<IpAddr>) -> String {
    use sha1::{Digest, Sha1};
    let mut h = Sha1::new();
    for part in [kind.as_str(), host, method, path] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    if let Some(a) = actor {
        h.update(a.to_string().as_bytes());
    }
    let d = h.finalize();
    let mut uid = format!("apitap-{}-", kind.as_str());
    for b in d.iter().take(12) {
        for nibble in [b >> 4, b & 15] {
            uid.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
    uid
}

impl Finding {
    /// Folds a later delta of the same finding in. A resolved finding reopens.
    pub fn merge(&mut self, d: &Finding) {
        self.count = self.count.saturating_add(d.count);
        let min_nz = |a: u64, b: u64| if a == 0 { b } else if b == 0 { a } else { a.min(b) };
        self.first_seen_us = min_nz(self.first_seen_us, d.first_seen_us);
        self.detected_us = min_nz(self.detected_us, d.detected_us);
        self.last_seen_us = self.last_seen_us.max(d.last_seen_us);
        self.severity = self.severity.max(d.severity);
        for c in &d.clients {
            if self.clients.len() >= MAX_FINDING_CLIENTS {
                break;
            }
            self.clients.insert(*c);
        }
        for (k, v) in &d.evidence {
            self.evidence.insert(k.clone(), v.clone());
        }
        if self.state == State::Resolved && d.count > 0 {
            self.state = State::Open;
            self.resolved_ms = None;
            self.reopened = self.reopened.saturating_add(1);
        }
    }

    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }
}

/// Counters of the detectors (summary and metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DetectorStats {
    pub observations: u64,
    /// Rule hits (finding occurrences) produced.
    pub hits: u64,
    /// A detector table was full: a new client (or endpoint) went untracked.
    pub detector_table_full: u64,
    /// Findings dropped because [`MAX_PENDING`] were waiting.
    pub pending_full: u64,
}

/// A map of per-key window states with a bound; a full map first forgets
/// keys idle for a whole window, then refuses new keys.
/// Keys that are keyed hashes already ([`PreHashed`]) are not hashed again.
struct Tracker<K, V, S = Fast> {
    map: HashMap<K, (u64, V), S>,
    max: usize,
    last_sweep_us: u64,
}

impl<K: Hash + Eq + Clone, V: Default, S: std::hash::BuildHasher + Default> Tracker<K, V, S> {
    fn new(max: usize) -> Self {
        Tracker { map: HashMap::default(), max, last_sweep_us: 0 }
    }

    fn get(&mut self, k: &K, now: u64, window_us: u64, full: &mut u64) -> Option<&mut V> {
        // below the bound (the common case) the key is looked up once
        if self.map.len() >= self.max && !self.map.contains_key(k) {
            if now.saturating_sub(self.last_sweep_us) >= window_us / 4 {
                self.last_sweep_us = now;
                self.map.retain(|_, (t, _)| t.saturating_add(window_us) >= now);
            }
            if self.map.len() >= self.max {
                *full += 1;
                return None;
            }
        }
        let (t, v) = self.map.entry(k.clone()).or_insert_with(|| (now, V::default()));
        *t = (*t).max(now);
        Some(v)
    }
}

/// Slots of the detector's finding-identity cache.
const IDENT_SLOTS: usize = 256;

/// A keyed hash of an endpoint (or part of one) for the detector tables: keyed
/// per detector, so that no client can make two endpoints or two paths share
/// an entry.
fn key_hash(keyed: &RandomState, host: &str, method: &str, path: &str) -> u64 {
    keyed.hash_one((host, method, path))
}

/// Window start and whether `ts` moved past it (the state then restarts).
fn roll(start: &mut u64, ts: u64, window_us: u64) -> bool {
    if *start == 0 || ts >= start.saturating_add(window_us) {
        *start = ts;
        return true;
    }
    false
}

#[derive(Default)]
struct Bola {
    start: u64,
    ids: HashSet<u64, Fast>,
    last: Option<u64>,
    steps: u64,
    ascending: u64,
    ok: u64,
    fired: bool,
}

#[derive(Default)]
struct Stuffing {
    start: u64,
    failures: u64,
    successes_after: u64,
    throttled: u64,
    fired: bool,
}

#[derive(Default)]
struct Spread {
    start: u64,
    failures: u64,
    clients: HashSet<IpAddr, Fast>,
    fired: bool,
}

#[derive(Default)]
struct Recon {
    start: u64,
    paths: HashSet<u64, Fast>,
    dirs: HashSet<u64, Fast>,
    fired: bool,
}

#[derive(Default)]
struct Rate {
    start: u64,
    windows: u64,
    mean_requests: f64,
    mean_errors: f64,
    requests: u64,
    errors: u64,
    top: HashMap<IpAddr, u64, Fast>,
    fired_rate: bool,
    fired_errors: bool,
}

#[derive(Default)]
struct Mix {
    ok_auth: u64,
    ok_none: u64,
    fired: bool,
}

/// What the detector needs to know about an endpoint besides the observation.
pub struct Endpoint<'a> {
    pub host: &'a str,
    pub method: &'a str,
    /// The inventory's template.
    pub path: &'a str,
}

/// The detectors and posture checks.
pub struct Detector {
    cfg: FindingsConfig,
    window_us: u64,
    spec: Spec,
    baseline: Option<Baseline>,
    verdicts: HashMap<u64, Verdict, PreHashed>,
    /// Findings of this run not yet taken, by kind, a keyed hash of the
    /// endpoint (host, method, path) and actor; each holds its stable uid.
    pending: HashMap<(Kind, u64, Option<IpAddr>), Finding, Fast>,
    bola: Tracker<(IpAddr, u64), Bola>,
    stuffing: Tracker<(IpAddr, u64), Stuffing>,
    spread: Tracker<u64, Spread, PreHashed>,
    recon: Tracker<(IpAddr, u64), Recon>,
    rates: Tracker<u64, Rate, PreHashed>,
    mix: Tracker<u64, Mix, PreHashed>,
    /// Hosts answered over cleartext HTTP, and hosts named in TLS (bounded by `max_tracked`).
    plain_hosts: HashSet<String, Fast>,
    /// The host of the last cleartext observation, known to be in
    /// `plain_hosts` (consecutive observations mostly share their host).
    last_plain_host: String,
    tls_hosts: HashMap<String, (IpAddr, u16), Fast>,
    /// Keys [`key_hash`].
    keyed: RandomState,
    /// The endpoint hash of the observation being checked, while it is.
    observing: Option<u64>,
    /// Finding identities ([`key_hash`] of host, method, path) of endpoints
    /// hit lately, by their endpoint hash (one slot per hash's low bits): the
    /// same endpoints hit again and again are not hashed again.
    idents: Box<[Option<(u64, u64)>; IDENT_SLOTS]>,
    stats: DetectorStats,
}

/// Sensitive kinds a login may return without being a leak.
fn issued_on_login(k: SensitiveKind) -> bool {
    matches!(k, SensitiveKind::Jwt)
}

fn critical_kind(k: SensitiveKind) -> bool {
    matches!(k, SensitiveKind::CreditCard | SensitiveKind::Ssn | SensitiveKind::Iban | SensitiveKind::Secret | SensitiveKind::Password)
}

fn credential_kind(k: SensitiveKind) -> bool {
    matches!(k, SensitiveKind::Password | SensitiveKind::ApiKey | SensitiveKind::Secret | SensitiveKind::Jwt)
}

fn kinds_text(kinds: &[SensitiveKind]) -> String {
    kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")
}

/// A POST to a login-like path, or a request carrying a password.
fn is_login(o: &Observation, path: &str) -> bool {
    if !o.key.method.eq_ignore_ascii_case("POST") {
        return false;
    }
    let p = path.to_ascii_lowercase();
    const WORDS: [&str; 8] = ["login", "signin", "sign-in", "sign_in", "session", "token", "auth", "logon"];
    let tail = p.rsplit('/').find(|s| !s.is_empty()).unwrap_or("");
    WORDS.iter().any(|w| tail.contains(w)) && !tail.contains("logout") && !tail.contains("refresh")
        || o.req_sensitive.contains(&SensitiveKind::Password)
}

/// The parent directory of a path (`/a/b/c` → `/a/b`).
fn parent(path: &str) -> &str {
    match path.trim_end_matches('/').rfind('/') {
        Some(0) | None => "/",
        Some(i) => path.get(..i).unwrap_or("/"),
    }
}

impl Detector {
    pub fn new(cfg: &FindingsConfig, spec: Spec, baseline: Option<Baseline>) -> Detector {
        let max = cfg.max_tracked.max(16);
        Detector {
            window_us: cfg.window_secs.max(1).saturating_mul(1_000_000),
            cfg: cfg.clone(),
            spec,
            baseline,
            verdicts: HashMap::default(),
            pending: HashMap::default(),
            bola: Tracker::new(max),
            stuffing: Tracker::new(max),
            spread: Tracker::new(max),
            recon: Tracker::new(max),
            rates: Tracker::new(max),
            mix: Tracker::new(max),
            plain_hosts: HashSet::default(),
            last_plain_host: String::new(),
            tls_hosts: HashMap::default(),
            keyed: RandomState::new(),
            observing: None,
            idents: Box::new([None; IDENT_SLOTS]),
            stats: DetectorStats::default(),
        }
    }

    pub fn stats(&self) -> &DetectorStats {
        &self.stats
    }

    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The findings (deltas) since the last call.
    pub fn take(&mut self) -> Vec<Finding> {
        let mut v: Vec<Finding> = self.pending.drain().map(|(_, f)| f).collect();
        v.sort_by(|a, b| a.uid.cmp(&b.uid));
        v
    }

    /// Records one occurrence of a rule.
    #[allow(clippy::too_many_arguments)]
    fn hit<E: AsRef<str>>(&mut self, kind: Kind, sev: Severity, ep: &Endpoint<'_>, actor: Option<IpAddr>, client: IpAddr, ts: u64, evidence: &[(&str, E)]) {
        self.stats.hits += 1;
        let (method, path) = if kind == Kind::ReconScanning { ("*", "/*") } else { (ep.method, ep.path) };
        let ident = match self.observing {
            // the observed endpoint itself (recon findings are per host)
            Some(eh) if kind != Kind::ReconScanning => {
                let slot = (eh as usize) % IDENT_SLOTS;
                match self.idents.get(slot).copied().flatten() {
                    Some((held, ident)) if held == eh => ident,
                    _ => {
                        let ident = key_hash(&self.keyed, ep.host, method, path);
                        if let Some(s) = self.idents.get_mut(slot) {
                            *s = Some((eh, ident));
                        }
                        ident
                    }
                }
            }
            _ => key_hash(&self.keyed, ep.host, method, path),
        };
        let key = (kind, ident, actor);
        if !self.pending.contains_key(&key) && self.pending.len() >= MAX_PENDING {
            self.stats.pending_full += 1;
            return;
        }
        // one occurrence merged in place (as Finding::merge would a delta of
        // count 1): the uid, a SHA-1, is computed once per pending finding
        let f = self.pending.entry(key).or_insert_with(|| Finding {
            uid: finding_uid(kind, ep.host, method, path, actor),
            kind,
            severity: sev,
            host: ep.host.to_string(),
            method: method.to_string(),
            path: path.to_string(),
            actor,
            first_seen_us: ts,
            last_seen_us: ts,
            detected_us: ts,
            ..Finding::default()
        });
        f.count = f.count.saturating_add(1);
        let min_nz = |a: u64, b: u64| if a == 0 { b } else if b == 0 { a } else { a.min(b) };
        f.first_seen_us = min_nz(f.first_seen_us, ts);
        f.detected_us = min_nz(f.detected_us, ts);
        f.last_seen_us = f.last_seen_us.max(ts);
        f.severity = f.severity.max(sev);
        if f.clients.len() < MAX_FINDING_CLIENTS {
            f.clients.insert(client);
        }
        for (k, v) in evidence {
            let v = v.as_ref();
            match f.evidence.get_mut(*k) {
                Some(old) if old == v => {}
                Some(old) => {
                    old.clear();
                    old.push_str(v);
                }
                None => {
                    f.evidence.insert((*k).to_string(), v.to_string());
                }
            }
        }
    }

    /// Runs every check on one observation of endpoint `ep`.
    /// `key`: a keyed 128-bit hash of the endpoint (host, method, path), the
    /// same for every observation of it ([`crate::inventory::Inventory::observe`]
    /// gives it); the per-endpoint tables are keyed by it, unhashed again.
    pub fn observe(&mut self, o: &Observation, ep: &Endpoint<'_>, key: u128) {
        self.stats.observations += 1;
        if !o.decrypted && o.status.is_some() && self.last_plain_host != ep.host {
            if self.plain_hosts.contains(ep.host) {
                self.last_plain_host.clear();
                self.last_plain_host.push_str(ep.host);
            } else {
                if self.plain_hosts.len() < self.cfg.max_tracked {
                    self.plain_hosts.insert(ep.host.to_string());
                }
                if let Some((ip, port)) = self.tls_hosts.get(ep.host).copied() {
                    self.plaintext_and_tls(ep.host, ip, port, o.client, o.ts_us);
                }
            }
        }
        // the endpoint's hash, for every per-endpoint table
        let eh = (key as u64) ^ ((key >> 64) as u64);
        self.observing = Some(eh);
        self.spec_checks(o, ep, eh);
        self.posture(o, ep, eh);
        self.drift(o, ep);
        self.bola(o, ep, eh);
        self.stuffing(o, ep, eh);
        self.recon(o, ep);
        self.spikes(o, ep, eh);
        self.observing = None;
    }

    /// The endpoint answered: something exists behind it.
    fn exists(o: &Observation) -> bool {
        o.status.is_some_and(|s| s != 404 && s != 410)
    }

    fn spec_checks(&mut self, o: &Observation, ep: &Endpoint<'_>, eh: u64) {
        if !Self::exists(o) {
            return;
        }
        let ts = o.ts_us;
        let unauth_sensitive = o.credentials.is_empty() && o.resp_sensitive.iter().any(|k| !issued_on_login(*k));
        let sev = if unauth_sensitive { Severity::High } else { Severity::Medium };
        if !self.spec.is_empty() {
            let h = eh;
            let verdict = match self.verdicts.get(&h) {
                Some(v) => v.clone(),
                None => {
                    let v = self.spec.verdict(ep.host, ep.method, ep.path);
                    if self.verdicts.len() < self.cfg.max_tracked {
                        self.verdicts.insert(h, v.clone());
                    }
                    v
                }
            };
            match verdict {
                Verdict::Undocumented => {
                    self.hit(Kind::ShadowApi, sev, ep, None, o.client, ts, &[("reason", "not in any API specification")]);
                }
                Verdict::Deprecated(i) => {
                    let op = self.spec.operations.get(i).and_then(|op| op.operation_id.clone()).unwrap_or_default();
                    self.hit(Kind::ZombieApi, sev, ep, None, o.client, ts, &[("reason", "deprecated in the API specification"), ("operation_id", op.as_str())]);
                }
                Verdict::Documented(_) | Verdict::OutOfScope => {}
            }
        }
        if let Some(prefix) = self.cfg.sunset_prefixes.iter().find(|p| ep.path.starts_with(p.as_str())).cloned() {
            self.hit(Kind::ZombieApi, sev, ep, None, o.client, ts, &[("reason", format!("under sunset prefix {prefix}"))]);
        }
    }

    fn posture(&mut self, o: &Observation, ep: &Endpoint<'_>, eh: u64) {
        let ts = o.ts_us;
        let c = o.client;
        let ok = o.status.is_some_and(|s| (200..300).contains(&s));
        if ok && o.credentials.is_empty() {
            let kinds: Vec<SensitiveKind> = o.resp_sensitive.iter().copied().filter(|k| !issued_on_login(*k)).collect();
            if !kinds.is_empty() {
                let sev = if kinds.iter().any(|k| critical_kind(*k)) { Severity::Critical } else { Severity::High };
                self.hit(Kind::UnauthenticatedSensitiveData, sev, ep, None, c, ts, &[("sensitive_kinds", kinds_text(&kinds))]);
            }
        }
        if o.credentials.iter().any(|cr| cr.flags.basic_cleartext) {
            self.hit(Kind::BasicAuthCleartext, Severity::High, ep, None, c, ts, NO_EVIDENCE);
        }
        let query_key = o.credentials.iter().find(|cr| cr.scheme == AuthScheme::ApiKeyQuery).map(|cr| cr.carrier.to_string());
        let url_creds: Vec<SensitiveKind> = o.url_sensitive.iter().copied().filter(|k| credential_kind(*k)).collect();
        if query_key.is_some() || !url_creds.is_empty() {
            let mut ev = vec![];
            if let Some(p) = query_key {
                ev.push(("parameter", p));
            }
            if !url_creds.is_empty() {
                ev.push(("kinds", kinds_text(&url_creds)));
            }
            self.hit(Kind::CredentialsInUrl, Severity::High, ep, None, c, ts, &ev);
        }
        let personal: Vec<SensitiveKind> = o.url_sensitive.iter().copied().filter(|k| !credential_kind(*k)).collect();
        if !personal.is_empty() {
            self.hit(Kind::SensitiveDataInUrl, Severity::Medium, ep, None, c, ts, &[("sensitive_kinds", kinds_text(&personal))]);
        }
        // the weak-JWT flags of the request's credentials, as the bits of a WEAK_JWT_EVIDENCE index
        let jwt_flags = o.credentials.iter().fold(0usize, |m, cr| {
            let f = &cr.flags;
            m | usize::from(f.jwt_alg_none) | usize::from(f.jwt_expired_accepted) << 1 | usize::from(f.jwt_long_lived) << 2 | usize::from(f.jwt_no_exp) << 3
        });
        if jwt_flags != 0 {
            let (alg_none, expired_accepted) = (jwt_flags & 1 != 0, jwt_flags & 2 != 0);
            let sev = if alg_none && ok {
                Severity::Critical
            } else if expired_accepted || alg_none {
                Severity::High
            } else {
                Severity::Medium
            };
            let flags = WEAK_JWT_EVIDENCE.get(jwt_flags).copied().unwrap_or_default();
            self.hit(Kind::WeakJwt, sev, ep, None, c, ts, &[("flags", flags)]);
        }
        use crate::analyze::posture::PostureFlags as P;
        if o.posture.has(P::VERBOSE_ERROR) {
            let status = o.status.map(|s| s.to_string()).unwrap_or_default();
            self.hit(Kind::VerboseError, Severity::Low, ep, None, c, ts, &[("status", status)]);
        }
        if o.posture.has(P::CORS_CREDENTIALS) {
            self.hit(Kind::CorsMisconfiguration, Severity::Medium, ep, None, c, ts, NO_EVIDENCE);
        }
        if o.posture.has(P::SMUGGLING) {
            self.hit(Kind::RequestSmugglingRisk, Severity::Medium, ep, None, c, ts, NO_EVIDENCE);
        }
        if ok {
            let h = eh;
            let mut full = 0;
            let fire = match self.mix.get(&h, ts, u64::MAX, &mut full) {
                Some(m) => {
                    if o.credentials.is_empty() {
                        m.ok_none += 1;
                    } else {
                        m.ok_auth += 1;
                    }
                    let f = !m.fired && m.ok_auth >= 5 && m.ok_none >= 1;
                    m.fired |= f;
                    f.then_some((m.ok_auth, m.ok_none))
                }
                None => None,
            };
            self.stats.detector_table_full += full;
            if let Some((a, n)) = fire {
                self.hit(Kind::MixedAuth, Severity::Medium, ep, None, c, ts, &[("ok_with_credentials", a.to_string()), ("ok_without_credentials", n.to_string())]);
            }
        }
    }

    fn drift(&mut self, o: &Observation, ep: &Endpoint<'_>) {
        let Some(b) = self.baseline.as_ref() else { return };
        if !Self::exists(o) {
            return;
        }
        let mut hits: Vec<(Kind, Vec<(&str, String)>)> = Vec::new();
        match b.endpoint(ep.host, ep.method, ep.path) {
            None => hits.push((Kind::DriftNewEndpoint, vec![("baseline", b.name.clone())])),
            Some(e) => {
                let ok = o.status.is_some_and(|s| (200..400).contains(&s));
                if ok {
                    let schemes: Vec<String> = if o.credentials.is_empty() {
                        vec!["none".to_string()]
                    } else {
                        o.credentials.iter().map(|c| c.scheme.as_str().into_owned()).collect()
                    };
                    for s in schemes {
                        if !e.auth.contains(&s) {
                            hits.push((Kind::DriftAuthChange, vec![("new_scheme", s), ("baseline_schemes", e.auth.iter().cloned().collect::<Vec<_>>().join(","))]));
                        }
                    }
                }
                for k in o.req_sensitive.iter().chain(&o.resp_sensitive) {
                    if !e.sensitive.contains(k.as_str()) {
                        hits.push((Kind::DriftNewSensitiveData, vec![("new_kind", k.as_str().to_string())]));
                    }
                }
                if !e.client_classes.contains(o.client_class) {
                    hits.push((Kind::DriftNewClientClass, vec![("new_class", o.client_class.to_string())]));
                }
            }
        }
        for (k, ev) in hits {
            self.hit(k, k.base_severity(), ep, None, o.client, o.ts_us, &ev);
        }
    }

    fn bola(&mut self, o: &Observation, ep: &Endpoint<'_>, eh: u64) {
        let Some(id) = o.object_id.as_deref() else { return };
        let Ok(n) = id.parse::<u64>() else { return };
        let ts = o.ts_us;
        let w = self.window_us;
        let min = self.cfg.bola_min_ids;
        let mut full = 0;
        let k = (o.client, eh);
        let Some(s) = self.bola.get(&k, ts, w, &mut full) else {
            self.stats.detector_table_full += full;
            return;
        };
        if roll(&mut s.start, ts, w) {
            *s = Bola { start: ts, ..Bola::default() };
        }
        let new = s.ids.len() < MAX_WINDOW_SET && s.ids.insert(n);
        if new {
            if let Some(l) = s.last {
                s.steps += 1;
                if n > l && n - l <= 2 {
                    s.ascending += 1;
                }
            }
            s.last = Some(n);
        }
        if o.status.is_some_and(|st| (200..300).contains(&st)) {
            s.ok += 1;
        }
        let distinct = s.ids.len();
        let sequential = s.steps > 0 && s.ascending * 2 >= s.steps;
        let fires = distinct >= min && sequential || distinct >= min.saturating_mul(4);
        if !fires {
            return;
        }
        let first = !s.fired;
        s.fired = true;
        let ev = [
            ("distinct_ids", distinct.to_string()),
            ("sequential", sequential.to_string()),
            ("responses_2xx", s.ok.to_string()),
            ("window_secs", self.cfg.window_secs.to_string()),
        ];
        let sev = if sequential { Severity::High } else { Severity::Medium };
        if first || new {
            self.hit(Kind::BolaEnumeration, sev, ep, Some(o.client), o.client, ts, &ev);
        }
    }

    fn stuffing(&mut self, o: &Observation, ep: &Endpoint<'_>, eh: u64) {
        if !is_login(o, ep.path) {
            return;
        }
        let Some(status) = o.status else { return };
        let failed = status == 401 || status == 403;
        let ok = (200..300).contains(&status);
        let ts = o.ts_us;
        let w = self.window_us;
        let mut full = 0;
        let mut fire: Option<(bool, u64, u64, u64)> = None;
        if let Some(s) = self.stuffing.get(&(o.client, eh), ts, w, &mut full) {
            if roll(&mut s.start, ts, w) {
                *s = Stuffing { start: ts, ..Stuffing::default() };
            }
            if failed {
                s.failures += 1;
            } else if status == 429 {
                s.throttled += 1;
            } else if ok && s.failures > 0 {
                s.successes_after += 1;
            }
            if s.failures >= self.cfg.stuffing_min_failures && (failed || ok) {
                s.fired = true;
                fire = Some((true, s.failures, s.successes_after, s.throttled));
            }
        }
        if let Some((report, failures, succ, throttled)) = fire {
            if report {
                let sev = if succ > 0 { Severity::Critical } else { Severity::High };
                let ev = [
                    ("failed_logins", failures.to_string()),
                    ("successful_logins_after_failures", succ.to_string()),
                    ("rate_limited", throttled.to_string()),
                ];
                self.hit(Kind::CredentialStuffing, sev, ep, Some(o.client), o.client, ts, &ev);
            }
        }
        let mut spread_fire: Option<(u64, usize)> = None;
        if failed {
            if let Some(s) = self.spread.get(&eh, ts, w, &mut full) {
                if roll(&mut s.start, ts, w) {
                    *s = Spread { start: ts, ..Spread::default() };
                }
                s.failures += 1;
                if s.clients.len() < MAX_WINDOW_SET {
                    s.clients.insert(o.client);
                }
                if !s.fired && s.failures >= self.cfg.stuffing_spread_min_failures && s.clients.len() >= self.cfg.stuffing_spread_min_clients {
                    s.fired = true;
                    spread_fire = Some((s.failures, s.clients.len()));
                }
            }
        }
        self.stats.detector_table_full += full;
        if let Some((failures, clients)) = spread_fire {
            let ev = [("failed_logins", failures.to_string()), ("clients", clients.to_string()), ("distributed", "true".to_string())];
            self.hit(Kind::CredentialStuffing, Severity::High, ep, None, o.client, ts, &ev);
        }
    }

    fn recon(&mut self, o: &Observation, ep: &Endpoint<'_>) {
        if o.status != Some(404) {
            return;
        }
        let ts = o.ts_us;
        let w = self.window_us;
        let mut full = 0;
        let k = (o.client, key_hash(&self.keyed, ep.host, "", ""));
        let (path_h, dir_h) = (key_hash(&self.keyed, "", "", ep.path), key_hash(&self.keyed, "", "", parent(ep.path)));
        let Some(s) = self.recon.get(&k, ts, w, &mut full) else {
            self.stats.detector_table_full += full;
            return;
        };
        if roll(&mut s.start, ts, w) {
            *s = Recon { start: ts, ..Recon::default() };
        }
        if s.paths.len() < MAX_WINDOW_SET {
            s.paths.insert(path_h);
        }
        if s.dirs.len() < MAX_WINDOW_SET {
            s.dirs.insert(dir_h);
        }
        if s.paths.len() >= self.cfg.recon_min_paths && s.dirs.len() >= self.cfg.recon_min_dirs {
            s.fired = true;
            let ev = [("distinct_404_paths", s.paths.len().to_string()), ("distinct_directories", s.dirs.len().to_string())];
            self.hit(Kind::ReconScanning, Severity::Medium, ep, Some(o.client), o.client, ts, &ev);
        }
    }

    fn spikes(&mut self, o: &Observation, ep: &Endpoint<'_>, eh: u64) {
        let ts = o.ts_us;
        let w = self.window_us;
        let mut full = 0;
        let k = eh;
        let Some(s) = self.rates.get(&k, ts, u64::MAX, &mut full) else {
            self.stats.detector_table_full += full;
            return;
        };
        if s.start == 0 {
            s.start = ts;
        } else if ts >= s.start.saturating_add(w) {
            // close the window (and any empty ones after it) into the means
            let elapsed = (ts - s.start) / w;
            let closes = elapsed.min(64);
            for i in 0..closes {
                let (r, e) = if i == 0 { (s.requests as f64, s.errors as f64) } else { (0.0, 0.0) };
                let n = s.windows as f64;
                s.mean_requests = (s.mean_requests * n + r) / (n + 1.0);
                s.mean_errors = (s.mean_errors * n + e) / (n + 1.0);
                s.windows += 1;
            }
            s.start = s.start.saturating_add(elapsed.saturating_mul(w));
            s.requests = 0;
            s.errors = 0;
            s.top.clear();
            s.fired_rate = false;
            s.fired_errors = false;
        }
        s.requests += 1;
        let error = o.status.is_some_and(|st| st >= 400);
        if error {
            s.errors += 1;
        }
        if s.top.len() < 64 || s.top.contains_key(&o.client) {
            *s.top.entry(o.client).or_default() += 1;
        }
        if s.windows < self.cfg.spike_min_windows {
            return;
        }
        let factor = self.cfg.spike_factor;
        let min = self.cfg.spike_min_requests;
        let top = s.top.iter().max_by_key(|(_, n)| **n).map(|(ip, _)| *ip).unwrap_or(o.client);
        let rate = !s.fired_rate && s.requests >= min && s.requests as f64 >= factor * s.mean_requests.max(1.0);
        let errs = !s.fired_errors && error && s.errors >= min && s.errors as f64 >= factor * s.mean_errors.max(1.0);
        s.fired_rate |= rate;
        s.fired_errors |= errs;
        let (req, errn, mr, me) = (s.requests, s.errors, s.mean_requests, s.mean_errors);
        if rate {
            let ev = [("requests_in_window", req.to_string()), ("baseline_mean", format!("{mr:.1}"))];
            self.hit(Kind::RateSpike, Severity::Medium, ep, Some(top), top, ts, &ev);
        }
        if errs {
            let ev = [("errors_in_window", errn.to_string()), ("baseline_mean", format!("{me:.1}"))];
            self.hit(Kind::ErrorSpike, Severity::Medium, ep, Some(top), top, ts, &ev);
        }
    }

    fn plaintext_and_tls(&mut self, host: &str, _ip: IpAddr, port: u16, client: IpAddr, ts: u64) {
        let ep = Endpoint { host, method: "*", path: "/*" };
        self.hit(Kind::PlaintextAndTls, Severity::Low, &ep, None, client, ts, &[("tls_port", port.to_string())]);
    }

    /// Posture of one TLS session: weak version or suite, expired
    /// certificate, the same host also served in cleartext. The finding's
    /// endpoint is the service (`TLS sni:port`).
    pub fn observe_tls(&mut self, s: &crate::proto::tls::TlsSession) {
        let Some(server) = s.server else { return };
        let client = s.client.map(|c| c.ip()).unwrap_or(server.ip());
        let host = s.sni.clone().unwrap_or_else(|| server.ip().to_string());
        let path = format!(":{}", server.port());
        let ep = Endpoint { host: &host, method: "TLS", path: &path };
        let ts = s.ts_us;
        let old_version = s.version.is_some_and(|v| v < 0x0303);
        let weak_suite = s.cipher.is_some_and(crate::proto::tls::weak_cipher);
        if old_version || weak_suite {
            let mut ev = vec![];
            if let Some(v) = s.version {
                ev.push(("version", crate::proto::tls::version_name(v)));
            }
            if let Some(c) = s.cipher {
                ev.push(("cipher_suite", format!("0x{c:04x}")));
            }
            self.hit(Kind::WeakTls, Severity::Medium, &ep, None, client, ts, &ev);
        }
        if let Some(na) = s.cert.as_ref().and_then(|c| c.not_after) {
            let now_s = i64::try_from(ts / 1_000_000).unwrap_or(i64::MAX);
            if ts > 0 && na < now_s {
                self.hit(Kind::ExpiredCertificate, Severity::High, &ep, None, client, ts, &[("not_after_epoch", na.to_string())]);
            }
        }
        if let Some(sni) = s.sni.as_deref() {
            if !self.tls_hosts.contains_key(sni) && self.tls_hosts.len() < self.cfg.max_tracked {
                self.tls_hosts.insert(sni.to_string(), (server.ip(), server.port()));
            }
            if self.plain_hosts.contains(sni) {
                self.plaintext_and_tls(sni, server.ip(), server.port(), client, ts);
            }
        }
    }

    /// Zombie by silence: `before` is the stored record, `first_us` the
    /// first request of the new activity.
    pub fn returned_after_silence(&mut self, host: &str, method: &str, path: &str, last_before_us: u64, first_us: u64, client: Option<IpAddr>) {
        let days = self.cfg.zombie_silent_days;
        if days == 0 || last_before_us == 0 {
            return;
        }
        let silent = first_us.saturating_sub(last_before_us);
        if silent < days.saturating_mul(86_400_000_000) {
            return;
        }
        let ep = Endpoint { host, method, path };
        let c = client.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.hit(Kind::ZombieApi, Severity::Medium, &ep, None, c, first_us, &[("reason", format!("called again after {} days of silence", silent / 86_400_000_000))]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::EndpointKey;

    #[test]
    fn weak_jwt_evidence_names_the_flags_set_in_name_order() {
        let names = ["jwt_alg_none", "jwt_expired_accepted", "jwt_long_lived", "jwt_no_exp"];
        for (mask, text) in WEAK_JWT_EVIDENCE.iter().enumerate() {
            let mut set: Vec<&str> = names.iter().enumerate().filter(|(i, _)| mask & 1 << i != 0).map(|(_, n)| *n).collect();
            set.sort_unstable();
            assert_eq!(*text, set.join(","), "mask {mask}");
        }
        // and the bits are the flags of the credentials: a finding per flag set
        for (flag, bit) in names.iter().zip(0..) {
            let mut d = Detector::new(&FindingsConfig::default(), Default::default(), None);
            let mut o = obs("10.0.0.1", "GET", "/v1/me", 200, 1);
            let mut cr = crate::analyze::auth::Credential {
                scheme: crate::analyze::auth::AuthScheme::BearerJwt,
                carrier: "authorization".into(),
                fingerprint: "".into(),
                principal_fingerprint: None,
                redacted: "".into(),
                jwt: None,
                flags: Default::default(),
            };
            match bit {
                0 => cr.flags.jwt_alg_none = true,
                1 => cr.flags.jwt_expired_accepted = true,
                2 => cr.flags.jwt_long_lived = true,
                _ => cr.flags.jwt_no_exp = true,
            }
            o.credentials.push(cr);
            run(&mut d, &o);
            let f = d.pending.values().find(|f| f.kind == Kind::WeakJwt).expect("a weak-JWT finding");
            assert_eq!(f.evidence.get("flags").map(String::as_str), Some(*flag));
        }
    }

    fn obs(client: &str, method: &str, path: &str, status: u16, ts_s: u64) -> Observation {
        let key = EndpointKey { host: "api.shop.test".into(), method: crate::analyze::method_name(method), path: crate::analyze::template::typed_template(path).into() };
        let mut o = Observation::bare(key, Some(status), ts_s * 1_000_000, "http/1.1", client.parse().unwrap());
        if *o.key.path != *path {
            o.object_id = path.rsplit('/').next().map(str::to_string);
        }
        o
    }

    fn run(d: &mut Detector, o: &Observation) {
        thread_local! {
            static KEYS: crate::analyze::fingerprint::HashKeys = crate::analyze::fingerprint::HashKeys::default();
        }
        let ep = Endpoint { host: &o.key.host, method: &o.key.method, path: &o.key.path };
        let key = KEYS.with(|k| k.hash(&[ep.host.as_bytes(), ep.method.as_bytes(), ep.path.as_bytes()]));
        d.observe(o, &ep, key);
    }

    fn kinds(fs: &[Finding]) -> Vec<(Kind, Option<IpAddr>)> {
        fs.iter().map(|f| (f.kind, f.actor)).collect()
    }

    #[test]
    fn sequential_id_walk_is_bola_random_reads_are_not() {
        let mut d = Detector::new(&FindingsConfig::default(), Spec::default(), None);
        for i in 1..=60 {
            run(&mut d, &obs("203.0.113.50", "GET", &format!("/v2/users/{i}"), 200, 100));
        }
        // a busy client reading 150 distinct ids in random order stays below 4 × 50
        for i in 0..150u64 {
            run(&mut d, &obs("198.18.20.22", "GET", &format!("/v2/users/{}", (i * 7919) % 1000), 200, 100));
        }
        let f = d.take();
        assert_eq!(kinds(&f), vec![(Kind::BolaEnumeration, Some("203.0.113.50".parse().unwrap()))]);
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].evidence.get("distinct_ids").map(String::as_str), Some("60"));
        assert_eq!(f[0].detected_us, 100_000_000);
    }

    #[test]
    fn failed_logins_then_success_is_critical_stuffing() {
        let mut d = Detector::new(&FindingsConfig::default(), Spec::default(), None);
        for i in 0..25 {
            run(&mut d, &obs("203.0.113.66", "POST", "/v1/login", 401, 10 + i / 10));
        }
        run(&mut d, &obs("203.0.113.66", "POST", "/v1/login", 200, 13));
        // a user mistyping a few times is not
        for _ in 0..5 {
            run(&mut d, &obs("198.18.10.11", "POST", "/v1/login", 401, 12));
        }
        let f = d.take();
        assert_eq!(kinds(&f), vec![(Kind::CredentialStuffing, Some("203.0.113.66".parse().unwrap()))]);
        assert_eq!(f[0].severity, Severity::Critical);
        assert_eq!(f[0].evidence.get("successful_logins_after_failures").map(String::as_str), Some("1"));
    }

    #[test]
    fn recon_needs_many_directories_missing_objects_do_not_count() {
        let mut d = Detector::new(&FindingsConfig::default(), Spec::default(), None);
        for p in ["/.env", "/.git/config", "/actuator/env", "/api/swagger.json", "/wp-login.php", "/v2/admin", "/v2/admin/export", "/v2/internal/config", "/v3/users", "/server-status"] {
            run(&mut d, &obs("203.0.113.77", "GET", p, 404, 50));
        }
        for i in 0..40 {
            run(&mut d, &obs("198.18.20.21", "GET", &format!("/v2/products/out-of-stock-item-{i}"), 404, 50));
        }
        assert_eq!(kinds(&d.take()), vec![(Kind::ReconScanning, Some("203.0.113.77".parse().unwrap()))]);
    }

    #[test]
    fn spikes_need_a_learned_baseline() {
        let cfg = FindingsConfig { spike_min_windows: 3, spike_min_requests: 50, ..FindingsConfig::default() };
        let mut d = Detector::new(&cfg, Spec::default(), None);
        // a burst before any baseline: nothing
        for _ in 0..100 {
            run(&mut d, &obs("198.18.20.23", "GET", "/v2/cart", 200, 1));
        }
        for w in 1..=4u64 {
            for _ in 0..2 {
                run(&mut d, &obs("198.18.10.11", "GET", "/v2/cart", 200, w * 60 + 1));
            }
        }
        assert!(d.take().is_empty());
        for _ in 0..300 {
            run(&mut d, &obs("203.0.113.9", "GET", "/v2/cart", 200, 5 * 60 + 2));
        }
        assert_eq!(kinds(&d.take()), vec![(Kind::RateSpike, Some("203.0.113.9".parse().unwrap()))]);
    }

    #[test]
    fn shadow_and_zombie_from_the_spec_ignore_404s() {
        let mut spec = Spec::default();
        spec.add_document("s", r#"{"openapi":"3.0.0","servers":[{"url":"http://api.shop.test"}],"paths":{"/v2/users/{id}":{"get":{}},"/v1/users/{id}":{"get":{"deprecated":true}}}}"#).unwrap();
        let mut d = Detector::new(&FindingsConfig::default(), spec, None);
        run(&mut d, &obs("198.18.10.11", "GET", "/v2/users/5", 200, 1));
        run(&mut d, &obs("203.0.113.77", "GET", "/v2/admin/export-users", 200, 2));
        run(&mut d, &obs("203.0.113.77", "GET", "/.env", 404, 2));
        run(&mut d, &obs("198.51.100.23", "GET", "/v1/users/7", 200, 3));
        let f = d.take();
        let mut got: Vec<(Kind, &str)> = f.iter().map(|f| (f.kind, f.path.as_str())).collect();
        got.sort();
        assert_eq!(got, vec![(Kind::ShadowApi, "/v2/admin/export-users"), (Kind::ZombieApi, "/v1/users/{id}")]);
        assert!(f.iter().all(|f| f.actor.is_none() && f.clients.len() == 1));
    }

    #[test]
    fn an_endpoint_called_again_after_long_silence_is_a_zombie() {
        let day = 86_400_000_000u64;
        let cfg = FindingsConfig { zombie_silent_days: 30, ..FindingsConfig::default() };
        let mut d = Detector::new(&cfg, Spec::default(), None);
        d.returned_after_silence("api.shop.test", "GET", "/v1/a", 100 * day, 129 * day, None);
        assert!(d.take().is_empty(), "29 days is not silence enough");
        d.returned_after_silence("api.shop.test", "GET", "/v1/a", 100 * day, 131 * day, Some("198.51.100.23".parse().unwrap()));
        let f = d.take();
        assert_eq!(kinds(&f), vec![(Kind::ZombieApi, None)]);
        assert_eq!(f[0].evidence.get("reason").map(String::as_str), Some("called again after 31 days of silence"));
        let mut off = Detector::new(&FindingsConfig { zombie_silent_days: 0, ..cfg }, Spec::default(), None);
        off.returned_after_silence("api.shop.test", "GET", "/v1/a", day, 900 * day, None);
        assert!(off.take().is_empty(), "0 turns the rule off");
    }

    #[test]
    fn tls_posture_weak_versions_expired_certificates_and_mixed_serving() {
        use crate::proto::tls::{CertInfo, TlsSession};
        let mut d = Detector::new(&FindingsConfig::default(), Spec::default(), None);
        let now_s = 1_800_000_000i64;
        let session = |sni: &str, version: u16, cipher: u16, not_after: i64| TlsSession {
            client: Some("198.18.10.11:40000".parse().unwrap()),
            server: Some("198.18.0.10:443".parse().unwrap()),
            sni: Some(sni.into()),
            version: Some(version),
            cipher: Some(cipher),
            cert: Some(CertInfo { not_after: Some(not_after), ..CertInfo::default() }),
            ts_us: now_s as u64 * 1_000_000,
            ..TlsSession::default()
        };
        d.observe_tls(&session("good.test", 0x0304, 0x1301, now_s + 86_400));
        assert!(d.take().is_empty());
        d.observe_tls(&session("old.test", 0x0301, 0xc013, now_s + 86_400));
        d.observe_tls(&session("rc4.test", 0x0303, 0x0005, now_s + 86_400));
        d.observe_tls(&session("expired.test", 0x0303, 0xc02f, now_s - 1));
        let mut got: Vec<(Kind, String)> = d.take().into_iter().map(|f| (f.kind, f.host)).collect();
        got.sort();
        assert_eq!(got, vec![(Kind::WeakTls, "old.test".into()), (Kind::WeakTls, "rc4.test".into()), (Kind::ExpiredCertificate, "expired.test".into())]);
        // the same host answered in cleartext too
        run(&mut d, &Observation { key: crate::analyze::EndpointKey { host: "good.test".into(), method: "GET".into(), path: "/".into() }, ..obs("198.18.10.11", "GET", "/", 200, now_s as u64) });
        assert_eq!(kinds(&d.take()), vec![(Kind::PlaintextAndTls, None)]);
    }

    #[test]
    fn merge_reopens_a_resolved_finding_and_keeps_one_record() {
        let mut a = Finding { uid: "u".into(), count: 3, first_seen_us: 5, last_seen_us: 9, state: State::Resolved, resolved_ms: Some(1), ..Finding::default() };
        let d = Finding { count: 1, first_seen_us: 20, last_seen_us: 20, ..Finding::default() };
        a.merge(&d);
        assert_eq!((a.count, a.first_seen_us, a.last_seen_us, a.state, a.reopened), (4, 5, 20, State::Open, 1));
    }

    #[test]
    fn tables_are_bounded_and_count_refusals() {
        let cfg = FindingsConfig { max_tracked: 16, ..FindingsConfig::default() };
        let mut d = Detector::new(&cfg, Spec::default(), None);
        for i in 0..100u32 {
            let ip = format!("10.0.{}.{}", i / 250, i % 250);
            run(&mut d, &obs(&ip, "GET", "/v2/users/1", 404, 1));
        }
        assert!(d.stats().detector_table_full >= 84, "{:?}", d.stats());
    }
}
