//! Authentication classification of one request.
//!
//! [`classify`] reads what credentials a request carried and returns one
//! [`Credential`] per credential: its [`AuthScheme`], its carrier (header,
//! query parameter or cookie name), a keyed fingerprint, a redacted sample,
//! what could be decoded of a JWT (never verified) and posture flags.
//!
//! # Contract
//!
//! * Pure: a function of the transaction, the configuration, the fingerprint
//!   key and whether the connection was decrypted TLS. Time is the request's
//!   packet time.
//! * Never panics on any input; whatever does not parse sets
//!   [`AuthFlags::malformed`] and classification goes on.
//! * No raw credential value is kept in anything returned: values are
//!   fingerprinted with [`Fingerprinter::fingerprint`] in the domain
//!   `auth:<scheme>` and sampled with [`redact`]. A Basic password is neither
//!   fingerprinted nor sampled: it is only judged (length, character classes,
//!   a short built-in list, the user name) and dropped.
//! * Bounded: at most [`MAX_CREDENTIALS`] credentials per request, JWT
//!   segments up to [`MAX_JWT_LEN`] bytes, claim strings cut to
//!   [`MAX_CLAIM_CHARS`] characters.
//!
//! # Where credentials are looked for
//!
//! | place | result |
//! |---|---|
//! | `Authorization: Basic b64(user:pass)` | `basic` |
//! | `Authorization: Bearer <JWT>`, or a bare JWT, or `JWT <JWT>` | `bearer_jwt` |
//! | `Authorization: Bearer <opaque>` | `bearer` |
//! | `Authorization: ApiKey …` / `Api-Key …`, or a bare opaque value | `api_key_header` |
//! | `Authorization: <other scheme> …` | `other:<scheme>` (digest, ntlm, negotiate, aws4-hmac-sha256, hawk, token, …) |
//! | a header of [`AuthConfig::api_key_headers`] | `api_key_header`, or `bearer_jwt` when the value is a JWT |
//! | any other header whose value is a JWT | `bearer_jwt` |
//! | a query parameter of [`AuthConfig::api_key_params`], or whose value is a JWT | `api_key_query` |
//! | a cookie of [`AuthConfig::session_cookies`], whose name contains one of [`AuthConfig::session_cookie_substrings`], or whose value is a JWT | `cookie_session` |
//!
//! # Wire formats
//!
//! ```text
//! RFC 9110 §11.4   credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! RFC 7617 §2      Basic: base64( user-id ":" password )   (split at the first colon;
//!                  a user id has no colon, a password may)
//! RFC 6750 §2.1    Bearer: b64token
//! RFC 7515 §7.1    JWS compact: BASE64URL(header) "." BASE64URL(payload) "." BASE64URL(signature)
//!                  header = JSON object with "alg"; payload = JSON object of claims (RFC 7519 §4.1:
//!                  iss, sub, aud = string or array, exp/nbf/iat = NumericDate, may be fractional)
//! RFC 6265 §4.2.1  cookie-string = cookie-pair *( ";" SP cookie-pair ), cookie-pair = name "=" value
//! RFC 3986 §3.4    query; application/x-www-form-urlencoded pairs, '+' = space, %XX
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::analyze::fingerprint::{memoised, redact, Fingerprinter};
use crate::analyze::split_target;
use crate::proto::HttpTransaction;

/// At most this many credentials are reported for one request.
pub const MAX_CREDENTIALS: usize = 32;
/// A token longer than this (bytes) is never decoded as a JWT.
pub const MAX_JWT_LEN: usize = 16 * 1024;
/// JWT claim strings (`alg`, `kid`, `iss`, `aud`, `typ`) are cut to this many characters.
pub const MAX_CLAIM_CHARS: usize = 256;
/// At most this many `aud` values are kept.
pub const MAX_AUDIENCES: usize = 16;
/// Carrier names (header, parameter or cookie name) are cut to this many characters.
pub const MAX_CARRIER_CHARS: usize = 64;
/// Query pairs and cookie pairs examined per request.
pub const MAX_PAIRS: usize = 256;
/// An unknown scheme name longer than this is reported as `other:unknown`.
pub const MAX_SCHEME_CHARS: usize = 24;
/// Distinct principal fingerprints kept per endpoint by [`EndpointAuth`].
pub const MAX_PRINCIPALS: usize = 1024;
/// Distinct (scheme, carrier) pairs kept per endpoint by [`EndpointAuth`].
pub const MAX_CARRIERS: usize = 64;
/// Characters kept at each end of a redacted sample (see [`redact`]).
const REDACT_KEEP: usize = 4;
/// Fingerprint domain of principals (Basic user names, JWT `sub`, API keys,
/// Digest user names, AWS/Hawk key ids), shared across schemes.
const PRINCIPAL_DOMAIN: &str = "auth:principal";

/// Lenient base64: padding optional, trailing bits tolerated.
const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_encode_padding(false)
    .with_decode_allow_trailing_bits(true)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);
const B64_STD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const B64_URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// How a credential authenticates.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthScheme {
    /// No credential (used by aggregates; [`classify`] returns an empty list instead).
    None,
    Basic,
    /// An opaque bearer token.
    Bearer,
    /// A bearer token that is a JWT.
    BearerJwt,
    ApiKeyHeader,
    ApiKeyQuery,
    CookieSession,
    /// Another `Authorization` scheme, lower case: `digest`, `ntlm`,
    /// `negotiate`, `aws4-hmac-sha256`, `hawk`, `token`, … (`unknown` when the
    /// name does not look like a scheme name).
    Other(String),
}

impl AuthScheme {
    /// The scheme's name in inventories and events: `none`, `basic`, `bearer`,
    /// `bearer_jwt`, `api_key_header`, `api_key_query`, `cookie_session`,
    /// `other:<name>`.
    pub fn as_str(&self) -> Cow<'static, str> {
        match self {
            AuthScheme::None => Cow::Borrowed("none"),
            AuthScheme::Basic => Cow::Borrowed("basic"),
            AuthScheme::Bearer => Cow::Borrowed("bearer"),
            AuthScheme::BearerJwt => Cow::Borrowed("bearer_jwt"),
            AuthScheme::ApiKeyHeader => Cow::Borrowed("api_key_header"),
            AuthScheme::ApiKeyQuery => Cow::Borrowed("api_key_query"),
            AuthScheme::CookieSession => Cow::Borrowed("cookie_session"),
            AuthScheme::Other(name) => Cow::Owned(format!("other:{name}")),
        }
    }

    /// The inverse of [`AuthScheme::as_str`]; an unknown name is `Other(name)`.
    pub fn from_name(name: &str) -> AuthScheme {
        match name {
            "none" => AuthScheme::None,
            "basic" => AuthScheme::Basic,
            "bearer" => AuthScheme::Bearer,
            "bearer_jwt" => AuthScheme::BearerJwt,
            "api_key_header" => AuthScheme::ApiKeyHeader,
            "api_key_query" => AuthScheme::ApiKeyQuery,
            "cookie_session" => AuthScheme::CookieSession,
            other => AuthScheme::Other(other.strip_prefix("other:").unwrap_or(other).to_string()),
        }
    }
}

impl fmt::Display for AuthScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// What a JWT says about itself (decoded, never verified).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct JwtInfo {
    pub alg: Option<String>,
    pub kid: Option<String>,
    pub iss: Option<String>,
    /// `aud`, whether sent as a string or an array.
    pub aud: Vec<String>,
    /// NumericDate claims in whole seconds (fractions dropped).
    pub exp: Option<i64>,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
    /// Keyed fingerprint of `sub` (domain `auth:principal`).
    pub sub_fingerprint: Option<std::sync::Arc<str>>,
    pub typ: Option<String>,
}

/// Posture findings about one credential.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuthFlags {
    /// JWT header says `alg: none` (any case).
    pub jwt_alg_none: bool,
    /// JWT payload has no `exp`.
    pub jwt_no_exp: bool,
    /// `exp - iat` (or `exp -` request time when there is no `iat`) exceeds
    /// [`AuthConfig::jwt_max_lifetime_days`].
    pub jwt_long_lived: bool,
    /// `exp` is before the request's packet time.
    pub jwt_expired: bool,
    /// Expired, and the response was 2xx.
    pub jwt_expired_accepted: bool,
    /// Basic password shorter than [`AuthConfig::basic_min_password_len`],
    /// all digits or all letters, a common password (possibly followed by
    /// digits and symbols), or containing a word of the user name.
    pub basic_weak_password: bool,
    /// Basic credentials over a connection that was not TLS.
    pub basic_cleartext: bool,
    /// The credential did not parse (bad base64, no colon in Basic, a JWT
    /// whose header or payload is not JSON, an empty credential, …).
    pub malformed: bool,
}

impl AuthFlags {
    const NAMES: [&'static str; 8] = [
        "jwt_alg_none",
        "jwt_no_exp",
        "jwt_long_lived",
        "jwt_expired",
        "jwt_expired_accepted",
        "basic_weak_password",
        "basic_cleartext",
        "malformed",
    ];

    fn values(&self) -> [bool; 8] {
        [
            self.jwt_alg_none,
            self.jwt_no_exp,
            self.jwt_long_lived,
            self.jwt_expired,
            self.jwt_expired_accepted,
            self.basic_weak_password,
            self.basic_cleartext,
            self.malformed,
        ]
    }

    /// Names of the flags that are set (the field names).
    pub fn names(&self) -> impl Iterator<Item = &'static str> {
        let v = self.values();
        Self::NAMES.into_iter().zip(v).filter(|(_, set)| *set).map(|(n, _)| n)
    }

    /// No flag is set.
    pub fn is_empty(&self) -> bool {
        !self.values().iter().any(|b| *b)
    }
}

/// One credential carried by a request. Holds no raw credential value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub scheme: AuthScheme,
    /// Header name (lower case), query parameter name or cookie name, as sent.
    pub carrier: Cow<'static, str>,
    /// Keyed fingerprint of the credential (domain `auth:<scheme>`). For Basic:
    /// of the user name only; for Digest of the user name, for AWS signatures
    /// of the access key id, for Hawk of the key id (their other parts change
    /// per request); otherwise of the whole value. Shared with the per-thread
    /// memo of the value's facts (a session's token comes back on every request).
    pub fingerprint: std::sync::Arc<str>,
    /// Keyed fingerprint (domain `auth:principal`) of who the credential
    /// names: Basic/Digest user name, JWT `sub`, API key, AWS/Hawk key id.
    pub principal_fingerprint: Option<std::sync::Arc<str>>,
    /// Redacted sample of the fingerprinted value ([`redact`] keeping 4
    /// characters at each end of long values only); Basic: of the user name.
    /// Shared like the fingerprint.
    pub redacted: std::sync::Arc<str>,
    /// Shared with the per-thread memo of decoded tokens (a session's token
    /// comes back on every request).
    pub jwt: Option<std::sync::Arc<JwtInfo>>,
    pub flags: AuthFlags,
}

/// Where to look for credentials and what counts as weak.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Request headers carrying API keys (case-insensitive).
    pub api_key_headers: Vec<String>,
    /// Query parameters carrying API keys (case-insensitive, after percent-decoding).
    pub api_key_params: Vec<String>,
    /// Cookies carrying sessions (case-insensitive).
    pub session_cookies: Vec<String>,
    /// A cookie whose lower-cased name contains one of these is a session cookie too.
    pub session_cookie_substrings: Vec<String>,
    /// A JWT living longer than this is flagged `jwt_long_lived`.
    pub jwt_max_lifetime_days: u64,
    /// A Basic password shorter than this (characters) is weak.
    pub basic_min_password_len: usize,
}

/// Default [`AuthConfig::api_key_headers`].
const API_KEY_HEADERS: [&str; 9] = [
    "x-api-key",
    "api-key",
    "apikey",
    "x-apikey",
    "x-auth-token",
    "x-access-token",
    "x-api-token",
    "authorization-token",
    "ocp-apim-subscription-key",
];
/// Default [`AuthConfig::api_key_params`].
const API_KEY_PARAMS: [&str; 8] = ["api_key", "apikey", "api-key", "key", "access_key", "token", "access_token", "auth_token"];
/// Default [`AuthConfig::session_cookies`].
const SESSION_COOKIES: [&str; 13] = [
    "sid",
    "session",
    "sessionid",
    "session_id",
    "jsessionid",
    "phpsessid",
    "asp.net_sessionid",
    "connect.sid",
    "refresh",
    "refresh_token",
    "auth",
    "token",
    "_session",
];

