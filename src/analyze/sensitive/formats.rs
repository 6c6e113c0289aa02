//! Body formats besides JSON: multipart form data (RFC 7578), XML/HTML
//! markup and CSV. Each gives values a name to be classified by — a field
//! name, an element or attribute name (or the short label just before, as in
//! `<th>Phone</th><td>…</td>`), a column header.

use super::keys::{self, Hint};
use super::text::{self, TextOpts};
use super::validate::{at, trim};
use super::{percent_decode, scan_media, Ctx, Loc, ScanStats};

/// Parts of one multipart body read at most.
pub(crate) const MAX_MULTIPART_PARTS: usize = 64;
/// Columns of a CSV header used as names.
const MAX_CSV_COLUMNS: usize = 64;
/// Text nodes at most this long can label the next one.
const MAX_LABEL: usize = 40;

fn find(h: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    memchr::memmem::find(h.get(from..)?, needle).map(|p| p + from)
}

/// A parameter of a header value (`boundary=…`, `name="…"`), quotes removed.
pub(crate) fn param<'v>(value: &'v [u8], name: &[u8]) -> Option<&'v [u8]> {
    for part in value.split(|&b| b == b';').skip(1) {
        let part = trim(part);
        let Some(eq) = part.iter().position(|&b| b == b'=') else { continue };
        if !trim(part.get(..eq)?).eq_ignore_ascii_case(name) {
            continue;
        }
        let v = trim(part.get(eq + 1..)?);
        let v = v.strip_prefix(b"\"").map_or(v, |s| s.strip_suffix(b"\"").unwrap_or(s));
        return Some(v);
    }
    None
}

// ---------------------------------------------------------------- multipart

/// A multipart body: fields are values under their names; files and typed
/// parts are read by their own media type, located under `field/`.
pub(crate) fn scan_multipart(ctx: &mut Ctx<'_>, ctype: &[u8], data: &[u8], stats: &mut ScanStats, nesting: usize) {
    let Some(boundary) = param(ctype, b"boundary").filter(|b| !b.is_empty() && b.len() <= 200) else {
        text::scan_text(ctx, data, &Loc::Text, TextOpts { cards: true, ip_label: true });
        return;
    };
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary);
    let Some(mut pos) = find(data, &delim, 0) else {
        text::scan_text(ctx, data, &Loc::Text, TextOpts { cards: true, ip_label: true });
        return;
    };
    let mut parts = 0usize;
    loop {
        if ctx.is_full() {
            return;
        }
        let after = pos + delim.len();
        if data.get(after..).is_some_and(|s| s.starts_with(b"--")) {
            return; // closing delimiter
        }
        let Some(line_end) = find(data, b"\n", after) else { return };
        let head_start = line_end + 1;
        let (head_end, body_start) = match (find(data, b"\r\n\r\n", head_start), find(data, b"\n\n", head_start)) {
            (Some(a), Some(b)) if b < a => (b, b + 2),
            (Some(a), _) => (a, a + 4),
            (None, Some(b)) => (b, b + 2),
            (None, None) => return, // cut inside the part headers
        };
        let head = data.get(head_start..head_end).unwrap_or(&[]);
        let next = find(data, &delim, body_start);
        let mut body_end = next.unwrap_or(data.len());
        if next.is_some() {
            if data.get(..body_end).is_some_and(|s| s.ends_with(b"\r\n")) {
                body_end -= 2;
            } else if data.get(..body_end).is_some_and(|s| s.ends_with(b"\n")) {
                body_end -= 1;
            }
        }
        let body = data.get(body_start..body_end.max(body_start)).unwrap_or(&[]);
        parts += 1;
        if parts > MAX_MULTIPART_PARTS {
            stats.multipart_parts_limit_hit += 1;
            return;
        }
        scan_part(ctx, head, body, stats, nesting);
        match next {
            Some(n) => pos = n,
            None => return,
        }
    }
}

