//! Differential tests of the HPACK decoder (`apitap::proto::hpack`) against
//! independent oracles.
//!
//! 1. **The hpack-test-case stories** (github.com/http2jp/hpack-test-case):
//!    header blocks produced by a dozen independent encoders (nghttp2, Go,
//!    Haskell, Python, node, Swift NIO, ...) with the header lists they
//!    encode. The published `httlib-hpack` package ships them in its
//!    `fixtures/` directory, so they come from the cargo registry with no
//!    network at test time. Each story is one connection direction: one
//!    decoder per story, cases in order (the dynamic table carries over).
//!    Every story is also replayed from the middle with a mid-stream decoder,
//!    and from the start with a small memory cap: what those decode must be
//!    exact, and what they cannot decode must be reported unknown.
//! 2. **A second encoder**: `httlib_hpack::Encoder` encodes random header
//!    lists (seeded xorshift) with every representation (indexed, incremental
//!    indexing, without indexing, never indexed), Huffman on and off, dynamic
//!    table size updates and SETTINGS changes, over long sequences of blocks
//!    sharing one dynamic table (so eviction is exercised, including an
//!    insertion whose name refers to the entry it evicts, RFC 7541 §4.4). The
//!    decoder must return exactly the input list.
//!
//! The fixtures are looked for in `$CARGO_HOME/registry/src/*/httlib-hpack-*/fixtures`
//! (or in `$APITAP_HPACK_STORIES`). If they cannot be found the story test
//! prints a notice and passes, unless `APITAP_REQUIRE_SHARED=1`, which turns
//! the absence into a failure (as CI sets it).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use apitap::proto::hpack::{Decoder, Field, HpackError, DEFAULT_MAX_TABLE_SIZE};
use httlib_hpack::Encoder;

/// Memory cap large enough that every entry of these streams is kept.
const HARD_LIMIT: usize = 1 << 20;
/// Longest name or value accepted: larger than anything generated here.
const MAX_FIELD: usize = 1 << 20;

// ---------------------------------------------------------------------------
// Shared helpers.
// ---------------------------------------------------------------------------

/// One expected header field.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Expected {
    name: Vec<u8>,
    value: Vec<u8>,
    /// `None` when the oracle does not say (the stories do not record it).
    sensitive: Option<bool>,
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Compares a fully decoded block with the expected list; `Err` describes the first difference.
fn compare_exact(got: &[Field], want: &[Expected]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{} fields decoded, {} expected: got {got:?}", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        match g {
            Field::Known { name, value, sensitive } => {
                if name != &w.name || value != &w.value || w.sensitive.is_some_and(|s| s != *sensitive) {
                    return Err(format!(
                        "field {i}: got {:?}: {:?} (sensitive {sensitive}), want {:?}: {:?} (sensitive {:?})",
                        show(name),
                        show(value),
                        show(&w.name),
                        show(&w.value),
                        w.sensitive
                    ));
                }
            }
            Field::Unknown { index, .. } => {
                return Err(format!("field {i}: unknown reference to index {index}, want {:?}", show(&w.name)));
            }
        }
    }
    Ok(())
}

/// Compares a block decoded by a decoder that may lack entries (mid-stream, or
/// under a memory cap): every field is either exact or reported unknown, and
/// what an unknown field does carry (its literal value) is right. Returns the
/// number of unknown fields.
fn compare_sound(got: &[Field], want: &[Expected]) -> Result<usize, String> {
    if got.len() != want.len() {
        return Err(format!("{} fields decoded, {} expected: got {got:?}", got.len(), want.len()));
    }
    let mut unknown = 0;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        match g {
            Field::Known { name, value, sensitive } => {
                if name != &w.name || value != &w.value || w.sensitive.is_some_and(|s| s != *sensitive) {
                    return Err(format!(
                        "field {i}: guessed {:?}: {:?} (sensitive {sensitive}), want {:?}: {:?}",
                        show(name),
                        show(value),
                        show(&w.name),
                        show(&w.value)
                    ));
                }
            }
            Field::Unknown { index, value, sensitive } => {
                unknown += 1;
                if value.as_ref().is_some_and(|v| v != &w.value) || w.sensitive.is_some_and(|s| s != *sensitive) {
                    return Err(format!(
                        "field {i}: unknown index {index} with value {:?} (sensitive {sensitive}), want {:?}: {:?}",
                        value.as_deref().map(show),
                        show(&w.name),
                        show(&w.value)
                    ));
                }
            }
        }
    }
    Ok(unknown)
}

