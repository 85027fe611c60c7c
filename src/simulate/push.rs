//! The pusher: sends the generated notifications to a push endpoint as Mastercard does
//! (SPEC 9/10) — a `POST` of a bare JSON array, several notifications per request, over
//! mutual TLS — as they become visible.
//!
//! It walks the stream in index order (`PushState::scan`); a late notification is held back
//! until it becomes visible. A deterministic `drop_fraction` is never sent (the pull copy
//! then says `FAILED`); a `duplicate_fraction` of delivered ones is sent again in a later
//! request; a request answered with anything but 200 is retried up to `max_attempts`, then
//! its notifications are `FAILED`. Only one request is in flight at a time.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::generate::{SALT_DUPLICATE, unit};
use super::{PushTarget, SimError, Simulator, lock};

/// Longest pause between two looks for new work when nothing is due.
const IDLE_MAX: Duration = Duration::from_millis(250);
/// At most this many items are examined per batch, so the state lock is held briefly even
/// when nearly everything is dropped.
const SCAN_STEP: u32 = 10_000;

/// The HTTP client for `target`: its client certificate, and only its CA when given.
pub(crate) fn build_client(target: &PushTarget) -> Result<reqwest::Client, SimError> {
    let err = |m: String| SimError::Push(m);
    let mut builder = reqwest::Client::builder().timeout(target.timeout).pool_max_idle_per_host(2);
    match (&target.client_cert_pem, &target.client_key_pem) {
        (Some(cert), Some(key)) => {
            let pem = format!("{cert}\n{key}");
            let identity = reqwest::Identity::from_pem(pem.as_bytes())
                .map_err(|e| err(format!("client certificate or key: {e}")))?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => {
            return Err(err("a client certificate needs its key and vice versa".into()));
        }
    }
    if let Some(ca) = &target.ca_pem {
        let certs =
            reqwest::Certificate::from_pem_bundle(ca.as_bytes()).map_err(|e| err(format!("CA certificate: {e}")))?;
        if certs.is_empty() {
            return Err(err("the CA file holds no certificate".into()));
        }
        builder = builder.tls_certs_only(certs);
    }
    builder.build().map_err(|e| err(format!("cannot build the HTTP client: {e}")))
}

/// One request's worth of work.
struct Batch {
    /// First deliveries (they are in `inflight`).
    items: Vec<u64>,
    /// Second deliveries of already delivered items.
    duplicates: Vec<u64>,
    /// Nothing left to do, ever (bounded stream fully handled).
    done: bool,
    /// When new work may be due (Unix ms), if known.
    next_due_ms: Option<i64>,
}

/// Takes the next batch from the stream, under the state lock.
fn next_batch(sim: &Simulator, size: usize, drop_fraction: f64) -> Batch {
    let inner = &sim.inner;
    let stream = &inner.stream;
    let now = sim.now_ms();
    let oldest = now.saturating_sub(inner.retention_ms).saturating_add(1);
    let mut state = lock(&inner.state);
    let state = &mut *state;
    let push = &mut state.push;
    let mut dropped = 0u64;

    let mut duplicates = Vec::new();
    while duplicates.len() < size {
        match push.duplicates.pop_front() {
            Some(i) => duplicates.push(i),
            None => break,
        }
    }
    let mut items = Vec::new();
    let ready: Vec<u64> =
        push.deferred.iter().copied().filter(|&i| stream.visible_at_ms(i) <= now).take(size).collect();
    for i in ready {
        push.deferred.remove(&i);
        if !state.expired.contains(&i)
            && stream.created_ms(i) >= oldest
            && !state.gaps.covers(stream.subject(i), stream.created_ms(i))
        {
            push.inflight.insert(i);
            items.push(i);
        }
    }
    // Items older than retention can no longer be pushed: skip them all at once.
    if push.scan < stream.end_index() && stream.created_ms(push.scan) < oldest {
        push.scan = push.scan.max(stream.first_at_or_after(oldest));
    }
    let mut examined = 0;
    while items.len() + duplicates.len() < size && examined < SCAN_STEP {
        let i = push.scan;
        if i >= stream.end_index() || stream.created_ms(i) > now {
            break;
        }
        push.scan += 1;
        examined += 1;
        // Expired, or never generated (its subscription was off when it was created).
        if state.expired.contains(&i) || state.gaps.covers(stream.subject(i), stream.created_ms(i)) {
            continue;
        }
        if drop_fraction > 0.0 && unit(stream.seed, i, super::generate::SALT_DROP) < drop_fraction {
            dropped += 1;
            continue;
        }
        if stream.visible_at_ms(i) > now {
            push.deferred.insert(i);
            continue;
        }
        push.inflight.insert(i);
        items.push(i);
    }
    let done = items.is_empty()
        && duplicates.is_empty()
        && push.scan >= stream.end_index()
        && push.deferred.is_empty()
        && push.inflight.is_empty()
        && push.duplicates.is_empty();
    let next_scan = (push.scan < stream.end_index()).then(|| stream.created_ms(push.scan));
    let next_deferred = push.deferred.iter().map(|&i| stream.visible_at_ms(i)).min();
    let next_due_ms = match (next_scan, next_deferred) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if dropped > 0 {
        lock(&inner.stats).push_dropped += dropped;
    }
    Batch { items, duplicates, done, next_due_ms }
}

/// Records the outcome of a batch.
fn finish(sim: &Simulator, batch: &Batch, delivered: bool, duplicate_fraction: f64) {
    let inner = &sim.inner;
    let mut state = lock(&inner.state);
    let push = &mut state.push;
    for &i in &batch.items {
        push.inflight.remove(&i);
        if !delivered {
            push.failed.insert(i);
        } else if duplicate_fraction > 0.0 && unit(inner.stream.seed, i, SALT_DUPLICATE) < duplicate_fraction {
            push.duplicates.push_back(i);
        }
    }
    drop(state);
    let mut stats = lock(&inner.stats);
    if delivered {
        stats.pushed += batch.items.len() as u64;
        stats.push_duplicated += batch.duplicates.len() as u64;
    } else {
        stats.push_failed += batch.items.len() as u64;
    }
}

/// Sends `body` until a 200 or `max_attempts`; `None` when stopped meanwhile.
async fn send(
    sim: &Simulator,
    target: &PushTarget,
    client: &reqwest::Client,
    body: String,
    stop: &CancellationToken,
) -> Option<bool> {
    for attempt in 0..target.max_attempts {
        if attempt > 0 {
            let delay = target.retry_delay.saturating_mul(1 << (attempt - 1).min(16)).min(Duration::from_secs(5));
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        {
            let mut stats = lock(&sim.inner.stats);
            stats.push_requests += 1;
            if attempt > 0 {
                stats.push_retries += 1;
            }
        }
        let request = client
            .post(&target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send();
        let outcome = tokio::select! {
            _ = stop.cancelled() => return None,
            r = request => r,
        };
        match outcome {
            Ok(r) if r.status() == reqwest::StatusCode::OK => return Some(true),
            Ok(r) => tracing::debug!(status = %r.status(), attempt, "push refused"),
            Err(e) => tracing::debug!(error = %e, attempt, "push failed"),
        }
    }
    Some(false)
}

/// The pusher's loop; ends when `stop` is cancelled.
pub(crate) async fn run(sim: Simulator, target: PushTarget, client: reqwest::Client, stop: CancellationToken) {
    let size = target.batch_size.max(1);
    loop {
        if stop.is_cancelled() {
            return;
        }
        let batch = next_batch(&sim, size, target.drop_fraction);
        sim.inner.push_done.send_if_modified(|d| {
            let changed = *d != batch.done;
            *d = batch.done;
            changed
        });
        if batch.items.is_empty() && batch.duplicates.is_empty() {
            let wait = batch
                .next_due_ms
                .map(|due| Duration::from_millis((due - sim.now_ms()).clamp(1, 250) as u64))
                .unwrap_or(IDLE_MAX);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        let mut body = String::with_capacity(2 + (batch.items.len() + batch.duplicates.len()) * 1800);
        body.push('[');
        for (n, &i) in batch.items.iter().chain(&batch.duplicates).enumerate() {
            if n > 0 {
                body.push(',');
            }
            sim.inner.stream.write_item(i, Some("PENDING"), &mut body);
        }
        body.push(']');
        let Some(delivered) = send(&sim, &target, &client, body, &stop).await else {
            return;
        };
        finish(&sim, &batch, delivered, target.duplicate_fraction);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::SimConfig;
    use chrono::{TimeDelta, Utc};

    #[test]
    fn late_items_wait_until_visible_and_drops_are_never_sent() {
        let config = SimConfig {
            late_fraction: 0.25,
            late_by: Duration::from_secs(3600),
            push: Some(PushTarget { drop_fraction: 0.1, ..PushTarget::new("http://127.0.0.1:9/notifications") }),
            ..SimConfig::bounded(21, Utc::now() - TimeDelta::minutes(10), 1.0, 100)
        };
        let sim = Simulator::new(config);
        let status = |i| sim.with_view(|v| v.gen_push_status(i));
        let mut sent = Vec::new();
        loop {
            let batch = next_batch(&sim, 10, 0.1);
            if batch.items.is_empty() {
                assert!(!batch.done, "late items are still waiting");
                break;
            }
            assert!(batch.items.iter().all(|&i| status(i) == "PENDING"));
            finish(&sim, &batch, true, 0.0);
            sent.extend(batch.items);
        }
        let stream = &sim.inner.stream;
        let late: Vec<u64> = (0..100).filter(|&i| stream.is_late(i)).collect();
        assert!(!late.is_empty());
        let is_dropped = |i: u64| sim.with_view(|v| v.dropped(i));
        for &i in &late {
            assert!(!sent.contains(&i));
            let want = if is_dropped(i) { "FAILED" } else { "PENDING" };
            assert_eq!(status(i), want, "late item {i}");
        }
        let dropped = sim.stats().push_dropped;
        assert!(dropped > 0);
        let waiting = late.iter().filter(|&&i| !is_dropped(i)).count() as u64;
        assert_eq!(sent.len() as u64 + dropped + waiting, 100);
        assert!(sent.iter().all(|&i| status(i) == "DELIVERED"));

        // An hour later the late ones are visible and go out; then the stream is done.
        sim.set_clock_skew(3_600_000);
        let mut late_sent = Vec::new();
        loop {
            let batch = next_batch(&sim, 10, 0.1);
            if batch.items.is_empty() {
                assert!(batch.done);
                break;
            }
            finish(&sim, &batch, true, 0.0);
            late_sent.extend(batch.items);
        }
        late_sent.sort_unstable();
        let late_kept: Vec<u64> = late.iter().copied().filter(|&i| !is_dropped(i)).collect();
        assert_eq!(late_sent, late_kept);
        assert_eq!(sim.stats().pushed + sim.stats().push_dropped, 100);
        assert!((0..100).all(|i| matches!(status(i), "DELIVERED" | "FAILED")));
    }
}
