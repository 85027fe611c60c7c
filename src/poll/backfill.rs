//! `--backfill RANGE`: read a past range once, as `backfill`, without touching the
//! daemon's watermark (SPEC 4).
//!
//! It shares the daemon's scanner and store, so what is already stored is not delivered
//! again, and it may run while the daemon runs. A window that cannot be read after the
//! retries is listed in the summary and the run exits 3; the others are still read.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use tokio_util::sync::CancellationToken;

use super::range::Range;
use super::scan::{ScanError, ScanStats, Scanner, chunks};
use crate::store::Via;

/// What a backfill did.
#[derive(Debug)]
pub struct BackfillReport {
    pub range: Range,
    pub stats: ScanStats,
    pub windows: usize,
    /// Windows that could not be read, with the reason.
    pub failed: Vec<(Range, String)>,
    pub interrupted: bool,
    pub elapsed: Duration,
}

impl BackfillReport {
    /// The human summary printed at the end.
    pub fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64().max(1e-3);
        let mut out = format!(
            "backfill {}: {} windows, {} fetched, {} new, {} duplicates, {} requests in {:.1}s ({:.0} notifications/s)\n",
            self.range,
            self.windows,
            self.stats.fetched,
            self.stats.new,
            self.stats.duplicates,
            self.stats.requests,
            secs,
            self.stats.fetched as f64 / secs
        );
        for (subject, n) in &self.stats.by_subject {
            out.push_str(&format!("  new {subject:<28} {n}\n"));
        }
        if self.interrupted {
            out.push_str(
                "interrupted before the end of the range; run it again to finish (nothing is delivered twice)\n",
            );
        }
        for (range, why) in &self.failed {
            out.push_str(&format!("FAILED {range}: {why}\n"));
        }
        if !self.failed.is_empty() {
            out.push_str("run the backfill again for the failed ranges listed above\n");
        }
        out
    }

    /// 0, or 3 when part of the range could not be fetched.
    pub fn exit_code(&self) -> u8 {
        if self.failed.is_empty() && !self.interrupted { 0 } else { 3 }
    }
}

/// Reads `range` in windows of at most `max_window`, then makes what it stored durable.
pub async fn backfill(
    scanner: &Scanner,
    range: Range,
    max_window: TimeDelta,
    shutdown: &CancellationToken,
) -> BackfillReport {
    let started = Instant::now();
    let windows = chunks(range.from, range.to, max_window);
    let mut report = BackfillReport {
        range,
        stats: ScanStats::default(),
        windows: windows.len(),
        failed: Vec::new(),
        interrupted: false,
        elapsed: Duration::ZERO,
    };
    let mut progress = Progress::new(windows.len() as u64, "backfill");
    for (from, to) in windows {
        let mut stats = ScanStats::default();
        let result = scanner.scan(from, to, Via::Backfill, shutdown, &mut stats).await;
        report.stats.add(&stats);
        if interrupted(result, Range { from, to }, "backfill", &mut report.failed) {
            report.interrupted = true;
            break;
        }
        progress.window_done(&report.stats);
    }
    // The pages were committed without an fsync each (`Via::synced_per_commit`); the run
    // reports success only once they are on disk.
    if let Err(e) = scanner.store.sync().await {
        tracing::warn!(error = %e, "the backfilled notifications may not survive a power loss");
        report.failed.push((report.range, format!("committed but not made durable: {e}")));
    }
    progress.finish();
    report.elapsed = started.elapsed();
    report
}

/// One window's outcome in a run over many (backfill, audit): `true` when the run was
/// interrupted and stops; a failed window is logged and listed in `failed`, and the run
/// goes on with the next.
pub(super) fn interrupted(
    result: Result<(), ScanError>,
    window: Range,
    job: &str,
    failed: &mut Vec<(Range, String)>,
) -> bool {
    match result {
        Ok(()) => false,
        Err(ScanError::Cancelled) => true,
        Err(e) => {
            tracing::warn!(from = %window.from, to = %window.to, error = %e, "{job} window failed; going on with the next");
            failed.push((window, e.to_string()));
            false
        }
    }
}

/// A progress bar on a terminal; a log line every 10 seconds otherwise. Shared with the
/// audit.
pub(super) struct Progress {
    what: &'static str,
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
    started: Instant,
    last_log: Instant,
}

impl Progress {
    pub(super) fn new(total: u64, what: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} windows  {msg}  elapsed {elapsed}  ETA {eta}",
                )
                .expect("the template is valid"),
            );
            bar
        });
        Progress { what, bar, total, done: 0, started: Instant::now(), last_log: Instant::now() }
    }

    pub(super) fn window_done(&mut self, stats: &ScanStats) {
        self.done += 1;
        let rate = stats.fetched as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} notifications ({} new), {rate:.0}/s", stats.fetched, stats.new));
            bar.inc(1);
        } else if self.last_log.elapsed() >= Duration::from_secs(10) {
            self.last_log = Instant::now();
            tracing::info!(
                windows_done = self.done,
                windows = self.total,
                fetched = stats.fetched,
                new = stats.new,
                rate = rate as u64,
                "{} progress",
                self.what
            );
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
