//! Shared harness of the integration tests: a simulator on `127.0.0.1:0` that verifies
//! OAuth signatures with a freshly generated key, and a configuration in a temp dir that
//! points the daemon's pieces at it.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use cen_poller::cen::keys::SigningKey;
use cen_poller::config::Config;
use cen_poller::poll::{PollSettings, Poller};
use cen_poller::service;
use cen_poller::simulate::{self, SimConfig, Simulator};
use cen_poller::sinks::dispatcher::{DeliverySettings, Dispatcher, SinkCounters, owner_id};
use cen_poller::store::StoreHandle;
use tokio_util::sync::CancellationToken;

pub const CONSUMER_KEY: &str = "test-consumer-key";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub sim: Simulator,
    pub base_url: String,
    pub config_path: PathBuf,
}

impl Env {
    /// Starts a simulator for `sim` (its OAuth check switched on) and writes a config whose
    /// `[poll]` section is `poll` (TOML lines) with a file sink `archive`.
    pub async fn start(mut sim: SimConfig, poll: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().unwrap();
        std::fs::write(dir.path().join("key.pem"), key.private_key_pem()).unwrap();
        sim.public_key = Some(key.public_key_pkcs1());
        sim.consumer_key = Some(CONSUMER_KEY.into());
        let (sim, addr, _) = simulate::start(sim).await;
        let base_url = format!("http://{addr}/commercial-event-notifications");
        let config_path = dir.path().join("config.toml");
        std::fs::write(
            &config_path,
            format!(
                r#"[api]
base_url = "{base_url}"
consumer_key = "{CONSUMER_KEY}"
signing_key = "key.pem"
timeout = "10s"

[poll]
{poll}

[state]
path = "state.db"

[admin]
listen = "127.0.0.1:0"

[[sinks]]
name = "archive"
type = "file"
path = "notifications.jsonl"
"#
            ),
        )
        .unwrap();
        Env { dir, sim, base_url, config_path }
    }

    pub fn config(&self) -> Config {
        Config::load(&self.config_path).unwrap()
    }

    pub fn store(&self) -> StoreHandle {
        service::open_store(&self.config()).unwrap()
    }

    pub fn poller(&self, store: &StoreHandle) -> Poller {
        let config = self.config();
        let mut settings = PollSettings::from_config(&config);
        // Faults in these tests are bursts of a few; short backoff keeps the tests quick.
        settings.retry.initial = Duration::from_millis(5);
        settings.retry.max = Duration::from_millis(50);
        Poller::new(service::client(&config).unwrap(), store.clone(), settings)
    }

    /// Delivers everything queued for the file sink, in-process.
    pub async fn deliver_all(&self, store: &StoreHandle) -> u64 {
        let config = self.config();
        let sinks = cen_poller::sinks::build(&config).unwrap();
        let dispatcher = Dispatcher {
            store: store.clone(),
            sink: sinks[0].clone(),
            owner: owner_id(),
            settings: DeliverySettings::from(&config.delivery),
            counters: Default::default(),
        };
        let counters: &SinkCounters = &dispatcher.counters;
        while dispatcher.deliver_once().await.unwrap() > 0 {}
        counters.delivered.get()
    }

    pub fn sink_path(&self) -> PathBuf {
        self.dir.path().join("notifications.jsonl")
    }

    /// The ids in the file sink, with how often each appears.
    pub fn sink_ids(&self) -> BTreeMap<String, usize> {
        let mut ids = BTreeMap::new();
        let Ok(text) = std::fs::read_to_string(self.sink_path()) else {
            return ids;
        };
        for line in text.lines() {
            // A torn last line (a kill mid-write) is not a delivery.
            let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            *ids.entry(record["id"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        ids
    }
}

/// Asserts that the sink holds exactly `expected`, each once.
pub fn assert_exactly_once(sink: &BTreeMap<String, usize>, expected: &[String]) {
    let twice: Vec<_> = sink.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let missing: Vec<_> = expected.iter().filter(|id| !sink.contains_key(*id)).collect();
    assert!(missing.is_empty(), "{} of {} never delivered", missing.len(), expected.len());
    assert_eq!(sink.len(), expected.len(), "the sink holds notifications that should not be there");
}

pub fn token() -> CancellationToken {
    CancellationToken::new()
}
