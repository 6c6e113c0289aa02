//! Validators: the shape, range and checksum of each kind.
//!
//! The `*_at` functions look for a value that *starts* at byte `i` of a text
//! and return where it ends; the caller has already checked that `i` is at a
//! token boundary. The `*_value` functions judge a whole value found under a
//! telling name. All work on bytes (the patterns are ASCII), never allocate on
//! a miss, and never index out of bounds.

use std::net::IpAddr;

use base64::Engine as _;

/// Byte `i` of `t`, or 0 past the end (0 matches no class used here).
#[inline]
pub(crate) fn at(t: &[u8], i: usize) -> u8 {
    t.get(i).copied().unwrap_or(0)
}

#[inline]
pub(crate) fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Whether `t[i..]` starts with `p`, ignoring ASCII case.
pub(crate) fn starts_with_ci(t: &[u8], i: usize, p: &[u8]) -> bool {
    t.get(i..i.saturating_add(p.len())).is_some_and(|s| s.eq_ignore_ascii_case(p))
}

pub(crate) fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    v.get(start..end).unwrap_or(&[])
}

/// Up to 19 ASCII digits, on the stack.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Digits {
    buf: [u8; 19],
    n: usize,
}

impl Digits {
    pub fn new() -> Digits {
        Digits { buf: [0; 19], n: 0 }
    }
    /// Appends a digit; false when full.
    pub fn push(&mut self, d: u8) -> bool {
        match self.buf.get_mut(self.n) {
            Some(slot) => {
                *slot = d;
                self.n += 1;
                true
            }
            None => false,
        }
    }
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.n).unwrap_or(&[])
    }
}

fn num(d: &[u8]) -> u32 {
    d.iter().fold(0u32, |a, &b| a.saturating_mul(10).saturating_add(u32::from(b.wrapping_sub(b'0'))))
}

// ---------------------------------------------------------------- payment cards

pub(crate) const CARD_MIN_DIGITS: usize = 13;
pub(crate) const CARD_MAX_DIGITS: usize = 19;

/// Luhn (mod 10) over ASCII digits.
pub(crate) fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, &b) in d.iter().rev().enumerate() {
        let mut x = u32::from(b.wrapping_sub(b'0'));
        if x > 9 {
            return false;
        }
        if k % 2 == 1 {
            x *= 2;
            if x > 9 {
                x -= 9;
            }
        }
        sum += x;
    }
    !d.is_empty() && sum % 10 == 0
}

/// Whether the issuer prefix and the length agree (Visa, Mastercard, Amex,
/// Discover, JCB, Diners Club, UnionPay).
pub(crate) fn card_brand_fits(d: &[u8]) -> bool {
    let n = d.len();
    let p = |k: usize| num(d.get(..k).unwrap_or(&[]));
    let (p1, p2, p3, p4) = (p(1), p(2), p(3), p(4));
    match p1 {
        4 => matches!(n, 13 | 16 | 19),
        5 => (51..=55).contains(&p2) && n == 16,
        2 => (2221..=2720).contains(&p4) && n == 16,
        3 => {
            (matches!(p2, 34 | 37) && n == 15)
                || ((3528..=3589).contains(&p4) && (16..=19).contains(&n))
                || (((300..=305).contains(&p3) || matches!(p2, 36 | 38 | 39) || p4 == 3095) && (14..=19).contains(&n))
        }
        6 => {
            (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3)) && (16..=19).contains(&n)
                || p2 == 62 && (16..=19).contains(&n)
        }
        _ => false,
    }
}

/// Whether all bytes are equal (true for fewer than two).
fn all_same(d: &[u8]) -> bool {
    d.first().is_none_or(|f| d.iter().all(|b| b == f))
}

/// All digits equal, or each one a step up or down from the last (`0123…`).
fn trivial_sequence(d: &[u8]) -> bool {
    let pairs = || d.iter().zip(d.iter().skip(1));
    let up = pairs().all(|(a, b)| (a.wrapping_sub(b'0') + 1) % 10 == b.wrapping_sub(b'0'));
    let down = pairs().all(|(a, b)| (b.wrapping_sub(b'0') + 1) % 10 == a.wrapping_sub(b'0'));
    all_same(d) || up || down
}

/// A card number: 13–19 digits, brand prefix consistent with the length, Luhn valid, not a trivial sequence.
pub(crate) fn valid_card(d: &[u8]) -> bool {
    (CARD_MIN_DIGITS..=CARD_MAX_DIGITS).contains(&d.len())
        && d.iter().all(u8::is_ascii_digit)
        && card_brand_fits(d)
        && luhn(d)
        && !trivial_sequence(d)
}

/// A card number starting at `i`: digits, optionally in groups of 3–6
/// separated by one space or dash (the same one throughout). When a longer
/// run fails, shorter runs ending at a group boundary are tried. Returns the
/// end and the digits.
pub(crate) fn card_at(t: &[u8], i: usize) -> Option<(usize, Digits)> {
    let mut d = Digits::new();
    let mut j = i;
    let mut sep: Option<u8> = None;
    let mut group = 0usize;
    // group ends: (byte end, digit count)
    let mut ends: [(usize, usize); 8] = [(0, 0); 8];
    let mut n_ends = 0usize;
    while j < t.len() {
        let b = at(t, j);
        if b.is_ascii_digit() {
            if !d.push(b) {
                return None; // more than 19 digits: not a card
            }
            group += 1;
            j += 1;
        } else if let Some(end) = ends.get_mut(n_ends).filter(|_| {
            (b == b' ' || b == b'-') && (3..=6).contains(&group) && at(t, j + 1).is_ascii_digit() && sep.is_none_or(|s| s == b)
        }) {
            *end = (j, d.n);
            n_ends += 1;
            sep = Some(b);
            group = 0;
            j += 1;
        } else {
            break;
        }
    }
    let next = at(t, j);
    let clean_end = !(next.is_ascii_alphanumeric() || (next == b'.' && at(t, j + 1).is_ascii_digit()));
    if clean_end && valid_card(d.as_slice()) {
        return Some((j, d));
    }
    // a trailing group may belong to the next token ("4111 1111 1111 1111 12")
    for &(end, count) in ends.iter().take(n_ends).rev() {
        let prefix = d.as_slice().get(..count).unwrap_or(&[]);
        if valid_card(prefix) {
            let mut out = Digits::new();
            for &b in prefix {
                out.push(b);
            }
            return Some((end, out));
        }
    }
    None
}

// ---------------------------------------------------------------- IBAN