/// Once a mid-stream decoder is synced (no unknown tail), the only thing it
/// may still miss is the name of an entry inserted with a name from the old
/// tail; such an entry's value is known. So an unknown field without a value
/// while synced means an index was resolved against a tail that is not there.
fn synced_gap(synced: bool, got: &[Field]) -> Option<&Field> {
    if !synced {
        return None;
    }
    got.iter().find(|f| matches!(f, Field::Unknown { value: None, .. }))
}

fn decode_block(dec: &mut Decoder, wire: &[u8]) -> (Vec<Field>, Result<(), HpackError>) {
    let mut out = Vec::new();
    let r = dec.decode(wire, MAX_FIELD, &mut out);
    (out, r)
}

// ---------------------------------------------------------------------------
// 1. The hpack-test-case stories.
// ---------------------------------------------------------------------------

struct Case {
    seqno: u64,
    wire: Vec<u8>,
    headers: Vec<Expected>,
    /// SETTINGS_HEADER_TABLE_SIZE in force for this block, when the story says.
    header_table_size: Option<usize>,
}

struct Story {
    /// `<implementation>/story_NN.json`.
    name: String,
    cases: Vec<Case>,
}

fn require_shared() -> bool {
    std::env::var("APITAP_REQUIRE_SHARED").is_ok_and(|v| v == "1")
}

/// The `fixtures/` directory of the newest `httlib-hpack` package in the
/// cargo registry (or `$APITAP_HPACK_STORIES`).
fn stories_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("APITAP_HPACK_STORIES") {
        return Some(PathBuf::from(p));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    let mut found: Vec<PathBuf> = Vec::new();
    for index in std::fs::read_dir(cargo_home.join("registry").join("src")).ok()?.flatten() {
        let Ok(packages) = std::fs::read_dir(index.path()) else { continue };
        for pkg in packages.flatten() {
            let dir_name = pkg.file_name().to_string_lossy().into_owned();
            let fixtures = pkg.path().join("fixtures");
            if dir_name.starts_with("httlib-hpack-") && fixtures.is_dir() {
                found.push(fixtures);
            }
        }
    }
    // The pinned version first, then the newest by name.
    found.sort();
    found.iter().find(|p| p.to_string_lossy().contains("httlib-hpack-0.1.3")).or(found.last()).cloned()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    b.chunks(2).map(|p| Some(nib(p[0])? << 4 | nib(p[1])?)).collect()
}

fn parse_story(name: String, text: &str) -> Result<Story, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("{name}: {e}"))?;
    let cases_json = v.get("cases").and_then(|c| c.as_array()).ok_or_else(|| format!("{name}: no cases"))?;
    let mut cases = Vec::new();
    for c in cases_json {
        let seqno = c.get("seqno").and_then(|s| s.as_u64()).unwrap_or(cases.len() as u64);
        let wire = c
            .get("wire")
            .and_then(|w| w.as_str())
            .and_then(unhex)
            .ok_or_else(|| format!("{name} case {seqno}: bad wire"))?;
        let header_table_size = c.get("header_table_size").and_then(|s| s.as_u64()).map(|s| s as usize);
        let mut headers = Vec::new();
        for h in c.get("headers").and_then(|h| h.as_array()).ok_or_else(|| format!("{name} case {seqno}: no headers"))? {
            let obj = h.as_object().ok_or_else(|| format!("{name} case {seqno}: header is not an object"))?;
            for (k, val) in obj {
                let val = val.as_str().ok_or_else(|| format!("{name} case {seqno}: value is not a string"))?;
                headers.push(Expected { name: k.as_bytes().to_vec(), value: val.as_bytes().to_vec(), sensitive: None });
            }
        }
        cases.push(Case { seqno, wire, headers, header_table_size });
    }
    Ok(Story { name, cases })
}

fn load_stories(dir: &Path) -> Vec<Story> {
    let mut files = Vec::new();
    for imp in std::fs::read_dir(dir).expect("read fixtures dir").flatten() {
        if !imp.path().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(imp.path()).expect("read implementation dir").flatten() {
            if f.path().extension().is_some_and(|e| e == "json") {
                files.push(f.path());
            }
        }
    }
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap_or(&p).to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).expect("read story");
            parse_story(rel, &text).expect("parse story")
        })
        .collect()
}

