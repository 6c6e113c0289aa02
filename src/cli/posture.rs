//! `apitap findings`, `baseline`, `drift` and `report`, and the inputs of
//! `replay`/`capture` they need (specifications, the drift baseline).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};

use super::{load_config, rfc3339};
use crate::config::Config;
use crate::inventory::baseline::{self, Baseline};
use crate::inventory::findings::{Finding, Kind};
use crate::inventory::spec::Spec;
use crate::store::{Access, Store};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum TableOrJson {
    Table,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ReportFormat {
    Table,
    Json,
    Markdown,
}

/// `--config` and `--store`, as every store-reading command takes them.
#[derive(clap::Args, Debug)]
pub struct StoreArgs {
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store directory (overrides store.path).
    #[arg(long, value_name = "DIR")]
    pub store: Option<PathBuf>,
}

impl StoreArgs {
    fn config(&self) -> Result<Config> {
        let mut cfg = load_config(self.config.as_deref())?;
        if let Some(s) = &self.store {
            cfg.store.path = s.clone();
        }
        Ok(cfg)
    }
}

#[derive(Parser, Debug)]
pub struct FindingsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableOrJson,
    /// Only findings of this kind (e.g. bola_enumeration, shadow_api).
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Resolved findings too.
    #[arg(long)]
    pub all: bool,
}

#[derive(Subcommand, Debug)]
pub enum BaselineCommand {
    /// Snapshot the inventory as an approved baseline and resolve the open
    /// findings (they reopen if they fire again).
    Save {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The saved baselines.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Parser, Debug)]
pub struct DriftArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The saved baseline to compare with.
    #[arg(long, value_name = "NAME")]
    pub baseline: String,
    #[arg(long, value_enum, default_value = "table")]
    pub format: TableOrJson,
}

#[derive(Parser, Debug)]
pub struct ReportArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// OpenAPI documents (added to findings.specs): documented share and orphan operations.
    #[arg(long, value_name = "FILE")]
    pub spec: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

/// Reads every configured specification.
pub fn load_specs(cfg: &Config) -> Result<Spec> {
    let mut spec = Spec::default();
    for p in &cfg.findings.specs {
        let text = std::fs::read_to_string(p).with_context(|| format!("cannot read API specification {}; check --spec / findings.specs", p.display()))?;
        let n = spec.add_document(&p.display().to_string(), &text)?;
        if n == 0 {
            eprintln!("apitap: note: {} documents no operation", p.display());
        }
    }
    Ok(spec)
}

/// The specifications and the drift baseline a run needs.
pub fn run_inputs(cfg: &Config, store: &Store) -> Result<(Spec, Option<Baseline>)> {
    let spec = load_specs(cfg)?;
    let baseline = if cfg.findings.baseline.is_empty() {
        None
    } else {
        match store.baseline(&cfg.findings.baseline)? {
            Some(b) => Some(b),
            None => bail!(
                "no baseline named {:?} in {}; save one with `apitap baseline save {}` (saved: {})",
                cfg.findings.baseline,
                cfg.store.path.display(),
                cfg.findings.baseline,
                store.baseline_names()?.join(", ")
            ),
        }
    };
    Ok((spec, baseline))
}

fn us_text(us: u64) -> String {
    rfc3339(us).get(..19).unwrap_or_default().replace('T', " ")
}

/// The JSON form of a finding: the fields of its OCSF event, flat.
pub fn finding_json(f: &Finding) -> Value {
    json!({
        "uid": f.uid,
        "kind": f.kind.as_str(),
        "title": f.kind.title(),
        "class": if f.kind.is_attack() { "detection_finding" } else { "application_security_posture_finding" },
        "severity": f.severity.name(),
        "severity_id": f.severity.id(),
        "state": f.state,
        "host": f.host,
        "method": f.method,
        "path": f.path,
        "actor_ip": f.actor.map(|a| a.to_string()),
        "clients": f.clients.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "first_seen": rfc3339(f.first_seen_us),
        "last_seen": rfc3339(f.last_seen_us),
        "detected": rfc3339(f.detected_us),
        "first_seen_us": f.first_seen_us,
        "last_seen_us": f.last_seen_us,
        "detected_us": f.detected_us,
        "count": f.count,
        "evidence": f.evidence,
        "reopened": f.reopened,
    })
}

