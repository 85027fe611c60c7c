//! The CEN client against the simulator, through the OAuth signer end to end: the simulator
//! verifies every signature with the public key, pages are read with offsets, and injected
//! faults come back as typed, correctly classified errors.

use std::sync::Arc;
use std::time::Duration;

use cen_poller::cen::client::{ApiError, Client, ClientOptions, Query};
use cen_poller::cen::keys::SigningKey;
use cen_poller::cen::oauth::Signer;
use cen_poller::simulate::{self, SimConfig};
use chrono::{TimeDelta, Utc};

async fn setup(count: u64) -> (simulate::Simulator, Client, Client) {
    let key = SigningKey::generate().unwrap();
    let mut sim = SimConfig::bounded(3, Utc::now() - TimeDelta::minutes(30), 1.0, count);
    sim.public_key = Some(key.public_key_pkcs1());
    sim.consumer_key = Some("ck".into());
    let (sim, addr, _) = simulate::start(sim).await;
    let options = ClientOptions {
        base_url: format!("http://{addr}/commercial-event-notifications"),
        timeout: Duration::from_secs(5),
        extra_ca_pem: None,
        subscriptions: vec![],
        push_status: vec![],
    };
    let good = Client::new(Arc::new(Signer::new("ck", key)), options.clone()).unwrap();
    let wrong_key = Client::new(Arc::new(Signer::new("ck", SigningKey::generate().unwrap())), options).unwrap();
    (sim, good, wrong_key)
}

fn query(offset: u64, limit: u32) -> Query {
    Query { start: Utc::now() - TimeDelta::hours(1), end: Utc::now(), offset, limit, subject: None }
}

#[tokio::test]
async fn signed_requests_page_through_a_window() {
    let (sim, client, _) = setup(450).await;
    let mut ids = std::collections::BTreeSet::new();
    let mut offset = 0;
    loop {
        let page = client.notifications(&query(offset, 200)).await.unwrap();
        assert_eq!(page.total, 450);
        assert!(page.date.is_some(), "the API's clock is exposed");
        ids.extend(page.notifications.iter().map(|n| n.id.clone()));
        offset += 200;
        if offset >= page.total {
            break;
        }
    }
    assert_eq!(ids.len(), 450);
    let expected: std::collections::BTreeSet<String> =
        sim.expected_ids(Utc::now() - TimeDelta::hours(1), Utc::now()).into_iter().collect();
    assert_eq!(ids, expected, "the ids computed from the served JSON are the simulator's");
    assert_eq!(sim.stats().by_status.get(&200), Some(&3));
    // A subject filter is sent and honoured.
    let mut q = query(0, 200);
    q.subject = Some("CLEARING".into());
    let page = client.notifications(&q).await.unwrap();
    assert!(page.total > 0 && page.notifications.iter().all(|n| n.subject == "CLEARING"));
}

#[tokio::test]
async fn a_bad_signature_is_a_401_carrying_the_gateways_reason_and_base_string() {
    let (_sim, _, wrong_key) = setup(10).await;
    let e = wrong_key.notifications(&query(0, 10)).await.unwrap_err();
    assert!(e.is_auth() && !e.is_retryable());
    assert_eq!(e.reason_code(), Some("INVALID_SIGNATURE"));
    let text = e.to_string();
    assert!(text.contains("HTTP 401 INVALID_SIGNATURE") && text.contains("GET&http%3A%2F%2F127.0.0.1"), "{text}");
}

#[tokio::test]
async fn injected_faults_become_typed_retryable_errors() {
    let (sim, client, _) = setup(50).await;
    sim.fail_next(1, 503);
    let e = client.notifications(&query(0, 200)).await.unwrap_err();
    assert!(matches!(e, ApiError::Status { status: 503, .. }) && e.is_retryable(), "{e}");
    sim.rate_limit_next(1, Duration::from_secs(3));
    let e = client.notifications(&query(0, 200)).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    sim.truncate_next(1);
    let e = client.notifications(&query(0, 200)).await.unwrap_err();
    assert!(matches!(e, ApiError::Body(_)) && e.is_retryable(), "{e}");
    // And then it works again.
    assert_eq!(client.notifications(&query(0, 200)).await.unwrap().notifications.len(), 50);
}

#[tokio::test]
async fn a_slow_answer_times_out_as_a_retryable_transport_error() {
    let key = SigningKey::generate().unwrap();
    let (sim, addr, _) = simulate::start(SimConfig::bounded(4, Utc::now() - TimeDelta::minutes(5), 1.0, 5)).await;
    let client = Client::new(
        Arc::new(Signer::new("ck", key)),
        ClientOptions {
            base_url: format!("http://{addr}"),
            timeout: Duration::from_millis(300),
            extra_ca_pem: None,
            subscriptions: vec![],
            push_status: vec![],
        },
    )
    .unwrap();
    sim.slow_next(1, Duration::from_secs(3));
    let e = client.notifications(&query(0, 10)).await.unwrap_err();
    assert!(matches!(e, ApiError::Transport(_)) && e.is_retryable(), "{e}");
    assert!(e.to_string().contains("api.timeout"), "{e}");
}
