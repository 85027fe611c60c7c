//! The CEN simulator over HTTP: what a poller sees (SPEC 9/10).
//!
//! Every test starts its own simulator on `127.0.0.1:0`. Streams are placed in the past so
//! their content does not depend on when the test runs; where time matters, the
//! simulator's clock skew moves "now" instead of the test sleeping.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cen_poller::cen::id::notification_id;
use cen_poller::cen::keys::SigningKey;
use cen_poller::cen::notification::format_timestamp;
use cen_poller::cen::oauth::{self, Signer, encode_query_value};
use cen_poller::simulate::{ItemKey, PushTarget, SUBJECTS, SimConfig, Simulator, start, subscription_name};
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

const BASE: &str = "/commercial-event-notifications";

/// A bounded stream of `count` notifications, `rate` per second, starting `ago` before now
/// (whole seconds, so printed times are readable).
fn past_stream(seed: u64, ago: TimeDelta, rate: f64, count: u64) -> SimConfig {
    let start = (Utc::now() - ago).duration_trunc(TimeDelta::seconds(1)).unwrap();
    SimConfig::bounded(seed, start, rate, count)
}

fn enc(t: DateTime<Utc>) -> String {
    encode_query_value(&format_timestamp(t))
}

fn url(addr: SocketAddr, start: DateTime<Utc>, end: DateTime<Utc>, extra: &str) -> String {
    format!("http://{addr}{BASE}/notifications?start={}&end={}{extra}", enc(start), enc(end))
}

async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let r = client.get(url).send().await.expect("request");
    let status = r.status();
    let headers = r.headers().clone();
    (status, headers, r.text().await.expect("body"))
}

async fn get_json(client: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let (status, headers, body) = get(client, url).await;
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.contains_key("date"));
    (status, serde_json::from_str(&body).expect("JSON body"))
}

fn ids(page: &Value) -> Vec<String> {
    page["notifications"].as_array().unwrap().iter().map(|n| notification_id(n).unwrap()).collect()
}

/// The whole window read page by page with offset/limit (the naive scan).
async fn scan(
    client: &reqwest::Client,
    addr: SocketAddr,
    s: DateTime<Utc>,
    e: DateTime<Utc>,
    limit: u64,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let (status, page) = get_json(client, &url(addr, s, e, &format!("&offset={offset}&limit={limit}"))).await;
        assert_eq!(status, 200);
        out.extend(ids(&page));
        offset += limit;
        if offset >= page["total"].as_u64().unwrap() {
            return out;
        }
    }
}

fn error_of(body: &Value) -> &Value {
    &body["Errors"]["Error"][0]
}

#[tokio::test]
async fn same_seed_gives_the_same_notifications_and_ids() {
    let config = past_stream(42, TimeDelta::hours(2), 2.0, 300);
    let (a, addr_a, _) = start(config.clone()).await;
    let (b, addr_b, _) = start(config.clone()).await;
    let (c, addr_c, _) = start(SimConfig { seed: 43, ..config.clone() }).await;
    let (s, e) = (config.stream_start, config.stream_start + TimeDelta::hours(1));
    let client = reqwest::Client::new();
    let (_, _, body_a) = get(&client, &url(addr_a, s, e, "&limit=1000")).await;
    let (_, _, body_b) = get(&client, &url(addr_b, s, e, "&limit=1000")).await;
    let (_, _, body_c) = get(&client, &url(addr_c, s, e, "&limit=1000")).await;
    assert_eq!(body_a, body_b);
    assert_ne!(body_a, body_c);
    let page: Value = serde_json::from_str(&body_a).unwrap();
    assert_eq!(page["total"], 300);
    assert_eq!(page["count"], 300);
    // The ids the simulator promises are the ids of what it serves, all different.
    let served = ids(&page);
    assert_eq!(served, a.expected_ids(s, e));
    assert_eq!(a.expected_ids(s, e), b.expected_ids(s, e));
    assert_eq!(served.iter().collect::<BTreeSet<_>>().len(), 300);
    let other: BTreeSet<String> = c.expected_ids(s, e).into_iter().collect();
    assert!(served.iter().all(|id| !other.contains(id)));
    // All seven subjects, each under its own subscription; token events carry an
    // idempotency key; nothing pushed, so NOT_APPLICABLE.
    let mut subjects = BTreeSet::new();
    for n in page["notifications"].as_array().unwrap() {
        let subject = n["subject"].as_str().unwrap();
        subjects.insert(subject.to_owned());
        let k = SUBJECTS.iter().position(|s| *s == subject).unwrap();
        assert_eq!(n["subscriptionName"], subscription_name(k));
        assert_eq!(n["pushStatus"], "NOT_APPLICABLE");
        assert_eq!(n.get("idempotencyKey").is_some(), subject.starts_with("TOKEN_"));
    }
    assert_eq!(subjects.len(), 7);
}

