//! Path templates, the learned part: per-position cardinality.
//!
//! Every endpoint template seen for a host goes into a trie of segments. When
//! a node's literal children look like values of one parameter — free text
//! such as slugs or file names, many of them; or single words that all have
//! the same structure below them (`/categories/audio/products`,
//! `/categories/bags/products`, …); or simply very many — the position becomes
//! a parameter for that parent (a [`Rule`]), the children's subtrees merge,
//! and the caller re-keys the endpoint records already stored.
//!
//! Structural guards: children of the root (first segments), of `api` and of
//! version segments are never merged, and reserved words (`me`, `search`,
//! `count`, …) stay literal next to a parameter.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::analyze::template::{is_param, is_version, looks_like_words};

/// Words that stay literal beside a learned parameter.
const RESERVED: &[&str] = &[
    "me", "self", "search", "count", "new", "all", "latest", "current", "export", "import", "bulk", "batch", "stats",
    "summary", "default", "settings", "config", "status", "health", "info", "metadata", "schema", "mine",
];

/// Thresholds of the learning.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearnConfig {
    /// Distinct free-text siblings (slugs, file names, codes) that make a parameter.
    pub slug_min_distinct: usize,
    /// Distinct single-word siblings with the same structure below them that make a parameter.
    pub word_min_distinct: usize,
    /// Distinct siblings of any kind that make a parameter.
    pub any_min_distinct: usize,
    /// Trie nodes per host; beyond it new paths are not learned from (counted).
    pub max_nodes_per_host: usize,
}

impl Default for LearnConfig {
    fn default() -> Self {
        LearnConfig { slug_min_distinct: 3, word_min_distinct: 8, any_min_distinct: 50, max_nodes_per_host: 100_000 }
    }
}

/// A learned parameter position: under `parent` (a template) on `host`, the
/// next segment is the parameter `{param}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rule {
    pub host: String,
    pub parent: String,
    pub param: String,
}

#[derive(Default)]
struct Node {
    children: BTreeMap<String, Node>,
}

impl Node {
    fn count(&self) -> usize {
        1 + self.children.values().map(Node::count).sum::<usize>()
    }

    fn merge(&mut self, other: Node) {
        for (k, v) in other.children {
            self.children.entry(k).or_default().merge(v);
        }
    }

    fn signature(&self) -> Vec<&str> {
        self.children.keys().map(String::as_str).collect()
    }
}

/// Counters of the learning.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LearnStats {
    pub rules_learned: u64,
    pub node_limit_hit: u64,
}

/// Learned templates of every host.
#[derive(Default)]
pub struct Templater {
    cfg: LearnConfig,
    trees: HashMap<String, (Node, usize)>,
    rules: HashMap<String, HashMap<String, String>>,
    stats: LearnStats,
}

fn is_reserved(seg: &str) -> bool {
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(seg))
}

/// Whether a literal segment reads as a value rather than a name.
fn free_text(seg: &str) -> bool {
    let b = seg.as_bytes();
    looks_like_words(b) || b.iter().any(u8::is_ascii_digit) || seg.contains('.')
}

impl Templater {
    pub fn new(cfg: LearnConfig) -> Templater {
        Templater { cfg, ..Templater::default() }
    }

    pub fn stats(&self) -> &LearnStats {
        &self.stats
    }

    /// Every rule, sorted.
    pub fn rules(&self) -> Vec<Rule> {
        let mut v: Vec<Rule> = self
            .rules
            .iter()
            .flat_map(|(h, m)| m.iter().map(move |(p, n)| Rule { host: h.clone(), parent: p.clone(), param: n.clone() }))
            .collect();
        v.sort();
        v
    }

    /// Adds a rule (learned earlier and loaded from the store).
    pub fn add_rule(&mut self, r: Rule) {
        self.rules.entry(r.host).or_default().insert(r.parent, r.param);
    }

