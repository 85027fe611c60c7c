//! The push half of `demo`: throwaway certificates for the daemon's mTLS push endpoint, the
//! simulator as its pushing client, and the numbers that show push and pull reconciled.
//!
//! Invariants the summary relies on (and `tests/demo.rs` checks): every stored notification
//! arrived first by push or by pull, so `by push + by pull = stored`; the simulator pushes a
//! notification the moment it is created and the poller sees it only `poll.settle` later, so
//! what arrives first by pull is exactly what the simulator dropped (`recovered = dropped`,
//! once the poller has caught up with the drops).

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

use super::DemoError;
use crate::metrics::ViaLabels;
use crate::simulate::{PushTarget, Simulator};
use crate::store::SOURCE_CEN;

/// Fraction of notifications the simulator never pushes (pull must recover them).
pub const DROP_FRACTION: f64 = 0.1;
/// Fraction of pushed notifications the simulator sends a second time.
pub const DUPLICATE_FRACTION: f64 = 0.05;

/// The subject CN of the simulator's client certificate (the daemon allows only this name,
/// as it would allow only Mastercard's).
const CLIENT_NAME: &str = "demo-push-client";

/// Certificates made for one demo run: a CA, the endpoint's server certificate and the
/// simulator's client certificate, all issued by that CA.
pub struct DemoPki {
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

impl DemoPki {
    /// Makes the certificates and writes the daemon's files (`push-ca.pem`,
    /// `push-server.pem`, `push-server-key.pem`) into `dir`.
    pub fn create(dir: &Path) -> Result<DemoPki, DemoError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "cen-poller demo CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca_pem = ca_cert.pem();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>, cn: &str, purpose| -> Result<(String, String), rcgen::Error> {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(names)?;
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![purpose];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
            let cert = params.signed_by(&key, &issuer)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let (server_pem, server_key) =
            leaf(vec!["localhost".into(), "127.0.0.1".into()], "localhost", ExtendedKeyUsagePurpose::ServerAuth)?;
        let (client_cert_pem, client_key_pem) = leaf(vec![], CLIENT_NAME, ExtendedKeyUsagePurpose::ClientAuth)?;
        for (name, text) in
            [("push-ca.pem", &ca_pem), ("push-server.pem", &server_pem), ("push-server-key.pem", &server_key)]
        {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(DemoError::write(&path))?;
        }
        Ok(DemoPki { ca_pem, client_cert_pem, client_key_pem })
    }

    /// The daemon's `[push]` section (paths relative to the configuration file).
    pub fn config_section() -> String {
        format!(
            r#"
[push]
listen = "127.0.0.1:0"
path = "/notifications"
cert = "push-server.pem"
key = "push-server-key.pem"
client_ca = "push-ca.pem"
allowed_client_names = ["{CLIENT_NAME}"]
"#
        )
    }

    /// The simulator's push target: the endpoint at `url`, with this run's client
    /// certificate, dropping and duplicating as the demo shows.
    pub fn target(&self, url: String) -> PushTarget {
        PushTarget {
            client_cert_pem: Some(self.client_cert_pem.clone()),
            client_key_pem: Some(self.client_key_pem.clone()),
            ca_pem: Some(self.ca_pem.clone()),
            drop_fraction: DROP_FRACTION,
            duplicate_fraction: DUPLICATE_FRACTION,
            ..PushTarget::new(url)
        }
    }
}

/// Push and pull, side by side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushPull {
    /// Stored notifications, and how many arrived first by each path (state database).
    pub stored: u64,
    pub by_push: u64,
    pub by_pull: u64,
    /// Found by the audit (SPEC 12) after the sliding window missed it.
    pub by_audit: u64,
    /// Arrived first by pull while push is configured: push missed them.
    pub recovered_by_pull: u64,
    /// What the simulator did: never pushed, and pushed a second time.
    pub dropped_by_simulator: u64,
    pub sent_twice_by_simulator: u64,
    /// Arrivals the daemon recognised as already stored and did not deliver again: pushes
    /// sent twice, and pulled copies of what push had delivered.
    pub duplicates_push: u64,
    pub duplicates_pull: u64,
}

impl PushPull {
    pub fn collect(status: &crate::status::StatusReport, running: &crate::service::Running, sim: &Simulator) -> Self {
        let counts = &status.last_24h;
        let stats = sim.stats();
        let duplicates = |via: &str| {
            running
                .store
                .metrics()
                .duplicates
                .get_or_create(&ViaLabels { source: SOURCE_CEN.into(), via: via.into() })
                .get()
        };
        PushPull {
            stored: counts.total,
            by_push: counts.by_path.get("push").copied().unwrap_or(0),
            by_pull: counts.by_path.get("pull").copied().unwrap_or(0),
            by_audit: counts.by_path.get("audit").copied().unwrap_or(0),
            recovered_by_pull: counts.recovered_by_pull,
            dropped_by_simulator: stats.push_dropped,
            sent_twice_by_simulator: stats.push_duplicated,
            duplicates_push: duplicates("push"),
            duplicates_pull: duplicates("pull"),
        }
    }

    /// The summary's push-and-pull lines.
    pub fn render(&self) -> String {
        format!(
            "by push {}   by pull {}   by audit {}   = stored {}\n\
             recovered by pull or audit {}   (of the {} pushes the simulator dropped; pull finds each a poll cycle later)\n\
             duplicates dropped {}   (push sent twice {} of {}; pulled copies of pushed ones {})\n",
            self.by_push,
            self.by_pull,
            self.by_audit,
            self.stored,
            self.recovered_by_pull,
            self.dropped_by_simulator,
            self.duplicates_push + self.duplicates_pull,
            self.duplicates_push,
            self.sent_twice_by_simulator,
            self.duplicates_pull,
        )
    }
}
