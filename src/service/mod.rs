//! Running the daemon: wiring sources, store, dispatchers and sinks together, signals,
//! and an orderly shutdown.
//!
//! Shutdown: SIGTERM (systemd's stop) and the first SIGINT cancel one token; every task
//! finishes the step it is in — a page being committed is committed, a batch being
//! delivered is acknowledged — and stops. A second SIGINT exits at once (an operator at a
//! terminal who does not want to wait); SQLite's WAL makes even that safe (G4).
//! SIGHUP re-reads the configuration: sinks added, removed or changed take effect (see
//! [`Running::reload`]), the push endpoint reloads its certificates, and the file sinks
//! reopen their files (logrotate).

pub mod subscriptions;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::StateBackend;
use crate::config::{Config, SinkConfig};
use crate::poll::{PollSettings, Poller, Scanner};
use crate::sinks;
use crate::sinks::dispatcher::{ActiveSink, DeliverySettings, Dispatcher, owner_id, release_dead_owners};
use crate::store::{Epoch, Location, Route, StoreHandle};
use crate::systemd::Liveness;

/// How long shutdown waits for tasks to finish their current step.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(20);

/// The routing table of a configuration: which sink takes which subjects.
pub fn routes(config: &Config) -> Vec<Route> {
    config.sinks.iter().map(|s| Route { sink: s.name().to_owned(), subjects: s.subjects().to_vec() }).collect()
}

