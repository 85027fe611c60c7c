//! A stand-in for the Mastercard CEN API (SPEC 9), for `cen-poller simulate`, `demo`, the test
//! suite and the benchmarks.
//!
//! It serves `GET …/notifications`, the subscription calls and `GET …/fieldmappings` over
//! plain HTTP with the real API's parameters, wrapper and error envelope (new notifications
//! only for the stream's subscriptions while they exist and are active, see
//! [`subscriptions`]); verifies OAuth 1.0a signatures like the
//! gateway when given a public key; injects faults (5xx and 429 bursts, slow and truncated
//! answers, late visibility, notifications expiring and appearing during a scan); and can
//! push the same notifications to a push endpoint over mTLS, dropping and duplicating some.
//!
//! The data is a deterministic stream: notification `i` of a seed is created at
//! `stream_start + i / rate` and its JSON is generated on demand from `(seed, i)`, so a
//! million notifications over seven days cost no memory and a count query over an hour is
//! arithmetic (see [`data`] for how queries are answered). Tests add, remove and inspect
//! notifications through the cloneable [`Simulator`] handle.
//!
//! The simulator's clock is the real UTC clock plus a settable skew; every answer carries it
//! in its `Date` header, as the real API does.
//!
//! - [`generate`]: the stream and the content of each subject;
//! - [`data`]: what exists at a given moment and how a query selects from it;
//! - [`server`]: the HTTP routes, parameter parsing, OAuth check and error envelopes;
//! - [`faults`]: fault injection; [`push`]: the pusher; [`cli`]: `cen-poller simulate`.

pub mod cli;
pub mod data;
pub mod faults;
pub mod generate;
mod http;
pub mod push;
pub mod server;
pub mod subscriptions;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cen::notification::Notification;

pub use cli::{SimulateArgs, run};
pub use data::{ItemKey, PUSH_STATUSES};
pub use faults::FaultRates;
pub use generate::{SUBJECTS, subscription_name};
pub use subscriptions::SubscriptionCalls;

use data::{Filter, Inserted, State, View};
use faults::Faults;
use generate::{Stream, ms_to_datetime};