#[tokio::test]
async fn windows_include_start_and_exclude_end() {
    let config = past_stream(1, TimeDelta::hours(1), 2.0, 100);
    let (sim, addr, _) = start(config).await;
    let client = reqwest::Client::new();
    let t = sim.created_at(50);
    let ms = TimeDelta::milliseconds(1);
    let count = |s, e| {
        let client = client.clone();
        async move {
            let (status, page) = get_json(&client, &url(addr, s, e, "&limit=1")).await;
            assert_eq!(status, 200);
            page["total"].as_u64().unwrap()
        }
    };
    assert_eq!(count(t, t + ms).await, 1);
    assert_eq!(count(t - TimeDelta::seconds(10), t).await, sim.visible_count(t - TimeDelta::seconds(10), t));
    assert_eq!(count(sim.created_at(49) + ms, t).await, 0);
    assert_eq!(count(t, t).await, 0);
    assert_eq!(count(sim.created_at(0), sim.created_at(99)).await, 99);
    assert_eq!(count(sim.created_at(0), sim.created_at(99) + ms).await, 100);
    // Sub-millisecond bounds: `created >= start` means from the next whole millisecond.
    let micro = TimeDelta::microseconds(1);
    let us = |t: DateTime<Utc>| encode_query_value(&t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    let q = |s, e| format!("http://{addr}{BASE}/notifications?start={}&end={}&limit=1", us(s), us(e));
    let (_, page) = get_json(&client, &q(t - micro, t + micro)).await;
    assert_eq!(page["total"], 1);
    let (_, page) = get_json(&client, &q(t + micro, t + ms)).await;
    assert_eq!(page["total"], 0);
}

#[tokio::test]
async fn paging_covers_the_window_exactly_once_in_a_stable_order() {
    // 5000 per second: several notifications share each millisecond.
    let config = past_stream(5, TimeDelta::hours(1), 5000.0, 3000);
    let (sim, addr, _) = start(config.clone()).await;
    let client = reqwest::Client::new();
    let (s, e) = (config.stream_start, config.stream_start + TimeDelta::seconds(1));
    let expected = sim.expected_ids(s, e);
    assert_eq!(expected.len(), 3000);
    for limit in [1000, 333, 50] {
        let got = scan(&client, addr, s, e, limit).await;
        assert_eq!(got, expected, "limit {limit}");
    }
    let (_, page) = get_json(&client, &url(addr, s, e, "&offset=10&limit=5")).await;
    assert_eq!((page["count"].as_u64(), page["offset"].as_u64(), page["limit"].as_u64()), (Some(5), Some(10), Some(5)));
    assert_eq!(ids(&page), expected[10..15]);
    // Past the end: an empty page, the same total.
    let far = expected.len() + 5;
    let (_, page) = get_json(&client, &url(addr, s, e, &format!("&offset={far}"))).await;
    assert_eq!(page["count"], 0);
    assert_eq!(page["total"].as_u64(), Some(expected.len() as u64));
    // A one-millisecond window with more than a page in it pages the same way.
    let t = sim.created_at(2000);
    let one_ms = sim.expected_ids(t, t + TimeDelta::milliseconds(1));
    assert!(one_ms.len() >= 2, "{}", one_ms.len());
    assert_eq!(scan(&client, addr, t, t + TimeDelta::milliseconds(1), 1).await, one_ms);
}

#[tokio::test]
async fn limit_defaults_to_200_and_is_capped() {
    let config = SimConfig { max_limit: 500, ..past_stream(2, TimeDelta::hours(2), 1.0, 2000) };
    let (_sim, addr, _) = start(config.clone()).await;
    let client = reqwest::Client::new();
    let (s, e) = (config.stream_start, Utc::now());
    let (_, page) = get_json(&client, &url(addr, s, e, "")).await;
    assert_eq!(
        (page["count"].as_u64(), page["limit"].as_u64(), page["total"].as_u64()),
        (Some(200), Some(200), Some(2000))
    );
    let (_, page) = get_json(&client, &url(addr, s, e, "&limit=5000")).await;
    assert_eq!((page["count"].as_u64(), page["limit"].as_u64()), (Some(500), Some(500)));
}

#[tokio::test]
async fn count_queries_are_answered_with_one_item_and_counted() {
    let config = past_stream(3, TimeDelta::hours(3), 1.0, 5000);
    let (sim, addr, _) = start(config.clone()).await;
    let client = reqwest::Client::new();
    let (s, e) = (config.stream_start + TimeDelta::minutes(10), config.stream_start + TimeDelta::minutes(70));
    let (status, page) = get_json(&client, &url(addr, s, e, "&limit=1")).await;
    assert_eq!(status, 200);
    assert_eq!(page["count"], 1);
    assert_eq!(page["total"].as_u64(), Some(3600));
    let stats = sim.stats();
    assert_eq!((stats.count_queries, stats.page_requests, stats.notifications_served), (1, 0, 1));
    assert_eq!(stats.by_status.get(&200), Some(&1));
    sim.reset_stats();
    assert_eq!(sim.stats().requests, 0);
}

#[tokio::test]
async fn filters_select_by_subject_subscription_and_push_status() {
    let config = past_stream(4, TimeDelta::hours(1), 5.0, 700);
    let (sim, addr, _) = start(config.clone()).await;
    let client = reqwest::Client::new();
    let (s, e) = (config.stream_start, Utc::now());
    let all = sim.items(s, e);
    let of = |subjects: &[&str]| {
        all.iter().filter(|i| subjects.contains(&i.subject.as_str())).map(|i| i.id.clone()).collect::<Vec<_>>()
    };

    let (_, page) = get_json(&client, &url(addr, s, e, "&subject=CLEARING&limit=1000")).await;
    assert_eq!(ids(&page), of(&["CLEARING"]));
    assert!(page["notifications"].as_array().unwrap().iter().all(|n| n["subject"] == "CLEARING"));

    let (_, page) =
        get_json(&client, &url(addr, s, e, "&subscription_name=sim-clearing%2Csim-bpc-clearing&limit=1000")).await;
    assert_eq!(ids(&page), of(&["CLEARING", "BPC_CLEARING"]));
    // Both filters: the intersection.
    let (_, page) = get_json(&client, &url(addr, s, e, "&subscription_name=sim-clearing&subject=BPC_CLEARING")).await;
    assert_eq!(page["total"], 0);
    let (_, page) = get_json(&client, &url(addr, s, e, "&subscription_name=nobody")).await;
    assert_eq!(page["total"], 0);
    let (_, page) = get_json(&client, &url(addr, s, e, "&subject=SOMETHING_NEW")).await;
    assert_eq!(page["total"], 0);

    let (_, page) = get_json(&client, &url(addr, s, e, "&push_status=NOT_APPLICABLE&limit=1")).await;
    assert_eq!(page["total"].as_u64(), Some(700));
    let (_, page) = get_json(&client, &url(addr, s, e, "&push_status=DELIVERED%2CFAILED")).await;
    assert_eq!(page["total"], 0);

    // Inserted notifications are filtered by their own fields.
    let created = sim.created_at(10) + TimeDelta::milliseconds(1);
    sim.insert(
        json!({"subject": "SOMETHING_NEW", "subscriptionName": "mine",
        "createdTimestamp": format_timestamp(created), "content": {"k": 1}}),
        Utc::now(),
    )
    .unwrap();
    let (_, page) = get_json(&client, &url(addr, s, e, "&subject=SOMETHING_NEW")).await;
    assert_eq!(page["total"], 1);
    let (_, page) = get_json(&client, &url(addr, s, e, "&subscription_name=mine%2Csim-clearing&limit=1000")).await;
    assert_eq!(page["total"].as_u64(), Some(of(&["CLEARING"]).len() as u64 + 1));
}

#[tokio::test]
async fn bad_requests_get_the_error_envelope_never_a_panic() {
    let (sim, addr, _) = start(past_stream(1, TimeDelta::hours(1), 1.0, 10)).await;
    let client = reqwest::Client::new();
    let n = format!("http://{addr}{BASE}/notifications");
    for query in [
        "",
        "?end=2026-01-01T00%3A00%3A00Z",
        "?start=2026-01-01T00%3A00%3A00Z",
        "?start=tomorrow&end=2026-01-01T00%3A00%3A00Z",
        "?start=2026-01-02T00%3A00%3A00Z&end=2026-01-01T00%3A00%3A00Z",
        "?start=2026-01-01T00%3A00%3A00Z&end=2026-01-02T00%3A00%3A00Z&limit=0",
        "?start=2026-01-01T00%3A00%3A00Z&end=2026-01-02T00%3A00%3A00Z&limit=ten",
        "?start=2026-01-01T00%3A00%3A00Z&end=2026-01-02T00%3A00%3A00Z&offset=-1",
        "?start=2026-01-01T00%3A00%3A00Z&end=2026-01-02T00%3A00%3A00Z&offset=99999999999999999999999",
        "?start=2026-01-01T00%3A00%3A00Z&end=2026-01-02T00%3A00%3A00Z&push_status=SENT",
        "?start=%E0%A4&end=2026-01-02T00%3A00%3A00Z",
        "?start=%&end=%%%",
        "?start=2026-01-01T00:00:00+00:00&end=2026-01-02T00%3A00%3A00Z",
    ] {
        let (status, body) = get_json(&client, &format!("{n}{query}")).await;
        assert_eq!(status, 400, "{query}");
        let e = error_of(&body);
        assert_eq!(e["Source"], "cen-simulator");
        assert_eq!(e["ReasonCode"], "INVALID_REQUEST_PARAMETER");
        assert_eq!(e["Recoverable"], false);
        assert!(e["Description"].as_str().unwrap().len() > 10);
        assert!(e.get("Details").unwrap().is_null());
    }
    let (status, body) = get_json(&client, &format!("http://{addr}{BASE}/elsewhere")).await;
    assert_eq!(status, 404);
    assert_eq!(error_of(&body)["ReasonCode"], "RESOURCE_NOT_FOUND");
    let r = client.post(format!("{n}?start=x")).body("[]").send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(sim.stats().by_status.get(&400), Some(&13));
    assert_eq!(sim.stats().notification_requests, 0);
}

#[tokio::test]
async fn subscriptions_lists_the_seven_subscriptions() {
    let (_sim, addr, _) = start(past_stream(1, TimeDelta::hours(1), 1.0, 10)).await;
    let (status, body) = get_json(&reqwest::Client::new(), &format!("http://{addr}{BASE}/subscriptions")).await;
    assert_eq!(status, 200);
    let list = body.as_array().unwrap();
    assert_eq!(list.len(), 7);
    // Sorted by name, the API's default order.
    let names: Vec<&str> = list.iter().map(|s| s["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for (k, subject) in SUBJECTS.iter().enumerate() {
        let s = list.iter().find(|s| s["name"] == subscription_name(k)).unwrap();
        assert_eq!(s["subjectType"], *subject);
        assert_eq!(s["active"], true);
        assert!(s["id"].as_str().unwrap().len() > 20);
        assert!(s["specifications"].is_array());
    }
}

#[tokio::test]
async fn the_date_header_is_the_simulators_clock_and_the_clock_decides_what_exists() {
    // A stream that starts in 30 minutes: nothing exists yet by the real clock.
    let config = past_stream(6, TimeDelta::minutes(-30), 1.0, 100);
    let (sim, addr, _) = start(config.clone()).await;
    let client = reqwest::Client::new();
    let (s, e) = (config.stream_start, config.stream_start + TimeDelta::hours(1));
    let (_, headers, body) = get(&client, &url(addr, s, e, "&limit=1")).await;
    let date = |h: &reqwest::header::HeaderMap| {
        DateTime::parse_from_rfc2822(h["date"].to_str().unwrap()).unwrap().with_timezone(&Utc)
    };
    assert!((date(&headers) - Utc::now()).num_seconds().abs() <= 2);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["total"], 0);

    sim.set_clock_skew(3_600_000);
    let (_, headers, body) = get(&client, &url(addr, s, e, "&limit=1")).await;
    let ahead = date(&headers) - Utc::now();
    assert!((ahead - TimeDelta::hours(1)).num_seconds().abs() <= 2, "{ahead}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["total"], 100);
    assert!((sim.now() - Utc::now() - TimeDelta::hours(1)).num_seconds().abs() <= 1);
    // Errors carry it too.
    let (status, headers, _) = get(&client, &format!("http://{addr}{BASE}/notifications")).await;
    assert_eq!(status, 400);
    assert!((date(&headers) - Utc::now() - TimeDelta::hours(1)).num_seconds().abs() <= 2);
}

#[tokio::test]
async fn a_live_stream_keeps_creating_notifications_as_the_clock_passes() {
    let config = SimConfig::live(8, 2.0, Duration::from_secs(600));
    let (sim, addr, _) = start(config.clone()).await;
    let client = reqwest::Client::new();
    let (s, e) = (config.stream_start, config.stream_start + TimeDelta::hours(1));
    let (_, page) = get_json(&client, &url(addr, s, e, "&limit=1")).await;
    let now_total = page["total"].as_u64().unwrap();
    assert!((1195..=1205).contains(&now_total), "{now_total}");
    sim.set_clock_skew(60_000);
    let (_, page) = get_json(&client, &url(addr, s, e, "&limit=1")).await;
    let later = page["total"].as_u64().unwrap();
    assert!(later.abs_diff(now_total).abs_diff(120) <= 5, "{now_total} → {later}");
}

#[tokio::test]
async fn injected_5xx_429_slow_and_truncated_answers() {
    let config = past_stream(7, TimeDelta::hours(1), 1.0, 50);
    let (sim, addr, _) = start(config.clone()).await;
    let client = reqwest::Client::new();
    let u = url(addr, config.stream_start, Utc::now(), "");

    sim.fail_next(2, 503);
    sim.rate_limit_next(1, Duration::from_millis(2500));
    for _ in 0..2 {
        let (status, body) = get_json(&client, &u).await;
        assert_eq!(status, 503);
        assert_eq!(error_of(&body)["Recoverable"], true);
    }
    let (status, headers, body) = get(&client, &u).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "3");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error_of(&body)["Recoverable"], true);
    assert_eq!(get_json(&client, &u).await.0, 200);

    sim.slow_next(1, Duration::from_millis(300));
    let t0 = Instant::now();
    assert_eq!(get_json(&client, &u).await.0, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));

    sim.truncate_next(1);
    let (status, headers, body) = get(&client, &u).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert!(body.starts_with("{\"count\":50,"));
    assert!(serde_json::from_str::<Value>(&body).is_err());
    assert_eq!(get_json(&client, &u).await.0, 200);

    sim.fail_next(5, 500);
    sim.clear_faults();
    assert_eq!(get_json(&client, &u).await.0, 200);
    let stats = sim.stats();
    assert_eq!(stats.faults_injected, 5);
    assert_eq!(stats.by_status.get(&503), Some(&2));
    assert_eq!(stats.by_status.get(&429), Some(&1));
}

