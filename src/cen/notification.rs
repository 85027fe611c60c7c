//! The notification envelope, as it arrives by push (a bare array) or by pull (inside the
//! `NotificationsWrapper`).
//!
//! The pipeline carries each notification as its original JSON text (whitespace removed), so
//! every field Mastercard sends — documented or not — reaches the sinks unchanged. Only the
//! members the pipeline routes and deduplicates on are parsed here; typed views of the
//! content live in [`super::content`].

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::id::{IdError, PUSH_STATUS, id_of_canonical, notification_id_of};
use crate::json::canonical::Node;
use crate::json::error_message as json_error_message;
use crate::json::tape::{self, Tape, skip_ws};

/// One notification, checked and identified.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// SPEC 3: SHA-256 of the canonical JSON without `pushStatus`.
    pub id: String,
    /// `subject`, e.g. `CLEARING`; unknown subjects are kept, never dropped.
    pub subject: String,
    /// `subscriptionName`, when present.
    pub subscription_name: Option<String>,
    /// `pushStatus`, when present (differs between the push and the pull copy).
    pub push_status: Option<String>,
    /// `createdTimestamp`, parsed.
    pub created: DateTime<Utc>,
    /// `createdTimestamp` exactly as sent.
    pub created_raw: String,
    /// The whole object as received, with insignificant whitespace removed.
    pub json: String,
}

/// Buffers the fast path reuses from one notification to the next: the token tape, the
/// canonical text being hashed and what sorts member names.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub(crate) tape: Tape,
    canonical: String,
    sorter: tape::Sorter,
}

/// Why an item is not an acceptable notification. Messages name the member and what is
/// wrong with it so the sender (or the operator reading the log) can see what was wrong,
/// and never quote a value from the body: it may be a card number (SPEC G6).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NotificationError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("a notification must be a JSON object")]
    NotAnObject,
    #[error("member `{0}` is missing or not a string")]
    MissingString(&'static str),
    #[error("member `content` is missing or null")]
    MissingContent,
    #[error("member `createdTimestamp` is not an RFC 3339 time")]
    BadTimestamp,
    #[error("{0}")]
    Id(String),
}

impl From<IdError> for NotificationError {
    fn from(e: IdError) -> Self {
        NotificationError::Id(e.to_string())
    }
}

impl Notification {
    /// Checks one notification object given as JSON text and computes its id.
    pub fn from_json(text: &str) -> Result<Self, NotificationError> {
        Self::from_json_with(text, &mut Scratch::default())
    }

    /// [`Self::from_json`] with buffers the caller keeps from one notification to the next.
    pub(crate) fn from_json_with(text: &str, scratch: &mut Scratch) -> Result<Self, NotificationError> {
        match Self::from_json_fast(text, scratch) {
            Some(n) => Ok(n),
            None => Self::from_json_general(text),
        }
    }

    /// The general path: serde_json's parser into a [`Node`] tree. It takes every input
    /// and gives serde_json's own error messages; the fast path defers to it.
    pub(crate) fn from_json_general(text: &str) -> Result<Self, NotificationError> {
        let node = Node::parse(text).map_err(|e| NotificationError::Json(json_error_message(&e)))?;
        Self::from_node(&node, compact_json(text))
    }

    /// The fast path ([`super::tape`]): the same notification as [`Self::from_json_general`],
    /// or `None` when the text is not certainly one — an error of any kind included, so that
    /// errors always come from the general path.
    pub(crate) fn from_json_fast(text: &str, scratch: &mut Scratch) -> Option<Self> {
        let end = scratch.tape.parse(text, 0, tape::MAX_DEPTH)?;
        // `from_str` allows whitespace after the value and nothing else.
        if skip_ws(text.as_bytes(), end) != text.len() {
            return None;
        }
        Self::from_tape(text, scratch)
    }

