//! The VGS webhook event: the envelope every Card Management Platform notification shares,
//! and the Account Updater `details`.
//!
//! Like [`crate::cen::notification`], the pipeline carries the body as its original JSON text
//! (whitespace removed), so every member VGS sends reaches the sinks unchanged. The typed
//! structs here are a view for code that reads fields by name (logs, tests, a sink); the
//! only members the pipeline itself needs are `id`, `event`, `timestamp` and `details`.
//!
//! Leniency: the VGS pages disagree with themselves (the field table calls
//! `new_expiration_date` a number, the examples send `"0227"`; `details` is "JSON String" in
//! one table and an object in every example; `occurrence` is an integer in one page and a
//! number in another). So:
//! - members that may be a number or a string are [`NumOrString`], written back as they came;
//! - a declared member whose JSON type fits nothing declared (say `"description": 5`) is moved
//!   to `extra` under its own name instead of failing the parse, so parse → serialise still
//!   gives back every member (except that a declared member set to `null` reads as absent);
//! - `details` is kept as sent ([`Event::details`]); [`Event::card_details`] reads it as an
//!   object, or as a string holding one.
//!
//! Refusing is reserved for what the pipeline cannot do without: a body that is not a JSON
//! object, or one without `id`, `event`, `timestamp` or `details`. An event name this build
//! does not know is accepted (it is counted in `unknown_events` by the store handle).
//!
//! Error messages never quote values from the body (they are returned to the sender and
//! logged; the body holds card data, SPEC G6).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cen::id::vgs_id;
use crate::cen::lenient::NumOrString;
use crate::cen::notification::compact_json;
use crate::config::VGS_EVENTS;
use crate::json::error_message as json_error_message;
use crate::store::{Incoming, SOURCE_VGS};

/// Enrollment-failure reason codes the Account Updater pages document
/// (`cmp_au_card.enrollment_failed`). Codes are kept as sent; this list only tells a reader
/// which ones are known.
pub const ENROLLMENT_FAILURE_CODES: [&str; 3] = ["card-brand-not-supported", "declined", "internal-server-error"];

/// Why a body is not an acceptable VGS event (answered `400`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the body is not UTF-8")]
    NotUtf8,
    /// serde_json's syntax messages name a position, never the text there.
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("the event must be a JSON object")]
    NotAnObject,
    #[error("member `{0}` is missing, null, empty or of the wrong type")]
    Missing(&'static str),
}

/// The envelope of a VGS webhook event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id of the event (a UUID in VGS's examples); the pipeline's id is `vgs:<id>`.
    /// A numeric id is accepted and read as its text.
    #[serde(with = "text")]
    pub id: String,
    /// The event name, e.g. `cmp_au_card.updated`.
    pub event: String,
    /// When the event happened (ISO 8601), exactly as sent.
    pub timestamp: String,
    /// The event's details, exactly as sent (normally an object; see [`Event::card_details`]).
    pub details: Value,
    /// A short title, e.g. `Card updated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A sentence naming the card and the vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// SHA-256 (hex) of event + details + tenant: VGS groups repeats by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// `every_single`, `exp_repeat` or `high_rate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grouping: Option<String>,
    /// How many grouped occurrences this event stands for (1 without grouping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrence: Option<NumOrString>,
    /// The webhook integration that sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<String>,
    /// The VGS organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// The vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `vault` in VGS's examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The VGS application that produced the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub producer: Option<Producer>,
    /// Every other member, and declared members of an unexpected JSON type.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The application that produced the event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Producer {
    /// E.g. `calm-api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    /// E.g. `http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_protocol: Option<String>,
    /// Every other member.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `details` of an Account Updater event (`cmp_au_card.*`, `au_card.*`). Which members
