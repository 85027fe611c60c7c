//! SPEC G6: a full scenario with debug logging — polling with OAuth, a 401 from the
//! gateway, pushes over mTLS (good and malformed, carrying card numbers), delivery to a
//! sink — and the log holds no secret, no Authorization header, no key material and no
//! unmasked card number. Run in both log formats.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use cen_poller::simulate::SimConfig;
use chrono::{TimeDelta, Utc};
use common::Env;
use common::pki::Ca;
use serde_json::json;

const PAN: &str = "5555555555554444";
const PASSWORD: &str = "keystore-pa55word-xyz";
const VGS_SECRET: &str = "vgs-log-test-secret";

async fn scenario(format: &str) -> String {
    let start = cen_poller::cen::notification::format_timestamp(Utc::now() - TimeDelta::minutes(20));
    let sim = SimConfig::bounded(51, Utc::now() - TimeDelta::minutes(10), 2.0, 600);
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let env = Env::start_with(
        sim,
        &format!("interval = \"1s\"\nsettle = \"2s\"\nfirst_start = \"{start}\""),
        &format!(
            "[push]\nlisten = \"127.0.0.1:0\"\ncert = \"server.pem\"\nkey = \"server-key.pem\"\nclient_ca = \"client-ca.pem\"\n\n[vgs]\nlisten = \"127.0.0.1:0\"\nsigning_secret_file = \"vgs-secret\"\n\n[log]\nformat = \"{format}\"\nlevel = \"debug\"\n"
        ),
    )
    .await;
    let d = env.dir.path();
    let server = server_ca.server();
    std::fs::write(d.join("server.pem"), &server.cert_pem).unwrap();
    std::fs::write(d.join("server-key.pem"), &server.key_pem).unwrap();
    std::fs::write(d.join("client-ca.pem"), &client_ca.pem).unwrap();
    std::fs::write(d.join("vgs-secret"), VGS_SECRET).unwrap();
    // A keystore with a password, and the consumer key in a file: secrets that must not leak.
    let out = std::process::Command::new("openssl")
        .current_dir(d)
        .args(["req", "-x509", "-new", "-key", "key.pem", "-subj", "/CN=cen", "-days", "2", "-out", "cert.pem"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = std::process::Command::new("openssl")
        .current_dir(d)
        .args(["pkcs12", "-export", "-legacy", "-inkey", "key.pem", "-in", "cert.pem", "-name", "k", "-passout"])
        .arg(format!("pass:{PASSWORD}"))
        .args(["-out", "key.p12"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(d.join("password"), PASSWORD).unwrap();
    let config = std::fs::read_to_string(&env.config_path)
        .unwrap()
        .replace("signing_key = \"key.pem\"", "signing_key = \"key.p12\"\nsigning_key_password_file = \"password\"");
    std::fs::write(&env.config_path, config).unwrap();

    let log = d.join("stderr.log");
    let mut child =
        env.command().stdout(Stdio::null()).stderr(Stdio::from(std::fs::File::create(&log).unwrap())).spawn().unwrap();
    // Wait for the first poll to land everything in the sink.
    let t = Instant::now();
    while env.sink_ids().len() < 600 {
        assert!(t.elapsed() < Duration::from_secs(60), "{}", std::fs::read_to_string(&log).unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A 401 from the gateway, logged with its reason.
    env.sim.set_auth_failure(Some((401, "INVALID_SIGNATURE")));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    env.sim.set_auth_failure(None);
    // Pushes carrying a card number: a good one, and malformed ones.
    let text = std::fs::read_to_string(&log).unwrap();
    let port = listening_port(&text, "push endpoint listening");
    let leaf = client_ca.client("mastercard", &[]);
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(server_ca.pem.as_bytes()).unwrap()])
        .identity(reqwest::Identity::from_pem(format!("{}{}", leaf.cert_pem, leaf.key_pem).as_bytes()).unwrap())
        .build()
        .unwrap();
    let url = format!("https://localhost:{port}/notifications");
    let good = json!([{"subject": "CLEARING", "createdTimestamp": cen_poller::cen::notification::format_timestamp(Utc::now()),
                       "content": {"paymentCard": {"accountNumber": PAN}, "amount": 12.5}}]);
    assert_eq!(client.post(&url).json(&good).send().await.unwrap().status(), 200);
    let bad = format!("[{{\"subject\":\"CLEARING\",\"content\":{{\"accountNumber\":\"{PAN}\"}}}}]");
    assert_eq!(client.post(&url).body(bad).send().await.unwrap().status(), 400);
    let broken = format!("[{{\"subject\":\"CLEARING\",\"content\":{{\"accountNumber\":\"{PAN}\"");
    assert_eq!(client.post(&url).body(broken).send().await.unwrap().status(), 400);
    // A card number planted in every member of malformed bodies: refused, and neither the
    // answer nor the log quotes it.
    for body in planted_push_bodies() {
        let answer = client.post(&url).body(body.clone()).send().await.unwrap();
        assert_eq!(answer.status(), 400, "{}", String::from_utf8_lossy(&body));
        let answer = answer.text().await.unwrap();
        assert!(!answer.contains(PAN), "the 400 answer quotes the card number: {answer}");
    }
    let vgs_url =
        format!("http://127.0.0.1:{}/webhooks/vgs/account-updater", listening_port(&text, "vgs endpoint listening"));
    for body in planted_vgs_bodies() {
        let signature = hex::encode(aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, VGS_SECRET.as_bytes()),
            &body,
        ));
        let answer = client.post(&vgs_url).header("vgs-signature", signature).body(body.clone()).send().await.unwrap();
        assert_eq!(answer.status(), 400, "{}", String::from_utf8_lossy(&body));
        let answer = answer.text().await.unwrap();
        assert!(!answer.contains(PAN), "the 400 answer quotes the card number: {answer}");
    }
    let t = Instant::now();
    while env.sink_ids().len() < 601 {
        assert!(t.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::process::Command::new("kill").args(["-TERM", &child.id().unwrap().to_string()]).status().unwrap();
    assert!(child.wait().await.unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    // The scenario really happened and was logged at debug.
    assert!(text.contains("INVALID_SIGNATURE"), "{text}");
    assert!(text.contains("DEBUG") || text.contains("\"level\":\"DEBUG\""), "debug logging was on");
    text
}

/// The port of the endpoint whose start-up line holds `marker`.
fn listening_port(log: &str, marker: &str) -> u16 {
    log.lines()
        .find(|l| l.contains(marker))
        .and_then(|l| l.split("127.0.0.1:").nth(1))
        .and_then(|p| p.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u16>().ok())
        .unwrap_or_else(|| panic!("the log names the address of {marker:?}"))
}

/// Malformed push bodies with the card number in every place a value can be: each member
/// the parser checks, member names, content, arrays, numbers, broken strings and bytes.
fn planted_push_bodies() -> Vec<Vec<u8>> {
    let t = "2026-11-22T10:00:00.640Z";
    let mut bodies: Vec<String> = vec![
        format!(r#"[{{"subject":"CLEARING","createdTimestamp":"{PAN}","content":{{"accountNumber":"{PAN}"}}}}]"#),
        format!(r#"{{"subject":"CLEARING","createdTimestamp":"{PAN}","content":{{}}}}"#),
        format!(r#"[{{"subject":{PAN},"createdTimestamp":"{t}","content":{{}}}}]"#),
        format!(r#"[{{"subject":"CLEARING","createdTimestamp":{PAN},"content":{{"pan":"{PAN}"}}}}]"#),
        format!(r#"[{{"subject":"CLEARING","createdTimestamp":"{t}","content":null,"{PAN}":"{PAN}"}}]"#),
        format!(r#"[{{"subject":["{PAN}"],"createdTimestamp":"{t}","content":{{}}}}]"#),
        format!(r#"[{{"subject":"CLEARING","createdTimestamp":"{t} {PAN}","content":{{}}}}]"#),
        format!(r#"["{PAN}"]"#),
        format!(r#"[{PAN}]"#),
        format!(r#""{PAN}""#),
        format!(r#"[{{"subject":"CLEARING","createdTimestamp":"{t}","content":{{"n":1e999999,"pan":"{PAN}"}}}}]"#),
        format!(r#"[{{"subject":"CLEARING","createdTimestamp":"{t}","content":{{"pan":"\uD800{PAN}"}}}}]"#),
        format!(
            r#"[{{"subject":"CLEARING","createdTimestamp":"{t}","content":{{"pan":"{PAN}"}}}},{{"subject":"{PAN}"}}]"#
        ),
        format!(r#"[{{"{PAN}":"{PAN}""#),
        format!(r#"[{{"subject":"CLEARING","createdTimestamp":"{t}","content":{{"pan":"{PAN}"}}}}] {PAN}"#),
    ];
    bodies.push(format!("[{}]", "[".repeat(200) + PAN + &"]".repeat(200)));
    let mut out: Vec<Vec<u8>> = bodies.into_iter().map(String::into_bytes).collect();
    out.push([b"[\"".as_slice(), PAN.as_bytes(), b"\xff\"]"].concat());
    out
}

/// Malformed VGS events, correctly signed, with the card number in every place.
fn planted_vgs_bodies() -> Vec<Vec<u8>> {
    let envelope = |id: &str, event: &str, details: &str| {
        format!(r#"{{"id":{id},"event":{event},"timestamp":"2026-11-22T10:00:00Z","details":{details}}}"#)
    };
    let pan = format!("\"{PAN}\"");
    let details = format!(r#"{{"card":{{"number":"{PAN}","last4":"4444"}}}}"#);
    [
        envelope(&format!("{{\"pan\":{pan}}}"), r#""cmp_au_card.updated""#, &details),
        envelope(&format!("[{pan}]"), r#""cmp_au_card.updated""#, &details),
        envelope(r#""evt-1""#, &format!("{{\"name\":{pan}}}"), &details),
        envelope(r#""evt-1""#, r#""cmp_au_card.updated""#, "null"),
        envelope(r#""evt-1""#, r#""cmp_au_card.updated""#, &details).replace("\"2026-11-22T10:00:00Z\"", PAN),
        format!(r#"[{pan}]"#),
        format!(r#"{{"id":"evt-2","{PAN}":{pan}"#),
        format!(r#"{{"id":"evt-3","details":{{"n":1e999999,"pan":{pan}}}}}"#),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

/// Runs of 12–19 digits: card-number-like.
fn digit_runs(text: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut cur = String::new();
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_digit() {
            cur.push(c);
        } else {
            if (12..=19).contains(&cur.len()) {
                runs.push(cur.clone());
            }
            cur.clear();
        }
    }
    runs
}

fn assert_clean(text: &str) {
    for forbidden in
        [PAN, PASSWORD, "Authorization", "OAuth oauth_", "oauth_signature=", "BEGIN PRIVATE KEY", "BEGIN RSA"]
    {
        assert!(!text.contains(forbidden), "the log contains {forbidden:?}");
    }
    // Notification content never reaches the log at all (so neither do card numbers).
    for field in ["accountNumber", "paymentCard", "\"content\""] {
        assert!(!text.contains(field), "the log contains notification content ({field})");
    }
    let runs = digit_runs(text);
    // Timestamps in JSON logs are not digit runs this long; anything else is suspect.
    assert!(runs.is_empty(), "card-number-like digit runs in the log: {runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_in_text_format_hold_no_secrets_or_card_data() {
    let text = scenario("text").await;
    assert_clean(&text);
    // Standard error is a file here, not a terminal: no colour escape sequences.
    assert!(!text.contains('\x1b'), "the text log holds ANSI escape sequences");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_in_json_format_hold_no_secrets_or_card_data() {
    let text = scenario("json").await;
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert_clean(&text);
}