/// SETTINGS_HEADER_TABLE_SIZE in force at case `k` (the last one stated before it).
fn settings_at(story: &Story, k: usize) -> usize {
    story.cases[..=k].iter().rev().find_map(|c| c.header_table_size).unwrap_or(DEFAULT_MAX_TABLE_SIZE)
}

/// Per-implementation pass counts.
#[derive(Default)]
struct Tally {
    stories: usize,
    stories_ok: usize,
    cases: usize,
    cases_ok: usize,
}

/// Decodes a whole story from its start; returns the cases that passed and the first failure.
fn run_story(story: &Story, hard_limit: usize, exact: bool) -> (usize, Option<String>) {
    let mut dec = Decoder::new(DEFAULT_MAX_TABLE_SIZE, hard_limit);
    let mut ok = 0;
    let mut first_failure = None;
    for c in &story.cases {
        if let Some(n) = c.header_table_size {
            dec.set_max_table_size(n);
        }
        let (got, r) = decode_block(&mut dec, &c.wire);
        let verdict = match r {
            Err(e) => Err(format!("decode error {e}")),
            Ok(()) if exact => compare_exact(&got, &c.headers).map(|()| 0),
            Ok(()) => compare_sound(&got, &c.headers),
        };
        match verdict {
            Ok(_) => ok += 1,
            Err(e) => {
                first_failure.get_or_insert_with(|| format!("{} seqno {}: {e}", story.name, c.seqno));
            }
        }
    }
    (ok, first_failure)
}

#[test]
fn hpack_test_case_stories() {
    let Some(dir) = stories_dir() else {
        let msg = "hpack-test-case stories not found (httlib-hpack fixtures in the cargo registry, or $APITAP_HPACK_STORIES)";
        if require_shared() {
            panic!("{msg}; APITAP_REQUIRE_SHARED=1 makes them mandatory");
        }
        eprintln!("notice: {msg}: skipped");
        return;
    };
    let stories = load_stories(&dir);
    assert!(stories.len() >= 300, "only {} stories under {}", stories.len(), dir.display());

    let mut by_impl: std::collections::BTreeMap<String, Tally> = Default::default();
    let mut failures = Vec::new();
    for story in &stories {
        let imp = story.name.split(['/', '\\']).next().unwrap_or("").to_string();
        let (ok, fail) = run_story(story, HARD_LIMIT, true);
        let t = by_impl.entry(imp).or_default();
        t.stories += 1;
        t.cases += story.cases.len();
        t.cases_ok += ok;
        match fail {
            None => t.stories_ok += 1,
            Some(f) => failures.push(f),
        }
    }

    let mut report = String::from("hpack-test-case stories (exact, one decoder per story):\n");
    let mut total = Tally::default();
    for (imp, t) in &by_impl {
        let _ = writeln!(report, "  {imp:32} stories {:3}/{:3}  cases {:5}/{:5}", t.stories_ok, t.stories, t.cases_ok, t.cases);
        total.stories += t.stories;
        total.stories_ok += t.stories_ok;
        total.cases += t.cases;
        total.cases_ok += t.cases_ok;
    }
    let _ = writeln!(
        report,
        "  {:32} stories {:3}/{:3}  cases {:5}/{:5}",
        "total", total.stories_ok, total.stories, total.cases_ok, total.cases
    );
    eprint!("{report}");
    assert!(failures.is_empty(), "{} stories failed:\n{}", failures.len(), failures.join("\n"));
}