/// are present depends on the event: `card_id` always; the old and new account number and
/// expiry on updates; `reason_code`/`reason_text` on updates and enrollment failures.
///
/// Account numbers arrive masked (`************5698`), but `card_first8` and `card_bin` are
/// card data too: do not log this struct (its `Debug` is for tests).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CardDetails {
    /// The card's id in VGS (`CRD…`, 25 characters): read the current card data by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_id: Option<String>,
    /// The last four digits of the (current) card number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_last4: Option<NumOrString>,
    /// Sent for Visa and Mastercard cards only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_first8: Option<NumOrString>,
    /// The first six digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_bin: Option<NumOrString>,
    /// VGS's fingerprint of the card number (the same number gives the same fingerprint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_fingerprint: Option<String>,
    /// Other cards with the same fingerprint. VGS sends a string holding a JSON array of card
    /// ids (or, in one integration's example, `"true"`); kept as sent, read with
    /// [`CardDetails::fingerprint_match_ids`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_matches: Option<Value>,
    /// The new card number, masked to its last four digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_account_number: Option<NumOrString>,
    /// `MMYY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_expiration_date: Option<NumOrString>,
    /// The previous card number, masked to its last four digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_account_number: Option<NumOrString>,
    /// `MMYY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_expiration_date: Option<NumOrString>,
    /// The card's expiry month (card objects), 1–12.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp_month: Option<NumOrString>,
    /// The card's expiry year (card objects), two or four digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp_year: Option<NumOrString>,
    /// When the network reported the change; VGS writes it to the minute (`2024-01-17T00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred_at: Option<String>,
    /// An update's reason (`A`, …) or an enrollment failure's code (see
    /// [`ENROLLMENT_FAILURE_CODES`]), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<NumOrString>,
    /// The reason in words, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_text: Option<String>,
    /// Every other member (network token and 3DS details land here), and declared members of
    /// an unexpected JSON type.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl CardDetails {
    /// The card ids in `fingerprint_matches`: a string holding a JSON array of strings, or
    /// such an array itself. Anything else gives none.
    pub fn fingerprint_match_ids(&self) -> Vec<String> {
        let ids = |v: &Value| -> Vec<String> {
            v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect()).unwrap_or_default()
        };
        match &self.fingerprint_matches {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).map(|v| ids(&v)).unwrap_or_default(),
            Some(v) => ids(v),
            None => Vec::new(),
        }
    }

    /// The enrollment-failure code when it is one of the documented ones.
    pub fn known_enrollment_failure(&self) -> Option<&'static str> {
        let code = self.reason_code.as_ref()?.as_str()?;
        ENROLLMENT_FAILURE_CODES.into_iter().find(|c| *c == code)
    }
}

/// The JSON types a declared member may have; another type moves it to `extra`.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    StrOrNum,
    Object,
    Any,
}

impl Kind {
    fn fits(self, v: &Value) -> bool {
        match self {
            // A null reads as absent for every kind.
            _ if v.is_null() => true,
            Kind::Str => v.is_string(),
            Kind::StrOrNum => v.is_string() || v.is_number(),
            Kind::Object => v.is_object(),
            Kind::Any => true,
        }
    }
}

const ENVELOPE: [(&str, Kind); 10] = [
    ("description", Kind::Str),
    ("summary", Kind::Str),
    ("fingerprint", Kind::Str),
    ("grouping", Kind::Str),
    ("occurrence", Kind::StrOrNum),
    ("integration_id", Kind::Str),
    ("org_id", Kind::Str),
    ("tenant", Kind::Str),
    ("scope", Kind::Str),
    ("producer", Kind::Object),
];

const PRODUCER: [(&str, Kind); 2] = [("application_name", Kind::Str), ("application_protocol", Kind::Str)];

const CARD_DETAILS: [(&str, Kind); 15] = [
    ("card_id", Kind::Str),
    ("card_last4", Kind::StrOrNum),
    ("card_first8", Kind::StrOrNum),
    ("card_bin", Kind::StrOrNum),
    ("card_fingerprint", Kind::Str),
    ("fingerprint_matches", Kind::Any),
    ("new_account_number", Kind::StrOrNum),
    ("new_expiration_date", Kind::StrOrNum),
    ("old_account_number", Kind::StrOrNum),
    ("old_expiration_date", Kind::StrOrNum),
    ("exp_month", Kind::StrOrNum),
    ("exp_year", Kind::StrOrNum),
    ("occurred_at", Kind::Str),
    ("reason_code", Kind::StrOrNum),
    ("reason_text", Kind::Str),
];

/// Removes the declared members whose type fits no declared type, and returns them.
fn take_mistyped(map: &mut Map<String, Value>, declared: &[(&str, Kind)]) -> Map<String, Value> {
    let mut odd = Map::new();
    for (key, kind) in declared {
        if map.get(*key).is_some_and(|v| !kind.fits(v))
            && let Some(v) = map.remove(*key)
        {
            odd.insert((*key).to_owned(), v);
        }
    }
    odd
}

