//! Who calls an endpoint and what the organisation says about it: client
//! classes from CIDR lists, business tags from host/path globs.

use std::net::IpAddr;

use serde::Deserialize;

/// An IPv4 or IPv6 network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::/n` or a bare address.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, l) = s.trim().split_once('/').unwrap_or((s.trim(), ""));
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = if l.is_empty() { max } else { l.parse().ok()? };
        (len <= max).then_some(Cidr { addr, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.len == 0 { 0 } else { u32::MAX << (32 - u32::from(self.len)) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.len == 0 { 0 } else { u128::MAX << (128 - u32::from(self.len)) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Client classes by network.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExposureConfig {
    /// Networks whose clients are `internal`.
    pub internal: Vec<String>,
    /// Networks whose clients are `partner` (checked before `internal`).
    pub partner: Vec<String>,
    /// Use X-Forwarded-For / Forwarded as the client address (off: they are recorded, not trusted).
    pub trust_forwarded_for: bool,
}

impl Default for ExposureConfig {
    fn default() -> Self {
        ExposureConfig {
            internal: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "fc00::/7", "fe80::/10", "::1/128"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            partner: Vec::new(),
            trust_forwarded_for: false,
        }
    }
}

/// A business tag rule: every endpoint whose host and path match gets the tags.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRule {
    /// Host glob (`*` any run of characters); omitted = every host.
    #[serde(default)]
    pub host: Option<String>,
    /// Path glob (`*` one segment, `**` any rest); omitted = every path.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub data_classification: Option<String>,
    #[serde(default)]
    pub tier: Option<String>,
}

/// Compiled exposure networks.
#[derive(Clone, Debug, Default)]
pub struct Exposure {
    internal: Vec<Cidr>,
    partner: Vec<Cidr>,
    pub trust_forwarded_for: bool,
}

impl Exposure {
    /// Compiles the configuration; the first bad network is returned as an error.
    pub fn new(cfg: &ExposureConfig) -> Result<Exposure, String> {
        let parse = |v: &[String]| v.iter().map(|s| Cidr::parse(s).ok_or_else(|| s.clone())).collect::<Result<Vec<_>, _>>();
        Ok(Exposure { internal: parse(&cfg.internal)?, partner: parse(&cfg.partner)?, trust_forwarded_for: cfg.trust_forwarded_for })
    }

    /// `partner`, `internal` or `external`.
    pub fn class(&self, ip: IpAddr) -> &'static str {
        if self.partner.iter().any(|c| c.contains(ip)) {
            "partner"
        } else if self.internal.iter().any(|c| c.contains(ip)) {
            "internal"
        } else {
            "external"
        }
    }
}

/// Glob on host names: `*` matches any run of characters.
pub fn host_glob(pattern: &str, host: &str) -> bool {
    fn rec(p: &[u8], h: &[u8]) -> bool {
        match p.split_first() {
            None => h.is_empty(),
            Some((b'*', rest)) => (0..=h.len()).any(|i| h.get(i..).is_some_and(|t| rec(rest, t))),
            Some((c, rest)) => h.split_first().is_some_and(|(d, t)| c.eq_ignore_ascii_case(d) && rec(rest, t)),
        }
    }
    rec(pattern.as_bytes(), host.as_bytes())
}

/// The tags of an endpoint (later rules override earlier ones per tag).
pub fn tags(rules: &[TagRule], host: &str, path: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for r in rules {
        let host_ok = r.host.as_deref().is_none_or(|g| g == "*" || host_glob(g, host));
        let path_ok = r.path.as_deref().is_none_or(|g| super::template::matches_template(g, path));
        if !(host_ok && path_ok) {
            continue;
        }
        for (k, v) in [("owner", &r.owner), ("data_classification", &r.data_classification), ("tier", &r.tier)] {
            if let Some(v) = v {
                out.retain(|(ok, _)| ok != k);
                out.push((k.to_string(), v.clone()));
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_classes() {
        let e = Exposure::new(&ExposureConfig { partner: vec!["203.0.113.0/24".into()], ..ExposureConfig::default() }).unwrap();
        assert_eq!(e.class("10.1.2.3".parse().unwrap()), "internal");
        assert_eq!(e.class("::1".parse().unwrap()), "internal");
        assert_eq!(e.class("fd00::5".parse().unwrap()), "internal");
        assert_eq!(e.class("203.0.113.9".parse().unwrap()), "partner");
        assert_eq!(e.class("198.18.10.11".parse().unwrap()), "external");
        assert!(Exposure::new(&ExposureConfig { internal: vec!["10.0.0.0/33".into()], ..ExposureConfig::default() }).is_err());
        assert_eq!(Cidr::parse("0.0.0.0/0").map(|c| c.contains("1.2.3.4".parse().unwrap())), Some(true));
    }

    #[test]
    fn tag_rules() {
        let rules = vec![
            TagRule { host: Some("*.shop.test".into()), path: None, owner: Some("shop".into()), data_classification: None, tier: Some("2".into()) },
            TagRule { host: Some("internal.*".into()), path: Some("/admin/**".into()), owner: Some("it".into()), data_classification: Some("restricted".into()), tier: None },
        ];
        assert_eq!(tags(&rules, "api.shop.test", "/v2/x"), vec![("owner".into(), "shop".into()), ("tier".into(), "2".into())]);
        assert_eq!(
            tags(&rules, "internal.shop.test", "/admin/users/{id}"),
            vec![("data_classification".into(), "restricted".into()), ("owner".into(), "it".into()), ("tier".into(), "2".into())]
        );
        assert!(host_glob("*", "anything"));
        assert!(!host_glob("a*b", "ac"));
    }
}
