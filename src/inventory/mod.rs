//! Merging observations into endpoint records.
//!
//! Records are commutative aggregates (counts, min/max times, sets), so the
//! inventory is the same whatever order workers deliver observations in.

#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used))]

pub mod baseline;
pub mod findings;
pub mod spec;
pub mod templates;
pub mod tls;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::analyze::auth::EndpointAuth;
use crate::analyze::shape::Shape;
use crate::analyze::{EndpointKey, Observation};

/// Distinct clients counted exactly up to this many per endpoint; beyond it
/// the count is a lower bound (`clients_capped`).
pub const MAX_CLIENTS: usize = 256;
/// Distinct content types, query parameters and tag values kept per endpoint.
pub const MAX_SMALL_SET: usize = 32;
/// Latency histogram: bucket `i` holds latencies below 2^i ms (the last is open).
pub const LATENCY_BUCKETS: usize = 24;

/// Size statistics of one side's bodies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeStats {
    pub count: u64,
    pub sum: u64,
    pub min: u64,
    pub max: u64,
}

impl SizeStats {
    fn add(&mut self, n: u64) {
        self.min = if self.count == 0 { n } else { self.min.min(n) };
        self.max = self.max.max(n);
        self.count += 1;
        self.sum = self.sum.saturating_add(n);
    }
    fn merge(&mut self, o: &SizeStats) {
        if o.count == 0 {
            return;
        }
        self.min = if self.count == 0 { o.min } else { self.min.min(o.min) };
        self.max = self.max.max(o.max);
        self.count += o.count;
        self.sum = self.sum.saturating_add(o.sum);
    }
}

fn add_str(m: &mut BTreeMap<String, u64>, k: &str, n: u64) {
    match m.get_mut(k) {
        Some(c) => *c = c.saturating_add(n),
        None => {
            m.insert(k.to_string(), n);
        }
    }
}

/// Adds `n` to the count of `k` (a key or a borrowed form of one, copied
/// only when new), while the map holds fewer than `cap` keys.
fn add_count<K, Q>(m: &mut BTreeMap<K, u64>, k: &Q, n: u64, cap: usize)
where
    K: Ord + std::borrow::Borrow<Q>,
    Q: Ord + ToOwned<Owned = K> + ?Sized,
{
    if let Some(c) = m.get_mut(k) {
        *c = c.saturating_add(n);
    } else if m.len() < cap {
        m.insert(k.to_owned(), n);
    }
}

/// One API endpoint as stored and dumped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointRecord {
    pub host: String,
    pub method: String,
    /// Path template (`{name}` parameters).
    pub path: String,
    pub requests: u64,
    /// Final response status → count.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests seen without a response.
    pub no_response: u64,
    /// Packet time (µs since the epoch) of the first and last request.
    pub first_seen_us: u64,
    pub last_seen_us: u64,
    pub protocols: BTreeSet<String>,
    /// Authentication seen, aggregated.
    pub auth: EndpointAuth,
    /// Sensitive kind → requests (or responses) carrying it.
    pub request_sensitive: BTreeMap<String, u64>,
    pub response_sensitive: BTreeMap<String, u64>,
    /// Client class (internal, partner, external) → requests.
    pub exposure: BTreeMap<String, u64>,
    pub tags: BTreeMap<String, String>,
    /// Distinct client addresses (exact up to [`MAX_CLIENTS`]).
    pub client_ips: BTreeSet<std::net::IpAddr>,
    pub clients_capped: bool,
    pub forwarded_requests: u64,
    /// Latency histogram (see [`LATENCY_BUCKETS`]).
    pub latency_ms_log2: Vec<u64>,
    pub request_size: SizeStats,
    pub response_size: SizeStats,
    pub request_content_types: BTreeMap<String, u64>,
    pub response_content_types: BTreeMap<String, u64>,
    /// Query parameter name → types seen (values never kept).
    pub query_params: BTreeMap<String, BTreeSet<String>>,
    pub request_schema: Option<Shape>,
    pub response_schema: Option<Shape>,
}

impl EndpointRecord {
    /// An empty record for `key`.
    pub fn new(key: &EndpointKey) -> EndpointRecord {
        EndpointRecord {
            host: key.host.to_string(),
            method: key.method.to_string(),
            path: key.path.to_string(),
            first_seen_us: u64::MAX,
            ..EndpointRecord::default()
        }
    }