/// Deserialises a struct from `map` after moving its mistyped members aside, then puts them
/// in its `extra`. With every declared member of a fitting type the deserialisation cannot
/// fail; should it anyway, the error is not serde's (which may quote a value) but `None`.
fn lenient<T: serde::de::DeserializeOwned>(
    mut map: Map<String, Value>,
    declared: &[(&str, Kind)],
    extra: impl FnOnce(&mut T) -> &mut Map<String, Value>,
) -> Option<T> {
    let odd = take_mistyped(&mut map, declared);
    let mut value: T = serde_json::from_value(Value::Object(map)).ok()?;
    extra(&mut value).extend(odd);
    Some(value)
}

impl Event {
    /// Reads an event from its JSON text, leniently (see the module documentation).
    pub fn from_json(text: &str) -> Result<Event, EventError> {
        let value: Value = serde_json::from_str(text).map_err(|e| EventError::Json(json_error_message(&e)))?;
        let Value::Object(mut map) = value else {
            return Err(EventError::NotAnObject);
        };
        // The four members the pipeline needs, checked by hand so the message names the one
        // that is wrong.
        match map.get("id") {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::Number(n)) => {
                let text = n.to_string();
                map.insert("id".into(), Value::String(text));
            }
            _ => return Err(EventError::Missing("id")),
        }
        for key in ["event", "timestamp"] {
            if map.get(key).and_then(Value::as_str).is_none_or(|s| s.trim().is_empty()) {
                return Err(EventError::Missing(key));
            }
        }
        if map.get("details").is_none_or(Value::is_null) {
            return Err(EventError::Missing("details"));
        }
        // The producer is read on its own (its members may be mistyped too); one that is not
        // an object stays in the map and moves to `extra` below.
        let mut producer = None;
        if map.get("producer").is_some_and(Value::is_object)
            && let Some(Value::Object(p)) = map.remove("producer")
        {
            producer = lenient::<Producer>(p, &PRODUCER, |p| &mut p.extra);
        }
        let mut event =
            lenient::<Event>(map, &ENVELOPE, |e| &mut e.extra).ok_or(EventError::Missing("the envelope"))?;
        event.producer = producer;
        Ok(event)
    }

    /// The Account Updater details: `details` as an object, or as a string holding a JSON
    /// object (one VGS field table calls it a "JSON String"). `None` for anything else.
    pub fn card_details(&self) -> Option<CardDetails> {
        let map = match &self.details {
            Value::Object(m) => m.clone(),
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(m)) => m,
                _ => return None,
            },
            _ => return None,
        };
        lenient::<CardDetails>(map, &CARD_DETAILS, |d| &mut d.extra)
    }

    /// Whether the event name is one this build knows ([`VGS_EVENTS`]).
    pub fn is_known(&self) -> bool {
        is_known_event(&self.event)
    }

    /// `timestamp`, parsed (see [`parse_time`]).
    pub fn time(&self) -> Option<DateTime<Utc>> {
        parse_time(&self.timestamp)
    }
}

/// Whether `name` is one of the VGS event names this build knows.
pub fn is_known_event(name: &str) -> bool {
    VGS_EVENTS.contains(&name)
}

/// Parses a VGS time. RFC 3339 first (the envelope's `2024-01-18T23:49:31.809Z`); then the
/// forms VGS uses elsewhere: without an offset (`2024-12-12T09:59:44.667670`, read as UTC)
/// and to the minute (`2024-01-17T00:00Z`).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')).unwrap_or(s);
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(naive, f).ok())
        .map(|t| t.and_utc())
}

/// A checked event, ready for the store.
#[derive(Debug, Clone)]
pub struct Received {
    /// `vgs:<event id>`.
    pub id: String,
    /// The typed view.
    pub event: Event,
    /// `timestamp`, epoch milliseconds; the receive time when `timestamp` is unreadable.
    pub created_ms: i64,
    /// Whether `timestamp` could be read (else `created_ms` is the receive time).
    pub timestamp_readable: bool,
    /// The body with insignificant whitespace removed.
    pub json: String,
}

