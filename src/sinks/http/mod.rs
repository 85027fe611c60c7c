//! The `http` sink: each record POSTed to a URL with Standard Webhooks v1 signature
//! headers (SPEC 6), so a receiver's existing Standard Webhooks (or Svix) library can check
//! that the request came from this daemon and was not altered.
//!
//! Per record: body = the SPEC 6 record, `Content-Type: application/json`,
//! `webhook-id` = the notification id (the same on every retry, so the receiver can drop
//! repeats), `webhook-timestamp` = Unix seconds of this attempt, and — when `secret_file` is
//! set — `webhook-signature` = `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")),
//! one such entry per secret in the file (space-separated), so a secret can be rotated
//! without a gap.
//!
//! Outcomes: 2xx delivered; 408, 429, 5xx, timeouts and connection errors are retried;
//! any other 4xx is permanent (the receiver refuses this record: a dead letter at once).
//! Anything else (1xx, 3xx: redirects are not followed) is retried, so a URL pointing at
//! the wrong place shows up as a growing backlog rather than as dead letters.
//!
//! Invariants:
//! - Neither the secret nor a record's content is logged; errors name the status and the
//!   URL without its query or credentials.
//! - A batch's records are sent concurrently (at most [`MAX_IN_FLIGHT`]), each outcome is
//!   reported for its own record.

mod config;

pub use config::Config;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::StreamExt;
use futures::future::BoxFuture;

use super::{BuildError, Outcomes, Record, Sink, SinkError};

/// Requests of one batch in flight at once: enough to hide a receiver's latency, few enough
/// not to swamp it after an outage (the backlog drains batch by batch).
pub const MAX_IN_FLIGHT: usize = 16;

/// Records per batch: a few rounds of [`MAX_IN_FLIGHT`], so one slow request does not hold
/// back many acknowledgements.
const MAX_BATCH: usize = 64;

/// Most of a response body read (and thrown away) so the connection can be reused.
const MAX_DRAIN: usize = 64 * 1024;

/// The Standard Webhooks secret prefix.
const SECRET_PREFIX: &str = "whsec_";

/// Why an http sink cannot be built from its entry: the key or file, what is wrong with it
/// and what to write instead. Never a secret's contents.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("url is not a valid URL ({0}); fix it in the configuration")]
    Url(#[source] <reqwest::Url as std::str::FromStr>::Err),
    #[error("cannot read ca_file {path}: {source}")]
    ReadCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("ca_file {path} is not a PEM certificate bundle: {source}")]
    CaBundle {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error(
        "secret_file {path}: {problem}; write a Standard Webhooks secret such as whsec_ + base64 of 32 random bytes"
    )]
    Secret {
        path: PathBuf,
        #[source]
        problem: SecretProblem,
    },
}

/// What is wrong with a webhook secret file (which secret, never its text).
#[derive(Debug, thiserror::Error)]
pub enum SecretProblem {
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    #[error("the file is empty")]
    Empty,
    #[error("secret {0} is not {SECRET_PREFIX} followed by base64")]
    NotBase64(usize),
    #[error("secret {0} is empty after {SECRET_PREFIX}")]
    EmptyAfterPrefix(usize),
    #[error("the file holds no secret")]
    NoSecret,
}

/// Posts records to one URL.
pub struct HttpSink {
    name: String,
    url: reqwest::Url,
    /// `scheme://host:port/path` of `url`, for messages (no query, no credentials).
    shown_url: String,
    client: reqwest::Client,
    /// The signing keys; replaced by [`Sink::reopen`] (SIGHUP) when the file changed.
    keys: RwLock<Arc<Vec<hmac::Key>>>,
    /// The secret file, already resolved, for re-reading on SIGHUP.
    secret_path: Option<PathBuf>,
}

/// The settings of an [`HttpSink`], read from its `[[sinks]]` entry.
pub struct HttpOptions {
    pub url: String,
    /// The secret file's contents (trimmed) and where it was read from; `None`: unsigned.
    pub secret: Option<(String, PathBuf)>,
    pub timeout: Duration,
    /// Extra CA certificates (PEM) to trust besides the system roots.
    pub ca_pem: Option<(Vec<u8>, PathBuf)>,
}

impl HttpSink {

