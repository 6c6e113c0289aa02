//! Baselines (approved snapshots of the inventory), drift against them,
//! the per-endpoint risk score and the posture KPIs of `apitap report`.
//!
//! # Risk score (0–100)
//! The sum of four parts, capped at 100:
//! - exposure: external clients 25, partner clients 15, internal only 5;
//! - data sensitivity (request or response): card, SSN, IBAN, secret or
//!   password 30; date of birth, address, phone or e-mail 20; IP address,
//!   JWT or API key 10; none 0;
//! - authentication strength of successful requests: any success without
//!   credentials 25; only Basic, API key in the query or unverified others
//!   15; bearer tokens, JWTs, API-key headers or session cookies 5;
//! - open findings: the worst one's severity — critical 20, high 15,
//!   medium 8, low 3.
//!
//! Risk level: high ≥ 70, medium ≥ 40, else low.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::findings::{Finding, Severity};
use super::spec::{Spec, Verdict};
use super::EndpointRecord;

/// What a baseline remembers of one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BaselineEndpoint {
    pub host: String,
    pub method: String,
    pub path: String,
    /// Schemes seen on successful requests (`none` = without credentials).
    pub auth: BTreeSet<String>,
    /// Sensitive kinds in requests or responses.
    pub sensitive: BTreeSet<String>,
    pub client_classes: BTreeSet<String>,
}

impl BaselineEndpoint {
    pub fn of(r: &EndpointRecord) -> BaselineEndpoint {
        BaselineEndpoint {
            host: r.host.clone(),
            method: r.method.clone(),
            path: r.path.clone(),
            auth: r.auth.schemes_success.keys().cloned().collect(),
            sensitive: r.request_sensitive.keys().chain(r.response_sensitive.keys()).cloned().collect(),
            client_classes: r.exposure.keys().cloned().collect(),
        }
    }
}

/// An approved snapshot of the inventory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Baseline {
    pub name: String,
    /// Wall-clock time (ms) it was saved.
    pub saved_ms: u64,
    pub endpoints: BTreeMap<String, BaselineEndpoint>,
}

fn key(host: &str, method: &str, path: &str) -> String {
    format!("{method} {host}{path}")
}

impl Baseline {
    pub fn snapshot(name: &str, saved_ms: u64, records: &[EndpointRecord]) -> Baseline {
        let endpoints = records.iter().map(|r| (key(&r.host, &r.method, &r.path), BaselineEndpoint::of(r))).collect();
        Baseline { name: name.to_string(), saved_ms, endpoints }
    }

    pub fn endpoint(&self, host: &str, method: &str, path: &str) -> Option<&BaselineEndpoint> {
        self.endpoints.get(&key(host, method, path))
    }
}

/// One difference between the inventory and a baseline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// `new_endpoint`, `removed_endpoint`, `auth_change`, `new_sensitive_data`, `new_client_class`.
    pub change: &'static str,
    pub host: String,
    pub method: String,
    pub path: String,
    /// What is new (a scheme, a kind, a class) or empty.
    pub detail: String,
    /// The endpoint's first request (µs packet time; 0 for removed endpoints).
    pub first_seen_us: u64,
}

/// Whether the endpoint ever answered with something other than 404/410.
pub fn answered(r: &EndpointRecord) -> bool {
    r.statuses.keys().any(|s| *s != 404 && *s != 410)
}

/// Differences between the current inventory and `b` (endpoints that never
/// answered other than 404/410 are left out).
pub fn drift(b: &Baseline, records: &[EndpointRecord]) -> Vec<Drift> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for r in records {
        let k = key(&r.host, &r.method, &r.path);
        seen.insert(k.clone());
        if !answered(r) {
            continue; // only ever 404/410 or no answer: nothing exists there
        }
        let d = |change: &'static str, detail: String| Drift {
            change,
            host: r.host.clone(),
            method: r.method.clone(),
            path: r.path.clone(),
            detail,
            first_seen_us: r.first_seen_us,
        };
        let now = BaselineEndpoint::of(r);
        match b.endpoints.get(&k) {
            None => out.push(d("new_endpoint", String::new())),
            Some(old) => {
                out.extend(now.auth.difference(&old.auth).map(|s| d("auth_change", s.clone())));
                out.extend(now.sensitive.difference(&old.sensitive).map(|s| d("new_sensitive_data", s.clone())));
                out.extend(now.client_classes.difference(&old.client_classes).map(|s| d("new_client_class", s.clone())));
            }
        }
    }
    for (k, e) in &b.endpoints {
        if !seen.contains(k) {
            out.push(Drift {
                change: "removed_endpoint",
                host: e.host.clone(),
                method: e.method.clone(),
                path: e.path.clone(),
                detail: String::new(),
                first_seen_us: 0,
            });
        }
    }
    out
}