fn scan_part(ctx: &mut Ctx<'_>, head: &[u8], body: &[u8], stats: &mut ScanStats, nesting: usize) {
    let mut name: &[u8] = b"part";
    let mut filename: Option<&[u8]> = None;
    let mut ptype: &[u8] = &[];
    for line in head.split(|&b| b == b'\n') {
        let line = trim(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (hname, hval) = (trim(line.get(..colon).unwrap_or(&[])), line.get(colon + 1..).unwrap_or(&[]));
        if hname.eq_ignore_ascii_case(b"content-disposition") {
            if let Some(n) = param(hval, b"name") {
                name = n;
            }
            filename = param(hval, b"filename");
        } else if hname.eq_ignore_ascii_case(b"content-type") {
            ptype = trim(hval);
        }
    }
    let plain_field = filename.is_none() && (ptype.is_empty() || ptype.len() >= 10 && ptype.get(..10).is_some_and(|p| p.eq_ignore_ascii_case(b"text/plain")));
    if plain_field {
        text::scalar(ctx, keys::classify(name), Hint::NONE, body, false, &Loc::Field(name));
        return;
    }
    // a file: its name can be data too
    if let Some(f) = filename.filter(|f| f.contains(&b'@')) {
        text::scan_text(ctx, f, &Loc::Field(name), TextOpts::default());
    }
    let saved = ctx.prefix.len();
    let mut shown = String::new();
    super::push_name(&mut shown, name);
    ctx.prefix.push_str(&shown);
    ctx.prefix.push('/');
    scan_media(ctx, ptype, body, stats, nesting + 1);
    ctx.prefix.truncate(saved);
}

// ---------------------------------------------------------------- markup

/// Decodes the XML/HTML character references of a text into `out`.
fn decode_entities(s: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0usize;
    while i < s.len() {
        let b = at(s, i);
        if b == b'&' {
            let semi = s.get(i..s.len().min(i + 12)).and_then(|w| w.iter().position(|&c| c == b';'));
            if let Some(semi) = semi {
                let ent = s.get(i + 1..i + semi).unwrap_or(&[]);
                let ch = match ent {
                    b"lt" => Some('<'),
                    b"gt" => Some('>'),
                    b"amp" => Some('&'),
                    b"quot" => Some('"'),
                    b"apos" => Some('\''),
                    b"nbsp" => Some(' '),
                    _ => {
                        let num = ent.strip_prefix(b"#");
                        num.and_then(|n| match n.first() {
                            Some(b'x') | Some(b'X') => u32::from_str_radix(std::str::from_utf8(n.get(1..)?).ok()?, 16).ok(),
                            _ => std::str::from_utf8(n).ok()?.parse::<u32>().ok(),
                        })
                        .and_then(char::from_u32)
                    }
                };
                if let Some(c) = ch {
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                    i += semi + 1;
                    continue;
                }
            }
        }
        out.push(b);
        i += 1;
    }
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'.' | b'-')
}

/// The local part of a qualified name (`soap:Body` → `Body`).
fn local_name(n: &[u8]) -> &[u8] {
    n.iter().rposition(|&b| b == b':').and_then(|p| n.get(p + 1..)).unwrap_or(n)
}

/// A byte range in the document.
type Span = (usize, usize);

