//! The audit (SPEC 12): proves that the store holds everything the API has over a long
//! range — by default the whole retention — and repairs what it lacks.
//!
//! It is the poll cycle's "count against the stored count, split only what differs" walk
//! ([`Scanner::scan_parts`]) over windows of an hour ([`WINDOW`]), with each response compared
//! with the store instead of simply committed ([`Take::Audit`]). In a steady state every
//! window's count matches, so an audit of 7 days in one-hour windows costs 168 count
//! requests and reads nothing.
//!
//! Invariants: an audit never moves the watermark; it reads only up to where the poll has
//! finished (`watermark - lookback`), since what lies after is still the poll's to read and
//! not "missed"; what it repairs is stored as `received_via = "audit"` through the same
//! accept as every other path, so it may run beside the daemon and nothing is delivered
//! twice; a window that cannot be read after the retries is listed and the others are
//! still checked.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use super::backfill::{Progress, interrupted};
use super::range::Range;
use super::scan::{Missing, ScanError, ScanStats, Scanner, Take, chunks};
use crate::cen::RETENTION;
use crate::cen::notification::format_timestamp;
use crate::metrics::{Metrics, OutcomeLabels, SubjectLabels};
use crate::store::{LastAudit, StoreHandle};

/// The audit's windows: a count each when nothing is missing, so 168 for the retention;
/// a window that cannot be read is reported alone and the others are still checked.
pub const WINDOW: TimeDelta = TimeDelta::hours(1);

