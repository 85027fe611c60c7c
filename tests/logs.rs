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

async fn scenario(format: &str) -> String {
    let start = cen_poller::cen::notification::format_timestamp(Utc::now() - TimeDelta::minutes(20));
    let sim = SimConfig::bounded(51, Utc::now() - TimeDelta::minutes(10), 2.0, 600);
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let env = Env::start_with(
        sim,
        &format!("interval = \"1s\"\nsettle = \"2s\"\nfirst_start = \"{start}\""),
        &format!(
            "[push]\nlisten = \"127.0.0.1:0\"\ncert = \"server.pem\"\nkey = \"server-key.pem\"\nclient_ca = \"client-ca.pem\"\n\n[log]\nformat = \"{format}\"\nlevel = \"debug\"\n"
        ),
    )
    .await;
    let d = env.dir.path();
    let server = server_ca.server();
    std::fs::write(d.join("server.pem"), &server.cert_pem).unwrap();
    std::fs::write(d.join("server-key.pem"), &server.key_pem).unwrap();
    std::fs::write(d.join("client-ca.pem"), &client_ca.pem).unwrap();
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
    let port = text
        .lines()
        .find(|l| l.contains("push endpoint listening"))
        .and_then(|l| l.split("127.0.0.1:").nth(1))
        .and_then(|p| p.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u16>().ok())
        .expect("the log names the push address");
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
    assert_clean(&scenario("text").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_in_json_format_hold_no_secrets_or_card_data() {
    let text = scenario("json").await;
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert_clean(&text);
}