/// One attribute: (name, value) ranges and the index after it.
fn next_attr(d: &[u8], mut i: usize) -> Option<(Span, Span, usize)> {
    while matches!(at(d, i), b' ' | b'\t' | b'\r' | b'\n' | b'/') {
        i += 1;
    }
    let ns = i;
    while i < d.len() && !matches!(at(d, i), b' ' | b'\t' | b'\r' | b'\n' | b'=' | b'>' | b'/') {
        i += 1;
    }
    if i == ns {
        return None;
    }
    let name = (ns, i);
    while matches!(at(d, i), b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    if at(d, i) != b'=' {
        return Some((name, (i, i), i));
    }
    i += 1;
    while matches!(at(d, i), b' ' | b'\t' | b'\r' | b'\n') {
        i += 1;
    }
    let q = at(d, i);
    if q == b'"' || q == b'\'' {
        let vs = i + 1;
        let ve = d.get(vs..).and_then(|s| s.iter().position(|&b| b == q)).map_or(d.len(), |p| vs + p);
        Some((name, (vs, ve), (ve + 1).min(d.len())))
    } else {
        let vs = i;
        while i < d.len() && !matches!(at(d, i), b' ' | b'\t' | b'\r' | b'\n' | b'>') {
            i += 1;
        }
        Some((name, (vs, i), i))
    }
}

/// Attributes whose values are links or text worth a token scan besides named data.
fn scan_attr_text(ctx: &mut Ctx<'_>, own: Hint, v: &[u8], name: &[u8], scratch: &mut Vec<u8>) {
    let value: &[u8] = if v.contains(&b'&') {
        decode_entities(v, scratch);
        scratch
    } else {
        v
    };
    text::scalar(ctx, own, Hint::NONE, &percent_decode(value, false), false, &Loc::Xml(name));
}

/// Reads the attributes of the tag whose name ends at `i`; returns the index after `>`.
fn scan_tag_attrs(ctx: &mut Ctx<'_>, d: &[u8], i: usize, scratch: &mut Vec<u8>) -> usize {
    // first pass: the form control's name and type label its value
    let mut field: Option<(usize, usize)> = None;
    let mut password = false;
    let mut j = i;
    let mut guard = 0;
    while let Some((n, v, e)) = next_attr(d, j) {
        let an = d.get(n.0..n.1).unwrap_or(&[]);
        let av = d.get(v.0..v.1).unwrap_or(&[]);
        if an.eq_ignore_ascii_case(b"name") || (an.eq_ignore_ascii_case(b"id") && field.is_none()) {
            field = Some(v);
        }
        if an.eq_ignore_ascii_case(b"type") && av.eq_ignore_ascii_case(b"password") {
            password = true;
        }
        j = e.max(j + 1);
        guard += 1;
        if guard > 256 || at(d, j) == b'>' {
            break;
        }
    }
    let mut j = i;
    let mut guard = 0;
    while let Some((n, v, e)) = next_attr(d, j) {
        if ctx.is_full() {
            break;
        }
        let an = d.get(n.0..n.1).unwrap_or(&[]);
        let av = d.get(v.0..v.1).unwrap_or(&[]);
        if !av.is_empty() {
            if an.eq_ignore_ascii_case(b"value") {
                let fname = field.and_then(|f| d.get(f.0..f.1)).unwrap_or(an);
                let mut own = keys::classify(fname);
                if password {
                    own = own.union(Hint(Hint::PASSWORD));
                }
                scan_attr_text(ctx, own, av, fname, scratch);
            } else if !(an.eq_ignore_ascii_case(b"name") || an.eq_ignore_ascii_case(b"id") || an.eq_ignore_ascii_case(b"type") || an.eq_ignore_ascii_case(b"class") || an.eq_ignore_ascii_case(b"style")) {
                let own = keys::classify(local_name(an));
                scan_attr_text(ctx, own, av, local_name(an), scratch);
            }
        }
        j = e.max(j + 1);
        guard += 1;
        if guard > 256 || at(d, j) == b'>' {
            break;
        }
    }
    d.get(j..).and_then(|s| s.iter().position(|&b| b == b'>')).map_or(d.len(), |p| j + p + 1)
}

/// Reads XML or HTML: text nodes under their element's name (or the label
/// before them), attribute values under their names.
pub(crate) fn scan_markup(ctx: &mut Ctx<'_>, d: &[u8]) {
    let n = d.len();
    let mut i = 0usize;
    let mut elem: (usize, usize) = (0, 0);
    let mut label = Hint::NONE;
    let mut scratch = Vec::new();
    let mut attr_scratch = Vec::new();
    while i < n && !ctx.is_full() {
        let lt = d.get(i..).and_then(|s| s.iter().position(|&b| b == b'<')).map_or(n, |p| i + p);
        let txt = trim(d.get(i..lt).unwrap_or(&[]));
        if !txt.is_empty() {
            text_node(ctx, d, elem, label, txt, &mut scratch);
            label = if txt.len() <= MAX_LABEL && txt.iter().any(u8::is_ascii_alphabetic) {
                keys::classify(txt).mask(Hint::LABEL)
            } else {
                Hint::NONE
            };
        }
        if lt >= n {
            return;
        }
        let rest = d.get(lt..).unwrap_or(&[]);
        if rest.starts_with(b"<!--") {
            i = find(d, b"-->", lt + 4).map_or(n, |p| p + 3);
        } else if rest.starts_with(b"<![CDATA[") {
            let end = find(d, b"]]>", lt + 9).unwrap_or(n);
            let content = trim(d.get(lt + 9..end).unwrap_or(&[]));
            if !content.is_empty() {
                text_node(ctx, d, elem, label, content, &mut scratch);
            }
            i = (end + 3).min(n);
        } else if rest.starts_with(b"<?") || rest.starts_with(b"<!") || rest.starts_with(b"</") {
            if rest.starts_with(b"</") {
                elem = (0, 0);
            }
            i = d.get(lt..).and_then(|s| s.iter().position(|&b| b == b'>')).map_or(n, |p| lt + p + 1);
        } else {
            let ns = lt + 1;
            let mut ne = ns;
            while ne < n && is_name_char(at(d, ne)) {
                ne += 1;
            }
            if ne == ns {
                // a lone '<' in text
                i = lt + 1;
                continue;
            }
            let end = scan_tag_attrs(ctx, d, ne, &mut attr_scratch);
            let self_closing = end >= 2 && at(d, end - 2) == b'/';
            let local = local_name(d.get(ns..ne).unwrap_or(&[]));
            let off = ne - local.len();
            elem = if self_closing { (0, 0) } else { (off, ne) };
            i = end;
        }
    }
}

fn text_node(ctx: &mut Ctx<'_>, d: &[u8], elem: (usize, usize), label: Hint, txt: &[u8], scratch: &mut Vec<u8>) {
    let name = d.get(elem.0..elem.1).unwrap_or(&[]);
    let own = keys::classify(name).union(label);
    let value: &[u8] = if txt.contains(&b'&') {
        decode_entities(txt, scratch);
        scratch
    } else {
        txt
    };
    let loc = if name.is_empty() { Loc::Text } else { Loc::Xml(name) };
    text::scalar(ctx, own, Hint::NONE, value, false, &loc);
}

// ---------------------------------------------------------------- CSV

/// Splits one CSV line into cells (quoted cells keep doubled quotes).
fn cells(line: &[u8], delim: u8) -> impl Iterator<Item = &[u8]> {
    let mut i = 0usize;
    let mut done = line.is_empty();
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let start = i;
        if at(line, i) == b'"' {
            let mut j = i + 1;
            loop {
                match line.get(j) {
                    None => break,
                    Some(b'"') if at(line, j + 1) == b'"' => j += 2,
                    Some(b'"') => break,
                    Some(_) => j += 1,
                }
            }
            let cell = line.get(start + 1..j.min(line.len())).unwrap_or(&[]);
            let after = line.get(j..).and_then(|s| s.iter().position(|&b| b == delim)).map(|p| j + p);
            match after {
                Some(p) => i = p + 1,
                None => done = true,
            }
            return Some(cell);
        }
        match line.get(i..).and_then(|s| s.iter().position(|&b| b == delim)) {
            Some(p) => {
                i = i + p + 1;
                line.get(start..start + p)
            }
            None => {
                done = true;
                line.get(start..)
            }
        }
    })
}