#[tokio::test]
async fn probabilistic_faults_from_the_configuration() {
    let mut config = past_stream(7, TimeDelta::hours(1), 1.0, 50);
    config.faults.error_rate = 0.3;
    config.faults.truncate_rate = 0.3;
    let (sim, addr, _) = start(config.clone()).await;
    let client = reqwest::Client::new();
    let u = url(addr, config.stream_start, Utc::now(), "");
    let mut broken = 0;
    for _ in 0..60 {
        let (status, _, body) = get(&client, &u).await;
        if status != 200 || serde_json::from_str::<Value>(&body).is_err() {
            broken += 1;
        }
    }
    assert!((15..55).contains(&broken), "{broken}");
    assert_eq!(sim.stats().faults_injected, broken);
}

fn oauth_config(public_key: Vec<u8>) -> SimConfig {
    SimConfig {
        public_key: Some(public_key),
        consumer_key: Some("ck-sim-test".into()),
        ..past_stream(9, TimeDelta::hours(1), 1.0, 20)
    }
}

#[tokio::test]
async fn oauth_signed_requests_pass_and_every_flaw_gets_its_gateway_reason() {
    let key = SigningKey::generate().unwrap();
    let config = oauth_config(key.public_key_pkcs1());
    let (sim, addr, _) = start(config.clone()).await;
    let signer = Signer::new("ck-sim-test", key);
    let client = reqwest::Client::new();
    let u = url(
        addr,
        config.stream_start,
        config.stream_start + TimeDelta::hours(1),
        "&limit=5&subscription_name=sim-clearing%2Csim-bpc-clearing",
    );
    let send = |url: String, auth: Option<String>| {
        let client = client.clone();
        async move {
            let mut r = client.get(&url);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            let r = r.send().await.unwrap();
            let status = r.status();
            (status, serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap())
        }
    };

    let signed = signer.sign("GET", &u, b"").unwrap();
    let (status, body) = send(u.clone(), Some(signed.authorization.clone())).await;
    assert_eq!(status, 200, "{body}");
    // The same works for subscriptions.
    let su = format!("http://{addr}{BASE}/subscriptions");
    let (status, _) = send(su.clone(), Some(signer.sign("GET", &su, b"").unwrap().authorization)).await;
    assert_eq!(status, 200);

    // Tampered: signed for limit=5, sent with limit=6.
    let tampered = u.replace("limit=5", "limit=6");
    let (status, body) = send(tampered.clone(), Some(signed.authorization.clone())).await;
    assert_eq!(status, 401);
    let e = error_of(&body);
    assert_eq!((e["Source"].as_str(), e["ReasonCode"].as_str()), (Some("Gateway"), Some("INVALID_SIGNATURE")));
    assert_eq!(e["Recoverable"], false);
    let params = signer.params(b"", None, None);
    let header_params = oauth::parse_authorization(&signed.authorization).unwrap();
    let get_param = |k: &str| header_params.iter().find(|(n, _)| n == k).unwrap().1.clone();
    let sent_params = oauth::OAuthParams {
        nonce: get_param("oauth_nonce"),
        timestamp: get_param("oauth_timestamp").parse().unwrap(),
        ..params
    };
    let expected_base = oauth::base_string("GET", &tampered, &sent_params).unwrap();
    let description = e["Description"].as_str().unwrap();
    assert!(description.contains(&expected_base), "{description}");
    assert!(description.contains("limit%3D6"));

    let (status, body) = send(u.clone(), None).await;
    assert_eq!((status.as_u16(), error_of(&body)["ReasonCode"].as_str()), (401, Some("INVALID_AUTH_HEADER")));
    let (status, body) = send(u.clone(), Some("Bearer abc".into())).await;
    assert_eq!((status.as_u16(), error_of(&body)["ReasonCode"].as_str()), (401, Some("INVALID_AUTH_HEADER")));
    let with_body = signer.sign("GET", &u, b"{}").unwrap();
    let (status, body) = send(u.clone(), Some(with_body.authorization)).await;
    assert_eq!((status.as_u16(), error_of(&body)["ReasonCode"].as_str()), (401, Some("INVALID_BODY_HASH")));
    let stranger = Signer::new("someone-else", SigningKey::generate().unwrap());
    let (status, body) = send(u.clone(), Some(stranger.sign("GET", &u, b"").unwrap().authorization)).await;
    assert_eq!((status.as_u16(), error_of(&body)["ReasonCode"].as_str()), (401, Some("INVALID_CLIENT_ID")));
    // The right consumer key with another RSA key: a bad signature.
    let impostor = Signer::new("ck-sim-test", SigningKey::generate().unwrap());
    let (status, body) = send(u.clone(), Some(impostor.sign("GET", &u, b"").unwrap().authorization)).await;
    assert_eq!((status.as_u16(), error_of(&body)["ReasonCode"].as_str()), (401, Some("INVALID_SIGNATURE")));
    assert_eq!(sim.stats().notification_requests, 1);
}

