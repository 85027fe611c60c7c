//! Reading one time window completely (SPEC 8).
//!
//! Invariant: a sub-window counts as read only when a single response returned all of it
//! (`total <= limit` and every item present), or — for a one-millisecond sub-window that
//! still holds more than a page — when two consecutive offset scans returned the same set of
//! ids. Anything else is split in time and read again. Every response's notifications are
//! committed as they arrive (committing is idempotent: ids dedupe), so progress survives a
//! crash mid-window.
//!
//! The walk is shared by the poll cycle, `--backfill` and the audit (`super::audit`): what
//! differs is only what happens to a response ([`Take`]): committed as `pull`/`backfill`,
//! or compared with the store and listed (and with `--repair` committed as `audit`).
//!
//! A poll cycle's window `[watermark - lookback, end)` is walked as two parts: the part
//! already read by earlier cycles, `[watermark - lookback, watermark)`, proven unchanged by
//! one count, and the new part `[watermark, end)`, read at once when its new notifications
//! fit a page ([`Scanner::scan_split`]). A steady-state cycle thus costs two requests and
//! reads each new notification about once, whatever the lookback.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use super::retry::with_retries;
use super::{ApiClock, PollHealth, PollSettings};
use crate::cen::client::{Client, Page, Query};
use crate::store::{Accepted, SOURCE_CEN, StoreError, StoreHandle, Via};

pub use super::error::{MAX_STABLE_SCANS, ScanError};

/// Counters of one scan (or one cycle, or one backfill).
#[derive(Debug, Default, Clone)]
pub struct ScanStats {
    /// API requests made, retries included.
    pub requests: u64,
    /// Notifications the API returned (duplicates included).
    pub fetched: u64,
    pub new: u64,
    pub duplicates: u64,
    /// Sub-windows skipped because the API's total equalled the stored count.
    pub skipped: u64,
    /// New notifications per subject.
    pub by_subject: BTreeMap<String, u64>,
}

impl ScanStats {
    pub fn add(&mut self, other: &ScanStats) {
        self.requests += other.requests;
        self.fetched += other.fetched;
        self.new += other.new;
        self.duplicates += other.duplicates;
        self.skipped += other.skipped;
        for (k, v) in &other.by_subject {
            *self.by_subject.entry(k.clone()).or_default() += v;
        }
    }
}

/// A notification the API has and the store lacked, found by an audit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Missing {
    pub id: String,
    pub subject: String,
    /// `createdTimestamp` exactly as the API sent it.
    pub created_timestamp: String,
}

/// What a scan does with each response.
pub enum Take<'a> {
    /// Commit it, as `pull` or `backfill` (or anything else).
    Store(Via),
    /// Audit: list what the store lacks in `found` (by id: a notification read twice is
    /// listed once) and, with `repair`, commit it as `audit`.
    Audit { repair: bool, found: &'a mut BTreeMap<String, Missing> },
}

/// Reads windows of the API into the store.
pub struct Scanner {
    pub client: Client,
    pub store: StoreHandle,
    pub settings: PollSettings,
    pub clock: Arc<ApiClock>,
    health: Arc<Mutex<PollHealth>>,
    /// Notifications per millisecond in the last sub-window whose total the API told: a
    /// guess at whether a window holds more than a page before asking.
    density: Mutex<Option<f64>>,
}

/// A sub-window still to read, in milliseconds `[start, end)`.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: i64,
    end: i64,
    /// A piece of a window that held nothing stored and into which this scan committed
    /// nothing: its stored count is known to be zero without asking (unless another process
    /// stored some meanwhile, which only costs a full read instead of a count).
    fresh: bool,
    /// The API's total for this piece, known without asking: its parent's total less its
    /// earlier sibling's (the second half of a halved piece).
    total: Option<u64>,
    /// For the first half of a halved piece: the parent's total, from which the second
    /// half's follows once this half's is known.
    parent_total: Option<u64>,
}

impl Span {
    fn new(start: i64, end: i64, fresh: bool) -> Span {
        Span { start, end, fresh, total: None, parent_total: None }
    }
}

