//! What a name says about the value under it.
//!
//! JSON keys, form fields, query parameters, header names, XML elements and
//! CSV columns are split into lower-case words (`customerEmail`,
//! `customer_email` and `Customer-Email` all give `customer email`) and
//! matched on the *last* word (the head noun: `phone_verified` is about a
//! verification, not a phone) and on the compact form (`apikey`). The result
//! is a [`Hint`] bit set; it never decides a kind alone, the value must still
//! pass its validator. Classification allocates nothing.

/// Bytes of a name that are looked at; the rest is ignored.
const MAX_NAME: usize = 64;
/// Words of a name that are told apart; further words extend the last one.
const MAX_WORDS: usize = 8;

/// Hints about the value under a name (bit set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hint(pub u32);

impl Hint {
    pub const NONE: Hint = Hint(0);
    /// A phone number (`phone`, `mobile`, `tel`, `msisdn`, `fax`, `phone_number`).
    pub const PHONE: u32 = 1 << 0;
    /// A part of a phone held by a phone-named object (`number`, `e164`, `value`).
    pub const PHONE_PART: u32 = 1 << 1;
    pub const DOB: u32 = 1 << 2;
    pub const SSN: u32 = 1 << 3;
    pub const IP: u32 = 1 << 4;
    /// A postal address as one string, or an object holding its parts.
    pub const ADDRESS: u32 = 1 << 5;
    /// An object that holds address parts (`shipping`, `billing`).
    pub const ADDRESS_CTX: u32 = 1 << 6;
    /// A street line (`line1`, `street`, `address_line1`).
    pub const STREET: u32 = 1 << 7;
    pub const PASSWORD: u32 = 1 << 8;
    /// A service credential (`client_secret`, `db_password`, `private_key`).
    pub const SECRET: u32 = 1 << 9;
    /// A bearer-style token (`token`, `access_token`); a secret when served.
    pub const TOKEN: u32 = 1 << 10;
    pub const API_KEY: u32 = 1 << 11;
    /// Payment card context (`card_number`, `pan`): card checks run even on id-like numbers.
    pub const CARD: u32 = 1 << 12;
    /// Identifiers, counters and times (`id`, `ts`, `sku`, `ean`): never card numbers.
    pub const ID_LIKE: u32 = 1 << 13;

    /// Hints a container passes on to the values it holds.
    pub const INHERITED: u32 = Self::PHONE | Self::ADDRESS | Self::ADDRESS_CTX;
    /// Hints a short text label (an HTML table header) may give the next text:
    /// personal data only, never credentials, whose labels often sit next to help text.
    pub const LABEL: u32 = Self::PHONE | Self::DOB | Self::SSN | Self::IP | Self::ADDRESS;

    pub fn has(self, bits: u32) -> bool {
        self.0 & bits != 0
    }
    pub fn union(self, other: Hint) -> Hint {
        Hint(self.0 | other.0)
    }
    pub fn mask(self, bits: u32) -> Hint {
        Hint(self.0 & bits)
    }
}

/// A name split into lower-case words, on the stack.
struct Words {
    buf: [u8; MAX_NAME],
    len: usize,
    words: [(u8, u8); MAX_WORDS],
    n: usize,
}

impl Words {
    fn split(name: &[u8]) -> Words {
        let mut w = Words { buf: [0; MAX_NAME], len: 0, words: [(0, 0); MAX_WORDS], n: 0 };
        let mut in_word = false;
        let mut prev_lower = false;
        for &b in name {
            // `buf` holds MAX_NAME bytes: stop when it is full
            let Some(slot) = w.buf.get_mut(w.len) else {
                break;
            };
            if b.is_ascii_alphanumeric() {
                let boundary = in_word && b.is_ascii_uppercase() && prev_lower;
                if !in_word || boundary {
                    // beyond MAX_WORDS words the letters extend the last word
                    if let Some(word) = w.words.get_mut(w.n) {
                        // `len` is below MAX_NAME (64), so it fits a u8
                        *word = (w.len as u8, 0);
                        w.n += 1;
                    }
                }
                *slot = b.to_ascii_lowercase();
                w.len += 1;
                if let Some(last) = w.n.checked_sub(1).and_then(|i| w.words.get_mut(i)) {
                    last.1 = last.1.saturating_add(1);
                }
                prev_lower = b.is_ascii_lowercase() || b.is_ascii_digit();
                in_word = true;
            } else {
                in_word = false;
                prev_lower = false;
            }
        }
        w
    }

