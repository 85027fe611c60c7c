//! Loading the RSA key that signs API requests, and the public keys that verify them.
//!
//! Mastercard hands out the signing key as a PKCS#12 keystore (alias + password) encrypted
//! with legacy algorithms (3DES for the key bag, 40-bit RC2 for the certificate bag), which
//! `p12-keystore` reads. Operators who converted the key also have PEM, PKCS#8 or PKCS#1.
//! Every error names the file and says what to do, because this is the first thing an
//! operator gets wrong.

use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, SubjectPublicKeyInfoDer};

/// Why a key could not be loaded. Each message names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source} (check the path and that the service user may read it)")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "{path}: wrong keystore password (check api.signing_key_password_file; it must hold the password Mastercard's key download used)"
    )]
    WrongPassword { path: PathBuf },
    #[error(
        "{path}: no key with alias {alias:?} in the keystore; it holds {available:?} (set api.signing_key_alias to one of them)"
    )]
    NoSuchAlias { path: PathBuf, alias: String, available: Vec<String> },
    #[error("{path}: the keystore holds {available:?}; set api.signing_key_alias to the one to sign with")]
    AmbiguousAlias { path: PathBuf, available: Vec<String> },
    #[error("{path}: the keystore holds no private key")]
    NoKey { path: PathBuf },
    #[error(
        "{path}: not a PKCS#12 keystore nor a PEM key ({source}); use the .p12 file Mastercard's portal gave you, or a PEM 'PRIVATE KEY' / 'RSA PRIVATE KEY'"
    )]
    Format { path: PathBuf, source: p12_keystore::error::Error },
    #[error(
        "{path}: not a PKCS#12 keystore nor a PEM key ({source}); use the .p12 file Mastercard's portal gave you, or a PEM 'PRIVATE KEY' / 'RSA PRIVATE KEY'"
    )]
    Pem { path: PathBuf, source: PemError },
    #[error("{path}: the key is not a usable RSA key ({source}); Mastercard signing keys are RSA, 2048 bits or more")]
    NotRsa { path: PathBuf, source: aws_lc_rs::error::KeyRejected },
    #[error("{path}: a PKCS#12 keystore needs a password (set api.signing_key_password_file)")]
    NeedsPassword { path: PathBuf },
    #[error("{path}: no certificate or public key found ({source})")]
    NoPublicKey { path: PathBuf, source: PublicKeyError },
}