/// A credential's carrier name: the default carriers and `authorization`
/// shared, others copied (at most `MAX_CARRIER_CHARS` characters).
fn carrier_name(s: &str) -> Cow<'static, str> {
    let common = std::iter::once("authorization").chain(API_KEY_HEADERS).chain(API_KEY_PARAMS).chain(SESSION_COOKIES).find(|c| *c == s);
    match common {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(bounded(s, MAX_CARRIER_CHARS)),
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        fn list(v: &[&str]) -> Vec<String> {
            v.iter().map(|s| (*s).to_string()).collect()
        }
        AuthConfig {
            api_key_headers: list(&API_KEY_HEADERS),
            api_key_params: list(&API_KEY_PARAMS),
            session_cookies: list(&SESSION_COOKIES),
            session_cookie_substrings: list(&["session", "sessid"]),
            jwt_max_lifetime_days: 30,
            basic_min_password_len: 10,
        }
    }
}

/// The credentials `tx`'s request carried; empty means none (scheme `none`).
/// `over_tls` says the transaction was read from decrypted TLS (it clears
/// [`AuthFlags::basic_cleartext`]). Order: headers in the order sent (the
/// pairs of a `Cookie` header in order), then query parameters; duplicates
/// (same scheme, carrier and fingerprint) are reported once.
pub fn classify(tx: &HttpTransaction, cfg: &AuthConfig, fp: &Fingerprinter, over_tls: bool) -> Vec<Credential> {
    classify_split(tx, split_target(&tx.method, &tx.target).1, cfg, fp, over_tls)
}

/// [`classify`] with the query of the request's target already split off
/// ([`split_target`]).
pub(crate) fn classify_split(tx: &HttpTransaction, query: Option<&str>, cfg: &AuthConfig, fp: &Fingerprinter, over_tls: bool) -> Vec<Credential> {
    let mut cx = Ctx { cfg, fp, ts_us: tx.request_ts_us, status: tx.status, over_tls, out: Vec::new() };
    // the lengths of the API-key header names: most headers are told apart by
    // length alone, without comparing them with every name of the list
    let key_lengths = cfg.api_key_headers.iter().fold(0u64, |m, n| m | length_bit(n.len()));
    for h in &tx.request_headers {
        if cx.full() {
            break;
        }
        let name: &str = &h.name;
        if name.eq_ignore_ascii_case("authorization") {
            cx.authorization("authorization", &h.value);
        } else if name.eq_ignore_ascii_case("cookie") {
            cx.cookies(&h.value);
        } else if name.eq_ignore_ascii_case("proxy-authorization") {
            // credentials for a proxy, not for the API
        } else if key_lengths & length_bit(name.len()) != 0 && listed_ci(&cfg.api_key_headers, name) {
            cx.api_key_header(name, &h.value);
        } else {
            cx.jwt_header(name, &h.value);
        }
    }
    if let Some(query) = query {
        cx.query(query);
    }
    cx.out
}

/// The distinct scheme names of one request's credentials (`["none"]` when empty).
pub fn request_schemes(creds: &[Credential]) -> BTreeSet<String> {
    if creds.is_empty() {
        return BTreeSet::from([AuthScheme::None.as_str().into_owned()]);
    }
    creds.iter().map(|c| c.scheme.as_str().into_owned()).collect()
}

// ---------------------------------------------------------------------------
// classification

struct Ctx<'a> {
    cfg: &'a AuthConfig,
    fp: &'a Fingerprinter,
    ts_us: u64,
    status: Option<u16>,
    over_tls: bool,
    out: Vec<Credential>,
}

/// A token-like credential to turn into a [`Credential`].
struct Token<'v> {
    /// Scheme when the value is not a JWT.
    scheme: AuthScheme,
    /// Scheme when the value is a JWT.
    jwt_scheme: AuthScheme,
    carrier: &'v str,
    value: &'v [u8],
    /// Who the credential names, when the value is not a JWT (a JWT names its `sub`).
    principal: Option<&'v [u8]>,
    malformed: bool,
    /// The value must be a token68 (RFC 9110 §11.2: Bearer); one that is
    /// not is malformed (checked once per token, in [`TokenFacts`]).
    token68: bool,
}

impl Ctx<'_> {
    fn full(&self) -> bool {
        self.out.len() >= MAX_CREDENTIALS
    }

    fn push(&mut self, c: Credential) {
        if self.full() {
            return;
        }
        if self.out.iter().any(|o| o.scheme == c.scheme && o.carrier == c.carrier && o.fingerprint == c.fingerprint) {
            return;
        }
        self.out.push(c);
    }

    fn fingerprint(&self, scheme: &AuthScheme, value: &[u8]) -> String {
        self.fp.fingerprint(&format!("auth:{}", scheme.as_str()), value)
    }

    fn principal(&self, value: &[u8]) -> String {
        self.fp.fingerprint(PRINCIPAL_DOMAIN, value)
    }

    /// What a token's bytes alone tell (memoised per thread: a token comes
    /// back on every request of its session).
    fn token_facts(&self, t: &Token<'_>) -> TokenFacts {
        let make = || {
            let jwt = parse_jwt(t.value, self.fp);
            let scheme = if matches!(jwt, JwtParse::Jwt { .. }) { &t.jwt_scheme } else { &t.scheme };
            TokenFacts {
                fingerprint: self.fingerprint(scheme, t.value).into(),
                redacted: redact(&String::from_utf8_lossy(t.value), REDACT_KEEP).into(),
                jwt,
                not_token68: t.token68 && t.value.iter().any(|b| !is_token68(*b)),
            }
        };
        let id = self.fp.id().to_le_bytes();
        let (scheme, jwt_scheme) = (t.scheme.as_str(), t.jwt_scheme.as_str());
        let parts: [&[u8]; 5] = [&id, scheme.as_bytes(), jwt_scheme.as_bytes(), &[u8::from(t.token68)], t.value];
        memoised(&TOKENS, &parts, make)
    }

    /// A token, decoded as a JWT when it is one.
    fn token(&mut self, t: Token<'_>) {
        let principal = t.principal.filter(|p| !p.is_empty()).map(|p| self.principal(p).into());
        let facts = self.token_facts(&t);
        let mut flags = AuthFlags { malformed: t.malformed || facts.not_token68, ..AuthFlags::default() };
        let (scheme, jwt, principal) = match facts.jwt {
            JwtParse::Jwt { info, payload_ok } => {
                jwt_flags(&info, payload_ok, self.cfg, self.ts_us, self.status, &mut flags);
                let principal = info.sub_fingerprint.clone();
                (t.jwt_scheme, Some(info), principal)
            }
            JwtParse::Broken => {
                flags.malformed = true;
                (t.scheme, None, principal)
            }
            JwtParse::NotJwt => (t.scheme, None, principal),
        };
        if t.value.is_empty() {
            flags.malformed = true;
        }
        self.push(Credential {
            scheme,
            carrier: carrier_name(t.carrier),
            fingerprint: facts.fingerprint,
            principal_fingerprint: principal,
            redacted: facts.redacted,
            jwt,
            flags,
        });
    }

    /// One `Authorization` header value.
    fn authorization(&mut self, carrier: &str, raw: &[u8]) {
        let value = trim(raw);
        if value.is_empty() {
            return;
        }
        let (first, rest) = split_word(value);
        if rest.is_empty() {
            self.bare_authorization(carrier, first);
            return;
        }
        self.scheme_credentials(carrier, &scheme_of(first), rest);
    }

    /// `Authorization` with a single word: a bare JWT, a scheme with no
    /// credentials, `name=value`, or a bare key.
    fn bare_authorization(&mut self, carrier: &str, word: &[u8]) {
        if matches!(parse_jwt(word, self.fp), JwtParse::Jwt { .. }) {
            self.token(Token {
                scheme: AuthScheme::Bearer,
                jwt_scheme: AuthScheme::BearerJwt,
                carrier,
                value: word,
                principal: None,
                malformed: false,
                token68: false,
            });
            return;
        }
        let scheme = scheme_of(word);
        if is_known_scheme(&scheme) {
            self.scheme_credentials(carrier, &scheme, b"");
            return;
        }
        let mut parts = word.splitn(2, |&b| b == b'=');
        if let (Some(name), Some(value)) = (parts.next(), parts.next()) {
            let value_is_padding = value.iter().all(|&b| b == b'=');
            if !name.is_empty()
                && name.len() <= MAX_SCHEME_CHARS
                && name.iter().all(|b| b.is_ascii_alphabetic() || *b == b'_' || *b == b'-')
                && !value_is_padding
            {
                let name = String::from_utf8_lossy(name).to_ascii_lowercase();
                self.token(Token {
                    scheme: AuthScheme::Other(name.clone()),
                    jwt_scheme: AuthScheme::Other(name),
                    carrier,
                    value,
                    principal: None,
                    malformed: false,
                    token68: false,
                });
                return;
            }
        }
        self.token(Token {
            scheme: AuthScheme::ApiKeyHeader,
            jwt_scheme: AuthScheme::BearerJwt,
            carrier,
            value: word,
            principal: Some(word),
            malformed: false,
            token68: false,
        });
    }

    /// The credentials after a scheme name (`rest` may be empty: malformed).
    fn scheme_credentials(&mut self, carrier: &str, scheme: &AuthScheme, rest: &[u8]) {
        match scheme {
            AuthScheme::Basic => self.basic(carrier, rest),
            AuthScheme::Bearer => self.token(Token {
                scheme: AuthScheme::Bearer,
                jwt_scheme: AuthScheme::BearerJwt,
                carrier,
                value: rest,
                principal: None,
                malformed: false,
                token68: true,
            }),
            AuthScheme::ApiKeyHeader => self.token(Token {
                scheme: AuthScheme::ApiKeyHeader,
                jwt_scheme: AuthScheme::BearerJwt,
                carrier,
                value: rest,
                principal: Some(rest),
                malformed: false,
                token68: false,
            }),
            AuthScheme::Other(name) => self.other_scheme(carrier, name, rest),
            // scheme_of never yields the others
            _ => self.other_scheme(carrier, "unknown", rest),
        }
    }

    /// `Basic` (RFC 7617): fingerprint and sample of the user name only.
    fn basic(&mut self, carrier: &str, token68: &[u8]) {
        let id = self.fp.id().to_le_bytes();
        let min_len = (self.cfg.basic_min_password_len as u64).to_le_bytes();
        let facts = memoised(&BASICS, &[&id, &min_len, token68], || self.basic_facts(token68));
        let flags = AuthFlags {
            basic_cleartext: !self.over_tls,
            basic_weak_password: facts.weak_password,
            malformed: facts.malformed,
            ..AuthFlags::default()
        };
        self.push(Credential {
            scheme: AuthScheme::Basic,
            carrier: carrier_name(carrier),
            fingerprint: facts.fingerprint,
            principal_fingerprint: facts.principal,
            redacted: facts.redacted,
            jwt: None,
            flags,
        });
    }

    /// What a Basic value alone tells (memoised in [`BASICS`]).
    fn basic_facts(&self, token68: &[u8]) -> BasicFacts {
        let decoded = if token68.is_empty() { None } else { B64_STD.decode(token68).ok() };
        let split = decoded.as_deref().and_then(|d| d.iter().position(|&b| b == b':').map(|i| d.split_at(i)));
        match split {
            Some((user, colon_pass)) => {
                let pass = colon_pass.get(1..).unwrap_or(b"");
                let user_s = String::from_utf8_lossy(user);
                BasicFacts {
                    weak_password: weak_password(&String::from_utf8_lossy(pass), &user_s, self.cfg.basic_min_password_len),
                    malformed: false,
                    fingerprint: self.fingerprint(&AuthScheme::Basic, user).into(),
                    principal: Some(self.principal(user).into()),
                    redacted: redact(&user_s, REDACT_KEEP).into(),
                }
            }
            // Not user:pass. The value may still hold a password (e.g. sent
            // without base64): fingerprint it, sample only its length.
            None => BasicFacts {
                weak_password: false,
                malformed: true,
                fingerprint: self.fingerprint(&AuthScheme::Basic, token68).into(),
                principal: None,
                redacted: redact(&String::from_utf8_lossy(token68), 0).into(),
            },
        }
    }

    /// Schemes other than Basic, Bearer and API keys: fingerprint the stable
    /// part when the scheme has one (Digest `username`, AWS `Credential` key
    /// id, Hawk `id`, Token `token`, SharedKey account), else the whole value.
    fn other_scheme(&mut self, carrier: &str, name: &str, rest: &[u8]) {
        let params = || auth_params(rest);
        let param = |key: &str| params().into_iter().find(|(k, _)| k == key).map(|(_, v)| v);
        let (stable, principal): (Option<Vec<u8>>, bool) = match name {
            "digest" => (param("username"), true),
            "aws4-hmac-sha256" | "goog4-hmac-sha256" | "goog4-rsa-sha256" => {
                (param("credential").map(|c| c.split(|&b| b == b'/').next().unwrap_or(b"").to_vec()), true)
            }
            "hawk" => (param("id"), true),
            "token" => (param("token").or_else(|| Some(rest.to_vec())), false),
            "sharedkey" | "sharedkeylite" | "aws" => {
                (rest.iter().position(|&b| b == b':').map(|i| rest.get(..i).unwrap_or(b"").to_vec()), true)
            }
            _ => (Some(rest.to_vec()), false),
        };
        let (value, principal, malformed) = match stable {
            Some(v) if !v.is_empty() => (v, principal, false),
            _ => (rest.to_vec(), false, true),
        };
        let scheme = AuthScheme::Other(name.to_string());
        let jwt_scheme = if name == "jwt" { AuthScheme::BearerJwt } else { scheme.clone() };
        self.token(Token {
            scheme,
            jwt_scheme,
            carrier,
            value: &value,
            principal: if principal { Some(&value) } else { None },
            malformed,
            token68: false,
        });
    }

    /// A header of the API-key list (an optional `Bearer ` prefix is dropped).
    fn api_key_header(&mut self, name: &str, raw: &[u8]) {
        let value = strip_bearer(trim(raw));
        if value.is_empty() {
            return;
        }
        self.token(Token {
            scheme: AuthScheme::ApiKeyHeader,
            jwt_scheme: AuthScheme::BearerJwt,
            carrier: name,
            value,
            principal: Some(value),
            malformed: false,
            token68: false,
        });
    }

    /// Any other header: a credential only when its value is a JWT.
    fn jwt_header(&mut self, name: &str, raw: &[u8]) {
        let value = trim(raw);
        // only "ey…" or "Bearer ey…" can follow (most headers end here)
        if !matches!(value.first(), Some(b'e' | b'b' | b'B')) {
            return;
        }
        let value = strip_bearer(value);
        if value.len() < 3 || !value.starts_with(b"ey") {
            return;
        }
        if matches!(parse_jwt(value, self.fp), JwtParse::Jwt { .. }) {
            self.token(Token {
                scheme: AuthScheme::BearerJwt,
                jwt_scheme: AuthScheme::BearerJwt,
                carrier: name,
                value,
                principal: None,
                malformed: false,
                token68: false,
            });
        }
    }

    /// One `Cookie` header (RFC 6265 §4.2.1, tolerant of odd spacing and quotes).
    fn cookies(&mut self, raw: &[u8]) {
        for pair in raw.split(|&b| b == b';').take(MAX_PAIRS) {
            if self.full() {
                return;
            }
            let Some(eq) = pair.iter().position(|&b| b == b'=') else { continue };
            let name = trim(pair.get(..eq).unwrap_or(b""));
            let value = unquote(trim(pair.get(eq + 1..).unwrap_or(b"")));
            if name.is_empty() || value.is_empty() {
                continue;
            }
            let name = String::from_utf8_lossy(name);
            let listed = listed_ci(&self.cfg.session_cookies, &name)
                || self.cfg.session_cookie_substrings.iter().any(|s| super::sensitive::contains_ci(name.as_bytes(), s.as_bytes()));
            if listed || matches!(parse_jwt(value, self.fp), JwtParse::Jwt { .. }) {
                self.token(Token {
                    scheme: AuthScheme::CookieSession,
                    jwt_scheme: AuthScheme::CookieSession,
                    carrier: &name,
                    value,
                    principal: None,
                    malformed: false,
                    token68: false,
                });
            }
        }
    }

    /// The query string: listed parameters, and any parameter whose value is a JWT.
    fn query(&mut self, query: &str) {
        for pair in query.split('&').take(MAX_PAIRS) {
            if self.full() {
                return;
            }
            let Some((name, value)) = pair.split_once('=') else { continue };
            let name = super::sensitive::percent_decode(name.as_bytes(), true);
            let name = String::from_utf8_lossy(&name);
            let value = super::sensitive::percent_decode(value.as_bytes(), true);
            if name.is_empty() || value.is_empty() {
                continue;
            }
            let listed = listed_ci(&self.cfg.api_key_params, &name);
            if listed || matches!(parse_jwt(&value, self.fp), JwtParse::Jwt { .. }) {
                self.token(Token {
                    scheme: AuthScheme::ApiKeyQuery,
                    jwt_scheme: AuthScheme::ApiKeyQuery,
                    carrier: &name,
                    value: &value,
                    principal: Some(&value),
                    malformed: false,
                    token68: false,
                });
            }
        }
    }
}