    /// The template with the learned rules of `host` applied.
    pub fn apply(&self, host: &str, template: &str) -> String {
        let Some(rules) = self.rules.get(host) else { return template.to_string() };
        let mut out = String::with_capacity(template.len());
        for (i, seg) in template.split('/').enumerate() {
            if i > 0 {
                // `out` is the parent template of `seg`
                // a learned position is one parameter: literal and typed values alike
                let param = if !seg.is_empty() && !is_reserved(seg) { rules.get(out.as_str()) } else { None };
                out.push('/');
                match param {
                    Some(p) => {
                        out.push('{');
                        out.push_str(p);
                        out.push('}');
                    }
                    None => out.push_str(seg),
                }
            } else {
                out.push_str(seg);
            }
        }
        out
    }

    /// Records a template (rules already applied) and returns the rules this
    /// learned. Callers re-apply rules to the template and to stored records.
    pub fn learn(&mut self, host: &str, template: &str) -> Vec<Rule> {
        let limit = self.cfg.max_nodes_per_host;
        let (root, nodes) = self.trees.entry(host.to_string()).or_insert_with(|| (Node::default(), 1));
        // insert
        let mut node = &mut *root;
        let mut added = 0usize;
        for seg in template.split('/').skip(1) {
            if !node.children.contains_key(seg) {
                if *nodes + added >= limit {
                    self.stats.node_limit_hit += 1;
                    break;
                }
                added += 1;
            }
            node = node.children.entry(seg.to_string()).or_default();
        }
        *nodes += added;
        if added == 0 {
            return Vec::new();
        }
        // check each parent along the path, top-down
        let mut learned = Vec::new();
        let segs: Vec<&str> = template.split('/').skip(1).collect();
        let mut parent = String::new();
        let mut node = &mut *root;
        for (depth, seg) in segs.iter().enumerate() {
            let guarded = depth == 0 || parent.rsplit('/').next().is_some_and(|last| is_version(last) || last.eq_ignore_ascii_case("api"));
            if !guarded && !is_param(seg) {
                if let Some(param) = promote(node, &self.cfg) {
                    let literal: Vec<String> =
                        node.children.keys().filter(|k| !is_param(k) && !k.is_empty() && !is_reserved(k)).cloned().collect();
                    let mut merged = node.children.remove(&format!("{{{param}}}")).unwrap_or_default();
                    for k in literal {
                        if let Some(n) = node.children.remove(&k) {
                            merged.merge(n);
                        }
                    }
                    node.children.insert(format!("{{{param}}}"), merged);
                    let rule = Rule { host: host.to_string(), parent: parent.clone(), param: param.to_string() };
                    self.rules.entry(host.to_string()).or_default().insert(parent.clone(), param.to_string());
                    self.stats.rules_learned += 1;
                    learned.push(rule);
                    // the rest of the path is re-learned by the caller with the new rule applied
                    break;
                }
            }
            parent.push('/');
            parent.push_str(seg);
            let Some(next) = node.children.get_mut(*seg) else { break };
            node = next;
        }
        if !learned.is_empty() {
            *nodes = root.count();
        }
        learned
    }
}

