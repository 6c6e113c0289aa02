//! The RocksDB inventory store.
//!
//! Column families:
//! - `endpoints`: key `host \0 method \0 path` (the path becomes the path
//!   template later without changing the key layout), value = one format
//!   byte ([`VALUE_FORMAT`]) + the JSON of an [`EndpointRecord`];
//! - `templates`: learned path-template rules, key `host \0 parent`, value =
//!   the parameter name;
//! - `meta`: `schema_version` (decimal ASCII), `fingerprint_key` (32 random
//!   bytes, created once: the key of the keyed fingerprints), the outbox
//!   cursor of every sink (`outbox_cursor:<sink>`, 8 bytes big-endian: the
//!   last sequence number delivered) and other store-wide facts;
//! - `findings`: key = finding uid, value = one format byte + the JSON of a
//!   [`Finding`] (merged by uid: one record per finding across runs);
//!   baselines live in `meta` under `baseline:<name>` (JSON);
//! - `tls`: the TLS service inventory, key `ip \0 port \0 sni`, value = one
//!   format byte + the JSON of a [`TlsServiceRecord`];
//! - `outbox`: events waiting for SIEM sinks, key = 8-byte big-endian
//!   sequence number (from 1), value = one serialised event (JSON, no newline).
//!   Entries every sink has delivered are deleted.
//!
//! Schema history: 1 = raw paths; 2 = path templates and learned rules.
//! Opening a schema-1 store for writing migrates it (paths are re-keyed to
//! their typed templates); a newer schema is refused.
//!
//! One process writes (RocksDB's lock file enforces it); readers such as
//! `apitap dump` open the store read-only.

use std::path::{Path, PathBuf};

use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, DB};
use thiserror::Error;

use crate::analyze::fingerprint::KEY_LEN;
use crate::inventory::templates::Rule;
use crate::inventory::baseline::Baseline;
use crate::inventory::findings::{finding_uid, Finding, State};
use crate::inventory::tls::TlsServiceRecord;
use crate::inventory::EndpointRecord;

/// Schema version this build writes and understands.
pub const SCHEMA_VERSION: u32 = 2;
/// Format byte in front of every endpoint value.
pub const VALUE_FORMAT: u8 = 1;

pub const CF_ENDPOINTS: &str = "endpoints";
pub const CF_META: &str = "meta";
pub const CF_TEMPLATES: &str = "templates";
pub const CF_OUTBOX: &str = "outbox";
pub const CF_FINDINGS: &str = "findings";
pub const CF_TLS: &str = "tls";
const ALL_CFS: [&str; 6] = [CF_ENDPOINTS, CF_META, CF_TEMPLATES, CF_OUTBOX, CF_FINDINGS, CF_TLS];
const KEY_BASELINE_PREFIX: &str = "baseline:";
const KEY_CURSOR_PREFIX: &str = "outbox_cursor:";
const KEY_SCHEMA: &[u8] = b"schema_version";
const KEY_FINGERPRINT: &[u8] = b"fingerprint_key";

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {message}; {hint}")]
    Open { path: PathBuf, message: String, hint: &'static str },
    #[error("the store at {path} was written by a newer apitap (schema {found}, this build understands up to {supported}); use a newer apitap or another --store directory")]
    NewerSchema { path: PathBuf, found: u32, supported: u32 },
    #[error("the store at {path} has an unreadable schema version {found:?}; it may not be an apitap store, give another --store directory")]
    BadSchema { path: PathBuf, found: String },
    #[error("store at {path}: {message}{}", io_hint(.message))]
    Io { path: PathBuf, message: String },
    #[error("store at {path}: record {key:?} is corrupt ({message})")]
    Corrupt { path: PathBuf, key: String, message: String },
}

/// How a store is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The single writer; creates the store when missing.
    ReadWrite,
    /// A reader beside a running writer, or of a finished store.
    ReadOnly,
}

/// An open store.
pub struct Store {
    db: DB,
    path: PathBuf,
    /// Last outbox sequence number written (0 = none yet).
    outbox_last: std::sync::atomic::AtomicU64,
}