/// Schemes of `Authorization` that are not `other:*` buckets of their own.
fn is_known_scheme(s: &AuthScheme) -> bool {
    match s {
        AuthScheme::Other(n) => KNOWN_OTHER_SCHEMES.contains(&n.as_str()),
        _ => true,
    }
}

/// Registered or widely used `Authorization` schemes reported as `other:<name>`.
const KNOWN_OTHER_SCHEMES: &[&str] = &[
    "digest",
    "ntlm",
    "negotiate",
    "kerberos",
    "aws4-hmac-sha256",
    "aws",
    "goog4-hmac-sha256",
    "goog4-rsa-sha256",
    "hawk",
    "token",
    "oauth",
    "mac",
    "hoba",
    "mutual",
    "scram-sha-1",
    "scram-sha-256",
    "vapid",
    "dpop",
    "gnap",
    "privatetoken",
    "sharedkey",
    "sharedkeylite",
    "signature",
    "ssws",
    "sso-key",
    "jwt",
];

/// The scheme named by the first word of `Authorization`.
fn scheme_of(word: &[u8]) -> AuthScheme {
    // the common schemes without a lower-cased copy
    if word.eq_ignore_ascii_case(b"bearer") {
        return AuthScheme::Bearer;
    }
    if word.eq_ignore_ascii_case(b"basic") {
        return AuthScheme::Basic;
    }
    let name = String::from_utf8_lossy(word).to_ascii_lowercase();
    match name.as_str() {
        "basic" => AuthScheme::Basic,
        "bearer" => AuthScheme::Bearer,
        "apikey" | "api-key" | "api_key" => AuthScheme::ApiKeyHeader,
        n if KNOWN_OTHER_SCHEMES.contains(&n) => AuthScheme::Other(n.to_string()),
        n => {
            // Keep an unknown name only when it looks like a scheme name and
            // not like a secret sent where a scheme belongs.
            let looks_like_name = n.len() <= MAX_SCHEME_CHARS
                && n.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
                && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.'))
                && n.bytes().filter(u8::is_ascii_digit).count() <= 4;
            AuthScheme::Other(if looks_like_name { n.to_string() } else { "unknown".to_string() })
        }
    }
}

// ---------------------------------------------------------------------------
// JWT

#[derive(Clone)]
enum JwtParse {
    /// Not shaped like a JWT.
    NotJwt,
    /// Three segments and a header starting like a JSON object, but the
    /// header is not base64url JSON with `alg`.
    Broken,
    /// A JWT; `payload_ok` is false when the payload is not a JSON object.
    Jwt { info: std::sync::Arc<JwtInfo>, payload_ok: bool },
}

/// What a Basic credential's bytes tell: never the password, only whether
/// it is weak.
#[derive(Clone)]
struct BasicFacts {
    weak_password: bool,
    malformed: bool,
    fingerprint: std::sync::Arc<str>,
    principal: Option<std::sync::Arc<str>>,
    redacted: std::sync::Arc<str>,
}

/// A token's decoding, fingerprint and redacted sample.
#[derive(Clone)]
struct TokenFacts {
    jwt: JwtParse,
    fingerprint: std::sync::Arc<str>,
    redacted: std::sync::Arc<str>,
    /// Required to be a token68 and is not.
    not_token68: bool,
}

std::thread_local! {
    /// [`BasicFacts`] worked out on this thread, by fingerprint key, password
    /// policy and value (a client sends the same header on every request).
    static BASICS: std::cell::RefCell<crate::analyze::fingerprint::Memo<BasicFacts>> = std::cell::RefCell::new(crate::analyze::fingerprint::Memo::new());
    /// [`TokenFacts`] worked out on this thread, by fingerprint key, schemes and token.
    static TOKENS: std::cell::RefCell<crate::analyze::fingerprint::Memo<TokenFacts>> = std::cell::RefCell::new(crate::analyze::fingerprint::Memo::new());
    /// Tokens decoded on this thread, by fingerprint key and token (a token
    /// comes back on every request of its session).
    static JWTS: std::cell::RefCell<crate::analyze::fingerprint::Memo<JwtParse>> = std::cell::RefCell::new(crate::analyze::fingerprint::Memo::new());
}

/// A token decoded as a JWT (memoised: see [`decode_jwt`]).
fn parse_jwt(token: &[u8], fp: &Fingerprinter) -> JwtParse {
    if token.len() > MAX_JWT_LEN || token.len() < 5 || !token.contains(&b'.') {
        return JwtParse::NotJwt;
    }
    let id = fp.id().to_le_bytes();
    memoised(&JWTS, &[&id, token], || decode_jwt(token, fp))
}

/// Decodes (never verifies) a JWS compact serialisation: header and claims; the
/// subject only as a fingerprint.
fn decode_jwt(token: &[u8], fp: &Fingerprinter) -> JwtParse {
    let mut parts = token.split(|&b| b == b'.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return JwtParse::NotJwt;
    };
    let b64url = |seg: &[u8]| seg.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='));
    if h.is_empty() || p.is_empty() || !b64url(h) || !b64url(p) || !b64url(s) {
        return JwtParse::NotJwt;
    }
    let header = B64_URL
        .decode(h)
        .ok()
        .and_then(|d| serde_json::from_slice::<Value>(&d).ok())
        .and_then(|v| match v {
            Value::Object(m) if m.contains_key("alg") => Some(m),
            _ => None,
        });
    let Some(header) = header else {
        return if h.starts_with(b"ey") { JwtParse::Broken } else { JwtParse::NotJwt };
    };
    let mut info = JwtInfo {
        alg: header.get("alg").and_then(claim_string),
        kid: header.get("kid").and_then(claim_string),
        typ: header.get("typ").and_then(claim_string),
        ..JwtInfo::default()
    };
    let payload = B64_URL.decode(p).ok().and_then(|d| serde_json::from_slice::<Value>(&d).ok());
    let Some(Value::Object(claims)) = payload else {
        return JwtParse::Jwt { info: std::sync::Arc::new(info), payload_ok: false };
    };
    info.iss = claims.get("iss").and_then(claim_string);
    info.aud = match claims.get("aud") {
        Some(Value::Array(a)) => a.iter().filter_map(claim_string).take(MAX_AUDIENCES).collect(),
        Some(v) => claim_string(v).into_iter().collect(),
        None => Vec::new(),
    };
    info.exp = claims.get("exp").and_then(numeric_date);
    info.iat = claims.get("iat").and_then(numeric_date);
    info.nbf = claims.get("nbf").and_then(numeric_date);
    info.sub_fingerprint = claims.get("sub").and_then(|v| match v {
        Value::String(s) => Some(fp.fingerprint(PRINCIPAL_DOMAIN, s.as_bytes()).into()),
        Value::Number(n) => Some(fp.fingerprint(PRINCIPAL_DOMAIN, n.to_string().as_bytes()).into()),
        _ => None,
    });
    JwtParse::Jwt { info: std::sync::Arc::new(info), payload_ok: true }
}

