//! OAuth 1.0a request signing as Mastercard's gateway does it (SPEC 10): one-legged (no
//! token), RSA-SHA256, and the `oauth_body_hash` extension on every request.
//!
//! Hand-written on purpose: no maintained crate implements Mastercard's variant, and the
//! details below are exactly where a signature goes wrong. Each rule of SPEC 10 has its own
//! function so that `cen-poller sign --base-string` and the simulator's verifier use the very
//! code the client signs with.
//!
//! Invariant: the URL that is signed is byte for byte the URL that is sent. The base URI and
//! the query values are taken from the URL text as is (never decoded and re-encoded), so the
//! client builds its URLs in one canonical form ([`encode_query_value`]).

use aws_lc_rs::{digest, rand as lc_rand, signature};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::keys::SigningKey;

pub const SIGNATURE_METHOD: &str = "RSA-SHA256";
pub const VERSION: &str = "1.0";

/// A URL the signer cannot take apart.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum UrlError {
    #[error("URL {0:?} has no scheme (expected https://host/path)")]
    NoScheme(String),
    #[error("URL {0:?} has no host")]
    NoHost(String),
}

/// Rule 4's `pct`: keep `A-Z a-z 0-9 - . _ ~`, encode every other UTF-8 byte as `%XX` with
/// upper-case hex.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[(b >> 4) as usize]));
            out.push(char::from(b"0123456789ABCDEF"[(b & 15) as usize]));
        }
    }
    out
}

/// The one canonical encoding the client uses for query values (rule 3): RFC 3986 unreserved
/// characters kept, everything else `%XX` upper-case — the same set as [`percent_encode`].
pub fn encode_query_value(s: &str) -> String {
    percent_encode(s)
}

/// Decodes `%XX` sequences (used only for the `oauth_signature` header value).
pub fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of a URL the signature needs, taken from its text without normalising the path.
struct UrlParts<'a> {
    scheme: String,
    host_port: String,
    path: &'a str,
    query: Option<&'a str>,
}

fn split_url(url: &str) -> Result<UrlParts<'_>, UrlError> {
    let (scheme, rest) =
        url.split_once("://").filter(|(s, _)| !s.is_empty()).ok_or_else(|| UrlError::NoScheme(url.to_owned()))?;
    let scheme = scheme.to_ascii_lowercase();
    // The fragment is never sent and never signed.
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let after = &rest[authority_end..];
    let (path, query) = match after.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (after, None),
    };
    // Userinfo is not part of the base URI.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() {
        return Err(UrlError::NoHost(url.to_owned()));
    }
    let host_port = host_port.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => Some(":443"),
        "http" => Some(":80"),
        _ => None,
    };
    let host_port = match default_port {
        Some(p) if host_port.ends_with(p) => host_port[..host_port.len() - p.len()].to_owned(),
        _ => host_port,
    };
    Ok(UrlParts { scheme, host_port, path, query })
}

/// Rule 2: scheme and host lower-cased, default port dropped, other ports kept, path exactly
/// as sent (empty becomes `/`), no query, no fragment.
pub fn base_uri(url: &str) -> Result<String, UrlError> {
    let p = split_url(url)?;
    let path = if p.path.is_empty() { "/" } else { p.path };
    Ok(format!("{}://{}{}", p.scheme, p.host_port, path))
}

/// The query of `url` as (key, value) pairs exactly as written: repeats kept, a key without
/// `=` has the empty value, nothing decoded.
pub fn query_pairs(url: &str) -> Result<Vec<(String, String)>, UrlError> {
    let p = split_url(url)?;
    Ok(p.query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (kv.to_owned(), String::new()),
        })
        .collect())
}

/// Rule 1's `oauth_body_hash`: base64 of SHA-256 of the body (the empty body for a GET).
pub fn body_hash(body: &[u8]) -> String {
    B64.encode(digest::digest(&digest::SHA256, body))
}

