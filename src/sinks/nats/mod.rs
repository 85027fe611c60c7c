//! The `nats` sink: each record published to a NATS JetStream stream with header
//! `Nats-Msg-Id` = the notification's id, acknowledged only once JetStream has stored it.
//!
//! JetStream drops a message whose `Nats-Msg-Id` it has seen within the stream's duplicate
//! window, so a repeated delivery (a batch in flight when the daemon was killed, G2) is not
//! stored twice; its ack says "duplicate" and counts as delivered. The window is 2 minutes
//! by default, shorter than a restart may take, so a stream this sink creates gets 1 hour
//! (SPEC 6), and an existing stream with less is reported with a warning at connect.
//!
//! Subjects: the `subject` template with `{subject}` replaced by the notification's subject,
//! where every character other than `A-Z a-z 0-9 _ -` becomes `_`. VGS event names such as
//! `cmp_au_card.updated` thus become one token (`cmp_au_card_updated`): every notification
//! is exactly one token below the prefix, so `cen.*` matches them all and `cen.CLEARING`
//! matches one subject. The stream the sink creates takes `<prefix>.>`, where the prefix is
//! the template's tokens before the one holding `{subject}` (`cen.{subject}` → `cen.>`).
//!
//! Connection: opened at the first delivery, not at start, so a server that is down only
//! delays this sink; once open, the client reconnects by itself. A batch is published
//! concurrently and every ack awaited; connection errors and ack timeouts make records
//! retryable; a record larger than the server's `max_payload` is a dead letter.
//!
//! The URL may hold a user and password; messages show it without them.

mod config;

pub use config::Config;

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use bytes::Bytes;
use futures::future::BoxFuture;

use super::{BuildError, Outcomes, Record, Sink, SinkError};

/// Records per batch; JetStream takes them as concurrent publishes.
const MAX_BATCH: usize = 1000;
/// The duplicate window of a stream this sink creates, and the least it asks of others.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);
/// Longest wait to connect, for a JetStream API answer, or for one publish's ack.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes records to a JetStream stream.
pub struct NatsSink {
    name: String,
    url: String,
    /// `url` without user and password, for messages.
    shown_url: String,
    stream: String,
    template: SubjectTemplate,
    state: tokio::sync::Mutex<Option<Connected>>,
}

/// A client and whether the stream is known to exist.
struct Connected {
    js: jetstream::Context,
    stream_ready: bool,
}

/// Why a nats sink cannot be built from its entry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("stream {0:?}: a stream name has no spaces, dots, *, >, / or \\")]
    Stream(String),
    #[error("subject template {template:?}: {problem}")]
    Template { template: String, problem: TemplateProblem },
}

/// What is wrong with a subject template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TemplateProblem {
    #[error("only one {{subject}} placeholder is allowed, and no other braces")]
    Braces,
    #[error("tokens between dots must be non-empty, without spaces, and not the wildcards * or >")]
    Token,
    #[error(
        "start with a fixed token before {{subject}}, such as `cen.{{subject}}`, so that the stream's subjects (`cen.>`) can be derived"
    )]
    NoPrefix,
}

impl NatsSink {