    /// The notification that is the value just parsed into `scratch.tape` (from `text`),
    /// checked as [`Self::from_node`] checks it; `None` for anything but a valid one.
    pub(crate) fn from_tape(text: &str, scratch: &mut Scratch) -> Option<Self> {
        let Scratch { tape, canonical, sorter } = scratch;
        let tokens = tape.tokens();
        let root = *tokens.first()?;
        if root.kind != tape::Kind::Object {
            return None;
        }
        let (mut subject, mut created_raw, mut subscription_name, mut push_status) = (None, None, None, None);
        let mut content = None;
        for (name, value) in tape.members(0) {
            let value = *tokens.get(value)?;
            match tape.str(text, *tokens.get(name)?)? {
                "subject" => subject = Some(value),
                "createdTimestamp" => created_raw = Some(value),
                "subscriptionName" => subscription_name = Some(value),
                "pushStatus" => push_status = Some(value),
                "content" => content = Some(value),
                _ => {}
            }
        }
        // A repeated name makes `write_canonical` below refuse, so which of the repeats was
        // kept here does not matter.
        let string = |t: Option<tape::Token>| t.and_then(|t| tape.str(text, t)).map(str::to_owned);
        let subject = string(subject).filter(|s| !s.is_empty())?;
        let created_raw = string(created_raw).filter(|s| !s.is_empty())?;
        let created = parse_timestamp(&created_raw)?;
        if content?.kind == tape::Kind::Null {
            return None;
        }
        canonical.clear();
        tape.write_canonical(text, 0, &[PUSH_STATUS], canonical, sorter)?;
        // Compact text (what the API sends) is stored as it came; otherwise exactly what the
        // general path stores.
        let json = tape.span(text, root)?;
        let json = if tape.had_whitespace() { compact_json(json) } else { json.to_owned() };
        Some(Notification {
            id: id_of_canonical(canonical),
            subject,
            subscription_name: string(subscription_name),
            push_status: string(push_status),
            created,
            created_raw,
            json,
        })
    }

    /// Checks an already-parsed notification; `json` is its text (kept as the record).
    pub fn from_value(value: &Value, json: String) -> Result<Self, NotificationError> {
        Self::from_node(&Node::from_value(value), json)
    }

    fn from_node(node: &Node<'_>, json: String) -> Result<Self, NotificationError> {
        if !matches!(node, Node::Object(_)) {
            return Err(NotificationError::NotAnObject);
        }
        let string = |key: &'static str| -> Result<String, NotificationError> {
            match node.get(key).and_then(Node::as_str) {
                Some(s) if !s.is_empty() => Ok(s.to_owned()),
                _ => Err(NotificationError::MissingString(key)),
            }
        };
        let optional = |key: &str| node.get(key).and_then(Node::as_str).map(str::to_owned);
        let subject = string("subject")?;
        let created_raw = string("createdTimestamp")?;
        let created = parse_timestamp(&created_raw).ok_or(NotificationError::BadTimestamp)?;
        if node.get("content").is_none_or(Node::is_null) {
            return Err(NotificationError::MissingContent);
        }
        Ok(Notification {
            id: notification_id_of(node)?,
            subject,
            subscription_name: optional("subscriptionName"),
            push_status: optional("pushStatus"),
            created,
            created_raw,
            json,
        })
    }

    /// The notification object as a JSON value.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.json).expect("stored notification JSON was validated")
    }
}

/// Parses a CEN timestamp. The API writes `2024-05-30T10:43:59.640Z`; any RFC 3339 offset is
/// accepted and converted to UTC.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Formats a time the way the API does: UTC, milliseconds, `Z`.
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    format_utc(t, false)
}

/// `t` as `to_rfc3339_opts(Millis or Micros, true)` writes it: by [`push_utc_fixed`] where
/// it can, by chrono for the times it leaves out.
pub(crate) fn format_utc(t: DateTime<Utc>, micros: bool) -> String {
    let mut out = String::with_capacity(27);
    if push_utc_fixed(&mut out, t, micros) {
        return out;
    }
    t.to_rfc3339_opts(if micros { chrono::SecondsFormat::Micros } else { chrono::SecondsFormat::Millis }, true)
}

/// Appends `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (`.mmmmmmZ` with `micros`), exactly what
/// `to_rfc3339_opts(Millis or Micros, true)` writes, digit by digit instead of through
/// chrono's formatter: every record carries such a time, every simulated notification
/// several. Returns `false` and writes nothing for a year outside 0–9999 or a leap second
/// (which no Unix time makes); the caller formats those its own way.
pub(crate) fn push_utc_fixed(out: &mut String, t: DateTime<Utc>, micros: bool) -> bool {
    let year = t.year();
    let nanos = t.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return false;
    }
    let year = year as u32;
    push_two_digits(out, year / 100);
    push_two_digits(out, year % 100);
    out.push('-');
    push_two_digits(out, t.month());
    out.push('-');
    push_two_digits(out, t.day());
    out.push('T');
    push_two_digits(out, t.hour());
    out.push(':');
    push_two_digits(out, t.minute());
    out.push(':');
    push_two_digits(out, t.second());
    out.push('.');
    let (mut fraction, width) = if micros { (nanos / 1_000, 6) } else { (nanos / 1_000_000, 3) };
    let mut digits = [b'0'; 6];
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    out.push_str(std::str::from_utf8(&digits[..width]).expect("ASCII digits"));
    out.push('Z');
    true
}