    /// Builds the sink; fails (naming the key) on a bad URL, secret or CA file.
    pub fn new(name: &str, options: HttpOptions) -> Result<HttpSink, BuildError> {
        Self::with_options(name, options).map_err(|e| BuildError::new("http", name, e))
    }

    fn with_options(name: &str, options: HttpOptions) -> Result<HttpSink, Error> {
        let url = reqwest::Url::parse(&options.url).map_err(Error::Url)?;
        let shown_url = shown(&url);
        let mut builder = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            // Keep-alive: one connection per in-flight request is reused batch after batch.
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(MAX_IN_FLIGHT)
            .tcp_keepalive(Duration::from_secs(60))
            .user_agent(concat!("cen-poller/", env!("CARGO_PKG_VERSION")))
            // A POST must not turn into a GET somewhere else; see the module comment.
            .redirect(reqwest::redirect::Policy::none());
        if let Some((pem, path)) = &options.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|source| Error::CaBundle { path: path.clone(), source })?;
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(Error::Client)?;
        let (keys, secret_path) = match &options.secret {
            Some((text, path)) => {
                let keys = parse_secrets(text).map_err(|problem| Error::Secret { path: path.clone(), problem })?;
                (keys, Some(path.clone()))
            }
            None => (Vec::new(), None),
        };
        Ok(HttpSink { name: name.to_owned(), url, shown_url, client, keys: RwLock::new(Arc::new(keys)), secret_path })
    }

    /// One attempt for one record.
    async fn post(&self, item: &Record, keys: &[hmac::Key]) -> Result<(), SinkError> {
        let timestamp = chrono::Utc::now().timestamp();
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &item.id)
            .header("webhook-timestamp", timestamp.to_string())
            .body(item.record.clone());
        if !keys.is_empty() {
            request = request.header("webhook-signature", sign(keys, &item.id, timestamp, item.record.as_bytes()));
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(SinkError::Retryable(format!("POST {}: {}", self.shown_url, transport_message(&e))));
            }
        };
        let status = response.status();
        // Read (a bounded part of) the body so the connection goes back to the pool; its
        // content is the receiver's and may echo the record, so it is logged at debug only.
        let mut snippet = Vec::new();
        while snippet.len() < MAX_DRAIN {
            match response.chunk().await {
                Ok(Some(chunk)) => snippet.extend_from_slice(&chunk),
                _ => break,
            }
        }
        let outcome = classify(status.as_u16());
        if outcome != Outcome::Delivered {
            tracing::debug!(sink = %self.name, id = %item.id, status = status.as_u16(),
                body = %String::from_utf8_lossy(&snippet[..snippet.len().min(512)]), "receiver refused a record");
        }
        let said = format!("{} answered HTTP {status}", self.shown_url);
        match outcome {
            Outcome::Delivered => Ok(()),
            Outcome::Retry => Err(SinkError::Retryable(said)),
            Outcome::Redirect => Err(SinkError::Retryable(format!(
                "{said}: redirects are not followed; set the sink's url to the final address"
            ))),
            Outcome::Refused => Err(SinkError::Permanent(format!(
                "{said}: the receiver refuses this record; once it accepts it, run `cen-poller dead-letters retry --sink {}`",
                self.name
            ))),
        }
    }
}

/// What a status code means for a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Retry,
    Redirect,
    Refused,
}

fn classify(status: u16) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        // Timeout and rate limit: the receiver is busy, not refusing.
        408 | 429 => Outcome::Retry,
        400..=499 => Outcome::Refused,
        300..=399 => Outcome::Redirect,
        _ => Outcome::Retry,
    }
}

/// The signing keys of a secret file: one or more Standard Webhooks secrets separated by
/// whitespace, each `whsec_` + base64 (the prefix may be left out, as the reference
/// libraries allow).
fn parse_secrets(text: &str) -> Result<Vec<hmac::Key>, SecretProblem> {
    let mut keys = Vec::new();
    for (i, secret) in text.split_whitespace().enumerate() {
        let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
        // The decoder's message would quote the offending character: not shown.
        let bytes = BASE64.decode(encoded).map_err(|_| SecretProblem::NotBase64(i + 1))?;
        if bytes.is_empty() {
            return Err(SecretProblem::EmptyAfterPrefix(i + 1));
        }
        keys.push(hmac::Key::new(hmac::HMAC_SHA256, &bytes));
    }
    if keys.is_empty() {
        return Err(SecretProblem::NoSecret);
    }
    Ok(keys)
}