    /// A sink publishing to `stream` on the server(s) at `url` (comma-separated), on
    /// subjects made from `template`.
    pub fn new(name: &str, url: &str, stream: &str, template: &str) -> Result<NatsSink, BuildError> {
        let fail = |e: Error| BuildError::new("nats", name, e);
        if stream.is_empty() || stream.chars().any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\')) {
            return Err(fail(Error::Stream(stream.to_owned())));
        }
        Ok(NatsSink {
            name: name.to_owned(),
            url: url.to_owned(),
            shown_url: redact_url(url),
            stream: stream.to_owned(),
            template: SubjectTemplate::parse(template)
                .map_err(|problem| fail(Error::Template { template: template.to_owned(), problem }))?,
            state: tokio::sync::Mutex::new(None),
        })
    }

    /// The subject a notification with `subject` is published to.
    pub fn subject_for(&self, subject: &str) -> String {
        self.template.render(subject)
    }

    /// The subjects of a stream this sink creates.
    pub fn stream_subject(&self) -> &str {
        &self.template.stream_subject
    }

    fn retryable(&self, what: &str, error: impl std::fmt::Display) -> SinkError {
        SinkError::Retryable(format!(
            "nats sink {}: {what} ({}, stream {}): {error}; retrying with backoff",
            self.name, self.shown_url, self.stream
        ))
    }

    async fn connect(&self) -> Result<jetstream::Context, SinkError> {
        let client = async_nats::ConnectOptions::new()
            .name("cen-poller")
            .connection_timeout(TIMEOUT)
            .request_timeout(Some(TIMEOUT))
            .connect(self.url.as_str())
            .await
            .map_err(|e| self.retryable("cannot connect (is the server up and the url right?)", e))?;
        tracing::info!(sink = %self.name, url = %self.shown_url, "connected to NATS");
        Ok(jetstream::ContextBuilder::new().timeout(TIMEOUT).build(client))
    }

    /// Gets the stream, creating it (with a 1-hour duplicate window) when it is missing;
    /// warns when an existing stream's window is shorter.
    async fn ensure_stream(&self, js: &jetstream::Context) -> Result<(), SinkError> {
        let config = jetstream::stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.template.stream_subject.clone()],
            duplicate_window: DUPLICATE_WINDOW,
            storage: jetstream::stream::StorageType::File,
            num_replicas: 1,
            description: Some("Commercial Event Notifications from cen-poller".into()),
            ..Default::default()
        };
        let stream = js.get_or_create_stream(config).await.map_err(|e| {
            self.retryable("cannot get or create the stream (is JetStream enabled on the server, -js?)", e)
        })?;
        let info = stream.cached_info();
        if info.config.duplicate_window < DUPLICATE_WINDOW {
            tracing::warn!(
                sink = %self.name,
                stream = %self.stream,
                duplicate_window_s = info.config.duplicate_window.as_secs(),
                "the stream's duplicate window is shorter than 1 hour: a notification repeated after a crash may be \
                 stored twice; raise it, e.g. `nats stream edit {} --dupe-window 1h`",
                self.stream
            );
        }
        tracing::info!(sink = %self.name, stream = %self.stream, subjects = ?info.config.subjects, "JetStream stream ready");
        Ok(())
    }

    async fn deliver_batch(&self, batch: &[Record]) -> Outcomes {
        let mut slot = self.state.lock().await;
        if slot.is_none() {
            match self.connect().await {
                Ok(js) => *slot = Some(Connected { js, stream_ready: false }),
                Err(e) => return vec![Err(e); batch.len()],
            }
        }
        let Some(conn) = slot.as_mut() else {
            return vec![Err(self.retryable("cannot connect", "no connection")); batch.len()];
        };
        if !conn.stream_ready {
            if let Err(e) = self.ensure_stream(&conn.js).await {
                return vec![Err(e); batch.len()];
            }
            conn.stream_ready = true;
        }
        let (outcomes, stream_missing) = self.publish(&conn.js, batch).await;
        if stream_missing {
            // Deleted, or a server that lost its storage: create it again next time.
            conn.stream_ready = false;
        }
        outcomes
    }

    /// Publishes every record, then awaits every ack. Returns the outcomes and whether
    /// JetStream said no stream takes the subject.
    async fn publish(&self, js: &jetstream::Context, batch: &[Record]) -> (Outcomes, bool) {
        let mut outcomes: Outcomes = Vec::with_capacity(batch.len());
        let mut pending = Vec::with_capacity(batch.len());
        let mut stream_missing = false;
        for (i, item) in batch.iter().enumerate() {
            let subject = self.template.render(&item.subject);
            let message = PublishMessage::build().payload(Bytes::from(item.record.clone())).message_id(&item.id);
            match js.send_publish(subject, message).await {
                Ok(ack) => {
                    pending.push((i, ack));
                    outcomes.push(Ok(()));
                }
                Err(e) if matches!(e.kind(), PublishErrorKind::MaxPayloadExceeded) => {
                    outcomes.push(Err(self.too_large(e)));
                }
                Err(e) => {
                    // The connection is not taking messages: the rest would wait as long.
                    let e = self.retryable("cannot publish", e);
                    outcomes.extend(std::iter::repeat_n(Err(e), batch.len() - i));
                    break;
                }
            }
        }
        let acks = futures::future::join_all(pending.into_iter().map(|(i, ack)| async move { (i, ack.await) })).await;
        for (i, ack) in acks {
            match ack {
                // A duplicate is a record JetStream already has: delivered.
                Ok(_) => {}
                Err(e) => {
                    let subject = self.template.render(&batch[i].subject);
                    outcomes[i] = Err(match e.kind() {
                        PublishErrorKind::StreamNotFound => {
                            stream_missing = true;
                            self.retryable(
                                &format!("no stream takes subject {subject} (add it to the stream's subjects)"),
                                e,
                            )
                        }
                        PublishErrorKind::MaxPayloadExceeded => self.too_large(e),
                        _ => self.retryable(&format!("no ack for a message on {subject}"), e),
                    });
                }
            }
        }
        (outcomes, stream_missing)
    }

    fn too_large(&self, e: impl std::fmt::Display) -> SinkError {
        SinkError::Permanent(format!(
            "nats sink {}: the record is larger than the server's max_payload ({e}); raise max_payload, then \
             `cen-poller dead-letters retry`",
            self.name
        ))
    }
}