    /// The key of this record.
    pub fn key(&self) -> EndpointKey {
        EndpointKey { host: self.host.as_str().into(), method: crate::analyze::method_name(&self.method), path: self.path.as_str().into() }
    }

    /// Adds one observation.
    pub fn observe(&mut self, o: &Observation) {
        self.requests = self.requests.saturating_add(1);
        match o.status {
            Some(s) => *self.statuses.entry(s).or_insert(0) += 1,
            None => self.no_response = self.no_response.saturating_add(1),
        }
        self.first_seen_us = self.first_seen_us.min(o.ts_us);
        self.last_seen_us = self.last_seen_us.max(o.ts_us);
        if !self.protocols.contains(o.protocol) {
            self.protocols.insert(o.protocol.to_string());
        }
        self.auth.observe(&o.credentials, o.status);
        for k in &o.req_sensitive {
            add_str(&mut self.request_sensitive, k.as_str(), 1);
        }
        for k in &o.resp_sensitive {
            add_str(&mut self.response_sensitive, k.as_str(), 1);
        }
        add_str(&mut self.exposure, o.client_class, 1);
        for (k, v) in &o.tags {
            if self.tags.get(k) != Some(v) {
                self.tags.insert(k.clone(), v.clone());
            }
        }
        if !self.client_ips.contains(&o.client) {
            if self.client_ips.len() < MAX_CLIENTS {
                self.client_ips.insert(o.client);
            } else {
                self.clients_capped = true;
            }
        }
        self.forwarded_requests += u64::from(o.forwarded);
        if let Some(l) = o.latency_us {
            if self.latency_ms_log2.len() < LATENCY_BUCKETS {
                self.latency_ms_log2.resize(LATENCY_BUCKETS, 0);
            }
            let ms = l / 1000;
            let b = (64 - ms.leading_zeros() as usize).min(LATENCY_BUCKETS - 1);
            if let Some(c) = self.latency_ms_log2.get_mut(b) {
                *c += 1;
            }
        }
        self.request_size.add(o.req_bytes);
        if o.status.is_some() {
            self.response_size.add(o.resp_bytes);
        }
        if let Some(c) = &o.req_content_type {
            add_count(&mut self.request_content_types, &**c, 1, MAX_SMALL_SET);
        }
        if let Some(c) = &o.resp_content_type {
            add_count(&mut self.response_content_types, &**c, 1, MAX_SMALL_SET);
        }
        for (name, t) in &o.query {
            if let Some(set) = self.query_params.get_mut(name) {
                if !set.contains(*t) {
                    set.insert(t.to_string());
                }
            } else if self.query_params.len() < MAX_SMALL_SET {
                self.query_params.insert(name.clone(), [t.to_string()].into());
            }
        }
        merge_shape(&mut self.request_schema, o.req_shape.as_deref());
        merge_shape(&mut self.response_schema, o.resp_shape.as_deref());
    }