/// Why the daemon or a one-shot job could not start or go on. Each message names the part
/// that failed and, from that part, the key or file to check.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `[api]`: the signing key or the HTTP client could not be made.
    #[error(transparent)]
    Api(#[from] crate::config::ApiClientError),
    /// The state database could not be opened or written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A `[[sinks]]` entry could not be built (the message names the sink).
    #[error(transparent)]
    Sinks(#[from] sinks::BuildError),
    /// A listener (push, VGS, admin) could not start (the message names its key).
    #[error(transparent)]
    Listener(crate::server::ListenerError),
    /// `state.url_file` could not be read (or is empty).
    #[error(transparent)]
    StateUrl(crate::config::ConfigError),
    /// An operator's command found no SQLite database at `state.path`.
    #[error("no state database at {} (state.path): the daemon has not run yet", .0.display())]
    NoState(std::path::PathBuf),
    /// A signal handler could not be installed.
    #[error("cannot install a {signal} handler: {source}")]
    Signals {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Why a SIGHUP left the daemon on the configuration it had (logged and counted): the
/// file's problem (key and line), the sink that cannot be built, or the listener whose new
/// certificates or secrets cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Sink(#[from] sinks::BuildError),
    #[error(transparent)]
    Listener(#[from] crate::server::ListenerError),
}

/// Where `[state]` says the state lives. Reads `state.url_file`.
pub fn store_location(config: &Config) -> Result<Location, Error> {
    let state = &config.state;
    match state.backend {
        StateBackend::Sqlite => Ok(Location::Sqlite(config.resolve(&state.path))),
        StateBackend::Postgres => {
            let dsn = match (&state.url_file, &state.url) {
                (Some(file), _) => config.read_secret("state.url_file", file).map_err(Error::StateUrl)?,
                (None, Some(url)) => url.clone(),
                // Config::validate refuses this.
                (None, None) => String::new(),
            };
            let base_dir = config.path.parent().map(std::path::Path::to_path_buf);
            Ok(Location::Postgres(crate::store::postgres::Settings {
                dsn,
                schema: state.schema.clone(),
                base_dir,
                instance: Some(instance_name(config)),
            }))
        }
    }
}

/// Opens (creating or migrating) the state the configuration names.
pub async fn open_store(config: &Config) -> Result<StoreHandle, Error> {
    let metrics = Arc::new(crate::metrics::Metrics::new());
    Ok(StoreHandle::connect(&store_location(config)?, routes(config), metrics).await?)
}

/// Opens the state for an operator's command (`status`, `dead-letters`, `replay`): a SQLite
/// file must exist already, so a wrong `state.path` is reported instead of creating an
/// empty database.
pub async fn open_existing_store(config: &Config) -> Result<StoreHandle, Error> {
    if let Location::Sqlite(path) = store_location(config)?
        && !path.exists()
    {
        return Err(Error::NoState(path));
    }
    open_store(config).await
}

/// This instance's name (`state.instance`, default the host name): it names its outbox
/// claims and its bid for the poll leadership.
pub fn instance_name(config: &Config) -> String {
    if let Some(name) = &config.state.instance {
        return name.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// This process's outbox owner id.
pub fn process_owner(config: &Config) -> String {
    owner_id(&instance_name(config))
}

/// Keeps this instance's bid for the poll leadership (SPEC 13) and publishes the outcome
/// to the poller and the scheduled audit: `Some(epoch)` while it leads. Renewed every third
/// of the lease; a renewal that fails or takes longer than that stops polling at once. On
/// shutdown the leadership is given up, so another instance takes over without waiting for
/// the lease to run out.
async fn keep_leadership(
    store: StoreHandle,
    instance: String,
    lease: Duration,
    leadership: watch::Sender<Option<Epoch>>,
    shutdown: CancellationToken,
) {
    let renew = lease / 3;
    let mut ticker = tokio::time::interval(renew);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let metrics = store.metrics().clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let before = *leadership.borrow();
        let now = match tokio::time::timeout(renew, store.lead(&instance, lease)).await {
            Ok(Ok(l)) => {
                if l.epoch.is_none() && before.is_some() {
                    tracing::warn!(leader = l.leader.as_deref().unwrap_or("?"), "another instance took over polling");
                }
                l.epoch
            }
            Ok(Err(e)) => {
                if before.is_some() {
                    tracing::warn!(error = %e, "cannot renew the poll leadership; this instance stops polling");
                }
                None
            }
            Err(_) => {
                if before.is_some() {
                    tracing::warn!(timeout = ?renew, "renewing the poll leadership took too long; this instance stops polling");
                }
                None
            }
        };
        if let (Some(epoch), None) = (now, before) {
            tracing::info!(epoch, instance = %instance, "this instance polls now");
        }
        leadership.send_replace(now);
        metrics.poll_leader.set(i64::from(now.is_some()));
    }
    if leadership.send_replace(None).is_some() {
        metrics.poll_leader.set(0);
        if let Err(e) = store.resign(&instance).await {
            tracing::warn!(error = %e, "cannot give up the poll leadership; another instance takes over when it expires");
        }
    }
}

/// The running pieces of a daemon, for `demo` and tests to look at.
pub struct Running {
    pub store: StoreHandle,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub admin_addr: std::net::SocketAddr,
    /// The push endpoint, when `[push]` is configured.
    pub push: Option<crate::push::PushEndpoint>,
    /// The VGS webhook endpoint, when `[vgs]` is configured.
    pub vgs: Option<crate::vgs::VgsEndpoint>,
    pub poller: Arc<Poller>,
    /// The dispatchers, changed by [`Running::reload`].
    sinks: Mutex<SinkSet>,
    /// The outbox lease owner id of every dispatcher of this process.
    owner: String,
    /// The configuration in force (the last one that loaded), to tell what a SIGHUP changed.
    config: Mutex<Config>,
    /// The token the dispatchers' stop tokens derive from.
    shutdown: CancellationToken,
    /// The loops the systemd watchdog checks.
    pub liveness: Liveness,
    tasks: JoinSet<()>,
}

/// The dispatchers of a daemon: one per configured sink, each with its own stop token (a
/// child of the shutdown token), so one can stop or restart while the others go on.
struct SinkSet {
    /// In configuration order.
    running: Vec<SinkTask>,
    /// Dispatchers of removed sinks, finishing their last batch.
    stopping: Vec<tokio::task::JoinHandle<()>>,
}

struct SinkTask {
    /// What the dispatcher was built from: a SIGHUP with a different one restarts it.
    fingerprint: Fingerprint,
    active: ActiveSink,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
}

/// What tells whether a sink must be rebuilt on SIGHUP: its entry and `[delivery]`,
/// compared field by field. (Never logged: it may hold a connection string.)
#[derive(PartialEq)]
struct Fingerprint {
    sink: SinkConfig,
    delivery: crate::config::DeliveryConfig,
}

fn fingerprint(sink: &SinkConfig, config: &Config) -> Fingerprint {
    Fingerprint { sink: sink.clone(), delivery: config.delivery.clone() }
}

/// Starts the dispatcher of `sink`; when `after` is given (the previous dispatcher of the
/// same sink, told to stop), only once that one has finished its batch, so two versions of
/// a sink never deliver at once.
fn spawn_sink(
    store: &StoreHandle,
    sink: Arc<dyn sinks::Sink>,
    owner: &str,
    settings: DeliverySettings,
    stop: CancellationToken,
    after: Option<tokio::task::JoinHandle<()>>,
    liveness: &Liveness,
) -> (ActiveSink, tokio::task::JoinHandle<()>) {
    let counters = Arc::new(store.metrics().sink(sink.name()));
    let dispatcher = Dispatcher {
        store: store.clone(),
        sink: sink.clone(),
        owner: owner.to_owned(),
        settings,
        counters: counters.clone(),
        heartbeat: liveness.register(&format!("sink {}", sink.name())),
    };
    let handle = tokio::spawn(async move {
        if let Some(previous) = after {
            let _ = previous.await;
        }
        dispatcher.serve(stop).await;
    });
    (ActiveSink { sink, counters }, handle)
}

/// A sink of the new configuration on SIGHUP: kept as it runs, or built anew.
enum Planned {
    Keep,
    Build(Arc<dyn sinks::Sink>),
}

impl Running {
    /// The sinks running now, in configuration order.
    pub fn sinks(&self) -> Vec<ActiveSink> {
        lock(&self.sinks).running.iter().map(|t| t.active.clone()).collect()
    }

    /// Waits for every task to stop (after the shutdown token fired), at most `deadline`.
    /// When all have stopped, releases this process's outbox leases (none should be left).
    pub async fn join(mut self, deadline: Duration) {
        let handles: Vec<_> = {
            let mut set = lock(&self.sinks);
            let stopping = std::mem::take(&mut set.stopping);
            set.running.drain(..).map(|t| t.handle).chain(stopping).collect()
        };
        let all = async {
            while self.tasks.join_next().await.is_some() {}
            for h in handles {
                let _ = h.await;
            }
        };
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!("tasks still busy after {deadline:?}; exiting anyway (the next start resumes)");
            return;
        }
        if let Err(e) = self.store.release(&self.owner).await {
            tracing::warn!(error = %e, "cannot release outbox leases at shutdown; the next start releases them");
        }
    }

    /// SIGHUP: re-read the configuration file. When it loads and every new or changed sink
    /// can be built: sinks added start (they get notifications accepted from now on; older
    /// ones through `replay`), sinks removed stop after their batch in flight (what was
    /// queued for them stays queued), sinks with other settings restart with them, the push
    /// endpoint reloads its certificates and allowed names, and the VGS endpoint its secrets,
    /// verify mode and certificate. A file that does not load,
    /// or a sink that cannot be built, changes nothing, is logged and is counted
    /// (`cen_config_reloads_total{outcome="error"}`). Either way the sinks reopen their files.
    pub fn reload(&self, path: &std::path::Path) {
        crate::systemd::reloading();
        let metrics = self.store.metrics();
        let outcome = |o: &str| crate::metrics::OutcomeLabels { outcome: o.into() };
        let result = Config::load(path).map_err(ReloadError::from).and_then(|config| {
            let plan = self.plan(&config)?;
            if let Some(push) = &self.push {
                push.reload(&config)?;
            }
            if let Some(vgs) = &self.vgs {
                vgs.reload(&config)?;
            }
            self.warn_unreloaded(&config);
            let summary = self.apply(&config, plan);
            *lock(&self.config) = config;
            Ok(summary)
        });
        match result {
            Ok(summary) => {
                metrics.reloads.get_or_create(&outcome("ok")).inc();
                tracing::info!(sinks = %summary, "SIGHUP: configuration reloaded");
            }
            Err(e) => {
                metrics.reloads.get_or_create(&outcome("error")).inc();
                tracing::error!(error = %e, "SIGHUP: the new configuration is not usable; still running on the old one");
            }
        }
        for s in self.sinks() {
            s.sink.reopen();
        }
        crate::systemd::ready("reloaded");
    }

    /// One line for `systemctl status`: watermark, lag, backlog, problems.
    pub async fn status_line(&self) -> String {
        let health = self.poller.health.lock().expect("health lock").clone();
        let backlog: u64 = self.store.backlog().await.map(|b| b.iter().map(|(_, n)| n).sum()).unwrap_or(0);
        let watermark = health.watermark.map_or("none yet".to_string(), crate::cen::notification::format_timestamp);
        let lag = health.watermark.map(|w| (self.poller.scanner.clock.now() - w).num_seconds());
        let mut line = format!(
            "watermark {watermark}{}, backlog {backlog}, cycles ok {} failed {}",
            lag.map(|l| format!(" (lag {l}s)")).unwrap_or_default(),
            health.cycles_ok,
            health.cycles_failed
        );
        if let Some(p) = health.auth_problem.or(health.problem) {
            line.push_str(&format!("; last error: {p}"));
        }
        line
    }

    /// Builds the sinks of `config` that are new or changed; fails without side effects.
    fn plan(&self, config: &Config) -> Result<Vec<Planned>, sinks::BuildError> {
        let set = lock(&self.sinks);
        config
            .sinks
            .iter()
            .map(|s| {
                let fp = fingerprint(s, config);
                if set.running.iter().any(|t| t.active.sink.name() == s.name() && t.fingerprint == fp) {
                    return Ok(Planned::Keep);
                }
                s.spec().build(config).map(Planned::Build)
            })
            .collect()
    }

    /// Starts, stops and restarts dispatchers as planned and switches the routing table.
    /// Returns a summary for the log.
    fn apply(&self, config: &Config, plan: Vec<Planned>) -> String {
        let settings = DeliverySettings::from(&config.delivery);
        let mut set = lock(&self.sinks);
        set.stopping.retain(|h| !h.is_finished());
        let mut old: Vec<SinkTask> = std::mem::take(&mut set.running);
        let (mut added, mut changed, mut removed) = (Vec::new(), Vec::new(), Vec::new());
        for (s, planned) in config.sinks.iter().zip(plan) {
            let previous = old.iter().position(|t| t.active.sink.name() == s.name()).map(|i| old.remove(i));
            let task = match (planned, previous) {
                (Planned::Keep, Some(task)) => task,
                (Planned::Build(sink), previous) => {
                    let after = previous.map(|t| {
                        t.stop.cancel();
                        changed.push(s.name().to_owned());
                        t.handle
                    });
                    if after.is_none() {
                        added.push(s.name().to_owned());
                    }
                    let stop = self.shutdown.child_token();
                    let (active, handle) = spawn_sink(
                        &self.store,
                        sink,
                        &self.owner,
                        settings.clone(),
                        stop.clone(),
                        after,
                        &self.liveness,
                    );
                    SinkTask { fingerprint: fingerprint(s, config), active, stop, handle }
                }
                (Planned::Keep, None) => continue, // `plan` keeps only running sinks
            };
            set.running.push(task);
        }
        for t in old {
            t.stop.cancel();
            self.liveness.unregister(&format!("sink {}", t.active.sink.name()));
            removed.push(t.active.sink.name().to_owned());
            set.stopping.push(t.handle);
        }
        drop(set);
        // New routes after the new dispatchers exist; rows already queued for a removed
        // sink stay in the outbox (delivered if it comes back, shown by `status`).
        self.store.set_routes(routes(config));
        self.store.wake();
        for name in &removed {
            tracing::warn!(sink = %name, "SIGHUP: sink removed; its dispatcher stops, notifications already queued for it stay queued");
        }
        let list = |v: &[String]| if v.is_empty() { "none".to_owned() } else { v.join(",") };
        format!("added {}, changed {}, removed {}", list(&added), list(&changed), list(&removed))
    }

    /// Sections a SIGHUP does not apply: say so rather than ignore them silently.
    fn warn_unreloaded(&self, new: &Config) {
        let sections = unreloaded_sections(&lock(&self.config), new);
        if !sections.is_empty() {
            tracing::warn!(sections = %sections.join(","), "SIGHUP: these sections changed and take effect only after a restart");
        }
    }
}

/// The sections that differ between `old` and `new` (compared as values) and that a SIGHUP
/// does not apply.
fn unreloaded_sections(old: &Config, new: &Config) -> Vec<&'static str> {
    [
        ("api", old.api != new.api),
        ("poll", old.poll != new.poll),
        ("state", old.state != new.state),
        ("admin", old.admin != new.admin),
        ("log", old.log != new.log),
        ("subscriptions", old.subscriptions != new.subscriptions),
        ("audit", old.audit != new.audit),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect()
}

/// Locks a mutex, taking over a poisoned one (a panicking holder left nothing half-done
/// that matters here).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts the poller, the dispatchers and the maintenance task of `config`.
pub async fn start(config: &Config, shutdown: CancellationToken) -> Result<Running, Error> {
    let client = config.api_client()?;
    let store = open_store(config).await?;
    let instance = instance_name(config);
    release_dead_owners(&store, &instance).await?;
    let mut tasks = JoinSet::new();
    let liveness = Liveness::default();
    let owner = owner_id(&instance);
    let settings = DeliverySettings::from(&config.delivery);
    let mut running_sinks = Vec::new();
    for (sink, sink_config) in sinks::build(&config.sinks, config)?.into_iter().zip(&config.sinks) {
        let stop = shutdown.child_token();
        let (active, handle) = spawn_sink(&store, sink, &owner, settings.clone(), stop.clone(), None, &liveness);
        running_sinks.push(SinkTask { fingerprint: fingerprint(sink_config, config), active, stop, handle });
    }
    // The subscription watch (SPEC 11): at start, then hourly; it never changes anything.
    let watch = subscriptions::Watch::new(client.clone(), config, store.metrics().clone());
    tasks.spawn(watch.run(shutdown.clone()));
    let mut poller = Poller::new(client, store.clone(), PollSettings::from_config(config));
    poller.heartbeat = liveness.register("poll");
    match config.state.backend {
        // One instance on SQLite is always the one that polls (SPEC 7, 13).
        StateBackend::Sqlite => {
            store.metrics().poll_leader.set(1);
        }
        StateBackend::Postgres => {
            let (leadership, follows) = watch::channel(None);
            poller.leadership = follows;
            let lease = config.state.leader_lease.0;
            tasks.spawn(keep_leadership(store.clone(), instance.clone(), lease, leadership, shutdown.clone()));
        }
    }
    let poller = Arc::new(poller);
    {
        let poller = poller.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move { poller.run(shutdown).await });
    }
    tasks.spawn(prune_loop(store.clone(), config.state.keep.delta(), poller.leadership.clone(), shutdown.clone()));
    if let Some(audit) = crate::poll::audit::Scheduled::new(config, &poller) {
        tasks.spawn(audit.run(shutdown.clone()));
    }
    let admin = crate::admin::start(
        &config.admin,
        store.clone(),
        poller.health.clone(),
        config.poll.interval.0,
        shutdown.clone(),
    )
    .await;
    let admin_addr = keep_serving(&mut tasks, admin.map_err(Error::Listener)?);
    let push = match &config.push {
        Some(_) => {
            let started = crate::push::PushEndpoint::start(config, store.clone(), shutdown.clone()).await;
            Some(keep_serving(&mut tasks, started.map_err(Error::Listener)?))
        }
        None => None,
    };
    let vgs = match &config.vgs {
        Some(_) => {
            let started = crate::vgs::VgsEndpoint::start(config, store.clone(), shutdown.clone()).await;
            Some(keep_serving(&mut tasks, started.map_err(Error::Listener)?))
        }
        None => None,
    };
    Ok(Running {
        store,
        admin_addr,
        push,
        vgs,
        poller,
        sinks: Mutex::new(SinkSet { running: running_sinks, stopping: Vec::new() }),
        owner,
        shutdown,
        config: Mutex::new(config.clone()),
        liveness,
        tasks,
    })
}

/// Hands a started listener's serving task to `tasks` (the daemon waits for it on
/// shutdown) and returns the listener's handle.
fn keep_serving<T>(tasks: &mut JoinSet<()>, (listener, serving): (T, tokio::task::JoinHandle<()>)) -> T {
    tasks.spawn(async move {
        let _ = serving.await;
    });
    listener
}

/// One dispatcher task per configured sink, under this process's owner id. They release no
/// leases when they stop: call [`release_leases`] once every one has.
pub fn start_dispatchers(
    config: &Config,
    store: &StoreHandle,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
    liveness: &Liveness,
) -> Result<Vec<ActiveSink>, Error> {
    let owner = process_owner(config);
    let settings = DeliverySettings::from(&config.delivery);
    let mut out = Vec::new();
    for sink in sinks::build(&config.sinks, config)? {
        let counters = Arc::new(store.metrics().sink(sink.name()));
        let dispatcher = Dispatcher {
            store: store.clone(),
            sink: sink.clone(),
            owner: owner.clone(),
            settings: settings.clone(),
            counters: counters.clone(),
            heartbeat: liveness.register(&format!("sink {}", sink.name())),
        };
        let stop = shutdown.clone();
        tasks.spawn(async move { dispatcher.serve(stop).await });
        out.push(ActiveSink { sink, counters });
    }
    Ok(out)
}

/// Releases this process's outbox leases (owner id `owner`), after its dispatchers have
/// stopped.
pub async fn release_leases(store: &StoreHandle, owner: &str) {
    if let Err(e) = store.release(owner).await {
        tracing::warn!(error = %e, "cannot release outbox leases; they expire by themselves");
    }
}

/// Forgets notifications older than `state.keep` once an hour (and once at start).
/// In a cluster only the instance that polls prunes.
async fn prune_loop(
    store: StoreHandle,
    keep: chrono::TimeDelta,
    leadership: watch::Receiver<Option<Epoch>>,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if leadership.borrow().is_none() {
            continue;
        }
        let before = (Utc::now() - keep).timestamp_millis();
        match store.prune(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "forgot notifications older than state.keep"),
            Err(e) => {
                tracing::warn!(error = %e, "pruning the state database failed; will retry in an hour")
            }
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT. `signals` should be installed before anything
/// slow happens (loading keys, opening the store), so that a stop during start-up is an
/// orderly one too.
pub async fn run_daemon(config: Config, signals: Signals) -> Result<(), Error> {
    let shutdown = CancellationToken::new();
    let running = start(&config, shutdown.clone()).await?;
    tracing::info!(
        api = %config.api.base_url,
        sinks = config.sinks.len(),
        state = %config.resolve(&config.state.path).display(),
        "cen-poller running"
    );
    // Configuration valid, database open and migrated, listeners bound: ready.
    crate::systemd::ready(&running.status_line().await);
    let supervise = crate::systemd::supervise(running.liveness.clone(), || running.status_line(), shutdown.clone());
    let signals = signals.run(shutdown.clone(), || running.reload(&config.path));
    tokio::join!(supervise, async {
        signals.await;
        crate::systemd::stopping();
    });
    running.join(SHUTDOWN_DEADLINE).await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM, SIGINT and SIGHUP, caught from the moment [`Signals::install`] returns: a signal
/// that arrives before [`Signals::run`] waits is kept and acted on then, instead of killing
/// the process with the default action.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers. Must be called within a Tokio runtime context.
    pub fn install() -> Result<Signals, Error> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|source| Error::Signals { signal: name, source })
        };
        Ok(Signals {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// Waits for SIGTERM or SIGINT and cancels `shutdown`; SIGHUP calls `on_hup`. A second
    /// SIGINT exits the process at once.
    pub async fn run(self, shutdown: CancellationToken, on_hup: impl Fn()) {
        let Signals { mut term, mut int, mut hup } = self;
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
                    on_hup();
                }
            }
        }
    }
}