impl Sink for NatsSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn deliver<'a>(&'a self, batch: &'a [Record]) -> BoxFuture<'a, Outcomes> {
        Box::pin(self.deliver_batch(batch))
    }
}

/// A parsed `subject` template.
#[derive(Debug, Clone, PartialEq)]
struct SubjectTemplate {
    before: String,
    /// `None` when the template has no `{subject}`: every record goes to `before`.
    after: Option<String>,
    /// What a stream created for this template takes.
    stream_subject: String,
}

const PLACEHOLDER: &str = "{subject}";

impl SubjectTemplate {
    fn parse(template: &str) -> Result<SubjectTemplate, TemplateProblem> {
        let (before, after) = match template.split_once(PLACEHOLDER) {
            Some((b, a)) => (b, Some(a)),
            None => (template, None),
        };
        // The literal parts must make a valid subject whatever the notification's subject.
        let example = match after {
            Some(a) => format!("{before}X{a}"),
            None => template.to_owned(),
        };
        if example.contains(['{', '}']) {
            return Err(TemplateProblem::Braces);
        }
        if example.split('.').any(|t| t.is_empty() || t == "*" || t == ">" || t.chars().any(char::is_whitespace)) {
            return Err(TemplateProblem::Token);
        }
        let stream_subject = match after {
            None => template.to_owned(),
            Some(_) => match before.rsplit_once('.') {
                Some((prefix, _)) => format!("{prefix}.>"),
                None => {
                    return Err(TemplateProblem::NoPrefix);
                }
            },
        };
        Ok(SubjectTemplate { before: before.to_owned(), after: after.map(str::to_owned), stream_subject })
    }

    fn render(&self, subject: &str) -> String {
        match &self.after {
            None => self.before.clone(),
            Some(after) => {
                let token: String = if subject.is_empty() {
                    "_".into()
                } else {
                    subject
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
                        .collect()
                };
                format!("{}{token}{after}", self.before)
            }
        }
    }
}

/// `url` without the `user:password@` of each comma-separated server.
fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|u| {
            let (scheme, rest) = u.split_once("://").map_or(("", u), |(s, r)| (s, r));
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            if scheme.is_empty() { rest.to_owned() } else { format!("{scheme}://{rest}") }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_give_subjects_and_the_stream_subject() {
        let t = SubjectTemplate::parse("cen.{subject}").unwrap();
        assert_eq!(t.stream_subject, "cen.>");
        assert_eq!(t.render("CLEARING"), "cen.CLEARING");
        assert_eq!(t.render("cmp_au_card.updated"), "cen.cmp_au_card_updated");
        assert_eq!(t.render("a b*>c\u{e9}"), "cen.a_b__c_");
        assert_eq!(t.render(""), "cen._");
        let t = SubjectTemplate::parse("ops.cards.{subject}.v1").unwrap();
        assert_eq!(t.stream_subject, "ops.cards.>");
        assert_eq!(t.render("PAYMENT_UPDATE"), "ops.cards.PAYMENT_UPDATE.v1");
        let t = SubjectTemplate::parse("cen.all").unwrap();
        assert_eq!((t.stream_subject.as_str(), t.render("CLEARING").as_str()), ("cen.all", "cen.all"));
    }

    #[test]
    fn unusable_templates_are_refused() {
        for bad in [
            "{subject}",
            "cen-{subject}",
            "cen..{subject}",
            "cen.*.{subject}",
            "cen.{subject}.{subject}",
            "cen.{x}",
            "a b.{subject}",
            "",
        ] {
            assert!(SubjectTemplate::parse(bad).is_err(), "{bad:?}");
        }
        assert!(NatsSink::new("bus", "nats://h", "C.E", "cen.{subject}").is_err());
        assert!(NatsSink::new("bus", "nats://h", "", "cen.{subject}").is_err());
    }

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(redact_url("nats://u:p@h:4222"), "nats://h:4222");
        assert_eq!(redact_url("nats://h:4222,tls://a:b@g:4443"), "nats://h:4222,tls://g:4443");
        let sink = NatsSink::new("bus", "nats://app:hunter2@127.0.0.1:1", "CEN", "cen.{subject}").unwrap();
        let e = sink.retryable("cannot connect", "refused").to_string();
        assert!(!e.contains("hunter2") && e.contains("nats://127.0.0.1:1") && e.contains("bus"), "{e}");
    }
}