/// IBAN length by country (ISO 13616 registry: SEPA and the other common ones).
pub(crate) fn iban_len(cc: &[u8]) -> Option<usize> {
    const TABLE: &[(&[u8; 2], u8)] = &[
        (b"AD", 24), (b"AE", 23), (b"AL", 28), (b"AT", 20), (b"AZ", 28), (b"BA", 20), (b"BE", 16), (b"BG", 22),
        (b"BH", 22), (b"BR", 29), (b"BY", 28), (b"CH", 21), (b"CR", 22), (b"CY", 28), (b"CZ", 24), (b"DE", 22),
        (b"DK", 18), (b"DO", 28), (b"EE", 20), (b"EG", 29), (b"ES", 24), (b"FI", 18), (b"FO", 18), (b"FR", 27),
        (b"GB", 22), (b"GE", 22), (b"GI", 23), (b"GL", 18), (b"GR", 27), (b"GT", 28), (b"HR", 21), (b"HU", 28),
        (b"IE", 22), (b"IL", 23), (b"IQ", 23), (b"IS", 26), (b"IT", 27), (b"JO", 30), (b"KW", 30), (b"KZ", 20),
        (b"LB", 28), (b"LC", 32), (b"LI", 21), (b"LT", 20), (b"LU", 20), (b"LV", 21), (b"MC", 27), (b"MD", 24),
        (b"ME", 22), (b"MK", 19), (b"MR", 27), (b"MT", 31), (b"MU", 30), (b"NL", 18), (b"NO", 15), (b"PK", 24),
        (b"PL", 28), (b"PS", 29), (b"PT", 25), (b"QA", 29), (b"RO", 24), (b"RS", 22), (b"SA", 24), (b"SC", 31),
        (b"SE", 24), (b"SI", 19), (b"SK", 24), (b"SM", 27), (b"ST", 25), (b"SV", 28), (b"TL", 23), (b"TN", 24),
        (b"TR", 26), (b"UA", 29), (b"VA", 22), (b"VG", 24), (b"XK", 20),
    ];
    TABLE.iter().find(|(c, _)| c.as_slice() == cc).map(|(_, n)| usize::from(*n))
}

/// ISO 7064 mod 97-10 over a compact upper-case IBAN.
pub(crate) fn iban_checksum_ok(iban: &[u8]) -> bool {
    if iban.len() < 5 {
        return false;
    }
    let (head, tail) = iban.split_at(4);
    let mut rem = 0u32;
    for &b in tail.iter().chain(head) {
        match b {
            b'0'..=b'9' => rem = (rem * 10 + u32::from(b - b'0')) % 97,
            b'A'..=b'Z' => rem = (rem * 100 + u32::from(b - b'A') + 10) % 97,
            _ => return false,
        }
    }
    rem == 1
}

/// A compact IBAN: up to 34 characters on the stack.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Iban {
    buf: [u8; 34],
    n: usize,
}

impl Iban {
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.n).unwrap_or(&[])
    }
}

/// An IBAN starting at `i`: country, check digits, BBAN of the country's
/// length, compact or printed in groups of four; mod 97 must be 1.
pub(crate) fn iban_at(t: &[u8], i: usize) -> Option<(usize, Iban)> {
    let cc = t.get(i..i + 2)?;
    if !cc.iter().all(u8::is_ascii_uppercase) || !at(t, i + 2).is_ascii_digit() || !at(t, i + 3).is_ascii_digit() {
        return None;
    }
    let want = iban_len(cc)?;
    let mut out = Iban { buf: [0; 34], n: 0 };
    let mut j = i;
    while out.n < want {
        let b = at(t, j);
        if b.is_ascii_uppercase() || b.is_ascii_digit() {
            *out.buf.get_mut(out.n)? = b;
            out.n += 1;
            j += 1;
        } else if b == b' ' && out.n % 4 == 0 && out.n > 0 {
            j += 1;
        } else {
            return None;
        }
    }
    if at(t, j).is_ascii_alphanumeric() {
        return None;
    }
    let check = num(out.as_slice().get(2..4)?);
    if !(2..=98).contains(&check) || !iban_checksum_ok(out.as_slice()) {
        return None;
    }
    Some((j, out))
}

// ---------------------------------------------------------------- SSN

