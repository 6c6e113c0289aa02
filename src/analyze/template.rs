//! Path templates, the stateless part: typed segments.
//!
//! A path segment whose shape identifies it as a value, not a name, becomes a
//! parameter named by its type:
//!
//! | shape | parameter |
//! |---|---|
//! | digits (`1842`) | `{id}` |
//! | UUID (`0f8fad5b-d9cb-469f-a165-70867728950e`) | `{uuid}` |
//! | ULID (26 Crockford base32 characters) | `{ulid}` |
//! | hex digest or Mongo ObjectId (24, 32, 40, 64 hex digits, or ≥ 16 with letters and digits) | `{hash}` |
//! | date (`2024-01-31`, `20240131`) | `{date}` |
//! | e-mail address | `{email}` |
//! | code mixing letters and ≥ 4 digits (`SKU-000108`, `INV2024001`) | `{code}` |
//! | long token (≥ 20 characters of base64/base64url alphabet with letters and digits) | `{token}` |
//! | static asset file name (`logo.png`, `app.3f2a.js`) | `{file}` |
//!
//! Structural guards: the first segment is never a parameter, nor are `api`
//! and version segments (`v1`, `v2beta`, `1.0`). Free-text segments such as
//! slugs are left literal here; the inventory learns them from cardinality
//! (`inventory::templates`). User rules from `sensor.toml` are applied before
//! any of this and always win.

/// Static asset extensions grouped into `{file}`.
const ASSET_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "svg", "ico", "webp", "avif", "bmp", "css", "js", "mjs", "map", "woff", "woff2", "ttf",
    "otf", "eot", "mp4", "webm", "mp3", "wav",
];

/// The parameter type of a segment, if its shape says it is a value.
pub fn segment_type(seg: &str) -> Option<&'static str> {
    let b = seg.as_bytes();
    if b.is_empty() {
        return None;
    }
    if b.iter().all(u8::is_ascii_digit) {
        // an eight-digit run shaped like yyyymmdd is a date
        if b.len() == 8 && is_yyyymmdd(b) {
            return Some("date");
        }
        return Some("id");
    }
    if is_uuid(b) {
        return Some("uuid");
    }
    if is_date(b) {
        return Some("date");
    }
    if is_email(seg) {
        return Some("email");
    }
    if is_ulid(b) {
        return Some("ulid");
    }
    if is_hex_id(b) {
        return Some("hash");
    }
    if is_asset(seg) {
        return Some("file");
    }
    if is_token(b) {
        return Some("token");
    }
    if is_code(b) {
        return Some("code");
    }
    None
}

/// Whether a segment is a version (`v1`, `v2beta1`, `1.0`, `2`) — kept literal.
pub fn is_version(seg: &str) -> bool {
    let b = seg.as_bytes();
    match b.first() {
        Some(b'v' | b'V') => b.get(1).is_some_and(u8::is_ascii_digit) && b.len() <= 12,
        Some(c) if c.is_ascii_digit() => b.contains(&b'.') && b.iter().all(|c| c.is_ascii_digit() || *c == b'.') && b.len() <= 8,
        _ => false,
    }
}

fn is_yyyymmdd(b: &[u8]) -> bool {
    let n = |r: std::ops::Range<usize>| b.get(r).and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.parse::<u32>().ok());
    matches!((n(0..4), n(4..6), n(6..8)), (Some(y), Some(m), Some(d)) if (1900..=2100).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d))
}

fn is_date(b: &[u8]) -> bool {
    // yyyy-mm-dd (optionally with a time part after 'T')
    let d = b.split(|&c| c == b'T').next().unwrap_or(b);
    if d.len() != 10 || d.get(4) != Some(&b'-') || d.get(7) != Some(&b'-') {
        return false;
    }
    let digits: Vec<u8> = d.iter().copied().filter(|c| *c != b'-').collect();
    digits.len() == 8 && digits.iter().all(u8::is_ascii_digit) && is_yyyymmdd(&digits)
}

fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_ulid(b: &[u8]) -> bool {
    // Crockford base32, 26 characters, first character 0-7; must mix letters and digits
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    b.len() == 26
        && matches!(b.first(), Some(b'0'..=b'7'))
        && b.iter().all(|c| ALPHABET.contains(&c.to_ascii_uppercase()))
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
        && (b.iter().all(|c| !c.is_ascii_lowercase()) || b.iter().all(|c| !c.is_ascii_uppercase()))
}

fn is_hex_id(b: &[u8]) -> bool {
    if !b.iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = b.len() - digits;
    matches!(b.len(), 24 | 32 | 40 | 64 | 128) || (b.len() >= 16 && digits > 0 && letters > 0)
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && domain.rsplit('.').next().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
}

/// Whether a file name has a static asset extension.
pub fn is_asset(s: &str) -> bool {
    match s.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ASSET_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext)),
        _ => false,
    }
}

fn is_code(b: &[u8]) -> bool {
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    let letters = b.iter().filter(|c| c.is_ascii_alphabetic()).count();
    digits >= 4
        && letters >= 1
        && b.len() <= 40
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        && !is_version(std::str::from_utf8(b).unwrap_or(""))
}

fn is_token(b: &[u8]) -> bool {
    b.len() >= 20
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'=' | b'+' | b'~' | b'.'))
        && b.iter().any(u8::is_ascii_digit)
        && b.iter().any(u8::is_ascii_alphabetic)
        // a long kebab-case phrase is a slug, not a token
        && !looks_like_words(b)
}

/// Whether a segment is words joined by `-` or `_` (a slug or a resource name).
pub fn looks_like_words(b: &[u8]) -> bool {
    let parts: Vec<&[u8]> = b.split(|c| *c == b'-' || *c == b'_').collect();
    parts.len() >= 2 && parts.iter().all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_alphabetic))
}

/// The typed template of a path: typed segments replaced by `{type}`,
/// everything else kept. The first segment and version/`api` segments stay.
pub fn typed_template(path: &str) -> String {
    with_typed_template(path.as_bytes(), |t| t.template.to_string())
}

/// A typed template, with what endpoint families are made of
/// ([`crate::analyze::sample_family`]): where its third '/' is and how many
/// it has.
pub struct Typed {
    pub template: std::sync::Arc<str>,
    pub third: usize,
    pub depth: u64,
}

impl Typed {
    /// `template` with its family facts, as the copy this thread already
    /// shares for another path if there is one ([`shared_text`]): the
    /// paths of one endpoint (`/users/1`, `/users/2`) hand on the same `Arc`,
    /// which lets the inventory recognise it by address.
    fn shared(template: String) -> Typed {
        let (third, depth) = third_and_depth(&template);
        Typed { template: shared_text(template), third, depth }
    }
}

/// `text` as the copy this thread already hands on, if there is one
/// ([`SHARED_TEXT`]): endpoint hosts and templates, which the inventory
/// recognises by address. Text over [`TYPED_MEMO_PATH_MAX`] bytes is not
/// kept (with [`crate::analyze::fingerprint::MEMO_ENTRIES`] entries, the
/// table holds at most a few megabytes).
pub fn shared_text(text: String) -> std::sync::Arc<str> {
    if text.len() > TYPED_MEMO_PATH_MAX {
        return text.into();
    }
    SHARED_TEXT.with(|set| {
        let Ok(mut set) = set.try_borrow_mut() else { return text.into() };
        if let Some(t) = set.get(text.as_str()) {
            return std::sync::Arc::clone(t);
        }
        if set.len() >= crate::analyze::fingerprint::MEMO_ENTRIES {
            set.clear();
        }
        let t: std::sync::Arc<str> = text.into();
        set.insert(std::sync::Arc::clone(&t));
        t
    })
}

/// Where the third '/' of `template` is (its length when it has fewer) and
/// how many it has.
pub fn third_and_depth(template: &str) -> (usize, u64) {
    let t = template.as_bytes();
    let (mut depth, mut third) = (0u64, t.len());
    for (i, &b) in t.iter().enumerate() {
        if b == b'/' {
            depth += 1;
            if depth == 3 {
                third = i;
            }
        }
    }
    (third, depth)
}

