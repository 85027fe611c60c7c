//! The `vgs-signature` check.
//!
//! VGS documents only that every webhook carries a signature in the `vgs-signature` header.
//! The scheme checked here (issue 7): HMAC-SHA256 over the exact bytes of the request body,
//! keyed with the signing secret (the secret file's trimmed bytes), sent as hex or base64,
//! optionally prefixed `sha256=`. `verify = "log-only"` exists to confirm that from one real
//! delivery before enforcing it (README, "VGS webhooks").
//!
//! Invariants:
//! - The body is checked before it is parsed: nothing of an unsigned body is looked at.
//! - Comparisons are constant-time (`aws_lc_rs::hmac::verify`); every configured secret is
//!   tried (rotation: the old and the new secret are both valid for a while).
//! - Neither the secrets nor the expected signatures ever leave this module; [`Verifier`]'s
//!   `Debug` shows how many secrets it holds, nothing else.

use aws_lc_rs::{constant_time, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::config::{Config, VgsConfig};

/// The header VGS signs with (header names are case-insensitive; `http` lower-cases them).
pub const HEADER: &str = "vgs-signature";

/// Length of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

/// At most this many candidate signatures are tried per request (a header may carry a
/// list, e.g. one per secret during a rotation on VGS's side); more are ignored, as are
/// header tokens past [`MAX_TOKENS`], so a huge header costs no more than a small one.
const MAX_CANDIDATES: usize = 8;
const MAX_TOKENS: usize = 32;

/// The configured signing secrets.
pub struct Verifier {
    keys: Vec<hmac::Key>,
    /// The raw secrets, only to recognise a header that carries a secret itself (then it is
    /// not logged).
    secrets: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("secrets", &self.keys.len()).finish()
    }
}

/// How a signature that matched was written (for the log of a first delivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Form {
    /// `hex` or `base64`.
    pub encoding: &'static str,
    /// With the `sha256=` prefix.
    pub prefixed: bool,
}

impl std::fmt::Display for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.prefixed {
            f.write_str("sha256=")?;
        }
        f.write_str(self.encoding)
    }
}

/// A signature that verified: its form, and which secret (0 = `signing_secret_file`, then
/// `extra_signing_secret_files` in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub form: Form,
    pub secret: usize,
}

/// Why a request's signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("no vgs-signature header")]
    Missing,
    #[error("no signing secret is configured")]
    NoSecret,
    #[error("the vgs-signature header is not a hex or base64 HMAC-SHA256")]
    Malformed,
    #[error("the vgs-signature header holds a configured secret itself, not a signature of the body")]
    SecretItself,
    #[error("the signature does not match the body with any configured secret")]
    Mismatch,
}

impl Failure {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::NoSecret => "no_secret",
            Failure::Malformed => "malformed",
            Failure::SecretItself => "secret_itself",
            Failure::Mismatch => "mismatch",
        }
    }
}

impl Verifier {
    /// A verifier for these secrets (each used as the HMAC key as given).
    pub fn new(secrets: Vec<Vec<u8>>) -> Verifier {
        let keys = secrets.iter().map(|s| hmac::Key::new(hmac::HMAC_SHA256, s)).collect();
        Verifier { keys, secrets }
    }

    /// Reads `signing_secret_file` and `extra_signing_secret_files` (trimmed, as SPEC 6 says).
    /// An empty or unreadable file is an error naming the key.
    pub fn load(config: &Config, vgs: &VgsConfig) -> Result<Verifier, crate::config::ConfigError> {
        let mut secrets = Vec::new();
        if let Some(f) = &vgs.signing_secret_file {
            secrets.push(config.read_secret("vgs.signing_secret_file", f)?.into_bytes());
        }
        for f in &vgs.extra_signing_secret_files {
            let secret = config.read_secret("vgs.extra_signing_secret_files", f)?;
            secrets.push(secret.into_bytes());
        }
        Ok(Verifier::new(secrets))
    }

    /// How many secrets are configured.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no secret is configured (possible with `verify = "log-only"` only).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks the values of the `vgs-signature` header (every occurrence; each may be a list
    /// separated by commas or spaces) against `body`. Any candidate matching any secret
    /// verifies the request.
    pub fn check<'a>(&self, headers: impl IntoIterator<Item = &'a [u8]>, body: &[u8]) -> Result<Verified, Failure> {
        let mut seen_any = false;
        let mut candidates: Vec<([u8; TAG_LEN], Form)> = Vec::new();
        let mut secret_itself = false;
        let tokens = headers
            .into_iter()
            .flat_map(|value| value.split(|b| *b == b',' || b.is_ascii_whitespace()))
            .filter(|t| !t.is_empty())
            .take(MAX_TOKENS);
        for token in tokens {
            seen_any = true;
            if self.secrets.iter().any(|s| constant_time::verify_slices_are_equal(s, token).is_ok()) {
                secret_itself = true;
                continue;
            }
            if candidates.len() < MAX_CANDIDATES {
                candidates.extend(decode(token));
            }
        }
        if !seen_any {
            return Err(Failure::Missing);
        }
        if self.keys.is_empty() {
            return Err(Failure::NoSecret);
        }
        for (secret, key) in self.keys.iter().enumerate() {
            for (tag, form) in &candidates {
                if hmac::verify(key, body, tag).is_ok() {
                    return Ok(Verified { form: *form, secret });
                }
            }
        }
        Err(if secret_itself {
            Failure::SecretItself
        } else if candidates.is_empty() {
            Failure::Malformed
        } else {
            Failure::Mismatch
        })
    }
}