    /// Adds another record of the same endpoint (e.g. the stored one).
    pub fn merge(&mut self, other: &EndpointRecord) {
        self.requests = self.requests.saturating_add(other.requests);
        for (s, c) in &other.statuses {
            let e = self.statuses.entry(*s).or_insert(0);
            *e = e.saturating_add(*c);
        }
        self.no_response = self.no_response.saturating_add(other.no_response);
        self.first_seen_us = self.first_seen_us.min(other.first_seen_us);
        self.last_seen_us = self.last_seen_us.max(other.last_seen_us);
        self.protocols.extend(other.protocols.iter().cloned());
        self.auth.merge(&other.auth);
        for (k, c) in &other.request_sensitive {
            add_count(&mut self.request_sensitive, k, *c, usize::MAX);
        }
        for (k, c) in &other.response_sensitive {
            add_count(&mut self.response_sensitive, k, *c, usize::MAX);
        }
        for (k, c) in &other.exposure {
            add_count(&mut self.exposure, k, *c, usize::MAX);
        }
        for (k, v) in &other.tags {
            self.tags.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for ip in &other.client_ips {
            if self.client_ips.len() < MAX_CLIENTS {
                self.client_ips.insert(*ip);
            } else if !self.client_ips.contains(ip) {
                self.clients_capped = true;
            }
        }
        self.clients_capped |= other.clients_capped;
        self.forwarded_requests += other.forwarded_requests;
        if !other.latency_ms_log2.is_empty() {
            self.latency_ms_log2.resize(LATENCY_BUCKETS.max(self.latency_ms_log2.len()), 0);
            for (a, b) in self.latency_ms_log2.iter_mut().zip(&other.latency_ms_log2) {
                *a += b;
            }
        }
        self.request_size.merge(&other.request_size);
        self.response_size.merge(&other.response_size);
        for (k, c) in &other.request_content_types {
            add_count(&mut self.request_content_types, k, *c, MAX_SMALL_SET);
        }
        for (k, c) in &other.response_content_types {
            add_count(&mut self.response_content_types, k, *c, MAX_SMALL_SET);
        }
        for (k, t) in &other.query_params {
            if let Some(set) = self.query_params.get_mut(k) {
                set.extend(t.iter().cloned());
            } else if self.query_params.len() < MAX_SMALL_SET {
                self.query_params.insert(k.clone(), t.clone());
            }
        }
        merge_shape(&mut self.request_schema, other.request_schema.as_ref());
        merge_shape(&mut self.response_schema, other.response_schema.as_ref());
    }

    /// Latency percentile `p` (0–100) in milliseconds: the upper bound of the
    /// histogram bucket holding it.
    pub fn latency_percentile_ms(&self, p: u64) -> Option<u64> {
        let total: u64 = self.latency_ms_log2.iter().sum();
        if total == 0 {
            return None;
        }
        let want = (total * p).div_ceil(100).max(1);
        let mut acc = 0;
        for (i, c) in self.latency_ms_log2.iter().enumerate() {
            acc += c;
            if acc >= want {
                return Some(if i == 0 { 0 } else { 1u64 << i });
            }
        }
        None
    }

    /// The client count (a lower bound when capped).
    pub fn clients(&self) -> usize {
        self.client_ips.len()
    }
}

fn merge_shape(into: &mut Option<Shape>, from: Option<&Shape>) {
    if let Some(f) = from {
        match into {
            Some(s) => s.merge(f),
            None => *into = Some(f.clone()),
        }
    }
}

/// Counters of the inventory.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InventoryStats {
    pub observations: u64,
    /// Two endpoints under one 128-bit keyed hash (never expected; such an
    /// observation is not filed, and counted here).
    pub key_collisions: u64,
}


/// Endpoint changes not yet written to the store, and the learned templates.
#[derive(Default)]
pub struct Inventory {
    /// Records by a keyed 128-bit hash of (host, method, template): one pass
    /// finds a record with no key built for the lookup; each record holds its
    /// own key, checked on every lookup.
    dirty: HashMap<u128, EndpointRecord, crate::analyze::fingerprint::PreHashed>,
    dirty_keys: crate::analyze::fingerprint::HashKeys,
    /// The template the last observation was filed under (its buffer reused).
    filed: String,
    templater: templates::Templater,
    /// Rules learned since the last [`Inventory::take_new_rules`].
    new_rules: Vec<templates::Rule>,
    stats: InventoryStats,
    /// Templates already worked out, by a keyed hash of (host, path): valid
    /// while no rule is learned (learning again from a path already learned
    /// from changes nothing), cleared when one is; at most [`MEMO_LIMIT`].
    memo: HashMap<u64, Filed, crate::analyze::fingerprint::PreHashed>,
    /// Keys the memo's hash (the map does not hash it again); entries are
    /// checked against host and path, so a fast seeded hash will do.
    memo_keys: foldhash::fast::RandomState,
    /// The memo again, by the addresses of the observation's host and path:
    /// workers hand on one shared copy of each (`template::shared_text`: an
    /// endpoint's host, the template of its paths), so most observations are found
    /// here without hashing or comparing a string. Its entries hold those
    /// copies, so an address cannot be reused for other text while it is
    /// here. Cleared with the memo; at most [`MEMO_LIMIT`].
    by_address: HashMap<(usize, usize), Filed, foldhash::fast::RandomState>,
}