#[tokio::test]
async fn the_auth_failure_switch_refuses_everything_until_cleared() {
    let (sim, addr, _) = start(past_stream(1, TimeDelta::hours(1), 1.0, 10)).await;
    let client = reqwest::Client::new();
    let u = url(addr, Utc::now() - TimeDelta::hours(2), Utc::now(), "");
    sim.set_auth_failure(Some((401, "INVALID_SIGNATURE")));
    let (status, body) = get_json(&client, &u).await;
    assert_eq!(status, 401);
    assert_eq!(
        (error_of(&body)["Source"].as_str(), error_of(&body)["ReasonCode"].as_str()),
        (Some("Gateway"), Some("INVALID_SIGNATURE"))
    );
    sim.set_auth_failure(Some((403, "PERMISSION_DENIED")));
    let (status, body) = get_json(&client, &format!("http://{addr}{BASE}/subscriptions")).await;
    assert_eq!((status.as_u16(), error_of(&body)["ReasonCode"].as_str()), (403, Some("PERMISSION_DENIED")));
    sim.set_auth_failure(None);
    let (status, body) = get_json(&client, &u).await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 10);
}

#[tokio::test]
async fn the_public_key_flag_takes_a_pem_public_key() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: cen_poller::simulate::SimulateArgs,
    }
    let key = SigningKey::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("public.pem");
    std::fs::write(&path, key.public_key_pem()).unwrap();
    let cli =
        Cli::try_parse_from(["simulate", "--public-key", path.to_str().unwrap(), "--consumer-key", "ck"]).unwrap();
    let config = cli.args.to_config().unwrap();
    assert_eq!(config.public_key.as_deref(), Some(key.public_key_pkcs1().as_slice()));
    let missing = Cli::try_parse_from(["simulate", "--public-key", "/nonexistent/key.pem"]).unwrap();
    assert!(missing.args.to_config().is_err());
}

