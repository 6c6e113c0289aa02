//! Scanner tests: formats, encodings, limits, precision traps, robustness.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;

use base64::Engine as _;

use super::*;
use crate::analyze::fingerprint::{Fingerprinter, KEY_LEN};
use crate::proto::{BodyInfo, Header, HttpTransaction};

use SensitiveKind as K;

fn fp() -> Fingerprinter {
    Fingerprinter::new([7; KEY_LEN])
}

fn headers(h: &[(&str, &str)]) -> Vec<Header> {
    h.iter().map(|(n, v)| Header { name: n.to_ascii_lowercase().into(), value: v.as_bytes().into() }).collect()
}

fn body(b: &[u8]) -> BodyInfo {
    BodyInfo { length: b.len() as u64, sample: b.to_vec(), gap_bytes: 0 }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 1)))
}

fn tx(method: &str, target: &str, req_h: &[(&str, &str)], req_b: &[u8], resp_h: &[(&str, &str)], resp_b: &[u8]) -> HttpTransaction {
    HttpTransaction {
        host: Some("api.shop.test".into()),
        request_headers: headers(req_h),
        response_headers: headers(resp_h),
        status: Some(200),
        response_ts_us: Some(1),
        request_body: body(req_b),
        response_body: body(resp_b),
        ..HttpTransaction::new(addr("198.18.10.11:40000"), addr("198.18.0.10:80"), method, target)
    }
}

/// A response with this content type and body.
fn resp(ctype: &str, b: &[u8]) -> HttpTransaction {
    tx("GET", "/x", &[], b"", &[("content-type", ctype)], b)
}

fn scan_resp(t: &HttpTransaction) -> (Vec<Finding>, ScanStats) {
    scan_resp_with(t, &ScanLimits::default())
}

fn scan_resp_with(t: &HttpTransaction, l: &ScanLimits) -> (Vec<Finding>, ScanStats) {
    let mut s = ScanStats::default();
    let f = scan_response(t, l, &fp(), &mut s);
    (f, s)
}

fn scan_req(t: &HttpTransaction) -> (Vec<Finding>, ScanStats) {
    let mut s = ScanStats::default();
    let f = scan_request(t, &ScanLimits::default(), &fp(), &mut s);
    (f, s)
}

fn kinds(f: &[Finding]) -> BTreeSet<SensitiveKind> {
    f.iter().map(|f| f.kind).collect()
}

fn set(k: &[SensitiveKind]) -> BTreeSet<SensitiveKind> {
    k.iter().copied().collect()
}

fn json_kinds(j: &str) -> BTreeSet<SensitiveKind> {
    kinds(&scan_resp(&resp("application/json", j.as_bytes())).0)
}

fn text_kinds(t: &str) -> BTreeSet<SensitiveKind> {
    kinds(&scan_resp(&resp("text/plain", t.as_bytes())).0)
}

fn at_location(f: &[Finding], kind: SensitiveKind) -> Vec<String> {
    f.iter().filter(|x| x.kind == kind).map(|x| x.location.to_string()).collect()
}

fn assert_no_raw(f: &[Finding], raw: &[&str]) {
    let dump = format!("{f:?}");
    for r in raw {
        assert!(!dump.contains(r), "raw value {r:?} leaked into {dump}");
    }
}