/// Every story joined at several points with a mid-stream decoder: each field
/// is exact or unknown, never guessed, and once the decoder is synced only
/// names inherited from the unknown tail can still be missing.
#[test]
fn hpack_test_case_stories_joined_midstream() {
    let Some(dir) = stories_dir() else {
        if require_shared() {
            panic!("hpack-test-case stories not found; APITAP_REQUIRE_SHARED=1 makes them mandatory");
        }
        eprintln!("notice: hpack-test-case stories not found: skipped");
        return;
    };
    let stories = load_stories(&dir);
    let (mut runs, mut blocks, mut fields, mut unknown, mut resynced) = (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    for story in &stories {
        let n = story.cases.len();
        let mut joins: Vec<usize> = vec![1, n / 4, n / 2, n.saturating_sub(3)];
        joins.retain(|&k| k > 0 && k < n);
        joins.dedup();
        for k in joins {
            runs += 1;
            let mut dec = Decoder::new_midstream(settings_at(story, k), HARD_LIMIT);
            let mut was_synced = false;
            for c in &story.cases[k..] {
                if let Some(s) = c.header_table_size {
                    dec.set_max_table_size(s);
                }
                let synced_before = dec.is_synced();
                let (got, r) = decode_block(&mut dec, &c.wire);
                blocks += 1;
                fields += c.headers.len();
                let verdict = match r {
                    Err(e) => Err(format!("decode error {e}")),
                    Ok(()) => compare_sound(&got, &c.headers).and_then(|u| match synced_gap(synced_before, &got) {
                        Some(f) => Err(format!("unknown field without a value while synced: {f:?}")),
                        None => Ok(u),
                    }),
                };
                match verdict {
                    Ok(u) => unknown += u,
                    Err(e) => {
                        failures.push(format!("{} joined at case {k}, seqno {}: {e}", story.name, c.seqno));
                        break;
                    }
                }
                was_synced |= dec.is_synced();
            }
            resynced += usize::from(was_synced);
        }
    }
    eprintln!(
        "hpack-test-case stories joined mid-stream: {runs} runs, {blocks} blocks, {fields} fields, \
         {unknown} reported unknown, {resynced} runs regained full sync"
    );
    assert!(failures.is_empty(), "{} mid-stream runs failed:\n{}", failures.len(), failures.join("\n"));
    assert!(unknown < fields, "nothing decoded mid-stream");
}

/// Every story from its start with a memory cap far below the table size:
/// entries that are not kept are reported unknown, everything else is exact.
#[test]
fn hpack_test_case_stories_under_a_memory_cap() {
    let Some(dir) = stories_dir() else {
        if require_shared() {
            panic!("hpack-test-case stories not found; APITAP_REQUIRE_SHARED=1 makes them mandatory");
        }
        eprintln!("notice: hpack-test-case stories not found: skipped");
        return;
    };
    let stories = load_stories(&dir);
    let mut failures = Vec::new();
    let mut cases = 0;
    for cap in [0usize, 96, 512, 1500] {
        for story in &stories {
            let (ok, fail) = run_story(story, cap, false);
            cases += ok;
            if let Some(f) = fail {
                failures.push(format!("cap {cap}: {f}"));
            }
        }
    }
    eprintln!("hpack-test-case stories under memory caps 0/96/512/1500 bytes: {cases} cases sound");
    assert!(failures.is_empty(), "{} stories failed:\n{}", failures.len(), failures.join("\n"));
}

// ---------------------------------------------------------------------------
// 2. Random header lists through an independent encoder.
// ---------------------------------------------------------------------------

/// xorshift64*: deterministic, no extra crates.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, len: usize, alphabet: Option<&[u8]>) -> Vec<u8> {
        (0..len)
            .map(|_| match alphabet {
                Some(a) => *self.pick(a),
                None => self.next() as u8,
            })
            .collect()
    }
}