/// A string claim, cut to [`MAX_CLAIM_CHARS`]; numbers are written out.
fn claim_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(bounded(s, MAX_CLAIM_CHARS)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A NumericDate (RFC 7519 §2): seconds, possibly fractional; numeric strings
/// are accepted too. Out-of-range values saturate.
fn numeric_date(v: &Value) -> Option<i64> {
    fn from_f64(f: f64) -> Option<i64> {
        // `as` saturates at the i64 bounds; NaN and infinities are refused.
        f.is_finite().then(|| f.floor() as i64)
    }
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
            .or_else(|| n.as_f64().and_then(from_f64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| s.parse::<f64>().ok().and_then(from_f64))
        }
        _ => None,
    }
}

/// JWT posture flags at packet time `ts_us`.
fn jwt_flags(info: &JwtInfo, payload_ok: bool, cfg: &AuthConfig, ts_us: u64, status: Option<u16>, flags: &mut AuthFlags) {
    flags.jwt_alg_none = info.alg.as_deref().is_some_and(|a| a.eq_ignore_ascii_case("none"));
    if !payload_ok {
        flags.malformed = true;
        return;
    }
    let Some(exp) = info.exp else {
        flags.jwt_no_exp = true;
        return;
    };
    // A packet time of 0 means "unknown": nothing is judged against it.
    let now_us = (ts_us > 0).then_some(i128::from(ts_us));
    let exp = i128::from(exp);
    flags.jwt_expired = now_us.is_some_and(|now| exp * 1_000_000 < now);
    let lifetime = match (info.iat, now_us) {
        (Some(iat), _) => Some(exp - i128::from(iat)),
        (None, Some(now)) => Some(exp - now / 1_000_000),
        (None, None) => None,
    };
    flags.jwt_long_lived = lifetime.is_some_and(|l| l > i128::from(cfg.jwt_max_lifetime_days) * 86_400);
    flags.jwt_expired_accepted = flags.jwt_expired && matches!(status, Some(200..=299));
}

// ---------------------------------------------------------------------------
// Basic passwords

/// Common passwords, lower case. A password equal to one of these, or to one
/// of these followed by digits and symbols, is weak.
const COMMON_PASSWORDS: &[&str] = &[
    "password", "passw0rd", "p@ssw0rd", "p@ssword", "pass", "123456", "12345678", "123456789", "1234567890", "qwerty",
    "qwertyuiop", "qwerty123", "letmein", "welcome", "changeme", "secret", "admin", "administrator", "root", "toor",
    "guest", "test", "master", "login", "default", "iloveyou", "monkey", "dragon", "abc123", "111111", "000000",
    "trustno1", "football", "baseball", "sunshine", "princess", "shadow", "superman", "1q2w3e4r", "1q2w3e4r5t",
    "zaq12wsx", "qazwsx", "asdfgh", "asdfghjkl", "summer", "winter", "spring", "autumn", "access", "user", "demo",
    "temp", "support", "service", "hello", "azerty",
];

/// Whether a Basic password is weak (see [`AuthFlags::basic_weak_password`]).
fn weak_password(pass: &str, user: &str, min_len: usize) -> bool {
    if pass.chars().count() < min_len {
        return true;
    }
    if pass.chars().all(|c| c.is_ascii_digit()) || pass.chars().all(char::is_alphabetic) {
        return true;
    }
    let lower = pass.to_lowercase();
    let stem = lower.trim_end_matches(|c: char| !c.is_alphabetic());
    if COMMON_PASSWORDS.contains(&lower.as_str()) || COMMON_PASSWORDS.contains(&stem) {
        return true;
    }
    let user = user.to_lowercase();
    if !user.is_empty() && lower == user {
        return true;
    }
    user.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 4 && !w.chars().all(|c| c.is_ascii_digit()))
        .any(|w| lower.contains(w))
}

// ---------------------------------------------------------------------------
// small byte helpers

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t')
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !is_ws(*b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ws(*b)).map_or(start, |i| i + 1);
    s.get(start..end).unwrap_or(b"")
}

/// The first word and the rest (trimmed).
fn split_word(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().position(|b| is_ws(*b)) {
        Some(i) => (s.get(..i).unwrap_or(b""), trim(s.get(i..).unwrap_or(b""))),
        None => (s, b""),
    }
}

/// RFC 7235 token68 characters (and padding).
fn is_token68(b: u8) -> bool {
    // a table lookup: tokens run to hundreds of bytes, checked on every request
    TOKEN68.get(usize::from(b)).copied().unwrap_or(false)
}

/// The bytes of RFC 7235's token68, by value.
// Evaluated at compile time, where an index out of bounds fails the build
// (`b` stays below 256, the table's length); `get_mut` is not `const`.
#[allow(clippy::indexing_slicing)]
static TOKEN68: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
        b += 1;
    }
    t
};

/// Drops a leading `Bearer ` (any case).
fn strip_bearer(s: &[u8]) -> &[u8] {
    let (first, rest) = split_word(s);
    if first.eq_ignore_ascii_case(b"bearer") && !rest.is_empty() {
        rest
    } else {
        s
    }
}

fn unquote(s: &[u8]) -> &[u8] {
    match s {
        [b'"', inner @ .., b'"'] => inner,
        _ => s,
    }
}

/// A bit for a name of `len` bytes (names of 63 bytes and more share one).
fn length_bit(len: usize) -> u64 {
    1u64 << len.min(63)
}