/// The commit of one response, running while the next request is made. Commits stay one at
/// a time and in order: the next starts only after this one has finished.
type PendingCommit = tokio::task::JoinHandle<Result<Accepted, StoreError>>;

/// A request with its retries, and how many attempts it took.
type Requested = (Result<Page, ScanError>, u64);

/// What a scan has under way besides the request it is waiting for.
#[derive(Default)]
struct InFlight {
    /// The last response's commit.
    commit: Option<PendingCommit>,
    /// The full page of the next piece to read, requested before it is its turn so the API
    /// prepares it while the current one is parsed and committed. One at a time.
    prefetch: Option<(Span, tokio::task::JoinHandle<Requested>)>,
}

impl Scanner {
    pub fn new(
        client: Client,
        store: StoreHandle,
        settings: PollSettings,
        clock: Arc<ApiClock>,
        health: Arc<Mutex<PollHealth>>,
    ) -> Scanner {
        Scanner { client, store, settings, clock, health, density: Mutex::new(None) }
    }

    /// Reads `[start, end)` completely into the store, as `via`. Returns only after every
    /// response read is committed (or failed to commit). Commits by pull or backfill are
    /// not fsynced one by one (`Via::synced_per_commit`): the caller makes them durable
    /// before it relies on them (the watermark's commit, or `StoreHandle::sync`).
    pub async fn scan(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        via: Via,
        shutdown: &CancellationToken,
        stats: &mut ScanStats,
    ) -> Result<(), ScanError> {
        self.scan_parts(&[start, end], &mut Take::Store(via), shutdown, stats).await
    }

    /// [`Scanner::scan`] of `[start, end)` walked as the two parts `[start, boundary)` and
    /// `[boundary, end)` (when `boundary` lies inside): the poll cycle passes its previous
    /// end, so the part earlier cycles read costs one count while it is unchanged, and the
    /// new part is read on its own instead of being found by halving the whole window.
    pub async fn scan_split(
        &self,
        start: DateTime<Utc>,
        boundary: DateTime<Utc>,
        end: DateTime<Utc>,
        via: Via,
        shutdown: &CancellationToken,
        stats: &mut ScanStats,
    ) -> Result<(), ScanError> {
        let bounds: &[DateTime<Utc>] =
            if start < boundary && boundary < end { &[start, boundary, end] } else { &[start, end] };
        self.scan_parts(bounds, &mut Take::Store(via), shutdown, stats).await
    }

    /// Walks the consecutive parts between `bounds` (ascending), each checked, split and
    /// read on its own, doing `take` with every response.
    pub async fn scan_parts(
        &self,
        bounds: &[DateTime<Utc>],
        take: &mut Take<'_>,
        shutdown: &CancellationToken,
        stats: &mut ScanStats,
    ) -> Result<(), ScanError> {
        let mut flight = InFlight::default();
        let read = self.scan_window(bounds, take, shutdown, stats, &mut flight).await;
        // A scan that stopped early drops the read it started ahead (a finished scan has
        // none left); the commit under way is finished and counted, whatever happened.
        if let Some((_, request)) = flight.prefetch.take() {
            request.abort();
        }
        let committed = self.finish_commit(&mut flight.commit, stats).await;
        read.and(committed.map(drop))
    }