fn kind_weight(k: &str) -> u32 {
    match k {
        "credit_card" | "ssn" | "iban" | "secret" | "password" => 30,
        "date_of_birth" | "address" | "phone" | "email" => 20,
        "ip_address" | "jwt" | "api_key" => 10,
        _ => 0,
    }
}

fn severity_weight(s: Severity) -> u32 {
    match s {
        Severity::Critical => 20,
        Severity::High => 15,
        Severity::Medium => 8,
        Severity::Low => 3,
        Severity::Informational => 0,
    }
}

/// Whether successful requests to the endpoint needed no credentials.
pub fn unauthenticated(r: &EndpointRecord) -> bool {
    r.auth.schemes_success.contains_key("none")
}

/// The documented risk score of one endpoint given its open findings.
pub fn risk_score(r: &EndpointRecord, open: &[&Finding]) -> u32 {
    let exposure = if r.exposure.contains_key("external") {
        25
    } else if r.exposure.contains_key("partner") {
        15
    } else {
        5
    };
    let data = r.request_sensitive.keys().chain(r.response_sensitive.keys()).map(|k| kind_weight(k)).max().unwrap_or(0);
    let weak = ["basic", "api_key_query"];
    let auth = if r.auth.schemes_success.is_empty() {
        0
    } else if unauthenticated(r) {
        25
    } else if r.auth.schemes_success.keys().all(|s| weak.contains(&s.as_str()) || s.starts_with("other")) {
        15
    } else {
        5
    };
    let findings = open.iter().map(|f| severity_weight(f.severity)).max().unwrap_or(0);
    (exposure + data + auth + findings).min(100)
}

pub fn risk_level(score: u32) -> &'static str {
    if score >= 70 {
        "high"
    } else if score >= 40 {
        "medium"
    } else {
        "low"
    }
}

/// One endpoint's line in the report.
#[derive(Clone, Debug, Serialize)]
pub struct EndpointRisk {
    pub host: String,
    pub method: String,
    pub path: String,
    pub risk_score: u32,
    pub risk_level: &'static str,
    pub open_findings: Vec<String>,
    /// Documented, deprecated, undocumented or out_of_scope (no spec given: absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documented: Option<&'static str>,
}

/// A documented operation no traffic has reached.
#[derive(Clone, Debug, Serialize)]
pub struct Orphan {
    pub hosts: Vec<String>,
    pub method: String,
    pub path: String,
    pub deprecated: bool,
    pub operation_id: Option<String>,
}

/// The posture KPIs.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub endpoints_inventoried: usize,
    pub share_with_business_tags: f64,
    /// Endpoints a spec documents / endpoints in the specs' scope (absent without specs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_documented: Option<f64>,
    pub high_risk_endpoints_with_open_findings: usize,
    /// High-risk (or `tier`/`criticality` tagged critical) endpoints answering without credentials.
    pub critical_endpoints_without_auth: usize,
    pub endpoints_exposing_sensitive_data: usize,
    pub open_findings: usize,
    pub open_findings_by_kind: BTreeMap<String, usize>,
    pub resolved_findings: usize,
    /// Mean packet time from a drift's first occurrence to its detection (ms; absent without drift findings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_time_to_drift_detection_ms: Option<f64>,
    pub drift_findings: usize,
    pub orphan_operations: Vec<Orphan>,
    pub endpoints: Vec<EndpointRisk>,
}

fn tagged_critical(r: &EndpointRecord) -> bool {
    r.tags.iter().any(|(k, v)| (k == "tier" || k == "criticality") && v.eq_ignore_ascii_case("critical"))
}