fn header_cell_ok(c: &[u8]) -> bool {
    let c = trim(c);
    !c.is_empty() && c.len() <= 64 && c.iter().any(u8::is_ascii_alphabetic) && !c.contains(&b'@') && c.iter().filter(|b| b.is_ascii_digit()).count() <= 4
}

/// Reads CSV: with a header row, each cell is a value under its column name.
pub(crate) fn scan_csv(ctx: &mut Ctx<'_>, d: &[u8]) {
    let fallback = TextOpts { cards: true, ip_label: true };
    let first_end = d.iter().position(|&b| b == b'\n').unwrap_or(d.len());
    let first = d.get(..first_end).unwrap_or(&[]);
    let first = first.strip_suffix(b"\r").unwrap_or(first);
    let delim = [b',', b';', b'\t', b'|'].into_iter().max_by_key(|&c| first.iter().filter(|&&b| b == c).count()).unwrap_or(b',');
    let header: Vec<&[u8]> = cells(first, delim).take(MAX_CSV_COLUMNS).map(trim).collect();
    // a header names at least one column we know, so that a first row of
    // data ("Ava,Smith,Springfield") is never shown as column names
    let known = header.iter().any(|c| keys::classify(c) != Hint::NONE || c.to_ascii_lowercase().windows(4).any(|w| w == b"mail"));
    if header.len() < 2 || !known || !header.iter().all(|c| header_cell_ok(c)) {
        text::scan_text(ctx, d, &Loc::Text, fallback);
        return;
    }
    let hints: Vec<Hint> = header.iter().map(|c| keys::classify(c)).collect();
    let body = d.get((first_end + 1).min(d.len())..).unwrap_or(&[]);
    for line in body.split(|&b| b == b'\n') {
        if ctx.is_full() {
            return;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        for (k, cell) in cells(line, delim).enumerate() {
            match (header.get(k), hints.get(k)) {
                (Some(name), Some(&h)) => text::scalar(ctx, h, Hint::NONE, cell, false, &Loc::Csv(name)),
                _ => text::scan_text(ctx, cell, &Loc::Text, fallback),
            }
        }
    }
}