    fn word(&self, i: usize) -> &[u8] {
        match self.words.get(i) {
            Some(&(s, l)) if i < self.n => self.buf.get(usize::from(s)..usize::from(s) + usize::from(l)).unwrap_or(&[]),
            _ => &[],
        }
    }
    /// The last word (the head noun).
    fn last(&self) -> &[u8] {
        match self.n.checked_sub(1) {
            Some(i) => self.word(i),
            None => &[],
        }
    }
    /// The word before the last.
    fn prev(&self) -> &[u8] {
        match self.n.checked_sub(2) {
            Some(i) => self.word(i),
            None => &[],
        }
    }
    fn compact(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
}

fn is_in(w: &[u8], set: &[&str]) -> bool {
    set.iter().any(|s| s.as_bytes() == w)
}

fn ends_with_any(w: &[u8], set: &[&str]) -> bool {
    set.iter().any(|s| w.ends_with(s.as_bytes()))
}

const PASSWORD_WORDS: &[&str] = &["password", "passwd", "pwd", "passphrase", "passcode"];
/// Names of a user's own password (anything else ending in `password` is a service credential).
const PASSWORD_NAMES: &[&str] = &[
    "password", "passwd", "pwd", "pass", "passphrase", "passcode", "newpassword", "currentpassword", "oldpassword",
    "confirmpassword", "passwordconfirm", "passwordconfirmation", "repeatpassword", "retypepassword",
    "verifypassword", "userpassword", "loginpassword", "accountpassword", "newpwd", "oldpwd", "curpassword",
    "password1", "password2", "newpassword1", "newpassword2",
];
const SECRET_NAMES: &[&str] = &[
    "secretkey", "secretaccesskey", "privatekey", "privkey", "signingkey", "encryptionkey", "masterkey", "hmackey",
    "sharedkey", "clientkey", "awssecretaccesskey",
];
const API_KEY_NAMES: &[&str] = &[
    "apikey", "xapikey", "apikeys", "accesskey", "accesskeyid", "apitoken", "xapitoken", "xauthtoken",
    "xaccesstoken", "subscriptionkey", "ocpapimsubscriptionkey", "xfunctionskey", "xgoogapikey", "appkey",
    "applicationkey", "developerkey", "partnerkey", "xapikeyid",
];
/// Tokens that are not credentials worth reporting (paging, anti-CSRF, push).
const NON_SECRET_TOKEN_PREFIXES: &[&str] = &[
    "csrf", "xsrf", "page", "next", "prev", "continuation", "pagination", "sync", "cursor", "push", "device",
    "fcm", "apns", "registration", "notification", "verification", "captcha", "recaptcha", "authenticity",
    "requestverification", "antiforgery",
];
const PHONE_WORDS: &[&str] = &[
    "phone", "phones", "mobile", "telephone", "tel", "msisdn", "fax", "cellphone", "phonenumber", "mobilenumber",
    "mobilephone", "telno", "phoneno", "faxnumber", "telnumber",
];
const PHONE_HOLDERS: &[&str] = &["phone", "mobile", "tel", "telephone", "fax", "cell", "contact"];
const PHONE_PARTS: &[&str] = &["number", "e164", "value", "national", "international", "full", "formatted", "no", "num"];
const ADDRESS_WORDS: &[&str] = &["address", "addresses", "addr"];
/// Words before `address` that make it a network or mail address.
const NON_POSTAL: &[&str] = &[
    "ip", "email", "mail", "e", "mac", "remote", "wallet", "server", "host", "web", "url", "ipv4", "ipv6",
    "contract", "bitcoin", "btc", "eth", "crypto", "client", "peer", "source", "src", "dest", "destination", "bind",
    "listen", "local", "network", "net", "broadcast", "gateway", "hardware", "memory", "proxy", "smtp", "reply",
    "sender", "node", "public", "deposit", "withdrawal", "physical", "virtual", "base", "return",
];
const ADDRESS_NAMES: &[&str] = &["shipto", "billto", "addressline", "addressline1", "addressline2", "addressline3"];
const ADDRESS_HOLDERS: &[&str] =
    &["shipping", "billing", "delivery", "shipto", "billto", "mailing", "postal", "residence", "shipment"];
const STREET_NAMES: &[&str] = &[
    "line1", "line2", "line3", "street", "streetname", "streetline1", "streetline2", "street1", "street2",
    "address1", "address2", "addr1", "addr2", "addressline1", "addressline2", "streetaddress", "houseaddress",
];
const IP_WORDS: &[&str] = &["ip", "ips", "ipaddr", "ipaddress", "ipv4", "ipv6", "ipaddresses"];
const IP_ADDR_HOLDERS: &[&str] = &["ip", "remote", "client", "peer", "source", "src", "origin"];
const IP_NAMES: &[&str] =
    &["remoteaddr", "remoteaddress", "clientaddr", "xforwardedfor", "xrealip", "forwardedfor", "lastloginip"];
const DOB_ENDINGS: &[&str] = &["dateofbirth", "birthdate", "birthday", "birthdt", "dob"];
const ID_WORDS: &[&str] = &[
    "id", "ids", "uuid", "guid", "ts", "timestamp", "time", "epoch", "nonce", "seq", "sequence", "version", "hash",
    "checksum", "crc", "etag", "offset", "size", "bytes", "count", "total", "millis", "ms", "ns", "us", "ref",
    "serial", "sku", "upc", "ean", "isbn", "gtin", "barcode", "at", "since", "until", "amount", "price",
];

/// Classifies a name (JSON key, form field, header, XML element, CSV column).
pub(crate) fn classify(name: &[u8]) -> Hint {
    if name.len() > MEMO_NAME_BYTES {
        return classify_words(name);
    }
    NAMES.with(|m| match m.try_borrow_mut() {
        Ok(mut m) => {
            if let Some(h) = m.get(name) {
                return *h;
            }
            let h = classify_words(name);
            if m.len() >= MEMO_NAMES {
                m.clear();
            }
            m.insert(name.into(), h);
            h
        }
        Err(_) => classify_words(name),
    })
}

/// Names remembered per thread with their hints (field names repeat in
/// every message of an API), and the longest one remembered.
const MEMO_NAMES: usize = 4096;
const MEMO_NAME_BYTES: usize = 64;

std::thread_local! {
    static NAMES: std::cell::RefCell<std::collections::HashMap<Box<[u8]>, Hint, foldhash::fast::RandomState>> = std::cell::RefCell::new(std::collections::HashMap::default());
}

fn classify_words(name: &[u8]) -> Hint {
    let w = Words::split(name);
    let c = w.compact();
    if c.is_empty() {
        return Hint::NONE;
    }
    let last = w.last();
    let prev = w.prev();
    let mut h = 0u32;

    // credentials
    if is_in(last, PASSWORD_WORDS) || is_in(c, PASSWORD_NAMES) {
        h |= if is_in(c, PASSWORD_NAMES) { Hint::PASSWORD } else { Hint::SECRET };
    }
    if c.ends_with(b"secret") || last == b"secrets" || is_in(c, SECRET_NAMES) || c.ends_with(b"privatekey") {
        h |= Hint::SECRET;
    }
    if is_in(c, API_KEY_NAMES) || (c.ends_with(b"apikey") && !c.ends_with(b"publicapikey")) {
        h |= Hint::API_KEY;
    } else if last == b"token" || (w.n == 1 && c.ends_with(b"token")) {
        let excluded = NON_SECRET_TOKEN_PREFIXES.iter().any(|p| c.starts_with(p.as_bytes()));
        if !excluded {
            h |= Hint::TOKEN;
        }
    }

    // personal data
    if ends_with_any(c, DOB_ENDINGS) && (last == b"dob" || !c.ends_with(b"dob")) {
        h |= Hint::DOB;
    }
    if last == b"ssn" || c.ends_with(b"socialsecuritynumber") || c == b"socialsecurity" || c == b"socialsecurityno" {
        h |= Hint::SSN;
    }
    if is_in(last, IP_WORDS)
        || is_in(c, IP_NAMES)
        || (is_in(last, &["address", "addr"]) && is_in(prev, IP_ADDR_HOLDERS))
    {
        h |= Hint::IP;
    }
    if is_in(last, PHONE_WORDS)
        || c.ends_with(b"phonenumber")
        || c.ends_with(b"mobilenumber")
        || (is_in(last, &["number", "no", "num"]) && is_in(prev, PHONE_HOLDERS))
    {
        h |= Hint::PHONE;
    }
    if is_in(last, PHONE_PARTS) {
        h |= Hint::PHONE_PART;
    }
    let postal_word = is_in(last, ADDRESS_WORDS) && !is_in(prev, NON_POSTAL) && h & Hint::IP == 0;
    if postal_word || is_in(c, ADDRESS_NAMES) {
        h |= Hint::ADDRESS | Hint::ADDRESS_CTX;
    }
    if is_in(c, ADDRESS_HOLDERS) || ADDRESS_HOLDERS.iter().any(|p| c.starts_with(p.as_bytes()) && postal_word) {
        h |= Hint::ADDRESS_CTX;
    }
    if is_in(c, STREET_NAMES) || is_in(last, &["line1", "line2", "street"]) {
        h |= Hint::STREET;
    }

    // payment context and identifiers
    if w.n > 0 && (c.windows(4).any(|x| x == b"card") || is_in(last, &["pan", "ccnumber", "cc", "ccnum", "cardnumber"])) {
        h |= Hint::CARD;
    }
    if is_in(last, ID_WORDS) {
        h |= Hint::ID_LIKE;
    }
    Hint(h)
}

/// Request headers that carry an API key (compared on the lower-case name).
pub(crate) fn is_api_key_header(name: &str) -> bool {
    matches!(
        name,
        "x-api-key"
            | "api-key"
            | "apikey"
            | "x-apikey"
            | "x-api-token"
            | "x-auth-token"
            | "x-access-token"
            | "x-functions-key"
            | "ocp-apim-subscription-key"
            | "x-goog-api-key"
            | "x-rapidapi-key"
            | "x-api-key-id"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(name: &str, bit: u32) -> bool {
        classify(name.as_bytes()).has(bit)
    }

    #[test]
    fn words_split_on_case_and_punctuation() {
        let w = Words::split(b"lastLoginIP_address");
        assert_eq!(w.compact(), b"lastloginipaddress");
        assert_eq!(w.last(), b"address");
        let w = Words::split(b"X-API-Key");
        assert_eq!(w.last(), b"key");
        assert_eq!(w.compact(), b"xapikey");
        let w = Words::split(b"");
        assert_eq!(w.last(), b"");
        let long = "a_".repeat(100);
        let w = Words::split(long.as_bytes());
        assert!(w.compact().len() <= MAX_NAME);
    }

    #[test]
    fn personal_data_names() {
        for n in ["phone", "mobile", "phone_number", "phoneNumber", "msisdn", "fax", "tel", "contact_number", "home_phone"] {
            assert!(has(n, Hint::PHONE), "{n}");
        }
        for n in ["phone_verified", "phone_type", "phoneCountry", "telemetry", "hotel"] {
            assert!(!has(n, Hint::PHONE), "{n}");
        }
        for n in ["dob", "date_of_birth", "birthDate", "birthday", "birth_date", "customer_dob"] {
            assert!(has(n, Hint::DOB), "{n}");
        }
        for n in ["created_at", "date", "updated", "birthplace", "dobby"] {
            assert!(!has(n, Hint::DOB), "{n}");
        }
        for n in ["ssn", "customer_ssn", "social_security_number"] {
            assert!(has(n, Hint::SSN), "{n}");
        }
        for n in ["ip", "ip_address", "client_ip", "remote_addr", "last_login_ip", "source_ip", "ipAddress", "x-forwarded-for"] {
            assert!(has(n, Hint::IP), "{n}");
        }
        for n in ["zip", "ship", "ip_country", "skip", "description"] {
            assert!(!has(n, Hint::IP), "{n}");
        }
        for n in ["address", "addresses", "street_address", "shipping_address", "billing_address", "postal_address", "ship_to", "address_line1"] {
            assert!(has(n, Hint::ADDRESS), "{n}");
        }
        for n in ["ip_address", "email_address", "mac_address", "remote_address", "wallet_address", "address_type"] {
            assert!(!has(n, Hint::ADDRESS), "{n}");
        }
        assert!(has("shipping", Hint::ADDRESS_CTX));
        assert!(!has("shipping", Hint::ADDRESS));
        assert!(has("line1", Hint::STREET));
    }

    #[test]
    fn credential_names() {
        for n in ["password", "passwd", "pwd", "pass", "new_password", "currentPassword", "password_confirmation"] {
            assert!(has(n, Hint::PASSWORD), "{n}");
        }
        for n in ["db_password", "DATABASE_PASSWORD", "client_secret", "JWT_SECRET", "private_key", "aws_secret_access_key"] {
            assert!(has(n, Hint::SECRET), "{n}");
        }
        for n in ["password_reset", "password_changed_at", "secret_name", "is_secret_question"] {
            assert!(!has(n, Hint::PASSWORD | Hint::SECRET), "{n}");
        }
        for n in ["api_key", "apikey", "api-key", "x-api-key", "access_key", "apiKey", "partner_api_key"] {
            assert!(has(n, Hint::API_KEY), "{n}");
        }
        for n in ["token", "access_token", "refreshToken", "id_token", "accesstoken"] {
            assert!(has(n, Hint::TOKEN), "{n}");
        }
        for n in ["token_type", "csrf_token", "next_page_token", "xsrfToken", "tokens_used"] {
            assert!(!has(n, Hint::TOKEN), "{n}");
        }
    }

    #[test]
    fn identifiers_and_cards() {
        for n in ["id", "user_id", "orderId", "created_ts", "ean", "version"] {
            assert!(has(n, Hint::ID_LIKE), "{n}");
        }
        for n in ["card_number", "card", "pan", "cardNumber"] {
            assert!(has(n, Hint::CARD), "{n}");
        }
        assert!(is_api_key_header("x-api-key"));
        assert!(!is_api_key_header("authorization"));
    }
}