/// Why the simulator could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid simulator configuration: {0}")]
    Config(String),
    #[error("invalid simulator configuration: {0}")]
    Faults(#[from] faults::FaultError),
    #[error("push target: {0}")]
    Push(String),
    #[error(transparent)]
    Key(#[from] crate::cen::keys::KeyError),
    #[error("cannot read {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("the simulator's server failed: {0}")]
    Serve(std::io::Error),
    #[error("not an acceptable notification: {0}")]
    Notification(String),
}

/// Where and how to push notifications (SPEC 9/10: a bare JSON array per POST, mTLS).
#[derive(Clone)]
pub struct PushTarget {
    /// The push endpoint, e.g. `https://127.0.0.1:8443/notifications`.
    pub url: String,
    /// Client certificate (chain) and its private key, PEM; both or neither.
    pub client_cert_pem: Option<String>,
    pub client_key_pem: Option<String>,
    /// The CA that issued the endpoint's server certificate, PEM (only this CA is trusted
    /// when given; the system roots otherwise).
    pub ca_pem: Option<String>,
    /// Fraction of notifications never pushed (chosen deterministically from the seed);
    /// their pull copy says `FAILED`.
    pub drop_fraction: f64,
    /// Fraction of delivered notifications sent a second time, in a later request.
    pub duplicate_fraction: f64,
    /// Notifications per POST (default 10).
    pub batch_size: usize,
    /// Attempts per POST before its notifications become `FAILED` (default 3).
    pub max_attempts: u32,
    /// Wait before the first retry; doubles per attempt, at most 5 s (default 200 ms).
    pub retry_delay: Duration,
    /// Timeout of one POST (default 10 s).
    pub timeout: Duration,
}

impl std::fmt::Debug for PushTarget {
    // Never print key material (SPEC G6).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushTarget")
            .field("url", &self.url)
            .field("client_cert", &self.client_cert_pem.is_some())
            .field("client_key", &self.client_key_pem.as_ref().map(|_| "<redacted>"))
            .field("drop_fraction", &self.drop_fraction)
            .field("duplicate_fraction", &self.duplicate_fraction)
            .field("batch_size", &self.batch_size)
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

impl PushTarget {
    /// A target with the defaults: no client certificate, no drops or duplicates, batches of
    /// 10, 3 attempts.
    pub fn new(url: impl Into<String>) -> Self {
        PushTarget {
            url: url.into(),
            client_cert_pem: None,
            client_key_pem: None,
            ca_pem: None,
            drop_fraction: 0.0,
            duplicate_fraction: 0.0,
            batch_size: 10,
            max_attempts: 3,
            retry_delay: Duration::from_millis(200),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Everything the simulator is started with.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Chooses every generated value; the same seed gives the same notifications and ids.
    pub seed: u64,
    /// Notifications created per second (> 0).
    pub rate: f64,
    /// Creation time of notification 0.
    pub stream_start: DateTime<Utc>,
    /// `Some(n)`: exactly `n` notifications, then none. `None`: a live stream that keeps
    /// creating notifications as the clock passes.
    pub count: Option<u64>,
    /// How long a notification stays pollable after its creation (7 days).
    pub retention: Duration,
    /// Fraction of generated notifications that become visible `late_by` after creation.
    pub late_fraction: f64,
    pub late_by: Duration,
    /// `limit` when the request gives none (200), and the most one page returns (1000;
    /// larger requests are answered with this many and `"limit"` says so).
    pub default_limit: u64,
    pub max_limit: u64,
    /// PKCS#1 DER public key to verify OAuth signatures with; `None` accepts any request.
    pub public_key: Option<Vec<u8>>,
    /// The only consumer key accepted (with a public key); `None` accepts any.
    pub consumer_key: Option<String>,
    pub faults: FaultRates,
    pub push: Option<PushTarget>,
}

impl Default for SimConfig {
    /// One notification per second, the last hour of history, live.
    fn default() -> Self {
        SimConfig {
            seed: 1,
            rate: 1.0,
            stream_start: Utc::now() - chrono::TimeDelta::hours(1),
            count: None,
            retention: Duration::from_secs(7 * 86_400),
            late_fraction: 0.0,
            late_by: Duration::from_secs(300),
            default_limit: 200,
            max_limit: 1000,
            public_key: None,
            consumer_key: None,
            faults: FaultRates::default(),
            push: None,
        }
    }
}

impl SimConfig {
    /// Exactly `count` notifications, `rate` per second from `start`.
    pub fn bounded(seed: u64, start: DateTime<Utc>, rate: f64, count: u64) -> Self {
        SimConfig { seed, rate, stream_start: start, count: Some(count), ..SimConfig::default() }
    }

    /// Exactly `count` notifications spread evenly over `[start, end)` (e.g. the backfill
    /// benchmark's million over seven days).
    pub fn spread(seed: u64, count: u64, start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        let span = (end - start).num_milliseconds().max(1) as f64 / 1000.0;
        SimConfig::bounded(seed, start, count.max(1) as f64 / span, count)
    }

    /// A live stream at `rate` per second with `backlog` of history before now.
    pub fn live(seed: u64, rate: f64, backlog: Duration) -> Self {
        let backlog = chrono::TimeDelta::from_std(backlog).unwrap_or(chrono::TimeDelta::MAX);
        SimConfig { seed, rate, stream_start: Utc::now() - backlog, ..SimConfig::default() }
    }

    /// Checks the numbers that would make the simulator misbehave.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::Config(m));
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return bad(format!("rate must be a positive number, got {}", self.rate));
        }
        if !(0.0..=1.0).contains(&self.late_fraction) {
            return bad(format!("late fraction must be between 0 and 1, got {}", self.late_fraction));
        }
        if self.default_limit == 0 || self.max_limit == 0 {
            return bad("limits must be at least 1".into());
        }
        self.faults.validate()?;
        if let Some(p) = &self.push {
            for (name, v) in [("drop", p.drop_fraction), ("duplicate", p.duplicate_fraction)] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(SimError::Push(format!("{name} fraction must be between 0 and 1, got {v}")));
                }
            }
            if p.batch_size == 0 || p.max_attempts == 0 {
                return Err(SimError::Push("batch size and attempts must be at least 1".into()));
            }
        }
        Ok(())
    }
}