/// Rule 1's `oauth_nonce`: 16 characters of `[0-9A-Za-z]` from the system CSPRNG.
pub fn new_nonce() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = [0u8; 16];
    lc_rand::fill(&mut bytes).expect("the system random number generator failed");
    // 62 does not divide 256, so the tiny bias towards the first 8 characters remains; a
    // nonce needs to be unique, not uniform.
    bytes.iter().map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char).collect()
}

/// The oauth parameters of one request, except the signature.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuthParams {
    pub consumer_key: String,
    pub nonce: String,
    pub timestamp: i64,
    pub body_hash: String,
}

impl OAuthParams {
    /// Fresh parameters for a request with `body`, signed now.
    pub fn new(consumer_key: &str, body: &[u8]) -> Self {
        OAuthParams {
            consumer_key: consumer_key.to_owned(),
            nonce: new_nonce(),
            timestamp: chrono::Utc::now().timestamp(),
            body_hash: body_hash(body),
        }
    }

    /// The pairs that enter the parameter string, in no particular order.
    fn pairs(&self) -> [(&'static str, String); 6] {
        [
            ("oauth_body_hash", self.body_hash.clone()),
            ("oauth_consumer_key", self.consumer_key.clone()),
            ("oauth_nonce", self.nonce.clone()),
            ("oauth_signature_method", SIGNATURE_METHOD.to_owned()),
            ("oauth_timestamp", self.timestamp.to_string()),
            ("oauth_version", VERSION.to_owned()),
        ]
    }
}

/// Rule 3: query pairs plus oauth parameters (no signature), sorted by key then value in
/// byte order, joined as `k=v` with `&`.
pub fn parameter_string(query: &[(String, String)], oauth: &OAuthParams) -> String {
    let mut all: Vec<(&str, &str)> = query.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let oauth_pairs = oauth.pairs();
    all.extend(oauth_pairs.iter().map(|(k, v)| (*k, v.as_str())));
    all.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()).then(a.1.as_bytes().cmp(b.1.as_bytes())));
    let mut out = String::new();
    for (i, (k, v)) in all.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Rule 4: `METHOD&pct(base URI)&pct(parameter string)`.
pub fn base_string(method: &str, url: &str, oauth: &OAuthParams) -> Result<String, UrlError> {
    Ok(format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        percent_encode(&base_uri(url)?),
        percent_encode(&parameter_string(&query_pairs(url)?, oauth))
    ))
}

/// Rule 6: `OAuth k="v",k="v",…` — commas, no spaces; only the signature is
/// percent-encoded, the body hash and the consumer key go in raw.
pub fn authorization_header(oauth: &OAuthParams, signature_b64: &str) -> String {
    let mut pairs: Vec<(&str, String)> = oauth.pairs().into_iter().collect();
    pairs.push(("oauth_signature", percent_encode(signature_b64)));
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let body: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("OAuth {}", body.join(","))
}

/// One signed request: what goes into the `Authorization` header, and the base string that
/// was signed (for `cen-poller sign --base-string` and for debugging `INVALID_SIGNATURE`).
#[derive(Debug, Clone)]
pub struct Signed {
    pub authorization: String,
    pub base_string: String,
}

/// Signs requests with one consumer key and one RSA key.
pub struct Signer {
    consumer_key: String,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    // Never print key material (SPEC G6).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("key", &"<redacted>").finish()
    }
}

impl Signer {
    pub fn new(consumer_key: impl Into<String>, key: SigningKey) -> Self {
        Signer { consumer_key: consumer_key.into(), key }
    }

    /// Signs `method url` with `body`, using a fresh nonce and the current time.
    pub fn sign(&self, method: &str, url: &str, body: &[u8]) -> Result<Signed, UrlError> {
        self.sign_with(method, url, &OAuthParams::new(&self.consumer_key, body))
    }