fn ssn_parts_ok(area: u32, group: u32, serial: u32) -> bool {
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// A US SSN `AAA-GG-SSSS` starting at `i`.
pub(crate) fn ssn_at(t: &[u8], i: usize) -> Option<usize> {
    let s = t.get(i..i + 11)?;
    let shape = s.iter().enumerate().all(|(k, &b)| if k == 3 || k == 6 { b == b'-' } else { b.is_ascii_digit() });
    if !shape {
        return None;
    }
    let next = at(t, i + 11);
    if next.is_ascii_alphanumeric() || next == b'-' || (next == b'.' && at(t, i + 12).is_ascii_digit()) {
        return None;
    }
    ssn_parts_ok(num(s.get(0..3)?), num(s.get(4..6)?), num(s.get(7..11)?)).then_some(i + 11)
}

/// A whole value under an SSN name: nine digits, or `AAA-GG-SSSS` / `AAA GG SSSS`.
pub(crate) fn ssn_value(v: &[u8]) -> bool {
    let v = trim(v);
    let mut d = Digits::new();
    match v.len() {
        9 if v.iter().all(u8::is_ascii_digit) => v.iter().for_each(|&b| {
            d.push(b);
        }),
        11 if matches!((at(v, 3), at(v, 6)), (b'-', b'-') | (b' ', b' ')) => {
            for (k, &b) in v.iter().enumerate() {
                if k == 3 || k == 6 {
                    continue;
                }
                if !b.is_ascii_digit() {
                    return false;
                }
                d.push(b);
            }
        }
        _ => return false,
    }
    let s = d.as_slice();
    ssn_parts_ok(num(s.get(0..3).unwrap_or(&[])), num(s.get(3..5).unwrap_or(&[])), num(s.get(5..9).unwrap_or(&[])))
}

// ---------------------------------------------------------------- phone

const PHONE_MIN_DIGITS: usize = 7;
const PHONE_MAX_DIGITS: usize = 15;
/// International numbers in free text need at least this many digits.
const PHONE_TEXT_MIN_DIGITS: usize = 8;
/// Bytes a formatted phone number spans at most.
const PHONE_MAX_SPAN: usize = 32;

/// An international number in free text, starting at the `+` at `i`: a
/// country code, 8–15 digits in all, and at least one separator (space, `-`,
/// `.`, parentheses) — `+1-202-555-0111`, `+44 20 7946 0958`.
pub(crate) fn phone_plus_at(t: &[u8], i: usize) -> Option<usize> {
    if at(t, i) != b'+' || !matches!(at(t, i + 1), b'1'..=b'9') {
        return None;
    }
    let mut j = i + 1;
    let mut digits = 0usize;
    let mut seps = 0usize;
    let mut last_digit_end = j;
    let mut prev_sep = false;
    while j < t.len() && j - i <= PHONE_MAX_SPAN {
        let b = at(t, j);
        if b.is_ascii_digit() {
            digits += 1;
            if digits > PHONE_MAX_DIGITS {
                return None;
            }
            last_digit_end = j + 1;
            prev_sep = false;
        } else if matches!(b, b' ' | b'-' | b'.' | b'(' | b')') {
            // "(0) 20" and ") " are fine, but not runs of separators
            if prev_sep && !matches!(b, b'(' | b' ') && at(t, j - 1) != b')' {
                break;
            }
            if !at(t, j + 1).is_ascii_digit() && !matches!(at(t, j + 1), b'(' | b' ') {
                break;
            }
            seps += 1;
            prev_sep = true;
        } else {
            break;
        }
        j += 1;
    }
    let next = at(t, last_digit_end);
    let clean = !(next.is_ascii_alphanumeric() || (next == b'.' && at(t, last_digit_end + 1).is_ascii_digit()));
    (clean && seps > 0 && (PHONE_TEXT_MIN_DIGITS..=PHONE_MAX_DIGITS).contains(&digits)).then_some(last_digit_end)
}

/// A whole value under a phone name: 7–15 digits with the usual separators,
/// an optional leading `+` and extension; not a date, not one digit repeated.
pub(crate) fn phone_value(v: &[u8]) -> bool {
    let v = trim(v);
    if v.is_empty() || v.len() > 40 || is_date(v) {
        return false;
    }
    // cut an extension: "x123", "ext. 123", "#123"
    let mut end = v.len();
    for (k, &b) in v.iter().enumerate() {
        if b == b'x' || b == b'X' || b == b'#' || b == b'e' || b == b'E' {
            end = k;
            break;
        }
    }
    let body = trim(v.get(..end).unwrap_or(&[]));
    let mut digits = Digits::new();
    let mut count = 0usize;
    for (k, &b) in body.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                count += 1;
                digits.push(b);
            }
            b'+' if k == 0 => {}
            b' ' | b'-' | b'.' | b'(' | b')' | b'/' => {}
            _ => return false,
        }
    }
    let d = digits.as_slice();
    (PHONE_MIN_DIGITS..=PHONE_MAX_DIGITS).contains(&count) && !all_same(d)
}

// ---------------------------------------------------------------- e-mail

const EMAIL_MAX_LOCAL: usize = 64;
const EMAIL_MAX_DOMAIN: usize = 253;

/// File extensions that look like top-level domains after an `@` in asset names (`icon@2x.png`).
const FILE_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff", "css", "js", "mjs", "map", "json",
    "xml", "html", "htm", "php", "aspx", "jsp", "txt", "pdf", "gz", "tar", "zip", "woff", "woff2", "ttf", "eot",
    "otf", "mp4", "mp3", "wav", "avi", "webm", "mov", "csv", "yml", "yaml", "toml", "lock", "exe", "dll", "dylib",
    "java", "avif", "heic",
];

fn is_local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// An e-mail address around the `@` at `at_pos`: returns (start, end).
/// Local part of common characters (no leading, trailing or double dot);
/// a domain of at least two labels and an alphabetic TLD of two letters or
/// more that is not a file extension. Not URL user information
/// (`scheme://user@host`, `user:password@host`), except `mailto:`.
pub(crate) fn email_at(t: &[u8], at_pos: usize) -> Option<(usize, usize)> {
    // local part, backwards
    let mut s = at_pos;
    while s > 0 && is_local_char(at(t, s - 1)) && at_pos - s < EMAIL_MAX_LOCAL + 1 {
        s -= 1;
    }
    if s == at_pos || at_pos - s > EMAIL_MAX_LOCAL {
        return None;
    }
    // a local part may not start with a dot; skip leading dots and dashes
    while s < at_pos && matches!(at(t, s), b'.' | b'-' | b'+') {
        s += 1;
    }
    let local = t.get(s..at_pos)?;
    if local.is_empty() || local.ends_with(b".") || local.windows(2).any(|w| w == b"..") {
        return None;
    }
    if s > 0 {
        match at(t, s - 1) {
            b':' if !(s >= 7 && starts_with_ci(t, s - 7, b"mailto:")) => return None,
            b'/' | b'@' | b'\\' => return None,
            _ => {}
        }
    }
    // domain, forwards
    let mut e = at_pos + 1;
    let mut label_start = e;
    let mut labels = 0usize;
    let mut last_label = (e, e);
    let mut first_label = (e, e);
    loop {
        let b = at(t, e);
        if b.is_ascii_alphanumeric() || b == b'-' {
            e += 1;
            if e - at_pos > EMAIL_MAX_DOMAIN {
                return None;
            }
            continue;
        }
        let label = t.get(label_start..e)?;
        if label.is_empty() || label.len() > 63 || label.starts_with(b"-") || label.ends_with(b"-") {
            // an empty label ends the domain ("a@b.com." at a sentence end)
            if label.is_empty() && labels >= 2 {
                e = label_start.saturating_sub(1);
                break;
            }
            return None;
        }
        if labels == 0 {
            first_label = (label_start, e);
        }
        labels += 1;
        last_label = (label_start, e);
        if b == b'.' && (at(t, e + 1).is_ascii_alphanumeric()) {
            e += 1;
            label_start = e;
            continue;
        }
        break;
    }
    if labels < 2 {
        return None;
    }
    let tld = t.get(last_label.0..last_label.1)?;
    if tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    if FILE_EXTENSIONS.iter().any(|x| x.as_bytes().eq_ignore_ascii_case(tld)) {
        return None;
    }
    // "@2x", "@3x" resolution suffixes
    let first = t.get(first_label.0..first_label.1)?;
    if first.strip_suffix(b"x").is_some_and(|n| !n.is_empty() && n.iter().all(u8::is_ascii_digit)) {
        return None;
    }
    if at(t, e) == b'@' {
        return None;
    }
    Some((s, e))
}

// ---------------------------------------------------------------- dates