    async fn scan_window(
        &self,
        bounds: &[DateTime<Utc>],
        take: &mut Take<'_>,
        shutdown: &CancellationToken,
        stats: &mut ScanStats,
        flight: &mut InFlight,
    ) -> Result<(), ScanError> {
        let page_size = u64::from(self.settings.page_size);
        // Depth-first, earliest first: progress is committed in time order.
        let mut todo: Vec<Span> = bounds
            .windows(2)
            .rev()
            .map(|w| Span::new(w[0].timestamp_millis(), w[1].timestamp_millis(), false))
            .filter(|span| span.end > span.start)
            .collect();
        while let Some(span) = todo.pop() {
            if shutdown.is_cancelled() {
                return Err(ScanError::Cancelled);
            }
            // A piece read ahead is only ever a fresh one, read as it would be now.
            let prefetched = match flight.prefetch.take() {
                Some((ahead, request)) if ahead.start == span.start && ahead.end == span.end => Some(request),
                other => {
                    flight.prefetch = other;
                    None
                }
            };
            let stored = if self.settings.compare_counts && !span.fresh {
                // The count must include what this scan has committed so far.
                self.finish_commit(&mut flight.commit, stats).await?;
                self.store.count_created(SOURCE_CEN, span.start, span.end, self.settings.subscriptions.clone()).await?
            } else {
                0
            };
            // With something stored, ask the total first (limit=1): that is what keeps
            // re-reading the lookback cheap. With nothing stored, fetch a full page at once,
            // which also tells the total — unless the window probably holds more than a
            // page, whose first page would then be read twice: ask the total first there too.
            // A total known from the parent's and the sibling's needs no request at all.
            let mut total = span.total;
            if total == Some(stored) {
                if let Some(request) = prefetched {
                    request.abort();
                }
                stats.skipped += 1;
                continue;
            }
            if total.is_none() && prefetched.is_none() && (stored > 0 || self.likely_over(span, page_size)) {
                let probe = self.get(span, 0, 1, shutdown, stats).await?;
                self.observe_density(span, probe.total);
                tell_sibling(&mut todo, span, probe.total);
                if probe.total == stored {
                    stats.skipped += 1;
                    continue;
                }
                total = Some(probe.total);
            }
            let mut committed_here = false;
            if total.is_none_or(|t| t <= page_size) {
                // The next piece's read starts before this one is awaited.
                let next = todo.last().copied().filter(|n| n.fresh && !self.likely_over(*n, page_size));
                if let Some(next) = next
                    && flight.prefetch.is_none()
                {
                    let request = tokio::spawn(self.request(next, 0, self.settings.page_size, shutdown));
                    flight.prefetch = Some((next, request));
                }
                let requested = match prefetched {
                    Some(request) => request.await.unwrap_or_else(|e| {
                        let e = StoreError::InvalidInput { op: "read ahead", detail: format!("the task failed: {e}") };
                        (Err(ScanError::Store(e)), 0)
                    }),
                    None => self.request(span, 0, self.settings.page_size, shutdown).await,
                };
                let page = self.received(requested, stats)?;
                self.observe_density(span, page.total);
                tell_sibling(&mut todo, span, page.total);
                let complete = page.total <= page_size && page.notifications.len() as u64 == page.total;
                let page_total = page.total;
                committed_here = !page.notifications.is_empty() && take.commits();
                self.take(&mut flight.commit, page, take, stats).await?;
                if complete {
                    continue;
                }
                total = Some(page_total);
            }
            let known_total = total;
            let total = total.unwrap_or(page_size + 1);
            if span.end - span.start <= 1 {
                self.finish_commit(&mut flight.commit, stats).await?;
                self.scan_until_stable(span, take, total, shutdown, stats).await?;
                continue;
            }
            // Split. Where something is stored, halve: the new notifications are usually
            // few and in one place, and halving finds them in a few count requests. Where
            // nothing is, split into pieces of about two-thirds of a page each, assuming
            // an even spread; uneven ones get split again.
            let parts = if stored > 0 { 2 } else { (total * 3).div_ceil(page_size * 2).clamp(2, 64) as i64 };
            let parts = parts.min(span.end - span.start);
            let len = span.end - span.start;
            let fresh = stored == 0 && !committed_here && self.settings.compare_counts;
            // Push in reverse so the earliest piece is read first. Of two halves, the second's
            // total follows from the parent's and the first's: one count per level, not two.
            for i in (0..parts).rev() {
                let s = span.start + len * i / parts;
                let e = span.start + len * (i + 1) / parts;
                if e > s {
                    let mut piece = Span::new(s, e, fresh);
                    if parts == 2 && i == 0 {
                        piece.parent_total = known_total;
                    }
                    todo.push(piece);
                }
            }
        }
        Ok(())
    }

    /// Whether `span`, with nothing of it stored, probably holds more than `page_size`
    /// notifications, judging by the density of the last sub-window read.
    fn likely_over(&self, span: Span, page_size: u64) -> bool {
        let density = *self.density.lock().expect("density lock");
        density.is_some_and(|d| d * (span.end - span.start) as f64 > page_size as f64)
    }