#[tokio::test]
async fn notifications_older_than_retention_are_gone() {
    let config = SimConfig { retention: Duration::from_secs(3600), ..past_stream(10, TimeDelta::hours(2), 1.0, 7200) };
    let (sim, addr, _) = start(config.clone()).await;
    let client = reqwest::Client::new();
    let (_, page) =
        get_json(&client, &url(addr, config.stream_start, Utc::now() + TimeDelta::hours(1), "&limit=1")).await;
    let total = page["total"].as_u64().unwrap();
    assert!((3595..=3600).contains(&total), "{total}");
    // (Computing thousands of ids takes a while in a debug build: take "now" first.)
    let before = sim.now();
    let items = sim.items(config.stream_start, Utc::now());
    let oldest = items.first().unwrap().created;
    assert!(oldest > before - TimeDelta::hours(1));
    assert!(sim.expected_ids(config.stream_start, sim.now() - TimeDelta::hours(1)).is_empty());
    // An hour later, all of it has expired.
    sim.set_clock_skew(3_600_000);
    let (_, page) =
        get_json(&client, &url(addr, config.stream_start, Utc::now() + TimeDelta::hours(1), "&limit=1")).await;
    assert_eq!(page["total"], 0);
}

#[tokio::test]
async fn late_notifications_appear_after_their_creation() {
    let config = SimConfig {
        late_fraction: 0.3,
        late_by: Duration::from_secs(600),
        ..past_stream(11, TimeDelta::minutes(5), 1.0, 300)
    };
    let (sim, addr, _) = start(config.clone()).await;
    let client = reqwest::Client::new();
    let (s, e) = (config.stream_start, config.stream_start + TimeDelta::hours(1));
    let (_, page) = get_json(&client, &url(addr, s, e, "&limit=1000")).await;
    let now_total = page["total"].as_u64().unwrap();
    // About 30 % are still invisible; which ones is fixed by the seed.
    assert!((150..260).contains(&now_total), "{now_total}");
    let visible: BTreeSet<String> = ids(&page).into_iter().collect();
    sim.set_clock_skew(15 * 60_000);
    let (_, page) = get_json(&client, &url(addr, s, e, "&limit=1000")).await;
    assert_eq!(page["total"], 300);
    let all: BTreeSet<String> = ids(&page).into_iter().collect();
    assert!(visible.is_subset(&all));
    // The late ones were created inside the window already read.
    let late: Vec<&Value> = page["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| !visible.contains(&notification_id(n).unwrap()))
        .collect();
    assert_eq!(late.len() as u64, 300 - now_total);
}

#[tokio::test]
async fn a_hook_can_expire_and_insert_during_a_scan_so_offsets_skip_one() {
    let config = past_stream(12, TimeDelta::hours(1), 1.0, 30);
    let (sim, addr, _) = start(config.clone()).await;
    let client = reqwest::Client::new();
    let (s, e) = (config.stream_start, config.stream_start + TimeDelta::minutes(10));
    let before = sim.items(s, e);
    assert_eq!(before.len(), 30);
    let first = before[0].key;
    let newcomer = json!({
        "subject": "CLEARING", "subscriptionName": "sim-clearing",
        "createdTimestamp": format_timestamp(sim.created_at(29) + TimeDelta::milliseconds(5)),
        "content": {"clearingTransactionId": 424242, "note": "inserted during the scan"},
    });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    sim.set_request_hook(move |info, sim| {
        log.lock().unwrap().push((info.number, info.offset, info.limit));
        if info.number == 2 {
            assert!(sim.expire(first));
            sim.insert(newcomer.clone(), sim.now()).unwrap();
        }
    });
    let scanned = scan(&client, addr, s, e, 10).await;
    assert_eq!(*seen.lock().unwrap(), [(1, 0, 10), (2, 10, 10), (3, 20, 10)]);
    // Thirty ids read, total never changed, and yet one notification was skipped.
    assert_eq!(scanned.len(), 30);
    let after: BTreeSet<String> = sim.expected_ids(s, e).into_iter().collect();
    let read: BTreeSet<String> = scanned.into_iter().collect();
    let missed: Vec<&String> = after.difference(&read).collect();
    assert_eq!(missed, [&before[10].id]);
    assert!(read.contains(&before[0].id) && !after.contains(&before[0].id));
    sim.clear_request_hook();
    // Expire by id works for generated and inserted notifications alike.
    assert!(sim.expire_id(&before[5].id));
    assert!(!sim.expire_id(&before[5].id));
    let inserted = sim
        .insert(
            json!({"subject": "X", "createdTimestamp": format_timestamp(s + TimeDelta::seconds(1)), "content": {}}),
            sim.now(),
        )
        .unwrap();
    assert_eq!(inserted.key, ItemKey::Inserted(1));
    assert_eq!(sim.visible_count(s, e), 30);
    assert!(sim.expire_id(&inserted.id));
    assert_eq!(sim.visible_count(s, e), 29);
    // Inserts must be notifications.
    assert!(sim.insert(json!({"subject": "X"}), sim.now()).is_err());
}

#[tokio::test]
async fn churn_keeps_total_while_the_window_changes() {
    let mut config = past_stream(13, TimeDelta::hours(1), 1.0, 100);
    config.faults.churn = 1.0;
    let (sim, addr, _) = start(config.clone()).await;
    let client = reqwest::Client::new();
    let (s, e) = (config.stream_start, Utc::now());
    let before: BTreeSet<String> = sim.expected_ids(s, e).into_iter().collect();
    let mut totals = BTreeSet::new();
    for offset in [0, 20, 40, 60, 80] {
        let (_, page) = get_json(&client, &url(addr, s, e, &format!("&offset={offset}&limit=20"))).await;
        totals.insert(page["total"].as_u64().unwrap());
    }
    assert_eq!(totals.into_iter().collect::<Vec<_>>(), [100]);
    assert_eq!(sim.stats().churned, 4);
    let after: BTreeSet<String> = sim.expected_ids(s, e).into_iter().collect();
    assert_eq!(after.len(), 100);
    // Four went (a churned-in notification may itself have been churned out again).
    assert!((1..=4).contains(&before.difference(&after).count()));
}

#[tokio::test]
async fn a_million_notifications_over_seven_days_answer_an_hour_count_quickly() {
    let end = Utc::now() - TimeDelta::minutes(1);
    let config = SimConfig::spread(14, 1_000_000, end - TimeDelta::days(7) + TimeDelta::minutes(2), end);
    let (sim, addr, _) = start(config).await;
    let client = reqwest::Client::new();
    let s = end - TimeDelta::hours(30);
    let t0 = Instant::now();
    let (status, page) = get_json(&client, &url(addr, s, s + TimeDelta::hours(1), "&limit=1")).await;
    let elapsed = t0.elapsed();
    assert_eq!(status, 200);
    let total = page["total"].as_u64().unwrap();
    assert!((5900..6000).contains(&total), "{total}");
    let stats = sim.stats();
    assert!(stats.items_scanned < 100, "{}", stats.items_scanned);
    assert_eq!(stats.items_rendered, 1);
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    // The whole seven days count the same way.
    let (_, page) = get_json(&client, &url(addr, end - TimeDelta::days(8), end, "&limit=1")).await;
    assert_eq!(page["total"], 1_000_000);
    // A deep page is found without walking the stream.
    let (_, page) = get_json(&client, &url(addr, end - TimeDelta::days(8), end, "&offset=999000&limit=1000")).await;
    assert_eq!(page["count"], 1000);
    // The thousand served items are checked one by one; the 999 000 before them are not.
    assert!(sim.stats().items_scanned < 2000, "{}", sim.stats().items_scanned);
}

// ---- push over mTLS ----

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all PEM.
struct Pki {
    ca_pem: String,
    server_cert: rustls_pki_types::CertificateDer<'static>,
    server_key: rustls_pki_types::PrivateKeyDer<'static>,
    client_cert_pem: String,
    client_key_pem: String,
}

fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "cen-poller test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(vec!["push-client.test".to_owned()]).unwrap();
    client.distinguished_name.push(DnType::CommonName, "push-client.test");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();

    Pki {
        ca_pem: ca_cert.pem(),
        server_cert: server_cert.der().clone(),
        server_key: rustls_pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        client_cert_pem: client_cert.pem(),
        client_key_pem: client_key.serialize_pem(),
    }
}

