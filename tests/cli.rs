//! Black-box tests of the `cen-poller` binary's configuration and signing commands.

use std::path::Path;
use std::process::{Command, Output};

use cen_poller::cen::keys::load_public_key;
use cen_poller::cen::oauth;

fn cen_poller(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cen-poller")).args(args).env_remove("CEN_POLLER_CONFIG").output().unwrap()
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("openssl is installed");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A directory with a legacy PKCS#12 keystore as Mastercard issues them, its certificate,
/// the secrets, and a config naming them by relative paths.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(d, &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "key.pem"]);
    openssl(d, &["req", "-x509", "-new", "-key", "key.pem", "-subj", "/CN=cen", "-days", "2", "-out", "cert.pem"]);
    openssl(
        d,
        &[
            "pkcs12",
            "-export",
            "-legacy",
            "-inkey",
            "key.pem",
            "-in",
            "cert.pem",
            "-name",
            "keyalias",
            "-passout",
            "pass:keystorepassword",
            "-out",
            "signing-key.p12",
        ],
    );
    std::fs::write(d.join("keystore-password"), "keystorepassword\n").unwrap();
    std::fs::write(d.join("consumer-key"), "my-consumer-key!abc\n").unwrap();
    std::fs::write(
        d.join("config.toml"),
        r#"[api]
base_url = "https://sandbox.api.mastercard.com/commercial-event-notifications"
consumer_key_file = "consumer-key"
signing_key = "signing-key.p12"
signing_key_password_file = "keystore-password"
signing_key_alias = "keyalias"

[state]
path = "state.db"

[[sinks]]
name = "archive"
type = "file"
path = "notifications.jsonl"
"#,
    )
    .unwrap();
    dir
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_config_accepts_a_good_file_and_loads_the_keystore() {
    let dir = setup();
    let config = dir.path().join("config.toml");
    let out = cen_poller(&["--config", config.to_str().unwrap(), "check-config"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("OK (1 sink"), "{}", stdout(&out));
    // The environment variable names the file too.
    let out = Command::new(env!("CARGO_BIN_EXE_cen-poller"))
        .arg("check-config")
        .env("CEN_POLLER_CONFIG", &config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn check_config_exits_2_naming_the_problem() {
    let dir = setup();
    let config = dir.path().join("config.toml");
    let c = config.to_str().unwrap();
    let original = std::fs::read_to_string(&config).unwrap();
    let cases: [(String, &[&str]); 4] = [
        (original.replace("[state]", "[state]\nkep = \"14d\""), &["kep", "line 9"]),
        (original.replace("\"keyalias\"", "\"nosuchalias\""), &["nosuchalias", "\"keyalias\"", "signing-key.p12"]),
        (original.replace("signing-key.p12", "missing.p12"), &["missing.p12", "cannot read"]),
        (
            original.replace("path = \"notifications.jsonl\"", "path = \"n.jsonl\"\nsubjects = [\"CLEARNG\"]"),
            &["CLEARNG", "sinks[0].subjects", ":15:"],
        ),
    ];
    for (text, wants) in cases {
        std::fs::write(&config, text).unwrap();
        let out = cen_poller(&["--config", c, "check-config"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        for want in wants {
            assert!(stderr(&out).contains(want), "{want:?} not in {}", stderr(&out));
        }
    }
    // Sinks are checked as far as can be done without connecting: a connection string, a
    // subject template, a command path.
    let sink_cases: [(&str, &[&str]); 3] = [
        (
            "[[sinks]]\nname = \"ledger\"\ntype = \"postgres\"\nurl = \"host=db sslmode=sometimes\"\ntable = \"t\"\n",
            &["postgres sink \"ledger\"", "sslmode"],
        ),
        (
            "[[sinks]]\nname = \"bus\"\ntype = \"nats\"\nurl = \"nats://127.0.0.1:1\"\nstream = \"CEN\"\nsubject = \"cen.{subject}.>\"\n",
            &["nats sink \"bus\"", "cen.{subject}.>"],
        ),
        (
            "[[sinks]]\nname = \"hook\"\ntype = \"command\"\ncommand = [\"/nonexistent/handler\"]\n",
            &["sink \"hook\"", "/nonexistent/handler"],
        ),
    ];
    for (sink, wants) in sink_cases {
        std::fs::write(&config, format!("{original}\n{sink}")).unwrap();
        let out = cen_poller(&["--config", c, "check-config"]);
        assert_eq!(out.status.code(), Some(2), "{sink}: {}", stderr(&out));
        for want in wants {
            assert!(stderr(&out).contains(want), "{want:?} not in {}", stderr(&out));
        }
    }
    // Checking creates nothing: the file sink's file appears only when the daemon starts.
    assert!(!dir.path().join("notifications.jsonl").exists());
    // A wrong password is reported as such, naming the file.
    std::fs::write(&config, &original).unwrap();
    std::fs::write(dir.path().join("keystore-password"), "wrong").unwrap();
    let out = cen_poller(&["--config", c, "check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("wrong keystore password") && stderr(&out).contains("signing-key.p12"),
        "{}",
        stderr(&out)
    );
    // A missing config file.
    let out = cen_poller(&["--config", "/nonexistent/config.toml", "check-config"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/config.toml"));
    // Bad usage is 2 as well.
    assert_eq!(cen_poller(&["--no-such-flag"]).status.code(), Some(2));
}

#[test]
fn credentials_directory_is_searched_first() {
    let dir = setup();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::rename(dir.path().join("keystore-password"), creds.join("keystore-password")).unwrap();
    let config = dir.path().join("config.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_cen-poller"))
        .args(["--config", config.to_str().unwrap(), "check-config"])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn sign_prints_a_verifiable_reproducible_header_and_the_base_string() {
    let dir = setup();
    let c = dir.path().join("config.toml");
    let c = c.to_str().unwrap();
    let url = "https://sandbox.api.mastercard.com/commercial-event-notifications/notifications?start=2026-11-20T00%3A00%3A00.000Z&end=2026-11-21T00%3A00%3A00.000Z&limit=200";
    let args = ["--config", c, "sign", "--nonce", "AbCdEfGhIjKlMnOp", "--timestamp", "1763805600", url];
    let out = cen_poller(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    let header = line.trim().strip_prefix("Authorization: ").expect("prints the header");
    assert!(header.contains("oauth_consumer_key=\"my-consumer-key!abc\""));
    assert!(header.contains("oauth_nonce=\"AbCdEfGhIjKlMnOp\",oauth_signature=\""));
    let public = load_public_key(&dir.path().join("cert.pem")).unwrap();
    oauth::verify("GET", url, b"", header, &public).expect("the printed header verifies");
    // Same nonce and timestamp: the same header (how an operator reproduces a request).
    assert_eq!(stdout(&cen_poller(&args)), line);

    let mut base_args = args.to_vec();
    base_args.insert(3, "--base-string");
    let base = stdout(&cen_poller(&base_args));
    assert_eq!(
        base.trim(),
        "GET&https%3A%2F%2Fsandbox.api.mastercard.com%2Fcommercial-event-notifications%2Fnotifications&end%3D2026-11-21T00%253A00%253A00.000Z%26limit%3D200%26oauth_body_hash%3D47DEQpj8HBSa%2B%2FTImW%2B5JCeuQeRkm5NMpJWZG3hSuFU%3D%26oauth_consumer_key%3Dmy-consumer-key%21abc%26oauth_nonce%3DAbCdEfGhIjKlMnOp%26oauth_signature_method%3DRSA-SHA256%26oauth_timestamp%3D1763805600%26oauth_version%3D1.0%26start%3D2026-11-20T00%253A00%253A00.000Z"
    );

    // A POST with a body file: the body hash is the body's.
    std::fs::write(dir.path().join("body.json"), br#"{"a":1}"#).unwrap();
    let body_file = dir.path().join("body.json");
    let out = cen_poller(&["--config", c, "sign", "--method", "post", "--body-file", body_file.to_str().unwrap(), url]);
    let header = stdout(&out).trim().strip_prefix("Authorization: ").unwrap().to_owned();
    assert!(header.contains("oauth_body_hash=\"AVq9f1zFei3ZS3WQ8ErYCEJzkF7jPsXOvq5iJ2qX+GI=\""), "{header}");
    oauth::verify("POST", url, br#"{"a":1}"#, &header, &public).unwrap();
    // --nonce without --timestamp is a usage error.
    assert_eq!(cen_poller(&["--config", c, "sign", "--nonce", "x", url]).status.code(), Some(2));
}

#[test]
fn demo_runs_the_whole_pipeline_and_says_where_the_file_is() {
    let dir = tempfile::tempdir().unwrap();
    let sink = dir.path().join("notifications.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_cen-poller"))
        .args(["demo", "--rate", "20", "--dir", dir.path().to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let records = |text: &str| -> Vec<serde_json::Value> {
        // A line being written may be incomplete; only whole records count.
        text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).collect()
    };
    let ids =
        |text: &str| -> Vec<String> { records(text).iter().map(|v| v["id"].as_str().unwrap().to_owned()).collect() };
    // Wait until notifications have arrived by both paths: pushed as they are created, and
    // the ones push dropped by pull.
    let started = std::time::Instant::now();
    loop {
        let all = records(&std::fs::read_to_string(&sink).unwrap_or_default());
        let via = |path: &str| all.iter().filter(|r| r["received_via"] == path).count();
        if via("push") >= 50 && via("pull") >= 1 {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "push {} pull {}", via("push"), via("pull"));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(sink.to_str().unwrap()), "{}", stdout(&out));
    let ids = ids(&std::fs::read_to_string(&sink).unwrap());
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a notification was delivered twice");
    assert!(stdout(&out).contains("CLEARING"), "the summary shows subjects");
    // It starts by listing the simulator's subscriptions, one per subject.
    let text = stdout(&out);
    assert!(text.contains("subscriptions list):\nNAME"), "{text}");
    for k in 0..cen_poller::simulate::SUBJECTS.len() {
        assert!(text.contains(&cen_poller::simulate::subscription_name(k)), "{text}");
    }
    assert!(stdout(&out).contains("recovered by pull or audit"), "the summary shows push and pull");
}

#[test]
fn man_page_and_completions_come_from_the_cli_definition() {
    let man = cen_poller(&["manpage"]);
    assert!(man.status.success());
    let man = stdout(&man);
    assert!(man.contains(".TH cen-poller 1") && man.contains("check\\-config"), "{man}");
    for shell in ["bash", "zsh", "fish"] {
        let out = cen_poller(&["completions", shell]);
        assert!(out.status.success() && stdout(&out).contains("backfill"), "{shell}");
    }
}

#[test]
fn the_shipped_configuration_templates_parse() {
    for file in ["config/cen-poller.toml", "config/sandbox.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        cen_poller::config::Config::load(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

/// A command's output going nowhere is not a crash: a reader that left (`| head -1`) ends
/// it quietly with its usual status; a full disk is an error that says so, not a panic.
#[test]
fn output_to_a_reader_that_left_or_a_full_disk_is_not_a_panic() {
    let dir = setup();
    let config = dir.path().join("config.toml");
    let run = |stdout: std::process::Stdio| {
        Command::new(env!("CARGO_BIN_EXE_cen-poller"))
            .args(["--config", config.to_str().unwrap(), "check-config"])
            .env_remove("CEN_POLLER_CONFIG")
            .stdout(stdout)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap()
    };
    // The read end is closed before the command starts: its write must fail with EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = run(writer.into());
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    // The generated texts too (`cen-poller completions bash | head`).
    for args in [&["completions", "bash"][..], &["manpage"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_cen-poller"))
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {:?}: {}", out.status, stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}: {}", stderr(&out));
    }

    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full exists on Linux");
    let out = run(full.into());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot write to standard output"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));

    // The demo stops (in order) instead of running on with nobody reading: given an hour,
    // it must be gone well before that.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut demo = Command::new(env!("CARGO_BIN_EXE_cen-poller"))
        .args(["demo", "--duration", "1h", "--dir", dir.path().join("demo").to_str().unwrap()])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            demo.kill().unwrap();
            panic!("the demo kept running with its standard output gone");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut demo.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}