/// Installs the signal handlers and runs them (see [`Signals`]); when they cannot be
/// installed, waits for `shutdown` only.
pub async fn handle_signals(shutdown: CancellationToken, on_hup: impl Fn()) {
    match Signals::install() {
        Ok(signals) => signals.run(shutdown, on_hup).await,
        Err(e) => {
            tracing::error!(error = %e, "stop the process with SIGKILL");
            shutdown.cancelled().await
        }
    }
}

/// The scanner of a one-shot command (backfill) with the daemon's settings.
pub fn scanner(config: &Config, store: StoreHandle) -> Result<Scanner, Error> {
    let poller = Poller::new(config.api_client()?, store, PollSettings::from_config(config));
    Ok(poller.scanner)
}

/// A one-shot job (`--backfill`, `audit`) beside the daemon or without it: the store, with
/// the leases of processes that died released; a scanner; Ctrl-C as its interrupt; and,
/// when it delivers, dispatchers on a token of their own, so that after an interrupt they
/// still deliver what the job committed, until [`OneShot::finish`]'s drain gives up.
struct OneShot {
    store: StoreHandle,
    /// This process's outbox owner id.
    owner: String,
    scanner: Scanner,
    interrupt: CancellationToken,
    signals: tokio::task::JoinHandle<()>,
    stop_dispatch: CancellationToken,
    tasks: JoinSet<()>,
    sinks: Vec<ActiveSink>,
}

