//! The Prometheus metrics (SPEC 7), in one registry that is passed around, never global.
//!
//! Counters are incremented where things happen: accepted notifications in the store handle
//! (one place for push, pull, backfill and VGS), cycles in the poller, deliveries in the
//! dispatchers, push and VGS requests in their endpoints. Gauges that describe the database
//! (backlog, dead letters) are refreshed from it when `/metrics` is scraped.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReceivedLabels {
    pub source: String,
    pub via: String,
    pub subject: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViaLabels {
    pub source: String,
    pub via: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubjectLabels {
    pub subject: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    pub sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriptionLabels {
    pub name: String,
    pub subject: String,
}

/// Every metric the daemon exports.
pub struct Metrics {
    pub registry: Registry,
    pub received: Family<ReceivedLabels, Counter>,
    pub duplicates: Family<ViaLabels, Counter>,
    pub recovered_by_pull: Family<SubjectLabels, Counter>,
    pub unknown_events: Family<ReceivedLabels, Counter>,
    pub poll_cycles: Family<OutcomeLabels, Counter>,
    pub poll_requests: Counter,
    pub watermark_seconds: Gauge<f64, AtomicU64>,
    pub lag_seconds: Gauge<f64, AtomicU64>,
    pub watermark_beyond_retention: Gauge,
    pub sink_delivered: Family<SinkLabels, Counter>,
    pub sink_failures: Family<SinkLabels, Counter>,
    pub sink_backlog: Family<SinkLabels, Gauge>,
    pub sink_dead_letters: Family<SinkLabels, Gauge>,
    pub push_requests: Family<CodeLabels, Counter>,
    pub vgs_requests: Family<CodeLabels, Counter>,
    pub reloads: Family<OutcomeLabels, Counter>,
    pub start_time_seconds: Gauge<f64, AtomicU64>,
    pub resident_memory_bytes: Gauge,
    /// Per subscription the API lists: 1 active, 0 inactive (set by the subscription watch).
    pub subscription_active: Family<SubscriptionLabels, Gauge>,
    /// How many changes `subscriptions plan` would make (0 when nothing is declared).
    pub subscriptions_drift: Gauge,
    /// Audits (SPEC 12) by outcome: `ok`, `missing` (found, not repaired), `failed`.
    pub audit_runs: Family<OutcomeLabels, Counter>,
    /// Notifications an audit found missing from the store, per subject.
    pub audit_missing: Family<SubjectLabels, Counter>,
    /// When an audit last ended with nothing missing or everything repaired (Unix time).
    pub audit_last_success: Gauge<f64, AtomicU64>,
    /// 1 on the instance that polls, else 0 (SPEC 7). A single SQLite instance always polls.
    pub poll_leader: Gauge,
    /// 1 when `/readyz` would answer 200, else 0; refreshed at each scrape.
    pub ready: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            received: Family::default(),
            duplicates: Family::default(),
            recovered_by_pull: Family::default(),
            unknown_events: Family::default(),
            poll_cycles: Family::default(),
            poll_requests: Counter::default(),
            watermark_seconds: Gauge::default(),
            lag_seconds: Gauge::default(),
            watermark_beyond_retention: Gauge::default(),
            sink_delivered: Family::default(),
            sink_failures: Family::default(),
            sink_backlog: Family::default(),
            sink_dead_letters: Family::default(),
            push_requests: Family::default(),
            vgs_requests: Family::default(),
            reloads: Family::default(),
            start_time_seconds: Gauge::default(),
            resident_memory_bytes: Gauge::default(),
            subscription_active: Family::default(),
            subscriptions_drift: Gauge::default(),
            audit_runs: Family::default(),
            audit_missing: Family::default(),
            audit_last_success: Gauge::default(),
            poll_leader: Gauge::default(),
            ready: Gauge::default(),
            registry: Registry::default(),
        };
        // prometheus-client appends `_total` to counters.
        registry.register(
            "cen_notifications_received",
            "New notifications stored, by source, path and subject",
            m.received.clone(),
        );
        registry.register(
            "cen_notifications_duplicate",
            "Notifications already stored when they arrived again",
            m.duplicates.clone(),
        );
        registry.register(
            "cen_notifications_recovered_by_pull",
            "Notifications that arrived first by pull while push is configured: push missed them",
            m.recovered_by_pull.clone(),
        );
        registry.register(
            "cen_notifications_unknown_event",
            "Notifications with a subject or event name not known to this version",
            m.unknown_events.clone(),
        );
        registry.register("cen_poll_cycles", "Poll cycles by outcome (ok, error, auth_error)", m.poll_cycles.clone());
        registry.register(
            "cen_poll_requests",
            "Requests made to the CEN API, retries included",
            m.poll_requests.clone(),
        );
        registry.register(
            "cen_poll_watermark_timestamp_seconds",
            "The poll watermark (Unix time)",
            m.watermark_seconds.clone(),
        );
        registry.register(
            "cen_poll_lag_seconds",
            "How far the watermark is behind the API's clock",
            m.lag_seconds.clone(),
        );
        registry.register(
            "cen_poll_watermark_beyond_retention",
            "1 while the watermark is older than the API's 7-day retention (notifications may be lost)",
            m.watermark_beyond_retention.clone(),
        );
        registry.register("cen_audit_runs", "Audits by outcome (ok, missing, failed)", m.audit_runs.clone());
        registry.register(
            "cen_audit_missing",
            "Notifications an audit found missing from the store (the sliding window missed them), per subject",
            m.audit_missing.clone(),
        );
        registry.register(
            "cen_audit_last_success_timestamp_seconds",
            "When an audit last ended with nothing missing or everything repaired (Unix time)",
            m.audit_last_success.clone(),
        );
        registry.register("cen_sink_delivered", "Notifications delivered, per sink", m.sink_delivered.clone());
        registry.register("cen_sink_failures", "Failed delivery attempts, per sink", m.sink_failures.clone());
        registry.register("cen_sink_backlog", "Notifications waiting for delivery, per sink", m.sink_backlog.clone());
        registry.register(
            "cen_sink_dead_letters",
            "Notifications a sink gave up on, per sink",
            m.sink_dead_letters.clone(),
        );
        registry.register("cen_push_requests", "Push requests by HTTP status code", m.push_requests.clone());
        registry.register("cen_vgs_requests", "VGS webhook requests by HTTP status code", m.vgs_requests.clone());
        registry.register("cen_config_reloads", "Configuration reloads (SIGHUP) by outcome", m.reloads.clone());
        registry.register(
            "cen_process_start_time_seconds",
            "Start time of the process (Unix time)",
            m.start_time_seconds.clone(),
        );
        registry.register(
            "cen_process_resident_memory_bytes",
            "Resident memory of the process",
            m.resident_memory_bytes.clone(),
        );
        registry.register(
            "cen_subscription_active",
            "Each subscription the API lists: 1 active, 0 inactive",
            m.subscription_active.clone(),
        );
        registry.register(
            "cen_subscriptions_drift",
            "How many changes `cen-poller subscriptions plan` would make (0 when none are declared)",
            m.subscriptions_drift.clone(),
        );
        registry.register("cen_poll_leader", "1 on the instance that polls, else 0", m.poll_leader.clone());
        registry.register(
            "cen_ready",
            "1 when /readyz answers 200 (the instance is making progress), else 0",
            m.ready.clone(),
        );
        m.start_time_seconds.set(chrono::Utc::now().timestamp_millis() as f64 / 1000.0);
        // Samples for the label values known up front, so every series exists (at 0) from
        // the first scrape: `rate()` and alerts need a series before its first increment.
        for subject in crate::cen::SUBJECTS {
            let _ = m.recovered_by_pull.get_or_create(&SubjectLabels { subject: subject.into() });
            let _ = m.audit_missing.get_or_create(&SubjectLabels { subject: subject.into() });
        }
        for outcome in ["ok", "missing", "failed"] {
            let _ = m.audit_runs.get_or_create(&OutcomeLabels { outcome: outcome.into() });
        }
        for via in ["push", "pull", "backfill"] {
            let _ = m.duplicates.get_or_create(&ViaLabels { source: "mastercard-cen".into(), via: via.into() });
        }
        for outcome in ["ok", "error", "auth_error"] {
            let _ = m.poll_cycles.get_or_create(&OutcomeLabels { outcome: outcome.into() });
        }
        for code in ["200", "400", "403", "413", "503"] {
            let _ = m.push_requests.get_or_create(&CodeLabels { code: code.into() });
        }
        // The alert on VGS signature failures needs the 401 series before the first one.
        for code in ["200", "400", "401"] {
            let _ = m.vgs_requests.get_or_create(&CodeLabels { code: code.into() });
        }
        Metrics { registry, ..m }
    }

    /// The counters of one sink.
    pub fn sink(&self, name: &str) -> SinkCounters {
        let l = SinkLabels { sink: name.to_owned() };
        SinkCounters {
            delivered: self.sink_delivered.get_or_create(&l).clone(),
            failures: self.sink_failures.get_or_create(&l).clone(),
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        if let Some(rss) = resident_memory() {
            self.resident_memory_bytes.set(rss as i64);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// The counters of one sink (shared handles into the registry).
#[derive(Clone, Debug, Default)]
pub struct SinkCounters {
    pub delivered: Counter,
    pub failures: Counter,
}

/// Resident set size from `/proc/self/statm`.
fn resident_memory() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
