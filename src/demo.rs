//! `cen-poller demo`: the simulator (with one subscription per subject, listed first as
//! `subscriptions list` shows them), the daemon and a file sink in a temporary directory,
//! with a live summary — the README's first command, and a quick way to see the whole
//! pipeline work on a fresh machine without Mastercard credentials.
//!
//! The simulator serves the CEN API and also pushes each new notification to the daemon's
//! mTLS push endpoint (certificates made on the fly), dropping some and sending some twice;
//! the summary shows what came by push, what pull recovered, and the duplicates dropped
//! (`push.rs`).

mod error;
mod push;
pub use error::DemoError;
pub use push::PushPull;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use crate::cen::keys::SigningKey;
use crate::cen::notification::format_timestamp;
use crate::config::Config;
use crate::output::write_stdout;
use crate::simulate::{self, SimConfig, Simulator};

/// `demo` options.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Stop after this long (default: run until Ctrl-C).
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub duration: Option<Duration>,
    /// Notifications the simulator creates per second.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Keep the state and the sink here instead of a new temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Fraction of the simulator's answers that are errors (5xx, 429, truncated bodies),
    /// to show that they cost nothing but retries.
    #[arg(long, default_value_t = 0.05)]
    pub faults: f64,
}

/// A running demo: the simulator (API and pusher), the daemon, and the file sink in `dir`.
pub struct Demo {
    pub dir: PathBuf,
    pub config_path: PathBuf,
    pub sink_path: PathBuf,
    pub config: Config,
    pub sim: Simulator,
    /// Where the simulator serves the CEN API.
    pub sim_addr: std::net::SocketAddr,
    pub running: crate::service::Running,
}

/// Starts the simulator for `sim` (its OAuth check on, its push target set to the daemon's
/// push endpoint) and the daemon, both in `dir`, until `shutdown`.
pub async fn start(dir: &Path, mut sim: SimConfig, shutdown: CancellationToken) -> Result<Demo, DemoError> {
    // A throwaway signing key: the simulator verifies every request's OAuth signature with
    // its public half, exactly as Mastercard's gateway would.
    let key = SigningKey::generate().map_err(DemoError::Key)?;
    let key_path = dir.join("demo-signing-key.pem");
    std::fs::write(&key_path, key.private_key_pem()).map_err(DemoError::write(&key_path))?;
    sim.public_key = Some(key.public_key_pkcs1());
    sim.consumer_key = Some("demo-consumer-key".into());
    // The simulator needs the push endpoint's address and the daemon the API's: bind the
    // API's port first, start the daemon, then serve the API (and push) on that port.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.map_err(DemoError::Bind)?;
    let addr = listener.local_addr().map_err(DemoError::LocalAddr)?;
    let pki = push::DemoPki::create(dir)?;

    let sink_path = dir.join("notifications.jsonl");
    let config_path = dir.join("config.toml");
    let config_text = format!(
        r#"# Written by `cen-poller demo`.
[api]
base_url = "http://{addr}/commercial-event-notifications"
consumer_key = "demo-consumer-key"
signing_key = "demo-signing-key.pem"

[poll]
interval = "5s"
lookback = "15m"
settle = "2s"
first_start = "{first}"

[state]
path = "state.db"

[admin]
listen = "127.0.0.1:0"

# An audit every minute over the last hour: it recovers the notifications the demo makes
# visible later than the lookback, which the sliding window cannot see.
[audit]
schedule = "0 * * * * *"
range = "1h"

[log]
level = "warn"

[[sinks]]
name = "archive"
type = "file"
path = "notifications.jsonl"
{push}"#,
        first = format_timestamp(Utc::now() - TimeDelta::minutes(31)),
        push = push::DemoPki::config_section(),
    );
    std::fs::write(&config_path, config_text).map_err(DemoError::write(&config_path))?;
    let config = Config::load(&config_path)?;

    let running = crate::service::start(&config, shutdown.clone()).await?;
    let push_addr = running.push.as_ref().map(|p| p.addr).ok_or(DemoError::NoPush)?;
    sim.push = Some(pki.target(format!("https://{push_addr}/notifications")));
    let sim = Simulator::try_new(sim)?;
    {
        let sim = sim.clone();
        tokio::spawn(async move { sim.serve(listener, shutdown).await });
    }
    Ok(Demo { dir: dir.to_owned(), config_path, sink_path, config, sim, sim_addr: addr, running })
}

impl Demo {
    /// Push and pull side by side, from the state database and the daemon's counters.
    pub async fn push_pull(&self) -> Result<PushPull, DemoError> {
        let status = crate::status::collect(&self.config).await?;
        Ok(PushPull::collect(&status, &self.running, &self.sim))
    }
}

