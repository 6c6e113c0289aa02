//! The token scan over free text, and the classification of one value found
//! under a name.
//!
//! The scan is one pass over the bytes. Only a few bytes start a candidate —
//! `@` (e-mail), a digit at a token start (card, SSN, IPv4 after an "IP"
//! label, street line), `+` (international phone), an upper-case letter
//! (IBAN, AWS and Google keys), `eyJ` (JWT), the prefixes of provider tokens,
//! `-----BEGIN` (PEM) and `://` (password in a URL) — and every candidate is
//! checked by a bounded validator, so the scan is linear in the text.

use super::keys::{self, Hint};
use super::validate::{self as v, at};
use super::{Ctx, Loc, SensitiveKind, Side};

/// What a text scan looks for besides the always-on kinds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TextOpts {
    /// Card numbers (off under identifier names: `id`, `ts`, `ean`…).
    pub cards: bool,
    /// IPv4 addresses preceded by an "IP" label (`IP: 1.2.3.4`, `client_ip=…`).
    pub ip_label: bool,
}

impl Default for TextOpts {
    fn default() -> Self {
        TextOpts { cards: true, ip_label: false }
    }
}

/// Bytes before an IPv4 address searched for its label.
const IP_LABEL_WINDOW: usize = 24;

/// Whether the text just before `i` ends with a label naming an IP address.
fn ip_label_before(t: &[u8], i: usize) -> bool {
    let start = i.saturating_sub(IP_LABEL_WINDOW);
    let w = t.get(start..i).unwrap_or(&[]);
    // drop separators between the label and the address ("IP: ", "ip=", "<td>")
    let end = w.iter().rposition(|b| b.is_ascii_alphanumeric()).map_or(0, |p| p + 1);
    let gap = w.get(end..).unwrap_or(&[]);
    if gap.len() > 4 || gap.contains(&b'\n') {
        return false;
    }
    keys::classify(w.get(..end).unwrap_or(&[])).has(Hint::IP)
}

#[inline]
fn digit_run(t: &[u8], i: usize) -> usize {
    t.get(i..).map_or(0, |s| s.iter().take_while(|b| b.is_ascii_digit()).count())
}

/// Scans free text for every kind that a value's shape alone identifies.
pub(crate) fn scan_text(ctx: &mut Ctx<'_>, t: &[u8], loc: &Loc<'_>, opts: TextOpts) {
    let n = t.len();
    let mut i = 0usize;
    while i < n {
        if ctx.is_full() {
            return;
        }
        let b = at(t, i);
        let prev = if i == 0 { 0 } else { at(t, i - 1) };
        let boundary = !prev.is_ascii_alphanumeric();
        let mut next = i + 1;
        match b {
            b'@' => {
                if let Some((s, e)) = v::email_at(t, i) {
                    ctx.report(SensitiveKind::Email, loc, t.get(s..e).unwrap_or(&[]));
                    next = e.max(i + 1);
                }
            }
            b'0'..=b'9' if boundary => {
                let run = digit_run(t, i);
                next = i + run.max(1);
                // part of a dotted or dashed number ("1.5", "2024-05-01", "+1-202-…")
                let glued = (prev == b'.' || prev == b'-' || prev == b'_' || prev == b'/') && i >= 2 && at(t, i - 2).is_ascii_alphanumeric();
                if glued || prev == b'+' {
                    i = next;
                    continue;
                }
                let after = at(t, i + run);
                if opts.cards && (run >= v::CARD_MIN_DIGITS || ((3..=6).contains(&run) && matches!(after, b' ' | b'-'))) {
                    if let Some((e, d)) = v::card_at(t, i) {
                        ctx.report(SensitiveKind::CreditCard, loc, d.as_slice());
                        i = e;
                        continue;
                    }
                }
                if run == 3 && after == b'-' {
                    if let Some(e) = v::ssn_at(t, i) {
                        ctx.report(SensitiveKind::Ssn, loc, t.get(i..e).unwrap_or(&[]));
                        i = e;
                        continue;
                    }
                }
                if opts.ip_label && run <= 3 && after == b'.' {
                    if let Some((e, _)) = v::ipv4_at(t, i) {
                        if ip_label_before(t, i) {
                            ctx.report(SensitiveKind::IpAddress, loc, t.get(i..e).unwrap_or(&[]));
                        }
                        i = e;
                        continue;
                    }
                }
                if run <= 6 && after == b' ' {
                    if let Some(e) = v::street_in_text(t, i) {
                        ctx.report(SensitiveKind::Address, loc, t.get(i..e).unwrap_or(&[]));
                        i = e;
                        continue;
                    }
                }
            }
            b'+' if boundary && prev != b'+' => {
                if let Some(e) = v::phone_plus_at(t, i) {
                    ctx.report(SensitiveKind::Phone, loc, t.get(i..e).unwrap_or(&[]));
                    next = e;
                }
            }
            b'A'..=b'Z' if boundary => {
                if let Some((e, iban)) = v::iban_at(t, i) {
                    ctx.report(SensitiveKind::Iban, loc, iban.as_slice());
                    next = e;
                } else if let Some(e) = v::secret_token_at(t, i) {
                    ctx.report(SensitiveKind::Secret, loc, t.get(i..e).unwrap_or(&[]));
                    next = e;
                }
            }
            b'e' if boundary && at(t, i + 1) == b'y' && at(t, i + 2) == b'J' && prev != b'.' => {
                match v::jwt_at(t, i) {
                    Some(e) => {
                        ctx.report(SensitiveKind::Jwt, loc, t.get(i..e).unwrap_or(&[]));
                        next = e;
                    }
                    // nothing in this run of token characters starts another token
                    None => next = v::token_run_end(t, i),
                }
            }
            b'g' | b'x' | b's' | b'r' if boundary && prev != b'.' => {
                if let Some(e) = v::secret_token_at(t, i) {
                    ctx.report(SensitiveKind::Secret, loc, t.get(i..e).unwrap_or(&[]));
                    next = e;
                }
            }
            b'-' if at(t, i + 1) == b'-' => {
                if let Some(e) = v::pem_at(t, i) {
                    ctx.report(SensitiveKind::Secret, loc, t.get(i..e).unwrap_or(&[]));
                    next = e;
                }
            }
            b':' if at(t, i + 1) == b'/' && at(t, i + 2) == b'/' => {
                if let Some((s, e)) = v::url_password_at(t, i) {
                    ctx.report(SensitiveKind::Secret, loc, t.get(s..e).unwrap_or(&[]));
                    next = e;
                } else {
                    next = i + 3;
                }
            }
            _ => {}
        }
        if b.is_ascii_alphanumeric() {
            // every pattern but '@', '-' and ':' (not alphanumeric) starts at
            // a word boundary: nothing starts inside the rest of this word
            let mut j = i + 1;
            while j < n && at(t, j).is_ascii_alphanumeric() {
                j += 1;
            }
            next = next.max(j);
        }
        i = next.max(i + 1);
    }
}