    fn observe_density(&self, span: Span, total: u64) {
        let len = (span.end - span.start).max(1) as f64;
        *self.density.lock().expect("density lock") = Some(total as f64 / len);
    }

    /// A one-millisecond sub-window holding more than a page cannot be split further: page
    /// through it with offsets, and repeat until two consecutive scans see the same ids.
    async fn scan_until_stable(
        &self,
        span: Span,
        take: &mut Take<'_>,
        mut total: u64,
        shutdown: &CancellationToken,
        stats: &mut ScanStats,
    ) -> Result<(), ScanError> {
        let mut previous: Option<BTreeSet<String>> = None;
        for _ in 0..MAX_STABLE_SCANS {
            let mut ids = BTreeSet::new();
            let mut offset = 0u64;
            loop {
                let page = self.get(span, offset, self.settings.page_size, shutdown, stats).await?;
                total = page.total;
                let n = page.notifications.len() as u64;
                ids.extend(page.notifications.iter().map(|n| n.id.clone()));
                let mut pending = None;
                self.take(&mut pending, page, take, stats).await?;
                self.finish_commit(&mut pending, stats).await?;
                offset += u64::from(self.settings.page_size);
                if n == 0 || offset >= total {
                    break;
                }
            }
            if previous.as_ref() == Some(&ids) {
                return Ok(());
            }
            previous = Some(ids);
        }
        Err(ScanError::Unstable { at: super::from_ms(span.start), total })
    }

    /// One request, with retries; records the API's clock.
    async fn get(
        &self,
        span: Span,
        offset: u64,
        limit: u32,
        shutdown: &CancellationToken,
        stats: &mut ScanStats,
    ) -> Result<Page, ScanError> {
        let requested = self.request(span, offset, limit, shutdown).await;
        self.received(requested, stats)
    }