/// `f` of the typed template of `path` (lossy UTF-8), from the per-thread
/// memo when held there: no copy of the template is made.
pub fn with_typed_template<R>(path: &[u8], f: impl FnOnce(&Typed) -> R) -> R {
    let now = || -> Typed {
        match std::str::from_utf8(path) {
            Ok(p) => Typed::shared(typed_template_now(p)),
            Err(_) => Typed::shared(typed_template_now(&String::from_utf8_lossy(path))),
        }
    };
    if path.len() > TYPED_MEMO_PATH_MAX {
        return f(&now());
    }
    TYPED.with(|m| {
        let Ok(mut m) = m.try_borrow_mut() else { return f(&now()) };
        let (keys, map) = &mut *m;
        let key = keys.hash(&[path]);
        if let Some(t) = map.get(&key) {
            return f(t);
        }
        let t = now();
        let r = f(&t);
        if map.len() >= crate::analyze::fingerprint::MEMO_ENTRIES {
            map.clear();
        }
        map.insert(key, t);
        r
    })
}

/// The typed template of `path`, shared with the per-thread memo (no copy of
/// the template when it is held there).
pub fn shared_typed_template(path: &str) -> std::sync::Arc<str> {
    with_typed_template(path.as_bytes(), |t| std::sync::Arc::clone(&t.template))
}

/// Longest path whose template is memoised (longer ones are worked out each
/// time): with [`crate::analyze::fingerprint::MEMO_ENTRIES`] entries, the memo
/// holds at most a few megabytes.
const TYPED_MEMO_PATH_MAX: usize = 512;

std::thread_local! {
    /// Templates of paths seen on this thread (a path comes back on every call
    /// of its endpoint), under a 128-bit keyed hash of the path (as
    /// [`crate::analyze::fingerprint::Memo`]: no collision can be steered from
    /// the wire). Not the path itself: comparing a path kept on the heap was a
    /// second wait for memory on every lookup. Emptied when full.
    static TYPED: std::cell::RefCell<(crate::analyze::fingerprint::HashKeys, std::collections::HashMap<u128, Typed, crate::analyze::fingerprint::PreHashed>)> =
        std::cell::RefCell::new(Default::default());
}

std::thread_local! {
    /// The endpoint hosts and typed templates this thread hands on, one
    /// `Arc` each (see [`shared_text`]). Emptied when full, like [`TYPED`].
    static SHARED_TEXT: std::cell::RefCell<std::collections::HashSet<std::sync::Arc<str>, foldhash::fast::RandomState>> =
        std::cell::RefCell::new(std::collections::HashSet::default());
}

fn typed_template_now(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        // i == 1 is the first segment after the leading '/'
        let guarded = i <= 1 || is_version(seg) || seg.eq_ignore_ascii_case("api");
        match (guarded, segment_type(seg)) {
            (false, Some(t)) => {
                out.push('{');
                out.push_str(t);
                out.push('}');
            }
            _ => out.push_str(seg),
        }
    }
    out
}

/// Whether a template segment is a parameter.
pub fn is_param(seg: &str) -> bool {
    seg.len() >= 2 && seg.starts_with('{') && seg.ends_with('}')
}