/// What an audit did.
#[derive(Debug, serde::Serialize)]
pub struct AuditReport {
    /// The range asked for.
    #[serde(serialize_with = "display")]
    pub range: Range,
    /// The range checked: the asked one, starting no earlier than the API still serves and
    /// ending where the poll has finished. `None` when nothing of it was left to check.
    #[serde(serialize_with = "display_opt")]
    pub checked: Option<Range>,
    pub windows: usize,
    /// API requests made, retries included.
    pub requests: u64,
    /// Notifications the API returned while looking for the missing ones.
    pub fetched: u64,
    /// Sub-windows whose count matched the store's.
    pub matched: u64,
    /// What the store lacked, by id.
    pub missing: Vec<Missing>,
    /// Whether the missing ones were stored and queued for the sinks.
    pub repaired: bool,
    /// Windows that could not be read, with the reason.
    #[serde(serialize_with = "display_failed")]
    pub failed: Vec<(Range, String)>,
    pub interrupted: bool,
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn display<S: serde::Serializer>(r: &Range, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(r)
}

fn display_opt<S: serde::Serializer>(r: &Option<Range>, s: S) -> Result<S::Ok, S::Error> {
    match r {
        Some(r) => s.collect_str(r),
        None => s.serialize_none(),
    }
}

fn display_failed<S: serde::Serializer>(f: &[(Range, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(f.iter().map(|(r, why)| serde_json::json!({"range": r.to_string(), "error": why})))
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl AuditReport {
    /// Missing notifications per subject.
    pub fn by_subject(&self) -> BTreeMap<&str, u64> {
        let mut out = BTreeMap::new();
        for m in &self.missing {
            *out.entry(m.subject.as_str()).or_default() += 1;
        }
        out
    }

    /// `ok` (nothing missing, or all repaired), `missing` (found, not repaired) or `failed`
    /// (some window could not be read, or the run was interrupted).
    pub fn outcome(&self) -> &'static str {
        if !self.failed.is_empty() || self.interrupted {
            "failed"
        } else if !self.missing.is_empty() && !self.repaired {
            "missing"
        } else {
            "ok"
        }
    }

    /// SPEC 4: 0 nothing missing or all repaired, 4 missing without `--repair`, 3 a window
    /// could not be read.
    pub fn exit_code(&self) -> u8 {
        match self.outcome() {
            "failed" => 3,
            "missing" => 4,
            _ => 0,
        }
    }

    /// The human summary: a header line, each missing notification, the failed windows.
    pub fn summary(&self) -> String {
        let mut out = match &self.checked {
            Some(checked) => format!(
                "audit {checked}: {} windows checked, {} requests, {} notifications read, {} missing{} in {:.1}s\n",
                self.windows,
                self.requests,
                self.fetched,
                self.missing.len(),
                if self.repaired && !self.missing.is_empty() { " (all repaired)" } else { "" },
                self.elapsed.as_secs_f64(),
            ),
            None => format!(
                "audit {}: nothing to check (the range ends before the oldest notification the API keeps, or after the poll's last finished window, or the poll has not finished one yet)\n",
                self.range
            ),
        };
        if let Some(checked) = &self.checked
            && checked != &self.range
        {
            out.push_str(&format!(
                "  (asked {}; the API keeps 7 days, and what the poll has not finished reading is left to it)\n",
                self.range
            ));
        }
        let verb = if self.repaired { "REPAIRED" } else { "MISSING" };
        for m in &self.missing {
            out.push_str(&format!("{verb} {} {} {}\n", m.id, m.subject, m.created_timestamp));
        }
        for (subject, n) in self.by_subject() {
            out.push_str(&format!("  missing {subject:<28} {n}\n"));
        }
        if self.interrupted {
            out.push_str("interrupted before the end of the range; run the audit again\n");
        }
        for (range, why) in &self.failed {
            out.push_str(&format!("FAILED {range}: {why}\n"));
        }
        if !self.failed.is_empty() {
            out.push_str("run the audit again for the failed ranges listed above\n");
        }
        if self.outcome() == "missing" {
            out.push_str("run again with --repair to store them and deliver them to the sinks\n");
        }
        out
    }

    /// What `status` shows of it.
    pub fn last_audit(&self, by: &str) -> LastAudit {
        LastAudit {
            finished_at: format_timestamp(Utc::now()),
            range: self.checked.unwrap_or(self.range).to_string(),
            outcome: self.outcome().into(),
            missing: self.missing.len() as u64,
            repaired: if self.repaired { self.missing.len() as u64 } else { 0 },
            requests: self.requests,
            by: by.into(),
        }
    }

    /// Counts it in the SPEC 7 metrics.
    pub fn count(&self, metrics: &Metrics) {
        metrics.audit_runs.get_or_create(&OutcomeLabels { outcome: self.outcome().into() }).inc();
        for (subject, n) in self.by_subject() {
            metrics.audit_missing.get_or_create(&SubjectLabels { subject: subject.into() }).inc_by(n);
        }
        if self.outcome() == "ok" {
            metrics.audit_last_success.set(Utc::now().timestamp_millis() as f64 / 1000.0);
        }
    }
}

/// The part of `range` an audit checks: from no earlier than a minute inside the API's
/// retention (the oldest minute may expire while it is read), to no later than where the
/// poll has finished, `watermark - lookback`. `None` when that leaves nothing — also before
/// the poll has finished its first window (no watermark): all of it is still the poll's to
/// read, and an audit then would only race it.
pub fn checked_range(
    range: Range,
    api_now: DateTime<Utc>,
    watermark: Option<DateTime<Utc>>,
    lookback: TimeDelta,
) -> Option<Range> {
    let from = range.from.max(api_now - RETENTION + TimeDelta::minutes(1));
    let to = range.to.min(watermark? - lookback);
    (to > from).then_some(Range { from, to })
}

/// Audits `range` window by window (windows of at most `window`), listing what the store
/// lacks and, with `repair`, storing it as `audit`. `progress` shows a bar (or log lines).
pub async fn audit(
    scanner: &Scanner,
    range: Range,
    window: TimeDelta,
    repair: bool,
    progress: bool,
    shutdown: &CancellationToken,
) -> AuditReport {
    let started = Instant::now();
    let mut report = AuditReport {
        range,
        checked: None,
        windows: 0,
        requests: 0,
        fetched: 0,
        matched: 0,
        missing: Vec::new(),
        repaired: repair,
        failed: Vec::new(),
        interrupted: false,
        elapsed: Duration::ZERO,
    };
    let mut stats = ScanStats::default();
    let prepared = prepare(scanner, range, shutdown, &mut stats).await;
    report.requests = stats.requests;
    let checked = match prepared {
        Ok(checked) => checked,
        Err(ScanError::Cancelled) => {
            report.interrupted = true;
            return finish(report, started);
        }
        Err(e) => {
            report.failed.push((range, e.to_string()));
            return finish(report, started);
        }
    };
    report.checked = checked;
    let Some(checked) = checked else {
        return finish(report, started);
    };
    let windows = chunks(checked.from, checked.to, window);
    report.windows = windows.len();
    let mut progress = progress.then(|| Progress::new(windows.len() as u64, "audit"));
    let mut found = BTreeMap::new();
    for (from, to) in windows {
        let mut take = Take::Audit { repair, found: &mut found };
        let result = scanner.scan_parts(&[from, to], &mut take, shutdown, &mut stats).await;
        if interrupted(result, Range { from, to }, "audit", &mut report.failed) {
            report.interrupted = true;
            break;
        }
        if let Some(p) = &mut progress {
            p.window_done(&stats);
        }
    }
    if repair && !found.is_empty() {
        // Audit commits are not fsynced one by one (`Via::synced_per_commit`): the run
        // reports them repaired only once they are on disk.
        if let Err(e) = scanner.store.sync().await {
            report.failed.push((checked, format!("repaired but not made durable: {e}")));
        }
    }
    if let Some(p) = &progress {
        p.finish();
    }
    report.requests = stats.requests;
    report.fetched = stats.fetched;
    report.matched = stats.skipped;
    report.missing = found.into_values().collect();
    report.missing.sort_by(|a, b| (&a.created_timestamp, &a.id).cmp(&(&b.created_timestamp, &b.id)));
    finish(report, started)
}

/// Learns the API's clock (once per scanner) and the watermark, and narrows the range.
async fn prepare(
    scanner: &Scanner,
    range: Range,
    shutdown: &CancellationToken,
    stats: &mut ScanStats,
) -> Result<Option<Range>, ScanError> {
    if !scanner.clock.is_known() {
        scanner.probe_clock_counted(shutdown, stats).await?;
    }
    let watermark = scanner.store.watermark().await?.map(super::from_ms);
    Ok(checked_range(range, scanner.clock.now(), watermark, scanner.settings.lookback))
}

fn finish(mut report: AuditReport, started: Instant) -> AuditReport {
    report.elapsed = started.elapsed();
    report
}

/// The daemon's scheduled audit: a repairing audit over `audit.range` on `audit.schedule`.
///
/// It has a scanner of its own (same client, store and API clock as the poller, its own
/// health), and runs in a task of its own, so a running audit never delays a poll cycle.
/// The cron job only signals the task; a tick that comes while an audit runs is skipped
/// (logged), so only one audit runs at a time and none pile up.
pub struct Scheduled {
    schedule: String,
    scanner: Scanner,
    range: TimeDelta,
    /// The poller's leadership: in a cluster only the instance that polls audits (SPEC 13).
    leadership: tokio::sync::watch::Receiver<Option<crate::store::Epoch>>,
}

impl Scheduled {
    /// `None` when `audit.schedule` is `""` (off).
    pub fn new(config: &crate::config::Config, poller: &super::Poller) -> Option<Scheduled> {
        let schedule = config.audit.schedule.trim();
        if schedule.is_empty() {
            return None;
        }
        let p = &poller.scanner;
        let scanner = Scanner::new(
            p.client.clone(),
            p.store.clone(),
            p.settings.clone(),
            p.clock.clone(),
            Arc::new(Mutex::new(super::PollHealth::default())),
        );
        Some(Scheduled {
            schedule: schedule.to_owned(),
            scanner,
            range: config.audit.range.delta(),
            leadership: poller.leadership.clone(),
        })
    }

    /// Runs audits on the schedule until `shutdown`; an audit under way is interrupted.
    pub async fn run(self, shutdown: CancellationToken) {
        let (tick, mut ticks) = tokio::sync::mpsc::channel::<()>(1);
        let scheduler = match self.start_scheduler(tick).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(schedule = %self.schedule, error = %e, "cannot start the scheduled audit; audits run only by `cen-poller audit`");
                return;
            }
        };
        tracing::info!(schedule = %self.schedule, range = ?self.range.to_std().unwrap_or_default(), "scheduled audit on (UTC)");
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                tick = ticks.recv() => if tick.is_none() { break },
            }
            if self.leadership.borrow().is_none() {
                tracing::debug!("a scheduled audit is due; another instance polls and audits");
                continue;
            }
            self.run_once(&shutdown).await;
            // Ticks that came while this one ran are dropped, not queued.
            while ticks.try_recv().is_ok() {
                tracing::warn!("a scheduled audit was due while the previous one still ran; skipped");
            }
        }
        let mut scheduler = scheduler;
        let _ = scheduler.shutdown().await;
    }

    async fn start_scheduler(
        &self,
        tick: tokio::sync::mpsc::Sender<()>,
    ) -> Result<tokio_cron_scheduler::JobScheduler, tokio_cron_scheduler::JobSchedulerError> {
        let scheduler = tokio_cron_scheduler::JobScheduler::new().await?;
        let job = tokio_cron_scheduler::Job::new_async(self.schedule.as_str(), move |_, _| {
            let tick = tick.clone();
            Box::pin(async move {
                // Full: a tick is already waiting behind the running audit.
                let _ = tick.try_send(());
            })
        })?;
        scheduler.add(job).await?;
        scheduler.start().await?;
        Ok(scheduler)
    }

    /// One repairing audit over the last `audit.range`, counted, logged and recorded.
    pub async fn run_once(&self, shutdown: &CancellationToken) -> AuditReport {
        let now = self.scanner.clock.now();
        let range = Range { from: now - self.range, to: now - self.scanner.settings.settle };
        let report = audit(&self.scanner, range, WINDOW, true, false, shutdown).await;
        record(&self.scanner.store, &report, "daemon").await;
        let by_subject: Vec<String> = report.by_subject().iter().map(|(s, n)| format!("{s}: {n}")).collect();
        match report.outcome() {
            _ if report.interrupted => {
                tracing::info!(
                    missing = report.missing.len(),
                    "audit interrupted by the shutdown; the next one checks again"
                )
            }
            "ok" if report.checked.is_none() => {
                tracing::info!("audit: nothing to check yet (the poll has not finished a window inside the range)")
            }
            "ok" if report.missing.is_empty() => tracing::info!(
                range = %report.checked.map(|r| r.to_string()).unwrap_or_default(),
                requests = report.requests,
                "audit: nothing missing"
            ),
            "ok" => tracing::warn!(
                missing = report.missing.len(),
                requests = report.requests,
                "audit found {} notifications the sliding window missed ({}); stored and queued as received_via=audit",
                report.missing.len(),
                by_subject.join(", ")
            ),
            _ => tracing::warn!(
                missing = report.missing.len(),
                failed_windows = report.failed.len(),
                interrupted = report.interrupted,
                "audit did not finish: {} windows could not be read; found {} missing ({})",
                report.failed.len(),
                report.missing.len(),
                by_subject.join(", ")
            ),
        }
        report
    }
}