    /// One request with its retries, as a task of its own if need be.
    fn request(
        &self,
        span: Span,
        offset: u64,
        limit: u32,
        shutdown: &CancellationToken,
    ) -> impl Future<Output = Requested> + Send + 'static {
        let query =
            Query { start: super::from_ms(span.start), end: super::from_ms(span.end), offset, limit, subject: None };
        let (client, retry, shutdown) = (self.client.clone(), self.settings.retry.clone(), shutdown.clone());
        async move {
            let mut attempts = 0;
            let page = with_retries(&retry, &shutdown, &mut attempts, || client.notifications(&query)).await;
            (page, attempts)
        }
    }

    /// Counts a request's attempts and records the API's clock.
    fn received(&self, (page, attempts): Requested, stats: &mut ScanStats) -> Result<Page, ScanError> {
        stats.requests += attempts;
        self.store.metrics().poll_requests.inc_by(attempts);
        let page = page?;
        if let Some(date) = page.date {
            self.clock.observe(date);
        }
        Ok(page)
    }

    /// Learns the API's clock with the cheapest request there is.
    pub async fn probe_clock(&self, shutdown: &CancellationToken) -> Result<(), ScanError> {
        self.probe_clock_counted(shutdown, &mut ScanStats::default()).await
    }

    /// [`Scanner::probe_clock`], counting its request in `stats`.
    pub async fn probe_clock_counted(
        &self,
        shutdown: &CancellationToken,
        stats: &mut ScanStats,
    ) -> Result<(), ScanError> {
        let now = Utc::now().timestamp_millis();
        self.get(Span::new(now - 1, now, false), 0, 1, shutdown, stats).await.map(drop)
    }

    /// Does `take` with one response: starts its commit, or audits it.
    async fn take(
        &self,
        pending: &mut Option<PendingCommit>,
        page: Page,
        take: &mut Take<'_>,
        stats: &mut ScanStats,
    ) -> Result<(), ScanError> {
        let (repair, found) = match take {
            Take::Store(via) => return self.start_commit(pending, page, *via, stats).await,
            Take::Audit { repair, found } => (*repair, found),
        };
        let missing = |n: &crate::cen::notification::Notification| Missing {
            id: n.id.clone(),
            subject: n.subject.clone(),
            created_timestamp: n.created_raw.clone(),
        };
        if repair {
            // What the commit finds new is what the store lacked.
            let mut listed: BTreeMap<String, Missing> =
                page.notifications.iter().map(|n| (n.id.clone(), missing(n))).collect();
            self.start_commit(pending, page, Via::Audit, stats).await?;
            if let Some(accepted) = self.finish_commit(pending, stats).await? {
                for id in &accepted.new_ids {
                    if let Some(m) = listed.remove(id) {
                        found.insert(id.clone(), m);
                    }
                }
            }
            return Ok(());
        }
        // Compared with the store as it is once this scan's earlier commits are in.
        self.finish_commit(pending, stats).await?;
        stats.fetched += page.notifications.len() as u64;
        if page.notifications.is_empty() {
            return Ok(());
        }
        let keys: Vec<(i64, String)> =
            page.notifications.iter().map(|n| (n.created.timestamp_millis(), n.id.clone())).collect();
        let absent: BTreeSet<String> = self.store.absent(keys).await?.into_iter().collect();
        stats.duplicates += (page.notifications.len() - absent.len()) as u64;
        for n in page.notifications.iter().filter(|n| absent.contains(&n.id)) {
            if found.insert(n.id.clone(), missing(n)).is_none() {
                stats.new += 1;
                *stats.by_subject.entry(n.subject.clone()).or_default() += 1;
            }
        }
        Ok(())
    }

    /// Starts committing one response's notifications (one transaction), once the commit
    /// under way, if any, has finished.
    async fn start_commit(
        &self,
        pending: &mut Option<PendingCommit>,
        page: Page,
        via: Via,
        stats: &mut ScanStats,
    ) -> Result<(), ScanError> {
        self.finish_commit(pending, stats).await?;
        stats.fetched += page.notifications.len() as u64;
        if page.notifications.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let push_configured = self.settings.push_configured;
        *pending = Some(tokio::spawn(async move { store.accept(page.notifications, via, push_configured).await }));
        Ok(())
    }

    /// Waits for the commit under way, if any, counts what it did and returns it.
    async fn finish_commit(
        &self,
        pending: &mut Option<PendingCommit>,
        stats: &mut ScanStats,
    ) -> Result<Option<Accepted>, ScanError> {
        let Some(commit) = pending.take() else {
            return Ok(None);
        };
        let accepted = commit.await.map_err(|e| {
            ScanError::Store(StoreError::InvalidInput { op: "accept", detail: format!("the commit task failed: {e}") })
        })??;
        self.count_accepted(&accepted, stats);
        Ok(Some(accepted))
    }

    /// Counts what one commit did.
    fn count_accepted(&self, accepted: &Accepted, stats: &mut ScanStats) {
        stats.new += accepted.new as u64;
        stats.duplicates += accepted.duplicates as u64;
        for (subject, n) in &accepted.new_by_subject {
            *stats.by_subject.entry(subject.clone()).or_default() += *n as u64;
        }
        self.health.lock().expect("health lock").last_progress = Some(Utc::now());
    }
}

impl Take<'_> {
    /// Whether responses are committed (so a part read is no longer "nothing stored").
    fn commits(&self) -> bool {
        matches!(self, Take::Store(_) | Take::Audit { repair: true, .. })
    }
}

/// Once the first half of a halved piece has learned its total, the second half — next on
/// the stack, starting where the first ends — knows its own: the parent's less this one's.
/// Totals may change between requests; a deduced one is as old as the parent's count, so a
/// notification that appears meanwhile is left to the next cycle's count, as one appearing
/// just after a count always is.
fn tell_sibling(todo: &mut [Span], span: Span, total: u64) {
    if let (Some(parent), Some(next)) = (span.parent_total, todo.last_mut())
        && next.start == span.end
    {
        next.total = parent.checked_sub(total);
    }
}

/// `[start, end)` split into consecutive pieces of at most `max` (the catch-up and backfill
/// windows).
pub fn chunks(start: DateTime<Utc>, end: DateTime<Utc>, max: TimeDelta) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Vec::new();
    let mut s = start;
    while s < end {
        let e = end.min(s + max);
        out.push((s, e));
        s = e;
    }
    out
}
