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
    /// Tells memo entries made under this key from those of another key.
    id: u64,
}

/// Entries a [`Memo`] holds before it starts again.
pub const MEMO_ENTRIES: usize = 4096;

/// A bounded memo of values derived from wire bytes (a fingerprint, a decoded
/// token), so that a value seen on every request is worked out once. Keys are
/// SipHash-1-3 with 128-bit output under random keys (a collision cannot be
/// steered from the wire); the bytes themselves are not kept. Full → emptied.
pub struct Memo<V> {
    map: std::collections::HashMap<u128, V, PreHashed>,
    keys: HashKeys,
    cap: usize,
}

impl<V: Clone> Memo<V> {
    pub fn new() -> Memo<V> {
        Memo::with_entries(MEMO_ENTRIES)
    }

    /// A memo of at most `cap` entries (for values larger than a fingerprint).
    pub fn with_entries(cap: usize) -> Memo<V> {
        Memo { map: std::collections::HashMap::default(), keys: HashKeys::default(), cap }
    }

    /// The value held under `k` (from [`Memo::key`]), if any.
    pub fn get(&self, k: u128) -> Option<V> {
        self.map.get(&k).cloned()
    }

    /// Holds `v` under `k` (from [`Memo::key`]).
    pub fn put(&mut self, k: u128, v: V) {
        if self.map.len() >= self.cap {
            self.map.clear();
        }
        self.map.insert(k, v);
    }

    /// The 128-bit keyed hash that stands for `parts`.
    pub fn key(&self, parts: &[&[u8]]) -> u128 {
        self.keys.hash(parts)
    }

    /// The value for `parts`, made by `make` when not held.
    pub fn get_or(&mut self, parts: &[&[u8]], make: impl FnOnce() -> V) -> V {
        let k = self.key(parts);
        if let Some(v) = self.get(k) {
            return v;
        }
        let v = make();
        self.put(k, v.clone());
        v
    }
}

/// The value for `parts` from a per-thread memo, made by `make` when not held
/// (or when the memo is busy: a memoised computation that itself consults
/// the same memo).
pub fn memoised<V: Clone + 'static>(
    memo: &'static std::thread::LocalKey<std::cell::RefCell<Memo<V>>>,
    parts: &[&[u8]],
    make: impl FnOnce() -> V,
) -> V {
    memo.with(|m| match m.try_borrow_mut() {
        Ok(mut m) => m.get_or(parts, make),
        Err(_) => make(),
    })
}

/// Random SipHash-1-3 keys, and the 128-bit keyed hash of a list of byte
/// strings under them (each part length-prefixed, so that no two lists share
/// an input): a stand-in for the values themselves that no client can steer
/// into a collision.
pub struct HashKeys(u64, u64);

impl Default for HashKeys {
    fn default() -> HashKeys {
        use std::hash::BuildHasher;
        // two draws of the standard library's per-process random keys
        let (a, b) = (std::collections::hash_map::RandomState::new(), std::collections::hash_map::RandomState::new());
        HashKeys(a.hash_one(0x6b65_7930u64), b.hash_one(0x6b65_7931u64))
    }
}

impl HashKeys {
    pub fn hash(&self, parts: &[&[u8]]) -> u128 {
        use siphasher::sip128::Hasher128;
        use std::hash::Hasher;
        let mut h = siphasher::sip128::SipHasher13::new_with_keys(self.0, self.1);
        for p in parts {
            h.write_usize(p.len());
            h.write(p);
        }
        h.finish128().as_u128()
    }
}

/// Hashes a key that already is a keyed hash (a [`Memo`] key, a `u64` from a
/// `RandomState`) by taking its low 64 bits instead of hashing it again.
#[derive(Clone, Copy, Default)]
pub struct PreHashed;

/// The hasher of [`PreHashed`].
#[derive(Default)]
pub struct PreHashedHasher(u64);

impl std::hash::BuildHasher for PreHashed {
    type Hasher = PreHashedHasher;
    fn build_hasher(&self) -> PreHashedHasher {
        PreHashedHasher(0)
    }
}

impl std::hash::Hasher for PreHashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // only reached for keys other than u128 (not used): fold the bytes in
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u128(&mut self, k: u128) {
        self.0 = k as u64;
    }
    fn write_u64(&mut self, k: u64) {
        self.0 = k;
    }
}

impl<V: Clone> Default for Memo<V> {
    fn default() -> Self {
        Memo::new()
    }
}

std::thread_local! {
    /// Fingerprints worked out on this thread (see [`Memo`]).
    static FINGERPRINTS: std::cell::RefCell<Memo<String>> = std::cell::RefCell::new(Memo::new());
}

impl std::fmt::Debug for Fingerprinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprinter(<key>)")
    }
}

impl Fingerprinter {
    pub fn new(key: [u8; KEY_LEN]) -> Fingerprinter {
        let mut f = Fingerprinter { keyed: Hmac::<Sha256>::new_from_slice(&key).ok(), id: 0 };
        let tag = f.compute("memo-id", b"");
        f.id = u64::from_str_radix(tag.get(..16).unwrap_or("0"), 16).unwrap_or(0);
        f
    }

    /// Tells values derived under this key from those of another (for memos).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The fingerprint of `value` in the domain `kind` (so that equal bytes of
    /// different kinds do not collide), as 32 hex digits.
    pub fn fingerprint(&self, kind: &str, value: &[u8]) -> String {
        let id = self.id.to_le_bytes();
        memoised(&FINGERPRINTS, &[&id, kind.as_bytes(), value], || self.compute(kind, value))
    }

    fn compute(&self, kind: &str, value: &[u8]) -> String {
        let Some(mut mac) = self.keyed.clone() else { return String::new() };
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        let out = mac.finalize().into_bytes();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(32);
        for b in out.iter().take(16) {
            for nibble in [b >> 4, b & 15] {
                s.push(char::from(HEX.get(usize::from(nibble)).copied().unwrap_or(b'0')));
            }
        }
        s
    }
}

/// A redacted sample of a value: its shape without its content, e.g.
/// `eyJ…(143 chars)` for a token or `4111…1111` for a card number. At most
/// `keep` leading and trailing characters survive, and only when the value is
/// long enough that they reveal little (at least 4× `keep`).
pub fn redact(value: &str, keep: usize) -> String {
    if value.is_ascii() {
        // one byte per character: no character list to build
        let n = value.len();
        if keep == 0 || n < keep.saturating_mul(4) {
            return format!("<redacted {n} chars>");
        }
        let head = value.get(..keep).unwrap_or("");
        let tail = value.get(n - keep..).unwrap_or("");
        return format!("{head}…{tail} ({n} chars)");
    }
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