/// Whether the children of `node` are values of one parameter; its name.
fn promote(node: &Node, cfg: &LearnConfig) -> Option<&'static str> {
    let literal: Vec<(&String, &Node)> =
        node.children.iter().filter(|(k, _)| !is_param(k) && !k.is_empty() && !is_reserved(k)).collect();
    let n = literal.len();
    if n < cfg.slug_min_distinct.min(cfg.word_min_distinct).min(cfg.any_min_distinct) {
        return None;
    }
    let free = literal.iter().filter(|(k, _)| free_text(k)).count();
    let files = literal.iter().filter(|(k, _)| k.contains('.')).count();
    let name = if files * 2 > n { "file" } else { "slug" };
    if n >= cfg.slug_min_distinct && free * 10 >= n * 8 {
        return Some(name);
    }
    if n >= cfg.word_min_distinct {
        // single words with one shared, non-empty structure below them
        let mut sigs: HashMap<Vec<&str>, usize> = HashMap::new();
        for (_, child) in &literal {
            let s = child.signature();
            if !s.is_empty() {
                *sigs.entry(s).or_default() += 1;
            }
        }
        if sigs.values().max().is_some_and(|&m| m * 10 >= n * 8) {
            return Some(name);
        }
    }
    if n >= cfg.any_min_distinct {
        return Some("param");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learn_all(t: &mut Templater, host: &str, paths: &[&str]) -> Vec<Rule> {
        let mut rules = Vec::new();
        for p in paths {
            let applied = t.apply(host, p);
            rules.extend(t.learn(host, &applied));
        }
        rules
    }

    #[test]
    fn slugs_become_a_parameter_after_three_siblings() {
        let mut t = Templater::new(LearnConfig::default());
        let r = learn_all(&mut t, "h", &["/v2/products/retro-bamboo-sneakers", "/v2/products/classic-glass-sunglasses"]);
        assert!(r.is_empty());
        let r = learn_all(&mut t, "h", &["/v2/products/compact-linen-backpack"]);
        assert_eq!(r, vec![Rule { host: "h".into(), parent: "/v2/products".into(), param: "slug".into() }]);
        assert_eq!(t.apply("h", "/v2/products/retro-bamboo-sneakers/reviews"), "/v2/products/{slug}/reviews");
        assert_eq!(t.apply("h", "/v2/products/search"), "/v2/products/search", "reserved words stay");
        assert_eq!(t.apply("h", "/v2/products/{token}"), "/v2/products/{slug}", "one parameter per position");
        assert_eq!(t.apply("other", "/v2/products/x-y"), "/v2/products/x-y", "rules are per host");
    }

    #[test]
    fn resource_names_under_a_version_never_merge() {
        let mut t = Templater::new(LearnConfig::default());
        let paths: Vec<String> = ["cart", "categories", "orders", "users", "products", "admin", "_debug", "inventory", "reports", "me-too", "a-b", "c-d", "e-f"]
            .iter()
            .map(|s| format!("/v2/{s}/x"))
            .collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        assert!(learn_all(&mut t, "h", &refs).is_empty());
        let firsts: Vec<String> = (0..60).map(|i| format!("/seg-{i}")).collect();
        let refs: Vec<&str> = firsts.iter().map(String::as_str).collect();
        assert!(learn_all(&mut t, "h", &refs).is_empty(), "first segments never merge");
    }

    #[test]
    fn single_words_with_shared_structure_merge() {
        let mut t = Templater::new(LearnConfig::default());
        let words = ["apparel", "audio", "bags", "eyewear", "footwear", "furniture", "lighting"];
        let paths: Vec<String> = words.iter().map(|w| format!("/v2/categories/{w}/products")).collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        assert!(learn_all(&mut t, "h", &refs).is_empty(), "seven are not enough");
        let r = learn_all(&mut t, "h", &["/v2/categories/stationery/products"]);
        assert_eq!(r.len(), 1);
        assert_eq!(t.apply("h", "/v2/categories/audio/products"), "/v2/categories/{slug}/products");
        // heterogeneous single words stay literal
        let mut t = Templater::new(LearnConfig::default());
        let words = ["cart", "orders", "users", "items", "reports", "sales", "metrics", "audit"];
        let paths: Vec<String> = words.iter().enumerate().map(|(i, w)| format!("/svc/admin/{w}/x{i}")).collect();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        assert!(learn_all(&mut t, "h", &refs).is_empty());
    }

    #[test]
    fn file_names_become_file() {
        let mut t = Templater::new(LearnConfig::default());
        let r = learn_all(&mut t, "h", &["/legacy/export/customers-2023-03.csv", "/legacy/export/customers-2023-10.csv", "/legacy/export/customers-2023-11.csv"]);
        assert_eq!(r[0].param, "file");
    }

    #[test]
    fn node_limit_is_counted() {
        let mut t = Templater::new(LearnConfig { max_nodes_per_host: 5, ..LearnConfig::default() });
        learn_all(&mut t, "h", &["/a/b/c/d/e/f/g/h"]);
        assert_eq!(t.stats().node_limit_hit, 1);
    }
}