/// The HMAC-SHA256 tags a header token can be read as: hex (64 digits, either case), or
/// base64 (standard or URL-safe alphabet, padded or not) of 32 bytes; after an optional
/// `sha256=` prefix (any case). A 64-digit hex string is also valid base64 — but of 48
/// bytes, so at most one reading yields a tag.
fn decode(token: &[u8]) -> Option<([u8; TAG_LEN], Form)> {
    let (prefixed, rest) = match token.get(..7) {
        Some(p) if p.eq_ignore_ascii_case(b"sha256=") => (true, &token[7..]),
        _ => (false, token),
    };
    let mut tag = [0u8; TAG_LEN];
    if rest.len() == 2 * TAG_LEN && hex::decode_to_slice(rest, &mut tag).is_ok() {
        return Some((tag, Form { encoding: "hex", prefixed }));
    }
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(rest)
            && let Ok(t) = <[u8; TAG_LEN]>::try_from(bytes.as_slice())
        {
            return Some((t, Form { encoding: "base64", prefixed }));
        }
    }
    None
}

/// HMAC-SHA256 of `body` with `secret`, as lower-case hex: how a sender signs (tests, the
/// simulator's kin, an operator's script).
pub fn sign_hex(secret: &[u8], body: &[u8]) -> String {
    hex::encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), body).as_ref())
}

/// HMAC-SHA256 of `body` with `secret`, as standard padded base64.
pub fn sign_base64(secret: &[u8], body: &[u8]) -> String {
    STANDARD.encode(hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), body).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"id":"e1","event":"cmp_au_card.updated"}"#;

    fn check(v: &Verifier, header: &str) -> Result<Verified, Failure> {
        v.check([header.as_bytes()], BODY)
    }

    #[test]
    fn every_written_form_verifies() {
        let v = Verifier::new(vec![b"first-secret".to_vec()]);
        let hex = sign_hex(b"first-secret", BODY);
        let b64 = sign_base64(b"first-secret", BODY);
        let hex_form = Form { encoding: "hex", prefixed: false };
        let b64_form = Form { encoding: "base64", prefixed: false };
        assert_eq!(check(&v, &hex), Ok(Verified { form: hex_form, secret: 0 }));
        assert_eq!(check(&v, &hex.to_uppercase()).map(|v| v.form), Ok(hex_form));
        assert_eq!(check(&v, &b64).map(|v| v.form), Ok(b64_form));
        assert_eq!(check(&v, b64.trim_end_matches('=')).map(|v| v.form), Ok(b64_form));
        let url_safe = URL_SAFE_NO_PAD.encode(STANDARD.decode(&b64).unwrap());
        assert!(check(&v, &url_safe).is_ok());
        assert_eq!(check(&v, &format!("sha256={hex}")).unwrap().form, Form { encoding: "hex", prefixed: true });
        assert_eq!(check(&v, &format!("SHA256={b64}")).unwrap().form, Form { encoding: "base64", prefixed: true });
        assert!(check(&v, &format!("  {hex}  ")).is_ok(), "surrounding spaces");
        // A list (VGS signing with two secrets during its own rotation), and repeated headers.
        assert!(check(&v, &format!("sha256={}, sha256={hex}", "0".repeat(64))).is_ok());
        assert!(v.check([b"garbage".as_slice(), hex.as_bytes()], BODY).is_ok());
    }

    #[test]
    fn rotation_accepts_every_configured_secret() {
        let v = Verifier::new(vec![b"new".to_vec(), b"old".to_vec()]);
        assert_eq!(check(&v, &sign_hex(b"new", BODY)).unwrap().secret, 0);
        assert_eq!(check(&v, &sign_hex(b"old", BODY)).unwrap().secret, 1);
        assert_eq!(check(&v, &sign_hex(b"other", BODY)), Err(Failure::Mismatch));
    }

    #[test]
    fn bad_signatures_are_told_apart() {
        let v = Verifier::new(vec![b"s3cret".to_vec()]);
        assert_eq!(v.check([], BODY), Err(Failure::Missing));
        assert_eq!(check(&v, "  "), Err(Failure::Missing));
        assert_eq!(check(&v, "not-a-signature"), Err(Failure::Malformed));
        assert_eq!(check(&v, &"ab".repeat(31)), Err(Failure::Malformed), "31 bytes");
        assert_eq!(check(&v, "s3cret"), Err(Failure::SecretItself));
        let mut other_body = BODY.to_vec();
        other_body.push(b' ');
        assert_eq!(v.check([sign_hex(b"s3cret", &other_body).as_bytes()], BODY), Err(Failure::Mismatch));
        assert_eq!(check(&Verifier::new(vec![]), &sign_hex(b"s3cret", BODY)), Err(Failure::NoSecret));
        assert!(v.check([b"\xff\xfe".as_slice()], BODY).is_err(), "non-UTF-8 bytes do not panic");
        assert_eq!(format!("{v:?}"), "Verifier { secrets: 1 }", "no secret in Debug");
    }

    #[test]
    fn matches_openssl() {
        // The README's check of a captured delivery:
        //   printf '%s' '{"id":"e1","event":"cmp_au_card.updated"}' | openssl dgst -sha256 -hmac first-secret
        //   … | openssl dgst -sha256 -hmac first-secret -binary | base64
        let hex = "7bbfbe8f6f0307ddacbfc7ae708ea79079ad06dcee29ae1db5871352a83eec64";
        assert_eq!(sign_hex(b"first-secret", BODY), hex);
        assert_eq!(sign_base64(b"first-secret", BODY), "e7++j28DB92sv8eucI6nkHmtBtzuKa4dtYcTUqg+7GQ=");
    }
}