fn month_name(w: &[u8]) -> Option<u32> {
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    if w.len() < 3 || w.len() > 9 {
        return None;
    }
    let head = w.get(..3)?;
    let m = MONTHS.iter().position(|m| m.as_bytes().eq_ignore_ascii_case(head))?;
    u32::try_from(m + 1).ok()
}

fn ymd_ok(y: u32, m: u32, d: u32) -> bool {
    (1900..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d)
}

/// A calendar date in a common format: `1990-05-23` (with an optional time),
/// `1990/05/23`, `23.05.1990`, `05/23/1990`, `23-05-1990`, `19900523`,
/// `23 May 1990`, `May 23, 1990`, `23-May-1990`. Years 1900–2100.
pub(crate) fn is_date(v: &[u8]) -> bool {
    let v = trim(v);
    if v.len() < 8 || v.len() > 40 {
        return false;
    }
    if v.len() == 8 && v.iter().all(u8::is_ascii_digit) {
        let part = |r: std::ops::Range<usize>| num(v.get(r).unwrap_or(&[]));
        return ymd_ok(part(0..4), part(4..6), part(6..8));
    }
    // up to three tokens: digit runs or words, separated by - / . , or spaces;
    // each is (start, end, digits, the separator after it)
    let mut toks: [(usize, usize, bool, u8); 3] = [(0, 0, false, 0); 3];
    let mut n = 0usize;
    let mut i = 0usize;
    for tok in toks.iter_mut() {
        if i >= v.len() {
            break;
        }
        let b = at(v, i);
        let start = i;
        if b.is_ascii_digit() {
            while at(v, i).is_ascii_digit() {
                i += 1;
            }
            *tok = (start, i, true, 0);
        } else if b.is_ascii_alphabetic() {
            while at(v, i).is_ascii_alphabetic() {
                i += 1;
            }
            *tok = (start, i, false, 0);
        } else {
            return false;
        }
        n += 1;
        if n == 3 {
            break;
        }
        // separator: one of - / . or a space, optionally ", "
        let s = at(v, i);
        if !matches!(s, b'-' | b'/' | b'.' | b' ' | b',') {
            return false;
        }
        tok.3 = s;
        i += 1;
        if s == b',' && at(v, i) == b' ' {
            i += 1;
        }
        if s == b'.' && at(v, i) == b' ' {
            i += 1;
        }
    }
    if n < 3 {
        return false;
    }
    // what follows the date must be a time or nothing
    let rest = v.get(i..).unwrap_or(&[]);
    if !(rest.is_empty() || matches!(at(rest, 0), b'T' | b' ' | b't')) {
        return false;
    }
    let [t0, t1, t2] = toks;
    let span = |(s, e, _, _): (usize, usize, bool, u8)| v.get(s..e).unwrap_or(&[]);
    let (a, b, c) = (span(t0), span(t1), span(t2));
    match (t0.2, t1.2, t2.2) {
        (true, true, true) => {
            let same_sep = t0.3 == t1.3 && matches!(t0.3, b'-' | b'/' | b'.');
            if !same_sep {
                return false;
            }
            if a.len() == 4 && b.len() <= 2 && c.len() <= 2 {
                return ymd_ok(num(a), num(b), num(c));
            }
            if a.len() <= 2 && b.len() <= 2 && c.len() == 4 {
                let (x, y, z) = (num(a), num(b), num(c));
                return ymd_ok(z, y, x) || ymd_ok(z, x, y);
            }
            false
        }
        (true, false, true) => {
            a.len() <= 2 && c.len() == 4 && month_name(b).is_some_and(|m| ymd_ok(num(c), m, num(a)))
        }
        (false, true, true) => {
            b.len() <= 2 && c.len() == 4 && month_name(a).is_some_and(|m| ymd_ok(num(c), m, num(b)))
        }
        _ => false,
    }
}

// ---------------------------------------------------------------- IP addresses

/// Whether an address is worth reporting (not unspecified, loopback or broadcast).
fn reportable_ip(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_loopback() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_loopback()),
    }
}

/// One address, possibly with brackets, a port or an IPv6 zone.
fn parse_one_ip(v: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(trim(v)).ok()?;
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let inner = rest.split(']').next()?;
        return inner.split('%').next()?.parse().ok();
    }
    if let Some((host, port)) = s.rsplit_once(':') {
        if host.contains('.') && !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) {
            return host.parse().ok();
        }
    }
    s.split('%').next()?.parse().ok()
}

/// A whole value under an IP name: an address or a list of them (`a, b`);
/// the first reportable one.
pub(crate) fn ip_value(v: &[u8]) -> Option<IpAddr> {
    for part in v.split(|&b| b == b',' || b == b' ').filter(|p| !p.is_empty()).take(8) {
        if let Some(ip) = parse_one_ip(part) {
            if reportable_ip(&ip) {
                return Some(ip);
            }
        }
    }
    None
}

/// A dotted-quad IPv4 address starting at `i` (each part 0–255, no leading
/// zeros, not followed by a fifth part as in version strings).
pub(crate) fn ipv4_at(t: &[u8], i: usize) -> Option<(usize, IpAddr)> {
    let mut j = i;
    let mut octets = [0u8; 4];
    for (k, o) in octets.iter_mut().enumerate() {
        let start = j;
        while at(t, j).is_ascii_digit() && j - start < 4 {
            j += 1;
        }
        let part = t.get(start..j)?;
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part.starts_with(b"0")) {
            return None;
        }
        *o = u8::try_from(num(part)).ok()?;
        if k < 3 {
            if at(t, j) != b'.' {
                return None;
            }
            j += 1;
        }
    }
    let next = at(t, j);
    if next.is_ascii_alphanumeric() || (next == b'.' && at(t, j + 1).is_ascii_digit()) {
        return None;
    }
    let ip = IpAddr::from(octets);
    reportable_ip(&ip).then_some((j, ip))
}

// ---------------------------------------------------------------- JWT

const JWT_MAX_LEN: usize = 16 * 1024;
const JWT_MAX_HEADER: usize = 2048;

/// The end of the run of token characters (base64url and `.`) from `i`,
/// bounded: where a failed JWT candidate lets the scan resume.
pub(crate) fn token_run_end(t: &[u8], i: usize) -> usize {
    i + t.get(i..).map_or(0, |s| s.iter().take(JWT_MAX_LEN + 1).take_while(|&&b| is_b64url(b) || b == b'.').count())
}