/// Appends the last two decimal digits of `n` (what `{:02}` writes for `n < 100`).
pub(crate) fn push_two_digits(out: &mut String, n: u32) {
    out.push(char::from(b'0' + (n / 10 % 10) as u8));
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// A push body: a JSON array of notification objects, or a single object (SPEC 7).
/// All or nothing: the first bad item rejects the batch, naming its position.
pub fn parse_push_body(body: &[u8]) -> Result<Vec<Notification>, (Option<usize>, NotificationError)> {
    let text = std::str::from_utf8(body).map_err(|_| (None, NotificationError::Json("body is not UTF-8".into())))?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|e| (None, NotificationError::Json(json_error_message(&e))))?;
        let mut scratch = Scratch::default();
        items
            .iter()
            .enumerate()
            .map(|(i, raw)| Notification::from_json_with(raw.get(), &mut scratch).map_err(|e| (Some(i), e)))
            .collect()
    } else {
        Notification::from_json(text).map(|n| vec![n]).map_err(|e| (None, e))
    }
}

/// The `GET /notifications` response wrapper. Numbers are lenient (the published examples
/// sometimes write them as strings).
#[derive(Debug, Deserialize)]
pub struct RawPage<'a> {
    #[serde(default, deserialize_with = "super::lenient::opt_u64")]
    pub count: Option<u64>,
    #[serde(default, deserialize_with = "super::lenient::opt_u64")]
    pub offset: Option<u64>,
    #[serde(default, deserialize_with = "super::lenient::opt_u64")]
    pub limit: Option<u64>,
    #[serde(default, deserialize_with = "super::lenient::opt_u64")]
    pub total: Option<u64>,
    #[serde(borrow, default)]
    pub notifications: Option<Vec<&'a RawValue>>,
}