/// Counts `report` in the metrics and keeps it in the store for `status`. An audit
/// interrupted by a shutdown is neither: it proved nothing and failed at nothing.
pub async fn record(store: &StoreHandle, report: &AuditReport, by: &str) {
    if report.interrupted {
        return;
    }
    report.count(store.metrics());
    let last = report.last_audit(by);
    if let Err(e) = store.set_last_audit(last).await {
        tracing::warn!(error = %e, "cannot record the audit's outcome for `status`");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_checked_range_stays_inside_the_retention_and_before_the_polls_window() {
        let now = t("2026-11-22T12:00:00Z");
        let range = Range { from: now - RETENTION, to: now - TimeDelta::minutes(1) };
        let lookback = TimeDelta::minutes(15);
        let checked = checked_range(range, now, Some(t("2026-11-22T11:58:00Z")), lookback).unwrap();
        assert_eq!(checked.from, now - RETENTION + TimeDelta::minutes(1));
        assert_eq!(checked.to, t("2026-11-22T11:43:00Z"));
        // Before the poll has finished a window there is nothing to check.
        assert_eq!(checked_range(range, now, None, lookback), None);
        // A range entirely inside the poll's window leaves nothing.
        let recent = Range { from: t("2026-11-22T11:50:00Z"), to: t("2026-11-22T11:55:00Z") };
        assert_eq!(checked_range(recent, now, Some(t("2026-11-22T11:58:00Z")), lookback), None);
    }

    #[test]
    fn schedules_are_cron_with_seconds_or_empty() {
        for good in ["", "0 17 3 * * *", "*/10 * * * * *", "0 0 */6 * * Mon-Fri"] {
            assert!(crate::config::check_schedule(good).is_ok(), "{good}");
        }
        for bad in ["17 3 * * *", "daily", "0 61 3 * * *", "0 17 3 * * * * *"] {
            let e = crate::config::check_schedule(bad).unwrap_err().to_string();
            assert!(e.contains("cron expression with seconds"), "{bad}: {e}");
        }
    }

    #[test]
    fn outcome_and_exit_status_follow_spec_4() {
        let range = Range { from: t("2026-11-22T00:00:00Z"), to: t("2026-11-22T01:00:00Z") };
        let mut r = AuditReport {
            range,
            checked: Some(range),
            windows: 1,
            requests: 1,
            fetched: 0,
            matched: 1,
            missing: Vec::new(),
            repaired: false,
            failed: Vec::new(),
            interrupted: false,
            elapsed: Duration::ZERO,
        };
        assert_eq!((r.outcome(), r.exit_code()), ("ok", 0));
        r.missing.push(Missing { id: "a".into(), subject: "CLEARING".into(), created_timestamp: "x".into() });
        assert_eq!((r.outcome(), r.exit_code()), ("missing", 4));
        assert!(r.summary().contains("MISSING a CLEARING x"), "{}", r.summary());
        r.repaired = true;
        assert_eq!((r.outcome(), r.exit_code()), ("ok", 0));
        r.failed.push((range, "503".into()));
        assert_eq!((r.outcome(), r.exit_code()), ("failed", 3));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["missing"][0]["id"], "a");
        assert_eq!(json["failed"][0]["error"], "503");
    }

    #[test]
    fn a_report_is_counted_in_the_spec_7_metrics() {
        let range = Range { from: t("2026-11-22T00:00:00Z"), to: t("2026-11-22T01:00:00Z") };
        let missing =
            |id: &str, subject: &str| Missing { id: id.into(), subject: subject.into(), created_timestamp: "x".into() };
        let report = AuditReport {
            range,
            checked: Some(range),
            windows: 1,
            requests: 3,
            fetched: 10,
            matched: 0,
            missing: vec![missing("a", "CLEARING"), missing("b", "CLEARING"), missing("c", "PAYMENT_UPDATE")],
            repaired: true,
            failed: Vec::new(),
            interrupted: false,
            elapsed: Duration::ZERO,
        };
        let metrics = Metrics::new();
        report.count(&metrics);
        let text = metrics.encode();
        assert!(text.contains("cen_audit_runs_total{outcome=\"ok\"} 1"), "{text}");
        assert!(text.contains("cen_audit_missing_total{subject=\"CLEARING\"} 2"), "{text}");
        assert!(text.contains("cen_audit_missing_total{subject=\"PAYMENT_UPDATE\"} 1"), "{text}");
        assert!(!text.contains("cen_audit_last_success_timestamp_seconds 0"), "{text}");
        assert_eq!(report.last_audit("cli").repaired, 3);
    }
}