/// A memo entry: the template a host's path is filed under, and the
/// endpoint key ([`Inventory::observe`]) of the last of [`MEMO_METHODS`] it
/// was called with (a path is mostly called with one method).
struct Filed {
    host: std::sync::Arc<str>,
    path: std::sync::Arc<str>,
    template: String,
    key: Option<(usize, u128)>,
}

impl Filed {
    /// The endpoint key of `template` for the method of `method_index`:
    /// the one kept for the method last seen here, if it is this one.
    fn key_for(&mut self, method_index: Option<usize>, key_of: impl Fn(&str) -> u128) -> u128 {
        match (self.key, method_index) {
            (Some((held, k)), Some(i)) if held == i => k,
            _ => {
                let k = key_of(&self.template);
                self.key = method_index.map(|i| (i, k));
                k
            }
        }
    }
}

/// Where an `Arc<str>`'s text lies (for [`Inventory`]'s memo by address).
fn address(s: &std::sync::Arc<str>) -> usize {
    std::sync::Arc::as_ptr(s).cast::<u8>() as usize
}

/// Methods whose endpoint keys a memo entry keeps (by index).
const MEMO_METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

/// Entries of the template memo before it starts again.
const MEMO_LIMIT: usize = 65_536;

/// Re-learning after a new rule converges in a step or two; this bounds it.
const MAX_RELEARN: usize = 8;

impl Inventory {
    pub fn new() -> Inventory {
        Inventory::default()
    }

    /// An inventory that learns templates with `cfg`.
    pub fn with_learning(cfg: templates::LearnConfig) -> Inventory {
        Inventory { templater: templates::Templater::new(cfg), ..Inventory::default() }
    }

    /// Restores rules and the paths known from a previous run (from the store).
    pub fn restore(&mut self, rules: Vec<templates::Rule>, known: &[(String, String)]) {
        self.memo.clear();
        self.by_address.clear();
        for r in rules {
            self.templater.add_rule(r);
        }
        for (host, path) in known {
            let t = self.templater.apply(host, path);
            self.new_rules.extend(self.templater.learn(host, &t));
        }
    }

    /// The template of `path` on `host` under the rules learned so far.
    pub fn template(&self, host: &str, path: &str) -> String {
        self.templater.apply(host, path)
    }

    /// Adds one observation; returns the path template it was filed under
    /// and the endpoint's keyed 128-bit hash (host, method, template), which
    /// the detectors key their per-endpoint tables with.
    pub fn observe(&mut self, o: &Observation) -> (&str, u128) {
        self.stats.observations += 1;
        let host: &str = &o.key.host;
        let opath: &str = &o.key.path;
        let method: &str = &o.key.method;
        let method_index = MEMO_METHODS.iter().position(|m| *m == method);
        let key_in = |keys: &crate::analyze::fingerprint::HashKeys, template: &str| keys.hash(&[host.as_bytes(), method.as_bytes(), template.as_bytes()]);
        let at = (address(&o.key.host), address(&o.key.path));
        let known = if o.fixed { None } else { self.by_address.get_mut(&at) };
        let made;
        let (template, k): (&str, u128) = match known {
            // the entry holds the very host and path: no string to compare
            Some(f) => {
                let k = f.key_for(method_index, |t| key_in(&self.dirty_keys, t));
                (f.template.as_str(), k)
            }
            None => {
                let memo_key = std::hash::BuildHasher::hash_one(&self.memo_keys, (host, opath));
                let held = !o.fixed && matches!(self.memo.get(&memo_key), Some(f) if *f.host == *host && *f.path == *opath);
                made = if held {
                    None
                } else if o.fixed {
                    Some(opath.to_string())
                } else {
                    let mut path = self.templater.apply(host, opath);
                    // learning may enable further learning; bounded by MAX_RELEARN
                    let mut learned_any = false;
                    for _ in 0..MAX_RELEARN {
                        let learned = self.templater.learn(host, &path);
                        if learned.is_empty() {
                            break;
                        }
                        learned_any = true;
                        self.new_rules.extend(learned);
                        self.retemplate_dirty(host);
                        path = self.templater.apply(host, opath);
                    }
                    if learned_any || self.memo.len() >= MEMO_LIMIT {
                        self.memo.clear();
                        self.by_address.clear();
                    }
                    if !learned_any {
                        let f = Filed { host: std::sync::Arc::clone(&o.key.host), path: std::sync::Arc::clone(&o.key.path), template: path.clone(), key: None };
                        self.memo.insert(memo_key, f);
                    }
                    Some(path)
                };
                let keys = &self.dirty_keys;
                let key_of = |t: &str| key_in(keys, t);
                match &made {
                    Some(t) => (t.as_str(), key_of(t)),
                    None => match self.memo.get_mut(&memo_key) {
                        Some(f) => {
                            let k = f.key_for(method_index, key_of);
                            if self.by_address.len() >= MEMO_LIMIT {
                                self.by_address.clear();
                            }
                            // found by its text: next time by the addresses
                            let entry = Filed { host: std::sync::Arc::clone(&o.key.host), path: std::sync::Arc::clone(&o.key.path), template: f.template.clone(), key: f.key };
                            self.by_address.insert(at, entry);
                            (f.template.as_str(), k)
                        }
                        None => (opath, key_of(opath)),
                    },
                }
            }
        };
        match self.dirty.get_mut(&k) {
            Some(rec) if rec.host == host && rec.method == method && rec.path == template => rec.observe(o),
            Some(_) => self.stats.key_collisions += 1,
            None => {
                let key = EndpointKey { host: host.into(), method: crate::analyze::method_name(method), path: template.into() };
                let mut rec = EndpointRecord::new(&key);
                rec.observe(o);
                self.dirty.insert(k, rec);
            }
        }
        self.filed.clear();
        self.filed.push_str(template);
        (&self.filed, k)
    }