/// RFC 7541 Appendix A, for full and name-only static matches.
const STATIC: &[(&str, &str)] = &[
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

const CUSTOM_NAMES: &[&str] = &[
    "x-request-id",
    "x-api-key",
    "x-forwarded-for",
    "grpc-timeout",
    "grpc-encoding",
    "te",
    "x-b3-traceid",
    "traceparent",
    "x",
    "",
];

const VALUES: &[&str] = &[
    "",
    "application/json",
    "application/grpc+proto",
    "Bearer eyJhbGciOiJIUzI1NiJ9.e30.ZRrHA1JJJW8opsbCGfG_HACGpVUMN_a9IV7pAx_Zmeo",
    "/api/v1/users/42",
    "trailers",
    "gzip",
    "100m",
    "no-cache",
    "2026-01-01T00:00:00Z",
];

const TOKEN: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-_.~/:=;, ";

/// One field to encode, and how.
struct Gen {
    name: Vec<u8>,
    value: Vec<u8>,
    flags: u8,
}

fn gen_value(rng: &mut Rng) -> Vec<u8> {
    match rng.below(100) {
        0..=39 => rng.pick(VALUES).as_bytes().to_vec(),
        40..=69 => {
            let n = rng.below(48);
            rng.bytes(n, Some(TOKEN))
        }
        70..=89 => {
            let n = rng.below(40);
            rng.bytes(n, None)
        }
        // Large: fills or overflows small tables (an entry larger than the
        // table empties it, RFC 7541 §4.4).
        _ => {
            let n = 100 + rng.below(3000);
            rng.bytes(n, Some(TOKEN))
        }
    }
}

fn gen_field(rng: &mut Rng, recent: &[(Vec<u8>, Vec<u8>)]) -> Gen {
    let (name, value) = match rng.below(100) {
        // A full static entry (indexed, §6.1).
        0..=14 => {
            let (n, v) = *rng.pick(STATIC);
            (n.as_bytes().to_vec(), v.as_bytes().to_vec())
        }
        // A static name with another value (§6.2 with an indexed name).
        15..=39 => (rng.pick(STATIC).0.as_bytes().to_vec(), gen_value(rng)),
        40..=59 => (rng.pick(CUSTOM_NAMES).as_bytes().to_vec(), gen_value(rng)),
        // A name of arbitrary bytes: the decoder does not validate names.
        60..=69 => {
            let n = rng.below(24);
            (rng.bytes(n, None), gen_value(rng))
        }
        // A recent field again (full dynamic match), or its name with a new value.
        _ if !recent.is_empty() => {
            let (n, v) = rng.pick(recent).clone();
            if rng.chance(70) {
                (n, v)
            } else {
                (n, gen_value(rng))
            }
        }
        _ => (rng.pick(CUSTOM_NAMES).as_bytes().to_vec(), gen_value(rng)),
    };
    let mut flags = 0;
    if rng.chance(50) {
        flags |= Encoder::HUFFMAN_NAME;
    }
    if rng.chance(50) {
        flags |= Encoder::HUFFMAN_VALUE;
    }
    flags |= match rng.below(4) {
        0 | 1 => Encoder::WITH_INDEXING,
        2 => Encoder::NEVER_INDEXED,
        _ => 0,
    };
    if rng.chance(75) {
        flags |= Encoder::BEST_FORMAT;
    }
    Gen { name, value, flags }
}

/// SETTINGS_HEADER_TABLE_SIZE values tried; small ones evict on nearly every insertion.
const TABLE_SIZES: &[usize] = &[0, 32, 64, 100, 256, 512, 1024, 4096, 16384, 65536];

/// One encoded block and the list it must decode to.
struct Block {
    wire: Vec<u8>,
    want: Vec<Expected>,
    /// SETTINGS_HEADER_TABLE_SIZE change the decoding side announces before this block.
    settings: Option<usize>,
    /// Representations used, counted by kind: indexed, incremental, without, never, size update.
    kinds: [usize; 5],
}

/// A sequence of blocks from one encoder (one direction of one connection).
fn gen_session(seed: u64, blocks: usize) -> (usize, Vec<Block>) {
    let mut rng = Rng::new(seed);
    let initial = *rng.pick(TABLE_SIZES);
    let mut settings = initial;
    let mut enc = Encoder::with_dynamic_size(initial as u32);
    let mut recent: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut out = Vec::with_capacity(blocks);
    for _ in 0..blocks {
        let mut wire = Vec::new();
        let mut kinds = [0usize; 5];
        let mut settings_change = None;
        // Now and then the decoding peer announces another table size; a lower
        // one obliges the encoder to send a size update in its next block.
        if rng.chance(5) {
            settings = *rng.pick(TABLE_SIZES);
            settings_change = Some(settings);
        }
        let current = enc.max_dynamic_size() as usize;
        let must_update = current > settings;
        if must_update || rng.chance(4) {
            // Sometimes two updates: a smaller one then the final one (§4.2).
            if rng.chance(30) {
                let low = rng.below(settings.min(current) + 1);
                enc.update_max_dynamic_size(low as u32, &mut wire).expect("size update");
                kinds[4] += 1;
            }
            let size = if rng.chance(50) { settings } else { rng.below(settings + 1) };
            enc.update_max_dynamic_size(size as u32, &mut wire).expect("size update");
            kinds[4] += 1;
        }
        let nfields = rng.below(17);
        let mut want = Vec::with_capacity(nfields);
        for _ in 0..nfields {
            let g = gen_field(&mut rng, &recent);
            let at = wire.len();
            enc.encode((g.name.clone(), g.value.clone(), g.flags), &mut wire).expect("encode");
            // The representation the encoder chose decides the sensitivity:
            // a full match is sent indexed even when "never indexed" was asked.
            let first = wire[at];
            let kind = if first & 0x80 != 0 {
                0
            } else if first & 0x40 != 0 {
                1
            } else if first & 0xf0 == 0x10 {
                3
            } else {
                2
            };
            kinds[kind] += 1;
            want.push(Expected { name: g.name.clone(), value: g.value.clone(), sensitive: Some(kind == 3) });
            if recent.len() >= 24 {
                recent.remove(rng.below(recent.len()));
            }
            recent.push((g.name, g.value));
        }
        out.push(Block { wire, want, settings: settings_change, kinds });
    }
    (initial, out)
}

const SESSIONS: u64 = 60;
const BLOCKS_PER_SESSION: usize = 120;

#[test]
fn random_lists_through_an_independent_encoder() {
    let mut kinds = [0usize; 5];
    let (mut lists, mut fields) = (0, 0);
    for seed in 1..=SESSIONS {
        let (initial, blocks) = gen_session(seed, BLOCKS_PER_SESSION);
        let mut dec = Decoder::new(initial, HARD_LIMIT);
        for (i, b) in blocks.iter().enumerate() {
            if let Some(s) = b.settings {
                dec.set_max_table_size(s);
            }
            let (got, r) = decode_block(&mut dec, &b.wire);
            let verdict = r.map_err(|e| format!("decode error {e}")).and_then(|()| compare_exact(&got, &b.want));
            if let Err(e) = verdict {
                panic!("session {seed} (initial table {initial}) block {i}: {e}\nwire {:02x?}", b.wire);
            }
            assert_eq!(dec.stats().unknown_refs, 0, "session {seed} block {i}");
            lists += 1;
            fields += b.want.len();
            for (k, n) in kinds.iter_mut().zip(b.kinds) {
                *k += n;
            }
        }
        assert!(dec.is_synced());
    }
    eprintln!(
        "independent encoder: {lists} header lists, {fields} fields decoded exactly \
         ({} indexed, {} incremental, {} without indexing, {} never indexed, {} size updates)",
        kinds[0], kinds[1], kinds[2], kinds[3], kinds[4]
    );
    assert!(kinds.iter().all(|&k| k > 100), "every representation exercised: {kinds:?}");
}

/// The same streams joined mid-stream at several blocks: never a guess, and
/// once synced only names inherited from the unknown tail can be missing.
#[test]
fn random_lists_joined_midstream() {
    let (mut runs, mut fields, mut unknown, mut resynced) = (0, 0, 0, 0);
    for seed in 1..=SESSIONS {
        let (initial, blocks) = gen_session(seed, BLOCKS_PER_SESSION);
        // The SETTINGS value in force before each block.
        let mut settings = Vec::with_capacity(blocks.len());
        let mut s = initial;
        for b in &blocks {
            s = b.settings.unwrap_or(s);
            settings.push(s);
        }
        for join in [1, 7, BLOCKS_PER_SESSION / 3, BLOCKS_PER_SESSION / 2] {
            runs += 1;
            // Overestimating the table size is harmless; the largest possible is the usual guess.
            let guess = if join % 2 == 0 { 65536 } else { settings[join] };
            let mut dec = Decoder::new_midstream(guess, HARD_LIMIT);
            for (i, b) in blocks.iter().enumerate().skip(join) {
                if let Some(s) = b.settings {
                    dec.set_max_table_size(s);
                }
                let synced_before = dec.is_synced();
                let (got, r) = decode_block(&mut dec, &b.wire);
                let verdict = r.map_err(|e| format!("decode error {e}")).and_then(|()| compare_sound(&got, &b.want));
                match verdict {
                    Ok(u) => {
                        if let Some(f) = synced_gap(synced_before, &got) {
                            panic!("session {seed} joined at {join}, block {i}: unknown field without a value while synced: {f:?}");
                        }
                        unknown += u;
                    }
                    Err(e) => panic!("session {seed} joined at {join}, block {i}: {e}\nwire {:02x?}", b.wire),
                }
                fields += b.want.len();
            }
            resynced += usize::from(dec.is_synced());
        }
    }
    eprintln!(
        "independent encoder, joined mid-stream: {runs} runs, {fields} fields, {unknown} reported unknown, \
         {resynced} runs synced at the end"
    );
    assert!(unknown < fields / 2, "mid-stream decoding recovers most fields");
}

/// The same streams under memory caps: sizes are tracked exactly, bytes that
/// are not kept make their references unknown, and nothing is guessed.
#[test]
fn random_lists_under_a_memory_cap() {
    let (mut fields, mut unknown) = (0, 0);
    for seed in 1..=SESSIONS {
        let (initial, blocks) = gen_session(seed, BLOCKS_PER_SESSION);
        for cap in [0usize, 64, 700] {
            let mut dec = Decoder::new(initial, cap);
            for (i, b) in blocks.iter().enumerate() {
                if let Some(s) = b.settings {
                    dec.set_max_table_size(s);
                }
                let (got, r) = decode_block(&mut dec, &b.wire);
                let verdict = r.map_err(|e| format!("decode error {e}")).and_then(|()| compare_sound(&got, &b.want));
                match verdict {
                    Ok(u) => unknown += u,
                    Err(e) => panic!("session {seed} cap {cap} block {i}: {e}\nwire {:02x?}", b.wire),
                }
                fields += b.want.len();
                assert!(dec.kept_bytes() <= cap, "session {seed} cap {cap}: {} bytes kept", dec.kept_bytes());
            }
        }
    }
    eprintln!("independent encoder under memory caps 0/64/700 bytes: {fields} fields, {unknown} reported unknown");
}

/// Each block cut short at every length: a fatal error or fewer fields, never
/// a wrong field, and the decoder goes on.
#[test]
fn random_blocks_truncated() {
    let (_, blocks) = gen_session(0xdead_beef, 60);
    for (i, b) in blocks.iter().enumerate() {
        for cut in 0..b.wire.len() {
            let mut dec = Decoder::new(65536, HARD_LIMIT);
            let mut got = Vec::new();
            let _ = dec.decode(&b.wire[..cut], MAX_FIELD, &mut got);
            // Only the first block starts from an empty table like this decoder.
            if i == 0 {
                assert!(got.len() <= b.want.len());
                for (g, w) in got.iter().zip(&b.want) {
                    if let Field::Known { name, value, .. } = g {
                        assert_eq!((name.as_ref(), value.as_slice()), (w.name.as_slice(), w.value.as_slice()), "block {i} cut at {cut}");
                    }
                }
            }
        }
    }
}

/// RFC 7541 §4.4: an insertion whose name refers to the very entry that the
/// insertion evicts keeps that name. Encoded by the independent encoder with
/// a 64-byte table, which holds one of these entries at a time.
#[test]
fn insertion_naming_the_entry_it_evicts() {
    let mut enc = Encoder::with_dynamic_size(64);
    let mut wire = Vec::new();
    enc.encode((b"x-name".to_vec(), b"first".to_vec(), Encoder::WITH_INDEXING), &mut wire).expect("encode");
    // Index 62 is ("x-name", "first"): 6 + 5 + 32 = 43 bytes; the new entry
    // (6 + 6 + 32 = 44) does not fit beside it, so it is evicted first.
    enc.encode((62u32, b"second".to_vec(), Encoder::WITH_INDEXING | Encoder::HUFFMAN_VALUE), &mut wire)
        .expect("encode");
    enc.encode(62u32, &mut wire).expect("encode");
    let mut dec = Decoder::new(64, HARD_LIMIT);
    let (got, r) = decode_block(&mut dec, &wire);
    assert_eq!(r, Ok(()));
    let want: Vec<Expected> = [("x-name", "first", false), ("x-name", "second", false), ("x-name", "second", false)]
        .iter()
        .map(|(n, v, s)| Expected { name: n.as_bytes().to_vec(), value: v.as_bytes().to_vec(), sensitive: Some(*s) })
        .collect();
    compare_exact(&got, &want).unwrap_or_else(|e| panic!("{e}\nwire {wire:02x?}"));
    assert_eq!((dec.table_len(), dec.table_size()), (1, 44));
}