/// What a notifications request asked for, as given to the request hook.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// 1 for the first notifications request since the simulator started, and so on.
    pub number: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub offset: u64,
    /// The limit that will be applied (after capping at the maximum).
    pub limit: u64,
    pub subject: Option<String>,
    pub subscription_names: Vec<String>,
    pub push_statuses: Vec<String>,
}

/// A hook called on each notifications request before it is answered, with the request and
/// a handle to change the data (insert, expire). It must not capture a [`Simulator`] (that
/// would keep it alive forever): use the handle it is given.
pub type RequestHook = Box<dyn Fn(&RequestInfo, &Simulator) + Send + Sync>;

/// One notification of the simulator, as tests see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRef {
    pub key: ItemKey,
    /// The CEN id (SPEC 3).
    pub id: String,
    pub subject: String,
    pub created: DateTime<Utc>,
}

/// Counters for tests and the per-minute log line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimStats {
    /// Every HTTP request, and how many were answered with each status.
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
    /// `GET …/notifications` requests that got past authentication and parsing.
    pub notification_requests: u64,
    /// Of those, the ones with `limit <= 1` (count queries) and the others (pages).
    pub count_queries: u64,
    pub page_requests: u64,
    /// Notifications sent in 200 answers.
    pub notifications_served: u64,
    /// Work measures: per-item checks made while answering, and items rendered to JSON.
    pub items_scanned: u64,
    pub items_rendered: u64,
    /// Faults injected (5xx, 429, slow, truncated) and churn events.
    pub faults_injected: u64,
    pub churned: u64,
    /// Push: POST requests (retries included), retries, notifications delivered (200),
    /// dropped on purpose, sent a second time, and failed after every attempt.
    pub push_requests: u64,
    pub push_retries: u64,
    pub pushed: u64,
    pub push_dropped: u64,
    pub push_duplicated: u64,
    pub push_failed: u64,
}

/// A handle to a running (or not yet serving) simulator. Cheap to clone; every clone sees
/// and changes the same data.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").field("stream", &self.inner.stream).finish_non_exhaustive()
    }
}

type Hook = Arc<dyn Fn(&RequestInfo, &Simulator) + Send + Sync>;

struct Inner {
    stream: Stream,
    retention_ms: i64,
    default_limit: u64,
    max_limit: u64,
    public_key: Option<Vec<u8>>,
    consumer_key: Option<String>,
    rates: FaultRates,
    push: Option<PushTarget>,
    push_client: Option<reqwest::Client>,
    state: Mutex<State>,
    stats: Mutex<SimStats>,
    faults: Mutex<Faults>,
    hook: Mutex<Option<Hook>>,
    auth_failure: Mutex<Option<(u16, String)>>,
    skew_ms: AtomicI64,
    notification_requests: AtomicU64,
    churn_seq: AtomicU64,
    stop: CancellationToken,
    push_done: watch::Sender<bool>,
    pusher_started: AtomicBool,
    /// The client's subscriptions (lock before `state` when both are needed).
    subscriptions: Mutex<subscriptions::Subs>,
}

/// Locks a mutex, recovering from poisoning: a panicking test hook must not wedge the
/// simulator for the requests after it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The first whole millisecond at or after `t` (a window bound in milliseconds).
pub(crate) fn ceil_ms(t: DateTime<Utc>) -> i64 {
    let ms = t.timestamp_millis();
    if !t.timestamp_subsec_nanos().is_multiple_of(1_000_000) { ms + 1 } else { ms }
}

impl Simulator {
    /// A simulator for `config`. Panics on an invalid configuration (see
    /// [`SimConfig::validate`]); use [`Simulator::try_new`] for configurations from users.
    pub fn new(config: SimConfig) -> Simulator {
        match Simulator::try_new(config) {
            Ok(sim) => sim,
            Err(e) => panic!("{e}"),
        }
    }