/// Runs the demo until Ctrl-C or `--duration`.
pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|source| DemoError::CreateDir { path: d.clone(), source })?;
            d.clone()
        }
        None => tempfile::Builder::new().prefix("cen-poller-demo-").tempdir().map_err(DemoError::TempDir)?.keep(),
    };
    // No history: every notification is created while the daemon runs, so push has the
    // chance to deliver each, and what pull recovers is exactly what push dropped.
    let mut sim = SimConfig::live(7, args.rate, Duration::ZERO);
    sim.late_fraction = 0.05;
    sim.late_by = Duration::from_secs(120);
    let f = args.faults.clamp(0.0, 1.0);
    sim.faults.error_rate = f / 2.0;
    sim.faults.rate_limit_rate = f / 4.0;
    sim.faults.truncate_rate = f / 4.0;

    let shutdown = CancellationToken::new();
    let demo = start(&dir, sim, shutdown.clone()).await?;
    let Demo { config_path, sink_path, config, sim, sim_addr: addr, running, .. } = demo;

    let intro = format!(
        "cen-poller demo: simulator on http://{addr}, state and sink in {}\n\
         ({} new notifications/s, {:.0}% of API answers are faults; Ctrl-C stops)\n\
         it also pushes each new notification to https://{} over mTLS, and drops {:.0}% of them\n\n",
        dir.display(),
        args.rate,
        f * 100.0,
        running.push.as_ref().map(|p| p.addr.to_string()).unwrap_or_default(),
        push::DROP_FRACTION * 100.0,
    );
    let mut shown = write_stdout(&intro);
    // What a new user sees first with real credentials too: Mastercard generates
    // notifications only for subscriptions, and the simulator starts with one per subject.
    if matches!(shown, Ok(true)) {
        let subscriptions = config.api_client()?.list_subscriptions().await.map_err(DemoError::Subscriptions)?;
        shown = write_stdout(&format!(
            "subscriptions (cen-poller --config {} subscriptions list):\n{}\n",
            config_path.display(),
            crate::subscriptions::render::table(&subscriptions)
        ));
    }
    let signals = tokio::spawn(crate::service::handle_signals(shutdown.clone(), || {}));
    if let Some(d) = args.duration {
        let s = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            s.cancel();
        });
    }
    let late = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    tokio::spawn(make_late_ones(sim.clone(), late.clone(), shutdown.clone()));
    let tty = std::io::stdout().is_terminal();
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    let mut lines_shown = 0;
    // A reader that went away (or a write error) ends the demo like Ctrl-C: the daemon
    // still shuts down in order.
    if matches!(shown, Ok(true)) {
        shown = write_stdout(&format!("metrics and health: http://{}/metrics, /readyz\n\n", running.admin_addr));
    }
    while matches!(shown, Ok(true)) {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let mut text = summary(&config, &running, &sim).await?;
        text.push_str(&audit_summary(&config, late.load(std::sync::atomic::Ordering::Relaxed)).await?);
        let mut frame = String::new();
        if tty && lines_shown > 0 {
            // Redraw in place.
            frame.push_str(&format!("\x1b[{lines_shown}A\x1b[J"));
        }
        lines_shown = text.lines().count();
        frame.push_str(&text);
        if !tty {
            frame.push('\n');
        }
        shown = write_stdout(&frame);
    }
    shutdown.cancel();
    signals.abort();
    sim.stop();
    running.join(crate::service::SHUTDOWN_DEADLINE).await;
    if shown? {
        write_stdout(&format!(
            "\nstopped. Every notification is one line of {}\ntry:  cen-poller --config {} status\n",
            sink_path.display(),
            config_path.display()
        ))?;
    }
    Ok(())
}

async fn summary(
    config: &Config,
    running: &crate::service::Running,
    sim: &simulate::Simulator,
) -> Result<String, DemoError> {
    let status = crate::status::collect(config).await?;
    let push_pull = PushPull::collect(&status, running, sim);
    let health = running.poller.health.lock().expect("health lock").clone();
    let stats = sim.stats();
    let delivered: u64 = running.sinks().iter().map(|s| s.counters.delivered.get()).sum();
    let mut out = String::new();
    out.push_str(&format!(
        "watermark {}   lag {}s   cycles ok {} / failed {}\n",
        status.watermark.as_deref().unwrap_or("-"),
        status.lag_seconds.unwrap_or(0),
        health.cycles_ok,
        health.cycles_failed
    ));
    out.push_str(&push_pull.render());
    out.push_str(&format!(
        "delivered to the file sink {}   backlog {}\n",
        delivered,
        status.backlog.values().sum::<u64>(),
    ));
    out.push_str(&format!("API: {} requests, {} faults injected and retried\n", stats.requests, stats.faults_injected));
    for (subject, n) in &status.last_24h.by_subject {
        out.push_str(&format!("  {subject:<28} {n:>7}\n"));
    }
    Ok(out)
}

/// Every 20 seconds, a notification created 20 minutes ago becomes visible: later than the
/// 15-minute lookback, so only the audit can recover it. `made` counts them.
async fn make_late_ones(
    sim: simulate::Simulator,
    made: std::sync::Arc<std::sync::atomic::AtomicU64>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(20));
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let n = made.load(std::sync::atomic::Ordering::Relaxed) + 1;
        let now = sim.now();
        let notification = serde_json::json!({
            "subject": "CLEARING",
            "subscriptionName": "sim-clearing",
            "createdTimestamp": format_timestamp(now - TimeDelta::minutes(20)),
            "content": {"demo": format!("visible 20 minutes late #{n}")},
        });
        if sim.insert(notification, now).is_ok() {
            made.store(n, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The audit's line of the summary: what was made late, what the audit recovered.
async fn audit_summary(config: &Config, late: u64) -> Result<String, DemoError> {
    let status = crate::status::collect(config).await?;
    let recovered = status.last_24h.by_path.get("audit").copied().unwrap_or(0);
    let last = match &status.last_audit {
        Some(a) => format!("last audit {}: {}, {} requests", a.finished_at, a.outcome, a.requests),
        None => "first audit at the next full minute".into(),
    };
    Ok(format!(
        "audit every minute: {late} made visible later than the lookback, {recovered} recovered by audit ({last})\n"
    ))
}
