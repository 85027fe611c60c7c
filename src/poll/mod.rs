//! The sliding-window poll (SPEC 8) and the one-shot backfill that shares its scanner.
//!
//! A cycle reads `[watermark - lookback, api_now - settle)` and moves the watermark to the
//! window's end only after everything the API returned for it is committed (G1). Within a
//! window the scanner never trusts offset paging across calls — offsets shift when
//! notifications arrive or expire mid-scan, invisibly when both happen at once — so it
//! splits the window into time sub-windows until each fits in one response
//! ([`scan::Scanner`]). Re-reading the lookback stays cheap because a sub-window whose API
//! `total` equals the stored count is skipped without being fetched, and the part of the
//! window earlier cycles read is counted apart from the new part (`Scanner::scan_split`).
//! The audit ([`audit`]) walks a longer range the same way.

pub mod audit;
pub mod backfill;
mod error;
pub mod range;
pub mod retry;
pub mod scan;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cen::RETENTION;
use crate::cen::client::Client;
use crate::config::{Config, FirstStart};
use crate::metrics::OutcomeLabels;
use crate::store::{Epoch, StoreHandle, Via};

pub use scan::{Missing, ScanError, ScanStats, Scanner, Take};

/// Settings of the poller, from `[poll]` and `[api]`.
#[derive(Debug, Clone)]
pub struct PollSettings {
    pub interval: Duration,
    pub lookback: TimeDelta,
    pub settle: TimeDelta,
    pub max_window: TimeDelta,
    pub page_size: u32,
    pub first_start: FirstStart,
    /// `api.subscriptions`: the stored counts are compared under the same filter.
    pub subscriptions: Vec<String>,
    /// With a `push_status` filter stored counts are not comparable: read everything.
    pub compare_counts: bool,
    /// Whether push is configured: what then arrives first by pull is "recovered".
    pub push_configured: bool,
    pub retry: retry::RetryPolicy,
}

impl PollSettings {
    pub fn from_config(config: &Config) -> PollSettings {
        let p = &config.poll;
        PollSettings {
            interval: p.interval.0,
            lookback: p.lookback.delta(),
            settle: p.settle.delta(),
            max_window: p.max_window.delta(),
            page_size: p.page_size,
            first_start: p.first_start,
            subscriptions: config.api.subscriptions.clone(),
            compare_counts: config.api.push_status.is_empty(),
            push_configured: config.push.is_some(),
            retry: retry::RetryPolicy::default(),
        }
    }
}

/// The API's clock as last seen in a `Date` header, kept as an offset from the local clock
/// so it advances between responses.
#[derive(Debug, Default)]
pub struct ApiClock {
    offset_ms: Mutex<Option<i64>>,
}

impl ApiClock {
    /// The API's `now` when a `Date` has been seen, else the local clock.
    pub fn now(&self) -> DateTime<Utc> {
        let offset = self.offset_ms.lock().expect("clock lock").unwrap_or(0);
        Utc::now() + TimeDelta::milliseconds(offset)
    }

    /// Records the `Date` of a response. `Date` has whole seconds: the offset is exact to a
    /// second, which `settle` covers many times over.
    pub fn observe(&self, date: DateTime<Utc>) {
        *self.offset_ms.lock().expect("clock lock") = Some((date - Utc::now()).num_milliseconds());
    }

    pub fn is_known(&self) -> bool {
        self.offset_ms.lock().expect("clock lock").is_some()
    }
}

/// What `/readyz`, `status` and the metrics read about the poller.
#[derive(Debug, Clone, Default)]
pub struct PollHealth {
    /// When a cycle last completed.
    pub last_success: Option<DateTime<Utc>>,
    /// When a cycle completed or a page was committed (a long catch-up is progress too).
    pub last_progress: Option<DateTime<Utc>>,
    /// Why the last cycle failed, if it did.
    pub problem: Option<String>,
    /// Set while the API refuses our credentials (401/403), with the gateway's ReasonCode
    /// and Description: the daemon is not ready until a cycle succeeds again.
    pub auth_problem: Option<String>,
    /// The watermark after the last cycle.
    pub watermark: Option<DateTime<Utc>>,
    pub cycles_ok: u64,
    pub cycles_failed: u64,
    /// Set while the watermark is older than the API's retention (data may be lost).
    pub watermark_beyond_retention: bool,
    /// Over the cycles completed since the process started: notifications the API
    /// returned, new ones, duplicates (already stored: by push or an earlier cycle), requests.
    pub totals: ScanStats,
}