/// Builds the report from the stored inventory, findings and (optional) specs.
pub fn report(records: &[EndpointRecord], findings: &[Finding], spec: &Spec) -> Report {
    let mut open_by_ep: BTreeMap<(String, String, String), Vec<&Finding>> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for f in findings.iter().filter(|f| f.is_open()) {
        open_by_ep.entry((f.host.clone(), f.method.clone(), f.path.clone())).or_default().push(f);
        *by_kind.entry(f.kind.as_str().to_string()).or_default() += 1;
    }
    let empty = Vec::new();
    let mut endpoints = Vec::new();
    let (mut high_open, mut crit_noauth, mut exposing, mut tagged, mut documented, mut in_scope) = (0, 0, 0, 0, 0usize, 0usize);
    for r in records {
        let open = open_by_ep.get(&(r.host.clone(), r.method.clone(), r.path.clone())).unwrap_or(&empty);
        let score = risk_score(r, open);
        let level = risk_level(score);
        if level == "high" && !open.is_empty() {
            high_open += 1;
        }
        if (level == "high" || tagged_critical(r)) && unauthenticated(r) {
            crit_noauth += 1;
        }
        if !r.response_sensitive.is_empty() {
            exposing += 1;
        }
        if !r.tags.is_empty() {
            tagged += 1;
        }
        let doc = if spec.is_empty() {
            None
        } else {
            Some(match spec.verdict(&r.host, &r.method, &r.path) {
                Verdict::Documented(_) => {
                    documented += 1;
                    in_scope += 1;
                    "documented"
                }
                Verdict::Deprecated(_) => {
                    documented += 1;
                    in_scope += 1;
                    "deprecated"
                }
                Verdict::Undocumented => {
                    in_scope += 1;
                    "undocumented"
                }
                Verdict::OutOfScope => "out_of_scope",
            })
        };
        let mut names: Vec<String> = open.iter().map(|f| f.kind.as_str().to_string()).collect();
        names.sort();
        names.dedup();
        endpoints.push(EndpointRisk {
            host: r.host.clone(),
            method: r.method.clone(),
            path: r.path.clone(),
            risk_score: score,
            risk_level: level,
            open_findings: names,
            documented: doc,
        });
    }
    endpoints.sort_by(|a, b| b.risk_score.cmp(&a.risk_score).then_with(|| (&a.host, &a.path, &a.method).cmp(&(&b.host, &b.path, &b.method))));
    let orphan_operations = spec
        .operations
        .iter()
        .filter(|op| {
            !records.iter().any(|r| {
                r.method == op.method
                    && (op.hosts.is_empty() || op.hosts.contains(&r.host))
                    && super::spec::path_matches(&op.path, &r.path)
                    && r.statuses.keys().any(|s| *s != 404)
            })
        })
        .map(|op| Orphan { hosts: op.hosts.clone(), method: op.method.clone(), path: op.path.clone(), deprecated: op.deprecated, operation_id: op.operation_id.clone() })
        .collect();
    let drift: Vec<&Finding> = findings.iter().filter(|f| f.kind.is_drift()).collect();
    let mean = if drift.is_empty() {
        None
    } else {
        Some(drift.iter().map(|f| f.detected_us.saturating_sub(f.first_seen_us) as f64 / 1000.0).sum::<f64>() / drift.len() as f64)
    };
    let n = records.len();
    let share = |k: usize, of: usize| if of == 0 { 0.0 } else { (k as f64 / of as f64 * 10_000.0).round() / 10_000.0 };
    Report {
        endpoints_inventoried: n,
        share_with_business_tags: share(tagged, n),
        share_documented: (!spec.is_empty()).then(|| share(documented, in_scope)),
        high_risk_endpoints_with_open_findings: high_open,
        critical_endpoints_without_auth: crit_noauth,
        endpoints_exposing_sensitive_data: exposing,
        open_findings: findings.iter().filter(|f| f.is_open()).count(),
        open_findings_by_kind: by_kind,
        resolved_findings: findings.iter().filter(|f| !f.is_open()).count(),
        mean_time_to_drift_detection_ms: mean,
        drift_findings: drift.len(),
        orphan_operations,
        endpoints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::EndpointKey;

    fn rec(path: &str, ok_scheme: &str, resp_kind: Option<&str>, class: &str) -> EndpointRecord {
        let mut r = EndpointRecord::new(&EndpointKey { host: "api.shop.test".into(), method: "GET".into(), path: path.into() });
        r.requests = 1;
        r.statuses.insert(200, 1);
        r.auth.schemes_success.insert(ok_scheme.into(), 1);
        if let Some(k) = resp_kind {
            r.response_sensitive.insert(k.into(), 1);
        }
        r.exposure.insert(class.into(), 1);
        r
    }

    #[test]
    fn drift_lists_new_removed_and_changed_endpoints() {
        let old = vec![rec("/a", "bearer_jwt", None, "internal"), rec("/gone", "none", None, "internal")];
        let b = Baseline::snapshot("approved", 1, &old);
        let now = vec![rec("/a", "none", Some("email"), "external"), rec("/new", "none", None, "internal")];
        let mut got: Vec<(&str, String, String)> = drift(&b, &now).into_iter().map(|d| (d.change, d.path, d.detail)).collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("auth_change", "/a".into(), "none".into()),
                ("new_client_class", "/a".into(), "external".into()),
                ("new_endpoint", "/new".into(), String::new()),
                ("new_sensitive_data", "/a".into(), "email".into()),
                ("removed_endpoint", "/gone".into(), String::new()),
            ]
        );
    }

    #[test]
    fn risk_score_follows_the_documented_parts() {
        // external 25 + card 30 + no auth 25 + critical finding 20 = 100
        let r = rec("/x", "none", Some("credit_card"), "external");
        let f = Finding { severity: Severity::Critical, ..Finding::default() };
        assert_eq!(risk_score(&r, &[&f]), 100);
        // internal 5 + e-mail 20 + bearer 5 = 30
        assert_eq!(risk_score(&rec("/y", "bearer_jwt", Some("email"), "internal"), &[]), 30);
        // partner 15 + nothing + basic 15 = 30
        assert_eq!(risk_score(&rec("/z", "basic", None, "partner"), &[]), 30);
        assert_eq!((risk_level(70), risk_level(69), risk_level(39)), ("high", "medium", "low"));
    }
}