    /// A simulator for `config`, or why the configuration cannot work.
    pub fn try_new(config: SimConfig) -> Result<Simulator, SimError> {
        config.validate()?;
        let push_client = config.push.as_ref().map(push::build_client).transpose()?;
        let stream = Stream {
            seed: config.seed,
            start_ms: config.stream_start.timestamp_millis(),
            rate: config.rate,
            count: config.count,
            late_fraction: config.late_fraction,
            late_by_ms: duration_ms(config.late_by),
        };
        let state = State {
            push: data::PushState { enabled: config.push.is_some(), ..Default::default() },
            ..Default::default()
        };
        Ok(Simulator {
            inner: Arc::new(Inner {
                stream,
                retention_ms: duration_ms(config.retention),
                default_limit: config.default_limit,
                max_limit: config.max_limit,
                public_key: config.public_key,
                consumer_key: config.consumer_key,
                rates: config.faults,
                push: config.push,
                push_client,
                state: Mutex::new(state),
                stats: Mutex::new(SimStats::default()),
                faults: Mutex::new(Faults::new(config.seed)),
                hook: Mutex::new(None),
                auth_failure: Mutex::new(None),
                skew_ms: AtomicI64::new(0),
                notification_requests: AtomicU64::new(0),
                churn_seq: AtomicU64::new(0),
                stop: CancellationToken::new(),
                push_done: watch::Sender::new(false),
                pusher_started: AtomicBool::new(false),
                subscriptions: Mutex::new(subscriptions::Subs::initial(config.seed)),
            }),
        })
    }

