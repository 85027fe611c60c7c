//! The daemon's watch over the subscriptions (SPEC 11), and the `status` section built on
//! the same look.
//!
//! At start and then every [`INTERVAL`] the daemon lists the subscriptions:
//! `cen_subscription_active{name,subject}` shows each one the API lists (1 active, 0
//! inactive; a deleted one's series disappears), `cen_subscriptions_drift` counts the changes
//! `subscriptions plan` would make (0 when nothing is declared), each drift is logged as a
//! warning naming the subscription and what differs, and a name in `api.subscriptions` the
//! API does not list is logged as an error: nothing will ever arrive for it. A failed look
//! is logged and tried again after [`RETRY`]. The watch never changes a subscription.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cen::client::{ApiError, Client};
use crate::cen::subscriptions::SubscriptionDetails;
use crate::config::Config;
use crate::metrics::{Metrics, SubscriptionLabels};
use crate::subscriptions::SubscriptionConfig;
use crate::subscriptions::plan::{self, Change};

/// How often the daemon looks (SPEC 11: at least hourly).
pub const INTERVAL: Duration = Duration::from_secs(3600);
/// How soon a look that failed is tried again.
pub const RETRY: Duration = Duration::from_secs(60);

/// What the watch compares: the declared set and the `api.subscriptions` filter.
#[derive(Clone)]
pub struct Watch {
    pub client: Client,
    pub declared: Vec<SubscriptionConfig>,
    pub filter: Vec<String>,
    pub metrics: Arc<Metrics>,
}

/// The result of one look.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Findings {
    /// What the API lists.
    pub subscriptions: Vec<SubscriptionDetails>,
    /// One line per drift, as `subscriptions plan` prints it.
    pub drift: Vec<String>,
    /// Names in `api.subscriptions` that the API does not list.
    pub missing_filter_names: Vec<String>,
}

/// Compares what the API lists with the configuration.
pub fn findings(list: Vec<SubscriptionDetails>, declared: &[SubscriptionConfig], filter: &[String]) -> Findings {
    let drift = plan::plan(declared, &list, false).iter().map(Change::line).collect();
    let missing_filter_names = filter.iter().filter(|n| !list.iter().any(|s| &s.name == *n)).cloned().collect();
    Findings { subscriptions: list, drift, missing_filter_names }
}

impl Watch {
    pub fn new(client: Client, config: &Config, metrics: Arc<Metrics>) -> Watch {
        Watch { client, declared: config.subscriptions.clone(), filter: config.api.subscriptions.clone(), metrics }
    }

    /// One look: lists the subscriptions, sets the metrics and logs what drifted.
    pub async fn check(&self) -> Result<Findings, ApiError> {
        let list = self.client.list_subscriptions().await?;
        let changes = plan::plan(&self.declared, &list, false);
        self.metrics.subscription_active.clear();
        for s in &list {
            let labels = SubscriptionLabels { name: s.name.clone(), subject: s.subject_type.clone() };
            self.metrics.subscription_active.get_or_create(&labels).set(i64::from(s.active));
        }
        self.metrics.subscriptions_drift.set(changes.len() as i64);
        for change in &changes {
            let name = change.name();
            match change {
                Change::Create { .. } => {
                    tracing::warn!(subscription = %name, "a declared subscription does not exist: Mastercard generates nothing for it; `cen-poller subscriptions apply` creates it");
                }
                Change::Update { desired, what, .. }
                    if desired.active && what.iter().any(|w| w.starts_with("active")) =>
                {
                    tracing::warn!(subscription = %name, differs = %what.join(", "), "a subscription declared active is inactive: Mastercard generates nothing for it; `cen-poller subscriptions apply` activates it");
                }
                Change::Update { what, .. } => {
                    tracing::warn!(subscription = %name, differs = %what.join(", "), "a subscription differs from its declaration; `cen-poller subscriptions plan` shows the change");
                }
                Change::Replace { desired, from_subject, .. } => {
                    tracing::warn!(subscription = %name, subject = %from_subject, declared = %desired.subject_type, "a subscription has another subject than declared; `cen-poller subscriptions plan` shows the change");
                }
                Change::Delete { .. } => {}
            }
        }
        let found = findings(list, &self.declared, &self.filter);
        for name in &found.missing_filter_names {
            tracing::error!(subscription = %name, "api.subscriptions names a subscription the API does not list: nothing will ever arrive for it; check the name (`cen-poller subscriptions list`)");
        }
        for s in found.subscriptions.iter().filter(|s| !s.active && self.filter.contains(&s.name)) {
            tracing::warn!(subscription = %s.name, "api.subscriptions names an inactive subscription: nothing arrives for it while it is inactive");
        }
        tracing::info!(subscriptions = found.subscriptions.len(), drift = found.drift.len(), "subscriptions checked");
        Ok(found)
    }