    /// Signs with the given parameters (to reproduce a request: `sign --nonce --timestamp`).
    pub fn sign_with(&self, method: &str, url: &str, oauth: &OAuthParams) -> Result<Signed, UrlError> {
        let base_string = base_string(method, url, oauth)?;
        let signature = self.key.sign(base_string.as_bytes());
        Ok(Signed { authorization: authorization_header(oauth, &B64.encode(signature)), base_string })
    }

    /// The parameters for a request with `body` at the given nonce and time.
    pub fn params(&self, body: &[u8], nonce: Option<String>, timestamp: Option<i64>) -> OAuthParams {
        let mut p = OAuthParams::new(&self.consumer_key, body);
        if let Some(n) = nonce {
            p.nonce = n;
        }
        if let Some(t) = timestamp {
            p.timestamp = t;
        }
        p
    }
}

/// What a verifier found wrong with a request's `Authorization` header. The variants map to
/// the gateway's `ReasonCode`s.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum VerifyError {
    /// `INVALID_AUTH_HEADER`: missing, not `OAuth …`, or a parameter missing or wrong.
    #[error("{0}")]
    BadHeader(String),
    /// `INVALID_BODY_HASH`: the body does not match `oauth_body_hash`.
    #[error("oauth_body_hash does not match the request body")]
    BodyHash,
    /// `INVALID_SIGNATURE`: carries the base string the verifier expected, as the gateway's
    /// message does.
    #[error("Signature verification failed. Expected signature base string: {expected}")]
    Signature { expected: String, consumer_key: String },
}