/// Classifies one value found under a name with hint `own`, held by a
/// container whose name gave `holder`: name-guided kinds first, then the
/// token scan. `number` marks a JSON number.
pub(crate) fn scalar(ctx: &mut Ctx<'_>, own: Hint, holder: Hint, value: &[u8], number: bool, loc: &Loc<'_>) {
    let t = v::trim(value);
    if t.is_empty() || ctx.is_full() {
        return;
    }
    // credentials: what the name says, and nothing else is looked for in them
    if own.has(Hint::PASSWORD) && !number {
        if v::plausible_credential(t, 1) {
            ctx.report(SensitiveKind::Password, loc, t);
        }
        return;
    }
    if own.has(Hint::API_KEY) {
        if v::is_jwt_or_cut(t) {
            ctx.report(SensitiveKind::Jwt, loc, t);
        } else if !number && v::plausible_credential(t, 4) {
            ctx.report(SensitiveKind::ApiKey, loc, t);
        }
        return;
    }
    if own.has(Hint::SECRET) {
        if v::is_jwt_or_cut(t) {
            ctx.report(SensitiveKind::Jwt, loc, t);
        } else if !number && v::plausible_credential(t, 4) {
            ctx.report(SensitiveKind::Secret, loc, t);
        }
        return;
    }
    if own.has(Hint::TOKEN) {
        if v::is_jwt_or_cut(t) {
            ctx.report(SensitiveKind::Jwt, loc, t);
            return;
        }
        // a bearer token sent by the client is authentication, not leakage
        if v::high_entropy(t) {
            if ctx.side() == Side::Response {
                ctx.report(SensitiveKind::Secret, loc, t);
            }
            return;
        }
    }
    // personal data that only its name identifies; a value so named is not
    // also a card number, nor counted twice by the token scan
    let mut named = 0u16;
    if own.has(Hint::DOB) && v::is_date(t) {
        ctx.report(SensitiveKind::DateOfBirth, loc, t);
        named |= SensitiveKind::DateOfBirth.bit();
    }
    if own.has(Hint::SSN) && v::ssn_value(t) {
        ctx.report(SensitiveKind::Ssn, loc, t);
        named |= SensitiveKind::Ssn.bit();
    }
    if own.has(Hint::IP) && v::ip_value(t).is_some() {
        ctx.report(SensitiveKind::IpAddress, loc, t);
        named |= SensitiveKind::IpAddress.bit();
    }
    if (own.has(Hint::PHONE) || (own.has(Hint::PHONE_PART) && holder.has(Hint::PHONE))) && v::phone_value(t) {
        ctx.report(SensitiveKind::Phone, loc, t);
        named |= SensitiveKind::Phone.bit();
    }
    if !number {
        let in_address = holder.has(Hint::ADDRESS | Hint::ADDRESS_CTX);
        if (own.has(Hint::ADDRESS) && v::address_value(t))
            || (own.has(Hint::STREET) && ((in_address && v::street_value(t)) || v::street_at(t, 0).is_some()))
        {
            ctx.report(SensitiveKind::Address, loc, t);
            named |= SensitiveKind::Address.bit();
        }
    }
    let cards = named == 0 && (!own.has(Hint::ID_LIKE) || own.has(Hint::CARD));
    if number {
        // a JSON number: only a card number is recognisable in one
        if cards && t.iter().all(u8::is_ascii_digit) && v::valid_card(t) {
            ctx.report(SensitiveKind::CreditCard, loc, t);
        }
        return;
    }
    let saved = ctx.suppress;
    ctx.suppress |= named;
    scan_text(ctx, t, loc, TextOpts { cards, ip_label: true });
    ctx.suppress = saved;
}