/// Prints rows under a header, columns padded (cells cut at 60 characters).
fn table(out: &mut impl Write, head: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.chars().count()).min(60);
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let width = w.get(i).copied().unwrap_or(0);
                let c: String = c.chars().take(width).collect();
                format!("{c:width$}")
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(head.iter().map(|s| s.to_string()).collect()))?;
    for r in rows {
        writeln!(out, "{}", line(r.clone()))?;
    }
    Ok(())
}

pub fn findings(a: FindingsArgs) -> Result<i32> {
    let cfg = a.store.config()?;
    let kind = match &a.kind {
        Some(k) => match Kind::parse(k) {
            Some(k) => Some(k),
            None => bail!("unknown finding kind {k:?}; kinds: {}", Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")),
        },
        None => None,
    };
    let store = Store::open(&cfg.store.path, Access::ReadOnly)?;
    let mut list: Vec<Finding> = store.findings()?.into_iter().filter(|f| (a.all || f.is_open()) && kind.is_none_or(|k| f.kind == k)).collect();
    list.sort_by(|x, y| y.severity.cmp(&x.severity).then(x.detected_us.cmp(&y.detected_us)).then(x.uid.cmp(&y.uid)));
    let mut out = std::io::stdout().lock();
    match a.format {
        TableOrJson::Json => {
            serde_json::to_writer_pretty(&mut out, &list.iter().map(finding_json).collect::<Vec<_>>())?;
            writeln!(out)?;
        }
        TableOrJson::Table => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|f| {
                    let ev = f.evidence.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
                    vec![
                        f.severity.name().to_string(),
                        f.kind.as_str().to_string(),
                        format!("{} {}{}", f.method, f.host, f.path),
                        f.actor.map(|a| a.to_string()).unwrap_or_else(|| format!("{} client(s)", f.clients.len())),
                        f.count.to_string(),
                        us_text(f.detected_us),
                        format!("{:?}", f.state).to_lowercase(),
                        ev,
                    ]
                })
                .collect();
            table(&mut out, &["SEVERITY", "KIND", "ENDPOINT", "ACTOR", "COUNT", "DETECTED (UTC)", "STATE", "EVIDENCE"], &rows)?;
        }
    }
    Ok(0)
}

pub fn baseline(c: BaselineCommand) -> Result<i32> {
    match c {
        BaselineCommand::Save { name, store } => {
            if name.is_empty() || name.contains(char::is_whitespace) {
                bail!("baseline name {name:?} must be a non-empty word, e.g. 2026-q4-approved");
            }
            let cfg = store.config()?;
            let st = Store::open_with(&cfg.store.path, Access::ReadWrite, cfg.store.compression)?;
            let records = st.endpoints()?;
            let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
            let b = Baseline::snapshot(&name, now_ms, &records);
            let resolved = st.save_baseline(&b)?;
            st.flush()?;
            eprintln!("apitap: baseline {name:?} saved: {} endpoints; {resolved} open finding(s) resolved", b.endpoints.len());
            Ok(0)
        }
        BaselineCommand::List { store } => {
            let cfg = store.config()?;
            let st = Store::open(&cfg.store.path, Access::ReadOnly)?;
            let mut out = std::io::stdout().lock();
            for n in st.baseline_names()? {
                let b = st.baseline(&n)?.unwrap_or_default();
                writeln!(out, "{n}\t{} endpoints\tsaved {}", b.endpoints.len(), us_text(b.saved_ms.saturating_mul(1000)))?;
            }
            Ok(0)
        }
    }
}

pub fn drift(a: DriftArgs) -> Result<i32> {
    let cfg = a.store.config()?;
    let st = Store::open(&cfg.store.path, Access::ReadOnly)?;
    let Some(b) = st.baseline(&a.baseline)? else {
        bail!("no baseline named {:?} in {}; saved: {}", a.baseline, cfg.store.path.display(), st.baseline_names()?.join(", "));
    };
    let changes = baseline::drift(&b, &st.endpoints()?);
    let mut out = std::io::stdout().lock();
    match a.format {
        TableOrJson::Json => {
            serde_json::to_writer_pretty(&mut out, &changes)?;
            writeln!(out)?;
        }
        TableOrJson::Table => {
            let rows: Vec<Vec<String>> = changes
                .iter()
                .map(|d| {
                    vec![
                        d.change.to_string(),
                        format!("{} {}{}", d.method, d.host, d.path),
                        d.detail.clone(),
                        if d.first_seen_us > 0 { us_text(d.first_seen_us) } else { "-".into() },
                    ]
                })
                .collect();
            table(&mut out, &["CHANGE", "ENDPOINT", "DETAIL", "FIRST SEEN (UTC)"], &rows)?;
        }
    }
    Ok(0)
}