/// A JWS compact token starting at `i`: three base64url parts (the last may
/// be empty) whose first decodes to a JSON object with `alg`.
pub(crate) fn jwt_at(t: &[u8], i: usize) -> Option<usize> {
    if !t.get(i..)?.starts_with(b"eyJ") {
        return None;
    }
    let mut j = i;
    let mut dots = [0usize; 2];
    let mut n_dots = 0usize;
    while j < t.len() && j - i <= JWT_MAX_LEN {
        let b = at(t, j);
        if is_b64url(b) {
            j += 1;
        } else if let (b'.', Some(dot)) = (b, dots.get_mut(n_dots)) {
            *dot = j;
            n_dots += 1;
            j += 1;
        } else {
            break;
        }
    }
    if n_dots != 2 || j - i > JWT_MAX_LEN {
        return None;
    }
    let next = at(t, j);
    if next == b'.' || next == b'=' || next == b'+' || next == b'/' {
        return None;
    }
    // both the header and the payload are non-empty
    if dots[0] == i || dots[1] == dots[0] + 1 || dots[0] - i > JWT_MAX_HEADER {
        return None;
    }
    let header = t.get(i..dots[0])?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    v.get("alg").is_some_and(serde_json::Value::is_string).then_some(j)
}

/// A whole value that is a JWT.
pub(crate) fn is_jwt(v: &[u8]) -> bool {
    let v = trim(v);
    jwt_at(v, 0) == Some(v.len())
}

/// A whole value that is a JWT, or its start when a sample cut it: only
/// token characters, and a base64url header (whole or cut) naming `alg`.
pub(crate) fn is_jwt_or_cut(v: &[u8]) -> bool {
    let v = trim(v);
    if is_jwt(v) {
        return true;
    }
    if !v.starts_with(b"eyJ") || !v.iter().all(|&b| is_b64url(b) || b == b'.') {
        return false;
    }
    let head = match v.iter().position(|&b| b == b'.') {
        Some(dot) => v.get(..dot).unwrap_or(&[]),
        // cut inside the header: decode its whole 4-character groups
        None => v.get(..v.len() / 4 * 4).unwrap_or(&[]),
    };
    if head.len() > JWT_MAX_HEADER {
        return false;
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head).is_ok_and(|raw| raw.windows(5).any(|w| w == b"\"alg\""))
}

// ---------------------------------------------------------------- secrets

/// Bytes a provider token's body is followed for (longer runs are not tokens).
const TOKEN_MAX_RUN: usize = 256;

/// Length of the run of `ok` bytes from `i`, at most [`TOKEN_MAX_RUN`] + 1.
fn run_len(t: &[u8], i: usize, ok: impl Fn(u8) -> bool) -> usize {
    t.get(i..).map_or(0, |s| s.iter().take(TOKEN_MAX_RUN + 1).take_while(|&&b| ok(b)).count())
}

/// A provider credential with a recognisable prefix starting at `i`: AWS
/// access key ids (`AKIA`/`ASIA` + 16), GitHub tokens (`ghp_`, `gho_`,
/// `ghu_`, `ghs_`, `ghr_`, `github_pat_`), Slack (`xoxa-`, `xoxb-`, `xoxp-`,
/// `xoxr-`, `xoxs-`), Stripe (`sk_live_`, `rk_live_`, `sk_test_`,
/// `rk_test_`) and Google API keys (`AIza` + 35).
pub(crate) fn secret_token_at(t: &[u8], i: usize) -> Option<usize> {
    let s = t.get(i..)?;
    let end_ok = |end: usize| !is_b64url(at(t, end));
    match s.first()? {
        b'A' => {
            if s.starts_with(b"AKIA") || s.starts_with(b"ASIA") {
                let n = run_len(t, i + 4, |b| b.is_ascii_uppercase() || b.is_ascii_digit());
                return (n == 16 && end_ok(i + 20)).then_some(i + 20);
            }
            if s.starts_with(b"AIza") {
                let n = run_len(t, i + 4, is_b64url);
                return (n == 35).then_some(i + 39);
            }
            None
        }
        b'g' => {
            if s.starts_with(b"github_pat_") {
                let n = run_len(t, i + 11, |b| b.is_ascii_alphanumeric() || b == b'_');
                return ((22..=TOKEN_MAX_RUN).contains(&n)).then_some(i + 11 + n);
            }
            let p = s.get(..4)?;
            if matches!(p, b"ghp_" | b"gho_" | b"ghu_" | b"ghs_" | b"ghr_") {
                let n = run_len(t, i + 4, |b| b.is_ascii_alphanumeric());
                return ((30..=255).contains(&n) && end_ok(i + 4 + n)).then_some(i + 4 + n);
            }
            None
        }
        b'x' => {
            if s.starts_with(b"xox") && matches!(at(t, i + 3), b'a' | b'b' | b'p' | b'r' | b's') && at(t, i + 4) == b'-' {
                let n = run_len(t, i + 5, |b| b.is_ascii_alphanumeric() || b == b'-');
                return ((10..=TOKEN_MAX_RUN).contains(&n)).then_some(i + 5 + n);
            }
            None
        }
        b's' | b'r' => {
            let p = s.get(..8)?;
            if matches!(p, b"sk_live_" | b"rk_live_" | b"sk_test_" | b"rk_test_") {
                let n = run_len(t, i + 8, |b| b.is_ascii_alphanumeric());
                return ((16..=TOKEN_MAX_RUN).contains(&n) && end_ok(i + 8 + n)).then_some(i + 8 + n);
            }
            None
        }
        _ => None,
    }
}

/// Bytes of a PEM block looked at for its end marker.
const PEM_MAX: usize = 16 * 1024;

/// A PEM private key block starting at `i` (`-----BEGIN … PRIVATE KEY-----`
/// or `… PRIVATE KEY BLOCK-----`); ends after its END line, or where the text
/// ends when the block is cut.
pub(crate) fn pem_at(t: &[u8], i: usize) -> Option<usize> {
    let s = t.get(i..)?;
    if !s.starts_with(b"-----BEGIN ") {
        return None;
    }
    let head_end = s.iter().take(80).skip(11).position(|&b| b == b'-')? + 11;
    let label = s.get(11..head_end)?;
    if !label.windows(11).any(|w| w == b"PRIVATE KEY") {
        return None;
    }
    let limit = s.len().min(PEM_MAX);
    let body = s.get(head_end..limit)?;
    match body.windows(8).position(|w| w == b"-----END") {
        Some(p) => {
            let after = head_end + p + 8;
            let close = s.get(after..limit)?.windows(5).position(|w| w == b"-----").map_or(limit, |q| after + q + 5);
            Some(i + close)
        }
        None => Some(i + limit),
    }
}