    /// Looks at start and every [`INTERVAL`] until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let wait = tokio::select! {
                _ = shutdown.cancelled() => return,
                result = self.check() => match result {
                    Ok(_) => INTERVAL,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot list the subscriptions; trying again in {}s", RETRY.as_secs());
                        RETRY
                    }
                },
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// The `status` section: the subscriptions the API lists and the drift, or why they could
/// not be listed.
#[derive(Debug, Serialize)]
pub struct StatusSection {
    #[serde(flatten)]
    pub findings: Findings,
    pub error: Option<String>,
}

/// Lists the subscriptions for `status` (at most 10 s, whatever `api.timeout` says: a
/// status report must not hang on an unreachable API).
pub fn status_section(config: &Config) -> StatusSection {
    let failed = |e: String| StatusSection { findings: Findings::default(), error: Some(e) };
    let mut quick = config.clone();
    quick.api.timeout = crate::units::Dur(config.api.timeout.0.min(Duration::from_secs(10)));
    let client = match quick.api_client() {
        Ok(c) => c,
        Err(e) => return failed(e.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return failed(e.to_string()),
    };
    match runtime.block_on(client.list_subscriptions()) {
        Ok(list) => {
            StatusSection { findings: findings(list, &config.subscriptions, &config.api.subscriptions), error: None }
        }
        Err(e) => failed(format!("cannot list the subscriptions: {e}")),
    }
}

impl StatusSection {
    /// The terminal rendering.
    pub fn text(&self) -> String {
        let mut out = String::from("subscriptions");
        if let Some(e) = &self.error {
            out.push_str(&format!("  {e}\n"));
            return out;
        }
        if self.findings.subscriptions.is_empty() {
            out.push_str("  none (Mastercard generates no notifications)\n");
        } else {
            out.push('\n');
            for s in &self.findings.subscriptions {
                out.push_str(&format!(
                    "    {:<32} {:<26} {}\n",
                    s.name,
                    s.subject_type,
                    if s.active { "active" } else { "INACTIVE" }
                ));
            }
        }
        for line in &self.findings.drift {
            out.push_str(&format!("    drift: {line}\n"));
        }
        for name in &self.findings.missing_filter_names {
            out.push_str(&format!("    api.subscriptions names {name:?}, which does not exist\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_names_the_api_does_not_list_are_found() {
        let list: Vec<SubscriptionDetails> = serde_json::from_str(
            r#"[{"id":"1","name":"a","subjectType":"CLEARING","active":false},{"id":"2","name":"b","subjectType":"CLEARING","active":true}]"#,
        )
        .unwrap();
        let declared: Vec<SubscriptionConfig> = vec![SubscriptionConfig {
            name: "a".into(),
            subject: "CLEARING".into(),
            active: true,
            specifications: vec![],
        }];
        let f = findings(list, &declared, &["b".into(), "c".into()]);
        assert_eq!(f.drift, ["~ update a: active false -> true"]);
        assert_eq!(f.missing_filter_names, ["c"]);
    }
}