pub fn report(a: ReportArgs) -> Result<i32> {
    let mut cfg = a.store.config()?;
    cfg.findings.specs.extend(a.spec.iter().cloned());
    let spec = load_specs(&cfg)?;
    let st = Store::open(&cfg.store.path, Access::ReadOnly)?;
    let r = baseline::report(&st.endpoints()?, &st.findings()?, &spec);
    let mut out = std::io::stdout().lock();
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    let kpis: Vec<(&str, String)> = vec![
        ("Endpoints inventoried", r.endpoints_inventoried.to_string()),
        ("Share with business tags", pct(r.share_with_business_tags)),
        ("Share documented (in spec scope)", r.share_documented.map(pct).unwrap_or_else(|| "- (no spec given)".into())),
        ("High-risk endpoints with open findings", r.high_risk_endpoints_with_open_findings.to_string()),
        ("Critical endpoints without authentication", r.critical_endpoints_without_auth.to_string()),
        ("Endpoints exposing sensitive data", r.endpoints_exposing_sensitive_data.to_string()),
        ("Open findings", r.open_findings.to_string()),
        ("Resolved findings", r.resolved_findings.to_string()),
        (
            "Mean time to posture-drift detection",
            r.mean_time_to_drift_detection_ms.map(|m| format!("{m:.0} ms ({} drift findings)", r.drift_findings)).unwrap_or_else(|| "- (no drift findings)".into()),
        ),
        ("Documented operations never observed", r.orphan_operations.len().to_string()),
    ];
    let by_kind: Vec<String> = r.open_findings_by_kind.iter().map(|(k, v)| format!("{k}={v}")).collect();
    match a.format {
        ReportFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &r)?;
            writeln!(out)?;
        }
        ReportFormat::Markdown => {
            writeln!(out, "# API posture report\n\n| KPI | value |\n|---|---|")?;
            for (k, v) in &kpis {
                writeln!(out, "| {k} | {v} |")?;
            }
            writeln!(out, "\nOpen findings by kind: {}\n", if by_kind.is_empty() { "none".into() } else { by_kind.join(", ") })?;
            writeln!(out, "## Endpoints by risk\n\n| risk | score | endpoint | open findings |\n|---|---|---|---|")?;
            for e in &r.endpoints {
                writeln!(out, "| {} | {} | `{} {}{}` | {} |", e.risk_level, e.risk_score, e.method, e.host, e.path, e.open_findings.join(", "))?;
            }
            if !r.orphan_operations.is_empty() {
                writeln!(out, "\n## Documented operations never observed\n")?;
                for o in &r.orphan_operations {
                    writeln!(out, "- `{} {}{}`{}", o.method, o.hosts.join(","), o.path, if o.deprecated { " (deprecated)" } else { "" })?;
                }
            }
        }
        ReportFormat::Table => {
            let rows: Vec<Vec<String>> = kpis.iter().map(|(k, v)| vec![k.to_string(), v.clone()]).collect();
            table(&mut out, &["KPI", "VALUE"], &rows)?;
            writeln!(out, "open findings by kind: {}\n", if by_kind.is_empty() { "none".into() } else { by_kind.join(", ") })?;
            let rows: Vec<Vec<String>> = r
                .endpoints
                .iter()
                .map(|e| {
                    vec![
                        e.risk_level.to_string(),
                        e.risk_score.to_string(),
                        format!("{} {}{}", e.method, e.host, e.path),
                        e.documented.unwrap_or("-").to_string(),
                        e.open_findings.join(","),
                    ]
                })
                .collect();
            table(&mut out, &["RISK", "SCORE", "ENDPOINT", "SPEC", "OPEN FINDINGS"], &rows)?;
            if !r.orphan_operations.is_empty() {
                writeln!(out, "\ndocumented operations never observed:")?;
                for o in &r.orphan_operations {
                    writeln!(out, "  {} {}{}{}", o.method, o.hosts.join(","), o.path, if o.deprecated { " (deprecated)" } else { "" })?;
                }
            }
        }
    }
    Ok(0)
}