impl OneShot {
    async fn open(config: &Config, deliver: bool) -> Result<OneShot, Error> {
        let store = open_store(config).await?;
        release_dead_owners(&store, &instance_name(config)).await?;
        let owner = process_owner(config);
        let scanner = scanner(config, store.clone())?;
        let interrupt = CancellationToken::new();
        let signals = tokio::spawn(Signals::install()?.run(interrupt.clone(), || {}));
        let stop_dispatch = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let sinks = if deliver {
            start_dispatchers(config, &store, &stop_dispatch, &mut tasks, &Liveness::default())?
        } else {
            Vec::new()
        };
        Ok(OneShot { store, owner, scanner, interrupt, signals, stop_dispatch, tasks, sinks })
    }

    /// Waits for the sinks to take what the job queued (see [`drain`]), then stops.
    async fn finish(mut self) {
        if !self.sinks.is_empty() {
            drain(&self.store, &self.sinks, &self.interrupt).await;
        }
        self.stop_dispatch.cancel();
        self.signals.abort();
        while self.tasks.join_next().await.is_some() {}
        release_leases(&self.store, &self.owner).await;
    }
}

/// `--backfill`: reads `range` as `backfill`, delivering as it goes, then waits for the
/// sinks to take what it queued.
pub async fn run_backfill(
    config: &Config,
    range: crate::poll::range::Range,
) -> Result<crate::poll::backfill::BackfillReport, Error> {
    let job = OneShot::open(config, true).await?;
    let report =
        crate::poll::backfill::backfill(&job.scanner, range, config.poll.max_window.delta(), &job.interrupt).await;
    job.finish().await;
    Ok(report)
}