/// Why PEM text is not a usable signing key ([`SigningKey::from_pem`]).
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    #[error("the PEM key is encrypted; decrypt it with `openssl pkey -in KEY -out KEY.pem`")]
    Encrypted,
    #[error("no PEM private key: {0}")]
    NoKey(#[source] rustls_pki_types::pem::Error),
    #[error("an EC key; Mastercard signing keys are RSA")]
    NotRsaAlgorithm,
    #[error("not an RSA key: {0}")]
    NotRsa(#[source] aws_lc_rs::error::KeyRejected),
}

/// Why bytes hold no public key ([`public_key_from_bytes`]).
#[derive(Debug, thiserror::Error)]
pub enum PublicKeyError {
    #[error("{0}")]
    Pem(#[source] rustls_pki_types::pem::Error),
    #[error("{0}")]
    Der(#[source] x509_parser::nom::Err<x509_parser::error::X509Error>),
}

/// An RSA private key that signs with RSASSA-PKCS1-v1_5 and SHA-256.
pub struct SigningKey {
    pair: RsaKeyPair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Loads `path`: a PKCS#12 keystore (needs `password`; `alias` chooses the key when it
    /// holds several) or a PEM private key (PKCS#8 or PKCS#1; the password is ignored).
    pub fn load(path: &Path, password: Option<&str>, alias: Option<&str>) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read { path: path.into(), source })?;
        if looks_like_pem(&bytes) {
            Self::from_pem(&bytes).map_err(|source| KeyError::Pem { path: path.into(), source })
        } else {
            let password = password.ok_or_else(|| KeyError::NeedsPassword { path: path.into() })?;
            Self::from_pkcs12(&bytes, password, alias, path)
        }
    }

    /// A PEM `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1).
    pub fn from_pem(pem: &[u8]) -> Result<Self, PemError> {
        if pem.windows(9).any(|w| w == b"ENCRYPTED") {
            return Err(PemError::Encrypted);
        }
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(PemError::NoKey)?;
        let pair = match &der {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err(PemError::NotRsaAlgorithm),
        }
        .map_err(PemError::NotRsa)?;
        Ok(SigningKey { pair })
    }

    /// A PKCS#12 keystore, legacy encryption included.
    pub fn from_pkcs12(data: &[u8], password: &str, alias: Option<&str>, path: &Path) -> Result<Self, KeyError> {
        let store = KeyStore::from_pkcs12(data, password, Pkcs12ImportPolicy::Relaxed).map_err(|e| match e {
            p12_keystore::error::Error::MacError(_) => KeyError::WrongPassword { path: path.into() },
            source => KeyError::Format { path: path.into(), source },
        })?;
        let keys: Vec<(&String, &p12_keystore::PrivateKeyChain)> = store
            .entries()
            .filter_map(|(alias, entry)| match entry {
                KeyStoreEntry::PrivateKeyChain(chain) => Some((alias, chain)),
                _ => None,
            })
            .collect();
        let available: Vec<String> = keys.iter().map(|(a, _)| (*a).clone()).collect();
        let chain = match alias {
            Some(want) => keys.iter().find(|(a, _)| a.as_str() == want).map(|(_, c)| *c).ok_or_else(|| {
                KeyError::NoSuchAlias { path: path.into(), alias: want.into(), available: available.clone() }
            })?,
            None => match keys.as_slice() {
                [] => return Err(KeyError::NoKey { path: path.into() }),
                [(_, chain)] => *chain,
                _ => {
                    return Err(KeyError::AmbiguousAlias { path: path.into(), available });
                }
            },
        };
        let pair = RsaKeyPair::from_pkcs8(chain.key().as_der())
            .map_err(|source| KeyError::NotRsa { path: path.into(), source })?;
        Ok(SigningKey { pair })
    }

    /// A fresh 2048-bit key (for `demo` and tests).
    pub fn generate() -> Result<Self, aws_lc_rs::error::Unspecified> {
        RsaKeyPair::generate(KeySize::Rsa2048).map(|pair| SigningKey { pair })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&signature::RSA_PKCS1_SHA256, &aws_lc_rs::rand::SystemRandom::new(), message, &mut sig)
            .expect("RSA signing with a validated key cannot fail");
        sig
    }

    /// The public key as DER `RSAPublicKey` (PKCS#1), what [`super::oauth::verify`] takes.
    pub fn public_key_pkcs1(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// The public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), for the simulator.
    pub fn public_key_pem(&self) -> String {
        let der = self.pair.public_key().as_der().expect("encoding a public key cannot fail");
        pem_encode("PUBLIC KEY", der.as_ref())
    }

    /// The private key as a PEM `PRIVATE KEY` (PKCS#8), for `demo`'s temporary key.
    pub fn private_key_pem(&self) -> String {
        let der = self.pair.as_der().expect("encoding a private key cannot fail");
        pem_encode("PRIVATE KEY", der.as_ref())
    }
}

fn looks_like_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Loads a public key to verify signatures with: a PEM or DER certificate, or a PEM
/// `PUBLIC KEY`. Returns DER `RSAPublicKey` (PKCS#1).
pub fn load_public_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    let bytes = std::fs::read(path).map_err(|source| KeyError::Read { path: path.into(), source })?;
    public_key_from_bytes(&bytes).map_err(|source| KeyError::NoPublicKey { path: path.into(), source })
}

