//! Running the daemon: wiring sources, store, dispatchers and sinks together, signals,
//! and an orderly shutdown.
//!
//! Shutdown: SIGTERM (systemd's stop) and the first SIGINT cancel one token; every task
//! finishes the step it is in — a page being committed is committed, a batch being
//! delivered is acknowledged — and stops. A second SIGINT exits at once (an operator at a
//! terminal who does not want to wait); SQLite's WAL makes even that safe (G4).
//! SIGHUP reopens the file sinks (logrotate).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cen::client::{Client, ClientOptions};
use crate::config::Config;
use crate::poll::{PollSettings, Poller, Scanner};
use crate::sinks::dispatcher::{ActiveSink, DeliverySettings, Dispatcher, owner_id, release_dead_owners};
use crate::sinks::{self, Sink};
use crate::store::{Route, StoreHandle};

/// How long shutdown waits for tasks to finish their current step.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

/// The routing table of a configuration: which sink takes which subjects.
pub fn routes(config: &Config) -> Vec<Route> {
    config.sinks.iter().map(|s| Route { sink: s.name().to_owned(), subjects: s.subjects().to_vec() }).collect()
}

/// Opens the state database named by the configuration.
pub fn open_store(config: &Config) -> Result<StoreHandle, String> {
    StoreHandle::open(&config.resolve(&config.state.path), routes(config)).map_err(|e| e.to_string())
}

/// Builds the API client from the configuration (loads the signing key).
pub fn client(config: &Config) -> Result<Client, String> {
    let secrets = config.load_secrets().map_err(|e| e.to_string())?;
    let extra_ca_pem = match &config.api.ca_file {
        Some(f) => {
            let path = config.resolve(f);
            Some(std::fs::read(&path).map_err(|e| format!("api.ca_file: cannot read {}: {e}", path.display()))?)
        }
        None => None,
    };
    Client::new(
        Arc::new(secrets.signer),
        ClientOptions {
            base_url: config.api.base_url.clone(),
            timeout: config.api.timeout.0,
            extra_ca_pem,
            subscriptions: config.api.subscriptions.clone(),
            push_status: config.api.push_status.clone(),
        },
    )
    .map_err(|e| e.to_string())
}

/// The running pieces of a daemon, for `demo` and tests to look at.
pub struct Running {
    pub store: StoreHandle,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub admin_addr: std::net::SocketAddr,
    pub poller: Arc<Poller>,
    pub sinks: Vec<ActiveSink>,
    tasks: JoinSet<()>,
}

impl Running {
    /// Waits for every task to stop (after the shutdown token fired), at most `deadline`.
    pub async fn join(mut self, deadline: Duration) {
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!("tasks still busy after {deadline:?}; exiting anyway (the next start resumes)");
        }
    }

    /// SIGHUP: reopen the sinks' files and connections.
    pub fn reopen_sinks(&self) {
        for s in &self.sinks {
            s.sink.reopen();
        }
    }
}

/// Starts the poller, the dispatchers and the maintenance task of `config`.
pub async fn start(config: &Config, shutdown: CancellationToken) -> Result<Running, String> {
    let client = client(config)?;
    let store = open_store(config)?;
    release_dead_owners(&store).await.map_err(|e| e.to_string())?;
    let mut tasks = JoinSet::new();
    let sinks = start_dispatchers(config, &store, &shutdown, &mut tasks)?;
    let poller = Arc::new(Poller::new(client, store.clone(), PollSettings::from_config(config)));
    {
        let poller = poller.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move { poller.run(shutdown).await });
    }
    tasks.spawn(prune_loop(store.clone(), config.state.keep.delta(), shutdown.clone()));
    let (admin_addr, admin) = crate::admin::start(
        config.admin.listen,
        store.clone(),
        poller.health.clone(),
        config.poll.interval.0,
        shutdown.clone(),
    )
    .await?;
    tasks.spawn(async move {
        let _ = admin.await;
    });
    Ok(Running { store, admin_addr, poller, sinks, tasks })
}

