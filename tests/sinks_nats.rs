//! The `nats` sink against a real `nats-server -js` started for each test (see
//! `common/servers.rs`): the stream it creates (1-hour duplicate window, `cen.>`), subjects
//! from the template, the warning for an existing stream with a short window, a server that
//! is down then up, repeats dropped by `Nats-Msg-Id`, and the daemon killed with SIGKILL in
//! the middle of publishing. Waits poll for an outcome with a deadline.

mod common;
#[path = "common/servers.rs"]
mod servers;

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use cen_poller::cen::notification::format_timestamp;
use cen_poller::simulate::SimConfig;
use cen_poller::sinks::nats::NatsSink;
use cen_poller::sinks::{Record, Sink, SinkError};
use chrono::{TimeDelta, Utc};
use common::Env;
use futures::StreamExt;
use servers::NatsServer;

fn poll_settings(first_start_ago: TimeDelta) -> String {
    let start = format_timestamp(Utc::now() - first_start_ago);
    format!("interval = \"1s\"\nsettle = \"5s\"\nfirst_start = \"{start}\"")
}

fn bus_sink(name: &str, nats: &NatsServer, stream: &str, subject: &str) -> String {
    format!(
        "[[sinks]]\nname = \"{name}\"\ntype = \"nats\"\nurl = \"{}\"\nstream = \"{stream}\"\nsubject = \"{subject}\"\n",
        nats.url()
    )
}

/// One message read back from a stream.
struct Stored {
    subject: String,
    msg_id: String,
    record: serde_json::Value,
}

/// Every message of `stream`, read with an ephemeral consumer.
async fn read_stream(js: &jetstream::Context, stream: &str) -> Vec<Stored> {
    let mut stream = js.get_stream(stream).await.unwrap();
    let total = stream.info().await.unwrap().state.messages as usize;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::None,
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap_or_else(|_| panic!("read {} of {total} messages, then nothing", out.len()))
            .unwrap()
            .unwrap();
        let msg_id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        out.push(Stored {
            subject: message.subject.to_string(),
            msg_id,
            record: serde_json::from_slice(&message.payload).unwrap(),
        });
    }
    out
}

async fn message_count(js: &jetstream::Context, stream: &str) -> u64 {
    match js.get_stream(stream).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Ids among `messages`, with how often each occurs.
fn ids(messages: &[Stored]) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for m in messages {
        *ids.entry(m.msg_id.clone()).or_default() += 1;
    }
    ids
}