/// Parses `OAuth k="v",…` into pairs (values as written, quotes removed).
pub fn parse_authorization(header: &str) -> Result<Vec<(String, String)>, VerifyError> {
    let rest = header
        .strip_prefix("OAuth ")
        .ok_or_else(|| VerifyError::BadHeader("Authorization header must start with `OAuth `".into()))?;
    rest.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) =
                p.split_once('=').ok_or_else(|| VerifyError::BadHeader(format!("malformed OAuth parameter {p:?}")))?;
            let v = v.trim();
            let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
            Ok((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

/// Checks a request as the gateway would: the header's parameters, the body hash, then the
/// RSA-SHA256 signature over the base string rebuilt from `url` (as received) with `public_key`
/// (DER `RSAPublicKey`, PKCS#1).
pub fn verify(method: &str, url: &str, body: &[u8], header: &str, public_key: &[u8]) -> Result<String, VerifyError> {
    let pairs = parse_authorization(header)?;
    let get = |key: &str| -> Result<String, VerifyError> {
        let mut values = pairs.iter().filter(|(k, _)| k == key);
        match (values.next(), values.next()) {
            (Some((_, v)), None) => Ok(v.clone()),
            (None, _) => Err(VerifyError::BadHeader(format!("missing {key}"))),
            (Some(_), Some(_)) => Err(VerifyError::BadHeader(format!("{key} given twice"))),
        }
    };
    if get("oauth_signature_method")? != SIGNATURE_METHOD {
        return Err(VerifyError::BadHeader(format!("oauth_signature_method must be {SIGNATURE_METHOD}")));
    }
    if get("oauth_version")? != VERSION {
        return Err(VerifyError::BadHeader(format!("oauth_version must be {VERSION}")));
    }
    let nonce = get("oauth_nonce")?;
    if nonce.len() < 8 {
        return Err(VerifyError::BadHeader("oauth_nonce is too short".into()));
    }
    let timestamp: i64 = get("oauth_timestamp")?
        .parse()
        .map_err(|_| VerifyError::BadHeader("oauth_timestamp is not a number".into()))?;
    let params =
        OAuthParams { consumer_key: get("oauth_consumer_key")?, nonce, timestamp, body_hash: get("oauth_body_hash")? };
    if params.body_hash != body_hash(body) {
        return Err(VerifyError::BodyHash);
    }
    let base = base_string(method, url, &params).map_err(|e| VerifyError::BadHeader(e.to_string()))?;
    let signature = B64
        .decode(percent_decode(&get("oauth_signature")?))
        .map_err(|_| VerifyError::BadHeader("oauth_signature is not base64".into()))?;
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public_key)
        .verify(base.as_bytes(), &signature)
        .map_err(|_| VerifyError::Signature { expected: base, consumer_key: params.consumer_key.clone() })?;
    Ok(params.consumer_key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cen::keys::SigningKey;

    fn params() -> OAuthParams {
        OAuthParams {
            consumer_key: "ck-123!abc".into(),
            nonce: "abcDEF0123456789".into(),
            timestamp: 1_763_805_600,
            body_hash: body_hash(b""),
        }
    }

    #[test]
    fn percent_encoding_keeps_unreserved_and_encodes_the_rest_upper_case() {
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(
            percent_encode(" !*'();:@&=+$,/?#[]%"),
            "%20%21%2A%27%28%29%3B%3A%40%26%3D%2B%24%2C%2F%3F%23%5B%5D%25"
        );
        // UTF-8 bytes, not code points.
        assert_eq!(percent_encode("é€"), "%C3%A9%E2%82%AC");
        assert_eq!(percent_encode("\u{1}\u{7f}"), "%01%7F");
        assert_eq!(encode_query_value("2026-11-20T00:00:00.000Z"), "2026-11-20T00%3A00%3A00.000Z");
        assert_eq!(percent_decode("a%2Bb%3D%3d%"), "a+b==%");
    }

    #[test]
    fn base_uri_normalises_scheme_host_and_default_ports_only() {
        let cases = [
            (
                "HTTPS://Sandbox.API.Mastercard.com/commercial-event-notifications/notifications?start=1",
                "https://sandbox.api.mastercard.com/commercial-event-notifications/notifications",
            ),
            ("https://example.com:443/a", "https://example.com/a"),
            ("http://example.com:80/a", "http://example.com/a"),
            ("http://example.com:443/a", "http://example.com:443/a"),
            ("https://example.com:8443/a", "https://example.com:8443/a"),
            ("https://example.com", "https://example.com/"),
            ("https://example.com?x=1", "https://example.com/"),
            ("https://example.com/a/b#frag", "https://example.com/a/b"),
            ("https://example.com/A%2fB/./c", "https://example.com/A%2fB/./c"),
            ("https://user:pw@example.com/x", "https://example.com/x"),
        ];
        for (url, want) in cases {
            assert_eq!(base_uri(url).unwrap(), want, "{url}");
        }
        assert!(base_uri("example.com/x").is_err());
        assert!(base_uri("https:///x").is_err());
    }

    #[test]
    fn parameter_string_sorts_by_key_then_value_and_keeps_repeats_and_empty_values() {
        let q = query_pairs("https://h/p?b=2&a=z&a=y&flag&c=&a=%41#x").unwrap();
        assert_eq!(q.len(), 6);
        assert!(q.contains(&("flag".into(), String::new())));
        let s = parameter_string(&q, &params());
        assert_eq!(
            s,
            "a=%41&a=y&a=z&b=2&c=&flag=&oauth_body_hash=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\
             &oauth_consumer_key=ck-123!abc&oauth_nonce=abcDEF0123456789&oauth_signature_method=RSA-SHA256\
             &oauth_timestamp=1763805600&oauth_version=1.0"
        );
        // Byte order: upper case sorts before lower case.
        let q = query_pairs("https://h/p?b=1&B=1&a_=1&a=1").unwrap();
        assert!(parameter_string(&q, &params()).starts_with("B=1&a=1&a_=1&b=1&"));
    }

    #[test]
    fn body_hash_is_base64_sha256() {
        assert_eq!(body_hash(b""), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        // Cross-checked with `printf %s '{"a":1}' | openssl dgst -sha256 -binary | base64`.
        assert_eq!(body_hash(b"{\"a\":1}"), "AVq9f1zFei3ZS3WQ8ErYCEJzkF7jPsXOvq5iJ2qX+GI=");
    }

    #[test]
    fn nonces_are_16_alphanumerics_and_differ() {
        let a = new_nonce();
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, new_nonce());
    }

    #[test]
    fn base_string_layout() {
        let s = base_string("get", "https://Example.com:443/n?start=2026-11-20T00%3A00%3A00.000Z&limit=200", &params())
            .unwrap();
        assert_eq!(
            s,
            "GET&https%3A%2F%2Fexample.com%2Fn&limit%3D200%26oauth_body_hash%3D47DEQpj8HBSa%2B%2FTImW%2B5JCeuQeRkm5NMpJWZG3hSuFU%3D\
             %26oauth_consumer_key%3Dck-123%21abc%26oauth_nonce%3DabcDEF0123456789%26oauth_signature_method%3DRSA-SHA256\
             %26oauth_timestamp%3D1763805600%26oauth_version%3D1.0%26start%3D2026-11-20T00%253A00%253A00.000Z"
        );
    }

    #[test]
    fn header_layout_encodes_only_the_signature() {
        let h = authorization_header(&params(), "ab+/c=");
        assert_eq!(
            h,
            "OAuth oauth_body_hash=\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\",oauth_consumer_key=\"ck-123!abc\",\
             oauth_nonce=\"abcDEF0123456789\",oauth_signature=\"ab%2B%2Fc%3D\",oauth_signature_method=\"RSA-SHA256\",\
             oauth_timestamp=\"1763805600\",oauth_version=\"1.0\""
        );
        assert!(!h.contains(", "));
        let parsed = parse_authorization(&h).unwrap();
        assert_eq!(parsed.len(), 7);
    }

    #[test]
    fn signatures_verify_with_the_public_key_and_fail_on_any_change() {
        let key = SigningKey::generate().unwrap();
        let public = key.public_key_pkcs1();
        let signer = Signer::new("ck", key);
        let url = "https://example.com/n?start=2026-11-20T00%3A00%3A00.000Z&limit=5";
        let body = b"{\"x\":1}";
        let signed = signer.sign("POST", url, body).unwrap();
        assert_eq!(verify("POST", url, body, &signed.authorization, &public).unwrap(), "ck");
        // Another URL, method or body fails; the error carries the expected base string.
        let other = url.replace("limit=5", "limit=6");
        match verify("POST", &other, body, &signed.authorization, &public) {
            Err(VerifyError::Signature { expected, .. }) => assert!(expected.contains("limit%3D6")),
            e => panic!("{e:?}"),
        }
        assert!(verify("GET", url, body, &signed.authorization, &public).is_err());
        assert_eq!(verify("POST", url, b"{}", &signed.authorization, &public), Err(VerifyError::BodyHash));
        // Another key fails.
        let other_key = SigningKey::generate().unwrap().public_key_pkcs1();
        assert!(verify("POST", url, body, &signed.authorization, &other_key).is_err());
        // A reproduced request gives the same header (RSA PKCS#1 v1.5 is deterministic).
        let p = signer.params(b"", Some("n0nce0n0nce0n0nc".into()), Some(1_700_000_000));
        let a = signer.sign_with("GET", url, &p).unwrap();
        let b = signer.sign_with("GET", url, &p).unwrap();
        assert_eq!(a.authorization, b.authorization);
        assert!(a.authorization.contains("oauth_timestamp=\"1700000000\""));
    }

    #[test]
    fn malformed_headers_are_refused_not_panicking() {
        let pk = SigningKey::generate().unwrap().public_key_pkcs1();
        for h in ["", "Basic x", "OAuth ", "OAuth a", "OAuth oauth_signature=\"%%%\"", "OAuth \u{0}=\"\""] {
            assert!(matches!(verify("GET", "https://h/", b"", h, &pk), Err(VerifyError::BadHeader(_))), "{h:?}");
        }
    }
}