/// What to do about a write error, when its cause is recognisable.
fn io_hint(message: &str) -> &'static str {
    if message.contains("No space left") {
        "; the filesystem is full: free space (or move store.path) and run again; what was flushed before is kept"
    } else if message.contains("ermission") || message.contains("Read-only file system") {
        "; the store directory is not writable: check its owner, permissions and mount"
    } else {
        ""
    }
}

fn open_error(path: &Path, e: &rocksdb::Error, access: Access) -> StoreError {
    let message = e.to_string();
    let hint = if message.contains("lock") || message.contains("LOCK") {
        "another apitap process is writing to it; stop it or give another --store directory"
    } else if message.contains("does not exist") || message.contains("No such file") {
        "the directory does not hold a store yet; run `apitap replay` or `apitap capture` with this --store first"
    } else if message.contains("ermission") {
        "check the directory's owner and permissions"
    } else if message.contains("No space left") {
        "the filesystem is full: free space (or move store.path) and run again; what the store held is kept"
    } else if access == Access::ReadOnly {
        "check that the path is an apitap store directory"
    } else {
        "check that the path is a writable directory (or does not exist yet)"
    };
    StoreError::Open { path: path.to_path_buf(), message, hint }
}

/// Encodes the endpoint key.
pub fn endpoint_key(host: &str, method: &str, path: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(host.len() + method.len() + path.len() + 2);
    k.extend_from_slice(host.as_bytes());
    k.push(0);
    k.extend_from_slice(method.as_bytes());
    k.push(0);
    k.extend_from_slice(path.as_bytes());
    k
}

fn encode_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut v = vec![VALUE_FORMAT];
    if serde_json::to_writer(&mut v, value).is_err() {
        v.truncate(1);
    }
    v
}

fn encode(rec: &EndpointRecord) -> Vec<u8> {
    let mut v = vec![VALUE_FORMAT];
    // serialising a plain struct of strings, maps and integers cannot fail
    if serde_json::to_writer(&mut v, rec).is_err() {
        v.truncate(1);
    }
    v
}

impl Store {
    /// Opens (and for `ReadWrite`, creates) the store at `path` (LZ4 tables).
    pub fn open(path: &Path, access: Access) -> Result<Store, StoreError> {
        Store::open_with(path, access, crate::config::StoreCompression::Lz4)
    }