fn leased(i: usize) -> Record {
    let id = format!("{i:064x}");
    Record {
        id: id.clone(),
        subject: if i.is_multiple_of(2) { "CLEARING".into() } else { "cmp_au_card.updated".into() },
        created_raw: "2026-11-22T10:00:00.640Z".into(),
        received_via: "pull".into(),
        record: format!(r#"{{"id":"{id}","n":{i}}}"#),
    }
}

/// A `--backfill` creates stream `CEN` with subjects `cen.>` and a 1-hour duplicate window,
/// and publishes every notification once to `cen.<subject>` with `Nats-Msg-Id` = id. A
/// second sink on a stream the operator made with the default 2-minute window delivers too,
/// with a warning that names it; its subjects follow a longer template.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_created_with_a_1h_window_and_subjects_follow_the_template() {
    let nats = tokio::task::block_in_place(NatsServer::start);
    let js = nats.jetstream().await;
    js.create_stream(jetstream::stream::Config {
        name: "OPS".into(),
        subjects: vec!["ops.>".into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .unwrap();
    let now = Utc::now();
    let sim = SimConfig::bounded(61, now - TimeDelta::minutes(30), 0.5, 300);
    let extra = format!(
        "{}\n{}",
        bus_sink("bus", &nats, "CEN", "cen.{subject}"),
        bus_sink("ops", &nats, "OPS", "ops.cards.{subject}.v1")
    );
    let env = Env::start_with(sim, &poll_settings(TimeDelta::minutes(15)), &extra).await;
    let items = env.sim.items(now - TimeDelta::hours(1), Utc::now());
    assert_eq!(items.len(), 300);

    let out = env.run(&["--backfill", "1h"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> =
        stderr.lines().filter(|l| l.contains("duplicate window is shorter than 1 hour")).collect();
    assert_eq!(warnings.len(), 1, "one warning, for the operator's stream:\n{stderr}");
    assert!(
        warnings[0].contains("ops") && warnings[0].contains("OPS") && warnings[0].contains("1h"),
        "{}",
        warnings[0]
    );

    let mut cen = js.get_stream("CEN").await.unwrap();
    let info = cen.info().await.unwrap().clone();
    assert_eq!(info.config.duplicate_window, Duration::from_secs(3600));
    assert_eq!(info.config.subjects, ["cen.>"]);
    assert_eq!(info.state.messages, 300);

    let subjects: BTreeMap<&str, &str> = items.iter().map(|i| (i.id.as_str(), i.subject.as_str())).collect();
    for (stream, prefix, suffix) in [("CEN", "cen.", ""), ("OPS", "ops.cards.", ".v1")] {
        let messages = read_stream(&js, stream).await;
        let expected: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
        common::assert_exactly_once(&ids(&messages), &expected);
        for m in &messages {
            assert_eq!(m.record["id"], m.msg_id.as_str(), "{stream}: Nats-Msg-Id is the record's id");
            let subject = subjects[m.msg_id.as_str()];
            assert_eq!(m.record["subject"], subject);
            assert_eq!(m.subject, format!("{prefix}{subject}{suffix}"), "{stream}");
        }
    }
}

/// The sink itself: a server that is down makes every record retryable (with the URL, not
/// credentials, in the message); once it is up the batch goes through, and the same batch
/// again is acknowledged as duplicates and stored once. VGS event names become one token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_then_up_and_repeats_are_stored_once() {
    let port = servers::free_port();
    let url = format!("nats://cen:s3cret@127.0.0.1:{port}");
    let sink = NatsSink::new("bus", &url, "CEN", "cen.{subject}").unwrap();
    let batch: Vec<Record> = (0..50).map(leased).collect();
    let outcomes = sink.deliver(&batch).await;
    assert_eq!(outcomes.len(), 50);
    for o in &outcomes {
        let Err(SinkError::Retryable(e)) = o else { panic!("{o:?}") };
        assert!(e.contains("nats sink bus") && e.contains(&format!("nats://127.0.0.1:{port}")), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    // The same port, no authentication configured: the URL's credentials are simply sent.
    let nats = tokio::task::block_in_place(|| {
        let mut n = NatsServer::start();
        n.stop();
        n.port = port;
        n.start_again();
        n
    });
    let outcomes = sink.deliver(&batch).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let outcomes = sink.deliver(&batch[10..30]).await;
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let js = nats.jetstream().await;
    let messages = read_stream(&js, "CEN").await;
    assert_eq!(messages.len(), 50, "repeats are dropped by Nats-Msg-Id");
    assert_eq!(messages[1].subject, "cen.cmp_au_card_updated");
    assert_eq!(messages[2].subject, "cen.CLEARING");
    drop(js);

    // The server goes away while connected: the batch is retryable (no ack in time); once
    // the server is back, the client reconnects by itself and the retry goes through. What
    // the client had buffered meanwhile may reach the stream too: still stored once.
    let mut nats = nats;
    tokio::task::block_in_place(|| nats.stop());
    let more: Vec<Record> = (50..60).map(leased).collect();
    let outcomes = sink.deliver(&more).await;
    assert!(outcomes.iter().all(|o| matches!(o, Err(SinkError::Retryable(_)))), "{outcomes:?}");
    tokio::task::block_in_place(|| nats.start_again());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let outcomes = sink.deliver(&more).await;
        if outcomes.iter().all(Result::is_ok) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still failing after the server came back: {outcomes:?}");
    }
    let js = nats.jetstream().await;
    assert_eq!(ids(&read_stream(&js, "CEN").await).len(), 60);
    assert_eq!(message_count(&js, "CEN").await, 60);
}

/// SIGKILL while the daemon publishes (as soon as the stream has grown past a mark), three
/// times, then a restart: the stream holds every notification exactly once. Publishes that
/// were acknowledged by JetStream but not yet in the state database are sent again after the
/// restart and dropped by the duplicate window (G2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_id_is_in_the_stream_once_after_sigkill_and_restart() {
    const TOTAL: u64 = 20_000;
    let nats = tokio::task::block_in_place(NatsServer::start);
    let js = nats.jetstream().await;
    let now = Utc::now();
    let sim = SimConfig::spread(62, TOTAL, now - TimeDelta::minutes(50), now - TimeDelta::minutes(1));
    let env =
        Env::start_with(sim, &poll_settings(TimeDelta::hours(1)), &bus_sink("bus", &nats, "CEN", "cen.{subject}"))
            .await;
    let expected = env.sim.expected_ids(now - TimeDelta::hours(2), Utc::now());
    assert_eq!(expected.len() as u64, TOTAL);

    for (k, mark) in [TOTAL / 10, TOTAL / 3, 2 * TOTAL / 3].into_iter().enumerate() {
        let mut daemon = env.spawn_daemon();
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let count = message_count(&js, "CEN").await;
            if count > mark {
                break;
            }
            if let Some(status) = daemon.exited() {
                panic!("the daemon exited by itself ({status}):\n{}", env.log_tail(30));
            }
            assert!(std::time::Instant::now() < deadline, "the stream stays at {count}:\n{}", env.log_tail(30));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        daemon.kill9().await;
        println!("kill {}: stream at {} of {TOTAL}", k + 1, message_count(&js, "CEN").await);
    }

    let daemon = env.spawn_daemon();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while message_count(&js, "CEN").await < TOTAL {
        assert!(
            std::time::Instant::now() < deadline,
            "after the last restart only {} of {TOTAL}:\n{}",
            message_count(&js, "CEN").await,
            env.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _) = daemon.stop("TERM", Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0));
    assert_eq!(message_count(&js, "CEN").await, TOTAL, "nothing more after the stop");
    let messages = read_stream(&js, "CEN").await;
    common::assert_exactly_once(&ids(&messages), &expected);
    for m in &messages {
        assert_eq!(m.subject, format!("cen.{}", m.record["subject"].as_str().unwrap()));
    }
}