/// The `webhook-signature` value: `v1,<base64 HMAC>` per key, space-separated.
fn sign(keys: &[hmac::Key], id: &str, timestamp: i64, body: &[u8]) -> String {
    let prefix = format!("{id}.{timestamp}.");
    let mut header = String::new();
    for key in keys {
        let mut ctx = hmac::Context::with_key(key);
        ctx.update(prefix.as_bytes());
        ctx.update(body);
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str("v1,");
        header.push_str(&BASE64.encode(ctx.sign().as_ref()));
    }
    header
}

/// `scheme://host[:port]/path` — what an operator needs to recognise the receiver, without
/// the userinfo or query that may carry a token.
fn shown(url: &reqwest::Url) -> String {
    let mut s = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        s.push_str(&format!(":{port}"));
    }
    s.push_str(url.path());
    s
}

/// reqwest's message plus its causes ("connection refused", "certificate expired").
fn transport_message(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out (see the sink's timeout)".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

impl Sink for HttpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn deliver<'a>(&'a self, batch: &'a [Record]) -> BoxFuture<'a, Outcomes> {
        Box::pin(async move {
            let keys = self.keys.read().map(|k| k.clone()).unwrap_or_else(|p| p.into_inner().clone());
            // Collected first: a stream holding the mapping closure trips the compiler's
            // higher-ranked `Send` check on this boxed future.
            let posts: Vec<_> = batch.iter().map(|item| self.post(item, &keys)).collect();
            futures::stream::iter(posts).buffered(MAX_IN_FLIGHT).collect().await
        })
    }

    /// SIGHUP: re-read the secret file, so a rotated secret takes effect without a restart.
    /// A file that cannot be read or parsed keeps the old keys.
    fn reopen(&self) {
        let Some(path) = &self.secret_path else { return };
        let parsed = std::fs::read_to_string(path).map_err(SecretProblem::Read).and_then(|text| {
            let text = text.trim();
            if text.is_empty() { Err(SecretProblem::Empty) } else { parse_secrets(text) }
        });
        match parsed {
            Ok(keys) => {
                let mut slot = self.keys.write().unwrap_or_else(|p| p.into_inner());
                *slot = Arc::new(keys);
            }
            Err(problem) => {
                let error = BuildError::new("http", &self.name, Error::Secret { path: path.clone(), problem });
                tracing::error!(sink = %self.name, %error, "SIGHUP: keeping the previous webhook secret")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        // The vector published with the Standard Webhooks reference libraries: matching it
        // means a receiver's library accepts what this sink sends.
        let keys = parse_secrets("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&keys, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        // Without the prefix, and two secrets (rotation): one entry each.
        let two = parse_secrets("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\nwhsec_dGVzdA==").unwrap();
        let header = sign(&two, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert!(header.starts_with("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,"), "{header}");
        assert_eq!(header.split(' ').count(), 2);
    }

    #[test]
    fn bad_secrets_are_refused_without_showing_them() {
        for bad in ["whsec_***not base64***", "whsec_", "   "] {
            let problem = parse_secrets(bad).unwrap_err();
            let error = Error::Secret { path: "/etc/erp-secret".into(), problem };
            let msg = BuildError::new("http", "erp", error).to_string();
            assert!(msg.contains("sink \"erp\"") && msg.contains("/etc/erp-secret"), "{msg}");
            assert!(!msg.contains("not base64***"), "the secret is not shown: {msg}");
        }
    }

    #[test]
    fn status_codes() {
        for (code, want) in [
            (200, Outcome::Delivered),
            (204, Outcome::Delivered),
            (400, Outcome::Refused),
            (401, Outcome::Refused),
            (404, Outcome::Refused),
            (408, Outcome::Retry),
            (413, Outcome::Refused),
            (429, Outcome::Retry),
            (500, Outcome::Retry),
            (503, Outcome::Retry),
            (301, Outcome::Redirect),
            (101, Outcome::Retry),
        ] {
            assert_eq!(classify(code), want, "{code}");
        }
    }

    #[test]
    fn urls_are_shown_without_credentials_or_query() {
        let url = reqwest::Url::parse("https://user:pw@erp.internal:8443/hooks/cen?token=abc").unwrap();
        assert_eq!(shown(&url), "https://erp.internal:8443/hooks/cen");
    }
}