impl Received {
    /// Checks a webhook body. `now` stands in for an unreadable `timestamp`: an event VGS
    /// signed is kept rather than refused over a time format this build does not read
    /// (VGS cannot be asked for it again, unlike a CEN notification).
    pub fn from_body(body: &[u8], now: DateTime<Utc>) -> Result<Received, EventError> {
        let text = std::str::from_utf8(body).map_err(|_| EventError::NotUtf8)?;
        let event = Event::from_json(text)?;
        let time = event.time();
        Ok(Received {
            id: vgs_id(&event.id),
            created_ms: time.unwrap_or(now).timestamp_millis(),
            timestamp_readable: time.is_some(),
            json: compact_json(text),
            event,
        })
    }
}

impl<'a> From<&'a Received> for Incoming<'a> {
    fn from(r: &'a Received) -> Self {
        Incoming {
            id: &r.id,
            source: SOURCE_VGS,
            subject: &r.event.event,
            subscription_name: None,
            created_ms: r.created_ms,
            created_raw: &r.event.timestamp,
            json: &r.json,
        }
    }
}

/// `id` as a string; on the way in a number is accepted too ([`Event::from_json`] turns it
/// into its text before deserialising, this only keeps serde's derive honest).
mod text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(s: &str, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => Ok(s),
            serde_json::Value::Number(n) => Ok(n.to_string()),
            _ => Err(serde::de::Error::custom("expected a string or a number")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixtures() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vgs");
        let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn every_fixture_parses_and_round_trips() {
        let all = fixtures();
        assert_eq!(all.len(), 21, "one per known event plus one variant name");
        for (name, text) in all {
            let event = Event::from_json(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(format!("{}.json", event.event), name);
            assert!(event.time().is_some(), "{name}: {}", event.timestamp);
            // Typed and back: the same members and values (order aside).
            let original: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(serde_json::to_value(&event).unwrap(), original, "{name}");
            let details = event.card_details().unwrap();
            assert!(details.card_id.as_deref().is_some_and(|c| c.starts_with("CRD") && c.len() == 25), "{name}");
            assert_eq!(serde_json::to_value(&details).unwrap(), original["details"], "{name}");
            assert_eq!(event.is_known(), name != "cmp_au_card.enrollment.failed.json", "{name}");
        }
    }

    #[test]
    fn account_updater_details_are_read_leniently() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vgs/au_card.updated.json"),
        )
        .unwrap();
        let event = Event::from_json(&text).unwrap();
        assert_eq!(event.occurrence.as_ref().and_then(NumOrString::as_u64), Some(1), "\"1\" as a string");
        let d = event.card_details().unwrap();
        assert_eq!(d.new_expiration_date.as_ref().and_then(NumOrString::as_u64), Some(1031), "a number");
        assert_eq!(d.old_expiration_date.as_ref().and_then(NumOrString::as_str), Some("0327"), "leading zero kept");

        let failed = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/vgs/cmp_au_card.enrollment_failed.json"),
        )
        .unwrap();
        let d = Event::from_json(&failed).unwrap().card_details().unwrap();
        assert_eq!(d.reason_code.as_ref().and_then(NumOrString::as_str), Some("card-brand-not-supported"));
        assert_eq!(d.known_enrollment_failure(), Some("card-brand-not-supported"));
        let d = CardDetails { reason_code: Some("something-new".into()), ..Default::default() };
        assert_eq!(d.known_enrollment_failure(), None, "an unknown code is kept, just not known");
    }

    #[test]
    fn mistyped_members_move_to_extra_and_nothing_is_lost() {
        let text = r#"{"id": 42, "event": "cmp_au_card.closed", "timestamp": "2026-01-02T03:04:05Z",
            "details": {"card_id": ["not", "a", "string"], "card_last4": 1234, "fingerprint_matches": "true",
                        "new_field": {"x": 1}},
            "description": 5, "occurrence": {"n": 1}, "producer": {"application_name": false, "v": 2},
            "tenant": null, "brand_new": [1, 2]}"#;
        let event = Event::from_json(text).unwrap();
        assert_eq!(event.id, "42", "a numeric id reads as its text");
        assert_eq!(event.description, None);
        assert_eq!(event.extra["description"], json!(5));
        assert_eq!(event.extra["occurrence"], json!({"n": 1}));
        assert_eq!(event.extra["brand_new"], json!([1, 2]));
        let producer = event.producer.as_ref().unwrap();
        assert_eq!(producer.extra["application_name"], json!(false));
        assert_eq!(producer.extra["v"], json!(2));
        let d = event.card_details().unwrap();
        assert_eq!(d.card_id, None);
        assert_eq!(d.extra["card_id"], json!(["not", "a", "string"]));
        assert_eq!(d.card_last4.as_ref().and_then(NumOrString::as_u64), Some(1234));
        assert_eq!(d.fingerprint_match_ids(), Vec::<String>::new());
        assert_eq!(d.extra["new_field"], json!({"x": 1}));
    }

    #[test]
    fn details_may_be_a_json_string() {
        let text = r#"{"id":"e","event":"au_card.enrolled","timestamp":"2026-01-02T03:04:05Z",
                       "details":"{\"card_id\":\"CRD1\",\"fingerprint_matches\":\"[\\\"CRD2\\\",\\\"CRD3\\\"]\"}"}"#;
        let d = Event::from_json(text).unwrap().card_details().unwrap();
        assert_eq!(d.card_id.as_deref(), Some("CRD1"));
        assert_eq!(d.fingerprint_match_ids(), ["CRD2", "CRD3"]);
        let text = r#"{"id":"e","event":"au_card.enrolled","timestamp":"2026-01-02T03:04:05Z","details":7}"#;
        assert!(Event::from_json(text).unwrap().card_details().is_none(), "accepted, but no card details");
    }

    #[test]
    fn bodies_without_the_required_members_are_refused_without_quoting_them() {
        let base = json!({"id": "e1", "event": "cmp_au_card.updated", "timestamp": "2026-01-02T03:04:05Z",
                          "details": {"card_id": "CRD1"}});
        assert!(Event::from_json(&base.to_string()).is_ok());
        for key in ["id", "event", "timestamp", "details"] {
            let mut v = base.clone();
            v.as_object_mut().unwrap().remove(key);
            assert_eq!(Event::from_json(&v.to_string()), Err(EventError::Missing(key)), "{key} missing");
            v[key] = Value::Null;
            assert_eq!(Event::from_json(&v.to_string()), Err(EventError::Missing(key)), "{key} null");
        }
        for (key, bad) in [("id", json!("")), ("id", json!({})), ("event", json!(7)), ("timestamp", json!(" "))] {
            let mut v = base.clone();
            v[key] = bad;
            assert_eq!(Event::from_json(&v.to_string()), Err(EventError::Missing(key)));
        }
        assert_eq!(Event::from_json("[1]"), Err(EventError::NotAnObject));
        let secret_looking = r#"{"id": "4111111111111111" "#;
        let e = Event::from_json(secret_looking).unwrap_err().to_string();
        assert!(!e.contains("4111"), "{e}");
        assert!(matches!(Received::from_body(b"\xff{}", Utc::now()), Err(EventError::NotUtf8)));
    }

    #[test]
    fn times_in_every_form_vgs_writes() {
        let ms = |s: &str| parse_time(s).map(|t| t.timestamp_millis());
        assert_eq!(ms("2024-01-18T23:49:31.809Z"), Some(1705621771809));
        assert_eq!(ms("2024-01-18T23:49:31.809+00:00"), Some(1705621771809));
        assert_eq!(ms("2024-01-19T01:49:31.809+02:00"), Some(1705621771809));
        assert_eq!(ms("2024-01-18T23:49:31.809123"), Some(1705621771809));
        assert_eq!(ms("2024-01-18T23:49Z"), Some(1705621740000));
        assert_eq!(ms("yesterday"), None);
    }

    #[test]
    fn an_unreadable_timestamp_is_kept_with_the_receive_time() {
        let now = DateTime::parse_from_rfc3339("2026-05-06T07:08:09.010Z").unwrap().with_timezone(&Utc);
        let body = br#"{ "id": "e9", "event": "cmp_au_card.enrolled", "timestamp": "soon", "details": {} }"#;
        let r = Received::from_body(body, now).unwrap();
        assert_eq!(r.id, "vgs:e9");
        assert!(!r.timestamp_readable);
        assert_eq!(r.created_ms, now.timestamp_millis());
        assert_eq!(r.json, r#"{"id":"e9","event":"cmp_au_card.enrolled","timestamp":"soon","details":{}}"#);
        let incoming = Incoming::from(&r);
        assert_eq!((incoming.source, incoming.subject, incoming.created_raw), ("vgs", "cmp_au_card.enrolled", "soon"));
    }
}