/// As [`load_public_key`], from bytes.
pub fn public_key_from_bytes(bytes: &[u8]) -> Result<Vec<u8>, PublicKeyError> {
    use x509_parser::prelude::FromDer;
    let spki_of_cert = |der: &[u8]| -> Result<Vec<u8>, PublicKeyError> {
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).map_err(PublicKeyError::Der)?;
        Ok(cert.public_key().subject_public_key.data.to_vec())
    };
    if looks_like_pem(bytes) {
        if let Ok(cert) = CertificateDer::from_pem_slice(bytes) {
            return spki_of_cert(&cert);
        }
        let spki = SubjectPublicKeyInfoDer::from_pem_slice(bytes).map_err(PublicKeyError::Pem)?;
        let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki).map_err(PublicKeyError::Der)?;
        Ok(info.subject_public_key.data.to_vec())
    } else {
        spki_of_cert(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cen::oauth::{Signer, verify};
    use std::process::Command;

    /// Signs a request with `key` and verifies it with `public` (PKCS#1 DER).
    fn assert_signs(key: SigningKey, public: &[u8]) {
        let url = "https://api.example.com/n?limit=1";
        let signed = Signer::new("ck", key).sign("GET", url, b"").unwrap();
        verify("GET", url, b"", &signed.authorization, public).expect("signature verifies");
    }

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl is installed");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A key, its PKCS#1 form and a self-signed certificate, made with openssl.
    fn openssl_key(dir: &Path) {
        openssl(dir, &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "key8.pem"]);
        openssl(dir, &["pkey", "-in", "key8.pem", "-traditional", "-out", "key1.pem"]);
        openssl(
            dir,
            &["req", "-x509", "-new", "-key", "key8.pem", "-subj", "/CN=test", "-days", "2", "-out", "cert.pem"],
        );
    }

    #[test]
    fn pem_pkcs8_and_pkcs1_keys_sign_verifiably() {
        let dir = tempfile::tempdir().unwrap();
        openssl_key(dir.path());
        let public = load_public_key(&dir.path().join("cert.pem")).unwrap();
        assert!(std::fs::read_to_string(dir.path().join("key1.pem")).unwrap().contains("BEGIN RSA PRIVATE KEY"));
        for file in ["key8.pem", "key1.pem"] {
            let key = SigningKey::load(&dir.path().join(file), None, None).unwrap();
            assert_eq!(key.public_key_pkcs1(), public, "{file}");
            assert_signs(key, &public);
        }
        // Cross-check with openssl: RSASSA-PKCS1-v1_5 is deterministic, so both must agree.
        std::fs::write(dir.path().join("msg"), b"GET&https%3A%2F%2Fh%2F&a%3D1").unwrap();
        openssl(dir.path(), &["dgst", "-sha256", "-sign", "key8.pem", "-out", "sig", "msg"]);
        let key = SigningKey::load(&dir.path().join("key8.pem"), None, None).unwrap();
        assert_eq!(key.sign(b"GET&https%3A%2F%2Fh%2F&a%3D1"), std::fs::read(dir.path().join("sig")).unwrap());
    }

    #[test]
    fn legacy_pkcs12_keystores_load_by_alias() {
        let dir = tempfile::tempdir().unwrap();
        openssl_key(dir.path());
        // Mastercard's download: 3DES key bag, 40-bit RC2 certificate bag (`-legacy`).
        openssl(
            dir.path(),
            &[
                "pkcs12",
                "-export",
                "-legacy",
                "-inkey",
                "key8.pem",
                "-in",
                "cert.pem",
                "-name",
                "keyalias",
                "-passout",
                "pass:s3cret",
                "-out",
                "legacy.p12",
            ],
        );
        let info = Command::new("openssl")
            .current_dir(dir.path())
            .args(["pkcs12", "-info", "-legacy", "-in", "legacy.p12", "-passin", "pass:s3cret", "-noout"])
            .output()
            .unwrap();
        let info = String::from_utf8_lossy(&info.stderr);
        assert!(info.contains("pbeWithSHA1And40BitRC2-CBC"), "{info}");
        assert!(info.contains("pbeWithSHA1And3-KeyTripleDES-CBC"), "{info}");
        // A modern one too (AES-256-CBC, PBES2).
        openssl(
            dir.path(),
            &[
                "pkcs12",
                "-export",
                "-inkey",
                "key8.pem",
                "-in",
                "cert.pem",
                "-name",
                "keyalias",
                "-passout",
                "pass:s3cret",
                "-out",
                "modern.p12",
            ],
        );
        let public = load_public_key(&dir.path().join("cert.pem")).unwrap();
        for file in ["legacy.p12", "modern.p12"] {
            let path = dir.path().join(file);
            let key = SigningKey::load(&path, Some("s3cret"), Some("keyalias")).unwrap();
            assert_signs(key, &public);
            // One key: the alias may be left out.
            SigningKey::load(&path, Some("s3cret"), None).unwrap();
            let e = SigningKey::load(&path, Some("wrong"), Some("keyalias")).unwrap_err();
            assert!(matches!(e, KeyError::WrongPassword { .. }), "{file}: {e}");
            assert!(e.to_string().contains(file));
            let e = SigningKey::load(&path, Some("s3cret"), Some("other")).unwrap_err();
            assert!(e.to_string().contains("\"keyalias\""), "{e}");
            let e = SigningKey::load(&path, None, None).unwrap_err();
            assert!(matches!(e, KeyError::NeedsPassword { .. }));
        }
    }

    #[test]
    fn unreadable_and_garbage_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.p12");
        let e = SigningKey::load(&missing, Some("x"), None).unwrap_err();
        assert!(e.to_string().contains("nope.p12") && e.to_string().contains("cannot read"), "{e}");
        let garbage = dir.path().join("garbage.p12");
        std::fs::write(&garbage, b"\x30\x03\x02\x01\x05 not a keystore").unwrap();
        let e = SigningKey::load(&garbage, Some("x"), None).unwrap_err();
        assert!(e.to_string().contains("garbage.p12"), "{e}");
        let pem = dir.path().join("bad.pem");
        std::fs::write(&pem, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        assert!(SigningKey::load(&pem, None, None).is_err());
    }

    #[test]
    fn generated_keys_round_trip_through_pem() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_pem(key.private_key_pem().as_bytes()).unwrap();
        assert_eq!(key.public_key_pkcs1(), again.public_key_pkcs1());
        let public = public_key_from_bytes(key.public_key_pem().as_bytes()).unwrap();
        assert_eq!(public, key.public_key_pkcs1());
        assert_signs(again, &public);
    }
}