/// The daemon's poller: one cycle every `interval`.
pub struct Poller {
    pub scanner: Scanner,
    pub settings: PollSettings,
    pub health: Arc<Mutex<PollHealth>>,
    /// Beaten while the poll loop runs (the systemd watchdog checks it).
    pub heartbeat: crate::systemd::Heartbeat,
    /// The leadership term this instance polls under, `None` while another instance leads
    /// (`service::leader` keeps it; on one machine it is always `Some(0)`). The watermark is
    /// written under this epoch only, and a cycle stops the moment it changes.
    pub leadership: watch::Receiver<Option<Epoch>>,
}

/// What one cycle did.
#[derive(Debug, Default)]
pub struct CycleOutcome {
    pub windows: u64,
    pub stats: ScanStats,
    pub watermark: Option<DateTime<Utc>>,
}

impl Poller {
    pub fn new(client: Client, store: StoreHandle, settings: PollSettings) -> Poller {
        let health = Arc::new(Mutex::new(PollHealth::default()));
        let scanner = Scanner::new(client, store, settings.clone(), Arc::new(ApiClock::default()), health.clone());
        let (_, leadership) = watch::channel(Some(0));
        Poller { scanner, settings, health, heartbeat: Default::default(), leadership }
    }

    /// Polls until `shutdown`, one cycle per interval. A cycle in progress finishes the
    /// page it is committing, then stops.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(self.settings.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A 401 is logged once per cycle; repeating the same ReasonCode every minute would
        // bury everything else, so it is logged again only when it changes.
        let mut last_problem: Option<String> = None;
        loop {
            let waited = self
                .heartbeat
                .while_running(async {
                    tokio::select! {
                        _ = shutdown.cancelled() => false,
                        _ = ticker.tick() => true,
                    }
                })
                .await;
            if !waited {
                return;
            }
            let Some(epoch) = *self.leadership.borrow() else {
                // Another instance polls; the tick keeps the heartbeat and looks again.
                continue;
            };
            crate::systemd::test_freeze_point();
            // Losing the leadership stops the cycle at once (SPEC 13): what it committed
            // stays (harmless duplicates for the new leader), the watermark does not move.
            let term = shutdown.child_token();
            let cycle = async {
                let mut leadership = self.leadership.clone();
                tokio::select! {
                    result = self.cycle(&term) => result,
                    // A closed channel is a fixed leadership (one machine): it never changes.
                    _ = async {
                        if leadership.wait_for(|now| *now != Some(epoch)).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    } => {
                        term.cancel();
                        tracing::warn!(epoch, "lost the poll leadership; this instance stops polling");
                        Err(ScanError::NotLeader)
                    }
                }
            };
            match self.heartbeat.while_running(cycle).await {
                Ok(outcome) => {
                    if last_problem.take().is_some() {
                        tracing::info!("polling recovered");
                    }
                    tracing::debug!(
                        windows = outcome.windows,
                        requests = outcome.stats.requests,
                        new = outcome.stats.new,
                        duplicates = outcome.stats.duplicates,
                        "poll cycle done"
                    );
                }
                Err(ScanError::Cancelled) => return,
                Err(ScanError::NotLeader) => {}
                Err(e) => {
                    let text = e.to_string();
                    if last_problem.as_deref() != Some(text.as_str()) {
                        if matches!(&e, ScanError::Api(api) if api.is_auth()) {
                            tracing::error!(error = %text, "the API refused our credentials; retrying at the poll interval");
                        } else {
                            tracing::warn!(error = %text, "poll cycle failed; the watermark stays, the next cycle retries");
                        }
                        last_problem = Some(text);
                    }
                }
            }
        }
    }

    /// One cycle: catch up window by window (each at most `max_window` past the watermark)
    /// until the window's end is `api_now - settle`.
    pub async fn cycle(&self, shutdown: &CancellationToken) -> Result<CycleOutcome, ScanError> {
        let result = self.cycle_inner(shutdown).await;
        let metrics = self.scanner.store.metrics();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(ScanError::Api(e)) if e.is_auth() => "auth_error",
            Err(ScanError::Cancelled) => "cancelled",
            Err(_) => "error",
        };
        metrics.poll_cycles.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
        let mut h = self.health.lock().expect("health lock");
        if let Some(wm) = h.watermark.or(result.as_ref().ok().and_then(|o| o.watermark)) {
            metrics.watermark_seconds.set(wm.timestamp_millis() as f64 / 1000.0);
            metrics.lag_seconds.set((self.scanner.clock.now() - wm).num_milliseconds() as f64 / 1000.0);
        }
        metrics.watermark_beyond_retention.set(i64::from(h.watermark_beyond_retention));
        match &result {
            Ok(outcome) => {
                h.totals.add(&outcome.stats);
                let now = Utc::now();
                h.last_success = Some(now);
                h.last_progress = Some(now);
                h.problem = None;
                h.auth_problem = None;
                h.cycles_ok += 1;
                if outcome.watermark.is_some() {
                    h.watermark = outcome.watermark;
                }
            }
            Err(ScanError::Cancelled) => {}
            Err(e) => {
                h.cycles_failed += 1;
                h.problem = Some(e.to_string());
                if matches!(e, ScanError::Api(api) if api.is_auth()) {
                    h.auth_problem = Some(e.to_string());
                }
            }
        }
        result
    }

    async fn cycle_inner(&self, shutdown: &CancellationToken) -> Result<CycleOutcome, ScanError> {
        let s = &self.settings;
        let scanner = &self.scanner;
        if !scanner.clock.is_known() {
            // The first request of a process learns the API's clock, so even the first
            // window ends `settle` behind the API, not behind our clock.
            scanner.probe_clock(shutdown).await?;
        }
        let epoch = (*self.leadership.borrow()).ok_or(ScanError::NotLeader)?;
        let now = scanner.clock.now();
        let end = now - s.settle;
        let oldest = now - RETENTION;
        let mut watermark = match scanner.store.watermark().await? {
            Some(ms) => from_ms(ms),
            None => {
                let start = match s.first_start {
                    FirstStart::Lookback => now - s.lookback,
                    FirstStart::Retention => oldest,
                    FirstStart::At(t) => t,
                };
                // Windows start at `watermark - lookback`, so this makes the first window
                // start at the configured point.
                let wm = start + s.lookback;
                tracing::info!(start = %start, "new state database: polling starts here (poll.first_start)");
                wm
            }
        };
        let beyond = watermark < oldest;
        {
            let mut h = self.health.lock().expect("health lock");
            if beyond && !h.watermark_beyond_retention {
                tracing::error!(
                    watermark = %watermark,
                    "the watermark is older than the API's 7-day retention: notifications created before {oldest} can no longer be fetched and may be lost; check them with Mastercard"
                );
            }
            h.watermark_beyond_retention = beyond;
        }
        let mut outcome = CycleOutcome::default();
        loop {
            let window_end = end.min(watermark + s.max_window);
            // Never ask for what the API no longer has; a minute of margin keeps the
            // window's start from expiring while it is being read.
            let window_start = (watermark - s.lookback).max(oldest + TimeDelta::minutes(1));
            if window_end > window_start {
                // The part before the watermark was read by earlier cycles: one count proves
                // it unchanged; the part after it is read on its own.
                scanner
                    .scan_split(window_start, watermark, window_end, Via::Pull, shutdown, &mut outcome.stats)
                    .await?;
                outcome.windows += 1;
            }
            if window_end > watermark {
                scanner.store.set_watermark(window_end.timestamp_millis(), epoch).await?;
                watermark = window_end;
                outcome.watermark = Some(watermark);
                let mut h = self.health.lock().expect("health lock");
                h.watermark = Some(watermark);
                h.last_progress = Some(Utc::now());
            }
            if window_end >= end {
                break;
            }
        }
        Ok(outcome)
    }
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}