/// What the test push endpoint saw.
#[derive(Default)]
struct Received {
    /// Every notification of every accepted request, in arrival order.
    items: Vec<Value>,
    requests: usize,
    /// TLS connections whose client presented a certificate.
    client_certs: usize,
}

/// An HTTPS endpoint that requires a client certificate from `pki`'s CA, records what is
/// POSTed, and answers 500 to the first `fail_first` requests.
async fn push_endpoint(pki: &Pki, fail_first: usize) -> (SocketAddr, Arc<Mutex<Received>>) {
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use rustls::server::WebPkiClientVerifier;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server_cert.clone()], pki.server_key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Received::default()));
    let failures = Arc::new(AtomicUsize::new(fail_first));
    let rec = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let rec = rec.clone();
            let failures = failures.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if tls.get_ref().1.peer_certificates().is_some_and(|c| !c.is_empty()) {
                    rec.lock().unwrap().client_certs += 1;
                }
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let rec = rec.clone();
                    let failures = failures.clone();
                    async move {
                        let body =
                            axum::body::to_bytes(axum::body::Body::new(req.into_body()), usize::MAX).await.unwrap();
                        let fail =
                            failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                        let status = if fail {
                            500
                        } else {
                            let items: Vec<Value> = serde_json::from_slice(&body).unwrap();
                            let mut r = rec.lock().unwrap();
                            r.requests += 1;
                            r.items.extend(items);
                            200
                        };
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .body(axum::body::Body::from("{\"status\":\"ok\"}"))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
            });
        }
    });
    (addr, received)
}