    /// Serves the API on `listener` until `shutdown` (or [`Simulator::stop`]) is cancelled,
    /// and runs the pusher meanwhile when a push target is configured.
    pub async fn serve(&self, listener: tokio::net::TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
        let token = self.inner.stop.child_token();
        {
            let token = token.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = shutdown.cancelled() => token.cancel(),
                    _ = token.cancelled() => {}
                }
            });
        }
        if let (Some(target), Some(client)) = (&self.inner.push, &self.inner.push_client)
            && !self.inner.pusher_started.swap(true, Ordering::SeqCst)
        {
            tokio::spawn(push::run(self.clone(), target.clone(), client.clone(), token.clone()));
        }
        let app = server::router(self.clone());
        let signal = token.clone();
        let result = axum::serve(listener, app).with_graceful_shutdown(async move { signal.cancelled().await }).await;
        token.cancel();
        result
    }

    /// Stops [`Simulator::serve`] and the pusher.
    pub fn stop(&self) {
        self.inner.stop.cancel();
    }

    /// The simulator's clock: real UTC time plus the skew.
    pub fn now(&self) -> DateTime<Utc> {
        ms_to_datetime(self.now_ms())
    }

    fn now_ms(&self) -> i64 {
        Utc::now().timestamp_millis().saturating_add(self.inner.skew_ms.load(Ordering::Relaxed))
    }

    /// Moves the simulator's clock `ms` milliseconds ahead of real time (negative: behind).
    /// It shows in every `Date` header and decides what exists.
    pub fn set_clock_skew(&self, ms: i64) {
        self.inner.skew_ms.store(ms, Ordering::Relaxed);
    }

    /// Runs `f` on the data as it is now.
    fn with_view<R>(&self, f: impl FnOnce(&View<'_>) -> R) -> R {
        let now_ms = self.now_ms();
        let state = lock(&self.inner.state);
        let view = View {
            stream: &self.inner.stream,
            state: &state,
            now_ms,
            retention_ms: self.inner.retention_ms,
            drop_fraction: self.inner.push.as_ref().map_or(0.0, |p| p.drop_fraction),
            scanned: std::cell::Cell::new(0),
        };
        let r = f(&view);
        let scanned = view.scanned.get();
        drop(state);
        lock(&self.inner.stats).items_scanned += scanned;
        r
    }

    /// Adds a notification (a JSON object with at least `subject`, `createdTimestamp` and
    /// `content`), visible from `visible_at`. It counts in `total` and appears in pages
    /// from the next request on. Its `pushStatus`, if given, is served as is; otherwise it
    /// is `FAILED` with a push target (inserted notifications are never pushed) and
    /// `NOT_APPLICABLE` without one.
    pub fn insert(&self, notification: Value, visible_at: DateTime<Utc>) -> Result<ItemRef, SimError> {
        let text = notification.to_string();
        let n = Notification::from_value(&notification, text).map_err(|e| SimError::Notification(e.to_string()))?;
        let mut value = notification;
        if let Value::Object(map) = &mut value {
            map.remove("pushStatus");
        }
        let created_ms = n.created.timestamp_millis();
        let mut state = lock(&self.inner.state);
        let seq = state.next_seq;
        state.next_seq += 1;
        state.inserted_at.insert(seq, created_ms);
        state.inserted.insert(
            (created_ms, seq),
            Inserted {
                visible_at_ms: visible_at.timestamp_millis(),
                subject: n.subject.clone(),
                subscription: n.subscription_name.clone(),
                push_status: n.push_status.clone(),
                value,
                id: n.id.clone(),
            },
        );
        Ok(ItemRef { key: ItemKey::Inserted(seq), id: n.id, subject: n.subject, created: n.created })
    }

    /// Makes a notification disappear now (as retention would). Returns whether it existed.
    pub fn expire(&self, key: ItemKey) -> bool {
        let mut state = lock(&self.inner.state);
        match key {
            ItemKey::Generated(i) => i < self.inner.stream.end_index() && state.expired.insert(i),
            ItemKey::Inserted(seq) => match state.inserted_at.remove(&seq) {
                Some(ms) => state.inserted.remove(&(ms, seq)).is_some(),
                None => false,
            },
        }
    }

    /// Expires the notification with this CEN id, if one exists now. Searches the inserted
    /// notifications, then every generated one within retention (slow for huge streams:
    /// prefer [`Simulator::expire`] with a key from [`Simulator::items`]).
    pub fn expire_id(&self, id: &str) -> bool {
        let found = lock(&self.inner.state)
            .inserted
            .iter()
            .find(|(_, item)| item.id == id)
            .map(|(&(_, seq), _)| ItemKey::Inserted(seq));
        let key = found.or_else(|| {
            self.items(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC)
                .into_iter()
                .find(|item| item.id == id)
                .map(|item| item.key)
        });
        key.is_some_and(|k| self.expire(k))
    }

    /// The notifications that exist now with `createdTimestamp` in `[start, end)`, in the
    /// API's order.
    pub fn items(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<ItemRef> {
        let (keys, inserted) = self.with_view(|v| {
            let page = v.page(&Filter::window(ceil_ms(start), ceil_ms(end)), 0, u64::MAX);
            let inserted: BTreeMap<u64, (String, String, i64)> = page
                .items
                .iter()
                .filter_map(|(k, _)| match k {
                    ItemKey::Inserted(seq) => {
                        let ms = v.state.inserted_at.get(seq)?;
                        let item = v.state.inserted.get(&(*ms, *seq))?;
                        Some((*seq, (item.id.clone(), item.subject.clone(), *ms)))
                    }
                    ItemKey::Generated(_) => None,
                })
                .collect();
            (page.items, inserted)
        });
        keys.into_iter()
            .filter_map(|(key, _)| match key {
                ItemKey::Generated(i) => Some(ItemRef {
                    key,
                    id: self.generated_id(i),
                    subject: SUBJECTS[self.inner.stream.subject(i)].to_owned(),
                    created: ms_to_datetime(self.inner.stream.created_ms(i)),
                }),
                ItemKey::Inserted(seq) => {
                    let (id, subject, ms) = inserted.get(&seq)?.clone();
                    Some(ItemRef { key, id, subject, created: ms_to_datetime(ms) })
                }
            })
            .collect()
    }

    /// The CEN ids (SPEC 3) of every notification that exists now with `createdTimestamp`
    /// in `[start, end)`: what a poller must end up with for that window.
    pub fn expected_ids(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<String> {
        self.items(start, end).into_iter().map(|i| i.id).collect()
    }

    /// How many notifications exist now with `createdTimestamp` in `[start, end)` (the
    /// unfiltered `total`).
    pub fn visible_count(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> u64 {
        self.with_view(|v| v.page(&Filter::window(ceil_ms(start), ceil_ms(end)), 0, 0).total)
    }

    /// Generated notification `i` as the API would serve it now (current `pushStatus`).
    pub fn generated(&self, i: u64) -> Value {
        let status = self.with_view(|v| v.gen_push_status(i));
        serde_json::from_str(&self.inner.stream.item_json(i, Some(status))).expect("generated JSON is valid")
    }

    /// The CEN id of generated notification `i`.
    pub fn generated_id(&self, i: u64) -> String {
        self.inner.stream.item_id(i)
    }

    /// When generated notification `i` is created.
    pub fn created_at(&self, i: u64) -> DateTime<Utc> {
        ms_to_datetime(self.inner.stream.created_ms(i))
    }

    /// The counters so far.
    pub fn stats(&self) -> SimStats {
        lock(&self.inner.stats).clone()
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        *lock(&self.inner.stats) = SimStats::default();
    }

    /// The next `n` notifications requests are answered with `status` (a 5xx, with
    /// `"Recoverable": true`).
    pub fn fail_next(&self, n: u32, status: u16) {
        lock(&self.inner.faults).fail_next(n, status);
    }

    /// The next `n` notifications requests are answered 429 with `Retry-After` (whole
    /// seconds, rounded up).
    pub fn rate_limit_next(&self, n: u32, retry_after: Duration) {
        lock(&self.inner.faults).rate_limit_next(n, retry_after);
    }

    /// The next `n` notifications requests are answered after `delay`.
    pub fn slow_next(&self, n: u32, delay: Duration) {
        lock(&self.inner.faults).slow_next(n, delay);
    }

    /// The next `n` notifications requests are answered 200 with the JSON cut in the middle.
    pub fn truncate_next(&self, n: u32) {
        lock(&self.inner.faults).truncate_next(n);
    }

    /// Forgets every queued fault.
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// `Some((status, reason_code))`: every request is answered `status` (401 or 403) with
    /// a gateway error carrying `reason_code`, e.g. `(401, "INVALID_SIGNATURE")`. `None`
    /// restores normal service.
    pub fn set_auth_failure(&self, failure: Option<(u16, &str)>) {
        *lock(&self.inner.auth_failure) = failure.map(|(s, r)| (s, r.to_owned()));
    }

    /// Calls `hook` on every notifications request, after parsing and before answering.
    pub fn set_request_hook(&self, hook: impl Fn(&RequestInfo, &Simulator) + Send + Sync + 'static) {
        *lock(&self.inner.hook) = Some(Arc::new(hook));
    }

    /// Removes the request hook.
    pub fn clear_request_hook(&self) {
        *lock(&self.inner.hook) = None;
    }

    /// Waits until a bounded stream has been pushed completely (every notification
    /// delivered, dropped or failed, and duplicates sent). Returns at once without a push
    /// target; never returns for a live stream.
    pub async fn wait_push_done(&self) {
        if self.inner.push.is_none() {
            return;
        }
        let mut rx = self.inner.push_done.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    fn record_status(&self, status: u16) {
        let mut stats = lock(&self.inner.stats);
        stats.requests += 1;
        *stats.by_status.entry(status).or_default() += 1;
    }
}

/// Starts a simulator for `config` on `127.0.0.1` (a free port) for tests and benchmarks.
/// Stop it with [`Simulator::stop`]. Panics if no local port can be bound.
pub async fn start(config: SimConfig) -> (Simulator, SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let sim = Simulator::new(config);
    let listener =
        tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("cannot bind a local port for the simulator");
    let addr = listener.local_addr().expect("a bound listener has an address");
    let serving = sim.clone();
    let handle = tokio::spawn(async move { serving.serve(listener, CancellationToken::new()).await });
    (sim, addr, handle)
}