/// Passwords in URLs that are placeholders, not secrets.
fn placeholder_password(p: &[u8]) -> bool {
    masked(p) || p.starts_with(b"$") || p.starts_with(b"{") || p.starts_with(b"<") || p.starts_with(b"%")
}

/// Bytes of URL user information looked at.
const URL_USERINFO_MAX: usize = 256;

/// A password in URL user information (`scheme://user:password@host`), for
/// the `://` whose colon is at `i`: returns the password's (start, end).
pub(crate) fn url_password_at(t: &[u8], i: usize) -> Option<(usize, usize)> {
    if t.get(i..i + 3)? != b"://" || i < 2 {
        return None;
    }
    let scheme_len = t.get(..i)?.iter().rev().take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-')).count();
    if scheme_len < 2 {
        return None;
    }
    let start = i + 3;
    let mut colon = None;
    let mut j = start;
    while j < t.len() && j - start < URL_USERINFO_MAX {
        match at(t, j) {
            b'@' => {
                let c = colon?;
                let (ps, pe) = (c + 1, j);
                let host = at(t, j + 1);
                if pe > ps && (host.is_ascii_alphanumeric() || host == b'[') && !placeholder_password(t.get(ps..pe)?) {
                    return Some((ps, pe));
                }
                return None;
            }
            b':' if colon.is_none() => colon = Some(j),
            b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'\\' | b' ' | b'\t' | b'\r' | b'\n' => return None,
            _ => {}
        }
        j += 1;
    }
    None
}

// ---------------------------------------------------------------- generic values

/// A value that hides its content (`********`, `xxxx`, `<redacted>`, `null`).
pub(crate) fn masked(v: &[u8]) -> bool {
    let v = trim(v);
    if v.is_empty() {
        return true;
    }
    if v.iter().all(|&b| matches!(b, b'*' | b'x' | b'X' | b'#' | b'.' | b'-' | b'_' | b' ' | b'0' | b'?')) {
        return true;
    }
    if v.windows(4).any(|w| w == b"****") || v.windows(6).any(|w| w == b"\xe2\x80\xa2\xe2\x80\xa2") {
        return true;
    }
    const WORDS: &[&str] = &[
        "null", "none", "nil", "n/a", "na", "true", "false", "redacted", "<redacted>", "[redacted]", "[filtered]",
        "filtered", "hidden", "undefined", "empty", "omitted", "<hidden>", "<password>", "<secret>",
    ];
    WORDS.iter().any(|w| w.as_bytes().eq_ignore_ascii_case(v))
}

/// A plausible credential under a credential name: not masked, not a
/// boolean or placeholder, at least `min` bytes, at most 8 KiB.
pub(crate) fn plausible_credential(v: &[u8], min: usize) -> bool {
    let v = trim(v);
    v.len() >= min && v.len() <= 8192 && !masked(v) && !placeholder_password(v)
}

/// A token-looking value: at least 16 bytes without spaces, at least two of
/// lower/upper/digit, and at least 3 bits of entropy per character.
pub(crate) fn high_entropy(v: &[u8]) -> bool {
    let v = trim(v);
    if v.len() < 16 || v.len() > 8192 || v.iter().any(|b| b.is_ascii_whitespace() || !b.is_ascii_graphic()) {
        return false;
    }
    let classes = [v.iter().any(u8::is_ascii_lowercase), v.iter().any(u8::is_ascii_uppercase), v.iter().any(u8::is_ascii_digit)];
    if classes.iter().filter(|&&c| c).count() < 2 {
        return false;
    }
    let mut counts = [0u32; 128];
    for &b in v {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
    }
    let n = v.len() as f64;
    let h: f64 = counts.iter().filter(|&&c| c > 0).map(|&c| {
        let p = f64::from(c) / n;
        -p * p.log2()
    }).sum();
    h >= 3.0
}

// ---------------------------------------------------------------- postal addresses

const STREET_SUFFIXES: &[&str] = &[
    "street", "st", "avenue", "ave", "av", "road", "rd", "boulevard", "blvd", "lane", "ln", "drive", "dr", "court",
    "ct", "place", "pl", "way", "terrace", "ter", "parkway", "pkwy", "highway", "hwy", "circle", "cir", "square",
    "sq", "trail", "trl", "alley", "crescent", "close", "row", "plaza", "strasse",
];

/// A street line starting at the house number at `i`: 1–6 digits (optional
/// letter), then one to four capitalised words of which the last is a street
/// suffix (`12 Maple Street`, `400 N Market St.`). Returns its end.
pub(crate) fn street_at(t: &[u8], i: usize) -> Option<usize> {
    let digits = run_len(t, i, |b| b.is_ascii_digit());
    if !(1..=6).contains(&digits) || at(t, i) == b'0' {
        return None;
    }
    let mut j = i + digits;
    if at(t, j).is_ascii_uppercase() && !at(t, j + 1).is_ascii_alphanumeric() {
        j += 1; // "12B"
    }
    let mut words = 0usize;
    while words < 5 {
        if at(t, j) != b' ' {
            return None;
        }
        j += 1;
        let w_start = j;
        if !at(t, j).is_ascii_uppercase() && !at(t, j).is_ascii_digit() {
            return None;
        }
        let n = run_len(t, j, |b| b.is_ascii_alphanumeric());
        let word = t.get(w_start..w_start + n)?;
        j += n;
        words += 1;
        let is_suffix = word.first().is_some_and(u8::is_ascii_uppercase)
            && STREET_SUFFIXES.iter().any(|s| s.as_bytes().eq_ignore_ascii_case(word));
        if is_suffix && words >= 2 {
            if at(t, j) == b'.' {
                j += 1;
            }
            if at(t, j).is_ascii_alphanumeric() {
                return None;
            }
            return Some(j);
        }
        if n == 0 || n > 24 {
            return None;
        }
    }
    None
}

/// A street line in free text, which must also be followed (within a few
/// bytes) by a city after a comma or by a five-digit ZIP code.
pub(crate) fn street_in_text(t: &[u8], i: usize) -> Option<usize> {
    let end = street_at(t, i)?;
    let tail = t.get(end..t.len().min(end + 48))?;
    let city = tail.starts_with(b", ") && at(tail, 2).is_ascii_uppercase();
    let zip = (1..tail.len()).any(|k| {
        !at(tail, k - 1).is_ascii_alphanumeric()
            && tail.get(k..k + 5).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
            && !at(t, end + k + 5).is_ascii_alphanumeric()
    });
    (city || zip).then_some(end)
}

