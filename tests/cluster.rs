//! Several instances on one PostgreSQL database (SPEC 13), against a real server started
//! for each test (`common/servers.rs`, with a NATS server where a test needs one): the
//! backend's leadership and fencing, three
//! daemons started at the same moment on an empty database sharing pushes, pull and
//! delivery, and the database going away while pushes arrive. Waits poll for an outcome
//! with a deadline.

mod common;
#[path = "common/servers.rs"]
mod servers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cen_poller::cen::notification::format_timestamp;
use cen_poller::metrics::Metrics;
use cen_poller::simulate::SimConfig;
use cen_poller::store::postgres::Settings;
use cen_poller::store::{Location, Route, StoreError, StoreHandle, Via};
use chrono::{TimeDelta, Utc};
use common::pki::{ALLOWED, PushPki};
use common::{CONSUMER_KEY, Env, assert_exactly_once, wait_for};
use serde_json::Value;
use servers::{NatsServer, PgServer, free_port};
use tokio_util::sync::CancellationToken;

async fn backend(pg: &PgServer, schema: &str) -> StoreHandle {
    let settings = Settings { dsn: pg.dsn(), schema: schema.into(), base_dir: None, instance: None };
    let routes = vec![Route { sink: "s".into(), subjects: vec![] }];
    StoreHandle::connect(&Location::Postgres(settings), routes, Arc::new(Metrics::new())).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_is_one_row_and_a_superseded_leader_cannot_move_the_watermark() {
    let pg = PgServer::start();
    let (a, b) = (backend(&pg, "cen_poller").await, backend(&pg, "cen_poller").await);
    let lease = Duration::from_secs(1);

    let first = a.lead("a", lease).await.unwrap();
    let epoch = first.epoch.expect("the first bidder leads");
    let other = b.lead("b", lease).await.unwrap();
    assert_eq!((other.epoch, other.leader.as_deref()), (None, Some("a")), "one leader at a time");
    assert_eq!(a.lead("a", lease).await.unwrap().epoch, Some(epoch), "a renewal keeps the epoch");
    a.set_watermark(1_000, epoch).await.unwrap();
    assert_eq!(b.watermark().await.unwrap(), Some(1_000), "the watermark is shared");

    // `a` is paused past its lease: `b` takes over under a new epoch, and `a`'s late write
    // of the watermark is refused.
    let taken = loop {
        let l = b.lead("b", lease).await.unwrap();
        if let Some(e) = l.epoch {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(taken > epoch, "a new leader gets a new epoch ({taken} after {epoch})");
    assert!(matches!(a.set_watermark(2_000, epoch).await, Err(StoreError::Fenced { .. })));
    assert_eq!(a.watermark().await.unwrap(), Some(1_000));
    b.set_watermark(3_000, taken).await.unwrap();
    assert_eq!(a.lead("a", lease).await.unwrap().epoch, None, "the old leader steps down");

    // A clean shutdown hands over at once.
    b.resign("b").await.unwrap();
    let back = a.lead("a", lease).await.unwrap().epoch.expect("the lease was given up");
    assert!(back > taken);
    let names: Vec<String> = a.instances(Duration::from_secs(60)).await.unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(names, ["a", "b"], "the leader first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_is_claimed_by_one_instance_and_acked_only_by_its_claimant() {
    let pg = PgServer::start();
    let (a, b) = (backend(&pg, "claims").await, backend(&pg, "claims").await);
    let items: Vec<cen_poller::cen::notification::Notification> = (0..20)
        .map(|i| {
            let json = format!(
                r#"{{"subject":"CLEARING","createdTimestamp":"{}","content":{{"n":{i}}}}}"#,
                format_timestamp(Utc::now() - TimeDelta::seconds(i))
            );
            cen_poller::cen::notification::Notification::from_json(&json).unwrap()
        })
        .collect();
    let first = a.accept(items.clone(), Via::Push, false).await.unwrap();
    assert_eq!((first.new, first.enqueued), (20, 20));
    let again = b.accept(items, Via::Pull, true).await.unwrap();
    assert_eq!((again.new, again.duplicates), (0, 20), "stored by one instance, a duplicate on all");

    let (mine, theirs) = tokio::join!(a.lease("s", "A", 12, 60_000), b.lease("s", "B", 12, 60_000));
    let (mine, theirs) = (mine.unwrap(), theirs.unwrap());
    assert_eq!(mine.len() + theirs.len(), 20, "claims at the same moment split the rows");
    assert!(mine.iter().all(|m| theirs.iter().all(|t| t.seq != m.seq)), "no row claimed twice");
    let seqs: Vec<i64> = mine.iter().map(|l| l.seq).collect();
    assert_eq!(b.ack("B", seqs.clone()).await.unwrap(), 0, "only the claimant acknowledges");
    assert_eq!(a.ack("A", seqs).await.unwrap(), mine.len());
    assert_eq!(a.backlog().await.unwrap(), [("s".to_owned(), theirs.len() as u64)]);
}

/// One instance's directory and configuration: the shared simulator and signing key, the
/// shared database, a push endpoint, a file sink `archive` of its own and the shared
/// `ledger` table.
fn node(env: &Env, pki: &PushPki, pg: &PgServer, name: &str, poll: &str) -> PathBuf {
    node_on(env, pki, pg, name, poll, 0, "")
}

/// [`node`] with the push endpoint on `push_port` (0: any free port) and `extra` TOML.
fn node_on(env: &Env, pki: &PushPki, pg: &PgServer, name: &str, poll: &str, push_port: u16, extra: &str) -> PathBuf {
    let dir = env.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let push = pki.push_section(&dir, "").replacen("127.0.0.1:0", &format!("127.0.0.1:{push_port}"), 1);
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nbase_url = \"{}\"\nconsumer_key = \"{CONSUMER_KEY}\"\nsigning_key = \"../key.pem\"\n\n\
             [poll]\n{poll}\n\n\
             [state]\nbackend = \"postgres\"\nurl = \"{}\"\ninstance = \"{name}\"\nleader_lease = \"3s\"\n\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\n\
             [delivery]\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n\n\
             [[sinks]]\nname = \"archive\"\ntype = \"file\"\npath = \"notifications.jsonl\"\n\n\
             [[sinks]]\nname = \"ledger\"\ntype = \"postgres\"\nurl = \"{}\"\ntable = \"cen_notifications\"\n\n{extra}\n{push}",
            env.base_url,
            pg.dsn(),
            pg.dsn()
        ),
    )
    .unwrap();
    config
}

/// The ids in the file sinks of `dirs` together, with how often each appears.
fn union_of_files(dirs: &[&Path]) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for dir in dirs {
        let text = std::fs::read_to_string(dir.join("notifications.jsonl")).unwrap_or_default();
        for line in text.lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            *ids.entry(record["id"].as_str().unwrap().to_owned()).or_default() += 1;
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_started_at_once_share_pushes_pull_and_delivery_exactly_once() {
    const N: u64 = 600;
    let pg = PgServer::start();
    let pki = PushPki::new();
    let sim = SimConfig::bounded(77, Utc::now() - TimeDelta::minutes(20), 1.0, N);
    let poll = format!(
        "interval = \"1s\"\nsettle = \"2s\"\nfirst_start = \"{}\"",
        format_timestamp(Utc::now() - TimeDelta::minutes(30))
    );
    let env = Env::start(sim, &poll).await;
    // Pull must not see anything before push has had its chance, as in the push tests.
    env.sim.set_auth_failure(Some((401, "INVALID_SIGNATURE")));
    let names = ["node-a", "node-b", "node-c"];
    let configs: Vec<_> =
        names.iter().map(|n| cen_poller::config::Config::load(&node(&env, &pki, &pg, n, &poll)).unwrap()).collect();
    let shutdown = CancellationToken::new();
    // At the same moment on an empty database: the schema is created once.
    let (a, b, c) = tokio::join!(
        cen_poller::service::start(&configs[0], shutdown.clone()),
        cen_poller::service::start(&configs[1], shutdown.clone()),
        cen_poller::service::start(&configs[2], shutdown.clone()),
    );
    let nodes = [a.unwrap(), b.unwrap(), c.unwrap()];
    let leaders = || nodes.iter().map(|n| n.store.metrics().poll_leader.get()).sum::<i64>();
    assert!(wait_for(Duration::from_secs(10), || leaders() == 1).await, "one instance polls, got {}", leaders());

    // Pushes spread over the three; 30 % never pushed; a failed request goes to the next.
    let client = pki.client(Some(&pki.client_ca.client(ALLOWED, &[])));
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("https://localhost:{}/notifications", n.push.as_ref().unwrap().addr.port()))
        .collect();
    let mut pushed = 0;
    for (k, chunk) in (0..N).filter(|i| i % 10 >= 3).collect::<Vec<_>>().chunks(10).enumerate() {
        let body: Vec<Value> = chunk.iter().map(|&i| env.sim.generated(i)).collect();
        let answered = async {
            for attempt in 0..3 {
                let url = &urls[(k + attempt) % urls.len()];
                if let Ok(r) = client.post(url).json(&body).send().await
                    && r.status() == 200
                {
                    return true;
                }
            }
            false
        };
        assert!(answered.await, "no instance took push request {k}");
        pushed += body.len();
    }
    assert_eq!(pushed as u64, N * 7 / 10);
    env.sim.set_auth_failure(None);

    // The leader's poll recovers the rest; every instance delivers.
    let dirs: Vec<PathBuf> = names.iter().map(|n| env.dir.path().join(n)).collect();
    let dir_refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
    let expected = env.sim.expected_ids(Utc::now() - TimeDelta::hours(1), Utc::now());
    assert_eq!(expected.len() as u64, N);
    assert!(
        wait_for(Duration::from_secs(60), || union_of_files(&dir_refs).len() as u64 >= N).await,
        "delivered {} of {N}",
        union_of_files(&dir_refs).len()
    );
    assert_exactly_once(&union_of_files(&dir_refs), &expected);
    let delivering = dir_refs.iter().filter(|d| d.join("notifications.jsonl").exists()).count();
    assert!(delivering >= 2, "the outbox was served by {delivering} instance(s) only");

    let db = pg.client().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = db.query_one("SELECT count(*) FROM cen_notifications", &[]).await.unwrap().get(0);
        if n as u64 == N {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the ledger table holds {n} of {N}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered: i64 =
        db.query_one("SELECT count(*) FROM cen_poller.notifications WHERE recovered", &[]).await.unwrap().get(0);
    assert_eq!(recovered as u64, N - pushed as u64, "what push missed was recovered by pull");
    let version: i64 = db.query_one("SELECT version FROM cen_poller.schema_version", &[]).await.unwrap().get(0);
    assert_eq!(version, 1);
    let instances = nodes[0].store.instances(Duration::from_secs(60)).await.unwrap();
    assert_eq!(instances.len(), 3, "{instances:?}");
    assert_eq!(instances.iter().filter(|i| i.leader).count(), 1, "{instances:?}");

    shutdown.cancel();
    for n in nodes {
        n.join(Duration::from_secs(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_answered_200_only_once_committed_while_the_database_comes_and_goes() {
    let mut pg = PgServer::start();
    let pki = PushPki::new();
    let sim = SimConfig::bounded(78, Utc::now() - TimeDelta::minutes(5), 1.0, 1);
    let env = Env::start(sim, "interval = \"1h\"").await;
    let config = cen_poller::config::Config::load(&node(&env, &pki, &pg, "solo", "interval = \"1h\"")).unwrap();
    let shutdown = CancellationToken::new();
    let running = cen_poller::service::start(&config, shutdown.clone()).await.unwrap();
    let client = pki.client(Some(&pki.client_ca.client(ALLOWED, &[])));
    let url = format!("https://localhost:{}/notifications", running.push.as_ref().unwrap().addr.port());
    let notification = |i: u64| {
        serde_json::json!([{"subject": "CLEARING", "createdTimestamp": format_timestamp(Utc::now() - TimeDelta::seconds(i as i64)),
                            "content": {"n": i}}])
    };
    let (mut answered_200, mut refused) = (Vec::new(), 0);
    for i in 0..300u64 {
        if i == 100 {
            pg.stop();
        }
        if i == 150 {
            let r = reqwest::get(format!("http://{}/readyz", running.admin_addr)).await.unwrap();
            assert_eq!(r.status(), 503);
            let reason = r.text().await.unwrap();
            assert!(reason.contains("state database"), "{reason}");
        }
        if i == 200 {
            pg.start_again();
        }
        let body = notification(i);
        let status = client.post(&url).json(&body).send().await.unwrap().status().as_u16();
        match status {
            200 => answered_200.push(cen_poller::cen::id::notification_id(&body[0]).unwrap()),
            503 => {
                assert!((100..300).contains(&i), "503 while the database was up (request {i})");
                refused += 1;
            }
            other => panic!("request {i}: HTTP {other}"),
        }
    }
    assert!(refused >= 100, "only {refused} requests were refused while the database was down");
    assert!(answered_200.len() >= 150, "only {} answered 200 ({refused} refused)", answered_200.len());
    // Nothing answered 200 is lost: each is in the shared table and reaches the sinks.
    let db = pg.client().await;
    for id in &answered_200 {
        let n: i64 =
            db.query_one("SELECT count(*) FROM cen_poller.notifications WHERE id = $1", &[id]).await.unwrap().get(0);
        assert_eq!(n, 1, "{id} was answered 200 but is not stored");
    }
    let dir = env.dir.path().join("solo");
    assert!(
        wait_for(Duration::from_secs(30), || union_of_files(&[&dir]).len() >= answered_200.len()).await,
        "delivered {} of {}",
        union_of_files(&[&dir]).len(),
        answered_200.len()
    );
    let delivered = union_of_files(&[&dir]);
    assert!(answered_200.iter().all(|id| delivered.get(id) == Some(&1)), "each 200 delivered once");
    shutdown.cancel();
    running.join(Duration::from_secs(20)).await;
}

/// The instance holding an unexpired lease and its epoch.
async fn current_leader(db: &tokio_postgres::Client) -> Option<(String, i64)> {
    db.query_opt("SELECT holder, epoch FROM cen_poller.leader WHERE expires_at > clock_timestamp()", &[])
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

/// The first unexpired leader other than `not`, waiting at most `deadline`.
async fn leader_within(db: &tokio_postgres::Client, not: Option<String>, deadline: Duration) -> Option<(String, i64)> {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some((holder, epoch)) = current_leader(db).await
            && Some(&holder) != not.as_ref()
        {
            return Some((holder, epoch));
        }
        if tokio::time::Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn watermark(db: &tokio_postgres::Client) -> Option<i64> {
    db.query_one("SELECT watermark_ms FROM cen_poller.poll", &[]).await.unwrap().get(0)
}

/// Records, for every write of the watermark, which instance's connection wrote it
/// (`application_name` is `cen-poller <instance>`) and who held the leadership then.
const WATERMARK_LOG: &str = "
CREATE TABLE public.watermark_writes (writer text, holder text, epoch bigint, valid boolean);
CREATE FUNCTION public.log_watermark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.watermark_writes
    SELECT current_setting('application_name'), holder, epoch, expires_at > clock_timestamp()
    FROM cen_poller.leader;
    RETURN NEW;
END $$;
CREATE TRIGGER log_watermark BEFORE UPDATE ON cen_poller.poll
    FOR EACH ROW EXECUTE FUNCTION public.log_watermark();";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_or_paused_leader_is_replaced_and_only_the_leader_moves_the_watermark() {
    const N: u64 = 1500;
    const LEASE: Duration = Duration::from_secs(3);
    const INTERVAL: Duration = Duration::from_secs(1);
    let pg = PgServer::start();
    let pki = PushPki::new();
    let sim = SimConfig::bounded(79, Utc::now() - TimeDelta::minutes(10), 5.0, N);
    let poll = format!(
        "interval = \"1s\"\nsettle = \"2s\"\nmax_window = \"2m\"\nfirst_start = \"{}\"",
        format_timestamp(Utc::now() - TimeDelta::minutes(15))
    );
    let env = Env::start(sim, &poll).await;
    let names = ["node-a", "node-b", "node-c"];
    let ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
    let nats = NatsServer::start();
    let bus = format!(
        "[[sinks]]\nname = \"bus\"\ntype = \"nats\"\nurl = \"{}\"\nstream = \"CEN\"\nsubject = \"cen.{{subject}}\"\n",
        nats.url()
    );
    let configs: Vec<PathBuf> =
        names.iter().zip(&ports).map(|(n, p)| node_on(&env, &pki, &pg, n, &poll, *p, &bus)).collect();
    let db = pg.client().await;

    // The first instance creates the schema; the watermark log goes on it before the others start.
    let mut daemons: Vec<Option<common::Daemon>> = vec![Some(env.spawn_daemon_with(&configs[0]))];
    let schema_made = async {
        loop {
            let found: Option<String> =
                db.query_one("SELECT to_regclass('cen_poller.poll')::text", &[]).await.unwrap().get(0);
            if found.is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), schema_made).await.expect("the first instance made the schema");
    db.batch_execute(WATERMARK_LOG).await.unwrap();
    for config in &configs[1..] {
        daemons.push(Some(env.spawn_daemon_with(config)));
    }

    // Pushes of 70 % of the notifications, spread over whichever instances answer, while
    // the leader is killed.
    let client = pki.client(Some(&pki.client_ca.client(ALLOWED, &[])));
    let urls: Vec<String> = ports.iter().map(|p| format!("https://localhost:{p}/notifications")).collect();
    let bodies: Vec<Vec<Value>> = (0..N)
        .filter(|i| i % 10 >= 3)
        .collect::<Vec<_>>()
        .chunks(5)
        .map(|c| c.iter().map(|&i| env.sim.generated(i)).collect())
        .collect();
    let pusher = tokio::spawn(async move {
        for (k, body) in bodies.iter().enumerate() {
            'sent: for attempt in 0.. {
                let url = &urls[(k + attempt) % urls.len()];
                if let Ok(r) = client.post(url).json(body).timeout(Duration::from_secs(5)).send().await
                    && r.status() == 200
                {
                    break 'sent;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let (mut leader, mut epoch) = leader_within(&db, None, Duration::from_secs(20)).await.expect("an instance leads");
    let mut failovers = Vec::new();
    for round in 0..5 {
        let k = names.iter().position(|n| *n == leader).unwrap();
        let before = watermark(&db).await;
        daemons[k].take().unwrap().kill9().await;
        let killed = std::time::Instant::now();
        let (next, next_epoch) = leader_within(&db, Some(leader.clone()), LEASE + INTERVAL + Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("round {round}: nobody took over from {leader}\n{}", env.log_tail(30)));
        assert!(next_epoch > epoch, "round {round}: a new leader, a new epoch");
        // The new leader polls: the watermark moves.
        let moved = async {
            while watermark(&db).await <= before {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), moved).await.expect("the new leader moves the watermark");
        failovers.push(killed.elapsed());
        daemons[k] = Some(env.spawn_daemon_with(&configs[k]));
        (leader, epoch) = (next, next_epoch);
    }
    // Killed at once after a renewal, a leader is replaced after its lease, plus up to a
    // third of it until a follower bids, plus a poll cycle.
    let slowest = failovers.iter().max().unwrap();
    println!("failover (kill -9 of the leader -> the watermark moves again): {failovers:?}");
    assert!(*slowest < LEASE + LEASE / 3 + INTERVAL + Duration::from_secs(3), "{failovers:?}");

    // Paused longer than its lease: another instance takes over; continued, the old leader
    // steps down and never writes the watermark again (the trigger's log shows it).
    let k = names.iter().position(|n| *n == leader).unwrap();
    let paused = daemons[k].as_ref().unwrap();
    paused.signal("STOP");
    let (next, _) = leader_within(&db, Some(leader.clone()), LEASE + Duration::from_secs(5))
        .await
        .expect("another instance took over from the paused leader");
    paused.signal("CONT");
    tokio::time::sleep(LEASE).await;
    assert_eq!(current_leader(&db).await.map(|l| l.0), Some(next), "the continued leader stepped down");

    tokio::time::timeout(Duration::from_secs(120), pusher).await.expect("every push was answered").unwrap();
    let expected = env.sim.expected_ids(Utc::now() - TimeDelta::hours(1), Utc::now());
    let all_there = async {
        loop {
            let n: i64 = db.query_one("SELECT count(*) FROM cen_notifications", &[]).await.unwrap().get(0);
            if n as usize >= expected.len() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), all_there).await.expect("the ledger got everything");
    let ids: Vec<String> =
        db.query("SELECT id FROM cen_notifications", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let held: BTreeMap<String, usize> = ids.into_iter().map(|id| (id, 1)).collect();
    assert_exactly_once(&held, &expected);

    // The NATS stream too holds each notification once, whatever the kills repeated.
    let js = nats.jetstream().await;
    let published = async {
        loop {
            if let Ok(mut stream) = js.get_stream("CEN").await
                && stream.info().await.is_ok_and(|i| i.state.messages as usize >= expected.len())
            {
                return stream;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let mut stream = tokio::time::timeout(Duration::from_secs(60), published).await.expect("the stream got everything");
    let state = stream.info().await.unwrap().state.clone();
    let mut on_the_bus = BTreeMap::new();
    for seq in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(seq).await.unwrap();
        let record: Value = serde_json::from_slice(&message.payload).unwrap();
        *on_the_bus.entry(record["id"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    assert_exactly_once(&on_the_bus, &expected);

    let writes = db.query("SELECT writer, holder, epoch, valid FROM public.watermark_writes", &[]).await.unwrap();
    // At least the first leader's and one after each takeover.
    assert!(writes.len() >= 6, "only {} watermark writes", writes.len());
    for w in &writes {
        let (writer, holder, valid): (String, String, bool) = (w.get(0), w.get(1), w.get(3));
        assert!(valid && writer == format!("cen-poller {holder}"), "{writer} wrote while {holder} led (valid {valid})");
    }
    for d in daemons.into_iter().flatten() {
        d.stop("TERM", Duration::from_secs(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_nodes_sqlite_state_moves_into_postgres_and_is_delivered_from_there() {
    let pg = PgServer::start();
    let sim = SimConfig::bounded(80, Utc::now() - TimeDelta::minutes(10), 1.0, 200);
    let poll = format!(
        "interval = \"1h\"\nsettle = \"2s\"\nlookback = \"1m\"\nfirst_start = \"{}\"",
        format_timestamp(Utc::now() - TimeDelta::minutes(15))
    );
    let env = Env::start(sim, &poll).await;
    // The single node's state: everything polled and queued for `archive`, never
    // delivered; two of them given up on.
    let store = env.store();
    env.poller(&store).cycle(&CancellationToken::new()).await.unwrap();
    let given_up = store.lease("archive", "old", 2, 60_000).await.unwrap();
    for l in &given_up {
        store.dead_letter(l.seq, "old", "HTTP 400").await.unwrap();
    }
    let watermark_before = store.watermark().await.unwrap().expect("the cycle set the watermark");
    drop(store);

    let text = std::fs::read_to_string(&env.config_path).unwrap().replace(
        "[state]\npath = \"state.db\"",
        &format!("[state]\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"moved\"", pg.dsn()),
    );
    let pg_config = env.dir.path().join("cluster.toml");
    std::fs::write(&pg_config, text).unwrap();
    let out = env.command_with(&pg_config).args(["migrate-state", "--from", "state.db"]).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("copied 200 notifications, 198 outbox rows, 2 dead letters"), "{stdout}");

    let db = pg.client().await;
    let count = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM moved.notifications").await, 200);
    assert_eq!(count("SELECT count(*) FROM moved.outbox WHERE lease_owner IS NULL").await, 198);
    assert_eq!(count("SELECT count(*) FROM moved.dead_letters").await, 2);
    assert_eq!(count("SELECT watermark_ms FROM moved.poll").await, watermark_before);

    // Twice is refused, and changes nothing.
    let again = env.command_with(&pg_config).args(["migrate-state", "--from", "state.db"]).output().await.unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds notifications"));
    assert_eq!(count("SELECT count(*) FROM moved.notifications").await, 200);

    // A daemon on the database delivers what was pending; the rest are duplicates to it.
    let shutdown = CancellationToken::new();
    let config = cen_poller::config::Config::load(&pg_config).unwrap();
    let running = cen_poller::service::start(&config, shutdown.clone()).await.unwrap();
    assert!(wait_for(Duration::from_secs(30), || env.sink_ids().len() >= 198).await, "{}", env.sink_ids().len());
    let dead: Vec<String> = given_up.iter().map(|l| l.id.clone()).collect();
    let expected: Vec<String> = env
        .sim
        .expected_ids(Utc::now() - TimeDelta::hours(1), Utc::now())
        .into_iter()
        .filter(|id| !dead.contains(id))
        .collect();
    assert_exactly_once(&env.sink_ids(), &expected);

    // The operator's commands work on the shared database: status shows the instance as
    // the leader, the dead letters are listed and retried, and then delivered too.
    let status = env.command_with(&pg_config).args(["status", "--json"]).output().await.unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["cluster"][0]["leader"], true, "{status}");
    assert_eq!(status["dead_letters"]["archive"], 2, "{status}");
    let listed = env.command_with(&pg_config).args(["dead-letters", "list", "--json"]).output().await.unwrap();
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let retried = env.command_with(&pg_config).args(["dead-letters", "retry"]).output().await.unwrap();
    assert!(retried.status.success(), "{}", String::from_utf8_lossy(&retried.stderr));
    assert!(wait_for(Duration::from_secs(30), || env.sink_ids().len() >= 200).await, "{}", env.sink_ids().len());
    assert_exactly_once(&env.sink_ids(), &env.sim.expected_ids(Utc::now() - TimeDelta::hours(1), Utc::now()));
    // replay queues the stored notifications again on the shared database.
    let replayed = env.command_with(&pg_config).args(["replay", "1h", "--sink", "archive"]).output().await.unwrap();
    let said = String::from_utf8_lossy(&replayed.stdout);
    assert!(replayed.status.success() && said.contains("archive  200 queued"), "{said}");
    assert!(wait_for(Duration::from_secs(30), || env.sink_ids().values().all(|n| *n == 2)).await, "replayed once more");
    shutdown.cancel();
    running.join(Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_reached_at_start_is_named_and_the_daemon_exits_1() {
    let sim = SimConfig::bounded(81, Utc::now() - TimeDelta::minutes(5), 1.0, 1);
    let env = Env::start(sim, "interval = \"1h\"").await;
    let closed = free_port();
    let text = std::fs::read_to_string(&env.config_path).unwrap().replace(
        "[state]\npath = \"state.db\"",
        &format!(
            "[state]\nbackend = \"postgres\"\nurl = \"host=127.0.0.1 port={closed} user=cen password=hunter2 connect_timeout=2\""
        ),
    );
    let config = env.dir.path().join("down.toml");
    std::fs::write(&config, text).unwrap();
    let out = env.command_with(&config).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot reach the state database 127.0.0.1:{closed}")), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password is never shown: {stderr}");
}
