//! `cen-poller status`: what the state database says, for an operator at a terminal or a
//! script (`--json`). It opens the database read-mostly alongside a running daemon.

use std::collections::BTreeMap;

use chrono::{TimeDelta, Utc};
use serde::Serialize;

use crate::cen::notification::format_timestamp;
use crate::config::Config;
use crate::store::SOURCE_CEN;

/// Everything `status` reports.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub state: String,
    /// The poll watermark (RFC 3339), or null before the first cycle.
    pub watermark: Option<String>,
    /// Seconds between now and the watermark.
    pub lag_seconds: Option<i64>,
    pub last_24h: Counts,
    pub last_7d: Counts,
    /// Outbox rows per sink.
    pub backlog: BTreeMap<String, u64>,
    /// Dead letters per sink.
    pub dead_letters: BTreeMap<String, u64>,
    /// What the API lists and how it differs from `[[subscriptions]]` (asked of the API by
    /// `cen-poller status`; absent when not asked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriptions: Option<crate::service::subscriptions::StatusSection>,
    /// The last audit that ran to its end (SPEC 12), by the daemon or `cen-poller audit`.
    pub last_audit: Option<crate::store::LastAudit>,
    /// With `state.backend = "postgres"`: the instances seen in the last 5 minutes, the
    /// one that polls first (SPEC 13). Absent on SQLite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Vec<crate::store::Instance>>,
}

/// Notifications first seen in a period.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub total: u64,
    /// Per subject (VGS events under their event name).
    pub by_subject: BTreeMap<String, u64>,
    /// Per path that first delivered them: push, pull, backfill.
    pub by_path: BTreeMap<String, u64>,
    /// Arrived first by pull while push is configured: what push missed.
    pub recovered_by_pull: u64,
    /// Per source: mastercard-cen, vgs.
    pub by_source: BTreeMap<String, u64>,
}

/// How recently an instance must have renewed or bid for the leadership to be listed.
const CLUSTER_RECENT: std::time::Duration = std::time::Duration::from_secs(300);

/// Reads the report from the configuration's state (the SQLite file must exist).
pub async fn collect(config: &Config) -> Result<StatusReport, crate::service::Error> {
    let store = crate::service::open_existing_store(config).await?;
    let now = Utc::now();
    let mut last = Vec::with_capacity(2);
    for since in [TimeDelta::hours(24), TimeDelta::days(7)] {
        let mut c = Counts::default();
        for r in store.counts_since((now - since).timestamp_millis()).await? {
            c.total += r.n;
            *c.by_subject.entry(r.subject.clone()).or_default() += r.n;
            *c.by_path.entry(r.received_via.clone()).or_default() += r.n;
            *c.by_source.entry(r.source.clone()).or_default() += r.n;
            if r.source == SOURCE_CEN {
                c.recovered_by_pull += r.recovered;
            }
        }
        last.push(c);
    }
    let last_7d = last.pop().unwrap_or_default();
    let last_24h = last.pop().unwrap_or_default();
    let watermark = store.watermark().await?.and_then(chrono::DateTime::from_timestamp_millis);
    Ok(StatusReport {
        state: store.describe(),
        watermark: watermark.map(format_timestamp),
        lag_seconds: watermark.map(|w| (now - w).num_seconds()),
        last_24h,
        last_7d,
        backlog: store.backlog().await?.into_iter().collect(),
        dead_letters: store.dead_letter_counts().await?.into_iter().collect(),
        subscriptions: None,
        last_audit: store.last_audit().await?,
        cluster: match config.state.backend {
            crate::config::StateBackend::Sqlite => None,
            crate::config::StateBackend::Postgres => Some(store.instances(CLUSTER_RECENT).await?),
        },
    })
}

impl StatusReport {
    /// The terminal rendering.
    pub fn text(&self) -> String {
        let mut out = format!("state        {}\n", self.state);
        out.push_str(&format!(
            "watermark    {}{}\n",
            self.watermark.as_deref().unwrap_or("none yet"),
            self.lag_seconds.map(|l| format!("  (lag {l}s)")).unwrap_or_default()
        ));
        for (label, c) in [("last 24h", &self.last_24h), ("last 7d", &self.last_7d)] {
            out.push_str(&format!("{label:<12} {} notifications", c.total));
            let paths: Vec<String> = c.by_path.iter().map(|(p, n)| format!("{p} {n}")).collect();
            if !paths.is_empty() {
                out.push_str(&format!("  ({}; recovered by pull {})", paths.join(", "), c.recovered_by_pull));
            }
            out.push('\n');
            for (subject, n) in &c.by_subject {
                out.push_str(&format!("    {subject:<32} {n}\n"));
            }
        }
        out.push_str("sink backlog");
        if self.backlog.is_empty() {
            out.push_str("  none\n");
        } else {
            out.push('\n');
            for (sink, n) in &self.backlog {
                out.push_str(&format!("    {sink:<32} {n}\n"));
            }
        }
        out.push_str("dead letters");
        if self.dead_letters.is_empty() {
            out.push_str("  none\n");
        } else {
            out.push('\n');
            for (sink, n) in &self.dead_letters {
                out.push_str(&format!("    {sink:<32} {n}  (cen-poller dead-letters list --sink {sink})\n"));
            }
        }
        if let Some(instances) = &self.cluster {
            out.push_str("instances");
            if instances.is_empty() {
                out.push_str(
                    "    none seen in the last 5 minutes
",
                );
            } else {
                out.push('\n');
                for i in instances {
                    let seen = chrono::DateTime::from_timestamp_millis(i.last_seen_ms).map(format_timestamp);
                    out.push_str(&format!(
                        "    {:<32} {}last seen {}\n",
                        i.name,
                        if i.leader { "polls (leader)  " } else { "" },
                        seen.as_deref().unwrap_or("?")
                    ));
                }
            }
        }
        if let Some(s) = &self.subscriptions {
            out.push_str(&s.text());
        }
        match &self.last_audit {
            None => out.push_str("last audit   none yet\n"),
            Some(a) => out.push_str(&format!(
                "last audit   {} by {}: {} over {}, {} missing, {} repaired, {} requests\n",
                a.finished_at, a.by, a.outcome, a.range, a.missing, a.repaired, a.requests
            )),
        }
        out
    }
}