fn b64u(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn jwt() -> String {
    format!(
        "{}.{}.{}",
        b64u(br#"{"alg":"HS256","typ":"JWT","kid":"tgen-1"}"#),
        b64u(br#"{"iss":"https://auth.shop.test","sub":"1001","email":"alice@shop.test","exp":2029910400}"#),
        b64u(&[0x5a; 32])
    )
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(b);
    e.finish().unwrap_or_default()
}

fn zlib(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(b);
    e.finish().unwrap_or_default()
}

fn raw_deflate(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(b);
    e.finish().unwrap_or_default()
}

/// `{"user":{"email":"alice@shop.test","phone":"+1-202-555-0111"},"note":"brotli body " × 20}`,
/// compressed by the reference brotli encoder (quality 11, window 16).
const BROTLI_JSON: [u8; 84] = [
    0xe2, 0x26, 0x00, 0x80, 0xa8, 0xdb, 0x52, 0x5f, 0xd5, 0xc3, 0x7f, 0xb0, 0x3c, 0x99, 0xaa, 0x8a, 0xe1, 0x70, 0x14,
    0xc4, 0x26, 0xea, 0xe4, 0x44, 0x0f, 0xa6, 0xdf, 0x3e, 0xff, 0x8e, 0x25, 0x16, 0xb5, 0xc4, 0x35, 0xdd, 0x21, 0x7b,
    0xc7, 0x8c, 0xc4, 0x48, 0x4f, 0x5f, 0x79, 0xc8, 0x32, 0x4c, 0x5a, 0xce, 0x31, 0xb4, 0xf0, 0x31, 0xeb, 0x64, 0xfa,
    0x05, 0xd1, 0xc8, 0xc8, 0x61, 0x77, 0x25, 0x21, 0x65, 0xa5, 0x62, 0x20, 0x16, 0xe3, 0xb3, 0xd6, 0xbe, 0x18, 0xfd,
    0xec, 0x1b, 0x7e, 0x63, 0xbc, 0xa7, 0x0e, 0x3e,
];

/// A brotli stream of one uncompressed meta-block (RFC 7932 §9.2), for data
/// of any size up to 64 KiB.
fn brotli_stored(data: &[u8]) -> Vec<u8> {
    let mlen = data.len().clamp(1, 1 << 16);
    // WBITS=16 ('0'), ISLAST=0, MNIBBLES=4 ('00'), MLEN-1 (16 bits), ISUNCOMPRESSED=1
    let bits: u32 = ((mlen as u32 - 1) << 4) | (1 << 20);
    let mut out = vec![bits as u8, (bits >> 8) as u8, (bits >> 16) as u8];
    out.extend_from_slice(&data[..mlen.min(data.len())]);
    out.push(0x03); // ISLAST=1, ISLASTEMPTY=1
    out
}

/// Deterministic pseudo-random bytes (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

// ---------------------------------------------------------------- API

#[test]
fn kind_names() {
    for k in SensitiveKind::ALL {
        assert_eq!(SensitiveKind::from_name(k.as_str()), Some(k));
        assert_eq!(serde_json::to_string(&k).ok(), Some(format!("\"{}\"", k.as_str())));
    }
    assert_eq!(K::DateOfBirth.as_str(), "date_of_birth");
    assert_eq!(K::ApiKey.to_string(), "api_key");
    assert!(K::Jwt.is_credential() && !K::Email.is_credential());
    assert_eq!(Location::Body("$.a".into()).to_string(), "body:$.a");
    let l = ScanLimits::default();
    assert_eq!((l.max_decompressed_bytes, l.max_scan_bytes, l.max_findings, l.max_json_depth), (1 << 20, 65536, 64, 32));
}

// ---------------------------------------------------------------- JSON

#[test]
fn json_user_record() {
    let j = r#"{"id":1001,"username":"liam1001","email":"liam.smith1001@example.com","phone":"+1-202-555-0101",
        "date_of_birth":"1990-07-23","ssn":"234-45-6701","address":"48 Oak Avenue, Springfield, IL 62704",
        "created_at":"2022-11-03T08:15:00Z","status":"active","marketing_opt_in":true}"#;
    let (f, s) = scan_resp(&resp("application/json", j.as_bytes()));
    assert_eq!(kinds(&f), set(&[K::Email, K::Phone, K::DateOfBirth, K::Ssn, K::Address]));
    assert_eq!(at_location(&f, K::Email), vec!["body:$.email"]);
    assert_eq!(at_location(&f, K::DateOfBirth), vec!["body:$.date_of_birth"]);
    assert_eq!(s.bodies_scanned, 1);
    assert_eq!(s.json_parse_fallbacks + s.json_truncated, 0);
    assert_no_raw(&f, &["liam.smith1001@example.com", "+1-202-555-0101", "1990-07-23", "234-45-6701", "48 Oak Avenue"]);
}

#[test]
fn json_nested_addresses_and_arrays() {
    let j = r#"{"user_id":1001,"addresses":[{"id":1,"type":"shipping","name":"Liam Smith","line1":"12 Maple Street",
        "city":"Springfield","region":"IL","postal_code":"62704","country":"US","phone":"+1-202-555-0101"},
        {"id":2,"type":"billing","line1":"400 Market Street","city":"Philadelphia","postal_code":"19106","phone":"+1-202-555-0101"}]}"#;
    let (f, _) = scan_resp(&resp("application/json", j.as_bytes()));
    assert_eq!(kinds(&f), set(&[K::Address, K::Phone]));
    assert_eq!(at_location(&f, K::Address), vec!["body:$.addresses[*].line1"]);
    let a = f.iter().find(|x| x.kind == K::Address).map(|x| x.count);
    assert_eq!(a, Some(2));
    // a ship_to object: its street line is an address even without a suffix
    let j = r#"{"ship_to":{"line1":"Apt 7 Unit 12","city":"Portland","postal_code":"97205"},"payment":{"card_number":"4111111111111111","exp":"12/29"}}"#;
    assert_eq!(json_kinds(j), set(&[K::Address, K::CreditCard]));
    // a ship_to string
    assert_eq!(json_kinds(r#"{"ship_to":"12 Maple Street, Springfield, IL 62704"}"#), set(&[K::Address]));
    // phone objects
    assert_eq!(json_kinds(r#"{"mobile":{"number":"2025550111","country":"US"}}"#), set(&[K::Phone]));
    assert_eq!(json_kinds(r#"{"order":{"number":"2025550111"}}"#), set(&[]));
}

#[test]
fn json_catalogue_has_nothing() {
    // the shapes of a product catalogue: prices, ids, ratings, URLs, dates, versions, hashes
    let j = r#"{"page":2,"limit":24,"total":200,"items":[{"id":4532015112830366,"sku":"SKU-000114","slug":"rustic-oak-chair",
        "name":"Rustic Oak Chair","description":"Compact durable design. Ships in 2 days.","price":{"amount":"129.90","currency":"USD"},
        "rating":4.5,"reviews":731,"stock":120,"images":["https://legacy.shop.test/legacy/images/img-01.png","/img/chair@2x.png"],
        "attributes":{"color":"sand","weight_g":4521},"created_at":"2024-03-02T10:11:12Z","version":"1.2.3.4",
        "ean":"4006381333931","etag":"4111111111111111","order_id":"378282246310005","ts":1714550400000,
        "uuid":"3f2b8c1e-5d4a-4e8b-9c7d-1a2b3c4d5e6f","hash":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "build":"2.14.3-4f1c2e9","next":"/v2/products?page=3","sql":"SELECT 1 FROM t WHERE a = '123-45'",
        "kid":"tgen-1","n":"S14VrR1JrslQmMEGepcR87i0PbFBN2rWWNamAkV2rqui3Y-psMClSbnTdVMEHgKfYYJsS51UPrHbfhIy01RHY0teFa0dSa7JUJjBBnqXEfO4tD2x"}]}"#;
    let (f, s) = scan_resp(&resp("application/json", j.as_bytes()));
    assert!(f.is_empty(), "{f:?}");
    assert_eq!(s.json_parse_fallbacks, 0);
}

#[test]
fn json_numbers_and_id_like_names() {
    assert_eq!(json_kinds(r#"{"card":5555555555554444}"#), set(&[K::CreditCard]));
    assert_eq!(json_kinds(r#"{"card_number":"4111 1111 1111 1111"}"#), set(&[K::CreditCard]));
    for j in [
        r#"{"id":4111111111111111}"#,
        r#"{"user_id":"4111111111111111"}"#,
        r#"{"timestamp":1714550400000}"#,
        r#"{"created_ms":4111111111111111}"#,
        r#"{"amount":4111111111111111}"#,
        r#"{"count":2025550111}"#,
        r#"{"price":"19.99","total":"4111111111111111.00"}"#,
        r#"{"x":0.4111111111111111}"#,
    ] {
        assert!(json_kinds(j).is_empty(), "{j}");
    }
}

#[test]
fn json_truncated_samples() {
    let j = br#"{"users":[{"email":"a.b1@example.com","phone":"+1-202-555-0101","ssn":"123-45-6701"},{"email":"c.d2@example.com","phone":"+1-202"#;
    let (f, s) = scan_resp(&resp("application/json", j));
    assert_eq!(kinds(&f), set(&[K::Email, K::Phone, K::Ssn]));
    assert_eq!(s.json_truncated, 1);
    assert_eq!(s.json_parse_fallbacks, 0);
    let e = f.iter().find(|x| x.kind == K::Email).map(|x| (x.location.to_string(), x.count));
    assert_eq!(e, Some(("body:$.users[*].email".into(), 2)));
}

#[test]
fn json_syntax_error_falls_back() {
    // an unquoted value breaks the walk; pairs after it are still read by name
    let j = br#"{"ok":true,"bad":nope,"email":"x.y@example.org","dob":"1984-02-11","note":"call +1-202-555-0199"}"#;
    let (f, s) = scan_resp(&resp("application/json", j));
    assert_eq!(s.json_parse_fallbacks, 1);
    assert_eq!(kinds(&f), set(&[K::Email, K::DateOfBirth, K::Phone]));
    assert_eq!(at_location(&f, K::DateOfBirth), vec!["body:$..dob"]);
    // an HTML error page served as JSON
    let (f, s) = scan_resp(&resp("application/json", b"<html><body>contact admin@shop.example</body></html>"));
    assert_eq!(s.json_parse_fallbacks, 1);
    assert_eq!(kinds(&f), set(&[K::Email]));
}

#[test]
fn json_escapes_and_odd_keys() {
    let j = r#"{"em\u0061il":"alice\u0040shop.test","alice@shop.test":{"role":"admin"},"x":"\"quoted\" \ud83d\ude00 bob@example.com"}"#;
    let (f, _) = scan_resp(&resp("application/json", j.as_bytes()));
    assert_eq!(kinds(&f), set(&[K::Email]));
    // escaped key shown as `*`, a key that is data shown as `*`
    let locs = at_location(&f, K::Email);
    assert!(locs.contains(&"body:$.*".to_string()), "{locs:?}");
    assert!(locs.contains(&"body:$.x".to_string()), "{locs:?}");
    assert_no_raw(&f, &["alice@shop.test", "bob@example.com"]);
}

#[test]
fn ndjson_documents() {
    let j = b"{\"email\":\"a1@example.com\"}\n{\"ip\":\"198.51.100.7\"}\n";
    let (f, s) = scan_resp(&resp("application/x-ndjson", j));
    assert_eq!(kinds(&f), set(&[K::Email, K::IpAddress]));
    assert_eq!(s.json_truncated + s.json_parse_fallbacks, 0);
}

// ---------------------------------------------------------------- kinds by name and by shape

#[test]
fn ip_addresses_need_a_name() {
    assert_eq!(json_kinds(r#"{"ip":"198.51.100.7"}"#), set(&[K::IpAddress]));
    assert_eq!(json_kinds(r#"{"last_login_ip":"2001:db8:18::12"}"#), set(&[K::IpAddress]));
    assert_eq!(json_kinds(r#"{"remote_addr":"203.0.113.5:51234"}"#), set(&[K::IpAddress]));
    assert_eq!(json_kinds(r#"{"version":"1.2.3.4","build":"10.0.19041.1","dns":"8.8.8.8"}"#), set(&[]));
    assert_eq!(json_kinds(r#"{"ip":"127.0.0.1"}"#), set(&[]));
    assert_eq!(text_kinds("login from client IP: 203.0.113.9 at noon"), set(&[K::IpAddress]));
    assert_eq!(text_kinds("ip=198.51.100.20"), set(&[K::IpAddress]));
    assert_eq!(text_kinds("upgraded to 1.2.3.4 today; served by 10.0.0.1"), set(&[]));
}

#[test]
fn phones_need_a_name_or_a_plus() {
    assert_eq!(json_kinds(r#"{"phone":"(202) 555-0111"}"#), set(&[K::Phone]));
    assert_eq!(json_kinds(r#"{"msisdn":4915112345678}"#), set(&[K::Phone]));
    assert_eq!(json_kinds(r#"{"contact":"+44 20 7946 0958"}"#), set(&[K::Phone]));
    assert_eq!(json_kinds(r#"{"phone_verified_at":"2024-05-01","phone_type":"mobile"}"#), set(&[]));
    assert_eq!(text_kinds("order 2025550111 shipped; ref 202-555-0111; at 2024-05-01T10:00:00+02:00"), set(&[]));
    assert_eq!(text_kinds("call +1 (202) 555-0111 now"), set(&[K::Phone]));
}

#[test]
fn dates_of_birth_need_a_name() {
    assert_eq!(json_kinds(r#"{"dob":"1984-02-11"}"#), set(&[K::DateOfBirth]));
    assert_eq!(json_kinds(r#"{"birthDate":"11.02.1984"}"#), set(&[K::DateOfBirth]));
    assert_eq!(json_kinds(r#"{"customer":{"birthday":"May 23, 1990"}}"#), set(&[K::DateOfBirth]));
    assert_eq!(json_kinds(r#"{"created_at":"1984-02-11","date":"1984-02-11","period":{"from":"2024-04-01"}}"#), set(&[]));
    assert_eq!(json_kinds(r#"{"dob":"unknown"}"#), set(&[]));
}

#[test]
fn ssns() {
    assert_eq!(json_kinds(r#"{"ssn":"123-45-6789"}"#), set(&[K::Ssn]));
    assert_eq!(json_kinds(r#"{"social_security_number":"123456789"}"#), set(&[K::Ssn]));
    assert_eq!(text_kinds("SSN 078-05-1120 on file"), set(&[K::Ssn]));
    assert_eq!(json_kinds(r#"{"ref":"000-12-3456","n":123456789,"code":"666-12-3456","zip":"123-45-67890"}"#), set(&[]));
    assert_eq!(json_kinds(r#"{"ssn":"123456789012"}"#), set(&[]));
}

#[test]
fn ibans_and_cards_in_text() {
    assert_eq!(text_kinds("IBAN DE89 3704 0044 0532 0130 00, BIC COBADEFFXXX"), set(&[K::Iban]));
    assert_eq!(text_kinds("payout to GB82WEST12345698765432."), set(&[K::Iban]));
    assert_eq!(text_kinds("ref GB82WEST12345698765431 and DE89370400440532013001"), set(&[]));
    assert_eq!(text_kinds("card: 4012888888881881 exp 11/28"), set(&[K::CreditCard]));
    assert_eq!(text_kinds("amex 3782-822463-10005"), set(&[K::CreditCard]));
    // Luhn-valid numbers that are not cards: no brand, wrong length, decimals, trivial
    assert_eq!(text_kinds("ts 1714550400000 id 1234567812345670 v0.4111111111111111 n 4111111111111111111111 z 0000000000000000"), set(&[]));
}

#[test]
fn emails_and_look_alikes() {
    assert_eq!(text_kinds("Contact: ada.lovelace@example.net."), set(&[K::Email]));
    assert_eq!(text_kinds("icon@2x.png logo@3x.webp lodash@4.17.21 @mention user@localhost https://u@host.example.com/"), set(&[]));
}

#[test]
fn postal_addresses_in_text_are_conservative() {
    assert_eq!(text_kinds("Ship to 221 Baker Street, London"), set(&[K::Address]));
    assert_eq!(text_kinds("Deliver to 1600 Elm Road Springfield IL 62704"), set(&[K::Address]));
    assert_eq!(text_kinds("We moved 12 Maple Street items. 2 Way Radio. 5 Star Drive in 2024."), set(&[]));
    assert_eq!(json_kinds(r#"{"address":"N/A","email_address":"x","ip_address":"x","line1":"Widget"}"#), set(&[]));
}

// ---------------------------------------------------------------- credentials

#[test]
fn jwts_where_they_leak() {
    let t = jwt();
    // issued in a response body: reported
    let j = format!(r#"{{"access_token":"{t}","token_type":"Bearer","expires_in":3600}}"#);
    let (f, _) = scan_resp(&resp("application/json", j.as_bytes()));
    assert_eq!(kinds(&f), set(&[K::Jwt]));
    assert_no_raw(&f, &[&t]);
    // carried in Authorization or a cookie: authentication, not reported
    let bearer = format!("Bearer {t}");
    let cookie = format!("session={t}");
    let (f, _) = scan_req(&tx("GET", "/v2/users/1001", &[("authorization", &bearer), ("cookie", &cookie)], b"", &[], b""));
    assert!(f.is_empty(), "{f:?}");
    // in a URL or another header: reported
    let (f, _) = scan_req(&tx("GET", &format!("/cb?id_token={t}"), &[("x-id-token", &t)], b"", &[], b""));
    assert_eq!(kinds(&f), set(&[K::Jwt]));
    let mut locs: Vec<String> = f.iter().map(|x| x.location.to_string()).collect();
    locs.sort();
    assert_eq!(locs, vec!["header:x-id-token", "query:id_token"]);
    // Set-Cookie with a JWT: a session being issued
    let sc = format!("sid={t}; Path=/; HttpOnly");
    let (f, _) = scan_resp(&tx("POST", "/login", &[], b"", &[("set-cookie", &sc)], b""));
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn secrets_in_responses() {
    let j = r#"{"service":"shop-api","build":"2.14.3-4f1c2e9","env":{"DATABASE_DSN":"postgres://shop:Fake-Db-Passw0rd@db.internal.shop.test:5432/shop",
        "JWT_SECRET":"tgen-not-a-real-secret","PAYMENT_GATEWAY_KEY":"sk_fake_0000000000000000tgen"},"goroutines":112,"heap_alloc":48213344}"#;
    let (f, _) = scan_resp(&resp("application/json", j.as_bytes()));
    assert_eq!(kinds(&f), set(&[K::Secret]), "{f:?}");
    let mut locs = at_location(&f, K::Secret);
    locs.sort();
    assert_eq!(locs, vec!["body:$.env.DATABASE_DSN", "body:$.env.JWT_SECRET"]);
    assert_no_raw(&f, &["Fake-Db-Passw0rd", "tgen-not-a-real-secret"]);

    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234\n-----END RSA PRIVATE KEY-----\n";
    assert_eq!(text_kinds(&format!("key:\n{pem}")), set(&[K::Secret]));
    assert_eq!(text_kinds("aws_access_key_id = AKIAIOSFODNN7EXAMPLE"), set(&[K::Secret]));
    assert_eq!(text_kinds("token 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"), set(&[K::Secret]));
    assert_eq!(text_kinds("maps AIzaSyD-abcdefghijklmnopqrstuvwxyz01234 and xoxb-123456789012-abcdefghij"), set(&[K::Secret]));
    assert_eq!(json_kinds(r#"{"client_secret":"s3cr3t-value-xyz"}"#), set(&[K::Secret]));
    assert_eq!(json_kinds(r#"{"private_key":"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"}"#), set(&[K::Secret]));
    // tokens served in a response are secrets when they look like one
    assert_eq!(json_kinds(r#"{"token":"rt_9f86d081884c7d659a2feaa0c55ad015"}"#), set(&[K::Secret]));
    // not secrets: placeholders, paging and anti-CSRF tokens, public keys, booleans
    assert_eq!(
        json_kinds(r#"{"client_secret":"********","db_password":"<redacted>","csrf_token":"a8F3kLm92QzX7pVb4RtY","next_page_token":"Q2hhcmxpZTEyMzQ1Njc4OQ","is_secret":true,"secret":null,"token_type":"Bearer"}"#),
        set(&[])
    );
}

#[test]
fn passwords_and_api_keys_in_requests() {
    let t = tx(
        "POST",
        "/v1/login?api_key=rk_report_c81e728d9d4c2f63",
        &[("content-type", "application/json"), ("x-api-key", "pk_partner_7f3c9a2e41b84d0c9e11")],
        br#"{"username":"alice@shop.test","password":"correct-horse-battery-staple"}"#,
        &[],
        b"",
    );
    let (f, _) = scan_req(&t);
    assert_eq!(kinds(&f), set(&[K::Email, K::Password, K::ApiKey]));
    let mut locs = at_location(&f, K::ApiKey);
    locs.sort();
    assert_eq!(locs, vec!["header:x-api-key", "query:api_key"]);
    assert_eq!(at_location(&f, K::Password), vec!["body:$.password"]);
    assert_no_raw(&f, &["correct-horse-battery-staple", "pk_partner_7f3c9a2e41b84d0c9e11", "rk_report_c81e728d9d4c2f63", "alice@shop.test"]);
    // a form and a query
    let t = tx("POST", "/login?pwd=hunter2", &[("content-type", "application/x-www-form-urlencoded")], b"user=bob%40example.com&password=p%40ss+word&remember=1", &[], b"");
    let (f, _) = scan_req(&t);
    assert_eq!(kinds(&f), set(&[K::Email, K::Password]));
    let mut locs = at_location(&f, K::Password);
    locs.sort();
    assert_eq!(locs, vec!["body:password", "query:pwd"]);
    assert_no_raw(&f, &["hunter2", "p@ss word", "bob@example.com"]);
    // other auth headers are not reported here
    let (f, _) = scan_req(&tx("GET", "/", &[("authorization", "Basic YWRtaW46czNjcjN0"), ("proxy-authorization", "Basic eDp5")], b"", &[], b""));
    assert!(f.is_empty());
    // a request bearer-like token in the body is authentication, unless it is a JWT
    let (f, _) = scan_req(&tx("POST", "/t", &[("content-type", "application/json")], br#"{"refresh_token":"rt_9f86d081884c7d659a2feaa0c55ad015"}"#, &[], b""));
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn cookies_leak_personal_data_only() {
    let (f, _) = scan_req(&tx("GET", "/", &[("cookie", "sid=9f86d081884c7d659a2feaa0c55ad015; email=alice%40shop.test; pw=hunter2")], b"", &[], b""));
    assert_eq!(kinds(&f), set(&[K::Email]));
    assert_eq!(at_location(&f, K::Email), vec!["header:cookie"]);
    let (f, _) = scan_resp(&tx("GET", "/", &[], b"", &[("set-cookie", "last_user=bob@example.com; Path=/; Domain=shop.test")], b""));
    assert_eq!(kinds(&f), set(&[K::Email]));
}

#[test]
fn forwarding_headers_are_not_leaks() {
    let (f, _) = scan_req(&tx("GET", "/", &[("x-forwarded-for", "203.0.113.5, 198.51.100.2"), ("x-real-ip", "203.0.113.5"), ("user-agent", "ShopApp/3.8.1 (Android 14; Pixel 8) okhttp/4.12.0")], b"", &[], b""));
    assert!(f.is_empty(), "{f:?}");
    let (f, _) = scan_req(&tx("GET", "/", &[("x-user-email", "carol@shop.test"), ("x-customer-phone", "202-555-0133")], b"", &[], b""));
    assert_eq!(kinds(&f), set(&[K::Email, K::Phone]));
}

#[test]
fn path_segments() {
    let (f, _) = scan_req(&tx("GET", "/v2/users/alice%40example.com/profile", &[], b"", &[], b""));
    assert_eq!(kinds(&f), set(&[K::Email]));
    assert_eq!(f.first().map(|x| x.location.clone()), Some(Location::Path));
    let (f, _) = scan_req(&tx("GET", "/v2/orders/4111111111111111/items/3f2b8c1e-5d4a-4e8b-9c7d-1a2b3c4d5e6f", &[], b"", &[], b""));
    assert!(f.is_empty(), "bare digit ids: {f:?}");
    let (f, _) = scan_req(&tx("GET", "/cards/4111-1111-1111-1111", &[], b"", &[], b""));
    assert_eq!(kinds(&f), set(&[K::CreditCard]));
    let (f, _) = scan_req(&tx("CONNECT", "alice@example.com:443", &[], b"", &[], b""));
    assert!(f.is_empty());
}

// ---------------------------------------------------------------- other formats

#[test]
fn multipart_fields_and_files() {
    let b = b"--XyZ\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nalice@shop.test\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"c.csv\"\r\nContent-Type: text/csv\r\n\r\n\
email,first_name,phone\nbob@example.com,Bob,202-555-0122\n\r\n--XyZ--\r\n";
    let t = tx("POST", "/v2/uploads", &[("content-type", "multipart/form-data; boundary=XyZ")], b, &[], b"");
    let (f, _) = scan_req(&t);
    assert_eq!(kinds(&f), set(&[K::Email, K::Password, K::Phone]));
    let mut locs: Vec<String> = f.iter().map(|x| format!("{} {}", x.kind, x.location)).collect();
    locs.sort();
    assert_eq!(locs, vec!["email body:email", "email body:upload/csv:email", "password body:password", "phone body:upload/csv:phone"]);
    // quoted boundary, cut in the middle of a part
    let cut = b"--\"b\"\r\ncontent-disposition: form-data; name=\"ssn\"\r\n\r\n123-45-6789\r\n--\"b\"\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nada@exam";
    let (f, _) = scan_req(&tx("POST", "/", &[("content-type", "multipart/form-data; boundary=\"\\\"b\\\"\"")], cut, &[], b""));
    let _ = f; // a malformed boundary parameter must not panic
    let b2 = b"--b\r\nContent-Disposition: form-data; name=\"ssn\"\r\n\r\n123-45-6789\r\n--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nada@example.com and mo";
    let (f, _) = scan_req(&tx("POST", "/", &[("content-type", "multipart/form-data; boundary=b")], b2, &[], b""));
    assert_eq!(kinds(&f), set(&[K::Ssn, K::Email]));
}

#[test]
fn soap_and_html() {
    let soap = br#"<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><GetCustomerResponse xmlns="urn:shop:legacy"><Customer><Id>77</Id><Name>Ada Lovelace</Name><Email>ada.lovelace@example.net</Email><Phone>202-555-0142</Phone><dob>1985-12-10</dob></Customer></GetCustomerResponse></soap:Body></soap:Envelope>"#;
    let (f, _) = scan_resp(&resp("text/xml; charset=utf-8", soap));
    assert_eq!(kinds(&f), set(&[K::Email, K::Phone, K::DateOfBirth]));
    assert_eq!(at_location(&f, K::Phone), vec!["body://Phone"]);
    let html = br#"<html><head><title>Customer 42</title></head><body><table border="1"><tr><th>ID</th><td>42</td></tr><tr><th>E-Mail</th><td>customer42@example.net</td></tr><tr><th>Phone</th><td>(202) 555-0188</td></tr><tr><th>Card</th><td>4012888888881881</td></tr><tr><th>Last IP</th><td>198.51.100.9</td></tr></table>
        <form><input type="password" name="pw" value="s3cret!"><input type="hidden" name="authenticity_token" value="Q2hhcmxpZTEyMzQ1Njc4OQabc"><a href="mailto:help@shop.example">help</a></form><!-- 4111111111111111 --></body></html>"#;
    let (f, _) = scan_resp(&resp("text/html; charset=iso-8859-1", html));
    assert_eq!(kinds(&f), set(&[K::Email, K::Phone, K::CreditCard, K::IpAddress, K::Password]), "{f:?}");
    assert_no_raw(&f, &["s3cret!", "customer42@example.net", "4012888888881881"]);
    let (f, _) = scan_resp(&resp("text/html", b"<html><body><h1>404 Not Found</h1><p>Phone support: see 2024 plan, SKU 000114</p></body></html>"));
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn csv_columns() {
    let csv = b"customer_id,name,email,phone,card_number,card_exp,last_order,dob\r\n1001,Ava Smith,ava.smith1001@example.org,202-555-0101,5105105105105100,01/2027,2023-01-01,1990-05-23\r\n";
    let (f, _) = scan_resp(&resp("text/csv", csv));
    assert_eq!(kinds(&f), set(&[K::Email, K::Phone, K::CreditCard, K::DateOfBirth]));
    assert_eq!(at_location(&f, K::Phone), vec!["body:csv:phone"]);
    // no header row: only shape-identified kinds
    let (f, _) = scan_resp(&resp("text/csv", b"1001,ava@example.org,202-555-0101,1990-05-23\n"));
    assert_eq!(kinds(&f), set(&[K::Email]));
    // a first row of data is not taken for a header (its cells would show as names)
    let (f, _) = scan_resp(&resp("text/csv", b"Ava,Smith,Springfield\nBo,Li,ava@example.org\n"));
    assert_eq!(at_location(&f, K::Email), vec!["body:text"]);
}

#[test]
fn binary_and_untyped_bodies() {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(b"4111111111111111 alice@example.com");
    let (f, s) = scan_resp(&resp("image/png", &png));
    assert!(f.is_empty());
    assert_eq!((s.binary_skipped, s.bodies_scanned), (1, 0));
    // no content type: sniffed
    let (f, _) = scan_resp(&tx("GET", "/", &[], b"", &[], br#"{"email":"z@example.com"}"#));
    assert_eq!(kinds(&f), set(&[K::Email]));
}

// ---------------------------------------------------------------- encodings

const SECRET_JSON: &str = r#"{"customer":{"email":"liam.smith1011@example.com","name":"Liam Smith"},"payment":{"card_number":"4111111111111111"}}"#;

#[test]
fn compressed_bodies() {
    let want = set(&[K::Email, K::CreditCard]);
    for (enc, data) in [("gzip", gzip(SECRET_JSON.as_bytes())), ("x-gzip", gzip(SECRET_JSON.as_bytes())), ("deflate", zlib(SECRET_JSON.as_bytes())), ("deflate", raw_deflate(SECRET_JSON.as_bytes())), ("br", brotli_stored(SECRET_JSON.as_bytes()))] {
        let t = tx("GET", "/", &[], b"", &[("content-type", "application/json"), ("content-encoding", enc)], &data);
        let (f, s) = scan_resp(&t);
        assert_eq!(kinds(&f), want, "{enc}");
        assert_eq!((s.decompressed, s.decompress_errors), (1, 0), "{enc}");
    }
    // a real brotli stream
    let t = tx("GET", "/", &[], b"", &[("content-type", "application/json"), ("content-encoding", "br")], &BROTLI_JSON);
    let (f, s) = scan_resp(&t);
    assert_eq!(kinds(&f), set(&[K::Email, K::Phone]));
    assert_eq!(s.decompressed, 1);
    // stacked codings: gzip then br
    let stacked = brotli_stored(&gzip(SECRET_JSON.as_bytes()));
    let t = tx("GET", "/", &[], b"", &[("content-type", "application/json"), ("content-encoding", "gzip, br")], &stacked);
    assert_eq!(kinds(&scan_resp(&t).0), want);
}

#[test]
fn truncated_compressed_samples_decode_partially() {
    let mut big = String::from(r#"{"users":["#);
    for i in 0..400 {
        big.push_str(&format!(r#"{{"id":{i},"email":"user{i}@example.com","bio":"{}"}},"#, "lorem ipsum ".repeat(i % 7)));
    }
    big.push_str("{}]}");
    let z = gzip(big.as_bytes());
    let half = &z[..z.len() / 2];
    let t = tx("GET", "/", &[], b"", &[("content-type", "application/json"), ("content-encoding", "gzip")], half);
    let (f, s) = scan_resp(&t);
    assert_eq!(kinds(&f), set(&[K::Email]));
    assert_eq!((s.decompressed, s.decompress_errors, s.json_truncated), (1, 0, 1));
    assert!(f.iter().any(|x| x.count > 10));
    // brotli cut short
    let t = tx("GET", "/", &[], b"", &[("content-type", "application/json"), ("content-encoding", "br")], &BROTLI_JSON[..60]);
    let _ = scan_resp(&t);
    for cut in 0..BROTLI_JSON.len() {
        let t = tx("GET", "/", &[], b"", &[("content-type", "application/json"), ("content-encoding", "br")], &BROTLI_JSON[..cut]);
        let (f, _) = scan_resp(&t);
        assert!(kinds(&f).is_subset(&set(&[K::Email, K::Phone])), "cut {cut}");
    }
}

#[test]
fn gzip_bomb_stops_at_the_limit() {
    // 100 MB of zeros compress to about 100 KB
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..100 {
        let _ = e.write_all(&zeros);
    }
    let bomb = e.finish().unwrap_or_default();
    assert!(bomb.len() < 200_000, "{}", bomb.len());
    let t = tx("GET", "/", &[], b"", &[("content-type", "text/plain"), ("content-encoding", "gzip")], &bomb);
    // bomb guard below the scan budget
    let limits = ScanLimits { max_decompressed_bytes: 256 * 1024, max_scan_bytes: 1 << 20, ..ScanLimits::default() };
    let start = std::time::Instant::now();
    let (f, s) = scan_resp_with(&t, &limits);
    assert!(f.is_empty());
    assert_eq!((s.bomb_guard_hit, s.scan_limit_hit, s.decompressed), (1, 0, 1));
    // defaults: the last stage stops at the scan budget
    let (_, s) = scan_resp(&t);
    assert_eq!((s.bomb_guard_hit, s.scan_limit_hit), (0, 1));
    assert!(start.elapsed().as_secs() < 5);
    // an intermediate stage is bounded by the bomb guard: gzip inside gzip
    let double = gzip(&bomb);
    let t = tx("GET", "/", &[], b"", &[("content-type", "text/plain"), ("content-encoding", "gzip, gzip")], &double);
    let limits = ScanLimits { max_decompressed_bytes: 4096, ..ScanLimits::default() };
    let (_, s) = scan_resp_with(&t, &limits);
    assert!(s.bomb_guard_hit >= 1, "{s:?}");
}

#[test]
fn bad_or_unknown_codings() {
    // labelled gzip, sent plain
    let t = tx("GET", "/", &[], b"", &[("content-type", "application/json"), ("content-encoding", "gzip")], br#"{"email":"p@example.com"}"#);
    let (f, s) = scan_resp(&t);
    assert_eq!(kinds(&f), set(&[K::Email]));
    assert_eq!(s.decompress_errors, 1);
    // corrupt after a good start: what decoded is scanned
    let mut z = gzip(SECRET_JSON.as_bytes());
    let n = z.len();
    for b in z.iter_mut().skip(n / 2) {
        *b ^= 0x55;
    }
    let _ = scan_resp(&tx("GET", "/", &[], b"", &[("content-type", "application/json"), ("content-encoding", "gzip")], &z));
    // unknown coding: not scanned
    let t = tx("GET", "/", &[], b"", &[("content-type", "application/json"), ("content-encoding", "zstd")], br#"{"email":"p@example.com"}"#);
    let (f, s) = scan_resp(&t);
    assert!(f.is_empty());
    assert_eq!(s.unsupported_encoding, 1);
}

// ---------------------------------------------------------------- limits

#[test]
fn limits_are_counted() {
    let j = br#"{"a":"a1@example.com","b":"+1-202-555-0111","c":"4111111111111111","d":"GB82WEST12345698765432"}"#;
    let limits = ScanLimits { max_findings: 2, ..ScanLimits::default() };
    let (f, s) = scan_resp_with(&resp("application/json", j), &limits);
    assert_eq!(f.len(), 2);
    assert_eq!(s.findings_limit_hit, 1);
    let limits = ScanLimits { max_findings: 0, ..ScanLimits::default() };
    let (f, s) = scan_resp_with(&resp("application/json", j), &limits);
    assert!(f.is_empty());
    assert_eq!(s.findings_limit_hit, 0);
    // scan budget: only the first bytes are read
    let limits = ScanLimits { max_scan_bytes: 30, ..ScanLimits::default() };
    let (f, s) = scan_resp_with(&resp("application/json", j), &limits);
    assert_eq!(kinds(&f), set(&[K::Email]));
    assert_eq!((s.scan_limit_hit, s.json_truncated), (1, 1));
    // depth
    let deep = br#"{"a":{"b":{"c":{"email":"deep@example.com"}}},"email":"top@example.com"}"#;
    let limits = ScanLimits { max_json_depth: 2, ..ScanLimits::default() };
    let (f, s) = scan_resp_with(&resp("application/json", deep), &limits);
    assert_eq!(at_location(&f, K::Email), vec!["body:$.email"]);
    assert_eq!(s.json_depth_limit_hit, 1);
    let limits = ScanLimits { max_json_depth: 0, ..ScanLimits::default() };
    let (f, _) = scan_resp_with(&resp("application/json", deep), &limits);
    assert!(f.is_empty());
    // multipart parts
    let mut b = Vec::new();
    for i in 0..(formats::MAX_MULTIPART_PARTS + 5) {
        b.extend_from_slice(format!("--q\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n").as_bytes());
    }
    b.extend_from_slice(b"--q--\r\n");
    let (_, s) = scan_req(&tx("POST", "/", &[("content-type", "multipart/form-data; boundary=q")], &b, &[], b""));
    assert_eq!(s.multipart_parts_limit_hit, 1);
}

#[test]
fn one_finding_per_kind_and_location() {
    let mut j = String::from(r#"{"users":["#);
    for i in 0..100 {
        j.push_str(&format!(r#"{{"email":"u{i}@example.com","phone":"+1-212-555-01{:02}"}},"#, i));
    }
    j.push_str("{}]}");
    let (f, s) = scan_resp(&resp("application/json", j.as_bytes()));
    assert_eq!(f.len(), 2);
    assert!(f.iter().all(|x| x.count == 100));
    assert_eq!(s.findings_limit_hit, 0);
}

#[test]
fn fingerprints_are_normalised_and_keyed() {
    let a = scan_resp(&resp("text/plain", b"card 4111 1111 1111 1111")).0;
    let b = scan_resp(&resp("application/json", br#"{"card_number":"4111111111111111"}"#)).0;
    assert_eq!(a.first().map(|x| &x.fingerprint), b.first().map(|x| &x.fingerprint));
    assert_eq!(a.first().map(|x| x.redacted.as_str()), Some("4111…1111 (16 chars)"));
    let e1 = scan_resp(&resp("text/plain", b"Alice@Shop.Test")).0;
    let e2 = scan_resp(&resp("text/plain", b"alice@shop.test")).0;
    assert_eq!(e1.first().map(|x| &x.fingerprint), e2.first().map(|x| &x.fingerprint));
    let other = Fingerprinter::new([8; KEY_LEN]);
    let mut s = ScanStats::default();
    let c = scan_response(&resp("text/plain", b"alice@shop.test"), &ScanLimits::default(), &other, &mut s);
    assert_ne!(c.first().map(|x| &x.fingerprint), e2.first().map(|x| &x.fingerprint));
}

#[test]
fn findings_never_hold_raw_values() {
    let t = jwt();
    let raw = [
        "liam.smith1011@example.com",
        "+1-202-555-0144",
        "4111111111111111",
        "5555555555554444",
        "DE89370400440532013000",
        "123-45-6789",
        "1984-02-11",
        "12 Maple Street, Springfield, IL 62704",
        "198.51.100.77",
        "Fake-Db-Passw0rd",
        "tgen-not-a-real-secret",
        "AKIAIOSFODNN7EXAMPLE",
        "correct-horse-battery-staple",
        "pk_partner_7f3c9a2e41b84d0c9e11",
    ];
    let j = format!(
        r#"{{"email":"{}","phone":"{}","card":"{}","c2":"5555 5555 5555 4444","iban":"{}","ssn":"{}","dob":"{}","address":"{}","ip":"{}",
        "dsn":"mysql://u:{}@db.example.com/x","jwt_secret":"{}","note":"{}","password":"{}","api_key":"{}","token":"{t}"}}"#,
        raw[0], raw[1], raw[2], raw[4], raw[5], raw[6], raw[7], raw[8], raw[9], raw[10], raw[11], raw[12], raw[13]
    );
    let (f, _) = scan_resp(&resp("application/json", j.as_bytes()));
    assert_eq!(
        kinds(&f),
        set(&[K::Email, K::Phone, K::CreditCard, K::Iban, K::Ssn, K::DateOfBirth, K::Address, K::IpAddress, K::Secret, K::Password, K::ApiKey, K::Jwt])
    );
    assert_no_raw(&f, &raw);
    assert_no_raw(&f, &[&t, "5555 5555 5555 4444", "202-555-0144", "Maple Street"]);
}

// ---------------------------------------------------------------- robustness

#[test]
fn every_truncation_of_a_json_body() {
    let t = jwt();
    let j = format!(
        r#"{{"user":{{"id":1001,"email":"alice@shop.test","phone":"+1-202-555-0111","dob":"1984-02-11","ssn":"123-45-6789",
        "addresses":[{{"line1":"12 Maple Street","city":"Springfield"}}],"cards":[{{"card_number":"4111 1111 1111 1111"}}],
        "iban":"DE89370400440532013000","ip":"198.51.100.7","password":"pw-1","api_key":"k-123456","access_token":"{t}",
        "esc":"a\"b\\c\u00e9\ud83d\ude00","n":[1,-2.5e3,true,false,null]}}}}"#
    );
    let full = kinds(&scan_resp(&resp("application/json", j.as_bytes())).0);
    assert_eq!(full.len(), 11, "{full:?}");
    for cut in 0..=j.len() {
        let (f, _) = scan_resp(&resp("application/json", &j.as_bytes()[..cut]));
        let k = kinds(&f);
        assert!(k.is_subset(&full), "cut {cut}: {k:?}");
        // also as form, text, xml, csv and multipart, and gzip-cut
        for ct in ["application/x-www-form-urlencoded", "text/plain", "text/xml", "text/csv", "multipart/form-data; boundary=\""] {
            let _ = scan_resp(&resp(ct, &j.as_bytes()[..cut]));
        }
    }
    let z = gzip(j.as_bytes());
    for cut in 0..=z.len() {
        let t = tx("GET", "/", &[], b"", &[("content-type", "application/json"), ("content-encoding", "gzip")], &z[..cut]);
        let _ = scan_resp(&t);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ctypes = [
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=zz",
        "text/xml",
        "text/html",
        "text/csv",
        "text/plain",
        "",
        "image/png",
    ];
    let encodings = ["", "gzip", "deflate", "br", "gzip, br", "identity"];
    // an alphabet rich in the bytes that start candidates and structure
    let alphabet: &[u8] = b"{}[]\":,@.+-_/\\ \n\r\t0123456789eyJAKIAghpxoxsk_live_DEGB<>=&%;*#'abcxyzZ\x00\xff\x1f\x8b";
    for round in 0..3000 {
        let len = rng.below(600);
        let mut b: Vec<u8> = (0..len)
            .map(|_| if round % 2 == 0 { (rng.next() & 0xff) as u8 } else { alphabet[rng.below(alphabet.len())] })
            .collect();
        if round % 7 == 0 {
            b = gzip(&b);
            let cut = rng.below(b.len() + 1);
            b.truncate(cut);
        }
        let ct = ctypes[rng.below(ctypes.len())];
        let enc = encodings[rng.below(encodings.len())];
        let target = format!("/{}?{}", String::from_utf8_lossy(&b[..b.len().min(40)]), String::from_utf8_lossy(&b[b.len().min(40)..b.len().min(80)]));
        let mut t = tx("POST", &target, &[("content-type", ct), ("content-encoding", enc), ("cookie", &String::from_utf8_lossy(&b[..b.len().min(30)]))], &b, &[("content-type", ct), ("content-encoding", enc)], &b);
        t.request_headers.push(Header { name: "x-junk".into(), value: b.clone().into() });
        let limits = ScanLimits { max_findings: 1 + rng.below(64), max_json_depth: rng.below(40), max_scan_bytes: 1 + rng.below(4096), max_decompressed_bytes: 1 + rng.below(1 << 16) };
        let mut s = ScanStats::default();
        let f1 = scan_request(&t, &limits, &fp(), &mut s);
        let f2 = scan_response(&t, &limits, &fp(), &mut s);
        assert!(f1.len() <= limits.max_findings && f2.len() <= limits.max_findings);
    }
}

#[test]
fn shop_payloads_match_their_kinds() {
    // payloads served by the trafficgen "shop" profile, with the kinds it declares
    let cases: &[(&str, &str, &[SensitiveKind])] = &[
        ("application/json", r#"{"id":1001,"username":"liam1001","email":"liam.smith1001@example.com","phone":"+1-202-555-0101","date_of_birth":"1990-07-23","first_name":"Liam","last_name":"Smith","created_at":"2022-11-03T08:15:00Z","status":"active","loyalty_tier":"silver","marketing_opt_in":true}"#, &[K::Email, K::Phone, K::DateOfBirth]),
        ("application/json", r#"{"user_id":1003,"orders":[{"id":"3f2b8c1e-5d4a-4e8b-9c7d-1a2b3c4d5e6f","status":"delivered","total":{"amount":"129.90","currency":"USD"},"placed_at":"2024-03-02T10:11:12Z","ship_to":"221 Baker Street, Springfield, IL 62704"}],"next_cursor":null}"#, &[K::Address]),
        ("application/json", r#"{"user_id":1003,"payment_methods":[{"id":"pm_1","type":"card","brand":"visa","card_number":"6011111111111117","exp_month":12,"exp_year":2029,"holder":"Noah Nguyen"},{"id":"pm_2","type":"sepa_debit","iban":"DE89370400440532013000","holder":"Noah Nguyen"}]}"#, &[K::CreditCard, K::Iban]),
        ("application/json", r#"{"id":"5e0c7a2b-1d3f-4a5b-8c9d-0e1f2a3b4c5d","status":"processing","customer":{"email":"liam.smith1011@example.com","name":"Liam Smith"},"ship_to":{"line1":"48 Oak Avenue","city":"Portland","region":"OR","postal_code":"97205","country":"US"},"payment":{"brand":"visa","card_number":"4111111111111111","exp":"12/29"},"total":{"amount":"88.40","currency":"USD"}}"#, &[K::Email, K::Address, K::CreditCard]),
        ("application/json", r#"{"order_id":"5e0c7a2b-1d3f-4a5b-8c9d-0e1f2a3b4c5d","items":[{"sku":"SKU-000114","qty":2,"unit_price":"19.90"},{"sku":"SKU-000087","qty":1,"unit_price":"48.60"}]}"#, &[]),
        ("application/json", r#"{"user_id":1002,"items":[{"id":11,"sku":"SKU-000114","qty":2},{"id":12,"sku":"SKU-000031","qty":1}],"subtotal":{"amount":"87.70","currency":"USD"}}"#, &[]),
        ("application/json", r#"{"sku":"SKU-000123","warehouse":"FRA-1","on_hand":123,"reserved":2,"updated_at":"2026-11-23T19:00:00+00:00"}"#, &[]),
        ("application/json", r#"{"id":"5e0c7a2b-1d3f-4a5b-8c9d-0e1f2a3b4c5d","ip":"198.18.10.12","user_agent":"ShopApp/3.8.1 (Android 14; Pixel 8) okhttp/4.12.0","created_at":"2024-05-01T09:00:00Z","last_seen":"2026-11-23T19:00:00+00:00","mfa":true}"#, &[K::IpAddress]),
        ("application/json", r#"{"entries":[{"ts":"2024-05-01T00:00:00Z","actor":"ava.rossi17@example.org","ip":"198.51.100.23","action":"login"}]}"#, &[K::IpAddress, K::Email]),
        ("application/json", r#"{"id":4411,"name":"Ava Rossi","email":"ava.rossi4411@example.com","phone":"+1-202-555-0111","ssn":"512-45-6711","date_of_birth":"1988-09-14","address":"1600 Elm Road, Springfield, IL 62704","risk_score":0.41,"notes":"VIP customer"}"#, &[K::Email, K::Phone, K::Ssn, K::DateOfBirth, K::Address]),
        ("application/json", r#"{"keys":[{"kty":"oct","kid":"tgen-1","alg":"HS256","use":"sig"},{"kty":"RSA","kid":"tgen-rsa-2","alg":"RS256","use":"sig","e":"AQAB","n":"S14VrR1JrslQmMEGepcR87i0PbFBN2rWWNamAkV2rqui3Y-psMClSbnTdVMEHgKfYYJsS51UPrHbfhIy01RHY0teFa0dSa7JUJjBBnqXEfO4tD2xQTdq1ljWpgJFdq6rot2PqbDApUm503VTBB4Cn2GCbEudVD6x234SMtNUR2NLXhWtHUmuyVCYwQZ6lxHzuLQ9sUE3atZY1qYCRXauq6Ldj6mwwKVJudN1UwQeAp9hgmxLnVQ-sdt-EjLTVEdjS14VrR1JrslQmMEGepcR87i0PbFBN2rWWNamAkV2rqui3Y-psMClSbnTdVMEHgKfYYJsS51UPrHbfhIy01RHYw"}]}"#, &[]),
        ("application/json", r#"{"status":"ok","service":"shop-api","version":"2.14.3"}"#, &[]),
        ("application/json", r#"{"error":"internal_error","detail":"SQLSTATE[42601]: syntax error at or near ... LINE 1: SELECT id, slug, name FROM products WHERE name ILIKE ...","trace":["ProductRepository.search(ProductRepository.java:118)","SearchController.get(SearchController.java:54)"]}"#, &[]),
        ("application/json", r#"{"upload_id":"5e0c7a2b-1d3f-4a5b-8c9d-0e1f2a3b4c5d","bytes":48213,"status":"received"}"#, &[]),
        ("text/plain", "# HELP http_requests_total Total HTTP requests.\n# TYPE http_requests_total counter\nhttp_requests_total{service=\"shop-api\",code=\"200\"} 4111111\nprocess_resident_memory_bytes 2.83115520e+08\nhttp_request_duration_seconds{quantile=\"0.99\"} 0.4123\n", &[]),
        ("text/html; charset=iso-8859-1", "<html><body><b>Warning</b>: missing id in /var/www/legacy/customer.php on line 12</body></html>", &[]),
    ];
    for (ct, b, want) in cases {
        let (f, _) = scan_resp(&resp(ct, b.as_bytes()));
        assert_eq!(kinds(&f), set(want), "{b}\n{f:?}");
    }
}

/// Runs of candidate starts that a naive scanner would re-examine from every
/// position. This test checks they scan without a panic and within the
/// findings budget; their cost (linear, not quadratic) is measured by the
/// `scan_adversarial` case of `benches/pipeline.rs`, not timed here.
#[test]
fn adversarial_inputs_scan_within_budget() {
    let units: &[&str] = &[
        "-eyJ", "-xoxb", "-ghp_", "+1( ", "://", "a@", "@a", "4111 ", "-----BEGIN PRIVATE KEY-----", "<a b=", "\"a\":", "[", "{\"a\":",
        "AKIA", "DE89 ", "123-45-", "1.2.3.", "12 Maple ", "--a\r\n", "&#", "\\u00", "a,", "\"",
    ];
    for u in units {
        let body = u.repeat(65536 / u.len());
        for ct in ["text/plain", "application/json", "text/html", "text/csv", "multipart/form-data; boundary=a", "application/x-www-form-urlencoded"] {
            let (f, _) = scan_resp(&resp(ct, body.as_bytes()));
            assert!(f.len() <= ScanLimits::default().max_findings, "{u:?} as {ct}: {} findings", f.len());
        }
    }
}

#[test]
fn echoes_of_the_request_are_not_disclosure() {
    let t = jwt();
    // login: the user name comes back, the token is new
    let body = format!(r#"{{"access_token":"{t}","token_type":"Bearer","user":{{"id":1001,"email":"alice@shop.test"}}}}"#);
    let login = tx("POST", "/v1/login", &[("content-type", "application/json")], br#"{"username":"Alice@Shop.test","password":"pw-1"}"#, &[("content-type", "application/json")], body.as_bytes());
    let (f, s) = scan_resp(&login);
    assert_eq!(kinds(&f), set(&[K::Jwt]));
    assert_eq!(s.echoed_values, 1);
    // the Basic user name echoed as the actor of an admin action
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("admin@shop.test:S3cr3t-Admin!"));
    let disable = tx("POST", "/admin/users/17/disable", &[("authorization", &basic)], br#"{"reason":"fraud review"}"#, &[("content-type", "application/json")], br#"{"id":17,"status":"disabled","by":"admin@shop.test"}"#);
    assert!(scan_resp(&disable).0.is_empty());
    // a query parameter echoed (percent-encoded in the target)
    let q = tx("GET", "/lookup?email=bob%40example.com", &[], b"", &[("content-type", "application/json")], br#"{"email":"bob@example.com","phone":"+1-202-555-0199"}"#);
    assert_eq!(kinds(&scan_resp(&q).0), set(&[K::Phone]));
    // other data, and credentials even when echoed, are reported
    let put = tx("PUT", "/v2/users/1001", &[("content-type", "application/json")], br#"{"email":"alice@shop.test","password":"hunter22"}"#, &[("content-type", "application/json")], br#"{"email":"liam.smith1001@example.com","password":"hunter22"}"#);
    assert_eq!(kinds(&scan_resp(&put).0), set(&[K::Email, K::Password]));
    // the request side is never affected
    assert_eq!(kinds(&scan_req(&login).0), set(&[K::Email, K::Password]));
}

/// Contract of the body memo: a body scanned again gives what a first scan
/// gives (findings, samples, counters), and nothing the memo does not key on
/// leaks between messages: the request's echo sources, the limits, the key.
#[test]
fn a_body_served_again_is_read_once_with_the_same_result() {
    let body = br#"{"email":"liam.smith1001@example.com","card":"4111 1111 1111 1111","n":[1,2,3]}"#;
    let plain = tx("GET", "/v2/users/1001", &[], b"", &[("content-type", "application/json")], body);
    let (first, s1) = scan_resp(&plain);
    assert_eq!(kinds(&first), set(&[K::Email, K::CreditCard]));
    assert_eq!((s1.bodies_scanned, s1.body_memo_hits), (1, 0));
    let (again, s2) = scan_resp(&plain);
    assert_eq!(again, first, "same findings, fingerprints and samples");
    assert_eq!(ScanStats { body_memo_hits: 0, ..s2.clone() }, s1, "same counters");
    assert_eq!(s2.body_memo_hits, 1);
    // the same body answering a request that carried the e-mail: an echo now
    let echo = tx("GET", "/lookup?email=liam.smith1001%40example.com", &[], b"", &[("content-type", "application/json")], body);
    let (f, s) = scan_resp(&echo);
    assert_eq!(kinds(&f), set(&[K::CreditCard]));
    assert_eq!((s.echoed_values, s.body_memo_hits), (1, 0));
    // other limits: read anew, and the cut is counted
    let small = ScanLimits { max_scan_bytes: 20, ..ScanLimits::default() };
    let (f, s) = scan_resp_with(&plain, &small);
    assert_eq!((s.body_memo_hits, s.scan_limit_hit), (0, 1));
    assert!(!kinds(&f).contains(&K::CreditCard), "{f:?}");
    // another fingerprint key: fingerprints of that key, not the memo's
    let other = Fingerprinter::new([9u8; KEY_LEN]);
    let mut s = ScanStats::default();
    let f = scan_response(&plain, &ScanLimits::default(), &other, &mut s);
    assert_eq!(s.body_memo_hits, 0);
    assert_eq!(kinds(&f), kinds(&first));
    assert!(f.iter().zip(&first).all(|(a, b)| a.fingerprint != b.fingerprint));
}