/// Removes the whitespace between JSON tokens, leaving strings, numbers and member order
/// exactly as sent. The input must be valid JSON; it is not re-checked.
pub fn compact_json(text: &str) -> String {
    // Byte by byte is safe: the quote, the backslash and the whitespace are ASCII, and no
    // byte of a multi-byte UTF-8 character is. Strings (most of the text) are skipped with
    // memchr; already-compact text (what the API sends) is copied in one go.
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // To the closing quote: the next quote not escaped by a backslash.
                i += 1;
                while let Some(at) = bytes.get(i..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) {
                    i += at;
                    if bytes[i] == b'"' {
                        break;
                    }
                    i += 2;
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                if out.capacity() == 0 {
                    out.reserve(text.len());
                }
                out.extend_from_slice(&bytes[copied..i]);
                copied = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if copied == 0 {
        return text.to_owned();
    }
    out.extend_from_slice(bytes.get(copied..).unwrap_or_default());
    // Only whole ASCII bytes were left out, so the rest is still UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"{ "subject": "CLEARING", "subscriptionName": "ops", "pushStatus": "DELIVERED",
        "createdTimestamp": "2026-11-22T10:00:00.640Z", "content": { "note": "a \" b  c", "n": 1.50 } }"#;

    #[test]
    fn fixed_utc_times_match_chrono() {
        let times = [0, 1, 999, 1_795_000_000_123, 253_402_300_799_999, -1, -62_167_219_200_000, -62_167_219_200_001];
        for ms in times {
            let t = DateTime::<Utc>::from_timestamp_millis(ms).unwrap()
                + chrono::TimeDelta::microseconds(ms.rem_euclid(1000));
            assert_eq!(format_timestamp(t), t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true), "{ms}");
            let mut micros = String::new();
            let fixed = push_utc_fixed(&mut micros, t, true);
            assert_eq!(fixed, (0..=9999).contains(&t.year()), "{ms}");
            if fixed {
                assert_eq!(micros, t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true), "{ms}");
            } else {
                assert!(micros.is_empty(), "{ms}");
            }
        }
    }

    #[test]
    fn parses_and_keeps_the_text_compact_and_exact() {
        let n = Notification::from_json(ONE).unwrap();
        assert_eq!(n.subject, "CLEARING");
        assert_eq!(n.subscription_name.as_deref(), Some("ops"));
        assert_eq!(n.push_status.as_deref(), Some("DELIVERED"));
        assert_eq!(format_timestamp(n.created), "2026-11-22T10:00:00.640Z");
        assert_eq!(
            n.json,
            r#"{"subject":"CLEARING","subscriptionName":"ops","pushStatus":"DELIVERED","createdTimestamp":"2026-11-22T10:00:00.640Z","content":{"note":"a \" b  c","n":1.50}}"#
        );
    }

    #[test]
    fn compacting_keeps_strings_and_copies_compact_text_as_is() {
        let text = "\t{ \"é €\" : \"a \\\" \\\\\" ,\r\n \"b\":[ 1 ,2 ] } ";
        assert_eq!(compact_json(text), "{\"é €\":\"a \\\" \\\\\",\"b\":[1,2]}");
        let compact = r#"{"a":"x y","b":[1,2]}"#;
        assert_eq!(compact_json(compact), compact);
        assert_eq!(compact_json(" "), "");
    }

    #[test]
    fn compacting_matches_a_byte_by_byte_scan_and_never_panics() {
        fn reference(text: &str) -> String {
            let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
            for c in text.chars() {
                if in_string {
                    out.push(c);
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        in_string = false;
                    }
                } else if c == '"' {
                    in_string = true;
                    out.push(c);
                } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
                    out.push(c);
                }
            }
            out
        }
        let text = "{ \"a \\\\\" : [ \"x\\\" y\" , 1.5 ,\n\"é \\\\\\\"\" ] , \"\\u0041 b\":\"\\\\\" }\t";
        assert!(serde_json::from_str::<Value>(text).is_ok());
        assert_eq!(compact_json(text), reference(text));
        // Not JSON (not expected here): some answer, no panic.
        for end in (0..text.len()).filter(|&e| text.is_char_boundary(e)) {
            compact_json(&text[..end]);
        }
    }

    #[test]
    fn refuses_items_without_required_members() {
        let cases = [
            (
                r#"{"createdTimestamp":"2026-11-22T10:00:00Z","content":{}}"#,
                NotificationError::MissingString("subject"),
            ),
            (r#"{"subject":"X","content":{}}"#, NotificationError::MissingString("createdTimestamp")),
            (r#"{"subject":"X","createdTimestamp":"2026-11-22T10:00:00Z"}"#, NotificationError::MissingContent),
            (
                r#"{"subject":"X","createdTimestamp":"2026-11-22T10:00:00Z","content":null}"#,
                NotificationError::MissingContent,
            ),
            (r#"{"subject":"X","createdTimestamp":"yesterday","content":{}}"#, NotificationError::BadTimestamp),
            (r#"[1]"#, NotificationError::NotAnObject),
        ];
        for (text, want) in cases {
            assert_eq!(Notification::from_json(text).unwrap_err(), want, "{text}");
        }
    }

    #[test]
    fn push_bodies_are_arrays_or_one_object_and_all_or_nothing() {
        assert_eq!(parse_push_body(ONE.as_bytes()).unwrap().len(), 1);
        let two = format!("[{ONE},{}]", ONE.replace("640Z", "641Z"));
        assert_eq!(parse_push_body(two.as_bytes()).unwrap().len(), 2);
        let bad = format!("[{ONE},{{\"subject\":\"X\"}}]");
        assert_eq!(parse_push_body(bad.as_bytes()).unwrap_err().0, Some(1));
        assert!(parse_push_body(b"[{").is_err());
        assert!(parse_push_body(b"\xff\xfe").is_err());
        assert_eq!(parse_push_body(b"[]").unwrap().len(), 0);
    }

    /// One complete notification per subject (made-up values, test card numbers): each is
    /// a valid notification of its subject, with the envelope members the API sends.
    #[test]
    fn one_example_per_subject_is_a_valid_notification() {
        let examples = [
            include_str!("../../tests/fixtures/cen/PAYMENT_AUTHORIZATION.json"),
            include_str!("../../tests/fixtures/cen/CLEARING.json"),
            include_str!("../../tests/fixtures/cen/BPC_PAYMENT_AUTHORIZATION.json"),
            include_str!("../../tests/fixtures/cen/BPC_CLEARING.json"),
            include_str!("../../tests/fixtures/cen/PAYMENT_UPDATE.json"),
            include_str!("../../tests/fixtures/cen/TOKEN_LIFECYCLE_EVENT.json"),
            include_str!("../../tests/fixtures/cen/TOKEN_PROVISIONING_EVENT.json"),
        ];
        for (subject, text) in crate::cen::SUBJECTS.iter().zip(examples) {
            let n = Notification::from_json(text).unwrap_or_else(|e| panic!("{subject}: {e}"));
            assert_eq!(n.subject, *subject);
            let value: Value = serde_json::from_str(text).unwrap();
            for member in ["subscriptionName", "pushStatus", "createdTimestamp"] {
                assert!(value[member].is_string(), "{subject}: {member}");
            }
            // The two token events carry an idempotency key; the others do not.
            assert_eq!(value.get("idempotencyKey").is_some(), subject.starts_with("TOKEN_"), "{subject}");
        }
    }

    #[test]
    fn unknown_subjects_are_accepted() {
        let n = Notification::from_json(&ONE.replace("\"CLEARING\"", "\"NEW_THING\"")).unwrap();
        assert_eq!(n.subject, "NEW_THING");
    }
}
