//! A streaming JSON walk that keeps the path to every value.
//!
//! No tree is built: one pass over the bytes with an explicit stack of open
//! containers (bounded by `max_json_depth`), borrowing keys and strings from
//! the body (strings with escapes are unescaped into one reused buffer).
//! Each key is classified once ([`keys::classify`]); each scalar is handed to
//! [`text::scalar`] with the hint of its key and of the keys above it.
//!
//! A sample is often cut: the walk then simply stops at the cut, having seen
//! everything before it (a cut string is still examined). On a syntax error
//! the rest is read by a tolerant scanner that recognises `"key": value`
//! pairs wherever they are. Several top-level values (NDJSON) are walked one
//! after the other.

use super::keys::{self, Hint};
use super::text::{self, TextOpts};
use super::validate::at;
use super::{Ctx, Loc, ScanStats};

/// One open container.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    obj: bool,
    /// The current member's key (byte range in the document, without quotes).
    key: (usize, usize),
    key_escaped: bool,
    key_hint: Hint,
    /// Hint of the key that holds this container (array elements take it).
    holder: Hint,
    /// Hints inherited from the containers above (address and phone holders).
    inherited: Hint,
}

/// What the parser expects next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// A value (top level, after `:` or `,` in an array).
    Value,
    /// A value or `]` (just after `[`).
    ValueOrEnd,
    /// A key or `}` (just after `{`).
    KeyOrEnd,
    /// A key (after `,` in an object).
    Key,
    Colon,
    /// `,` or the end of the current container.
    CommaOrEnd,
}

/// How a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Walk {
    Complete,
    /// The document ended early (a cut sample).
    Truncated,
    /// A syntax error at this offset.
    Error(usize),
}

/// Appends the JSON path of the current position: `$.a.b[*].c`.
pub(crate) fn render_path(doc: &[u8], frames: &[Frame], out: &mut String) {
    out.push('$');
    for f in frames {
        if f.obj {
            out.push('.');
            let key = if f.key_escaped { &[][..] } else { doc.get(f.key.0..f.key.1).unwrap_or(&[]) };
            super::push_name(out, key);
        } else {
            out.push_str("[*]");
        }
    }
}

/// Returns the end of a string whose content starts at `i` (the index of the
/// closing quote, or the document's end), whether it has escapes, and
/// whether it is terminated.
fn string_end(doc: &[u8], i: usize) -> (usize, bool, bool) {
    let mut j = i;
    let mut escaped = false;
    while j < doc.len() {
        match at(doc, j) {
            b'"' => return (j, escaped, true),
            b'\\' => {
                escaped = true;
                j += 2;
            }
            _ => j += 1,
        }
    }
    (doc.len(), escaped, false)
}

fn hex4(s: &[u8]) -> Option<u32> {
    if s.len() != 4 {
        return None;
    }
    s.iter().try_fold(0u32, |a, &b| Some(a * 16 + char::from(b).to_digit(16)?))
}