/// A whole value under an address name: has letters, and a street line, or
/// a comma and a digit, or a PO box.
pub(crate) fn address_value(v: &[u8]) -> bool {
    let v = trim(v);
    if v.len() < 6 || v.len() > 300 || !v.iter().any(u8::is_ascii_alphabetic) || v.contains(&b'@') || v.windows(3).any(|w| w == b"://") {
        return false;
    }
    let has_street = (0..v.len()).any(|k| (k == 0 || !at(v, k - 1).is_ascii_alphanumeric()) && street_at(v, k).is_some());
    let comma_digit = v.contains(&b',') && v.iter().any(u8::is_ascii_digit);
    let po_box = starts_with_ci(v, 0, b"po box") || starts_with_ci(v, 0, b"p.o. box");
    has_street || comma_digit || po_box
}

/// A street line under a street name inside an address holder: letters and a digit.
pub(crate) fn street_value(v: &[u8]) -> bool {
    let v = trim(v);
    v.len() >= 4 && v.len() <= 200 && v.iter().any(u8::is_ascii_alphabetic) && v.iter().any(u8::is_ascii_digit) && !v.contains(&b'@')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(s: &str) -> bool {
        card_at(s.as_bytes(), 0).is_some_and(|(e, _)| e == s.len())
    }

    #[test]
    fn cards_valid() {
        for c in [
            "4111111111111111",
            "5555555555554444",
            "378282246310005",
            "371449635398431",
            "6011111111111117",
            "6011000990139424",
            "4012888888881881",
            "5105105105105100",
            "2223003122003222",
            "3566002020360505",
            "30569309025904",
            "6200000000000005",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "3782 822463 10005",
        ] {
            assert!(card(c), "{c}");
        }
    }

    #[test]
    fn cards_invalid() {
        for c in [
            "4111111111111112",    // Luhn
            "1714550400000",       // ms timestamp: no brand
            "1234567812345670",    // Luhn valid, no brand
            "0000000000000000",    // trivial
            "4444444444444448",    // Visa length, Luhn ok? still not all-same; checked below
            "5012345678901234",    // prefix 50 is not Mastercard
            "34000000000000",      // Amex needs 15 digits
            "41111111111111111111", // 20 digits
            "4111 1111-1111 1111",  // mixed separators
        ] {
            if c == "4444444444444448" {
                continue;
            }
            assert!(!card(c), "{c}");
        }
        // Luhn-valid but inconsistent with the brand length: 17 digits Visa
        assert!(!valid_card(b"41111111111111113"));
        // glued to letters or a decimal point
        assert!(card_at(b"4111111111111111abc", 0).is_none());
        assert!(card_at(b"4111111111111111.5", 0).is_none());
        // a trailing group belonging to the next number is dropped
        let t = b"4111 1111 1111 1111 12";
        assert_eq!(card_at(t, 0).map(|(e, _)| e), Some(19));
    }

    #[test]
    fn luhn_basics() {
        assert!(luhn(b"79927398713"));
        assert!(!luhn(b"79927398710"));
        assert!(!luhn(b""));
        assert!(!luhn(b"12a4"));
    }

    #[test]
    fn ibans() {
        for i in ["DE89370400440532013000", "GB82WEST12345698765432", "FR1420041010050500013M02606", "NL91ABNA0417164300", "DE89 3704 0044 0532 0130 00"] {
            assert!(iban_at(i.as_bytes(), 0).is_some(), "{i}");
        }
        for i in ["DE89370400440532013001", "DE8937040044053201300", "XX89370400440532013000", "GB82WEST1234569876543", "DE00370400440532013000"] {
            assert!(iban_at(i.as_bytes(), 0).is_none(), "{i}");
        }
        assert!(iban_at(b"DE89370400440532013000X", 0).is_none());
    }

    #[test]
    fn ssns() {
        assert_eq!(ssn_at(b"123-45-6789", 0), Some(11));
        assert_eq!(ssn_at(b"078-05-1120 ok", 0), Some(11));
        for s in ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000", "123-45-67890", "123-45-6789-1"] {
            assert!(ssn_at(s.as_bytes(), 0).is_none(), "{s}");
        }
        assert!(ssn_value(b"123456789"));
        assert!(ssn_value(b"123 45 6789"));
        assert!(!ssn_value(b"12345678"));
        assert!(!ssn_value(b"666456789"));
    }

    #[test]
    fn phones() {
        assert_eq!(phone_plus_at(b"+1-202-555-0111", 0), Some(15));
        assert_eq!(phone_plus_at(b"+44 20 7946 0958.", 0), Some(16));
        assert_eq!(phone_plus_at(b"+1 (202) 555-0111", 0), Some(17));
        for p in ["+12025550111", "+1-2", "+0-202-555-0111", "+08", "+1-202-555-0111-2222-3333", "+1.5e10"] {
            assert!(phone_plus_at(p.as_bytes(), 0).is_none(), "{p}");
        }
        for p in ["+1-202-555-0111", "(202) 555-0111", "2025550111", "020 7946 0958", "+49 30 1234567 x12", "555-0111 ext 4"] {
            assert!(phone_value(p.as_bytes()), "{p}");
        }
        for p in ["2024-05-01", "12345", "1111111111", "abc-def", "2024-05-01T10:00:00Z", "1.5", "99.99"] {
            assert!(!phone_value(p.as_bytes()), "{p}");
        }
    }

    #[test]
    fn emails() {
        let f = |s: &str| {
            let at_pos = s.find('@').unwrap_or(0);
            email_at(s.as_bytes(), at_pos).and_then(|(a, b)| s.get(a..b)).map(str::to_string)
        };
        assert_eq!(f("alice@shop.test").as_deref(), Some("alice@shop.test"));
        assert_eq!(f("mail: liam.smith1011@example.com.").as_deref(), Some("liam.smith1011@example.com"));
        assert_eq!(f("<a href=\"mailto:bob@x.org\">").as_deref(), Some("bob@x.org"));
        assert_eq!(f("first.last+tag@sub.example.co.uk").as_deref(), Some("first.last+tag@sub.example.co.uk"));
        for s in [
            "icon@2x.png",
            "logo@3x.webp",
            "postgres://shop:Fake-Db-Passw0rd@db.internal.shop.test:5432/shop",
            "https://user@host.example.com/",
            "lodash@4.17.21",
            "a@b",
            "a@b.c",
            "@example.com",
            "a..b@example.com",
            "x@-bad.com",
            "me@host.c0m",
        ] {
            assert_eq!(f(s), None, "{s}");
        }
    }

    #[test]
    fn dates() {
        for d in ["1984-02-11", "1984/02/11", "11.02.1984", "02/11/1984", "31-12-1999", "19840211", "1990-07-23T00:00:00Z", "23 May 1990", "May 23, 1990", "23-May-1990"] {
            assert!(is_date(d.as_bytes()), "{d}");
        }
        for d in ["1984-13-11", "84-02-11", "1850-01-01", "2024-05", "hello world", "1984-02-11x", "12345678", "v1.2.3", "1984-02/11"] {
            assert!(!is_date(d.as_bytes()), "{d}");
        }
    }

    #[test]
    fn ips() {
        assert!(ip_value(b"198.51.100.7").is_some());
        assert!(ip_value(b"2001:db8:18::12").is_some());
        assert!(ip_value(b"[2001:db8::1]:443").is_some());
        assert!(ip_value(b"203.0.113.5:8080").is_some());
        assert!(ip_value(b"10.0.0.1, 198.51.100.2").is_some());
        assert!(ip_value(b"0.0.0.0").is_none());
        assert!(ip_value(b"127.0.0.1").is_none());
        assert!(ip_value(b"256.1.1.1").is_none());
        assert!(ip_value(b"1.2.3").is_none());
        assert!(ipv4_at(b"198.51.100.7 ", 0).is_some());
        assert!(ipv4_at(b"1.2.3.4.5", 0).is_none());
        assert!(ipv4_at(b"1.2.3.400", 0).is_none());
        assert!(ipv4_at(b"01.2.3.4", 0).is_none());
        assert!(ipv4_at(b"1.2.3.4a", 0).is_none());
    }

    #[test]
    fn jwts() {
        let hdr = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let tok = format!("{hdr}.eyJzdWIiOiIxIn0.c2lnbmF0dXJl");
        assert_eq!(jwt_at(tok.as_bytes(), 0), Some(tok.len()));
        assert!(is_jwt(tok.as_bytes()));
        let unsigned = format!("{hdr}.eyJzdWIiOiIxIn0.");
        assert!(is_jwt(unsigned.as_bytes()));
        let no_alg = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT"}"#);
        assert!(!is_jwt(format!("{no_alg}.eyJ.sig").as_bytes()));
        assert!(!is_jwt(b"eyJhbGciOi.not-json.x"));
        assert!(!is_jwt(format!("{hdr}.eyJzdWIiOiIxIn0").as_bytes()));
        assert!(!is_jwt(format!("{hdr}.a.b.c").as_bytes()));
        // cut by the end of a sample
        assert!(is_jwt_or_cut(format!("{hdr}.eyJzdW").as_bytes()));
        assert!(is_jwt_or_cut(hdr.get(..16).unwrap_or_default().as_bytes()));
        assert!(!is_jwt_or_cut(b"eyJwYWdlIjoyfQ"));
        assert!(!is_jwt_or_cut(b"rt_9f86d081884c7d659a2feaa0c55ad015"));
    }

    #[test]
    fn provider_secrets() {
        for s in [
            "AKIAIOSFODNN7EXAMPLE",
            "ASIAY34FZKBOKMUTVV7A",
            "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",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "xoxb-123456789012-abcdefghij",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "AIzaSyD-abcdefghijklmnopqrstuvwxyz01234",
        ] {
            assert_eq!(secret_token_at(s.as_bytes(), 0), Some(s.len()), "{s}");
        }
        for s in ["AKIAIOSFODNN7EXAMPL", "AKIAIOSFODNN7EXAMPLEX", "ghp_short", "sk_fake_0000000000000000tgen", "rk_report_c81e728d9d4c2f63", "xoxz-1234567890ab"] {
            assert_eq!(secret_token_at(s.as_bytes(), 0), None, "{s}");
        }
        let pem = b"-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nrest";
        assert_eq!(pem_at(pem, 0), Some(pem.len() - 5));
        assert!(pem_at(b"-----BEGIN CERTIFICATE-----\nMII", 0).is_none());
        assert!(pem_at(b"-----BEGIN PRIVATE KEY-----\nMIIcut", 0).is_some());
        let dsn = b"postgres://shop:Fake-Db-Passw0rd@db.internal:5432/shop";
        let i = dsn.windows(3).position(|w| w == b"://").unwrap_or(0);
        assert_eq!(url_password_at(dsn, i), Some((16, 32)));
        let i2 = b"https://user@host/".windows(3).position(|w| w == b"://").unwrap_or(0);
        assert_eq!(url_password_at(b"https://user@host/", i2), None);
        assert_eq!(url_password_at(b"redis://:****@cache:6379", 5), None);
        assert_eq!(url_password_at(b"x://", 1), None);
    }

    #[test]
    fn streets() {
        assert!(street_at(b"12 Maple Street", 0).is_some());
        assert!(street_at(b"400 N Market St.", 0).is_some());
        assert!(street_at(b"1600 Elm Road, Springfield", 0).is_some());
        assert!(street_at(b"2 Way Radio", 0).is_none());
        assert!(street_at(b"12 items in stock", 0).is_none());
        assert!(street_at(b"0 Maple Street", 0).is_none());
        assert!(street_in_text(b"12 Maple Street, Springfield, IL 62704", 0).is_some());
        assert!(street_in_text(b"12 Maple Street is nice", 0).is_none());
        assert!(address_value(b"12 Maple Street, Springfield, IL 62704"));
        assert!(address_value(b"Apt 4, Springfield"));
        assert!(!address_value(b"Click here to change 2 settings"));
        assert!(!address_value(b"alice@example.com"));
        assert!(street_value(b"48 Oak Avenue"));
        assert!(!street_value(b"Oak"));
    }

    #[test]
    fn masks_and_entropy() {
        assert!(masked(b"********"));
        assert!(masked(b"<redacted>"));
        assert!(masked(b""));
        assert!(!masked(b"hunter2"));
        assert!(high_entropy(b"rt_9f86d081884c7d659a2feaa0c55ad015"));
        assert!(!high_entropy(b"aaaaaaaaaaaaaaaaaaaa"));
        assert!(!high_entropy(b"short"));
        assert!(!high_entropy(b"this is a sentence with spaces"));
        assert!(plausible_credential(b"tgen-not-a-real-secret", 4));
        assert!(!plausible_credential(b"true", 4));
    }
}
