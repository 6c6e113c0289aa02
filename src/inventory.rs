//! Merging observations into endpoint records.
//!
//! Records are commutative aggregates (counts, min/max times, sets), so the
//! inventory is the same whatever order workers deliver observations in.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::analyze::{EndpointKey, Observation};

/// One API endpoint as stored and dumped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub host: String,
    pub method: String,
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
}

impl EndpointRecord {
    /// An empty record for `key`.
    pub fn new(key: &EndpointKey) -> EndpointRecord {
        EndpointRecord {
            host: key.host.clone(),
            method: key.method.clone(),
            path: key.path.clone(),
            first_seen_us: u64::MAX,
            ..EndpointRecord::default()
        }
    }

    /// The key of this record.
    pub fn key(&self) -> EndpointKey {
        EndpointKey { host: self.host.clone(), method: self.method.clone(), path: self.path.clone() }
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
    }
}

/// Counters of the inventory.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InventoryStats {
    pub observations: u64,
    pub endpoints_new_in_run: u64,
}

/// Endpoint changes not yet written to the store.
#[derive(Default)]
pub struct Inventory {
    dirty: HashMap<EndpointKey, EndpointRecord>,
    known: std::collections::HashSet<EndpointKey>,
    stats: InventoryStats,
}

impl Inventory {
    pub fn new() -> Inventory {
        Inventory::default()
    }

    /// Adds one observation.
    pub fn observe(&mut self, o: &Observation) {
        self.stats.observations += 1;
        if let Some(rec) = self.dirty.get_mut(&o.key) {
            rec.observe(o);
            return;
        }
        let mut rec = EndpointRecord::new(&o.key);
        rec.observe(o);
        if self.known.insert(o.key.clone()) {
            self.stats.endpoints_new_in_run += 1;
        }
        self.dirty.insert(o.key.clone(), rec);
    }

    /// Number of endpoint records waiting to be written.
    pub fn dirty_len(&self) -> usize {
        self.dirty.len()
    }

    /// Takes the changes made since the last call, sorted by key.
    pub fn take_dirty(&mut self) -> Vec<EndpointRecord> {
        let mut v: Vec<EndpointRecord> = self.dirty.drain().map(|(_, r)| r).collect();
        v.sort_by(|a, b| (&a.host, &a.path, &a.method).cmp(&(&b.host, &b.path, &b.method)));
        v
    }

    pub fn stats(&self) -> &InventoryStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(path: &str, status: Option<u16>, ts: u64) -> Observation {
        Observation {
            key: EndpointKey { host: "h".into(), method: "GET".into(), path: path.into() },
            status,
            ts_us: ts,
            protocol: "http/1.1",
            client: "10.0.0.1".parse().unwrap(),
        }
    }

    #[test]
    fn merge_is_order_independent() {
        let all = [obs("/a", Some(200), 5), obs("/a", Some(404), 3), obs("/a", None, 9), obs("/b", Some(200), 1)];
        let mut fwd = Inventory::new();
        all.iter().for_each(|o| fwd.observe(o));
        let mut rev = Inventory::new();
        all.iter().rev().for_each(|o| rev.observe(o));
        let f = fwd.take_dirty();
        assert_eq!(f, rev.take_dirty());
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].requests, 3);
        assert_eq!(f[0].statuses.get(&404), Some(&1));
        assert_eq!(f[0].no_response, 1);
        assert_eq!((f[0].first_seen_us, f[0].last_seen_us), (3, 9));
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