/// Unescapes JSON string content into `out` (lossy: bad escapes are kept as
/// written, lone surrogates become U+FFFD).
pub(crate) fn unescape(s: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0usize;
    while i < s.len() {
        let b = at(s, i);
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let e = at(s, i + 1);
        let simple = match e {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
            continue;
        }
        if e == b'u' {
            if let Some(hi) = hex4(s.get(i + 2..i + 6).unwrap_or(&[])) {
                let mut cp = hi;
                let mut used = 6;
                if (0xd800..0xdc00).contains(&hi) && at(s, i + 6) == b'\\' && at(s, i + 7) == b'u' {
                    if let Some(lo) = hex4(s.get(i + 8..i + 12).unwrap_or(&[])) {
                        if (0xdc00..0xe000).contains(&lo) {
                            cp = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                            used = 12;
                        }
                    }
                }
                let c = char::from_u32(cp).unwrap_or('\u{fffd}');
                let mut tmp = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                i += used;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
}

fn skip_ws(doc: &[u8], mut i: usize) -> usize {
    while matches!(at(doc, i), b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// Skips a container opened at `i` without looking inside; the index after
/// its end, or `None` when the document ends first.
fn skip_container(doc: &[u8], i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut j = i;
    while j < doc.len() {
        match at(doc, j) {
            b'"' => {
                let (e, _, term) = string_end(doc, j + 1);
                if !term {
                    return None;
                }
                j = e;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(j + 1);
                }
            }
            _ => {}
        }
        j += 1;
    }
    None
}

/// Hints for a scalar at the current position: (own, holder context).
fn scalar_hints(frames: &[Frame]) -> (Hint, Hint) {
    match frames.last() {
        Some(f) if f.obj => (f.key_hint, f.holder.union(f.inherited)),
        Some(f) => (f.holder, f.inherited),
        None => (Hint::NONE, Hint::NONE),
    }
}

/// Walks a JSON document (or several), reporting into `ctx`.
pub(crate) fn scan_json(ctx: &mut Ctx<'_>, doc: &[u8], stats: &mut ScanStats) {
    let doc = doc.strip_prefix(b"\xef\xbb\xbf").unwrap_or(doc);
    let max_depth = ctx.limits.max_json_depth;
    let mut frames: Vec<Frame> = Vec::with_capacity(max_depth.min(16));
    let mut scratch: Vec<u8> = Vec::new();
    let mut depth_hit = false;
    let end = walk(ctx, doc, max_depth, &mut frames, &mut scratch, &mut depth_hit);
    if depth_hit {
        stats.json_depth_limit_hit += 1;
    }
    match end {
        Walk::Complete => {}
        Walk::Truncated => stats.json_truncated += 1,
        Walk::Error(at) => {
            stats.json_parse_fallbacks += 1;
            tolerant(ctx, doc, at, &mut scratch);
        }
    }
}

fn walk(ctx: &mut Ctx<'_>, doc: &[u8], max_depth: usize, frames: &mut Vec<Frame>, scratch: &mut Vec<u8>, depth_hit: &mut bool) -> Walk {
    let mut expect = Expect::Value;
    let mut pos = 0usize;
    let mut values = 0usize;
    loop {
        if ctx.is_full() {
            return Walk::Complete;
        }
        pos = skip_ws(doc, pos);
        if pos >= doc.len() {
            return if frames.is_empty() && expect == Expect::Value && values > 0 { Walk::Complete } else { Walk::Truncated };
        }
        let b = at(doc, pos);
        match expect {
            Expect::Value | Expect::ValueOrEnd => {
                if expect == Expect::ValueOrEnd && b == b']' {
                    frames.pop();
                    pos += 1;
                    expect = after_value(frames, &mut values);
                    continue;
                }
                match b {
                    b'{' | b'[' => {
                        if frames.len() >= max_depth {
                            *depth_hit = true;
                            match skip_container(doc, pos) {
                                Some(e) => {
                                    pos = e;
                                    expect = after_value(frames, &mut values);
                                    continue;
                                }
                                None => return Walk::Truncated,
                            }
                        }
                        let (own, ctx_hint) = scalar_hints(frames);
                        frames.push(Frame {
                            obj: b == b'{',
                            key: (0, 0),
                            key_escaped: false,
                            key_hint: Hint::NONE,
                            holder: own,
                            inherited: ctx_hint.mask(Hint::INHERITED),
                        });
                        pos += 1;
                        expect = if b == b'{' { Expect::KeyOrEnd } else { Expect::ValueOrEnd };
                    }
                    b'"' => {
                        let (e, escaped, term) = string_end(doc, pos + 1);
                        let raw = doc.get(pos + 1..e).unwrap_or(&[]);
                        let value: &[u8] = if escaped {
                            unescape(raw, scratch);
                            scratch
                        } else {
                            raw
                        };
                        let (own, holder) = scalar_hints(frames);
                        text::scalar(ctx, own, holder, value, false, &Loc::Json(doc, frames));
                        if !term {
                            return Walk::Truncated;
                        }
                        pos = e + 1;
                        expect = after_value(frames, &mut values);
                    }
                    b'-' | b'0'..=b'9' => {
                        let len = doc.get(pos..).map_or(0, |s| s.iter().take_while(|&&c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')).count());
                        let e = pos + len;
                        if e >= doc.len() {
                            // a number cut by the sample end may be missing digits
                            return Walk::Truncated;
                        }
                        let (own, holder) = scalar_hints(frames);
                        text::scalar(ctx, own, holder, doc.get(pos..e).unwrap_or(&[]), true, &Loc::Json(doc, frames));
                        pos = e;
                        expect = after_value(frames, &mut values);
                    }
                    b't' | b'f' | b'n' => {
                        let lit: &[u8] = match b {
                            b't' => b"true",
                            b'f' => b"false",
                            _ => b"null",
                        };
                        let have = doc.get(pos..).unwrap_or(&[]);
                        if have.len() < lit.len() && lit.starts_with(have) {
                            return Walk::Truncated;
                        }
                        if !have.starts_with(lit) {
                            return Walk::Error(pos);
                        }
                        pos += lit.len();
                        expect = after_value(frames, &mut values);
                    }
                    _ => return Walk::Error(pos),
                }
            }
            Expect::KeyOrEnd | Expect::Key => {
                if b == b'}' && expect == Expect::KeyOrEnd {
                    frames.pop();
                    pos += 1;
                    expect = after_value(frames, &mut values);
                    continue;
                }
                if b != b'"' {
                    return Walk::Error(pos);
                }
                let (e, escaped, term) = string_end(doc, pos + 1);
                if !term {
                    return Walk::Truncated;
                }
                let key = doc.get(pos + 1..e).unwrap_or(&[]);
                if let Some(f) = frames.last_mut() {
                    f.key = (pos + 1, e);
                    f.key_escaped = escaped;
                    f.key_hint = keys::classify(key);
                }
                // a key can be data ({"alice@example.com": {...}}); its location shows as `*`
                if key.contains(&b'@') {
                    text::scan_text(ctx, key, &Loc::Json(doc, frames), TextOpts::default());
                }
                pos = e + 1;
                expect = Expect::Colon;
            }
            Expect::Colon => {
                if b != b':' {
                    return Walk::Error(pos);
                }
                pos += 1;
                expect = Expect::Value;
            }
            Expect::CommaOrEnd => {
                let obj = frames.last().is_some_and(|f| f.obj);
                match b {
                    b',' => {
                        pos += 1;
                        expect = if obj { Expect::Key } else { Expect::Value };
                    }
                    b'}' if obj => {
                        frames.pop();
                        pos += 1;
                        expect = after_value(frames, &mut values);
                    }
                    b']' if !obj => {
                        frames.pop();
                        pos += 1;
                        expect = after_value(frames, &mut values);
                    }
                    _ => return Walk::Error(pos),
                }
            }
        }
    }
}

fn after_value(frames: &[Frame], values: &mut usize) -> Expect {
    if frames.is_empty() {
        *values += 1;
        Expect::Value
    } else {
        Expect::CommaOrEnd
    }
}

/// The tolerant scan from `from`: quoted strings followed by `:` are keys,
/// a string or number right after a key is its value; everything else is
/// free text.
fn tolerant(ctx: &mut Ctx<'_>, doc: &[u8], from: usize, scratch: &mut Vec<u8>) {
    let mut i = from;
    let mut plain = from;
    let mut key: Option<(usize, usize)> = None;
    let text_opts = TextOpts { cards: true, ip_label: true };
    while i < doc.len() && !ctx.is_full() {
        let b = at(doc, i);
        match b {
            b'"' => {
                if plain < i {
                    text::scan_text(ctx, doc.get(plain..i).unwrap_or(&[]), &Loc::Text, text_opts);
                }
                let (e, escaped, term) = string_end(doc, i + 1);
                let raw = doc.get(i + 1..e).unwrap_or(&[]);
                let after = skip_ws(doc, e + 1);
                if term && at(doc, after) == b':' {
                    key = Some((i + 1, e));
                    i = after + 1;
                    plain = i;
                    continue;
                }
                let value: &[u8] = if escaped {
                    unescape(raw, scratch);
                    scratch
                } else {
                    raw
                };
                match key.take() {
                    Some((ks, ke)) => {
                        let k = doc.get(ks..ke).unwrap_or(&[]);
                        text::scalar(ctx, keys::classify(k), Hint::NONE, value, false, &Loc::JsonAny(k));
                    }
                    None => text::scan_text(ctx, value, &Loc::Text, text_opts),
                }
                i = e + 1;
                plain = i;
            }
            b'-' | b'0'..=b'9' if key.is_some() => {
                let len = doc.get(i..).map_or(0, |s| s.iter().take_while(|&&c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')).count());
                if let Some((ks, ke)) = key.take() {
                    let k = doc.get(ks..ke).unwrap_or(&[]);
                    text::scalar(ctx, keys::classify(k), Hint::NONE, doc.get(i..i + len).unwrap_or(&[]), true, &Loc::JsonAny(k));
                }
                i += len.max(1);
                plain = i;
            }
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            _ => {
                key = None;
                i += 1;
            }
        }
    }
    if plain < doc.len() && !ctx.is_full() {
        text::scan_text(ctx, doc.get(plain..).unwrap_or(&[]), &Loc::Text, text_opts);
    }
}