    /// [`Store::open`] with the table compression to write with.
    pub fn open_with(path: &Path, access: Access, compression: crate::config::StoreCompression) -> Result<Store, StoreError> {
        let mut opts = Options::default();
        let db = match access {
            Access::ReadWrite => {
                opts.create_if_missing(true);
                opts.create_missing_column_families(true);
                opts.set_compression_type(match compression {
                    crate::config::StoreCompression::Lz4 => rocksdb::DBCompressionType::Lz4,
                    crate::config::StoreCompression::Zstd => rocksdb::DBCompressionType::Zstd,
                    crate::config::StoreCompression::None => rocksdb::DBCompressionType::None,
                });
                opts.set_keep_log_file_num(4);
                let cfs = ALL_CFS.iter().map(|n| ColumnFamilyDescriptor::new(*n, opts.clone()));
                DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| open_error(path, &e, access))?
            }
            Access::ReadOnly => {
                if !path.join("CURRENT").exists() {
                    return Err(StoreError::Open {
                        path: path.to_path_buf(),
                        message: "no store found".into(),
                        hint: "the directory does not hold a store yet; run `apitap replay` or `apitap capture` with this --store first",
                    });
                }
                let existing = DB::list_cf(&opts, path).map_err(|e| open_error(path, &e, access))?;
                DB::open_cf_for_read_only(&opts, path, existing, false).map_err(|e| open_error(path, &e, access))?
            }
        };
        let store = Store { db, path: path.to_path_buf(), outbox_last: std::sync::atomic::AtomicU64::new(0) };
        store.check_schema(access)?;
        if let Some(cf) = store.db.cf_handle(CF_OUTBOX) {
            let last = store.db.iterator_cf(cf, IteratorMode::End).next();
            if let Some(Ok((k, _))) = last {
                let seq = <[u8; 8]>::try_from(k.as_ref()).map(u64::from_be_bytes).unwrap_or(0);
                store.outbox_last.store(seq, std::sync::atomic::Ordering::SeqCst);
            }
        }
        Ok(store)
    }

    fn io(&self, e: rocksdb::Error) -> StoreError {
        StoreError::Io { path: self.path.clone(), message: e.to_string() }
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or_else(|| StoreError::Io {
            path: self.path.clone(),
            message: format!("column family {name} is missing; the store is damaged or not an apitap store"),
        })
    }

    fn check_schema(&self, access: Access) -> Result<(), StoreError> {
        let meta = self.cf(CF_META)?;
        let found = match self.db.get_cf(meta, KEY_SCHEMA).map_err(|e| self.io(e))? {
            None => None,
            Some(v) => {
                let text = String::from_utf8_lossy(&v).into_owned();
                let n: u32 =
                    text.trim().parse().map_err(|_| StoreError::BadSchema { path: self.path.clone(), found: text.clone() })?;
                Some(n)
            }
        };
        match found {
            Some(n) if n > SCHEMA_VERSION => {
                Err(StoreError::NewerSchema { path: self.path.clone(), found: n, supported: SCHEMA_VERSION })
            }
            Some(n) if n < SCHEMA_VERSION && access == Access::ReadOnly => Err(StoreError::Open {
                path: self.path.clone(),
                message: format!("schema {n} is older than this build's {SCHEMA_VERSION}"),
                hint: "run `apitap replay` (or `capture`) once with this --store to migrate it",
            }),
            Some(1) => self.migrate_from_1(),
            None if access == Access::ReadWrite => {
                self.db.put_cf(meta, KEY_SCHEMA, SCHEMA_VERSION.to_string()).map_err(|e| self.io(e))
            }
            _ => Ok(()),
        }
    }

    /// Schema 1 stored raw paths: re-key every endpoint to its typed template.
    fn migrate_from_1(&self) -> Result<(), StoreError> {
        let records = self.endpoints()?;
        let cf = self.cf(CF_ENDPOINTS)?;
        let mut merged: std::collections::BTreeMap<Vec<u8>, EndpointRecord> = std::collections::BTreeMap::new();
        let mut batch = WriteBatch::default();
        for r in records {
            batch.delete_cf(cf, endpoint_key(&r.host, &r.method, &r.path));
            let mut r = r;
            r.path = crate::analyze::template::typed_template(&r.path);
            let k = endpoint_key(&r.host, &r.method, &r.path);
            match merged.get_mut(&k) {
                Some(e) => e.merge(&r),
                None => {
                    merged.insert(k, r);
                }
            }
        }
        for (k, r) in &merged {
            batch.put_cf(cf, k, encode(r));
        }
        batch.put_cf(self.cf(CF_META)?, KEY_SCHEMA, SCHEMA_VERSION.to_string());
        self.db.write(batch).map_err(|e| self.io(e))
    }

    /// The key of the keyed fingerprints, created (from the OS's random source)
    /// on first use and kept in the store.
    pub fn fingerprint_key(&self) -> Result<[u8; KEY_LEN], StoreError> {
        let meta = self.cf(CF_META)?;
        if let Some(v) = self.db.get_cf(meta, KEY_FINGERPRINT).map_err(|e| self.io(e))? {
            if let Ok(k) = <[u8; KEY_LEN]>::try_from(v.as_slice()) {
                return Ok(k);
            }
        }
        let mut key = [0u8; KEY_LEN];
        let mut f = std::fs::File::open("/dev/urandom")
            .map_err(|e| StoreError::Io { path: self.path.clone(), message: format!("cannot read /dev/urandom for the fingerprint key: {e}") })?;
        std::io::Read::read_exact(&mut f, &mut key)
            .map_err(|e| StoreError::Io { path: self.path.clone(), message: format!("cannot read /dev/urandom: {e}") })?;
        self.db.put_cf(meta, KEY_FINGERPRINT, key).map_err(|e| self.io(e))?;
        Ok(key)
    }

    /// Learned template rules.
    pub fn rules(&self) -> Result<Vec<Rule>, StoreError> {
        let Some(cf) = self.db.cf_handle(CF_TEMPLATES) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.io(e))?;
            let key = String::from_utf8_lossy(&k);
            if let Some((host, parent)) = key.split_once('\0') {
                out.push(Rule { host: host.to_string(), parent: parent.to_string(), param: String::from_utf8_lossy(&v).into_owned() });
            }
        }
        Ok(out)
    }

    /// Saves rules and re-keys the stored endpoints of their hosts with
    /// `template` (which applies every rule), merging records that now share
    /// a template — all in one atomic batch.
    pub fn apply_rules(&self, rules: &[Rule], template: impl Fn(&str, &str) -> String) -> Result<u64, StoreError> {
        if rules.is_empty() {
            return Ok(0);
        }
        let tcf = self.cf(CF_TEMPLATES)?;
        let ecf = self.cf(CF_ENDPOINTS)?;
        let mut batch = WriteBatch::default();
        for r in rules {
            let mut k = r.host.as_bytes().to_vec();
            k.push(0);
            k.extend_from_slice(r.parent.as_bytes());
            batch.put_cf(tcf, k, r.param.as_bytes());
        }
        let hosts: std::collections::BTreeSet<&str> = rules.iter().map(|r| r.host.as_str()).collect();
        let mut moved = 0u64;
        for host in &hosts {
            let mut prefix = host.as_bytes().to_vec();
            prefix.push(0);
            let mut changed: std::collections::BTreeMap<Vec<u8>, EndpointRecord> = std::collections::BTreeMap::new();
            let mut untouched: std::collections::BTreeMap<Vec<u8>, EndpointRecord> = std::collections::BTreeMap::new();
            let iter = self.db.iterator_cf(ecf, IteratorMode::From(&prefix, rocksdb::Direction::Forward));
            for item in iter {
                let (k, v) = item.map_err(|e| self.io(e))?;
                if !k.starts_with(&prefix) {
                    break;
                }
                let rec = self.decode(&k, &v)?;
                let t = template(&rec.host, &rec.path);
                if t == rec.path {
                    untouched.insert(k.to_vec(), rec);
                    continue;
                }
                moved += 1;
                batch.delete_cf(ecf, &k);
                let mut rec = rec;
                rec.path = t;
                let nk = endpoint_key(&rec.host, &rec.method, &rec.path);
                match changed.get_mut(&nk) {
                    Some(e) => e.merge(&rec),
                    None => {
                        changed.insert(nk, rec);
                    }
                }
            }
            for (k, mut rec) in changed {
                if let Some(existing) = untouched.get(&k) {
                    rec.merge(existing);
                }
                batch.put_cf(ecf, k, encode(&rec));
            }
        }
        // findings follow their endpoints to the new templates
        let fcf = self.cf(CF_FINDINGS)?;
        let all = self.findings()?;
        let mut by_uid: std::collections::BTreeMap<String, Finding> = all.iter().map(|f| (f.uid.clone(), f.clone())).collect();
        for f in &all {
            if !hosts.contains(f.host.as_str()) || f.method == "*" {
                continue;
            }
            let t = template(&f.host, &f.path);
            if t == f.path {
                continue;
            }
            by_uid.remove(&f.uid);
            batch.delete_cf(fcf, f.uid.as_bytes());
            let mut moved_f = f.clone();
            moved_f.path = t;
            moved_f.uid = finding_uid(f.kind, &f.host, &f.method, &moved_f.path, f.actor);
            match by_uid.get_mut(&moved_f.uid) {
                Some(e) => e.merge(&moved_f),
                None => {
                    by_uid.insert(moved_f.uid.clone(), moved_f.clone());
                }
            }
            if let Some(e) = by_uid.get(&moved_f.uid) {
                batch.put_cf(fcf, e.uid.as_bytes(), encode_json(e));
            }
        }
        self.db.write(batch).map_err(|e| self.io(e))?;
        Ok(moved)
    }

    /// The schema version recorded in the store.
    pub fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        let meta = self.cf(CF_META)?;
        Ok(self
            .db
            .get_cf(meta, KEY_SCHEMA)
            .map_err(|e| self.io(e))?
            .and_then(|v| String::from_utf8_lossy(&v).trim().parse().ok()))
    }

    /// Writes a raw meta value (used by tests and later schema migrations).
    pub fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let meta = self.cf(CF_META)?;
        self.db.put_cf(meta, key, value).map_err(|e| self.io(e))
    }

    /// Adds endpoint changes to what is stored, in one atomic batch.
    pub fn merge_endpoints(&self, changes: &[EndpointRecord]) -> Result<(), StoreError> {
        self.merge_endpoints_tracked(changes).map(|_| ())
    }

    /// [`Store::merge_endpoints`], returning for each change the record as
    /// stored now and the record as it was (`None`: a new endpoint).
    pub fn merge_endpoints_tracked(&self, changes: &[EndpointRecord]) -> Result<Vec<(EndpointRecord, Option<EndpointRecord>)>, StoreError> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(changes.len());
        let cf = self.cf(CF_ENDPOINTS)?;
        let keys: Vec<Vec<u8>> = changes.iter().map(|r| endpoint_key(&r.host, &r.method, &r.path)).collect();
        let existing = self.db.multi_get_cf(keys.iter().map(|k| (cf, k.as_slice())));
        let mut batch = WriteBatch::default();
        for ((rec, key), old) in changes.iter().zip(&keys).zip(existing) {
            let mut merged = rec.clone();
            let before = match old.map_err(|e| self.io(e))? {
                Some(bytes) => {
                    let stored = self.decode(key, &bytes)?;
                    merged.merge(&stored);
                    Some(stored)
                }
                None => None,
            };
            batch.put_cf(cf, key, encode(&merged));
            out.push((merged, before));
        }
        self.db.write(batch).map_err(|e| self.io(e))?;
        Ok(out)
    }

    fn decode(&self, key: &[u8], bytes: &[u8]) -> Result<EndpointRecord, StoreError> {
        self.decode_json(key, bytes)
    }

    /// Every endpoint record, in key order.
    pub fn endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError> {
        let cf = self.cf(CF_ENDPOINTS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.io(e))?;
            out.push(self.decode(&k, &v)?);
        }
        Ok(out)
    }

    /// Flushes memtables to disk (the write-ahead log already makes writes durable).
    pub fn flush(&self) -> Result<(), StoreError> {
        for name in ALL_CFS {
            let cf = self.cf(name)?;
            self.db.flush_cf(cf).map_err(|e| self.io(e))?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Merges finding deltas by uid in one atomic write; returns, for each,
    /// the finding as stored now and as it was (`None`: new).
    pub fn merge_findings(&self, deltas: &[Finding]) -> Result<Vec<(Finding, Option<Finding>)>, StoreError> {
        if deltas.is_empty() {
            return Ok(Vec::new());
        }
        let cf = self.cf(CF_FINDINGS)?;
        let existing = self.db.multi_get_cf(deltas.iter().map(|f| (cf, f.uid.as_bytes())));
        let mut batch = WriteBatch::default();
        let mut out = Vec::with_capacity(deltas.len());
        for (d, old) in deltas.iter().zip(existing) {
            let before = match old.map_err(|e| self.io(e))? {
                Some(bytes) => Some(self.decode_json::<Finding>(d.uid.as_bytes(), &bytes)?),
                None => None,
            };
            let now = match &before {
                Some(b) => {
                    let mut m = b.clone();
                    m.merge(d);
                    m
                }
                None => d.clone(),
            };
            batch.put_cf(cf, now.uid.as_bytes(), encode_json(&now));
            out.push((now, before));
        }
        self.db.write(batch).map_err(|e| self.io(e))?;
        Ok(out)
    }

    /// Merges TLS service records (by server, port and SNI) in one atomic write.
    pub fn merge_tls(&self, changes: &[TlsServiceRecord]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let cf = self.cf(CF_TLS)?;
        let keys: Vec<String> = changes.iter().map(TlsServiceRecord::key).collect();
        let existing = self.db.multi_get_cf(keys.iter().map(|k| (cf, k.as_bytes())));
        let mut batch = WriteBatch::default();
        for ((rec, key), old) in changes.iter().zip(&keys).zip(existing) {
            let mut merged = rec.clone();
            if let Some(bytes) = old.map_err(|e| self.io(e))? {
                merged.merge(&self.decode_json::<TlsServiceRecord>(key.as_bytes(), &bytes)?);
            }
            batch.put_cf(cf, key.as_bytes(), encode_json(&merged));
        }
        self.db.write(batch).map_err(|e| self.io(e))
    }

    /// Every TLS service (a store made before the TLS inventory existed has none).
    pub fn tls_services(&self) -> Result<Vec<TlsServiceRecord>, StoreError> {
        let Some(cf) = self.db.cf_handle(CF_TLS) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.io(e))?;
            out.push(self.decode_json(&k, &v)?);
        }
        Ok(out)
    }

    fn decode_json<T: serde::de::DeserializeOwned>(&self, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
        let corrupt = |message: String| StoreError::Corrupt { path: self.path.clone(), key: String::from_utf8_lossy(key).replace('\0', " "), message };
        match bytes.split_first() {
            Some((&VALUE_FORMAT, json)) => serde_json::from_slice(json).map_err(|e| corrupt(e.to_string())),
            Some((f, _)) => Err(corrupt(format!("unknown value format {f}"))),
            None => Err(corrupt("empty value".into())),
        }
    }

    /// Every finding, by uid (a store made before findings existed has none).
    pub fn findings(&self) -> Result<Vec<Finding>, StoreError> {
        let Some(cf) = self.db.cf_handle(CF_FINDINGS) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item.map_err(|e| self.io(e))?;
            out.push(self.decode_json(&k, &v)?);
        }
        Ok(out)
    }

    /// Saves a baseline of the current inventory and resolves every open
    /// finding (the baseline accepts the current state; a finding that fires
    /// again reopens). Returns the number of findings resolved.
    pub fn save_baseline(&self, b: &Baseline) -> Result<u64, StoreError> {
        let mut batch = WriteBatch::default();
        let meta = self.cf(CF_META)?;
        batch.put_cf(meta, format!("{KEY_BASELINE_PREFIX}{}", b.name), encode_json(b));
        let fcf = self.cf(CF_FINDINGS)?;
        let mut resolved = 0;
        for mut f in self.findings()? {
            if f.state == State::Open {
                f.state = State::Resolved;
                f.resolved_ms = Some(b.saved_ms);
                batch.put_cf(fcf, f.uid.as_bytes(), encode_json(&f));
                resolved += 1;
            }
        }
        self.db.write(batch).map_err(|e| self.io(e))?;
        Ok(resolved)
    }

    /// The baseline saved under `name`.
    pub fn baseline(&self, name: &str) -> Result<Option<Baseline>, StoreError> {
        let meta = self.cf(CF_META)?;
        let key = format!("{KEY_BASELINE_PREFIX}{name}");
        match self.db.get_cf(meta, key.as_bytes()).map_err(|e| self.io(e))? {
            None => Ok(None),
            Some(bytes) => match bytes.split_first() {
                Some((&VALUE_FORMAT, json)) => serde_json::from_slice(json)
                    .map(Some)
                    .map_err(|e| StoreError::Corrupt { path: self.path.clone(), key, message: e.to_string() }),
                _ => Err(StoreError::Corrupt { path: self.path.clone(), key, message: "unknown value format".into() }),
            },
        }
    }

    /// Names of the saved baselines.
    pub fn baseline_names(&self) -> Result<Vec<String>, StoreError> {
        let meta = self.cf(CF_META)?;
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(meta, IteratorMode::From(KEY_BASELINE_PREFIX.as_bytes(), rocksdb::Direction::Forward));
        for item in iter {
            let (k, _) = item.map_err(|e| self.io(e))?;
            match k.strip_prefix(KEY_BASELINE_PREFIX.as_bytes()) {
                Some(name) => out.push(String::from_utf8_lossy(name).into_owned()),
                None => break,
            }
        }
        Ok(out)
    }

    /// Appends event lines (each ending in '\n') to the outbox in one atomic
    /// write; returns the last sequence number given out.
    pub fn outbox_append(&self, lines: &[u8]) -> Result<u64, StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        let cf = self.cf(CF_OUTBOX)?;
        let mut batch = WriteBatch::default();
        let mut seq = self.outbox_last.load(SeqCst);
        for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            seq += 1;
            batch.put_cf(cf, seq.to_be_bytes(), line);
        }
        self.db.write(batch).map_err(|e| self.io(e))?;
        self.outbox_last.store(seq, SeqCst);
        Ok(seq)
    }

    /// Last outbox sequence number written (0 = none).
    pub fn outbox_last(&self) -> u64 {
        self.outbox_last.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Up to `max` outbox entries after sequence number `after`, in order.
    pub fn outbox_read(&self, after: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        // a store written before the outbox existed, opened read-only: empty
        let Some(cf) = self.db.cf_handle(CF_OUTBOX) else { return Ok(Vec::new()) };
        let start = after.saturating_add(1).to_be_bytes();
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::From(&start, rocksdb::Direction::Forward)).take(max) {
            let (k, v) = item.map_err(|e| self.io(e))?;
            let seq = <[u8; 8]>::try_from(k.as_ref()).map(u64::from_be_bytes).map_err(|_| StoreError::Corrupt {
                path: self.path.clone(),
                key: format!("{k:?}"),
                message: "outbox key is not 8 bytes".into(),
            })?;
            out.push((seq, v.into_vec()));
        }
        Ok(out)
    }

    /// The last sequence number `sink` delivered (0 = none).
    pub fn outbox_cursor(&self, sink: &str) -> Result<u64, StoreError> {
        let meta = self.cf(CF_META)?;
        let v = self.db.get_cf(meta, format!("{KEY_CURSOR_PREFIX}{sink}")).map_err(|e| self.io(e))?;
        Ok(v.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map(u64::from_be_bytes).unwrap_or(0))
    }

    /// Records that `sink` delivered everything up to `seq`.
    pub fn set_outbox_cursor(&self, sink: &str, seq: u64) -> Result<(), StoreError> {
        let meta = self.cf(CF_META)?;
        self.db.put_cf(meta, format!("{KEY_CURSOR_PREFIX}{sink}"), seq.to_be_bytes()).map_err(|e| self.io(e))
    }

    /// Deletes outbox entries up to and including `seq` (every sink has them).
    pub fn outbox_trim(&self, seq: u64) -> Result<(), StoreError> {
        let cf = self.cf(CF_OUTBOX)?;
        self.db.delete_range_cf(cf, 0u64.to_be_bytes(), seq.saturating_add(1).to_be_bytes()).map_err(|e| self.io(e))
    }
}

/// Rewrites the schema version to this build's (test support for the
/// newer-schema refusal: it bypasses the version check on purpose).
#[doc(hidden)]
pub fn reset_schema_for_tests(path: &Path) -> Result<(), StoreError> {
    let opts = Options::default();
    let db = DB::open_cf(&opts, path, ALL_CFS).map_err(|e| open_error(path, &e, Access::ReadWrite))?;
    let meta = db.cf_handle(CF_META).ok_or_else(|| StoreError::Io { path: path.to_path_buf(), message: "no meta".into() })?;
    db.put_cf(meta, KEY_SCHEMA, SCHEMA_VERSION.to_string())
        .map_err(|e| StoreError::Io { path: path.to_path_buf(), message: e.to_string() })
}