/// `audit`: checks `range` (SPEC 12), with `repair` storing what is missing as `audit` and
/// waiting for the sinks to take it; records the outcome for `status`.
pub async fn run_audit(
    config: &Config,
    range: crate::poll::range::Range,
    repair: bool,
) -> Result<crate::poll::audit::AuditReport, Error> {
    use std::io::IsTerminal;
    let job = OneShot::open(config, repair).await?;
    let progress = std::io::stderr().is_terminal();
    let report =
        crate::poll::audit::audit(&job.scanner, range, crate::poll::audit::WINDOW, repair, progress, &job.interrupt)
            .await;
    crate::poll::audit::record(&job.store, &report, "cli").await;
    job.finish().await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text, std::path::Path::new("/etc/cen-poller/config.toml")).unwrap()
    }

    /// Values, not their printed form: a file written differently but meaning the same is
    /// no change, and a changed value in any restart-only section is reported by name.
    #[test]
    fn restart_only_sections_are_compared_as_values() {
        let old = parse("[api]\nconsumer_key = \"ck\"\nsigning_key = \"key.pem\"\n");
        let same = parse(
            "[api]\nsigning_key = \"key.pem\"\nconsumer_key = \"ck\"\ntimeout = \"30s\"\n[poll]\ninterval = \"1m\"\n",
        );
        assert!(unreloaded_sections(&old, &same).is_empty());
        let changed = parse(
            "[api]\nconsumer_key = \"ck\"\nsigning_key = \"key.pem\"\n[poll]\ninterval = \"30s\"\n[audit]\nschedule = \"\"\n",
        );
        assert_eq!(unreloaded_sections(&old, &changed), ["poll", "audit"]);
    }
}
