//! Subscriptions (SPEC 11) end to end against the in-process simulator, which verifies the
//! OAuth signature (body hash included) of every call: the commands with their tables,
//! `--json` and the API's 400/404 answers; plan/apply/--prune counted at the simulator; the
//! simulator generating only for its active subscriptions; and the daemon reporting a
//! deactivated subscription by metric and log after a restart.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use cen_poller::cen::subscriptions::SubscriptionDetails;
use cen_poller::simulate::{SUBJECTS, SimConfig, subscription_name};
use chrono::{TimeDelta, Utc};
use common::Env;
use serde_json::Value;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn describe(out: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", out.status.code(), stdout(out), stderr(out))
}

/// A simulator with a small past stream.
fn sim() -> SimConfig {
    SimConfig::bounded(5, Utc::now() - TimeDelta::minutes(30), 1.0, 100)
}

const POLL: &str = "interval = \"1s\"";

/// The subject of stream subscription `k`, and its name.
fn stream(k: usize) -> (String, &'static str) {
    (subscription_name(k), SUBJECTS[k])
}

fn index_of(subject: &str) -> usize {
    SUBJECTS.iter().position(|s| *s == subject).unwrap()
}

/// No request was refused by the gateway: every call was signed correctly.
fn assert_all_signed(env: &Env) {
    let stats = env.sim.stats();
    assert_eq!(stats.by_status.get(&401), None, "{:?}", stats.by_status);
    assert!(stats.requests > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_list_show_create_update_and_delete() {
    let env = Env::start(sim(), POLL).await;

    // list: a table and --json (SubscriptionDetails objects).
    let out = env.run(&["subscriptions", "list"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let table = stdout(&out);
    assert!(table.starts_with("NAME "), "{table}");
    for k in 0..SUBJECTS.len() {
        let (name, subject) = stream(k);
        let row = table.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{table}"));
        assert!(row.contains(subject) && row.contains(" yes ") && row.ends_with("(all events)"), "{row}");
    }
    let out = env.run(&["subscriptions", "list", "--json"]).await;
    let list: Vec<SubscriptionDetails> = serde_json::from_slice(&out.stdout).expect("list --json is the API's array");
    assert_eq!(list.len(), 7);

    // fieldmappings: filtered by subject, table and --json.
    let out = env.run(&["fieldmappings", "--subject", "CLEARING", "--json"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let mappings: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!mappings.is_empty());
    assert!(mappings.iter().all(|m| m["subjectType"] == "CLEARING"), "{mappings:?}");
    let out = env.run(&["fieldmappings"]).await;
    assert!(stdout(&out).starts_with("SUBJECT "), "{}", describe(&out));
    assert!(stdout(&out).contains("purchaseRequest.rcnAlias"));
    assert_eq!(env.run(&["fieldmappings", "--subject", "NOPE"]).await.status.code(), Some(2));

    // create, from a Subscription file with a filter.
    let file = env.dir.path().join("ops.json");
    std::fs::write(
        &file,
        r#"{"name":"ops-clearing","subjectType":"CLEARING","active":true,"specifications":[
            {"type":"FIELD","operator":"WHERE","fieldMappingName":"purchaseRequest.rcnAlias","fieldOperator":"EQUALS",
             "expectedContent":{"contentType":"TEXT","value":"Travel Expense RCN"}}]}"#,
    )
    .unwrap();
    let out = env.run(&["subscriptions", "create", "--file", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stdout(&out).starts_with("created ops-clearing (id 0CNS"), "{}", stdout(&out));

    // show, by name and by id; the answer names the field as a fieldMapping object.
    let out = env.run(&["subscriptions", "show", "ops-clearing", "--json"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["specifications"][0]["fieldMapping"]["name"], "purchaseRequest.rcnAlias");
    assert_eq!(shown["specifications"][0]["fieldMapping"]["subjectType"], "CLEARING");
    let id = shown["id"].as_str().unwrap().to_owned();
    let out = env.run(&["subscriptions", "show", &id]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("name           ops-clearing"), "{text}");
    assert!(text.contains(r#"filter         WHERE purchaseRequest.rcnAlias EQUALS "Travel Expense RCN""#), "{text}");
    let out = env.run(&["subscriptions", "list"]).await;
    assert!(stdout(&out).contains(r#"WHERE purchaseRequest.rcnAlias EQUALS "Travel Expense RCN""#));

    // update by name: deactivated, filter dropped.
    std::fs::write(&file, r#"{"name":"ops-clearing","subjectType":"CLEARING","active":false}"#).unwrap();
    let out = env.run(&["subscriptions", "update", "ops-clearing", "--file", file.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), format!("updated ops-clearing (id {id})\n"));
    let out = env.run(&["subscriptions", "show", "ops-clearing", "--json"]).await;
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((shown["active"].as_bool(), shown["specifications"].as_array().map(Vec::len)), (Some(false), Some(0)));

    // 400s with their ReasonCode: a duplicate name, an invalid name, an unknown field.
    let out = env.run(&["subscriptions", "create", "--file", file.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("HTTP 400 DUPLICATE_SUBSCRIPTION_NAME"), "{}", stderr(&out));
    std::fs::write(&file, r#"{"name":"ops clearing!","subjectType":"CLEARING","active":true}"#).unwrap();
    let out = env.run(&["subscriptions", "create", "--file", file.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("HTTP 400 INVALID_SUBSCRIPTION_NAME"), "{}", stderr(&out));
    std::fs::write(
        &file,
        r#"{"name":"x","subjectType":"CLEARING","active":true,"specifications":[{"operator":"WHERE",
            "fieldMappingName":"noSuchField","fieldOperator":"EQUALS","expectedContent":{"contentType":"TEXT","value":"v"}}]}"#,
    )
    .unwrap();
    let out = env.run(&["subscriptions", "create", "--file", file.to_str().unwrap()]).await;
    assert!(stderr(&out).contains("HTTP 400 INVALID_FIELD_MAPPING_NAME"), "{}", describe(&out));
    // A file that is not a Subscription is a usage error, before any call.
    std::fs::write(&file, r#"{"name":"x"}"#).unwrap();
    let calls = env.sim.subscription_calls();
    let out = env.run(&["subscriptions", "create", "--file", file.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert_eq!(env.sim.subscription_calls(), calls);

    // delete by name; then the name matches nothing: the API's 404, exit 1.
    let out = env.run(&["subscriptions", "delete", "ops-clearing"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), format!("deleted ops-clearing (id {id})\n"));
    std::fs::write(&file, r#"{"name":"ops-clearing","subjectType":"CLEARING","active":true}"#).unwrap();
    for args in [
        vec!["subscriptions", "show", "ops-clearing"],
        vec!["subscriptions", "delete", "ops-clearing"],
        vec!["subscriptions", "update", "ops-clearing", "--file", file.to_str().unwrap()],
    ] {
        let out = env.run(&args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", describe(&out));
        let e = stderr(&out);
        assert!(
            e.contains(r#"no subscription is named "ops-clearing""#) && e.contains("HTTP 404 RESOURCE_NOT_FOUND"),
            "{e}"
        );
    }
    assert_eq!(env.sim.subscriptions().len(), 7);
    let calls = env.sim.subscription_calls();
    assert_eq!((calls.create, calls.update, calls.delete), (1, 1, 1), "{calls:?}");
    assert_all_signed(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_verifies_the_body_hash_of_subscription_calls() {
    let env = Env::start(sim(), POLL).await;
    let signer = env.config().load_secrets().unwrap().signer;
    let url = format!("{}/subscriptions", env.base_url);
    let body = br#"{"name":"ops-a","subjectType":"CLEARING","active":true}"#;
    let send = |auth: String, body: &'static [u8]| {
        let url = url.clone();
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("Authorization", auth)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Signed over another body: the hash does not match what arrives.
    let other = signer.sign("POST", &url, br#"{"name":"ops-b","subjectType":"CLEARING","active":true}"#).unwrap();
    let (status, answer) = send(other.authorization, body).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["Errors"]["Error"][0]["ReasonCode"], "INVALID_BODY_HASH");
    assert_eq!(env.sim.subscription_calls().create, 0);
    // Signed with the empty body's hash, as a GET would be.
    let (status, answer) = send(signer.sign("POST", &url, b"").unwrap().authorization, body).await;
    assert_eq!((status, answer["Errors"]["Error"][0]["ReasonCode"].as_str()), (401, Some("INVALID_BODY_HASH")));
    // Signed right: 201 with a Location.
    let signed = signer.sign("POST", &url, body).unwrap();
    let r = reqwest::Client::new()
        .post(&url)
        .header("Authorization", signed.authorization)
        .header("Content-Type", "application/json")
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = r.json().await.unwrap();
    assert_eq!(location, format!("subscriptions/{}", created["id"].as_str().unwrap()));
    assert_eq!(env.sim.subscription_calls().create, 1);
    // Unsigned DELETE: refused by the gateway, nothing deleted.
    let r = reqwest::Client::new().delete(format!("{url}/{}", created["id"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(env.sim.subscription_calls().delete, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_follow_offset_limit_and_sort() {
    let env = Env::start(sim(), POLL).await;
    let client = env.config().api_client().unwrap();
    // 30 more: 37 in all, more than one page of 25.
    for n in 0..30 {
        let s = cen_poller::cen::subscriptions::Subscription {
            id: None,
            name: format!("bulk-{n:02}"),
            subject_type: "PAYMENT_UPDATE".into(),
            active: n % 2 == 0,
            specifications: vec![],
        };
        client.create_subscription(&s).await.unwrap();
    }
    let all = client.list_subscriptions().await.unwrap();
    assert_eq!(all.len(), 37);
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(env.sim.subscription_calls().list, 2, "two pages of 25");
    // The raw parameters: a bare array, offset/limit/sort honoured, bad values a 400.
    let signer = env.config().load_secrets().unwrap().signer;
    let get = |query: &str| {
        let url = format!("{}/subscriptions{query}", env.base_url);
        let auth = signer.sign("GET", &url, b"").unwrap().authorization;
        async move {
            let r = reqwest::Client::new().get(url).header("Authorization", auth).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, page) = get("").await;
    assert_eq!((status, page.as_array().unwrap().len()), (200, 25));
    let (_, page) = get("?offset=35&limit=10").await;
    assert_eq!(page.as_array().unwrap().len(), 2);
    let (_, page) = get("?sort=-name&limit=1").await;
    assert_eq!(page[0]["name"], *sorted.last().unwrap());
    let (status, error) = get("?limit=0").await;
    assert_eq!((status, error["Errors"]["Error"][0]["ReasonCode"].as_str()), (400, Some("INVALID_REQUEST_PARAMETER")));
    assert_all_signed(&env);
}

/// A configuration declaring: one in sync, one to deactivate, one whose subject changes,
/// one new with a filter.
fn declared() -> String {
    let (same, same_subject) = stream(index_of("CLEARING"));
    let (off, off_subject) = stream(index_of("PAYMENT_UPDATE"));
    let (moved, _) = stream(index_of("TOKEN_LIFECYCLE_EVENT"));
    format!(
        r#"
[[subscriptions]]
name = "{same}"
subject = "{same_subject}"

[[subscriptions]]
name = "{off}"
subject = "{off_subject}"
active = false

[[subscriptions]]
name = "{moved}"
subject = "TOKEN_PROVISIONING_EVENT"

[[subscriptions]]
name = "ops-auth"
subject = "PAYMENT_AUTHORIZATION"
specifications = [
  {{ operator = "WHERE", field = "purchaseRequest.rcnAlias", value = "Travel Expense RCN" }},
  {{ operator = "AND", field = "purchaseRequest.companyId", field_operator = "GREATER_THAN", content_type = "INTEGER", value = 100 }},
]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_shows_exactly_the_changes_and_apply_makes_them_once() {
    let env = Env::start_with(sim(), POLL, &declared()).await;
    let (off, moved) = (stream(index_of("PAYMENT_UPDATE")).0, stream(index_of("TOKEN_LIFECYCLE_EVENT")).0);

    let out = env.run(&["subscriptions", "plan"]).await;
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "~ update {off}: active true -> false\n\
             -/+ replace {moved}: subject TOKEN_LIFECYCLE_EVENT -> TOKEN_PROVISIONING_EVENT\n\
             + create ops-auth\n\
             plan: 1 to create, 1 to update, 1 to replace, 0 to delete\n"
        )
    );
    assert_eq!(env.sim.subscription_calls().changes(), 0, "plan changes nothing");

    let out = env.run(&["subscriptions", "apply"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout(&out).ends_with("applied: 1 to create, 1 to update, 1 to replace, 0 to delete\n"),
        "{}",
        stdout(&out)
    );
    let calls = env.sim.subscription_calls();
    assert_eq!((calls.create, calls.update, calls.delete), (2, 1, 1), "{calls:?}");
    let now: Vec<Value> = env.sim.subscriptions();
    let find = |name: &str| now.iter().find(|s| s["name"] == name).cloned().unwrap();
    assert_eq!(find(&off)["active"], false);
    assert_eq!(find(&moved)["subjectType"], "TOKEN_PROVISIONING_EVENT");
    let auth = find("ops-auth");
    assert_eq!(auth["specifications"][1]["fieldMapping"]["name"], "purchaseRequest.companyId");
    assert_eq!(auth["specifications"][1]["expectedContent"]["value"], 100);
    assert_eq!(now.len(), 8);

    // Run again: in sync, no call that changes anything.
    let out = env.run(&["subscriptions", "apply"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "applied: 0 to create, 0 to update, 0 to replace, 0 to delete\n");
    assert_eq!(env.sim.subscription_calls().changes(), calls.changes());
    let out = env.run(&["subscriptions", "plan"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(stdout(&out), "plan: 0 to create, 0 to update, 0 to replace, 0 to delete\n");

    // --prune: exactly the four undeclared stream subscriptions go.
    let declared_names = [stream(index_of("CLEARING")).0, off.clone(), moved.clone(), "ops-auth".into()];
    let mut undeclared: Vec<String> =
        (0..SUBJECTS.len()).map(subscription_name).filter(|n| !declared_names.contains(n)).collect();
    undeclared.sort();
    let out = env.run(&["subscriptions", "plan", "--prune"]).await;
    assert_eq!(out.status.code(), Some(4));
    let expected: String = undeclared.iter().map(|n| format!("- delete {n}\n")).collect();
    assert_eq!(stdout(&out), format!("{expected}plan: 0 to create, 0 to update, 0 to replace, 4 to delete\n"));
    let out = env.run(&["subscriptions", "apply", "--prune"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let mut left: Vec<String> =
        env.sim.subscriptions().iter().map(|s| s["name"].as_str().unwrap().to_owned()).collect();
    left.sort();
    let mut want = declared_names.to_vec();
    want.sort();
    assert_eq!(left, want);
    assert_eq!(env.sim.subscription_calls().delete, calls.delete + 4);
    assert_all_signed(&env);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_apply_refuse_an_empty_declaration_and_unknown_fields() {
    let env = Env::start(sim(), POLL).await;
    for action in ["plan", "apply"] {
        let out = env.run(&["subscriptions", action, "--prune"]).await;
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(stderr(&out).contains("declares no [[subscriptions]]"), "{}", stderr(&out));
    }
    // A field the API lists for another subject only.
    let bad = env.dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&env.config_path).unwrap()
        + r#"
[[subscriptions]]
name = "ops-tokens"
subject = "TOKEN_PROVISIONING_EVENT"
specifications = [{ operator = "WHERE", field = "corpGuid", value = "x" }]
"#;
    std::fs::write(&bad, text).unwrap();
    for action in ["plan", "apply"] {
        let out = env.command_with(&bad).args(["subscriptions", action]).output().await.unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
        assert!(
            stderr(&out).contains(
                r#"subscriptions[0] ("ops-tokens"): field "corpGuid" is not a field of TOKEN_PROVISIONING_EVENT"#
            ),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(env.sim.subscription_calls().changes(), 0);
    // check-config names the key and line of an invalid entry.
    std::fs::write(
        &bad,
        std::fs::read_to_string(&env.config_path).unwrap()
            + "\n[[subscriptions]]\nname = \"a\"\nsubject = \"CLEARINGS\"\n",
    )
    .unwrap();
    let out = env.command_with(&bad).arg("check-config").output().await.unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(stderr(&out).contains("`subscriptions[0].subject`: unknown subject \"CLEARINGS\""), "{}", stderr(&out));
    assert_all_signed(&env);
}

/// New notifications of a subject are generated only while its subscription exists and is
/// active; those created before stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_generates_only_for_active_subscriptions() {
    let env = Env::start(SimConfig::live(9, 40.0, Duration::from_secs(60)), POLL).await;
    let client = env.config().api_client().unwrap();
    let clearing = |from: chrono::DateTime<Utc>, to: chrono::DateTime<Utc>| {
        env.sim.items(from, to).iter().filter(|i| i.subject == "CLEARING").count()
    };
    let list = client.list_subscriptions().await.unwrap();
    let sub = list.iter().find(|s| s.subject_type == "CLEARING").unwrap().clone();
    let before = env.sim.now();
    assert!(clearing(before - TimeDelta::seconds(60), before) > 0);
    let mut off = sub.to_request();
    off.active = false;
    client.update_subscription(sub.id.as_deref().unwrap(), &off).await.unwrap();
    let stopped = env.sim.now();
    // Wait until plenty of other notifications were created since.
    assert!(
        common::wait_for(Duration::from_secs(30), || env
            .sim
            .items(stopped + TimeDelta::milliseconds(50), env.sim.now())
            .len()
            >= 80)
        .await
    );
    let later = env.sim.now();
    assert_eq!(clearing(stopped + TimeDelta::milliseconds(50), later), 0, "nothing for an inactive subscription");
    assert!(clearing(before - TimeDelta::seconds(60), before) > 0, "what was created before stays");
    // Deleted is the same as inactive; created again, it generates again.
    client.delete_subscription(sub.id.as_deref().unwrap()).await.unwrap();
    let mut on = sub.to_request();
    on.active = true;
    client.create_subscription(&on).await.unwrap();
    let resumed = env.sim.now();
    assert!(
        common::wait_for(Duration::from_secs(30), || clearing(resumed + TimeDelta::milliseconds(50), env.sim.now())
            >= 3)
        .await,
        "CLEARING notifications again once the subscription is back"
    );
    assert_all_signed(&env);
}

/// A free local port for the daemon's admin endpoint.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn metrics(port: u16) -> Option<String> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.ok()?;
    r.text().await.ok()
}

/// Waits until the daemon's `/metrics` has a line starting with `prefix`; returns it.
async fn metric_line(port: u16, prefix: &str) -> String {
    let start = Instant::now();
    loop {
        if let Some(text) = metrics(port).await
            && let Some(line) = text.lines().find(|l| l.starts_with(prefix))
        {
            return line.to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no {prefix} in /metrics");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The config file of `env` with another admin port and an `api.subscriptions` filter.
fn daemon_config(env: &Env, port: u16, file: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(&env.config_path)
        .unwrap()
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""))
        .replace("[api]\n", "[api]\nsubscriptions = [\"sim-clearing\", \"sim-ghost\"]\n");
    let path = env.dir.path().join(file);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reports_a_deactivated_subscription_after_a_restart() {
    assert_eq!(subscription_name(index_of("CLEARING")), "sim-clearing");
    let declared = "[[subscriptions]]\nname = \"sim-clearing\"\nsubject = \"CLEARING\"\n";
    let env = Env::start_with(sim(), POLL, declared).await;
    let active = r#"cen_subscription_active{name="sim-clearing",subject="CLEARING"}"#;

    let port = free_port();
    let daemon = env.spawn_daemon_with(&daemon_config(&env, port, "first.toml"));
    assert_eq!(metric_line(port, active).await, format!("{active} 1"));
    assert_eq!(metric_line(port, "cen_subscriptions_drift ").await, "cen_subscriptions_drift 0");
    let (status, _) = daemon.stop("TERM", Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0));
    assert!(env.log_tail(200).contains("sim-ghost"), "an error for the unknown name: {}", env.log_tail(50));

    // Deactivated while the daemon is down.
    let off = env.dir.path().join("off.json");
    std::fs::write(&off, r#"{"name":"sim-clearing","subjectType":"CLEARING","active":false}"#).unwrap();
    let out = env.run(&["subscriptions", "update", "sim-clearing", "--file", off.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", describe(&out));

    let port = free_port();
    let daemon = env.spawn_daemon_with(&daemon_config(&env, port, "second.toml"));
    assert_eq!(metric_line(port, active).await, format!("{active} 0"));
    assert_eq!(metric_line(port, "cen_subscriptions_drift ").await, "cen_subscriptions_drift 1");
    let (status, _) = daemon.stop("TERM", Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0));
    let log = std::fs::read_to_string(env.log_path()).unwrap();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("sim-clearing") && l.contains("declared active is inactive"))
        .unwrap_or_else(|| panic!("no warning for the inactive subscription:\n{log}"));
    assert!(warning.contains("active false -> true"), "{warning}");
    let error = log.lines().find(|l| l.contains("ERROR") && l.contains("sim-ghost")).unwrap_or_else(|| panic!("{log}"));
    assert!(error.contains("does not list"), "{error}");

    // status shows them too (the API asked directly).
    let out = env.run(&["status", "--json"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed = report["subscriptions"]["subscriptions"].as_array().unwrap();
    assert_eq!(listed.len(), 7);
    assert_eq!(report["subscriptions"]["drift"][0], "~ update sim-clearing: active false -> true");
    let out = env.run(&["status"]).await;
    assert!(
        stdout(&out).contains("INACTIVE") && stdout(&out).contains("drift: ~ update sim-clearing"),
        "{}",
        stdout(&out)
    );
    assert_all_signed(&env);
}
