//! Keyed fingerprints of secrets and personal data.
//!
//! A value seen on the wire (a token, a password, a card number) is never
//! stored or exported; its fingerprint is: HMAC-SHA-256 under a key created
//! once per store, truncated to 128 bits, hex. The same value gives the same
//! fingerprint within one store (so reuse and sharing are visible), and
//! without the key a fingerprint cannot be checked against guesses.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of the fingerprint key in bytes.
pub const KEY_LEN: usize = 32;

/// Computes keyed fingerprints.
#[derive(Clone)]
pub struct Fingerprinter {
    /// HMAC state after the key (its two padded key blocks hashed once, not
    /// once per fingerprint).
    /// (`None` only if HMAC refused the key, which it never does for 32 bytes.)
    keyed: Option<Hmac<Sha256>>,
}

impl std::fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprinter(<key>)")
    }
}

impl Fingerprinter {
    pub fn new(key: [u8; KEY_LEN]) -> Fingerprinter {
        Fingerprinter { keyed: Hmac::<Sha256>::new_from_slice(&key).ok() }
    }

    /// The fingerprint of `value` in the domain `kind` (so that equal bytes of
    /// different kinds do not collide), as 32 hex digits.
    pub fn fingerprint(&self, kind: &str, value: &[u8]) -> String {
        let Some(mut mac) = self.keyed.clone() else { return String::new() };
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        let out = mac.finalize().into_bytes();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(32);
        for b in out.iter().take(16) {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }
}

/// A redacted sample of a value: its shape without its content, e.g.
/// `eyJ…(143 chars)` for a token or `4111…1111` for a card number. At most
/// `keep` leading and trailing characters survive, and only when the value is
/// long enough that they reveal little (at least 4× `keep`).
pub fn redact(value: &str, keep: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    if keep == 0 || n < keep.saturating_mul(4) {
        return format!("<redacted {n} chars>");
    }
    let head: String = chars.iter().take(keep).collect();
    let tail: String = chars.iter().skip(n - keep).collect();
    format!("{head}…{tail} ({n} chars)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_keyed_and_domain_separated() {
        let a = Fingerprinter::new([1; KEY_LEN]);
        let b = Fingerprinter::new([2; KEY_LEN]);
        let v = b"correct-horse-battery-staple";
        assert_eq!(a.fingerprint("password", v), a.fingerprint("password", v));
        assert_ne!(a.fingerprint("password", v), b.fingerprint("password", v));
        assert_ne!(a.fingerprint("password", v), a.fingerprint("api_key", v));
        assert_eq!(a.fingerprint("password", v).len(), 32);
        assert!(!a.fingerprint("password", v).contains("correct"));
    }

    #[test]
    fn redaction_keeps_only_shape() {
        assert_eq!(redact("secret", 4), "<redacted 6 chars>");
        assert_eq!(redact("4111111111111111", 4), "4111…1111 (16 chars)");
        assert_eq!(redact("abc", 0), "<redacted 3 chars>");
    }
}
