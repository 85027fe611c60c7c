//! Test certificates made with rcgen: certificate authorities, server and client leaves.

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// A certificate authority that can sign leaves.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).unwrap();
        Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    fn leaf(&self, cn: &str, dns: &[&str], purpose: ExtendedKeyUsagePurpose) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![purpose];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> Leaf {
        self.leaf("localhost", &["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with subject CN `cn` and the DNS SANs `dns`.
    pub fn client(&self, cn: &str, dns: &[&str]) -> Leaf {
        self.leaf(cn, dns, ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// The client name the push endpoints of [`PushPki`] allow.
pub const ALLOWED: &str = "mastercard-push.example";

/// The certificates of a push endpoint's tests: the server's CA, the CA client
/// certificates chain to, and a CA nobody trusts.
pub struct PushPki {
    pub server_ca: Ca,
    pub client_ca: Ca,
    pub other_ca: Ca,
}

impl PushPki {
    pub fn new() -> PushPki {
        PushPki {
            server_ca: Ca::new("Test server CA"),
            client_ca: Ca::new("Test client CA"),
            other_ca: Ca::new("Other CA"),
        }
    }

    /// Writes the server's certificate, key and client CA into `dir`; returns the `[push]`
    /// section.
    pub fn push_section(&self, dir: &std::path::Path, extra: &str) -> String {
        let server = self.server_ca.server();
        std::fs::write(dir.join("server.pem"), &server.cert_pem).unwrap();
        std::fs::write(dir.join("server-key.pem"), &server.key_pem).unwrap();
        std::fs::write(dir.join("client-ca.pem"), &self.client_ca.pem).unwrap();
        format!(
            "[push]\nlisten = \"127.0.0.1:0\"\ncert = \"server.pem\"\nkey = \"server-key.pem\"\nclient_ca = \"client-ca.pem\"\nallowed_client_names = [\"{ALLOWED}\", \"*.push.example\"]\nmax_body = \"64KiB\"\n{extra}"
        )
    }

    pub fn client(&self, identity: Option<&Leaf>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.server_ca.pem.as_bytes()).unwrap()])
            .timeout(Duration::from_secs(20));
        if let Some(leaf) = identity {
            let pem = format!("{}{}", leaf.cert_pem, leaf.key_pem);
            b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    }
}