/// Matches a path against a user template such as `/v2/users/{id}/orders`
/// (`{...}` matches one segment, a trailing `/**` any rest).
pub fn matches_template(template: &str, path: &str) -> bool {
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (Some("**"), _) => return true,
            (Some(ts), Some(ps)) if is_param(ts) || ts == "*" => {
                if ps.is_empty() {
                    return false;
                }
            }
            (Some(ts), Some(ps)) => {
                if ts != ps {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memoised_templates_are_the_templates_worked_out_again() {
        let long = format!("/v1/files/{}/12345", "a".repeat(TYPED_MEMO_PATH_MAX));
        for path in ["/v2/users/42", "/v2/users/42", "/v2/users/43/orders/7", "/", "", long.as_str(), long.as_str()] {
            assert_eq!(typed_template(path), typed_template_now(path), "{path}");
        }
        assert_eq!(typed_template("/v2/users/42"), "/v2/users/{id}");
        // a full memo starts again rather than growing
        for i in 0..crate::analyze::fingerprint::MEMO_ENTRIES + 10 {
            let p = format!("/api/items/{i}");
            assert_eq!(typed_template(&p), "/api/items/{id}");
        }
        assert!(TYPED.with(|m| m.borrow().1.len()) <= crate::analyze::fingerprint::MEMO_ENTRIES);
        assert!(SHARED_TEXT.with(|m| m.borrow().len()) <= crate::analyze::fingerprint::MEMO_ENTRIES);
    }

    #[test]
    fn paths_of_one_template_share_its_text() {
        let (a, b, c) = (shared_typed_template("/v3/carts/17"), shared_typed_template("/v3/carts/18"), shared_typed_template("/v3/carts/18/items"));
        assert_eq!((&*a, &*b, &*c), ("/v3/carts/{id}", "/v3/carts/{id}", "/v3/carts/{id}/items"));
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        assert!(!std::sync::Arc::ptr_eq(&a, &c));
        let h = shared_text("api.example".to_string());
        assert!(std::sync::Arc::ptr_eq(&h, &shared_text(String::from("api.example"))));
        assert_eq!(&*shared_text("other.example".to_string()), "other.example");
        // long text is handed on as it is, not kept
        let long = "x".repeat(TYPED_MEMO_PATH_MAX + 1);
        assert_eq!(&*shared_text(long.clone()), long.as_str());
        assert!(SHARED_TEXT.with(|m| m.borrow().iter().all(|t| t.len() <= TYPED_MEMO_PATH_MAX)));
    }

    #[test]
    fn typed_segments() {
        let cases = [
            ("/v2/users/1842", "/v2/users/{id}"),
            ("/v2/orders/0f8fad5b-d9cb-469f-a165-70867728950e/items", "/v2/orders/{uuid}/items"),
            ("/v2/inventory/SKU-000108", "/v2/inventory/{code}"),
            ("/files/5f2b6c1e9d3a4b0012345678", "/files/{hash}"),
            ("/blobs/d41d8cd98f00b204e9800998ecf8427e", "/blobs/{hash}"),
            ("/x/01ARZ3NDEKTSV4RRFFQ69G5FAV", "/x/{ulid}"),
            ("/reports/2024-01-31", "/reports/{date}"),
            ("/reports/20240131", "/reports/{date}"),
            ("/users/alice@example.com/keys", "/users/{email}/keys"),
            ("/legacy/images/img-01.png", "/legacy/images/{file}"),
            ("/t/eyJhbGciOiJIUzI1NiJ9abcDEF123", "/t/{token}"),
            ("/v2/products/retro-bamboo-sneakers", "/v2/products/retro-bamboo-sneakers"),
            ("/api/v1/status", "/api/v1/status"),
            ("/123/items", "/123/items"),
            ("/v1.2/items", "/v1.2/items"),
            ("/legacy/customer.php", "/legacy/customer.php"),
            ("/", "/"),
            ("", ""),
            ("/a//b", "/a//b"),
        ];
        for (path, want) in cases {
            assert_eq!(typed_template(path), want, "{path}");
        }
    }

    #[test]
    fn versions_stay_literal() {
        for v in ["v1", "v2", "V3", "v2beta1", "1.0", "2.1.3"] {
            assert!(is_version(v), "{v}");
        }
        for v in ["v", "version", "1", "vacation", "12345"] {
            assert!(!is_version(v), "{v}");
        }
        assert_eq!(typed_template("/svc/v2/x"), "/svc/v2/x");
    }

    #[test]
    fn user_templates_match() {
        assert!(matches_template("/v2/users/{id}", "/v2/users/42"));
        assert!(!matches_template("/v2/users/{id}", "/v2/users/42/orders"));
        assert!(matches_template("/static/**", "/static/a/b.css"));
        assert!(!matches_template("/v2/users/{id}", "/v2/users/"));
    }

    #[test]
    fn hostile_segments_never_panic() {
        for s in ["{", "}", "{}", "é/ü", "\u{0}", "....", "a@", "@b.c", "-", "_-_", "%2F%2F"] {
            let _ = typed_template(s);
            let _ = segment_type(s);
        }
    }
}