use rustls_pki_types::pem::PemObject as _;

fn push_target(pki: &Pki, addr: SocketAddr) -> PushTarget {
    PushTarget {
        client_cert_pem: Some(pki.client_cert_pem.clone()),
        client_key_pem: Some(pki.client_key_pem.clone()),
        ca_pem: Some(pki.ca_pem.clone()),
        retry_delay: Duration::from_millis(10),
        ..PushTarget::new(format!("https://127.0.0.1:{}/notifications", addr.port()))
    }
}

#[tokio::test]
async fn push_delivers_over_mtls_with_drops_duplicates_and_retries() {
    let pki = pki();
    let (endpoint, received) = push_endpoint(&pki, 2).await;
    let target = PushTarget {
        drop_fraction: 0.2,
        duplicate_fraction: 0.1,
        batch_size: 10,
        max_attempts: 3,
        ..push_target(&pki, endpoint)
    };
    let config = SimConfig { push: Some(target), ..past_stream(15, TimeDelta::hours(1), 1.0, 200) };
    let (sim, addr, _) = start(config.clone()).await;
    tokio::time::timeout(Duration::from_secs(60), sim.wait_push_done()).await.expect("push finishes");

    let stats = sim.stats();
    let r = std::mem::take(&mut *received.lock().unwrap());
    assert!(r.client_certs >= 1);
    assert!(r.items.iter().all(|n| n["pushStatus"] == "PENDING"));
    // Several notifications per request.
    assert!(r.requests * 3 < r.items.len(), "{} requests for {} items", r.requests, r.items.len());
    let mut times: HashMap<String, usize> = HashMap::new();
    for n in &r.items {
        *times.entry(notification_id(n).unwrap()).or_default() += 1;
    }
    let pushed: BTreeSet<String> = times.keys().cloned().collect();
    let twice = times.values().filter(|&&n| n == 2).count();
    assert!(times.values().all(|&n| n <= 2));
    assert_eq!(twice as u64, stats.push_duplicated);
    assert!(stats.push_duplicated > 0);
    assert_eq!(pushed.len() as u64, stats.pushed);
    assert!((20..65).contains(&stats.push_dropped), "{}", stats.push_dropped);
    assert_eq!(stats.pushed + stats.push_dropped, 200);
    assert_eq!(stats.push_failed, 0);
    assert_eq!(stats.push_retries, 2);

    // The pull side: delivered ones say DELIVERED, dropped ones FAILED — exactly the ones
    // push never sent, which only pull can recover.
    let client = reqwest::Client::new();
    let (s, e) = (config.stream_start, Utc::now());
    let (_, page) = get_json(&client, &url(addr, s, e, "&push_status=FAILED&limit=1000")).await;
    let failed: BTreeSet<String> = ids(&page).into_iter().collect();
    assert_eq!(failed.len() as u64, stats.push_dropped);
    assert!(failed.is_disjoint(&pushed));
    let all: BTreeSet<String> = sim.expected_ids(s, e).into_iter().collect();
    assert_eq!(&pushed | &failed, all);
    let (_, page) = get_json(&client, &url(addr, s, e, "&push_status=DELIVERED&limit=1")).await;
    assert_eq!(page["total"].as_u64(), Some(stats.pushed));
    let (_, page) = get_json(&client, &url(addr, s, e, "&push_status=PENDING%2CNOT_APPLICABLE&limit=1")).await;
    assert_eq!(page["total"], 0);
}