/// Whether `name` is one of `list`, ignoring ASCII case.
fn listed_ci(list: &[String], name: &str) -> bool {
    list.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// At most `max` characters of `s`.
fn bounded(s: &str, max: usize) -> String {
    // up to `max` bytes hold at most `max` characters: copied whole
    if s.len() <= max {
        return s.to_string();
    }
    match s.char_indices().nth(max) {
        Some((end, _)) => s.get(..end).unwrap_or(s).to_string(),
        None => s.to_string(),
    }
}

/// RFC 9110 §11.2 auth-params: `name=token` or `name="quoted \" string"`,
/// comma-separated; names lower-cased; at most 32.
fn auth_params(s: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() && out.len() < 32 {
        // skip separators
        while s.get(i).is_some_and(|b| is_ws(*b) || *b == b',') {
            i += 1;
        }
        let start = i;
        while s.get(i).is_some_and(|b| !is_ws(*b) && *b != b'=' && *b != b',') {
            i += 1;
        }
        let name = String::from_utf8_lossy(s.get(start..i).unwrap_or(b"")).to_ascii_lowercase();
        while s.get(i).is_some_and(|b| is_ws(*b)) {
            i += 1;
        }
        if s.get(i) != Some(&b'=') {
            // a bare word (token68 or junk): skip to the next comma
            while s.get(i).is_some_and(|b| *b != b',') {
                i += 1;
            }
            continue;
        }
        i += 1;
        while s.get(i).is_some_and(|b| is_ws(*b)) {
            i += 1;
        }
        let mut value = Vec::new();
        if s.get(i) == Some(&b'"') {
            i += 1;
            while let Some(&b) = s.get(i) {
                i += 1;
                match b {
                    b'\\' => {
                        if let Some(&e) = s.get(i) {
                            value.push(e);
                            i += 1;
                        }
                    }
                    b'"' => break,
                    _ => value.push(b),
                }
            }
        } else {
            let vs = i;
            while s.get(i).is_some_and(|b| *b != b',') {
                i += 1;
            }
            value.extend_from_slice(trim(s.get(vs..i).unwrap_or(b"")));
        }
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// aggregation

/// What one endpoint's traffic says about its authentication.
///
/// Per request, each distinct scheme among its credentials is counted once
/// (`none` when it carried none), in `schemes_seen` always and in
/// `schemes_success` when the response was 2xx or 3xx. Each flag set on any
/// of a request's credentials counts once per request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointAuth {
    /// Requests observed.
    pub requests: u64,
    /// Scheme → requests carrying it that got a 2xx/3xx response (`none`: no credential).
    pub schemes_success: BTreeMap<String, u64>,
    /// Scheme → requests carrying it, any status or none.
    pub schemes_seen: BTreeMap<String, u64>,
    /// Flag name ([`AuthFlags`] field) → requests with it set on a credential.
    pub flags: BTreeMap<String, u64>,
    /// Scheme → carrier → requests (at most [`MAX_CARRIERS`] pairs in all).
    pub carriers: BTreeMap<String, BTreeMap<String, u64>>,
    /// Distinct principals seen, exact up to [`MAX_PRINCIPALS`].
    pub principals: u64,
    /// True when more than [`MAX_PRINCIPALS`] principals were seen (`principals` is then a floor).
    pub principals_capped: bool,
    /// The principal fingerprints kept: the [`MAX_PRINCIPALS`] smallest, so
    /// that observe and merge give the same set in any order.
    pub principal_fingerprints: BTreeSet<String>,
}

impl EndpointAuth {
    /// Counts one request's credentials and its response status.
    pub fn observe(&mut self, creds: &[Credential], status: Option<u16>) {
        self.requests = self.requests.saturating_add(1);
        let success = matches!(status, Some(200..=399));
        // (counted once per request: a scheme, flag or carrier that an earlier
        // credential of the request already had is not counted again; keys
        // are allocated only when new)
        if creds.is_empty() {
            let none = AuthScheme::None.as_str();
            if success {
                bump_key(&mut self.schemes_success, &none, 1);
            }
            bump_key(&mut self.schemes_seen, &none, 1);
        }
        for (i, c) in creds.iter().enumerate() {
            let earlier = creds.get(..i).unwrap_or_default();
            let scheme = c.scheme.as_str();
            if !earlier.iter().any(|e| e.scheme.as_str() == scheme) {
                if success {
                    bump_key(&mut self.schemes_success, &scheme, 1);
                }
                bump_key(&mut self.schemes_seen, &scheme, 1);
            }
            for f in c.flags.names() {
                if !earlier.iter().any(|e| e.flags.names().any(|g| g == f)) {
                    bump_key(&mut self.flags, f, 1);
                }
            }
            if !earlier.iter().any(|e| e.carrier == c.carrier && e.scheme.as_str() == scheme) {
                self.add_carrier(&scheme, &c.carrier, 1);
            }
        }
        for p in creds.iter().filter_map(|c| c.principal_fingerprint.as_ref()) {
            if !self.principal_fingerprints.contains(&**p) {
                self.principal_fingerprints.insert(p.to_string());
            }
        }
        self.trim_principals();
    }

    /// Adds another aggregate of the same endpoint (order does not matter).
    pub fn merge(&mut self, other: &EndpointAuth) {
        self.requests = self.requests.saturating_add(other.requests);
        for (k, v) in &other.schemes_success {
            bump(self.schemes_success.entry(k.clone()).or_default(), *v);
        }
        for (k, v) in &other.schemes_seen {
            bump(self.schemes_seen.entry(k.clone()).or_default(), *v);
        }
        for (k, v) in &other.flags {
            bump(self.flags.entry(k.clone()).or_default(), *v);
        }
        for (scheme, m) in &other.carriers {
            for (carrier, n) in m {
                self.add_carrier(scheme, carrier, *n);
            }
        }
        self.principals_capped |= other.principals_capped;
        self.principal_fingerprints.extend(other.principal_fingerprints.iter().cloned());
        self.trim_principals();
    }

    /// The endpoint's authentication as reported.
    ///
    /// Rule: if any request without a credential succeeded (2xx/3xx), the
    /// endpoint is public and the answer is `["none"]` only — credentials sent
    /// to it are incidental (they still count in `schemes_seen`). Otherwise
    /// the schemes seen on successful requests; if nothing succeeded, the
    /// schemes seen at all. Most requests first, then by name. Empty when
    /// nothing was observed.
    pub fn reported(&self) -> Vec<String> {
        if self.schemes_success.get("none").copied().unwrap_or(0) > 0 {
            return vec!["none".to_string()];
        }
        let source = if self.schemes_success.values().any(|n| *n > 0) { &self.schemes_success } else { &self.schemes_seen };
        let mut v: Vec<(&String, u64)> = source.iter().filter(|(_, n)| **n > 0).map(|(k, n)| (k, *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        v.into_iter().map(|(k, _)| k.clone()).collect()
    }

    /// Both requests with and without credentials succeeded.
    pub fn mixed_success(&self) -> bool {
        let none = self.schemes_success.get("none").copied().unwrap_or(0);
        let authed = self.schemes_success.iter().any(|(k, n)| k != "none" && *n > 0);
        none > 0 && authed
    }

    fn add_carrier(&mut self, scheme: &str, carrier: &str, n: u64) {
        if let Some(c) = self.carriers.get_mut(scheme).and_then(|m| m.get_mut(carrier)) {
            bump(c, n);
            return;
        }
        let total: usize = self.carriers.values().map(BTreeMap::len).sum();
        if total >= MAX_CARRIERS {
            return;
        }
        match self.carriers.get_mut(scheme) {
            Some(m) => {
                m.insert(carrier.to_string(), n);
            }
            None => {
                self.carriers.insert(scheme.to_string(), BTreeMap::from([(carrier.to_string(), n)]));
            }
        }
    }

    fn trim_principals(&mut self) {
        while self.principal_fingerprints.len() > MAX_PRINCIPALS {
            self.principal_fingerprints.pop_last();
            self.principals_capped = true;
        }
        self.principals = self.principal_fingerprints.len() as u64;
    }
}

fn bump(counter: &mut u64, n: u64) {
    *counter = counter.saturating_add(n);
}

/// `bump` of the counter under `key`, allocating the key only when new.
fn bump_key(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    match map.get_mut(key) {
        Some(v) => bump(v, n),
        None => {
            map.insert(key.to_string(), n);
        }
    }
}


#[cfg(test)]
mod tests {
    #[test]
    fn bounded_keeps_at_most_max_characters() {
        assert_eq!(super::bounded("authorization", 64), "authorization");
        assert_eq!(super::bounded("abcdef", 3), "abc");
        assert_eq!(super::bounded("ééééé", 3), "ééé");
        assert_eq!(super::bounded("ééé", 3), "ééé");
        assert_eq!(super::bounded("", 3), "");
    }

    use std::net::SocketAddr;

    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    use super::*;
    use crate::analyze::fingerprint::KEY_LEN;
    use crate::proto::Header;

    /// Packet time of the requests below (seconds).
    const NOW: i64 = 1_795_457_662;
    const NOW_US: u64 = NOW as u64 * 1_000_000;
    const DAY: i64 = 86_400;

    fn fp() -> Fingerprinter {
        Fingerprinter::new([7; KEY_LEN])
    }

    fn tx_raw(headers: Vec<Header>, target: &str, status: Option<u16>) -> HttpTransaction {
        let client: SocketAddr = "198.18.10.11:40000".parse().unwrap();
        let server: SocketAddr = "198.18.0.10:80".parse().unwrap();
        HttpTransaction {
            host: Some("api.shop.test".into()),
            request_headers: headers,
            status,
            request_ts_us: NOW_US,
            response_ts_us: Some(NOW_US + 1000),
            ..HttpTransaction::new(client, server, "GET", target)
        }
    }

    fn tx(headers: &[(&str, &str)], target: &str, status: Option<u16>) -> HttpTransaction {
        let h = headers.iter().map(|(n, v)| Header { name: n.to_ascii_lowercase().into(), value: v.as_bytes().into() }).collect();
        tx_raw(h, target, status)
    }

    fn run(headers: &[(&str, &str)], target: &str) -> Vec<Credential> {
        classify(&tx(headers, target, Some(200)), &AuthConfig::default(), &fp(), false)
    }

    fn auth(value: &str) -> Credential {
        let c = run(&[("Authorization", value)], "/");
        assert_eq!(c.len(), 1, "{value}: {c:?}");
        c.into_iter().next().unwrap()
    }

    fn basic(user: &str, pass: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))
    }

    fn jwt(header: &str, payload: &str) -> String {
        format!("{}.{}.c2lnbmF0dXJl", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload))
    }

    fn hs256(payload: &str) -> String {
        jwt(r#"{"alg":"HS256","typ":"JWT","kid":"tgen-1"}"#, payload)
    }

    // --------------------------------------------------------------- Basic

    #[test]
    fn basic_user_fingerprinted_password_never() {
        let c = auth("Basic YWRtaW5Ac2hvcC50ZXN0OlMzY3IzdC1BZG1pbiE=");
        assert_eq!(c.scheme, AuthScheme::Basic);
        assert_eq!(c.carrier, "authorization");
        assert_eq!(*c.fingerprint, *fp().fingerprint("auth:basic", b"admin@shop.test"));
        assert_eq!(c.principal_fingerprint.as_deref(), Some(fp().fingerprint("auth:principal", b"admin@shop.test").as_str()));
        assert_eq!(&*c.redacted, "<redacted 15 chars>");
        assert!(c.flags.basic_cleartext && !c.flags.malformed && c.jwt.is_none());
        // the same user with another password: same fingerprint
        assert_eq!(auth(&basic("admin@shop.test", "other-password-9")).fingerprint, c.fingerprint);
        // decrypted TLS: not cleartext
        let t = tx(&[("authorization", &basic("a", "b"))], "/", Some(200));
        assert!(!classify(&t, &AuthConfig::default(), &fp(), true)[0].flags.basic_cleartext);
        // scheme name in any case, extra spaces, missing padding
        let c2 = auth("  bAsIc    YWRtaW5Ac2hvcC50ZXN0OlMzY3IzdC1BZG1pbiE  ");
        assert_eq!(c2.fingerprint, c.fingerprint);
        assert!(!c2.flags.malformed);
    }

    /// The Basic memo: a value seen again gives the same credential; what is
    /// not keyed (TLS) is applied afresh; the password policy is keyed.
    #[test]
    fn basic_memo_keys_on_policy_and_leaves_tls_out() {
        let v = basic("ops@shop.test", "summer2024");
        let plain = tx(&[("authorization", &v)], "/", Some(200));
        let first = classify(&plain, &AuthConfig::default(), &fp(), false);
        let again = classify(&plain, &AuthConfig::default(), &fp(), false);
        assert_eq!(first, again);
        assert!(first[0].flags.basic_weak_password && first[0].flags.basic_cleartext);
        let tls = classify(&plain, &AuthConfig::default(), &fp(), true);
        assert!(!tls[0].flags.basic_cleartext);
        assert_eq!(tls[0].fingerprint, first[0].fingerprint);
        // "summer2024" is 10 characters: not short under a 6-character policy, still common
        let short_ok = AuthConfig { basic_min_password_len: 6, ..AuthConfig::default() };
        let long_pw = basic("ops@shop.test", "Tq8#vLx2");
        let t = tx(&[("authorization", &long_pw)], "/", Some(200));
        assert!(classify(&t, &AuthConfig::default(), &fp(), false)[0].flags.basic_weak_password, "8 < 10 characters");
        assert!(!classify(&t, &short_ok, &fp(), false)[0].flags.basic_weak_password, "8 >= 6 characters");
    }

    #[test]
    fn basic_colon_in_password_and_at_in_user() {
        let c = auth(&basic("first.last@example.com", "pa:ss:word:xY7#long"));
        assert_eq!(*c.fingerprint, *fp().fingerprint("auth:basic", b"first.last@example.com"));
        assert!(!c.flags.malformed);
        assert_eq!(&*c.redacted, "firs….com (22 chars)");
        assert!(!c.flags.basic_weak_password);
    }

    #[test]
    fn basic_malformed() {
        for v in ["Basic !!!not-base64!!!", "Basic dXNlcg==" /* "user": no colon */, "Basic", "Basic user:password"] {
            let c = auth(v);
            assert_eq!(c.scheme, AuthScheme::Basic, "{v}");
            assert!(c.flags.malformed, "{v}");
            assert!(c.principal_fingerprint.is_none());
            assert!(c.redacted.starts_with("<redacted"), "{v}: {}", c.redacted);
        }
        // empty user and password: parses, weak
        let c = auth("Basic Og==");
        assert!(!c.flags.malformed && c.flags.basic_weak_password);
    }

    #[test]
    fn weak_passwords() {
        let cases = [
            ("svc", "short", true),                     // too short
            ("svc", "12345678901234", true),            // all digits
            ("svc", "abcdefghijklmnop", true),          // all letters
            ("svc", "Password2024!", true),             // common + digits/symbols
            ("svc", "qwertyuiop", true),                // common
            ("support@shop.test", "support123", true),  // common, and the user name
            ("legacy-app", "legacy-2016", true),        // user name word
            ("admin@shop.test", "S3cr3t-Admin!", true), // user name word
            ("svc", "S3cr3t-Admin!", false),
            ("carol", "xK9#mQ2$vL7p", false),
            ("bob", "Sup3rSecret!xx", false),
            ("bob", "ünïcödé-päss-42", false),
        ];
        for (u, p, weak) in cases {
            assert_eq!(auth(&basic(u, p)).flags.basic_weak_password, weak, "{u}:{p}");
        }
        let cfg = AuthConfig { basic_min_password_len: 4, ..AuthConfig::default() };
        let t = tx(&[("authorization", &basic("svc", "x9#z"))], "/", Some(200));
        assert!(!classify(&t, &cfg, &fp(), false)[0].flags.basic_weak_password);
    }

    // --------------------------------------------------------------- Bearer and JWT

    #[test]
    fn bearer_opaque() {
        for v in ["Bearer expired", "Bearer abc.def", "Bearer 2YotnFZFEjr1zjsJb4BmJw==", "bearer mF_9.B5f-4.1JqM"] {
            let c = auth(v);
            assert_eq!(c.scheme, AuthScheme::Bearer, "{v}");
            assert!(c.jwt.is_none() && !c.flags.malformed, "{v}");
        }
        let c = auth("Bearer expired");
        assert_eq!(*c.fingerprint, *fp().fingerprint("auth:bearer", b"expired"));
        assert!(auth("Bearer").flags.malformed);
        assert!(auth("Bearer two words").flags.malformed);
    }

    #[test]
    fn bearer_jwt_decoded() {
        // a token of the sample capture's generator (fake)
        let t = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InRnZW4tMSJ9.eyJpc3MiOiJodHRwczovL2F1dGguc2hvcC50ZXN0Iiwic3ViIjoiMTAwMSIsImF1ZCI6ImFwaS5zaG9wLnRlc3QiLCJlbWFpbCI6ImFsaWNlQHNob3AudGVzdCIsInJvbGUiOiJjdXN0b21lciIsImlhdCI6MTcxNDU1MDQwMCwiZXhwIjoyMDI5OTEwNDAwfQ.1HXdfS53kGdt6lFMehGmDCzhaJe1_qx83oVGbf7rajs";
        let c = auth(&format!("Bearer {t}"));
        assert_eq!(c.scheme, AuthScheme::BearerJwt);
        assert_eq!(*c.fingerprint, *fp().fingerprint("auth:bearer_jwt", t.as_bytes()));
        let j = c.jwt.clone().unwrap();
        assert_eq!(j.alg.as_deref(), Some("HS256"));
        assert_eq!(j.kid.as_deref(), Some("tgen-1"));
        assert_eq!(j.typ.as_deref(), Some("JWT"));
        assert_eq!(j.iss.as_deref(), Some("https://auth.shop.test"));
        assert_eq!(j.aud, vec!["api.shop.test".to_string()]);
        assert_eq!((j.iat, j.exp, j.nbf), (Some(1_714_550_400), Some(2_029_910_400), None));
        assert_eq!(j.sub_fingerprint.as_deref(), Some(fp().fingerprint("auth:principal", b"1001").as_str()));
        assert_eq!(c.principal_fingerprint, j.sub_fingerprint);
        // ten years: long-lived, not expired
        assert!(c.flags.jwt_long_lived && !c.flags.jwt_expired && !c.flags.jwt_no_exp && !c.flags.malformed);
        assert_eq!(&*c.redacted, "eyJh…rajs (295 chars)");
        // bare JWT without a scheme, and the `JWT` scheme
        assert_eq!(auth(t), c);
        assert_eq!(auth(&format!("JWT {t}")).scheme, AuthScheme::BearerJwt);
    }

    #[test]
    fn jwt_array_audience_and_float_dates() {
        let t = hs256(r#"{"sub":42,"aud":["a.example","b.example",7,null],"iat":1795457000.75,"nbf":"1795457000","exp":1795457900.5}"#);
        let c = auth(&format!("Bearer {t}"));
        let j = c.jwt.unwrap();
        assert_eq!(j.aud, vec!["a.example", "b.example", "7"]);
        assert_eq!((j.iat, j.nbf, j.exp), (Some(1_795_457_000), Some(1_795_457_000), Some(1_795_457_900)));
        assert_eq!(j.sub_fingerprint.as_deref(), Some(fp().fingerprint("auth:principal", b"42").as_str()));
        assert!(c.flags.is_empty(), "{:?}", c.flags);
        // absurd dates saturate instead of overflowing
        let c = auth(&format!("Bearer {}", hs256(r#"{"exp":1e300,"iat":-1e300}"#)));
        let j = c.jwt.unwrap();
        assert_eq!((j.exp, j.iat), (Some(i64::MAX), Some(i64::MIN)));
        assert!(c.flags.jwt_long_lived && !c.flags.jwt_expired);
        let c = auth(&format!("Bearer {}", hs256(r#"{"exp":18446744073709551615}"#)));
        assert_eq!(c.jwt.unwrap().exp, Some(i64::MAX));
    }

    #[test]
    fn jwt_alg_none() {
        let t = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode(r#"{"sub":"x","exp":1795458000}"#));
        let c = auth(&format!("Bearer {t}"));
        assert_eq!(c.scheme, AuthScheme::BearerJwt);
        assert!(c.flags.jwt_alg_none && !c.flags.malformed);
        assert!(auth(&format!("Bearer {}", jwt(r#"{"alg":"NONE"}"#, "{}"))).flags.jwt_alg_none);
        assert!(!auth(&format!("Bearer {}", hs256("{}"))).flags.jwt_alg_none);
    }

    #[test]
    fn jwt_missing_exp() {
        let c = auth(&format!("Bearer {}", hs256(r#"{"sub":"u1","iat":1795457000}"#)));
        assert!(c.flags.jwt_no_exp && !c.flags.jwt_long_lived && !c.flags.jwt_expired);
    }

    #[test]
    fn jwt_long_lived() {
        let cases = [
            (format!(r#"{{"iat":{},"exp":{}}}"#, NOW, NOW + 31 * DAY), true),
            (format!(r#"{{"iat":{},"exp":{}}}"#, NOW, NOW + 29 * DAY), false),
            (format!(r#"{{"iat":{},"exp":{}}}"#, NOW, NOW + 30 * DAY), false),
            (format!(r#"{{"exp":{}}}"#, NOW + 40 * DAY), true), // no iat: from request time
            (format!(r#"{{"exp":{}}}"#, NOW + 3600), false),
        ];
        for (payload, long) in cases {
            assert_eq!(auth(&format!("Bearer {}", hs256(&payload))).flags.jwt_long_lived, long, "{payload}");
        }
        let cfg = AuthConfig { jwt_max_lifetime_days: 1, ..AuthConfig::default() };
        let t = tx(&[("authorization", &format!("Bearer {}", hs256(&format!(r#"{{"exp":{}}}"#, NOW + 2 * DAY))))], "/", None);
        assert!(classify(&t, &cfg, &fp(), false)[0].flags.jwt_long_lived);
    }

    #[test]
    fn jwt_expired_and_accepted() {
        let v = format!("Bearer {}", hs256(&format!(r#"{{"iat":{},"exp":{}}}"#, NOW - 3600, NOW - 10)));
        for (status, accepted) in [(Some(200), true), (Some(204), true), (Some(401), false), (Some(302), false), (None, false)] {
            let c = &classify(&tx(&[("authorization", &v)], "/", status), &AuthConfig::default(), &fp(), false)[0];
            assert!(c.flags.jwt_expired, "{status:?}");
            assert_eq!(c.flags.jwt_expired_accepted, accepted, "{status:?}");
        }
        // unknown packet time: not judged
        let mut t = tx(&[("authorization", &v)], "/", Some(200));
        t.request_ts_us = 0;
        let c = &classify(&t, &AuthConfig::default(), &fp(), false)[0];
        assert!(!c.flags.jwt_expired && !c.flags.jwt_expired_accepted && !c.flags.jwt_long_lived);
        let fresh = format!("Bearer {}", hs256(&format!(r#"{{"exp":{}}}"#, NOW + 10)));
        assert!(!auth(&fresh).flags.jwt_expired);
        // exp at the request's second, request a fraction later: expired
        assert!(auth(&format!("Bearer {}", hs256(&format!(r#"{{"exp":{}}}"#, NOW - 1)))).flags.jwt_expired);
    }

    #[test]
    fn jwt_malformed_never_panics() {
        // header looks like JSON but is not
        let c = auth("Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6.eyJzdWIiOiIxIn0.sig");
        assert_eq!(c.scheme, AuthScheme::Bearer);
        assert!(c.flags.malformed);
        // header without alg
        let c = auth(&format!("Bearer {}", jwt(r#"{"typ":"JWT"}"#, r#"{"sub":"1"}"#)));
        assert_eq!(c.scheme, AuthScheme::Bearer);
        assert!(c.flags.malformed);
        // header is a JSON array: not shaped like a JWT header at all
        let c = auth(&format!("Bearer {}", jwt(r#"["alg"]"#, "{}")));
        assert!(c.scheme == AuthScheme::Bearer && !c.flags.malformed);
        // good header, payload not JSON / not an object / bad base64
        for payload in ["not json", "[1,2]", "\"str\""] {
            let c = auth(&format!("Bearer {}", hs256(payload)));
            assert_eq!(c.scheme, AuthScheme::BearerJwt, "{payload}");
            assert!(c.flags.malformed && !c.flags.jwt_no_exp, "{payload}");
            assert_eq!(c.jwt.as_ref().and_then(|j| j.alg.as_deref()), Some("HS256"));
        }
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
        assert!(auth(&format!("Bearer {h}.@@@.x")).flags.malformed); // '@' is not base64url: not a JWT shape
        let c = auth(&format!("Bearer {h}.e.x"));
        assert_eq!(c.scheme, AuthScheme::BearerJwt);
        assert!(c.flags.malformed);
        // deeply nested JSON is refused by the parser, not a stack overflow
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(auth(&format!("Bearer {}", hs256(&deep))).flags.malformed);
        // four or two segments: not a JWT
        assert_eq!(auth(&format!("Bearer {h}.{h}.{h}.{h}")).scheme, AuthScheme::Bearer);
        assert_eq!(auth(&format!("Bearer {h}.{h}")).scheme, AuthScheme::Bearer);
    }

    // --------------------------------------------------------------- other schemes

    #[test]
    fn other_schemes() {
        let c = auth(r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", nonce="7ypf", nc=00000001, cnonce="f2/wE4q", qop=auth, response="8ca523f5", opaque="FQhe""#);
        assert_eq!(c.scheme, AuthScheme::Other("digest".into()));
        assert_eq!(c.scheme.as_str(), "other:digest");
        assert_eq!(*c.fingerprint, *fp().fingerprint("auth:other:digest", b"Mufasa"));
        assert_eq!(c.principal_fingerprint.as_deref(), Some(fp().fingerprint("auth:principal", b"Mufasa").as_str()));
        let c = auth("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
        assert_eq!(c.scheme, AuthScheme::Other("aws4-hmac-sha256".into()));
        assert_eq!(*c.fingerprint, *fp().fingerprint("auth:other:aws4-hmac-sha256", b"AKIDEXAMPLE"));
        let c = auth(r#"Hawk id="dh37fgj492je", ts="1353832234", nonce="j4h3g2", mac="6R4rV5iE+NPoym+WwjeHzjAGXUtLNIxmo1vpMofpLAE=""#);
        assert_eq!(c.scheme, AuthScheme::Other("hawk".into()));
        assert_eq!(*c.fingerprint, *fp().fingerprint("auth:other:hawk", b"dh37fgj492je"));
        assert_eq!(auth("NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==").scheme.as_str(), "other:ntlm");
        assert_eq!(auth("Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnagMDAuBgkqhkiC9xIBAgIGCSqGSIb3").scheme.as_str(), "other:negotiate");
        let c = auth(r#"Token token="h480djs93hd8", foo="bar""#);
        assert_eq!(c.scheme.as_str(), "other:token");
        assert_eq!(*c.fingerprint, *fp().fingerprint("auth:other:token", b"h480djs93hd8"));
        let c = auth("token=h480djs93hd8");
        assert_eq!(c.scheme.as_str(), "other:token");
        assert_eq!(*c.fingerprint, *fp().fingerprint("auth:other:token", b"h480djs93hd8"));
        assert_eq!(auth("Foo-Scheme abc").scheme.as_str(), "other:foo-scheme");
        // what sits where a scheme belongs but looks like a secret is not kept as a name
        assert_eq!(auth("sk_live_4eC39HqLyjWDarjtT1zdp7dc extra").scheme.as_str(), "other:unknown");
        assert_eq!(auth("\u{e9}t\u{e9} x").scheme.as_str(), "other:unknown");
        // a scheme with nothing after it
        let c = auth("Digest");
        assert_eq!(c.scheme.as_str(), "other:digest");
        assert!(c.flags.malformed);
        assert!(auth(r#"Digest realm="x", nonce="y""#).flags.malformed); // no username
    }

    // --------------------------------------------------------------- API keys

    #[test]
    fn api_key_headers() {
        let c = run(&[("X-API-Key", "pk_partner_7f3c9a2e41b84d0c9e11")], "/v2/inventory/SKU-1");
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].scheme.clone(), &*c[0].carrier), (AuthScheme::ApiKeyHeader, "x-api-key"));
        assert_eq!(*c[0].fingerprint, *fp().fingerprint("auth:api_key_header", b"pk_partner_7f3c9a2e41b84d0c9e11"));
        assert_eq!(&*c[0].redacted, "pk_p…9e11 (31 chars)");
        assert!(c[0].principal_fingerprint.is_some());
        for v in ["ApiKey pk_abc123", "Api-Key pk_abc123", "pk_abc123"] {
            let c = auth(v);
            assert_eq!(c.scheme, AuthScheme::ApiKeyHeader, "{v}");
            assert_eq!(*c.fingerprint, *fp().fingerprint("auth:api_key_header", b"pk_abc123"), "{v}");
        }
        assert!(run(&[("Ocp-Apim-Subscription-Key", "0123456789abcdef")], "/")[0].scheme == AuthScheme::ApiKeyHeader);
        // empty values carry nothing
        assert!(run(&[("x-api-key", ""), ("authorization", "  ")], "/").is_empty());
        // configured list
        let cfg = AuthConfig { api_key_headers: vec!["X-Shop-Key".into()], ..AuthConfig::default() };
        let t = tx(&[("x-shop-key", "k1"), ("x-api-key", "k2")], "/", Some(200));
        let c = classify(&t, &cfg, &fp(), false);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].carrier, "x-shop-key");
        // names past the length filter's last bit (63 bytes) are compared in full
        let long = format!("x-{}", "k".repeat(70));
        let other = format!("x-{}", "j".repeat(70));
        let cfg = AuthConfig { api_key_headers: vec![long.to_uppercase()], ..AuthConfig::default() };
        let t = tx(&[(other.as_str(), "k0"), (long.as_str(), "k1")], "/", Some(200));
        let c = classify(&t, &cfg, &fp(), false);
        assert_eq!(c.len(), 1);
        // (the carrier is kept to its first 64 characters)
        assert!(c[0].scheme == AuthScheme::ApiKeyHeader && long.starts_with(&*c[0].carrier) && c[0].carrier.len() == 64, "{:?}", c[0].carrier);
    }

    #[test]
    fn jwt_in_other_headers() {
        let t = hs256(r#"{"sub":"7","exp":1795458000}"#);
        let c = run(&[("X-Access-Token", &t)], "/");
        assert_eq!((c[0].scheme.clone(), &*c[0].carrier), (AuthScheme::BearerJwt, "x-access-token"));
        let c = run(&[("X-Forwarded-Authorization", &format!("Bearer {t}")), ("User-Agent", "curl/8"), ("Accept", "eyJ")], "/");
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].scheme.clone(), &*c[0].carrier), (AuthScheme::BearerJwt, "x-forwarded-authorization"));
        assert_eq!(*c[0].fingerprint, *fp().fingerprint("auth:bearer_jwt", t.as_bytes()));
        assert!(run(&[("X-Request-Id", "abc.def.ghi"), ("X-Trace", "eyJub3QiOiJqd3QifQ.e30.x")], "/").is_empty());
    }

    #[test]
    fn api_keys_in_query() {
        let c = run(&[], "/v2/reports/sales?api_key=rk_report_c81e728d9d4c2f63&from=2024-04-01&to=2024-04-30");
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].scheme.clone(), &*c[0].carrier), (AuthScheme::ApiKeyQuery, "api_key"));
        assert_eq!(*c[0].fingerprint, *fp().fingerprint("auth:api_key_query", b"rk_report_c81e728d9d4c2f63"));
        // percent-encoded names and values, case-insensitive names
        let c = run(&[], "/r?api%5Fkey=rk%2Dabc%2b1&x=1");
        assert_eq!(c[0].carrier, "api_key");
        assert_eq!(*c[0].fingerprint, *fp().fingerprint("auth:api_key_query", b"rk-abc+1"));
        assert_eq!(run(&[], "/r?API_KEY=zz")[0].carrier, "API_KEY");
        assert_eq!(run(&[], "/r?access+token=zz&access_token=zz").len(), 1);
        // a JWT in any parameter
        let t = hs256(r#"{"sub":"7"}"#);
        let c = run(&[], &format!("/cb?id_token={t}#frag"));
        assert_eq!((c[0].scheme.clone(), &*c[0].carrier), (AuthScheme::ApiKeyQuery, "id_token"));
        assert!(c[0].jwt.is_some() && c[0].flags.jwt_no_exp);
        // absolute form
        assert_eq!(run(&[], "http://api.shop.test/r?key=abc").len(), 1);
        // not credentials
        assert!(run(&[], "/r?page=2&api_key=&token&%zz=1&=x").is_empty());
        assert!(run(&[], "/r").is_empty());
    }

    // --------------------------------------------------------------- cookies

    #[test]
    fn session_cookies() {
        let c = run(&[("Cookie", "theme=dark;sid=702b0a921ab7b55c7a121ca06c119f78;  refresh=rt_0123456789abcdef ;lang=en")], "/");
        assert_eq!(c.len(), 2);
        assert_eq!(c.iter().map(|c| &*c.carrier).collect::<Vec<_>>(), vec!["sid", "refresh"]);
        assert!(c.iter().all(|c| c.scheme == AuthScheme::CookieSession && !c.flags.malformed));
        assert_eq!(*c[0].fingerprint, *fp().fingerprint("auth:cookie_session", b"702b0a921ab7b55c7a121ca06c119f78"));
        assert_eq!(&*c[0].redacted, "702b…9f78 (32 chars)");
        // odd spacing, empty pairs, quotes, case, a pair without '=', empty values
        let c = run(&[("cookie", " ;; SID =  \"q-v-1\" ;noeq; =x; session= ;\tPHPSESSID=abc\t;")], "/");
        assert_eq!(c.iter().map(|c| &*c.carrier).collect::<Vec<_>>(), vec!["SID", "PHPSESSID"]);
        assert_eq!(*c[0].fingerprint, *fp().fingerprint("auth:cookie_session", b"q-v-1"));
        // names containing "session", JWT values, and cookies split over two headers (HTTP/2)
        let t = hs256(r#"{"sub":"9","iat":1795457000,"exp":1795460600}"#);
        let c = run(&[("cookie", "laravel_session=xyz"), ("cookie", &format!("at={t}; prefs=1"))], "/");
        assert_eq!(c.len(), 2);
        // the listed substrings match in any case, anywhere in the name
        let d = run(&[("cookie", "App_SESSIONToken=a1; xSessIdx=b2; sess=c3; theme=dark")], "/");
        assert_eq!(d.iter().map(|c| &*c.carrier).collect::<Vec<_>>(), vec!["App_SESSIONToken", "xSessIdx"]);
        assert_eq!(c[0].carrier, "laravel_session");
        assert_eq!(c[1].carrier, "at");
        assert_eq!(c[1].scheme, AuthScheme::CookieSession);
        assert_eq!(c[1].principal_fingerprint.as_deref(), Some(fp().fingerprint("auth:principal", b"9").as_str()));
        assert!(c[1].jwt.is_some() && c[1].flags.is_empty());
        assert!(run(&[("cookie", "theme=dark; lang=en")], "/").is_empty());
    }

    #[test]
    fn several_credentials_in_one_request() {
        let t = hs256(r#"{"sub":"1"}"#);
        let c = run(
            &[("authorization", &format!("Bearer {t}")), ("x-api-key", "k1"), ("x-api-key", "k1"), ("cookie", "sid=s1")],
            "/p?api_key=k2",
        );
        let names: Vec<String> = c.iter().map(|c| format!("{}@{}", c.scheme, c.carrier)).collect();
        assert_eq!(names, ["bearer_jwt@authorization", "api_key_header@x-api-key", "cookie_session@sid", "api_key_query@api_key"]);
        assert_eq!(
            request_schemes(&c).into_iter().collect::<Vec<_>>(),
            ["api_key_header", "api_key_query", "bearer_jwt", "cookie_session"]
        );
        assert_eq!(request_schemes(&[]).into_iter().collect::<Vec<_>>(), ["none"]);
        // bounded
        let many: String = (0..100).map(|i| format!("sid{i}session=v{i}; ")).collect();
        assert_eq!(run(&[("cookie", &many)], "/").len(), MAX_CREDENTIALS);
    }

    // --------------------------------------------------------------- robustness

    #[test]
    fn every_truncation_of_an_authorization_value() {
        let values = [
            basic("admin@shop.test", "S3cr3t-Admin!"),
            format!("Bearer {}", hs256(r#"{"sub":"1","aud":["a","b"],"exp":1795457900.5,"iat":1}"#)),
            r#"Digest username="Mufasa", realm="x", nonce="7ypf", response="8ca5""#.to_string(),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/2015/us/iam/aws4_request, Signature=5d67".to_string(),
            r#"Hawk id="dh37", ts="1", mac="6R4r=""#.to_string(),
            "Token token=\"a\\\"b\"".to_string(),
            "ApiKey pk_abc".to_string(),
        ];
        let f = fp();
        for v in &values {
            for n in 0..=v.len() {
                let h = vec![Header { name: "authorization".into(), value: v.as_bytes()[..n].into() }];
                let creds = classify(&tx_raw(h, "/", Some(200)), &AuthConfig::default(), &f, false);
                assert!(creds.len() <= 1);
                let h = vec![Header { name: "cookie".into(), value: format!("sid={}", &v[..n.min(v.len())]).into_bytes().into() }];
                let _ = classify(&tx_raw(h, &format!("/?token={}", String::from_utf8_lossy(&v.as_bytes()[..n])), None), &AuthConfig::default(), &f, false);
            }
        }
    }

    /// xorshift64*: deterministic test input without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let names = ["authorization", "cookie", "x-api-key", "x-access-token", "x-other", "proxy-authorization"];
        let pieces: [&[u8]; 16] =
            [b"Basic ", b"Bearer ", b"eyJ", b"eyJhbGciOiJub25lIn0", b".", b"=", b":", b";", b" ", b"\"", b"%", b"%4", b",", b"\\", b"\xff\xfe", b"e30"];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let f = fp();
        let cfg = AuthConfig::default();
        for _ in 0..20_000 {
            let mut headers = Vec::new();
            for _ in 0..rng.below(4) {
                let mut value = Vec::new();
                for _ in 0..rng.below(12) {
                    if rng.below(2) == 0 {
                        value.extend_from_slice(pieces[rng.below(pieces.len())]);
                    } else {
                        for _ in 0..rng.below(8) {
                            value.push(rng.next() as u8);
                        }
                    }
                }
                // sometimes valid base64 of random bytes, as Basic or as JWT segments
                if rng.below(4) == 0 {
                    let raw: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
                    let enc = URL_SAFE_NO_PAD.encode(&raw);
                    value = match rng.below(3) {
                        0 => format!("Basic {}", STANDARD.encode(&raw)).into_bytes(),
                        1 => format!("Bearer {enc}.{enc}.{enc}").into_bytes(),
                        _ => format!("eyJhbGciOiJIUzI1NiJ9.{enc}.").into_bytes(),
                    };
                }
                headers.push(Header { name: names[rng.below(names.len())].into(), value: value.into() });
            }
            let target: String = (0..rng.below(30)).map(|_| char::from(b"?&=%+aAk_y.;#/9"[rng.below(15)])).collect();
            let status = [None, Some(200), Some(401), Some(0), Some(999)][rng.below(5)];
            let mut t = tx_raw(headers, &format!("/{target}"), status);
            t.request_ts_us = rng.next();
            let creds = classify(&t, &cfg, &f, rng.below(2) == 0);
            assert!(creds.len() <= MAX_CREDENTIALS);
            let mut agg = EndpointAuth::default();
            agg.observe(&creds, status);
            let _ = agg.reported();
        }
    }

    #[test]
    fn no_raw_credential_in_output() {
        let jwt_alice = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InRnZW4tMSJ9.eyJpc3MiOiJodHRwczovL2F1dGguc2hvcC50ZXN0Iiwic3ViIjoiMTAwMSIsImF1ZCI6ImFwaS5zaG9wLnRlc3QiLCJlbWFpbCI6ImFsaWNlQHNob3AudGVzdCIsInJvbGUiOiJjdXN0b21lciIsImlhdCI6MTcxNDU1MDQwMCwiZXhwIjoyMDI5OTEwNDAwfQ.1HXdfS53kGdt6lFMehGmDCzhaJe1_qx83oVGbf7rajs";
        let secrets = [
            "S3cr3t-Admin!",
            "YWRtaW5Ac2hvcC50ZXN0OlMzY3IzdC1BZG1pbiE=",
            "support123",
            jwt_alice,
            "eyJpc3MiOiJodHRwczovL2F1dGguc2hvcC50ZXN0Iiwic3ViIjoiMTAwMSIs",
            "1HXdfS53kGdt6lFMehGmDCzhaJe1_qx83oVGbf7rajs",
            "alice@shop.test",
            "pk_partner_7f3c9a2e41b84d0c9e11",
            "rk_report_c81e728d9d4c2f63",
            "702b0a921ab7b55c7a121ca06c119f78",
            "rt_0123456789abcdef0123",
            "Mufasa-the-king",
            "AKIDEXAMPLE1234",
            "h480djs93hd8-token",
        ];
        let headers = [
            ("authorization", "Basic YWRtaW5Ac2hvcC50ZXN0OlMzY3IzdC1BZG1pbiE="),
            ("authorization", &basic("svc", "support123")),
            ("authorization", &format!("Bearer {jwt_alice}")),
            ("x-api-key", "pk_partner_7f3c9a2e41b84d0c9e11"),
            ("cookie", "sid=702b0a921ab7b55c7a121ca06c119f78; refresh=rt_0123456789abcdef0123"),
            ("authorization", r#"Digest username="Mufasa-the-king", response="ab""#),
            ("authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE1234/2015/us/iam/aws4_request"),
            ("authorization", r#"Token token="h480djs93hd8-token""#),
            ("authorization", "Basic user:S3cr3t-Admin!"),
        ];
        let creds = run(&headers, "/v2/reports/sales?api_key=rk_report_c81e728d9d4c2f63");
        assert_eq!(creds.len(), 11);
        let mut agg = EndpointAuth::default();
        agg.observe(&creds, Some(200));
        let dumps = [format!("{creds:?}"), serde_json::to_string(&creds).unwrap(), format!("{agg:?}"), serde_json::to_string(&agg).unwrap()];
        for d in &dumps {
            for s in secrets {
                assert!(!d.contains(s), "{s} leaked in {d}");
            }
        }
    }

    // --------------------------------------------------------------- aggregation

    fn cred(scheme: AuthScheme, principal: Option<&str>) -> Credential {
        Credential {
            carrier: "c".into(),
            fingerprint: "f".into(),
            principal_fingerprint: principal.map(Into::into),
            redacted: "".into(),
            jwt: None,
            flags: AuthFlags::default(),
            scheme,
        }
    }

    #[test]
    fn reported_rules() {
        // public: unauthenticated successes win, credentials sent along are incidental
        let mut public = EndpointAuth::default();
        public.observe(&[], Some(200));
        public.observe(&[cred(AuthScheme::CookieSession, None)], Some(200));
        public.observe(&[cred(AuthScheme::CookieSession, None)], Some(200));
        assert_eq!(public.reported(), ["none"]);
        assert!(public.mixed_success());
        assert_eq!(public.schemes_seen.get("cookie_session"), Some(&2));

        // protected: unauthenticated requests are refused
        let mut jwt = EndpointAuth::default();
        for _ in 0..5 {
            jwt.observe(&[cred(AuthScheme::BearerJwt, Some("p1"))], Some(200));
        }
        jwt.observe(&[], Some(401));
        jwt.observe(&[cred(AuthScheme::Bearer, None)], Some(401)); // a bad token
        jwt.observe(&[cred(AuthScheme::BearerJwt, Some("p2"))], Some(302)); // 3xx is success
        assert_eq!(jwt.reported(), ["bearer_jwt"]);
        assert!(!jwt.mixed_success());
        assert_eq!(jwt.schemes_success.get("bearer_jwt"), Some(&6));
        assert_eq!(jwt.schemes_seen.get("none"), Some(&1));
        assert_eq!(jwt.principals, 2);

        // two schemes accepted: most used first
        let mut two = EndpointAuth::default();
        two.observe(&[cred(AuthScheme::Basic, None)], Some(200));
        two.observe(&[cred(AuthScheme::ApiKeyHeader, None)], Some(200));
        two.observe(&[cred(AuthScheme::ApiKeyHeader, None)], Some(204));
        assert_eq!(two.reported(), ["api_key_header", "basic"]);

        // nothing succeeded: what was seen, unauthenticated attempts included
        let mut failing = EndpointAuth::default();
        failing.observe(&[cred(AuthScheme::ApiKeyQuery, None)], Some(401));
        failing.observe(&[cred(AuthScheme::ApiKeyQuery, None)], Some(403));
        failing.observe(&[], Some(401));
        failing.observe(&[], None);
        assert_eq!(failing.reported(), ["api_key_query", "none"]);
        assert!(!failing.mixed_success());

        assert!(EndpointAuth::default().reported().is_empty());

        // one request with two cookies of one scheme counts once; flags once per request
        let mut c = EndpointAuth::default();
        let mut a = cred(AuthScheme::CookieSession, None);
        a.flags.jwt_no_exp = true;
        let mut b = a.clone();
        b.carrier = "d".into();
        c.observe(&[a, b], Some(200));
        assert_eq!(c.schemes_seen.get("cookie_session"), Some(&1));
        assert_eq!(c.flags.get("jwt_no_exp"), Some(&1));
        assert_eq!(c.carriers["cookie_session"].len(), 2);
    }

    #[test]
    fn carriers_are_capped_and_known_ones_still_counted() {
        let mut agg = EndpointAuth::default();
        let with = |carrier: String| {
            let mut c = cred(AuthScheme::ApiKeyHeader, None);
            c.carrier = carrier.into();
            c
        };
        for i in 0..MAX_CARRIERS + 10 {
            agg.observe(&[with(format!("x-key-{i:03}"))], Some(200));
        }
        let pairs = |a: &EndpointAuth| a.carriers.values().map(BTreeMap::len).sum::<usize>();
        assert_eq!(pairs(&agg), MAX_CARRIERS);
        assert!(!agg.carriers["api_key_header"].contains_key(&format!("x-key-{MAX_CARRIERS:03}")));
        // a pair already kept goes on counting; a new one of another scheme is not kept
        agg.observe(&[with("x-key-000".into())], Some(200));
        agg.observe(&[cred(AuthScheme::Basic, Some("u"))], Some(200));
        assert_eq!(agg.carriers["api_key_header"]["x-key-000"], 2);
        assert!(!agg.carriers.contains_key("basic"));
        assert_eq!(pairs(&agg), MAX_CARRIERS);
        assert_eq!(agg.schemes_seen.get("basic"), Some(&1));
    }

    #[test]
    fn merge_is_order_independent_and_bounded() {
        let reqs: Vec<(Vec<Credential>, Option<u16>)> = (0..3000)
            .map(|i| {
                let p = format!("{:08}", (i * 7919) % 2500);
                let creds = match i % 4 {
                    0 => vec![],
                    1 => vec![cred(AuthScheme::BearerJwt, Some(&p))],
                    2 => vec![cred(AuthScheme::Basic, Some(&p)), cred(AuthScheme::CookieSession, None)],
                    _ => vec![cred(AuthScheme::Other("digest".into()), Some(&p))],
                };
                (creds, [Some(200), Some(401), None][i % 3])
            })
            .collect();
        let mut all = EndpointAuth::default();
        for (c, s) in &reqs {
            all.observe(c, *s);
        }
        let (mut a, mut b) = (EndpointAuth::default(), EndpointAuth::default());
        for (i, (c, s)) in reqs.iter().enumerate() {
            if i % 3 == 0 { &mut a } else { &mut b }.observe(c, *s);
        }
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, all);
        assert_eq!(ba, all);
        assert_eq!(all.principals, MAX_PRINCIPALS as u64);
        assert!(all.principals_capped);
        assert_eq!(all.requests, 3000);
        // serde round trip
        let back: EndpointAuth = serde_json::from_str(&serde_json::to_string(&all).unwrap()).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn scheme_names_round_trip() {
        for s in [
            AuthScheme::None,
            AuthScheme::Basic,
            AuthScheme::Bearer,
            AuthScheme::BearerJwt,
            AuthScheme::ApiKeyHeader,
            AuthScheme::ApiKeyQuery,
            AuthScheme::CookieSession,
            AuthScheme::Other("aws4-hmac-sha256".into()),
        ] {
            assert_eq!(AuthScheme::from_name(&s.as_str()), s);
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<AuthScheme>(&json).unwrap(), s);
        }
        assert_eq!(serde_json::to_string(&AuthScheme::BearerJwt).unwrap(), "\"bearer_jwt\"");
        assert_eq!(AuthScheme::Other("ntlm".into()).to_string(), "other:ntlm");
        let flags = AuthFlags { jwt_expired: true, malformed: true, ..AuthFlags::default() };
        assert_eq!(flags.names().collect::<Vec<_>>(), ["jwt_expired", "malformed"]);
    }

    // --------------------------------------------------------------- calibration

    mod calibration {
        use std::collections::BTreeMap;
        use std::net::SocketAddr;

        use serde_json::Value;

        use super::super::*;
        use super::fp;
        use crate::analyze::normalize_host;
        use crate::config::Config;
        use crate::decode::{Decoded, Decoder, FlowKey, LinkType};
        use crate::flow::{Chunk, Direction, FlowHandler, FlowTable};
        use crate::proto::{Connection, ProtoConfig, ProtoStats};

        struct Collect {
            cfg: ProtoConfig,
            stats: ProtoStats,
            txs: Vec<HttpTransaction>,
        }

        impl FlowHandler for Collect {
            type State = Connection;
            fn open(&mut self, _k: &FlowKey, client: SocketAddr, server: SocketAddr, midstream: bool, _ts: u64) -> Connection {
                Connection::new(client, server, midstream, &mut self.stats)
            }
            fn chunk(&mut self, st: &mut Connection, dir: Direction, chunk: Chunk<'_>, ts: u64) {
                st.on_chunk(dir, chunk, ts, &self.cfg, &mut self.stats, &mut self.txs);
            }
            fn close(&mut self, mut st: Connection, ts: u64) {
                st.on_close(ts, &self.cfg, &mut self.stats, &mut self.txs);
            }
        }

        /// The transactions of a classic little-endian µs pcap.
        fn transactions(pcap: &[u8]) -> Vec<HttpTransaction> {
            let u32_at = |o: usize| pcap.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            assert_eq!(u32_at(0), Some(0xa1b2_c3d4), "classic little-endian pcap");
            let link = LinkType::from_dlt(u32_at(20).unwrap() as i32);
            let cfg = Config::default();
            let mut decoder = Decoder::new(cfg.decode_limits());
            let mut table = FlowTable::new(cfg.flow_limits());
            let mut h = Collect {
                cfg: ProtoConfig { http: cfg.http.clone(), http2: cfg.http2.clone(), keylog: None },
                stats: ProtoStats::default(),
                txs: Vec::new(),
            };
            let (mut off, mut now) = (24, 0);
            while let (Some(sec), Some(usec), Some(len)) = (u32_at(off), u32_at(off + 4), u32_at(off + 8)) {
                let len = len as usize;
                let Some(frame) = pcap.get(off + 16..off + 16 + len) else { break };
                now = u64::from(sec) * 1_000_000 + u64::from(usec);
                if let Decoded::Tcp(seg) = decoder.decode(link, now, frame) {
                    table.process(&seg, now, &mut h);
                }
                off += 16 + len;
            }
            table.flush_all(now, &mut h);
            h.txs
        }

        fn template_matches(template: &str, path: &str) -> bool {
            let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
            t.len() == p.len() && t.iter().zip(&p).all(|(a, b)| (a.starts_with('{') && !b.is_empty()) || a == b)
        }

        /// The generator's names in `observed.auth_seen` for ours.
        fn truth_name(scheme: &str) -> &str {
            match scheme {
                "bearer_jwt" => "bearer",
                "cookie_session" => "cookie",
                s => s,
            }
        }

        /// Replays the sample capture and compares each endpoint's reported
        /// authentication and per-request schemes with the generator's truth.
        #[test]
        fn sample_capture_matches_ground_truth() {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
            let (Ok(pcap), Ok(truth)) = (std::fs::read(dir.join("sample.pcap")), std::fs::read(dir.join("sample.truth.json")))
            else {
                return; // fixtures not present
            };
            let truth: Value = serde_json::from_slice(&truth).unwrap();
            let endpoints = truth["endpoints"].as_array().unwrap();
            let (f, cfg) = (fp(), AuthConfig::default());
            let mut agg: BTreeMap<usize, EndpointAuth> = BTreeMap::new();
            let mut flagged: BTreeMap<&'static str, u64> = BTreeMap::new();
            let txs = transactions(&pcap);
            assert!(txs.len() > 2000, "{} transactions", txs.len());
            for tx in &txs {
                let host = tx.host.as_deref().and_then(normalize_host).unwrap_or_default();
                let (path, _) = split_target(&tx.method, &tx.target);
                let Some(i) = endpoints.iter().position(|e| {
                    e["host"] == host.as_str() && e["method"] == *tx.method && template_matches(e["path"].as_str().unwrap(), path)
                }) else {
                    continue;
                };
                let creds = classify(tx, &cfg, &f, false);
                for c in &creds {
                    for n in c.flags.names() {
                        *flagged.entry(n).or_default() += 1;
                    }
                }
                agg.entry(i).or_default().observe(&creds, tx.status);
            }
            let mut report = String::new();
            for (i, a) in &agg {
                let e = &endpoints[*i];
                let want = e["auth"].as_str().unwrap();
                let seen = &e["observed"]["auth_seen"];
                let by_proto = &e["observed"]["by_protocol"];
                let tls = by_proto.get("h2_tls").and_then(Value::as_u64).unwrap_or(0)
                    + by_proto.get("http1_tls").and_then(Value::as_u64).unwrap_or(0);
                report += &format!("{} {} {:?} seen={:?} flags={:?} truth={} {}\n", e["method"], e["path"], a.reported(), a.schemes_seen, a.flags, want, seen);
                assert_eq!(a.reported(), [want], "{} {}", e["method"], e["path"]);
                let mut ours: BTreeMap<&str, u64> = BTreeMap::new();
                for (s, n) in &a.schemes_seen {
                    *ours.entry(truth_name(s)).or_default() += n;
                }
                for (s, n) in &ours {
                    let t = seen.get(*s).and_then(Value::as_u64).unwrap_or(0);
                    if tls == 0 {
                        assert_eq!(*n, t, "{} {} {s}", e["method"], e["path"]);
                    } else {
                        assert!(*n <= t, "{} {} {s}", e["method"], e["path"]);
                    }
                }
            }
            eprintln!("{report}flags: {flagged:?}");
            assert!(agg.len() >= 40, "{} endpoints matched", agg.len());
        }
    }
}