/// One dispatcher task per configured sink.
pub fn start_dispatchers(
    config: &Config,
    store: &StoreHandle,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<Vec<ActiveSink>, String> {
    let owner = owner_id();
    let settings = DeliverySettings::from(&config.delivery);
    let mut out = Vec::new();
    for sink in sinks::build(config)? {
        let counters = Arc::new(store.metrics().sink(sink.name()));
        let dispatcher = Dispatcher {
            store: store.clone(),
            sink: sink.clone(),
            owner: owner.clone(),
            settings: settings.clone(),
            counters: counters.clone(),
        };
        tasks.spawn(dispatcher.run(shutdown.clone()));
        out.push(ActiveSink { sink, counters });
    }
    Ok(out)
}

/// Forgets notifications older than `state.keep` once an hour (and once at start).
async fn prune_loop(store: StoreHandle, keep: chrono::TimeDelta, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let before = (Utc::now() - keep).timestamp_millis();
        match store.call(move |s| s.prune(before)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "forgot notifications older than state.keep"),
            Err(e) => {
                tracing::warn!(error = %e, "pruning the state database failed; will retry in an hour")
            }
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run_daemon(config: Config) -> Result<(), String> {
    let shutdown = CancellationToken::new();
    let running = start(&config, shutdown.clone()).await?;
    tracing::info!(
        api = %config.api.base_url,
        sinks = config.sinks.len(),
        state = %config.resolve(&config.state.path).display(),
        "cen-poller running"
    );
    let reopen = {
        let sinks: Vec<Arc<dyn Sink>> = running.sinks.iter().map(|s| s.sink.clone()).collect();
        move || sinks.iter().for_each(|s| s.reopen())
    };
    handle_signals(shutdown.clone(), reopen).await;
    running.join(SHUTDOWN_DEADLINE).await;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT and cancels `shutdown`; SIGHUP calls `on_hup`. A second
/// SIGINT exits the process at once.
pub async fn handle_signals(shutdown: CancellationToken, on_hup: impl Fn() + Send + 'static) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()))
    else {
        tracing::error!("cannot install signal handlers; stop the process with SIGKILL");
        return shutdown.cancelled().await;
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = term.recv() => {
                tracing::info!("SIGTERM: finishing the current step, then stopping");
                shutdown.cancel();
                break;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: finishing the current step, then stopping (interrupt again to exit at once)");
                shutdown.cancel();
                tokio::spawn(async move {
                    if int.recv().await.is_some() {
                        tracing::warn!("second SIGINT: exiting now");
                        std::process::exit(130);
                    }
                });
                break;
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reopening sink files");
                on_hup();
            }
        }
    }
}

/// The scanner of a one-shot command (backfill) with the daemon's settings.
pub fn scanner(config: &Config, store: StoreHandle) -> Result<Scanner, String> {
    let poller = Poller::new(client(config)?, store, PollSettings::from_config(config));
    Ok(poller.scanner)
}

/// `--backfill`: reads `range` as `backfill`, delivering as it goes, then waits for the
/// sinks to take what it queued.
pub async fn run_backfill(
    config: &Config,
    range: crate::poll::range::Range,
) -> Result<crate::poll::backfill::BackfillReport, String> {
    let store = open_store(config)?;
    release_dead_owners(&store).await.map_err(|e| e.to_string())?;
    let scanner = scanner(config, store.clone())?;
    let interrupt = CancellationToken::new();
    let signals = tokio::spawn(handle_signals(interrupt.clone(), || {}));
    // The dispatchers stop on their own token: after an interrupt they still deliver what
    // the interrupted scan committed, until the drain below gives up.
    let stop_dispatch = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let sinks = start_dispatchers(config, &store, &stop_dispatch, &mut tasks)?;
    let report = crate::poll::backfill::backfill(&scanner, range, config.poll.max_window.delta(), &interrupt).await;
    drain(&store, &sinks, &interrupt).await;
    stop_dispatch.cancel();
    signals.abort();
    while tasks.join_next().await.is_some() {}
    Ok(report)
}

/// Waits until the outbox is empty for every configured sink, or nothing has been
/// delivered for 30 seconds (a sink is down: what is left stays queued for the daemon).
async fn drain(store: &StoreHandle, sinks: &[ActiveSink], interrupt: &CancellationToken) {
    let names: Vec<&str> = sinks.iter().map(|s| s.sink.name()).collect();
    let delivered = || sinks.iter().map(|s| s.counters.delivered.get()).sum::<u64>();
    let mut last = (delivered(), std::time::Instant::now());
    loop {
        let backlog: u64 = match store.backlog().await {
            Ok(b) => b.iter().filter(|(s, _)| names.contains(&s.as_str())).map(|(_, n)| n).sum(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the outbox backlog");
                return;
            }
        };
        if backlog == 0 {
            return;
        }
        let now_delivered = delivered();
        if now_delivered != last.0 {
            last = (now_delivered, std::time::Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(30) || interrupt.is_cancelled() {
            tracing::warn!(
                backlog,
                "sinks are not taking notifications; they stay queued and the daemon delivers them"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