    /// Re-keys the waiting records of `host` after a new rule, merging those
    /// that now share a template.
    fn retemplate_dirty(&mut self, host: &str) {
        let keys: Vec<u128> = self.dirty.iter().filter(|(_, r)| r.host == host).map(|(k, _)| *k).collect();
        for k in keys {
            let Some(rec) = self.dirty.get(&k) else { continue };
            let t = self.templater.apply(host, &rec.path);
            if t == rec.path {
                continue;
            }
            if let Some(mut rec) = self.dirty.remove(&k) {
                let nk = self.dirty_keys.hash(&[rec.host.as_bytes(), rec.method.as_bytes(), t.as_bytes()]);
                rec.path = t;
                match self.dirty.get_mut(&nk) {
                    Some(existing) if existing.host == rec.host && existing.method == rec.method && existing.path == rec.path => existing.merge(&rec),
                    Some(_) => self.stats.key_collisions += 1,
                    None => {
                        self.dirty.insert(nk, rec);
                    }
                }
            }
        }
    }

    /// Rules learned since the last call: stored records must be re-keyed for them.
    pub fn take_new_rules(&mut self) -> Vec<templates::Rule> {
        std::mem::take(&mut self.new_rules)
    }

    /// Every rule learned (to persist).
    pub fn rules(&self) -> Vec<templates::Rule> {
        self.templater.rules()
    }

    /// Number of endpoint records waiting to be written.
    pub fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    /// Takes the changes made since the last call, sorted by key.
    /// (Each record holds what was observed since the previous call: merged
    /// into the stored record by the store.)
    pub fn take_dirty(&mut self) -> Vec<EndpointRecord> {
        let mut v: Vec<EndpointRecord> = self.dirty.drain().map(|(_, r)| r).collect();
        v.sort_by(|a, b| (&a.host, &a.path, &a.method).cmp(&(&b.host, &b.path, &b.method)));
        v
    }

    pub fn stats(&self) -> &InventoryStats {
        &self.stats
    }

    pub fn learn_stats(&self) -> &templates::LearnStats {
        self.templater.stats()
    }
}