#[tokio::test]
async fn push_gives_up_after_max_attempts_and_marks_failed() {
    let pki = pki();
    let (endpoint, received) = push_endpoint(&pki, usize::MAX).await;
    let target = PushTarget { batch_size: 5, max_attempts: 2, ..push_target(&pki, endpoint) };
    let config = SimConfig { push: Some(target), ..past_stream(16, TimeDelta::hours(1), 1.0, 12) };
    let (sim, addr, _) = start(config.clone()).await;
    tokio::time::timeout(Duration::from_secs(60), sim.wait_push_done()).await.expect("push finishes");
    let stats = sim.stats();
    assert_eq!((stats.pushed, stats.push_failed, stats.push_requests), (0, 12, 6));
    assert!(received.lock().unwrap().items.is_empty());
    let (_, page) =
        get_json(&reqwest::Client::new(), &url(addr, config.stream_start, Utc::now(), "&push_status=FAILED&limit=1"))
            .await;
    assert_eq!(page["total"], 12);
}

#[tokio::test]
async fn push_refuses_an_untrusted_server_and_a_lone_certificate() {
    let pki = pki();
    let other = self::pki();
    let (endpoint, received) = push_endpoint(&pki, 0).await;
    // The client trusts another CA: TLS fails, every attempt is a failure.
    let target = PushTarget { ca_pem: Some(other.ca_pem.clone()), max_attempts: 1, ..push_target(&pki, endpoint) };
    let config = SimConfig { push: Some(target), ..past_stream(17, TimeDelta::hours(1), 1.0, 3) };
    let (sim, _, _) = start(config).await;
    tokio::time::timeout(Duration::from_secs(60), sim.wait_push_done()).await.expect("push finishes");
    assert_eq!(sim.stats().push_failed, 3);
    assert!(received.lock().unwrap().items.is_empty());

    let lone = PushTarget { client_key_pem: None, ..push_target(&pki, endpoint) };
    let config = SimConfig { push: Some(lone), ..past_stream(17, TimeDelta::hours(1), 1.0, 3) };
    assert!(Simulator::try_new(config).is_err());
}

#[tokio::test]
async fn stop_ends_serving() {
    let (sim, _addr, handle) = start(past_stream(1, TimeDelta::hours(1), 1.0, 10)).await;
    sim.stop();
    let result = tokio::time::timeout(Duration::from_secs(10), handle).await.expect("stops");
    assert!(result.unwrap().is_ok());
}
