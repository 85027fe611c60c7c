//! Shared harness of the integration tests: a simulator on `127.0.0.1:0` that verifies
//! OAuth signatures with a freshly generated key, and a configuration in a temp dir that
//! points the daemon's pieces at it.

#![allow(dead_code)]

pub mod pki;

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

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
    pub async fn start(sim: SimConfig, poll: &str) -> Env {
        Self::start_with(sim, poll, "").await
    }

    /// As [`Env::start`], with `extra` TOML appended to the configuration.
    pub async fn start_with(mut sim: SimConfig, poll: &str, extra: &str) -> Env {
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

{extra}
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
        let config = self.config();
        StoreHandle::open(&config.resolve(&config.state.path), service::routes(&config)).unwrap()
    }

    pub fn poller(&self, store: &StoreHandle) -> Poller {
        let config = self.config();
        let mut settings = PollSettings::from_config(&config);
        // Faults in these tests are bursts of a few; short backoff keeps the tests quick.
        settings.retry.initial = Duration::from_millis(5);
        settings.retry.max = Duration::from_millis(50);
        Poller::new(config.api_client().unwrap(), store.clone(), settings)
    }

    /// Delivers everything queued for the file sink, in-process.
    pub async fn deliver_all(&self, store: &StoreHandle) -> u64 {
        let config = self.config();
        let sinks = cen_poller::sinks::build(&config.sinks, &config).unwrap();
        let dispatcher = Dispatcher {
            store: store.clone(),
            sink: sinks[0].clone(),
            owner: owner_id(),
            settings: DeliverySettings::from(&config.delivery),
            counters: Default::default(),
            heartbeat: Default::default(),
        };
        let counters: &SinkCounters = &dispatcher.counters;
        while dispatcher.deliver_once().await.unwrap() > 0 {}
        counters.delivered.get()
    }

    pub fn sink_path(&self) -> PathBuf {
        self.dir.path().join("notifications.jsonl")
    }

    /// A reader of the file sink that reads only what was appended since its last look.
    pub fn sink_tail(&self) -> SinkTail {
        SinkTail::new(self.sink_path())
    }

    /// The `cen-poller` binary with `--config <this env's config>`, run in the env's
    /// directory, with no inherited `CEN_POLLER_CONFIG`/`RUST_LOG`, killed if the test drops
    /// it (a failing test leaves no daemon behind).
    pub fn command(&self) -> tokio::process::Command {
        self.command_with(&self.config_path)
    }

    /// [`Env::command`] with another configuration file.
    pub fn command_with(&self, config: &Path) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_cen-poller"));
        c.arg("--config")
            .arg(config)
            .env_remove("CEN_POLLER_CONFIG")
            .env_remove("RUST_LOG")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    /// Runs the binary with `args` after `--config …` and waits for it (without blocking
    /// the runtime the simulator answers on).
    pub async fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().await.unwrap()
    }

    /// Where the daemons started by [`Env::spawn_daemon`] write their logs (appended).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// The last `n` lines the daemons logged (for failure messages).
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Starts the daemon (`cen-poller --config C`, no subcommand), its standard error
    /// appended to [`Env::log_path`].
    pub fn spawn_daemon(&self) -> Daemon {
        self.spawn_daemon_with(&self.config_path)
    }

    /// [`Env::spawn_daemon`] with another configuration file.
    pub fn spawn_daemon_with(&self, config: &Path) -> Daemon {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let child = self.command_with(config).stdout(Stdio::null()).stderr(Stdio::from(log)).spawn().unwrap();
        Daemon { pid: child.id().expect("a just-started child has a pid"), child, started: Instant::now() }
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

/// A running `cen-poller` process.
pub struct Daemon {
    pub child: tokio::process::Child,
    pub pid: u32,
    pub started: Instant,
}

impl Daemon {
    /// Sends `signal` (`TERM`, `INT`, `HUP`, `KILL`) with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .expect("kill(1) is installed");
        assert!(status.success(), "kill -{signal} {} failed", self.pid);
    }

    /// Whether the process catches `signal` (a number) yet, from `/proc/PID/status`.
    pub fn catches(&self, signal: u32) -> bool {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", self.pid)) else {
            return false;
        };
        status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .is_some_and(|mask| mask & (1 << (signal - 1)) != 0)
    }

    /// Whether it has exited (reaping it if so).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGKILL, and reap it: a zombie would still look alive to the next process, which
    /// checks whether the owner of an outbox lease is running.
    pub async fn kill9(mut self) -> ExitStatus {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap()
    }

    /// Sends `signal` and waits at most `deadline` for the exit; returns the status and how
    /// long the exit took. Panics if it does not exit in time.
    pub async fn stop(mut self, signal: &str, deadline: Duration) -> (ExitStatus, Duration) {
        let sent = Instant::now();
        self.signal(signal);
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(status) => (status.unwrap(), sent.elapsed()),
            Err(_) => panic!("SIG{signal} did not stop the daemon within {deadline:?}"),
        }
    }
}

/// Polls `check` every 100 ms until it returns true; false if `deadline` passes first.
pub async fn wait_for(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + deadline;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Only the member a test needs from a record; parsing still checks the whole line is JSON.
#[derive(serde::Deserialize)]
struct RecordId {
    id: String,
}

/// An incremental reader of a JSON Lines file sink: each [`SinkTail::poll`] reads only what
/// was appended since the previous one, so watching a 40 MB file every 100 ms stays cheap.
/// A line is counted once its newline is there; a line that is not a complete JSON record
/// (a write torn by a kill) is counted in `bad_lines`, not as a delivery.
pub struct SinkTail {
    path: PathBuf,
    offset: u64,
    pending: Vec<u8>,
    pub ids: BTreeMap<String, usize>,
    pub lines: usize,
    pub bad_lines: usize,
}

impl SinkTail {
    pub fn new(path: impl AsRef<Path>) -> SinkTail {
        SinkTail {
            path: path.as_ref().to_owned(),
            offset: 0,
            pending: Vec::new(),
            ids: BTreeMap::new(),
            lines: 0,
            bad_lines: 0,
        }
    }

    /// Reads what was appended since the last call.
    pub fn poll(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return;
        };
        file.seek(SeekFrom::Start(self.offset)).unwrap();
        let mut buf = Vec::new();
        file.read_to_end(&mut buf).unwrap();
        self.offset += buf.len() as u64;
        self.pending.extend_from_slice(&buf);
        let Some(last) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = self.pending.drain(..=last).collect();
        for line in complete.split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            self.lines += 1;
            match serde_json::from_slice::<RecordId>(line) {
                Ok(r) => *self.ids.entry(r.id).or_default() += 1,
                Err(_) => self.bad_lines += 1,
            }
        }
    }

    /// Lines beyond the first for each id.
    pub fn duplicates(&self) -> usize {
        self.ids.values().map(|n| n - 1).sum()
    }

    /// How many of `expected` are in the file.
    pub fn count_of(&self, expected: &[String]) -> usize {
        expected.iter().filter(|id| self.ids.contains_key(*id)).count()
    }
}