/// What an endpoint gained between two versions of its record, as
/// `kind:value` strings: `auth:`, `request_sensitive:`, `response_sensitive:`,
/// `exposure:`, `protocol:`. Empty when nothing an inventory consumer cares
/// about changed (counts alone are not changes).
pub fn gained(old: &EndpointRecord, new: &EndpointRecord) -> Vec<String> {
    fn added<'a, I: IntoIterator<Item = &'a String>>(kind: &str, old: I, new: I, out: &mut Vec<String>) {
        let old: BTreeSet<&String> = old.into_iter().collect();
        out.extend(new.into_iter().filter(|k| !old.contains(k)).map(|k| format!("{kind}:{k}")));
    }
    let mut out = Vec::new();
    added("auth", old.auth.schemes_seen.keys(), new.auth.schemes_seen.keys(), &mut out);
    added("request_sensitive", old.request_sensitive.keys(), new.request_sensitive.keys(), &mut out);
    added("response_sensitive", old.response_sensitive.keys(), new.response_sensitive.keys(), &mut out);
    added("exposure", old.exposure.keys(), new.exposure.keys(), &mut out);
    added("protocol", old.protocols.iter(), new.protocols.iter(), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(path: &str, status: Option<u16>, ts: u64) -> Observation {
        Observation::bare(EndpointKey { host: "h".into(), method: "GET".into(), path: path.into() }, status, ts, "http/1.1", "10.0.0.1".parse().unwrap())
    }

    #[test]
    fn merge_is_order_independent() {
        let all = [obs("/a", Some(200), 5), obs("/a", Some(404), 3), obs("/a", None, 9), obs("/b", Some(200), 1)];
        let mut fwd = Inventory::new();
        all.iter().for_each(|o| { fwd.observe(o); });
        let mut rev = Inventory::new();
        all.iter().rev().for_each(|o| { rev.observe(o); });
        let f = fwd.take_dirty();
        assert_eq!(f, rev.take_dirty());
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].requests, 3);
        assert_eq!(f[0].statuses.get(&404), Some(&1));
        assert_eq!(f[0].no_response, 1);
        assert_eq!((f[0].first_seen_us, f[0].last_seen_us), (3, 9));
    }

    #[test]
    fn memo_by_address_files_as_the_text_does() {
        // Two workers' shared copies of hosts and paths, against a reference
        // given a new copy every time (never found by address): the same
        // records, through rules learned midway (free-text siblings).
        let paths = ["/docs/alpha-guide", "/docs/beta-notes", "/docs/gamma-intro", "/docs/delta-faq", "/api/v1/items", "/api/v1/orders"];
        let hosts = ["a.example", "b.example"];
        let methods = ["GET", "POST", "HEAD"];
        let shared: Vec<Vec<(std::sync::Arc<str>, std::sync::Arc<str>)>> = (0..2)
            .map(|_| hosts.iter().flat_map(|h| paths.iter().map(move |p| (std::sync::Arc::<str>::from(*h), std::sync::Arc::<str>::from(*p)))).collect())
            .collect();
        let mut tested = Inventory::with_learning(templates::LearnConfig::default());
        let mut reference = Inventory::with_learning(templates::LearnConfig::default());
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for ts in 0..600u64 {
            let (worker, pair, method) = (next(2), next(shared[0].len()), methods[next(methods.len())]);
            let (host, path) = &shared[worker][pair];
            let with = |host: std::sync::Arc<str>, path: std::sync::Arc<str>| {
                Observation::bare(EndpointKey { host, method: method.to_string().into(), path }, Some(200), ts, "http/1.1", "10.0.0.1".parse().unwrap())
            };
            let a = with(std::sync::Arc::clone(host), std::sync::Arc::clone(path));
            let b = with(host.to_string().into(), path.to_string().into());
            let (ta, tb) = (tested.observe(&a).0.to_string(), reference.observe(&b).0.to_string());
            assert_eq!(ta, tb, "{host}{path} at {ts}");
            assert_eq!(ta, tested.template(host, path), "{host}{path} at {ts}");
        }
        assert!(!tested.by_address.is_empty() && reference.by_address.values().all(|f| std::sync::Arc::strong_count(&f.host) == 1));
        assert!(tested.rules().iter().any(|r| r.parent == "/docs"), "a rule is learned midway");
        assert_eq!(tested.take_dirty(), reference.take_dirty());
    }

    #[test]
    fn merging_records_adds_counts() {
        let mut a = EndpointRecord::new(&obs("/a", None, 0).key);
        a.observe(&obs("/a", Some(200), 10));
        let mut b = a.clone();
        b.observe(&obs("/a", Some(500), 2));
        a.merge(&b);
        assert_eq!(a.requests, 3);
        assert_eq!(a.statuses.get(&200), Some(&2));
        assert_eq!(a.first_seen_us, 2);
    }
}
