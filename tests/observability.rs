//! The alert rules (packaging/prometheus) and the Grafana dashboard (packaging/grafana) use
//! only metrics a running daemon exports: a renamed metric breaks the build, not the
//! dashboard. Every runbook link of the rules points at a section the README has.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cen_poller::simulate::SimConfig;
use chrono::{TimeDelta, Utc};
use common::Env;
use tokio_util::sync::CancellationToken;

const RULES: &str = include_str!("../packaging/prometheus/cen-poller.rules.yml");
const DASHBOARD: &str = include_str!("../packaging/grafana/cen-poller.json");
const README: &str = include_str!("../README.md");

/// Every `cen_…` metric name in `text` (expressions, and any name the annotations mention).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("cen_") {
        let preceded_by_word = rest[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let len =
            tail.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        if !preceded_by_word {
            names.insert(tail[..len].to_owned());
        }
        rest = &tail[len..];
    }
    names
}

/// The sample names a scrape exports, families without samples included (a counter
/// declared as `# TYPE x counter` is exported as `x_total`).
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(decl) = line.strip_prefix("# TYPE ") {
            let mut parts = decl.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                names.insert(if kind == "counter" { format!("{name}_total") } else { name.to_owned() });
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[test]
fn the_scanners_find_names_and_only_names() {
    let names = metric_names("rate(cen_a_total{x=\"y\"}[5m]) / xcen_b + cen_c_seconds*2 cen-poller");
    assert_eq!(names.into_iter().collect::<Vec<_>>(), ["cen_a_total", "cen_c_seconds"]);
    let exported =
        exported_names("# HELP cen_x X.\n# TYPE cen_x counter\n# TYPE cen_g gauge\ncen_g 1\ncen_s{a=\"b\"} 2\n");
    assert_eq!(exported.into_iter().collect::<Vec<_>>(), ["cen_g", "cen_s", "cen_x_total"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_of_the_alert_rules_and_the_dashboard_is_exported() {
    let used: BTreeSet<String> = metric_names(RULES).into_iter().chain(metric_names(DASHBOARD)).collect();
    // A scan that found nothing would pass vacuously.
    assert!(used.len() >= 20, "only {used:?} found in the rules and the dashboard");

    let sim = SimConfig::bounded(5, Utc::now() - TimeDelta::minutes(10), 1.0, 120);
    let start = cen_poller::cen::notification::format_timestamp(Utc::now() - TimeDelta::minutes(15));
    let env = Env::start(sim, &format!("interval = \"1s\"\nsettle = \"2s\"\nfirst_start = \"{start}\"")).await;
    let shutdown = CancellationToken::new();
    let running = cen_poller::service::start(&env.config(), shutdown.clone()).await.unwrap();
    let addr = running.admin_addr;
    let t = Instant::now();
    while get(addr, "/readyz").await.0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(30), "never ready: {}", get(addr, "/readyz").await.1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, text) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    let exported = exported_names(&text);
    let missing: Vec<&String> = used.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "used by the rules or the dashboard but not exported: {missing:?}\nexported: {exported:?}"
    );

    // The two gauges the alerts read first: this instance polls, and it is ready.
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |name: &str| {
        scrape.samples.iter().find(|s| s.metric == name).map(|s| match s.value {
            prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
    };
    assert_eq!(value("cen_poll_leader"), Some(1.0));
    assert_eq!(value("cen_ready"), Some(1.0));

    shutdown.cancel();
    running.join(Duration::from_secs(10)).await;
}

#[test]
fn every_alert_has_a_runbook_section_in_the_readme() {
    // GitHub's anchor of a heading: lower case, spaces to '-', other punctuation dropped.
    let anchors: BTreeSet<String> = README
        .lines()
        .filter_map(|l| l.trim_start_matches('#').strip_prefix(' ').filter(|_| l.starts_with('#')))
        .map(|h| {
            h.to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect();
    let mut alerts = 0;
    for line in RULES.lines() {
        if line.trim_start().starts_with("- alert:") {
            alerts += 1;
        }
        if let Some(link) = line.trim().strip_prefix("runbook: \"README.md#") {
            let anchor = link.trim_end_matches('"');
            assert!(anchors.contains(anchor), "runbook README.md#{anchor}: no such section in README.md");
        }
    }
    let runbooks = RULES.matches("runbook: \"README.md#").count();
    assert!(alerts >= 14, "{alerts} alerts");
    assert_eq!(runbooks, alerts, "every alert has a runbook line");
}
